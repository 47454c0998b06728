//! The runner's side of runtime topics (`crate::topics`): the partitions a sink reads at
//! start (the file's topics and the runtime ones), and, between batches, the topic changes
//! asked for through the [`SinkHandle`](crate::SinkHandle): each is recorded in the target
//! first (so a restart keeps it), then applied to the assignment. An added topic the broker
//! does not have yet (its connector has not written to it) waits and is checked every
//! [`TOPIC_CHECK`]; it is read from its first record, or from the offset the target holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{partition_count, Sink};
use crate::control::RuntimeTopicStatus;
use crate::pipeline::{SinkPipeline, TableOverride};
use crate::topics::{effective_topics, runtime_index, RuntimeTopic};
use crate::{ApplyError, PartitionKey};

/// How often an added topic the broker does not have yet is looked for.
const TOPIC_CHECK: Duration = Duration::from_secs(1);

/// The sink's runtime topics and what it needs to find their partitions.
pub(super) struct Topics {
    runtime: Vec<RuntimeTopic>,
    /// Added topics the broker does not have yet.
    waiting: BTreeSet<String>,
    /// The consumer's settings, for a metadata client of its own (the consumer belongs to the
    /// fetch thread).
    config: ClientConfig,
    metadata: Option<Arc<BaseConsumer>>,
    last_check: Instant,
}

/// The partitions this process reads at start and where each resumes, with the runtime
/// topics applied to the sink's copy of the pipeline (topics, target table overrides).
pub(super) async fn initial_partitions(
    pipeline: &mut SinkPipeline,
    runtime: Vec<RuntimeTopic>,
    consumer: &BaseConsumer,
    config: &ClientConfig,
    stored: &BTreeMap<PartitionKey, i64>,
) -> Result<(BTreeMap<PartitionKey, Option<i64>>, Topics, usize), ApplyError> {
    let file = pipeline.kafka.topics.clone();
    let topics = effective_topics(&file, &runtime);
    for r in runtime.iter().filter(|r| !r.removed) {
        if let Some(table) = &r.table {
            pipeline.tables.insert(
                r.topic.clone(),
                TableOverride {
                    table: Some(table.clone()),
                },
            );
        }
    }
    pipeline.kafka.topics = topics.clone();
    let mut state = Topics {
        runtime,
        waiting: BTreeSet::new(),
        config: config.clone(),
        metadata: None,
        last_check: Instant::now(),
    };
    let mut committed = BTreeMap::new();
    let mut index = 0usize;
    for topic in &topics {
        if file.contains(topic) {
            let partitions = partition_count(consumer, topic).await?;
            for partition in 0..partitions {
                if pipeline.assignment.owns(index) {
                    let key = (topic.clone(), partition);
                    committed.insert(key.clone(), stored.get(&key).copied());
                }
                index += 1;
            }
        } else {
            match state.partitions(topic).await? {
                Some(n) => {
                    for partition in 0..n {
                        if pipeline.assignment.owns(runtime_index(topic, partition)) {
                            let key = (topic.clone(), partition);
                            committed.insert(key.clone(), stored.get(&key).copied());
                        }
                    }
                }
                None => {
                    state.waiting.insert(topic.clone());
                }
            }
        }
    }
    Ok((committed, state, index))
}

impl Topics {
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The topic's partition count, `None` while the broker does not have it.
    async fn partitions(&mut self, topic: &str) -> Result<Option<i32>, ApplyError> {
        let client = match &self.metadata {
            Some(c) => c.clone(),
            None => {
                let c: BaseConsumer = self
                    .config
                    .create()
                    .map_err(|e| ApplyError::Kafka(format!("creating the metadata client: {e}")))?;
                let c = Arc::new(c);
                self.metadata = Some(c.clone());
                c
            }
        };
        let name = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let metadata = client
                .fetch_metadata(Some(&name), Duration::from_secs(5))
                .map_err(|e| ApplyError::Kafka(format!("metadata of {name}: {e}")))?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len() as i32))
        })
        .await
        .map_err(|e| ApplyError::Kafka(format!("the metadata lookup stopped: {e}")))?
    }
}

