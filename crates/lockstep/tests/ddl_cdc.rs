//! Real stack, issue 4's first slice end to end: a Debezium PostgreSQL connector and
//! lockstep's sink (in-process) replicate a table to the target PostgreSQL while a writer keeps
//! inserting, updating and deleting; meanwhile `lockstep ddl apply` adds a nullable column
//! (target first, then source), then drops another (source, mark, wait until the sink passed
//! the mark, target). Rows using the new column replicate, `lockstep_verify` finds no
//! difference, the connector never failed, and the store's audit chain verifies.

mod support;

use std::path::Path;
use std::process::Command;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_e2e::{table_text, unique_name, with_cleanup, PgConnector, Stack};
use lockstep_sink::{Sink, SinkPipeline};
use lockstep_store::{OperationState, Store};
use lockstep_verify::{verify, ConnectionSettings, Endpoint, TableRef, VerifyOptions};

const DDL: &str = "(id bigint primary key, qty integer not null, amount numeric(10,2))";

/// Source and target tables `table DDL`, the source with `rows` rows, and a Debezium connector
/// on it, running when this returns.
async fn tables_and_connector(stack: &Stack, name: &str, table: &str, rows: u32) -> PgConnector {
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&format!(
            "create table {table} {DDL};
             insert into {table} select g, g % 10, g * 1.5 from generate_series(1, {rows}) g;"
        ))
        .await
        .expect("source table");
    target
        .batch_execute(&format!("create table {table} {DDL}"))
        .await
        .expect("target table");
    stack
        .start_pg_connector(name, &[table], &[])
        .await
        .expect("connector")
}

