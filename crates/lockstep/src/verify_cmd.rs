//! `lockstep verify`: compares a source and a target table and reports every difference by key.

use anyhow::{anyhow, bail};
use lockstep_verify::{
    ConnectionSettings, Endpoint, Password, TableRef, VerifyOptions, VerifyReport,
};
use serde::Serialize;

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::output::{print, TableView};
use crate::{exit, AlreadyReported};

/// How many keys of each kind the table output lists (json/yaml carry the whole capped list).
const KEYS_SHOWN: usize = 20;

/// Parses `postgres://USER@HOST:PORT/DB` (or mysql:// / mariadb://) into connection settings.
/// A password in the URL is refused: it would be visible to every user through `ps`.
fn parse_database_url(
    flag: &str,
    raw: &str,
    password_env: &str,
) -> anyhow::Result<ConnectionSettings> {
    let url = url::Url::parse(raw).map_err(|e| {
        anyhow!("--{flag} '{raw}' is not a database URL ({e}); write e.g. postgres://replicator@db-host:5432/orders")
    })?;
    if url.password().is_some() {
        bail!(
            "--{flag} contains a password: remove it from the URL and set {password_env} instead"
        );
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("--{flag} '{raw}' names no host"))?;
    let database = url.path().trim_start_matches('/');
    if database.is_empty() || database.contains('/') {
        bail!("--{flag} '{raw}' must name one database as its path, e.g. /orders");
    }
    let user = if url.username().is_empty() {
        bail!("--{flag} '{raw}' names no user: write USER@HOST")
    } else {
        url.username()
    };
    let mut settings = match url.scheme() {
        "postgres" | "postgresql" => {
            ConnectionSettings::postgres(host, url.port().unwrap_or(5432), user, database)
        }
        "mysql" | "mariadb" => {
            ConnectionSettings::mysql(host, url.port().unwrap_or(3306), user, database)
        }
        other => bail!(
            "--{flag}: unsupported database '{other}': use postgres:// or mysql:// (mariadb://)"
        ),
    };
    if let Ok(password) = std::env::var(password_env) {
        settings = settings.with_password(Password::new(password));
    }
    Ok(settings)
}

pub async fn run(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<u8> {
    let source_table: TableRef = args
        .table
        .parse()
        .map_err(|e: String| anyhow!("--table: {e}"))?;
    let target_table: TableRef = match &args.target_table {
        Some(t) => t
            .parse()
            .map_err(|e: String| anyhow!("--target-table: {e}"))?,
        None => source_table.clone(),
    };
    let source = Endpoint::new(
        parse_database_url("source", &args.source, "LOCKSTEP_SOURCE_PASSWORD")?,
        source_table,
    );
    let target = Endpoint::new(
        parse_database_url("target", &args.target, "LOCKSTEP_TARGET_PASSWORD")?,
        target_table,
    );
    let options = VerifyOptions {
        chunk_size: args.chunk_size as usize,
        max_retries: args.retries,
        ..VerifyOptions::default()
    };
    let report = lockstep_verify::verify(&source, &target, &options).await?;
    print(global.output, &ReportView(&report))?;
    if report.is_clean() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "error: {} and {} differ: {} missing, {} extra, {} differing row(s), {} schema difference(s)",
            report.source_table,
            report.target_table,
            report.missing_count,
            report.extra_count,
            report.differing_count,
            report.schema_differences.len()
        );
        Err(AlreadyReported(exit::FAILED).into())
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct ReportView<'a>(&'a VerifyReport);

impl TableView for ReportView<'_> {
    fn headers(&self) -> Vec<&'static str> {
        vec![
            "SOURCE",
            "TARGET",
            "ROWS",
            "MISSING",
            "EXTRA",
            "DIFFERING",
            "CHUNKS",
            "RETRIED",
        ]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let r = self.0;
        vec![vec![
            r.source_table.clone(),
            r.target_table.clone(),
            r.rows_compared.to_string(),
            r.missing_count.to_string(),
            r.extra_count.to_string(),
            r.differing_count.to_string(),
            r.chunks.to_string(),
            r.chunks_retried.to_string(),
        ]]
    }

    fn footer(&self) -> Vec<String> {
        let r = self.0;
        let mut lines = Vec::new();
        let mut list = |title: &str, keys: Vec<String>, total: u64| {
            if total == 0 {
                return;
            }
            lines.push(format!("{title} ({total}):"));
            lines.extend(keys.iter().take(KEYS_SHOWN).map(|k| format!("  {k}")));
            if total as usize > KEYS_SHOWN {
                lines.push(format!(
                    "  ... {} more (-o json lists them)",
                    total as usize - KEYS_SHOWN
                ));
            }
        };
        list(
            "missing on the target",
            r.missing.iter().map(|k| k.to_string()).collect(),
            r.missing_count,
        );
        list(
            "extra on the target",
            r.extra.iter().map(|k| k.to_string()).collect(),
            r.extra_count,
        );
        list(
            "differing",
            r.differing
                .iter()
                .map(|d| format!("{} columns: {}", d.key, d.columns.join(", ")))
                .collect(),
            r.differing_count,
        );
        for difference in &r.schema_differences {
            lines.push(format!("schema: {difference:?}"));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_database_urls_and_refuses_bad_ones() {
        let pg = parse_database_url("source", "postgres://rep@db:6432/orders", "UNSET_FOR_TEST")
            .expect("pg");
        assert_eq!(
            (
                pg.host.as_str(),
                pg.port,
                pg.user.as_str(),
                pg.database.as_str()
            ),
            ("db", 6432, "rep", "orders")
        );
        let my = parse_database_url("target", "mariadb://rep@dr/orders", "UNSET_FOR_TEST")
            .expect("mariadb");
        assert_eq!(my.port, 3306);
        let cases = [
            ("postgres://rep:hunter2@db/orders", "contains a password"),
            ("postgres://db/orders", "names no user"),
            ("postgres://rep@db/", "one database"),
            ("oracle://rep@db/orders", "unsupported database"),
            ("not a url", "not a database URL"),
        ];
        for (raw, expected) in cases {
            let err = parse_database_url("source", raw, "UNSET_FOR_TEST")
                .expect_err(raw)
                .to_string();
            assert!(err.contains(expected), "{raw}: {err}");
            if expected == "contains a password" {
                assert!(!err.contains("hunter2"), "the password leaked: {err}");
            }
        }
    }
}
