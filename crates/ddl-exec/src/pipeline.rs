//! The DDL view of a pipeline file: the sink's file (`lockstep_sink::SinkPipeline`: topics,
//! target) plus a `source:` section naming the source database and its connectors.
//!
//! ```yaml
//! name: orders-dr
//! kafka: {bootstrap_servers: 127.0.0.1:19092, topics: [dbserver1.public.orders]}
//! target: {engine: postgres, host: 127.0.0.1, port: 5432, user: replicator,
//!          password: ${env:TARGET_PASSWORD}, database: orders_dr, schema: public}
//! source:
//!   engine: postgres
//!   host: 127.0.0.1
//!   port: 5432
//!   user: lockstep
//!   password: ${env:SOURCE_PASSWORD}
//!   database: orders
//!   connectors: [orders-source]       # the Debezium connectors capturing the tables
//!   topic_prefix: dbserver1           # Debezium topic.prefix
//!   publication: dbz_publication      # optional; publication_all_tables: true for FOR ALL TABLES
//!   signal_table: public.dbz_signal   # optional; needed for plans with a re-snapshot
//!   emits_truncate: false
//!   sink_api: http://127.0.0.1:8080   # optional: the running sink's REST API (holds, drain)
//!   lock_timeout_ms: 2000             # optional plan settings
//!   ddl_retries: 5
//!   wait_timeout_ms: 600000
//!   quiesce_timeout_ms: 30000         # longest drain of a quiesced table (its writes wait)
//!   guardrails:                       # optional; checked before a DDL starts (crate::guard)
//!     max_lag_records: 10000          # records the sink has not applied yet, all partitions
//!     max_lag_seconds: 300            # age of the oldest record it has not applied
//!     timeout_ms: 30000               # bound of each reading
//! ```
//!
//! The pipeline's tables are its topics' tables (`<topic_prefix>.<schema>.<table>`); a topic
//! that does not follow Debezium's default naming is refused (routed topics are not supported
//! yet). Loading is all or nothing, and every error names the file and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lockstep_config::SecretRef;
use lockstep_ddl::QualifiedName;
use lockstep_ddl_plan::{
    PipelineFacts, PlanSettings, PublicationFacts, SinkKind, TargetEngine, TargetFacts,
};
use lockstep_sink::pipeline::{Engine as SinkEngine, SinkPipeline};
use serde::Deserialize;

use crate::error::ExecError;

/// The source database's engine (PostgreSQL now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceEngine {
    Postgres,
}

/// The `source:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    pub engine: SourceEngine,
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(default)]
    pub password: Option<SecretRef>,
    pub database: String,
    pub connectors: Vec<String>,
    pub topic_prefix: String,
    #[serde(default)]
    pub publication: Option<String>,
    #[serde(default)]
    pub publication_all_tables: bool,
    #[serde(default)]
    pub signal_table: Option<String>,
    #[serde(default)]
    pub emits_truncate: bool,
    /// Schemas where a CREATE TABLE joins the pipeline, besides those holding its tables.
    #[serde(default)]
    pub schemas: Vec<String>,
    #[serde(default)]
    pub sink_api: Option<String>,
    #[serde(default)]
    pub lock_timeout_ms: Option<u64>,
    #[serde(default)]
    pub ddl_retries: Option<u32>,
    #[serde(default)]
    pub wait_timeout_ms: Option<u64>,
    #[serde(default)]
    pub quiesce_timeout_ms: Option<u64>,
    /// Limits of the guardrails checked before a DDL starts (`crate::guard`).
    #[serde(default)]
    pub guardrails: Option<crate::guard::GuardrailLimits>,
}

/// A pipeline file with both halves validated.
#[derive(Debug, Clone)]
pub struct DdlPipeline {
    pub path: PathBuf,
    pub sink: SinkPipeline,
    pub source: SourceSettings,
    /// The replicated source tables, from the topics.
    pub tables: Vec<QualifiedName>,
    pub signal_table: Option<QualifiedName>,
}

