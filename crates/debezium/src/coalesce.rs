//! Per-table batch coalescing.
//!
//! Given the decoded records of one table in Kafka order, produce the
//! smallest list of operations with the same end result in the target:
//! for each primary key only its last effective state matters — an upsert of
//! the final row or a delete of the key. A truncate is a barrier: everything
//! before it is dropped and the batch becomes "truncate, then what follows".
//!
//! Keys are compared by value (the record key's columns), so an update that
//! changes the primary key — which Debezium emits as a delete of the old key
//! and a create of the new one — needs no special case.
//!
//! Ordering: the operations come out ordered by the position of each key's
//! last event, so independent keys are applied in the order their final
//! states were produced. This cannot make every secondary UNIQUE constraint
//! swap safe (no reordering can in general); the sink must be prepared for
//! that.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::envelope::{Op, Record, Row, TableId};

/// A record with its Kafka coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Positioned<T> {
    /// Shared by the records of a topic (one allocation per batch, not per record).
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub record: T,
}

/// Kafka coordinates of one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// One operation of a coalesced batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TableOp<'a> {
    /// Insert the row, or replace the row with the same key.
    Upsert {
        key: Cow<'a, Row>,
        row: Cow<'a, Row>,
        /// The op of the last event for this key (Create, Read or Update).
        op: Op,
        /// The key's first change in the batch created it (`c`): the source had no such row
        /// before, so the target should not have it yet. It may all the same: a connector
        /// restarted without exactly-once delivery replays changes already applied. A sink can
        /// insert these rows without a conflict check as long as it falls back to the upsert
        /// when the row turns out to be there.
        created: bool,
        /// Where the last event for this key was read.
        position: Position,
    },
    /// Delete the row with this key, if present.
    Delete {
        key: Cow<'a, Row>,
        position: Position,
    },
}

impl TableOp<'_> {
    pub fn key(&self) -> &Row {
        match self {
            TableOp::Upsert { key, .. } | TableOp::Delete { key, .. } => key,
        }
    }

    pub fn position(&self) -> &Position {
        match self {
            TableOp::Upsert { position, .. } | TableOp::Delete { position, .. } => position,
        }
    }
}

/// The result of coalescing one table's records.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CoalescedBatch<'a> {
    /// The table, when any change or truncate named it.
    pub table: Option<TableId>,
    /// Set when the batch contains a truncate: apply it first. The position
    /// is the last truncate's.
    pub truncate: Option<Position>,
    /// Per-key final operations, to apply after the truncate (if any).
    pub ops: Vec<TableOp<'a>>,
    /// Highest offset per (topic, partition) among all input records,
    /// including records that produced no operation (heartbeats, messages,
    /// tombstones). Store these with the batch; resume from offset + 1.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Number of input records.
    pub input_records: usize,
}

/// Why a batch cannot be coalesced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoalesceError {
    #[error(
        "{position}: change event for table {table} has no key (the table has no primary key, or the record \
         key is null); lockstep applies changes by key: add a primary key to the source table or set the \
         connector's message.key.columns for it"
    )]
    MissingKey { position: Position, table: TableId },

    #[error(
        "{position}: record for table {other} in a batch for table {table}; group records by table before \
         coalescing"
    )]
    MixedTables {
        position: Position,
        table: Box<TableId>,
        other: Box<TableId>,
    },

    #[error(
        "{position}: offset is not after the previous offset {previous} of that partition; records must be \
         given in Kafka order"
    )]
    OutOfOrder { position: Position, previous: i64 },

    #[error("{position}: '{op}' event without an 'after' row")]
    MissingAfter {
        position: Position,
        op: &'static str,
    },
}

/// A canonical identity of a key row: equal keys give equal fingerprints.
pub fn key_fingerprint(key: &Row) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for c in &key.columns {
        // Debug output of a Value is unambiguous (strings are quoted and
        // escaped, variants are named). Writing to a String cannot fail.
        let _ = write!(s, "{:?}={:?};", c.name, c.value);
    }
    s
}

/// Whether a source block names this table (no allocation: runs once per record).
fn same_table(id: &TableId, source: &crate::envelope::Source) -> bool {
    id.db == source.db && id.schema == source.schema && id.table == source.table
}

