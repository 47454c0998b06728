//! Planning: which columns to compare (the intersection by name, key first), what differs in
//! the schemas, and the keyset-pagination SQL each engine runs for a chunk.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::canonical::{compare_canonical, effective_kinds, ColumnKind};
use crate::diff::Key;
use crate::settings::Engine;

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// The declared type, for messages (`numeric(12,2)`, `varchar(40)`).
    pub declared_type: String,
    /// The engine's type name the kind was derived from (PG base `typname`, MySQL `DATA_TYPE`).
    pub type_name: String,
    /// PostgreSQL: the base type without modifiers, used to cast key bounds
    /// (`format_type(oid, NULL)`). MariaDB/MySQL: `COLUMN_TYPE` (to spot `unsigned`).
    pub cast_type: String,
    pub kind: ColumnKind,
}

/// A table as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub engine: Engine,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
}

impl TableSchema {
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A column on one side only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaDifference {
    OnlyInSource {
        column: String,
        declared_type: String,
    },
    OnlyInTarget {
        column: String,
        declared_type: String,
    },
}

impl fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaDifference::OnlyInSource {
                column,
                declared_type,
            } => write!(f, "column {column} ({declared_type}) only in source"),
            SchemaDifference::OnlyInTarget {
                column,
                declared_type,
            } => write!(f, "column {column} ({declared_type}) only in target"),
        }
    }
}

/// One compared column, as one side reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideColumn {
    pub name: String,
    /// The kind this side normalises the column with (see [`effective_kinds`]).
    pub kind: ColumnKind,
    pub type_name: String,
    pub cast_type: String,
}

/// The columns one side selects, key columns first, in the same order on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideColumns {
    pub engine: Engine,
    pub schema: String,
    pub table: String,
    pub key: Vec<SideColumn>,
    pub values: Vec<SideColumn>,
}

/// Why two tables cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    NoPrimaryKey {
        side: &'static str,
        table: String,
    },
    KeyMismatch {
        source_key: Vec<String>,
        target_key: Vec<String>,
    },
}

/// What a run compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComparePlan {
    /// Key column names (source spelling).
    pub key_columns: Vec<String>,
    /// Compared non-key column names (source spelling), in source order.
    pub value_columns: Vec<String>,
    /// How key values order (the source's kinds).
    pub key_kinds: Vec<ColumnKind>,
    pub source: SideColumns,
    pub target: SideColumns,
    pub schema_differences: Vec<SchemaDifference>,
}

impl ComparePlan {
    /// Orders two keys as both adapters' `ORDER BY` does.
    pub fn compare_keys(&self, a: &Key, b: &Key) -> Ordering {
        compare_keys(&self.key_kinds, a, b)
    }
}

