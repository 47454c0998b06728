//! End to end on the real stack: Debezium PostgreSQL source → Connect → broker → lockstep sink →
//! PostgreSQL target; the target ends equal to the source, and a restarted sink resumes from the
//! offsets stored in the target without applying anything twice.

use std::path::Path;
use std::time::{Duration, Instant};

use lockstep_connect::{ConnectorConfig, CreateConnectorRequest, ExpectedState};
use lockstep_e2e::{table_text, unique_name, Stack};
use lockstep_sink::{Sink, SinkPipeline};

const DDL: &str = "(id bigint primary key, name text not null, amount numeric(12,2), qty integer,
    active boolean, born date, updated timestamptz, payload jsonb, tags text[], raw bytea,
    uid uuid, counter integer not null default 0)";

#[tokio::test]
async fn debezium_to_postgres_target_is_exact_and_resumes_from_target_offsets() {
    let stack = Stack::get();
    let name = unique_name("sink-pg").replace('_', "-");
    let table = name.replace('-', "_");
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&format!(
            "create table {table} {DDL};
             insert into {table} (id, name, amount, qty, active, born, updated, payload, tags, raw, uid)
             select g, 'name-' || g, g * 1.25, g % 7, g % 2 = 0, date '1969-12-25' + g,
                    timestamptz '2024-02-29 23:59:59.123456+02' + g * interval '1 minute',
                    jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')),
                    array['a' || g, 'b,\"q'], decode(lpad(to_hex(g), 8, '0'), 'hex'),
                    md5(g::text)::uuid
               from generate_series(1, 2000) g;"
        ))
        .await
        .expect("source table");
    target
        .batch_execute(&format!("create table {table} {DDL}"))
        .await
        .expect("target table");

    let client = stack.connect_client().expect("connect client");
    let mut config = ConnectorConfig::new();
    for (k, v) in stack.debezium_pg_config(&name, &[&table]) {
        config.insert(k, v);
    }
    // Debezium skips TRUNCATE by default; a DR replica must mirror it.
    config.insert("skipped.operations", "none");
    // One partition per table topic keeps the table's total order, which mirroring a keyless
    // TRUNCATE needs (Connect creates the topic with these settings).
    config.insert("topic.creation.default.partitions", "1");
    config.insert("topic.creation.default.replication.factor", "1");
    // Debezium's defaults for numeric (precise Decimal bytes) and timestamps are what the sink
    // must handle; nothing is simplified for it.
    let slot = config.get("slot.name").unwrap_or_default().to_string();
    let publication = config
        .get("publication.name")
        .unwrap_or_default()
        .to_string();
    let (cleanup_stack, cleanup_name) = (stack.clone(), name.clone());
    let body = tokio::spawn(async move {
        client
            .create_connector(&CreateConnectorRequest {
                name: name.clone(),
                config: config.clone(),
                initial_state: None,
            })
            .await
            .expect("create connector");
        client
            .wait_for_state(&name, &ExpectedState::running(), Duration::from_secs(120))
            .await
            .expect("connector RUNNING");

        // A mixed workload while the sink is not running yet: updates bump a counter, so a change
        // applied twice would show.
        for round in 0..5 {
            source
            .batch_execute(&format!(
                "update {table} set counter = counter + 1, amount = amount + 0.01, updated = now() where id % 5 = {round};
                 delete from {table} where id % 97 = {round};
                 insert into {table} (id, name, amount, payload, tags) values ({id}, 'late', null, '{{}}', '{{}}');",
                id = 10_000 + round
            ))
            .await
            .expect("workload");
        }

        let pipeline_yaml = format!(
        "name: {name}\nkafka:\n  bootstrap_servers: {bootstrap}\n  topics: [{name}.public.{table}]\ntarget:\n  engine: postgres\n  host: {host}\n  port: {port}\n  user: {user}\n  database: {db}\nbatch: {{max_rows: 700, linger_ms: 100}}\n",
        bootstrap = stack.kafka_bootstrap,
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        db = stack.pg_target_db,
    );
        let consumer = stack.consumer().expect("consumer");
        let topic = format!("{name}.public.{table}");
        assert_eq!(
            lockstep_e2e::partition_count(&consumer, &topic, Duration::from_secs(60))
                .expect("topic"),
            1,
            "the table topic was created with one partition"
        );
        let pipeline =
            SinkPipeline::parse(Path::new("test.yaml"), &pipeline_yaml).expect("pipeline");

        let expected = table_text(&source, &table).await;
        let started = Instant::now();
        let mut sink = Sink::start(pipeline.clone()).await.expect("sink starts");
        let mut applied = 0;
        loop {
            let stats = sink
                .run_until_idle(Duration::from_secs(3))
                .await
                .expect("sink applies");
            applied += stats.records;
            if table_text(&target, &table).await == expected {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "target did not converge: source {:?}, target {:?}",
                expected,
                table_text(&target, &table).await
            );
        }
        println!(
            "sink applied {applied} records in {:.1} s; target equals source ({} rows)",
            started.elapsed().as_secs_f64(),
            expected.0
        );
        drop(sink);

        // A new sink process resumes from the offsets in the target: nothing is re-applied.
        let mut again = Sink::start(pipeline.clone()).await.expect("sink restarts");
        let replay = again
            .run_until_idle(Duration::from_secs(3))
            .await
            .expect("idle");
        assert_eq!(
            replay.records, 0,
            "a restarted sink re-read records it had applied"
        );

        // More changes after the restart arrive exactly once.
        source
            .batch_execute(&format!(
                "update {table} set counter = counter + 1 where id <= 100; truncate {table};
             insert into {table} (id, name) values (1, 'after-truncate');"
            ))
            .await
            .expect("more changes");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            again
                .run_until_idle(Duration::from_secs(2))
                .await
                .expect("applies");
            let (source_state, target_state) = (
                table_text(&source, &table).await,
                table_text(&target, &table).await,
            );
            if source_state == target_state {
                assert_eq!(target_state.0, 1, "the truncate was mirrored");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no convergence after truncate: {source_state:?} vs {target_state:?}"
            );
        }
    });
    // Whatever happened, leave no connector or replication slot behind (a slot retains WAL).
    let result = body.await;
    if let Ok(client) = cleanup_stack.connect_client() {
        let _ = client.delete_connector(&cleanup_name).await;
    }
    let _ = cleanup_stack.drop_pg_slot(&slot, &publication).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}
