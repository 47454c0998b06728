//! The target database adapter: run a planned target statement, read a table's shape, and
//! answer a plan's `skip_if` checks. PostgreSQL and MariaDB / MySQL.

use lockstep_ddl::parse_pg_type;
use lockstep_ddl_plan::{Check, Expectation, TargetTable};
use lockstep_sink::pipeline::{Engine, TargetSettings};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use tokio_postgres::Client;

use crate::error::ExecError;
use crate::source::{connect_pg, pg_error_text};

/// A column as the target's catalog has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// A target table's shape (`None` from [`TargetDb::shape`] when it does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub columns: Vec<TargetColumn>,
    pub primary_key: Vec<String>,
    pub constraints: Vec<String>,
}

pub enum TargetDb {
    Postgres(Client),
    Mariadb(Conn),
}

fn sql_err(what: impl Into<String>, reason: String) -> ExecError {
    ExecError::Sql {
        side: "target",
        what: what.into(),
        reason,
    }
}

const PG_SHAPE_SQL: &str = "\
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

const PG_CONSTRAINTS_SQL: &str = "\
SELECT con.conname::text, con.contype::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.ord)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2";

const MY_COLUMNS_SQL: &str = "\
SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

const MY_CONSTRAINTS_SQL: &str = "\
SELECT CONSTRAINT_NAME FROM information_schema.TABLE_CONSTRAINTS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

const MY_PK_SQL: &str = "\
SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
ORDER BY ORDINAL_POSITION";

impl TargetDb {
    pub async fn connect(t: &TargetSettings) -> Result<Self, ExecError> {
        match t.engine {
            Engine::Postgres => Ok(TargetDb::Postgres(
                connect_pg(
                    "target",
                    &t.host,
                    t.port,
                    &t.user,
                    t.password.as_ref(),
                    &t.database,
                )
                .await?,
            )),
            Engine::Mariadb => {
                let password = match &t.password {
                    Some(p) => Some(
                        p.resolve()
                            .map_err(|e| ExecError::Secret {
                                what: "target",
                                reason: e.to_string(),
                            })?
                            .expose()
                            .to_string(),
                    ),
                    None => None,
                };
                let opts = OptsBuilder::default()
                    .ip_or_hostname(t.host.clone())
                    .tcp_port(t.port)
                    .user(Some(t.user.clone()))
                    .pass(password)
                    .db_name(Some(t.database.clone()))
                    .prefer_socket(false);
                let conn = Conn::new(opts).await.map_err(|e| ExecError::Connect {
                    what: "target",
                    target: format!("mariadb {}:{}/{}", t.host, t.port, t.database),
                    reason: e.to_string(),
                })?;
                Ok(TargetDb::Mariadb(conn))
            }
        }
    }

    /// Run one planned statement (rendered by the planner from the typed change).
    pub async fn execute(&mut self, sql: &str) -> Result<(), ExecError> {
        let what = || format!("running {}", lockstep_ddl::excerpt(sql));
        match self {
            TargetDb::Postgres(c) => c
                .execute(sql, &[])
                .await
                .map(|_| ())
                .map_err(|e| sql_err(what(), pg_error_text(&e))),
            TargetDb::Mariadb(c) => c
                .query_drop(sql)
                .await
                .map_err(|e| sql_err(what(), e.to_string())),
        }
    }

