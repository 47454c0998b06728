//! Decoding realistic Debezium 3.x PostgreSQL events (JsonConverter,
//! schemas.enable=true). Fixtures are in tests/fixtures.

use lockstep_debezium::{
    ChangeEvent, ConnectType, DecodeError, Decoder, JsonConverterDecoder, Logical, Op, Record, Row,
    Snapshot, Value,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode(key: Option<&str>, value: Option<&str>) -> Result<Record, DecodeError> {
    let k = key.map(fixture);
    let v = value.map(fixture);
    JsonConverterDecoder::new().decode(k.as_deref(), v.as_deref())
}

fn change(key: Option<&str>, value: &str) -> ChangeEvent {
    match decode(key, Some(value)).unwrap() {
        Record::Change(c) => c,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn v<'a>(row: &'a Row, col: &str) -> &'a Value {
    row.value(col).unwrap_or_else(|| panic!("no column {col}"))
}

#[test]
fn create_event_decodes_every_column_type() {
    let ev = change(Some("accounts.key.json"), "accounts_create.value.json");
    assert_eq!(ev.op, Op::Create);
    assert!(ev.before.is_none());
    let key = ev.key.as_ref().unwrap();
    assert_eq!(key.columns.len(), 1);
    assert_eq!(&*key.columns[0].name, "id");
    assert_eq!(key.columns[0].value, Value::Int(1));
    assert_eq!(key.columns[0].column_type.connect_type, ConnectType::Int32);
    assert_eq!(key.schema_name.as_deref(), Some("bank.public.accounts.Key"));

    let after = ev.after.as_ref().unwrap();
    let names: Vec<&str> = after.columns.iter().map(|c| &*c.name).collect();
    assert_eq!(
        names,
        [
            "id",
            "balance",
            "rate",
            "opened_on",
            "created_at",
            "updated_at",
            "cutoff",
            "cutoff_tz",
            "grace",
            "profile",
            "ext_id",
            "photo",
            "tags",
            "status",
            "vip",
            "branch",
            "counter",
            "ratio",
            "statement",
            "path",
            "nickname",
            "flags",
            "limits"
        ]
    );
    let expected: Vec<(&str, Value)> = vec![
        ("id", Value::Int(1)),
        ("balance", Value::Decimal("12345.67".into())),
        ("rate", Value::Decimal("0.0015".into())),
        ("opened_on", Value::Date { days: 19_782 }),
        (
            "created_at",
            Value::Timestamp {
                micros: 1_709_164_800_123_456,
            },
        ),
        (
            "updated_at",
            Value::TimestampTz("2024-02-29T10:15:30.123456Z".into()),
        ),
        (
            "cutoff",
            Value::Time {
                micros: 45_296_789_012,
            },
        ),
        ("cutoff_tz", Value::TimeTz("10:15:30.5+01:00".into())),
        (
            "grace",
            Value::Duration {
                micros: 90_061_000_001,
            },
        ),
        (
            "profile",
            Value::Json(r#"{"tier": "gold", "limits": [1, 2]}"#.into()),
        ),
        (
            "ext_id",
            Value::Uuid("4f3c2a1e-8b7d-4c6e-9f0a-1b2c3d4e5f60".into()),
        ),
        ("photo", Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
        (
            "tags",
            Value::Array(vec![
                Value::Text("retail".into()),
                Value::Text("vip user".into()),
                Value::Null,
            ]),
        ),
        ("status", Value::Text("active".into())),
        ("vip", Value::Bool(true)),
        ("branch", Value::Int(-7)),
        // 2^53 + 1: would be rounded by an f64 JSON reader.
        ("counter", Value::Int(9_007_199_254_740_993)),
        ("ratio", Value::Float(0.1)),
        ("statement", Value::Text(r#"<stmt id="1"/>"#.into())),
        ("path", Value::Text("Top.Science.Astronomy".into())),
        ("nickname", Value::Text("Ada".into())),
        ("flags", Value::Bytes(vec![0x05, 0x08])),
        (
            "limits",
            Value::Array(vec![
                Value::Decimal("1000.00".into()),
                Value::Null,
                Value::Decimal("-0.05".into()),
            ]),
        ),
    ];
    for (col, want) in &expected {
        assert_eq!(v(after, col), want, "column {col}");
    }

    // Column types carry connect type + logical name + parameters.
    let ty = |c: &str| after.get(c).unwrap().column_type.clone();
    assert_eq!(
        ty("balance").logical,
        Logical::Decimal {
            scale: 2,
            precision: Some(12)
        }
    );
    assert!(!ty("balance").optional);
    assert_eq!(ty("rate").logical, Logical::VariableScaleDecimal);
    assert_eq!(ty("opened_on").logical, Logical::Date);
    assert_eq!(ty("created_at").logical, Logical::TimestampMicros);
    assert_eq!(ty("updated_at").logical, Logical::ZonedTimestamp);
    assert_eq!(ty("cutoff").logical, Logical::TimeMicros);
    assert_eq!(ty("cutoff_tz").logical, Logical::ZonedTime);
    assert_eq!(ty("grace").logical, Logical::MicroDuration);
    assert_eq!(ty("profile").logical, Logical::Json);
    assert_eq!(ty("ext_id").logical, Logical::Uuid);
    assert_eq!(ty("photo").logical, Logical::None);
    assert_eq!(ty("photo").connect_type, ConnectType::Bytes);
    assert_eq!(ty("tags").connect_type, ConnectType::Array);
    assert_eq!(
        ty("tags").element.as_ref().unwrap().connect_type,
        ConnectType::String
    );
    assert_eq!(
        ty("status").logical,
        Logical::Enum {
            allowed: vec!["active".into(), "frozen".into(), "closed".into()]
        }
    );
    assert_eq!(ty("statement").logical, Logical::Xml);
    assert_eq!(ty("path").logical, Logical::Ltree);
    assert_eq!(ty("flags").logical, Logical::Bits { length: Some(12) });
    // Unknown semantic type: base type kept, name kept, never an error.
    assert_eq!(
        ty("nickname").logical,
        Logical::Other("com.example.CustomDomain".into())
    );
    assert_eq!(
        ty("nickname").logical_name.as_deref(),
        Some("com.example.CustomDomain")
    );
    assert_eq!(ty("nickname").source_type_name(), Some("CITEXT"));
    assert_eq!(
        ty("limits").element.as_ref().unwrap().logical,
        Logical::Decimal {
            scale: 2,
            precision: None
        }
    );

    // Source block and envelope.
    let s = &ev.source;
    assert_eq!(s.connector.as_deref(), Some("postgresql"));
    assert_eq!(s.version.as_deref(), Some("3.0.7.Final"));
    assert_eq!(s.name.as_deref(), Some("bank"));
    assert_eq!(s.db.as_deref(), Some("core"));
    assert_eq!(s.schema.as_deref(), Some("public"));
    assert_eq!(s.table.as_deref(), Some("accounts"));
    assert_eq!(s.ts_ms, Some(1_709_200_530_123));
    assert_eq!(s.ts_us, Some(1_709_200_530_123_000));
    assert_eq!(s.ts_ns, Some(1_709_200_530_123_000_000));
    assert_eq!(s.snapshot, Some(Snapshot::False));
    assert_eq!(s.tx_id, Some(771));
    assert_eq!(s.lsn, Some(24_023_128));
    assert_eq!(s.xmin, None);
    assert_eq!(s.sequence.as_deref(), Some(r#"["24023119","24023128"]"#));
    assert!(s.extra.is_empty(), "{:?}", s.extra);
    assert_eq!(ev.times.ts_ms, Some(1_709_200_530_456));
    assert_eq!(ev.times.ts_us, Some(1_709_200_530_456_000));
    let tx = ev.transaction.as_ref().unwrap();
    assert_eq!(
        (tx.id.as_str(), tx.total_order, tx.data_collection_order),
        ("771:24023128", Some(1), Some(1))
    );
    assert_eq!(
        ev.envelope_name.as_deref(),
        Some("bank.public.accounts.Envelope")
    );
    assert_eq!(ev.table_id().to_string(), "core.public.accounts");
}

#[test]
fn update_delete_read_events() {
    let u = change(Some("accounts.key.json"), "accounts_update.value.json");
    assert_eq!(u.op, Op::Update);
    assert!(
        u.before.is_none(),
        "REPLICA IDENTITY DEFAULT gives no before image"
    );
    let after = u.after.as_ref().unwrap();
    assert_eq!(v(after, "balance"), &Value::Decimal("-12345.67".into()));
    assert_eq!(v(after, "status"), &Value::Text("frozen".into()));
    assert_eq!(v(after, "tags"), &Value::Array(vec![]));
    assert_eq!(u.source.tx_id, Some(772));
    assert!(u.transaction.is_none());

    let d = change(Some("accounts.key.json"), "accounts_delete.value.json");
    assert_eq!(d.op, Op::Delete);
    assert!(d.after.is_none());
    let before = d.before.as_ref().unwrap();
    assert_eq!(v(before, "id"), &Value::Int(1));
    assert_eq!(v(before, "balance"), &Value::Decimal("0.00".into()));
    assert_eq!(v(before, "status"), &Value::Null);
    assert_eq!(v(before, "rate"), &Value::Null);

    let r = change(Some("accounts.key.json"), "accounts_read.value.json");
    assert_eq!(r.op, Op::Read);
    assert_eq!(r.source.snapshot, Some(Snapshot::First));
    assert!(r.source.snapshot.as_ref().unwrap().is_snapshot());
    assert_eq!(v(r.after.as_ref().unwrap(), "id"), &Value::Int(2));
}

#[test]
fn numeric_decimal_format_keeps_exact_digits() {
    let ev = change(
        Some("accounts.key.json"),
        "accounts_create_numeric.value.json",
    );
    let after = ev.after.unwrap();
    // 9999999999999999.99 is 1e16 as an f64.
    assert_eq!(
        v(&after, "balance"),
        &Value::Decimal("9999999999999999.99".into())
    );
    assert_eq!(
        v(&after, "limits"),
        &Value::Array(vec![
            Value::Decimal("1000.50".into()),
            Value::Null,
            Value::Decimal("-0.05".into())
        ])
    );
}

#[test]
fn truncate_tombstone_message_heartbeat_and_keyless_records() {
    match decode(None, Some("accounts_truncate.value.json")).unwrap() {
        Record::Truncate(t) => {
            assert_eq!(t.source.table.as_deref(), Some("accounts"));
            assert_eq!(t.source.tx_id, Some(774));
            assert_eq!(t.times.ts_ms, Some(1_709_200_530_456));
        }
        other => panic!("{other:?}"),
    }
    match decode(Some("accounts.key.json"), None).unwrap() {
        Record::Tombstone { key: Some(k) } => assert_eq!(k.value("id"), Some(&Value::Int(1))),
        other => panic!("{other:?}"),
    }
    let d = JsonConverterDecoder::new();
    assert_eq!(
        d.decode(None, None).unwrap(),
        Record::Tombstone { key: None }
    );
    assert_eq!(
        d.decode(None, Some(b"")).unwrap(),
        Record::Tombstone { key: None }
    );
    assert_eq!(
        d.decode(None, Some(br#"{"schema":null,"payload":null}"#))
            .unwrap(),
        Record::Tombstone { key: None }
    );

    match decode(Some("message.key.json"), Some("message.value.json")).unwrap() {
        Record::Message(m) => {
            assert_eq!(m.prefix.as_deref(), Some("audit"));
            assert_eq!(m.content.as_deref(), Some(&b"hello"[..]));
            assert_eq!(m.source.connector.as_deref(), Some("postgresql"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decode(None, Some("heartbeat.value.json")).unwrap(),
        Record::Heartbeat {
            ts_ms: Some(1_709_200_530_999)
        }
    );
    // A table without a primary key: null record key, still decodable.
    let ev = change(None, "accounts_create.value.json");
    assert!(ev.key.is_none());
    assert!(ev.after.is_some());
}

#[test]
fn other_logical_types_and_containers() {
    let ev = change(None, "misc_create.value.json");
    let a = ev.after.unwrap();
    let cases: Vec<(&str, Value, Logical)> = vec![
        ("d", Value::Date { days: -1 }, Logical::Date),
        (
            "t",
            Value::Time {
                micros: 45_296_789_000,
            },
            Logical::TimeMillis,
        ),
        (
            "ts",
            Value::Timestamp { micros: -1_000 },
            Logical::TimestampMillis,
        ),
        ("dd", Value::Date { days: 2_932_896 }, Logical::Date),
        (
            "tm",
            Value::Time {
                micros: 86_399_999_000,
            },
            Logical::TimeMillis,
        ),
        (
            "tsm",
            Value::Timestamp {
                micros: 1_709_164_800_123_000,
            },
            Logical::TimestampMillis,
        ),
        (
            "nt",
            Value::TimeNanos {
                nanos: 45_296_789_012_345,
            },
            Logical::TimeNanos,
        ),
        (
            "nts",
            Value::TimestampNanos {
                nanos: 1_709_164_800_123_456_789,
            },
            Logical::TimestampNanos,
        ),
        ("yr", Value::Int(2024), Logical::Year),
        (
            "iv",
            Value::Interval("P1Y2M3DT4H5M6.78S".into()),
            Logical::Interval,
        ),
        ("nd", Value::Int(1500), Logical::NanoDuration),
        (
            "es",
            Value::Text("a,c".into()),
            Logical::EnumSet {
                allowed: vec!["a".into(), "b".into(), "c".into()],
            },
        ),
        (
            "geom",
            Value::Geometry {
                wkb: vec![
                    1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x40,
                ],
                srid: Some(4326),
            },
            Logical::Geometry { geography: false },
        ),
        (
            "pt",
            Value::Struct(vec![
                ("x".into(), Value::Float(1.0)),
                ("y".into(), Value::Float(2.0)),
                ("wkb".into(), Value::Null),
                ("srid".into(), Value::Null),
            ]),
            Logical::Point,
        ),
        ("f32", Value::Float(1.5), Logical::None),
        ("i8", Value::Int(-128), Logical::None),
        (
            "attrs",
            Value::Map(vec![
                (Value::Text("x".into()), Value::Int(1)),
                (Value::Text("y".into()), Value::Null),
            ]),
            Logical::None,
        ),
        (
            "codes",
            Value::Map(vec![
                (Value::Int(1), Value::Text("one".into())),
                (Value::Int(2), Value::Null),
            ]),
            Logical::None,
        ),
        (
            "nested",
            Value::Struct(vec![
                ("city".into(), Value::Text("Oslo".into())),
                ("zip".into(), Value::Int(150)),
            ]),
            Logical::Other("com.example.Address".into()),
        ),
        ("dbl_str", Value::Text("NaN".into()), Logical::None),
    ];
    for (col, want, logical) in cases {
        let c = a.get(col).unwrap_or_else(|| panic!("{col}"));
        assert_eq!(c.value, want, "column {col}");
        assert_eq!(c.column_type.logical, logical, "column {col}");
    }
    assert_eq!(
        a.get("f32").unwrap().column_type.connect_type,
        ConnectType::Float32
    );
    assert_eq!(
        a.get("codes")
            .unwrap()
            .column_type
            .key
            .as_ref()
            .unwrap()
            .connect_type,
        ConnectType::Int32
    );
}

#[test]
fn renders_after_row_for_postgres_and_mariadb() {
    let ev = change(Some("accounts.key.json"), "accounts_create.value.json");
    let after = ev.after.unwrap();
    let pg: Vec<(&str, Option<&str>)> = vec![
        ("balance", Some("12345.67")),
        ("rate", Some("0.0015")),
        ("opened_on", Some("2024-02-29")),
        ("created_at", Some("2024-02-29 00:00:00.123456")),
        ("updated_at", Some("2024-02-29T10:15:30.123456Z")),
        ("cutoff", Some("12:34:56.789012")),
        ("grace", Some("25:01:01.000001")),
        ("photo", Some("\\xdeadbeef")),
        ("tags", Some(r#"{retail,"vip user",NULL}"#)),
        ("vip", Some("t")),
        ("limits", Some("{1000.00,NULL,-0.05}")),
    ];
    for (col, want) in pg {
        assert_eq!(
            v(&after, col).to_pg_text().unwrap().as_deref(),
            want,
            "pg {col}"
        );
    }
    let my: Vec<(&str, &str)> = vec![
        ("balance", "12345.67"),
        ("opened_on", "'2024-02-29'"),
        ("created_at", "'2024-02-29 00:00:00.123456'"),
        ("cutoff", "'12:34:56.789012'"),
        ("photo", "X'DEADBEEF'"),
        ("vip", "TRUE"),
        ("ext_id", "'4f3c2a1e-8b7d-4c6e-9f0a-1b2c3d4e5f60'"),
        ("tags", r#"'["retail","vip user",null]'"#),
    ];
    for (col, want) in my {
        assert_eq!(
            v(&after, col).to_mysql_literal().unwrap(),
            want,
            "mysql {col}"
        );
    }
}

// ---------------------------------------------------------------- errors --

const ACC_SCHEMA_MIN: &str = r#"{"type":"struct","optional":false,"name":"t.Envelope","fields":[
  {"field":"before","type":"struct","optional":true,"fields":[
     {"field":"id","type":"int16","optional":false},
     {"field":"amount","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},
     {"field":"rate","type":"struct","optional":true,"name":"io.debezium.data.VariableScaleDecimal","fields":[
        {"field":"scale","type":"int32","optional":true},{"field":"value","type":"bytes","optional":true}]}]},
  {"field":"after","type":"struct","optional":true,"fields":[
     {"field":"id","type":"int16","optional":false},
     {"field":"amount","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},
     {"field":"rate","type":"struct","optional":true,"name":"io.debezium.data.VariableScaleDecimal","fields":[
        {"field":"scale","type":"int32","optional":true},{"field":"value","type":"bytes","optional":true}]}]},
  {"field":"source","type":"struct","optional":false,"fields":[{"field":"table","type":"string","optional":true}]},
  {"field":"op","type":"string","optional":false},
  {"field":"ts_ms","type":"int64","optional":true}]}"#;

fn with_payload(payload: &str) -> String {
    format!(r#"{{"schema":{ACC_SCHEMA_MIN},"payload":{payload}}}"#)
}

fn err_of(value: &str) -> String {
    match JsonConverterDecoder::new().decode(None, Some(value.as_bytes())) {
        Ok(r) => panic!("expected an error for {value}, got {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_envelope_decodes() {
    let ok = with_payload(
        r#"{"after":{"id":3,"amount":"AN4=","rate":{"scale":1,"value":"/w=="}},"source":{"table":"t"},"op":"c"}"#,
    );
    let rec = JsonConverterDecoder::new()
        .decode(None, Some(ok.as_bytes()))
        .unwrap();
    let Record::Change(ev) = rec else { panic!() };
    let a = ev.after.unwrap();
    assert_eq!(a.value("amount"), Some(&Value::Decimal("2.22".into())));
    assert_eq!(a.value("rate"), Some(&Value::Decimal("-0.1".into())));
}

#[test]
fn malformed_records_give_clear_errors() {
    let p = |s: &str| with_payload(s);
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("this is not json".into(), vec!["record value", "not valid JSON", "JsonConverter"]),
        ("{\"schema\":{\"type\":\"struct\"}".into(), vec!["not valid JSON"]),
        (
            r#"{"before":null,"after":{"id":1},"op":"c"}"#.into(),
            vec!["no \"schema\"", "value.converter.schemas.enable=true"],
        ),
        (r#"{"schema":null,"payload":{"id":1}}"#.into(), vec!["value.converter.schemas.enable=true"]),
        (format!(r#"{{"schema":{ACC_SCHEMA_MIN}}}"#), vec!["no \"payload\" member"]),
        ("[1,2,3]".into(), vec!["schemas.enable=true"]),
        ("42".into(), vec!["schemas.enable=true"]),
        (
            p(r#"{"after":{"id":1,"amount":"xyz!"},"source":{},"op":"c"}"#),
            vec!["payload.after.amount", "Decimal value 'xyz!' is not base64"],
        ),
        (
            p(r#"{"after":{"id":1,"amount":true},"source":{},"op":"c"}"#),
            vec!["payload.after.amount", "found a boolean"],
        ),
        (
            p(r#"{"after":{"id":"1"},"source":{},"op":"c"}"#),
            vec!["payload.after.id", "int16", "found a string"],
        ),
        (p(r#"{"after":{"id":70000},"source":{},"op":"c"}"#), vec!["payload.after.id", "out of range"]),
        (p(r#"{"after":{"id":1.5},"source":{},"op":"c"}"#), vec!["payload.after.id", "not an integer"]),
        (p(r#"{"after":{"id":null},"source":{},"op":"c"}"#), vec!["payload.after.id", "required"]),
        (p(r#"{"after":{},"source":{},"op":"c"}"#), vec!["payload.after.id", "required"]),
        (p(r#"{"after":{"id":1},"source":{},"op":"x"}"#), vec!["payload.op", "unknown operation 'x'"]),
        (p(r#"{"after":{"id":1},"source":{}}"#), vec!["payload.op", "required"]),
        (p(r#"{"after":null,"source":{},"op":"c"}"#), vec!["payload.after", "'c' event must carry"]),
        (p(r#"{"after":null,"source":{},"op":"u"}"#), vec!["payload.after", "'u' event"]),
        (p(r#"{"after":[1],"source":{},"op":"c"}"#), vec!["payload.after", "found an array"]),
        (
            p(r#"{"after":{"id":1,"rate":{"scale":null,"value":"AQ=="}},"source":{},"op":"c"}"#),
            vec!["payload.after.rate", "VariableScaleDecimal needs an int32 'scale'"],
        ),
        (
            p(r#"{"after":{"id":1,"rate":{"scale":1,"value":""}},"source":{},"op":"c"}"#),
            vec!["payload.after.rate", "zero bytes"],
        ),
        (
            p(r#"{"after":{"id":1,"rate":{"scale":2000000000,"value":"AQ=="}},"source":{},"op":"c"}"#),
            vec!["payload.after.rate", "scale 2000000000"],
        ),
        (
            r#"{"schema":{"type":"struct","fields":[{"field":"a","type":"decimal"}]},"payload":{"a":1}}"#.into(),
            vec!["schema.fields[0].type", "unknown Connect type 'decimal'"],
        ),
        (
            r#"{"schema":{"type":"struct","fields":[{"field":"a","type":"array"}]},"payload":{"a":[]}}"#.into(),
            vec!["schema.fields[0]", "needs \"items\""],
        ),
        (
            r#"{"schema":{"type":"struct","fields":[{"type":"int32"}]},"payload":{}}"#.into(),
            vec!["schema.fields[0]", "no \"field\" name"],
        ),
        (
            r#"{"schema":{"type":"struct","fields":[{"field":"a","type":"int32"},{"field":"a","type":"int32"}]},"payload":{}}"#
                .into(),
            vec!["duplicate field name 'a'"],
        ),
        (
            r#"{"schema":{"fields":[]},"payload":{}}"#.into(),
            vec!["schema", "no \"type\""],
        ),
        (
            r#"{"schema":{"type":"int64","name":"io.debezium.time.MicroTimestamp"},"payload":"soon"}"#.into(),
            vec!["payload", "int64 (io.debezium.time.MicroTimestamp)", "found a string"],
        ),
        (
            r#"{"schema":{"type":"int64","name":"io.debezium.time.Timestamp"},"payload":9223372036854775807}"#.into(),
            vec!["payload", "overflows"],
        ),
        (
            r#"{"schema":{"type":"map","keys":{"type":"int32"},"values":{"type":"string"}},"payload":{"1":"a"}}"#.into(),
            vec!["payload", "found an object"],
        ),
        (
            r#"{"schema":{"type":"map","keys":{"type":"int32"},"values":{"type":"string"}},"payload":[[1]]}"#.into(),
            vec!["payload[0]", "[key, value] pair"],
        ),
    ];
    for (input, needles) in cases {
        let msg = err_of(&input);
        for n in needles {
            assert!(
                msg.contains(n),
                "error for {input}\n  = {msg}\n  should contain {n:?}"
            );
        }
    }
}

#[test]
fn key_errors_name_the_key() {
    let d = JsonConverterDecoder::new();
    let value = fixture("accounts_create.value.json");
    let e = d.decode(Some(b"{\"id\":1}"), Some(&value)).unwrap_err();
    assert!(e.to_string().contains("record key"), "{e}");
    assert!(
        e.to_string().contains("key.converter.schemas.enable=true"),
        "{e}"
    );
    let e = d
        .decode(
            Some(br#"{"schema":{"type":"struct","fields":[{"field":"id","type":"int32"}]},"payload":{"id":"x"}}"#),
            Some(&value),
        )
        .unwrap_err();
    assert_eq!(e.path(), Some("key.payload.id"), "{e}");
    let e = d
        .decode(
            Some(br#"{"schema":{"type":"int32"},"payload":5}"#),
            Some(&value),
        )
        .unwrap_err();
    assert!(e.to_string().contains("rather than a struct"), "{e}");
}

#[test]
fn unknown_logical_type_on_any_base_degrades() {
    let doc = br#"{"schema":{"type":"struct","fields":[
        {"field":"a","type":"string","name":"io.debezium.time.Date"},
        {"field":"b","type":"bytes","name":"org.apache.kafka.connect.data.Decimal"},
        {"field":"c","type":"int64","name":"io.example.Money","parameters":{"currency":"EUR"}},
        {"field":"d","type":"struct","name":"io.example.Pair","fields":[{"field":"x","type":"int32"}]}
      ]},"payload":{"a":"2024-01-01","b":"AQ==","c":5,"d":{"x":1}}}"#;
    let rec = JsonConverterDecoder::new().decode(None, Some(doc)).unwrap();
    let Record::Other { value, schema_name } = rec else {
        panic!("{rec:?}")
    };
    assert_eq!(schema_name, None);
    assert_eq!(
        value,
        Value::Struct(vec![
            ("a".into(), Value::Text("2024-01-01".into())),
            ("b".into(), Value::Bytes(vec![1])),
            ("c".into(), Value::Int(5)),
            ("d".into(), Value::Struct(vec![("x".into(), Value::Int(1))])),
        ])
    );
}

// ------------------------------------------------------------ fuzz-minded --

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_records_never_panic() {
    let d = JsonConverterDecoder::new();
    let key = fixture("accounts.key.json");
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for name in [
        "accounts_create.value.json",
        "misc_create.value.json",
        "message.value.json",
    ] {
        let orig = fixture(name);
        // Prefixes.
        for n in (0..orig.len()).step_by(97) {
            let _ = d.decode(Some(&key), Some(&orig[..n]));
        }
        // Random byte edits, biased towards JSON-significant bytes.
        const ALPHABET: &[u8] = b"{}[]\",:0123456789-.eE+ntfalsru\\ \x00\xff";
        for _ in 0..300 {
            let mut m = orig.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                match rng.below(3) {
                    0 => m[i] = ALPHABET[rng.below(ALPHABET.len())],
                    1 => {
                        m.remove(i);
                    }
                    _ => m.insert(i, ALPHABET[rng.below(ALPHABET.len())]),
                }
            }
            let _ = d.decode(Some(&key), Some(&m));
            let _ = d.decode(Some(&m), None);
        }
    }
}

#[test]
fn every_column_replaced_by_every_json_kind_is_handled() {
    // Replace each payload.after column with each JSON kind: the decoder must
    // either accept it or name exactly that column.
    let d = JsonConverterDecoder::new();
    let text = String::from_utf8(fixture("accounts_create.value.json")).unwrap();
    let ev = change(None, "accounts_create.value.json");
    let cols: Vec<String> = ev
        .after
        .unwrap()
        .columns
        .into_iter()
        .map(|c| c.name.to_string())
        .collect();
    let marker = "\"op\": \"c\"";
    assert!(text.contains(marker));
    let (mut oks, mut errs) = (0, 0);
    for col in &cols {
        for replacement in [
            "null",
            "true",
            "-1",
            "1.5",
            "\"x\"",
            "\"AQ==\"",
            "[]",
            "{}",
            "[null]",
            "99999999999999999999",
        ] {
            // Append a patched "after" at the end of the payload: the last
            // duplicate key wins, as in Jackson.
            let after_start = text.find("\"after\": {").unwrap();
            let after_end = after_start + text[after_start..].find("\n    },").unwrap() + 6;
            let after_obj = &text[after_start + 9..after_end];
            let patched = patch_member(after_obj, col, replacement);
            let doc = text.replacen(marker, &format!("\"after\": {patched}, {marker}"), 1);
            match d.decode(None, Some(doc.as_bytes())) {
                Ok(_) => oks += 1,
                Err(e) => {
                    errs += 1;
                    let path = e.path().unwrap_or("");
                    assert!(
                        path.starts_with(&format!("payload.after.{col}"))
                            || path == "payload.after",
                        "{col} <- {replacement}: {e}"
                    );
                }
            }
        }
    }
    assert!(oks > 20 && errs > 100, "oks {oks} errs {errs}");
}

/// Replace the value of top-level member `col` of the JSON object text `obj`.
fn patch_member(obj: &str, col: &str, replacement: &str) -> String {
    let doc = lockstep_debezium::json::parse(obj.as_bytes()).unwrap();
    let lockstep_debezium::json::Json::Object(members) = doc else {
        panic!()
    };
    let mut out = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{k}\":"));
        if k == col {
            out.push_str(replacement);
        } else {
            out.push_str(&v.to_json_text());
        }
    }
    out.push('}');
    out
}

#[test]
fn the_schema_cache_gives_the_same_records_as_a_fresh_decoder() {
    // One long-lived decoder (the sink's) against a fresh one per record, over every fixture pair,
    // twice, so the second pass decodes through the cache; compact and re-spaced JSON too.
    let cached = JsonConverterDecoder::new();
    let pairs = [
        (Some("accounts.key.json"), "accounts_create.value.json"),
        (Some("accounts.key.json"), "accounts_update.value.json"),
        (Some("accounts.key.json"), "accounts_delete.value.json"),
        (Some("accounts.key.json"), "accounts_read.value.json"),
        (
            Some("accounts.key.json"),
            "accounts_create_numeric.value.json",
        ),
        (None, "accounts_truncate.value.json"),
        (None, "misc_create.value.json"),
        (Some("message.key.json"), "message.value.json"),
    ];
    let compact = |bytes: Vec<u8>| -> Vec<u8> {
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("fixture is JSON");
        serde_json::to_vec(&v).expect("compact")
    };
    for round in 0..2 {
        for (key, value) in pairs {
            let k = key.map(fixture);
            let v = fixture(value);
            for (kk, vv) in [
                (k.clone(), v.clone()),
                (k.clone().map(compact), compact(v.clone())),
            ] {
                let fresh = JsonConverterDecoder::new().decode(kk.as_deref(), Some(&vv));
                let through_cache = cached.decode(kk.as_deref(), Some(&vv));
                assert_eq!(
                    format!("{fresh:?}"),
                    format!("{through_cache:?}"),
                    "round {round}, {value}"
                );
            }
        }
    }
    // A cached schema with a payload that does not fit it still fails with the full path's error.
    let broken = String::from_utf8(fixture("accounts_create.value.json"))
        .expect("utf8")
        .replacen("\"payload\"", "\"payload\":{\"broken\":", 1);
    assert!(cached.decode(None, Some(broken.as_bytes())).is_err());
}

#[test]
fn a_float32_is_the_float_the_source_held_widened_exactly() {
    // JsonConverter writes a float32 as its shortest text; 1.1 read as f64 would be 1.1, a value
    // a PostgreSQL `real` never held (the real is 1.10000002384185791015625).
    let value = String::from_utf8(fixture("misc_create.value.json"))
        .unwrap()
        .replace("\"f32\": 1.5", "\"f32\": 1.1");
    assert!(value.contains("\"f32\": 1.1"), "fixture layout changed");
    let Record::Change(ev) = JsonConverterDecoder::new()
        .decode(None, Some(value.as_bytes()))
        .unwrap()
    else {
        panic!("expected a change")
    };
    let after = ev.after.unwrap();
    assert_eq!(v(&after, "f32"), &Value::Float(f64::from(1.1f32)));
    assert_ne!(v(&after, "f32"), &Value::Float(1.1));
}
