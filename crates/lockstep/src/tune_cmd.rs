//! `lockstep tune` and `lockstep tune revert`: the imperative shell around the pure
//! [`lockstep_watchdog::tune::Tuner`]. Each cycle observes a pipeline's p99 end-to-end lag and
//! utilisation (two scrapes of the sink's `/metrics`: the lag histogram's buckets and the batch
//! time counted between them), reads the Debezium connector's current knob values from Connect,
//! runs [`Tuner::step`], and either prints the changes (`--recommend-only`) or applies them with a
//! `PATCH /connectors/NAME/config` of the changed keys only (a GET + PUT of the whole config on
//! workers older than Kafka 3.9). Every applied change, recommendation, failure and revert is
//! appended to the audit log (actor `tuner`).
//!
//! The tuner's memory survives restarts without a table of its own: the values are the
//! connector's live configuration, and the cool-down clock (time and direction of the last
//! change) is the newest `tuning.changed` / `tuning.reverted` audit record of the connector.
//!
//! The sink's batch knobs (`batch.max_rows`, `batch.linger_ms`) have no control API (they are
//! read from the pipeline file when the sink starts): with `--sink-pipeline FILE` they are
//! tuned too, but only ever recommended.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use lockstep_connect::{ConfigPatch, ConnectClient, ConnectError};
use lockstep_store::{AuditEntry, AuditRecord, Store};
use lockstep_watchdog::metrics::TuningLabels;
use lockstep_watchdog::tune::{
    Knob, Tuner, TunerConfig, TunerObservation, TunerState, TuningChange,
};
use lockstep_watchdog::WatchdogMetrics;
use serde::Serialize;

use crate::cli::{parse_duration, GlobalArgs};
use crate::exit;
use crate::output::{print, TableView};

const ACTOR: &str = "tuner";
pub const ACTION_CHANGED: &str = "tuning.changed";
pub const ACTION_RECOMMENDED: &str = "tuning.recommended";
pub const ACTION_REVERTED: &str = "tuning.reverted";
pub const ACTION_FAILED: &str = "tuning.failed";

/// Debezium's documented defaults, the value of a knob the connector's config does not set.
const DEBEZIUM_DEFAULTS: &[(&str, u64)] = &[
    ("max.batch.size", 2048),
    ("max.queue.size", 8192),
    ("poll.interval.ms", 500),
];

/// Taken when the utilisation cannot be observed: it never forces a step up and never allows
/// a step down (a step down needs utilisation × step ≤ 0.7).
const UNKNOWN_UTILISATION: f64 = 0.5;