/// Orders two keys column by column with [`compare_canonical`].
pub fn compare_keys(kinds: &[ColumnKind], a: &Key, b: &Key) -> Ordering {
    for ((kind, x), y) in kinds.iter().zip(&a.0).zip(&b.0) {
        match compare_canonical(*kind, x, y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    a.0.len().cmp(&b.0.len())
}

/// Matches the two tables' columns by name (case-insensitively) and checks the keys agree.
pub fn plan_comparison(
    source: &TableSchema,
    target: &TableSchema,
) -> Result<ComparePlan, PlanError> {
    for (side, table) in [("source", source), ("target", target)] {
        if table.primary_key.is_empty() {
            return Err(PlanError::NoPrimaryKey {
                side,
                table: table.display_name(),
            });
        }
    }
    let same_key = source.primary_key.len() == target.primary_key.len()
        && source
            .primary_key
            .iter()
            .zip(&target.primary_key)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !same_key {
        return Err(PlanError::KeyMismatch {
            source_key: source.primary_key.clone(),
            target_key: target.primary_key.clone(),
        });
    }

    let pair = |s: &ColumnInfo, t: &ColumnInfo| {
        let (sk, tk) = effective_kinds(s.kind, t.kind);
        (side_column(s, sk), side_column(t, tk))
    };
    let mut source_side = side(source);
    let mut target_side = side(target);
    let mut key_kinds = Vec::new();
    for name in &source.primary_key {
        let (Some(s), Some(t)) = (source.column(name), target.column(name)) else {
            // A key column the catalog lists must exist; treat an inconsistent catalog as a
            // key mismatch rather than panicking.
            return Err(PlanError::KeyMismatch {
                source_key: source.primary_key.clone(),
                target_key: target.primary_key.clone(),
            });
        };
        let (sc, tc) = pair(s, t);
        key_kinds.push(s.kind);
        source_side.key.push(sc);
        target_side.key.push(tc);
    }

    let is_key = |name: &str| {
        source
            .primary_key
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
    };
    let mut value_columns = Vec::new();
    let mut schema_differences = Vec::new();
    for s in source.columns.iter().filter(|c| !is_key(&c.name)) {
        match target.column(&s.name) {
            Some(t) => {
                let (sc, tc) = pair(s, t);
                value_columns.push(s.name.clone());
                source_side.values.push(sc);
                target_side.values.push(tc);
            }
            None => schema_differences.push(SchemaDifference::OnlyInSource {
                column: s.name.clone(),
                declared_type: s.declared_type.clone(),
            }),
        }
    }
    for t in target.columns.iter().filter(|c| !is_key(&c.name)) {
        if source.column(&t.name).is_none() {
            schema_differences.push(SchemaDifference::OnlyInTarget {
                column: t.name.clone(),
                declared_type: t.declared_type.clone(),
            });
        }
    }

    Ok(ComparePlan {
        key_columns: source.primary_key.clone(),
        value_columns,
        key_kinds,
        source: source_side,
        target: target_side,
        schema_differences,
    })
}

fn side(table: &TableSchema) -> SideColumns {
    SideColumns {
        engine: table.engine,
        schema: table.schema.clone(),
        table: table.name.clone(),
        key: Vec::new(),
        values: Vec::new(),
    }
}

fn side_column(c: &ColumnInfo, kind: ColumnKind) -> SideColumn {
    SideColumn {
        name: c.name.clone(),
        kind,
        type_name: c.type_name.clone(),
        cast_type: c.cast_type.clone(),
    }
}

/// The bounds of one chunk query: `key > lower`, `key <= upper`, `LIMIT limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub lower: bool,
    pub upper: bool,
    pub limit: Option<usize>,
}

/// The chunk query for one side. Parameters are the lower bound's key values, then the upper
/// bound's, all as canonical text (cast to the column's type in SQL).
///
/// Every selected expression yields text; key columns come first. Text key columns are ordered
/// and compared by their UTF-8 bytes on both engines (`COLLATE "C"`, `CAST(.. AS BINARY)`), so
/// the two sides page in the same order whatever their collations.
pub fn chunk_sql(side: &SideColumns, bounds: Bounds) -> String {
    match side.engine {
        Engine::Postgres => pg_chunk_sql(side, bounds),
        Engine::Mysql => mysql_chunk_sql(side, bounds),
    }
}

/// The table's alias in chunk queries. Key expressions are qualified with it and outputs are
/// aliased `c0, c1, ..`, so `ORDER BY` never binds to an output column (PostgreSQL resolves a
/// bare `ORDER BY id` to the output `id::text AS id` and would sort keys as text).
const ALIAS: &str = "src";

pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn pg_chunk_sql(side: &SideColumns, bounds: Bounds) -> String {
    let select: Vec<String> = side
        .key
        .iter()
        .chain(&side.values)
        .enumerate()
        .map(|(i, c)| format!("{ALIAS}.{}::text AS c{i}", pg_ident(&c.name)))
        .collect();
    let key_expr: Vec<String> = side
        .key
        .iter()
        .map(|c| match c.kind {
            ColumnKind::Text => format!("{ALIAS}.{} COLLATE \"C\"", pg_ident(&c.name)),
            _ => format!("{ALIAS}.{}", pg_ident(&c.name)),
        })
        .collect();
    let param = |c: &SideColumn, n: usize| match c.kind {
        ColumnKind::Text => format!("${n}::text COLLATE \"C\""),
        ColumnKind::Bytes => format!("decode(${n}::text, 'hex')"),
        _ => format!("CAST(${n}::text AS {})", c.cast_type),
    };
    let mut sql = format!(
        "SELECT {} FROM {}.{} AS {ALIAS}",
        select.join(", "),
        pg_ident(&side.schema),
        pg_ident(&side.table)
    );
    push_bounds(&mut sql, side, bounds, &key_expr, param);
    sql
}

fn mysql_chunk_sql(side: &SideColumns, bounds: Bounds) -> String {
    let select: Vec<String> = side
        .key
        .iter()
        .chain(&side.values)
        .enumerate()
        .map(|(i, c)| {
            let col = format!("{ALIAS}.{}", mysql_ident(&c.name));
            let expr = match c.kind {
                ColumnKind::Text => col,
                ColumnKind::Bytes => format!("HEX({col})"),
                ColumnKind::Timestamp | ColumnKind::TimestampTz => {
                    format!("DATE_FORMAT({col}, '%Y-%m-%d %H:%i:%s.%f')")
                }
                _ if c.type_name.eq_ignore_ascii_case("bit") => {
                    format!("CAST(CAST({col} AS UNSIGNED) AS CHAR)")
                }
                _ => format!("CAST({col} AS CHAR)"),
            };
            format!("{expr} AS c{i}")
        })
        .collect();
    let key_expr: Vec<String> = side
        .key
        .iter()
        .map(|c| {
            let col = format!("{ALIAS}.{}", mysql_ident(&c.name));
            match c.kind {
                ColumnKind::Text => format!("CAST(CONVERT({col} USING utf8mb4) AS BINARY)"),
                _ => col,
            }
        })
        .collect();
    let param = |c: &SideColumn, _n: usize| match c.kind {
        ColumnKind::Text => "CAST(CONVERT(? USING utf8mb4) AS BINARY)".to_string(),
        ColumnKind::Bytes => "UNHEX(?)".to_string(),
        ColumnKind::Integer | ColumnKind::Boolean => {
            let unsigned = c.cast_type.to_ascii_lowercase().contains("unsigned")
                || c.type_name.eq_ignore_ascii_case("bit");
            if unsigned {
                "CAST(? AS UNSIGNED)".to_string()
            } else {
                "CAST(? AS SIGNED)".to_string()
            }
        }
        ColumnKind::Decimal => "CAST(? AS DECIMAL(65,30))".to_string(),
        ColumnKind::Float => "CAST(? AS DOUBLE)".to_string(),
        ColumnKind::Date => "CAST(? AS DATE)".to_string(),
        ColumnKind::Time => "CAST(? AS TIME(6))".to_string(),
        ColumnKind::Timestamp | ColumnKind::TimestampTz => "CAST(? AS DATETIME(6))".to_string(),
        ColumnKind::Json | ColumnKind::Other => "?".to_string(),
    };
    let mut sql = format!(
        "SELECT {} FROM {}.{} AS {ALIAS}",
        select.join(", "),
        mysql_ident(&side.schema),
        mysql_ident(&side.table)
    );
    push_bounds(&mut sql, side, bounds, &key_expr, param);
    sql
}

fn push_bounds(
    sql: &mut String,
    side: &SideColumns,
    bounds: Bounds,
    key_expr: &[String],
    param: impl Fn(&SideColumn, usize) -> String,
) {
    let key_tuple = format!("({})", key_expr.join(", "));
    let mut n = 0;
    let mut params = || {
        let rendered: Vec<String> = side
            .key
            .iter()
            .map(|c| {
                n += 1;
                param(c, n)
            })
            .collect();
        format!("({})", rendered.join(", "))
    };
    let mut conditions = Vec::new();
    if bounds.lower {
        conditions.push(format!("{key_tuple} > {}", params()));
    }
    if bounds.upper {
        conditions.push(format!("{key_tuple} <= {}", params()));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(&key_expr.join(", "));
    if let Some(limit) = bounds.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: ColumnKind, type_name: &str, cast: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.to_string(),
            declared_type: type_name.to_string(),
            type_name: type_name.to_string(),
            cast_type: cast.to_string(),
            kind,
        }
    }

    fn table(engine: Engine, columns: Vec<ColumnInfo>, pk: &[&str]) -> TableSchema {
        TableSchema {
            engine,
            schema: "s".to_string(),
            name: "t".to_string(),
            columns,
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pg_orders() -> TableSchema {
        table(
            Engine::Postgres,
            vec![
                col("id", ColumnKind::Integer, "int8", "bigint"),
                col("doc", ColumnKind::Json, "jsonb", "jsonb"),
                col("note", ColumnKind::Text, "text", "text"),
                col("only_pg", ColumnKind::Integer, "int4", "integer"),
            ],
            &["id"],
        )
    }

    fn my_orders() -> TableSchema {
        table(
            Engine::Mysql,
            vec![
                col("ID", ColumnKind::Integer, "bigint", "bigint(20) unsigned"),
                col("note", ColumnKind::Text, "varchar", "varchar(10)"),
                col("doc", ColumnKind::Text, "longtext", "longtext"),
                col("only_my", ColumnKind::Text, "text", "text"),
            ],
            &["ID"],
        )
    }

    #[test]
    fn plan_intersects_columns_and_lists_the_rest() {
        let plan = plan_comparison(&pg_orders(), &my_orders()).expect("plan");
        assert_eq!(plan.key_columns, ["id"]);
        assert_eq!(plan.value_columns, ["doc", "note"]);
        assert_eq!(plan.target.key[0].name, "ID");
        // JSON on one side and longtext on the other are both read as JSON.
        assert_eq!(plan.source.values[0].kind, ColumnKind::Json);
        assert_eq!(plan.target.values[0].kind, ColumnKind::Json);
        assert_eq!(plan.target.values[0].name, "doc");
        assert_eq!(
            plan.schema_differences,
            vec![
                SchemaDifference::OnlyInSource {
                    column: "only_pg".into(),
                    declared_type: "int4".into()
                },
                SchemaDifference::OnlyInTarget {
                    column: "only_my".into(),
                    declared_type: "text".into()
                },
            ]
        );
    }

    #[test]
    fn plan_refuses_missing_or_different_keys() {
        let mut no_pk = pg_orders();
        no_pk.primary_key.clear();
        assert!(matches!(
            plan_comparison(&no_pk, &my_orders()),
            Err(PlanError::NoPrimaryKey { side: "source", .. })
        ));
        assert!(matches!(
            plan_comparison(&my_orders(), &no_pk),
            Err(PlanError::NoPrimaryKey { side: "target", .. })
        ));
        let mut other_key = my_orders();
        other_key.primary_key = vec!["note".into()];
        assert!(matches!(
            plan_comparison(&pg_orders(), &other_key),
            Err(PlanError::KeyMismatch { .. })
        ));
    }

    fn composite(engine: Engine) -> SideColumns {
        let sc = |name: &str, kind, type_name: &str, cast: &str| SideColumn {
            name: name.into(),
            kind,
            type_name: type_name.into(),
            cast_type: cast.into(),
        };
        SideColumns {
            engine,
            schema: "s".into(),
            table: "t\"x".into(),
            key: vec![
                sc("region", ColumnKind::Text, "varchar", "character varying"),
                sc("id", ColumnKind::Integer, "int8", "bigint"),
            ],
            values: vec![
                sc("blob", ColumnKind::Bytes, "bytea", "bytea"),
                sc("at", ColumnKind::Timestamp, "datetime", "datetime(6)"),
            ],
        }
    }

    #[test]
    fn chunk_sql_per_engine_and_bounds() {
        let cases: &[(Engine, Bounds, &str)] = &[
            (
                Engine::Postgres,
                Bounds { lower: false, upper: false, limit: Some(10) },
                r#"SELECT src."region"::text AS c0, src."id"::text AS c1, src."blob"::text AS c2, src."at"::text AS c3 FROM "s"."t""x" AS src ORDER BY src."region" COLLATE "C", src."id" LIMIT 10"#,
            ),
            (
                Engine::Postgres,
                Bounds { lower: true, upper: true, limit: None },
                r#"SELECT src."region"::text AS c0, src."id"::text AS c1, src."blob"::text AS c2, src."at"::text AS c3 FROM "s"."t""x" AS src WHERE (src."region" COLLATE "C", src."id") > ($1::text COLLATE "C", CAST($2::text AS bigint)) AND (src."region" COLLATE "C", src."id") <= ($3::text COLLATE "C", CAST($4::text AS bigint)) ORDER BY src."region" COLLATE "C", src."id""#,
            ),
            (
                Engine::Mysql,
                Bounds { lower: true, upper: false, limit: Some(5) },
                "SELECT src.`region` AS c0, CAST(src.`id` AS CHAR) AS c1, HEX(src.`blob`) AS c2, DATE_FORMAT(src.`at`, '%Y-%m-%d %H:%i:%s.%f') AS c3 FROM `s`.`t\"x` AS src WHERE (CAST(CONVERT(src.`region` USING utf8mb4) AS BINARY), src.`id`) > (CAST(CONVERT(? USING utf8mb4) AS BINARY), CAST(? AS SIGNED)) ORDER BY CAST(CONVERT(src.`region` USING utf8mb4) AS BINARY), src.`id` LIMIT 5",
            ),
            (
                Engine::Mysql,
                Bounds { lower: false, upper: true, limit: None },
                "SELECT src.`region` AS c0, CAST(src.`id` AS CHAR) AS c1, HEX(src.`blob`) AS c2, DATE_FORMAT(src.`at`, '%Y-%m-%d %H:%i:%s.%f') AS c3 FROM `s`.`t\"x` AS src WHERE (CAST(CONVERT(src.`region` USING utf8mb4) AS BINARY), src.`id`) <= (CAST(CONVERT(? USING utf8mb4) AS BINARY), CAST(? AS SIGNED)) ORDER BY CAST(CONVERT(src.`region` USING utf8mb4) AS BINARY), src.`id`",
            ),
        ];
        for (engine, bounds, expected) in cases {
            assert_eq!(chunk_sql(&composite(*engine), *bounds), *expected);
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(pg_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(mysql_ident("a`b"), "`a``b`");
    }

    #[test]
    fn keys_order_by_kind() {
        let kinds = [ColumnKind::Text, ColumnKind::Integer];
        let k = |a: &str, b: &str| Key(vec![a.to_string(), b.to_string()]);
        assert_eq!(
            compare_keys(&kinds, &k("a", "9"), &k("a", "10")),
            Ordering::Less
        );
        assert_eq!(
            compare_keys(&kinds, &k("b", "1"), &k("a", "10")),
            Ordering::Greater
        );
        assert_eq!(
            compare_keys(&kinds, &k("a", "10"), &k("a", "10")),
            Ordering::Equal
        );
    }
}
