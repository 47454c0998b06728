//! The sink's part of a pipeline file: which topics to read, which target to write, how to batch.
//!
//! ```yaml
//! name: orders-dr
//! kafka:
//!   bootstrap_servers: 127.0.0.1:19092
//!   topics: [dbserver1.public.orders, dbserver1.public.order_lines]
//! target:
//!   engine: postgres
//!   host: 127.0.0.1
//!   port: 5432
//!   user: replicator
//!   password: ${env:TARGET_PASSWORD}
//!   database: orders_dr
//!   schema: public            # tables land here under their source name
//! tables:                     # optional per-topic overrides
//!   dbserver1.public.order_lines: { table: lines }
//! batch: { max_rows: 5000, linger_ms: 200 }
//! schema_drift: block        # block (default) | evolve | fail
//! errors:                    # poison records (undecodable, or rows the target rejects)
//!   tolerance: all           # none (default: stop) | all (dead-letter and go on)
//!   dead_letter_topic: orders-dr.dlq
//!   max_dead_letters: 1000   # stop once this many went to the DLQ (default: no cap)
//! assignment: { instance: 0, instances: 2 }   # scale-out: this process's share of the partitions
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep_config::SecretRef;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pipeline file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("pipeline file {path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Mariadb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mariadb => "mariadb",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub topics: Vec<String>,
    /// Extra librdkafka consumer properties (e.g. security.protocol); never group/offset settings,
    /// which the sink owns.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<SecretRef>,
    pub database: String,
    /// Schema (PostgreSQL) the tables are written to; MariaDB uses `database`.
    #[serde(default = "default_schema")]
    pub schema: String,
}

fn default_schema() -> String {
    "public".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableOverride {
    /// Target table name (in the target schema) for this topic.
    pub table: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    /// Most records one target transaction applies.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Longest a record waits for its batch to fill.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Most key + value bytes one batch reads.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

fn default_max_bytes() -> usize {
    64 * 1024 * 1024
}

fn default_max_rows() -> usize {
    5_000
}
fn default_linger_ms() -> u64 {
    200
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_rows: default_max_rows(),
            linger_ms: default_linger_ms(),
            max_bytes: default_max_bytes(),
        }
    }
}

impl BatchSettings {
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }
}

/// What the sink does with a change event carrying columns the target table lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftPolicy {
    /// Hold that table (its partitions) visibly until the target has the columns; other
    /// tables go on. The hook the DDL orchestrator uses.
    #[default]
    Block,
    /// Add the missing columns to the target as nullable columns, then apply.
    Evolve,
    /// Stop the sink with the missing columns named.
    Fail,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tolerance {
    /// A poison record stops the sink (nothing after it is applied).
    #[default]
    None,
    /// A poison record goes to the dead-letter topic with its context and the sink goes on.
    All,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSettings {
    #[serde(default)]
    pub tolerance: Tolerance,
    pub dead_letter_topic: Option<String>,
    /// Once this many records went to the dead-letter topic, stop instead: a flood of poison
    /// records is a broken pipeline, not bad luck.
    pub max_dead_letters: Option<u64>,
}

/// This process's share of the pipeline's partitions when several processes split them.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// 0-based index of this process.
    pub instance: u32,
    /// How many processes split the partitions.
    pub instances: u32,
}

impl Default for Assignment {
    fn default() -> Self {
        Self {
            instance: 0,
            instances: 1,
        }
    }
}

impl Assignment {
    /// Whether the `index`-th partition of the pipeline (topics in file order, partitions in
    /// number order) belongs to this process: a deterministic round-robin, so every process
    /// computes the same split without talking to the others.
    pub fn owns(&self, index: usize) -> bool {
        index % self.instances as usize == self.instance as usize
    }
}

/// The pipeline's service-level objectives. The sink exports them next to what it measures,
/// so the shipped Prometheus rules compute each pipeline's burn rate against its own target.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSettings {
    /// A change meets the lag objective when the target commits it within this many seconds
    /// of its source commit (`source.ts_ms`).
    pub lag_seconds: f64,
    /// The fraction of changes that must meet it (0.99: an error budget of 1%).
    pub objective: f64,
    /// The newest change (or Debezium heartbeat, when the pipeline consumes the heartbeat
    /// topic) the sink applied may be at most this old at the source.
    pub freshness_seconds: f64,
}

impl Default for SloSettings {
    fn default() -> Self {
        Self {
            lag_seconds: 5.0,
            objective: 0.99,
            freshness_seconds: 300.0,
        }
    }
}

