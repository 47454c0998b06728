//! The Debezium layer: Connect data of a record's key and value -> [`Record`].
//! Format-neutral: works on [`SchemaAndValue`] whatever decoder produced it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::decode::SchemaAndValue;
use crate::error::DecodeError;
use crate::schema::{ColumnType, ConnectType, Schema};
use crate::value::Value;

/// Debezium's `op` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Op {
    /// `c`: insert.
    Create,
    /// `r`: row read during a snapshot.
    Read,
    /// `u`: update.
    Update,
    /// `d`: delete.
    Delete,
    /// `t`: truncate (PostgreSQL, MySQL).
    Truncate,
    /// `m`: logical decoding message (PostgreSQL `pg_logical_emit_message`).
    Message,
}

impl Op {
    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Create,
            "r" => Op::Read,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            "m" => Op::Message,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Read => "r",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }
}

/// One column of a row: name, type (from the schema) and value. The name and type are shared by
/// every row decoded with the same schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: Arc<str>,
    pub column_type: Arc<ColumnType>,
    pub value: Value,
}

impl Column {
    pub fn new(name: &str, column_type: ColumnType, value: Value) -> Column {
        Column {
            name: Arc::from(name),
            column_type: Arc::new(column_type),
            value,
        }
    }
}

/// An ordered list of columns (a `before`/`after` image or a key).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Row {
    /// The Connect record name of the struct (e.g. `srv.public.orders.Value`), shared with its
    /// schema.
    pub schema_name: Option<Arc<str>>,
    pub columns: Vec<Column>,
}

