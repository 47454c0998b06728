//! The sink's loop: read a batch, decode, coalesce per table, apply with the offsets, repeat.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lockstep_debezium::{coalesce, Decoder, JsonConverterDecoder, Positioned, Record};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::pipeline::SinkPipeline;
use crate::target::Target;
use crate::{ApplyError, PartitionKey};

/// What one applied batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Kafka records read (including heartbeats and tombstones).
    pub records: usize,
    /// Row upserts and deletes written after coalescing.
    pub rows_written: usize,
    pub truncates: usize,
    /// Source commit to target commit of the batch's newest change, in milliseconds.
    pub lag_ms: Option<i64>,
}

/// A running sink for one pipeline.
pub struct Sink {
    pipeline: SinkPipeline,
    target: Target,
    consumer: StreamConsumer,
    decoder: JsonConverterDecoder,
    /// Per assigned partition, the next offset committed in the target (None: nothing yet).
    committed: BTreeMap<PartitionKey, Option<i64>>,
}

struct Polled {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Sink {
    /// Connects to the target, reads the committed offsets and seeks the consumer to them.
    pub async fn start(pipeline: SinkPipeline) -> Result<Self, ApplyError> {
        let mut target = Target::connect(&pipeline.target).await?;
        let stored = target.load_offsets(&pipeline.name).await?;

        let mut config = ClientConfig::new();
        for (k, v) in &pipeline.kafka.consumer {
            config.set(k, v);
        }
        let consumer: StreamConsumer = config
            .set("bootstrap.servers", &pipeline.kafka.bootstrap_servers)
            // The group id only names the client: partitions are assigned explicitly and the
            // offsets live in the target, so the group never commits or rebalances.
            .set("group.id", format!("lockstep-sink-{}", pipeline.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| ApplyError::Kafka(format!("creating the consumer: {e}")))?;

        let mut assignment = TopicPartitionList::new();
        let mut committed = BTreeMap::new();
        for topic in &pipeline.kafka.topics {
            let partitions = partition_count(&consumer, topic)?;
            for partition in 0..partitions {
                let key = (topic.clone(), partition);
                let stored_next = stored.get(&key).copied();
                let offset = stored_next.map_or(Offset::Beginning, Offset::Offset);
                assignment
                    .add_partition_offset(topic, partition, offset)
                    .map_err(|e| ApplyError::Kafka(e.to_string()))?;
                committed.insert(key, stored_next);
            }
        }
        consumer
            .assign(&assignment)
            .map_err(|e| ApplyError::Kafka(format!("assigning partitions: {e}")))?;
        tracing::info!(pipeline = %pipeline.name, partitions = committed.len(), "sink started");
        Ok(Self {
            pipeline,
            target,
            consumer,
            decoder: JsonConverterDecoder::new(),
            committed,
        })
    }

    /// The next offset committed in the target for each assigned partition.
    pub fn committed(&self) -> &BTreeMap<PartitionKey, Option<i64>> {
        &self.committed
    }

    async fn poll(&self, wait: Duration) -> Result<Option<Polled>, ApplyError> {
        match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => Ok(None),
            Ok(Err(e)) => Err(ApplyError::Kafka(format!(
                "{e}; if the offset is out of range, records were deleted by retention before the sink applied them and the table needs a new snapshot"
            ))),
            Ok(Ok(m)) => Ok(Some(Polled {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
            })),
        }
    }

    /// Reads one batch (up to `batch.max_rows` records, waiting at most `batch.linger_ms` after
    /// the first) and applies it. `Ok(None)` when no record arrived within `wait`.
    pub async fn run_batch(&mut self, wait: Duration) -> Result<Option<BatchStats>, ApplyError> {
        let Some(first) = self.poll(wait).await? else {
            return Ok(None);
        };
        let mut polled = vec![first];
        let deadline = Instant::now() + self.pipeline.batch.linger();
        while polled.len() < self.pipeline.batch.max_rows {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.poll(left).await? {
                Some(record) => polled.push(record),
                None => break,
            }
        }
        self.apply(polled).await.map(Some)
    }

    /// Applies batches until no record arrives for `idle`; returns the totals.
    pub async fn run_until_idle(&mut self, idle: Duration) -> Result<BatchStats, ApplyError> {
        let mut total = BatchStats::default();
        while let Some(stats) = self.run_batch(idle).await? {
            total.records += stats.records;
            total.rows_written += stats.rows_written;
            total.truncates += stats.truncates;
            total.lag_ms = stats.lag_ms.or(total.lag_ms);
        }
        Ok(total)
    }

