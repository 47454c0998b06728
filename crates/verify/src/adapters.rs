//! The imperative shell: connect, read the catalog, fetch a chunk's rows as text. Everything
//! these adapters return is handed to the pure core ([`crate::canonical`], [`crate::diff`]).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio_postgres::types::ToSql;

use crate::canonical::{classify_mysql, classify_pg, ColumnKind};
use crate::diff::{build_row, Key, Row, RowError};
use crate::error::{BoxError, Side, VerifyError};
use crate::plan::{chunk_sql, compare_keys, Bounds, ColumnInfo, SideColumns, TableSchema};
use crate::settings::{Endpoint, Engine};

/// Reads one chunk of rows, keyset-paginated: `lower < key <= upper`, at most `limit` rows,
/// in key order.
pub(crate) trait Fetch {
    async fn fetch(
        &mut self,
        lower: Option<&Key>,
        upper: Option<&Key>,
        limit: Option<usize>,
    ) -> Result<Vec<Row>, VerifyError>;
}

/// A connected table on either engine.
pub(crate) struct Adapter {
    side: Side,
    endpoint: String,
    schema: String,
    table: String,
    conn: Conn,
    columns: Option<Selected>,
}

enum Conn {
    Postgres {
        client: tokio_postgres::Client,
        statements: HashMap<String, tokio_postgres::Statement>,
    },
    Mysql(mysql_async::Conn),
}

struct Selected {
    side: SideColumns,
    key_kinds: Vec<ColumnKind>,
    value_kinds: Vec<ColumnKind>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Session settings that make PostgreSQL's `::text` output the canonical encoding's input.
const PG_SESSION: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
     SET bytea_output = 'hex'; SET extra_float_digits = 1; \
     SET default_transaction_read_only = on";

impl Adapter {
    pub(crate) async fn connect(side: Side, endpoint: &Endpoint) -> Result<Self, VerifyError> {
        let settings = &endpoint.connection;
        let described = endpoint.describe();
        let connect_error = |source: BoxError| VerifyError::Connect {
            side,
            endpoint: described.clone(),
            user: settings.user.clone(),
            source,
        };
        let conn = match settings.engine {
            Engine::Postgres => {
                let mut config = tokio_postgres::Config::new();
                config
                    .host(&settings.host)
                    .port(settings.port)
                    .user(&settings.user)
                    .dbname(&settings.database)
                    .application_name("lockstep-verify")
                    .connect_timeout(CONNECT_TIMEOUT);
                if let Some(password) = &settings.password {
                    config.password(password.expose());
                }
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| connect_error(e.into()))?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::warn!(error = %err, "PostgreSQL connection of lockstep verify ended");
                    }
                });
                client
                    .batch_execute(PG_SESSION)
                    .await
                    .map_err(|e| connect_error(e.into()))?;
                Conn::Postgres {
                    client,
                    statements: HashMap::new(),
                }
            }
            Engine::Mysql => {
                let opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(settings.host.clone())
                    .tcp_port(settings.port)
                    .user(Some(settings.user.clone()))
                    .pass(settings.password.as_ref().map(|p| p.expose().to_string()))
                    .db_name(Some(settings.database.clone()))
                    .prefer_socket(false)
                    .init(vec![
                        "SET NAMES utf8mb4",
                        "SET time_zone = '+00:00'",
                        "SET SESSION TRANSACTION READ ONLY",
                    ]);
                let conn = tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts))
                    .await
                    .map_err(|_| connect_error("timed out".into()))?
                    .map_err(|e| connect_error(e.into()))?;
                Conn::Mysql(conn)
            }
        };
        Ok(Self {
            side,
            endpoint: described,
            schema: endpoint
                .table
                .schema_or_default(&endpoint.connection)
                .to_string(),
            table: endpoint.table.name.clone(),
            conn,
            columns: None,
        })
    }

    /// Columns and primary key from the catalog. An empty column list means the table is not
    /// there (or not visible to the user).
    pub(crate) async fn describe(&mut self) -> Result<TableSchema, VerifyError> {
        let action = "reading the table's columns and primary key from the catalog";
        let (engine, columns, primary_key) = match &mut self.conn {
            Conn::Postgres { client, .. } => {
                let rows = client
                    .query(PG_COLUMNS, &[&self.schema, &self.table])
                    .await
                    .map_err(|e| Self::error_parts(self.side, &self.endpoint, action, e.into()))?;
                let mut columns = Vec::with_capacity(rows.len());
                for row in &rows {
                    let get = |i: usize| -> Result<String, VerifyError> {
                        row.try_get::<_, String>(i).map_err(|e| {
                            Self::error_parts(self.side, &self.endpoint, action, e.into())
                        })
                    };
                    let type_name = get(1)?;
                    columns.push(ColumnInfo {
                        name: get(0)?,
                        kind: classify_pg(&type_name),
                        type_name,
                        cast_type: get(2)?,
                        declared_type: get(3)?,
                    });
                }
                let key_rows = client
                    .query(PG_PRIMARY_KEY, &[&self.schema, &self.table])
                    .await
                    .map_err(|e| Self::error_parts(self.side, &self.endpoint, action, e.into()))?;
                let primary_key = key_rows
                    .iter()
                    .map(|r| r.try_get::<_, String>(0))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Self::error_parts(self.side, &self.endpoint, action, e.into()))?;
                (Engine::Postgres, columns, primary_key)
            }
            Conn::Mysql(conn) => {
                let rows: Vec<(String, String, String)> = conn
                    .exec(MYSQL_COLUMNS, (self.schema.as_str(), self.table.as_str()))
                    .await
                    .map_err(|e| Self::error_parts(self.side, &self.endpoint, action, e.into()))?;
                let columns = rows
                    .into_iter()
                    .map(|(name, data_type, column_type)| ColumnInfo {
                        name,
                        kind: classify_mysql(&data_type),
                        type_name: data_type,
                        declared_type: column_type.clone(),
                        cast_type: column_type,
                    })
                    .collect();
                let primary_key: Vec<String> = conn
                    .exec(
                        MYSQL_PRIMARY_KEY,
                        (self.schema.as_str(), self.table.as_str()),
                    )
                    .await
                    .map_err(|e| Self::error_parts(self.side, &self.endpoint, action, e.into()))?;
                (Engine::Mysql, columns, primary_key)
            }
        };
        Ok(TableSchema {
            engine,
            schema: self.schema.clone(),
            name: self.table.clone(),
            columns,
            primary_key,
        })
    }

    fn error_parts(side: Side, endpoint: &str, action: &str, source: BoxError) -> VerifyError {
        VerifyError::Query {
            side,
            endpoint: endpoint.to_string(),
            action: action.to_string(),
            source,
        }
    }

    /// Fixes the columns [`Fetch::fetch`] selects (from the comparison plan).
    pub(crate) fn select(&mut self, side: SideColumns) {
        self.columns = Some(Selected {
            key_kinds: side.key.iter().map(|c| c.kind).collect(),
            value_kinds: side.values.iter().map(|c| c.kind).collect(),
            side,
        });
    }

    pub(crate) async fn close(self) {
        if let Conn::Mysql(conn) = self.conn {
            if let Err(err) = conn.disconnect().await {
                tracing::debug!(error = %err, "closing the MariaDB/MySQL connection");
            }
        }
    }

    fn bad_row(&self, action: &str, problem: String) -> VerifyError {
        VerifyError::BadRow {
            side: self.side,
            endpoint: self.endpoint.clone(),
            action: action.to_string(),
            problem,
        }
    }
}

