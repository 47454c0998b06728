//! DDL classification for replicated databases (pure: no I/O).
//!
//! A script (PostgreSQL, parsed with PostgreSQL's own parser through `pg_query`; or MySQL /
//! MariaDB, parsed with `sqlparser`) is split into statements, and each statement is
//! classified against a [`Catalog`] of the source schema into typed [`Change`]s, each with a
//! risk level ([`RiskLevel`]), the [`Strategy`] a plan needs and a [`Concurrency`] class.
//!
//! Fail closed: anything unparseable, unknown or ambiguous refuses the *whole* script with
//! every reason ([`Refused`]); nothing of a refused script may be applied. The classifier
//! never panics on any input (a parser panic is caught and reported as a refusal).
//!
//! ```
//! use lockstep_ddl::{classify, Catalog, Column, Engine, QualifiedName, RiskLevel, SqlType, Strategy, TableSchema};
//!
//! let orders = TableSchema::new(
//!     QualifiedName::new("public", "orders"),
//!     vec![Column { name: "id".into(), data_type: SqlType::int(8), nullable: false, default: None }],
//!     &["id"],
//! );
//! let catalog = Catalog::new(Engine::Postgres, &["public"]).with_table(orders);
//! let c = classify("ALTER TABLE orders ADD COLUMN note text", &catalog).unwrap();
//! assert_eq!(c.statements[0].strategy, Strategy::TargetFirst);
//! assert_eq!(c.statements[0].risk.level, RiskLevel::L2);
//!
//! let refused = classify("ALTER TABLE orders ADD COLUMN c int; DROP TABLE accounts", &catalog).unwrap_err();
//! assert_eq!(refused.refusals[0].statement, Some(1));
//! ```

mod assess;
mod catalog;
mod draft;
mod model;
mod mysql;
mod pg;
mod refusal;
mod resolve;
mod types;

use serde::{Deserialize, Serialize};

pub use assess::assess;
pub use catalog::{ident_eq, Catalog, ConstraintInfo, IndexInfo, Resolved, TableSchema};
pub use model::{
    Change, ClassifiedChange, Column, CommentTarget, Concurrency, ConstraintDef, ConstraintKind,
    DefaultValue, Engine, IndexKey, Literal, QualifiedName, ReplicaIdentity, Risk, RiskLevel,
    Strategy,
};
pub use refusal::{excerpt, Refusal, RefusalKind, Refused};
pub use types::{SqlType, TypeChange};

/// Largest script accepted, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;
/// Most statements accepted in one script.
pub const MAX_STATEMENTS: usize = 100;

/// One classified statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// 0-based position in the script.
    pub index: usize,
    /// The statement's text as written: what runs on the source.
    pub sql: String,
    pub changes: Vec<ClassifiedChange>,
    /// The highest risk of its changes.
    pub risk: Risk,
    /// The one strategy all its changes share.
    pub strategy: Strategy,
    pub concurrency: Concurrency,
    /// Pipeline tables it touches (before the change: a renamed table by its old name).
    pub tables: Vec<QualifiedName>,
    /// Those tables as the statement leaves them (`None`: dropped).
    pub after: Vec<TableAfter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableAfter {
    pub table: QualifiedName,
    pub schema: Option<TableSchema>,
}

/// A classified script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub engine: Engine,
    pub statements: Vec<Statement>,
    /// The catalog as the whole script leaves it.
    pub catalog_after: Catalog,
}

/// Parse a PostgreSQL type name as the catalog prints it (`character varying(20)`).
pub fn parse_pg_type(text: &str) -> Result<SqlType, Refusal> {
    pg::parse_type(text)
}

/// Parse a PostgreSQL column default as the catalog prints it (`pg_get_expr(adbin, adrelid)`).
pub fn parse_pg_default(text: &str) -> Result<DefaultValue, Refusal> {
    pg::parse_default(text)
}