impl Row {
    /// Build a row from a struct schema and a struct value.
    pub fn from_struct(schema: &Schema, value: Value, path: &str) -> Result<Row, DecodeError> {
        let Value::Struct(fields) = value else {
            return Err(DecodeError::envelope(
                path,
                format!(
                    "expected a struct (row), found a {} value",
                    schema.connect_type
                ),
            ));
        };
        if schema.connect_type != ConnectType::Struct {
            return Err(DecodeError::envelope(
                path,
                "expected a struct schema for a row",
            ));
        }
        let mut columns = Vec::with_capacity(fields.len());
        for (index, (name, value)) in fields.into_iter().enumerate() {
            // A decoder gives the fields in schema order; look up by name only if not.
            let field = match schema.fields.get(index) {
                // The decoder's shared name is the field's own: no need to compare the text.
                Some(f) if Arc::ptr_eq(f.column().0, &name) || *f.name == *name => f,
                _ => match schema.field(&name) {
                    Some(f) => f,
                    None => {
                        return Err(DecodeError::envelope(
                            &format!("{path}.{name}"),
                            "column has a value but no schema field",
                        ))
                    }
                },
            };
            let (shared_name, column_type) = field.column();
            // A decoder hands out the field's own shared name: keep it rather than count another
            // reference to it and drop this one.
            let name = if Arc::ptr_eq(&name, shared_name) {
                name
            } else {
                Arc::clone(shared_name)
            };
            columns.push(Column {
                name,
                column_type: Arc::clone(column_type),
                value,
            });
        }
        Ok(Row {
            schema_name: schema.name.clone(),
            columns,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| &*c.name == name)
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.get(name).map(|c| &c.value)
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// `source.snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Snapshot {
    False,
    True,
    First,
    FirstInDataCollection,
    LastInDataCollection,
    Last,
    Incremental,
    /// A marker this crate does not know (kept verbatim).
    Other(String),
}

impl Snapshot {
    pub fn parse(s: &str) -> Snapshot {
        match s {
            "false" => Snapshot::False,
            "true" => Snapshot::True,
            "first" => Snapshot::First,
            "first_in_data_collection" => Snapshot::FirstInDataCollection,
            "last_in_data_collection" => Snapshot::LastInDataCollection,
            "last" => Snapshot::Last,
            "incremental" => Snapshot::Incremental,
            other => Snapshot::Other(other.to_string()),
        }
    }

    /// Whether the event was produced by a (blocking or incremental) snapshot.
    pub fn is_snapshot(&self) -> bool {
        !matches!(self, Snapshot::False)
    }
}

/// The `source` block. Known fields are typed; everything else (and any
/// known field with an unexpected type) is kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Source {
    pub version: Option<String>,
    pub connector: Option<String>,
    /// The topic prefix (`topic.prefix`, formerly `database.server.name`).
    pub name: Option<String>,
    /// Source commit time (ms since epoch).
    pub ts_ms: Option<i64>,
    pub ts_us: Option<i64>,
    pub ts_ns: Option<i64>,
    pub snapshot: Option<Snapshot>,
    pub db: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    /// PostgreSQL: `["<last committed lsn>","<current lsn>"]` as a string.
    pub sequence: Option<String>,
    /// PostgreSQL transaction id.
    pub tx_id: Option<i64>,
    pub lsn: Option<i64>,
    pub xmin: Option<i64>,
    /// MySQL/MariaDB binlog coordinates.
    pub file: Option<String>,
    pub pos: Option<i64>,
    pub row: Option<i64>,
    pub gtid: Option<String>,
    pub server_id: Option<i64>,
    pub thread: Option<i64>,
    pub query: Option<String>,
    pub extra: BTreeMap<String, Value>,
}

impl Source {
    fn from_value(value: Value) -> Source {
        let mut s = Source::default();
        let Value::Struct(fields) = value else {
            return s;
        };
        for (name, v) in fields {
            // Returns the value back when it does not fit the typed slot.
            let rest = match (&*name, v) {
                ("version", Value::Text(t)) => set(&mut s.version, t),
                ("connector", Value::Text(t)) => set(&mut s.connector, t),
                ("name", Value::Text(t)) => set(&mut s.name, t),
                ("ts_ms", Value::Int(i)) => set(&mut s.ts_ms, i),
                ("ts_us", Value::Int(i)) => set(&mut s.ts_us, i),
                ("ts_ns", Value::Int(i)) => set(&mut s.ts_ns, i),
                ("snapshot", Value::Text(t)) => set(&mut s.snapshot, Snapshot::parse(&t)),
                // Debezium 0.x/1.x wrote a boolean.
                ("snapshot", Value::Bool(b)) => set(
                    &mut s.snapshot,
                    if b { Snapshot::True } else { Snapshot::False },
                ),
                ("db", Value::Text(t)) => set(&mut s.db, t),
                ("schema", Value::Text(t)) => set(&mut s.schema, t),
                ("table", Value::Text(t)) => set(&mut s.table, t),
                ("sequence", Value::Text(t)) => set(&mut s.sequence, t),
                ("txId", Value::Int(i)) => set(&mut s.tx_id, i),
                ("lsn", Value::Int(i)) => set(&mut s.lsn, i),
                ("xmin", Value::Int(i)) => set(&mut s.xmin, i),
                ("file", Value::Text(t)) => set(&mut s.file, t),
                ("pos", Value::Int(i)) => set(&mut s.pos, i),
                ("row", Value::Int(i)) => set(&mut s.row, i),
                ("gtid", Value::Text(t)) => set(&mut s.gtid, t),
                ("server_id", Value::Int(i)) => set(&mut s.server_id, i),
                ("thread", Value::Int(i)) => set(&mut s.thread, i),
                ("query", Value::Text(t)) => set(&mut s.query, t),
                (_, v) => Some(v),
            };
            if let Some(v) = rest {
                if !v.is_null() {
                    s.extra.insert(name.to_string(), v);
                }
            }
        }
        s
    }
}

fn set<T>(slot: &mut Option<T>, v: T) -> Option<Value> {
    *slot = Some(v);
    None
}

/// The envelope's `transaction` block (`provide.transaction.metadata=true`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransactionBlock {
    pub id: String,
    pub total_order: Option<i64>,
    pub data_collection_order: Option<i64>,
}

/// Envelope timestamps: when the connector processed the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct EnvelopeTimes {
    pub ts_ms: Option<i64>,
    pub ts_us: Option<i64>,
    pub ts_ns: Option<i64>,
}

/// A row change: `c`, `r`, `u` or `d`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeEvent {
    pub op: Op,
    /// Primary-key columns from the record key; `None` for a table without
    /// a primary key (or a null record key).
    pub key: Option<Row>,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub source: Source,
    pub times: EnvelopeTimes,
    pub transaction: Option<TransactionBlock>,
    /// The value schema name (`<prefix>.<schema>.<table>.Envelope`).
    pub envelope_name: Option<Arc<str>>,
}

