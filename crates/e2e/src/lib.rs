//! Test kit for the real-stack tests: where the local stack is (`scripts/stack up` writes
//! `.stack/env`), and small helpers to talk to its PostgreSQL, broker and Kafka Connect.
//!
//! The tests in `tests/` need the stack. When it is not up they fail with the command to run,
//! rather than skipping: a suite that silently skips its real-stack tests proves nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

mod private_connect;
mod private_pg;
pub use private_connect::PrivateConnect;
pub use private_pg::{PrivatePostgres, PRIVATE_PG_USER};

/// Connection settings of the local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_user: String,
    pub pg_source_db: String,
    pub pg_target_db: String,
    pub mariadb_host: String,
    pub mariadb_port: u16,
    pub mariadb_user: String,
    pub mariadb_database: String,
    pub kafka_bootstrap: String,
    pub connect_url: String,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Reads `KEY=value` pairs from the stack's env file (`export KEY='value'` lines).
fn read_env_file(path: &PathBuf) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "the local stack's settings file {} is missing: run `scripts/stack up` first",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect())
}

impl Stack {
    /// Settings from the environment (`LOCKSTEP_*`), falling back to `<stack dir>/env`.
    pub fn from_env() -> Result<Self> {
        let stack_dir = std::env::var("LOCKSTEP_STACK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join(".stack"));
        let file = read_env_file(&stack_dir.join("env")).unwrap_or_default();
        let get = |key: &str| -> Result<String> {
            std::env::var(key)
                .ok()
                .or_else(|| file.get(key).cloned())
                .ok_or_else(|| {
                    anyhow!(
                        "{key} is not set and {}/env does not define it: run `scripts/stack up` (or source its env file)",
                        stack_dir.display()
                    )
                })
        };
        let port = |key: &str| -> Result<u16> {
            get(key)?
                .parse()
                .with_context(|| format!("{key} is not a port number"))
        };
        Ok(Self {
            pg_host: get("LOCKSTEP_PG_HOST")?,
            pg_port: port("LOCKSTEP_PG_PORT")?,
            pg_user: get("LOCKSTEP_PG_USER")?,
            pg_source_db: get("LOCKSTEP_PG_SOURCE_DB")?,
            pg_target_db: get("LOCKSTEP_PG_TARGET_DB")?,
            mariadb_host: get("LOCKSTEP_MARIADB_HOST")?,
            mariadb_port: port("LOCKSTEP_MARIADB_PORT")?,
            mariadb_user: get("LOCKSTEP_MARIADB_USER")?,
            mariadb_database: get("LOCKSTEP_MARIADB_DATABASE")?,
            kafka_bootstrap: get("LOCKSTEP_KAFKA_BOOTSTRAP")?,
            connect_url: get("LOCKSTEP_CONNECT_URL")?,
        })
    }

    /// Panicking variant for tests, with the remedy in the message.
    pub fn get() -> Self {
        match Self::from_env() {
            Ok(stack) => stack,
            Err(err) => panic!("real-stack test needs the local stack: {err:#}"),
        }
    }

    pub async fn pg(&self, db: &str) -> Result<tokio_postgres::Client> {
        let conn = format!(
            "host={} port={} user={} dbname={} application_name=lockstep-e2e",
            self.pg_host, self.pg_port, self.pg_user, db
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!(
                    "connecting to PostgreSQL {}:{}/{db}",
                    self.pg_host, self.pg_port
                )
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    pub async fn pg_source(&self) -> Result<tokio_postgres::Client> {
        self.pg(&self.pg_source_db).await
    }

    pub fn connect_client(&self) -> Result<lockstep_connect::ConnectClient> {
        let config = lockstep_connect::ClientConfig::new([self.connect_url.as_str()]);
        lockstep_connect::ConnectClient::new(config).context("building the Kafka Connect client")
    }

    /// A consumer that is never part of a group: tests assign partitions explicitly, which
    /// fetches at once (group joins are slow on the local broker) and reads exactly what asked.
    pub fn consumer(&self) -> Result<BaseConsumer> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.kafka_bootstrap)
            .set("group.id", unique_name("e2e-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .context("creating a Kafka consumer")
    }

    /// A standard Debezium PostgreSQL source config for a table of the stack's source database.
    pub fn debezium_pg_config(&self, name: &str, tables: &[&str]) -> BTreeMap<String, String> {
        let include: Vec<String> = tables.iter().map(|t| format!("public.{t}")).collect();
        [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector".to_string(),
            ),
            ("tasks.max", "1".into()),
            ("database.hostname", self.pg_host.clone()),
            ("database.port", self.pg_port.to_string()),
            ("database.user", self.pg_user.clone()),
            ("database.password", "postgres".into()),
            ("database.dbname", self.pg_source_db.clone()),
            ("topic.prefix", name.to_string()),
            ("plugin.name", "pgoutput".into()),
            ("slot.name", name.replace('-', "_")),
            (
                "publication.name",
                format!("{}_pub", name.replace('-', "_")),
            ),
            ("publication.autocreate.mode", "filtered".into()),
            ("table.include.list", include.join(",")),
            ("snapshot.mode", "initial".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Drops a Debezium connector's replication slot and publication once the slot is released;
    /// a slot left behind retains WAL for ever.
    pub async fn drop_pg_slot(&self, slot: &str, publication: &str) -> Result<()> {
        let pg = self.pg_source().await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let rows = pg
                .query(
                    "select active from pg_replication_slots where slot_name = $1",
                    &[&slot],
                )
                .await?;
            match rows.first() {
                None => break,
                Some(row) if !row.get::<_, bool>(0) => {
                    pg.execute("select pg_drop_replication_slot($1)", &[&slot])
                        .await?;
                    break;
                }
                Some(_) if Instant::now() > deadline => {
                    bail!("replication slot {slot} still active after 60 s")
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        pg.batch_execute(&format!("drop publication if exists {publication}"))
            .await?;
        Ok(())
    }
}

/// A name unique to this test run, usable as a table, topic, slot or connector name.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{:08x}",
        std::process::id(),
        nanos ^ rand::random::<u32>()
    )
}

/// Number of partitions of a topic, waiting for it to exist.
pub fn partition_count(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .context("fetching topic metadata")?;
        if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) {
            if t.error().is_none() && !t.partitions().is_empty() {
                return Ok(t.partitions().len() as i32);
            }
        }
        if Instant::now() > deadline {
            bail!("topic {topic} did not appear within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// High watermarks (end offsets, as ListOffsets reports them) of every partition of a topic.
pub fn end_offsets(consumer: &BaseConsumer, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let partitions = partition_count(consumer, topic, Duration::from_secs(30))?;
    (0..partitions)
        .map(|p| {
            let (_low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .with_context(|| format!("ListOffsets for {topic}/{p}"))?;
            Ok((p, high))
        })
        .collect()
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
        use rdkafka::message::{Headers, Message};
        Record {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads every partition of `topic` from the given start offsets (or the beginning) until
/// `expected` records arrived or `timeout` passed, and returns what it read.
pub fn consume(
    consumer: &BaseConsumer,
    topic: &str,
    start: Option<&BTreeMap<i32, i64>>,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<Record>> {
    let partitions = partition_count(consumer, topic, timeout)?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        let offset = match start.and_then(|s| s.get(&p)) {
            Some(o) => Offset::Offset(*o),
            None => Offset::Beginning,
        };
        assignment
            .add_partition_offset(topic, p, offset)
            .context("building the partition assignment")?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    let deadline = Instant::now() + timeout;
    let mut records = Vec::with_capacity(expected);
    while records.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => records.push(Record::of(&m)),
            Some(Err(e)) => bail!("consuming {topic}: {e}"),
            None => {}
        }
    }
    // Drain briefly so that a test can tell "exactly N" from "at least N".
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            records.push(Record::of(&m));
        }
    }
    Ok(records)
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what` in the message.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("{what}: not reached within {timeout:?}")),
                None => anyhow!("{what}: not reached within {timeout:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A Debezium PostgreSQL connector made for one test. Debezium's defaults are kept, except what
/// a DR replica needs: TRUNCATE is not skipped, and each table topic gets one partition (so a
/// keyless TRUNCATE keeps its place among the table's changes).
pub struct PgConnector {
    pub name: String,
    pub slot: String,
    pub publication: String,
    stack: Stack,
}

impl Stack {
    /// Creates the connector for `tables` (with `extra` settings on top) and waits for RUNNING.
    pub async fn start_pg_connector(
        &self,
        name: &str,
        tables: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<PgConnector> {
        let mut config = lockstep_connect::ConnectorConfig::new();
        for (k, v) in self.debezium_pg_config(name, tables) {
            config.insert(k, v);
        }
        config.insert("skipped.operations", "none");
        config.insert("topic.creation.default.partitions", "1");
        config.insert("topic.creation.default.replication.factor", "1");
        for (k, v) in extra {
            config.insert(*k, *v);
        }
        let connector = PgConnector {
            name: name.to_string(),
            slot: config.get("slot.name").unwrap_or_default().to_string(),
            publication: config
                .get("publication.name")
                .unwrap_or_default()
                .to_string(),
            stack: self.clone(),
        };
        let client = self.connect_client()?;
        client
            .create_connector(&lockstep_connect::CreateConnectorRequest {
                name: name.to_string(),
                config,
                initial_state: None,
            })
            .await
            .with_context(|| format!("creating connector {name}"))?;
        client
            .wait_for_state(
                name,
                &lockstep_connect::ExpectedState::running(),
                Duration::from_secs(120),
            )
            .await
            .with_context(|| format!("waiting for connector {name} to run"))?;
        Ok(connector)
    }
}

impl PgConnector {
    /// Deletes the connector, then its slot and publication (a slot left behind retains WAL).
    pub async fn cleanup(&self) {
        if let Ok(client) = self.stack.connect_client() {
            let _ = client.delete_connector(&self.name).await;
        }
        if let Err(e) = self.stack.drop_pg_slot(&self.slot, &self.publication).await {
            eprintln!("cleanup of {}: {e:#}", self.name);
        }
    }
}

/// Runs a test body in its own task so that a failing assertion still reaches `cleanup`, then
/// re-raises the failure.
pub async fn with_cleanup<B, C>(body: B, cleanup: C)
where
    B: std::future::Future<Output = ()> + Send + 'static,
    C: std::future::Future<Output = ()>,
{
    let result = tokio::spawn(body).await;
    cleanup.await;
    if let Err(e) = result {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test body was cancelled: {e}");
    }
}

/// A PostgreSQL table's row count and the digest of its rows as text in `id` order: equal pairs
/// mean equal tables (same columns, types and values).
pub async fn table_text(client: &tokio_postgres::Client, table: &str) -> (i64, String) {
    let row = client
        .query_one(
            &format!(
                "select count(*), coalesce(md5(string_agg(t::text, E'\\n' order by id)), '') from {table} t"
            ),
            &[],
        )
        .await
        .expect("table digest");
    (row.get(0), row.get(1))
}
