//! `lockstep bench sink`: the sink's throughput against the target's own bulk-load ceiling,
//! measured in one run on the same machine.
//!
//! 1. Generate N Debezium change events (70% inserts, 25% updates, 5% deletes; 10 columns of
//!    mixed types) and produce them to a fresh topic.
//! 2. Per engine: run the sink from the topic into an empty table and time it until the target
//!    has committed every offset.
//! 3. Load the same final rows with the engine's fastest path (PostgreSQL `COPY`, MariaDB
//!    multi-row `INSERT`) into another empty table and time it.
//! 4. Check both tables hold the same rows, and print events/s, rows/s and their ratio.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures_util::SinkExt;
use indicatif::{ProgressBar, ProgressStyle};
use lockstep_sink::{Phases, Sink, SinkPipeline};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::bench_workload::{self, Workload};
use crate::cli::{BenchArgs, BenchCommand, BenchCompression, BenchEngine, GlobalArgs};
use crate::cpu_time;
use crate::exit;
use crate::output::{self, TableView};

#[derive(Serialize)]
struct EngineResult {
    engine: &'static str,
    events: usize,
    sink_seconds: f64,
    sink_events_per_second: f64,
    final_rows: usize,
    ceiling_method: &'static str,
    ceiling_seconds: f64,
    ceiling_rows_per_second: f64,
    /// Sink events/s divided by ceiling rows/s.
    ratio: f64,
    tables_equal: bool,
    /// The sink's time by phase: connecting and seeking, then summed over its batches.
    sink_start_seconds: f64,
    sink_poll_seconds: f64,
    sink_decode_seconds: f64,
    sink_plan_seconds: f64,
    /// Planning done during the previous batch's target transaction.
    sink_plan_ahead_seconds: f64,
    sink_commit_seconds: f64,
    /// CPU time per event of this process while the sink ran (all its threads: fetching,
    /// decoding, planning, the runner).
    sink_cpu_us_per_event: f64,
    /// CPU time per event of the target's backend serving the sink, when it runs on this host
    /// (PostgreSQL only: one process per connection).
    target_cpu_us_per_event: Option<f64>,
    /// The same for the backend of the fastest ceiling load, per row.
    ceiling_cpu_us_per_row: Option<f64>,
}

#[derive(Serialize)]
struct BenchReport {
    events: usize,
    inserts: usize,
    updates: usize,
    deletes: usize,
    produce_seconds: f64,
    /// Kafka `compression.type` of the produced topic.
    compression: &'static str,
    results: Vec<EngineResult>,
}

impl TableView for BenchReport {
    fn headers(&self) -> Vec<&'static str> {
        vec![
            "ENGINE",
            "EVENTS",
            "SINK S",
            "SINK EVENTS/S",
            "FINAL ROWS",
            "CEILING",
            "CEILING S",
            "CEILING ROWS/S",
            "RATIO",
            "EQUAL",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.results
            .iter()
            .map(|r| {
                vec![
                    r.engine.to_string(),
                    r.events.to_string(),
                    format!("{:.1}", r.sink_seconds),
                    format!("{:.0}", r.sink_events_per_second),
                    r.final_rows.to_string(),
                    r.ceiling_method.to_string(),
                    format!("{:.1}", r.ceiling_seconds),
                    format!("{:.0}", r.ceiling_rows_per_second),
                    format!("{:.2}", r.ratio),
                    r.tables_equal.to_string(),
                ]
            })
            .collect()
    }
    fn footer(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "workload: {} events ({} inserts, {} updates, {} deletes), produced in {:.1} s, topic compression {}; ratio = sink events/s / ceiling rows/s",
            self.events, self.inserts, self.updates, self.deletes, self.produce_seconds, self.compression
        )];
        for r in &self.results {
            lines.push(format!(
                "{} sink time by phase: start {:.1} s, waiting for records {:.1} s, plan {:.1} s, target transaction {:.1} s; overlapped: planning ahead {:.1} s, decoding (in the fetch thread) {:.1} s",
                r.engine, r.sink_start_seconds, r.sink_poll_seconds, r.sink_plan_seconds, r.sink_commit_seconds, r.sink_plan_ahead_seconds, r.sink_decode_seconds
            ));
            let target = match (r.target_cpu_us_per_event, r.ceiling_cpu_us_per_row) {
                (Some(sink), Some(ceiling)) => format!(
                    "; the target's backend {sink:.1} µs per event, and {ceiling:.1} µs per row for the {}",
                    r.ceiling_method
                ),
                (Some(sink), None) => format!("; the target's backend {sink:.1} µs per event"),
                // MariaDB serves connections with threads of one process; a PostgreSQL on
                // another host has no /proc here.
                _ => String::new(),
            };
            lines.push(format!(
                "{} CPU: lockstep {:.1} µs per event{target}",
                r.engine, r.sink_cpu_us_per_event
            ));
        }
        lines
    }
}

