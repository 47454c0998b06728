//! Plan steps as data: what each does, how to undo it, whether it may run twice.

use lockstep_ddl::{QualifiedName, Risk, Strategy, TableAfter};
use serde::{Deserialize, Serialize};

use crate::facts::{TargetEngine, TargetTable};

/// Why an audit record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStage {
    /// Before anything runs: who, what, the plan.
    Begin,
    /// After the last step: the outcome.
    End,
}

/// A column the target must have after the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedColumn {
    pub name: String,
    /// The type as the target engine spells it in DDL (`None`: not checked, the type has no
    /// mapping lockstep knows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    pub nullable: bool,
}

/// The target table's expected shape after the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Expectation {
    Absent,
    Columns {
        columns: Vec<ExpectedColumn>,
        primary_key: Vec<String>,
    },
}

/// A condition an executor checks to learn that a non-idempotent step already ran (after a
/// crash between running it and recording it): when it holds, the step is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Check {
    TargetColumnExists {
        table: TargetTable,
        column: String,
    },
    TargetTableExists {
        table: TargetTable,
    },
    TargetConstraintExists {
        table: TargetTable,
        name: String,
    },
    TargetPrimaryKeyIs {
        table: TargetTable,
        columns: Vec<String>,
    },
}

/// What a step does. Every step's effect is described completely here: an executor needs
/// nothing else than this and the pipeline's connection settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepKind {
    /// Append a record to the audit log.
    AuditRecord {
        stage: AuditStage,
    },
    /// Run the statement on the source, with `lock_timeout` and retries on lock timeouts.
    /// With `mark`, in the same transaction emit a transactional logical decoding message
    /// (`pg_logical_emit_message(true, 'lockstep', …)`) and record its LSN under that name:
    /// every change to the table before the DDL is below it, every change after it above.
    /// With `in_quiesce_session`, run it in the session holding the table's quiesce lock
    /// (it commits with `ReleaseSourceTable { commit: true }`).
    SourceDdl {
        sql: String,
        lock_timeout_ms: u64,
        retries: u32,
        /// False for statements PostgreSQL refuses inside a transaction block
        /// (CREATE/DROP INDEX CONCURRENTLY).
        transactional: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mark: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        in_quiesce_session: bool,
    },
    /// Run one statement on the target.
    TargetDdl {
        engine: TargetEngine,
        sql: String,
    },
    /// Record the source's current position under a name: emit a non-transactional logical
    /// decoding message and keep its LSN (it flows through the pipeline even when the
    /// tables are quiet, so a wait on it always ends).
    MarkSourcePosition {
        mark: String,
    },
    /// Wait until the sink has applied every change to these tables below the mark (and,
    /// for a held table, stopped at it).
    WaitSinkApplied {
        mark: String,
        tables: Vec<QualifiedName>,
        timeout_ms: u64,
    },
    /// Pause a Kafka Connect connector and wait until its tasks report PAUSED.
    PauseConnector {
        connector: String,
    },
    ResumeConnector {
        connector: String,
    },
    /// Stop a connector (Connect's STOPPED state: tasks shut down, offsets kept).
    StopConnector {
        connector: String,
    },
    /// Start a stopped connector again (Debezium re-reads table metadata, keys included).
    RestartConnector {
        connector: String,
    },
    /// Tell the sink to apply the table's changes below the mark, then hold it (the sink's
    /// `block` policy); without a mark, hold it from its first change.
    HoldSinkTable {
        table: QualifiedName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_mark: Option<String>,
        /// The change makes the table's next events carry a column the target lacks (RENAME
        /// COLUMN), so the `block` policy stops the table exactly there. Without it (a type
        /// conversion, a TRUNCATE the connector skips) nothing in the events marks the
        /// position, and the sink would apply past it: such a hold needs `quiesced`, and an
        /// executor refuses one with neither.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        drift: bool,
        /// The table is quiesced on the source and the sink has applied it up to a mark
        /// emitted after the lock: nothing of it is in flight, so holding it now (the sink's
        /// hold on request, confirmed by its status) holds it exactly at the DDL's position.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        quiesced: bool,
    },
    ReleaseSinkTable {
        table: QualifiedName,
    },
    /// Open a session on the source that takes `LOCK TABLE … IN EXCLUSIVE MODE` (reads go
    /// on, writes wait) and keeps its transaction open.
    QuiesceSourceTable {
        table: QualifiedName,
        lock_timeout_ms: u64,
    },
    /// End the quiesce session: commit (applying a DDL run in it) or roll back.
    ReleaseSourceTable {
        table: QualifiedName,
        commit: bool,
    },
    /// Add or remove entries of a list-valued connector setting (`table.include.list`);
    /// an entry already present (or absent) is left alone.
    UpdateConnectorConfig {
        connector: String,
        key: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        add: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove: Vec<String>,
    },
    /// `ALTER PUBLICATION … ADD/DROP TABLE`, for tables not already (or no longer) members.
    UpdatePublication {
        publication: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        add: Vec<QualifiedName>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove: Vec<QualifiedName>,
    },
    /// Have the sink read a topic into a target table (held from its first change when
    /// `held`).
    AddSinkTable {
        source_table: QualifiedName,
        topic: String,
        target_table: TargetTable,
        held: bool,
    },
    RemoveSinkTable {
        source_table: QualifiedName,
        topic: String,
    },
    /// Insert an `execute-snapshot` signal (incremental) into the signal table:
    /// `INSERT INTO <signal_table> (id, type, data) VALUES (<unique id>, 'execute-snapshot', <data>)`.
    /// With `skip_if_empty`, skip it when the tables have no rows.
    IncrementalSnapshotSignal {
        connector: String,
        signal_table: QualifiedName,
        /// The signal's `data` column (JSON).
        data: String,
        tables: Vec<QualifiedName>,
        skip_if_empty: bool,
    },
    /// Wait until the incremental snapshot of these tables finished and the sink applied it.
    WaitSnapshotCompleted {
        connector: String,
        tables: Vec<QualifiedName>,
        timeout_ms: u64,
    },
    /// Compare the target table with the expected shape.
    VerifyTargetSchema {
        table: TargetTable,
        expect: Expectation,
    },
    /// Compare source and target rows (`lockstep verify`).
    VerifyRows {
        source_table: QualifiedName,
        target_table: TargetTable,
    },
}

