//! The state machines of an operation and of its steps, as pure functions.
//!
//! Every change the store makes to an operation or a step goes through [`step_transition`] or
//! [`operation_transition`] (plus [`step_event_allowed`] and [`completion_check`], which tie
//! the two machines together) inside the same SQLite transaction that writes it. Anything not
//! in these tables is an illegal transition and a typed error: a state can only move along
//! the edges below, whoever asks.
//!
//! Steps:
//! ```text
//!   Pending --Start--> Running --Succeed--> Succeeded
//!      |                 | ^  \--Fail-----> Failed --Retry--> Running (next attempt)
//!      |                 | +--Retry (after a crash: the step may or may not have run)
//!      +--Skip--> Skipped
//!   Running | Succeeded | Failed --Compensate--> Compensating
//!   Compensating --CompensationSucceeded--> Compensated
//!   Compensating --CompensationFailed-----> Failed
//! ```
//!
//! Operations:
//! ```text
//!   PendingApproval --Approve--> Approved --Start--> Running --Succeed--> Succeeded
//!   PendingApproval | Approved --RequestCancel--> Cancelled          (nothing ran)
//!   Running --RequestCancel--> Cancelling --ConfirmCancelled--> Cancelled
//!   Running | Cancelling --Fail--> Failed
//!   Running | Cancelling | Failed --Compensated--> Compensated
//!   Cancelling --Succeed--> Succeeded  (the cancel came after the last step finished)
//!   Cancelling --RefuseCancel--> Running  (the cancel came after the point of no return)
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a step is doing, without its data (see [`crate::StepState`] for the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Compensating,
    Compensated,
    Skipped,
}

impl StepStatus {
    pub const ALL: [StepStatus; 7] = [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Compensating,
        StepStatus::Compensated,
        StepStatus::Skipped,
    ];

    /// The name stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Compensating => "compensating",
            StepStatus::Compensated => "compensated",
            StepStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepEvent {
    /// The executor is about to run a pending step (persisted before it runs).
    Start,
    /// Run it again: a step found `Running` after a crash, or a `Failed` one.
    Retry,
    /// The step ran to completion (persisted after it ran).
    Succeed,
    /// The step ran and failed.
    Fail,
    /// The step will not run (the operation was cancelled or compensated before it).
    Skip,
    /// Undo the step's effect (it ran, failed part-way, or was interrupted).
    Compensate,
    CompensationSucceeded,
    CompensationFailed,
}

impl StepEvent {
    pub const ALL: [StepEvent; 8] = [
        StepEvent::Start,
        StepEvent::Retry,
        StepEvent::Succeed,
        StepEvent::Fail,
        StepEvent::Skip,
        StepEvent::Compensate,
        StepEvent::CompensationSucceeded,
        StepEvent::CompensationFailed,
    ];

    /// The audit log's `action` for this event.
    pub fn audit_action(self) -> &'static str {
        match self {
            StepEvent::Start => "step.started",
            StepEvent::Retry => "step.retried",
            StepEvent::Succeed => "step.succeeded",
            StepEvent::Fail => "step.failed",
            StepEvent::Skip => "step.skipped",
            StepEvent::Compensate => "step.compensating",
            StepEvent::CompensationSucceeded => "step.compensated",
            StepEvent::CompensationFailed => "step.compensation_failed",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            StepEvent::Start => "start",
            StepEvent::Retry => "retry",
            StepEvent::Succeed => "mark succeeded",
            StepEvent::Fail => "mark failed",
            StepEvent::Skip => "skip",
            StepEvent::Compensate => "compensate",
            StepEvent::CompensationSucceeded => "mark compensated",
            StepEvent::CompensationFailed => "mark its compensation failed",
        }
    }
}

/// A step event that the step's current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} step cannot {} ({})", .event.verb(), step_hint(*.from, *.event))]
pub struct IllegalStepTransition {
    pub from: StepStatus,
    pub event: StepEvent,
}

