//! `lockstep connect ...`: thin verbs over the typed client. Each verb builds a view, renders it in
//! the chosen format, and returns the exit code; all decisions about Connect live in the client.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use lockstep_connect::{
    ConnectClient, ConnectError, ConnectorConfig, ConnectorOffsets, ConnectorState,
    ConnectorStateInfo, CreateConnectorRequest, Expand, ExpectedState, HealthStatus, InitialState,
    LoggerScope, RestartOptions, RestartOutcome, SetLoggerOutcome,
};
use serde::{Deserialize, Serialize};

use crate::cli::{
    ConnectArgs, ConnectCommand, GlobalArgs, InitialStateArg, OffsetsCommand, WaitArgs,
};
use crate::output::{print, OutputFormat, TableView};
use crate::serve::ConnectorSummary;
use crate::{exit, AlreadyReported};

pub async fn run(global: &GlobalArgs, args: ConnectArgs) -> anyhow::Result<u8> {
    let client = crate::target::connect_client(global)?;
    let out = global.output;
    match args.command {
        ConnectCommand::Ls => print(out, &Summaries(summaries(&client).await?))?,
        ConnectCommand::Status { name, full_trace } => {
            let status = client.connector_status(&name).await?;
            print(out, &StatusView { status, full_trace })?;
        }
        ConnectCommand::Config { name } => {
            let config = client.get_connector_config(&name).await?;
            print(out, &ConfigView(config.masked()))?;
        }
        ConnectCommand::Create {
            file,
            initial_state,
            wait,
        } => {
            let request = read_create_request(&file, initial_state)?;
            let name = request.name.clone();
            let expected = match request.initial_state {
                Some(InitialState::Paused) => ConnectorState::Paused,
                Some(InitialState::Stopped) => ConnectorState::Stopped,
                _ => ConnectorState::Running,
            };
            client.create_connector(&request).await?;
            eprintln!("connector {name} created");
            finish_state_change(&client, out, &name, expected, wait).await?;
        }
        ConnectCommand::Delete { name } => {
            client.delete_connector(&name).await?;
            eprintln!("connector {name} deleted");
        }
        ConnectCommand::Pause { name, wait } => {
            client.pause_connector(&name).await?;
            finish_state_change(&client, out, &name, ConnectorState::Paused, wait).await?;
        }
        ConnectCommand::Resume { name, wait } => {
            client.resume_connector(&name).await?;
            finish_state_change(&client, out, &name, ConnectorState::Running, wait).await?;
        }
        ConnectCommand::Stop { name, wait } => {
            client.stop_connector(&name).await?;
            finish_state_change(&client, out, &name, ConnectorState::Stopped, wait).await?;
        }
        ConnectCommand::Restart {
            name,
            include_tasks,
            only_failed,
            task,
        } => {
            if let Some(task) = task {
                client.restart_task(&name, task).await?;
                eprintln!("task {name}/{task} restart requested");
            } else {
                let options = RestartOptions {
                    include_tasks,
                    only_failed,
                };
                match client.restart_connector(&name, options).await? {
                    RestartOutcome::ConnectorOnly => eprintln!("connector {name} restarted"),
                    RestartOutcome::Accepted(status) => print(
                        out,
                        &StatusView {
                            status,
                            full_trace: false,
                        },
                    )?,
                }
            }
        }
        ConnectCommand::Offsets { command } => offsets(&client, out, command).await?,
        ConnectCommand::Validate { file } => return validate(&client, out, &file).await,
        ConnectCommand::Plugins => {
            let plugins = client.list_plugins(false).await?;
            let rows = plugins
                .into_iter()
                .map(|p| PluginRow {
                    class: p.class_name,
                    plugin_type: p.plugin_type.as_str().to_string(),
                    version: p.version.unwrap_or_default(),
                })
                .collect();
            print(out, &Plugins(rows))?;
        }
        ConnectCommand::Topics { name, reset } => {
            if reset {
                client.reset_connector_topics(&name).await?;
                eprintln!("active topics of {name} reset");
            } else {
                let topics = client.connector_topics(&name).await?;
                print(out, &Topics(topics))?;
            }
        }
        ConnectCommand::Loggers {
            logger,
            level,
            cluster_wide,
        } => loggers(&client, out, logger, level, cluster_wide).await?,
        ConnectCommand::Info => {
            let info = client.server_info().await?;
            let health = client.health().await?;
            let (health_state, health_message) = match health {
                HealthStatus::Healthy { message } => ("healthy", message),
                HealthStatus::Starting { message } => ("starting", message),
                HealthStatus::Unhealthy { message } => ("unhealthy", message),
                HealthStatus::EndpointAbsent => (
                    "unknown",
                    "this worker predates Kafka 3.9 and has no /health endpoint".to_string(),
                ),
            };
            print(
                out,
                &InfoView {
                    version: info.version,
                    commit: info.commit,
                    kafka_cluster_id: info.kafka_cluster_id,
                    health: health_state.to_string(),
                    health_message,
                },
            )?;
        }
    }
    Ok(exit::OK)
}

