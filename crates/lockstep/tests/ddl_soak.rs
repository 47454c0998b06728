//! Issue 4's soak: a writer keeps >= 200 transactions/s of inserts, updates and deletes on three
//! tables flowing through a Debezium PostgreSQL connector and `lockstep sink run` (block policy)
//! while `lockstep ddl apply` runs every class of change issue 4 lists (CREATE, RENAME and
//! DROP TABLE included: connector include list, publication, the sink's topics; a volatile
//! default, re-snapshotted through Debezium's signal table; replica identity, unique and
//! foreign-key constraints, views, indexes, comments), a
//! rapid DDL / DML / DDL run on one table (the case AWS DMS documents as a source of data loss),
//! RENAME COLUMN at the boundary, and, each in a quiesce session (writes to the table wait
//! while the sink drains it), a type conversion, a TRUNCATE the connector skips and a
//! primary-key change (the connector stopped across it, the table re-snapshotted). Classes refused today
//! are refused cleanly (non-zero exit, a reason, the source schema unchanged). At the end every
//! table converges, `lockstep verify` finds no difference (the `counter` column every update
//! increments included: nothing lost, nothing applied twice) and the connector never FAILED.
//! Per DDL the test prints how long the sink held a table and the peak end-to-end lag.
//!
//! The baseline runs the same sequence straight on the source, same writer and sink, without
//! lockstep, and asserts what breaks: the problem lockstep exists to solve.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_e2e::{table_text, unique_name, with_cleanup, PgConnector, Stack};
use support::lockstep_verify;

/// Every table: `counter` is incremented by every update, `old` is dropped, `note` renamed,
/// `a_ref` gets a foreign key; the writer only writes id, counter, qty and amount.
const DDL: &str = "(id bigint primary key, counter bigint not null default 0, qty integer not null, amount numeric(12,2), note text, old text, a_ref bigint)";
const ROWS: i64 = 300;
/// Concurrent writer connections; each paces itself to `PER_WORKER_TPS`.
const WORKERS: i64 = 4;
const PER_WORKER_TPS: u64 = 75;

/// The three tables of one test.
#[derive(Clone, Debug)]
struct Tables {
    base: String,
    a: String,
    b: String,
    c: String,
    /// Replicated but not written to: the sequence drops it.
    d: String,
}

impl Tables {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            a: format!("{base}_a"),
            b: format!("{base}_b"),
            c: format!("{base}_c"),
            d: format!("{base}_d"),
        }
    }
    /// The tables written to, and compared at the end.
    fn all(&self) -> [&str; 3] {
        [&self.a, &self.b, &self.c]
    }
    /// Created by the sequence.
    fn fresh(&self) -> String {
        format!("{}_new", self.base)
    }
    /// The name the sequence gives `d` before dropping it.
    fn d_renamed(&self) -> String {
        format!("{}_ren", self.d)
    }
    /// Every table in the connector and the pipeline.
    fn replicated(&self) -> [&str; 4] {
        [&self.a, &self.b, &self.c, &self.d]
    }
}

/// Source and target tables with `ROWS` rows on the source, and a Debezium connector on them.
async fn tables_and_connector(stack: &Stack, name: &str, t: &Tables) -> PgConnector {
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    for table in t.replicated() {
        source
            .batch_execute(&format!(
                "create table {table} {DDL};
                 insert into {table} (id, qty, amount, note, old)
                   select g, g % 10, g * 1.5, 'n' || g, 'o' || g from generate_series(1, {ROWS}) g;"
            ))
            .await
            .expect("source table");
        target
            .batch_execute(&format!("create table {table} {DDL}"))
            .await
            .expect("target table");
    }
    // Debezium's signal table, for the incremental snapshots the plans send.
    source
        .batch_execute(&format!(
            "create table {}_sig (id varchar(64) primary key, type varchar(32) not null, data varchar(2048))",
            t.base
        ))
        .await
        .expect("signal table");
    stack
        .start_pg_connector(
            name,
            &t.replicated(),
            &[("signal.data.collection", &format!("public.{}_sig", t.base))],
        )
        .await
        .expect("connector")
}

/// The pipeline file: three topics, block policy, the sink's API for the executor.
fn pipeline_yaml(stack: &Stack, name: &str, t: &Tables, port: u16) -> String {
    let topics: Vec<String> = t
        .replicated()
        .iter()
        .map(|table| format!("{name}.public.{table}"))
        .collect();
    support::pipeline_yaml(
        stack,
        name,
        &topics,
        "schema_drift: block\n",
        &format!(
            "  publication: {base}_pub\n  signal_table: public.{base}_sig\n  sink_api: http://127.0.0.1:{port}\n",
            base = t.base
        ),
    )
}

/// What the monitor saw of the sink and the connector.
#[derive(Debug, Default)]
struct Observed {
    /// Milliseconds during which the sink reported at least one blocked (held) table.
    held_ms: u64,
    /// Tables the sink reported blocked at some point, with the reason.
    blocked_seen: BTreeMap<String, String>,
    /// The last sink status seen.
    last_status: Option<serde_json::Value>,
    /// Connector and task states seen.
    connector_states: BTreeSet<String>,
    /// The first FAILED status seen, if any.
    failed: Option<String>,
    polls: u64,
}

