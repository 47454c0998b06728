//! Pure planning of a coalesced batch into MariaDB / MySQL statements.
//!
//! - Upserts: `INSERT INTO t (..) VALUES (..) ON DUPLICATE KEY UPDATE c = VALUES(c)`, one
//!   statement per column set (normally one), like [`crate::pg_sql`]. MySQL 8.0.19 and later
//!   deprecate `VALUES(c)` there and get the row-alias form instead ([`Dialect`]). Unlike
//!   PostgreSQL's `ON CONFLICT (pk)`, a duplicate on any unique key updates the row holding it:
//!   a target table should have no unique key the source does not have.
//! - Deletes by primary key.
//! - A source TRUNCATE becomes `DELETE FROM t`: `TRUNCATE TABLE` is DDL in MariaDB and MySQL and
//!   commits the open transaction implicitly, so the rows would be emptied in one transaction and
//!   the offsets moved in another; a crash between the two would lose or repeat changes.
//!
//! A planned statement keeps its rows as parameters ([`Param`]: text in the form
//! [`Value::to_mysql_text`] gives, or raw bytes), and the adapter sends them one of two ways
//! ([`Protocol`]), both set-based:
//!
//! - **MariaDB: `COM_STMT_BULK_EXECUTE`** ([`MyStatement::bulk_sql`], [`bulk_chunks`]): a
//!   single-row prepared statement (`VALUES (?, ?, ..)`, `WHERE k = ?`), prepared once per table
//!   and column set and cached, executed with many rows' parameters in one packet. Values are
//!   bound, so nothing is escaped and no `sql_mode` matters; a statement has as many
//!   placeholders as columns, far below the protocol's 65,535.
//! - **MySQL** (which has no bulk command: the driver would execute once per row): multi-row
//!   statements with escaped literals in the text protocol ([`MyStatement::render`]: `VALUES
//!   (..), (..)`, `WHERE k IN (..)` / `WHERE (k1, k2) IN ((..), (..))`, both range access on the
//!   primary key). Strings are escaped by [`lockstep_debezium::value::mysql_quote`], correct
//!   because the adapter's session `sql_mode` never has `NO_BACKSLASH_ESCAPES` and the connection
//!   character set is utf8mb4, in which no multi-byte character ends in a quote or backslash
//!   byte. No placeholders, so no 65,535 limit; no prepare per distinct row count.
//!
//! Measured on MariaDB 10.11 with 100,000 rows of 10 mixed columns, 1,000 rows per statement,
//! 5,000 per transaction (`tests/mariadb_protocol.rs`, release build, two runs on a shared
//! 2-core machine): bulk execute 58-61 k inserts/s and 36-39 k updates/s; cached multi-row
//! prepared statements 36-43 k / 26-28 k; text literals 29-32 k / 25-27 k; multi-row prepared
//! statements prepared each time (what varying batch sizes would mostly cause) 20-22 k /
//! 18-19 k. The adapter itself (planning included) reached 32-33 k / 26-27 k with bulk and
//! 23-24 k / 17-22 k with text. Either way, every statement or packet stays below the server's
//! `max_allowed_packet` ([`PacketLimits`]). The server converts each value to the column's
//! declared type, strictly (`STRICT_ALL_TABLES`).

use lockstep_debezium::value::mysql_quote;
use lockstep_debezium::{
    CoalescedBatch, Column, ColumnType, ConnectType, Logical, RenderError, Row, TableOp, Value,
};

use crate::table::TargetTable;
use crate::ApplyError;

/// Where the upsert reads the inserted row's values from: the one place MariaDB and MySQL differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MariaDB (every version) and MySQL before 8.0.19: `c = VALUES(c)`.
    Values,
    /// MySQL 8.0.19 and later, where `VALUES(c)` is deprecated: `VALUES (..) AS lockstep_new
    /// ON DUPLICATE KEY UPDATE c = lockstep_new.c`.
    RowAlias,
}

impl Dialect {
    /// The dialect of a server from its `VERSION()` text (`10.11.19-MariaDB-0+deb12u1-log`,
    /// `8.0.36`).
    pub fn from_version(version: &str) -> Dialect {
        if is_mariadb(version) {
            return Dialect::Values;
        }
        let numbers: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        match numbers.as_slice() {
            [major, minor, patch] if (*major, *minor, *patch) >= (8, 0, 19) => Dialect::RowAlias,
            _ => Dialect::Values,
        }
    }
}

/// Whether a `VERSION()` text is MariaDB's.
pub fn is_mariadb(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

/// How row statements reach the server (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MariaDB's `COM_STMT_BULK_EXECUTE` with a single-row prepared statement.
    Bulk,
    /// Multi-row statements with escaped literals (MySQL).
    Text,
}

/// The row alias of [`Dialect::RowAlias`] upserts.
const ROW_ALIAS: &str = "lockstep_new";

/// A value as it is sent: text the server converts to the column's type, or raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MyValue {
    /// An integer: a bare literal in the text protocol.
    Integer(String),
    Text(String),
    Bytes(Vec<u8>),
}

/// A parameter; `None` is SQL NULL.
pub type Param = Option<MyValue>;

impl MyValue {
    /// The value as a SQL literal.
    pub fn literal(&self) -> String {
        match self {
            MyValue::Integer(i) => i.clone(),
            MyValue::Text(t) => mysql_quote(t),
            MyValue::Bytes(b) => {
                let mut out = String::with_capacity(3 + 2 * b.len());
                out.push_str("X'");
                for byte in b {
                    out.push_str(&format!("{byte:02X}"));
                }
                out.push('\'');
                out
            }
        }
    }

    /// Bytes the value takes in a bulk-execute packet, at most (a 9-byte length prefix is the
    /// longest the protocol uses).
    fn bulk_len(&self) -> usize {
        9 + match self {
            MyValue::Integer(t) | MyValue::Text(t) => t.len(),
            MyValue::Bytes(b) => b.len(),
        }
    }

