//! What the real-stack tests share (`mod support;` in each; not a test binary of its own): the
//! connector a test starts, deleted by its cleanup whatever happened; `lockstep sink run
//! --listen` as a child process; a steady writer into the source table; the wait for the first
//! changes in the target; the cleanup of the tables and sink offsets a test created; `lockstep
//! verify` of a table; and, for the DDL tests, the pipeline file and its `source:` section, the
//! `lockstep` command with none of the caller's settings, its output for assertion messages, a
//! table's columns and the wait until source and target rows are equal.

// Each test binary that includes this module (`mod support;`) uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_e2e::{eventually, PgConnector, Stack};

/// The `source:` section of a DDL pipeline file on the stack's PostgreSQL source database:
/// connector and topic prefix `name`, then `extra` (lines indented by two spaces).
pub fn source_section(stack: &Stack, name: &str, extra: &str) -> String {
    format!(
        "source:
  engine: postgres
  host: {host}
  port: {port}
  user: {user}
  database: {source}
  connectors: [{name}]
  topic_prefix: {name}
{extra}",
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        source = stack.pg_source_db,
    )
}

/// A DDL pipeline file: sink `name` reading `topics` into the stack's PostgreSQL target, then
/// `top` (more sink settings), then the source section with `source_extra`.
pub fn pipeline_yaml(
    stack: &Stack,
    name: &str,
    topics: &[String],
    top: &str,
    source_extra: &str,
) -> String {
    format!(
        "name: {name}
kafka: {{bootstrap_servers: '{kafka}', topics: [{topics}]}}
target: {{engine: postgres, host: {host}, port: {port}, user: {user}, database: {target}, schema: public}}
batch: {{max_rows: 500, linger_ms: 50}}
{top}{source}",
        topics = topics.join(", "),
        kafka = stack.kafka_bootstrap,
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        target = stack.pg_target_db,
        source = source_section(stack, name, source_extra),
    )
}

/// A child process killed (SIGKILL, by its own pid) when the test ends, passed or not.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The connector a test's body started, for the test's cleanup to delete whatever happened.
#[derive(Clone, Default)]
pub struct ConnectorSlot(Arc<Mutex<Option<PgConnector>>>);

impl ConnectorSlot {
    pub fn put(&self, connector: PgConnector) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(connector);
        }
    }

    /// Deletes the connector (and its slot and publication), if the body got that far.
    pub async fn cleanup(&self) {
        let started = self.0.lock().ok().and_then(|mut c| c.take());
        if let Some(c) = started {
            c.cleanup().await;
        }
    }
}

/// Writes the pipeline file (with `extra` YAML lines at its end) and starts `lockstep sink run
/// --listen` for the table `name` of the connector `name` into the stack's target database, its
/// stderr to `stderr`; the process and its base URL.
pub fn start_sink(
    stack: &Stack,
    name: &str,
    pipeline: &Path,
    extra: &str,
    stderr: Stdio,
) -> anyhow::Result<(KillOnDrop, String)> {
    start_sink_on(stack, name, pipeline, extra, stderr, free_port()?)
}

/// A free TCP port of 127.0.0.1 (free when this returns).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// [`start_sink`] listening on `port`, for a pipeline file whose `extra` lines name the
/// sink's own API (`source.sink_api`).
pub fn start_sink_on(
    stack: &Stack,
    name: &str,
    pipeline: &Path,
    extra: &str,
    stderr: Stdio,
    port: u16,
) -> anyhow::Result<(KillOnDrop, String)> {
    std::fs::write(
        pipeline,
        format!(
            "name: {name}\nkafka:\n  bootstrap_servers: {}\n  topics: [{name}.public.{name}]\ntarget:\n  engine: postgres\n  host: {}\n  port: {}\n  user: {}\n  database: {}\nbatch: {{max_rows: 2000, linger_ms: 50}}\n{extra}",
            stack.kafka_bootstrap, stack.pg_host, stack.pg_port, stack.pg_user, stack.pg_target_db
        ),
    )?;
    let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["sink", "run", "--pipeline"])
        .arg(pipeline)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("LOCKSTEP_CONFIG")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?;
    Ok((KillOnDrop(child), format!("http://127.0.0.1:{port}")))
}

