//! Batch coalescing: applying the coalesced batch must give exactly the
//! state that applying every record one by one gives.

use std::collections::BTreeMap;

use lockstep_debezium::{
    coalesce, key_fingerprint, ChangeEvent, CoalesceError, CoalescedBatch, Column, ColumnType,
    ConnectType, Decoder, EnvelopeTimes, JsonConverterDecoder, Op, Positioned, Record, Row, Schema,
    Source, TableOp, TruncateEvent, Value,
};

fn int_type() -> ColumnType {
    Schema::new(ConnectType::Int64).column_type()
}

fn row(cols: &[(&str, i64)]) -> Row {
    Row {
        schema_name: None,
        columns: cols
            .iter()
            .map(|(n, v)| Column {
                name: (*n).into(),
                column_type: int_type().into(),
                value: Value::Int(*v),
            })
            .collect(),
    }
}

fn source(table: &str) -> Source {
    Source {
        db: Some("core".into()),
        schema: Some("public".into()),
        table: Some(table.into()),
        ..Source::default()
    }
}

fn change(op: Op, id: i64, val: i64) -> Record {
    let after =
        matches!(op, Op::Create | Op::Read | Op::Update).then(|| row(&[("id", id), ("v", val)]));
    let before = (op == Op::Delete).then(|| row(&[("id", id), ("v", 0)]));
    Record::Change(ChangeEvent {
        op,
        key: Some(row(&[("id", id)])),
        before,
        after,
        source: source("t"),
        times: EnvelopeTimes::default(),
        transaction: None,
        envelope_name: None,
    })
}

fn c(id: i64, v: i64) -> Record {
    change(Op::Create, id, v)
}
fn u(id: i64, v: i64) -> Record {
    change(Op::Update, id, v)
}
fn r(id: i64, v: i64) -> Record {
    change(Op::Read, id, v)
}
fn d(id: i64) -> Record {
    change(Op::Delete, id, 0)
}
fn tomb(id: i64) -> Record {
    Record::Tombstone {
        key: Some(row(&[("id", id)])),
    }
}
fn trunc() -> Record {
    Record::Truncate(TruncateEvent {
        source: source("t"),
        times: EnvelopeTimes::default(),
        transaction: None,
    })
}
fn hb() -> Record {
    Record::Heartbeat { ts_ms: Some(1) }
}

/// Records on partition 0 of topic "bank.public.t", offsets from 100.
fn positioned(records: Vec<Record>) -> Vec<Positioned<Record>> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| Positioned {
            topic: "bank.public.t".into(),
            partition: 0,
            offset: 100 + i as i64,
            record,
        })
        .collect()
}

type State = BTreeMap<String, Row>;

/// Apply records one by one: the reference semantics.
fn apply_sequential(mut state: State, records: &[Positioned<Record>]) -> State {
    for p in records {
        match &p.record {
            Record::Change(ev) => {
                let key = ev.key.as_ref().unwrap();
                match ev.op {
                    Op::Delete => {
                        state.remove(&key_fingerprint(key));
                    }
                    _ => {
                        state.insert(key_fingerprint(key), ev.after.clone().unwrap());
                    }
                }
            }
            Record::Tombstone { key: Some(k) } => {
                state.remove(&key_fingerprint(k));
            }
            Record::Truncate(_) => state.clear(),
            _ => {}
        }
    }
    state
}

fn apply_batch(mut state: State, batch: &CoalescedBatch) -> State {
    if batch.truncate.is_some() {
        state.clear();
    }
    for op in &batch.ops {
        match op {
            TableOp::Upsert { key, row, .. } => {
                state.insert(key_fingerprint(key), row.clone().into_owned());
            }
            TableOp::Delete { key, .. } => {
                state.remove(&key_fingerprint(key));
            }
        }
    }
    state
}

fn initial_state(ids: &[i64]) -> State {
    ids.iter()
        .map(|&id| {
            (
                key_fingerprint(&row(&[("id", id)])),
                row(&[("id", id), ("v", -id)]),
            )
        })
        .collect()
}

/// A compact description of a batch: "T" for truncate, then "+id=v" / "-id"; an upsert of a key
/// the batch created ends with "*".
fn describe(batch: &CoalescedBatch) -> String {
    let mut parts = Vec::new();
    if batch.truncate.is_some() {
        parts.push("T".to_string());
    }
    for op in &batch.ops {
        let id = match op.key().value("id") {
            Some(Value::Int(i)) => *i,
            other => panic!("{other:?}"),
        };
        parts.push(match op {
            TableOp::Upsert { row, created, .. } => match row.value("v") {
                Some(Value::Int(v)) => format!("+{id}={v}{}", if *created { "*" } else { "" }),
                other => panic!("{other:?}"),
            },
            TableOp::Delete { .. } => format!("-{id}"),
        });
    }
    parts.join(" ")
}

