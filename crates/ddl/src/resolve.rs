//! Drafts checked against the catalog become `Change`s, or are refused. Every name must
//! resolve to exactly one pipeline object; every column, index and constraint a statement
//! refers to must be in the catalog.

use crate::catalog::{ident_eq, Catalog, Resolved, TableSchema};
use crate::draft::{Action, ColumnDraft, CommentDraft, IndexDraft, NamedConstraint, ObjName, Op};
use crate::model::{
    Change, Column, CommentTarget, ConstraintDef, ConstraintKind, Engine, IndexKey, Literal,
    QualifiedName, ReplicaIdentity,
};
use crate::refusal::{Refusal, RefusalKind};
use crate::types::TypeChange;

fn refuse(kind: RefusalKind, message: impl Into<String>) -> Refusal {
    Refusal::new(kind, message)
}

fn written(n: &ObjName) -> String {
    match &n.schema {
        Some(s) => format!("{s}.{}", n.name),
        None => n.name.clone(),
    }
}

fn list(names: &[QualifiedName]) -> String {
    names
        .iter()
        .map(|q| q.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pipeline table a name refers to.
fn pipeline_table<'a>(cat: &'a Catalog, n: &ObjName) -> Result<&'a TableSchema, Refusal> {
    match cat.resolve(n.schema.as_deref(), &n.name) {
        Resolved::Table(q) => cat.table(&q).ok_or_else(|| {
            refuse(RefusalKind::Internal, format!("table {q} vanished from the catalog"))
        }),
        Resolved::View(q) => Err(refuse(
            RefusalKind::Unsupported,
            format!("{q} is a view, not a table"),
        )),
        Resolved::Outside(q) => Err(refuse(
            RefusalKind::OutsidePipeline,
            format!(
                "table {q} is not replicated by this pipeline: lockstep applies DDL only to the \
                 pipeline's tables; run it on the source directly, or add the table to the pipeline first"
            ),
        )),
        Resolved::Missing(_) => Err(refuse(
            RefusalKind::Unknown,
            format!(
                "table {} is not in the catalog (search path: {}); check the name, or refresh \
                 the catalog if the table is new",
                written(n),
                cat.search_path.join(", ")
            ),
        )),
        Resolved::Ambiguous(found) => Err(ambiguous(n, &found)),
    }
}

fn ambiguous(n: &ObjName, found: &[QualifiedName]) -> Refusal {
    refuse(
        RefusalKind::Ambiguous,
        format!(
            "the unqualified name {} matches {} in the search path; qualify it with its schema",
            n.name,
            list(found)
        ),
    )
}

/// Where a new relation of this name would go: it must not exist yet.
fn new_relation(cat: &Catalog, n: &ObjName, what: &str) -> Result<QualifiedName, Refusal> {
    match cat.resolve(n.schema.as_deref(), &n.name) {
        Resolved::Missing(q) => Ok(q),
        Resolved::Ambiguous(found) => Err(ambiguous(n, &found)),
        Resolved::Table(q) | Resolved::View(q) | Resolved::Outside(q) => Err(refuse(
            RefusalKind::AlreadyExists,
            format!("cannot create {what} {q}: a relation of that name already exists"),
        )),
    }
}

