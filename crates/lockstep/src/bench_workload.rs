//! The benchmark's workload (pure): a reproducible stream of Debezium PostgreSQL change events
//! (JsonConverter with schemas, exactly as Connect writes them) over a 10-column table of mixed
//! types, and the table's final state, rendered for PostgreSQL's COPY.
//!
//! Mix: 70% inserts, 25% updates and 5% deletes of random live rows.

use std::collections::HashMap;

use base64::Engine as _;

/// Target DDL (PostgreSQL) of the benchmark table.
pub const PG_COLUMNS: &str =
    "(id bigint primary key, name text not null, amount numeric(12,2), qty integer, \
active boolean, born date, updated timestamptz, payload jsonb, uid uuid, score double precision)";

/// Target DDL (MariaDB) of the benchmark table.
pub const MARIADB_COLUMNS: &str =
    "(id bigint primary key, name text not null, amount decimal(12,2), qty int, \
active tinyint(1), born date, updated datetime(6), payload json, uid char(36), score double)";

/// splitmix64: a tiny reproducible generator, so a workload is the same whatever version of a
/// random-number crate is in the tree.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One row's values.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub id: i64,
    pub name: String,
    /// Unscaled amount (cents).
    pub amount_cents: i64,
    pub qty: i32,
    pub active: bool,
    /// Days since 1970-01-01.
    pub born_days: i32,
    /// Microseconds since the epoch, UTC.
    pub updated_micros: i64,
    pub payload: String,
    pub uid: String,
    /// A multiple of 1/8, so its text is exact in every engine.
    pub score: f64,
}

fn row(id: i64, version: u64, rng: &mut SplitMix) -> BenchRow {
    let r = rng.next();
    BenchRow {
        id,
        name: format!("customer {id} v{version} \"quoted\" \\ tab\there"),
        amount_cents: (r % 10_000_000) as i64 - 1_000_000,
        qty: (r >> 24) as i32 % 1000,
        active: r & 1 == 1,
        born_days: -3650 + (r >> 8) as i32 % 30_000,
        updated_micros: 1_700_000_000_000_000 + (r >> 4) as i64 % 100_000_000_000_000,
        payload: format!(r#"{{"id": {id}, "v": {version}, "tags": ["a", "b"]}}"#),
        uid: format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r as u32,
            (r >> 32) as u16,
            (r >> 48) as u16 & 0xfff,
            id as u16 & 0xfff,
            id as u64 & 0xffff_ffff_ffff
        ),
        score: ((r >> 40) % 80_000) as f64 / 8.0,
    }
}