#[test]
fn coalescing_table() {
    let cases: Vec<(&str, Vec<Record>, &str)> = vec![
        ("empty", vec![], ""),
        ("single insert", vec![c(1, 10)], "+1=10*"),
        (
            "insert then updates keep last row",
            vec![c(1, 10), u(1, 11), u(1, 12)],
            "+1=12*",
        ),
        ("insert then delete is a delete", vec![c(1, 10), d(1)], "-1"),
        (
            "delete then insert is an upsert",
            vec![d(1), c(1, 20)],
            "+1=20",
        ),
        (
            "delete, tombstone, insert",
            vec![d(1), tomb(1), c(1, 20)],
            "+1=20",
        ),
        (
            "delete then tombstone stays a delete",
            vec![d(1), tomb(1)],
            "-1",
        ),
        (
            "lone tombstone (compacted topic) deletes",
            vec![tomb(3)],
            "-3",
        ),
        (
            "primary key change: delete old + create new",
            vec![c(1, 10), d(1), tomb(1), c(2, 10)],
            "-1 +2=10*",
        ),
        (
            "snapshot read then update",
            vec![r(1, 1), r(2, 2), u(1, 5)],
            "+2=2 +1=5",
        ),
        (
            "independent keys ordered by last event",
            vec![c(1, 1), c(2, 2), u(1, 3)],
            "+2=2* +1=3*",
        ),
        (
            "truncate drops everything before",
            vec![c(1, 1), c(2, 2), trunc(), c(3, 3)],
            "T +3=3*",
        ),
        ("truncate then delete", vec![trunc(), d(1)], "T -1"),
        (
            "two truncates",
            vec![c(1, 1), trunc(), c(2, 2), trunc(), u(4, 4)],
            "T +4=4",
        ),
        ("heartbeats are skipped", vec![hb(), c(1, 1), hb()], "+1=1*"),
        (
            "create, delete, create: still created in the batch",
            vec![c(1, 1), d(1), c(1, 2)],
            "+1=2*",
        ),
        (
            "an update first: the row was there before the batch",
            vec![u(1, 1), d(1), c(1, 2)],
            "+1=2",
        ),
        ("a snapshot read first", vec![r(1, 1), u(1, 2)], "+1=2"),
        (
            "a create before a truncate does not count after it",
            vec![c(1, 1), trunc(), u(1, 2)],
            "T +1=2",
        ),
    ];
    for (name, records, want) in cases {
        let input = positioned(records);
        let batch = coalesce(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(describe(&batch), want, "{name}");
        assert_eq!(batch.input_records, input.len(), "{name}");
        if let Some(last) = input.last() {
            assert_eq!(
                batch.offsets.get(&("bank.public.t".to_string(), 0)),
                Some(&last.offset),
                "{name}"
            );
        } else {
            assert!(batch.offsets.is_empty());
        }
        // Same end state from several starting states.
        for start in [vec![], vec![1], vec![1, 2, 3, 4]] {
            let s0 = initial_state(&start);
            assert_eq!(
                apply_batch(s0.clone(), &batch),
                apply_sequential(s0, &input),
                "{name} from {start:?}"
            );
        }
    }
}

#[test]
fn offsets_are_the_highest_per_partition() {
    let mk = |topic: &str, partition: i32, offset: i64, record: Record| Positioned {
        topic: topic.into(),
        partition,
        offset,
        record,
    };
    let records = vec![
        mk("a", 0, 5, c(1, 1)),
        mk("a", 1, 9, c(2, 1)),
        mk("a", 0, 7, u(1, 2)),
        mk("b", 0, 3, hb()),
        mk("a", 1, 12, d(2)),
    ];
    let batch = coalesce(&records).unwrap();
    let want: BTreeMap<(String, i32), i64> = [
        (("a".to_string(), 0), 7),
        (("a".to_string(), 1), 12),
        (("b".to_string(), 0), 3),
    ]
    .into_iter()
    .collect();
    assert_eq!(batch.offsets, want);
    assert_eq!(describe(&batch), "+1=2* -2");
    let pos = batch.ops[0].position();
    assert_eq!((pos.partition, pos.offset), (0, 7));
}

#[test]
fn coalescing_errors() {
    // No key (table without a primary key).
    let mut rec = c(1, 1);
    if let Record::Change(ev) = &mut rec {
        ev.key = None;
    }
    let e = coalesce(&positioned(vec![c(2, 2), rec])).unwrap_err();
    assert!(matches!(e, CoalesceError::MissingKey { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("bank.public.t/0@101") && msg.contains("primary key"),
        "{msg}"
    );

    // Mixed tables.
    let mut other = c(1, 1);
    if let Record::Change(ev) = &mut other {
        ev.source.table = Some("u".into());
    }
    let e = coalesce(&positioned(vec![c(1, 1), other])).unwrap_err();
    assert!(
        e.to_string().contains("core.public.u") && e.to_string().contains("core.public.t"),
        "{e}"
    );

    // Offsets going backwards within a partition.
    let mut input = positioned(vec![c(1, 1), c(2, 2)]);
    input[1].offset = 100;
    let e = coalesce(&input).unwrap_err();
    assert!(
        matches!(e, CoalesceError::OutOfOrder { previous: 100, .. }),
        "{e}"
    );
}

#[test]
fn decoded_json_events_coalesce() {
    // End to end: the fixtures' create/update/delete/truncate for one key.
    let d = JsonConverterDecoder::new();
    let f = |n: &str| {
        std::fs::read(format!("{}/tests/fixtures/{n}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let key = f("accounts.key.json");
    let seq = [
        (Some(&key), Some(f("accounts_create.value.json"))),
        (Some(&key), Some(f("accounts_update.value.json"))),
        (None, Some(f("accounts_truncate.value.json"))),
        (Some(&key), Some(f("accounts_create.value.json"))),
        (Some(&key), Some(f("accounts_delete.value.json"))),
        (Some(&key), None),
    ];
    let records: Vec<Positioned<Record>> = seq
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Positioned {
            topic: "bank.public.accounts".into(),
            partition: 2,
            offset: 40 + i as i64,
            record: d.decode(k.map(|k| k.as_slice()), v.as_deref()).unwrap(),
        })
        .collect();
    let batch = coalesce(&records).unwrap();
    assert_eq!(batch.truncate.as_ref().map(|p| p.offset), Some(42));
    assert_eq!(batch.ops.len(), 1);
    assert!(matches!(&batch.ops[0], TableOp::Delete { position, .. } if position.offset == 45));
    assert_eq!(
        batch.table.as_ref().map(|t| t.to_string()).as_deref(),
        Some("core.public.accounts")
    );
    assert_eq!(
        batch.offsets.get(&("bank.public.accounts".to_string(), 2)),
        Some(&45)
    );
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn property_coalesced_batch_equals_sequential_application() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut total_ops = 0usize;
    let mut total_in = 0usize;
    for case in 0..3_000 {
        let len = rng.below(40) as usize;
        let keys = 1 + rng.below(6) as i64;
        let mut records = Vec::with_capacity(len);
        for _ in 0..len {
            let id = rng.below(keys as u64) as i64;
            let v = rng.below(1000) as i64;
            records.push(match rng.below(100) {
                0..=24 => c(id, v),
                25..=49 => u(id, v),
                50..=64 => r(id, v),
                65..=84 => d(id),
                85..=91 => tomb(id),
                92..=95 => hb(),
                _ => trunc(),
            });
        }
        // Several partitions of one topic, offsets increasing per partition.
        let mut next_offset = [0i64; 3];
        let input: Vec<Positioned<Record>> = records
            .into_iter()
            .map(|record| {
                let p = rng.below(3) as usize;
                next_offset[p] += 1 + rng.below(3) as i64;
                Positioned {
                    topic: "t".into(),
                    partition: p as i32,
                    offset: next_offset[p],
                    record,
                }
            })
            .collect();
        let batch = coalesce(&input).unwrap_or_else(|e| panic!("case {case}: {e}"));
        let start_ids: Vec<i64> = (0..keys).filter(|_| rng.below(2) == 0).collect();
        let s0 = initial_state(&start_ids);
        assert_eq!(
            apply_batch(s0.clone(), &batch),
            apply_sequential(s0, &input),
            "case {case}: {}",
            describe(&batch)
        );
        // Minimality: at most one op per key, none at all for keys untouched
        // after the last truncate.
        let mut seen = std::collections::BTreeSet::new();
        for op in &batch.ops {
            assert!(
                seen.insert(key_fingerprint(op.key())),
                "case {case}: duplicate key op"
            );
        }
        assert!(batch.ops.len() as i64 <= keys);
        // `created`: the key's first record after the last truncate is a create.
        let since_truncate = input
            .iter()
            .rposition(|p| matches!(p.record, Record::Truncate(_)))
            .map_or(0, |i| i + 1);
        for op in &batch.ops {
            if let TableOp::Upsert { key, created, .. } = op {
                let first = input[since_truncate..].iter().find(|p| match &p.record {
                    Record::Change(ev) => ev.key.as_ref() == Some(&**key),
                    Record::Tombstone { key: Some(k) } => k == &**key,
                    _ => false,
                });
                let first_creates = matches!(
                    first.map(|p| &p.record),
                    Some(Record::Change(ev)) if ev.op == Op::Create
                );
                assert_eq!(*created, first_creates, "case {case}: {}", describe(&batch));
            }
        }
        // Offsets: highest per partition.
        for (p, &last) in next_offset.iter().enumerate() {
            let got = batch.offsets.get(&("t".to_string(), p as i32)).copied();
            assert_eq!(got, (last > 0).then_some(last), "case {case}");
        }
        total_ops += batch.ops.len();
        total_in += input.len();
    }
    assert!(
        total_ops * 3 < total_in,
        "coalescing should shrink random batches: {total_ops} of {total_in}"
    );
}
