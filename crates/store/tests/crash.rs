//! Crash safety: a child process (this test binary, re-run as `crash_child`) works on the
//! store and is SIGKILLed; the parent reopens the file and checks what a restarted executor
//! relies on: the interrupted step shows as `Running` in `unfinished_operations()`, the audit
//! chain is intact, and state and audit agree on every operation.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockstep_store::{
    AuditEntry, NewOperation, OperationId, OperationOutcome, OperationState, StepOutcome,
    StepState, StepStatus, Store,
};
use serde_json::json;

const CHILD_ENV: &str = "LOCKSTEP_STORE_CRASH_CHILD";

fn new_op(steps: usize) -> NewOperation {
    NewOperation {
        kind: "ddl".into(),
        subject: "public.orders".into(),
        requested_by: "crash-test".into(),
        plan: json!({"statements": ["ALTER TABLE orders RENAME COLUMN a TO b"]}),
        steps: (0..steps).map(|i| format!("step {i}")).collect(),
        require_approval: false,
    }
}

/// The child: `begin:<path>` stops inside step 1 and waits to be killed; `loop:<path>` runs
/// operations back to back until it is killed.
#[test]
#[ignore = "child process of the crash tests: runs only when they spawn it"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, path) = spec.split_once(':').expect("mode:path");
    let store = Store::open(Path::new(path)).expect("child opens the store");
    match mode {
        "begin" => {
            let id = store.create_operation(&new_op(3)).expect("create");
            store.start_operation(id, "executor").expect("start");
            let t0 = store.begin_step(id, 0, "executor").expect("begin 0");
            store
                .finish_step(
                    &t0,
                    StepOutcome::Succeeded(json!({"lsn": "0/1"})),
                    "executor",
                )
                .expect("finish 0");
            store.begin_step(id, 1, "executor").expect("begin 1");
            println!("READY {}", id.0);
            std::thread::sleep(Duration::from_secs(120));
        }
        "loop" => {
            let mut announced = false;
            for n in 0u64.. {
                let id = store.create_operation(&new_op(3)).expect("create");
                store.start_operation(id, "executor").expect("start");
                for index in 0..3 {
                    let ticket = store.begin_step(id, index, "executor").expect("begin");
                    store
                        .finish_step(&ticket, StepOutcome::Succeeded(json!({"n": n})), "executor")
                        .expect("finish");
                }
                store
                    .append_audit(&AuditEntry::new(
                        "watchdog",
                        "connector.restarted",
                        "orders-cdc",
                        json!({"n": n}),
                    ))
                    .expect("append");
                store
                    .finish_operation(id, OperationOutcome::Succeeded, "executor")
                    .expect("finish op");
                if !announced {
                    println!("STARTED");
                    announced = true;
                }
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn_child(mode: &str, path: &Path) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the child");
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    (child, stdout)
}

/// Reads the child's stdout until a line contains `prefix` (the test harness may print its
/// own text before it on the same line); returns the line from `prefix` on.
fn wait_for(stdout: &mut BufReader<std::process::ChildStdout>, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        let n = stdout.read_line(&mut line).expect("reading the child");
        assert!(n > 0, "the child exited before printing {prefix}");
        if let Some(at) = line.find(prefix) {
            return line[at..].trim().to_string();
        }
    }
    panic!("the child did not print {prefix} within 60 s");
}

fn sigkill(mut child: Child) {
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reaping the child");
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL: {status}"
    );
}

/// What the audit log says each step and the operation are, replayed from its records.
fn replay(store: &Store, id: OperationId) -> (OperationState, Vec<(StepStatus, u32)>) {
    let op = store.get(id).expect("get");
    let mut state = OperationState::Approved;
    let mut steps = vec![(StepStatus::Pending, 0u32); op.steps.len()];
    for record in store.history(id).expect("history") {
        let d = record.details_json();
        if let Some(index) = d["step"].as_u64() {
            let status = match record.action.as_str() {
                "step.started" | "step.retried" => StepStatus::Running,
                "step.succeeded" => StepStatus::Succeeded,
                "step.failed" | "step.compensation_failed" => StepStatus::Failed,
                "step.skipped" => StepStatus::Skipped,
                "step.compensating" => StepStatus::Compensating,
                "step.compensated" => StepStatus::Compensated,
                other => panic!("unexpected step action {other}"),
            };
            let attempt = d["attempt"].as_u64().expect("attempt") as u32;
            steps[index as usize] = (status, attempt);
        } else if let Some(to) = d["to"].as_str() {
            state = OperationState::parse(to).expect("state name");
        } else if let Some(initial) = d["state"].as_str() {
            state = OperationState::parse(initial).expect("state name");
        }
    }
    (state, steps)
}

