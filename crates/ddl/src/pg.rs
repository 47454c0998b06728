//! PostgreSQL front end: the script is parsed once with `pg_query` (PostgreSQL's own parser),
//! which gives each statement's location, and each statement's parse tree becomes a draft.
//! Only the statement forms lockstep plans are accepted; everything else is refused by name.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pg_query::protobuf as pb;
use pg_query::NodeEnum;

use crate::draft::{Action, ColumnDraft, CommentDraft, IndexDraft, NamedConstraint, ObjName, Op};
use crate::model::{
    ConstraintDef, DefaultValue, IndexKey, Literal, QualifiedName, ReplicaIdentity,
};
use crate::refusal::{excerpt, Refusal, RefusalKind};
use crate::types::SqlType;

fn refuse(kind: RefusalKind, message: impl Into<String>) -> Refusal {
    Refusal::new(kind, message)
}

fn unsupported(message: impl Into<String>) -> Refusal {
    refuse(RefusalKind::Unsupported, message)
}

/// One statement of a script: its text and its parse tree.
pub(crate) struct PgStatement {
    pub sql: String,
    pub node: Option<NodeEnum>,
}

pub(crate) struct PgScript {
    pub version: i32,
    pub statements: Vec<PgStatement>,
}

fn parse_error_message(e: &pg_query::Error) -> String {
    match e {
        pg_query::Error::Parse(m) | pg_query::Error::Split(m) | pg_query::Error::Scan(m) => {
            m.clone()
        }
        pg_query::Error::Conversion(_) => "the text contains a NUL byte".to_string(),
        other => other.to_string(),
    }
}

/// Parse a whole script. A syntax error is reported with the statement it is in.
pub(crate) fn parse_script(script: &str) -> Result<PgScript, Refusal> {
    let parsed = catch_unwind(AssertUnwindSafe(|| pg_query::parse(script, 0))).map_err(|_| {
        refuse(
            RefusalKind::Internal,
            "the PostgreSQL parser failed on this input",
        )
    })?;
    let result = match parsed {
        Ok(r) => r,
        Err(e) => return Err(locate_syntax_error(script, &e)),
    };
    let version = result.protobuf.version;
    let mut statements = Vec::new();
    for raw in result.protobuf.stmts {
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => script.len(),
            Ok(n) => start.saturating_add(n),
        };
        let sql = script
            .get(start..end)
            .ok_or_else(|| {
                refuse(
                    RefusalKind::Internal,
                    "statement location outside the script",
                )
            })?
            .trim()
            .to_string();
        statements.push(PgStatement {
            sql,
            node: raw.stmt.and_then(|n| n.node),
        });
    }
    Ok(PgScript {
        version,
        statements,
    })
}

/// Find which statement a syntax error is in: split with the scanner (which tolerates
/// garbage) and parse the pieces one by one.
fn locate_syntax_error(script: &str, e: &pg_query::Error) -> Refusal {
    let message = format!("syntax error: {}", parse_error_message(e));
    let pieces = catch_unwind(AssertUnwindSafe(|| {
        pg_query::split_with_scanner(script)
            .map(|v| v.into_iter().map(str::to_string).collect::<Vec<_>>())
    }));
    if let Ok(Ok(pieces)) = pieces {
        for (i, piece) in pieces.iter().enumerate() {
            let r = catch_unwind(AssertUnwindSafe(|| pg_query::parse(piece, 0)));
            if let Ok(Err(pe)) = r {
                return refuse(
                    RefusalKind::Syntax,
                    format!("syntax error: {}", parse_error_message(&pe)),
                )
                .at(i, piece);
            }
        }
    }
    refuse(RefusalKind::Syntax, message)
}

/// At most this many characters of a node's debug form are rendered to name its kind.
struct Prefix(String);