    /// The table's columns, primary key and constraint names; `None` when it does not exist.
    pub async fn shape(&mut self, t: &TargetTable) -> Result<Option<Shape>, ExecError> {
        let what = || format!("reading the shape of {t}");
        match self {
            TargetDb::Postgres(c) => {
                let rows = c
                    .query(PG_SHAPE_SQL, &[&t.schema, &t.name])
                    .await
                    .map_err(|e| sql_err(what(), pg_error_text(&e)))?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let columns = rows
                    .iter()
                    .map(|r| TargetColumn {
                        name: r.get(0),
                        data_type: r.get(1),
                        nullable: r.get(2),
                    })
                    .collect();
                let mut primary_key = Vec::new();
                let mut constraints = Vec::new();
                for r in c
                    .query(PG_CONSTRAINTS_SQL, &[&t.schema, &t.name])
                    .await
                    .map_err(|e| sql_err(what(), pg_error_text(&e)))?
                {
                    let kind: String = r.get(1);
                    if kind == "p" {
                        primary_key = r.get(2);
                    }
                    constraints.push(r.get(0));
                }
                Ok(Some(Shape {
                    columns,
                    primary_key,
                    constraints,
                }))
            }
            TargetDb::Mariadb(c) => {
                let key = (t.schema.as_str(), t.name.as_str());
                let rows: Vec<(String, String, String)> = c
                    .exec(MY_COLUMNS_SQL, key)
                    .await
                    .map_err(|e| sql_err(what(), e.to_string()))?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let columns = rows
                    .into_iter()
                    .map(|(name, data_type, nullable)| TargetColumn {
                        name,
                        data_type,
                        nullable: nullable.eq_ignore_ascii_case("YES"),
                    })
                    .collect();
                let primary_key: Vec<String> = c
                    .exec(MY_PK_SQL, key)
                    .await
                    .map_err(|e| sql_err(what(), e.to_string()))?;
                let constraints: Vec<String> = c
                    .exec(MY_CONSTRAINTS_SQL, key)
                    .await
                    .map_err(|e| sql_err(what(), e.to_string()))?;
                Ok(Some(Shape {
                    columns,
                    primary_key,
                    constraints,
                }))
            }
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self, TargetDb::Postgres(_))
    }

    /// The topics the pipeline's sink added or removed at runtime (`lockstep_sink::topics`),
    /// read without creating their table (none yet: no change).
    pub async fn runtime_topics(
        &mut self,
        pipeline: &str,
    ) -> Result<Vec<lockstep_sink::topics::RuntimeTopic>, ExecError> {
        use lockstep_sink::topics::{
            RuntimeTopic, MY_TOPICS_EXISTS, MY_TOPICS_SELECT, PG_TOPICS_EXISTS, PG_TOPICS_SELECT,
        };
        let what = "reading the sink's runtime topics";
        match self {
            TargetDb::Postgres(c) => {
                let exists: bool = c
                    .query_one(PG_TOPICS_EXISTS, &[])
                    .await
                    .map_err(|e| sql_err(what, pg_error_text(&e)))?
                    .get(0);
                if !exists {
                    return Ok(Vec::new());
                }
                let rows = c
                    .query(PG_TOPICS_SELECT, &[&pipeline])
                    .await
                    .map_err(|e| sql_err(what, pg_error_text(&e)))?;
                Ok(rows.iter().map(RuntimeTopic::from_pg_row).collect())
            }
            TargetDb::Mariadb(conn) => {
                let exists: Option<i64> = conn
                    .query_first(MY_TOPICS_EXISTS)
                    .await
                    .map_err(|e| sql_err(what, e.to_string()))?;
                if exists.unwrap_or(0) == 0 {
                    return Ok(Vec::new());
                }
                let rows: Vec<(String, Option<String>, bool)> = conn
                    .exec(MY_TOPICS_SELECT, (pipeline,))
                    .await
                    .map_err(|e| sql_err(what, e.to_string()))?;
                Ok(rows.into_iter().map(RuntimeTopic::from_my_row).collect())
            }
        }
    }

