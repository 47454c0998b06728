//! Topics added to or removed from a running pipeline (`lockstep ddl` CREATE / DROP TABLE),
//! on top of the pipeline file's `kafka.topics`.
//!
//! They live in the target next to the offsets (`lockstep.sink_topics` on PostgreSQL,
//! `lockstep_sink_topics` on MariaDB / MySQL), one row per pipeline and topic saying whether
//! the topic is added (with its target table, when it differs from the source table's name)
//! or removed. A sink reads them at start and unions them with the file's topics
//! ([`effective_topics`]), so a restart reads what the running sink was told. The file stays
//! what the operator wrote; the rows are the changes since.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One runtime change of a pipeline's topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeTopic {
    pub topic: String,
    /// The target table (`None`: the source table's name, as for the file's topics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Removed from the pipeline (a file topic included) rather than added.
    #[serde(default)]
    pub removed: bool,
}

impl RuntimeTopic {
    /// A row of `PG_TOPICS_SELECT`.
    pub fn from_pg_row(row: &tokio_postgres::Row) -> Self {
        Self {
            topic: row.get(0),
            table: row.get(1),
            removed: row.get(2),
        }
    }

    /// A row of `MY_TOPICS_SELECT`.
    pub fn from_my_row((topic, table, removed): (String, Option<String>, bool)) -> Self {
        Self {
            topic,
            table,
            removed,
        }
    }
}

/// PostgreSQL: the table of runtime topics (the schema exists with the offsets table).
pub const PG_TOPICS_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS lockstep;
CREATE TABLE IF NOT EXISTS lockstep.sink_topics (
    pipeline     text        NOT NULL,
    topic        text        NOT NULL,
    target_table text,
    removed      boolean     NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, topic)
)";
pub const PG_TOPICS_SELECT: &str = "SELECT topic, target_table, removed FROM lockstep.sink_topics WHERE pipeline = $1 ORDER BY topic";
pub const PG_TOPICS_UPSERT: &str =
    "INSERT INTO lockstep.sink_topics (pipeline, topic, target_table, removed)
VALUES ($1, $2, $3, $4)
ON CONFLICT (pipeline, topic) DO UPDATE
SET target_table = EXCLUDED.target_table, removed = EXCLUDED.removed, updated_at = now()";
/// Whether the table exists (readers that must not create it, like `lockstep ddl plan`).
pub const PG_TOPICS_EXISTS: &str = "SELECT to_regclass('lockstep.sink_topics') IS NOT NULL";

/// MariaDB / MySQL: the same, in the target database (ASCII keys as the offsets table).
pub const MY_TOPICS_DDL: &str = "CREATE TABLE IF NOT EXISTS `lockstep_sink_topics` (
    pipeline     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    topic        VARCHAR(249) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    target_table VARCHAR(64)  NULL,
    removed      BOOLEAN      NOT NULL,
    updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline, topic)
) ENGINE = InnoDB";
pub const MY_TOPICS_SELECT: &str = "SELECT topic, target_table, removed FROM `lockstep_sink_topics` WHERE pipeline = ? ORDER BY topic";
pub const MY_TOPICS_UPSERT: &str = "INSERT INTO `lockstep_sink_topics` (pipeline, topic, target_table, removed)
VALUES (?, ?, ?, ?)
ON DUPLICATE KEY UPDATE target_table = VALUES(target_table), removed = VALUES(removed), updated_at = CURRENT_TIMESTAMP(6)";
pub const MY_TOPICS_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'lockstep_sink_topics'";

/// The topics a sink reads (pure): the file's, in file order, without the removed ones, then
/// the added ones not in the file, by name.
pub fn effective_topics(file: &[String], runtime: &[RuntimeTopic]) -> Vec<String> {
    let by_topic: BTreeMap<&str, &RuntimeTopic> =
        runtime.iter().map(|r| (r.topic.as_str(), r)).collect();
    let mut out: Vec<String> = file
        .iter()
        .filter(|t| !by_topic.get(t.as_str()).is_some_and(|r| r.removed))
        .cloned()
        .collect();
    for (topic, r) in &by_topic {
        if !r.removed && !out.iter().any(|t| t == topic) {
            out.push(topic.to_string());
        }
    }
    out
}

/// Whether a topic added at runtime is one of this process's (pure). The file's partitions
/// are split by their position (`Assignment::owns`); a runtime topic's partition goes by a
/// stable hash of the topic name plus the partition number, so every process of a scaled-out
/// pipeline computes the same split without counting the others' partitions.
pub fn runtime_index(topic: &str, partition: i32) -> usize {
    // FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash as usize).wrapping_add(partition.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(topic: &str, table: Option<&str>, removed: bool) -> RuntimeTopic {
        RuntimeTopic {
            topic: topic.into(),
            table: table.map(str::to_string),
            removed,
        }
    }

    #[test]
    fn runtime_topics_are_unioned_with_the_file() {
        let file = vec!["p.public.a".to_string(), "p.public.b".to_string()];
        // (runtime rows, expected topics)
        let cases: Vec<(Vec<RuntimeTopic>, Vec<&str>)> = vec![
            (vec![], vec!["p.public.a", "p.public.b"]),
            (
                vec![rt("p.public.c", None, false)],
                vec!["p.public.a", "p.public.b", "p.public.c"],
            ),
            (vec![rt("p.public.a", None, true)], vec!["p.public.b"]),
            // Added again after a removal: the row says added.
            (
                vec![rt("p.public.a", None, false)],
                vec!["p.public.a", "p.public.b"],
            ),
            (
                vec![
                    rt("p.public.d", Some("dd"), false),
                    rt("p.public.c", None, true),
                ],
                vec!["p.public.a", "p.public.b", "p.public.d"],
            ),
        ];
        for (runtime, expected) in cases {
            assert_eq!(effective_topics(&file, &runtime), expected, "{runtime:?}");
        }
    }

    #[test]
    fn runtime_index_is_stable() {
        assert_eq!(runtime_index("a", 0), runtime_index("a", 0));
        assert_eq!(runtime_index("a", 1), runtime_index("a", 0).wrapping_add(1));
        assert_ne!(runtime_index("a", 0), runtime_index("b", 0));
    }
}
