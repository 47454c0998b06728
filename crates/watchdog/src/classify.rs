//! Classifies the Java trace of a FAILED connector or task (the `trace` field of Connect's
//! status) into a retriable or a permanent failure, with the cause and what to fix.
//!
//! Traces are wrapped several times (`ConnectException` → `DebeziumException` → the JDBC
//! driver's `PSQLException`), so the rules look for the root cause's own words anywhere in the
//! text. Permanent rules are checked first: a trace that says both "authentication failed"
//! and "Connection refused" (a retry loop's history) is an authentication problem, and
//! restarting it would only lock the account.

use serde::Serialize;

/// Whether restarting can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Transient: the database or network was away, a rebalance. Restart with backoff.
    Retriable,
    /// Needs an operator: restarting gives the same error. Alert, never restart in a loop.
    Permanent,
}

/// The classified root cause. `as_str` is the metric label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    ConnectionRefused,
    Timeout,
    DatabaseRestarting,
    ConnectionLost,
    Rebalance,
    RetriableException,
    Authentication,
    Configuration,
    MissingTable,
    SlotMissing,
    SlotInUse,
    SlotUnobtainable,
    PublicationMissing,
    Serialization,
    PositionLost,
    /// Nothing matched: treated as retriable, so the circuit breaker bounds the restarts.
    Unknown,
}

impl Cause {
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::ConnectionRefused => "connection_refused",
            Cause::Timeout => "timeout",
            Cause::DatabaseRestarting => "database_restarting",
            Cause::ConnectionLost => "connection_lost",
            Cause::Rebalance => "rebalance",
            Cause::RetriableException => "retriable_exception",
            Cause::Authentication => "authentication",
            Cause::Configuration => "configuration",
            Cause::MissingTable => "missing_table",
            Cause::SlotMissing => "slot_missing",
            Cause::SlotInUse => "slot_in_use",
            Cause::SlotUnobtainable => "slot_unobtainable",
            Cause::PublicationMissing => "publication_missing",
            Cause::Serialization => "serialization",
            Cause::PositionLost => "position_lost",
            Cause::Unknown => "unknown",
        }
    }
}

/// The verdict on one trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub kind: FailureKind,
    pub cause: Cause,
    /// What an operator should look at (empty for retriable causes).
    pub fix: &'static str,
}

struct Rule {
    /// Any of these (lower case) in the trace matches...
    any: &'static [&'static str],
    /// ...when all of these are in it too.
    all: &'static [&'static str],
    kind: FailureKind,
    cause: Cause,
    fix: &'static str,
}

use FailureKind::{Permanent, Retriable};

