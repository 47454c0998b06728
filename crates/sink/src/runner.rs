//! The sink's loop: read a batch, decode, coalesce per table, apply with the offsets, repeat;
//! between batches, obey commands (pause, hold) and re-check blocked tables.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lockstep_debezium::{Column, Positioned, Record};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::control::{BlockedTable, PartitionPosition, RecordRef, SinkHandle, SinkState};
use crate::dlq::{DeadLetter, DeadLetterQueue, Stage};
use crate::fetcher::{BatchLimits, Fetcher};
use crate::metrics::{DeadLetterLabels, PartitionLabels, PipelineLabels, RowLabels, TableLabels};
use crate::pipeline::{DriftPolicy, SinkPipeline, Tolerance};
use crate::target::{Statement, Target};
use crate::{ApplyError, PartitionKey, SinkMetrics};

mod ahead;
mod topics;

use ahead::{plan_ahead, plan_records, sort_record, Ahead, Planned, Sorted};

/// How often a table blocked by drift is re-checked against the target's catalog.
const RECHECK_BLOCKED: Duration = Duration::from_secs(2);

/// What one applied batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Kafka records handled (applied, skipped as heartbeats or tombstones, dead-lettered).
    pub records: usize,
    /// Row upserts and deletes written after coalescing.
    pub rows_written: usize,
    pub truncates: usize,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: usize,
    /// Tables that became blocked in this batch.
    pub newly_blocked: Vec<String>,
    /// Source commit to target commit of the batch's newest change, in milliseconds.
    pub lag_ms: Option<i64>,
    /// Where the batch's time went.
    pub phases: Phases,
}

/// Time spent per phase of a batch: what a benchmark or an operator tuning `batch` looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Waiting for the fetch thread's next batch: near zero while reading and decoding keep
    /// up with the target.
    pub poll: Duration,
    /// Decoding records, in the fetch thread, overlapped with planning and the target
    /// transaction of the batch before.
    pub decode: Duration,
    /// Coalescing and planning, dead letters included, while the target waited.
    pub plan: Duration,
    /// Coalescing and planning done ahead, during the previous batch's target transaction.
    pub plan_ahead: Duration,
    /// The target transaction: statements, offsets, commit.
    pub commit: Duration,
}

impl std::ops::AddAssign for Phases {
    fn add_assign(&mut self, other: Phases) {
        self.poll += other.poll;
        self.decode += other.decode;
        self.plan += other.plan;
        self.plan_ahead += other.plan_ahead;
        self.commit += other.commit;
    }
}

/// Where a record was polled from. Its bytes are kept only when it could not be decoded; any
/// other record that goes to the dead-letter topic is read again from Kafka ([`crate::dlq`]).
#[derive(Debug, Clone)]
pub(crate) struct Polled {
    /// Shared by the records of a topic: the fetcher allocates it once per topic and batch.
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub original: Option<crate::dlq::Original>,
    pub bytes: usize,
}

impl Polled {
    fn partition_key(&self) -> PartitionKey {
        (self.topic.to_string(), self.partition)
    }

    fn dead_letter(&self, stage: Stage, table: Option<String>, reason: String) -> DeadLetter {
        DeadLetter {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            original: self.original.clone(),
            stage,
            table,
            reason,
        }
    }
}

/// A decoded record that writes to a target table.
#[derive(Debug, Clone)]
struct TableRecord {
    index: usize,
    table: String,
    source_ts_ms: Option<i64>,
    record: Positioned<Record>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The last segment of a Debezium topic name (`prefix.schema.table` → `table`).
fn topic_table(topic: &str) -> &str {
    topic.rsplit('.').next().unwrap_or(topic)
}

/// A running sink for one pipeline.
pub struct Sink {
    pipeline: SinkPipeline,
    target: Target,
    fetcher: Fetcher,
    /// The last batch failed: the fetcher read past what the target committed.
    reseek: bool,
    /// Source time of the newest heartbeat of a committed batch, not yet shown by the freshness gauge.
    heartbeat_ms: Option<i64>,
    dlq: Option<DeadLetterQueue>,
    metrics: SinkMetrics,
    /// This process's partitions and, per partition, the next offset committed in the target.
    committed: BTreeMap<PartitionKey, Option<i64>>,
    /// Tables held, by drift or on request.
    blocked: BTreeMap<String, BlockedTable>,
    /// Which tables each partition carried so far (a hold stops all of them).
    tables_seen: BTreeMap<PartitionKey, BTreeSet<String>>,
    paused: bool,
    dead_letters: u64,
    last_recheck: Instant,
    handle: SinkHandle,
    /// Topics added or removed at runtime (`crate::topics`).
    topics: topics::Topics,
    /// The holds on request recorded in the target (`crate::holds`).
    recorded_holds: BTreeSet<String>,
    /// The next batch, read (and usually planned) during the last batch's transaction.
    ahead: Option<Ahead>,
}

impl Sink {
    /// Connects to the target, reads the committed offsets and seeks the consumer to them.
    pub async fn start(pipeline: SinkPipeline) -> Result<Self, ApplyError> {
        let handle = SinkHandle::new(&pipeline.name, pipeline.target.engine.name());
        Self::start_with(pipeline, SinkMetrics::unregistered(), handle).await
    }

