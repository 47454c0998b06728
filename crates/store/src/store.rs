//! [`Store`]: the SQLite adapter. Every state change is one `BEGIN IMMEDIATE` transaction that
//! reads the current state, asks the pure state machines (`state.rs`) whether the change is
//! legal, writes it, and appends its audit record: state and audit commit together or not at
//! all, and two writers (threads or processes) are serialised by SQLite's write lock, so a
//! compare-and-set has exactly one winner.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use serde_json::{json, Value};

use crate::audit::{self, AuditRecord, ChainReport, ChainVerifier, Head};
use crate::error::{db, Result, StoreError};
use crate::model::{
    AuditEntry, ListFilter, NewOperation, Operation, OperationId, OperationOutcome,
    OperationSummary, Stamp, Step, StepOutcome, StepState, StepTicket,
};
use crate::schema::{MIGRATIONS, SCHEMA_VERSION};
use crate::state::{
    completion_check, operation_transition, start_order_check, step_event_allowed, step_transition,
    OperationEvent, OperationState, StepEvent, StepStatus,
};
use crate::time::Timestamp;

/// The store's file name inside the state directory.
pub const DB_FILE: &str = "lockstep.db";

/// How long a writer waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// lockstep's embedded store: one SQLite file (WAL, `synchronous=FULL`). `Send + Sync`: share
/// it in an `Arc`; calls are serialised on its one connection. Several processes may open the
/// same file; their writes are serialised by SQLite.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating when needed) `<state_dir>/lockstep.db`; a new directory is made
    /// readable by its owner only.
    pub fn open_dir(state_dir: &Path) -> Result<Self> {
        if !state_dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(state_dir)
                .map_err(|cause| StoreError::CreateDir {
                    path: state_dir.to_path_buf(),
                    cause,
                })?;
        }
        Self::open(&state_dir.join(DB_FILE))
    }

    /// Opens the store file at `path`, creating it (not its directory) when missing, and
    /// migrates it to this build's schema.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, OpenFlags::default())
    }

    /// Opens an existing store; [`StoreError::Missing`] when there is none (read commands
    /// should not create an empty store and then report it empty).
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open_with(path, OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self> {
        let open_err = |cause| StoreError::Open {
            path: path.to_path_buf(),
            cause,
        };
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite did not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrate(&mut conn, path)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock dropped its transaction (rolled back): the
        // connection itself is fine to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction (the write lock is taken at BEGIN, so what `f`
    /// reads cannot change before it writes) and commits.
    fn write<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>, Timestamp) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(what))?;
        let out = f(&tx, Timestamp::now())?;
        tx.commit().map_err(db(what))?;
        Ok(out)
    }

    /// Runs `f` on one consistent snapshot.
    fn read<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(db(what))?;
        let out = f(&tx)?;
        tx.finish().map_err(db(what))?;
        Ok(out)
    }

    // ---- operations -------------------------------------------------------------------

    /// Records a new operation with its steps (all pending) and audits it with its plan.
    pub fn create_operation(&self, new: &NewOperation) -> Result<OperationId> {
        for (field, value) in [
            ("kind", &new.kind),
            ("subject", &new.subject),
            ("requested_by", &new.requested_by),
        ] {
            if value.trim().is_empty() {
                return Err(StoreError::InvalidInput(format!(
                    "a new operation needs a non-empty {field}"
                )));
            }
        }
        let state = if new.require_approval {
            OperationState::PendingApproval
        } else {
            OperationState::Approved
        };
        let plan = serde_json::to_string(&new.plan)
            .map_err(|e| StoreError::InvalidInput(format!("the plan does not serialise: {e}")))?;
        self.write("recording a new operation", |tx, now| {
            tx.execute(
                "INSERT INTO operations (kind, subject, requested_by, requested_at, plan, state,
                     require_approval, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?4)",
                params![
                    new.kind,
                    new.subject,
                    new.requested_by,
                    now.unix_millis(),
                    plan,
                    state.as_str(),
                    new.require_approval
                ],
            )
            .map_err(db("recording a new operation"))?;
            let id = OperationId(tx.last_insert_rowid());
            for (index, name) in new.steps.iter().enumerate() {
                tx.execute(
                    "INSERT INTO steps (operation_id, idx, name, state, updated_at)
                     VALUES (?1, ?2, ?3, 'pending', ?4)",
                    params![id.0, index as i64, name, now.unix_millis()],
                )
                .map_err(db("recording the steps of a new operation"))?;
            }
            append_in(
                tx,
                now,
                &new.requested_by,
                "operation.created",
                &new.subject,
                json!({
                    "operation_id": id.0,
                    "kind": new.kind,
                    "state": state,
                    "require_approval": new.require_approval,
                    "steps": new.steps,
                    "plan": new.plan,
                }),
            )?;
            Ok(id)
        })
    }

    /// `PendingApproval` → `Approved`, recording who approved and when.
    pub fn approve(&self, id: OperationId, approver: &str) -> Result<()> {
        self.operation_event(id, OperationEvent::Approve, approver, None)
            .map(|_| ())
    }

    /// `Approved` → `Running`.
    pub fn start_operation(&self, id: OperationId, actor: &str) -> Result<()> {
        self.operation_event(id, OperationEvent::Start, actor, None)
            .map(|_| ())
    }

    /// Asks to cancel. Before it runs, the operation is cancelled at once (`Cancelled`);
    /// while it runs it becomes `Cancelling` and the executor stops at the next safe point.
    /// Returns the new state.
    pub fn request_cancel(&self, id: OperationId, actor: &str) -> Result<OperationState> {
        self.operation_event(id, OperationEvent::RequestCancel, actor, None)
    }

    /// `Cancelling` → `Running`: the executor found the cancel after the point of no return
    /// (the source has changed; the plan can only be finished). `reason` is audited.
    pub fn refuse_cancel(&self, id: OperationId, reason: &str, actor: &str) -> Result<()> {
        self.operation_event(id, OperationEvent::RefuseCancel, actor, Some(reason))
            .map(|_| ())
    }

    /// Ends an operation: every step must agree (see [`completion_check`]).
    pub fn finish_operation(
        &self,
        id: OperationId,
        outcome: OperationOutcome,
        actor: &str,
    ) -> Result<OperationState> {
        let (event, error) = match &outcome {
            OperationOutcome::Succeeded => (OperationEvent::Succeed, None),
            OperationOutcome::Failed(e) => (OperationEvent::Fail, Some(e.as_str())),
            OperationOutcome::Cancelled => (OperationEvent::ConfirmCancelled, None),
            OperationOutcome::Compensated => (OperationEvent::Compensated, None),
        };
        self.operation_event(id, event, actor, error)
    }

    fn operation_event(
        &self,
        id: OperationId,
        event: OperationEvent,
        actor: &str,
        error: Option<&str>,
    ) -> Result<OperationState> {
        self.write("changing an operation's state", |tx, now| {
            let head = load_operation_head(tx, id)?;
            let to = operation_transition(head.state, event)
                .map_err(|transition| StoreError::IllegalOperation {
                    operation: id,
                    transition,
                })?;
            let steps = load_step_rows(tx, id)?;
            let statuses: Vec<StepStatus> = steps.iter().map(|s| s.status).collect();
            completion_check(event, &statuses).map_err(|reason| StoreError::StepsUnfinished {
                operation: id,
                event,
                reason,
            })?;
            let error = error.map(|e| lockstep_connect::scrub_text(e).into_owned());
            let changed = tx
                .execute(
                    "UPDATE operations SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state = ?4",
                    params![to.as_str(), now.unix_millis(), id.0, head.state.as_str()],
                )
                .map_err(db("changing an operation's state"))?;
            if changed != 1 {
                return Err(StoreError::Corrupt {
                    what: format!("operation {id} changed inside a write transaction"),
                });
            }
            let t = now.unix_millis();
            let set = match event {
                OperationEvent::Approve => tx.execute(
                    "UPDATE operations SET approved_by = ?1, approved_at = ?2 WHERE id = ?3",
                    params![actor, t, id.0],
                ),
                OperationEvent::Start => tx.execute(
                    "UPDATE operations SET started_at = ?1 WHERE id = ?2",
                    params![t, id.0],
                ),
                OperationEvent::RequestCancel => tx.execute(
                    "UPDATE operations SET cancel_requested_by = ?1, cancel_requested_at = ?2
                     WHERE id = ?3",
                    params![actor, t, id.0],
                ),
                OperationEvent::Fail => tx.execute(
                    "UPDATE operations SET error = ?1 WHERE id = ?2",
                    params![error, id.0],
                ),
                _ => Ok(0),
            };
            set.map_err(db("changing an operation's state"))?;
            if to.is_final() {
                tx.execute(
                    "UPDATE operations SET finished_at = ?1 WHERE id = ?2",
                    params![now.unix_millis(), id.0],
                )
                .map_err(db("changing an operation's state"))?;
            }
            let mut details = json!({
                "operation_id": id.0,
                "from": head.state,
                "to": to,
            });
            if let Some(error) = &error {
                details["error"] = json!(error);
            }
            if let (true, Some(started)) = (to.is_final(), head.started_at) {
                details["duration_ms"] = json!(now.millis_since(started));
            }
            append_in(tx, now, actor, event.audit_action(), &head.subject, details)?;
            Ok(to)
        })
    }

    /// Persists that step `index` is about to run (call BEFORE running it): `Pending` →
    /// `Running`, attempt 1. Exactly one caller wins; the ticket finishes the step.
    pub fn begin_step(&self, id: OperationId, index: u32, actor: &str) -> Result<StepTicket> {
        self.step_event(id, index, StepEvent::Start, None, StepData::None, actor)
    }

    /// Runs a step again: one found `Running` after a restart (the crash case: it may or may
    /// not have taken effect, so only an idempotent step is retried this way), or a `Failed`
    /// one. `seen_attempt` is the attempt the caller read: if the step moved since (another
    /// executor took it), this is a [`StoreError::Conflict`].
    pub fn retry_step(
        &self,
        id: OperationId,
        index: u32,
        seen_attempt: u32,
        actor: &str,
    ) -> Result<StepTicket> {
        self.step_event(
            id,
            index,
            StepEvent::Retry,
            Some(seen_attempt),
            StepData::None,
            actor,
        )
    }

    /// Persists how a running step ended (call AFTER running it). The ticket's attempt must
    /// still be the step's: a stale ticket is a [`StoreError::Conflict`] and changes nothing.
    pub fn finish_step(
        &self,
        ticket: &StepTicket,
        outcome: StepOutcome,
        actor: &str,
    ) -> Result<()> {
        let (event, data) = match &outcome {
            StepOutcome::Succeeded(output) => (StepEvent::Succeed, StepData::Output(output)),
            StepOutcome::Failed(error) => (StepEvent::Fail, StepData::Error(error)),
        };
        self.step_event(
            ticket.operation,
            ticket.index,
            event,
            Some(ticket.attempt),
            data,
            actor,
        )
        .map(|_| ())
    }

    /// A pending step that will not run.
    pub fn skip_step(&self, id: OperationId, index: u32, reason: &str, actor: &str) -> Result<()> {
        self.step_event(
            id,
            index,
            StepEvent::Skip,
            None,
            StepData::Reason(reason),
            actor,
        )
        .map(|_| ())
    }

    /// Persists that the step's effect is being undone (before running the compensation).
    pub fn begin_compensation(&self, id: OperationId, index: u32, actor: &str) -> Result<()> {
        self.step_event(
            id,
            index,
            StepEvent::Compensate,
            None,
            StepData::None,
            actor,
        )
        .map(|_| ())
    }

    /// Persists how the compensation ended: `Compensated`, or `Failed` with the error.
    pub fn finish_compensation(
        &self,
        id: OperationId,
        index: u32,
        result: std::result::Result<(), String>,
        actor: &str,
    ) -> Result<()> {
        let (event, data) = match &result {
            Ok(()) => (StepEvent::CompensationSucceeded, StepData::None),
            Err(e) => (StepEvent::CompensationFailed, StepData::Error(e)),
        };
        self.step_event(id, index, event, None, data, actor)
            .map(|_| ())
    }

    fn step_event(
        &self,
        id: OperationId,
        index: u32,
        event: StepEvent,
        expected_attempt: Option<u32>,
        data: StepData<'_>,
        actor: &str,
    ) -> Result<StepTicket> {
        self.write("changing a step's state", |tx, now| {
            let head = load_operation_head(tx, id)?;
            let steps = load_step_rows(tx, id)?;
            let count = steps.len() as u32;
            let step = steps.get(index as usize).ok_or(StoreError::StepNotFound {
                operation: id,
                index,
                count,
            })?;
            if let Some(expected) = expected_attempt {
                if step.attempt != expected {
                    return Err(StoreError::Conflict {
                        operation: id,
                        index,
                        expected,
                        found: step.attempt,
                        status: step.status,
                    });
                }
            }
            let to = step_transition(step.status, event).map_err(|transition| {
                StoreError::IllegalStep {
                    operation: id,
                    index,
                    transition,
                }
            })?;
            if !step_event_allowed(head.state, event) {
                return Err(StoreError::StepNotAllowed {
                    operation: id,
                    index,
                    state: head.state,
                    event,
                });
            }
            if event == StepEvent::Start {
                let earlier: Vec<StepStatus> =
                    steps[..index as usize].iter().map(|s| s.status).collect();
                start_order_check(&earlier).map_err(|(blocking, status)| {
                    StoreError::StepOutOfOrder {
                        operation: id,
                        index,
                        blocking,
                        status,
                    }
                })?;
            }

            let mut new = step.clone();
            new.status = to;
            let mut details = json!({
                "operation_id": id.0,
                "step": index,
                "name": step.name,
            });
            match event {
                StepEvent::Start | StepEvent::Retry => {
                    new.attempt = step.attempt + 1;
                    new.started_at = Some(now.unix_millis());
                    new.finished_at = None;
                    new.output = None;
                    new.error = None;
                    if event == StepEvent::Retry {
                        details["previous"] = json!(step.status);
                    }
                }
                StepEvent::Succeed | StepEvent::Fail | StepEvent::Skip => {
                    new.finished_at = Some(now.unix_millis());
                    if let Some(started) = step.started_at.filter(|_| event != StepEvent::Skip) {
                        details["duration_ms"] =
                            json!(now.millis_since(Timestamp::from_unix_millis(started)));
                    }
                }
                StepEvent::Compensate
                | StepEvent::CompensationSucceeded
                | StepEvent::CompensationFailed => {}
            }
            match data {
                StepData::None => {}
                StepData::Output(output) => {
                    let output = audit::scrub_details(output.clone());
                    new.output = Some(audit::canonical_json(&output));
                    details["output"] = output;
                }
                StepData::Error(error) => {
                    let error = lockstep_connect::scrub_text(error).into_owned();
                    let error = if event == StepEvent::CompensationFailed {
                        format!("compensation failed: {error}")
                    } else {
                        error
                    };
                    details["error"] = json!(error);
                    new.error = Some(error);
                }
                StepData::Reason(reason) => {
                    details["reason"] = json!(lockstep_connect::scrub_text(reason));
                }
            }
            details["attempt"] = json!(new.attempt);
            let changed = tx
                .execute(
                    "UPDATE steps SET state = ?1, attempt = ?2, started_at = ?3, finished_at = ?4,
                         output = ?5, error = ?6, updated_at = ?7
                     WHERE operation_id = ?8 AND idx = ?9 AND state = ?10 AND attempt = ?11",
                    params![
                        new.status.as_str(),
                        new.attempt,
                        new.started_at,
                        new.finished_at,
                        new.output,
                        new.error,
                        now.unix_millis(),
                        id.0,
                        index,
                        step.status.as_str(),
                        step.attempt,
                    ],
                )
                .map_err(db("changing a step's state"))?;
            if changed != 1 {
                return Err(StoreError::Corrupt {
                    what: format!(
                        "operation {id}, step {index} changed inside a write transaction"
                    ),
                });
            }
            tx.execute(
                "UPDATE operations SET updated_at = ?1 WHERE id = ?2",
                params![now.unix_millis(), id.0],
            )
            .map_err(db("changing a step's state"))?;
            append_in(tx, now, actor, event.audit_action(), &head.subject, details)?;
            Ok(StepTicket {
                operation: id,
                index,
                attempt: new.attempt,
            })
        })
    }

    /// One operation with its steps.
    pub fn get(&self, id: OperationId) -> Result<Operation> {
        self.read("reading an operation", |tx| load_operation(tx, id))
    }

    /// Operations matching `filter`, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<OperationSummary>> {
        const WHAT: &str = "listing operations";
        self.read(WHAT, |tx| {
            let limit = if filter.limit == 0 { -1 } else { filter.limit as i64 };
            let mut stmt = tx
                .prepare(
                    "SELECT o.id, o.kind, o.subject, o.state, o.requested_by, o.requested_at,
                            o.updated_at,
                            (SELECT count(*) FROM steps s WHERE s.operation_id = o.id),
                            (SELECT count(*) FROM steps s WHERE s.operation_id = o.id
                                AND s.state IN ('succeeded', 'skipped'))
                     FROM operations o
                     WHERE (?1 IS NULL OR o.state = ?1)
                       AND (?2 IS NULL OR o.subject = ?2)
                       AND (?3 IS NULL OR o.kind = ?3)
                     ORDER BY o.id DESC
                     LIMIT ?4",
                )
                .map_err(db(WHAT))?;
            let rows = stmt
                .query_map(
                    params![
                        filter.state.map(OperationState::as_str),
                        filter.subject,
                        filter.kind,
                        limit
                    ],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, String>(3)?,
                            row.get::<_, String>(4)?,
                            row.get::<_, i64>(5)?,
                            row.get::<_, i64>(6)?,
                            row.get::<_, u32>(7)?,
                            row.get::<_, u32>(8)?,
                        ))
                    },
                )
                .map_err(db(WHAT))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, kind, subject, state, requested_by, requested_at, updated_at, steps, done) =
                    row.map_err(db(WHAT))?;
                out.push(OperationSummary {
                    id: OperationId(id),
                    kind,
                    subject,
                    state: parse_operation_state(&state)?,
                    requested_by,
                    requested_at: Timestamp::from_unix_millis(requested_at),
                    updated_at: Timestamp::from_unix_millis(updated_at),
                    steps,
                    steps_done: done,
                });
            }
            Ok(out)
        })
    }

    /// The operations an executor must pick up after a restart, oldest first: `Approved`
    /// (not started), `Running` (a step found `Running` is the crash case: resume it with
    /// [`Self::retry_step`] or compensate it) and `Cancelling`.
    pub fn unfinished_operations(&self) -> Result<Vec<Operation>> {
        const WHAT: &str = "finding unfinished operations";
        self.read(WHAT, |tx| {
            let ids: Vec<i64> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT id FROM operations
                         WHERE state IN ('approved', 'running', 'cancelling') ORDER BY id",
                    )
                    .map_err(db(WHAT))?;
                let ids = stmt
                    .query_map([], |row| row.get(0))
                    .map_err(db(WHAT))?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(db(WHAT))?;
                ids
            };
            ids.into_iter()
                .map(|id| load_operation(tx, OperationId(id)))
                .collect()
        })
    }

    /// Every audit record about one operation, in order: its plan, approval, each step's
    /// attempts with results and timing, and how it ended.
    pub fn history(&self, id: OperationId) -> Result<Vec<AuditRecord>> {
        const WHAT: &str = "reading an operation's history";
        self.read(WHAT, |tx| {
            load_operation_head(tx, id)?;
            let mut stmt = tx
                .prepare(
                    "SELECT seq, ts, actor, action, subject, details, prev_hash, hash
                     FROM audit_log WHERE json_extract(details, '$.operation_id') = ?1
                     ORDER BY seq",
                )
                .map_err(db(WHAT))?;
            let records = stmt
                .query_map([id.0], read_record)
                .map_err(db(WHAT))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(WHAT));
            records
        })
    }

    // ---- audit log ------------------------------------------------------------------------

    /// Appends one record (for events that are not a state change of this store: a
    /// watchdog restart, a tuning change, an alert). Secrets in `details` are scrubbed first.
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord> {
        self.write("appending to the audit log", |tx, now| {
            append_in(
                tx,
                now,
                &entry.actor,
                &entry.action,
                &entry.subject,
                entry.details.clone(),
            )
        })
    }

    /// Records with `seq > after` (all when `None`), oldest first, at most `limit` (0: all).
    pub fn audit_records(&self, after: Option<u64>, limit: usize) -> Result<Vec<AuditRecord>> {
        const WHAT: &str = "reading the audit log";
        self.read(WHAT, |tx| {
            let limit = if limit == 0 { -1 } else { limit as i64 };
            let after = after
                .map(|a| i64::try_from(a).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let mut stmt = tx
                .prepare(
                    "SELECT seq, ts, actor, action, subject, details, prev_hash, hash
                     FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(db(WHAT))?;
            let records = stmt
                .query_map(params![after, limit], read_record)
                .map_err(db(WHAT))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(WHAT));
            records
        })
    }

    /// The last `limit` records, oldest first.
    pub fn audit_tail(&self, limit: usize) -> Result<Vec<AuditRecord>> {
        const WHAT: &str = "reading the audit log";
        self.read(WHAT, |tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT * FROM (
                         SELECT seq, ts, actor, action, subject, details, prev_hash, hash
                         FROM audit_log ORDER BY seq DESC LIMIT ?1)
                     ORDER BY seq",
                )
                .map_err(db(WHAT))?;
            let records = stmt
                .query_map([limit as i64], read_record)
                .map_err(db(WHAT))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db(WHAT));
            records
        })
    }

    /// Walks the whole chain on one snapshot and reports the first break: an edited,
    /// deleted or reordered record, a rewritten link, a truncated or extended tail.
    pub fn verify_chain(&self) -> Result<ChainReport> {
        const WHAT: &str = "verifying the audit log";
        self.read(WHAT, |tx| {
            let mut verifier = ChainVerifier::new();
            {
                let mut stmt = tx
                    .prepare(
                        "SELECT seq, ts, actor, action, subject, details, prev_hash, hash
                         FROM audit_log ORDER BY seq",
                    )
                    .map_err(db(WHAT))?;
                let mut rows = stmt.query([]).map_err(db(WHAT))?;
                while let Some(row) = rows.next().map_err(db(WHAT))? {
                    let record = read_record_lenient(row);
                    if !verifier.push(&record) {
                        break;
                    }
                }
            }
            if verifier.edited_record().is_some() {
                let max_seq: Option<i64> = tx
                    .query_row("SELECT max(seq) FROM audit_log", [], |row| row.get(0))
                    .map_err(db(WHAT))?;
                verifier.classify_edit(max_seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0));
            }
            let head = read_head(tx)?;
            Ok(verifier.finish(head.as_ref()))
        })
    }

    /// The last seq the broker acknowledged for a mirror topic (0: none yet).
    pub fn mirror_cursor(&self, topic: &str) -> Result<u64> {
        const WHAT: &str = "reading the audit mirror cursor";
        self.read(WHAT, |tx| {
            let seq: Option<i64> = tx
                .query_row(
                    "SELECT acked_seq FROM audit_mirror_cursor WHERE topic = ?1",
                    [topic],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db(WHAT))?;
            Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
        })
    }

    /// Moves a mirror topic's cursor (forward as acknowledgements arrive; back to re-send).
    pub fn set_mirror_cursor(&self, topic: &str, acked_seq: u64) -> Result<()> {
        const WHAT: &str = "moving the audit mirror cursor";
        self.write(WHAT, |tx, now| {
            tx.execute(
                "INSERT INTO audit_mirror_cursor (topic, acked_seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic) DO UPDATE SET acked_seq = excluded.acked_seq,
                     updated_at = excluded.updated_at",
                params![
                    topic,
                    i64::try_from(acked_seq).unwrap_or(i64::MAX),
                    now.to_rfc3339()
                ],
            )
            .map_err(db(WHAT))?;
            Ok(())
        })
    }
}

