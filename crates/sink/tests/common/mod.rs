//! Helpers shared by the sink's MariaDB real-stack tests: MariaDB connections and databases, a
//! Debezium connector, and a guard that removes everything a test created even when it fails.

#![allow(dead_code)]

use lockstep_e2e::Stack;
use mysql_async::prelude::Queryable;

/// The stack's MariaDB password (`scripts/stack` creates `lockstep` / `lockstep`).
pub fn mariadb_password() -> String {
    std::env::var("LOCKSTEP_MARIADB_PASSWORD").unwrap_or_else(|_| "lockstep".into())
}

/// A MariaDB connection, to `database` when given.
pub async fn mariadb(stack: &Stack, database: Option<&str>) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(stack.mariadb_host.clone())
        .tcp_port(stack.mariadb_port)
        .user(Some(stack.mariadb_user.clone()))
        .pass(Some(mariadb_password()))
        .db_name(database.map(str::to_string))
        .prefer_socket(false)
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    mysql_async::Conn::new(opts)
        .await
        .expect("MariaDB of the local stack (scripts/stack up)")
}

/// Everything a test created outside its own process; removed when the [`Cleanup`] holding it
/// drops, also when the test panics. A replication slot left behind would retain WAL for ever.
#[derive(Default)]
pub struct Created {
    pub connectors: Vec<String>,
    /// (slot, publication)
    pub slots: Vec<(String, String)>,
    pub mariadb_databases: Vec<String>,
    /// SQL run on the PostgreSQL source database (drop tables, types).
    pub pg_source_sql: Vec<String>,
    /// SQL run on the PostgreSQL target database.
    pub pg_target_sql: Vec<String>,
}

impl Created {
    async fn remove(&self, stack: &Stack) {
        if let Ok(client) = stack.connect_client() {
            for name in &self.connectors {
                if let Err(e) = client.delete_connector(name).await {
                    eprintln!("cleanup: deleting connector {name}: {e}");
                }
            }
        }
        for (slot, publication) in &self.slots {
            if let Err(e) = stack.drop_pg_slot(slot, publication).await {
                eprintln!("cleanup: dropping slot {slot}: {e:#}");
            }
        }
        if !self.mariadb_databases.is_empty() {
            let mut conn = mariadb(stack, None).await;
            for db in &self.mariadb_databases {
                if let Err(e) = conn
                    .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
                    .await
                {
                    eprintln!("cleanup: dropping MariaDB database {db}: {e}");
                }
            }
        }
        for (db, sqls) in [
            (&stack.pg_source_db, &self.pg_source_sql),
            (&stack.pg_target_db, &self.pg_target_sql),
        ] {
            if sqls.is_empty() {
                continue;
            }
            match stack.pg(db).await {
                Ok(client) => {
                    for sql in sqls {
                        if let Err(e) = client.batch_execute(sql).await {
                            eprintln!("cleanup on {db}: {sql}: {e}");
                        }
                    }
                }
                Err(e) => eprintln!("cleanup: connecting to {db}: {e:#}"),
            }
        }
    }
}

/// The guard: removes what [`Created`] lists when dropped.
pub struct Cleanup {
    pub stack: Stack,
    pub created: Created,
}

impl Cleanup {
    pub fn new(stack: &Stack) -> Self {
        Self {
            stack: stack.clone(),
            created: Created::default(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be unwinding: clean up on a runtime of
        // its own, on a thread of its own.
        let created = std::mem::take(&mut self.created);
        let stack = self.stack.clone();
        let worker =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(created.remove(&stack)),
                    Err(e) => eprintln!("cleanup: no runtime: {e}"),
                }
            });
        if worker.join().is_err() {
            eprintln!("cleanup panicked; check for leftover connectors and replication slots");
        }
    }
}

/// Creates a MariaDB database of its own for a test (utf8mb4, binary collation), registered
/// for cleanup.
pub async fn create_mariadb_database(cleanup: &mut Cleanup, name: &str) {
    let mut conn = mariadb(&cleanup.stack, None).await;
    cleanup.created.mariadb_databases.push(name.to_string());
    conn.query_drop(format!(
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .await
    .expect("create MariaDB database");
}

/// Starts a Debezium PostgreSQL connector for `tables` with the settings a DR replica needs
/// (`Stack::start_pg_connector`: TRUNCATE mirrored, one partition per table topic), plus
/// `extra`; registered for cleanup before it is created, and running when this returns.
pub async fn start_connector(
    cleanup: &mut Cleanup,
    name: &str,
    tables: &[&str],
    extra: &[(&str, &str)],
) {
    let config = cleanup.stack.debezium_pg_config(name, tables);
    let setting = |key: &str| config.get(key).cloned().unwrap_or_default();
    cleanup.created.connectors.push(name.to_string());
    cleanup
        .created
        .slots
        .push((setting("slot.name"), setting("publication.name")));
    cleanup
        .stack
        .start_pg_connector(name, tables, extra)
        .await
        .expect("connector RUNNING");
}

/// A sink pipeline file's text for one topic and a MariaDB target database.
pub fn mariadb_pipeline(stack: &Stack, name: &str, topics: &[String], database: &str) -> String {
    format!(
        "name: {name}\nkafka:\n  bootstrap_servers: {bootstrap}\n  topics: [{topics}]\ntarget:\n  engine: mariadb\n  host: {host}\n  port: {port}\n  user: {user}\n  password: {password}\n  database: {database}\nbatch: {{max_rows: 700, linger_ms: 100}}\n",
        bootstrap = stack.kafka_bootstrap,
        topics = topics.join(", "),
        host = stack.mariadb_host,
        port = stack.mariadb_port,
        user = stack.mariadb_user,
        password = mariadb_password(),
    )
}

/// The same for the stack's PostgreSQL target database.
pub fn postgres_pipeline(stack: &Stack, name: &str, topics: &[String]) -> String {
    format!(
        "name: {name}\nkafka:\n  bootstrap_servers: {bootstrap}\n  topics: [{topics}]\ntarget:\n  engine: postgres\n  host: {host}\n  port: {port}\n  user: {user}\n  database: {db}\nbatch: {{max_rows: 700, linger_ms: 100}}\n",
        bootstrap = stack.kafka_bootstrap,
        topics = topics.join(", "),
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        db = stack.pg_target_db,
    )
}
