//! Planning that needs no I/O, shared by the runner's two paths, and the read-ahead built on it.
//!
//! While batch N is in the target's transaction the database does the work and the runner
//! waits. The runner uses that wait to take batch N+1 from the fetcher and plan it on a
//! blocking thread ([`plan_ahead`]) against a copy of the catalog it has cached, so that when N
//! commits, N+1's statements are ready and the database is idle only for a round trip. On two
//! cores, planning (coalescing and encoding the column arrays) was a fifth of the sink's time
//! with the database idle.
//!
//! The read-ahead only takes the common case: every record decoded, every table known to the
//! catalog, every table planned without error. Anything else ([`Ahead::Raw`]) goes through the
//! runner's full path (dead letters, blocks, drift, catalog refresh) as if it had just been
//! fetched. A read-ahead batch is only a head start: the runner drops it whenever it
//! re-assigns the fetcher (a block, a hold, a pause, a failure), and the records are read
//! again from the offsets the target committed.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use lockstep_debezium::{coalesce, Positioned, Record, TableOp};

use super::{order_by_source_position, Polled, TableCounts, TableRecord};
use crate::fetcher::FetchedBatch;
use crate::pipeline::{Engine, SinkPipeline};
use crate::table::TargetTable;
use crate::target::Statement;
use crate::ApplyError;

/// What one polled record means for the batch.
// Transient (one per record, moved straight into the batch): boxing the large variant would
// cost an allocation per record.
#[allow(clippy::large_enum_variant)]
pub(super) enum Sorted {
    /// A change or truncate of a target table.
    Table(TableRecord),
    /// A heartbeat with the source time it carries.
    Heartbeat(i64),
    /// Nothing to write; only its offset moves (tombstones, transaction markers, messages).
    Skip,
    /// Undecodable, or a change that names no table.
    Poison(ApplyError),
}

/// Sorts the record at `index` of a batch.
pub(super) fn sort_record(
    pipeline: &SinkPipeline,
    index: usize,
    polled: &Polled,
    decoded: Result<Record, String>,
) -> Sorted {
    let poison = |reason: String| {
        Sorted::Poison(ApplyError::Record {
            topic: polled.topic.to_string(),
            partition: polled.partition,
            offset: polled.offset,
            reason,
        })
    };
    let record = match decoded {
        Ok(record) => record,
        Err(reason) => return poison(reason),
    };
    let (source_table, source_ts_ms) = match &record {
        Record::Change(change) => (change.source.table.as_deref(), change.source.ts_ms),
        Record::Truncate(truncate) => (truncate.source.table.as_deref(), truncate.source.ts_ms),
        // Heartbeats carry no rows, but they say how fresh the pipeline is.
        Record::Heartbeat { ts_ms: Some(ts) } => return Sorted::Heartbeat(*ts),
        // Tombstones only let Kafka compact a deleted key away: the delete event before them
        // already removed the row. Transaction markers and logical messages carry no rows.
        _ => return Sorted::Skip,
    };
    let Some(source_table) = source_table else {
        return poison("the change event's source block names no table".into());
    };
    let table = pipeline.target_table(&polled.topic, source_table);
    Sorted::Table(TableRecord {
        index,
        table,
        source_ts_ms,
        record: Positioned {
            topic: polled.topic.clone(),
            partition: polled.partition,
            offset: polled.offset,
            record,
        },
    })
}

