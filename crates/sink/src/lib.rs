//! lockstep's replication sink: reads a pipeline's Debezium topics and applies them to a target
//! database with exactly-once effect.
//!
//! Data flow: Kafka records → [`lockstep_debezium`] decoding → per-table coalescing (the final
//! state of each key in the batch) → [`pg_sql`] set-based statements → one target transaction
//! that also moves this pipeline's offsets (`lockstep.sink_offsets`).
//!
//! Invariants:
//! - **Offsets live in the target, written in the same transaction as the rows.** On start the
//!   sink seeks to them; Kafka consumer-group commits are never used. Whatever the crash point, a
//!   change is applied once: either its transaction committed (rows and offsets) or neither.
//! - **Fencing:** each transaction locks the offsets rows it moves and checks they still hold
//!   what this process last wrote; a second process on the same partitions gets
//!   [`ApplyError::Fenced`] and re-reads its position instead of writing twice.
//! - **No silent skips:** a record the sink cannot apply stops the pipeline with the topic,
//!   partition, offset and reason; `auto.offset.reset` is `error`, so records deleted by retention
//!   before being applied are reported, never jumped over.
//! - Per-key order is Kafka's partition order; coalescing keeps only each key's last state.

pub mod mariadb;
pub mod mysql_sql;
pub mod pg_sql;
pub mod pipeline;
pub mod postgres;
pub mod runner;
pub mod table;
pub mod target;

pub use pipeline::{Engine, PipelineError, SinkPipeline};
pub use runner::{BatchStats, Sink};

/// `(topic, partition)`.
pub type PartitionKey = (String, i32);

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("sink configuration: {0}")]
    Config(String),
    #[error("cannot connect to the target {target}: {reason}; check host, port, credentials and that the database exists")]
    Connect { target: String, reason: String },
    #[error("target database error: {0}")]
    Database(String),
    #[error("target table {table} does not exist: create it (with the source's primary key) before the sink applies its changes")]
    MissingTable { table: String },
    #[error("target table {table} lacks column(s) {}: the source schema changed; add them on the target (or let lockstep ddl apply the change), then the sink resumes", columns.join(", "))]
    SchemaDrift { table: String, columns: Vec<String> },
    #[error("target table {table}: {detail}")]
    KeyMismatch { table: String, detail: String },
    #[error("target table {table}, column {column}: the value cannot be written: {reason}")]
    Unwritable {
        table: String,
        column: String,
        reason: String,
    },
    #[error("offsets of {topic}/{partition} moved under this sink (expected {expected:?}, found {found:?}): another sink process applies the same partitions; this batch was rolled back")]
    Fenced {
        topic: String,
        partition: i32,
        expected: Option<i64>,
        found: Option<i64>,
    },
    #[error("record {topic}/{partition}@{offset}: {reason}")]
    Record {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("Kafka: {0}")]
    Kafka(String),
}