/// The `ls` overview, shared with `serve`.
pub async fn summaries(client: &ConnectClient) -> Result<Vec<ConnectorSummary>, ConnectError> {
    let listing = client.list_connectors_expanded(Expand::ALL).await?;
    Ok(listing
        .into_iter()
        .map(|(name, expanded)| {
            let status = expanded.status.as_ref();
            ConnectorSummary {
                connector_type: expanded
                    .info
                    .as_ref()
                    .map(|i| i.connector_type.to_string())
                    .or_else(|| status.and_then(|s| s.connector_type.map(|t| t.to_string())))
                    .unwrap_or_else(|| "unknown".into()),
                state: status
                    .map(|s| s.connector.state.as_str().to_string())
                    .unwrap_or_else(|| "UNKNOWN".into()),
                tasks_running: status
                    .map(|s| {
                        s.tasks
                            .iter()
                            .filter(|t| t.state == ConnectorState::Running)
                            .count()
                    })
                    .unwrap_or(0),
                tasks_total: status.map(|s| s.tasks.len()).unwrap_or(0),
                worker: status.and_then(|s| s.connector.worker_id.clone()),
                name,
            }
        })
        .collect())
}

async fn finish_state_change(
    client: &ConnectClient,
    out: OutputFormat,
    name: &str,
    expected: ConnectorState,
    wait: WaitArgs,
) -> anyhow::Result<()> {
    if !wait.wait {
        eprintln!(
            "{name}: {} requested (Connect applies it asynchronously; --wait waits for it)",
            expected.as_str()
        );
        return Ok(());
    }
    let spinner = progress_spinner(format!("waiting for {name} to be {}", expected.as_str()));
    let target = match expected {
        ConnectorState::Paused => ExpectedState::paused(),
        ConnectorState::Stopped => ExpectedState::stopped(),
        _ => ExpectedState::running(),
    };
    let result = client.wait_for_state(name, &target, wait.timeout).await;
    spinner.finish_and_clear();
    let status = result?;
    print(
        out,
        &StatusView {
            status,
            full_trace: false,
        },
    )
}

fn progress_spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A connector file: `{name, config}` (Connect's POST body) or a flat config containing `name`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConnectorFile {
    Wrapped {
        name: String,
        config: ConnectorConfig,
    },
    Flat(ConnectorConfig),
}

