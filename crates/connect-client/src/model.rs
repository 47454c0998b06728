//! Typed request and response bodies of the Kafka Connect REST API.
//!
//! Field names and shapes follow the Jackson entities in Apache Kafka's
//! `connect/runtime/src/main/java/org/apache/kafka/connect/runtime/rest/entities/`.
//! Every enum that mirrors a Connect string has a catch-all so that a newer
//! worker introducing a value never breaks deserialisation, and optional or
//! version-dependent fields are `Option`/defaulted.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{
    deserialize_coerced_string_vec, deserialize_opt_coerced_string, is_config_provider_placeholder,
    is_sensitive_key, mask_value, ConnectorConfig, MASK,
};

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
        other: $(#[$ometa:meta])* $other:ident
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            $(#[$ometa])*
            $other(String),
        }

        impl $name {
            /// The wire representation.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::$other(s) => s.as_str(),
                }
            }
        }

        impl FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $( if s.eq_ignore_ascii_case($text) { return Ok(Self::$variant); } )+
                Ok(Self::$other(s.to_string()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let Ok(v) = s.parse();
                Ok(v)
            }
        }
    };
}

string_enum! {
    /// State of a connector or task as reported by `/status` endpoints.
    pub enum ConnectorState {
        /// Not yet assigned to a worker.
        Unassigned => "UNASSIGNED",
        /// Running.
        Running => "RUNNING",
        /// Paused: tasks stay allocated but do not process records.
        Paused => "PAUSED",
        /// Stopped (Kafka 3.5+): connector shut down, tasks de-allocated.
        Stopped => "STOPPED",
        /// Failed; see the `trace`.
        Failed => "FAILED",
        /// A restart was requested and is pending.
        Restarting => "RESTARTING",
    }
    other:
    /// A state this client does not know (reported verbatim).
    Unknown
}

string_enum! {
    /// Kind of plugin returned by `GET /connector-plugins`.
    pub enum PluginType {
        /// Source connector.
        Source => "source",
        /// Sink connector.
        Sink => "sink",
        /// Converter.
        Converter => "converter",
        /// Header converter.
        HeaderConverter => "header_converter",
        /// Single message transform.
        Transformation => "transformation",
        /// SMT predicate.
        Predicate => "predicate",
    }
    other:
    /// Any other plugin type (verbatim).
    Other
}

/// Connector type as reported by Connect (`source`, `sink`, or `unknown`).
/// Any unrecognised value is read as [`ConnectorType::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    /// A source connector (e.g. Debezium).
    Source,
    /// A sink connector.
    Sink,
    /// Connect could not determine the type (or reported something new).
    #[default]
    Unknown,
}

impl<'de> Deserialize<'de> for ConnectorType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        Ok(match s.to_ascii_lowercase().as_str() {
            "source" => Self::Source,
            "sink" => Self::Sink,
            _ => Self::Unknown,
        })
    }
}

impl fmt::Display for ConnectorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Source => "source",
            Self::Sink => "sink",
            Self::Unknown => "unknown",
        })
    }
}

/// `GET /`: the worker's version and the Kafka cluster it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Kafka version of the worker, e.g. `4.3.0`.
    pub version: String,
    /// Git commit of the Kafka build.
    #[serde(default)]
    pub commit: Option<String>,
    /// ID of the Kafka cluster backing the Connect cluster.
    #[serde(default)]
    pub kafka_cluster_id: Option<String>,
}

impl ServerInfo {
    /// `(major, minor, patch)` parsed from `version` (`4.3.0`, `3.9.1-ce`,
    /// `4.1.0-SNAPSHOT`...), or `None` when it does not start with a number.
    pub fn kafka_version(&self) -> Option<(u32, u32, u32)> {
        let mut parts = self
            .version
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some((major, minor, patch))
    }

    /// True when the worker runs at least Kafka `major.minor`; false when the
    /// version cannot be parsed. Use it to gate version-dependent calls:
    /// `initial_state` and cluster-scoped logging need 3.7, `PATCH` config and
    /// `/health` need 3.9.
    pub fn version_at_least(&self, major: u32, minor: u32) -> bool {
        self.kafka_version()
            .is_some_and(|(ma, mi, _)| (ma, mi) >= (major, minor))
    }
}