impl std::fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.push_str(s);
        if self.0.len() > 64 {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The parse node's kind (`CreateFunctionStmt`...), for messages.
fn kind_name(node: &NodeEnum) -> String {
    let mut p = Prefix(String::new());
    let _ = write!(p, "{node:?}");
    p.0.split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("unknown")
        .to_string()
}

/// Turn one statement's tree into a draft.
pub(crate) fn draft(node: &NodeEnum, version: i32) -> Result<Op, Refusal> {
    let cx = Cx { version };
    match node {
        NodeEnum::CreateStmt(s) => cx.create_table(s),
        NodeEnum::AlterTableStmt(s) => cx.alter_table(s),
        NodeEnum::RenameStmt(s) => cx.rename(s),
        NodeEnum::DropStmt(s) => cx.drop(s),
        NodeEnum::TruncateStmt(s) => {
            if s.behavior == pb::DropBehavior::DropCascade as i32 {
                return Err(refuse(
                    RefusalKind::Unsafe,
                    "TRUNCATE … CASCADE also empties tables that reference these through foreign keys; name every table instead",
                ));
            }
            let mut names = Vec::new();
            for r in &s.relations {
                match &r.node {
                    Some(NodeEnum::RangeVar(rv)) => names.push(range_var(rv)?),
                    _ => return Err(unsupported("TRUNCATE of something other than a table")),
                }
            }
            Ok(Op::Truncate(names))
        }
        NodeEnum::IndexStmt(s) => cx.create_index(s),
        NodeEnum::ViewStmt(s) => cx.create_view(s),
        NodeEnum::CommentStmt(s) => comment(s),
        NodeEnum::TransactionStmt(_) => Err(refuse(
            RefusalKind::TransactionControl,
            "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT…) is not accepted: lockstep runs each statement in its own transaction, in step with the pipeline",
        )),
        NodeEnum::SelectStmt(_)
        | NodeEnum::InsertStmt(_)
        | NodeEnum::UpdateStmt(_)
        | NodeEnum::DeleteStmt(_)
        | NodeEnum::MergeStmt(_)
        | NodeEnum::CopyStmt(_)
        | NodeEnum::ExplainStmt(_)
        | NodeEnum::CallStmt(_) => Err(refuse(
            RefusalKind::NotDdl,
            format!(
                "{} is not a schema change: lockstep applies DDL only; run data changes through the application or psql",
                kind_name(node)
            ),
        )),
        NodeEnum::DoStmt(_) => Err(refuse(
            RefusalKind::Unsupported,
            "DO blocks can run anything: lockstep cannot classify them; write the DDL statements themselves",
        )),
        NodeEnum::VariableSetStmt(_) => Err(unsupported(
            "SET is not accepted: lockstep sets lock_timeout and search_path for its own session",
        )),
        NodeEnum::CreateTableAsStmt(_) => Err(unsupported(
            "CREATE TABLE … AS / CREATE MATERIALIZED VIEW: create the table with CREATE TABLE (with a primary key), then fill it",
        )),
        other => Err(unsupported(format!(
            "lockstep does not plan {} statements; run it outside lockstep if it does not touch replicated tables",
            kind_name(other)
        ))),
    }
}

fn strings(nodes: &[pb::Node]) -> Option<Vec<String>> {
    nodes
        .iter()
        .map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

fn range_var(rv: &pb::RangeVar) -> Result<ObjName, Refusal> {
    if !rv.catalogname.is_empty() {
        return Err(unsupported(format!(
            "{}.{}.{}: names qualified with a database are not accepted",
            rv.catalogname, rv.schemaname, rv.relname
        )));
    }
    Ok(ObjName {
        schema: (!rv.schemaname.is_empty()).then(|| rv.schemaname.clone()),
        name: rv.relname.clone(),
    })
}

/// `[schema.]name` from a dotted name list (DROP, COMMENT).
fn obj_name(parts: &[String]) -> Result<ObjName, Refusal> {
    match parts {
        [name] => Ok(ObjName {
            schema: None,
            name: name.clone(),
        }),
        [schema, name] => Ok(ObjName {
            schema: Some(schema.clone()),
            name: name.clone(),
        }),
        _ => Err(unsupported(format!(
            "{}: names qualified with a database are not accepted",
            parts.join(".")
        ))),
    }
}

fn int_const(n: &pb::Node) -> Option<i64> {
    match &n.node {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(pb::a_const::Val::Ival(i)) => Some(i64::from(i.ival)),
            _ => None,
        },
        _ => None,
    }
}

/// A PostgreSQL type name as data. `serial` types come back as their integer type with
/// `serial: true` (they imply a sequence default and NOT NULL).
pub(crate) fn sql_type(tn: &pb::TypeName) -> Result<(SqlType, bool), Refusal> {
    if tn.setof || tn.pct_type {
        return Err(unsupported("SETOF and %TYPE are not column types"));
    }
    let names = strings(&tn.names).ok_or_else(|| unsupported("unreadable type name"))?;
    let mods: Option<Vec<i64>> = tn.typmods.iter().map(int_const).collect();
    let base = match names.as_slice() {
        [schema, name] if schema == "pg_catalog" => Some(name.as_str()),
        [name] => Some(name.as_str()),
        _ => None,
    };
    let m = |i: usize| -> Option<u32> {
        mods.as_ref()
            .and_then(|m| m.get(i))
            .and_then(|v| u32::try_from(*v).ok())
    };
    let no_mods = tn.typmods.is_empty();
    let mut serial = false;
    let t = match base {
        Some("int2") if no_mods => SqlType::int(2),
        Some("int4") if no_mods => SqlType::int(4),
        Some("int8") if no_mods => SqlType::int(8),
        Some("smallserial" | "serial2") if no_mods => {
            serial = true;
            SqlType::int(2)
        }
        Some("serial" | "serial4") if no_mods => {
            serial = true;
            SqlType::int(4)
        }
        Some("bigserial" | "serial8") if no_mods => {
            serial = true;
            SqlType::int(8)
        }
        Some("numeric" | "decimal") if mods.is_some() && tn.typmods.len() <= 2 => {
            SqlType::Decimal {
                precision: m(0),
                scale: if no_mods {
                    None
                } else {
                    Some(m(1).unwrap_or(0))
                },
            }
        }
        Some("float4") if no_mods => SqlType::Float { bytes: 4 },
        Some("float8") if no_mods => SqlType::Float { bytes: 8 },
        Some("bool") if no_mods => SqlType::Bool,
        Some("bpchar") if tn.typmods.len() <= 1 && mods.is_some() => SqlType::Char {
            length: m(0).unwrap_or(1),
        },
        Some("varchar") if tn.typmods.len() <= 1 && mods.is_some() => {
            SqlType::Varchar { length: m(0) }
        }
        Some("text") if no_mods => SqlType::Text { max_bytes: None },
        Some("bytea") if no_mods => SqlType::Binary { max_bytes: None },
        Some("date") if no_mods => SqlType::Date,
        Some(t @ ("time" | "timetz" | "timestamp" | "timestamptz"))
            if tn.typmods.len() <= 1 && mods.is_some() =>
        {
            let precision = m(0);
            let with_time_zone = t.ends_with("tz");
            if t.starts_with("timestamp") {
                SqlType::Timestamp {
                    precision,
                    with_time_zone,
                }
            } else {
                SqlType::Time {
                    precision,
                    with_time_zone,
                }
            }
        }
        Some("interval") => SqlType::Interval,
        Some("uuid") if no_mods => SqlType::Uuid,
        Some("json") if no_mods => SqlType::Json { binary: false },
        Some("jsonb") if no_mods => SqlType::Json { binary: true },
        _ => {
            let mut name = names.join(".");
            if let Some(mods) = &mods {
                if !mods.is_empty() {
                    let m: Vec<String> = mods.iter().map(|v| v.to_string()).collect();
                    name.push_str(&format!("({})", m.join(",")));
                }
            }
            SqlType::Other { name }
        }
    };
    if !tn.array_bounds.is_empty() {
        if serial {
            return Err(unsupported("arrays of serial types do not exist"));
        }
        return Ok((
            SqlType::Array {
                element: Box::new(t),
            },
            false,
        ));
    }
    Ok((t, serial))
}

/// Parse a type written in PostgreSQL syntax (`character varying(20)`, `numeric(10,2)`,
/// `timestamp with time zone`, `text[]`), as `format_type` prints them in the catalog.
pub fn parse_type(text: &str) -> Result<SqlType, Refusal> {
    if text.contains(';') || text.len() > 200 {
        return Err(refuse(
            RefusalKind::Syntax,
            format!("not a type name: {text}"),
        ));
    }
    let sql = format!("SELECT NULL::{text}");
    let parsed = catch_unwind(AssertUnwindSafe(|| pg_query::parse(&sql, 0)))
        .map_err(|_| {
            refuse(
                RefusalKind::Internal,
                "the PostgreSQL parser failed on a type name",
            )
        })?
        .map_err(|e| {
            refuse(
                RefusalKind::Syntax,
                format!("not a type name: {text}: {}", parse_error_message(&e)),
            )
        })?;
    let not_a_type = || refuse(RefusalKind::Syntax, format!("not a type name: {text}"));
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return Err(not_a_type());
    };
    let Some(NodeEnum::SelectStmt(sel)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        return Err(not_a_type());
    };
    let [target] = sel.target_list.as_slice() else {
        return Err(not_a_type());
    };
    let Some(NodeEnum::ResTarget(rt)) = &target.node else {
        return Err(not_a_type());
    };
    if !rt.name.is_empty() || sel.from_clause.len() + sel.target_list.len() != 1 {
        return Err(not_a_type());
    }
    let Some(NodeEnum::TypeCast(tc)) = rt.val.as_ref().and_then(|v| v.node.as_ref()) else {
        return Err(not_a_type());
    };
    let tn = tc.type_name.as_ref().ok_or_else(not_a_type)?;
    Ok(sql_type(tn)?.0)
}

