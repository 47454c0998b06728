//! Transport behaviour that needs no server at all: requests to a closed
//! loopback port. (Behaviour against a live worker is covered by the
//! integration tests that run a real Kafka Connect.)

use std::time::Duration;

use lockstep_connect::{
    ClientConfig, ConnectClient, ConnectError, CreateConnectorRequest, ExpectedState,
};

/// A loopback port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

fn client(urls: Vec<String>) -> ConnectClient {
    let mut cfg = ClientConfig::new(urls);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(5);
    ConnectClient::new(cfg).expect("valid config")
}

#[tokio::test]
async fn refused_connection_is_a_transport_error_naming_the_url() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let err = client(vec![url.clone()]).server_info().await.unwrap_err();
    match &err {
        ConnectError::Transport { url: failed, .. } => {
            assert!(failed.starts_with(&url), "{failed}")
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("get Connect server info"), "{text}");
    assert!(
        text.to_lowercase().contains("refused"),
        "cause chain is in the message: {text}"
    );
}

#[tokio::test]
async fn all_workers_are_tried_and_the_last_one_is_reported() {
    let first = format!("http://127.0.0.1:{}", closed_port());
    let second = format!("http://127.0.0.1:{}/", closed_port());
    let err = client(vec![first, second.clone()])
        .list_connectors()
        .await
        .unwrap_err();
    match err {
        ConnectError::Transport { url, .. } => assert!(url.starts_with(&second), "{url}"),
        other => panic!("expected Transport, got {other:?}"),
    }
}

#[tokio::test]
async fn a_write_that_never_connected_is_not_outcome_unknown() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let request = CreateConnectorRequest {
        name: "inventory".into(),
        config: [(
            "connector.class",
            "io.debezium.connector.postgresql.PostgresConnector",
        )]
        .into_iter()
        .collect(),
        initial_state: None,
    };
    let err = client(vec![url])
        .create_connector(&request)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Transport { .. }), "{err:?}");
    assert!(!err.is_outcome_unknown());
}

#[tokio::test]
async fn invalid_input_is_rejected_before_any_io() {
    // Nothing listens here either, so reaching the network would fail
    // differently; these must fail locally.
    let c = client(vec![format!("http://127.0.0.1:{}", closed_port())]);
    let no_class = CreateConnectorRequest {
        name: "inventory".into(),
        config: [("database.password", "hunter2")].into_iter().collect(),
        initial_state: None,
    };
    let err = c.create_connector(&no_class).await.unwrap_err();
    assert!(
        matches!(err, ConnectError::InvalidRequest { .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    let err = c.connector_status("").await.unwrap_err();
    assert!(
        matches!(err, ConnectError::InvalidRequest { .. }),
        "{err:?}"
    );

    let err = c
        .set_logger_level(
            "io.debezium",
            "VERBOSE",
            lockstep_connect::LoggerScope::Worker,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a log level"), "{err}");

    let err = c
        .alter_offsets("inventory", &lockstep_connect::ConnectorOffsets::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::InvalidRequest { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn wait_for_state_tolerates_transport_errors_until_the_deadline() {
    let c = client(vec![format!("http://127.0.0.1:{}", closed_port())]);
    let err = c
        .wait_for_state(
            "inventory",
            &ExpectedState::running(),
            Duration::from_millis(600),
        )
        .await
        .unwrap_err();
    match err {
        ConnectError::WaitTimedOut { last_observed, .. } => {
            assert!(last_observed.starts_with("error:"), "{last_observed}")
        }
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
}

#[tokio::test]
async fn health_of_all_workers_reports_each_worker() {
    let a = format!("http://127.0.0.1:{}", closed_port());
    let b = format!("http://127.0.0.1:{}", closed_port());
    let results = client(vec![a.clone(), b.clone()])
        .health_of_all_workers()
        .await;
    assert_eq!(results.len(), 2);
    assert!(results[0].0.as_str().starts_with(&a));
    assert!(results[1].0.as_str().starts_with(&b));
    for (url, result) in results {
        assert!(
            matches!(result, Err(ConnectError::Transport { .. })),
            "{url}: {result:?}"
        );
    }
}
