//! `lockstep ddl plan|apply|approve|cancel|resume|status|history`: schema changes in lockstep
//! with CDC, over `lockstep-ddl-exec` (introspection, planning, the durable executor) and
//! `lockstep-store`. The service API (`ddl_api`) runs operations through the same functions.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use lockstep_ddl_exec::exec::{self, new_operation, stored_plan, unsupported_steps};
use lockstep_ddl_exec::guard::{self, Guardrail, Verdict};
use lockstep_ddl_exec::{
    prepare, source, DdlPipeline, Executor, Recovery, Refusals, RunOutcome, TargetDb,
};
use lockstep_ddl_plan::{Compensation, Plan, StepKind};
use lockstep_store::{AuditEntry, ListFilter, Operation, OperationId, OperationState, Store};
use serde::Serialize;

use crate::audit_cmd::StateDirArgs;
use crate::cli::GlobalArgs;
use crate::output::{print, OutputFormat, TableView};
use crate::{exit, AlreadyReported};

#[derive(Debug, Args)]
#[command(
    after_help = "The pipeline file is the sink's (see `lockstep sink --help`) with a source section:
  source:
    engine: postgres
    host: 127.0.0.1
    port: 5432
    user: lockstep
    password: ${env:SOURCE_PASSWORD}
    database: orders
    connectors: [orders-source]      # Debezium connectors capturing the tables
    topic_prefix: dbserver1          # the pipeline's tables are its topics' <prefix>.<schema>.<table>
    publication: dbz_publication     # optional
    signal_table: public.dbz_signal  # optional: plans with a re-snapshot need it
    lock_timeout_ms: 2000            # optional: source DDL lock_timeout, retries, waits
    ddl_retries: 5
    quiesce_timeout_ms: 30000        # longest drain of a quiesced table (its writes wait)
    guardrails:                      # optional: limits checked before a DDL starts
      max_lag_records: 10000         # records the sink has not applied yet (default 10000)
      max_lag_seconds: 300           # age of the oldest one (default 300)
      timeout_ms: 30000              # bound of each reading (default 30000)

`plan` reads the source catalog, classifies every statement and prints its plan; nothing
is changed. Anything unparseable, unknown, outside the pipeline or ambiguous refuses the whole
script (exit 1, every reason). `apply` records each plan in the state store before running
it, runs its steps one by one, and on failure undoes what ran before the source change, or
stops for `lockstep ddl resume` after it. This version runs target-first plans (ADD COLUMN
nullable or with a constant default, CREATE INDEX, widening, DROP NOT NULL, defaults, CHECK,
comments), source-only ones, and expand-contract plans without a re-snapshot (DROP COLUMN,
narrowing, SET NOT NULL: they wait until the sink passed the source change, which needs the
Connect cluster: --connect-url or lockstep.yaml). Plans needing a connector pause, a sink hold
or a snapshot are refused before anything runs.

