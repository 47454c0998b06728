//! Why a verification could not run to the end. Every message says what failed and what to do.

use std::fmt;

/// Which side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid verify options: {0}")]
    InvalidOptions(String),

    #[error(
        "cannot connect to the {side} database ({endpoint}) as user {user}: {source}; \
         check host, port, user, password and that the server accepts connections"
    )]
    Connect {
        side: Side,
        endpoint: String,
        user: String,
        #[source]
        source: BoxError,
    },

    #[error(
        "the {side} table {endpoint} does not exist or user {user} cannot see its columns; \
         check the schema and table name and the user's grants"
    )]
    TableNotFound {
        side: Side,
        endpoint: String,
        user: String,
    },

    #[error(
        "the {side} table {endpoint} has no primary key: verify pages and matches rows by \
         primary key and cannot compare this table; add a primary key to it first"
    )]
    NoPrimaryKey { side: Side, endpoint: String },

    #[error(
        "the primary keys differ: source ({source_key}) vs target ({target_key}); verify needs \
         the same key columns in the same order on both sides; fix the target's key first"
    )]
    KeyMismatch {
        source_key: String,
        target_key: String,
    },

    #[error(
        "the column sets differ ({differences}) and fail_on_schema_difference is set; align the \
         schemas, or run without it to compare the common columns"
    )]
    SchemaDiffers { differences: String },

    #[error("reading the {side} table {endpoint} failed while {action}: {source}")]
    Query {
        side: Side,
        endpoint: String,
        action: String,
        #[source]
        source: BoxError,
    },

    #[error(
        "the {side} table {endpoint} returned an unreadable row while {action}: {problem}; \
         this is a bug in lockstep verify or an unsupported column type, please report it"
    )]
    BadRow {
        side: Side,
        endpoint: String,
        action: String,
        problem: String,
    },
}
