//! Lag acceptance on the real stack: under a steady ~500 changes/s into a source table captured
//! by Debezium (the shared Connect worker) and applied by `lockstep sink run --listen`, the
//! sink's end-to-end lag histogram (`lockstep_sink_end_to_end_lag_seconds`, scraped from its
//! `/metrics` every second) gives the p99 before, during and after a 3 s sink slowdown (the sink
//! paused through its REST API for 3 s). The slowdown shows in the histogram, and the SLO alert
//! of `deploy/prometheus/lockstep-rules.yaml` fires: the scraped samples become a promtool
//! series file and `promtool test rules` (Debian's prometheus package) evaluates the real
//! recording and alerting rules over them, with the SLO set to "99.9% of changes within
//! 1.28 s" (the `le` bucket and error budget substituted together, as the rules file says to):
//! no alert before the slowdown, `LockstepLagBudgetFastBurn` firing after it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_e2e::{eventually, unique_name, Stack};

/// The histogram under test.
const LAG: &str = "lockstep_sink_end_to_end_lag_seconds";
/// The SLO the test sets: 99.9% of changes applied within this bucket's bound.
const SLO_LE: f64 = 1.28;
const SLO_BUDGET: &str = "0.001";
/// Scrape ticks (1 s apart); the sink is paused at PAUSE_AT for 3 s.
const TICKS: usize = 75;
const PAUSE_AT: usize = 40;
const PAUSE_SECONDS: usize = 3;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One scrape of the lag histogram of one table: cumulative count per `le` text (in bucket
/// order), and `_count`. `None` when the scrape failed or the series is not there yet.
#[derive(Clone, Debug, Default)]
struct Histo {
    buckets: Vec<(String, f64)>,
    count: f64,
}

/// The value of label `key` in `a="x",b="y"` (values without `",`).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split("\",").find_map(|part| {
        let (k, v) = part.split_once("=\"")?;
        (k == key).then(|| v.trim_end_matches('"'))
    })
}

/// The `table` label the sink gives `name`'s table in an exposition (`name` or `schema.name`).
fn table_label(text: &str, pipeline: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix(LAG)?.strip_prefix("_count{"))
        .filter_map(|rest| rest.split_once("} ").map(|(labels, _)| labels))
        .filter(|labels| label(labels, "pipeline") == Some(pipeline))
        .filter_map(|labels| label(labels, "table"))
        .find(|t| *t == name || t.ends_with(&format!(".{name}")))
        .map(str::to_string)
}

/// Parses the lag histogram of `table` out of an OpenMetrics text.
fn parse(text: &str, pipeline: &str, table: &str) -> Option<Histo> {
    let mut h = Histo::default();
    let mut seen_count = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(LAG) else {
            continue;
        };
        let (kind, rest) = match rest.strip_prefix("_bucket{") {
            Some(r) => ("bucket", r),
            None => match rest.strip_prefix("_count{") {
                Some(r) => ("count", r),
                None => continue,
            },
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if label(labels, "pipeline") != Some(pipeline) || label(labels, "table") != Some(table) {
            continue;
        }
        let value: f64 = value.split_whitespace().next()?.parse().ok()?;
        if kind == "count" {
            h.count = value;
            seen_count = true;
        } else {
            h.buckets.push((label(labels, "le")?.to_string(), value));
        }
    }
    (seen_count && !h.buckets.is_empty()).then_some(h)
}

fn le_value(le: &str) -> f64 {
    if le == "+Inf" {
        f64::INFINITY
    } else {
        le.parse().unwrap_or(f64::NAN)
    }
}

