//! Every Debezium logical type (and plain Connect type) a PostgreSQL source produces, round-tripped
//! through ONE Debezium connector into TWO sinks: a PostgreSQL target and a MariaDB target.
//!
//! Table-driven: one [`Case`] per source column type, with edge values (NULL, negative and very
//! large decimals, dates before 1970 and far in the future, microseconds, unicode, empty strings,
//! quotes and backslashes). The same values are written before the connector starts (its snapshot,
//! `op: r`) and after (streaming, `op: c`), because Debezium converts them on different code
//! paths. Each value read back from each target must equal the source's, compared in a canonical
//! text per type (`lockstep_verify::canonical`); a failure names the type, the engine and the row.
//!
//! Debezium's defaults are kept: `decimal.handling.mode=precise` (numeric(p,s) is `Decimal`, an
//! unconstrained numeric `VariableScaleDecimal`), `time.precision.mode=adaptive`,
//! `interval.handling.mode=numeric` (`MicroDuration`, which approximates a month as 30.4375 days:
//! intervals with months cannot round-trip in this mode, so the interval values here have none;
//! use `interval.handling.mode=string` for exact intervals).
//!
//! MariaDB has no arrays: `int[]` and `text[]` land in JSON columns as JSON arrays.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    create_mariadb_database, mariadb, mariadb_pipeline, postgres_pipeline, start_connector, Cleanup,
};
use lockstep_e2e::{unique_name, Stack};
use lockstep_sink::{Sink, SinkPipeline};
use lockstep_verify::canonical::canonical_opt;
use lockstep_verify::ColumnKind::{self, *};
use mysql_async::prelude::Queryable;