/// Body of `GET /health` (Kafka 3.9+, KIP-1017).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// `healthy`, `starting` or `unhealthy`.
    pub status: String,
    /// Human-readable detail, including the stage the worker is stuck in.
    #[serde(default)]
    pub message: Option<String>,
}

/// Outcome of `GET /health`.
///
/// Connect answers 200 when healthy, 503 while starting and 500 when a started
/// worker cannot serve requests; workers older than Kafka 3.9 have no such
/// endpoint and answer 404.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    /// The worker completed startup and its herder answers requests.
    Healthy {
        /// Connect's message.
        message: String,
    },
    /// The worker is still starting (HTTP 503).
    Starting {
        /// Connect's message, naming the startup stage.
        message: String,
    },
    /// The worker started but its herder did not answer in time (HTTP 500).
    Unhealthy {
        /// Connect's message, naming the stage it is stuck in.
        message: String,
    },
    /// The worker predates Kafka 3.9 and has no health endpoint (HTTP 404);
    /// fall back to `GET /` plus `GET /connectors` to judge liveness.
    EndpointAbsent,
}

impl HealthStatus {
    /// True only for [`HealthStatus::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy { .. })
    }
}

/// State of the connector instance inside [`ConnectorStateInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorStatus {
    /// Current state.
    pub state: ConnectorState,
    /// Worker running it (`host:port`).
    #[serde(default)]
    pub worker_id: Option<String>,
    /// Java stack trace when `FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Plugin version running (newer workers, KIP-891).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// State of one task inside [`ConnectorStateInfo`], also the body of
/// `GET /connectors/{name}/tasks/{id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Task number.
    pub id: u32,
    /// Current state.
    pub state: ConnectorState,
    /// Worker running it (`host:port`).
    #[serde(default)]
    pub worker_id: Option<String>,
    /// Java stack trace when `FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Plugin version running (newer workers, KIP-891).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `GET /connectors/{name}/status`: connector and task states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorStateInfo {
    /// Connector name.
    pub name: String,
    /// Connector instance state.
    pub connector: ConnectorStatus,
    /// Task states (empty when STOPPED).
    #[serde(default)]
    pub tasks: Vec<TaskStatus>,
    /// Connector type (absent on some older workers).
    #[serde(rename = "type", default)]
    pub connector_type: Option<ConnectorType>,
}

impl ConnectorStateInfo {
    /// Tasks currently in `FAILED` state.
    pub fn failed_tasks(&self) -> impl Iterator<Item = &TaskStatus> {
        self.tasks
            .iter()
            .filter(|t| t.state == ConnectorState::Failed)
    }

    /// True when the connector or any task is `FAILED`.
    pub fn has_failure(&self) -> bool {
        self.connector.state == ConnectorState::Failed || self.failed_tasks().next().is_some()
    }
}

/// Identifies a task: `{"connector": "...", "task": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskId {
    /// Connector name.
    pub connector: String,
    /// Task number.
    pub task: u32,
}

/// `GET /connectors/{name}` and the body returned by create/update calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorInfo {
    /// Connector name.
    pub name: String,
    /// Connector configuration (secrets masked in `Debug`).
    #[serde(default)]
    pub config: ConnectorConfig,
    /// Tasks currently configured.
    #[serde(default)]
    pub tasks: Vec<TaskId>,
    /// Connector type.
    #[serde(rename = "type", default)]
    pub connector_type: ConnectorType,
    /// Only set by newer workers on create when initial offsets were supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_status: Option<String>,
}

/// One entry of `GET /connectors/{name}/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Task identity.
    pub id: TaskId,
    /// Task configuration as generated by the connector (secrets masked in `Debug`).
    #[serde(default)]
    pub config: ConnectorConfig,
}

/// Which expansions to request from `GET /connectors?expand=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expand {
    /// Include `status` (states of connector and tasks).
    pub status: bool,
    /// Include `info` (config, tasks, type).
    pub info: bool,
}

impl Expand {
    /// Only `expand=status`.
    pub const STATUS: Expand = Expand {
        status: true,
        info: false,
    };
    /// Only `expand=info`.
    pub const INFO: Expand = Expand {
        status: false,
        info: true,
    };
    /// Both `expand=status&expand=info`.
    pub const ALL: Expand = Expand {
        status: true,
        info: true,
    };
}

