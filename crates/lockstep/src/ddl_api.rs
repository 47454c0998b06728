//! The DDL service API of `lockstep serve` (`/api/v1/ddl/...`): plan (dry run), apply, list,
//! show, approve and cancel DDL operations over the same functions as `lockstep ddl`
//! (`ddl_cmd`), the durable executor and the state store. An apply is validated (pipeline,
//! classification, plan, executor support) before anything is recorded; a bad request gets a
//! 4xx with `{error, hint}` and nothing is recorded or applied. Accepted operations run in
//! background tasks, in the order accepted, side by side when their plans claim different
//! tables, change streams and publications (`crate::ddl_queue`); at service start the operations
//! a crash left unfinished are resumed or compensated first, alone, with one log line per
//! operation saying which.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lockstep_connect::ConnectClient;
use lockstep_ddl_exec::exec::{self, unsupported_steps};
use lockstep_ddl_exec::guard::Guardrail;
use lockstep_ddl_exec::{prepare, DdlPipeline, ExecError, Prepared};
use lockstep_store::{ListFilter, OperationId, OperationState, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::ddl_cmd::{self, ApplyView, OperationView};
use crate::ddl_queue::DdlQueue;
use lockstep_ddl_plan::schedule::Claims;

/// The largest request body the DDL API reads (a larger one is answered 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A pipeline the DDL API offers, by its name.
struct Offered {
    /// How operations name it in the store (the canonical path of its file).
    key: String,
    pipeline: DdlPipeline,
}

/// The DDL API's state: the store, the pipelines it offers, the Connect cluster.
#[derive(Clone)]
pub struct DdlService {
    store: Option<Arc<Store>>,
    pipelines: Arc<BTreeMap<String, Offered>>,
    connect: Option<ConnectClient>,
    /// Operations start in the order accepted, side by side when their plans' claims
    /// (tables, change stream, publication) allow (`lockstep_ddl_plan::schedule`).
    queue: Arc<DdlQueue>,
    actor: String,
}

impl DdlService {
    /// Load the pipeline files (each must have a `source:` section; names must be unique) and
    /// open the store: always when a pipeline is offered, otherwise only when it exists (to
    /// list and resume what is recorded there).
    pub fn new(
        files: &[PathBuf],
        state_dir: &std::path::Path,
        connect: Option<ConnectClient>,
    ) -> anyhow::Result<Self> {
        // A test hook's bad value is an error at start, never ignored.
        lockstep_ddl_exec::failpoint::from_env()?;
        let mut pipelines = BTreeMap::new();
        for path in files {
            let pipeline = DdlPipeline::load(path)?;
            let name = pipeline.sink.name.clone();
            if pipelines.contains_key(&name) {
                anyhow::bail!(
                    "{}: pipeline name '{name}' is offered to the DDL API by another file; names identify pipelines in requests and must be unique",
                    path.display()
                );
            }
            pipelines.insert(
                name,
                Offered {
                    key: ddl_cmd::pipeline_key(path),
                    pipeline,
                },
            );
        }
        let db = state_dir.join(lockstep_store::DB_FILE);
        let store = if !pipelines.is_empty() {
            Some(Arc::new(Store::open_dir(state_dir)?))
        } else if db.exists() {
            Some(Arc::new(Store::open_existing(&db)?))
        } else {
            None
        };
        Ok(Self {
            store,
            pipelines: Arc::new(pipelines),
            connect,
            queue: Arc::new(DdlQueue::default()),
            actor: "lockstep-serve".into(),
        })
    }

    /// Resume or compensate, in the background, every DDL operation a crash left unfinished;
    /// one log line per operation says which. New applies wait behind it (409 meanwhile).
    pub fn resume_at_start(&self) -> Option<tokio::task::JoinHandle<()>> {
        let store = self.store.clone()?;
        let unfinished: Vec<_> = match store.unfinished_operations() {
            Ok(ops) => ops.into_iter().filter(|o| o.kind == exec::KIND).collect(),
            Err(e) => {
                tracing::error!("cannot list unfinished DDL operations: {e}");
                return None;
            }
        };
        if unfinished.is_empty() {
            return None;
        }
        for op in &unfinished {
            tracing::warn!(
                operation = op.id.0,
                state = op.state.as_str(),
                "DDL operation {} on {} was left {} by the last run: resuming it",
                op.id,
                op.subject,
                op.state
            );
        }
        let svc = self.clone();
        // Queued before the task starts: nothing accepted later overtakes the recovery.
        let ticket = self.queue.enqueue(Claims::everything());
        Some(tokio::spawn(async move {
            ticket.ready().await;
            let mut view = ApplyView::default();
            let result =
                ddl_cmd::resume_all(&store, &svc.actor, svc.connect.as_ref(), &mut view).await;
            for r in &view.recoveries {
                tracing::warn!(
                    operation = r.operation,
                    step = r.step,
                    "recovered step {} ({}): {}",
                    r.step,
                    r.kind,
                    r.decision
                );
            }
            for v in &view.resumed {
                let value = serde_json::to_value(v).unwrap_or_default();
                log_outcome(&value, true);
            }
            if let Err(e) = result {
                tracing::error!("resuming unfinished DDL operations failed: {e:#}; `lockstep ddl resume` retries");
            }
        }))
    }

    fn store(&self) -> Result<&Arc<Store>, Refusal> {
        self.store.as_ref().ok_or_else(|| {
            refusal(
                StatusCode::NOT_FOUND,
                "no DDL operation is recorded here: the service offers no DDL pipeline and its state store does not exist",
                "start `lockstep serve` with --ddl-pipeline FILE (or a --pipeline file with a source: section)",
            )
        })
    }

    fn offered(&self, name: &str) -> Result<&Offered, Refusal> {
        self.pipelines.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.pipelines.keys().map(String::as_str).collect();
            refusal(
                StatusCode::NOT_FOUND,
                format!("unknown pipeline '{name}': this service offers no pipeline of that name to the DDL API"),
                if known.is_empty() {
                    "start `lockstep serve` with --ddl-pipeline FILE".to_string()
                } else {
                    format!("use one of: {}", known.join(", "))
                },
            )
        })
    }
}

