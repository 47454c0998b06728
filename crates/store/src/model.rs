//! What the store keeps about operations and their steps. Plans and step outputs are JSON
//! values: the store does not know the DDL (or any other) types that produce them.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::state::{OperationState, StepStatus};
use crate::time::Timestamp;

/// An operation's number, unique in its store and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OperationId(pub i64);

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for OperationId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(OperationId)
            .ok_or_else(|| format!("'{s}' is not an operation id (a positive number)"))
    }
}

/// An operation to record: what, on which subject, who asked, the plan, its steps in order.
#[derive(Debug, Clone)]
pub struct NewOperation {
    /// e.g. `ddl`.
    pub kind: String,
    /// What it acts on, e.g. `public.orders`.
    pub subject: String,
    pub requested_by: String,
    /// The plan, as the planner serialised it. Stored as given (the executor runs it), and
    /// copied into the audit log with secrets scrubbed: plans must carry secret references
    /// (`${env:..}`), never secret values.
    pub plan: Value,
    /// Step names, in the order they run.
    pub steps: Vec<String>,
    /// Starts in `PendingApproval` when true, in `Approved` otherwise.
    pub require_approval: bool,
}

/// Where a step is, with what that state carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running {
        started_at: Timestamp,
        attempt: u32,
    },
    Succeeded {
        finished_at: Timestamp,
        output: Value,
    },
    Failed {
        error: String,
    },
    Compensating,
    Compensated,
    Skipped,
}

impl StepState {
    pub fn status(&self) -> StepStatus {
        match self {
            StepState::Pending => StepStatus::Pending,
            StepState::Running { .. } => StepStatus::Running,
            StepState::Succeeded { .. } => StepStatus::Succeeded,
            StepState::Failed { .. } => StepStatus::Failed,
            StepState::Compensating => StepStatus::Compensating,
            StepState::Compensated => StepStatus::Compensated,
            StepState::Skipped => StepStatus::Skipped,
        }
    }
}

/// One step of an operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub index: u32,
    pub name: String,
    /// How many times it has been started (0 while pending).
    pub attempt: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub state: StepState,
}

/// Proof that this caller started (or restarted) a step: finishing it needs the same attempt,
/// so a caller that lost the step to another executor cannot overwrite its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepTicket {
    pub operation: OperationId,
    pub index: u32,
    pub attempt: u32,
}

/// How a step that ran ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// With what it produced (an LSN, a count...; `Value::Null` for nothing).
    Succeeded(Value),
    Failed(String),
}

/// How an operation ends.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationOutcome {
    Succeeded,
    Failed(String),
    /// A requested cancel took effect.
    Cancelled,
    /// Every step that ran was undone.
    Compensated,
}

/// Who did something, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stamp {
    pub by: String,
    pub at: Timestamp,
}

/// An operation with its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    pub id: OperationId,
    pub kind: String,
    pub subject: String,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub state: OperationState,
    pub require_approval: bool,
    pub approval: Option<Stamp>,
    /// Set once someone asked to cancel; the executor checks it between steps.
    pub cancel_request: Option<Stamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
    pub updated_at: Timestamp,
    pub plan: Value,
    pub steps: Vec<Step>,
}

impl Operation {
    /// The step found `Running`: after a restart, the one a crash interrupted.
    pub fn running_step(&self) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.state.status() == StepStatus::Running)
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel_request.is_some()
    }
}

/// One line of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationSummary {
    pub id: OperationId,
    pub kind: String,
    pub subject: String,
    pub state: OperationState,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub updated_at: Timestamp,
    pub steps: u32,
    /// Steps that succeeded or were skipped.
    pub steps_done: u32,
}

/// Which operations `list` returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<OperationState>,
    pub subject: Option<String>,
    pub kind: Option<String>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

/// A record to append to the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Who: a user, or a component such as `watchdog`.
    pub actor: String,
    /// What, as `noun.verb`: `connector.restarted`, `tuning.changed`, `alert.raised`...
    pub action: String,
    /// On what: a connector, a table, a pipeline.
    pub subject: String,
    /// The rest; values under secret-looking keys are masked before anything is stored.
    pub details: Value,
}

impl AuditEntry {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        details: Value,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            details,
        }
    }
}
