//! Deserialisation of realistic Kafka Connect REST payloads, shaped after the
//! Jackson entities in Apache Kafka's `connect/runtime/.../rest/entities/` and
//! Connect's documented examples, through the crate's public types only.

use std::collections::BTreeMap;

use lockstep_connect::{
    ConfigInfos, ConfigKeyInfo, ConnectorConfig, ConnectorInfo, ConnectorOffset, ConnectorOffsets,
    ConnectorState, ConnectorStateInfo, ConnectorType, ExpandedConnector, ExpectedState,
    LoggerLevel, Message, PluginInfo, PluginType, ServerInfo, TaskInfo, TaskStatus, Verdict,
};

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
    match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => panic!("failed to decode {}: {e}", std::any::type_name::<T>()),
    }
}

const FAILED_TASK_STATUS: &str = r#"{
  "name": "inventory-connector",
  "connector": { "state": "RUNNING", "worker_id": "172.18.0.5:8083" },
  "tasks": [
    {
      "id": 0,
      "state": "FAILED",
      "worker_id": "172.18.0.5:8083",
      "trace": "org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer. This connector will be stopped.\n\tat io.debezium.pipeline.ErrorHandler.setProducerThrowable(ErrorHandler.java:67)\n\tat io.debezium.connector.postgresql.PostgresStreamingChangeEventSource.execute(PostgresStreamingChangeEventSource.java:180)\nCaused by: org.postgresql.util.PSQLException: Database connection failed when reading from copy\n"
    },
    { "id": 1, "state": "RUNNING", "worker_id": "172.18.0.6:8083" }
  ],
  "type": "source"
}"#;

