//! Restart semantics and config validation against the real Connect worker.

use std::time::Duration;

use lockstep_connect::{
    ConnectError, ConnectorConfig, ConnectorState, CreateConnectorRequest, RestartOptions,
    RestartOutcome,
};
use lockstep_e2e::{eventually, unique_name, Stack};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn config(pairs: &[(&str, &str)]) -> ConnectorConfig {
    let mut config = ConnectorConfig::new();
    for (k, v) in pairs {
        config.insert(*k, *v);
    }
    config
}

/// A sink with two tasks over a two-partition topic, where one partition holds a record the
/// JSON converter cannot read: exactly the task that owns it fails.
#[tokio::test]
async fn restart_only_failed_acts_on_the_failed_task_only() {
    let stack = Stack::get();
    let client = stack.connect_client().expect("client");
    let name = unique_name("restart-sink").replace('_', "-");
    let topic = format!("{name}-in");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .expect("admin client");
    admin
        .create_topics(
            &[NewTopic::new(&topic, 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic")
        .into_iter()
        .for_each(|r| {
            r.expect("topic created");
        });
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    for (partition, value) in [(0, "this is not json {"), (1, r#"{"ok": true}"#)] {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .partition(partition)
                    .payload(value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    let out_file = std::env::temp_dir().join(format!("{name}.out"));
    let sink_config = config(&[
        (
            "connector.class",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
        ),
        ("tasks.max", "2"),
        ("topics", &topic),
        ("file", out_file.to_str().expect("utf-8 temp path")),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "false"),
        ("consumer.override.auto.offset.reset", "earliest"),
    ]);
    client
        .create_connector(&CreateConnectorRequest {
            name: name.clone(),
            config: sink_config,
            initial_state: None,
        })
        .await
        .expect("create sink");

    let result = async {
        let status = eventually(
            "one task FAILED and one RUNNING",
            Duration::from_secs(120),
            || async {
                let s = client.connector_status(&name).await?;
                let failed = s
                    .tasks
                    .iter()
                    .filter(|t| t.state == ConnectorState::Failed)
                    .count();
                let running = s
                    .tasks
                    .iter()
                    .filter(|t| t.state == ConnectorState::Running)
                    .count();
                Ok((s.tasks.len() == 2 && failed == 1 && running == 1).then_some(s))
            },
        )
        .await
        .expect("the poisoned partition fails its task");
        let failed_id = status
            .failed_tasks()
            .next()
            .map(|t| t.id)
            .expect("a failed task");
        let trace = status
            .failed_tasks()
            .next()
            .and_then(|t| t.trace.clone())
            .unwrap_or_default();
        assert!(
            trace.contains("DataException") || trace.contains("JsonConverter"),
            "{trace}"
        );

        let outcome = client
            .restart_connector(
                &name,
                RestartOptions {
                    include_tasks: true,
                    only_failed: true,
                },
            )
            .await
            .expect("restart onlyFailed");
        let RestartOutcome::Accepted(plan) = outcome else {
            panic!("includeTasks/onlyFailed restarts answer 202 with the plan, got {outcome:?}");
        };
        assert_eq!(
            plan.connector.state,
            ConnectorState::Running,
            "the healthy connector instance is not restarted"
        );
        for task in &plan.tasks {
            let expected = if task.id == failed_id {
                ConnectorState::Restarting
            } else {
                ConnectorState::Running
            };
            assert_eq!(task.state, expected, "task {} in the restart plan", task.id);
        }
    }
    .await;
    let _ = client.delete_connector(&name).await;
    let _ = std::fs::remove_file(&out_file);
    result
}

#[tokio::test]
async fn validate_reports_connects_own_messages() {
    let stack = Stack::get();
    let client = stack.connect_client().expect("client");

    // Missing required fields: Connect answers 200 with per-key errors.
    let incomplete = config(&[
        (
            "connector.class",
            "io.debezium.connector.postgresql.PostgresConnector",
        ),
        ("name", "incomplete"),
    ]);
    let report = client
        .validate_config(
            "io.debezium.connector.postgresql.PostgresConnector",
            &incomplete,
        )
        .await
        .expect("validate answers");
    assert!(!report.is_valid());
    let errors = report.keys_with_errors();
    let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
    for required in ["topic.prefix", "database.hostname"] {
        assert!(
            keys.contains(&required),
            "{required} reported missing: {errors:?}"
        );
    }
    assert!(errors
        .iter()
        .any(|(_, m)| m.iter().any(|m| m.contains("A value is required"))));

    // A class the cluster does not have: an error naming it, not a generic 500.
    let unknown = config(&[
        ("connector.class", "com.example.NoSuchConnector"),
        ("name", "x"),
    ]);
    let err = client
        .validate_config("com.example.NoSuchConnector", &unknown)
        .await
        .expect_err("unknown class is rejected");
    let text = err.to_string();
    assert!(text.contains("com.example.NoSuchConnector"), "{text}");
    assert!(
        matches!(
            err,
            ConnectError::BadRequest { .. } | ConnectError::UnknownPlugin { .. }
        ),
        "typed as a bad request: {err:?}"
    );
}
