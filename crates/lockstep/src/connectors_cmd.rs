//! `lockstep connectors plan|apply|drift|export`: connectors as code. The decisions (diff,
//! validation gate, apply order, drift) live in `lockstep-connectors`; this module loads the
//! manifests, talks to the selected cluster and renders the results.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use lockstep_connectors::{
    apply, audit_events, export_manifest, fetch_live, live_configs, load, parse_var_assignment,
    plan, Action, ApplyError, ApplyOptions, ApplyReport, ConnectorPlan, DriftAuditEvent,
    DriftCheck, DriftMetrics, DriftReport, DriftStatus, DriftWatcher, KeyChange, LoadOptions,
    ManifestSet, OutcomeStatus, Plan, AUDIT_ACTOR,
};
use lockstep_store::{AuditEntry, Store};
use serde::Serialize;

use crate::cli::{parse_duration, GlobalArgs};
use crate::output::{print, OutputFormat, TableView};
use crate::{exit, AlreadyReported};

/// Exit code of plan / drift when something would change.
pub const CHANGES_PENDING: u8 = 2;

const AFTER_HELP: &str = "\
Manifests: one file per connector (YAML or JSON), a directory per Connect cluster:
  connectors/prod/vars.yaml                  variables for every environment
  connectors/prod/base/inventory-cdc.yaml    name, config, optional initial_state and lint
  connectors/prod/overlays/dr/vars.yaml      variables of environment `dr` (--env dr)
  connectors/prod/overlays/dr/inventory-cdc.yaml   keys to change (null removes a key)
A directory without base/ is a flat set of manifests.

  name: inventory-cdc
  initial_state: running        # running | paused | stopped, used when created
  config:
    connector.class: io.debezium.connector.postgresql.PostgresConnector
    database.hostname: ${var:pg_host}                          # lockstep variable
    database.password: ${file:/run/secrets/pg.properties:pw}   # Connect config provider, kept as is

Secrets stay config-provider references (${file:..}, ${env:..}, ${directory:..}); Connect returns
them unresolved, so plans compare like for like. Literal secrets are masked (****) in every output.

Exit codes: plan and drift exit 0 when nothing differs, 2 when something would change (for CI
gates), 1 on errors. apply exits 0 when every change was applied, 1 otherwise.

Audit: with a state directory (--state-dir or LOCKSTEP_STATE_DIR), drift appends one record per
drifted connector and per revert outcome to the hash-chained audit log (actor connectors-drift,
values masked; `lockstep audit show`). `lockstep serve --connectors DIR` always does.

Examples:
  lockstep connectors plan connectors/prod --env dr
  lockstep connectors apply connectors/prod --env dr --prune
  lockstep connectors drift connectors/prod --watch --interval 60s --revert
  lockstep connectors export --to connectors/prod/base inventory-cdc";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ConnectorsArgs {
    #[command(subcommand)]
    pub command: ConnectorsCommand,
}

/// Where the desired state comes from.
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// Directory of one Connect cluster's manifests (base/ + overlays/<env>/, or *.yaml files).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Environment overlay to apply (overlays/<ENV>/).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Variable for ${var:NAME} (repeatable); wins over vars files.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var_assignment)]
    pub vars: Vec<(String, String)>,
    /// Extra variables file (YAML map), after the directory's own vars.yaml.
    #[arg(long, value_name = "FILE")]
    pub vars_file: Vec<PathBuf>,
}

impl SourceArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            env: self.env.clone(),
            vars: self.vars.iter().cloned().collect(),
            vars_files: self.vars_file.clone(),
        }
    }

    pub fn load(&self) -> anyhow::Result<ManifestSet> {
        Ok(load(&self.dir, &self.load_options())?)
    }
}

