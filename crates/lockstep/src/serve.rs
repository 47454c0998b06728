//! `lockstep serve`: the long-running service: health, a read-only view of the configured
//! Connect cluster, the sinks of `--pipeline` (`sink_service`), the watchdog of `--watch`, the
//! connector drift loop of `--connectors` (`connectors_cmd::serve_drift`), the DDL API of
//! `--ddl-pipeline` (`ddl_api`), one `/metrics` for all of them, and the OpenAPI spec of every
//! route at `/openapi.json`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lockstep_connect::ConnectClient;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::cli::{GlobalArgs, ServeArgs};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lockstep",
        description = "Day-2 operations for Debezium / Kafka Connect CDC pipelines"
    ),
    paths(
        healthz,
        connectors,
        crate::connectors_cmd::drift_status,
        crate::sink_service::metrics,
        crate::sink_service::list,
        crate::sink_service::show,
        crate::sink_service::control,
        crate::sink_service::table_control,
        crate::sink_service::drain,
        crate::sink_service::add_topic,
        crate::sink_service::remove_topic,
        crate::ddl_api::plan,
        crate::ddl_api::apply,
        crate::ddl_api::list,
        crate::ddl_api::show,
        crate::ddl_api::approve,
        crate::ddl_api::cancel
    ),
    components(schemas(
        Health,
        ConnectorSummary,
        ApiError,
        crate::ddl_api::DdlApiError,
        crate::ddl_api::PlanRequest,
        crate::ddl_api::ApplyRequest,
        crate::ddl_api::ActorRequest,
        crate::ddl_api::ApproveRequest
    ))
)]
struct ApiDoc;

struct AppState {
    connect: Option<ConnectClient>,
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: &'static str,
    version: &'static str,
}

/// One connector in the overview.
#[derive(Serialize, ToSchema)]
pub struct ConnectorSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub connector_type: String,
    pub state: String,
    pub tasks_running: usize,
    pub tasks_total: usize,
    pub worker: Option<String>,
}

/// Every error answer: what failed and what to do.
#[derive(Serialize, ToSchema)]
struct ApiError {
    error: String,
}

fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
}