Guardrails: before `apply` (and `approve`) records or runs anything, lockstep checks that
every source connector and its tasks are RUNNING, that the sink is within max_lag_records /
max_lag_seconds (topic end offsets against the sink's offsets in the target), and that no
Debezium incremental snapshot is in progress (the incremental_snapshot_* keys in the
connector's committed source offset). Any failing guardrail refuses the DDL (exit 1, every
reason and what to do, an audit record ddl.guardrails_refused); nothing is applied. The
connector and snapshot guardrails need the Connect cluster: without one they are reported
as not checked. `--force-guardrail NAME` (connector_running, sink_lag,
incremental_snapshot; repeatable) runs despite that one guardrail; the override is audited
(ddl.guardrails_overridden).

`apply --require-approval` records the plans as pending_approval and runs nothing (exit 0);
`approve ID` records who approved and runs it. `cancel ID` cancels an operation that has not
started or awaits approval at once; a running one stops at its next step boundary and what
ran is undone, like a failure before the point of no return. Past the point of no return
(the source change started) a cancel is refused: the plan can only be finished (`resume`).
A crash at any point is recovered by `resume` (or `lockstep serve` at start), which says per
operation whether it rolled forward or compensated. `lockstep serve` offers the same over
HTTP: /api/v1/ddl/... (see /openapi.json).

Examples:
  lockstep ddl plan  --pipeline orders.yaml --sql 'ALTER TABLE orders ADD COLUMN note text'
  lockstep ddl apply --pipeline orders.yaml --file change.sql
  lockstep ddl apply --pipeline orders.yaml --file change.sql --require-approval
  lockstep ddl apply --pipeline orders.yaml --file change.sql --force-guardrail sink_lag
  lockstep ddl approve 12        lockstep ddl cancel 12
  lockstep ddl status            lockstep ddl status 12          lockstep ddl history 12"
)]
pub struct DdlArgs {
    #[command(subcommand)]
    pub command: DdlCommand,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScriptArgs {
    /// The DDL, inline.
    #[arg(long, value_name = "SQL")]
    pub sql: Option<String>,
    /// A file holding the DDL script.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Overriding guardrails (checked before a DDL starts).
#[derive(Debug, Args)]
pub struct GuardrailArgs {
    /// Run although this guardrail refuses (connector_running, sink_lag,
    /// incremental_snapshot); repeatable. The override is recorded in the audit log.
    #[arg(long = "force-guardrail", value_name = "NAME", value_parser = parse_guardrail)]
    pub force: Vec<Guardrail>,
}

fn parse_guardrail(s: &str) -> Result<Guardrail, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum DdlCommand {
    /// Classify and plan a script against the live source catalog; changes nothing.
    Plan {
        /// The pipeline file (sink pipeline plus a source section).
        #[arg(long, value_name = "FILE")]
        pipeline: PathBuf,
        #[command(flatten)]
        script: ScriptArgs,
    },
    /// Plan, record and run a script, one operation per statement.
    Apply {
        #[arg(long, value_name = "FILE")]
        pipeline: PathBuf,
        #[command(flatten)]
        script: ScriptArgs,
        #[command(flatten)]
        state: StateDirArgs,
        /// Who asks (recorded in the audit log); default $USER.
        #[arg(long, env = "LOCKSTEP_ACTOR")]
        actor: Option<String>,
        /// Record the plans as pending_approval and run nothing; `lockstep ddl approve ID`
        /// runs one (`lockstep ddl cancel ID` drops it).
        #[arg(long)]
        require_approval: bool,
        #[command(flatten)]
        guardrails: GuardrailArgs,
    },
    /// Approve an operation recorded with --require-approval (the approver is recorded) and
    /// run it, after any other unfinished operation.
    Approve {
        id: OperationId,
        #[command(flatten)]
        state: StateDirArgs,
        /// Who approves (recorded in the store and the audit log); default $USER.
        #[arg(long, env = "LOCKSTEP_ACTOR")]
        actor: Option<String>,
        #[command(flatten)]
        guardrails: GuardrailArgs,
    },
    /// Cancel an operation: at once when it has not started or awaits approval; at its next
    /// step boundary (what ran is undone) when it runs. Refused once it is finished or past
    /// its point of no return.
    Cancel {
        id: OperationId,
        #[command(flatten)]
        state: StateDirArgs,
        #[arg(long, env = "LOCKSTEP_ACTOR")]
        actor: Option<String>,
    },
    /// Finish or compensate DDL operations a crash left unfinished.
    Resume {
        #[command(flatten)]
        state: StateDirArgs,
        #[arg(long, env = "LOCKSTEP_ACTOR")]
        actor: Option<String>,
    },
    /// DDL operations (newest first), or one operation's steps.
    Status {
        id: Option<OperationId>,
        #[command(flatten)]
        state: StateDirArgs,
    },
    /// One operation's audit records.
    History {
        id: OperationId,
        #[command(flatten)]
        state: StateDirArgs,
    },
}

pub async fn run(global: &GlobalArgs, args: DdlArgs) -> anyhow::Result<u8> {
    // A test hook's bad value is an error at start, never ignored.
    lockstep_ddl_exec::failpoint::from_env()?;
    match args.command {
        DdlCommand::Plan { pipeline, script } => plan(global.output, &pipeline, &script).await,
        DdlCommand::Apply {
            pipeline,
            script,
            state,
            actor,
            require_approval,
            guardrails,
        } => {
            apply(
                global,
                &pipeline,
                &script,
                &state,
                actor,
                require_approval,
                &guardrails.force,
            )
            .await
        }
        DdlCommand::Approve {
            id,
            state,
            actor,
            guardrails,
        } => {
            let store = Store::open_existing(&state.db_path())?;
            let actor = actor_name(actor);
            let op = ddl_operation(&store, id)?;
            if let Some(refusal) = approval_refusal(&store, id)? {
                return Err(anyhow!(refusal));
            }
            // The pipeline may have changed since the plan was recorded: check it again.
            let stored = stored_plan(op.id, &op.plan)?;
            let pipeline = DdlPipeline::load(Path::new(&stored.pipeline)).with_context(|| {
                format!(
                    "operation {id} was planned against pipeline file {}, which is needed to run it",
                    stored.pipeline
                )
            })?;
            let connect = connect_client(global)?;
            let verdict = check_guardrails(
                &store,
                &pipeline,
                &stored.pipeline,
                connect.as_ref(),
                &guardrails.force,
                &actor,
            )
            .await?;
            if !verdict.passed() {
                return refuse(global.output, &guardrail_refusals(&verdict));
            }
            store.approve(id, &actor)?;
            eprintln!("operation {id} approved by {actor}; running it");
            let mut view = ApplyView::default();
            let ok = resume_all(&store, &actor, connect.as_ref(), &mut view).await?;
            print(global.output, &view)?;
            if ok {
                Ok(exit::OK)
            } else {
                eprintln!("error: the DDL did not complete; see the steps above and `lockstep ddl status`");
                Err(AlreadyReported(exit::FAILED).into())
            }
        }
        DdlCommand::Cancel { id, state, actor } => {
            let store = Store::open_existing(&state.db_path())?;
            let actor = actor_name(actor);
            let op = ddl_operation(&store, id)?;
            if let Some(refusal) = exec::cancel_refusal(&op) {
                return Err(anyhow!(refusal));
            }
            let now = store.request_cancel(id, &actor)?;
            print(global.output, &OperationView::from_op(&store.get(id)?))?;
            eprintln!("{}", cancel_message(id, now));
            Ok(exit::OK)
        }
        DdlCommand::Resume { state, actor } => {
            let store = Store::open_dir(&state.state_dir)?;
            let actor = actor_name(actor);
            let mut view = ApplyView::default();
            let connect = connect_client(global)?;
            let ok = resume_all(&store, &actor, connect.as_ref(), &mut view).await?;
            print(global.output, &view)?;
            Ok(if ok { exit::OK } else { exit::FAILED })
        }
        DdlCommand::Status { id, state } => {
            let store = Store::open_existing(&state.db_path())?;
            match id {
                Some(id) => {
                    let op = store.get(id)?;
                    print(global.output, &OperationView::from_op(&op))?;
                }
                None => {
                    let ops = store.list(&ListFilter {
                        kind: Some(exec::KIND.into()),
                        ..Default::default()
                    })?;
                    print(global.output, &ListView(ops))?;
                }
            }
            Ok(exit::OK)
        }
        DdlCommand::History { id, state } => {
            let store = Store::open_existing(&state.db_path())?;
            let records = store.history(id)?;
            print(global.output, &HistoryView(records))?;
            Ok(exit::OK)
        }
    }
}

/// What a cancel request did, for people.
pub(crate) fn cancel_message(id: OperationId, now: OperationState) -> String {
    match now {
        OperationState::Cancelled => format!("operation {id} cancelled; none of its steps ran"),
        _ => format!(
            "operation {id} is running: cancel requested; it stops at its next step boundary and what ran is undone (`lockstep ddl status {id}` shows when). If no process runs it any more (a crash), `lockstep ddl resume` or `lockstep serve` finishes the cancel"
        ),
    }
}

/// Why operation `id` may not be approved yet: an earlier DDL operation still awaits its
/// approval. Statements are planned in order (a later one may rely on an earlier one), so
/// they are approved, and run, in order.
pub(crate) fn approval_refusal(store: &Store, id: OperationId) -> anyhow::Result<Option<String>> {
    let earlier = store
        .list(&ListFilter {
            kind: Some(exec::KIND.into()),
            state: Some(OperationState::PendingApproval),
            ..Default::default()
        })?
        .into_iter()
        .map(|o| o.id)
        .filter(|o| *o < id)
        .min();
    Ok(earlier.map(|e| {
        format!(
            "operation {e}, recorded before {id}, still awaits approval: operations run in the order they were planned. Approve {e} first, or cancel it"
        )
    }))
}

/// A DDL operation of the store, or an error saying there is none.
fn ddl_operation(store: &Store, id: OperationId) -> anyhow::Result<Operation> {
    let op = store.get(id)?;
    if op.kind != exec::KIND {
        return Err(anyhow!(
            "operation {id} is a {} operation, not a DDL one: `lockstep ddl status` lists DDL operations",
            op.kind
        ));
    }
    Ok(op)
}

pub(crate) fn actor_name(actor: Option<String>) -> String {
    actor
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "lockstep".into())
}

fn read_script(script: &ScriptArgs) -> anyhow::Result<String> {
    match (&script.sql, &script.file) {
        (Some(sql), _) => Ok(sql.clone()),
        (None, Some(path)) => {
            let len = std::fs::metadata(path)
                .with_context(|| format!("cannot read the DDL file {}", path.display()))?
                .len();
            let max = lockstep_ddl::MAX_SCRIPT_BYTES as u64;
            if len > max {
                return Err(anyhow!(
                    "the DDL file {} is {len} bytes; lockstep accepts at most {max}: split it. Nothing was applied",
                    path.display()
                ));
            }
            std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the DDL file {} as UTF-8 text", path.display())
            })
        }
        (None, None) => Err(anyhow!("give the DDL with --sql or --file")),
    }
}

