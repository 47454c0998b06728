//! MySQL/MariaDB-shaped records and non-change records (schema change,
//! transaction metadata), decoded through the same envelope layer.

use lockstep_debezium::{Decoder, JsonConverterDecoder, Op, Record, Snapshot, Value};

const MYSQL_SOURCE_SCHEMA: &str = r#"{"type":"struct","optional":false,"name":"io.debezium.connector.mysql.Source","field":"source","fields":[
  {"type":"string","optional":false,"field":"version"},
  {"type":"string","optional":false,"field":"connector"},
  {"type":"string","optional":false,"field":"name"},
  {"type":"int64","optional":false,"field":"ts_ms"},
  {"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},
  {"type":"string","optional":false,"field":"db"},
  {"type":"string","optional":true,"field":"sequence"},
  {"type":"int64","optional":true,"field":"ts_us"},
  {"type":"int64","optional":true,"field":"ts_ns"},
  {"type":"string","optional":true,"field":"table"},
  {"type":"int64","optional":false,"field":"server_id"},
  {"type":"string","optional":true,"field":"gtid"},
  {"type":"string","optional":false,"field":"file"},
  {"type":"int64","optional":false,"field":"pos"},
  {"type":"int32","optional":false,"field":"row"},
  {"type":"int64","optional":true,"field":"thread"},
  {"type":"string","optional":true,"field":"query"},
  {"type":"string","optional":true,"field":"future_field"}]}"#;

const MYSQL_SOURCE: &str = r#"{"version":"3.0.7.Final","connector":"mysql","name":"shop","ts_ms":1709200530000,
  "snapshot":"incremental","db":"inventory","sequence":null,"ts_us":1709200530000000,"ts_ns":1709200530000000000,
  "table":"customers","server_id":223344,"gtid":"3e11fa47-71ca-11e1-9e33-c80aa9429562:23","file":"mysql-bin.000003",
  "pos":154,"row":0,"thread":7,"query":null,"future_field":"kept"}"#;

#[test]
fn mysql_change_event_source_block() {
    let value = format!(
        r#"{{"schema":{{"type":"struct","optional":false,"name":"shop.inventory.customers.Envelope","version":2,"fields":[
            {{"type":"struct","optional":true,"name":"shop.inventory.customers.Value","field":"before","fields":[
               {{"type":"int32","optional":false,"field":"id"}},
               {{"type":"int16","optional":true,"name":"io.debezium.time.Year","field":"since"}},
               {{"type":"string","optional":true,"name":"io.debezium.data.EnumSet","parameters":{{"allowed":"a,b"}},"field":"tags"}}]}},
            {{"type":"struct","optional":true,"name":"shop.inventory.customers.Value","field":"after","fields":[
               {{"type":"int32","optional":false,"field":"id"}},
               {{"type":"int32","optional":true,"name":"io.debezium.time.Year","field":"since"}},
               {{"type":"string","optional":true,"name":"io.debezium.data.EnumSet","parameters":{{"allowed":"a,b"}},"field":"tags"}}]}},
            {MYSQL_SOURCE_SCHEMA},
            {{"type":"string","optional":false,"field":"op"}},
            {{"type":"int64","optional":true,"field":"ts_ms"}}]}},
          "payload":{{"before":{{"id":1001,"since":1999,"tags":"a"}},"after":{{"id":1001,"since":2001,"tags":"a,b"}},
                     "source":{MYSQL_SOURCE},"op":"u","ts_ms":1709200530100}}}}"#
    );
    let key = br#"{"schema":{"type":"struct","optional":false,"name":"shop.inventory.customers.Key","fields":[{"type":"int32","optional":false,"field":"id"}]},"payload":{"id":1001}}"#;
    let rec = JsonConverterDecoder::new()
        .decode(Some(key), Some(value.as_bytes()))
        .unwrap();
    let Record::Change(ev) = rec else {
        panic!("{rec:?}")
    };
    assert_eq!(ev.op, Op::Update);
    assert_eq!(
        ev.before.as_ref().unwrap().value("since"),
        Some(&Value::Int(1999))
    );
    assert_eq!(
        ev.after.as_ref().unwrap().value("tags"),
        Some(&Value::Text("a,b".into()))
    );
    let s = &ev.source;
    assert_eq!(s.connector.as_deref(), Some("mysql"));
    assert_eq!(s.snapshot, Some(Snapshot::Incremental));
    assert_eq!(s.file.as_deref(), Some("mysql-bin.000003"));
    assert_eq!(s.pos, Some(154));
    assert_eq!(s.row, Some(0));
    assert_eq!(s.server_id, Some(223_344));
    assert_eq!(
        s.gtid.as_deref(),
        Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23")
    );
    assert_eq!(s.thread, Some(7));
    assert_eq!(s.query, None);
    assert_eq!(s.schema, None);
    assert_eq!(
        s.extra.get("future_field"),
        Some(&Value::Text("kept".into()))
    );
    assert_eq!(ev.table_id().to_string(), "inventory.customers");
}