/// Polls the sink's API every 100 ms and the connector's status every 500 ms until stopped.
fn start_monitor(
    stack: &Stack,
    name: &str,
    port: u16,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Observed>>, tokio::task::JoinHandle<()>) {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let (obs, name, stack) = (observed.clone(), name.to_string(), stack.clone());
    let handle = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let connect = stack.connect_client().expect("connect client");
        let url = format!("http://127.0.0.1:{port}/api/v1/sinks/{name}");
        let mut last = Instant::now();
        let mut tick = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let status: Option<serde_json::Value> = match http.get(&url).send().await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            let now = Instant::now();
            {
                let mut o = obs.lock().unwrap();
                o.polls += 1;
                if let Some(s) = status {
                    let blocked = s["blocked"].as_array().cloned().unwrap_or_default();
                    if !blocked.is_empty() {
                        o.held_ms += now.duration_since(last).as_millis() as u64;
                    }
                    for b in blocked {
                        let table = b["table"].as_str().unwrap_or("?").to_string();
                        let reason = b["reason"].as_str().unwrap_or("?").to_string();
                        o.blocked_seen.insert(table, reason);
                    }
                    o.last_status = Some(s);
                }
            }
            last = now;
            if tick % 5 == 0 {
                if let Ok(st) = connect.connector_status(&name).await {
                    let mut o = obs.lock().unwrap();
                    o.connector_states
                        .insert(format!("connector {:?}", st.connector.state));
                    for task in &st.tasks {
                        o.connector_states.insert(format!("task {:?}", task.state));
                    }
                    let failed = st.connector.state == lockstep_connect::ConnectorState::Failed
                        || st.failed_tasks().count() > 0;
                    if failed && o.failed.is_none() {
                        o.failed = Some(format!("{st:?}"));
                    }
                }
            }
            tick += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (observed, handle)
}

/// The end-to-end lag histogram of `/metrics`, cumulative count per bucket bound (summed over
/// the tables).
async fn lag_buckets(port: u16) -> BTreeMap<String, u64> {
    let text = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("lockstep_sink_end_to_end_lag_seconds_bucket{") else {
            continue;
        };
        let Some(le) = rest.split("le=\"").nth(1).and_then(|s| s.split('"').next()) else {
            continue;
        };
        let Some(count) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *out.entry(le.to_string()).or_insert(0) += count as u64;
    }
    out
}

/// The bucket range of the largest lag observed between two scrapes: `(above, at most)`
/// seconds, or None when no change was applied in between.
fn peak_lag(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Option<(f64, f64)> {
    let bound = |le: &str| {
        if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse::<f64>().unwrap_or(f64::INFINITY)
        }
    };
    let mut deltas: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| (bound(le), n - before.get(le).copied().unwrap_or(0).min(*n)))
        .collect();
    deltas.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = deltas.last().map(|d| d.1).unwrap_or(0);
    if total == 0 {
        return None;
    }
    let mut lower = 0.0;
    for (le, n) in deltas {
        if n == total {
            return Some((lower, le));
        }
        lower = le;
    }
    None
}

/// The writer: `WORKERS` connections, each a paced loop of single-statement transactions
/// (insert, update that increments `counter`, delete) over the three tables.
struct Writer {
    stop: Arc<AtomicBool>,
    started: Instant,
    workers: Vec<tokio::task::JoinHandle<(u64, u64)>>,
}

impl Writer {
    fn start(stack: &Stack, t: &Tables) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (1..=WORKERS)
            .map(|w| {
                let (stop, stack) = (stop.clone(), stack.clone());
                let tables: Vec<String> = t.all().iter().map(|s| s.to_string()).collect();
                tokio::spawn(async move {
                    let db = stack.pg_source().await.expect("writer connection");
                    let base = w * 1_000_000;
                    let mut pace =
                        tokio::time::interval(Duration::from_micros(1_000_000 / PER_WORKER_TPS));
                    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let (mut i, mut txs, mut retries) = (0i64, 0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        pace.tick().await;
                        i += 1;
                        // i % 9: 0-2 insert, 3-5 update, 6-8 delete, on table i % 3; a delete
                        // removes the row inserted 5 rounds (51 iterations) before on its table.
                        let table = &tables[(i % 3) as usize];
                        let sql = match (i % 9) / 3 {
                            0 => format!(
                                "insert into {table} (id, qty, amount) values ({id}, {q}, {id}.25)",
                                id = base + i,
                                q = i % 7
                            ),
                            1 => {
                                let id = if (i / 9) % 2 == 0 {
                                    (i * 37) % ROWS + 1
                                } else {
                                    base + i - 21
                                };
                                format!(
                                    "update {table} set counter = counter + 1, qty = qty + 1, amount = amount + 1 where id = {id}"
                                )
                            }
                            _ => format!("delete from {table} where id = {}", base + i - 51),
                        };
                        let mut attempts = 0;
                        loop {
                            match db.batch_execute(&sql).await {
                                Ok(()) => break,
                                // An insert whose commit outcome was unknown and did commit.
                                Err(e)
                                    if e.code()
                                        == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                                {
                                    break
                                }
                                Err(e) => {
                                    attempts += 1;
                                    retries += 1;
                                    assert!(attempts < 500, "writer gives up on {sql}: {e}");
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                            }
                        }
                        txs += 1;
                    }
                    (txs, retries)
                })
            })
            .collect();
        Self {
            stop,
            started: Instant::now(),
            workers,
        }
    }

