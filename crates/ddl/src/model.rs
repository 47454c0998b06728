//! The data the classifier produces: typed changes, risk levels, strategy classes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{SqlType, TypeChange};

/// The engine a DDL script is written for (the source database's engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    /// MySQL and MariaDB (parsed with sqlparser's MySQL dialect).
    Mysql,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        })
    }
}

/// A schema-qualified relation name (`schema` is the database for MySQL), as the engine stores
/// it: identifiers are already case-folded the way the engine folds them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A literal value, kept as data so it can be written in another engine's syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Literal {
    Null,
    Bool(bool),
    /// A numeric literal, verbatim (digits, sign, point, exponent only).
    Number(String),
    String(String),
}

/// A column default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DefaultValue {
    /// The expression in the source engine's syntax.
    pub sql: String,
    /// `Some` when the default is a constant; `None` when it is computed (a function call,
    /// `CURRENT_TIMESTAMP`, a sequence, an expression): each row can get a different value,
    /// and rows that already exist get values computed on the source.
    pub constant: Option<Literal>,
    /// A sequence, identity or AUTO_INCREMENT: not an expression another table can copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity: bool,
}

impl DefaultValue {
    pub fn is_constant(&self) -> bool {
        self.constant.is_some()
    }
}

/// A column as the catalog knows it (or as a statement defines it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: SqlType,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultValue>,
}

/// PostgreSQL's REPLICA IDENTITY of a table: what the WAL keeps of the old row on update
/// and delete. MySQL tables are always `Default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind", content = "index")]
pub enum ReplicaIdentity {
    /// The primary key's columns.
    #[default]
    Default,
    /// Every column.
    Full,
    /// Nothing: UPDATE and DELETE fail on a table published for them.
    Nothing,
    /// The columns of this unique index.
    Index(String),
}

impl fmt::Display for ReplicaIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaIdentity::Default => f.write_str("DEFAULT"),
            ReplicaIdentity::Full => f.write_str("FULL"),
            ReplicaIdentity::Nothing => f.write_str("NOTHING"),
            ReplicaIdentity::Index(i) => write!(f, "USING INDEX {i}"),
        }
    }
}

/// One key of an index: a column or an expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum IndexKey {
    Column {
        name: String,
        descending: bool,
        /// PostgreSQL operator class (`text_pattern_ops`...), kept for a PostgreSQL target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        opclass: Option<String>,
    },
    /// An expression, in the source engine's syntax.
    Expression(String),
}

/// Kinds of table constraints other than the primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ConstraintDef {
    /// `expr` in the source engine's syntax.
    Check {
        expr: String,
    },
    Unique {
        columns: Vec<String>,
    },
    ForeignKey {
        columns: Vec<String>,
        references: QualifiedName,
        referenced_columns: Vec<String>,
    },
}

impl ConstraintDef {
    pub fn kind(&self) -> ConstraintKind {
        match self {
            ConstraintDef::Check { .. } => ConstraintKind::Check,
            ConstraintDef::Unique { .. } => ConstraintKind::Unique,
            ConstraintDef::ForeignKey { .. } => ConstraintKind::ForeignKey,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Check,
    Unique,
    ForeignKey,
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConstraintKind::Check => "CHECK",
            ConstraintKind::Unique => "UNIQUE",
            ConstraintKind::ForeignKey => "FOREIGN KEY",
        })
    }
}

/// What a COMMENT is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CommentTarget {
    Table {
        table: QualifiedName,
    },
    Column {
        table: QualifiedName,
        column: String,
    },
}

