//! The running sink's REST API (`lockstep sink run --listen`, `lockstep serve`): which tables
//! it holds, and releasing one.

use std::time::Duration;

use serde_json::Value;

use crate::error::ExecError;

pub struct SinkApi {
    base: String,
    pipeline: String,
    http: reqwest::Client,
}

fn api_err(what: String, reason: impl std::fmt::Display) -> ExecError {
    ExecError::Connect {
        what: "sink API",
        target: what,
        reason: reason.to_string(),
    }
}

impl SinkApi {
    pub fn new(base: &str, pipeline: &str) -> Result<Self, ExecError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| api_err(base.to_string(), e))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            pipeline: pipeline.to_string(),
            http,
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/api/v1/sinks/{}{rest}", self.base, self.pipeline)
    }

    /// The sink's status (`SinkStatus` as JSON).
    pub async fn status(&self) -> Result<Value, ExecError> {
        let url = self.url("");
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| api_err(url.clone(), e))?;
        if !resp.status().is_success() {
            return Err(api_err(
                url,
                format!(
                    "HTTP {}: is the sink of this pipeline running there?",
                    resp.status()
                ),
            ));
        }
        resp.json().await.map_err(|e| api_err(url, e))
    }

    /// Target tables the sink holds (by drift or on request).
    pub async fn blocked(&self) -> Result<Vec<String>, ExecError> {
        Ok(blocked_tables(&self.status().await?))
    }

    pub async fn release(&self, table: &str) -> Result<(), ExecError> {
        self.table_verb(table, "release").await
    }

    /// Hold a target table (its partitions stop before their next record).
    pub async fn hold(&self, table: &str) -> Result<(), ExecError> {
        self.table_verb(table, "hold").await
    }

    async fn table_verb(&self, table: &str, verb: &str) -> Result<(), ExecError> {
        let url = self.url(&format!("/tables/{table}/{verb}"));
        let resp = self
            .http
            .post(&url)
            .send()
            .await
            .map_err(|e| api_err(url.clone(), e))?;
        if !resp.status().is_success() {
            return Err(api_err(url, format!("HTTP {}", resp.status())));
        }
        Ok(())
    }
}

impl SinkApi {
    /// Have the sink read `topic` into `table` (recorded in the target; idempotent). The
    /// sink answers once the change is recorded and applied.
    pub async fn add_topic(&self, topic: &str, table: &str) -> Result<Value, ExecError> {
        let url = self.url(&format!("/topics/{topic}"));
        let request = self
            .http
            .put(&url)
            .json(&serde_json::json!({ "table": table }));
        topic_change(url, request).await
    }

    /// Have the sink stop reading `topic` (recorded in the target; idempotent).
    pub async fn remove_topic(&self, topic: &str) -> Result<Value, ExecError> {
        let url = self.url(&format!("/topics/{topic}"));
        let request = self.http.delete(&url);
        topic_change(url, request).await
    }
}

/// Sends a topic change; the sink answers once it is recorded and applied (up to its own
/// 30 s wait), so the request may take longer than the client's default timeout.
async fn topic_change(url: String, request: reqwest::RequestBuilder) -> Result<Value, ExecError> {
    let resp = request
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| api_err(url.clone(), e))?;
    answer(url, resp).await
}

/// The JSON body of a successful answer, or the sink's error with its status.
async fn answer(url: String, resp: reqwest::Response) -> Result<Value, ExecError> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("no error text");
    Err(api_err(
        url,
        format!("HTTP {status}: {error}; is the sink of this pipeline running there?"),
    ))
}

/// The runtime topics a sink status shows: `(topic, removed, waiting)` (pure).
pub fn runtime_topics(status: &Value) -> Vec<(String, bool, bool)> {
    status
        .get("runtime_topics")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t.get("topic")?.as_str()?.to_string(),
                        t.get("removed").and_then(Value::as_bool).unwrap_or(false),
                        t.get("waiting").and_then(Value::as_bool).unwrap_or(false),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The held tables of a sink status (pure).
pub fn blocked_tables(status: &Value) -> Vec<String> {
    status
        .get("blocked")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|b| b.get("table").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
