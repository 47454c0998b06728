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
//! - **Blocking is per partition and exact:** a table held by the `block` drift policy (or by an
//!   operator) stops at its first unappliable record; its partitions are unassigned, the offsets
//!   stop just before that record, and the partitions are re-read from the target's offsets when
//!   the table is released. Other tables go on.
//! - **Poison records are never dropped silently:** with `errors.tolerance: all` each is produced
//!   to the dead-letter topic (acknowledged by the broker) before the offsets that pass it commit;
//!   otherwise it stops the sink.

impl ApplyError {
    /// Whether the error is about one record (or row) rather than about the target, the broker
    /// or the configuration: only such errors may send a record to the dead-letter topic.
    pub fn is_poison(&self) -> bool {
        matches!(
            self,
            ApplyError::Record { .. }
                | ApplyError::Unwritable { .. }
                | ApplyError::KeyMismatch { .. }
                | ApplyError::Rejected(_)
        )
    }
}

pub mod control;
pub mod dlq;
pub mod drain;
mod fetcher;
pub mod holds;
pub mod mariadb;
pub mod metrics;
pub mod mysql_sql;
pub mod pg_params;
pub mod pg_sql;
pub mod pipeline;
pub mod postgres;
pub mod runner;
pub mod table;
pub mod target;
pub mod topics;

pub use control::{
    BlockedTable, Desired, PartitionPosition, RecordRef, SinkHandle, SinkState, SinkStatus,
};
pub use metrics::SinkMetrics;
pub use pipeline::{DriftPolicy, Tolerance};
pub use pipeline::{Engine, PipelineError, SinkPipeline};
pub use runner::{BatchStats, Phases, Sink};

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
    /// The target refused a row's values (a data exception or a constraint): the record is
    /// poison for this target, unlike an unreachable or failing database.
    #[error("the target rejected a row: {0}")]
    Rejected(String),
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
