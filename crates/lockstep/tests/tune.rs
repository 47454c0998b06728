//! The auto-tuner's adapter against the real stack, through the built `lockstep` binary: a
//! Debezium PostgreSQL connector of the test's own on the shared Connect worker.
//!
//! Real lag: a writer inserts 100 changes/s, `lockstep sink run --listen` applies them, and the
//! sink is paused for 5 s through its API while `lockstep tune --metrics ... --recommend-only`
//! observes its window (two scrapes of /metrics): the backlog applied after the resume is the
//! window's p99, over the SLO, and the tuner recommends a step up; nothing changes on Connect.
//!
//! Apply, audit and revert are driven with `--observed-p99` / `--observed-utilisation` (the
//! documented what-if override), so each step's input is exact:
//! * `--recommend-only` with a p99 of 30 s against a 5 s SLO prints the step up and leaves the
//!   connector's configuration untouched;
//! * without it, Connect shows the new `max.batch.size` (within the limits, with
//!   `max.queue.size` above it), every other key is unchanged (the database password too, and
//!   it is never printed), and a `tuning.changed` audit record exists;
//! * a second run right away changes nothing: the cool-down is read back from the audit log,
//!   so it survives the process;
//! * `lockstep tune revert --last` restores the old values and records `tuning.reverted`; a
//!   second revert finds nothing left.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_e2e::{eventually, unique_name, with_cleanup, Stack};
use support::{drop_tables_and_offsets, first_changes, start_sink, writer, ConnectorSlot};

fn lockstep(stack: &Stack, state_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .env("LOCKSTEP_CONNECT_URL", &stack.connect_url)
        .env("LOCKSTEP_STATE_DIR", state_dir)
        .env_remove("LOCKSTEP_CONFIG")
        .env_remove("LOCKSTEP_CLUSTER")
        .output()
        .expect("run the lockstep binary")
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(output)))
}

/// The connector's configuration on Connect.
async fn config(stack: &Stack, name: &str) -> BTreeMap<String, String> {
    let client = stack.connect_client().expect("connect client");
    let config = client.get_connector_config(name).await.expect("config");
    config.as_map().clone()
}