    async fn apply(&mut self, polled: Vec<Polled>) -> Result<BatchStats, ApplyError> {
        let mut stats = BatchStats {
            records: polled.len(),
            ..BatchStats::default()
        };
        let mut next: BTreeMap<PartitionKey, i64> = BTreeMap::new();
        // Per target table, its records in Kafka order.
        let mut per_table: BTreeMap<String, Vec<Positioned<Record>>> = BTreeMap::new();
        let mut newest_source_ms = None;
        for p in polled {
            let entry = next.entry((p.topic.clone(), p.partition)).or_insert(0);
            *entry = (*entry).max(p.offset + 1);
            let record = self
                .decoder
                .decode(p.key.as_deref(), p.value.as_deref())
                .map_err(|e| ApplyError::Record {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: p.offset,
                    reason: e.to_string(),
                })?;
            let source_table = match &record {
                Record::Change(change) => {
                    newest_source_ms = change.source.ts_ms.max(newest_source_ms);
                    change.source.table.clone()
                }
                Record::Truncate(truncate) => truncate.source.table.clone(),
                // Tombstones only let Kafka compact a deleted key away: the delete event before
                // them already removed the row. Heartbeats, transaction markers and logical
                // messages carry no rows; they only move the offsets.
                _ => continue,
            };
            let Some(source_table) = source_table else {
                return Err(ApplyError::Record {
                    topic: p.topic,
                    partition: p.partition,
                    offset: p.offset,
                    reason: "the change event's source block names no table".into(),
                });
            };
            let table = self.pipeline.target_table(&p.topic, &source_table);
            per_table.entry(table).or_default().push(Positioned {
                topic: p.topic,
                partition: p.partition,
                offset: p.offset,
                record,
            });
        }

        let mut statements = Vec::new();
        for (table_name, mut records) in per_table {
            order_by_source_position(&mut records);
            let batch = coalesce(records).map_err(|e| ApplyError::Record {
                topic: String::new(),
                partition: -1,
                offset: -1,
                reason: format!("table {table_name}: {e}"),
            })?;
            let mut table = self.target.table(&table_name).await?;
            let planned = match self.target.plan(&table, &batch) {
                Err(ApplyError::SchemaDrift { .. }) => {
                    // The target may have caught up since the catalog was cached.
                    self.target.forget(&table_name);
                    table = self.target.table(&table_name).await?;
                    self.target.plan(&table, &batch)?
                }
                other => other?,
            };
            stats.truncates += usize::from(batch.truncate.is_some());
            stats.rows_written += batch.ops.len();
            statements.extend(planned);
        }

        let expected: BTreeMap<PartitionKey, Option<i64>> = next
            .keys()
            .map(|k| (k.clone(), self.committed.get(k).copied().flatten()))
            .collect();
        self.target
            .apply(&self.pipeline.name, &statements, &expected, &next)
            .await?;
        for (key, offset) in next {
            self.committed.insert(key, Some(offset));
        }
        stats.lag_ms = newest_source_ms.map(|ts| now_ms() - ts);
        Ok(stats)
    }
}

/// Puts a table's records in source commit order when every record carries a PostgreSQL LSN.
///
/// A key's changes always share one partition, so Kafka order is already right per key; but a
/// TRUNCATE has no key and lands on any partition, so only the source position says which rows
/// it removes. The sort is stable: records with equal LSNs (a snapshot) keep their Kafka order.
/// Across batches no consumer can order a keyless event against other partitions, which is why
/// pipelines that mirror TRUNCATE give each table topic one partition (see ARCHITECTURE.md).
fn order_by_source_position(records: &mut [Positioned<Record>]) {
    let lsn = |r: &Positioned<Record>| match &r.record {
        Record::Change(change) => change.source.lsn,
        Record::Truncate(truncate) => truncate.source.lsn,
        _ => None,
    };
    if records.iter().all(|r| lsn(r).is_some()) {
        records.sort_by_key(|r| lsn(r).unwrap_or_default());
    }
}

fn partition_count(consumer: &StreamConsumer, topic: &str) -> Result<i32, ApplyError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| ApplyError::Kafka(format!("metadata of {topic}: {e}")))?;
        if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) {
            if t.error().is_none() && !t.partitions().is_empty() {
                return Ok(t.partitions().len() as i32);
            }
        }
        if Instant::now() > deadline {
            return Err(ApplyError::Kafka(format!(
                "topic {topic} does not exist after 60 s: check kafka.topics against the connector's topic.prefix and table.include.list"
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
