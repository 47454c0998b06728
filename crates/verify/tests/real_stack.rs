//! `lockstep verify` against the local stack's real PostgreSQL and MariaDB (`scripts/stack up`).
//!
//! Every test creates its own uniquely named tables and drops them at the end, so tests run in
//! parallel with each other and with other suites.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use lockstep_e2e::{unique_name, Stack};
use lockstep_verify::{
    verify, ConnectionSettings, DifferingRow, Endpoint, Key, Password, SchemaDifference, TableRef,
    VerifyError, VerifyOptions, VerifyReport,
};
use mysql_async::prelude::Queryable;

/// Where a table lives.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Db {
    PgSource,
    PgTarget,
    Maria,
}

struct Fixture {
    stack: Stack,
    pg_source: tokio_postgres::Client,
    pg_target: tokio_postgres::Client,
    maria: mysql_async::Pool,
    created: std::sync::Mutex<Vec<(Db, String)>>,
}

impl Fixture {
    async fn new() -> Result<Self> {
        let stack = Stack::get();
        let pg_source = stack.pg(&stack.pg_source_db).await?;
        let pg_target = stack.pg(&stack.pg_target_db).await?;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(stack.mariadb_host.clone())
            .tcp_port(stack.mariadb_port)
            .user(Some(stack.mariadb_user.clone()))
            .pass(Some("lockstep"))
            .db_name(Some(stack.mariadb_database.clone()))
            .prefer_socket(false);
        let maria = mysql_async::Pool::new(opts);
        Ok(Self {
            stack,
            pg_source,
            pg_target,
            maria,
            created: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn endpoint(&self, db: Db, table: &str) -> Endpoint {
        let s = &self.stack;
        let connection = match db {
            Db::PgSource => {
                ConnectionSettings::postgres(&s.pg_host, s.pg_port, &s.pg_user, &s.pg_source_db)
            }
            Db::PgTarget => {
                ConnectionSettings::postgres(&s.pg_host, s.pg_port, &s.pg_user, &s.pg_target_db)
            }
            Db::Maria => ConnectionSettings::mysql(
                &s.mariadb_host,
                s.mariadb_port,
                &s.mariadb_user,
                &s.mariadb_database,
            )
            .with_password(Password::new("lockstep")),
        };
        Endpoint::new(connection, TableRef::new(None, table))
    }

    /// Runs SQL (several statements allowed) on one database.
    async fn exec(&self, db: Db, sql: &str) -> Result<()> {
        match db {
            Db::PgSource => self.pg_source.batch_execute(sql).await,
            Db::PgTarget => self.pg_target.batch_execute(sql).await,
            Db::Maria => {
                let mut conn = self.maria.get_conn().await.context("MariaDB connection")?;
                return conn
                    .query_drop(sql)
                    .await
                    .with_context(|| format!("MariaDB: {sql}"));
            }
        }
        .with_context(|| format!("PostgreSQL ({db:?}): {sql}"))
    }

    /// Creates a table (`{}` in the DDL is the table name) and remembers it for [`Self::cleanup`].
    async fn create(&self, db: Db, prefix: &str, ddl: &str) -> Result<String> {
        let name = unique_name(prefix);
        self.exec(db, &ddl.replace("{}", &name)).await?;
        self.created
            .lock()
            .map_err(|_| anyhow::anyhow!("cleanup list poisoned"))?
            .push((db, name.clone()));
        Ok(name)
    }

    async fn cleanup(self) {
        let created = self.created.lock().map(|c| c.clone()).unwrap_or_default();
        for (db, name) in created {
            let sql = match db {
                Db::Maria => format!("DROP TABLE IF EXISTS `{name}`"),
                _ => format!("DROP TABLE IF EXISTS \"{name}\""),
            };
            if let Err(err) = self.exec(db, &sql).await {
                eprintln!("cleanup: {err:#}");
            }
        }
        let _ = self.maria.disconnect().await;
    }

    async fn verify(
        &self,
        source: (Db, &str),
        target: (Db, &str),
        options: &VerifyOptions,
    ) -> Result<VerifyReport> {
        Ok(verify(
            &self.endpoint(source.0, source.1),
            &self.endpoint(target.0, target.1),
            options,
        )
        .await?)
    }
}

/// Runs a test body and drops its tables whatever the outcome.
async fn with_fixture<F, Fut>(body: F) -> Result<()>
where
    F: FnOnce(std::sync::Arc<Fixture>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let fixture = std::sync::Arc::new(Fixture::new().await?);
    let result = body(fixture.clone()).await;
    match std::sync::Arc::try_unwrap(fixture) {
        Ok(fixture) => fixture.cleanup().await,
        Err(_) => eprintln!("cleanup skipped: fixture still shared"),
    }
    result
}

fn opts(chunk_size: usize) -> VerifyOptions {
    VerifyOptions {
        chunk_size,
        max_retries: 1,
        retry_delay: Duration::from_millis(50),
        ..VerifyOptions::default()
    }
}

fn key(parts: &[&str]) -> Key {
    Key(parts.iter().map(|s| s.to_string()).collect())
}

fn ensure_clean(report: &VerifyReport, rows: u64) -> Result<()> {
    ensure!(report.is_clean(), "expected a clean report: {report:#?}");
    ensure!(
        report.rows_compared == rows,
        "expected {rows} rows compared: {report:#?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mixed types

const PG_MIXED: &str = "CREATE TABLE \"{}\" (
    id bigint PRIMARY KEY, qty int, amount numeric(12,2), name varchar(40), note text,
    active boolean, born date, created timestamp(6), seen timestamptz, payload bytea, doc json)";

const MARIA_MIXED: &str = "CREATE TABLE `{}` (
    id bigint PRIMARY KEY, qty int, amount decimal(12,2), name varchar(40), note text,
    active tinyint(1), born date, created datetime(6), seen datetime(6), payload varbinary(64),
    doc json)";

/// One row of the mixed-types table.
struct Mixed {
    id: i64,
    qty: i32,
    amount: String,
    name: String,
    note: Option<String>,
    active: bool,
    born: String,
    created: String,
    seen_utc: String,
    /// The same instant written with a +02 offset for PostgreSQL's timestamptz.
    seen_plus_two: String,
    payload: String,
    doc_b: i64,
}

fn mixed_rows(n: i64) -> Vec<Mixed> {
    (1..=n)
        .map(|i| Mixed {
            id: i * 10 + if i % 3 == 0 { 1_000_000_000_000 } else { 0 },
            qty: (i as i32) * 3 - 50,
            amount: format!("{}.{}0", i * 7, i % 10), // e.g. 7.10: a trailing zero
            name: format!("name-{i} 'q'"),
            note: match i % 4 {
                0 => None,
                1 => Some(String::new()),
                2 => Some(format!("Grüße ✓ {i}")),
                _ => Some(format!("line\nbreak \\ {i}")),
            },
            active: i % 2 == 0,
            born: format!("19{:02}-0{}-{:02}", 50 + i % 40, 1 + i % 9, 1 + i % 28),
            created: format!("2024-03-04 05:06:{:02}.{:06}", i % 60, i * 1001),
            seen_utc: format!("2024-12-31 23:{:02}:07.5", i % 60),
            seen_plus_two: format!("2025-01-01 01:{:02}:07.5+02", i % 60),
            payload: format!("00ff{i:04x}de"),
            doc_b: i,
        })
        .collect()
}

fn pg_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn maria_literal(s: &str) -> String {
    format!(
        "'{}'",
        s.replace('\\', "\\\\")
            .replace('\'', "''")
            .replace('\n', "\\n")
    )
}

fn pg_insert(table: &str, rows: &[Mixed]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            // timestamptz written with a +02 offset: it must compare equal to the UTC datetime.
            format!(
                "({}, {}, {}, {}, {}, {}, '{}', '{}', '{}', decode('{}', 'hex'), '{{\"b\": {}, \"a\": [1, \"x\", 2.50]}}')",
                r.id,
                r.qty,
                r.amount,
                pg_literal(&r.name),
                r.note.as_deref().map(pg_literal).unwrap_or_else(|| "NULL".into()),
                r.active,
                r.born,
                r.created,
                r.seen_plus_two,
                r.payload,
                r.doc_b
            )
        })
        .collect();
    format!("INSERT INTO \"{table}\" VALUES {}", values.join(", "))
}

fn maria_insert(table: &str, rows: &[Mixed]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "({}, {}, {}, {}, {}, {}, '{}', '{}', '{}', X'{}', '{{\"a\":[1,\"x\",2.5],\"b\":{}}}')",
                r.id,
                r.qty,
                r.amount,
                maria_literal(&r.name),
                r.note.as_deref().map(maria_literal).unwrap_or_else(|| "NULL".into()),
                u8::from(r.active),
                r.born,
                r.created,
                r.seen_utc,
                r.payload,
                r.doc_b
            )
        })
        .collect();
    format!("INSERT INTO `{table}` VALUES {}", values.join(", "))
}

