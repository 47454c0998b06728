//! RUNNING but not streaming: a Debezium PostgreSQL connector whose replication slot is not in
//! use.
//!
//! Debezium wraps an error of the task's *start* (the first JDBC connection: a wrong password,
//! a refused connection) in a `RetriableException` and retries it inside the task, while
//! Connect reports the task RUNNING. Connect's status then never shows FAILED, so
//! [`crate::policy::decide`] sees a healthy connector. The replication slot tells the truth: a
//! streaming connector holds its slot (`active = true` in `pg_replication_slots`). A connector
//! RUNNING for longer than a grace period while its slot is missing or inactive is **not
//! streaming**.
//!
//! The adapter then looks for the cause by logging in to the source with the connector's own
//! `database.*` settings ([`login_target`]); [`diagnose`] turns the outcome into a verdict:
//! SQLSTATE `28P01` / `28000` is a permanent authentication failure (one alert, never a
//! restart), a refused connection or a timeout is retriable (Debezium retries; no alert), and
//! anything else, or a password the watchdog cannot read (a `${...}` config-provider
//! reference), is "cause unknown, check the task log" (one alert).
//!
//! Everything here is pure: the adapter passes observations and the clock in.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::classify::{Cause, FailureKind};
use crate::health::SlotSample;
use crate::policy::{Alert, AlertKind, ConnectorKey};

/// `connector.class` of Debezium's PostgreSQL connector.
pub const POSTGRES_CONNECTOR_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";
/// Debezium's default `slot.name`.
pub const DEFAULT_SLOT_NAME: &str = "debezium";
/// Debezium's default `database.port`.
pub const DEFAULT_PORT: u16 = 5432;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StreamingPolicy {
    /// How long a connector may be RUNNING without holding its slot (start-up, snapshot
    /// set-up, a task restart) before it counts as not streaming.
    pub grace_ms: u64,
    /// How often a retriable or unknown cause is probed again while the incident lasts. A
    /// rejected login is never probed again in the same incident (it could lock the account).
    pub reprobe_ms: u64,
}

impl Default for StreamingPolicy {
    fn default() -> Self {
        Self {
            grace_ms: 60_000,
            reprobe_ms: 5 * 60_000,
        }
    }
}

/// Where a Debezium PostgreSQL connector streams from, read from its Connect config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotRef {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub slot: String,
}

impl std::fmt::Display for SlotRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "slot {} on {}:{}/{}",
            self.slot, self.host, self.port, self.database
        )
    }
}

/// The slot of a Debezium PostgreSQL source connector; `None` for any other connector, or
/// when `database.hostname` / `database.dbname` are missing or `database.port` is not a port
/// (Connect would not run such a connector either).
pub fn postgres_slot(config: &BTreeMap<String, String>) -> Option<SlotRef> {
    if config.get("connector.class").map(|c| c.trim()) != Some(POSTGRES_CONNECTOR_CLASS) {
        return None;
    }
    let target = login_target(config).ok()?;
    let slot = config
        .get("slot.name")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SLOT_NAME)
        .to_string();
    Some(SlotRef {
        host: target.host,
        port: target.port,
        database: target.database,
        slot,
    })
}

/// The connector's slot as seen on the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotObservation {
    /// A process streams from it.
    Active,
    /// It exists, nobody streams from it.
    Inactive,
    /// No logical slot of that name in that database.
    Missing,
    /// The watchdog could not look (no source login configured for that host, query failed).
    NotObserved,
}

/// The slot's state among the rows of [`crate::health::SLOT_RETENTION_SQL`] read from the
/// connector's source server.
pub fn observe_slot(rows: &[SlotSample], slot: &SlotRef) -> SlotObservation {
    match rows
        .iter()
        .find(|r| r.slot == slot.slot && r.database == slot.database)
    {
        Some(row) if row.active => SlotObservation::Active,
        Some(_) => SlotObservation::Inactive,
        None => SlotObservation::Missing,
    }
}

/// The verdict of one cycle on one connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "streaming", rename_all = "snake_case")]
pub enum Streaming {
    /// Not RUNNING (or a task is not): the restart policy's business, not ours.
    NotRunning,
    /// RUNNING, the slot unused for less than the grace period so far (start-up, a restart
    /// or rebalance the watchdog did not see as such).
    Starting { unused_for_ms: u64 },
    /// The slot is in use.
    Streaming,
    /// RUNNING, slot not observed: no verdict.
    Unobserved { running_for_ms: u64 },
    /// RUNNING while the slot stayed missing or inactive for the grace period or longer.
    NotStreaming {
        slot: SlotObservation,
        unused_for_ms: u64,
    },
}

