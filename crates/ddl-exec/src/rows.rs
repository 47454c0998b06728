//! Row verification after a plan (`lockstep verify` between the source table and its target
//! table), for plans whose source change rewrote values without change events.

use lockstep_ddl::QualifiedName;
use lockstep_ddl_plan::TargetTable;
use lockstep_sink::pipeline::Engine;
use lockstep_verify::{verify, ConnectionSettings, Endpoint, TableRef, VerifyOptions};
use serde_json::{json, Value};

use crate::error::ExecError;

const ATTEMPTS: u32 = 3;
const PAUSE: std::time::Duration = std::time::Duration::from_secs(2);
/// Rows in flight through a live pipeline converge within its lag (a second or two under the
/// soak's writes, more while a connector restarts): a differing row is re-read for up to ten
/// seconds before it counts.
const ROW_RETRIES: u32 = 20;
const ROW_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
use crate::pipeline::DdlPipeline;

fn secret(
    what: &'static str,
    r: Option<&lockstep_config::SecretRef>,
) -> Result<Option<lockstep_secret::Secret>, ExecError> {
    r.map(|r| {
        r.resolve().map_err(|e| ExecError::Secret {
            what,
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// How often a row comparison compares the whole table. Either way a differing row is
/// re-read for up to ten seconds first: under live writes some row is nearly always in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// A plan's own check: up to three times.
    Settle,
    /// Once: the caller compares again later (a snapshot still being applied).
    Once,
}

/// Compare the rows; an error lists the counts of missing, extra and differing rows.
pub async fn verify_rows(
    pipeline: &DdlPipeline,
    source_table: &QualifiedName,
    target_table: &TargetTable,
) -> Result<Value, ExecError> {
    verify_rows_with(pipeline, source_table, target_table, Patience::Settle).await
}

/// [`verify_rows`] with the given patience.
pub async fn verify_rows_with(
    pipeline: &DdlPipeline,
    source_table: &QualifiedName,
    target_table: &TargetTable,
    patience: Patience,
) -> Result<Value, ExecError> {
    let attempts = match patience {
        Patience::Settle => ATTEMPTS,
        Patience::Once => 1,
    };
    let options = VerifyOptions {
        max_retries: ROW_RETRIES,
        retry_delay: ROW_RETRY_DELAY,
        ..VerifyOptions::default()
    };
    let s = &pipeline.source;
    let mut source =
        ConnectionSettings::postgres(s.host.clone(), s.port, s.user.clone(), s.database.clone());
    if let Some(p) = secret("source", s.password.as_ref())? {
        source = source.with_password(p);
    }
    let t = &pipeline.sink.target;
    let mut target = match t.engine {
        Engine::Postgres => {
            ConnectionSettings::postgres(t.host.clone(), t.port, t.user.clone(), t.database.clone())
        }
        Engine::Mariadb => {
            ConnectionSettings::mysql(t.host.clone(), t.port, t.user.clone(), t.database.clone())
        }
    };
    if let Some(p) = secret("target", t.password.as_ref())? {
        target = target.with_password(p);
    }
    // Rows still in flight through the pipeline differ for a moment: compare again a few
    // times before reporting (verify itself re-reads a differing chunk too).
    let mut attempt = 0;
    let report = loop {
        attempt += 1;
        let report = verify(
            &Endpoint::new(
                source.clone(),
                TableRef::new(Some(&source_table.schema), source_table.name.clone()),
            ),
            &Endpoint::new(
                target.clone(),
                TableRef::new(Some(&target_table.schema), target_table.name.clone()),
            ),
            &options,
        )
        .await
        .map_err(|e| ExecError::RowsDiffer {
            table: target_table.to_string(),
            reason: format!("the row comparison did not run: {e}"),
        })?;
        let differences = report.missing_count + report.extra_count + report.differing_count;
        if differences == 0 {
            break report;
        }
        if attempt >= attempts {
            return Err(ExecError::RowsDiffer {
                table: target_table.to_string(),
                reason: format!(
                    "{} rows missing, {} extra, {} differing of {} compared, {attempts} time(s) {}s apart (run `lockstep verify` for the keys; under constant writes, resume once they slow down)",
                    report.missing_count,
                    report.extra_count,
                    report.differing_count,
                    report.rows_compared,
                    PAUSE.as_secs()
                ),
            });
        }
        tokio::time::sleep(PAUSE).await;
    };
    Ok(json!({"rows_compared": report.rows_compared, "differences": 0}))
}
