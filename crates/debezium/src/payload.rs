//! The schema-directed payload reader: the hot path of [`crate::JsonConverterDecoder`] once a
//! record's schema is cached.
//!
//! The general path parses a payload into a [`Json`](crate::json::Json) tree (a `String` per member
//! name, a `Vec` per object) and then converts the tree against the schema. This reader walks the
//! payload bytes once, following the schema, and builds the [`Value`]s directly: member names are
//! only compared with the schema's field names, strings without escapes are borrowed from the
//! input until they become a value, and the end of the payload falls out of the walk.
//!
//! It accepts only what the general path would turn into the same value, and gives up (`None`) on
//! anything else: members out of the schema's order, missing or extra members, a null for a
//! required field, a JSON kind the schema does not expect, a value the general path rejects (bad
//! number, bad base64, broken logical value). The caller then takes the general path, which gives
//! the result or the error with its field path. Giving up is always safe, so this reader only has
//! to be right about what it accepts; the rules it follows are `decode::json_to_value`'s, shared
//! through the same helpers (`parse_int`'s range check, `decode_float`, the base64 engine,
//! `logical::apply`).
//!
//! Its recursion follows the schema, so it is no deeper than the schema (whose own JSON went
//! through the depth-limited parser).

use std::sync::Arc;

use crate::decimal;
use crate::decode::{base64_decode, float_from_text, int_in_range};
use crate::json::Parser;
use crate::logical;
use crate::schema::{ConnectType, Logical, Schema};
use crate::value::Value;

/// Reads the payload value that starts at byte `start` of `bytes` against `schema`. Returns the
/// value and the offset just after it, or `None` when the general path must decide.
pub(crate) fn read(schema: &Schema, bytes: &[u8], start: usize) -> Option<(Value, usize)> {
    let mut p = Parser::at(bytes, start);
    let value = value(&mut p, schema)?;
    Some((value, p.pos()))
}

