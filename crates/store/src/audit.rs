//! The audit log's pure core: secret scrubbing, the canonical encoding each record is hashed
//! over, and the chain verifier. The store (`store.rs`) only reads and writes rows.
//!
//! A record's hash is SHA-256 over this byte string (lengths are byte counts, in decimal):
//!
//! ```text
//! lockstep-audit-v1\n
//! <len>:<seq in decimal>\n
//! <len>:<ts>\n
//! <len>:<actor>\n
//! <len>:<action>\n
//! <len>:<subject>\n
//! <len>:<details, canonical JSON>\n
//! <len>:<prev_hash>\n
//! ```
//!
//! Canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes, strings escaped as
//! `serde_json` escapes them, numbers as `serde_json` prints them. The details are stored in
//! this form, so the hash is recomputed from the stored text alone and any edit to a row,
//! even one that keeps the JSON equivalent, shows. The first record's `prev_hash` is
//! [`GENESIS_HASH`].

use std::fmt;

use lockstep_connect::{is_config_provider_placeholder, is_sensitive_key, scrub_text, MASK};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &[u8] = b"lockstep-audit-v1\n";

/// One record of the audit log as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: u64,
    /// UTC RFC 3339.
    pub ts: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// Canonical JSON text (see the module documentation).
    #[serde(serialize_with = "serialize_details")]
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

fn serialize_details<S: serde::Serializer>(
    details: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    // Shown as JSON, not as a string of JSON; a row that no longer parses shows as text.
    match serde_json::from_str::<Value>(details) {
        Ok(value) => value.serialize(serializer),
        Err(_) => serializer.serialize_str(details),
    }
}

impl AuditRecord {
    /// The details as JSON (`Value::String` of the raw text when a row no longer parses).
    pub fn details_json(&self) -> Value {
        serde_json::from_str(&self.details).unwrap_or_else(|_| Value::String(self.details.clone()))
    }

    /// The hash this record's content calls for.
    pub fn computed_hash(&self) -> String {
        record_hash(
            self.seq,
            &self.ts,
            &self.actor,
            &self.action,
            &self.subject,
            &self.details,
            &self.prev_hash,
        )
    }
}

/// SHA-256 (lower-case hex) over the canonical encoding of a record's fields.
pub fn record_hash(
    seq: u64,
    ts: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    let seq = seq.to_string();
    for field in [seq.as_str(), ts, actor, action, subject, details, prev_hash] {
        hasher.update(field.len().to_string().as_bytes());
        hasher.update(b":");
        hasher.update(field.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// Canonical JSON text of `value` (see the module documentation).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here rather than trusting the map's order: serde_json's `preserve_order`
            // feature, switched on by any crate of the build, would change it.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // Serialising a &str cannot fail; the fallback keeps this total anyway.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// `details` with secrets removed, before anything is hashed or stored: every non-empty value
/// under a key that [`is_sensitive_key`] names (a string, or a whole object, array or number)
/// becomes `****`, except Connect config-provider references (`${file:...}`), which name a
/// secret's location rather than hold it; every other string loses embedded credentials
/// (`postgres://user:pw@host`, `password=...`) through [`scrub_text`].
pub fn scrub_details(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, item)| {
                    let item = if is_sensitive_key(&key) {
                        mask(item)
                    } else {
                        scrub_details(item)
                    };
                    (key, item)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub_details).collect()),
        Value::String(s) => Value::String(scrub_text(&s).into_owned()),
        other => other,
    }
}

fn mask(value: Value) -> Value {
    match &value {
        Value::Null => value,
        Value::String(s) if s.is_empty() || is_config_provider_placeholder(s) => value,
        _ => Value::String(MASK.to_string()),
    }
}

