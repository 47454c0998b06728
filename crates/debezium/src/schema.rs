//! Format-neutral description of Kafka Connect schemas and of the column
//! types derived from them (Connect type + logical name + parameters).
//!
//! Nothing here knows about JSON: the JsonConverter decoder builds these
//! from the `schema` half of the envelope, an Avro decoder would build them
//! from the registry's schema (`connect.name`, `connect.parameters`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

/// Something derived from the rest of a struct, computed on first use and kept: decoding asks a
/// schema for its logical type and column type once per value, and a cached schema serves every
/// record of a topic. Not part of the struct's value: it always compares equal and is never
/// serialised. Derived from fields that are set when a schema is built and not changed after.
#[derive(Clone)]
pub struct Memo<T>(OnceLock<T>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(OnceLock::new())
    }
}

impl<T> Memo<T> {
    fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(init)
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// Kafka Connect's schema types (`org.apache.kafka.connect.data.Schema.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl ConnectType {
    /// Parse the lowercase name used by JsonConverter (`"int32"`, ...).
    pub fn from_name(name: &str) -> Option<ConnectType> {
        Some(match name {
            "int8" => ConnectType::Int8,
            "int16" => ConnectType::Int16,
            "int32" => ConnectType::Int32,
            "int64" => ConnectType::Int64,
            "float" | "float32" => ConnectType::Float32,
            "double" | "float64" => ConnectType::Float64,
            "boolean" => ConnectType::Boolean,
            "string" => ConnectType::String,
            "bytes" => ConnectType::Bytes,
            "array" => ConnectType::Array,
            "map" => ConnectType::Map,
            "struct" => ConnectType::Struct,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ConnectType::Int8 => "int8",
            ConnectType::Int16 => "int16",
            ConnectType::Int32 => "int32",
            ConnectType::Int64 => "int64",
            ConnectType::Float32 => "float32",
            ConnectType::Float64 => "float64",
            ConnectType::Boolean => "boolean",
            ConnectType::String => "string",
            ConnectType::Bytes => "bytes",
            ConnectType::Array => "array",
            ConnectType::Map => "map",
            ConnectType::Struct => "struct",
        }
    }
}

impl std::fmt::Display for ConnectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Kafka Connect schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    pub connect_type: ConnectType,
    pub optional: bool,
    /// The schema name: a logical type (`io.debezium.time.Date`) or a record
    /// name (`server.public.orders.Value`). Shared: every row decoded with the schema names it.
    pub name: Option<Arc<str>>,
    pub version: Option<i64>,
    pub doc: Option<String>,
    /// Schema parameters (`scale`, `allowed`, `__debezium.source.column.type`, ...).
    pub parameters: BTreeMap<String, String>,
    /// The default value as canonical JSON text, if any.
    pub default_json: Option<String>,
    /// Struct fields, in order.
    pub fields: Vec<Field>,
    /// Array element schema, or map value schema.
    pub value_schema: Option<Box<Schema>>,
    /// Map key schema.
    pub key_schema: Option<Box<Schema>>,
    #[serde(skip)]
    logical_memo: Memo<Logical>,
}

/// A struct field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub name: String,
    pub schema: Schema,
    #[serde(skip)]
    column_memo: Memo<(Arc<str>, Arc<ColumnType>)>,
}

impl Field {
    pub fn new(name: impl Into<String>, schema: Schema) -> Field {
        Field {
            name: name.into(),
            schema,
            column_memo: Memo::default(),
        }
    }

    /// The field's name and column type as shared values: every row decoded with this schema
    /// points at the same two.
    pub fn column(&self) -> (&Arc<str>, &Arc<ColumnType>) {
        let (name, column_type) = self.column_memo.get_or_init(|| {
            (
                Arc::from(self.name.as_str()),
                Arc::new(self.schema.column_type()),
            )
        });
        (name, column_type)
    }
}

impl Schema {
    /// A bare schema of the given type (required, unnamed).
    pub fn new(connect_type: ConnectType) -> Schema {
        Schema {
            connect_type,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            default_json: None,
            fields: Vec::new(),
            value_schema: None,
            key_schema: None,
            logical_memo: Memo::default(),
        }
    }

    /// The struct field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// The recognised logical type of this schema.
    pub fn logical(&self) -> Logical {
        self.logical_ref().clone()
    }

    /// The same, computed once per schema.
    pub fn logical_ref(&self) -> &Logical {
        self.logical_memo.get_or_init(|| Logical::of(self))
    }

    /// The column type of a row field with this schema.
    pub fn column_type(&self) -> ColumnType {
        ColumnType::from_schema(self)
    }
}