const BATCH_SECONDS_SUM: &str = "lockstep_sink_batch_duration_seconds_sum";

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Each cycle:
  1. observes the pipeline: p99 end-to-end lag and utilisation over --window, from two scrapes
     of the sink's /metrics (--metrics: `lockstep sink run --listen` or `lockstep serve`): the
     lag histogram's buckets between the scrapes, and the sink's batch time / wall time;
  2. reads the connector's max.batch.size, max.queue.size and poll.interval.ms from Connect
     (Debezium's defaults 2048 / 8192 / 500 when unset);
  3. steps all knobs together by at most --step: up when p99 > 80% of --slo or the sink is
     saturated, down (lower cost) when p99 < 30% of --slo and the step would not saturate it;
     never within --cooldown of the last change (--reversal-cooldown to change direction),
     never outside the limits (--limit), max.queue.size always > max.batch.size;
  4. applies the changed keys only (PATCH /connectors/NAME/config, or GET+PUT on Kafka < 3.9;
     secret values are never printed), or prints them with --recommend-only.
Every change, recommendation and revert is in the audit log (`lockstep audit show`, actor
tuner); the cool-down survives restarts because it is read back from there.
The sink's batch.max_rows / batch.linger_ms (--sink-pipeline) have no control API: they are
only recommended (edit the pipeline file and restart the sink).

--observed-p99 / --observed-utilisation replace the observation: for tests and what-if runs.

Examples:
  lockstep tune --connector orders-cdc --slo 5s --metrics http://127.0.0.1:9464/metrics --once --recommend-only
  lockstep tune --connector orders-cdc --slo 5s --metrics http://127.0.0.1:9464/metrics
  lockstep tune revert --last --connector orders-cdc
  lockstep tune revert --change 1842"
)]
pub struct TuneArgs {
    #[command(flatten)]
    pub state: crate::audit_cmd::StateDirArgs,
    #[command(subcommand)]
    pub command: Option<TuneCommand>,
    #[command(flatten)]
    pub run: TuneRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum TuneCommand {
    /// Restore the values a tuning change replaced (read from its audit record).
    Revert {
        /// The audit seq of the `tuning.changed` record (`lockstep audit show`).
        #[arg(long, value_name = "SEQ", required_unless_present = "last")]
        change: Option<u64>,
        /// The newest tuning change not reverted yet (of --connector, when given).
        #[arg(long, conflicts_with = "change")]
        last: bool,
        /// With --last: only changes of this connector.
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        /// Revert even when a knob no longer has the value the change set (someone changed it since).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct TuneRunArgs {
    /// The Debezium source connector whose knobs are tuned.
    #[arg(long, value_name = "NAME", required = true)]
    pub connector: Option<String>,
    /// The pipeline's p99 end-to-end lag objective, e.g. 5s.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", required = true)]
    pub slo: Option<Duration>,
    /// The sink's /metrics endpoint to observe lag and utilisation on.
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
    /// Only this sink pipeline of the --metrics endpoint (default: all; the worst table counts).
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Observation window: time between the two scrapes of one --once cycle.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub window: Duration,
    /// Testing / what-if: take this p99 lag instead of observing it.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub observed_p99: Option<Duration>,
    /// Testing / what-if: take this utilisation (0..1) instead of observing it.
    #[arg(long, value_name = "FRACTION")]
    pub observed_utilisation: Option<f64>,
    /// Print (and audit) the changes it recommends; change nothing.
    #[arg(long)]
    pub recommend_only: bool,
    /// One cycle, print it, and exit.
    #[arg(long)]
    pub once: bool,
    /// Time between cycles (without --once).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Largest multiplicative step per change (> 1).
    #[arg(long, default_value_t = 1.5, value_name = "FACTOR")]
    pub step: f64,
    /// No change within this long of the last one.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub cooldown: Duration,
    /// No change of direction within this long of the last change.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub reversal_cooldown: Duration,
    /// Hard limits of a knob, KEY=MIN..MAX (repeatable), e.g. max.batch.size=512..8192.
    #[arg(long = "limit", value_name = "KEY=MIN..MAX", value_parser = parse_limit)]
    pub limits: Vec<(String, u64, u64)>,
    /// The sink's pipeline file: its batch.max_rows / linger_ms are tuned too (recommend only).
    #[arg(long, value_name = "FILE")]
    pub sink_pipeline: Option<PathBuf>,
    /// Serve /metrics on this address while tuning (without --once), with
    /// lockstep_watchdog_tuning_changes_total{pipeline,param,direction,mode}.
    #[arg(long, value_name = "ADDR", conflicts_with = "once")]
    pub listen: Option<std::net::SocketAddr>,
}

/// `KEY=MIN..MAX`.
fn parse_limit(text: &str) -> Result<(String, u64, u64), String> {
    let bad =
        || format!("'{text}' is not a limit: write KEY=MIN..MAX, e.g. max.batch.size=512..8192");
    let (key, range) = text.split_once('=').ok_or_else(bad)?;
    let (min, max) = range.split_once("..").ok_or_else(bad)?;
    let min: u64 = min.trim().parse().map_err(|_| bad())?;
    let max: u64 = max.trim().parse().map_err(|_| bad())?;
    if key.trim().is_empty() || min > max {
        return Err(bad());
    }
    Ok((key.trim().to_string(), min, max))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The knobs with their limits: Debezium's (and the sink's with a pipeline file), then `--limit`.
pub fn knobs(limits: &[(String, u64, u64)], with_sink: bool) -> anyhow::Result<Vec<Knob>> {
    let mut knobs = Knob::debezium_defaults();
    if with_sink {
        knobs.extend(Knob::sink_defaults());
    }
    for (key, min, max) in limits {
        let Some(knob) = knobs.iter_mut().find(|k| &k.name == key) else {
            bail!(
                "--limit {key}: not a tuned knob; the knobs are {}",
                knobs
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        *knob = Knob::new(key, knob.direction, *min, *max);
    }
    Ok(knobs)
}

fn is_sink_knob(param: &str) -> bool {
    param.starts_with("batch.")
}

// ---------------------------------------------------------------------------------------------
// Observation (pure): the sink's exposition → lag buckets and busy time.

/// What one scrape of a sink's /metrics holds for the tuner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkSample {
    /// Cumulative lag buckets `(le, count)` per (pipeline, table).
    pub lag: BTreeMap<(String, String), Vec<(f64, f64)>>,
    /// Seconds spent planning and committing batches, per pipeline (a counter).
    pub busy_seconds: BTreeMap<String, f64>,
}

/// The sample of `pipeline` (all pipelines without it) in a sink's exposition.
pub fn parse_sample_text(exposition: &str, pipeline: Option<&str>) -> SinkSample {
    let wanted = |p: &str| pipeline.is_none_or(|want| want == p);
    let mut sample = SinkSample {
        lag: crate::status_cmd::lag_buckets(exposition),
        busy_seconds: BTreeMap::new(),
    };
    sample.lag.retain(|(p, _), _| wanted(p));
    for (name, labels, value) in exposition
        .lines()
        .filter_map(crate::status_cmd::parse_sample)
    {
        let Some(p) = labels.get("pipeline").filter(|p| wanted(p)) else {
            continue;
        };
        if name == BATCH_SECONDS_SUM {
            *sample.busy_seconds.entry(p.clone()).or_default() += value;
        }
    }
    sample
}

/// p99 lag (the worst table) and utilisation (the busiest pipeline) between two samples
/// `elapsed_seconds` apart; without `before`, the lag since the sink started and no
/// utilisation. The lag is `None` when no change was applied in the window.
pub fn observe_between(
    before: Option<&SinkSample>,
    after: &SinkSample,
    elapsed_seconds: f64,
) -> (Option<f64>, Option<f64>) {
    let mut worst: Option<f64> = None;
    for (key, buckets) in &after.lag {
        let window: Vec<(f64, f64)> = match before.and_then(|b| b.lag.get(key)) {
            Some(old) => buckets
                .iter()
                .map(|(le, count)| {
                    let was = old.iter().find(|(l, _)| l == le).map_or(0.0, |(_, c)| *c);
                    (*le, (count - was).max(0.0))
                })
                .collect(),
            None => buckets.clone(),
        };
        if let Some(p99) = crate::status_cmd::histogram_quantile(0.99, &window) {
            worst = Some(worst.map_or(p99, |w: f64| w.max(p99)));
        }
    }
    let utilisation = before.filter(|_| elapsed_seconds > 0.0).and_then(|b| {
        after
            .busy_seconds
            .iter()
            .map(|(p, busy)| {
                let was = b.busy_seconds.get(p).copied().unwrap_or(0.0);
                ((busy - was).max(0.0) / elapsed_seconds).clamp(0.0, 1.0)
            })
            .reduce(f64::max)
    });
    (worst, utilisation)
}

// ---------------------------------------------------------------------------------------------
// Memory from the audit log (pure).

/// The cool-down clock of `connector` on `cluster`: time and direction of its newest applied
/// change or revert.
pub fn memory_from_audit(records: &[AuditRecord], cluster: &str, connector: &str) -> TunerState {
    let newest = records.iter().rev().find(|r| {
        r.actor == ACTOR
            && r.subject == connector
            && (r.action == ACTION_CHANGED || r.action == ACTION_REVERTED)
            && r.details_json()["cluster"].as_str() == Some(cluster)
    });
    let mut state = TunerState::default();
    if let Some(r) = newest {
        let d = r.details_json();
        state.last_change_ms = d["now_ms"].as_u64();
        state.last_up = d["up"].as_bool();
    }
    state
}

/// A recorded change set, as read back from its audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedChange {
    pub seq: u64,
    pub cluster: String,
    pub connector: String,
    pub changes: Vec<TuningChange>,
    pub up: Option<bool>,
}

fn recorded_change(record: &AuditRecord) -> Option<RecordedChange> {
    if record.actor != ACTOR || record.action != ACTION_CHANGED {
        return None;
    }
    let d = record.details_json();
    let changes = d["changes"]
        .as_array()?
        .iter()
        .filter_map(|c| {
            Some(TuningChange {
                param: c["param"].as_str()?.to_string(),
                from: c["from"].as_u64()?,
                to: c["to"].as_u64()?,
                reason: d["reason"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect();
    Some(RecordedChange {
        seq: record.seq,
        cluster: d["cluster"].as_str().unwrap_or("default").to_string(),
        connector: record.subject.clone(),
        changes,
        up: d["up"].as_bool(),
    })
}

/// The change to revert: `seq` (which must be an applied tuning change not reverted yet), or
/// the newest such change (of `connector`, when given).
pub fn change_to_revert(
    records: &[AuditRecord],
    seq: Option<u64>,
    connector: Option<&str>,
) -> Result<RecordedChange, String> {
    let reverted: Vec<u64> = records
        .iter()
        .filter(|r| r.actor == ACTOR && r.action == ACTION_REVERTED)
        .filter_map(|r| r.details_json()["reverts"].as_u64())
        .collect();
    match seq {
        Some(seq) => {
            let record = records.iter().find(|r| r.seq == seq).ok_or_else(|| {
                format!("no audit record with seq {seq}: `lockstep audit show` lists them")
            })?;
            let change = recorded_change(record).ok_or_else(|| {
                format!(
                    "audit record {seq} is '{}' by '{}', not an applied tuning change ({ACTION_CHANGED} by {ACTOR})",
                    record.action, record.actor
                )
            })?;
            if reverted.contains(&seq) {
                return Err(format!("tuning change {seq} was already reverted"));
            }
            Ok(change)
        }
        None => records
            .iter()
            .rev()
            .filter_map(recorded_change)
            .filter(|c| connector.is_none_or(|want| want == c.connector))
            .find(|c| !reverted.contains(&c.seq))
            .ok_or_else(|| match connector {
                Some(name) => format!("no tuning change of connector '{name}' left to revert"),
                None => "no tuning change left to revert".to_string(),
            }),
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

#[derive(Debug, Clone, Serialize)]
pub struct ChangeLine {
    pub param: String,
    pub from: u64,
    pub to: u64,
    pub direction: String,
    /// `applied`, `recommended`, `failed` or `reverted`.
    pub mode: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    pub cluster: String,
    pub connector: String,
    pub slo_seconds: f64,
    pub observed_p99_seconds: Option<f64>,
    pub utilisation: Option<f64>,
    /// `metrics`, `override` or `none`.
    pub observed_from: String,
    pub values: BTreeMap<String, u64>,
    pub changes: Vec<ChangeLine>,
    /// Why (or why not) it changed something.
    pub reason: String,
    /// The audit record of this cycle, when one was written.
    pub audit_seq: Option<u64>,
    pub notes: Vec<String>,
}

/// The table of changes of a tune or revert report.
const CHANGE_HEADERS: [&str; 6] = ["CONNECTOR", "PARAM", "FROM", "TO", "DIRECTION", "MODE"];

fn change_rows(connector: &str, changes: &[ChangeLine]) -> Vec<Vec<String>> {
    changes
        .iter()
        .map(|c| {
            vec![
                connector.to_string(),
                c.param.clone(),
                c.from.to_string(),
                c.to.to_string(),
                c.direction.clone(),
                c.mode.clone(),
            ]
        })
        .collect()
}

impl TableView for TuneReport {
    fn headers(&self) -> Vec<&'static str> {
        CHANGE_HEADERS.to_vec()
    }

    fn rows(&self) -> Vec<Vec<String>> {
        change_rows(&self.connector, &self.changes)
    }

    fn footer(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "observed ({}): p99 lag {}, utilisation {}; SLO {:.2}s",
            self.observed_from,
            self.observed_p99_seconds
                .map_or("-".into(), |s| format!("{s:.2}s")),
            self.utilisation
                .map_or("-".into(), |u| format!("{:.0}%", u * 100.0)),
            self.slo_seconds
        )];
        if self.changes.is_empty() {
            lines.push(format!("no change: {}", self.reason));
        } else {
            lines.push(self.reason.clone());
        }
        if let Some(seq) = self.audit_seq {
            lines.push(format!("audit seq {seq}"));
        }
        lines.extend(self.notes.iter().cloned());
        lines
    }
}

// ---------------------------------------------------------------------------------------------
// Shell.

fn open_store(dir: &Path) -> anyhow::Result<Store> {
    Store::open_dir(dir).map_err(|e| {
        anyhow!(
            "cannot open the state store in {} to audit the tuner's changes: {e}; pass --state-dir or set LOCKSTEP_STATE_DIR to a writable directory",
            dir.display()
        )
    })
}

async fn scrape(url: &str, pipeline: Option<&str>) -> anyhow::Result<SinkSample> {
    let exposition = crate::status_cmd::scrape(url).await?;
    Ok(parse_sample_text(&exposition, pipeline))
}

/// The connector's current knob values (Debezium's defaults for unset ones).
async fn current_values(
    client: &ConnectClient,
    connector: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let config = client.get_connector_config(connector).await.map_err(|e| {
        anyhow!("cannot read the configuration of connector '{connector}' to tune it: {e}")
    })?;
    let mut values = BTreeMap::new();
    for (key, default) in DEBEZIUM_DEFAULTS {
        let value = match config.get(key) {
            None => *default,
            Some(text) => text.trim().parse().map_err(|_| {
                anyhow!("connector '{connector}' has {key}={text:?}, not a whole number; fix the connector config before tuning it")
            })?,
        };
        values.insert((*key).to_string(), value);
    }
    Ok(values)
}

/// Sets `changes` on the connector: PATCH of the changed keys, or GET + PUT of the whole
/// configuration on workers without PATCH. Returns the method used.
async fn set_values(
    client: &ConnectClient,
    connector: &str,
    changes: &[(String, u64)],
) -> Result<&'static str, ConnectError> {
    let patch = changes.iter().fold(ConfigPatch::new(), |p, (k, v)| {
        p.set(k.clone(), v.to_string())
    });
    match client.patch_connector_config(connector, &patch).await {
        Ok(_) => Ok("patch"),
        Err(ConnectError::NotSupported { .. }) => {
            let mut config = client.get_connector_config(connector).await?;
            for (k, v) in changes {
                config.insert(k.clone(), v.to_string());
            }
            client.put_connector_config(connector, &config).await?;
            Ok("put")
        }
        Err(e) => Err(e),
    }
}

fn append(store: &Store, action: &str, subject: &str, details: serde_json::Value) -> Option<u64> {
    match store.append_audit(&AuditEntry::new(ACTOR, action, subject, details)) {
        Ok(record) => Some(record.seq),
        Err(err) => {
            tracing::error!(error = %err, action, "tuner: cannot append to the audit log");
            None
        }
    }
}

fn change_json(changes: &[TuningChange]) -> serde_json::Value {
    serde_json::Value::Array(
        changes
            .iter()
            .map(|c| {
                serde_json::json!({
                    "param": c.param,
                    "from": c.from,
                    "to": c.to,
                    "direction": c.direction(),
                })
            })
            .collect(),
    )
}

struct Cycle<'a> {
    args: &'a TuneRunArgs,
    cluster: String,
    connector: String,
    client: ConnectClient,
    store: Store,
    tuner: Tuner,
    metrics: WatchdogMetrics,
    /// The sink's pipeline-file values, when given.
    sink_values: BTreeMap<String, u64>,
    sink_file: Option<PathBuf>,
    /// The previous scrape (loop mode), for a windowed observation.
    previous: Option<(Instant, SinkSample)>,
    /// In-memory clock of recommend-only runs (recommendations are not applied changes).
    recommended: TunerState,
}

impl Cycle<'_> {
    /// One observation: the window since the previous cycle's scrape, or (first cycle) two
    /// scrapes `--window` apart; the override flags replace what they name.
    async fn observe(&mut self) -> anyhow::Result<(Option<f64>, Option<f64>, String)> {
        let args = self.args;
        let (mut p99, mut utilisation, mut from) = (None, None, "none".to_string());
        if let Some(url) = &args.metrics {
            let before = match self.previous.take() {
                Some(prev) => Some(prev),
                None => {
                    let sample = scrape(url, args.pipeline.as_deref()).await?;
                    let at = Instant::now();
                    tokio::time::sleep(args.window).await;
                    Some((at, sample))
                }
            };
            let sample = scrape(url, args.pipeline.as_deref()).await?;
            let at = Instant::now();
            let (lag, util) = observe_between(
                before.as_ref().map(|(_, s)| s),
                &sample,
                before
                    .as_ref()
                    .map_or(0.0, |(t, _)| at.duration_since(*t).as_secs_f64()),
            );
            self.previous = Some((at, sample));
            (p99, utilisation, from) = (lag, util, "metrics".into());
        }
        if let Some(d) = args.observed_p99 {
            p99 = Some(d.as_secs_f64());
            from = "override".into();
        }
        if let Some(u) = args.observed_utilisation {
            utilisation = Some(u.clamp(0.0, 1.0));
            from = "override".into();
        }
        Ok((p99, utilisation, from))
    }

    async fn run(&mut self) -> anyhow::Result<TuneReport> {
        let args = self.args;
        let (p99, utilisation, observed_from) = self.observe().await?;
        let mut values = current_values(&self.client, &self.connector).await?;
        values.extend(self.sink_values.clone());
        let mut report = TuneReport {
            cluster: self.cluster.clone(),
            connector: self.connector.clone(),
            slo_seconds: self.tuner.config.slo_p99_seconds,
            observed_p99_seconds: p99,
            utilisation,
            observed_from,
            values: values.clone(),
            changes: Vec::new(),
            reason: String::new(),
            audit_seq: None,
            notes: Vec::new(),
        };
        if utilisation.is_none() {
            report.notes.push(format!(
                "utilisation not observed: taken as {:.0}% (never scales down blindly)",
                UNKNOWN_UTILISATION * 100.0
            ));
        }
        let Some(p99) = p99 else {
            report.reason = if args.metrics.is_some() {
                "no change was applied by the sink in the window: nothing to judge the lag by"
                    .into()
            } else {
                "nothing observed: give --metrics (or --observed-p99 for a what-if)".into()
            };
            return Ok(report);
        };
        let now = now_ms();
        let audit = self.store.audit_records(None, 0)?;
        // The newer of the applied clock (audit log) and this process's recommendations.
        let mut state = memory_from_audit(&audit, &self.cluster, &self.connector);
        if self.recommended.last_change_ms > state.last_change_ms {
            state = self.recommended.clone();
        }
        state.values = values;
        let (changes, next) = self.tuner.step(
            &state,
            &TunerObservation {
                now_ms: now,
                p99_lag_seconds: p99,
                utilisation: utilisation.unwrap_or(UNKNOWN_UTILISATION),
            },
        );
        if changes.is_empty() {
            report.reason = match state.last_change_ms {
                Some(last) if now.saturating_sub(last) < self.tuner.config.reversal_cooldown_ms => {
                    format!(
                        "inside the band, or cooling down (last change {:.0} s ago)",
                        now.saturating_sub(last) as f64 / 1000.0
                    )
                }
                _ => "lag and utilisation inside the band".into(),
            };
            return Ok(report);
        }
        let up = next.last_up.unwrap_or(true);
        report.reason = changes[0].reason.clone();
        let (source, sink): (Vec<TuningChange>, Vec<TuningChange>) =
            changes.into_iter().partition(|c| !is_sink_knob(&c.param));
        let observed = serde_json::json!({
            "p99_lag_seconds": p99,
            "utilisation": utilisation,
            "from": report.observed_from,
        });
        let mut applied = Vec::new();
        if args.recommend_only || source.is_empty() {
            // Recommendations cool down like changes, in this process only.
            self.recommended = TunerState {
                values: BTreeMap::new(),
                last_change_ms: next.last_change_ms,
                last_up: next.last_up,
            };
        } else {
            let pairs: Vec<(String, u64)> =
                source.iter().map(|c| (c.param.clone(), c.to)).collect();
            match set_values(&self.client, &self.connector, &pairs).await {
                Ok(method) => {
                    report.audit_seq = append(
                        &self.store,
                        ACTION_CHANGED,
                        &self.connector,
                        serde_json::json!({
                            "cluster": self.cluster,
                            "changes": change_json(&source),
                            "reason": report.reason,
                            "up": up,
                            "now_ms": now,
                            "slo_seconds": self.tuner.config.slo_p99_seconds,
                            "observed": observed,
                            "method": method,
                        }),
                    );
                    applied = source.clone();
                }
                Err(err) => {
                    append(
                        &self.store,
                        ACTION_FAILED,
                        &self.connector,
                        serde_json::json!({
                            "cluster": self.cluster,
                            "changes": change_json(&source),
                            "error": err.to_string(),
                            "now_ms": now,
                        }),
                    );
                    for c in &source {
                        report.changes.push(line(c, "failed"));
                    }
                    return Err(anyhow!(
                        "cannot change {} of connector '{}': {err}; nothing was applied (see `lockstep connect status {}`)",
                        pairs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
                        self.connector,
                        self.connector
                    ));
                }
            }
        }
        let recommended: Vec<TuningChange> = if applied.is_empty() {
            source.iter().chain(&sink).cloned().collect()
        } else {
            sink.clone()
        };
        if !recommended.is_empty() {
            let seq = append(
                &self.store,
                ACTION_RECOMMENDED,
                &self.connector,
                serde_json::json!({
                    "cluster": self.cluster,
                    "changes": change_json(&recommended),
                    "reason": report.reason,
                    "up": up,
                    "now_ms": now,
                    "slo_seconds": self.tuner.config.slo_p99_seconds,
                    "observed": observed,
                    "sink_pipeline": self.sink_file.as_ref().map(|p| p.display().to_string()),
                }),
            );
            report.audit_seq = report.audit_seq.or(seq);
        }
        let count = |c: &TuningChange, mode: &str| {
            self.metrics
                .tuning_changes
                .get_or_create(&TuningLabels {
                    pipeline: self.connector.clone(),
                    param: c.param.clone(),
                    direction: c.direction().into(),
                    mode: mode.into(),
                })
                .inc();
        };
        for c in &applied {
            count(c, "applied");
            report.changes.push(line(c, "applied"));
        }
        for c in &recommended {
            count(c, "recommended");
            report.changes.push(line(c, "recommended"));
        }
        if !sink.is_empty() {
            report.notes.push(format!(
                "the sink has no control API for its batch settings: set them in {} and restart the sink",
                self.sink_file
                    .as_ref()
                    .map_or("the pipeline file".into(), |p| p.display().to_string())
            ));
        }
        Ok(report)
    }
}

fn line(c: &TuningChange, mode: &str) -> ChangeLine {
    ChangeLine {
        param: c.param.clone(),
        from: c.from,
        to: c.to,
        direction: c.direction().into(),
        mode: mode.into(),
    }
}

/// Serves the registry on `GET /metrics` at `addr` in the background.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    registry: prometheus_client::registry::Registry,
) -> anyhow::Result<()> {
    let registry = std::sync::Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                    Ok(()) => Ok((
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )),
                    Err(e) => Err((
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("encoding metrics failed: {e}"),
                    )),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow!("cannot listen on {addr}: {e}; choose another address with --listen")
    })?;
    eprintln!("lockstep tune: metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the tuner's metrics endpoint stopped: {e}");
        }
    });
    Ok(())
}

async fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200).min(total)).await;
    }
}

pub async fn run(global: &GlobalArgs, args: TuneArgs) -> anyhow::Result<u8> {
    if let Some(TuneCommand::Revert {
        change,
        last,
        connector,
        force,
    }) = args.command
    {
        let change = if last { None } else { change };
        return revert(global, &args.state.state_dir, change, connector, force).await;
    }
    let run = &args.run;
    let (Some(connector), Some(slo)) = (run.connector.clone(), run.slo) else {
        bail!("lockstep tune needs --connector NAME and --slo DURATION");
    };
    if !(run.step > 1.0 && run.step.is_finite()) {
        bail!("--step {} must be a number above 1 (e.g. 1.5)", run.step);
    }
    if run.metrics.is_none() && run.observed_p99.is_none() {
        bail!("nothing to observe: give --metrics URL (the sink's /metrics), or --observed-p99 for a test or what-if run");
    }
    let mut sink_values = BTreeMap::new();
    if let Some(file) = &run.sink_pipeline {
        let pipeline = lockstep_sink::SinkPipeline::load(file)
            .with_context(|| format!("reading the sink pipeline {}", file.display()))?;
        sink_values.insert(
            "batch.max_rows".to_string(),
            u64::try_from(pipeline.batch.max_rows).unwrap_or(u64::MAX),
        );
        sink_values.insert("batch.linger_ms".to_string(), pipeline.batch.linger_ms);
    }
    let mut config = TunerConfig::new(
        slo.as_secs_f64(),
        knobs(&run.limits, run.sink_pipeline.is_some())?,
    );
    config.step = run.step;
    config.cooldown_ms = ms(run.cooldown);
    config.reversal_cooldown_ms = ms(run.reversal_cooldown);
    let cluster = global
        .target
        .cluster
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut cycle = Cycle {
        args: run,
        cluster,
        connector,
        client: crate::target::connect_client(global)?,
        store: open_store(&args.state.state_dir)?,
        tuner: Tuner::new(config),
        metrics: WatchdogMetrics::unregistered(),
        sink_values,
        sink_file: run.sink_pipeline.clone(),
        previous: None,
        recommended: TunerState::default(),
    };
    if let Some(addr) = run.listen {
        let mut registry = prometheus_client::registry::Registry::default();
        cycle.metrics = WatchdogMetrics::register(&mut registry);
        serve_metrics(addr, registry).await?;
    }
    if run.once {
        let report = cycle.run().await?;
        print(global.output, &report)?;
        return Ok(exit::OK);
    }
    let stop = crate::sink_cmd::shutdown_flag()?;
    eprintln!(
        "lockstep tune: connector {} every {:?}, SLO p99 {:?}{}; Ctrl-C stops",
        cycle.connector,
        run.interval,
        slo,
        if run.recommend_only {
            " (recommend-only: no changes)"
        } else {
            ""
        }
    );
    while !stop.load(Ordering::Relaxed) {
        match cycle.run().await {
            Ok(report) if !report.changes.is_empty() => {
                for c in &report.changes {
                    eprintln!(
                        "{}: {} {} -> {} ({})",
                        report.connector, c.param, c.from, c.to, c.mode
                    );
                }
            }
            Ok(_) => {}
            Err(err) => eprintln!("tune cycle failed: {err:#}"),
        }
        sleep_unless_stopped(run.interval, &stop).await;
    }
    Ok(exit::OK)
}