/// One value of the map returned by `GET /connectors?expand=...`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExpandedConnector {
    /// Present when `expand=status` was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConnectorStateInfo>,
    /// Present when `expand=info` was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ConnectorInfo>,
}

/// Target state for a newly created connector (`initial_state`, Kafka 3.7+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InitialState {
    /// Start immediately (Connect's default).
    Running,
    /// Create paused.
    Paused,
    /// Create stopped: no tasks; offsets can be set before the first start.
    Stopped,
}

/// Body of `POST /connectors`.
///
/// `initial_state` is omitted from the JSON when `None`, so the request is
/// also accepted by workers older than Kafka 3.7. Do not set it for such
/// workers (check [`ServerInfo::version_at_least`]`(3, 7)`): they do not know
/// the field, so the connector would not be created in the requested state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateConnectorRequest {
    /// Connector name.
    pub name: String,
    /// Full configuration (must contain `connector.class`).
    pub config: ConnectorConfig,
    /// Optional initial target state (Kafka 3.7+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<InitialState>,
}

/// Result of `PUT /connectors/{name}/config`, which creates or replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutConfigOutcome {
    /// HTTP 201: the connector did not exist and was created.
    Created(ConnectorInfo),
    /// HTTP 200: an existing connector's configuration was replaced.
    Updated(ConnectorInfo),
}

impl PutConfigOutcome {
    /// The connector info in either case.
    pub fn info(&self) -> &ConnectorInfo {
        match self {
            Self::Created(i) | Self::Updated(i) => i,
        }
    }

    /// True when the call created the connector.
    pub fn created(&self) -> bool {
        matches!(self, Self::Created(_))
    }
}

/// Query options of `POST /connectors/{name}/restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestartOptions {
    /// Also restart tasks (`includeTasks=true`).
    pub include_tasks: bool,
    /// Restart only instances that are FAILED (`onlyFailed=true`).
    pub only_failed: bool,
}

/// Result of `POST /connectors/{name}/restart`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartOutcome {
    /// Old-style restart of the connector instance only (both options false):
    /// Connect answers 204 (200 on some older versions) with no body.
    ConnectorOnly,
    /// HTTP 202: the restart was accepted; instances to be restarted are
    /// reported as `RESTARTING`. The restart itself is asynchronous.
    Accepted(ConnectorStateInfo),
}

/// One `{partition, offset}` pair of a connector's offsets.
///
/// For source connectors both maps are defined by the connector (Debezium
/// Postgres: partition `{"server": "<topic.prefix>"}`, offset
/// `{"lsn": ..., "lsn_proc": ..., "txId": ..., "ts_usec": ...}`); for sink
/// connectors they are `{"kafka_topic", "kafka_partition"}` and
/// `{"kafka_offset"}`. In `PATCH` requests a `None` offset removes the
/// partition's offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorOffset {
    /// Source/sink partition.
    pub partition: serde_json::Map<String, serde_json::Value>,
    /// Position within the partition (`null` = none / delete).
    #[serde(default)]
    pub offset: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ConnectorOffset {
    /// A sink-connector offset for `topic`/`partition` at `offset`.
    pub fn sink(topic: &str, partition: i32, offset: i64) -> Self {
        let mut p = serde_json::Map::new();
        p.insert("kafka_topic".into(), topic.into());
        p.insert("kafka_partition".into(), partition.into());
        let mut o = serde_json::Map::new();
        o.insert("kafka_offset".into(), offset.into());
        Self {
            partition: p,
            offset: Some(o),
        }
    }
}

/// `GET /connectors/{name}/offsets` and the body of `PATCH .../offsets`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectorOffsets {
    /// All known partitions and their offsets.
    #[serde(default)]
    pub offsets: Vec<ConnectorOffset>,
}

/// A plain `{"message": "..."}` response (offset alteration/reset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Connect's message.
    pub message: String,
}

/// One entry of `GET /connector-plugins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Fully-qualified class name.
    #[serde(rename = "class")]
    pub class_name: String,
    /// Plugin kind.
    #[serde(rename = "type")]
    pub plugin_type: PluginType,
    /// Plugin version, when the plugin declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A configuration key definition (`ConfigKeyInfo`), as returned by