const RULES: &[Rule] = &[
    // ---- permanent: restarting gives the same error ----
    Rule {
        any: &[
            "password authentication failed",
            "authentication failed for user",
            "access denied for user",
            "no pg_hba.conf entry",
            "must be superuser or replication role",
            "is not permitted to log in",
            "permission denied for",
        ],
        all: &[],
        kind: Permanent,
        cause: Cause::Authentication,
        fix: "the database rejected the connector's credentials or privileges: check database.user / database.password (or the secret they reference), pg_hba.conf and the REPLICATION privilege, then restart the connector",
    },
    Rule {
        any: &["does not exist"],
        all: &["fatal: role \""],
        kind: Permanent,
        cause: Cause::Authentication,
        fix: "the database user the connector logs in as does not exist: check database.user (or create the role with LOGIN and REPLICATION), then restart the connector",
    },
    Rule {
        any: &["is active for pid"],
        all: &[],
        kind: Permanent,
        cause: Cause::SlotInUse,
        fix: SLOT_IN_USE_FIX,
    },
    Rule {
        any: &["already exists"],
        all: &["replication slot"],
        kind: Permanent,
        cause: Cause::SlotInUse,
        fix: SLOT_IN_USE_FIX,
    },
    Rule {
        any: &["does not exist"],
        all: &["replication slot"],
        kind: Permanent,
        cause: Cause::SlotMissing,
        fix: SLOT_MISSING_FIX,
    },
    Rule {
        any: &["unable to obtain valid replication slot"],
        all: &[],
        kind: Permanent,
        cause: Cause::SlotUnobtainable,
        fix: "Debezium could not get a usable replication slot: look for long-running transactions (pg_stat_activity) blocking slot creation and for a slot with wal_status 'lost' (max_slot_wal_keep_size exceeded; it must be dropped and the connector re-snapshotted)",
    },
    Rule {
        any: &["publication \"", "publication '"],
        all: &[],
        kind: Permanent,
        cause: Cause::PublicationMissing,
        fix: "the publication named by publication.name does not exist or lacks tables: create it (CREATE PUBLICATION ... FOR TABLE ...) or set publication.autocreate.mode, then restart",
    },
    Rule {
        any: &[
            "configexception",
            "connector configuration is invalid",
            "invalid value",
            "missing required configuration",
        ],
        all: &[],
        kind: Permanent,
        cause: Cause::Configuration,
        fix: "the connector configuration is invalid: run `lockstep lint` on its manifest or PUT /connector-plugins/<class>/config/validate, fix the key named in the trace and apply again",
    },
    Rule {
        any: &[
            "does not exist",
            "doesn't exist",
            "unknown table",
            "no such table",
        ],
        all: &[],
        kind: Permanent,
        cause: Cause::MissingTable,
        fix: "a table (or schema) the connector needs is missing: check table.include.list and the source schema; recreate the table or change the include list, then restart",
    },
    Rule {
        any: &[
            "serializationexception",
            "error serializing",
            "error deserializing",
            "dataexception",
            "converting byte[] to kafka connect data failed",
        ],
        all: &[],
        kind: Permanent,
        cause: Cause::Serialization,
        fix: "a record could not be (de)serialized: check key/value converters and the schema registry; for sinks route bad records with errors.tolerance=all and a dead-letter topic",
    },
    Rule {
        any: &[
            "no longer available on the server",
            "requested wal segment",
            "has already been removed",
            "offsetoutofrangeexception",
        ],
        all: &[],
        kind: Permanent,
        cause: Cause::PositionLost,
        fix: "the position the connector must resume from was removed on the source (WAL / binlog retention): a new snapshot is needed (snapshot.mode or a fresh connector); raise retention to prevent it",
    },
    // ---- retriable: the world was briefly away ----
    Rule {
        any: &[
            "the database system is starting up",
            "the database system is shutting down",
            "the database system is in recovery mode",
            "terminating connection due to administrator command",
            "57p01",
            "57p03",
            "server shutdown in progress",
        ],
        all: &[],
        kind: Retriable,
        cause: Cause::DatabaseRestarting,
        fix: "",
    },
    Rule {
        any: &[
            "connection refused",
            "refused. check that the hostname and port",
            "connectexception: connection refused",
            "could not create pg connection",
            "communications link failure",
            "unknownhostexception",
            "no route to host",
        ],
        all: &[],
        kind: Retriable,
        cause: Cause::ConnectionRefused,
        fix: "",
    },
    Rule {
        any: &[
            "timed out",
            "timeoutexception",
            "sockettimeoutexception",
            "read timeout",
        ],
        all: &[],
        kind: Retriable,
        cause: Cause::Timeout,
        fix: "",
    },
    Rule {
        any: &[
            "an i/o error occurred while sending to the backend",
            "this connection has been closed",
            "connection reset",
            "broken pipe",
            "eofexception",
        ],
        all: &[],
        kind: Retriable,
        cause: Cause::ConnectionLost,
        fix: "",
    },
    Rule {
        any: &[
            "rebalance",
            "rebalanceneededexception",
            "no known leader",
        ],
        all: &[],
        kind: Retriable,
        cause: Cause::Rebalance,
        fix: "",
    },
    Rule {
        any: &["retriableexception"],
        all: &[],
        kind: Retriable,
        cause: Cause::RetriableException,
        fix: "",
    },
];

const SLOT_IN_USE_FIX: &str = "another process holds the replication slot: find it with `SELECT slot_name, active_pid FROM pg_replication_slots`, stop the other consumer (a second connector with the same slot.name or a zombie task) or give each connector its own slot.name, then restart";

const SLOT_MISSING_FIX: &str = "the replication slot named by slot.name does not exist (dropped, or invalidated after max_slot_wal_keep_size): changes since the slot's position are lost to it; recreate the connector with a new snapshot, and add heartbeats so an idle slot does not fall behind";