fn read_config_file(path: &Path) -> anyhow::Result<(String, ConnectorConfig)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read connector file {}", path.display()))?;
    let parsed: ConnectorFile = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
    {
        serde_yaml_ng::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "{}: not a JSON connector definition ({e}); write {{\"name\": ..., \"config\": {{...}}}} or use a .yaml file",
                path.display()
            )
        })?
    };
    let (name, mut config) = match parsed {
        ConnectorFile::Wrapped { name, config } => (name, config),
        ConnectorFile::Flat(config) => {
            let name = config.get("name").map(str::to_string).ok_or_else(|| {
                anyhow!(
                    "{}: the connector has no name: add \"name\" to the config or wrap it as {{\"name\": ..., \"config\": {{...}}}}",
                    path.display()
                )
            })?;
            (name, config)
        }
    };
    if name.trim().is_empty() {
        bail!("{}: the connector name is empty", path.display());
    }
    config.insert("name", name.clone());
    Ok((name, config))
}

fn read_create_request(
    path: &Path,
    initial_state: Option<InitialStateArg>,
) -> anyhow::Result<CreateConnectorRequest> {
    let (name, config) = read_config_file(path)?;
    Ok(CreateConnectorRequest {
        name,
        config,
        initial_state: initial_state.map(|s| match s {
            InitialStateArg::Running => InitialState::Running,
            InitialStateArg::Paused => InitialState::Paused,
            InitialStateArg::Stopped => InitialState::Stopped,
        }),
    })
}

async fn validate(client: &ConnectClient, out: OutputFormat, file: &Path) -> anyhow::Result<u8> {
    let (_name, config) = read_config_file(file)?;
    let class = config
        .connector_class()
        .ok_or_else(|| {
            anyhow!(
                "{}: connector.class is missing: every connector config names its plugin class",
                file.display()
            )
        })?
        .to_string();
    let result = client.validate_config(&class, &config).await?;
    let errors: Vec<ValidationRow> = result
        .keys_with_errors()
        .into_iter()
        .flat_map(|(key, messages)| {
            messages.into_iter().map(move |message| ValidationRow {
                key: key.clone(),
                message,
            })
        })
        .collect();
    let report = ValidationReport {
        connector_class: class,
        valid: errors.is_empty(),
        error_count: errors.len(),
        errors,
    };
    if report.valid {
        if out == OutputFormat::Table {
            println!("{}: valid for {}", file.display(), report.connector_class);
        } else {
            print(out, &report)?;
        }
        return Ok(exit::OK);
    }
    print(out, &report)?;
    eprintln!(
        "error: {} is not a valid {} config: {} problem(s) reported by Kafka Connect",
        file.display(),
        report.connector_class,
        report.error_count
    );
    Err(AlreadyReported(exit::FAILED).into())
}

async fn offsets(
    client: &ConnectClient,
    out: OutputFormat,
    command: OffsetsCommand,
) -> anyhow::Result<()> {
    match command {
        OffsetsCommand::Get { name } => {
            let offsets = client.get_offsets(&name).await?;
            print(out, &OffsetsView(offsets))
        }
        OffsetsCommand::Set { name, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read offsets file {}", file.display()))?;
            let offsets: ConnectorOffsets = serde_json::from_str(&text).map_err(|e| {
                anyhow!(
                    "{}: not an offsets document ({e}); write {{\"offsets\":[{{\"partition\":{{...}},\"offset\":{{...}}}}]}} as `offsets get -o json` prints it",
                    file.display()
                )
            })?;
            let message = client.alter_offsets(&name, &offsets).await?;
            eprintln!("{name}: {}", message.message);
            Ok(())
        }
        OffsetsCommand::Reset { name, yes } => {
            if !yes {
                bail!(
                    "resetting the offsets of {name} makes a CDC source start over with a new snapshot: repeat with --yes to confirm"
                );
            }
            let message = client.reset_offsets(&name).await?;
            eprintln!("{name}: {}", message.message);
            Ok(())
        }
    }
}

