//! Drift: the difference between the manifests and the cluster, seen after the fact.
//!
//! [`DriftReport::from_plan`] is pure: drift is a plan that is not empty. A declared connector
//! that is missing (deleted by hand) or changed (edited through the REST API) has drifted; an
//! undeclared connector is listed as unmanaged, and counts as drift only with `prune`.
//!
//! [`audit_events`] is pure too: from a check (and the drift still standing after the one
//! before) it decides which audit records to append: one per connector whose drift is new or
//! different, one per connector whose drift went away without a revert, one per revert
//! outcome. Values in them are the plan's, already masked with `mask_value`. The caller (the
//! adapter) appends them to the store's audit log with actor [`AUDIT_ACTOR`].
//!
//! [`DriftWatcher`] runs the check in a loop for the service: it records every check in a
//! shared [`DriftStatus`] (counters and the last report) and in [`DriftMetrics`], attaches the
//! audit records to each [`DriftCheck`], and with `revert` applies the manifests again
//! (validated first, like `apply`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lockstep_connect::ConnectClient;
use serde::Serialize;

use crate::apply::{apply, fetch_live, live_configs, ApplyOptions, ApplyReport, OutcomeStatus};
use crate::manifest::{ManifestError, ManifestSet};
use crate::metrics::DriftMetrics;
use crate::plan::{plan, Action, ConnectorPlan, Plan};

/// The actor of the drift loop's audit records.
pub const AUDIT_ACTOR: &str = "connectors-drift";

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

    /// The drift still standing once `revert` has run: connectors whose revert was applied
    /// are no longer drifted.
    pub fn standing_after(&self, revert: Option<&ApplyReport>) -> DriftReport {
        let reverted = |name: &str| {
            revert.is_some_and(|r| {
                r.outcomes.iter().any(|o| {
                    o.connector == name && matches!(o.status, OutcomeStatus::Applied { .. })
                })
            })
        };
        DriftReport {
            checked_at: self.checked_at,
            drifted: self
                .drifted
                .iter()
                .filter(|c| !reverted(&c.name))
                .cloned()
                .collect(),
            unmanaged: self.unmanaged.clone(),
        }
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
    /// The audit records this check calls for (see [`audit_events`]); the adapter appends
    /// them to the store.
    #[serde(skip)]
    pub audit: Vec<DriftAuditEvent>,
}

impl DriftCheck {
    /// Drift was found and reverting was on, but the revert changed nothing (validation
    /// rejected the manifests, or the cluster could not be read for it).
    pub fn revert_refused(&self) -> bool {
        self.revert.is_none()
            && self.error.is_some()
            && self.report.as_ref().is_some_and(DriftReport::has_drift)
    }
}

/// One audit record the drift loop asks its adapter to append (actor [`AUDIT_ACTOR`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftAuditEvent {
    /// `connectors.drift.detected`, `connectors.drift.resolved`, `connectors.drift.reverted`,
    /// `connectors.drift.revert_failed` or `connectors.drift.revert_refused`.
    pub action: &'static str,
    /// The connector.
    pub subject: String,
    /// Display-safe details: every value went through `mask_value`.
    pub details: serde_json::Value,
}

/// The per-key diff as audit details. The field names avoid words the store's scrubber reads
/// as secret-bearing (`key`, `secret`): the values are already display-safe, and masking the
/// names of the changed settings would hide what drifted.
fn key_changes(c: &ConnectorPlan) -> serde_json::Value {
    c.changes
        .iter()
        .map(|k| {
            serde_json::json!({
                "setting": k.key,
                "change": k.change,
                "live": k.before,
                "declared": k.after,
                "masked": k.secret,
            })
        })
        .collect()
}

