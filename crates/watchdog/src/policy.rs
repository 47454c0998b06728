//! The restart policy and the reconcile step.
//!
//! [`decide`] is level-triggered like a kube-rs reconciler: it looks at what every connector is
//! now ([`ObservedState`]) and what the watchdog remembers ([`PolicyState`]), and returns the
//! actions to take and the new memory. It never sleeps or calls anything; the adapter polls,
//! calls `decide`, carries out the actions and keeps the memory for the next cycle.
//!
//! Rules:
//! * A permanent failure (see [`crate::classify`]) is never restarted: one alert with the cause
//!   and the fix, raised again only if the cause changes.
//! * A retriable failure is restarted (`includeTasks=true&onlyFailed=true`) after an exponential
//!   backoff: 0 for the first restart, then `initial * 2^(n-1)` capped at `max_delay` (Strimzi
//!   caps its waits at 60 minutes), each delay shortened by up to `jitter_fraction` with the
//!   jitter the caller passes in (so tests are deterministic). A database outage (connection
//!   refused / lost, database restarting, timeout) is one step further along: its first restart
//!   waits `initial` too, since restarting at once only finds the database still down.
//! * Recovery is confirmed, not assumed: a RUNNING task is no proof (Debezium retries a failed
//!   start inside a task Connect reports RUNNING). An incident ends with `Recovered` only once the
//!   connector and its tasks stayed RUNNING for `settle` and, when the adapter observes the
//!   connector's committed source position, that position moved since the incident began
//!   (without a move, after `reset_after`: an idle source without heartbeats cannot show one).
//! * Circuit breaker: `breaker_max_restarts` restarts within `breaker_window` open the circuit
//!   (one alert, no restarts); after `breaker_cooldown` it is half-open and allows one trial
//!   restart; a connector healthy for `reset_after` closes it and forgets the attempts.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::classify::{classify, Cause, Classification, FailureKind};

/// A connector on a Connect cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ConnectorKey {
    pub cluster: String,
    pub connector: String,
}

impl std::fmt::Display for ConnectorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cluster, self.connector)
    }
}

/// Connector and task states as Connect reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Running,
    Failed,
    Paused,
    Stopped,
    Restarting,
    Unassigned,
    Other,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Running,
        State::Failed,
        State::Paused,
        State::Stopped,
        State::Restarting,
        State::Unassigned,
        State::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            State::Running => "RUNNING",
            State::Failed => "FAILED",
            State::Paused => "PAUSED",
            State::Stopped => "STOPPED",
            State::Restarting => "RESTARTING",
            State::Unassigned => "UNASSIGNED",
            State::Other => "OTHER",
        }
    }

    /// Parses Connect's state text; unknown states are `Other`.
    pub fn parse(text: &str) -> State {
        State::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(State::Other)
    }
}

/// One task as observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedTask {
    pub id: u32,
    pub state: State,
    pub trace: Option<String>,
}

/// One connector as observed in this cycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedConnector {
    pub key: ConnectorKey,
    pub state: State,
    pub trace: Option<String>,
    pub tasks: Vec<ObservedTask>,
    /// The connector's committed source position (opaque: compared for equality only), when the
    /// adapter reads it; `None` when not observed. Used to confirm a recovery.
    pub position: Option<String>,
}

impl ObservedConnector {
    pub fn has_failure(&self) -> bool {
        self.state == State::Failed || self.tasks.iter().any(|t| t.state == State::Failed)
    }

    fn healthy(&self) -> bool {
        self.state == State::Running && self.tasks.iter().all(|t| t.state == State::Running)
    }

    /// The classification of the failure: the first permanent cause among the connector's and
    /// the failed tasks' traces, else the first retriable one.
    pub fn classify_failure(&self) -> Option<Classification> {
        let mut traces = Vec::new();
        if self.state == State::Failed {
            traces.push(self.trace.as_deref().unwrap_or(""));
        }
        for task in self.tasks.iter().filter(|t| t.state == State::Failed) {
            traces.push(task.trace.as_deref().unwrap_or(""));
        }
        let verdicts: Vec<Classification> = traces.into_iter().map(classify).collect();
        let permanent = verdicts
            .iter()
            .find(|c| c.kind == FailureKind::Permanent)
            .cloned();
        permanent.or_else(|| {
            // A known retriable cause is more useful than Unknown.
            verdicts
                .iter()
                .find(|c| c.cause != Cause::Unknown)
                .or(verdicts.first())
                .cloned()
        })
    }
}