/// PromQL's `histogram_quantile` over the increase between two scrapes.
fn quantile(q: f64, from: &Histo, to: &Histo) -> Option<f64> {
    let delta: Vec<(f64, f64)> = to
        .buckets
        .iter()
        .map(|(le, v)| {
            let before = from
                .buckets
                .iter()
                .find(|(l, _)| l == le)
                .map(|(_, b)| *b)
                .unwrap_or(0.0);
            (le_value(le), v - before)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for (le, count) in &delta {
        if *count >= rank {
            if le.is_infinite() {
                return Some(prev_le);
            }
            let in_bucket = count - prev_count;
            let frac = if in_bucket > 0.0 {
                (rank - prev_count) / in_bucket
            } else {
                0.0
            };
            return Some(prev_le + (le - prev_le) * frac);
        }
        prev_le = *le;
        prev_count = *count;
    }
    None
}

/// Changes in the increase between two scrapes that took longer than `le`.
fn slower_than(le: &str, from: &Histo, to: &Histo) -> f64 {
    let at = |h: &Histo, key: &str| {
        h.buckets
            .iter()
            .find(|(l, _)| l == key)
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    };
    (to.count - from.count) - (at(to, le) - at(from, le))
}

/// The promtool series file: every bucket and `_count`, one value per tick (`_` = no sample).
fn series_yaml(scrapes: &[Option<Histo>], pipeline: &str, table: &str) -> String {
    let les: Vec<String> = scrapes
        .iter()
        .flatten()
        .next()
        .map(|h| h.buckets.iter().map(|(le, _)| le.clone()).collect())
        .unwrap_or_default();
    let values = |pick: &dyn Fn(&Histo) -> Option<f64>| -> String {
        scrapes
            .iter()
            .map(|s| match s.as_ref().and_then(pick) {
                Some(v) => format!("{v}"),
                None => "_".to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = String::new();
    for le in &les {
        out.push_str(&format!(
            "      - series: '{LAG}_bucket{{pipeline=\"{pipeline}\",table=\"{table}\",le=\"{le}\"}}'\n        values: '{}'\n",
            values(&|h: &Histo| h.buckets.iter().find(|(l, _)| l == le).map(|(_, v)| *v))
        ));
    }
    out.push_str(&format!(
        "      - series: '{LAG}_count{{pipeline=\"{pipeline}\",table=\"{table}\"}}'\n        values: '{}'\n",
        values(&|h: &Histo| Some(h.count))
    ));
    out
}

fn start_sink(stack: &Stack, name: &str, pipeline: &Path) -> anyhow::Result<(KillOnDrop, String)> {
    std::fs::write(
        pipeline,
        format!(
            "name: {name}\nkafka:\n  bootstrap_servers: {}\n  topics: [{name}.public.{name}]\ntarget:\n  engine: postgres\n  host: {}\n  port: {}\n  user: {}\n  database: {}\nbatch: {{max_rows: 2000, linger_ms: 50}}\n",
            stack.kafka_bootstrap, stack.pg_host, stack.pg_port, stack.pg_user, stack.pg_target_db
        ),
    )?;
    let log = std::env::temp_dir().join(format!("{name}-sink.log"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["sink", "run", "--pipeline"])
        .arg(pipeline)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("LOCKSTEP_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    Ok((KillOnDrop(child), format!("http://127.0.0.1:{port}")))
}

/// Inserts 10 rows every 20 ms (500 changes/s) until `stop`.
async fn writer(
    source: tokio_postgres::Client,
    table: String,
    next_id: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let first = next_id.fetch_add(10, Ordering::Relaxed);
        source
            .batch_execute(&format!(
                "insert into {table} select g, 'v' || g from generate_series({first}, {}) g",
                first + 9
            ))
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_3s_sink_slowdown_shows_in_the_lag_histogram_and_fires_the_slo_alert() {
    let stack = Stack::get();
    let name = unique_name("lagslo");
    let pipeline = std::env::temp_dir().join(format!("{name}.yaml"));
    let workdir = std::env::temp_dir().join(format!("{name}-promtool"));
    let connector: Arc<std::sync::Mutex<Option<lockstep_e2e::PgConnector>>> =
        Arc::new(std::sync::Mutex::new(None));

    let body = {
        let (stack, name, pipeline, workdir, connector) = (
            stack.clone(),
            name.clone(),
            pipeline.clone(),
            workdir.clone(),
            connector.clone(),
        );
        async move {
            let result: anyhow::Result<()> = async {
                let ddl = "(id bigint primary key, v text)";
                let source = stack.pg(&stack.pg_source_db).await?;
                source.batch_execute(&format!("create table {name} {ddl}")).await?;
                let target = stack.pg(&stack.pg_target_db).await?;
                target.batch_execute(&format!("create table {name} {ddl}")).await?;
                let started = stack
                    .start_pg_connector(&name, &[&name], &[("poll.interval.ms", "100")])
                    .await?;
                if let Ok(mut slot) = connector.lock() {
                    *slot = Some(started);
                }
                let (_sink, base) = start_sink(&stack, &name, &pipeline)?;

                let next_id = Arc::new(AtomicI64::new(1));
                let stop = Arc::new(AtomicBool::new(false));
                let writing = tokio::spawn(writer(
                    stack.pg(&stack.pg_source_db).await?,
                    name.clone(),
                    next_id.clone(),
                    stop.clone(),
                ));
                // Changes flow end to end before the measurement starts.
                eventually("the first changes in the target", Duration::from_secs(120), || {
                    let (target, name) = (&target, &name);
                    async move {
                        let n: i64 = target
                            .query_one(&format!("select count(*) from {name}"), &[])
                            .await?
                            .get(0);
                        Ok((n > 0).then_some(()))
                    }
                })
                .await?;
                tokio::time::sleep(Duration::from_secs(5)).await;

                let http = reqwest::Client::new();
                let first = http.get(format!("{base}/metrics")).send().await?.text().await?;
                let table = table_label(&first, &name, &name).ok_or_else(|| {
                    anyhow::anyhow!("no {LAG} series of pipeline {name} in /metrics:\n{first}")
                })?;
                let mut scrapes: Vec<Option<Histo>> = Vec::with_capacity(TICKS);
                let t0 = Instant::now();
                let mut written_at = Vec::new();
                for tick in 0..TICKS {
                    let due = t0 + Duration::from_secs(tick as u64);
                    tokio::time::sleep_until(due.into()).await;
                    let text = match http.get(format!("{base}/metrics")).send().await {
                        Ok(r) => r.text().await.unwrap_or_default(),
                        Err(_) => String::new(),
                    };
                    scrapes.push(parse(&text, &name, &table));
                    written_at.push(next_id.load(Ordering::Relaxed) - 1);
                    if tick == PAUSE_AT || tick == PAUSE_AT + PAUSE_SECONDS {
                        let verb = if tick == PAUSE_AT { "pause" } else { "resume" };
                        let r = http
                            .post(format!("{base}/api/v1/sinks/{name}/{verb}"))
                            .send()
                            .await?;
                        anyhow::ensure!(r.status().is_success(), "{verb}: {}", r.status());
                    }
                }
                stop.store(true, Ordering::Relaxed);
                writing.await??;

                let at = |i: usize| -> anyhow::Result<&Histo> {
                    scrapes[i]
                        .as_ref()
                        .ok_or_else(|| anyhow::anyhow!("scrape {i} has no lag histogram for {table}"))
                };
                let le = at(0)?
                    .buckets
                    .iter()
                    .map(|(l, _)| l.clone())
                    .find(|l| (le_value(l) - SLO_LE).abs() < 1e-9)
                    .ok_or_else(|| anyhow::anyhow!("no le={SLO_LE} bucket in {:?}", at(0)))?;
                let drained = PAUSE_AT + PAUSE_SECONDS + 7;
                let phases = [
                    ("before (steady load)", 0, PAUSE_AT),
                    ("during (3 s pause + catch-up)", PAUSE_AT, drained),
                    ("after", drained, TICKS - 1),
                ];
                let mut p99 = Vec::new();
                println!("end-to-end lag of {table}, ~500 changes/s ({} written while scraping):", written_at[TICKS - 1] - written_at[0]);
                for (phase, from, to) in phases {
                    let (a, b) = (at(from)?, at(to)?);
                    let q = |x| quantile(x, a, b).unwrap_or(f64::NAN);
                    println!(
                        "  {phase:<30} ticks {from:>2}..{to:>2}: {:>6.0} changes, p50 {:.3} s, p95 {:.3} s, p99 {:.3} s, {:.0} slower than {le} s",
                        b.count - a.count,
                        q(0.5),
                        q(0.95),
                        q(0.99),
                        slower_than(&le, a, b)
                    );
                    p99.push(q(0.99));
                }
                anyhow::ensure!(p99.iter().all(|p| p.is_finite()), "every phase applied changes: {p99:?}");
                anyhow::ensure!(
                    p99[1] > p99[0] && p99[1] > SLO_LE,
                    "the 3 s slowdown shows in the histogram: p99 before {:.3} s, during {:.3} s",
                    p99[0],
                    p99[1]
                );
                anyhow::ensure!(
                    slower_than(&le, at(PAUSE_AT)?, at(drained)?) > 0.0,
                    "changes slower than {le} s during the slowdown"
                );

                // The real rules, evaluated by promtool over the scraped samples.
                std::fs::create_dir_all(&workdir)?;
                let shipped = std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/lockstep-rules.yaml"),
                )?;
                let le_count = shipped.matches("le=\"5.12\"").count();
                let budget_count = shipped.matches("* 0.01)").count();
                anyhow::ensure!(le_count == 4 && budget_count == 4, "the rules file's SLO bucket ({le_count}) and budget ({budget_count}) are where the test expects them");
                let rules = shipped
                    .replace("le=\"5.12\"", &format!("le=\"{le}\""))
                    .replace("* 0.01)", &format!("* {SLO_BUDGET})"));
                std::fs::write(workdir.join("rules.yaml"), rules)?;
                // Evaluate where the recording group (30 s) evaluates: 30 s, before the pause
                // at 40 s; 60 s, after it.
                let test = format!(
                    "rule_files: [rules.yaml]\nevaluation_interval: 10s\ntests:\n  - interval: 1s\n    input_series:\n{}    alert_rule_test:\n      - eval_time: 30s\n        alertname: LockstepLagBudgetFastBurn\n        exp_alerts: []\n      - eval_time: 60s\n        alertname: LockstepLagBudgetFastBurn\n        exp_alerts:\n          - exp_labels: {{severity: critical, pipeline: \"{name}\", table: \"{table}\"}}\n            exp_annotations:\n              summary: \"Table {table} of pipeline {name} burns its lag SLO budget 14x too fast\"\n              description: \"More than 14.4% of changes took longer than 5 s end to end over the last hour.\"\n",
                    series_yaml(&scrapes, &name, &table)
                );
                std::fs::write(workdir.join("test.yaml"), test)?;
                let promtool = Command::new("promtool")
                    .args(["test", "rules", "test.yaml"])
                    .current_dir(&workdir)
                    .output()
                    .map_err(|e| anyhow::anyhow!("running promtool (Debian package prometheus): {e}"))?;
                let out = format!(
                    "{}{}",
                    String::from_utf8_lossy(&promtool.stdout),
                    String::from_utf8_lossy(&promtool.stderr)
                );
                println!("promtool test rules (SLO: 99.9% within {le} s; fast burn = 14.4 x budget over 1h and 5m):\n{out}");
                anyhow::ensure!(
                    promtool.status.success(),
                    "LockstepLagBudgetFastBurn: silent at 30 s (before the slowdown), firing at 60 s (after it); promtool said:\n{out}"
                );
                Ok(())
            }
            .await;
            if let Err(e) = result {
                panic!("{e:#}");
            }
        }
    };

    let cleanup = async {
        let started = connector.lock().ok().and_then(|mut c| c.take());
        if let Some(c) = started {
            c.cleanup().await;
        }
        for db in [&stack.pg_source_db, &stack.pg_target_db] {
            if let Ok(pg) = stack.pg(db).await {
                let _ = pg
                    .batch_execute(&format!("drop table if exists {name}"))
                    .await;
            }
        }
        if let Ok(target) = stack.pg(&stack.pg_target_db).await {
            let _ = target
                .execute(
                    "delete from lockstep.sink_offsets where pipeline = $1",
                    &[&name],
                )
                .await;
        }
        let _ = std::fs::remove_file(&pipeline);
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{name}-sink.log")));
        let _ = std::fs::remove_dir_all(&workdir);
    };
    lockstep_e2e::with_cleanup(body, cleanup).await;
}

#[test]
fn histogram_quantile_matches_promql_interpolation() {
    let h = |counts: [f64; 4]| Histo {
        buckets: vec![
            ("0.5".into(), counts[0]),
            ("1".into(), counts[1]),
            ("2".into(), counts[2]),
            ("+Inf".into(), counts[3]),
        ],
        count: counts[3],
    };
    let zero = h([0.0; 4]);
    // 100 changes: 50 ≤ 0.5 s, 30 in (0.5, 1], 20 in (1, 2].
    let b = h([50.0, 80.0, 100.0, 100.0]);
    let table = [(0.5, 0.5), (0.8, 1.0), (0.9, 1.5), (0.99, 1.95)];
    for (q, want) in table {
        let got = quantile(q, &zero, &b).unwrap_or(f64::NAN);
        assert!((got - want).abs() < 1e-9, "q{q}: {got} != {want}");
    }
    assert_eq!(quantile(0.99, &b, &b), None, "no change in between");
    assert_eq!(slower_than("1", &zero, &b), 20.0);
    let text = format!(
        "# TYPE {LAG} histogram\n{LAG}_bucket{{pipeline=\"p\",table=\"public.t\",le=\"0.5\"}} 1\n{LAG}_bucket{{pipeline=\"p\",table=\"public.t\",le=\"+Inf\"}} 2\n{LAG}_count{{pipeline=\"p\",table=\"public.t\"}} 2\n{LAG}_bucket{{pipeline=\"p\",table=\"public.u\",le=\"+Inf\"}} 9\n"
    );
    let parsed = parse(&text, "p", "public.t").expect("parsed");
    assert_eq!(
        parsed.buckets,
        vec![("0.5".into(), 1.0), ("+Inf".into(), 2.0)]
    );
    assert_eq!(parsed.count, 2.0);
    assert!(parse(&text, "p", "public.x").is_none());
    assert_eq!(table_label(&text, "p", "t").as_deref(), Some("public.t"));
    assert_eq!(table_label(&text, "q", "t"), None);
}
