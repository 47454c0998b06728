//! The format layer: bytes of one record half -> Connect schema + typed value.
//!
//! [`Decoder`] is the seam for other formats (Avro + Schema Registry later):
//! a decoder only has to turn bytes into a [`SchemaAndValue`]; the Debezium
//! envelope interpretation ([`crate::envelope`]) and everything downstream is
//! shared.

use std::sync::Arc;

use base64::Engine as _;

use crate::decimal;
use crate::envelope::{self, Record};
use crate::error::{DecodeError, Part};
use crate::json::{self, Json};
use crate::logical;
use crate::payload;
use crate::schema::{ConnectType, Field, Logical, Schema};
use crate::value::Value;

/// One decoded record half: its Connect schema and its typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaAndValue {
    /// Shared: a decoder hands out the same schema for every record that carries it.
    pub schema: Arc<Schema>,
    pub value: Value,
}

/// Decodes the key and value bytes of a Kafka record.
pub trait Decoder {
    /// Decode one half of a record. `None` bytes (a Kafka null), and a
    /// half whose payload is null, give `Ok(None)`.
    fn decode_part(
        &self,
        part: Part,
        bytes: Option<&[u8]>,
    ) -> Result<Option<SchemaAndValue>, DecodeError>;

    /// Decode a whole record into a Debezium [`Record`].
    fn decode(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Record, DecodeError> {
        let key = self.decode_part(Part::Key, key)?;
        let value = self.decode_part(Part::Value, value)?;
        envelope::interpret(key, value)
    }
}

/// Kafka Connect's `org.apache.kafka.connect.json.JsonConverter` with
/// `schemas.enable=true`: `{"schema": {...}, "payload": ...}`.
///
/// Accepts both `decimal.format=BASE64` (the default: Decimal as a base64
/// string) and `decimal.format=NUMERIC` (Decimal as a JSON number, kept as
/// exact text).
///
/// Parsed schemas are cached by their exact bytes: JsonConverter repeats a table's schema in
/// every record, and parsing it dominated decoding. The cache changes no result: a record whose
/// layout is not the converter's `{"schema":...,"payload":...}` takes the full path.
#[derive(Debug, Default)]
pub struct JsonConverterDecoder {
    schemas: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<Schema>>>,
    /// Per record half (key, value): the bytes in front of the payload of the last record whose
    /// schema came from the cache, and that schema. A record starting with the same bytes has the
    /// same schema (they hold the whole schema value and the `"payload":` after it), so it needs
    /// one comparison instead of a scan and a hash of its schema.
    last: std::sync::Mutex<[Option<LastPrefix>; 2]>,
}

/// The bytes before a record's payload, and the schema they hold.
type LastPrefix = (Vec<u8>, Arc<Schema>);

/// Distinct schemas kept; past this the cache starts again (a topic has a handful of versions).
const SCHEMA_CACHE_LIMIT: usize = 1024;

impl Clone for JsonConverterDecoder {
    fn clone(&self) -> Self {
        JsonConverterDecoder::default()
    }
}

fn slot(part: Part) -> usize {
    match part {
        Part::Key => 0,
        Part::Value => 1,
    }
}

impl JsonConverterDecoder {
    pub fn new() -> Self {
        JsonConverterDecoder::default()
    }