/// (RUNNING since, slot seen unused since — both while RUNNING —, the slot now) → verdict.
/// Either time is `None` when the condition does not hold.
pub fn evaluate(
    running_since_ms: Option<u64>,
    unused_since_ms: Option<u64>,
    slot: SlotObservation,
    now_ms: u64,
    policy: &StreamingPolicy,
) -> Streaming {
    let Some(running_since) = running_since_ms else {
        return Streaming::NotRunning;
    };
    match slot {
        SlotObservation::Active => Streaming::Streaming,
        SlotObservation::NotObserved => Streaming::Unobserved {
            running_for_ms: now_ms.saturating_sub(running_since),
        },
        SlotObservation::Inactive | SlotObservation::Missing => {
            let since = unused_since_ms.unwrap_or(now_ms).max(running_since);
            let unused_for_ms = now_ms.saturating_sub(since);
            if unused_for_ms < policy.grace_ms {
                Streaming::Starting { unused_for_ms }
            } else {
                Streaming::NotStreaming {
                    slot,
                    unused_for_ms,
                }
            }
        }
    }
}

/// The connector's login as its Connect config gives it (the password stays in the config:
/// the adapter reads it only to log in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoginTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
}

impl std::fmt::Display for LoginTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {} for {}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// `database.hostname`, `database.port` (default 5432), `database.user`, `database.dbname`;
/// the error names the key that is missing or invalid.
pub fn login_target(config: &BTreeMap<String, String>) -> Result<LoginTarget, String> {
    let get = |key: &str| config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let host = get("database.hostname").ok_or("database.hostname is not set")?;
    let port = match get("database.port") {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("database.port '{p}' is not a port number"))?,
    };
    let user = get("database.user").ok_or("database.user is not set")?;
    let database = get("database.dbname").ok_or("database.dbname is not set")?;
    Ok(LoginTarget {
        host: host.to_string(),
        port,
        user: user.to_string(),
        database: database.to_string(),
    })
}

/// How `database.password` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordForm {
    Literal,
    /// `${provider:path:key}`: resolved by the Connect worker, not by the watchdog.
    ConfigProvider,
    Absent,
}

pub fn password_form(value: Option<&str>) -> PasswordForm {
    match value {
        None => PasswordForm::Absent,
        Some(v) if v.contains("${") && v.contains('}') => PasswordForm::ConfigProvider,
        Some(_) => PasswordForm::Literal,
    }
}

/// What the connector's committed source offset says, read when its login works: during the
/// initial snapshot Debezium does not stream from the slot yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommittedPosition {
    /// No offset committed yet (a snapshot that has not flushed one, or a start that failed).
    Nothing,
    /// The offset says a snapshot is in progress (Debezium's `snapshot` offset key).
    Snapshot,
    /// A streaming position.
    Streaming,
    /// The offsets could not be read.
    NotRead,
}

/// What logging in with the connector's own credentials gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "login", rename_all = "snake_case")]
pub enum LoginOutcome {
    /// The login works: the cause is elsewhere (or a snapshot runs: see the position).
    Accepted {
        position: CommittedPosition,
    },
    /// The server answered with an error: its SQLSTATE and message (servers never echo the
    /// password).
    Rejected {
        sqlstate: String,
        message: String,
    },
    Refused,
    TimedOut,
    /// Any other failure (TLS, DNS, protocol), as text without the password.
    Failed {
        message: String,
    },
    /// Not tried: the password is a config-provider reference or absent.
    NotTried {
        form: PasswordForm,
    },
}

/// The cause of a not-streaming connector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub kind: FailureKind,
    pub cause: Cause,
    pub message: String,
    /// What to do; empty for retriable causes.
    pub fix: String,
    /// The slot is unused because a snapshot runs (or probably starts): not an incident.
    pub snapshot: bool,
}

const UNKNOWN_FIX: &str = "check the task log on the Connect worker (Debezium retries its start inside a task Connect shows RUNNING), then fix the cause and restart the connector";

