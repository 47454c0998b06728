//! Pure planning of a coalesced batch into PostgreSQL statements.
//!
//! Every statement is set-based: one `DELETE ... USING unnest(...)` for all deletes of a table and
//! one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` per column set for the upserts.
//! Rows whose key the batch created (its first change is a `c`) go in a plain `INSERT` instead,
//! which skips the conflict check an upsert pays for every row (a speculative insertion: a
//! quarter of the target's CPU per event in `lockstep bench sink`); the statement carries the
//! upsert to run instead should a replayed create find its row already there
//! ([`PgStatement::on_duplicate`]).
//! Each column travels as one array parameter ([`crate::pg_params`]): in the binary form of the
//! target column's type where the values allow it, else as `text[]` cast to the column's declared
//! type inside the statement, so every type PostgreSQL can read from text (numeric, json, enums,
//! arrays...) is written exactly, and a batch of N rows is one round trip whatever N.

use lockstep_debezium::{
    CoalescedBatch, Column, ColumnType, ConnectType, Logical, Row, TableOp, Value,
};

use crate::pg_params::{column_array, PgArray};
use crate::table::{missing_columns, TargetTable};
use crate::ApplyError;

/// One statement with its array parameters (one array per column).
#[derive(Debug, Clone, PartialEq)]
pub struct PgStatement {
    pub sql: String,
    pub params: Vec<PgArray>,
    /// Rows the statement carries (for metrics).
    pub rows: usize,
    /// For a plain `INSERT` of rows the batch created: the upsert of the same rows, with the
    /// same parameters, to run instead when a row is already in the table (a unique violation
    /// aborts the transaction, so the whole batch is applied again with these).
    pub on_duplicate: Option<String>,
}

pub fn qualified(table: &TargetTable) -> String {
    format!(
        "{}.{}",
        quote_ident(&table.schema),
        quote_ident(&table.name)
    )
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One column's values as its array parameter, or the error naming the column.
fn column_param<'a, I>(table: &TargetTable, column: &str, values: I) -> Result<PgArray, ApplyError>
where
    I: Iterator<Item = &'a Value> + Clone,
{
    column_array(values, table.column_type(column).unwrap_or("text")).map_err(|e| {
        ApplyError::Unwritable {
            table: table.display_name(),
            column: column.to_string(),
            reason: e.to_string(),
        }
    })
}

/// Whether two rows have the same column names in the same order.
fn same_columns(a: &[Column], b: &[Column]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| std::sync::Arc::ptr_eq(&x.name, &y.name) || x.name == y.name)
}

fn check_key(table: &TargetTable, key: &Row) -> Result<(), ApplyError> {
    if table.is_keyed_by(key) {
        return Ok(());
    }
    let mut event_key: Vec<&str> = key.columns.iter().map(|c| &*c.name).collect();
    let mut target_key: Vec<&str> = table.primary_key.iter().map(String::as_str).collect();
    event_key.sort_unstable();
    target_key.sort_unstable();
    if table.primary_key.is_empty() {
        return Err(ApplyError::KeyMismatch {
            table: table.display_name(),
            detail: "the target table has no primary key; add the same primary key as the source"
                .into(),
        });
    }
    if event_key != target_key {
        return Err(ApplyError::KeyMismatch {
            table: table.display_name(),
            detail: format!(
                "change events are keyed by ({}) but the target's primary key is ({}); align the target's primary key with the source's (or the connector's message.key.columns)",
                event_key.join(", "),
                target_key.join(", ")
            ),
        });
    }
    Ok(())
}

