//! Command-line grammar. Verbs follow kubectl's shape (`lockstep connect pause NAME`), every
//! listing takes `--output table|json|yaml`, and `--help` on each level explains what it does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::OutputFormat;

const ROOT_AFTER_HELP: &str = "\
Exit codes:
  0   success
  1   the operation failed, or the input (a config, a connector) is invalid
  2   changes pending (plan commands, like terraform plan -detailed-exitcode)
  64  command-line usage error

Configuration:
  lockstep.yaml (or --config / LOCKSTEP_CONFIG) names Kafka Connect clusters:
    clusters:
      prod:
        urls: [https://connect-1:8083, https://connect-2:8083]
        username: lockstep
        password: ${env:CONNECT_PASSWORD}     # or ${file:/run/secrets/connect}
        tls: {ca_cert: /etc/ssl/connect-ca.pem}
    default_cluster: prod
  --connect-url / LOCKSTEP_CONNECT_URL overrides the file for one call.

Logs go to stderr: -v for more, or LOCKSTEP_LOG=debug. Secrets are never logged.";

#[derive(Debug, Parser)]
#[command(
    name = "lockstep",
    version,
    about = "Day-2 operations for Debezium / Kafka Connect CDC pipelines",
    long_about = "lockstep makes day-2 operations safe on Debezium / Kafka Connect change-data-capture \
pipelines: schema changes in lockstep with CDC, an exactly-once replication sink, a watchdog with lag \
tracking, and connectors as code.",
    after_help = ROOT_AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// More log output on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Configuration file (default: ./lockstep.yaml when it exists).
    #[arg(long, global = true, env = "LOCKSTEP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Which Kafka Connect cluster to talk to, and how.
#[derive(Debug, Args, Clone, Default)]
pub struct TargetArgs {
    /// Cluster name from the configuration file.
    #[arg(long, global = true, env = "LOCKSTEP_CLUSTER")]
    pub cluster: Option<String>,
    /// Worker REST URL(s) of one cluster, comma-separated; overrides the configuration file.
    #[arg(
        long,
        global = true,
        env = "LOCKSTEP_CONNECT_URL",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub connect_url: Vec<String>,
    /// Basic-auth user; the password comes from LOCKSTEP_CONNECT_PASSWORD (never a flag: flags show in `ps`).
    #[arg(long, global = true, env = "LOCKSTEP_CONNECT_USER")]
    pub connect_user: Option<String>,
    /// PEM bundle of CAs that sign the workers' certificates.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --client-key).
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (test clusters only).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Operate Kafka Connect: list, inspect, pause, resume, stop, restart, offsets, validate.
    Connect(ConnectArgs),
    /// Run the replication sink: apply a pipeline's Debezium topics to its target database.
    Sink(SinkArgs),
    /// Compare a source and a target table row by row (chunked, primary-key ordered).
    Verify(VerifyArgs),
    /// Show and verify the hash-chained audit log of every change lockstep made.
    Audit(crate::audit_cmd::AuditArgs),
    /// Connectors as code: plan, apply, drift and export against manifests in files.
    Connectors(crate::connectors_cmd::ConnectorsArgs),
    /// Lint connector manifests for production readiness (text, JSON or SARIF).
    Lint(crate::lint_cmd::LintArgs),
    /// Watch every connector: restart retriable failures with backoff, alert on permanent ones.
    Watch(crate::watch_cmd::WatchArgs),
    /// Run the lockstep service (REST API with an OpenAPI spec at /openapi.json).
    Serve(ServeArgs),
    /// Measure lockstep against the target's own ceiling on this machine (needs the local stack).
    Bench(BenchArgs),
    /// Schema changes in lockstep with CDC: plan, apply, approve, cancel, resume, status, history.
    Ddl(crate::ddl_cmd::DdlArgs),
    /// Check a pipeline file against the live source, target, publication and connectors.
    Pipeline(crate::ddl_cmd::PipelineArgs),
    /// Every pipeline at a glance: state, freshness, lag p99 and last incident per connector / sink.
    Status(crate::status_cmd::StatusArgs),
    /// Auto-tune a Debezium connector's batch / queue / poll knobs to keep lag within an SLO.
    Tune(crate::tune_cmd::TuneArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "The sink stores the Kafka offsets it has applied in the target database
(table lockstep.sink_offsets), in the same transaction as the rows: after any crash it resumes
exactly where the target is, without duplicates or gaps. Consumer-group commits are not used.

Example pipeline file:
  name: orders-dr
  kafka: {bootstrap_servers: 127.0.0.1:9092, topics: [dbserver1.public.orders]}
  target: {engine: postgres, host: dr-db, port: 5432, user: replicator,
           password: ${env:TARGET_PASSWORD}, database: orders, schema: public}
  batch: {max_rows: 5000, linger_ms: 200, max_bytes: 67108864}
  schema_drift: block          # block: hold only the drifted table until the target has the
                               # columns | evolve: add them as nullable | fail: stop the sink
  errors: {tolerance: all, dead_letter_topic: orders-dr.dlq, max_dead_letters: 1000}
  assignment: {instance: 0, instances: 1}   # scale-out: this process's share of the partitions
  slo: {lag_seconds: 5, objective: 0.99, freshness_seconds: 300}   # exported for the alert
                               # rules: 99% of changes within 5 s; newest change < 5 min old"
)]
pub struct SinkArgs {
    #[command(subcommand)]
    pub command: SinkCommand,
}

#[derive(Debug, Subcommand)]
pub enum SinkCommand {
    /// Apply the pipeline's change events until interrupted (Ctrl-C / SIGTERM finish the batch).
    #[command(after_help = "With --listen the sink also serves, on that address:
  GET  /metrics                                  Prometheus / OpenMetrics
  GET  /api/v1/sinks/NAME                        status: positions, blocked tables, last error
  POST /api/v1/sinks/NAME/pause | resume
  POST /api/v1/sinks/NAME/tables/TABLE/hold | release
  POST /api/v1/sinks/NAME/drain  {\"positions\": [{\"topic\": T, \"partition\": 0, \"offset\": 42}]}")]
    Run {
        /// Pipeline file (YAML).
        #[arg(short, long, value_name = "FILE")]
        pipeline: PathBuf,
        /// Exit once no record has arrived for this long (for batch jobs and tests).
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        until_idle: Option<Duration>,
        /// Serve /metrics and the sink's control API on this address (e.g. 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Show what the target has committed per partition against the topics' end offsets.
    ///
    /// Reads the offsets table in the target and the broker, so it works whether or not a sink
    /// runs, and covers every process of a scaled-out pipeline.
    Status {
        /// Pipeline file (YAML).
        #[arg(short, long, value_name = "FILE")]
        pipeline: PathBuf,
    },
    /// Wait until everything before given offsets (or the topics' current ends) is committed in
    /// the target. Exit 0 when drained, 1 when the timeout ran out (what is behind is shown).
    #[command(after_help = "Examples:
  lockstep sink drain -p orders.yaml --end --timeout 5m
  lockstep sink drain -p orders.yaml --to dbserver1.public.orders:0:18240")]
    Drain {
        /// Pipeline file (YAML).
        #[arg(short, long, value_name = "FILE")]
        pipeline: PathBuf,
        /// TOPIC:PARTITION:OFFSET, an end offset: every record below it must be committed.
        #[arg(
            long = "to",
            value_name = "TOPIC:PARTITION:OFFSET",
            required_unless_present = "end"
        )]
        to: Vec<String>,
        /// Drain to the current end of every partition of the pipeline's topics.
        #[arg(long, conflicts_with = "to")]
        end: bool,
        /// Longest wait.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchEngine {
    Postgres,
    Mariadb,
    All,
}

