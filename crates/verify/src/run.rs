//! The run: connect, plan, walk the key space chunk by chunk, re-read what differs until it
//! converges or the retries run out.

use std::cmp::Ordering;
use std::time::Instant;

use crate::adapters::{Adapter, Fetch};
use crate::diff::{compare_chunk, ChunkDiff, Key, Row};
use crate::error::{Side, VerifyError};
use crate::plan::{plan_comparison, ComparePlan, PlanError};
use crate::report::{ReportBuilder, VerifyReport};
use crate::settings::{Endpoint, VerifyOptions};

/// Compares `source` with `target` and reports missing, extra and differing rows.
///
/// The walk is keyset pagination over the source's primary key: each chunk is the next
/// `chunk_size` source rows after the previous chunk's last key, and the target rows in the same
/// key range. When the source runs out, the target's remaining rows are walked the same way (they
/// are all extra). Reads take no locks and use no long transaction, so this runs against live
/// tables.
///
/// **Compares until consistent or reports.** With replication running, a chunk can differ only
/// because a change has reached one side and not yet the other. What differs is therefore
/// re-read on both sides, up to `max_retries` times with `retry_delay` between reads: only the
/// differing rows when they are few (a busy table's chunk almost always has some row in flight,
/// one row rarely stays in flight for long), the whole chunk otherwise. The report holds the
/// last read's differences and counts the chunks that needed a retry.
pub async fn verify(
    source: &Endpoint,
    target: &Endpoint,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    options.validate().map_err(VerifyError::InvalidOptions)?;
    let started = Instant::now();
    let (mut source_db, mut target_db) = tokio::try_join!(
        Adapter::connect(Side::Source, source),
        Adapter::connect(Side::Target, target)
    )?;
    let (source_schema, target_schema) =
        tokio::try_join!(source_db.describe(), target_db.describe())?;
    for (side, endpoint, schema) in [
        (Side::Source, source, &source_schema),
        (Side::Target, target, &target_schema),
    ] {
        if schema.columns.is_empty() {
            return Err(VerifyError::TableNotFound {
                side,
                endpoint: endpoint.describe(),
                user: endpoint.connection.user.clone(),
            });
        }
    }
    let plan = plan_comparison(&source_schema, &target_schema).map_err(|e| match e {
        PlanError::NoPrimaryKey { side, .. } => {
            let (side, endpoint) = if side == "source" {
                (Side::Source, source)
            } else {
                (Side::Target, target)
            };
            VerifyError::NoPrimaryKey {
                side,
                endpoint: endpoint.describe(),
            }
        }
        PlanError::KeyMismatch {
            source_key,
            target_key,
        } => VerifyError::KeyMismatch {
            source_key: source_key.join(", "),
            target_key: target_key.join(", "),
        },
    })?;
    if options.fail_on_schema_difference && !plan.schema_differences.is_empty() {
        let differences: Vec<String> = plan
            .schema_differences
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(VerifyError::SchemaDiffers {
            differences: differences.join("; "),
        });
    }
    for difference in &plan.schema_differences {
        tracing::warn!(%difference, "schema difference: the column is not compared");
    }
    source_db.select(plan.source.clone());
    target_db.select(plan.target.clone());

    let mut report = ReportBuilder::new(
        source.describe(),
        target.describe(),
        plan.key_columns.clone(),
        plan.value_columns.clone(),
        plan.schema_differences.clone(),
        options.max_listed_keys,
    );
    compare_tables(&mut source_db, &mut target_db, &plan, options, &mut report).await?;
    source_db.close().await;
    target_db.close().await;
    let report = report.finish(started.elapsed());
    tracing::info!(
        source = %report.source_table,
        target = %report.target_table,
        rows = report.rows_compared,
        chunks = report.chunks,
        chunks_retried = report.chunks_retried,
        missing = report.missing_count,
        extra = report.extra_count,
        differing = report.differing_count,
        "verify finished"
    );
    Ok(report)
}