    /// The fast path: the schema from the cache and only the payload parsed. `None` when the
    /// record does not have the converter's exact layout or its schema is not cached yet.
    ///
    /// The payload is read against the schema straight into values ([`payload::read`]); a
    /// payload that reader gives up on (members out of the schema's order, a value the general
    /// rules reject) is parsed into a JSON tree and converted, as on the full path.
    fn decode_cached(
        &self,
        part: Part,
        bytes: &[u8],
    ) -> Option<Result<Option<SchemaAndValue>, DecodeError>> {
        let same_as_last = {
            let last = self.last.lock().ok()?;
            last[slot(part)]
                .as_ref()
                .filter(|(prefix, _)| bytes.starts_with(prefix))
                .map(|(prefix, schema)| (prefix.len(), Arc::clone(schema)))
        };
        let (schema, payload_start) = match same_as_last {
            Some((payload_start, schema)) => (schema, payload_start),
            None => {
                let envelope = split_envelope(bytes)?;
                let schema = {
                    let cache = self.schemas.lock().ok()?;
                    Arc::clone(cache.get(bytes.get(envelope.schema)?)?)
                };
                if let Ok(mut last) = self.last.lock() {
                    last[slot(part)] = Some((
                        bytes.get(..envelope.payload_start)?.to_vec(),
                        Arc::clone(&schema),
                    ));
                }
                (schema, envelope.payload_start)
            }
        };
        if let Some((value, end)) = payload::read(&schema, bytes, payload_start) {
            // Anything but the envelope's closing brace after the payload: the full path says
            // what is wrong.
            if !closes_envelope(bytes, end) {
                return None;
            }
            return Some(Ok(
                (!value.is_null()).then_some(SchemaAndValue { schema, value })
            ));
        }
        let payload = match json::parse(payload_at(bytes, payload_start)?) {
            Ok(payload) => payload,
            // Let the full path report the error with its offset in the whole record.
            Err(_) => return None,
        };
        Some(finish(part, schema, payload))
    }

    /// Caches `schema`, parsed from `bytes`, by its text; only for a record with exactly the
    /// converter's layout (with a second "schema" member after the payload, the one parsed would
    /// not be the text cached).
    fn remember(&self, bytes: &[u8], schema: &Arc<Schema>) {
        let Some(envelope) = split_envelope(bytes) else {
            return;
        };
        let (Some(text), Some(_)) = (
            bytes.get(envelope.schema),
            payload_at(bytes, envelope.payload_start),
        ) else {
            return;
        };
        if let Ok(mut cache) = self.schemas.lock() {
            if cache.len() >= SCHEMA_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(text.to_vec(), Arc::clone(schema));
        }
    }
}

fn finish(
    part: Part,
    schema: Arc<Schema>,
    mut payload: Json,
) -> Result<Option<SchemaAndValue>, DecodeError> {
    let prefix = match part {
        Part::Key => "key.",
        Part::Value => "",
    };
    let mut path = format!("{prefix}payload");
    let value = json_to_value(&schema, &mut payload, &mut path)?;
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(SchemaAndValue { schema, value }))
}