/// A validated pipeline as far as the sink is concerned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkPipeline {
    /// Identifies this pipeline's offsets in the target; renaming it restarts from the beginning.
    pub name: String,
    pub kafka: KafkaSettings,
    pub target: TargetSettings,
    #[serde(default)]
    pub tables: BTreeMap<String, TableOverride>,
    #[serde(default)]
    pub batch: BatchSettings,
    #[serde(default)]
    pub schema_drift: DriftPolicy,
    #[serde(default)]
    pub errors: ErrorSettings,
    #[serde(default)]
    pub assignment: Assignment,
    #[serde(default)]
    pub slo: SloSettings,
    /// The source side of the pipeline (source database, connectors, topic prefix), read and
    /// validated by `lockstep-ddl-exec` for `lockstep ddl`; the sink does not use it.
    #[serde(default)]
    pub source: Option<serde_yaml_ng::Value>,
}

impl SinkPipeline {
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, PipelineError> {
        let pipeline: SinkPipeline =
            serde_yaml_ng::from_str(text).map_err(|e| PipelineError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let invalid = |field: &str, reason: String| PipelineError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        if !is_identifier(&pipeline.name) {
            return Err(invalid(
                "name",
                format!(
                    "'{}' must be 1-63 characters of letters, digits, '-' or '_'",
                    pipeline.name
                ),
            ));
        }
        let slo = pipeline.slo;
        if !(slo.lag_seconds > 0.0 && slo.lag_seconds <= 86_400.0) {
            return Err(invalid(
                "slo.lag_seconds",
                format!(
                    "{} must be more than 0 and at most 86400 (a day)",
                    slo.lag_seconds
                ),
            ));
        }
        if !(slo.objective >= 0.5 && slo.objective < 1.0) {
            return Err(invalid(
                "slo.objective",
                format!(
                    "{} must be a fraction from 0.5 to below 1 (0.99 allows 1% of changes over slo.lag_seconds; 1 would leave no error budget)",
                    slo.objective
                ),
            ));
        }
        if !(slo.freshness_seconds > 0.0 && slo.freshness_seconds <= 604_800.0) {
            return Err(invalid(
                "slo.freshness_seconds",
                format!(
                    "{} must be more than 0 and at most 604800 (a week)",
                    slo.freshness_seconds
                ),
            ));
        }
        if pipeline.kafka.topics.is_empty() {
            return Err(invalid(
                "kafka.topics",
                "list at least one Debezium topic".into(),
            ));
        }
        if pipeline.batch.max_rows == 0 || pipeline.batch.max_rows > 1_000_000 {
            return Err(invalid(
                "batch.max_rows",
                "must be between 1 and 1000000".into(),
            ));
        }
        for key in pipeline.kafka.consumer.keys() {
            if key.starts_with("group.")
                || key.starts_with("enable.auto")
                || key == "auto.offset.reset"
            {
                return Err(invalid(
                    &format!("kafka.consumer.{key}"),
                    "the sink manages groups and offsets itself (offsets live in the target); remove this key".into(),
                ));
            }
        }
        match (pipeline.errors.tolerance, &pipeline.errors.dead_letter_topic) {
            (Tolerance::All, None) => {
                return Err(invalid(
                    "errors.dead_letter_topic",
                    "tolerance 'all' needs a dead-letter topic: poison records are never dropped silently".into(),
                ))
            }
            (_, Some(dlq)) if pipeline.kafka.topics.contains(dlq) => {
                return Err(invalid(
                    "errors.dead_letter_topic",
                    format!("'{dlq}' is also a source topic; use a topic of its own"),
                ))
            }
            (_, Some(dlq)) if dlq.trim().is_empty() => {
                return Err(invalid(
                    "errors.dead_letter_topic",
                    "must not be empty".into(),
                ))
            }
            _ => {}
        }
        if pipeline.assignment.instances == 0
            || pipeline.assignment.instance >= pipeline.assignment.instances
        {
            return Err(invalid(
                "assignment",
                format!(
                    "instance {} of {} instances: instance must be in 0..instances and instances at least 1",
                    pipeline.assignment.instance, pipeline.assignment.instances
                ),
            ));
        }
        for topic in pipeline.tables.keys() {
            if !pipeline.kafka.topics.contains(topic) {
                return Err(invalid(
                    &format!("tables.{topic}"),
                    "overrides a topic that is not listed in kafka.topics".into(),
                ));
            }
        }
        Ok(pipeline)
    }

    /// Target table for a change event of `source_table` read from `topic`.
    pub fn target_table(&self, topic: &str, source_table: &str) -> String {
        self.target_table_ref(topic, source_table).to_string()
    }

    /// [`Self::target_table`] without a copy, for the per-record paths.
    pub fn target_table_ref<'a>(&'a self, topic: &str, source_table: &'a str) -> &'a str {
        self.tables
            .get(topic)
            .and_then(|o| o.table.as_deref())
            .unwrap_or(source_table)
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "name: orders-dr\nkafka:\n  bootstrap_servers: 127.0.0.1:19092\n  topics: [a.public.orders, a.public.lines]\ntarget:\n  engine: postgres\n  host: 127.0.0.1\n  port: 5432\n  user: u\n  password: ${env:PW}\n  database: dr\ntables:\n  a.public.lines: {table: order_lines}\n";

    #[test]
    fn parses_a_pipeline_with_defaults() {
        let p = SinkPipeline::parse(Path::new("p.yaml"), VALID).expect("valid");
        assert_eq!(p.target.schema, "public");
        assert_eq!(p.batch.max_rows, 5_000);
        assert_eq!(p.target_table("a.public.lines", "lines"), "order_lines");
        assert_eq!(p.target_table("a.public.orders", "orders"), "orders");
        assert_eq!(p.schema_drift, DriftPolicy::Block);
        assert_eq!(p.errors.tolerance, Tolerance::None);
        assert_eq!(p.slo, SloSettings::default());
        let tight =
            format!("{VALID}slo: {{lag_seconds: 1.5, objective: 0.999, freshness_seconds: 60}}\n");
        let tight = SinkPipeline::parse(Path::new("p.yaml"), &tight).expect("valid slo");
        assert_eq!(
            tight.slo,
            SloSettings {
                lag_seconds: 1.5,
                objective: 0.999,
                freshness_seconds: 60.0
            }
        );
        let two = Assignment {
            instance: 1,
            instances: 2,
        };
        assert_eq!(
            (0..5).filter(|i| two.owns(*i)).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(!format!("{p:?}").contains("${env:PW}") || format!("{p:?}").contains("SecretRef"));
    }

    #[test]
    fn rejects_bad_pipelines_naming_the_field() {
        let cases = [
            (
                VALID.replace("name: orders-dr", "name: 'orders dr'"),
                "name",
            ),
            (
                VALID.replace("[a.public.orders, a.public.lines]", "[]"),
                "kafka.topics",
            ),
            (
                VALID.replace("engine: postgres", "engine: oracle"),
                "unknown variant",
            ),
            (
                VALID.replace("tables:\n  a.public.lines", "tables:\n  other.topic"),
                "tables.other.topic",
            ),
            (format!("{VALID}batch: {{max_rows: 0}}\n"), "batch.max_rows"),
            (
                VALID.replace("  topics:", "  consumer: {group.id: x}\n  topics:"),
                "kafka.consumer.group.id",
            ),
            (format!("{VALID}surprise: 1\n"), "unknown field"),
            (
                format!("{VALID}errors: {{tolerance: all}}\n"),
                "errors.dead_letter_topic",
            ),
            (
                format!("{VALID}errors: {{dead_letter_topic: a.public.orders}}\n"),
                "also a source topic",
            ),
            (
                format!("{VALID}assignment: {{instance: 2, instances: 2}}\n"),
                "assignment",
            ),
            (format!("{VALID}schema_drift: ignore\n"), "unknown variant"),
            (
                format!("{VALID}slo: {{lag_seconds: 0, objective: 0.99, freshness_seconds: 60}}\n"),
                "slo.lag_seconds",
            ),
            (
                format!("{VALID}slo: {{lag_seconds: 2, objective: 1, freshness_seconds: 60}}\n"),
                "slo.objective",
            ),
            (
                format!("{VALID}slo: {{lag_seconds: 2, objective: 99, freshness_seconds: 60}}\n"),
                "slo.objective",
            ),
            (
                format!(
                    "{VALID}slo: {{lag_seconds: 2, objective: 0.999, freshness_seconds: -1}}\n"
                ),
                "slo.freshness_seconds",
            ),
            (format!("{VALID}slo: {{lag_seconds: 2}}\n"), "missing field"),
        ];
        for (text, expected) in cases {
            let err = SinkPipeline::parse(Path::new("p.yaml"), &text)
                .expect_err(expected)
                .to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
