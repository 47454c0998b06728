//! End to end on the real stack: Debezium PostgreSQL source → Connect → broker → lockstep sink →
//! MariaDB target. After a mixed workload (snapshot, streamed inserts, updates, deletes, a
//! TRUNCATE) `lockstep verify` finds no difference, and a restarted sink resumes from the offsets
//! stored in MariaDB without applying anything twice (every update bumps a counter column, so a
//! replayed update would show as a difference).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{create_mariadb_database, mariadb, mariadb_pipeline, start_connector, Cleanup};
use lockstep_e2e::{unique_name, Stack};
use lockstep_sink::{Sink, SinkPipeline};
use lockstep_verify::{
    verify, ConnectionSettings, Endpoint, Password, TableRef, VerifyOptions, VerifyReport,
};
use mysql_async::prelude::Queryable;

const SOURCE_DDL: &str = "(id bigint primary key, name text not null, amount numeric(12,2),
    qty integer, active boolean, born date, updated timestamptz, payload jsonb, raw bytea,
    uid uuid, counter integer not null default 0)";

const TARGET_DDL: &str = "(id bigint primary key, name longtext not null, amount decimal(12,2),
    qty int, active tinyint(1), born date, updated datetime(6), payload json, raw longblob,
    uid char(36), counter int not null default 0) ENGINE = InnoDB";

async fn compare(stack: &Stack, table: &str, database: &str) -> VerifyReport {
    let source = Endpoint::new(
        ConnectionSettings::postgres(
            &stack.pg_host,
            stack.pg_port,
            &stack.pg_user,
            &stack.pg_source_db,
        ),
        TableRef::new(None, table),
    );
    let target = Endpoint::new(
        ConnectionSettings::mysql(
            &stack.mariadb_host,
            stack.mariadb_port,
            &stack.mariadb_user,
            database,
        )
        .with_password(Password::new(common::mariadb_password())),
        TableRef::new(None, table),
    );
    let options = VerifyOptions {
        max_retries: 0,
        ..VerifyOptions::default()
    };
    verify(&source, &target, &options)
        .await
        .expect("verify runs")
}

/// Runs the sink until verify finds the target equal to the source.
async fn converge(sink: &mut Sink, stack: &Stack, table: &str, database: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut applied = 0;
    loop {
        let stats = sink
            .run_until_idle(Duration::from_secs(3))
            .await
            .expect("sink applies");
        applied += stats.records;
        let report = compare(stack, table, database).await;
        if report.is_clean() {
            return applied;
        }
        assert!(
            Instant::now() < deadline,
            "target did not converge: missing {}, extra {}, differing {} ({:?}); schema differences {:?}",
            report.missing_count,
            report.extra_count,
            report.differing_count,
            report.differing.iter().take(3).collect::<Vec<_>>(),
            report.schema_differences
        );
    }
}

#[tokio::test]
async fn debezium_to_mariadb_target_is_exact_and_resumes_from_target_offsets() {
    let stack = Stack::get();
    let name = unique_name("sink-maria").replace('_', "-");
    let table = name.replace('-', "_");
    let database = table.clone();
    let mut cleanup = Cleanup::new(&stack);
    cleanup
        .created
        .pg_source_sql
        .push(format!("drop table if exists {table}"));

    let source = stack.pg_source().await.expect("source");
    source
        .batch_execute(&format!(
            "create table {table} {SOURCE_DDL};
             insert into {table} (id, name, amount, qty, active, born, updated, payload, raw, uid)
             select g, 'name-' || g || ' it''s \\ \"q\" é', g * 1.25, g % 7, g % 2 = 0,
                    date '1969-12-25' + g,
                    timestamptz '2024-02-29 23:59:59.123456+02' + g * interval '1 minute',
                    jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x')),
                    decode(lpad(to_hex(g), 8, '0'), 'hex'), md5(g::text)::uuid
               from generate_series(1, 2000) g;"
        ))
        .await
        .expect("source table");
    create_mariadb_database(&mut cleanup, &database).await;
    let mut maria = mariadb(&stack, Some(&database)).await;
    maria
        .query_drop(format!("CREATE TABLE `{table}` {TARGET_DDL}"))
        .await
        .expect("target table");

    start_connector(&mut cleanup, &name, &[&table], &[]).await;

    // A mixed workload streamed while the sink is not running yet (the snapshot is in the topic
    // already): updates bump a counter, so a change applied twice would show.
    for round in 0..5 {
        source
            .batch_execute(&format!(
                "update {table} set counter = counter + 1, amount = amount + 0.01, updated = now() where id % 5 = {round};
                 delete from {table} where id % 97 = {round};
                 insert into {table} (id, name, amount, payload) values ({id}, 'late', null, '{{}}');",
                id = 10_000 + round
            ))
            .await
            .expect("workload");
    }

    let topic = format!("{name}.public.{table}");
    let consumer = stack.consumer().expect("consumer");
    assert_eq!(
        lockstep_e2e::partition_count(&consumer, &topic, Duration::from_secs(60)).expect("topic"),
        1,
        "the table topic was created with one partition"
    );
    let pipeline = SinkPipeline::parse(
        Path::new("test.yaml"),
        &mariadb_pipeline(&stack, &name, &[topic], &database),
    )
    .expect("pipeline");

    let started = Instant::now();
    let mut sink = Sink::start(pipeline.clone()).await.expect("sink starts");
    let applied = converge(&mut sink, &stack, &table, &database).await;
    let report = compare(&stack, &table, &database).await;
    println!(
        "sink applied {applied} records in {:.1} s; verify: {} rows compared, 0 differences",
        started.elapsed().as_secs_f64(),
        report.rows_compared
    );
    assert!(report.rows_compared > 1_900, "{report:?}");
    drop(sink);

    // The offsets live in the target database, next to the rows.
    let stored: Vec<(String, i32, i64)> = maria
        .exec(
            "SELECT topic, kafka_partition, next_offset FROM lockstep_sink_offsets WHERE pipeline = ?",
            (name.as_str(),),
        )
        .await
        .expect("offsets");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].2 as usize >= applied, "{stored:?} vs {applied}");

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

    // More changes after the restart arrive exactly once, a TRUNCATE included (applied as a
    // DELETE inside the transaction, so the offsets move with it).
    source
        .batch_execute(&format!(
            "update {table} set counter = counter + 1 where id <= 100;
             truncate {table};
             insert into {table} (id, name, counter) values (1, 'after-truncate', 7), (2, 'two', 0);
             update {table} set counter = counter + 1, name = 'updated' where id = 2;
             insert into {table} (id, name) values (3, 'three');
             delete from {table} where id = 3;"
        ))
        .await
        .expect("more changes");
    converge(&mut again, &stack, &table, &database).await;
    let rows: Vec<(i64, String, i32)> = maria
        .query(format!(
            "SELECT id, name, counter FROM `{table}` ORDER BY id"
        ))
        .await
        .expect("target rows");
    assert_eq!(
        rows,
        vec![(1, "after-truncate".into(), 7), (2, "updated".into(), 1)],
        "the truncate was mirrored and each later change applied once"
    );
}
