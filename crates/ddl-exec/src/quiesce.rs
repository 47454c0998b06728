//! The quiesce session: one source connection per running operation that holds `LOCK TABLE …
//! IN EXCLUSIVE MODE` on the plan's tables in an open transaction across plan steps. Writes to the table wait (reads go on), so
//! once the sink has applied everything up to a mark emitted after the lock, nothing of the
//! table is in flight: the sink can be held, the connector stopped, and the DDL run in the
//! session commits with the table's stream at rest.
//!
//! The session lives in the executor's process. When the process dies, PostgreSQL rolls the
//! transaction back (the DDL with it) and the lock goes; the session's transaction id, kept in
//! the quiesce step's output, lets recovery learn whether a commit in flight landed
//! (`pg_xact_status`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lockstep_ddl::QualifiedName;
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::error::ExecError;
use crate::exec::millis_since;
use crate::pipeline::SourceSettings;
use crate::source::{connect_source, is_lock_timeout, pg_error_text, source_err, DdlRun};
use crate::tables::quote_table;

/// Attempts at the quiesce lock. Each waits at most `lock_timeout`: writers queue behind a
/// waiting `LOCK TABLE`, so it gives up and tries again rather than stall them.
const ATTEMPTS: u32 = 5;

struct Session {
    client: Client,
    xid: String,
    tables: BTreeSet<QualifiedName>,
}

/// The quiesce session of one executor: one transaction holding the locks of every table
/// the plan quiesces, so the DDL run in it needs no lock another session holds.
#[derive(Default)]
pub struct QuiesceSessions {
    session: Option<Session>,
    /// How the last session of this process ended: its transaction id and COMMIT/ROLLBACK.
    ended: Option<(String, &'static str)>,
}

impl std::fmt::Debug for QuiesceSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuiesceSessions")
            .field("tables", &self.session.as_ref().map(|s| &s.tables))
            .field("ended", &self.ended)
            .finish()
    }
}

fn lost(table: &QualifiedName) -> ExecError {
    ExecError::QuiesceLost {
        table: table.to_string(),
    }
}

/// Run `sql` in the open transaction behind a savepoint, retrying lock timeouts: a lock
/// timeout would otherwise abort the transaction and end the quiesce.
async fn with_savepoint(
    client: &Client,
    sql: &str,
    lock_timeout_ms: u64,
    attempts: u32,
    what: &str,
) -> Result<u32, ExecError> {
    client
        .batch_execute(&format!("SET LOCAL lock_timeout = {lock_timeout_ms}"))
        .await
        .map_err(|e| source_err(format!("setting lock_timeout for {what}"), &e))?;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        client
            .batch_execute("SAVEPOINT lockstep_quiesce")
            .await
            .map_err(|e| source_err(format!("a savepoint before {what}"), &e))?;
        // The extended protocol runs exactly one statement, whatever the text hides.
        let result = client.execute(sql, &[]).await;
        let end = if result.is_ok() {
            "RELEASE SAVEPOINT lockstep_quiesce"
        } else {
            "ROLLBACK TO SAVEPOINT lockstep_quiesce"
        };
        client
            .batch_execute(end)
            .await
            .map_err(|e| source_err(format!("ending the savepoint of {what}"), &e))?;
        match result {
            Ok(_) => return Ok(attempt),
            Err(e) if is_lock_timeout(&e) && attempt < attempts => {
                tracing::warn!(
                    attempt,
                    "{what}: lock not granted within lock_timeout; retrying"
                );
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) if is_lock_timeout(&e) => {
                return Err(ExecError::LockTimeout {
                    attempts: attempt,
                    reason: pg_error_text(&e),
                })
            }
            Err(e) => return Err(source_err(what, &e)),
        }
    }
}

