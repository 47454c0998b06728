//! The MariaDB target adapter against the local stack's real MariaDB, without Kafka: fencing of
//! the offsets, atomicity of rows + offsets (a TRUNCATE included), catalog errors, the `evolve`
//! DDL, and statements cut below `max_allowed_packet`.
//!
//! Each test works in a MariaDB database of its own, dropped at the end (also on failure). The
//! tests that write rows run with both ways of sending them ([`Protocol`]): MariaDB's bulk
//! execute (what a MariaDB target uses) and multi-row text statements (what a MySQL target uses).

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{create_mariadb_database, mariadb, mariadb_pipeline, Cleanup};
use lockstep_debezium::{
    CoalescedBatch, Column, ColumnType, ConnectType, Op, Position, Row, Schema, TableOp, Value,
};
use lockstep_e2e::{unique_name, Stack};
use lockstep_sink::mariadb::MariaDbTarget;
use lockstep_sink::mysql_sql::Protocol;
use lockstep_sink::{mysql_sql, ApplyError, PartitionKey, SinkPipeline};
use mysql_async::prelude::Queryable;

async fn setup(prefix: &str) -> (Stack, Cleanup, String, mysql_async::Conn) {
    let stack = Stack::get();
    let mut cleanup = Cleanup::new(&stack);
    let database = unique_name(prefix);
    create_mariadb_database(&mut cleanup, &database).await;
    let conn = mariadb(&stack, Some(&database)).await;
    (stack, cleanup, database, conn)
}

async fn target(stack: &Stack, database: &str) -> MariaDbTarget {
    let yaml = mariadb_pipeline(stack, "adapter-test", &["t".to_string()], database);
    let pipeline = SinkPipeline::parse(Path::new("test.yaml"), &yaml).expect("pipeline");
    let target = MariaDbTarget::connect(&pipeline.target)
        .await
        .expect("connect");
    assert_eq!(
        target.protocol(),
        Protocol::Bulk,
        "MariaDB gets bulk execute"
    );
    target
}

fn key(topic: &str, partition: i32) -> PartitionKey {
    (topic.to_string(), partition)
}

fn col(name: &str, value: Value) -> Column {
    Column {
        name: name.into(),
        column_type: ColumnType::from_schema(&Schema::new(ConnectType::String)).into(),
        value,
    }
}

fn upsert(id: i64, columns: Vec<Column>) -> TableOp<'static> {
    let mut all = vec![col("id", Value::Int(id))];
    all.extend(columns);
    TableOp::Upsert {
        key: Cow::Owned(Row {
            schema_name: None,
            columns: vec![col("id", Value::Int(id))],
        }),
        row: Cow::Owned(Row {
            schema_name: None,
            columns: all,
        }),
        op: Op::Create,
        created: false,
        position: Position {
            topic: "t".into(),
            partition: 0,
            offset: id,
        },
    }
}