#[derive(Debug, Subcommand)]
pub enum ConnectorsCommand {
    /// Show what apply would change: per connector create / update / delete, per key diff.
    Plan {
        #[command(flatten)]
        source: SourceArgs,
        /// Plan deleting connectors that exist on the cluster but are not declared.
        #[arg(long)]
        prune: bool,
    },
    /// Validate every changed config against the cluster, then apply and wait for each connector.
    Apply {
        #[command(flatten)]
        source: SourceArgs,
        /// Delete connectors that exist on the cluster but are not declared.
        #[arg(long)]
        prune: bool,
        /// Only show the plan (same output and exit codes as `plan`).
        #[arg(long)]
        dry_run: bool,
        /// Longest wait per connector for its expected state.
        #[arg(long, default_value = "180s", value_parser = parse_duration)]
        timeout: Duration,
        /// Do not wait for connectors to reach their state.
        #[arg(long)]
        no_wait: bool,
    },
    /// Report connectors whose live config differs from the manifests (exit 2 when any does).
    Drift {
        #[command(flatten)]
        source: SourceArgs,
        /// Count undeclared connectors as drift (and delete them with --revert).
        #[arg(long)]
        prune: bool,
        /// Apply the manifests again when drift is found (validated first, like apply).
        #[arg(long)]
        revert: bool,
        /// Keep checking every --interval until interrupted, one JSON line per check.
        #[arg(long)]
        watch: bool,
        /// Time between checks with --watch.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        interval: Duration,
        /// Append the drift found (and each revert outcome) to the audit log of the state
        /// store in this directory.
        #[arg(long, env = "LOCKSTEP_STATE_DIR", value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Write the cluster's connectors as manifests (literal secrets become references).
    Export {
        /// Directory to write the manifests to (created if missing).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Connectors to export (default: all).
        names: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(global: &GlobalArgs, args: ConnectorsArgs) -> anyhow::Result<u8> {
    let out = global.output;
    match args.command {
        ConnectorsCommand::Plan { source, prune } => plan_cmd(global, &source, prune, out).await,
        ConnectorsCommand::Apply {
            source,
            prune,
            dry_run,
            timeout,
            no_wait,
        } => {
            if dry_run {
                return plan_cmd(global, &source, prune, out).await;
            }
            let options = ApplyOptions {
                wait: (!no_wait).then_some(timeout),
            };
            apply_cmd(global, &source, prune, options, out).await
        }
        ConnectorsCommand::Drift {
            source,
            prune,
            revert,
            watch,
            interval,
            state_dir,
        } => {
            let store = state_dir.as_deref().map(open_store).transpose()?;
            if watch {
                watch_cmd(global, source, prune, revert, interval, store).await
            } else {
                drift_cmd(global, &source, prune, revert, out, store.as_ref()).await
            }
        }
        ConnectorsCommand::Export { to, names, force } => {
            export_cmd(global, &to, &names, force, out).await
        }
    }
}

fn cluster_label(client: &lockstep_connect::ConnectClient) -> String {
    client
        .base_urls()
        .iter()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .collect::<Vec<_>>()
        .join(",")
}

async fn plan_cmd(
    global: &GlobalArgs,
    source: &SourceArgs,
    prune: bool,
    out: OutputFormat,
) -> anyhow::Result<u8> {
    let manifests = source.load()?;
    let client = crate::target::connect_client(global)?;
    let live = fetch_live(&client).await?;
    let plan = plan(&manifests.desired(), &live_configs(&live), prune);
    print(
        out,
        &PlanView {
            cluster: cluster_label(&client),
            dir: manifests.dir.display().to_string(),
            env: manifests.env.clone(),
            changes_pending: plan.has_changes(),
            plan: plan.clone(),
        },
    )?;
    Ok(if plan.has_changes() {
        CHANGES_PENDING
    } else {
        exit::OK
    })
}

async fn apply_cmd(
    global: &GlobalArgs,
    source: &SourceArgs,
    prune: bool,
    options: ApplyOptions,
    out: OutputFormat,
) -> anyhow::Result<u8> {
    let manifests = source.load()?;
    let client = crate::target::connect_client(global)?;
    let live = fetch_live(&client).await?;
    let plan = plan(&manifests.desired(), &live_configs(&live), prune);
    if !plan.has_changes() {
        if out == OutputFormat::Table {
            println!(
                "No changes: the cluster matches {}.",
                manifests.dir.display()
            );
        } else {
            print(out, &ApplyView::new(plan, ApplyReport::default()))?;
        }
        return Ok(exit::OK);
    }
    if out == OutputFormat::Table {
        print(
            out,
            &PlanView {
                cluster: cluster_label(&client),
                dir: manifests.dir.display().to_string(),
                env: manifests.env.clone(),
                changes_pending: true,
                plan: plan.clone(),
            },
        )?;
        println!();
    }
    match apply(&client, &manifests, &live, &plan, options).await {
        Ok(report) => {
            let failed = report.failed();
            print(out, &ApplyView::new(plan, report))?;
            if failed > 0 {
                eprintln!("error: {failed} connector(s) could not be applied; see the table above and `lockstep connect status NAME`");
                return Err(AlreadyReported(exit::FAILED).into());
            }
            Ok(exit::OK)
        }
        Err(ApplyError::Invalid(invalid)) => {
            let rows: Vec<ValidationRow> = invalid
                .iter()
                .flat_map(|i| {
                    i.errors.iter().flat_map(move |(key, messages)| {
                        messages.iter().map(move |m| ValidationRow {
                            connector: i.connector.clone(),
                            key: key.clone(),
                            message: m.clone(),
                        })
                    })
                })
                .collect();
            print(out, &ValidationView(rows))?;
            eprintln!(
                "error: Kafka Connect rejected {} connector config(s): {}; nothing was changed",
                invalid.len(),
                invalid
                    .iter()
                    .map(|i| i.connector.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Err(AlreadyReported(exit::FAILED).into())
        }
        Err(ApplyError::Connect(e)) => Err(e.into()),
    }
}

async fn drift_cmd(
    global: &GlobalArgs,
    source: &SourceArgs,
    prune: bool,
    revert: bool,
    out: OutputFormat,
    store: Option<&Store>,
) -> anyhow::Result<u8> {
    let manifests = source.load()?;
    let client = crate::target::connect_client(global)?;
    let live = fetch_live(&client).await?;
    let plan = plan(&manifests.desired(), &live_configs(&live), prune);
    let checked_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let report = DriftReport::from_plan(&plan, checked_at);
    let drifted = report.has_drift();
    print(out, &DriftView(report.clone()))?;
    let audit = |check: DriftCheck| -> anyhow::Result<()> {
        let Some(store) = store else {
            return Ok(());
        };
        let events = audit_events(None, &check, revert);
        append_audit(store, &cluster_label(&client), &manifests.dir, &events).map_err(|e| {
            anyhow!(
                "{e}; the drift above was found{} but not audited",
                if check.revert.is_some() {
                    " and reverted"
                } else {
                    ""
                }
            )
        })
    };
    if !drifted {
        return Ok(exit::OK);
    }
    let check = |revert: Option<ApplyReport>, error: Option<String>| DriftCheck {
        report: Some(report.clone()),
        revert,
        error,
        audit: Vec::new(),
    };
    if !revert {
        audit(check(None, None))?;
        return Ok(CHANGES_PENDING);
    }
    eprintln!("reverting drift: applying {}", manifests.dir.display());
    match apply(&client, &manifests, &live, &plan, ApplyOptions::default()).await {
        Ok(outcomes) => {
            let failed = outcomes.failed();
            audit(check(Some(outcomes.clone()), None))?;
            print(out, &ApplyView::new(plan, outcomes))?;
            if failed > 0 {
                return Err(AlreadyReported(exit::FAILED).into());
            }
            Ok(exit::OK)
        }
        Err(e) => {
            audit(check(None, Some(format!("revert refused: {e}"))))?;
            Err(anyhow!("drift not reverted: {e}"))
        }
    }
}

/// Opens the state store whose audit log the drift records go to.
fn open_store(dir: &Path) -> anyhow::Result<Store> {
    Store::open_dir(dir).map_err(|e| {
        anyhow!(
            "cannot open the state store in {} to audit connector drift: {e}; pass --state-dir (or set LOCKSTEP_STATE_DIR) to a writable directory",
            dir.display()
        )
    })
}

/// The adapter of [`audit_events`]: appends each record to the store's hash-chained audit log
/// (actor `connectors-drift`), with the cluster and the manifest directory in its details.
/// The values in `events` are already masked; the store scrubs once more.
pub fn append_audit(
    store: &Store,
    cluster: &str,
    manifests: &Path,
    events: &[DriftAuditEvent],
) -> Result<(), lockstep_store::StoreError> {
    for event in events {
        let mut details = event.details.clone();
        if let Some(map) = details.as_object_mut() {
            map.insert("cluster".into(), cluster.into());
            map.insert("manifests".into(), manifests.display().to_string().into());
        }
        store.append_audit(&AuditEntry::new(
            AUDIT_ACTOR,
            event.action,
            event.subject.clone(),
            details,
        ))?;
    }
    Ok(())
}

/// `on_check` of a drift loop: appends the check's audit records, logging (not failing) when
/// the store cannot be written; the loop goes on.
fn audit_in_loop(store: Option<&Store>, cluster: &str, manifests: &Path, check: &DriftCheck) {
    for event in &check.audit {
        tracing::warn!(
            action = event.action,
            connector = %event.subject,
            "connector drift"
        );
    }
    if let Some(error) = &check.error {
        tracing::warn!(error = %error, "connector drift check");
    }
    let Some(store) = store else {
        return;
    };
    if let Err(e) = append_audit(store, cluster, manifests, &check.audit) {
        tracing::error!(error = %e, "connector drift: cannot append to the audit log; check the state directory");
    }
}

async fn watch_cmd(
    global: &GlobalArgs,
    source: SourceArgs,
    prune: bool,
    revert: bool,
    interval: Duration,
    store: Option<Store>,
) -> anyhow::Result<u8> {
    // Fail fast on a manifest error or an unreachable cluster before looping.
    source.load()?;
    let client = crate::target::connect_client(global)?;
    let cluster = cluster_label(&client);
    let dir = source.dir.clone();
    let watcher = DriftWatcher::new(
        client,
        move || load(&source.dir, &source.load_options()),
        interval,
    )
    .revert(revert)
    .prune(prune);
    eprintln!(
        "watching for drift every {}s{} (Ctrl-C stops)",
        interval.as_secs(),
        if revert { ", reverting it" } else { "" }
    );
    watcher
        .run(
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            |check| {
                audit_in_loop(store.as_ref(), &cluster, &dir, check);
                if let Ok(line) = serde_json::to_string(check) {
                    println!("{line}");
                }
            },
        )
        .await;
    Ok(exit::OK)
}

async fn export_cmd(
    global: &GlobalArgs,
    to: &Path,
    names: &[String],
    force: bool,
    out: OutputFormat,
) -> anyhow::Result<u8> {
    let client = crate::target::connect_client(global)?;
    let live = fetch_live(&client).await?;
    if let Some(missing) = names.iter().find(|n| !live.contains_key(*n)) {
        bail!(
            "connector '{missing}' does not exist on {}: see `lockstep connect ls`",
            cluster_label(&client)
        );
    }
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut rows = Vec::new();
    for (name, connector) in &live {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let exported = export_manifest(name, &connector.config);
        let path = to.join(&exported.file_name);
        if path.exists() && !force {
            bail!(
                "{} exists: pass --force to overwrite it, or export to another directory",
                path.display()
            );
        }
        std::fs::write(&path, &exported.yaml)
            .with_context(|| format!("cannot write {}", path.display()))?;
        for warning in &exported.warnings {
            eprintln!("warning: {warning}");
        }
        rows.push(ExportRow {
            connector: name.clone(),
            file: path.display().to_string(),
            warnings: exported.warnings.len(),
        });
    }
    print(out, &ExportView(rows))?;
    Ok(exit::OK)
}

// ------------------------------------------------------------------ serve

/// `lockstep serve` options of the drift loop (flattened into the serve arguments).
#[derive(Debug, Args, Clone, Default)]
pub struct DriftServeArgs {
    /// Watch this cluster directory of connector manifests for drift (see `lockstep connectors --help`).
    #[arg(long = "connectors", value_name = "DIR")]
    pub connectors_dir: Option<PathBuf>,
    /// Environment overlay of --connectors.
    #[arg(
        long = "connectors-env",
        value_name = "ENV",
        requires = "connectors_dir"
    )]
    pub connectors_env: Option<String>,
    /// Time between drift checks.
    #[arg(long, default_value = "60s", value_parser = parse_duration, requires = "connectors_dir")]
    pub drift_interval: Duration,
    /// Apply the manifests again when drift is found (validated first, like apply).
    #[arg(long, requires = "connectors_dir")]
    pub drift_revert: bool,
}

/// The drift loop's shared status; `None` when `serve` runs without `--connectors`.
#[derive(Clone)]
pub struct DriftRouteState(Option<std::sync::Arc<std::sync::Mutex<DriftStatus>>>);

/// Counters and the last check of the drift loop (`lockstep serve --connectors DIR`).
#[utoipa::path(
    get,
    path = "/api/v1/connectors/drift",
    responses(
        (status = 200, description = "Counters (checks_total, check_failures_total, drift_detected_total, reverted_total, drifted_connectors) and the last check: its report (drifted connectors with per-key diffs, secrets masked; unmanaged ones), the revert outcomes and the error, as JSON"),
        (status = 404, description = "Drift detection is off: start `lockstep serve` with --connectors DIR")
    )
)]
pub async fn drift_status(
    axum::extract::State(state): axum::extract::State<DriftRouteState>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let Some(status) = state.0 else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "drift detection is off: start `lockstep serve` with --connectors DIR"})),
        )
            .into_response();
    };
    let status = status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    axum::Json(status).into_response()
}

