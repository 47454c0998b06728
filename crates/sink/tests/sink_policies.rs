//! Schema drift policies, operator holds and the dead-letter topic, on the real stack:
//! Debezium PostgreSQL source → Connect → broker → lockstep sink → PostgreSQL target.

use std::path::Path;
use std::time::{Duration, Instant};

use lockstep_e2e::{table_text, unique_name, with_cleanup, Stack};
use lockstep_sink::{Sink, SinkHandle, SinkMetrics, SinkPipeline};
use prometheus_client::registry::Registry;
use rdkafka::producer::{FutureProducer, FutureRecord};

const DDL: &str = "(id bigint primary key, name text not null, amount numeric(12,2))";

fn pipeline(
    stack: &Stack,
    name: &str,
    topics: &[String],
    schema: &str,
    extra: &str,
) -> SinkPipeline {
    let yaml = format!(
        "name: {name}\nkafka:\n  bootstrap_servers: {bootstrap}\n  topics: [{topics}]\ntarget:\n  engine: postgres\n  host: {host}\n  port: {port}\n  user: {user}\n  database: {db}\n  schema: {schema}\nbatch: {{max_rows: 500, linger_ms: 50}}\n{extra}",
        bootstrap = stack.kafka_bootstrap,
        topics = topics.join(", "),
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        db = stack.pg_target_db,
    );
    SinkPipeline::parse(Path::new("test.yaml"), &yaml).expect("pipeline")
}

/// Runs the sink until `done` holds (checked after each idle pass) or the timeout passes.
async fn run_until<F, Fut>(sink: &mut Sink, what: &str, timeout: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        sink.run_until_idle(Duration::from_secs(2))
            .await
            .expect("sink applies");
        if done().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {timeout:?}"
        );
    }
}

/// One table on the source (created by `source_sql`) and on the target (`target_sql`), and a
/// Debezium connector streaming it; the connector's name is also the topic prefix.
struct OneTable {
    name: String,
    table: String,
    source: tokio_postgres::Client,
    target: tokio_postgres::Client,
    connector: lockstep_e2e::PgConnector,
}

/// `source_sql` and `target_sql` are formatted with the table's name in place of `{table}`.
async fn one_table(stack: &Stack, prefix: &str, source_sql: &str, target_sql: &str) -> OneTable {
    let name = unique_name(prefix).replace('_', "-");
    let table = name.replace('-', "_");
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&source_sql.replace("{table}", &table))
        .await
        .expect("source table");
    target
        .batch_execute(&target_sql.replace("{table}", &table))
        .await
        .expect("target table");
    let connector = stack
        .start_pg_connector(&name, &[&table], &[])
        .await
        .expect("connector");
    OneTable {
        name,
        table,
        source,
        target,
        connector,
    }
}

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text
}