impl Fetch for Adapter {
    async fn fetch(
        &mut self,
        lower: Option<&Key>,
        upper: Option<&Key>,
        limit: Option<usize>,
    ) -> Result<Vec<Row>, VerifyError> {
        let action = describe_fetch(lower, upper, limit);
        let Some(selected) = &self.columns else {
            return Err(self.bad_row(&action, "no columns selected before fetching".into()));
        };
        let bounds = Bounds {
            lower: lower.is_some(),
            upper: upper.is_some(),
            limit,
        };
        let sql = chunk_sql(&selected.side, bounds);
        let params: Vec<&String> = lower
            .iter()
            .chain(upper.iter())
            .flat_map(|k| &k.0)
            .collect();
        let raw_rows: Vec<Vec<Option<String>>> = match &mut self.conn {
            Conn::Postgres { client, statements } => {
                let statement = match statements.get(&sql) {
                    Some(statement) => statement.clone(),
                    None => {
                        let statement = client.prepare(&sql).await.map_err(|e| {
                            Self::error_parts(self.side, &self.endpoint, &action, e.into())
                        })?;
                        statements.insert(sql.clone(), statement.clone());
                        statement
                    }
                };
                let pg_params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| *p as &(dyn ToSql + Sync)).collect();
                let rows = client
                    .query(&statement, &pg_params)
                    .await
                    .map_err(|e| Self::error_parts(self.side, &self.endpoint, &action, e.into()))?;
                let width = statement.columns().len();
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let fields = (0..width)
                        .map(|i| row.try_get::<_, Option<String>>(i))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| {
                            Self::error_parts(self.side, &self.endpoint, &action, e.into())
                        })?;
                    out.push(fields);
                }
                out
            }
            Conn::Mysql(conn) => {
                let my_params: Vec<mysql_async::Value> = params
                    .iter()
                    .map(|p| mysql_async::Value::from(p.as_str()))
                    .collect();
                let params = if my_params.is_empty() {
                    mysql_async::Params::Empty
                } else {
                    mysql_async::Params::Positional(my_params)
                };
                let rows: Vec<mysql_async::Row> = conn
                    .exec(sql.as_str(), params)
                    .await
                    .map_err(|e| Self::error_parts(self.side, &self.endpoint, &action, e.into()))?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let fields = row
                        .unwrap()
                        .into_iter()
                        .map(mysql_value_text)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|problem| {
                            Self::bad_row_parts(self.side, &self.endpoint, &action, problem)
                        })?;
                    out.push(fields);
                }
                out
            }
        };
        let Some(selected) = &self.columns else {
            return Err(self.bad_row(&action, "no columns selected before fetching".into()));
        };
        let rows = raw_rows
            .into_iter()
            .map(|raw| {
                build_row(&selected.key_kinds, &selected.value_kinds, raw).map_err(|e| {
                    let problem = match e {
                        RowError::Width { expected, got } => {
                            format!("expected {expected} fields, got {got}")
                        }
                        RowError::NullKey { column } => format!(
                            "primary key column {} is NULL",
                            selected
                                .side
                                .key
                                .get(column)
                                .map(|c| c.name.as_str())
                                .unwrap_or("?")
                        ),
                    };
                    self.bad_row(&action, problem)
                })
            })
            .collect::<Result<Vec<Row>, VerifyError>>()?;
        // Chunk bounds and the merge-join rely on the server ordering keys exactly as
        // `compare_keys` does; a server that disagrees must stop the run, not skew it.
        if let Some(i) = rows.windows(2).position(|pair| {
            compare_keys(&selected.key_kinds, &pair[0].key, &pair[1].key) != Ordering::Less
        }) {
            return Err(self.bad_row(
                &action,
                format!(
                    "rows arrived out of key order ({} before {}): the server orders a key \
                     column differently from lockstep",
                    rows[i].key,
                    rows[i + 1].key
                ),
            ));
        }
        Ok(rows)
    }
}

