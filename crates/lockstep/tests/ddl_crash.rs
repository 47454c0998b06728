//! Issue 4's crash acceptance, real stack: `lockstep serve` is killed (SIGKILL) in the middle
//! of each step kind of a RENAME COLUMN plan and restarted; the operation completes or
//! compensates, and at the end `lockstep verify` finds no difference. The same for a TRUNCATE
//! the connector skips, whose plan runs in a quiesce session (a source transaction holding the
//! table's lock across steps, which dies with the process): recovery must tell a commit that
//! landed from one that did not.
//!
//! One table, rows flowing all along (a writer's inserts, updates that increment `counter`
//! and write the renamed column, deletes) through a Debezium connector and `lockstep sink run
//! --listen` (block policy). The step kinds come from `lockstep ddl plan` of the rename. For
//! each kind, and each side of its action (`after`: the action ran, its completion is not
//! persisted; `before`: persisted Running, the action has not run), the service runs the
//! rename with the executor's test failpoint (`LOCKSTEP_FAILPOINT=<kind>:<when>`), is killed
//! when it prints `failpoint reached`, and is started again without it; the restarted service
//! resumes the operation at start, and the test waits until it ends succeeded or compensated.
//! The column is renamed back and forth (`amount` → `total` → `amount` ...), so one table
//! serves every kill. At the end: the writer stops, the target converges, `lockstep verify` is
//! clean (`counter` included: no change lost or applied twice), the connector never FAILED,
//! and the target's columns are the source's.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_e2e::{unique_name, with_cleanup, Stack};
use support::{
    converged, drop_tables_and_offsets, first_changes, free_port, lockstep_verify, output_text,
    start_sink_on, ConnectorSlot, KillOnDrop,
};

/// `counter` is incremented by every update; `amount` is the column renamed back and forth.
const DDL: &str = "(id bigint primary key, counter bigint not null default 0, qty integer not null, amount numeric(12,2))";
const ROWS: i64 = 300;
const COLUMNS: [&str; 2] = ["amount", "total"];
/// Longest wait for one operation to end after the restart.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(240);

/// The `source:` section (and block policy) appended to the sink's pipeline file.
fn ddl_section(stack: &Stack, name: &str, sink_port: u16) -> String {
    format!(
        "schema_drift: block\n{}",
        support::source_section(
            stack,
            name,
            &format!("  publication: {name}_pub\n  sink_api: http://127.0.0.1:{sink_port}\n"),
        )
    )
}

/// The DDL a test kills the service in.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// RENAME COLUMN back and forth: the boundary plan.
    RenameColumn,
    /// TRUNCATE, skipped by the connector: the quiesce plan.
    Truncate,
}

/// What a run of the DDL should leave, by outcome.
enum Expect {
    /// The column is `to` when the rename succeeded, `from` when it was compensated.
    Column { from: String, to: String },
    /// No row up to this id is left when the TRUNCATE succeeded (the writer's ids grow), some
    /// are when it was compensated.
    RowsUpTo(i64),
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::RenameColumn => "RENAME COLUMN",
            Scenario::Truncate => "TRUNCATE",
        }
    }

    /// Step kinds its plan must have (the kills are worth nothing without them).
    fn required_kinds(self) -> &'static [&'static str] {
        match self {
            Scenario::RenameColumn => &[
                "pause_connector",
                "source_ddl",
                "hold_sink_table",
                "resume_connector",
                "wait_sink_applied",
                "target_ddl",
                "release_sink_table",
            ],
            Scenario::Truncate => &[
                "quiesce_source_table",
                "wait_sink_applied",
                "hold_sink_table",
                "source_ddl",
                "release_source_table",
                "target_ddl",
                "release_sink_table",
            ],
        }
    }

    /// The next statement to run, and what it should leave.
    async fn next(self, source: &tokio_postgres::Client, table: &str) -> (String, Expect) {
        match self {
            Scenario::RenameColumn => {
                let from = current_column(source, table).await;
                let to = COLUMNS.iter().find(|c| **c != from).unwrap().to_string();
                (
                    format!("ALTER TABLE {table} RENAME COLUMN {from} TO {to}"),
                    Expect::Column { from, to },
                )
            }
            Scenario::Truncate => {
                let max: i64 = source
                    .query_one(&format!("select coalesce(max(id), 0) from {table}"), &[])
                    .await
                    .expect("max id")
                    .get(0);
                (format!("TRUNCATE {table}"), Expect::RowsUpTo(max))
            }
        }
    }

    /// Asserts the source shows what the outcome says.
    async fn check(
        self,
        source: &tokio_postgres::Client,
        table: &str,
        failpoint: &str,
        outcome: &str,
        expect: &Expect,
    ) {
        let succeeded = outcome == "succeeded";
        match expect {
            Expect::Column { from, to } => {
                let now = current_column(source, table).await;
                assert_eq!(
                    &now,
                    if succeeded { to } else { from },
                    "{failpoint}: the source column after a {outcome} rename"
                );
            }
            Expect::RowsUpTo(max) => {
                let left: i64 = source
                    .query_one(
                        &format!("select count(*) from {table} where id <= $1"),
                        &[max],
                    )
                    .await
                    .expect("rows left")
                    .get(0);
                assert_eq!(
                    left == 0,
                    succeeded,
                    "{failpoint}: {left} rows up to id {max} left after a {outcome} TRUNCATE"
                );
            }
        }
    }
}

