//! Rows in canonical form, chunk digests, and the row-level diff of a chunk whose digests differ.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::{canonical_opt, ColumnKind};
use crate::plan::compare_keys;

/// A primary key's canonical values, in key column order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key(pub Vec<String>);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({})", self.0.join(", "))
    }
}

/// One row in canonical form: its key and its compared non-key values (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: Key,
    pub values: Vec<Option<String>>,
}

/// A fetched row's raw text could not be made a [`Row`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// The row has a different number of fields than columns were selected.
    Width { expected: usize, got: usize },
    /// A primary key column is NULL.
    NullKey { column: usize },
}

/// Builds a canonical row from the raw text of `key_kinds.len() + value_kinds.len()` fields
/// (key columns first), as the adapters select them.
pub fn build_row(
    key_kinds: &[ColumnKind],
    value_kinds: &[ColumnKind],
    raw: Vec<Option<String>>,
) -> Result<Row, RowError> {
    let expected = key_kinds.len() + value_kinds.len();
    if raw.len() != expected {
        return Err(RowError::Width {
            expected,
            got: raw.len(),
        });
    }
    let mut fields = raw.into_iter();
    let mut key = Vec::with_capacity(key_kinds.len());
    for (i, kind) in key_kinds.iter().enumerate() {
        match fields.next().flatten() {
            Some(text) => key.push(crate::canonical::canonical(*kind, &text)),
            None => return Err(RowError::NullKey { column: i }),
        }
    }
    let values = value_kinds
        .iter()
        .zip(fields)
        .map(|(kind, field)| canonical_opt(*kind, field.as_deref()))
        .collect();
    Ok(Row {
        key: Key(key),
        values,
    })
}

/// SHA-256 over the rows in order. Every field is length-prefixed and NULL has its own tag, so
/// no two different row lists (NULL vs empty string, shifted boundaries) share an encoding.
pub fn chunk_digest(rows: &[Row]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut field = |value: Option<&str>| match value {
        None => hasher.update([0u8]),
        Some(text) => {
            hasher.update([1u8]);
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
    };
    for row in rows {
        for k in &row.key.0 {
            field(Some(k));
        }
        for v in &row.values {
            field(v.as_deref());
        }
    }
    let mut hasher_out = [0u8; 32];
    hasher_out.copy_from_slice(&hasher.finalize());
    hasher_out
}

/// A row present on both sides whose values differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferingRow {
    pub key: Key,
    /// The differing columns' names (source spelling).
    pub columns: Vec<String>,
}

/// The outcome of comparing one chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkDiff {
    /// In the source, not in the target.
    pub missing: Vec<Key>,
    /// In the target, not in the source.
    pub extra: Vec<Key>,
    pub differing: Vec<DifferingRow>,
}

impl ChunkDiff {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.differing.is_empty()
    }
}

/// Compares a chunk: equal digests mean equal rows; otherwise a merge-join by key lists what
/// differs. Rows need not arrive sorted (they are sorted by `key_kinds` order first).
pub fn compare_chunk(
    source: &[Row],
    target: &[Row],
    key_kinds: &[ColumnKind],
    value_columns: &[String],
) -> ChunkDiff {
    if chunk_digest(source) == chunk_digest(target) {
        return ChunkDiff::default();
    }
    diff_rows(source, target, key_kinds, value_columns)
}