impl Sink {
    /// Between batches: records and applies the topic changes asked for, and starts reading
    /// added topics that appeared on the broker. True when the assignment must change.
    pub(super) async fn reconcile_topics(&mut self) -> Result<bool, ApplyError> {
        let mut changed = false;
        let pending = self.handle.pending_topic_changes();
        for change in &pending {
            self.target.save_topic(&self.pipeline.name, change).await?;
            changed |= self.apply_topic_change(change).await?;
            tracing::info!(pipeline = %self.pipeline.name, topic = %change.topic, removed = change.removed, "runtime topic change recorded");
        }
        if !self.topics.waiting.is_empty() && self.topics.last_check.elapsed() >= TOPIC_CHECK {
            self.topics.last_check = Instant::now();
            for topic in self.topics.waiting.clone() {
                if let Some(n) = self.topics.partitions(&topic).await? {
                    self.topics.waiting.remove(&topic);
                    self.add_partitions(&topic, n).await?;
                    tracing::info!(pipeline = %self.pipeline.name, topic = %topic, partitions = n, "added topic appeared; reading it");
                    changed = true;
                }
            }
        }
        if changed || !pending.is_empty() {
            self.publish_topics();
        }
        // Forget a change only once it is visible in the status.
        for change in &pending {
            self.handle.topic_change_done(change);
        }
        Ok(changed)
    }

    async fn apply_topic_change(&mut self, change: &RuntimeTopic) -> Result<bool, ApplyError> {
        let topic = change.topic.clone();
        self.topics.runtime.retain(|r| r.topic != topic);
        self.topics.runtime.push(change.clone());
        if change.removed {
            self.pipeline.kafka.topics.retain(|t| *t != topic);
            self.topics.waiting.remove(&topic);
            let before = self.committed.len();
            self.committed.retain(|k, _| k.0 != topic);
            self.tables_seen.retain(|k, _| k.0 != topic);
            for blocked in self.blocked.values_mut() {
                blocked.partitions.retain(|p| p.topic != topic);
            }
            return Ok(before != self.committed.len());
        }
        if let Some(table) = &change.table {
            self.pipeline.tables.insert(
                topic.clone(),
                TableOverride {
                    table: Some(table.clone()),
                },
            );
        }
        if !self.pipeline.kafka.topics.contains(&topic) {
            self.pipeline.kafka.topics.push(topic.clone());
        }
        if self.committed.keys().any(|k| k.0 == topic) {
            return Ok(false);
        }
        match self.topics.partitions(&topic).await? {
            Some(n) => {
                self.add_partitions(&topic, n).await?;
                Ok(true)
            }
            None => {
                self.topics.waiting.insert(topic);
                Ok(false)
            }
        }
    }

    /// Reads the topic's partitions of this process from the offsets the target holds for
    /// them, or from their first record.
    async fn add_partitions(&mut self, topic: &str, partitions: i32) -> Result<(), ApplyError> {
        let stored = self.target.load_offsets(&self.pipeline.name).await?;
        for partition in 0..partitions {
            if self
                .pipeline
                .assignment
                .owns(runtime_index(topic, partition))
            {
                let key = (topic.to_string(), partition);
                let next = stored.get(&key).copied();
                self.committed.insert(key.clone(), next);
                // A table held before its topic existed (RENAME TABLE holds the new name)
                // holds the new partitions too.
                let table = self.pipeline.target_table(topic, super::topic_table(topic));
                let at = self.position_ref(&key);
                if let Some(held) = self.blocked.get_mut(&table).filter(|b| b.held_by_request) {
                    if !held
                        .partitions
                        .iter()
                        .any(|p| p.topic == at.topic && p.partition == at.partition)
                    {
                        held.partitions.push(at);
                    }
                }
            }
        }
        Ok(())
    }

    /// Shows the runtime topics in the status.
    pub(super) fn publish_topics(&self) {
        let topics: Vec<RuntimeTopicStatus> = self
            .topics
            .runtime
            .iter()
            .map(|r| RuntimeTopicStatus {
                topic: r.topic.clone(),
                table: r.table.clone(),
                removed: r.removed,
                waiting: self.topics.waiting.contains(&r.topic),
            })
            .collect();
        let mut status = match self.handle.status.write() {
            Ok(status) => status,
            Err(poisoned) => poisoned.into_inner(),
        };
        status.runtime_topics = topics;
    }
}