/// Runs of the ceiling's bulk load; the fastest one counts (a higher ceiling, a lower ratio).
const CEILING_RUNS: usize = 3;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

pub async fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<u8> {
    let (events, engine, batch_rows, seed, compression) = match args.command {
        BenchCommand::Sink {
            events,
            engine,
            batch_rows,
            seed,
            compression,
        } => (events, engine, batch_rows, seed, compression),
        BenchCommand::Watch(watch) => return crate::bench_watch::run(global, watch).await,
    };
    if events == 0 {
        bail!("--events must be at least 1");
    }
    let bootstrap = env_or("LOCKSTEP_KAFKA_BOOTSTRAP", "127.0.0.1:19092");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let prefix = format!("lockstep-bench-{stamp}");
    let table = format!("bench_{stamp}");
    let topic = format!("{prefix}.public.{table}");

    eprintln!("generating {events} change events...");
    let now_ms = i64::try_from(stamp).unwrap_or_default();
    let workload = bench_workload::generate(events, &prefix, &table, seed, now_ms);
    let produce_seconds = produce(&bootstrap, &topic, &workload, compression).await?;

    let measured = async {
        let mut results = Vec::new();
        if matches!(engine, BenchEngine::Postgres | BenchEngine::All) {
            results.push(bench_postgres(&bootstrap, &topic, &table, &workload, batch_rows).await?);
        }
        if matches!(engine, BenchEngine::Mariadb | BenchEngine::All) {
            results.push(bench_mariadb(&bootstrap, &topic, &table, &workload, batch_rows).await?);
        }
        anyhow::Ok(results)
    }
    .await;
    // The topic holds the whole workload (gigabytes without compression); a broker that keeps
    // topics in memory would keep every run's.
    delete_topic(&bootstrap, &topic).await;
    let results = measured?;
    let report = BenchReport {
        events,
        inserts: workload.inserts,
        updates: workload.updates,
        deletes: workload.deletes,
        produce_seconds,
        compression: compression.kafka_name(),
        results,
    };
    print!("{}", output::render(global.output, &report)?);
    if report.results.iter().any(|r| !r.tables_equal) {
        eprintln!("the sink's table differs from the bulk-loaded one: the sink is wrong, whatever its speed");
        return Ok(exit::FAILED);
    }
    Ok(exit::OK)
}

