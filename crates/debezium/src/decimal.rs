//! Exact decimal handling: two's-complement unscaled bytes (Connect `Decimal`,
//! Debezium `VariableScaleDecimal`) and JSON number text, both rendered as a
//! canonical plain decimal string such as `-12345.67`. Nothing here touches
//! floating point.

/// Largest unscaled value accepted, in bytes: 16 KiB is about 39,000
/// decimal digits, far beyond any real column, and bounds the quadratic base
/// conversion (a hostile record cannot make decoding slow).
pub const MAX_UNSCALED_BYTES: usize = 16 * 1024;

/// Largest |scale| or |exponent| accepted (a scale is an `i32` on the wire and
/// a hostile one must not make us allocate gigabytes of zeros).
pub const MAX_SCALE: i64 = 100_000;

/// Why a decimal cannot be decoded. The caller adds the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalError(pub String);

/// Decimal digits of the unsigned big-endian magnitude `bytes` (no sign, no
/// leading zeros; "0" for zero).
fn magnitude_to_digits(bytes: &[u8]) -> String {
    // Little-endian limbs in base 1e9, fed three bytes at a time
    // (2^24 * 1e9 < 2^64, so nothing overflows).
    const BASE: u64 = 1_000_000_000;
    let mut limbs: Vec<u32> = Vec::new();
    let head = bytes.len() % 3;
    let (first, rest) = bytes.split_at(head);
    let chunks = std::iter::once(first)
        .filter(|c| !c.is_empty())
        .chain(rest.chunks(3));
    for chunk in chunks {
        let mut carry: u64 = 0;
        for &b in chunk {
            carry = (carry << 8) | u64::from(b);
        }
        let factor: u64 = 1 << (8 * chunk.len());
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * factor + carry;
            *limb = (v % BASE) as u32;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push((carry % BASE) as u32);
            carry /= BASE;
        }
    }
    let mut out = String::new();
    match limbs.split_last() {
        None => out.push('0'),
        Some((top, rest)) => {
            out.push_str(&top.to_string());
            for limb in rest.iter().rev() {
                out.push_str(&format!("{limb:09}"));
            }
        }
    }
    out
}

/// Place a decimal point `scale` digits from the right of the unsigned digit
/// string `digits` (a negative scale multiplies by 10^-scale), prefixing `-`
/// when `negative` and the value is not zero.
fn place_point(negative: bool, digits: &str, scale: i64) -> String {
    let digits = digits.trim_start_matches('0');
    let is_zero = digits.is_empty();
    let digits = if is_zero { "0" } else { digits };
    let mut out = String::new();
    if negative && !is_zero {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(digits);
        if !is_zero {
            for _ in 0..(-scale) {
                out.push('0');
            }
        }
        return out;
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int_part, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        for _ in 0..(scale - digits.len()) {
            out.push('0');
        }
        out.push_str(if is_zero { "" } else { digits });
        if is_zero {
            // "0." + scale zeros, the loop above wrote scale - 1 of them.
            out.push('0');
        }
    }
    out
}

