//! Target DDL for a change, in the target engine's syntax (types translated for MariaDB).
//! Built from the classified change, never from the source text, so names, types and
//! quoting are the target's.

use lockstep_ddl::{
    Change, Column, CommentTarget, ConstraintDef, ConstraintKind, DefaultValue, Engine, IndexKey,
    Literal, SqlType, TypeChange,
};

use crate::facts::{PipelineFacts, TargetEngine, TargetTable};
use crate::step::Check;
use crate::PlanErrorKind;

/// One target statement with how to undo it and whether it may run twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetOp {
    pub sql: String,
    pub undo: Option<String>,
    pub idempotent: bool,
    pub skip_if: Vec<Check>,
}

impl TargetOp {
    fn new(sql: String) -> Self {
        Self {
            sql,
            undo: None,
            idempotent: true,
            skip_if: Vec::new(),
        }
    }
    fn undo(mut self, sql: String) -> Self {
        self.undo = Some(sql);
        self
    }
    fn guarded(mut self, check: Check) -> Self {
        self.idempotent = false;
        self.skip_if.push(check);
        self
    }
}

/// The target side of a change: what runs before the source change, what runs after the
/// sink has applied everything up to it, and what is not mirrored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TargetWork {
    pub before: Vec<TargetOp>,
    pub after: Vec<TargetOp>,
    pub notes: Vec<String>,
    /// Stored values change on the source without change events: re-snapshot the table.
    pub snapshot: bool,
    /// Values may have been rounded in place: compare rows at the end.
    pub verify_rows: bool,
}

pub(crate) type RenderError = (PlanErrorKind, String);

fn cannot(message: String) -> RenderError {
    (PlanErrorKind::CannotTranslate, message)
}

/// Quote an identifier for the target engine.
pub fn quote_ident(engine: TargetEngine, ident: &str) -> String {
    quote(engine, ident)
}

/// A type in the target engine's DDL syntax, or why it has none.
pub fn type_sql(engine: TargetEngine, t: &SqlType) -> Result<String, String> {
    type_sql_inner(engine, t).map_err(|(_, m)| m)
}

pub(crate) fn quote(engine: TargetEngine, ident: &str) -> String {
    match engine {
        TargetEngine::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
        TargetEngine::Mariadb => format!("`{}`", ident.replace('`', "``")),
    }
}

pub(crate) fn table(engine: TargetEngine, t: &TargetTable) -> String {
    format!("{}.{}", quote(engine, &t.schema), quote(engine, &t.name))
}

fn string_literal(engine: TargetEngine, s: &str) -> String {
    match engine {
        TargetEngine::Postgres => format!("'{}'", s.replace('\'', "''")),
        // MariaDB treats backslash as an escape character unless NO_BACKSLASH_ESCAPES.
        TargetEngine::Mariadb => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
    }
}

fn literal(engine: TargetEngine, l: &Literal) -> Result<String, RenderError> {
    Ok(match l {
        Literal::Null => "NULL".into(),
        Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Literal::Number(n) => {
            let ok = !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
            if !ok {
                return Err(cannot(format!("{n} is not a plain number")));
            }
            n.clone()
        }
        Literal::String(s) => string_literal(engine, s),
    })
}

/// A default in the target's syntax; `None` when it cannot be carried over (a computed
/// default from another engine, a sequence or identity).
pub(crate) fn default_sql(
    engine: TargetEngine,
    source: Engine,
    d: &DefaultValue,
) -> Result<Option<String>, RenderError> {
    if let Some(l) = &d.constant {
        return literal(engine, l).map(Some);
    }
    if d.identity {
        return Ok(None);
    }
    Ok(match (engine, source) {
        (TargetEngine::Postgres, Engine::Postgres) => Some(d.sql.clone()),
        _ => None,
    })
}

pub(crate) fn type_sql_inner(engine: TargetEngine, t: &SqlType) -> Result<String, RenderError> {
    match engine {
        TargetEngine::Postgres => pg_type(t),
        TargetEngine::Mariadb => mariadb_type(t),
    }
}

