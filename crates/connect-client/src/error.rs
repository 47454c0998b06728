//! Errors and the pure classification of Connect's HTTP answers.
//!
//! Every message says what failed and what to do next. Messages copied from
//! Connect are passed through [`crate::config::scrub_text`], and the one
//! Connect message known to dump a whole connector configuration
//! ("Connector config {...} contains no connector type") is redacted, so no
//! variant embeds connector configuration values.

use std::time::Duration;

use crate::config::scrub_text;
use crate::model::ErrorBody;

/// Result alias for this crate.
pub type Result<T, E = ConnectError> = std::result::Result<T, E>;

/// Maximum length of any text copied from a response into an error.
pub(crate) const MAX_MESSAGE_CHARS: usize = 600;
/// Maximum length of a body excerpt in [`ConnectError::Decode`].
pub(crate) const MAX_EXCERPT_CHARS: usize = 300;

/// Everything that can go wrong talking to Kafka Connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The [`crate::ClientConfig`] is unusable (bad URL, unreadable PEM file...).
    #[error("invalid Kafka Connect client configuration: {message}")]
    InvalidClientConfig {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The request was rejected locally before being sent.
    #[error("{operation}: {message}")]
    InvalidRequest {
        /// The operation attempted, e.g. `create connector 'inventory'`.
        operation: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// HTTP 404 for a named resource.
    #[error("{what} does not exist on this Connect cluster (Connect said: {message}); check the name with `GET /connectors` (names are case-sensitive) or create it first")]
    NotFound {
        /// The missing thing, e.g. `connector 'inventory'`.
        what: String,
        /// Connect's message.
        message: String,
    },

    /// HTTP 404 for the connector listing (`GET /connectors`), which every Connect version
    /// serves once it is up: a worker that is still starting answers 404 for every path until
    /// its REST resources are registered.
    #[error("{operation}: Kafka Connect is not ready yet (starting up?): it answered HTTP 404 to the connector listing ({message}); wait until the worker has joined its group (its log says \"Finished starting connectors and tasks\") and retry, or check that the URL points at the Connect REST API")]
    NotReady {
        /// The operation attempted.
        operation: String,
        /// What the worker said (a Jetty error page while it starts).
        message: String,
    },

    /// The worker does not implement this endpoint or method (404 for the
    /// path itself, or 405): it is older than the feature.
    #[error("{operation}: this Connect worker does not support the endpoint (HTTP {status}: {message}); it probably runs a Kafka version older than the feature needs (e.g. PATCH config and /health need 3.9+, initial_state and cluster-scoped logging need 3.7+); upgrade the workers or use an alternative call")]
    NotSupported {
        /// The operation attempted.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Connect's message.
        message: String,
    },

    /// The connector class named in a request is not installed on the cluster. Kafka 4.x wraps
    /// this `BadRequestException` in an HTTP 500, 3.x answers 400; both carry the whole plugin
    /// list in `PluginDesc{...}` form, which this variant reduces to the class names.
    #[error("connector class '{class}' is not installed on this Connect cluster (installed connector plugins: {}); fix connector.class, or install the plugin on every worker's plugin.path and restart them", installed.join(", "))]
    UnknownPlugin {
        /// The class that was asked for.
        class: String,
        /// Connector classes the cluster offers.
        installed: Vec<String>,
    },

    /// HTTP 409 "already exists" on create.
    #[error("{what} already exists (Connect said: {message}); use `PUT /connectors/<name>/config` to update it, or delete it first")]
    AlreadyExists {
        /// The conflicting resource.
        what: String,
        /// Connect's message.
        message: String,
    },

    /// HTTP 409 because of a rebalance or concurrent config change (or the 500 Connect sends
    /// for "a rebalance is expected"), still returned after all retries.
    #[error("{operation}: Connect kept answering HTTP {status} (rebalance or concurrent change) after {attempts} attempt(s) (last message: {message}); the cluster is rebalancing or its config is changing concurrently; wait for the rebalance to settle (check worker logs and `GET /connectors?expand=status`) and retry")]
    Conflict {
        /// The operation attempted.
        operation: String,
        /// 409, or 500 for Connect's RebalanceNeededException.
        status: u16,
        /// Attempts made, including the first.
        attempts: u32,
        /// Connect's last message.
        message: String,
    },

    /// HTTP 400/422/other 4xx: Connect rejected the request. Invalid
    /// configurations are reported this way; the message is Connect's own.
    #[error("{operation}: Connect rejected the request (HTTP {status}): {message}; fix the request (for configs, run `PUT /connector-plugins/<class>/config/validate` to see per-key errors) and try again")]
    BadRequest {
        /// The operation attempted.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Connect's message (scrubbed of embedded credentials).
        message: String,
    },

    /// HTTP 400 because offsets can only be changed on a STOPPED connector.
    #[error("cannot modify offsets of connector '{connector}' because it is not STOPPED (Connect said: {message}); stop it first with `PUT /connectors/{connector}/stop`, wait until its status shows STOPPED with no tasks, then retry")]
    OffsetsRequireStopped {
        /// Connector name.
        connector: String,
        /// Connect's message.
        message: String,
    },

    /// HTTP 403 because a worker feature is switched off (topic tracking).
    #[error("{operation}: the feature is disabled on this Connect cluster ({message}); enable it in the worker config (`topic.tracking.enable`, `topic.tracking.allow.reset`) or skip this call")]
    FeatureDisabled {
        /// The operation attempted.
        operation: String,
        /// Connect's message.
        message: String,
    },

    /// HTTP 401/403: authentication or authorisation failed.
    #[error("{operation}: Connect refused the credentials (HTTP {status}: {message}); check the basic-auth username/password or client certificate configured for lockstep, and the worker's REST authorisation rules")]
    Unauthorized {
        /// The operation attempted.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Connect's (or the proxy's) message.
        message: String,
    },

    /// A write may or may not have been applied: Connect timed out internally
    /// (HTTP 500 "Request timed out" after its 90 s herder timeout, or a
    /// failed forward to the leader), a gateway timed out, or the client gave
    /// up / lost the connection after sending.
    #[error("{operation}: outcome unknown, the change may or may not have been applied ({detail}); re-read the connector's state (`GET /connectors/<name>` and `/status`) before retrying")]
    OutcomeUnknown {
        /// The operation attempted.
        operation: String,
        /// What happened.
        detail: String,
    },

    /// A read timed out inside Connect (HTTP 500 "Request timed out") or at a
    /// gateway (504). Nothing was changed.
    #[error("{operation}: Connect timed out serving the request ({message}); the worker is probably rebalancing or overloaded; retry later and check the worker logs")]
    Timeout {
        /// The operation attempted.
        operation: String,
        /// Connect's message.
        message: String,
    },

    /// Other 5xx answers.
    #[error("{operation}: Connect failed with HTTP {status}: {message}; check the worker logs; if this was a write, re-read the connector's state before retrying")]
    Server {
        /// The operation attempted.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Connect's message.
        message: String,
    },

    /// An HTTP status this client does not expect for the endpoint (e.g. a
    /// redirect from a proxy).
    #[error("{operation}: unexpected HTTP {status} from Connect: {message}; check that the URL points at the Connect REST API and not at a proxy login page")]
    UnexpectedStatus {
        /// The operation attempted.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Body excerpt.
        message: String,
    },

    /// The request could not be delivered (connection refused, DNS failure,
    /// TLS failure, connect timeout) to any configured worker, or a read
    /// failed in transit or hit the client-side timeout (reads only; for
    /// writes that is [`ConnectError::OutcomeUnknown`]).
    ///
    /// The message already contains the whole cause chain (`detail`), so the
    /// reqwest error is kept in `cause` rather than exposed as `source()`,
    /// which would print it twice with `{:#}`-style reporters.
    #[error("{operation}: request to Kafka Connect at {url} failed: {detail}; check the URL, that the worker is running and reachable from here, and the TLS settings (a timeout can also mean the worker is overloaded or rebalancing)")]
    Transport {
        /// The operation attempted.
        operation: String,
        /// The last URL tried.
        url: String,
        /// The underlying error and its causes, flattened.
        detail: String,
        /// The underlying error.
        cause: reqwest::Error,
    },

    /// A successful response could not be decoded.
    #[error("could not decode {what}: {detail} (body excerpt: {excerpt}); the worker may run an unsupported Kafka version or a proxy altered the response")]
    Decode {
        /// What was being decoded.
        what: String,
        /// Parser error (without values when the body may carry configuration).
        detail: String,
        /// Truncated body; structure only when the body may carry configuration.
        excerpt: String,
    },

    /// `wait_for_state` saw the connector or a task FAILED.
    #[error("connector '{connector}' failed while waiting for {expected}: {detail}; inspect `GET /connectors/{connector}/status` for the full trace, fix the cause, then restart it")]
    ConnectorFailed {
        /// Connector name.
        connector: String,
        /// The state that was awaited.
        expected: String,
        /// Which instance failed and the first line of its trace.
        detail: String,
    },

    /// `wait_for_state` ran out of time.
    #[error("connector '{connector}' did not reach {expected} within {waited:?} (last observed: {last_observed}); Connect applies state changes asynchronously: check the worker logs, then wait longer or retry")]
    WaitTimedOut {
        /// Connector name.
        connector: String,
        /// The state that was awaited.
        expected: String,
        /// Last status seen (or last error).
        last_observed: String,
        /// Time spent waiting.
        waited: Duration,
    },
}

impl ConnectError {
    /// True for errors where a write may have been applied.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown { .. })
    }

    /// True for timeouts: Connect's own (reads), a gateway's, or the client's.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Transport { cause, .. } => cause.is_timeout(),
            _ => false,
        }
    }

    /// True for [`ConnectError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The HTTP status Connect answered with, when the error came from one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::NotFound { .. } | Self::NotReady { .. } => Some(404),
            Self::AlreadyExists { .. } => Some(409),
            Self::Conflict { status, .. } => Some(*status),
            Self::OffsetsRequireStopped { .. } => Some(400),
            Self::UnknownPlugin { .. } => None,
            Self::FeatureDisabled { .. } => Some(403),
            Self::NotSupported { status, .. }
            | Self::BadRequest { status, .. }
            | Self::Unauthorized { status, .. }
            | Self::Server { status, .. }
            | Self::UnexpectedStatus { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Whether a request can change state on the cluster. Decides how timeouts
/// and lost connections are reported, never whether 409s are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Semantics {
    /// GETs and `PUT .../config/validate`: no state change.
    Read,
    /// Everything else.
    Write,
}