/// Outcome of the login probe → the cause, the message and the fix.
pub fn diagnose(
    key: &ConnectorKey,
    slot: &SlotRef,
    verdict: &Streaming,
    target: &LoginTarget,
    outcome: &LoginOutcome,
) -> Diagnosis {
    let (slot_state, unused_for_ms) = match verdict {
        Streaming::NotStreaming {
            slot: SlotObservation::Missing,
            unused_for_ms,
        } => ("has been missing", *unused_for_ms),
        Streaming::NotStreaming { unused_for_ms, .. } => ("has been unused", *unused_for_ms),
        _ => ("is not observed", 0),
    };
    let head = format!(
        "connector {key} is RUNNING but not streaming: its replication slot {} {slot_state} for {} s",
        slot.slot,
        unused_for_ms / 1000
    );
    let retriable = |cause: Cause, message: String, snapshot: bool| Diagnosis {
        kind: FailureKind::Retriable,
        cause,
        message,
        fix: String::new(),
        snapshot,
    };
    let unknown = |why: String| Diagnosis {
        fix: UNKNOWN_FIX.into(),
        ..retriable(
            Cause::Unknown,
            format!("{head}; cause unknown ({why})"),
            false,
        )
    };
    let snapshot = |why: &str| {
        retriable(
            Cause::Unknown,
            format!("{head}; the login of {target} works and {why}"),
            true,
        )
    };
    match outcome {
        LoginOutcome::Rejected { sqlstate, message }
            if sqlstate == "28P01"
                || (sqlstate == "28000" && !message.contains("no encryption")) =>
        {
            let (what, fix) = if sqlstate == "28P01" {
                (
                    format!("the password of {target} is rejected"),
                    format!(
                        "set database.password of connector {} (or the secret it references) to the current password of user {} on {}:{}, then restart the connector",
                        key.connector, target.user, target.host, target.port
                    ),
                )
            } else {
                (
                    format!("the login of {target} is refused"),
                    format!(
                        "allow user {} to log in to {}:{}/{} (pg_hba.conf, the role's LOGIN), or fix database.user of connector {}, then restart the connector",
                        target.user, target.host, target.port, target.database, key.connector
                    ),
                )
            };
            Diagnosis {
                kind: FailureKind::Permanent,
                cause: Cause::Authentication,
                message: format!("{head}; {what} (SQLSTATE {sqlstate}: {message})"),
                fix,
                snapshot: false,
            }
        }
        LoginOutcome::Rejected { sqlstate, message } => unknown(format!(
            "the watchdog's own login as {target} failed with SQLSTATE {sqlstate}: {message}"
        )),
        LoginOutcome::Refused => retriable(
            Cause::ConnectionRefused,
            format!(
                "{head}; {}:{} refuses connections (Debezium retries)",
                target.host, target.port
            ),
            false,
        ),
        LoginOutcome::TimedOut => retriable(
            Cause::Timeout,
            format!(
                "{head}; connecting to {}:{} timed out (Debezium retries)",
                target.host, target.port
            ),
            false,
        ),
        LoginOutcome::Accepted {
            position: CommittedPosition::Snapshot,
        } => snapshot(
            "its committed offset says a snapshot is in progress: it streams from the slot once the snapshot ends",
        ),
        LoginOutcome::Accepted {
            position: CommittedPosition::Nothing,
        } => snapshot(
            "it has committed no position yet: probably a snapshot that has not flushed an offset; checked again later",
        ),
        LoginOutcome::Accepted { .. } => unknown(format!("the login of {target} works")),
        LoginOutcome::Failed { message } => unknown(format!(
            "the watchdog could not log in as {target}: {message}"
        )),
        LoginOutcome::NotTried {
            form: PasswordForm::ConfigProvider,
        } => unknown(
            "database.password is a config-provider reference the watchdog cannot resolve".into(),
        ),
        LoginOutcome::NotTried { .. } => unknown("database.password is not set".into()),
    }
}

/// What the watchdog remembers about one connector's streaming between cycles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamingMemory {
    /// Since when the connector and all its tasks are RUNNING, as observed.
    pub running_since_ms: Option<u64>,
    /// Since when its slot is seen missing or inactive while it is RUNNING.
    pub unused_since_ms: Option<u64>,
    /// The diagnosis of the incident in progress and when it was made.
    pub diagnosis: Option<(FailureKind, Cause)>,
    pub probed_ms: Option<u64>,
    /// The last probe found a snapshot running (see [`Diagnosis::snapshot`]).
    pub snapshot: bool,
    /// The alert raised in this incident.
    pub alerted: Option<(AlertKind, Cause)>,
}

