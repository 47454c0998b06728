//! The drift loop's Prometheus families, registered under `lockstep_connectors_` in the
//! registry `lockstep serve` exposes at `/metrics` (next to the sink's and the watchdog's).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::apply::OutcomeStatus;
use crate::drift::DriftCheck;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevertLabels {
    /// `applied`, `failed` (the change or the wait failed) or `refused` (validation rejected
    /// the manifests, or the cluster could not be read; nothing was changed).
    pub outcome: String,
}

/// Handles to the drift families; cheap to clone (clones share their series).
#[derive(Clone, Debug, Default)]
pub struct DriftMetrics {
    /// `lockstep_connectors_drifted`: connectors drifted at the last successful check.
    pub drifted: Gauge,
    /// `lockstep_connectors_drift_checks_total`.
    pub checks: Counter,
    /// `lockstep_connectors_drift_check_failures_total`.
    pub check_failures: Counter,
    /// `lockstep_connectors_drift_detected_total`: checks that found drift.
    pub detected: Counter,
    /// `lockstep_connectors_drift_reverts_total{outcome}`: per connector.
    pub reverts: Family<RevertLabels, Counter>,
}

impl DriftMetrics {
    /// Creates the families and registers them (names prefixed `lockstep_connectors_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        let sub = registry.sub_registry_with_prefix("lockstep_connectors");
        sub.register(
            "drifted",
            "Declared connectors whose live state differed from the manifests at the last successful drift check",
            m.drifted.clone(),
        );
        sub.register("drift_checks", "Drift checks run", m.checks.clone());
        sub.register(
            "drift_check_failures",
            "Drift checks that could not load the manifests or read the cluster",
            m.check_failures.clone(),
        );
        sub.register(
            "drift_detected",
            "Drift checks that found drift",
            m.detected.clone(),
        );
        sub.register(
            "drift_reverts",
            "Connectors the drift loop tried to revert, by outcome (applied, failed, refused)",
            m.reverts.clone(),
        );
        m
    }

    /// Families not registered anywhere (`connectors drift --watch`, tests).
    pub fn unregistered() -> Self {
        Self::default()
    }

    /// Counts one check of the loop.
    pub fn observe(&self, check: &DriftCheck) {
        self.checks.inc();
        let Some(report) = &check.report else {
            self.check_failures.inc();
            return;
        };
        self.drifted
            .set(i64::try_from(report.drifted.len()).unwrap_or(i64::MAX));
        if report.has_drift() {
            self.detected.inc();
        }
        let count = |outcome: &str, n: usize| {
            if n > 0 {
                self.reverts
                    .get_or_create(&RevertLabels {
                        outcome: outcome.into(),
                    })
                    .inc_by(n as u64);
            }
        };
        match &check.revert {
            Some(revert) => {
                let failed = revert
                    .outcomes
                    .iter()
                    .filter(|o| matches!(o.status, OutcomeStatus::Failed { .. }))
                    .count();
                count("applied", revert.outcomes.len() - failed);
                count("failed", failed);
            }
            None if check.revert_refused() => count("refused", report.drifted.len()),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{ApplyOutcome, ApplyReport};
    use crate::drift::DriftReport;
    use crate::plan::{Action, ConnectorPlan};

    fn drifted(names: &[&str]) -> DriftReport {
        DriftReport {
            checked_at: 1,
            drifted: names
                .iter()
                .map(|n| ConnectorPlan {
                    name: n.to_string(),
                    action: Action::Update,
                    changes: Vec::new(),
                })
                .collect(),
            unmanaged: Vec::new(),
        }
    }

    #[test]
    fn families_encode_under_their_documented_names() {
        let mut registry = Registry::default();
        let m = DriftMetrics::register(&mut registry);
        m.observe(&DriftCheck {
            report: Some(drifted(&["a", "b"])),
            revert: Some(ApplyReport {
                outcomes: vec![
                    ApplyOutcome {
                        connector: "a".into(),
                        action: Action::Update,
                        status: OutcomeStatus::Applied {
                            state: Some("RUNNING".into()),
                        },
                    },
                    ApplyOutcome {
                        connector: "b".into(),
                        action: Action::Update,
                        status: OutcomeStatus::Failed {
                            error: "timeout".into(),
                        },
                    },
                ],
            }),
            error: None,
            audit: Vec::new(),
        });
        m.observe(&DriftCheck {
            report: Some(drifted(&["c"])),
            revert: None,
            error: Some("revert refused: invalid".into()),
            audit: Vec::new(),
        });
        m.observe(&DriftCheck {
            report: None,
            revert: None,
            error: Some("cannot read the cluster".into()),
            audit: Vec::new(),
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "lockstep_connectors_drifted 1",
            "lockstep_connectors_drift_checks_total 3",
            "lockstep_connectors_drift_check_failures_total 1",
            "lockstep_connectors_drift_detected_total 2",
            "lockstep_connectors_drift_reverts_total{outcome=\"applied\"} 1",
            "lockstep_connectors_drift_reverts_total{outcome=\"failed\"} 1",
            "lockstep_connectors_drift_reverts_total{outcome=\"refused\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