/// Brings the file to [`SCHEMA_VERSION`], one transaction per migration; refuses a newer file.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let open_err = |cause| StoreError::Open {
        path: path.to_path_buf(),
        cause,
    };
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_err)?;
        // Read under the write lock: another process may have migrated meanwhile.
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(open_err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(());
        };
        tx.execute_batch(sql).map_err(open_err)?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(open_err)?;
        tx.commit().map_err(open_err)?;
        tracing::info!(path = %path.display(), version = version + 1, "store schema migrated");
    }
}

/// The audit append inside the caller's transaction: the record commits with the change it
/// records, or neither does.
fn append_in(
    tx: &Transaction<'_>,
    now: Timestamp,
    actor: &str,
    action: &str,
    subject: &str,
    details: Value,
) -> Result<AuditRecord> {
    const WHAT: &str = "appending to the audit log";
    let head = read_head(tx)?;
    if head.is_none() {
        let any: Option<i64> = tx
            .query_row("SELECT seq FROM audit_log LIMIT 1", [], |row| row.get(0))
            .optional()
            .map_err(db(WHAT))?;
        if any.is_some() {
            return Err(StoreError::Corrupt {
                what: "the audit log has records but its head (table audit_head) is gone".into(),
            });
        }
    }
    let record = audit::next_record(
        head.as_ref(),
        now.to_rfc3339(),
        actor,
        action,
        subject,
        details,
    );
    let seq = i64::try_from(record.seq).map_err(|_| StoreError::Corrupt {
        what: "the audit log's sequence is exhausted".into(),
    })?;
    tx.execute(
        "INSERT INTO audit_log (seq, ts, actor, action, subject, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            seq,
            record.ts,
            record.actor,
            record.action,
            record.subject,
            record.details,
            record.prev_hash,
            record.hash
        ],
    )
    .map_err(db(WHAT))?;
    tx.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        params![seq, record.hash],
    )
    .map_err(db(WHAT))?;
    Ok(record)
}

