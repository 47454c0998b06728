//! Typed column values and their text renderings for PostgreSQL and MariaDB.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use crate::json::write_json_string;
use crate::temporal::{
    civil_from_days, format_date_parts, format_time_of_day, format_timestamp, parse_zoned_time,
    parse_zoned_timestamp, year_of_days, YearStyle, MICROS_PER_DAY, NANOS_PER_DAY,
};

/// A decoded value. Logical types are already interpreted; the column's
/// [`crate::ColumnType`] says which source type it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    Null,
    Bool(bool),
    /// int8/16/32/64 and `io.debezium.time.Year`, `NanoDuration`.
    Int(i64),
    /// float32 (widened exactly) and float64, including NaN/±Infinity.
    Float(f64),
    /// An exact decimal in canonical plain form (`-12345.67`); never via f64.
    Decimal(String),
    /// string, and string-based logical types without a dedicated variant
    /// (Enum, EnumSet, Xml, Ltree, unknown names).
    Text(String),
    /// bytes (and `io.debezium.data.Bits`).
    Bytes(Vec<u8>),
    /// `io.debezium.data.Json`: the JSON document text as given.
    Json(String),
    /// `io.debezium.data.Uuid`: as given (canonical 8-4-4-4-12 from Debezium).
    Uuid(String),
    /// Days since 1970-01-01 (may be negative).
    Date {
        days: i32,
    },
    /// Microseconds since midnight. May be negative or exceed 24 h (MySQL TIME).
    Time {
        micros: i64,
    },
    /// Nanoseconds since midnight (`NanoTime`), full precision kept.
    TimeNanos {
        nanos: i64,
    },
    /// Microseconds since the epoch, no time zone (wall clock of the source).
    Timestamp {
        micros: i64,
    },
    /// Nanoseconds since the epoch, no time zone (`NanoTimestamp`).
    TimestampNanos {
        nanos: i64,
    },
    /// `ZonedTimestamp`: ISO-8601 with offset, exactly as given.
    TimestampTz(String),
    /// `ZonedTime`: ISO-8601 time with offset, exactly as given.
    TimeTz(String),
    /// `MicroDuration`: microseconds (Debezium approximates a month as 30.4375 days).
    Duration {
        micros: i64,
    },
    /// `io.debezium.time.Interval`: ISO-8601 `PnYnMnDTnHnMnS`.
    Interval(String),
    /// Geometry/Geography/Point: (E)WKB and optional SRID.
    Geometry {
        wkb: Vec<u8>,
        srid: Option<i32>,
    },
    Array(Vec<Value>),
    /// A Connect map as (key, value) pairs in wire order.
    Map(Vec<(Value, Value)>),
    /// A nested struct (or a struct-typed logical type this crate does not interpret). The field
    /// names are shared: a decoder gives every struct of a schema the schema's own name strings
    /// ([`crate::Field::column`]), so a decoded struct allocates nothing for them.
    Struct(Vec<(Arc<str>, Value)>),
}

