//! The alert rules (`deploy/prometheus/lockstep-rules.yaml`) and the Grafana dashboard
//! (`deploy/grafana/lockstep.json`) only use metrics that lockstep's code registers: the sink's,
//! the watchdog's and the connector drift loop's families are registered into one registry (as
//! `lockstep serve` does), encoded, and every metric name in the files must be one of the
//! encoded sample names.

use std::collections::BTreeSet;
use std::path::PathBuf;

use lockstep_sink::SinkMetrics;
use lockstep_watchdog::WatchdogMetrics;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

fn repo_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Encodes the registries and returns (sample names, the full text).
fn exposed() -> (BTreeSet<String>, String) {
    let mut registry = Registry::default();
    let sink = SinkMetrics::register(&mut registry);
    let wd = WatchdogMetrics::register(&mut registry);
    let drift = lockstep_connectors::DriftMetrics::register(&mut registry);
    // A family without series encodes nothing: give every family one series.
    use lockstep_sink::metrics as sm;
    use lockstep_watchdog::metrics as wm;
    let pipeline = sm::PipelineLabels {
        pipeline: "p".into(),
    };
    let table = sm::TableLabels {
        pipeline: "p".into(),
        table: "t".into(),
    };
    sink.records.get_or_create(&pipeline).inc();
    sink.rows_applied
        .get_or_create(&sm::RowLabels {
            pipeline: "p".into(),
            table: "t".into(),
            op: "upsert".into(),
        })
        .inc();
    sink.batch_rows.get_or_create(&pipeline).observe(1.0);
    sink.batch_seconds.get_or_create(&pipeline).observe(0.1);
    sink.lag_seconds.get_or_create(&table).observe(0.1);
    sink.changes_within_slo.get_or_create(&table).inc();
    sink.slo_lag_seconds.get_or_create(&pipeline).set(5.0);
    sink.slo_objective.get_or_create(&pipeline).set(0.99);
    sink.slo_freshness_seconds
        .get_or_create(&pipeline)
        .set(300.0);
    sink.source_timestamp.get_or_create(&pipeline).set(1.0);
    sink.blocked_tables.get_or_create(&table).set(0);
    sink.dead_letters
        .get_or_create(&sm::DeadLetterLabels {
            pipeline: "p".into(),
            topic: "t".into(),
            stage: "decode".into(),
        })
        .inc();
    sink.committed_offset
        .get_or_create(&sm::PartitionLabels {
            pipeline: "p".into(),
            topic: "t".into(),
            partition: "0".into(),
        })
        .set(1);
    sink.paused.get_or_create(&pipeline).set(0);

    let connector = wm::ConnectorLabels {
        cluster: "c".into(),
        connector: "x".into(),
    };
    let cause = wm::CauseLabels {
        cluster: "c".into(),
        connector: "x".into(),
        cause: "timeout".into(),
    };
    let group = wm::GroupPartitionLabels {
        group: "g".into(),
        topic: "t".into(),
        partition: "0".into(),
    };
    let cluster = wm::ClusterLabels {
        cluster: "c".into(),
    };
    wd.observe_connector(&lockstep_watchdog::ObservedConnector {
        key: lockstep_watchdog::ConnectorKey {
            cluster: "c".into(),
            connector: "x".into(),
        },
        state: lockstep_watchdog::policy::State::Running,
        trace: None,
        tasks: vec![lockstep_watchdog::ObservedTask {
            id: 0,
            state: lockstep_watchdog::policy::State::Running,
            trace: None,
        }],
        position: None,
    });
    wd.restarts.get_or_create(&cause).inc();
    wd.alerts
        .get_or_create(&wm::AlertLabels {
            cluster: "c".into(),
            connector: "x".into(),
            kind: "circuit_open".into(),
            cause: "timeout".into(),
        })
        .inc();
    wd.permanent_failure.get_or_create(&cause).set(0);
    wd.circuit_open.get_or_create(&connector).set(0);
    wd.stuck.get_or_create(&connector).set(0);
    wd.source_freshness_seconds
        .get_or_create(&connector)
        .set(1.0);
    wd.tuning_changes
        .get_or_create(&wm::TuningLabels {
            pipeline: "p".into(),
            param: "max.batch.size".into(),
            direction: "increase".into(),
            mode: "applied".into(),
        })
        .inc();
    wd.slot_retained_wal_bytes
        .get_or_create(&wm::SlotLabels {
            database: "d".into(),
            slot: "s".into(),
        })
        .set(0);
    wd.consumer_lag_records.get_or_create(&group).set(0);
    wd.consumer_lag_seconds.get_or_create(&group).set(0.0);
    wd.poll_errors.get_or_create(&cluster).inc();
    wd.poll_seconds.get_or_create(&cluster).observe(0.01);
    drift.drifted.set(0);
    drift.checks.inc();
    drift.check_failures.inc();
    drift.detected.inc();
    drift
        .reverts
        .get_or_create(&lockstep_connectors::metrics::RevertLabels {
            outcome: "applied".into(),
        })
        .inc();
    let mut text = String::new();
    encode(&mut text, &registry).expect("encode");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() != Some("#") || parts.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "gauge" => &[""],
            "info" => &["_info"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    (names, text)
}

/// Every `lockstep_...` metric name in a PromQL expression.
fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("lockstep_") {
        let start = i + pos;
        let preceded_by_ident = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if !preceded_by_ident {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
}

fn strings_under(value: &serde_json::Value, keys: &[&str], out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if let (true, Some(s)) = (keys.contains(&k.as_str()), v.as_str()) {
                    out.push(s.to_string());
                } else {
                    strings_under(v, keys, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_under(v, keys, out)),
        _ => {}
    }
}

#[test]
fn alert_rules_use_only_exposed_metrics_and_defined_recordings() {
    let (exposed, text) = exposed();
    let rules: serde_json::Value =
        serde_yaml_ng::from_str(&repo_file("deploy/prometheus/lockstep-rules.yaml"))
            .expect("rules file is YAML");
    let groups = rules["groups"].as_array().expect("groups");
    assert!(!groups.is_empty());
    let mut recorded = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    let mut exprs = Vec::new();
    for group in groups {
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            exprs.push(expr.to_string());
            metric_names(expr, &mut used);
            if let Some(name) = rule["record"].as_str() {
                recorded.insert(name.to_string());
            }
            if let Some(name) = rule["alert"].as_str() {
                assert!(
                    alerts.insert(name.to_string()),
                    "alert {name} defined twice"
                );
                assert!(
                    rule["labels"]["severity"].is_string(),
                    "alert {name} has a severity"
                );
                assert!(
                    rule["annotations"]["summary"].is_string(),
                    "alert {name} has a summary"
                );
            }
        }
    }
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "metrics used in the rules but not exposed: {missing:?}\nexposed: {exposed:?}"
    );
    // Recording rules used by alerts are defined.
    for expr in &exprs {
        for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if token.starts_with("lockstep:") {
                assert!(recorded.contains(token), "{token} is used but not recorded");
            }
        }
    }
    // The SLOs come from each pipeline's own targets, not from constants in the rules.
    for name in [
        "lockstep_sink_changes_within_slo_total",
        "lockstep_sink_slo_objective",
        "lockstep_sink_slo_freshness_seconds",
    ] {
        assert!(used.contains(name), "the SLO rules do not use {name}");
        assert!(text.contains(name), "the sink does not expose {name}");
    }
    // What the issue asks the rules to cover.
    for name in [
        "LockstepConnectorFailed",
        "LockstepPermanentFailure",
        "LockstepCircuitOpen",
        "LockstepLagBudgetFastBurn",
        "LockstepLagBudgetSlowBurn",
        "LockstepSourceNotFresh",
        "LockstepPipelineNotFresh",
        "LockstepSinkTableBlocked",
        "LockstepDeadLettersGrowing",
        "LockstepSlotWalRetentionHigh",
        "LockstepConnectorDrift",
    ] {
        assert!(alerts.contains(name), "missing alert {name}");
    }
}

#[test]
fn dashboard_uses_only_exposed_metrics() {
    let (exposed, _) = exposed();
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/lockstep.json")).expect("dashboard JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let mut exprs = Vec::new();
    strings_under(&dashboard, &["expr", "query"], &mut exprs);
    let mut used = BTreeSet::new();
    for expr in &exprs {
        metric_names(expr, &mut used);
    }
    assert!(
        used.len() >= 10,
        "the dashboard queries lockstep metrics: {used:?}"
    );
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "metrics used in the dashboard but not exposed: {missing:?}"
    );
    // Panel ids are unique and every panel has a position.
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: BTreeSet<_> = panels
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), panels.len());
    assert!(panels.iter().all(|p| p["gridPos"]["w"].is_number()));
}

#[test]
fn the_name_scanner_finds_names_and_ignores_recordings() {
    let mut names = BTreeSet::new();
    metric_names(
        "sum(rate(lockstep_sink_x_total[5m])) / lockstep:sink_y:ratio and foo_lockstep_z",
        &mut names,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["lockstep_sink_x_total".to_string()]
    );
}
