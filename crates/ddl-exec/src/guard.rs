//! Guardrails: whether the pipeline is in a state where a DDL may start at all.
//!
//! Before `ddl apply` (and the service's apply) runs or records anything, three facts are
//! observed and judged by the pure [`evaluate`]:
//! - `connector_running`: every source connector and each of its tasks is `RUNNING`
//!   (Connect's status API);
//! - `sink_lag`: what the sink has not applied yet, per partition, is at most
//!   `max_lag_records` records (topic end offset minus the sink's committed offset in the
//!   target) and its oldest unapplied record is at most `max_lag_seconds` old (the timestamp
//!   of the record at the committed offset);
//! - `incremental_snapshot`: no Debezium incremental snapshot is in progress, read from the
//!   connector's committed source offset (Connect's offsets API). Debezium stores its
//!   incremental snapshot state in the source offset only while one runs
//!   (`AbstractIncrementalSnapshotContext.store`: `incremental_snapshot_primary_key`,
//!   `incremental_snapshot_maximum_key`, `incremental_snapshot_correlation_id`, and
//!   `SnapshotDataCollection`'s `incremental_snapshot_collections`). The committed offset lags
//!   the connector by up to Connect's `offset.flush.interval.ms`, so a snapshot started in
//!   that window is not seen yet.
//!
//! Every reading is bounded (`guardrails.timeout_ms`). A fact that cannot be read is a
//! refusal (fail closed), except the two that need the Connect cluster when none is
//! configured: those are reported as unchecked. An operator overrides one guardrail
//! deliberately with `--force-guardrail NAME`; the override is audited.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lockstep_connect::ConnectClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::DdlPipeline;

/// Default `max_lag_records`.
pub const DEFAULT_MAX_LAG_RECORDS: u64 = 10_000;
/// Default `max_lag_seconds`.
pub const DEFAULT_MAX_LAG_SECONDS: u64 = 300;
/// Default `timeout_ms`: how long each observation may take. Connect answers an offsets read
/// from its herder thread, after a rebalance in progress and a read of the offsets topic to
/// its end; 10 s refused DDLs on a healthy worker that was busy with another connector's
/// rebalance, so the bound leaves room for that (Connect's own REST timeout is 90 s).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// The `source.guardrails` section of a pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailLimits {
    #[serde(default = "default_records")]
    pub max_lag_records: u64,
    #[serde(default = "default_seconds")]
    pub max_lag_seconds: u64,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_records() -> u64 {
    DEFAULT_MAX_LAG_RECORDS
}
fn default_seconds() -> u64 {
    DEFAULT_MAX_LAG_SECONDS
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl Default for GuardrailLimits {
    fn default() -> Self {
        Self {
            max_lag_records: DEFAULT_MAX_LAG_RECORDS,
            max_lag_seconds: DEFAULT_MAX_LAG_SECONDS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

impl GuardrailLimits {
    /// The field and the reason of the first invalid limit (pure).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_lag_seconds == 0 {
            return Err((
                "source.guardrails.max_lag_seconds",
                "must be at least 1 (0 would refuse every DDL while anything is in flight)".into(),
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 120_000 {
            return Err((
                "source.guardrails.timeout_ms",
                "must be between 1 and 120000: how long each guardrail reading may take".into(),
            ));
        }
        Ok(())
    }
}

/// The guardrails, by the name `--force-guardrail` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guardrail {
    ConnectorRunning,
    SinkLag,
    IncrementalSnapshot,
}

impl Guardrail {
    pub const ALL: [Guardrail; 3] = [
        Guardrail::ConnectorRunning,
        Guardrail::SinkLag,
        Guardrail::IncrementalSnapshot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Guardrail::ConnectorRunning => "connector_running",
            Guardrail::SinkLag => "sink_lag",
            Guardrail::IncrementalSnapshot => "incremental_snapshot",
        }
    }
}

impl fmt::Display for Guardrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Guardrail {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Guardrail::ALL
            .into_iter()
            .find(|g| g.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown guardrail '{s}': one of {}",
                    Guardrail::ALL.map(Guardrail::name).join(", ")
                )
            })
    }
}