fn pg_type(t: &SqlType) -> Result<String, RenderError> {
    Ok(match t {
        SqlType::Int { bytes, unsigned } => match (bytes, unsigned) {
            (1 | 2, false) | (1, true) => "smallint".into(),
            (3, _) | (4, false) | (2, true) => "integer".into(),
            (4, true) | (8, false) => "bigint".into(),
            _ => "numeric(20,0)".into(),
        },
        SqlType::Text { .. } => "text".into(),
        SqlType::Binary { .. } => "bytea".into(),
        SqlType::Array { element } => format!("{}[]", pg_type(element)?),
        SqlType::Other { name } => {
            return Err(cannot(format!(
                "type {name} is not one lockstep models; create the column on the target by hand"
            )))
        }
        other => other.to_string(),
    })
}

fn mariadb_type(t: &SqlType) -> Result<String, RenderError> {
    let precision = |p: &Option<u32>| p.unwrap_or(6).min(6);
    Ok(match t {
        SqlType::Int { bytes, unsigned } => {
            let base = match bytes {
                1 => "TINYINT",
                2 => "SMALLINT",
                3 => "MEDIUMINT",
                4 => "INT",
                _ => "BIGINT",
            };
            if *unsigned {
                format!("{base} UNSIGNED")
            } else {
                base.to_string()
            }
        }
        SqlType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 65 && scale.unwrap_or(0) <= 38 => format!("DECIMAL({p},{})", scale.unwrap_or(0)),
        SqlType::Decimal { .. } => {
            return Err(cannot(format!(
                "{t} has no exact MariaDB equivalent (DECIMAL holds at most 65 digits, 38 after the point); declare numeric(p,s) within that"
            )))
        }
        SqlType::Float { bytes: 4 } => "FLOAT".into(),
        SqlType::Float { .. } => "DOUBLE".into(),
        SqlType::Bool => "BOOLEAN".into(),
        SqlType::Char { length } if *length <= 255 => format!("CHAR({length})"),
        SqlType::Char { length } => {
            return Err(cannot(format!("character({length}) is longer than MariaDB's CHAR (255)")))
        }
        SqlType::Varchar { length: Some(n) } if *n <= 16_383 => format!("VARCHAR({n})"),
        SqlType::Varchar { length: Some(n) } if *n <= 4_194_303 => "MEDIUMTEXT".into(),
        SqlType::Varchar { .. } | SqlType::Text { max_bytes: None } => "LONGTEXT".into(),
        SqlType::Text { max_bytes: Some(n) } => match n {
            0..=255 => "TINYTEXT",
            256..=65_535 => "TEXT",
            65_536..=16_777_215 => "MEDIUMTEXT",
            _ => "LONGTEXT",
        }
        .into(),
        SqlType::Binary { max_bytes } => match max_bytes {
            Some(0..=255) => "TINYBLOB",
            Some(256..=65_535) => "BLOB",
            Some(65_536..=16_777_215) => "MEDIUMBLOB",
            _ => "LONGBLOB",
        }
        .into(),
        SqlType::Date => "DATE".into(),
        SqlType::Time {
            precision: p,
            with_time_zone: false,
        } => format!("TIME({})", precision(p)),
        SqlType::Timestamp { precision: p, .. } => format!("DATETIME({})", precision(p)),
        SqlType::Uuid => "CHAR(36)".into(),
        SqlType::Json { .. } => "JSON".into(),
        SqlType::Time {
            with_time_zone: true,
            ..
        }
        | SqlType::Interval
        | SqlType::Array { .. }
        | SqlType::Other { .. } => {
            return Err(cannot(format!(
                "type {t} has no MariaDB equivalent lockstep can map; create the column on the target by hand"
            )))
        }
    })
}

/// A full column definition (`name type [NOT] NULL [DEFAULT …]`).
pub(crate) fn column_sql(
    engine: TargetEngine,
    source: Engine,
    c: &Column,
    nullable: bool,
    with_default: bool,
) -> Result<String, RenderError> {
    let mut s = format!(
        "{} {}",
        quote(engine, &c.name),
        type_sql_inner(engine, &c.data_type)?
    );
    s.push_str(if nullable { " NULL" } else { " NOT NULL" });
    if with_default {
        if let Some(d) = &c.default {
            if let Some(d) = default_sql(engine, source, d)? {
                s.push_str(" DEFAULT ");
                s.push_str(&d);
            }
        }
    }
    Ok(s)
}

