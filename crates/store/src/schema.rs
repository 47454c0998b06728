//! The database schema and its migrations, versioned with `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`; each runs in its own
//! transaction with the version bump, so a crash leaves the file at one version or the next.
//! A file at a version above [`SCHEMA_VERSION`] was written by a newer lockstep and is refused.
//! Migrations are append-only: never edit one that has shipped, add the next.

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub const MIGRATIONS: &[&str] = &[
    // 1: operations, steps, the audit log and its head, the Kafka mirror's cursor.
    r#"
CREATE TABLE operations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                TEXT    NOT NULL,
    subject             TEXT    NOT NULL,
    requested_by        TEXT    NOT NULL,
    requested_at        INTEGER NOT NULL,
    plan                TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    require_approval    INTEGER NOT NULL,
    approved_by         TEXT,
    approved_at         INTEGER,
    cancel_requested_by TEXT,
    cancel_requested_at INTEGER,
    started_at          INTEGER,
    finished_at         INTEGER,
    error               TEXT,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX operations_state ON operations (state);
CREATE INDEX operations_subject ON operations (subject);

CREATE TABLE steps (
    operation_id INTEGER NOT NULL REFERENCES operations (id),
    idx          INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER,
    finished_at  INTEGER,
    output       TEXT,
    error        TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (operation_id, idx)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    ts        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_operation ON audit_log (json_extract(details, '$.operation_id'));

-- Append-only, as far as SQL goes: lockstep never updates or deletes a record. (Someone
-- with the file can drop these triggers; the hash chain is what shows that they did.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The last record appended, written in the same transaction: deleting records from the end
-- of the log shows as a mismatch with it.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);

-- Per mirror topic, the last seq the broker acknowledged: a restarted mirror re-sends after it.
CREATE TABLE audit_mirror_cursor (
    topic      TEXT PRIMARY KEY,
    acked_seq  INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
"#,
];
