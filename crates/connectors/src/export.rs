//! Export: a live connector's configuration as a manifest (bootstrapping connectors as code
//! from an existing cluster). Pure: the caller reads the cluster and writes the files.
//!
//! Connect returns config-provider placeholders unresolved, so they are exported as they are.
//! A *literal* secret is never written: it becomes an `${env:...}` reference named after the
//! connector and key, with a warning telling the operator to provide it (or to point the key
//! at the secret's real location). Credentials embedded in other values (URL user-info, JDBC
//! `password=`) are written scrubbed, with a warning.

use lockstep_connect::{
    is_config_provider_placeholder, is_sensitive_key, scrub_text, ConnectorConfig,
};
use serde::Serialize;

/// One exported manifest.
#[derive(Debug, Clone)]
pub struct ExportedManifest {
    pub name: String,
    /// Suggested file name (`<name>.yaml`, unsafe characters replaced).
    pub file_name: String,
    /// The manifest text (YAML).
    pub yaml: String,
    /// What the operator must fix before applying it (secrets replaced or scrubbed).
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
struct ManifestOut<'a> {
    name: &'a str,
    config: &'a ConnectorConfig,
}

/// The `${env:...}` reference written in place of a literal secret.
pub fn secret_reference(connector: &str, key: &str) -> String {
    let var: String = format!("LOCKSTEP_SECRET_{connector}_{key}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("${{env:{var}}}")
}

fn file_name_for(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    format!("{}.yaml", if safe.is_empty() { "connector" } else { safe })
}

/// Turns a live configuration into a manifest with no secret in clear.
pub fn export_manifest(name: &str, live: &ConnectorConfig) -> ExportedManifest {
    let mut warnings = Vec::new();
    let mut config = ConnectorConfig::new();
    for (key, value) in live.iter() {
        if key == "name" {
            continue;
        }
        let exported = if is_sensitive_key(key)
            && !value.is_empty()
            && !is_config_provider_placeholder(value)
        {
            let reference = secret_reference(name, key);
            warnings.push(format!(
                "{name}: {key} holds a literal secret on the cluster; it is exported as {reference}: \
                 make that variable available to the Connect workers (or change the reference to where \
                 the secret lives, e.g. ${{file:/path:key}}) before applying"
            ));
            reference
        } else {
            let scrubbed = scrub_text(value);
            if scrubbed != value {
                warnings.push(format!(
                    "{name}: {key} embeds a credential; it is exported with the credential masked (****): \
                     replace it with a config-provider reference before applying"
                ));
            }
            scrubbed.into_owned()
        };
        config.insert(key, exported);
    }
    let body = serde_yaml_ng::to_string(&ManifestOut {
        name,
        config: &config,
    })
    // Serialising a map of strings cannot fail; keep a readable fallback all the same.
    .unwrap_or_else(|e| format!("# could not serialise: {e}\n"));
    let yaml = format!(
        "# Exported by `lockstep connectors export` from the live cluster.\n\
         # Secrets are references (config providers), never values.\n{body}"
    );
    ExportedManifest {
        name: name.to_string(),
        file_name: file_name_for(name),
        yaml,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn literal_secrets_become_references_and_placeholders_stay() {
        let live: ConnectorConfig = [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("name", "orders/cdc"),
            ("database.password", "hunter2"),
            ("database.sslpassword", "${file:/s.properties:ssl}"),
            (
                "connection.url",
                "jdbc:postgresql://db/app?user=a&password=s3cret",
            ),
            ("tasks.max", "1"),
            ("snapshot.mode", "initial"),
        ]
        .into_iter()
        .collect();
        let out = export_manifest("orders/cdc", &live);
        assert_eq!(out.file_name, "orders_cdc.yaml");
        assert!(
            !out.yaml.contains("hunter2") && !out.yaml.contains("s3cret"),
            "{}",
            out.yaml
        );
        assert!(
            out.yaml
                .contains("${env:LOCKSTEP_SECRET_ORDERS_CDC_DATABASE_PASSWORD}"),
            "{}",
            out.yaml
        );
        assert!(out.yaml.contains("${file:/s.properties:ssl}"));
        assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
        assert!(out
            .warnings
            .iter()
            .all(|w| !w.contains("hunter2") && !w.contains("s3cret")));

        // The text is a manifest: parse it back.
        #[derive(serde::Deserialize)]
        struct Back {
            name: String,
            config: BTreeMap<String, String>,
        }
        let back: Back = serde_yaml_ng::from_str(&out.yaml).expect("valid yaml");
        assert_eq!(back.name, "orders/cdc");
        assert_eq!(back.config.get("tasks.max").map(String::as_str), Some("1"));
        assert!(!back.config.contains_key("name"));
    }

    #[test]
    fn clean_configs_export_without_warnings() {
        let live: ConnectorConfig = [("connector.class", "X"), ("a", "true"), ("b", "10")]
            .into_iter()
            .collect();
        let out = export_manifest("a", &live);
        assert!(out.warnings.is_empty());
        assert_eq!(out.file_name, "a.yaml");
        // Scalars that look like numbers or booleans stay strings.
        assert!(
            out.yaml.contains("a: 'true'") || out.yaml.contains("a: \"true\""),
            "{}",
            out.yaml
        );
    }
}
