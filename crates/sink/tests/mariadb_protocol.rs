//! The measurement behind the MariaDB adapter's choice of the text protocol with escaped
//! literals over binary-protocol (prepared statement) parameters for its multi-row upserts.
//!
//! Not part of the regular suite (it is a benchmark, not a check): run it on the local stack with
//!
//! ```sh
//! cargo test -p lockstep-sink --release --test mariadb_protocol -- --ignored --nocapture
//! ```
//!
//! Every variant writes the same rows (10 columns of mixed types) with `INSERT ... ON DUPLICATE
//! KEY UPDATE`, 1,000 rows per statement and 5,000 per transaction, first into an empty table
//! and then over the existing rows (updates). Time includes building the statements (escaping,
//! hex) on the client. The first four variants drive the driver directly; the last two are the
//! adapter itself (`MariaDbTarget::apply` of planned batches, offsets included) in each of its
//! two protocols.

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use common::{create_mariadb_database, mariadb_pipeline, Cleanup};
use lockstep_debezium::temporal::days_from_civil;
use lockstep_debezium::value::mysql_quote;
use lockstep_debezium::{
    CoalescedBatch, Column, ColumnType, ConnectType, Op, Position, Row as DbzRow, Schema, TableOp,
    Value,
};
use lockstep_e2e::{unique_name, Stack};
use lockstep_sink::mariadb::MariaDbTarget;
use lockstep_sink::mysql_sql::{self, Protocol};
use lockstep_sink::SinkPipeline;
use mysql_async::prelude::Queryable;

const ROWS: usize = 100_000;
const PER_STATEMENT: usize = 1_000;
const PER_TRANSACTION: usize = 5_000;
const COLUMNS: &str = "id, name, amount, qty, active, born, updated, payload, raw, uid";

struct Row {
    id: i64,
    name: String,
    amount: String,
    qty: i64,
    active: bool,
    born: String,
    updated: String,
    payload: String,
    raw: Vec<u8>,
    uid: String,
}

fn rows(round: usize) -> Vec<Row> {
    (0..ROWS)
        .map(|i| Row {
            id: i as i64,
            name: format!("name-{i}-{round} it's a \"quoted\" \\ name é"),
            amount: format!("{}.{:02}", i * 3 + round, i % 100),
            qty: (i % 1000) as i64,
            active: i % 2 == 0,
            born: format!("19{:02}-{:02}-{:02}", i % 100, i % 12 + 1, i % 28 + 1),
            updated: format!("2024-02-29 12:{:02}:{:02}.{:06}", i % 60, round % 60, i),
            payload: format!("{{\"i\":{i},\"round\":{round},\"tags\":[\"a\",\"b\"]}}"),
            raw: (0..32).map(|b| (b * 7 + i + round) as u8).collect(),
            uid: format!("{i:08x}-0000-4000-8000-{round:012x}"),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

const UPDATE: &str = " ON DUPLICATE KEY UPDATE name = VALUES(name), amount = VALUES(amount), \
    qty = VALUES(qty), active = VALUES(active), born = VALUES(born), updated = VALUES(updated), \
    payload = VALUES(payload), raw = VALUES(raw), uid = VALUES(uid)";

async fn text_protocol(conn: &mut mysql_async::Conn, table: &str, rows: &[Row]) -> f64 {
    let started = Instant::now();
    for transaction in rows.chunks(PER_TRANSACTION) {
        conn.query_drop("START TRANSACTION").await.expect("begin");
        for chunk in transaction.chunks(PER_STATEMENT) {
            let mut sql = format!("INSERT INTO {table} ({COLUMNS}) VALUES ");
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, X'{}', {})",
                    r.id,
                    mysql_quote(&r.name),
                    r.amount,
                    r.qty,
                    if r.active { "TRUE" } else { "FALSE" },
                    mysql_quote(&r.born),
                    mysql_quote(&r.updated),
                    mysql_quote(&r.payload),
                    hex(&r.raw),
                    mysql_quote(&r.uid),
                ));
            }
            sql.push_str(UPDATE);
            conn.query_drop(sql).await.expect("text insert");
        }
        conn.query_drop("COMMIT").await.expect("commit");
    }
    started.elapsed().as_secs_f64()
}

