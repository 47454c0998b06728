//! Client construction and the thin HTTP layer (failover, 409 retries), plus
//! one method per REST endpoint.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use tracing::Instrument;
use url::Url;

use crate::config::{scrub_text, ConfigPatch, ConnectorConfig};
use crate::error::{classify, decode, error_chain, ConnectError, Result, Semantics};
use crate::interpret;
use crate::model::{
    ConfigInfos, ConfigKeyInfo, ConnectorInfo, ConnectorOffsets, ConnectorStateInfo,
    CreateConnectorRequest, Expand, ExpandedConnector, HealthStatus, LoggerLevel, LoggerScope,
    Message, PluginInfo, PutConfigOutcome, RestartOptions, RestartOutcome, ServerInfo,
    SetLoggerOutcome, TaskInfo, TaskStatus,
};
use crate::request::{check_name, Endpoint};
use crate::retry::RetryPolicy;
use crate::wait::{poll_interval, ExpectedState, Verdict};

/// Connect's own herder timeout (`ConnectorsResource.REQUEST_TIMEOUT_MS`).
pub const CONNECT_INTERNAL_TIMEOUT: Duration = Duration::from_secs(90);

/// Default per-request timeout: longer than Connect's internal 90 s so that
/// Connect's own "Request timed out" answer (which says more) arrives first.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(100);

/// Default TCP/TLS connect timeout; a worker that does not accept a
/// connection within this time is skipped in favour of the next URL.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Log levels accepted by `PUT /admin/loggers/{logger}` (log4j names).
const LOG_LEVELS: &[&str] = &[
    "OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL",
];

pub use lockstep_secret::Secret;

/// HTTP basic authentication (Connect's `BasicAuthSecurityRestExtension`).
#[derive(Clone, Debug)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password (masked in `Debug`).
    pub password: Secret,
}

impl BasicAuth {
    /// Credentials for `username`/`password`.
    pub fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

/// TLS settings for `https://` worker URLs.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    /// PEM bundle of CA certificates to trust in addition to the system roots
    /// (e.g. the bank's internal CA).
    pub ca_bundle: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`) for mutual TLS.
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate and host name. Only for throw-away test
    /// clusters: it allows anyone on the network path to read the basic-auth
    /// password and connector secrets.
    pub insecure_skip_verify: bool,
}

/// Everything needed to build a [`ConnectClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URLs of one or more workers of the same Connect cluster, e.g.
    /// `http://connect-1:8083`. A path prefix (reverse proxy) is allowed.
    /// Requests go to the last worker that answered; on a connection failure
    /// (refused, DNS, TLS, connect timeout) the next URL is tried. HTTP error
    /// answers never cause failover.
    pub urls: Vec<String>,
    /// Optional basic-auth credentials sent with every request.
    pub basic_auth: Option<BasicAuth>,
    /// TLS options.
    pub tls: TlsConfig,
    /// Whole-request timeout; keep it above Connect's 90 s internal timeout.
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout per URL.
    pub connect_timeout: Duration,
    /// Retry policy for 409 Conflict answers.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults (100 s request timeout, 10 s connect timeout, default 409
    /// retry policy, no auth, system TLS roots) for the given worker URLs.
    pub fn new<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            basic_auth: None,
            tls: TlsConfig::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| scrub_text(u).into_owned())
            .collect();
        f.debug_struct("ClientConfig")
            .field("urls", &urls)
            .field("basic_auth", &self.basic_auth)
            .field("tls", &self.tls)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Parses and checks one worker base URL.
pub(crate) fn parse_base_url(raw: &str) -> Result<Url> {
    let shown = scrub_text(raw.trim()).into_owned();
    let invalid = |why: String| {
        ConnectError::InvalidClientConfig {
        message: format!("connect URL '{shown}' is not a valid http(s) URL: {why}; give e.g. http://127.0.0.1:8083"),
    }
    };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "scheme '{}' is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConnectError::InvalidClientConfig {
            message: format!(
                "connect URL '{shown}' embeds credentials; remove them from the URL and configure basic auth instead, so they are not logged"
            ),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "it must not have a query string or fragment".into(),
        ));
    }
    Ok(url)
}

fn read_pem(path: &PathBuf, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| ConnectError::InvalidClientConfig {
        message: format!(
            "cannot read the {what} file '{}': {e}; check the path and its permissions",
            path.display()
        ),
    })
}