/// A value that cannot be written to the target as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Render as PostgreSQL text input format (what `COPY ... (FORMAT text)`
    /// fields, or text-typed bind parameters, take), `None` for SQL NULL.
    ///
    /// Dates before 1 AD use PostgreSQL's `BC` notation; bytes are `\x` hex;
    /// arrays use `{...}` with element quoting; structs and maps become JSON.
    pub fn to_pg_text(&self) -> Result<Option<String>, RenderError> {
        Ok(self.to_pg_text_cow()?.map(Cow::into_owned))
    }

    /// [`Value::to_pg_text`], borrowed where the value already is its text (strings, JSON,
    /// UUIDs, decimals, zoned times): the sink writes millions of them per minute.
    pub fn to_pg_text_cow(&self) -> Result<Option<Cow<'_, str>>, RenderError> {
        Ok(match self {
            Value::Null => None,
            Value::Array(items) => Some(Cow::Owned(pg_array(items)?)),
            other => Some(pg_scalar(other)?),
        })
    }

    /// Render as the text a MariaDB/MySQL statement parameter (or a quoted
    /// literal body) takes, `None` for SQL NULL. Dates are `YYYY-MM-DD`,
    /// timestamps `YYYY-MM-DD HH:MM:SS.ffffff`; zoned timestamps and times
    /// are converted to UTC (MariaDB's DATETIME/TIME have no offset and reject
    /// one); floats use exponent notation when their plain text is long (a
    /// long plain literal is read as a DECIMAL of limited scale);
    /// years outside 0..=9999 and non-finite floats cannot be written and are
    /// an error; bytes have no text form (see [`Value::to_mysql_literal`]).
    pub fn to_mysql_text(&self) -> Result<Option<String>, RenderError> {
        Ok(match self {
            Value::Null => None,
            Value::Bytes(_) | Value::Geometry { .. } => {
                return Err(RenderError(
                    "binary values have no text form for MariaDB: bind them as bytes or use to_mysql_literal".into(),
                ))
            }
            Value::Float(f) if !f.is_finite() => {
                return Err(RenderError(format!("MariaDB cannot store the float value {f}")))
            }
            Value::Float(f) => Some(mysql_float_text(*f)),
            Value::TimestampTz(text) => {
                let (days, seconds, fraction) = parse_zoned_timestamp(text).ok_or_else(|| {
                    RenderError(format!(
                        "'{text}' is not an ISO-8601 timestamp with an offset that MariaDB can store"
                    ))
                })?;
                mysql_year_check(days)?;
                let date = format_date_parts(civil_from_days(days), YearStyle::Iso).0;
                Some(format!(
                    "{date} {}{}",
                    clock(seconds),
                    dot_fraction(fraction)
                ))
            }
            Value::TimeTz(text) => {
                let (seconds, fraction) = parse_zoned_time(text).ok_or_else(|| {
                    RenderError(format!("'{text}' is not an ISO-8601 time with an offset"))
                })?;
                Some(format!(
                    "{}{}",
                    clock(seconds),
                    dot_fraction(fraction)
                ))
            }
            Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
            Value::Date { days } => {
                let days = i64::from(*days);
                mysql_year_check(days)?;
                Some(format_date_parts(civil_from_days(days), YearStyle::Iso).0)
            }
            Value::Timestamp { micros } => {
                mysql_year_check(micros.div_euclid(MICROS_PER_DAY))?;
                Some(format_timestamp(*micros, 1_000_000, 6, YearStyle::Iso))
            }
            Value::TimestampNanos { nanos } => {
                mysql_year_check(nanos.div_euclid(NANOS_PER_DAY))?;
                Some(format_timestamp(*nanos, 1_000_000_000, 9, YearStyle::Iso))
            }
            Value::Array(_) | Value::Map(_) | Value::Struct(_) => Some(self.to_json_text()),
            other => Some(pg_scalar(other)?.into_owned()),
        })
    }

    /// Render as a complete MariaDB/MySQL SQL literal: `NULL`, bare numbers,
    /// `X'0A0B'` for bytes, and single-quoted, backslash-escaped strings for
    /// everything else (safe with the default `sql_mode`; with
    /// `NO_BACKSLASH_ESCAPES` bind parameters instead).
    pub fn to_mysql_literal(&self) -> Result<String, RenderError> {
        match self {
            Value::Null => Ok("NULL".into()),
            Value::Int(i) => Ok(i.to_string()),
            Value::Decimal(d) => Ok(d.clone()),
            Value::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.into()),
            Value::Float(_) => match self.to_mysql_text()? {
                Some(t) => Ok(t),
                None => Ok("NULL".into()),
            },
            Value::Bytes(b) | Value::Geometry { wkb: b, .. } => Ok(format!("X'{}'", hex_upper(b))),
            other => match other.to_mysql_text()? {
                Some(t) => Ok(mysql_quote(&t)),
                None => Ok("NULL".into()),
            },
        }
    }

    /// Render as a JSON value text (used for struct/map columns and for
    /// diagnostics). Decimals are written as JSON numbers, bytes as base64,
    /// temporal values as their PostgreSQL text.
    pub fn to_json_text(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) if f.is_finite() => out.push_str(&float_text(*f)),
            Value::Float(f) => write_json_string(&float_text(*f), out),
            Value::Decimal(d) => out.push_str(d),
            Value::Json(j) => out.push_str(j),
            Value::Bytes(b) => {
                use base64::Engine as _;
                write_json_string(&base64::engine::general_purpose::STANDARD.encode(b), out)
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Struct(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
            Value::Map(entries) => {
                // Object when every key is text, else an array of [k, v] pairs
                // (JsonConverter's own encoding of such maps).
                if entries.iter().all(|(k, _)| matches!(k, Value::Text(_))) {
                    out.push('{');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        if let Value::Text(k) = k {
                            write_json_string(k, out);
                        }
                        out.push(':');
                        v.write_json(out);
                    }
                    out.push('}');
                } else {
                    out.push('[');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        k.write_json(out);
                        out.push(',');
                        v.write_json(out);
                        out.push(']');
                    }
                    out.push(']');
                }
            }
            Value::Geometry { wkb, srid } => {
                out.push_str("{\"wkb\":");
                Value::Bytes(wkb.clone()).write_json(out);
                out.push_str(",\"srid\":");
                match srid {
                    Some(s) => out.push_str(&s.to_string()),
                    None => out.push_str("null"),
                }
                out.push('}');
            }
            other => match pg_scalar(other) {
                Ok(t) => write_json_string(&t, out),
                Err(_) => out.push_str("null"),
            },
        }
    }
}