/// Starts the drift loop when `--connectors` is given and returns its route,
/// `GET /api/v1/connectors/drift` (counters and the last check, JSON). Its metrics
/// (`lockstep_connectors_*`) are registered in `registry`, the one `/metrics` serves; each
/// drifted connector and revert outcome is appended to the audit log of the state store in
/// `state_dir` (actor `connectors-drift`). Without `--connectors` the route answers 404 with
/// what to configure.
pub fn serve_drift(
    args: &DriftServeArgs,
    connect: Option<&lockstep_connect::ConnectClient>,
    state_dir: &Path,
    registry: &mut prometheus_client::registry::Registry,
) -> anyhow::Result<axum::Router> {
    let route = |state: DriftRouteState| {
        axum::Router::new()
            .route("/api/v1/connectors/drift", axum::routing::get(drift_status))
            .with_state(state)
    };
    let Some(dir) = args.connectors_dir.clone() else {
        return Ok(route(DriftRouteState(None)));
    };
    let client = connect.cloned().ok_or_else(|| {
        anyhow!("--connectors needs a Kafka Connect cluster: pass --connect-url or configure one in lockstep.yaml")
    })?;
    let options = LoadOptions {
        env: args.connectors_env.clone(),
        ..LoadOptions::default()
    };
    // Refuse to start on manifests that do not load, rather than report failures for ever.
    load(&dir, &options)?;
    let store = open_store(state_dir)?;
    let cluster = cluster_label(&client);
    let metrics = DriftMetrics::register(registry);
    let audit_dir = dir.clone();
    let watcher = DriftWatcher::new(client, move || load(&dir, &options), args.drift_interval)
        .revert(args.drift_revert)
        .metrics(metrics);
    let status = watcher.status();
    tokio::spawn(watcher.run(std::future::pending::<()>(), move |check| {
        audit_in_loop(Some(&store), &cluster, &audit_dir, check)
    }));
    Ok(route(DriftRouteState(Some(status))))
}