fn step_hint(from: StepStatus, event: StepEvent) -> &'static str {
    match (from, event) {
        (StepStatus::Running, StepEvent::Start) => {
            "another executor started it, or it was interrupted: retry it with the attempt you saw, or compensate it"
        }
        (StepStatus::Pending, StepEvent::Succeed | StepEvent::Fail) => {
            "a step is started (and persisted) before it runs"
        }
        (StepStatus::Compensated | StepStatus::Skipped | StepStatus::Succeeded, _) => {
            "it is finished"
        }
        _ => "see the step state machine in lockstep-store's state module",
    }
}

/// The step state machine: where `event` takes a step in status `from`.
pub fn step_transition(
    from: StepStatus,
    event: StepEvent,
) -> Result<StepStatus, IllegalStepTransition> {
    use StepEvent as E;
    use StepStatus as S;
    let to = match (from, event) {
        (S::Pending, E::Start) => S::Running,
        (S::Pending, E::Skip) => S::Skipped,
        (S::Running, E::Succeed) => S::Succeeded,
        (S::Running, E::Fail) => S::Failed,
        (S::Running | S::Failed, E::Retry) => S::Running,
        (S::Running | S::Succeeded | S::Failed, E::Compensate) => S::Compensating,
        (S::Compensating, E::CompensationSucceeded) => S::Compensated,
        (S::Compensating, E::CompensationFailed) => S::Failed,
        _ => return Err(IllegalStepTransition { from, event }),
    };
    Ok(to)
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    PendingApproval,
    Approved,
    Running,
    Succeeded,
    Failed,
    Cancelling,
    Cancelled,
    Compensated,
}

impl OperationState {
    pub const ALL: [OperationState; 8] = [
        OperationState::PendingApproval,
        OperationState::Approved,
        OperationState::Running,
        OperationState::Succeeded,
        OperationState::Failed,
        OperationState::Cancelling,
        OperationState::Cancelled,
        OperationState::Compensated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::PendingApproval => "pending_approval",
            OperationState::Approved => "approved",
            OperationState::Running => "running",
            OperationState::Succeeded => "succeeded",
            OperationState::Failed => "failed",
            OperationState::Cancelling => "cancelling",
            OperationState::Cancelled => "cancelled",
            OperationState::Compensated => "compensated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No event moves it any more... except `Failed`, which a later compensation may still
    /// turn into `Compensated`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OperationState::Succeeded
                | OperationState::Failed
                | OperationState::Cancelled
                | OperationState::Compensated
        )
    }

    /// The states an executor must pick up after a restart: approved but not started, running
    /// (a step may have been interrupted), or cancelling.
    pub fn needs_executor(self) -> bool {
        matches!(
            self,
            OperationState::Approved | OperationState::Running | OperationState::Cancelling
        )
    }
}

impl fmt::Display for OperationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationEvent {
    Approve,
    Start,
    Succeed,
    Fail,
    RequestCancel,
    ConfirmCancelled,
    Compensated,
    /// A cancel reached the executor after the point of no return: the source has changed,
    /// so the plan must be finished, not undone; the operation runs on.
    RefuseCancel,
}

impl OperationEvent {
    pub const ALL: [OperationEvent; 8] = [
        OperationEvent::Approve,
        OperationEvent::Start,
        OperationEvent::Succeed,
        OperationEvent::Fail,
        OperationEvent::RequestCancel,
        OperationEvent::ConfirmCancelled,
        OperationEvent::Compensated,
        OperationEvent::RefuseCancel,
    ];

    /// The audit log's `action` for this event.
    pub fn audit_action(self) -> &'static str {
        match self {
            OperationEvent::Approve => "operation.approved",
            OperationEvent::Start => "operation.started",
            OperationEvent::Succeed => "operation.succeeded",
            OperationEvent::Fail => "operation.failed",
            OperationEvent::RequestCancel => "operation.cancel_requested",
            OperationEvent::ConfirmCancelled => "operation.cancelled",
            OperationEvent::Compensated => "operation.compensated",
            OperationEvent::RefuseCancel => "operation.cancel_refused",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            OperationEvent::Approve => "be approved",
            OperationEvent::Start => "start",
            OperationEvent::Succeed => "succeed",
            OperationEvent::Fail => "fail",
            OperationEvent::RequestCancel => "be cancelled",
            OperationEvent::ConfirmCancelled => "be marked cancelled",
            OperationEvent::Compensated => "be marked compensated",
            OperationEvent::RefuseCancel => "refuse a cancel",
        }
    }
}

