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
        let url = self.url(&format!("/tables/{table}/release"));
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