fn value(p: &mut Parser<'_>, schema: &Schema) -> Option<Value> {
    p.ws();
    if p.peek() == Some(b'n') {
        // A null for a required field takes the schema default or fails: the general path's
        // business.
        return (p.eat(b"null") && schema.optional).then_some(Value::Null);
    }
    let base = match schema.connect_type {
        ConnectType::Int8 | ConnectType::Int16 | ConnectType::Int32 | ConnectType::Int64 => {
            let text = p.number_text().ok()?;
            Value::Int(int_in_range(schema.connect_type, text)?)
        }
        ConnectType::Float32 | ConnectType::Float64 => {
            if p.peek() == Some(b'"') {
                match &*p.string_cow().ok()? {
                    "NaN" => Value::Float(f64::NAN),
                    "Infinity" => Value::Float(f64::INFINITY),
                    "-Infinity" => Value::Float(f64::NEG_INFINITY),
                    _ => return None,
                }
            } else {
                let text = p.number_text().ok()?;
                Value::Float(float_from_text(schema.connect_type, text)?)
            }
        }
        ConnectType::Boolean => {
            if p.eat(b"true") {
                Value::Bool(true)
            } else if p.eat(b"false") {
                Value::Bool(false)
            } else {
                return None;
            }
        }
        ConnectType::String => {
            if p.peek() != Some(b'"') {
                return None;
            }
            Value::Text(p.string_cow().ok()?.into_owned())
        }
        ConnectType::Bytes => match (p.peek()?, schema.logical_ref()) {
            (b'"', _) => Value::Bytes(base64_decode(p.string_cow().ok()?.as_bytes()).ok()?),
            // decimal.format=NUMERIC: the exact number text.
            (b'-' | b'0'..=b'9', Logical::Decimal { scale, .. }) => {
                let text = p.number_text().ok()?;
                Value::Decimal(decimal::from_json_number(text, Some(i64::from(*scale))).ok()?)
            }
            _ => return None,
        },
        ConnectType::Array => {
            let elem = schema.value_schema.as_deref()?;
            let mut items = Vec::new();
            list(p, b'[', b']', |p| {
                items.push(value(p, elem)?);
                Some(())
            })?;
            Value::Array(items)
        }
        ConnectType::Map => {
            let (keys, values) = (
                schema.key_schema.as_deref()?,
                schema.value_schema.as_deref()?,
            );
            let mut entries = Vec::new();
            if keys.connect_type == ConnectType::String {
                // An object: the member names are the keys, in wire order.
                list(p, b'{', b'}', |p| {
                    if p.peek() != Some(b'"') {
                        return None;
                    }
                    let key = p.string_cow().ok()?.into_owned();
                    let key = logical::apply(keys, Value::Text(key)).ok()?;
                    p.ws();
                    if !p.eat(b":") {
                        return None;
                    }
                    entries.push((key, value(p, values)?));
                    Some(())
                })?;
            } else {
                // An array of [key, value] pairs.
                list(p, b'[', b']', |p| {
                    if !p.eat(b"[") {
                        return None;
                    }
                    let key = value(p, keys)?;
                    p.ws();
                    if !p.eat(b",") {
                        return None;
                    }
                    let v = value(p, values)?;
                    p.ws();
                    if !p.eat(b"]") {
                        return None;
                    }
                    entries.push((key, v));
                    Some(())
                })?;
            }
            Value::Map(entries)
        }
        ConnectType::Struct => {
            // Exactly the schema's fields, in its order: JsonConverter's layout.
            if !p.eat(b"{") {
                return None;
            }
            let mut fields = Vec::with_capacity(schema.fields.len());
            for (index, field) in schema.fields.iter().enumerate() {
                p.ws();
                if index > 0 {
                    if !p.eat(b",") {
                        return None;
                    }
                    p.ws();
                }
                // The name almost always matches byte for byte; else (an escaped name) decode it.
                if !p.eat_plain_string(&field.name)
                    && (p.peek() != Some(b'"') || p.string_cow().ok()? != field.name.as_str())
                {
                    return None;
                }
                p.ws();
                if !p.eat(b":") {
                    return None;
                }
                fields.push((Arc::clone(field.column().0), value(p, &field.schema)?));
            }
            p.ws();
            if !p.eat(b"}") {
                return None;
            }
            Value::Struct(fields)
        }
    };
    logical::apply(schema, base).ok()
}

