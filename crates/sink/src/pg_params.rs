//! Typed array parameters for the set-based statements of [`crate::pg_sql`].
//!
//! Each column of a batch travels as one array parameter. Where the value's kind and the target
//! column's type agree (an integer into `bigint`, a date into `date`, a zoned timestamp into
//! `timestamptz`, bytes into `bytea`...), the array is sent in PostgreSQL's binary form of that
//! type: nothing is rendered to text on this side and nothing is parsed on the server, and the
//! value is exact (a float's bits, a timestamp's microseconds). Every other column travels as
//! `text[]` in PostgreSQL's text input format and is cast to the column's declared type inside
//! the statement, so any type PostgreSQL can read from text still works.
//!
//! The choice is made per column and per batch from the values themselves: if one value does
//! not fit the binary form (a timestamp with nanoseconds, a malformed UUID), the whole column
//! falls back to text, and PostgreSQL's own input function decides (and names the value when it
//! refuses it). Pure: no I/O here, only the encoding `tokio-postgres` calls.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use lockstep_debezium::temporal::parse_zoned_timestamp;
use lockstep_debezium::{RenderError, Value};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// Days from 1970-01-01 (Debezium's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_SECOND: i64 = 1_000_000;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400 * MICROS_PER_SECOND;

/// A `date` in PostgreSQL's binary form: days since 2000-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgDate(pub i32);

/// A `timestamp` / `timestamptz` in PostgreSQL's binary form: microseconds since
/// 2000-01-01 00:00 (UTC for `timestamptz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgMicros(pub i64);

/// A `uuid` in PostgreSQL's binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgUuid(pub [u8; 16]);

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for PgDate {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i32(self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
    to_sql_checked!();
}

impl ToSql for PgMicros {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ
    }
    to_sql_checked!();
}

impl ToSql for PgUuid {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
    to_sql_checked!();
}

/// A `text[]` parameter whose elements are already in the array's binary form (each a length
/// and its bytes, or -1 for NULL): written from the values without a `String` per element.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextArray {
    len: usize,
    has_null: bool,
    elements: Vec<u8>,
}

impl TextArray {
    /// Appends an element; `None` is NULL. PostgreSQL's text values stop at 1 GB, far below
    /// the length field's limit; a longer one is refused here rather than sent cut.
    pub fn push(&mut self, text: Option<&str>) -> Result<(), RenderError> {
        match text {
            None => {
                self.has_null = true;
                self.elements.extend_from_slice(&(-1i32).to_be_bytes());
            }
            Some(text) => {
                let len = i32::try_from(text.len()).map_err(|_| {
                    RenderError(format!(
                        "a text value of {} bytes is larger than PostgreSQL accepts",
                        text.len()
                    ))
                })?;
                self.elements.extend_from_slice(&len.to_be_bytes());
                self.elements.extend_from_slice(text.as_bytes());
            }
        }
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<'a> FromIterator<Option<&'a str>> for TextArray {
    /// For tests and literals; panics on a text over 2 GB.
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(items: I) -> Self {
        let mut array = TextArray::default();
        for item in items {
            array
                .push(item)
                .unwrap_or_else(|e| panic!("TextArray::from_iter: {e}"));
        }
        array
    }
}

/// PostgreSQL's `text` type oid (the element type of `text[]`).
const TEXT_OID: u32 = 25;

impl ToSql for TextArray {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        // array_recv's layout: dimensions, has-nulls flag, element type, then per dimension
        // its length and lower bound, then the elements.
        let len = i32::try_from(self.len)?;
        out.reserve(20 + self.elements.len());
        out.put_i32(1);
        out.put_i32(i32::from(self.has_null));
        out.put_u32(TEXT_OID);
        out.put_i32(len);
        out.put_i32(1);
        out.put_slice(&self.elements);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT_ARRAY
    }
    to_sql_checked!();
}

/// One column of a batch, as the array parameter it is bound to.
#[derive(Debug, Clone, PartialEq)]
pub enum PgArray {
    Text(TextArray),
    Int8(Vec<Option<i64>>),
    Float8(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Bytea(Vec<Option<Vec<u8>>>),
    Date(Vec<Option<PgDate>>),
    Timestamp(Vec<Option<PgMicros>>),
    Timestamptz(Vec<Option<PgMicros>>),
    Uuid(Vec<Option<PgUuid>>),
}

/// The binary kinds a column can travel as (text is the fallback, not listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Int8,
    Float8,
    Bool,
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    Uuid,
}

impl PgArray {
    /// The element type's name as PostgreSQL's `format_type` spells it.
    pub fn element_type(&self) -> &'static str {
        match self {
            PgArray::Text(_) => "text",
            PgArray::Int8(_) => "bigint",
            PgArray::Float8(_) => "double precision",
            PgArray::Bool(_) => "boolean",
            PgArray::Bytea(_) => "bytea",
            PgArray::Date(_) => "date",
            PgArray::Timestamp(_) => "timestamp without time zone",
            PgArray::Timestamptz(_) => "timestamp with time zone",
            PgArray::Uuid(_) => "uuid",
        }
    }

