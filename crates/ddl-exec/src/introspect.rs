//! The source catalog adapter: reads a [`Catalog`] of the pipeline's tables from a live
//! PostgreSQL (`pg_catalog`). The queries are plain data; [`build_catalog`] turns their rows
//! into the catalog and is pure (unit-tested without a database).

use std::collections::BTreeMap;

use lockstep_ddl::{
    parse_pg_default, parse_pg_type, Catalog, Column, ConstraintInfo, ConstraintKind, DefaultValue,
    Engine, IndexInfo, QualifiedName, ReplicaIdentity, SqlType, TableSchema,
};
use tokio_postgres::Client;

use crate::error::ExecError;

/// A relation (table, view, ...) of a user schema.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationRow {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// `pg_class.relkind`: r, p (tables), v, m (views), f (foreign).
    pub kind: String,
    /// `pg_class.relreplident`: d, f, n, i.
    pub replica_identity: String,
    /// `pg_class.reltuples` (negative: never analysed).
    pub rows: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRow {
    pub table: i64,
    pub name: String,
    /// `format_type(atttypid, atttypmod)`.
    pub data_type: String,
    pub not_null: bool,
    /// `pg_get_expr(adbin, adrelid)`.
    pub default: Option<String>,
    /// `attidentity`: '' or a (ALWAYS) / d (BY DEFAULT).
    pub identity: String,
    /// `attgenerated`: '' or s (STORED).
    pub generated: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConstraintRow {
    pub table: i64,
    pub name: String,
    /// `contype`: p, u, c, f (others are ignored).
    pub kind: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub table: i64,
    pub name: String,
    pub unique: bool,
    pub primary: bool,
    pub replica_identity: bool,
    /// Key columns in order; expression keys are left out.
    pub columns: Vec<String>,
}

/// Every row the catalog is built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogRows {
    pub search_path: Vec<String>,
    pub relations: Vec<RelationRow>,
    pub columns: Vec<ColumnRow>,
    pub constraints: Vec<ConstraintRow>,
    pub indexes: Vec<IndexRow>,
}

pub const SEARCH_PATH_SQL: &str = "SELECT current_schemas(false)::text[]";

pub const RELATIONS_SQL: &str = "\
SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, c.relreplident::text,
       c.reltuples::float8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY 2, 3";

pub const COLUMNS_SQL: &str = "\
SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid::int8 = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum";

pub const CONSTRAINTS_SQL: &str = "\
SELECT con.conrelid::int8, con.conname::text, con.contype::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.ord)
FROM pg_constraint con
WHERE con.conrelid::int8 = ANY($1) AND con.contype IN ('p', 'u', 'c', 'f')
ORDER BY 1, 2";

pub const INDEXES_SQL: &str = "\
SELECT i.indrelid::int8, c.relname::text, i.indisunique, i.indisprimary, i.indisreplident,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.ord)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid::int8 = ANY($1)
ORDER BY 1, 2";

fn catalog_err(what: &'static str) -> impl Fn(tokio_postgres::Error) -> ExecError {
    move |e| ExecError::Catalog {
        what,
        reason: crate::source::pg_error_text(&e),
    }
}

/// Read the rows [`build_catalog`] needs.
pub async fn read_rows(
    client: &Client,
    tables: &[QualifiedName],
) -> Result<CatalogRows, ExecError> {
    let sp = client
        .query_one(SEARCH_PATH_SQL, &[])
        .await
        .map_err(catalog_err("search_path"))?;
    let search_path: Vec<String> = sp.get(0);
    let relations: Vec<RelationRow> = client
        .query(RELATIONS_SQL, &[])
        .await
        .map_err(catalog_err("relations"))?
        .iter()
        .map(|r| RelationRow {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            kind: r.get(3),
            replica_identity: r.get(4),
            rows: r.get(5),
        })
        .collect();
    let oids: Vec<i64> = relations
        .iter()
        .filter(|r| {
            tables
                .iter()
                .any(|t| t.schema == r.schema && t.name == r.name)
        })
        .map(|r| r.oid)
        .collect();
    let columns = client
        .query(COLUMNS_SQL, &[&oids])
        .await
        .map_err(catalog_err("columns"))?
        .iter()
        .map(|r| ColumnRow {
            table: r.get(0),
            name: r.get(1),
            data_type: r.get(2),
            not_null: r.get(3),
            default: r.get(4),
            identity: r.get(5),
            generated: r.get(6),
        })
        .collect();
    let constraints = client
        .query(CONSTRAINTS_SQL, &[&oids])
        .await
        .map_err(catalog_err("constraints"))?
        .iter()
        .map(|r| ConstraintRow {
            table: r.get(0),
            name: r.get(1),
            kind: r.get(2),
            columns: r.get(3),
        })
        .collect();
    let indexes = client
        .query(INDEXES_SQL, &[&oids])
        .await
        .map_err(catalog_err("indexes"))?
        .iter()
        .map(|r| IndexRow {
            table: r.get(0),
            name: r.get(1),
            unique: r.get(2),
            primary: r.get(3),
            replica_identity: r.get(4),
            columns: r.get(5),
        })
        .collect();
    Ok(CatalogRows {
        search_path,
        relations,
        columns,
        constraints,
        indexes,
    })
}