/// One classified schema change. Column changes carry the column as it was before the change
/// (from the catalog), so a target engine that restates whole column definitions (MariaDB's
/// `MODIFY COLUMN`) can be given one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "class")]
pub enum Change {
    CreateTable {
        table: QualifiedName,
        columns: Vec<Column>,
        primary_key: Vec<String>,
        /// Other constraints declared with the table (enforced on the source only).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        constraints: Vec<ConstraintDef>,
    },
    DropTable {
        table: QualifiedName,
    },
    RenameTable {
        table: QualifiedName,
        new_name: String,
    },
    Truncate {
        tables: Vec<QualifiedName>,
    },
    AddColumn {
        table: QualifiedName,
        column: Column,
    },
    DropColumn {
        table: QualifiedName,
        column: Column,
    },
    RenameColumn {
        table: QualifiedName,
        column: Column,
        new_name: String,
    },
    AlterColumnType {
        table: QualifiedName,
        column: Column,
        new_type: SqlType,
        /// A `USING` expression that does more than cast the column.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        using: Option<String>,
        direction: TypeChange,
    },
    SetNotNull {
        table: QualifiedName,
        column: Column,
    },
    DropNotNull {
        table: QualifiedName,
        column: Column,
    },
    SetDefault {
        table: QualifiedName,
        column: Column,
        default: DefaultValue,
    },
    DropDefault {
        table: QualifiedName,
        column: Column,
    },
    AddPrimaryKey {
        table: QualifiedName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        columns: Vec<String>,
    },
    DropPrimaryKey {
        table: QualifiedName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        columns: Vec<String>,
    },
    SetReplicaIdentity {
        table: QualifiedName,
        from: ReplicaIdentity,
        to: ReplicaIdentity,
    },
    CreateIndex {
        table: QualifiedName,
        name: String,
        keys: Vec<IndexKey>,
        unique: bool,
        concurrently: bool,
        /// Access method (`btree`, `gin`...); `btree` when none was written.
        method: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        include: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        predicate: Option<String>,
    },
    DropIndex {
        table: QualifiedName,
        name: String,
        concurrently: bool,
    },
    CreateView {
        view: QualifiedName,
        or_replace: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        columns: Vec<String>,
        /// The view's query in the source engine's syntax.
        query: String,
        /// The pipeline tables and views the query reads.
        references: Vec<QualifiedName>,
    },
    DropView {
        view: QualifiedName,
    },
    AddConstraint {
        table: QualifiedName,
        name: String,
        constraint: ConstraintDef,
        /// Added `NOT VALID`: existing rows are not checked.
        not_valid: bool,
    },
    ValidateConstraint {
        table: QualifiedName,
        name: String,
        kind: ConstraintKind,
    },
    DropConstraint {
        table: QualifiedName,
        name: String,
        kind: ConstraintKind,
    },
    Comment {
        on: CommentTarget,
        /// `None` removes the comment.
        text: Option<String>,
    },
}

impl Change {
    /// The pipeline tables this change touches (views are not tables: none for a view).
    pub fn tables(&self) -> Vec<QualifiedName> {
        match self {
            Change::Truncate { tables } => tables.clone(),
            Change::CreateView { .. } | Change::DropView { .. } => Vec::new(),
            Change::Comment { on, .. } => match on {
                CommentTarget::Table { table } | CommentTarget::Column { table, .. } => {
                    vec![table.clone()]
                }
            },
            Change::CreateTable { table, .. }
            | Change::DropTable { table }
            | Change::RenameTable { table, .. }
            | Change::AddColumn { table, .. }
            | Change::DropColumn { table, .. }
            | Change::RenameColumn { table, .. }
            | Change::AlterColumnType { table, .. }
            | Change::SetNotNull { table, .. }
            | Change::DropNotNull { table, .. }
            | Change::SetDefault { table, .. }
            | Change::DropDefault { table, .. }
            | Change::AddPrimaryKey { table, .. }
            | Change::DropPrimaryKey { table, .. }
            | Change::SetReplicaIdentity { table, .. }
            | Change::CreateIndex { table, .. }
            | Change::DropIndex { table, .. }
            | Change::AddConstraint { table, .. }
            | Change::ValidateConstraint { table, .. }
            | Change::DropConstraint { table, .. } => vec![table.clone()],
        }
    }