/// A fact as observed: seen, not checked (why), or not readable (why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "observed", content = "value")]
pub enum Observed<T> {
    Seen(T),
    /// Not observable in this setup (no Connect cluster configured).
    Unchecked(String),
    /// Reading it failed or timed out.
    Unreadable(String),
}

/// A connector's state as Connect reports it; `None`: it does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectorState {
    pub name: String,
    pub state: Option<String>,
    /// (task id, state)
    pub tasks: Vec<(u32, String)>,
}

/// One partition of the pipeline's topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The next offset the broker will write.
    pub end: i64,
    /// The sink's next offset to apply, from the target (`None`: it applied nothing yet).
    pub committed: Option<i64>,
    /// The oldest offset the broker still holds.
    pub start: i64,
    /// The age in milliseconds of the first unapplied record, when there is one and it was read.
    pub oldest_unapplied_age_ms: Option<i64>,
}

impl PartitionLag {
    /// Records not applied yet.
    pub fn records(&self) -> u64 {
        let from = self.committed.unwrap_or(self.start).max(0);
        u64::try_from(self.end - from).unwrap_or(0)
    }
}

/// A connector's incremental snapshot, from its committed source offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotState {
    pub connector: String,
    /// The tables still to snapshot, when Debezium's list could be read.
    pub collections: Vec<String>,
}

/// Everything the guardrails judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardFacts {
    pub connectors: Observed<Vec<ConnectorState>>,
    pub lag: Observed<Vec<PartitionLag>>,
    /// The running incremental snapshots (empty: none).
    pub snapshots: Observed<Vec<SnapshotState>>,
}

/// One guardrail that does not hold: why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardRefusal {
    pub guardrail: Guardrail,
    pub reason: String,
    pub remedy: String,
}

impl fmt::Display for GuardRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; {} (or override deliberately: --force-guardrail {})",
            self.guardrail, self.reason, self.remedy, self.guardrail
        )
    }
}

/// The judgement: refusals (the DDL must not start), refusals overridden by the operator,
/// guardrails that could not be checked here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub refusals: Vec<GuardRefusal>,
    pub overridden: Vec<GuardRefusal>,
    pub unchecked: Vec<(Guardrail, String)>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.refusals.is_empty()
    }
}

fn refusal(g: Guardrail, reason: impl Into<String>, remedy: impl Into<String>) -> GuardRefusal {
    GuardRefusal {
        guardrail: g,
        reason: reason.into(),
        remedy: remedy.into(),
    }
}

