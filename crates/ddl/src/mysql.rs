//! MySQL / MariaDB front end (sqlparser, MySQL dialect). The script is tokenized, split at
//! top-level semicolons (so the original text of each statement is kept for execution) and
//! each piece is parsed on its own. Views and comments are not planned for MySQL sources yet.

use std::panic::{catch_unwind, AssertUnwindSafe};

use sqlparser::ast::{
    self as ast, AlterColumnOperation, AlterTableOperation, ColumnOption, DataType, Expr,
    ObjectName, ObjectNamePart, ObjectType, Statement, TableConstraint, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::draft::{Action, ColumnDraft, IndexDraft, NamedConstraint, ObjName, Op};
use crate::model::{ConstraintDef, DefaultValue, IndexKey, Literal, QualifiedName};
use crate::refusal::{Refusal, RefusalKind};
use crate::types::SqlType;

fn refuse(kind: RefusalKind, message: impl Into<String>) -> Refusal {
    Refusal::new(kind, message)
}

fn unsupported(message: impl Into<String>) -> Refusal {
    refuse(RefusalKind::Unsupported, message)
}

/// Parser nesting limit (sqlparser's default is 50).
const RECURSION_LIMIT: usize = 50;

/// Byte offset of a tokenizer location (1-based line and character column).
fn offset(text: &str, line_starts: &[usize], loc: Location) -> Option<usize> {
    let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
    let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
    let start = *line_starts.get(line)?;
    let rest = text.get(start..)?;
    match rest.char_indices().nth(col) {
        Some((i, _)) => Some(start + i),
        None => Some(text.len()),
    }
}

/// Split a script into statement texts. Executable comments (`/*! … */`, `/*M! … */`) are
/// refused: MySQL runs what they contain, and a classifier that reads them as comments would
/// let a second statement through unseen.
pub(crate) fn split(script: &str) -> Result<Vec<String>, Refusal> {
    if script.contains("/*!") || script.contains("/*M!") {
        return Err(refuse(
            RefusalKind::Unsafe,
            "executable comments (/*! … */, /*M! … */) are not accepted: MySQL runs their content",
        ));
    }
    let dialect = MySqlDialect {};
    let tokens = catch_unwind(AssertUnwindSafe(|| {
        Tokenizer::new(&dialect, script).tokenize_with_location()
    }))
    .map_err(|_| {
        refuse(
            RefusalKind::Internal,
            "the MySQL tokenizer failed on this input",
        )
    })?
    .map_err(|e| refuse(RefusalKind::Syntax, format!("syntax error: {e}")))?;
    let mut line_starts = vec![0usize];
    for (i, b) in script.bytes().enumerate() {
        if b == b'\n' {
            line_starts.push(i + 1);
        }
    }
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                if let Some(s) = start.take() {
                    let end = offset(script, &line_starts, t.span.start).ok_or_else(|| {
                        refuse(RefusalKind::Internal, "token location outside the script")
                    })?;
                    out.push(script.get(s..end).unwrap_or_default().trim().to_string());
                }
            }
            Token::Whitespace(_) => {}
            Token::EOF => {}
            _ => {
                if start.is_none() {
                    start = Some(offset(script, &line_starts, t.span.start).ok_or_else(|| {
                        refuse(RefusalKind::Internal, "token location outside the script")
                    })?);
                }
            }
        }
    }
    if let Some(s) = start {
        out.push(script.get(s..).unwrap_or_default().trim().to_string());
    }
    Ok(out)
}

/// Parse one statement's text into a draft.
pub(crate) fn draft(sql: &str) -> Result<Op, Refusal> {
    let dialect = MySqlDialect {};
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        Parser::new(&dialect)
            .with_recursion_limit(RECURSION_LIMIT)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements())
    }))
    .map_err(|_| {
        refuse(
            RefusalKind::Internal,
            "the MySQL parser failed on this input",
        )
    })?
    .map_err(|e| refuse(RefusalKind::Syntax, format!("syntax error: {e}")))?;
    let [stmt] = parsed.as_slice() else {
        return Err(refuse(
            RefusalKind::Syntax,
            "expected exactly one statement",
        ));
    };
    statement(stmt)
}

