//! `lockstep watch` and the watchdog task of `lockstep serve --watch`: the thin adapter around
//! `lockstep-watchdog`. Each cycle reads every connector's status of every configured Connect
//! cluster (one `GET /connectors?expand=status` per cluster, the clusters concurrently), hands the observation to the pure
//! [`lockstep_watchdog::decide`], carries out its actions (restart with
//! `includeTasks=true&onlyFailed=true`, alerts), records each in the audit log of the state
//! store, and updates the `lockstep_watchdog_*` metrics.
//!
//! With `--source-db`, it also reads `pg_replication_slots` on those PostgreSQL servers and
//! checks that every RUNNING Debezium PostgreSQL connector holds its slot
//! ([`lockstep_watchdog::streaming`]); one that does not after `--not-streaming-grace` is
//! probed with its own credentials from its Connect config, for the cause.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use clap::Args;
use lockstep_connect::{ConnectClient, Expand, RestartOptions};
use lockstep_secret::Secret;
use lockstep_store::{AuditEntry, Store};
use lockstep_watchdog::classify::FailureKind;
use lockstep_watchdog::health::{SlotSample, SLOT_RETENTION_SQL};
use lockstep_watchdog::metrics::SlotLabels;
use lockstep_watchdog::metrics::{AlertLabels, CauseLabels, ClusterLabels, ConnectorLabels};
use lockstep_watchdog::policy::{Breaker, State};
use lockstep_watchdog::streaming::{
    self, CommittedPosition, LoginOutcome, LoginTarget, PasswordForm, SlotObservation, SlotRef,
    Streaming, StreamingMemory, StreamingPolicy,
};
use lockstep_watchdog::{
    decide, Action, AlertKind, Cause, ConnectorKey, ObservedConnector, ObservedState, ObservedTask,
    PolicyState, RestartPolicy, WatchdogMetrics,
};
use serde::Serialize;

use crate::cli::{parse_duration, GlobalArgs};
use crate::exit;
use crate::output::{print, TableView};

const ACTOR: &str = "watchdog";

#[derive(Debug, Args)]
#[command(
    after_help = "The watchdog polls every connector of every Connect cluster in lockstep.yaml
(or the one given by --connect-url / --cluster) and:
  * classifies each FAILED connector or task from its trace: retriable (connection refused,
    timeout, database restarting, rebalance) or permanent (authentication, bad config, missing
    table / slot / publication, serialization);
  * restarts retriable failures with includeTasks=true&onlyFailed=true after an exponential
    backoff with jitter (0, then --initial-backoff doubling up to --max-backoff; a database
    outage starts at --initial-backoff: an immediate restart would find it still down);
  * reports a connector recovered only after it stayed RUNNING for --settle and its committed
    source position moved (Debezium retries a failed start inside a task shown RUNNING);
  * never restarts permanent failures: it raises one alert with the cause and the fix;
  * opens a circuit breaker after --max-restarts restarts within --breaker-window: one alert,
    no restarts until --breaker-cooldown has passed, then one trial restart.
With --source-db (PostgreSQL sources; password in LOCKSTEP_SOURCE_PASSWORD) it also reads
pg_replication_slots there: a RUNNING Debezium PostgreSQL connector whose slot (slot.name,
default debezium) stays missing or inactive for --not-streaming-grace is not streaming
(Debezium retries a failed start, e.g. a wrong password, inside a task shown RUNNING). The
watchdog then logs in with the connector's own database.* settings: a rejected password
(SQLSTATE 28P01 / 28000) raises one alert, never a restart; a refused connection is left to
Debezium's retries; a snapshot in progress (committed offset) is no incident; anything else
(or a ${...} password it cannot resolve) raises one 'cause unknown, check the task log'
alert. The grace counts from the watchdog's first sight of the unused slot (with --once:
pass --not-streaming-grace 0s).
Every restart, alert and recovery is appended to the audit log (`lockstep audit show`).

Examples:
  lockstep watch                           watch until Ctrl-C, every 15 s
  lockstep watch --once -o json            one cycle: states and actions, for a script
  lockstep watch --recommend-only          print the restarts it would make, make none

Exit codes with --once: 0 all healthy, 1 a connector is FAILED or a cluster did not answer."
)]
pub struct WatchArgs {
    #[command(flatten)]
    pub state: crate::audit_cmd::StateDirArgs,
    /// Time between polls.
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Run one cycle, print the connectors and the actions taken, and exit.
    #[arg(long)]
    pub once: bool,
    /// Decide but do not restart anything: print (and audit) the restarts it recommends.
    #[arg(long)]
    pub recommend_only: bool,
    /// Also read each RUNNING source connector's offsets every cycle (one more request per
    /// connector) for lockstep_watchdog_source_freshness_seconds: the age of the newest event or
    /// heartbeat it committed (Debezium's offset ts_usec / ts_ms / ts_sec).
    #[arg(long)]
    pub freshness: bool,
    /// Watch only these connectors (repeatable; default: every connector of every cluster).
    #[arg(long = "connector", value_name = "NAME")]
    pub connectors: Vec<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
}

/// Not-streaming detection flags, shared by `watch` and `serve --watch`.
#[derive(Debug, Args, Clone)]
pub struct StreamingArgs {
    /// A PostgreSQL source whose pg_replication_slots tells whether the Debezium connectors
    /// reading it stream: postgres://USER@HOST:PORT/DB (repeatable; the password comes from
    /// LOCKSTEP_SOURCE_PASSWORD, never from the URL). It serves the connectors whose
    /// database.hostname, database.port and database.dbname are that HOST, PORT and DB.
    #[arg(long = "source-db", value_name = "URL")]
    pub source_dbs: Vec<String>,
    /// How long a RUNNING Debezium PostgreSQL connector's replication slot may stay missing or
    /// inactive before the connector counts as not streaming.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub not_streaming_grace: Duration,
}

impl StreamingArgs {
    pub fn policy(&self) -> StreamingPolicy {
        StreamingPolicy {
            grace_ms: u64::try_from(self.not_streaming_grace.as_millis()).unwrap_or(u64::MAX),
            ..StreamingPolicy::default()
        }
    }

