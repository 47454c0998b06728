//! `lockstep status`: every pipeline at a glance. One line per connector of every configured
//! Connect cluster (state, running tasks, source freshness from its committed offsets, the last
//! watchdog incident from the audit log) and one line per sink pipeline and table found on the
//! `--metrics` endpoints given (end-to-end lag p99 from the sink's histogram).
//!
//! The pure part (histogram quantiles, incident summaries, the rows) is unit-tested; the shell
//! reads Connect, the store and the metrics endpoints.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Args;
use lockstep_connect::{ConnectorState, ConnectorType, Expand};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::exit;
use crate::output::{print, TableView};

/// The sink's end-to-end lag histogram, as exposed on /metrics.
const LAG_METRIC: &str = "lockstep_sink_end_to_end_lag_seconds";

#[derive(Debug, Args)]
#[command(after_help = "Sources:
  * every connector of every Connect cluster in lockstep.yaml (or --connect-url / --cluster):
    state, tasks running, freshness = age of the newest source commit (or heartbeat) in its
    committed offsets (Debezium ts_usec / ts_ms / ts_sec);
  * the last watchdog incident per connector from the audit log in --state-dir;
  * with --metrics URL (repeatable; `lockstep serve` or `lockstep sink run --listen`): one line
    per sink pipeline and table with the end-to-end lag p99 (interpolated from the histogram
    since the process started).

Exit codes: 0 every connector runs; 1 a connector or task is FAILED, or a source did not answer.

Examples:
  lockstep status
  lockstep status --metrics http://127.0.0.1:8480/metrics -o json")]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: crate::audit_cmd::StateDirArgs,
    /// A lockstep /metrics endpoint to read the sinks' lag from (repeatable).
    #[arg(long = "metrics", value_name = "URL")]
    pub metrics: Vec<String>,
    /// Show only these connectors (repeatable; default: every connector of every cluster).
    #[arg(long = "connector", value_name = "NAME")]
    pub connectors: Vec<String>,
}

/// One line of `lockstep status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    /// `connector` or `sink`.
    pub kind: String,
    /// Connect cluster, or the metrics endpoint for a sink.
    pub source: String,
    pub name: String,
    pub state: String,
    /// Tasks running / tasks, for a connector.
    pub tasks: String,
    /// Seconds since the newest source commit or heartbeat the connector committed.
    pub freshness_seconds: Option<f64>,
    /// End-to-end lag p99 in seconds, for a sink table.
    pub lag_p99_seconds: Option<f64>,
    /// The last watchdog action about this connector: "ts action (cause)".
    pub last_incident: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct StatusReport {
    pub rows: Vec<StatusRow>,
    /// Clusters or endpoints that did not answer, with the error.
    pub unreachable: Vec<(String, String)>,
}

impl StatusReport {
    pub fn healthy(&self) -> bool {
        self.unreachable.is_empty() && !self.rows.iter().any(|r| r.state.contains("FAILED"))
    }
}

fn seconds(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 10.0 => format!("{s:.2}s"),
        Some(s) if s < 3600.0 => format!("{s:.0}s"),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

impl TableView for StatusReport {
    fn headers(&self) -> Vec<&'static str> {
        vec![
            "KIND",
            "SOURCE",
            "NAME",
            "STATE",
            "TASKS",
            "FRESHNESS",
            "LAG P99",
            "LAST INCIDENT",
        ]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.kind.clone(),
                    r.source.clone(),
                    r.name.clone(),
                    r.state.clone(),
                    r.tasks.clone(),
                    seconds(r.freshness_seconds),
                    seconds(r.lag_p99_seconds),
                    r.last_incident.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect()
    }

    fn footer(&self) -> Vec<String> {
        self.unreachable
            .iter()
            .map(|(what, err)| format!("{what} did not answer: {err}"))
            .collect()
    }
}

/// The `q` quantile of a Prometheus histogram given as cumulative `(upper bound, count)`
/// buckets (any order; `+Inf` as `f64::INFINITY`), interpolated linearly inside the bucket as
/// PromQL's `histogram_quantile` does. `None` without observations; a quantile in the `+Inf`
/// bucket is the highest finite bound.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut prev = (0.0_f64, 0.0_f64);
    for &(le, count) in &b {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / in_bucket);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

/// Parses `name{a="x",b="y"} value` into (name, labels, value); `None` for comments and lines
/// it does not understand.
pub fn parse_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let mut map = BTreeMap::new();
    for pair in labels.split("\",").filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once("=\"")?;
        map.insert(
            k.trim_start_matches(',').to_string(),
            v.trim_end_matches('"').to_string(),
        );
    }
    Some((name, map, value))
}

/// The sinks' lag p99 per (pipeline, table) from an OpenMetrics / Prometheus text exposition.
pub fn lag_p99_by_table(exposition: &str) -> BTreeMap<(String, String), Option<f64>> {
    lag_buckets(exposition)
        .into_iter()
        .map(|(k, b)| (k, histogram_quantile(0.99, &b)))
        .collect()
}

