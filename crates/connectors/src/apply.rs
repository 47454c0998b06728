//! Apply: makes the cluster match the manifests, through Connect's REST API.
//!
//! 1. Every configuration that would be created or updated is validated with
//!    `PUT /connector-plugins/{class}/config/validate`. If any is invalid, nothing is changed
//!    and every problem (Connect's own messages, secrets scrubbed) is returned.
//! 2. Changes run in a stable order (creates and updates by name, then deletes by name).
//!    409 answers during rebalances are retried with backoff inside the client.
//! 3. After each create or update the executor waits for the connector's expected state:
//!    the manifest's `initial_state` (default RUNNING) for a create, the state it was in
//!    (RUNNING, PAUSED or STOPPED) for an update.
//! 4. Each connector gets its own outcome; one failure does not hide the others.

use std::collections::BTreeMap;
use std::time::Duration;

use lockstep_connect::{
    ConnectClient, ConnectError, ConnectorConfig, ConnectorState, CreateConnectorRequest, Expand,
    ExpectedState, InitialState,
};
use serde::Serialize;

use crate::manifest::ManifestSet;
use crate::plan::{Action, Plan};

/// A connector as it is on the cluster.
#[derive(Debug, Clone)]
pub struct LiveConnector {
    /// The stored configuration (placeholders unresolved, as Connect returns it).
    pub config: ConnectorConfig,
    /// The connector's state, when Connect reported one.
    pub state: Option<ConnectorState>,
}

/// Reads every connector's configuration and state in one request.
pub async fn fetch_live(
    client: &ConnectClient,
) -> Result<BTreeMap<String, LiveConnector>, ConnectError> {
    // Connect leaves a connector out of the expanded listing when it has no status yet (just
    // created, or created STOPPED), so the plain listing decides which connectors exist.
    let names = client.list_connectors().await?;
    let mut listing = client.list_connectors_expanded(Expand::ALL).await?;
    for name in names {
        listing.entry(name).or_default();
    }
    let mut live = BTreeMap::new();
    for (name, expanded) in listing {
        // A connector listed without its info was being created or deleted: read it alone.
        let config = match expanded.info {
            Some(info) => info.config,
            None => match client.get_connector_config(&name).await {
                Ok(config) => config,
                Err(ConnectError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            },
        };
        live.insert(
            name,
            LiveConnector {
                config,
                state: expanded.status.map(|s| s.connector.state),
            },
        );
    }
    Ok(live)
}

/// Live configurations only, the input of [`crate::plan()`].
pub fn live_configs(live: &BTreeMap<String, LiveConnector>) -> BTreeMap<String, ConnectorConfig> {
    live.iter()
        .map(|(n, c)| (n.clone(), c.config.clone()))
        .collect()
}

/// One configuration Connect rejected, with its messages per key.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidConfig {
    pub connector: String,
    pub connector_class: String,
    /// `(key, messages)`, as Connect reported them (secrets scrubbed).
    pub errors: Vec<(String, Vec<String>)>,
}

/// Why apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Validation rejected at least one configuration; nothing was changed.
    #[error("{} connector config(s) rejected by Kafka Connect's validation; nothing was changed: {}", .0.len(), summarize(.0))]
    Invalid(Vec<InvalidConfig>),
    /// A request failed before any change was made (reading state, validating).
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

fn summarize(invalid: &[InvalidConfig]) -> String {
    invalid
        .iter()
        .map(|i| {
            let keys: Vec<String> = i
                .errors
                .iter()
                .map(|(k, msgs)| format!("{k}: {}", msgs.join("; ")))
                .collect();
            format!("{} ({})", i.connector, keys.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// How to apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Wait this long for each changed connector to reach its expected state; `None` does
    /// not wait.
    pub wait: Option<Duration>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            wait: Some(Duration::from_secs(120)),
        }
    }
}

/// What happened to one connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum OutcomeStatus {
    /// Applied and, when waited for, in its expected state.
    Applied { state: Option<String> },
    /// The change or the wait failed.
    Failed { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyOutcome {
    pub connector: String,
    pub action: Action,
    #[serde(flatten)]
    pub status: OutcomeStatus,
}

/// Outcomes in apply order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub outcomes: Vec<ApplyOutcome>,
}

impl ApplyReport {
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.status, OutcomeStatus::Failed { .. }))
            .count()
    }
}

