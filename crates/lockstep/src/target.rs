//! Resolves which Kafka Connect cluster a command talks to: flags and environment first, then
//! `lockstep.yaml`. Secrets are resolved here, at the moment of use, and nowhere else.

use std::path::PathBuf;

use anyhow::anyhow;
use lockstep_config::{Config, SecretRef};
use lockstep_connect::{BasicAuth, ClientConfig, ConnectClient, TlsConfig};

use crate::cli::GlobalArgs;

const NO_CLUSTER: &str = "no Kafka Connect cluster given";
const PASSWORD_ENV: &str = "LOCKSTEP_CONNECT_PASSWORD";

/// True when the error only says that no cluster was configured (serve can run without one).
pub fn is_unconfigured(err: &anyhow::Error) -> bool {
    err.to_string().starts_with(NO_CLUSTER)
}

fn config_file(global: &GlobalArgs) -> anyhow::Result<Option<Config>> {
    let path = match &global.config {
        Some(path) => path.clone(),
        None => {
            let default = PathBuf::from("lockstep.yaml");
            if !default.exists() {
                return Ok(None);
            }
            default
        }
    };
    let config = Config::load(&path)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    Ok(Some(config))
}

/// Builds the client for the selected cluster.
pub fn connect_client(global: &GlobalArgs) -> anyhow::Result<ConnectClient> {
    let flags = &global.target;
    let config = config_file(global)?;
    let from_file = match &config {
        Some(config) => config.cluster(flags.cluster.as_deref())?,
        None if flags.cluster.is_some() => {
            return Err(anyhow!(
                "--cluster {} given but there is no configuration file: create lockstep.yaml or pass --config",
                flags.cluster.as_deref().unwrap_or_default()
            ))
        }
        None => None,
    };

    let urls: Vec<String> = if !flags.connect_url.is_empty() {
        flags.connect_url.clone()
    } else if let Some((_, cluster)) = from_file {
        cluster.urls.clone()
    } else {
        return Err(anyhow!(
            "{NO_CLUSTER}: pass --connect-url http://HOST:8083, set LOCKSTEP_CONNECT_URL, or name clusters in lockstep.yaml (see lockstep --help)"
        ));
    };
    let mut client_config = ClientConfig::new(urls);

    let username = flags
        .connect_user
        .clone()
        .or_else(|| from_file.and_then(|(_, c)| c.username.clone()));
    if let Some(username) = username {
        // The environment wins over the file, so a CI job can inject a credential for one call.
        let reference = if std::env::var_os(PASSWORD_ENV).is_some() {
            SecretRef::new(format!("${{env:{PASSWORD_ENV}}}"))
        } else {
            from_file
                .and_then(|(_, c)| c.password.clone())
                .ok_or_else(|| {
                    anyhow!(
                        "user {username} has no password: set {PASSWORD_ENV} or `password:` for the cluster in lockstep.yaml"
                    )
                })?
        };
        let password = reference.resolve()?;
        client_config.basic_auth = Some(BasicAuth::new(username, password));
    }

    let file_tls = from_file.map(|(_, c)| c.tls.clone()).unwrap_or_default();
    client_config.tls = TlsConfig {
        ca_bundle: flags.ca_cert.clone().or(file_tls.ca_cert),
        client_cert: flags.client_cert.clone().or(file_tls.client_cert),
        client_key: flags.client_key.clone().or(file_tls.client_key),
        insecure_skip_verify: flags.insecure_skip_tls_verify || file_tls.insecure_skip_verify,
    };

    Ok(ConnectClient::new(client_config)?)
}