/// One source column type and how to check it.
struct Case {
    /// The PostgreSQL source type and the Debezium type it becomes.
    label: &'static str,
    pg_type: &'static str,
    mariadb_type: &'static str,
    /// PostgreSQL literals of rows 1..=5 (`NULL` for SQL NULL).
    values: [&'static str; 5],
    /// How a PostgreSQL side (source and PostgreSQL target) reads the value as text (`{c}` is
    /// the column) and normalises it.
    pg_read: &'static str,
    pg_kind: ColumnKind,
    /// The same on the MariaDB target.
    mariadb_read: &'static str,
    mariadb_kind: ColumnKind,
}

const TEXT: &str = "{c}::text";
const CHAR: &str = "CAST({c} AS CHAR)";

/// The cases; `{mood}` in a type stands for the test's own enum type.
fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "numeric(20,6) → Decimal",
            pg_type: "numeric(20,6)",
            mariadb_type: "decimal(20,6)",
            values: [
                "1234.5",
                "NULL",
                "-99999999999999.999999",
                "99999999999999.999999",
                "0",
            ],
            pg_read: TEXT,
            pg_kind: Decimal,
            mariadb_read: CHAR,
            mariadb_kind: Decimal,
        },
        Case {
            label: "numeric(38,10) → Decimal",
            pg_type: "numeric(38,10)",
            mariadb_type: "decimal(38,10)",
            values: [
                "0.0000000001",
                "NULL",
                "-1234567890123456789012345678.0123456789",
                "9999999999999999999999999999.9999999999",
                "-0.5",
            ],
            pg_read: TEXT,
            pg_kind: Decimal,
            mariadb_read: CHAR,
            mariadb_kind: Decimal,
        },
        Case {
            label: "numeric → VariableScaleDecimal",
            pg_type: "numeric",
            mariadb_type: "decimal(65,30)",
            values: [
                "3.14159",
                "NULL",
                "-12345678901234567890.123456789012345678",
                "12345678901234567890123456789012345",
                "0.000000000000000000000000000001",
            ],
            pg_read: TEXT,
            pg_kind: Decimal,
            mariadb_read: CHAR,
            mariadb_kind: Decimal,
        },
        Case {
            label: "date → Date",
            pg_type: "date",
            mariadb_type: "date",
            values: [
                "'2024-02-29'",
                "NULL",
                "'1969-07-20'",
                "'9999-12-31'",
                "'0001-01-01'",
            ],
            pg_read: TEXT,
            pg_kind: Date,
            mariadb_read: CHAR,
            mariadb_kind: Date,
        },
        Case {
            label: "time(3) → Time (ms)",
            pg_type: "time(3)",
            mariadb_type: "time(3)",
            values: [
                "'12:34:56.789'",
                "NULL",
                "'00:00:00.001'",
                "'23:59:59.999'",
                "'00:00:00'",
            ],
            pg_read: TEXT,
            pg_kind: Time,
            mariadb_read: CHAR,
            mariadb_kind: Time,
        },
        Case {
            label: "time → MicroTime",
            pg_type: "time",
            mariadb_type: "time(6)",
            values: [
                "'12:34:56.789012'",
                "NULL",
                "'00:00:00'",
                "'23:59:59.999999'",
                "'24:00:00'",
            ],
            pg_read: TEXT,
            pg_kind: Time,
            mariadb_read: CHAR,
            mariadb_kind: Time,
        },
        Case {
            label: "time(6) → MicroTime",
            pg_type: "time(6)",
            mariadb_type: "time(6)",
            values: [
                "'00:00:00.000001'",
                "NULL",
                "'01:02:03.4'",
                "'23:59:59.999999'",
                "'12:00:00'",
            ],
            pg_read: TEXT,
            pg_kind: Time,
            mariadb_read: CHAR,
            mariadb_kind: Time,
        },
        Case {
            label: "timetz → ZonedTime",
            pg_type: "timetz",
            mariadb_type: "time(6)",
            values: [
                "'12:00:00+02'",
                "NULL",
                "'00:00:00.000001-01:30'",
                "'23:59:59.999999+14'",
                "'00:00:00+00'",
            ],
            pg_read: "({c} at time zone 'UTC')::time::text",
            pg_kind: Time,
            mariadb_read: CHAR,
            mariadb_kind: Time,
        },
        Case {
            label: "timestamp(3) → Timestamp (ms)",
            pg_type: "timestamp(3)",
            mariadb_type: "datetime(3)",
            values: [
                "'2024-02-29 12:34:56.123'",
                "NULL",
                "'1969-12-31 23:59:59.999'",
                "'2999-01-01 00:00:00.5'",
                "'1970-01-01 00:00:00'",
            ],
            pg_read: TEXT,
            pg_kind: Timestamp,
            mariadb_read: CHAR,
            mariadb_kind: Timestamp,
        },
        Case {
            label: "timestamp → MicroTimestamp",
            pg_type: "timestamp",
            mariadb_type: "datetime(6)",
            values: [
                "'2024-02-29 12:34:56.123456'",
                "NULL",
                "'1900-01-01 00:00:00.000001'",
                "'9999-12-31 23:59:59.999999'",
                "'1970-01-01 00:00:00'",
            ],
            pg_read: TEXT,
            pg_kind: Timestamp,
            mariadb_read: CHAR,
            mariadb_kind: Timestamp,
        },
        Case {
            label: "timestamp(6) → MicroTimestamp",
            pg_type: "timestamp(6)",
            mariadb_type: "datetime(6)",
            values: [
                "'2000-02-29 00:00:00.000001'",
                "NULL",
                "'0001-01-01 00:00:00'",
                "'2038-01-19 03:14:08.999999'",
                "'1969-12-31 23:59:59.999999'",
            ],
            pg_read: TEXT,
            pg_kind: Timestamp,
            mariadb_read: CHAR,
            mariadb_kind: Timestamp,
        },
        Case {
            label: "timestamptz → ZonedTimestamp",
            pg_type: "timestamptz",
            mariadb_type: "datetime(6)",
            values: [
                "'2024-02-29 23:59:59.123456+02'",
                "NULL",
                "'1969-07-20 20:17:40-05'",
                "'9999-12-31 23:59:59.999999+00'",
                "'1970-01-01 00:00:00+00'",
            ],
            pg_read: TEXT,
            pg_kind: TimestampTz,
            mariadb_read: CHAR,
            mariadb_kind: Timestamp,
        },
        Case {
            label: "json → Json",
            pg_type: "json",
            mariadb_type: "json",
            values: [
                r#"'{"b": 1, "a": [1, 2.5, "x"], "n": null}'"#,
                "NULL",
                r#"'{"q": "it''s \"q\" \\ back", "u": "日本語 🎉"}'"#,
                "'[]'",
                "'null'",
            ],
            pg_read: TEXT,
            pg_kind: Json,
            mariadb_read: CHAR,
            mariadb_kind: Json,
        },
        Case {
            label: "jsonb → Json",
            pg_type: "jsonb",
            mariadb_type: "json",
            values: [
                r#"'{"b": 1, "a": [1, 2.5, "x"], "n": null}'"#,
                "NULL",
                r#"'{"q": "it''s \"q\" \\ back", "big": 12345678901234567890}'"#,
                r#"'"just a string"'"#,
                "'{}'",
            ],
            pg_read: TEXT,
            pg_kind: Json,
            mariadb_read: CHAR,
            mariadb_kind: Json,
        },
        Case {
            label: "uuid → Uuid (MariaDB char(36))",
            pg_type: "uuid",
            mariadb_type: "char(36)",
            values: [
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                "NULL",
                "'00000000-0000-0000-0000-000000000000'",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                "'123e4567-e89b-12d3-a456-426614174000'",
            ],
            pg_read: TEXT,
            pg_kind: Other,
            mariadb_read: CHAR,
            mariadb_kind: Other,
        },
        Case {
            label: "uuid → Uuid (MariaDB uuid)",
            pg_type: "uuid",
            mariadb_type: "uuid",
            values: [
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                "NULL",
                "'00000000-0000-0000-0000-000000000000'",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                "'123e4567-e89b-12d3-a456-426614174000'",
            ],
            pg_read: TEXT,
            pg_kind: Other,
            mariadb_read: CHAR,
            mariadb_kind: Other,
        },
        Case {
            label: "enum (CREATE TYPE) → Enum",
            pg_type: "{mood}",
            mariadb_type: "enum('sad','ok','happy')",
            values: ["'happy'", "NULL", "'sad'", "'ok'", "'sad'"],
            pg_read: TEXT,
            pg_kind: Text,
            mariadb_read: CHAR,
            mariadb_kind: Text,
        },
        Case {
            label: "bytea → bytes",
            pg_type: "bytea",
            mariadb_type: "longblob",
            values: [
                r"'\xdeadbeef'",
                "NULL",
                r"'\x00'",
                r"'\x2722275c5c00ff1a0a0d'",
                r"'\x'",
            ],
            pg_read: "encode({c}, 'hex')",
            pg_kind: Bytes,
            mariadb_read: "HEX({c})",
            mariadb_kind: Bytes,
        },
        Case {
            label: "boolean → boolean",
            pg_type: "boolean",
            mariadb_type: "tinyint(1)",
            values: ["true", "NULL", "false", "true", "false"],
            pg_read: TEXT,
            pg_kind: Boolean,
            mariadb_read: CHAR,
            mariadb_kind: Integer,
        },
        Case {
            label: "smallint → int16",
            pg_type: "smallint",
            mariadb_type: "smallint",
            values: ["42", "NULL", "-32768", "32767", "0"],
            pg_read: TEXT,
            pg_kind: Integer,
            mariadb_read: CHAR,
            mariadb_kind: Integer,
        },
        Case {
            label: "integer → int32",
            pg_type: "integer",
            mariadb_type: "int",
            values: ["42", "NULL", "-2147483648", "2147483647", "0"],
            pg_read: TEXT,
            pg_kind: Integer,
            mariadb_read: CHAR,
            mariadb_kind: Integer,
        },
        Case {
            label: "bigint → int64",
            pg_type: "bigint",
            mariadb_type: "bigint",
            values: [
                "42",
                "NULL",
                "-9223372036854775808",
                "9223372036854775807",
                "0",
            ],
            pg_read: TEXT,
            pg_kind: Integer,
            mariadb_read: CHAR,
            mariadb_kind: Integer,
        },
        Case {
            label: "real → float32",
            pg_type: "real",
            mariadb_type: "float",
            values: ["0.1", "NULL", "-3.4028235e+38", "1.5e-30", "0"],
            pg_read: "{c}::float8::text",
            pg_kind: Float,
            mariadb_read: "CAST({c} AS DOUBLE)",
            mariadb_kind: Float,
        },
        Case {
            label: "double precision → float64",
            pg_type: "double precision",
            mariadb_type: "double",
            values: [
                "0.1",
                "NULL",
                "-1.7976931348623157e308",
                "1e-300",
                "123456789.12345679",
            ],
            pg_read: TEXT,
            pg_kind: Float,
            mariadb_read: CHAR,
            mariadb_kind: Float,
        },
        Case {
            label: "text → string",
            pg_type: "text",
            mariadb_type: "longtext",
            values: [
                r"E'line1\nline2\ttab\r\x1a end'",
                "NULL",
                r#"'it''s a "quote" and \ backslash \\ two; '') OR 1=1 --'"#,
                "'日本語 🎉 émoji — ñ'",
                "''",
            ],
            pg_read: TEXT,
            pg_kind: Text,
            mariadb_read: CHAR,
            mariadb_kind: Text,
        },
        Case {
            label: "varchar(20) → string",
            pg_type: "varchar(20)",
            mariadb_type: "varchar(20)",
            values: ["'x'", "NULL", r"'\'' OR ''1''=''1'", "'日本語🎉'", "''"],
            pg_read: TEXT,
            pg_kind: Text,
            mariadb_read: CHAR,
            mariadb_kind: Text,
        },
        Case {
            label: "char(5) → string",
            pg_type: "char(5)",
            mariadb_type: "char(5)",
            values: ["'ab'", "NULL", "'abcde'", "'é'", "' a'"],
            pg_read: TEXT,
            pg_kind: Text,
            mariadb_read: CHAR,
            mariadb_kind: Text,
        },
        Case {
            label: "interval → MicroDuration",
            pg_type: "interval",
            mariadb_type: "bigint",
            values: [
                "'3 days 04:05:06.789'",
                "NULL",
                "'-1 days -00:00:01'",
                "'1000 days 23:59:59.999999'",
                "'0'",
            ],
            // Microseconds: the PostgreSQL target holds the same duration spelled in hours.
            pg_read: "(extract(epoch from {c}) * 1000000)::numeric(30,0)::text",
            pg_kind: Integer,
            mariadb_read: CHAR,
            mariadb_kind: Integer,
        },
        Case {
            label: "int[] → array (MariaDB: JSON)",
            pg_type: "integer[]",
            mariadb_type: "json",
            values: [
                "'{1,2,3}'",
                "NULL",
                "'{-2147483648,NULL,2147483647}'",
                "'{}'",
                "'{0}'",
            ],
            pg_read: "to_jsonb({c})::text",
            pg_kind: Json,
            mariadb_read: CHAR,
            mariadb_kind: Json,
        },
        Case {
            label: "text[] → array (MariaDB: JSON)",
            pg_type: "text[]",
            mariadb_type: "json",
            values: [
                r#"'{"a","b c"}'"#,
                "NULL",
                r#"'{"it''s","q\"uote","back\\slash",NULL}'"#,
                r#"'{"日本語","🎉"}'"#,
                r#"'{""}'"#,
            ],
            pg_read: "to_jsonb({c})::text",
            pg_kind: Json,
            mariadb_read: CHAR,
            mariadb_kind: Json,
        },
    ]
}