/// Everything observed in one cycle. Connectors of clusters that could not be reached are
/// absent from `connectors` and listed in `unreachable`, so their memory is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ObservedState {
    pub connectors: Vec<ObservedConnector>,
    pub unreachable: Vec<String>,
}

/// Restart policy settings. Durations in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RestartPolicy {
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Each delay is shortened by up to this fraction (0..=1) times the jitter in [0, 1).
    pub jitter_fraction: f64,
    pub breaker_max_restarts: usize,
    pub breaker_window_ms: u64,
    pub breaker_cooldown_ms: u64,
    /// A connector RUNNING this long counts as recovered: attempts are forgotten.
    pub reset_after_ms: u64,
    /// An incident is reported recovered only after the connector stayed RUNNING this long
    /// (and its position moved, when observed).
    pub settle_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_delay_ms: 10_000,
            max_delay_ms: 60 * 60_000,
            jitter_fraction: 0.2,
            breaker_max_restarts: 5,
            breaker_window_ms: 30 * 60_000,
            breaker_cooldown_ms: 30 * 60_000,
            reset_after_ms: 10 * 60_000,
            settle_ms: 30_000,
        }
    }
}

impl RestartPolicy {
    /// Wait before restart number `attempt + 1` (`attempt` restarts already done).
    /// `jitter` is in [0, 1); values outside are clamped.
    pub fn delay_ms(&self, attempt: u32, jitter: f64) -> u64 {
        if attempt == 0 {
            return 0;
        }
        let exp = (attempt - 1).min(40);
        let base = self
            .initial_delay_ms
            .saturating_mul(1u64 << exp)
            .min(self.max_delay_ms);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cut = (base as f64 * self.jitter_fraction.clamp(0.0, 1.0) * jitter) as u64;
        base - cut.min(base)
    }

    /// Wait before restart number `attempt + 1` for a failure with this cause: a database
    /// outage skips the immediate first restart (see the module documentation).
    pub fn delay_for_ms(&self, cause: Cause, attempt: u32, jitter: f64) -> u64 {
        let step = if is_database_outage(cause) {
            attempt.saturating_add(1)
        } else {
            attempt
        };
        self.delay_ms(step, jitter)
    }
}

/// Causes that mean "the database is not there right now": restarting at once cannot help.
pub fn is_database_outage(cause: Cause) -> bool {
    matches!(
        cause,
        Cause::ConnectionRefused
            | Cause::ConnectionLost
            | Cause::DatabaseRestarting
            | Cause::Timeout
    )
}

/// Circuit breaker of one connector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Breaker {
    Closed,
    Open {
        since_ms: u64,
    },
    /// Cool-down over: one trial restart allowed (`tried` once it is spent).
    HalfOpen {
        tried: bool,
    },
}

/// What the watchdog remembers about one connector between cycles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectorMemory {
    /// Restarts since the connector was last healthy for `reset_after`.
    pub attempts: u32,
    pub first_failure_ms: Option<u64>,
    pub last_restart_ms: Option<u64>,
    /// Restart times inside the breaker window.
    pub recent_restarts: Vec<u64>,
    pub breaker: Breaker,
    pub healthy_since_ms: Option<u64>,
    /// The alert last raised (kind, cause), so an alert is raised once per incident.
    pub alerted: Option<(AlertKind, Cause)>,
    /// The failure cause of the incident in progress (until `Recovered`).
    pub incident: Option<Cause>,
    /// The source position first observed during the incident in progress.
    pub incident_position: Option<String>,
    /// The position moved away from `incident_position` while healthy.
    pub position_moved: bool,
}