    /// The `--source-db` logins, password from `LOCKSTEP_SOURCE_PASSWORD`.
    pub fn sources(&self) -> anyhow::Result<Vec<SourceDb>> {
        let password = std::env::var("LOCKSTEP_SOURCE_PASSWORD")
            .ok()
            .map(Secret::new);
        self.source_dbs
            .iter()
            .map(|raw| SourceDb::parse(raw, password.as_ref()))
            .collect()
    }
}

/// A PostgreSQL source the watchdog reads `pg_replication_slots` from.
#[derive(Debug, Clone)]
pub struct SourceDb {
    host: String,
    port: u16,
    database: String,
    /// tokio-postgres' `Debug` does not show the password.
    config: tokio_postgres::Config,
}

impl SourceDb {
    fn parse(raw: &str, password: Option<&Secret>) -> anyhow::Result<SourceDb> {
        let url = url::Url::parse(raw).map_err(|e| {
            anyhow!("--source-db '{raw}' is not a database URL ({e}); write e.g. postgres://monitor@db-host:5432/orders")
        })?;
        if url.password().is_some() {
            anyhow::bail!("--source-db contains a password: remove it from the URL and set LOCKSTEP_SOURCE_PASSWORD instead");
        }
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            anyhow::bail!(
                "--source-db '{raw}': only postgres:// sources have replication slots to watch"
            );
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow!("--source-db '{raw}' names no host"))?
            .to_string();
        let database = url.path().trim_start_matches('/').to_string();
        if database.is_empty() || database.contains('/') {
            anyhow::bail!("--source-db '{raw}' must name one database as its path, e.g. /orders");
        }
        if url.username().is_empty() {
            anyhow::bail!("--source-db '{raw}' names no user: write USER@HOST");
        }
        let port = url.port().unwrap_or(streaming::DEFAULT_PORT);
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(url.username())
            .dbname(&database)
            .application_name("lockstep-watchdog")
            .connect_timeout(Duration::from_secs(5));
        if let Some(password) = password {
            config.password(password.expose());
        }
        Ok(SourceDb {
            host,
            port,
            database,
            config,
        })
    }

    fn serves(&self, slot: &SlotRef) -> bool {
        self.host.eq_ignore_ascii_case(&slot.host)
            && self.port == slot.port
            && self.database == slot.database
    }

    /// Every logical slot of the server ([`SLOT_RETENTION_SQL`]).
    async fn slots(&self) -> anyhow::Result<Vec<SlotSample>> {
        let connect = self.config.connect(tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| anyhow!("connecting timed out"))??;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let rows = client.query(SLOT_RETENTION_SQL, &[]).await?;
        rows.iter()
            .map(|row| {
                Ok(SlotSample {
                    slot: row.try_get(0)?,
                    database: row.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
                    active: row.try_get(2)?,
                    retained_bytes: row.try_get(3)?,
                    wal_status: row.try_get(4)?,
                })
            })
            .collect()
    }
}

/// Logs in as the connector would, to find why it does not stream. The session is closed at
/// once; nothing runs in it. The password goes to the server only.
async fn probe_login(target: &LoginTarget, password: &Secret) -> LoginOutcome {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&target.host)
        .port(target.port)
        .user(&target.user)
        .dbname(&target.database)
        .password(password.expose())
        .application_name("lockstep-watchdog-probe")
        .connect_timeout(Duration::from_secs(5));
    match tokio::time::timeout(
        Duration::from_secs(10),
        config.connect(tokio_postgres::NoTls),
    )
    .await
    {
        Err(_) => LoginOutcome::TimedOut,
        Ok(Ok((client, connection))) => {
            drop(client);
            let _ = connection.await;
            LoginOutcome::Accepted {
                position: CommittedPosition::NotRead,
            }
        }
        Ok(Err(err)) => login_error(&err),
    }
}

fn login_error(err: &tokio_postgres::Error) -> LoginOutcome {
    if let Some(db) = err.as_db_error() {
        return LoginOutcome::Rejected {
            sqlstate: db.code().code().to_string(),
            message: db.message().to_string(),
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return LoginOutcome::Refused,
                std::io::ErrorKind::TimedOut => return LoginOutcome::TimedOut,
                _ => {}
            }
        }
        source = e.source();
    }
    let text = err.to_string();
    if text.contains("timeout") || text.contains("timed out") {
        return LoginOutcome::TimedOut;
    }
    LoginOutcome::Failed { message: text }
}

/// Restart policy flags, shared by `watch` and `serve --watch`.
#[derive(Debug, Args, Clone)]
pub struct PolicyArgs {
    /// Wait before the second restart of an incident (the first is immediate, except for a
    /// database outage, which waits this long first); doubles after each.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub initial_backoff: Duration,
    /// Longest wait between restarts (Strimzi caps at 60 minutes).
    #[arg(long, default_value = "60m", value_parser = parse_duration, value_name = "DURATION")]
    pub max_backoff: Duration,
    /// Restarts within --breaker-window that open the circuit breaker.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_restarts: usize,
    #[arg(long, default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
    pub breaker_window: Duration,
    /// How long an open circuit suspends restarts before one trial restart.
    #[arg(long, default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
    pub breaker_cooldown: Duration,
    /// An incident is reported recovered once the connector stayed RUNNING this long and its
    /// committed source position moved (Debezium retries a failed start inside a RUNNING task).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub settle: Duration,
}

impl PolicyArgs {
    pub fn policy(&self) -> RestartPolicy {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        RestartPolicy {
            initial_delay_ms: ms(self.initial_backoff),
            max_delay_ms: ms(self.max_backoff),
            breaker_max_restarts: self.max_restarts,
            breaker_window_ms: ms(self.breaker_window),
            breaker_cooldown_ms: ms(self.breaker_cooldown),
            settle_ms: ms(self.settle),
            ..RestartPolicy::default()
        }
    }
}