/// What the classifier needs to know about the request.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    /// e.g. `create connector 'inventory'`.
    pub operation: String,
    /// The resource named in 404s, e.g. `connector 'inventory'`.
    pub subject: Option<String>,
    /// The connector concerned, if any.
    pub connector: Option<String>,
    /// Read or write.
    pub semantics: Semantics,
    /// The connector listing: a 404 means the worker is not serving its API yet.
    pub listing: bool,
}

/// `error` and its `source()` chain as one line, e.g. `error sending request
/// for url (...): client error (Connect): tcp connect error: Connection
/// refused (os error 111)`. Repeated segments are skipped.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    scrub_text(&parts.join(": ")).into_owned()
}

/// Truncates `text` to at most `max` characters (on a char boundary),
/// appending `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &text[..idx]),
        None => text.to_string(),
    }
}

/// Connect's message from an error body, scrubbed and truncated. Falls back to
/// the raw body for non-JSON answers (e.g. from a proxy), or to a placeholder
/// for an empty body.
pub(crate) fn error_message(body: &str) -> String {
    let raw = match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            message: Some(m), ..
        }) => m,
        Ok(ErrorBody {
            message: None,
            error_code,
        }) => match error_code {
            Some(code) => format!("error_code {code} without message"),
            None => "no message".to_string(),
        },
        Err(_) if body.trim().is_empty() => "empty response body".to_string(),
        Err(_) => body.trim().to_string(),
    };
    sanitize_message(&raw)
}