/// The sinks' cumulative lag buckets `(le, count)` per (pipeline, table), in exposition order,
/// from an OpenMetrics / Prometheus text exposition (`lockstep tune` reads them too).
pub fn lag_buckets(exposition: &str) -> BTreeMap<(String, String), Vec<(f64, f64)>> {
    let bucket = format!("{LAG_METRIC}_bucket");
    let mut buckets: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (name, labels, value) in exposition.lines().filter_map(parse_sample) {
        if name != bucket {
            continue;
        }
        let (Some(pipeline), Some(table), Some(le)) = (
            labels.get("pipeline"),
            labels.get("table"),
            labels.get("le"),
        ) else {
            continue;
        };
        let le = match le.as_str() {
            "+Inf" => f64::INFINITY,
            v => match v.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        buckets
            .entry((pipeline.clone(), table.clone()))
            .or_default()
            .push((le, value));
    }
    buckets
}

/// "ts action (cause)" of the newest audit record about `subject` by the watchdog.
pub fn last_incident(records: &[lockstep_store::AuditRecord], subject: &str) -> Option<String> {
    records
        .iter()
        .rev()
        .find(|r| r.actor == "watchdog" && r.subject == subject)
        .map(|r| {
            let details = r.details_json();
            match details["cause"].as_str() {
                Some(cause) => format!("{} {} ({cause})", r.ts, r.action),
                None => format!("{} {}", r.ts, r.action),
            }
        })
}

fn audit_log(dir: &Path) -> anyhow::Result<Vec<lockstep_store::AuditRecord>> {
    let file = dir.join(lockstep_store::DB_FILE);
    if !file.is_file() {
        return Ok(Vec::new());
    }
    let store = lockstep_store::Store::open_existing(&file).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the audit log in {}: {e}; pass --state-dir (or LOCKSTEP_STATE_DIR) naming lockstep's state directory",
            dir.display()
        )
    })?;
    Ok(store.audit_records(None, 0)?)
}

/// One GET of a /metrics endpoint: its text (`lockstep tune` scrapes with it too).
pub(crate) async fn scrape(url: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {e}; check that `lockstep serve` or `lockstep sink run --listen` runs there"))?;
    if !response.status().is_success() {
        anyhow::bail!("GET {url}: HTTP {}", response.status());
    }
    Ok(response.text().await?)
}