/// PostgreSQL's default name of a primary key constraint, moved to the target's table name.
fn pk_name(
    facts: &PipelineFacts,
    table: &lockstep_ddl::QualifiedName,
    name: &Option<String>,
) -> String {
    let target = facts.target_table(table);
    match name {
        Some(n) if *n != format!("{}_pkey", table.name) => n.clone(),
        _ => format!("{}_pkey", target.name),
    }
}

struct Cx {
    e: TargetEngine,
    src: Engine,
}

impl Cx {
    fn alter(&self, t: &TargetTable, rest: &str) -> String {
        format!("ALTER TABLE {} {rest}", table(self.e, t))
    }

    fn q(&self, s: &str) -> String {
        quote(self.e, s)
    }

    /// Change a column's nullability (PostgreSQL) or restate it (MariaDB).
    fn set_nullable(
        &self,
        t: &TargetTable,
        c: &Column,
        nullable: bool,
    ) -> Result<String, RenderError> {
        Ok(match self.e {
            TargetEngine::Postgres => self.alter(
                t,
                &format!(
                    "ALTER COLUMN {} {} NOT NULL",
                    self.q(&c.name),
                    if nullable { "DROP" } else { "SET" }
                ),
            ),
            TargetEngine::Mariadb => self.alter(
                t,
                &format!(
                    "MODIFY COLUMN {}",
                    column_sql(self.e, self.src, c, nullable, true)?
                ),
            ),
        })
    }

    fn set_type(
        &self,
        t: &TargetTable,
        c: &Column,
        ty: &SqlType,
        using: Option<&str>,
    ) -> Result<String, RenderError> {
        Ok(match self.e {
            TargetEngine::Postgres => {
                let ty_sql = type_sql_inner(self.e, ty)?;
                let using = match using {
                    Some(u) if self.src == Engine::Postgres => format!(" USING {u}"),
                    _ => format!(" USING {}::{ty_sql}", self.q(&c.name)),
                };
                self.alter(
                    t,
                    &format!("ALTER COLUMN {} TYPE {ty_sql}{using}", self.q(&c.name)),
                )
            }
            TargetEngine::Mariadb => {
                let mut after = c.clone();
                after.data_type = ty.clone();
                self.alter(
                    t,
                    &format!(
                        "MODIFY COLUMN {}",
                        column_sql(self.e, self.src, &after, c.nullable, true)?
                    ),
                )
            }
        })
    }

    fn set_default(
        &self,
        t: &TargetTable,
        c: &Column,
        d: Option<&DefaultValue>,
    ) -> Result<Option<String>, RenderError> {
        Ok(match d {
            None => Some(self.alter(t, &format!("ALTER COLUMN {} DROP DEFAULT", self.q(&c.name)))),
            Some(d) => default_sql(self.e, self.src, d)?.map(|d| {
                self.alter(
                    t,
                    &format!("ALTER COLUMN {} SET DEFAULT {d}", self.q(&c.name)),
                )
            }),
        })
    }

    fn create_table(
        &self,
        t: &TargetTable,
        columns: &[Column],
        pk: &[String],
    ) -> Result<String, RenderError> {
        let mut parts = Vec::new();
        for c in columns {
            parts.push(column_sql(self.e, self.src, c, c.nullable, true)?);
        }
        parts.push(format!(
            "PRIMARY KEY ({})",
            pk.iter().map(|k| self.q(k)).collect::<Vec<_>>().join(", ")
        ));
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            table(self.e, t),
            parts.join(", ")
        ))
    }
}