/// The distinct step kinds of the statement's plan, in plan order (`lockstep ddl plan`).
fn plan_step_kinds(dir: &Path, pipeline: &Path, sql: &str) -> Vec<String> {
    let out = support::lockstep_command(dir)
        .args(["ddl", "plan", "--pipeline"])
        .arg(pipeline)
        .args(["--sql", sql, "-o", "json"])
        .output()
        .expect("running lockstep ddl plan");
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan output: {e}: {}", output_text(&out)));
    let mut kinds: Vec<String> = Vec::new();
    for step in plans[0]["steps"].as_array().expect("plan steps") {
        let kind = step["kind"].as_str().expect("step kind").to_string();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    println!(
        "{sql}: {}",
        plans[0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(" → ")
    );
    kinds
}

/// `lockstep serve` offering the pipeline to the DDL API on `port`, its output to `log`,
/// with the failpoint when given; returns once it answers.
async fn start_serve(
    dir: &Path,
    stack: &Stack,
    pipeline: &Path,
    port: u16,
    log: &Path,
    failpoint: Option<&str>,
) -> KillOnDrop {
    let file = std::fs::File::create(log).expect("serve log");
    let mut cmd = support::lockstep_command(dir);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--ddl-pipeline")
        .arg(pipeline)
        .args(["--connect-url", &stack.connect_url])
        .env("LOCKSTEP_LOG", "info")
        .stdout(file.try_clone().expect("log"))
        .stderr(file);
    if let Some(f) = failpoint {
        cmd.env("LOCKSTEP_FAILPOINT", f);
    }
    let mut child = KillOnDrop(cmd.spawn().expect("lockstep serve"));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!("http://127.0.0.1:{port}/api/v1/ddl/operations");
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return child;
        }
        assert!(
            child.0.try_wait().expect("serve status").is_none(),
            "lockstep serve exited: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "lockstep serve did not answer within 60 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The column of the pair the source table has now.
async fn current_column(source: &tokio_postgres::Client, table: &str) -> String {
    let rows = source
        .query(
            "select column_name::text from information_schema.columns
             where table_schema = 'public' and table_name = $1 and column_name = any($2)",
            &[&table, &COLUMNS.to_vec()],
        )
        .await
        .expect("source columns");
    assert_eq!(rows.len(), 1, "exactly one of {COLUMNS:?} on the source");
    rows[0].get(0)
}

/// The table's columns (name, type, nullability, default), in order.
async fn columns_of(db: &tokio_postgres::Client, table: &str) -> Vec<String> {
    db.query(
        "select column_name::text || ' ' || data_type::text || ' null=' || is_nullable
                || ' default=' || coalesce(column_default, '-')
         from information_schema.columns where table_schema = 'public' and table_name = $1
         order by ordinal_position",
        &[&table],
    )
    .await
    .expect("columns")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The writer: one connection, a transaction at a time (insert; update incrementing `counter`
/// and writing the renamed column; delete), until `stop`. A statement that meets the rename
/// (the column it names is gone) switches to the other name and is retried, as is one that
/// meets the DDL's lock. Counts transactions in `txs`; returns the retries.
async fn write_rows(
    stack: Stack,
    table: String,
    stop: Arc<AtomicBool>,
    txs: Arc<AtomicU64>,
) -> u64 {
    let w = stack.pg_source().await.expect("writer connection");
    let mut col = 0usize;
    let (mut i, mut retries) = (ROWS + 1000, 0u64);
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (q, u, del) = (i % 7, i % ROWS + 1, i - 5);
        loop {
            let c = COLUMNS[col];
            let sql = format!(
                "begin;
                 insert into {table} (id, qty, {c}) values ({i}, {q}, {i}.25);
                 update {table} set counter = counter + 1, {c} = {c} + 1 where id = {u};
                 update {table} set counter = counter + 1 where id = {i} - 2;
                 delete from {table} where id = {del} and id % 3 = 0;
                 commit;"
            );
            match w.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e) => {
                    let _ = w.batch_execute("rollback").await;
                    retries += 1;
                    let gone = e
                        .as_db_error()
                        .is_some_and(|d| d.message().contains("does not exist"));
                    if gone {
                        col = 1 - col;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        txs.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    retries
}

/// Polls the connector's status every 500 ms until `stop`; the first FAILED seen, if any.
fn watch_connector(
    stack: &Stack,
    name: &str,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Option<String>>>, tokio::task::JoinHandle<()>) {
    let failed = Arc::new(Mutex::new(None));
    let (seen, stack, name) = (failed.clone(), stack.clone(), name.to_string());
    let handle = tokio::spawn(async move {
        let connect = stack.connect_client().expect("connect client");
        while !stop.load(Ordering::Relaxed) {
            if let Ok(st) = connect.connector_status(&name).await {
                let bad = st.connector.state == lockstep_connect::ConnectorState::Failed
                    || st.failed_tasks().count() > 0;
                if bad {
                    let mut f = seen.lock().unwrap();
                    if f.is_none() {
                        *f = Some(format!("{st:?}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    (failed, handle)
}

/// Waits until the file holds `needle` and returns its line; panics (with the file) when the
/// child ends first or the timeout passes.
async fn wait_for_line(
    path: &Path,
    needle: &str,
    timeout: Duration,
    child: &mut KillOnDrop,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            child.0.try_wait().expect("child status").is_none(),
            "the process ended before '{needle}':\n{text}"
        );
        assert!(
            Instant::now() < deadline,
            "no '{needle}' within {timeout:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A log line without its terminal colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One kill: what happened.
struct Kill {
    failpoint: String,
    change: String,
    outcome: String,
    /// From the apply request to the failpoint, and from the restart to the operation's end.
    to_failpoint: Duration,
    to_end: Duration,
    /// The tables the wait found held at the boundary (JSON).
    held: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_killed_at_each_step_kind_of_a_rename_recovers_and_verifies() {
    killed_at_each_step_kind(Scenario::RenameColumn, "ddlcrash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_killed_at_each_step_kind_of_a_quiesced_truncate_recovers_and_verifies() {
    killed_at_each_step_kind(Scenario::Truncate, "ddlcrasht").await;
}

async fn killed_at_each_step_kind(scenario: Scenario, prefix: &str) {
    let stack = Stack::get();
    let name = unique_name(prefix);
    let slot = ConnectorSlot::default();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_path_buf();
    let (body_stack, body_name, body_slot, body_dir) =
        (stack.clone(), name.clone(), slot.clone(), d.clone());
    let body = async move {
        let (stack, name, d) = (body_stack, body_name, body_dir);
        let table = name.clone();
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        source
            .batch_execute(&format!(
                "create table {table} {DDL};
                 insert into {table} (id, qty, amount)
                   select g, g % 10, g * 1.5 from generate_series(1, {ROWS}) g;"
            ))
            .await
            .expect("source table");
        target
            .batch_execute(&format!("create table {table} {DDL}"))
            .await
            .expect("target table");
        body_slot.put(
            stack
                .start_pg_connector(&name, &[&table], &[("poll.interval.ms", "100")])
                .await
                .expect("connector"),
        );
        let pipeline = d.join("p.yaml");
        let sink_port = free_port().expect("port");
        let sink_log = d.join("sink.log");
        let (mut sink, _sink_url) = start_sink_on(
            &stack,
            &name,
            &pipeline,
            &ddl_section(&stack, &name, sink_port),
            Stdio::from(std::fs::File::create(&sink_log).expect("sink log")),
            sink_port,
        )
        .expect("lockstep sink run");
        first_changes(&target, &table, Duration::from_secs(120))
            .await
            .expect("the snapshot reaches the target");

        let stop_watch = Arc::new(AtomicBool::new(false));
        let (failed, watcher) = watch_connector(&stack, &name, stop_watch.clone());
        let stop_writer = Arc::new(AtomicBool::new(false));
        let txs = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(write_rows(
            stack.clone(),
            table.clone(),
            stop_writer.clone(),
            txs.clone(),
        ));

        let (example, _) = scenario.next(&source, &table).await;
        let kinds = plan_step_kinds(&d, &pipeline, &example);
        for k in scenario.required_kinds() {
            assert!(
                kinds.iter().any(|have| have == k),
                "the {} plan has no {k}: {kinds:?}",
                scenario.label()
            );
        }
        // Every kind, after then before; LOCKSTEP_CRASH_FAILPOINTS=kind:when,... narrows it
        // (for debugging one kill).
        let failpoints: Vec<String> = match std::env::var("LOCKSTEP_CRASH_FAILPOINTS") {
            Ok(list) => list.split(',').map(|f| f.trim().to_string()).collect(),
            Err(_) => ["after", "before"]
                .iter()
                .flat_map(|when| kinds.iter().map(move |k| format!("{k}:{when}")))
                .collect(),
        };

        let http = reqwest::Client::new();
        let mut kills: Vec<Kill> = Vec::new();
        for (n, failpoint) in failpoints.iter().enumerate() {
            let (change, expect) = scenario.next(&source, &table).await;
            let port = free_port().expect("port");
            let log = d.join(format!("serve-{n}.log"));
            let mut serve = start_serve(&d, &stack, &pipeline, port, &log, Some(failpoint)).await;
            let started = Instant::now();
            let resp = http
                .post(format!("http://127.0.0.1:{port}/api/v1/ddl/operations"))
                .json(&serde_json::json!({"pipeline": name, "sql": change, "actor": "crash-test"}))
                .send()
                .await
                .expect("apply request");
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            assert_eq!(
                status.as_u16(),
                202,
                "{failpoint}: apply answered {status}: {body:#}"
            );
            let id = body["operations"][0]["id"].as_i64().expect("operation id");
            let line = wait_for_line(
                &log,
                "failpoint reached",
                Duration::from_secs(180),
                &mut serve,
            )
            .await;
            let to_failpoint = started.elapsed();
            serve.0.kill().expect("SIGKILL");
            let killed = serve.0.wait().expect("wait");
            drop(serve);
            println!("{failpoint}: {line}; SIGKILL: {killed:?}");

            let restart_log = d.join(format!("serve-{n}-restart.log"));
            let restarted = Instant::now();
            let port = free_port().expect("port");
            let _serve = start_serve(&d, &stack, &pipeline, port, &restart_log, None).await;
            let deadline = Instant::now() + OPERATION_TIMEOUT;
            let op = loop {
                let op: serde_json::Value = http
                    .get(format!(
                        "http://127.0.0.1:{port}/api/v1/ddl/operations/{id}"
                    ))
                    .send()
                    .await
                    .expect("operation request")
                    .json()
                    .await
                    .expect("operation view");
                let state = op["state"].as_str().unwrap_or_default().to_string();
                if ["succeeded", "compensated", "failed", "cancelled"].contains(&state.as_str()) {
                    break op;
                }
                // The resume gave up after the point of no return: it stays running for an
                // operator; nothing more will happen here.
                let log_text = std::fs::read_to_string(&restart_log).unwrap_or_default();
                if let Some(line) = log_text
                    .lines()
                    .find(|l| l.contains("stopped after the point of no return"))
                {
                    panic!(
                        "{failpoint}: operation {id} is stuck after the restart: {line}\n{op:#}\nserve log:\n{log_text}"
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "{failpoint}: operation {id} still {state} {OPERATION_TIMEOUT:?} after the restart: {op:#}\nserve log:\n{}\nsink log:\n{}",
                    std::fs::read_to_string(&restart_log).unwrap_or_default(),
                    std::fs::read_to_string(&sink_log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            };
            let to_end = restarted.elapsed();
            let outcome = op["state"].as_str().unwrap_or_default().to_string();
            let restart_text = std::fs::read_to_string(&restart_log).unwrap_or_default();
            let recovered: Vec<String> = restart_text
                .lines()
                .filter(|l| l.contains("recovered step") || l.contains("left unfinished"))
                .map(|l| plain(l).trim().to_string())
                .collect();
            // Whether the sink held the table at the DDL when the wait ended.
            let held = op["steps"]
                .as_array()
                .and_then(|steps| steps.iter().find(|s| s["kind"] == "wait_sink_applied"))
                .and_then(|s| s["detail"].as_str())
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .map(|d| d["held_at_boundary"].to_string())
                .unwrap_or_else(|| "-".into());
            println!(
                "{failpoint}: operation {id} ({change}) {outcome} in {:.1} s after the restart; held at the boundary: {held}\n  {}",
                to_end.as_secs_f64(),
                recovered.join("\n  ")
            );
            assert!(
                outcome == "succeeded" || outcome == "compensated",
                "{failpoint}: operation {id} ended {outcome}: {op:#}\nserve log:\n{restart_text}"
            );
            scenario
                .check(&source, &table, failpoint, &outcome, &expect)
                .await;
            assert!(
                sink.0.try_wait().expect("sink status").is_none(),
                "the sink exited: {}",
                std::fs::read_to_string(&sink_log).unwrap_or_default()
            );
            kills.push(Kill {
                failpoint: failpoint.clone(),
                change: match &expect {
                    Expect::Column { from, to } => format!("{from} → {to}"),
                    Expect::RowsUpTo(max) => format!("ids ≤ {max}"),
                },
                outcome,
                to_failpoint,
                to_end,
                held,
            });
        }

        stop_writer.store(true, Ordering::Relaxed);
        let retries = writer.await.expect("writer");
        let rows = converged(
            &source,
            &target,
            &table,
            Duration::from_secs(120),
            &sink_log,
        )
        .await;
        println!(
            "writer: {} transactions ({retries} retried); {rows} rows equal",
            txs.load(Ordering::Relaxed)
        );
        stop_watch.store(true, Ordering::Relaxed);
        watcher.await.expect("watcher");

        let out = lockstep_verify(&stack, &table).await;
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "verify: {text}");
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("verify: {e}: {text}"));
        assert!(
            v["compared_columns"].to_string().contains("\"counter\""),
            "verify skipped counter: {text}"
        );
        let (sc, tc) = (
            columns_of(&source, &table).await,
            columns_of(&target, &table).await,
        );
        assert_eq!(tc, sc, "the target's columns are the source's");
        let failed = failed.lock().unwrap().clone();
        assert!(failed.is_none(), "the connector went FAILED: {failed:?}");

        println!(
            "\n{:<32} {:<16} {:<10} {:>10} {:>14}  HELD AT THE BOUNDARY",
            "FAILPOINT (SIGKILL)",
            scenario.label(),
            "OUTCOME",
            "TO KILL s",
            "RESTART→END s"
        );
        for k in &kills {
            println!(
                "{:<32} {:<16} {:<10} {:>10.1} {:>14.1}  {}",
                k.failpoint,
                k.change,
                k.outcome,
                k.to_failpoint.as_secs_f64(),
                k.to_end.as_secs_f64(),
                k.held
            );
        }
        println!(
            "\nverify: clean, {} rows, columns {}; connector never FAILED; target columns = source columns: {sc:?}",
            v["rows_compared"], v["compared_columns"]
        );
    };
    let cleanup = async move {
        slot.cleanup().await;
        drop_tables_and_offsets(&stack, &name).await;
        drop(dir);
    };
    with_cleanup(body, cleanup).await;
}