// ------------------------------------------------------------------ views

fn change_symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
        Action::Unchanged => "=",
        Action::Unmanaged => "?",
    }
}

/// One row per connector (`label` of its action), then one per changed key of an update.
fn connector_rows<'a>(
    connectors: impl Iterator<Item = &'a ConnectorPlan>,
    label: impl Fn(Action) -> String,
) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for c in connectors {
        rows.push(vec![
            label(c.action),
            c.name.clone(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        if c.action != Action::Update {
            continue;
        }
        for k in &c.changes {
            let sym = match k.change {
                KeyChange::Added => "+",
                KeyChange::Removed => "-",
                KeyChange::Changed => "~",
            };
            rows.push(vec![
                String::new(),
                String::new(),
                format!("{sym} {}", k.key),
                k.before.clone().unwrap_or_else(|| "(absent)".into()),
                k.after.clone().unwrap_or_else(|| "(absent)".into()),
            ]);
        }
    }
    rows
}

#[derive(Serialize)]
struct PlanView {
    cluster: String,
    dir: String,
    env: Option<String>,
    changes_pending: bool,
    #[serde(flatten)]
    plan: Plan,
}

fn summary_line(plan: &Plan) -> String {
    let s = plan.summary;
    let mut line = format!(
        "Plan: {} to create, {} to update, {} to delete, {} unchanged.",
        s.create, s.update, s.delete, s.unchanged
    );
    if s.unmanaged > 0 {
        line.push_str(&format!(
            " {} connector(s) on the cluster are not declared (left alone; --prune deletes them).",
            s.unmanaged
        ));
    }
    line
}

impl TableView for PlanView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["ACTION", "CONNECTOR", "KEY", "LIVE", "DESIRED"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        connector_rows(self.plan.connectors.iter(), |a| {
            format!("{} {}", change_symbol(a), a.as_str())
        })
    }
    fn footer(&self) -> Vec<String> {
        vec![
            String::new(),
            summary_line(&self.plan),
            format!(
                "Cluster {}, manifests {}{}.",
                self.cluster,
                self.dir,
                self.env
                    .as_deref()
                    .map(|e| format!(", environment {e}"))
                    .unwrap_or_default()
            ),
        ]
    }
}

#[derive(Serialize)]
struct ApplyView {
    plan: Plan,
    #[serde(flatten)]
    report: ApplyReport,
}

impl ApplyView {
    fn new(plan: Plan, report: ApplyReport) -> Self {
        Self { plan, report }
    }
}

impl TableView for ApplyView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["CONNECTOR", "ACTION", "RESULT", "STATE / ERROR"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.report
            .outcomes
            .iter()
            .map(|o| {
                let (result, detail) = match &o.status {
                    OutcomeStatus::Applied { state } => {
                        ("applied", state.clone().unwrap_or_else(|| "-".into()))
                    }
                    OutcomeStatus::Failed { error } => ("FAILED", error.clone()),
                };
                vec![
                    o.connector.clone(),
                    o.action.as_str().to_string(),
                    result.to_string(),
                    detail,
                ]
            })
            .collect()
    }
    fn footer(&self) -> Vec<String> {
        let failed = self.report.failed();
        vec![format!(
            "\nApplied {} change(s), {} failed.",
            self.report.outcomes.len() - failed,
            failed
        )]
    }
}

