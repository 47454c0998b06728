//! Drift: the difference between the manifests and the cluster, seen after the fact.
//!
//! [`DriftReport::from_plan`] is pure: drift is a plan that is not empty. A declared connector
//! that is missing (deleted by hand) or changed (edited through the REST API) has drifted; an
//! undeclared connector is listed as unmanaged, and counts as drift only with `prune`.
//!
//! [`DriftWatcher`] runs the check in a loop for the service: it records every check in a
//! shared [`DriftStatus`] (counters for metrics, the last report), writes an audit record per
//! drifted connector to the `lockstep::audit` tracing target, and with `revert` applies the
//! manifests again (validated first, like `apply`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lockstep_connect::ConnectClient;
use serde::Serialize;

use crate::apply::{apply, fetch_live, live_configs, ApplyOptions, ApplyReport};
use crate::manifest::{ManifestError, ManifestSet};
use crate::plan::{plan, Action, ConnectorPlan, Plan};

/// What has drifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    /// Seconds since the Unix epoch when the cluster was read.
    pub checked_at: u64,
    /// Declared connectors whose live state differs (update), that are missing (create), or
    /// undeclared ones with prune (delete); the per-key diffs are display-safe.
    pub drifted: Vec<ConnectorPlan>,
    /// Connectors on the cluster that no manifest declares (not drift unless pruning).
    pub unmanaged: Vec<String>,
}

impl DriftReport {
    pub fn from_plan(plan: &Plan, checked_at: u64) -> Self {
        Self {
            checked_at,
            drifted: plan
                .connectors
                .iter()
                .filter(|c| c.action.is_change())
                .cloned()
                .collect(),
            unmanaged: plan
                .connectors
                .iter()
                .filter(|c| c.action == Action::Unmanaged)
                .map(|c| c.name.clone())
                .collect(),
        }
    }

    pub fn has_drift(&self) -> bool {
        !self.drifted.is_empty()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// One check of the loop.
#[derive(Debug, Clone, Serialize)]
pub struct DriftCheck {
    /// `None` when the check failed.
    pub report: Option<DriftReport>,
    /// The revert, when drift was found and reverting is on.
    pub revert: Option<ApplyReport>,
    /// Why the check (or the revert) failed.
    pub error: Option<String>,
}

/// Counters and the last result, shared with the service's API and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriftStatus {
    pub checks_total: u64,
    pub check_failures_total: u64,
    /// Checks that found drift.
    pub drift_detected_total: u64,
    /// Connectors reverted successfully.
    pub reverted_total: u64,
    /// Connectors drifted at the last successful check.
    pub drifted_connectors: usize,
    pub last: Option<DriftCheck>,
}

impl DriftStatus {
    fn record(&mut self, check: &DriftCheck) {
        self.checks_total += 1;
        match &check.report {
            Some(report) => {
                self.drifted_connectors = report.drifted.len();
                if report.has_drift() {
                    self.drift_detected_total += 1;
                }
            }
            None => self.check_failures_total += 1,
        }
        if let Some(revert) = &check.revert {
            self.reverted_total += (revert.outcomes.len() - revert.failed()) as u64;
        }
        self.last = Some(check.clone());
    }