impl ChangeEvent {
    /// `(db, schema, table)` from the source block.
    pub fn table_id(&self) -> TableId {
        TableId::of(&self.source)
    }
}

/// Identity of a source table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TableId {
    pub db: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
}

impl TableId {
    pub fn of(source: &Source) -> TableId {
        TableId {
            db: source.db.clone(),
            schema: source.schema.clone(),
            table: source.table.clone(),
        }
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = [&self.db, &self.schema, &self.table]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect();
        f.write_str(&parts.join("."))
    }
}

/// An `op: t` event: the table was truncated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruncateEvent {
    pub source: Source,
    pub times: EnvelopeTimes,
    pub transaction: Option<TransactionBlock>,
}

/// An `op: m` event (PostgreSQL logical decoding message).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageEvent {
    pub prefix: Option<String>,
    pub content: Option<Vec<u8>>,
    pub source: Source,
    pub times: EnvelopeTimes,
}

/// A schema change event (MySQL/MariaDB schema change topic).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaChangeEvent {
    pub database_name: Option<String>,
    pub schema_name: Option<String>,
    pub ddl: Option<String>,
    pub source: Source,
    pub ts_ms: Option<i64>,
    /// `tableChanges` kept as decoded.
    pub table_changes: Value,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Record {
    /// A row change (`c`, `r`, `u`, `d`).
    Change(ChangeEvent),
    /// A null value: Debezium's tombstone after a delete (for log compaction).
    Tombstone {
        key: Option<Row>,
    },
    Truncate(TruncateEvent),
    Message(MessageEvent),
    /// `io.debezium.connector.common.Heartbeat`.
    Heartbeat {
        ts_ms: Option<i64>,
    },
    /// `io.debezium.connector.common.TransactionMetadataValue` (BEGIN/END).
    Transaction {
        status: Option<String>,
        id: Option<String>,
        event_count: Option<i64>,
    },
    SchemaChange(SchemaChangeEvent),
    /// Any other schema'd record (kept as decoded, with the schema name).
    Other {
        schema_name: Option<Arc<str>>,
        value: Value,
    },
}