/// Log how an operation ended (one line per operation).
fn log_outcome(view: &serde_json::Value, restart: bool) {
    let when = if restart {
        "left unfinished by the last run"
    } else {
        "ran"
    };
    let id = view["id"].as_i64().unwrap_or_default();
    let state = view["state"].as_str().unwrap_or("unknown");
    let what = match view["outcome"]["outcome"].as_str() {
        Some("succeeded") if restart => "resumed, rolled forward to its end (succeeded)".into(),
        Some("succeeded") => "succeeded".to_string(),
        Some("compensated") => format!(
            "compensated (what ran was undone): {}",
            view["outcome"]["reason"].as_str().unwrap_or_default()
        ),
        Some("cancelled") => format!(
            "cancelled: {}",
            view["outcome"]["reason"].as_str().unwrap_or_default()
        ),
        Some("stopped") => format!(
            "stopped after the point of no return at step {}: {}; fix the cause, then `lockstep ddl resume`",
            view["outcome"]["step"],
            view["outcome"]["reason"].as_str().unwrap_or_default()
        ),
        Some("failed") => format!(
            "failed, not fully undone: {}",
            view["outcome"]["reason"].as_str().unwrap_or_default()
        ),
        _ => format!("now {state}"),
    };
    // After a restart every decision is logged where an operator sees it by default.
    if !restart && (state == "succeeded" || state == "cancelled") {
        tracing::info!(operation = id, "DDL operation {id} {when}: {what}");
    } else {
        tracing::warn!(operation = id, "DDL operation {id} {when}: {what}");
    }
}

/// Every error answer of the DDL API: what failed and what to do.
#[derive(Serialize, ToSchema)]
pub(crate) struct DdlApiError {
    error: String,
    hint: String,
    /// Every reason, when the script was refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

/// A 4xx / 5xx answer on its way out of a helper (boxed: a `Response` is large).
type Refusal = Box<Response>;

fn refusal(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Refusal {
    Box::new(api_error(status, error, hint))
}

/// A handler's answer: what its work returns, or the 4xx / 5xx a step of it refused with
/// (the handlers write each step as `step?`).
async fn answer(work: impl std::future::Future<Output = Result<Response, Refusal>>) -> Response {
    work.await.unwrap_or_else(|refusal| *refusal)
}

fn store_refusal(e: StoreError) -> Refusal {
    Box::new(store_error(e))
}

fn api_error(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Response {
    refused(status, error, hint, Vec::new())
}

fn refused(
    status: StatusCode,
    error: impl Into<String>,
    hint: impl Into<String>,
    reasons: Vec<String>,
) -> Response {
    (
        status,
        Json(DdlApiError {
            error: error.into(),
            hint: hint.into(),
            reasons,
        }),
    )
        .into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::OperationNotFound(id) => api_error(
            StatusCode::NOT_FOUND,
            format!("operation {id} does not exist"),
            "GET /api/v1/ddl/operations lists them",
        ),
        e @ (StoreError::IllegalOperation { .. } | StoreError::IllegalStep { .. }) => api_error(
            StatusCode::CONFLICT,
            e.to_string(),
            "GET the operation to see its state",
        ),
        e => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "check the state store",
        ),
    }
}

fn exec_error(e: ExecError) -> Response {
    match e {
        e @ (ExecError::Connect { .. }
        | ExecError::Catalog { .. }
        | ExecError::Sql { .. }
        | ExecError::Secret { .. }) => api_error(
            StatusCode::BAD_GATEWAY,
            e.to_string(),
            "the source database could not be read; nothing was applied",
        ),
        ExecError::Store(e) => store_error(e),
        e => api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
            "fix the pipeline file or the source; nothing was applied",
        ),
    }
}

/// The body as JSON of `T`, or the 4xx answer: 413 over [`MAX_BODY_BYTES`], 400 when it is
/// not JSON of the expected shape. An empty body is `{}`.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Refusal> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes; nothing was read or applied"),
                "split the script into smaller requests (one statement per request is fine)",
            )
        } else {
            refusal(
                rejection.status(),
                format!("cannot read the request body: {}", rejection.body_text()),
                "send a JSON body with Content-Type: application/json",
            )
        }
    })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        refusal(
            StatusCode::BAD_REQUEST,
            format!(
                "the request body is not the JSON this endpoint takes: {e}; nothing was applied"
            ),
            "see the request body schema in /openapi.json",
        )
    })
}

fn operation_id(path: Result<Path<i64>, PathRejection>) -> Result<OperationId, Refusal> {
    path.map(|Path(id)| OperationId(id)).map_err(|e| {
        refusal(
            StatusCode::BAD_REQUEST,
            format!("the operation id is not a number: {}", e.body_text()),
            "operation ids are the integers GET /api/v1/ddl/operations lists",
        )
    })
}

/// A dry run: classify and plan a script against the live source catalog.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanRequest {
    /// The pipeline's name (the `name` of its file), as the service offers it.
    pipeline: String,
    /// The DDL script (PostgreSQL).
    sql: String,
}

/// Plan and run a script, one operation per statement.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyRequest {
    pipeline: String,
    sql: String,
    /// Who asks (recorded in the store and the audit log); default `api`.
    #[serde(default)]
    actor: Option<String>,
    /// Record the operations as pending_approval and run nothing until approved.
    #[serde(default)]
    require_approval: bool,
    /// Guardrails to override deliberately (`connector_running`, `sink_lag`,
    /// `incremental_snapshot`); the override is recorded in the audit log.
    #[serde(default)]
    force_guardrails: Vec<String>,
}

/// Who approves (recorded in the store and the audit log; default `api`), and guardrails
/// to override deliberately.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveRequest {
    #[serde(default)]
    actor: Option<String>,
    /// Guardrails to override (`connector_running`, `sink_lag`, `incremental_snapshot`).
    #[serde(default)]
    force_guardrails: Vec<String>,
}

/// Parse guardrail names; 400 on an unknown one.
fn forced_guardrails(names: &[String]) -> Result<Vec<Guardrail>, Refusal> {
    names
        .iter()
        .map(|n| {
            n.parse::<Guardrail>().map_err(|e| {
                refusal(
                    StatusCode::BAD_REQUEST,
                    format!("{e}; nothing was applied"),
                    "force_guardrails takes guardrail names",
                )
            })
        })
        .collect()
}

/// Check the guardrails before anything is recorded or runs: a refusal is a 409 with every
/// reason (and an audit record).
async fn guardrails(
    svc: &DdlService,
    store: &Store,
    pipeline: &DdlPipeline,
    key: &str,
    force: &[Guardrail],
    actor: &str,
) -> Result<(), Refusal> {
    let verdict =
        ddl_cmd::check_guardrails(store, pipeline, key, svc.connect.as_ref(), force, actor)
            .await
            .map_err(|e| {
                refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("checking the guardrails failed: {e:#}; nothing was applied"),
                    "check the state store",
                )
            })?;
    if verdict.passed() {
        return Ok(());
    }
    Err(Box::new(refused(
        StatusCode::CONFLICT,
        "the pipeline's guardrails refuse a DDL now; nothing was recorded or applied",
        "fix every reason and send the request again, or override one deliberately with force_guardrails (audited)",
        ddl_cmd::guardrail_refusals(&verdict).reasons,
    )))
}

