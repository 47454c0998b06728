//! Real stack, issue 4's table plans end to end: a Debezium PostgreSQL connector and `lockstep
//! sink run --listen` replicate a table while a writer keeps inserting into it; `lockstep ddl
//! apply` runs CREATE TABLE (target first, the connector's `table.include.list`, the sink's new
//! topic, the source, the publication, the snapshot signal skipped while the table is empty),
//! rows written to the new table reach the target (`lockstep_verify`: no difference), the sink
//! is restarted and still reads the new topic (recorded in the target), then DROP TABLE
//! (source, mark, wait, target, the sink's topic, the include list): the target table is gone,
//! the include list and the publication no longer name it, and the connector stayed RUNNING.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_e2e::{eventually, unique_name, with_cleanup, Stack};
use lockstep_verify::{verify, ConnectionSettings, Endpoint, TableRef, VerifyOptions};
use support::{
    drop_tables_and_offsets, first_changes, free_port, start_sink_on, writer, ConnectorSlot,
};

/// The `source:` section of the pipeline file (the sink ignores it).
fn source_section(stack: &Stack, name: &str, sink_api: &str) -> String {
    support::source_section(
        stack,
        name,
        &format!(
            "  publication: {name}_pub\n  signal_table: public.{name}_sig\n  sink_api: {sink_api}\n  wait_timeout_ms: 120000\n"
        ),
    )
}

