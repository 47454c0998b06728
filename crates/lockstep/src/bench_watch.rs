//! `lockstep bench watch`: the cost of one watchdog cycle over many connectors and endpoints.
//!
//! The endpoints are recorded-replay HTTP servers (axum, in this process): the body of
//! `GET /connectors?expand=status&expand=info` is recorded once from a real Connect cluster (or
//! read from `--recorded FILE`), and each endpoint serves that recording scaled to
//! `--connectors-per-endpoint` connectors (names made unique; every `--failed-every`-th one has
//! a FAILED task with a retriable trace, so classification runs every cycle; their offsets
//! baseline is read in the warm-up cycle). The watchdog is the real one (`watch_cmd::Watcher`, in
//! recommend-only mode: nothing is restarted) running on a thread of its own with a
//! current-thread runtime, so `getrusage(RUSAGE_THREAD)` on that thread is the watchdog's CPU,
//! without the servers'.
//!
//! Pure parts (scaling a recording, percentiles) are unit-tested; the rest is the shell.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, RawQuery, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use lockstep_connect::{
    ClientConfig, ConnectClient, ConnectorState, Expand, ExpandedConnector, TaskStatus,
};
use lockstep_watchdog::{RestartPolicy, WatchdogMetrics};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::exit;
use crate::output::{print, TableView};
use crate::watch_cmd::Watcher;

/// The trace given to the connectors marked FAILED in the replay (a retriable cause).
pub const FAILED_TRACE: &str = "org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer. This connector will be stopped.\n\tat io.debezium.pipeline.ErrorHandler.setProducerThrowable(ErrorHandler.java:67)\nCaused by: org.postgresql.util.PSQLException: Connection to 127.0.0.1:5432 refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.";

/// The offsets body the replay serves for `GET /connectors/{name}/offsets`.
const OFFSETS_BODY: &str = r#"{"offsets":[{"partition":{"server":"bench"},"offset":{"lsn":24023128,"txId":780,"ts_usec":1764900000000000}}]}"#;

#[derive(Debug, Args)]
#[command(
    after_help = "Records GET /connectors?expand=status&expand=info from the Connect cluster of
--connect-url / LOCKSTEP_CONNECT_URL (or replays --recorded FILE), starts --endpoints replay
servers in this process, each serving the recording scaled to --connectors-per-endpoint
connectors, and runs the real watchdog (recommend-only) against all of them: one cycle polls
every endpoint. Prints cycle wall time p50/p99 and the watchdog thread's CPU per cycle
(getrusage RUSAGE_THREAD; the replay servers run on other threads and are not counted).

Example:
  lockstep bench watch --endpoints 20 --connectors-per-endpoint 100 --cycles 50"
)]
pub struct BenchWatchArgs {
    /// Connect endpoints (replay servers) polled per cycle.
    #[arg(long, default_value_t = 20)]
    pub endpoints: usize,
    /// Connectors each endpoint reports.
    #[arg(long, default_value_t = 100)]
    pub connectors_per_endpoint: usize,
    /// Measured cycles (after one warm-up cycle).
    #[arg(long, default_value_t = 50)]
    pub cycles: usize,
    /// Every N-th connector of the replay has a FAILED task (retriable trace); 0: none.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub failed_every: usize,
    /// Replay this recorded body (JSON of GET /connectors?expand=status&expand=info) instead of
    /// recording one from Connect.
    #[arg(long, value_name = "FILE")]
    pub recorded: Option<PathBuf>,
    /// Also write the recording to this file (to replay it later with --recorded); secret
    /// config values are masked (`****`).
    #[arg(long, value_name = "FILE")]
    pub save_recording: Option<PathBuf>,
}

