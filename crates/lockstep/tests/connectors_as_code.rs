//! Connectors as code against the real Connect worker, through the built binary: export a live
//! connector, change a key, plan shows exactly that key and exits 2, apply makes it so, a
//! manual change through the REST API is drift (reported by `connectors drift` and by the loop
//! of `lockstep serve`, both appending it to the store's audit log, then reverted); an invalid config is
//! stopped by validation before anything changes; the linter finds every planted problem once
//! and nothing above info in the project's examples.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lockstep_connect::{
    ConnectClient, ConnectorConfig, CreateConnectorRequest, ExpectedState, InitialState,
};
use lockstep_e2e::{unique_name, Stack};

fn lockstep(stack: &Stack, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .env("LOCKSTEP_CONNECT_URL", &stack.connect_url)
        .env_remove("LOCKSTEP_CONFIG")
        .env_remove("LOCKSTEP_CLUSTER")
        .current_dir(workspace())
        .output()
        .expect("running the lockstep binary")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-cac-{name}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A Debezium PostgreSQL source on a fresh table of the stack's source database, its password a
/// `${file:...}` reference (the stack's PostgreSQL trusts local connections, any value works).
struct Fixture {
    stack: Stack,
    client: ConnectClient,
    name: String,
    dir: PathBuf,
}

impl Fixture {
    fn new(rt: &tokio::runtime::Runtime, prefix: &str) -> Self {
        let stack = Stack::get();
        let client = stack.connect_client().expect("connect client");
        let name = unique_name(prefix);
        let dir = temp_dir(&name);
        rt.block_on(async {
            let pg = stack.pg_source().await.expect("pg");
            pg.batch_execute(&format!(
                "create table public.{name} (id bigint primary key, v text)"
            ))
            .await
            .expect("create table");
        });
        Self {
            stack,
            client,
            name,
            dir,
        }
    }

    fn config(&self, password: &str) -> ConnectorConfig {
        let mut config: ConnectorConfig = self
            .stack
            .debezium_pg_config(&self.name, &[&self.name])
            .into_iter()
            .collect();
        config.insert("database.password", password);
        config.insert("heartbeat.interval.ms", "10000");
        config
    }

    fn secret_file(&self) -> String {
        let path = self.dir.join("pg.properties");
        std::fs::write(&path, "password=postgres\n").expect("secret file");
        format!("${{file:{}:password}}", path.display())
    }

    fn cleanup(&self, rt: &tokio::runtime::Runtime) {
        rt.block_on(async {
            let _ = self.client.delete_connector(&self.name).await;
            let slot = self.name.replace('-', "_");
            let _ = self.stack.drop_pg_slot(&slot, &format!("{slot}_pub")).await;
            if let Ok(pg) = self.stack.pg_source().await {
                let _ = pg
                    .batch_execute(&format!("drop table if exists public.{}", self.name))
                    .await;
            }
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_with_cleanup(rt: &tokio::runtime::Runtime, fixture: &Fixture, body: impl FnOnce()) {
    let result = catch_unwind(AssertUnwindSafe(body));
    fixture.cleanup(rt);
    if let Err(panic) = result {
        resume_unwind(panic);
    }
}

fn set_yaml_value(file: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(file).expect("manifest");
    let prefix = format!("  {key}:");
    assert!(text.contains(&prefix), "{key} not in {text}");
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix} '{value}'")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(file, edited.join("\n") + "\n").expect("write manifest");
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", text(output)))
}

#[test]
fn export_plan_apply_and_drift_round_trip() {
    let rt = runtime();
    let fx = Fixture::new(&rt, "lsc_rt");
    run_with_cleanup(&rt, &fx, || {
        let name = fx.name.as_str();
        let config = fx.config(&fx.secret_file());
        rt.block_on(async {
            fx.client
                .create_connector(&CreateConnectorRequest {
                    name: name.to_string(),
                    config: config.clone(),
                    initial_state: None,
                })
                .await
                .expect("create");
            fx.client
                .wait_for_state(name, &ExpectedState::running(), Duration::from_secs(120))
                .await
                .expect("running");
        });

        // Export the live connector: the password stays the reference it is on the cluster.
        let manifests = fx.dir.join("manifests");
        let export = lockstep(
            &fx.stack,
            &["connectors", "export", "--to", s(&manifests), name],
        );
        assert_eq!(export.status.code(), Some(0), "{:?}", text(&export));
        let file = manifests.join(format!("{name}.yaml"));
        let exported = std::fs::read_to_string(&file).expect("exported manifest");
        assert!(
            exported.contains("${file:") && exported.contains(&format!("name: {name}")),
            "{exported}"
        );

        // Unchanged: plan exits 0 (other engineers' connectors are unmanaged, not changes).
        let same = lockstep(&fx.stack, &["connectors", "plan", s(&manifests)]);
        assert_eq!(same.status.code(), Some(0), "{:?}", text(&same));

        // Change one key: plan shows exactly that key and exits 2.
        set_yaml_value(&file, "heartbeat.interval.ms", "5000");
        let planned = lockstep(
            &fx.stack,
            &["connectors", "plan", s(&manifests), "-o", "json"],
        );
        assert_eq!(planned.status.code(), Some(2), "{:?}", text(&planned));
        let plan = json(&planned);
        let changed: Vec<&serde_json::Value> = plan["connectors"]
            .as_array()
            .expect("connectors")
            .iter()
            .filter(|c| c["action"] != "unchanged" && c["action"] != "unmanaged")
            .collect();
        assert_eq!(changed.len(), 1, "{plan:#}");
        assert_eq!(changed[0]["name"], name);
        assert_eq!(changed[0]["action"], "update");
        let keys = changed[0]["changes"].as_array().expect("changes");
        assert_eq!(keys.len(), 1, "exactly the changed key: {keys:#?}");
        assert_eq!(keys[0]["key"], "heartbeat.interval.ms");
        assert_eq!(
            (keys[0]["before"].as_str(), keys[0]["after"].as_str()),
            (Some("10000"), Some("5000"))
        );
        assert_eq!(plan["changes_pending"], true);
        let table = lockstep(&fx.stack, &["connectors", "plan", s(&manifests)]);
        let (table_out, _) = text(&table);
        assert_eq!(table.status.code(), Some(2));
        assert!(
            table_out.contains("~ heartbeat.interval.ms") && table_out.contains("1 to update"),
            "{table_out}"
        );

        // A literal secret in a manifest is planned masked.
        let secret_dir = fx.dir.join("secret-variant");
        std::fs::create_dir_all(&secret_dir).expect("dir");
        let literal = format!("literal-{}", unique_name("pw"));
        let variant = std::fs::read_to_string(&file).expect("manifest");
        std::fs::write(secret_dir.join("c.yaml"), variant).expect("write");
        set_yaml_value(&secret_dir.join("c.yaml"), "database.password", &literal);
        let masked = lockstep(&fx.stack, &["connectors", "plan", s(&secret_dir)]);
        let (out, err) = text(&masked);
        assert_eq!(masked.status.code(), Some(2), "{out}{err}");
        assert!(
            out.contains("database.password") && out.contains("****"),
            "{out}"
        );
        assert!(
            !out.contains(&literal) && !err.contains(&literal),
            "the literal secret leaked"
        );

        // Apply makes it so and waits for RUNNING.
        let applied = lockstep(&fx.stack, &["connectors", "apply", s(&manifests)]);
        let (out, err) = text(&applied);
        assert_eq!(applied.status.code(), Some(0), "{out}{err}");
        assert!(out.contains("applied") && out.contains("RUNNING"), "{out}");
        let live = rt
            .block_on(fx.client.get_connector_config(name))
            .expect("config");
        assert_eq!(live.get("heartbeat.interval.ms"), Some("5000"));
        let again = lockstep(&fx.stack, &["connectors", "plan", s(&manifests)]);
        assert_eq!(again.status.code(), Some(0), "{:?}", text(&again));
        let dry = lockstep(
            &fx.stack,
            &["connectors", "apply", "--dry-run", s(&manifests)],
        );
        assert_eq!(dry.status.code(), Some(0), "{:?}", text(&dry));

        // A manual change through the REST API is drift.
        manual_change(&rt, &fx.client, name, "7000");
        let cli_state = fx.dir.join("cli-state");
        let drift = lockstep(
            &fx.stack,
            &[
                "connectors",
                "drift",
                s(&manifests),
                "-o",
                "json",
                "--state-dir",
                s(&cli_state),
            ],
        );
        assert_eq!(drift.status.code(), Some(2), "{:?}", text(&drift));
        let report = json(&drift);
        let drifted = report["drifted"].as_array().expect("drifted");
        assert_eq!(drifted.len(), 1, "{report:#}");
        assert_eq!(drifted[0]["name"], name);
        assert_eq!(drifted[0]["changes"][0]["key"], "heartbeat.interval.ms");
        assert_eq!(drifted[0]["changes"][0]["before"], "7000");
        // ... and appended to the audit log of the state store it was given.
        let records = drift_records(&cli_state);
        assert_eq!(actions(&records), [("connectors.drift.detected", name)]);
        assert_drift_details(&records[0], "7000");

        // The service loop (drift --watch) reports the same, one JSON line per check.
        let mut watch = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args([
                "connectors",
                "drift",
                s(&manifests),
                "--watch",
                "--interval",
                "1s",
            ])
            .env("LOCKSTEP_CONNECT_URL", &fx.stack.connect_url)
            .env_remove("LOCKSTEP_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start drift --watch");
        let mut first = String::new();
        if let Some(stdout) = watch.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut first);
        }
        let _ = watch.kill();
        let _ = watch.wait();
        let check: serde_json::Value =
            serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
        assert_eq!(check["report"]["drifted"][0]["name"], name, "{check:#}");

        // `lockstep serve --connectors DIR` runs the loop, reports it over HTTP and in /metrics,
        // and appends it to the audit log once (not at every check).
        let serve_state = fx.dir.join("serve-state");
        let served = serve_drift_status(&fx.stack, &manifests, &serve_state, name, false);
        assert_eq!(served["drifted_connectors"], 1, "{served:#}");
        assert_eq!(
            served["last"]["report"]["drifted"][0]["name"], name,
            "{served:#}"
        );
        let records = drift_records(&serve_state);
        assert_eq!(actions(&records), [("connectors.drift.detected", name)]);
        assert_drift_details(&records[0], "7000");

        // drift --revert restores the declared value (audited: detected, reverted); afterwards
        // there is no drift.
        let revert = lockstep(
            &fx.stack,
            &[
                "connectors",
                "drift",
                s(&manifests),
                "--revert",
                "--state-dir",
                s(&cli_state),
            ],
        );
        assert_eq!(revert.status.code(), Some(0), "{:?}", text(&revert));
        let records = drift_records(&cli_state);
        assert_eq!(
            actions(&records),
            [
                ("connectors.drift.detected", name),
                ("connectors.drift.detected", name),
                ("connectors.drift.reverted", name)
            ]
        );
        assert_eq!(records[2].details_json()["state"], "RUNNING");
        let chain = lockstep_store::Store::open_existing(&cli_state.join(lockstep_store::DB_FILE))
            .expect("store")
            .verify_chain()
            .expect("verify");
        assert!(chain.intact, "{chain:?}");
        let live = rt
            .block_on(fx.client.get_connector_config(name))
            .expect("config");
        assert_eq!(live.get("heartbeat.interval.ms"), Some("5000"));

        // Changed by hand again: `serve --drift-revert` puts it back and audits both.
        manual_change(&rt, &fx.client, name, "7000");
        let served = serve_drift_status(&fx.stack, &manifests, &serve_state, name, true);
        assert_eq!(served["reverted_total"], 1, "{served:#}");
        let records = drift_records(&serve_state);
        assert_eq!(
            actions(&records),
            [
                ("connectors.drift.detected", name),
                ("connectors.drift.detected", name),
                ("connectors.drift.reverted", name)
            ]
        );
        assert_eq!(records[1].details_json()["revert"], true);
        let live = rt
            .block_on(fx.client.get_connector_config(name))
            .expect("config");
        assert_eq!(live.get("heartbeat.interval.ms"), Some("5000"));
        let clean = lockstep(&fx.stack, &["connectors", "drift", s(&manifests)]);
        assert_eq!(clean.status.code(), Some(0), "{:?}", text(&clean));
    });
}

/// Sets heartbeat.interval.ms through the REST API, as an operator would by hand.
fn manual_change(rt: &tokio::runtime::Runtime, client: &ConnectClient, name: &str, value: &str) {
    rt.block_on(async {
        let mut manual = client.get_connector_config(name).await.expect("config");
        manual.insert("heartbeat.interval.ms", value);
        client
            .put_connector_config(name, &manual)
            .await
            .expect("manual put");
        client
            .wait_for_state(name, &ExpectedState::running(), Duration::from_secs(120))
            .await
            .expect("running");
    });
}

/// The drift loop's records in the audit log of the state store in `state`.
fn drift_records(state: &Path) -> Vec<lockstep_store::AuditRecord> {
    let store = lockstep_store::Store::open_existing(&state.join(lockstep_store::DB_FILE))
        .unwrap_or_else(|e| panic!("no state store in {}: {e}", state.display()));
    store
        .audit_records(None, 0)
        .expect("audit records")
        .into_iter()
        .filter(|r| r.actor == "connectors-drift")
        .collect()
}

fn actions(records: &[lockstep_store::AuditRecord]) -> Vec<(&str, &str)> {
    records
        .iter()
        .map(|r| (r.action.as_str(), r.subject.as_str()))
        .collect()
}

/// A `detected` record names exactly the changed key, live and declared values.
fn assert_drift_details(record: &lockstep_store::AuditRecord, live: &str) {
    let details = record.details_json();
    let changes = details["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{details:#}");
    assert_eq!(changes[0]["setting"], "heartbeat.interval.ms");
    assert_eq!(changes[0]["live"], live);
    assert_eq!(changes[0]["declared"], "5000");
    assert_eq!(details["planned"], "update");
    assert!(details["cluster"].is_string() && details["manifests"].is_string());
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Starts `lockstep serve` with the drift loop on `manifests` (state store in `state`,
/// `--drift-revert` when `revert`) and returns the drift status once three checks have run and
/// the loop's audit record for `connector` (`detected`, or `reverted` when reverting) is in the
/// store; checks the shared `/metrics` on the way.
fn serve_drift_status(
    stack: &Stack,
    manifests: &Path,
    state: &Path,
    connector: &str,
    revert: bool,
) -> serde_json::Value {
    let wanted = if revert {
        "connectors.drift.reverted"
    } else {
        "connectors.drift.detected"
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "serve",
            "--listen",
            &addr,
            "--connectors",
            s(manifests),
            "--drift-interval",
            "1s",
        ])
        .args(revert.then_some("--drift-revert"))
        .env("LOCKSTEP_CONNECT_URL", &stack.connect_url)
        .env("LOCKSTEP_STATE_DIR", state)
        .env_remove("LOCKSTEP_CONFIG")
        .current_dir(std::env::temp_dir())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lockstep serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    let status = loop {
        if let Some((200, body)) = http_get(&addr, "/api/v1/connectors/drift") {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let recorded = state.join(lockstep_store::DB_FILE).is_file()
                && drift_records(state)
                    .iter()
                    .any(|r| r.subject == connector && r.action == wanted);
            // Several checks, so a repeated record would show.
            if value["checks_total"].as_u64().unwrap_or(0) >= 3 && recorded {
                break Some(value);
            }
            last = Some(body);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let metrics = http_get(&addr, "/metrics");
    let old_route = http_get(&addr, "/api/v1/connectors/drift/metrics");
    let _ = child.kill();
    let _ = child.wait();
    let status = status.unwrap_or_else(|| {
        panic!("serve did not report 3 drift checks and an audit record in 30 s: {last:?}")
    });
    let (code, text) = metrics.expect("metrics answer");
    assert_eq!(code, 200);
    let expected = if revert {
        "lockstep_connectors_drift_reverts_total{outcome=\"applied\"} 1"
    } else {
        "lockstep_connectors_drifted 1"
    };
    assert!(
        text.lines().any(|l| l == expected),
        "{expected} not in {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("lockstep_connectors_drift_checks_total ")),
        "{text}"
    );
    assert_eq!(old_route.map(|(code, _)| code), Some(404));
    status
}
#[test]
fn an_invalid_config_is_stopped_by_validation_before_anything_changes() {
    let rt = runtime();
    let fx = Fixture::new(&rt, "lsc_inv");
    run_with_cleanup(&rt, &fx, || {
        let good = fx.name.clone();
        let bad = format!("{good}_bad");
        let manifests = fx.dir.join("invalid");
        std::fs::create_dir_all(&manifests).expect("dir");
        let write = |file: &str, name: &str, config: &ConnectorConfig| {
            let doc = serde_json::json!({"name": name, "config": config});
            std::fs::write(manifests.join(file), doc.to_string()).expect("write");
        };
        write("a-good.json", &good, &fx.config(&fx.secret_file()));
        let mut broken = fx.config("hunter2-in-clear");
        broken.remove("topic.prefix");
        write("b-bad.json", &bad, &broken);

        let applied = lockstep(&fx.stack, &["connectors", "apply", s(&manifests)]);
        let (out, err) = text(&applied);
        assert_eq!(applied.status.code(), Some(1), "{out}{err}");
        assert!(
            out.contains(&bad)
                && out.contains("topic.prefix")
                && out.contains("A value is required"),
            "{out}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
        assert!(
            !out.contains("hunter2") && !err.contains("hunter2"),
            "a secret leaked"
        );
        let names = rt.block_on(fx.client.list_connectors()).expect("list");
        assert!(
            !names.contains(&good) && !names.contains(&bad),
            "something was created: {names:?}"
        );
    });
}

#[test]
fn export_never_writes_a_literal_secret() {
    let rt = runtime();
    let fx = Fixture::new(&rt, "lsc_exp");
    run_with_cleanup(&rt, &fx, || {
        let literal = format!("literal-{}", unique_name("pw"));
        rt.block_on(async {
            fx.client
                .create_connector(&CreateConnectorRequest {
                    name: fx.name.clone(),
                    config: fx.config(&literal),
                    // Stopped: no task, no replication slot; export only reads the config.
                    initial_state: Some(InitialState::Stopped),
                })
                .await
                .expect("create");
        });
        let out_dir = fx.dir.join("export");
        let export = lockstep(
            &fx.stack,
            &["connectors", "export", "--to", s(&out_dir), &fx.name],
        );
        let (out, err) = text(&export);
        assert_eq!(export.status.code(), Some(0), "{out}{err}");
        let written =
            std::fs::read_to_string(out_dir.join(format!("{}.yaml", fx.name))).expect("file");
        assert!(!written.contains(&literal) && !out.contains(&literal) && !err.contains(&literal));
        assert!(written.contains("${env:LOCKSTEP_SECRET_"), "{written}");
        assert!(
            err.contains("database.password holds a literal secret"),
            "{err}"
        );
        // A second export refuses to overwrite without --force.
        let again = lockstep(
            &fx.stack,
            &["connectors", "export", "--to", s(&out_dir), &fx.name],
        );
        assert_eq!(again.status.code(), Some(1));
        assert!(text(&again).1.contains("--force"));
    });
}

/// Rule ids planted in each bad config (`# expect:` comments, `<file>.expect` for JSON).
fn planted_rules(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)
        .expect("bad dir")
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).expect("read");
        let (file, rules): (String, Vec<String>) = if let Some(json) = name.strip_suffix(".expect")
        {
            let rules = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(':').map(|(_, r)| r.to_string()))
                .collect();
            (json.to_string(), rules)
        } else if name.ends_with(".yaml") {
            let rules = text
                .lines()
                .filter_map(|l| l.split_once("# expect:").map(|(_, r)| r.to_string()))
                .collect();
            (name, rules)
        } else {
            continue;
        };
        let entry = out.entry(file).or_default();
        for r in rules {
            entry.extend(
                r.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty()),
            );
        }
    }
    for rules in out.values_mut() {
        rules.sort();
    }
    out
}

#[test]
fn lint_reports_each_planted_problem_once_and_nothing_above_info_in_the_examples() {
    let stack = Stack::get();
    let bad = workspace().join("crates/lint/tests/bad-connectors");
    let output = lockstep(&stack, &["lint", "connectors", s(&bad), "--format", "json"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "errors fail the run: {:?}",
        text(&output)
    );
    let report = json(&output);
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in report["findings"].as_array().expect("findings") {
        if f.get("suppressed").is_some() {
            continue;
        }
        let file = Path::new(f["location"]["file"].as_str().expect("file"))
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_string();
        found
            .entry(file)
            .or_default()
            .push(f["rule"].as_str().expect("rule").to_string());
    }
    for rules in found.values_mut() {
        rules.sort();
    }
    assert_eq!(found, planted_rules(&bad));

    let sarif = lockstep(
        &stack,
        &["lint", "connectors", s(&bad), "--format", "sarif"],
    );
    let doc = json(&sarif);
    assert_eq!(doc["version"], "2.1.0");
    assert!(doc["runs"][0]["results"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    let text_out = lockstep(&stack, &["lint", "connectors", s(&bad)]);
    let (out, _) = text(&text_out);
    assert!(
        out.contains("error[LS601]") && out.contains("legacy-inventory.yaml:2:1"),
        "{out}"
    );
    assert!(
        !out.contains("Winter2024!") && !out.contains("s3cr3t"),
        "a secret leaked into a code frame"
    );

    for args in [
        vec![
            "lint",
            "connectors",
            "examples/connectors",
            "--format",
            "json",
        ],
        vec![
            "lint",
            "connectors",
            "examples/connectors/local",
            "--env",
            "dr",
            "--profile",
            "regulated",
            "--format",
            "json",
        ],
    ] {
        let clean = lockstep(&stack, &args);
        assert_eq!(clean.status.code(), Some(0), "{:?}", text(&clean));
        let report = json(&clean);
        let above_info: Vec<&serde_json::Value> = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["severity"] != "info" && f.get("suppressed").is_none())
            .collect();
        assert!(above_info.is_empty(), "{args:?}: {above_info:#?}");
        assert!(report["connectors"].as_u64().unwrap_or(0) >= 1);
    }

    let missing = lockstep(&stack, &["connectors", "plan", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).1.contains("no/such/dir"),
        "{:?}",
        text(&missing)
    );
}
