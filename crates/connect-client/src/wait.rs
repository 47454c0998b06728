//! What `wait_for_state` waits for, and the pure check of one status snapshot.

use std::fmt;
use std::time::Duration;

use crate::config::scrub_text;
use crate::error::truncate;
use crate::model::{ConnectorState, ConnectorStateInfo};

/// Expectation on the tasks of a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TasksExpectation {
    /// Tasks are not checked.
    Any,
    /// At least `min_count` tasks exist and every task is in `state`.
    AllIn {
        /// Required state of every task.
        state: ConnectorState,
        /// Minimum number of tasks.
        min_count: usize,
    },
    /// The connector has no tasks (what STOPPED looks like once settled).
    None,
}

/// A connector state (and task states) to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedState {
    /// Required state of the connector instance.
    pub connector: ConnectorState,
    /// Required task states.
    pub tasks: TasksExpectation,
    /// Return [`crate::ConnectError::ConnectorFailed`] as soon as the
    /// connector or a task is FAILED (unless FAILED is what is expected).
    pub fail_fast: bool,
}

impl ExpectedState {
    /// Connector RUNNING with at least one task, all RUNNING.
    pub fn running() -> Self {
        Self {
            connector: ConnectorState::Running,
            tasks: TasksExpectation::AllIn {
                state: ConnectorState::Running,
                min_count: 1,
            },
            fail_fast: true,
        }
    }

    /// Connector PAUSED and all its tasks PAUSED.
    pub fn paused() -> Self {
        Self {
            connector: ConnectorState::Paused,
            tasks: TasksExpectation::AllIn {
                state: ConnectorState::Paused,
                min_count: 0,
            },
            fail_fast: true,
        }
    }

    /// Connector STOPPED with no tasks: the precondition for offset changes.
    pub fn stopped() -> Self {
        Self {
            connector: ConnectorState::Stopped,
            tasks: TasksExpectation::None,
            fail_fast: true,
        }
    }

    /// Checks one status snapshot.
    pub fn evaluate(&self, status: &ConnectorStateInfo) -> Verdict {
        if self.fail_fast && self.connector != ConnectorState::Failed {
            if status.connector.state == ConnectorState::Failed {
                return Verdict::Failed(format!(
                    "the connector instance is FAILED{}",
                    trace_hint(status.connector.trace.as_deref())
                ));
            }
            if let Some(t) = status.failed_tasks().next() {
                return Verdict::Failed(format!(
                    "task {} is FAILED{}",
                    t.id,
                    trace_hint(t.trace.as_deref())
                ));
            }
        }
        if status.connector.state != self.connector {
            return Verdict::Pending(describe(status));
        }
        let tasks_ok = match &self.tasks {
            TasksExpectation::Any => true,
            TasksExpectation::None => status.tasks.is_empty(),
            TasksExpectation::AllIn { state, min_count } => {
                status.tasks.len() >= *min_count && status.tasks.iter().all(|t| &t.state == state)
            }
        };
        if tasks_ok {
            Verdict::Reached
        } else {
            Verdict::Pending(describe(status))
        }
    }
}

impl fmt::Display for ExpectedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connector {}", self.connector)?;
        match &self.tasks {
            TasksExpectation::Any => Ok(()),
            TasksExpectation::None => write!(f, " with no tasks"),
            TasksExpectation::AllIn { state, min_count } if *min_count > 0 => {
                write!(f, " with at least {min_count} task(s), all {state}")
            }
            TasksExpectation::AllIn { state, .. } => write!(f, " with all tasks {state}"),
        }
    }
}

/// Result of checking one status snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The expected state is reached.
    Reached,
    /// Not yet; carries a summary of what was observed.
    Pending(String),
    /// Something FAILED; carries which instance and the first trace line.
    Failed(String),
}

/// A compact summary such as `connector RUNNING, tasks [0: RUNNING, 1: FAILED]`.
pub(crate) fn describe(status: &ConnectorStateInfo) -> String {
    let tasks: Vec<String> = status
        .tasks
        .iter()
        .map(|t| format!("{}: {}", t.id, t.state))
        .collect();
    format!(
        "connector {}, tasks [{}]",
        status.connector.state,
        tasks.join(", ")
    )
}

/// First line of a Java stack trace (the exception and its message), scrubbed.
fn trace_hint(trace: Option<&str>) -> String {
    match trace.and_then(|t| t.lines().next()).map(str::trim) {
        Some(line) if !line.is_empty() => format!(": {}", truncate(&scrub_text(line), 300)),
        _ => String::new(),
    }
}