/// Logical (semantic) types recognised by this crate. A name that is not
/// recognised — or a known name on an unexpected base type — is kept as
/// [`Logical::Other`] and the value is decoded as its base Connect type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Logical {
    /// No schema name.
    None,
    /// `org.apache.kafka.connect.data.Decimal` (bytes): fixed scale.
    Decimal { scale: i32, precision: Option<u32> },
    /// `io.debezium.data.VariableScaleDecimal` (struct {scale, value}).
    VariableScaleDecimal,
    /// `io.debezium.time.Date` or `org.apache.kafka.connect.data.Date` (int32 days).
    Date,
    /// `io.debezium.time.Time` or `org.apache.kafka.connect.data.Time` (int32 ms of day).
    TimeMillis,
    /// `io.debezium.time.MicroTime` (int64 µs of day).
    TimeMicros,
    /// `io.debezium.time.NanoTime` (int64 ns of day).
    TimeNanos,
    /// `io.debezium.time.Timestamp` or `org.apache.kafka.connect.data.Timestamp` (int64 ms).
    TimestampMillis,
    /// `io.debezium.time.MicroTimestamp` (int64 µs).
    TimestampMicros,
    /// `io.debezium.time.NanoTimestamp` (int64 ns).
    TimestampNanos,
    /// `io.debezium.time.ZonedTimestamp` (ISO-8601 string with offset).
    ZonedTimestamp,
    /// `io.debezium.time.ZonedTime` (ISO-8601 time string with offset).
    ZonedTime,
    /// `io.debezium.time.Year` (int32).
    Year,
    /// `io.debezium.time.MicroDuration` (int64 µs, months approximated).
    MicroDuration,
    /// `io.debezium.time.NanoDuration` (int64 ns).
    NanoDuration,
    /// `io.debezium.time.Interval` (ISO-8601 `PnYnMnDTnHnMnS` string).
    Interval,
    /// `io.debezium.data.Json` (string).
    Json,
    /// `io.debezium.data.Uuid` (string).
    Uuid,
    /// `io.debezium.data.Enum` (string); `allowed` values in order.
    Enum { allowed: Vec<String> },
    /// `io.debezium.data.EnumSet` (comma-separated string).
    EnumSet { allowed: Vec<String> },
    /// `io.debezium.data.Bits` (bytes, `BitSet.toByteArray()`, little-endian bit order).
    Bits { length: Option<u32> },
    /// `io.debezium.data.Xml` (string).
    Xml,
    /// `io.debezium.data.Ltree` (string).
    Ltree,
    /// `io.debezium.data.geometry.Geometry` / `Geography` (struct {wkb, srid}).
    /// Debezium may suffix the name with `__<column>` (DBZ-6964).
    Geometry { geography: bool },
    /// `io.debezium.data.geometry.Point` (struct {x, y, wkb, srid}).
    Point,
    /// A name this crate does not interpret (or a known name on an
    /// unexpected base type): the value keeps its base Connect type.
    Other(String),
}

fn split_allowed(s: Option<&str>) -> Vec<String> {
    match s {
        None | Some("") => Vec::new(),
        Some(s) => s.split(',').map(str::to_string).collect(),
    }
}

impl Logical {
    pub fn of(schema: &Schema) -> Logical {
        use ConnectType as T;
        let Some(name) = schema.name.as_deref() else {
            return Logical::None;
        };
        let t = schema.connect_type;
        let logical = match (name, t) {
            ("org.apache.kafka.connect.data.Decimal", T::Bytes) => {
                // Connect requires the scale parameter; refuse to guess.
                match schema
                    .parameter("scale")
                    .and_then(|s| s.trim().parse::<i32>().ok())
                {
                    Some(scale) => Logical::Decimal {
                        scale,
                        precision: schema
                            .parameter("connect.decimal.precision")
                            .and_then(|p| p.trim().parse().ok()),
                    },
                    None => Logical::Other(name.to_string()),
                }
            }
            ("io.debezium.data.VariableScaleDecimal", T::Struct) => Logical::VariableScaleDecimal,
            ("io.debezium.time.Date" | "org.apache.kafka.connect.data.Date", T::Int32) => {
                Logical::Date
            }
            ("io.debezium.time.Time" | "org.apache.kafka.connect.data.Time", T::Int32) => {
                Logical::TimeMillis
            }
            ("io.debezium.time.MicroTime", T::Int64) => Logical::TimeMicros,
            ("io.debezium.time.NanoTime", T::Int64) => Logical::TimeNanos,
            (
                "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp",
                T::Int64,
            ) => Logical::TimestampMillis,
            ("io.debezium.time.MicroTimestamp", T::Int64) => Logical::TimestampMicros,
            ("io.debezium.time.NanoTimestamp", T::Int64) => Logical::TimestampNanos,
            ("io.debezium.time.ZonedTimestamp", T::String) => Logical::ZonedTimestamp,
            ("io.debezium.time.ZonedTime", T::String) => Logical::ZonedTime,
            ("io.debezium.time.Year", T::Int32) => Logical::Year,
            ("io.debezium.time.MicroDuration", T::Int64) => Logical::MicroDuration,
            ("io.debezium.time.NanoDuration", T::Int64) => Logical::NanoDuration,
            ("io.debezium.time.Interval", T::String) => Logical::Interval,
            ("io.debezium.data.Json", T::String) => Logical::Json,
            ("io.debezium.data.Uuid", T::String) => Logical::Uuid,
            ("io.debezium.data.Enum", T::String) => Logical::Enum {
                allowed: split_allowed(schema.parameter("allowed")),
            },
            ("io.debezium.data.EnumSet", T::String) => Logical::EnumSet {
                allowed: split_allowed(schema.parameter("allowed")),
            },
            ("io.debezium.data.Bits", T::Bytes) => Logical::Bits {
                length: schema
                    .parameter("length")
                    .and_then(|l| l.trim().parse().ok()),
            },
            ("io.debezium.data.Xml", T::String) => Logical::Xml,
            ("io.debezium.data.Ltree", T::String) => Logical::Ltree,
            ("io.debezium.data.geometry.Point", T::Struct) => Logical::Point,
            (n, T::Struct)
                if n == "io.debezium.data.geometry.Geometry"
                    || n.starts_with("io.debezium.data.geometry.Geometry__") =>
            {
                Logical::Geometry { geography: false }
            }
            (n, T::Struct)
                if n == "io.debezium.data.geometry.Geography"
                    || n.starts_with("io.debezium.data.geometry.Geography__") =>
            {
                Logical::Geometry { geography: true }
            }
            _ => Logical::Other(name.to_string()),
        };
        logical
    }