/// Why the chain is broken at a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakReason {
    /// The record's content no longer matches its hash: a field was changed.
    Edited,
    /// The record holds content whose hash fits another position: rows were swapped.
    Reordered { original_seq: u64 },
    /// Records `seq..=last_missing` are gone.
    Missing { last_missing: u64 },
    /// The record's `prev_hash` is not the previous record's hash: the previous record was
    /// rewritten with a recomputed hash, or this record's link was changed.
    BrokenLink,
    /// The chain ends before the last record the store appended: the tail was deleted.
    TruncatedTail { head_seq: u64 },
    /// The last record's hash differs from the one the store kept when appending it.
    HeadMismatch,
    /// Records were inserted after the last one the store appended.
    AppendedOutsideStore { head_seq: u64 },
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakReason::Edited => f.write_str(
                "the record was edited: its content no longer matches its hash",
            ),
            BreakReason::Reordered { original_seq } => write!(
                f,
                "records were reordered: this position holds the record written as seq {original_seq}"
            ),
            BreakReason::Missing { last_missing } => write!(
                f,
                "the record is missing (deleted) up to and including seq {last_missing}"
            ),
            BreakReason::BrokenLink => f.write_str(
                "its prev_hash is not the hash of the record before it: that record was rewritten (with its hash recomputed) or this link was changed",
            ),
            BreakReason::TruncatedTail { head_seq } => write!(
                f,
                "records from here to seq {head_seq} were deleted from the end of the log"
            ),
            BreakReason::HeadMismatch => f.write_str(
                "the last record differs from the one the store appended (rewritten with a recomputed hash)",
            ),
            BreakReason::AppendedOutsideStore { head_seq } => write!(
                f,
                "records after seq {head_seq} were inserted outside lockstep"
            ),
        }
    }
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub seq: u64,
    pub reason: BreakReason,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.reason)
    }
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub intact: bool,
    /// Records read.
    pub records: u64,
    /// Sequence number and hash of the last record that verifies: the end of the log when it
    /// is intact (publish them elsewhere to anchor the log), else the record before the break.
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    pub broken: Option<ChainBreak>,
}

/// The last record the store appended, kept beside the log (table `audit_head`), so that
/// deleting records from the end shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

/// Walks records in `seq` order and stops at the first break.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    records: u64,
    last: Option<(u64, String)>,
    broken: Option<ChainBreak>,
    suspect: Option<AuditRecord>,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next record; returns false once the chain is broken (stop feeding it).
    pub fn push(&mut self, record: &AuditRecord) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.records += 1;
        let (expected_seq, expected_prev) = match &self.last {
            None => (1, GENESIS_HASH),
            Some((seq, hash)) => (seq + 1, hash.as_str()),
        };
        let reason = if record.seq != expected_seq {
            // A seq below the expected one cannot come from an ordered scan of a primary key;
            // treat any mismatch as the gap it is.
            Some(BreakReason::Missing {
                last_missing: record.seq.saturating_sub(1).max(expected_seq),
            })
        } else if record.computed_hash() != record.hash {
            self.suspect = Some(record.clone());
            Some(BreakReason::Edited)
        } else if record.prev_hash != expected_prev {
            Some(BreakReason::BrokenLink)
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.broken = Some(ChainBreak {
                    seq: expected_seq,
                    reason,
                });
                false
            }
            None => {
                self.last = Some((record.seq, record.hash.clone()));
                true
            }
        }
    }

    /// The record found edited, if that is how the chain broke: the caller can then look
    /// for the position it came from ([`Self::classify_edit`]).
    pub fn edited_record(&self) -> Option<&AuditRecord> {
        self.suspect.as_ref()
    }

    /// Refines an `Edited` break into `Reordered` when the record's content hashes right at
    /// another position in `1..=max_seq` (the seq is part of the hash, so a record moved to
    /// another position no longer verifies where it is, but still does where it came from).
    pub fn classify_edit(&mut self, max_seq: u64) {
        let (Some(suspect), Some(broken)) = (&self.suspect, &mut self.broken) else {
            return;
        };
        let mut moved = suspect.clone();
        for seq in (1..=max_seq).filter(|s| *s != suspect.seq) {
            moved.seq = seq;
            if moved.computed_hash() == suspect.hash {
                broken.reason = BreakReason::Reordered { original_seq: seq };
                return;
            }
        }
    }

    /// The report, after comparing the end of the chain with the store's head.
    pub fn finish(self, head: Option<&Head>) -> ChainReport {
        let mut broken = self.broken;
        if broken.is_none() {
            let last_seq = self.last.as_ref().map(|(s, _)| *s).unwrap_or(0);
            broken = match head {
                None if last_seq > 0 => Some(ChainBreak {
                    seq: 1,
                    reason: BreakReason::AppendedOutsideStore { head_seq: 0 },
                }),
                None => None,
                Some(head) if head.seq > last_seq => Some(ChainBreak {
                    seq: last_seq + 1,
                    reason: BreakReason::TruncatedTail { head_seq: head.seq },
                }),
                Some(head) if head.seq < last_seq => Some(ChainBreak {
                    seq: head.seq + 1,
                    reason: BreakReason::AppendedOutsideStore { head_seq: head.seq },
                }),
                Some(head) => match &self.last {
                    Some((seq, hash)) if *hash != head.hash => Some(ChainBreak {
                        seq: *seq,
                        reason: BreakReason::HeadMismatch,
                    }),
                    _ => None,
                },
            };
        }
        let (last_seq, last_hash) = match self.last {
            Some((seq, hash)) => (Some(seq), Some(hash)),
            None => (None, None),
        };
        ChainReport {
            intact: broken.is_none(),
            records: self.records,
            last_seq,
            last_hash,
            broken,
        }
    }
}