fn params(r: &Row) -> [mysql_async::Value; 10] {
    use mysql_async::Value;
    [
        Value::Int(r.id),
        Value::Bytes(r.name.clone().into_bytes()),
        Value::Bytes(r.amount.clone().into_bytes()),
        Value::Int(r.qty),
        Value::Int(i64::from(r.active)),
        Value::Bytes(r.born.clone().into_bytes()),
        Value::Bytes(r.updated.clone().into_bytes()),
        Value::Bytes(r.payload.clone().into_bytes()),
        Value::Bytes(r.raw.clone()),
        Value::Bytes(r.uid.clone().into_bytes()),
    ]
}

/// Every parameter as bytes, as the adapter binds them.
fn text_params(r: &Row) -> Vec<mysql_async::Value> {
    params(r)
        .into_iter()
        .map(|v| match v {
            mysql_async::Value::Int(i) => mysql_async::Value::Bytes(i.to_string().into_bytes()),
            other => other,
        })
        .collect()
}

/// The row as change-event values, for the adapter variants.
fn values(r: &Row, round: usize) -> Vec<(&'static str, Value)> {
    let i = r.id;
    let day = days_from_civil(2024, 2, 29);
    vec![
        ("id", Value::Int(i)),
        ("name", Value::Text(r.name.clone())),
        ("amount", Value::Decimal(r.amount.clone())),
        ("qty", Value::Int(r.qty)),
        ("active", Value::Bool(r.active)),
        (
            "born",
            Value::Date {
                days: days_from_civil(1900 + i % 100, (i % 12 + 1) as u32, (i % 28 + 1) as u32)
                    as i32,
            },
        ),
        (
            "updated",
            Value::Timestamp {
                micros: (day * 86_400 + 43_200 + (i % 60) * 60 + (round as i64 % 60)) * 1_000_000
                    + i % 1_000_000,
            },
        ),
        ("payload", Value::Json(r.payload.clone())),
        ("raw", Value::Bytes(r.raw.clone())),
        ("uid", Value::Uuid(r.uid.clone())),
    ]
}

async fn adapter(
    target: &mut MariaDbTarget,
    table: &lockstep_sink::table::TargetTable,
    rows: &[Row],
    round: usize,
    (offset, committed): &mut (i64, Option<i64>),
) -> f64 {
    let column = |name: &str, value: Value| Column {
        name: name.into(),
        column_type: ColumnType::from_schema(&Schema::new(ConnectType::String)).into(),
        value,
    };
    let started = Instant::now();
    let partition = ("bench".to_string(), 0);
    for transaction in rows.chunks(PER_TRANSACTION) {
        let ops = transaction
            .iter()
            .map(|r| {
                *offset += 1;
                TableOp::Upsert {
                    key: Cow::Owned(DbzRow {
                        schema_name: None,
                        columns: vec![column("id", Value::Int(r.id))],
                    }),
                    row: Cow::Owned(DbzRow {
                        schema_name: None,
                        columns: values(r, round)
                            .into_iter()
                            .map(|(n, v)| column(n, v))
                            .collect(),
                    }),
                    op: Op::Update,
                    created: false,
                    position: Position {
                        topic: "bench".into(),
                        partition: 0,
                        offset: *offset,
                    },
                }
            })
            .collect();
        let batch = CoalescedBatch {
            ops,
            ..CoalescedBatch::default()
        };
        let statements = mysql_sql::plan(table, &batch).expect("plan");
        let next = *offset + 1;
        target
            .apply(
                "bench",
                &statements,
                &BTreeMap::from([(partition.clone(), *committed)]),
                &BTreeMap::from([(partition.clone(), next)]),
            )
            .await
            .expect("apply");
        *committed = Some(next);
    }
    started.elapsed().as_secs_f64()
}

/// MariaDB's COM_STMT_BULK_EXECUTE (`exec_batch`): one single-row statement, every row's
/// parameters in as few packets as `max_allowed_packet` allows.
async fn bulk_protocol(conn: &mut mysql_async::Conn, table: &str, rows: &[Row]) -> f64 {
    let started = Instant::now();
    let sql =
        format!("INSERT INTO {table} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?){UPDATE}");
    for transaction in rows.chunks(PER_TRANSACTION) {
        conn.query_drop("START TRANSACTION").await.expect("begin");
        for chunk in transaction.chunks(PER_STATEMENT) {
            conn.exec_batch(sql.as_str(), chunk.iter().map(text_params))
                .await
                .expect("bulk insert");
        }
        conn.query_drop("COMMIT").await.expect("commit");
    }
    started.elapsed().as_secs_f64()
}

