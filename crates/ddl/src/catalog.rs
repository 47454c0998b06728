//! The source schema the classifier reasons over: the pipeline's tables with their columns,
//! keys, indexes and constraints, plus the names of relations outside the pipeline (so a
//! statement on them is refused by name, and unqualified names can be checked for ambiguity).
//!
//! Pure data. An adapter fills it from the source's catalog (`pg_catalog`,
//! `information_schema`); tests build it by hand.

use serde::{Deserialize, Serialize};

use crate::model::{
    Change, Column, ConstraintKind, Engine, IndexKey, QualifiedName, ReplicaIdentity,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintInfo {
    pub name: String,
    pub kind: ConstraintKind,
}

/// One table of the pipeline as it is on the source now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub name: QualifiedName,
    pub columns: Vec<Column>,
    /// Primary key columns in key order; empty when the table has none.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The primary key constraint's name (PostgreSQL's `<table>_pkey` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_name: Option<String>,
    #[serde(default)]
    pub replica_identity: ReplicaIdentity,
    /// Indexes other than the primary key's.
    #[serde(default)]
    pub indexes: Vec<IndexInfo>,
    /// CHECK, UNIQUE and FOREIGN KEY constraints.
    #[serde(default)]
    pub constraints: Vec<ConstraintInfo>,
    /// Row count estimate; `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

impl TableSchema {
    pub fn new(name: QualifiedName, columns: Vec<Column>, primary_key: &[&str]) -> Self {
        Self {
            name,
            columns,
            primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
            primary_key_name: None,
            replica_identity: ReplicaIdentity::Default,
            indexes: Vec::new(),
            constraints: Vec::new(),
            rows: None,
        }
    }

    pub fn column(&self, engine: Engine, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| ident_eq(engine, &c.name, name))
    }

    fn column_mut(&mut self, engine: Engine, name: &str) -> Option<&mut Column> {
        self.columns
            .iter_mut()
            .find(|c| ident_eq(engine, &c.name, name))
    }

    pub fn index(&self, engine: Engine, name: &str) -> Option<&IndexInfo> {
        self.indexes
            .iter()
            .find(|i| ident_eq(engine, &i.name, name))
    }

    pub fn constraint(&self, engine: Engine, name: &str) -> Option<&ConstraintInfo> {
        self.constraints
            .iter()
            .find(|c| ident_eq(engine, &c.name, name))
    }

    /// Whether `name` is the primary key constraint's name.
    pub fn is_primary_key_name(&self, engine: Engine, name: &str) -> bool {
        !self.primary_key.is_empty()
            && self
                .primary_key_name
                .as_deref()
                .is_some_and(|pk| ident_eq(engine, pk, name))
    }

    /// The index the replica identity uses, if it is `USING INDEX`.
    pub fn replica_identity_index(&self) -> Option<&str> {
        match &self.replica_identity {
            ReplicaIdentity::Index(i) => Some(i),
            _ => None,
        }
    }
}

/// The source schema as far as a pipeline is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub engine: Engine,
    /// Schemas searched for unqualified names, in order (PostgreSQL `search_path`; for MySQL
    /// the current database). lockstep runs the statements with this search path.
    pub search_path: Vec<String>,
    /// The pipeline's tables.
    pub tables: Vec<TableSchema>,
    /// Schemas where `CREATE TABLE` adds a table to the pipeline, besides those already
    /// holding one of its tables.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Views on the source that lockstep may replace or drop.
    #[serde(default)]
    pub views: Vec<QualifiedName>,
    /// Tables and views that exist on the source but are not replicated by the pipeline.
    #[serde(default)]
    pub outside: Vec<QualifiedName>,
}

/// How a name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Table(QualifiedName),
    View(QualifiedName),
    Outside(QualifiedName),
    /// Nothing of that name; for a qualified name, the name as written.
    Missing(QualifiedName),
    /// An unqualified name found in more than one schema of the search path.
    Ambiguous(Vec<QualifiedName>),
}

/// Identifier equality the way the engine compares names: PostgreSQL names arrive
/// case-folded from its parser and compare exactly; MySQL compares case-insensitively
/// (column names always, table names on the common `lower_case_table_names` settings).
pub fn ident_eq(engine: Engine, a: &str, b: &str) -> bool {
    match engine {
        Engine::Postgres => a == b,
        Engine::Mysql => a.eq_ignore_ascii_case(b),
    }
}

impl Catalog {
    pub fn new(engine: Engine, search_path: &[&str]) -> Self {
        Self {
            engine,
            search_path: search_path.iter().map(|s| s.to_string()).collect(),
            tables: Vec::new(),
            schemas: Vec::new(),
            views: Vec::new(),
            outside: Vec::new(),
        }
    }