/// Redacts configuration dumps and embedded credentials, then truncates.
pub(crate) fn sanitize_message(raw: &str) -> String {
    let redacted = redact_config_dump(raw);
    truncate(&scrub_text(&redacted), MAX_MESSAGE_CHARS)
}

/// `AbstractHerder` reports a missing `connector.class` as
/// `Connector config {<entire config, provider placeholders resolved>} contains
/// no connector type`. Replace the map.
fn redact_config_dump(msg: &str) -> String {
    const MARKER: &str = "Connector config {";
    let Some(start) = msg.find(MARKER) else {
        return msg.to_string();
    };
    let open = start + MARKER.len();
    let end = match msg.rfind("} contains") {
        Some(e) if e >= open => e,
        _ => match msg.rfind('}') {
            Some(e) if e >= open => e,
            _ => msg.len(),
        },
    };
    let mut out = String::with_capacity(msg.len().min(200));
    out.push_str(&msg[..open]);
    out.push_str("<redacted>");
    out.push_str(&msg[end..]);
    out
}

fn is_offsets_stopped_message(lower: &str) -> bool {
    lower.contains("stopped state") && lower.contains("offsets")
}

/// Jersey's answer when no resource matches the path (old worker).
fn is_unmatched_path_message(lower: &str) -> bool {
    lower.trim() == "http 404 not found"
        || lower.trim().is_empty()
        || lower == "empty response body"
}