    /// Whether this is a logical type the crate interprets (not None/Other).
    pub fn is_recognised(&self) -> bool {
        !matches!(self, Logical::None | Logical::Other(_))
    }
}

/// The type of one column, derived from its field schema: everything a sink
/// needs to map it to target DDL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnType {
    pub connect_type: ConnectType,
    /// The schema name as given (logical type name), even when not recognised.
    pub logical_name: Option<String>,
    pub logical: Logical,
    pub optional: bool,
    pub parameters: BTreeMap<String, String>,
    /// Element type of an array, value type of a map.
    pub element: Option<Box<ColumnType>>,
    /// Key type of a map.
    pub key: Option<Box<ColumnType>>,
}

impl ColumnType {
    pub fn from_schema(schema: &Schema) -> ColumnType {
        ColumnType {
            connect_type: schema.connect_type,
            logical_name: schema.name.as_deref().map(str::to_string),
            logical: schema.logical(),
            optional: schema.optional,
            parameters: schema.parameters.clone(),
            element: schema
                .value_schema
                .as_deref()
                .map(|s| Box::new(ColumnType::from_schema(s))),
            key: schema
                .key_schema
                .as_deref()
                .map(|s| Box::new(ColumnType::from_schema(s))),
        }
    }

    /// The source database's column type name when the connector runs with
    /// `column.propagate.source.type` / `datatype.propagate.source.type`.
    pub fn source_type_name(&self) -> Option<&str> {
        self.parameters
            .get("__debezium.source.column.type")
            .map(String::as_str)
    }

    /// The source column length (or precision) when propagated.
    pub fn source_length(&self) -> Option<i64> {
        self.parameters
            .get("__debezium.source.column.length")
            .and_then(|s| s.parse().ok())
    }

    /// The source column scale when propagated.
    pub fn source_scale(&self) -> Option<i64> {
        self.parameters
            .get("__debezium.source.column.scale")
            .and_then(|s| s.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(t: ConnectType, name: &str) -> Schema {
        Schema {
            name: Some(Arc::from(name)),
            ..Schema::new(t)
        }
    }

    #[test]
    fn known_names_on_wrong_base_types_degrade_to_other() {
        assert_eq!(
            named(ConnectType::Int32, "io.debezium.time.Date").logical(),
            Logical::Date
        );
        assert_eq!(
            named(ConnectType::String, "io.debezium.time.Date").logical(),
            Logical::Other("io.debezium.time.Date".into())
        );
        // Decimal without a usable scale parameter is not interpreted.
        assert_eq!(
            named(ConnectType::Bytes, "org.apache.kafka.connect.data.Decimal").logical(),
            Logical::Other("org.apache.kafka.connect.data.Decimal".into())
        );
        assert_eq!(Schema::new(ConnectType::Int8).logical(), Logical::None);
    }

    #[test]
    fn geometry_names_with_column_suffix() {
        assert_eq!(
            named(
                ConnectType::Struct,
                "io.debezium.data.geometry.Geometry__shape"
            )
            .logical(),
            Logical::Geometry { geography: false }
        );
        assert_eq!(
            named(ConnectType::Struct, "io.debezium.data.geometry.Geography").logical(),
            Logical::Geometry { geography: true }
        );
    }

    #[test]
    fn connect_type_names_round_trip() {
        for t in [
            ConnectType::Int8,
            ConnectType::Int16,
            ConnectType::Int32,
            ConnectType::Int64,
            ConnectType::Float32,
            ConnectType::Float64,
            ConnectType::Boolean,
            ConnectType::String,
            ConnectType::Bytes,
            ConnectType::Array,
            ConnectType::Map,
            ConnectType::Struct,
        ] {
            assert_eq!(ConnectType::from_name(t.name()), Some(t));
        }
        assert_eq!(ConnectType::from_name("INT32"), None);
    }
}