fn statement(stmt: &Statement) -> Result<Op, Refusal> {
    match stmt {
        Statement::CreateTable(ct) => create_table(ct),
        Statement::AlterTable(at) => alter_table(at),
        Statement::Drop {
            object_type,
            names,
            cascade,
            temporary,
            table,
            ..
        } => {
            if *cascade {
                return Err(refuse(RefusalKind::Unsafe, "DROP … CASCADE is not accepted"));
            }
            if *temporary {
                return Err(unsupported("temporary tables are not replicated"));
            }
            let [name] = names.as_slice() else {
                return Err(unsupported("drop one object per statement"));
            };
            let name = obj_name(name)?;
            match object_type {
                ObjectType::Table => Ok(Op::DropTable(name)),
                ObjectType::Index => Ok(Op::DropIndex {
                    index: ObjName {
                        schema: None,
                        name: name.name,
                    },
                    table: table.as_ref().map(obj_name).transpose()?,
                    concurrently: false,
                }),
                _ => Err(unsupported("only DROP TABLE and DROP INDEX are planned for MySQL sources")),
            }
        }
        Statement::Truncate(t) => {
            let mut names = Vec::new();
            for target in &t.table_names {
                names.push(obj_name(&target.name)?);
            }
            Ok(Op::Truncate(names))
        }
        Statement::RenameTable(renames) => {
            let [r] = renames.as_slice() else {
                return Err(unsupported("rename one table per statement"));
            };
            let new = obj_name(&r.new_name)?;
            Ok(Op::RenameTable {
                name: obj_name(&r.old_name)?,
                new_schema: new.schema,
                new_name: new.name,
            })
        }
        Statement::CreateIndex(ci) => {
            if !ci.include.is_empty() || ci.predicate.is_some() {
                return Err(unsupported("INCLUDE and partial indexes do not exist in MySQL"));
            }
            let mut keys = Vec::new();
            for c in &ci.columns {
                keys.push(index_key(c)?);
            }
            Ok(Op::CreateIndex {
                table: obj_name(&ci.table_name)?,
                index: IndexDraft {
                    name: ci.name.as_ref().map(|n| obj_name(n).map(|o| o.name)).transpose()?,
                    keys,
                    unique: ci.unique,
                    concurrently: false,
                    method: ci
                        .using
                        .as_ref()
                        .map(|u| u.to_string().to_ascii_lowercase())
                        .unwrap_or_else(|| "btree".into()),
                    include: Vec::new(),
                    predicate: None,
                    if_not_exists: ci.if_not_exists,
                },
            })
        }
        Statement::CreateView(_) => Err(unsupported(
            "views are not planned for MySQL sources yet: create them on both sides by hand",
        )),
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. } => Err(refuse(
            RefusalKind::TransactionControl,
            "transaction control (START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT) is not accepted: lockstep runs each statement itself",
        )),
        Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
            Err(refuse(
                RefusalKind::NotDdl,
                "not a schema change: lockstep applies DDL only",
            ))
        }
        Statement::Set(_) | Statement::Use(_) => Err(unsupported(
            "SET and USE are not accepted: lockstep sets up its own session",
        )),
        _ => Err(unsupported("lockstep does not plan this statement for MySQL sources")),
    }
}

fn ident(part: &ObjectNamePart) -> Result<String, Refusal> {
    match part {
        ObjectNamePart::Identifier(i) => Ok(i.value.clone()),
        ObjectNamePart::Function(_) => Err(unsupported("computed names are not accepted")),
    }
}

