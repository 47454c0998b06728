//! Throughput of `JsonConverterDecoder::decode` on the sink benchmark's records (cached-schema
//! path). Ignored by default; prints records/s, asserts only that every record decodes:
//!
//! ```text
//! cargo test --release -p lockstep-debezium --test decode_speed -- --ignored --nocapture
//! ```
//!
//! The records copy the shape of `crates/lockstep/src/bench_workload.rs` (a 10-column table of
//! mixed types written by Debezium PostgreSQL through JsonConverter with schemas) without
//! depending on the lockstep crate.

use std::time::Instant;

use base64::Engine as _;
use lockstep_debezium::{Decoder, JsonConverterDecoder, Record};

/// Distinct records (each value carries the ~4.5 KB schema, so they are not all kept at once)...
const DISTINCT: usize = 20_000;
/// ...each decoded this many times per round: 200,000 decodes a round.
const PASSES: usize = 10;
const ROUNDS: usize = 3;

/// splitmix64, as in the benchmark: reproducible without a random-number crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Connect's Decimal bytes: big-endian two's complement, minimal length, base64.
fn decimal_base64(unscaled: i64) -> String {
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}

fn row_json(id: i64, rng: &mut SplitMix) -> String {
    let r = rng.next();
    let name = format!("customer {id} v0 \"quoted\" \\ tab\there");
    let payload = format!(r#"{{"id": {id}, "v": 0, "tags": ["a", "b"]}}"#);
    let score = ((r >> 40) % 80_000) as f64 / 8.0;
    format!(
        r#"{{"id":{id},"name":{},"amount":"{}","qty":{},"active":{},"born":{},"updated":"2024-02-29T21:59:59.{:06}Z","payload":{},"uid":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","score":{score:?}}}"#,
        json_string(&name),
        decimal_base64((r % 10_000_000) as i64 - 1_000_000),
        (r >> 24) as i32 % 1000,
        r & 1 == 1,
        -3650 + (r >> 8) as i32 % 30_000,
        r % 1_000_000,
        json_string(&payload),
        r as u32,
        (r >> 32) as u16,
        (r >> 48) as u16 & 0xfff,
        id as u16 & 0xfff,
        id as u64 & 0xffff_ffff_ffff,
    )
}

const ROW_FIELDS: &str = r#"[{"type":"int64","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},{"type":"int32","optional":true,"field":"qty"},{"type":"boolean","optional":true,"field":"active"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"born"},{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"updated"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"payload"},{"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1,"field":"uid"},{"type":"double","optional":true,"field":"score"}]"#;

fn value_schema() -> String {
    let row = |field: &str| {
        format!(
            r#"{{"type":"struct","fields":{ROW_FIELDS},"optional":true,"name":"bench.public.t.Value","field":"{field}"}}"#
        )
    };
    format!(
        r#"{{"type":"struct","fields":[{before},{after},{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"version"}},{{"type":"string","optional":false,"field":"connector"}},{{"type":"string","optional":false,"field":"name"}},{{"type":"int64","optional":false,"field":"ts_ms"}},{{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"}},"default":"false","field":"snapshot"}},{{"type":"string","optional":false,"field":"db"}},{{"type":"string","optional":false,"field":"schema"}},{{"type":"string","optional":false,"field":"table"}},{{"type":"int64","optional":true,"field":"txId"}},{{"type":"int64","optional":true,"field":"lsn"}}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}}],"optional":false,"name":"bench.public.t.Envelope","version":2}}"#,
        before = row("before"),
        after = row("after"),
    )
}

/// `(key, value)` of `n` events: 70% inserts, 25% updates, 5% deletes (the benchmark's mix).
fn events(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = SplitMix(7);
    let key_schema = r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"bench.public.t.Key"}"#;
    let value_schema = value_schema();
    let now_ms = 1_733_400_000_000i64;
    (0..n)
        .map(|seq| {
            let id = seq as i64 + 1;
            let dice = rng.next() % 100;
            let source = format!(
                r#"{{"version":"3.6.3.Final","connector":"postgresql","name":"bench","ts_ms":{now_ms},"snapshot":"false","db":"bench","schema":"public","table":"t","txId":{},"lsn":{}}}"#,
                1000 + seq,
                10_000_000 + seq as i64 * 64
            );
            let (op, before, after) = if dice < 95 {
                let op = if dice < 70 { "c" } else { "u" };
                (op, "null".to_string(), row_json(id, &mut rng))
            } else {
                let before = format!(
                    r#"{{"id":{id},"name":"","amount":null,"qty":null,"active":null,"born":null,"updated":null,"payload":null,"uid":null,"score":null}}"#
                );
                ("d", before, "null".to_string())
            };
            let key = format!(r#"{{"schema":{key_schema},"payload":{{"id":{id}}}}}"#);
            let value = format!(
                r#"{{"schema":{value_schema},"payload":{{"before":{before},"after":{after},"source":{source},"op":"{op}","ts_ms":{now_ms}}}}}"#
            );
            (key.into_bytes(), value.into_bytes())
        })
        .collect()
}

#[test]
#[ignore = "a throughput figure, run with --release --ignored --nocapture"]
fn decode_throughput_on_benchmark_records() {
    let events = events(DISTINCT);
    let decoder = JsonConverterDecoder::new();
    // Warm the schema cache (the first record of each half takes the full path).
    for (k, v) in events.iter().take(10) {
        decoder.decode(Some(k), Some(v)).expect("decodes");
    }
    let mut best = f64::MAX;
    for round in 0..ROUNDS {
        let start = Instant::now();
        let mut changes = 0usize;
        for _ in 0..PASSES {
            for (k, v) in &events {
                match decoder.decode(Some(k), Some(v)).expect("decodes") {
                    Record::Change(_) => changes += 1,
                    other => panic!("expected a change, got {other:?}"),
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(changes, events.len() * PASSES);
        best = best.min(secs);
        println!(
            "round {round}: {changes} records in {secs:.3} s = {:.0} records/s ({:.2} us/record)",
            changes as f64 / secs,
            secs * 1e6 / changes as f64
        );
    }
    let decodes = (events.len() * PASSES) as f64;
    println!(
        "decode (cached schema, key + value), best of {ROUNDS}: {:.0} records/s",
        decodes / best
    );
}