/// The audit records of one check. Pure.
///
/// `standing` is the drift left standing after the previous successful check
/// ([`DriftReport::standing_after`]); `None` for the first check (or a one-shot run), when
/// every drifted connector is recorded. A drift that persists unchanged between checks is
/// recorded once, not at every check; a connector that drifts again after a revert is recorded
/// again. A failed check records nothing (it changed nothing; it shows in the metrics).
pub fn audit_events(
    standing: Option<&DriftReport>,
    check: &DriftCheck,
    revert: bool,
) -> Vec<DriftAuditEvent> {
    let Some(report) = &check.report else {
        return Vec::new();
    };
    let mut events = Vec::new();
    for c in &report.drifted {
        let known = standing.is_some_and(|s| s.drifted.iter().any(|p| p == c));
        if !known {
            events.push(DriftAuditEvent {
                action: "connectors.drift.detected",
                subject: c.name.clone(),
                details: serde_json::json!({
                    "planned": c.action.as_str(),
                    "changes": key_changes(c),
                    "revert": revert,
                }),
            });
        }
    }
    if let Some(standing) = standing {
        for gone in standing
            .drifted
            .iter()
            .filter(|s| !report.drifted.iter().any(|c| c.name == s.name))
        {
            events.push(DriftAuditEvent {
                action: "connectors.drift.resolved",
                subject: gone.name.clone(),
                details: serde_json::json!({
                    "was": gone.action.as_str(),
                    "how": "the cluster matches the manifests again without a revert",
                }),
            });
        }
    }
    match &check.revert {
        Some(outcomes) => {
            for o in &outcomes.outcomes {
                let (action, details) = match &o.status {
                    OutcomeStatus::Applied { state } => (
                        "connectors.drift.reverted",
                        serde_json::json!({"planned": o.action.as_str(), "state": state}),
                    ),
                    OutcomeStatus::Failed { error } => (
                        "connectors.drift.revert_failed",
                        serde_json::json!({"planned": o.action.as_str(), "error": error}),
                    ),
                };
                events.push(DriftAuditEvent {
                    action,
                    subject: o.connector.clone(),
                    details,
                });
            }
        }
        None if check.revert_refused() => {
            let error = check.error.clone().unwrap_or_default();
            for c in &report.drifted {
                events.push(DriftAuditEvent {
                    action: "connectors.drift.revert_refused",
                    subject: c.name.clone(),
                    details: serde_json::json!({
                        "planned": c.action.as_str(),
                        "error": error,
                        "changed": "nothing",
                    }),
                });
            }
        }
        None => {}
    }
    events
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
    /// The drift left standing after the last successful check (and its revert): what the
    /// next check's audit records are relative to.
    #[serde(skip)]
    pub standing: Option<DriftReport>,
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
                self.standing = Some(report.standing_after(check.revert.as_ref()));
            }
            None => self.check_failures_total += 1,
        }
        if let Some(revert) = &check.revert {
            self.reverted_total += (revert.outcomes.len() - revert.failed()) as u64;
        }
        self.last = Some(check.clone());
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
    metrics: DriftMetrics,
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
            metrics: DriftMetrics::unregistered(),
        }
    }

    /// Count checks in these (registered) families.
    pub fn metrics(mut self, metrics: DriftMetrics) -> Self {
        self.metrics = metrics;
        self
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

    /// One check (and revert, when on); counted in the status and the metrics, with the
    /// audit records it calls for in [`DriftCheck::audit`].
    pub async fn check_once(&self) -> DriftCheck {
        let mut check = self.check_inner().await;
        self.metrics.observe(&check);
        // A poisoned lock only means another thread panicked mid-update: the counters are
        // still the best there is.
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        check.audit = audit_events(status.standing.as_ref(), &check, self.revert);
        status.record(&check);
        check
    }

    async fn check_inner(&self) -> DriftCheck {
        let failed = |error: String| DriftCheck {
            report: None,
            revert: None,
            error: Some(error),
            audit: Vec::new(),
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
                audit: Vec::new(),
            };
        }
        match apply(&self.client, &manifests, &live, &plan, self.apply_options).await {
            Ok(revert) => DriftCheck {
                error: (revert.failed() > 0)
                    .then(|| format!("{} connector(s) could not be reverted", revert.failed())),
                report: Some(report),
                revert: Some(revert),
                audit: Vec::new(),
            },
            Err(e) => DriftCheck {
                report: Some(report),
                revert: None,
                error: Some(format!("revert refused: {e}")),
                audit: Vec::new(),
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

    fn changed(name: &str, key: &str, before: &str, after: &str) -> ConnectorPlan {
        let live = cfg(&[("connector.class", "X"), (key, before)]);
        let desired = cfg(&[("connector.class", "X"), (key, after)]);
        let mut p = plan(
            &[(name.to_string(), desired)].into(),
            &[(name.to_string(), live)].into(),
            false,
        );
        p.connectors.remove(0)
    }

    fn report(drifted: Vec<ConnectorPlan>) -> DriftReport {
        DriftReport {
            checked_at: 1,
            drifted,
            unmanaged: Vec::new(),
        }
    }

    fn check(report: Option<DriftReport>, revert: Option<ApplyReport>) -> DriftCheck {
        DriftCheck {
            report,
            revert,
            error: None,
            audit: Vec::new(),
        }
    }

    fn outcome(name: &str, status: OutcomeStatus) -> crate::apply::ApplyOutcome {
        crate::apply::ApplyOutcome {
            connector: name.into(),
            action: Action::Update,
            status,
        }
    }

    fn actions(events: &[DriftAuditEvent]) -> Vec<(&str, &str)> {
        events
            .iter()
            .map(|e| (e.action, e.subject.as_str()))
            .collect()
    }

    #[test]
    fn status_counts_checks_and_remembers_the_standing_drift() {
        let mut status = DriftStatus::default();
        status.record(&check(
            Some(report(vec![changed("a", "x", "1", "2")])),
            None,
        ));
        status.record(&DriftCheck {
            error: Some("down".into()),
            ..check(None, None)
        });
        assert_eq!(
            (
                status.checks_total,
                status.check_failures_total,
                status.drift_detected_total,
                status.drifted_connectors
            ),
            (2, 1, 1, 1)
        );
        // A failed check keeps what was standing before it.
        assert_eq!(status.standing.as_ref().map(|s| s.drifted.len()), Some(1));
        let reverted = ApplyReport {
            outcomes: vec![outcome(
                "a",
                OutcomeStatus::Applied {
                    state: Some("RUNNING".into()),
                },
            )],
        };
        status.record(&check(
            Some(report(vec![changed("a", "x", "1", "2")])),
            Some(reverted),
        ));
        assert_eq!(status.reverted_total, 1);
        assert_eq!(status.standing.as_ref().map(|s| s.drifted.len()), Some(0));
    }

    #[test]
    fn audit_records_new_drift_once_and_every_revert_outcome() {
        let a = changed("a", "x", "1", "2");
        let b = changed("b", "database.password", "old-literal", "new-literal");
        let first = check(Some(report(vec![a.clone(), b.clone()])), None);
        let events = audit_events(None, &first, false);
        assert_eq!(
            actions(&events),
            [
                ("connectors.drift.detected", "a"),
                ("connectors.drift.detected", "b")
            ]
        );
        assert_eq!(events[0].details["changes"][0]["setting"], "x");
        assert_eq!(events[0].details["changes"][0]["live"], "1");
        assert_eq!(events[0].details["changes"][0]["declared"], "2");
        assert_eq!(events[0].details["changes"][0]["change"], "changed");
        // Secret values are masked before they reach the audit record.
        let text = serde_json::to_string(&events[1].details).expect("json");
        assert!(!text.contains("literal") && text.contains("****"), "{text}");
        assert_eq!(
            events[1].details["changes"][0]["setting"],
            "database.password"
        );
        assert_eq!(events[1].details["changes"][0]["masked"], true);

        // The same drift at the next check is not recorded again; a different diff is.
        let standing = first.report.as_ref().map(|r| r.standing_after(None));
        assert!(audit_events(standing.as_ref(), &first, false).is_empty());
        let a2 = changed("a", "x", "1", "3");
        let events = audit_events(
            standing.as_ref(),
            &check(Some(report(vec![a2, b.clone()])), None),
            false,
        );
        assert_eq!(actions(&events), [("connectors.drift.detected", "a")]);

        // Drift that went away without a revert is recorded as resolved.
        let events = audit_events(
            standing.as_ref(),
            &check(Some(report(vec![b.clone()])), None),
            false,
        );
        assert_eq!(actions(&events), [("connectors.drift.resolved", "a")]);

        // A failed check records nothing.
        let failed = DriftCheck {
            error: Some("cannot read the cluster".into()),
            ..check(None, None)
        };
        assert!(audit_events(standing.as_ref(), &failed, false).is_empty());

        // Reverting: one record per outcome; a reverted connector is not standing afterwards,
        // so drifting again is new drift.
        let revert = ApplyReport {
            outcomes: vec![
                outcome(
                    "a",
                    OutcomeStatus::Applied {
                        state: Some("RUNNING".into()),
                    },
                ),
                outcome(
                    "b",
                    OutcomeStatus::Failed {
                        error: "did not reach RUNNING".into(),
                    },
                ),
            ],
        };
        let reverting = check(
            Some(report(vec![a.clone(), b.clone()])),
            Some(revert.clone()),
        );
        let events = audit_events(None, &reverting, true);
        assert_eq!(
            actions(&events),
            [
                ("connectors.drift.detected", "a"),
                ("connectors.drift.detected", "b"),
                ("connectors.drift.reverted", "a"),
                ("connectors.drift.revert_failed", "b"),
            ]
        );
        assert_eq!(events[0].details["revert"], true);
        let standing = reverting
            .report
            .as_ref()
            .map(|r| r.standing_after(Some(&revert)));
        let again = audit_events(
            standing.as_ref(),
            &check(Some(report(vec![a.clone(), b.clone()])), None),
            true,
        );
        assert_eq!(actions(&again), [("connectors.drift.detected", "a")]);

        // A refused revert (validation) is recorded per drifted connector.
        let refused = DriftCheck {
            error: Some("revert refused: rejected by validation".into()),
            ..check(Some(report(vec![a])), None)
        };
        assert!(refused.revert_refused());
        let events = audit_events(None, &refused, true);
        assert_eq!(
            actions(&events),
            [
                ("connectors.drift.detected", "a"),
                ("connectors.drift.revert_refused", "a")
            ]
        );
        assert_eq!(events[1].details["changed"], "nothing");
    }
}