/// The chunk walk over two row sources.
pub(crate) async fn compare_tables<S: Fetch, T: Fetch>(
    source: &mut S,
    target: &mut T,
    plan: &ComparePlan,
    options: &VerifyOptions,
    report: &mut ReportBuilder,
) -> Result<(), VerifyError> {
    let n = options.chunk_size;
    let mut lower: Option<Key> = None;
    loop {
        let (mut source_rows, mut target_rows, upper) =
            first_read(source, target, plan, lower.as_ref(), n).await?;
        let mut diff = compare_chunk(
            &source_rows,
            &target_rows,
            &plan.key_kinds,
            &plan.value_columns,
        );
        let mut retries = 0;
        while !diff.is_clean() && retries < options.max_retries {
            retries += 1;
            tracing::debug!(
                lower = ?lower,
                upper = ?upper,
                retry = retries,
                "chunk differs, re-reading it"
            );
            tokio::time::sleep(options.retry_delay).await;
            let keys = differing_keys(&diff);
            if keys.len() <= REREAD_KEYS {
                reread_differing(
                    source,
                    target,
                    plan,
                    lower.as_ref(),
                    &keys,
                    &mut source_rows,
                    &mut target_rows,
                )
                .await?;
            } else {
                (source_rows, target_rows) = tokio::try_join!(
                    source.fetch(lower.as_ref(), upper.as_ref(), None),
                    target.fetch(lower.as_ref(), upper.as_ref(), None)
                )?;
            }
            diff = compare_chunk(
                &source_rows,
                &target_rows,
                &plan.key_kinds,
                &plan.value_columns,
            );
        }
        tracing::debug!(
            lower = ?lower,
            upper = ?upper,
            source_rows = source_rows.len(),
            target_rows = target_rows.len(),
            retries,
            clean = diff.is_clean(),
            "chunk compared"
        );
        report.add_chunk(source_rows.len(), target_rows.len(), retries > 0, diff);
        match upper {
            Some(upper) => lower = Some(upper),
            None => return Ok(()),
        }
    }
}

/// Up to this many differing rows in a chunk are re-read one by one; more, the whole chunk.
const REREAD_KEYS: usize = 64;

/// The keys a chunk's comparison found different (the merge-join lists each in one kind).
fn differing_keys(diff: &ChunkDiff) -> Vec<Key> {
    diff.missing
        .iter()
        .chain(&diff.extra)
        .chain(diff.differing.iter().map(|d| &d.key))
        .cloned()
        .collect()
}

/// Re-reads the rows of the differing keys, each as the key range from the chunk's key before
/// it (exclusive; the chunk's lower bound for its first key) to it (inclusive), and puts them
/// in place of what the chunk held in that range (a row inserted there meanwhile comes along).
async fn reread_differing<S: Fetch, T: Fetch>(
    source: &mut S,
    target: &mut T,
    plan: &ComparePlan,
    lower: Option<&Key>,
    keys: &[Key],
    source_rows: &mut Vec<Row>,
    target_rows: &mut Vec<Row>,
) -> Result<(), VerifyError> {
    let mut chunk_keys: Vec<Key> = source_rows
        .iter()
        .chain(target_rows.iter())
        .map(|r| r.key.clone())
        .collect();
    chunk_keys.sort_by(|a, b| plan.compare_keys(a, b));
    chunk_keys.dedup();
    for key in keys {
        let at = match chunk_keys.binary_search_by(|k| plan.compare_keys(k, key)) {
            Ok(i) | Err(i) => i,
        };
        let before = if at == 0 {
            lower
        } else {
            chunk_keys.get(at - 1)
        };
        let (source_now, target_now) = tokio::try_join!(
            source.fetch(before, Some(key), None),
            target.fetch(before, Some(key), None)
        )?;
        let in_range = |k: &Key| {
            before.is_none_or(|b| plan.compare_keys(k, b) == Ordering::Greater)
                && plan.compare_keys(k, key) != Ordering::Greater
        };
        source_rows.retain(|r| !in_range(&r.key));
        source_rows.extend(source_now);
        target_rows.retain(|r| !in_range(&r.key));
        target_rows.extend(target_now);
    }
    Ok(())
}