    pub fn with_table(mut self, table: TableSchema) -> Self {
        self.tables.push(table);
        self
    }

    fn name_eq(&self, a: &QualifiedName, b: &QualifiedName) -> bool {
        ident_eq(self.engine, &a.schema, &b.schema) && ident_eq(self.engine, &a.name, &b.name)
    }

    pub fn table(&self, name: &QualifiedName) -> Option<&TableSchema> {
        self.tables.iter().find(|t| self.name_eq(&t.name, name))
    }

    fn table_mut(&mut self, name: &QualifiedName) -> Option<&mut TableSchema> {
        let engine = self.engine;
        self.tables.iter_mut().find(|t| {
            ident_eq(engine, &t.name.schema, &name.schema)
                && ident_eq(engine, &t.name.name, &name.name)
        })
    }

    /// Schemas in which a new table joins the pipeline.
    pub fn pipeline_schemas(&self) -> Vec<String> {
        let mut out: Vec<String> = self.schemas.clone();
        for t in &self.tables {
            if !out.iter().any(|s| ident_eq(self.engine, s, &t.name.schema)) {
                out.push(t.name.schema.clone());
            }
        }
        out
    }

    /// What exists under exactly this qualified name.
    fn lookup(&self, name: &QualifiedName) -> Option<Resolved> {
        if let Some(t) = self.table(name) {
            return Some(Resolved::Table(t.name.clone()));
        }
        if let Some(v) = self.views.iter().find(|v| self.name_eq(v, name)) {
            return Some(Resolved::View(v.clone()));
        }
        if let Some(o) = self.outside.iter().find(|o| self.name_eq(o, name)) {
            return Some(Resolved::Outside(o.clone()));
        }
        None
    }

