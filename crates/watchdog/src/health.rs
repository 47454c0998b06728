//! Pipelines that say RUNNING but do not move, and replication slots that hold back WAL.
//!
//! Stuck detection compares, over a window of samples, the pipeline's position (a source
//! connector's committed offset, e.g. Debezium's `lsn`, or a sink's committed Kafka offsets)
//! with the source's head (PostgreSQL's `pg_current_wal_lsn()`, a topic's end offsets) and the
//! time of the last heartbeat the pipeline passed through (Debezium's offset `ts_usec` moves
//! with heartbeats). "Nothing changed upstream" and "frozen" then look different:
//!
//! * position moved → `Moving`;
//! * position frozen, head not past it → `Idle` (nothing to do), if heartbeats are fresh;
//! * position frozen while the head moved past it → `Behind`, and after `stuck_after` → `Stuck`;
//! * no heartbeat within `heartbeat_max_age` → `NoHeartbeat` (cannot tell idle from stuck).

use serde::Serialize;

/// One observation of a pipeline's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProgressSample {
    pub at_ms: u64,
    /// The pipeline's committed position (monotonic number: LSN, offset sum).
    pub position: u64,
    /// The source's head at the same time.
    pub head: u64,
    /// Time of the newest heartbeat / event the pipeline committed, if known.
    pub last_heartbeat_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StuckPolicy {
    pub stuck_after_ms: u64,
    pub heartbeat_max_age_ms: u64,
}