    /// The parameter's placeholder with its array type, e.g. `$3::int8[]`.
    pub fn placeholder(&self, n: usize) -> String {
        let ty = match self {
            PgArray::Text(_) => "text",
            PgArray::Int8(_) => "int8",
            PgArray::Float8(_) => "float8",
            PgArray::Bool(_) => "bool",
            PgArray::Bytea(_) => "bytea",
            PgArray::Date(_) => "date",
            PgArray::Timestamp(_) => "timestamp",
            PgArray::Timestamptz(_) => "timestamptz",
            PgArray::Uuid(_) => "uuid",
        };
        format!("${n}::{ty}[]")
    }

    /// How the statement reads element `alias` into a column of type `target`: bare when the
    /// types agree; bare for text into `text` / `varchar(n)` (the assignment cast checks the
    /// length and refuses an over-long value, where an explicit cast would cut it silently);
    /// otherwise an explicit cast (`int8` into `integer` fails on overflow, text is parsed by
    /// the type's input function).
    pub fn read_as(&self, alias: &str, target: &str) -> String {
        let family = type_family(target);
        let bare = self.element_type() == target
            || (matches!(self, PgArray::Text(_))
                && (family == "text" || family == "character varying"));
        if bare {
            alias.to_string()
        } else {
            format!("{alias}::{target}")
        }
    }