/// How the benchmark's producer compresses the topic's record batches (Kafka's
/// `compression.type`; a Connect worker sets it with `producer.compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchCompression {
    None,
    Lz4,
    Snappy,
    Gzip,
}

impl BenchCompression {
    pub fn kafka_name(self) -> &'static str {
        match self {
            BenchCompression::None => "none",
            BenchCompression::Lz4 => "lz4",
            BenchCompression::Snappy => "snappy",
            BenchCompression::Gzip => "gzip",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Sink throughput vs the target's bulk load (PostgreSQL COPY, MariaDB multi-row INSERT).
    #[command(
        after_help = "Produces N Debezium change events (70% inserts, 25% updates, 5% deletes
over 10 columns of mixed types) to a fresh topic, runs the sink into an empty table, loads the
same final rows with the engine's bulk path into another (three times; the fastest counts),
checks both tables are equal, and prints events/s, rows/s and their ratio. Connection settings
come from the LOCKSTEP_* variables of `scripts/stack env` (defaults: the local stack's ports).

JsonConverter with schemas repeats each table's schema in every record; a Connect worker that
compresses its topics (producer.compression.type=lz4) sends the broker and the sink a fraction of
the bytes. --compression measures either way.

Example:
  eval \"$(scripts/stack env)\" && lockstep bench sink --events 1000000 --engine all --compression lz4"
    )]
    Sink {
        /// Change events to produce.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Target engine(s).
        #[arg(long, value_enum, default_value_t = BenchEngine::All)]
        engine: BenchEngine,
        /// The sink's batch.max_rows.
        #[arg(long, default_value_t = 10_000)]
        batch_rows: usize,
        /// Seed of the workload (the same seed gives the same events).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Compression of the produced topic, as a Connect worker's
        /// `producer.compression.type` would set it.
        #[arg(long, value_enum, default_value_t = BenchCompression::None)]
        compression: BenchCompression,
    },
    /// One watchdog cycle over many connectors and endpoints: cycle time and CPU per cycle.
    Watch(crate::bench_watch::BenchWatchArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  lockstep connect ls
  lockstep connect status orders-cdc -o yaml
  lockstep connect validate -f orders-cdc.json
  lockstep connect create -f orders-cdc.yaml --initial-state stopped
  lockstep connect restart orders-cdc --include-tasks --only-failed
  lockstep connect stop orders-cdc --wait && lockstep connect offsets get orders-cdc")]
pub struct ConnectArgs {
    #[command(subcommand)]
    pub command: ConnectCommand,
}

/// How long `--wait` waits, e.g. `90s`, `5m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: write e.g. 30s, 5m or 1h"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(value)),
        "s" | "" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => return Err(format!("'{text}' has an unknown unit: use ms, s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

#[derive(Debug, Args, Clone, Copy)]
pub struct WaitArgs {
    /// Wait until the connector and its tasks reach the requested state.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// List connectors with their state and tasks.
    #[command(visible_alias = "list")]
    Ls,
    /// A connector's state, its tasks and, for failed ones, the error.
    Status {
        name: String,
        /// Show failed tasks' whole stack traces (default: the first lines).
        #[arg(long)]
        full_trace: bool,
    },
    /// A connector's configuration (secret values masked).
    Config { name: String },
    /// Create a connector from a JSON or YAML file ({name, config} or a flat config with `name`).
    Create {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// State the connector starts in (Kafka 3.7+).
        #[arg(long, value_enum)]
        initial_state: Option<InitialStateArg>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a connector (its offsets stay in Connect; `offsets reset` first to drop them).
    Delete { name: String },
    /// Pause a connector and its tasks (they keep their resources; resume continues).
    Pause {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Resume a paused or stopped connector.
    Resume {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Stop a connector: tasks shut down and release their resources; offsets can then be edited.
    Stop {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Restart a connector, its tasks, or only the failed ones.
    Restart {
        name: String,
        /// Restart the tasks as well as the connector.
        #[arg(long)]
        include_tasks: bool,
        /// Only restart instances that are FAILED.
        #[arg(long)]
        only_failed: bool,
        /// Restart this one task only.
        #[arg(long, conflicts_with_all = ["include_tasks", "only_failed"])]
        task: Option<u32>,
    },
    /// Read, change or reset a connector's committed offsets (changes need it STOPPED).
    Offsets {
        #[command(subcommand)]
        command: OffsetsCommand,
    },
    /// Validate a connector config against the cluster's plugin without creating anything.
    Validate {
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Connector plugins installed on the cluster.
    Plugins,
    /// The topics a connector has used, or reset that record.
    Topics {
        name: String,
        /// Forget the connector's active topics.
        #[arg(long)]
        reset: bool,
    },
    /// Worker log levels: list them, or set one (`--level`).
    Loggers {
        /// A logger name, e.g. io.debezium.connector.postgresql.
        logger: Option<String>,
        /// New level (TRACE, DEBUG, INFO, WARN, ERROR, OFF).
        #[arg(long, requires = "logger")]
        level: Option<String>,
        /// Apply to every worker of the cluster (Kafka 3.7+), not only the one answering.
        #[arg(long, requires = "level")]
        cluster_wide: bool,
    },
    /// Cluster version, Kafka cluster id and worker health.
    Info,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum InitialStateArg {
    Running,
    Paused,
    Stopped,
}

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// Show the committed offsets (a source connector's source position, a sink's topic offsets).
    Get { name: String },
    /// Replace offsets from a file: {"offsets":[{"partition":{..},"offset":{..}}]}. Needs STOPPED.
    Set {
        name: String,
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete every committed offset: the connector starts over (a new snapshot). Needs STOPPED.
    Reset {
        name: String,
        /// Required: resetting a CDC source's offsets re-snapshots the whole table set.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
#[command(
    after_help = "Databases are given as URLs without passwords; passwords come from
LOCKSTEP_SOURCE_PASSWORD and LOCKSTEP_TARGET_PASSWORD (flags would show in `ps`).

Exit codes: 0 the tables are equal; 1 differences were found, or the comparison failed.

Example:
  LOCKSTEP_TARGET_PASSWORD=... lockstep verify \\
    --source postgres://replicator@primary:5432/orders \\
    --target mysql://replicator@dr-db:3306/orders --table public.orders --target-table orders"
)]
pub struct VerifyArgs {
    /// Source database: postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB (mariadb:// too).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// Target database, same form as --source.
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// Table to compare: `table` or `schema.table`.
    #[arg(long)]
    pub table: String,
    /// Table name on the target when it differs from --table.
    #[arg(long)]
    pub target_table: Option<String>,
    /// Rows per compared chunk.
    #[arg(long, default_value_t = 1000)]
    pub chunk_size: u32,
    /// Re-reads of a differing chunk before it is reported (rows may still be in flight).
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Schema changes over HTTP (the same plans, executor and store as `lockstep ddl`):
  lockstep serve --ddl-pipeline orders.yaml
  curl -X POST localhost:8480/api/v1/ddl/plan \\
       -d '{\"pipeline\": \"orders-dr\", \"sql\": \"ALTER TABLE orders ADD COLUMN note text\"}'
  curl -X POST localhost:8480/api/v1/ddl/operations \\
       -d '{\"pipeline\": \"orders-dr\", \"sql\": \"...\", \"actor\": \"ann\", \"require_approval\": true}'
  curl -X POST localhost:8480/api/v1/ddl/operations/12/approve -d '{\"actor\": \"bo\"}'
  curl -X POST localhost:8480/api/v1/ddl/operations/12/cancel
  curl localhost:8480/api/v1/ddl/operations/12
A plan request is a dry run. An apply answers 202 with the operation ids and runs them in the
background, one at a time. Bad input changes nothing and gets a 4xx with {error, hint}: 400
not the expected JSON, 404 unknown pipeline, 409 an earlier operation is unfinished, 413 body
over 64 KiB, 422 the script was refused (every reason). At start, operations a crash left
unfinished are resumed or compensated, one log line each saying which. Every route:
/openapi.json."
)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LOCKSTEP_LISTEN", default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,
    /// Run the replication sink of this pipeline file inside the service (repeatable); a
    /// failed sink is restarted with backoff and shows `failed` in /api/v1/sinks meanwhile.
    #[arg(long = "pipeline", value_name = "FILE")]
    pub pipelines: Vec<PathBuf>,
    /// Offer this pipeline file (sink file with a `source:` section, see `lockstep ddl
    /// --help`) to the DDL API by its name, without running its sink here (repeatable). A
    /// --pipeline file with a `source:` section is offered too. Operations are recorded in
    /// the state store of --watch-state-dir (LOCKSTEP_STATE_DIR).
    #[arg(long = "ddl-pipeline", value_name = "FILE")]
    pub ddl_pipelines: Vec<PathBuf>,
    #[command(flatten)]
    pub drift: crate::connectors_cmd::DriftServeArgs,
    #[command(flatten)]
    pub watch: crate::watch_cmd::ServeWatchArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        let cases = [
            ("90s", Some(90_000)),
            ("5m", Some(300_000)),
            ("1h", Some(3_600_000)),
            ("250ms", Some(250)),
            ("45", Some(45_000)),
            ("soon", None),
            ("5d", None),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_millis() as u64),
                millis,
                "{text}"
            );
        }
    }

    #[test]
    fn parses_connect_verbs() {
        let cli = Cli::try_parse_from([
            "lockstep",
            "connect",
            "restart",
            "orders",
            "--include-tasks",
            "--only-failed",
            "-o",
            "json",
            "--connect-url",
            "http://a:8083,http://b:8083",
        ])
        .expect("parses");
        assert_eq!(cli.global.target.connect_url.len(), 2);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert!(Cli::try_parse_from([
            "lockstep",
            "connect",
            "restart",
            "x",
            "--task",
            "1",
            "--only-failed"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["lockstep", "connect", "frobnicate"]).is_err());
    }
}