/// Read a column default as the catalog prints it (`pg_get_expr(adbin, adrelid)`:
/// `'x'::text`, `0`, `now()`, `nextval('t_id_seq'::regclass)`). The text is kept verbatim;
/// `constant` is set when it is a literal (or a cast literal), `identity` for a sequence.
pub fn parse_default(text: &str) -> Result<DefaultValue, Refusal> {
    let not_an_expression = || {
        refuse(
            RefusalKind::Syntax,
            format!("not a default expression: {}", excerpt(text)),
        )
    };
    if text.contains(';') || text.len() > 4096 {
        return Err(not_an_expression());
    }
    let sql = format!("SELECT {text}");
    let parsed = catch_unwind(AssertUnwindSafe(|| pg_query::parse(&sql, 0)))
        .map_err(|_| {
            refuse(
                RefusalKind::Internal,
                "the PostgreSQL parser failed on a default expression",
            )
        })?
        .map_err(|_| not_an_expression())?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return Err(not_an_expression());
    };
    let Some(NodeEnum::SelectStmt(sel)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
        return Err(not_an_expression());
    };
    let [target] = sel.target_list.as_slice() else {
        return Err(not_an_expression());
    };
    let Some(NodeEnum::ResTarget(rt)) = &target.node else {
        return Err(not_an_expression());
    };
    if !sel.from_clause.is_empty() {
        return Err(not_an_expression());
    }
    let node = rt.val.as_ref().ok_or_else(not_an_expression)?;
    let identity = match &node.node {
        Some(NodeEnum::FuncCall(fc)) => strings(&fc.funcname)
            .is_some_and(|n| n.last().is_some_and(|l| l.eq_ignore_ascii_case("nextval"))),
        _ => false,
    };
    Ok(DefaultValue {
        sql: text.to_string(),
        constant: if identity { None } else { constant(node) },
        identity,
    })
}