fn column<'a>(cat: &Catalog, t: &'a TableSchema, name: &str) -> Result<&'a Column, Refusal> {
    t.column(cat.engine, name).ok_or_else(|| {
        refuse(
            RefusalKind::Unknown,
            format!(
                "column {name} is not in table {} (columns: {})",
                t.name,
                t.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

fn in_list(engine: Engine, list: &[String], name: &str) -> bool {
    list.iter().any(|c| ident_eq(engine, c, name))
}

/// Resolve the table a foreign key references (any table the source has: the key is enforced
/// on the source only). An empty schema means "unqualified".
fn reference(
    cat: &Catalog,
    from: &QualifiedName,
    r: &QualifiedName,
) -> Result<QualifiedName, Refusal> {
    let n = ObjName {
        schema: (!r.schema.is_empty()).then(|| r.schema.clone()),
        name: r.name.clone(),
    };
    match cat.resolve(n.schema.as_deref(), &n.name) {
        Resolved::Table(q) | Resolved::Outside(q) => Ok(q),
        Resolved::Missing(q)
            if ident_eq(cat.engine, &q.name, &from.name)
                && ident_eq(cat.engine, &q.schema, &from.schema) =>
        {
            Ok(q)
        }
        Resolved::Ambiguous(found) => Err(ambiguous(&n, &found)),
        Resolved::View(q) => Err(refuse(
            RefusalKind::Unsupported,
            format!("a foreign key cannot reference view {q}"),
        )),
        Resolved::Missing(_) => Err(refuse(
            RefusalKind::Unknown,
            format!(
                "{from} references {}, which is not in the catalog",
                written(&n)
            ),
        )),
    }
}

/// Resolve one statement's draft into its changes.
pub(crate) fn resolve(op: Op, cat: &Catalog) -> Result<Vec<Change>, Refusal> {
    match op {
        Op::CreateTable {
            name,
            columns,
            primary_key,
            constraints,
        } => create_table(cat, &name, columns, primary_key, constraints).map(|c| vec![c]),
        Op::DropTable(name) => {
            let t = pipeline_table(cat, &name)?;
            Ok(vec![Change::DropTable {
                table: t.name.clone(),
            }])
        }
        Op::RenameTable {
            name,
            new_schema,
            new_name,
        } => {
            let t = pipeline_table(cat, &name)?;
            if let Some(s) = &new_schema {
                if !ident_eq(cat.engine, s, &t.name.schema) {
                    return Err(refuse(
                        RefusalKind::Unsupported,
                        format!(
                            "moving {} to another schema ({s}) is not supported: rename it within {}",
                            t.name, t.name.schema
                        ),
                    ));
                }
            }
            let target = ObjName {
                schema: Some(t.name.schema.clone()),
                name: new_name.clone(),
            };
            new_relation(cat, &target, "table")?;
            Ok(vec![Change::RenameTable {
                table: t.name.clone(),
                new_name,
            }])
        }
        Op::Truncate(names) => {
            let mut tables = Vec::new();
            for n in &names {
                tables.push(pipeline_table(cat, n)?.name.clone());
            }
            Ok(vec![Change::Truncate { tables }])
        }
        Op::AlterTable { name, actions } => alter_table(cat, &name, actions),
        Op::CreateIndex { table, index } => {
            let t = pipeline_table(cat, &table)?;
            create_index(cat, t, index).map(|c| vec![c])
        }
        Op::DropIndex {
            index,
            table,
            concurrently,
        } => {
            let t = match table {
                Some(table) => pipeline_table(cat, &table)?,
                None => {
                    let found = cat.table_of_index(index.schema.as_deref(), &index.name);
                    match found.as_slice() {
                        [t] => *t,
                        [] => {
                            return Err(refuse(
                                RefusalKind::Unknown,
                                format!(
                                    "index {} is not an index of a pipeline table in the catalog",
                                    written(&index)
                                ),
                            ))
                        }
                        many => {
                            return Err(ambiguous(
                                &index,
                                &many.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
                            ))
                        }
                    }
                }
            };
            drop_index(cat, t, &index.name, concurrently).map(|c| vec![c])
        }
        Op::CreateView {
            view,
            or_replace,
            columns,
            query,
            references,
        } => {
            let view = match cat.resolve(view.schema.as_deref(), &view.name) {
                Resolved::Missing(q) => q,
                Resolved::View(q) if or_replace => q,
                Resolved::Ambiguous(found) => return Err(ambiguous(&view, &found)),
                Resolved::View(q) | Resolved::Table(q) | Resolved::Outside(q) => {
                    return Err(refuse(
                        RefusalKind::AlreadyExists,
                        format!("cannot create view {q}: a relation of that name already exists"),
                    ))
                }
            };
            let mut refs: Vec<QualifiedName> = Vec::new();
            for r in &references {
                let q = match cat.resolve(r.schema.as_deref(), &r.name) {
                    Resolved::Table(q) | Resolved::View(q) => q,
                    Resolved::Outside(q) => {
                        return Err(refuse(
                            RefusalKind::OutsidePipeline,
                            format!(
                                "view {view} reads {q}, which this pipeline does not replicate: \
                                 the target has no such table"
                            ),
                        ))
                    }
                    Resolved::Missing(_) => {
                        return Err(refuse(
                            RefusalKind::Unknown,
                            format!(
                                "view {view} reads {}, which is not in the catalog",
                                written(r)
                            ),
                        ))
                    }
                    Resolved::Ambiguous(found) => return Err(ambiguous(r, &found)),
                };
                if !refs.contains(&q) {
                    refs.push(q);
                }
            }
            refs.sort();
            Ok(vec![Change::CreateView {
                view,
                or_replace,
                columns,
                query,
                references: refs,
            }])
        }
        Op::DropView(name) => match cat.resolve(name.schema.as_deref(), &name.name) {
            Resolved::View(q) => Ok(vec![Change::DropView { view: q }]),
            Resolved::Ambiguous(found) => Err(ambiguous(&name, &found)),
            Resolved::Table(q) => Err(refuse(
                RefusalKind::Unsupported,
                format!("{q} is a table, not a view"),
            )),
            Resolved::Outside(q) => Err(refuse(
                RefusalKind::OutsidePipeline,
                format!("{q} is not a view lockstep manages for this pipeline"),
            )),
            Resolved::Missing(_) => Err(refuse(
                RefusalKind::Unknown,
                format!("view {} is not in the catalog", written(&name)),
            )),
        },
        Op::Comment { on, text } => {
            let on = match on {
                CommentDraft::Table(n) => CommentTarget::Table {
                    table: pipeline_table(cat, &n)?.name.clone(),
                },
                CommentDraft::Column(n, c) => {
                    let t = pipeline_table(cat, &n)?;
                    let col = column(cat, t, &c)?;
                    CommentTarget::Column {
                        table: t.name.clone(),
                        column: col.name.clone(),
                    }
                }
            };
            Ok(vec![Change::Comment { on, text }])
        }
    }
}

fn column_of(d: &ColumnDraft) -> Column {
    Column {
        name: d.name.clone(),
        data_type: d.data_type.clone(),
        nullable: !d.not_null && !d.primary_key,
        default: d
            .default
            .clone()
            .filter(|v| !matches!(v.constant, Some(Literal::Null))),
    }
}

fn create_table(
    cat: &Catalog,
    name: &ObjName,
    columns: Vec<ColumnDraft>,
    primary_key: Option<Vec<String>>,
    constraints: Vec<NamedConstraint>,
) -> Result<Change, Refusal> {
    let table = new_relation(cat, name, "table")?;
    if !cat
        .pipeline_schemas()
        .iter()
        .any(|s| ident_eq(cat.engine, s, &table.schema))
    {
        return Err(refuse(
            RefusalKind::OutsidePipeline,
            format!(
                "schema {} is not replicated by this pipeline (its schemas: {}); create the table \
                 directly, or add the schema to the pipeline",
                table.schema,
                cat.pipeline_schemas().join(", ")
            ),
        ));
    }
    if columns.is_empty() {
        return Err(refuse(
            RefusalKind::Unsupported,
            format!("CREATE TABLE {table} declares no columns"),
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in &columns {
        if seen.iter().any(|s| ident_eq(cat.engine, s, &c.name)) {
            return Err(refuse(
                RefusalKind::Syntax,
                format!("column {} is declared twice in {table}", c.name),
            ));
        }
        seen.push(&c.name);
    }
    let inline_pk: Vec<String> = columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.clone())
        .collect();
    let pk = match (primary_key, inline_pk.is_empty()) {
        (Some(_), false) => {
            return Err(refuse(
                RefusalKind::Syntax,
                format!("{table} declares its primary key twice"),
            ))
        }
        (Some(pk), true) => pk,
        (None, _) => inline_pk,
    };
    if pk.is_empty() {
        return Err(refuse(
            RefusalKind::MissingPrimaryKey,
            format!(
                "CREATE TABLE {table} has no primary key: the sink applies updates and deletes by \
                 key, and Debezium keys its messages by it; declare a PRIMARY KEY"
            ),
        ));
    }
    for k in &pk {
        if !seen.iter().any(|s| ident_eq(cat.engine, s, k)) {
            return Err(refuse(
                RefusalKind::Unknown,
                format!("primary key column {k} is not a column of {table}"),
            ));
        }
    }
    let mut out_columns: Vec<Column> = columns.iter().map(column_of).collect();
    for c in out_columns.iter_mut() {
        if in_list(cat.engine, &pk, &c.name) {
            c.nullable = false;
        }
    }
    let mut out_constraints: Vec<ConstraintDef> = Vec::new();
    for c in &columns {
        out_constraints.extend(c.constraints.iter().cloned());
    }
    out_constraints.extend(constraints.into_iter().map(|c| c.def));
    for c in out_constraints.iter_mut() {
        if let ConstraintDef::ForeignKey { references, .. } = c {
            *references = reference(cat, &table, references)?;
        }
    }
    Ok(Change::CreateTable {
        table,
        columns: out_columns,
        primary_key: pk,
        constraints: out_constraints,
    })
}

fn alter_table(
    cat: &Catalog,
    name: &ObjName,
    actions: Vec<Action>,
) -> Result<Vec<Change>, Refusal> {
    let table = pipeline_table(cat, name)?.name.clone();
    if actions.is_empty() {
        return Err(refuse(
            RefusalKind::Unsupported,
            format!("ALTER TABLE {table} changes nothing"),
        ));
    }
    // Subcommands apply in order: each is resolved against the table as the previous ones
    // left it.
    let mut scratch = cat.clone();
    let mut changes = Vec::new();
    for action in actions {
        let t = scratch.table(&table).cloned().ok_or_else(|| {
            refuse(
                RefusalKind::Internal,
                format!("table {table} vanished from the catalog"),
            )
        })?;
        for change in alter_action(&scratch, &t, action)? {
            scratch.apply(&change);
            changes.push(change);
        }
    }
    if let Some(t) = scratch.table(&table) {
        if t.primary_key.is_empty() {
            return Err(refuse(
                RefusalKind::MissingPrimaryKey,
                format!(
                    "this would leave {table} without a primary key: the sink applies updates and \
                     deletes by key; replace the key in the same statement \
                     (… DROP CONSTRAINT <pk>, ADD PRIMARY KEY (…))"
                ),
            ));
        }
    }
    Ok(changes)
}

fn alter_action(cat: &Catalog, t: &TableSchema, action: Action) -> Result<Vec<Change>, Refusal> {
    let engine = cat.engine;
    let table = t.name.clone();
    let change = match action {
        Action::AddColumn(d) => {
            if t.column(engine, &d.name).is_some() {
                return Err(refuse(
                    RefusalKind::AlreadyExists,
                    format!("column {} already exists in {table}", d.name),
                ));
            }
            if d.primary_key {
                return Err(refuse(
                    RefusalKind::MixedStrategies,
                    format!(
                        "ADD COLUMN {} … PRIMARY KEY changes the key as well: add the column, then \
                         change the primary key in its own statement",
                        d.name
                    ),
                ));
            }
            if !d.constraints.is_empty() {
                return Err(refuse(
                    RefusalKind::MixedStrategies,
                    format!(
                        "ADD COLUMN {} declares a constraint inline: add the column, then the \
                         constraint in its own statement (ADD CONSTRAINT <name> …)",
                        d.name
                    ),
                ));
            }
            let column = column_of(&d);
            if !column.nullable && column.default.is_none() && t.rows.is_some_and(|r| r > 0) {
                return Err(refuse(
                    RefusalKind::Unsafe,
                    format!(
                        "ADD COLUMN {} NOT NULL without a default fails on {table}, which has rows: \
                         add it with a DEFAULT, or nullable, fill it, then SET NOT NULL",
                        d.name
                    ),
                ));
            }
            Change::AddColumn { table, column }
        }
        Action::DropColumn(c) => {
            let col = column(cat, t, &c)?.clone();
            if in_list(engine, &t.primary_key, &col.name) {
                return Err(refuse(
                    RefusalKind::Unsafe,
                    format!(
                        "column {} is part of {table}'s primary key: dropping it drops the key; \
                         change the primary key first, in its own statement",
                        col.name
                    ),
                ));
            }
            if let Some(idx) = t.replica_identity_index().and_then(|i| t.index(engine, i)) {
                if in_list(engine, &idx.columns, &col.name) {
                    return Err(refuse(
                        RefusalKind::Unsafe,
                        format!(
                            "column {} is in index {}, {table}'s replica identity: dropping it \
                             leaves the table without one; change REPLICA IDENTITY first",
                            col.name, idx.name
                        ),
                    ));
                }
            }
            Change::DropColumn { table, column: col }
        }
        Action::RenameColumn { old, new } => {
            let col = column(cat, t, &old)?.clone();
            if t.column(engine, &new).is_some() {
                return Err(refuse(
                    RefusalKind::AlreadyExists,
                    format!("column {new} already exists in {table}"),
                ));
            }
            Change::RenameColumn {
                table,
                column: col,
                new_name: new,
            }
        }
        Action::AlterType {
            column: c,
            new_type,
            using,
        } => {
            let col = column(cat, t, &c)?.clone();
            return alter_type(&table, col, new_type, using).map(|c| vec![c]);
        }
        Action::SetNotNull(c) => {
            let col = column(cat, t, &c)?.clone();
            Change::SetNotNull { table, column: col }
        }
        Action::DropNotNull(c) => {
            let col = column(cat, t, &c)?.clone();
            if in_list(engine, &t.primary_key, &col.name) {
                return Err(refuse(
                    RefusalKind::Unsafe,
                    format!(
                        "column {} is part of {table}'s primary key, which cannot be nullable",
                        col.name
                    ),
                ));
            }
            Change::DropNotNull { table, column: col }
        }
        Action::SetDefault(c, default) => {
            let col = column(cat, t, &c)?.clone();
            if matches!(default.constant, Some(Literal::Null)) {
                Change::DropDefault { table, column: col }
            } else {
                Change::SetDefault {
                    table,
                    column: col,
                    default,
                }
            }
        }
        Action::DropDefault(c) => {
            let col = column(cat, t, &c)?.clone();
            Change::DropDefault { table, column: col }
        }
        Action::Redefine { column: c, new } => return redefine(cat, t, &c, new),
        Action::AddPrimaryKey {
            name,
            columns,
            using_index,
        } => {
            if !t.primary_key.is_empty() {
                return Err(refuse(
                    RefusalKind::AlreadyExists,
                    format!(
                        "{table} already has a primary key ({}); drop it in the same statement first",
                        t.primary_key.join(", ")
                    ),
                ));
            }
            let columns = match using_index {
                Some(i) => {
                    let idx = t.index(engine, &i).ok_or_else(|| {
                        refuse(
                            RefusalKind::Unknown,
                            format!("index {i} is not an index of {table} in the catalog"),
                        )
                    })?;
                    if !idx.unique || idx.columns.is_empty() {
                        return Err(refuse(
                            RefusalKind::Unsafe,
                            format!("index {i} is not a unique index on plain columns"),
                        ));
                    }
                    idx.columns.clone()
                }
                None => columns,
            };
            let mut resolved = Vec::new();
            for c in &columns {
                resolved.push(column(cat, t, c)?.name.clone());
            }
            Change::AddPrimaryKey {
                table,
                name,
                columns: resolved,
            }
        }
        Action::DropPrimaryKey => {
            if t.primary_key.is_empty() {
                return Err(refuse(
                    RefusalKind::Unknown,
                    format!("{table} has no primary key to drop"),
                ));
            }
            Change::DropPrimaryKey {
                table,
                name: t.primary_key_name.clone(),
                columns: t.primary_key.clone(),
            }
        }
        Action::AddConstraint {
            constraint,
            not_valid,
        } => {
            let Some(name) = constraint.name else {
                return Err(refuse(
                    RefusalKind::Unsupported,
                    format!(
                        "unnamed {} constraint on {table}: name it (ADD CONSTRAINT <name> …) so \
                         lockstep can refer to it on the source and the target",
                        constraint.def.kind()
                    ),
                ));
            };
            if t.constraint(engine, &name).is_some() || t.is_primary_key_name(engine, &name) {
                return Err(refuse(
                    RefusalKind::AlreadyExists,
                    format!("constraint {name} already exists on {table}"),
                ));
            }
            match &constraint.def {
                ConstraintDef::Unique { columns } => {
                    for c in columns {
                        column(cat, t, c)?;
                    }
                }
                ConstraintDef::ForeignKey { columns, .. } => {
                    for c in columns {
                        column(cat, t, c)?;
                    }
                }
                ConstraintDef::Check { .. } => {}
            }
            let mut def = constraint.def;
            if let ConstraintDef::ForeignKey { references, .. } = &mut def {
                *references = reference(cat, &table, references)?;
            }
            Change::AddConstraint {
                table,
                name,
                constraint: def,
                not_valid,
            }
        }
        Action::DropConstraint(name) => {
            if t.is_primary_key_name(engine, &name) {
                Change::DropPrimaryKey {
                    table,
                    name: t.primary_key_name.clone(),
                    columns: t.primary_key.clone(),
                }
            } else {
                let c = constraint(t, engine, &name)?;
                Change::DropConstraint {
                    table,
                    name: c.0,
                    kind: c.1,
                }
            }
        }
        Action::ValidateConstraint(name) => {
            let c = constraint(t, engine, &name)?;
            Change::ValidateConstraint {
                table,
                name: c.0,
                kind: c.1,
            }
        }
        Action::ReplicaIdentity(to) => {
            match &to {
                ReplicaIdentity::Nothing => {
                    return Err(refuse(
                        RefusalKind::Unsafe,
                        format!(
                            "REPLICA IDENTITY NOTHING on {table}: UPDATE and DELETE fail on the \
                             source for a table published for them, and the sink loses its key"
                        ),
                    ))
                }
                ReplicaIdentity::Index(i) => {
                    let idx = t.index(engine, i).ok_or_else(|| {
                        refuse(
                            RefusalKind::Unknown,
                            format!("index {i} is not an index of {table} in the catalog"),
                        )
                    })?;
                    if !idx.unique {
                        return Err(refuse(
                            RefusalKind::Unsafe,
                            format!("index {i} is not unique and cannot be a replica identity"),
                        ));
                    }
                }
                ReplicaIdentity::Default | ReplicaIdentity::Full => {}
            }
            Change::SetReplicaIdentity {
                table,
                from: t.replica_identity.clone(),
                to,
            }
        }
        Action::AddIndex(index) => return create_index(cat, t, index).map(|c| vec![c]),
        Action::DropIndex(name) => return drop_index(cat, t, &name, false).map(|c| vec![c]),
    };
    Ok(vec![change])
}

fn constraint(
    t: &TableSchema,
    engine: Engine,
    name: &str,
) -> Result<(String, ConstraintKind), Refusal> {
    t.constraint(engine, name)
        .map(|c| (c.name.clone(), c.kind))
        .ok_or_else(|| {
            refuse(
                RefusalKind::Unknown,
                format!(
                    "constraint {name} is not a constraint of {} in the catalog",
                    t.name
                ),
            )
        })
}

fn alter_type(
    table: &QualifiedName,
    col: Column,
    new_type: crate::types::SqlType,
    using: Option<String>,
) -> Result<Change, Refusal> {
    let Some(mut direction) = col.data_type.change_to(&new_type) else {
        return Err(refuse(
            RefusalKind::UnknownType,
            format!(
                "lockstep cannot tell whether changing {table}.{} from {} to {new_type} keeps its \
                 values (a type it does not model); apply it by hand with the pipeline paused",
                col.name, col.data_type
            ),
        ));
    };
    if using.is_some() {
        // A USING expression rewrites the stored values on the source, without change events.
        direction = TypeChange::Conversion;
    }
    Ok(Change::AlterColumnType {
        table: table.clone(),
        column: col,
        new_type,
        using,
        direction,
    })
}

/// MySQL MODIFY / CHANGE COLUMN restate the whole column: compare with the catalog to find
/// what actually changes (a MODIFY that omits DEFAULT drops it, one that omits NOT NULL makes
/// the column nullable).
fn redefine(
    cat: &Catalog,
    t: &TableSchema,
    old: &str,
    new: ColumnDraft,
) -> Result<Vec<Change>, Refusal> {
    let engine = cat.engine;
    let before = column(cat, t, old)?.clone();
    if new.primary_key || !new.constraints.is_empty() {
        return Err(refuse(
            RefusalKind::MixedStrategies,
            format!(
                "the new definition of column {} declares a key or constraint: change the column \
                 and the key in separate statements",
                before.name
            ),
        ));
    }
    let in_pk = in_list(engine, &t.primary_key, &before.name);
    let after = Column {
        name: new.name.clone(),
        data_type: new.data_type.clone(),
        nullable: !(new.not_null || in_pk),
        default: new
            .default
            .clone()
            .filter(|v| !matches!(v.constant, Some(Literal::Null))),
    };
    let table = t.name.clone();
    let mut changes = Vec::new();
    let mut current = before.clone();
    if !ident_eq(engine, &before.name, &after.name) {
        if t.column(engine, &after.name).is_some() {
            return Err(refuse(
                RefusalKind::AlreadyExists,
                format!("column {} already exists in {table}", after.name),
            ));
        }
        changes.push(Change::RenameColumn {
            table: table.clone(),
            column: current.clone(),
            new_name: after.name.clone(),
        });
        current.name = after.name.clone();
    }
    if current.data_type != after.data_type {
        changes.push(alter_type(
            &table,
            current.clone(),
            after.data_type.clone(),
            None,
        )?);
        current.data_type = after.data_type.clone();
    }
    if current.nullable != after.nullable {
        changes.push(if after.nullable {
            Change::DropNotNull {
                table: table.clone(),
                column: current.clone(),
            }
        } else {
            Change::SetNotNull {
                table: table.clone(),
                column: current.clone(),
            }
        });
        current.nullable = after.nullable;
    }
    if current.default != after.default {
        changes.push(match &after.default {
            Some(d) => Change::SetDefault {
                table: table.clone(),
                column: current.clone(),
                default: d.clone(),
            },
            None => Change::DropDefault {
                table: table.clone(),
                column: current.clone(),
            },
        });
    }
    if changes.is_empty() {
        return Err(refuse(
            RefusalKind::Unsupported,
            format!(
                "the new definition of {table}.{} changes nothing lockstep tracks",
                before.name
            ),
        ));
    }
    Ok(changes)
}

fn create_index(cat: &Catalog, t: &TableSchema, index: IndexDraft) -> Result<Change, Refusal> {
    let engine = cat.engine;
    let Some(name) = index.name else {
        return Err(refuse(
            RefusalKind::Unsupported,
            format!(
                "unnamed index on {}: name it, so the target's index gets the same name",
                t.name
            ),
        ));
    };
    if t.index(engine, &name).is_some() || t.is_primary_key_name(engine, &name) {
        return Err(refuse(
            RefusalKind::AlreadyExists,
            format!("index {name} already exists on {}", t.name),
        ));
    }
    let _ = index.if_not_exists;
    let mut keys = Vec::new();
    for k in index.keys {
        keys.push(match k {
            IndexKey::Column {
                name,
                descending,
                opclass,
            } => IndexKey::Column {
                name: column(cat, t, &name)?.name.clone(),
                descending,
                opclass,
            },
            e @ IndexKey::Expression(_) => e,
        });
    }
    let mut include = Vec::new();
    for c in &index.include {
        include.push(column(cat, t, c)?.name.clone());
    }
    Ok(Change::CreateIndex {
        table: t.name.clone(),
        name,
        keys,
        unique: index.unique,
        concurrently: index.concurrently,
        method: index.method,
        include,
        predicate: index.predicate,
    })
}

fn drop_index(
    cat: &Catalog,
    t: &TableSchema,
    name: &str,
    concurrently: bool,
) -> Result<Change, Refusal> {
    let engine = cat.engine;
    if t.is_primary_key_name(engine, name) {
        return Err(refuse(
            RefusalKind::Unsafe,
            format!(
                "index {name} backs {}'s primary key: change the primary key instead",
                t.name
            ),
        ));
    }
    let Some(idx) = t.index(engine, name) else {
        // MySQL: a UNIQUE constraint is an index, and is dropped as one.
        if let Some(c) = t.constraint(engine, name) {
            return Ok(Change::DropConstraint {
                table: t.name.clone(),
                name: c.name.clone(),
                kind: c.kind,
            });
        }
        return Err(refuse(
            RefusalKind::Unknown,
            format!("index {name} is not an index of {} in the catalog", t.name),
        ));
    };
    if t.replica_identity_index()
        .is_some_and(|ri| ident_eq(engine, ri, &idx.name))
    {
        return Err(refuse(
            RefusalKind::Unsafe,
            format!(
                "index {} is {}'s replica identity: dropping it leaves the table without one \
                 (UPDATE and DELETE would fail on the source); set REPLICA IDENTITY DEFAULT first",
                idx.name, t.name
            ),
        ));
    }
    Ok(Change::DropIndex {
        table: t.name.clone(),
        name: idx.name.clone(),
        concurrently,
    })
}