/// Liveness of the lockstep service itself.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Connectors of the configured Kafka Connect cluster with their states.
#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    responses(
        (status = 200, body = [ConnectorSummary]),
        (status = 502, body = ApiError, description = "Kafka Connect did not answer"),
        (status = 503, body = ApiError, description = "no Connect cluster configured")
    )
)]
async fn connectors(State(state): State<Arc<AppState>>) -> Response {
    let Some(client) = &state.connect else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no Kafka Connect cluster is configured: start `lockstep serve` with --connect-url or a cluster in lockstep.yaml",
        );
    };
    match crate::connect_cmd::summaries(client).await {
        Ok(list) => Json(list).into_response(),
        // Whatever Connect answered, lockstep is the gateway that could not get a good answer.
        Err(err) => api_error(StatusCode::BAD_GATEWAY, err.to_string()),
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/connectors", get(connectors))
        .route("/openapi.json", get(openapi))
        .with_state(state)
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<u8> {
    let connect = match crate::target::connect_client(global) {
        Ok(client) => Some(client),
        Err(err) if crate::target::is_unconfigured(&err) => {
            tracing::warn!("serving without a Kafka Connect cluster: {err}");
            None
        }
        Err(err) => return Err(err),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; choose another address with --listen",
                args.listen
            )
        })?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = lockstep_sink::SinkMetrics::register(&mut registry);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog_metrics = args
        .watch
        .watch
        .then(|| lockstep_watchdog::WatchdogMetrics::register(&mut registry));
    let mut sinks = std::collections::BTreeMap::new();
    let mut tasks = Vec::new();
    for path in &args.pipelines {
        let pipeline = lockstep_sink::SinkPipeline::load(path)?;
        if sinks.contains_key(&pipeline.name) {
            anyhow::bail!(
                "{}: pipeline name '{}' is used by another --pipeline file; names identify offsets in the target and must be unique",
                path.display(),
                pipeline.name
            );
        }
        let handle = lockstep_sink::SinkHandle::new(&pipeline.name, pipeline.target.engine.name());
        sinks.insert(pipeline.name.clone(), handle.clone());
        tasks.push(crate::sink_service::supervise(
            pipeline,
            metrics.clone(),
            handle,
            stop.clone(),
        ));
    }
    // Registered before the registry is shared: one /metrics for the sinks, the watchdog and
    // the drift loop.
    let drift = crate::connectors_cmd::serve_drift(
        &args.drift,
        connect.as_ref(),
        &args.watch.watch_state_dir,
        &mut registry,
    )?;
    let watchdog = match watchdog_metrics {
        Some(metrics) => Some(crate::watch_cmd::spawn_in_service(
            global,
            &args.watch,
            metrics,
            stop.clone(),
        )?),
        None => None,
    };
    // The DDL API: --ddl-pipeline files, and --pipeline files with a source: section.
    let mut ddl_files = args.ddl_pipelines.clone();
    for path in &args.pipelines {
        if has_source_section(path) && !ddl_files.contains(path) {
            ddl_files.push(path.clone());
        }
    }
    let ddl =
        crate::ddl_api::DdlService::new(&ddl_files, &args.watch.watch_state_dir, connect.clone())?;
    // Operations a crash left unfinished are resumed or compensated first, one log line each.
    // Not awaited at shutdown (nor are DDL runs): a step cut short is the crash case, which
    // the next start recovers from the store.
    let _ddl_resume = ddl.resume_at_start();
    let sink_set = crate::sink_service::SinkSet {
        sinks: Arc::new(sinks),
        registry: Arc::new(std::sync::Mutex::new(registry)),
    };
    eprintln!(
        "lockstep serving on http://{} ({} sink(s))",
        args.listen,
        tasks.len()
    );
    let app = router(Arc::new(AppState { connect })).merge(crate::sink_service::routes(sink_set));
    let app = app.merge(drift).merge(crate::ddl_api::routes(ddl));
    let shutdown = crate::sink_cmd::shutdown_flag()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            while !shutdown.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
        .await?;
    // Sinks finish their batch in flight, so rows and offsets leave committed together.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks.into_iter().chain(watchdog) {
        let _ = task.await;
    }
    Ok(crate::exit::OK)
}

/// Does this pipeline file carry a `source:` section (then the DDL API offers it)?
fn has_source_section(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text).ok())
        .is_some_and(|v| v.get("source").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_spec_lists_every_route() {
        let spec = serde_json::to_value(ApiDoc::openapi()).expect("spec serialises");
        let paths = spec["paths"].as_object().expect("paths");
        // Every route `serve` mounts (router, sink_service::routes, connectors_cmd::serve_drift).
        let routes = [
            ("/healthz", "get"),
            ("/api/v1/connectors", "get"),
            ("/api/v1/connectors/drift", "get"),
            ("/metrics", "get"),
            ("/api/v1/sinks", "get"),
            ("/api/v1/sinks/{name}", "get"),
            ("/api/v1/sinks/{name}/{verb}", "post"),
            ("/api/v1/sinks/{name}/tables/{table}/{verb}", "post"),
            ("/api/v1/sinks/{name}/drain", "post"),
            ("/api/v1/sinks/{name}/topics/{topic}", "put"),
            ("/api/v1/sinks/{name}/topics/{topic}", "delete"),
            ("/api/v1/ddl/plan", "post"),
            ("/api/v1/ddl/operations", "post"),
            ("/api/v1/ddl/operations", "get"),
            ("/api/v1/ddl/operations/{id}", "get"),
            ("/api/v1/ddl/operations/{id}/approve", "post"),
            ("/api/v1/ddl/operations/{id}/cancel", "post"),
        ];
        for (path, method) in routes {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing from the spec: {:?}",
                paths.keys().collect::<Vec<_>>()
            );
        }
        let methods: usize = paths
            .values()
            .filter_map(|p| p.as_object())
            .map(|p| {
                p.keys()
                    .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                    .count()
            })
            .sum();
        assert_eq!(methods, routes.len(), "{:?}", paths.keys());
    }
}