fn obj_name(n: &ObjectName) -> Result<ObjName, Refusal> {
    match n.0.as_slice() {
        [name] => Ok(ObjName {
            schema: None,
            name: ident(name)?,
        }),
        [schema, name] => Ok(ObjName {
            schema: Some(ident(schema)?),
            name: ident(name)?,
        }),
        _ => Err(unsupported(format!("{n}: unexpected name form"))),
    }
}

fn index_column_name(c: &ast::IndexColumn) -> Result<String, Refusal> {
    match &c.column.expr {
        Expr::Identifier(i) => Ok(i.value.clone()),
        other => Err(unsupported(format!("key {other} is not a plain column"))),
    }
}

fn index_key(c: &ast::IndexColumn) -> Result<IndexKey, Refusal> {
    Ok(match &c.column.expr {
        Expr::Identifier(i) => IndexKey::Column {
            name: i.value.clone(),
            descending: matches!(c.column.options.sort, Some(ast::OrderBySort::Desc)),
            opclass: None,
        },
        other => IndexKey::Expression(other.to_string()),
    })
}

fn length_u32(n: u64) -> Option<u32> {
    u32::try_from(n).ok()
}

/// A MySQL data type as data.
pub(crate) fn sql_type(dt: &DataType) -> Result<SqlType, Refusal> {
    use DataType as D;
    let int = |bytes: u8, unsigned: bool| SqlType::Int { bytes, unsigned };
    let char_len = |l: &Option<ast::CharacterLength>| match l {
        Some(ast::CharacterLength::IntegerLength { length, .. }) => length_u32(*length),
        _ => None,
    };
    let exact = |e: &ast::ExactNumberInfo| match e {
        ast::ExactNumberInfo::None => SqlType::Decimal {
            precision: Some(10),
            scale: Some(0),
        },
        ast::ExactNumberInfo::Precision(p) => SqlType::Decimal {
            precision: length_u32(*p),
            scale: Some(0),
        },
        ast::ExactNumberInfo::PrecisionAndScale(p, s) => SqlType::Decimal {
            precision: length_u32(*p),
            scale: u32::try_from(*s).ok(),
        },
    };
    Ok(match dt {
        D::TinyInt(_) => int(1, false),
        D::TinyIntUnsigned(_) => int(1, true),
        D::SmallInt(_) | D::Int2(_) => int(2, false),
        D::SmallIntUnsigned(_) => int(2, true),
        D::MediumInt(_) => int(3, false),
        D::MediumIntUnsigned(_) => int(3, true),
        D::Int(_) | D::Integer(_) | D::Int4(_) => int(4, false),
        D::IntUnsigned(_) | D::IntegerUnsigned(_) => int(4, true),
        D::BigInt(_) | D::Int8(_) => int(8, false),
        D::BigIntUnsigned(_) => int(8, true),
        D::Decimal(e) | D::Numeric(e) => exact(e),
        D::Float(_) | D::Float4 | D::Real => SqlType::Float { bytes: 4 },
        D::Double(_) | D::DoublePrecision | D::Float8 => SqlType::Float { bytes: 8 },
        D::Bool | D::Boolean => SqlType::Bool,
        D::Char(l) | D::Character(l) => SqlType::Char {
            length: char_len(l).unwrap_or(1),
        },
        D::Varchar(l) | D::CharacterVarying(l) => SqlType::Varchar {
            length: char_len(l),
        },
        D::TinyText => SqlType::Text {
            max_bytes: Some(255),
        },
        D::Text => SqlType::Text {
            max_bytes: Some(65_535),
        },
        D::MediumText => SqlType::Text {
            max_bytes: Some(16_777_215),
        },
        D::LongText => SqlType::Text {
            max_bytes: Some(4_294_967_295),
        },
        D::Binary(n) => SqlType::Binary { max_bytes: *n },
        D::Varbinary(Some(ast::BinaryLength::IntegerLength { length })) => SqlType::Binary {
            max_bytes: Some(*length),
        },
        D::TinyBlob => SqlType::Binary {
            max_bytes: Some(255),
        },
        D::Blob(_) => SqlType::Binary {
            max_bytes: Some(65_535),
        },
        D::MediumBlob => SqlType::Binary {
            max_bytes: Some(16_777_215),
        },
        D::LongBlob => SqlType::Binary {
            max_bytes: Some(4_294_967_295),
        },
        D::Date => SqlType::Date,
        D::Time(p, _) => SqlType::Time {
            precision: Some(p.and_then(length_u32).unwrap_or(0)),
            with_time_zone: false,
        },
        D::Datetime(p) => SqlType::Timestamp {
            precision: Some(p.and_then(length_u32).unwrap_or(0)),
            with_time_zone: false,
        },
        D::Timestamp(p, _) => SqlType::Timestamp {
            precision: Some(p.and_then(length_u32).unwrap_or(0)),
            with_time_zone: true,
        },
        D::JSON => SqlType::Json { binary: false },
        D::Uuid => SqlType::Uuid,
        other => SqlType::Other {
            name: other.to_string(),
        },
    })
}