#[derive(Serialize)]
struct ValidationRow {
    connector: String,
    key: String,
    message: String,
}

#[derive(Serialize)]
#[serde(transparent)]
struct ValidationView(Vec<ValidationRow>);

impl TableView for ValidationView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["CONNECTOR", "KEY", "ERROR (from Kafka Connect)"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|r| vec![r.connector.clone(), r.key.clone(), r.message.clone()])
            .collect()
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct DriftView(DriftReport);

impl TableView for DriftView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["DRIFT", "CONNECTOR", "KEY", "LIVE", "DECLARED"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        connector_rows(self.0.drifted.iter(), |a| {
            match a {
                Action::Create => "missing",
                Action::Update => "changed",
                Action::Delete => "undeclared",
                Action::Unchanged | Action::Unmanaged => "",
            }
            .to_string()
        })
    }
    fn footer(&self) -> Vec<String> {
        let mut lines = vec![String::new()];
        if self.0.has_drift() {
            lines.push(format!(
                "{} connector(s) drifted from the manifests; `lockstep connectors apply` (or drift --revert) restores them.",
                self.0.drifted.len()
            ));
        } else {
            lines.push("No drift: the cluster matches the manifests.".into());
        }
        if !self.0.unmanaged.is_empty() {
            lines.push(format!(
                "Not declared (ignored without --prune): {}",
                self.0.unmanaged.join(", ")
            ));
        }
        lines
    }
}

