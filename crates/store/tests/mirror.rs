//! The audit mirror against the local stack's broker: every record arrives, in order, with
//! its content; a restarted mirror (new producer, cursor from SQLite) sends only what is
//! new; a cursor that lags behind the broker (a crash between the acknowledgement and the
//! cursor write) re-sends, and nothing is ever missing.

use std::collections::BTreeMap;
use std::time::Duration;

use lockstep_e2e::{consume, unique_name, Stack};
use lockstep_store::mirror::AuditMirror;
use lockstep_store::{AuditEntry, AuditRecord, Store};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use serde_json::{json, Value};

fn append(store: &Store, range: std::ops::Range<u64>) {
    for i in range {
        store
            .append_audit(&AuditEntry::new(
                "watchdog",
                "connector.restarted",
                format!("orders-cdc-{i}"),
                json!({"i": i, "config": {"database.password": "hunter2"}}),
            ))
            .expect("append");
    }
}

/// (key, value) of every message on the topic, in offset order.
fn read_topic(stack: &Stack, topic: &str, expected: usize) -> Vec<(u64, Value)> {
    let consumer = stack.consumer().expect("consumer");
    let records = consume(&consumer, topic, None, expected, Duration::from_secs(30))
        .expect("consuming the mirror topic");
    assert!(records.iter().all(|r| r.partition == 0), "one partition");
    let mut by_offset: BTreeMap<i64, (u64, Value)> = BTreeMap::new();
    for r in records {
        let key: u64 = std::str::from_utf8(r.key.as_deref().expect("key"))
            .expect("utf-8 key")
            .parse()
            .expect("numeric key");
        let value: Value =
            serde_json::from_slice(r.value.as_deref().expect("value")).expect("JSON value");
        by_offset.insert(r.offset, (key, value));
    }
    by_offset.into_values().collect()
}

fn assert_matches_store(message: &(u64, Value), record: &AuditRecord) {
    let (key, value) = message;
    assert_eq!(*key, record.seq);
    assert_eq!(value["seq"], record.seq);
    assert_eq!(value["hash"], record.hash.as_str());
    assert_eq!(value["prev_hash"], record.prev_hash.as_str());
    assert_eq!(value["actor"], record.actor.as_str());
    assert_eq!(value["subject"], record.subject.as_str());
    assert_eq!(value["ts"], record.ts.as_str());
    assert_eq!(value["details"], record.details_json());
    assert_eq!(value["details"]["config"]["database.password"], "****");
}

#[tokio::test]
async fn the_mirror_publishes_every_record_in_order_at_least_once() {
    let stack = Stack::get();
    let topic = unique_name("lockstep-audit-mirror");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_dir(dir.path()).expect("store");

    append(&store, 0..12);
    let mirror = AuditMirror::new(&stack.kafka_bootstrap, &topic).expect("mirror");
    mirror.ensure_topic(1).await.expect("create topic");
    mirror
        .ensure_topic(1)
        .await
        .expect("an existing topic is fine");
    let progress = mirror.sync(&store).await.expect("first pass");
    assert_eq!((progress.sent, progress.acked_seq), (12, 12));
    assert_eq!(store.mirror_cursor(&topic).expect("cursor"), 12);
    let again = mirror.sync(&store).await.expect("nothing new");
    assert_eq!((again.sent, again.acked_seq), (0, 12));
    drop(mirror);

    // A restarted mirror: a new producer, the cursor from SQLite.
    append(&store, 12..20);
    let mirror = AuditMirror::new(&stack.kafka_bootstrap, &topic).expect("mirror");
    let progress = mirror.sync(&store).await.expect("second pass");
    assert_eq!((progress.sent, progress.acked_seq), (8, 20));

    let records = store.audit_records(None, 0).expect("records");
    let messages = read_topic(&stack, &topic, 20);
    assert_eq!(
        messages.len(),
        20,
        "exactly once so far: {:?}",
        messages.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    for (message, record) in messages.iter().zip(&records) {
        assert_matches_store(message, record);
    }

    // A crash after the broker acknowledged 17..20 but before the cursor moved: the cursor
    // is behind, so those records are sent again, then the new ones.
    store.set_mirror_cursor(&topic, 16).expect("rewind");
    append(&store, 20..23);
    let progress = mirror.sync(&store).await.expect("third pass");
    assert_eq!((progress.sent, progress.acked_seq), (7, 23));
    let records = store.audit_records(None, 0).expect("records");
    let messages = read_topic(&stack, &topic, 27);
    let keys: Vec<u64> = messages.iter().map(|m| m.0).collect();
    let expected: Vec<u64> = (1..=20).chain(17..=23).collect();
    assert_eq!(
        keys, expected,
        "the re-sent run follows the first copy, in order"
    );
    // Deduplicated by key, the topic is the log.
    let mut by_seq: BTreeMap<u64, &(u64, Value)> = BTreeMap::new();
    for m in &messages {
        by_seq.entry(m.0).or_insert(m);
    }
    assert_eq!(by_seq.len(), records.len());
    for (record, message) in records.iter().zip(by_seq.values()) {
        assert_matches_store(message, record);
    }

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .expect("admin client");
    // Best effort: the broker is shared, its storage is in memory.
    let _ = admin
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await;
}
