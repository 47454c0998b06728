//! MariaDB / MySQL target adapter: session settings, catalog lookups, the offsets table, and the
//! one transaction per batch that writes rows and offsets together.
//!
//! Invariants (the same as [`crate::postgres`]):
//! - The offsets (`lockstep_sink_offsets`, InnoDB, in the target database) move in the same
//!   transaction as the rows. Target tables must be transactional (InnoDB): a MyISAM or Aria
//!   table would keep rows of a rolled-back batch, so the adapter refuses them.
//! - Nothing inside the transaction commits implicitly: no DDL, and a source TRUNCATE is a
//!   `DELETE` ([`crate::mysql_sql`]).
//! - Fencing: the offsets rows a batch moves are locked (`SELECT ... FOR UPDATE`) and compared
//!   with what this process last wrote; a mismatch rolls back and returns
//!   [`ApplyError::Fenced`]. A partition's first row is a plain `INSERT`: a concurrent first
//!   insert by another process makes it fail (duplicate key) instead of being overwritten.
//! - The session is pinned on connect: UTC (`time_zone = '+00:00'`), a strict `sql_mode` (a value
//!   the column cannot hold is an error, never silently truncated or zeroed; `NO_AUTO_VALUE_ON_ZERO`
//!   so a replicated key 0 stays 0; never `NO_BACKSLASH_ESCAPES`, which the literals rely on),
//!   utf8mb4, READ COMMITTED, autocommit outside the explicit transactions.
//! - Warnings the server still raises (notes on rounding a decimal's extra scale or a
//!   time's nanoseconds) are read and logged, not dropped.
//! - Rows travel with MariaDB's bulk execute, or as multi-row text statements on MySQL
//!   ([`Protocol`]); either way nothing sent exceeds the server's `max_allowed_packet`, read on
//!   connect.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use lockstep_debezium::value::mysql_quote;
use lockstep_debezium::Column;

use crate::mysql_sql::{self, bulk_chunks, Dialect, MyStatement, PacketLimits, Param, Protocol};
use crate::pipeline::TargetSettings;
use crate::table::TargetTable;
use crate::{ApplyError, PartitionKey};

/// The offsets table, in the target database next to the data it describes. Pipeline names and
/// Kafka topic names are ASCII (`[a-zA-Z0-9._-]`), which keeps the key short on any row format.
const OFFSETS_TABLE: &str = "lockstep_sink_offsets";
const OFFSETS_DDL: &str = "CREATE TABLE IF NOT EXISTS `lockstep_sink_offsets` (
    pipeline        VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    topic           VARCHAR(249) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kafka_partition INT          NOT NULL,
    next_offset     BIGINT       NOT NULL,
    updated_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline, topic, kafka_partition)
) ENGINE = InnoDB";

/// Strict, and valid on MariaDB 10.x/11.x and MySQL 8.
const SQL_MODE: &str = "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_IN_DATE,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Row statements and bulk packets are filled up to this size (or the server's
/// `max_allowed_packet`, if smaller). Larger ones gain nothing measurable and hold more memory
/// on both sides.
const TARGET_STATEMENT_BYTES: usize = 4 << 20;

/// Prepared statements kept per connection: the bulk protocol prepares one per table, column set
/// and operation.
const STATEMENT_CACHE: usize = 256;

/// Room left in a packet for the protocol's own bytes.
const PACKET_HEADROOM: usize = 1024;

/// Storage engines whose tables take part in a transaction.
const TRANSACTIONAL_ENGINES: &[&str] = &["innodb", "rocksdb"];

/// Server error codes about a row's values (rather than the database or the connection) whose
/// SQLSTATE is not of class 22 or 23 on every server version.
const VALUE_ERRORS: &[u16] = &[
    1265, // data truncated (an error in strict mode)
    1366, // incorrect value for a column
    1367, // illegal value
    1406, // data too long
    1411, // incorrect value for a function (e.g. a date)
    3140, // MySQL: invalid JSON text
    4025, // MariaDB: CHECK constraint failed (json_valid on a JSON column)
];

const ER_DUP_ENTRY: u16 = 1062;
const ER_DUP_FIELDNAME: u16 = 1060;

pub struct MariaDbTarget {
    conn: Conn,
    database: String,
    dialect: Dialect,
    protocol: Protocol,
    /// MariaDB (knows `ADD COLUMN IF NOT EXISTS`) rather than MySQL.
    mariadb: bool,
    limits: PacketLimits,
    tables: HashMap<String, TargetTable>,
}