    /// The value's bytes for a bound parameter.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MyValue::Integer(t) | MyValue::Text(t) => t.as_bytes(),
            MyValue::Bytes(b) => b,
        }
    }
}

fn literal_of(param: &Param) -> String {
    param
        .as_ref()
        .map_or_else(|| "NULL".to_string(), MyValue::literal)
}

/// One planned statement over one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MyStatement {
    /// `DELETE FROM t`: a source TRUNCATE, inside the transaction (see the module docs).
    DeleteAll { table: String },
    /// Deletes by primary key: `key` holds the quoted key columns, `rows` each deleted row's key
    /// values in that order.
    Delete {
        table: String,
        key: Vec<String>,
        rows: Vec<Vec<Param>>,
    },
    /// Upserts: `columns` are quoted, `rows` their values in that order, `update` the quoted
    /// non-key columns, `key` the quoted key columns.
    Upsert {
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<Param>>,
        update: Vec<String>,
        key: Vec<String>,
    },
}

/// How large statements and packets may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketLimits {
    /// Rows are packed into one statement (or bulk packet) up to about this many bytes.
    pub target: usize,
    /// Nothing sent is longer than this: the server's `max_allowed_packet` less headroom. A row
    /// larger than `target` travels alone, up to this size.
    pub max: usize,
}

impl PacketLimits {
    /// Statements of at most `bytes` bytes.
    pub fn at_most(bytes: usize) -> Self {
        Self {
            target: bytes,
            max: bytes,
        }
    }
}

/// A single row would exceed the server's packet limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("one row of table {table} needs {bytes} bytes in a packet, more than the {limit} bytes the server accepts: raise the target's max_allowed_packet (SET GLOBAL max_allowed_packet = ...) above it")]
pub struct RowTooLarge {
    pub table: String,
    pub bytes: usize,
    pub limit: usize,
}

impl MyStatement {
    /// Rows the statement carries (0 for a truncate).
    pub fn rows(&self) -> usize {
        match self {
            MyStatement::DeleteAll { .. } => 0,
            MyStatement::Delete { rows, .. } | MyStatement::Upsert { rows, .. } => rows.len(),
        }
    }

    pub fn table(&self) -> &str {
        match self {
            MyStatement::DeleteAll { table }
            | MyStatement::Delete { table, .. }
            | MyStatement::Upsert { table, .. } => table,
        }
    }