fn invalid(path: &Path, field: &str, reason: impl Into<String>) -> ExecError {
    ExecError::Pipeline {
        path: path.to_path_buf(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// `schema.table`, both parts non-empty, no quoting.
fn qualified(text: &str) -> Option<QualifiedName> {
    let (schema, name) = text.split_once('.')?;
    if schema.is_empty() || name.is_empty() || name.contains('.') {
        return None;
    }
    Some(QualifiedName::new(schema, name))
}

impl DdlPipeline {
    pub fn load(path: &Path) -> Result<Self, ExecError> {
        let text = std::fs::read_to_string(path).map_err(|e| ExecError::PipelineRead {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ExecError> {
        let sink = SinkPipeline::parse(path, text).map_err(|e| ExecError::PipelineSink {
            message: e.to_string(),
        })?;
        let raw = sink.source.clone().ok_or_else(|| {
            invalid(
                path,
                "source",
                "missing: `lockstep ddl` needs the source database and its connectors (see `lockstep ddl --help` for the section)",
            )
        })?;
        let source: SourceSettings =
            serde_yaml_ng::from_value(raw).map_err(|e| invalid(path, "source", e.to_string()))?;
        let nonempty = |field: &str, v: &str| {
            if v.trim().is_empty() {
                Err(invalid(path, field, "must not be empty"))
            } else {
                Ok(())
            }
        };
        nonempty("source.host", &source.host)?;
        nonempty("source.user", &source.user)?;
        nonempty("source.database", &source.database)?;
        nonempty("source.topic_prefix", &source.topic_prefix)?;
        if source.connectors.is_empty() {
            return Err(invalid(
                path,
                "source.connectors",
                "list the Debezium connector(s) capturing the pipeline's tables",
            ));
        }
        for (i, c) in source.connectors.iter().enumerate() {
            nonempty(&format!("source.connectors[{i}]"), c)?;
        }
        if let Some(ms) = source.lock_timeout_ms {
            if ms == 0 || ms > 600_000 {
                return Err(invalid(
                    path,
                    "source.lock_timeout_ms",
                    "must be between 1 and 600000 (a DDL waiting for a lock blocks every writer behind it)",
                ));
            }
        }
        if source.ddl_retries.is_some_and(|r| r > 100) {
            return Err(invalid(path, "source.ddl_retries", "must be at most 100"));
        }
        if source.wait_timeout_ms == Some(0) {
            return Err(invalid(path, "source.wait_timeout_ms", "must be positive"));
        }
        if source
            .quiesce_timeout_ms
            .is_some_and(|t| t == 0 || t > 600_000)
        {
            return Err(invalid(
                path,
                "source.quiesce_timeout_ms",
                "must be between 1 and 600000 (writes to a quiesced table wait that long at most)",
            ));
        }
        if let Some(limits) = &source.guardrails {
            limits
                .validate()
                .map_err(|(field, reason)| invalid(path, field, reason))?;
        }
        if let Some(url) = &source.sink_api {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    path,
                    "source.sink_api",
                    format!("'{url}' is not an http(s) URL"),
                ));
            }
        }
        let signal_table = match &source.signal_table {
            None => None,
            Some(s) => Some(qualified(s).ok_or_else(|| {
                invalid(
                    path,
                    "source.signal_table",
                    format!("'{s}' is not schema.table"),
                )
            })?),
        };
        let prefix = format!("{}.", source.topic_prefix);
        let mut tables = Vec::new();
        for (i, topic) in sink.kafka.topics.iter().enumerate() {
            let table = topic
                .strip_prefix(&prefix)
                .and_then(qualified)
                .ok_or_else(|| {
                    invalid(
                        path,
                        &format!("kafka.topics[{i}]"),
                        format!(
                            "'{topic}' is not <topic_prefix>.<schema>.<table> with topic_prefix '{}': lockstep ddl reads the pipeline's tables from Debezium's default topic names (routed topics are not supported yet)",
                            source.topic_prefix
                        ),
                    )
                })?;
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            sink,
            source,
            tables,
            signal_table,
        })
    }

    /// The pipeline as its running sink reads it (pure): the topics added or removed at
    /// runtime (`lockstep_sink::topics`, recorded in the target by CREATE / DROP TABLE plans)
    /// applied to the file's. A runtime topic that does not follow `<topic_prefix>.<schema>.
    /// <table>` names no table lockstep can plan for and is left out of the tables.
    pub fn with_runtime_topics(&self, runtime: &[lockstep_sink::topics::RuntimeTopic]) -> Self {
        let mut out = self.clone();
        out.sink.kafka.topics =
            lockstep_sink::topics::effective_topics(&self.sink.kafka.topics, runtime);
        for r in runtime.iter().filter(|r| !r.removed) {
            if let Some(table) = &r.table {
                out.sink.tables.insert(
                    r.topic.clone(),
                    lockstep_sink::pipeline::TableOverride {
                        table: Some(table.clone()),
                    },
                );
            }
        }
        let prefix = format!("{}.", self.source.topic_prefix);
        out.tables = Vec::new();
        for topic in &out.sink.kafka.topics {
            if let Some(t) = topic.strip_prefix(&prefix).and_then(qualified) {
                if !out.tables.contains(&t) {
                    out.tables.push(t);
                }
            }
        }
        out
    }

    /// What the planner needs to know, as data.
    pub fn facts(&self) -> PipelineFacts {
        let defaults = PlanSettings::default();
        let (engine, schema) = match self.sink.target.engine {
            SinkEngine::Postgres => (TargetEngine::Postgres, self.sink.target.schema.clone()),
            SinkEngine::Mariadb => (TargetEngine::Mariadb, self.sink.target.database.clone()),
        };
        let mut renamed = BTreeMap::new();
        for t in &self.tables {
            let topic = format!("{}.{}.{}", self.source.topic_prefix, t.schema, t.name);
            let target = self.sink.target_table(&topic, &t.name);
            if target != t.name {
                renamed.insert(t.to_string(), target);
            }
        }
        PipelineFacts {
            source_connectors: self.source.connectors.clone(),
            topic_prefix: self.source.topic_prefix.clone(),
            topics: BTreeMap::new(),
            publication: self
                .source
                .publication
                .clone()
                .map(|name| PublicationFacts {
                    name,
                    all_tables: self.source.publication_all_tables,
                }),
            signal_table: self.signal_table.clone(),
            emits_truncate: self.source.emits_truncate,
            sink: SinkKind::Lockstep,
            target: TargetFacts {
                engine,
                schema,
                tables: renamed,
            },
            tables: self.tables.clone(),
            settings: PlanSettings {
                lock_timeout_ms: self
                    .source
                    .lock_timeout_ms
                    .unwrap_or(defaults.lock_timeout_ms),
                ddl_retries: self.source.ddl_retries.unwrap_or(defaults.ddl_retries),
                wait_timeout_ms: self
                    .source
                    .wait_timeout_ms
                    .unwrap_or(defaults.wait_timeout_ms),
                quiesce_timeout_ms: self
                    .source
                    .quiesce_timeout_ms
                    .unwrap_or(defaults.quiesce_timeout_ms),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name: p1
kafka: {bootstrap_servers: 'x:1', topics: [db1.public.orders, db1.app.lines]}
target: {engine: postgres, host: t, port: 5432, user: u, database: d, schema: mirror}
tables: {db1.app.lines: {table: order_lines}}
";

    fn parse(source: &str) -> Result<DdlPipeline, ExecError> {
        DdlPipeline::parse(Path::new("p.yaml"), &format!("{BASE}{source}"))
    }

    const SOURCE: &str = "source:
  engine: postgres
  host: s
  port: 5432
  user: u
  password: ${env:SRC_PW}
  database: app
  connectors: [src1]
  topic_prefix: db1
  publication: pub1
  signal_table: public.sig
  lock_timeout_ms: 500
";

    #[test]
    fn facts_come_from_both_halves() {
        let p = parse(SOURCE).unwrap();
        assert_eq!(
            p.tables,
            vec![
                QualifiedName::new("public", "orders"),
                QualifiedName::new("app", "lines")
            ]
        );
        let f = p.facts();
        assert_eq!(f.source_connectors, vec!["src1".to_string()]);
        assert_eq!(f.target.schema, "mirror");
        assert_eq!(
            f.target_table(&QualifiedName::new("app", "lines")).name,
            "order_lines"
        );
        assert_eq!(f.settings.lock_timeout_ms, 500);
        assert_eq!(f.settings.ddl_retries, PlanSettings::default().ddl_retries);
        assert_eq!(
            f.settings.quiesce_timeout_ms,
            PlanSettings::default().quiesce_timeout_ms
        );
        assert_eq!(f.publication.map(|p| p.name), Some("pub1".into()));
        assert_eq!(f.signal_table, Some(QualifiedName::new("public", "sig")));
        assert_eq!(f.sink, SinkKind::Lockstep);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let cases: &[(&str, &str)] = &[
            ("", "source"),
            (
                &SOURCE.replace("connectors: [src1]", "connectors: []"),
                "source.connectors",
            ),
            (
                &SOURCE.replace("topic_prefix: db1", "topic_prefix: other"),
                "kafka.topics[0]",
            ),
            (
                &SOURCE.replace("lock_timeout_ms: 500", "lock_timeout_ms: 0"),
                "source.lock_timeout_ms",
            ),
            (
                &format!("{SOURCE}  quiesce_timeout_ms: 0\n"),
                "source.quiesce_timeout_ms",
            ),
            (&SOURCE.replace("public.sig", "sig"), "source.signal_table"),
            (
                &format!("{SOURCE}  guardrails: {{max_lag_seconds: 0}}\n"),
                "source.guardrails.max_lag_seconds",
            ),
            (
                &format!("{SOURCE}  guardrails: {{timeout_ms: 999999}}\n"),
                "source.guardrails.timeout_ms",
            ),
            (&format!("{SOURCE}  guardrails: {{max_lag: 5}}\n"), "source"),
            (&format!("{SOURCE}  colour: red\n"), "source"),
            (
                &SOURCE.replace("engine: postgres\n  host", "engine: oracle\n  host"),
                "source",
            ),
        ];
        for (source, field) in cases {
            let err = parse(source).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("p.yaml"), "{text}");
            assert!(
                matches!(&err, ExecError::Pipeline { field: f, .. } if f == field),
                "{field}: {text}"
            );
        }
    }

    #[test]
    fn runtime_topics_join_and_leave_the_tables() {
        use lockstep_sink::topics::RuntimeTopic;
        let p = parse(SOURCE).unwrap();
        let runtime = vec![
            RuntimeTopic {
                topic: "db1.public.orders".into(),
                table: None,
                removed: true,
            },
            RuntimeTopic {
                topic: "db1.public.fresh".into(),
                table: Some("fresh_copy".into()),
                removed: false,
            },
            RuntimeTopic {
                topic: "routed.elsewhere".into(),
                table: None,
                removed: false,
            },
        ];
        let q = p.with_runtime_topics(&runtime);
        assert_eq!(
            q.tables,
            vec![
                QualifiedName::new("app", "lines"),
                QualifiedName::new("public", "fresh")
            ]
        );
        assert_eq!(
            q.facts()
                .target_table(&QualifiedName::new("public", "fresh"))
                .name,
            "fresh_copy"
        );
        assert_eq!(p.with_runtime_topics(&[]).tables, p.tables);
    }

    #[test]
    fn the_sink_half_is_validated_too() {
        let text = format!("{}{SOURCE}", BASE.replace("name: p1", "name: 'bad name'"));
        let err = DdlPipeline::parse(Path::new("p.yaml"), &text).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
    }
}