/// Decode a big-endian two's-complement unscaled integer with `scale`, the
/// encoding of Kafka Connect `Decimal` and Debezium `VariableScaleDecimal`.
pub fn from_unscaled_bytes(bytes: &[u8], scale: i64) -> Result<String, DecimalError> {
    if bytes.is_empty() {
        return Err(DecimalError(
            "the unscaled value has zero bytes (Java BigInteger needs at least one)".into(),
        ));
    }
    if bytes.len() > MAX_UNSCALED_BYTES {
        return Err(DecimalError(format!(
            "the unscaled value has {} bytes, more than the {MAX_UNSCALED_BYTES} accepted",
            bytes.len()
        )));
    }
    if !(-MAX_SCALE..=MAX_SCALE).contains(&scale) {
        return Err(DecimalError(format!(
            "scale {scale} is out of the accepted range ±{MAX_SCALE}"
        )));
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let digits = if negative {
        // Magnitude = two's complement: invert and add one.
        let mut mag: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in mag.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
        // All-0xFF.. inverted is all zeros + 1 handled above; an input of
        // 0x80 00.. inverts to 0x7F FF.. + 1 = 0x80 00.., which is the right
        // magnitude read as unsigned.
        magnitude_to_digits(&mag)
    } else {
        magnitude_to_digits(bytes)
    };
    Ok(place_point(negative, &digits, scale))
}

/// Canonicalise a JSON number (as written, e.g. `-1.50E+3`) into a plain
/// decimal string. When `min_scale` is given the fraction is padded with
/// zeros up to that many digits (never truncated: no digit is ever lost).
pub fn from_json_number(text: &str, min_scale: Option<i64>) -> Result<String, DecimalError> {
    let bad = || DecimalError(format!("'{text}' is not a decimal number"));
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(pos) => {
            let (m, e) = rest.split_at(pos);
            let e = e.get(1..).ok_or_else(bad)?;
            let e: i64 = e.parse().map_err(|_| bad())?;
            (m, e)
        }
        None => (rest, 0),
    };
    if !(-MAX_SCALE..=MAX_SCALE).contains(&exponent) {
        return Err(DecimalError(format!(
            "exponent of '{text}' is out of the accepted range ±{MAX_SCALE}"
        )));
    }
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let digits = format!("{int_part}{frac_part}");
    // value = digits * 10^-(scale)
    let mut scale = frac_part.len() as i64 - exponent;
    let mut digits = digits;
    if let Some(min) = min_scale {
        if min > scale && min <= MAX_SCALE {
            for _ in 0..(min - scale) {
                digits.push('0');
            }
            scale = min;
        }
    }
    if scale < 0 {
        // Plain rendering of a number like 1.2E+3 ("1200").
        for _ in 0..(-scale) {
            digits.push('0');
        }
        scale = 0;
    }
    Ok(place_point(negative, &digits, scale))
}