/// Print a refusal (every reason) and exit 1.
fn refuse(format: OutputFormat, refusals: &Refusals) -> anyhow::Result<u8> {
    if format != OutputFormat::Table {
        print(format, &RefusedView { refused: refusals })?;
    }
    eprintln!(
        "error: the DDL was refused ({}); nothing was applied:",
        refusals.stage
    );
    for r in &refusals.reasons {
        eprintln!("  - {r}");
    }
    Err(AlreadyReported(exit::FAILED).into())
}

async fn plan(format: OutputFormat, pipeline: &Path, script: &ScriptArgs) -> anyhow::Result<u8> {
    let pipeline = DdlPipeline::load(pipeline)?;
    let script = read_script(script)?;
    match prepare(&pipeline, &script).await? {
        Ok(prepared) => {
            print(format, &PlansView(prepared.plans))?;
            Ok(exit::OK)
        }
        Err(refusals) => refuse(format, &refusals),
    }
}

async fn connect_dbs(pipeline: &DdlPipeline) -> anyhow::Result<(tokio_postgres::Client, TargetDb)> {
    let source = source::connect_source(&pipeline.source).await?;
    let target = TargetDb::connect(&pipeline.sink.target).await?;
    Ok((source, target))
}

/// The Kafka Connect cluster from --connect-url / lockstep.yaml, when one is configured.
fn connect_client(global: &GlobalArgs) -> anyhow::Result<Option<lockstep_connect::ConnectClient>> {
    match crate::target::connect_client(global) {
        Ok(c) => Ok(Some(c)),
        Err(e) if crate::target::is_unconfigured(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn apply(
    global: &GlobalArgs,
    pipeline_path: &Path,
    script: &ScriptArgs,
    state: &StateDirArgs,
    actor: Option<String>,
    require_approval: bool,
    force: &[Guardrail],
) -> anyhow::Result<u8> {
    let format = global.output;
    let actor = actor_name(actor);
    let pipeline = DdlPipeline::load(pipeline_path)?;
    let script = read_script(script)?;
    let connect = connect_client(global)?;
    let store = Store::open_dir(&state.state_dir)?;
    let mut view = ApplyView::default();
    // Unfinished operations first: a new plan must see the schema they leave.
    if !resume_all(&store, &actor, connect.as_ref(), &mut view).await? {
        print(format, &view)?;
        eprintln!(
            "error: an earlier DDL operation is unfinished (see above and `lockstep ddl status`); fix it and run `lockstep ddl resume` before applying more. Nothing new was applied"
        );
        return Err(AlreadyReported(exit::FAILED).into());
    }
    let prepared = match prepare(&pipeline, &script).await? {
        Ok(p) => p,
        Err(refusals) => return refuse(format, &refusals),
    };
    let mut unsupported: Vec<String> = unsupported_steps(
        &prepared.plans,
        exec::Capabilities::of(&pipeline, connect.is_some()),
    )
    .iter()
    .map(|e| e.to_string())
    .collect();
    if unsupported.is_empty() {
        // A snapshot the connector would not read is refused before anything runs.
        unsupported =
            lockstep_ddl_exec::tables::signal_refusals(&prepared.plans, connect.as_ref()).await;
    }
    if !unsupported.is_empty() {
        return refuse(
            format,
            &Refusals {
                stage: "execute",
                reasons: unsupported,
            },
        );
    }
    let key = pipeline_key(pipeline_path);
    let verdict =
        check_guardrails(&store, &pipeline, &key, connect.as_ref(), force, &actor).await?;
    if !verdict.passed() {
        return refuse(format, &guardrail_refusals(&verdict));
    }
    let ids = record_operations(&store, &key, &prepared.plans, &actor, require_approval)?;
    if require_approval {
        for id in &ids {
            view.operations
                .push(OperationView::from_op(&store.get(*id)?));
        }
        print(format, &view)?;
        for id in &ids {
            eprintln!(
                "operation {id} awaits approval; nothing ran. Approve and run it: `lockstep ddl approve {id}`; drop it: `lockstep ddl cancel {id}`"
            );
        }
        return Ok(exit::OK);
    }
    let ok = run_operations(&store, &pipeline, connect, &ids, &actor, &mut view).await?;
    print(format, &view)?;
    if ok {
        Ok(exit::OK)
    } else {
        eprintln!("error: the DDL did not complete; see the steps above and `lockstep ddl status`");
        Err(AlreadyReported(exit::FAILED).into())
    }
}

/// Observe the pipeline and judge the guardrails (`lockstep_ddl_exec::guard`). A refusal,
/// and a refusal overridden with --force-guardrail, are audit records
/// (`ddl.guardrails_refused`, `ddl.guardrails_overridden`); what could not be checked is
/// printed on stderr.
pub(crate) async fn check_guardrails(
    store: &Store,
    pipeline: &DdlPipeline,
    pipeline_key: &str,
    connect: Option<&lockstep_connect::ConnectClient>,
    force: &[Guardrail],
    actor: &str,
) -> anyhow::Result<Verdict> {
    let started = std::time::Instant::now();
    let facts = guard::observe(pipeline, connect).await;
    let limits = pipeline.source.guardrails.unwrap_or_default();
    let verdict = guard::evaluate(&facts, &limits, force);
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "guardrails observed"
    );
    for (g, why) in &verdict.unchecked {
        eprintln!("warning: guardrail {g} not checked: {why}");
    }
    for r in &verdict.overridden {
        eprintln!("warning: guardrail overridden by {actor} (--force-guardrail): {r}");
    }
    let action = if !verdict.passed() {
        Some("ddl.guardrails_refused")
    } else if !verdict.overridden.is_empty() {
        Some("ddl.guardrails_overridden")
    } else {
        None
    };
    if let Some(action) = action {
        store.append_audit(&AuditEntry::new(
            actor,
            action,
            pipeline.sink.name.clone(),
            serde_json::json!({
                "pipeline": pipeline_key,
                "refusals": verdict.refusals,
                "overridden": verdict.overridden,
                "forced": force,
                "unchecked": verdict.unchecked,
                "limits": limits,
                "facts": facts,
            }),
        ))?;
    }
    Ok(verdict)
}

/// A guardrail verdict's refusals as the DDL's refusal (stage `guardrails`).
pub(crate) fn guardrail_refusals(verdict: &Verdict) -> Refusals {
    Refusals {
        stage: "guardrails",
        reasons: verdict.refusals.iter().map(ToString::to_string).collect(),
    }
}

/// How an operation names its pipeline file in the store: the canonical path, so that a
/// resume from another directory finds it.
pub(crate) fn pipeline_key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Record one operation per plan (all steps pending) before any step runs.
pub(crate) fn record_operations(
    store: &Store,
    pipeline_key: &str,
    plans: &[Plan],
    actor: &str,
    require_approval: bool,
) -> anyhow::Result<Vec<OperationId>> {
    let mut ids = Vec::new();
    for p in plans {
        let mut new = new_operation(pipeline_key, p, actor)?;
        new.require_approval = require_approval;
        ids.push(store.create_operation(&new)?);
    }
    Ok(ids)
}

/// Run recorded operations in order; a statement after one that did not succeed does not
/// run (it is cancelled). False when one did not succeed.
pub(crate) async fn run_operations(
    store: &Store,
    pipeline: &DdlPipeline,
    connect: Option<lockstep_connect::ConnectClient>,
    ids: &[OperationId],
    actor: &str,
    view: &mut ApplyView,
) -> anyhow::Result<bool> {
    let (mut source, mut target) = connect_dbs(pipeline).await?;
    let mut ok = true;
    let mut executor = Executor {
        store,
        pipeline,
        connect,
        source: &mut source,
        target: &mut target,
        database: pipeline.source.database.clone(),
        actor: actor.to_string(),
        recoveries: Vec::new(),
        quiesce: Default::default(),
    };
    for id in ids {
        if !ok {
            // A statement after a failed one does not run.
            if matches!(
                store.get(*id)?.state,
                OperationState::Approved | OperationState::PendingApproval
            ) {
                store.request_cancel(*id, actor)?;
            }
            view.operations
                .push(OperationView::from_op(&store.get(*id)?));
            continue;
        }
        let outcome = executor.run(*id).await?;
        ok = outcome == RunOutcome::Succeeded;
        let mut op_view = OperationView::from_op(&store.get(*id)?);
        op_view.outcome = Some(outcome);
        view.operations.push(op_view);
    }
    view.recoveries.append(&mut executor.recoveries);
    Ok(ok)
}

/// Run every unfinished DDL operation to its end, oldest first. False when one did not
/// succeed or compensate.
pub(crate) async fn resume_all(
    store: &Store,
    actor: &str,
    connect: Option<&lockstep_connect::ConnectClient>,
    view: &mut ApplyView,
) -> anyhow::Result<bool> {
    let mut ok = true;
    let mut ops: Vec<Operation> = store
        .unfinished_operations()?
        .into_iter()
        .filter(|o| o.kind == exec::KIND)
        .collect();
    ops.sort_by_key(|o| o.id);
    for op in ops {
        let stored = stored_plan(op.id, &op.plan)?;
        let pipeline = DdlPipeline::load(Path::new(&stored.pipeline)).with_context(|| {
            format!(
                "operation {} ran against pipeline file {}, which is needed to resume it",
                op.id, stored.pipeline
            )
        })?;
        let (mut source, mut target) = connect_dbs(&pipeline).await?;
        let mut executor = Executor {
            store,
            pipeline: &pipeline,
            connect: connect.cloned(),
            source: &mut source,
            target: &mut target,
            database: pipeline.source.database.clone(),
            actor: actor.to_string(),
            recoveries: Vec::new(),
            quiesce: Default::default(),
        };
        let outcome = executor.run(op.id).await?;
        if !matches!(
            outcome,
            RunOutcome::Succeeded | RunOutcome::Compensated { .. } | RunOutcome::Cancelled { .. }
        ) {
            ok = false;
        }
        view.recoveries.append(&mut executor.recoveries);
        let mut v = OperationView::from_op(&store.get(op.id)?);
        v.outcome = Some(outcome);
        view.resumed.push(v);
    }
    Ok(ok)
}

// ---- views ------------------------------------------------------------------------------

fn step_what(kind: &StepKind) -> String {
    match kind {
        StepKind::AuditRecord { stage } => format!("{stage:?}").to_lowercase(),
        StepKind::SourceDdl {
            sql,
            lock_timeout_ms,
            retries,
            ..
        } => format!(
            "{} (lock_timeout {lock_timeout_ms} ms, {retries} retries)",
            lockstep_ddl::excerpt(sql)
        ),
        StepKind::TargetDdl { engine, sql } => format!("{engine}: {}", lockstep_ddl::excerpt(sql)),
        StepKind::VerifyTargetSchema { table, .. } => table.to_string(),
        StepKind::MarkSourcePosition { mark } => format!("record the source position as '{mark}'"),
        StepKind::WaitSinkApplied {
            mark,
            tables,
            timeout_ms,
        } => format!(
            "until the sink applied {} up to '{mark}' (at most {} s)",
            tables
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            timeout_ms / 1000
        ),
        StepKind::VerifyRows {
            source_table,
            target_table,
        } => format!("rows of {source_table} against {target_table}"),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn compensation_text(c: &Compensation) -> String {
    match c {
        Compensation::Nothing => "-".into(),
        Compensation::Undo { step } => format!("undo: {}", step_what(step)),
        Compensation::RollForward => "roll forward".into(),
        Compensation::Manual { reason } => format!("manual: {reason}"),
    }
}

#[derive(Serialize)]
struct PlansView(Vec<Plan>);

impl Serialize for RefusedView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Refused", 1)?;
        st.serialize_field("refused", self.refused)?;
        st.end()
    }
}

struct RefusedView<'a> {
    refused: &'a Refusals,
}

impl TableView for RefusedView<'_> {
    fn headers(&self) -> Vec<&'static str> {
        vec!["REASON"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.refused
            .reasons
            .iter()
            .map(|r| vec![r.clone()])
            .collect()
    }
}