/// Judge the facts against the limits (pure). `forced` guardrails still get evaluated; what
/// they would refuse lands in `overridden`.
pub fn evaluate(facts: &GuardFacts, limits: &GuardrailLimits, forced: &[Guardrail]) -> Verdict {
    let mut all = Vec::new();
    let mut unchecked = Vec::new();
    let g = Guardrail::ConnectorRunning;
    match &facts.connectors {
        Observed::Unchecked(why) => unchecked.push((g, why.clone())),
        Observed::Unreadable(why) => all.push(refusal(
            g,
            format!("the connectors' state could not be read: {why}"),
            "check that the Kafka Connect cluster is reachable, then retry",
        )),
        Observed::Seen(connectors) => {
            for c in connectors {
                match &c.state {
                    None => all.push(refusal(
                        g,
                        format!("connector {} does not exist on the Connect cluster", c.name),
                        "fix source.connectors in the pipeline file or create the connector",
                    )),
                    Some(state) if state != "RUNNING" => all.push(refusal(
                        g,
                        format!("connector {} is {state}", c.name),
                        match state.as_str() {
                            "PAUSED" | "STOPPED" => format!(
                                "resume it (`lockstep connect resume {}`) and wait for RUNNING",
                                c.name
                            ),
                            _ => format!(
                                "fix and restart it (`lockstep connect status {}` shows why)",
                                c.name
                            ),
                        },
                    )),
                    Some(_) => {}
                }
                if c.state.as_deref() == Some("RUNNING") && c.tasks.is_empty() {
                    all.push(refusal(
                        g,
                        format!("connector {} is RUNNING but has no task", c.name),
                        "wait until Connect assigned its task, or restart it",
                    ));
                }
                for (id, state) in &c.tasks {
                    if state != "RUNNING" {
                        all.push(refusal(
                            g,
                            format!("task {id} of connector {} is {state}", c.name),
                            format!(
                                "restart the task (`lockstep connect restart {} --task {id}`) and wait for RUNNING",
                                c.name
                            ),
                        ));
                    }
                }
            }
        }
    }
    let g = Guardrail::SinkLag;
    match &facts.lag {
        Observed::Unchecked(why) => unchecked.push((g, why.clone())),
        Observed::Unreadable(why) => all.push(refusal(
            g,
            format!("the sink's lag could not be measured: {why}"),
            "check that the broker and the target database are reachable, then retry",
        )),
        Observed::Seen(parts) => {
            let records: u64 = parts.iter().map(PartitionLag::records).sum();
            if records > limits.max_lag_records {
                let worst: Vec<String> = parts
                    .iter()
                    .filter(|p| p.records() > 0)
                    .map(|p| format!("{}/{}: {}", p.topic, p.partition, p.records()))
                    .collect();
                all.push(refusal(
                    g,
                    format!(
                        "the sink has {records} record(s) not applied yet, more than max_lag_records {} ({})",
                        limits.max_lag_records,
                        worst.join(", ")
                    ),
                    "let the sink catch up (is `lockstep sink run` running?) and retry, or raise source.guardrails.max_lag_records",
                ));
            }
            let max_ms =
                i64::try_from(limits.max_lag_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
            for p in parts.iter().filter(|p| p.records() > 0) {
                match p.oldest_unapplied_age_ms {
                    Some(age) if age > max_ms => all.push(refusal(
                        g,
                        format!(
                            "the oldest record of {}/{} the sink has not applied is {} s old, more than max_lag_seconds {}",
                            p.topic,
                            p.partition,
                            age / 1000,
                            limits.max_lag_seconds
                        ),
                        "let the sink catch up (is `lockstep sink run` running?) and retry, or raise source.guardrails.max_lag_seconds",
                    )),
                    Some(_) => {}
                    None => all.push(refusal(
                        g,
                        format!(
                            "the age of the oldest unapplied record of {}/{} (offset {}) could not be read within the guardrail timeout",
                            p.topic,
                            p.partition,
                            p.committed.unwrap_or(p.start)
                        ),
                        "check the broker, or raise source.guardrails.timeout_ms",
                    )),
                }
            }
        }
    }
    let g = Guardrail::IncrementalSnapshot;
    match &facts.snapshots {
        Observed::Unchecked(why) => unchecked.push((g, why.clone())),
        Observed::Unreadable(why) => all.push(refusal(
            g,
            format!("whether an incremental snapshot runs could not be read: {why}"),
            "check that the Kafka Connect cluster is reachable, then retry",
        )),
        Observed::Seen(snapshots) => {
            for s in snapshots {
                all.push(refusal(
                    g,
                    format!(
                        "connector {} is running an incremental snapshot{}",
                        s.connector,
                        if s.collections.is_empty() {
                            String::new()
                        } else {
                            format!(" of {}", s.collections.join(", "))
                        }
                    ),
                    "wait until it finishes (its committed offset no longer carries incremental_snapshot_* keys), or stop it with a stop-snapshot signal",
                ));
            }
        }
    }
    let (overridden, refusals) = all
        .into_iter()
        .partition(|r: &GuardRefusal| forced.contains(&r.guardrail));
    Verdict {
        refusals,
        overridden,
        unchecked,
    }
}

/// The keys Debezium writes into a source offset while an incremental snapshot runs (see the
/// module documentation for where they come from).
pub const INCREMENTAL_SNAPSHOT_KEYS: [&str; 4] = [
    "incremental_snapshot_collections",
    "incremental_snapshot_primary_key",
    "incremental_snapshot_maximum_key",
    "incremental_snapshot_correlation_id",
];

/// Whether a committed Debezium source offset shows a running incremental snapshot, and of
/// which tables (pure). `None`: no snapshot.
pub fn incremental_snapshot(offset: &serde_json::Map<String, Value>) -> Option<Vec<String>> {
    let present = INCREMENTAL_SNAPSHOT_KEYS
        .iter()
        .any(|k| offset.get(*k).is_some_and(|v| !v.is_null()));
    if !present {
        return None;
    }
    // `incremental_snapshot_collections` is a JSON array (as a string) of objects whose
    // `incremental_snapshot_collections_id` names a table; older versions wrote plain names.
    let mut tables = Vec::new();
    if let Some(text) = offset
        .get("incremental_snapshot_collections")
        .and_then(Value::as_str)
    {
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
            for item in items {
                let name = match &item {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(m) => m
                        .get("incremental_snapshot_collections_id")
                        .or_else(|| m.get("id"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    _ => None,
                };
                tables.extend(name);
            }
        } else {
            tables.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
    }
    Some(tables)
}

// ---- the adapter ------------------------------------------------------------------------

async fn bounded<T, E: fmt::Display>(
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Observe the connectors, the sink's lag and incremental snapshots. Never fails: what cannot
/// be read is `Unreadable`, what needs Connect without one is `Unchecked`.
pub async fn observe(pipeline: &DdlPipeline, connect: Option<&ConnectClient>) -> GuardFacts {
    let limits = pipeline.source.guardrails.unwrap_or_default();
    let timeout = Duration::from_millis(limits.timeout_ms);
    let (connectors, snapshots) = match connect {
        None => {
            let why = "no Kafka Connect cluster configured (--connect-url or lockstep.yaml)";
            (
                Observed::Unchecked(why.to_string()),
                Observed::Unchecked(why.to_string()),
            )
        }
        // Side by side, so a slow worker costs one bound, not two.
        Some(connect) => tokio::join!(
            observe_connectors(connect, &pipeline.source.connectors, timeout),
            observe_snapshots(connect, &pipeline.source.connectors, timeout),
        ),
    };
    let lag = match observe_lag(pipeline, timeout).await {
        Ok(parts) => Observed::Seen(parts),
        Err(e) => Observed::Unreadable(e),
    };
    GuardFacts {
        connectors,
        lag,
        snapshots,
    }
}

async fn observe_connectors(
    connect: &ConnectClient,
    names: &[String],
    timeout: Duration,
) -> Observed<Vec<ConnectorState>> {
    let mut out = Vec::new();
    for name in names {
        match tokio::time::timeout(timeout, connect.connector_status(name)).await {
            Ok(Ok(s)) => out.push(ConnectorState {
                name: name.clone(),
                state: Some(s.connector.state.to_string()),
                tasks: s
                    .tasks
                    .iter()
                    .map(|t| (t.id, t.state.to_string()))
                    .collect(),
            }),
            Ok(Err(e)) if e.is_not_found() => out.push(ConnectorState {
                name: name.clone(),
                state: None,
                tasks: Vec::new(),
            }),
            Ok(Err(e)) => return Observed::Unreadable(format!("status of connector {name}: {e}")),
            Err(_) => {
                return Observed::Unreadable(format!(
                    "status of connector {name}: no answer within {} ms",
                    timeout.as_millis()
                ))
            }
        }
    }
    Observed::Seen(out)
}

async fn observe_snapshots(
    connect: &ConnectClient,
    names: &[String],
    timeout: Duration,
) -> Observed<Vec<SnapshotState>> {
    let mut out = Vec::new();
    for name in names {
        let offsets = match tokio::time::timeout(timeout, connect.get_offsets(name)).await {
            Ok(Ok(o)) => o,
            // A missing connector is the connector guardrail's refusal; it has no snapshot.
            Ok(Err(e)) if e.is_not_found() => continue,
            Ok(Err(e)) => {
                return Observed::Unreadable(format!("source offsets of connector {name}: {e}"))
            }
            Err(_) => {
                return Observed::Unreadable(format!(
                    "source offsets of connector {name}: no answer within {} ms",
                    timeout.as_millis()
                ))
            }
        };
        for o in &offsets.offsets {
            if let Some(collections) = o.offset.as_ref().and_then(incremental_snapshot) {
                out.push(SnapshotState {
                    connector: name.clone(),
                    collections,
                });
            }
        }
    }
    Observed::Seen(out)
}

/// Per partition of the pipeline's topics: end, start, the sink's committed offset and the age
/// of the first unapplied record. A topic that does not exist yet has no records to lag.
async fn observe_lag(
    pipeline: &DdlPipeline,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, String> {
    let sink = &pipeline.sink;
    let mut target = bounded(
        timeout,
        "connecting to the target to read the sink's offsets",
        lockstep_sink::target::Target::connect(&sink.target),
    )
    .await?;
    let committed: BTreeMap<(String, i32), i64> = bounded(
        timeout,
        "reading the sink's committed offsets in the target",
        target.load_offsets(&sink.name),
    )
    .await?;
    let mut config = rdkafka::ClientConfig::new();
    for (k, v) in &sink.kafka.consumer {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &sink.kafka.bootstrap_servers)
        .set("group.id", format!("lockstep-guardrails-{}", sink.name))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    // The sink reads the file's topics with the runtime changes (CREATE / DROP / RENAME
    // TABLE) applied; a new topic the broker does not have yet has no records to lag.
    let runtime = bounded(timeout, "reading the sink's runtime topics", async {
        let mut db = crate::target::TargetDb::connect(&sink.target).await?;
        db.runtime_topics(&sink.name).await
    })
    .await?;
    let topics = lockstep_sink::topics::effective_topics(&sink.kafka.topics, &runtime);
    let task =
        tokio::task::spawn_blocking(move || read_partitions(config, topics, committed, timeout));
    match tokio::time::timeout(timeout * 3 + Duration::from_secs(1), task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(format!("the broker reading task failed: {e}")),
        Err(_) => Err(format!(
            "the broker did not answer within {} ms",
            (timeout * 3).as_millis()
        )),
    }
}

fn read_partitions(
    config: rdkafka::ClientConfig,
    topics: Vec<String>,
    committed: BTreeMap<(String, i32), i64>,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| format!("creating a broker client: {e}"))?;
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| format!("reading the broker's metadata: {e}"))?;
    let mut out = Vec::new();
    for topic in &topics {
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        for partition in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(|e| format!("offsets of {topic}/{partition}: {e}"))?;
            out.push(PartitionLag {
                topic: topic.clone(),
                partition,
                end: high,
                committed: committed.get(&(topic.clone(), partition)).copied(),
                start: low,
                oldest_unapplied_age_ms: None,
            });
        }
    }
    // The first unapplied record of each lagging partition: its timestamp gives the age.
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in out.iter().filter(|p| p.records() > 0) {
        let from = p.committed.unwrap_or(p.start).max(p.start);
        tpl.add_partition_offset(&p.topic, p.partition, rdkafka::Offset::Offset(from))
            .map_err(|e| format!("seeking {}/{}: {e}", p.topic, p.partition))?;
    }
    if tpl.count() == 0 {
        return Ok(out);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("assigning the lagging partitions: {e}"))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let deadline = std::time::Instant::now() + timeout;
    let mut missing = tpl.count();
    while missing > 0 && std::time::Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(msg) = msg else { continue };
        let Some(p) = out
            .iter_mut()
            .find(|p| p.topic == msg.topic() && p.partition == msg.partition())
        else {
            continue;
        };
        if p.oldest_unapplied_age_ms.is_none() {
            let ts = msg.timestamp().to_millis().unwrap_or(now_ms);
            p.oldest_unapplied_age_ms = Some((now_ms - ts).max(0));
            missing -= 1;
            // Stop fetching this partition.
            let mut one = rdkafka::TopicPartitionList::new();
            one.add_partition(msg.topic(), msg.partition());
            let _ = consumer.pause(&one);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running(name: &str) -> ConnectorState {
        ConnectorState {
            name: name.into(),
            state: Some("RUNNING".into()),
            tasks: vec![(0, "RUNNING".into())],
        }
    }

    fn part(end: i64, committed: Option<i64>, age_s: Option<i64>) -> PartitionLag {
        PartitionLag {
            topic: "t".into(),
            partition: 0,
            end,
            committed,
            start: 0,
            oldest_unapplied_age_ms: age_s.map(|s| s * 1000),
        }
    }

    fn facts(
        connectors: Observed<Vec<ConnectorState>>,
        lag: Observed<Vec<PartitionLag>>,
        snapshots: Observed<Vec<SnapshotState>>,
    ) -> GuardFacts {
        GuardFacts {
            connectors,
            lag,
            snapshots,
        }
    }

    fn healthy() -> GuardFacts {
        facts(
            Observed::Seen(vec![running("c1")]),
            Observed::Seen(vec![part(10, Some(10), None)]),
            Observed::Seen(vec![]),
        )
    }

    const LIMITS: GuardrailLimits = GuardrailLimits {
        max_lag_records: 100,
        max_lag_seconds: 60,
        timeout_ms: 1000,
    };

    /// (case, facts, forced, expected refusals as (guardrail, text in the reason), expected
    /// overridden guardrails, expected unchecked guardrails)
    #[test]
    fn guardrails_table() {
        type Case = (
            &'static str,
            GuardFacts,
            Vec<Guardrail>,
            Vec<(Guardrail, &'static str)>,
            Vec<Guardrail>,
            Vec<Guardrail>,
        );
        use Guardrail::*;
        let paused = ConnectorState {
            name: "c1".into(),
            state: Some("PAUSED".into()),
            tasks: vec![(0, "PAUSED".into())],
        };
        let failed_task = ConnectorState {
            name: "c1".into(),
            state: Some("RUNNING".into()),
            tasks: vec![(0, "RUNNING".into()), (1, "FAILED".into())],
        };
        let no_task = ConnectorState {
            name: "c1".into(),
            state: Some("RUNNING".into()),
            tasks: vec![],
        };
        let missing = ConnectorState {
            name: "c2".into(),
            state: None,
            tasks: vec![],
        };
        let snap = SnapshotState {
            connector: "c1".into(),
            collections: vec!["public.orders".into()],
        };
        let with = |f: fn(&mut GuardFacts)| {
            let mut h = healthy();
            f(&mut h);
            h
        };
        let cases: Vec<Case> = vec![
            ("healthy", healthy(), vec![], vec![], vec![], vec![]),
            (
                "paused connector",
                facts(
                    Observed::Seen(vec![paused.clone()]),
                    healthy().lag,
                    healthy().snapshots,
                ),
                vec![],
                vec![
                    (ConnectorRunning, "connector c1 is PAUSED"),
                    (ConnectorRunning, "task 0 of connector c1 is PAUSED"),
                ],
                vec![],
                vec![],
            ),
            (
                "paused connector, forced",
                facts(
                    Observed::Seen(vec![paused]),
                    healthy().lag,
                    healthy().snapshots,
                ),
                vec![ConnectorRunning],
                vec![],
                vec![ConnectorRunning, ConnectorRunning],
                vec![],
            ),
            (
                "failed task",
                facts(
                    Observed::Seen(vec![failed_task]),
                    healthy().lag,
                    healthy().snapshots,
                ),
                vec![],
                vec![(ConnectorRunning, "task 1 of connector c1 is FAILED")],
                vec![],
                vec![],
            ),
            (
                "running without a task",
                facts(
                    Observed::Seen(vec![no_task]),
                    healthy().lag,
                    healthy().snapshots,
                ),
                vec![],
                vec![(ConnectorRunning, "has no task")],
                vec![],
                vec![],
            ),
            (
                "missing connector",
                facts(
                    Observed::Seen(vec![running("c1"), missing]),
                    healthy().lag,
                    healthy().snapshots,
                ),
                vec![],
                vec![(ConnectorRunning, "c2 does not exist")],
                vec![],
                vec![],
            ),
            (
                "connect unreadable",
                with(|f| f.connectors = Observed::Unreadable("timeout".into())),
                vec![],
                vec![(ConnectorRunning, "could not be read: timeout")],
                vec![],
                vec![],
            ),
            (
                "no connect: unchecked, not refused",
                with(|f| {
                    f.connectors = Observed::Unchecked("no connect".into());
                    f.snapshots = Observed::Unchecked("no connect".into());
                }),
                vec![],
                vec![],
                vec![],
                vec![ConnectorRunning, IncrementalSnapshot],
            ),
            (
                "lag at the record limit passes",
                with(|f| f.lag = Observed::Seen(vec![part(150, Some(50), Some(1))])),
                vec![],
                vec![],
                vec![],
                vec![],
            ),
            (
                "lag over the record limit",
                with(|f| f.lag = Observed::Seen(vec![part(151, Some(50), Some(1))])),
                vec![],
                vec![(SinkLag, "101 record(s) not applied")],
                vec![],
                vec![],
            ),
            (
                "lag summed over partitions",
                with(|f| {
                    let mut b = part(60, Some(0), Some(1));
                    b.partition = 1;
                    f.lag = Observed::Seen(vec![part(60, Some(10), Some(1)), b]);
                }),
                vec![],
                vec![(SinkLag, "110 record(s)")],
                vec![],
                vec![],
            ),
            (
                "nothing committed yet counts from the start",
                with(|f| {
                    let mut p = part(300, None, Some(1));
                    p.start = 250;
                    f.lag = Observed::Seen(vec![p]);
                }),
                vec![],
                vec![],
                vec![],
                vec![],
            ),
            (
                "too old",
                with(|f| f.lag = Observed::Seen(vec![part(20, Some(10), Some(61))])),
                vec![],
                vec![(SinkLag, "61 s old")],
                vec![],
                vec![],
            ),
            (
                "age unreadable",
                with(|f| f.lag = Observed::Seen(vec![part(20, Some(10), None)])),
                vec![],
                vec![(SinkLag, "could not be read within")],
                vec![],
                vec![],
            ),
            (
                "no lag, no age needed",
                with(|f| f.lag = Observed::Seen(vec![part(20, Some(20), None)])),
                vec![],
                vec![],
                vec![],
                vec![],
            ),
            (
                "lag unreadable",
                with(|f| f.lag = Observed::Unreadable("broker down".into())),
                vec![],
                vec![(SinkLag, "broker down")],
                vec![],
                vec![],
            ),
            (
                "lag forced",
                with(|f| f.lag = Observed::Seen(vec![part(1000, Some(0), Some(1000))])),
                vec![SinkLag],
                vec![],
                vec![SinkLag, SinkLag],
                vec![],
            ),
            (
                "snapshot running",
                facts(
                    healthy().connectors,
                    healthy().lag,
                    Observed::Seen(vec![snap.clone()]),
                ),
                vec![],
                vec![(IncrementalSnapshot, "incremental snapshot of public.orders")],
                vec![],
                vec![],
            ),
            (
                "snapshot forced, another guardrail still refuses",
                facts(
                    Observed::Seen(vec![ConnectorState {
                        name: "c1".into(),
                        state: Some("FAILED".into()),
                        tasks: vec![],
                    }]),
                    healthy().lag,
                    Observed::Seen(vec![snap]),
                ),
                vec![IncrementalSnapshot],
                vec![(ConnectorRunning, "connector c1 is FAILED")],
                vec![IncrementalSnapshot],
                vec![],
            ),
            (
                "snapshot unreadable",
                with(|f| f.snapshots = Observed::Unreadable("offsets: 500".into())),
                vec![],
                vec![(IncrementalSnapshot, "offsets: 500")],
                vec![],
                vec![],
            ),
        ];
        for (name, facts, forced, refused, overridden, unchecked) in cases {
            let v = evaluate(&facts, &LIMITS, &forced);
            assert_eq!(v.refusals.len(), refused.len(), "{name}: {:#?}", v.refusals);
            for (r, (g, text)) in v.refusals.iter().zip(&refused) {
                assert_eq!(r.guardrail, *g, "{name}: {r}");
                assert!(r.reason.contains(text), "{name}: {r}");
                assert!(!r.remedy.is_empty(), "{name}: {r}");
                assert!(
                    r.to_string()
                        .contains(&format!("--force-guardrail {}", g.name())),
                    "{name}: {r}"
                );
            }
            assert_eq!(
                v.overridden.iter().map(|r| r.guardrail).collect::<Vec<_>>(),
                overridden,
                "{name}"
            );
            assert_eq!(
                v.unchecked.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
                unchecked,
                "{name}"
            );
            assert_eq!(v.passed(), refused.is_empty(), "{name}");
        }
    }

    #[test]
    fn incremental_snapshot_keys_in_a_source_offset() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        // A streaming offset: no snapshot.
        assert_eq!(
            incremental_snapshot(&m(json!({"lsn": 42, "txId": 7, "ts_usec": 1}))),
            None
        );
        // Keys present but null: no snapshot.
        assert_eq!(
            incremental_snapshot(&m(
                json!({"lsn": 1, "incremental_snapshot_correlation_id": null})
            )),
            None
        );
        // Debezium 2.x/3.x: a JSON array of objects.
        let collections = r#"[{"incremental_snapshot_collections_id":"public.orders","incremental_snapshot_collections_additional_condition":null,"incremental_snapshot_collections_surrogate_key":null}]"#;
        assert_eq!(
            incremental_snapshot(&m(json!({
                "lsn": 1,
                "incremental_snapshot_collections": collections,
                "incremental_snapshot_primary_key": "aced0005",
                "incremental_snapshot_maximum_key": "aced0005",
            }))),
            Some(vec!["public.orders".to_string()])
        );
        // Older: plain names; or only the chunk keys.
        assert_eq!(
            incremental_snapshot(&m(
                json!({"incremental_snapshot_collections": "public.a,public.b"})
            )),
            Some(vec!["public.a".to_string(), "public.b".to_string()])
        );
        assert_eq!(
            incremental_snapshot(&m(json!({"incremental_snapshot_maximum_key": "aced"}))),
            Some(vec![])
        );
    }

    #[test]
    fn names_and_limits() {
        for g in Guardrail::ALL {
            assert_eq!(g.name().parse::<Guardrail>(), Ok(g));
        }
        let err = "lag".parse::<Guardrail>().unwrap_err();
        assert!(
            err.contains("connector_running, sink_lag, incremental_snapshot"),
            "{err}"
        );
        assert!(GuardrailLimits::default().validate().is_ok());
        let bad = |f: fn(&mut GuardrailLimits)| {
            let mut l = GuardrailLimits::default();
            f(&mut l);
            l.validate().unwrap_err().0
        };
        assert_eq!(
            bad(|l| l.max_lag_seconds = 0),
            "source.guardrails.max_lag_seconds"
        );
        assert_eq!(bad(|l| l.timeout_ms = 0), "source.guardrails.timeout_ms");
        assert_eq!(
            bad(|l| l.timeout_ms = 120_001),
            "source.guardrails.timeout_ms"
        );
    }
}
