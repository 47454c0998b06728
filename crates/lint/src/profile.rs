//! Profiles: which rules run and how serious they are, per kind of environment.

use std::collections::BTreeMap;

use regex::Regex;

use crate::rules::{find_rule, Severity};

/// The default topic naming convention: lower-case dot-separated segments
/// (`<prefix>.<schema>.<table>`, `dlq.orders-sink`), letters, digits, `_` and `-`.
pub const DEFAULT_TOPIC_PATTERN: &str = r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$";

/// A named set of severity overrides plus rule settings.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// Rule id → severity; `None` turns the rule off.
    overrides: BTreeMap<&'static str, Option<Severity>>,
    /// Topic names must match this (LS801).
    pub topic_pattern: Regex,
}

/// The built-in profiles.
pub const PROFILES: &[(&str, &str)] = &[
    ("default", "every rule at its default severity"),
    (
        "regulated",
        "banks and telcos: schemaless JSON, message logging, sink auto-DDL, double decimals, disabled tombstones and implicit converters are errors",
    ),
];

impl Profile {
    /// A built-in profile by name.
    pub fn named(name: &str) -> Option<Self> {
        let overrides: &[(&'static str, Option<Severity>)] = match name {
            "default" => &[],
            "regulated" => &[
                ("LS101", Some(Severity::Error)),
                ("LS102", Some(Severity::Error)),
                ("LS203", Some(Severity::Error)),
                ("LS301", Some(Severity::Error)),
                ("LS303", Some(Severity::Error)),
                ("LS607", Some(Severity::Error)),
                ("LS608", Some(Severity::Error)),
            ],
            _ => return None,
        };
        Some(Self {
            name: name.to_string(),
            overrides: overrides.iter().copied().collect(),
            topic_pattern: default_pattern(),
        })
    }

    /// The severity of `rule` in this profile; `None` when the rule is off.
    pub fn severity(&self, rule: &str) -> Option<Severity> {
        let info = find_rule(rule)?;
        match self.overrides.get(info.id) {
            Some(s) => *s,
            None => Some(info.default_severity),
        }
    }

    /// Overrides one rule (by id or name): `None` turns it off.
    pub fn set(&mut self, rule: &str, severity: Option<Severity>) -> Result<(), String> {
        let info = find_rule(rule).ok_or_else(|| format!("no rule '{rule}'"))?;
        self.overrides.insert(info.id, severity);
        Ok(())
    }

    /// Replaces the topic naming convention.
    pub fn with_topic_pattern(mut self, pattern: &str) -> Result<Self, String> {
        self.topic_pattern = Regex::new(pattern).map_err(|e| {
            format!("the topic pattern '{pattern}' is not a regular expression: {e}")
        })?;
        Ok(self)
    }
}

fn default_pattern() -> Regex {
    #[allow(clippy::expect_used)]
    Regex::new(DEFAULT_TOPIC_PATTERN).expect("the built-in topic pattern compiles (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_resolve_severities() {
        let default = Profile::named("default").expect("default");
        let regulated = Profile::named("regulated").expect("regulated");
        assert_eq!(default.severity("LS301"), Some(Severity::Info));
        assert_eq!(regulated.severity("LS301"), Some(Severity::Error));
        assert_eq!(
            regulated.severity("sink-schema-auto-change"),
            Some(Severity::Error)
        );
        assert_eq!(default.severity("LS999"), None);
        assert!(Profile::named("lax").is_none());
        let mut custom = default.clone();
        custom.set("LS604", None).expect("known rule");
        assert_eq!(custom.severity("LS604"), None);
        assert!(custom.set("nope", None).is_err());
        assert!(Regex::new(DEFAULT_TOPIC_PATTERN).is_ok());
        assert!(default.clone().with_topic_pattern("(").is_err());
        let p = default.with_topic_pattern(r"^prod\.").expect("valid");
        assert!(p.topic_pattern.is_match("prod.orders") && !p.topic_pattern.is_match("dev.orders"));
    }
}