/// An operation event that the operation's current state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} operation cannot {}{}", .event.verb(), operation_hint(*.from, *.event))]
pub struct IllegalOperationTransition {
    pub from: OperationState,
    pub event: OperationEvent,
}

fn operation_hint(from: OperationState, event: OperationEvent) -> &'static str {
    match (from, event) {
        (OperationState::PendingApproval, OperationEvent::Start) => ": it needs an approval first",
        (OperationState::Cancelling, OperationEvent::RequestCancel) => {
            ": a cancel is already requested; the executor stops at the next safe point"
        }
        (OperationState::Approved | OperationState::Running, OperationEvent::Approve) => {
            ": it is already approved"
        }
        (s, _) if s.is_final() => ": it is finished",
        _ => "",
    }
}

/// The operation state machine: where `event` takes an operation in state `from`.
pub fn operation_transition(
    from: OperationState,
    event: OperationEvent,
) -> Result<OperationState, IllegalOperationTransition> {
    use OperationEvent as E;
    use OperationState as S;
    let to = match (from, event) {
        (S::PendingApproval, E::Approve) => S::Approved,
        (S::Approved, E::Start) => S::Running,
        (S::PendingApproval | S::Approved, E::RequestCancel) => S::Cancelled,
        (S::Running, E::RequestCancel) => S::Cancelling,
        (S::Running | S::Cancelling, E::Succeed) => S::Succeeded,
        (S::Running | S::Cancelling, E::Fail) => S::Failed,
        (S::Cancelling, E::ConfirmCancelled) => S::Cancelled,
        (S::Cancelling, E::RefuseCancel) => S::Running,
        (S::Running | S::Cancelling | S::Failed, E::Compensated) => S::Compensated,
        _ => return Err(IllegalOperationTransition { from, event }),
    };
    Ok(to)
}

/// Whether an operation in state `operation` lets a step move by `event`: new work (start,
/// retry) only while it runs; a running step may still record its end after a cancel was
/// requested; compensation and skipping also while cancelling and after a failure.
pub fn step_event_allowed(operation: OperationState, event: StepEvent) -> bool {
    use OperationState as S;
    use StepEvent as E;
    match event {
        E::Start | E::Retry => operation == S::Running,
        E::Succeed | E::Fail => matches!(operation, S::Running | S::Cancelling),
        E::Skip | E::Compensate | E::CompensationSucceeded | E::CompensationFailed => {
            matches!(operation, S::Running | S::Cancelling | S::Failed)
        }
    }
}

/// Whether the steps' statuses let the operation finish by `event`; the error says which
/// step is in the way and why. Events that do not finish an operation always pass.
pub fn completion_check(event: OperationEvent, steps: &[StepStatus]) -> Result<(), String> {
    use StepStatus as S;
    let (allowed, wanted): (&[StepStatus], &str) = match event {
        OperationEvent::Succeed => (
            &[S::Succeeded, S::Skipped],
            "every step must have succeeded or been skipped",
        ),
        OperationEvent::Compensated => (
            &[S::Compensated, S::Skipped],
            "every step must be compensated or skipped",
        ),
        OperationEvent::ConfirmCancelled | OperationEvent::Fail => (
            &[
                S::Pending,
                S::Succeeded,
                S::Failed,
                S::Compensated,
                S::Skipped,
            ],
            "no step may still be running or compensating",
        ),
        OperationEvent::Approve
        | OperationEvent::Start
        | OperationEvent::RequestCancel
        | OperationEvent::RefuseCancel => return Ok(()),
    };
    match steps.iter().position(|s| !allowed.contains(s)) {
        None => Ok(()),
        Some(index) => Err(format!("{wanted}, and step {index} is {}", steps[index])),
    }
}

