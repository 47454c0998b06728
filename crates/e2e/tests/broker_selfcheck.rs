//! Self-check of the local stack's broker under the configuration the stack uses: what lockstep's
//! sink and lag tracker will rely on (no acknowledged record lost, exact end offsets with one record
//! per batch, a start inside a batch loses nothing) must hold before any pipeline test means anything.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lockstep_e2e::{consume, end_offsets, unique_name, Stack};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const PARTITIONS: i32 = 6;

fn producer(stack: &Stack, one_record_per_batch: bool) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000");
    if one_record_per_batch {
        config.set("batch.num.messages", "1").set("linger.ms", "0");
    } else {
        config
            .set("batch.num.messages", "10000")
            .set("linger.ms", "500");
    }
    config.create().expect("creating a producer")
}

async fn create_topic(stack: &Stack, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .expect("creating an admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics request");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

#[tokio::test]
async fn every_acknowledged_record_reads_back_and_end_offsets_are_exact() {
    let stack = Stack::get();
    let topic = unique_name("selfcheck-keyed");
    create_topic(&stack, &topic, PARTITIONS).await;
    let producer = producer(&stack, true);
    const N: usize = 5_000;

    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let queued = producer
            .send_result(FutureRecord::to(&topic).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .expect("queueing a record");
        deliveries.push(queued);
    }
    let mut written_per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for delivery in deliveries {
        let delivered = delivery
            .await
            .expect("delivery future cancelled")
            .map_err(|(e, _)| e)
            .expect("broker refused a record");
        *written_per_partition
            .entry(delivered.partition)
            .or_default() += 1;
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flushing the producer");
    assert!(
        written_per_partition.len() > 1,
        "keys should spread over several partitions, got {written_per_partition:?}"
    );

    let consumer = stack.consumer().expect("consumer");
    let ends = end_offsets(&consumer, &topic).expect("end offsets");
    for p in 0..PARTITIONS {
        assert_eq!(
            ends.get(&p).copied().unwrap_or(0),
            written_per_partition.get(&p).copied().unwrap_or(0),
            "ListOffsets end offset of partition {p} must equal the records written to it"
        );
    }
    assert_eq!(ends.values().sum::<i64>(), N as i64);

    let records = consume(&consumer, &topic, None, N, Duration::from_secs(60)).expect("consume");
    assert_eq!(records.len(), N, "read back exactly what was acknowledged");
    let keys: BTreeSet<String> = records
        .iter()
        .map(|r| String::from_utf8(r.key.clone().expect("keyed record")).expect("utf-8 key"))
        .collect();
    assert_eq!(keys.len(), N, "every key present once");
    for i in 0..N {
        assert!(keys.contains(&format!("key-{i}")), "key-{i} missing");
    }
    println!(
        "broker self-check: {N} keyed records over {PARTITIONS} partitions, end offsets {ends:?}"
    );
}

#[tokio::test]
async fn a_consumer_starting_inside_a_batch_receives_every_later_record() {
    let stack = Stack::get();
    let topic = unique_name("selfcheck-batch");
    create_topic(&stack, &topic, 1).await;
    let producer = producer(&stack, false);
    const N: i64 = 1_000;

    let deliveries: Vec<_> = (0..N)
        .map(|i| {
            let value = i.to_string();
            producer
                .send_result(FutureRecord::<(), _>::to(&topic).payload(&value))
                .map_err(|(e, _)| e)
                .expect("queueing a record")
        })
        .collect();
    producer
        .flush(Duration::from_secs(30))
        .expect("flushing the producer");
    let mut offsets = Vec::new();
    for delivery in deliveries {
        let delivered = delivery
            .await
            .expect("delivery future cancelled")
            .map_err(|(e, _)| e)
            .expect("broker refused a record");
        offsets.push(delivered.offset);
    }
    assert_eq!(
        offsets,
        (0..N).collect::<Vec<_>>(),
        "offsets assigned in order"
    );

    let consumer = stack.consumer().expect("consumer");
    for start in [1_i64, 37, 500, 999] {
        let from = BTreeMap::from([(0, start)]);
        let records = consume(
            &consumer,
            &topic,
            Some(&from),
            (N - start) as usize,
            Duration::from_secs(30),
        )
        .expect("consume");
        let values: Vec<i64> = records
            .iter()
            .map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                    .parse()
                    .expect("numeric payload")
            })
            .collect();
        assert_eq!(
            values,
            (start..N).collect::<Vec<_>>(),
            "starting at offset {start} inside a {N}-record batch must yield exactly the later records"
        );
        assert!(records
            .iter()
            .all(|r| r.value.as_deref() == Some(r.offset.to_string().as_bytes())));
    }
}
