//! Interpretation of logical (semantic) types on top of base Connect values.
//!
//! This step is format-neutral: a decoder (JSON now, Avro later) produces the
//! base value of a field (`Int` for int32/int64, `Bytes`, `Text`, `Struct`,
//! ...) and calls [`apply`] with the field's schema. Unknown names, and known
//! names on an unexpected base value, keep the base value (never an error):
//! the column type still carries the name so the sink can decide.

use std::sync::Arc;

use crate::decimal;
use crate::schema::{Logical, Schema};
use crate::value::Value;

/// Turn a base value into its logical value. Errors only when a recognised
/// logical type's encoding is itself broken (e.g. Decimal bytes that are
/// empty, a timestamp that overflows); the message says what and why, the
/// caller prefixes the field path.
pub fn apply(schema: &Schema, base: Value) -> Result<Value, String> {
    // Most values have no logical type: return them without moving them through the match.
    if base.is_null() || !schema.logical_ref().is_recognised() {
        return Ok(base);
    }
    Ok(match (schema.logical_ref(), base) {
        (Logical::Decimal { scale, .. }, Value::Bytes(b)) => Value::Decimal(
            decimal::from_unscaled_bytes(&b, i64::from(*scale))
                .map_err(|e| format!("Decimal value: {}", e.0))?,
        ),
        (Logical::VariableScaleDecimal, Value::Struct(fields)) => variable_scale_decimal(fields)?,
        (Logical::Date, Value::Int(d)) => match i32::try_from(d) {
            Ok(days) => Value::Date { days },
            Err(_) => return Err(format!("Date value {d} does not fit in int32 days")),
        },
        (Logical::TimeMillis, Value::Int(ms)) => Value::Time {
            micros: mul(ms, 1_000, "Time")?,
        },
        (Logical::TimeMicros, Value::Int(micros)) => Value::Time { micros },
        (Logical::TimeNanos, Value::Int(nanos)) => Value::TimeNanos { nanos },
        (Logical::TimestampMillis, Value::Int(ms)) => Value::Timestamp {
            micros: mul(ms, 1_000, "Timestamp")?,
        },
        (Logical::TimestampMicros, Value::Int(micros)) => Value::Timestamp { micros },
        (Logical::TimestampNanos, Value::Int(nanos)) => Value::TimestampNanos { nanos },
        (Logical::ZonedTimestamp, Value::Text(s)) => Value::TimestampTz(s),
        (Logical::ZonedTime, Value::Text(s)) => Value::TimeTz(s),
        (Logical::MicroDuration, Value::Int(micros)) => Value::Duration { micros },
        (Logical::Interval, Value::Text(s)) => Value::Interval(s),
        (Logical::Json, Value::Text(s)) => Value::Json(s),
        (Logical::Uuid, Value::Text(s)) => Value::Uuid(s),
        (Logical::Geometry { .. } | Logical::Point, Value::Struct(fields)) => geometry(fields),
        // Year, NanoDuration, Enum, EnumSet, Bits, Xml, Ltree keep their base
        // value (Int / Text / Bytes); unknown names too.
        (_, base) => base,
    })
}

fn mul(v: i64, by: i64, what: &str) -> Result<i64, String> {
    v.checked_mul(by)
        .ok_or_else(|| format!("{what} value {v} overflows when converted to microseconds"))
}

fn take(fields: &mut Vec<(Arc<str>, Value)>, name: &str) -> Option<Value> {
    let pos = fields.iter().position(|(n, _)| &**n == name)?;
    Some(fields.swap_remove(pos).1)
}

fn variable_scale_decimal(mut fields: Vec<(Arc<str>, Value)>) -> Result<Value, String> {
    let scale = match take(&mut fields, "scale") {
        Some(Value::Int(s)) => s,
        other => {
            return Err(format!(
                "VariableScaleDecimal needs an int32 'scale' field, found {}",
                describe(other.as_ref())
            ))
        }
    };
    let bytes = match take(&mut fields, "value") {
        Some(Value::Bytes(b)) => b,
        other => {
            return Err(format!(
                "VariableScaleDecimal needs a bytes 'value' field, found {}",
                describe(other.as_ref())
            ))
        }
    };
    decimal::from_unscaled_bytes(&bytes, scale)
        .map(Value::Decimal)
        .map_err(|e| format!("VariableScaleDecimal value: {}", e.0))
}

fn geometry(fields: Vec<(Arc<str>, Value)>) -> Value {
    let wkb = fields.iter().find_map(|(n, v)| match (&**n, v) {
        ("wkb", Value::Bytes(b)) => Some(b.clone()),
        _ => None,
    });
    let srid = fields.iter().find_map(|(n, v)| match (&**n, v) {
        ("srid", Value::Int(s)) => i32::try_from(*s).ok(),
        _ => None,
    });
    match wkb {
        Some(wkb) => Value::Geometry { wkb, srid },
        // A Point without WKB (only x/y) stays a struct.
        None => Value::Struct(fields),
    }
}

fn describe(v: Option<&Value>) -> &'static str {
    match v {
        None => "no such field",
        Some(Value::Null) => "null",
        Some(Value::Int(_)) => "an integer",
        Some(Value::Bytes(_)) => "bytes",
        Some(Value::Text(_)) => "a string",
        Some(_) => "another type",
    }
}
