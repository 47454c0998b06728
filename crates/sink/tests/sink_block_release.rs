//! The `block` policy loses nothing that follows a blocked record, on the real stack:
//! Debezium PostgreSQL source → Connect → broker → lockstep sink → PostgreSQL target.
//!
//! A delete event carries only the key (REPLICA IDENTITY DEFAULT), so it never shows drift: a
//! delete that follows a blocked change in the same partition, in the same batch or in a later
//! one, must wait with it, and the partition's offset must stay right before the blocked change
//! until the table is released.

use std::path::Path;
use std::time::{Duration, Instant};

use lockstep_e2e::{table_text, unique_name, with_cleanup, Stack};
use lockstep_sink::{Sink, SinkPipeline};

const DDL: &str = "(id bigint primary key, name text not null, amount numeric(12,2))";

fn pipeline(stack: &Stack, name: &str, topic: &str) -> SinkPipeline {
    let yaml = format!(
        "name: {name}\nkafka:\n  bootstrap_servers: {bootstrap}\n  topics: [{topic}]\ntarget:\n  engine: postgres\n  host: {host}\n  port: {port}\n  user: {user}\n  database: {db}\n  schema: public\nbatch: {{max_rows: 500, linger_ms: 50}}\nschema_drift: block\n",
        bootstrap = stack.kafka_bootstrap,
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        db = stack.pg_target_db,
    );
    SinkPipeline::parse(Path::new("test.yaml"), &yaml).expect("pipeline")
}