/// Classifies a trace. An empty or unmatched trace is `Retriable` with [`Cause::Unknown`]: the
/// restart policy's circuit breaker bounds how often that is retried.
pub fn classify(trace: &str) -> Classification {
    let lower = trace.to_ascii_lowercase();
    for rule in RULES {
        if rule.any.iter().any(|needle| lower.contains(needle))
            && rule.all.iter().all(|needle| lower.contains(needle))
        {
            return Classification {
                kind: rule.kind,
                cause: rule.cause,
                fix: rule.fix,
            };
        }
    }
    Classification {
        kind: Retriable,
        cause: Cause::Unknown,
        fix: "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real trace fragments: PostgreSQL JDBC driver messages, Debezium and Kafka Connect
    /// exceptions as they appear in a task's `trace`.
    #[test]
    fn classifies_real_traces() {
        let cases: &[(&str, FailureKind, Cause)] = &[
            (
                "org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer. This connector will be stopped.\n\tat io.debezium.pipeline.ErrorHandler.setProducerThrowable(ErrorHandler.java:67)\nCaused by: org.postgresql.util.PSQLException: FATAL: terminating connection due to administrator command",
                Retriable,
                Cause::DatabaseRestarting,
            ),
            (
                "org.postgresql.util.PSQLException: FATAL: the database system is starting up\n\tat org.postgresql.core.v3.ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)",
                Retriable,
                Cause::DatabaseRestarting,
            ),
            (
                "org.postgresql.util.PSQLException: FATAL: the database system is shutting down",
                Retriable,
                Cause::DatabaseRestarting,
            ),
            (
                "io.debezium.DebeziumException: Could not execute heartbeat action (Error: 57P01)",
                Retriable,
                Cause::DatabaseRestarting,
            ),
            (
                "org.apache.kafka.connect.errors.ConnectException: org.postgresql.util.PSQLException: Connection to localhost:5432 refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.\nCaused by: java.net.ConnectException: Connection refused",
                Retriable,
                Cause::ConnectionRefused,
            ),
            (
                "org.apache.kafka.connect.errors.ConnectException: Could not create PG connection",
                Retriable,
                Cause::ConnectionRefused,
            ),
            (
                "com.mysql.cj.jdbc.exceptions.CommunicationsException: Communications link failure\n\nThe last packet sent successfully to the server was 0 milliseconds ago.",
                Retriable,
                Cause::ConnectionRefused,
            ),
            (
                "org.postgresql.util.PSQLException: An I/O error occurred while sending to the backend.\nCaused by: java.io.EOFException",
                Retriable,
                Cause::ConnectionLost,
            ),
            (
                "java.net.SocketTimeoutException: connect timed out",
                Retriable,
                Cause::Timeout,
            ),
            (
                "org.apache.kafka.common.errors.TimeoutException: Timeout expired after 60000milliseconds while awaiting InitProducerId",
                Retriable,
                Cause::Timeout,
            ),
            (
                "org.apache.kafka.connect.runtime.distributed.RebalanceNeededException: Request cannot be completed because a rebalance is expected",
                Retriable,
                Cause::Rebalance,
            ),
            (
                "org.apache.kafka.connect.errors.RetriableException: An exception occurred in the change event producer. This connector will be restarted.",
                Retriable,
                Cause::RetriableException,
            ),
            (
                "org.apache.kafka.connect.errors.ConnectException: Error while trying to connect\nCaused by: org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"postgres\"",
                Permanent,
                Cause::Authentication,
            ),
            (
                "org.postgresql.util.PSQLException: FATAL: role \"cdc_reader\" is not permitted to log in",
                Permanent,
                Cause::Authentication,
            ),
            (
                "org.postgresql.util.PSQLException: FATAL: role \"cdc_reader\" does not exist",
                Permanent,
                Cause::Authentication,
            ),
            (
                "java.sql.SQLException: Access denied for user 'debezium'@'172.18.0.5' (using password: YES)",
                Permanent,
                Cause::Authentication,
            ),
            (
                "org.postgresql.util.PSQLException: FATAL: no pg_hba.conf entry for replication connection from host \"10.0.0.7\", user \"cdc\", no encryption",
                Permanent,
                Cause::Authentication,
            ),
            (
                "org.apache.kafka.common.config.ConfigException: Invalid value wal for configuration plugin.name: Value must be one of decoderbufs, pgoutput",
                Permanent,
                Cause::Configuration,
            ),
            (
                "org.apache.kafka.connect.runtime.rest.errors.BadRequestException: Connector configuration is invalid and contains the following 1 error(s):\nThe 'topic.prefix' value is invalid: A value is required",
                Permanent,
                Cause::Configuration,
            ),
            (
                "org.postgresql.util.PSQLException: ERROR: replication slot \"debezium\" is active for PID 974",
                Permanent,
                Cause::SlotInUse,
            ),
            (
                "io.debezium.DebeziumException: Creation of replication slot failed; when setting up multiple connectors for the same database host, please make sure to use a distinct replication slot name for each\nCaused by: org.postgresql.util.PSQLException: ERROR: replication slot \"debezium\" already exists",
                Permanent,
                Cause::SlotInUse,
            ),
            (
                "org.postgresql.util.PSQLException: ERROR: replication slot \"orders_slot\" does not exist",
                Permanent,
                Cause::SlotMissing,
            ),
            (
                "org.apache.kafka.connect.errors.ConnectException: Unable to obtain valid replication slot. Make sure there are no long-running transactions running in parallel as they may hinder the allocation of the replication slot when starting this connector",
                Permanent,
                Cause::SlotUnobtainable,
            ),
            (
                "org.postgresql.util.PSQLException: ERROR: publication \"dbz_publication\" does not exist",
                Permanent,
                Cause::PublicationMissing,
            ),
            (
                "org.postgresql.util.PSQLException: ERROR: relation \"public.orders\" does not exist\n  Position: 15",
                Permanent,
                Cause::MissingTable,
            ),
            (
                "org.apache.kafka.common.errors.SerializationException: Error serializing Avro message",
                Permanent,
                Cause::Serialization,
            ),
            (
                "org.apache.kafka.connect.errors.DataException: Converting byte[] to Kafka Connect data failed due to serialization error",
                Permanent,
                Cause::Serialization,
            ),
            (
                "io.debezium.DebeziumException: The connector is trying to read binlog starting at ..., but this is no longer available on the server. Reconfigure the connector to use a snapshot when needed.",
                Permanent,
                Cause::PositionLost,
            ),
            (
                "org.postgresql.util.PSQLException: ERROR: requested WAL segment 000000010000000000000003 has already been removed",
                Permanent,
                Cause::PositionLost,
            ),
            // A retry loop's history: the permanent cause wins over the transient one.
            (
                "Caused by: java.net.ConnectException: Connection refused\n...\nCaused by: org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"cdc\"",
                Permanent,
                Cause::Authentication,
            ),
            ("", Retriable, Cause::Unknown),
            (
                "java.lang.NullPointerException\n\tat io.debezium.relational.TableSchemaBuilder.create",
                Retriable,
                Cause::Unknown,
            ),
        ];
        for (trace, kind, cause) in cases {
            let got = classify(trace);
            assert_eq!((got.kind, got.cause), (*kind, *cause), "trace: {trace}");
            if got.kind == Permanent {
                assert!(
                    !got.fix.is_empty(),
                    "a permanent cause names a fix: {trace}"
                );
            }
        }
    }

    #[test]
    fn cause_labels_are_unique_snake_case() {
        let all = [
            Cause::ConnectionRefused,
            Cause::Timeout,
            Cause::DatabaseRestarting,
            Cause::ConnectionLost,
            Cause::Rebalance,
            Cause::RetriableException,
            Cause::Authentication,
            Cause::Configuration,
            Cause::MissingTable,
            Cause::SlotMissing,
            Cause::SlotInUse,
            Cause::SlotUnobtainable,
            Cause::PublicationMissing,
            Cause::Serialization,
            Cause::PositionLost,
            Cause::Unknown,
        ];
        let labels: std::collections::BTreeSet<_> = all.iter().map(Cause::as_str).collect();
        assert_eq!(labels.len(), all.len());
        for cause in all {
            assert_eq!(
                serde_json::to_value(cause).unwrap(),
                serde_json::Value::String(cause.as_str().into())
            );
        }
    }
}