    /// Starts with shared metrics and a handle that may outlive this sink (a supervisor
    /// restarting it keeps the holds and the status).
    pub async fn start_with(
        mut pipeline: SinkPipeline,
        metrics: SinkMetrics,
        handle: SinkHandle,
    ) -> Result<Self, ApplyError> {
        let mut target = Target::connect(&pipeline.target).await?;
        let stored = target.load_offsets(&pipeline.name).await?;

        let mut config = ClientConfig::new();
        // Throughput defaults, which the pipeline's `kafka.consumer` may override: librdkafka's
        // own (1 MiB per partition and fetch, 64 MiB prefetched) hold less than one batch of
        // Debezium JSON records (several KiB each with their schema), so every batch waited on
        // round trips to the broker instead of finding its records already fetched.
        // Once the prefetched queue is full (`queued.min.messages`, 100,000 records by default)
        // librdkafka waits `fetch.queue.backoff.ms` (1 s by default) before it fetches again; a
        // sink catching up drains 100,000 records well within that and then sat idle, every
        // core of the machine waiting on that timer for a few hundred milliseconds.
        config
            .set("max.partition.fetch.bytes", "16777216")
            .set("fetch.max.bytes", "67108864")
            .set("queued.max.messages.kbytes", "262144")
            .set("fetch.queue.backoff.ms", "10")
            .set("fetch.wait.max.ms", "100");
        for (k, v) in &pipeline.kafka.consumer {
            config.set(k, v);
        }
        let consumer: BaseConsumer = config
            .set("bootstrap.servers", &pipeline.kafka.bootstrap_servers)
            // The group id only names the client: partitions are assigned explicitly and the
            // offsets live in the target, so the group never commits or rebalances.
            .set("group.id", format!("lockstep-sink-{}", pipeline.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .create()
            .map_err(|e| ApplyError::Kafka(format!("creating the consumer: {e}")))?;

        // Holds asked for before a restart still hold (`crate::holds`).
        let recorded_holds: BTreeSet<String> = target
            .load_holds(&pipeline.name)
            .await?
            .into_iter()
            .collect();
        for table in &recorded_holds {
            tracing::info!(pipeline = %pipeline.name, table = %table, "table held on request before the restart: held again");
            handle.hold(table);
        }
        // The file's topics with the runtime ones (added / removed by `lockstep ddl`) applied.
        let runtime = target.load_topics(&pipeline.name).await?;
        let (committed, topics, index) =
            topics::initial_partitions(&mut pipeline, runtime, &consumer, &config, &stored).await?;
        if committed.is_empty() && topics.waiting() == 0 {
            return Err(ApplyError::Config(format!(
                "assignment instance {} of {} owns none of the pipeline's {index} partitions; run fewer instances",
                pipeline.assignment.instance, pipeline.assignment.instances
            )));
        }
        let dlq = match &pipeline.errors.dead_letter_topic {
            Some(topic) => Some(DeadLetterQueue::new(
                &pipeline.kafka.bootstrap_servers,
                &pipeline.kafka.consumer,
                config.clone(),
                topic,
                &pipeline.name,
            )?),
            None => None,
        };
        let limits = BatchLimits {
            max_rows: pipeline.batch.max_rows,
            max_bytes: pipeline.batch.max_bytes,
            linger: pipeline.batch.linger(),
        };
        let fetcher = Fetcher::spawn(consumer, limits, &pipeline.name)?;
        let mut sink = Self {
            pipeline,
            target,
            fetcher,
            reseek: false,
            heartbeat_ms: None,
            dlq,
            metrics,
            committed,
            blocked: BTreeMap::new(),
            tables_seen: BTreeMap::new(),
            paused: false,
            dead_letters: 0,
            last_recheck: Instant::now(),
            handle,
            topics,
            recorded_holds,
            ahead: None,
        };
        sink.export_slo();
        sink.publish_topics();
        sink.take_commands();
        sink.record_holds().await?;
        sink.reassign()?;
        sink.publish(SinkState::Running, None);
        tracing::info!(pipeline = %sink.pipeline.name, partitions = sink.committed.len(), "sink started");
        Ok(sink)
    }

    fn export_slo(&self) {
        let labels = self.labels();
        let slo = self.pipeline.slo;
        self.metrics
            .slo_lag_seconds
            .get_or_create(&labels)
            .set(slo.lag_seconds);
        self.metrics
            .slo_objective
            .get_or_create(&labels)
            .set(slo.objective);
        self.metrics
            .slo_freshness_seconds
            .get_or_create(&labels)
            .set(slo.freshness_seconds);
    }

    /// The next offset committed in the target for each assigned partition.
    pub fn committed(&self) -> &BTreeMap<PartitionKey, Option<i64>> {
        &self.committed
    }

    /// Status and commands, for the API and the CLI.
    pub fn handle(&self) -> SinkHandle {
        self.handle.clone()
    }

    /// The tables currently held (by drift or on request).
    pub fn blocked(&self) -> Vec<BlockedTable> {
        self.blocked.values().cloned().collect()
    }

    fn labels(&self) -> PipelineLabels {
        PipelineLabels {
            pipeline: self.pipeline.name.clone(),
        }
    }

    /// Partitions that must not be consumed now.
    fn held_partitions(&self) -> BTreeSet<PartitionKey> {
        let mut held = BTreeSet::new();
        for blocked in self.blocked.values() {
            for p in &blocked.partitions {
                held.insert((p.topic.to_string(), p.partition));
            }
        }
        held
    }

    /// Points the consumer at the committed offset of every partition it may consume.
    ///
    /// Between batches everything polled has been applied, dead-lettered or cut off by a block,
    /// so the committed offsets are exactly where each partition must resume.
    fn reassign(&mut self) -> Result<(), ApplyError> {
        let held = self.held_partitions();
        let mut assignment = Vec::new();
        if !self.paused {
            for (key, next) in &self.committed {
                if !held.contains(key) {
                    assignment.push((key.0.clone(), key.1, *next));
                }
            }
        }
        self.reseek = false;
        // Read under the assignment being replaced.
        self.ahead = None;
        self.fetcher.assign(assignment)
    }

    fn publish(&self, state: SinkState, error: Option<String>) {
        let held = self.held_partitions();
        let mut status = match self.handle.status.write() {
            Ok(status) => status,
            Err(poisoned) => poisoned.into_inner(),
        };
        status.state = if state == SinkState::Running && self.paused {
            SinkState::Paused
        } else {
            state
        };
        if error.is_some() {
            status.last_error = error;
        }
        status.partitions = self
            .committed
            .iter()
            .map(|(key, next)| PartitionPosition {
                topic: key.0.clone(),
                partition: key.1,
                next_offset: *next,
                consuming: !self.paused && !held.contains(key),
            })
            .collect();
        status.blocked = self.blocked.values().cloned().collect();
        status.dead_letters = self.dead_letters;
    }

    /// Marks the sink failed in its status (the caller stops it).
    pub fn fail(&self, error: &ApplyError) {
        self.publish(SinkState::Failed, Some(error.to_string()));
    }

    /// Marks the sink stopped in its status.
    pub fn stop(&self) {
        self.publish(SinkState::Stopped, None);
    }

    /// Records the holds on request taken or lifted since the last call, before the status
    /// shows them: a hold the status shows outlives the process.
    async fn record_holds(&mut self) -> Result<(), ApplyError> {
        let now: BTreeSet<String> = self
            .blocked
            .values()
            .filter(|b| b.held_by_request)
            .map(|b| b.table.clone())
            .collect();
        for table in now.difference(&self.recorded_holds) {
            self.target
                .save_hold(&self.pipeline.name, table, true)
                .await?;
        }
        for table in self.recorded_holds.difference(&now) {
            self.target
                .save_hold(&self.pipeline.name, table, false)
                .await?;
        }
        self.recorded_holds = now;
        Ok(())
    }

    /// Reconciles with the desired state (pause, holds); true when the assignment must change.
    fn take_commands(&mut self) -> bool {
        let desired = self.handle.desired();
        let mut changed = desired.paused != self.paused;
        self.paused = desired.paused;
        if desired.recheck_now {
            self.last_recheck = Instant::now() - RECHECK_BLOCKED;
        }
        for table in &desired.held {
            if self.blocked.get(table).is_some_and(|b| b.held_by_request) {
                continue;
            }
            let partitions: Vec<RecordRef> = self
                .partitions_of_table(table)
                .iter()
                .map(|p| self.position_ref(p))
                .collect();
            tracing::info!(pipeline = %self.pipeline.name, table = %table, partitions = partitions.len(), "table held on request");
            let entry = self.blocked.entry(table.clone()).or_insert(BlockedTable {
                table: table.clone(),
                reason: "held on request".into(),
                missing_columns: Vec::new(),
                record: None,
                partitions: Vec::new(),
                since_ms: now_ms(),
                held_by_request: true,
            });
            entry.held_by_request = true;
            for p in partitions {
                if !entry
                    .partitions
                    .iter()
                    .any(|r| r.topic == p.topic && r.partition == p.partition)
                {
                    entry.partitions.push(p);
                }
            }
            changed = true;
        }
        let lifted: Vec<String> = self
            .blocked
            .values()
            .filter(|b| b.held_by_request && !desired.held.contains(&b.table))
            .map(|b| b.table.clone())
            .collect();
        for table in lifted {
            tracing::info!(pipeline = %self.pipeline.name, table = %table, "hold released");
            let drift = self.blocked.get(&table).is_some_and(|b| b.record.is_some());
            if drift {
                // Still blocked by drift until the re-check finds the target ready.
                if let Some(b) = self.blocked.get_mut(&table) {
                    b.held_by_request = false;
                }
            } else {
                self.blocked.remove(&table);
                self.set_blocked_metric(&table, false);
                changed = true;
            }
        }
        self.metrics
            .paused
            .get_or_create(&self.labels())
            .set(i64::from(self.paused));
        for table in self.blocked.keys() {
            self.set_blocked_metric(table, true);
        }
        changed
    }

    fn set_blocked_metric(&self, table: &str, blocked: bool) {
        self.metrics
            .blocked_tables
            .get_or_create(&TableLabels {
                pipeline: self.pipeline.name.clone(),
                table: table.to_string(),
            })
            .set(i64::from(blocked));
    }

    fn position_ref(&self, key: &PartitionKey) -> RecordRef {
        RecordRef {
            topic: key.0.clone(),
            partition: key.1,
            offset: self.committed.get(key).copied().flatten().unwrap_or(0),
        }
    }

    /// This process's partitions that carry `table`: by Debezium's topic naming (or the
    /// pipeline's override) and by what was seen on them.
    fn partitions_of_table(&self, table: &str) -> Vec<PartitionKey> {
        self.committed
            .keys()
            .filter(|key| {
                self.pipeline.target_table(&key.0, topic_table(&key.0)) == table
                    || self
                        .tables_seen
                        .get(*key)
                        .is_some_and(|tables| tables.contains(table))
            })
            .cloned()
            .collect()
    }

    /// Releases drift-blocked tables whose target now has what they wait for.
    async fn recheck_blocked(&mut self) -> Result<bool, ApplyError> {
        if self.last_recheck.elapsed() < RECHECK_BLOCKED {
            return Ok(false);
        }
        self.last_recheck = Instant::now();
        let waiting: Vec<BlockedTable> = self
            .blocked
            .values()
            .filter(|b| !b.held_by_request && b.record.is_some())
            .cloned()
            .collect();
        let mut released = false;
        for blocked in waiting {
            self.target.forget(&blocked.table);
            let ready = match self.target.table(&blocked.table).await {
                Ok(table) => blocked
                    .missing_columns
                    .iter()
                    .all(|c| table.column_type(c).is_some()),
                Err(ApplyError::MissingTable { .. }) => false,
                Err(e) => return Err(e),
            };
            if ready {
                tracing::info!(pipeline = %self.pipeline.name, table = %blocked.table, "target schema caught up; table released");
                self.blocked.remove(&blocked.table);
                self.set_blocked_metric(&blocked.table, false);
                released = true;
            }
        }
        Ok(released)
    }

    /// Reads one batch (up to `batch.max_rows` records or `batch.max_bytes`, waiting at most
    /// `batch.linger_ms` after the first) and applies it. `Ok(None)` when no record arrived
    /// within `wait`.
    pub async fn run_batch(&mut self, wait: Duration) -> Result<Option<BatchStats>, ApplyError> {
        let mut reassign = self.reconcile_topics().await?;
        reassign |= self.take_commands() || self.reseek;
        self.record_holds().await?;
        reassign |= self.recheck_blocked().await?;
        if reassign {
            self.reassign()?;
            self.publish(SinkState::Running, None);
        }
        if self.paused {
            tokio::time::sleep(wait).await;
            return Ok(None);
        }
        let polling = Instant::now();
        // A batch read ahead is used only under the assignment it was read with; every
        // re-assignment drops it anyway.
        let ahead = self
            .ahead
            .take()
            .filter(|a| a.generation() == self.fetcher.generation());
        let work = match ahead {
            Some(Ahead::Planned { planned, .. }) => Some(Work::Planned(planned)),
            Some(Ahead::Raw(batch)) => Some(Work::Fetched(batch)),
            Some(Ahead::Failed { error, .. }) => {
                self.reseek = true;
                self.fail(&error);
                return Err(error);
            }
            Some(Ahead::Reread { .. }) => {
                self.reassign()?;
                None
            }
            None => None,
        };
        let work = match work {
            Some(work) => work,
            None => match self.fetcher.next(wait).await {
                Ok(Some(batch)) => Work::Fetched(batch),
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.reseek = true;
                    self.fail(&e);
                    return Err(e);
                }
            },
        };
        let polled_in = polling.elapsed();
        // No record of a held partition arrives here: every hold or release re-assigns the
        // fetcher (a new generation) before the next batch, and the fetcher drops batches read
        // under an older one. A held partition resumes from its committed offset when released.
        let held = self.held_partitions();
        let (count, bytes, decode) = match &work {
            Work::Planned(p) => (p.polled.len(), p.bytes, p.decode),
            Work::Fetched(b) => (b.polled.len(), b.bytes, b.decode),
        };
        let applying = Instant::now();
        let mut result = match work {
            Work::Planned(planned) => {
                self.note_tables_seen(&planned.records);
                self.commit(Ready::from(planned)).await
            }
            Work::Fetched(batch) => self.apply(batch.polled, batch.decoded).await,
        };
        // A table blocked in this batch stops its partitions right before the blocking record,
        // but the consumer has fetched past it. Without a new assignment the next batch would
        // go on after this one, and its offsets would pass every record the block held back
        // (the deletes after a blocked change show no drift, so they were applied and
        // committed, and the held changes were lost). Seek the partitions to their committed
        // offsets again, the held ones left out.
        if result.is_ok() && self.held_partitions() != held {
            if let Err(e) = self.reassign() {
                result = Err(e);
            }
        }
        if let Ok(stats) = &mut result {
            stats.phases.poll = polled_in;
            stats.phases.decode = decode;
        }
        tracing::debug!(
            pipeline = %self.pipeline.name,
            records = count,
            bytes,
            poll_ms = polled_in.as_millis() as u64,
            apply_ms = applying.elapsed().as_millis() as u64,
            "batch"
        );
        if let (Ok(_), Some(cap)) = (&result, self.dead_letter_cap_reached()) {
            result = Err(cap);
        }
        match &result {
            Ok(_) => self.publish(SinkState::Running, None),
            Err(e) => {
                // The fetcher has read past the records of the failed batch: a retry must
                // start from what the target committed.
                self.reseek = true;
                self.fail(e);
            }
        }
        result.map(Some)
    }

    /// Applies batches until no record arrives for `idle`; returns the totals.
    pub async fn run_until_idle(&mut self, idle: Duration) -> Result<BatchStats, ApplyError> {
        let mut total = BatchStats::default();
        while let Some(stats) = self.run_batch(idle).await? {
            total.records += stats.records;
            total.rows_written += stats.rows_written;
            total.truncates += stats.truncates;
            total.dead_lettered += stats.dead_lettered;
            total.newly_blocked.extend(stats.newly_blocked);
            total.lag_ms = stats.lag_ms.or(total.lag_ms);
            total.phases += stats.phases;
        }
        Ok(total)
    }

    /// Sends a poison record to the dead-letter list, or stops the sink when the pipeline
    /// tolerates none.
    fn poison(
        &self,
        letters: &mut Vec<DeadLetter>,
        polled: &Polled,
        stage: Stage,
        table: Option<String>,
        error: ApplyError,
    ) -> Result<(), ApplyError> {
        if self.pipeline.errors.tolerance == Tolerance::None || self.dlq.is_none() {
            const HINT: &str = "set errors.tolerance: all with a dead_letter_topic to set such records aside and go on";
            return Err(match error {
                ApplyError::Record {
                    topic,
                    partition,
                    offset,
                    reason,
                } => ApplyError::Record {
                    topic,
                    partition,
                    offset,
                    reason: format!("{reason} ({HINT})"),
                },
                other => ApplyError::Record {
                    topic: polled.topic.to_string(),
                    partition: polled.partition,
                    offset: polled.offset,
                    reason: format!("{other} ({HINT})"),
                },
            });
        }
        letters.push(polled.dead_letter(stage, table, error.to_string()));
        Ok(())
    }

    /// The full path: sorts the batch's records (dead-lettering the undecodable), plans every
    /// table (blocking, evolving or setting records aside as the pipeline says), then commits.
    async fn apply(
        &mut self,
        polled: Vec<Polled>,
        decoded: Vec<Result<Record, String>>,
    ) -> Result<BatchStats, ApplyError> {
        let started = Instant::now();
        let mut letters = Vec::new();
        let mut records = Vec::with_capacity(polled.len());
        // Counted for freshness only once this batch commits.
        let mut heartbeat_ms: Option<i64> = None;
        for (index, (p, decoded)) in polled.iter().zip(decoded).enumerate() {
            match sort_record(&self.pipeline, index, p, decoded) {
                Sorted::Table(record) => records.push(record),
                Sorted::Heartbeat(ts) => heartbeat_ms = heartbeat_ms.max(Some(ts)),
                Sorted::Skip => {}
                Sorted::Poison(error) => {
                    self.poison(&mut letters, p, Stage::Decode, None, error)?;
                }
            }
        }
        self.note_tables_seen(&records);

        // Per partition, the first offset not to apply because its table is blocked.
        let mut cuts: BTreeMap<PartitionKey, i64> = BTreeMap::new();
        let mut stats = BatchStats::default();
        let mut attempts = 0usize;
        let (statements, counts) = loop {
            attempts += 1;
            if attempts > polled.len() + 16 {
                return Err(ApplyError::Config(
                    "planning the batch did not settle (a table kept blocking or evolving); please report this with the sink's log".into(),
                ));
            }
            match self
                .plan_all(&polled, &records, &mut cuts, &mut letters, &mut stats)
                .await?
            {
                Some(statements) => break statements,
                None => continue,
            }
        };
        self.commit(Ready {
            polled,
            records,
            statements,
            counts,
            heartbeat_ms,
            cuts,
            letters,
            stats,
            started,
        })
        .await
    }

    fn note_tables_seen(&mut self, records: &[TableRecord]) {
        for r in records {
            let seen = self
                .tables_seen
                .entry((r.record.topic.to_string(), r.record.partition))
                .or_default();
            if !seen.contains(&r.table) {
                seen.insert(r.table.clone());
            }
        }
    }

    /// Sends the batch's dead letters, then applies its statements and moves its offsets in
    /// one target transaction, reading and planning the next batch meanwhile when this one is
    /// plain (no cut, no dead letter).
    async fn commit(&mut self, ready: Ready) -> Result<BatchStats, ApplyError> {
        let Ready {
            polled,
            records,
            statements,
            counts,
            heartbeat_ms,
            cuts,
            mut letters,
            mut stats,
            started,
        } = ready;
        let cut = |p: &Polled| {
            !cuts.is_empty() && cuts.get(&p.partition_key()).is_some_and(|c| p.offset >= *c)
        };
        // Dead letters past a cut are re-read (and re-judged) when the table is released.
        letters.retain(|l| {
            cuts.get(&(l.topic.clone(), l.partition))
                .is_none_or(|c| l.offset < *c)
        });

        // The offsets this batch moves: past every record it handled, up to the cuts. A batch
        // holds a few partitions: a short list found by comparison, not a map keyed by a copy
        // of the topic name per record.
        let mut ends: Vec<(&str, i32, i64)> = Vec::new();
        for p in polled.iter().filter(|p| !cut(p)) {
            match ends
                .iter_mut()
                .find(|(topic, partition, _)| *partition == p.partition && **topic == *p.topic)
            {
                Some(end) => end.2 = end.2.max(p.offset + 1),
                None => ends.push((&p.topic, p.partition, p.offset + 1)),
            }
        }
        let next: BTreeMap<PartitionKey, i64> = ends
            .into_iter()
            .map(|(topic, partition, end)| ((topic.to_string(), partition), end))
            .collect();
        stats.records = polled.iter().filter(|p| !cut(p)).count();

        if let Some(dlq) = &self.dlq {
            if !letters.is_empty() {
                dlq.send_all(&letters).await?;
            }
        }
        let expected = self.expected(&next);
        let planned_in = started.elapsed();
        let applying = Instant::now();
        let statement_count = statements.len();
        // A cut re-assigns the fetcher after this batch, and dead letters are rare: only a
        // plain batch reads ahead.
        let (applied, ahead) = if cuts.is_empty() && letters.is_empty() {
            let catalog = self.target.catalog();
            let pipeline = self.pipeline.clone();
            let done = tokio::sync::Notify::new();
            let (target, fetcher, name) =
                (&mut self.target, &mut self.fetcher, &self.pipeline.name);
            let commit = async {
                let applied = target.apply(name, statements, &expected, &next).await;
                done.notify_one();
                applied
            };
            tokio::join!(commit, read_ahead(fetcher, &done, pipeline, catalog))
        } else {
            let applied = self
                .target
                .apply(&self.pipeline.name, statements, &expected, &next)
                .await;
            (applied, None)
        };
        let committed_in = applying.elapsed();
        tracing::debug!(
            plan_ms = planned_in.as_millis() as u64,
            commit_ms = committed_in.as_millis() as u64,
            statements = statement_count,
            "apply phases"
        );
        stats.phases.plan = planned_in;
        stats.phases.commit = committed_in;
        match applied {
            Ok(()) => self.ahead = ahead,
            Err(e)
                if e.is_poison()
                    && self.pipeline.errors.tolerance == Tolerance::All
                    && self.dlq.is_some() =>
            {
                tracing::warn!(pipeline = %self.pipeline.name, error = %e, "the target rejected a row; applying the batch one record at a time to find it");
                // Whatever was read ahead is read again after the slow path.
                if ahead.is_some() {
                    self.reseek = true;
                }
                let included: Vec<&Polled> = polled.iter().filter(|p| !cut(p)).collect();
                let result = self
                    .apply_one_by_one(&included, &records, &letters, started)
                    .await;
                if result.is_ok() {
                    // Shown at the next commit.
                    self.heartbeat_ms = self.heartbeat_ms.max(heartbeat_ms);
                }
                return result;
            }
            Err(e) => return Err(e),
        }
        self.heartbeat_ms = self.heartbeat_ms.max(heartbeat_ms);
        let applied: Vec<&TableRecord> =
            records.iter().filter(|r| !cut(&polled[r.index])).collect();
        self.after_commit(
            &next,
            &counts,
            &applied,
            &letters,
            stats.records as u64,
            started,
        );
        stats.rows_written = counts.values().map(|t| t.upserts + t.deletes).sum();
        stats.truncates = counts.values().map(|t| t.truncates).sum();
        stats.dead_lettered = letters.len();
        stats.lag_ms = records
            .iter()
            .filter(|r| !cut(&polled[r.index]))
            .filter_map(|r| r.source_ts_ms)
            .max()
            .map(|ts| now_ms() - ts);
        // Freeing a batch (every record's rows and raw bytes) takes a while; done here it would
        // delay the next batch's transaction, so a blocking thread does it.
        tokio::task::spawn_blocking(move || drop((polled, records)));
        Ok(stats)
    }

    fn expected(&self, next: &BTreeMap<PartitionKey, i64>) -> BTreeMap<PartitionKey, Option<i64>> {
        next.keys()
            .map(|k| (k.clone(), self.committed.get(k).copied().flatten()))
            .collect()
    }

    /// Plans every table's records. `None` when a table became blocked or a record was set
    /// aside: the caller plans again without them.
    async fn plan_all(
        &mut self,
        polled: &[Polled],
        records: &[TableRecord],
        cuts: &mut BTreeMap<PartitionKey, i64>,
        letters: &mut Vec<DeadLetter>,
        stats: &mut BatchStats,
    ) -> Result<Option<(Vec<Statement>, BTreeMap<String, TableCounts>)>, ApplyError> {
        let dead: BTreeSet<(String, i32, i64)> = letters
            .iter()
            .map(|l| (l.topic.clone(), l.partition, l.offset))
            .collect();
        let mut per_table: BTreeMap<&str, Vec<&TableRecord>> = BTreeMap::new();
        let filtering = !cuts.is_empty() || !dead.is_empty();
        for r in records {
            if filtering {
                let p = &polled[r.index];
                let is_cut = cuts.get(&p.partition_key()).is_some_and(|c| p.offset >= *c);
                if is_cut || dead.contains(&(p.topic.to_string(), p.partition, p.offset)) {
                    continue;
                }
            }
            per_table.entry(r.table.as_str()).or_default().push(r);
        }
        let mut statements = Vec::new();
        let mut counts = BTreeMap::new();
        for (table_name, table_records) in per_table {
            match self.plan_table(table_name, &table_records).await {
                Ok((planned, table_counts)) => {
                    statements.extend(planned);
                    counts.insert(table_name.to_string(), table_counts);
                }
                Err(e @ (ApplyError::SchemaDrift { .. } | ApplyError::MissingTable { .. })) => {
                    if self.pipeline.schema_drift == DriftPolicy::Fail {
                        return Err(e);
                    }
                    if let (DriftPolicy::Evolve, ApplyError::SchemaDrift { columns, .. }) =
                        (self.pipeline.schema_drift, &e)
                    {
                        self.evolve(table_name, &table_records, columns).await?;
                        return Ok(None);
                    }
                    let first = self.first_unappliable(table_name, &table_records).await?;
                    self.block(table_name, first, &e, cuts);
                    stats.newly_blocked.push(table_name.to_string());
                    return Ok(None);
                }
                Err(e) if e.is_poison() => {
                    let before = letters.len();
                    self.set_aside_poison(polled, &table_records, letters, e)
                        .await?;
                    if letters.len() == before {
                        return Err(ApplyError::Config(format!(
                            "table {table_name}: the batch cannot be planned but no single record fails on its own; please report this"
                        )));
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some((statements, counts)))
    }

    /// Coalesces and plans one table's records, refreshing the cached catalog once on drift.
    async fn plan_table(
        &mut self,
        table_name: &str,
        table_records: &[&TableRecord],
    ) -> Result<(Vec<Statement>, TableCounts), ApplyError> {
        let engine = self.pipeline.target.engine;
        let table = self.target.table(table_name).await?;
        match plan_records(engine, &table, table_records) {
            Err(ApplyError::SchemaDrift { .. } | ApplyError::KeyMismatch { .. }) => {
                // The target may have caught up since the catalog was cached (new columns,
                // or a primary key changed with the source's by a key-change plan).
                self.target.forget(table_name);
                let table = self.target.table(table_name).await?;
                plan_records(engine, &table, table_records)
            }
            other => other,
        }
    }

    /// `evolve`: adds the missing columns, typed from the first record that carries each.
    async fn evolve(
        &mut self,
        table_name: &str,
        table_records: &[&TableRecord],
        missing: &[String],
    ) -> Result<(), ApplyError> {
        let mut columns: Vec<Column> = Vec::new();
        for name in missing {
            let found = table_records.iter().find_map(|r| match &r.record.record {
                Record::Change(change) => {
                    change.after.as_ref().and_then(|row| row.get(name)).cloned()
                }
                _ => None,
            });
            if let Some(column) = found {
                columns.push(column);
            }
        }
        if columns.is_empty() {
            return Err(ApplyError::SchemaDrift {
                table: table_name.to_string(),
                columns: missing.to_vec(),
            });
        }
        let table = self.target.table(table_name).await?;
        tracing::info!(pipeline = %self.pipeline.name, table = table_name, columns = ?missing, "evolve: adding nullable columns to the target");
        self.target.add_nullable_columns(&table, &columns).await?;
        self.target.forget(table_name);
        Ok(())
    }

    /// Per partition, the offset of the table's first record the target cannot take on its own
    /// (drift, missing table): the block starts there, and what comes before it is applied. So
    /// a batch holding the last changes before a RENAME and the first after it applies the
    /// former (which the renamed target could no longer take) and holds the latter. Partitions
    /// without such a record go on. Should no record fail on its own, every partition of the
    /// table stops at its first record.
    async fn first_unappliable(
        &mut self,
        table_name: &str,
        table_records: &[&TableRecord],
    ) -> Result<BTreeMap<PartitionKey, i64>, ApplyError> {
        let mut first: BTreeMap<PartitionKey, i64> = BTreeMap::new();
        for r in table_records {
            let key = (r.record.topic.to_string(), r.record.partition);
            if first.contains_key(&key) {
                continue;
            }
            match self.plan_table(table_name, std::slice::from_ref(r)).await {
                Err(ApplyError::SchemaDrift { .. } | ApplyError::MissingTable { .. }) => {
                    first.insert(key, r.record.offset);
                }
                // Poison is judged when the batch is planned again without the held records.
                Ok(_) => {}
                Err(e) if e.is_poison() => {}
                Err(e) => return Err(e),
            }
        }
        if first.is_empty() {
            for r in table_records {
                let key = (r.record.topic.to_string(), r.record.partition);
                let entry = first.entry(key).or_insert(r.record.offset);
                *entry = (*entry).min(r.record.offset);
            }
        }
        Ok(first)
    }

    /// `block`: holds the table from `first` (per partition, its first record not to apply).
    fn block(
        &mut self,
        table_name: &str,
        first: BTreeMap<PartitionKey, i64>,
        error: &ApplyError,
        cuts: &mut BTreeMap<PartitionKey, i64>,
    ) {
        for (key, offset) in &first {
            let cut = cuts.entry(key.clone()).or_insert(*offset);
            *cut = (*cut).min(*offset);
        }
        let earliest = first
            .iter()
            .min_by_key(|(_, offset)| **offset)
            .map(|(key, offset)| RecordRef {
                topic: key.0.clone(),
                partition: key.1,
                offset: *offset,
            });
        let missing_columns = match error {
            ApplyError::SchemaDrift { columns, .. } => columns.clone(),
            _ => Vec::new(),
        };
        tracing::warn!(pipeline = %self.pipeline.name, table = table_name, error = %error, "table blocked until the target schema catches up; other tables go on");
        let mut partitions: Vec<RecordRef> = first
            .iter()
            .map(|(key, offset)| RecordRef {
                topic: key.0.clone(),
                partition: key.1,
                offset: *offset,
            })
            .collect();
        let previous = self.blocked.remove(table_name);
        if let Some(previous) = &previous {
            for p in &previous.partitions {
                if !partitions
                    .iter()
                    .any(|q| q.topic == p.topic && q.partition == p.partition)
                {
                    partitions.push(p.clone());
                }
            }
        }
        self.blocked.insert(
            table_name.to_string(),
            BlockedTable {
                table: table_name.to_string(),
                reason: error.to_string(),
                missing_columns,
                record: earliest,
                partitions,
                since_ms: previous.as_ref().map_or_else(now_ms, |p| p.since_ms),
                held_by_request: previous.is_some_and(|p| p.held_by_request),
            },
        );
        self.set_blocked_metric(table_name, true);
    }

    /// Finds the records of a table that fail on their own and sets them aside.
    async fn set_aside_poison(
        &mut self,
        polled: &[Polled],
        table_records: &[&TableRecord],
        letters: &mut Vec<DeadLetter>,
        batch_error: ApplyError,
    ) -> Result<(), ApplyError> {
        tracing::warn!(pipeline = %self.pipeline.name, error = %batch_error, "planning failed; checking the table's records one by one");
        for r in table_records {
            match self.plan_table(&r.table, std::slice::from_ref(r)).await {
                Ok(_) => {}
                Err(e) if e.is_poison() => {
                    self.poison(
                        letters,
                        &polled[r.index],
                        Stage::Plan,
                        Some(r.table.clone()),
                        e,
                    )?;
                }
                // Drift or an outage shows up again when the batch is planned without them.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// The slow path after the target rejected a batch: each record in its own transaction
    /// (with its offset), so the rejected ones are identified and dead-lettered exactly.
    async fn apply_one_by_one(
        &mut self,
        included: &[&Polled],
        records: &[TableRecord],
        earlier_letters: &[DeadLetter],
        started: Instant,
    ) -> Result<BatchStats, ApplyError> {
        let mut stats = BatchStats::default();
        let by_index: BTreeMap<(String, i32, i64), &TableRecord> = records
            .iter()
            .map(|r| {
                (
                    (
                        r.record.topic.to_string(),
                        r.record.partition,
                        r.record.offset,
                    ),
                    r,
                )
            })
            .collect();
        for p in included {
            let coordinates = (p.topic.to_string(), p.partition, p.offset);
            let next = BTreeMap::from([(p.partition_key(), p.offset + 1)]);
            let expected = self.expected(&next);
            let mut letter = earlier_letters
                .iter()
                .find(|l| {
                    *l.topic == *p.topic && l.partition == p.partition && l.offset == p.offset
                })
                .cloned();
            let mut planned = (Vec::new(), BTreeMap::new());
            if letter.is_none() {
                if let Some(r) = by_index.get(&coordinates) {
                    match self.plan_table(&r.table, &[*r]).await {
                        Ok((statements, counts)) => {
                            planned = (statements, BTreeMap::from([(r.table.clone(), counts)]))
                        }
                        Err(e) if e.is_poison() => {
                            letter = Some(p.dead_letter(
                                Stage::Plan,
                                Some(r.table.clone()),
                                e.to_string(),
                            ))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            if letter.is_none() {
                match self
                    .target
                    .apply(
                        &self.pipeline.name,
                        std::mem::take(&mut planned.0),
                        &expected,
                        &next,
                    )
                    .await
                {
                    Ok(()) => {
                        let single: Vec<&TableRecord> =
                            by_index.get(&coordinates).copied().into_iter().collect();
                        self.after_commit(&next, &planned.1, &single, &[], 1, started);
                        stats.rows_written += planned
                            .1
                            .values()
                            .map(|t| t.upserts + t.deletes)
                            .sum::<usize>();
                        stats.records += 1;
                        continue;
                    }
                    Err(e) if e.is_poison() => {
                        let table = by_index.get(&coordinates).map(|r| r.table.clone());
                        letter = Some(p.dead_letter(Stage::Apply, table, e.to_string()));
                    }
                    Err(e) => return Err(e),
                }
            }
            if let (Some(letter), Some(dlq)) = (letter, &self.dlq) {
                dlq.send_all(std::slice::from_ref(&letter)).await?;
                self.target
                    .apply(&self.pipeline.name, Vec::new(), &expected, &next)
                    .await?;
                self.after_commit(
                    &next,
                    &BTreeMap::new(),
                    &[],
                    std::slice::from_ref(&letter),
                    1,
                    started,
                );
                stats.dead_lettered += 1;
                stats.records += 1;
            }
        }
        Ok(stats)
    }

    /// Records a committed batch: positions, counters, lag.
    fn after_commit(
        &mut self,
        next: &BTreeMap<PartitionKey, i64>,
        counts: &BTreeMap<String, TableCounts>,
        records: &[&TableRecord],
        letters: &[DeadLetter],
        records_handled: u64,
        started: Instant,
    ) {
        let pipeline = self.pipeline.name.clone();
        let replayed = self.target.take_replayed_batches();
        if replayed > 0 {
            self.metrics
                .replayed_batches
                .get_or_create(&self.labels())
                .inc_by(replayed);
        }
        for (key, offset) in next {
            self.committed.insert(key.clone(), Some(*offset));
            self.metrics
                .committed_offset
                .get_or_create(&PartitionLabels {
                    pipeline: pipeline.clone(),
                    topic: key.0.clone(),
                    partition: key.1.to_string(),
                })
                .set(*offset);
        }
        for (table, c) in counts {
            for (op, n) in [
                ("upsert", c.upserts),
                ("delete", c.deletes),
                ("truncate", c.truncates),
            ] {
                if n > 0 {
                    self.metrics
                        .rows_applied
                        .get_or_create(&RowLabels {
                            pipeline: pipeline.clone(),
                            table: table.clone(),
                            op: op.to_string(),
                        })
                        .inc_by(n as u64);
                }
            }
        }
        let now = now_ms();
        let mut lags: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut newest = self.heartbeat_ms.take();
        for r in records {
            if let Some(ts) = r.source_ts_ms {
                lags.entry(r.table.as_str())
                    .or_default()
                    .push((now - ts).max(0) as f64 / 1000.0);
                newest = newest.max(Some(ts));
            }
        }
        let slo = self.pipeline.slo;
        for (table, values) in lags {
            let labels = TableLabels {
                pipeline: pipeline.clone(),
                table: table.to_string(),
            };
            let histogram = self.metrics.lag_seconds.get_or_create_owned(&labels);
            let within = values.iter().filter(|v| **v <= slo.lag_seconds).count();
            for value in values {
                histogram.observe(value);
            }
            self.metrics
                .changes_within_slo
                .get_or_create(&labels)
                .inc_by(within as u64);
        }
        if let Some(ts) = newest {
            let gauge = self
                .metrics
                .source_timestamp
                .get_or_create_owned(&PipelineLabels {
                    pipeline: pipeline.clone(),
                });
            let seconds = ts as f64 / 1000.0;
            if seconds > gauge.get() {
                gauge.set(seconds);
            }
        }
        for letter in letters {
            self.metrics
                .dead_letters
                .get_or_create(&DeadLetterLabels {
                    pipeline: pipeline.clone(),
                    topic: letter.topic.clone(),
                    stage: letter.stage.as_str().to_string(),
                })
                .inc();
        }
        self.dead_letters += letters.len() as u64;
        let labels = self.labels();
        self.metrics
            .records
            .get_or_create(&labels)
            .inc_by(records_handled);
        self.metrics
            .batch_rows
            .get_or_create(&labels)
            .observe(records_handled as f64);
        self.metrics
            .batch_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let rows: usize = counts.values().map(|c| c.upserts + c.deletes).sum();
        if let Ok(mut status) = self.handle.status.write() {
            status.records += records_handled;
            status.rows_written += rows as u64;
            status.last_commit_ms = Some(now);
        }
    }

    /// Whether the dead-letter cap is exceeded.
    pub fn dead_letter_cap_reached(&self) -> Option<ApplyError> {
        let cap = self.pipeline.errors.max_dead_letters?;
        (self.dead_letters > cap).then(|| {
            ApplyError::Config(format!(
                "{} records went to the dead-letter topic, more than errors.max_dead_letters ({cap}): the pipeline is broken rather than unlucky; inspect the dead-letter topic, fix the cause, raise the cap and restart",
                self.dead_letters
            ))
        })
    }
}

/// Where a batch comes from in [`Sink::run_batch`].
enum Work {
    Fetched(crate::fetcher::FetchedBatch),
    Planned(Planned),
}

/// A batch planned and ready for [`Sink::commit`].
struct Ready {
    polled: Vec<Polled>,
    records: Vec<TableRecord>,
    statements: Vec<Statement>,
    counts: BTreeMap<String, TableCounts>,
    heartbeat_ms: Option<i64>,
    /// Per partition, the first offset not to apply because its table is blocked.
    cuts: BTreeMap<PartitionKey, i64>,
    letters: Vec<DeadLetter>,
    stats: BatchStats,
    started: Instant,
}

impl From<Planned> for Ready {
    fn from(planned: Planned) -> Self {
        let mut stats = BatchStats::default();
        stats.phases.plan_ahead = planned.planned_in;
        Ready {
            polled: planned.polled,
            records: planned.records,
            statements: planned.statements,
            counts: planned.counts,
            heartbeat_ms: planned.heartbeat_ms,
            cuts: BTreeMap::new(),
            letters: Vec::new(),
            stats,
            // The batch's own time starts when it is taken up, not while the one before it
            // was in the target.
            started: Instant::now(),
        }
    }
}

/// How long the read-ahead waits for the next batch at most: in practice it stops when the
/// transaction it overlaps ends.
const READ_AHEAD_WAIT: Duration = Duration::from_secs(60);

/// Takes the next batch from the fetcher while the current one is in the target's
/// transaction (`done` is notified when that ends) and plans it on a blocking thread, so the
/// runner's task keeps driving the transaction. `None` when no batch came in time.
async fn read_ahead(
    fetcher: &mut Fetcher,
    done: &tokio::sync::Notify,
    pipeline: SinkPipeline,
    catalog: std::collections::HashMap<String, crate::table::TargetTable>,
) -> Option<Ahead> {
    let generation = fetcher.generation();
    let fetched = tokio::select! {
        biased;
        fetched = fetcher.next(READ_AHEAD_WAIT) => fetched,
        () = done.notified() => return None,
    };
    let batch = match fetched {
        Ok(Some(batch)) => batch,
        Ok(None) => return None,
        Err(error) => return Some(Ahead::Failed { generation, error }),
    };
    match tokio::task::spawn_blocking(move || plan_ahead(&pipeline, &catalog, batch)).await {
        Ok(ahead) => Some(ahead),
        // The planning thread panicked: the records are gone from this process; read them again.
        Err(_) => Some(Ahead::Reread { generation }),
    }
}

/// Rows written per op for one table in one batch.
#[derive(Debug, Clone, Copy, Default)]
struct TableCounts {
    upserts: usize,
    deletes: usize,
    truncates: usize,
}

/// Puts a table's records in source commit order when every record carries a PostgreSQL LSN.
///
/// A key's changes always share one partition, so Kafka order is already right per key; but a
/// TRUNCATE has no key and lands on any partition, so only the source position says which rows
/// it removes. The sort is stable: records with equal LSNs (a snapshot) keep their Kafka order.
/// Across batches no consumer can order a keyless event against other partitions, which is why
/// pipelines that mirror TRUNCATE give each table topic one partition (see ARCHITECTURE.md).
///
/// It sorts only a table whose records span partitions and include a TRUNCATE: a change's LSN
/// is where it was written, not where its transaction committed, so
/// concurrent transactions that commit in another order than they wrote have LSNs out of Kafka
/// (commit) order. Sorting those put a partition's records out of offset order and stopped the
/// sink (found by crates/lockstep/tests/ddl_soak.rs, four concurrent writers). Records of one
/// partition, or without a TRUNCATE, keep their Kafka order.
fn order_by_source_position(records: &mut [&Positioned<Record>]) {
    let truncates = records
        .iter()
        .any(|r| matches!(r.record, Record::Truncate(_)));
    let one_partition = records.first().is_none_or(|first| {
        records
            .iter()
            .all(|r| r.partition == first.partition && r.topic == first.topic)
    });
    if one_partition || !truncates {
        return;
    }
    let lsn = |r: &Positioned<Record>| match &r.record {
        Record::Change(change) => change.source.lsn,
        Record::Truncate(truncate) => truncate.source.lsn,
        _ => None,
    };
    if records.iter().all(|r| lsn(r).is_some()) {
        records.sort_by_key(|r| lsn(r).unwrap_or_default());
    }
}

async fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<i32, ApplyError> {
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
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_debezium::{ChangeEvent, Op, Source, TruncateEvent};

    fn at(partition: i32, offset: i64, lsn: i64, truncate: bool) -> Positioned<Record> {
        let source = Source {
            lsn: Some(lsn),
            ..Source::default()
        };
        let record = if truncate {
            Record::Truncate(TruncateEvent {
                source,
                times: Default::default(),
                transaction: None,
            })
        } else {
            Record::Change(ChangeEvent {
                op: Op::Update,
                key: None,
                before: None,
                after: None,
                source,
                times: Default::default(),
                transaction: None,
                envelope_name: None,
            })
        };
        Positioned {
            topic: "t".into(),
            partition,
            offset,
            record,
        }
    }

    fn offsets(records: &[&Positioned<Record>]) -> Vec<(i32, i64)> {
        records.iter().map(|r| (r.partition, r.offset)).collect()
    }

    /// (partition, offset, change LSN, is a TRUNCATE)
    type Input = (i32, i64, i64, bool);
    /// Input records and the (partition, offset) order expected after the call.
    type Case = (Vec<Input>, Vec<(i32, i64)>);

    #[test]
    fn source_order_is_used_only_for_a_truncate_across_partitions() {
        // (records as (partition, offset, change lsn, truncate), expected (partition, offset))
        let cases: Vec<Case> = vec![
            // Concurrent transactions: the later writer committed first. Kafka order stays.
            (
                vec![(0, 1, 200, false), (0, 2, 100, false), (0, 3, 300, false)],
                vec![(0, 1), (0, 2), (0, 3)],
            ),
            // One partition with a TRUNCATE: Kafka order is commit order already.
            (
                vec![(0, 1, 200, false), (0, 2, 100, true)],
                vec![(0, 1), (0, 2)],
            ),
            // Several partitions, no TRUNCATE: per-key order is per partition; nothing to do.
            (
                vec![(1, 5, 300, false), (0, 1, 100, false)],
                vec![(1, 5), (0, 1)],
            ),
            // A TRUNCATE on another partition is placed by its source position.
            (
                vec![(1, 5, 300, false), (0, 1, 200, true), (1, 6, 100, false)],
                vec![(1, 6), (0, 1), (1, 5)],
            ),
        ];
        for (input, expected) in cases {
            let owned: Vec<Positioned<Record>> = input
                .iter()
                .map(|&(p, o, lsn, t)| at(p, o, lsn, t))
                .collect();
            let mut records: Vec<&Positioned<Record>> = owned.iter().collect();
            order_by_source_position(&mut records);
            assert_eq!(offsets(&records), expected, "{input:?}");
        }
    }
}
