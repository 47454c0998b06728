//! The watchdog against the real stack, through the built `lockstep` binary, with a source
//! PostgreSQL of the test's own (`lockstep_e2e::PrivatePostgres`: scram-sha-256 passwords
//! required, stoppable without touching the shared stack). The connectors run on the shared
//! Connect worker.
//!
//! * Fault: under a continuous writer, the source PostgreSQL is stopped for 20 s; the Debezium
//!   task fails, `lockstep watch` classifies the failure as retriable and restarts the task; once
//!   the database is back replication completes (`lockstep sink run` into the stack's target
//!   PostgreSQL) and `lockstep verify` finds zero differences. The time from database-back to
//!   the task RUNNING and to the first post-outage change in the target is printed.
//! * Rejected credentials: the connector's role loses the REPLICATION privilege (the database
//!   answers "must be superuser or replication role to start walsender"); `lockstep watch`
//!   classifies it as a permanent authentication failure, raises one alert with the cause and
//!   the fix, and never restarts it, however many cycles run.
//! * Wrong password: the role's password changes on the source under a streaming connector,
//!   which is then restarted; its task stays RUNNING (see below) while the replication slot
//!   stays unused. `lockstep watch --source-db` finds it not streaming after the grace period,
//!   logs in with the connector's own credentials (SQLSTATE 28P01) and raises one alert naming
//!   the password and the fix; no restart, and the password is never printed.
//! * Connect worker killed: a private Connect worker (`lockstep_e2e::PrivateConnect`) is
//!   SIGKILLed under load and started again 10 s later; the watchdog reports the cluster
//!   unreachable meanwhile, and the pipeline recovers without a lost change.
//! * The fault test ends with `lockstep status` (connector line and sink lag p99).
//!
//! Debezium 3.6 behaviour these tests rely on (and the reason for `errors.max.retries=0`):
//! an error of the *streaming* phase fails the task only once Debezium's own retries
//! (`errors.max.retries`, unlimited by default) are used up. An error while the task *starts*
//! (the first JDBC connection: refused, or a wrong password) is always wrapped in a
//! `RetriableException` and retried inside the task every `retriable.restart.connector.wait.ms`
//! while Connect reports the task RUNNING: a wrong *password* therefore never shows as FAILED in
//! Connect's status, and no status-polling watchdog can see it. The watchdog sees it through the
//! source instead (`lockstep_watchdog::streaming`): a RUNNING connector whose slot is missing or
//! inactive past `--not-streaming-grace` is not streaming, and a login with its credentials
//! gives the cause. (A wrong password cannot be PUT into the config either: Connect validates
//! a PostgreSQL connector's config by logging in.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_connect::{
    ConnectClient, ConnectorConfig, ConnectorState, ConnectorStateInfo, CreateConnectorRequest,
    ExpectedState, RestartOptions,
};
use lockstep_e2e::{
    eventually, unique_name, PrivateConnect, PrivatePostgres, Stack, PRIVATE_PG_USER,
};

fn lockstep(stack: &Stack, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    cmd.args(args)
        .env("LOCKSTEP_CONNECT_URL", &stack.connect_url)
        .env_remove("LOCKSTEP_CONFIG")
        .env_remove("LOCKSTEP_CLUSTER")
        .env_remove("LOCKSTEP_STATE_DIR");
    cmd
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A child process killed (SIGKILL, by its own pid) when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates a connector on the shared worker and waits for it (and its task) to run.
async fn create_connector(
    client: &ConnectClient,
    name: &str,
    config: BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let mut c = ConnectorConfig::new();
    for (k, v) in config {
        c.insert(k, v);
    }
    client
        .create_connector(&CreateConnectorRequest {
            name: name.to_string(),
            config: c,
            initial_state: None,
        })
        .await?;
    client
        .wait_for_state(name, &ExpectedState::running(), Duration::from_secs(120))
        .await?;
    Ok(())
}

/// The watchdog's audit records about `subject`: (action, details).
fn audit_actions(
    state_dir: &Path,
    subject: &str,
) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    Ok(audit_timed(state_dir, subject)?
        .into_iter()
        .map(|(_, action, details)| (action, details))
        .collect())
}

/// The watchdog's audit records about `subject`: (RFC 3339 UTC time, action, details).
fn audit_timed(
    state_dir: &Path,
    subject: &str,
) -> anyhow::Result<Vec<(String, String, serde_json::Value)>> {
    let store = lockstep_store::Store::open_existing(&state_dir.join(lockstep_store::DB_FILE))?;
    anyhow::ensure!(store.verify_chain()?.intact, "the audit chain is intact");
    Ok(store
        .audit_records(None, 0)?
        .into_iter()
        .filter(|r| r.subject == subject)
        .map(|r| (r.ts.clone(), r.action.clone(), r.details_json()))
        .collect())
}

