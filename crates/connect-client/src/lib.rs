//! Typed async client for the Kafka Connect REST API, as served by Apache
//! Kafka 3.6 to 4.x workers (developed against Kafka Connect 4.3 running
//! Debezium 3.x).
//!
//! [`ConnectClient`] has one method per endpoint (cluster info and health,
//! connector CRUD and config, status and tasks, restart/pause/resume/stop,
//! offsets, active topics, plugins and validation, loggers) and
//! [`ConnectClient::wait_for_state`] for Connect's asynchronous state changes.
//!
//! # Invariants
//!
//! **Only HTTP 409 is retried, and it is retried for every endpoint.**
//! Connect answers 409 in exactly these cases (`HerderRequestHandler`,
//! `ConnectExceptionMapper`): the receiving worker does not know the leader
//! ("no known leader URL, likely because a rebalance was underway"), the
//! request could not reach the leader within two forwarding hops ("conflicting
//! operation (e.g. worker rebalance)"), the herder's config snapshot is stale
//! (`RebalanceNeededException`, "stale configuration"), or the connector
//! already exists (`AlreadyExistsException`). In the first three cases the
//! herder rejects the request *before* writing anything to the config topic,
//! so resending it cannot apply a change twice. That is why even
//! non-idempotent calls (`POST /connectors`, restarts, offset changes) are
//! retried: a `POST` create that got a rebalance 409 was not applied, and if a
//! retry finds the name taken it surfaces as [`ConnectError::AlreadyExists`],
//! which is never retried. Retries use exponential backoff with jitter,
//! bounded by [`RetryPolicy`] (default 6 attempts within 30 s); when they run
//! out the caller gets [`ConnectError::Conflict`].
//!
//! **Nothing else is retried.** Transport errors, 5xx and client timeouts are
//! reported, not retried, because for writes the outcome is unknown:
//!
//! * Connect answers 500 "Request timed out" when its herder does not finish
//!   within its internal 90 s (`REQUEST_TIMEOUT_MS`), and 500 "IO Error
//!   trying to forward REST request" when forwarding to the leader fails. The
//!   write may still be applied later. For writes these become
//!   [`ConnectError::OutcomeUnknown`], whose message tells the caller to
//!   re-read the connector's state before retrying; for reads they are
//!   [`ConnectError::Timeout`]. A gateway 504 is treated the same way.
//! * The client's own timeout (default 100 s, deliberately above Connect's
//!   90 s so Connect's more precise answer arrives first) or a connection lost
//!   after sending is `OutcomeUnknown` for writes and
//!   [`ConnectError::Transport`] for reads.
//!
//! **Failover only before sending.** With several worker URLs, a request moves
//! to the next URL only when the connection could not be established
//! (refused, DNS, TLS handshake, connect timeout): the request never reached
//! a worker, so this is safe for writes. Any HTTP answer, including 5xx, is
//! final, because any worker forwards writes to the leader itself. The last
//! worker that answered is tried first next time.
//!
//! **Secrets never leave unmasked.** Connector configurations are
//! [`ConnectorConfig`] values whose `Debug` masks sensitive keys (see
//! [`is_sensitive_key`]; Connect config-provider placeholders such as
//! `${file:/path:key}` are shown since they are references, not secrets).
//! Request bodies are never logged; tracing spans carry only method and path.
//! Messages copied from Connect into errors are scrubbed of credentials, and
//! Connect's "Connector config {...} contains no connector type" message,
//! which dumps the whole (provider-resolved) configuration, is redacted — and
//! avoided up front by refusing configs without `connector.class` locally.
//! Decode errors on responses that may contain configuration keep only the
//! JSON structure of the body and serde's error position, never values.
//! Basic-auth passwords are [`Secret`]s, and worker URLs with embedded
//! credentials are rejected.
//!
//! **Forward compatible decoding.** Unknown connector/task states and plugin
//! types decode into catch-all variants; config values that arrive as JSON
//! numbers or booleans are read as strings; optional and version-dependent
//! fields default. A newer worker should not make decoding fail.
//!
//! **Pure core, thin I/O.** URL building ([`url::Url::path_segments_mut`], so
//! connector names with `/`, spaces or `%` stay one path segment), error
//! classification from `(status, body)`, status-dependent outcome
//! interpretation and decoding are pure functions with unit tests; only
//! the private `ConnectClient::send_to` touches the network. There is deliberately no
//! mock HTTP server: I/O is tested against a real Connect worker.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod config;
mod error;
mod interpret;
mod model;
mod request;
mod retry;
mod wait;

pub use client::{
    BasicAuth, ClientConfig, ConnectClient, Secret, TlsConfig, CONNECT_INTERNAL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
pub use config::{
    is_config_provider_placeholder, is_sensitive_key, mask_value, scrub_text, ConfigPatch,
    ConnectorConfig, MASK,
};
pub use error::{ConnectError, Result};
pub use model::{
    ActiveTopics, ConfigInfo, ConfigInfos, ConfigKeyInfo, ConfigValueInfo, ConnectorInfo,
    ConnectorOffset, ConnectorOffsets, ConnectorState, ConnectorStateInfo, ConnectorStatus,
    ConnectorType, CreateConnectorRequest, Expand, ExpandedConnector, HealthStatus, InitialState,
    LoggerLevel, LoggerScope, Message, PluginInfo, PluginType, PutConfigOutcome, RestartOptions,
    RestartOutcome, ServerInfo, SetLoggerOutcome, TaskId, TaskInfo, TaskStatus, WorkerStatus,
};
pub use retry::RetryPolicy;
pub use url::Url;
pub use wait::{ExpectedState, TasksExpectation, Verdict};