#[tokio::test]
async fn block_holds_only_the_drifted_table_until_the_target_catches_up_and_evolve_adds_columns() {
    let stack = Stack::get();
    let name = unique_name("policy").replace('_', "-");
    let base = name.replace('-', "_");
    let (orders, lines) = (format!("{base}_orders"), format!("{base}_lines"));
    let evolve_schema = format!("{base}_evolve");
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&format!(
            "create table {orders} {DDL}; create table {lines} {DDL};
             insert into {orders} select g, 'o' || g, g from generate_series(1, 50) g;
             insert into {lines} select g, 'l' || g, g from generate_series(1, 50) g;"
        ))
        .await
        .expect("source tables");
    target
        .batch_execute(&format!(
            "create table {orders} {DDL}; create table {lines} {DDL};
             create schema {evolve_schema};
             create table {evolve_schema}.{orders} {DDL}; create table {evolve_schema}.{lines} {DDL};"
        ))
        .await
        .expect("target tables");
    let connector = stack
        .start_pg_connector(&name, &[&orders, &lines], &[])
        .await
        .expect("connector");
    let cleanup = async {
        connector.cleanup().await;
    };
    let body = {
        let stack = stack.clone();
        async move {
            let topics = vec![
                format!("{name}.public.{orders}"),
                format!("{name}.public.{lines}"),
            ];
            let mut registry = Registry::default();
            let metrics = SinkMetrics::register(&mut registry);
            let block = pipeline(&stack, &format!("{name}-block"), &topics, "public", "");
            let handle = SinkHandle::new(&block.name, "postgres");
            let mut sink = Sink::start_with(block, metrics, handle.clone())
                .await
                .expect("block sink");
            let evolve = pipeline(
                &stack,
                &format!("{name}-evolve"),
                &topics,
                &evolve_schema,
                "schema_drift: evolve\n",
            );
            let mut evolving = Sink::start(evolve).await.expect("evolve sink");

            let converged = |t: String, target_table: String| {
                let (source, target) = (&source, &target);
                async move { table_text(source, &t).await == table_text(target, &target_table).await }
            };
            run_until(
                &mut sink,
                "snapshot applied",
                Duration::from_secs(120),
                || async {
                    converged(orders.clone(), orders.clone()).await
                        && converged(lines.clone(), lines.clone()).await
                },
            )
            .await;

            // The source gains a column the target lacks; both tables keep changing.
            source
                .batch_execute(&format!(
                    "alter table {orders} add column note text;
                     insert into {orders} values (51, 'o51', 51, 'with a note');
                     update {orders} set note = 'n' || id where id <= 5;
                     insert into {lines} select g, 'l' || g, g from generate_series(51, 60) g;
                     delete from {lines} where id = 1;"
                ))
                .await
                .expect("source drift");
            run_until(
                &mut sink,
                "the other table goes on",
                Duration::from_secs(60),
                || async { converged(lines.clone(), lines.clone()).await },
            )
            .await;
            let blocked = sink.blocked();
            assert_eq!(
                blocked.len(),
                1,
                "only the drifted table waits: {blocked:?}"
            );
            assert_eq!(blocked[0].table, orders);
            assert_eq!(blocked[0].missing_columns, vec!["note".to_string()]);
            let record = blocked[0]
                .record
                .clone()
                .expect("the blocking record is named");
            assert_eq!(record.topic, topics[0]);
            let status = handle.status();
            assert_eq!(status.blocked.len(), 1, "visible in the status: {status:?}");
            let text = metrics_text(&registry);
            assert!(
                text.contains(&format!(
                    "lockstep_sink_blocked_tables{{pipeline=\"{name}-block\",table=\"{orders}\"}} 1"
                )),
                "visible as a metric:\n{text}"
            );
            let rows_before = table_text(&target, &orders).await.0;
            assert_eq!(
                rows_before, 50,
                "nothing past the drift was applied to the held table"
            );
            // The held partition's committed offset stops right before the blocking record.
            let committed = status
                .partitions
                .iter()
                .find(|p| p.topic == topics[0])
                .and_then(|p| p.next_offset);
            assert_eq!(committed, Some(record.offset));

            // A restart keeps the table held (the position is in the target) and loses nothing.
            drop(sink);
            let mut sink = Sink::start_with(
                pipeline(&stack, &format!("{name}-block"), &topics, "public", ""),
                SinkMetrics::unregistered(),
                SinkHandle::new("restarted", "postgres"),
            )
            .await
            .expect("restart");
            sink.run_until_idle(Duration::from_secs(2))
                .await
                .expect("idle");
            assert_eq!(sink.blocked().len(), 1, "blocked again after a restart");

            // The DBA (or lockstep ddl) adds the column on the target: the table is released.
            target
                .batch_execute(&format!("alter table {orders} add column note text"))
                .await
                .expect("target catches up");
            run_until(
                &mut sink,
                "released and caught up",
                Duration::from_secs(60),
                || async { converged(orders.clone(), orders.clone()).await },
            )
            .await;
            assert!(sink.blocked().is_empty(), "released: {:?}", sink.blocked());

            // An operator hold stops one table at a batch boundary, and release lets it go on.
            let handle = sink.handle();
            handle.hold(&lines);
            sink.run_until_idle(Duration::from_secs(1))
                .await
                .expect("hold applies");
            source
                .batch_execute(&format!("insert into {lines} values (61, 'held', 61)"))
                .await
                .expect("insert while held");
            sink.run_until_idle(Duration::from_secs(3))
                .await
                .expect("held");
            assert!(
                !converged(lines.clone(), lines.clone()).await,
                "a held table does not move"
            );
            assert!(handle
                .status()
                .blocked
                .iter()
                .any(|b| b.table == lines && b.held_by_request));
            handle.release(&lines);
            run_until(
                &mut sink,
                "released hold",
                Duration::from_secs(60),
                || async { converged(lines.clone(), lines.clone()).await },
            )
            .await;

            // The evolve pipeline added the column itself, typed from the Connect schema.
            run_until(
                &mut evolving,
                "evolve converges",
                Duration::from_secs(120),
                || async {
                    converged(orders.clone(), format!("{evolve_schema}.{orders}")).await
                        && converged(lines.clone(), format!("{evolve_schema}.{lines}")).await
                },
            )
            .await;
            let added: String = target
                .query_one(
                    "select format_type(atttypid, atttypmod) || ' ' || (not attnotnull)::text
                       from pg_attribute where attrelid = ($1 || '.' || $2)::regclass and attname = 'note'",
                    &[&evolve_schema, &orders],
                )
                .await
                .expect("added column")
                .get(0);
            assert_eq!(added, "text true", "nullable text column added");
            assert!(evolving.blocked().is_empty());
        }
    };
    with_cleanup(body, cleanup).await;
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_topic_with_context_and_the_pipeline_goes_on() {
    let stack = Stack::get();
    // The target refuses amounts of 1000 and more: rows the source accepts but the target rejects.
    let OneTable {
        name,
        table,
        source,
        target,
        connector,
    } = one_table(
        &stack,
        "dlq",
        &format!(
            "create table {{table}} {DDL};
             insert into {{table}} select g, 'r' || g, g from generate_series(1, 20) g;"
        ),
        "create table {table} (id bigint primary key, name text not null, amount numeric(12,2) check (amount < 1000))",
    )
    .await;
    let cleanup = async {
        connector.cleanup().await;
    };
    let body = {
        let stack = stack.clone();
        async move {
            let topic = format!("{name}.public.{table}");
            let dlq_topic = format!("{name}-dlq");
            let mut sink = Sink::start(pipeline(
                &stack,
                &name,
                std::slice::from_ref(&topic),
                "public",
                &format!("errors: {{tolerance: all, dead_letter_topic: {dlq_topic}}}\n"),
            ))
            .await
            .expect("sink");
            run_until(&mut sink, "snapshot", Duration::from_secs(120), || async {
                table_text(&target, &table).await.0 == 20
            })
            .await;

            // A record that is not a Debezium event at all, between good changes.
            let producer: FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &stack.kafka_bootstrap)
                .create()
                .expect("producer");
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key("garbage-key")
                        .payload("this is not JSON"),
                    Duration::from_secs(30),
                )
                .await
                .expect("garbage produced");
            source
                .batch_execute(&format!(
                    "insert into {table} values (21, 'too big', 5000);
                     insert into {table} values (22, 'fine', 22);
                     update {table} set name = 'after' where id = 1;"
                ))
                .await
                .expect("changes");
            run_until(&mut sink, "the pipeline goes on", Duration::from_secs(90), || async {
                let rows = target
                    .query_one(
                        &format!("select count(*) filter (where id = 22), count(*) filter (where id = 1 and name = 'after'), count(*) filter (where id = 21) from {table}"),
                        &[],
                    )
                    .await
                    .expect("rows");
                let (fine, updated, rejected): (i64, i64, i64) = (rows.get(0), rows.get(1), rows.get(2));
                assert_eq!(rejected, 0, "the rejected row is not in the target");
                fine == 1 && updated == 1
            })
            .await;

            let consumer = stack.consumer().expect("consumer");
            let letters =
                lockstep_e2e::consume(&consumer, &dlq_topic, None, 2, Duration::from_secs(30))
                    .expect("dead letters");
            assert_eq!(
                letters.len(),
                2,
                "exactly the two poison records: {letters:?}"
            );
            let garbage = letters
                .iter()
                .find(|l| l.header("__connect.errors.stage").as_deref() == Some("decode"))
                .expect("the undecodable record");
            assert_eq!(
                garbage.value.as_deref(),
                Some(&b"this is not JSON"[..]),
                "the record itself"
            );
            assert_eq!(garbage.key.as_deref(), Some(&b"garbage-key"[..]));
            assert_eq!(
                garbage.header("__connect.errors.topic"),
                Some(topic.clone())
            );
            assert_eq!(
                garbage.header("__connect.errors.partition").as_deref(),
                Some("0")
            );
            assert!(garbage
                .header("__connect.errors.offset")
                .is_some_and(|o| o.parse::<i64>().is_ok()));
            assert_eq!(
                garbage.header("__connect.errors.connector.name"),
                Some(name.clone())
            );
            let rejected = letters
                .iter()
                .find(|l| l.header("__connect.errors.stage").as_deref() == Some("apply"))
                .expect("the rejected row");
            let reason = rejected
                .header("__connect.errors.exception.message")
                .unwrap_or_default();
            assert!(
                reason.contains("23514") || reason.contains("check"),
                "the reason names the check: {reason}"
            );
            assert_eq!(
                rejected.header("__lockstep.errors.table"),
                Some(table.clone())
            );
            let value =
                String::from_utf8_lossy(rejected.value.as_deref().unwrap_or_default()).into_owned();
            assert!(
                value.contains("too big"),
                "the Debezium event itself: {value}"
            );
            // The sink keeps no copy of a record it decoded: the refused one was read again from
            // Kafka, and is the record at its offset byte for byte.
            let offset: i64 = rejected
                .header("__connect.errors.offset")
                .and_then(|o| o.parse().ok())
                .expect("the rejected record's offset");
            let at_offset = lockstep_e2e::consume(
                &stack.consumer().expect("consumer"),
                &topic,
                Some(&std::collections::BTreeMap::from([(0, offset)])),
                1,
                Duration::from_secs(30),
            )
            .expect("the source topic at the rejected offset");
            assert_eq!(at_offset[0].offset, offset);
            assert_eq!(rejected.value, at_offset[0].value, "the record's value");
            assert_eq!(rejected.key, at_offset[0].key, "the record's key");

            // Nothing is re-sent or re-applied after a restart: the offsets passed the poison.
            drop(sink);
            let mut again = Sink::start(pipeline(
                &stack,
                &name,
                std::slice::from_ref(&topic),
                "public",
                &format!("errors: {{tolerance: all, dead_letter_topic: {dlq_topic}}}\n"),
            ))
            .await
            .expect("restart");
            let replay = again
                .run_until_idle(Duration::from_secs(3))
                .await
                .expect("idle");
            assert_eq!(replay.records, 0);
            assert_eq!(replay.dead_lettered, 0);

            // Without tolerance, the same poison stops the sink with its coordinates.
            let strict = format!("{name}-strict");
            target
                .batch_execute(&format!(
                    "create schema {s}; create table {s}.{table} (id bigint primary key, name text not null, amount numeric(12,2))",
                    s = strict.replace('-', "_")
                ))
                .await
                .expect("strict schema");
            let mut stopping = Sink::start(pipeline(
                &stack,
                &strict,
                std::slice::from_ref(&topic),
                &strict.replace('-', "_"),
                "",
            ))
            .await
            .expect("strict sink");
            let err = stopping
                .run_until_idle(Duration::from_secs(3))
                .await
                .expect_err("poison stops a sink without tolerance");
            let text = err.to_string();
            assert!(
                text.contains(&topic) && text.contains("dead_letter_topic"),
                "{text}"
            );
        }
    };
    with_cleanup(body, cleanup).await;
}

