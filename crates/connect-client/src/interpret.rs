//! Pure interpretation of success answers whose meaning depends on the status
//! code (201 vs 200, 202 vs 204, ...). Tested without a network.

use crate::error::{decode, ConnectError, Result};
use crate::model::{
    ActiveTopicsResponse, ConnectorInfo, ConnectorStateInfo, HealthStatus, PutConfigOutcome,
    RestartOutcome, SetLoggerOutcome, WorkerStatus,
};

/// `PUT /connectors/{name}/config`: 201 = created, 200 = updated.
pub(crate) fn put_config_outcome(status: u16, body: &str) -> Result<PutConfigOutcome> {
    let info: ConnectorInfo = decode(
        body,
        "connector info returned by PUT /connectors/<name>/config",
        true,
    )?;
    Ok(if status == 201 {
        PutConfigOutcome::Created(info)
    } else {
        PutConfigOutcome::Updated(info)
    })
}

/// `POST /connectors/{name}/restart`: 204 (or 200 with no body on older
/// workers) for a connector-only restart, 202 with the state info otherwise.
pub(crate) fn restart_outcome(status: u16, body: &str) -> Result<RestartOutcome> {
    if status == 204 || body.trim().is_empty() {
        return Ok(RestartOutcome::ConnectorOnly);
    }
    let info: ConnectorStateInfo = decode(body, "connector state returned by restart", false)?;
    Ok(RestartOutcome::Accepted(info))
}

/// `GET /health`: `None` means "not a health answer, classify as an error".
pub(crate) fn health_status(status: u16, body: &str) -> Option<HealthStatus> {
    let parsed = serde_json::from_str::<WorkerStatus>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|w| w.message.clone())
        .unwrap_or_default();
    let reported = parsed.as_ref().map(|w| w.status.to_ascii_lowercase());
    match (status, reported.as_deref()) {
        (200, _) => Some(HealthStatus::Healthy { message }),
        (404, _) => Some(HealthStatus::EndpointAbsent),
        (500 | 503, Some("starting")) => Some(HealthStatus::Starting { message }),
        (500 | 503, Some("unhealthy")) => Some(HealthStatus::Unhealthy { message }),
        // A body that is not a WorkerStatus (e.g. a proxy page) is an error.
        (500 | 503, _) if parsed.is_some() => Some(if status == 503 {
            HealthStatus::Starting { message }
        } else {
            HealthStatus::Unhealthy { message }
        }),
        _ => None,
    }
}

/// `PUT /admin/loggers/{logger}`: 200 with the affected loggers (worker
/// scope), 204 when published cluster-wide.
pub(crate) fn set_logger_outcome(status: u16, body: &str) -> Result<SetLoggerOutcome> {
    if status == 204 || body.trim().is_empty() {
        return Ok(SetLoggerOutcome::ClusterScoped);
    }
    let affected_loggers: Vec<String> = decode(body, "affected loggers", false)?;
    Ok(SetLoggerOutcome::WorkerScoped { affected_loggers })
}

/// `GET /connectors/{name}/topics`: `{"<name>": {"topics": [...]}}`.
pub(crate) fn active_topics(connector: &str, body: &str) -> Result<Vec<String>> {
    let mut map: ActiveTopicsResponse = decode(body, "active topics", false)?;
    if let Some(entry) = map.remove(connector) {
        return Ok(entry.topics);
    }
    // Connect keys the map by the connector's own name; with exactly one entry
    // accept it even if the spelling differs (e.g. normalised whitespace).
    if map.len() == 1 {
        if let Some((_, entry)) = map.into_iter().next() {
            return Ok(entry.topics);
        }
    }
    Err(ConnectError::Decode {
        what: "active topics".into(),
        detail: format!("the response has no entry for connector '{connector}'"),
        excerpt: crate::error::safe_excerpt(body, false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnectorState;

    const INFO: &str = r#"{"name":"inv","config":{"connector.class":"io.debezium.connector.postgresql.PostgresConnector","name":"inv"},"tasks":[{"connector":"inv","task":0}],"type":"source"}"#;

    #[test]
    fn put_config_created_vs_updated() {
        assert!(put_config_outcome(201, INFO).unwrap().created());
        let updated = put_config_outcome(200, INFO).unwrap();
        assert!(!updated.created());
        assert_eq!(updated.info().tasks[0].task, 0);
    }

    #[test]
    fn restart_variants() {
        assert_eq!(
            restart_outcome(204, "").unwrap(),
            RestartOutcome::ConnectorOnly
        );
        assert_eq!(
            restart_outcome(200, "").unwrap(),
            RestartOutcome::ConnectorOnly
        );
        let body = r#"{"name":"inv","connector":{"state":"RESTARTING","worker_id":"w1:8083"},
            "tasks":[{"id":0,"state":"RESTARTING","worker_id":"w1:8083"},{"id":1,"state":"RUNNING","worker_id":"w2:8083"}],
            "type":"source"}"#;
        let RestartOutcome::Accepted(info) = restart_outcome(202, body).unwrap() else {
            panic!("expected Accepted");
        };
        assert_eq!(info.connector.state, ConnectorState::Restarting);
        assert_eq!(info.tasks[1].state, ConnectorState::Running);
    }

    #[test]
    fn health_table() {
        let healthy = r#"{"status":"healthy","message":"Worker has completed startup and is ready to handle requests."}"#;
        let starting = r#"{"status":"starting","message":"Worker is still starting up. The worker is currently reading to the end of the config topic"}"#;
        let unhealthy = r#"{"status":"unhealthy","message":"Worker was unable to handle this request and may be unable to handle other requests."}"#;
        let not_found = r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#;
        assert!(matches!(
            health_status(200, healthy),
            Some(HealthStatus::Healthy { .. })
        ));
        assert!(
            matches!(health_status(503, starting), Some(HealthStatus::Starting { message }) if message.contains("config topic"))
        );
        assert!(matches!(
            health_status(500, unhealthy),
            Some(HealthStatus::Unhealthy { .. })
        ));
        assert_eq!(
            health_status(404, not_found),
            Some(HealthStatus::EndpointAbsent)
        );
        // not a WorkerStatus: left to the error classifier
        assert_eq!(health_status(503, "<html>maintenance</html>"), None);
        assert_eq!(
            health_status(500, r#"{"error_code":500,"message":"boom"}"#),
            None
        );
        assert_eq!(health_status(401, ""), None);
    }

    #[test]
    fn logger_outcomes() {
        assert_eq!(
            set_logger_outcome(204, "").unwrap(),
            SetLoggerOutcome::ClusterScoped
        );
        assert_eq!(
            set_logger_outcome(200, r#"["io.debezium","io.debezium.connector.postgresql"]"#)
                .unwrap(),
            SetLoggerOutcome::WorkerScoped {
                affected_loggers: vec![
                    "io.debezium".into(),
                    "io.debezium.connector.postgresql".into()
                ]
            }
        );
    }

    #[test]
    fn topics_by_name() {
        let body =
            r#"{"inv":{"topics":["dbserver1.inventory.customers","dbserver1.inventory.orders"]}}"#;
        assert_eq!(active_topics("inv", body).unwrap().len(), 2);
        assert_eq!(active_topics("other", body).unwrap().len(), 2);
        let two = r#"{"a":{"topics":[]},"b":{"topics":[]}}"#;
        assert!(active_topics("c", two).is_err());
    }
}