/// The target work of one change.
pub(crate) fn target_work(
    change: &Change,
    source: Engine,
    facts: &PipelineFacts,
) -> Result<TargetWork, RenderError> {
    let cx = Cx {
        e: facts.target.engine,
        src: source,
    };
    let e = cx.e;
    let mut w = TargetWork::default();
    match change {
        Change::CreateTable {
            table: src,
            columns,
            primary_key,
            constraints,
        } => {
            let t = facts.target_table(src);
            w.before.push(
                TargetOp::new(cx.create_table(&t, columns, primary_key)?)
                    .undo(format!("DROP TABLE IF EXISTS {}", table(e, &t))),
            );
            if !constraints.is_empty() {
                w.notes.push(format!(
                    "{} constraint(s) declared with {src} are enforced on the source only: the target keeps only the primary key",
                    constraints.len()
                ));
            }
            if columns.iter().any(|c| c.default.as_ref().is_some_and(|d| !d.is_constant())) {
                w.notes.push("computed defaults are not copied to the target: the sink writes the values the source computed".into());
            }
        }
        Change::DropTable { table: src } => {
            let t = facts.target_table(src);
            w.after.push(TargetOp::new(format!("DROP TABLE IF EXISTS {}", table(e, &t))));
        }
        Change::RenameTable { table: src, new_name } => {
            let t = facts.target_table(src);
            let new = TargetTable {
                schema: t.schema.clone(),
                name: new_name.clone(),
            };
            let sql = match e {
                TargetEngine::Postgres => cx.alter(&t, &format!("RENAME TO {}", cx.q(new_name))),
                TargetEngine::Mariadb => format!("RENAME TABLE {} TO {}", table(e, &t), table(e, &new)),
            };
            w.after.push(TargetOp::new(sql).guarded(Check::TargetTableExists { table: new }));
        }
        Change::Truncate { tables } => {
            let targets: Vec<String> = tables.iter().map(|s| table(e, &facts.target_table(s))).collect();
            match e {
                TargetEngine::Postgres => w.after.push(TargetOp::new(format!("TRUNCATE TABLE {}", targets.join(", ")))),
                TargetEngine::Mariadb => {
                    for t in targets {
                        w.after.push(TargetOp::new(format!("TRUNCATE TABLE {t}")));
                    }
                }
            }
        }
        Change::AddColumn { table: src, column } => {
            let t = facts.target_table(src);
            let drop = cx.alter(&t, &format!("DROP COLUMN IF EXISTS {}", cx.q(&column.name)));
            let computed = column.default.as_ref().is_some_and(|d| !d.is_constant());
            if computed || (!column.nullable && column.default.is_none()) {
                // Expand: a nullable column without default; contract once every row has a value.
                let add = cx.alter(
                    &t,
                    &format!("ADD COLUMN IF NOT EXISTS {}", column_sql(e, source, column, true, false)?),
                );
                w.before.push(TargetOp::new(add).undo(drop));
                if !column.nullable {
                    w.after.push(TargetOp::new(cx.set_nullable(&t, column, false)?));
                }
                if computed {
                    w.snapshot = true;
                    if let Some(d) = column.default.as_ref() {
                        match cx.set_default(&t, column, Some(d))? {
                            Some(sql) if e == TargetEngine::Postgres => w.after.push(TargetOp::new(sql)),
                            _ => w.notes.push(format!(
                                "the computed default of {} is not copied to the target: existing rows get the source's values by re-snapshot, new rows by change events",
                                column.name
                            )),
                        }
                    }
                }
            } else {
                let add = cx.alter(
                    &t,
                    &format!(
                        "ADD COLUMN IF NOT EXISTS {}",
                        column_sql(e, source, column, column.nullable, true)?
                    ),
                );
                w.before.push(TargetOp::new(add).undo(drop));
            }
        }
        Change::DropColumn { table: src, column } => {
            let t = facts.target_table(src);
            if !column.nullable && column.default.is_none() {
                let mut nullable = column.clone();
                nullable.nullable = true;
                w.before.push(
                    TargetOp::new(cx.set_nullable(&t, column, true)?).undo(cx.set_nullable(&t, &nullable, false)?),
                );
            }
            w.after.push(TargetOp::new(cx.alter(
                &t,
                &format!("DROP COLUMN IF EXISTS {}", cx.q(&column.name)),
            )));
        }
        Change::RenameColumn {
            table: src,
            column,
            new_name,
        } => {
            let t = facts.target_table(src);
            w.after.push(
                TargetOp::new(cx.alter(
                    &t,
                    &format!("RENAME COLUMN {} TO {}", cx.q(&column.name), cx.q(new_name)),
                ))
                .guarded(Check::TargetColumnExists {
                    table: t.clone(),
                    column: new_name.clone(),
                }),
            );
        }
        Change::AlterColumnType {
            table: src,
            column,
            new_type,
            using,
            direction,
        } => {
            let t = facts.target_table(src);
            let op = TargetOp::new(cx.set_type(&t, column, new_type, using.as_deref())?);
            match direction {
                TypeChange::Same | TypeChange::Widening => {
                    let undo = cx.set_type(&t, column, &column.data_type, None)?;
                    w.before.push(op.undo(undo));
                }
                TypeChange::Narrowing => {
                    w.after.push(op);
                    w.verify_rows = true;
                }
                TypeChange::Conversion => {
                    w.after.push(op);
                    w.snapshot = true;
                    w.verify_rows = true;
                }
            }
        }
        Change::SetNotNull { table: src, column } => {
            let t = facts.target_table(src);
            w.after.push(TargetOp::new(cx.set_nullable(&t, column, false)?));
        }
        Change::DropNotNull { table: src, column } => {
            let t = facts.target_table(src);
            w.before.push(
                TargetOp::new(cx.set_nullable(&t, column, true)?).undo(cx.set_nullable(&t, column, false)?),
            );
        }
        Change::SetDefault {
            table: src,
            column,
            default,
        } => {
            let t = facts.target_table(src);
            match cx.set_default(&t, column, Some(default))? {
                Some(sql) => {
                    let mut op = TargetOp::new(sql);
                    if let Some(undo) = cx.set_default(&t, column, column.default.as_ref())? {
                        op = op.undo(undo);
                    }
                    w.before.push(op);
                }
                None => w.notes.push(format!(
                    "the default {} is not copied to the {e} target (computed in the source's syntax): replicated rows carry their values",
                    default.sql
                )),
            }
        }
        Change::DropDefault { table: src, column } => {
            let t = facts.target_table(src);
            let mut op = TargetOp::new(cx.alter(&t, &format!("ALTER COLUMN {} DROP DEFAULT", cx.q(&column.name))));
            if let Some(undo) = cx.set_default(&t, column, column.default.as_ref())? {
                op = op.undo(undo);
            }
            w.before.push(op);
        }
        Change::AddPrimaryKey {
            table: src,
            name,
            columns,
        } => {
            let t = facts.target_table(src);
            let cols = columns.iter().map(|c| cx.q(c)).collect::<Vec<_>>().join(", ");
            let sql = match e {
                TargetEngine::Postgres => cx.alter(
                    &t,
                    &format!("ADD CONSTRAINT {} PRIMARY KEY ({cols})", cx.q(&pk_name(facts, src, name))),
                ),
                TargetEngine::Mariadb => cx.alter(&t, &format!("ADD PRIMARY KEY ({cols})")),
            };
            w.after.push(TargetOp::new(sql).guarded(Check::TargetPrimaryKeyIs {
                table: t,
                columns: columns.clone(),
            }));
        }
        Change::DropPrimaryKey { table: src, name, .. } => {
            let t = facts.target_table(src);
            let op = match e {
                TargetEngine::Postgres => TargetOp::new(cx.alter(
                    &t,
                    &format!("DROP CONSTRAINT IF EXISTS {}", cx.q(&pk_name(facts, src, name))),
                )),
                TargetEngine::Mariadb => TargetOp::new(cx.alter(&t, "DROP PRIMARY KEY")).guarded(Check::TargetPrimaryKeyIs {
                    table: t.clone(),
                    columns: Vec::new(),
                }),
            };
            w.after.push(op);
        }
        Change::SetReplicaIdentity { table: src, to, .. } => {
            w.notes.push(format!(
                "REPLICA IDENTITY {to} is set on the source only: it shapes the source's WAL, the target does not publish"
            ));
            let _ = src;
        }
        Change::CreateIndex {
            table: src,
            name,
            keys,
            unique,
            concurrently,
            method,
            include,
            predicate,
        } => {
            let t = facts.target_table(src);
            if *unique {
                w.notes.push(format!(
                    "unique index {name} is created on the source only: the target enforces only the primary key, because a unique index there can reject a batch whose rows swap values (the sink applies rows, not statements); create a non-unique index on the target if reads need one"
                ));
            } else {
                match index_sql(&cx, &t, name, keys, *concurrently, method, include, predicate.as_deref()) {
                    Some(sql) => {
                        let undo = drop_index_sql(&cx, &t, name, false);
                        w.before.push(TargetOp::new(sql).undo(undo));
                    }
                    None => w.notes.push(format!(
                        "index {name} is created on the source only: the {e} target cannot express it (method, expressions, INCLUDE or WHERE)"
                    )),
                }
            }
        }
        Change::DropIndex {
            table: src,
            name,
            concurrently,
        } => {
            let t = facts.target_table(src);
            let op = TargetOp {
                sql: drop_index_sql(&cx, &t, name, *concurrently),
                undo: None,
                idempotent: true,
                skip_if: Vec::new(),
            };
            w.before.push(op);
        }
        Change::CreateView {
            view,
            or_replace,
            columns,
            query,
            references,
        } => {
            let same_names = references.iter().all(|r| {
                let t = facts.target_table(r);
                t.name == r.name && t.schema == r.schema
            }) && view.schema == facts.target.schema;
            if e == TargetEngine::Postgres && source == Engine::Postgres && same_names {
                let v = TargetTable {
                    schema: facts.target.schema.clone(),
                    name: view.name.clone(),
                };
                let cols = if columns.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", columns.iter().map(|c| cx.q(c)).collect::<Vec<_>>().join(", "))
                };
                let sql = format!(
                    "CREATE {}VIEW {}{cols} AS {query}",
                    if *or_replace { "OR REPLACE " } else { "" },
                    table(e, &v)
                );
                let mut op = TargetOp::new(sql);
                if !*or_replace {
                    op = op.undo(format!("DROP VIEW IF EXISTS {}", table(e, &v)));
                    op.idempotent = false;
                    op.skip_if.push(Check::TargetTableExists { table: v });
                }
                w.before.push(op);
            } else {
                w.notes.push(format!(
                    "view {view} is created on the source only: lockstep mirrors views only from PostgreSQL to PostgreSQL when the tables keep their schema and names; create it on the target by hand if needed"
                ));
            }
        }
        Change::DropView { view } => {
            let v = TargetTable {
                schema: facts.target.schema.clone(),
                name: view.name.clone(),
            };
            w.before.push(TargetOp::new(format!("DROP VIEW IF EXISTS {}", table(e, &v))));
        }
        Change::AddConstraint {
            table: src,
            name,
            constraint,
            not_valid,
        } => match constraint {
            ConstraintDef::Check { expr } if !*not_valid && e == TargetEngine::Postgres && source == Engine::Postgres => {
                let t = facts.target_table(src);
                w.before.push(
                    TargetOp::new(cx.alter(&t, &format!("ADD CONSTRAINT {} CHECK ({expr})", cx.q(name))))
                        .undo(cx.alter(&t, &format!("DROP CONSTRAINT IF EXISTS {}", cx.q(name))))
                        .guarded(Check::TargetConstraintExists {
                            table: t,
                            name: name.clone(),
                        }),
                );
            }
            c => w.notes.push(format!(
                "{} constraint {name} is enforced on the source only{}",
                c.kind(),
                match c.kind() {
                    ConstraintKind::ForeignKey => ": the sink applies tables independently, so a foreign key on the target would reject rows whose parent arrives later",
                    ConstraintKind::Unique => ": a unique constraint on the target can reject a batch whose rows swap values",
                    ConstraintKind::Check if *not_valid => ": NOT VALID constraints are not mirrored (VALIDATE happens on the source)",
                    ConstraintKind::Check => ": CHECK expressions are mirrored only from PostgreSQL to PostgreSQL",
                }
            )),
        },
        Change::ValidateConstraint { name, .. } => {
            w.notes.push(format!("VALIDATE CONSTRAINT {name} runs on the source only"));
        }
        Change::DropConstraint { table: src, name, kind } => {
            if *kind == ConstraintKind::Check && e == TargetEngine::Postgres {
                let t = facts.target_table(src);
                w.before.push(TargetOp::new(cx.alter(&t, &format!("DROP CONSTRAINT IF EXISTS {}", cx.q(name)))));
            } else {
                w.notes.push(format!("{kind} constraint {name} exists on the source only"));
            }
        }
        Change::Comment { on, text } => {
            let value = match text {
                Some(s) => string_literal(e, s),
                None => "NULL".into(),
            };
            match (on, e) {
                (CommentTarget::Table { table: src }, TargetEngine::Postgres) => {
                    let t = facts.target_table(src);
                    w.before.push(TargetOp::new(format!("COMMENT ON TABLE {} IS {value}", table(e, &t))));
                }
                (CommentTarget::Table { table: src }, TargetEngine::Mariadb) => {
                    let t = facts.target_table(src);
                    let v = string_literal(e, text.as_deref().unwrap_or(""));
                    w.before.push(TargetOp::new(cx.alter(&t, &format!("COMMENT = {v}"))));
                }
                (CommentTarget::Column { table: src, column }, TargetEngine::Postgres) => {
                    let t = facts.target_table(src);
                    w.before.push(TargetOp::new(format!(
                        "COMMENT ON COLUMN {}.{} IS {value}",
                        table(e, &t),
                        cx.q(column)
                    )));
                }
                (CommentTarget::Column { column, .. }, TargetEngine::Mariadb) => w.notes.push(format!(
                    "the comment on column {column} is set on the source only: MariaDB sets column comments by restating the column"
                )),
            }
        }
    }
    Ok(w)
}