fn build_http_client(config: &ClientConfig) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_native()
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("lockstep-connect/", env!("CARGO_PKG_VERSION")))
        // A redirect usually means a proxy login page; following it would also
        // send the basic-auth header to another place. Surface it instead.
        .redirect(reqwest::redirect::Policy::none());

    let tls = &config.tls;
    if let Some(path) = &tls.ca_bundle {
        let pem = read_pem(path, "CA bundle")?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConnectError::InvalidClientConfig {
            message: format!(
                "the CA bundle '{}' is not valid PEM: {e}; it must contain one or more -----BEGIN CERTIFICATE----- blocks",
                path.display()
            ),
        })?;
        if certs.is_empty() {
            return Err(ConnectError::InvalidClientConfig {
                message: format!("the CA bundle '{}' contains no certificate", path.display()),
            });
        }
        builder = builder.tls_certs_merge(certs);
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let cert = read_pem(cert_path, "client certificate")?;
            let key = read_pem(key_path, "client key")?;
            let identity = reqwest::Identity::from_pkcs8_pem(&cert, &key).map_err(|e| ConnectError::InvalidClientConfig {
                message: format!(
                    "cannot use client certificate '{}' with key '{}': {e}; the key must be an unencrypted PKCS#8 PEM \
                     (-----BEGIN PRIVATE KEY-----); convert with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pk8.pem`",
                    cert_path.display(),
                    key_path.display()
                ),
            })?;
            builder = builder.identity(identity);
        }
        (Some(_), None) | (None, Some(_)) => return Err(ConnectError::InvalidClientConfig {
            message:
                "mutual TLS needs both a client certificate and a client key; set both or neither"
                    .into(),
        }),
        (None, None) => {}
    }
    if tls.insecure_skip_verify {
        tracing::warn!(
            "TLS certificate and host name verification is disabled for Kafka Connect requests"
        );
        builder = builder
            .tls_danger_accept_invalid_certs(true)
            .tls_danger_accept_invalid_hostnames(true);
    }
    builder
        .build()
        .map_err(|e| ConnectError::InvalidClientConfig {
            message: format!("cannot build the HTTP client: {e}; check the TLS settings"),
        })
}

struct Inner {
    http: reqwest::Client,
    urls: Vec<Url>,
    /// Index of the last worker that answered; requests start there.
    preferred: AtomicUsize,
    basic_auth: Option<BasicAuth>,
    retry: RetryPolicy,
}

/// Async client for the Kafka Connect REST API (Kafka 3.6 to 4.x).
///
/// Cheap to clone (shared connection pool). See the crate documentation for
/// the retry, failover and secret-handling invariants.
#[derive(Clone)]
pub struct ConnectClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ConnectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<&str> = self.inner.urls.iter().map(Url::as_str).collect();
        f.debug_struct("ConnectClient")
            .field("urls", &urls)
            .field("basic_auth", &self.inner.basic_auth)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// A status code and body, before interpretation.
struct RawResponse {
    status: u16,
    body: String,
}

