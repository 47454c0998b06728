//! The cached-schema path (schema-directed payload reader, falling back to the JSON tree) gives
//! exactly what the full path gives: for every record below, a warm decoder (schema cached by an
//! earlier record with the same schema) and a fresh decoder (whose first decode parses the whole
//! document) return the same record or the same error. This equality is what makes the fast path
//! safe, so the table covers every logical type the decoder knows, nulls, defaults, escapes,
//! unicode, nested structs, arrays, maps, members out of order, extra and missing members,
//! NUMERIC decimals, and malformed payloads.

use lockstep_debezium::{DecodeError, Decoder, JsonConverterDecoder, Record};

/// `(field name, field schema JSON without "field")` of the test row.
const FIELDS: &[(&str, &str)] = &[
    ("i8", r#""type":"int8","optional":true"#),
    ("i16", r#""type":"int16","optional":true"#),
    ("i32", r#""type":"int32","optional":false"#),
    ("i64", r#""type":"int64","optional":true"#),
    ("f32", r#""type":"float","optional":true"#),
    ("f64", r#""type":"double","optional":true"#),
    ("flag", r#""type":"boolean","optional":true"#),
    ("text", r#""type":"string","optional":true"#),
    ("blob", r#""type":"bytes","optional":true"#),
    (
        "dec",
        r#""type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"}"#,
    ),
    (
        "vsd",
        r#""type":"struct","optional":true,"name":"io.debezium.data.VariableScaleDecimal","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}]"#,
    ),
    (
        "date",
        r#""type":"int32","optional":true,"name":"io.debezium.time.Date""#,
    ),
    (
        "cdate",
        r#""type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date""#,
    ),
    (
        "tmillis",
        r#""type":"int32","optional":true,"name":"io.debezium.time.Time""#,
    ),
    (
        "tmicros",
        r#""type":"int64","optional":true,"name":"io.debezium.time.MicroTime""#,
    ),
    (
        "tnanos",
        r#""type":"int64","optional":true,"name":"io.debezium.time.NanoTime""#,
    ),
    (
        "tsmillis",
        r#""type":"int64","optional":true,"name":"io.debezium.time.Timestamp""#,
    ),
    (
        "tsmicros",
        r#""type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp""#,
    ),
    (
        "tsnanos",
        r#""type":"int64","optional":true,"name":"io.debezium.time.NanoTimestamp""#,
    ),
    (
        "zts",
        r#""type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp""#,
    ),
    (
        "zt",
        r#""type":"string","optional":true,"name":"io.debezium.time.ZonedTime""#,
    ),
    (
        "yr",
        r#""type":"int32","optional":true,"name":"io.debezium.time.Year""#,
    ),
    (
        "dur",
        r#""type":"int64","optional":true,"name":"io.debezium.time.MicroDuration""#,
    ),
    (
        "ndur",
        r#""type":"int64","optional":true,"name":"io.debezium.time.NanoDuration""#,
    ),
    (
        "ival",
        r#""type":"string","optional":true,"name":"io.debezium.time.Interval""#,
    ),
    (
        "doc",
        r#""type":"string","optional":true,"name":"io.debezium.data.Json""#,
    ),
    (
        "uid",
        r#""type":"string","optional":true,"name":"io.debezium.data.Uuid""#,
    ),
    (
        "mood",
        r#""type":"string","optional":true,"name":"io.debezium.data.Enum","parameters":{"allowed":"happy,sad"}"#,
    ),
    (
        "moods",
        r#""type":"string","optional":true,"name":"io.debezium.data.EnumSet","parameters":{"allowed":"happy,sad"}"#,
    ),
    (
        "bits",
        r#""type":"bytes","optional":true,"name":"io.debezium.data.Bits","parameters":{"length":"9"}"#,
    ),
    (
        "xml",
        r#""type":"string","optional":true,"name":"io.debezium.data.Xml""#,
    ),
    (
        "path",
        r#""type":"string","optional":true,"name":"io.debezium.data.Ltree""#,
    ),
    (
        "geom",
        r#""type":"struct","optional":true,"name":"io.debezium.data.geometry.Geometry","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}]"#,
    ),
    (
        "geog",
        r#""type":"struct","optional":true,"name":"io.debezium.data.geometry.Geography","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}]"#,
    ),
    (
        "pt",
        r#""type":"struct","optional":true,"name":"io.debezium.data.geometry.Point","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}]"#,
    ),
    (
        "odd",
        r#""type":"int64","optional":true,"name":"com.example.Unknown""#,
    ),
    (
        "ints",
        r#""type":"array","optional":true,"items":{"type":"int32","optional":true}"#,
    ),
    (
        "days",
        r#""type":"array","optional":true,"items":{"type":"int32","optional":false,"name":"io.debezium.time.Date"}"#,
    ),
    (
        "attrs",
        r#""type":"map","optional":true,"keys":{"type":"string","optional":false},"values":{"type":"int64","optional":true}"#,
    ),
    (
        "codes",
        r#""type":"map","optional":true,"keys":{"type":"int32","optional":false},"values":{"type":"string","optional":true}"#,
    ),
    (
        "addr",
        r#""type":"struct","optional":true,"name":"com.example.Address","fields":[{"type":"string","optional":false,"field":"city"},{"type":"struct","optional":true,"field":"geo","fields":[{"type":"double","optional":false,"field":"lat"},{"type":"double","optional":false,"field":"lon"}]},{"type":"array","optional":true,"field":"lines","items":{"type":"string","optional":false}}]"#,
    ),
    ("dflt", r#""type":"int32","optional":false,"default":7"#),
];

/// A payload with every field set (the member order is the schema's, as JsonConverter writes).
const FULL: &[(&str, &str)] = &[
    ("i8", "-128"),
    ("i16", "32767"),
    ("i32", "-2147483648"),
    ("i64", "9223372036854775807"),
    ("f32", "1.1"),
    ("f64", "-2.5e-7"),
    ("flag", "true"),
    ("text", r#""plain text""#),
    ("blob", r#""3q2+7w==""#),
    ("dec", r#""ASNF""#),
    ("vsd", r#"{"scale":3,"value":"AeJA"}"#),
    ("date", "19782"),
    ("cdate", "-719163"),
    ("tmillis", "45296789"),
    ("tmicros", "45296789012"),
    ("tnanos", "45296789012345"),
    ("tsmillis", "1709200530123"),
    ("tsmicros", "1709200530123456"),
    ("tsnanos", "1709200530123456789"),
    ("zts", r#""2024-02-29T21:59:59.123456Z""#),
    ("zt", r#""21:59:59.5+02:00""#),
    ("yr", "2024"),
    ("dur", "90061000001"),
    ("ndur", "90061000001000"),
    ("ival", r#""P1Y2M3DT4H5M6.78S""#),
    ("doc", r#""{\"a\": [1, 2.50, \"x\"]}""#),
    ("uid", r#""f47ac10b-58cc-4372-a567-0e02b2c3d479""#),
    ("mood", r#""happy""#),
    ("moods", r#""happy,sad""#),
    ("bits", r#""/wE=""#),
    ("xml", r#""<a href=\"x\">y</a>""#),
    ("path", r#""Top.Science.Astronomy""#),
    (
        "geom",
        r#"{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":4326}"#,
    ),
    (
        "geog",
        r#"{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":null}"#,
    ),
    ("pt", r#"{"x":1.0,"y":2.0,"wkb":null,"srid":null}"#),
    ("odd", "42"),
    ("ints", "[1,null,-3]"),
    ("days", "[0,-1,19782]"),
    ("attrs", r#"{"x":1,"y":null,"x":3}"#),
    ("codes", r#"[[1,"one"],[2,null]]"#),
    (
        "addr",
        r#"{"city":"Oslo","geo":{"lat":59.91,"lon":10.75},"lines":["Karl Johans gate 1","0154"]}"#,
    ),
    ("dflt", "5"),
];

fn schema_json() -> String {
    let fields: Vec<String> = FIELDS
        .iter()
        .map(|(name, body)| format!(r#"{{{body},"field":"{name}"}}"#))
        .collect();
    format!(
        r#"{{"type":"struct","optional":false,"name":"test.public.all_types.Value","fields":[{}]}}"#,
        fields.join(",")
    )
}

fn object(members: &[(&str, &str)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(k, v)| format!(r#""{k}":{v}"#))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// `FULL` with the members in `changes` replaced (a `None` value removes the member).
fn full_with(changes: &[(&str, Option<&str>)]) -> String {
    let members: Vec<(&str, &str)> = FULL
        .iter()
        .filter_map(|&(k, v)| match changes.iter().find(|(c, _)| *c == k) {
            Some((_, Some(replacement))) => Some((k, *replacement)),
            Some((_, None)) => None,
            None => Some((k, v)),
        })
        .collect();
    object(&members)
}

fn record(schema: &str, payload: &str) -> Vec<u8> {
    format!(r#"{{"schema":{schema},"payload":{payload}}}"#).into_bytes()
}

/// Decodes `value` through a warm decoder (its schema cached from `primer`, and a second time
/// with the last-prefix shortcut) and through a fresh decoder, and checks all three agree.
fn assert_same(warm: &JsonConverterDecoder, primer: &[u8], value: &[u8], what: &str) {
    warm.decode(None, Some(primer))
        .unwrap_or_else(|e| panic!("{what}: the primer must decode: {e}"));
    let fresh = JsonConverterDecoder::new().decode(None, Some(value));
    let cached = warm.decode(None, Some(value));
    let again = warm.decode(None, Some(value));
    // Debug text: NaN floats compare unequal as values.
    let show = |r: &Result<Record, DecodeError>| format!("{r:?}");
    assert_eq!(show(&fresh), show(&cached), "{what}");
    assert_eq!(show(&fresh), show(&again), "{what} (second time)");
}

#[test]
fn every_type_and_layout_decodes_the_same_through_the_cache() {
    let schema = schema_json();
    let primer = record(&schema, &full_with(&[]));
    let nulls: Vec<(&str, Option<&str>)> = FIELDS
        .iter()
        .filter(|(_, body)| body.contains(r#""optional":true"#))
        .map(|(name, _)| (*name, Some("null")))
        .collect();
    let mut reordered: Vec<(&str, &str)> = FULL.to_vec();
    reordered.swap(0, 5);
    let reordered = object(&reordered);
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(&full_with(&[])).expect("JSON"),
    )
    .expect("pretty");
    let cases: Vec<(&str, String)> = vec![
        ("every field set", full_with(&[])),
        ("every optional field null", full_with(&nulls)),
        (
            "escapes and unicode in strings",
            full_with(&[
                (
                    "text",
                    Some(
                        r#""tab\there \"quoted\" back\\slash \/ \u00e9\u00E9 é 😀 \ud83d\ude00 \b\f\n\r end""#,
                    ),
                ),
                ("zts", Some(r#""2024-02-29T21:59:59\u002E123456Z""#)),
                ("doc", Some(r#""{\"k\": \"v\\u00e9\"}""#)),
                ("mood", Some(r#""s\u0061d""#)),
                ("path", Some(r#""""#)),
            ]),
        ),
        (
            "escaped member name",
            full_with(&[]).replacen(r#""i32""#, r#""\u0069\u0033\u0032""#, 1),
        ),
        ("members out of the schema's order", reordered),
        (
            "an extra member",
            full_with(&[]).replacen('{', r#"{"extra":[1,{"a":null}],"#, 1),
        ),
        ("a missing optional member", full_with(&[("text", None)])),
        ("a missing required member", full_with(&[("i32", None)])),
        (
            "a duplicated member",
            full_with(&[]).replacen('{', r#"{"text":"first","#, 1),
        ),
        ("pretty-printed payload", pretty),
        (
            "required field null with a default",
            full_with(&[("dflt", Some("null"))]),
        ),
        (
            "required field null without a default",
            full_with(&[("i32", Some("null"))]),
        ),
        (
            "non-finite floats",
            full_with(&[
                ("f32", Some(r#""NaN""#)),
                ("f64", Some(r#""-Infinity""#)),
                (
                    "pt",
                    Some(r#"{"x":"Infinity","y":0,"wkb":null,"srid":null}"#),
                ),
            ]),
        ),
        (
            "float written as a string",
            full_with(&[("f64", Some(r#""1.5""#))]),
        ),
        (
            "exponent floats",
            full_with(&[("f32", Some("3.4028235e38")), ("f64", Some("1E+300"))]),
        ),
        (
            "empty containers",
            full_with(&[
                ("ints", Some("[]")),
                ("attrs", Some("{}")),
                ("codes", Some("[]")),
                ("addr", Some(r#"{"city":"","geo":null,"lines":[]}"#)),
            ]),
        ),
        ("int out of range", full_with(&[("i8", Some("128"))])),
        ("int with a fraction", full_with(&[("i64", Some("1.0"))])),
        ("int with an exponent", full_with(&[("i32", Some("1e3"))])),
        (
            "negative zero",
            full_with(&[("i16", Some("-0")), ("f64", Some("-0.0"))]),
        ),
        ("int as a string", full_with(&[("i32", Some(r#""5""#))])),
        ("bad number grammar", full_with(&[("i32", Some("01"))])),
        (
            "bad base64",
            full_with(&[("blob", Some(r#""not base64!""#))]),
        ),
        ("empty Decimal bytes", full_with(&[("dec", Some(r#""""#))])),
        (
            "Date out of int32",
            full_with(&[("date", Some("2147483648"))]),
        ),
        (
            "Timestamp overflow",
            full_with(&[("tsmillis", Some("9223372036854775807"))]),
        ),
        ("boolean as a number", full_with(&[("flag", Some("1"))])),
        ("bad literal", full_with(&[("flag", Some("tru"))])),
        ("struct as an array", full_with(&[("addr", Some("[]"))])),
        ("array as an object", full_with(&[("ints", Some("{}"))])),
        (
            "map pair of three",
            full_with(&[("codes", Some("[[1,\"a\",2]]"))]),
        ),
        (
            "map with object keys the wrong way",
            full_with(&[("codes", Some(r#"{"1":"a"}"#))]),
        ),
        (
            "nested struct missing a required member",
            full_with(&[("addr", Some(r#"{"geo":null,"lines":null}"#))]),
        ),
        (
            "geometry without srid member",
            full_with(&[("geom", Some(r#"{"wkb":"AQ=="}"#))]),
        ),
        ("unterminated string", full_with(&[("text", Some("\"abc"))])),
        (
            "control character in a string",
            full_with(&[("text", Some("\"a\u{1}b\""))]),
        ),
        ("trailing comma", full_with(&[]).replacen('}', ",}", 1)),
        ("payload null", "null".to_string()),
        ("payload a number", "1".to_string()),
        ("payload an empty object", "{}".to_string()),
    ];
    let warm = JsonConverterDecoder::new();
    for (what, payload) in &cases {
        assert_same(&warm, &primer, &record(&schema, payload), what);
    }
    // Bytes around the payload.
    let full = full_with(&[]);
    let around: Vec<(&str, String)> = vec![
        (
            "trailing garbage",
            format!(r#"{{"schema":{schema},"payload":{full}}} x"#),
        ),
        (
            "form feed after the payload",
            format!("{{\"schema\":{schema},\"payload\":{full}\u{c}}}"),
        ),
        (
            "whitespace around",
            format!("{{\"schema\":{schema} , \"payload\" :\n {full}\r\n}}\t"),
        ),
        (
            "a second schema after the payload",
            format!(r#"{{"schema":{schema},"payload":{full},"schema":{{"type":"int32"}}}}"#),
        ),
        (
            "the payload cut short",
            format!(
                r#"{{"schema":{schema},"payload":{}"#,
                &full[..full.len() / 2]
            ),
        ),
        (
            "no closing brace",
            format!(r#"{{"schema":{schema},"payload":{full}"#),
        ),
        (
            "invalid UTF-8 in a string",
            format!(
                r#"{{"schema":{schema},"payload":{}}}"#,
                full_with(&[("text", Some("\"\u{FFFF}\""))])
            )
            .replace('\u{FFFF}', "\u{1}"),
        ),
    ];
    for (what, bytes) in &around {
        assert_same(&warm, &primer, bytes.as_bytes(), what);
    }
    let mut bad_utf8 = record(&schema, &full_with(&[("text", Some("\"XX\""))]));
    let at = bad_utf8
        .windows(4)
        .position(|w| w == b"\"XX\"")
        .expect("marker");
    bad_utf8[at + 1] = 0xff;
    bad_utf8[at + 2] = 0xfe;
    assert_same(&warm, &primer, &bad_utf8, "invalid UTF-8 in a string");
}

#[test]
fn decimal_numeric_format_decodes_the_same_through_the_cache() {
    let schema = r#"{"type":"struct","optional":false,"name":"t.Value","fields":[{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"amount"},{"type":"array","optional":true,"items":{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0"}},"field":"list"}]}"#;
    let primer = record(schema, r#"{"amount":1.5,"list":[1]}"#);
    let warm = JsonConverterDecoder::new();
    for payload in [
        r#"{"amount":12345678901234567890.123456789,"list":[1,-2,3.5e2,null]}"#,
        r#"{"amount":-0.5,"list":[]}"#,
        r#"{"amount":1e-2,"list":null}"#,
        r#"{"amount":"AQ==","list":["AQ=="]}"#,
        r#"{"amount":1.,"list":null}"#,
        r#"{"amount":true,"list":null}"#,
    ] {
        assert_same(&warm, &primer, &record(schema, payload), payload);
    }
}

#[test]
fn debezium_change_events_decode_the_same_through_the_cache() {
    // The benchmark's shape: an envelope with before/after rows, a source block and a key.
    let row_fields = r#"[{"type":"int64","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"born"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"payload"},{"type":"double","optional":true,"field":"score"}]"#;
    let row = |field: &str| {
        format!(
            r#"{{"type":"struct","fields":{row_fields},"optional":true,"name":"b.public.t.Value","field":"{field}"}}"#
        )
    };
    let schema = format!(
        r#"{{"type":"struct","fields":[{},{},{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"version"}},{{"type":"string","optional":false,"field":"connector"}},{{"type":"string","optional":false,"field":"name"}},{{"type":"int64","optional":false,"field":"ts_ms"}},{{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{{"allowed":"true,last,false,incremental"}},"default":"false","field":"snapshot"}},{{"type":"string","optional":false,"field":"db"}},{{"type":"string","optional":false,"field":"schema"}},{{"type":"string","optional":false,"field":"table"}},{{"type":"int64","optional":true,"field":"txId"}},{{"type":"int64","optional":true,"field":"lsn"}}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}}],"optional":false,"name":"b.public.t.Envelope","version":2}}"#,
        row("before"),
        row("after")
    );
    let key_schema = r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"b.public.t.Key"}"#;
    let source = r#"{"version":"3.6.3.Final","connector":"postgresql","name":"b","ts_ms":1,"snapshot":"false","db":"bench","schema":"public","table":"t","txId":7,"lsn":64}"#;
    let after = r#"{"id":1,"name":"customer 1 \"quoted\" \\ tab\there","amount":"ASNF","born":-3650,"payload":"{\"id\": 1, \"tags\": [\"a\"]}","score":1.125}"#;
    let deleted = r#"{"id":1,"name":"","amount":null,"born":null,"payload":null,"score":null}"#;
    let value = |before: &str, after: &str, op: &str| {
        record(
            &schema,
            &format!(
                r#"{{"before":{before},"after":{after},"source":{source},"op":"{op}","ts_ms":2}}"#
            ),
        )
    };
    let key = |id: &str| record(key_schema, &format!(r#"{{"id":{id}}}"#));
    let warm = JsonConverterDecoder::new();
    let primer = value("null", after, "c");
    warm.decode(Some(&key("1")), Some(&primer))
        .expect("primer decodes");
    /// What, key bytes, value bytes.
    type Event<'a> = (&'a str, Vec<u8>, Option<Vec<u8>>);
    let events: Vec<Event> = vec![
        ("insert", key("2"), Some(value("null", after, "c"))),
        ("update", key("1"), Some(value(after, after, "u"))),
        ("delete", key("1"), Some(value(deleted, "null", "d"))),
        ("tombstone", key("1"), None),
        (
            "insert without after",
            key("1"),
            Some(value("null", "null", "c")),
        ),
        ("unknown op", key("1"), Some(value("null", after, "x"))),
        (
            "snapshot null",
            key("1"),
            Some(
                String::from_utf8(value("null", after, "r"))
                    .expect("utf8")
                    .replace(r#""snapshot":"false""#, r#""snapshot":null"#)
                    .into_bytes(),
            ),
        ),
        (
            "key out of range",
            key("9223372036854775808"),
            Some(value("null", after, "c")),
        ),
        (
            "key not a number",
            key("\"1\""),
            Some(value("null", after, "c")),
        ),
    ];
    for (what, k, v) in &events {
        let fresh = JsonConverterDecoder::new().decode(Some(k), v.as_deref());
        let cached = warm.decode(Some(k), v.as_deref());
        assert_eq!(format!("{fresh:?}"), format!("{cached:?}"), "{what}");
    }
}

#[test]
fn mutated_payloads_decode_the_same_through_the_cache() {
    // Random edits of the payload, biased towards JSON-significant bytes: whatever the edit
    // makes of the record (another value, another layout, an error), the cache agrees.
    struct XorShift(u64);
    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }
    const ALPHABET: &[u8] = b"{}[]\",:0123456789-.eE+ntfalsru\\ \t\x0c\x00\x01\xc3\xa9\xff";
    let schema = schema_json();
    let primer = record(&schema, &full_with(&[]));
    let payload_start = primer.len() - full_with(&[]).len() - 1;
    let warm = JsonConverterDecoder::new();
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for round in 0..3000 {
        let mut bytes = primer.clone();
        for _ in 0..1 + rng.below(3) {
            let i = payload_start + rng.below(bytes.len() - payload_start);
            let c = ALPHABET[rng.below(ALPHABET.len())];
            match rng.below(3) {
                0 => bytes[i] = c,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, c),
            }
        }
        assert_same(
            &warm,
            &primer,
            &bytes,
            &format!(
                "round {round}: {}",
                String::from_utf8_lossy(&bytes[payload_start..])
            ),
        );
    }
}