#[tokio::test]
async fn creates_a_restarted_connector_sends_again_are_applied_as_upserts_not_refused() {
    let stack = Stack::get();
    let create = format!("create table {{table}} {DDL}");
    let OneTable {
        name,
        table,
        source,
        target,
        connector,
    } = one_table(&stack, "replay", &create, &create).await;
    let cleanup = async {
        connector.cleanup().await;
    };
    let body = {
        let stack = stack.clone();
        async move {
            // Rows inserted while the connector streams (the table was empty at its snapshot):
            // `c` events, which the sink inserts without a conflict check.
            source
                .batch_execute(&format!(
                    "insert into {table} select g, 'n' || g, g from generate_series(1, 30) g"
                ))
                .await
                .expect("inserts");
            let topic = format!("{name}.public.{table}");
            let mut registry = Registry::default();
            let metrics = SinkMetrics::register(&mut registry);
            let sink_pipeline = pipeline(&stack, &name, std::slice::from_ref(&topic), "public", "");
            let handle = SinkHandle::new(&sink_pipeline.name, "postgres");
            let mut sink = Sink::start_with(sink_pipeline, metrics, handle)
                .await
                .expect("sink");
            let converged =
                || async { table_text(&source, &table).await == table_text(&target, &table).await };
            run_until(
                &mut sink,
                "the creates",
                Duration::from_secs(120),
                converged,
            )
            .await;

            // A connector restarted without exactly-once delivery sends changes again from its
            // last committed source offset: the same records at new offsets.
            let consumer = stack.consumer().expect("consumer");
            let sent = lockstep_e2e::consume(&consumer, &topic, None, 30, Duration::from_secs(30))
                .expect("the creates");
            assert_eq!(sent.len(), 30);
            let producer: FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &stack.kafka_bootstrap)
                .create()
                .expect("producer");
            for record in &sent {
                let mut again = FutureRecord::<[u8], [u8]>::to(&topic);
                if let Some(key) = record.key.as_deref() {
                    again = again.key(key);
                }
                if let Some(value) = record.value.as_deref() {
                    again = again.payload(value);
                }
                producer
                    .send(again, Duration::from_secs(30))
                    .await
                    .expect("replayed record produced");
            }
            // The source goes on meanwhile.
            source
                .batch_execute(&format!(
                    "insert into {table} values (31, 'n31', 31);
                     update {table} set name = 'after' where id = 1;"
                ))
                .await
                .expect("later changes");
            // Kafka order puts those after the replayed records: reaching them passes the replay.
            run_until(
                &mut sink,
                "past the replay",
                Duration::from_secs(120),
                converged,
            )
            .await;
            let rows = target
                .query_one(
                    &format!("select count(*), max(name) filter (where id = 1) from {table}"),
                    &[],
                )
                .await
                .expect("rows");
            assert_eq!(
                (rows.get::<_, i64>(0), rows.get::<_, String>(1)),
                (31, "after".to_string())
            );
            let text = metrics_text(&registry);
            let replayed = text
                .lines()
                .find(|l| {
                    l.starts_with("lockstep_sink_replayed_batches_total{")
                        && l.contains(&format!("pipeline=\"{name}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok());
            assert!(
                replayed.is_some_and(|n| n >= 1),
                "the replayed batch is counted: {replayed:?}\n{text}"
            );
        }
    };
    with_cleanup(body, cleanup).await;
}
