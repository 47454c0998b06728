//! Calendar arithmetic for Debezium's temporal encodings (days / ms / µs / ns
//! since the Unix epoch, and time-of-day counts), using the proleptic
//! Gregorian calendar with astronomical year numbering (year 0 = 1 BC), as
//! Java's `java.time` does.

/// A civil date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    /// Astronomical year: 0 is 1 BC, -1 is 2 BC.
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

/// Convert days since 1970-01-01 to a civil date (Howard Hinnant's
/// `civil_from_days`, valid for the whole `i64` day range we accept).
pub fn civil_from_days(days: i64) -> CivilDate {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    CivilDate {
        year: if m <= 2 { y + 1 } else { y },
        month: m,
        day: d,
    }
}

/// Inverse of [`civil_from_days`] (used by tests and by callers building
/// values).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Split a signed count of `units_per_day` units since the epoch into
/// (days, units within the day), flooring towards negative infinity so that
/// `-1 µs` is 1969-12-31 23:59:59.999999.
pub fn split_day(count: i64, units_per_day: i64) -> (i64, i64) {
    (
        count.div_euclid(units_per_day),
        count.rem_euclid(units_per_day),
    )
}

pub const MICROS_PER_DAY: i64 = 86_400_000_000;
pub const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// How a date's year is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YearStyle {
    /// PostgreSQL: years <= 0 are written as `YYYY-MM-DD BC` (year 0 = 1 BC).
    Postgres,
    /// ISO-8601 / MySQL: four digits, years outside 0..=9999 are an error
    /// for MySQL and signed for ISO.
    Iso,
}

/// `YYYY-MM-DD` (PostgreSQL adds ` BC` for years before 1 AD; the BC suffix is
/// returned separately so it can follow a time part).
pub fn format_date_parts(date: CivilDate, style: YearStyle) -> (String, &'static str) {
    match style {
        YearStyle::Postgres if date.year <= 0 => (
            format!("{:04}-{:02}-{:02}", 1 - date.year, date.month, date.day),
            " BC",
        ),
        _ => {
            if date.year < 0 {
                (
                    format!("-{:04}-{:02}-{:02}", -date.year, date.month, date.day),
                    "",
                )
            } else {
                (
                    format!("{:04}-{:02}-{:02}", date.year, date.month, date.day),
                    "",
                )
            }
        }
    }
}

/// Render a non-negative sub-second fraction of `digits` digits (6 for µs, 9
/// for ns), always written in full so the text is fixed-width.
fn fraction(frac: i64, digits: usize) -> String {
    format!(".{frac:0digits$}")
}

/// `HH:MM:SS.ffffff` for a time of day counted in units (`units_per_second`
/// 10^6 or 10^9). Negative values and values of 24 h or more (MySQL `TIME`
/// ranges to ±838:59:59, PostgreSQL accepts `24:00:00`) are written with a
/// sign and as many hour digits as needed.
pub fn format_time_of_day(count: i64, units_per_second: i64, frac_digits: usize) -> String {
    let negative = count < 0;
    let abs = count.unsigned_abs();
    let ups = units_per_second.unsigned_abs().max(1);
    let secs = abs / ups;
    let frac = abs % ups;
    let h = secs / 3600;
    let m = (secs / 60) % 60;
    let s = secs % 60;
    format!(
        "{}{:02}:{:02}:{:02}{}",
        if negative { "-" } else { "" },
        h,
        m,
        s,
        fraction(frac as i64, frac_digits)
    )
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (plus ` BC` for PostgreSQL before 1 AD) for a
/// count of units since the epoch, without time zone.
pub fn format_timestamp(
    count: i64,
    units_per_second: i64,
    frac_digits: usize,
    style: YearStyle,
) -> String {
    let units_per_day = units_per_second.saturating_mul(86_400).max(1);
    let (days, within) = split_day(count, units_per_day);
    let date = civil_from_days(days);
    let (d, bc) = format_date_parts(date, style);
    format!(
        "{d} {}{bc}",
        format_time_of_day(within, units_per_second, frac_digits)
    )
}

/// Civil year of a day count (for range checks).
pub fn year_of_days(days: i64) -> i64 {
    civil_from_days(days).year
}

/// Seconds east of UTC of an ISO-8601 offset: `Z`, `+HH`, `+HH:MM`, `+HHMM`, `+HH:MM:SS`.
fn parse_offset(s: &str) -> Option<i64> {
    if s == "Z" || s == "z" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = s.get(1..)?;
    let fields: Vec<&str> = if rest.contains(':') {
        rest.split(':').collect()
    } else if rest.len() == 4 {
        vec![rest.get(0..2)?, rest.get(2..4)?]
    } else {
        vec![rest]
    };
    if fields.len() > 3 {
        return None;
    }
    let mut seconds = 0;
    for (field, unit) in fields.iter().zip([3_600, 60, 1]) {
        if field.len() != 2 || !field.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        seconds += field.parse::<i64>().ok()? * unit;
    }
    Some(sign * seconds)
}

/// `HH:MM[:SS][.fraction]` followed by an offset: (seconds of the day, fraction digits, offset).
fn parse_time_with_offset(s: &str) -> Option<(i64, &str, i64)> {
    let end = s.find(['Z', 'z', '+', '-']).unwrap_or(s.len());
    let (clock, offset) = s.split_at(end);
    let offset = parse_offset(offset)?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let number = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<i64>().ok());
    let (h, m, sec) = (number(0)?, number(1)?, number(2)?);
    if h > 24 || m > 59 || sec > 60 {
        return None;
    }
    Some((h * 3_600 + m * 60 + sec, fraction, offset))
}