async fn ids(client: &tokio_postgres::Client, table: &str) -> Vec<i64> {
    client
        .query(&format!("select id from {table} order by id"), &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The table on source (20 rows) and target, and a connector on it.
async fn table_and_connector(
    stack: &Stack,
    name: &str,
    table: &str,
) -> (
    tokio_postgres::Client,
    tokio_postgres::Client,
    lockstep_e2e::PgConnector,
) {
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    source
        .batch_execute(&format!(
            "create table {table} {DDL};
             insert into {table} select g, 'r' || g, g from generate_series(1, 20) g;"
        ))
        .await
        .expect("source table");
    target
        .batch_execute(&format!("create table {table} {DDL}"))
        .await
        .expect("target table");
    let connector = stack
        .start_pg_connector(name, &[table], &[])
        .await
        .expect("connector");
    (source, target, connector)
}

/// Removes the connector and the table on both sides, then runs `target_sql` on the target.
async fn drop_all(
    stack: Stack,
    connector: lockstep_e2e::PgConnector,
    table: String,
    target_sql: String,
) {
    connector.cleanup().await;
    let drop = format!("drop table if exists {table}");
    if let Ok(s) = stack.pg_source().await {
        let _ = s.batch_execute(&drop).await;
    }
    if let Ok(t) = stack.pg(&stack.pg_target_db).await {
        let _ = t.batch_execute(&format!("{drop}; {target_sql}")).await;
    }
}

/// A sink on the topic, run until the snapshot reached the target.
async fn synced_sink(
    stack: &Stack,
    name: &str,
    topic: &str,
    table: &str,
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
) -> Sink {
    let mut sink = Sink::start(pipeline(stack, name, topic))
        .await
        .expect("sink");
    let deadline = Instant::now() + Duration::from_secs(120);
    while table_text(target, table).await != table_text(source, table).await {
        assert!(Instant::now() < deadline, "the snapshot did not arrive");
        sink.run_until_idle(Duration::from_secs(2))
            .await
            .expect("snapshot applies");
    }
    sink
}

#[tokio::test]
async fn deletes_after_a_blocked_change_wait_with_it_across_batches_until_release() {
    let stack = Stack::get();
    let name = unique_name("blkdel").replace('_', "-");
    let table = name.replace('-', "_");
    let (source, target, connector) = table_and_connector(&stack, &name, &table).await;
    let cleanup = drop_all(stack.clone(), connector, table.clone(), String::new());
    let body = {
        let stack = stack.clone();
        async move {
            let topic = format!("{name}.public.{table}");
            let mut sink = synced_sink(&stack, &name, &topic, &table, &source, &target).await;

            // The source renames a column the target still has under the old name, in one
            // transaction with a change before it (which only the old name can take) and
            // changes after it: the first of those cannot be applied, and a delete follows it.
            source
                .batch_execute(&format!(
                    "update {table} set amount = amount + 100 where id = 7;
                     alter table {table} rename column amount to total;
                     insert into {table} (id, name, total) values (21, 'r21', 21);
                     update {table} set total = total + 1 where id = 1;
                     delete from {table} where id = 2;"
                ))
                .await
                .expect("rename with changes");
            let deadline = Instant::now() + Duration::from_secs(60);
            while sink.blocked().is_empty() {
                assert!(Instant::now() < deadline, "the table was not blocked");
                sink.run_until_idle(Duration::from_secs(2))
                    .await
                    .expect("sink runs");
            }
            let blocked = sink.blocked();
            assert_eq!(blocked.len(), 1, "{blocked:?}");
            assert_eq!(blocked[0].missing_columns, vec!["total".to_string()]);
            let record = blocked[0].record.clone().expect("the blocking record");
            let committed = |sink: &Sink| sink.committed().get(&(topic.clone(), 0)).copied();
            assert_eq!(
                committed(&sink),
                Some(Some(record.offset)),
                "the offset stops right before the blocking record"
            );

            // More transactions, each read in a batch of its own: deletes alone (no drift to
            // see), an insert under the new name, then deletes again.
            let later = [
                format!("delete from {table} where id = 3"),
                format!("delete from {table} where id = 4"),
                format!("insert into {table} (id, name, total) values (22, 'r22', 22)"),
                format!("delete from {table} where id in (5, 21)"),
                format!("delete from {table} where id = 6"),
            ];
            for sql in &later {
                source.batch_execute(sql).await.expect("source change");
                let stats = sink
                    .run_until_idle(Duration::from_secs(2))
                    .await
                    .expect("sink runs while the table is blocked");
                println!("{sql}: the sink handled {} records", stats.records);
                assert_eq!(
                    committed(&sink),
                    Some(Some(record.offset)),
                    "after `{sql}`: nothing past the blocking record is committed"
                );
            }
            assert_eq!(
                ids(&target, &table).await,
                (1..=20).collect::<Vec<i64>>(),
                "nothing past the blocking record reached the target"
            );
            let amount: String = target
                .query_one(
                    &format!("select amount::text from {table} where id = 7"),
                    &[],
                )
                .await
                .expect("row 7")
                .get(0);
            assert_eq!(amount, "107.00", "the change before the rename was applied");

            // The target is renamed too: the held changes are applied in order, deletes included.
            target
                .batch_execute(&format!(
                    "alter table {table} rename column amount to total"
                ))
                .await
                .expect("target rename");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                sink.run_until_idle(Duration::from_secs(3))
                    .await
                    .expect("sink catches up");
                let (s, t) = (
                    table_text(&source, &table).await,
                    table_text(&target, &table).await,
                );
                if s == t {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no convergence after release: source ids {:?}, target ids {:?}",
                    ids(&source, &table).await,
                    ids(&target, &table).await
                );
            }
            assert!(sink.blocked().is_empty(), "released: {:?}", sink.blocked());
            let expected: Vec<i64> = [1].into_iter().chain(7..=20).chain([22]).collect();
            assert_eq!(ids(&target, &table).await, expected);
        }
    };
    with_cleanup(body, cleanup).await;
}

/// A hold on request outlives the sink process: a DDL plan holds a quiesced table, changes the
/// source, then the target; a sink restarted in between must not apply the source's later
/// changes first (after a TRUNCATE, the target's would erase them).
#[tokio::test]
async fn a_hold_on_request_outlives_a_restart_until_released() {
    let stack = Stack::get();
    let name = unique_name("holdrs").replace('_', "-");
    let table = name.replace('-', "_");
    let (source, target, connector) = table_and_connector(&stack, &name, &table).await;
    let cleanup = drop_all(
        stack.clone(),
        connector,
        table.clone(),
        format!("delete from lockstep.sink_holds where pipeline = '{name}'"),
    );
    let body = {
        let stack = stack.clone();
        async move {
            let topic = format!("{name}.public.{table}");
            let mut sink = synced_sink(&stack, &name, &topic, &table, &source, &target).await;
            let recorded = || async {
                target
                    .query(
                        "select target_table from lockstep.sink_holds where pipeline = $1",
                        &[&name],
                    )
                    .await
                    .expect("holds table")
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<String>>()
            };

            sink.handle().hold(&table);
            sink.run_until_idle(Duration::from_secs(1))
                .await
                .expect("the hold takes effect");
            assert!(
                sink.blocked()
                    .iter()
                    .any(|b| b.table == table && b.held_by_request),
                "{:?}",
                sink.blocked()
            );
            assert_eq!(
                recorded().await,
                vec![table.clone()],
                "the hold is recorded"
            );

            // The sink stops; the source changes meanwhile; a new sink process starts.
            drop(sink);
            source
                .batch_execute(&format!(
                    "insert into {table} select g, 'late' || g, g from generate_series(21, 30) g;
                     delete from {table} where id <= 5;"
                ))
                .await
                .expect("changes while held");
            let mut sink = Sink::start(pipeline(&stack, &name, &topic))
                .await
                .expect("sink restarts");
            assert!(
                sink.blocked()
                    .iter()
                    .any(|b| b.table == table && b.held_by_request),
                "the restarted sink holds the table again: {:?}",
                sink.blocked()
            );
            sink.run_until_idle(Duration::from_secs(5))
                .await
                .expect("the sink runs while the table is held");
            assert_eq!(
                ids(&target, &table).await,
                (1..=20).collect::<Vec<i64>>(),
                "nothing held reached the target across the restart"
            );

            sink.handle().release(&table);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                sink.run_until_idle(Duration::from_secs(3))
                    .await
                    .expect("sink catches up");
                if table_text(&source, &table).await == table_text(&target, &table).await {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the released changes were not applied"
                );
            }
            assert_eq!(ids(&target, &table).await, (6..=30).collect::<Vec<i64>>());
            assert!(recorded().await.is_empty(), "the release is recorded");
        }
    };
    with_cleanup(body, cleanup).await;
}