/// Steps run in order: step `index` may start only when every step before it has succeeded
/// or been skipped. Returns the first step in the way.
pub fn start_order_check(earlier: &[StepStatus]) -> Result<(), (u32, StepStatus)> {
    match earlier
        .iter()
        .position(|s| !matches!(s, StepStatus::Succeeded | StepStatus::Skipped))
    {
        None => Ok(()),
        Some(i) => Err((u32::try_from(i).unwrap_or(u32::MAX), earlier[i])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn step_transitions_exhaustively() {
        use StepEvent as E;
        use StepStatus as S;
        // Every legal edge; every (status, event) pair not listed must be refused.
        let legal: HashMap<(S, E), S> = [
            ((S::Pending, E::Start), S::Running),
            ((S::Pending, E::Skip), S::Skipped),
            ((S::Running, E::Succeed), S::Succeeded),
            ((S::Running, E::Fail), S::Failed),
            ((S::Running, E::Retry), S::Running),
            ((S::Running, E::Compensate), S::Compensating),
            ((S::Succeeded, E::Compensate), S::Compensating),
            ((S::Failed, E::Retry), S::Running),
            ((S::Failed, E::Compensate), S::Compensating),
            ((S::Compensating, E::CompensationSucceeded), S::Compensated),
            ((S::Compensating, E::CompensationFailed), S::Failed),
        ]
        .into_iter()
        .collect();
        let mut checked = 0;
        for from in S::ALL {
            for event in E::ALL {
                let got = step_transition(from, event);
                match legal.get(&(from, event)) {
                    Some(to) => assert_eq!(got, Ok(*to), "{from:?} + {event:?}"),
                    None => assert_eq!(
                        got,
                        Err(IllegalStepTransition { from, event }),
                        "{from:?} + {event:?} must be illegal"
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 7 * 8);
        // Finished steps never move again.
        for event in E::ALL {
            assert!(step_transition(S::Compensated, event).is_err());
            assert!(step_transition(S::Skipped, event).is_err());
        }
    }

    #[test]
    fn operation_transitions_exhaustively() {
        use OperationEvent as E;
        use OperationState as S;
        let legal: HashMap<(S, E), S> = [
            ((S::PendingApproval, E::Approve), S::Approved),
            ((S::PendingApproval, E::RequestCancel), S::Cancelled),
            ((S::Approved, E::Start), S::Running),
            ((S::Approved, E::RequestCancel), S::Cancelled),
            ((S::Running, E::Succeed), S::Succeeded),
            ((S::Running, E::Fail), S::Failed),
            ((S::Running, E::RequestCancel), S::Cancelling),
            ((S::Running, E::Compensated), S::Compensated),
            ((S::Cancelling, E::ConfirmCancelled), S::Cancelled),
            ((S::Cancelling, E::RefuseCancel), S::Running),
            ((S::Cancelling, E::Succeed), S::Succeeded),
            ((S::Cancelling, E::Fail), S::Failed),
            ((S::Cancelling, E::Compensated), S::Compensated),
            ((S::Failed, E::Compensated), S::Compensated),
        ]
        .into_iter()
        .collect();
        let mut checked = 0;
        for from in S::ALL {
            for event in E::ALL {
                let got = operation_transition(from, event);
                match legal.get(&(from, event)) {
                    Some(to) => assert_eq!(got, Ok(*to), "{from:?} + {event:?}"),
                    None => assert_eq!(
                        got,
                        Err(IllegalOperationTransition { from, event }),
                        "{from:?} + {event:?} must be illegal"
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 8 * 8);
    }

    #[test]
    fn step_events_follow_the_operation_state() {
        use OperationState as O;
        use StepEvent as E;
        // (event, operation states that allow it); every other pair is refused.
        let allowed: &[(E, &[O])] = &[
            (E::Start, &[O::Running]),
            (E::Retry, &[O::Running]),
            (E::Succeed, &[O::Running, O::Cancelling]),
            (E::Fail, &[O::Running, O::Cancelling]),
            (E::Skip, &[O::Running, O::Cancelling, O::Failed]),
            (E::Compensate, &[O::Running, O::Cancelling, O::Failed]),
            (
                E::CompensationSucceeded,
                &[O::Running, O::Cancelling, O::Failed],
            ),
            (
                E::CompensationFailed,
                &[O::Running, O::Cancelling, O::Failed],
            ),
        ];
        assert_eq!(allowed.len(), E::ALL.len());
        for (event, states) in allowed {
            for op in O::ALL {
                assert_eq!(
                    step_event_allowed(op, *event),
                    states.contains(&op),
                    "{op:?} / {event:?}"
                );
            }
        }
    }

    #[test]
    fn completion_needs_the_steps_to_agree() {
        use OperationEvent as E;
        use StepStatus as S;
        let cases: &[(E, &[S], Option<&str>)] = &[
            (E::Succeed, &[S::Succeeded, S::Skipped], None),
            (E::Succeed, &[], None),
            (
                E::Succeed,
                &[S::Succeeded, S::Pending],
                Some("step 1 is pending"),
            ),
            (E::Succeed, &[S::Running], Some("step 0 is running")),
            (E::Compensated, &[S::Compensated, S::Skipped], None),
            (
                E::Compensated,
                &[S::Compensated, S::Succeeded],
                Some("step 1 is succeeded"),
            ),
            (E::ConfirmCancelled, &[S::Succeeded, S::Pending], None),
            (
                E::ConfirmCancelled,
                &[S::Succeeded, S::Running],
                Some("step 1 is running"),
            ),
            (
                E::Fail,
                &[S::Failed, S::Compensating],
                Some("step 1 is compensating"),
            ),
            (E::Fail, &[S::Succeeded, S::Failed, S::Pending], None),
            (E::Start, &[S::Running], None),
            (E::Approve, &[S::Compensating], None),
            (E::RequestCancel, &[S::Running], None),
        ];
        for (event, steps, problem) in cases {
            let got = completion_check(*event, steps);
            match problem {
                None => assert_eq!(got, Ok(()), "{event:?} {steps:?}"),
                Some(text) => {
                    let err = got.expect_err("must refuse");
                    assert!(err.contains(text), "{event:?} {steps:?}: {err}");
                }
            }
        }
    }

    #[test]
    fn steps_start_in_order() {
        use StepStatus as S;
        type Case<'a> = (&'a [S], Result<(), (u32, S)>);
        let cases: &[Case] = &[
            (&[], Ok(())),
            (&[S::Succeeded, S::Skipped], Ok(())),
            (&[S::Succeeded, S::Pending], Err((1, S::Pending))),
            (&[S::Running], Err((0, S::Running))),
            (&[S::Failed, S::Succeeded], Err((0, S::Failed))),
            (&[S::Succeeded, S::Compensated], Err((1, S::Compensated))),
        ];
        for (earlier, expected) in cases {
            assert_eq!(start_order_check(earlier), *expected, "{earlier:?}");
        }
    }

    #[test]
    fn names_round_trip_and_errors_read_well() {
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).expect("json"),
                serde_json::json!(s.as_str())
            );
        }
        for s in OperationState::ALL {
            assert_eq!(OperationState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).expect("json"),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(StepStatus::parse("RUNNING"), None);
        let err = step_transition(StepStatus::Running, StepEvent::Start).expect_err("illegal");
        assert!(
            err.to_string()
                .starts_with("a running step cannot start (another executor started it"),
            "{err}"
        );
        let err = operation_transition(OperationState::PendingApproval, OperationEvent::Start)
            .expect_err("illegal");
        assert_eq!(
            err.to_string(),
            "a pending_approval operation cannot start: it needs an approval first"
        );
    }
}