/// Read the pipeline's catalog from a live PostgreSQL source.
pub async fn read_pg_catalog(
    client: &Client,
    database: &str,
    tables: &[QualifiedName],
    extra_schemas: &[String],
) -> Result<Catalog, ExecError> {
    let rows = read_rows(client, tables).await?;
    build_catalog(&rows, database, tables, extra_schemas)
}

fn column(row: &ColumnRow) -> Column {
    // A type lockstep does not model stays by its name: the classifier refuses changes it
    // cannot reason about instead of guessing.
    let data_type = parse_pg_type(&row.data_type).unwrap_or_else(|_| SqlType::Other {
        name: row.data_type.clone(),
    });
    let default = if !row.identity.is_empty() {
        Some(DefaultValue {
            sql: if row.identity == "a" {
                "GENERATED ALWAYS AS IDENTITY".into()
            } else {
                "GENERATED BY DEFAULT AS IDENTITY".into()
            },
            constant: None,
            identity: true,
        })
    } else if let Some(text) = &row.default {
        if row.generated == "s" {
            Some(DefaultValue {
                sql: format!("GENERATED ALWAYS AS ({text}) STORED"),
                constant: None,
                identity: false,
            })
        } else {
            // An expression the parser cannot read is kept as computed (never as a constant).
            Some(parse_pg_default(text).unwrap_or(DefaultValue {
                sql: text.clone(),
                constant: None,
                identity: false,
            }))
        }
    } else {
        None
    };
    Column {
        name: row.name.clone(),
        data_type,
        nullable: !row.not_null,
        default,
    }
}

