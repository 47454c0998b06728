//! `lockstep sink run | status | drain`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_sink::drain;
use lockstep_sink::target::Target;
use lockstep_sink::{Sink, SinkHandle, SinkMetrics, SinkPipeline};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::cli::{GlobalArgs, SinkArgs, SinkCommand};
use crate::output::{self, TableView};
use crate::sink_service::{self, SinkSet};
use crate::{exit, AlreadyReported};

/// How long one poll waits before the loop checks for a shutdown signal.
const POLL: Duration = Duration::from_secs(1);

pub async fn run(global: &GlobalArgs, args: SinkArgs) -> anyhow::Result<u8> {
    match args.command {
        SinkCommand::Run {
            pipeline,
            until_idle,
            listen,
        } => run_sink(SinkPipeline::load(&pipeline)?, until_idle, listen).await,
        SinkCommand::Status { pipeline } => status(global, SinkPipeline::load(&pipeline)?).await,
        SinkCommand::Drain {
            pipeline,
            to,
            end,
            timeout,
        } => drain_to(global, SinkPipeline::load(&pipeline)?, &to, end, timeout).await,
    }
}

async fn run_sink(
    pipeline: SinkPipeline,
    until_idle: Option<Duration>,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<u8> {
    let name = pipeline.name.clone();
    let mut registry = Registry::default();
    let metrics = SinkMetrics::register(&mut registry);
    let handle = SinkHandle::new(&name, pipeline.target.engine.name());
    let mut sink = Sink::start_with(pipeline, metrics, handle.clone()).await?;
    if let Some(addr) = listen {
        let set = SinkSet {
            sinks: Arc::new(BTreeMap::from([(name.clone(), handle)])),
            registry: Arc::new(Mutex::new(registry)),
        };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr}: {e}; choose another address with --listen")
        })?;
        eprintln!("sink {name}: metrics and control on http://{addr}");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, sink_service::routes(set)).await {
                tracing::error!("the sink's HTTP endpoint stopped: {e}");
            }
        });
    }
    eprintln!(
        "sink {name}: applying from the offsets stored in the target ({} partitions)",
        sink.committed().len()
    );
    let stop = shutdown_flag()?;
    let mut idle_for = Duration::ZERO;
    let (mut records, mut rows) = (0usize, 0usize);
    // The flag is only checked between batches: a batch in flight completes, so the process
    // leaves with its rows and offsets committed together (a kill at any point is safe too,
    // since both are in one transaction, but a clean stop should not waste the work).
    while !stop.load(Ordering::Relaxed) {
        match sink.run_batch(POLL).await? {
            Some(stats) => {
                idle_for = Duration::ZERO;
                records += stats.records;
                rows += stats.rows_written;
                for table in &stats.newly_blocked {
                    eprintln!("sink {name}: table {table} is blocked until the target schema catches up (other tables go on); see GET /api/v1/sinks/{name}");
                }
                tracing::info!(
                    records = stats.records,
                    rows = stats.rows_written,
                    dead_lettered = stats.dead_lettered,
                    lag_ms = stats.lag_ms,
                    "batch applied"
                );
            }
            None => {
                idle_for += POLL;
                if until_idle.is_some_and(|limit| idle_for >= limit) {
                    break;
                }
            }
        }
    }
    sink.stop();
    let blocked = sink.blocked();
    eprintln!("sink {name}: stopped after {records} records ({rows} row writes)");
    for b in &blocked {
        eprintln!("  blocked: {} ({})", b.table, b.reason);
    }
    Ok(exit::OK)
}

/// Set when SIGINT or SIGTERM arrives.
pub fn shutdown_flag() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let flag = Arc::new(AtomicBool::new(false));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let set = flag.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("stopping after the current batch");
        set.store(true, Ordering::Relaxed);
    });
    Ok(flag)
}

#[derive(Serialize)]
struct PartitionView {
    topic: String,
    partition: i32,
    /// Next offset committed in the target (None: nothing applied yet).
    committed: Option<i64>,
    end: i64,
    /// Records not yet applied.
    behind: i64,
}

/// Table rows for partitions: topic, partition, committed, end (or wanted), behind.
fn partition_rows(partitions: &[PartitionView]) -> Vec<Vec<String>> {
    partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.committed.map_or("-".into(), |c| c.to_string()),
                p.end.to_string(),
                p.behind.to_string(),
            ]
        })
        .collect()
}

#[derive(Serialize)]
struct StatusView {
    pipeline: String,
    partitions: Vec<PartitionView>,
}

impl TableView for StatusView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["TOPIC", "PARTITION", "COMMITTED", "END", "BEHIND"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        partition_rows(&self.partitions)
    }
}