impl Default for ConnectorMemory {
    fn default() -> Self {
        Self {
            attempts: 0,
            first_failure_ms: None,
            last_restart_ms: None,
            recent_restarts: Vec::new(),
            breaker: Breaker::Closed,
            healthy_since_ms: None,
            alerted: None,
            incident: None,
            incident_position: None,
            position_moved: false,
        }
    }
}

/// The watchdog's memory across cycles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyState {
    pub connectors: BTreeMap<ConnectorKey, ConnectorMemory>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A permanent failure: not restarted, an operator must fix it.
    PermanentFailure,
    /// Too many restarts in the window: restarts suspended until the cool-down ends.
    CircuitOpen,
    /// RUNNING but not streaming (replication slot unused), cause unknown: see
    /// [`crate::streaming`].
    NotStreaming,
}

impl AlertKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::PermanentFailure => "permanent_failure",
            AlertKind::CircuitOpen => "circuit_open",
            AlertKind::NotStreaming => "not_streaming",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub key: ConnectorKey,
    pub kind: AlertKind,
    pub cause: Cause,
    pub message: String,
    pub fix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `POST /connectors/{name}/restart?includeTasks=true&onlyFailed={only_failed}`.
    Restart {
        key: ConnectorKey,
        only_failed: bool,
        cause: Cause,
        attempt: u32,
    },
    Alert(Alert),
    /// A connector that had an incident is RUNNING again, confirmed (alerts resolve).
    Recovered {
        key: ConnectorKey,
        cause: Cause,
        restarts: u32,
        /// How long it had been RUNNING when recovery was confirmed.
        healthy_for_ms: u64,
        /// Whether its source position moved since the incident began; `None`: not observed.
        position_moved: Option<bool>,
    },
}

/// The reconcile step. `jitter` in [0, 1) is applied to every backoff computed in this cycle.
pub fn decide(
    observed: &ObservedState,
    memory: &PolicyState,
    now_ms: u64,
    policy: &RestartPolicy,
    jitter: f64,
) -> (Vec<Action>, PolicyState) {
    let mut actions = Vec::new();
    let mut next = PolicyState::default();
    for connector in &observed.connectors {
        let mut mem = memory
            .connectors
            .get(&connector.key)
            .cloned()
            .unwrap_or_default();
        step(connector, &mut mem, now_ms, policy, jitter, &mut actions);
        next.connectors.insert(connector.key.clone(), mem);
    }
    // Keep the memory of connectors on clusters that did not answer; forget deleted ones.
    for (key, mem) in &memory.connectors {
        if observed.unreachable.contains(&key.cluster) {
            next.connectors.insert(key.clone(), mem.clone());
        }
    }
    (actions, next)
}

