//! The canonical row encoding: one text form per logical value, so that the same value read from
//! PostgreSQL and from MariaDB/MySQL encodes (and therefore hashes) identically.
//!
//! Both adapters fetch every column as text (PostgreSQL `col::text` under `TimeZone=UTC`,
//! `DateStyle=ISO`, `bytea_output=hex`; MariaDB `CAST(col AS CHAR)`, `HEX(col)`, `DATE_FORMAT(..)`
//! under `time_zone='+00:00'`), and [`canonical`] normalises that text per [`ColumnKind`]:
//!
//! | kind          | canonical form                                   | notes |
//! |---------------|--------------------------------------------------|-------|
//! | `Integer`     | decimal text, no sign for positives, no leading zeros | PG `bool` and MariaDB `tinyint(1)` meet here as `0`/`1` |
//! | `Decimal`     | decimal text, trailing fractional zeros stripped | **value** equality: `1.50` (numeric(12,2)) equals `1.5` and `1.500`; the declared scale is not compared |
//! | `Float`       | shortest text that round-trips an `f64`          | `-0` is `0`; a `real` on one side and a `double` on the other compare as `f64` |
//! | `Boolean`     | `1` / `0`                                        | |
//! | `Date`        | `YYYY-MM-DD` as the server prints it             | `infinity`, BC dates and MariaDB zero dates are kept verbatim |
//! | `Time`        | `HH:MM:SS.ffffff`                                | fraction padded to microseconds |
//! | `Timestamp`   | `YYYY-MM-DD HH:MM:SS.ffffff`                     | wall-clock text |
//! | `TimestampTz` | `YYYY-MM-DD HH:MM:SS.ffffff` **in UTC**          | same form as `Timestamp`, so `timestamptz` matches a `datetime(6)` holding UTC (what Debezium sinks write) |
//! | `Text`        | the UTF-8 text                                   | PG `char(n)` loses its pad in `::text`, as MariaDB `CHAR` does on read |
//! | `Bytes`       | lowercase hex, no prefix                         | |
//! | `Json`        | compact JSON, object keys sorted                 | numbers compare by value (`1.0` = `1`; non-integers at `f64` precision); invalid JSON is kept verbatim |
//! | `Other`       | the server's text                                | uuid, enum, interval, arrays, ...: equal when the servers print them equally |
//!
//! NULL is `None` everywhere and never equals any text, the empty string included.
//!
//! Text a kind cannot parse (which the servers do not produce for that type) is kept verbatim
//! rather than failing: a comparison then reports the row as differing, which is the honest answer.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// How a column's values are normalised and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Integer,
    Decimal,
    Float,
    Boolean,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Text,
    Bytes,
    Json,
    Other,
}

/// Kind of a PostgreSQL column from its base type's `pg_type.typname` (domains resolved).
pub fn classify_pg(typname: &str) -> ColumnKind {
    match typname {
        "int2" | "int4" | "int8" | "oid" => ColumnKind::Integer,
        "numeric" => ColumnKind::Decimal,
        "float4" | "float8" => ColumnKind::Float,
        "bool" => ColumnKind::Boolean,
        "date" => ColumnKind::Date,
        "time" => ColumnKind::Time,
        "timestamp" => ColumnKind::Timestamp,
        "timestamptz" => ColumnKind::TimestampTz,
        "text" | "varchar" | "bpchar" | "char" | "name" | "citext" => ColumnKind::Text,
        "bytea" => ColumnKind::Bytes,
        "json" | "jsonb" => ColumnKind::Json,
        _ => ColumnKind::Other,
    }
}

/// Kind of a MariaDB/MySQL column from `information_schema.COLUMNS.DATA_TYPE`.
///
/// MariaDB reports a `JSON` column as `longtext`; [`effective_kinds`] pairs it with a JSON column
/// on the other side. `tinyint(1)` stays an integer: PG booleans canonicalise to `0`/`1` as well.
pub fn classify_mysql(data_type: &str) -> ColumnKind {
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" | "bit" => {
            ColumnKind::Integer
        }
        "decimal" | "numeric" | "dec" | "fixed" => ColumnKind::Decimal,
        "float" | "double" | "real" | "double precision" => ColumnKind::Float,
        "bool" | "boolean" => ColumnKind::Boolean,
        "date" => ColumnKind::Date,
        "time" => ColumnKind::Time,
        "datetime" => ColumnKind::Timestamp,
        "timestamp" => ColumnKind::TimestampTz,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            ColumnKind::Text
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnKind::Bytes
        }
        "json" => ColumnKind::Json,
        _ => ColumnKind::Other,
    }
}