    /// Elements in the array.
    pub fn len(&self) -> usize {
        match self {
            PgArray::Text(v) => v.len(),
            PgArray::Int8(v) => v.len(),
            PgArray::Float8(v) => v.len(),
            PgArray::Bool(v) => v.len(),
            PgArray::Bytea(v) => v.len(),
            PgArray::Date(v) => v.len(),
            PgArray::Timestamp(v) | PgArray::Timestamptz(v) => v.len(),
            PgArray::Uuid(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ToSql for PgArray {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        // Checked: a placeholder and an array kind that disagree is an error, never bytes of
        // one type read as another.
        match self {
            PgArray::Text(v) => v.to_sql_checked(ty, out),
            PgArray::Int8(v) => v.to_sql_checked(ty, out),
            PgArray::Float8(v) => v.to_sql_checked(ty, out),
            PgArray::Bool(v) => v.to_sql_checked(ty, out),
            PgArray::Bytea(v) => v.to_sql_checked(ty, out),
            PgArray::Date(v) => v.to_sql_checked(ty, out),
            PgArray::Timestamp(v) | PgArray::Timestamptz(v) => v.to_sql_checked(ty, out),
            PgArray::Uuid(v) => v.to_sql_checked(ty, out),
        }
    }
    fn accepts(ty: &Type) -> bool {
        [
            Type::TEXT_ARRAY,
            Type::INT8_ARRAY,
            Type::FLOAT8_ARRAY,
            Type::BOOL_ARRAY,
            Type::BYTEA_ARRAY,
            Type::DATE_ARRAY,
            Type::TIMESTAMP_ARRAY,
            Type::TIMESTAMPTZ_ARRAY,
            Type::UUID_ARRAY,
        ]
        .contains(ty)
    }
    to_sql_checked!();
}

/// A type name without its modifiers: `numeric(12,2)` -> `numeric`,
/// `timestamp(3) with time zone` -> `timestamp with time zone`.
pub fn type_family(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    let mut depth = 0usize;
    for ch in target.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The binary kind for a value going into a column of this type family, if there is one.
fn wire_for(sample: &Value, family: &str) -> Option<Wire> {
    Some(match (sample, family) {
        (Value::Int(_), "bigint" | "integer" | "smallint") => Wire::Int8,
        (Value::Float(_), "double precision" | "real") => Wire::Float8,
        (Value::Bool(_), "boolean") => Wire::Bool,
        (Value::Bytes(_), "bytea") => Wire::Bytea,
        (Value::Date { .. }, "date") => Wire::Date,
        (Value::Timestamp { .. }, "timestamp without time zone") => Wire::Timestamp,
        (Value::TimestampTz(_), "timestamp with time zone") => Wire::Timestamptz,
        (Value::Uuid(_), "uuid") => Wire::Uuid,
        _ => return None,
    })
}

fn pg_date(days: i32) -> Option<PgDate> {
    i32::try_from(i64::from(days) - PG_EPOCH_DAYS)
        .ok()
        .map(PgDate)
}

fn pg_micros(micros: i64) -> Option<PgMicros> {
    micros.checked_sub(PG_EPOCH_MICROS).map(PgMicros)
}

/// A Debezium `ZonedTimestamp` (ISO-8601 with an offset) as UTC microseconds, when it has at
/// most microsecond precision (more digits are left to PostgreSQL's own rounding, as text).
fn zoned_micros(text: &str) -> Option<PgMicros> {
    let (days, seconds, fraction) = parse_zoned_timestamp(text)?;
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut frac_micros: i64 = 0;
    for (i, b) in fraction.bytes().enumerate() {
        frac_micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
    }
    let micros = days
        .checked_mul(86_400)?
        .checked_add(seconds)?
        .checked_mul(MICROS_PER_SECOND)?
        .checked_add(frac_micros)?;
    pg_micros(micros)
}

/// A UUID in the canonical 8-4-4-4-12 form Debezium sends, or as 32 hex digits.
fn parse_uuid(text: &str) -> Option<PgUuid> {
    let bytes = text.as_bytes();
    let canonical = bytes.len() == 36 && [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-');
    if !(canonical || bytes.len() == 32) {
        return None;
    }
    let hex: Vec<u8> = bytes.iter().copied().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(PgUuid(out))
}

/// Builds the array in `wire`; `None` when a value does not fit it.
fn binary<'a>(wire: Wire, values: impl Iterator<Item = &'a Value>) -> Option<PgArray> {
    fn collect<'a, T>(
        values: impl Iterator<Item = &'a Value>,
        convert: impl Fn(&'a Value) -> Option<T>,
    ) -> Option<Vec<Option<T>>> {
        values
            .map(|v| match v {
                Value::Null => Some(None),
                other => convert(other).map(Some),
            })
            .collect()
    }
    Some(match wire {
        Wire::Int8 => PgArray::Int8(collect(values, |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })?),
        Wire::Float8 => PgArray::Float8(collect(values, |v| match v {
            Value::Float(f) => Some(*f),
            _ => None,
        })?),
        Wire::Bool => PgArray::Bool(collect(values, |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        })?),
        Wire::Bytea => PgArray::Bytea(collect(values, |v| match v {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        })?),
        Wire::Date => PgArray::Date(collect(values, |v| match v {
            Value::Date { days } => pg_date(*days),
            _ => None,
        })?),
        Wire::Timestamp => PgArray::Timestamp(collect(values, |v| match v {
            Value::Timestamp { micros } => pg_micros(*micros),
            _ => None,
        })?),
        Wire::Timestamptz => PgArray::Timestamptz(collect(values, |v| match v {
            Value::TimestampTz(text) => zoned_micros(text),
            _ => None,
        })?),
        Wire::Uuid => PgArray::Uuid(collect(values, |v| match v {
            Value::Uuid(text) => parse_uuid(text),
            _ => None,
        })?),
    })
}

/// One column's values as the array parameter for a column of type `target`: binary when every
/// value fits the target's binary form, else text (PostgreSQL's text input format).
pub fn column_array<'a, I>(values: I, target: &str) -> Result<PgArray, RenderError>
where
    I: Iterator<Item = &'a Value> + Clone,
{
    let family = type_family(target);
    let wire = values
        .clone()
        .find(|v| !v.is_null())
        .and_then(|sample| wire_for(sample, &family));
    if let Some(array) = wire.and_then(|w| binary(w, values.clone())) {
        return Ok(array);
    }
    let mut text = TextArray::default();
    for value in values {
        text.push(value.to_pg_text_cow()?.as_deref())?;
    }
    Ok(PgArray::Text(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_debezium::temporal::days_from_civil;

    fn array(values: &[Value], target: &str) -> PgArray {
        column_array(values.iter(), target).expect("renders")
    }

    #[test]
    fn picks_the_binary_form_when_value_and_column_agree_and_text_otherwise() {
        let ts = Value::TimestampTz("2024-02-29T23:59:59.123456+02:00".into());
        let cases: Vec<(Value, &str, &str)> = vec![
            (Value::Int(7), "bigint", "bigint"),
            (Value::Int(7), "integer", "bigint"),
            (Value::Int(7), "smallint", "bigint"),
            (Value::Int(7), "numeric(10,0)", "text"),
            (Value::Float(1.5), "double precision", "double precision"),
            (Value::Float(1.5), "real", "double precision"),
            (Value::Float(1.5), "numeric", "text"),
            (Value::Bool(true), "boolean", "boolean"),
            (Value::Bool(true), "bit(1)", "text"),
            (Value::Bytes(vec![0, 255]), "bytea", "bytea"),
            (Value::Bytes(vec![1]), "bit varying", "text"),
            (Value::Date { days: 0 }, "date", "date"),
            (
                Value::Timestamp { micros: 0 },
                "timestamp without time zone",
                "timestamp without time zone",
            ),
            (
                Value::Timestamp { micros: 0 },
                "timestamp(3) without time zone",
                "timestamp without time zone",
            ),
            (
                Value::Timestamp { micros: 0 },
                "timestamp with time zone",
                "text",
            ),
            (
                ts.clone(),
                "timestamp with time zone",
                "timestamp with time zone",
            ),
            (ts, "timestamp without time zone", "text"),
            (
                Value::Uuid("0e7c3a52-6f1b-4a4e-9d55-6a0b8d1e2f30".into()),
                "uuid",
                "uuid",
            ),
            (Value::Decimal("1.50".into()), "numeric(12,2)", "text"),
            (Value::Text("a".into()), "character varying(3)", "text"),
            (Value::Json("{}".into()), "jsonb", "text"),
        ];
        for (value, target, expected) in cases {
            let got = array(&[Value::Null, value.clone()], target);
            assert_eq!(got.element_type(), expected, "{value:?} into {target}");
            assert_eq!(got.len(), 2);
        }
    }

    #[test]
    fn a_value_that_does_not_fit_sends_the_whole_column_as_text() {
        let values = [
            Value::TimestampTz("2024-01-01T00:00:00Z".into()),
            Value::TimestampTz("2024-01-01T00:00:00.123456789Z".into()),
        ];
        let got = array(&values, "timestamp with time zone");
        assert_eq!(
            got,
            PgArray::Text(TextArray::from_iter([
                Some("2024-01-01T00:00:00Z"),
                Some("2024-01-01T00:00:00.123456789Z")
            ]))
        );
        let bad_uuid = [Value::Uuid("not-a-uuid".into())];
        assert!(matches!(array(&bad_uuid, "uuid"), PgArray::Text(_)));
        let mixed = [Value::Int(1), Value::Text("x".into())];
        assert!(matches!(array(&mixed, "bigint"), PgArray::Text(_)));
    }

    #[test]
    fn binary_values_are_exact() {
        // 2000-01-01 is day 0 of PostgreSQL's epoch; 1970-01-01 is day -10957.
        assert_eq!(
            array(
                &[Value::Date { days: 10_957 }, Value::Date { days: 0 }],
                "date"
            ),
            PgArray::Date(vec![Some(PgDate(0)), Some(PgDate(-10_957))])
        );
        assert_eq!(
            array(
                &[Value::Timestamp {
                    micros: PG_EPOCH_MICROS + 1
                }],
                "timestamp without time zone"
            ),
            PgArray::Timestamp(vec![Some(PgMicros(1))])
        );
        // +02:00 is two hours ahead of UTC; fractions of fewer than six digits scale up.
        assert_eq!(
            zoned_micros("2000-01-01T02:00:00.5+02:00"),
            Some(PgMicros(500_000))
        );
        assert_eq!(
            zoned_micros("1999-12-31T23:59:59.999999Z"),
            Some(PgMicros(-1))
        );
        assert_eq!(
            days_from_civil(2000, 1, 1),
            PG_EPOCH_DAYS,
            "the two epochs are 10957 days apart"
        );
        assert_eq!(
            parse_uuid("000102030405060708090a0b0c0d0e0F"),
            Some(PgUuid([
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
            ]))
        );
        assert_eq!(parse_uuid("00010203-0405-0607-0809-0a0b0c0d0e0"), None);
        assert_eq!(
            parse_uuid("00010203-0405-0607-0809-0a0b0c0d0e0f"),
            parse_uuid("000102030405060708090a0b0c0d0e0f")
        );
        assert_eq!(parse_uuid("0001020304-05-0607-0809-0a0b0c0d0e0f"), None);
        let f = 0.1_f64 + 0.2;
        assert_eq!(
            array(&[Value::Float(f)], "double precision"),
            PgArray::Float8(vec![Some(f)])
        );
    }

    /// The pre-encoded text array is byte for byte what `tokio-postgres` writes for a
    /// `Vec<Option<String>>` bound to `text[]` (what the sink sent before).
    #[test]
    fn text_arrays_are_encoded_as_postgres_types_encodes_them() {
        let cases: Vec<Vec<Option<&str>>> = vec![
            vec![],
            vec![None],
            vec![Some("")],
            vec![Some("a"), None, Some("ünïcode ✓"), Some("{\"k\": [1, 2]}")],
        ];
        for case in cases {
            let ours = TextArray::from_iter(case.iter().copied());
            assert_eq!(ours.len(), case.len());
            let mut got = BytesMut::new();
            ours.to_sql_checked(&Type::TEXT_ARRAY, &mut got)
                .expect("encodes");
            let reference: Vec<Option<String>> =
                case.iter().map(|t| t.map(str::to_string)).collect();
            let mut want = BytesMut::new();
            reference
                .to_sql_checked(&Type::TEXT_ARRAY, &mut want)
                .expect("encodes");
            assert_eq!(got, want, "{case:?}");
        }
        assert!(TextArray::default()
            .to_sql_checked(&Type::INT8_ARRAY, &mut BytesMut::new())
            .is_err());
    }

    #[test]
    fn reads_text_into_text_columns_bare_and_casts_the_rest() {
        let text = PgArray::Text(TextArray::default());
        assert_eq!(text.read_as("u.c0", "character varying(3)"), "u.c0");
        assert_eq!(text.read_as("u.c0", "text"), "u.c0");
        assert_eq!(text.read_as("u.c0", "numeric(12,2)"), "u.c0::numeric(12,2)");
        assert_eq!(text.read_as("u.c0", "character(2)"), "u.c0::character(2)");
        let ints = PgArray::Int8(vec![]);
        assert_eq!(ints.read_as("u.c0", "bigint"), "u.c0");
        assert_eq!(ints.read_as("u.c0", "integer"), "u.c0::integer");
        assert_eq!(ints.placeholder(2), "$2::int8[]");
        assert_eq!(
            type_family("timestamp(3) with time zone"),
            "timestamp with time zone"
        );
        assert_eq!(type_family("numeric(12,2)"), "numeric");
    }
}
