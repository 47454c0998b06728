//! The store's errors, typed by what the caller must do.

use std::path::PathBuf;

use crate::model::OperationId;
use crate::state::{
    IllegalOperationTransition, IllegalStepTransition, OperationEvent, OperationState, StepEvent,
    StepStatus,
};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {cause}; create it or point --state-dir (LOCKSTEP_STATE_DIR) elsewhere")]
    CreateDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot open the lockstep store {path}: {cause}; check that it is a lockstep.db file and that this user may read and write it")]
    Open {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("there is no lockstep store at {path}: nothing was recorded there; point --state-dir (LOCKSTEP_STATE_DIR) at the directory that holds lockstep.db")]
    Missing { path: PathBuf },
    #[error("the lockstep store {path} has schema version {found}, newer than the {supported} this lockstep knows: a newer lockstep wrote it; use that version (this one will not touch newer data)")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("operation {0} does not exist")]
    OperationNotFound(OperationId),
    #[error("operation {operation} has no step {index} (it has {count})")]
    StepNotFound {
        operation: OperationId,
        index: u32,
        count: u32,
    },
    #[error("operation {operation}, step {index}: {transition}")]
    IllegalStep {
        operation: OperationId,
        index: u32,
        transition: IllegalStepTransition,
    },
    #[error("operation {operation}: {transition}")]
    IllegalOperation {
        operation: OperationId,
        transition: IllegalOperationTransition,
    },
    #[error("operation {operation} is {state}, so its step {index} cannot {}", event_name(*.event))]
    StepNotAllowed {
        operation: OperationId,
        index: u32,
        state: OperationState,
        event: StepEvent,
    },
    #[error("operation {operation}: step {index} cannot start before step {blocking} has succeeded or been skipped (it is {status})")]
    StepOutOfOrder {
        operation: OperationId,
        index: u32,
        blocking: u32,
        status: StepStatus,
    },
    #[error("operation {operation}, step {index} changed since it was read: expected attempt {expected}, found attempt {found} ({status}); another executor has it, re-read the operation before acting")]
    Conflict {
        operation: OperationId,
        index: u32,
        expected: u32,
        found: u32,
        status: StepStatus,
    },
    #[error("operation {operation} cannot {}: {reason}", operation_event_name(*.event))]
    StepsUnfinished {
        operation: OperationId,
        event: OperationEvent,
        reason: String,
    },
    #[error("{what}: the store is locked by another lockstep process for longer than the busy timeout ({cause}); retry, or look for a stuck process")]
    Busy {
        what: &'static str,
        cause: rusqlite::Error,
    },
    #[error("{what}: {cause}")]
    Sqlite {
        what: &'static str,
        cause: rusqlite::Error,
    },
    #[error("the store holds data this lockstep cannot read ({what}); run `lockstep audit verify`, and restore lockstep.db from a backup if it reports tampering")]
    Corrupt { what: String },
}

fn event_name(event: StepEvent) -> &'static str {
    match event {
        StepEvent::Start => "start",
        StepEvent::Retry => "be retried",
        StepEvent::Succeed => "be marked succeeded",
        StepEvent::Fail => "be marked failed",
        StepEvent::Skip => "be skipped",
        StepEvent::Compensate => "be compensated",
        StepEvent::CompensationSucceeded => "be marked compensated",
        StepEvent::CompensationFailed => "have its compensation marked failed",
    }
}

fn operation_event_name(event: OperationEvent) -> &'static str {
    match event {
        OperationEvent::Approve => "be approved",
        OperationEvent::Start => "start",
        OperationEvent::Succeed => "succeed",
        OperationEvent::Fail => "be marked failed",
        OperationEvent::RequestCancel => "be cancelled",
        OperationEvent::ConfirmCancelled => "be marked cancelled",
        OperationEvent::Compensated => "be marked compensated",
        OperationEvent::RefuseCancel => "refuse a cancel",
    }
}

/// Maps a SQLite error met while doing `what`; "database is locked" becomes [`StoreError::Busy`].
pub(crate) fn db(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |cause| match cause.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Busy { what, cause }
        }
        _ => StoreError::Sqlite { what, cause },
    }
}
