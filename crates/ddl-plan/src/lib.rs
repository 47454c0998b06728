//! Strategy planning for DDL on replicated databases (pure: no I/O).
//!
//! A classified statement ([`lockstep_ddl::Statement`]) and the pipeline's facts
//! ([`PipelineFacts`]) become a [`Plan`]: an ordered list of [`Step`]s, each with its
//! compensation (what to do if a later step fails) and whether it is idempotent. Plans are
//! data: they serialise to JSON / YAML for `--dry-run` and for the durable store, and an
//! executor runs them step by step.
//!
//! One strategy per class (see [`lockstep_ddl::Strategy`]):
//! - target-first (additive, widening, DROP NOT NULL, defaults, indexes, views, CHECK,
//!   comments): target, then source; no pause;
//! - expand-contract (DROP COLUMN, narrowing, SET NOT NULL, NOT NULL without default,
//!   computed defaults): prepare the target, source, mark, wait until the sink applied
//!   everything up to the mark, finish the target (re-snapshot when the source rewrote
//!   values without change events);
//! - boundary (RENAME COLUMN, type conversions): pause the connector, run the source DDL
//!   and emit a mark in the same transaction, hold the sink's table at the mark, resume,
//!   wait, change the target, release;
//! - key change (primary key): quiesce the table, drain, stop the connector, change the
//!   source then the target, restart, re-snapshot;
//! - CREATE / DROP / RENAME TABLE and TRUNCATE mirrored at their position in the stream.

mod facts;
mod plan;
mod render;
pub mod schedule;
mod step;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use facts::{
    PipelineFacts, PlanSettings, PublicationFacts, SinkKind, TargetEngine, TargetFacts, TargetTable,
};
pub use plan::{plan_script, plan_statement};
pub use render::{quote_ident, type_sql};
pub use step::{
    AuditStage, Check, Compensation, Expectation, ExpectedColumn, Plan, Step, StepKind,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanErrorKind {
    /// The statement touches a table the pipeline does not replicate.
    OutsidePipeline,
    /// The statement touches the connector's signal table.
    SignalTable,
    /// The strategy needs lockstep's sink (holding a table at a source position).
    NeedsLockstepSink,
    /// The strategy needs an incremental snapshot and the pipeline has no signal table.
    NeedsSignalTable,
    /// The pipeline facts name no source connector.
    NoConnector,
    /// A type or expression has no equivalent on the target engine.
    CannotTranslate,
}

/// A statement that cannot be planned for this pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanError {
    pub statement: usize,
    pub kind: PlanErrorKind,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "statement {}: {}", self.statement + 1, self.message)
    }
}

impl std::error::Error for PlanError {}

/// Every statement of a script that cannot be planned; nothing of the script may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct PlanErrors {
    pub errors: Vec<PlanError>,
}

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DDL cannot be planned, nothing applied:")?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}