fn literal(c: &pb::AConst) -> Option<Literal> {
    if c.isnull {
        return Some(Literal::Null);
    }
    match c.val.as_ref()? {
        pb::a_const::Val::Ival(i) => Some(Literal::Number(i.ival.to_string())),
        pb::a_const::Val::Fval(f) => Some(Literal::Number(f.fval.clone())),
        pb::a_const::Val::Boolval(b) => Some(Literal::Bool(b.boolval)),
        pb::a_const::Val::Sval(s) => Some(Literal::String(s.sval.clone())),
        pb::a_const::Val::Bsval(_) => None,
    }
}

/// Date/time input strings that PostgreSQL evaluates at the moment the cast runs.
fn time_dependent_input(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "now" | "today" | "tomorrow" | "yesterday"
    )
}

/// A constant default's value, or `None` when it is computed.
fn constant(node: &pb::Node) -> Option<Literal> {
    match node.node.as_ref()? {
        // 'now', 'today'… are read when the default is first evaluated, whatever the type.
        NodeEnum::AConst(c) => {
            literal(c).filter(|l| !matches!(l, Literal::String(s) if time_dependent_input(s)))
        }
        NodeEnum::TypeCast(tc) => {
            let inner = tc.arg.as_ref()?;
            let Some(NodeEnum::AConst(c)) = &inner.node else {
                return None;
            };
            let lit = literal(c)?;
            if let Literal::String(s) = &lit {
                if time_dependent_input(s) {
                    return None;
                }
            }
            Some(lit)
        }
        _ => None,
    }
}

/// Whether a USING expression only reads (or casts) the column itself.
fn trivial_using(node: &pb::Node, column: &str) -> bool {
    match &node.node {
        Some(NodeEnum::ColumnRef(cr)) => {
            strings(&cr.fields).is_some_and(|f| f.last().is_some_and(|l| l == column))
        }
        Some(NodeEnum::TypeCast(tc)) => tc.arg.as_ref().is_some_and(|a| trivial_using(a, column)),
        _ => false,
    }
}

struct Cx {
    version: i32,
}

impl Cx {
    fn deparse_root(&self, node: NodeEnum) -> Result<String, Refusal> {
        let pr = pb::ParseResult {
            version: self.version,
            stmts: vec![pb::RawStmt {
                stmt: Some(Box::new(pb::Node { node: Some(node) })),
                stmt_location: 0,
                stmt_len: 0,
            }],
        };
        catch_unwind(AssertUnwindSafe(|| {
            pg_query::deparse(&pr, Default::default())
        }))
        .map_err(|_| refuse(RefusalKind::Internal, "the PostgreSQL deparser failed"))?
        .map_err(|e| {
            refuse(
                RefusalKind::Internal,
                format!("cannot restate an expression: {e}"),
            )
        })
    }

    /// An expression's text, as PostgreSQL prints it.
    fn expr(&self, node: &pb::Node) -> Result<String, Refusal> {
        let sel = pb::SelectStmt {
            target_list: vec![pb::Node {
                node: Some(NodeEnum::ResTarget(Box::new(pb::ResTarget {
                    val: Some(Box::new(node.clone())),
                    ..Default::default()
                }))),
            }],
            op: pb::SetOperation::SetopNone as i32,
            limit_option: pb::LimitOption::Default as i32,
            ..Default::default()
        };
        let text = self.deparse_root(NodeEnum::SelectStmt(Box::new(sel)))?;
        Ok(text
            .strip_prefix("SELECT ")
            .map(str::to_string)
            .unwrap_or(text))
    }

    fn default_value(&self, node: &pb::Node) -> Result<DefaultValue, Refusal> {
        Ok(DefaultValue {
            sql: self.expr(node)?,
            constant: constant(node),
            identity: false,
        })
    }

