//! `lockstep sink run`: the replication sink in the foreground.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lockstep_sink::{Sink, SinkPipeline};

use crate::cli::{SinkArgs, SinkCommand};
use crate::exit;

/// How long one poll waits before the loop checks for a shutdown signal.
const POLL: Duration = Duration::from_secs(1);

pub async fn run(args: SinkArgs) -> anyhow::Result<u8> {
    let SinkCommand::Run {
        pipeline,
        until_idle,
    } = args.command;
    let pipeline = SinkPipeline::load(&pipeline)?;
    let name = pipeline.name.clone();
    let mut sink = Sink::start(pipeline).await?;
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
                tracing::info!(
                    records = stats.records,
                    rows = stats.rows_written,
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
    eprintln!("sink {name}: stopped after {records} records ({rows} row writes)");
    Ok(exit::OK)
}

/// Set when SIGINT or SIGTERM arrives.
fn shutdown_flag() -> anyhow::Result<Arc<AtomicBool>> {
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