fn take_field(fields: &mut Vec<(Arc<str>, Value)>, name: &str) -> Value {
    match fields.iter().position(|(n, _)| &**n == name) {
        Some(p) => fields.swap_remove(p).1,
        None => Value::Null,
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text_of(v: Value) -> Option<String> {
    match v {
        Value::Text(t) => Some(t),
        _ => None,
    }
}

fn key_row(key: Option<SchemaAndValue>) -> Result<Option<Row>, DecodeError> {
    match key {
        None => Ok(None),
        Some(SchemaAndValue { schema, value }) => {
            if schema.connect_type != ConnectType::Struct {
                return Err(DecodeError::envelope(
                    "key.payload",
                    format!(
                        "the record key is a {} rather than a struct of key columns; lockstep needs Debezium's \
                         default key (do not override the key with a transform that flattens it)",
                        schema.connect_type
                    ),
                ));
            }
            Row::from_struct(&schema, value, "key.payload").map(Some)
        }
    }
}

fn optional_row(schema: &Schema, name: &str, value: Value) -> Result<Option<Row>, DecodeError> {
    if value.is_null() {
        return Ok(None);
    }
    let Some(field) = schema.field(name) else {
        return Ok(None);
    };
    Row::from_struct(&field.schema, value, &format!("payload.{name}")).map(Some)
}

fn transaction_block(v: Value) -> Option<TransactionBlock> {
    let Value::Struct(mut fields) = v else {
        return None;
    };
    let id = text_of(take_field(&mut fields, "id"))?;
    Some(TransactionBlock {
        id,
        total_order: int_of(&take_field(&mut fields, "total_order")),
        data_collection_order: int_of(&take_field(&mut fields, "data_collection_order")),
    })
}

/// Interpret a record's key and value as a Debezium record.
pub fn interpret(
    key: Option<SchemaAndValue>,
    value: Option<SchemaAndValue>,
) -> Result<Record, DecodeError> {
    let Some(SchemaAndValue { schema, value }) = value else {
        return Ok(Record::Tombstone { key: key_row(key)? });
    };
    if schema.connect_type != ConnectType::Struct {
        return Ok(Record::Other {
            schema_name: schema.name.clone(),
            value,
        });
    }
    let Value::Struct(mut fields) = value else {
        return Err(DecodeError::envelope(
            "payload",
            "struct schema with a non-struct value",
        ));
    };
    let name = schema.name.clone();
    let name_str = name.as_deref().unwrap_or("");

    if schema.field("op").is_some() {
        let op_value = take_field(&mut fields, "op");
        let code = match &op_value {
            Value::Text(t) => t.as_str(),
            _ => {
                return Err(DecodeError::envelope(
                    "payload.op",
                    "a Debezium envelope needs a string 'op'; found none",
                ))
            }
        };
        let op = Op::from_code(code).ok_or_else(|| {
            DecodeError::envelope(
                "payload.op",
                format!(
                    "unknown operation '{code}' (known: c, r, u, d, t, m); the connector is newer than this \
                     lockstep: upgrade lockstep"
                ),
            )
        })?;
        let times = EnvelopeTimes {
            ts_ms: int_of(&take_field(&mut fields, "ts_ms")),
            ts_us: int_of(&take_field(&mut fields, "ts_us")),
            ts_ns: int_of(&take_field(&mut fields, "ts_ns")),
        };
        let source = Source::from_value(take_field(&mut fields, "source"));
        let transaction = transaction_block(take_field(&mut fields, "transaction"));
        return match op {
            Op::Truncate => Ok(Record::Truncate(TruncateEvent {
                source,
                times,
                transaction,
            })),
            Op::Message => {
                let (prefix, content) = match take_field(&mut fields, "message") {
                    Value::Struct(mut m) => (
                        text_of(take_field(&mut m, "prefix")),
                        match take_field(&mut m, "content") {
                            Value::Bytes(b) => Some(b),
                            _ => None,
                        },
                    ),
                    _ => (None, None),
                };
                Ok(Record::Message(MessageEvent {
                    prefix,
                    content,
                    source,
                    times,
                }))
            }
            Op::Create | Op::Read | Op::Update | Op::Delete => {
                let before = optional_row(&schema, "before", take_field(&mut fields, "before"))?;
                let after = optional_row(&schema, "after", take_field(&mut fields, "after"))?;
                match op {
                    Op::Create | Op::Read | Op::Update if after.is_none() => {
                        return Err(DecodeError::envelope(
                            "payload.after",
                            format!(
                                "an '{}' event must carry the new row in 'after' but it is null",
                                op.code()
                            ),
                        ))
                    }
                    _ => {}
                }
                Ok(Record::Change(ChangeEvent {
                    op,
                    key: key_row(key)?,
                    before,
                    after,
                    source,
                    times,
                    transaction,
                    envelope_name: name,
                }))
            }
        };
    }
    if name_str == "io.debezium.connector.common.Heartbeat" || name_str.ends_with(".Heartbeat") {
        return Ok(Record::Heartbeat {
            ts_ms: int_of(&take_field(&mut fields, "ts_ms")),
        });
    }
    if name_str.ends_with("TransactionMetadataValue") {
        return Ok(Record::Transaction {
            status: text_of(take_field(&mut fields, "status")),
            id: text_of(take_field(&mut fields, "id")),
            event_count: int_of(&take_field(&mut fields, "event_count")),
        });
    }
    if name_str.ends_with("SchemaChangeValue")
        || (schema.field("ddl").is_some() && schema.field("source").is_some())
    {
        return Ok(Record::SchemaChange(SchemaChangeEvent {
            database_name: text_of(take_field(&mut fields, "databaseName")),
            schema_name: text_of(take_field(&mut fields, "schemaName")),
            ddl: text_of(take_field(&mut fields, "ddl")),
            source: Source::from_value(take_field(&mut fields, "source")),
            ts_ms: int_of(&take_field(&mut fields, "ts_ms")),
            table_changes: take_field(&mut fields, "tableChanges"),
        }));
    }
    Ok(Record::Other {
        schema_name: name,
        value: Value::Struct(fields),
    })
}