#[test]
fn schema_change_event() {
    let value = format!(
        r#"{{"schema":{{"type":"struct","optional":false,"name":"io.debezium.connector.mysql.SchemaChangeValue","version":1,"fields":[
            {MYSQL_SOURCE_SCHEMA},
            {{"type":"int64","optional":true,"field":"ts_ms"}},
            {{"type":"string","optional":true,"field":"databaseName"}},
            {{"type":"string","optional":true,"field":"schemaName"}},
            {{"type":"string","optional":true,"field":"ddl"}},
            {{"type":"array","optional":false,"field":"tableChanges","items":{{"type":"struct","optional":false,"name":"io.debezium.connector.schema.Change","version":1,"fields":[
                {{"type":"string","optional":false,"field":"type"}},{{"type":"string","optional":false,"field":"id"}}]}}}}]}},
          "payload":{{"source":{MYSQL_SOURCE},"ts_ms":1709200531000,"databaseName":"inventory","schemaName":null,
                     "ddl":"ALTER TABLE customers ADD COLUMN note VARCHAR(20)","tableChanges":[{{"type":"ALTER","id":"\"inventory\".\"customers\""}}]}}}}"#
    );
    let rec = JsonConverterDecoder::new()
        .decode(None, Some(value.as_bytes()))
        .unwrap();
    let Record::SchemaChange(sc) = rec else {
        panic!("{rec:?}")
    };
    assert_eq!(sc.database_name.as_deref(), Some("inventory"));
    assert_eq!(sc.schema_name, None);
    assert_eq!(
        sc.ddl.as_deref(),
        Some("ALTER TABLE customers ADD COLUMN note VARCHAR(20)")
    );
    assert_eq!(sc.ts_ms, Some(1_709_200_531_000));
    assert_eq!(sc.source.pos, Some(154));
    assert_eq!(
        sc.table_changes,
        Value::Array(vec![Value::Struct(vec![
            ("type".into(), Value::Text("ALTER".into())),
            (
                "id".into(),
                Value::Text("\"inventory\".\"customers\"".into())
            ),
        ])])
    );
}

#[test]
fn transaction_metadata_event() {
    let value = br#"{"schema":{"type":"struct","optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1,"fields":[
        {"type":"string","optional":false,"field":"status"},
        {"type":"string","optional":false,"field":"id"},
        {"type":"int64","optional":true,"field":"event_count"},
        {"type":"array","optional":true,"field":"data_collections","items":{"type":"struct","optional":false,"name":"event.collection","version":1,"fields":[
            {"type":"string","optional":false,"field":"data_collection"},{"type":"int64","optional":false,"field":"event_count"}]}},
        {"type":"int64","optional":false,"field":"ts_ms"}]},
      "payload":{"status":"END","id":"571:53195832","event_count":2,
                 "data_collections":[{"data_collection":"public.accounts","event_count":2}],"ts_ms":1709200530999}}"#;
    let rec = JsonConverterDecoder::new()
        .decode(None, Some(value))
        .unwrap();
    assert_eq!(
        rec,
        Record::Transaction {
            status: Some("END".into()),
            id: Some("571:53195832".into()),
            event_count: Some(2)
        }
    );
}

#[test]
fn legacy_boolean_snapshot_and_unknown_source_types_are_kept() {
    let value = br#"{"schema":{"type":"struct","optional":false,"fields":[
        {"type":"struct","optional":true,"field":"after","fields":[{"type":"int32","optional":false,"field":"id"}]},
        {"type":"struct","optional":false,"field":"source","fields":[
            {"type":"boolean","optional":true,"field":"snapshot"},
            {"type":"string","optional":true,"field":"lsn"}]},
        {"type":"string","optional":false,"field":"op"}]},
      "payload":{"after":{"id":1},"source":{"snapshot":true,"lsn":"0/16B3748"},"op":"r"}}"#;
    let rec = JsonConverterDecoder::new()
        .decode(None, Some(value))
        .unwrap();
    let Record::Change(ev) = rec else {
        panic!("{rec:?}")
    };
    assert_eq!(ev.source.snapshot, Some(Snapshot::True));
    assert_eq!(ev.source.lsn, None);
    assert_eq!(
        ev.source.extra.get("lsn"),
        Some(&Value::Text("0/16B3748".into()))
    );
}
