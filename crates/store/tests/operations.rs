//! The store on a real SQLite file: lifecycles, compare-and-set errors, history, the audit
//! chain against tampering done with SQL, migrations.

use lockstep_store::{
    AuditEntry, BreakReason, ListFilter, NewOperation, OperationId, OperationOutcome,
    OperationState, StepEvent, StepOutcome, StepState, StepStatus, Store, StoreError,
    SCHEMA_VERSION,
};
use rusqlite::Connection;
use serde_json::json;

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_dir(&dir.path().join("state")).expect("open store");
    (dir, store)
}

fn ddl(steps: &[&str], require_approval: bool) -> NewOperation {
    NewOperation {
        kind: "ddl".into(),
        subject: "public.orders".into(),
        requested_by: "alice".into(),
        plan: json!({
            "statements": ["ALTER TABLE orders RENAME COLUMN note TO remark"],
            "target": {"url": "postgres://replicator:hunter2@dr:5432/orders", "password": "hunter2"},
        }),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        require_approval,
    }
}

fn statuses(store: &Store, id: OperationId) -> Vec<StepStatus> {
    store
        .get(id)
        .expect("get")
        .steps
        .iter()
        .map(|s| s.state.status())
        .collect()
}

#[test]
fn an_operation_runs_with_approval_and_everything_is_audited() {
    let (_dir, store) = new_store();
    let id = store
        .create_operation(&ddl(&["pause", "source ddl", "resume"], true))
        .expect("create");
    let op = store.get(id).expect("get");
    assert_eq!(op.state, OperationState::PendingApproval);
    assert_eq!(op.steps.len(), 3);
    assert!(op
        .steps
        .iter()
        .all(|s| s.state == StepState::Pending && s.attempt == 0));
    assert_eq!(
        op.plan["target"]["password"], "hunter2",
        "the executor gets its plan as given"
    );

    // Not before approval.
    let err = store
        .start_operation(id, "executor")
        .expect_err("needs approval");
    assert!(matches!(err, StoreError::IllegalOperation { .. }), "{err}");
    assert!(err.to_string().contains("needs an approval first"), "{err}");

    store.approve(id, "bob").expect("approve");
    let op = store.get(id).expect("get");
    assert_eq!(op.state, OperationState::Approved);
    let approval = op.approval.expect("approval recorded");
    assert_eq!(approval.by, "bob");
    assert!(store
        .unfinished_operations()
        .expect("unfinished")
        .iter()
        .any(|o| o.id == id));

    store.start_operation(id, "executor").expect("start");
    // Steps run in order.
    let err = store
        .begin_step(id, 1, "executor")
        .expect_err("out of order");
    assert!(
        matches!(
            err,
            StoreError::StepOutOfOrder {
                blocking: 0,
                status: StepStatus::Pending,
                ..
            }
        ),
        "{err}"
    );
    let t0 = store.begin_step(id, 0, "executor").expect("begin 0");
    assert_eq!(t0.attempt, 1);
    let op = store.get(id).expect("get");
    assert!(matches!(
        op.steps[0].state,
        StepState::Running { attempt: 1, .. }
    ));
    assert_eq!(op.running_step().map(|s| s.index), Some(0));
    store
        .finish_step(
            &t0,
            StepOutcome::Succeeded(json!({"lsn": "0/16B3748"})),
            "executor",
        )
        .expect("finish 0");
    // A ticket is good once.
    let err = store
        .finish_step(&t0, StepOutcome::Failed("late".into()), "executor")
        .expect_err("finished already");
    assert!(matches!(err, StoreError::IllegalStep { .. }), "{err}");

    let t1 = store.begin_step(id, 1, "executor").expect("begin 1");
    store
        .finish_step(
            &t1,
            StepOutcome::Failed(
                "lock timeout; connecting to postgres://dba:s3cret@src/orders".into(),
            ),
            "executor",
        )
        .expect("fail 1");
    let op = store.get(id).expect("get");
    match &op.steps[1].state {
        StepState::Failed { error } => {
            assert!(
                error.contains("lock timeout") && !error.contains("s3cret"),
                "{error}"
            )
        }
        other => panic!("step 1 is {other:?}"),
    }
    let t1b = store.retry_step(id, 1, 1, "executor").expect("retry 1");
    assert_eq!(t1b.attempt, 2);
    store
        .finish_step(&t1b, StepOutcome::Succeeded(json!(null)), "executor")
        .expect("finish 1");
    let err = store
        .finish_operation(id, OperationOutcome::Succeeded, "executor")
        .expect_err("step 2 pending");
    assert!(err.to_string().contains("step 2 is pending"), "{err}");
    let t2 = store.begin_step(id, 2, "executor").expect("begin 2");
    store
        .finish_step(&t2, StepOutcome::Succeeded(json!({"ok": true})), "executor")
        .expect("finish 2");
    let state = store
        .finish_operation(id, OperationOutcome::Succeeded, "executor")
        .expect("succeed");
    assert_eq!(state, OperationState::Succeeded);
    let op = store.get(id).expect("get");
    assert!(op.finished_at.is_some());
    assert_eq!(
        op.steps[0].state,
        StepState::Succeeded {
            finished_at: op.steps[0].finished_at.expect("finished"),
            output: json!({"lsn": "0/16B3748"})
        }
    );
    assert!(store
        .unfinished_operations()
        .expect("unfinished")
        .is_empty());

    let history = store.history(id).expect("history");
    let actions: Vec<&str> = history.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "operation.created",
            "operation.approved",
            "operation.started",
            "step.started",
            "step.succeeded",
            "step.started",
            "step.failed",
            "step.retried",
            "step.succeeded",
            "step.started",
            "step.succeeded",
            "operation.succeeded",
        ]
    );
    assert_eq!(history[1].actor, "bob");
    let created = history[0].details_json();
    assert_eq!(
        created["plan"]["target"]["password"], "****",
        "the audit copy is scrubbed"
    );
    assert_eq!(
        created["plan"]["target"]["url"],
        "postgres://replicator:****@dr:5432/orders"
    );
    assert_eq!(history[4].details_json()["output"]["lsn"], "0/16B3748");
    assert!(history[4].details_json()["duration_ms"].is_u64());
    assert_eq!(history[7].details_json()["attempt"], 2);
    assert_eq!(history[7].details_json()["previous"], "failed");
    let all = store.audit_records(None, 0).expect("records");
    assert!(all
        .iter()
        .all(|r| !r.details.contains("hunter2") && !r.details.contains("s3cret")));

    let report = store.verify_chain().expect("verify");
    assert!(report.intact, "{report:?}");
    assert_eq!(report.records, history.len() as u64);

    let listed = store
        .list(&ListFilter {
            state: Some(OperationState::Succeeded),
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].steps, listed[0].steps_done), (3, 3));
}

