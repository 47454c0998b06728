//! The plan: desired configurations against live ones, per connector and per key. Pure.
//!
//! Values in a plan are display-safe: secrets are masked with
//! [`lockstep_connect::mask_value`] (config-provider placeholders stay visible, they are
//! references), and credentials embedded in other values are scrubbed. The comparison itself
//! uses the real values, so a changed secret is still detected and shown as `**** -> ****`.

use std::collections::BTreeMap;

use lockstep_connect::{
    is_config_provider_placeholder, is_sensitive_key, mask_value, ConnectorConfig,
};
use serde::Serialize;

/// What apply would do to a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Declared, absent from the cluster.
    Create,
    /// Declared and present, with a different configuration.
    Update,
    /// Present, not declared, and pruning was asked for.
    Delete,
    /// Declared and present with the same configuration.
    Unchanged,
    /// Present, not declared, left alone (no pruning).
    Unmanaged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Unchanged => "unchanged",
            Self::Unmanaged => "unmanaged",
        }
    }

    /// True when apply would change the cluster.
    pub fn is_change(self) -> bool {
        matches!(self, Self::Create | Self::Update | Self::Delete)
    }
}

/// How one key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyChange {
    Added,
    Removed,
    Changed,
}

/// One key's difference, with display-safe values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDiff {
    pub key: String,
    pub change: KeyChange,
    /// Live value (masked when secret); `None` when added.
    pub before: Option<String>,
    /// Desired value (masked when secret); `None` when removed.
    pub after: Option<String>,
    /// The key holds a secret whose value is masked on at least one side.
    pub secret: bool,
}

/// The plan for one connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectorPlan {
    pub name: String,
    pub action: Action,
    /// Per-key differences (creates and deletes list every key).
    pub changes: Vec<KeyDiff>,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
    pub unmanaged: usize,
}

/// Every connector's plan, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub connectors: Vec<ConnectorPlan>,
    pub summary: PlanSummary,
}

impl Plan {
    /// True when apply would change anything.
    pub fn has_changes(&self) -> bool {
        self.connectors.iter().any(|c| c.action.is_change())
    }

    pub fn get(&self, name: &str) -> Option<&ConnectorPlan> {
        self.connectors.iter().find(|c| c.name == name)
    }

    /// The connectors apply would touch, in apply order: creates and updates by name, then
    /// deletes by name.
    pub fn changes_in_order(&self) -> impl Iterator<Item = &ConnectorPlan> {
        let first = self
            .connectors
            .iter()
            .filter(|c| matches!(c.action, Action::Create | Action::Update));
        let then = self
            .connectors
            .iter()
            .filter(|c| c.action == Action::Delete);
        first.chain(then)
    }
}

/// Keys that Connect adds or that identify rather than configure: never part of a diff.
const IGNORED_KEYS: &[&str] = &["name"];

fn comparable(config: &ConnectorConfig) -> BTreeMap<&str, &str> {
    config
        .iter()
        .filter(|(k, _)| !IGNORED_KEYS.contains(k))
        .collect()
}

fn display(key: &str, value: &str) -> String {
    mask_value(key, value).into_owned()
}

fn is_masked(key: &str, value: &str) -> bool {
    is_sensitive_key(key) && !value.is_empty() && !is_config_provider_placeholder(value)
}

/// The per-key difference of two configurations (`name` ignored), in key order.
pub fn diff_configs(live: &ConnectorConfig, desired: &ConnectorConfig) -> Vec<KeyDiff> {
    let live = comparable(live);
    let desired = comparable(desired);
    let mut keys: Vec<&str> = live.keys().chain(desired.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let before = live.get(key).copied();
            let after = desired.get(key).copied();
            let change = match (before, after) {
                (None, Some(_)) => KeyChange::Added,
                (Some(_), None) => KeyChange::Removed,
                (Some(b), Some(a)) if b != a => KeyChange::Changed,
                _ => return None,
            };
            Some(KeyDiff {
                key: key.to_string(),
                change,
                secret: before.is_some_and(|v| is_masked(key, v))
                    || after.is_some_and(|v| is_masked(key, v)),
                before: before.map(|v| display(key, v)),
                after: after.map(|v| display(key, v)),
            })
        })
        .collect()
}