fn literal(e: &Expr) -> Option<Literal> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(Literal::Number(n.clone())),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                Some(Literal::String(s.clone()))
            }
            Value::Boolean(b) => Some(Literal::Bool(*b)),
            Value::Null => Some(Literal::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Literal::Number(n) if !n.starts_with('-') => Some(Literal::Number(format!("-{n}"))),
            _ => None,
        },
        _ => None,
    }
}

fn column_def(
    name: &str,
    data_type: &DataType,
    options: &[ColumnOption],
) -> Result<ColumnDraft, Refusal> {
    let mut d = ColumnDraft {
        name: name.to_string(),
        data_type: sql_type(data_type)?,
        not_null: false,
        default: None,
        primary_key: false,
        constraints: Vec::new(),
    };
    for o in options {
        match o {
            ColumnOption::Null => d.not_null = false,
            ColumnOption::NotNull => d.not_null = true,
            ColumnOption::Default(e) => {
                d.default = Some(DefaultValue {
                    sql: e.to_string(),
                    constant: literal(e),
                    identity: false,
                })
            }
            ColumnOption::PrimaryKey(_) => d.primary_key = true,
            ColumnOption::Unique(_) => d.constraints.push(ConstraintDef::Unique {
                columns: vec![name.to_string()],
            }),
            ColumnOption::Check(c) => d.constraints.push(ConstraintDef::Check {
                expr: c.expr.to_string(),
            }),
            ColumnOption::ForeignKey(fk) => d.constraints.push(ConstraintDef::ForeignKey {
                columns: vec![name.to_string()],
                references: referenced(&fk.foreign_table)?,
                referenced_columns: fk
                    .referred_columns
                    .iter()
                    .map(|i| i.value.clone())
                    .collect(),
            }),
            ColumnOption::DialectSpecific(tokens)
                if tokens
                    .iter()
                    .any(|t| t.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")) =>
            {
                d.not_null = true;
                d.default = Some(DefaultValue {
                    sql: "AUTO_INCREMENT".into(),
                    constant: None,
                    identity: true,
                });
            }
            ColumnOption::CharacterSet(_)
            | ColumnOption::Collation(_)
            | ColumnOption::Comment(_)
            | ColumnOption::OnUpdate(_) => {}
            ColumnOption::Generated { .. } => {
                return Err(unsupported(format!(
                    "generated column {name}: its values are computed on each side; not supported"
                )))
            }
            other => {
                return Err(unsupported(format!(
                    "column {name}: option {other} is not supported"
                )))
            }
        }
    }
    Ok(d)
}

fn options_of(defs: &[ast::ColumnOptionDef]) -> Vec<ColumnOption> {
    defs.iter().map(|o| o.option.clone()).collect()
}

fn referenced(n: &ObjectName) -> Result<QualifiedName, Refusal> {
    let o = obj_name(n)?;
    Ok(QualifiedName::new(o.schema.unwrap_or_default(), o.name))
}

enum TableKey {
    Primary(Option<String>, Vec<String>),
    Other(NamedConstraint),
    Index(IndexDraft),
}

fn table_constraint(c: &TableConstraint) -> Result<TableKey, Refusal> {
    let cols = |v: &[ast::IndexColumn]| -> Result<Vec<String>, Refusal> {
        v.iter().map(index_column_name).collect()
    };
    Ok(match c {
        TableConstraint::PrimaryKey(pk) => TableKey::Primary(
            pk.name.as_ref().map(|n| n.value.clone()),
            cols(&pk.columns)?,
        ),
        TableConstraint::Unique(u) => TableKey::Other(NamedConstraint {
            name: u
                .name
                .as_ref()
                .or(u.index_name.as_ref())
                .map(|n| n.value.clone()),
            def: ConstraintDef::Unique {
                columns: cols(&u.columns)?,
            },
        }),
        TableConstraint::ForeignKey(fk) => TableKey::Other(NamedConstraint {
            name: fk.name.as_ref().map(|n| n.value.clone()),
            def: ConstraintDef::ForeignKey {
                columns: fk.columns.iter().map(|i| i.value.clone()).collect(),
                references: referenced(&fk.foreign_table)?,
                referenced_columns: fk
                    .referred_columns
                    .iter()
                    .map(|i| i.value.clone())
                    .collect(),
            },
        }),
        TableConstraint::Check(ch) => TableKey::Other(NamedConstraint {
            name: ch.name.as_ref().map(|n| n.value.clone()),
            def: ConstraintDef::Check {
                expr: ch.expr.to_string(),
            },
        }),
        TableConstraint::Index(ix) => {
            let mut keys = Vec::new();
            for c in &ix.columns {
                keys.push(index_key(c)?);
            }
            TableKey::Index(IndexDraft {
                name: ix.name.as_ref().map(|n| n.value.clone()),
                keys,
                unique: false,
                concurrently: false,
                method: "btree".into(),
                include: Vec::new(),
                predicate: None,
                if_not_exists: false,
            })
        }
        _ => {
            return Err(unsupported(
                "this key form (FULLTEXT, SPATIAL, USING INDEX…) is not supported",
            ))
        }
    })
}

fn create_table(ct: &ast::CreateTable) -> Result<Op, Refusal> {
    if ct.temporary {
        return Err(unsupported("temporary tables are not replicated"));
    }
    if ct.query.is_some() || ct.like.is_some() || ct.clone.is_some() {
        return Err(unsupported(
            "CREATE TABLE … AS / LIKE: spell out the columns and the primary key",
        ));
    }
    let mut columns = Vec::new();
    for c in &ct.columns {
        columns.push(column_def(
            &c.name.value,
            &c.data_type,
            &options_of(&c.options),
        )?);
    }
    let mut primary_key = None;
    let mut constraints = Vec::new();
    for c in &ct.constraints {
        match table_constraint(c)? {
            TableKey::Primary(_, cols) => {
                if primary_key.is_some() {
                    return Err(refuse(RefusalKind::Syntax, "two primary keys"));
                }
                primary_key = Some(cols);
            }
            TableKey::Other(nc) => constraints.push(nc),
            TableKey::Index(_) => {
                return Err(unsupported(
                    "indexes declared in CREATE TABLE are not mirrored: create the table, then each index with CREATE INDEX",
                ))
            }
        }
    }
    Ok(Op::CreateTable {
        name: obj_name(&ct.name)?,
        columns,
        primary_key,
        constraints,
    })
}

fn alter_table(at: &ast::AlterTable) -> Result<Op, Refusal> {
    let name = obj_name(&at.name)?;
    if let [AlterTableOperation::RenameTable { table_name }] = at.operations.as_slice() {
        let new = match table_name {
            ast::RenameTableNameKind::To(n) | ast::RenameTableNameKind::As(n) => obj_name(n)?,
        };
        return Ok(Op::RenameTable {
            name,
            new_schema: new.schema,
            new_name: new.name,
        });
    }
    let mut actions = Vec::new();
    for op in &at.operations {
        match op {
            AlterTableOperation::AddColumn { column_def: c, .. } => {
                actions.push(Action::AddColumn(column_def(
                    &c.name.value,
                    &c.data_type,
                    &options_of(&c.options),
                )?))
            }
            AlterTableOperation::DropColumn {
                column_names,
                drop_behavior,
                ..
            } => {
                if matches!(drop_behavior, Some(ast::DropBehavior::Cascade)) {
                    return Err(refuse(
                        RefusalKind::Unsafe,
                        "DROP COLUMN … CASCADE is not accepted",
                    ));
                }
                for c in column_names {
                    actions.push(Action::DropColumn(c.value.clone()));
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => actions.push(Action::RenameColumn {
                old: old_column_name.value.clone(),
                new: new_column_name.value.clone(),
            }),
            AlterTableOperation::ChangeColumn {
                old_name,
                new_name,
                data_type,
                options,
                ..
            } => actions.push(Action::Redefine {
                column: old_name.value.clone(),
                new: column_def(&new_name.value, data_type, options)?,
            }),
            AlterTableOperation::ModifyColumn {
                col_name,
                data_type,
                options,
                ..
            } => actions.push(Action::Redefine {
                column: col_name.value.clone(),
                new: column_def(&col_name.value, data_type, options)?,
            }),
            AlterTableOperation::AlterColumn { column_name, op } => {
                let c = column_name.value.clone();
                actions.push(match op {
                    AlterColumnOperation::SetDefault { value } => Action::SetDefault(
                        c,
                        DefaultValue {
                            sql: value.to_string(),
                            constant: literal(value),
                            identity: false,
                        },
                    ),
                    AlterColumnOperation::DropDefault => Action::DropDefault(c),
                    AlterColumnOperation::SetNotNull => Action::SetNotNull(c),
                    AlterColumnOperation::DropNotNull => Action::DropNotNull(c),
                    AlterColumnOperation::SetDataType {
                        data_type, using, ..
                    } => {
                        if using.is_some() {
                            return Err(unsupported("USING is PostgreSQL syntax"));
                        }
                        Action::AlterType {
                            column: c,
                            new_type: sql_type(data_type)?,
                            using: None,
                        }
                    }
                    _ => return Err(unsupported("this ALTER COLUMN form is not supported")),
                });
            }
            AlterTableOperation::AddConstraint {
                constraint,
                not_valid,
            } => actions.push(match table_constraint(constraint)? {
                TableKey::Primary(name, columns) => Action::AddPrimaryKey {
                    name,
                    columns,
                    using_index: None,
                },
                TableKey::Other(c) => Action::AddConstraint {
                    constraint: c,
                    not_valid: *not_valid,
                },
                TableKey::Index(ix) => Action::AddIndex(ix),
            }),
            AlterTableOperation::DropPrimaryKey { .. } => actions.push(Action::DropPrimaryKey),
            AlterTableOperation::DropForeignKey { name, .. }
            | AlterTableOperation::DropConstraint { name, .. } => {
                actions.push(Action::DropConstraint(name.value.clone()))
            }
            AlterTableOperation::DropIndex { name } => {
                actions.push(Action::DropIndex(name.value.clone()))
            }
            AlterTableOperation::Algorithm { .. } | AlterTableOperation::Lock { .. } => {}
            AlterTableOperation::RenameTable { .. } => {
                return Err(unsupported("rename the table in its own statement"))
            }
            other => {
                return Err(unsupported(format!(
                    "ALTER TABLE {other} is not planned by lockstep"
                )))
            }
        }
    }
    Ok(Op::AlterTable { name, actions })
}