#[test]
fn cancel_compensate_and_illegal_moves_are_typed() {
    let (_dir, store) = new_store();
    // Cancelled before it starts: nothing ran.
    let early = store.create_operation(&ddl(&["a"], true)).expect("create");
    assert_eq!(
        store.request_cancel(early, "alice").expect("cancel"),
        OperationState::Cancelled
    );
    let err = store.approve(early, "bob").expect_err("finished");
    assert!(err.to_string().contains("it is finished"), "{err}");

    // Cancelled while running: the running step still records its end, then compensation.
    let id = store
        .create_operation(&ddl(&["a", "b", "c"], false))
        .expect("create");
    store.start_operation(id, "executor").expect("start");
    let t0 = store.begin_step(id, 0, "executor").expect("begin");
    assert_eq!(
        store.request_cancel(id, "alice").expect("cancel"),
        OperationState::Cancelling
    );
    assert!(store.get(id).expect("get").cancel_requested());
    let err = store.request_cancel(id, "alice").expect_err("twice");
    assert!(err.to_string().contains("already requested"), "{err}");
    let err = store
        .begin_step(id, 1, "executor")
        .expect_err("no new work");
    assert!(
        matches!(
            err,
            StoreError::StepNotAllowed {
                state: OperationState::Cancelling,
                event: StepEvent::Start,
                ..
            }
        ),
        "{err}"
    );
    store
        .finish_step(&t0, StepOutcome::Succeeded(json!(1)), "executor")
        .expect("finish");
    let err = store
        .finish_operation(id, OperationOutcome::Compensated, "executor")
        .expect_err("step 0 not compensated");
    assert!(err.to_string().contains("step 0 is succeeded"), "{err}");
    store
        .begin_compensation(id, 0, "executor")
        .expect("compensate");
    store
        .finish_compensation(id, 0, Err("target unreachable".into()), "executor")
        .expect("compensation failed");
    assert!(matches!(
        &store.get(id).expect("get").steps[0].state,
        StepState::Failed { error } if error == "compensation failed: target unreachable"
    ));
    store
        .begin_compensation(id, 0, "executor")
        .expect("compensate again");
    store
        .finish_compensation(id, 0, Ok(()), "executor")
        .expect("compensated");
    for index in [1, 2] {
        store
            .skip_step(id, index, "operation cancelled", "executor")
            .expect("skip");
    }
    assert_eq!(
        statuses(&store, id),
        [
            StepStatus::Compensated,
            StepStatus::Skipped,
            StepStatus::Skipped
        ]
    );
    assert_eq!(
        store
            .finish_operation(id, OperationOutcome::Compensated, "executor")
            .expect("compensated"),
        OperationState::Compensated
    );

    // Unknown ids and steps.
    let err = store.get(OperationId(9_999)).expect_err("missing");
    assert!(
        matches!(err, StoreError::OperationNotFound(OperationId(9_999))),
        "{err}"
    );
    let err = store
        .begin_step(id, 7, "executor")
        .expect_err("missing step");
    assert!(
        matches!(err, StoreError::StepNotFound { count: 3, .. }),
        "{err}"
    );
    let err = store
        .create_operation(&NewOperation {
            subject: " ".into(),
            ..ddl(&[], false)
        })
        .expect_err("empty subject");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    assert!(store.verify_chain().expect("verify").intact);
}