async fn binary_protocol(conn: &mut mysql_async::Conn, table: &str, rows: &[Row]) -> f64 {
    let started = Instant::now();
    for transaction in rows.chunks(PER_TRANSACTION) {
        conn.query_drop("START TRANSACTION").await.expect("begin");
        for chunk in transaction.chunks(PER_STATEMENT) {
            let tuple = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            let sql = format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES {}{UPDATE}",
                vec![tuple; chunk.len()].join(", ")
            );
            let mut values = Vec::with_capacity(chunk.len() * 10);
            for r in chunk {
                values.extend(params(r));
            }
            conn.exec_drop(sql, values).await.expect("binary insert");
        }
        conn.query_drop("COMMIT").await.expect("commit");
    }
    started.elapsed().as_secs_f64()
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn mariadb_row_protocols_compared() {
    let stack = Stack::get();
    let mut cleanup = Cleanup::new(&stack);
    let db = unique_name("bench_protocol");
    create_mariadb_database(&mut cleanup, &db).await;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(stack.mariadb_host.clone())
        .tcp_port(stack.mariadb_port)
        .user(Some(stack.mariadb_user.clone()))
        .pass(Some(common::mariadb_password()))
        .prefer_socket(false)
        .init(vec![
            "SET NAMES utf8mb4",
            "SET time_zone = '+00:00'",
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        ]);
    let mut conn = mysql_async::Conn::new(opts.clone()).await.expect("MariaDB");
    // Without a statement cache every statement is prepared, executed and closed: what a sink
    // whose row counts vary from batch to batch would mostly do.
    let mut uncached = mysql_async::Conn::new(opts.stmt_cache_size(0))
        .await
        .expect("MariaDB");
    let table = format!("{db}.t");
    conn.query_drop(format!(
        "CREATE TABLE {table} (id bigint primary key, name varchar(200), amount decimal(12,2),
           qty int, active tinyint(1), born date, updated datetime(6), payload json,
           raw varbinary(64), uid char(36)) ENGINE=InnoDB"
    ))
    .await
    .expect("table");
    let (first, second) = (rows(1), rows(2));
    let yaml = mariadb_pipeline(&stack, "bench", &["bench".to_string()], &db);
    let pipeline = SinkPipeline::parse(Path::new("bench.yaml"), &yaml).expect("pipeline");
    let mut target = MariaDbTarget::connect(&pipeline.target)
        .await
        .expect("adapter");
    let target_table = target.table("t").await.expect("catalog");
    let mut position = (0, None);
    for attempt in 0..2 {
        for (name, variant) in [
            ("text literals", 0),
            ("binary, cached", 1),
            ("binary, prepared each time", 2),
            ("MariaDB bulk", 3),
            ("adapter, bulk (MariaDB)", 4),
            ("adapter, text (MySQL)", 5),
        ] {
            conn.query_drop(format!("TRUNCATE TABLE {table}"))
                .await
                .expect("truncate");
            let mut timings = Vec::new();
            for (round, data) in [&first, &second].into_iter().enumerate() {
                timings.push(match variant {
                    0 => text_protocol(&mut conn, &table, data).await,
                    1 => binary_protocol(&mut conn, &table, data).await,
                    2 => binary_protocol(&mut uncached, &table, data).await,
                    3 => bulk_protocol(&mut conn, &table, data).await,
                    _ => {
                        target.set_protocol(if variant == 4 {
                            Protocol::Bulk
                        } else {
                            Protocol::Text
                        });
                        adapter(&mut target, &target_table, data, round, &mut position).await
                    }
                });
            }
            let rate = |s: f64| ROWS as f64 / s;
            println!(
                "run {attempt} {name:27}: insert {:>9.0} rows/s, update {:>9.0} rows/s",
                rate(timings[0]),
                rate(timings[1])
            );
        }
    }
}