async fn status(global: &GlobalArgs, pipeline: SinkPipeline) -> anyhow::Result<u8> {
    let mut target = Target::connect(&pipeline.target).await?;
    let committed = target.load_offsets(&pipeline.name).await?;
    let ends = drain::end_offsets(&pipeline).await?;
    let view = StatusView {
        pipeline: pipeline.name.clone(),
        partitions: ends
            .iter()
            .map(|(key, end)| {
                let committed = committed.get(key).copied();
                PartitionView {
                    topic: key.0.clone(),
                    partition: key.1,
                    committed,
                    end: *end,
                    behind: (end - committed.unwrap_or(0)).max(0),
                }
            })
            .collect(),
    };
    print!("{}", output::render(global.output, &view)?);
    Ok(exit::OK)
}

/// `TOPIC:PARTITION:OFFSET`; the topic may itself contain ':'? Kafka forbids it, so the last two
/// fields are split off the right.
fn parse_position(text: &str) -> anyhow::Result<((String, i32), i64)> {
    let bad = || {
        anyhow::anyhow!(
            "--to {text}: expected TOPIC:PARTITION:OFFSET, e.g. dbserver1.public.orders:0:18240"
        )
    };
    let mut parts = text.rsplitn(3, ':');
    let offset = parts
        .next()
        .and_then(|o| o.parse::<i64>().ok())
        .ok_or_else(bad)?;
    let partition = parts
        .next()
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(bad)?;
    let topic = parts.next().filter(|t| !t.is_empty()).ok_or_else(bad)?;
    if offset < 0 || partition < 0 {
        return Err(bad());
    }
    Ok(((topic.to_string(), partition), offset))
}

#[derive(Serialize)]
struct DrainView {
    pipeline: String,
    drained: bool,
    waited_ms: u128,
    behind: Vec<PartitionView>,
}

impl TableView for DrainView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["TOPIC", "PARTITION", "COMMITTED", "WANTED", "BEHIND"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        partition_rows(&self.behind)
    }
    fn footer(&self) -> Vec<String> {
        vec![if self.drained {
            format!("drained in {} ms", self.waited_ms)
        } else {
            format!(
                "not drained after {} ms: the partitions above are behind (is the sink running? is a table blocked? `lockstep sink status` and GET /api/v1/sinks show why)",
                self.waited_ms
            )
        }]
    }
}

async fn drain_to(
    global: &GlobalArgs,
    pipeline: SinkPipeline,
    to: &[String],
    end: bool,
    timeout: Duration,
) -> anyhow::Result<u8> {
    let wanted: BTreeMap<(String, i32), i64> = if end {
        drain::end_offsets(&pipeline).await?
    } else {
        let mut wanted = BTreeMap::new();
        for text in to {
            let (key, offset) = parse_position(text)?;
            if !pipeline.kafka.topics.contains(&key.0) {
                anyhow::bail!(
                    "--to {text}: topic {} is not one of the pipeline's topics ({})",
                    key.0,
                    pipeline.kafka.topics.join(", ")
                );
            }
            wanted.insert(key, offset);
        }
        wanted
    };
    let mut target = Target::connect(&pipeline.target).await?;
    let outcome = drain::wait_for(&mut target, &pipeline.name, &wanted, timeout).await?;
    let view = match &outcome {
        Ok(waited) => DrainView {
            pipeline: pipeline.name.clone(),
            drained: true,
            waited_ms: waited.as_millis(),
            behind: Vec::new(),
        },
        Err(shortfall) => DrainView {
            pipeline: pipeline.name.clone(),
            drained: false,
            waited_ms: timeout.as_millis(),
            behind: shortfall
                .iter()
                .map(|(key, (want, have))| PartitionView {
                    topic: key.0.clone(),
                    partition: key.1,
                    committed: *have,
                    end: *want,
                    behind: want - have.unwrap_or(0),
                })
                .collect(),
        },
    };
    print!("{}", output::render(global.output, &view)?);
    if outcome.is_ok() {
        Ok(exit::OK)
    } else {
        Err(AlreadyReported(exit::FAILED).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positions_and_names_the_bad_ones() {
        assert_eq!(
            parse_position("db.public.orders:2:18240").expect("valid"),
            (("db.public.orders".to_string(), 2), 18240)
        );
        for bad in ["orders:2", "orders:x:1", ":0:1", "orders:0:-1", "orders"] {
            let err = parse_position(bad).expect_err(bad).to_string();
            assert!(err.contains("TOPIC:PARTITION:OFFSET"), "{bad}: {err}");
        }
    }
}
