//! Sinks inside a long-running process (`lockstep serve --pipeline`, `lockstep sink run
//! --listen`): a supervisor that restarts a failed sink with backoff, and the REST routes and
//! `/metrics` endpoint that show and steer them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use lockstep_sink::{Sink, SinkHandle, SinkMetrics, SinkPipeline, SinkState, SinkStatus};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Sinks by pipeline name, and the registry their metrics live in.
#[derive(Clone)]
pub struct SinkSet {
    pub sinks: Arc<BTreeMap<String, SinkHandle>>,
    pub registry: Arc<Mutex<Registry>>,
}

/// How long a supervisor waits before restarting a failed sink: 1 s doubling to 60 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

/// Runs a sink until `stop` is set, restarting it after an error (the database restarting, the
/// broker away); its status shows `failed` and the error meanwhile.
pub fn supervise(
    pipeline: SinkPipeline,
    metrics: SinkMetrics,
    handle: SinkHandle,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let started = Sink::start_with(pipeline.clone(), metrics.clone(), handle.clone()).await;
            let mut sink = match started {
                Ok(sink) => sink,
                Err(e) => {
                    tracing::error!(pipeline = %pipeline.name, error = %e, "sink could not start; retrying");
                    handle.mark_failed(&e.to_string());
                    tokio::time::sleep(backoff(failures)).await;
                    failures += 1;
                    continue;
                }
            };
            loop {
                if stop.load(Ordering::Relaxed) {
                    sink.stop();
                    return;
                }
                match sink.run_batch(Duration::from_secs(1)).await {
                    Ok(_) => failures = 0,
                    Err(e) => {
                        tracing::error!(pipeline = %pipeline.name, error = %e, "sink failed; restarting from the target's offsets");
                        handle.mark_failed(&e.to_string());
                        break;
                    }
                }
            }
            tokio::time::sleep(backoff(failures)).await;
            failures += 1;
        }
    })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SinkError {
    error: String,
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(SinkError {
            error: format!("no sink named '{name}' runs here: GET /api/v1/sinks lists them"),
        }),
    )
        .into_response()
}

/// The sinks this process runs, with their status.
#[utoipa::path(
    get,
    path = "/api/v1/sinks",
    responses((status = 200, description = "Every sink's status (state, positions per partition, blocked tables, last error), as a JSON array"))
)]
pub(crate) async fn list(State(set): State<SinkSet>) -> Json<Vec<SinkStatus>> {
    Json(set.sinks.values().map(SinkHandle::status).collect())
}

/// One sink's status.
#[utoipa::path(
    get,
    path = "/api/v1/sinks/{name}",
    params(("name" = String, Path, description = "The pipeline name (the `name` of its pipeline file)")),
    responses(
        (status = 200, description = "The sink's status: state, positions per partition, blocked tables and why, last error"),
        (status = 404, body = SinkError, description = "No sink of that name runs here")
    )
)]
pub(crate) async fn show(State(set): State<SinkSet>, Path(name): Path<String>) -> Response {
    match set.sinks.get(&name) {
        Some(handle) => Json(handle.status()).into_response(),
        None => not_found(&name),
    }
}

/// Pauses or resumes a sink (it finishes the batch in flight first).
#[utoipa::path(
    post,
    path = "/api/v1/sinks/{name}/{verb}",
    params(
        ("name" = String, Path, description = "The pipeline name (the `name` of its pipeline file)"),
        ("verb" = String, Path, description = "`pause` or `resume`")
    ),
    responses(
        (status = 202, description = "Accepted; the body is the sink's status"),
        (status = 404, body = SinkError, description = "No sink of that name, or an unknown verb")
    )
)]
pub(crate) async fn control(
    State(set): State<SinkSet>,
    Path((name, verb)): Path<(String, String)>,
) -> Response {
    let Some(handle) = set.sinks.get(&name) else {
        return not_found(&name);
    };
    match verb.as_str() {
        "pause" => handle.pause(),
        "resume" => handle.resume(),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(SinkError {
                    error: format!("unknown action '{verb}': use pause or resume"),
                }),
            )
                .into_response()
        }
    }
    (StatusCode::ACCEPTED, Json(handle.status())).into_response()
}