#[derive(Debug, Serialize)]
struct RevertReport {
    reverts: u64,
    cluster: String,
    connector: String,
    changes: Vec<ChangeLine>,
    audit_seq: Option<u64>,
}

impl TableView for RevertReport {
    fn headers(&self) -> Vec<&'static str> {
        CHANGE_HEADERS.to_vec()
    }

    fn rows(&self) -> Vec<Vec<String>> {
        change_rows(&self.connector, &self.changes)
    }

    fn footer(&self) -> Vec<String> {
        let mut lines = vec![format!("reverted tuning change {}", self.reverts)];
        if let Some(seq) = self.audit_seq {
            lines.push(format!("audit seq {seq}"));
        }
        lines
    }
}

async fn revert(
    global: &GlobalArgs,
    state_dir: &Path,
    seq: Option<u64>,
    connector: Option<String>,
    force: bool,
) -> anyhow::Result<u8> {
    let store = open_store(state_dir)?;
    let records = store.audit_records(None, 0)?;
    let change = change_to_revert(&records, seq, connector.as_deref()).map_err(|e| anyhow!(e))?;
    let mut target = global.clone();
    if target.target.connect_url.is_empty() && target.target.cluster.is_none() {
        target.target.cluster = Some(change.cluster.clone()).filter(|c| c != "default");
    }
    let client = crate::target::connect_client(&target)?;
    let current = current_values(&client, &change.connector).await?;
    let moved: Vec<String> = change
        .changes
        .iter()
        .filter(|c| current.get(&c.param) != Some(&c.to))
        .map(|c| {
            format!(
                "{} is {} (the change set {})",
                c.param,
                current
                    .get(&c.param)
                    .map_or("unset".into(), |v| v.to_string()),
                c.to
            )
        })
        .collect();
    if !moved.is_empty() && !force {
        bail!(
            "connector '{}' changed since tuning change {}: {}; pass --force to restore the old values anyway",
            change.connector,
            change.seq,
            moved.join(", ")
        );
    }
    let reverts: Vec<TuningChange> = change.changes.iter().map(TuningChange::revert).collect();
    let pairs: Vec<(String, u64)> = reverts.iter().map(|c| (c.param.clone(), c.to)).collect();
    let method = set_values(&client, &change.connector, &pairs)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot restore {} of connector '{}': {e}; nothing was reverted",
                pairs
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                change.connector
            )
        })?;
    let audit_seq = append(
        &store,
        ACTION_REVERTED,
        &change.connector,
        serde_json::json!({
            "cluster": change.cluster,
            "reverts": change.seq,
            "changes": change_json(&reverts),
            "up": change.up.map(|u| !u),
            "now_ms": now_ms(),
            "method": method,
            "forced": force && !moved.is_empty(),
        }),
    );
    let report = RevertReport {
        reverts: change.seq,
        cluster: change.cluster.clone(),
        connector: change.connector.clone(),
        changes: reverts.iter().map(|c| line(c, "reverted")).collect(),
        audit_seq,
    };
    print(global.output, &report)?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, action: &str, subject: &str, details: serde_json::Value) -> AuditRecord {
        AuditRecord {
            seq,
            ts: "2026-01-01T00:00:00Z".into(),
            actor: ACTOR.into(),
            action: action.into(),
            subject: subject.into(),
            details: details.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_grammar_needs_connector_and_slo_except_for_revert() {
        use clap::Parser;
        let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args);
        assert!(parse(&["lockstep", "tune", "--connector", "c", "--slo", "5s"]).is_ok());
        assert!(
            parse(&["lockstep", "tune", "--connector", "c"]).is_err(),
            "no SLO"
        );
        assert!(
            parse(&["lockstep", "tune", "--slo", "5s"]).is_err(),
            "no connector"
        );
        assert!(parse(&["lockstep", "tune", "revert", "--last"]).is_ok());
        assert!(parse(&["lockstep", "tune", "revert", "--change", "7"]).is_ok());
        assert!(
            parse(&["lockstep", "tune", "revert"]).is_err(),
            "which change?"
        );
        assert!(parse(&["lockstep", "tune", "revert", "--change", "7", "--last"]).is_err());
        assert!(parse(&[
            "lockstep",
            "tune",
            "--connector",
            "c",
            "--slo",
            "5s",
            "--limit",
            "max.batch.size=9..1"
        ])
        .is_err());
    }

    #[test]
    fn the_report_renders_as_a_table_and_as_json() {
        let report = TuneReport {
            cluster: "default".into(),
            connector: "orders".into(),
            slo_seconds: 5.0,
            observed_p99_seconds: Some(9.0),
            utilisation: None,
            observed_from: "override".into(),
            values: BTreeMap::new(),
            changes: vec![line(
                &TuningChange {
                    param: "max.batch.size".into(),
                    from: 2048,
                    to: 3072,
                    reason: "lag".into(),
                },
                "recommended",
            )],
            reason: "p99 lag 9.00s vs SLO 5.00s: raise throughput".into(),
            audit_seq: Some(7),
            notes: vec![],
        };
        let table =
            crate::output::render(crate::output::OutputFormat::Table, &report).expect("table");
        assert!(table.contains("orders"), "{table}");
        assert!(
            table.contains("max.batch.size  2048  3072  increase   recommended"),
            "{table}"
        );
        assert!(table.contains("audit seq 7"), "{table}");
        let json = crate::output::render(crate::output::OutputFormat::Json, &report).expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["changes"][0]["to"], 3072);
    }

    #[test]
    fn limits_parse_and_override_the_defaults() {
        assert_eq!(
            parse_limit("max.batch.size=512..8192"),
            Ok(("max.batch.size".to_string(), 512, 8192))
        );
        for bad in ["max.batch.size", "x=5", "x=9..5", "=1..2", "x=a..b"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
        let knobs = knobs(&[("max.batch.size".into(), 512, 8192)], false).expect("known knob");
        let batch = knobs
            .iter()
            .find(|k| k.name == "max.batch.size")
            .expect("batch");
        assert_eq!((batch.min, batch.max), (512, 8192));
        assert!(super::knobs(&[("frobs".into(), 1, 2)], false).is_err());
        assert_eq!(super::knobs(&[], true).expect("defaults").len(), 5);
    }

    #[test]
    fn the_window_is_the_difference_of_two_scrapes() {
        let text = |fast: u64, slow: u64, busy: f64| {
            format!(
                "lockstep_sink_end_to_end_lag_seconds_bucket{{le=\"1.0\",pipeline=\"p\",table=\"t\"}} {fast}\n\
lockstep_sink_end_to_end_lag_seconds_bucket{{le=\"10.0\",pipeline=\"p\",table=\"t\"}} {}\n\
lockstep_sink_end_to_end_lag_seconds_bucket{{le=\"+Inf\",pipeline=\"p\",table=\"t\"}} {}\n\
lockstep_sink_batch_duration_seconds_sum{{pipeline=\"p\"}} {busy}\n\
lockstep_sink_batch_duration_seconds_sum{{pipeline=\"other\"}} 99\n",
                fast + slow,
                fast + slow
            )
        };
        // Since start: 1,000 fast changes hide 5 slow ones; in the window only slow ones.
        let before = parse_sample_text(&text(1_000, 0, 2.0), Some("p"));
        let after = parse_sample_text(&text(1_000, 5, 8.0), Some("p"));
        assert_eq!(after.busy_seconds.len(), 1, "only pipeline p");
        let (since_start, util) = observe_between(None, &after, 0.0);
        assert!(since_start.expect("lag") <= 1.0, "{since_start:?}");
        assert_eq!(util, None);
        let (window, util) = observe_between(Some(&before), &after, 10.0);
        assert!(window.expect("lag") > 9.0, "{window:?}");
        assert!((util.expect("util") - 0.6).abs() < 1e-9, "{util:?}");
        // Nothing applied in the window: no lag to judge by.
        let (idle, util) = observe_between(Some(&after), &after, 10.0);
        assert_eq!(idle, None);
        assert_eq!(util, Some(0.0));
    }

    #[test]
    fn the_cooldown_clock_and_reverts_come_from_the_audit_log() {
        let changes = serde_json::json!([{"param": "max.batch.size", "from": 2048, "to": 3072}]);
        let log = vec![
            record(
                1,
                ACTION_CHANGED,
                "orders",
                serde_json::json!({"cluster": "default", "changes": changes, "up": true, "now_ms": 1_000, "reason": "lag"}),
            ),
            record(
                2,
                ACTION_RECOMMENDED,
                "orders",
                serde_json::json!({"cluster": "default", "changes": changes, "up": false, "now_ms": 5_000}),
            ),
            record(
                3,
                ACTION_CHANGED,
                "users",
                serde_json::json!({"cluster": "default", "changes": changes, "up": true, "now_ms": 7_000}),
            ),
            record(
                4,
                ACTION_REVERTED,
                "users",
                serde_json::json!({"cluster": "default", "reverts": 3, "up": false, "now_ms": 9_000}),
            ),
        ];
        // Recommendations do not start a cool-down; other connectors' changes do not count.
        let orders = memory_from_audit(&log, "default", "orders");
        assert_eq!(
            (orders.last_change_ms, orders.last_up),
            (Some(1_000), Some(true))
        );
        let users = memory_from_audit(&log, "default", "users");
        assert_eq!(
            (users.last_change_ms, users.last_up),
            (Some(9_000), Some(false))
        );
        assert_eq!(
            memory_from_audit(&log, "prod", "orders"),
            TunerState::default()
        );

        let last = change_to_revert(&log, None, None).expect("orders' change is left");
        assert_eq!(last.seq, 1);
        assert_eq!(last.changes[0].from, 2048);
        assert!(
            change_to_revert(&log, None, Some("users")).is_err(),
            "reverted"
        );
        assert!(change_to_revert(&log, Some(3), None).is_err(), "reverted");
        assert!(
            change_to_revert(&log, Some(2), None).is_err(),
            "a recommendation"
        );
        assert!(
            change_to_revert(&log, Some(42), None).is_err(),
            "no such record"
        );
        assert_eq!(
            change_to_revert(&log, Some(1), None).map(|c| c.connector),
            Ok("orders".into())
        );
    }
}