/// Coalesces one table's records and plans them for the target's engine (pure).
pub(super) fn plan_records(
    engine: Engine,
    table: &TargetTable,
    table_records: &[&TableRecord],
) -> Result<(Vec<Statement>, TableCounts), ApplyError> {
    let mut positioned: Vec<&Positioned<Record>> =
        table_records.iter().map(|r| &r.record).collect();
    order_by_source_position(&mut positioned);
    let batch = coalesce(positioned).map_err(|e| ApplyError::Record {
        topic: table_records
            .first()
            .map(|r| r.record.topic.to_string())
            .unwrap_or_default(),
        partition: table_records.first().map_or(-1, |r| r.record.partition),
        offset: table_records.first().map_or(-1, |r| r.record.offset),
        reason: format!("table {}: {e}", table.name),
    })?;
    let statements = match engine {
        Engine::Postgres => crate::pg_sql::plan(table, &batch)?
            .into_iter()
            .map(Statement::Postgres)
            .collect(),
        Engine::Mariadb => crate::mysql_sql::plan(table, &batch)?
            .into_iter()
            .map(Statement::MariaDb)
            .collect(),
    };
    let mut counts = TableCounts {
        truncates: usize::from(batch.truncate.is_some()),
        ..TableCounts::default()
    };
    for op in &batch.ops {
        match op {
            TableOp::Upsert { .. } => counts.upserts += 1,
            TableOp::Delete { .. } => counts.deletes += 1,
        }
    }
    Ok((statements, counts))
}

/// A batch planned ahead: ready to commit once the batch before it has.
pub(super) struct Planned {
    pub polled: Vec<Polled>,
    pub records: Vec<TableRecord>,
    pub heartbeat_ms: Option<i64>,
    pub statements: Vec<Statement>,
    pub counts: BTreeMap<String, TableCounts>,
    pub planned_in: Duration,
    pub bytes: usize,
    pub decode: Duration,
}

/// What the read-ahead got during the previous batch's transaction.
pub(super) enum Ahead {
    Planned {
        generation: u64,
        planned: Planned,
    },
    /// Read but left to the full path.
    Raw(FetchedBatch),
    /// The fetcher's error, reported as if the batch had been fetched now.
    Failed {
        generation: u64,
        error: ApplyError,
    },
    /// Planning found what only the full path handles after the records were spent: the
    /// fetcher reads them again from the committed offsets.
    Reread {
        generation: u64,
    },
}

impl Ahead {
    pub fn generation(&self) -> u64 {
        match self {
            Ahead::Planned { generation, .. }
            | Ahead::Failed { generation, .. }
            | Ahead::Reread { generation } => *generation,
            Ahead::Raw(batch) => batch.generation,
        }
    }
}

