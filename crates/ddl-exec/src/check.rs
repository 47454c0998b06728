//! `lockstep pipeline check`: a pipeline file against the live systems. The shell gathers
//! facts (source catalog, target tables, connectors, publication, slots); the checks over
//! them are pure functions.

use lockstep_connect::ConnectClient;
use lockstep_ddl::{Catalog, QualifiedName};
use lockstep_ddl_plan::TargetTable;
use serde::Serialize;

use crate::introspect;
use crate::pipeline::DdlPipeline;
use crate::source::{connect_source, pg_error_text};
use crate::target::{Shape, TargetDb};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

fn finding(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        status,
        detail: detail.into(),
    }
}

/// A connector as Connect reports it (`state: None`: it does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorFacts {
    pub name: String,
    pub state: Option<String>,
    pub failed_tasks: usize,
    pub config: Vec<(String, String)>,
}

impl ConnectorFacts {
    fn get(&self, key: &str) -> Option<&str> {
        self.config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether a Debezium include list (comma-separated regular expressions matched against the
/// whole `schema.table`) covers a table. `None` when the list is absent (everything).
pub fn include_list_covers(list: Option<&str>, table: &QualifiedName) -> bool {
    let Some(list) = list else {
        return true;
    };
    let name = table.to_string();
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| regex::Regex::new(&format!("^(?:{p})$")).is_ok_and(|re| re.is_match(&name)))
}

/// Connectors: exist, run, use the pipeline's topic prefix and publication, and capture its
/// tables; their slots exist.
pub fn check_connectors(
    pipeline: &DdlPipeline,
    connectors: &[ConnectorFacts],
    slots: &[String],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in connectors {
        let what = format!("connector {}", c.name);
        let Some(state) = &c.state else {
            out.push(finding(
                what,
                Status::Fail,
                "does not exist on the Connect cluster",
            ));
            continue;
        };
        if state != "RUNNING" || c.failed_tasks > 0 {
            out.push(finding(
                &what,
                Status::Fail,
                format!(
                    "is {state} with {} failed task(s): DDL needs it RUNNING",
                    c.failed_tasks
                ),
            ));
        } else {
            out.push(finding(&what, Status::Ok, "RUNNING"));
        }
        match c.get("topic.prefix") {
            Some(p) if p == pipeline.source.topic_prefix => {}
            other => out.push(finding(
                &what,
                Status::Fail,
                format!(
                    "topic.prefix is {} but the pipeline says {}",
                    other.unwrap_or("unset"),
                    pipeline.source.topic_prefix
                ),
            )),
        }
        if let (Some(want), Some(have)) = (&pipeline.source.publication, c.get("publication.name"))
        {
            if want != have {
                out.push(finding(
                    &what,
                    Status::Fail,
                    format!("publication.name is {have} but the pipeline says {want}"),
                ));
            }
        }
        for t in &pipeline.tables {
            if !include_list_covers(c.get("table.include.list"), t) {
                out.push(finding(
                    &what,
                    Status::Fail,
                    format!("table.include.list does not capture {t}"),
                ));
            }
        }
        if let Some(slot) = c.get("slot.name") {
            if !slots.iter().any(|s| s == slot) {
                out.push(finding(
                    &what,
                    Status::Warn,
                    format!("replication slot {slot} does not exist on the source (yet)"),
                ));
            }
        }
    }
    out
}

/// The publication (when the pipeline names one) holds every pipeline table.
pub fn check_publication(
    pipeline: &DdlPipeline,
    members: Option<&[QualifiedName]>,
) -> Vec<Finding> {
    let Some(name) = &pipeline.source.publication else {
        return Vec::new();
    };
    let what = format!("publication {name}");
    let Some(members) = members else {
        return vec![finding(what, Status::Fail, "does not exist on the source")];
    };
    let missing: Vec<String> = pipeline
        .tables
        .iter()
        .filter(|t| !members.contains(t))
        .map(|t| t.to_string())
        .collect();
    if missing.is_empty() {
        vec![finding(
            what,
            Status::Ok,
            format!("publishes all {} table(s)", pipeline.tables.len()),
        )]
    } else {
        vec![finding(
            what,
            Status::Fail,
            format!("does not publish {}", missing.join(", ")),
        )]
    }
}

/// Every source table has a primary key and its target table, with every source column.
pub fn check_tables(
    pipeline: &DdlPipeline,
    catalog: &Catalog,
    targets: &[(QualifiedName, TargetTable, Option<Shape>)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let postgres = matches!(pipeline.sink.target.engine, lockstep_sink::Engine::Postgres);
    for (source, target, shape) in targets {
        let what = format!("table {source}");
        let Some(s) = catalog.table(source) else {
            out.push(finding(what, Status::Fail, "missing on the source"));
            continue;
        };
        if s.primary_key.is_empty() {
            out.push(finding(
                &what,
                Status::Fail,
                "has no primary key on the source",
            ));
        }
        let Some(shape) = shape else {
            out.push(finding(
                &what,
                Status::Fail,
                format!("target table {target} does not exist"),
            ));
            continue;
        };
        let missing: Vec<&str> = s
            .columns
            .iter()
            .filter(|c| {
                !shape.columns.iter().any(|t| {
                    if postgres {
                        t.name == c.name
                    } else {
                        t.name.eq_ignore_ascii_case(&c.name)
                    }
                })
            })
            .map(|c| c.name.as_str())
            .collect();
        if missing.is_empty() {
            out.push(finding(
                &what,
                Status::Ok,
                format!("replicated to {target}"),
            ));
        } else {
            out.push(finding(
                &what,
                Status::Fail,
                format!("target {target} lacks column(s) {}", missing.join(", ")),
            ));
        }
    }
    out
}

const PUBLICATION_SQL: &str =
    "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1";
const PUBLICATION_EXISTS_SQL: &str = "SELECT count(*) FROM pg_publication WHERE pubname = $1";
const SLOTS_SQL: &str = "SELECT slot_name::text FROM pg_replication_slots";

/// Gather the facts and run every check. Unreachable systems are failures, not errors: the
/// report says what could not be checked.
pub async fn check_pipeline(
    pipeline: &DdlPipeline,
    connect: Option<&ConnectClient>,
) -> Vec<Finding> {
    // The sink replicates the file's topics with the runtime changes lockstep made (CREATE /
    // DROP / RENAME TABLE) applied: check those. Should the target not answer, its finding
    // below says so and the file's topics are checked.
    let mut target = TargetDb::connect(&pipeline.sink.target).await;
    let mut runtime_unread = None;
    let runtime = match &mut target {
        Ok(t) => t
            .runtime_topics(&pipeline.sink.name)
            .await
            .unwrap_or_else(|e| {
                runtime_unread = Some(e.to_string());
                Vec::new()
            }),
        Err(_) => Vec::new(),
    };
    let merged = pipeline.with_runtime_topics(&runtime);
    let pipeline = &merged;
    let mut out = vec![finding(
        "pipeline file",
        Status::Ok,
        format!(
            "{} table(s){}: {}",
            pipeline.tables.len(),
            if runtime.is_empty() {
                String::new()
            } else {
                format!(
                    " (the file's topics with {} runtime change(s) lockstep made)",
                    runtime.len()
                )
            },
            pipeline
                .tables
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )];
    if let Some(e) = runtime_unread {
        out.push(finding(
            "runtime topics",
            Status::Warn,
            format!("{e}; the file's topics are checked without the changes lockstep made"),
        ));
    }
    let source = match connect_source(&pipeline.source).await {
        Ok(c) => c,
        Err(e) => {
            out.push(finding("source database", Status::Fail, e.to_string()));
            return out;
        }
    };
    out.push(finding("source database", Status::Ok, "reachable"));
    let catalog = match introspect::read_pg_catalog(
        &source,
        &pipeline.source.database,
        &pipeline.tables,
        &pipeline.source.schemas,
    )
    .await
    {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(finding("source tables", Status::Fail, e.to_string()));
            None
        }
    };
    let facts = pipeline.facts();
    match target {
        Err(e) => out.push(finding("target database", Status::Fail, e.to_string())),
        Ok(mut target) => {
            out.push(finding("target database", Status::Ok, "reachable"));
            if let Some(catalog) = &catalog {
                let mut shapes = Vec::new();
                for t in &pipeline.tables {
                    let tt = facts.target_table(t);
                    match target.shape(&tt).await {
                        Ok(s) => shapes.push((t.clone(), tt, s)),
                        Err(e) => {
                            out.push(finding(format!("table {t}"), Status::Fail, e.to_string()))
                        }
                    }
                }
                out.extend(check_tables(pipeline, catalog, &shapes));
            }
        }
    }
    if let Some(name) = &pipeline.source.publication {
        let exists = source
            .query_one(PUBLICATION_EXISTS_SQL, &[name])
            .await
            .map(|r| r.get::<_, i64>(0) > 0);
        match exists {
            Err(e) => out.push(finding(
                format!("publication {name}"),
                Status::Fail,
                pg_error_text(&e),
            )),
            Ok(false) => out.extend(check_publication(pipeline, None)),
            Ok(true) => match source.query(PUBLICATION_SQL, &[name]).await {
                Ok(rows) => {
                    let members: Vec<QualifiedName> = rows
                        .iter()
                        .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
                        .collect();
                    out.extend(check_publication(pipeline, Some(&members)));
                }
                Err(e) => out.push(finding(
                    format!("publication {name}"),
                    Status::Fail,
                    pg_error_text(&e),
                )),
            },
        }
    }
    let Some(connect) = connect else {
        out.push(finding(
            "connectors",
            Status::Warn,
            "not checked: no Kafka Connect cluster given (--connect-url or lockstep.yaml)",
        ));
        return out;
    };
    let slots: Vec<String> = source
        .query(SLOTS_SQL, &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    let mut connectors = Vec::new();
    for name in &pipeline.source.connectors {
        let status = connect.connector_status(name).await;
        let facts = match status {
            Err(e) if e.is_not_found() => ConnectorFacts {
                name: name.clone(),
                state: None,
                failed_tasks: 0,
                config: Vec::new(),
            },
            Err(e) => {
                out.push(finding(
                    format!("connector {name}"),
                    Status::Fail,
                    e.to_string(),
                ));
                continue;
            }
            Ok(s) => {
                // A busy worker can fail one read (the suite's tests share one Connect): three tries.
                let mut read = connect.get_connector_config(name).await;
                for _ in 0..2 {
                    if read.is_ok() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    read = connect.get_connector_config(name).await;
                }
                let config = match read {
                    Ok(c) => c
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    Err(e) => {
                        out.push(finding(
                            format!("connector {name}"),
                            Status::Fail,
                            format!("its config could not be read: {e}"),
                        ));
                        continue;
                    }
                };
                ConnectorFacts {
                    name: name.clone(),
                    state: Some(s.connector.state.to_string()),
                    failed_tasks: s.failed_tasks().count(),
                    config,
                }
            }
        };
        connectors.push(facts);
    }
    out.extend(check_connectors(pipeline, &connectors, &slots));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn pipeline() -> DdlPipeline {
        DdlPipeline::parse(
            Path::new("p.yaml"),
            "name: p
kafka: {bootstrap_servers: 'x:1', topics: [db1.public.orders]}
target: {engine: postgres, host: t, port: 5432, user: u, database: d}
source: {engine: postgres, host: s, port: 5432, user: u, database: app, connectors: [src], topic_prefix: db1, publication: pub1}
",
        )
        .unwrap()
    }

    fn connector(state: Option<&str>, config: &[(&str, &str)]) -> ConnectorFacts {
        ConnectorFacts {
            name: "src".into(),
            state: state.map(str::to_string),
            failed_tasks: 0,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn include_lists_are_anchored_regexes() {
        let t = QualifiedName::new("public", "orders");
        assert!(include_list_covers(None, &t));
        assert!(include_list_covers(Some("public.orders"), &t));
        assert!(include_list_covers(Some("inventory.x, public\\..*"), &t));
        assert!(!include_list_covers(Some("public.orders_archive"), &t));
        assert!(!include_list_covers(Some("public.order"), &t));
        assert!(
            !include_list_covers(Some("("), &t),
            "an invalid pattern covers nothing"
        );
    }

    #[test]
    fn connector_checks() {
        let p = pipeline();
        let good = connector(
            Some("RUNNING"),
            &[
                ("topic.prefix", "db1"),
                ("publication.name", "pub1"),
                ("table.include.list", "public.orders"),
                ("slot.name", "s1"),
            ],
        );
        let f = check_connectors(&p, std::slice::from_ref(&good), &["s1".into()]);
        assert!(f.iter().all(|f| f.status == Status::Ok), "{f:?}");
        let f = check_connectors(&p, &[good], &[]);
        assert!(
            f.iter()
                .any(|f| f.status == Status::Warn && f.detail.contains("slot")),
            "{f:?}"
        );
        let bad = connector(
            Some("PAUSED"),
            &[
                ("topic.prefix", "other"),
                ("publication.name", "pub2"),
                ("table.include.list", "public.x"),
            ],
        );
        let f = check_connectors(&p, &[bad], &[]);
        let fails: Vec<&str> = f
            .iter()
            .filter(|f| f.status == Status::Fail)
            .map(|f| f.detail.as_str())
            .collect();
        assert_eq!(fails.len(), 4, "{fails:?}");
        let f = check_connectors(&p, &[connector(None, &[])], &[]);
        assert_eq!(f[0].status, Status::Fail);
    }

    #[test]
    fn publication_checks() {
        let p = pipeline();
        let orders = QualifiedName::new("public", "orders");
        assert_eq!(check_publication(&p, Some(&[orders]))[0].status, Status::Ok);
        assert_eq!(check_publication(&p, Some(&[]))[0].status, Status::Fail);
        assert_eq!(check_publication(&p, None)[0].status, Status::Fail);
    }
}