/// The kinds each side normalises a column with. Each side uses its own kind, except that JSON
/// on one side and text on the other (MariaDB's `JSON` is `longtext`) are both read as JSON.
pub fn effective_kinds(source: ColumnKind, target: ColumnKind) -> (ColumnKind, ColumnKind) {
    match (source, target) {
        (ColumnKind::Json, ColumnKind::Text) | (ColumnKind::Text, ColumnKind::Json) => {
            (ColumnKind::Json, ColumnKind::Json)
        }
        pair => pair,
    }
}

/// The canonical text of one non-NULL value read as text from either engine.
pub fn canonical(kind: ColumnKind, raw: &str) -> String {
    let normalised = match kind {
        ColumnKind::Integer | ColumnKind::Decimal => canonical_decimal(raw),
        ColumnKind::Float => canonical_float(raw),
        ColumnKind::Boolean => canonical_bool(raw),
        ColumnKind::Time => canonical_time(raw),
        ColumnKind::Timestamp | ColumnKind::TimestampTz => canonical_timestamp(raw),
        ColumnKind::Bytes => canonical_bytes(raw),
        ColumnKind::Json => canonical_json(raw),
        ColumnKind::Date | ColumnKind::Text | ColumnKind::Other => None,
    };
    normalised.unwrap_or_else(|| raw.to_string())
}

/// Canonical form of a NULL-able value.
pub fn canonical_opt(kind: ColumnKind, raw: Option<&str>) -> Option<String> {
    raw.map(|r| canonical(kind, r))
}

fn canonical_decimal(raw: &str) -> Option<String> {
    let (negative, int, frac) = split_decimal(raw.trim())?;
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.is_empty() && frac.is_empty() {
        return Some("0".to_string());
    }
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// `[+-]digits[.digits]` into (negative, integer digits, fraction digits).
fn split_decimal(s: &str) -> Option<(bool, &str, &str)> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    (digits(int) && digits(frac)).then_some((negative, int, frac))
}

fn canonical_float(raw: &str) -> Option<String> {
    let value: f64 = raw.trim().parse().ok()?;
    if value == 0.0 {
        return Some("0".to_string());
    }
    Some(format_f64(value))
}

fn format_f64(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        // Rust's Display prints the shortest text that round-trips, without an exponent.
        format!("{value}")
    }
}

fn canonical_bool(raw: &str) -> Option<String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "1" | "y" | "yes" | "on" => Some("1".to_string()),
        "f" | "false" | "0" | "n" | "no" | "off" => Some("0".to_string()),
        _ => None,
    }
}

/// `HH:MM:SS[.f]` with the fraction padded to six digits.
fn canonical_time(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (hms, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    let well_formed = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && frac.bytes().all(|b| b.is_ascii_digit());
    well_formed.then(|| format!("{hms}.{}", pad_micros(frac)))
}

fn pad_micros(frac: &str) -> String {
    let mut out = frac.to_string();
    while out.len() < 6 {
        out.push('0');
    }
    out
}

/// A timestamp as printed by either engine, with or without a UTC offset, as
/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC.
fn canonical_timestamp(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let bytes = raw.as_bytes();
    if bytes.len() < 19 || !(bytes[10] == b' ' || bytes[10] == b'T') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = raw.get(range)?;
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    if bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &raw[19..];
    let mut frac = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let end = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        frac = &after_dot[..end];
        rest = &after_dot[end..];
    }
    let offset_seconds = parse_offset(rest)?;
    let date_part = &raw[0..10];
    if offset_seconds == 0 {
        return Some(format!(
            "{date_part} {hour:02}:{minute:02}:{second:02}.{}",
            pad_micros(frac)
        ));
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds;
    let (days, secs_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{}",
        secs_of_day / 3_600,
        secs_of_day % 3_600 / 60,
        secs_of_day % 60,
        pad_micros(frac)
    ))
}