/// An ISO-8601 date-time with an offset (Debezium's `ZonedTimestamp`:
/// `2024-02-29T21:59:59.123456Z`, `+10000-01-01T00:00:00+01:00`) as the UTC
/// instant: (days since the epoch, seconds of that day, the fraction digits as given).
pub fn parse_zoned_timestamp(s: &str) -> Option<(i64, i64, &str)> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, s.get(1..)?),
        b'+' => (false, s.get(1..)?),
        _ => (false, s),
    };
    let year_end = body.find('-')?;
    let year_text = body.get(..year_end)?;
    if year_text.len() < 4 || !year_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = year_text.parse::<i64>().ok()?;
    let year = if negative { -year } else { year };
    let rest = body.get(year_end..)?;
    let (month, day, sep) = (rest.get(1..3)?, rest.get(4..6)?, rest.get(6..7)?);
    if rest.get(0..1)? != "-" || rest.get(3..4)? != "-" || !(sep == "T" || sep == " ") {
        return None;
    }
    let digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(month) || !digits(day) {
        return None;
    }
    let (month, day) = (month.parse::<u32>().ok()?, day.parse::<u32>().ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year.abs() > 1_000_000 {
        return None;
    }
    let (seconds_of_day, fraction, offset) = parse_time_with_offset(rest.get(7..)?)?;
    let total = days_from_civil(year, month, day) * 86_400 + seconds_of_day - offset;
    Some((total.div_euclid(86_400), total.rem_euclid(86_400), fraction))
}