    /// Stops the writer: (transactions, retries, transactions per second).
    async fn stop(self) -> (u64, u64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let (mut txs, mut retries) = (0, 0);
        for w in self.workers {
            let (t, r) = w.await.expect("writer task");
            txs += t;
            retries += r;
        }
        (txs, retries, txs as f64 / elapsed)
    }
}

/// `lockstep ddl apply` of one statement against the pipeline of `rig`. Fails the test when
/// the sink process exits meanwhile (the apply would wait for it in vain) or after 150 s.
///
/// A guardrail that could not read the Connect cluster in time (the shared worker busy with
/// another test's rebalance) refuses the DDL cleanly; that refusal is retried, as its message
/// says, at most 3 times.
async fn ddl_apply(rig: &Rig, connect_url: &str, sql: &str) -> Output {
    let mut attempt = 1;
    loop {
        let out = lockstep_ddl(
            rig,
            connect_url,
            &["apply", "--pipeline", "p.yaml", "--sql", sql],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let unanswered = out.status.code() != Some(0)
            && stderr.contains("refused (guardrails); nothing was applied")
            && stderr.contains("no answer within");
        if !unanswered || attempt == 3 {
            return out;
        }
        println!("retrying (attempt {attempt} got no answer from Connect): {sql}\n{stderr}");
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `lockstep ddl ARGS` against the pipeline of `rig`, watched like [`ddl_apply`].
async fn lockstep_ddl(rig: &Rig, connect_url: &str, args: &[&str]) -> Output {
    let (dir, connect_url) = (rig.dir.clone(), connect_url.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let sql = args.join(" ");
    let sink = rig.sink.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = support::lockstep_command(&dir);
        cmd.arg("ddl")
            .args(&args)
            .args(["--actor", "soak", "--connect-url", &connect_url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("running lockstep ddl apply");
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            if child.try_wait().expect("ddl apply status").is_some() {
                return Ok(child.wait_with_output().expect("ddl apply output"));
            }
            let sink_gone = sink.lock().unwrap().try_wait().expect("sink status");
            if sink_gone.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("ddl apply output");
                return Err(format!(
                    "{}: {sql}\n{}",
                    match sink_gone {
                        Some(status) => format!("the sink exited ({status}) during ddl apply"),
                        None => "ddl apply did not finish within 150 s".to_string(),
                    },
                    report(&out)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    out.unwrap_or_else(|e| panic!("{e}\nsink log:\n{}", rig.sink_log()))
}

fn report(o: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The source (or target) schema of the test's tables: columns with type, nullability and
/// default, constraints, indexes, views and comments, one line each.
async fn schema_of(db: &tokio_postgres::Client, base: &str) -> Vec<String> {
    let like = format!("{base}%");
    let mut out = Vec::new();
    for (what, sql) in [
        (
            "column",
            "select table_name::text || '.' || column_name::text || ' ' || data_type::text || coalesce('(' || character_maximum_length || ')', '')
                    || ' null=' || is_nullable || ' default=' || coalesce(column_default, '-')
             from information_schema.columns where table_schema = 'public' and table_name like $1
             order by table_name, ordinal_position",
        ),
        (
            "constraint",
            "select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' validated=' || convalidated
             from pg_constraint where conrelid::regclass::text like $1 order by 1",
        ),
        (
            "index",
            "select indexdef from pg_indexes where schemaname = 'public' and tablename like $1 order by 1",
        ),
        (
            "relation",
            "select relname::text || ' ' || relkind::text || ' ' || coalesce(obj_description(oid, 'pg_class'), '-')
             from pg_class where relnamespace = 'public'::regnamespace and relname like $1
               and relkind in ('r', 'v') order by 1",
        ),
    ] {
        for row in db.query(sql, &[&like]).await.expect("catalog query") {
            out.push(format!("{what} {}", row.get::<_, String>(0)));
        }
    }
    out
}

/// One step of the sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A DDL statement the executor runs today.
    Ddl,
    /// A boundary plan: the connector paused across the source DDL, the sink's table held at it.
    Boundary,
    /// Plain DML on the source (the middle of the rapid run).
    Dml,
    /// A DDL whose plan ends in a whole-table row comparison (`verify_rows`).
    RowsChecked,
}

/// The sequence: (class, kind, SQL).
fn sequence(t: &Tables) -> Vec<(&'static str, Kind, String)> {
    let (a, b, c) = (&t.a, &t.b, &t.c);
    use Kind::*;
    vec![
        ("ADD COLUMN nullable", Ddl, format!("ALTER TABLE {a} ADD COLUMN c_null text")),
        ("ADD COLUMN constant default", Ddl, format!("ALTER TABLE {a} ADD COLUMN c_def integer NOT NULL DEFAULT 7")),
        ("CREATE INDEX", Ddl, format!("CREATE INDEX {a}_qty ON {a} (qty)")),
        ("CREATE INDEX CONCURRENTLY", Ddl, format!("CREATE INDEX CONCURRENTLY {b}_qty ON {b} (qty)")),
        ("CREATE VIEW", Ddl, format!("CREATE VIEW {a}_v AS SELECT id, counter FROM {a}")),
        ("ALTER TYPE widening", Ddl, format!("ALTER TABLE {a} ALTER COLUMN qty TYPE bigint")),
        ("SET DEFAULT", Ddl, format!("ALTER TABLE {b} ALTER COLUMN qty SET DEFAULT 1")),
        ("DROP DEFAULT", Ddl, format!("ALTER TABLE {b} ALTER COLUMN qty DROP DEFAULT")),
        ("DROP NOT NULL", Ddl, format!("ALTER TABLE {b} ALTER COLUMN qty DROP NOT NULL")),
        ("CHECK NOT VALID", Ddl, format!("ALTER TABLE {c} ADD CONSTRAINT {c}_ck CHECK (qty >= 0) NOT VALID")),
        ("VALIDATE CHECK", Ddl, format!("ALTER TABLE {c} VALIDATE CONSTRAINT {c}_ck")),
        ("FK NOT VALID", Ddl, format!("ALTER TABLE {c} ADD CONSTRAINT {c}_fk FOREIGN KEY (a_ref) REFERENCES {a} (id) NOT VALID")),
        ("VALIDATE FK", Ddl, format!("ALTER TABLE {c} VALIDATE CONSTRAINT {c}_fk")),
        ("COMMENT ON TABLE", Ddl, format!("COMMENT ON TABLE {a} IS 'soak'")),
        ("COMMENT ON COLUMN", Ddl, format!("COMMENT ON COLUMN {b}.qty IS 'soak'")),
        ("DROP INDEX", Ddl, format!("DROP INDEX {a}_qty")),
        ("DROP VIEW", Ddl, format!("DROP VIEW {a}_v")),
        ("UNIQUE constraint", Ddl, format!("ALTER TABLE {a} ADD CONSTRAINT {a}_uq UNIQUE (id, counter)")),
        ("REPLICA IDENTITY USING INDEX", Ddl, format!("ALTER TABLE {a} REPLICA IDENTITY USING INDEX {a}_uq")),
        ("REPLICA IDENTITY FULL", Ddl, format!("ALTER TABLE {c} REPLICA IDENTITY FULL")),
        ("DROP COLUMN", Ddl, format!("ALTER TABLE {a} DROP COLUMN old")),
        ("SET NOT NULL", Ddl, format!("ALTER TABLE {c} ALTER COLUMN amount SET NOT NULL")),
        // The rapid run on one table: DDL, DML using the new column, DDL.
        ("rapid: ADD COLUMN", Ddl, format!("ALTER TABLE {c} ADD COLUMN rapid text")),
        ("rapid: DML", Dml, format!("UPDATE {c} SET rapid = 'r' || id, counter = counter + 1 WHERE id <= 50")),
        ("rapid: ADD COLUMN default", Ddl, format!("ALTER TABLE {c} ADD COLUMN rapid2 integer DEFAULT 3")),
        ("CREATE TABLE", Ddl, format!("CREATE TABLE {} (id bigint primary key, v text)", t.fresh())),
        // The created table is still empty: the source takes it.
        ("ADD COLUMN NOT NULL without default", Ddl, format!("ALTER TABLE {} ADD COLUMN must integer NOT NULL", t.fresh())),
        ("ADD COLUMN volatile default (re-snapshot)", Ddl, format!("ALTER TABLE {a} ADD COLUMN c_ts timestamptz DEFAULT now()")),
        ("RENAME TABLE", Ddl, format!("ALTER TABLE {} RENAME TO {}", t.d, t.d_renamed())),
        ("DROP TABLE", Ddl, format!("DROP TABLE {}", t.d_renamed())),
        ("RENAME COLUMN (boundary)", Boundary, format!("ALTER TABLE {a} RENAME COLUMN note TO remark")),
        // A conversion rewrites the stored values without change events and leaves no mark
        // in the events: quiesced, drained, held, converted on both sides, re-snapshotted.
        ("ALTER TYPE conversion (quiesced)", Ddl, format!("ALTER TABLE {a} ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint")),
        // The connector skips truncates (Debezium's default skipped.operations=t): quiesced,
        // drained, held in the sink, truncated on both sides.
        ("TRUNCATE (quiesced)", Ddl, format!("TRUNCATE {c}")),
        // Every update then changes the key: Debezium emits a delete and a create for each.
        ("replace PRIMARY KEY (key change)", Ddl, format!("ALTER TABLE {b} DROP CONSTRAINT {b}_pkey, ADD PRIMARY KEY (id, counter)")),
        // Last: its verify_rows step compares the whole table and may not see a still moment
        // under constant writes; then it stops (past its point of no return) for a resume.
        ("ALTER TYPE narrowing", RowsChecked, format!("ALTER TABLE {b} ALTER COLUMN note TYPE varchar(40)")),
    ]
}

/// Classes refused today: (class, SQL).
fn refused(t: &Tables) -> Vec<(&'static str, String)> {
    let a = &t.a;
    vec![
        // The sink applies changes by key: a table left without one cannot be replicated.
        (
            "DROP PRIMARY KEY (no key left)",
            format!("ALTER TABLE {a} DROP CONSTRAINT {a}_pkey"),
        ),
    ]
}

/// The running pieces of one test: sink process, monitor, writer.
struct Rig {
    dir: PathBuf,
    port: u16,
    sink: Arc<Mutex<std::process::Child>>,
}

impl Rig {
    fn sink_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sink.log")).unwrap_or_default()
    }

    fn assert_sink_alive(&self, before: &str) {
        let status = self.sink.lock().unwrap().try_wait().expect("sink status");
        assert!(
            status.is_none(),
            "the sink exited ({status:?}) before {before}; sink log:\n{}",
            self.sink_log()
        );
    }
}

fn start_sink(stack: &Stack, name: &str, t: &Tables, dir: &Path) -> Rig {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.join("p.yaml"), pipeline_yaml(stack, name, t, port)).unwrap();
    let log = std::fs::File::create(dir.join("sink.log")).unwrap();
    let sink = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["sink", "run", "-p", "p.yaml", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("LOCKSTEP_CONFIG")
        .env("LOCKSTEP_LOG", "info")
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("lockstep sink run");
    Rig {
        dir: dir.to_path_buf(),
        port,
        sink: Arc::new(Mutex::new(sink)),
    }
}

/// Waits until the snapshot of every table reached the target.
async fn wait_snapshot(stack: &Stack, t: &Tables, rig: &Rig) {
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    let deadline = Instant::now() + Duration::from_secs(120);
    for table in t.replicated() {
        loop {
            let n: i64 = target
                .query_one(&format!("select count(*) from {table}"), &[])
                .await
                .unwrap()
                .get(0);
            if n >= ROWS {
                break;
            }
            assert!(
                rig.sink.lock().unwrap().try_wait().unwrap().is_none(),
                "the sink exited: {}",
                rig.sink_log()
            );
            assert!(
                Instant::now() < deadline,
                "the snapshot of {table} did not reach the target"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn cleanup(
    stack: Stack,
    connector: PgConnector,
    t: Tables,
    sink: Arc<Mutex<std::process::Child>>,
) {
    {
        let mut child = sink.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
    connector.cleanup().await;
    for db in [stack.pg_source_db.clone(), stack.pg_target_db.clone()] {
        if let Ok(c) = stack.pg(&db).await {
            let _ = c
                .batch_execute(&format!(
                    "drop view if exists {a}_v; drop table if exists {d}, {d}_ren, {c}, {b}_renamed, {b}, {a}, {base}_new, {base}_sig cascade",
                    a = t.a,
                    b = t.b,
                    c = t.c,
                    d = t.d,
                    base = t.base
                ))
                .await;
        }
    }
}

async fn table_exists(db: &tokio_postgres::Client, table: &str) -> bool {
    db.query_one(
        "select to_regclass($1) is not null",
        &[&format!("public.{table}")],
    )
    .await
    .expect("table lookup")
    .get(0)
}

/// The sum of `counter` over the three tables.
async fn counter_sum(db: &tokio_postgres::Client, t: &Tables) -> i64 {
    let sql = format!(
        "select ((select coalesce(sum(counter), 0) from {}) + (select coalesce(sum(counter), 0) from {})
                 + (select coalesce(sum(counter), 0) from {}))::bigint",
        t.a, t.b, t.c
    );
    db.query_one(&sql, &[]).await.expect("counter sum").get(0)
}

/// Per step: (class, exit code, seconds, sink held ms, peak lag range).
type Timing = (String, Option<i32>, f64, u64, Option<(f64, f64)>);

fn print_timings(title: &str, timings: &[Timing]) {
    println!(
        "\n{title}\n {:<40} {:>5} {:>8} {:>9} {:>16}",
        "CLASS", "EXIT", "TOOK s", "HELD ms", "PEAK LAG s"
    );
    for (class, code, took, held, lag) in timings {
        let lag = match lag {
            Some((lo, hi)) => format!("{lo:.3} .. {hi:.3}"),
            None => "-".into(),
        };
        let code = code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        println!(" {class:<40} {code:>5} {took:>8.2} {held:>9} {lag:>16}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_ddl_sequence_under_200_tps_replicates_and_verifies() {
    let stack = Stack::get();
    let name = unique_name("soak").replace('_', "-");
    let t = Tables::new(&name.replace('-', "_"));
    let connector = tables_and_connector(&stack, &name, &t).await;
    let dir = tempfile::tempdir().expect("tmp");
    let rig = start_sink(&stack, &name, &t, dir.path());
    let (body_stack, body_t, sink) = (stack.clone(), t.clone(), rig.sink.clone());
    let body = async move {
        let (stack, t) = (body_stack, body_t);
        wait_snapshot(&stack, &t, &rig).await;
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        let stop_monitor = Arc::new(AtomicBool::new(false));
        let (observed, monitor) = start_monitor(&stack, &name, rig.port, stop_monitor.clone());
        let writer = Writer::start(&stack, &t);
        tokio::time::sleep(Duration::from_secs(2)).await;

        let mut timings: Vec<Timing> = Vec::new();
        let mut rapid_started = None;
        let mut refused_classes = Vec::new();
        let mut narrowing_to_resume: Option<String> = None;
        // Classes refused today first: clean refusals change nothing.
        for (class, sql) in refused(&t) {
            let before = schema_of(&source, &t.base).await;
            let out = ddl_apply(&rig, &stack.connect_url, &sql).await;
            let text = report(&out);
            println!("refused? {class}: {sql}\n{text}");
            assert_ne!(out.status.code(), Some(0), "{class} ran: {text}");
            assert!(
                text.contains("refused") || text.contains("not enabled") || text.contains("needs"),
                "{class}: no reason printed: {text}"
            );
            assert_eq!(
                schema_of(&source, &t.base).await,
                before,
                "{class}: the refusal changed the source schema"
            );
            let reason = String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.trim_start().starts_with("- ") || l.contains("needs"))
                .unwrap_or("")
                .trim()
                .to_string();
            refused_classes.push((class, reason));
        }

        for (class, kind, sql) in sequence(&t) {
            rig.assert_sink_alive(class);
            if class.starts_with("rapid") && rapid_started.is_none() {
                rapid_started = Some(Instant::now());
            }
            let held_before = observed.lock().unwrap().held_ms;
            let lag_before = lag_buckets(rig.port).await;
            let started = Instant::now();
            let code = match kind {
                Kind::Dml => {
                    source.batch_execute(&sql).await.expect("rapid DML");
                    Some(0)
                }
                Kind::RowsChecked => {
                    let out = ddl_apply(&rig, &stack.connect_url, &sql).await;
                    let text = report(&out);
                    println!("{class}: {sql}\n{text}");
                    if out.status.code() != Some(0) {
                        assert!(
                            text.contains("verify_rows           failed"),
                            "{class} failed elsewhere than at verify_rows: {text}\nsink log:\n{}",
                            rig.sink_log()
                        );
                        narrowing_to_resume = Some(text);
                    }
                    out.status.code()
                }
                Kind::Ddl | Kind::Boundary => {
                    let out = ddl_apply(&rig, &stack.connect_url, &sql).await;
                    let text = report(&out);
                    println!("{class}: {sql}\n{text}");
                    assert_eq!(
                        out.status.code(),
                        Some(0),
                        "{class} failed under the soak: {text}\nsink log:\n{}",
                        rig.sink_log()
                    );
                    out.status.code()
                }
            };
            let took = started.elapsed().as_secs_f64();
            if class == "rapid: ADD COLUMN default" {
                println!(
                    "rapid run (DDL, DML, DDL) on {} took {:.2} s",
                    t.c,
                    rapid_started
                        .map(|s| s.elapsed().as_secs_f64())
                        .unwrap_or(0.0)
                );
            }
            // Let the sink apply what followed the change before measuring its lag; not inside
            // the rapid run, whose steps follow each other at once.
            if !class.starts_with("rapid") || class == "rapid: ADD COLUMN default" {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let held = observed.lock().unwrap().held_ms - held_before;
            let lag = peak_lag(&lag_before, &lag_buckets(rig.port).await);
            timings.push((class.to_string(), code, took, held, lag));
        }
        for table in [t.d.clone(), t.d_renamed()] {
            assert!(
                !table_exists(&target, &table).await && !table_exists(&source, &table).await,
                "RENAME TABLE and DROP TABLE left {table} behind",
            );
        }
        // The created table replicates: rows written now reach the target.
        source
            .batch_execute(&format!(
                "insert into {} select g, 'v' || g, g from generate_series(1, 200) g",
                t.fresh()
            ))
            .await
            .expect("rows into the created table");

        tokio::time::sleep(Duration::from_secs(2)).await;
        let (txs, retries, tps) = writer.stop().await;
        println!("writer: {txs} transactions, {retries} retried, {tps:.0} tx/s");
        // The narrowing that stopped at its row comparison under the writes is resumed now.
        let narrowing = match &narrowing_to_resume {
            None => "completed under the writes".to_string(),
            Some(_) => {
                let out = lockstep_ddl(&rig, &stack.connect_url, &["resume"]).await;
                let text = report(&out);
                println!("ddl resume after the writes stopped:\n{text}");
                assert_eq!(out.status.code(), Some(0), "resume: {text}");
                "stopped at verify_rows under the writes (rows in flight); resumed once they stopped".to_string()
            }
        };

        // Drain: every table converges (source and target rows equal, counters included),
        // the one the sequence created too.
        let deadline = Instant::now() + Duration::from_secs(90);
        let created = t.fresh();
        for table in t.all().into_iter().chain([created.as_str()]) {
            loop {
                let (s, tt) = (
                    table_text(&source, table).await,
                    table_text(&target, table).await,
                );
                if s == tt {
                    println!("{table}: {} rows equal", s.0);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{table} did not converge: source {s:?}, target {tt:?}\nsink log:\n{}",
                    rig.sink_log()
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        stop_monitor.store(true, Ordering::Relaxed);
        monitor.await.expect("monitor");

        let mut verified = Vec::new();
        let created_rows = lockstep_verify(&stack, &created).await;
        assert_eq!(
            created_rows.status.code(),
            Some(0),
            "verify {created}: {}",
            report(&created_rows)
        );
        for table in t.all() {
            let out = lockstep_verify(&stack, table).await;
            let text = report(&out);
            assert_eq!(out.status.code(), Some(0), "verify {table}: {text}");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("verify {table} output: {e}: {text}"));
            let columns = v["compared_columns"].to_string();
            // After the key change `counter` is part of the key, compared as such.
            assert!(
                columns.contains("\"counter\"")
                    || v["key_columns"].to_string().contains("\"counter\""),
                "verify {table} skipped counter: {text}"
            );
            verified.push(format!(
                "{table}: {} rows, columns {columns}",
                v["rows_compared"]
            ));
        }
        let (sc, tc) = (
            counter_sum(&source, &t).await,
            counter_sum(&target, &t).await,
        );
        assert_eq!(sc, tc, "sum of counters: source {sc}, target {tc}");
        let target_a: Vec<String> = schema_of(&target, &t.a)
            .await
            .into_iter()
            .filter(|l| l.starts_with("column"))
            .collect();
        let source_a: Vec<String> = schema_of(&source, &t.a)
            .await
            .into_iter()
            .filter(|l| l.starts_with("column"))
            .collect();
        assert_eq!(target_a, source_a, "columns of {}", t.a);

        let observed = observed.lock().unwrap();
        print_timings("per DDL (sink held = time the sink API reported a blocked table; peak lag = end-to-end lag histogram bucket)", &timings);
        println!("\nrefused today (clean: non-zero exit, reason, source schema unchanged):");
        for (class, reason) in &refused_classes {
            println!(" - {class}: {reason}");
        }
        println!("\nverify: clean\n {}", verified.join("\n "));
        println!("sum of counters: {sc} on both sides");
        println!("ALTER TYPE narrowing: {narrowing}");
        println!(
            "writer: {txs} transactions at {tps:.0} tx/s; monitor: {} polls, tables blocked at some point {:?}, connector states seen {:?}",
            observed.polls, observed.blocked_seen, observed.connector_states
        );
        assert!(
            observed.failed.is_none(),
            "the connector went FAILED: {:?}",
            observed.failed
        );
        assert!(tps >= 200.0, "the writer reached only {tps:.0} tx/s");
    };
    with_cleanup(body, cleanup(stack, connector, t, sink)).await;
}

/// The baseline: the same sequence straight on the source, same writer and sink (block policy),
/// no lockstep. The changes that reach change events before the target has them stop their
/// tables in the sink: rows are held, the target schema diverges and verify finds differences.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn baseline_same_sequence_without_lockstep_blocks_and_drifts() {
    let stack = Stack::get();
    let name = unique_name("soakbase").replace('_', "-");
    let t = Tables::new(&name.replace('-', "_"));
    let connector = tables_and_connector(&stack, &name, &t).await;
    let dir = tempfile::tempdir().expect("tmp");
    let rig = start_sink(&stack, &name, &t, dir.path());
    let (body_stack, body_t, sink) = (stack.clone(), t.clone(), rig.sink.clone());
    let body = async move {
        let (stack, t) = (body_stack, body_t);
        wait_snapshot(&stack, &t, &rig).await;
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        let stop_monitor = Arc::new(AtomicBool::new(false));
        let (observed, monitor) = start_monitor(&stack, &name, rig.port, stop_monitor.clone());
        let writer = Writer::start(&stack, &t);
        tokio::time::sleep(Duration::from_secs(2)).await;

        let mut timings: Vec<Timing> = Vec::new();
        for (class, _, sql) in sequence(&t) {
            let held_before = observed.lock().unwrap().held_ms;
            let lag_before = lag_buckets(rig.port).await;
            let started = Instant::now();
            let code = match source.batch_execute(&sql).await {
                Ok(()) => Some(0),
                Err(e) => {
                    println!("{class}: {sql} failed on the source: {e}");
                    Some(1)
                }
            };
            let took = started.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let held = observed.lock().unwrap().held_ms - held_before;
            let lag = peak_lag(&lag_before, &lag_buckets(rig.port).await);
            timings.push((class.to_string(), code, took, held, lag));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (txs, retries, tps) = writer.stop().await;
        println!("writer: {txs} transactions, {retries} retried, {tps:.0} tx/s");
        // Give the sink every chance to catch up.
        tokio::time::sleep(Duration::from_secs(10)).await;
        // The key change straight on the source re-keys the table's change events while the
        // target keeps the old key: the sink (errors.tolerance none) stops at the first one,
        // and with it every table's replication.
        let exited = rig.sink.lock().unwrap().try_wait().expect("sink status");
        let sink_log = rig.sink_log();
        assert!(
            exited.is_some(),
            "the sink went on after {} was re-keyed on the source alone",
            t.b
        );
        assert!(
            sink_log.contains("change events are keyed by") && sink_log.contains(&t.b),
            "the sink stopped, but not at the re-keyed table:\n{sink_log}"
        );
        println!(
            "the sink stopped at {}'s re-keyed change events ({exited:?})",
            t.b
        );
        stop_monitor.store(true, Ordering::Relaxed);
        monitor.await.expect("monitor");

        let mut drift = Vec::new();
        for table in t.all() {
            let (s, tt) = (
                table_text(&source, table).await,
                table_text(&target, table).await,
            );
            let out = lockstep_verify(&stack, table).await;
            let columns = |schema: Vec<String>| -> Vec<String> {
                schema
                    .into_iter()
                    .filter(|l| l.starts_with("column"))
                    .collect()
            };
            let (sc, tc) = (
                columns(schema_of(&source, table).await),
                columns(schema_of(&target, table).await),
            );
            drift.push((table.to_string(), s != tt, out.status.code(), sc != tc));
            println!(
                "{table}: rows source {} target {}, equal {}; verify exit {:?}: {}\n  source columns {sc:?}\n  target columns {tc:?}",
                s.0,
                tt.0,
                s == tt,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let (blocked_seen, connector_states, last_status) = {
            let o = observed.lock().unwrap();
            (
                o.blocked_seen.clone(),
                o.connector_states.clone(),
                o.last_status.clone(),
            )
        };
        print_timings("baseline per DDL (straight on the source)", &timings);
        println!(
            "blocked tables: {:?}\nconnector states seen {:?}\nlast sink status: {}",
            blocked_seen,
            connector_states,
            last_status.clone().unwrap_or_default()
        );

        // CREATE TABLE straight on the source: not in the connector, never on the target.
        assert!(
            table_exists(&source, &t.fresh()).await && !table_exists(&target, &t.fresh()).await,
            "without lockstep the target should not have {}",
            t.fresh()
        );
        // RENAME TABLE, then DROP TABLE of the renamed one, straight on the source: the target
        // keeps the table under its old name (silent drift).
        assert!(
            !table_exists(&source, &t.d).await && table_exists(&target, &t.d).await,
            "without lockstep the target should still have {}",
            t.d
        );

        // What breaks: the tables that got a column ahead of the target are held by the sink
        // (their rows stop), verify reports them, and the target schema diverges.
        for table in [&t.a, &t.c] {
            let reason = blocked_seen.get(table.as_str());
            assert!(reason.is_some(), "{table} was never held: {blocked_seen:?}");
            let (_, rows_differ, verify_code, schema_differs) =
                drift.iter().find(|d| &d.0 == table).unwrap();
            assert!(
                *rows_differ,
                "{table}: rows converged although the sink held the table"
            );
            assert_ne!(*verify_code, Some(0), "{table}: verify found no difference");
            assert!(
                *schema_differs,
                "{table}: the target schema did not diverge"
            );
        }
        // A table no change event stopped still drifts in its schema: the widened, narrowed and
        // nullable columns stay as they were on the target.
        let (_, _, _, b_schema_differs) = drift.iter().find(|d| d.0 == t.b).unwrap();
        assert!(
            *b_schema_differs,
            "{}: the target schema did not diverge",
            t.b
        );
        let target_a: Vec<String> = schema_of(&target, &t.a).await;
        assert!(
            target_a
                .iter()
                .any(|l| l.contains(&format!("{}.old ", t.a))),
            "the source dropped `old`, the target keeps it: {target_a:?}"
        );
        assert!(
            !target_a
                .iter()
                .any(|l| l.contains(&format!("{}.c_null ", t.a))),
            "the target never got c_null: {target_a:?}"
        );
        let blocked_now = last_status.as_ref().map(|s| s["blocked"].clone());
        assert!(
            blocked_now
                .as_ref()
                .is_some_and(|b| b.as_array().is_some_and(|a| !a.is_empty())),
            "at the end the sink still holds tables: {blocked_now:?}"
        );
    };
    with_cleanup(body, cleanup(stack, connector, t, sink)).await;
}