impl TableView for PlansView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["STMT", "N", "STEP", "WHAT", "COMPENSATION"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for p in &self.0 {
            for s in &p.steps {
                rows.push(vec![
                    (p.statement + 1).to_string(),
                    s.n.to_string(),
                    exec::step_name(s),
                    step_what(&s.kind),
                    compensation_text(&s.compensation),
                ]);
            }
        }
        rows
    }

    fn footer(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.0 {
            out.push(format!(
                "statement {}: {} | risk {}: {} | strategy {} | point of no return: step {}",
                p.statement + 1,
                p.summary,
                p.risk.level,
                p.risk.reason,
                p.strategy,
                p.point_of_no_return
            ));
            for n in &p.notes {
                out.push(format!("  note: {n}"));
            }
        }
        out
    }
}

#[derive(Serialize)]
struct StepView {
    n: usize,
    kind: String,
    status: String,
    attempt: u32,
    detail: String,
}

#[derive(Serialize)]
pub(crate) struct OperationView {
    id: i64,
    subject: String,
    state: OperationState,
    requested_by: String,
    require_approval: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<lockstep_store::Stamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_request: Option<lockstep_store::Stamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<RunOutcome>,
    steps: Vec<StepView>,
}

impl OperationView {
    pub(crate) fn from_op(op: &Operation) -> Self {
        let plan = stored_plan(op.id, &op.plan).ok().map(|s| s.plan);
        let steps = op
            .steps
            .iter()
            .map(|s| {
                let state = serde_json::to_value(&s.state).unwrap_or_default();
                let detail = state
                    .get("output")
                    .or_else(|| state.get("error"))
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                StepView {
                    n: usize::try_from(s.index).unwrap_or(0) + 1,
                    kind: s.name.clone(),
                    status: s.state.status().to_string(),
                    attempt: s.attempt,
                    detail,
                }
            })
            .collect();
        Self {
            id: op.id.0,
            subject: op.subject.clone(),
            state: op.state,
            requested_by: op.requested_by.clone(),
            require_approval: op.require_approval,
            approval: op.approval.clone(),
            cancel_request: op.cancel_request.clone(),
            sql: plan.map(|p| p.sql),
            error: op.error.clone(),
            outcome: None,
            steps,
        }
    }
}