#[test]
fn status_with_failed_task_trace() {
    let status: ConnectorStateInfo = parse(FAILED_TASK_STATUS);
    assert_eq!(status.name, "inventory-connector");
    assert_eq!(status.connector.state, ConnectorState::Running);
    assert_eq!(status.connector.trace, None);
    assert_eq!(status.connector_type, Some(ConnectorType::Source));
    let failed: Vec<&TaskStatus> = status.failed_tasks().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, 0);
    assert!(failed[0]
        .trace
        .as_deref()
        .is_some_and(|t| t.starts_with("org.apache.kafka.connect.errors.ConnectException")));
    assert!(status.has_failure());

    match ExpectedState::running().evaluate(&status) {
        Verdict::Failed(detail) => {
            assert!(detail
                .contains("task 0 is FAILED: org.apache.kafka.connect.errors.ConnectException"))
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn stopped_status_has_no_tasks() {
    let status: ConnectorStateInfo = parse(
        r#"{"name":"inv","connector":{"state":"STOPPED","worker_id":"connect-1:8083"},"tasks":[],"type":"source"}"#,
    );
    assert_eq!(ExpectedState::stopped().evaluate(&status), Verdict::Reached);
}

#[test]
fn unknown_states_types_and_fields_do_not_break_decoding() {
    let status: ConnectorStateInfo = parse(
        r#"{"name":"x","connector":{"state":"DRAINING","worker_id":"w:8083","since":"2030-01-01"},
            "tasks":[{"id":0,"state":"HIBERNATING","worker_id":"w:8083","version":"9.9"}],
            "type":"bridge","future_field":{"a":1}}"#,
    );
    assert_eq!(
        status.connector.state,
        ConnectorState::Unknown("DRAINING".into())
    );
    assert_eq!(
        status.tasks[0].state,
        ConnectorState::Unknown("HIBERNATING".into())
    );
    assert_eq!(status.connector_type, Some(ConnectorType::Unknown));
    // worker_id may be missing, e.g. while UNASSIGNED on some versions
    let status: ConnectorStateInfo =
        parse(r#"{"name":"x","connector":{"state":"UNASSIGNED"},"tasks":[]}"#);
    assert_eq!(status.connector.worker_id, None);
    assert_eq!(status.connector_type, None);
}

#[test]
fn task_status_endpoint() {
    let t: TaskStatus = parse(r#"{"id":2,"state":"RUNNING","worker_id":"connect-2:8083"}"#);
    assert_eq!((t.id, t.state), (2, ConnectorState::Running));
}

const EXPANDED: &str = r#"{
  "inventory-connector": {
    "status": {
      "name": "inventory-connector",
      "connector": { "state": "RUNNING", "worker_id": "10.0.0.1:8083" },
      "tasks": [ { "id": 0, "state": "RUNNING", "worker_id": "10.0.0.1:8083" } ],
      "type": "source"
    },
    "info": {
      "name": "inventory-connector",
      "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "postgres",
        "database.port": "5432",
        "database.user": "postgres",
        "database.password": "dbz-secret-value",
        "database.dbname": "postgres",
        "topic.prefix": "dbserver1",
        "tasks.max": "1",
        "name": "inventory-connector"
      },
      "tasks": [ { "connector": "inventory-connector", "task": 0 } ],
      "type": "source"
    }
  },
  "orders-sink": {
    "status": {
      "name": "orders-sink",
      "connector": { "state": "PAUSED", "worker_id": "10.0.0.2:8083" },
      "tasks": [ { "id": 0, "state": "PAUSED", "worker_id": "10.0.0.2:8083" } ],
      "type": "sink"
    },
    "info": {
      "name": "orders-sink",
      "config": {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "connection.url": "jdbc:postgresql://warehouse:5432/dw?user=dw&password=sink-secret-value",
        "topics": "dbserver1.inventory.orders",
        "primary.key.mode": "record_key",
        "name": "orders-sink"
      },
      "tasks": [ { "connector": "orders-sink", "task": 0 } ],
      "type": "sink"
    }
  }
}"#;

#[test]
fn expand_status_and_info() {
    let map: BTreeMap<String, ExpandedConnector> = parse(EXPANDED);
    assert_eq!(map.len(), 2);
    let inv = &map["inventory-connector"];
    let status = inv.status.as_ref().expect("status expanded");
    let info = inv.info.as_ref().expect("info expanded");
    assert_eq!(status.connector.state, ConnectorState::Running);
    assert_eq!(info.connector_type, ConnectorType::Source);
    assert_eq!(
        info.config.get("database.password"),
        Some("dbz-secret-value")
    );
    assert_eq!(info.tasks[0].task, 0);
    let sink = &map["orders-sink"];
    assert_eq!(
        sink.info.as_ref().map(|i| i.connector_type),
        Some(ConnectorType::Sink)
    );
    assert_eq!(
        ExpectedState::paused().evaluate(sink.status.as_ref().expect("status")),
        Verdict::Reached
    );

    // Debug output of the whole structure never shows the secrets.
    let dbg = format!("{map:?}");
    assert!(!dbg.contains("dbz-secret-value"), "{dbg}");
    assert!(!dbg.contains("sink-secret-value"), "{dbg}");
    assert!(dbg.contains("record_key"), "{dbg}");
}

#[test]
fn expand_status_only() {
    let map: BTreeMap<String, ExpandedConnector> = parse(
        r#"{"a":{"status":{"name":"a","connector":{"state":"RUNNING","worker_id":"w"},"tasks":[],"type":"sink"}}}"#,
    );
    assert!(map["a"].info.is_none());
    assert!(map["a"].status.is_some());
}

#[test]
fn connector_info_and_tasks_mask_secrets_in_debug() {
    let info: ConnectorInfo = parse(
        r#"{"name":"inv","config":{"connector.class":"io.debezium.connector.postgresql.PostgresConnector",
            "database.password":"${file:/opt/kafka/secrets/pg.properties:password}","tasks.max":1,
            "snapshot.new.tables":"parallel","name":"inv"},
            "tasks":[],"type":"source"}"#,
    );
    assert_eq!(
        info.config.get("tasks.max"),
        Some("1"),
        "numbers are coerced to strings"
    );
    let dbg = format!("{info:?}");
    assert!(
        dbg.contains("${file:/opt/kafka/secrets/pg.properties:password}"),
        "placeholders stay visible: {dbg}"
    );

    let tasks: Vec<TaskInfo> = parse(
        r#"[{"id":{"connector":"inv","task":0},"config":{
            "task.class":"io.debezium.connector.postgresql.PostgresConnectorTask",
            "database.password":"hunter2","sasl.jaas.config":"org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"p4ss\";",
            "connector.class":"io.debezium.connector.postgresql.PostgresConnector"}}]"#,
    );
    assert_eq!(tasks[0].id.connector, "inv");
    let dbg = format!("{tasks:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("p4ss"), "{dbg}");
}

#[test]
fn connector_config_endpoint() {
    let cfg: ConnectorConfig = parse(
        r#"{"connector.class":"io.debezium.connector.postgresql.PostgresConnector","tasks.max":"1",
            "key.converter.schemas.enable":false,"database.port":5432,"name":"inv"}"#,
    );
    assert_eq!(cfg.get("database.port"), Some("5432"));
    assert_eq!(cfg.get("key.converter.schemas.enable"), Some("false"));
    assert_eq!(
        cfg.connector_class(),
        Some("io.debezium.connector.postgresql.PostgresConnector")
    );
}

