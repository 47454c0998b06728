//! What a statement says, before it is checked against the catalog: the engine parsers
//! (`pg`, `mysql`) produce these, and `resolve` turns them into `Change`s. Keeping one
//! resolver for both engines keeps the rules (what must exist, what is refused) in one place.

use crate::model::{ConstraintDef, DefaultValue, IndexKey, ReplicaIdentity};
use crate::types::SqlType;

/// A relation name as written: the schema is `None` when unqualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjName {
    pub schema: Option<String>,
    pub name: String,
}

/// A column definition as written in CREATE TABLE / ADD COLUMN / MODIFY COLUMN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnDraft {
    pub name: String,
    pub data_type: SqlType,
    pub not_null: bool,
    pub default: Option<DefaultValue>,
    /// Declared `PRIMARY KEY` inline.
    pub primary_key: bool,
    /// Inline UNIQUE / CHECK / REFERENCES.
    pub constraints: Vec<ConstraintDef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedConstraint {
    pub name: Option<String>,
    pub def: ConstraintDef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    AddColumn(ColumnDraft),
    DropColumn(String),
    RenameColumn {
        old: String,
        new: String,
    },
    AlterType {
        column: String,
        new_type: SqlType,
        /// A USING expression that does more than cast the column.
        using: Option<String>,
    },
    SetNotNull(String),
    DropNotNull(String),
    SetDefault(String, DefaultValue),
    DropDefault(String),
    /// MySQL MODIFY / CHANGE COLUMN: the column's whole new definition.
    Redefine {
        column: String,
        new: ColumnDraft,
    },
    AddPrimaryKey {
        name: Option<String>,
        columns: Vec<String>,
        using_index: Option<String>,
    },
    /// MySQL `DROP PRIMARY KEY`.
    DropPrimaryKey,
    AddConstraint {
        constraint: NamedConstraint,
        not_valid: bool,
    },
    /// PostgreSQL `DROP CONSTRAINT name` (which may name the primary key).
    DropConstraint(String),
    ValidateConstraint(String),
    ReplicaIdentity(ReplicaIdentity),
    /// MySQL `ALTER TABLE t ADD [UNIQUE] INDEX`.
    AddIndex(IndexDraft),
    /// MySQL `ALTER TABLE t DROP INDEX`.
    DropIndex(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexDraft {
    pub name: Option<String>,
    pub keys: Vec<IndexKey>,
    pub unique: bool,
    pub concurrently: bool,
    pub method: String,
    pub include: Vec<String>,
    pub predicate: Option<String>,
    pub if_not_exists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommentDraft {
    Table(ObjName),
    Column(ObjName, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    CreateTable {
        name: ObjName,
        columns: Vec<ColumnDraft>,
        /// Table-level PRIMARY KEY (columns).
        primary_key: Option<Vec<String>>,
        constraints: Vec<NamedConstraint>,
    },
    DropTable(ObjName),
    RenameTable {
        name: ObjName,
        new_schema: Option<String>,
        new_name: String,
    },
    Truncate(Vec<ObjName>),
    AlterTable {
        name: ObjName,
        actions: Vec<Action>,
    },
    CreateIndex {
        table: ObjName,
        index: IndexDraft,
    },
    DropIndex {
        /// PostgreSQL: schema-qualified index name; MySQL: the index name.
        index: ObjName,
        /// MySQL names the table (`DROP INDEX i ON t`).
        table: Option<ObjName>,
        concurrently: bool,
    },
    CreateView {
        view: ObjName,
        or_replace: bool,
        columns: Vec<String>,
        query: String,
        references: Vec<ObjName>,
    },
    DropView(ObjName),
    Comment {
        on: CommentDraft,
        text: Option<String>,
    },
}
