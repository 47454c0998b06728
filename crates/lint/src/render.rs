//! Report output: human text with code frames, JSON, SARIF 2.1.0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use lockstep_connect::{is_config_provider_placeholder, is_sensitive_key, scrub_text, MASK};
use serde_json::{json, Value};

use crate::rules::{catalog, Severity};
use crate::{Finding, Report};

/// Reads source lines for code frames; missing files just lose their frame.
#[derive(Default)]
struct Sources(BTreeMap<PathBuf, Vec<String>>);

impl Sources {
    fn line(&mut self, file: &Path, line: usize) -> Option<&str> {
        let lines = self.0.entry(file.to_path_buf()).or_insert_with(|| {
            std::fs::read_to_string(file)
                .map(|t| t.lines().map(str::to_string).collect())
                .unwrap_or_default()
        });
        lines.get(line.checked_sub(1)?).map(String::as_str)
    }
}

fn rule_text(id: &str) -> (&'static str, &'static str) {
    catalog()
        .find(|r| r.id == id)
        .map(|r| (r.rationale, r.fix))
        .unwrap_or(("", ""))
}

/// A source line as shown in a code frame: the value of a secret key is replaced by `****`
/// (unless it is a config-provider reference), and credentials inside other values are
/// scrubbed. Works for `key: value` (YAML) and `"key": "value"` (JSON) lines.
pub fn mask_frame_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let (key, rest) = match trimmed.strip_prefix('"') {
        Some(r) => match r.split_once('"') {
            Some((k, rest)) => (k, rest),
            None => return scrub_text(line).into_owned(),
        },
        None => match trimmed.split_once(':') {
            Some((k, rest)) => (k.trim_end(), &trimmed[k.len()..][..rest.len() + 1]),
            None => return scrub_text(line).into_owned(),
        },
    };
    let Some(after_colon) = rest.trim_start().strip_prefix(':') else {
        return scrub_text(line).into_owned();
    };
    // The value ends at a YAML comment or a JSON separator.
    let (value_part, tail) = match after_colon.find(" #") {
        Some(i) => after_colon.split_at(i),
        None => (after_colon, ""),
    };
    let value = value_part
        .trim()
        .trim_end_matches(',')
        .trim()
        .trim_matches(['"', '\'']);
    if is_sensitive_key(key) && !value.is_empty() && !is_config_provider_placeholder(value) {
        let quote = if trimmed.starts_with('"') { "\"" } else { "" };
        let comma = if value_part.trim_end().ends_with(',') {
            ","
        } else {
            ""
        };
        return format!("{indent}{quote}{key}{quote}: {quote}{MASK}{quote}{comma}{tail}");
    }
    scrub_text(line).into_owned()
}

/// Human text: one block per finding with the offending line, then a summary.
pub fn text(report: &Report) -> String {
    let mut sources = Sources::default();
    let mut out = String::new();
    for f in report.active() {
        let _ = writeln!(out, "{}[{}]: {}", f.severity.as_str(), f.rule, f.message);
        if let Some(loc) = &f.location {
            let _ = writeln!(out, "  --> {loc}");
            if let Some(src) = sources.line(&loc.file, loc.line) {
                let src = mask_frame_line(src);
                let width = loc.line.to_string().len();
                let pad = " ".repeat(width);
                let span = f.key.as_deref().map(|k| k.len().max(1)).unwrap_or_else(|| {
                    let body = src.trim();
                    body.find(" #")
                        .map_or(body, |i| &body[..i])
                        .trim_end()
                        .len()
                        .max(1)
                });
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{} | {src}", loc.line);
                let _ = writeln!(
                    out,
                    "{pad} | {}{}",
                    " ".repeat(loc.column.saturating_sub(1)),
                    "^".repeat(span)
                );
            }
        }
        let (why, fix) = rule_text(f.rule);
        let _ = writeln!(out, "  = connector: {} ({})", f.connector, f.rule_name);
        let _ = writeln!(out, "  = why: {why}");
        let _ = writeln!(out, "  = fix: {fix}");
        out.push('\n');
    }
    let c = &report.counts;
    let _ = writeln!(
        out,
        "{} connector(s) linted with profile '{}': {} error(s), {} warning(s), {} info, {} suppressed",
        report.connectors, report.profile, c.error, c.warning, c.info, c.suppressed
    );
    out
}

/// The report as JSON (findings with location, counts).
pub fn json(report: &Report) -> String {
    let mut s =
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn uri(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

fn sarif_result(f: &Finding) -> Value {
    let mut result = json!({
        "ruleId": f.rule,
        "level": sarif_level(f.severity),
        "message": {"text": format!("{} (connector {})", f.message, f.connector)},
    });
    if let Some(loc) = &f.location {
        result["locations"] = json!([{
            "physicalLocation": {
                "artifactLocation": {"uri": uri(&loc.file)},
                "region": {"startLine": loc.line, "startColumn": loc.column}
            }
        }]);
    }
    if let Some(justification) = &f.suppressed {
        result["suppressions"] = json!([{"kind": "inSource", "justification": justification}]);
    }
    result
}

/// SARIF 2.1.0, for code-review tools (GitHub code scanning, GitLab, Sonar...).
pub fn sarif(report: &Report) -> String {
    let rules: Vec<Value> = catalog()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.rationale},
                "help": {"text": format!("{} Fix: {}", r.rationale, r.fix)},
                "defaultConfiguration": {"level": sarif_level(r.default_severity)}
            })
        })
        .collect();
    let results: Vec<Value> = report.findings.iter().map(sarif_result).collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "lockstep",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules
            }},
            "results": results
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::mask_frame_line;

    #[test]
    fn frame_lines_never_show_secrets() {
        let cases = [
            (
                "  database.password: Winter2024!   # expect: LS401",
                "  database.password: **** # expect: LS401",
            ),
            (
                "    \"connection.password\": \"hunter2\",",
                "    \"connection.password\": \"****\",",
            ),
            (
                "  database.password: ${file:/s.properties:pw}",
                "  database.password: ${file:/s.properties:pw}",
            ),
            (
                "  connection.url: jdbc:postgresql://db/app?user=a&password=s3cret",
                "  connection.url: jdbc:postgresql://db/app?user=a&password=****",
            ),
            (
                "  tasks.max: 3   # expect: LS501",
                "  tasks.max: 3   # expect: LS501",
            ),
            ("name: x", "name: x"),
            ("  - not a key", "  - not a key"),
        ];
        for (line, shown) in cases {
            assert_eq!(mask_frame_line(line), shown, "{line}");
        }
    }
}
