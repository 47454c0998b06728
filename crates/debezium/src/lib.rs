//! Pure decoding of Debezium change events, and per-table batch coalescing.
//!
//! Input is the key and value bytes of one Kafka record written by a
//! Debezium source connector through Kafka Connect's `JsonConverter` with
//! `schemas.enable=true` (`{"schema": {...}, "payload": {...}}`). Output is a
//! typed [`Record`]: a row [`ChangeEvent`] (op, key columns, `before`/`after`
//! rows of `(name, ColumnType, Value)`, the `source` block, envelope times),
//! a tombstone, a truncate, a logical decoding message, a heartbeat, a
//! transaction marker, a schema change, or another record.
//!
//! Layers:
//! - [`Decoder`] (format): bytes -> [`SchemaAndValue`] (a format-neutral
//!   Connect [`Schema`] and typed [`Value`]). [`JsonConverterDecoder`] is the
//!   JSON implementation; an Avro/Schema Registry decoder only has to
//!   implement [`Decoder::decode_part`].
//! - [`logical`]: Connect/Debezium logical types on base values (shared by
//!   every format).
//! - [`envelope`]: Debezium envelope -> [`Record`] (shared by every format).
//! - [`mod@coalesce`]: a table's records -> the minimal upserts/deletes with the
//!   same end state, plus the highest offset per partition.
//! - [`Value::to_pg_text`], [`Value::to_mysql_text`],
//!   [`Value::to_mysql_literal`]: text renderings for the targets.
//!
//! # Invariants
//! - **Pure**: no I/O, no clocks, no global state; the same bytes always give
//!   the same result.
//! - **Never panics on input**: every byte sequence gives a record or a
//!   [`DecodeError`] naming the field path and what to do (no `unwrap`,
//!   `expect` or unchecked indexing on input data; nesting depth is bounded).
//! - **Exact decimals never go through `f64`**: `Decimal` bytes,
//!   `VariableScaleDecimal` and `decimal.format=NUMERIC` numbers are decoded
//!   to canonical decimal strings by integer arithmetic; the JSON reader keeps
//!   number text verbatim (see [`json`]).
//! - **Unknown logical types degrade to their base type**: a schema name this
//!   crate does not know (or a known name on an unexpected base type) never
//!   fails; the value keeps its Connect base type and the name is kept in
//!   [`ColumnType::logical_name`] so the sink can decide.
//! - Records without a key (tables without a primary key) decode with
//!   `key: None`; refusing them is the sink's business ([`coalesce()`] reports
//!   them as [`CoalesceError::MissingKey`]).

pub mod coalesce;
pub mod decimal;
pub mod decode;
pub mod envelope;
pub mod error;
pub mod json;
pub mod logical;
mod payload;
pub mod schema;
pub mod temporal;
pub mod value;

pub use coalesce::{
    coalesce, key_fingerprint, CoalesceError, CoalescedBatch, Position, Positioned, TableOp,
};
pub use decode::{Decoder, JsonConverterDecoder, SchemaAndValue};
pub use envelope::{
    ChangeEvent, Column, EnvelopeTimes, MessageEvent, Op, Record, Row, SchemaChangeEvent, Snapshot,
    Source, TableId, TransactionBlock, TruncateEvent,
};
pub use error::{DecodeError, Part};
pub use schema::{ColumnType, ConnectType, Field, Logical, Schema};
pub use value::{RenderError, Value};