fn batch(ops: Vec<TableOp<'static>>, truncate: bool) -> CoalescedBatch<'static> {
    CoalescedBatch {
        truncate: truncate.then(|| Position {
            topic: "t".into(),
            partition: 0,
            offset: 0,
        }),
        ops,
        ..CoalescedBatch::default()
    }
}

#[tokio::test]
async fn offsets_are_fenced_and_a_first_insert_never_overwrites() {
    let (stack, _cleanup, database, mut raw) = setup("sink_fence").await;
    let mut a = target(&stack, &database).await;
    let mut b = target(&stack, &database).await;
    let p0 = key("t", 0);
    let one = |k: &PartitionKey, v: Option<i64>| BTreeMap::from([(k.clone(), v)]);
    let next = |k: &PartitionKey, v: i64| BTreeMap::from([(k.clone(), v)]);

    a.apply("fence", &[], &one(&p0, None), &next(&p0, 10))
        .await
        .expect("first batch");
    // B believes nothing is committed: it is fenced and writes nothing.
    match b.apply("fence", &[], &one(&p0, None), &next(&p0, 5)).await {
        Err(ApplyError::Fenced {
            expected: None,
            found: Some(10),
            ..
        }) => {}
        other => panic!("expected a fence, got {other:?}"),
    }
    a.apply("fence", &[], &one(&p0, Some(10)), &next(&p0, 20))
        .await
        .expect("second batch");
    match b
        .apply("fence", &[], &one(&p0, Some(10)), &next(&p0, 15))
        .await
    {
        Err(ApplyError::Fenced {
            expected: Some(10),
            found: Some(20),
            ..
        }) => {}
        other => panic!("expected a fence, got {other:?}"),
    }
    assert_eq!(a.load_offsets("fence").await.expect("offsets")[&p0], 20);

    // Another process inserts partition 1's first row and has not committed yet: B's first
    // insert of the same row waits for it and then fails instead of overwriting it.
    let p1 = key("t", 1);
    raw.query_drop("START TRANSACTION").await.expect("begin");
    raw.query_drop(
        "INSERT INTO lockstep_sink_offsets (pipeline, topic, kafka_partition, next_offset)
         VALUES ('fence', 't', 1, 100)",
    )
    .await
    .expect("concurrent insert");
    let (expected, moved) = (one(&p1, None), next(&p1, 50));
    let racing = tokio::spawn(async move {
        let result = b.apply("fence", &[], &expected, &moved).await;
        (b, result)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !racing.is_finished(),
        "the second insert waits for the first"
    );
    raw.query_drop("COMMIT").await.expect("commit");
    let (_b, result) = racing.await.expect("task");
    assert!(
        matches!(result, Err(ApplyError::Fenced { .. })),
        "expected a fence, got {result:?}"
    );
    assert_eq!(a.load_offsets("fence").await.expect("offsets")[&p1], 100);
}

#[tokio::test]
async fn a_failed_batch_leaves_rows_and_offsets_as_they_were_truncate_included() {
    for protocol in [Protocol::Bulk, Protocol::Text] {
        failed_batch_leaves_everything_as_it_was(protocol).await;
    }
}

async fn failed_batch_leaves_everything_as_it_was(protocol: Protocol) {
    let (stack, _cleanup, database, mut raw) = setup("sink_atomic").await;
    raw.query_drop(
        "CREATE TABLE t (id bigint primary key, n int, note varchar(10)) ENGINE = InnoDB;
         INSERT INTO t VALUES (1, 1, 'kept')",
    )
    .await
    .expect("table");
    let mut target = target(&stack, &database).await;
    target.set_protocol(protocol);
    let table = target.table("t").await.expect("catalog");
    assert_eq!(table.primary_key, vec!["id"]);
    assert_eq!(
        table.columns,
        vec![
            ("id".to_string(), "bigint(20)".to_string()),
            ("n".to_string(), "int(11)".to_string()),
            ("note".to_string(), "varchar(10)".to_string()),
        ]
    );
    let p0 = key("t", 0);
    target
        .apply(
            "atomic",
            &[],
            &BTreeMap::from([(p0.clone(), None)]),
            &BTreeMap::from([(p0.clone(), 20)]),
        )
        .await
        .expect("position");

    // A truncate, a good row, and a row MariaDB refuses in strict mode (text into an int).
    let bad = batch(
        vec![
            upsert(
                2,
                vec![
                    col("n", Value::Int(2)),
                    col("note", Value::Text("b".into())),
                ],
            ),
            upsert(3, vec![col("n", Value::Text("x".into()))]),
        ],
        true,
    );
    let statements = mysql_sql::plan(&table, &bad).expect("plan");
    let err = target
        .apply(
            "atomic",
            &statements,
            &BTreeMap::from([(p0.clone(), Some(20))]),
            &BTreeMap::from([(p0.clone(), 30)]),
        )
        .await
        .expect_err("strict mode refuses the row");
    assert!(
        err.is_poison() && err.to_string().contains("1366"),
        "{protocol:?}: a refused value is about the record: {err}"
    );
    let rows: Vec<(i64, String)> = raw
        .query("SELECT id, note FROM t ORDER BY id")
        .await
        .expect("rows");
    assert_eq!(
        rows,
        vec![(1, "kept".to_string())],
        "the DELETE standing for the TRUNCATE rolled back with the batch"
    );
    assert_eq!(
        target.load_offsets("atomic").await.expect("offsets")[&p0],
        20
    );

    // A value too long for varchar(10) is refused too, never truncated.
    let long = batch(
        vec![upsert(4, vec![col("note", Value::Text("x".repeat(11)))])],
        false,
    );
    let err = target
        .apply(
            "atomic",
            &mysql_sql::plan(&table, &long).expect("plan"),
            &BTreeMap::from([(p0.clone(), Some(20))]),
            &BTreeMap::from([(p0.clone(), 30)]),
        )
        .await
        .expect_err("too long");
    assert!(err.to_string().contains("1406"), "{protocol:?}: {err}");

    let good = batch(
        vec![upsert(
            2,
            vec![
                col("n", Value::Int(2)),
                col("note", Value::Text("b".into())),
            ],
        )],
        true,
    );
    target
        .apply(
            "atomic",
            &mysql_sql::plan(&table, &good).expect("plan"),
            &BTreeMap::from([(p0.clone(), Some(20))]),
            &BTreeMap::from([(p0.clone(), 30)]),
        )
        .await
        .expect("good batch");
    let rows: Vec<(i64, i32, String)> = raw
        .query("SELECT id, n, note FROM t ORDER BY id")
        .await
        .expect("rows");
    assert_eq!(rows, vec![(2, 2, "b".to_string())]);
    assert_eq!(
        target.load_offsets("atomic").await.expect("offsets")[&p0],
        30
    );
}

#[tokio::test]
async fn catalog_errors_name_the_table_and_the_remedy() {
    let (stack, _cleanup, database, mut raw) = setup("sink_catalog").await;
    raw.query_drop(
        "CREATE TABLE no_tx (id int primary key) ENGINE = MyISAM;
         CREATE TABLE no_pk (id int, note text) ENGINE = InnoDB;
         CREATE TABLE two (`Region` char(2), id int, PRIMARY KEY (id, `Region`)) ENGINE = InnoDB",
    )
    .await
    .expect("tables");
    let mut target = target(&stack, &database).await;
    match target.table("absent").await {
        Err(ApplyError::MissingTable { table }) => assert_eq!(table, format!("{database}.absent")),
        other => panic!("expected a missing table, got {other:?}"),
    }
    let err = target.table("no_tx").await.expect_err("MyISAM");
    assert!(
        err.to_string().contains("MyISAM") && err.to_string().contains("ENGINE = InnoDB"),
        "{err}"
    );
    let no_pk = target.table("no_pk").await.expect("catalog");
    let err = mysql_sql::plan(&no_pk, &batch(vec![upsert(1, vec![])], false)).expect_err("no pk");
    assert!(err.to_string().contains("no primary key"), "{err}");
    let two = target.table("two").await.expect("catalog");
    assert_eq!(
        two.primary_key,
        vec!["id", "Region"],
        "key order is the index's"
    );
}

#[tokio::test]
async fn evolve_adds_nullable_columns_once() {
    let (stack, _cleanup, database, mut raw) = setup("sink_evolve").await;
    raw.query_drop(
        "CREATE TABLE t (id bigint primary key) ENGINE = InnoDB; INSERT INTO t VALUES (1)",
    )
    .await
    .expect("table");
    let mut target = target(&stack, &database).await;
    let table = target.table("t").await.expect("catalog");
    let typed = |name: &str, schema: Schema| Column {
        name: name.into(),
        column_type: ColumnType::from_schema(&schema).into(),
        value: Value::Null,
    };
    let mut decimal = Schema::new(ConnectType::Bytes);
    decimal.name = Some("org.apache.kafka.connect.data.Decimal".into());
    decimal.parameters.insert("scale".into(), "2".into());
    decimal
        .parameters
        .insert("connect.decimal.precision".into(), "12".into());
    let mut zoned = Schema::new(ConnectType::String);
    zoned.name = Some("io.debezium.time.ZonedTimestamp".into());
    let columns = vec![
        typed("amount", decimal),
        typed("seen", zoned),
        typed("note", Schema::new(ConnectType::String)),
    ];
    target
        .add_nullable_columns(&table, &columns)
        .await
        .expect("evolve");
    target
        .add_nullable_columns(&table, &columns)
        .await
        .expect("a second evolve of the same columns is a no-op");
    target.forget("t");
    let evolved = target.table("t").await.expect("catalog");
    assert_eq!(
        evolved.columns,
        vec![
            ("id".to_string(), "bigint(20)".to_string()),
            ("amount".to_string(), "decimal(12,2)".to_string()),
            ("seen".to_string(), "datetime(6)".to_string()),
            ("note".to_string(), "longtext".to_string()),
        ]
    );
    let nulls: Option<(Option<String>, Option<String>)> = raw
        .query_first("SELECT amount, note FROM t WHERE id = 1")
        .await
        .expect("row");
    assert_eq!(nulls, Some((None, None)));

    // The evolved columns take values; a decimal with more scale than the column is rounded by
    // the server with a note (read and logged by the adapter), not refused.
    for protocol in [Protocol::Bulk, Protocol::Text] {
        target.set_protocol(protocol);
        let p0 = key("t", 0);
        let committed = target.load_offsets("evolve").await.expect("offsets");
        let batch = batch(
            vec![upsert(
                2,
                vec![
                    col("amount", Value::Decimal("1.239".into())),
                    col(
                        "seen",
                        Value::TimestampTz("2024-02-29T23:59:59.5+02:00".into()),
                    ),
                    col("note", Value::Text("n".into())),
                ],
            )],
            false,
        );
        target
            .apply(
                "evolve",
                &mysql_sql::plan(&evolved, &batch).expect("plan"),
                &BTreeMap::from([(p0.clone(), committed.get(&p0).copied())]),
                &BTreeMap::from([(p0.clone(), committed.get(&p0).map_or(1, |n| n + 1))]),
            )
            .await
            .expect("evolved columns take values");
        let row: Option<(String, String)> = raw
            .query_first("SELECT CAST(amount AS CHAR), CAST(seen AS CHAR) FROM t WHERE id = 2")
            .await
            .expect("row");
        assert_eq!(
            row,
            Some(("1.24".to_string(), "2024-02-29 21:59:59.500000".to_string())),
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn batches_larger_than_max_allowed_packet_are_cut_and_an_oversized_row_is_refused() {
    for protocol in [Protocol::Bulk, Protocol::Text] {
        packets_stay_below_the_limit(protocol).await;
    }
}

async fn packets_stay_below_the_limit(protocol: Protocol) {
    let (stack, _cleanup, database, mut raw) = setup("sink_packet").await;
    raw.query_drop("CREATE TABLE t (id bigint primary key, body longtext) ENGINE = InnoDB")
        .await
        .expect("table");
    let max_packet: u64 = raw
        .query_first("SELECT @@max_allowed_packet")
        .await
        .expect("query")
        .expect("value");
    let mut target = target(&stack, &database).await;
    target.set_protocol(protocol);
    let table = target.table("t").await.expect("catalog");
    let p0 = key("t", 0);

    // About 1.5 times max_allowed_packet of rows, with quotes and backslashes to escape.
    let row_bytes = 64 * 1024;
    let rows = (max_packet as usize * 3 / 2) / row_bytes + 1;
    let body = |i: usize| format!("{i:08}'\\").repeat(row_bytes / 10);
    let big = batch(
        (0..rows)
            .map(|i| upsert(i as i64, vec![col("body", Value::Text(body(i)))]))
            .collect(),
        false,
    );
    let statements = mysql_sql::plan(&table, &big).expect("plan");
    target
        .apply(
            "packet",
            &statements,
            &BTreeMap::from([(p0.clone(), None)]),
            &BTreeMap::from([(p0.clone(), rows as i64)]),
        )
        .await
        .expect("a batch larger than max_allowed_packet applies");
    let (count, total, exact): (u64, u64, u64) = raw
        .query_first(format!(
            "SELECT COUNT(*), SUM(LENGTH(body)), SUM(body = REPEAT(CONCAT(LPAD(id, 8, '0'), '''\\\\'), {}))
               FROM t",
            row_bytes / 10
        ))
        .await
        .expect("query")
        .expect("row");
    assert_eq!(count as usize, rows);
    assert_eq!(total as usize, rows * (row_bytes / 10) * 10);
    assert_eq!(
        exact as usize, rows,
        "{protocol:?}: every body arrived unaltered"
    );

    // One row larger than the server accepts is refused before anything is sent.
    let huge = batch(
        vec![upsert(
            -1,
            vec![col(
                "body",
                Value::Text("x".repeat(max_packet as usize + 1)),
            )],
        )],
        false,
    );
    let err = target
        .apply(
            "packet",
            &mysql_sql::plan(&table, &huge).expect("plan"),
            &BTreeMap::from([(p0.clone(), Some(rows as i64))]),
            &BTreeMap::from([(p0.clone(), rows as i64 + 1)]),
        )
        .await
        .expect_err("too large");
    assert!(
        err.is_poison() && err.to_string().contains("max_allowed_packet"),
        "{protocol:?}: {err}"
    );
    assert_eq!(
        target.load_offsets("packet").await.expect("offsets")[&p0],
        rows as i64
    );
}
