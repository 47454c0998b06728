//! lockstep's own configuration file (`lockstep.yaml`): the Kafka Connect clusters it talks to.
//!
//! Invariants:
//! - Secrets are [`SecretRef`]s: `${env:VAR}` or `${file:/path}` references stay references until
//!   [`SecretRef::resolve`] is called at the moment of use; the resolved [`Secret`] never prints
//!   its value in `Debug` or `Display`. A literal secret is accepted (some labs have no vault) but
//!   [`Config::warnings`] reports it.
//! - Loading is all-or-nothing: a file with any invalid cluster is rejected whole, with the file,
//!   the cluster and the field named in the error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What went wrong with the configuration, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the path given with --config or LOCKSTEP_CONFIG")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}, cluster '{cluster}', field '{field}': {reason}")]
    Invalid {
        path: PathBuf,
        cluster: String,
        field: &'static str,
        reason: String,
    },
    #[error("secret reference {reference} cannot be resolved: {reason}")]
    Secret { reference: String, reason: String },
    #[error("no Kafka Connect cluster named '{name}' in {path}; defined: {known}")]
    UnknownCluster {
        name: String,
        path: PathBuf,
        known: String,
    },
}

/// A secret as written in configuration: a reference to resolve at use, or (discouraged) a literal.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(String);

impl SecretRef {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// `true` when the secret is written inline instead of as `${env:..}` / `${file:..}`.
    pub fn is_literal(&self) -> bool {
        !(self.0.starts_with("${") && self.0.ends_with('}'))
    }

    /// The reference as written, safe to show: literals are masked.
    pub fn display_safe(&self) -> String {
        if self.is_literal() {
            "****".to_string()
        } else {
            self.0.clone()
        }
    }

    /// Resolves `${env:VAR}`, `${file:/path}` (whole file, trailing newline removed) or a literal.
    pub fn resolve(&self) -> Result<Secret, ConfigError> {
        if self.is_literal() {
            return Ok(Secret::new(self.0.clone()));
        }
        let inner = &self.0[2..self.0.len() - 1];
        let fail = |reason: String| ConfigError::Secret {
            reference: self.0.clone(),
            reason,
        };
        match inner.split_once(':') {
            Some(("env", var)) if !var.is_empty() => std::env::var(var)
                .map(Secret::new)
                .map_err(|_| fail(format!("environment variable {var} is not set"))),
            Some(("file", path)) if !path.is_empty() => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| fail(format!("reading {path}: {e}"))),
            _ => Err(fail(
                "use ${env:VARIABLE} or ${file:/path/to/file}".to_string(),
            )),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({})", self.display_safe())
    }
}

pub use lockstep_secret::Secret;

/// TLS settings for a Connect cluster's REST endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM bundle of the CAs that sign the workers' certificates.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for workers that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8) of the client certificate.
    pub client_key: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One Kafka Connect cluster: its workers' URLs and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// REST URLs of one or more workers of the same cluster; tried in order on transport errors.
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    #[serde(default)]
    pub tls: TlsSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    clusters: BTreeMap<String, ClusterSettings>,
    default_cluster: Option<String>,
}

