//! `lockstep lint connectors`: a production-readiness linter for Kafka Connect and Debezium
//! connector configurations, in the style of clippy and Squawk.
//!
//! * [`catalog`]: rules with stable ids (`LS201`), names, default severities, rationale and fix.
//!   Rules are pure functions over one configuration plus [`Context`]; two rules
//!   (`LS610`, `LS702`) look at every connector linted together.
//! * [`Profile`]: severities per environment kind (`default`, `regulated`) and the topic
//!   naming convention.
//! * Inline suppressions in a manifest (`lint: {suppress: {LS604: "why"}}`) need a
//!   justification: one without is itself an error (`LS001`) and suppresses nothing.
//! * Output: text with code frames, JSON, and SARIF 2.1.0 ([`render`]).
//!
//! Invariant: no finding message contains a configuration value of a secret key or an
//! embedded credential; messages name keys, not secret values.

#![forbid(unsafe_code)]

mod profile;
pub mod render;
mod rules;

use std::collections::BTreeMap;

use lockstep_connectors::{Location, Manifest};
use serde::Serialize;

pub use profile::{Profile, DEFAULT_TOPIC_PATTERN, PROFILES};
pub use rules::{catalog, find_rule, Context, Kind, RuleInfo, Severity, Subject};

use rules::{
    derived_partitions, set_hits, sink_topics, RULES, SUPPRESSION_WITHOUT_JUSTIFICATION,
    UNKNOWN_RULE_IN_SUPPRESSION,
};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub rule_name: &'static str,
    pub severity: Severity,
    pub connector: String,
    /// The configuration key concerned, when it exists in the config.
    pub key: Option<String>,
    pub message: String,
    pub location: Option<Location>,
    /// The justification of the inline suppression that silences this finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

/// Counts of unsuppressed findings per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub error: usize,
    pub warning: usize,
    pub info: usize,
    pub suppressed: usize,
}

/// Everything found, sorted by file, line and rule.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub profile: String,
    pub connectors: usize,
    pub findings: Vec<Finding>,
    pub counts: Counts,
}

impl Report {
    /// The highest severity among unsuppressed findings.
    pub fn max_severity(&self) -> Option<Severity> {
        self.active().map(|f| f.severity).max()
    }

    /// Findings not silenced by a suppression.
    pub fn active(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.suppressed.is_none())
    }
}

fn info_of(id: &str) -> Option<&'static RuleInfo> {
    catalog().find(|r| r.id == id)
}

/// Lints `manifests` together (set rules see all of them) under `profile`.
pub fn lint(manifests: &[Manifest], profile: &Profile, context: &Context) -> Report {
    let subjects: Vec<Subject> = manifests
        .iter()
        .map(|m| Subject {
            name: &m.name,
            config: &m.config,
        })
        .collect();
    let mut ctx = context.clone();
    for (topic, partitions) in derived_partitions(&subjects, &sink_topics(&subjects)) {
        ctx.topic_partitions.entry(topic).or_insert(partitions);
    }
    let by_name: BTreeMap<&str, &Manifest> =
        manifests.iter().map(|m| (m.name.as_str(), m)).collect();

    let mut findings = Vec::new();
    let mut push = |rule: &str, manifest: &Manifest, key: Option<String>, message: String| {
        let (Some(info), Some(severity)) = (info_of(rule), profile.severity(rule)) else {
            return;
        };
        let location = key
            .as_deref()
            .and_then(|k| manifest.key_location(k))
            .cloned()
            .or_else(|| Some(manifest.location().clone()));
        findings.push(Finding {
            rule: info.id,
            rule_name: info.name,
            severity,
            connector: manifest.name.clone(),
            key: key.filter(|k| manifest.config.contains_key(k)),
            message,
            location,
            suppressed: None,
        });
    };

    for (manifest, subject) in manifests.iter().zip(&subjects) {
        for rule in RULES {
            if profile.severity(rule.info.id).is_none() {
                continue;
            }
            for h in (rule.check)(subject, &ctx, profile) {
                push(rule.info.id, manifest, h.key, h.message);
            }
        }
    }
    for (rule, connector, key, message) in set_hits(&subjects) {
        if let Some(manifest) = by_name.get(connector.as_str()) {
            push(rule, manifest, key, message);
        }
    }

    // Inline suppressions.
    let mut meta = Vec::new();
    for manifest in manifests {
        for s in &manifest.suppressions {
            let Some(info) = find_rule(&s.rule) else {
                meta.push((
                    UNKNOWN_RULE_IN_SUPPRESSION,
                    manifest,
                    s.location.clone(),
                    format!("suppression of unknown rule '{}'", s.rule),
                ));
                continue;
            };
            let Some(justification) = &s.justification else {
                meta.push((
                    SUPPRESSION_WITHOUT_JUSTIFICATION,
                    manifest,
                    s.location.clone(),
                    format!(
                        "suppression of {} ({}) has no justification, so it suppresses nothing",
                        info.id, info.name
                    ),
                ));
                continue;
            };
            if matches!(
                info.id,
                SUPPRESSION_WITHOUT_JUSTIFICATION | UNKNOWN_RULE_IN_SUPPRESSION
            ) {
                continue;
            }
            for f in findings
                .iter_mut()
                .filter(|f| f.connector == manifest.name && f.rule == info.id)
            {
                f.suppressed = Some(justification.clone());
            }
        }
    }
    for (rule, manifest, location, message) in meta {
        let (Some(info), Some(severity)) = (info_of(rule), profile.severity(rule)) else {
            continue;
        };
        findings.push(Finding {
            rule: info.id,
            rule_name: info.name,
            severity,
            connector: manifest.name.clone(),
            key: None,
            message,
            location: location.or_else(|| Some(manifest.location().clone())),
            suppressed: None,
        });
    }

    findings.sort_by(|a, b| {
        (&a.location, a.rule, &a.connector, &a.message).cmp(&(
            &b.location,
            b.rule,
            &b.connector,
            &b.message,
        ))
    });
    let mut counts = Counts::default();
    for f in &findings {
        match (f.suppressed.is_some(), f.severity) {
            (true, _) => counts.suppressed += 1,
            (false, Severity::Error) => counts.error += 1,
            (false, Severity::Warning) => counts.warning += 1,
            (false, Severity::Info) => counts.info += 1,
        }
    }
    Report {
        profile: profile.name.clone(),
        connectors: manifests.len(),
        findings,
        counts,
    }
}

#[cfg(test)]
mod tests;