/// Deletes the benchmark's topic; a failure is reported, not fatal (the figures stand).
async fn delete_topic(bootstrap: &str, topic: &str) {
    let admin: Result<AdminClient<DefaultClientContext>, _> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create();
    let deleted = match admin {
        Ok(admin) => admin
            .delete_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .map_err(|e| e.to_string())
            .and_then(|results| {
                results
                    .into_iter()
                    .find_map(Result::err)
                    .map_or(Ok(()), |(name, code)| Err(format!("{name}: {code}")))
            }),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = deleted {
        eprintln!("could not delete the benchmark topic {topic} ({e}); delete it by hand to free the broker's storage");
    }
}

async fn produce(
    bootstrap: &str,
    topic: &str,
    workload: &Workload,
    compression: BenchCompression,
) -> anyhow::Result<f64> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating a Kafka admin client")?;
    // One partition: the table's total order, as Debezium pipelines that mirror TRUNCATE use.
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .with_context(|| {
            format!("creating topic {topic} on {bootstrap}: is the stack up (scripts/stack up)?")
        })?;
    for result in results {
        if let Err((name, code)) = result {
            bail!("creating topic {name}: {code}");
        }
    }
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("compression.type", compression.kafka_name())
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("message.timeout.ms", "300000")
        .create()
        .context("creating the producer")?;
    let progress = bar(workload.events.len() as u64, "produce");
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for event in &workload.events {
        let delivery = producer
            .send_result(
                FutureRecord::to(topic)
                    .key(event.key.as_bytes())
                    .payload(event.value.as_bytes()),
            )
            .map_err(|(e, _)| anyhow::anyhow!("queueing a record: {e}"))?;
        pending.push(delivery);
        if pending.len() == 10_000 {
            for delivery in pending.drain(..) {
                delivery
                    .await
                    .context("the producer was dropped")?
                    .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
                progress.inc(1);
            }
        }
    }
    for delivery in pending {
        delivery
            .await
            .context("the producer was dropped")?
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

/// What one sink run measured.
struct SinkRun {
    seconds: f64,
    start_seconds: f64,
    phases: Phases,
    /// This process's CPU time from the sink's start to its last commit.
    cpu: Duration,
    /// The target backends' CPU time, when they could be read.
    target_cpu: Option<Duration>,
}

/// Runs the sink until the target has committed every event; returns the seconds it took, where
/// they went and the CPU time it used. With `backends`, the PostgreSQL backends the sink opened
/// are looked up through that connection and their CPU time read from `/proc` before the sink
/// closes them.
async fn run_sink(
    pipeline_yaml: &str,
    events: usize,
    backends: Option<&tokio_postgres::Client>,
) -> anyhow::Result<SinkRun> {
    let pipeline = SinkPipeline::parse(Path::new("bench pipeline"), pipeline_yaml)?;
    let opened_after = match backends {
        Some(client) => Some(
            client
                .query_one("select clock_timestamp()::text", &[])
                .await
                .context("reading the target's clock")?
                .get::<_, String>(0),
        ),
        None => None,
    };
    let started = Instant::now();
    let cpu_at_start = cpu_time::process();
    let mut sink = Sink::start(pipeline).await?;
    let mut phases = Phases::default();
    let start_seconds = started.elapsed().as_secs_f64();
    let progress = bar(events as u64, "sink");
    let mut last_commit = started;
    let mut idle = Duration::ZERO;
    loop {
        let done = sink
            .committed()
            .values()
            .map(|next| next.unwrap_or(0))
            .sum::<i64>();
        progress.set_position(done as u64);
        if done >= events as i64 {
            break;
        }
        match sink.run_batch(Duration::from_secs(1)).await? {
            Some(stats) => {
                last_commit = Instant::now();
                idle = Duration::ZERO;
                phases += stats.phases;
            }
            None => {
                idle += Duration::from_secs(1);
                if idle > Duration::from_secs(60) {
                    bail!("the sink received nothing for 60 s at {done} of {events} events");
                }
            }
        }
    }
    let cpu = cpu_time::process().saturating_sub(cpu_at_start);
    progress.finish_and_clear();
    let target_cpu = match (backends, opened_after) {
        (Some(client), Some(after)) => sink_backends_cpu(client, &after).await,
        _ => None,
    };
    drop(sink);
    Ok(SinkRun {
        seconds: (last_commit - started).as_secs_f64(),
        start_seconds,
        phases,
        cpu,
        target_cpu,
    })
}

/// The CPU time of the sink's PostgreSQL backends (opened after `after`), when every one of
/// them runs on this host.
async fn sink_backends_cpu(client: &tokio_postgres::Client, after: &str) -> Option<Duration> {
    let rows = client
        .query(
            "select pid from pg_stat_activity
              where application_name = 'lockstep-sink' and datname = current_database()
                and backend_start >= $1::text::timestamptz",
            &[&after],
        )
        .await
        .ok()?;
    let mut total = Duration::ZERO;
    for row in &rows {
        total += cpu_time::local_process(row.get::<_, i32>(0), "postgres")?;
    }
    (!rows.is_empty()).then_some(total)
}

async fn bench_postgres(
    bootstrap: &str,
    topic: &str,
    table: &str,
    workload: &Workload,
    batch_rows: usize,
) -> anyhow::Result<EngineResult> {
    let (host, port, user, db) = (
        env_or("LOCKSTEP_PG_HOST", "127.0.0.1"),
        env_or("LOCKSTEP_PG_PORT", "15432"),
        env_or("LOCKSTEP_PG_USER", "postgres"),
        env_or("LOCKSTEP_PG_TARGET_DB", "lockstep_target"),
    );
    let (client, connection) = tokio_postgres::connect(
        &format!("host={host} port={port} user={user} dbname={db} application_name=lockstep-bench"),
        tokio_postgres::NoTls,
    )
    .await
    .with_context(|| format!("connecting to PostgreSQL {host}:{port}/{db}"))?;
    tokio::spawn(connection);
    let ceiling_table = format!("{table}_copy");
    client
        .batch_execute(&format!(
            "create table {table} {cols}; create table {ceiling_table} {cols};",
            cols = bench_workload::PG_COLUMNS
        ))
        .await
        .context("creating the benchmark tables")?;

    let yaml = format!(
        "name: {table}\nkafka: {{bootstrap_servers: '{bootstrap}', topics: ['{topic}']}}\ntarget: {{engine: postgres, host: '{host}', port: {port}, user: '{user}', database: '{db}'}}\nbatch: {{max_rows: {batch_rows}, linger_ms: 50}}\n"
    );
    let sink = run_sink(&yaml, workload.events.len(), Some(&client)).await?;

    // The ceiling: COPY of the final rows, in one stream; the best of a few runs, since one
    // run on a shared machine can be slowed by anything.
    let backend: i32 = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .context("reading the benchmark connection's backend")?
        .get(0);
    let mut ceiling_seconds = f64::INFINITY;
    let mut ceiling_cpu = None;
    for _ in 0..CEILING_RUNS {
        client
            .batch_execute(&format!("TRUNCATE {ceiling_table}"))
            .await
            .context("emptying the ceiling table")?;
        let cpu_at_start = cpu_time::local_process(backend, "postgres");
        let started = Instant::now();
        let copy = client
            .copy_in::<_, bytes::Bytes>(&format!("COPY {ceiling_table} FROM STDIN"))
            .await
            .context("starting COPY")?;
        futures_util::pin_mut!(copy);
        let mut buffer = String::with_capacity(1 << 20);
        for row in &workload.final_rows {
            buffer.push_str(&bench_workload::copy_line(row));
            if buffer.len() > 1 << 20 {
                copy.send(bytes::Bytes::from(std::mem::take(&mut buffer)))
                    .await
                    .context("COPY data")?;
            }
        }
        copy.send(bytes::Bytes::from(buffer))
            .await
            .context("COPY data")?;
        copy.as_mut().finish().await.context("finishing COPY")?;
        let seconds = started.elapsed().as_secs_f64();
        if seconds < ceiling_seconds {
            ceiling_seconds = seconds;
            ceiling_cpu = cpu_at_start
                .zip(cpu_time::local_process(backend, "postgres"))
                .map(|(before, after)| after.saturating_sub(before));
        }
    }

    let digest = |t: &str| {
        format!("select count(*), coalesce(md5(string_agg(t::text, E'\\n' order by id)), '') from {t} t")
    };
    let a = client.query_one(&digest(table), &[]).await?;
    let b = client.query_one(&digest(&ceiling_table), &[]).await?;
    let tables_equal =
        a.get::<_, i64>(0) == b.get::<_, i64>(0) && a.get::<_, String>(1) == b.get::<_, String>(1);
    if tables_equal {
        client
            .batch_execute(&format!(
                "drop table {table}; drop table {ceiling_table}; delete from lockstep.sink_offsets where pipeline = '{table}'"
            ))
            .await
            .context("dropping the benchmark tables")?;
    } else {
        eprintln!("PostgreSQL tables {db}.public.{table} (sink) and {ceiling_table} (ceiling) differ; kept for inspection");
    }
    Ok(result(
        "postgres",
        "COPY",
        workload,
        sink,
        (ceiling_seconds, ceiling_cpu),
        tables_equal,
    ))
}

async fn bench_mariadb(
    bootstrap: &str,
    topic: &str,
    table: &str,
    workload: &Workload,
    batch_rows: usize,
) -> anyhow::Result<EngineResult> {
    use mysql_async::prelude::Queryable;
    let (host, port, user, password, db) = (
        env_or("LOCKSTEP_MARIADB_HOST", "127.0.0.1"),
        env_or("LOCKSTEP_MARIADB_PORT", "13306"),
        env_or("LOCKSTEP_MARIADB_USER", "lockstep"),
        env_or("LOCKSTEP_MARIADB_PASSWORD", "lockstep"),
        env_or("LOCKSTEP_MARIADB_DATABASE", "lockstep_target"),
    );
    let port_number: u16 = port
        .parse()
        .with_context(|| format!("LOCKSTEP_MARIADB_PORT={port} is not a port"))?;
    let options = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.clone())
        .tcp_port(port_number)
        .user(Some(user.clone()))
        .pass(Some(password))
        .db_name(Some(db.clone()));
    let mut conn = mysql_async::Conn::new(options)
        .await
        .with_context(|| format!("connecting to MariaDB {host}:{port}/{db}"))?;
    let ceiling_table = format!("{table}_copy");
    conn.query_drop(format!(
        "create table {table} {cols}; create table {ceiling_table} {cols}",
        cols = bench_workload::MARIADB_COLUMNS
    ))
    .await
    .context("creating the benchmark tables")?;
    // The pipeline refers to the password through the environment when it is set there; the
    // local stack's well-known test password is written as is otherwise.
    let password_ref = if std::env::var("LOCKSTEP_MARIADB_PASSWORD").is_ok() {
        "${env:LOCKSTEP_MARIADB_PASSWORD}".to_string()
    } else {
        "lockstep".to_string()
    };
    let yaml = format!(
        "name: {table}\nkafka: {{bootstrap_servers: '{bootstrap}', topics: ['{topic}']}}\ntarget: {{engine: mariadb, host: '{host}', port: {port}, user: '{user}', password: '{password_ref}', database: '{db}'}}\nbatch: {{max_rows: {batch_rows}, linger_ms: 50}}\n"
    );
    let sink = run_sink(&yaml, workload.events.len(), None).await?;

    // The ceiling: multi-row INSERTs of 2,000 rows in one transaction, best of a few runs.
    let mut ceiling_seconds = f64::INFINITY;
    for _ in 0..CEILING_RUNS {
        conn.query_drop(format!("truncate table {ceiling_table}"))
            .await
            .context("emptying the ceiling table")?;
        let started = Instant::now();
        conn.query_drop("START TRANSACTION").await?;
        for chunk in workload.final_rows.chunks(2_000) {
            let values: Vec<String> = chunk.iter().map(bench_workload::mariadb_tuple).collect();
            conn.query_drop(format!(
                "insert into {ceiling_table} values {}",
                values.join(",")
            ))
            .await
            .context("multi-row INSERT")?;
        }
        conn.query_drop("COMMIT").await?;
        ceiling_seconds = ceiling_seconds.min(started.elapsed().as_secs_f64());
    }

    let digest = |t: &str| {
        format!(
            "select count(*), coalesce(md5(group_concat(concat_ws('|', id, name, amount, qty, active, born, updated, payload, uid, score) order by id separator '\\n')), '') from {t}"
        )
    };
    conn.query_drop("set session group_concat_max_len = 4294967295")
        .await?;
    let a: Option<(i64, String)> = conn.query_first(digest(table)).await?;
    let b: Option<(i64, String)> = conn.query_first(digest(&ceiling_table)).await?;
    let tables_equal = a.is_some() && a == b;
    if tables_equal {
        conn.query_drop(format!(
            "drop table {table}; drop table {ceiling_table}; delete from lockstep_sink_offsets where pipeline = '{table}'"
        ))
        .await
        .ok();
    } else {
        eprintln!("MariaDB tables {db}.{table} (sink) and {db}.{ceiling_table} (ceiling) differ; kept for inspection");
    }
    Ok(result(
        "mariadb",
        "multi-row INSERT",
        workload,
        sink,
        (ceiling_seconds, None),
        tables_equal,
    ))
}

fn result(
    engine: &'static str,
    ceiling_method: &'static str,
    workload: &Workload,
    sink: SinkRun,
    (ceiling_seconds, ceiling_cpu): (f64, Option<Duration>),
    tables_equal: bool,
) -> EngineResult {
    let SinkRun {
        seconds: sink_seconds,
        start_seconds,
        phases,
        cpu,
        target_cpu,
    } = sink;
    let events = workload.events.len();
    let final_rows = workload.final_rows.len();
    let micros_each = |cpu: Duration, count: usize| cpu.as_secs_f64() * 1e6 / count.max(1) as f64;
    let sink_rate = events as f64 / sink_seconds.max(1e-9);
    let ceiling_rate = final_rows as f64 / ceiling_seconds.max(1e-9);
    EngineResult {
        engine,
        events,
        sink_seconds,
        sink_events_per_second: sink_rate,
        final_rows,
        ceiling_method,
        ceiling_seconds,
        ceiling_rows_per_second: ceiling_rate,
        ratio: sink_rate / ceiling_rate,
        tables_equal,
        sink_start_seconds: start_seconds,
        sink_poll_seconds: phases.poll.as_secs_f64(),
        sink_decode_seconds: phases.decode.as_secs_f64(),
        sink_plan_seconds: phases.plan.as_secs_f64(),
        sink_plan_ahead_seconds: phases.plan_ahead.as_secs_f64(),
        sink_commit_seconds: phases.commit.as_secs_f64(),
        sink_cpu_us_per_event: micros_each(cpu, events),
        target_cpu_us_per_event: target_cpu.map(|cpu| micros_each(cpu, events)),
        ceiling_cpu_us_per_row: ceiling_cpu.map(|cpu| micros_each(cpu, final_rows)),
    }
}
