//! PostgreSQL target adapter: catalog lookups, the offsets table, and the one transaction per
//! batch that writes rows and offsets together.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::{Client, NoTls};

use lockstep_debezium::Column;

use crate::pg_sql::{self, PgStatement};
use crate::pipeline::TargetSettings;
use crate::table::TargetTable;
use crate::{ApplyError, PartitionKey};

/// Where the sink's offsets live: in the target, next to the data they describe.
const OFFSETS_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS lockstep;
CREATE TABLE IF NOT EXISTS lockstep.sink_offsets (
    pipeline    text        NOT NULL,
    topic       text        NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, topic, kafka_partition)
)";

pub struct PgTarget {
    client: Client,
    schema: String,
    tables: HashMap<String, TargetTable>,
    /// Batches still to apply with upserts only, after a created row was found already there.
    upserts_only: u32,
    /// Batches applied again as upserts because a created row was already there, not yet
    /// taken by the runner's metrics.
    replayed_batches: u64,
}

/// After a replayed create, this many batches skip the plain INSERTs: a replay (a connector
/// restarted without exactly-once delivery) repeats a run of changes, and each batch of it
/// would otherwise be applied twice.
const UPSERTS_AFTER_A_REPLAY: u32 = 100;

/// How one attempt at a batch's transaction ended.
enum Attempt {
    Applied,
    /// A plain INSERT of created rows found one of them there; nothing was committed.
    Duplicate,
}