/// The recording scaled for endpoint `endpoint`: `count` connectors cloned round-robin from
/// `recorded` (sorted by name; entries without a status are skipped), renamed
/// `<name>-e<endpoint>-<i>`, the connector RUNNING with at least one task; every
/// `failed_every`-th one (1-based; 0 = none) has its tasks FAILED with [`FAILED_TRACE`], the
/// others RUNNING.
pub fn scale(
    recorded: &BTreeMap<String, ExpandedConnector>,
    endpoint: usize,
    count: usize,
    failed_every: usize,
) -> BTreeMap<String, ExpandedConnector> {
    let templates: Vec<(&String, &ExpandedConnector)> = recorded
        .iter()
        .filter(|(_, c)| c.status.is_some())
        .collect();
    let mut out = BTreeMap::new();
    if templates.is_empty() {
        return out;
    }
    for i in 0..count {
        let (orig, template) = templates[i % templates.len()];
        let name = format!("{orig}-e{endpoint:02}-{i:04}");
        let mut c = template.clone();
        let failed = failed_every > 0 && (i + 1) % failed_every == 0;
        if let Some(status) = c.status.as_mut() {
            status.name = name.clone();
            if status.tasks.is_empty() {
                status.tasks.push(TaskStatus {
                    id: 0,
                    state: ConnectorState::Running,
                    worker_id: status.connector.worker_id.clone(),
                    trace: None,
                    version: None,
                });
            }
            status.connector.state = ConnectorState::Running;
            status.connector.trace = None;
            for task in &mut status.tasks {
                task.state = if failed {
                    ConnectorState::Failed
                } else {
                    ConnectorState::Running
                };
                task.trace = failed.then(|| FAILED_TRACE.to_string());
            }
        }
        if let Some(info) = c.info.as_mut() {
            info.name = name.clone();
            for task in &mut info.tasks {
                task.connector = name.clone();
            }
        }
        out.insert(name, c);
    }
    out
}

/// Nearest-rank percentile (`q` in 0..=100) of unsorted samples; 0 for none.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What one endpoint serves.
struct Replay {
    with_info: String,
    status_only: String,
}

async fn list(AxState(replay): AxState<Arc<Replay>>, RawQuery(query): RawQuery) -> Response {
    let wants_info = query.as_deref().is_some_and(|q| q.contains("expand=info"));
    let body = if wants_info {
        replay.with_info.clone()
    } else {
        replay.status_only.clone()
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn offsets(UrlPath(_name): UrlPath<String>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OFFSETS_BODY,
    )
        .into_response()
}

/// Starts one replay server on a free port of 127.0.0.1; returns its URL.
async fn serve_replay(replay: Replay) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a replay server on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/connectors", get(list))
        .route("/connectors/{name}/offsets", get(offsets))
        .with_state(Arc::new(replay));
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "bench watch: a replay server stopped");
        }
    });
    Ok(format!("http://{addr}"))
}

#[derive(Debug, Serialize)]
pub struct BenchWatchReport {
    /// Where the endpoints' answers come from.
    pub endpoints_kind: String,
    pub endpoints: usize,
    pub connectors_per_endpoint: usize,
    pub connectors_per_cycle: usize,
    pub failed_per_cycle: usize,
    pub recorded_connectors: usize,
    pub recorded_from: String,
    pub cycles: usize,
    pub cycle_ms_p50: f64,
    pub cycle_ms_p99: f64,
    pub cycle_ms_max: f64,
    pub cpu_ms_per_cycle_p50: f64,
    pub cpu_ms_per_cycle_p99: f64,
    pub cpu_ms_per_cycle_mean: f64,
    /// Restart recommendations over all measured cycles (recommend-only: none made).
    pub restart_recommendations: usize,
}

impl TableView for BenchWatchReport {
    fn headers(&self) -> Vec<&'static str> {
        vec![
            "ENDPOINTS",
            "CONNECTORS/CYCLE",
            "CYCLES",
            "CYCLE MS P50",
            "CYCLE MS P99",
            "CPU MS/CYCLE P50",
            "CPU MS/CYCLE P99",
            "CPU MS/CYCLE MEAN",
        ]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        vec![vec![
            self.endpoints.to_string(),
            self.connectors_per_cycle.to_string(),
            self.cycles.to_string(),
            format!("{:.1}", self.cycle_ms_p50),
            format!("{:.1}", self.cycle_ms_p99),
            format!("{:.1}", self.cpu_ms_per_cycle_p50),
            format!("{:.1}", self.cpu_ms_per_cycle_p99),
            format!("{:.1}", self.cpu_ms_per_cycle_mean),
        ]]
    }

    fn footer(&self) -> Vec<String> {
        vec![
            format!("endpoints: {}", self.endpoints_kind),
            format!(
                "recording: {} connector(s) from {}; {} FAILED connector(s) per cycle (retriable trace; their offsets baseline is read in the warm-up cycle); watchdog in recommend-only mode ({} restart recommendation(s))",
                self.recorded_connectors,
                self.recorded_from,
                self.failed_per_cycle,
                self.restart_recommendations
            ),
            "CPU: getrusage(RUSAGE_THREAD) of the watchdog's thread (current-thread runtime); the replay servers run on other threads and are not counted".into(),
        ]
    }
}

