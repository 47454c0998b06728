//! What the planner needs to know about the pipeline, as data.

use std::collections::BTreeMap;
use std::fmt;

use lockstep_ddl::QualifiedName;
use serde::{Deserialize, Serialize};

/// The target database's engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetEngine {
    Postgres,
    Mariadb,
}

impl fmt::Display for TargetEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetEngine::Postgres => "postgres",
            TargetEngine::Mariadb => "mariadb",
        })
    }
}

/// What applies change events to the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SinkKind {
    /// lockstep's own sink: it can hold a table at a source position (`block` policy).
    Lockstep,
    /// A Kafka Connect sink connector (JDBC sink...): it cannot hold a table, so plans that
    /// need a hold are refused for it.
    Connect { connector: String },
}

/// A table on the target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetTable {
    /// PostgreSQL schema, or MariaDB database.
    pub schema: String,
    pub name: String,
}

impl fmt::Display for TargetTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFacts {
    pub engine: TargetEngine,
    /// Schema (PostgreSQL) or database (MariaDB) the tables land in.
    pub schema: String,
    /// Target table names that differ from the source's, by source `schema.table`.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicationFacts {
    pub name: String,
    /// `FOR ALL TABLES`: new tables join by themselves.
    #[serde(default)]
    pub all_tables: bool,
}

/// Timeouts and retries the plan's steps carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSettings {
    /// `lock_timeout` for source DDL: a DDL waiting for a lock blocks every writer behind it.
    pub lock_timeout_ms: u64,
    /// Attempts after a lock timeout.
    pub ddl_retries: u32,
    /// Longest wait for the sink to reach a position, or for a snapshot to finish.
    pub wait_timeout_ms: u64,
    /// Longest wait for the sink to drain a quiesced table: writes to it wait meanwhile, so
    /// a sink far behind undoes the plan (nothing changed) rather than stall them.
    #[serde(default = "default_quiesce_timeout_ms")]
    pub quiesce_timeout_ms: u64,
}

fn default_quiesce_timeout_ms() -> u64 {
    PlanSettings::default().quiesce_timeout_ms
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self {
            lock_timeout_ms: 2_000,
            ddl_retries: 5,
            wait_timeout_ms: 600_000,
            quiesce_timeout_ms: 30_000,
        }
    }
}

/// The pipeline as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineFacts {
    /// The Debezium source connectors capturing the pipeline's tables.
    pub source_connectors: Vec<String>,
    /// Debezium `topic.prefix`: a table's topic is `<prefix>.<schema>.<table>`.
    pub topic_prefix: String,
    /// Topics that do not follow that rule, by source `schema.table`.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// The PostgreSQL publication the connector reads (`None` for MySQL sources).
    #[serde(default)]
    pub publication: Option<PublicationFacts>,
    /// Debezium `signal.data.collection`, needed for incremental snapshots.
    #[serde(default)]
    pub signal_table: Option<QualifiedName>,
    /// Whether the connector emits TRUNCATE events (`skipped.operations` without `t`).
    #[serde(default)]
    pub emits_truncate: bool,
    pub sink: SinkKind,
    pub target: TargetFacts,
    /// The tables the pipeline replicates.
    pub tables: Vec<QualifiedName>,
    #[serde(default)]
    pub settings: PlanSettings,
}

impl PipelineFacts {
    /// The target table a source table lands in.
    pub fn target_table(&self, source: &QualifiedName) -> TargetTable {
        TargetTable {
            schema: self.target.schema.clone(),
            name: self
                .target
                .tables
                .get(&source.to_string())
                .cloned()
                .unwrap_or_else(|| source.name.clone()),
        }
    }

    /// The topic a source table's events go to.
    pub fn topic(&self, source: &QualifiedName) -> String {
        self.topics
            .get(&source.to_string())
            .cloned()
            .unwrap_or_else(|| format!("{}.{}.{}", self.topic_prefix, source.schema, source.name))
    }

    pub fn has_table(&self, t: &QualifiedName) -> bool {
        self.tables.contains(t)
    }
}