/// Who approves or cancels (recorded in the store and the audit log); default `api`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActorRequest {
    #[serde(default)]
    actor: Option<String>,
}

fn actor_of(actor: Option<String>) -> String {
    actor
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "api".into())
}

/// Classify, plan and check that the executor can run every step; 4xx answers otherwise.
async fn prepare_runnable(
    offered: &Offered,
    sql: &str,
    svc: &DdlService,
    strict: bool,
) -> Result<(Prepared, Vec<String>), Refusal> {
    let prepared = match prepare(&offered.pipeline, sql).await {
        Err(e) => return Err(Box::new(exec_error(e))),
        Ok(Err(refusals)) => {
            return Err(Box::new(refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the DDL was refused ({}); nothing was applied",
                    refusals.stage
                ),
                "fix every reason and send the script again; `POST /api/v1/ddl/plan` checks without applying",
                refusals.reasons,
            )))
        }
        Ok(Ok(p)) => p,
    };
    let mut unsupported: Vec<String> = unsupported_steps(
        &prepared.plans,
        exec::Capabilities::of(&offered.pipeline, svc.connect.is_some()),
    )
    .iter()
    .map(ToString::to_string)
    .collect();
    if unsupported.is_empty() {
        // A snapshot the connector would not read is refused before anything runs.
        unsupported =
            lockstep_ddl_exec::tables::signal_refusals(&prepared.plans, svc.connect.as_ref()).await;
    }
    if strict && !unsupported.is_empty() {
        return Err(Box::new(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the plan needs steps this executor cannot run here; nothing was applied",
            "see the reasons; POST /api/v1/ddl/plan shows the plan",
            unsupported,
        )));
    }
    Ok((prepared, unsupported))
}

/// Classify and plan a script against the live source catalog; changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/ddl/plan",
    request_body = PlanRequest,
    responses(
        (status = 200, description = "The plans, one per statement (`plans`), and `unsupported`: steps this service cannot run yet (an apply would be refused)"),
        (status = 400, body = DdlApiError, description = "The body is not a plan request"),
        (status = 404, body = DdlApiError, description = "Unknown pipeline"),
        (status = 413, body = DdlApiError, description = "The body is larger than 64 KiB"),
        (status = 422, body = DdlApiError, description = "The script was refused (unparseable, a second statement that is not DDL, a table outside the pipeline...): every reason"),
        (status = 502, body = DdlApiError, description = "The source database could not be read")
    )
)]
pub(crate) async fn plan(
    State(svc): State<DdlService>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(async {
        let req: PlanRequest = parse_body(body)?;
        let offered = svc.offered(&req.pipeline)?;
        let (prepared, unsupported) = prepare_runnable(offered, &req.sql, &svc, false).await?;
        Ok(Json(json!({
            "pipeline": req.pipeline,
            "plans": prepared.plans,
            "unsupported": unsupported,
        }))
        .into_response())
    })
    .await
}

/// Plan, record and run a script (one operation per statement) in the background.
#[utoipa::path(
    post,
    path = "/api/v1/ddl/operations",
    request_body = ApplyRequest,
    responses(
        (status = 202, description = "Recorded: `operations` (id, state, url each); they run in the background unless `require_approval`, then they wait for POST .../{id}/approve"),
        (status = 400, body = DdlApiError, description = "The body is not an apply request"),
        (status = 404, body = DdlApiError, description = "Unknown pipeline"),
        (status = 409, body = DdlApiError, description = "An unfinished DDL operation works on a table, change stream or publication this script needs, or a guardrail refuses (connector not RUNNING, sink lag over the pipeline's limits, incremental snapshot running): every reason; nothing recorded"),
        (status = 413, body = DdlApiError, description = "The body is larger than 64 KiB"),
        (status = 422, body = DdlApiError, description = "The script was refused, or its plan needs steps this service cannot run: every reason; nothing recorded"),
        (status = 502, body = DdlApiError, description = "The source database could not be read")
    )
)]
pub(crate) async fn apply(
    State(svc): State<DdlService>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(async {
        let req: ApplyRequest = parse_body(body)?;
        let offered = svc.offered(&req.pipeline)?;
        let store = svc.store()?.clone();
        let force = forced_guardrails(&req.force_guardrails)?;
        let (prepared, _) = prepare_runnable(offered, &req.sql, &svc, true).await?;
        // A new plan must see the schema the earlier operations leave: refused while an
        // unfinished one works on what it needs; accepted (and run side by side) otherwise.
        let claims = Claims::of_plans(&offered.key, &prepared.plans);
        let unfinished = store.unfinished_operations().map_err(store_refusal)?;
        for op in unfinished.iter().filter(|o| o.kind == exec::KIND) {
            let conflict = match stored_claims(&store, &[op.id]) {
                Ok((theirs, _)) => claims.conflict(&theirs).map(|r| r.to_string()),
                Err(e) => Some(format!("its plan, which cannot be read ({e:#})")),
            };
            if let Some(resource) = conflict {
                return Err(refusal(
                    StatusCode::CONFLICT,
                    format!(
                        "DDL operation {} on {} is unfinished ({}) and works on {resource}; nothing new was recorded",
                        op.id, op.subject, op.state
                    ),
                    format!(
                        "wait for it (GET /api/v1/ddl/operations/{}) or cancel it, then send the script again",
                        op.id
                    ),
                ));
            }
        }
        let actor = actor_of(req.actor);
        guardrails(&svc, &store, &offered.pipeline, &offered.key, &force, &actor).await?;
        let ids = ddl_cmd::record_operations(
            &store,
            &offered.key,
            &prepared.plans,
            &actor,
            req.require_approval,
        )
        .map_err(|e| {
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot record the operations: {e:#}"),
                "check the state store; nothing ran",
            )
        })?;
        if !req.require_approval {
            spawn_run(&svc, store.clone(), ids.clone(), actor);
        }
        let operations: Vec<_> = ids
            .iter()
            .map(|id| {
                let state = store
                    .get(*id)
                    .map(|o| o.state)
                    .unwrap_or(OperationState::Approved);
                json!({"id": id.0, "state": state, "url": format!("/api/v1/ddl/operations/{id}")})
            })
            .collect();
        let hint = if req.require_approval {
            "awaiting approval: POST /api/v1/ddl/operations/{id}/approve runs one, .../cancel drops it"
        } else {
            "running in the background: GET /api/v1/ddl/operations/{id} shows its steps"
        };
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"operations": operations, "hint": hint})),
        )
            .into_response())
    })
    .await
}

