//! A small, strict JSON reader that keeps numbers as their original text.
//!
//! `serde_json` (without the workspace-wide `arbitrary_precision` feature,
//! which would change number handling for every crate in the workspace)
//! turns `12345678901234567890.123456789` into an `f64`. Exact decimals must
//! never pass through `f64`, so the JsonConverter decoder reads the record with
//! this reader instead. It is iterative-with-a-depth-limit (no stack overflow
//! on hostile nesting), never panics on any input, and reports the byte
//! offset of the first problem.

use std::borrow::Cow;

/// A parsed JSON document. Numbers keep their source text (already validated
/// against the JSON grammar); object members keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written, e.g. `-12.50e3`.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Maximum nesting depth accepted; Debezium envelopes are a handful deep.
pub const MAX_DEPTH: usize = 256;

/// Why a document is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonSyntaxError {
    /// Byte offset of the problem.
    pub offset: usize,
    pub message: String,
}

impl Json {
    /// The member `name` of an object (the last one if it is duplicated, as
    /// Jackson does), `None` for a missing member or a non-object.
    pub fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the JSON type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// Serialise back to compact JSON text (numbers verbatim).
    pub fn to_json_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_json_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_text(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_text(out);
                }
                out.push('}');
            }
        }
    }
}

/// Append `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parse a complete JSON document (surrounding whitespace allowed).
pub fn parse(input: &[u8]) -> Result<Json, JsonSyntaxError> {
    let mut p = Parser { s: input, i: 0 };
    // Skip a UTF-8 byte order mark, which some producers prepend.
    if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
        p.i = 3;
    }
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected trailing characters after the JSON document"));
    }
    Ok(v)
}