    /// Whether a plan's `skip_if` check holds (the step already ran).
    pub async fn check(&mut self, check: &Check) -> Result<bool, ExecError> {
        let pg = self.is_postgres();
        let same = |a: &str, b: &str| {
            if pg {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        Ok(match check {
            Check::TargetTableExists { table } => self.shape(table).await?.is_some(),
            Check::TargetColumnExists { table, column } => self
                .shape(table)
                .await?
                .is_some_and(|s| s.columns.iter().any(|c| same(&c.name, column))),
            Check::TargetConstraintExists { table, name } => self
                .shape(table)
                .await?
                .is_some_and(|s| s.constraints.iter().any(|c| same(c, name))),
            Check::TargetPrimaryKeyIs { table, columns } => {
                self.shape(table).await?.is_some_and(|s| {
                    s.primary_key.len() == columns.len()
                        && s.primary_key.iter().zip(columns).all(|(a, b)| same(a, b))
                })
            }
        })
    }

    /// Compare the table with the plan's expectation: `Ok(notes)` when it matches.
    pub async fn verify(
        &mut self,
        table: &TargetTable,
        expect: &Expectation,
    ) -> Result<Vec<String>, ExecError> {
        let pg = self.is_postgres();
        let shape = self.shape(table).await?;
        compare(pg, table, expect, shape.as_ref())
    }
}

/// The schema check, pure: every difference is listed.
pub fn compare(
    postgres: bool,
    table: &TargetTable,
    expect: &Expectation,
    shape: Option<&Shape>,
) -> Result<Vec<String>, ExecError> {
    let mismatch = |reason: String| ExecError::Verify {
        table: table.to_string(),
        reason,
    };
    let same = |a: &str, b: &str| {
        if postgres {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    };
    match (expect, shape) {
        (Expectation::Absent, None) => Ok(Vec::new()),
        (Expectation::Absent, Some(_)) => Err(mismatch("the table still exists".into())),
        (Expectation::Columns { .. }, None) => Err(mismatch("the table does not exist".into())),
        (
            Expectation::Columns {
                columns,
                primary_key,
            },
            Some(shape),
        ) => {
            let mut problems = Vec::new();
            let mut notes = Vec::new();
            for e in columns {
                let Some(actual) = shape.columns.iter().find(|c| same(&c.name, &e.name)) else {
                    problems.push(format!("column {} is missing", e.name));
                    continue;
                };
                if actual.nullable != e.nullable {
                    problems.push(format!(
                        "column {} is {} (expected {})",
                        e.name,
                        if actual.nullable { "NULL" } else { "NOT NULL" },
                        if e.nullable { "NULL" } else { "NOT NULL" }
                    ));
                }
                match (&e.data_type, postgres) {
                    (Some(want), true) => {
                        let equal = match (parse_pg_type(want), parse_pg_type(&actual.data_type)) {
                            (Ok(a), Ok(b)) => a == b,
                            _ => want.eq_ignore_ascii_case(&actual.data_type),
                        };
                        if !equal {
                            problems.push(format!(
                                "column {} is {} (expected {want})",
                                e.name, actual.data_type
                            ));
                        }
                    }
                    (Some(_), false) => {}
                    (None, _) => notes.push(format!("type of {} not checked", e.name)),
                }
            }
            for a in &shape.columns {
                if !columns.iter().any(|e| same(&e.name, &a.name)) {
                    problems.push(format!("unexpected column {}", a.name));
                }
            }
            if !primary_key.is_empty()
                && (shape.primary_key.len() != primary_key.len()
                    || !shape
                        .primary_key
                        .iter()
                        .zip(primary_key)
                        .all(|(a, b)| same(a, b)))
            {
                problems.push(format!(
                    "primary key is ({}) (expected ({}))",
                    shape.primary_key.join(", "),
                    primary_key.join(", ")
                ));
            }
            if !postgres {
                notes.push("column types are not compared on MariaDB / MySQL yet".into());
            }
            if problems.is_empty() {
                Ok(notes)
            } else {
                Err(mismatch(problems.join("; ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_ddl_plan::ExpectedColumn;

    fn col(name: &str, ty: &str, nullable: bool) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            data_type: ty.into(),
            nullable,
        }
    }

    #[test]
    fn compare_lists_every_difference() {
        let t = TargetTable {
            schema: "public".into(),
            name: "orders".into(),
        };
        let expect = Expectation::Columns {
            columns: vec![
                ExpectedColumn {
                    name: "id".into(),
                    data_type: Some("bigint".into()),
                    nullable: false,
                },
                ExpectedColumn {
                    name: "note".into(),
                    data_type: Some("varchar(20)".into()),
                    nullable: true,
                },
            ],
            primary_key: vec!["id".into()],
        };
        let good = Shape {
            columns: vec![
                col("id", "bigint", false),
                col("note", "character varying(20)", true),
            ],
            primary_key: vec!["id".into()],
            constraints: vec![],
        };
        assert!(compare(true, &t, &expect, Some(&good)).is_ok());
        let bad = Shape {
            columns: vec![col("id", "integer", true), col("extra", "text", true)],
            primary_key: vec![],
            constraints: vec![],
        };
        let err = compare(true, &t, &expect, Some(&bad))
            .unwrap_err()
            .to_string();
        for part in [
            "column id is NULL",
            "column id is integer",
            "column note is missing",
            "unexpected column extra",
            "primary key",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        assert!(compare(true, &t, &expect, None).is_err());
        assert!(compare(true, &t, &Expectation::Absent, None).is_ok());
        assert!(compare(true, &t, &Expectation::Absent, Some(&good)).is_err());
    }
}