const VALIDATE: &str = r#"{
  "name": "io.debezium.connector.postgresql.PostgresConnector",
  "error_count": 2,
  "groups": ["Common", "Transforms", "Predicates", "Error Handling", "Topic Creation", "Exactly Once Support", "offsets", "Postgres", "Connector", "Events"],
  "configs": [
    {
      "definition": {
        "name": "connector.class", "type": "STRING", "required": true, "default_value": null,
        "importance": "HIGH", "documentation": "Name or alias of the class for this connector.",
        "group": "Common", "width": "LONG", "display_name": "Connector class", "dependents": [], "order": 2
      },
      "value": {
        "name": "connector.class", "value": "io.debezium.connector.postgresql.PostgresConnector",
        "recommended_values": [], "errors": [], "visible": true
      }
    },
    {
      "definition": {
        "name": "topic.prefix", "type": "STRING", "required": true, "default_value": null,
        "importance": "HIGH", "documentation": "Topic prefix that identifies and provides a namespace for the particular database server/cluster.",
        "group": "Postgres", "width": "MEDIUM", "display_name": "Topic prefix", "dependents": [], "order": 1
      },
      "value": {
        "name": "topic.prefix", "value": null, "recommended_values": [],
        "errors": ["The 'topic.prefix' value is invalid: A value is required"], "visible": true
      }
    },
    {
      "definition": {
        "name": "database.port", "type": "INT", "required": false, "default_value": "5432",
        "importance": "HIGH", "documentation": "Port of the database server.", "group": "Postgres",
        "width": "SHORT", "display_name": "Port", "dependents": [], "order": 3
      },
      "value": {
        "name": "database.port", "value": 99999, "recommended_values": [],
        "errors": ["Invalid value 99999 for configuration database.port: Port must be between 1 and 65535"], "visible": true
      }
    },
    {
      "definition": {
        "name": "database.password", "type": "PASSWORD", "required": false, "default_value": null,
        "importance": "HIGH", "documentation": "Password of the database user to be used when connecting to the database.",
        "group": "Postgres", "width": "SHORT", "display_name": "Password", "dependents": [], "order": 5
      },
      "value": {
        "name": "database.password", "value": "[hidden]", "recommended_values": [], "errors": [], "visible": true
      }
    },
    {
      "definition": {
        "name": "snapshot.mode", "type": "STRING", "required": false, "default_value": "initial",
        "importance": "MEDIUM", "documentation": "The criteria for running a snapshot upon startup of the connector.",
        "group": "Connector", "width": "SHORT", "display_name": "Snapshot mode", "dependents": ["snapshot.mode.custom.name"],
        "order": 20
      },
      "value": {
        "name": "snapshot.mode", "value": "initial",
        "recommended_values": ["always", "initial", "initial_only", "no_data", "never", "when_needed", "configuration_based", "custom"],
        "errors": [], "visible": true
      }
    }
  ]
}"#;

#[test]
fn validate_response_with_errors() {
    let infos: ConfigInfos = parse(VALIDATE);
    assert_eq!(infos.error_count, 2);
    assert!(!infos.is_valid());
    assert_eq!(infos.groups.len(), 10);
    assert_eq!(
        infos.keys_with_errors(),
        vec![
            (
                "topic.prefix".to_string(),
                vec!["The 'topic.prefix' value is invalid: A value is required".to_string()]
            ),
            (
                "database.port".to_string(),
                vec!["Invalid value 99999 for configuration database.port: Port must be between 1 and 65535".to_string()]
            ),
        ]
    );
    let port = &infos.configs[2];
    assert_eq!(
        port.value.value.as_deref(),
        Some("99999"),
        "numeric value coerced"
    );
    assert_eq!(port.definition.default_value.as_deref(), Some("5432"));
    assert_eq!(port.definition.order, Some(3));
    assert_eq!(infos.configs[4].value.recommended_values.len(), 8);
    assert_eq!(
        infos.configs[4].definition.dependents,
        vec!["snapshot.mode.custom.name".to_string()]
    );
}

#[test]
fn plugin_config_definitions() {
    let defs: Vec<ConfigKeyInfo> = parse(
        r#"[{"name":"database.hostname","type":"STRING","required":true,"default_value":null,"importance":"HIGH",
             "documentation":"Resolvable hostname or IP address of the database server.","group":"Postgres",
             "width":"MEDIUM","display_name":"Hostname","dependents":[],"order":2},
            {"name":"max.batch.size","type":"INT","required":false,"default_value":"2048","importance":"MEDIUM",
             "documentation":"Maximum size of each batch of source records.","group":"Connector",
             "width":"SHORT","display_name":"Change event batch size","dependents":[],"order_in_group":5}]"#,
    );
    assert_eq!(defs.len(), 2);
    assert!(defs[0].required);
    assert_eq!(defs[1].order, Some(5));
}