/// A position in a JSON text. The crate's schema-directed payload reader
/// ([`crate::payload`]) walks a payload with the same primitives (whitespace, strings, numbers)
/// as [`parse`], so both accept exactly the same texts for them.
pub(crate) struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    /// A parser at byte `i` of `s`.
    pub(crate) fn at(s: &'a [u8], i: usize) -> Parser<'a> {
        Parser { s, i }
    }

    /// The current byte offset.
    pub(crate) fn pos(&self) -> usize {
        self.i
    }

    fn err(&self, msg: &str) -> JsonSyntaxError {
        JsonSyntaxError {
            offset: self.i,
            message: msg.to_string(),
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return; not form feed).
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Consumes `text` if the input continues with it.
    pub(crate) fn eat(&mut self, text: &[u8]) -> bool {
        let found = self.s.get(self.i..self.i + text.len()) == Some(text);
        if found {
            self.i += text.len();
        }
        found
    }

    /// Consumes the string token `"text"` if the input continues with it, comparing bytes only
    /// (no UTF-8 check, no copy). A `text` with a quote, backslash or control character, which
    /// JSON writes escaped, is never matched here.
    pub(crate) fn eat_plain_string(&mut self, text: &str) -> bool {
        let text = text.as_bytes();
        let end = self.i + 1 + text.len();
        let found = self.peek() == Some(b'"')
            && self.s.get(self.i + 1..end) == Some(text)
            && self.s.get(end) == Some(&b'"')
            && !text.iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20);
        if found {
            self.i = end + 1;
        }
        found
    }

    fn literal(&mut self, word: &[u8], v: Json) -> Result<Json, JsonSyntaxError> {
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonSyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting deeper than 256 levels"));
        }
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.err("expected ',' or ']' in array")),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("expected a string object key"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err("expected ':' after object key"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    members.push((k, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return Err(self.err("expected ',' or '}' in object")),
                    }
                }
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Json, JsonSyntaxError> {
        Ok(Json::Number(self.number_text()?.to_string()))
    }

    /// The text of the number at the current position, checked against the JSON grammar, borrowed
    /// from the input.
    pub(crate) fn number_text(&mut self) -> Result<&'a str, JsonSyntaxError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits in exponent"));
            }
        }
        // The slice is ASCII by construction, so this never fails.
        std::str::from_utf8(self.s.get(start..self.i).unwrap_or_default())
            .map_err(|_| self.err("invalid number"))
    }

    fn hex4(&mut self) -> Result<u32, JsonSyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = v * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonSyntaxError> {
        self.string_cow().map(Cow::into_owned)
    }

    /// The string at the current position (precondition: the current byte is '"'), borrowed from
    /// the input when it has no escapes (most strings): one UTF-8 check of the slice, no copy.
    /// A string with escapes is decoded byte by byte from its first escape on. Errors (offsets
    /// and messages) are the same either way.
    pub(crate) fn string_cow(&mut self) -> Result<Cow<'a, str>, JsonSyntaxError> {
        self.i += 1;
        let text = self.plain_run();
        if self.peek() == Some(b'"') {
            self.i += 1;
            return std::str::from_utf8(text)
                .map(Cow::Borrowed)
                .map_err(|e| JsonSyntaxError {
                    offset: self.i,
                    message: format!("string is not valid UTF-8: {e}"),
                });
        }
        // The raw bytes up to the closing quote bound the decoded length (an escape is never
        // shorter than what it stands for): one allocation.
        let mut out: Vec<u8> = Vec::with_capacity(text.len() + self.raw_string_rest());
        out.extend_from_slice(text);
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out)
                        .map(Cow::Owned)
                        .map_err(|e| JsonSyntaxError {
                            offset: self.i,
                            message: format!("string is not valid UTF-8: {e}"),
                        });
                }
                b'\\' => {
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(self.err("unpaired UTF-16 surrogate in \\u escape"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("invalid low surrogate in \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.err("unpaired UTF-16 surrogate in \\u escape"));
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(c) => c,
                                None => return Err(self.err("invalid \\u escape")),
                            }
                        }
                        _ => return Err(self.err("invalid escape character")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1F => return Err(self.err("unescaped control character in string")),
                _ => out.extend_from_slice(self.plain_run()),
            }
        }
    }

    /// The number of bytes from the current position to the closing quote of the string being
    /// read (escapes skipped, nothing checked; to the end of the input if there is none).
    fn raw_string_rest(&self) -> usize {
        let rest = self.s.get(self.i..).unwrap_or_default();
        let mut j = 0;
        while let Some(&c) = rest.get(j) {
            match c {
                b'"' => return j,
                b'\\' => j += 2,
                _ => j += 1,
            }
        }
        rest.len()
    }

    /// Consumes and returns the bytes from the current position up to the next quote, backslash
    /// or control character (or the end): the part of a string that is copied as it is.
    fn plain_run(&mut self) -> &'a [u8] {
        let rest = self.s.get(self.i..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .unwrap_or(rest.len());
        self.i += len;
        rest.get(..len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents_keeping_number_text() {
        let j = parse(br#" {"a": [1, -2.50, 3e+2, 12345678901234567890.123456789], "b": null, "c": true, "d": "x\u00e9\ud83d\ude00\n"} "#).unwrap();
        assert_eq!(
            j.get("a"),
            Some(&Json::Array(vec![
                Json::Number("1".into()),
                Json::Number("-2.50".into()),
                Json::Number("3e+2".into()),
                Json::Number("12345678901234567890.123456789".into()),
            ]))
        );
        assert_eq!(j.get("b"), Some(&Json::Null));
        assert_eq!(j.get("c"), Some(&Json::Bool(true)));
        assert_eq!(j.get("d").and_then(Json::as_str), Some("xé😀\n"));
        assert_eq!(j.get("zz"), None);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let j = parse(br#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(j.get("a"), Some(&Json::Number("2".into())));
    }

    #[test]
    fn round_trips_text() {
        let src = r#"{"a":[1,-2.50,"q\"\\\n\u0001"],"b":{}}"#;
        let j = parse(src.as_bytes()).unwrap();
        assert_eq!(j.to_json_text(), src);
    }

    #[test]
    fn rejects_malformed_documents_without_panicking() {
        let bad: &[&[u8]] = &[
            b"",
            b"   ",
            b"{",
            b"[1,",
            b"[1 2]",
            b"{\"a\" 1}",
            b"{a:1}",
            b"01",
            b"-",
            b"1.",
            b"1e",
            b"nul",
            b"\"abc",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\x01\"",
            b"\"\xff\xfe\"",
            b"{} x",
            b"NaN",
            b"\xEF\xBB",
        ];
        for b in bad {
            assert!(
                parse(b).is_err(),
                "should reject {:?}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let deep = "[".repeat(100_000);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert!(e.message.contains("nesting"));
        let ok = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn every_prefix_of_a_document_is_handled() {
        let doc = br#"{"schema":{"type":"struct","fields":[]},"payload":{"x":[1.5,"a\u0041",null,true]}}"#;
        for n in 0..doc.len() {
            let _ = parse(&doc[..n]);
        }
        assert!(parse(doc).is_ok());
    }
}