/// `lockstep serve` flags for the watchdog task.
#[derive(Debug, Args, Clone)]
pub struct ServeWatchArgs {
    /// Run the watchdog inside the service (same behaviour as `lockstep watch`); its metrics
    /// join /metrics.
    #[arg(long)]
    pub watch: bool,
    /// Time between watchdog polls.
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub watch_interval: Duration,
    /// Directory of the state store the watchdog (and the drift loop of --connectors) audits
    /// its actions into.
    #[arg(
        long,
        env = "LOCKSTEP_STATE_DIR",
        default_value = ".lockstep",
        value_name = "DIR"
    )]
    pub watch_state_dir: PathBuf,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Jitter in [0, 1) from the clock's sub-second nanoseconds: enough to spread restarts of many
/// connectors, without a random-number dependency.
fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000) / 1_000.0
}

/// Every Connect cluster to watch: all clusters of the configuration file, unless flags name one.
pub fn clusters(global: &GlobalArgs) -> anyhow::Result<Vec<(String, ConnectClient)>> {
    let flags = &global.target;
    if flags.connect_url.is_empty() && flags.cluster.is_none() {
        let path = match &global.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from("lockstep.yaml")).filter(|p| p.exists()),
        };
        if let Some(path) = path {
            let config = lockstep_config::Config::load(&path)?;
            if config.clusters.len() > 1 {
                let mut out = Vec::new();
                for name in config.clusters.keys() {
                    let mut one = global.clone();
                    one.target.cluster = Some(name.clone());
                    out.push((name.clone(), crate::target::connect_client(&one)?));
                }
                return Ok(out);
            }
        }
    }
    let name = flags.cluster.clone().unwrap_or_else(|| "default".into());
    Ok(vec![(name, crate::target::connect_client(global)?)])
}

/// One connector's line in a cycle's report.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorReport {
    pub cluster: String,
    pub connector: String,
    pub state: String,
    pub tasks: String,
    pub action: String,
    pub cause: String,
    pub detail: String,
    /// True when an action was taken on this connector in this cycle.
    pub acted: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct CycleReport {
    pub connectors: Vec<ConnectorReport>,
    /// Clusters that did not answer, with the error.
    pub unreachable: Vec<(String, String)>,
    /// Every action decided in this cycle.
    pub actions: Vec<Action>,
}

impl CycleReport {
    pub fn healthy(&self) -> bool {
        self.unreachable.is_empty() && self.connectors.iter().all(|c| c.cause.is_empty())
    }
}

impl TableView for CycleReport {
    fn headers(&self) -> Vec<&'static str> {
        vec!["CLUSTER", "CONNECTOR", "STATE", "TASKS", "ACTION", "CAUSE"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.connectors
            .iter()
            .map(|c| {
                vec![
                    c.cluster.clone(),
                    c.connector.clone(),
                    c.state.clone(),
                    c.tasks.clone(),
                    c.action.clone(),
                    c.cause.clone(),
                ]
            })
            .collect()
    }

    fn footer(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .connectors
            .iter()
            .filter(|c| !c.detail.is_empty())
            .map(|c| format!("{}/{}: {}", c.cluster, c.connector, c.detail))
            .collect();
        lines.extend(
            self.unreachable
                .iter()
                .map(|(cluster, err)| format!("cluster {cluster} did not answer: {err}")),
        );
        lines
    }
}

/// The watchdog: clusters, policy, memory, metrics and the audit log.
pub struct Watcher {
    clusters: Vec<(String, ConnectClient)>,
    policy: RestartPolicy,
    memory: PolicyState,
    metrics: WatchdogMetrics,
    audit: Option<Store>,
    recommend_only: bool,
    /// Connector names to watch; empty means all.
    only: Vec<String>,
    /// Read source offsets for the freshness gauge.
    freshness: bool,
    tasks_seen: BTreeMap<ConnectorKey, Vec<u32>>,
    permanent_shown: BTreeMap<ConnectorKey, Cause>,
    /// PostgreSQL sources whose slots show whether connectors stream; empty: not checked.
    sources: Vec<SourceDb>,
    streaming_policy: StreamingPolicy,
    streaming: BTreeMap<ConnectorKey, StreamingMemory>,
    /// Connectors found RUNNING but not streaming in the last cycle (the `stuck` gauge).
    not_streaming: BTreeMap<ConnectorKey, bool>,
}

/// The Connect configs of the Debezium PostgreSQL connectors of one cycle (they carry
/// passwords: kept for the cycle only).
type PgConfigs = BTreeMap<ConnectorKey, BTreeMap<String, String>>;

impl Watcher {
    pub fn new(
        clusters: Vec<(String, ConnectClient)>,
        policy: RestartPolicy,
        metrics: WatchdogMetrics,
        audit: Option<Store>,
        recommend_only: bool,
    ) -> Self {
        Self {
            clusters,
            policy,
            memory: PolicyState::default(),
            metrics,
            audit,
            recommend_only,
            only: Vec::new(),
            freshness: false,
            tasks_seen: BTreeMap::new(),
            permanent_shown: BTreeMap::new(),
            sources: Vec::new(),
            streaming_policy: StreamingPolicy::default(),
            streaming: BTreeMap::new(),
            not_streaming: BTreeMap::new(),
        }
    }

    /// Checks that RUNNING Debezium PostgreSQL connectors stream, with these sources' slots.
    pub fn with_streaming(mut self, sources: Vec<SourceDb>, policy: StreamingPolicy) -> Self {
        self.sources = sources;
        self.streaming_policy = policy;
        self
    }

    /// Reads every cluster, all at once (one cycle costs the slowest cluster, not their sum);
    /// results are merged in configuration order.
    async fn observe(&self, report: &mut CycleReport) -> (ObservedState, PgConfigs) {
        let mut observed = ObservedState::default();
        let mut configs = PgConfigs::new();
        let results = futures_util::future::join_all(
            self.clusters
                .iter()
                .map(|(cluster, client)| self.observe_cluster(cluster, client)),
        )
        .await;
        for ((cluster, _), result) in self.clusters.iter().zip(results) {
            match result {
                Ok((connectors, pg)) => {
                    observed.connectors.extend(connectors);
                    configs.extend(pg);
                }
                Err(err) => {
                    observed.unreachable.push(cluster.clone());
                    report.unreachable.push((cluster.clone(), err));
                }
            }
        }
        (observed, configs)
    }