/// `GET /connector-plugins/{plugin}/config` and inside validation results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKeyInfo {
    /// Key name.
    pub name: String,
    /// Type (`STRING`, `INT`, `PASSWORD`, `LIST`, ...).
    #[serde(rename = "type", default)]
    pub key_type: String,
    /// Whether the key has no default and must be set.
    #[serde(default)]
    pub required: bool,
    /// Default value as a string, if any.
    #[serde(default, deserialize_with = "deserialize_opt_coerced_string")]
    pub default_value: Option<String>,
    /// `HIGH`, `MEDIUM`, `LOW`.
    #[serde(default)]
    pub importance: Option<String>,
    /// Documentation text.
    #[serde(default)]
    pub documentation: Option<String>,
    /// Group name.
    #[serde(default)]
    pub group: Option<String>,
    /// Order within group (`order` on the wire; `order_in_group` accepted).
    #[serde(default, alias = "order_in_group")]
    pub order: Option<i64>,
    /// Display width hint.
    #[serde(default)]
    pub width: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Keys whose validity depends on this one.
    #[serde(default, deserialize_with = "deserialize_coerced_string_vec")]
    pub dependents: Vec<String>,
}

/// The validated value of one key (`ConfigValueInfo`).
///
/// `Debug` masks `value` when `name` is a sensitive key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValueInfo {
    /// Key name.
    pub name: String,
    /// Value as seen by the validator (Connect shows `PASSWORD` keys as
    /// `[hidden]`, but other sensitive keys may be echoed verbatim).
    #[serde(default, deserialize_with = "deserialize_opt_coerced_string")]
    pub value: Option<String>,
    /// Values the plugin recommends.
    #[serde(default, deserialize_with = "deserialize_coerced_string_vec")]
    pub recommended_values: Vec<String>,
    /// Validation errors for this key.
    #[serde(default, deserialize_with = "deserialize_coerced_string_vec")]
    pub errors: Vec<String>,
    /// Whether the key is relevant given the other values.
    #[serde(default = "default_true")]
    pub visible: bool,
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for ConfigValueInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigValueInfo")
            .field("name", &self.name)
            .field(
                "value",
                &self.value.as_deref().map(|v| mask_value(&self.name, v)),
            )
            .field("recommended_values", &self.recommended_values)
            .field("errors", &self.safe_errors())
            .field("visible", &self.visible)
            .finish()
    }
}

impl ConfigValueInfo {
    /// The errors with any echo of a secret value replaced by [`MASK`].
    pub fn safe_errors(&self) -> Vec<String> {
        let secret = self.value.as_deref().filter(|v| {
            is_sensitive_key(&self.name) && v.len() >= 3 && !is_config_provider_placeholder(v)
        });
        self.errors
            .iter()
            .map(|e| {
                let e = match secret {
                    Some(s) => e.replace(s, MASK),
                    None => e.clone(),
                };
                crate::config::scrub_text(&e).into_owned()
            })
            .collect()
    }
}

/// One key in a validation result: its definition and validated value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigInfo {
    /// The key definition.
    pub definition: ConfigKeyInfo,
    /// The validated value.
    pub value: ConfigValueInfo,
}

/// `PUT /connector-plugins/{plugin}/config/validate` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigInfos {
    /// Connector class that was validated.
    pub name: String,
    /// Total number of errors across keys.
    #[serde(default)]
    pub error_count: u32,
    /// Group names in display order.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Per-key results.
    #[serde(default)]
    pub configs: Vec<ConfigInfo>,
}

impl ConfigInfos {
    /// `(key, errors)` for every key that has at least one error, in the order
    /// Connect returned them. Echoes of secret values are masked.
    pub fn keys_with_errors(&self) -> Vec<(String, Vec<String>)> {
        self.configs
            .iter()
            .filter(|c| !c.value.errors.is_empty())
            .map(|c| (c.value.name.clone(), c.value.safe_errors()))
            .collect()
    }

    /// True when Connect reported no errors.
    pub fn is_valid(&self) -> bool {
        self.error_count == 0 && self.configs.iter().all(|c| c.value.errors.is_empty())
    }
}

/// Level of one logger (`GET /admin/loggers[/{logger}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggerLevel {
    /// Level name (`INFO`, `DEBUG`, ...).
    pub level: String,
    /// Epoch millis of the last change through the REST API (Kafka 3.7+);
    /// `None` when never modified at runtime or on older workers.
    #[serde(default)]
    pub last_modified: Option<i64>,
}