/// Reads `open item (, item)* close` or `open close`, calling `item` at the start of each item
/// (it reads the item and anything up to the separator). `None` when the list is malformed or an
/// item gives up.
fn list(
    p: &mut Parser<'_>,
    open: u8,
    close: u8,
    mut item: impl FnMut(&mut Parser<'_>) -> Option<()>,
) -> Option<()> {
    if !p.eat(&[open]) {
        return None;
    }
    p.ws();
    if p.eat(&[close]) {
        return Some(());
    }
    loop {
        p.ws();
        item(p)?;
        p.ws();
        if p.eat(&[close]) {
            return Some(());
        }
        if !p.eat(b",") {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{json_to_value, parse_schema};
    use crate::json;

    const SCHEMA: &str = r#"{"type":"struct","fields":[
        {"type":"int32","optional":false,"field":"id"},
        {"type":"string","optional":true,"field":"name"},
        {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"amount"},
        {"type":"int32","optional":true,"name":"io.debezium.time.Date","field":"born"},
        {"type":"float","optional":true,"field":"f"},
        {"type":"boolean","optional":true,"field":"b"},
        {"type":"array","optional":true,"items":{"type":"int64","optional":true},"field":"list"},
        {"type":"map","optional":true,"keys":{"type":"string","optional":false},"values":{"type":"int32","optional":true},"field":"by_name"},
        {"type":"map","optional":true,"keys":{"type":"int32","optional":false},"values":{"type":"string","optional":true},"field":"by_number"},
        {"type":"struct","optional":true,"fields":[{"type":"string","optional":false,"field":"city"}],"field":"addr"}]}"#;

    fn schema() -> Schema {
        let j = json::parse(SCHEMA.as_bytes()).expect("schema JSON");
        parse_schema(&j, "schema").expect("schema")
    }

    /// What the general path makes of `payload`.
    fn general(schema: &Schema, payload: &str) -> Value {
        let mut j = json::parse(payload.as_bytes()).expect("payload JSON");
        json_to_value(schema, &mut j, &mut String::from("payload")).expect("payload value")
    }

    #[test]
    fn reads_the_converters_layout_into_the_general_paths_values() {
        let schema = schema();
        for payload in [
            r#"{"id":1,"name":"x","amount":"ASNF","born":-1,"f":1.1,"b":true,"list":[1,null,-2],"by_name":{"a":1,"a":null},"by_number":[[1,"one"],[2,null]],"addr":{"city":"Oslo"}}"#,
            r#"{"id":-2147483648,"name":null,"amount":null,"born":null,"f":null,"b":null,"list":null,"by_name":null,"by_number":null,"addr":null}"#,
            r#"{"id":0,"name":"tab\t \"q\" \\ \/ \u00e9 é 😀 \ud83d\ude00","amount":12.5,"born":0,"f":"NaN","b":false,"list":[],"by_name":{},"by_number":[],"addr":{"city":""}}"#,
            " {\n \"id\" : 7 ,\r\n\t\"name\":\"\", \"amount\": \"AQ==\" , \"born\" :1,\"f\":-0.0,\"b\":true,\"list\":[ 1 , 2 ],\"by_name\":{ \"k\" : 1 },\"by_number\":[ [ 1 , \"a\" ] ],\"addr\":{ \"city\" : \"c\" } } ",
            r#"{"\u0069d":3,"name":"x","amount":null,"born":null,"f":null,"b":null,"list":null,"by_name":null,"by_number":null,"addr":null}"#,
        ] {
            let (value, end) = read(&schema, payload.as_bytes(), 0)
                .unwrap_or_else(|| panic!("the reader gave up on {payload}"));
            assert_eq!(
                format!("{value:?}"),
                format!("{:?}", general(&schema, payload)),
                "{payload}"
            );
            assert_eq!(payload[end..].trim(), "", "{payload}");
        }
    }

    #[test]
    fn gives_up_on_anything_else() {
        let schema = schema();
        let rest = r#""amount":null,"born":null,"f":null,"b":null,"list":null,"by_name":null,"by_number":null,"addr":null}"#;
        for payload in [
            format!(r#"{{"name":"x","id":1,{rest}"#),
            format!(r#"{{"id":1,{rest}"#),
            format!(r#"{{"id":1,"name":"x","extra":1,{rest}"#),
            format!(r#"{{"id":1,"name":"x",{rest}"#).replace('}', r#","extra":1}"#),
            format!(r#"{{"id":null,"name":"x",{rest}"#),
            format!(r#"{{"id":"1","name":"x",{rest}"#),
            format!(r#"{{"id":2147483648,"name":"x",{rest}"#),
            format!(r#"{{"id":1.0,"name":"x",{rest}"#),
            format!(r#"{{"id":01,"name":"x",{rest}"#),
            format!(r#"{{"id":1,"name":"\x",{rest}"#),
            format!(r#"{{"id":1,"name":"x",{rest}"#)
                .replace(r#""amount":null"#, r#""amount":"!!""#),
            format!(r#"{{"id":1,"name":"x",{rest}"#)
                .replace(r#""born":null"#, r#""born":2147483648"#),
            format!(r#"{{"id":1,"name":"x",{rest}"#).replace(r#""list":null"#, r#""list":[1,]"#),
            format!(r#"{{"id":1,"name":"x",{rest}"#)
                .replace(r#""by_number":null"#, r#""by_number":[[1]]"#),
            format!(r#"{{"id":1,"name":"x",{rest}"#).replace(r#""addr":null"#, r#""addr":{}"#),
            format!(r#"{{"id":1,"name":"x",{rest}"#).replace('}', ""),
            "null".to_string(),
            "[]".to_string(),
        ] {
            assert!(
                read(&schema, payload.as_bytes(), 0).is_none(),
                "the reader accepted {payload}"
            );
        }
    }
}
