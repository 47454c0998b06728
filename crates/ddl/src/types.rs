//! Column types as data, engine-neutral, and the one question lockstep asks of a type change:
//! can every value of the old type be stored unchanged in the new one?

use std::fmt;

use serde::{Deserialize, Serialize};

/// A column type, normalised from PostgreSQL or MySQL/MariaDB spelling.
///
/// Lengths and precisions are `None` when the type is unconstrained (`numeric`, `varchar`,
/// `text`, `bytea`) or uses the engine's default (`timestamp` means 6 fractional digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SqlType {
    /// Two's-complement integer of `bytes` (1, 2, 3, 4 or 8) bytes.
    Int {
        bytes: u8,
        unsigned: bool,
    },
    /// Exact decimal; `precision: None` is PostgreSQL's unconstrained `numeric`.
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    /// IEEE float of 4 or 8 bytes.
    Float {
        bytes: u8,
    },
    Bool,
    /// Fixed-length, blank-padded character string.
    Char {
        length: u32,
    },
    /// Variable-length character string; `None` is unbounded.
    Varchar {
        length: Option<u32>,
    },
    /// Text; `max_bytes: None` is unbounded (PostgreSQL `text`), MySQL's TEXT types are bounded.
    Text {
        max_bytes: Option<u64>,
    },
    /// Binary string; `max_bytes: None` is unbounded (PostgreSQL `bytea`).
    Binary {
        max_bytes: Option<u64>,
    },
    Date,
    Time {
        precision: Option<u32>,
        with_time_zone: bool,
    },
    Timestamp {
        precision: Option<u32>,
        with_time_zone: bool,
    },
    Interval,
    Uuid,
    /// `json` (`binary: false`) or `jsonb` (`binary: true`).
    Json {
        binary: bool,
    },
    Array {
        element: Box<SqlType>,
    },
    /// A type lockstep does not model (enum, domain, geometry...), by its source spelling.
    Other {
        name: String,
    },
}

/// What a type change does to the values already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeChange {
    /// The same type: nothing changes (a `USING` expression can still rewrite values).
    Same,
    /// Every old value fits the new type unchanged.
    Widening,
    /// Same family, but some old values do not fit or are rounded.
    Narrowing,
    /// A different family: values are converted (`integer` to `text`, `json` to `jsonb`...).
    Conversion,
}

/// Default fractional-second digits of time types when none is written.
const DEFAULT_TIME_PRECISION: u32 = 6;

impl SqlType {
    pub fn int(bytes: u8) -> Self {
        SqlType::Int {
            bytes,
            unsigned: false,
        }
    }

    /// Whether lockstep knows this type's values well enough to plan around them.
    pub fn is_known(&self) -> bool {
        match self {
            SqlType::Other { .. } => false,
            SqlType::Array { element } => element.is_known(),
            _ => true,
        }
    }

    /// Decimal digits needed for every value of an integer type.
    fn int_digits(bytes: u8, unsigned: bool) -> u32 {
        match (bytes, unsigned) {
            (1, _) => 3,
            (2, _) => 5,
            (3, false) => 7,
            (3, true) => 8,
            (4, _) => 10,
            (_, false) => 19,
            (_, true) => 20,
        }
    }