/// Build the catalog from the rows (pure). Every pipeline table must exist as a table; tables
/// and views outside the pipeline are listed as `outside`, views in the pipeline's schemas as
/// `views`.
pub fn build_catalog(
    rows: &CatalogRows,
    database: &str,
    tables: &[QualifiedName],
    extra_schemas: &[String],
) -> Result<Catalog, ExecError> {
    let mut by_oid: BTreeMap<i64, TableSchema> = BTreeMap::new();
    let mut order: Vec<i64> = Vec::new();
    let mut views = Vec::new();
    let mut outside = Vec::new();
    let is_table = |k: &str| k == "r" || k == "p";
    let pipeline_schemas: Vec<&str> = tables
        .iter()
        .map(|t| t.schema.as_str())
        .chain(extra_schemas.iter().map(String::as_str))
        .collect();
    for t in tables {
        let found = rows
            .relations
            .iter()
            .find(|r| r.schema == t.schema && r.name == t.name && is_table(&r.kind));
        let Some(r) = found else {
            return Err(ExecError::MissingTable {
                table: t.to_string(),
                database: database.to_string(),
            });
        };
        let mut schema = TableSchema::new(t.clone(), Vec::new(), &[]);
        schema.rows = (r.rows >= 0.0).then_some(r.rows as u64);
        schema.replica_identity = match r.replica_identity.as_str() {
            "f" => ReplicaIdentity::Full,
            "n" => ReplicaIdentity::Nothing,
            "i" => rows
                .indexes
                .iter()
                .find(|i| i.table == r.oid && i.replica_identity)
                .map(|i| ReplicaIdentity::Index(i.name.clone()))
                .unwrap_or_default(),
            _ => ReplicaIdentity::Default,
        };
        by_oid.insert(r.oid, schema);
        order.push(r.oid);
    }
    for r in &rows.relations {
        let name = QualifiedName::new(r.schema.clone(), r.name.clone());
        if by_oid.contains_key(&r.oid) {
            continue;
        }
        if matches!(r.kind.as_str(), "v" | "m") && pipeline_schemas.contains(&r.schema.as_str()) {
            views.push(name);
        } else {
            outside.push(name);
        }
    }
    for c in &rows.columns {
        if let Some(t) = by_oid.get_mut(&c.table) {
            t.columns.push(column(c));
        }
    }
    let mut pk_index: BTreeMap<i64, String> = BTreeMap::new();
    for c in &rows.constraints {
        let Some(t) = by_oid.get_mut(&c.table) else {
            continue;
        };
        let kind = match c.kind.as_str() {
            "p" => {
                t.primary_key = c.columns.clone();
                t.primary_key_name = Some(c.name.clone());
                pk_index.insert(c.table, c.name.clone());
                continue;
            }
            "u" => ConstraintKind::Unique,
            "c" => ConstraintKind::Check,
            "f" => ConstraintKind::ForeignKey,
            _ => continue,
        };
        t.constraints.push(ConstraintInfo {
            name: c.name.clone(),
            kind,
        });
    }
    for i in &rows.indexes {
        let Some(t) = by_oid.get_mut(&i.table) else {
            continue;
        };
        if i.primary || pk_index.get(&i.table) == Some(&i.name) {
            continue;
        }
        t.indexes.push(IndexInfo {
            name: i.name.clone(),
            columns: i.columns.clone(),
            unique: i.unique,
        });
    }
    let mut catalog = Catalog::new(Engine::Postgres, &[]);
    catalog.search_path = rows.search_path.clone();
    catalog.schemas = extra_schemas.to_vec();
    catalog.tables = order.iter().filter_map(|o| by_oid.remove(o)).collect();
    catalog.views = views;
    catalog.outside = outside;
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_ddl::Literal;

    fn rows() -> CatalogRows {
        let rel = |oid, schema: &str, name: &str, kind: &str, ri: &str| RelationRow {
            oid,
            schema: schema.into(),
            name: name.into(),
            kind: kind.into(),
            replica_identity: ri.into(),
            rows: -1.0,
        };
        let col = |table, name: &str, ty: &str, not_null, default: Option<&str>| ColumnRow {
            table,
            name: name.into(),
            data_type: ty.into(),
            not_null,
            default: default.map(str::to_string),
            identity: String::new(),
            generated: String::new(),
        };
        CatalogRows {
            search_path: vec!["public".into()],
            relations: vec![
                rel(1, "public", "orders", "r", "i"),
                rel(2, "public", "audit", "r", "d"),
                rel(3, "public", "orders_v", "v", "n"),
            ],
            columns: vec![
                col(
                    1,
                    "id",
                    "bigint",
                    true,
                    Some("nextval('orders_id_seq'::regclass)"),
                ),
                col(
                    1,
                    "note",
                    "character varying(20)",
                    false,
                    Some("'x'::character varying"),
                ),
                col(1, "at", "timestamp with time zone", true, Some("now()")),
                col(1, "shape", "geometry", false, None),
                col(2, "id", "int", true, None),
            ],
            constraints: vec![
                ConstraintRow {
                    table: 1,
                    name: "orders_pkey".into(),
                    kind: "p".into(),
                    columns: vec!["id".into()],
                },
                ConstraintRow {
                    table: 1,
                    name: "note_len".into(),
                    kind: "c".into(),
                    columns: vec!["note".into()],
                },
            ],
            indexes: vec![
                IndexRow {
                    table: 1,
                    name: "orders_pkey".into(),
                    unique: true,
                    primary: true,
                    replica_identity: false,
                    columns: vec!["id".into()],
                },
                IndexRow {
                    table: 1,
                    name: "orders_note".into(),
                    unique: true,
                    primary: false,
                    replica_identity: true,
                    columns: vec!["note".into()],
                },
            ],
        }
    }

    #[test]
    fn builds_the_pipeline_tables_and_names_the_rest() {
        let orders = QualifiedName::new("public", "orders");
        let c = build_catalog(&rows(), "app", std::slice::from_ref(&orders), &[]).unwrap();
        assert_eq!(c.search_path, vec!["public".to_string()]);
        let t = c.table(&orders).unwrap();
        assert_eq!(t.primary_key, vec!["id".to_string()]);
        assert_eq!(t.primary_key_name.as_deref(), Some("orders_pkey"));
        assert_eq!(
            t.replica_identity,
            ReplicaIdentity::Index("orders_note".into())
        );
        assert_eq!(t.indexes.len(), 1, "the primary key's index is not listed");
        assert_eq!(t.constraints[0].kind, ConstraintKind::Check);
        assert_eq!(t.rows, None);
        let id = &t.columns[0];
        assert!(!id.nullable);
        assert!(id.default.as_ref().unwrap().identity);
        let note = &t.columns[1];
        assert_eq!(note.data_type, SqlType::Varchar { length: Some(20) });
        assert_eq!(
            note.default.as_ref().unwrap().constant,
            Some(Literal::String("x".into()))
        );
        assert!(!t.columns[2].default.as_ref().unwrap().is_constant());
        assert_eq!(
            t.columns[3].data_type,
            SqlType::Other {
                name: "geometry".into()
            }
        );
        assert_eq!(c.views, vec![QualifiedName::new("public", "orders_v")]);
        assert_eq!(c.outside, vec![QualifiedName::new("public", "audit")]);
    }

    #[test]
    fn a_missing_or_non_table_pipeline_table_is_an_error() {
        for name in ["nope", "orders_v"] {
            let err = build_catalog(&rows(), "app", &[QualifiedName::new("public", name)], &[])
                .unwrap_err();
            assert!(matches!(err, ExecError::MissingTable { .. }), "{err}");
            assert!(err.to_string().contains(&format!("public.{name}")));
        }
    }
}
