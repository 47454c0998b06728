//! Runs lockstep's DDL plans against the live pipeline (issue 4's imperative shell).
//!
//! - [`pipeline`]: the DDL view of a pipeline file (the sink's file plus a `source:` section)
//!   and the [`lockstep_ddl_plan::PipelineFacts`] it yields;
//! - [`introspect`]: the source catalog adapter (PostgreSQL `pg_catalog` → [`lockstep_ddl::Catalog`]);
//! - [`source`] / [`target`]: the database adapters (source DDL with `lock_timeout` and
//!   retries; target DDL, shape and `skip_if` checks);
//! - [`exec`]: the durable executor over `lockstep-store`;
//! - [`failpoint`]: a test hook (`LOCKSTEP_FAILPOINT`) that stops the executor at one step
//!   so a test can kill it there;
//! - [`guard`]: the guardrails checked before a DDL starts (connectors running, sink lag,
//!   no incremental snapshot).
//!
//! [`prepare`] is the whole read-only path of `lockstep ddl plan`: introspect, classify, plan.

pub mod check;
pub mod error;
pub mod exec;
pub mod failpoint;
pub mod guard;
pub mod include_list;
pub mod introspect;
pub mod pipeline;
pub mod position;
pub mod quiesce;
pub mod rows;
pub mod sink_api;
pub mod source;
pub mod tables;
pub mod target;

use lockstep_ddl::{classify, Catalog, Classification};
use lockstep_ddl_plan::{plan_script, PipelineFacts, Plan};
use serde::Serialize;

pub use error::ExecError;
pub use exec::{Executor, Recovery, RunOutcome, StoredPlan};
pub use pipeline::DdlPipeline;
pub use target::TargetDb;

/// Why a script cannot run: every reason, nothing applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusals {
    /// `classify`, `plan` or `execute` (the executor cannot run a step of the plan yet).
    pub stage: &'static str,
    pub reasons: Vec<String>,
}

/// A script ready to run.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    pub catalog: Catalog,
    pub classification: Classification,
    pub plans: Vec<Plan>,
}

/// Classify and plan a script against a catalog (pure).
pub fn plan_with(
    script: &str,
    catalog: &Catalog,
    facts: &PipelineFacts,
) -> Result<Prepared, Refusals> {
    let classification = classify(script, catalog).map_err(|r| Refusals {
        stage: "classify",
        reasons: r
            .refusals
            .iter()
            .map(|r| match (r.statement, &r.sql) {
                (Some(i), Some(sql)) => format!("statement {} ({sql}): {}", i + 1, r.message),
                _ => r.message.clone(),
            })
            .collect(),
    })?;
    let plans = plan_script(&classification, facts).map_err(|e| Refusals {
        stage: "plan",
        reasons: e.errors.iter().map(|e| e.to_string()).collect(),
    })?;
    Ok(Prepared {
        catalog: catalog.clone(),
        classification,
        plans,
    })
}

/// Introspect the source, classify and plan. The outer error is a failure to reach or read
/// the source; the inner one a refusal of the script.
pub async fn prepare(
    pipeline: &DdlPipeline,
    script: &str,
) -> Result<Result<Prepared, Refusals>, ExecError> {
    // Refuse what the classifier would refuse anyway before touching the source.
    if script.len() > lockstep_ddl::MAX_SCRIPT_BYTES {
        return Ok(Err(Refusals {
            stage: "classify",
            reasons: vec![format!(
                "the script is {} bytes; lockstep accepts at most {}: split it",
                script.len(),
                lockstep_ddl::MAX_SCRIPT_BYTES
            )],
        }));
    }
    // The sink may read topics the file does not list (CREATE TABLE) or no longer read some
    // it lists (DROP TABLE): plan against the tables it replicates now.
    let mut target = TargetDb::connect(&pipeline.sink.target).await?;
    let runtime = target.runtime_topics(&pipeline.sink.name).await?;
    let merged = pipeline.with_runtime_topics(&runtime);
    let pipeline = &merged;
    let client = source::connect_source(&pipeline.source).await?;
    let catalog = introspect::read_pg_catalog(
        &client,
        &pipeline.source.database,
        &pipeline.tables,
        &pipeline.source.schemas,
    )
    .await?;
    Ok(plan_with(script, &catalog, &pipeline.facts()))
}