impl Adapter {
    fn bad_row_parts(side: Side, endpoint: &str, action: &str, problem: String) -> VerifyError {
        VerifyError::BadRow {
            side,
            endpoint: endpoint.to_string(),
            action: action.to_string(),
            problem,
        }
    }
}

fn describe_fetch(lower: Option<&Key>, upper: Option<&Key>, limit: Option<usize>) -> String {
    let mut out = "fetching the rows with key".to_string();
    match (lower, upper) {
        (None, None) => out.push_str(" anywhere"),
        (Some(l), None) => out.push_str(&format!(" > {l}")),
        (None, Some(u)) => out.push_str(&format!(" <= {u}")),
        (Some(l), Some(u)) => out.push_str(&format!(" > {l} and <= {u}")),
    }
    if let Some(limit) = limit {
        out.push_str(&format!(" (first {limit})"));
    }
    out
}

/// The text of a MariaDB/MySQL value. The chunk query selects text expressions only, so this
/// is `Bytes` (or NULL) in practice; the other variants are rendered for robustness.
fn mysql_value_text(value: mysql_async::Value) -> Result<Option<String>, String> {
    use mysql_async::Value;
    Ok(match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(
            String::from_utf8(bytes)
                .map_err(|e| format!("a text value is not valid UTF-8 ({e})"))?,
        ),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Date(y, mo, d, h, mi, s, us) => Some(format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
        )),
        Value::Time(negative, days, h, mi, s, us) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if negative { "-" } else { "" };
            Some(format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}"))
        }
    })
}

const PG_COLUMNS: &str = "\
SELECT a.attname::text, bt.typname::text, format_type(bt.oid, NULL), \
       format_type(a.atttypid, a.atttypmod) \
FROM pg_catalog.pg_attribute a \
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
  AND a.attnum > 0 AND NOT a.attisdropped \
ORDER BY a.attnum";

const PG_PRIMARY_KEY: &str = "\
SELECT a.attname::text \
FROM pg_catalog.pg_index i \
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary \
ORDER BY array_position(i.indkey::int2[], a.attnum)";

const MYSQL_COLUMNS: &str = "\
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS \
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

const MYSQL_PRIMARY_KEY: &str = "\
SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
ORDER BY ORDINAL_POSITION";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_values_render_as_text() {
        use mysql_async::Value;
        let cases: Vec<(Value, Option<&str>)> = vec![
            (Value::NULL, None),
            (Value::Bytes(b"".to_vec()), Some("")),
            (Value::Bytes("Grüße".as_bytes().to_vec()), Some("Grüße")),
            (Value::Int(-5), Some("-5")),
            (
                Value::UInt(18_446_744_073_709_551_615),
                Some("18446744073709551615"),
            ),
            (
                Value::Date(2024, 2, 29, 1, 2, 3, 4),
                Some("2024-02-29 01:02:03.000004"),
            ),
            (Value::Time(true, 1, 2, 3, 4, 5), Some("-26:03:04.000005")),
        ];
        for (value, expected) in cases {
            assert_eq!(
                mysql_value_text(value.clone()).expect("text").as_deref(),
                expected,
                "{value:?}"
            );
        }
        assert!(mysql_value_text(Value::Bytes(vec![0xff, 0xfe])).is_err());
    }

    #[test]
    fn fetch_descriptions() {
        let k = |v: &str| Key(vec![v.to_string()]);
        assert_eq!(
            describe_fetch(None, None, Some(10)),
            "fetching the rows with key anywhere (first 10)"
        );
        assert_eq!(
            describe_fetch(Some(&k("1")), Some(&k("9")), None),
            "fetching the rows with key > (1) and <= (9)"
        );
    }
}