#[test]
fn debezium_postgres_offsets() {
    let offsets: ConnectorOffsets = parse(
        r#"{"offsets":[{"partition":{"server":"dbserver1"},
            "offset":{"lsn_proc":29321872,"lsn_commit":29321872,"lsn":29321872,"txId":771,"ts_usec":1714558732381516}}]}"#,
    );
    assert_eq!(offsets.offsets.len(), 1);
    let o = &offsets.offsets[0];
    assert_eq!(o.partition["server"], "dbserver1");
    let off = o.offset.as_ref().expect("offset present");
    assert_eq!(off["lsn"], 29321872u64);
    assert_eq!(off["txId"], 771);
    // round-trip keeps the exact JSON shape expected by PATCH
    let back = serde_json::to_value(&offsets).expect("serialise");
    assert_eq!(back["offsets"][0]["offset"]["ts_usec"], 1714558732381516u64);
}

#[test]
fn sink_offsets_and_null_offset_for_patch() {
    let offsets: ConnectorOffsets = parse(
        r#"{"offsets":[{"partition":{"kafka_topic":"orders","kafka_partition":2},"offset":{"kafka_offset":4096}},
                       {"partition":{"kafka_topic":"orders","kafka_partition":3},"offset":null}]}"#,
    );
    assert_eq!(offsets.offsets[0], ConnectorOffset::sink("orders", 2, 4096));
    assert!(offsets.offsets[1].offset.is_none());
    let json = serde_json::to_value(&offsets.offsets[1]).expect("serialise");
    assert_eq!(
        json,
        serde_json::json!({"partition": {"kafka_topic": "orders", "kafka_partition": 3}, "offset": null})
    );
    let empty: ConnectorOffsets = parse(r#"{"offsets":[]}"#);
    assert!(empty.offsets.is_empty());
}

#[test]
fn offsets_messages() {
    let m: Message = parse(
        r#"{"message":"The Connect framework-managed offsets for this connector have been reset successfully. However, if this connector manages its own offsets in an external system, those will need to be manually reset as well."}"#,
    );
    assert!(m.message.contains("reset successfully"));
}

#[test]
fn plugins_list() {
    let plugins: Vec<PluginInfo> = parse(
        r#"[{"class":"io.debezium.connector.postgresql.PostgresConnector","type":"source","version":"3.6.3.Final"},
            {"class":"io.debezium.connector.jdbc.JdbcSinkConnector","type":"sink","version":"3.6.3.Final"},
            {"class":"org.apache.kafka.connect.mirror.MirrorSourceConnector","type":"source","version":"4.3.0"},
            {"class":"org.apache.kafka.connect.transforms.Cast$Key","type":"transformation","version":"4.3.0"},
            {"class":"io.debezium.transforms.ExtractNewRecordState","type":"transformation","version":"3.6.3.Final"},
            {"class":"org.apache.kafka.connect.converters.ByteArrayConverter","type":"converter"},
            {"class":"org.apache.kafka.connect.storage.SimpleHeaderConverter","type":"header_converter","version":"4.3.0"},
            {"class":"org.apache.kafka.connect.transforms.predicates.TopicNameMatches","type":"predicate","version":"4.3.0"},
            {"class":"com.example.Future","type":"rest_extension","version":"1.0"}]"#,
    );
    let types: Vec<&PluginType> = plugins.iter().map(|p| &p.plugin_type).collect();
    assert_eq!(
        types,
        vec![
            &PluginType::Source,
            &PluginType::Sink,
            &PluginType::Source,
            &PluginType::Transformation,
            &PluginType::Transformation,
            &PluginType::Converter,
            &PluginType::HeaderConverter,
            &PluginType::Predicate,
            &PluginType::Other("rest_extension".into()),
        ]
    );
    assert_eq!(plugins[5].version, None);
    assert_eq!(plugins[0].version.as_deref(), Some("3.6.3.Final"));
}

#[test]
fn loggers() {
    let all: BTreeMap<String, LoggerLevel> = parse(
        r#"{"org.apache.kafka.connect.runtime.rest":{"level":"WARN","last_modified":null},
            "root":{"level":"INFO","last_modified":null},
            "io.debezium":{"level":"DEBUG","last_modified":1714558732381}}"#,
    );
    assert_eq!(all["io.debezium"].last_modified, Some(1_714_558_732_381));
    assert_eq!(all["root"].level, "INFO");
    // Kafka < 3.7 answers without last_modified
    let one: LoggerLevel = parse(r#"{"level":"ERROR"}"#);
    assert_eq!(one.last_modified, None);
}

#[test]
fn server_info() {
    let info: ServerInfo = parse(
        r#"{"version":"4.3.0","commit":"c8ca3e43d2a8c4b8","kafka_cluster_id":"MkU3OEVBNTcwNTJENDM2Qg"}"#,
    );
    assert_eq!(info.version, "4.3.0");
    assert_eq!(
        info.kafka_cluster_id.as_deref(),
        Some("MkU3OEVBNTcwNTJENDM2Qg")
    );
}