fn is_connect_timeout_message(lower: &str) -> bool {
    lower.contains("timed out")
        || lower.contains("request interrupted")
        || lower.contains("forward rest request")
}

/// Maps a non-2xx answer to an error. Pure: tested without a network.
pub(crate) fn classify(status: u16, body: &str, ctx: &RequestContext) -> ConnectError {
    let message = error_message(body);
    let lower = message.to_ascii_lowercase();
    let operation = ctx.operation.clone();
    let what = || ctx.subject.clone().unwrap_or_else(|| ctx.operation.clone());
    if let Some(unknown) = unknown_plugin(&message) {
        return unknown;
    }
    match status {
        400 => match &ctx.connector {
            Some(connector) if is_offsets_stopped_message(&lower) => {
                ConnectError::OffsetsRequireStopped {
                    connector: connector.clone(),
                    message,
                }
            }
            _ => ConnectError::BadRequest {
                operation,
                status,
                message,
            },
        },
        401 => ConnectError::Unauthorized {
            operation,
            status,
            message,
        },
        403 if lower.contains("topic tracking") => {
            ConnectError::FeatureDisabled { operation, message }
        }
        403 => ConnectError::Unauthorized {
            operation,
            status,
            message,
        },
        404 if ctx.listing => ConnectError::NotReady { operation, message },
        404 if is_unmatched_path_message(&lower) => ConnectError::NotSupported {
            operation,
            status,
            message,
        },
        404 => ConnectError::NotFound {
            what: what(),
            message,
        },
        405 => ConnectError::NotSupported {
            operation,
            status,
            message,
        },
        409 if lower.contains("already exists") => ConnectError::AlreadyExists {
            what: what(),
            message,
        },
        409 => ConnectError::Conflict {
            operation,
            status: 409,
            attempts: 1,
            message,
        },
        // Connect's RebalanceNeededException reaches the client as a 500 (seen on Kafka
        // Connect 4.3 while a connector was being created elsewhere in the group): it is the
        // same transient state as a 409 and is retried like one.
        500 if lower.contains("rebalance is expected") => ConnectError::Conflict {
            operation,
            status: 500,
            attempts: 1,
            message,
        },
        500 if is_connect_timeout_message(&lower) => timeout_error(ctx, status, message),
        504 => timeout_error(ctx, status, message),
        s if (400..500).contains(&s) => ConnectError::BadRequest {
            operation,
            status,
            message,
        },
        s if (500..600).contains(&s) => ConnectError::Server {
            operation,
            status,
            message,
        },
        _ => ConnectError::UnexpectedStatus {
            operation,
            status,
            message,
        },
    }
}

const UNKNOWN_CLASS_MARKER: &str =
    "Failed to find any class that implements Connector and which name matches ";