/// The claims of recorded operations (one script, run in order), from their stored plans,
/// and the pipeline file they were recorded with.
fn stored_claims(store: &Store, ids: &[OperationId]) -> anyhow::Result<(Claims, String)> {
    let mut plans = Vec::new();
    let mut pipeline = String::new();
    for id in ids {
        let op = store.get(*id)?;
        let stored = exec::stored_plan(op.id, &op.plan)?;
        pipeline = stored.pipeline;
        plans.push(stored.plan);
    }
    Ok((Claims::of_plans(&pipeline, &plans), pipeline))
}

/// Run accepted operations in the background: queued now, started once nothing running or
/// accepted before them needs the same tables, change stream or publication.
fn spawn_run(svc: &DdlService, store: Arc<Store>, ids: Vec<OperationId>, actor: String) {
    let (claims, pipeline_file) = match stored_claims(&store, &ids) {
        Ok((claims, file)) => (claims, Ok(file)),
        // Unreadable plans cannot be scheduled beside others: run them alone.
        Err(e) => {
            tracing::warn!("reading the plans of DDL operations {ids:?}: {e:#}; they run alone");
            (Claims::everything(), Err(e))
        }
    };
    let ticket = svc.queue.enqueue(claims);
    let svc = svc.clone();
    tokio::spawn(async move {
        ticket.ready().await;
        // Each operation runs against the pipeline file it was recorded with.
        let Some(first) = ids.first() else { return };
        let pipeline = match pipeline_file
            .and_then(|file| Ok(DdlPipeline::load(std::path::Path::new(&file))?))
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(
                    operation = first.0,
                    "cannot run DDL operation {first}: {e:#}; `lockstep ddl resume` retries"
                );
                return;
            }
        };
        let mut view = ApplyView::default();
        let result = ddl_cmd::run_operations(
            &store,
            &pipeline,
            svc.connect.clone(),
            &ids,
            &actor,
            &mut view,
        )
        .await;
        for v in &view.operations {
            log_outcome(&serde_json::to_value(v).unwrap_or_default(), false);
        }
        if let Err(e) = result {
            tracing::error!("running DDL operations {ids:?} failed: {e:#}; `lockstep ddl resume` (or a restart of the service) resumes them");
        }
    });
}

/// DDL operations, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/ddl/operations",
    responses((status = 200, description = "Every DDL operation: id, subject, state, steps done, who asked, when"))
)]
pub(crate) async fn list(State(svc): State<DdlService>) -> Response {
    let Some(store) = &svc.store else {
        return Json(json!([])).into_response();
    };
    match store.list(&ListFilter {
        kind: Some(exec::KIND.into()),
        ..Default::default()
    }) {
        Ok(ops) => Json(ops).into_response(),
        Err(e) => store_error(e),
    }
}

/// A DDL operation of the store, or the 404.
fn ddl_op(svc: &DdlService, id: OperationId) -> Result<lockstep_store::Operation, Refusal> {
    let store = svc.store()?;
    let op = store.get(id).map_err(store_refusal)?;
    if op.kind != exec::KIND {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            format!("operation {id} is not a DDL operation"),
            "GET /api/v1/ddl/operations lists them",
        ));
    }
    Ok(op)
}

/// One operation: state, who asked / approved / cancelled, its steps.
#[utoipa::path(
    get,
    path = "/api/v1/ddl/operations/{id}",
    params(("id" = i64, Path, description = "The operation id")),
    responses(
        (status = 200, description = "The operation with its steps"),
        (status = 404, body = DdlApiError, description = "No DDL operation with that id")
    )
)]
pub(crate) async fn show(
    State(svc): State<DdlService>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    answer(async {
        let op = ddl_op(&svc, operation_id(id)?)?;
        Ok(Json(OperationView::from_op(&op)).into_response())
    })
    .await
}

/// Approve an operation recorded with `require_approval` and run it in the background.
#[utoipa::path(
    post,
    path = "/api/v1/ddl/operations/{id}/approve",
    params(("id" = i64, Path, description = "The operation id")),
    request_body(content = ApproveRequest, description = "Who approves, guardrails to override (optional)"),
    responses(
        (status = 202, description = "Approved (the approver is recorded); it runs in the background"),
        (status = 400, body = DdlApiError, description = "The body is not an approve request (or names an unknown guardrail)"),
        (status = 404, body = DdlApiError, description = "No DDL operation with that id"),
        (status = 409, body = DdlApiError, description = "It does not await approval, an earlier operation still does (they run in order), or a guardrail refuses: every reason; it stays pending_approval")
    )
)]
pub(crate) async fn approve(
    State(svc): State<DdlService>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(async {
        let id = operation_id(id)?;
        let req: ApproveRequest = parse_body(body)?;
        let force = forced_guardrails(&req.force_guardrails)?;
        let op = ddl_op(&svc, id)?;
        if op.state != OperationState::PendingApproval {
            return Err(refusal(
                StatusCode::CONFLICT,
                format!(
                    "operation {id} is {}, not pending_approval: there is nothing to approve",
                    op.state
                ),
                "only operations recorded with require_approval wait for an approval",
            ));
        }
        let store = svc.store()?.clone();
        match ddl_cmd::approval_refusal(&store, id) {
            Ok(None) => {}
            Ok(Some(reason)) => {
                return Err(refusal(
                    StatusCode::CONFLICT,
                    reason,
                    "GET /api/v1/ddl/operations lists what awaits approval",
                ))
            }
            Err(e) => {
                return Err(refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{e:#}"),
                    "check the state store",
                ))
            }
        }
        let actor = actor_of(req.actor);
        // The pipeline may have changed since the plan was recorded: check it again.
        let (pipeline, key) = exec::stored_plan(op.id, &op.plan)
            .map_err(anyhow::Error::from)
            .and_then(|stored| {
                Ok((
                    DdlPipeline::load(std::path::Path::new(&stored.pipeline))?,
                    stored.pipeline,
                ))
            })
            .map_err(|e| {
                refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the pipeline of operation {id} cannot be loaded: {e:#}"),
                    "restore the pipeline file the operation was planned with, or cancel it",
                )
            })?;
        guardrails(&svc, &store, &pipeline, &key, &force, &actor).await?;
        store.approve(id, &actor).map_err(store_refusal)?;
        spawn_run(&svc, store, vec![id], actor.clone());
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "id": id.0,
                "state": OperationState::Approved,
                "approved_by": actor,
                "hint": format!("running in the background: GET /api/v1/ddl/operations/{id} shows its steps"),
            })),
        )
            .into_response())
    })
    .await
}

