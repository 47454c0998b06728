//! The target database behind one enum, so the runner is engine-neutral.
//!
//! Each engine plans a table's coalesced batch into its own statements (pure: `crate::pg_sql`,
//! `crate::mysql_sql`), and its adapter applies a whole batch's statements together with the
//! offsets in one transaction (I/O). Static dispatch through an enum: the engine is fixed per
//! pipeline and there are two of them.

use std::collections::{BTreeMap, HashMap};

use lockstep_debezium::Column;

use crate::mariadb::MariaDbTarget;
use crate::mysql_sql::MyStatement;
use crate::pg_sql::PgStatement;
use crate::pipeline::{Engine, TargetSettings};
use crate::postgres::PgTarget;
use crate::table::TargetTable;
use crate::{ApplyError, PartitionKey};

/// One planned statement, in the dialect of the target it was planned for.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Postgres(PgStatement),
    MariaDb(MyStatement),
}

// One per sink, created once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Target {
    Postgres(PgTarget),
    MariaDb(MariaDbTarget),
}

impl Target {
    /// Connects and makes sure the offsets table exists.
    pub async fn connect(settings: &TargetSettings) -> Result<Self, ApplyError> {
        Ok(match settings.engine {
            Engine::Postgres => Target::Postgres(PgTarget::connect(settings).await?),
            Engine::Mariadb => Target::MariaDb(MariaDbTarget::connect(settings).await?),
        })
    }

    /// The committed position of every partition of this pipeline: the next offset to apply.
    pub async fn load_offsets(
        &mut self,
        pipeline: &str,
    ) -> Result<BTreeMap<PartitionKey, i64>, ApplyError> {
        match self {
            Target::Postgres(t) => t.load_offsets(pipeline).await,
            Target::MariaDb(t) => t.load_offsets(pipeline).await,
        }
    }

    /// Topics added to or removed from this pipeline at runtime (`crate::topics`).
    pub async fn load_topics(
        &mut self,
        pipeline: &str,
    ) -> Result<Vec<crate::topics::RuntimeTopic>, ApplyError> {
        match self {
            Target::Postgres(t) => t.load_topics(pipeline).await,
            Target::MariaDb(t) => t.load_topics(pipeline).await,
        }
    }

    /// Records a runtime topic change; it outlives the process.
    pub async fn save_topic(
        &mut self,
        pipeline: &str,
        topic: &crate::topics::RuntimeTopic,
    ) -> Result<(), ApplyError> {
        match self {
            Target::Postgres(t) => t.save_topic(pipeline, topic).await,
            Target::MariaDb(t) => t.save_topic(pipeline, topic).await,
        }
    }

    /// The tables held on request (`crate::holds`).
    pub async fn load_holds(&mut self, pipeline: &str) -> Result<Vec<String>, ApplyError> {
        match self {
            Target::Postgres(t) => t.load_holds(pipeline).await,
            Target::MariaDb(t) => t.load_holds(pipeline).await,
        }
    }

    /// Records a hold on request (`held`) or its release; it outlives the process.
    pub async fn save_hold(
        &mut self,
        pipeline: &str,
        table: &str,
        held: bool,
    ) -> Result<(), ApplyError> {
        match self {
            Target::Postgres(t) => t.save_hold(pipeline, table, held).await,
            Target::MariaDb(t) => t.save_hold(pipeline, table, held).await,
        }
    }

    /// The catalog's description of a target table, cached until [`Target::forget`].
    pub async fn table(&mut self, name: &str) -> Result<TargetTable, ApplyError> {
        match self {
            Target::Postgres(t) => t.table(name).await,
            Target::MariaDb(t) => t.table(name).await,
        }
    }

    /// Drops cached catalog data, e.g. after the target's schema changed.
    pub fn forget(&mut self, name: &str) {
        match self {
            Target::Postgres(t) => t.forget(name),
            Target::MariaDb(t) => t.forget(name),
        }
    }

    /// A copy of the cached catalog, for planning away from the connection
    /// (`crate::runner`'s read-ahead).
    pub fn catalog(&self) -> HashMap<String, TargetTable> {
        match self {
            Target::Postgres(t) => t.catalog(),
            Target::MariaDb(t) => t.catalog(),
        }
    }

    /// Batches applied again with upserts because a row they created was already there, since
    /// the last call (PostgreSQL; MariaDB's statements are upserts throughout).
    pub fn take_replayed_batches(&mut self) -> u64 {
        match self {
            Target::Postgres(t) => t.take_replayed_batches(),
            Target::MariaDb(_) => 0,
        }
    }

    /// Applies the statements and moves the offsets in one transaction, fenced against another
    /// process on the same partitions (see [`crate::postgres::PgTarget::apply`]). The statements
    /// are moved, not copied: their parameters are the batch's whole data.
    pub async fn apply(
        &mut self,
        pipeline: &str,
        statements: Vec<Statement>,
        expected: &BTreeMap<PartitionKey, Option<i64>>,
        next: &BTreeMap<PartitionKey, i64>,
    ) -> Result<(), ApplyError> {
        match self {
            Target::Postgres(t) => {
                let own = statements
                    .into_iter()
                    .map(|s| match s {
                        Statement::Postgres(s) => Ok(s),
                        Statement::MariaDb(_) => Err(foreign_statement()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                t.apply(pipeline, &own, expected, next).await
            }
            Target::MariaDb(t) => {
                let own = statements
                    .into_iter()
                    .map(|s| match s {
                        Statement::MariaDb(s) => Ok(s),
                        Statement::Postgres(_) => Err(foreign_statement()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                t.apply(pipeline, &own, expected, next).await
            }
        }
    }

    /// `evolve` policy: adds `columns` to the table as nullable columns typed from their Connect
    /// schema, skipping any that exist by now. The caller forgets the cached table afterwards.
    pub async fn add_nullable_columns(
        &mut self,
        table: &TargetTable,
        columns: &[Column],
    ) -> Result<(), ApplyError> {
        match self {
            Target::Postgres(t) => t.add_nullable_columns(table, columns).await,
            Target::MariaDb(t) => t.add_nullable_columns(table, columns).await,
        }
    }
}

fn foreign_statement() -> ApplyError {
    ApplyError::Config(
        "internal: a statement planned for another engine reached this target; please report it"
            .into(),
    )
}
