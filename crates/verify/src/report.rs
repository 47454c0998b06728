//! The result of a verification, one serialisable view for table, JSON and YAML output.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diff::{ChunkDiff, DifferingRow, Key};
use crate::plan::SchemaDifference;

/// What a verification found.
///
/// Key lists are capped (`VerifyOptions::max_listed_keys` of each kind); the `*_count` fields
/// count every one, and `keys_truncated` says whether a list was cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// `engine host:port/database schema.table` of the source.
    pub source_table: String,
    pub target_table: String,
    /// The primary key columns every listed key's values follow.
    pub key_columns: Vec<String>,
    /// The non-key columns compared (present on both sides).
    pub compared_columns: Vec<String>,
    /// Source rows compared.
    pub rows_compared: u64,
    /// Target rows read.
    pub target_rows: u64,
    pub chunks: u64,
    /// Chunks that differed at first and were re-read (whether or not they converged).
    pub chunks_retried: u64,
    /// Chunks that still differed after their retries.
    pub chunks_differing: u64,
    pub missing_count: u64,
    /// Keys in the source and not in the target.
    pub missing: Vec<Key>,
    pub extra_count: u64,
    /// Keys in the target and not in the source.
    pub extra: Vec<Key>,
    pub differing_count: u64,
    /// Keys on both sides whose values differ, with the differing columns.
    pub differing: Vec<DifferingRow>,
    pub keys_truncated: bool,
    /// Columns present on one side only (not compared).
    pub schema_differences: Vec<SchemaDifference>,
    #[serde(rename = "duration_ms", with = "crate::settings::duration_millis")]
    pub duration: Duration,
}

impl VerifyReport {
    /// No row differs and both tables have the same columns.
    pub fn is_clean(&self) -> bool {
        self.rows_clean() && self.schema_differences.is_empty()
    }

    /// No row is missing, extra or differing (in the compared columns).
    pub fn rows_clean(&self) -> bool {
        self.missing_count == 0 && self.extra_count == 0 && self.differing_count == 0
    }
}

/// Accumulates chunk results into a report, counting everything and listing up to `cap` keys.
#[derive(Debug)]
pub(crate) struct ReportBuilder {
    report: VerifyReport,
    cap: usize,
}

impl ReportBuilder {
    pub(crate) fn new(
        source_table: String,
        target_table: String,
        key_columns: Vec<String>,
        compared_columns: Vec<String>,
        schema_differences: Vec<SchemaDifference>,
        cap: usize,
    ) -> Self {
        Self {
            report: VerifyReport {
                source_table,
                target_table,
                key_columns,
                compared_columns,
                rows_compared: 0,
                target_rows: 0,
                chunks: 0,
                chunks_retried: 0,
                chunks_differing: 0,
                missing_count: 0,
                missing: Vec::new(),
                extra_count: 0,
                extra: Vec::new(),
                differing_count: 0,
                differing: Vec::new(),
                keys_truncated: false,
                schema_differences,
                duration: Duration::ZERO,
            },
            cap,
        }
    }

    pub(crate) fn add_chunk(
        &mut self,
        source_rows: usize,
        target_rows: usize,
        retried: bool,
        diff: ChunkDiff,
    ) {
        let r = &mut self.report;
        r.chunks += 1;
        r.rows_compared += source_rows as u64;
        r.target_rows += target_rows as u64;
        r.chunks_retried += u64::from(retried);
        r.chunks_differing += u64::from(!diff.is_clean());
        let cap = self.cap;
        let mut truncated = take(&mut r.missing_count, &mut r.missing, diff.missing, cap);
        truncated |= take(&mut r.extra_count, &mut r.extra, diff.extra, cap);
        truncated |= take(
            &mut r.differing_count,
            &mut r.differing,
            diff.differing,
            cap,
        );
        r.keys_truncated |= truncated;
    }

    pub(crate) fn finish(mut self, duration: Duration) -> VerifyReport {
        self.report.duration = duration;
        self.report
    }
}

/// Counts `items` and lists them up to `cap`; true when some were left off the list.
fn take<T>(count: &mut u64, list: &mut Vec<T>, items: Vec<T>, cap: usize) -> bool {
    *count += items.len() as u64;
    let room = cap.saturating_sub(list.len());
    let truncated = items.len() > room;
    list.extend(items.into_iter().take(room));
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Key {
        Key(vec![k.to_string()])
    }

    fn builder(cap: usize) -> ReportBuilder {
        ReportBuilder::new(
            "src".into(),
            "dst".into(),
            vec!["id".into()],
            vec!["v".into()],
            vec![],
            cap,
        )
    }

    #[test]
    fn counts_everything_lists_up_to_the_cap() {
        let mut b = builder(2);
        b.add_chunk(
            3,
            1,
            true,
            ChunkDiff {
                missing: vec![key("1"), key("2"), key("3")],
                extra: vec![key("9")],
                differing: vec![],
            },
        );
        b.add_chunk(
            2,
            2,
            false,
            ChunkDiff {
                missing: vec![],
                extra: vec![],
                differing: vec![
                    DifferingRow {
                        key: key("4"),
                        columns: vec!["v".into()],
                    };
                    3
                ],
            },
        );
        b.add_chunk(5, 5, true, ChunkDiff::default());
        let r = b.finish(Duration::from_millis(1500));
        assert_eq!(r.chunks, 3);
        assert_eq!(r.chunks_retried, 2);
        assert_eq!(r.chunks_differing, 2);
        assert_eq!(r.rows_compared, 10);
        assert_eq!(r.target_rows, 8);
        assert_eq!((r.missing_count, r.missing.len()), (3, 2));
        assert_eq!((r.extra_count, r.extra.len()), (1, 1));
        assert_eq!((r.differing_count, r.differing.len()), (3, 2));
        assert!(r.keys_truncated);
        assert!(!r.is_clean());
        assert!(!r.rows_clean());
    }

    #[test]
    fn clean_report_and_serialisation() {
        let mut b = builder(10);
        b.add_chunk(4, 4, false, ChunkDiff::default());
        let r = b.finish(Duration::from_millis(42));
        assert!(r.is_clean());
        let json = serde_json::to_value(&r).expect("serialise");
        assert_eq!(json["duration_ms"], 42);
        assert_eq!(json["missing"], serde_json::json!([]));
        let back: VerifyReport = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, r);

        let mut with_schema = builder(10);
        with_schema.report.schema_differences = vec![SchemaDifference::OnlyInTarget {
            column: "x".into(),
            declared_type: "int".into(),
        }];
        let r = with_schema.finish(Duration::ZERO);
        assert!(r.rows_clean());
        assert!(!r.is_clean());
        let json = serde_json::to_value(&r).expect("serialise");
        assert_eq!(json["schema_differences"][0]["kind"], "only_in_target");
    }

    #[test]
    fn keys_serialise_as_value_lists() {
        let json = serde_json::to_string(&Key(vec!["eu".into(), "7".into()])).expect("json");
        assert_eq!(json, r#"["eu","7"]"#);
    }
}
