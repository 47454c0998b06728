//! Two connections to one file (as two executors in two processes would have) race on the
//! same compare-and-set: exactly one wins, the other gets a typed error, and the audit chain
//! records only the winner.

use std::sync::Barrier;

use lockstep_store::{
    AuditEntry, NewOperation, OperationId, StepEvent, StepOutcome, StepStatus, StepTicket, Store,
    StoreError,
};
use serde_json::json;

const ROUNDS: usize = 25;

fn op() -> NewOperation {
    NewOperation {
        kind: "ddl".into(),
        subject: "public.orders".into(),
        requested_by: "alice".into(),
        plan: json!({}),
        steps: vec!["only".into()],
        require_approval: false,
    }
}

/// Runs `f` on both stores at the same instant; returns both results.
fn race<T: Send>(
    a: &Store,
    b: &Store,
    f: impl Fn(&Store, &str) -> Result<T, StoreError> + Sync,
) -> [Result<T, StoreError>; 2] {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let ha = scope.spawn(|| {
            barrier.wait();
            f(a, "executor-a")
        });
        let hb = scope.spawn(|| {
            barrier.wait();
            f(b, "executor-b")
        });
        [ha.join().expect("thread a"), hb.join().expect("thread b")]
    })
}

fn one_winner<T: std::fmt::Debug>(results: [Result<T, StoreError>; 2]) -> (T, StoreError) {
    let [a, b] = results;
    match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        (a, b) => panic!("exactly one must win: {a:?} / {b:?}"),
    }
}

#[test]
fn racing_on_one_step_has_exactly_one_winner() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lockstep.db");
    let a = Store::open(&path).expect("connection a");
    let b = Store::open(&path).expect("connection b");
    let (mut wins_a, mut wins_b) = (0, 0);
    for _ in 0..ROUNDS {
        let id: OperationId = a.create_operation(&op()).expect("create");
        b.start_operation(id, "executor").expect("start");

        // Both try to start the pending step.
        let (ticket, lost) = one_winner(race(&a, &b, |s, who| s.begin_step(id, 0, who)));
        assert_eq!(ticket.attempt, 1);
        assert!(
            matches!(&lost, StoreError::IllegalStep { transition, .. }
                if transition.from == StepStatus::Running && transition.event == StepEvent::Start),
            "{lost}"
        );

        // Both saw attempt 1 running (say, after a restart) and try to take it over.
        let (retried, lost): (StepTicket, _) =
            one_winner(race(&a, &b, |s, who| s.retry_step(id, 0, 1, who)));
        assert_eq!(retried.attempt, 2);
        assert!(
            matches!(
                lost,
                StoreError::Conflict {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{lost}"
        );

        // Both finish with the same ticket: the first result stands.
        let outcome_of = |who: &str| StepOutcome::Succeeded(json!({"by": who}));
        let (_, lost) = one_winner(race(&a, &b, |s, who| {
            s.finish_step(&retried, outcome_of(who), who)
        }));
        assert!(matches!(lost, StoreError::IllegalStep { .. }), "{lost}");

        let history = a.history(id).expect("history");
        let winners: Vec<&str> = history
            .iter()
            .filter(|r| r.action == "step.started")
            .map(|r| r.actor.as_str())
            .collect();
        assert_eq!(winners.len(), 1, "one start recorded: {winners:?}");
        match winners[0] {
            "executor-a" => wins_a += 1,
            _ => wins_b += 1,
        }
        assert_eq!(
            history
                .iter()
                .filter(|r| r.action == "step.succeeded")
                .count(),
            1
        );
    }
    assert_eq!(wins_a + wins_b, ROUNDS);
    assert!(a.verify_chain().expect("verify").intact);
}

#[test]
fn concurrent_appends_from_two_connections_form_one_chain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lockstep.db");
    let a = Store::open(&path).expect("connection a");
    let b = Store::open(&path).expect("connection b");
    const EACH: u64 = 150;
    let [ra, rb] = race(&a, &b, |s, who| {
        for i in 0..EACH {
            s.append_audit(&AuditEntry::new(
                who,
                "alert.raised",
                "orders-cdc",
                json!({"i": i}),
            ))?;
        }
        Ok(())
    });
    ra.expect("appends a");
    rb.expect("appends b");
    let records = b.audit_records(None, 0).expect("records");
    assert_eq!(records.len() as u64, 2 * EACH);
    assert!(records
        .iter()
        .enumerate()
        .all(|(i, r)| r.seq == i as u64 + 1));
    for who in ["executor-a", "executor-b"] {
        let mine: Vec<u64> = records
            .iter()
            .filter(|r| r.actor == who)
            .map(|r| r.details_json()["i"].as_u64().expect("i"))
            .collect();
        assert_eq!(
            mine,
            (0..EACH).collect::<Vec<_>>(),
            "{who}'s records in order"
        );
    }
    let report = a.verify_chain().expect("verify");
    assert!(report.intact, "{report:?}");
}