const ROWS: usize = 5;
/// Rows written before the connector starts have ids 1..=5, rows streamed after it 101..=105.
const STREAMED: i64 = 100;

fn insert_sql(table: &str, cases: &[Case], id_offset: i64) -> String {
    let columns: Vec<String> = (0..cases.len()).map(|i| format!("c{i}")).collect();
    let rows: Vec<String> = (0..ROWS)
        .map(|row| {
            let values: Vec<&str> = cases.iter().map(|c| c.values[row]).collect();
            format!("({}, {})", id_offset + row as i64 + 1, values.join(", "))
        })
        .collect();
    format!(
        "insert into {table} (id, {}) values {}",
        columns.join(", "),
        rows.join(", ")
    )
}

/// Reads every row as (id, value text per case) from a PostgreSQL database.
async fn read_pg(
    client: &tokio_postgres::Client,
    table: &str,
    cases: &[Case],
) -> Vec<(i64, Vec<Option<String>>)> {
    let reads: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| c.pg_read.replace("{c}", &format!("c{i}")))
        .collect();
    let rows = client
        .query(
            &format!(
                "select id::bigint, {} from {table} order by id",
                reads.join(", ")
            ),
            &[],
        )
        .await
        .expect("read PostgreSQL");
    rows.iter()
        .map(|r| {
            (
                r.get::<_, i64>(0),
                (1..=cases.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect(),
            )
        })
        .collect()
}