/// Cancel an operation: at once before it runs, at its next step boundary while it runs.
#[utoipa::path(
    post,
    path = "/api/v1/ddl/operations/{id}/cancel",
    params(("id" = i64, Path, description = "The operation id")),
    request_body(content = ActorRequest, description = "Who cancels (optional)"),
    responses(
        (status = 200, description = "Cancelled (it had not started or awaited approval)"),
        (status = 202, description = "Cancelling: it stops at its next step boundary and what ran is undone"),
        (status = 404, body = DdlApiError, description = "No DDL operation with that id"),
        (status = 409, body = DdlApiError, description = "It is finished, already cancelling, or past its point of no return (it can only be finished)")
    )
)]
pub(crate) async fn cancel(
    State(svc): State<DdlService>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(async {
        let id = operation_id(id)?;
        let req: ActorRequest = parse_body(body)?;
        let op = ddl_op(&svc, id)?;
        if let Some(reason) = exec::cancel_refusal(&op) {
            return Err(refusal(
                StatusCode::CONFLICT,
                reason,
                format!("GET /api/v1/ddl/operations/{id} shows its state"),
            ));
        }
        let store = svc.store()?;
        let actor = actor_of(req.actor);
        let state = store.request_cancel(id, &actor).map_err(store_refusal)?;
        Ok((
            if state == OperationState::Cancelled {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            },
            Json(json!({
                "id": id.0,
                "state": state,
                "cancel_requested_by": actor,
                "hint": ddl_cmd::cancel_message(id, state),
            })),
        )
            .into_response())
    })
    .await
}

/// The DDL routes, with the body size limit.
pub fn routes(svc: DdlService) -> Router {
    Router::new()
        .route("/api/v1/ddl/plan", post(plan))
        .route("/api/v1/ddl/operations", post(apply).get(list))
        .route("/api/v1/ddl/operations/{id}", get(show))
        .route("/api/v1/ddl/operations/{id}/approve", post(approve))
        .route("/api/v1/ddl/operations/{id}/cancel", post(cancel))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(svc)
}

#[cfg(test)]
mod tests {
    //! The DDL API on a bound port, against the stack's PostgreSQL (source and target
    //! databases), on tables of its own.

    use super::*;
    use lockstep_ddl_exec::exec::new_operation;
    use lockstep_e2e::{unique_name, with_cleanup, Stack};
    use lockstep_store::{StepOutcome, StepStatus};
    use serde_json::Value;

    fn pipeline_yaml(stack: &Stack, prefix: &str, table: &str) -> String {
        format!(
            "name: {prefix}
kafka: {{bootstrap_servers: '{kafka}', topics: [{prefix}.public.{table}]}}
target: {{engine: postgres, host: {host}, port: {port}, user: {user}, database: {target}, schema: public}}
source:
  engine: postgres
  host: {host}
  port: {port}
  user: {user}
  database: {source}
  connectors: [{prefix}]
  topic_prefix: {prefix}
",
            kafka = stack.kafka_bootstrap,
            host = stack.pg_host,
            port = stack.pg_port,
            user = stack.pg_user,
            source = stack.pg_source_db,
            target = stack.pg_target_db,
        )
    }