impl ConnectClient {
    /// Validates `config` and builds the client. Fails with
    /// [`ConnectError::InvalidClientConfig`] on a bad URL, unreadable or
    /// invalid PEM files, or zero timeouts. Does not contact any worker.
    pub fn new(config: ClientConfig) -> Result<Self> {
        if config.urls.is_empty() {
            return Err(ConnectError::InvalidClientConfig {
                message:
                    "no Kafka Connect URL given; give at least one, e.g. http://127.0.0.1:8083"
                        .into(),
            });
        }
        let urls = config
            .urls
            .iter()
            .map(|u| parse_base_url(u))
            .collect::<Result<Vec<_>>>()?;
        if config.request_timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(ConnectError::InvalidClientConfig {
                message: "request and connect timeouts must be greater than zero".into(),
            });
        }
        if config.request_timeout <= CONNECT_INTERNAL_TIMEOUT {
            tracing::warn!(
                timeout = ?config.request_timeout,
                "request timeout is not above Connect's internal 90 s timeout; slow writes will be reported as outcome-unknown client timeouts"
            );
        }
        if urls.iter().any(|u| u.scheme() == "http") && config.basic_auth.is_some() {
            tracing::warn!("basic-auth credentials will be sent over plain http");
        }
        let http = build_http_client(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                urls,
                preferred: AtomicUsize::new(0),
                basic_auth: config.basic_auth,
                retry: config.retry,
            }),
        })
    }

    /// The validated worker base URLs.
    pub fn base_urls(&self) -> &[Url] {
        &self.inner.urls
    }

    // ----------------------------------------------------------------------
    // HTTP layer
    // ----------------------------------------------------------------------

    /// Sends `ep` to one worker, without failover.
    async fn send_to(
        &self,
        base: &Url,
        ep: &Endpoint,
    ) -> std::result::Result<RawResponse, SendFailure> {
        let inner = &self.inner;
        let url = ep.url(base);
        let mut req = inner
            .http
            .request(ep.method.clone(), url.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &ep.body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        if let Some(auth) = &inner.basic_auth {
            req = req.basic_auth(&auth.username, Some(auth.password.expose()));
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.text().await {
                    Ok(body) => Ok(RawResponse { status, body }),
                    Err(e) => Err(SendFailure::Failed(in_flight_error(
                        ep,
                        &url,
                        e,
                        Some(status),
                    ))),
                }
            }
            // Nothing reached the worker: safe to try another one.
            Err(e) if e.is_connect() => Err(SendFailure::NotConnected(url, e)),
            Err(e) => Err(SendFailure::Failed(in_flight_error(ep, &url, e, None))),
        }
    }

    /// Sends `ep` once, failing over to the next URL on connection errors.
    async fn send_once(&self, ep: &Endpoint) -> Result<RawResponse> {
        let inner = &self.inner;
        let n = inner.urls.len();
        let start = inner.preferred.load(Ordering::Relaxed) % n;
        let mut last_connect_error = None;
        for i in 0..n {
            let idx = (start + i) % n;
            let Some(base) = inner.urls.get(idx) else {
                continue;
            };
            match self.send_to(base, ep).await {
                Ok(raw) => {
                    inner.preferred.store(idx, Ordering::Relaxed);
                    return Ok(raw);
                }
                Err(SendFailure::NotConnected(url, e)) => {
                    tracing::debug!(worker = %base, error = %e, "connection failed; trying the next worker");
                    last_connect_error = Some((url, e));
                }
                Err(SendFailure::Failed(e)) => {
                    inner.preferred.store(idx, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        match last_connect_error {
            Some((url, cause)) => Err(transport_error(ep, &url, cause)),
            // Unreachable: `urls` is never empty.
            None => Err(ConnectError::InvalidClientConfig {
                message: "no Kafka Connect URL configured".into(),
            }),
        }
    }

    /// Sends `ep`, retrying 409 Conflict per the retry policy; returns the
    /// raw 2xx answer or the classified error.
    async fn execute(&self, ep: &Endpoint) -> Result<RawResponse> {
        let path = self
            .inner
            .urls
            .first()
            .map(|b| ep.url(b).path().to_string())
            .unwrap_or_default();
        let span = tracing::debug_span!("connect_request", method = %ep.method, path = %path);
        async {
            let started = Instant::now();
            let mut attempt: u32 = 1;
            loop {
                let raw = self.send_once(ep).await?;
                if (200..300).contains(&raw.status) {
                    tracing::debug!(status = raw.status, attempt, elapsed = ?started.elapsed(), "answered");
                    return Ok(raw);
                }
                match classify(raw.status, &raw.body, &ep.ctx) {
                    ConnectError::Conflict {
                        operation,
                        status,
                        message,
                        ..
                    } => {
                        let jitter: f64 = rand::random();
                        match self.inner.retry.next_delay(attempt, started.elapsed(), jitter) {
                            Some(delay) => {
                                tracing::debug!(attempt, status, ?delay, "rebalance or concurrent change; retrying");
                                tokio::time::sleep(delay).await;
                                attempt += 1;
                            }
                            None => {
                                return Err(ConnectError::Conflict {
                                    operation,
                                    status,
                                    attempts: attempt,
                                    message,
                                })
                            }
                        }
                    }
                    other => {
                        tracing::debug!(status = raw.status, attempt, "failed");
                        return Err(other);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        ep: Endpoint,
        what: &str,
    ) -> Result<T> {
        let raw = self.execute(&ep).await?;
        decode(&raw.body, what, ep.response_may_contain_config)
    }

    async fn execute_no_body(&self, ep: Endpoint) -> Result<()> {
        self.execute(&ep).await.map(|_| ())
    }

    // ----------------------------------------------------------------------
    // Cluster
    // ----------------------------------------------------------------------

    /// `GET /`: worker version, commit and Kafka cluster id.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        self.get_json(
            Endpoint::new(Method::GET, &[], "get Connect server info"),
            "server info",
        )
        .await
    }

    /// `GET /health` (Kafka 3.9+) of the first reachable worker (usual
    /// failover). Returns the worker's health instead of an error for
    /// 200/500/503 answers, and [`HealthStatus::EndpointAbsent`] on workers
    /// that predate the endpoint. Not retried.
    pub async fn health(&self) -> Result<HealthStatus> {
        let ep = health_endpoint();
        let span = tracing::debug_span!("connect_request", method = "GET", path = "/health");
        let raw = self.send_once(&ep).instrument(span).await?;
        interpret_health(&ep, raw)
    }

    /// `GET /health` of every configured worker, without failover: one
    /// result per base URL, in configuration order. Health is per worker, so
    /// this is what a readiness check of the whole cluster wants.
    pub async fn health_of_all_workers(&self) -> Vec<(Url, Result<HealthStatus>)> {
        let ep = health_endpoint();
        let mut out = Vec::with_capacity(self.inner.urls.len());
        for base in &self.inner.urls {
            let span = tracing::debug_span!("connect_request", method = "GET", path = "/health", worker = %base);
            let result = match self.send_to(base, &ep).instrument(span).await {
                Ok(raw) => interpret_health(&ep, raw),
                Err(SendFailure::NotConnected(url, cause)) => {
                    Err(transport_error(&ep, &url, cause))
                }
                Err(SendFailure::Failed(e)) => Err(e),
            };
            out.push((base.clone(), result));
        }
        out
    }

    // ----------------------------------------------------------------------
    // Connectors
    // ----------------------------------------------------------------------

    /// `GET /connectors`: connector names.
    pub async fn list_connectors(&self) -> Result<Vec<String>> {
        self.get_json(
            Endpoint::new(Method::GET, &["connectors"], "list connectors").listing(),
            "connector list",
        )
        .await
    }

    /// `GET /connectors?expand=status&expand=info`: all connectors with the
    /// requested details in one call. Connectors deleted while Connect builds
    /// the answer are silently left out by Connect.
    pub async fn list_connectors_expanded(
        &self,
        expand: Expand,
    ) -> Result<BTreeMap<String, ExpandedConnector>> {
        if !expand.status && !expand.info {
            let names = self.list_connectors().await?;
            return Ok(names
                .into_iter()
                .map(|n| (n, ExpandedConnector::default()))
                .collect());
        }
        let mut ep =
            Endpoint::new(Method::GET, &["connectors"], "list connectors with details").listing();
        if expand.status {
            ep = ep.query("expand", "status");
        }
        if expand.info {
            ep = ep.query("expand", "info").config_in_response();
        }
        self.get_json(ep, "expanded connector list").await
    }

    /// `POST /connectors`: creates a connector. `initial_state` needs Kafka
    /// 3.7+. Fails with [`ConnectError::AlreadyExists`] if the name is taken.
    pub async fn create_connector(
        &self,
        request: &CreateConnectorRequest,
    ) -> Result<ConnectorInfo> {
        let op = format!("create connector '{}'", request.name);
        check_name("connector", &request.name, &op)?;
        require_connector_class(&request.config, &op)?;
        let ep = Endpoint::new(Method::POST, &["connectors"], op)
            .for_connector(&request.name)
            .config_in_response()
            .json_body(request)?;
        self.get_json(ep, "connector info returned by create").await
    }

    /// `GET /connectors/{name}`: config, tasks and type.
    pub async fn get_connector(&self, name: &str) -> Result<ConnectorInfo> {
        let op = format!("get connector '{name}'");
        check_name("connector", name, &op)?;
        let ep = Endpoint::new(Method::GET, &["connectors", name], op)
            .for_connector(name)
            .config_in_response();
        self.get_json(ep, "connector info").await
    }

    /// `DELETE /connectors/{name}`.
    pub async fn delete_connector(&self, name: &str) -> Result<()> {
        let op = format!("delete connector '{name}'");
        check_name("connector", name, &op)?;
        self.execute_no_body(
            Endpoint::new(Method::DELETE, &["connectors", name], op).for_connector(name),
        )
        .await
    }

    /// `GET /connectors/{name}/config`.
    pub async fn get_connector_config(&self, name: &str) -> Result<ConnectorConfig> {
        let op = format!("get config of connector '{name}'");
        check_name("connector", name, &op)?;
        let ep = Endpoint::new(Method::GET, &["connectors", name, "config"], op)
            .for_connector(name)
            .config_in_response();
        self.get_json(ep, "connector config").await
    }

    /// `PUT /connectors/{name}/config`: creates the connector or replaces its
    /// whole configuration; tells which from 201 vs 200.
    pub async fn put_connector_config(
        &self,
        name: &str,
        config: &ConnectorConfig,
    ) -> Result<PutConfigOutcome> {
        let op = format!("put config of connector '{name}'");
        check_name("connector", name, &op)?;
        require_connector_class(config, &op)?;
        let ep = Endpoint::new(Method::PUT, &["connectors", name, "config"], op)
            .for_connector(name)
            .config_in_response()
            .json_body(config)?;
        let raw = self.execute(&ep).await?;
        interpret::put_config_outcome(raw.status, &raw.body)
    }

    /// `PATCH /connectors/{name}/config` (Kafka 3.9+): changes only the given
    /// keys (`None` removes a key). Older workers answer
    /// [`ConnectError::NotSupported`].
    pub async fn patch_connector_config(
        &self,
        name: &str,
        patch: &ConfigPatch,
    ) -> Result<ConnectorInfo> {
        let op = format!("patch config of connector '{name}'");
        check_name("connector", name, &op)?;
        let ep = Endpoint::new(Method::PATCH, &["connectors", name, "config"], op)
            .for_connector(name)
            .config_in_response()
            .json_body(patch)?;
        self.get_json(ep, "connector info returned by patch").await
    }

    /// `GET /connectors/{name}/status`.
    pub async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo> {
        let op = format!("get status of connector '{name}'");
        check_name("connector", name, &op)?;
        let ep =
            Endpoint::new(Method::GET, &["connectors", name, "status"], op).for_connector(name);
        self.get_json(ep, "connector status").await
    }

    /// `GET /connectors/{name}/tasks`: task ids and generated task configs.
    pub async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>> {
        let op = format!("list tasks of connector '{name}'");
        check_name("connector", name, &op)?;
        let ep = Endpoint::new(Method::GET, &["connectors", name, "tasks"], op)
            .for_connector(name)
            .config_in_response();
        self.get_json(ep, "task list").await
    }

    /// `GET /connectors/{name}/tasks/{task}/status`.
    pub async fn task_status(&self, name: &str, task: u32) -> Result<TaskStatus> {
        let op = format!("get status of task {task} of connector '{name}'");
        check_name("connector", name, &op)?;
        let task_s = task.to_string();
        let ep = Endpoint::new(
            Method::GET,
            &["connectors", name, "tasks", &task_s, "status"],
            op,
        )
        .for_connector(name)
        .subject(format!("task {task} of connector '{name}'"));
        self.get_json(ep, "task status").await
    }

    /// `POST /connectors/{name}/restart?includeTasks=&onlyFailed=`.
    ///
    /// With both options false this is the old connector-only restart
    /// ([`RestartOutcome::ConnectorOnly`]); otherwise Connect accepts the
    /// request (202) and restarts asynchronously.
    pub async fn restart_connector(
        &self,
        name: &str,
        options: RestartOptions,
    ) -> Result<RestartOutcome> {
        let op = format!("restart connector '{name}'");
        check_name("connector", name, &op)?;
        let ep = Endpoint::new(Method::POST, &["connectors", name, "restart"], op)
            .for_connector(name)
            .query("includeTasks", options.include_tasks.to_string())
            .query("onlyFailed", options.only_failed.to_string());
        let raw = self.execute(&ep).await?;
        interpret::restart_outcome(raw.status, &raw.body)
    }

    /// `POST /connectors/{name}/tasks/{task}/restart`.
    pub async fn restart_task(&self, name: &str, task: u32) -> Result<()> {
        let op = format!("restart task {task} of connector '{name}'");
        check_name("connector", name, &op)?;
        let task_s = task.to_string();
        self.execute_no_body(
            Endpoint::new(
                Method::POST,
                &["connectors", name, "tasks", &task_s, "restart"],
                op,
            )
            .for_connector(name)
            .subject(format!("task {task} of connector '{name}'")),
        )
        .await
    }

    /// `PUT /connectors/{name}/pause`. Asynchronous in Connect: use
    /// [`Self::wait_for_state`] with [`ExpectedState::paused`].
    pub async fn pause_connector(&self, name: &str) -> Result<()> {
        self.target_state(name, "pause").await
    }

    /// `PUT /connectors/{name}/resume`. Asynchronous in Connect: use
    /// [`Self::wait_for_state`] with [`ExpectedState::running`].
    pub async fn resume_connector(&self, name: &str) -> Result<()> {
        self.target_state(name, "resume").await
    }

    /// `PUT /connectors/{name}/stop` (Kafka 3.5+). Asynchronous in Connect:
    /// use [`Self::wait_for_state`] with [`ExpectedState::stopped`] before
    /// touching offsets.
    pub async fn stop_connector(&self, name: &str) -> Result<()> {
        self.target_state(name, "stop").await
    }

    async fn target_state(&self, name: &str, verb: &str) -> Result<()> {
        let op = format!("{verb} connector '{name}'");
        check_name("connector", name, &op)?;
        self.execute_no_body(
            Endpoint::new(Method::PUT, &["connectors", name, verb], op).for_connector(name),
        )
        .await
    }

    /// Polls `GET /connectors/{name}/status` until `expected` holds, with a
    /// poll interval growing from 250 ms to 5 s, for at most `timeout`.
    ///
    /// Returns the matching status. Fails fast with
    /// [`ConnectError::ConnectorFailed`] when something is FAILED (unless
    /// `expected.fail_fast` is false), with [`ConnectError::WaitTimedOut`]
    /// when time runs out, and immediately with [`ConnectError::NotFound`]
    /// when the connector does not exist (a connector that exists but has no
    /// status yet, as right after creation, is waited for) or on
    /// authorisation errors.
    /// Transient errors (transport, timeouts, 5xx) are tolerated until the
    /// deadline, since workers may be restarting.
    pub async fn wait_for_state(
        &self,
        name: &str,
        expected: &ExpectedState,
        timeout: Duration,
    ) -> Result<ConnectorStateInfo> {
        let started = Instant::now();
        let mut polls: u32 = 0;
        let mut last_observed: String;
        loop {
            match self.connector_status(name).await {
                Ok(status) => match expected.evaluate(&status) {
                    Verdict::Reached => return Ok(status),
                    Verdict::Failed(detail) => {
                        return Err(ConnectError::ConnectorFailed {
                            connector: name.to_string(),
                            expected: expected.to_string(),
                            detail,
                        })
                    }
                    Verdict::Pending(summary) => last_observed = summary,
                },
                Err(
                    e @ (ConnectError::Transport { .. }
                    | ConnectError::Timeout { .. }
                    | ConnectError::Server { .. }),
                ) => {
                    tracing::debug!(error = %e, "status read failed while waiting; will retry");
                    last_observed = format!("error: {e}");
                }
                // Right after a create, Connect may not have written a status
                // yet: GET status answers 404 "No status found for connector"
                // (the same answer as for a connector that does not exist).
                Err(ConnectError::NotFound { what, message })
                    if message.to_ascii_lowercase().contains("no status found") =>
                {
                    if !self.list_connectors().await?.iter().any(|n| n == name) {
                        return Err(ConnectError::NotFound { what, message });
                    }
                    last_observed = format!("no status yet ({message})");
                }
                Err(e) => return Err(e),
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout {
                return Err(ConnectError::WaitTimedOut {
                    connector: name.to_string(),
                    expected: expected.to_string(),
                    last_observed,
                    waited: elapsed,
                });
            }
            tokio::time::sleep(poll_interval(polls, timeout - elapsed)).await;
            polls = polls.saturating_add(1);
        }
    }

    // ----------------------------------------------------------------------
    // Offsets (Kafka 3.6+)
    // ----------------------------------------------------------------------

    /// `GET /connectors/{name}/offsets`.
    pub async fn get_offsets(&self, name: &str) -> Result<ConnectorOffsets> {
        let op = format!("get offsets of connector '{name}'");
        check_name("connector", name, &op)?;
        let ep =
            Endpoint::new(Method::GET, &["connectors", name, "offsets"], op).for_connector(name);
        self.get_json(ep, "connector offsets").await
    }

    /// `PATCH /connectors/{name}/offsets`: writes the given offsets (a `None`
    /// offset deletes that partition's offset). The connector must be STOPPED
    /// ([`ConnectError::OffsetsRequireStopped`] otherwise).
    pub async fn alter_offsets(&self, name: &str, offsets: &ConnectorOffsets) -> Result<Message> {
        let op = format!("alter offsets of connector '{name}'");
        check_name("connector", name, &op)?;
        if offsets.offsets.is_empty() {
            return Err(ConnectError::InvalidRequest {
                operation: op,
                message: "no partition/offset pairs given; Connect requires at least one (use reset to clear all offsets)"
                    .into(),
            });
        }
        let ep = Endpoint::new(Method::PATCH, &["connectors", name, "offsets"], op)
            .for_connector(name)
            .json_body(offsets)?;
        self.get_json(ep, "offsets alteration result").await
    }

    /// `DELETE /connectors/{name}/offsets`: resets all offsets. The connector
    /// must be STOPPED ([`ConnectError::OffsetsRequireStopped`] otherwise).
    pub async fn reset_offsets(&self, name: &str) -> Result<Message> {
        let op = format!("reset offsets of connector '{name}'");
        check_name("connector", name, &op)?;
        let ep =
            Endpoint::new(Method::DELETE, &["connectors", name, "offsets"], op).for_connector(name);
        self.get_json(ep, "offsets reset result").await
    }

    // ----------------------------------------------------------------------
    // Topics
    // ----------------------------------------------------------------------

    /// `GET /connectors/{name}/topics`: topics used since creation or the last
    /// reset. [`ConnectError::FeatureDisabled`] when topic tracking is off.
    pub async fn connector_topics(&self, name: &str) -> Result<Vec<String>> {
        let op = format!("get active topics of connector '{name}'");
        check_name("connector", name, &op)?;
        let ep =
            Endpoint::new(Method::GET, &["connectors", name, "topics"], op).for_connector(name);
        let raw = self.execute(&ep).await?;
        interpret::active_topics(name, &raw.body)
    }

    /// `PUT /connectors/{name}/topics/reset`: clears the active-topics set.
    pub async fn reset_connector_topics(&self, name: &str) -> Result<()> {
        let op = format!("reset active topics of connector '{name}'");
        check_name("connector", name, &op)?;
        self.execute_no_body(
            Endpoint::new(Method::PUT, &["connectors", name, "topics", "reset"], op)
                .for_connector(name),
        )
        .await
    }

    // ----------------------------------------------------------------------
    // Plugins
    // ----------------------------------------------------------------------

    /// `GET /connector-plugins?connectorsOnly=`: installed plugins; with
    /// `connectors_only = false` also converters, transforms and predicates.
    pub async fn list_plugins(&self, connectors_only: bool) -> Result<Vec<PluginInfo>> {
        let ep = Endpoint::new(
            Method::GET,
            &["connector-plugins"],
            "list connector plugins",
        )
        .query("connectorsOnly", connectors_only.to_string());
        self.get_json(ep, "plugin list").await
    }

    /// `GET /connector-plugins/{plugin}/config[?version=]`: configuration
    /// definitions of a plugin. `version` selects a plugin version on workers
    /// that support several (Kafka 4.1+, KIP-891); older workers ignore it.
    pub async fn plugin_config_def(
        &self,
        plugin: &str,
        version: Option<&str>,
    ) -> Result<Vec<ConfigKeyInfo>> {
        let op = format!("get config definition of plugin '{plugin}'");
        check_name("plugin", plugin, &op)?;
        let mut ep = Endpoint::new(Method::GET, &["connector-plugins", plugin, "config"], op)
            .subject(format!("connector plugin '{plugin}'"));
        if let Some(v) = version {
            ep = ep.query("version", v);
        }
        self.get_json(ep, "plugin config definition").await
    }

    /// `PUT /connector-plugins/{plugin}/config/validate`: validates `config`
    /// without creating anything. `connector.class` is set to `plugin` when
    /// absent (Connect would otherwise echo the whole config in its error).
    /// Use [`ConfigInfos::keys_with_errors`] for the per-key errors.
    pub async fn validate_config(
        &self,
        plugin: &str,
        config: &ConnectorConfig,
    ) -> Result<ConfigInfos> {
        let op = format!("validate config for plugin '{plugin}'");
        check_name("plugin", plugin, &op)?;
        let mut body = config.clone();
        if body.connector_class().is_none_or(|c| c.trim().is_empty()) {
            body.insert("connector.class", plugin);
        }
        let ep = Endpoint::new(
            Method::PUT,
            &["connector-plugins", plugin, "config", "validate"],
            op,
        )
        .subject(format!("connector plugin '{plugin}'"))
        .read_only()
        .config_in_response()
        .json_body(&body)?;
        self.get_json(ep, "config validation result").await
    }

    // ----------------------------------------------------------------------
    // Loggers
    // ----------------------------------------------------------------------

    /// `GET /admin/loggers`: loggers with an explicitly set level.
    pub async fn list_loggers(&self) -> Result<BTreeMap<String, LoggerLevel>> {
        self.get_json(
            Endpoint::new(Method::GET, &["admin", "loggers"], "list loggers"),
            "logger list",
        )
        .await
    }

    /// `GET /admin/loggers/{logger}`: the (effective) level of one logger.
    pub async fn get_logger(&self, logger: &str) -> Result<LoggerLevel> {
        let op = format!("get level of logger '{logger}'");
        check_name("logger", logger, &op)?;
        let ep = Endpoint::new(Method::GET, &["admin", "loggers", logger], op)
            .subject(format!("logger '{logger}'"));
        self.get_json(ep, "logger level").await
    }

    /// `PUT /admin/loggers/{logger}[?scope=cluster]` with `{"level": ...}`.
    ///
    /// `level` is a log4j level name (`TRACE`..`FATAL`, `OFF`, `ALL`),
    /// checked locally. Cluster scope needs Kafka 3.7+; an older worker
    /// ignores it and answers [`SetLoggerOutcome::WorkerScoped`].
    pub async fn set_logger_level(
        &self,
        logger: &str,
        level: &str,
        scope: LoggerScope,
    ) -> Result<SetLoggerOutcome> {
        let op = format!("set level of logger '{logger}' to '{level}'");
        check_name("logger", logger, &op)?;
        let upper = level.trim().to_ascii_uppercase();
        if !LOG_LEVELS.contains(&upper.as_str()) {
            return Err(ConnectError::InvalidRequest {
                operation: op,
                message: format!(
                    "'{level}' is not a log level; use one of {}",
                    LOG_LEVELS.join(", ")
                ),
            });
        }
        let mut ep = Endpoint::new(Method::PUT, &["admin", "loggers", logger], op)
            .subject(format!("logger '{logger}'"))
            .json_body(&serde_json::json!({ "level": upper }))?;
        if scope == LoggerScope::Cluster {
            ep = ep.query("scope", "cluster");
        }
        let raw = self.execute(&ep).await?;
        interpret::set_logger_outcome(raw.status, &raw.body)
    }
}

/// Connect answers a config without `connector.class` with an error message
/// that contains the entire configuration (secrets resolved). Refuse locally.
fn require_connector_class(config: &ConnectorConfig, operation: &str) -> Result<()> {
    match config.connector_class() {
        Some(c) if !c.trim().is_empty() => Ok(()),
        _ => Err(ConnectError::InvalidRequest {
            operation: operation.to_string(),
            message: "the configuration has no 'connector.class'; add it (e.g. io.debezium.connector.postgresql.PostgresConnector)"
                .into(),
        }),
    }
}

/// Why one send to one worker failed.
enum SendFailure {
    /// The connection could not be established; nothing was sent.
    NotConnected(Url, reqwest::Error),
    /// Anything else, already classified.
    Failed(ConnectError),
}

fn transport_error(ep: &Endpoint, url: &Url, cause: reqwest::Error) -> ConnectError {
    ConnectError::Transport {
        operation: ep.ctx.operation.clone(),
        url: url.to_string(),
        detail: error_chain(&cause),
        cause,
    }
}

fn health_endpoint() -> Endpoint {
    Endpoint::new(Method::GET, &["health"], "check worker health")
}

fn interpret_health(ep: &Endpoint, raw: RawResponse) -> Result<HealthStatus> {
    match interpret::health_status(raw.status, &raw.body) {
        Some(h) => Ok(h),
        None => Err(classify(raw.status, &raw.body, &ep.ctx)),
    }
}

/// A failure after the request may have reached the worker.
fn in_flight_error(
    ep: &Endpoint,
    url: &Url,
    e: reqwest::Error,
    status: Option<u16>,
) -> ConnectError {
    match ep.ctx.semantics {
        Semantics::Write => {
            let what = match (status, e.is_timeout()) {
                (Some(s), _) => format!("Connect answered HTTP {s} but the body could not be read"),
                (None, true) => "the client-side request timeout expired".to_string(),
                (None, false) => "the connection failed".to_string(),
            };
            ConnectError::OutcomeUnknown {
                operation: ep.ctx.operation.clone(),
                detail: format!(
                    "{what} after the request was sent to {url}: {}",
                    error_chain(&e)
                ),
            }
        }
        Semantics::Read => transport_error(ep, url, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation_table() {
        let ok = [
            "http://127.0.0.1:8083",
            "https://connect.bank.internal",
            "https://gw.bank.internal/kafka-connect/",
            " http://connect-1:8083 ",
        ];
        for u in ok {
            assert!(parse_base_url(u).is_ok(), "{u}");
        }
        let bad = [
            ("foo", "not a valid http(s) URL"),
            ("127.0.0.1:8083", "not a valid http(s) URL"),
            ("ftp://connect:21", "not http or https"),
            ("http://connect:8083/?x=1", "query string"),
            ("http://admin:hunter2@connect:8083", "embeds credentials"),
        ];
        for (u, expected) in bad {
            let err = parse_base_url(u).unwrap_err().to_string();
            assert!(err.contains(expected), "{u}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = parse_base_url("foo").unwrap_err().to_string();
        assert!(err.contains("give e.g. http://127.0.0.1:8083"), "{err}");
    }

    #[test]
    fn client_config_debug_masks_password() {
        let mut cfg = ClientConfig::new(["http://connect:8083"]);
        cfg.basic_auth = Some(BasicAuth::new("admin", "hunter2"));
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("admin"), "{dbg}");
        let client = ConnectClient::new(cfg).unwrap();
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn construction_errors_are_actionable() {
        let err = ConnectClient::new(ClientConfig::new(Vec::<String>::new())).unwrap_err();
        assert!(err.to_string().contains("at least one"), "{err}");

        let mut cfg = ClientConfig::new(["https://connect:8083"]);
        cfg.tls.client_cert = Some("/nonexistent/cert.pem".into());
        let err = ConnectClient::new(cfg).unwrap_err().to_string();
        assert!(
            err.contains("both a client certificate and a client key"),
            "{err}"
        );

        let mut cfg = ClientConfig::new(["https://connect:8083"]);
        cfg.tls.ca_bundle = Some("/nonexistent/ca.pem".into());
        let err = ConnectClient::new(cfg).unwrap_err().to_string();
        assert!(
            err.contains("cannot read the CA bundle file '/nonexistent/ca.pem'"),
            "{err}"
        );

        let mut cfg = ClientConfig::new(["http://connect:8083"]);
        cfg.request_timeout = Duration::ZERO;
        assert!(ConnectClient::new(cfg).is_err());
    }

    #[test]
    fn invalid_pem_is_reported() {
        let dir =
            std::env::temp_dir().join(format!("lockstep-connect-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut cfg = ClientConfig::new(["https://connect:8083"]);
        cfg.tls.ca_bundle = Some(ca);
        let err = ConnectClient::new(cfg).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(err.contains("CA bundle"), "{err}");
    }

    #[test]
    fn client_and_its_futures_are_send_and_sync() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<ConnectClient>();
        let client = ConnectClient::new(ClientConfig::new(["http://127.0.0.1:8083"])).unwrap();
        let req = CreateConnectorRequest {
            name: "x".into(),
            config: ConnectorConfig::new(),
            initial_state: None,
        };
        // Not awaited: only the types are checked, so callers can tokio::spawn them.
        assert_send(&client.create_connector(&req));
        assert_send(&client.wait_for_state("x", &ExpectedState::running(), Duration::from_secs(1)));
        assert_send(&client.health_of_all_workers());
        assert_send(&client.set_logger_level("root", "INFO", LoggerScope::Cluster));
    }

    #[test]
    fn missing_connector_class_is_refused_locally() {
        let cfg: ConnectorConfig = [("database.password", "hunter2")].into_iter().collect();
        let err = require_connector_class(&cfg, "create connector 'x'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("connector.class"), "{err}");
        assert!(!err.contains("hunter2"));
    }
}