/// Row count, counter sum and a digest of every row in key order.
async fn digest(
    client: &tokio_postgres::Client,
    table: &str,
) -> anyhow::Result<(i64, i64, String)> {
    let row = client
        .query_one(
            &format!(
                "select count(*), coalesce(sum(counter), 0)::bigint, coalesce(md5(string_agg(t::text, ',' order by id)), '') from {table} t"
            ),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Writes the pipeline file and starts `lockstep sink run` into the stack's target database,
/// serving /metrics on a free port; returns the process and the metrics URL.
fn start_sink(
    stack: &Stack,
    name: &str,
    table: &str,
    pipeline: &Path,
) -> anyhow::Result<(KillOnDrop, String)> {
    std::fs::write(
        pipeline,
        format!(
            "name: {name}\nkafka:\n  bootstrap_servers: {}\n  topics: [{name}.public.{table}]\ntarget:\n  engine: postgres\n  host: {}\n  port: {}\n  user: {}\n  database: {}\nbatch: {{max_rows: 2000, linger_ms: 50}}\n",
            stack.kafka_bootstrap, stack.pg_host, stack.pg_port, stack.pg_user, stack.pg_target_db
        ),
    )?;
    let log = std::env::temp_dir().join(format!("{name}-sink.log"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = lockstep(stack, &["sink", "run", "--pipeline"])
        .arg(pipeline)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    Ok((
        KillOnDrop(child),
        format!("http://127.0.0.1:{port}/metrics"),
    ))
}

/// Starts `lockstep watch` on one connector of the Connect cluster at `connect_url`, polling
/// every second, with short backoffs; its stderr goes to the returned log file.
fn start_watch(
    connect_url: &str,
    name: &str,
    state_dir: &Path,
) -> anyhow::Result<(KillOnDrop, PathBuf)> {
    let log = std::env::temp_dir().join(format!("{name}-watch.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "watch",
            "--interval",
            "1s",
            "--initial-backoff",
            "1s",
            "--max-backoff",
            "4s",
            "--max-restarts",
            "50",
            "--settle",
            "5s",
            "--connector",
            name,
            "--state-dir",
        ])
        .arg(state_dir)
        .env("LOCKSTEP_CONNECT_URL", connect_url)
        .env_remove("LOCKSTEP_CONFIG")
        .env_remove("LOCKSTEP_CLUSTER")
        .env_remove("LOCKSTEP_STATE_DIR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    Ok((KillOnDrop(child), log))
}

/// Waits until a row with `id >= first_after` (written after an outage) is in the target.
async fn first_change_after(
    target: &tokio_postgres::Client,
    table: &str,
    first_after: i64,
) -> anyhow::Result<()> {
    eventually(
        "a change written after the outage to reach the target",
        Duration::from_secs(180),
        || async move {
            let row = target
                .query_one(
                    &format!("select count(*) from {table} where id >= $1"),
                    &[&first_after],
                )
                .await?;
            Ok((row.get::<_, i64>(0) > 0).then_some(()))
        },
    )
    .await
}

/// Waits for the target table to equal the source (digest), then runs `lockstep verify`, which
/// must find no difference. Returns the wait and verify's JSON report.
async fn converge_and_verify(
    stack: &Stack,
    pg: &PrivatePostgres,
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    table: &str,
) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let expected = digest(source, table).await?;
    eventually(
        "the target to equal the source",
        Duration::from_secs(180),
        || {
            let expected = &expected;
            async move {
                let got = digest(target, table).await?;
                Ok((got == *expected).then_some(()))
            }
        },
    )
    .await?;
    let converged_after = started.elapsed();
    let verify = lockstep(
        stack,
        &[
            "verify",
            "--source",
            &format!(
                "postgres://{PRIVATE_PG_USER}@127.0.0.1:{}/postgres",
                pg.port()
            ),
            "--target",
            &format!(
                "postgres://{}@{}:{}/{}",
                stack.pg_user, stack.pg_host, stack.pg_port, stack.pg_target_db
            ),
            "--table",
            &format!("public.{table}"),
            "-o",
            "json",
        ],
    )
    .env("LOCKSTEP_SOURCE_PASSWORD", pg.password())
    .output()?;
    anyhow::ensure!(
        verify.status.success(),
        "lockstep verify: {}",
        text(&verify)
    );
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout)?;
    for key in ["missing_count", "extra_count", "differing_count"] {
        anyhow::ensure!(report[key] == 0, "lockstep verify: {key} in {report}");
    }
    Ok((
        converged_after,
        format!(
            "{} rows compared, missing {}, extra {}, differing {}",
            report["rows_compared"],
            report["missing_count"],
            report["extra_count"],
            report["differing_count"]
        ),
    ))
}

/// What the writer did.
#[derive(Debug, Default)]
struct WriterStats {
    committed: u64,
    failed: u64,
    reconnects: u64,
}

/// Inserts a row and increments an earlier row's counter, one transaction every ~20 ms, until
/// `stop`; reconnects after errors (the database going away). `next_id` is shared so the test
/// can tell changes written after the outage.
async fn writer(
    config: tokio_postgres::Config,
    table: String,
    next_id: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<WriterStats>>,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_ref() else {
            match config.connect(tokio_postgres::NoTls).await {
                Ok((c, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    client = Some(c);
                    if let Ok(mut s) = stats.lock() {
                        s.reconnects += 1;
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            continue;
        };
        let id = next_id.load(Ordering::Relaxed);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let earlier = 1 + (seed % id.max(1) as u64) as i64;
        // One simple query is one transaction; ON CONFLICT covers a commit whose answer was lost.
        let sql = format!(
            "insert into {table} values ({id}, 0, 'n{id}') on conflict (id) do nothing;
             update {table} set counter = counter + 1 where id = {earlier}"
        );
        match c.batch_execute(&sql).await {
            Ok(()) => {
                next_id.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut s) = stats.lock() {
                    s.committed += 1;
                }
            }
            Err(_) => {
                client = None;
                if let Ok(mut s) = stats.lock() {
                    s.failed += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The runtime of the tests that drive a private PostgreSQL from blocking code.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// On the private server: table `name` (one row), a login role with replication and its
/// password (`role`), and a publication of the table; then a connector on the shared worker
/// that logs in as the role (`extra` settings on top), running. The server's admin connection.
async fn role_connector(
    stack: &Stack,
    pg: &PrivatePostgres,
    name: &str,
    (role, role_password): (&str, &str),
    publication: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<tokio_postgres::Client> {
    let admin = pg.connect("postgres").await?;
    admin
        .batch_execute(&format!(
            "create table public.{name} (id bigint primary key, v text);
             insert into public.{name} values (1, 'a');
             create role {role} login replication password '{role_password}';
             grant select on public.{name} to {role};
             create publication {publication} for table public.{name};"
        ))
        .await?;
    let mut config = pg.debezium_config(name, &[name]);
    let settings = [
        ("database.user", role),
        ("database.password", role_password),
        ("publication.name", publication),
        ("publication.autocreate.mode", "disabled"),
    ];
    for (k, v) in settings.iter().chain(extra) {
        config.insert((*k).into(), (*v).into());
    }
    create_connector(&stack.connect_client()?, name, config).await?;
    Ok(admin)
}

/// Restarts the connector and its tasks (as an operator would).
async fn restart_with_tasks(client: &ConnectClient, name: &str) -> anyhow::Result<()> {
    client
        .restart_connector(
            name,
            RestartOptions {
                include_tasks: true,
                only_failed: false,
            },
        )
        .await?;
    Ok(())
}

/// How many restarts of a connector the watchdog's audit records show.
fn restarts(actions: &[(String, serde_json::Value)]) -> usize {
    actions
        .iter()
        .filter(|(a, _)| a.starts_with("connector.restart"))
        .count()
}

/// Connect's view of a connector in one line: `connector RUNNING tasks [FAILED]`.
fn states(status: &ConnectorStateInfo) -> String {
    format!(
        "connector {} tasks [{}]",
        status.connector.state.as_str(),
        status
            .tasks
            .iter()
            .map(|t| t.state.as_str())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// The end of a private-server test, whatever happened: the connector on the shared worker
/// is deleted; the slot, role and publication go with the private server; then the verdict.
fn finish_private(
    rt: &tokio::runtime::Runtime,
    stack: &Stack,
    name: &str,
    pg: PrivatePostgres,
    state_dir: &Path,
    result: anyhow::Result<()>,
) {
    rt.block_on(async {
        if let Ok(client) = stack.connect_client() {
            let _ = client.delete_connector(name).await;
        }
    });
    drop(pg);
    let _ = std::fs::remove_dir_all(state_dir);
    if let Err(e) = result {
        panic!("{e:#}");
    }
}

/// A change of Connect's view of a connector: ms since the start, states, the last
/// "Caused by" line of a failed task's trace.
type Transition = (u128, String, Option<String>);

/// Connect's view of one connector, sampled every 100 ms: (ms since `t0`, state summary).
async fn sample_states(
    client: ConnectClient,
    name: String,
    t0: Instant,
    stop: Arc<AtomicBool>,
    timeline: Arc<Mutex<Vec<Transition>>>,
) {
    let mut last = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(status) = client.connector_status(&name).await {
            let summary = states(&status);
            if summary != last {
                let trace = status
                    .tasks
                    .iter()
                    .filter_map(|t| t.trace.as_deref())
                    .flat_map(|t| t.lines().rfind(|l| l.starts_with("Caused by")))
                    .next()
                    .map(str::to_string);
                if let Ok(mut tl) = timeline.lock() {
                    tl.push((t0.elapsed().as_millis(), summary.clone(), trace));
                }
                last = summary;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn source_database_down_20s_is_restarted_by_the_watchdog_and_nothing_is_lost() {
    let stack = Stack::get();
    let name = unique_name("wd_fault").replace('_', "-");
    let table = name.replace('-', "_");
    let state_dir: PathBuf = std::env::temp_dir().join(format!("lockstep-watchdog-{name}"));
    let pipeline = std::env::temp_dir().join(format!("{name}.yaml"));
    let client = stack.connect_client().expect("connect client");

    let body = {
        let (stack, name, table, state_dir, pipeline, client) = (
            stack.clone(),
            name.clone(),
            table.clone(),
            state_dir.clone(),
            pipeline.clone(),
            client.clone(),
        );
        async move {
            let result: anyhow::Result<()> = async {
                let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
                let source = pg.connect("postgres").await?;
                let ddl = "(id bigint primary key, counter bigint not null, note text)";
                source
                    .batch_execute(&format!("create table {table} {ddl}"))
                    .await?;
                let target = stack.pg(&stack.pg_target_db).await?;
                target
                    .batch_execute(&format!("create table {table} {ddl}"))
                    .await?;

                let mut config = pg.debezium_config(&name, &[&table]);
                // Debezium retries streaming errors for ever by default; hand them to the watchdog.
                config.insert("errors.max.retries".into(), "0".into());
                // Debezium's own retry of a task whose start failed (the database still down).
                config.insert("retriable.restart.connector.wait.ms".into(), "1000".into());
                create_connector(&client, &name, config).await?;

                let (_sink, metrics_url) = start_sink(&stack, &name, &table, &pipeline)?;
                let (_watch, watch_log) = start_watch(&stack.connect_url, &name, &state_dir)?;

                let t0 = Instant::now();
                let stop_sampling = Arc::new(AtomicBool::new(false));
                let timeline = Arc::new(Mutex::new(Vec::new()));
                let sampler = tokio::spawn(sample_states(
                    client.clone(),
                    name.clone(),
                    t0,
                    stop_sampling.clone(),
                    timeline.clone(),
                ));
                let next_id = Arc::new(AtomicI64::new(1));
                let stop_writing = Arc::new(AtomicBool::new(false));
                let stats = Arc::new(Mutex::new(WriterStats::default()));
                let writer = tokio::spawn(writer(
                    pg.client_config(PRIVATE_PG_USER, pg.password(), "postgres"),
                    table.clone(),
                    next_id.clone(),
                    stop_writing.clone(),
                    stats.clone(),
                ));

                // Load first, and see it arrive.
                tokio::time::sleep(Duration::from_secs(5)).await;
                let before = next_id.load(Ordering::Relaxed) - 1;
                anyhow::ensure!(before > 20, "the writer commits ({before} so far)");

                // The outage: 20 s.
                let mut pg = tokio::task::spawn_blocking(move || {
                    let mut pg = pg;
                    pg.stop().map(|()| pg)
                })
                .await??;
                let stopped_ms = t0.elapsed().as_millis();
                let stopped_ts = lockstep_store::Timestamp::now().to_rfc3339();
                tokio::time::sleep(Duration::from_secs(20)).await;
                let mut pg = tokio::task::spawn_blocking(move || {
                    pg.start_again().map(|()| pg)
                })
                .await??;
                let back = Instant::now();
                let back_ms = t0.elapsed().as_millis();
                let back_ts = lockstep_store::Timestamp::now().to_rfc3339();
                let first_after = next_id.load(Ordering::Relaxed);

                // The first change written after the outage reaches the target.
                let resumed = first_change_after(&target, &table, first_after).await;
                let resumed_after = back.elapsed();
                resumed?;

                tokio::time::sleep(Duration::from_secs(5)).await;
                stop_writing.store(true, Ordering::Relaxed);
                writer.await?;
                let written = next_id.load(Ordering::Relaxed) - 1;

                // Replication completes: the target equals the source, and `lockstep verify`
                // finds no difference.
                let source = pg.connect("postgres").await?;
                let (converged_after, verify) =
                    converge_and_verify(&stack, &pg, &source, &target, &table).await?;
                stop_sampling.store(true, Ordering::Relaxed);
                let _ = sampler.await;

                let timeline = timeline.lock().map(|t| t.clone()).unwrap_or_default();
                let running_again_ms = timeline
                    .iter()
                    .filter(|(ms, _, _)| *ms >= back_ms)
                    .find(|(_, s, _)| s.contains("RUNNING") && !s.contains("FAILED"))
                    .map(|(ms, _, _)| *ms);
                let last_running_before_back = timeline
                    .iter()
                    .rev()
                    .find(|(ms, _, _)| *ms < back_ms)
                    .filter(|(_, s, _)| !s.contains("FAILED"))
                    .map(|(ms, _, _)| *ms);
                let failed_seen = timeline.iter().any(|(_, s, _)| s.contains("FAILED"));
                // The watchdog confirms the recovery (RUNNING for --settle and the committed
                // source position moved); wait for its record.
                let recovered = eventually(
                    "the watchdog's connector.recovered record",
                    Duration::from_secs(90),
                    || async {
                        Ok(audit_timed(&state_dir, &name)?
                            .into_iter()
                            .find(|(_, a, _)| a == "connector.recovered"))
                    },
                )
                .await;
                let actions = audit_actions(&state_dir, &name)?;
                let restarts: Vec<_> = actions
                    .iter()
                    .filter(|(a, _)| a == "connector.restarted")
                    .collect();

                println!("--- fault test timeline (ms since the writer started) ---");
                println!("database stopped at {stopped_ms} ms, back at {back_ms} ms");
                for (ms, state, trace) in &timeline {
                    println!("  {ms:>6} ms  {state}{}", trace.as_deref().map(|t| format!("  [{t}]")).unwrap_or_default());
                }
                println!("database stopped at {stopped_ts}, back at {back_ts} (UTC)");
                for (ts, action, details) in audit_timed(&state_dir, &name)? {
                    println!("  audit {ts}: {action} {details}");
                }
                println!(
                    "watchdog log:\n{}",
                    std::fs::read_to_string(&watch_log).unwrap_or_default()
                );
                match running_again_ms {
                    Some(ms) => println!("database back -> task RUNNING (Connect status): {} ms", ms - back_ms),
                    None => println!(
                        "database back -> task RUNNING (Connect status): already RUNNING since {} ms before the database returned (Debezium retries a failed start inside a RUNNING task)",
                        last_running_before_back.map(|ms| back_ms - ms).unwrap_or_default()
                    ),
                }
                println!(
                    "database back -> first post-outage change in the target: {:.1} s",
                    resumed_after.as_secs_f64()
                );
                println!(
                    "writer: {written} transactions committed ({before} before the outage), {}; target equal to source {:.1} s after the writer stopped; watchdog restarts: {}; lockstep verify: {}",
                    stats.lock().map(|s| format!("{} failed statements, {} connections", s.failed, s.reconnects)).unwrap_or_default(),
                    converged_after.as_secs_f64(),
                    restarts.len(),
                    verify
                );

                anyhow::ensure!(failed_seen, "the Debezium task failed during the outage: {timeline:?}");
                let (recovered_ts, _, recovered) = recovered?;
                println!(
                    "database back at {back_ts}; watchdog's connector.recovered at {recovered_ts}: {recovered}"
                );
                // RFC 3339 UTC with milliseconds, same format: text order is time order.
                anyhow::ensure!(
                    recovered_ts >= back_ts,
                    "recovery is reported only after the database is back ({back_ts}), not at {recovered_ts}: {actions:?}"
                );
                anyhow::ensure!(
                    recovered["position_moved"] == true,
                    "the recovery is confirmed by a moving source position: {recovered}"
                );
                anyhow::ensure!(!restarts.is_empty(), "the watchdog restarted the task: {actions:?}");
                for (_, details) in &restarts {
                    let cause = details["cause"].as_str().unwrap_or_default();
                    anyhow::ensure!(
                        [
                            "connection_refused",
                            "database_restarting",
                            "connection_lost",
                            "timeout",
                            "retriable_exception",
                            "unknown"
                        ]
                        .contains(&cause),
                        "restarts are for retriable causes only: {details}"
                    );
                }
                anyhow::ensure!(
                    !actions.iter().any(|(a, d)| a == "alert.raised" && d["kind"] == "permanent_failure"),
                    "a database outage is not a permanent failure: {actions:?}"
                );
                let final_status = client.connector_status(&name).await?;
                anyhow::ensure!(!final_status.has_failure(), "{final_status:?}");

                // `lockstep status`: the connector's line (state, freshness, last incident) and
                // the sink's (lag p99).
                let status = lockstep(
                    &stack,
                    &[
                        "status",
                        "--connector",
                        &name,
                        "--metrics",
                        &metrics_url,
                        "--state-dir",
                        state_dir.to_str().unwrap_or_default(),
                    ],
                )
                .output()?;
                println!("lockstep status:\n{}", String::from_utf8_lossy(&status.stdout));
                anyhow::ensure!(status.status.success(), "{}", text(&status));
                let json = lockstep(
                    &stack,
                    &[
                        "status",
                        "--connector",
                        &name,
                        "--metrics",
                        &metrics_url,
                        "--state-dir",
                        state_dir.to_str().unwrap_or_default(),
                        "-o",
                        "json",
                    ],
                )
                .output()?;
                let report: serde_json::Value = serde_json::from_slice(&json.stdout)
                    .map_err(|e| anyhow::anyhow!("{e}: {}", text(&json)))?;
                let rows = report["rows"].as_array().cloned().unwrap_or_default();
                let connector = rows
                    .iter()
                    .find(|r| r["kind"] == "connector" && r["name"] == name.as_str())
                    .ok_or_else(|| anyhow::anyhow!("no connector line: {report}"))?;
                anyhow::ensure!(connector["state"] == "RUNNING", "{connector}");
                anyhow::ensure!(connector["tasks"] == "1/1", "{connector}");
                anyhow::ensure!(connector["freshness_seconds"].is_number(), "{connector}");
                anyhow::ensure!(
                    connector["last_incident"]
                        .as_str()
                        .is_some_and(|i| i.contains("database_restarting")
                            || i.contains("connector.")),
                    "{connector}"
                );
                let sink = rows
                    .iter()
                    .find(|r| r["kind"] == "sink" && r["name"].as_str().is_some_and(|n| n.ends_with(&table)))
                    .ok_or_else(|| anyhow::anyhow!("no sink line: {report}"))?;
                anyhow::ensure!(sink["lag_p99_seconds"].is_number(), "{sink}");
                drop(source);
                pg.stop()?;
                Ok(())
            }
            .await;
            if let Err(e) = result {
                panic!("{e:#}");
            }
        }
    };

    let cleanup = async {
        let _ = client.delete_connector(&name).await;
        if let Ok(target) = stack.pg(&stack.pg_target_db).await {
            let _ = target
                .batch_execute(&format!("drop table if exists {table}"))
                .await;
            let _ = target
                .execute(
                    "delete from lockstep.sink_offsets where pipeline = $1",
                    &[&name],
                )
                .await;
        }
        let _ = std::fs::remove_file(&pipeline);
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{name}-sink.log")));
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{name}-watch.log")));
        let _ = std::fs::remove_dir_all(&state_dir);
    };
    lockstep_e2e::with_cleanup(body, cleanup).await;
}

#[test]
fn rejected_credentials_raise_one_alert_and_no_restart_loop() {
    let rt = runtime();
    let stack = Stack::get();
    let name = unique_name("wd_auth");
    let role = format!("{name}_role");
    let role_password = format!("pw-{name}");
    let publication = format!("{name}_pub");
    let state_dir: PathBuf = std::env::temp_dir().join(format!("lockstep-watchdog-{name}"));
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let pg = PrivatePostgres::start().expect("private PostgreSQL");

    let setup = rt.block_on(role_connector(
        &stack,
        &pg,
        &name,
        (&role, &role_password),
        &publication,
        &[("errors.max.retries", "0")],
    ));

    let body = || -> anyhow::Result<()> {
        setup.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let client = stack.connect_client()?;
        rt.block_on(async {
            // The role's grants change under the running connector (a rotated role, a revoked
            // privilege): its next connection is refused.
            let admin = pg.connect("postgres").await?;
            admin
                .batch_execute(&format!("alter role {role} noreplication"))
                .await?;
            restart_with_tasks(&client, &name).await?;
            eventually("the task to fail", Duration::from_secs(90), || async {
                let status = client.connector_status(&name).await?;
                if status.has_failure() {
                    return Ok(Some(()));
                }
                anyhow::bail!("not failed yet: {status:?}")
            })
            .await
        })?;

        // One cycle: the classified cause and the fix, exit 1.
        let once = lockstep(
            &stack,
            &[
                "watch",
                "--once",
                "--connector",
                &name,
                "--state-dir",
                state_dir.to_str().unwrap_or_default(),
                "-o",
                "json",
            ],
        )
        .output()?;
        anyhow::ensure!(once.status.code() == Some(1), "{}", text(&once));
        let report: serde_json::Value = serde_json::from_slice(&once.stdout)?;
        let row = &report["connectors"][0];
        println!("lockstep watch --once: {row}");
        anyhow::ensure!(row["connector"] == name.as_str(), "{report}");
        anyhow::ensure!(row["cause"] == "authentication", "{report}");
        anyhow::ensure!(row["action"] == "alert: not restarted", "{report}");
        anyhow::ensure!(
            row["detail"]
                .as_str()
                .is_some_and(|d| d.contains("database.user")),
            "the fix is named: {report}"
        );

        // A long-running watchdog, polling every 500 ms for 8 s (about 16 cycles): still one
        // alert, no restart.
        let mut child = lockstep(
            &stack,
            &[
                "watch",
                "--interval",
                "500ms",
                "--initial-backoff",
                "1s",
                "--connector",
                &name,
                "--state-dir",
                state_dir.to_str().unwrap_or_default(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
        std::thread::sleep(Duration::from_secs(8));
        child.kill()?;
        let output = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!("lockstep watch (8 s, every 500 ms):\n{stderr}");
        let actions = audit_actions(&state_dir, &name)?;
        for (action, details) in &actions {
            println!("audit: {action} {details}");
        }
        // The --once run and the long run each raise the alert once (separate processes).
        let alerts: Vec<_> = actions
            .iter()
            .filter(|(a, _)| a == "alert.raised")
            .collect();
        anyhow::ensure!(
            alerts.len() == 2,
            "one alert per watchdog process: {actions:?}\n{stderr}"
        );
        for (_, details) in &alerts {
            anyhow::ensure!(details["cause"] == "authentication", "{details}");
            anyhow::ensure!(details["kind"] == "permanent_failure", "{details}");
        }
        let restarts = restarts(&actions);
        println!("watchdog restarts of the rejected connector: {restarts}");
        anyhow::ensure!(
            restarts == 0,
            "a permanent failure is never restarted: {actions:?}"
        );
        // Still FAILED: nobody restarted it.
        let status = rt.block_on(client.connector_status(&name))?;
        anyhow::ensure!(
            status
                .tasks
                .iter()
                .any(|t| t.state == ConnectorState::Failed),
            "{status:?}"
        );
        Ok(())
    };
    let result = body();
    drop(setup);
    finish_private(&rt, &stack, &name, pg, &state_dir, result);
}

/// Whether the replication slot is active; `None` while it does not exist.
async fn slot_active(admin: &tokio_postgres::Client, slot: &str) -> anyhow::Result<Option<bool>> {
    let row = admin
        .query_opt(
            "select active from pg_replication_slots where slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, bool>(0)))
}

/// A wrong password while the connector runs: the role's password changes on the source under
/// a streaming connector, which is then restarted. Debezium retries its start inside a task
/// Connect shows RUNNING, so only the unused replication slot shows it. `lockstep watch
/// --source-db` finds the connector not streaming after the grace period, logs in with the
/// connector's own credentials (SQLSTATE 28P01) and raises one alert naming the password;
/// it never restarts the connector, and never prints the password.
#[test]
fn wrong_password_while_running_is_found_not_streaming_and_alerted_once() {
    let rt = runtime();
    let started = Instant::now();
    let stack = Stack::get();
    let name = unique_name("wd_pw");
    let role = format!("{name}_role");
    let role_password = format!("pw-{name}-old");
    let new_password = format!("pw-{name}-new");
    let publication = format!("{name}_pub");
    let slot = name.replace('-', "_");
    let state_dir: PathBuf = std::env::temp_dir().join(format!("lockstep-watchdog-{name}"));
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let watch_log = state_dir.join("watch.log");
    let pg = PrivatePostgres::start().expect("private PostgreSQL");

    let setup = rt.block_on(async {
        let admin = role_connector(
            &stack,
            &pg,
            &name,
            (&role, &role_password),
            &publication,
            &[],
        )
        .await?;
        eventually(
            "the connector to stream (its slot active)",
            Duration::from_secs(90),
            || async { Ok(slot_active(&admin, &slot).await?.filter(|a| *a).map(|_| ())) },
        )
        .await?;
        anyhow::Ok(admin)
    });

    let body = || -> anyhow::Result<()> {
        let admin = setup.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let client = stack.connect_client()?;

        // The watchdog, polling every second with a 3 s grace period, first sees the connector
        // streaming (5 s: nothing to report), then with the wrong password (12 s: about 9
        // cycles past the grace period). Its stdout and stderr go to one file.
        let log = std::fs::File::create(&watch_log)?;
        let watch = KillOnDrop(
            lockstep(
                &stack,
                &[
                    "watch",
                    "--interval",
                    "1s",
                    "--initial-backoff",
                    "1s",
                    "--not-streaming-grace",
                    "3s",
                    "--source-db",
                    &format!(
                        "postgres://{PRIVATE_PG_USER}@127.0.0.1:{}/postgres",
                        pg.port()
                    ),
                    "--connector",
                    &name,
                    "--state-dir",
                    state_dir.to_str().unwrap_or_default(),
                ],
            )
            .env("LOCKSTEP_SOURCE_PASSWORD", pg.password())
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
        );
        std::thread::sleep(Duration::from_secs(5));
        let before = audit_actions(&state_dir, &name)?;
        anyhow::ensure!(
            before.is_empty(),
            "a streaming connector raises nothing: {before:?}"
        );

        rt.block_on(async {
            // The password is rotated on the source, not in the connector's config (Connect
            // validates a config update by logging in, so a wrong password cannot be PUT).
            admin
                .batch_execute(&format!("alter role {role} password '{new_password}'"))
                .await?;
            restart_with_tasks(&client, &name).await?;
            eventually(
                "the slot to be released",
                Duration::from_secs(60),
                || async { Ok(slot_active(admin, &slot).await?.filter(|a| !*a).map(|_| ())) },
            )
            .await
        })?;
        let status = rt.block_on(client.connector_status(&name))?;
        println!(
            "after the restart with a wrong password, Connect shows: {}",
            states(&status)
        );
        std::thread::sleep(Duration::from_secs(12));
        drop(watch);
        let out = std::fs::read_to_string(&watch_log)?;
        println!("lockstep watch --source-db (12 s, every 1 s):\n{out}");
        for secret in [role_password.as_str(), new_password.as_str(), pg.password()] {
            anyhow::ensure!(
                !out.contains(secret),
                "a password appears in the watchdog's output:\n{out}"
            );
        }
        let actions = audit_actions(&state_dir, &name)?;
        for (action, details) in &actions {
            println!("audit: {action} {details}");
        }
        let audit_text = serde_json::to_string(&actions)?;
        anyhow::ensure!(
            !audit_text.contains(&role_password),
            "the password appears in the audit log"
        );
        let alerts: Vec<_> = actions
            .iter()
            .filter(|(a, _)| a == "alert.raised")
            .map(|(_, d)| d)
            .collect();
        anyhow::ensure!(alerts.len() == 1, "exactly one alert: {actions:?}\n{out}");
        let alert = alerts[0];
        anyhow::ensure!(alert["cause"] == "authentication", "{alert}");
        anyhow::ensure!(alert["kind"] == "permanent_failure", "{alert}");
        let message = alert["message"].as_str().unwrap_or_default();
        anyhow::ensure!(
            message.contains("not streaming")
                && message.contains(&format!("the password of user {role}"))
                && message.contains("28P01"),
            "the alert names the cause: {alert}"
        );
        anyhow::ensure!(
            alert["fix"]
                .as_str()
                .is_some_and(|f| f.contains("database.password")),
            "the alert names the fix: {alert}"
        );
        let restarts = restarts(&actions);
        println!("watchdog restarts of the connector with the wrong password: {restarts}");
        anyhow::ensure!(restarts == 0, "never restarted: {actions:?}");
        // Still there, untouched.
        let status = rt.block_on(client.connector_status(&name))?;
        println!(
            "at the end Connect shows: {}; test took {:.1} s",
            states(&status),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    };
    let result = body();
    drop(setup);
    finish_private(&rt, &stack, &name, pg, &state_dir, result);
}

/// The Connect worker process is killed (SIGKILL) under load and started again 10 s later: the
/// watchdog reports the cluster unreachable meanwhile, the connector resumes from its committed
/// offsets when the worker is back, and no change is lost (`lockstep verify`: zero
/// differences). Uses a private Connect worker: the shared one is never killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn connect_worker_killed_and_started_again_loses_no_change() {
    let stack = Stack::get();
    let name = unique_name("wd_worker").replace('_', "-");
    let table = name.replace('-', "_");
    let state_dir: PathBuf = std::env::temp_dir().join(format!("lockstep-watchdog-{name}"));
    let pipeline = std::env::temp_dir().join(format!("{name}.yaml"));

    let body = {
        let (stack, name, table, state_dir, pipeline) = (
            stack.clone(),
            name.clone(),
            table.clone(),
            state_dir.clone(),
            pipeline.clone(),
        );
        async move {
            let result: anyhow::Result<()> = async {
                let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
                let mut connect = PrivateConnect::start(&stack).await?;
                let client = connect.client()?;
                let source = pg.connect("postgres").await?;
                let ddl = "(id bigint primary key, counter bigint not null, note text)";
                source
                    .batch_execute(&format!("create table {table} {ddl}"))
                    .await?;
                let target = stack.pg(&stack.pg_target_db).await?;
                target
                    .batch_execute(&format!("create table {table} {ddl}"))
                    .await?;
                // Debezium's defaults otherwise: its own retries cover a slot still held by
                // the killed worker's walsender for a moment.
                create_connector(&client, &name, pg.debezium_config(&name, &[&table])).await?;
                let (_sink, _) = start_sink(&stack, &name, &table, &pipeline)?;
                let (_watch, watch_log) = start_watch(&connect.url(), &name, &state_dir)?;

                let next_id = Arc::new(AtomicI64::new(1));
                let stop_writing = Arc::new(AtomicBool::new(false));
                let stats = Arc::new(Mutex::new(WriterStats::default()));
                let writer = tokio::spawn(writer(
                    pg.client_config(PRIVATE_PG_USER, pg.password(), "postgres"),
                    table.clone(),
                    next_id.clone(),
                    stop_writing.clone(),
                    stats.clone(),
                ));
                tokio::time::sleep(Duration::from_secs(5)).await;
                let before = next_id.load(Ordering::Relaxed) - 1;
                anyhow::ensure!(before > 20, "the writer commits ({before} so far)");

                connect.kill()?;
                tokio::time::sleep(Duration::from_secs(10)).await;
                let startup = connect.start_again().await?;
                let back = Instant::now();
                let first_after = next_id.load(Ordering::Relaxed);
                client
                    .wait_for_state(&name, &ExpectedState::running(), Duration::from_secs(180))
                    .await?;
                let running_after = back.elapsed();
                first_change_after(&target, &table, first_after).await?;
                let resumed_after = back.elapsed();

                tokio::time::sleep(Duration::from_secs(5)).await;
                stop_writing.store(true, Ordering::Relaxed);
                writer.await?;
                let written = next_id.load(Ordering::Relaxed) - 1;
                let (converged_after, verify) =
                    converge_and_verify(&stack, &pg, &source, &target, &table).await?;

                let watch = std::fs::read_to_string(&watch_log).unwrap_or_default();
                let unreachable = watch
                    .lines()
                    .filter(|l| l.contains("did not answer"))
                    .count();
                let plain: Vec<&str> = watch.lines().filter(|l| !l.contains("watchdog: cannot read connector states")).collect();
                let shown: Vec<&str> = plain
                    .iter()
                    .take(3)
                    .chain(plain.iter().skip(3.max(plain.len().saturating_sub(3))))
                    .copied()
                    .collect();
                println!(
                    "watchdog output (first and last lines of {}):\n{}",
                    plain.len(),
                    shown.join("\n")
                );
                println!(
                    "Connect worker SIGKILLed under load for 10 s; restarted worker answered after {:.1} s; worker back -> connector RUNNING in Connect's status {:.1} s (the status topic may still hold the killed worker's RUNNING), -> first post-outage change in the target {:.1} s; watchdog cycles that saw the cluster unreachable: {unreachable}",
                    startup.as_secs_f64(),
                    running_after.as_secs_f64(),
                    resumed_after.as_secs_f64()
                );
                println!(
                    "writer: {written} transactions ({before} before the kill), {}; target equal to source {:.1} s after the writer stopped; lockstep verify: {verify}",
                    stats
                        .lock()
                        .map(|s| format!("{} failed statements", s.failed))
                        .unwrap_or_default(),
                    converged_after.as_secs_f64()
                );
                anyhow::ensure!(
                    unreachable > 0,
                    "the watchdog reports the Connect outage:\n{watch}"
                );
                let status = client.connector_status(&name).await?;
                anyhow::ensure!(!status.has_failure(), "{status:?}");
                drop(connect);
                drop(pg);
                Ok(())
            }
            .await;
            if let Err(e) = result {
                panic!("{e:#}");
            }
        }
    };

    // The connector lives and dies with the private worker; the slot with the private server.
    let cleanup = async {
        if let Ok(target) = stack.pg(&stack.pg_target_db).await {
            let _ = target
                .batch_execute(&format!("drop table if exists {table}"))
                .await;
            let _ = target
                .execute(
                    "delete from lockstep.sink_offsets where pipeline = $1",
                    &[&name],
                )
                .await;
        }
        let _ = std::fs::remove_file(&pipeline);
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{name}-sink.log")));
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{name}-watch.log")));
        let _ = std::fs::remove_dir_all(&state_dir);
    };
    lockstep_e2e::with_cleanup(body, cleanup).await;
}