/// Inserts 10 rows (`select <columns> from generate_series(...) g`) every `every` until
/// `stop`; missed ticks are caught up in a burst. `next_id` is the next id to write.
pub async fn writer(
    source: tokio_postgres::Client,
    table: String,
    columns: &'static str,
    every: Duration,
    next_id: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let first = next_id.fetch_add(10, Ordering::Relaxed);
        source
            .batch_execute(&format!(
                "insert into {table} select {columns} from generate_series({first}, {}) g",
                first + 9
            ))
            .await?;
    }
    Ok(())
}

/// Waits until the target table has a row: changes flow end to end.
pub async fn first_changes(
    target: &tokio_postgres::Client,
    table: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    eventually("the first changes in the target", timeout, || async move {
        let n: i64 = target
            .query_one(&format!("select count(*) from {table}"), &[])
            .await?
            .get(0);
        Ok((n > 0).then_some(()))
    })
    .await
}

/// Drops `table` on the source and the target database, if it is there.
pub async fn drop_table(stack: &Stack, table: &str) {
    for db in [&stack.pg_source_db, &stack.pg_target_db] {
        if let Ok(pg) = stack.pg(db).await {
            let _ = pg
                .batch_execute(&format!("drop table if exists {table}"))
                .await;
        }
    }
}

/// Drops the table `name` in the source and target databases and the sink offsets of the
/// pipeline `name`; errors are ignored (cleanup).
pub async fn drop_tables_and_offsets(stack: &Stack, name: &str) {
    drop_table(stack, name).await;
    if let Ok(target) = stack.pg(&stack.pg_target_db).await {
        let _ = target
            .execute(
                "delete from lockstep.sink_offsets where pipeline = $1",
                &[&name],
            )
            .await;
    }
}

/// `lockstep verify` of one table of the stack's PostgreSQL, source against target, as JSON.
#[allow(dead_code)] // the DDL tests use it, the tuner's and the lag SLO's do not
pub async fn lockstep_verify(stack: &Stack, table: &str) -> std::process::Output {
    let url = |db: &str| {
        format!(
            "postgres://{}@{}:{}/{db}",
            stack.pg_user, stack.pg_host, stack.pg_port
        )
    };
    let (source, target, table) = (
        url(&stack.pg_source_db),
        url(&stack.pg_target_db),
        table.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(["verify", "--source", &source, "--target", &target])
            .args(["--table", &format!("public.{table}"), "-o", "json"])
            .env_remove("LOCKSTEP_CONFIG")
            .env("LOCKSTEP_SOURCE_PASSWORD", "postgres")
            .env("LOCKSTEP_TARGET_PASSWORD", "postgres")
            .output()
            .expect("running lockstep verify")
    })
    .await
    .expect("lockstep verify task")
}

/// The lockstep binary for a DDL test: the state store under `dir/state`, run in `dir`, none of
/// the caller's lockstep settings (config file, cluster, Connect URL, failpoint) leaking in. Callers add the arguments and the settings they mean.
pub fn lockstep_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    command
        .env("LOCKSTEP_STATE_DIR", dir.join("state"))
        .env_remove("LOCKSTEP_CONFIG")
        .env_remove("LOCKSTEP_CLUSTER")
        .env_remove("LOCKSTEP_CONNECT_URL")
        .env_remove("LOCKSTEP_FAILPOINT")
        .current_dir(dir);
    command
}

/// A finished command's exit code and output, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The column names of a `public` table, in order.
pub async fn column_names(db: &tokio_postgres::Client, table: &str) -> Vec<String> {
    db.query(
        "select column_name::text from information_schema.columns
         where table_schema = 'public' and table_name = $1 order by ordinal_position",
        &[&table],
    )
    .await
    .expect("columns")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Waits until the table's rows are the same on the source and the target; their count.
/// Panics after `timeout` with both sides and the sink's log.
pub async fn converged(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    table: &str,
    timeout: Duration,
    sink_log: &Path,
) -> i64 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (s, t) = (
            lockstep_e2e::table_text(source, table).await,
            lockstep_e2e::table_text(target, table).await,
        );
        if s == t {
            return s.0;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{table} did not converge: source {s:?} target {t:?}\nsink log:\n{}",
            std::fs::read_to_string(sink_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