#[test]
fn a_stale_ticket_cannot_overwrite_a_newer_attempt() {
    let (_dir, store) = new_store();
    let id = store.create_operation(&ddl(&["a"], false)).expect("create");
    store.start_operation(id, "executor").expect("start");
    let old = store.begin_step(id, 0, "executor-1").expect("begin");
    // executor-1 hangs; executor-2 finds the step running and retries it.
    let new = store.retry_step(id, 0, 1, "executor-2").expect("retry");
    assert_eq!(new.attempt, 2);
    let err = store
        .finish_step(&old, StepOutcome::Succeeded(json!("stale")), "executor-1")
        .expect_err("stale");
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 1,
                found: 2,
                status: StepStatus::Running,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("another executor has it"), "{err}");
    let err = store
        .retry_step(id, 0, 1, "executor-3")
        .expect_err("stale view");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    store
        .finish_step(&new, StepOutcome::Succeeded(json!("fresh")), "executor-2")
        .expect("finish");
    let op = store.get(id).expect("get");
    assert!(matches!(&op.steps[0].state, StepState::Succeeded { output, .. } if output == "fresh"));
}

#[test]
fn audit_entries_are_scrubbed_chained_and_listed() {
    let (_dir, store) = new_store();
    for i in 0..5 {
        store
            .append_audit(&AuditEntry::new(
                "watchdog",
                "connector.restarted",
                format!("orders-cdc-{i}"),
                json!({"cause": "retriable", "config": {"database.password": "pw", "database.hostname": "db"}}),
            ))
            .expect("append");
    }
    let all = store.audit_records(None, 0).expect("all");
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        all[0].details,
        r#"{"cause":"retriable","config":{"database.hostname":"db","database.password":"****"}}"#
    );
    let after = store.audit_records(Some(3), 10).expect("after 3");
    assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    let limited = store.audit_records(Some(0), 2).expect("first 2");
    assert_eq!(limited.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    let tail = store.audit_tail(2).expect("tail");
    assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    let report = store.verify_chain().expect("verify");
    assert!(report.intact);
    assert_eq!(report.last_seq, Some(5));
    assert_eq!(report.last_hash.as_deref(), Some(all[4].hash.as_str()));
}