    /// Classify a change from `self` to `to`. `None` when either type is not modelled: the
    /// caller must refuse, it cannot know whether values survive.
    pub fn change_to(&self, to: &SqlType) -> Option<TypeChange> {
        use SqlType::*;
        use TypeChange::*;
        if !self.is_known() || !to.is_known() {
            return None;
        }
        if self == to {
            return Some(Same);
        }
        let widen = |ok: bool| if ok { Widening } else { Narrowing };
        let within = |old: Option<u32>, new: Option<u32>| match (old, new) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(o), Some(n)) => n >= o,
        };
        let within64 = |old: Option<u64>, new: Option<u64>| match (old, new) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(o), Some(n)) => n >= o,
        };
        let change = match (self, to) {
            (
                Int {
                    bytes: a,
                    unsigned: ua,
                },
                Int {
                    bytes: b,
                    unsigned: ub,
                },
            ) => widen((ua == ub && b >= a) || (*ua && !*ub && b > a)),
            (Int { bytes, unsigned }, Decimal { precision, scale }) => {
                let digits = Self::int_digits(*bytes, *unsigned);
                widen(match precision {
                    None => true,
                    Some(p) => p.saturating_sub(scale.unwrap_or(0)) >= digits,
                })
            }
            (Int { bytes, .. }, Float { bytes: f }) => {
                widen((*f == 8 && *bytes <= 4) || *bytes <= 2)
            }
            (Decimal { .. }, Int { .. }) => Narrowing,
            (
                Decimal {
                    precision: p1,
                    scale: s1,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => match (p1, p2) {
                (_, None) => Widening,
                (None, Some(_)) => Narrowing,
                (Some(p1), Some(p2)) => {
                    let (s1, s2) = (s1.unwrap_or(0), s2.unwrap_or(0));
                    widen(s2 >= s1 && p2.saturating_sub(s2) >= p1.saturating_sub(s1))
                }
            },
            (Float { bytes: a }, Float { bytes: b }) => widen(b >= a),
            (Char { length: a }, Char { length: b }) => widen(b >= a),
            (Varchar { length: a }, Varchar { length: b }) => widen(within(*a, *b)),
            (Varchar { length }, Text { max_bytes }) => widen(match (length, max_bytes) {
                (_, None) => true,
                (None, Some(_)) => false,
                // utf8mb4: up to 4 bytes a character.
                (Some(n), Some(m)) => u64::from(*n) * 4 <= *m,
            }),
            (Text { max_bytes: None }, Varchar { length: None }) => Widening,
            (Text { .. }, Varchar { .. }) => Narrowing,
            (Text { max_bytes: a }, Text { max_bytes: b }) => widen(within64(*a, *b)),
            (Binary { max_bytes: a }, Binary { max_bytes: b }) => widen(within64(*a, *b)),
            (
                Time {
                    precision: a,
                    with_time_zone: za,
                },
                Time {
                    precision: b,
                    with_time_zone: zb,
                },
            )
            | (
                Timestamp {
                    precision: a,
                    with_time_zone: za,
                },
                Timestamp {
                    precision: b,
                    with_time_zone: zb,
                },
            ) => {
                if za != zb {
                    Conversion
                } else {
                    let a = a.unwrap_or(DEFAULT_TIME_PRECISION);
                    let b = b.unwrap_or(DEFAULT_TIME_PRECISION);
                    if a == b {
                        Same
                    } else {
                        widen(b > a)
                    }
                }
            }
            (Array { element: a }, Array { element: b }) => a.change_to(b)?,
            _ => Conversion,
        };
        Some(change)
    }
}

impl fmt::Display for SqlType {
    /// PostgreSQL's spelling where one exists (`format_type` style), MySQL's otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Int { bytes, unsigned } => {
                let name = match bytes {
                    1 => "tinyint",
                    2 => "smallint",
                    3 => "mediumint",
                    4 => "integer",
                    _ => "bigint",
                };
                f.write_str(name)?;
                if *unsigned {
                    f.write_str(" unsigned")?;
                }
                Ok(())
            }
            SqlType::Decimal { precision, scale } => match (precision, scale) {
                (None, _) => f.write_str("numeric"),
                (Some(p), None) => write!(f, "numeric({p})"),
                (Some(p), Some(s)) => write!(f, "numeric({p},{s})"),
            },
            SqlType::Float { bytes: 4 } => f.write_str("real"),
            SqlType::Float { .. } => f.write_str("double precision"),
            SqlType::Bool => f.write_str("boolean"),
            SqlType::Char { length } => write!(f, "character({length})"),
            SqlType::Varchar { length: None } => f.write_str("character varying"),
            SqlType::Varchar { length: Some(n) } => write!(f, "character varying({n})"),
            SqlType::Text { max_bytes: None } => f.write_str("text"),
            SqlType::Text { max_bytes: Some(n) } => match n {
                255 => f.write_str("tinytext"),
                65_535 => f.write_str("text(65535)"),
                _ if *n <= 16_777_215 => f.write_str("mediumtext"),
                _ => f.write_str("longtext"),
            },
            SqlType::Binary { max_bytes: None } => f.write_str("bytea"),
            SqlType::Binary { max_bytes: Some(n) } => write!(f, "varbinary({n})"),
            SqlType::Date => f.write_str("date"),
            SqlType::Time {
                precision,
                with_time_zone,
            } => write_time(f, "time", *precision, *with_time_zone),
            SqlType::Timestamp {
                precision,
                with_time_zone,
            } => write_time(f, "timestamp", *precision, *with_time_zone),
            SqlType::Interval => f.write_str("interval"),
            SqlType::Uuid => f.write_str("uuid"),
            SqlType::Json { binary: false } => f.write_str("json"),
            SqlType::Json { binary: true } => f.write_str("jsonb"),
            SqlType::Array { element } => write!(f, "{element}[]"),
            SqlType::Other { name } => f.write_str(name),
        }
    }
}

fn write_time(
    f: &mut fmt::Formatter<'_>,
    base: &str,
    precision: Option<u32>,
    tz: bool,
) -> fmt::Result {
    f.write_str(base)?;
    if let Some(p) = precision {
        write!(f, "({p})")?;
    }
    f.write_str(if tz {
        " with time zone"
    } else {
        " without time zone"
    })
}