async fn read_mariadb(
    conn: &mut mysql_async::Conn,
    table: &str,
    cases: &[Case],
) -> Vec<(i64, Vec<Option<String>>)> {
    let reads: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| c.mariadb_read.replace("{c}", &format!("`c{i}`")))
        .collect();
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SELECT id, {} FROM `{table}` ORDER BY id",
            reads.join(", ")
        ))
        .await
        .expect("read MariaDB");
    rows.into_iter()
        .map(|mut r| {
            let id: i64 = r.take(0).expect("id");
            let values = (1..=cases.len())
                .map(|i| {
                    r.take::<Option<String>, _>(i)
                        .expect("a value (as text) per column")
                })
                .collect();
            (id, values)
        })
        .collect()
}

/// Compares a target's rows with the source's, per case; returns (case index, message) per
/// difference.
fn differences(
    engine: &str,
    cases: &[Case],
    source: &[(i64, Vec<Option<String>>)],
    target: &[(i64, Vec<Option<String>>)],
    target_kinds: impl Fn(&Case) -> ColumnKind,
) -> Vec<(Option<usize>, String)> {
    let mut out = Vec::new();
    let source_ids: Vec<i64> = source.iter().map(|r| r.0).collect();
    let target_ids: Vec<i64> = target.iter().map(|r| r.0).collect();
    if source_ids != target_ids {
        out.push((
            None,
            format!("{engine}: rows {target_ids:?}, source rows {source_ids:?}"),
        ));
        return out;
    }
    for ((id, source_values), (_, target_values)) in source.iter().zip(target) {
        for (i, case) in cases.iter().enumerate() {
            let expected = canonical_opt(case.pg_kind, source_values[i].as_deref());
            let actual = canonical_opt(target_kinds(case), target_values[i].as_deref());
            if expected != actual {
                out.push((
                    Some(i),
                    format!(
                        "{} → {engine}, row {id}: source {:?} (raw {:?}), target {:?} (raw {:?})",
                        case.label, expected, source_values[i], actual, target_values[i]
                    ),
                ));
            }
        }
    }
    out
}

