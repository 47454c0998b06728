//! The source database adapter (PostgreSQL): connect, and run one DDL statement under a
//! `lock_timeout` with bounded retries on lock timeouts.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::error::ExecError;
use crate::pipeline::SourceSettings;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A tokio-postgres error with the server's message, code and detail when there is one.
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!(": {d}"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// A failed statement on the source, with what it was doing.
pub(crate) fn source_err(what: impl Into<String>, e: &tokio_postgres::Error) -> ExecError {
    ExecError::Sql {
        side: "source",
        what: what.into(),
        reason: pg_error_text(e),
    }
}

/// Open a PostgreSQL session (the connection task runs in the background).
pub async fn connect_pg(
    what: &'static str,
    host: &str,
    port: u16,
    user: &str,
    password: Option<&lockstep_config::SecretRef>,
    database: &str,
) -> Result<Client, ExecError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(user)
        .dbname(database)
        .application_name("lockstep-ddl")
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(p) = password {
        let secret = p.resolve().map_err(|e| ExecError::Secret {
            what,
            reason: e.to_string(),
        })?;
        config.password(secret.expose());
    }
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| ExecError::Connect {
            what,
            target: format!("postgres {host}:{port}/{database}"),
            reason: pg_error_text(&e),
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("{what} connection closed: {e}");
        }
    });
    Ok(client)
}

pub async fn connect_source(s: &SourceSettings) -> Result<Client, ExecError> {
    connect_pg(
        "source",
        &s.host,
        s.port,
        &s.user,
        s.password.as_ref(),
        &s.database,
    )
    .await
}

/// What running a source DDL took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DdlRun {
    pub attempts: u32,
    pub duration_ms: u64,
    /// The LSN of the mark emitted in the DDL's transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
}

pub(crate) fn is_lock_timeout(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// Run one statement (already classified as exactly one statement) with `lock_timeout`:
/// a DDL waiting for its lock blocks every writer queued behind it, so it gives up after
/// `lock_timeout_ms` and tries again (`retries` more times, with a growing pause). A
/// transactional statement runs in its own transaction; CREATE/DROP INDEX CONCURRENTLY
/// cannot, and runs with a session-level setting that is reset afterwards.
pub async fn run_ddl(
    client: &mut Client,
    sql: &str,
    lock_timeout_ms: u64,
    retries: u32,
    transactional: bool,
    mark: Option<&str>,
) -> Result<DdlRun, ExecError> {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = if transactional {
            run_in_transaction(client, sql, lock_timeout_ms, mark).await
        } else {
            let r = async {
                client
                    .batch_execute(&format!("SET lock_timeout = {lock_timeout_ms}"))
                    .await?;
                client.batch_execute(sql).await.map(|_| None)
            }
            .await;
            let _ = client.batch_execute("RESET lock_timeout").await;
            r
        };
        match result {
            Ok(lsn) => {
                return Ok(DdlRun {
                    attempts: attempt,
                    duration_ms: crate::exec::millis_since(started),
                    lsn,
                })
            }
            Err(e) if is_lock_timeout(&e) && attempt <= retries => {
                tracing::warn!(attempt, "source DDL hit lock_timeout; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) if is_lock_timeout(&e) => {
                return Err(ExecError::LockTimeout {
                    attempts: attempt,
                    reason: pg_error_text(&e),
                })
            }
            Err(e) => {
                return Err(source_err(
                    format!("running {}", lockstep_ddl::excerpt(sql)),
                    &e,
                ))
            }
        }
    }
}

async fn run_in_transaction(
    client: &mut Client,
    sql: &str,
    lock_timeout_ms: u64,
    mark: Option<&str>,
) -> Result<Option<String>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {lock_timeout_ms}"))
        .await?;
    // The extended protocol runs exactly one statement: a second one hidden in the text is
    // refused by the server, whatever the classifier saw.
    tx.execute(sql, &[]).await?;
    // A transactional message: it commits with the DDL, so every change before the DDL is
    // below its LSN and every change after it above.
    let lsn = match mark {
        Some(content) => Some(
            tx.query_one(
                "SELECT pg_logical_emit_message(true, 'lockstep', $1)::text",
                &[&content],
            )
            .await?
            .get(0),
        ),
        None => None,
    };
    tx.commit().await?;
    Ok(lsn)
}
