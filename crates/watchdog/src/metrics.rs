//! The watchdog's Prometheus families, registered under `lockstep_watchdog_` in the same
//! registry as the sink's (`lockstep serve` serves one `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::policy::{ConnectorKey, ObservedConnector, State};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub cluster: String,
    pub connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub cluster: String,
    pub connector: String,
    /// RUNNING, FAILED, PAUSED, STOPPED, RESTARTING, UNASSIGNED, OTHER.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskStateLabels {
    pub cluster: String,
    pub connector: String,
    pub task: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub cluster: String,
    pub connector: String,
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub cluster: String,
    pub connector: String,
    /// `permanent_failure`, `circuit_open`, `not_streaming`, `stuck`, `slot_retention`.
    pub kind: String,
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TuningLabels {
    pub pipeline: String,
    pub param: String,
    /// `increase` or `decrease`.
    pub direction: String,
    /// `applied` or `recommended`.
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlotLabels {
    pub database: String,
    pub slot: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupPartitionLabels {
    pub group: String,
    pub topic: String,
    pub partition: String,
}

/// Handles to the watchdog's families; cheap to clone.
#[derive(Clone, Debug)]
pub struct WatchdogMetrics {
    pub connector_state: Family<StateLabels, Gauge>,
    pub task_state: Family<TaskStateLabels, Gauge>,
    pub restarts: Family<CauseLabels, Counter>,
    pub alerts: Family<AlertLabels, Counter>,
    pub permanent_failure: Family<CauseLabels, Gauge>,
    pub circuit_open: Family<ConnectorLabels, Gauge>,
    pub stuck: Family<ConnectorLabels, Gauge>,
    pub source_freshness_seconds: Family<ConnectorLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub tuning_changes: Family<TuningLabels, Counter>,
    pub slot_retained_wal_bytes: Family<SlotLabels, Gauge>,
    pub consumer_lag_records: Family<GroupPartitionLabels, Gauge>,
    pub consumer_lag_seconds:
        Family<GroupPartitionLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub poll_errors: Family<ClusterLabels, Counter>,
    pub poll_seconds: Family<ClusterLabels, Histogram, fn() -> Histogram>,
}

fn poll_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl WatchdogMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        let sub = registry.sub_registry_with_prefix("lockstep_watchdog");
        sub.register(
            "connector_state",
            "1 for the connector's current state (label state), 0 for the others",
            m.connector_state.clone(),
        );
        sub.register(
            "task_state",
            "1 for the task's current state (label state), 0 for the others",
            m.task_state.clone(),
        );
        sub.register(
            "restarts",
            "Restarts the watchdog requested, by classified cause",
            m.restarts.clone(),
        );
        sub.register(
            "alerts",
            "Alerts the watchdog raised, by kind and cause",
            m.alerts.clone(),
        );
        sub.register(
            "permanent_failure",
            "1 while a connector is FAILED with a permanent (non-restartable) cause",
            m.permanent_failure.clone(),
        );
        sub.register(
            "circuit_open",
            "1 while restarts of a connector are suspended by the circuit breaker",
            m.circuit_open.clone(),
        );
        sub.register(
            "stuck",
            "1 while a RUNNING connector's position is frozen although its source moved",
            m.stuck.clone(),
        );
        sub.register(
            "source_freshness_seconds",
            "Age of the newest event or heartbeat a source connector committed (offset ts_usec)",
            m.source_freshness_seconds.clone(),
        );
        sub.register(
            "tuning_changes",
            "Parameter changes made (or recommended) by the auto-tuner",
            m.tuning_changes.clone(),
        );
        sub.register(
            "slot_retained_wal_bytes",
            "WAL a PostgreSQL replication slot holds back (pg_current_wal_lsn - restart_lsn)",
            m.slot_retained_wal_bytes.clone(),
        );
        sub.register(
            "consumer_lag_records",
            "Consumer group lag in records (end offset - committed offset)",
            m.consumer_lag_records.clone(),
        );
        sub.register(
            "consumer_lag_seconds",
            "Consumer group lag in seconds (offset-to-time interpolation)",
            m.consumer_lag_seconds.clone(),
        );
        sub.register(
            "poll_errors",
            "Watchdog polls of a Connect cluster that failed",
            m.poll_errors.clone(),
        );
        sub.register(
            "poll_duration_seconds",
            "Time to poll every connector of a Connect cluster",
            m.poll_seconds.clone(),
        );
        m
    }

    pub fn unregistered() -> Self {
        Self {
            connector_state: Family::default(),
            task_state: Family::default(),
            restarts: Family::default(),
            alerts: Family::default(),
            permanent_failure: Family::default(),
            circuit_open: Family::default(),
            stuck: Family::default(),
            source_freshness_seconds: Family::default(),
            tuning_changes: Family::default(),
            slot_retained_wal_bytes: Family::default(),
            consumer_lag_records: Family::default(),
            consumer_lag_seconds: Family::default(),
            poll_errors: Family::default(),
            poll_seconds: Family::new_with_constructor(poll_histogram),
        }
    }

    /// Sets the state gauges of one observed connector (one series per state, so a
    /// `== 1` query finds the current one and old states drop to 0).
    pub fn observe_connector(&self, connector: &ObservedConnector) {
        let ConnectorKey {
            cluster,
            connector: name,
        } = &connector.key;
        for state in State::ALL {
            self.connector_state
                .get_or_create(&StateLabels {
                    cluster: cluster.clone(),
                    connector: name.clone(),
                    state: state.as_str().into(),
                })
                .set(i64::from(state == connector.state));
        }
        for task in &connector.tasks {
            for state in State::ALL {
                self.task_state
                    .get_or_create(&TaskStateLabels {
                        cluster: cluster.clone(),
                        connector: name.clone(),
                        task: task.id.to_string(),
                        state: state.as_str().into(),
                    })
                    .set(i64::from(state == task.state));
            }
        }
    }

    /// Drops every series of a connector that no longer exists.
    pub fn forget_connector(&self, key: &ConnectorKey, tasks: &[u32]) {
        for state in State::ALL {
            self.connector_state.remove(&StateLabels {
                cluster: key.cluster.clone(),
                connector: key.connector.clone(),
                state: state.as_str().into(),
            });
            for task in tasks {
                self.task_state.remove(&TaskStateLabels {
                    cluster: key.cluster.clone(),
                    connector: key.connector.clone(),
                    task: task.to_string(),
                    state: state.as_str().into(),
                });
            }
        }
        let labels = ConnectorLabels {
            cluster: key.cluster.clone(),
            connector: key.connector.clone(),
        };
        self.circuit_open.remove(&labels);
        self.stuck.remove(&labels);
        self.source_freshness_seconds.remove(&labels);
    }
}

impl Default for WatchdogMetrics {
    fn default() -> Self {
        Self::unregistered()
    }
}