/// Updates the times and evaluates; says whether a login probe is due: once when the
/// connector is found not streaming, then every `reprobe_ms` unless the cause found is
/// permanent. An incident ends (memory cleared) when the slot is in use again or the
/// connector leaves RUNNING. A slot not observed in a cycle keeps the time it was first seen
/// unused.
pub fn observe(
    memory: &StreamingMemory,
    running: bool,
    slot: SlotObservation,
    now_ms: u64,
    policy: &StreamingPolicy,
) -> (Streaming, bool, StreamingMemory) {
    let mut next = memory.clone();
    next.running_since_ms = running.then(|| memory.running_since_ms.unwrap_or(now_ms));
    next.unused_since_ms = match slot {
        _ if !running => None,
        SlotObservation::Inactive | SlotObservation::Missing => {
            Some(memory.unused_since_ms.unwrap_or(now_ms))
        }
        SlotObservation::NotObserved => memory.unused_since_ms,
        SlotObservation::Active => None,
    };
    let verdict = evaluate(
        next.running_since_ms,
        next.unused_since_ms,
        slot,
        now_ms,
        policy,
    );
    let probe = match verdict {
        Streaming::NotStreaming { .. } => match (next.diagnosis, next.probed_ms) {
            (Some((FailureKind::Permanent, _)), _) => false,
            (_, None) => true,
            (_, Some(at)) => now_ms.saturating_sub(at) >= policy.reprobe_ms,
        },
        Streaming::Unobserved { .. } | Streaming::Starting { .. } => false,
        Streaming::NotRunning | Streaming::Streaming => {
            next.diagnosis = None;
            next.probed_ms = None;
            next.snapshot = false;
            next.alerted = None;
            false
        }
    };
    (verdict, probe, next)
}