    fn column_def(&self, cd: &pb::ColumnDef) -> Result<ColumnDraft, Refusal> {
        let tn = cd
            .type_name
            .as_ref()
            .ok_or_else(|| unsupported(format!("column {} has no type", cd.colname)))?;
        let (data_type, serial) = sql_type(tn)?;
        if !cd.generated.is_empty() {
            return Err(unsupported(format!(
                "generated column {}: its values are computed on each side and are not carried by change events the same way; not supported",
                cd.colname
            )));
        }
        let mut d = ColumnDraft {
            name: cd.colname.clone(),
            data_type,
            not_null: cd.is_not_null || serial,
            default: None,
            primary_key: false,
            constraints: Vec::new(),
        };
        if serial {
            d.default = Some(DefaultValue {
                sql: "nextval(<serial sequence>)".into(),
                constant: None,
                identity: true,
            });
        }
        if let Some(raw) = &cd.raw_default {
            d.default = Some(self.default_value(raw)?);
        }
        if !cd.identity.is_empty() {
            d.not_null = true;
            d.default = Some(DefaultValue {
                sql: "GENERATED AS IDENTITY".into(),
                constant: None,
                identity: true,
            });
        }
        for c in &cd.constraints {
            let Some(NodeEnum::Constraint(con)) = &c.node else {
                return Err(unsupported("unreadable column constraint"));
            };
            let ty = pb::ConstrType::try_from(con.contype).unwrap_or(pb::ConstrType::Undefined);
            match ty {
                pb::ConstrType::ConstrNotnull => d.not_null = true,
                pb::ConstrType::ConstrNull => d.not_null = false,
                pb::ConstrType::ConstrDefault => {
                    let e = con
                        .raw_expr
                        .as_ref()
                        .ok_or_else(|| unsupported("DEFAULT without an expression"))?;
                    d.default = Some(self.default_value(e)?);
                }
                pb::ConstrType::ConstrIdentity => {
                    d.not_null = true;
                    d.default = Some(DefaultValue {
                        sql: "GENERATED AS IDENTITY".into(),
                        constant: None,
                        identity: true,
                    });
                }
                pb::ConstrType::ConstrGenerated => {
                    return Err(unsupported(format!(
                        "generated column {}: its values are computed on each side; not supported",
                        cd.colname
                    )))
                }
                pb::ConstrType::ConstrPrimary => d.primary_key = true,
                pb::ConstrType::ConstrUnique => d.constraints.push(ConstraintDef::Unique {
                    columns: vec![cd.colname.clone()],
                }),
                pb::ConstrType::ConstrCheck => {
                    let e = con
                        .raw_expr
                        .as_ref()
                        .ok_or_else(|| unsupported("CHECK without an expression"))?;
                    d.constraints.push(ConstraintDef::Check {
                        expr: self.expr(e)?,
                    });
                }
                pb::ConstrType::ConstrForeign => {
                    let pk = con
                        .pktable
                        .as_ref()
                        .ok_or_else(|| unsupported("REFERENCES without a table"))?;
                    d.constraints.push(ConstraintDef::ForeignKey {
                        columns: vec![cd.colname.clone()],
                        references: self.referenced(pk)?,
                        referenced_columns: strings(&con.pk_attrs).unwrap_or_default(),
                    });
                }
                pb::ConstrType::ConstrAttrDeferrable
                | pb::ConstrType::ConstrAttrNotDeferrable
                | pb::ConstrType::ConstrAttrDeferred
                | pb::ConstrType::ConstrAttrImmediate
                | pb::ConstrType::ConstrAttrEnforced => {}
                _ => {
                    return Err(unsupported(format!(
                        "column {}: constraint form not supported",
                        cd.colname
                    )))
                }
            }
        }
        Ok(d)
    }

    /// A referenced table in a foreign key; unqualified names keep an empty schema, which
    /// `resolve` reads as "search path".
    fn referenced(&self, rv: &pb::RangeVar) -> Result<QualifiedName, Refusal> {
        let n = range_var(rv)?;
        Ok(QualifiedName::new(n.schema.unwrap_or_default(), n.name))
    }

    /// A table constraint (CREATE TABLE … CONSTRAINT, ALTER TABLE … ADD CONSTRAINT).
    fn table_constraint(&self, con: &pb::Constraint) -> Result<TableConstraint, Refusal> {
        let ty = pb::ConstrType::try_from(con.contype).unwrap_or(pb::ConstrType::Undefined);
        let name = (!con.conname.is_empty()).then(|| con.conname.clone());
        let keys =
            || strings(&con.keys).ok_or_else(|| unsupported("unreadable constraint columns"));
        Ok(match ty {
            pb::ConstrType::ConstrPrimary => TableConstraint::PrimaryKey {
                name,
                columns: keys()?,
                using_index: (!con.indexname.is_empty()).then(|| con.indexname.clone()),
            },
            pb::ConstrType::ConstrUnique => {
                if !con.indexname.is_empty() {
                    return Err(unsupported(
                        "ADD CONSTRAINT … UNIQUE USING INDEX is not supported",
                    ));
                }
                TableConstraint::Other(NamedConstraint {
                    name,
                    def: ConstraintDef::Unique { columns: keys()? },
                })
            }
            pb::ConstrType::ConstrCheck => {
                let e = con
                    .raw_expr
                    .as_ref()
                    .ok_or_else(|| unsupported("CHECK without an expression"))?;
                TableConstraint::Other(NamedConstraint {
                    name,
                    def: ConstraintDef::Check {
                        expr: self.expr(e)?,
                    },
                })
            }
            pb::ConstrType::ConstrForeign => {
                let pk = con
                    .pktable
                    .as_ref()
                    .ok_or_else(|| unsupported("FOREIGN KEY without a referenced table"))?;
                TableConstraint::Other(NamedConstraint {
                    name,
                    def: ConstraintDef::ForeignKey {
                        columns: strings(&con.fk_attrs)
                            .ok_or_else(|| unsupported("unreadable foreign key columns"))?,
                        references: self.referenced(pk)?,
                        referenced_columns: strings(&con.pk_attrs).unwrap_or_default(),
                    },
                })
            }
            _ => {
                return Err(unsupported(
                    "this constraint form (EXCLUDE, NOT NULL constraint…) is not supported",
                ))
            }
        })
    }