/// Recognises Connect's "no such connector class" answer (`Plugins.connectorClass`).
fn unknown_plugin(message: &str) -> Option<ConnectError> {
    let start = message.find(UNKNOWN_CLASS_MARKER)? + UNKNOWN_CLASS_MARKER.len();
    let rest = &message[start..];
    let class = rest
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap_or_default()
        .to_string();
    let mut installed: Vec<String> = rest
        .split("name='")
        .skip(1)
        .filter_map(|part| part.split('\'').next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    installed.sort();
    installed.dedup();
    Some(ConnectError::UnknownPlugin { class, installed })
}

fn timeout_error(ctx: &RequestContext, status: u16, message: String) -> ConnectError {
    match ctx.semantics {
        Semantics::Write => ConnectError::OutcomeUnknown {
            operation: ctx.operation.clone(),
            detail: format!("Connect answered HTTP {status}: {message}"),
        },
        Semantics::Read => ConnectError::Timeout {
            operation: ctx.operation.clone(),
            message,
        },
    }
}

/// A body excerpt safe to put in an error. When the body may carry connector
/// configuration, only its JSON structure (keys and value types) is kept.
pub(crate) fn safe_excerpt(body: &str, may_contain_config: bool) -> String {
    if !may_contain_config {
        return truncate(&scrub_text(body.trim()), MAX_EXCERPT_CHARS);
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => truncate(&shape_of(&v).to_string(), MAX_EXCERPT_CHARS),
        Err(_) => format!(
            "<{} bytes of non-JSON body withheld: the response may contain connector configuration>",
            body.len()
        ),
    }
}

/// Replaces every scalar in `v` by its type name.
fn shape_of(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Null => Value::Null,
        Value::Bool(_) => Value::String("<bool>".into()),
        Value::Number(_) => Value::String("<number>".into()),
        Value::String(_) => Value::String("<string>".into()),
        Value::Array(items) => Value::Array(items.iter().map(shape_of).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape_of(v))).collect())
        }
    }
}

/// Decodes a JSON success body into `T`.
///
/// When `may_contain_config` is set, the error detail keeps only serde's error
/// category and position, since serde's message can quote the offending value.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    body: &str,
    what: &str,
    may_contain_config: bool,
) -> Result<T> {
    serde_json::from_str(body).map_err(|e| ConnectError::Decode {
        what: what.to_string(),
        detail: if may_contain_config {
            format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )
        } else {
            e.to_string()
        },
        excerpt: safe_excerpt(body, may_contain_config),
    })
}

#[cfg(test)]
mod unknown_plugin_tests {
    use super::*;