fn step(
    connector: &ObservedConnector,
    mem: &mut ConnectorMemory,
    now: u64,
    policy: &RestartPolicy,
    jitter: f64,
    actions: &mut Vec<Action>,
) {
    let key = &connector.key;
    mem.recent_restarts
        .retain(|t| now.saturating_sub(*t) < policy.breaker_window_ms);

    let Some(verdict) = connector
        .has_failure()
        .then(|| connector.classify_failure())
        .flatten()
    else {
        if connector.healthy() {
            let since = *mem.healthy_since_ms.get_or_insert(now);
            let healthy_for = now.saturating_sub(since);
            if let Some(cause) = mem.incident {
                match (&connector.position, &mem.incident_position) {
                    (Some(now_at), None) => mem.incident_position = Some(now_at.clone()),
                    (Some(now_at), Some(base)) if now_at != base => mem.position_moved = true,
                    _ => {}
                }
                let observed = mem.incident_position.is_some();
                let confirmed = !observed || mem.position_moved;
                if healthy_for >= policy.settle_ms
                    && (confirmed || healthy_for >= policy.reset_after_ms)
                {
                    actions.push(Action::Recovered {
                        key: key.clone(),
                        cause,
                        restarts: mem.attempts,
                        healthy_for_ms: healthy_for,
                        position_moved: observed.then_some(mem.position_moved),
                    });
                    mem.incident = None;
                    mem.incident_position = None;
                    mem.position_moved = false;
                    mem.alerted = None;
                }
            }
            if healthy_for >= policy.reset_after_ms {
                mem.attempts = 0;
                mem.first_failure_ms = None;
                mem.last_restart_ms = None;
                mem.breaker = Breaker::Closed;
            }
        } else {
            // PAUSED, STOPPED, RESTARTING, UNASSIGNED: nothing to do, nothing healthy either.
            mem.healthy_since_ms = None;
        }
        return;
    };

    mem.healthy_since_ms = None;
    mem.incident = Some(verdict.cause);
    if mem.incident_position.is_none() {
        mem.incident_position = connector.position.clone();
    }
    let first_failure = *mem.first_failure_ms.get_or_insert(now);

    if verdict.kind == FailureKind::Permanent {
        raise(
            mem,
            actions,
            Alert {
                key: key.clone(),
                kind: AlertKind::PermanentFailure,
                cause: verdict.cause,
                message: format!(
                    "connector {key} failed with a permanent error ({}); the watchdog will not restart it",
                    verdict.cause.as_str()
                ),
                fix: verdict.fix.to_string(),
            },
        );
        return;
    }

    // Retriable: circuit breaker first.
    match mem.breaker {
        Breaker::Open { since_ms } => {
            if now.saturating_sub(since_ms) < policy.breaker_cooldown_ms {
                return;
            }
            mem.breaker = Breaker::HalfOpen { tried: false };
        }
        Breaker::HalfOpen { tried: true } => {
            // The trial restart did not bring it back: open again.
            if mem
                .last_restart_ms
                .is_some_and(|t| now.saturating_sub(t) >= policy.delay_ms(1, jitter))
            {
                open(mem, key, verdict.cause, now, actions, policy);
            }
            return;
        }
        _ => {}
    }

    let half_open = matches!(mem.breaker, Breaker::HalfOpen { .. });
    if !half_open {
        let since = mem.last_restart_ms.unwrap_or(first_failure);
        let due = since.saturating_add(policy.delay_for_ms(verdict.cause, mem.attempts, jitter));
        if now < due {
            return;
        }
        if mem.recent_restarts.len() >= policy.breaker_max_restarts {
            open(mem, key, verdict.cause, now, actions, policy);
            return;
        }
    }
    mem.attempts = mem.attempts.saturating_add(1);
    mem.last_restart_ms = Some(now);
    mem.recent_restarts.push(now);
    if half_open {
        mem.breaker = Breaker::HalfOpen { tried: true };
    }
    actions.push(Action::Restart {
        key: key.clone(),
        only_failed: true,
        cause: verdict.cause,
        attempt: mem.attempts,
    });
}

fn open(
    mem: &mut ConnectorMemory,
    key: &ConnectorKey,
    cause: Cause,
    now: u64,
    actions: &mut Vec<Action>,
    policy: &RestartPolicy,
) {
    mem.breaker = Breaker::Open { since_ms: now };
    mem.alerted = None; // a re-opened circuit is a new alert
    raise(
        mem,
        actions,
        Alert {
            key: key.clone(),
            kind: AlertKind::CircuitOpen,
            cause,
            message: format!(
                "connector {key} keeps failing ({}) after {} restart(s); restarts are suspended for {} s",
                cause.as_str(),
                mem.attempts,
                policy.breaker_cooldown_ms / 1000
            ),
            fix: "look at the connector's trace (`lockstep connect status`) and the source database; restart it by hand once the cause is gone".into(),
        },
    );
}