/// `""`, `Z`, `+HH`, `+HH:MM`, `+HHMM`, `+HH:MM:SS` into seconds east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    if s.is_empty() || s == "Z" || s == "z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let fields: Vec<&str> = if rest.contains(':') {
        rest.split(':').collect()
    } else if rest.len() == 4 {
        vec![&rest[0..2], &rest[2..4]]
    } else {
        vec![rest]
    };
    if fields.is_empty()
        || fields.len() > 3
        || fields
            .iter()
            .any(|f| f.len() != 2 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut seconds = 0;
    for (field, unit) in fields.iter().zip([3_600, 60, 1]) {
        seconds += field.parse::<i64>().ok()? * unit;
    }
    Some(sign * seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn canonical_bytes(raw: &str) -> Option<String> {
    let hex = raw.strip_prefix("\\x").unwrap_or(raw);
    hex.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| hex.to_ascii_lowercase())
}

fn canonical_json(raw: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(raw).ok()?;
    let mut out = String::with_capacity(raw.len());
    write_json(&value, &mut out);
    Some(out)
}

fn write_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(f) = n.as_f64() {
                out.push_str(&if f == 0.0 {
                    "0".to_string()
                } else {
                    format_f64(f)
                });
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

/// Orders two canonical values of a key column the way both adapters' `ORDER BY` does:
/// numbers by value, text by UTF-8 bytes (the adapters sort text with `COLLATE "C"` /
/// `CAST(.. AS BINARY)`), everything else by its canonical text.
pub fn compare_canonical(kind: ColumnKind, a: &str, b: &str) -> Ordering {
    match kind {
        ColumnKind::Integer | ColumnKind::Decimal => {
            compare_decimal(a, b).unwrap_or_else(|| a.cmp(b))
        }
        ColumnKind::Float => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        },
        _ => a.as_bytes().cmp(b.as_bytes()),
    }
}

fn compare_decimal(a: &str, b: &str) -> Option<Ordering> {
    let a = canonical_decimal(a)?;
    let b = canonical_decimal(b)?;
    let (a_neg, a_int, a_frac) = split_decimal(&a)?;
    let (b_neg, b_int, b_frac) = split_decimal(&b)?;
    let magnitude = a_int
        .len()
        .cmp(&b_int.len())
        .then_with(|| a_int.cmp(b_int))
        .then_with(|| a_frac.cmp(b_frac));
    Some(match (a_neg, b_neg) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnKind::*;

    #[test]
    fn canonical_forms() {
        let cases: &[(ColumnKind, &str, &str)] = &[
            // integers
            (Integer, "42", "42"),
            (Integer, "-42", "-42"),
            (Integer, "+42", "42"),
            (Integer, "007", "7"),
            (Integer, "0", "0"),
            (Integer, "-0", "0"),
            (Integer, "9223372036854775807", "9223372036854775807"),
            (Integer, "18446744073709551615", "18446744073709551615"),
            // decimals: value equality, trailing zeros stripped
            (Decimal, "1.50", "1.5"),
            (Decimal, "1.5", "1.5"),
            (Decimal, "1.500", "1.5"),
            (Decimal, "1.00", "1"),
            (Decimal, "0.00", "0"),
            (Decimal, "-0.00", "0"),
            (Decimal, "-12.340", "-12.34"),
            (Decimal, "0.05", "0.05"),
            (Decimal, ".5", "0.5"),
            (Decimal, "0010.0100", "10.01"),
            (Decimal, "1234567890.12", "1234567890.12"),
            (Decimal, "NaN", "NaN"),
            (Decimal, "abc", "abc"),
            // floats
            (Float, "0.1", "0.1"),
            (Float, "1e21", "1000000000000000000000"),
            (Float, "1.5E-3", "0.0015"),
            (Float, "-0", "0"),
            (Float, "3", "3"),
            (Float, "Infinity", "Infinity"),
            (Float, "-Infinity", "-Infinity"),
            (Float, "inf", "Infinity"),
            (Float, "NaN", "NaN"),
            // booleans: PG bool text and MariaDB tinyint(1)
            (Boolean, "t", "1"),
            (Boolean, "true", "1"),
            (Boolean, "f", "0"),
            (Boolean, "false", "0"),
            (Boolean, "1", "1"),
            (Boolean, "0", "0"),
            (Boolean, "maybe", "maybe"),
            // dates and times
            (Date, "2024-02-29", "2024-02-29"),
            (Date, "infinity", "infinity"),
            (Date, "0000-00-00", "0000-00-00"),
            (Time, "10:11:12", "10:11:12.000000"),
            (Time, "10:11:12.5", "10:11:12.500000"),
            (Time, "10:11:12.123456", "10:11:12.123456"),
            (Time, "838:59:59", "838:59:59.000000"),
            (Time, "noon", "noon"),
            // timestamps
            (
                Timestamp,
                "2024-01-02 03:04:05",
                "2024-01-02 03:04:05.000000",
            ),
            (
                Timestamp,
                "2024-01-02 03:04:05.5",
                "2024-01-02 03:04:05.500000",
            ),
            (
                Timestamp,
                "2024-01-02T03:04:05.123456",
                "2024-01-02 03:04:05.123456",
            ),
            (
                Timestamp,
                "2024-01-02 03:04:05.000000",
                "2024-01-02 03:04:05.000000",
            ),
            (
                TimestampTz,
                "2024-01-02 03:04:05+00",
                "2024-01-02 03:04:05.000000",
            ),
            (
                TimestampTz,
                "2024-01-02 03:04:05.25+00",
                "2024-01-02 03:04:05.250000",
            ),
            (
                TimestampTz,
                "2024-01-02 03:04:05Z",
                "2024-01-02 03:04:05.000000",
            ),
            (
                TimestampTz,
                "2024-01-02 03:04:05+02",
                "2024-01-02 01:04:05.000000",
            ),
            (
                TimestampTz,
                "2024-01-02 03:04:05.1-05:30",
                "2024-01-02 08:34:05.100000",
            ),
            (
                TimestampTz,
                "2024-01-01 00:30:00+01",
                "2023-12-31 23:30:00.000000",
            ),
            (
                TimestampTz,
                "2024-03-01 00:00:00+0100",
                "2024-02-29 23:00:00.000000",
            ),
            (
                TimestampTz,
                "2023-12-31 23:00:00-01:00:00",
                "2024-01-01 00:00:00.000000",
            ),
            (TimestampTz, "infinity", "infinity"),
            (
                TimestampTz,
                "2024-01-02 03:04:05 BC",
                "2024-01-02 03:04:05 BC",
            ),
            // text keeps everything, the empty string included
            (Text, "", ""),
            (Text, " padded ", " padded "),
            (Text, "Grüße ✓", "Grüße ✓"),
            // bytes: PG's \x prefix, MariaDB's uppercase HEX()
            (Bytes, "\\xdeadBEEF", "deadbeef"),
            (Bytes, "DEADBEEF", "deadbeef"),
            (Bytes, "", ""),
            (Bytes, "\\x", ""),
            // json: compact, keys sorted, numbers by value
            (
                Json,
                r#"{"b": 1, "a": [1, 2.50, "x"]}"#,
                r#"{"a":[1,2.5,"x"],"b":1}"#,
            ),
            (
                Json,
                r#"{"a":{"d":null,"c":true}}"#,
                r#"{"a":{"c":true,"d":null}}"#,
            ),
            (Json, r#"{"n": 1.0}"#, r#"{"n":1}"#),
            (Json, r#""quote\"d""#, r#""quote\"d""#),
            (Json, "not json", "not json"),
            // other types are the server's text
            (
                Other,
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            ),
        ];
        for (kind, raw, expected) in cases {
            assert_eq!(canonical(*kind, raw), *expected, "{kind:?} {raw:?}");
        }
    }

    #[test]
    fn same_value_from_both_engines_is_equal() {
        // (PG kind, PG text, MariaDB kind, MariaDB text)
        let cases: &[(ColumnKind, &str, ColumnKind, &str)] = &[
            (Boolean, "t", Integer, "1"),
            (Boolean, "f", Integer, "0"),
            (Decimal, "12.50", Decimal, "12.50"),
            (Decimal, "12.50", Decimal, "12.500"),
            (Integer, "5", Decimal, "5.00"),
            (
                TimestampTz,
                "2024-05-06 07:08:09.123456+00",
                Timestamp,
                "2024-05-06 07:08:09.123456",
            ),
            (
                TimestampTz,
                "2024-05-06 07:08:09+00",
                TimestampTz,
                "2024-05-06 07:08:09.000000",
            ),
            (
                Timestamp,
                "2024-05-06 07:08:09",
                Timestamp,
                "2024-05-06 07:08:09.000000",
            ),
            (Bytes, "\\x00ff10", Bytes, "00FF10"),
            (
                Json,
                r#"{"a": 1, "b": [true, null]}"#,
                Json,
                r#"{"b":[true,null],"a":1}"#,
            ),
            (Time, "01:02:03", Time, "01:02:03.000000"),
            (Float, "0.1", Float, "0.1"),
        ];
        for (pk, pv, mk, mv) in cases {
            assert_eq!(
                canonical(*pk, pv),
                canonical(*mk, mv),
                "{pk:?} {pv:?} vs {mk:?} {mv:?}"
            );
        }
    }

    #[test]
    fn different_values_stay_different() {
        let cases: &[(ColumnKind, &str, &str)] = &[
            (Decimal, "1.5", "1.05"),
            (Integer, "10", "1"),
            (
                Timestamp,
                "2024-01-01 00:00:00",
                "2024-01-01 00:00:00.000001",
            ),
            (Text, "a", "a "),
            (Text, "a", "A"),
            (Json, r#"{"a":1}"#, r#"{"a":"1"}"#),
            (Bytes, "\\x00", "\\x0000"),
        ];
        for (kind, a, b) in cases {
            assert_ne!(
                canonical(*kind, a),
                canonical(*kind, b),
                "{kind:?} {a:?} {b:?}"
            );
        }
        // NULL is not the empty string.
        assert_ne!(canonical_opt(Text, None), canonical_opt(Text, Some("")));
    }

    #[test]
    fn classification() {
        let pg: &[(&str, ColumnKind)] = &[
            ("int8", Integer),
            ("int4", Integer),
            ("int2", Integer),
            ("numeric", Decimal),
            ("float8", Float),
            ("bool", Boolean),
            ("date", Date),
            ("time", Time),
            ("timetz", Other),
            ("timestamp", Timestamp),
            ("timestamptz", TimestampTz),
            ("varchar", Text),
            ("bpchar", Text),
            ("text", Text),
            ("bytea", Bytes),
            ("json", Json),
            ("jsonb", Json),
            ("uuid", Other),
            ("_int4", Other),
        ];
        for (name, kind) in pg {
            assert_eq!(classify_pg(name), *kind, "pg {name}");
        }
        let my: &[(&str, ColumnKind)] = &[
            ("bigint", Integer),
            ("tinyint", Integer),
            ("INT", Integer),
            ("decimal", Decimal),
            ("double", Float),
            ("date", Date),
            ("time", Time),
            ("datetime", Timestamp),
            ("timestamp", TimestampTz),
            ("varchar", Text),
            ("longtext", Text),
            ("enum", Text),
            ("varbinary", Bytes),
            ("blob", Bytes),
            ("json", Json),
            ("uuid", Other),
            ("geometry", Other),
        ];
        for (name, kind) in my {
            assert_eq!(classify_mysql(name), *kind, "mysql {name}");
        }
        assert_eq!(effective_kinds(Json, Text), (Json, Json));
        assert_eq!(effective_kinds(Text, Json), (Json, Json));
        assert_eq!(effective_kinds(Boolean, Integer), (Boolean, Integer));
    }

    #[test]
    fn key_ordering() {
        let cases: &[(ColumnKind, &str, &str, Ordering)] = &[
            (Integer, "9", "10", Ordering::Less),
            (Integer, "-10", "-9", Ordering::Less),
            (Integer, "-1", "0", Ordering::Less),
            (
                Integer,
                "18446744073709551615",
                "9223372036854775807",
                Ordering::Greater,
            ),
            (Integer, "7", "7", Ordering::Equal),
            (Decimal, "1.5", "1.25", Ordering::Greater),
            (Decimal, "1.5", "1.50", Ordering::Equal),
            (Decimal, "-1.5", "-1.25", Ordering::Less),
            (Decimal, "0.5", "1", Ordering::Less),
            (Float, "2.5", "10", Ordering::Less),
            (Text, "B", "a", Ordering::Less),
            (Text, "a", "a ", Ordering::Less),
            (Text, "z", "é", Ordering::Less),
            (Bytes, "00ff", "0100", Ordering::Less),
            (Date, "2023-12-31", "2024-01-01", Ordering::Less),
            (
                Timestamp,
                "2024-01-01 00:00:00.000000",
                "2024-01-01 00:00:00.000001",
                Ordering::Less,
            ),
        ];
        for (kind, a, b, expected) in cases {
            assert_eq!(
                compare_canonical(*kind, a, b),
                *expected,
                "{kind:?} {a} {b}"
            );
        }
    }

    #[test]
    fn civil_days_round_trip() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