    fn upsert_tail(dialect: Dialect, update: &[String], key: &[String]) -> String {
        match (dialect, update.is_empty()) {
            // Only key columns: a duplicate leaves the row as it is (without INSERT IGNORE,
            // which would turn errors into warnings).
            (_, true) => {
                let k = key.first().map(String::as_str).unwrap_or("");
                format!(" ON DUPLICATE KEY UPDATE {k} = {k}")
            }
            (Dialect::Values, false) => format!(
                " ON DUPLICATE KEY UPDATE {}",
                update
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (Dialect::RowAlias, false) => format!(
                " AS {ROW_ALIAS} ON DUPLICATE KEY UPDATE {}",
                update
                    .iter()
                    .map(|c| format!("{c} = {ROW_ALIAS}.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Text protocol: the statement's SQL with literals, cut into as many statements as `limits`
    /// require. Every statement of a coalesced batch touches each key once, so the pieces are
    /// independent and together have the effect of the whole.
    pub fn render(
        &self,
        dialect: Dialect,
        limits: PacketLimits,
    ) -> Result<Vec<String>, RowTooLarge> {
        match self {
            MyStatement::DeleteAll { table } => Ok(vec![format!("DELETE FROM {table}")]),
            MyStatement::Delete { table, key, rows } => {
                let head = match key.as_slice() {
                    [single] => format!("DELETE FROM {table} WHERE {single} IN ("),
                    many => format!("DELETE FROM {table} WHERE ({}) IN (", many.join(", ")),
                };
                let items: Vec<String> = rows
                    .iter()
                    .map(|row| match row.as_slice() {
                        [single] => literal_of(single),
                        many => tuple(many),
                    })
                    .collect();
                pack(table, &head, &items, ")", limits)
            }
            MyStatement::Upsert {
                table,
                columns,
                rows,
                update,
                key,
            } => {
                let head = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
                let items: Vec<String> = rows.iter().map(|row| tuple(row)).collect();
                pack(
                    table,
                    &head,
                    &items,
                    &Self::upsert_tail(dialect, update, key),
                    limits,
                )
            }
        }
    }

    /// Bulk protocol: the single-row statement to prepare, with its rows; `None` for a
    /// statement without rows (the truncate), which goes as text.
    pub fn bulk_sql(&self, dialect: Dialect) -> Option<(String, &[Vec<Param>])> {
        match self {
            MyStatement::DeleteAll { .. } => None,
            MyStatement::Delete { table, key, rows } => Some((
                format!(
                    "DELETE FROM {table} WHERE {}",
                    key.iter()
                        .map(|k| format!("{k} = ?"))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                ),
                rows,
            )),
            MyStatement::Upsert {
                table,
                columns,
                rows,
                update,
                key,
            } => Some((
                format!(
                    "INSERT INTO {table} ({}) VALUES ({}){}",
                    columns.join(", "),
                    vec!["?"; columns.len()].join(", "),
                    Self::upsert_tail(dialect, update, key)
                ),
                rows,
            )),
        }
    }
}

fn tuple(values: &[Param]) -> String {
    format!(
        "({})",
        values.iter().map(literal_of).collect::<Vec<_>>().join(", ")
    )
}

/// Bulk protocol: `rows` cut into runs that each fit one bulk-execute packet within `limits`
/// (estimated from above, so the driver never splits a run: it would send the parameter types
/// with the first packet only).
pub fn bulk_chunks<'r>(
    table: &str,
    rows: &'r [Vec<Param>],
    limits: PacketLimits,
) -> Result<Vec<&'r [Vec<Param>]>, RowTooLarge> {
    // Command, statement id, flags; a type (2 bytes) per parameter.
    let header = 7 + 2 * rows.first().map_or(0, Vec::len);
    let row_len = |row: &Vec<Param>| -> usize {
        row.iter()
            .map(|p| 1 + p.as_ref().map_or(0, MyValue::bulk_len))
            .sum()
    };
    let mut chunks = Vec::new();
    let (mut start, mut size) = (0, header);
    for (i, row) in rows.iter().enumerate() {
        let len = row_len(row);
        if header + len > limits.max {
            return Err(RowTooLarge {
                table: table.to_string(),
                bytes: header + len,
                limit: limits.max,
            });
        }
        if i > start && size + len > limits.target {
            chunks.push(&rows[start..i]);
            start = i;
            size = header;
        }
        size += len;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    Ok(chunks)
}

/// `head item, item, ... tail` in as few statements as `limits` allow.
fn pack(
    table: &str,
    head: &str,
    items: &[String],
    tail: &str,
    limits: PacketLimits,
) -> Result<Vec<String>, RowTooLarge> {
    const SEPARATOR: &str = ", ";
    let mut statements = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty()
            && current.len() + SEPARATOR.len() + item.len() + tail.len() > limits.target
        {
            current.push_str(tail);
            statements.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            let alone = head.len() + item.len() + tail.len();
            if alone > limits.max {
                return Err(RowTooLarge {
                    table: table.to_string(),
                    bytes: alone,
                    limit: limits.max,
                });
            }
            current.reserve(limits.target.min(1 << 20));
            current.push_str(head);
        } else {
            current.push_str(SEPARATOR);
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        current.push_str(tail);
        statements.push(current);
    }
    Ok(statements)
}

/// `` `db`.`table` ``.
pub fn qualified(table: &TargetTable) -> String {
    format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    )
}

/// A backtick-quoted identifier (backticks doubled), safe in every `sql_mode`.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The target column matching an event's column name. MariaDB and MySQL column names are
/// case-insensitive, so `Amount` in an event is the target's `amount`.
fn target_column<'t>(table: &'t TargetTable, name: &str) -> Option<(&'t str, &'t str)> {
    table
        .columns
        .iter()
        .find(|(c, _)| c == name)
        .or_else(|| table.columns.iter().find(|(c, _)| same_name(c, name)))
        .map(|(c, t)| (c.as_str(), t.as_str()))
}

/// Column-name equality as MariaDB and MySQL see it (case-insensitive).
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// The base type of a declared column type: `decimal` of `decimal(12,2) unsigned`.
fn base_type(declared: &str) -> String {
    declared
        .trim_start()
        .split(|c: char| c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_integer_type(declared: &str) -> bool {
    matches!(
        base_type(declared).as_str(),
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    )
}

/// A value as a parameter for a target column of the declared type (`COLUMN_TYPE`).
///
/// Text is [`Value::to_mysql_text`] (UTC for zoned values, exponent notation for long floats,
/// JSON for arrays, maps and structs), bytes stay bytes; a `MicroDuration` written to an integer
/// column becomes its microseconds ([`mysql_type_for`] maps durations to `bigint`: MariaDB's
/// TIME stops at 838 hours). The server converts the text to the column's type.
///
/// A float written to a single-precision `float` column is first rounded to the nearest `f32`:
/// MariaDB range-checks the double it parses before rounding, so `3.4028235e38` (how Java prints
/// the largest float, which a JSON reader widens to a double just above it) would be refused
/// although the column holds exactly that float.
pub fn param(value: &Value, declared: &str) -> Result<Param, RenderError> {
    Ok(match value {
        Value::Null => None,
        Value::Int(i) => Some(MyValue::Integer(i.to_string())),
        Value::Duration { micros } if is_integer_type(declared) => {
            Some(MyValue::Integer(micros.to_string()))
        }
        Value::Float(f) if base_type(declared) == "float" => Value::Float(f64::from(*f as f32))
            .to_mysql_text()?
            .map(MyValue::Text),
        Value::Bytes(b) | Value::Geometry { wkb: b, .. } => Some(MyValue::Bytes(b.clone())),
        other => other.to_mysql_text()?.map(MyValue::Text),
    })
}

/// [`param`] as a SQL literal.
pub fn literal(value: &Value, declared: &str) -> Result<String, RenderError> {
    Ok(literal_of(&param(value, declared)?))
}

fn render(row: &Row, column: &str, table: &TargetTable) -> Result<Param, ApplyError> {
    let value = row.value(column).ok_or_else(|| ApplyError::KeyMismatch {
        table: table.display_name(),
        detail: format!("a change event lacks column '{column}'"),
    })?;
    let declared = target_column(table, column).map_or("", |(_, t)| t);
    param(value, declared).map_err(|e| ApplyError::Unwritable {
        table: table.display_name(),
        column: column.to_string(),
        reason: e.to_string(),
    })
}

/// The event's key columns in the target's primary key order (event names, which may differ in
/// case from the target's).
fn key_columns(table: &TargetTable, key: &Row) -> Result<Vec<String>, ApplyError> {
    if table.primary_key.is_empty() {
        return Err(ApplyError::KeyMismatch {
            table: table.display_name(),
            detail: "the target table has no primary key; add the same primary key as the source"
                .into(),
        });
    }
    let mismatch = || {
        let mut event: Vec<&str> = key.columns.iter().map(|c| &*c.name).collect();
        let mut target: Vec<&str> = table.primary_key.iter().map(String::as_str).collect();
        event.sort_unstable();
        target.sort_unstable();
        ApplyError::KeyMismatch {
            table: table.display_name(),
            detail: format!(
                "change events are keyed by ({}) but the target's primary key is ({}); align the target's primary key with the source's (or the connector's message.key.columns)",
                event.join(", "),
                target.join(", ")
            ),
        }
    };
    if key.columns.len() != table.primary_key.len() {
        return Err(mismatch());
    }
    table
        .primary_key
        .iter()
        .map(|k| {
            key.columns
                .iter()
                .find(|c| same_name(&c.name, k))
                .map(|c| c.name.to_string())
                .ok_or_else(mismatch)
        })
        .collect()
}

/// [`key_columns`] without allocating when the event's key names the target's key columns
/// exactly (the common case, checked for every row).
fn check_key(table: &TargetTable, key: &Row) -> Result<(), ApplyError> {
    if table.is_keyed_by(key) {
        Ok(())
    } else {
        key_columns(table, key).map(|_| ())
    }
}

/// Columns of `row` the target does not have (compared case-insensitively, as MariaDB does).
fn missing_columns(table: &TargetTable, row: &Row) -> Vec<String> {
    row.columns
        .iter()
        .filter(|c| target_column(table, &c.name).is_none())
        .map(|c| c.name.to_string())
        .collect()
}

/// Plans one table's coalesced batch: the truncate first, then the deletes, then the upserts.
/// Each key appears once in a coalesced batch, so deletes and upserts never touch the same row.
pub fn plan(table: &TargetTable, batch: &CoalescedBatch) -> Result<Vec<MyStatement>, ApplyError> {
    let name = qualified(table);
    let mut statements = Vec::new();
    if batch.truncate.is_some() {
        statements.push(MyStatement::DeleteAll {
            table: name.clone(),
        });
    }
    let quoted_key: Vec<String> = table.primary_key.iter().map(|k| quote_ident(k)).collect();

    let mut deleted = Vec::new();
    for op in &batch.ops {
        if let TableOp::Delete { key, .. } = op {
            let columns = key_columns(table, key)?;
            deleted.push(
                columns
                    .iter()
                    .map(|c| render(key, c, table))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    if !deleted.is_empty() {
        statements.push(MyStatement::Delete {
            table: name.clone(),
            key: quoted_key.clone(),
            rows: deleted,
        });
    }

    // Upserts grouped by their column list, in order of first appearance: normally one group,
    // several while a column is being added on the source and old and new events share a batch.
    let mut groups: Vec<(Vec<&str>, Vec<&Row>)> = Vec::new();
    for op in &batch.ops {
        if let TableOp::Upsert { key, row, .. } = op {
            check_key(table, key)?;
            let missing = missing_columns(table, row);
            if !missing.is_empty() {
                return Err(ApplyError::SchemaDrift {
                    table: table.display_name(),
                    columns: missing,
                });
            }
            let same_columns = |names: &Vec<&str>| {
                names.len() == row.columns.len()
                    && names.iter().zip(&row.columns).all(|(n, c)| **n == *c.name)
            };
            match groups.iter_mut().find(|(names, _)| same_columns(names)) {
                Some((_, rows)) => rows.push(row),
                None => groups.push((row.columns.iter().map(|c| &*c.name).collect(), vec![row])),
            }
        }
    }
    for (columns, rows) in groups {
        // Every row of the group has exactly these columns in this order: no lookups per value.
        let declared: Vec<&str> = columns
            .iter()
            .map(|c| target_column(table, c).map_or("", |(_, t)| t))
            .collect();
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            values.push(
                row.columns
                    .iter()
                    .zip(&declared)
                    .map(|(column, declared)| {
                        param(&column.value, declared).map_err(|e| ApplyError::Unwritable {
                            table: table.display_name(),
                            column: column.name.to_string(),
                            reason: e.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        // The target's spelling of each column (case may differ from the event's).
        let target_names: Vec<&str> = columns
            .iter()
            .map(|c| target_column(table, c).map_or(*c, |(t, _)| t))
            .collect();
        let update = target_names
            .iter()
            .filter(|c| !table.primary_key.iter().any(|k| same_name(k, c)))
            .map(|c| quote_ident(c))
            .collect();
        statements.push(MyStatement::Upsert {
            table: name.clone(),
            columns: target_names.iter().map(|c| quote_ident(c)).collect(),
            rows: values,
            update,
            key: quoted_key.clone(),
        });
    }
    Ok(statements)
}

/// `ALTER TABLE ... ADD COLUMN [IF NOT EXISTS] c <type> NULL, ...` for the `evolve` drift policy,
/// typed by [`mysql_type_for`]. MariaDB knows `IF NOT EXISTS` (a column added meanwhile by a DBA
/// or another sink process is left alone); MySQL does not, so its caller adds only the columns
/// a fresh catalog read still lacks.
pub fn add_nullable_columns(
    table: &TargetTable,
    columns: &[Column],
    if_not_exists: bool,
) -> String {
    let adds = columns
        .iter()
        .map(|c| {
            format!(
                "ADD COLUMN {}{} {} NULL",
                if if_not_exists { "IF NOT EXISTS " } else { "" },
                quote_ident(&c.name),
                mysql_type_for(&c.column_type)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("ALTER TABLE {} {adds}", qualified(table))
}

/// The MariaDB / MySQL type a column of this Connect schema maps to (the counterpart of
/// [`crate::pg_sql::pg_type_for`]):
///
/// - decimals keep their precision and scale when MariaDB's DECIMAL can hold them (precision
///   up to 65, scale up to 30); otherwise, and for `VariableScaleDecimal`, `decimal(65,30)`:
///   more than 35 integer digits are refused (strict mode), more than 30 fractional digits are
///   rounded by the server (a note the adapter logs);
/// - times are `time(6)`, timestamps `datetime(6)`; a `ZonedTimestamp` is written in UTC to a
///   `datetime(6)` (`timestamp(6)` stops at 1970 and 2038);
/// - durations (`MicroDuration`, `NanoDuration`) are `bigint` counts (µs, ns): TIME stops at
///   838 hours; an ISO-8601 `Interval` is kept as text;
/// - JSON, arrays (MariaDB has no array type: they are written as JSON arrays), maps and structs
///   are `json` (MariaDB: `longtext` with a `json_valid` check);
/// - uuid is `char(36)` (a MariaDB 10.7+ `uuid` column is accepted as a target too);
/// - enums and other strings are `longtext` (or `varchar(n)` / `char(n)` when the connector
///   propagates the source type), bytes `longblob`, booleans `tinyint(1)`.
pub fn mysql_type_for(column: &ColumnType) -> String {
    match &column.logical {
        Logical::Decimal {
            scale,
            precision: Some(precision),
        } if *scale >= 0 && *scale <= 30 && *precision <= 65 && (*scale as u32) <= *precision => {
            format!("decimal({precision},{scale})")
        }
        Logical::Decimal { .. } | Logical::VariableScaleDecimal => "decimal(65,30)".into(),
        Logical::Date => "date".into(),
        Logical::TimeMillis | Logical::TimeMicros | Logical::TimeNanos | Logical::ZonedTime => {
            "time(6)".into()
        }
        Logical::TimestampMillis
        | Logical::TimestampMicros
        | Logical::TimestampNanos
        | Logical::ZonedTimestamp => "datetime(6)".into(),
        Logical::Year => "int".into(),
        Logical::MicroDuration | Logical::NanoDuration => "bigint".into(),
        Logical::Interval => "varchar(64)".into(),
        Logical::Json => "json".into(),
        Logical::Uuid => "char(36)".into(),
        Logical::Bits { .. } | Logical::Geometry { .. } | Logical::Point => "longblob".into(),
        Logical::Enum { .. } | Logical::EnumSet { .. } | Logical::Xml | Logical::Ltree => {
            "longtext".into()
        }
        Logical::None | Logical::Other(_) => match column.connect_type {
            ConnectType::Int8 => "tinyint".into(),
            ConnectType::Int16 => "smallint".into(),
            ConnectType::Int32 => "int".into(),
            ConnectType::Int64 => "bigint".into(),
            ConnectType::Float32 => "float".into(),
            ConnectType::Float64 => "double".into(),
            ConnectType::Boolean => "tinyint(1)".into(),
            ConnectType::String => string_type(column),
            ConnectType::Bytes => "longblob".into(),
            ConnectType::Array | ConnectType::Map | ConnectType::Struct => "json".into(),
        },
    }
}

/// `varchar(n)` / `char(n)` when the connector propagates a bounded source string type,
/// else `longtext`.
fn string_type(column: &ColumnType) -> String {
    let source = column.source_type_name().map(str::to_ascii_uppercase);
    match (source.as_deref(), column.source_length()) {
        (Some("VARCHAR" | "CHARACTER VARYING"), Some(n)) if (1..=16_383).contains(&n) => {
            format!("varchar({n})")
        }
        (Some("BPCHAR" | "CHAR" | "CHARACTER"), Some(n)) if (1..=255).contains(&n) => {
            format!("char({n})")
        }
        _ => "longtext".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use lockstep_debezium::{Op, Position, Schema};

    fn col(name: &str, value: Value) -> Column {
        Column {
            name: name.into(),
            column_type: ColumnType::from_schema(&Schema::new(ConnectType::String)).into(),
            value,
        }
    }

    fn row(cols: Vec<Column>) -> Cow<'static, Row> {
        Cow::Owned(Row {
            schema_name: None,
            columns: cols,
        })
    }

    fn pos(offset: i64) -> Position {
        Position {
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    fn table() -> TargetTable {
        TargetTable {
            schema: "shop".into(),
            name: "orders".into(),
            columns: vec![
                ("id".into(), "bigint(20)".into()),
                ("note".into(), "varchar(100)".into()),
                ("amount".into(), "decimal(12,2)".into()),
            ],
            primary_key: vec!["id".into()],
        }
    }

    fn upsert(id: i64, note: Option<&str>) -> TableOp<'static> {
        TableOp::Upsert {
            key: row(vec![col("id", Value::Int(id))]),
            row: row(vec![
                col("id", Value::Int(id)),
                col("note", note.map_or(Value::Null, |n| Value::Text(n.into()))),
                col("amount", Value::Decimal("1.50".into())),
            ]),
            op: Op::Create,
            created: false,
            position: pos(id),
        }
    }

    fn delete(id: i64) -> TableOp<'static> {
        TableOp::Delete {
            key: row(vec![col("id", Value::Int(id))]),
            position: pos(id),
        }
    }

    fn batch(ops: Vec<TableOp<'static>>, truncate: bool) -> CoalescedBatch<'static> {
        CoalescedBatch {
            truncate: truncate.then(|| pos(0)),
            ops,
            ..CoalescedBatch::default()
        }
    }

    fn sql(statement: &MyStatement, dialect: Dialect) -> String {
        let mut rendered = statement
            .render(dialect, PacketLimits::at_most(usize::MAX))
            .expect("render");
        assert_eq!(rendered.len(), 1);
        rendered.remove(0)
    }

    #[test]
    fn plans_truncate_deletes_and_one_upsert_statement() {
        let ops = vec![
            upsert(1, Some("it's")),
            delete(7),
            delete(8),
            upsert(2, None),
        ];
        let statements = plan(&table(), &batch(ops, true)).expect("plan");
        assert_eq!(statements.len(), 3);
        assert_eq!(
            sql(&statements[0], Dialect::Values),
            "DELETE FROM `shop`.`orders`",
            "a truncate must not be TRUNCATE TABLE (DDL, implicit commit)"
        );
        assert_eq!(
            sql(&statements[1], Dialect::Values),
            "DELETE FROM `shop`.`orders` WHERE `id` IN (7, 8)"
        );
        assert_eq!(statements[1].rows(), 2);
        assert_eq!(
            sql(&statements[2], Dialect::Values),
            "INSERT INTO `shop`.`orders` (`id`, `note`, `amount`) VALUES (1, 'it\\'s', '1.50'), (2, NULL, '1.50') ON DUPLICATE KEY UPDATE `note` = VALUES(`note`), `amount` = VALUES(`amount`)"
        );
        assert_eq!(
            sql(&statements[2], Dialect::RowAlias),
            "INSERT INTO `shop`.`orders` (`id`, `note`, `amount`) VALUES (1, 'it\\'s', '1.50'), (2, NULL, '1.50') AS lockstep_new ON DUPLICATE KEY UPDATE `note` = lockstep_new.`note`, `amount` = lockstep_new.`amount`"
        );
        assert_eq!(statements[2].rows(), 2);
    }

    #[test]
    fn bulk_statements_are_single_row_with_placeholders() {
        let ops = vec![upsert(1, Some("a")), delete(7), upsert(2, None)];
        let statements = plan(&table(), &batch(ops, true)).expect("plan");
        assert_eq!(
            statements[0].bulk_sql(Dialect::Values),
            None,
            "the truncate goes as text"
        );
        let (delete_sql, delete_rows) = statements[1].bulk_sql(Dialect::Values).expect("bulk");
        assert_eq!(delete_sql, "DELETE FROM `shop`.`orders` WHERE `id` = ?");
        assert_eq!(delete_rows, &[vec![Some(MyValue::Integer("7".into()))]]);
        let (upsert_sql, upsert_rows) = statements[2].bulk_sql(Dialect::Values).expect("bulk");
        assert_eq!(
            upsert_sql,
            "INSERT INTO `shop`.`orders` (`id`, `note`, `amount`) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE `note` = VALUES(`note`), `amount` = VALUES(`amount`)"
        );
        assert_eq!(
            upsert_rows[1],
            vec![
                Some(MyValue::Integer("2".into())),
                None,
                Some(MyValue::Text("1.50".into()))
            ]
        );
        let mut t = table();
        t.primary_key = vec!["note".into(), "id".into()];
        let composite = MyStatement::Delete {
            table: qualified(&t),
            key: vec!["`note`".into(), "`id`".into()],
            rows: vec![],
        };
        assert_eq!(
            composite.bulk_sql(Dialect::Values).expect("bulk").0,
            "DELETE FROM `shop`.`orders` WHERE `note` = ? AND `id` = ?"
        );
    }

    #[test]
    fn bulk_rows_are_cut_into_packets_that_fit() {
        let rows: Vec<Vec<Param>> = (0..100)
            .map(|i| {
                vec![
                    Some(MyValue::Integer(i.to_string())),
                    Some(MyValue::Bytes(vec![7; 90])),
                    None,
                ]
            })
            .collect();
        // A row is at most 3 indicators + (9 + 2) + (9 + 90) = 113 bytes; the header 13.
        let chunks = bulk_chunks("t", &rows, PacketLimits::at_most(13 + 113 * 10)).expect("fits");
        assert_eq!(chunks.len(), 10);
        assert!(chunks.iter().all(|c| c.len() == 10));
        let whole = bulk_chunks("t", &rows, PacketLimits::at_most(1 << 20)).expect("fits");
        assert_eq!(whole.len(), 1);
        let single = bulk_chunks(
            "t",
            &rows,
            PacketLimits {
                target: 1,
                max: 200,
            },
        )
        .expect("each alone");
        assert_eq!(single.len(), 100);
        let err = bulk_chunks("`db`.`t`", &rows, PacketLimits::at_most(100)).expect_err("too big");
        assert_eq!((err.table.as_str(), err.limit), ("`db`.`t`", 100));
        assert!(bulk_chunks("t", &[], PacketLimits::at_most(100))
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn composite_keys_delete_by_row_constructor_in_key_order() {
        let mut t = table();
        t.columns.push(("region".into(), "char(2)".into()));
        t.primary_key = vec!["region".into(), "id".into()];
        let key = |id: i64, region: &str| {
            row(vec![
                col("id", Value::Int(id)),
                col("region", Value::Text(region.into())),
            ])
        };
        let ops = vec![
            TableOp::Delete {
                key: key(1, "eu"),
                position: pos(1),
            },
            TableOp::Delete {
                key: key(2, "us"),
                position: pos(2),
            },
        ];
        let statements = plan(&t, &batch(ops, false)).expect("plan");
        assert_eq!(
            sql(&statements[0], Dialect::Values),
            "DELETE FROM `shop`.`orders` WHERE (`region`, `id`) IN (('eu', 1), ('us', 2))"
        );
    }

    #[test]
    fn statements_are_cut_below_the_packet_limit() {
        let ops: Vec<TableOp> = (0..100).map(|i| upsert(i, Some("xxxxxxxxxx"))).collect();
        let statements = plan(&table(), &batch(ops, false)).expect("plan");
        let whole = sql(&statements[0], Dialect::Values);
        for limit in [whole.len(), whole.len() / 2, 1_000, 400] {
            let pieces = statements[0]
                .render(Dialect::Values, PacketLimits::at_most(limit))
                .expect("fits");
            assert!(pieces.iter().all(|p| p.len() <= limit), "limit {limit}");
            assert!(pieces
                .iter()
                .all(|p| p.starts_with("INSERT INTO `shop`.`orders`")
                    && p.ends_with("`amount` = VALUES(`amount`)")));
            // Every row is in exactly one piece, in order.
            let rows: Vec<&str> = pieces
                .iter()
                .flat_map(|p| {
                    let body = &p[p.find("VALUES ").map_or(0, |i| i + 7)
                        ..p.find(" ON DUP").unwrap_or(p.len())];
                    body.split("), (").collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(rows.len(), 100, "limit {limit}");
            if limit < whole.len() {
                assert!(pieces.len() > 1, "limit {limit}");
            }
        }
        let deletes = plan(&table(), &batch((0..50).map(delete).collect(), false)).expect("plan");
        let pieces = deletes[0]
            .render(Dialect::Values, PacketLimits::at_most(60))
            .expect("fits");
        assert!(
            pieces.iter().all(|p| p.len() <= 60 && p.ends_with(')')),
            "{pieces:?}"
        );
        assert_eq!(
            pieces
                .iter()
                .map(|p| p.matches(", ").count() + 1)
                .sum::<usize>(),
            50
        );

        let err = statements[0]
            .render(Dialect::Values, PacketLimits::at_most(100))
            .expect_err("one row too large");
        assert_eq!(err.table, "`shop`.`orders`");
        assert!(err.to_string().contains("max_allowed_packet"), "{err}");
        // A row larger than the target but within the server's limit gets a statement alone.
        let one_each = statements[0]
            .render(
                Dialect::Values,
                PacketLimits {
                    target: 100,
                    max: 10_000,
                },
            )
            .expect("fits the hard limit");
        assert_eq!(one_each.len(), 100);
    }

    #[test]
    fn refuses_drift_and_key_mismatches_with_the_reason() {
        let mut drifted = upsert(1, Some("a"));
        if let TableOp::Upsert { row, .. } = &mut drifted {
            row.to_mut().columns.push(col("discount", Value::Int(3)));
        }
        match plan(&table(), &batch(vec![drifted], false)) {
            Err(ApplyError::SchemaDrift { columns, table }) => {
                assert_eq!(columns, vec!["discount"]);
                assert_eq!(table, "shop.orders");
            }
            other => panic!("expected drift, got {other:?}"),
        }
        let wrong_key = TableOp::Delete {
            key: row(vec![col("note", Value::Text("x".into()))]),
            position: pos(1),
        };
        let err = plan(&table(), &batch(vec![wrong_key], false)).expect_err("key mismatch");
        assert!(err.to_string().contains("keyed by (note)"), "{err}");
        let mut no_pk = table();
        no_pk.primary_key.clear();
        let err = plan(&no_pk, &batch(vec![upsert(1, None)], false)).expect_err("no pk");
        assert!(err.to_string().contains("no primary key"), "{err}");

        let unwritable = TableOp::Upsert {
            key: row(vec![col("id", Value::Int(1))]),
            row: row(vec![
                col("id", Value::Int(1)),
                col("amount", Value::Float(f64::NAN)),
            ]),
            op: Op::Update,
            created: false,
            position: pos(1),
        };
        match plan(&table(), &batch(vec![unwritable], false)) {
            Err(ApplyError::Unwritable { table, column, .. }) => {
                assert_eq!((table.as_str(), column.as_str()), ("shop.orders", "amount"));
            }
            other => panic!("expected unwritable, got {other:?}"),
        }
    }

    #[test]
    fn column_names_match_case_insensitively_and_use_the_target_spelling() {
        let mut t = table();
        t.columns[1].0 = "Note".into();
        t.primary_key = vec!["ID".into()];
        t.columns[0].0 = "ID".into();
        let statements = plan(&t, &batch(vec![upsert(5, Some("n"))], false)).expect("plan");
        assert_eq!(
            sql(&statements[0], Dialect::Values),
            "INSERT INTO `shop`.`orders` (`ID`, `Note`, `amount`) VALUES (5, 'n', '1.50') ON DUPLICATE KEY UPDATE `Note` = VALUES(`Note`), `amount` = VALUES(`amount`)"
        );
    }

    #[test]
    fn key_only_tables_ignore_duplicates_without_ignore() {
        let mut t = table();
        t.columns.truncate(1);
        let op = TableOp::Upsert {
            key: row(vec![col("id", Value::Int(1))]),
            row: row(vec![col("id", Value::Int(1))]),
            op: Op::Read,
            created: false,
            position: pos(1),
        };
        let statements = plan(&t, &batch(vec![op], false)).expect("plan");
        assert!(
            sql(&statements[0], Dialect::Values).ends_with("ON DUPLICATE KEY UPDATE `id` = `id`")
        );
    }

    #[test]
    fn identifiers_are_backtick_quoted() {
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(quote_ident("a b'c\"d"), "`a b'c\"d`");
        let mut t = table();
        t.name = "or`ders".into();
        assert_eq!(qualified(&t), "`shop`.`or``ders`");
    }

    #[test]
    fn literals_per_value() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (Value::Null, "int", "NULL"),
            (
                Value::Int(-9_223_372_036_854_775_808),
                "bigint",
                "-9223372036854775808",
            ),
            (Value::Bool(true), "tinyint(1)", "'1'"),
            (
                Value::Decimal("-0.000001".into()),
                "decimal(12,6)",
                "'-0.000001'",
            ),
            (Value::Float(1e-300), "double", "'1e-300'"),
            (
                Value::Float(-3.4028235e38),
                "float",
                "'-3.4028234663852886e38'",
            ),
            (Value::Float(0.1), "float", "'0.10000000149011612'"),
            (Value::Float(0.1), "double", "'0.1'"),
            (
                Value::Text("a'b\\c\0\n".into()),
                "text",
                "'a\\'b\\\\c\\0\\n'",
            ),
            (
                Value::Text("' OR 1=1 -- ".into()),
                "text",
                "'\\' OR 1=1 -- '",
            ),
            (Value::Text("日本語 🎉".into()), "text", "'日本語 🎉'"),
            (
                Value::Bytes(vec![0, 0x27, 0x5c, 0xff]),
                "blob",
                "X'00275CFF'",
            ),
            (Value::Date { days: -1 }, "date", "'1969-12-31'"),
            (
                Value::Time {
                    micros: 3_723_000_004,
                },
                "time(6)",
                "'01:02:03.000004'",
            ),
            (
                Value::Timestamp { micros: -1 },
                "datetime(6)",
                "'1969-12-31 23:59:59.999999'",
            ),
            (
                Value::TimestampTz("2024-02-29T23:59:59.5+02:00".into()),
                "datetime(6)",
                "'2024-02-29 21:59:59.5'",
            ),
            (
                Value::Duration {
                    micros: 90_061_000_001,
                },
                "bigint(20)",
                "90061000001",
            ),
            (
                Value::Duration {
                    micros: 90_061_000_001,
                },
                "time(6)",
                "'25:01:01.000001'",
            ),
            (
                Value::Json("{\"a\": \"it's\"}".into()),
                "json",
                "'{\"a\": \"it\\'s\"}'",
            ),
            (
                Value::Array(vec![Value::Int(1), Value::Null]),
                "longtext",
                "'[1,null]'",
            ),
            (
                Value::Array(vec![Value::Text("a\"b".into())]),
                "json",
                "'[\"a\\\\\"b\"]'",
            ),
        ];
        for (value, declared, expected) in cases {
            assert_eq!(
                literal(&value, declared).expect("literal"),
                expected,
                "{value:?}"
            );
        }
        assert!(literal(&Value::Date { days: 3_000_000 }, "date").is_err());
        assert!(literal(&Value::Float(f64::INFINITY), "double").is_err());
    }

    #[test]
    fn dialect_from_server_version() {
        assert_eq!(
            Dialect::from_version("10.11.19-MariaDB-0+deb12u1-log"),
            Dialect::Values
        );
        assert_eq!(Dialect::from_version("11.4.2-MariaDB"), Dialect::Values);
        assert_eq!(Dialect::from_version("8.0.36"), Dialect::RowAlias);
        assert_eq!(Dialect::from_version("8.0.18-log"), Dialect::Values);
        assert_eq!(Dialect::from_version("8.4.0"), Dialect::RowAlias);
        assert_eq!(Dialect::from_version("5.7.44"), Dialect::Values);
        assert_eq!(Dialect::from_version("garbage"), Dialect::Values);
    }

    #[test]
    fn types_for_evolve() {
        let named = |t: ConnectType, name: &str, params: &[(&str, &str)]| {
            let mut schema = Schema::new(t);
            schema.name = (!name.is_empty()).then(|| std::sync::Arc::from(name));
            for (k, v) in params {
                schema.parameters.insert(k.to_string(), v.to_string());
            }
            ColumnType::from_schema(&schema)
        };
        let decimal = "org.apache.kafka.connect.data.Decimal";
        let cases = [
            (
                named(
                    ConnectType::Bytes,
                    decimal,
                    &[("scale", "2"), ("connect.decimal.precision", "12")],
                ),
                "decimal(12,2)",
            ),
            (
                named(
                    ConnectType::Bytes,
                    decimal,
                    &[("scale", "2"), ("connect.decimal.precision", "80")],
                ),
                "decimal(65,30)",
            ),
            (
                named(
                    ConnectType::Struct,
                    "io.debezium.data.VariableScaleDecimal",
                    &[],
                ),
                "decimal(65,30)",
            ),
            (
                named(ConnectType::Int32, "io.debezium.time.Date", &[]),
                "date",
            ),
            (
                named(ConnectType::Int64, "io.debezium.time.MicroTime", &[]),
                "time(6)",
            ),
            (
                named(ConnectType::Int64, "io.debezium.time.MicroTimestamp", &[]),
                "datetime(6)",
            ),
            (
                named(ConnectType::String, "io.debezium.time.ZonedTimestamp", &[]),
                "datetime(6)",
            ),
            (
                named(ConnectType::Int64, "io.debezium.time.MicroDuration", &[]),
                "bigint",
            ),
            (
                named(ConnectType::String, "io.debezium.data.Json", &[]),
                "json",
            ),
            (
                named(ConnectType::String, "io.debezium.data.Uuid", &[]),
                "char(36)",
            ),
            (
                named(
                    ConnectType::String,
                    "io.debezium.data.Enum",
                    &[("allowed", "a,b")],
                ),
                "longtext",
            ),
            (named(ConnectType::Boolean, "", &[]), "tinyint(1)"),
            (named(ConnectType::Int16, "", &[]), "smallint"),
            (named(ConnectType::Float32, "", &[]), "float"),
            (named(ConnectType::Bytes, "", &[]), "longblob"),
            (named(ConnectType::Array, "", &[]), "json"),
            (named(ConnectType::String, "", &[]), "longtext"),
            (
                named(
                    ConnectType::String,
                    "",
                    &[
                        ("__debezium.source.column.type", "VARCHAR"),
                        ("__debezium.source.column.length", "40"),
                    ],
                ),
                "varchar(40)",
            ),
        ];
        for (column_type, expected) in cases {
            assert_eq!(mysql_type_for(&column_type), expected, "{column_type:?}");
        }
        let column = Column {
            name: "dis`count".into(),
            column_type: named(ConnectType::Int32, "", &[]).into(),
            value: Value::Null,
        };
        assert_eq!(
            add_nullable_columns(&table(), std::slice::from_ref(&column), true),
            "ALTER TABLE `shop`.`orders` ADD COLUMN IF NOT EXISTS `dis``count` int NULL"
        );
        assert_eq!(
            add_nullable_columns(&table(), &[column], false),
            "ALTER TABLE `shop`.`orders` ADD COLUMN `dis``count` int NULL"
        );
    }
}
