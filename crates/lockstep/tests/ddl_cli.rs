//! `lockstep ddl plan|apply|resume|status` through the built binary, against the stack's
//! PostgreSQL (source and target databases), on tables of their own.

mod support;

use std::path::Path;
use std::process::Output;

use lockstep_ddl_exec::exec::new_operation;
use lockstep_ddl_exec::{prepare, DdlPipeline};
use lockstep_e2e::{unique_name, with_cleanup, Stack};
use lockstep_store::{OperationState, StepOutcome, Store};
use serde_json::Value;

use support::{column_names as columns, output_text as text};

fn lockstep(dir: &Path, args: &[&str]) -> Output {
    support::lockstep_command(dir)
        .args(args)
        .output()
        .expect("running the lockstep binary")
}

fn pipeline_yaml(stack: &Stack, prefix: &str, table: &str, extra: &str) -> String {
    support::pipeline_yaml(
        stack,
        prefix,
        &[format!("{prefix}.public.{table}")],
        "",
        extra,
    )
}

struct Fixture {
    table: String,
    other: String,
}

async fn setup(stack: &Stack, prefix: &str) -> Fixture {
    let table = prefix.replace('-', "_");
    let other = format!("{table}_other");
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&format!(
            "create table {table} (id bigint primary key, amount numeric(10,2));
             create table {other} (id bigint primary key);
             insert into {table} select g, g from generate_series(1, 10) g;"
        ))
        .await
        .expect("source tables");
    target
        .batch_execute(&format!(
            "create table {table} (id bigint primary key, amount numeric(10,2))"
        ))
        .await
        .expect("target table");
    Fixture { table, other }
}