    /// The counters in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let metrics: [(&str, &str, &str, u64); 5] = [
            (
                "lockstep_connectors_drift_checks_total",
                "counter",
                "Drift checks run.",
                self.checks_total,
            ),
            (
                "lockstep_connectors_drift_check_failures_total",
                "counter",
                "Drift checks that could not read the manifests or the cluster.",
                self.check_failures_total,
            ),
            (
                "lockstep_connectors_drift_detected_total",
                "counter",
                "Drift checks that found drift.",
                self.drift_detected_total,
            ),
            (
                "lockstep_connectors_drift_reverted_total",
                "counter",
                "Connectors whose drift was reverted.",
                self.reverted_total,
            ),
            (
                "lockstep_connectors_drifted",
                "gauge",
                "Connectors drifted at the last successful check.",
                self.drifted_connectors as u64,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in metrics {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}

type Loader = dyn Fn() -> Result<ManifestSet, ManifestError> + Send + Sync;

/// The drift loop of the service.
#[derive(Clone)]
pub struct DriftWatcher {
    client: ConnectClient,
    load: Arc<Loader>,
    interval: Duration,
    revert: bool,
    prune: bool,
    apply_options: ApplyOptions,
    status: Arc<Mutex<DriftStatus>>,
}

impl DriftWatcher {
    /// `load` is called at every check, so edited manifests are picked up without a restart.
    pub fn new(
        client: ConnectClient,
        load: impl Fn() -> Result<ManifestSet, ManifestError> + Send + Sync + 'static,
        interval: Duration,
    ) -> Self {
        Self {
            client,
            load: Arc::new(load),
            interval,
            revert: false,
            prune: false,
            apply_options: ApplyOptions::default(),
            status: Arc::new(Mutex::new(DriftStatus::default())),
        }
    }

    /// Apply the manifests again when drift is found.
    pub fn revert(mut self, revert: bool) -> Self {
        self.revert = revert;
        self
    }

    /// Undeclared connectors are drift (and deleted when reverting).
    pub fn prune(mut self, prune: bool) -> Self {
        self.prune = prune;
        self
    }

    pub fn apply_options(mut self, options: ApplyOptions) -> Self {
        self.apply_options = options;
        self
    }

    /// The shared status (counters and last check).
    pub fn status(&self) -> Arc<Mutex<DriftStatus>> {
        Arc::clone(&self.status)
    }

    /// One check (and revert, when on); recorded in the status and the audit trail.
    pub async fn check_once(&self) -> DriftCheck {
        let check = self.check_inner().await;
        audit(&check, self.revert);
        if let Ok(mut status) = self.status.lock() {
            status.record(&check);
        }
        check
    }

    async fn check_inner(&self) -> DriftCheck {
        let failed = |error: String| DriftCheck {
            report: None,
            revert: None,
            error: Some(error),
        };
        let manifests = match (self.load)() {
            Ok(m) => m,
            Err(e) => return failed(format!("cannot load the manifests: {e}")),
        };
        let live = match fetch_live(&self.client).await {
            Ok(l) => l,
            Err(e) => return failed(format!("cannot read the cluster: {e}")),
        };
        let plan = plan(&manifests.desired(), &live_configs(&live), self.prune);
        let report = DriftReport::from_plan(&plan, now());
        if !report.has_drift() || !self.revert {
            return DriftCheck {
                report: Some(report),
                revert: None,
                error: None,
            };
        }
        match apply(&self.client, &manifests, &live, &plan, self.apply_options).await {
            Ok(revert) => DriftCheck {
                error: (revert.failed() > 0)
                    .then(|| format!("{} connector(s) could not be reverted", revert.failed())),
                report: Some(report),
                revert: Some(revert),
            },
            Err(e) => DriftCheck {
                report: Some(report),
                revert: None,
                error: Some(format!("revert refused: {e}")),
            },
        }
    }

    /// Checks every `interval` until `shutdown` completes, calling `on_check` after each check.
    pub async fn run<S, F>(self, shutdown: S, mut on_check: F)
    where
        S: Future<Output = ()>,
        F: FnMut(&DriftCheck),
    {
        tokio::pin!(shutdown);
        loop {
            let check = self.check_once().await;
            on_check(&check);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

/// One audit record per drifted connector and per revert outcome.
fn audit(check: &DriftCheck, revert: bool) {
    if let Some(error) = &check.error {
        tracing::warn!(target: "lockstep::audit", action = "connectors.drift.check", outcome = "failed", error = %error);
    }
    if let Some(report) = &check.report {
        for c in &report.drifted {
            let keys: Vec<&str> = c.changes.iter().map(|k| k.key.as_str()).collect();
            tracing::warn!(
                target: "lockstep::audit",
                action = "connectors.drift.detected",
                connector = %c.name,
                planned = c.action.as_str(),
                keys = %keys.join(","),
                revert,
            );
        }
    }
    if let Some(outcomes) = &check.revert {
        for o in &outcomes.outcomes {
            tracing::warn!(
                target: "lockstep::audit",
                action = "connectors.drift.reverted",
                connector = %o.connector,
                planned = o.action.as_str(),
                outcome = ?o.status,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_connect::ConnectorConfig;
    use std::collections::BTreeMap;

    fn cfg(pairs: &[(&str, &str)]) -> ConnectorConfig {
        pairs.iter().copied().collect()
    }

    #[test]
    fn drift_is_a_non_empty_plan() {
        let desired: BTreeMap<String, ConnectorConfig> = [
            (
                "edited".to_string(),
                cfg(&[("connector.class", "X"), ("a", "1")]),
            ),
            ("deleted".to_string(), cfg(&[("connector.class", "X")])),
            ("same".to_string(), cfg(&[("connector.class", "X")])),
        ]
        .into();
        let live: BTreeMap<String, ConnectorConfig> = [
            (
                "edited".to_string(),
                cfg(&[("connector.class", "X"), ("a", "2")]),
            ),
            (
                "same".to_string(),
                cfg(&[("connector.class", "X"), ("name", "same")]),
            ),
            ("manual".to_string(), cfg(&[("connector.class", "X")])),
        ]
        .into();
        let report = DriftReport::from_plan(&plan(&desired, &live, false), 7);
        let drifted: Vec<(&str, Action)> = report
            .drifted
            .iter()
            .map(|c| (c.name.as_str(), c.action))
            .collect();
        assert_eq!(
            drifted,
            [("deleted", Action::Create), ("edited", Action::Update)]
        );
        assert_eq!(report.unmanaged, ["manual"]);
        assert!(report.has_drift());
        let pruned = DriftReport::from_plan(&plan(&desired, &live, true), 7);
        assert_eq!(pruned.drifted.len(), 3);
        assert!(pruned.unmanaged.is_empty());
        let clean = DriftReport::from_plan(&plan(&BTreeMap::new(), &live, false), 7);
        assert!(!clean.has_drift());
    }

    #[test]
    fn status_counts_checks_and_renders_metrics() {
        let mut status = DriftStatus::default();
        let report = DriftReport {
            checked_at: 1,
            drifted: vec![ConnectorPlan {
                name: "a".into(),
                action: Action::Update,
                changes: Vec::new(),
            }],
            unmanaged: Vec::new(),
        };
        status.record(&DriftCheck {
            report: Some(report),
            revert: None,
            error: None,
        });
        status.record(&DriftCheck {
            report: None,
            revert: None,
            error: Some("down".into()),
        });
        assert_eq!(
            (
                status.checks_total,
                status.check_failures_total,
                status.drift_detected_total
            ),
            (2, 1, 1)
        );
        let text = status.prometheus();
        assert!(
            text.contains("lockstep_connectors_drift_checks_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE lockstep_connectors_drifted gauge\nlockstep_connectors_drifted 1\n"
            ),
            "{text}"
        );
    }
}