/// Plans a fetched batch with the cached catalog, or hands it back when the full path must
/// take it (see the module's doc).
pub(super) fn plan_ahead(
    pipeline: &SinkPipeline,
    catalog: &HashMap<String, TargetTable>,
    batch: FetchedBatch,
) -> Ahead {
    let started = Instant::now();
    let usable = batch.decoded.iter().all(|d| match d {
        Ok(Record::Change(change)) => change.source.table.is_some(),
        Ok(Record::Truncate(truncate)) => truncate.source.table.is_some(),
        Ok(_) => true,
        Err(_) => false,
    });
    if !usable {
        return Ahead::Raw(batch);
    }
    // Every table of the batch must be in the catalog before any record is moved out of it.
    let known = batch.polled.iter().zip(&batch.decoded).all(|(p, d)| {
        let source_table = match d {
            Ok(Record::Change(change)) => change.source.table.as_deref(),
            Ok(Record::Truncate(truncate)) => truncate.source.table.as_deref(),
            _ => None,
        };
        source_table.is_none_or(|t| catalog.contains_key(pipeline.target_table_ref(&p.topic, t)))
    });
    if !known {
        return Ahead::Raw(batch);
    }
    let FetchedBatch {
        generation,
        polled,
        decoded,
        bytes,
        decode,
    } = batch;
    let mut records = Vec::with_capacity(polled.len());
    let mut heartbeat_ms: Option<i64> = None;
    for (index, (p, decoded)) in polled.iter().zip(decoded).enumerate() {
        match sort_record(pipeline, index, p, decoded) {
            Sorted::Table(record) => records.push(record),
            Sorted::Heartbeat(ts) => heartbeat_ms = heartbeat_ms.max(Some(ts)),
            Sorted::Skip => {}
            // Ruled out above; should it happen, the full path takes the batch again.
            Sorted::Poison(_) => return Ahead::Reread { generation },
        }
    }
    let mut per_table: BTreeMap<&str, Vec<&TableRecord>> = BTreeMap::new();
    for r in &records {
        per_table.entry(r.table.as_str()).or_default().push(r);
    }
    let mut statements = Vec::new();
    let mut counts = BTreeMap::new();
    for (table_name, table_records) in per_table {
        let Some(table) = catalog.get(table_name) else {
            return Ahead::Reread { generation };
        };
        match plan_records(pipeline.target.engine, table, &table_records) {
            Ok((planned, table_counts)) => {
                statements.extend(planned);
                counts.insert(table_name.to_string(), table_counts);
            }
            // Drift, a key change, a poison row: the full path knows what to do with them.
            Err(_) => return Ahead::Reread { generation },
        }
    }
    Ahead::Planned {
        generation,
        planned: Planned {
            polled,
            records,
            heartbeat_ms,
            statements,
            counts,
            planned_in: started.elapsed(),
            bytes,
            decode,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use lockstep_debezium::{ChangeEvent, Column, ConnectType, Op, Row, Schema, Source, Value};

    use super::*;

    const PIPELINE: &str = "name: p\nkafka: {bootstrap_servers: 'k:9092', topics: [s.public.orders]}\ntarget: {engine: postgres, host: h, port: 5432, user: u, database: d}\n";

    fn pipeline() -> SinkPipeline {
        SinkPipeline::parse(Path::new("p.yaml"), PIPELINE).expect("valid pipeline")
    }

    fn orders() -> TargetTable {
        TargetTable {
            schema: "public".into(),
            name: "orders".into(),
            columns: vec![
                ("id".into(), "bigint".into()),
                ("qty".into(), "bigint".into()),
            ],
            primary_key: vec!["id".into()],
        }
    }

    fn row(columns: &[(&str, i64)]) -> Row {
        Row {
            schema_name: None,
            columns: columns
                .iter()
                .map(|(name, v)| Column {
                    name: (*name).into(),
                    column_type: Schema::new(ConnectType::Int64).column_type().into(),
                    value: Value::Int(*v),
                })
                .collect(),
        }
    }

    /// What the fetcher may hand over for one record.
    enum In {
        /// An upsert of `id` in `table` with these columns besides `id`.
        Change {
            table: Option<&'static str>,
            id: i64,
            columns: &'static [(&'static str, i64)],
        },
        Heartbeat(i64),
        Undecodable,
    }

    fn batch(inputs: &[In]) -> FetchedBatch {
        let mut polled = Vec::new();
        let mut decoded = Vec::new();
        for (offset, input) in inputs.iter().enumerate() {
            polled.push(Polled {
                topic: "s.public.orders".into(),
                partition: 0,
                offset: offset as i64,
                original: None,
                bytes: 0,
            });
            decoded.push(match input {
                In::Change { table, id, columns } => {
                    let mut after = vec![("id", *id)];
                    after.extend_from_slice(columns);
                    Ok(Record::Change(ChangeEvent {
                        op: Op::Update,
                        key: Some(row(&[("id", *id)])),
                        before: None,
                        after: Some(row(&after)),
                        source: Source {
                            table: table.map(str::to_string),
                            ts_ms: Some(1_000 + offset as i64),
                            ..Source::default()
                        },
                        times: Default::default(),
                        transaction: None,
                        envelope_name: None,
                    }))
                }
                In::Heartbeat(ts) => Ok(Record::Heartbeat { ts_ms: Some(*ts) }),
                In::Undecodable => Err("not JSON".into()),
            });
        }
        FetchedBatch {
            generation: 7,
            polled,
            decoded,
            bytes: 0,
            decode: Duration::ZERO,
        }
    }

    #[derive(Debug, PartialEq)]
    enum Outcome {
        /// Planned: (statements, upserts, heartbeat).
        Planned(usize, usize, Option<i64>),
        /// Handed back whole: the number of records.
        Raw(usize),
        Reread,
    }

    fn outcome(ahead: Ahead) -> Outcome {
        match ahead {
            Ahead::Planned {
                generation,
                planned,
            } => {
                assert_eq!(generation, 7);
                let upserts = planned.counts.values().map(|c| c.upserts).sum();
                Outcome::Planned(planned.statements.len(), upserts, planned.heartbeat_ms)
            }
            Ahead::Raw(batch) => {
                assert_eq!(batch.polled.len(), batch.decoded.len());
                Outcome::Raw(batch.polled.len())
            }
            Ahead::Reread { generation } => {
                assert_eq!(generation, 7);
                Outcome::Reread
            }
            Ahead::Failed { error, .. } => panic!("planning ahead never fails a batch: {error}"),
        }
    }

    const QTY: &[(&str, i64)] = &[("qty", 1)];

    #[test]
    fn only_the_common_case_is_planned_ahead() {
        let known = Some("orders");
        let cases: Vec<(&str, Vec<In>, bool, Outcome)> =
            vec![
            (
                "decoded changes of a cached table: planned, two keys coalesced to one upsert each",
                vec![
                    In::Change { table: known, id: 1, columns: QTY },
                    In::Change { table: known, id: 2, columns: QTY },
                    In::Change { table: known, id: 1, columns: &[("qty", 2)] },
                ],
                true,
                Outcome::Planned(1, 2, None),
            ),
            (
                "a heartbeat among them: planned, its time kept for the freshness gauge",
                vec![In::Heartbeat(5_000), In::Change { table: known, id: 1, columns: QTY }],
                true,
                Outcome::Planned(1, 1, Some(5_000)),
            ),
            (
                "only a heartbeat: planned, nothing to write",
                vec![In::Heartbeat(5_000)],
                true,
                Outcome::Planned(0, 0, Some(5_000)),
            ),
            (
                "a table the catalog has not cached: left to the full path, records intact",
                vec![In::Change { table: known, id: 1, columns: QTY }],
                false,
                Outcome::Raw(1),
            ),
            (
                "an undecodable record: left to the full path (dead letter or stop)",
                vec![In::Change { table: known, id: 1, columns: QTY }, In::Undecodable],
                true,
                Outcome::Raw(2),
            ),
            (
                "a change naming no table: left to the full path",
                vec![In::Change { table: None, id: 1, columns: QTY }],
                true,
                Outcome::Raw(1),
            ),
            (
                "a column the target lacks (drift): read again for the full path",
                vec![In::Change { table: known, id: 1, columns: &[("qty", 1), ("note", 3)] }],
                true,
                Outcome::Reread,
            ),
        ];
        for (name, inputs, cached, expected) in cases {
            let catalog: HashMap<String, TargetTable> = if cached {
                HashMap::from([("orders".to_string(), orders())])
            } else {
                HashMap::new()
            };
            let got = outcome(plan_ahead(&pipeline(), &catalog, batch(&inputs)));
            assert_eq!(got, expected, "{name}");
        }
    }

    /// The read-ahead and the full path share their planning: the statements are the same.
    #[test]
    fn a_batch_planned_ahead_gets_the_full_paths_statements() {
        let inputs = vec![
            In::Change {
                table: Some("orders"),
                id: 3,
                columns: QTY,
            },
            In::Change {
                table: Some("orders"),
                id: 4,
                columns: &[("qty", 9)],
            },
        ];
        let catalog = HashMap::from([("orders".to_string(), orders())]);
        let Ahead::Planned { planned, .. } = plan_ahead(&pipeline(), &catalog, batch(&inputs))
        else {
            panic!("planned ahead");
        };
        let fetched = batch(&inputs);
        let records: Vec<TableRecord> = fetched
            .polled
            .iter()
            .zip(fetched.decoded)
            .enumerate()
            .filter_map(|(i, (p, d))| match sort_record(&pipeline(), i, p, d) {
                Sorted::Table(r) => Some(r),
                _ => None,
            })
            .collect();
        let refs: Vec<&TableRecord> = records.iter().collect();
        let (statements, _) =
            plan_records(Engine::Postgres, &orders(), &refs).expect("plans in line");
        assert_eq!(planned.statements, statements);
        assert_eq!(planned.records.len(), 2);
        assert_eq!(planned.polled.len(), 2);
    }
}
