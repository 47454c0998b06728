//! What can go wrong, typed by what the caller must do; every message says what failed and
//! what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot read pipeline file {path}: {reason}")]
    PipelineRead { path: PathBuf, reason: String },
    #[error("{message}")]
    PipelineSink { message: String },
    #[error("pipeline file {path}: {field}: {reason}")]
    Pipeline {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("cannot resolve the {what} password: {reason}")]
    Secret { what: &'static str, reason: String },
    #[error("cannot connect to the {what} database {target}: {reason}; check the pipeline file's {what} section and that the database is up")]
    Connect {
        what: &'static str,
        target: String,
        reason: String,
    },
    #[error("reading the source catalog ({what}) failed: {reason}")]
    Catalog { what: &'static str, reason: String },
    #[error("pipeline table {table} does not exist on the source database {database}: fix the pipeline's topics or create the table")]
    MissingTable { table: String, database: String },
    #[error("{what} on the {side} failed: {reason}")]
    Sql {
        side: &'static str,
        what: String,
        reason: String,
    },
    #[error("the DDL lock on the source was not granted within lock_timeout after {attempts} attempts: {reason}; writers were not blocked longer than that. Retry when the table is less busy, or raise source.lock_timeout_ms")]
    LockTimeout { attempts: u32, reason: String },
    #[error("step {step} ({kind}) of the {strategy} plan needs {needs}; nothing was applied")]
    Unsupported {
        step: usize,
        kind: String,
        strategy: String,
        needs: String,
    },
    #[error("the target schema of {table} does not match the plan: {reason}")]
    Verify { table: String, reason: String },
    #[error("the rows of {table} differ from the source: {reason}")]
    RowsDiffer { table: String, reason: String },
    #[error("timed out waiting for {what}")]
    Timeout { what: String },
    #[error("step {step} ({kind}) needs the Kafka Connect cluster: pass --connect-url or name the cluster in lockstep.yaml (--cluster); nothing was applied")]
    NeedsConnect { step: usize, kind: String },
    #[error("connector {connector}: {reason}")]
    ConnectorConfig { connector: String, reason: String },
    #[error("the stored plan of operation {operation} cannot be read: {reason}")]
    StoredPlan { operation: i64, reason: String },
    #[error("the quiesce session of {table} ended with the process that opened it (its transaction, and any DDL run in it, rolled back): the plan is undone, not resumed; apply the DDL again")]
    QuiesceLost { table: String },
    #[error("the test failpoint is invalid: {reason}")]
    Failpoint { reason: String },
    #[error(transparent)]
    Store(#[from] lockstep_store::StoreError),
}