/// Plans `desired` against `live` (both by connector name; `name` keys are ignored).
/// Live connectors that are not declared are [`Action::Delete`] with `prune`, otherwise
/// [`Action::Unmanaged`].
pub fn plan(
    desired: &BTreeMap<String, ConnectorConfig>,
    live: &BTreeMap<String, ConnectorConfig>,
    prune: bool,
) -> Plan {
    let empty = ConnectorConfig::new();
    let mut names: Vec<&String> = desired.keys().chain(live.keys()).collect();
    names.sort();
    names.dedup();
    let mut summary = PlanSummary::default();
    let connectors = names
        .into_iter()
        .map(|name| {
            let (action, changes) = match (desired.get(name), live.get(name)) {
                (Some(want), None) => (Action::Create, diff_configs(&empty, want)),
                (Some(want), Some(have)) => {
                    let changes = diff_configs(have, want);
                    if changes.is_empty() {
                        (Action::Unchanged, changes)
                    } else {
                        (Action::Update, changes)
                    }
                }
                (None, Some(have)) if prune => (Action::Delete, diff_configs(have, &empty)),
                (None, _) => (Action::Unmanaged, Vec::new()),
            };
            match action {
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Delete => summary.delete += 1,
                Action::Unchanged => summary.unchanged += 1,
                Action::Unmanaged => summary.unmanaged += 1,
            }
            ConnectorPlan {
                name: name.clone(),
                action,
                changes,
            }
        })
        .collect();
    Plan {
        connectors,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> ConnectorConfig {
        pairs.iter().copied().collect()
    }

    fn set(items: &[(&str, ConnectorConfig)]) -> BTreeMap<String, ConnectorConfig> {
        items
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect()
    }

    const CLASS: (&str, &str) = (
        "connector.class",
        "io.debezium.connector.postgresql.PostgresConnector",
    );

    #[test]
    fn actions_table() {
        let base = cfg(&[CLASS, ("snapshot.mode", "initial")]);
        let changed = cfg(&[CLASS, ("snapshot.mode", "no_data")]);
        let with_name = cfg(&[CLASS, ("snapshot.mode", "initial"), ("name", "a")]);
        let desired = set(&[
            ("a", base.clone()),
            ("b", base.clone()),
            ("c", changed.clone()),
        ]);
        let live = set(&[("a", with_name), ("c", base.clone()), ("z", base.clone())]);

        let p = plan(&desired, &live, false);
        let actions: Vec<(&str, Action)> = p
            .connectors
            .iter()
            .map(|c| (c.name.as_str(), c.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("a", Action::Unchanged),
                ("b", Action::Create),
                ("c", Action::Update),
                ("z", Action::Unmanaged)
            ]
        );
        assert!(p.has_changes());
        assert_eq!(
            p.summary,
            PlanSummary {
                create: 1,
                update: 1,
                delete: 0,
                unchanged: 1,
                unmanaged: 1
            }
        );
        let pruned = plan(&desired, &live, true);
        assert_eq!(pruned.get("z").map(|c| c.action), Some(Action::Delete));
        let order: Vec<&str> = pruned.changes_in_order().map(|c| c.name.as_str()).collect();
        assert_eq!(order, ["b", "c", "z"]);

        let same = plan(&set(&[("a", base.clone())]), &set(&[("a", base)]), true);
        assert!(!same.has_changes());
    }

    #[test]
    fn an_update_lists_exactly_the_changed_keys() {
        let live = cfg(&[CLASS, ("a", "1"), ("b", "2"), ("gone", "x"), ("name", "n")]);
        let desired = cfg(&[CLASS, ("a", "1"), ("b", "3"), ("new", "y")]);
        let diff = diff_configs(&live, &desired);
        let got: Vec<(&str, KeyChange, Option<&str>, Option<&str>)> = diff
            .iter()
            .map(|d| {
                (
                    d.key.as_str(),
                    d.change,
                    d.before.as_deref(),
                    d.after.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("b", KeyChange::Changed, Some("2"), Some("3")),
                ("gone", KeyChange::Removed, Some("x"), None),
                ("new", KeyChange::Added, None, Some("y")),
            ]
        );
    }

    #[test]
    fn secrets_are_compared_but_never_shown() {
        // (live, desired, shown live, shown desired, secret)
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, bool);
        let cases: &[Case] = &[
            // literal -> literal: detected, both masked
            ("hunter2", "hunter3", Some("****"), Some("****"), true),
            // literal -> placeholder: the reference is shown, the literal is not
            (
                "hunter2",
                "${file:/s.properties:pw}",
                Some("****"),
                Some("${file:/s.properties:pw}"),
                true,
            ),
            // placeholder -> placeholder: both references shown
            (
                "${env:A}",
                "${env:B}",
                Some("${env:A}"),
                Some("${env:B}"),
                false,
            ),
        ];
        for (before, after, shown_before, shown_after, secret) in cases {
            let diff = diff_configs(
                &cfg(&[CLASS, ("database.password", before)]),
                &cfg(&[CLASS, ("database.password", after)]),
            );
            assert_eq!(diff.len(), 1, "{before} -> {after}");
            let d = &diff[0];
            assert_eq!(d.before.as_deref(), *shown_before);
            assert_eq!(d.after.as_deref(), *shown_after);
            assert_eq!(d.secret, *secret);
            let json = serde_json::to_string(d).expect("json");
            assert!(!json.contains("hunter"), "{json}");
        }
        // An unchanged placeholder is unchanged: compared like for like, never resolved.
        let same = cfg(&[CLASS, ("database.password", "${file:/s.properties:pw}")]);
        assert!(diff_configs(&same, &same).is_empty());
        // Credentials embedded in URLs are scrubbed too.
        let diff = diff_configs(
            &cfg(&[
                CLASS,
                (
                    "connection.url",
                    "jdbc:postgresql://db/app?user=a&password=s3cret",
                ),
            ]),
            &cfg(&[
                CLASS,
                (
                    "connection.url",
                    "jdbc:postgresql://db/app?user=a&password=other",
                ),
            ]),
        );
        let json = serde_json::to_string(&diff).expect("json");
        assert!(
            !json.contains("s3cret") && !json.contains("other"),
            "{json}"
        );
    }

    #[test]
    fn create_and_delete_list_every_key_masked() {
        let desired = set(&[("n", cfg(&[CLASS, ("database.password", "hunter2")]))]);
        let p = plan(&desired, &BTreeMap::new(), false);
        let c = p.get("n").expect("planned");
        assert_eq!(c.action, Action::Create);
        assert_eq!(c.changes.len(), 2);
        assert!(c.changes.iter().all(|d| d.change == KeyChange::Added));
        assert!(!format!("{p:?}").contains("hunter2"));
        let p = plan(&BTreeMap::new(), &desired, true);
        let c = p.get("n").expect("planned");
        assert_eq!(c.action, Action::Delete);
        assert!(c.changes.iter().all(|d| d.change == KeyChange::Removed));
    }
}