/// Poll interval for attempt `n` (0-based): 250 ms doubling up to 5 s, never
/// beyond the time left.
pub(crate) fn poll_interval(n: u32, remaining: Duration) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1u32 << n.min(5));
    base.min(Duration::from_secs(5)).min(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConnectorStatus, TaskStatus};

    fn status(connector: ConnectorState, tasks: &[ConnectorState]) -> ConnectorStateInfo {
        ConnectorStateInfo {
            name: "inv".into(),
            connector: ConnectorStatus {
                state: connector,
                worker_id: Some("w1:8083".into()),
                trace: None,
                version: None,
            },
            tasks: tasks
                .iter()
                .enumerate()
                .map(|(i, s)| TaskStatus {
                    id: i as u32,
                    state: s.clone(),
                    worker_id: Some("w1:8083".into()),
                    trace: (s == &ConnectorState::Failed).then(|| {
                        "org.apache.kafka.connect.errors.ConnectException: connection to postgres://app:hunter2@db failed\n\tat io.debezium...".to_string()
                    }),
                    version: None,
                })
                .collect(),
            connector_type: None,
        }
    }

    #[test]
    fn verdict_table() {
        use ConnectorState::*;
        let cases: Vec<(ExpectedState, ConnectorStateInfo, &str)> = vec![
            (
                ExpectedState::running(),
                status(Running, &[Running]),
                "reached",
            ),
            (ExpectedState::running(), status(Running, &[]), "pending"),
            (
                ExpectedState::running(),
                status(Running, &[Running, Unassigned]),
                "pending",
            ),
            (
                ExpectedState::running(),
                status(Running, &[Running, Failed]),
                "failed",
            ),
            (ExpectedState::running(), status(Failed, &[]), "failed"),
            (
                ExpectedState::paused(),
                status(Paused, &[Paused, Paused]),
                "reached",
            ),
            (ExpectedState::paused(), status(Paused, &[]), "reached"),
            (
                ExpectedState::paused(),
                status(Running, &[Running]),
                "pending",
            ),
            (ExpectedState::stopped(), status(Stopped, &[]), "reached"),
            (
                ExpectedState::stopped(),
                status(Stopped, &[Running]),
                "pending",
            ),
            (
                ExpectedState::stopped(),
                status(Unknown("STOPPING".into()), &[]),
                "pending",
            ),
            (
                ExpectedState {
                    connector: Failed,
                    tasks: TasksExpectation::Any,
                    fail_fast: true,
                },
                status(Failed, &[]),
                "reached",
            ),
            (
                ExpectedState {
                    fail_fast: false,
                    ..ExpectedState::running()
                },
                status(Running, &[Failed]),
                "pending",
            ),
        ];
        for (expected, st, want) in cases {
            let got = match expected.evaluate(&st) {
                Verdict::Reached => "reached",
                Verdict::Pending(_) => "pending",
                Verdict::Failed(_) => "failed",
            };
            assert_eq!(got, want, "{expected} vs {}", describe(&st));
        }
    }

    #[test]
    fn failure_detail_has_first_trace_line_scrubbed() {
        let v = ExpectedState::running()
            .evaluate(&status(ConnectorState::Running, &[ConnectorState::Failed]));
        let Verdict::Failed(detail) = v else {
            panic!("expected failure, got {v:?}");
        };
        assert!(detail
            .starts_with("task 0 is FAILED: org.apache.kafka.connect.errors.ConnectException"));
        assert!(!detail.contains("hunter2"), "{detail}");
        assert!(!detail.contains("io.debezium"), "{detail}");
    }

    #[test]
    fn display_and_poll_interval() {
        assert_eq!(
            ExpectedState::stopped().to_string(),
            "connector STOPPED with no tasks"
        );
        assert_eq!(
            ExpectedState::running().to_string(),
            "connector RUNNING with at least 1 task(s), all RUNNING"
        );
        assert_eq!(
            poll_interval(0, Duration::from_secs(60)),
            Duration::from_millis(250)
        );
        assert_eq!(
            poll_interval(3, Duration::from_secs(60)),
            Duration::from_secs(2)
        );
        assert_eq!(
            poll_interval(10, Duration::from_secs(60)),
            Duration::from_secs(5)
        );
        assert_eq!(
            poll_interval(10, Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