    fn create_table(&self, s: &pb::CreateStmt) -> Result<Op, Refusal> {
        let rv = s
            .relation
            .as_ref()
            .ok_or_else(|| unsupported("CREATE TABLE without a name"))?;
        match rv.relpersistence.as_str() {
            "t" => return Err(unsupported("temporary tables are not replicated")),
            "u" => {
                return Err(unsupported(
                    "unlogged tables are not written to the WAL, so logical decoding cannot capture them",
                ))
            }
            _ => {}
        }
        if !s.inh_relations.is_empty() || s.partbound.is_some() || s.partspec.is_some() {
            return Err(unsupported(
                "inheritance and partitioning (INHERITS, PARTITION BY, PARTITION OF) are not supported",
            ));
        }
        if s.of_typename.is_some() {
            return Err(unsupported(
                "typed tables (CREATE TABLE … OF type) are not supported",
            ));
        }
        let name = range_var(rv)?;
        let mut columns = Vec::new();
        let mut primary_key = None;
        let mut constraints = Vec::new();
        for e in &s.table_elts {
            match &e.node {
                Some(NodeEnum::ColumnDef(cd)) => columns.push(self.column_def(cd)?),
                Some(NodeEnum::Constraint(con)) => match self.table_constraint(con)? {
                    TableConstraint::PrimaryKey {
                        columns: k,
                        using_index: None,
                        ..
                    } => {
                        if primary_key.is_some() {
                            return Err(refuse(RefusalKind::Syntax, "two primary keys"));
                        }
                        primary_key = Some(k);
                    }
                    TableConstraint::PrimaryKey { .. } => {
                        return Err(unsupported("PRIMARY KEY USING INDEX in CREATE TABLE"))
                    }
                    TableConstraint::Other(c) => constraints.push(c),
                },
                Some(NodeEnum::TableLikeClause(_)) => {
                    return Err(unsupported(
                        "CREATE TABLE … (LIKE …) is not supported: spell out the columns",
                    ))
                }
                _ => return Err(unsupported("unreadable table element")),
            }
        }
        for c in &s.constraints {
            if let Some(NodeEnum::Constraint(con)) = &c.node {
                if let TableConstraint::Other(c) = self.table_constraint(con)? {
                    constraints.push(c);
                }
            }
        }
        Ok(Op::CreateTable {
            name,
            columns,
            primary_key,
            constraints,
        })
    }