#[derive(Serialize)]
struct ExportRow {
    connector: String,
    file: String,
    warnings: usize,
}

#[derive(Serialize)]
#[serde(transparent)]
struct ExportView(Vec<ExportRow>);

impl TableView for ExportView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["CONNECTOR", "FILE", "WARNINGS"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|r| vec![r.connector.clone(), r.file.clone(), r.warnings.to_string()])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_connect::ConnectorConfig;
    use std::collections::BTreeMap;

    #[test]
    fn plan_table_shows_keys_of_updates_masked() {
        let live: BTreeMap<String, ConnectorConfig> = [(
            "a".to_string(),
            [
                ("connector.class", "X"),
                ("database.password", "old-secret"),
                ("x", "1"),
            ]
            .into_iter()
            .collect(),
        )]
        .into();
        let desired: BTreeMap<String, ConnectorConfig> = [(
            "a".to_string(),
            [
                ("connector.class", "X"),
                ("database.password", "new-secret"),
                ("x", "2"),
            ]
            .into_iter()
            .collect(),
        )]
        .into();
        let view = PlanView {
            cluster: "http://c".into(),
            dir: "d".into(),
            env: None,
            changes_pending: true,
            plan: plan(&desired, &live, false),
        };
        let text = crate::output::render(OutputFormat::Table, &view).expect("table");
        assert!(text.contains("~ update") && text.contains("~ x"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("Plan: 0 to create, 1 to update"), "{text}");
    }

    #[test]
    fn drift_audit_records_land_in_the_store_chained_and_masked() {
        let live: BTreeMap<String, ConnectorConfig> = [(
            "orders".to_string(),
            [
                ("connector.class", "X"),
                ("database.password", "live-literal-pw"),
                ("heartbeat.interval.ms", "7000"),
            ]
            .into_iter()
            .collect(),
        )]
        .into();
        let desired: BTreeMap<String, ConnectorConfig> = [(
            "orders".to_string(),
            [
                ("connector.class", "X"),
                ("database.password", "declared-literal-pw"),
                ("heartbeat.interval.ms", "5000"),
            ]
            .into_iter()
            .collect(),
        )]
        .into();
        let report = DriftReport::from_plan(&plan(&desired, &live, false), 1);
        let check = DriftCheck {
            report: Some(report),
            revert: None,
            error: None,
            audit: Vec::new(),
        };
        let events = audit_events(None, &check, false);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_dir(dir.path()).expect("store");
        append_audit(
            &store,
            "http://connect:8083",
            Path::new("manifests"),
            &events,
        )
        .expect("append");
        let records = store.audit_records(None, 0).expect("records");
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.actor.as_str(), r.action.as_str(), r.subject.as_str()),
            ("connectors-drift", "connectors.drift.detected", "orders")
        );
        let details = r.details_json();
        assert_eq!(details["cluster"], "http://connect:8083");
        // The store's scrubber keeps the names of the changed settings and the masked values.
        assert_eq!(details["changes"][0]["setting"], "database.password");
        assert_eq!(details["changes"][0]["live"], "****");
        assert_eq!(details["changes"][1]["setting"], "heartbeat.interval.ms");
        assert_eq!(details["changes"][1]["live"], "7000");
        assert_eq!(details["changes"][1]["declared"], "5000");
        assert!(!r.details.contains("literal-pw"), "{}", r.details);
        assert!(store.verify_chain().expect("verify").intact);
    }
}