impl Default for StuckPolicy {
    fn default() -> Self {
        Self {
            stuck_after_ms: 5 * 60_000,
            heartbeat_max_age_ms: 5 * 60_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "progress", rename_all = "snake_case")]
pub enum Progress {
    /// Not enough samples yet.
    Unknown,
    Moving,
    /// Frozen with work waiting, for less than `stuck_after` so far.
    Behind {
        behind: u64,
    },
    Idle,
    Stuck {
        frozen_for_ms: u64,
        behind: u64,
    },
    NoHeartbeat {
        age_ms: Option<u64>,
    },
}

/// Evaluates samples in time order (oldest first); only the last sample's time counts as now.
pub fn evaluate_progress(samples: &[ProgressSample], policy: &StuckPolicy) -> Progress {
    let Some(last) = samples.last() else {
        return Progress::Unknown;
    };
    // The oldest sample from which the position has not changed.
    let frozen_from = samples
        .iter()
        .rev()
        .take_while(|s| s.position == last.position)
        .last()
        .unwrap_or(last);
    let frozen_for = last.at_ms.saturating_sub(frozen_from.at_ms);
    let moved = samples.len() > 1 && frozen_from.at_ms > samples[0].at_ms;
    if last.head > last.position {
        // Work is waiting: the head has moved past the position. Stuck once frozen long enough
        // with the head ahead the whole time.
        let head_ahead_since = samples
            .iter()
            .rev()
            .take_while(|s| s.position == last.position && s.head > s.position)
            .last()
            .unwrap_or(last);
        let waiting = last.at_ms.saturating_sub(head_ahead_since.at_ms);
        if waiting >= policy.stuck_after_ms {
            return Progress::Stuck {
                frozen_for_ms: frozen_for,
                behind: last.head - last.position,
            };
        }
        return if moved {
            Progress::Moving
        } else {
            Progress::Behind {
                behind: last.head - last.position,
            }
        };
    }
    let age = last
        .last_heartbeat_ms
        .map(|hb| last.at_ms.saturating_sub(hb));
    match age {
        Some(age) if age <= policy.heartbeat_max_age_ms => {
            if moved {
                Progress::Moving
            } else {
                Progress::Idle
            }
        }
        _ if moved => Progress::Moving,
        _ => Progress::NoHeartbeat { age_ms: age },
    }
}

/// The query the adapter runs on PostgreSQL: WAL each logical slot holds back, in bytes.
pub const SLOT_RETENTION_SQL: &str = "SELECT slot_name, database, active, \
     COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint AS retained_bytes, \
     COALESCE(wal_status, '') AS wal_status \
     FROM pg_replication_slots WHERE slot_type = 'logical'";

/// One row of [`SLOT_RETENTION_SQL`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotSample {
    pub slot: String,
    pub database: String,
    pub active: bool,
    pub retained_bytes: i64,
    /// `reserved`, `extended`, `unreserved`, `lost` (PostgreSQL 13+), or empty.
    pub wal_status: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SlotThresholds {
    pub warn_bytes: i64,
    pub critical_bytes: i64,
}

impl Default for SlotThresholds {
    fn default() -> Self {
        Self {
            warn_bytes: 1 << 30,
            critical_bytes: 10 << 30,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotHealth {
    Ok,
    Warn,
    /// Over the critical threshold, or `unreserved`: the server may soon drop the WAL.
    Critical,
    /// `wal_status = lost`: the slot is invalid; the connector needs a new snapshot.
    Lost,
}

pub fn evaluate_slot(sample: &SlotSample, thresholds: &SlotThresholds) -> SlotHealth {
    match sample.wal_status.as_str() {
        "lost" => return SlotHealth::Lost,
        "unreserved" => return SlotHealth::Critical,
        _ => {}
    }
    if sample.retained_bytes >= thresholds.critical_bytes {
        SlotHealth::Critical
    } else if sample.retained_bytes >= thresholds.warn_bytes {
        SlotHealth::Warn
    } else {
        SlotHealth::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_s: u64, position: u64, head: u64, hb_s: Option<u64>) -> ProgressSample {
        ProgressSample {
            at_ms: at_s * 1000,
            position,
            head,
            last_heartbeat_ms: hb_s.map(|h| h * 1000),
        }
    }

    #[test]
    fn progress_table() {
        let policy = StuckPolicy {
            stuck_after_ms: 60_000,
            heartbeat_max_age_ms: 30_000,
        };
        let cases: Vec<(&str, Vec<ProgressSample>, Progress)> = vec![
            ("no samples", vec![], Progress::Unknown),
            (
                "moving under load",
                vec![
                    s(0, 10, 20, Some(0)),
                    s(30, 15, 25, Some(30)),
                    s(60, 22, 30, Some(60)),
                ],
                Progress::Moving,
            ),
            (
                "idle source, fresh heartbeats",
                vec![
                    s(0, 50, 50, Some(0)),
                    s(60, 50, 50, Some(55)),
                    s(120, 50, 50, Some(110)),
                ],
                Progress::Idle,
            ),
            (
                "frozen while the head moved for 90 s",
                vec![
                    s(0, 50, 50, Some(0)),
                    s(30, 50, 60, Some(0)),
                    s(120, 50, 90, Some(0)),
                ],
                Progress::Stuck {
                    frozen_for_ms: 120_000,
                    behind: 40,
                },
            ),
            (
                "frozen with the head ahead for only 30 s: not yet",
                vec![
                    s(0, 50, 50, Some(0)),
                    s(90, 50, 50, Some(85)),
                    s(120, 50, 70, Some(85)),
                ],
                Progress::Behind { behind: 20 },
            ),
            (
                "idle but heartbeats stopped",
                vec![s(0, 50, 50, Some(0)), s(120, 50, 50, Some(0))],
                Progress::NoHeartbeat {
                    age_ms: Some(120_000),
                },
            ),
            (
                "no heartbeat configured and idle",
                vec![s(0, 50, 50, None), s(60, 50, 50, None)],
                Progress::NoHeartbeat { age_ms: None },
            ),
            (
                "moved, caught up, no heartbeat: moving",
                vec![s(0, 40, 50, None), s(60, 50, 50, None)],
                Progress::Moving,
            ),
        ];
        for (name, samples, want) in cases {
            assert_eq!(evaluate_progress(&samples, &policy), want, "{name}");
        }
    }

    #[test]
    fn slot_table() {
        let t = SlotThresholds {
            warn_bytes: 100,
            critical_bytes: 1000,
        };
        let slot = |bytes: i64, status: &str| SlotSample {
            slot: "s".into(),
            database: "d".into(),
            active: true,
            retained_bytes: bytes,
            wal_status: status.into(),
        };
        let cases = [
            (slot(0, "reserved"), SlotHealth::Ok),
            (slot(99, "reserved"), SlotHealth::Ok),
            (slot(100, "reserved"), SlotHealth::Warn),
            (slot(999, "extended"), SlotHealth::Warn),
            (slot(1000, "extended"), SlotHealth::Critical),
            (slot(5, "unreserved"), SlotHealth::Critical),
            (slot(5, "lost"), SlotHealth::Lost),
            (slot(5, ""), SlotHealth::Ok),
        ];
        for (sample, want) in cases {
            assert_eq!(evaluate_slot(&sample, &t), want, "{sample:?}");
        }
    }
}
