//! `lockstep audit show|verify` on a store written through the library, then tampered with
//! the way someone holding the file would (SQL through rusqlite, past the append-only
//! triggers): outputs, messages and exit codes.

use std::path::Path;
use std::process::{Command, Output};

use lockstep_store::{AuditEntry, NewOperation, StepOutcome, Store};
use serde_json::{json, Value};

fn lockstep(state_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .env("LOCKSTEP_STATE_DIR", state_dir)
        .env_remove("LOCKSTEP_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("running the lockstep binary")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Five records: an operation's lifecycle and a watchdog action.
fn write_records(state_dir: &Path) {
    let store = Store::open_dir(state_dir).expect("store");
    let id = store
        .create_operation(&NewOperation {
            kind: "ddl".into(),
            subject: "public.orders".into(),
            requested_by: "alice".into(),
            plan: json!({"statements": ["ALTER TABLE orders ADD COLUMN note text"]}),
            steps: vec!["source ddl".into()],
            require_approval: false,
        })
        .expect("create");
    store.start_operation(id, "executor").expect("start");
    let ticket = store.begin_step(id, 0, "executor").expect("begin");
    store
        .finish_step(
            &ticket,
            StepOutcome::Succeeded(json!({"lsn": "0/1"})),
            "executor",
        )
        .expect("finish");
    store
        .append_audit(&AuditEntry::new(
            "watchdog",
            "connector.restarted",
            "orders-cdc",
            json!({"cause": "connection refused", "database.password": "hunter2"}),
        ))
        .expect("append");
}

#[test]
fn verify_passes_then_names_the_tampered_seq() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    write_records(&state);

    let output = lockstep(&state, &["audit", "verify"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("intact") && stdout.contains('5'),
        "{stdout}"
    );

    let conn = rusqlite::Connection::open(state.join("lockstep.db")).expect("open the file");
    conn.execute_batch("DROP TRIGGER audit_log_no_update")
        .expect("drop the append-only trigger");
    let changed = conn
        .execute(
            "UPDATE audit_log SET details = replace(details, '0/1', '0/2') WHERE seq = 4",
            [],
        )
        .expect("tamper");
    assert_eq!(changed, 1);
    drop(conn);

    let output = lockstep(&state, &["audit", "verify"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("broken at seq 4") && stderr.contains("edited"),
        "{stderr}"
    );
    assert!(stdout.contains("BROKEN"), "{stdout}");

    let output = lockstep(&state, &["audit", "verify", "-o", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["intact"], false);
    assert_eq!(report["broken"]["seq"], 4);
    assert_eq!(report["broken"]["reason"]["kind"], "edited");
    assert_eq!(report["last_seq"], 3, "records before the break verify");
}

#[test]
fn show_lists_records_in_every_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    write_records(&state);

    let output = lockstep(&state, &["audit", "show"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(
        lines[0].contains("SEQ") && lines[0].contains("ACTION"),
        "{stdout}"
    );
    assert!(lines[1].contains("operation.created"), "{stdout}");
    assert!(lines[5].contains("connector.restarted") && lines[5].contains("watchdog"));
    assert!(
        !stdout.contains("hunter2"),
        "a secret reached the log: {stdout}"
    );

    let output = lockstep(
        &state,
        &[
            "audit", "show", "--since", "2", "--limit", "2", "-o", "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    let records: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let seqs: Vec<u64> = records
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [3, 4]);
    assert_eq!(records[1]["details"]["output"]["lsn"], "0/1");
    assert_eq!(records[1]["action"], "step.succeeded");
    assert_eq!(records[0]["hash"].as_str().map(str::len), Some(64));

    let output = lockstep(&state, &["audit", "show", "--limit", "1", "-o", "yaml"]);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("seq: 5") && stdout.contains("'****'"),
        "{stdout}"
    );

    // --state-dir wins over the environment.
    let output = lockstep(
        Path::new("/nonexistent"),
        &[
            "audit",
            "show",
            "--state-dir",
            state.to_str().expect("path"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
}

#[test]
fn a_missing_store_is_an_error_that_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("nothing-here");
    for verb in ["show", "verify"] {
        let output = lockstep(&state, &["audit", verb]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{verb}: {stderr}");
        assert!(
            stderr.contains("no lockstep store") && stderr.contains("nothing-here"),
            "{verb}: {stderr}"
        );
        assert!(!state.exists(), "{verb} must not create a store");
    }
    let output = lockstep(&state, &["audit", "show", "--limit", "many"]);
    assert_eq!(output.status.code(), Some(64), "a usage error");
}