impl PgTarget {
    pub async fn connect(settings: &TargetSettings) -> Result<Self, ApplyError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&settings.host)
            .port(settings.port)
            .user(&settings.user)
            .dbname(&settings.database)
            .application_name("lockstep-sink");
        if let Some(password) = &settings.password {
            let secret = password
                .resolve()
                .map_err(|e| ApplyError::Config(e.to_string()))?;
            config.password(secret.expose());
        }
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|e| ApplyError::Connect {
                    target: format!(
                        "postgres {}:{}/{}",
                        settings.host, settings.port, settings.database
                    ),
                    reason: e.to_string(),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("target connection closed: {e}");
            }
        });
        client.batch_execute(OFFSETS_DDL).await.map_err(db_error)?;
        // As PostgreSQL's own subscriptions do by default: a batch's commit does not wait for
        // its WAL to reach disk. The offsets commit in the same transaction as the rows, so a
        // target crash loses both together and the sink applies those records again from
        // Kafka; and any later synchronous commit on the target (a DDL, another client) makes
        // every commit before it durable.
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(db_error)?;
        Ok(Self {
            upserts_only: 0,
            replayed_batches: 0,
            client,
            schema: settings.schema.clone(),
            tables: HashMap::new(),
        })
    }

    /// The committed position of every partition of this pipeline: the next offset to apply.
    pub async fn load_offsets(
        &self,
        pipeline: &str,
    ) -> Result<BTreeMap<PartitionKey, i64>, ApplyError> {
        let rows = self
            .client
            .query(
                "SELECT topic, kafka_partition, next_offset FROM lockstep.sink_offsets WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    (r.get::<_, String>(0), r.get::<_, i32>(1)),
                    r.get::<_, i64>(2),
                )
            })
            .collect())
    }

    /// The catalog's description of a target table, cached until [`PgTarget::forget`].
    pub async fn table(&mut self, name: &str) -> Result<TargetTable, ApplyError> {
        if let Some(table) = self.tables.get(name) {
            return Ok(table.clone());
        }
        let columns = self
            .client
            .query(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod)
                   FROM pg_attribute a
                   JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attnum",
                &[&self.schema, &name],
            )
            .await
            .map_err(db_error)?;
        if columns.is_empty() {
            return Err(ApplyError::MissingTable {
                table: format!("{}.{name}", self.schema),
            });
        }
        let key = self
            .client
            .query(
                "SELECT a.attname
                   FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                  WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
                  ORDER BY k.ord",
                &[&self.schema, &name],
            )
            .await
            .map_err(db_error)?;
        let table = TargetTable {
            schema: self.schema.clone(),
            name: name.to_string(),
            columns: columns.iter().map(|r| (r.get(0), r.get(1))).collect(),
            primary_key: key.iter().map(|r| r.get(0)).collect(),
        };
        self.tables.insert(name.to_string(), table.clone());
        Ok(table)
    }

    /// A copy of the cached catalog.
    pub fn catalog(&self) -> HashMap<String, TargetTable> {
        self.tables.clone()
    }

    /// Drops cached catalog data, e.g. after the target's schema changed.
    pub fn forget(&mut self, name: &str) {
        self.tables.remove(name);
    }

    /// The pipeline's runtime topics (`crate::topics`), creating their table when missing.
    pub async fn load_topics(
        &self,
        pipeline: &str,
    ) -> Result<Vec<crate::topics::RuntimeTopic>, ApplyError> {
        use crate::topics::{RuntimeTopic, PG_TOPICS_DDL, PG_TOPICS_SELECT};
        self.client
            .batch_execute(PG_TOPICS_DDL)
            .await
            .map_err(db_error)?;
        let rows = self
            .client
            .query(PG_TOPICS_SELECT, &[&pipeline])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(RuntimeTopic::from_pg_row).collect())
    }

    /// The tables held on request (`crate::holds`), creating their table when missing.
    pub async fn load_holds(&self, pipeline: &str) -> Result<Vec<String>, ApplyError> {
        use crate::holds::{PG_HOLDS_DDL, PG_HOLDS_SELECT};
        self.client
            .batch_execute(PG_HOLDS_DDL)
            .await
            .map_err(db_error)?;
        let rows = self
            .client
            .query(PG_HOLDS_SELECT, &[&pipeline])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Records a hold (`held`) or its release.
    pub async fn save_hold(
        &self,
        pipeline: &str,
        table: &str,
        held: bool,
    ) -> Result<(), ApplyError> {
        use crate::holds::{PG_HOLD_DELETE, PG_HOLD_INSERT};
        let sql = if held { PG_HOLD_INSERT } else { PG_HOLD_DELETE };
        self.client
            .execute(sql, &[&pipeline, &table])
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    /// Records a runtime topic change (an upsert: the latest change of a topic wins).
    pub async fn save_topic(
        &self,
        pipeline: &str,
        topic: &crate::topics::RuntimeTopic,
    ) -> Result<(), ApplyError> {
        self.client
            .batch_execute(crate::topics::PG_TOPICS_DDL)
            .await
            .map_err(db_error)?;
        self.client
            .execute(
                crate::topics::PG_TOPICS_UPSERT,
                &[&pipeline, &topic.topic, &topic.table, &topic.removed],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Applies the statements and moves the offsets in one transaction.
    ///
    /// `expected` holds, per partition, the next offset this process believes is committed (None:
    /// no row yet). The offsets rows are locked first and compared: if another sink process moved
    /// them (two processes given the same partitions, or a zombie after a rebalance), the batch is
    /// rolled back and [`ApplyError::Fenced`] returned, so a change is never applied twice.
    pub async fn apply(
        &mut self,
        pipeline: &str,
        statements: &[PgStatement],
        expected: &BTreeMap<PartitionKey, Option<i64>>,
        next: &BTreeMap<PartitionKey, i64>,
    ) -> Result<(), ApplyError> {
        let upserts_only = self.upserts_only > 0;
        self.upserts_only = self.upserts_only.saturating_sub(1);
        match self
            .attempt(pipeline, statements, expected, next, upserts_only)
            .await?
        {
            Attempt::Applied => Ok(()),
            Attempt::Duplicate => {
                self.replayed_batches += 1;
                self.upserts_only = UPSERTS_AFTER_A_REPLAY;
                tracing::info!(
                    pipeline,
                    batches = UPSERTS_AFTER_A_REPLAY,
                    "a created row was already in the target (the source connector replays changes it had sent); applying this batch again and the next ones with upserts"
                );
                match self
                    .attempt(pipeline, statements, expected, next, true)
                    .await?
                {
                    Attempt::Applied => Ok(()),
                    // Only plain INSERTs report duplicates, and there are none with upserts only.
                    Attempt::Duplicate => Err(ApplyError::Database(
                        "a batch applied with upserts only still reported a duplicate row".into(),
                    )),
                }
            }
        }
    }

    /// Batches applied again with upserts because a row the batch created was already there,
    /// since the last call.
    pub fn take_replayed_batches(&mut self) -> u64 {
        std::mem::take(&mut self.replayed_batches)
    }

    /// One transaction of [`Self::apply`]. With `upserts_only`, every statement that has an
    /// upsert for duplicates runs that instead.
    async fn attempt(
        &mut self,
        pipeline: &str,
        statements: &[PgStatement],
        expected: &BTreeMap<PartitionKey, Option<i64>>,
        next: &BTreeMap<PartitionKey, i64>,
        upserts_only: bool,
    ) -> Result<Attempt, ApplyError> {
        let tx = self.client.transaction().await.map_err(db_error)?;
        for ((topic, partition), expected_next) in expected {
            let row = tx
                .query_opt(
                    "SELECT next_offset FROM lockstep.sink_offsets
                      WHERE pipeline = $1 AND topic = $2 AND kafka_partition = $3 FOR UPDATE",
                    &[&pipeline, topic, partition],
                )
                .await
                .map_err(db_error)?;
            let stored = row.map(|r| r.get::<_, i64>(0));
            if stored != *expected_next {
                return Err(ApplyError::Fenced {
                    topic: topic.clone(),
                    partition: *partition,
                    expected: *expected_next,
                    found: stored,
                });
            }
        }
        for statement in statements {
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = statement
                .params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let sql = match (&statement.on_duplicate, upserts_only) {
                (Some(upsert), true) => upsert,
                _ => &statement.sql,
            };
            if let Err(e) = tx.execute(sql.as_str(), &params).await {
                let duplicate =
                    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
                if duplicate && statement.on_duplicate.is_some() && !upserts_only {
                    tx.rollback().await.map_err(db_error)?;
                    return Ok(Attempt::Duplicate);
                }
                return Err(db_error(e));
            }
        }
        for ((topic, partition), next_offset) in next {
            let fenced = |found| ApplyError::Fenced {
                topic: topic.clone(),
                partition: *partition,
                expected: expected
                    .get(&(topic.clone(), *partition))
                    .copied()
                    .flatten(),
                found,
            };
            let had_row = expected
                .get(&(topic.clone(), *partition))
                .copied()
                .flatten()
                .is_some();
            if had_row {
                // The row is locked by the SELECT ... FOR UPDATE above.
                tx.execute(
                    "UPDATE lockstep.sink_offsets SET next_offset = $4, updated_at = now()
                      WHERE pipeline = $1 AND topic = $2 AND kafka_partition = $3",
                    &[&pipeline, topic, partition, next_offset],
                )
                .await
                .map_err(db_error)?;
            } else {
                // A plain INSERT (no ON CONFLICT): if another process inserted the partition's
                // first row meanwhile, the unique violation fences this batch instead of
                // overwriting that process's position.
                tx.execute(
                    "INSERT INTO lockstep.sink_offsets (pipeline, topic, kafka_partition, next_offset)
                     VALUES ($1, $2, $3, $4)",
                    &[&pipeline, topic, partition, next_offset],
                )
                .await
                .map_err(|e| match db_error(e) {
                    ApplyError::Rejected(_) => fenced(None),
                    other => other,
                })?;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Attempt::Applied)
    }

    /// Adds `columns` as nullable columns typed from their Connect schema (`IF NOT EXISTS`, so
    /// a column added meanwhile by a DBA or another sink process is left alone).
    pub async fn add_nullable_columns(
        &mut self,
        table: &TargetTable,
        columns: &[Column],
    ) -> Result<(), ApplyError> {
        if columns.is_empty() {
            return Ok(());
        }
        let sql = pg_sql::add_nullable_columns(table, columns);
        self.client.batch_execute(&sql).await.map_err(db_error)?;
        self.forget(&table.name);
        Ok(())
    }
}

fn db_error(e: tokio_postgres::Error) -> ApplyError {
    let detail = match e.as_db_error() {
        Some(db) => format!(
            "{}: {}{}",
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => e.to_string(),
    };
    // Class 22 (data exception) and 23 (integrity constraint violation) are about the values
    // of a row; everything else is about the database or the connection.
    match e.as_db_error().map(|db| db.code().code()) {
        Some(code) if code.starts_with("22") || code.starts_with("23") => {
            ApplyError::Rejected(detail)
        }
        _ => ApplyError::Database(detail),
    }
}