/// An ISO-8601 time with an offset (Debezium's `ZonedTime`: `12:34:56.789Z`) as the UTC time
/// of day: (seconds of the day, the fraction digits as given).
pub fn parse_zoned_time(s: &str) -> Option<(i64, &str)> {
    let (seconds_of_day, fraction, offset) = parse_time_with_offset(s)?;
    Some(((seconds_of_day - offset).rem_euclid(86_400), fraction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_from_days_table() {
        let cases: &[(i64, (i64, u32, u32))] = &[
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (1, (1970, 1, 2)),
            (59, (1970, 3, 1)),
            (365, (1971, 1, 1)),
            (10_957, (2000, 1, 1)),
            (11_016, (2000, 2, 29)), // leap year divisible by 400
            (11_017, (2000, 3, 1)),
            (-25_508, (1900, 3, 1)),  // 1900 is not a leap year:
            (-25_509, (1900, 2, 28)), // the day before 1900-03-01
            (19_782, (2024, 2, 29)),
            (19_783, (2024, 3, 1)),
            (2_932_896, (9999, 12, 31)),
            (-719_162, (1, 1, 1)),
            (-719_163, (0, 12, 31)),
            (-719_528, (0, 1, 1)),
            (-141_427, (1582, 10, 15)),
        ];
        for &(days, (y, m, d)) in cases {
            assert_eq!(
                civil_from_days(days),
                CivilDate {
                    year: y,
                    month: m,
                    day: d
                },
                "days {days}"
            );
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn round_trip_over_a_wide_range() {
        let mut prev = civil_from_days(-800_000);
        for days in -799_999..3_000_000i64 {
            let c = civil_from_days(days);
            assert_eq!(days_from_civil(c.year, c.month, c.day), days);
            assert!(c > prev, "monotonic at {days}");
            assert!((1..=12).contains(&c.month) && (1..=31).contains(&c.day));
            prev = c;
        }
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for days in [
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            -1_000_000_000_000,
            1_000_000_000_000,
        ] {
            let c = civil_from_days(days);
            assert_eq!(days_from_civil(c.year, c.month, c.day), days);
        }
        let _ = format_timestamp(i64::MIN, 1_000_000, 6, YearStyle::Postgres);
        let _ = format_timestamp(i64::MAX, 1_000_000_000, 9, YearStyle::Iso);
        let _ = format_time_of_day(i64::MIN, 1_000_000, 6);
    }

    #[test]
    fn time_of_day_formatting() {
        assert_eq!(format_time_of_day(0, 1_000_000, 6), "00:00:00.000000");
        assert_eq!(
            format_time_of_day(45_296_789_012, 1_000_000, 6),
            "12:34:56.789012"
        );
        assert_eq!(
            format_time_of_day(MICROS_PER_DAY, 1_000_000, 6),
            "24:00:00.000000"
        );
        assert_eq!(
            format_time_of_day(-3_000_001, 1_000_000, 6),
            "-00:00:03.000001"
        );
        assert_eq!(
            format_time_of_day(3_020_399_000_000, 1_000_000, 6),
            "838:59:59.000000"
        );
        assert_eq!(
            format_time_of_day(1, 1_000_000_000, 9),
            "00:00:00.000000001"
        );
    }

    #[test]
    fn zoned_values_parse_to_utc() {
        let day = days_from_civil(2024, 2, 29);
        type Utc<'a> = Option<(i64, i64, &'a str)>;
        let cases: &[(&str, Utc)] = &[
            ("2024-02-29T21:59:59.123456Z", Some((day, 79_199, "123456"))),
            ("2024-02-29T23:30:00+02:00", Some((day, 77_400, ""))),
            ("2024-03-01T01:00:00.5+0200", Some((day, 82_800, "5"))),
            ("2024-02-29T00:00:00-01", Some((day, 3_600, ""))),
            ("1969-12-31T23:59:59.999999Z", Some((-1, 86_399, "999999"))),
            ("2024-02-29T21:59Z", Some((day, 79_140, ""))),
            ("2024-02-29T21:59:59", None),
            ("infinity", None),
            ("2024-13-01T00:00:00Z", None),
            ("2024-02-29T21:59:59.1234567890Z", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_zoned_timestamp(text), *expected, "{text}");
        }
        assert_eq!(parse_zoned_time("12:00:00.25Z"), Some((43_200, "25")));
        assert_eq!(parse_zoned_time("01:00:00+02:00"), Some((82_800, "")));
        assert_eq!(parse_zoned_time("12:00:00"), None);
    }

    #[test]
    fn timestamp_formatting() {
        assert_eq!(
            format_timestamp(0, 1_000_000, 6, YearStyle::Iso),
            "1970-01-01 00:00:00.000000"
        );
        assert_eq!(
            format_timestamp(-1, 1_000_000, 6, YearStyle::Iso),
            "1969-12-31 23:59:59.999999"
        );
        assert_eq!(
            format_timestamp(951_782_400_000_001, 1_000_000, 6, YearStyle::Iso),
            "2000-02-29 00:00:00.000001"
        );
        assert_eq!(
            format_timestamp(253_402_300_799_999_999, 1_000_000, 6, YearStyle::Postgres),
            "9999-12-31 23:59:59.999999"
        );
        // 1 BC (year 0) in PostgreSQL notation.
        let us = days_from_civil(0, 6, 15) * MICROS_PER_DAY + 1_000_000;
        assert_eq!(
            format_timestamp(us, 1_000_000, 6, YearStyle::Postgres),
            "0001-06-15 00:00:01.000000 BC"
        );
        assert_eq!(
            format_timestamp(us, 1_000_000, 6, YearStyle::Iso),
            "0000-06-15 00:00:01.000000"
        );
    }
}