async fn ddl_apply(dir: &Path, connect_url: &str, sql: &str) -> String {
    let (dir, connect_url, sql) = (dir.to_path_buf(), connect_url.to_string(), sql.to_string());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        support::lockstep_command(&dir)
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
    println!(
        "ddl apply took {:.2} s:\n{report}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(output.status.code(), Some(0), "{report}");
    report
}

async fn include_list(stack: &Stack, connector: &str) -> String {
    stack
        .connect_client()
        .unwrap()
        .get_connector_config(connector)
        .await
        .expect("connector config")
        .get("table.include.list")
        .unwrap_or_default()
        .to_string()
}

async fn in_publication(source: &tokio_postgres::Client, publication: &str, table: &str) -> bool {
    source
        .query_opt(
            "select 1 from pg_publication_tables where pubname = $1 and schemaname = 'public' and tablename = $2",
            &[&publication, &table],
        )
        .await
        .expect("publication tables")
        .is_some()
}

async fn sink_status(base: &str, name: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/api/v1/sinks/{name}"))
        .await
        .expect("sink status")
        .json()
        .await
        .expect("sink status json")
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

async fn verify_clean(stack: &Stack, table: &str) -> u64 {
    let side = |db: &str| {
        Endpoint::new(
            ConnectionSettings::postgres(
                stack.pg_host.clone(),
                stack.pg_port,
                stack.pg_user.clone(),
                db,
            ),
            TableRef::new(Some("public"), table.to_string()),
        )
    };
    let v = verify(
        &side(&stack.pg_source_db),
        &side(&stack.pg_target_db),
        &VerifyOptions::default(),
    )
    .await
    .expect("verify runs");
    assert!(v.is_clean(), "verify found differences in {table}: {v:?}");
    v.rows_compared
}

/// The test's source table (its rows from `seed`, an INSERT) and Debezium signal table, the
/// empty target table, and a connector on the table that reads signals from the signal table;
/// the source and target connections.
async fn tables_and_connector(
    stack: &Stack,
    name: &str,
    seed: &str,
    slot: &ConnectorSlot,
) -> (tokio_postgres::Client, tokio_postgres::Client) {
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&format!(
            "create table {name} (id bigint primary key, v text);
             {seed};
             create table {name}_sig (id varchar(64) primary key, type varchar(32) not null, data varchar(2048));"
        ))
        .await
        .expect("source tables");
    target
        .batch_execute(&format!(
            "create table {name} (id bigint primary key, v text)"
        ))
        .await
        .expect("target table");
    slot.put(
        stack
            .start_pg_connector(
                name,
                &[name],
                &[("signal.data.collection", &format!("public.{name}_sig"))],
            )
            .await
            .expect("connector"),
    );
    (source, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_and_drop_table_through_connector_publication_and_sink() {
    let stack = Stack::get();
    let name = unique_name("ddltab");
    let fresh = format!("{name}_new");
    let signal = format!("{name}_sig");
    let connector = ConnectorSlot::default();
    let (body_stack, body_name, body_connector) = (stack.clone(), name.clone(), connector.clone());
    let body = async move {
        let (stack, name) = (body_stack, body_name);
        let fresh = format!("{name}_new");
        let publication = format!("{name}_pub");
        let (source, target) = tables_and_connector(
            &stack,
            &name,
            &format!("insert into {name} select g, 'v' || g from generate_series(1, 100) g"),
            &body_connector,
        )
        .await;

        let dir = tempfile::tempdir().expect("tmp");
        let d: PathBuf = dir.path().to_path_buf();
        let port = free_port().expect("port");
        let sink_api = format!("http://127.0.0.1:{port}");
        let extra = source_section(&stack, &name, &sink_api);
        let start = |port: u16| {
            start_sink_on(
                &stack,
                &name,
                &d.join("p.yaml"),
                &extra,
                Stdio::inherit(),
                port,
            )
            .expect("sink starts")
        };
        let (sink, base) = start(port);
        first_changes(&target, &name, Duration::from_secs(120))
            .await
            .expect("the snapshot reaches the target");

        // Writes to the old table go on through both DDLs (the connector restarts twice).
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(writer(
            stack.pg_source().await.expect("writer"),
            name.clone(),
            "g, 'w' || g",
            Duration::from_millis(50),
            Arc::new(AtomicI64::new(1000)),
            stop.clone(),
        ));

        // CREATE TABLE.
        let report = ddl_apply(
            &d,
            &stack.connect_url,
            &format!(
                "CREATE TABLE {fresh} (id bigint PRIMARY KEY, qty integer NOT NULL, note text)"
            ),
        )
        .await;
        for step in [
            "update_connector_config",
            "add_sink_table",
            "update_publication",
            "incremental_snapshot_signal",
        ] {
            assert!(report.contains(step), "{step} missing: {report}");
        }
        let list = include_list(&stack, &name).await;
        assert!(
            list.split(',').any(|e| e == format!("public.{fresh}")),
            "include list after CREATE: {list}"
        );
        assert!(
            in_publication(&source, &publication, &fresh).await,
            "the publication lacks {fresh}"
        );
        let status = sink_status(&base, &name).await;
        println!("sink status after CREATE: {status}");
        let topic = format!("{name}.public.{fresh}");
        assert!(
            status["runtime_topics"].as_array().is_some_and(|a| a
                .iter()
                .any(|t| t["topic"] == topic && t["removed"] == false)),
            "{status}"
        );

        // Rows in the new table reach the target.
        source
            .batch_execute(&format!(
                "insert into {fresh} select g, g % 7, 'n' || g from generate_series(1, 300) g;
                 update {fresh} set qty = qty + 100 where id % 10 = 0;
                 delete from {fresh} where id % 25 = 0;"
            ))
            .await
            .expect("rows in the new table");
        let want = count(&source, &fresh).await;
        let started = Instant::now();
        eventually(
            "the new table's rows in the target",
            Duration::from_secs(120),
            || {
                let (target, fresh) = (&target, &fresh);
                async move { Ok((count(target, fresh).await == want).then_some(())) }
            },
        )
        .await
        .expect("rows replicate");
        println!(
            "{want} rows of {fresh} in the target {:.2} s after the insert",
            started.elapsed().as_secs_f64()
        );
        let compared = verify_clean(&stack, &fresh).await;
        println!("verify {fresh}: {compared} rows compared, clean");

        // The sink restarts and still reads the new topic: it is recorded in the target.
        drop(sink);
        let (sink, base) = start(port);
        source
            .batch_execute(&format!(
                "insert into {fresh} select g, 1, 'after restart' from generate_series(301, 350) g"
            ))
            .await
            .expect("rows after the restart");
        let want = count(&source, &fresh).await;
        eventually(
            "rows written after the sink restarted in the target",
            Duration::from_secs(120),
            || {
                let (target, fresh) = (&target, &fresh);
                async move { Ok((count(target, fresh).await == want).then_some(())) }
            },
        )
        .await
        .expect("the restarted sink reads the added topic");
        verify_clean(&stack, &fresh).await;

        // The incremental snapshot signal the CREATE plan sends when the new table already
        // has rows: rows the target lost come back through Debezium's snapshot.
        target
            .batch_execute(&format!("delete from {fresh} where id <= 100"))
            .await
            .expect("target rows removed");
        let data =
            format!("{{\"data-collections\": [\"public.{fresh}\"], \"type\": \"incremental\"}}");
        let fresh_q = lockstep_ddl::QualifiedName::new("public", fresh.clone());
        let signal_q = lockstep_ddl::QualifiedName::new("public", format!("{name}_sig"));
        let started = Instant::now();
        let sent = lockstep_ddl_exec::tables::send_snapshot_signal(
            &source,
            &format!("e2e-{name}"),
            &signal_q,
            &data,
            std::slice::from_ref(&fresh_q),
            true,
        )
        .await
        .expect("signal sent");
        println!("snapshot signal: {sent}");
        assert_eq!(sent["skipped"], false, "{sent}");
        let want = count(&source, &fresh).await;
        eventually(
            "the snapshot to restore the target's rows",
            Duration::from_secs(120),
            || {
                let (target, fresh) = (&target, &fresh);
                async move { Ok((count(target, fresh).await == want).then_some(())) }
            },
        )
        .await
        .expect("the incremental snapshot ran");
        println!(
            "incremental snapshot restored {fresh} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        verify_clean(&stack, &fresh).await;
        // What the plan's wait_snapshot_completed polls: the committed offsets no longer show
        // the snapshot once it is done.
        let connect = stack.connect_client().unwrap();
        eventually(
            "the committed offsets to show the snapshot finished",
            Duration::from_secs(120),
            || {
                let (connect, name, fresh_q) = (&connect, &name, &fresh_q);
                async move {
                    let running = lockstep_ddl_exec::tables::snapshot_running(
                        connect,
                        name,
                        std::slice::from_ref(fresh_q),
                    )
                    .await?;
                    Ok((!running).then_some(()))
                }
            },
        )
        .await
        .expect("snapshot finished");
        // Sending it again (a retry after a crash) inserts nothing.
        let again = lockstep_ddl_exec::tables::send_snapshot_signal(
            &source,
            &format!("e2e-{name}"),
            &signal_q,
            &data,
            std::slice::from_ref(&fresh_q),
            true,
        )
        .await
        .expect("signal again");
        assert_eq!(again["already_sent"], true, "{again}");

        // DROP TABLE.
        let report = ddl_apply(&d, &stack.connect_url, &format!("DROP TABLE {fresh}")).await;
        // The wait before the target's DROP covered the added topic.
        assert!(
            report
                .lines()
                .any(|l| l.contains("wait_sink_applied") && l.contains(&topic)),
            "{report}"
        );
        let gone: bool = target
            .query_one(
                "select to_regclass($1) is null",
                &[&format!("public.{fresh}")],
            )
            .await
            .unwrap()
            .get(0);
        assert!(gone, "the target table {fresh} is still there");
        let list = include_list(&stack, &name).await;
        assert!(
            !list.split(',').any(|e| e == format!("public.{fresh}")),
            "include list after DROP: {list}"
        );
        assert!(
            list.split(',').any(|e| e == format!("public.{name}")),
            "the other table left the include list: {list}"
        );
        assert!(
            !in_publication(&source, &publication, &fresh).await,
            "the publication still lists {fresh}"
        );
        let status = sink_status(&base, &name).await;
        assert!(
            status["runtime_topics"].as_array().is_some_and(|a| a
                .iter()
                .any(|t| t["topic"] == topic && t["removed"] == true)),
            "{status}"
        );
        assert!(
            status["partitions"]
                .as_array()
                .is_some_and(|a| a.iter().all(|p| p["topic"] != topic)),
            "the sink still reads {topic}: {status}"
        );

        // The old table kept replicating through both connector restarts.
        stop.store(true, Ordering::Relaxed);
        load.await.expect("writer task").expect("writer");
        let want = count(&source, &name).await;
        eventually("the old table converges", Duration::from_secs(120), || {
            let (target, name) = (&target, &name);
            async move { Ok((count(target, name).await == want).then_some(())) }
        })
        .await
        .expect("old table converges");
        let compared = verify_clean(&stack, &name).await;
        println!("verify {name}: {compared} rows compared, clean");

        let status = stack
            .connect_client()
            .unwrap()
            .connector_status(&name)
            .await
            .expect("connector status");
        assert_eq!(
            status.connector.state,
            lockstep_connect::ConnectorState::Running,
            "{status:?}"
        );
        assert_eq!(status.failed_tasks().count(), 0, "{status:?}");
        drop(sink);
    };
    let cleanup = async {
        connector.cleanup().await;
        drop_tables_and_offsets(&stack, &name).await;
        for (db, table) in [
            (&stack.pg_source_db, &fresh),
            (&stack.pg_target_db, &fresh),
            (&stack.pg_source_db, &signal),
        ] {
            if let Ok(pg) = stack.pg(db).await {
                let _ = pg
                    .batch_execute(&format!("drop table if exists {table}"))
                    .await;
            }
        }
        if let Ok(target) = stack.pg(&stack.pg_target_db).await {
            let _ = target
                .execute(
                    "delete from lockstep.sink_topics where pipeline = $1",
                    &[&name],
                )
                .await;
        }
    };
    with_cleanup(body, cleanup).await;
}

/// RENAME TABLE: the new name joins the include list, the sink reads its new topic held until
/// the target table is renamed; the old table is quiesced and drained, renamed in the quiesce
/// session, then the old topic and name leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_table_moves_the_sink_to_the_new_topic() {
    let stack = Stack::get();
    let name = unique_name("ddlren");
    let connector = ConnectorSlot::default();
    let (body_stack, body_name, body_connector) = (stack.clone(), name.clone(), connector.clone());
    let body = async move {
        let (stack, name) = (body_stack, body_name);
        let (old, new) = (format!("{name}_old"), format!("{name}_ren"));
        let (source, target) = tables_and_connector(
            &stack,
            &name,
            &format!("insert into {name} values (1, 'x')"),
            &body_connector,
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let d: PathBuf = dir.path().to_path_buf();
        let port = free_port().expect("port");
        let extra = source_section(&stack, &name, &format!("http://127.0.0.1:{port}"));
        let (sink, base) = start_sink_on(
            &stack,
            &name,
            &d.join("p.yaml"),
            &extra,
            Stdio::inherit(),
            port,
        )
        .expect("sink starts");
        first_changes(&target, &name, Duration::from_secs(120))
            .await
            .expect("the snapshot reaches the target");

        ddl_apply(
            &d,
            &stack.connect_url,
            &format!("CREATE TABLE {old} (id bigint PRIMARY KEY, qty integer NOT NULL)"),
        )
        .await;
        source
            .batch_execute(&format!(
                "insert into {old} select g, g from generate_series(1, 200) g"
            ))
            .await
            .expect("rows before the rename");
        let converged = |table: String| {
            let (source, target) = (&source, &target);
            async move {
                let want = count(source, &table).await;
                eventually(
                    &format!("{table} in the target"),
                    Duration::from_secs(120),
                    || {
                        let table = table.clone();
                        async move { Ok((count(target, &table).await == want).then_some(())) }
                    },
                )
                .await
                .expect("rows replicate");
            }
        };
        converged(old.clone()).await;

        // A writer keeps inserting across the rename: into the old name until it is gone,
        // then into the new one, so changes are in flight on both topics at the boundary.
        let stop = Arc::new(AtomicBool::new(false));
        let rows_writer = {
            let (stop, old, new) = (stop.clone(), old.clone(), new.clone());
            let w = stack.pg_source().await.expect("writer");
            tokio::spawn(async move {
                let (mut id, mut renamed, mut before, mut after) = (1000i64, false, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let table = if renamed { &new } else { &old };
                    match w
                        .batch_execute(&format!("insert into {table} values ({id}, {id})"))
                        .await
                    {
                        Ok(()) if renamed => after += 1,
                        Ok(()) => before += 1,
                        Err(e) if !renamed => {
                            eprintln!("writer: {e}; switching to {new}");
                            renamed = true;
                            continue;
                        }
                        Err(e) => panic!("writer: {e}"),
                    }
                    id += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (before, after)
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let report = ddl_apply(
            &d,
            &stack.connect_url,
            &format!("ALTER TABLE {old} RENAME TO {new}"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let (before, after) = rows_writer.await.expect("writer");
        println!("writer: {before} inserts under the old name, {after} under the new one");
        assert!(before > 0 && after > 0, "{before} / {after}");
        for step in ["add_sink_table", "release_sink_table", "remove_sink_table"] {
            assert!(report.contains(step), "{step} missing: {report}");
        }
        source
            .batch_execute(&format!(
                "insert into {new} select g, g from generate_series(201, 300) g;
                 update {new} set qty = -qty where id % 10 = 0;
                 delete from {new} where id % 30 = 0;"
            ))
            .await
            .expect("rows after the rename");
        converged(new.clone()).await;
        let compared = verify_clean(&stack, &new).await;
        println!("verify {new}: {compared} rows compared, clean");
        let old_gone: bool = target
            .query_one(
                "select to_regclass($1) is null",
                &[&format!("public.{old}")],
            )
            .await
            .unwrap()
            .get(0);
        assert!(old_gone, "the target still has {old}");
        let list = include_list(&stack, &name).await;
        assert!(
            list.split(',').any(|e| e == format!("public.{new}"))
                && !list.split(',').any(|e| e == format!("public.{old}")),
            "include list after RENAME: {list}"
        );
        let status = sink_status(&base, &name).await;
        println!("sink status after RENAME: {status}");
        assert!(
            status["blocked"].as_array().is_some_and(Vec::is_empty),
            "{status}"
        );
        let topics = status["runtime_topics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let state = |table: &str| {
            topics
                .iter()
                .find(|t| t["topic"] == format!("{name}.public.{table}"))
                .map(|t| t["removed"] == true)
        };
        assert_eq!(state(&old), Some(true), "{status}");
        assert_eq!(state(&new), Some(false), "{status}");

        ddl_apply(&d, &stack.connect_url, &format!("DROP TABLE {new}")).await;
        let status = stack
            .connect_client()
            .unwrap()
            .connector_status(&name)
            .await
            .expect("connector status");
        assert_eq!(
            status.connector.state,
            lockstep_connect::ConnectorState::Running,
            "{status:?}"
        );
        assert_eq!(status.failed_tasks().count(), 0, "{status:?}");
        drop(sink);
    };
    let cleanup = async {
        connector.cleanup().await;
        drop_tables_and_offsets(&stack, &name).await;
        for (db, table) in [
            (&stack.pg_source_db, format!("{name}_old")),
            (&stack.pg_target_db, format!("{name}_old")),
            (&stack.pg_source_db, format!("{name}_ren")),
            (&stack.pg_target_db, format!("{name}_ren")),
            (&stack.pg_source_db, format!("{name}_sig")),
        ] {
            if let Ok(pg) = stack.pg(db).await {
                let _ = pg
                    .batch_execute(&format!("drop table if exists {table}"))
                    .await;
            }
        }
        if let Ok(target) = stack.pg(&stack.pg_target_db).await {
            let _ = target
                .execute(
                    "delete from lockstep.sink_topics where pipeline = $1",
                    &[&name],
                )
                .await;
        }
    };
    with_cleanup(body, cleanup).await;
}