    /// Resolve a possibly unqualified relation name. An unqualified name must exist in
    /// exactly one schema of the search path: more than one is ambiguous even though the
    /// engine would pick the first, because the author may have meant another.
    pub fn resolve(&self, schema: Option<&str>, name: &str) -> Resolved {
        if let Some(schema) = schema {
            let q = QualifiedName::new(schema, name);
            return self.lookup(&q).unwrap_or(Resolved::Missing(q));
        }
        let found: Vec<Resolved> = self
            .search_path
            .iter()
            .filter_map(|s| self.lookup(&QualifiedName::new(s.clone(), name)))
            .collect();
        match found.len() {
            0 => Resolved::Missing(QualifiedName::new(
                self.search_path.first().cloned().unwrap_or_default(),
                name,
            )),
            1 => found
                .into_iter()
                .next()
                .unwrap_or(Resolved::Ambiguous(Vec::new())),
            _ => Resolved::Ambiguous(
                found
                    .into_iter()
                    .map(|r| match r {
                        Resolved::Table(q)
                        | Resolved::View(q)
                        | Resolved::Outside(q)
                        | Resolved::Missing(q) => q,
                        Resolved::Ambiguous(mut v) => {
                            v.pop().unwrap_or_else(|| QualifiedName::new("", ""))
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// Find the pipeline table holding an index or constraint of this name.
    pub fn table_of_index(&self, schema: Option<&str>, index: &str) -> Vec<&TableSchema> {
        self.tables
            .iter()
            .filter(|t| match schema {
                Some(s) => ident_eq(self.engine, &t.name.schema, s),
                None => self
                    .search_path
                    .iter()
                    .any(|p| ident_eq(self.engine, p, &t.name.schema)),
            })
            .filter(|t| {
                t.index(self.engine, index).is_some() || (t.is_primary_key_name(self.engine, index))
            })
            .collect()
    }

    fn update_column(&mut self, table: &QualifiedName, column: &str, f: impl FnOnce(&mut Column)) {
        let engine = self.engine;
        if let Some(c) = self
            .table_mut(table)
            .and_then(|t| t.column_mut(engine, column))
        {
            f(c);
        }
    }

    /// Apply a classified change, so the next statement of a script is classified against
    /// the schema as it will be. Changes were validated against this catalog, so missing
    /// objects are simply ignored here.
    pub fn apply(&mut self, change: &Change) {
        let engine = self.engine;
        match change {
            Change::CreateTable {
                table,
                columns,
                primary_key,
                constraints,
            } => {
                // Constraints declared inline are unnamed here: a later statement that names
                // one is refused as unknown until the catalog is read again.
                let _ = constraints;
                let mut t = TableSchema::new(table.clone(), columns.clone(), &[]);
                t.primary_key = primary_key.clone();
                t.rows = Some(0);
                self.tables.push(t);
            }
            Change::DropTable { table } => {
                let q = table.clone();
                self.tables.retain(|t| {
                    !(ident_eq(engine, &t.name.schema, &q.schema)
                        && ident_eq(engine, &t.name.name, &q.name))
                });
            }
            Change::RenameTable { table, new_name } => {
                if let Some(t) = self.table_mut(table) {
                    t.name.name = new_name.clone();
                }
            }
            Change::Truncate { tables } => {
                for q in tables {
                    if let Some(t) = self.table_mut(q) {
                        t.rows = Some(0);
                    }
                }
            }
            Change::AddColumn { table, column } => {
                if let Some(t) = self.table_mut(table) {
                    t.columns.push(column.clone());
                }
            }
            Change::DropColumn { table, column } => {
                if let Some(t) = self.table_mut(table) {
                    t.columns
                        .retain(|c| !ident_eq(engine, &c.name, &column.name));
                    t.indexes
                        .retain(|i| !i.columns.iter().any(|c| ident_eq(engine, c, &column.name)));
                }
            }
            Change::RenameColumn {
                table,
                column,
                new_name,
            } => {
                if let Some(t) = self.table_mut(table) {
                    if let Some(c) = t.column_mut(engine, &column.name) {
                        c.name = new_name.clone();
                    }
                    for k in t.primary_key.iter_mut() {
                        if ident_eq(engine, k, &column.name) {
                            *k = new_name.clone();
                        }
                    }
                    for i in t.indexes.iter_mut() {
                        for k in i.columns.iter_mut() {
                            if ident_eq(engine, k, &column.name) {
                                *k = new_name.clone();
                            }
                        }
                    }
                }
            }
            Change::AlterColumnType {
                table,
                column,
                new_type,
                ..
            } => self.update_column(table, &column.name, |c| c.data_type = new_type.clone()),
            Change::SetNotNull { table, column } => {
                self.update_column(table, &column.name, |c| c.nullable = false)
            }
            Change::DropNotNull { table, column } => {
                self.update_column(table, &column.name, |c| c.nullable = true)
            }
            Change::SetDefault {
                table,
                column,
                default,
            } => self.update_column(table, &column.name, |c| c.default = Some(default.clone())),
            Change::DropDefault { table, column } => {
                self.update_column(table, &column.name, |c| c.default = None)
            }
            Change::AddPrimaryKey {
                table,
                name,
                columns,
            } => {
                if let Some(t) = self.table_mut(table) {
                    t.primary_key = columns.clone();
                    t.primary_key_name = name.clone().or_else(|| match engine {
                        Engine::Postgres => Some(format!("{}_pkey", t.name.name)),
                        Engine::Mysql => Some("PRIMARY".into()),
                    });
                    for c in t.columns.iter_mut() {
                        if columns.iter().any(|k| ident_eq(engine, k, &c.name)) {
                            c.nullable = false;
                        }
                    }
                }
            }
            Change::DropPrimaryKey { table, .. } => {
                if let Some(t) = self.table_mut(table) {
                    t.primary_key.clear();
                    t.primary_key_name = None;
                }
            }
            Change::SetReplicaIdentity { table, to, .. } => {
                if let Some(t) = self.table_mut(table) {
                    t.replica_identity = to.clone();
                }
            }
            Change::CreateIndex {
                table,
                name,
                keys,
                unique,
                ..
            } => {
                if let Some(t) = self.table_mut(table) {
                    t.indexes.push(IndexInfo {
                        name: name.clone(),
                        columns: keys
                            .iter()
                            .filter_map(|k| match k {
                                IndexKey::Column { name, .. } => Some(name.clone()),
                                IndexKey::Expression(_) => None,
                            })
                            .collect(),
                        unique: *unique,
                    });
                }
            }
            Change::DropIndex { table, name, .. } => {
                if let Some(t) = self.table_mut(table) {
                    t.indexes.retain(|i| !ident_eq(engine, &i.name, name));
                }
            }
            Change::CreateView { view, .. } => {
                if !self.views.iter().any(|v| self.name_eq(v, view)) {
                    self.views.push(view.clone());
                }
            }
            Change::DropView { view } => {
                let v = view.clone();
                self.views.retain(|x| {
                    !(ident_eq(engine, &x.schema, &v.schema) && ident_eq(engine, &x.name, &v.name))
                });
            }
            Change::AddConstraint {
                table,
                name,
                constraint,
                ..
            } => {
                if let Some(t) = self.table_mut(table) {
                    t.constraints.push(ConstraintInfo {
                        name: name.clone(),
                        kind: constraint.kind(),
                    });
                }
            }
            Change::DropConstraint { table, name, .. } => {
                if let Some(t) = self.table_mut(table) {
                    t.constraints.retain(|c| !ident_eq(engine, &c.name, name));
                }
            }
            Change::ValidateConstraint { .. } | Change::Comment { .. } => {}
        }
    }
}