/// Records a probe's diagnosis; returns the alert to raise: one per incident and cause, for a
/// permanent cause (`PermanentFailure`) or an unknown one (`NotStreaming`). A retriable cause
/// (the database is away) raises none: Debezium retries by itself; nor does a snapshot.
pub fn conclude(
    memory: &StreamingMemory,
    key: &ConnectorKey,
    diagnosis: &Diagnosis,
    now_ms: u64,
) -> (Option<Alert>, StreamingMemory) {
    let mut next = memory.clone();
    next.diagnosis = Some((diagnosis.kind, diagnosis.cause));
    next.snapshot = diagnosis.snapshot;
    next.probed_ms = Some(now_ms);
    let kind = match (diagnosis.kind, diagnosis.cause) {
        _ if diagnosis.snapshot => return (None, next),
        (FailureKind::Permanent, _) => AlertKind::PermanentFailure,
        (_, Cause::Unknown) => AlertKind::NotStreaming,
        _ => return (None, next),
    };
    if next.alerted == Some((kind, diagnosis.cause)) {
        return (None, next);
    }
    next.alerted = Some((kind, diagnosis.cause));
    (
        Some(Alert {
            key: key.clone(),
            kind,
            cause: diagnosis.cause,
            message: diagnosis.message.clone(),
            fix: diagnosis.fix.clone(),
        }),
        next,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pg(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut c = config(&[
            ("connector.class", POSTGRES_CONNECTOR_CLASS),
            ("database.hostname", "db.internal"),
            ("database.user", "cdc"),
            ("database.password", "s3cret-value"),
            ("database.dbname", "orders"),
        ]);
        for (k, v) in extra {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }

    fn key() -> ConnectorKey {
        ConnectorKey {
            cluster: "main".into(),
            connector: "orders-cdc".into(),
        }
    }

    #[test]
    fn slot_and_login_from_the_connect_config() {
        let slot = |host: &str, port: u16, db: &str, slot: &str| SlotRef {
            host: host.into(),
            port,
            database: db.into(),
            slot: slot.into(),
        };
        let cases: Vec<(&str, BTreeMap<String, String>, Option<SlotRef>)> = vec![
            (
                "defaults: port 5432, slot debezium",
                pg(&[]),
                Some(slot("db.internal", 5432, "orders", "debezium")),
            ),
            (
                "explicit port and slot",
                pg(&[("database.port", "6432"), ("slot.name", "orders_slot")]),
                Some(slot("db.internal", 6432, "orders", "orders_slot")),
            ),
            (
                "an empty slot.name is the default",
                pg(&[("slot.name", " ")]),
                Some(slot("db.internal", 5432, "orders", "debezium")),
            ),
            (
                "another connector class",
                {
                    let mut c = pg(&[]);
                    c.insert(
                        "connector.class".into(),
                        "io.debezium.connector.mysql.MySqlConnector".into(),
                    );
                    c
                },
                None,
            ),
            (
                "a port that is no port",
                pg(&[("database.port", "x")]),
                None,
            ),
            ("no class", config(&[("database.hostname", "h")]), None),
        ];
        for (name, config, want) in cases {
            assert_eq!(postgres_slot(&config), want, "{name}");
        }
        let mut no_db = pg(&[]);
        no_db.remove("database.dbname");
        assert_eq!(
            login_target(&no_db).unwrap_err(),
            "database.dbname is not set"
        );
        assert_eq!(
            login_target(&pg(&[("database.port", "99999")])).unwrap_err(),
            "database.port '99999' is not a port number"
        );
    }

    #[test]
    fn password_forms() {
        let cases = [
            (None, PasswordForm::Absent),
            (Some("hunter2"), PasswordForm::Literal),
            (
                Some("${file:/etc/kafka/secrets.properties:pg.password}"),
                PasswordForm::ConfigProvider,
            ),
            (Some("${env:PG_PASSWORD}"), PasswordForm::ConfigProvider),
            (Some("a$b{c"), PasswordForm::Literal),
        ];
        for (value, want) in cases {
            assert_eq!(password_form(value), want, "{value:?}");
        }
    }

    #[test]
    fn slot_observation_from_pg_replication_slots() {
        let row = |slot: &str, db: &str, active: bool| SlotSample {
            slot: slot.into(),
            database: db.into(),
            active,
            retained_bytes: 0,
            wal_status: "reserved".into(),
        };
        let mine = postgres_slot(&pg(&[("slot.name", "s1")])).expect("slot");
        let cases = [
            (vec![row("s1", "orders", true)], SlotObservation::Active),
            (vec![row("s1", "orders", false)], SlotObservation::Inactive),
            (vec![row("s1", "other_db", true)], SlotObservation::Missing),
            (vec![row("s2", "orders", true)], SlotObservation::Missing),
            (vec![], SlotObservation::Missing),
        ];
        for (rows, want) in cases {
            assert_eq!(observe_slot(&rows, &mine), want, "{rows:?}");
        }
    }

    #[test]
    fn verdict_table() {
        let policy = StreamingPolicy {
            grace_ms: 10_000,
            reprobe_ms: 60_000,
        };
        use SlotObservation::*;
        // (name, running since, unused since, slot, now, verdict)
        let cases = [
            (
                "not running",
                None,
                None,
                Missing,
                50_000,
                Streaming::NotRunning,
            ),
            (
                "slot active",
                Some(0),
                None,
                Active,
                50_000,
                Streaming::Streaming,
            ),
            (
                "active at once is streaming, grace or not",
                Some(0),
                None,
                Active,
                1_000,
                Streaming::Streaming,
            ),
            (
                "unused for less than the grace period",
                Some(0),
                Some(0),
                Inactive,
                9_999,
                Streaming::Starting {
                    unused_for_ms: 9_999,
                },
            ),
            (
                "running for long, unused only lately (a restart): not yet",
                Some(0),
                Some(95_000),
                Inactive,
                100_000,
                Streaming::Starting {
                    unused_for_ms: 5_000,
                },
            ),
            (
                "unused for the grace period",
                Some(0),
                Some(0),
                Inactive,
                10_000,
                Streaming::NotStreaming {
                    slot: Inactive,
                    unused_for_ms: 10_000,
                },
            ),
            (
                "missing for longer",
                Some(5_000),
                Some(5_000),
                Missing,
                20_000,
                Streaming::NotStreaming {
                    slot: Missing,
                    unused_for_ms: 15_000,
                },
            ),
            (
                "first sight of an unused slot counts from now",
                Some(0),
                None,
                Missing,
                20_000,
                Streaming::Starting { unused_for_ms: 0 },
            ),
            (
                "not observed: no verdict",
                Some(0),
                Some(0),
                NotObserved,
                20_000,
                Streaming::Unobserved {
                    running_for_ms: 20_000,
                },
            ),
        ];
        for (name, running, unused, slot, now, want) in cases {
            assert_eq!(
                evaluate(running, unused, slot, now, &policy),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn diagnosis_table() {
        let slot = postgres_slot(&pg(&[])).expect("slot");
        let target = login_target(&pg(&[])).expect("target");
        let verdict = Streaming::NotStreaming {
            slot: SlotObservation::Inactive,
            unused_for_ms: 61_000,
        };
        let rejected = |state: &str, msg: &str| LoginOutcome::Rejected {
            sqlstate: state.into(),
            message: msg.into(),
        };
        use FailureKind::*;
        let cases: Vec<(LoginOutcome, FailureKind, Cause, &str)> = vec![
            (
                rejected("28P01", "password authentication failed for user \"cdc\""),
                Permanent,
                Cause::Authentication,
                "the password of user cdc for db.internal:5432/orders is rejected",
            ),
            (
                rejected("28000", "role \"cdc\" is not permitted to log in"),
                Permanent,
                Cause::Authentication,
                "the login of user cdc for db.internal:5432/orders is refused",
            ),
            (
                // pg_hba.conf wants TLS, which the watchdog's probe does not speak: no verdict.
                rejected(
                    "28000",
                    "no pg_hba.conf entry for host \"10.0.0.1\", user \"cdc\", database \"orders\", no encryption",
                ),
                Retriable,
                Cause::Unknown,
                "cause unknown",
            ),
            (
                rejected("3D000", "database \"orders\" does not exist"),
                Retriable,
                Cause::Unknown,
                "SQLSTATE 3D000",
            ),
            (
                LoginOutcome::Refused,
                Retriable,
                Cause::ConnectionRefused,
                "refuses connections",
            ),
            (LoginOutcome::TimedOut, Retriable, Cause::Timeout, "timed out"),
            (
                LoginOutcome::Accepted {
                    position: CommittedPosition::Streaming,
                },
                Retriable,
                Cause::Unknown,
                "cause unknown (the login of user cdc",
            ),
            (
                LoginOutcome::Accepted {
                    position: CommittedPosition::NotRead,
                },
                Retriable,
                Cause::Unknown,
                "cause unknown (the login of user cdc",
            ),
            (
                LoginOutcome::Accepted {
                    position: CommittedPosition::Snapshot,
                },
                Retriable,
                Cause::Unknown,
                "a snapshot is in progress",
            ),
            (
                LoginOutcome::Accepted {
                    position: CommittedPosition::Nothing,
                },
                Retriable,
                Cause::Unknown,
                "committed no position yet",
            ),
            (
                LoginOutcome::NotTried {
                    form: PasswordForm::ConfigProvider,
                },
                Retriable,
                Cause::Unknown,
                "config-provider reference",
            ),
            (
                LoginOutcome::Failed {
                    message: "tls handshake".into(),
                },
                Retriable,
                Cause::Unknown,
                "tls handshake",
            ),
        ];
        for (outcome, kind, cause, text) in cases {
            let d = diagnose(&key(), &slot, &verdict, &target, &outcome);
            assert_eq!((d.kind, d.cause), (kind, cause), "{outcome:?}");
            assert!(d.message.contains(text), "{outcome:?}: {}", d.message);
            assert!(
                d.message.contains("not streaming") && d.message.contains("unused for 61 s"),
                "{}",
                d.message
            );
            assert!(!d.message.contains("s3cret-value") && !d.fix.contains("s3cret-value"));
            assert_eq!(d.snapshot, d.message.contains("snapshot"), "{}", d.message);
            match kind {
                Permanent => assert!(d.fix.contains("restart the connector"), "{}", d.fix),
                Retriable if d.snapshot => assert!(d.fix.is_empty()),
                Retriable if cause == Cause::Unknown => {
                    assert!(d.fix.contains("task log"), "{}", d.fix)
                }
                Retriable => assert!(d.fix.is_empty()),
            }
        }
        let d = diagnose(
            &key(),
            &slot,
            &verdict,
            &target,
            &rejected("28P01", "password authentication failed"),
        );
        assert!(d.fix.contains("set database.password"), "{}", d.fix);
    }

    /// Runs observe → (probe) → conclude once a second; `world(now)` gives (running, slot,
    /// login outcome). Returns (second, probed, alert kind + cause).
    fn run(
        seconds: u64,
        world: impl Fn(u64) -> (bool, SlotObservation, LoginOutcome),
    ) -> Vec<(u64, &'static str)> {
        let policy = StreamingPolicy {
            grace_ms: 5_000,
            reprobe_ms: 20_000,
        };
        let slot = postgres_slot(&pg(&[])).expect("slot");
        let target = login_target(&pg(&[])).expect("target");
        let mut memory = StreamingMemory::default();
        let mut events = Vec::new();
        for s in 0..seconds {
            let now = s * 1000;
            let (running, observation, outcome) = world(now);
            let (verdict, probe, next) = observe(&memory, running, observation, now, &policy);
            memory = next;
            if probe {
                events.push((s, "probe"));
                let d = diagnose(&key(), &slot, &verdict, &target, &outcome);
                let (alert, next) = conclude(&memory, &key(), &d, now);
                memory = next;
                if let Some(alert) = alert {
                    events.push((
                        s,
                        match alert.kind {
                            AlertKind::PermanentFailure => "alert permanent",
                            AlertKind::NotStreaming => "alert not streaming",
                            AlertKind::CircuitOpen => "alert circuit",
                        },
                    ));
                }
            }
        }
        events
    }

    fn bad_password() -> LoginOutcome {
        LoginOutcome::Rejected {
            sqlstate: "28P01".into(),
            message: "password authentication failed".into(),
        }
    }

    #[test]
    fn one_alert_per_incident_and_a_rejected_password_is_probed_once() {
        use SlotObservation::*;
        type World = Box<dyn Fn(u64) -> (bool, SlotObservation, LoginOutcome)>;
        type Case = (&'static str, u64, World, Vec<(u64, &'static str)>);
        let cases: Vec<Case> = vec![
            (
                "wrong password: one probe, one alert, however long",
                300,
                Box::new(|_| (true, Inactive, bad_password())),
                vec![(5, "probe"), (5, "alert permanent")],
            ),
            (
                "streaming connector: never probed",
                300,
                Box::new(|_| (true, Active, bad_password())),
                vec![],
            ),
            (
                "database away: probed every 20 s, no alert",
                50,
                Box::new(|_| (true, Inactive, LoginOutcome::Refused)),
                vec![(5, "probe"), (25, "probe"), (45, "probe")],
            ),
            (
                "database away, then the password is found wrong: the alert comes then",
                40,
                Box::new(|now| {
                    let outcome = if now < 20_000 {
                        LoginOutcome::Refused
                    } else {
                        bad_password()
                    };
                    (true, Missing, outcome)
                }),
                vec![(5, "probe"), (25, "probe"), (25, "alert permanent")],
            ),
            (
                "cause unknown: one alert, re-probed without a second alert",
                30,
                Box::new(|_| {
                    (
                        true,
                        Inactive,
                        LoginOutcome::Accepted {
                            position: CommittedPosition::Streaming,
                        },
                    )
                }),
                vec![(5, "probe"), (5, "alert not streaming"), (25, "probe")],
            ),
            (
                "a snapshot, then streaming: probed, never alerted",
                60,
                Box::new(|now| {
                    let slot = if now < 40_000 { Missing } else { Active };
                    let position = if now < 20_000 {
                        CommittedPosition::Nothing
                    } else {
                        CommittedPosition::Snapshot
                    };
                    (true, slot, LoginOutcome::Accepted { position })
                }),
                vec![(5, "probe"), (25, "probe")],
            ),
            (
                "fixed and restarted: a new incident alerts again",
                40,
                Box::new(|now| match now {
                    0..=14_999 => (true, Inactive, bad_password()),
                    15_000..=15_999 => (false, Inactive, bad_password()),
                    _ => (true, Inactive, bad_password()),
                }),
                vec![
                    (5, "probe"),
                    (5, "alert permanent"),
                    (21, "probe"),
                    (21, "alert permanent"),
                ],
            ),
            (
                "a restart the watchdog sees only as a slot unused for 2 s: nothing",
                60,
                Box::new(|now| {
                    let slot = if (30_000..32_000).contains(&now) {
                        Inactive
                    } else {
                        Active
                    };
                    (true, slot, bad_password())
                }),
                vec![],
            ),
            (
                "not observed: no probe, no alert",
                30,
                Box::new(|_| (true, NotObserved, bad_password())),
                vec![],
            ),
        ];
        for (name, seconds, world, want) in cases {
            assert_eq!(run(seconds, world), want, "{name}");
        }
    }
}