    /// A short name of the change's class, as used in plans and messages.
    pub fn class_name(&self) -> &'static str {
        match self {
            Change::CreateTable { .. } => "CREATE TABLE",
            Change::DropTable { .. } => "DROP TABLE",
            Change::RenameTable { .. } => "RENAME TABLE",
            Change::Truncate { .. } => "TRUNCATE",
            Change::AddColumn { .. } => "ADD COLUMN",
            Change::DropColumn { .. } => "DROP COLUMN",
            Change::RenameColumn { .. } => "RENAME COLUMN",
            Change::AlterColumnType { .. } => "ALTER COLUMN TYPE",
            Change::SetNotNull { .. } => "SET NOT NULL",
            Change::DropNotNull { .. } => "DROP NOT NULL",
            Change::SetDefault { .. } => "SET DEFAULT",
            Change::DropDefault { .. } => "DROP DEFAULT",
            Change::AddPrimaryKey { .. } => "ADD PRIMARY KEY",
            Change::DropPrimaryKey { .. } => "DROP PRIMARY KEY",
            Change::SetReplicaIdentity { .. } => "REPLICA IDENTITY",
            Change::CreateIndex { .. } => "CREATE INDEX",
            Change::DropIndex { .. } => "DROP INDEX",
            Change::CreateView { .. } => "CREATE VIEW",
            Change::DropView { .. } => "DROP VIEW",
            Change::AddConstraint { .. } => "ADD CONSTRAINT",
            Change::ValidateConstraint { .. } => "VALIDATE CONSTRAINT",
            Change::DropConstraint { .. } => "DROP CONSTRAINT",
            Change::Comment { .. } => "COMMENT",
        }
    }
}

/// How much a change hurts the pipeline when it is run on the source alone, without
/// lockstep, with a sink that applies events to an existing target schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RiskLevel {
    /// Safe: change events and the target's ability to apply them are unaffected.
    L0,
    /// Drift: replication goes on, but the target's schema or rows silently diverge.
    L1,
    /// Breaks the sink: events no longer fit the target (the sink holds or stops).
    L2,
    /// Breaks the source or the keys: capture loses changes, or message keys change.
    L3,
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    pub level: RiskLevel,
    pub reason: String,
}

/// The family of plan a change needs. Changes in one statement must share one strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Change the target first, then the source; nothing to wait for (additive, widening).
    TargetFirst,
    /// Prepare the target, change the source, wait until the sink has applied everything up
    /// to the change, then finish the target (DROP COLUMN, narrowing, SET NOT NULL...).
    ExpandContract,
    /// The target must change exactly where the source did: pause the connector, change the
    /// source and mark the position in the same transaction, hold the sink's table there,
    /// resume, wait, change the target, release (RENAME COLUMN, type conversions).
    Boundary,
    /// The message key changes: quiesce the table, drain, stop the connector, change both,
    /// restart, re-snapshot (primary key changes).
    KeyChange,
    CreateTable,
    DropTable,
    RenameTable,
    Truncate,
    /// Nothing to mirror on the target (constraints the target does not enforce...).
    SourceOnly,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::TargetFirst => "target-first",
            Strategy::ExpandContract => "expand-contract",
            Strategy::Boundary => "boundary",
            Strategy::KeyChange => "key-change",
            Strategy::CreateTable => "create-table",
            Strategy::DropTable => "drop-table",
            Strategy::RenameTable => "rename-table",
            Strategy::Truncate => "truncate",
            Strategy::SourceOnly => "source-only",
        })
    }
}

/// Whether plans may run concurrently: structural changes are serial per table;
/// non-structural ones (indexes, views, comments) run in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    Structural,
    NonStructural,
}

/// A change with its assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifiedChange {
    pub change: Change,
    pub risk: Risk,
    pub strategy: Strategy,
    pub concurrency: Concurrency,
}