fn assert_state_and_audit_agree(store: &Store) {
    let ops = store
        .list(&lockstep_store::ListFilter::default())
        .expect("list");
    for summary in ops {
        let op = store.get(summary.id).expect("get");
        let (state, steps) = replay(store, op.id);
        assert_eq!(state, op.state, "operation {}: state vs audit", op.id);
        let stored: Vec<(StepStatus, u32)> = op
            .steps
            .iter()
            .map(|s| (s.state.status(), s.attempt))
            .collect();
        assert_eq!(steps, stored, "operation {}: steps vs audit", op.id);
    }
}

#[test]
fn a_step_interrupted_by_sigkill_shows_as_running_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lockstep.db");
    let (child, mut stdout) = spawn_child("begin", &path);
    let ready = wait_for(&mut stdout, "READY ");
    let id = OperationId(
        ready
            .trim_start_matches("READY ")
            .parse()
            .expect("operation id"),
    );
    sigkill(child);

    let store = Store::open(&path).expect("reopen after the crash");
    let unfinished = store.unfinished_operations().expect("unfinished");
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    let op = &unfinished[0];
    assert_eq!((op.id, op.state), (id, OperationState::Running));
    let running = op.running_step().expect("the interrupted step");
    assert_eq!(running.index, 1);
    assert!(matches!(
        running.state,
        StepState::Running { attempt: 1, .. }
    ));
    assert_eq!(op.steps[0].state.status(), StepStatus::Succeeded);
    assert_eq!(op.steps[2].state.status(), StepStatus::Pending);
    let report = store.verify_chain().expect("verify");
    assert!(report.intact, "{report:?}");
    let last = store.audit_tail(1).expect("tail");
    assert_eq!(last[0].action, "step.started");
    assert_eq!(last[0].details_json()["step"], 1);
    assert_state_and_audit_agree(&store);

    // The restarted executor resumes the step (a retry) and completes the operation.
    let ticket = store.retry_step(id, 1, 1, "executor").expect("resume");
    assert_eq!(ticket.attempt, 2);
    store
        .finish_step(&ticket, StepOutcome::Succeeded(json!(null)), "executor")
        .expect("finish 1");
    let t2 = store.begin_step(id, 2, "executor").expect("begin 2");
    store
        .finish_step(&t2, StepOutcome::Succeeded(json!(null)), "executor")
        .expect("finish 2");
    store
        .finish_operation(id, OperationOutcome::Succeeded, "executor")
        .expect("succeed");
    assert!(store
        .unfinished_operations()
        .expect("unfinished")
        .is_empty());
    assert!(store.verify_chain().expect("verify").intact);
    assert_state_and_audit_agree(&store);
}

#[test]
fn sigkill_at_random_points_never_breaks_the_chain_or_splits_state_from_audit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lockstep.db");
    let mut previous_records = 0;
    for round in 0..6u64 {
        let (child, mut stdout) = spawn_child("loop", &path);
        wait_for(&mut stdout, "STARTED");
        // A different point in the write cycle each round.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(20 + (nanos ^ (round * 7919)) % 180));
        sigkill(child);

        let store = Store::open(&path).expect("reopen after the crash");
        let report = store.verify_chain().expect("verify");
        assert!(report.intact, "round {round}: {report:?}");
        assert!(
            report.records > previous_records,
            "round {round}: the child wrote nothing"
        );
        previous_records = report.records;
        assert_state_and_audit_agree(&store);
        // Whatever the child left mid-way is what the executor would pick up.
        for op in store.unfinished_operations().expect("unfinished") {
            assert!(
                matches!(op.state, OperationState::Approved | OperationState::Running),
                "round {round}: {:?}",
                op.state
            );
            assert!(
                op.steps
                    .iter()
                    .filter(|s| s.state.status() == StepStatus::Running)
                    .count()
                    <= 1,
                "round {round}: at most one step runs at a time"
            );
        }
    }
}
