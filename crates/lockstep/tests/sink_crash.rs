//! Exactly-once under crashes: `lockstep sink run` is killed with SIGKILL at random points while a
//! stream of inserts and updates flows, and restarted each time. At the end the target equals the source,
//! and a counter column that every update increments proves that no change was applied twice
//! (a replayed update would leave the target's counter ahead of the source's).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockstep_connect::{ConnectorConfig, CreateConnectorRequest, ExpectedState};
use lockstep_e2e::{unique_name, Stack};

// ROWS inserts + UPDATE_ROUNDS x ROWS updates = 200,000 changes.
const ROWS: i64 = 20_000;
const UPDATE_ROUNDS: i64 = 9;
const CHUNK: i64 = 2_000;

fn start_sink(pipeline: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["sink", "run", "--pipeline"])
        .arg(pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lockstep sink run")
}

#[tokio::test]
async fn sink_killed_at_random_points_applies_every_change_exactly_once() {
    let stack = Stack::get();
    let name = unique_name("sink-crash").replace('_', "-");
    let table = name.replace('-', "_");
    let source = stack.pg_source().await.expect("source");
    let target = stack.pg(&stack.pg_target_db).await.expect("target");
    let ddl = "(id bigint primary key, counter bigint not null, note text, amount numeric(14,2))";
    source
        .batch_execute(&format!("create table {table} {ddl}"))
        .await
        .expect("source table");
    target
        .batch_execute(&format!("create table {table} {ddl}"))
        .await
        .expect("target table");

    let mut config = ConnectorConfig::new();
    for (k, v) in stack.debezium_pg_config(&name, &[&table]) {
        config.insert(k, v);
    }
    config.insert("topic.creation.default.partitions", "1");
    config.insert("topic.creation.default.replication.factor", "1");
    config.insert("max.batch.size", "4096");
    config.insert("max.queue.size", "16384");
    // The local stack's worker sends one record per produce batch (exact end offsets for other
    // tests); the local tansu broker's fetch stalls after ~44,000 such batches in one partition
    // (every fetch past it returned the partition's first records). Ordinary batching, as in
    // production, for this connector.
    config.insert("producer.override.batch.size", "262144");
    config.insert("producer.override.linger.ms", "20");
    let slot = config.get("slot.name").unwrap_or_default().to_string();
    let publication = config
        .get("publication.name")
        .unwrap_or_default()
        .to_string();
    let client = stack.connect_client().expect("connect client");
    client
        .create_connector(&CreateConnectorRequest {
            name: name.clone(),
            config,
            initial_state: None,
        })
        .await
        .expect("create connector");

    let pipeline = std::env::temp_dir().join(format!("{name}.yaml"));
    std::fs::write(
        &pipeline,
        format!(
            "name: {name}\nkafka:\n  bootstrap_servers: {}\n  topics: [{name}.public.{table}]\ntarget:\n  engine: postgres\n  host: {}\n  port: {}\n  user: {}\n  database: {}\nbatch: {{max_rows: 5000, linger_ms: 100}}\n",
            stack.kafka_bootstrap, stack.pg_host, stack.pg_port, stack.pg_user, stack.pg_target_db
        ),
    )
    .expect("pipeline file");

    let (cleanup_client, cleanup_name) = (client.clone(), name.clone());
    let cleanup_stack = stack.clone();
    let cleanup_pipeline = pipeline.clone();
    let outcome = async move {
        client
            .wait_for_state(&name, &ExpectedState::running(), Duration::from_secs(120))
            .await
            .expect("connector RUNNING");
        // The workload runs in the background while the sink is killed and restarted.
        let writer = {
            let stack = stack.clone();
            let table = table.clone();
            tokio::spawn(async move {
                let source = stack.pg_source().await.expect("writer connection");
                for chunk in 0..(ROWS / CHUNK) {
                    let from = chunk * CHUNK + 1;
                    source
                        .batch_execute(&format!(
                            "insert into {table} select g, 0, 'n' || g, g * 0.5 from generate_series({from}, {}) g",
                            from + CHUNK - 1
                        ))
                        .await
                        .expect("insert");
                }
                for _ in 0..UPDATE_ROUNDS {
                    for chunk in 0..(ROWS / CHUNK) {
                        let from = chunk * CHUNK + 1;
                        source
                            .batch_execute(&format!(
                                "update {table} set counter = counter + 1, amount = amount + 1 where id between {from} and {}",
                                from + CHUNK - 1
                            ))
                            .await
                            .expect("update");
                    }
                }
            })
        };

        let started = Instant::now();
        let mut kills = 0;
        let mut sink = start_sink(&pipeline);
        loop {
            // Kill at a random point between 0.2 s and 2 s into the run: mid-batch, mid-commit,
            // mid-startup, whatever it hits. Short enough that a sink that keeps up with the
            // writer (the stream takes some 15 s) is still killed many times while it runs.
            let wait_ms = 200 + u64::from(rand_u32() % 1_800);
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            let writer_done = writer.is_finished();
            let src = digest(&stack, &stack.pg_source_db, &table).await;
            let tgt = digest(&stack, &stack.pg_target_db, &table).await;
            assert!(
                tgt.1 <= src.1,
                "the target's counters ({}) ran ahead of the source's ({}): a change was applied twice",
                tgt.1,
                src.1
            );
            if writer_done && src == tgt && src.0 == ROWS && src.1 == ROWS * UPDATE_ROUNDS {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "no convergence after {kills} kills: source {src:?}, target {tgt:?}"
            );
            // Keep crashing it while it catches up, not only while the source is written.
            if kills < 5 || (src != tgt && kills < 30) {
                sink.kill().expect("SIGKILL the sink");
                let _ = sink.wait();
                kills += 1;
                sink = start_sink(&pipeline);
            }
        }
        let _ = sink.kill();
        let _ = sink.wait();
        writer.await.expect("writer finished");
        println!(
            "sink SIGKILLed {kills} times during {} changes; target equals source after {:.1} s, counters sum to {}",
            ROWS * (UPDATE_ROUNDS + 1),
            started.elapsed().as_secs_f64(),
            ROWS * UPDATE_ROUNDS
        );
        assert!(kills >= 5, "the test must actually crash the sink");
    };
    let result = tokio::spawn(outcome).await;
    let _ = cleanup_client.delete_connector(&cleanup_name).await;
    let _ = cleanup_stack.drop_pg_slot(&slot, &publication).await;
    let _ = std::fs::remove_file(&cleanup_pipeline);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// Row count, counter sum and a digest of every row, in key order.
async fn digest(stack: &Stack, db: &str, table: &str) -> (i64, i64, String) {
    let client = stack.pg(db).await.expect("connection");
    let row = client
        .query_one(
            &format!(
                "select count(*), coalesce(sum(counter), 0)::bigint, coalesce(md5(string_agg(t::text, ',' order by id)), '') from {table} t"
            ),
            &[],
        )
        .await
        .expect("digest");
    (row.get(0), row.get(1), row.get(2))
}

/// A few random bits without another dependency: the clock's nanoseconds, mixed.
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    nanos.wrapping_mul(2_654_435_761)
}