/// The pipeline file of `name` / `table` on the stack's PostgreSQL source and target: `top`
/// lines go before `source:`, `source_extra` lines at the end of it.
fn pipeline_yaml(stack: &Stack, name: &str, table: &str, top: &str, source_extra: &str) -> String {
    support::pipeline_yaml(
        stack,
        name,
        &[format!("{name}.public.{table}")],
        top,
        source_extra,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_then_drop_column_while_rows_flow_replicate_and_verify() {
    let stack = Stack::get();
    let name = unique_name("ddlcdc").replace('_', "-");
    let table = name.replace('-', "_");
    let connector = tables_and_connector(&stack, &name, &table, 500).await;
    let (body_stack, body_name, body_table) = (stack.clone(), name.clone(), table.clone());
    let body = async move {
        let stack = body_stack;
        let (name, table) = (body_name, body_table);
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().to_path_buf();
        let publication = format!("  publication: {}_pub\n", name.replace('-', "_"));
        let yaml = pipeline_yaml(&stack, &name, &table, "", &publication);
        std::fs::write(d.join("p.yaml"), &yaml).unwrap();
        let pipeline = SinkPipeline::parse(Path::new("p.yaml"), &yaml).expect("pipeline");

        // The sink, in-process.
        let stop = Arc::new(AtomicBool::new(false));
        let applied = Arc::new(AtomicU64::new(0));
        let sink_task = {
            let (stop, applied) = (stop.clone(), applied.clone());
            tokio::spawn(async move {
                let mut sink = Sink::start(pipeline).await.expect("sink starts");
                while !stop.load(Ordering::Relaxed) {
                    if let Some(stats) = sink
                        .run_batch(Duration::from_millis(200))
                        .await
                        .expect("sink applies")
                    {
                        applied.fetch_add(stats.records as u64, Ordering::Relaxed);
                    }
                }
            })
        };

        // The writer: inserts, updates and deletes until told to stop. Phase 0 writes the
        // original columns, 1 also the new `note`, 2 no longer `amount` (about to be dropped).
        let writing = Arc::new(AtomicBool::new(true));
        let phase = Arc::new(AtomicU8::new(0));
        let writer = {
            let (writing, phase, table) = (writing.clone(), phase.clone(), table.clone());
            let stack = stack.clone();
            tokio::spawn(async move {
                let w = stack.pg_source().await.expect("writer");
                let mut i: i64 = 1000;
                let mut txs = 0u64;
                while writing.load(Ordering::Relaxed) {
                    i += 1;
                    let (q, u, del) = (i % 7, i % 500 + 1, i - 3);
                    // A write can meet the DDL's lock (or a phase change); retry it rather
                    // than lose it.
                    loop {
                        let sql = match phase.load(Ordering::Relaxed) {
                            0 => format!(
                                "insert into {table} (id, qty, amount) values ({i}, {q}, {i}.25);
                                 update {table} set qty = qty + 1 where id = {u};
                                 delete from {table} where id = {del};"
                            ),
                            1 => format!(
                                "insert into {table} (id, qty, amount, note) values ({i}, {q}, {i}.25, 'n{i}');
                                 update {table} set qty = qty + 1, note = 'u{i}' where id = {u};
                                 delete from {table} where id = {del};"
                            ),
                            _ => format!(
                                "insert into {table} (id, qty, note) values ({i}, {q}, 'm{i}');
                                 update {table} set qty = qty + 1, note = 'v{i}' where id = {u};
                                 delete from {table} where id = {del};"
                            ),
                        };
                        match w.batch_execute(&sql).await {
                            Ok(()) => break,
                            Err(e) => {
                                eprintln!("writer retries: {e}");
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    txs += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                txs
            })
        };

        // Let the snapshot and some streaming through before the DDL.
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let n: i64 = target
                .query_one(&format!("select count(*) from {table}"), &[])
                .await
                .unwrap()
                .get(0);
            if n >= 500 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the snapshot did not reach the target"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let apply = |sql: String| {
            let (dir_path, connect_url) = (d.clone(), stack.connect_url.clone());
            async move {
                let started = Instant::now();
                let output = tokio::task::spawn_blocking(move || {
                    support::lockstep_command(&dir_path)
                        .args(["ddl", "apply", "--pipeline", "p.yaml", "--sql", &sql])
                        .args(["--actor", "e2e", "--connect-url", &connect_url])
                        .output()
                        .expect("running lockstep ddl apply")
                })
                .await
                .unwrap();
                let report = format!(
                    "exit {:?}\n{}\n{}",
                    output.status.code(),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                assert_eq!(output.status.code(), Some(0), "{report}");
                println!(
                    "ddl apply took {:.2} s while rows flowed:\n{report}",
                    started.elapsed().as_secs_f64()
                );
            }
        };
        // The pipeline file against the live systems.
        let check = {
            let (dir_path, connect_url) = (d.clone(), stack.connect_url.clone());
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_lockstep"))
                    .args(["pipeline", "check", "--pipeline", "p.yaml", "-o", "json"])
                    .args(["--connect-url", &connect_url])
                    .env_remove("LOCKSTEP_CONFIG")
                    .current_dir(&dir_path)
                    .output()
                    .expect("running lockstep pipeline check")
            })
            .await
            .unwrap()
        };
        let findings: serde_json::Value = serde_json::from_slice(&check.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&check.stdout)));
        println!("pipeline check: {findings}");
        assert_eq!(check.status.code(), Some(0), "{findings}");
        let checks: Vec<(&str, &str)> = findings
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["check"].as_str().unwrap(), f["status"].as_str().unwrap()))
            .collect();
        assert!(
            checks.contains(&(&format!("connector {name}")[..], "ok")),
            "{findings}"
        );
        assert!(checks.iter().all(|(_, s)| *s == "ok"), "{findings}");

        // Target first: the target gets the column, then the source.
        apply(format!("ALTER TABLE {table} ADD COLUMN note text")).await;
        phase.store(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Expand / contract: the source drops the column, the sink passes the position right
        // after it, then the target drops it.
        phase.store(2, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        apply(format!("ALTER TABLE {table} DROP COLUMN amount")).await;

        // Rows after both changes.
        tokio::time::sleep(Duration::from_secs(2)).await;
        writing.store(false, Ordering::Relaxed);
        let txs = writer.await.expect("writer");
        // Narrowing: expand / contract again, then the rows are compared (with the writes
        // stopped: a whole-table comparison under constant writes never sees a still moment).
        apply(format!(
            "ALTER TABLE {table} ALTER COLUMN qty TYPE smallint"
        ))
        .await;

        let expected = loop {
            let (s, t) = (
                table_text(&source, &table).await,
                table_text(&target, &table).await,
            );
            if s == t {
                break s;
            }
            assert!(
                Instant::now() < deadline + Duration::from_secs(120),
                "the target did not converge: source {s:?}, target {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let notes: i64 = target
            .query_one(&format!("select count(note) from {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert!(notes > 0, "rows with the new column reached the target");
        stop.store(true, Ordering::Relaxed);
        sink_task.await.expect("sink task");
        println!(
            "writer ran {txs} transactions; the sink applied {} records; {} rows, {notes} with a note",
            applied.load(Ordering::Relaxed),
            expected.0
        );

        let side = |db: &str| {
            Endpoint::new(
                ConnectionSettings::postgres(
                    stack.pg_host.clone(),
                    stack.pg_port,
                    stack.pg_user.clone(),
                    db,
                ),
                TableRef::new(Some("public"), table.clone()),
            )
        };
        let v = verify(
            &side(&stack.pg_source_db),
            &side(&stack.pg_target_db),
            &VerifyOptions::default(),
        )
        .await
        .expect("verify runs");
        assert!(v.is_clean(), "verify found differences: {v:?}");
        assert!(v.compared_columns.contains(&"note".to_string()), "{v:?}");
        assert!(!v.compared_columns.contains(&"amount".to_string()), "{v:?}");
        let target_columns: Vec<String> = target
            .query(
                "select column_name::text from information_schema.columns
                 where table_schema = 'public' and table_name = $1 order by ordinal_position",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(target_columns, ["id", "qty", "note"]);
        println!("verify: {} rows compared, clean", v.rows_compared);

        // The connector never failed; the store has the operation and an intact chain.
        let status = stack
            .connect_client()
            .unwrap()
            .connector_status(&name)
            .await
            .expect("status");
        assert_eq!(
            status.connector.state,
            lockstep_connect::ConnectorState::Running,
            "{status:?}"
        );
        assert_eq!(status.failed_tasks().count(), 0, "{status:?}");
        let store = Store::open_dir(&d.join("state")).expect("store");
        let ops = store.list(&Default::default()).unwrap();
        assert_eq!(ops.len(), 3);
        assert!(
            ops.iter().all(|o| o.state == OperationState::Succeeded),
            "{ops:?}"
        );
        let chain = store.verify_chain().unwrap();
        assert!(chain.broken.is_none(), "{chain:?}");
    };
    let cleanup = async move {
        connector.cleanup().await;
        support::drop_table(&stack, &table).await;
    };
    with_cleanup(body, cleanup).await;
}

/// `lockstep ddl apply` is SIGKILLed while it waits for the sink (which is not running yet):
/// the store shows the wait step Running; once the sink runs, `lockstep ddl resume` retries
/// the wait (idempotent), finishes the plan, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_killed_while_waiting_for_the_sink_is_resumed() {
    let stack = Stack::get();
    let name = unique_name("ddlkill").replace('_', "-");
    let table = name.replace('-', "_");
    let connector = tables_and_connector(&stack, &name, &table, 200).await;
    let (body_stack, body_name, body_table) = (stack.clone(), name.clone(), table.clone());
    let body = async move {
        let stack = body_stack;
        let (name, table) = (body_name, body_table);
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().to_path_buf();
        let yaml = pipeline_yaml(&stack, &name, &table, "", "");
        std::fs::write(d.join("p.yaml"), &yaml).unwrap();
        let (cmd_dir, connect_url) = (d.clone(), stack.connect_url.clone());
        let lockstep = move |args: &[&str]| {
            let mut c = support::lockstep_command(&cmd_dir);
            c.args(args).args(["--connect-url", &connect_url]);
            c
        };
        let drop = format!("ALTER TABLE {table} DROP COLUMN amount");
        let mut child = lockstep(&["ddl", "apply", "--pipeline", "p.yaml", "--sql", &drop])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ddl apply");
        // Wait until the wait step (4) is recorded Running, then kill the process.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let db = d.join("state").join("lockstep.db");
            let running = db.exists()
                && Store::open_existing(&db)
                    .ok()
                    .and_then(|s| s.list(&Default::default()).ok().map(|l| (s, l)))
                    .and_then(|(s, l)| l.first().map(|o| s.get(o.id)))
                    .and_then(|o| o.ok())
                    .is_some_and(|o| {
                        o.steps.get(3).is_some_and(|s| {
                            s.state.status() == lockstep_store::StepStatus::Running
                        })
                    });
            if running {
                break;
            }
            assert!(Instant::now() < deadline, "the wait step never started");
            assert!(child.try_wait().unwrap().is_none(), "ddl apply ended early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        println!("ddl apply killed while waiting for the sink: {status:?}");
        let store = Store::open_dir(&d.join("state")).expect("store");
        let op = store
            .get(store.list(&Default::default()).unwrap()[0].id)
            .unwrap();
        assert_eq!(op.state, OperationState::Running);
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        let has_amount = |db: tokio_postgres::Client, table: String| async move {
            db.query_one(
                "select count(*) from information_schema.columns
                 where table_schema = 'public' and table_name = $1 and column_name = 'amount'",
                &[&table],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                == 1
        };
        assert!(
            !has_amount(stack.pg_source().await.unwrap(), table.clone()).await,
            "the source DDL ran before the kill"
        );
        assert!(
            has_amount(stack.pg(&stack.pg_target_db).await.unwrap(), table.clone()).await,
            "the target keeps the column until the sink passed the change"
        );

        // Start the sink, then resume.
        let pipeline = SinkPipeline::parse(Path::new("p.yaml"), &yaml).expect("pipeline");
        let stop = Arc::new(AtomicBool::new(false));
        let sink_task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut sink = Sink::start(pipeline).await.expect("sink starts");
                while !stop.load(Ordering::Relaxed) {
                    sink.run_batch(Duration::from_millis(200))
                        .await
                        .expect("sink applies");
                }
            })
        };
        let output = tokio::task::spawn_blocking(move || {
            lockstep(&["ddl", "resume"]).output().expect("ddl resume")
        })
        .await
        .unwrap();
        let report = format!(
            "exit {:?}\n{}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        println!("{report}");
        assert_eq!(output.status.code(), Some(0), "{report}");
        assert!(
            report.contains("step 4 (wait_sink_applied): interrupted; idempotent: retried"),
            "{report}"
        );
        let op = store.get(op.id).unwrap();
        assert_eq!(op.state, OperationState::Succeeded);
        assert!(!has_amount(stack.pg(&stack.pg_target_db).await.unwrap(), table.clone()).await);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, t) = (
                table_text(&source, &table).await,
                table_text(&target, &table).await,
            );
            if s == t {
                break;
            }
            assert!(Instant::now() < deadline, "no convergence: {s:?} vs {t:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        stop.store(true, Ordering::Relaxed);
        sink_task.await.expect("sink task");
        assert!(store.verify_chain().unwrap().broken.is_none());
    };
    let cleanup = async move {
        connector.cleanup().await;
        support::drop_table(&stack, &table).await;
    };
    with_cleanup(body, cleanup).await;
}

/// The boundary strategy (RENAME COLUMN) while rows flow, against `lockstep sink run --listen`:
/// pause the connector, rename on the source with a mark in the same transaction, resume; the
/// sink's `block` policy stops the table at the first renamed change; once everything before
/// it is applied the target is renamed and the table released. Nothing is lost or left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_column_at_the_boundary_while_rows_flow() {
    let stack = Stack::get();
    let name = unique_name("ddlren").replace('_', "-");
    let table = name.replace('-', "_");
    let connector = tables_and_connector(&stack, &name, &table, 300).await;
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = pipeline_yaml(
        &stack,
        &name,
        &table,
        "schema_drift: block\n",
        &format!("  sink_api: http://127.0.0.1:{port}\n"),
    );
    std::fs::write(d.join("p.yaml"), &yaml).unwrap();
    let sink_log = std::fs::File::create(d.join("sink.log")).unwrap();
    let sink = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "sink",
            "run",
            "-p",
            "p.yaml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("LOCKSTEP_CONFIG")
        .env("LOCKSTEP_LOG", "info")
        .current_dir(&d)
        .stdout(sink_log.try_clone().unwrap())
        .stderr(sink_log)
        .spawn()
        .expect("lockstep sink run");
    let sink = Arc::new(std::sync::Mutex::new(sink));
    let (body_stack, body_name, body_table, body_dir, body_sink) = (
        stack.clone(),
        name.clone(),
        table.clone(),
        d.clone(),
        sink.clone(),
    );
    let body = async move {
        let stack = body_stack;
        let (name, table, d) = (body_name, body_table, body_dir);
        // The snapshot reaches the target through the sink process.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let n: i64 = target
                .query_one(&format!("select count(*) from {table}"), &[])
                .await
                .unwrap()
                .get(0);
            if n >= 300 {
                break;
            }
            assert!(
                body_sink.lock().unwrap().try_wait().unwrap().is_none(),
                "the sink exited: {}",
                std::fs::read_to_string(d.join("sink.log")).unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "the snapshot did not reach the target"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // The writer switches to the new name when the old one is gone.
        let writing = Arc::new(AtomicBool::new(true));
        let writer = {
            let (writing, table, stack) = (writing.clone(), table.clone(), stack.clone());
            tokio::spawn(async move {
                let w = stack.pg_source().await.expect("writer");
                let mut renamed = false;
                let (mut i, mut txs, mut retries) = (1000i64, 0u64, 0u64);
                while writing.load(Ordering::Relaxed) {
                    i += 1;
                    let (q, u, del) = (i % 7, i % 300 + 1, i - 3);
                    loop {
                        let col = if renamed { "total" } else { "amount" };
                        let sql = format!(
                            "insert into {table} (id, qty, {col}) values ({i}, {q}, {i}.25);
                             update {table} set qty = qty + 1, {col} = {col} + 1 where id = {u};
                             delete from {table} where id = {del};"
                        );
                        match w.batch_execute(&sql).await {
                            Ok(()) => break,
                            Err(e) => {
                                retries += 1;
                                if e.to_string().contains("does not exist")
                                    || e.as_db_error()
                                        .is_some_and(|d| d.message().contains("does not exist"))
                                {
                                    renamed = true;
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                    txs += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (txs, retries)
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;

        let rename = format!("ALTER TABLE {table} RENAME COLUMN amount TO total");
        let (dir_path, connect_url) = (d.clone(), stack.connect_url.clone());
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || {
            support::lockstep_command(&dir_path)
                .args(["ddl", "apply", "--pipeline", "p.yaml", "--sql", &rename])
                .args(["--actor", "e2e", "--connect-url", &connect_url])
                .output()
                .expect("running lockstep ddl apply")
        })
        .await
        .unwrap();
        let report = format!(
            "exit {:?}\n{}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        println!(
            "rename applied in {:.2} s while rows flowed:\n{report}",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{report}\nsink log:\n{}",
            std::fs::read_to_string(d.join("sink.log")).unwrap_or_default()
        );

        tokio::time::sleep(Duration::from_secs(2)).await;
        writing.store(false, Ordering::Relaxed);
        let (txs, retries) = writer.await.expect("writer");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (s, t) = (
                table_text(&source, &table).await,
                table_text(&target, &table).await,
            );
            if s == t {
                println!(
                    "writer: {txs} transactions ({retries} retried); {} rows equal",
                    s.0
                );
                break;
            }
            if Instant::now() >= deadline {
                let mut sr = Vec::new();
                let mut tr = Vec::new();
                for (c, out) in [(&source, &mut sr), (&target, &mut tr)] {
                    for r in c
                        .query(&format!("select t::text from {table} t order by id"), &[])
                        .await
                        .unwrap()
                    {
                        out.push(r.get::<_, String>(0));
                    }
                }
                let only_t: Vec<&String> = tr.iter().filter(|r| !sr.contains(r)).collect();
                let only_s: Vec<&String> = sr.iter().filter(|r| !tr.contains(r)).collect();
                println!("only on target: {only_t:?}\nonly on source: {only_s:?}");
            }
            assert!(
                Instant::now() < deadline,
                "no convergence: {s:?} vs {t:?}\nsink log:\n{}",
                std::fs::read_to_string(d.join("sink.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let side = |db: &str| {
            Endpoint::new(
                ConnectionSettings::postgres(
                    stack.pg_host.clone(),
                    stack.pg_port,
                    stack.pg_user.clone(),
                    db,
                ),
                TableRef::new(Some("public"), table.clone()),
            )
        };
        let v = verify(
            &side(&stack.pg_source_db),
            &side(&stack.pg_target_db),
            &VerifyOptions::default(),
        )
        .await
        .expect("verify runs");
        assert!(v.is_clean(), "verify found differences: {v:?}");
        assert!(v.compared_columns.contains(&"total".to_string()), "{v:?}");
        let status = stack
            .connect_client()
            .unwrap()
            .connector_status(&name)
            .await
            .expect("status");
        assert_eq!(
            status.connector.state,
            lockstep_connect::ConnectorState::Running,
            "{status:?}"
        );
        let store = Store::open_dir(&d.join("state")).expect("store");
        let ops = store.list(&Default::default()).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].state, OperationState::Succeeded);
        assert!(store.verify_chain().unwrap().broken.is_none());
    };
    let cleanup = async move {
        {
            let mut child = sink.lock().unwrap();
            let _ = child.kill();
            let _ = child.wait();
        }
        connector.cleanup().await;
        support::drop_table(&stack, &table).await;
        drop(dir);
    };
    with_cleanup(body, cleanup).await;
}

/// A quiesced plan (TRUNCATE, skipped by the connector) whose drain outlasts
/// `quiesce_timeout_ms` is undone: nothing applies the table's topic here, so the sink never
/// reaches the mark. The apply fails saying so, the operation is compensated, the source table
/// keeps its rows, and a writer that waited on the quiesce lock goes on once it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quiesce_the_sink_does_not_drain_in_time_is_undone_and_writes_go_on() {
    let stack = Stack::get();
    let name = unique_name("ddlqto").replace('_', "-");
    let table = name.replace('-', "_");
    let connector = tables_and_connector(&stack, &name, &table, 200).await;
    let (body_stack, body_name, body_table) = (stack.clone(), name.clone(), table.clone());
    let body = async move {
        let stack = body_stack;
        let (name, table) = (body_name, body_table);
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().to_path_buf();
        let yaml = pipeline_yaml(
            &stack,
            &name,
            &table,
            "",
            "  sink_api: http://127.0.0.1:9\n  quiesce_timeout_ms: 3000\n",
        );
        std::fs::write(d.join("p.yaml"), &yaml).unwrap();
        // The snapshot is in the topic: unapplied records the drain would wait for.
        let consumer = stack.consumer().expect("consumer");
        let topic = format!("{name}.public.{table}");
        lockstep_e2e::eventually(
            "the snapshot in the topic",
            Duration::from_secs(120),
            || {
                let ends = lockstep_e2e::end_offsets(&consumer, &topic).unwrap_or_default();
                async move { Ok((ends.values().sum::<i64>() >= 200).then_some(())) }
            },
        )
        .await
        .expect("snapshot records");

        let source = stack.pg_source().await.expect("source");
        let apply = {
            let (d, connect_url, sql) = (
                d.clone(),
                stack.connect_url.clone(),
                format!("TRUNCATE {table}"),
            );
            tokio::task::spawn_blocking(move || {
                support::lockstep_command(&d)
                    .args(["ddl", "apply", "--pipeline", "p.yaml", "--sql", &sql])
                    .args(["--connect-url", &connect_url])
                    .output()
                    .expect("ddl apply")
            })
        };
        // A write issued while the table is quiesced waits for the lock, then goes on.
        let quiesced = Instant::now() + Duration::from_secs(60);
        loop {
            let locked: i64 = source
                .query_one(
                    "select count(*) from pg_locks l join pg_class c on c.oid = l.relation
                     where c.relname = $1 and l.mode = 'ExclusiveLock' and l.granted",
                    &[&table],
                )
                .await
                .expect("pg_locks")
                .get(0);
            if locked > 0 {
                break;
            }
            assert!(Instant::now() < quiesced, "the table was never quiesced");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let write_started = Instant::now();
        source
            .batch_execute(&format!("insert into {table} values (100001, 1, 1.5)"))
            .await
            .expect("the write goes on once the quiesce ends");
        let waited = write_started.elapsed();
        let output = apply.await.expect("apply task");
        let report = support::output_text(&output);
        println!("{report}\nthe write waited {:.2} s", waited.as_secs_f64());
        assert_ne!(output.status.code(), Some(0), "{report}");
        assert!(report.contains("compensated"), "{report}");
        assert!(report.contains("timed out waiting for"), "{report}");
        assert!(
            waited > Duration::from_millis(500),
            "the write did not wait for the quiesce ({waited:?})"
        );
        let rows: i64 = source
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(
            rows, 201,
            "the undone TRUNCATE left the source's rows in place"
        );
    };
    let cleanup = async move {
        connector.cleanup().await;
        support::drop_table(&stack, &table).await;
    };
    with_cleanup(body, cleanup).await;
}