    fn alter_table(&self, s: &pb::AlterTableStmt) -> Result<Op, Refusal> {
        if s.objtype != pb::ObjectType::ObjectTable as i32 {
            return Err(unsupported(
                "only ALTER TABLE is planned (not ALTER INDEX, VIEW, SEQUENCE…)",
            ));
        }
        let rv = s
            .relation
            .as_ref()
            .ok_or_else(|| unsupported("ALTER TABLE without a name"))?;
        let name = range_var(rv)?;
        let mut actions = Vec::new();
        for c in &s.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = &c.node else {
                return Err(unsupported("unreadable ALTER TABLE subcommand"));
            };
            actions.push(self.alter_cmd(cmd)?);
        }
        Ok(Op::AlterTable { name, actions })
    }

    fn alter_cmd(&self, cmd: &pb::AlterTableCmd) -> Result<Action, Refusal> {
        use pb::AlterTableType as T;
        let ty = T::try_from(cmd.subtype).unwrap_or(T::Undefined);
        let cascade = cmd.behavior == pb::DropBehavior::DropCascade as i32;
        let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
        Ok(match ty {
            T::AtAddColumn => match def {
                Some(NodeEnum::ColumnDef(cd)) => Action::AddColumn(self.column_def(cd)?),
                _ => return Err(unsupported("ADD COLUMN without a column definition")),
            },
            T::AtDropColumn => {
                if cascade {
                    return Err(refuse(
                        RefusalKind::Unsafe,
                        format!(
                            "DROP COLUMN {} CASCADE also drops the views and constraints that use it, which lockstep cannot see; drop those first",
                            cmd.name
                        ),
                    ));
                }
                Action::DropColumn(cmd.name.clone())
            }
            T::AtAlterColumnType => match def {
                Some(NodeEnum::ColumnDef(cd)) => {
                    let tn = cd
                        .type_name
                        .as_ref()
                        .ok_or_else(|| unsupported("ALTER COLUMN TYPE without a type"))?;
                    let (new_type, serial) = sql_type(tn)?;
                    if serial {
                        return Err(unsupported(
                            "serial is not a type ALTER COLUMN TYPE accepts",
                        ));
                    }
                    let using = match &cd.raw_default {
                        Some(u) if !trivial_using(u, &cmd.name) => Some(self.expr(u)?),
                        _ => None,
                    };
                    Action::AlterType {
                        column: cmd.name.clone(),
                        new_type,
                        using,
                    }
                }
                _ => return Err(unsupported("ALTER COLUMN TYPE without a type")),
            },
            T::AtColumnDefault => match &cmd.def {
                Some(e) => Action::SetDefault(cmd.name.clone(), self.default_value(e)?),
                None => Action::DropDefault(cmd.name.clone()),
            },
            T::AtSetNotNull => Action::SetNotNull(cmd.name.clone()),
            T::AtDropNotNull => Action::DropNotNull(cmd.name.clone()),
            T::AtAddConstraint => match def {
                Some(NodeEnum::Constraint(con)) => {
                    let not_valid = con.skip_validation;
                    match self.table_constraint(con)? {
                        TableConstraint::PrimaryKey {
                            name,
                            columns,
                            using_index,
                        } => Action::AddPrimaryKey {
                            name,
                            columns,
                            using_index,
                        },
                        TableConstraint::Other(constraint) => Action::AddConstraint {
                            constraint,
                            not_valid,
                        },
                    }
                }
                _ => return Err(unsupported("ADD CONSTRAINT without a definition")),
            },
            T::AtDropConstraint => {
                if cascade {
                    return Err(refuse(
                        RefusalKind::Unsafe,
                        format!(
                            "DROP CONSTRAINT {} CASCADE also drops dependent foreign keys; drop those first",
                            cmd.name
                        ),
                    ));
                }
                Action::DropConstraint(cmd.name.clone())
            }
            T::AtValidateConstraint => Action::ValidateConstraint(cmd.name.clone()),
            T::AtReplicaIdentity => match def {
                Some(NodeEnum::ReplicaIdentityStmt(ri)) => {
                    Action::ReplicaIdentity(match ri.identity_type.as_str() {
                        "d" => ReplicaIdentity::Default,
                        "f" => ReplicaIdentity::Full,
                        "n" => ReplicaIdentity::Nothing,
                        "i" => ReplicaIdentity::Index(ri.name.clone()),
                        other => {
                            return Err(unsupported(format!(
                                "unknown REPLICA IDENTITY kind {other}"
                            )))
                        }
                    })
                }
                _ => return Err(unsupported("REPLICA IDENTITY without a kind")),
            },
            other => {
                return Err(unsupported(format!(
                    "ALTER TABLE subcommand {} is not planned by lockstep",
                    format!("{other:?}").trim_start_matches("At")
                )))
            }
        })
    }

    fn rename(&self, s: &pb::RenameStmt) -> Result<Op, Refusal> {
        let ty = pb::ObjectType::try_from(s.rename_type).unwrap_or(pb::ObjectType::Undefined);
        let rv = s.relation.as_ref();
        match ty {
            pb::ObjectType::ObjectTable => {
                let rv = rv.ok_or_else(|| unsupported("RENAME without a table"))?;
                Ok(Op::RenameTable {
                    name: range_var(rv)?,
                    new_schema: None,
                    new_name: s.newname.clone(),
                })
            }
            pb::ObjectType::ObjectColumn
                if s.relation_type == pb::ObjectType::ObjectTable as i32 =>
            {
                let rv = rv.ok_or_else(|| unsupported("RENAME COLUMN without a table"))?;
                Ok(Op::AlterTable {
                    name: range_var(rv)?,
                    actions: vec![Action::RenameColumn {
                        old: s.subname.clone(),
                        new: s.newname.clone(),
                    }],
                })
            }
            _ => Err(unsupported(
                "only tables and columns are renamed by lockstep (not indexes, constraints, views…)",
            )),
        }
    }

    fn drop(&self, s: &pb::DropStmt) -> Result<Op, Refusal> {
        let ty = pb::ObjectType::try_from(s.remove_type).unwrap_or(pb::ObjectType::Undefined);
        let what = match ty {
            pb::ObjectType::ObjectTable => "table",
            pb::ObjectType::ObjectIndex => "index",
            pb::ObjectType::ObjectView => "view",
            _ => {
                return Err(unsupported(
                    "only DROP TABLE, DROP INDEX and DROP VIEW are planned by lockstep",
                ))
            }
        };
        if s.behavior == pb::DropBehavior::DropCascade as i32 {
            return Err(refuse(
                RefusalKind::Unsafe,
                format!("DROP {} … CASCADE also drops objects that depend on it, which lockstep cannot see; drop those first", what.to_uppercase()),
            ));
        }
        let [object] = s.objects.as_slice() else {
            return Err(unsupported(format!("drop one {what} per statement")));
        };
        let parts = match &object.node {
            Some(NodeEnum::List(l)) => strings(&l.items),
            _ => None,
        }
        .ok_or_else(|| unsupported("unreadable object name"))?;
        let name = obj_name(&parts)?;
        Ok(match ty {
            pb::ObjectType::ObjectTable => Op::DropTable(name),
            pb::ObjectType::ObjectIndex => Op::DropIndex {
                index: name,
                table: None,
                concurrently: s.concurrent,
            },
            _ => Op::DropView(name),
        })
    }

    fn create_index(&self, s: &pb::IndexStmt) -> Result<Op, Refusal> {
        let rv = s
            .relation
            .as_ref()
            .ok_or_else(|| unsupported("CREATE INDEX without a table"))?;
        let mut keys = Vec::new();
        for p in &s.index_params {
            let Some(NodeEnum::IndexElem(e)) = &p.node else {
                return Err(unsupported("unreadable index key"));
            };
            let descending = e.ordering == pb::SortByDir::SortbyDesc as i32;
            if let Some(expr) = &e.expr {
                keys.push(IndexKey::Expression(self.expr(expr)?));
            } else {
                let opclass = strings(&e.opclass)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.join("."));
                keys.push(IndexKey::Column {
                    name: e.name.clone(),
                    descending,
                    opclass,
                });
            }
        }
        let mut include = Vec::new();
        for p in &s.index_including_params {
            match &p.node {
                Some(NodeEnum::IndexElem(e)) if e.expr.is_none() => include.push(e.name.clone()),
                _ => return Err(unsupported("INCLUDE takes columns only")),
            }
        }
        let predicate = match &s.where_clause {
            Some(w) => Some(self.expr(w)?),
            None => None,
        };
        Ok(Op::CreateIndex {
            table: range_var(rv)?,
            index: IndexDraft {
                name: (!s.idxname.is_empty()).then(|| s.idxname.clone()),
                keys,
                unique: s.unique,
                concurrently: s.concurrent,
                method: if s.access_method.is_empty() {
                    "btree".into()
                } else {
                    s.access_method.clone()
                },
                include,
                predicate,
                if_not_exists: s.if_not_exists,
            },
        })
    }

    fn create_view(&self, s: &pb::ViewStmt) -> Result<Op, Refusal> {
        let rv = s
            .view
            .as_ref()
            .ok_or_else(|| unsupported("CREATE VIEW without a name"))?;
        if rv.relpersistence == "t" {
            return Err(unsupported("temporary views are not replicated"));
        }
        let query_node = s
            .query
            .as_ref()
            .and_then(|q| q.node.clone())
            .ok_or_else(|| unsupported("CREATE VIEW without a query"))?;
        // Tables the query reads; names of its CTEs are not tables.
        let mut ctes: Vec<String> = Vec::new();
        let mut refs: Vec<ObjName> = Vec::new();
        let walked = catch_unwind(AssertUnwindSafe(|| {
            query_node
                .nodes()
                .into_iter()
                .filter_map(|(n, _, _, _)| match n {
                    pg_query::NodeRef::CommonTableExpr(c) => Some(Err(c.ctename.clone())),
                    pg_query::NodeRef::RangeVar(v) => Some(Ok(v.clone())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        }))
        .map_err(|_| refuse(RefusalKind::Internal, "cannot walk the view's query"))?;
        let mut range_vars = Vec::new();
        for w in walked {
            match w {
                Err(cte) => ctes.push(cte),
                Ok(v) => range_vars.push(v),
            }
        }
        for v in range_vars {
            if v.schemaname.is_empty() && ctes.contains(&v.relname) {
                continue;
            }
            let n = range_var(&v)?;
            if !refs.contains(&n) {
                refs.push(n);
            }
        }
        let query = self.deparse_root(query_node)?;
        Ok(Op::CreateView {
            view: range_var(rv)?,
            or_replace: s.replace,
            columns: strings(&s.aliases).unwrap_or_default(),
            query,
            references: refs,
        })
    }
}

enum TableConstraint {
    PrimaryKey {
        name: Option<String>,
        columns: Vec<String>,
        using_index: Option<String>,
    },
    Other(NamedConstraint),
}

fn comment(s: &pb::CommentStmt) -> Result<Op, Refusal> {
    let ty = pb::ObjectType::try_from(s.objtype).unwrap_or(pb::ObjectType::Undefined);
    let parts = match s.object.as_ref().and_then(|o| o.node.as_ref()) {
        Some(NodeEnum::List(l)) => strings(&l.items),
        _ => None,
    }
    .ok_or_else(|| unsupported("COMMENT on this kind of object is not planned by lockstep"))?;
    let text = (!s.comment.is_empty()).then(|| s.comment.clone());
    match ty {
        pb::ObjectType::ObjectTable => Ok(Op::Comment {
            on: CommentDraft::Table(obj_name(&parts)?),
            text,
        }),
        pb::ObjectType::ObjectColumn => match parts.split_last() {
            Some((column, table)) if !table.is_empty() => Ok(Op::Comment {
                on: CommentDraft::Column(obj_name(table)?, column.clone()),
                text,
            }),
            _ => Err(unsupported("COMMENT ON COLUMN needs table.column")),
        },
        _ => Err(unsupported(
            "only comments on tables and columns are planned by lockstep",
        )),
    }
}