/// Runs a sink until it is idle and the target holds `rows` rows; a sink error names the
/// columns' types.
async fn drain(sink: &mut Sink, engine: &str, columns: &str) -> usize {
    match sink.run_until_idle(Duration::from_secs(2)).await {
        Ok(stats) => stats.records,
        Err(e) => panic!("the {engine} sink failed: {e}\ncolumns: {columns}"),
    }
}

#[tokio::test]
async fn every_logical_type_round_trips_to_postgres_and_mariadb() {
    let stack = Stack::get();
    let name = unique_name("sink-types").replace('_', "-");
    let table = name.replace('-', "_");
    let mood = format!("{table}_mood");
    let database = table.clone();
    let cases = cases();
    let mut cleanup = Cleanup::new(&stack);
    cleanup.created.pg_source_sql.push(format!(
        "drop table if exists {table}; drop type if exists {mood}"
    ));
    cleanup.created.pg_target_sql.push(format!(
        "drop table if exists {table}; drop type if exists {mood};
         delete from lockstep.sink_offsets where pipeline = '{name}-pg'"
    ));

    let pg_columns: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| format!("c{i} {}", c.pg_type.replace("{mood}", &mood)))
        .collect();
    let pg_ddl = format!(
        "create type {mood} as enum ('sad', 'ok', 'happy');
         create table {table} (id bigint primary key, {})",
        pg_columns.join(", ")
    );
    let source = stack.pg_source().await.expect("source");
    source.batch_execute(&pg_ddl).await.expect("source table");
    let pg_target = stack.pg(&stack.pg_target_db).await.expect("target");
    pg_target
        .batch_execute(&pg_ddl)
        .await
        .expect("PostgreSQL target table");
    for client in [&source, &pg_target] {
        client
            .batch_execute(
                "set TimeZone = 'UTC'; set DateStyle = 'ISO, YMD'; set extra_float_digits = 1",
            )
            .await
            .expect("session");
    }
    create_mariadb_database(&mut cleanup, &database).await;
    let mut maria = mariadb(&stack, Some(&database)).await;
    let maria_columns: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| format!("`c{i}` {}", c.mariadb_type))
        .collect();
    maria
        .query_drop(format!(
            "CREATE TABLE `{table}` (id bigint primary key, {}) ENGINE = InnoDB",
            maria_columns.join(", ")
        ))
        .await
        .expect("MariaDB target table");

    // Snapshot rows, then the connector, then the same values streamed.
    source
        .batch_execute(&insert_sql(&table, &cases, 0))
        .await
        .expect("snapshot rows");
    start_connector(
        &mut cleanup,
        &name,
        &[&table],
        &[
            ("decimal.handling.mode", "precise"),
            ("interval.handling.mode", "numeric"),
            ("time.precision.mode", "adaptive"),
        ],
    )
    .await;
    source
        .batch_execute(&insert_sql(&table, &cases, STREAMED))
        .await
        .expect("streamed rows");

    let topic = format!("{name}.public.{table}");
    let pg_pipeline = SinkPipeline::parse(
        Path::new("pg.yaml"),
        &postgres_pipeline(&stack, &format!("{name}-pg"), std::slice::from_ref(&topic)),
    )
    .expect("pipeline");
    let maria_pipeline = SinkPipeline::parse(
        Path::new("maria.yaml"),
        &mariadb_pipeline(
            &stack,
            &format!("{name}-maria"),
            std::slice::from_ref(&topic),
            &database,
        ),
    )
    .expect("pipeline");
    let column_names: String = cases
        .iter()
        .enumerate()
        .map(|(i, c)| format!("c{i}={}", c.label))
        .collect::<Vec<_>>()
        .join("; ");
    let mut pg_sink = Sink::start(pg_pipeline).await.expect("PostgreSQL sink");
    let mut maria_sink = Sink::start(maria_pipeline).await.expect("MariaDB sink");

    let expected = read_pg(&source, &table, &cases).await;
    assert_eq!(expected.len(), 2 * ROWS);
    let deadline = Instant::now() + Duration::from_secs(180);
    let (pg_rows, maria_rows) = loop {
        drain(&mut pg_sink, "PostgreSQL", &column_names).await;
        drain(&mut maria_sink, "MariaDB", &column_names).await;
        let pg_rows = read_pg(&pg_target, &table, &cases).await;
        let maria_rows = read_mariadb(&mut maria, &table, &cases).await;
        if pg_rows.len() == 2 * ROWS && maria_rows.len() == 2 * ROWS {
            break (pg_rows, maria_rows);
        }
        assert!(
            Instant::now() < deadline,
            "the targets did not receive every row: PostgreSQL {}, MariaDB {} of {}",
            pg_rows.len(),
            maria_rows.len(),
            2 * ROWS
        );
    };

    let mut failures = differences("PostgreSQL", &cases, &expected, &pg_rows, |c| c.pg_kind);
    failures.extend(differences(
        "MariaDB",
        &cases,
        &expected,
        &maria_rows,
        |c| c.mariadb_kind,
    ));
    for (i, case) in cases.iter().enumerate() {
        let failed = failures.iter().any(|(case, _)| *case == Some(i));
        println!(
            "{:<36} {}",
            case.label,
            if failed {
                "DIFFERS"
            } else {
                "equal on PostgreSQL and MariaDB (10 rows)"
            }
        );
    }
    let messages: Vec<&str> = failures.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        failures.is_empty(),
        "{} value(s) did not round-trip:\n{}",
        failures.len(),
        messages.join("\n")
    );
}
