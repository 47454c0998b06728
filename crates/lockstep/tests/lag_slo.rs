//! Lag acceptance on the real stack: under a steady ~500 changes/s into a source table captured
//! by Debezium (the shared Connect worker) and applied by `lockstep sink run --listen`, the
//! sink's end-to-end lag histogram (`lockstep_sink_end_to_end_lag_seconds`, scraped from its
//! `/metrics` every second) gives the p99 before, during and after a 3 s sink slowdown (the sink
//! paused through its REST API for 3 s). The slowdown shows in the histogram, and the SLO alert
//! of `deploy/prometheus/lockstep-rules.yaml` fires: the scraped samples become a promtool
//! series file and `promtool test rules` (Debian's prometheus package) evaluates the real
//! recording and alerting rules, unchanged, over them. The SLO comes from the pipeline file
//! (`slo: {lag_seconds: 1.28, objective: 0.999}`), which the sink exports with its count of
//! changes within it: no alert before the slowdown, `LockstepLagBudgetFastBurn` firing after it.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_e2e::{unique_name, Stack};
use support::{drop_tables_and_offsets, first_changes, start_sink, writer, ConnectorSlot};

/// The histogram under test.
const LAG: &str = "lockstep_sink_end_to_end_lag_seconds";
/// The histogram of changes within the pipeline's SLO, and the SLO the sink exports.
const WITHIN: &str = "lockstep_sink_changes_within_slo_total";
const OBJECTIVE: &str = "lockstep_sink_slo_objective";
/// The SLO the test's pipeline sets: 99.9% of changes applied within 1.28 s (a bucket bound of
/// the lag histogram, so the test can also count the slow changes from the histogram).
const SLO_LE: f64 = 1.28;
const SLO_PIPELINE: &str = "slo: {lag_seconds: 1.28, objective: 0.999, freshness_seconds: 300}\n";
/// Scrape ticks (1 s apart); the sink is paused at PAUSE_AT for 3 s.
const TICKS: usize = 75;
const PAUSE_AT: usize = 40;
const PAUSE_SECONDS: usize = 3;

/// One scrape of the lag histogram of one table: cumulative count per `le` text (in bucket
/// order), and `_count`. `None` when the scrape failed or the series is not there yet.
#[derive(Clone, Debug, Default)]
struct Histo {
    buckets: Vec<(String, f64)>,
    count: f64,
    /// The sink's count of changes within the pipeline's SLO, and its exported objective.
    within: f64,
    objective: f64,
}

/// The value of the series `name{labels}` whose labels match every `(key, value)`.
fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (labels, value) = line
            .strip_prefix(name)?
            .strip_prefix('{')?
            .split_once("} ")?;
        want.iter()
            .all(|(k, v)| label(labels, k) == Some(*v))
            .then(|| value.split_whitespace().next()?.parse().ok())?
    })
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
    h.within = sample(text, WITHIN, &[("pipeline", pipeline), ("table", table)])?;
    h.objective = sample(text, OBJECTIVE, &[("pipeline", pipeline)])?;
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
    out.push_str(&format!(
        "      - series: '{WITHIN}{{pipeline=\"{pipeline}\",table=\"{table}\"}}'\n        values: '{}'\n",
        values(&|h: &Histo| Some(h.within))
    ));
    out.push_str(&format!(
        "      - series: '{OBJECTIVE}{{pipeline=\"{pipeline}\"}}'\n        values: '{}'\n",
        values(&|h: &Histo| Some(h.objective))
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_3s_sink_slowdown_shows_in_the_lag_histogram_and_fires_the_slo_alert() {
    let stack = Stack::get();
    let name = unique_name("lagslo");
    let pipeline = std::env::temp_dir().join(format!("{name}.yaml"));
    let workdir = std::env::temp_dir().join(format!("{name}-promtool"));
    let sink_log = std::env::temp_dir().join(format!("{name}-sink.log"));
    let connector = ConnectorSlot::default();

    let body = {
        let (stack, name, pipeline, sink_log, workdir, connector) = (
            stack.clone(),
            name.clone(),
            pipeline.clone(),
            sink_log.clone(),
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
                connector.put(started);
                let (_sink, base) = start_sink(
                    &stack,
                    &name,
                    &pipeline,
                    SLO_PIPELINE,
                    std::fs::File::create(&sink_log)?.into(),
                )?;

                // 10 rows every 20 ms: 500 changes/s.
                let next_id = Arc::new(AtomicI64::new(1));
                let stop = Arc::new(AtomicBool::new(false));
                let writing = tokio::spawn(writer(
                    stack.pg(&stack.pg_source_db).await?,
                    name.clone(),
                    "g, 'v' || g",
                    Duration::from_millis(20),
                    next_id.clone(),
                    stop.clone(),
                ));
                // Changes flow end to end before the measurement starts.
                first_changes(&target, &name, Duration::from_secs(120)).await?;
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
                anyhow::ensure!(
                    (at(0)?.objective - 0.999).abs() < 1e-9,
                    "the sink exports the pipeline's objective: {}",
                    at(0)?.objective
                );
                std::fs::write(workdir.join("rules.yaml"), shipped)?;
                // Evaluate where the recording group (30 s) evaluates: 30 s, before the pause
                // at 40 s; 60 s, after it.
                let test = format!(
                    "rule_files: [rules.yaml]\nevaluation_interval: 10s\ntests:\n  - interval: 1s\n    input_series:\n{}    alert_rule_test:\n      - eval_time: 30s\n        alertname: LockstepLagBudgetFastBurn\n        exp_alerts: []\n      - eval_time: 60s\n        alertname: LockstepLagBudgetFastBurn\n        exp_alerts:\n          - exp_labels: {{severity: critical, pipeline: \"{name}\", table: \"{table}\"}}\n            exp_annotations:\n              summary: \"Table {table} of pipeline {name} burns its lag SLO budget 14x too fast\"\n              description: \"Over the last hour, 14.4 times the error budget of changes took longer than the pipeline's slo.lag_seconds end to end.\"\n",
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
        connector.cleanup().await;
        drop_tables_and_offsets(&stack, &name).await;
        let _ = std::fs::remove_file(&pipeline);
        let _ = std::fs::remove_file(&sink_log);
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
        ..Histo::default()
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
        "# TYPE {LAG} histogram\n{LAG}_bucket{{pipeline=\"p\",table=\"public.t\",le=\"0.5\"}} 1\n{LAG}_bucket{{pipeline=\"p\",table=\"public.t\",le=\"+Inf\"}} 2\n{LAG}_count{{pipeline=\"p\",table=\"public.t\"}} 2\n{LAG}_bucket{{pipeline=\"p\",table=\"public.u\",le=\"+Inf\"}} 9\n{WITHIN}{{pipeline=\"p\",table=\"public.t\"}} 1\n{OBJECTIVE}{{pipeline=\"p\"}} 0.999\n"
    );
    let parsed = parse(&text, "p", "public.t").expect("parsed");
    assert_eq!(
        parsed.buckets,
        vec![("0.5".into(), 1.0), ("+Inf".into(), 2.0)]
    );
    assert_eq!(parsed.count, 2.0);
    assert_eq!((parsed.within, parsed.objective), (1.0, 0.999));
    assert!(parse(&text, "p", "public.x").is_none());
    assert_eq!(table_label(&text, "p", "t").as_deref(), Some("public.t"));
    assert_eq!(table_label(&text, "q", "t"), None);
}