/// A loaded, validated configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub clusters: BTreeMap<String, ClusterSettings>,
    pub default_cluster: Option<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |cluster: &str, field: &'static str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            cluster: cluster.to_string(),
            field,
            reason,
        };
        for (name, cluster) in &raw.clusters {
            if cluster.urls.is_empty() {
                return Err(invalid(
                    name,
                    "urls",
                    "list at least one worker URL, e.g. http://connect-1:8083".into(),
                ));
            }
            if let Some(bad) = cluster
                .urls
                .iter()
                .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                return Err(invalid(
                    name,
                    "urls",
                    format!("'{bad}' is not an http:// or https:// URL"),
                ));
            }
            if cluster.password.is_some() && cluster.username.is_none() {
                return Err(invalid(
                    name,
                    "username",
                    "a password is set without a username; basic auth needs both".into(),
                ));
            }
            if cluster.tls.client_cert.is_some() != cluster.tls.client_key.is_some() {
                return Err(invalid(
                    name,
                    "tls",
                    "client_cert and client_key go together for mutual TLS".into(),
                ));
            }
        }
        if let Some(default) = &raw.default_cluster {
            if !raw.clusters.contains_key(default) {
                return Err(invalid(
                    default,
                    "default_cluster",
                    "names a cluster that is not defined under 'clusters'".into(),
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            clusters: raw.clusters,
            default_cluster: raw.default_cluster,
        })
    }

    /// The named cluster, or the default one (the only one, or `default_cluster`).
    pub fn cluster(
        &self,
        name: Option<&str>,
    ) -> Result<Option<(&str, &ClusterSettings)>, ConfigError> {
        let wanted = name.or(self.default_cluster.as_deref()).or_else(|| {
            (self.clusters.len() == 1)
                .then(|| self.clusters.keys().next().map(String::as_str))
                .flatten()
        });
        let Some(wanted) = wanted else {
            return Ok(None);
        };
        self.clusters
            .get_key_value(wanted)
            .map(|(k, v)| Some((k.as_str(), v)))
            .ok_or_else(|| ConfigError::UnknownCluster {
                name: wanted.to_string(),
                path: self.path.clone(),
                known: self.clusters.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Things that work but that a reviewer should hear about.
    pub fn warnings(&self) -> Vec<String> {
        self.clusters
            .iter()
            .filter(|(_, c)| c.password.as_ref().is_some_and(SecretRef::is_literal))
            .map(|(name, _)| {
                format!(
                    "{}: cluster '{name}' has a literal password; write it as ${{env:VAR}} or ${{file:/path}}",
                    self.path.display()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("lockstep.yaml"), text)
    }

    #[test]
    fn parses_clusters_and_picks_the_default() {
        let config = parse(
            "clusters:\n  dr:\n    urls: [http://a:8083, http://b:8083]\n    username: ops\n    password: ${env:CONNECT_PW}\n  prod:\n    urls: [https://c:8083]\n    tls: {ca_cert: /etc/ca.pem}\ndefault_cluster: prod\n",
        )
        .expect("valid config");
        let (name, prod) = config.cluster(None).expect("lookup").expect("default");
        assert_eq!(name, "prod");
        assert_eq!(prod.tls.ca_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (_, dr) = config.cluster(Some("dr")).expect("lookup").expect("dr");
        assert_eq!(dr.urls.len(), 2);
        assert!(config.warnings().is_empty());
    }

    #[test]
    fn a_single_cluster_is_the_default() {
        let config = parse("clusters:\n  only:\n    urls: [http://a:8083]\n").expect("valid");
        assert_eq!(
            config.cluster(None).expect("lookup").map(|c| c.0),
            Some("only")
        );
    }

    #[test]
    fn rejects_bad_files_naming_the_problem() {
        let cases = [
            ("clusters:\n  x:\n    urls: []\n", "field 'urls'"),
            (
                "clusters:\n  x:\n    urls: [ftp://a]\n",
                "'ftp://a' is not an http",
            ),
            (
                "clusters:\n  x:\n    urls: [http://a]\n    password: p\n",
                "without a username",
            ),
            (
                "clusters:\n  x:\n    urls: [http://a]\n    tls: {client_cert: /c}\n",
                "go together",
            ),
            (
                "clusters:\n  x:\n    urls: [http://a]\n    colour: red\n",
                "unknown field `colour`",
            ),
            (
                "clusters:\n  x:\n    urls: [http://a]\ndefault_cluster: y\n",
                "not defined",
            ),
            ("clusters: [\n", "not valid"),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn unknown_cluster_lists_the_known_ones() {
        let config = parse("clusters:\n  a:\n    urls: [http://a]\n  b:\n    urls: [http://b]\n")
            .expect("valid");
        let err = config.cluster(Some("c")).expect_err("unknown").to_string();
        assert!(err.contains("'c'") && err.contains("a, b"), "{err}");
        assert!(config.cluster(None).expect("no default").is_none());
    }

    #[test]
    fn secrets_resolve_from_env_and_file_and_never_print() {
        std::env::set_var("LOCKSTEP_CONFIG_TEST_PW", "s3cret-env");
        let from_env = SecretRef::new("${env:LOCKSTEP_CONFIG_TEST_PW}");
        assert!(!from_env.is_literal());
        let secret = from_env.resolve().expect("env secret");
        assert_eq!(secret.expose(), "s3cret-env");
        assert!(!format!("{secret:?} {secret}").contains("s3cret"));

        let dir = std::env::temp_dir().join(format!("lockstep-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret-file\n").expect("write");
        let from_file = SecretRef::new(format!("${{file:{}}}", file.display()));
        assert_eq!(
            from_file.resolve().expect("file secret").expose(),
            "s3cret-file"
        );

        let literal = SecretRef::new("hunter2");
        assert!(literal.is_literal());
        assert_eq!(literal.display_safe(), "****");
        assert!(!format!("{literal:?}").contains("hunter2"));

        for bad in [
            "${env:LOCKSTEP_CONFIG_TEST_UNSET}",
            "${vault:x}",
            "${file:/nonexistent/pw}",
        ] {
            let err = SecretRef::new(bad).resolve().expect_err(bad).to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn literal_passwords_are_warned_about() {
        let config =
            parse("clusters:\n  x:\n    urls: [http://a]\n    username: u\n    password: plain\n")
                .expect("valid");
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(!warnings[0].contains("plain"));
    }
}