    /// One cluster's connectors (and, when sources are configured, the configs of its Debezium
    /// PostgreSQL connectors), or the error text when it did not answer.
    async fn observe_cluster(
        &self,
        cluster: &str,
        client: &ConnectClient,
    ) -> Result<(Vec<ObservedConnector>, PgConfigs), String> {
        let started = Instant::now();
        let labels = ClusterLabels {
            cluster: cluster.to_string(),
        };
        // The configs come with the same request (expand=info), only when they are used.
        let expand = if self.sources.is_empty() {
            Expand::STATUS
        } else {
            Expand::ALL
        };
        let result = match client.list_connectors_expanded(expand).await {
            Ok(map) => {
                let mut connectors = Vec::new();
                let mut pg_configs = PgConfigs::new();
                for (name, expanded) in map {
                    if !self.only.is_empty() && !self.only.contains(&name) {
                        continue;
                    }
                    // A connector deleted between the list and the status has none.
                    let Some(status) = expanded.status else {
                        continue;
                    };
                    let is_source =
                        status.connector_type == Some(lockstep_connect::ConnectorType::Source);
                    if self.freshness
                        && is_source
                        && status.connector.state == lockstep_connect::ConnectorState::Running
                    {
                        self.observe_freshness(cluster, client, &name).await;
                    }
                    let key = ConnectorKey {
                        cluster: cluster.to_string(),
                        connector: name,
                    };
                    if let Some(info) = expanded.info {
                        let config = info.config.into_inner();
                        if streaming::postgres_slot(&config).is_some() {
                            pg_configs.insert(key.clone(), config);
                        }
                    }
                    // The committed position confirms a recovery. It costs one more request
                    // (Connect reads its offsets topic), so it is read once when an incident
                    // starts (the baseline) and then only while a recovery awaits confirmation.
                    let memory = self.memory.connectors.get(&key);
                    let wanted = if status.has_failure() {
                        memory.is_none_or(|m| m.incident_position.is_none())
                    } else {
                        memory.is_some_and(|m| m.incident.is_some())
                    };
                    let position = if wanted {
                        match client.get_offsets(&key.connector).await {
                            Ok(offsets) => Some(position_text(&offsets)),
                            Err(err) => {
                                tracing::debug!(connector = %key, error = %err, "watchdog: cannot read offsets; recovery is confirmed by the settle period alone");
                                None
                            }
                        }
                    } else {
                        None
                    };
                    connectors.push(ObservedConnector {
                        key,
                        state: State::parse(status.connector.state.as_str()),
                        trace: status.connector.trace,
                        tasks: status
                            .tasks
                            .into_iter()
                            .map(|t| ObservedTask {
                                id: t.id,
                                state: State::parse(t.state.as_str()),
                                trace: t.trace,
                            })
                            .collect(),
                        position,
                    });
                }
                Ok((connectors, pg_configs))
            }
            Err(err) => {
                tracing::warn!(cluster = %cluster, error = %err, "watchdog: cannot read connector states");
                self.metrics.poll_errors.get_or_create(&labels).inc();
                Err(err.to_string())
            }
        };
        self.metrics
            .poll_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn observe_freshness(&self, cluster: &str, client: &ConnectClient, name: &str) {
        let labels = ConnectorLabels {
            cluster: cluster.to_string(),
            connector: name.to_string(),
        };
        match client.get_offsets(name).await {
            Ok(offsets) => {
                if let Some(committed) = source_commit_time_ms(&offsets) {
                    let age = now_ms().saturating_sub(committed) as f64 / 1000.0;
                    self.metrics
                        .source_freshness_seconds
                        .get_or_create(&labels)
                        .set(age);
                }
            }
            Err(err) => {
                tracing::debug!(connector = %name, error = %err, "watchdog: cannot read offsets")
            }
        }
    }

    /// One poll → decide → act cycle.
    pub async fn cycle(&mut self) -> CycleReport {
        let mut report = CycleReport::default();
        let (observed, configs) = self.observe(&mut report).await;
        let (mut actions, memory) =
            decide(&observed, &self.memory, now_ms(), &self.policy, jitter());
        self.memory = memory;

        let mut by_key: BTreeMap<ConnectorKey, (String, String, String)> = BTreeMap::new();
        for action in &actions {
            let (key, text, cause, detail) = self.carry_out(action).await;
            by_key.insert(key, (text, cause, detail));
        }
        let (streaming_actions, notes) = self.check_streaming(&observed, &configs).await;
        drop(configs);
        for action in &streaming_actions {
            let (key, text, cause, detail) = self.carry_out(action).await;
            by_key.insert(key, (text, cause, detail));
        }
        actions.extend(streaming_actions);
        let mut notes = notes;
        self.update_gauges(&observed);
        for c in &observed.connectors {
            let running = c.tasks.iter().filter(|t| t.state == State::Running).count();
            let failure = c.has_failure().then(|| c.classify_failure()).flatten();
            let taken = by_key.remove(&c.key);
            let acted = taken.is_some();
            let (action, cause, detail) =
                taken.or_else(|| notes.remove(&c.key)).unwrap_or_else(|| {
                    let waiting = match self.memory.connectors.get(&c.key).map(|m| &m.breaker) {
                        _ if failure.is_none() => "-",
                        Some(Breaker::Open { .. }) => "circuit open",
                        _ if failure.as_ref().is_some_and(|f| f.fix.is_empty()) => "backing off",
                        _ => "alerted",
                    };
                    (waiting.to_string(), String::new(), String::new())
                });
            report.connectors.push(ConnectorReport {
                cluster: c.key.cluster.clone(),
                connector: c.key.connector.clone(),
                state: c.state.as_str().to_string(),
                tasks: format!("{running}/{}", c.tasks.len()),
                action,
                cause: if cause.is_empty() {
                    failure
                        .map(|f| f.cause.as_str().to_string())
                        .unwrap_or_default()
                } else {
                    cause
                },
                detail,
                acted,
            });
        }
        report.actions = actions;
        report
    }

    /// RUNNING Debezium PostgreSQL connectors that do not hold their replication slot past the
    /// grace period: the verdict ([`streaming::observe`]), a login with the connector's own
    /// credentials for the cause, one alert per incident ([`streaming::conclude`]). Returns the
    /// alerts, and a report note (state, cause, detail) for each connector found not streaming.
    async fn check_streaming(
        &mut self,
        observed: &ObservedState,
        configs: &PgConfigs,
    ) -> (
        Vec<Action>,
        BTreeMap<ConnectorKey, (String, String, String)>,
    ) {
        let mut actions = Vec::new();
        let mut notes = BTreeMap::new();
        if self.sources.is_empty() {
            return (actions, notes);
        }
        let now = now_ms();
        // Each source's slots, read at most once per cycle, when a RUNNING connector uses it.
        let mut slots: BTreeMap<usize, Option<Vec<SlotSample>>> = BTreeMap::new();
        let mut next: BTreeMap<ConnectorKey, StreamingMemory> = self
            .streaming
            .iter()
            .filter(|(k, _)| observed.unreachable.contains(&k.cluster))
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        self.not_streaming.clear();
        for c in &observed.connectors {
            let Some(config) = configs.get(&c.key) else {
                continue;
            };
            let Some(slot) = streaming::postgres_slot(config) else {
                continue;
            };
            let memory = self.streaming.get(&c.key).cloned().unwrap_or_default();
            let running = c.state == State::Running
                && !c.tasks.is_empty()
                && c.tasks.iter().all(|t| t.state == State::Running);
            let source = self.sources.iter().position(|s| s.serves(&slot));
            let observation = match source {
                Some(i) if running => {
                    if let std::collections::btree_map::Entry::Vacant(entry) = slots.entry(i) {
                        entry.insert(self.read_slots(&self.sources[i]).await);
                    }
                    match slots.get(&i).and_then(Option::as_ref) {
                        Some(rows) => streaming::observe_slot(rows, &slot),
                        None => SlotObservation::NotObserved,
                    }
                }
                _ => SlotObservation::NotObserved,
            };
            let (verdict, probe, mut memory) =
                streaming::observe(&memory, running, observation, now, &self.streaming_policy);
            let mut detail = String::new();
            if probe {
                if let Ok(target) = streaming::login_target(config) {
                    let password = config.get("database.password").map(String::as_str);
                    let outcome = match streaming::password_form(password) {
                        PasswordForm::Literal => {
                            let secret = Secret::new(password.unwrap_or_default());
                            match probe_login(&target, &secret).await {
                                // The login works: a snapshot may be why the slot is unused.
                                LoginOutcome::Accepted { .. } => LoginOutcome::Accepted {
                                    position: self.committed_position(&c.key).await,
                                },
                                other => other,
                            }
                        }
                        form => LoginOutcome::NotTried { form },
                    };
                    let diagnosis = streaming::diagnose(&c.key, &slot, &verdict, &target, &outcome);
                    tracing::warn!(connector = %c.key, cause = diagnosis.cause.as_str(), "watchdog: {}", diagnosis.message);
                    let (alert, concluded) = streaming::conclude(&memory, &c.key, &diagnosis, now);
                    memory = concluded;
                    detail = diagnosis.message;
                    actions.extend(alert.map(Action::Alert));
                }
            }
            match verdict {
                Streaming::NotStreaming { .. } if memory.snapshot => {
                    notes.insert(
                        c.key.clone(),
                        ("snapshot in progress".into(), String::new(), detail),
                    );
                    self.not_streaming.insert(c.key.clone(), false);
                }
                Streaming::NotStreaming { .. } => {
                    let (state, cause) = match memory.diagnosis {
                        Some((
                            FailureKind::Retriable,
                            cause @ (Cause::ConnectionRefused | Cause::Timeout),
                        )) => ("not streaming (Debezium retries)", cause.as_str()),
                        Some((_, cause)) => ("not streaming: alerted", cause.as_str()),
                        None => ("not streaming", Cause::Unknown.as_str()),
                    };
                    notes.insert(
                        c.key.clone(),
                        (state.to_string(), cause.to_string(), detail),
                    );
                    self.not_streaming.insert(c.key.clone(), true);
                }
                Streaming::Unobserved { .. } if source.is_none() => {
                    notes.insert(
                        c.key.clone(),
                        (
                            "-".into(),
                            String::new(),
                            format!("streaming not checked: no --source-db serves {slot}"),
                        ),
                    );
                    self.not_streaming.insert(c.key.clone(), false);
                }
                _ => {
                    self.not_streaming.insert(c.key.clone(), false);
                }
            }
            next.insert(c.key.clone(), memory);
        }
        self.streaming = next;
        (actions, notes)
    }

    /// What the connector's committed source offset says (snapshot or streaming).
    async fn committed_position(&self, key: &ConnectorKey) -> CommittedPosition {
        let Some(client) = self.client(&key.cluster) else {
            return CommittedPosition::NotRead;
        };
        match client.get_offsets(&key.connector).await {
            Ok(offsets) => committed_position(&offsets),
            Err(err) => {
                tracing::debug!(connector = %key, error = %err, "watchdog: cannot read offsets");
                CommittedPosition::NotRead
            }
        }
    }

    /// A source's logical slots (their WAL retention goes to the slot gauge), or `None` when
    /// they cannot be read.
    async fn read_slots(&self, source: &SourceDb) -> Option<Vec<SlotSample>> {
        match source.slots().await {
            Ok(rows) => {
                for row in &rows {
                    self.metrics
                        .slot_retained_wal_bytes
                        .get_or_create(&SlotLabels {
                            database: row.database.clone(),
                            slot: row.slot.clone(),
                        })
                        .set(row.retained_bytes);
                }
                Some(rows)
            }
            Err(err) => {
                tracing::warn!(error = %err, "watchdog: cannot read pg_replication_slots on {}:{}/{}; not-streaming detection skips its connectors this cycle", source.host, source.port, source.database);
                None
            }
        }
    }

    /// Executes one action; returns (connector, what was done, cause, detail).
    async fn carry_out(&mut self, action: &Action) -> (ConnectorKey, String, String, String) {
        match action {
            Action::Restart {
                key,
                only_failed,
                cause,
                attempt,
            } => {
                let (text, outcome) = if self.recommend_only {
                    ("restart recommended".to_string(), "recommended".to_string())
                } else {
                    match self.client(&key.cluster) {
                        Some(client) => match client
                            .restart_connector(
                                &key.connector,
                                RestartOptions {
                                    include_tasks: true,
                                    only_failed: *only_failed,
                                },
                            )
                            .await
                        {
                            Ok(_) => ("restarted".to_string(), "accepted".to_string()),
                            Err(err) => {
                                tracing::warn!(connector = %key, error = %err, "watchdog: restart failed");
                                ("restart failed".to_string(), err.to_string())
                            }
                        },
                        None => ("restart failed".into(), "cluster not configured".into()),
                    }
                };
                if !self.recommend_only {
                    self.metrics
                        .restarts
                        .get_or_create(&CauseLabels {
                            cluster: key.cluster.clone(),
                            connector: key.connector.clone(),
                            cause: cause.as_str().into(),
                        })
                        .inc();
                }
                tracing::info!(connector = %key, cause = cause.as_str(), attempt, outcome = %outcome, "watchdog: {text}");
                self.audit(
                    if self.recommend_only {
                        "connector.restart_recommended"
                    } else {
                        "connector.restarted"
                    },
                    key,
                    serde_json::json!({
                        "cause": cause.as_str(),
                        "attempt": attempt,
                        "include_tasks": true,
                        "only_failed": only_failed,
                        "outcome": outcome,
                    }),
                );
                let detail = if outcome == "accepted" || outcome == "recommended" {
                    String::new()
                } else {
                    outcome
                };
                (
                    key.clone(),
                    format!("{text} (#{attempt})"),
                    cause.as_str().into(),
                    detail,
                )
            }
            Action::Alert(alert) => {
                self.metrics
                    .alerts
                    .get_or_create(&AlertLabels {
                        cluster: alert.key.cluster.clone(),
                        connector: alert.key.connector.clone(),
                        kind: alert.kind.as_str().into(),
                        cause: alert.cause.as_str().into(),
                    })
                    .inc();
                tracing::error!(connector = %alert.key, kind = alert.kind.as_str(), cause = alert.cause.as_str(), "ALERT {}; fix: {}", alert.message, alert.fix);
                self.audit(
                    "alert.raised",
                    &alert.key,
                    serde_json::json!({
                        "kind": alert.kind.as_str(),
                        "cause": alert.cause.as_str(),
                        "message": alert.message,
                        "fix": alert.fix,
                    }),
                );
                let text = match alert.kind {
                    AlertKind::PermanentFailure => "alert: not restarted",
                    AlertKind::CircuitOpen => "alert: circuit open",
                    AlertKind::NotStreaming => "alert: not streaming",
                };
                (
                    alert.key.clone(),
                    text.into(),
                    alert.cause.as_str().into(),
                    format!("{} Fix: {}", alert.message, alert.fix),
                )
            }
            Action::Recovered {
                key,
                cause,
                restarts,
                healthy_for_ms,
                position_moved,
            } => {
                tracing::info!(connector = %key, cause = cause.as_str(), restarts, healthy_for_ms, ?position_moved, "watchdog: connector recovered");
                self.audit(
                    "connector.recovered",
                    key,
                    serde_json::json!({
                        "cause": cause.as_str(),
                        "restarts": restarts,
                        "running_for_ms": healthy_for_ms,
                        "position_moved": position_moved,
                    }),
                );
                let proof = match position_moved {
                    Some(true) => "its source position moved",
                    Some(false) => "its source position did not move (idle source?)",
                    None => "source position not observed",
                };
                (
                    key.clone(),
                    "recovered".into(),
                    String::new(),
                    format!(
                        "running again after {} ({restarts} restart(s)); RUNNING for {:.1} s, {proof}",
                        cause.as_str(),
                        *healthy_for_ms as f64 / 1000.0
                    ),
                )
            }
        }
    }

    fn client(&self, cluster: &str) -> Option<&ConnectClient> {
        self.clusters
            .iter()
            .find(|(name, _)| name == cluster)
            .map(|(_, c)| c)
    }

    fn audit(&self, action: &str, key: &ConnectorKey, details: serde_json::Value) {
        let Some(store) = &self.audit else {
            return;
        };
        let mut details = details;
        if let Some(map) = details.as_object_mut() {
            map.insert("cluster".into(), key.cluster.clone().into());
        }
        if let Err(err) = store.append_audit(&AuditEntry::new(
            ACTOR,
            action,
            key.connector.clone(),
            details,
        )) {
            tracing::error!(error = %err, "watchdog: cannot append to the audit log; the action was still taken");
        }
    }

    fn update_gauges(&mut self, observed: &ObservedState) {
        let mut seen = BTreeMap::new();
        for c in &observed.connectors {
            self.metrics.observe_connector(c);
            seen.insert(
                c.key.clone(),
                c.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
            );
            let labels = ConnectorLabels {
                cluster: c.key.cluster.clone(),
                connector: c.key.connector.clone(),
            };
            let memory = self.memory.connectors.get(&c.key);
            let open = memory.is_some_and(|m| matches!(m.breaker, Breaker::Open { .. }));
            self.metrics
                .circuit_open
                .get_or_create(&labels)
                .set(i64::from(open));
            let permanent = memory
                .and_then(|m| m.alerted)
                .filter(|(kind, _)| *kind == AlertKind::PermanentFailure)
                .map(|(_, cause)| cause)
                .filter(|_| c.has_failure())
                .or_else(|| {
                    // RUNNING but not streaming for a permanent cause (a rejected password).
                    self.streaming
                        .get(&c.key)
                        .and_then(|m| m.diagnosis)
                        .filter(|(kind, _)| *kind == FailureKind::Permanent)
                        .map(|(_, cause)| cause)
                });
            if let Some(not_streaming) = self.not_streaming.get(&c.key) {
                self.metrics
                    .stuck
                    .get_or_create(&labels)
                    .set(i64::from(*not_streaming));
            }
            let cause_labels = |cause: Cause| CauseLabels {
                cluster: c.key.cluster.clone(),
                connector: c.key.connector.clone(),
                cause: cause.as_str().into(),
            };
            if let Some(old) = self.permanent_shown.get(&c.key).copied() {
                if Some(old) != permanent {
                    self.metrics.permanent_failure.remove(&cause_labels(old));
                    self.permanent_shown.remove(&c.key);
                }
            }
            if let Some(cause) = permanent {
                self.metrics
                    .permanent_failure
                    .get_or_create(&cause_labels(cause))
                    .set(1);
                self.permanent_shown.insert(c.key.clone(), cause);
            }
        }
        // Connectors that disappeared (deleted) lose their series; unreachable clusters keep them.
        let gone: Vec<(ConnectorKey, Vec<u32>)> = self
            .tasks_seen
            .iter()
            .filter(|(k, _)| !seen.contains_key(*k) && !observed.unreachable.contains(&k.cluster))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        for (key, tasks) in gone {
            self.metrics.forget_connector(&key, &tasks);
            if let Some(cause) = self.permanent_shown.remove(&key) {
                self.metrics.permanent_failure.remove(&CauseLabels {
                    cluster: key.cluster.clone(),
                    connector: key.connector.clone(),
                    cause: cause.as_str().into(),
                });
            }
            self.tasks_seen.remove(&key);
        }
        for (key, tasks) in seen {
            self.tasks_seen.insert(key, tasks);
        }
    }
}

/// A connector's committed offsets as one comparable text (partitions sorted), for
/// [`ObservedConnector::position`]: only equality matters.
pub fn position_text(offsets: &lockstep_connect::ConnectorOffsets) -> String {
    let mut parts: Vec<String> = offsets
        .offsets
        .iter()
        .map(|o| serde_json::json!({"partition": o.partition, "offset": o.offset}).to_string())
        .collect();
    parts.sort();
    parts.join("\n")
}

/// Debezium's committed offset → snapshot in progress (its `snapshot` key, set only while a
/// snapshot runs), a streaming position, or nothing committed yet.
pub fn committed_position(offsets: &lockstep_connect::ConnectorOffsets) -> CommittedPosition {
    let committed: Vec<&serde_json::Map<String, serde_json::Value>> = offsets
        .offsets
        .iter()
        .filter_map(|o| o.offset.as_ref())
        .collect();
    if committed.is_empty() {
        return CommittedPosition::Nothing;
    }
    let snapshotting = committed.iter().any(|o| match o.get("snapshot") {
        None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => false,
        Some(serde_json::Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        Some(_) => true,
    });
    if snapshotting {
        CommittedPosition::Snapshot
    } else {
        CommittedPosition::Streaming
    }
}

/// The newest source commit time in a source connector's offsets, in ms since the epoch:
/// Debezium writes `ts_usec` (PostgreSQL), `ts_ms` or `ts_sec` (MySQL / MariaDB binlog), and
/// heartbeats move it while the captured tables are idle.
pub fn source_commit_time_ms(offsets: &lockstep_connect::ConnectorOffsets) -> Option<u64> {
    offsets
        .offsets
        .iter()
        .filter_map(|o| o.offset.as_ref())
        .filter_map(|o| {
            let field = |key: &str| o.get(key).and_then(serde_json::Value::as_u64);
            field("ts_usec")
                .map(|us| us / 1_000)
                .or_else(|| field("ts_ms"))
                .or_else(|| field("ts_sec").map(|s| s.saturating_mul(1_000)))
        })
        .max()
}

fn open_store(dir: &Path) -> anyhow::Result<Store> {
    Store::open_dir(dir).map_err(|e| {
        anyhow!(
            "cannot open the state store in {} to audit the watchdog's actions: {e}; pass --state-dir or set LOCKSTEP_STATE_DIR to a writable directory",
            dir.display()
        )
    })
}

pub async fn run(global: &GlobalArgs, args: WatchArgs) -> anyhow::Result<u8> {
    let clusters = clusters(global)?;
    let store = open_store(&args.state.state_dir)?;
    let watcher = Watcher::new(
        clusters,
        args.policy.policy(),
        WatchdogMetrics::unregistered(),
        Some(store),
        args.recommend_only,
    );
    let mut watcher = watcher.with_streaming(args.streaming.sources()?, args.streaming.policy());
    watcher.only = args.connectors;
    watcher.freshness = args.freshness;
    if args.once {
        let report = watcher.cycle().await;
        print(global.output, &report)?;
        return Ok(if report.healthy() {
            exit::OK
        } else {
            exit::FAILED
        });
    }
    let stop = crate::sink_cmd::shutdown_flag()?;
    eprintln!(
        "lockstep watch: polling {} cluster(s) every {:?}{}; Ctrl-C stops",
        watcher.clusters.len(),
        args.interval,
        if args.recommend_only {
            " (recommend-only: no restarts)"
        } else {
            ""
        }
    );
    while !stop.load(Ordering::Relaxed) {
        let report = watcher.cycle().await;
        for c in report.connectors.iter().filter(|c| c.acted) {
            eprintln!(
                "{}/{}: {} {}{}",
                c.cluster,
                c.connector,
                c.action,
                c.cause,
                if c.detail.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", c.detail)
                }
            );
        }
        for (cluster, err) in &report.unreachable {
            eprintln!("cluster {cluster} did not answer: {err}");
        }
        sleep_unless_stopped(args.interval, &stop).await;
    }
    Ok(exit::OK)
}

async fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200).min(total)).await;
    }
}