/// Builds the next record after `head` (None: the first record); details are scrubbed and
/// canonicalised here, so nothing else can store them differently.
pub fn next_record(
    head: Option<&Head>,
    ts: String,
    actor: &str,
    action: &str,
    subject: &str,
    details: Value,
) -> AuditRecord {
    let (seq, prev_hash) = match head {
        None => (1, GENESIS_HASH.to_string()),
        Some(head) => (head.seq + 1, head.hash.clone()),
    };
    let details = canonical_json(&scrub_details(details));
    let hash = record_hash(seq, &ts, actor, action, subject, &details, &prev_hash);
    AuditRecord {
        seq,
        ts,
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        details,
        prev_hash,
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for i in 1..=n {
            let head = records.last().map(|r| Head {
                seq: r.seq,
                hash: r.hash.clone(),
            });
            records.push(next_record(
                head.as_ref(),
                format!("2026-11-22T05:00:0{i}.000Z"),
                "dba@bank",
                "ddl.applied",
                "public.orders",
                json!({"n": i, "statement": "ALTER TABLE orders ADD COLUMN note text"}),
            ));
        }
        records
    }

    fn head_of(records: &[AuditRecord]) -> Option<Head> {
        records.last().map(|r| Head {
            seq: r.seq,
            hash: r.hash.clone(),
        })
    }

    fn verify(records: &[AuditRecord], head: Option<&Head>) -> ChainReport {
        let mut verifier = ChainVerifier::new();
        for r in records {
            if !verifier.push(r) {
                break;
            }
        }
        verifier.classify_edit(records.iter().map(|r| r.seq).max().unwrap_or(0));
        verifier.finish(head)
    }

    #[test]
    fn the_hash_covers_every_field_unambiguously() {
        let base = record_hash(1, "t", "a", "b", "s", "{}", GENESIS_HASH);
        assert_eq!(base.len(), 64);
        let variants = [
            record_hash(2, "t", "a", "b", "s", "{}", GENESIS_HASH),
            record_hash(1, "u", "a", "b", "s", "{}", GENESIS_HASH),
            record_hash(1, "t", "x", "b", "s", "{}", GENESIS_HASH),
            record_hash(1, "t", "a", "x", "s", "{}", GENESIS_HASH),
            record_hash(1, "t", "a", "b", "x", "{}", GENESIS_HASH),
            record_hash(1, "t", "a", "b", "s", "[]", GENESIS_HASH),
            record_hash(1, "t", "a", "b", "s", "{}", &"1".repeat(64)),
            // Moving a character from one field to the next must change the hash.
            record_hash(1, "t", "ab", "", "s", "{}", GENESIS_HASH),
            record_hash(1, "t", "a", "bs", "", "{}", GENESIS_HASH),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(*v, base, "variant {i}");
        }
        // A known vector, so that an external verifier can check its implementation.
        assert_eq!(
            record_hash(
                1,
                "2026-11-22T05:00:00.000Z",
                "alice",
                "test",
                "x",
                "{}",
                GENESIS_HASH
            ),
            record_hash(
                1,
                "2026-11-22T05:00:00.000Z",
                "alice",
                "test",
                "x",
                "{}",
                GENESIS_HASH
            )
        );
        let mut manual = Sha256::new();
        manual.update(
            b"lockstep-audit-v1\n1:1\n24:2026-11-22T05:00:00.000Z\n5:alice\n4:test\n1:x\n2:{}\n64:0000000000000000000000000000000000000000000000000000000000000000\n",
        );
        assert_eq!(
            record_hash(
                1,
                "2026-11-22T05:00:00.000Z",
                "alice",
                "test",
                "x",
                "{}",
                GENESIS_HASH
            ),
            hex::encode(manual.finalize())
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let cases = [
            (
                json!({"b": 1, "a": [true, null, "x"]}),
                r#"{"a":[true,null,"x"],"b":1}"#,
            ),
            (json!({"é": 1, "z": 2, "A": 3}), r#"{"A":3,"z":2,"é":1}"#),
            (json!("line\n\"quoted\""), r#""line\n\"quoted\"""#),
            (json!(1.5), "1.5"),
            (json!(-7), "-7"),
            (
                json!({"nested": {"y": {}, "x": []}}),
                r#"{"nested":{"x":[],"y":{}}}"#,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(canonical_json(&value), expected);
            // Stable through a parse: verification re-reads stored text.
            let reparsed: Value = serde_json::from_str(expected).expect("valid json");
            assert_eq!(canonical_json(&reparsed), expected);
        }
    }

    #[test]
    fn secrets_are_scrubbed_before_hashing() {
        let details = json!({
            "connector": "orders-cdc",
            "config": {
                "database.password": "hunter2",
                "database.user": "replicator",
                "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required password=\"x\";",
                "ssl.keystore.password": "${file:/run/secrets/ks:password}",
                "api_token": 12345,
                "credentials": {"user": "a", "pass": "b"},
                "empty.password": "",
                "message.key.columns": "public.orders:id",
            },
            "error": "FATAL connecting to postgres://replicator:s3cr3t@db:5432/orders",
            "steps": [{"token": "abc"}, "jdbc:postgresql://db/x?user=a&password=zz9"],
        });
        let scrubbed = scrub_details(details);
        let text = canonical_json(&scrubbed);
        for secret in ["hunter2", "s3cr3t", "12345", "zz9", "\"abc\"", "\"b\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let config = &scrubbed["config"];
        assert_eq!(config["database.password"], "****");
        assert_eq!(config["sasl.jaas.config"], "****");
        assert_eq!(config["api_token"], "****");
        assert_eq!(config["credentials"], "****");
        assert_eq!(config["empty.password"], "");
        assert_eq!(config["database.user"], "replicator");
        assert_eq!(config["message.key.columns"], "public.orders:id");
        assert_eq!(
            config["ssl.keystore.password"], "${file:/run/secrets/ks:password}",
            "a reference is not a secret"
        );
        assert_eq!(scrubbed["steps"][0]["token"], "****");
        assert!(
            scrubbed["error"]
                .as_str()
                .is_some_and(|e| e.contains("replicator:****@db")),
            "{text}"
        );
        // next_record hashes what it stores: the scrubbed text.
        let record = next_record(None, "t".into(), "a", "b", "s", json!({"password": "pw"}));
        assert_eq!(record.details, r#"{"password":"****"}"#);
        assert_eq!(record.computed_hash(), record.hash);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(5);
        let report = verify(&records, head_of(&records).as_ref());
        assert!(report.intact, "{report:?}");
        assert_eq!(report.records, 5);
        assert_eq!(report.last_seq, Some(5));
        assert_eq!(report.last_hash.as_deref(), Some(records[4].hash.as_str()));
        assert_eq!(records[0].prev_hash, GENESIS_HASH);
        for pair in records.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
        let empty = verify(&[], None);
        assert!(empty.intact && empty.records == 0 && empty.last_seq.is_none());
    }

    #[test]
    fn every_kind_of_tampering_is_found_at_its_seq() {
        type Tamper = fn(&mut Vec<AuditRecord>, &mut Option<Head>);
        let cases: Vec<(&str, Tamper, ChainBreak)> = vec![
            (
                "edit a detail",
                |r, _| r[2].details = r[2].details.replace("ADD COLUMN", "DROP COLUMN"),
                ChainBreak {
                    seq: 3,
                    reason: BreakReason::Edited,
                },
            ),
            (
                "edit the actor",
                |r, _| r[0].actor = "mallory".into(),
                ChainBreak {
                    seq: 1,
                    reason: BreakReason::Edited,
                },
            ),
            (
                "edit the time",
                |r, _| r[4].ts = "2020-01-01T00:00:00.000Z".into(),
                ChainBreak {
                    seq: 5,
                    reason: BreakReason::Edited,
                },
            ),
            (
                "edit and recompute the hash",
                |r, _| {
                    r[1].subject = "public.other".into();
                    r[1].hash = r[1].computed_hash();
                },
                ChainBreak {
                    seq: 3,
                    reason: BreakReason::BrokenLink,
                },
            ),
            (
                "delete a record in the middle",
                |r, _| {
                    r.remove(2);
                },
                ChainBreak {
                    seq: 3,
                    reason: BreakReason::Missing { last_missing: 3 },
                },
            ),
            (
                "delete two records in the middle",
                |r, _| {
                    r.drain(1..3);
                },
                ChainBreak {
                    seq: 2,
                    reason: BreakReason::Missing { last_missing: 3 },
                },
            ),
            (
                "delete the first record",
                |r, _| {
                    r.remove(0);
                },
                ChainBreak {
                    seq: 1,
                    reason: BreakReason::Missing { last_missing: 1 },
                },
            ),
            (
                "delete the last record",
                |r, _| {
                    r.pop();
                },
                ChainBreak {
                    seq: 5,
                    reason: BreakReason::TruncatedTail { head_seq: 5 },
                },
            ),
            (
                "edit the last record and recompute its hash",
                |r, _| {
                    r[4].action = "ddl.cancelled".into();
                    r[4].hash = r[4].computed_hash();
                },
                ChainBreak {
                    seq: 5,
                    reason: BreakReason::HeadMismatch,
                },
            ),
            (
                "swap two records (seq kept by position)",
                |r, _| {
                    let (a, b) = (r[1].clone(), r[2].clone());
                    r[1] = AuditRecord { seq: 2, ..b };
                    r[2] = AuditRecord { seq: 3, ..a };
                },
                ChainBreak {
                    seq: 2,
                    reason: BreakReason::Reordered { original_seq: 3 },
                },
            ),
            (
                "swap the first two records",
                |r, _| {
                    let (a, b) = (r[0].clone(), r[1].clone());
                    r[0] = AuditRecord { seq: 1, ..b };
                    r[1] = AuditRecord { seq: 2, ..a };
                },
                ChainBreak {
                    seq: 1,
                    reason: BreakReason::Reordered { original_seq: 2 },
                },
            ),
            (
                "append a forged record",
                |r, _| {
                    let head = head_of(r);
                    let forged = next_record(head.as_ref(), "t".into(), "x", "y", "z", json!({}));
                    r.push(forged);
                },
                ChainBreak {
                    seq: 6,
                    reason: BreakReason::AppendedOutsideStore { head_seq: 5 },
                },
            ),
        ];
        for (name, tamper, expected) in cases {
            let mut records = chain(5);
            let mut head = head_of(&records);
            tamper(&mut records, &mut head);
            let report = verify(&records, head.as_ref());
            assert!(!report.intact, "{name}: not detected");
            assert_eq!(report.broken, Some(expected), "{name}");
        }
    }

    #[test]
    fn break_reasons_read_as_sentences() {
        let text = ChainBreak {
            seq: 7,
            reason: BreakReason::Missing { last_missing: 9 },
        }
        .to_string();
        assert_eq!(
            text,
            "seq 7: the record is missing (deleted) up to and including seq 9"
        );
        let json = serde_json::to_value(BreakReason::Reordered { original_seq: 3 }).expect("json");
        assert_eq!(json, json!({"kind": "reordered", "original_seq": 3}));
    }
}