impl TableView for OperationView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["OP", "N", "STEP", "STATUS", "ATTEMPT", "DETAIL"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        op_rows(self)
    }

    fn footer(&self) -> Vec<String> {
        op_footer(self)
    }
}

fn op_rows(op: &OperationView) -> Vec<Vec<String>> {
    op.steps
        .iter()
        .map(|s| {
            vec![
                op.id.to_string(),
                s.n.to_string(),
                s.kind.clone(),
                s.status.clone(),
                s.attempt.to_string(),
                s.detail.clone(),
            ]
        })
        .collect()
}

fn op_footer(op: &OperationView) -> Vec<String> {
    let mut out = vec![format!(
        "operation {} on {}: {}{}",
        op.id,
        op.subject,
        op.state.as_str(),
        op.sql
            .as_ref()
            .map(|s| format!(" ({})", lockstep_ddl::excerpt(s)))
            .unwrap_or_default()
    )];
    if let Some(e) = &op.error {
        out.push(format!("  error: {e}"));
    }
    match &op.outcome {
        Some(RunOutcome::Stopped { step, reason }) => out.push(format!(
            "  stopped at step {step} after the point of no return: {reason}; fix the cause and run `lockstep ddl resume`"
        )),
        Some(RunOutcome::Compensated { reason }) => {
            out.push(format!("  compensated (everything that ran was undone): {reason}"))
        }
        Some(RunOutcome::Cancelled { reason }) => {
            out.push(format!("  {reason}; everything that ran was undone"))
        }
        _ => {}
    }
    if op.state == OperationState::PendingApproval {
        out.push(format!(
            "  awaits approval: `lockstep ddl approve {}` runs it, `lockstep ddl cancel {}` drops it",
            op.id, op.id
        ));
    }
    out
}