pub async fn run(global: &GlobalArgs, args: BenchWatchArgs) -> anyhow::Result<u8> {
    if args.endpoints == 0 || args.connectors_per_endpoint == 0 || args.cycles == 0 {
        bail!("--endpoints, --connectors-per-endpoint and --cycles must each be at least 1");
    }
    let (recorded, recorded_from): (BTreeMap<String, ExpandedConnector>, String) =
        match &args.recorded {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the recording {}", path.display()))?;
                let map = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is not a GET /connectors?expand=status&expand=info body",
                        path.display()
                    )
                })?;
                (map, path.display().to_string())
            }
            None => {
                let client = crate::target::connect_client(global)?;
                let map = client
                    .list_connectors_expanded(Expand {
                        status: true,
                        info: true,
                    })
                    .await
                    .context("recording GET /connectors?expand=status&expand=info")?;
                let from = client
                    .base_urls()
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                (map, from)
            }
        };
    // The replay needs no secret: literal passwords in the recorded configs are masked before
    // anything is served or saved.
    let mut recorded = recorded;
    for connector in recorded.values_mut() {
        if let Some(info) = connector.info.as_mut() {
            let masked: Vec<(String, String)> = info
                .config
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        lockstep_connect::mask_value(k, v).into_owned(),
                    )
                })
                .collect();
            for (k, v) in masked {
                info.config.insert(k, v);
            }
        }
    }
    let usable = recorded.values().filter(|c| c.status.is_some()).count();
    if usable == 0 {
        bail!(
            "nothing to replay: the recording ({recorded_from}) holds no connector with a status; create a connector on that Connect cluster or pass --recorded FILE"
        );
    }
    if let Some(path) = &args.save_recording {
        std::fs::write(path, serde_json::to_vec_pretty(&recorded)?)
            .with_context(|| format!("writing the recording to {}", path.display()))?;
    }

    let mut urls = Vec::new();
    let mut failed_per_cycle = 0;
    for endpoint in 0..args.endpoints {
        let scaled = scale(
            &recorded,
            endpoint,
            args.connectors_per_endpoint,
            args.failed_every,
        );
        failed_per_cycle += scaled
            .values()
            .filter(|c| c.status.as_ref().is_some_and(|s| s.has_failure()))
            .count();
        let status_only: BTreeMap<&String, ExpandedConnector> = scaled
            .iter()
            .map(|(n, c)| {
                (
                    n,
                    ExpandedConnector {
                        status: c.status.clone(),
                        info: None,
                    },
                )
            })
            .collect();
        urls.push(
            serve_replay(Replay {
                with_info: serde_json::to_string(&scaled)?,
                status_only: serde_json::to_string(&status_only)?,
            })
            .await?,
        );
    }
    eprintln!(
        "bench watch: {} replay endpoint(s) x {} connector(s) ({} recorded from {recorded_from}); {} measured cycle(s)",
        args.endpoints, args.connectors_per_endpoint, usable, args.cycles
    );

    let expected = args.endpoints * args.connectors_per_endpoint;
    let cycles = args.cycles;
    let worker = std::thread::Builder::new()
        .name("bench-watchdog".into())
        .spawn(move || -> anyhow::Result<(Vec<f64>, Vec<f64>, usize)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the watchdog's runtime")?;
            rt.block_on(async move {
                let mut clusters = Vec::new();
                for (i, url) in urls.iter().enumerate() {
                    clusters.push((
                        format!("replay-{i:02}"),
                        ConnectClient::new(ClientConfig::new([url.clone()]))?,
                    ));
                }
                let mut watcher = Watcher::new(
                    clusters,
                    RestartPolicy::default(),
                    WatchdogMetrics::unregistered(),
                    None,
                    true,
                );
                let check = |report: &crate::watch_cmd::CycleReport| -> anyhow::Result<()> {
                    if let Some((cluster, err)) = report.unreachable.first() {
                        bail!("replay endpoint {cluster} did not answer: {err}");
                    }
                    if report.connectors.len() != expected {
                        bail!(
                            "a cycle saw {} connectors, expected {expected}",
                            report.connectors.len()
                        );
                    }
                    Ok(())
                };
                check(&watcher.cycle().await)?; // warm-up: connections, first decisions
                let mut wall = Vec::with_capacity(cycles);
                let mut cpu = Vec::with_capacity(cycles);
                let mut recommendations = 0;
                for _ in 0..cycles {
                    let cpu0 = crate::cpu_time::thread();
                    let t0 = Instant::now();
                    let report = watcher.cycle().await;
                    wall.push(t0.elapsed().as_secs_f64() * 1000.0);
                    cpu.push(crate::cpu_time::thread().saturating_sub(cpu0).as_secs_f64() * 1000.0);
                    check(&report)?;
                    recommendations += report
                        .actions
                        .iter()
                        .filter(|a| matches!(a, lockstep_watchdog::Action::Restart { .. }))
                        .count();
                }
                Ok((wall, cpu, recommendations))
            })
        })
        .context("starting the watchdog thread")?;
    let (wall, cpu, restart_recommendations) = tokio::task::spawn_blocking(move || worker.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the watchdog thread panicked"))??;

    let report = BenchWatchReport {
        endpoints_kind: "recorded-replay HTTP servers (axum, in-process), not live Connect workers"
            .into(),
        endpoints: args.endpoints,
        connectors_per_endpoint: args.connectors_per_endpoint,
        connectors_per_cycle: expected,
        failed_per_cycle,
        recorded_connectors: usable,
        recorded_from,
        cycles,
        cycle_ms_p50: percentile(&wall, 50.0),
        cycle_ms_p99: percentile(&wall, 99.0),
        cycle_ms_max: percentile(&wall, 100.0),
        cpu_ms_per_cycle_p50: percentile(&cpu, 50.0),
        cpu_ms_per_cycle_p99: percentile(&cpu, 99.0),
        cpu_ms_per_cycle_mean: cpu.iter().sum::<f64>() / cpu.len().max(1) as f64,
        restart_recommendations,
    };
    print(global.output, &report)?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording() -> BTreeMap<String, ExpandedConnector> {
        serde_json::from_str(
            r#"{
              "orders": {"status": {"name": "orders", "connector": {"state": "RUNNING", "worker_id": "w:8083"},
                          "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "w:8083"}], "type": "source"},
                         "info": {"name": "orders", "config": {"connector.class": "io.debezium.connector.postgresql.PostgresConnector"},
                                  "tasks": [{"connector": "orders", "task": 0}], "type": "source"}},
              "stopped": {"status": {"name": "stopped", "connector": {"state": "STOPPED", "worker_id": "w:8083"},
                          "tasks": [], "type": "source"}},
              "gone": {}
            }"#,
        )
        .expect("recording")
    }

    #[test]
    fn scaling_renames_fills_round_robin_and_marks_every_nth_failed() {
        let scaled = scale(&recording(), 3, 10, 4);
        assert_eq!(scaled.len(), 10);
        let failed: Vec<&String> = scaled
            .iter()
            .filter(|(_, c)| c.status.as_ref().is_some_and(|s| s.has_failure()))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(failed, ["stopped-e03-0003", "stopped-e03-0007"]);
        for (name, c) in &scaled {
            let status = c.status.as_ref().expect("status");
            assert_eq!(&status.name, name);
            assert_eq!(status.connector.state, ConnectorState::Running);
            assert_eq!(status.tasks.len(), 1, "{name}");
            if let Some(info) = &c.info {
                assert_eq!(&info.name, name);
                assert!(info.tasks.iter().all(|t| &t.connector == name));
            }
        }
        assert!(scaled.contains_key("stopped-e03-0001"));
        assert!(scaled.keys().all(|n| !n.starts_with("gone")));
        assert!(scale(&recording(), 0, 5, 0)
            .values()
            .all(|c| !c.status.as_ref().is_some_and(|s| s.has_failure())));
        assert!(scale(&BTreeMap::new(), 0, 5, 1).is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let table = [
            (50.0, 50.0),
            (99.0, 99.0),
            (100.0, 100.0),
            (0.0, 1.0),
            (1.0, 1.0),
        ];
        for (q, want) in table {
            assert_eq!(percentile(&samples, q), want, "p{q}");
        }
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