#[allow(clippy::too_many_arguments)]
fn index_sql(
    cx: &Cx,
    t: &TargetTable,
    name: &str,
    keys: &[IndexKey],
    concurrently: bool,
    method: &str,
    include: &[String],
    predicate: Option<&str>,
) -> Option<String> {
    match cx.e {
        TargetEngine::Postgres => {
            let mut parts = Vec::new();
            for k in keys {
                parts.push(match k {
                    IndexKey::Column {
                        name,
                        descending,
                        opclass,
                    } => {
                        let mut s = cx.q(name);
                        if let Some(o) = opclass {
                            s.push(' ');
                            s.push_str(o);
                        }
                        if *descending {
                            s.push_str(" DESC");
                        }
                        s
                    }
                    IndexKey::Expression(e) if cx.src == Engine::Postgres => format!("({e})"),
                    IndexKey::Expression(_) => return None,
                });
            }
            if predicate.is_some() && cx.src != Engine::Postgres {
                return None;
            }
            let mut sql = format!(
                "CREATE INDEX {}IF NOT EXISTS {} ON {} USING {} ({})",
                if concurrently { "CONCURRENTLY " } else { "" },
                cx.q(name),
                table(cx.e, t),
                method,
                parts.join(", ")
            );
            if !include.is_empty() {
                sql.push_str(&format!(
                    " INCLUDE ({})",
                    include
                        .iter()
                        .map(|c| cx.q(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(p) = predicate {
                sql.push_str(&format!(" WHERE {p}"));
            }
            Some(sql)
        }
        TargetEngine::Mariadb => {
            if !matches!(method, "btree" | "hash") || !include.is_empty() || predicate.is_some() {
                return None;
            }
            let mut parts = Vec::new();
            for k in keys {
                match k {
                    IndexKey::Column {
                        name, descending, ..
                    } => parts.push(format!(
                        "{}{}",
                        cx.q(name),
                        if *descending { " DESC" } else { "" }
                    )),
                    IndexKey::Expression(_) => return None,
                }
            }
            Some(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                cx.q(name),
                table(cx.e, t),
                parts.join(", ")
            ))
        }
    }
}

fn drop_index_sql(cx: &Cx, t: &TargetTable, name: &str, concurrently: bool) -> String {
    match cx.e {
        TargetEngine::Postgres => format!(
            "DROP INDEX {}IF EXISTS {}.{}",
            if concurrently { "CONCURRENTLY " } else { "" },
            cx.q(&t.schema),
            cx.q(name)
        ),
        TargetEngine::Mariadb => {
            format!("DROP INDEX IF EXISTS {} ON {}", cx.q(name), table(cx.e, t))
        }
    }
}