async fn loggers(
    client: &ConnectClient,
    out: OutputFormat,
    logger: Option<String>,
    level: Option<String>,
    cluster_wide: bool,
) -> anyhow::Result<()> {
    match (logger, level) {
        (Some(logger), Some(level)) => {
            let scope = if cluster_wide {
                LoggerScope::Cluster
            } else {
                LoggerScope::Worker
            };
            match client.set_logger_level(&logger, &level, scope).await? {
                SetLoggerOutcome::WorkerScoped { affected_loggers } => eprintln!(
                    "{logger}: level {level} set on the answering worker ({} logger(s) changed)",
                    affected_loggers.len()
                ),
                SetLoggerOutcome::ClusterScoped => eprintln!(
                    "{logger}: level {level} published to every worker (applied asynchronously)"
                ),
            }
            Ok(())
        }
        (Some(logger), None) => {
            let level = client.get_logger(&logger).await?;
            print(out, &Loggers(BTreeMap::from([(logger, level)])))
        }
        (None, _) => print(out, &Loggers(client.list_loggers().await?)),
    }
}

// ------------------------------------------------------------------ views

#[derive(Serialize)]
#[serde(transparent)]
struct Summaries(Vec<ConnectorSummary>);

impl TableView for Summaries {
    fn headers(&self) -> Vec<&'static str> {
        vec!["NAME", "TYPE", "STATE", "TASKS", "WORKER"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.connector_type.clone(),
                    c.state.clone(),
                    format!("{}/{}", c.tasks_running, c.tasks_total),
                    c.worker.clone().unwrap_or_default(),
                ]
            })
            .collect()
    }
}

#[derive(Serialize)]
struct StatusView {
    #[serde(flatten)]
    status: ConnectorStateInfo,
    #[serde(skip)]
    full_trace: bool,
}

/// How many lines of a Java stack trace the table shows: the exception and its first frames,
/// which is where Debezium puts the cause an operator acts on.
const TRACE_LINES: usize = 6;

impl TableView for StatusView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["NAME", "KIND", "STATE", "WORKER"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        let s = &self.status;
        let mut rows = vec![vec![
            s.name.clone(),
            format!(
                "connector ({})",
                s.connector_type
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ),
            s.connector.state.as_str().to_string(),
            s.connector.worker_id.clone().unwrap_or_default(),
        ]];
        rows.extend(s.tasks.iter().map(|t| {
            vec![
                format!("{}/{}", s.name, t.id),
                "task".into(),
                t.state.as_str().to_string(),
                t.worker_id.clone().unwrap_or_default(),
            ]
        }));
        rows
    }
    fn footer(&self) -> Vec<String> {
        let s = &self.status;
        let mut lines = Vec::new();
        let traces = std::iter::once(("connector".to_string(), s.connector.trace.as_ref())).chain(
            s.tasks
                .iter()
                .map(|t| (format!("task {}", t.id), t.trace.as_ref())),
        );
        for (what, trace) in traces {
            let Some(trace) = trace else { continue };
            lines.push(format!("\n{what} failed:"));
            let all: Vec<&str> = trace.lines().collect();
            let shown = if self.full_trace {
                all.len()
            } else {
                TRACE_LINES.min(all.len())
            };
            lines.extend(all[..shown].iter().map(|l| format!("  {l}")));
            if shown < all.len() {
                lines.push(format!(
                    "  ... {} more lines (--full-trace shows them)",
                    all.len() - shown
                ));
            }
        }
        lines
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct ConfigView(BTreeMap<String, String>);

impl TableView for ConfigView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["KEY", "VALUE"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect()
    }
}

#[derive(Serialize)]
struct ValidationRow {
    key: String,
    message: String,
}

#[derive(Serialize)]
struct ValidationReport {
    connector_class: String,
    valid: bool,
    error_count: usize,
    errors: Vec<ValidationRow>,
}