async fn teardown(stack: &Stack, f: &Fixture) {
    if let Ok(s) = stack.pg_source().await {
        let _ = s
            .batch_execute(&format!(
                "drop table if exists {} ; drop table if exists {}",
                f.table, f.other
            ))
            .await;
    }
    if let Ok(t) = stack.pg(&stack.pg_target_db).await {
        let _ = t
            .batch_execute(&format!("drop table if exists {}", f.table))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_the_plan_and_bad_input_is_refused_with_nothing_applied() {
    let stack = Stack::get();
    let prefix = unique_name("ddlcli-plan").replace('_', "-");
    let f = setup(&stack, &prefix).await;
    let (table, other) = (f.table.clone(), f.other.clone());
    let body = async move {
        let stack = Stack::get();
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(d.join("p.yaml"), pipeline_yaml(&stack, &prefix, &table, "")).unwrap();

        let add = format!("ALTER TABLE {table} ADD COLUMN note text");
        let o = lockstep(
            d,
            &[
                "ddl",
                "plan",
                "--pipeline",
                "p.yaml",
                "--sql",
                &add,
                "-o",
                "json",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let plans: Value = serde_json::from_slice(&o.stdout).expect("json plans");
        assert_eq!(plans[0]["strategy"], "target_first", "{plans}");
        let kinds: Vec<&str> = plans[0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "audit_record",
                "target_ddl",
                "source_ddl",
                "verify_target_schema",
                "audit_record"
            ]
        );
        let o = lockstep(d, &["ddl", "plan", "--pipeline", "p.yaml", "--sql", &add]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("point of no return: step 3"));

        std::fs::write(d.join("big.sql"), "-- x\n".repeat(60_000)).unwrap();
        std::fs::write(
            d.join("nosource.yaml"),
            pipeline_yaml(&stack, &prefix, &table, "")
                .split("source:")
                .next()
                .unwrap(),
        )
        .unwrap();
        let hidden = format!("{add}; DELETE FROM {table}");
        let second_ddl = format!("{add}; DROP TABLE {other}");
        let outside = format!("ALTER TABLE {other} ADD COLUMN x int");
        let cases: Vec<(&str, Vec<&str>, &str)> = vec![
            (
                "garbage",
                vec!["--pipeline", "p.yaml", "--sql", "ALTER TABLEE x"],
                "syntax",
            ),
            (
                "hidden DML",
                vec!["--pipeline", "p.yaml", "--sql", &hidden],
                "statement 2",
            ),
            (
                "hidden DDL outside",
                vec!["--pipeline", "p.yaml", "--sql", &second_ddl],
                "not replicated",
            ),
            (
                "outside",
                vec!["--pipeline", "p.yaml", "--sql", &outside],
                "not replicated",
            ),
            (
                "oversized",
                vec!["--pipeline", "p.yaml", "--file", "big.sql"],
                "at most",
            ),
            (
                "no pipeline",
                vec!["--pipeline", "nope.yaml", "--sql", &add],
                "cannot read pipeline file",
            ),
            (
                "no source section",
                vec!["--pipeline", "nosource.yaml", "--sql", &add],
                "source: missing",
            ),
            (
                "empty",
                vec!["--pipeline", "p.yaml", "--sql", "  ;  "],
                "no statement",
            ),
        ];
        for (what, args, expect) in &cases {
            for verb in ["plan", "apply"] {
                let mut full = vec!["ddl", verb];
                full.extend(args.iter());
                let o = lockstep(d, &full);
                let t = text(&o);
                assert_eq!(o.status.code(), Some(1), "{what} ({verb}): {t}");
                assert!(
                    String::from_utf8_lossy(&o.stderr).contains(expect),
                    "{what} ({verb}): expected '{expect}' in {t}"
                );
            }
        }
        // Nothing was applied, and no operation was recorded.
        let source = stack.pg_source().await.expect("source");
        assert_eq!(columns(&source, &table).await, ["id", "amount"]);
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        assert_eq!(columns(&target, &table).await, ["id", "amount"]);
        if d.join("state/lockstep.db").exists() {
            let store = Store::open_dir(&d.join("state")).unwrap();
            assert!(store.list(&Default::default()).unwrap().is_empty());
        }
    };
    with_cleanup(body, async move { teardown(&stack, &f).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_runs_target_first_and_compensates_when_the_source_lock_is_not_granted() {
    let stack = Stack::get();
    let prefix = unique_name("ddlcli-apply").replace('_', "-");
    let f = setup(&stack, &prefix).await;
    let table = f.table.clone();
    let body = async move {
        let stack = Stack::get();
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(
            d.join("p.yaml"),
            pipeline_yaml(
                &stack,
                &prefix,
                &table,
                "  lock_timeout_ms: 200\n  ddl_retries: 1\n",
            ),
        )
        .unwrap();
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");

        let add = format!("ALTER TABLE {table} ADD COLUMN note text");
        let o = lockstep(
            d,
            &[
                "ddl",
                "apply",
                "--pipeline",
                "p.yaml",
                "--sql",
                &add,
                "--actor",
                "alice",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);
        assert_eq!(columns(&target, &table).await, ["id", "amount", "note"]);

        // A writer holds the table: the DDL's lock is not granted within lock_timeout, the
        // retries run out, and the target change made before it is undone.
        let mut locker = stack.pg_source().await.expect("locker");
        let tx = locker.transaction().await.expect("tx");
        tx.batch_execute(&format!("LOCK TABLE {table} IN ROW EXCLUSIVE MODE"))
            .await
            .expect("lock");
        let add2 = format!("ALTER TABLE {table} ADD COLUMN code varchar(10)");
        let o = lockstep(
            d,
            &[
                "ddl",
                "apply",
                "--pipeline",
                "p.yaml",
                "--sql",
                &add2,
                "-o",
                "json",
            ],
        );
        tx.rollback().await.expect("release");
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let view: Value = serde_json::from_slice(&o.stdout).expect("json");
        let op = &view["operations"][0];
        assert_eq!(op["state"], "compensated", "{view}");
        assert_eq!(op["outcome"]["outcome"], "compensated", "{view}");
        let statuses: Vec<&str> = op["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            [
                "compensated",
                "compensated",
                "compensated",
                "skipped",
                "skipped"
            ]
        );
        assert!(
            op["outcome"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("lock_timeout"),
            "{view}"
        );
        assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);
        assert_eq!(
            columns(&target, &table).await,
            ["id", "amount", "note"],
            "the target column was dropped again"
        );

        // Expand / contract waits for the sink, which needs the Connect cluster: without one
        // the plan is refused before anything is recorded or run.
        let drop = format!("ALTER TABLE {table} DROP COLUMN amount");
        let o = lockstep(d, &["ddl", "apply", "--pipeline", "p.yaml", "--sql", &drop]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("needs the Kafka Connect cluster"),
            "{}",
            text(&o)
        );
        assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);
        // A boundary plan (connector pause, sink hold) is refused too.
        let rename = format!("ALTER TABLE {table} RENAME COLUMN amount TO total");
        let o = lockstep(
            d,
            &["ddl", "apply", "--pipeline", "p.yaml", "--sql", &rename],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(
                "step 2 (pause_connector) of the boundary plan needs the Kafka Connect cluster"
            ),
            "{}",
            text(&o)
        );
        assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);

        let o = lockstep(d, &["ddl", "status", "-o", "json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let list: Value = serde_json::from_slice(&o.stdout).unwrap();
        let states: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["compensated", "succeeded"]);
        let o = lockstep(d, &["audit", "verify"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let o = lockstep(d, &["ddl", "history", "1"]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("ddl.begin"),
            "{}",
            text(&o)
        );
    };
    with_cleanup(body, async move { teardown(&stack, &f).await }).await;
}

/// A crash is simulated by recording steps as started (and doing their work) without
/// recording their end: `ddl resume` must find out what already ran, finish the operation,
/// and say what it decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_finishes_operations_interrupted_in_a_target_or_source_step() {
    let stack = Stack::get();
    let prefix = unique_name("ddlcli-resume").replace('_', "-");
    let f = setup(&stack, &prefix).await;
    let table = f.table.clone();
    let body = async move {
        let stack = Stack::get();
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let path = d.join("p.yaml");
        std::fs::write(&path, pipeline_yaml(&stack, &prefix, &table, "")).unwrap();
        let pipeline = DdlPipeline::load(&path).expect("pipeline");
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        let store = Store::open_dir(&d.join("state")).expect("store");

        // Operation 1: crashed while its target DDL (step 2) ran, after the change was made.
        let add_a = format!("ALTER TABLE {table} ADD COLUMN a text");
        let plan_a = prepare(&pipeline, &add_a)
            .await
            .unwrap()
            .expect("plannable")
            .plans;
        let a = store
            .create_operation(&new_operation(path.to_str().unwrap(), &plan_a[0], "test").unwrap())
            .unwrap();
        store.start_operation(a, "test").unwrap();
        let t = store.begin_step(a, 0, "test").unwrap();
        store
            .finish_step(&t, StepOutcome::Succeeded(Value::Null), "test")
            .unwrap();
        store.begin_step(a, 1, "test").unwrap();
        target
            .batch_execute(&format!("ALTER TABLE {table} ADD COLUMN a text"))
            .await
            .unwrap();

        let o = lockstep(d, &["ddl", "resume"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(
            out.contains("recovered operation 1 step 2 (target_ddl)"),
            "{out}"
        );
        assert_eq!(
            store.get(a).unwrap().state,
            OperationState::Succeeded,
            "{out}"
        );
        assert_eq!(columns(&source, &table).await, ["id", "amount", "a"]);

        // Operation 2: crashed while its source DDL (step 3) ran, after it committed.
        let add_b = format!("ALTER TABLE {table} ADD COLUMN b integer");
        let plan_b = prepare(&pipeline, &add_b)
            .await
            .unwrap()
            .expect("plannable")
            .plans;
        let b = store
            .create_operation(&new_operation(path.to_str().unwrap(), &plan_b[0], "test").unwrap())
            .unwrap();
        store.start_operation(b, "test").unwrap();
        for step in 0..2 {
            let t = store.begin_step(b, step, "test").unwrap();
            if step == 1 {
                target
                    .batch_execute(&format!("ALTER TABLE {table} ADD COLUMN b integer"))
                    .await
                    .unwrap();
            }
            store
                .finish_step(&t, StepOutcome::Succeeded(Value::Null), "test")
                .unwrap();
        }
        store.begin_step(b, 2, "test").unwrap();
        source.batch_execute(&add_b).await.unwrap();

        // `apply` resumes unfinished operations before planning anything new.
        let add_c = format!("ALTER TABLE {table} ADD COLUMN c date");
        let o = lockstep(
            d,
            &["ddl", "apply", "--pipeline", "p.yaml", "--sql", &add_c],
        );
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(out.contains("the source already shows the change"), "{out}");
        assert_eq!(store.get(b).unwrap().state, OperationState::Succeeded);
        assert_eq!(
            columns(&source, &table).await,
            ["id", "amount", "a", "b", "c"]
        );
        assert_eq!(
            columns(&target, &table).await,
            ["id", "amount", "a", "b", "c"]
        );
        let o = lockstep(d, &["audit", "verify"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        println!("{out}");
    };
    with_cleanup(body, async move { teardown(&stack, &f).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_approval_waits_for_approve_and_cancel_drops_an_awaiting_operation() {
    let stack = Stack::get();
    let prefix = unique_name("ddlcli-approve").replace('_', "-");
    let f = setup(&stack, &prefix).await;
    let table = f.table.clone();
    let body = async move {
        let stack = Stack::get();
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(d.join("p.yaml"), pipeline_yaml(&stack, &prefix, &table, "")).unwrap();
        let add = format!("ALTER TABLE {table} ADD COLUMN note text");
        let apply = [
            "ddl",
            "apply",
            "--pipeline",
            "p.yaml",
            "--sql",
            &add,
            "--require-approval",
            "--actor",
            "alice",
        ];

        // Recorded with its plan, nothing runs, exit 0 with how to approve.
        let o = lockstep(d, &apply);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(out.contains("lockstep ddl approve 1"), "{out}");
        let source = stack.pg_source().await.expect("source");
        assert_eq!(columns(&source, &table).await, ["id", "amount"]);
        let store = Store::open_dir(&d.join("state")).unwrap();
        assert_eq!(
            store.get(lockstep_store::OperationId(1)).unwrap().state,
            OperationState::PendingApproval
        );

        // Cancel drops it at once; a second cancel is refused with the reason.
        let o = lockstep(d, &["ddl", "cancel", "1", "--actor", "bob"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(out.contains("operation 1 cancelled"), "{out}");
        let o = lockstep(d, &["ddl", "cancel", "1"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(out.contains("already cancelled"), "{out}");
        let o = lockstep(d, &["ddl", "approve", "1"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));

        // Approve runs it, recorded with the approver.
        let o = lockstep(d, &apply);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let o = lockstep(d, &["ddl", "approve", "2", "--actor", "carol"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}");
        let op = store.get(lockstep_store::OperationId(2)).unwrap();
        assert_eq!(op.state, OperationState::Succeeded, "{out}");
        assert_eq!(op.approval.map(|s| s.by).as_deref(), Some("carol"));
        assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);
        let o = lockstep(d, &["ddl", "cancel", "2"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        println!("{out}");
    };
    with_cleanup(body, async move { teardown(&stack, &f).await }).await;
}