/// The first read of the chunk after `lower`, and the chunk's upper bound (`None`: the last
/// chunk, unbounded above).
///
/// The source decides the bound when it has a full chunk left; otherwise a full chunk of target
/// rows does (extra rows past the end of the source are walked in chunks too).
async fn first_read<S: Fetch, T: Fetch>(
    source: &mut S,
    target: &mut T,
    plan: &ComparePlan,
    lower: Option<&Key>,
    n: usize,
) -> Result<(Vec<Row>, Vec<Row>, Option<Key>), VerifyError> {
    let mut source_rows = source.fetch(lower, None, Some(n)).await?;
    if source_rows.len() >= n {
        let upper = source_rows.last().map(|r| r.key.clone());
        let target_rows = target.fetch(lower, upper.as_ref(), None).await?;
        return Ok((source_rows, target_rows, upper));
    }
    let target_rows = target.fetch(lower, None, Some(n)).await?;
    if target_rows.len() >= n {
        let upper = target_rows.last().map(|r| r.key.clone());
        if let Some(bound) = &upper {
            source_rows.retain(|r| plan.compare_keys(&r.key, bound) != Ordering::Greater);
        }
        return Ok((source_rows, target_rows, upper));
    }
    Ok((source_rows, target_rows, None))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::canonical::ColumnKind;
    use crate::plan::{SideColumn, SideColumns};
    use crate::settings::Engine;

    /// An in-memory table that answers keyset queries like the adapters do.
    struct Memory {
        rows: Vec<Row>,
        kinds: Vec<ColumnKind>,
        fetches: usize,
        /// Replaces `rows` after this many fetches (a change arriving mid-run).
        heal: Option<(usize, Vec<Row>)>,
        /// A busy replicated table: every read of more than one row shows one of them (a
        /// different one each time) not yet updated.
        one_in_flight: bool,
    }

    impl Memory {
        fn new(rows: Vec<Row>) -> Self {
            Self {
                rows,
                kinds: vec![ColumnKind::Integer],
                fetches: 0,
                heal: None,
                one_in_flight: false,
            }
        }
    }

    impl Fetch for Memory {
        async fn fetch(
            &mut self,
            lower: Option<&Key>,
            upper: Option<&Key>,
            limit: Option<usize>,
        ) -> Result<Vec<Row>, VerifyError> {
            self.fetches += 1;
            if let Some((after, rows)) = &self.heal {
                if self.fetches > *after {
                    self.rows = rows.clone();
                }
            }
            let kinds = self.kinds.clone();
            let mut out: Vec<Row> = self
                .rows
                .iter()
                .filter(|r| {
                    lower.is_none_or(|l| {
                        crate::plan::compare_keys(&kinds, &r.key, l) == Ordering::Greater
                    }) && upper.is_none_or(|u| {
                        crate::plan::compare_keys(&kinds, &r.key, u) != Ordering::Greater
                    })
                })
                .cloned()
                .collect();
            out.sort_by(|a, b| crate::plan::compare_keys(&kinds, &a.key, &b.key));
            if let Some(limit) = limit {
                out.truncate(limit);
            }
            if self.one_in_flight && out.len() > 1 {
                let stale = self.fetches % out.len();
                out[stale].values[0] = Some("not yet".into());
            }
            Ok(out)
        }
    }

    fn rows(ids: impl IntoIterator<Item = u32>) -> Vec<Row> {
        ids.into_iter()
            .map(|i| Row {
                key: Key(vec![i.to_string()]),
                values: vec![Some(format!("v{i}"))],
            })
            .collect()
    }

    fn plan() -> ComparePlan {
        let side = SideColumns {
            engine: Engine::Postgres,
            schema: "s".into(),
            table: "t".into(),
            key: vec![SideColumn {
                name: "id".into(),
                kind: ColumnKind::Integer,
                type_name: "int8".into(),
                cast_type: "bigint".into(),
            }],
            values: vec![],
        };
        ComparePlan {
            key_columns: vec!["id".into()],
            value_columns: vec!["v".into()],
            key_kinds: vec![ColumnKind::Integer],
            source: side.clone(),
            target: side,
            schema_differences: vec![],
        }
    }

    fn options(chunk_size: usize) -> VerifyOptions {
        VerifyOptions {
            chunk_size,
            max_retries: 2,
            retry_delay: Duration::from_millis(1),
            ..VerifyOptions::default()
        }
    }

    async fn run(source: &mut Memory, target: &mut Memory, chunk_size: usize) -> VerifyReport {
        let plan = plan();
        let mut report = ReportBuilder::new("s".into(), "t".into(), vec![], vec![], vec![], 1_000);
        compare_tables(source, target, &plan, &options(chunk_size), &mut report)
            .await
            .expect("compare");
        report.finish(Duration::ZERO)
    }

    fn keys(ids: &[u32]) -> Vec<Key> {
        ids.iter().map(|i| Key(vec![i.to_string()])).collect()
    }

    #[test]
    fn verify_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let endpoint = Endpoint::new(
            crate::ConnectionSettings::postgres("h", 1, "u", "d"),
            crate::TableRef::new(None, "t"),
        );
        let options = VerifyOptions::default();
        let future = verify(&endpoint, &endpoint, &options);
        assert_send(&future);
    }

    #[tokio::test]
    async fn chunk_walk_covers_every_row() {
        // (source ids, target ids, chunk size, chunks, missing, extra)
        type Case = (Vec<u32>, Vec<u32>, usize, u64, Vec<u32>, Vec<u32>);
        let cases: Vec<Case> = vec![
            ((1..=10).collect(), (1..=10).collect(), 5, 3, vec![], vec![]),
            ((1..=10).collect(), (1..=10).collect(), 3, 4, vec![], vec![]),
            (
                (1..=10).collect(),
                (1..=10).collect(),
                100,
                1,
                vec![],
                vec![],
            ),
            (
                (1..=10).collect(),
                (1..=10).collect(),
                1,
                11,
                vec![],
                vec![],
            ),
            (vec![], vec![], 5, 1, vec![], vec![]),
            ((1..=10).collect(), vec![], 4, 3, (1..=10).collect(), vec![]),
            (vec![], (1..=10).collect(), 4, 3, vec![], (1..=10).collect()),
            // extra rows past the end of the source, more than a chunk of them
            (
                (1..=3).collect(),
                (1..=12).collect(),
                3,
                5,
                vec![],
                (4..=12).collect(),
            ),
            // extra rows inside a source chunk's range
            (
                vec![1, 5, 10],
                vec![1, 2, 3, 4, 5, 10],
                2,
                2,
                vec![],
                vec![2, 3, 4],
            ),
            // missing at both ends and in the middle
            (
                (1..=9).collect(),
                vec![2, 3, 5, 6, 7, 8],
                4,
                3,
                vec![1, 4, 9],
                vec![],
            ),
        ];
        for (source_ids, target_ids, chunk, chunks, missing, extra) in cases {
            let label = format!("{source_ids:?} vs {target_ids:?} by {chunk}");
            let mut s = Memory::new(rows(source_ids.clone()));
            let mut t = Memory::new(rows(target_ids));
            let r = run(&mut s, &mut t, chunk).await;
            assert_eq!(r.chunks, chunks, "{label}");
            assert_eq!(r.missing, keys(&missing), "{label}");
            assert_eq!(r.extra, keys(&extra), "{label}");
            assert_eq!(r.rows_compared, source_ids.len() as u64, "{label}");
        }
    }

    #[tokio::test]
    async fn differing_chunk_is_retried_until_it_converges() {
        let mut s = Memory::new(rows(1..=6));
        let mut t = Memory::new(rows([1, 2, 3, 5, 6]));
        // The target's first read lacks row 4; from its third fetch on, the row has arrived.
        t.heal = Some((2, rows(1..=6)));
        let r = run(&mut s, &mut t, 3).await;
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.chunks_retried, 1);
        assert_eq!(r.chunks_differing, 0);
    }

    /// A chunk of a busy table always has some row in flight; each row alone converges. Only
    /// re-reading the differing rows, not the whole chunk, gets to a clean comparison.
    #[tokio::test]
    async fn rows_in_flight_in_every_read_of_a_busy_chunk_converge_row_by_row() {
        let mut s = Memory::new(rows(1..=20));
        let mut t = Memory::new(rows(1..=20));
        t.one_in_flight = true;
        let r = run(&mut s, &mut t, 20).await;
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.chunks_retried, 1);
    }

    #[tokio::test]
    async fn persistent_difference_is_reported_after_retries() {
        let mut s = Memory::new(rows(1..=4));
        let mut changed = rows(1..=4);
        changed[1].values[0] = Some("other".into());
        let mut t = Memory::new(changed);
        let r = run(&mut s, &mut t, 10).await;
        assert_eq!(r.chunks_retried, 1);
        assert_eq!(r.chunks_differing, 1);
        assert_eq!(r.differing.len(), 1);
        assert_eq!(r.differing[0].key, Key(vec!["2".into()]));
        // One first read plus max_retries (2) re-reads on each side.
        assert_eq!((s.fetches, t.fetches), (3, 3));
    }
}