/// Holds or releases one target table of a sink: a held table's partitions stop right before
/// its next record until it is released.
#[utoipa::path(
    post,
    path = "/api/v1/sinks/{name}/tables/{table}/{verb}",
    params(
        ("name" = String, Path, description = "The pipeline name (the `name` of its pipeline file)"),
        ("table" = String, Path, description = "The target table, as the sink names it (schema.table)"),
        ("verb" = String, Path, description = "`hold` or `release`")
    ),
    responses(
        (status = 202, description = "Accepted; the body is the sink's status"),
        (status = 404, body = SinkError, description = "No sink of that name, or an unknown verb")
    )
)]
pub(crate) async fn table_control(
    State(set): State<SinkSet>,
    Path((name, table, verb)): Path<(String, String, String)>,
) -> Response {
    let Some(handle) = set.sinks.get(&name) else {
        return not_found(&name);
    };
    match verb.as_str() {
        "hold" => handle.hold(&table),
        "release" => handle.release(&table),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(SinkError {
                    error: format!("unknown action '{verb}': use hold or release"),
                }),
            )
                .into_response()
        }
    }
    (StatusCode::ACCEPTED, Json(handle.status())).into_response()
}

/// `PUT /api/v1/sinks/{name}/topics/{topic}`: the target table (default: the source table's
/// name, as for the pipeline file's topics).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AddTopicRequest {
    pub table: Option<String>,
}

/// How long a topic change may take to be recorded and applied before the answer is 504.
const TOPIC_CHANGE_WAIT: Duration = Duration::from_secs(30);

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(SinkError { error })).into_response()
}

/// A Kafka topic name: 1-249 of `[a-zA-Z0-9._-]`.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The sink a topic route names, or the answer refusing the request.
fn topic_route(set: &SinkSet, name: &str, topic: &str) -> Result<SinkHandle, Box<Response>> {
    let Some(handle) = set.sinks.get(name).cloned() else {
        return Err(Box::new(not_found(name)));
    };
    if !valid_topic(topic) {
        return Err(Box::new(bad_request(format!(
            "'{topic}' is not a Kafka topic name (1-249 letters, digits, '.', '_' or '-')"
        ))));
    }
    Ok(handle)
}

/// Waits until the sink recorded (in the target) and applied a topic change.
async fn topic_change_answer(handle: &SinkHandle, topic: &str, removed: bool) -> Response {
    let started = std::time::Instant::now();
    while started.elapsed() < TOPIC_CHANGE_WAIT {
        if handle.topic_applied(topic, removed) {
            return (StatusCode::OK, Json(handle.status())).into_response();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = handle.status();
    let error = format!(
        "the change of topic {topic} is accepted but not applied after {} s: the sink is {:?}{}; it applies the change when it runs again (GET the sink's status to see it)",
        TOPIC_CHANGE_WAIT.as_secs(),
        status.state,
        status
            .last_error
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    (StatusCode::GATEWAY_TIMEOUT, Json(SinkError { error })).into_response()
}

/// Adds a topic to a running sink: recorded in the target next to the offsets (a restart keeps
/// it), then read from the offset the target holds for it or from its first record (a topic
/// the broker does not have yet is read once it appears). Idempotent.
#[utoipa::path(
    put,
    path = "/api/v1/sinks/{name}/topics/{topic}",
    params(
        ("name" = String, Path, description = "The pipeline name (the `name` of its pipeline file)"),
        ("topic" = String, Path, description = "The Debezium topic to read")
    ),
    request_body = AddTopicRequest,
    responses(
        (status = 200, description = "Recorded and applied; the body is the sink's status"),
        (status = 400, body = SinkError, description = "Not a topic or table name"),
        (status = 404, body = SinkError, description = "No sink of that name runs here"),
        (status = 504, body = SinkError, description = "Accepted, not applied yet (the sink is not running)")
    )
)]
pub(crate) async fn add_topic(
    State(set): State<SinkSet>,
    Path((name, topic)): Path<(String, String)>,
    Json(request): Json<AddTopicRequest>,
) -> Response {
    let handle = match topic_route(&set, &name, &topic) {
        Ok(handle) => handle,
        Err(refused) => return *refused,
    };
    if let Some(table) = &request.table {
        let ok = !table.is_empty()
            && table.len() <= 63
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if !ok {
            return bad_request(format!(
                "'{table}' is not a target table name (1-63 letters, digits, '_' or '$')"
            ));
        }
    }
    handle.add_topic(&topic, request.table.as_deref());
    topic_change_answer(&handle, &topic, false).await
}

/// Removes a topic from a running sink (recorded in the target like an added one): its
/// partitions are no longer read. Idempotent.
#[utoipa::path(
    delete,
    path = "/api/v1/sinks/{name}/topics/{topic}",
    params(
        ("name" = String, Path, description = "The pipeline name (the `name` of its pipeline file)"),
        ("topic" = String, Path, description = "The topic to stop reading")
    ),
    responses(
        (status = 200, description = "Recorded and applied; the body is the sink's status"),
        (status = 400, body = SinkError, description = "Not a topic name"),
        (status = 404, body = SinkError, description = "No sink of that name runs here"),
        (status = 504, body = SinkError, description = "Accepted, not applied yet (the sink is not running)")
    )
)]
pub(crate) async fn remove_topic(
    State(set): State<SinkSet>,
    Path((name, topic)): Path<(String, String)>,
) -> Response {
    let handle = match topic_route(&set, &name, &topic) {
        Ok(handle) => handle,
        Err(refused) => return *refused,
    };
    handle.remove_topic(&topic);
    topic_change_answer(&handle, &topic, true).await
}

