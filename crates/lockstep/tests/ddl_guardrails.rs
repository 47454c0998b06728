//! `lockstep ddl apply` guardrails against the real stack: a Debezium connector of its own on
//! a table of its own. A PAUSED connector refuses the DDL (nothing applied, the refusal
//! audited); a sink lag over `max_lag_records` refuses it too, `--force-guardrail sink_lag`
//! overrides that deliberately (audited); with the connector RUNNING again it applies.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use lockstep_connect::ExpectedState;
use lockstep_e2e::{eventually, unique_name, with_cleanup, Stack};
use lockstep_store::Store;

use support::{column_names as columns, output_text as text};

fn lockstep(dir: &Path, connect_url: &str, args: &[&str]) -> Output {
    support::lockstep_command(dir)
        .arg("--connect-url")
        .arg(connect_url)
        .args(args)
        .output()
        .expect("running the lockstep binary")
}

fn pipeline_yaml(stack: &Stack, name: &str, table: &str, extra: &str) -> String {
    support::pipeline_yaml(stack, name, &[format!("{name}.public.{table}")], "", extra)
}

fn audit_actions(dir: &Path) -> Vec<(String, String)> {
    let store = Store::open_existing(&dir.join("state").join("lockstep.db")).expect("store");
    assert!(store.verify_chain().expect("chain").intact, "audit chain");
    store
        .audit_records(None, 0)
        .expect("audit")
        .into_iter()
        .map(|r| (r.action, r.details))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_connector_or_a_lagging_sink_refuses_the_ddl_and_resume_lets_it_apply() {
    let stack = Stack::get();
    let name = unique_name("ddlguard").replace('_', "-");
    let table = name.replace('-', "_");
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&format!(
            "create table {table} (id bigint primary key, amount numeric(10,2));
             insert into {table} select g, g from generate_series(1, 10) g;"
        ))
        .await
        .expect("source table");
    target
        .batch_execute(&format!(
            "create table {table} (id bigint primary key, amount numeric(10,2))"
        ))
        .await
        .expect("target table");
    let started = Instant::now();
    let connector = stack
        .start_pg_connector(&name, &[&table], &[])
        .await
        .expect("connector");
    eprintln!("connector RUNNING after {:?}", started.elapsed());

    let body = {
        let (name, table) = (name.clone(), table.clone());
        async move {
            let stack = Stack::get();
            let url = stack.connect_url.clone();
            let connect = stack.connect_client().expect("connect client");
            let source = stack.pg_source().await.expect("source");
            let target = stack.pg(&stack.pg_target_db).await.expect("target");
            let dir = tempfile::tempdir().expect("tmp");
            let d = dir.path();
            std::fs::write(d.join("p.yaml"), pipeline_yaml(&stack, &name, &table, "")).unwrap();
            std::fs::write(
                d.join("lag.yaml"),
                pipeline_yaml(
                    &stack,
                    &name,
                    &table,
                    "  guardrails: {max_lag_records: 5, max_lag_seconds: 3600}\n",
                ),
            )
            .unwrap();
            // The snapshot's ten rows are in the topic (no sink runs: all ten are lag).
            let topic = format!("{name}.public.{table}");
            let consumer = stack.consumer().expect("consumer");
            eventually("the snapshot in the topic", Duration::from_secs(60), || {
                let ends = lockstep_e2e::end_offsets(&consumer, &topic);
                async move { Ok(ends?.values().sum::<i64>().ge(&10).then_some(())) }
            })
            .await
            .expect("snapshot records");

            // 1. PAUSED: refused, every reason, nothing applied, the refusal audited.
            connect.pause_connector(&name).await.expect("pause");
            connect
                .wait_for_state(&name, &ExpectedState::paused(), Duration::from_secs(30))
                .await
                .expect("paused");
            let add = format!("ALTER TABLE {table} ADD COLUMN note text");
            let t = Instant::now();
            let o = lockstep(
                d,
                &url,
                &["ddl", "apply", "--pipeline", "p.yaml", "--sql", &add],
            );
            eprintln!("refused apply took {:?}", t.elapsed());
            let out = text(&o);
            assert_eq!(o.status.code(), Some(1), "{out}");
            assert!(out.contains("refused (guardrails)"), "{out}");
            assert!(
                out.contains(&format!("connector_running: connector {name} is PAUSED")),
                "{out}"
            );
            assert!(out.contains("lockstep connect resume"), "{out}");
            assert!(out.contains("--force-guardrail connector_running"), "{out}");
            assert_eq!(columns(&source, &table).await, ["id", "amount"]);
            assert_eq!(columns(&target, &table).await, ["id", "amount"]);
            let audit = audit_actions(d);
            assert!(
                audit
                    .iter()
                    .any(|(a, details)| a == "ddl.guardrails_refused" && details.contains("PAUSED")),
                "{audit:?}"
            );
            assert!(
                !audit.iter().any(|(a, _)| a.starts_with("operation.")),
                "nothing recorded: {audit:?}"
            );

            // 2. RUNNING again, but the sink (none runs) is 10 records behind a limit of 5.
            connect.resume_connector(&name).await.expect("resume");
            connect
                .wait_for_state(&name, &ExpectedState::running(), Duration::from_secs(60))
                .await
                .expect("running");
            let o = lockstep(
                d,
                &url,
                &["ddl", "apply", "--pipeline", "lag.yaml", "--sql", &add],
            );
            let out = text(&o);
            assert_eq!(o.status.code(), Some(1), "{out}");
            assert!(out.contains("sink_lag: the sink has 10 record(s) not applied yet, more than max_lag_records 5"), "{out}");
            assert!(!out.contains("connector_running:"), "{out}");
            assert_eq!(columns(&source, &table).await, ["id", "amount"]);

            // 3. The lag guardrail overridden deliberately: applied, the override audited.
            let o = lockstep(
                d,
                &url,
                &[
                    "ddl",
                    "apply",
                    "--pipeline",
                    "lag.yaml",
                    "--sql",
                    &add,
                    "--force-guardrail",
                    "sink_lag",
                    "--actor",
                    "carol",
                ],
            );
            let out = text(&o);
            assert_eq!(o.status.code(), Some(0), "{out}");
            assert!(out.contains("guardrail overridden by carol"), "{out}");
            assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);
            assert_eq!(columns(&target, &table).await, ["id", "amount", "note"]);
            let audit = audit_actions(d);
            assert!(
                audit
                    .iter()
                    .any(|(a, details)| a == "ddl.guardrails_overridden"
                        && details.contains("sink_lag")),
                "{audit:?}"
            );

            // 4. Within the default limits and RUNNING: applies without an override.
            let add2 = format!("ALTER TABLE {table} ADD COLUMN code varchar(10)");
            let o = lockstep(
                d,
                &url,
                &["ddl", "apply", "--pipeline", "p.yaml", "--sql", &add2],
            );
            let out = text(&o);
            assert_eq!(o.status.code(), Some(0), "{out}");
            assert_eq!(
                columns(&source, &table).await,
                ["id", "amount", "note", "code"]
            );
        }
    };
    let cleanup = {
        let table = table.clone();
        async move {
            connector.cleanup().await;
            let stack = Stack::get();
            support::drop_table(&stack, &table).await;
        }
    };
    with_cleanup(body, cleanup).await;
    eprintln!("whole test took {:?}", started.elapsed());
}