fn read_head(conn: &Connection) -> Result<Option<Head>> {
    conn.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |row| {
        Ok(Head {
            seq: seq_lenient(row, 0),
            hash: text_lenient(row, 1),
        })
    })
    .optional()
    .map_err(db("reading the audit log's head"))
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(read_record_lenient(row))
}

/// Reads a record whatever someone stored in its columns, so that verification reports a
/// tampered row instead of failing on it: text is taken as text, anything else is shown in
/// a form that cannot match the hash.
fn read_record_lenient(row: &Row<'_>) -> AuditRecord {
    AuditRecord {
        seq: seq_lenient(row, 0),
        ts: text_lenient(row, 1),
        actor: text_lenient(row, 2),
        action: text_lenient(row, 3),
        subject: text_lenient(row, 4),
        details: text_lenient(row, 5),
        prev_hash: text_lenient(row, 6),
        hash: text_lenient(row, 7),
    }
}

fn seq_lenient(row: &Row<'_>, column: usize) -> u64 {
    match row.get_ref(column) {
        Ok(ValueRef::Integer(n)) => u64::try_from(n).unwrap_or(0),
        _ => 0,
    }
}

fn text_lenient(row: &Row<'_>, column: usize) -> String {
    match row.get_ref(column) {
        Ok(ValueRef::Text(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Ok(ValueRef::Integer(n)) => format!("<integer {n}>"),
        Ok(ValueRef::Real(x)) => format!("<real {x}>"),
        Ok(ValueRef::Blob(bytes)) => format!("<blob {}>", hex::encode(bytes)),
        Ok(ValueRef::Null) => "<null>".to_string(),
        Err(_) => "<unreadable>".to_string(),
    }
}

enum StepData<'a> {
    None,
    Output(&'a Value),
    Error(&'a str),
    Reason(&'a str),
}

/// The columns of an operation that state changes need.
struct OperationHead {
    state: OperationState,
    subject: String,
    started_at: Option<Timestamp>,
}

fn load_operation_head(conn: &Connection, id: OperationId) -> Result<OperationHead> {
    const WHAT: &str = "reading an operation";
    let row: Option<(String, String, Option<i64>)> = conn
        .query_row(
            "SELECT state, subject, started_at FROM operations WHERE id = ?1",
            [id.0],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(db(WHAT))?;
    let (state, subject, started_at) = row.ok_or(StoreError::OperationNotFound(id))?;
    Ok(OperationHead {
        state: parse_operation_state(&state)?,
        subject,
        started_at: started_at.map(Timestamp::from_unix_millis),
    })
}

fn parse_operation_state(text: &str) -> Result<OperationState> {
    OperationState::parse(text).ok_or_else(|| StoreError::Corrupt {
        what: format!("unknown operation state '{text}'"),
    })
}

/// A step row as stored.
#[derive(Clone)]
struct StepRow {
    name: String,
    status: StepStatus,
    attempt: u32,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    output: Option<String>,
    error: Option<String>,
    updated_at: i64,
}

fn load_step_rows(conn: &Connection, id: OperationId) -> Result<Vec<StepRow>> {
    const WHAT: &str = "reading an operation's steps";
    let mut stmt = conn
        .prepare(
            "SELECT idx, name, state, attempt, started_at, finished_at, output, error, updated_at
             FROM steps WHERE operation_id = ?1 ORDER BY idx",
        )
        .map_err(db(WHAT))?;
    let rows = stmt
        .query_map([id.0], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, u32>(3)?,
                row.get::<_, Option<i64>>(4)?,
                row.get::<_, Option<i64>>(5)?,
                row.get::<_, Option<String>>(6)?,
                row.get::<_, Option<String>>(7)?,
                row.get::<_, i64>(8)?,
            ))
        })
        .map_err(db(WHAT))?;
    let mut steps = Vec::new();
    for row in rows {
        let (idx, name, state, attempt, started_at, finished_at, output, error, updated_at) =
            row.map_err(db(WHAT))?;
        if idx != steps.len() as i64 {
            return Err(StoreError::Corrupt {
                what: format!("operation {id} has no step {} (found {idx})", steps.len()),
            });
        }
        let status = StepStatus::parse(&state).ok_or_else(|| StoreError::Corrupt {
            what: format!("unknown step state '{state}'"),
        })?;
        steps.push(StepRow {
            name,
            status,
            attempt,
            started_at,
            finished_at,
            output,
            error,
            updated_at,
        });
    }
    Ok(steps)
}

fn load_operation(conn: &Connection, id: OperationId) -> Result<Operation> {
    const WHAT: &str = "reading an operation";
    type Row = (
        String,
        String,
        String,
        i64,
        String,
        String,
        bool,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        i64,
    );
    let row: Option<Row> = conn
        .query_row(
            "SELECT kind, subject, requested_by, requested_at, plan, state, require_approval,
                    approved_by, approved_at, cancel_requested_by, cancel_requested_at,
                    started_at, finished_at, error, updated_at
             FROM operations WHERE id = ?1",
            [id.0],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                ))
            },
        )
        .optional()
        .map_err(db(WHAT))?;
    let (
        kind,
        subject,
        requested_by,
        requested_at,
        plan,
        state,
        require_approval,
        approved_by,
        approved_at,
        cancel_by,
        cancel_at,
        started_at,
        finished_at,
        error,
        updated_at,
    ) = row.ok_or(StoreError::OperationNotFound(id))?;
    let plan: Value = serde_json::from_str(&plan).map_err(|e| StoreError::Corrupt {
        what: format!("operation {id}'s plan is not JSON: {e}"),
    })?;
    let stamp = |by: Option<String>, at: Option<i64>| match (by, at) {
        (Some(by), Some(at)) => Some(Stamp {
            by,
            at: Timestamp::from_unix_millis(at),
        }),
        _ => None,
    };
    let steps = load_step_rows(conn, id)?
        .into_iter()
        .enumerate()
        .map(|(index, row)| step_from_row(id, index as u32, row))
        .collect::<Result<Vec<_>>>()?;
    Ok(Operation {
        id,
        kind,
        subject,
        requested_by,
        requested_at: Timestamp::from_unix_millis(requested_at),
        state: parse_operation_state(&state)?,
        require_approval,
        approval: stamp(approved_by, approved_at),
        cancel_request: stamp(cancel_by, cancel_at),
        started_at: started_at.map(Timestamp::from_unix_millis),
        finished_at: finished_at.map(Timestamp::from_unix_millis),
        error,
        updated_at: Timestamp::from_unix_millis(updated_at),
        plan,
        steps,
    })
}

fn step_from_row(id: OperationId, index: u32, row: StepRow) -> Result<Step> {
    let updated_at = Timestamp::from_unix_millis(row.updated_at);
    let started_at = row.started_at.map(Timestamp::from_unix_millis);
    let finished_at = row.finished_at.map(Timestamp::from_unix_millis);
    let state = match row.status {
        StepStatus::Pending => StepState::Pending,
        StepStatus::Running => StepState::Running {
            started_at: started_at.unwrap_or(updated_at),
            attempt: row.attempt,
        },
        StepStatus::Succeeded => StepState::Succeeded {
            finished_at: finished_at.unwrap_or(updated_at),
            output: match &row.output {
                None => Value::Null,
                Some(text) => serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                    what: format!("operation {id}, step {index}: its output is not JSON: {e}"),
                })?,
            },
        },
        StepStatus::Failed => StepState::Failed {
            error: row.error.clone().unwrap_or_default(),
        },
        StepStatus::Compensating => StepState::Compensating,
        StepStatus::Compensated => StepState::Compensated,
        StepStatus::Skipped => StepState::Skipped,
    };
    Ok(Step {
        index,
        name: row.name,
        attempt: row.attempt,
        started_at,
        finished_at,
        updated_at,
        state,
    })
}