    /// The test's pipeline file in a temp dir (gone with the dir): (dir, file, state dir).
    fn pipeline_dir(
        stack: &Stack,
        prefix: &str,
        table: &str,
    ) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, pipeline_yaml(stack, prefix, table)).unwrap();
        let state_dir = dir.path().join("state");
        (dir, path, state_dir)
    }

    /// A service start over the pipeline file: waits for its resume of the unfinished operations.
    async fn restart_service(path: &std::path::Path, state_dir: &std::path::Path) {
        let svc = DdlService::new(&[path.to_path_buf()], state_dir, None).expect("service");
        svc.resume_at_start()
            .expect("a resume task")
            .await
            .expect("resume task");
    }

    async fn columns(client: &tokio_postgres::Client, table: &str) -> Vec<String> {
        client
            .query(
                "select column_name::text from information_schema.columns
                 where table_schema = 'public' and table_name = $1 order by ordinal_position",
                &[&table],
            )
            .await
            .expect("columns")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Source tables `<t>` (in the pipeline) and `<t>_other` (outside), target table `<t>`.
    async fn setup(stack: &Stack, table: &str) {
        let source = stack.pg_source().await.expect("source");
        let target = stack.pg(&stack.pg_target_db).await.expect("target");
        source
            .batch_execute(&format!(
                "create table {table} (id bigint primary key, amount numeric(10,2));
                 create table {table}_other (id bigint primary key);"
            ))
            .await
            .expect("source tables");
        target
            .batch_execute(&format!(
                "create table {table} (id bigint primary key, amount numeric(10,2))"
            ))
            .await
            .expect("target table");
    }

    async fn teardown(stack: &Stack, table: &str) {
        if let Ok(s) = stack.pg_source().await {
            let _ = s
                .batch_execute(&format!(
                    "drop table if exists {table}; drop table if exists {table}_other"
                ))
                .await;
        }
        if let Ok(t) = stack.pg(&stack.pg_target_db).await {
            let _ = t
                .batch_execute(&format!("drop table if exists {table}"))
                .await;
        }
    }

    /// Runs `test` with the stack, a unique prefix (the pipeline's name) and a table named
    /// like it (made by [`setup`]); the tables are dropped whatever happened.
    async fn on_own_tables<F, Fut>(what: &str, test: F)
    where
        F: FnOnce(Stack, String, String) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let stack = Stack::get();
        let prefix = unique_name(what).replace('_', "-");
        let table = prefix.replace('-', "_");
        setup(&stack, &table).await;
        let body = test(stack.clone(), prefix, table.clone());
        with_cleanup(body, async move { teardown(&stack, &table).await }).await;
    }

    /// Serve the DDL routes on a free port; the base URL.
    async fn serve(svc: DdlService) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, routes(svc)).await;
        });
        format!("http://{addr}")
    }

    async fn post(base: &str, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get_json(base: &str, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{base}{path}"))
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Poll an operation until it is finished (or 120 s passed); its last view.
    async fn wait_finished(base: &str, id: i64) -> Value {
        let started = std::time::Instant::now();
        loop {
            let (status, op) = get_json(base, &format!("/api/v1/ddl/operations/{id}")).await;
            assert_eq!(status, 200, "{op}");
            let state = op["state"].as_str().unwrap_or_default().to_string();
            if OperationState::parse(&state).is_some_and(OperationState::is_final)
                || started.elapsed() > std::time::Duration::from_secs(120)
            {
                println!("operation {id} {state} after {:?}", started.elapsed());
                return op;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_guardrail_refuses_with_409_and_nothing_recorded_and_force_guardrails_overrides() {
        on_own_tables("ddlapi-guard", |stack, prefix, table| async move {
            // The pipeline's connector (named like the prefix) does not exist on the cluster.
            let (_dir, path, state_dir) = pipeline_dir(&stack, &prefix, &table);
            let connect = stack.connect_client().expect("connect client");
            let svc = DdlService::new(&[path], &state_dir, Some(connect)).expect("service");
            let base = serve(svc).await;
            let store = Store::open_dir(&state_dir).expect("store");
            let add = format!("ALTER TABLE {table} ADD COLUMN note text");

            let (status, answer) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add, "force_guardrails": ["lag"]}).to_string(),
            )
            .await;
            assert_eq!(status, 400, "{answer}");
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("unknown guardrail"),
                "{answer}"
            );

            let (status, answer) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add}).to_string(),
            )
            .await;
            assert_eq!(status, 409, "{answer}");
            let reasons = answer["reasons"].to_string();
            assert!(
                reasons.contains(&format!(
                    "connector_running: connector {prefix} does not exist"
                )),
                "{answer}"
            );
            assert!(
                store.list(&ListFilter::default()).unwrap().is_empty(),
                "nothing recorded"
            );
            assert_eq!(
                columns(&stack.pg_source().await.unwrap(), &table).await,
                ["id", "amount"]
            );
            let tail = store.audit_tail(5).unwrap();
            assert!(
                tail.iter().any(|r| r.action == "ddl.guardrails_refused"),
                "{tail:?}"
            );

            let (status, answer) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add, "force_guardrails": ["connector_running"], "actor": "dora"}).to_string(),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            let id = answer["operations"][0]["id"].as_i64().expect("id");
            let op = wait_finished(&base, id).await;
            assert_eq!(op["state"], "succeeded", "{op}");
            assert_eq!(
                columns(&stack.pg_source().await.unwrap(), &table).await,
                ["id", "amount", "note"]
            );
            let audit = store.audit_records(None, 0).unwrap();
            assert!(
                audit.iter().any(|r| r.action == "ddl.guardrails_overridden"
                    && r.actor == "dora"
                    && r.details.contains("connector_running")),
                "{audit:?}"
            );
            assert!(store.verify_chain().unwrap().intact, "audit chain");
        })
        .await;
    }

    /// Selective concurrency: while a structural change on one table is held up (the test
    /// holds a lock on the source table, so its source DDL waits and retries), an index on
    /// another table of the pipeline is accepted and finishes, and a change to the held table
    /// is refused with the operation and table that block it. Once the lock goes, the first
    /// operation finishes too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_on_different_tables_run_side_by_side_and_a_conflict_is_refused() {
        on_own_tables("ddlconc", |stack, prefix, table| async move {
            let other = format!("{table}_b");
            let source = stack.pg_source().await.expect("source");
            let target = stack.pg(&stack.pg_target_db).await.expect("target");
            let make = format!("create table {other} (id bigint primary key, qty integer)");
            source.batch_execute(&make).await.expect("source table b");
            target.batch_execute(&make).await.expect("target table b");
            let dir = tempfile::tempdir().expect("tmp");
            let path = dir.path().join("p.yaml");
            let yaml = pipeline_yaml(&stack, &prefix, &table).replace(
                &format!("topics: [{prefix}.public.{table}]"),
                &format!("topics: [{prefix}.public.{table}, {prefix}.public.{other}]"),
            );
            std::fs::write(&path, yaml).unwrap();
            let state_dir = dir.path().join("state");
            let svc = DdlService::new(&[path], &state_dir, None).expect("service");
            let base = serve(svc).await;

            // Hold the first table: its source DDL waits (lock_timeout) and retries meanwhile.
            let mut holder = stack.pg_source().await.expect("lock session");
            let lock = holder.transaction().await.expect("begin");
            lock.batch_execute(&format!("lock table {table} in access exclusive mode"))
                .await
                .expect("lock");
            let add = format!("ALTER TABLE {table} ADD COLUMN note text");
            let (status, answer) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add}).to_string(),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            let held = answer["operations"][0]["id"].as_i64().expect("id");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let (_, op) = get_json(&base, &format!("/api/v1/ddl/operations/{held}")).await;
                if op["state"] == "running" {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "never running: {op}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }

            // Another table: accepted and finished while the first still waits.
            let index = format!("CREATE INDEX {other}_qty ON {other} (qty)");
            let (status, answer) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": index}).to_string(),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            let beside = answer["operations"][0]["id"].as_i64().expect("id");
            let op = wait_finished(&base, beside).await;
            assert_eq!(op["state"], "succeeded", "{op}");
            let (_, first) = get_json(&base, &format!("/api/v1/ddl/operations/{held}")).await;
            assert_eq!(
                first["state"], "running",
                "the index finished while the held operation still ran: {first}"
            );

            // The held table: refused, naming what blocks it; nothing recorded.
            let again = format!("CREATE INDEX {table}_amount ON {table} (amount)");
            let (status, answer) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": again}).to_string(),
            )
            .await;
            assert_eq!(status, 409, "{answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(&format!("operation {held}")) && error.contains(&table),
                "{answer}"
            );

            lock.rollback().await.expect("release the lock");
            let op = wait_finished(&base, held).await;
            assert_eq!(op["state"], "succeeded", "{op}");
            assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);
            let drop = format!("drop table if exists {other}");
            let _ = source.batch_execute(&drop).await;
            let _ = target.batch_execute(&drop).await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_input_is_refused_with_nothing_recorded_and_approval_and_cancel_work() {
        on_own_tables("ddlapi", |stack, prefix, table| async move {
            let (_dir, path, state_dir) = pipeline_dir(&stack, &prefix, &table);
            let svc = DdlService::new(&[path], &state_dir, None).expect("service");
            let base = serve(svc).await;
            let store = Store::open_dir(&state_dir).expect("store");

            // Dry run: the plan, nothing recorded.
            let add = format!("ALTER TABLE {table} ADD COLUMN note text");
            let (status, plan) = post(
                &base,
                "/api/v1/ddl/plan",
                json!({"pipeline": prefix, "sql": add}).to_string(),
            )
            .await;
            assert_eq!(status, 200, "{plan}");
            assert_eq!(plan["plans"][0]["strategy"], "target_first", "{plan}");
            assert_eq!(plan["unsupported"], json!([]), "{plan}");

            // Bad input, on the dry run and on apply: a 4xx with the reason.
            let hidden = format!("{add}; DELETE FROM {table}");
            let second_ddl = format!("{add}; DROP TABLE {table}_other");
            let outside = format!("ALTER TABLE {table}_other ADD COLUMN x int");
            let big = "-- x\n".repeat(20_000);
            let sql_body = |sql: &str| json!({"pipeline": prefix, "sql": sql}).to_string();
            let cases: Vec<(&str, String, u16, &str)> = vec![
                ("garbage", sql_body("ALTER TABLEE x"), 422, "syntax"),
                ("hidden DML", sql_body(&hidden), 422, "statement 2"),
                (
                    "hidden DDL outside",
                    sql_body(&second_ddl),
                    422,
                    "not replicated",
                ),
                ("outside", sql_body(&outside), 422, "not replicated"),
                ("empty", sql_body("  ;  "), 422, "no statement"),
                ("oversized", sql_body(&big), 413, "larger than 65536 bytes"),
                (
                    "unknown pipeline",
                    json!({"pipeline": "nope", "sql": add}).to_string(),
                    404,
                    "unknown pipeline 'nope'",
                ),
                ("not JSON", add.clone(), 400, "not the JSON"),
                (
                    "unknown field",
                    json!({"pipeline": prefix, "sql": add, "force": true}).to_string(),
                    400,
                    "unknown field",
                ),
            ];
            for (what, body, status, expect) in &cases {
                for endpoint in ["/api/v1/ddl/plan", "/api/v1/ddl/operations"] {
                    let (got, answer) = post(&base, endpoint, body.clone()).await;
                    assert_eq!(got, *status, "{what} ({endpoint}): {answer}");
                    assert!(
                        answer.to_string().contains(expect),
                        "{what} ({endpoint}): expected '{expect}' in {answer}"
                    );
                    assert!(
                        answer["error"].is_string() && answer["hint"].is_string(),
                        "{what} ({endpoint}): {answer}"
                    );
                }
            }
            // Nothing recorded, no step started, nothing applied.
            assert!(store.list(&Default::default()).unwrap().is_empty());
            let source = stack.pg_source().await.expect("source");
            let target = stack.pg(&stack.pg_target_db).await.expect("target");
            assert_eq!(columns(&source, &table).await, ["id", "amount"]);
            assert_eq!(columns(&target, &table).await, ["id", "amount"]);

            // Approval: recorded as pending_approval with its plan, nothing runs.
            let (status, accepted) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add, "actor": "alice", "require_approval": true})
                    .to_string(),
            )
            .await;
            assert_eq!(status, 202, "{accepted}");
            assert_eq!(accepted["operations"][0]["state"], "pending_approval");
            let a = accepted["operations"][0]["id"].as_i64().expect("id");
            let (status, op) = get_json(&base, &format!("/api/v1/ddl/operations/{a}")).await;
            assert_eq!(status, 200, "{op}");
            assert_eq!(op["state"], "pending_approval", "{op}");
            assert_eq!(op["requested_by"], "alice", "{op}");
            assert!(op["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "pending"));

            // Cancel of another awaiting operation: cancelled at once, nothing ran.
            let add_b = format!("ALTER TABLE {table} ADD COLUMN other_note text");
            let (status, accepted) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add_b, "require_approval": true}).to_string(),
            )
            .await;
            assert_eq!(status, 202, "{accepted}");
            let b = accepted["operations"][0]["id"].as_i64().expect("id");
            // Operations are approved in the order they were planned.
            let (status, answer) =
                post(&base, &format!("/api/v1/ddl/operations/{b}/approve"), "").await;
            assert_eq!(status, 409, "{answer}");
            assert!(
                answer["error"].as_str().unwrap().contains(&format!(
                    "operation {a}, recorded before {b}, still awaits approval"
                )),
                "{answer}"
            );
            let cancel_b = format!("/api/v1/ddl/operations/{b}/cancel");
            let (status, answer) =
                post(&base, &cancel_b, json!({"actor": "bob"}).to_string()).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["state"], "cancelled", "{answer}");
            let op_b = store.get(OperationId(b)).unwrap();
            assert_eq!(op_b.state, OperationState::Cancelled);
            assert_eq!(op_b.cancel_request.map(|s| s.by).as_deref(), Some("bob"));
            assert!(op_b
                .steps
                .iter()
                .all(|s| s.state.status() == StepStatus::Pending));
            let (status, answer) = post(&base, &cancel_b, "").await;
            assert_eq!(status, 409, "{answer}");
            assert!(answer["error"]
                .as_str()
                .unwrap()
                .contains("already cancelled"));
            let (status, answer) =
                post(&base, &format!("/api/v1/ddl/operations/{b}/approve"), "").await;
            assert_eq!(status, 409, "{answer}");

            // Approving the first runs it in the background.
            let (status, answer) = post(
                &base,
                &format!("/api/v1/ddl/operations/{a}/approve"),
                json!({"actor": "carol"}).to_string(),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            let op = wait_finished(&base, a).await;
            assert_eq!(op["state"], "succeeded", "{op}");
            assert_eq!(op["approval"]["by"], "carol", "{op}");
            assert_eq!(columns(&source, &table).await, ["id", "amount", "note"]);
            assert_eq!(columns(&target, &table).await, ["id", "amount", "note"]);
            let history = store.history(OperationId(a)).unwrap();
            assert!(
                history
                    .iter()
                    .any(|r| r.action == "operation.approved" && r.actor == "carol"),
                "{history:?}"
            );
            let (status, answer) =
                post(&base, &format!("/api/v1/ddl/operations/{a}/cancel"), "").await;
            assert_eq!(status, 409, "{answer}");
            assert!(answer["error"]
                .as_str()
                .unwrap()
                .contains("already succeeded"));

            let (status, list) = get_json(&base, "/api/v1/ddl/operations").await;
            assert_eq!(status, 200, "{list}");
            assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
            let (status, answer) = get_json(&base, "/api/v1/ddl/operations/999999").await;
            assert_eq!(status, 404, "{answer}");
            let (status, answer) = get_json(&base, "/api/v1/ddl/operations/abc").await;
            assert_eq!(status, 400, "{answer}");
            assert!(store.verify_chain().unwrap().intact, "audit chain");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn service_start_cancels_at_a_step_boundary_and_refuses_a_cancel_past_no_return() {
        on_own_tables("ddlapi-resume", |stack, prefix, table| async move {
            let (_dir, path, state_dir) = pipeline_dir(&stack, &prefix, &table);
            let key = ddl_cmd::pipeline_key(&path);
            let pipeline = DdlPipeline::load(&path).expect("pipeline");
            let store = Store::open_dir(&state_dir).expect("store");
            let source = stack.pg_source().await.expect("source");
            let target = stack.pg(&stack.pg_target_db).await.expect("target");
            let plan_of = |sql: String| {
                let pipeline = pipeline.clone();
                async move {
                    prepare(&pipeline, &sql)
                        .await
                        .unwrap()
                        .expect("plannable")
                        .plans
                        .remove(0)
                }
            };

            // Operation 1: cancelled while it ran, after its first step (before the point of
            // no return), and the process died: the restart undoes it and ends it cancelled.
            let p1 = plan_of(format!("ALTER TABLE {table} ADD COLUMN a text")).await;
            let one = store
                .create_operation(&new_operation(&key, &p1, "test").unwrap())
                .unwrap();
            store.start_operation(one, "test").unwrap();
            let t = store.begin_step(one, 0, "test").unwrap();
            store
                .finish_step(&t, StepOutcome::Succeeded(Value::Null), "test")
                .unwrap();
            assert_eq!(
                store.request_cancel(one, "dave").unwrap(),
                OperationState::Cancelling
            );
            restart_service(&path, &state_dir).await;
            let op = store.get(one).unwrap();
            assert_eq!(op.state, OperationState::Cancelled, "{op:?}");
            assert_eq!(op.steps[0].state.status(), StepStatus::Compensated);
            assert!(op.steps[1..]
                .iter()
                .all(|s| s.state.status() == StepStatus::Skipped));
            assert_eq!(columns(&source, &table).await, ["id", "amount"]);
            assert_eq!(columns(&target, &table).await, ["id", "amount"]);

            // Operation 2: its source DDL (the point of no return) committed, then a cancel
            // arrived (the race the API's check cannot close) and the process died: the
            // restart refuses the cancel and finishes the plan.
            let add_b = format!("ALTER TABLE {table} ADD COLUMN b integer");
            let p2 = plan_of(add_b.clone()).await;
            assert_eq!(p2.point_of_no_return, 3, "{p2:?}");
            let two = store
                .create_operation(&new_operation(&key, &p2, "test").unwrap())
                .unwrap();
            store.start_operation(two, "test").unwrap();
            for step in 0..2 {
                let t = store.begin_step(two, step, "test").unwrap();
                if step == 1 {
                    target.batch_execute(&add_b).await.unwrap();
                }
                store
                    .finish_step(&t, StepOutcome::Succeeded(Value::Null), "test")
                    .unwrap();
            }
            store.begin_step(two, 2, "test").unwrap();
            source.batch_execute(&add_b).await.unwrap();
            let op = store.get(two).unwrap();
            assert!(exec::cancel_refusal(&op)
                .expect("refused")
                .contains("point of no return"));
            store.request_cancel(two, "erin").unwrap();
            restart_service(&path, &state_dir).await;
            let op = store.get(two).unwrap();
            assert_eq!(op.state, OperationState::Succeeded, "{op:?}");
            assert!(store
                .history(two)
                .unwrap()
                .iter()
                .any(|r| r.action == "operation.cancel_refused"));
            assert_eq!(columns(&source, &table).await, ["id", "amount", "b"]);
            assert_eq!(columns(&target, &table).await, ["id", "amount", "b"]);
            // Nothing left to resume.
            let svc = DdlService::new(&[path], &state_dir, None).expect("service");
            assert!(svc.resume_at_start().is_none());
            assert!(store.verify_chain().unwrap().intact, "audit chain");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_of_a_running_operation_takes_effect_at_the_next_step_boundary() {
        on_own_tables("ddlapi-cancel", |stack, prefix, table| async move {
            let (_dir, path, state_dir) = pipeline_dir(&stack, &prefix, &table);
            let svc = DdlService::new(&[path], &state_dir, None).expect("service");
            let base = serve(svc).await;
            let store = Store::open_dir(&state_dir).expect("store");
            let source = stack.pg_source().await.expect("source");
            let target = stack.pg(&stack.pg_target_db).await.expect("target");

            // Another session holds the target table: the target DDL (step 2) waits for it.
            let locker = stack.pg(&stack.pg_target_db).await.expect("target");
            locker
                .batch_execute(&format!(
                    "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
                ))
                .await
                .expect("lock");
            let add = format!("ALTER TABLE {table} ADD COLUMN note text");
            let (status, accepted) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add}).to_string(),
            )
            .await;
            assert_eq!(status, 202, "{accepted}");
            let id = accepted["operations"][0]["id"].as_i64().expect("id");
            let started = std::time::Instant::now();
            loop {
                let op = store.get(OperationId(id)).unwrap();
                if op.steps[1].state.status() == StepStatus::Running {
                    break;
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(60),
                    "step 2 never started: {op:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            // While it runs, a second apply is refused: an operation is unfinished.
            let (status, answer) = post(
                &base,
                "/api/v1/ddl/operations",
                json!({"pipeline": prefix, "sql": add}).to_string(),
            )
            .await;
            assert_eq!(status, 409, "{answer}");

            let (status, answer) = post(
                &base,
                &format!("/api/v1/ddl/operations/{id}/cancel"),
                json!({"actor": "frank"}).to_string(),
            )
            .await;
            assert_eq!(status, 202, "{answer}");
            assert_eq!(answer["state"], "cancelling", "{answer}");
            locker.batch_execute("ROLLBACK").await.expect("unlock");

            let op = wait_finished(&base, id).await;
            assert_eq!(op["state"], "cancelled", "{op}");
            let statuses: Vec<&str> = op["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["status"].as_str().unwrap())
                .collect();
            assert_eq!(
                statuses,
                [
                    "compensated",
                    "compensated",
                    "skipped",
                    "skipped",
                    "skipped"
                ],
                "{op}"
            );
            // The target DDL that ran was undone; the source was never touched.
            assert_eq!(columns(&target, &table).await, ["id", "amount"]);
            assert_eq!(columns(&source, &table).await, ["id", "amount"]);
            let actions: Vec<String> = store
                .history(OperationId(id))
                .unwrap()
                .into_iter()
                .map(|r| r.action)
                .collect();
            assert!(
                actions.iter().any(|a| a == "operation.cancel_requested")
                    && actions.iter().any(|a| a == "operation.cancelled"),
                "{actions:?}"
            );
            assert!(store.verify_chain().unwrap().intact, "audit chain");
        })
        .await;
    }
}