/// The merge-join of two row lists by key.
pub fn diff_rows(
    source: &[Row],
    target: &[Row],
    key_kinds: &[ColumnKind],
    value_columns: &[String],
) -> ChunkDiff {
    let (source, target) = (sorted(source, key_kinds), sorted(target, key_kinds));
    let mut diff = ChunkDiff::default();
    let (mut i, mut j) = (0, 0);
    while i < source.len() || j < target.len() {
        let order = match (source.get(i), target.get(j)) {
            (Some(s), Some(t)) => compare_keys(key_kinds, &s.key, &t.key),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                diff.missing.push(source[i].key.clone());
                i += 1;
            }
            Ordering::Greater => {
                diff.extra.push(target[j].key.clone());
                j += 1;
            }
            Ordering::Equal => {
                let (s, t) = (source[i], target[j]);
                let columns: Vec<String> = value_columns
                    .iter()
                    .zip(s.values.iter().zip(&t.values))
                    .filter(|(_, (a, b))| a != b)
                    .map(|(name, _)| name.clone())
                    .collect();
                if !columns.is_empty() {
                    diff.differing.push(DifferingRow {
                        key: s.key.clone(),
                        columns,
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    diff
}

fn sorted<'a>(rows: &'a [Row], key_kinds: &[ColumnKind]) -> Vec<&'a Row> {
    let mut refs: Vec<&Row> = rows.iter().collect();
    refs.sort_by(|a, b| compare_keys(key_kinds, &a.key, &b.key));
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnKind::*;

    fn row(key: &[&str], values: &[Option<&str>]) -> Row {
        Row {
            key: Key(key.iter().map(|s| s.to_string()).collect()),
            values: values.iter().map(|v| v.map(str::to_string)).collect(),
        }
    }

    fn key(parts: &[&str]) -> Key {
        Key(parts.iter().map(|s| s.to_string()).collect())
    }

    fn cols() -> Vec<String> {
        vec!["a".to_string(), "b".to_string()]
    }

    struct Case {
        name: &'static str,
        source: Vec<Row>,
        target: Vec<Row>,
        missing: Vec<Key>,
        extra: Vec<Key>,
        differing: Vec<(Key, Vec<&'static str>)>,
    }

    #[test]
    fn merge_join() {
        let cases = vec![
            Case {
                name: "identical",
                source: vec![
                    row(&["1"], &[Some("x"), None]),
                    row(&["2"], &[Some("y"), Some("z")]),
                ],
                target: vec![
                    row(&["1"], &[Some("x"), None]),
                    row(&["2"], &[Some("y"), Some("z")]),
                ],
                missing: vec![],
                extra: vec![],
                differing: vec![],
            },
            Case {
                name: "both empty",
                source: vec![],
                target: vec![],
                missing: vec![],
                extra: vec![],
                differing: vec![],
            },
            Case {
                name: "target empty",
                source: vec![row(&["1"], &[None, None]), row(&["2"], &[None, None])],
                target: vec![],
                missing: vec![key(&["1"]), key(&["2"])],
                extra: vec![],
                differing: vec![],
            },
            Case {
                name: "source empty",
                source: vec![],
                target: vec![row(&["5"], &[None, None])],
                missing: vec![],
                extra: vec![key(&["5"])],
                differing: vec![],
            },
            Case {
                name: "missing in the middle, extra at the end",
                source: vec![
                    row(&["1"], &[None, None]),
                    row(&["2"], &[None, None]),
                    row(&["3"], &[None, None]),
                ],
                target: vec![
                    row(&["1"], &[None, None]),
                    row(&["3"], &[None, None]),
                    row(&["4"], &[None, None]),
                ],
                missing: vec![key(&["2"])],
                extra: vec![key(&["4"])],
                differing: vec![],
            },
            Case {
                name: "one changed column",
                source: vec![row(&["1"], &[Some("x"), Some("same")])],
                target: vec![row(&["1"], &[Some("y"), Some("same")])],
                missing: vec![],
                extra: vec![],
                differing: vec![(key(&["1"]), vec!["a"])],
            },
            Case {
                name: "NULL vs empty string",
                source: vec![row(&["1"], &[None, Some("")])],
                target: vec![row(&["1"], &[Some(""), Some("")])],
                missing: vec![],
                extra: vec![],
                differing: vec![(key(&["1"]), vec!["a"])],
            },
            Case {
                name: "both columns differ",
                source: vec![row(&["1"], &[Some("1"), Some("2")])],
                target: vec![row(&["1"], &[Some("3"), None])],
                missing: vec![],
                extra: vec![],
                differing: vec![(key(&["1"]), vec!["a", "b"])],
            },
            Case {
                name: "numeric key order, unsorted input",
                source: vec![row(&["10"], &[None, None]), row(&["9"], &[None, None])],
                target: vec![row(&["9"], &[None, None]), row(&["11"], &[None, None])],
                missing: vec![key(&["10"])],
                extra: vec![key(&["11"])],
                differing: vec![],
            },
        ];
        for case in cases {
            let diff = diff_rows(&case.source, &case.target, &[Integer], &cols());
            assert_eq!(diff.missing, case.missing, "{}", case.name);
            assert_eq!(diff.extra, case.extra, "{}", case.name);
            let differing: Vec<(Key, Vec<String>)> = diff
                .differing
                .into_iter()
                .map(|d| (d.key, d.columns))
                .collect();
            let expected: Vec<(Key, Vec<String>)> = case
                .differing
                .into_iter()
                .map(|(k, c)| (k, c.into_iter().map(str::to_string).collect()))
                .collect();
            assert_eq!(differing, expected, "{}", case.name);
            let clean = case.source == case.target;
            assert_eq!(
                compare_chunk(&case.source, &case.target, &[Integer], &cols()).is_clean(),
                clean,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn composite_keys_merge() {
        let kinds = [Text, Integer];
        let source = vec![
            row(&["eu", "1"], &[Some("a"), None]),
            row(&["eu", "2"], &[Some("b"), None]),
            row(&["us", "1"], &[Some("c"), None]),
        ];
        let target = vec![
            row(&["eu", "2"], &[Some("B"), None]),
            row(&["us", "1"], &[Some("c"), None]),
            row(&["us", "10"], &[Some("d"), None]),
        ];
        let diff = diff_rows(&source, &target, &kinds, &cols());
        assert_eq!(diff.missing, vec![key(&["eu", "1"])]);
        assert_eq!(diff.extra, vec![key(&["us", "10"])]);
        assert_eq!(diff.differing.len(), 1);
        assert_eq!(diff.differing[0].key, key(&["eu", "2"]));
        assert_eq!(diff.differing[0].columns, vec!["a".to_string()]);
    }

    #[test]
    fn digest_separates_null_empty_and_boundaries() {
        let d = |rows: &[Row]| chunk_digest(rows);
        assert_ne!(d(&[row(&["1"], &[None])]), d(&[row(&["1"], &[Some("")])]));
        assert_ne!(
            d(&[row(&["1"], &[Some("ab"), Some("c")])]),
            d(&[row(&["1"], &[Some("a"), Some("bc")])])
        );
        assert_eq!(
            d(&[row(&["1"], &[Some("x")])]),
            d(&[row(&["1"], &[Some("x")])])
        );
        assert_ne!(d(&[]), d(&[row(&["1"], &[])]));
    }

    #[test]
    fn rows_build_canonically() {
        let raw = vec![
            Some("007".to_string()),
            Some("t".to_string()),
            None,
            Some("1.50".to_string()),
        ];
        let built = build_row(&[Integer], &[Boolean, Text, Decimal], raw).expect("row");
        assert_eq!(built, row(&["7"], &[Some("1"), None, Some("1.5")]));
        assert_eq!(
            build_row(&[Integer], &[Text], vec![None, None]),
            Err(RowError::NullKey { column: 0 })
        );
        assert_eq!(
            build_row(&[Integer], &[Text], vec![Some("1".into())]),
            Err(RowError::Width {
                expected: 2,
                got: 1
            })
        );
    }
}