/// Tampering the way someone with the file would: SQL on the database, past the triggers.
#[test]
fn sql_tampering_is_found_and_named() {
    type Tamper = (&'static str, &'static str, u64, fn(&BreakReason) -> bool);
    let cases: &[Tamper] = &[
        (
            "edit a detail",
            r#"UPDATE audit_log SET details = replace(details, '"attempt":2', '"attempt":20') WHERE seq = 3"#,
            3,
            |r| *r == BreakReason::Edited,
        ),
        (
            "delete a record",
            "DELETE FROM audit_log WHERE seq = 4",
            4,
            |r| *r == BreakReason::Missing { last_missing: 4 },
        ),
        (
            "delete the tail",
            "DELETE FROM audit_log WHERE seq >= 5",
            5,
            |r| *r == BreakReason::TruncatedTail { head_seq: 6 },
        ),
        (
            "swap two records",
            "UPDATE audit_log SET seq = -seq WHERE seq IN (2, 3);
             UPDATE audit_log SET seq = 5 + seq WHERE seq IN (-2, -3)",
            2,
            |r| *r == BreakReason::Reordered { original_seq: 3 },
        ),
        (
            "insert a record copied from another",
            "INSERT INTO audit_log SELECT seq + 1, ts, actor, action, subject, details, hash, hash
             FROM audit_log WHERE seq = 6",
            7,
            |r| *r == BreakReason::Edited,
        ),
    ];
    for (name, sql, seq, reason) in cases {
        let (dir, store) = new_store();
        for i in 0..6 {
            store
                .append_audit(&AuditEntry::new(
                    "watchdog",
                    "connector.restarted",
                    format!("orders-cdc-{i}"),
                    json!({"attempt": i}),
                ))
                .expect("append");
        }
        let path = store.path().to_path_buf();
        drop(store);
        let conn = Connection::open(&path).expect("open raw");
        let err = conn
            .execute("DELETE FROM audit_log WHERE seq = 1", [])
            .expect_err("append-only trigger");
        assert!(err.to_string().contains("append-only"), "{err}");
        conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
            .expect("drop triggers");
        conn.execute_batch(sql).expect(name);
        drop(conn);
        let store = Store::open_existing(&path).expect("reopen");
        let report = store.verify_chain().expect("verify");
        let broken = report.broken.expect(name);
        assert_eq!(broken.seq, *seq, "{name}: {broken}");
        assert!(reason(&broken.reason), "{name}: {broken}");
        drop(dir);
    }
}

/// A record forged with the right hash (by someone who read the encoding) still shows: the
/// store's head did not move.
#[test]
fn a_well_forged_append_shows_against_the_head() {
    let (_dir, store) = new_store();
    let last = store
        .append_audit(&AuditEntry::new(
            "alice",
            "ddl.applied",
            "public.orders",
            json!({}),
        ))
        .expect("append");
    let forged = lockstep_store::audit::next_record(
        Some(&lockstep_store::audit::Head {
            seq: last.seq,
            hash: last.hash.clone(),
        }),
        last.ts.clone(),
        "mallory",
        "ddl.approved",
        "public.orders",
        json!({}),
    );
    let conn = Connection::open(store.path()).expect("raw");
    conn.execute(
        "INSERT INTO audit_log (seq, ts, actor, action, subject, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        rusqlite::params![
            forged.seq as i64,
            forged.ts,
            forged.actor,
            forged.action,
            forged.subject,
            forged.details,
            forged.prev_hash,
            forged.hash
        ],
    )
    .expect("insert");
    let report = store.verify_chain().expect("verify");
    let broken = report.broken.expect("found");
    assert_eq!(broken.seq, 2);
    assert_eq!(
        broken.reason,
        BreakReason::AppendedOutsideStore { head_seq: 1 }
    );
}

#[test]
fn schema_versions_are_migrated_and_a_newer_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lockstep.db");
    let err = Store::open_existing(&path).expect_err("missing");
    assert!(matches!(err, StoreError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("--state-dir"), "{err}");

    let store = Store::open(&path).expect("create");
    drop(store);
    let conn = Connection::open(&path).expect("raw");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    drop(conn);
    let err = Store::open_existing(&path).expect_err("too new");
    match &err {
        StoreError::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("newer"), "{err}");

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database, just some bytes of text").expect("write");
    let err = Store::open_existing(&junk).expect_err("not sqlite");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[test]
fn a_reopened_store_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let id = {
        let store = Store::open_dir(dir.path()).expect("open");
        let id = store
            .create_operation(&ddl(&["a", "b"], false))
            .expect("create");
        store.start_operation(id, "executor").expect("start");
        let t = store.begin_step(id, 0, "executor").expect("begin");
        store
            .finish_step(&t, StepOutcome::Succeeded(json!({"rows": 3})), "executor")
            .expect("finish");
        id
    };
    let store = Store::open_dir(dir.path()).expect("reopen");
    let op = store.get(id).expect("get");
    assert_eq!(op.state, OperationState::Running);
    assert_eq!(op.steps[0].state.status(), StepStatus::Succeeded);
    let next = store.create_operation(&ddl(&[], false)).expect("create");
    assert!(next.0 > id.0, "ids are never reused");
    assert!(store.verify_chain().expect("verify").intact);
}