/// Waits until Connect shows `max.batch.size` = `batch`; the configuration then.
async fn config_with_batch(
    stack: &Stack,
    name: &str,
    batch: &str,
    what: &str,
) -> BTreeMap<String, String> {
    eventually(what, Duration::from_secs(30), || async move {
        let c = config(stack, name).await;
        Ok((c.get("max.batch.size").map(String::as_str) == Some(batch)).then_some(c))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn assert_secret_not_printed(out: &Output, secret: &str) {
    assert!(
        !text(out).contains(secret),
        "secret printed:\n{}",
        text(out)
    );
}

/// The report recommends the step up of `max.batch.size` from 1024 to 1536, and Connect's
/// configuration is still `before`.
async fn assert_step_up_recommended(
    stack: &Stack,
    name: &str,
    report: &serde_json::Value,
    before: &BTreeMap<String, String>,
) {
    let batch = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["param"] == "max.batch.size")
        .unwrap_or_else(|| panic!("a step up of max.batch.size recommended: {report}"));
    assert_eq!(
        (&batch["from"], &batch["to"], &batch["mode"]),
        (&1024.into(), &1536.into(), &"recommended".into()),
        "{report}"
    );
    assert_eq!(
        &config(stack, name).await,
        before,
        "recommend-only changed nothing"
    );
}

/// The tuner's audit records about `subject`: (seq, action, details); the chain verifies.
fn audit(state_dir: &Path, subject: &str) -> Vec<(u64, String, serde_json::Value)> {
    let store = lockstep_store::Store::open_existing(&state_dir.join(lockstep_store::DB_FILE))
        .expect("the state store exists");
    assert!(
        store.verify_chain().expect("verify").intact,
        "audit chain intact"
    );
    store
        .audit_records(None, 0)
        .expect("records")
        .into_iter()
        .filter(|r| r.actor == "tuner" && r.subject == subject)
        .map(|r| (r.seq, r.action.clone(), r.details_json()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_recommends_applies_audits_and_reverts_on_a_real_connector() {
    let started = Instant::now();
    let stack = Stack::get();
    let name = unique_name("tune");
    let state = tempfile::tempdir().expect("temp dir");
    let state_dir = state.path().to_path_buf();
    // Trust authentication on the stack: the password is never checked, only carried around.
    let password = format!("pw-{name}-secret");
    let connector = ConnectorSlot::default();

    let body = {
        let (stack, name, state_dir, password, connector) = (
            stack.clone(),
            name.clone(),
            state_dir.clone(),
            password.clone(),
            connector.clone(),
        );
        async move {
            let source = stack.pg(&stack.pg_source_db).await.expect("source db");
            source
                .batch_execute(&format!("create table {name} (id bigint primary key)"))
                .await
                .expect("create table");
            let pg_connector = stack
                .start_pg_connector(
                    &name,
                    &[&name],
                    &[
                        ("max.batch.size", "1024"),
                        ("max.queue.size", "4096"),
                        ("poll.interval.ms", "400"),
                        ("database.password", &password),
                    ],
                )
                .await
                .expect("connector runs");
            connector.put(pg_connector);
            println!("connector running after {:?}", started.elapsed());
            let before = config(&stack, &name).await;

            let tune = |extra: &[&str]| {
                let mut args = vec![
                    "tune",
                    "--connector",
                    &name,
                    "--slo",
                    "5s",
                    "--observed-p99",
                    "30s",
                    "--observed-utilisation",
                    "0.5",
                    "--once",
                    "-o",
                    "json",
                ];
                args.extend_from_slice(extra);
                lockstep(&stack, &state_dir, &args)
            };

            // 1. Recommend only: the step up is printed, nothing changes.
            let out = tune(&["--recommend-only"]);
            assert_secret_not_printed(&out, &password);
            assert_step_up_recommended(&stack, &name, &json(&out), &before).await;
            let records = audit(&state_dir, &name);
            assert!(
                records
                    .iter()
                    .all(|(_, action, _)| action == "tuning.recommended"),
                "{records:?}"
            );

            // 2. Apply: Connect shows the new values, everything else is untouched.
            let out = tune(&[]);
            assert_secret_not_printed(&out, &password);
            let report = json(&out);
            let applied: Vec<(String, u64)> = report["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .filter(|c| c["mode"] == "applied")
                .map(|c| {
                    (
                        c["param"].as_str().unwrap_or_default().to_string(),
                        c["to"].as_u64().unwrap_or_default(),
                    )
                })
                .collect();
            assert!(
                applied.contains(&("max.batch.size".to_string(), 1536)),
                "{report}"
            );
            let seq = report["audit_seq"].as_u64().expect("audited");
            let after =
                config_with_batch(&stack, &name, "1536", "Connect shows the tuned config").await;
            let value = |c: &BTreeMap<String, String>, k: &str| -> u64 {
                c.get(k)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{k} in {c:?}"))
            };
            let batch = value(&after, "max.batch.size");
            assert!(
                (256..=16_384).contains(&batch),
                "within the default limits: {batch}"
            );
            assert!(value(&after, "max.queue.size") > batch);
            assert_eq!(value(&after, "max.queue.size"), 6144);
            assert_eq!(value(&after, "poll.interval.ms"), 266);
            for (k, v) in &before {
                if !["max.batch.size", "max.queue.size", "poll.interval.ms"].contains(&k.as_str()) {
                    assert_eq!(after.get(k), Some(v), "{k} untouched");
                }
            }
            assert_eq!(after.get("database.password"), Some(&password));
            let records = audit(&state_dir, &name);
            let changed = records
                .iter()
                .find(|(s, action, _)| *s == seq && action == "tuning.changed")
                .unwrap_or_else(|| panic!("audit record {seq}: {records:?}"));
            assert_eq!(
                changed.2["changes"][0]["param"], "max.batch.size",
                "{records:?}"
            );
            assert_eq!(changed.2["changes"][0]["from"], 1024, "{records:?}");
            assert!(!changed.2.to_string().contains(&password));

            // 3. Right away again: the cool-down, read back from the audit log, holds it.
            let report = json(&tune(&[]));
            assert_eq!(report["changes"], serde_json::json!([]), "{report}");
            assert!(
                report["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("cooling down"),
                "{report}"
            );

            // 4. Revert restores the old values and is audited.
            let out = lockstep(
                &stack,
                &state_dir,
                &[
                    "tune",
                    "revert",
                    "--last",
                    "--connector",
                    &name,
                    "-o",
                    "json",
                ],
            );
            assert_secret_not_printed(&out, &password);
            let reverted = json(&out);
            assert_eq!(reverted["reverts"], seq, "{reverted}");
            config_with_batch(&stack, &name, "1024", "Connect shows the old config").await;
            assert_eq!(
                config(&stack, &name).await,
                before,
                "the revert restored every key"
            );
            let records = audit(&state_dir, &name);
            assert!(
                records
                    .iter()
                    .any(|(_, action, d)| action == "tuning.reverted" && d["reverts"] == seq),
                "{records:?}"
            );
            let again = lockstep(
                &stack,
                &state_dir,
                &["tune", "revert", "--last", "--connector", &name],
            );
            assert!(
                !again.status.success(),
                "nothing left to revert: {}",
                text(&again)
            );
            assert!(
                String::from_utf8_lossy(&again.stderr).contains("left to revert"),
                "{}",
                text(&again)
            );
            println!("tune test body took {:?}", started.elapsed());
        }
    };

    let cleanup = {
        let (stack, name) = (stack.clone(), name.clone());
        async move {
            connector.cleanup().await;
            if let Ok(pg) = stack.pg(&stack.pg_source_db).await {
                let _ = pg
                    .batch_execute(&format!("drop table if exists {name}"))
                    .await;
            }
        }
    };
    with_cleanup(body, cleanup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_observes_real_sink_lag_and_recommends_a_step_up() {
    let started = Instant::now();
    let stack = Stack::get();
    let name = unique_name("tunelag");
    let state = tempfile::tempdir().expect("temp dir");
    let state_dir = state.path().to_path_buf();
    let pipeline = state.path().join(format!("{name}.yaml"));
    let connector = ConnectorSlot::default();

    let body = {
        let (stack, name, state_dir, pipeline, connector) = (
            stack.clone(),
            name.clone(),
            state_dir.clone(),
            pipeline.clone(),
            connector.clone(),
        );
        async move {
            let ddl = format!("create table {name} (id bigint primary key)");
            let source = stack.pg(&stack.pg_source_db).await.expect("source db");
            source.batch_execute(&ddl).await.expect("source table");
            let target = stack.pg(&stack.pg_target_db).await.expect("target db");
            target.batch_execute(&ddl).await.expect("target table");
            let pg_connector = stack
                .start_pg_connector(
                    &name,
                    &[&name],
                    &[("poll.interval.ms", "100"), ("max.batch.size", "1024")],
                )
                .await
                .expect("connector runs");
            connector.put(pg_connector);
            let before = config(&stack, &name).await;
            let (_sink, base) =
                start_sink(&stack, &name, &pipeline, "", Stdio::null()).expect("sink starts");
            // 10 rows every 100 ms: 100 changes/s.
            let next_id = Arc::new(AtomicI64::new(1));
            let stop = Arc::new(AtomicBool::new(false));
            let writing = tokio::spawn(writer(
                stack.pg(&stack.pg_source_db).await.expect("writer db"),
                name.clone(),
                "g",
                Duration::from_millis(100),
                next_id,
                stop.clone(),
            ));
            first_changes(&target, &name, Duration::from_secs(60))
                .await
                .expect("changes flow end to end");
            println!("changes flowing after {:?}", started.elapsed());

            let http = reqwest::Client::new();
            let control = |verb: &'static str| {
                let (http, base, name) = (http.clone(), base.clone(), name.clone());
                async move {
                    let r = http
                        .post(format!("{base}/api/v1/sinks/{name}/{verb}"))
                        .send()
                        .await
                        .expect("sink API answers");
                    assert!(r.status().is_success(), "{verb}: {}", r.status());
                }
            };
            // Paused for 5 s in all: 2 s before the tuner's first scrape, 3 s into its window.
            control("pause").await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let tune = {
                let (stack, state_dir, name, base) =
                    (stack.clone(), state_dir.clone(), name.clone(), base.clone());
                tokio::task::spawn_blocking(move || {
                    lockstep(
                        &stack,
                        &state_dir,
                        &[
                            "tune",
                            "--connector",
                            &name,
                            "--slo",
                            "2s",
                            "--metrics",
                            &format!("{base}/metrics"),
                            "--pipeline",
                            &name,
                            "--window",
                            "10s",
                            "--once",
                            "--recommend-only",
                            "-o",
                            "json",
                        ],
                    )
                })
            };
            tokio::time::sleep(Duration::from_secs(3)).await;
            control("resume").await;
            let out = tune.await.expect("tune ran");
            stop.store(true, Ordering::Relaxed);
            writing.await.expect("writer task").expect("writer");
            let report = json(&out);
            println!(
                "observed p99 {} s, utilisation {}; {}",
                report["observed_p99_seconds"], report["utilisation"], report["reason"]
            );
            assert_eq!(report["observed_from"], "metrics", "{report}");
            let p99 = report["observed_p99_seconds"].as_f64().expect("a p99");
            assert!(
                p99 > 1.6,
                "the paused backlog is the window's p99: {report}"
            );
            assert!(report["utilisation"].as_f64().is_some(), "{report}");
            assert_step_up_recommended(&stack, &name, &report, &before).await;
            let records = audit(&state_dir, &name);
            assert_eq!(
                records
                    .iter()
                    .map(|(_, a, _)| a.as_str())
                    .collect::<Vec<_>>(),
                ["tuning.recommended"],
                "{records:?}"
            );
            println!("real-lag tune test body took {:?}", started.elapsed());
        }
    };

    let cleanup = {
        let (stack, name) = (stack.clone(), name.clone());
        async move {
            connector.cleanup().await;
            drop_tables_and_offsets(&stack, &name).await;
        }
    };
    with_cleanup(body, cleanup).await;
}