/// Whether `s` is a canonical decimal as produced by this module: optional
/// `-`, digits without a superfluous leading zero, optional `.digits`.
pub fn is_canonical(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int_part, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let int_ok = !int_part.is_empty()
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && (int_part == "0" || !int_part.starts_with('0'));
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    let zero = body.bytes().all(|b| b == b'0' || b == b'.');
    int_ok && frac_ok && !(s.starts_with('-') && zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(v: i128) -> Vec<u8> {
        // Minimal two's-complement big-endian bytes, like BigInteger.toByteArray.
        let full = v.to_be_bytes();
        let mut start = 0;
        while start < full.len() - 1 {
            let b = full[start];
            let next = full[start + 1];
            if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        full[start..].to_vec()
    }

    #[test]
    fn unscaled_bytes_table() {
        let cases: &[(i128, i64, &str)] = &[
            (0, 0, "0"),
            (0, 2, "0.00"),
            (1, 0, "1"),
            (-1, 0, "-1"),
            (1234567, 2, "12345.67"),
            (-1234567, 2, "-12345.67"),
            (5, 3, "0.005"),
            (-5, 3, "-0.005"),
            (127, 0, "127"),
            (128, 0, "128"),
            (-128, 0, "-128"),
            (-129, 0, "-129"),
            (255, 1, "25.5"),
            (-256, 1, "-25.6"),
            (12, -3, "12000"),
            (0, -3, "0"),
            (i64::MAX as i128, 0, "9223372036854775807"),
            (i64::MIN as i128, 0, "-9223372036854775808"),
            (i128::MAX, 10, "17014118346046923173168730371.5884105727"),
            (i128::MIN, 38, "-1.70141183460469231731687303715884105728"),
            (
                99999999999999999999999999999999999999,
                10,
                "9999999999999999999999999999.9999999999",
            ),
        ];
        for &(v, scale, want) in cases {
            assert_eq!(
                from_unscaled_bytes(&be(v), scale).unwrap(),
                want,
                "{v} scale {scale}"
            );
            assert!(is_canonical(want), "{want}");
        }
    }

    #[test]
    fn non_minimal_bytes_decode_the_same() {
        assert_eq!(from_unscaled_bytes(&[0, 0, 0, 1], 0).unwrap(), "1");
        assert_eq!(from_unscaled_bytes(&[0xFF, 0xFF, 0xFF], 0).unwrap(), "-1");
        assert_eq!(from_unscaled_bytes(&[0x80], 0).unwrap(), "-128");
        assert_eq!(
            from_unscaled_bytes(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0], 0).unwrap(),
            "-2361183241434822606848"
        );
    }

    #[test]
    fn unscaled_bytes_errors() {
        assert!(from_unscaled_bytes(&[], 0).is_err());
        assert!(from_unscaled_bytes(&[1], 1_000_000).is_err());
        assert!(from_unscaled_bytes(&[1], i64::MIN).is_err());
        assert!(from_unscaled_bytes(&vec![1u8; MAX_UNSCALED_BYTES + 1], 0).is_err());
    }

    #[test]
    fn largest_accepted_value_decodes_quickly_and_exactly() {
        // 0x7F FF FF .. = 2^(8n-1) - 1; check the digit count and the last digits.
        let bytes = {
            let mut b = vec![0xFFu8; MAX_UNSCALED_BYTES];
            b[0] = 0x7F;
            b
        };
        let start = std::time::Instant::now();
        let s = from_unscaled_bytes(&bytes, 0).unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // log10(2^131071) = 39456.6 -> 39457 digits.
        assert_eq!(s.len(), 39_457);
        // 2^131071 - 1 is a Mersenne number; 2^131071 mod 10 = 8 (cycle 2,4,8,6; 131071 mod 4 = 3).
        assert!(s.ends_with('7'), "{}", &s[s.len() - 5..]);
        // Every chunking of the same value agrees with byte-at-a-time maths.
        for len in 1..=10 {
            let b: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8 & 0x7F).collect();
            let mut expect: u128 = 0;
            for &x in &b {
                expect = expect * 256 + u128::from(x);
            }
            assert_eq!(
                from_unscaled_bytes(&b, 0).unwrap(),
                expect.to_string(),
                "len {len}"
            );
        }
    }

    #[test]
    fn json_number_table() {
        let cases: &[(&str, Option<i64>, &str)] = &[
            ("0", None, "0"),
            ("-0", None, "0"),
            ("-0.00", None, "0.00"),
            ("12345.67", Some(2), "12345.67"),
            ("12345.6", Some(2), "12345.60"),
            ("12345.678", Some(2), "12345.678"),
            ("7", Some(3), "7.000"),
            ("-1.5E+3", None, "-1500"),
            ("1.5e-3", None, "0.0015"),
            ("1E2", None, "100"),
            ("00012.30", None, "12.30"),
            (
                "12345678901234567890.123456789012345678",
                None,
                "12345678901234567890.123456789012345678",
            ),
        ];
        for &(text, min, want) in cases {
            assert_eq!(from_json_number(text, min).unwrap(), want, "{text}");
            assert!(is_canonical(want), "{want}");
        }
        for bad in [
            "",
            "-",
            "abc",
            "1.2.3",
            "1e",
            "1e99999999",
            "0x10",
            "1,5",
            ".",
        ] {
            assert!(from_json_number(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_check() {
        for ok in ["0", "1", "-1", "0.5", "-0.5", "10.00", "0.00"] {
            assert!(is_canonical(ok), "{ok}");
        }
        for bad in ["", "-", "01", "-0", "-0.0", "1.", ".5", "1e3", "+1"] {
            assert!(!is_canonical(bad), "{bad}");
        }
    }
}