    #[test]
    fn reduces_connects_plugin_dump_to_class_names() {
        let message = "org.apache.kafka.connect.runtime.rest.errors.BadRequestException: Failed to find any class that implements Connector and which name matches com.example.Nope, available connectors are: PluginDesc{klass=class a.B, name='a.B', version='1', type=source, typeName='source', location='classpath'}, PluginDesc{klass=class c.D, name='c.D', version='2', type=sink}";
        for status in [400, 500] {
            let body = serde_json::json!({ "error_code": status, "message": message }).to_string();
            let ctx = RequestContext {
                operation: "validate config for plugin 'com.example.Nope'".into(),
                subject: None,
                connector: None,
                semantics: Semantics::Read,
                listing: false,
            };
            let err = classify(status, &body, &ctx);
            match &err {
                ConnectError::UnknownPlugin { class, installed } => {
                    assert_eq!(class, "com.example.Nope");
                    assert_eq!(installed, &["a.B".to_string(), "c.D".to_string()]);
                }
                other => panic!("HTTP {status}: {other:?}"),
            }
            let text = err.to_string();
            assert!(
                text.contains("'com.example.Nope' is not installed")
                    && !text.contains("PluginDesc"),
                "{text}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(semantics: Semantics) -> RequestContext {
        RequestContext {
            operation: "test operation on connector 'inv'".into(),
            subject: Some("connector 'inv'".into()),
            connector: Some("inv".into()),
            semantics,
            listing: false,
        }
    }

    fn kind(e: &ConnectError) -> &'static str {
        match e {
            ConnectError::NotFound { .. } => "NotFound",
            ConnectError::NotReady { .. } => "NotReady",
            ConnectError::NotSupported { .. } => "NotSupported",
            ConnectError::AlreadyExists { .. } => "AlreadyExists",
            ConnectError::Conflict { .. } => "Conflict",
            ConnectError::BadRequest { .. } => "BadRequest",
            ConnectError::OffsetsRequireStopped { .. } => "OffsetsRequireStopped",
            ConnectError::FeatureDisabled { .. } => "FeatureDisabled",
            ConnectError::Unauthorized { .. } => "Unauthorized",
            ConnectError::OutcomeUnknown { .. } => "OutcomeUnknown",
            ConnectError::Timeout { .. } => "Timeout",
            ConnectError::Server { .. } => "Server",
            ConnectError::UnexpectedStatus { .. } => "UnexpectedStatus",
            _ => "other",
        }
    }

    #[test]
    fn classification_table() {
        use Semantics::{Read, Write};
        let cases: &[(u16, &str, Semantics, &str)] = &[
            (
                404,
                r#"{"error_code":404,"message":"Connector inv not found"}"#,
                Read,
                "NotFound",
            ),
            (
                404,
                r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#,
                Read,
                "NotSupported",
            ),
            (
                405,
                r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#,
                Write,
                "NotSupported",
            ),
            (
                409,
                r#"{"error_code":409,"message":"Cannot complete request momentarily due to stale configuration (typically caused by a concurrent config change)"}"#,
                Write,
                "Conflict",
            ),
            (
                409,
                r#"{"error_code":409,"message":"Cannot complete request momentarily due to no known leader URL, likely because a rebalance was underway."}"#,
                Write,
                "Conflict",
            ),
            (
                409,
                r#"{"error_code":409,"message":"Cannot complete request because of a conflicting operation (e.g. worker rebalance)"}"#,
                Read,
                "Conflict",
            ),
            (
                500,
                r#"{"error_code":500,"message":"Request cannot be completed because a rebalance is expected"}"#,
                Read,
                "Conflict",
            ),
            (
                409,
                r#"{"error_code":409,"message":"Connector inv already exists"}"#,
                Write,
                "AlreadyExists",
            ),
            (
                400,
                r#"{"error_code":400,"message":"Connector configuration is invalid and contains the following 1 error(s):\nMissing required configuration \"topic.prefix\" which has no default value.\nYou can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`"}"#,
                Write,
                "BadRequest",
            ),
            (
                400,
                r#"{"error_code":400,"message":"Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/inv/stop' endpoint"}"#,
                Write,
                "OffsetsRequireStopped",
            ),
            (
                422,
                r#"{"error_code":422,"message":"Unprocessable"}"#,
                Write,
                "BadRequest",
            ),
            (
                500,
                r#"{"error_code":500,"message":"Request timed out"}"#,
                Write,
                "OutcomeUnknown",
            ),
            (
                500,
                r#"{"error_code":500,"message":"Request timed out. The worker is currently ensuring membership in the cluster, which began at 2024-05-01T10:00:00Z"}"#,
                Write,
                "OutcomeUnknown",
            ),
            (
                500,
                r#"{"error_code":500,"message":"Request timed out"}"#,
                Read,
                "Timeout",
            ),
            (
                500,
                r#"{"error_code":500,"message":"IO Error trying to forward REST request: java.net.SocketTimeoutException"}"#,
                Write,
                "OutcomeUnknown",
            ),
            (
                500,
                r#"{"error_code":500,"message":"NullPointerException"}"#,
                Write,
                "Server",
            ),
            (504, "<html>Gateway Timeout</html>", Write, "OutcomeUnknown"),
            (504, "<html>Gateway Timeout</html>", Read, "Timeout"),
            (
                401,
                "User cannot access the resource.",
                Read,
                "Unauthorized",
            ),
            (
                403,
                r#"{"error_code":403,"message":"Forbidden"}"#,
                Read,
                "Unauthorized",
            ),
            (
                403,
                r#"{"error_code":403,"message":"Topic tracking is disabled."}"#,
                Read,
                "FeatureDisabled",
            ),
            (
                503,
                r#"{"error_code":503,"message":"Service Unavailable"}"#,
                Read,
                "Server",
            ),
            (
                502,
                "<html><body>Bad Gateway</body></html>",
                Write,
                "Server",
            ),
            (302, "", Read, "UnexpectedStatus"),
        ];
        let mut failures = Vec::new();
        for (status, body, sem, expected) in cases {
            let e = classify(*status, body, &ctx(*sem));
            if kind(&e) != *expected {
                failures.push(format!("{status} {body}: got {} ({e})", kind(&e)));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn a_conflict_reports_the_status_connect_sent() {
        for (status, body) in [
            (409, r#"{"error_code":409,"message":"stale configuration"}"#),
            (
                500,
                r#"{"error_code":500,"message":"Request cannot be completed because a rebalance is expected"}"#,
            ),
        ] {
            let e = classify(status, body, &ctx(Semantics::Read));
            assert_eq!(e.http_status(), Some(status), "{e}");
            assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
        }
    }

    #[test]
    fn non_json_body_is_used_as_message() {
        let e = classify(503, "upstream connect error", &ctx(Semantics::Read));
        assert!(e.to_string().contains("upstream connect error"), "{e}");
        let e = classify(502, "", &ctx(Semantics::Read));
        assert!(e.to_string().contains("empty response body"), "{e}");
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = classify(
            500,
            r#"{"error_code":500,"message":"Request timed out"}"#,
            &ctx(Semantics::Write),
        );
        assert!(
            e.to_string().contains("re-read the connector's state"),
            "{e}"
        );
        let e = classify(
            400,
            r#"{"error_code":400,"message":"Connectors must be in the STOPPED state before their offsets can be modified."}"#,
            &ctx(Semantics::Write),
        );
        assert!(e.to_string().contains("stop it first"), "{e}");
        let e = classify(
            404,
            r#"{"error_code":404,"message":"Connector inv not found"}"#,
            &ctx(Semantics::Read),
        );
        assert!(
            e.to_string().starts_with("connector 'inv' does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_404_to_the_connector_listing_means_connect_is_not_ready() {
        let listing = RequestContext {
            operation: "list connectors with details".into(),
            subject: None,
            connector: None,
            semantics: Semantics::Read,
            listing: true,
        };
        // A worker still starting: Jetty's error page, Jersey's text, or nothing.
        let jetty = "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n<title>Error 404 Not Found</title>\n</head>\n<body><h2>HTTP ERROR 404 Not Found</h2>\n<table>\n<tr><th>URI:</th><td>/connectors</td></tr>\n</table>\n</body>\n</html>";
        // "Not Found" is what a restarting Kafka 4.x worker answered in the watchdog's
        // worker-kill test.
        for body in [
            "Not Found",
            jetty,
            r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#,
            "",
        ] {
            let e = classify(404, body, &listing);
            assert_eq!(kind(&e), "NotReady", "{body}: {e:?}");
            let text = e.to_string();
            assert!(text.contains("not ready yet (starting up?)"), "{text}");
            assert!(!text.contains("does not exist"), "{text}");
            assert!(!text.contains("create it first"), "{text}");
            assert_eq!(e.http_status(), Some(404));
        }
        // Other answers to the listing keep their meaning; a 404 elsewhere is still NotFound.
        assert_eq!(kind(&classify(401, "", &listing)), "Unauthorized");
        assert_eq!(
            kind(&classify(
                404,
                r#"{"error_code":404,"message":"Connector inv not found"}"#,
                &ctx(Semantics::Read)
            )),
            "NotFound"
        );
    }

    #[test]
    fn config_dump_in_error_message_is_redacted() {
        let body = r#"{"error_code":400,"message":"Connector config {name=inv, database.password=hunter2, database.user=app} contains no connector type"}"#;
        let e = classify(400, body, &ctx(Semantics::Write));
        let text = format!("{e} {e:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("database.user=app"), "{text}");
        assert!(
            text.contains("Connector config {<redacted>} contains no connector type"),
            "{text}"
        );
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = format!(r#"{{"error_code":500,"message":"{}"}}"#, "x".repeat(5000));
        let e = classify(500, &long, &ctx(Semantics::Read));
        assert!(e.to_string().len() < 1200);
    }

    #[test]
    fn decode_error_on_config_body_withholds_values() {
        let body = r#"{"name":"inv","config":{"database.password":"hunter2"},"tasks":"oops","type":"source"}"#;
        let err = decode::<crate::model::ConnectorInfo>(body, "connector info", true).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("oops"), "{text}");
        assert!(text.contains("database.password"), "{text}");
    }

    #[test]
    fn decode_error_on_plain_body_keeps_excerpt() {
        let err = decode::<crate::model::ServerInfo>("<html>login</html>", "server info", false)
            .unwrap_err();
        assert!(err.to_string().contains("<html>login</html>"), "{err}");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
