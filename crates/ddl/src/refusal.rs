//! Why a script or a statement is refused. Fail closed: anything lockstep cannot classify
//! with certainty is refused with the reason and what to do instead.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The reason class of a refusal, for programs; `Refusal::message` is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// The script is larger than lockstep accepts.
    TooLarge,
    /// No statement in the script.
    Empty,
    /// The engine's parser rejected the text.
    Syntax,
    /// Not a schema change (SELECT, INSERT, UPDATE, DELETE, COPY...).
    NotDdl,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT...: lockstep runs each statement itself.
    TransactionControl,
    /// A statement or option lockstep does not plan.
    Unsupported,
    /// The table, column, index or constraint is not in the catalog.
    Unknown,
    /// The relation exists but is not replicated by the pipeline.
    OutsidePipeline,
    /// An unqualified name matches more than one schema of the search path.
    Ambiguous,
    /// The object to create already exists.
    AlreadyExists,
    /// Subcommands of one ALTER TABLE need different strategies.
    MixedStrategies,
    /// The statement would leave a pipeline table without a primary key.
    MissingPrimaryKey,
    /// The statement is valid but unsafe for the pipeline as written (CASCADE, dropping the
    /// replica identity's index, REPLICA IDENTITY NOTHING...).
    Unsafe,
    /// The type change involves a type lockstep does not model.
    UnknownType,
    /// The parser failed internally; reported rather than crashing.
    Internal,
}

/// One refusal: which statement (0-based, in script order), its text, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<usize>,
    /// The statement's text, shortened for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    pub kind: RefusalKind,
    pub message: String,
}

/// Longest statement excerpt a refusal carries.
const EXCERPT_CHARS: usize = 160;

impl Refusal {
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Self {
            statement: None,
            sql: None,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, statement: usize, sql: &str) -> Self {
        self.statement = Some(statement);
        self.sql = Some(excerpt(sql));
        self
    }
}

/// The first characters of a statement, whitespace collapsed, for messages.
pub fn excerpt(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= EXCERPT_CHARS {
        collapsed
    } else {
        let mut s: String = collapsed.chars().take(EXCERPT_CHARS).collect();
        s.push('…');
        s
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.statement {
            write!(f, "statement {}", n + 1)?;
            if let Some(sql) = &self.sql {
                write!(f, " ({sql})")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// The whole script is refused; nothing of it may be applied. Every refused statement is
/// listed, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct Refused {
    pub refusals: Vec<Refusal>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DDL refused, nothing applied ({} problem{}):",
            self.refusals.len(),
            if self.refusals.len() == 1 { "" } else { "s" }
        )?;
        for r in &self.refusals {
            write!(f, "\n  - {r}")?;
        }
        Ok(())
    }
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        Refused { refusals: vec![r] }
    }
}