impl TableView for ValidationReport {
    fn headers(&self) -> Vec<&'static str> {
        vec!["KEY", "ERROR"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.errors
            .iter()
            .map(|e| vec![e.key.clone(), e.message.clone()])
            .collect()
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct OffsetsView(ConnectorOffsets);

impl TableView for OffsetsView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["PARTITION", "OFFSET"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .offsets
            .iter()
            .map(|o| {
                vec![
                    serde_json::Value::Object(o.partition.clone()).to_string(),
                    o.offset
                        .clone()
                        .map(|m| serde_json::Value::Object(m).to_string())
                        .unwrap_or_else(|| "null".into()),
                ]
            })
            .collect()
    }
}

#[derive(Serialize)]
struct PluginRow {
    class: String,
    #[serde(rename = "type")]
    plugin_type: String,
    version: String,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Plugins(Vec<PluginRow>);

impl TableView for Plugins {
    fn headers(&self) -> Vec<&'static str> {
        vec!["CLASS", "TYPE", "VERSION"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|p| vec![p.class.clone(), p.plugin_type.clone(), p.version.clone()])
            .collect()
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Topics(Vec<String>);

impl TableView for Topics {
    fn headers(&self) -> Vec<&'static str> {
        vec!["TOPIC"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0.iter().map(|t| vec![t.clone()]).collect()
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Loggers(BTreeMap<String, lockstep_connect::LoggerLevel>);

impl TableView for Loggers {
    fn headers(&self) -> Vec<&'static str> {
        vec!["LOGGER", "LEVEL", "LAST MODIFIED"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|(name, l)| {
                vec![
                    name.clone(),
                    l.level.clone(),
                    l.last_modified.map(|t| t.to_string()).unwrap_or_default(),
                ]
            })
            .collect()
    }
}

#[derive(Serialize)]
struct InfoView {
    version: String,
    commit: Option<String>,
    kafka_cluster_id: Option<String>,
    health: String,
    health_message: String,
}

impl TableView for InfoView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["VERSION", "KAFKA CLUSTER", "HEALTH", "MESSAGE"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        vec![vec![
            self.version.clone(),
            self.kafka_cluster_id.clone().unwrap_or_default(),
            self.health.clone(),
            self.health_message.clone(),
        ]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lockstep-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn reads_connector_files_in_both_shapes_and_formats() {
        let wrapped = write_temp(
            "w.json",
            r#"{"name":"orders","config":{"connector.class":"X","tasks.max":1}}"#,
        );
        let (name, config) = read_config_file(&wrapped).expect("wrapped json");
        assert_eq!(name, "orders");
        assert_eq!(config.get("tasks.max"), Some("1"));
        assert_eq!(config.get("name"), Some("orders"));

        let flat = write_temp("f.yaml", "name: inv\nconnector.class: X\n");
        assert_eq!(read_config_file(&flat).expect("flat yaml").0, "inv");
    }

    #[test]
    fn rejects_connector_files_with_a_reason() {
        let cases = [
            ("nameless.json", r#"{"connector.class":"X"}"#, "has no name"),
            (
                "broken.json",
                r#"{"name":"#,
                "not a JSON connector definition",
            ),
            ("empty.json", r#"{"name":" ","config":{}}"#, "name is empty"),
        ];
        for (file, text, expected) in cases {
            let err = read_config_file(&write_temp(file, text))
                .expect_err(file)
                .to_string();
            assert!(err.contains(expected), "{file}: {err}");
        }
        let missing = read_config_file(Path::new("/nonexistent/c.json"))
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("cannot read connector file"), "{missing}");
    }

    #[test]
    fn status_table_shortens_traces() {
        let status: ConnectorStateInfo = serde_json::from_value(serde_json::json!({
            "name": "orders",
            "connector": {"state": "RUNNING", "worker_id": "w1:8083"},
            "tasks": [
                {"id": 0, "state": "FAILED", "worker_id": "w1:8083",
                 "trace": (0..20).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n")},
                {"id": 1, "state": "RUNNING", "worker_id": "w2:8083"}
            ],
            "type": "sink"
        }))
        .expect("status json");
        let view = StatusView {
            status,
            full_trace: false,
        };
        assert_eq!(view.rows().len(), 3);
        let footer = view.footer().join("\n");
        assert!(footer.contains("task 0 failed") && footer.contains("line 5"));
        assert!(!footer.contains("line 6") && footer.contains("14 more lines"));
    }
}