#[derive(Serialize, Default)]
pub(crate) struct ApplyView {
    /// Unfinished operations run to their end first.
    pub(crate) resumed: Vec<OperationView>,
    pub(crate) operations: Vec<OperationView>,
    /// What recovery decided about steps a crash interrupted.
    pub(crate) recoveries: Vec<Recovery>,
}

impl TableView for ApplyView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["OP", "N", "STEP", "STATUS", "ATTEMPT", "DETAIL"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.resumed
            .iter()
            .chain(&self.operations)
            .flat_map(op_rows)
            .collect()
    }

    fn footer(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .resumed
            .iter()
            .chain(&self.operations)
            .flat_map(op_footer)
            .collect();
        for r in &self.recoveries {
            out.push(format!(
                "recovered operation {} step {} ({}): {}",
                r.operation, r.step, r.kind, r.decision
            ));
        }
        if self.resumed.is_empty() && self.operations.is_empty() {
            out.push("no unfinished DDL operation".into());
        }
        out
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct ListView(Vec<lockstep_store::OperationSummary>);

impl TableView for ListView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["ID", "SUBJECT", "STATE", "STEPS", "BY", "REQUESTED"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|o| {
                vec![
                    o.id.to_string(),
                    o.subject.clone(),
                    o.state.as_str().to_string(),
                    format!("{}/{}", o.steps_done, o.steps),
                    o.requested_by.clone(),
                    o.requested_at.to_string(),
                ]
            })
            .collect()
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct HistoryView(Vec<lockstep_store::AuditRecord>);

impl TableView for HistoryView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["SEQ", "TIME", "ACTOR", "ACTION", "DETAILS"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|r| {
                let mut d = r.details.clone();
                if d.chars().count() > 100 {
                    d = d.chars().take(97).collect::<String>() + "...";
                }
                vec![
                    r.seq.to_string(),
                    r.ts.clone(),
                    r.actor.clone(),
                    r.action.clone(),
                    d,
                ]
            })
            .collect()
    }
}