/// The first position from `i` on that is not JSON whitespace (space, tab, line feed, carriage
/// return: what [`json::parse`] skips; `is_ascii_whitespace` would also skip form feeds, which
/// make the record not JSON).
fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the JSON value starting at `i`: balanced braces and brackets, strings
/// skipped with their escapes; scalars end at the next delimiter.
fn value_end(bytes: &[u8], i: usize) -> Option<usize> {
    let first = *bytes.get(i)?;
    if first != b'{' && first != b'[' {
        let mut j = i;
        while j < bytes.len() && !matches!(bytes[j], b',' | b'}' | b']') {
            j += 1;
        }
        return (j > i).then_some(j);
    }
    let mut depth = 0usize;
    let mut j = i;
    while j < bytes.len() {
        match bytes[j] {
            b'"' => {
                j += 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// Where the schema and the payload of `{"schema":S,"payload":P}` are.
struct Envelope {
    schema: std::ops::Range<usize>,
    /// Where P starts; its end is found by whoever reads it.
    payload_start: usize,
}

/// `{"schema":S,"payload":` → where S is and where P starts, or `None` for any other layout.
fn split_envelope(bytes: &[u8]) -> Option<Envelope> {
    let i = expect(bytes, skip_ws(bytes, 0), b"{")?;
    let i = expect(bytes, skip_ws(bytes, i), b"\"schema\"")?;
    let i = expect(bytes, skip_ws(bytes, i), b":")?;
    let schema_start = skip_ws(bytes, i);
    let schema_end = value_end(bytes, schema_start)?;
    let i = expect(bytes, skip_ws(bytes, schema_end), b",")?;
    let i = expect(bytes, skip_ws(bytes, i), b"\"payload\"")?;
    let i = expect(bytes, skip_ws(bytes, i), b":")?;
    Some(Envelope {
        schema: schema_start..schema_end,
        payload_start: skip_ws(bytes, i),
    })
}

/// The position after `text` when `bytes` has it at `i`.
fn expect(bytes: &[u8], i: usize, text: &[u8]) -> Option<usize> {
    bytes
        .get(i..i + text.len())
        .filter(|b| *b == text)
        .map(|_| i + text.len())
}

/// The payload value starting at `start`, when only the envelope's closing brace follows it.
fn payload_at(bytes: &[u8], start: usize) -> Option<&[u8]> {
    let end = value_end(bytes, start)?;
    closes_envelope(bytes, end).then(|| bytes.get(start..end))?
}

/// Whether only the envelope's closing brace (and whitespace) follows position `end`.
fn closes_envelope(bytes: &[u8], end: usize) -> bool {
    expect(bytes, skip_ws(bytes, end), b"}")
        .is_some_and(|close| skip_ws(bytes, close) == bytes.len())
}

impl Decoder for JsonConverterDecoder {
    fn decode_part(
        &self,
        part: Part,
        bytes: Option<&[u8]>,
    ) -> Result<Option<SchemaAndValue>, DecodeError> {
        let Some(bytes) = bytes else { return Ok(None) };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if let Some(result) = self.decode_cached(part, bytes) {
            return result;
        }
        let doc = json::parse(bytes).map_err(|e| DecodeError::NotJson {
            part,
            offset: e.offset,
            message: e.message,
        })?;
        let prefix = match part {
            Part::Key => "key.",
            Part::Value => "",
        };
        let (schema_json, payload) = match &doc {
            Json::Null => return Ok(None),
            Json::Object(_) => match (doc.get("schema"), doc.get("payload")) {
                (Some(Json::Null), Some(Json::Null) | None) => return Ok(None),
                (Some(s), Some(p)) if !s.is_null() => (s, p),
                (Some(s), None) if !s.is_null() => {
                    return Err(DecodeError::envelope(
                        &format!("{prefix}payload"),
                        format!(
                            "the {part} has a \"schema\" but no \"payload\" member; it was not written by \
                             JsonConverter (check the topic's producer)"
                        ),
                    ))
                }
                _ => return Err(DecodeError::SchemasDisabled { part }),
            },
            _ => return Err(DecodeError::SchemasDisabled { part }),
        };
        let schema = Arc::new(parse_schema(schema_json, &format!("{prefix}schema"))?);
        self.remember(bytes, &schema);
        finish(part, schema, payload.clone())
    }
}

fn opt_str(obj: &Json, key: &str, path: &str) -> Result<Option<String>, DecodeError> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(DecodeError::schema(
            &format!("{path}.{key}"),
            format!("expected a string, found {}", other.kind()),
        )),
    }
}

/// Parse the JsonConverter representation of a Connect schema.
pub fn parse_schema(j: &Json, path: &str) -> Result<Schema, DecodeError> {
    if !matches!(j, Json::Object(_)) {
        return Err(DecodeError::schema(
            path,
            format!("expected an object, found {}", j.kind()),
        ));
    }
    let type_name = opt_str(j, "type", path)?
        .ok_or_else(|| DecodeError::schema(path, "the schema has no \"type\""))?;
    let connect_type = ConnectType::from_name(&type_name).ok_or_else(|| {
        DecodeError::schema(
            &format!("{path}.type"),
            format!("unknown Connect type '{type_name}'"),
        )
    })?;
    let mut schema = Schema::new(connect_type);
    schema.optional = match j.get("optional") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(other) => {
            return Err(DecodeError::schema(
                &format!("{path}.optional"),
                format!("expected a boolean, found {}", other.kind()),
            ))
        }
    };
    schema.name = opt_str(j, "name", path)?.map(Arc::from);
    schema.doc = opt_str(j, "doc", path)?;
    schema.version = match j.get("version") {
        Some(Json::Number(n)) => n.parse().ok(),
        _ => None,
    };
    if let Some(params) = j.get("parameters") {
        match params {
            Json::Null => {}
            Json::Object(members) => {
                for (k, v) in members {
                    let text = match v {
                        Json::String(s) => s.clone(),
                        other => other.to_json_text(),
                    };
                    schema.parameters.insert(k.clone(), text);
                }
            }
            other => {
                return Err(DecodeError::schema(
                    &format!("{path}.parameters"),
                    format!("expected an object, found {}", other.kind()),
                ))
            }
        }
    }
    schema.default_json = match j.get("default") {
        None | Some(Json::Null) => None,
        Some(d) => Some(d.to_json_text()),
    };
    match connect_type {
        ConnectType::Struct => {
            let fields = match j.get("fields") {
                Some(Json::Array(items)) => items,
                None | Some(Json::Null) => &Vec::new(),
                Some(other) => {
                    return Err(DecodeError::schema(
                        &format!("{path}.fields"),
                        format!("expected an array, found {}", other.kind()),
                    ))
                }
            };
            for (i, f) in fields.iter().enumerate() {
                let fpath = format!("{path}.fields[{i}]");
                let name = opt_str(f, "field", &fpath)?.ok_or_else(|| {
                    DecodeError::schema(&fpath, "the struct field has no \"field\" name")
                })?;
                let fschema = parse_schema(f, &fpath)?;
                if schema.fields.iter().any(|x| x.name == name) {
                    return Err(DecodeError::schema(
                        &fpath,
                        format!("duplicate field name '{name}'"),
                    ));
                }
                schema.fields.push(Field::new(name, fschema));
            }
        }
        ConnectType::Array => {
            let items = j
                .get("items")
                .ok_or_else(|| DecodeError::schema(path, "an array schema needs \"items\""))?;
            schema.value_schema = Some(Box::new(parse_schema(items, &format!("{path}.items"))?));
        }
        ConnectType::Map => {
            let keys = j
                .get("keys")
                .ok_or_else(|| DecodeError::schema(path, "a map schema needs \"keys\""))?;
            let values = j
                .get("values")
                .ok_or_else(|| DecodeError::schema(path, "a map schema needs \"values\""))?;
            schema.key_schema = Some(Box::new(parse_schema(keys, &format!("{path}.keys"))?));
            schema.value_schema = Some(Box::new(parse_schema(values, &format!("{path}.values"))?));
        }
        _ => {}
    }
    Ok(schema)
}

/// Jackson writes standard base64 with padding; accept it without too.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The bytes of a JsonConverter bytes (or Decimal) string.
pub(crate) fn base64_decode(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(text)
}

/// The values an integer of Connect type `t` can hold.
fn int_range(t: ConnectType) -> (i64, i64) {
    match t {
        ConnectType::Int8 => (i64::from(i8::MIN), i64::from(i8::MAX)),
        ConnectType::Int16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        ConnectType::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    }
}

/// JSON number `text` as an integer of Connect type `t`; `None` when it is not an integer or out
/// of the type's range (the errors of [`parse_int`]).
pub(crate) fn int_in_range(t: ConnectType, text: &str) -> Option<i64> {
    let v: i64 = text.parse().ok()?;
    let (lo, hi) = int_range(t);
    (lo..=hi).contains(&v).then_some(v)
}

/// JSON number `text` as a float of Connect type `t` (float32 or float64); `None` when it is not
/// a number.
///
/// A float32 is written as its shortest decimal text ("1.1"); read as f64 that text would be a
/// different number than the float the source held, so it is read as f32 and widened exactly.
pub(crate) fn float_from_text(t: ConnectType, text: &str) -> Option<f64> {
    if t == ConnectType::Float32 {
        text.parse::<f32>().ok().map(f64::from)
    } else {
        text.parse::<f64>().ok()
    }
}

fn wrong_type(schema: &Schema, j: &Json, path: &str) -> DecodeError {
    let what = match &schema.name {
        Some(n) => format!("{} ({n})", schema.connect_type),
        None => schema.connect_type.to_string(),
    };
    DecodeError::value(
        path,
        format!(
            "expected a JSON value for Connect type {what}, found {}; the payload does not match its schema \
             (was the record produced by a different converter?)",
            j.kind()
        ),
    )
}

fn parse_int(schema: &Schema, j: &Json, path: &str) -> Result<i64, DecodeError> {
    let Json::Number(text) = j else {
        return Err(wrong_type(schema, j, path));
    };
    let v: i64 = text.parse().map_err(|_| {
        DecodeError::value(
            path,
            format!(
                "{} value {text} is not an integer in range",
                schema.connect_type
            ),
        )
    })?;
    let (lo, hi) = int_range(schema.connect_type);
    if v < lo || v > hi {
        return Err(DecodeError::value(
            path,
            format!("{} value {text} is out of range", schema.connect_type),
        ));
    }
    Ok(v)
}

/// Decode a payload JSON value against its Connect schema (JsonConverter
/// encoding), then apply the schema's logical type. Strings are moved out of `j`, not copied:
/// what is left of `j` afterwards is not meaningful.
///
/// A JSON null is SQL NULL for an optional schema. For a required schema it
/// takes the schema default if there is one (JsonConverter's own rule) and is
/// an error otherwise. JsonConverter's `replace.null.with.default` acts when
/// the record is written, so a null that reaches us is a real null.
pub fn json_to_value(
    schema: &Schema,
    j: &mut Json,
    path: &mut String,
) -> Result<Value, DecodeError> {
    if j.is_null() {
        if schema.optional {
            return Ok(Value::Null);
        }
        if let Some(default) = &schema.default_json {
            let mut parsed = json::parse(default.as_bytes()).map_err(|e| {
                DecodeError::schema(path, format!("unparseable default: {}", e.message))
            })?;
            if !parsed.is_null() {
                return json_to_value(schema, &mut parsed, path);
            }
        }
        return Err(DecodeError::value(
            path,
            format!(
                "null for a required (non-optional) {} field; the payload does not match its schema",
                schema.connect_type
            ),
        ));
    }
    let base = match schema.connect_type {
        ConnectType::Int8 | ConnectType::Int16 | ConnectType::Int32 | ConnectType::Int64 => {
            Value::Int(parse_int(schema, j, path)?)
        }
        ConnectType::Float32 | ConnectType::Float64 => match &*j {
            Json::Number(t) => {
                Value::Float(float_from_text(schema.connect_type, t).ok_or_else(|| {
                    DecodeError::value(
                        path,
                        format!("{} value {t} is not a number", schema.connect_type),
                    )
                })?)
            }
            Json::String(s) if s == "NaN" => Value::Float(f64::NAN),
            Json::String(s) if s == "Infinity" => Value::Float(f64::INFINITY),
            Json::String(s) if s == "-Infinity" => Value::Float(f64::NEG_INFINITY),
            other => return Err(wrong_type(schema, other, path)),
        },
        ConnectType::Boolean => match &*j {
            Json::Bool(b) => Value::Bool(*b),
            other => return Err(wrong_type(schema, other, path)),
        },
        ConnectType::String => match j {
            Json::String(s) => Value::Text(std::mem::take(s)),
            other => return Err(wrong_type(schema, other, path)),
        },
        ConnectType::Bytes => match (&*j, schema.logical_ref()) {
            // decimal.format=NUMERIC: the exact number text.
            (Json::Number(t), Logical::Decimal { scale, .. }) => Value::Decimal(
                decimal::from_json_number(t, Some(i64::from(*scale)))
                    .map_err(|e| DecodeError::value(path, format!("Decimal value: {}", e.0)))?,
            ),
            (Json::String(s), logical) => match base64_decode(s.as_bytes()) {
                Ok(b) => Value::Bytes(b),
                Err(e) => {
                    let what = if matches!(logical, Logical::Decimal { .. }) {
                        "Decimal value"
                    } else {
                        "bytes value"
                    };
                    let shown: String = s.chars().take(40).collect();
                    return Err(DecodeError::value(
                        path,
                        format!(
                            "{what} '{shown}' is not base64 ({e}); JsonConverter writes bytes and \
                             decimals as base64 (or decimals as numbers with decimal.format=NUMERIC)"
                        ),
                    ));
                }
            },
            (other, _) => return Err(wrong_type(schema, other, path)),
        },
        ConnectType::Array => {
            let Json::Array(items) = j else {
                return Err(wrong_type(schema, j, path));
            };
            let Some(elem) = schema.value_schema.as_deref() else {
                return Err(DecodeError::schema(path, "array schema without items"));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let v = json_to_value(elem, item, path);
                path.truncate(len);
                out.push(v?);
            }
            Value::Array(out)
        }
        ConnectType::Map => {
            let (Some(ks), Some(vs)) =
                (schema.key_schema.as_deref(), schema.value_schema.as_deref())
            else {
                return Err(DecodeError::schema(path, "map schema without keys/values"));
            };
            let mut out = Vec::new();
            match (j, ks.connect_type) {
                (Json::Object(members), ConnectType::String) => {
                    for (k, v) in members.iter_mut() {
                        let len = path.len();
                        path.push('.');
                        path.push_str(k);
                        let kv = json_to_value(ks, &mut Json::String(std::mem::take(k)), path)
                            .and_then(|kv| Ok((kv, json_to_value(vs, v, path)?)));
                        path.truncate(len);
                        out.push(kv?);
                    }
                }
                (Json::Array(entries), t) if t != ConnectType::String => {
                    for (i, e) in entries.iter_mut().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        let kv = match e {
                            Json::Array(pair) if pair.len() == 2 => match pair.as_mut_slice() {
                                [k, v] => json_to_value(ks, k, path)
                                    .and_then(|kv| Ok((kv, json_to_value(vs, v, path)?))),
                                _ => Err(DecodeError::value(
                                    path,
                                    "map entry is not a [key, value] pair",
                                )),
                            },
                            _ => Err(DecodeError::value(
                                path,
                                "map entry is not a [key, value] pair",
                            )),
                        };
                        path.truncate(len);
                        out.push(kv?);
                    }
                }
                (other, _) => return Err(wrong_type(schema, other, path)),
            }
            Value::Map(out)
        }
        ConnectType::Struct => {
            let Json::Object(members) = j else {
                return Err(wrong_type(schema, j, path));
            };
            // JsonConverter writes exactly the schema's members in its order; otherwise members
            // are looked up by name, the last of duplicated members winning (as in Jackson).
            let aligned = members.len() == schema.fields.len()
                && members
                    .iter()
                    .zip(&schema.fields)
                    .all(|((name, _), f)| *name == f.name);
            let mut out = Vec::with_capacity(schema.fields.len());
            for (index, f) in schema.fields.iter().enumerate() {
                let len = path.len();
                path.push('.');
                path.push_str(&f.name);
                let member = if aligned {
                    Some(index)
                } else {
                    members.iter().rposition(|(name, _)| *name == f.name)
                };
                let v = match member.and_then(|i| members.get_mut(i)) {
                    Some((_, value)) => json_to_value(&f.schema, value, path),
                    None => json_to_value(&f.schema, &mut Json::Null, path),
                };
                path.truncate(len);
                // The field's shared name: no copy per field.
                out.push((Arc::clone(f.column().0), v?));
            }
            Value::Struct(out)
        }
    };
    logical::apply(schema, base).map_err(|m| DecodeError::value(path, m))
}
