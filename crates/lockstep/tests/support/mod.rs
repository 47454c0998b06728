//! What the real-stack tests of the auto-tuner (`tune.rs`) and of the lag SLO (`lag_slo.rs`)
//! share (`mod support;` in each; not a test binary of its own): the connector a test starts,
//! deleted by its cleanup whatever happened; `lockstep sink run --listen` as a child process; a
//! steady writer into the source table; the wait for the first changes in the target; and the
//! cleanup of the tables and sink offsets a test created.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_e2e::{eventually, PgConnector, Stack};

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
    std::fs::write(
        pipeline,
        format!(
            "name: {name}\nkafka:\n  bootstrap_servers: {}\n  topics: [{name}.public.{name}]\ntarget:\n  engine: postgres\n  host: {}\n  port: {}\n  user: {}\n  database: {}\nbatch: {{max_rows: 2000, linger_ms: 50}}\n{extra}",
            stack.kafka_bootstrap, stack.pg_host, stack.pg_port, stack.pg_user, stack.pg_target_db
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
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

/// Drops the table `name` in the source and target databases and the sink offsets of the
/// pipeline `name`; errors are ignored (cleanup).
pub async fn drop_tables_and_offsets(stack: &Stack, name: &str) {
    for db in [&stack.pg_source_db, &stack.pg_target_db] {
        if let Ok(pg) = stack.pg(db).await {
            let _ = pg
                .batch_execute(&format!("drop table if exists {name}"))
                .await;
        }
    }
    if let Ok(target) = stack.pg(&stack.pg_target_db).await {
        let _ = target
            .execute(
                "delete from lockstep.sink_offsets where pipeline = $1",
                &[&name],
            )
            .await;
    }
}