/// Starts the watchdog inside `lockstep serve`; it stops when `stop` is set.
pub fn spawn_in_service(
    global: &GlobalArgs,
    args: &ServeWatchArgs,
    metrics: WatchdogMetrics,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let clusters = clusters(global)?;
    let store = open_store(&args.watch_state_dir)?;
    let mut watcher = Watcher::new(clusters, args.policy.policy(), metrics, Some(store), false)
        .with_streaming(args.streaming.sources()?, args.streaming.policy());
    let interval = args.watch_interval;
    Ok(tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            watcher.cycle().await;
            sleep_unless_stopped(interval, &stop).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_commit_time_from_debezium_offsets() {
        let parse = |json: &str| -> lockstep_connect::ConnectorOffsets {
            serde_json::from_str(json).expect("offsets JSON")
        };
        let cases = [
            (
                r#"{"offsets":[{"partition":{"server":"pg"},"offset":{"lsn":123,"txId":5,"ts_usec":1700000000123456}}]}"#,
                Some(1_700_000_000_123),
            ),
            (
                r#"{"offsets":[{"partition":{"server":"my"},"offset":{"file":"binlog.000003","pos":4,"ts_sec":1700000000}}]}"#,
                Some(1_700_000_000_000),
            ),
            (
                r#"{"offsets":[{"partition":{"a":1},"offset":{"ts_ms":5}},{"partition":{"a":2},"offset":{"ts_ms":9}}]}"#,
                Some(9),
            ),
            (
                r#"{"offsets":[{"partition":{"server":"pg"},"offset":null}]}"#,
                None,
            ),
            (r#"{"offsets":[]}"#, None),
        ];
        for (json, want) in cases {
            assert_eq!(source_commit_time_ms(&parse(json)), want, "{json}");
        }
    }

    #[test]
    fn position_text_ignores_partition_order_and_sees_any_move() {
        let parse = |json: &str| -> lockstep_connect::ConnectorOffsets {
            serde_json::from_str(json).expect("offsets JSON")
        };
        let a = parse(
            r#"{"offsets":[{"partition":{"p":1},"offset":{"lsn":5}},{"partition":{"p":2},"offset":{"lsn":7}}]}"#,
        );
        let b = parse(
            r#"{"offsets":[{"partition":{"p":2},"offset":{"lsn":7}},{"partition":{"p":1},"offset":{"lsn":5}}]}"#,
        );
        let moved = parse(
            r#"{"offsets":[{"partition":{"p":1},"offset":{"lsn":5}},{"partition":{"p":2},"offset":{"lsn":8}}]}"#,
        );
        assert_eq!(position_text(&a), position_text(&b));
        assert_ne!(position_text(&a), position_text(&moved));
        assert_eq!(position_text(&parse(r#"{"offsets":[]}"#)), "");
    }

    #[test]
    fn committed_position_tells_a_snapshot_from_streaming() {
        let parse = |json: &str| -> lockstep_connect::ConnectorOffsets {
            serde_json::from_str(json).expect("offsets JSON")
        };
        let cases = [
            (r#"{"offsets":[]}"#, CommittedPosition::Nothing),
            (
                r#"{"offsets":[{"partition":{"server":"pg"},"offset":null}]}"#,
                CommittedPosition::Nothing,
            ),
            (
                r#"{"offsets":[{"partition":{"server":"pg"},"offset":{"last_snapshot_record":false,"lsn":123,"snapshot":"INITIAL","ts_usec":1}}]}"#,
                CommittedPosition::Snapshot,
            ),
            (
                r#"{"offsets":[{"partition":{"server":"pg"},"offset":{"lsn":123,"snapshot":true}}]}"#,
                CommittedPosition::Snapshot,
            ),
            (
                r#"{"offsets":[{"partition":{"server":"pg"},"offset":{"lsn":123,"snapshot":false}}]}"#,
                CommittedPosition::Streaming,
            ),
            (
                r#"{"offsets":[{"partition":{"server":"pg"},"offset":{"lsn":123,"lsn_proc":120,"txId":5,"ts_usec":1}}]}"#,
                CommittedPosition::Streaming,
            ),
        ];
        for (json, want) in cases {
            assert_eq!(committed_position(&parse(json)), want, "{json}");
        }
    }

    #[test]
    fn source_db_urls_and_the_connectors_they_serve() {
        let secret = Secret::new("hunter2");
        let db = SourceDb::parse("postgres://monitor@DB.internal:6432/orders", Some(&secret))
            .expect("valid");
        assert_eq!(
            (db.host.as_str(), db.port, db.database.as_str()),
            ("DB.internal", 6432, "orders")
        );
        assert!(!format!("{db:?}").contains("hunter2"), "{db:?}");
        let slot = |host: &str, port: u16, database: &str| SlotRef {
            host: host.into(),
            port,
            database: database.into(),
            slot: "debezium".into(),
        };
        assert!(db.serves(&slot("db.internal", 6432, "orders")));
        assert!(!db.serves(&slot("db.internal", 5432, "orders")));
        assert!(!db.serves(&slot("db.internal", 6432, "billing")));
        assert_eq!(
            SourceDb::parse("postgresql://m@h/d", None)
                .expect("valid")
                .port,
            5432
        );
        for (raw, expected) in [
            ("postgres://m:hunter2@h/d", "contains a password"),
            ("mysql://m@h/d", "only postgres://"),
            ("postgres://m@h/", "must name one database"),
            ("postgres://h/d", "names no user"),
            ("not a url", "is not a database URL"),
        ] {
            let err = SourceDb::parse(raw, None).expect_err(raw).to_string();
            assert!(err.contains(expected), "{raw}: {err}");
            assert!(!err.contains("hunter2"), "the password leaked: {err}");
        }
    }

    #[test]
    fn policy_flags_map_to_the_policy() {
        let args = PolicyArgs {
            initial_backoff: Duration::from_secs(3),
            max_backoff: Duration::from_secs(600),
            max_restarts: 7,
            breaker_window: Duration::from_secs(60),
            breaker_cooldown: Duration::from_secs(120),
            settle: Duration::from_secs(7),
        };
        let p = args.policy();
        assert_eq!(
            (p.initial_delay_ms, p.max_delay_ms, p.breaker_max_restarts),
            (3_000, 600_000, 7)
        );
        assert_eq!(
            (p.breaker_window_ms, p.breaker_cooldown_ms, p.settle_ms),
            (60_000, 120_000, 7_000)
        );
    }
}