/// One partition position: everything below `offset` must be applied.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct DrainPosition {
    pub topic: String,
    pub partition: i32,
    /// An end offset: the records before it (offset - 1 and lower) must be committed.
    pub offset: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DrainRequest {
    pub positions: Vec<DrainPosition>,
    /// Longest wait, in seconds (default 60, at most 3600).
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DrainAnswer {
    pub drained: bool,
    pub waited_ms: u128,
    /// Positions not reached yet, with the committed next offset.
    pub behind: Vec<DrainBehind>,
    /// Tables the sink holds: a drain through a held table cannot finish.
    pub blocked_tables: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DrainBehind {
    pub topic: String,
    pub partition: i32,
    pub wanted: i64,
    pub committed: Option<i64>,
}

/// POST /api/v1/sinks/{name}/drain: waits until every record before the given offsets is
/// committed in the target; 200 when drained, 504 with what is behind when the wait ran out.
#[utoipa::path(
    post,
    path = "/api/v1/sinks/{name}/drain",
    params(("name" = String, Path, description = "The pipeline name (the `name` of its pipeline file)")),
    request_body = DrainRequest,
    responses(
        (status = 200, body = DrainAnswer, description = "Everything before the positions is committed in the target"),
        (status = 504, body = DrainAnswer, description = "The wait ran out; `behind` lists what is not committed yet"),
        (status = 404, body = SinkError, description = "No sink of that name runs here")
    )
)]
pub(crate) async fn drain(
    State(set): State<SinkSet>,
    Path(name): Path<String>,
    Json(request): Json<DrainRequest>,
) -> Response {
    let Some(handle) = set.sinks.get(&name).cloned() else {
        return not_found(&name);
    };
    let timeout = Duration::from_secs(request.timeout_seconds.unwrap_or(60).min(3600));
    let started = std::time::Instant::now();
    loop {
        let status = handle.status();
        let behind: Vec<DrainBehind> = request
            .positions
            .iter()
            .filter_map(|want| {
                let committed = status
                    .partitions
                    .iter()
                    .find(|p| p.topic == want.topic && p.partition == want.partition)
                    .and_then(|p| p.next_offset);
                (want.offset > 0 && committed.is_none_or(|c| c < want.offset)).then(|| {
                    DrainBehind {
                        topic: want.topic.clone(),
                        partition: want.partition,
                        wanted: want.offset,
                        committed,
                    }
                })
            })
            .collect();
        let done = behind.is_empty();
        if done || started.elapsed() >= timeout {
            let answer = DrainAnswer {
                drained: done,
                waited_ms: started.elapsed().as_millis(),
                behind,
                blocked_tables: status.blocked.iter().map(|b| b.table.clone()).collect(),
            };
            let code = if done {
                StatusCode::OK
            } else {
                StatusCode::GATEWAY_TIMEOUT
            };
            return (code, Json(answer)).into_response();
        }
        if status.state == SinkState::Failed {
            tokio::time::sleep(Duration::from_millis(500)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every metric of the process (sinks, watchdog, connector drift) in the OpenMetrics text
/// format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, content_type = "application/openmetrics-text", body = String, description = "lockstep_sink_*, lockstep_watchdog_* and lockstep_connectors_* families"))
)]
pub(crate) async fn metrics(State(set): State<SinkSet>) -> Response {
    let mut text = String::new();
    let encoded = match set.registry.lock() {
        Ok(registry) => prometheus_client::encoding::text::encode(&mut text, &registry),
        Err(poisoned) => {
            prometheus_client::encoding::text::encode(&mut text, &poisoned.into_inner())
        }
    };
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}"),
        )
            .into_response(),
    }
}

/// The sink routes and `/metrics`, to merge into a service router.
pub fn routes(set: SinkSet) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/sinks", get(list))
        .route("/api/v1/sinks/{name}", get(show))
        .route("/api/v1/sinks/{name}/drain", post(drain))
        .route(
            "/api/v1/sinks/{name}/topics/{topic}",
            put(add_topic).delete(remove_topic),
        )
        .route("/api/v1/sinks/{name}/{verb}", post(control))
        .route(
            "/api/v1/sinks/{name}/tables/{table}/{verb}",
            post(table_control),
        )
        .with_state(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute() {
        let waits: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