/// Connect's Decimal bytes: the unscaled value, big-endian two's complement, minimal length.
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

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `2024-02-29T21:59:59.123456Z` from microseconds since the epoch.
fn zoned(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn date_text(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

fn row_json(row: &BenchRow) -> String {
    format!(
        r#"{{"id":{},"name":{},"amount":"{}","qty":{},"active":{},"born":{},"updated":"{}","payload":{},"uid":"{}","score":{:?}}}"#,
        row.id,
        json_string(&row.name),
        decimal_base64(row.amount_cents),
        row.qty,
        row.active,
        row.born_days,
        zoned(row.updated_micros),
        json_string(&row.payload),
        row.uid,
        row.score
    )
}

const ROW_FIELDS: &str = r#"[{"type":"int64","optional":false,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},{"type":"int32","optional":true,"field":"qty"},{"type":"boolean","optional":true,"field":"active"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"born"},{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"updated"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"payload"},{"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1,"field":"uid"},{"type":"double","optional":true,"field":"score"}]"#;

fn value_schema(prefix: &str, table: &str) -> String {
    let row = |field: &str| {
        format!(
            r#"{{"type":"struct","fields":{ROW_FIELDS},"optional":true,"name":"{prefix}.public.{table}.Value","field":"{field}"}}"#
        )
    };
    format!(
        r#"{{"type":"struct","fields":[{before},{after},{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"version"}},{{"type":"string","optional":false,"field":"connector"}},{{"type":"string","optional":false,"field":"name"}},{{"type":"int64","optional":false,"field":"ts_ms"}},{{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"}},"default":"false","field":"snapshot"}},{{"type":"string","optional":false,"field":"db"}},{{"type":"string","optional":false,"field":"schema"}},{{"type":"string","optional":false,"field":"table"}},{{"type":"int64","optional":true,"field":"txId"}},{{"type":"int64","optional":true,"field":"lsn"}}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}}],"optional":false,"name":"{prefix}.public.{table}.Envelope","version":2}}"#,
        before = row("before"),
        after = row("after"),
    )
}

/// One Kafka record of the workload.
pub struct Event {
    pub key: String,
    pub value: String,
}

/// The generated stream and the table's end state.
pub struct Workload {
    pub events: Vec<Event>,
    pub final_rows: Vec<BenchRow>,
    pub inserts: usize,
    pub updates: usize,
    pub deletes: usize,
}

/// Generates `n` change events for `prefix.public.table` from `seed`.
pub fn generate(n: usize, prefix: &str, table: &str, seed: u64, now_ms: i64) -> Workload {
    let mut rng = SplitMix(seed);
    let key_schema = format!(
        r#"{{"type":"struct","fields":[{{"type":"int64","optional":false,"field":"id"}}],"optional":false,"name":"{prefix}.public.{table}.Key"}}"#
    );
    let value_schema = value_schema(prefix, table);
    let mut live: Vec<i64> = Vec::new();
    let mut position: HashMap<i64, usize> = HashMap::new();
    let mut state: HashMap<i64, (u64, BenchRow)> = HashMap::new();
    let mut events = Vec::with_capacity(n);
    let (mut inserts, mut updates, mut deletes) = (0, 0, 0);
    let mut next_id = 1i64;
    for seq in 0..n {
        let dice = rng.below(100);
        let source = format!(
            r#"{{"version":"3.6.3.Final","connector":"postgresql","name":"{prefix}","ts_ms":{now_ms},"snapshot":"false","db":"bench","schema":"public","table":"{table}","txId":{tx},"lsn":{lsn}}}"#,
            tx = 1000 + seq,
            lsn = 10_000_000 + seq as i64 * 64
        );
        let (id, op, before, after) = if dice < 70 || live.is_empty() {
            let id = next_id;
            next_id += 1;
            let r = row(id, 0, &mut rng);
            let after = row_json(&r);
            position.insert(id, live.len());
            live.push(id);
            state.insert(id, (0, r));
            inserts += 1;
            (id, "c", "null".to_string(), after)
        } else if dice < 95 {
            let id = live[rng.below(live.len() as u64) as usize];
            let version = state.get(&id).map_or(0, |(v, _)| v + 1);
            let r = row(id, version, &mut rng);
            let after = row_json(&r);
            state.insert(id, (version, r));
            updates += 1;
            (id, "u", "null".to_string(), after)
        } else {
            let index = rng.below(live.len() as u64) as usize;
            let id = live.swap_remove(index);
            position.remove(&id);
            if let Some(moved) = live.get(index) {
                position.insert(*moved, index);
            }
            state.remove(&id);
            deletes += 1;
            let before = format!(
                r#"{{"id":{id},"name":"","amount":null,"qty":null,"active":null,"born":null,"updated":null,"payload":null,"uid":null,"score":null}}"#
            );
            (id, "d", before, "null".to_string())
        };
        events.push(Event {
            key: format!(r#"{{"schema":{key_schema},"payload":{{"id":{id}}}}}"#),
            value: format!(
                r#"{{"schema":{value_schema},"payload":{{"before":{before},"after":{after},"source":{source},"op":"{op}","ts_ms":{now_ms}}}}}"#
            ),
        });
    }
    let mut final_rows: Vec<BenchRow> = state.into_values().map(|(_, r)| r).collect();
    final_rows.sort_by_key(|r| r.id);
    Workload {
        events,
        final_rows,
        inserts,
        updates,
        deletes,
    }
}

fn copy_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn amount_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// The row as a line of PostgreSQL's COPY text format.
pub fn copy_line(row: &BenchRow) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:?}\n",
        row.id,
        copy_escape(&row.name),
        amount_text(row.amount_cents),
        row.qty,
        if row.active { "t" } else { "f" },
        date_text(row.born_days),
        zoned(row.updated_micros)
            .replace('T', " ")
            .replace('Z', "+00"),
        copy_escape(&row.payload),
        row.uid,
        row.score
    )
}