// ---- lockstep pipeline check ------------------------------------------------------------

#[derive(Debug, Args)]
#[command(
    after_help = "Checks a pipeline file (the sink's file with a source section, see
`lockstep ddl --help`) against the live systems: the source database and the pipeline's tables
(each with a primary key), the target database and tables (with every source column), the
publication (holding every table), and, when a Connect cluster is given (--connect-url or
lockstep.yaml), each connector: RUNNING, same topic.prefix and publication, its
table.include.list capturing the tables, its replication slot present.
Exit 0 when nothing failed (warnings allowed), 1 otherwise."
)]
pub struct PipelineArgs {
    #[command(subcommand)]
    pub command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Validate a pipeline file against the live source, target, publication and connectors.
    Check {
        #[arg(long, value_name = "FILE")]
        pipeline: PathBuf,
    },
}

pub async fn run_pipeline(global: &GlobalArgs, args: PipelineArgs) -> anyhow::Result<u8> {
    match args.command {
        PipelineCommand::Check { pipeline } => {
            let pipeline = DdlPipeline::load(&pipeline)?;
            let connect = connect_client(global)?;
            let findings =
                lockstep_ddl_exec::check::check_pipeline(&pipeline, connect.as_ref()).await;
            let failed = findings
                .iter()
                .any(|f| f.status == lockstep_ddl_exec::check::Status::Fail);
            print(global.output, &FindingsView(findings))?;
            if failed {
                eprintln!(
                    "error: pipeline {} failed its checks (see FAIL above)",
                    pipeline.path.display()
                );
                return Err(AlreadyReported(exit::FAILED).into());
            }
            Ok(exit::OK)
        }
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct FindingsView(Vec<lockstep_ddl_exec::check::Finding>);

impl TableView for FindingsView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["CHECK", "STATUS", "DETAIL"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|f| {
                vec![
                    f.check.clone(),
                    format!("{:?}", f.status).to_uppercase(),
                    f.detail.clone(),
                ]
            })
            .collect()
    }
}
