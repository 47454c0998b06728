//! The sink's Prometheus metrics (OpenMetrics, `prometheus-client`).
//!
//! Every series carries the pipeline name, so one process (or one `lockstep serve`) can run
//! several sinks into one registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabels {
    pub pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub pipeline: String,
    pub table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RowLabels {
    pub pipeline: String,
    pub table: String,
    /// `upsert`, `delete` or `truncate`.
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub pipeline: String,
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    pub pipeline: String,
    /// The topic the poison record came from.
    pub topic: String,
    /// `decode`, `plan` or `apply`.
    pub stage: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn lag_histogram() -> Histogram {
    // 5 ms .. ~1.5 h: a DR pipeline's lag from "healthy" to "hours behind".
    Histogram::new(exponential_buckets(0.005, 2.0, 21))
}

fn batch_rows_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 11))
}

fn batch_seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Handles to the sink's metric families; cheap to clone (they share their series).
#[derive(Clone, Debug)]
pub struct SinkMetrics {
    pub records: Family<PipelineLabels, Counter>,
    pub rows_applied: Family<RowLabels, Counter>,
    pub batch_rows: HistogramFamily<PipelineLabels>,
    pub batch_seconds: HistogramFamily<PipelineLabels>,
    pub lag_seconds: HistogramFamily<TableLabels>,
    pub blocked_tables: Family<TableLabels, Gauge>,
    pub dead_letters: Family<DeadLetterLabels, Counter>,
    /// Batches applied a second time, with upserts, because a row they created was already in
    /// the target: the source connector replayed changes.
    pub replayed_batches: Family<PipelineLabels, Counter>,
    pub committed_offset: Family<PartitionLabels, Gauge>,
    pub paused: Family<PipelineLabels, Gauge>,
    /// Changes committed within the pipeline's `slo.lag_seconds` (the SLO's good events; the
    /// lag histogram's `_count` is all events).
    pub changes_within_slo: Family<TableLabels, Counter>,
    /// The pipeline's `slo` section, exported for the rules: lag bound, objective, freshness.
    pub slo_lag_seconds: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    pub slo_objective: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    pub slo_freshness_seconds: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    /// Source commit time of the newest change or heartbeat applied (Unix seconds).
    pub source_timestamp: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
}

impl SinkMetrics {
    /// Creates the families and registers them (names prefixed `lockstep_sink_`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        let sub = registry.sub_registry_with_prefix("lockstep_sink");
        sub.register(
            "records",
            "Kafka records consumed and handled (applied, skipped as heartbeats or tombstones, or dead-lettered)",
            metrics.records.clone(),
        );
        sub.register(
            "rows_applied",
            "Row writes committed in the target after coalescing, per table and op",
            metrics.rows_applied.clone(),
        );
        sub.register(
            "batch_rows",
            "Kafka records per applied batch",
            metrics.batch_rows.clone(),
        );
        sub.register(
            "batch_duration_seconds",
            "Time to plan and commit one batch in the target",
            metrics.batch_seconds.clone(),
        );
        sub.register(
            "end_to_end_lag_seconds",
            "Target commit time minus the source commit time (source.ts_ms) of each applied change",
            metrics.lag_seconds.clone(),
        );
        sub.register(
            "blocked_tables",
            "1 while a table is held by the block drift policy or an operator hold",
            metrics.blocked_tables.clone(),
        );
        sub.register(
            "dead_letters",
            "Poison records sent to the dead-letter topic",
            metrics.dead_letters.clone(),
        );
        sub.register(
            "replayed_batches",
            "Batches applied again with upserts because a row they created was already in the target (the source connector replayed changes it had sent)",
            metrics.replayed_batches.clone(),
        );
        sub.register(
            "committed_offset",
            "Next Kafka offset committed in the target, per partition",
            metrics.committed_offset.clone(),
        );
        sub.register(
            "paused",
            "1 while the sink is paused by an operator",
            metrics.paused.clone(),
        );
        sub.register(
            "changes_within_slo",
            "Changes committed within the pipeline's slo.lag_seconds of their source commit",
            metrics.changes_within_slo.clone(),
        );
        sub.register(
            "slo_lag_seconds",
            "The pipeline's lag objective bound (slo.lag_seconds)",
            metrics.slo_lag_seconds.clone(),
        );
        sub.register(
            "slo_objective",
            "The fraction of changes that must meet slo.lag_seconds (slo.objective)",
            metrics.slo_objective.clone(),
        );
        sub.register(
            "slo_freshness_seconds",
            "How old the newest applied change or heartbeat may be at the source (slo.freshness_seconds)",
            metrics.slo_freshness_seconds.clone(),
        );
        sub.register(
            "source_timestamp_seconds",
            "Source commit time of the newest change or heartbeat the sink applied",
            metrics.source_timestamp.clone(),
        );
        metrics
    }

    /// Families not registered anywhere (a sink run without a metrics endpoint, or tests).
    pub fn unregistered() -> Self {
        Self {
            records: Family::default(),
            rows_applied: Family::default(),
            batch_rows: Family::new_with_constructor(batch_rows_histogram),
            batch_seconds: Family::new_with_constructor(batch_seconds_histogram),
            lag_seconds: Family::new_with_constructor(lag_histogram),
            blocked_tables: Family::default(),
            dead_letters: Family::default(),
            replayed_batches: Family::default(),
            committed_offset: Family::default(),
            paused: Family::default(),
            changes_within_slo: Family::default(),
            slo_lag_seconds: Family::default(),
            slo_objective: Family::default(),
            slo_freshness_seconds: Family::default(),
            source_timestamp: Family::default(),
        }
    }
}

impl Default for SinkMetrics {
    fn default() -> Self {
        Self::unregistered()
    }
}