type InsertSql = fn(&str, &[Mixed]) -> String;

async fn mixed_table(fx: &Fixture, db: Db, rows: &[Mixed]) -> Result<String> {
    let (ddl, insert) = match db {
        Db::Maria => (MARIA_MIXED, maria_insert as InsertSql),
        _ => (PG_MIXED, pg_insert as InsertSql),
    };
    let name = fx.create(db, "vfy_mixed", ddl).await?;
    if !rows.is_empty() {
        fx.exec(db, &insert(&name, rows)).await?;
    }
    Ok(name)
}

#[tokio::test]
async fn identical_mixed_types_are_clean_on_every_engine_pair() -> Result<()> {
    with_fixture(|fx| async move {
        let rows = mixed_rows(25);
        let pg_src = mixed_table(&fx, Db::PgSource, &rows).await?;
        let pg_dst = mixed_table(&fx, Db::PgTarget, &rows).await?;
        let maria_a = mixed_table(&fx, Db::Maria, &rows).await?;
        let maria_b = mixed_table(&fx, Db::Maria, &rows).await?;
        let pairs = [
            ((Db::PgSource, &pg_src), (Db::PgTarget, &pg_dst)),
            ((Db::PgSource, &pg_src), (Db::Maria, &maria_a)),
            ((Db::Maria, &maria_a), (Db::PgTarget, &pg_dst)),
            ((Db::Maria, &maria_a), (Db::Maria, &maria_b)),
        ];
        for ((sdb, s), (tdb, t)) in pairs {
            let report = fx.verify((sdb, s), (tdb, t), &opts(10)).await?;
            ensure_clean(&report, 25).with_context(|| format!("{sdb:?} -> {tdb:?}"))?;
            ensure!(
                report.chunks == 3,
                "25 rows by 10 are 3 chunks: {report:#?}"
            );
            ensure!(report.chunks_retried == 0, "{report:#?}");
            ensure!(
                report.compared_columns.len() == 10,
                "all ten non-key columns compared: {:?}",
                report.compared_columns
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_change_in_any_column_type_is_detected() -> Result<()> {
    with_fixture(|fx| async move {
        let rows = mixed_rows(15);
        let source = mixed_table(&fx, Db::PgSource, &rows).await?;
        let target = mixed_table(&fx, Db::Maria, &rows).await?;
        // One smallest-possible change per column, each on its own row.
        let changes = [
            (10, "qty", "qty = qty + 1"),
            (20, "amount", "amount = amount + 0.01"),
            (40, "name", "name = CONCAT(name, ' ')"),
            (50, "note", "note = 'x'"),
            (70, "active", "active = 1 - active"),
            (80, "born", "born = born + INTERVAL 1 DAY"),
            (100, "created", "created = created + INTERVAL 1 MICROSECOND"),
            (110, "seen", "seen = seen + INTERVAL 1 MICROSECOND"),
            (130, "payload", "payload = CONCAT(payload, X'00')"),
            (140, "doc", "doc = '{\"a\":[1,\"x\",2.5],\"b\":14.5}'"),
        ];
        let updates: Vec<String> = changes
            .iter()
            .map(|(id, _, set)| format!("UPDATE `{target}` SET {set} WHERE id = {id};"))
            .collect();
        fx.exec(Db::Maria, &updates.join("\n")).await?;
        let report = fx
            .verify((Db::PgSource, &source), (Db::Maria, &target), &opts(4))
            .await?;
        let expected: Vec<DifferingRow> = changes
            .iter()
            .map(|(id, column, _)| DifferingRow {
                key: key(&[&id.to_string()]),
                columns: vec![column.to_string()],
            })
            .collect();
        ensure!(report.differing == expected, "{report:#?}");
        ensure!(
            report.missing_count == 0 && report.extra_count == 0,
            "{report:#?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn planted_differences_are_reported_once_with_key_and_column() -> Result<()> {
    with_fixture(|fx| async move {
        let rows = mixed_rows(30);
        let source = mixed_table(&fx, Db::PgSource, &rows).await?;
        let pg_target = mixed_table(&fx, Db::PgTarget, &rows).await?;
        let maria_target = mixed_table(&fx, Db::Maria, &rows).await?;
        // ids are i*10 (i multiple of 3: + 1e12). Plant on both targets:
        // row 50 missing, row 5 extra, row 70's amount changed, row 80's note NULL -> ''.
        fx.exec(
            Db::PgTarget,
            &format!(
                "DELETE FROM \"{t}\" WHERE id = 50;
                 INSERT INTO \"{t}\" (id, name) VALUES (5, 'stray');
                 UPDATE \"{t}\" SET amount = amount + 0.01 WHERE id = 70;
                 UPDATE \"{t}\" SET note = '' WHERE id = 80;",
                t = pg_target
            ),
        )
        .await?;
        fx.exec(
            Db::Maria,
            &format!(
                "DELETE FROM `{t}` WHERE id = 50;
                 INSERT INTO `{t}` (id, name) VALUES (5, 'stray');
                 UPDATE `{t}` SET amount = amount + 0.01 WHERE id = 70;
                 UPDATE `{t}` SET note = '' WHERE id = 80;",
                t = maria_target
            ),
        )
        .await?;
        for (tdb, target) in [(Db::PgTarget, &pg_target), (Db::Maria, &maria_target)] {
            let report = fx
                .verify((Db::PgSource, &source), (tdb, target), &opts(7))
                .await?;
            let label = format!("pg -> {tdb:?}: {report:#?}");
            ensure!(report.missing == vec![key(&["50"])], "missing: {label}");
            ensure!(report.extra == vec![key(&["5"])], "extra: {label}");
            ensure!(
                report.differing
                    == vec![
                        DifferingRow {
                            key: key(&["70"]),
                            columns: vec!["amount".into()]
                        },
                        DifferingRow {
                            key: key(&["80"]),
                            columns: vec!["note".into()]
                        },
                    ],
                "differing: {label}"
            );
            ensure!(
                (
                    report.missing_count,
                    report.extra_count,
                    report.differing_count
                ) == (1, 1, 2),
                "counts: {label}"
            );
            ensure!(report.rows_compared == 30, "{label}");
            ensure!(!report.is_clean() && !report.rows_clean(), "{label}");
            // The differences are real: each differing chunk was re-read once and still differed.
            ensure!(report.chunks_retried == report.chunks_differing, "{label}");
        }
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Keys

#[tokio::test]
async fn composite_primary_key_across_engines() -> Result<()> {
    with_fixture(|fx| async move {
        let source = fx
            .create(
                Db::PgSource,
                "vfy_comp",
                "CREATE TABLE \"{}\" (region varchar(20), id int, v text, PRIMARY KEY (region, id))",
            )
            .await?;
        let target = fx
            .create(
                Db::Maria,
                "vfy_comp",
                "CREATE TABLE `{}` (region varchar(20) COLLATE utf8mb4_bin, id int, v text, PRIMARY KEY (region, id))",
            )
            .await?;
        // Regions whose order differs between byte order and linguistic collations.
        let regions = ["EU", "eu", "Zz", "a", "ä", "us-east", "us_west"];
        let mut values = Vec::new();
        for region in regions {
            for id in [1, 2, 10] {
                values.push(format!("('{region}', {id}, 'v-{region}-{id}')"));
            }
        }
        fx.exec(Db::PgSource, &format!("INSERT INTO \"{source}\" VALUES {}", values.join(", ")))
            .await?;
        fx.exec(Db::Maria, &format!("INSERT INTO `{target}` VALUES {}", values.join(", ")))
            .await?;
        for chunk in [1, 3, 4, 100] {
            let report = fx.verify((Db::PgSource, &source), (Db::Maria, &target), &opts(chunk)).await?;
            ensure_clean(&report, 21).with_context(|| format!("chunk size {chunk}"))?;
            ensure!(report.key_columns == ["region", "id"], "{report:#?}");
        }
        fx.exec(
            Db::Maria,
            &format!(
                "DELETE FROM `{target}` WHERE region = 'eu' AND id = 2;
                 UPDATE `{target}` SET v = 'changed' WHERE region = 'ä' AND id = 10;
                 INSERT INTO `{target}` VALUES ('EU', 3, 'extra');"
            ),
        )
        .await?;
        let report = fx.verify((Db::PgSource, &source), (Db::Maria, &target), &opts(4)).await?;
        ensure!(report.missing == vec![key(&["eu", "2"])], "{report:#?}");
        ensure!(report.extra == vec![key(&["EU", "3"])], "{report:#?}");
        ensure!(
            report.differing
                == vec![DifferingRow {
                    key: key(&["ä", "10"]),
                    columns: vec!["v".into()]
                }],
            "{report:#?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn tables_without_primary_key_are_refused() -> Result<()> {
    with_fixture(|fx| async move {
        let pg_no_pk = fx
            .create(
                Db::PgSource,
                "vfy_nopk",
                "CREATE TABLE \"{}\" (id int, v text)",
            )
            .await?;
        let maria_no_pk = fx
            .create(Db::Maria, "vfy_nopk", "CREATE TABLE `{}` (id int, v text)")
            .await?;
        let maria_pk = fx
            .create(
                Db::Maria,
                "vfy_pk",
                "CREATE TABLE `{}` (id int PRIMARY KEY, v text)",
            )
            .await?;

        let err = verify(
            &fx.endpoint(Db::PgSource, &pg_no_pk),
            &fx.endpoint(Db::Maria, &maria_pk),
            &opts(10),
        )
        .await
        .err()
        .context("a source without a primary key must be refused")?;
        ensure!(matches!(err, VerifyError::NoPrimaryKey { .. }), "{err:?}");
        let message = err.to_string();
        ensure!(
            message.contains("source")
                && message.contains(&pg_no_pk)
                && message.contains("no primary key")
                && message.contains("add a primary key"),
            "{message}"
        );

        let err = verify(
            &fx.endpoint(Db::Maria, &maria_pk),
            &fx.endpoint(Db::Maria, &maria_no_pk),
            &opts(10),
        )
        .await
        .err()
        .context("a target without a primary key must be refused")?;
        let message = err.to_string();
        ensure!(
            message.contains("target") && message.contains(&maria_no_pk),
            "{message}"
        );

        let err = verify(
            &fx.endpoint(Db::PgSource, "vfy_does_not_exist"),
            &fx.endpoint(Db::Maria, &maria_pk),
            &opts(10),
        )
        .await
        .err()
        .context("a missing table must be an error")?;
        ensure!(matches!(err, VerifyError::TableNotFound { .. }), "{err:?}");
        ensure!(err.to_string().contains("does not exist"), "{err}");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Chunking

#[tokio::test]
async fn chunk_boundaries_multiples_and_not() -> Result<()> {
    with_fixture(|fx| async move {
        for (rows, expected_chunks) in [(0_i64, 1_u64), (20, 3), (21, 3), (29, 3), (30, 4)] {
            let source = fx
                .create(
                    Db::PgSource,
                    "vfy_chunk",
                    "CREATE TABLE \"{}\" (id bigint PRIMARY KEY, v text)",
                )
                .await?;
            let pg_target = fx
                .create(
                    Db::PgTarget,
                    "vfy_chunk",
                    "CREATE TABLE \"{}\" (id bigint PRIMARY KEY, v text)",
                )
                .await?;
            let maria_target = fx
                .create(
                    Db::Maria,
                    "vfy_chunk",
                    "CREATE TABLE `{}` (id bigint PRIMARY KEY, v text)",
                )
                .await?;
            if rows > 0 {
                let values: Vec<String> = (1..=rows).map(|i| format!("({i}, 'v{i}')")).collect();
                let values = values.join(", ");
                fx.exec(
                    Db::PgSource,
                    &format!("INSERT INTO \"{source}\" VALUES {values}"),
                )
                .await?;
                fx.exec(
                    Db::PgTarget,
                    &format!("INSERT INTO \"{pg_target}\" VALUES {values}"),
                )
                .await?;
                fx.exec(
                    Db::Maria,
                    &format!("INSERT INTO `{maria_target}` VALUES {values}"),
                )
                .await?;
            }
            for (tdb, target) in [(Db::PgTarget, &pg_target), (Db::Maria, &maria_target)] {
                let report = fx
                    .verify((Db::PgSource, &source), (tdb, target), &opts(10))
                    .await?;
                ensure_clean(&report, rows as u64)
                    .with_context(|| format!("{rows} rows to {tdb:?}"))?;
                ensure!(
                    report.chunks == expected_chunks,
                    "{rows} rows to {tdb:?}: {report:#?}"
                );
            }
            if rows == 30 {
                // A missing row exactly on a chunk boundary, and extra rows after the source's
                // last row (more than a chunk of them).
                let extras: Vec<String> = (31..=45).map(|i| format!("({i}, 'x')")).collect();
                fx.exec(
                    Db::Maria,
                    &format!(
                        "DELETE FROM `{maria_target}` WHERE id IN (10, 11, 20);
                         INSERT INTO `{maria_target}` VALUES {};",
                        extras.join(", ")
                    ),
                )
                .await?;
                let report = fx
                    .verify(
                        (Db::PgSource, &source),
                        (Db::Maria, &maria_target),
                        &opts(10),
                    )
                    .await?;
                ensure!(
                    report.missing == vec![key(&["10"]), key(&["11"]), key(&["20"])],
                    "{report:#?}"
                );
                let expected_extra: Vec<Key> = (31..=45).map(|i| key(&[&i.to_string()])).collect();
                ensure!(report.extra == expected_extra, "{report:#?}");
                ensure!(report.target_rows == 27 + 15, "{report:#?}");
            }
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn key_lists_are_capped_but_everything_is_counted() -> Result<()> {
    with_fixture(|fx| async move {
        let source = fx
            .create(
                Db::PgSource,
                "vfy_cap",
                "CREATE TABLE \"{}\" (id int PRIMARY KEY)",
            )
            .await?;
        let target = fx
            .create(
                Db::Maria,
                "vfy_cap",
                "CREATE TABLE `{}` (id int PRIMARY KEY)",
            )
            .await?;
        fx.exec(
            Db::PgSource,
            &format!("INSERT INTO \"{source}\" SELECT generate_series(1, 2500)"),
        )
        .await?;
        let options = VerifyOptions {
            max_listed_keys: 100,
            max_retries: 0,
            ..VerifyOptions::default()
        };
        let report = fx
            .verify((Db::PgSource, &source), (Db::Maria, &target), &options)
            .await?;
        ensure!(
            report.missing_count == 2500 && report.missing.len() == 100,
            "{:?}",
            (report.missing_count, report.missing.len())
        );
        ensure!(report.keys_truncated, "truncation must be flagged");
        ensure!(
            report.chunks == 3,
            "default chunk size 1000: {}",
            report.chunks
        );
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Schema differences

#[tokio::test]
async fn one_sided_columns_are_schema_differences() -> Result<()> {
    with_fixture(|fx| async move {
        let source = fx
            .create(
                Db::PgSource,
                "vfy_schema",
                "CREATE TABLE \"{}\" (id int PRIMARY KEY, v text, only_src int)",
            )
            .await?;
        let target = fx
            .create(
                Db::Maria,
                "vfy_schema",
                "CREATE TABLE `{}` (ID int PRIMARY KEY, V text, only_dst date)",
            )
            .await?;
        fx.exec(
            Db::PgSource,
            &format!("INSERT INTO \"{source}\" VALUES (1, 'a', 7), (2, 'b', 8)"),
        )
        .await?;
        fx.exec(
            Db::Maria,
            &format!("INSERT INTO `{target}` VALUES (1, 'a', NULL), (2, 'b', '2024-01-01')"),
        )
        .await?;
        let report = fx
            .verify((Db::PgSource, &source), (Db::Maria, &target), &opts(10))
            .await?;
        ensure!(report.rows_clean(), "common columns match: {report:#?}");
        ensure!(
            !report.is_clean(),
            "schema differences make the report unclean"
        );
        ensure!(report.compared_columns == ["v"], "{report:#?}");
        ensure!(
            report.schema_differences
                == vec![
                    SchemaDifference::OnlyInSource {
                        column: "only_src".into(),
                        declared_type: "integer".into()
                    },
                    SchemaDifference::OnlyInTarget {
                        column: "only_dst".into(),
                        declared_type: "date".into()
                    },
                ],
            "{report:#?}"
        );
        let strict = VerifyOptions {
            fail_on_schema_difference: true,
            ..opts(10)
        };
        let err = fx
            .verify((Db::PgSource, &source), (Db::Maria, &target), &strict)
            .await
            .err()
            .context("strict mode must fail on schema differences")?;
        ensure!(err.to_string().contains("only_src"), "{err:#}");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Live replication

#[tokio::test]
async fn differences_fixed_during_the_retry_window_converge() -> Result<()> {
    with_fixture(|fx| async move {
        let source = fx
            .create(Db::PgSource, "vfy_live", "CREATE TABLE \"{}\" (id int PRIMARY KEY, v text)")
            .await?;
        let target = fx
            .create(Db::Maria, "vfy_live", "CREATE TABLE `{}` (id int PRIMARY KEY, v text)")
            .await?;
        let values: Vec<String> = (1..=40).map(|i| format!("({i}, 'v{i}')")).collect();
        fx.exec(Db::PgSource, &format!("INSERT INTO \"{source}\" VALUES {}", values.join(", "))).await?;
        fx.exec(Db::Maria, &format!("INSERT INTO `{target}` VALUES {}", values.join(", "))).await?;
        // Replication "in flight" in the first chunk: row 5 has not arrived, row 8 still has its
        // old value, and the source's delete of row 9 has not reached the target yet.
        fx.exec(
            Db::Maria,
            &format!("DELETE FROM `{target}` WHERE id = 5; UPDATE `{target}` SET v = 'old' WHERE id = 8;"),
        )
        .await?;
        fx.exec(Db::PgSource, &format!("DELETE FROM \"{source}\" WHERE id = 9")).await?;

        let applier = {
            let fx = fx.clone();
            let target = target.clone();
            tokio::spawn(async move {
                // Long enough for verify to have read the first chunk (it takes milliseconds),
                // well inside the retry window (8 x 500 ms).
                tokio::time::sleep(Duration::from_millis(800)).await;
                fx.exec(
                    Db::Maria,
                    &format!("INSERT INTO `{target}` VALUES (5, 'v5'); UPDATE `{target}` SET v = 'v8' WHERE id = 8; DELETE FROM `{target}` WHERE id = 9;"),
                )
                .await
            })
        };
        let options = VerifyOptions {
            chunk_size: 10,
            max_retries: 8,
            retry_delay: Duration::from_millis(500),
            ..VerifyOptions::default()
        };
        let report = fx.verify((Db::PgSource, &source), (Db::Maria, &target), &options).await;
        applier.await.context("applier task")??;
        let report = report?;
        ensure_clean(&report, 39)?;
        ensure!(report.chunks_retried >= 1, "a chunk must have needed a retry: {report:#?}");
        ensure!(report.chunks_differing == 0, "{report:#?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn connection_failures_name_the_server_not_the_password() -> Result<()> {
    let stack = Stack::get();
    let closed_port = 1;
    let source = Endpoint::new(
        ConnectionSettings::mysql(&stack.mariadb_host, closed_port, "someone", "db")
            .with_password(Password::new("s3cr3t-pw")),
        TableRef::new(None, "t"),
    );
    let target = Endpoint::new(
        ConnectionSettings::postgres(
            &stack.pg_host,
            stack.pg_port,
            &stack.pg_user,
            &stack.pg_target_db,
        ),
        TableRef::new(None, "t"),
    );
    let err = verify(&source, &target, &VerifyOptions::default())
        .await
        .err()
        .context("a closed port must fail")?;
    let message = format!("{err} {err:?}");
    ensure!(matches!(err, VerifyError::Connect { .. }), "{message}");
    ensure!(message.contains(&format!(":{closed_port}/db")), "{message}");
    ensure!(message.contains("check host, port"), "{message}");
    ensure!(
        !message.contains("s3cr3t-pw"),
        "the password leaked: {message}"
    );

    let bad_password = Endpoint::new(
        ConnectionSettings::mysql(
            &stack.mariadb_host,
            stack.mariadb_port,
            &stack.mariadb_user,
            &stack.mariadb_database,
        )
        .with_password(Password::new("wrong-pw")),
        TableRef::new(None, "t"),
    );
    let err = verify(&bad_password, &target, &VerifyOptions::default())
        .await
        .err()
        .context("a wrong password must fail")?;
    let message = format!("{err} {err:?}");
    ensure!(matches!(err, VerifyError::Connect { .. }), "{message}");
    ensure!(
        !message.contains("wrong-pw"),
        "the password leaked: {message}"
    );
    Ok(())
}