fn mysql_year_check(days: i64) -> Result<(), RenderError> {
    let y = year_of_days(days);
    if (0..=9999).contains(&y) {
        Ok(())
    } else {
        Err(RenderError(format!(
            "year {y} is outside the range MariaDB can store (0000-9999)"
        )))
    }
}

/// A float for MariaDB: its shortest round-trip text, in exponent notation when the plain
/// text is long. MariaDB reads `0.000…0001` as a DECIMAL literal of limited scale (1e-93
/// written that way was stored as 0 in a DOUBLE column on 10.11), while `1e-93` is read as a
/// DOUBLE, exactly.
fn mysql_float_text(f: f64) -> String {
    let plain = float_text(f);
    if plain.len() <= 24 {
        plain
    } else {
        format!("{f:e}")
    }
}

/// `HH:MM:SS` of a second of the day.
fn clock(seconds: i64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

/// `.fraction`, or nothing for an empty fraction.
fn dot_fraction(fraction: &str) -> String {
    if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    }
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Quote a string as a MySQL literal with backslash escapes.
pub fn mysql_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Shortest round-trip text of a float, with PostgreSQL's spellings of the
/// non-finite values.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "Infinity".into()
    } else if f == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        // Rust's Display is the shortest text that round-trips and never
        // uses exponent notation; both targets parse it.
        format!("{f}")
    }
}

/// A scalar's PostgreSQL text, borrowed where the value holds it already.
fn pg_scalar(v: &Value) -> Result<Cow<'_, str>, RenderError> {
    Ok(Cow::Owned(match v {
        Value::Null => return Err(RenderError("NULL has no scalar text".into())),
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float_text(*f),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Json(s)
        | Value::Uuid(s)
        | Value::TimestampTz(s)
        | Value::TimeTz(s)
        | Value::Interval(s) => return Ok(Cow::Borrowed(s)),
        Value::Bytes(b) => format!("\\x{}", hex_lower(b)),
        Value::Geometry { wkb, .. } => hex_lower(wkb),
        Value::Date { days } => {
            let (d, bc) = format_date_parts(civil_from_days(i64::from(*days)), YearStyle::Postgres);
            format!("{d}{bc}")
        }
        Value::Time { micros } => format_time_of_day(*micros, 1_000_000, 6),
        Value::TimeNanos { nanos } => format_time_of_day(*nanos, 1_000_000_000, 9),
        Value::Timestamp { micros } => format_timestamp(*micros, 1_000_000, 6, YearStyle::Postgres),
        Value::TimestampNanos { nanos } => {
            format_timestamp(*nanos, 1_000_000_000, 9, YearStyle::Postgres)
        }
        Value::Duration { micros } => format_time_of_day(*micros, 1_000_000, 6),
        Value::Array(items) => pg_array(items)?,
        Value::Map(_) | Value::Struct(_) => v.to_json_text(),
    }))
}