/// The row as a MariaDB `VALUES` tuple (literals escaped for the default sql_mode and for
/// NO_BACKSLASH_ESCAPES alike: no backslash escapes are used, quotes are doubled).
pub fn mariadb_tuple(row: &BenchRow) -> String {
    // The ceiling's connection keeps MariaDB's default sql_mode, where a backslash escapes.
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    let datetime = zoned(row.updated_micros).replace('T', " ").replace('Z', "");
    format!(
        "({},{},{},{},{},{},{},{},{},{:?})",
        row.id,
        quote(&row.name),
        amount_text(row.amount_cents),
        row.qty,
        i32::from(row.active),
        quote(&date_text(row.born_days)),
        quote(&datetime),
        quote(&row.payload),
        quote(&row.uid),
        row.score
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_debezium::{Decoder, JsonConverterDecoder, Record};

    #[test]
    fn the_mix_is_seventy_twenty_five_five_and_reproducible() {
        let w = generate(20_000, "bench", "t", 7, 0);
        assert_eq!(w.events.len(), 20_000);
        let pct = |n: usize| n * 100 / 20_000;
        assert!((68..=72).contains(&pct(w.inserts)), "{}", w.inserts);
        assert!((23..=27).contains(&pct(w.updates)), "{}", w.updates);
        assert!((4..=6).contains(&pct(w.deletes)), "{}", w.deletes);
        assert_eq!(w.final_rows.len(), w.inserts - w.deletes);
        let again = generate(20_000, "bench", "t", 7, 0);
        assert_eq!(again.final_rows, w.final_rows);
    }

    #[test]
    fn events_decode_as_debezium_changes_with_exact_values() {
        let w = generate(50, "bench", "t", 1, 1_700_000_000_000);
        let decoder = JsonConverterDecoder::new();
        for event in &w.events {
            let record = decoder
                .decode(Some(event.key.as_bytes()), Some(event.value.as_bytes()))
                .expect("decodes");
            let Record::Change(change) = record else {
                panic!("not a change: {record:?}");
            };
            if let Some(after) = &change.after {
                let amount = after
                    .value("amount")
                    .expect("amount")
                    .to_pg_text()
                    .expect("text");
                assert!(amount.is_some_and(|a| a.contains('.')));
            }
        }
    }

    #[test]
    fn decimals_and_dates_encode_like_connect() {
        assert_eq!(decimal_base64(0), "AA==");
        assert_eq!(decimal_base64(-1), "/w==");
        assert_eq!(decimal_base64(128), "AIA=");
        assert_eq!(decimal_base64(-129), "/38=");
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(date_text(19_782), "2024-02-29");
        assert_eq!(zoned(1_709_243_999_123_456), "2024-02-29T21:59:59.123456Z");
        assert_eq!(amount_text(-5), "-0.05");
        assert_eq!(amount_text(123_456), "1234.56");
        assert_eq!(copy_escape("a\tb\\c\nd"), "a\\tb\\\\c\\nd");
    }

    #[test]
    fn mariadb_literals_escape_backslashes_and_quotes() {
        let row = BenchRow {
            id: 1,
            name: "it's a \\ b".into(),
            amount_cents: 5,
            qty: 1,
            active: true,
            born_days: 0,
            updated_micros: 0,
            payload: "{}".into(),
            uid: "u".into(),
            score: 0.5,
        };
        let tuple = mariadb_tuple(&row);
        assert!(tuple.contains("'it''s a \\\\ b'"), "{tuple}");
    }
}
