//! What a running sink shows (status) and what it can be told (commands), shared between the
//! sink's loop and the service's API.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::topics::RuntimeTopic;

/// The sink's own lifecycle state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkState {
    #[default]
    Starting,
    Running,
    /// Paused by an operator: nothing is consumed; positions are kept in the target.
    Paused,
    /// Stopped on an error (see `last_error`); restarting resumes from the target's offsets.
    Failed,
    Stopped,
}

/// A Kafka record's coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordRef {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A table the sink holds: by the `block` drift policy, or by an operator / the DDL orchestrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedTable {
    pub table: String,
    /// Why, in words an operator can act on.
    pub reason: String,
    /// Columns the records carry and the target table lacks (drift).
    pub missing_columns: Vec<String>,
    /// The first record not applied (None for an operator hold).
    pub record: Option<RecordRef>,
    /// The partitions that stopped with it.
    pub partitions: Vec<RecordRef>,
    /// Milliseconds since the epoch.
    pub since_ms: i64,
    /// Held on request (released by a command) rather than by drift (released when the target
    /// schema catches up).
    pub held_by_request: bool,
}

/// The committed position of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionPosition {
    pub topic: String,
    pub partition: i32,
    /// Next offset committed in the target (None: nothing applied yet).
    pub next_offset: Option<i64>,
    /// False while the partition is held (blocked table, pause).
    pub consuming: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStatus {
    pub pipeline: String,
    pub engine: String,
    pub state: SinkState,
    pub partitions: Vec<PartitionPosition>,
    pub blocked: Vec<BlockedTable>,
    pub records: u64,
    pub rows_written: u64,
    pub dead_letters: u64,
    pub last_error: Option<String>,
    /// Milliseconds since the epoch of the last committed batch.
    pub last_commit_ms: Option<i64>,
    /// Topics added or removed at runtime (`crate::topics`), as recorded in the target.
    pub runtime_topics: Vec<RuntimeTopicStatus>,
}

/// A runtime topic change the sink has recorded and applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeTopicStatus {
    pub topic: String,
    pub table: Option<String>,
    pub removed: bool,
    /// Added, but the broker does not have the topic yet (its connector has not written to
    /// it): read from its first record once it appears.
    pub waiting: bool,
}

/// What operators (and the DDL orchestrator) ask of a sink. The sink reconciles towards it
/// between batches; it outlives a sink restart, so a hold is never lost when the sink process
/// loop restarts after an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub paused: bool,
    /// Target tables to hold.
    pub held: BTreeSet<String>,
    /// Re-check drift-blocked tables at the next batch instead of waiting for the interval.
    pub recheck_now: bool,
    /// Topic changes asked for and not yet recorded in the target, by topic (the latest wins).
    pub topic_changes: BTreeMap<String, RuntimeTopic>,
}

/// The outside's view of a sink: its status and its desired state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SinkHandle {
    pub(crate) desired: Arc<Mutex<Desired>>,
    pub(crate) status: Arc<RwLock<SinkStatus>>,
}

impl SinkHandle {
    pub fn new(pipeline: &str, engine: &str) -> Self {
        Self {
            desired: Arc::new(Mutex::new(Desired::default())),
            status: Arc::new(RwLock::new(SinkStatus {
                pipeline: pipeline.to_string(),
                engine: engine.to_string(),
                ..SinkStatus::default()
            })),
        }
    }

    /// A snapshot of the status.
    pub fn status(&self) -> SinkStatus {
        match self.status.read() {
            Ok(status) => status.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn update_desired<T>(&self, change: impl FnOnce(&mut Desired) -> T) -> T {
        let mut desired = match self.desired.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut desired)
    }

    pub(crate) fn desired(&self) -> Desired {
        self.update_desired(|d| {
            let snapshot = d.clone();
            d.recheck_now = false;
            snapshot
        })
    }

    /// Records that the sink is down (it could not start, or stopped on an error); a
    /// supervisor calls this between restarts.
    pub fn mark_failed(&self, error: &str) {
        let mut status = match self.status.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        status.state = SinkState::Failed;
        status.last_error = Some(error.to_string());
    }

    /// Stop consuming after the current batch (positions stay in the target).
    pub fn pause(&self) {
        self.update_desired(|d| d.paused = true);
    }

    pub fn resume(&self) {
        self.update_desired(|d| d.paused = false);
    }

    /// Hold a target table: its partitions stop after the current batch.
    pub fn hold(&self, table: &str) {
        self.update_desired(|d| d.held.insert(table.to_string()));
    }

    /// Read `topic` into the target table `table` (`None`: the source table's name) from now
    /// on. The sink records it in the target (so a restart keeps it) between batches and
    /// reads the topic from its first record, or from the offset the target holds for it.
    pub fn add_topic(&self, topic: &str, table: Option<&str>) {
        self.update_desired(|d| {
            d.topic_changes.insert(
                topic.to_string(),
                RuntimeTopic {
                    topic: topic.to_string(),
                    table: table.map(str::to_string),
                    removed: false,
                },
            )
        });
    }

    /// Stop reading `topic` (recorded in the target like [`SinkHandle::add_topic`]).
    pub fn remove_topic(&self, topic: &str) {
        self.update_desired(|d| {
            d.topic_changes.insert(
                topic.to_string(),
                RuntimeTopic {
                    topic: topic.to_string(),
                    table: None,
                    removed: true,
                },
            )
        });
    }

    /// Topic changes not recorded yet.
    pub(crate) fn pending_topic_changes(&self) -> Vec<RuntimeTopic> {
        self.update_desired(|d| d.topic_changes.values().cloned().collect())
    }

    /// A change was recorded and applied: forget it unless a newer one replaced it.
    pub(crate) fn topic_change_done(&self, change: &RuntimeTopic) {
        self.update_desired(|d| {
            if d.topic_changes.get(&change.topic) == Some(change) {
                d.topic_changes.remove(&change.topic);
            }
        });
    }

    /// Whether the sink has recorded and applied the topic change (`removed` or added).
    pub fn topic_applied(&self, topic: &str, removed: bool) -> bool {
        let pending = self.update_desired(|d| d.topic_changes.contains_key(topic));
        !pending
            && self
                .status()
                .runtime_topics
                .iter()
                .any(|t| t.topic == topic && t.removed == removed)
    }

    /// Lift a hold; a table blocked by drift is re-checked at once (and stays blocked while the
    /// target still lacks its columns).
    pub fn release(&self, table: &str) {
        self.update_desired(|d| {
            d.held.remove(table);
            d.recheck_now = true;
        });
    }
}