/// PostgreSQL array literal: `{1,2,NULL}`, `{"a b","c\"d"}`, nested `{{1},{2}}`.
fn pg_array(items: &[Value]) -> Result<String, RenderError> {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) => out.push_str(&pg_array(inner)?),
            other => {
                let t = pg_scalar(other)?;
                let needs_quotes = t.is_empty()
                    || t.eq_ignore_ascii_case("NULL")
                    || t.chars()
                        .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
                if needs_quotes {
                    out.push('"');
                    for c in t.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(&t);
                }
            }
        }
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::days_from_civil;

    fn pg(v: Value) -> String {
        v.to_pg_text().unwrap().unwrap()
    }
    fn my(v: Value) -> String {
        v.to_mysql_text().unwrap().unwrap()
    }

    #[test]
    fn dates_render_at_edges() {
        let cases: &[(i32, &str, Option<&str>)] = &[
            (0, "1970-01-01", Some("1970-01-01")),
            (-1, "1969-12-31", Some("1969-12-31")),
            (11_016, "2000-02-29", Some("2000-02-29")),
            (-25_509, "1900-02-28", Some("1900-02-28")),
            (19_782, "2024-02-29", Some("2024-02-29")),
            (2_932_896, "9999-12-31", Some("9999-12-31")),
            (-719_162, "0001-01-01", Some("0001-01-01")),
            (-719_163, "0001-12-31 BC", Some("0000-12-31")),
            (-719_529, "0002-12-31 BC", None),
            (2_932_897, "10000-01-01", None),
        ];
        for &(days, want_pg, want_my) in cases {
            assert_eq!(pg(Value::Date { days }), want_pg, "days {days}");
            match want_my {
                Some(w) => assert_eq!(my(Value::Date { days }), w),
                None => assert!(Value::Date { days }.to_mysql_text().is_err(), "days {days}"),
            }
        }
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    }

    #[test]
    fn times_and_timestamps_render_with_microseconds() {
        assert_eq!(pg(Value::Time { micros: 0 }), "00:00:00.000000");
        assert_eq!(
            pg(Value::Time {
                micros: 86_399_999_999
            }),
            "23:59:59.999999"
        );
        assert_eq!(
            pg(Value::Time {
                micros: 86_400_000_000
            }),
            "24:00:00.000000"
        );
        assert_eq!(my(Value::Time { micros: -1_000 }), "-00:00:00.001000");
        assert_eq!(pg(Value::TimeNanos { nanos: 1 }), "00:00:00.000000001");
        assert_eq!(
            pg(Value::Timestamp { micros: 0 }),
            "1970-01-01 00:00:00.000000"
        );
        assert_eq!(
            pg(Value::Timestamp { micros: -1 }),
            "1969-12-31 23:59:59.999999"
        );
        assert_eq!(
            my(Value::Timestamp {
                micros: 1_709_164_800_123_456
            }),
            "2024-02-29 00:00:00.123456"
        );
        assert_eq!(
            pg(Value::Timestamp {
                micros: 253_402_300_799_999_999
            }),
            "9999-12-31 23:59:59.999999"
        );
        assert!(Value::Timestamp {
            micros: 253_402_300_800_000_000
        }
        .to_mysql_text()
        .is_err());
        assert_eq!(
            pg(Value::TimestampNanos {
                nanos: 1_500_000_000_123
            }),
            "1970-01-01 00:25:00.000000123"
        );
        assert_eq!(
            pg(Value::Duration {
                micros: 90_061_000_001
            }),
            "25:01:01.000001"
        );
    }

    #[test]
    fn scalars_render() {
        assert_eq!(pg(Value::Bool(true)), "t");
        assert_eq!(my(Value::Bool(false)), "0");
        assert_eq!(pg(Value::Int(-42)), "-42");
        assert_eq!(pg(Value::Float(0.1)), "0.1");
        assert_eq!(pg(Value::Float(f64::NAN)), "NaN");
        assert_eq!(pg(Value::Float(f64::NEG_INFINITY)), "-Infinity");
        assert!(Value::Float(f64::INFINITY).to_mysql_text().is_err());
        assert_eq!(my(Value::Float(0.1)), "0.1");
        assert_eq!(my(Value::Float(-2.5e-7)), "-0.00000025");
        assert_eq!(my(Value::Float(1e-300)), "1e-300");
        assert_eq!(
            my(Value::Float(-1.7976931348623157e308)),
            "-1.7976931348623157e308"
        );
        assert_eq!(Value::Float(1.5e-30).to_mysql_literal().unwrap(), "1.5e-30");
        assert_eq!(
            my(Value::TimestampTz(
                "2024-02-29T23:59:59.123456+02:00".into()
            )),
            "2024-02-29 21:59:59.123456"
        );
        assert_eq!(
            my(Value::TimestampTz("1969-12-31T23:59:59Z".into())),
            "1969-12-31 23:59:59"
        );
        assert_eq!(
            Value::TimestampTz("2024-02-29T21:59:59Z".into())
                .to_mysql_literal()
                .unwrap(),
            "'2024-02-29 21:59:59'"
        );
        assert!(Value::TimestampTz("infinity".into())
            .to_mysql_text()
            .is_err());
        assert!(Value::TimestampTz("+10000-01-01T00:00:00Z".into())
            .to_mysql_text()
            .is_err());
        assert_eq!(my(Value::TimeTz("01:30:00.5+02:00".into())), "23:30:00.5");
        assert_eq!(pg(Value::Decimal("-12345.67".into())), "-12345.67");
        assert_eq!(pg(Value::Bytes(vec![0xde, 0xad, 0x01])), "\\xdead01");
        assert_eq!(
            Value::Bytes(vec![0xde, 0xad]).to_mysql_literal().unwrap(),
            "X'DEAD'"
        );
        assert_eq!(Value::Null.to_pg_text().unwrap(), None);
        assert_eq!(Value::Null.to_mysql_literal().unwrap(), "NULL");
        assert_eq!(
            Value::Text("it's \\ ok\n".into())
                .to_mysql_literal()
                .unwrap(),
            "'it\\'s \\\\ ok\\n'"
        );
        assert_eq!(
            Value::Date { days: 0 }.to_mysql_literal().unwrap(),
            "'1970-01-01'"
        );
        assert_eq!(
            Value::Decimal("0.10".into()).to_mysql_literal().unwrap(),
            "0.10"
        );
    }

    #[test]
    fn arrays_render_as_pg_literals() {
        let v = Value::Array(vec![
            Value::Text("a".into()),
            Value::Text("b c".into()),
            Value::Null,
            Value::Text("NULL".into()),
            Value::Text("q\"\\".into()),
            Value::Text("".into()),
        ]);
        assert_eq!(pg(v), r#"{a,"b c",NULL,"NULL","q\"\\",""}"#);
        let nested = Value::Array(vec![
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Array(vec![Value::Int(3), Value::Null]),
        ]);
        assert_eq!(pg(nested.clone()), "{{1,2},{3,NULL}}");
        assert_eq!(my(nested), "[[1,2],[3,null]]");
        let dates = Value::Array(vec![
            Value::Date { days: 0 },
            Value::Date { days: -719_163 },
        ]);
        assert_eq!(pg(dates), r#"{1970-01-01,"0001-12-31 BC"}"#);
    }

    #[test]
    fn structs_and_maps_render_as_json() {
        let s = Value::Struct(vec![
            ("a".into(), Value::Int(1)),
            ("b".into(), Value::Text("x\"".into())),
            ("c".into(), Value::Decimal("1.50".into())),
            ("d".into(), Value::Bytes(vec![1, 2, 3])),
        ]);
        assert_eq!(pg(s), r#"{"a":1,"b":"x\"","c":1.50,"d":"AQID"}"#);
        let m = Value::Map(vec![(Value::Int(1), Value::Bool(true))]);
        assert_eq!(m.to_json_text(), "[[1,true]]");
        let m = Value::Map(vec![(Value::Text("k".into()), Value::Null)]);
        assert_eq!(m.to_json_text(), r#"{"k":null}"#);
    }
}