fn raise(mem: &mut ConnectorMemory, actions: &mut Vec<Action>, alert: Alert) {
    let id = (alert.kind, alert.cause);
    if mem.alerted == Some(id) {
        return;
    }
    mem.alerted = Some(id);
    actions.push(Action::Alert(alert));
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &str = "org.postgresql.util.PSQLException: Connection to pg:5432 refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.";
    const AUTH: &str =
        "org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"cdc\"";
    /// Retriable, but not a database outage: the backoff starts with an immediate restart.
    const REBALANCE: &str = "org.apache.kafka.connect.runtime.distributed.RebalanceNeededException: Request cannot be completed because a rebalance is expected";

    fn key() -> ConnectorKey {
        ConnectorKey {
            cluster: "main".into(),
            connector: "orders".into(),
        }
    }

    fn observed(state: State, task: State, trace: Option<&str>) -> ObservedState {
        observed_at(state, task, trace, None)
    }

    /// As `observed`, with the connector's committed source position.
    fn observed_at(
        state: State,
        task: State,
        trace: Option<&str>,
        position: Option<&str>,
    ) -> ObservedState {
        ObservedState {
            connectors: vec![ObservedConnector {
                key: key(),
                state,
                trace: None,
                tasks: vec![ObservedTask {
                    id: 0,
                    state: task,
                    trace: trace.map(str::to_string),
                }],
                position: position.map(str::to_string),
            }],
            unreachable: vec![],
        }
    }

    fn policy() -> RestartPolicy {
        RestartPolicy {
            initial_delay_ms: 1_000,
            max_delay_ms: 8_000,
            jitter_fraction: 0.5,
            breaker_max_restarts: 4,
            breaker_window_ms: 60_000,
            breaker_cooldown_ms: 120_000,
            reset_after_ms: 30_000,
            settle_ms: 5_000,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let p = policy();
        let table: &[(u32, f64, u64)] = &[
            (0, 0.0, 0),
            (1, 0.0, 1_000),
            (2, 0.0, 2_000),
            (3, 0.0, 4_000),
            (4, 0.0, 8_000),
            (10, 0.0, 8_000),
            (200, 0.0, 8_000),
            (2, 0.5, 1_500),
            (2, 0.999_999, 1_001),
            (2, 7.0, 1_000),
            (2, -1.0, 2_000),
            (2, f64::NAN, 2_000),
        ];
        for (attempt, jitter, want) in table {
            assert_eq!(
                p.delay_ms(*attempt, *jitter),
                *want,
                "attempt {attempt} jitter {jitter}"
            );
        }
        let strimzi = RestartPolicy::default();
        assert_eq!(
            strimzi.delay_ms(30, 0.0),
            60 * 60_000,
            "capped at 60 minutes"
        );
    }

    /// Runs `decide` once a second over `seconds`, with the observation produced by `world`.
    fn run(
        seconds: u64,
        mut world: impl FnMut(u64, &[Action]) -> ObservedState,
    ) -> Vec<(u64, Action)> {
        let p = policy();
        let mut memory = PolicyState::default();
        let mut all = Vec::new();
        let mut last: Vec<Action> = Vec::new();
        for s in 0..seconds {
            let now = s * 1000;
            let obs = world(now, &last);
            let (actions, next) = decide(&obs, &memory, now, &p, 0.0);
            memory = next;
            all.extend(actions.iter().cloned().map(|a| (now, a)));
            last = actions;
        }
        all
    }

    #[test]
    fn permanent_failures_alert_once_and_are_never_restarted() {
        let actions = run(600, |_, _| {
            observed(State::Running, State::Failed, Some(AUTH))
        });
        assert_eq!(actions.len(), 1, "{actions:?}");
        match &actions[0].1 {
            Action::Alert(alert) => {
                assert_eq!(alert.kind, AlertKind::PermanentFailure);
                assert_eq!(alert.cause, Cause::Authentication);
                assert!(alert.fix.contains("database.password"));
            }
            other => panic!("expected an alert, got {other:?}"),
        }
    }

    #[test]
    fn retriable_failures_restart_with_backoff_then_open_the_circuit() {
        let actions = run(100, |_, _| {
            observed(State::Running, State::Failed, Some(REBALANCE))
        });
        let restarts: Vec<u64> = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Restart { .. }))
            .map(|(t, _)| *t)
            .collect();
        // 0, +1 s, +2 s, +4 s; the fifth would exceed 4 restarts in the 60 s window.
        assert_eq!(restarts, vec![0, 1_000, 3_000, 7_000]);
        let alerts: Vec<_> = actions
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Alert(alert) => Some((*t, alert.kind, alert.cause)),
                _ => None,
            })
            .collect();
        assert_eq!(
            alerts,
            vec![(15_000, AlertKind::CircuitOpen, Cause::Rebalance)]
        );
        assert!(actions.iter().all(|(_, a)| match a {
            Action::Restart { only_failed, .. } => *only_failed,
            _ => true,
        }));
    }

    #[test]
    fn half_open_allows_one_trial_then_reopens() {
        let actions = run(400, |_, _| {
            observed(State::Running, State::Failed, Some(REBALANCE))
        });
        let restarts: Vec<u64> = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Restart { .. }))
            .map(|(t, _)| *t)
            .collect();
        // Opened at 15 s; cool-down 120 s → trial at 135 s; reopened 1 s later; trials at
        // 256 s and 377 s, each followed by a re-open.
        assert_eq!(
            restarts,
            vec![0, 1_000, 3_000, 7_000, 135_000, 256_000, 377_000]
        );
        let opens = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Alert(al) if al.kind == AlertKind::CircuitOpen))
            .count();
        assert_eq!(opens, 4);
    }

    #[test]
    fn a_database_outage_waits_one_backoff_step_before_the_first_restart() {
        // (trace, restart times over 30 s of the same failure). Breaker: 4 restarts per 60 s.
        let table: &[(&str, &[u64])] = &[
            (REBALANCE, &[0, 1_000, 3_000, 7_000]),
            (REFUSED, &[1_000, 3_000, 7_000, 15_000]),
            (
                "org.postgresql.util.PSQLException: FATAL: the database system is shutting down",
                &[1_000, 3_000, 7_000, 15_000],
            ),
            (
                "org.postgresql.util.PSQLException: An I/O error occurred while sending to the backend.",
                &[1_000, 3_000, 7_000, 15_000],
            ),
        ];
        for (trace, want) in table {
            let actions = run(30, |_, _| {
                observed(State::Running, State::Failed, Some(trace))
            });
            let restarts: Vec<u64> = actions
                .iter()
                .filter(|(_, a)| matches!(a, Action::Restart { .. }))
                .map(|(t, _)| *t)
                .collect();
            assert_eq!(&restarts, want, "{trace}");
        }
        let p = policy();
        assert_eq!(p.delay_for_ms(Cause::ConnectionRefused, 0, 0.0), 1_000);
        assert_eq!(p.delay_for_ms(Cause::Rebalance, 0, 0.0), 0);
        assert_eq!(p.delay_for_ms(Cause::Timeout, 1, 0.0), 2_000);
    }

    fn summary(actions: &[(u64, Action)]) -> Vec<(u64, &'static str)> {
        actions
            .iter()
            .map(|(t, a)| {
                (
                    *t,
                    match a {
                        Action::Restart { attempt: 1, .. } => "restart#1",
                        Action::Restart { .. } => "restart#n",
                        Action::Alert(_) => "alert",
                        Action::Recovered {
                            position_moved: None,
                            ..
                        } => "recovered",
                        Action::Recovered {
                            position_moved: Some(true),
                            ..
                        } => "recovered(moved)",
                        Action::Recovered {
                            position_moved: Some(false),
                            ..
                        } => "recovered(unmoved)",
                    },
                )
            })
            .collect()
    }

    #[test]
    fn recovery_is_confirmed_by_a_settle_period_and_a_moving_position() {
        type World = Box<dyn Fn(u64) -> ObservedState>;
        /// (name, seconds to run, the world, the expected actions).
        type Case = (&'static str, u64, World, Vec<(u64, &'static str)>);
        let failed = |pos: Option<&'static str>| {
            observed_at(State::Running, State::Failed, Some(REFUSED), pos)
        };
        let running =
            |pos: Option<&'static str>| observed_at(State::Running, State::Running, None, pos);
        let table: Vec<Case> = vec![
            (
                // No position observed: RUNNING for the settle period (5 s) is the proof.
                // Healthy for more than 30 s: the next incident starts from attempt 1 again.
                "settle only, then a new incident",
                110,
                Box::new(move |now| {
                    if (5_000..100_000).contains(&now) {
                        running(None)
                    } else {
                        failed(None)
                    }
                }),
                vec![
                    (1_000, "restart#1"),
                    (3_000, "restart#n"),
                    (10_000, "recovered"),
                    (101_000, "restart#1"),
                    (103_000, "restart#n"),
                    (107_000, "restart#n"),
                ],
            ),
            (
                // The fault test's course: the database is down from 0 to 20 s; the task fails,
                // is restarted and then shows RUNNING while Debezium retries inside it; the
                // position moves only once the database is back and changes flow (25 s).
                "RUNNING while the database is still down is not recovery",
                60,
                Box::new(move |now| match now {
                    0..=1_999 => failed(Some("lsn=100")),
                    2_000..=24_999 => running(Some("lsn=100")),
                    _ => running(Some("lsn=180")),
                }),
                vec![(1_000, "restart#1"), (25_000, "recovered(moved)")],
            ),
            (
                // The position moves right after the restart: still the settle period first.
                "a moving position still waits for the settle period",
                30,
                Box::new(move |now| match now {
                    0..=1_999 => failed(Some("lsn=100")),
                    _ => running(Some(if now < 3_000 { "lsn=100" } else { "lsn=150" })),
                }),
                vec![(1_000, "restart#1"), (7_000, "recovered(moved)")],
            ),
            (
                // An idle source without heartbeats never moves: recovered after reset_after
                // (30 s of RUNNING), saying the position did not move.
                "a position that never moves ends the incident after reset_after",
                60,
                Box::new(move |now| {
                    if now < 2_000 {
                        failed(Some("lsn=100"))
                    } else {
                        running(Some("lsn=100"))
                    }
                }),
                vec![(1_000, "restart#1"), (32_000, "recovered(unmoved)")],
            ),
            (
                // RUNNING for less than the settle period, then FAILED again: one incident,
                // the backoff goes on, no recovery in between.
                "flapping is one incident",
                20,
                Box::new(move |now| match now {
                    2_000..=3_999 | 5_000..=5_999 => running(None),
                    _ => failed(None),
                }),
                vec![
                    (1_000, "restart#1"),
                    (4_000, "restart#n"),
                    (8_000, "restart#n"),
                    (16_000, "restart#n"),
                ],
            ),
        ];
        for (name, seconds, world, want) in table {
            let actions = run(seconds, |now, _| world(now));
            assert_eq!(summary(&actions), want, "{name}: {actions:?}");
        }
    }

    #[test]
    fn unreachable_clusters_keep_their_memory_and_deleted_connectors_are_forgotten() {
        let p = policy();
        let (_, memory) = decide(
            &observed(State::Running, State::Failed, Some(REBALANCE)),
            &PolicyState::default(),
            0,
            &p,
            0.0,
        );
        assert_eq!(memory.connectors[&key()].attempts, 1);
        let away = ObservedState {
            connectors: vec![],
            unreachable: vec!["main".into()],
        };
        let (actions, kept) = decide(&away, &memory, 1_000, &p, 0.0);
        assert!(actions.is_empty());
        assert_eq!(kept, memory);
        let (_, gone) = decide(&ObservedState::default(), &memory, 1_000, &p, 0.0);
        assert!(gone.connectors.is_empty());
    }

    #[test]
    fn paused_and_stopped_connectors_are_left_alone() {
        for state in [
            State::Paused,
            State::Stopped,
            State::Unassigned,
            State::Restarting,
        ] {
            let actions = run(30, |_, _| observed(state, state, None));
            assert!(actions.is_empty(), "{state:?}: {actions:?}");
        }
    }

    #[test]
    fn a_failed_connector_instance_counts_and_permanent_tasks_win() {
        let mut obs = observed(State::Failed, State::Failed, Some(REFUSED));
        obs.connectors[0].tasks.push(ObservedTask {
            id: 1,
            state: State::Failed,
            trace: Some(AUTH.into()),
        });
        let verdict = obs.connectors[0].classify_failure().unwrap();
        assert_eq!(verdict.cause, Cause::Authentication);
        let connector_only = observed(State::Failed, State::Running, None);
        assert!(connector_only.connectors[0].has_failure());
        assert_eq!(
            connector_only.connectors[0]
                .classify_failure()
                .unwrap()
                .cause,
            Cause::Unknown
        );
    }

    #[test]
    fn state_parsing() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), s);
        }
        assert_eq!(State::parse("SOMETHING_NEW"), State::Other);
    }
}