/// Scope of a log-level change (`?scope=`, Kafka 3.7+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoggerScope {
    /// Only the worker that receives the request (Connect's default).
    #[default]
    Worker,
    /// Every worker in the cluster (applied asynchronously via the config topic).
    Cluster,
}

/// Result of `PUT /admin/loggers/{logger}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetLoggerOutcome {
    /// HTTP 200: the level was changed on the receiving worker only; lists the
    /// affected loggers. If `LoggerScope::Cluster` was requested and this is
    /// returned, the worker predates Kafka 3.7 and ignored the scope.
    WorkerScoped {
        /// Loggers whose level changed.
        affected_loggers: Vec<String>,
    },
    /// HTTP 204: the change was published cluster-wide and is applied by each
    /// worker asynchronously.
    ClusterScoped,
}

/// `GET /connectors/{name}/topics` body: `{"<name>": {"topics": [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActiveTopics {
    /// Topics the connector has used since creation or the last reset.
    #[serde(default)]
    pub topics: Vec<String>,
}

/// Shape used to read the `topics` response.
pub(crate) type ActiveTopicsResponse = BTreeMap<String, ActiveTopics>;

/// Shape of Connect's error body (`ErrorMessage`): `{"error_code": N, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_known_and_unknown() {
        let cases = [
            ("UNASSIGNED", ConnectorState::Unassigned),
            ("RUNNING", ConnectorState::Running),
            ("PAUSED", ConnectorState::Paused),
            ("STOPPED", ConnectorState::Stopped),
            ("FAILED", ConnectorState::Failed),
            ("RESTARTING", ConnectorState::Restarting),
            ("running", ConnectorState::Running),
            ("DESTROYED", ConnectorState::Unknown("DESTROYED".into())),
        ];
        for (text, expected) in cases {
            let parsed: ConnectorState = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(parsed, expected, "{text}");
        }
        assert_eq!(
            serde_json::to_string(&ConnectorState::Unknown("NEW".into())).unwrap(),
            "\"NEW\""
        );
    }

    #[test]
    fn kafka_version_parsing() {
        let info = |v: &str| ServerInfo {
            version: v.into(),
            commit: None,
            kafka_cluster_id: None,
        };
        assert_eq!(info("4.3.0").kafka_version(), Some((4, 3, 0)));
        assert_eq!(info("3.9.1-ce").kafka_version(), Some((3, 9, 1)));
        assert_eq!(info("4.1.0-SNAPSHOT").kafka_version(), Some((4, 1, 0)));
        assert_eq!(info("unknown").kafka_version(), None);
        assert!(info("4.3.0").version_at_least(3, 9));
        assert!(info("3.7.0").version_at_least(3, 7));
        assert!(!info("3.6.2").version_at_least(3, 7));
        assert!(!info("garbage").version_at_least(3, 7));
    }

    #[test]
    fn connector_type_never_fails() {
        for (text, expected) in [
            ("source", ConnectorType::Source),
            ("SINK", ConnectorType::Sink),
            ("unknown", ConnectorType::Unknown),
            ("bridge", ConnectorType::Unknown),
        ] {
            let parsed: ConnectorType = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(parsed, expected);
        }
    }

    #[test]
    fn create_request_omits_absent_initial_state() {
        let req = CreateConnectorRequest {
            name: "inv".into(),
            config: [("connector.class", "X")].into_iter().collect(),
            initial_state: None,
        };
        let json = serde_json::to_value(&req).unwrap();
        assert!(json.get("initial_state").is_none());
        let req = CreateConnectorRequest {
            initial_state: Some(InitialState::Stopped),
            ..req
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["initial_state"], "STOPPED");
    }

    #[test]
    fn config_value_debug_masks_secret_and_its_echo_in_errors() {
        let v = ConfigValueInfo {
            name: "database.password".into(),
            value: Some("hunter2".into()),
            recommended_values: vec![],
            errors: vec!["Invalid value hunter2 for configuration database.password".into()],
            visible: true,
        };
        let dbg = format!("{v:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert_eq!(
            v.safe_errors(),
            vec!["Invalid value **** for configuration database.password".to_string()]
        );
    }
}