/// Plans one table's coalesced batch: truncate first, then the deletes, then the upserts.
/// Each key appears once in a coalesced batch, so deletes and upserts never touch the same row
/// and their relative order does not change the result.
pub fn plan(table: &TargetTable, batch: &CoalescedBatch) -> Result<Vec<PgStatement>, ApplyError> {
    let mut statements = Vec::new();
    if batch.truncate.is_some() {
        statements.push(PgStatement {
            sql: format!("TRUNCATE {}", qualified(table)),
            params: Vec::new(),
            rows: 0,
            on_duplicate: None,
        });
    }

    let key_types: Vec<(&str, &str)> = table
        .primary_key
        .iter()
        .map(|k| (k.as_str(), table.column_type(k).unwrap_or("text")))
        .collect();

    let deletes: Vec<&Row> = batch
        .ops
        .iter()
        .filter_map(|op| match op {
            TableOp::Delete { key, .. } => Some(&**key),
            TableOp::Upsert { .. } => None,
        })
        .collect();
    if !deletes.is_empty() {
        let mut key_values: Vec<Vec<&Value>> =
            vec![Vec::with_capacity(deletes.len()); key_types.len()];
        for key in &deletes {
            check_key(table, key)?;
            for (i, (name, _)) in key_types.iter().enumerate() {
                key_values[i].push(key.value(name).ok_or_else(|| ApplyError::KeyMismatch {
                    table: table.display_name(),
                    detail: format!("a change event lacks key column '{name}'"),
                })?);
            }
        }
        let params = key_types
            .iter()
            .zip(&key_values)
            .map(|((name, _), values)| column_param(table, name, values.iter().copied()))
            .collect::<Result<Vec<_>, _>>()?;
        let unnest_args = params
            .iter()
            .enumerate()
            .map(|(i, p)| p.placeholder(i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let aliases = (0..key_types.len())
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let predicate = key_types
            .iter()
            .zip(&params)
            .enumerate()
            .map(|(i, ((name, ty), p))| {
                format!(
                    "t.{} = {}",
                    quote_ident(name),
                    p.read_as(&format!("u.k{i}"), ty)
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        statements.push(PgStatement {
            sql: format!(
                "DELETE FROM {} AS t USING unnest({unnest_args}) AS u({aliases}) WHERE {predicate}",
                qualified(table)
            ),
            params,
            rows: deletes.len(),
            on_duplicate: None,
        });
    }

    // Upserts grouped by their column list and by whether the batch created their keys, in
    // order of first appearance: normally two groups, more while a column is being added on the
    // source and old and new events share a batch. Rows of one schema share their column names,
    // so most comparisons are pointer checks.
    let mut groups: Vec<(&[Column], bool, Vec<&Row>)> = Vec::new();
    let mut checked: Option<&[Column]> = None;
    for op in &batch.ops {
        if let TableOp::Upsert {
            key, row, created, ..
        } = op
        {
            check_key(table, key)?;
            if !checked.is_some_and(|c| same_columns(c, &row.columns)) {
                let missing = missing_columns(table, row);
                if !missing.is_empty() {
                    return Err(ApplyError::SchemaDrift {
                        table: table.display_name(),
                        columns: missing,
                    });
                }
                checked = Some(&row.columns);
            }
            match groups.iter_mut().find(|(columns, group_created, _)| {
                group_created == created && same_columns(columns, &row.columns)
            }) {
                Some((_, _, rows)) => rows.push(row),
                None => groups.push((&row.columns, *created, vec![row])),
            }
        }
    }
    for (group, created, rows) in groups {
        let columns: Vec<&str> = group.iter().map(|c| &*c.name).collect();
        // Every row of the group has exactly these columns in this order (same_columns).
        let params = columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                column_param(table, name, rows.iter().map(move |r| &r.columns[i].value))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let casts = columns
            .iter()
            .zip(&params)
            .enumerate()
            .map(|(i, (c, p))| {
                p.read_as(&format!("u.c{i}"), table.column_type(c).unwrap_or("text"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let unnest_args = params
            .iter()
            .enumerate()
            .map(|(i, p)| p.placeholder(i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let aliases = (0..columns.len())
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let conflict = table
            .primary_key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !table.primary_key.iter().any(|k| k == **c))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let insert = format!(
            "INSERT INTO {} ({}) SELECT {casts} FROM unnest({unnest_args}) AS u({aliases})",
            qualified(table),
            quoted.join(", ")
        );
        let upsert = format!("{insert} ON CONFLICT ({conflict}) {action}");
        let (sql, on_duplicate) = if created {
            (insert, Some(upsert))
        } else {
            (upsert, None)
        };
        statements.push(PgStatement {
            sql,
            params,
            rows: rows.len(),
            on_duplicate,
        });
    }
    Ok(statements)
}

/// `ALTER TABLE ... ADD COLUMN IF NOT EXISTS ...` for the `evolve` drift policy: every column is
/// nullable (rows already in the table have no value for it), typed by [`pg_type_for`].
pub fn add_nullable_columns(table: &TargetTable, columns: &[Column]) -> String {
    let adds = columns
        .iter()
        .map(|c| {
            format!(
                "ADD COLUMN IF NOT EXISTS {} {} NULL",
                quote_ident(&c.name),
                pg_type_for(&c.column_type)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("ALTER TABLE {} {adds}", qualified(table))
}

/// The PostgreSQL type a column of this Connect schema maps to: the logical type when there is
/// one, else the base type. Values are written in the text form of exactly these types.
pub fn pg_type_for(column: &ColumnType) -> String {
    match &column.logical {
        Logical::Decimal {
            scale,
            precision: Some(precision),
        } if *scale >= 0 && (*scale as u32) <= *precision => {
            format!("numeric({precision},{scale})")
        }
        Logical::Decimal { .. } | Logical::VariableScaleDecimal => "numeric".into(),
        Logical::Date => "date".into(),
        Logical::TimeMillis | Logical::TimeMicros | Logical::TimeNanos => "time".into(),
        Logical::TimestampMillis | Logical::TimestampMicros | Logical::TimestampNanos => {
            "timestamp".into()
        }
        Logical::ZonedTimestamp => "timestamptz".into(),
        Logical::ZonedTime => "timetz".into(),
        Logical::Year => "integer".into(),
        Logical::MicroDuration | Logical::NanoDuration | Logical::Interval => "interval".into(),
        Logical::Json => "jsonb".into(),
        Logical::Uuid => "uuid".into(),
        Logical::Bits { .. } => "bit varying".into(),
        Logical::Xml => "xml".into(),
        Logical::Enum { .. } | Logical::EnumSet { .. } | Logical::Ltree => "text".into(),
        Logical::Geometry { .. } | Logical::Point => "jsonb".into(),
        Logical::None | Logical::Other(_) => match column.connect_type {
            ConnectType::Int8 | ConnectType::Int16 => "smallint".into(),
            ConnectType::Int32 => "integer".into(),
            ConnectType::Int64 => "bigint".into(),
            ConnectType::Float32 => "real".into(),
            ConnectType::Float64 => "double precision".into(),
            ConnectType::Boolean => "boolean".into(),
            ConnectType::String => "text".into(),
            ConnectType::Bytes => "bytea".into(),
            ConnectType::Array => match &column.element {
                Some(element) if element.connect_type != ConnectType::Array => {
                    format!("{}[]", pg_type_for(element))
                }
                _ => "jsonb".into(),
            },
            ConnectType::Map | ConnectType::Struct => "jsonb".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use lockstep_debezium::{Column, ColumnType, ConnectType, Op, Position, Value};

    fn col(name: &str, value: Value) -> Column {
        Column {
            name: name.into(),
            column_type: ColumnType::from_schema(&lockstep_debezium::Schema::new(
                ConnectType::String,
            ))
            .into(),
            value,
        }
    }

    fn row(cols: Vec<Column>) -> Cow<'static, Row> {
        Cow::Owned(Row {
            schema_name: None,
            columns: cols,
        })
    }

    fn pos(offset: i64) -> Position {
        Position {
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    fn table() -> TargetTable {
        TargetTable {
            schema: "public".into(),
            name: "orders".into(),
            columns: vec![
                ("id".into(), "bigint".into()),
                ("note".into(), "text".into()),
                ("amount".into(), "numeric(12,2)".into()),
            ],
            primary_key: vec!["id".into()],
        }
    }

    fn upsert(id: i64, note: Option<&str>) -> TableOp<'static> {
        TableOp::Upsert {
            key: row(vec![col("id", Value::Int(id))]),
            row: row(vec![
                col("id", Value::Int(id)),
                col("note", note.map_or(Value::Null, |n| Value::Text(n.into()))),
                col("amount", Value::Decimal("1.50".into())),
            ]),
            op: Op::Create,
            created: false,
            position: pos(id),
        }
    }

    fn batch(ops: Vec<TableOp<'static>>, truncate: bool) -> CoalescedBatch<'static> {
        CoalescedBatch {
            truncate: truncate.then(|| pos(0)),
            ops,
            ..CoalescedBatch::default()
        }
    }

    #[test]
    fn plans_truncate_deletes_and_one_upsert_statement() {
        let ops = vec![
            upsert(1, Some("a")),
            TableOp::Delete {
                key: row(vec![col("id", Value::Int(7))]),
                position: pos(9),
            },
            upsert(2, None),
        ];
        let statements = plan(&table(), &batch(ops, true)).expect("plan");
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0].sql, r#"TRUNCATE "public"."orders""#);
        assert_eq!(
            statements[1].sql,
            r#"DELETE FROM "public"."orders" AS t USING unnest($1::int8[]) AS u(k0) WHERE t."id" = u.k0"#
        );
        assert_eq!(statements[1].params, vec![PgArray::Int8(vec![Some(7)])]);
        assert_eq!(
            statements[2].sql,
            r#"INSERT INTO "public"."orders" ("id", "note", "amount") SELECT u.c0, u.c1, u.c2::numeric(12,2) FROM unnest($1::int8[], $2::text[], $3::text[]) AS u(c0, c1, c2) ON CONFLICT ("id") DO UPDATE SET "note" = EXCLUDED."note", "amount" = EXCLUDED."amount""#
        );
        assert_eq!(statements[2].rows, 2);
        assert_eq!(
            statements[2].params[1],
            PgArray::Text(crate::pg_params::TextArray::from_iter([Some("a"), None])),
            "NULL travels as a NULL array element"
        );
    }

    #[test]
    fn rows_the_batch_created_are_inserted_plainly_with_the_upsert_kept_for_duplicates() {
        let created = |id, note| {
            let mut op = upsert(id, note);
            if let TableOp::Upsert { created, .. } = &mut op {
                *created = true;
            }
            op
        };
        let ops = vec![
            created(1, Some("new")),
            upsert(2, Some("old")),
            created(3, None),
        ];
        let statements = plan(&table(), &batch(ops, false)).expect("plan");
        assert_eq!(statements.len(), 2, "{statements:#?}");
        let insert = r#"INSERT INTO "public"."orders" ("id", "note", "amount") SELECT u.c0, u.c1, u.c2::numeric(12,2) FROM unnest($1::int8[], $2::text[], $3::text[]) AS u(c0, c1, c2)"#;
        let upsert_sql = format!(
            r#"{insert} ON CONFLICT ("id") DO UPDATE SET "note" = EXCLUDED."note", "amount" = EXCLUDED."amount""#
        );
        // Groups in order of first appearance: the created rows first.
        assert_eq!(statements[0].sql, insert);
        assert_eq!(
            statements[0].on_duplicate.as_deref(),
            Some(upsert_sql.as_str())
        );
        assert_eq!(statements[0].rows, 2);
        assert_eq!(
            statements[0].params[0],
            PgArray::Int8(vec![Some(1), Some(3)])
        );
        assert_eq!(statements[1].sql, upsert_sql);
        assert_eq!(statements[1].on_duplicate, None);
        assert_eq!(statements[1].params[0], PgArray::Int8(vec![Some(2)]));
    }

    #[test]
    fn refuses_drift_and_key_mismatches_with_the_reason() {
        let mut drifted = upsert(1, Some("a"));
        if let TableOp::Upsert { row, .. } = &mut drifted {
            row.to_mut().columns.push(col("discount", Value::Int(3)));
        }
        match plan(&table(), &batch(vec![drifted], false)) {
            Err(ApplyError::SchemaDrift { columns, .. }) => assert_eq!(columns, vec!["discount"]),
            other => panic!("expected drift, got {other:?}"),
        }

        let wrong_key = TableOp::Delete {
            key: row(vec![col("note", Value::Text("x".into()))]),
            position: pos(1),
        };
        let err = plan(&table(), &batch(vec![wrong_key], false)).expect_err("key mismatch");
        assert!(err.to_string().contains("keyed by (note)"), "{err}");

        let mut no_pk = table();
        no_pk.primary_key.clear();
        let err = plan(&no_pk, &batch(vec![upsert(1, None)], false)).expect_err("no pk");
        assert!(err.to_string().contains("no primary key"), "{err}");
    }

    #[test]
    fn quotes_identifiers_that_need_it() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        let mut t = table();
        t.columns = vec![("id".into(), "bigint".into())];
        let only_key = TableOp::Upsert {
            key: row(vec![col("id", Value::Int(1))]),
            row: row(vec![col("id", Value::Int(1))]),
            op: Op::Read,
            created: false,
            position: pos(1),
        };
        let statements = plan(&t, &batch(vec![only_key], false)).expect("plan");
        assert!(statements[0]
            .sql
            .ends_with("ON CONFLICT (\"id\") DO NOTHING"));
    }
}