pub async fn run(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<u8> {
    let clusters = crate::watch_cmd::clusters(global)?;
    let audit = audit_log(&args.state.state_dir)?;
    let mut report = StatusReport::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    for (cluster, client) in &clusters {
        let connectors = match client.list_connectors_expanded(Expand::STATUS).await {
            Ok(c) => c,
            Err(err) => {
                report
                    .unreachable
                    .push((format!("cluster {cluster}"), err.to_string()));
                continue;
            }
        };
        for (name, expanded) in connectors {
            if !args.connectors.is_empty() && !args.connectors.contains(&name) {
                continue;
            }
            let Some(status) = expanded.status else {
                continue;
            };
            let running = status
                .tasks
                .iter()
                .filter(|t| t.state == ConnectorState::Running)
                .count();
            let failed = status.has_failure();
            let mut state = status.connector.state.as_str().to_string();
            if failed && status.connector.state != ConnectorState::Failed {
                state.push_str(" (task FAILED)");
            }
            let freshness_seconds = if status.connector_type == Some(ConnectorType::Source) {
                match client.get_offsets(&name).await {
                    Ok(offsets) => crate::watch_cmd::source_commit_time_ms(&offsets)
                        .map(|ms| now_ms.saturating_sub(ms) as f64 / 1000.0),
                    Err(_) => None,
                }
            } else {
                None
            };
            report.rows.push(StatusRow {
                kind: "connector".into(),
                source: cluster.clone(),
                last_incident: last_incident(&audit, &name),
                name,
                state,
                tasks: format!("{running}/{}", status.tasks.len()),
                freshness_seconds,
                lag_p99_seconds: None,
            });
        }
    }
    for url in &args.metrics {
        match scrape(url).await {
            Ok(text) => {
                for ((pipeline, table), p99) in lag_p99_by_table(&text) {
                    report.rows.push(StatusRow {
                        kind: "sink".into(),
                        source: url.clone(),
                        name: format!("{pipeline}/{table}"),
                        state: "-".into(),
                        tasks: "-".into(),
                        freshness_seconds: None,
                        lag_p99_seconds: p99,
                        last_incident: None,
                    });
                }
            }
            Err(err) => report.unreachable.push((url.clone(), format!("{err:#}"))),
        }
    }
    print(global.output, &report)?;
    Ok(if report.healthy() {
        exit::OK
    } else {
        exit::FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (quantile, cumulative buckets, expected).
    type Case<'a> = (f64, &'a [(f64, f64)], Option<f64>);

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let inf = f64::INFINITY;
        let cases: &[Case] = &[
            (0.99, &[], None),
            (0.99, &[(1.0, 0.0), (inf, 0.0)], None),
            // 100 observations, all in (0.5, 1]: p50 halfway, p99 near the top.
            (0.5, &[(0.5, 0.0), (1.0, 100.0), (inf, 100.0)], Some(0.75)),
            (0.99, &[(0.5, 0.0), (1.0, 100.0), (inf, 100.0)], Some(0.995)),
            // The first bucket starts at 0.
            (0.5, &[(2.0, 10.0), (inf, 10.0)], Some(1.0)),
            // In +Inf: the highest finite bound.
            (0.99, &[(1.0, 50.0), (inf, 100.0)], Some(1.0)),
            // Order of the input does not matter.
            (0.5, &[(inf, 100.0), (1.0, 100.0), (0.5, 0.0)], Some(0.75)),
        ];
        for (q, buckets, want) in cases {
            let got = histogram_quantile(*q, buckets);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{q} {buckets:?}: {g} != {w}"),
                _ => assert_eq!(got, *want, "{q} {buckets:?}"),
            }
        }
    }

    #[test]
    fn lag_is_read_per_pipeline_and_table_from_the_exposition() {
        let text = "# HELP lockstep_sink_end_to_end_lag_seconds lag\n\
# TYPE lockstep_sink_end_to_end_lag_seconds histogram\n\
lockstep_sink_end_to_end_lag_seconds_sum{pipeline=\"p\",table=\"public.a\"} 10.0\n\
lockstep_sink_end_to_end_lag_seconds_count{pipeline=\"p\",table=\"public.a\"} 100\n\
lockstep_sink_end_to_end_lag_seconds_bucket{le=\"0.5\",pipeline=\"p\",table=\"public.a\"} 0\n\
lockstep_sink_end_to_end_lag_seconds_bucket{le=\"1.0\",pipeline=\"p\",table=\"public.a\"} 100\n\
lockstep_sink_end_to_end_lag_seconds_bucket{le=\"+Inf\",pipeline=\"p\",table=\"public.a\"} 100\n\
lockstep_sink_end_to_end_lag_seconds_bucket{pipeline=\"p\",table=\"public.b\",le=\"+Inf\"} 0\n\
lockstep_sink_batch_rows_bucket{pipeline=\"p\",le=\"1.0\"} 3\n\
# EOF\n";
        let lag = lag_p99_by_table(text);
        assert_eq!(lag.len(), 2, "{lag:?}");
        let a = lag[&("p".to_string(), "public.a".to_string())].expect("a has data");
        assert!((a - 0.995).abs() < 1e-9, "{a}");
        assert_eq!(lag[&("p".to_string(), "public.b".to_string())], None);
    }

    #[test]
    fn the_last_incident_is_the_newest_watchdog_record_of_the_connector() {
        let record = |seq: u64, actor: &str, action: &str, subject: &str, details: &str| {
            lockstep_store::AuditRecord {
                seq,
                ts: format!("2026-01-01T00:00:0{seq}Z"),
                actor: actor.into(),
                action: action.into(),
                subject: subject.into(),
                details: details.into(),
                prev_hash: String::new(),
                hash: String::new(),
            }
        };
        let log = vec![
            record(
                1,
                "watchdog",
                "connector.restarted",
                "orders",
                r#"{"cause":"connection_refused"}"#,
            ),
            record(
                2,
                "watchdog",
                "connector.recovered",
                "orders",
                r#"{"cause":"connection_refused"}"#,
            ),
            record(
                3,
                "watchdog",
                "alert.raised",
                "users",
                r#"{"cause":"authentication"}"#,
            ),
            record(4, "operator", "connector.paused", "orders", "{}"),
        ];
        assert_eq!(
            last_incident(&log, "orders").as_deref(),
            Some("2026-01-01T00:00:02Z connector.recovered (connection_refused)")
        );
        assert_eq!(
            last_incident(&log, "users").as_deref(),
            Some("2026-01-01T00:00:03Z alert.raised (authentication)")
        );
        assert_eq!(last_incident(&log, "other"), None);
    }

    #[test]
    fn a_failed_task_makes_the_report_unhealthy() {
        let row = |state: &str| StatusRow {
            kind: "connector".into(),
            source: "default".into(),
            name: "c".into(),
            state: state.into(),
            tasks: "0/1".into(),
            freshness_seconds: None,
            lag_p99_seconds: None,
            last_incident: None,
        };
        let ok = StatusReport {
            rows: vec![row("RUNNING")],
            unreachable: vec![],
        };
        assert!(ok.healthy());
        let failed = StatusReport {
            rows: vec![row("RUNNING (task FAILED)")],
            unreachable: vec![],
        };
        assert!(!failed.healthy());
    }
}