/// What to do about a step that already ran when a later step fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Compensation {
    /// Nothing to undo (a record, a mark, a wait, a check).
    Nothing,
    /// Run this to undo the step (before the point of no return).
    Undo { step: Box<StepKind> },
    /// At or after the point of no return: the source has changed, undoing would lose
    /// writes made since; finish the plan instead (retry forward).
    RollForward,
    /// Cannot be undone automatically; the reason says what is left behind.
    Manual { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based position.
    pub n: usize,
    #[serde(flatten)]
    pub kind: StepKind,
    pub compensation: Compensation,
    /// Whether running it twice has the same effect as once.
    pub idempotent: bool,
    /// When any of these holds, the step already ran: skip it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_if: Vec<Check>,
}

/// A plan for one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// 0-based statement position in the script.
    pub statement: usize,
    pub sql: String,
    /// One line: the classes and tables.
    pub summary: String,
    pub risk: Risk,
    pub strategy: Strategy,
    pub concurrency: lockstep_ddl::Concurrency,
    /// Tables the plan works on: a structural plan holds them exclusively.
    pub tables: Vec<QualifiedName>,
    pub steps: Vec<Step>,
    /// The step from which the plan can only go forward (the source change commits).
    pub point_of_no_return: usize,
    /// The source tables as the statement leaves them: an executor recovering from a crash
    /// compares the source with this to learn whether the source DDL committed.
    pub source_after: Vec<TableAfter>,
    /// What the plan does not mirror, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}