/// Split, parse and classify a script against the catalog (whose `engine` says which
/// parser to use). Statements are classified in order, each against the schema the previous
/// ones leave.
pub fn classify(script: &str, catalog: &Catalog) -> Result<Classification, Refused> {
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(Refusal::new(
            RefusalKind::TooLarge,
            format!(
                "the script is {} bytes; lockstep accepts at most {MAX_SCRIPT_BYTES}: split it",
                script.len()
            ),
        )
        .into());
    }
    if script.contains('\0') {
        return Err(Refusal::new(RefusalKind::Syntax, "the script contains a NUL byte").into());
    }
    let drafts: Vec<(String, Result<draft::Op, Refusal>)> = match catalog.engine {
        Engine::Postgres => {
            let parsed = pg::parse_script(script)?;
            let version = parsed.version;
            parsed
                .statements
                .into_iter()
                .map(|s| {
                    let op = match &s.node {
                        Some(n) => pg::draft(n, version),
                        None => Err(Refusal::new(RefusalKind::Syntax, "empty statement")),
                    };
                    (s.sql, op)
                })
                .collect()
        }
        Engine::Mysql => mysql::split(script)?
            .into_iter()
            .map(|sql| {
                let op = mysql::draft(&sql);
                (sql, op)
            })
            .collect(),
    };
    if drafts.is_empty() {
        return Err(Refusal::new(RefusalKind::Empty, "the script holds no statement").into());
    }
    if drafts.len() > MAX_STATEMENTS {
        return Err(Refusal::new(
            RefusalKind::TooLarge,
            format!(
                "the script holds {} statements; lockstep accepts at most {MAX_STATEMENTS}: split it",
                drafts.len()
            ),
        )
        .into());
    }
    let mut cat = catalog.clone();
    let mut refusals = Vec::new();
    let mut statements = Vec::new();
    for (index, (sql, op)) in drafts.into_iter().enumerate() {
        let changes = op.and_then(|op| resolve::resolve(op, &cat));
        match changes.and_then(|changes| statement(index, &sql, changes, &mut cat)) {
            Ok(s) => statements.push(s),
            Err(r) => refusals.push(r.at(index, &sql)),
        }
    }
    if !refusals.is_empty() {
        return Err(Refused { refusals });
    }
    Ok(Classification {
        engine: catalog.engine,
        statements,
        catalog_after: cat,
    })
}

/// Assess a statement's changes, check they share one strategy, and apply them to the
/// working catalog.
fn statement(
    index: usize,
    sql: &str,
    changes: Vec<Change>,
    cat: &mut Catalog,
) -> Result<Statement, Refusal> {
    let classified: Vec<ClassifiedChange> = changes.into_iter().map(|c| assess(c, cat)).collect();
    let Some(first) = classified.first() else {
        return Err(Refusal::new(
            RefusalKind::Unsupported,
            "the statement changes nothing",
        ));
    };
    let strategy = first.strategy;
    if let Some(other) = classified.iter().find(|c| c.strategy != strategy) {
        return Err(Refusal::new(
            RefusalKind::MixedStrategies,
            format!(
                "{} ({}) and {} ({}) need different plans: put them in separate statements",
                first.change.class_name(),
                first.strategy,
                other.change.class_name(),
                other.strategy
            ),
        ));
    }
    let risk = classified
        .iter()
        .map(|c| c.risk.clone())
        .max_by_key(|r| r.level)
        .unwrap_or_else(|| first.risk.clone());
    let concurrency = if classified
        .iter()
        .any(|c| c.concurrency == Concurrency::Structural)
    {
        Concurrency::Structural
    } else {
        Concurrency::NonStructural
    };
    let mut tables: Vec<QualifiedName> = Vec::new();
    for c in &classified {
        for t in c.change.tables() {
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
    }
    for c in &classified {
        cat.apply(&c.change);
    }
    let after = tables
        .iter()
        .map(|t| {
            let renamed = classified.iter().find_map(|c| match &c.change {
                Change::RenameTable { table, new_name } if table == t => {
                    Some(QualifiedName::new(t.schema.clone(), new_name.clone()))
                }
                _ => None,
            });
            let now = renamed.as_ref().unwrap_or(t);
            TableAfter {
                table: t.clone(),
                schema: cat.table(now).cloned(),
            }
        })
        .collect();
    Ok(Statement {
        index,
        sql: sql.to_string(),
        changes: classified,
        risk,
        strategy,
        concurrency,
        tables,
        after,
    })
}