/// Validates every configuration that `plan` would create or update. Returns the invalid
/// ones (empty when all are valid).
pub async fn validate_changes(
    client: &ConnectClient,
    manifests: &ManifestSet,
    plan: &Plan,
) -> Result<Vec<InvalidConfig>, ConnectError> {
    let mut invalid = Vec::new();
    for change in plan.changes_in_order() {
        if !matches!(change.action, Action::Create | Action::Update) {
            continue;
        }
        let Some(manifest) = manifests.get(&change.name) else {
            continue;
        };
        let config = manifest.config_with_name();
        let class = config.connector_class().unwrap_or_default().to_string();
        match client.validate_config(&class, &config).await {
            Ok(result) if result.is_valid() => {}
            Ok(result) => {
                let mut errors = result.keys_with_errors();
                if errors.is_empty() {
                    errors.push((
                        "(connector)".into(),
                        vec![format!(
                            "Connect reported {} error(s) without naming a key",
                            result.error_count
                        )],
                    ));
                }
                invalid.push(InvalidConfig {
                    connector: change.name.clone(),
                    connector_class: class,
                    errors,
                });
            }
            // An unknown plugin class is a configuration error of this connector too.
            Err(
                e @ (ConnectError::UnknownPlugin { .. }
                | ConnectError::NotFound { .. }
                | ConnectError::BadRequest { .. }),
            ) => invalid.push(InvalidConfig {
                connector: change.name.clone(),
                connector_class: class.clone(),
                errors: vec![("connector.class".into(), vec![e.to_string()])],
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(invalid)
}

fn expected_state(state: ConnectorState) -> ExpectedState {
    match state {
        ConnectorState::Paused => ExpectedState::paused(),
        ConnectorState::Stopped => ExpectedState::stopped(),
        _ => ExpectedState::running(),
    }
}

fn initial_to_state(initial: Option<InitialState>) -> ConnectorState {
    match initial {
        Some(InitialState::Paused) => ConnectorState::Paused,
        Some(InitialState::Stopped) => ConnectorState::Stopped,
        _ => ConnectorState::Running,
    }
}

/// Applies `plan` (computed from `manifests` against `live`): validates first, then changes
/// connectors one by one in plan order.
pub async fn apply(
    client: &ConnectClient,
    manifests: &ManifestSet,
    live: &BTreeMap<String, LiveConnector>,
    plan: &Plan,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let invalid = validate_changes(client, manifests, plan).await?;
    if !invalid.is_empty() {
        return Err(ApplyError::Invalid(invalid));
    }
    let mut report = ApplyReport::default();
    for change in plan.changes_in_order() {
        let name = change.name.as_str();
        let result = match change.action {
            Action::Create => {
                let Some(manifest) = manifests.get(name) else {
                    continue;
                };
                let request = CreateConnectorRequest {
                    name: name.to_string(),
                    config: manifest.config_with_name(),
                    initial_state: manifest.initial_state,
                };
                let target = initial_to_state(manifest.initial_state);
                match client.create_connector(&request).await {
                    Ok(_) => wait(client, name, target, options).await,
                    Err(e) => Err(e),
                }
            }
            Action::Update => {
                let Some(manifest) = manifests.get(name) else {
                    continue;
                };
                let target = match live.get(name).and_then(|l| l.state.clone()) {
                    Some(s @ (ConnectorState::Paused | ConnectorState::Stopped)) => s,
                    _ => ConnectorState::Running,
                };
                match client
                    .put_connector_config(name, &manifest.config_with_name())
                    .await
                {
                    Ok(_) => wait(client, name, target, options).await,
                    Err(e) => Err(e),
                }
            }
            Action::Delete => client.delete_connector(name).await.map(|()| None),
            Action::Unchanged | Action::Unmanaged => continue,
        };
        let status = match result {
            Ok(state) => {
                tracing::info!(connector = name, action = change.action.as_str(), "applied");
                OutcomeStatus::Applied { state }
            }
            Err(e) => {
                tracing::warn!(connector = name, action = change.action.as_str(), error = %e, "apply failed");
                OutcomeStatus::Failed {
                    error: e.to_string(),
                }
            }
        };
        report.outcomes.push(ApplyOutcome {
            connector: name.to_string(),
            action: change.action,
            status,
        });
    }
    Ok(report)
}

async fn wait(
    client: &ConnectClient,
    name: &str,
    target: ConnectorState,
    options: ApplyOptions,
) -> Result<Option<String>, ConnectError> {
    match options.wait {
        None => Ok(None),
        Some(timeout) => client
            .wait_for_state(name, &expected_state(target), timeout)
            .await
            .map(|s| Some(s.connector.state.as_str().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_states() {
        assert_eq!(initial_to_state(None), ConnectorState::Running);
        assert_eq!(
            initial_to_state(Some(InitialState::Stopped)),
            ConnectorState::Stopped
        );
        assert_eq!(
            expected_state(ConnectorState::Paused),
            ExpectedState::paused()
        );
        assert_eq!(
            expected_state(ConnectorState::Failed),
            ExpectedState::running()
        );
    }

    #[test]
    fn invalid_summary_names_connector_and_key() {
        let err = ApplyError::Invalid(vec![InvalidConfig {
            connector: "orders".into(),
            connector_class: "X".into(),
            errors: vec![("topic.prefix".into(), vec!["A value is required".into()])],
        }]);
        let text = err.to_string();
        assert!(
            text.contains("nothing was changed")
                && text.contains("orders (topic.prefix: A value is required)"),
            "{text}"
        );
    }
}