impl QuiesceSessions {
    /// Whether this process holds the table quiesced.
    pub fn holds(&self, table: &QualifiedName) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.tables.contains(table))
    }

    /// Lock the table in the session (opened on first use; a table already locked in it is
    /// left alone). Returns what the step records, the transaction id first: recovery asks
    /// PostgreSQL about it.
    pub async fn open(
        &mut self,
        settings: &SourceSettings,
        table: &QualifiedName,
        lock_timeout_ms: u64,
    ) -> Result<Value, ExecError> {
        let started = Instant::now();
        if self.session.is_none() {
            let client = connect_source(settings).await?;
            client
                .batch_execute("BEGIN")
                .await
                .map_err(|e| source_err("opening the quiesce session", &e))?;
            let xid: String = client
                .query_one("SELECT pg_current_xact_id()::text", &[])
                .await
                .map_err(|e| source_err("reading the quiesce session's transaction id", &e))?
                .get(0);
            self.session = Some(Session {
                client,
                xid,
                tables: BTreeSet::new(),
            });
        }
        let Some(session) = self.session.as_mut() else {
            return Err(lost(table));
        };
        if session.tables.contains(table) {
            return Ok(json!({"xid": session.xid, "already_locked": true}));
        }
        let lock = format!("LOCK TABLE {} IN EXCLUSIVE MODE", quote_table(table));
        let what = format!("quiescing {table}");
        let attempts =
            with_savepoint(&session.client, &lock, lock_timeout_ms, ATTEMPTS, &what).await?;
        session.tables.insert(table.clone());
        tracing::info!(table = %table, xid = session.xid, attempts, "table quiesced: writes to it wait until the session ends");
        Ok(json!({"xid": session.xid, "attempts": attempts, "duration_ms": millis_since(started)}))
    }

    /// Run the DDL in the session holding `tables` (it commits with
    /// [`QuiesceSessions::release`]).
    pub async fn run_ddl(
        &mut self,
        tables: &[QualifiedName],
        sql: &str,
        lock_timeout_ms: u64,
        retries: u32,
    ) -> Result<DdlRun, ExecError> {
        if let Some(t) = tables.iter().find(|t| !self.holds(t)) {
            return Err(lost(t));
        }
        let Some(session) = self.session.as_ref() else {
            return Err(ExecError::QuiesceLost {
                table: "(no table)".into(),
            });
        };
        let started = Instant::now();
        let what = format!("running {}", lockstep_ddl::excerpt(sql));
        let attempts = with_savepoint(
            &session.client,
            sql,
            lock_timeout_ms,
            retries.saturating_add(1),
            &what,
        )
        .await?;
        Ok(DdlRun {
            attempts,
            duration_ms: millis_since(started),
            lsn: None,
        })
    }

    /// End the session holding the table: commit (the DDL run in it lands, writes go on) or
    /// roll back. Every table of the session is released with it; a later release of one
    /// of them reports how the session ended. A commit of a table this process does not hold
    /// is [`ExecError::QuiesceLost`] (the caller asks PostgreSQL whether it landed); a
    /// rollback of one is done already (the transaction ended with its process).
    pub async fn release(
        &mut self,
        table: &QualifiedName,
        commit: bool,
    ) -> Result<Value, ExecError> {
        if !self.holds(table) {
            return match (&self.ended, commit) {
                (Some((xid, verb)), _) => {
                    Ok(json!({"xid": xid, "ended": verb, "with_the_session": true}))
                }
                (None, true) => Err(lost(table)),
                (None, false) => {
                    Ok(json!({"rolled_back": "the session had ended with its process"}))
                }
            };
        }
        let Some(session) = self.session.take() else {
            return Err(lost(table));
        };
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        // A failed COMMIT leaves `ended` unset: whether it landed is PostgreSQL's to say.
        session
            .client
            .batch_execute(verb)
            .await
            .map_err(|e| source_err(format!("{verb} of the quiesce session of {table}"), &e))?;
        self.ended = Some((session.xid.clone(), verb));
        tracing::info!(xid = session.xid, tables = ?session.tables, "quiesce ended: {verb}");
        Ok(json!({"xid": session.xid, "ended": verb}))
    }

    /// Roll the session back, if one is open (a plan is being undone: the source stays as
    /// it was, and a connector restarted by the undo must not wait for the locks).
    pub async fn rollback_all(&mut self) {
        if let Some(session) = self.session.take() {
            if let Err(e) = session.client.batch_execute("ROLLBACK").await {
                tracing::warn!("rolling back the quiesce session failed (closing its connection rolls it back): {e}");
            }
            self.ended = Some((session.xid, "ROLLBACK"));
        }
    }
}

/// What PostgreSQL knows of a transaction: `committed`, `aborted`, `in progress`, or `None`
/// when it is too old to tell.
pub async fn xact_status(client: &Client, xid: &str) -> Result<Option<String>, ExecError> {
    let row = client
        .query_one("SELECT pg_xact_status($1::text::xid8)::text", &[&xid])
        .await
        .map_err(|e| source_err(format!("reading the status of transaction {xid}"), &e))?;
    Ok(row.get(0))
}