/// Coalesce the records of one table, given in Kafka order.
///
/// The records are borrowed, and so are the surviving rows (the last change of each key): a
/// caller that may have to plan the same records again (the sink after a block or a poison
/// record) keeps them, and no row is copied (copying the winners was a twentieth of the sink's
/// CPU).
pub fn coalesce<'a, I>(records: I) -> Result<CoalescedBatch<'a>, CoalesceError>
where
    I: IntoIterator<Item = &'a Positioned<Record>>,
{
    let mut batch = CoalescedBatch::default();
    // fingerprint -> (sequence number of the last event, that event, whether the first event
    // created the key)
    let mut latest: HashMap<String, (usize, &'a Positioned<Record>, bool)> = HashMap::new();
    fn keep<'a>(
        latest: &mut HashMap<String, (usize, &'a Positioned<Record>, bool)>,
        fingerprint: String,
        seq: usize,
        item: &'a Positioned<Record>,
        creates: bool,
    ) {
        latest
            .entry(fingerprint)
            .and_modify(|(last_seq, last, _)| {
                *last_seq = seq;
                *last = item;
            })
            .or_insert((seq, item, creates));
    }
    let position_of = |item: &Positioned<Record>| Position {
        topic: item.topic.to_string(),
        partition: item.partition,
        offset: item.offset,
    };

    for (seq, item) in records.into_iter().enumerate() {
        batch.input_records += 1;
        // A table's records come from a handful of partitions: a scan beats allocating a key.
        let slot = batch
            .offsets
            .iter_mut()
            .find(|((topic, partition), _)| **topic == *item.topic && *partition == item.partition);
        match slot {
            Some((_, previous)) if item.offset <= *previous => {
                return Err(CoalesceError::OutOfOrder {
                    position: position_of(item),
                    previous: *previous,
                });
            }
            Some((_, previous)) => *previous = item.offset,
            None => {
                batch
                    .offsets
                    .insert((item.topic.to_string(), item.partition), item.offset);
            }
        }

        let mut check_table = |source: &crate::envelope::Source| -> Result<(), CoalesceError> {
            match &batch.table {
                None => {
                    batch.table = Some(TableId::of(source));
                    Ok(())
                }
                Some(t) if same_table(t, source) => Ok(()),
                Some(t) => Err(CoalesceError::MixedTables {
                    position: position_of(item),
                    table: Box::new(t.clone()),
                    other: Box::new(TableId::of(source)),
                }),
            }
        };

        match &item.record {
            Record::Change(ev) => {
                check_table(&ev.source)?;
                let Some(key) = &ev.key else {
                    return Err(CoalesceError::MissingKey {
                        position: position_of(item),
                        table: ev.table_id(),
                    });
                };
                if ev.op != Op::Delete && ev.after.is_none() {
                    return Err(CoalesceError::MissingAfter {
                        position: position_of(item),
                        op: ev.op.code(),
                    });
                }
                keep(
                    &mut latest,
                    key_fingerprint(key),
                    seq,
                    item,
                    ev.op == Op::Create,
                );
            }
            Record::Tombstone { key: Some(key) } => {
                // After a delete this is a no-op; on a compacted topic it may
                // be all that is left of the delete, so it deletes.
                keep(&mut latest, key_fingerprint(key), seq, item, false);
            }
            Record::Truncate(t) => {
                check_table(&t.source)?;
                latest.clear();
                batch.truncate = Some(position_of(item));
            }
            // Nothing to apply; the offset is still covered.
            Record::Tombstone { key: None }
            | Record::Message(_)
            | Record::Heartbeat { .. }
            | Record::Transaction { .. }
            | Record::SchemaChange(_)
            | Record::Other { .. } => {}
        }
    }

    let mut winners: Vec<(usize, &Positioned<Record>, bool)> = latest.into_values().collect();
    winners.sort_by_key(|(seq, _, _)| *seq);
    batch.ops = winners
        .into_iter()
        .filter_map(|(_, item, created)| {
            let position = position_of(item);
            match &item.record {
                Record::Change(ev) => {
                    // Both checked above: a kept change has a key, and an after row unless
                    // it is a delete.
                    let key = Cow::Borrowed(ev.key.as_ref()?);
                    Some(match ev.op {
                        Op::Delete => TableOp::Delete { key, position },
                        op => TableOp::Upsert {
                            key,
                            row: Cow::Borrowed(ev.after.as_ref()?),
                            op,
                            created,
                            position,
                        },
                    })
                }
                Record::Tombstone { key: Some(key) } => Some(TableOp::Delete {
                    key: Cow::Borrowed(key),
                    position,
                }),
                // Only changes and keyed tombstones are kept above.
                _ => None,
            }
        })
        .collect();
    Ok(batch)
}
