//! Source positions and "the sink has applied everything before this position".
//!
//! A mark is a non-transactional logical decoding message (`pg_logical_emit_message(false,
//! 'lockstep', …)`): its LSN orders it after every change committed before it. Waiting for
//! the sink to pass it is three observations, each from the system that owns it:
//! 1. every source connector's committed source offset (Connect's offsets API, Debezium's
//!    `lsn`) has reached the mark: Connect commits a source offset only after the producer
//!    acknowledged the records before it, so every change before the mark is in Kafka;
//! 2. the end offsets of the tables' topics, read after that;
//! 3. the sink's committed offsets in the target (`lockstep_sink::drain`) reaching them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lockstep_connect::ConnectClient;
use lockstep_sink::pipeline::SinkPipeline;
use lockstep_sink::target::Target;
use lockstep_sink::PartitionKey;
use serde_json::Value;
use tokio_postgres::Client;

use crate::error::ExecError;
use crate::sink_api::SinkApi;
use crate::source::source_err;

/// Parse PostgreSQL's `X/Y` LSN text (pure).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some((hi << 32) | lo)
}

/// The LSN a Debezium PostgreSQL source offset has reached (pure): `lsn`, else `lsn_proc`.
pub fn debezium_lsn(offset: &serde_json::Map<String, Value>) -> Option<u64> {
    ["lsn", "lsn_proc"]
        .iter()
        .filter_map(|k| offset.get(*k))
        .find_map(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
}

/// Emit a mark and return its LSN text.
pub async fn emit_mark(client: &Client, content: &str) -> Result<String, ExecError> {
    let row = client
        .query_one(
            "SELECT pg_logical_emit_message(false, 'lockstep', $1)::text",
            &[&content],
        )
        .await
        .map_err(|e| source_err("emitting a position mark", &e))?;
    Ok(row.get(0))
}

fn timed_out(what: String) -> ExecError {
    ExecError::Timeout { what }
}

/// Wait until the sink has applied every change to `topics` before the mark. With `held`
/// (the sink's API and, per topic, its target table), a topic whose table the sink holds
/// (its `block` policy stops at the first change it cannot apply: the first one after a
/// boundary DDL) counts as done: everything before that change is applied.
#[allow(clippy::too_many_arguments)]
pub async fn wait_sink_applied(
    connect: &ConnectClient,
    connectors: &[String],
    sink: &SinkPipeline,
    topics: &[String],
    mark_lsn: u64,
    mark_text: &str,
    timeout: Duration,
    held: Option<(&SinkApi, &[(String, String)])>,
) -> Result<Value, ExecError> {
    let started = Instant::now();
    let left = |started: Instant| timeout.saturating_sub(started.elapsed());
    for c in connectors {
        loop {
            let offsets = connect
                .get_offsets(c)
                .await
                .map_err(|e| ExecError::Connect {
                    what: "Kafka Connect",
                    target: format!("connector {c}"),
                    reason: format!("reading its source offsets: {e}"),
                })?;
            let reached = offsets
                .offsets
                .iter()
                .filter_map(|o| o.offset.as_ref().and_then(debezium_lsn))
                .max();
            if reached.is_some_and(|l| l >= mark_lsn) {
                break;
            }
            if left(started).is_zero() {
                return Err(timed_out(format!(
                    "connector {c} to commit a source offset at or past the mark {mark_text} (it is at {}): is the connector running, and does the source have a heartbeat?",
                    reached.map(|l| format!("{}/{:X}", l >> 32, l & 0xFFFF_FFFF)).unwrap_or_else(|| "no offset".into())
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let connector_ms = started.elapsed().as_millis();
    let ends = lockstep_sink::drain::end_offsets(sink)
        .await
        .map_err(|e| ExecError::Sql {
            side: "broker",
            what: "reading end offsets".into(),
            reason: e.to_string(),
        })?;
    let wanted: BTreeMap<PartitionKey, i64> = ends
        .into_iter()
        .filter(|((topic, _), _)| topics.contains(topic))
        .collect();
    let mut target = Target::connect(&sink.target)
        .await
        .map_err(|e| ExecError::Connect {
            what: "target",
            target: format!(
                "{} {}:{}",
                sink.target.engine.name(),
                sink.target.host,
                sink.target.port
            ),
            reason: e.to_string(),
        })?;
    let read_err = |e: lockstep_sink::ApplyError| ExecError::Sql {
        side: "target",
        what: "reading the sink's offsets".into(),
        reason: e.to_string(),
    };
    loop {
        let committed = target.load_offsets(&sink.name).await.map_err(read_err)?;
        let mut short = lockstep_sink::drain::shortfall(&wanted, &committed);
        let mut held_tables = Vec::new();
        if let (false, Some((api, tables))) = (short.is_empty(), held) {
            let blocked = api.blocked().await?;
            short.retain(|(topic, _), _| {
                let table = tables.iter().find(|(t, _)| t == topic).map(|(_, n)| n);
                match table {
                    Some(n) if blocked.contains(n) => {
                        held_tables.push(n.clone());
                        false
                    }
                    _ => true,
                }
            });
        }
        if short.is_empty() {
            held_tables.sort();
            held_tables.dedup();
            return Ok(serde_json::json!({
                "mark_lsn": mark_text,
                "connector_ms": connector_ms,
                "total_ms": started.elapsed().as_millis(),
                "held_at_boundary": held_tables,
                "positions": wanted.iter().map(|((t, p), o)| serde_json::json!({"topic": t, "partition": p, "offset": o})).collect::<Vec<_>>(),
            }));
        }
        if left(started).is_zero() {
            return Err(timed_out(format!(
                "the sink {} to apply everything before the mark {mark_text}; behind: {}. Is the sink running (lockstep sink run) and is the table not held?",
                sink.name,
                short
                    .iter()
                    .map(|((t, p), (want, have))| format!("{t}/{p} at {} of {want}", have.map(|h| h.to_string()).unwrap_or_else(|| "nothing".into())))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_and_debezium_offsets() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(parse_lsn("1"), None);
        assert_eq!(parse_lsn("1FFFFFFFF/0"), None);
        let m = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            debezium_lsn(&m(serde_json::json!({"lsn": 42, "txId": 7}))),
            Some(42)
        );
        assert_eq!(
            debezium_lsn(&m(serde_json::json!({"lsn_proc": 9}))),
            Some(9)
        );
        assert_eq!(debezium_lsn(&m(serde_json::json!({"ts_usec": 1}))), None);
    }
}
