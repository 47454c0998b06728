//! `${var:NAME}`: lockstep's own variables, substituted when manifests are loaded.
//!
//! Everything else that looks like `${provider:...}` is a Kafka Connect config-provider
//! placeholder and is left exactly as written: Connect resolves it on the worker.

use std::collections::BTreeMap;

const OPEN: &str = "${var:";

/// Replaces every `${var:NAME}` in `text` with the value of `NAME`.
///
/// Returns the name of the first undefined variable, or of a malformed reference
/// (`${var:` without its closing brace, or an empty name), as the error.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    if !text.contains(OPEN) {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!("{OPEN}{after}"));
        };
        let name = after[..end].trim();
        if name.is_empty() || !name.chars().all(is_var_char) {
            return Err(format!("{OPEN}{}}}", &after[..end]));
        }
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_table() {
        let vars: BTreeMap<String, String> = [
            ("host", "db-1.prod"),
            ("port", "5432"),
            ("secrets_dir", "/run/secrets"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${var:host}", Ok("db-1.prod")),
            ("${var:host}:${var:port}", Ok("db-1.prod:5432")),
            (
                "${file:${var:secrets_dir}/pg.properties:password}",
                Ok("${file:/run/secrets/pg.properties:password}"),
            ),
            ("${env:PG_PASSWORD}", Ok("${env:PG_PASSWORD}")),
            ("${var:missing}", Err("missing")),
            ("x${var:host", Err("${var:host")),
            ("${var:}", Err("${var:}")),
            ("${var:a b}", Err("${var:a b}")),
        ];
        for (input, expected) in cases {
            let got = substitute(input, &vars);
            assert_eq!(got.as_deref().map_err(String::as_str), *expected, "{input}");
        }
    }
}