impl MariaDbTarget {
    pub async fn connect(settings: &TargetSettings) -> Result<Self, ApplyError> {
        let target = format!(
            "mariadb {}:{}/{}",
            settings.host, settings.port, settings.database
        );
        let connect_error = |reason: String| ApplyError::Connect {
            target: target.clone(),
            reason,
        };
        let password = match &settings.password {
            Some(password) => Some(
                password
                    .resolve()
                    .map_err(|e| ApplyError::Config(e.to_string()))?
                    .expose()
                    .to_string(),
            ),
            None => None,
        };
        let sql_mode = format!("SET SESSION sql_mode = '{SQL_MODE}'");
        let opts = OptsBuilder::default()
            .ip_or_hostname(settings.host.clone())
            .tcp_port(settings.port)
            .user(Some(settings.user.clone()))
            .pass(password)
            .db_name(Some(settings.database.clone()))
            .prefer_socket(false)
            .stmt_cache_size(STATEMENT_CACHE)
            .init(vec![
                "SET NAMES utf8mb4".to_string(),
                "SET time_zone = '+00:00'".to_string(),
                sql_mode,
                "SET autocommit = 1".to_string(),
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
            ]);
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts))
            .await
            .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| connect_error(e.to_string()))?;

        let (version, session_mode, max_packet): (String, String, u64) = conn
            .query_first("SELECT VERSION(), @@SESSION.sql_mode, @@SESSION.max_allowed_packet")
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                ApplyError::Database("the server returned no session settings".into())
            })?;
        if session_mode.contains("NO_BACKSLASH_ESCAPES")
            || !session_mode.contains("STRICT_ALL_TABLES")
        {
            return Err(ApplyError::Config(format!(
                "target {target}: the session sql_mode is '{session_mode}' after setting '{SQL_MODE}'; an init_connect or proxy overrides it, and the sink's literals need it: remove that override"
            )));
        }
        let max_packet = usize::try_from(max_packet).unwrap_or(usize::MAX);
        let max = max_packet.saturating_sub(PACKET_HEADROOM).max(1024);
        let limits = PacketLimits {
            target: TARGET_STATEMENT_BYTES.min(max),
            max,
        };
        conn.query_drop(OFFSETS_DDL).await.map_err(db_error)?;
        let mariadb = mysql_sql::is_mariadb(&version);
        let mut this = Self {
            conn,
            database: settings.database.clone(),
            dialect: Dialect::from_version(&version),
            protocol: if mariadb {
                Protocol::Bulk
            } else {
                Protocol::Text
            },
            mariadb,
            limits,
            tables: HashMap::new(),
        };
        this.require_transactional(OFFSETS_TABLE).await?;
        tracing::info!(%target, %version, max_allowed_packet = max_packet, "MariaDB/MySQL target connected");
        Ok(this)
    }

    /// How rows are sent: chosen on connect from the server (bulk on MariaDB, text on MySQL);
    /// tests and benchmarks switch it to compare.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// Refuses tables whose engine has no transactions (rows and offsets could not commit
    /// together) and views.
    async fn require_transactional(&mut self, name: &str) -> Result<(), ApplyError> {
        let engine: Option<Option<String>> = self
            .conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (self.database.as_str(), name),
            )
            .await
            .map_err(db_error)?;
        let display = format!("{}.{name}", self.database);
        match engine {
            None => Err(ApplyError::MissingTable { table: display }),
            Some(None) => Err(ApplyError::Config(format!(
                "target table {display} is a view; the sink writes to base tables with a primary key"
            ))),
            Some(Some(engine))
                if TRANSACTIONAL_ENGINES.contains(&engine.to_ascii_lowercase().as_str()) =>
            {
                Ok(())
            }
            Some(Some(engine)) => Err(ApplyError::Config(format!(
                "target table {display} uses the {engine} engine, which has no transactions: its rows could not commit together with the sink's offsets; convert it (ALTER TABLE {} ENGINE = InnoDB)",
                mysql_sql::qualified(&TargetTable {
                    schema: self.database.clone(),
                    name: name.to_string(),
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                })
            ))),
        }
    }

    /// The committed position of every partition of this pipeline: the next offset to apply.
    pub async fn load_offsets(
        &mut self,
        pipeline: &str,
    ) -> Result<BTreeMap<PartitionKey, i64>, ApplyError> {
        let rows: Vec<(String, i32, i64)> = self
            .conn
            .exec(
                "SELECT topic, kafka_partition, next_offset FROM `lockstep_sink_offsets` WHERE pipeline = ?",
                (pipeline,),
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(topic, partition, next)| ((topic, partition), next))
            .collect())
    }

    /// The catalog's description of a target table, cached until [`MariaDbTarget::forget`].
    pub async fn table(&mut self, name: &str) -> Result<TargetTable, ApplyError> {
        if let Some(table) = self.tables.get(name) {
            return Ok(table.clone());
        }
        let columns: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS
                  WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (self.database.as_str(), name),
            )
            .await
            .map_err(db_error)?;
        if columns.is_empty() {
            return Err(ApplyError::MissingTable {
                table: format!("{}.{name}", self.database),
            });
        }
        self.require_transactional(name).await?;
        let primary_key: Vec<String> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS
                  WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'
                  ORDER BY SEQ_IN_INDEX",
                (self.database.as_str(), name),
            )
            .await
            .map_err(db_error)?;
        let table = TargetTable {
            schema: self.database.clone(),
            name: name.to_string(),
            columns,
            primary_key,
        };
        self.tables.insert(name.to_string(), table.clone());
        Ok(table)
    }

    /// A copy of the cached catalog.
    pub fn catalog(&self) -> HashMap<String, TargetTable> {
        self.tables.clone()
    }

    /// Drops cached catalog data, e.g. after the target's schema changed.
    pub fn forget(&mut self, name: &str) {
        self.tables.remove(name);
    }

    /// The pipeline's runtime topics (`crate::topics`), creating their table when missing.
    pub async fn load_topics(
        &mut self,
        pipeline: &str,
    ) -> Result<Vec<crate::topics::RuntimeTopic>, ApplyError> {
        use crate::topics::{RuntimeTopic, MY_TOPICS_DDL, MY_TOPICS_SELECT};
        self.conn
            .query_drop(MY_TOPICS_DDL)
            .await
            .map_err(db_error)?;
        let rows: Vec<(String, Option<String>, bool)> = self
            .conn
            .exec(MY_TOPICS_SELECT, (pipeline,))
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(RuntimeTopic::from_my_row).collect())
    }

    /// The tables held on request (`crate::holds`), creating their table when missing.
    pub async fn load_holds(&mut self, pipeline: &str) -> Result<Vec<String>, ApplyError> {
        use crate::holds::{MY_HOLDS_DDL, MY_HOLDS_SELECT};
        self.conn.query_drop(MY_HOLDS_DDL).await.map_err(db_error)?;
        self.conn
            .exec(MY_HOLDS_SELECT, (pipeline,))
            .await
            .map_err(db_error)
    }

    /// Records a hold (`held`) or its release.
    pub async fn save_hold(
        &mut self,
        pipeline: &str,
        table: &str,
        held: bool,
    ) -> Result<(), ApplyError> {
        use crate::holds::{MY_HOLD_DELETE, MY_HOLD_INSERT};
        let sql = if held { MY_HOLD_INSERT } else { MY_HOLD_DELETE };
        self.conn
            .exec_drop(sql, (pipeline, table))
            .await
            .map_err(db_error)
    }

    /// Records a runtime topic change (an upsert: the latest change of a topic wins).
    pub async fn save_topic(
        &mut self,
        pipeline: &str,
        topic: &crate::topics::RuntimeTopic,
    ) -> Result<(), ApplyError> {
        self.conn
            .query_drop(crate::topics::MY_TOPICS_DDL)
            .await
            .map_err(db_error)?;
        self.conn
            .exec_drop(
                crate::topics::MY_TOPICS_UPSERT,
                (pipeline, &topic.topic, &topic.table, topic.removed),
            )
            .await
            .map_err(db_error)
    }

    /// Applies the statements and moves the offsets in one transaction.
    ///
    /// `expected` holds, per partition, the next offset this process believes is committed
    /// (None: no row yet). The offsets rows are locked first and compared: if another sink
    /// process moved them, the batch is rolled back and [`ApplyError::Fenced`] returned, so a
    /// change is never applied twice.
    pub async fn apply(
        &mut self,
        pipeline: &str,
        statements: &[MyStatement],
        expected: &BTreeMap<PartitionKey, Option<i64>>,
        next: &BTreeMap<PartitionKey, i64>,
    ) -> Result<(), ApplyError> {
        // Prepared before the transaction opens: a row too large for the server is refused
        // without a round trip.
        let mut work = Vec::new();
        for statement in statements {
            let too_large = |e: mysql_sql::RowTooLarge| ApplyError::Rejected(e.to_string());
            match (self.protocol, statement.bulk_sql(self.dialect)) {
                (Protocol::Bulk, Some((sql, rows))) => work.push(Work::Bulk {
                    table: statement.table(),
                    chunks: bulk_chunks(statement.table(), rows, self.limits).map_err(too_large)?,
                    sql,
                }),
                _ => work.extend(
                    statement
                        .render(self.dialect, self.limits)
                        .map_err(too_large)?
                        .into_iter()
                        .map(|sql| Work::Text {
                            table: statement.table(),
                            sql,
                        }),
                ),
            }
        }
        self.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(db_error)?;
        let outcome = match self.transaction_body(pipeline, &work, expected, next).await {
            Ok(()) => return self.conn.query_drop("COMMIT").await.map_err(db_error),
            Err(e) => e,
        };
        if let Err(rollback) = self.conn.query_drop("ROLLBACK").await {
            tracing::warn!(error = %rollback, "rolling back the failed batch failed; the server rolls it back when the connection closes");
        }
        Err(outcome)
    }

    async fn transaction_body(
        &mut self,
        pipeline: &str,
        work: &[Work<'_>],
        expected: &BTreeMap<PartitionKey, Option<i64>>,
        next: &BTreeMap<PartitionKey, i64>,
    ) -> Result<(), ApplyError> {
        let pipeline_literal = mysql_quote(pipeline);
        let partitions = |keys: &mut dyn Iterator<Item = &PartitionKey>| {
            keys.map(|(topic, partition)| format!("({}, {partition})", mysql_quote(topic)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !expected.is_empty() {
            let stored: Vec<(String, i32, i64)> = self
                .conn
                .query(format!(
                    "SELECT topic, kafka_partition, next_offset FROM `lockstep_sink_offsets`
                      WHERE pipeline = {pipeline_literal} AND (topic, kafka_partition) IN ({})
                      FOR UPDATE",
                    partitions(&mut expected.keys())
                ))
                .await
                .map_err(db_error)?;
            let stored: BTreeMap<PartitionKey, i64> = stored
                .into_iter()
                .map(|(topic, partition, next)| ((topic, partition), next))
                .collect();
            for ((topic, partition), expected_next) in expected {
                let found = stored.get(&(topic.clone(), *partition)).copied();
                if found != *expected_next {
                    return Err(ApplyError::Fenced {
                        topic: topic.clone(),
                        partition: *partition,
                        expected: *expected_next,
                        found,
                    });
                }
            }
        }

        for item in work {
            match item {
                Work::Text { table, sql } => {
                    self.conn.query_drop(sql.as_str()).await.map_err(db_error)?;
                    self.log_warnings(table).await;
                }
                Work::Bulk { table, sql, chunks } => {
                    for chunk in chunks {
                        let rows = chunk
                            .iter()
                            .map(|row| row.iter().map(bound).collect::<Vec<_>>());
                        self.conn
                            .exec_batch(sql.as_str(), rows)
                            .await
                            .map_err(db_error)?;
                        self.log_warnings(table).await;
                    }
                }
            }
        }

        let had_row = |key: &PartitionKey| expected.get(key).copied().flatten().is_some();
        let moved: Vec<(&PartitionKey, &i64)> = next.iter().filter(|(k, _)| had_row(k)).collect();
        if !moved.is_empty() {
            // These rows are locked by the SELECT ... FOR UPDATE above.
            let cases = moved
                .iter()
                .map(|((topic, partition), next)| {
                    format!(
                        "WHEN topic = {} AND kafka_partition = {partition} THEN {next}",
                        mysql_quote(topic)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ");
            self.conn
                .query_drop(format!(
                    "UPDATE `lockstep_sink_offsets`
                        SET next_offset = CASE {cases} ELSE next_offset END,
                            updated_at = CURRENT_TIMESTAMP(6)
                      WHERE pipeline = {pipeline_literal} AND (topic, kafka_partition) IN ({})",
                    partitions(&mut moved.iter().map(|(k, _)| *k))
                ))
                .await
                .map_err(db_error)?;
        }
        for ((topic, partition), next_offset) in next.iter().filter(|(k, _)| !had_row(k)) {
            // A plain INSERT (no ON DUPLICATE KEY UPDATE): if another process inserted the
            // partition's first row meanwhile, the duplicate key fences this batch instead of
            // overwriting that process's position.
            let inserted = self
                .conn
                .query_drop(format!(
                    "INSERT INTO `lockstep_sink_offsets` (pipeline, topic, kafka_partition, next_offset)
                     VALUES ({pipeline_literal}, {}, {partition}, {next_offset})",
                    mysql_quote(topic)
                ))
                .await;
            match inserted {
                Ok(()) => {}
                Err(mysql_async::Error::Server(e)) if e.code == ER_DUP_ENTRY => {
                    return Err(ApplyError::Fenced {
                        topic: topic.clone(),
                        partition: *partition,
                        expected: None,
                        found: None,
                    })
                }
                Err(e) => return Err(db_error(e)),
            }
        }
        Ok(())
    }

    /// Logs the warnings of the last statement on `table`, if it had any (naming the table, not
    /// the statement, whose values are the replicated data).
    async fn log_warnings(&mut self, table: &str) {
        if self.conn.get_warnings() == 0 {
            return;
        }
        match self
            .conn
            .query::<(String, u32, String), _>("SHOW WARNINGS LIMIT 20")
            .await
        {
            Ok(warnings) => {
                for (level, code, message) in warnings {
                    tracing::warn!(%level, code, %message, %table, "the target server raised a warning while applying a batch");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the target server's warnings failed"),
        }
    }

    /// Adds `columns` as nullable columns typed from their Connect schema. On MariaDB with
    /// `IF NOT EXISTS`; on MySQL (which lacks it) only the columns a fresh catalog read still
    /// lacks, and a concurrent addition of the same column is not an error.
    pub async fn add_nullable_columns(
        &mut self,
        table: &TargetTable,
        columns: &[Column],
    ) -> Result<(), ApplyError> {
        if columns.is_empty() {
            return Ok(());
        }
        let sql = if self.mariadb {
            mysql_sql::add_nullable_columns(table, columns, true)
        } else {
            self.forget(&table.name);
            let fresh = self.table(&table.name).await?;
            let missing: Vec<Column> = columns
                .iter()
                .filter(|c| {
                    !fresh
                        .columns
                        .iter()
                        .any(|(name, _)| name.to_lowercase() == c.name.to_lowercase())
                })
                .cloned()
                .collect();
            if missing.is_empty() {
                self.forget(&table.name);
                return Ok(());
            }
            mysql_sql::add_nullable_columns(table, &missing, false)
        };
        let result = self.conn.query_drop(sql.as_str()).await;
        self.forget(&table.name);
        match result {
            Ok(()) => Ok(()),
            Err(mysql_async::Error::Server(e)) if e.code == ER_DUP_FIELDNAME => Ok(()),
            Err(e) => Err(db_error(e)),
        }
    }
}

/// What one batch sends inside its transaction.
enum Work<'a> {
    /// A text-protocol statement.
    Text { table: &'a str, sql: String },
    /// A single-row prepared statement, bulk-executed once per chunk of rows (one packet each).
    Bulk {
        table: &'a str,
        sql: String,
        chunks: Vec<&'a [Vec<Param>]>,
    },
}

/// A parameter as bound: every value as bytes (text or raw), so each parameter keeps one type
/// across the rows of a bulk packet.
fn bound(param: &Param) -> mysql_async::Value {
    match param {
        None => mysql_async::Value::NULL,
        Some(value) => mysql_async::Value::Bytes(value.as_bytes().to_vec()),
    }
}

fn db_error(e: mysql_async::Error) -> ApplyError {
    match &e {
        mysql_async::Error::Server(server) => {
            let detail = format!("{} ({}): {}", server.code, server.state, server.message);
            let about_values = server.state.starts_with("22")
                || server.state.starts_with("23")
                || VALUE_ERRORS.contains(&server.code);
            if about_values {
                ApplyError::Rejected(detail)
            } else {
                ApplyError::Database(detail)
            }
        }
        other => ApplyError::Database(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16, state: &str) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError {
            code,
            message: "m".into(),
            state: state.into(),
        })
    }

    #[test]
    fn value_errors_are_poison_and_the_rest_is_not() {
        let cases = [
            (1264, "22003", true),  // out of range
            (1292, "22007", true),  // incorrect datetime
            (1048, "23000", true),  // column cannot be null
            (1366, "HY000", true),  // incorrect integer value
            (4025, "23000", true),  // CHECK (json_valid)
            (1205, "HY000", false), // lock wait timeout
            (1213, "40001", false), // deadlock
            (1146, "42S02", false), // no such table
            (2013, "HY000", false), // lost connection
        ];
        for (code, state, poison) in cases {
            let e = db_error(server(code, state));
            assert_eq!(e.is_poison(), poison, "{code} {state}: {e}");
            assert!(e.to_string().contains(&code.to_string()), "{e}");
        }
    }

    #[test]
    fn session_sql_mode_is_strict_and_keeps_backslash_escapes() {
        assert!(SQL_MODE.contains("STRICT_ALL_TABLES"));
        assert!(SQL_MODE.contains("NO_AUTO_VALUE_ON_ZERO"));
        assert!(!SQL_MODE.contains("NO_BACKSLASH_ESCAPES"));
        assert!(OFFSETS_DDL.contains("ENGINE = InnoDB"));
    }
}
