//! The steps that change what the pipeline captures (CREATE / DROP / RENAME TABLE): the
//! connector's `table.include.list`, the publication, the incremental snapshot signal and
//! its wait. Decisions are pure ([`crate::include_list`], [`signal_config_problem`]); the
//! functions here are the thin adapters around them, each idempotent so that a step
//! interrupted by a crash can run again and reach the same state.

use std::time::{Duration, Instant};

use lockstep_connect::{ConnectClient, ExpectedState};
use lockstep_ddl::QualifiedName;
use serde_json::{json, Value};
use tokio_postgres::Client;

use lockstep_ddl_plan::TargetEngine;

use crate::error::ExecError;
use crate::exec::connect_err;
use crate::include_list::edit_include_list;
use crate::source::source_err;

/// Longest wait for a reconfigured connector's tasks to carry the new setting and run.
const RECONFIGURE_WAIT: Duration = Duration::from_secs(120);

/// Debezium's setting naming the signal table.
pub const SIGNAL_COLLECTION: &str = "signal.data.collection";
/// Debezium's enabled signal channels (default `source`).
pub const SIGNAL_CHANNELS: &str = "signal.enabled.channels";

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    lockstep_ddl_plan::quote_ident(TargetEngine::Postgres, name)
}

/// `"schema"."table"`.
pub fn quote_table(t: &QualifiedName) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}

/// Add / remove tables of a connector's list setting, then wait until its tasks run with the
/// new list. Reads the live config each time, so running it again after a crash reaches the
/// same config (an entry already present is not added twice). The output names the list,
/// never another value of the config (it holds the database password).
pub async fn update_connector_config(
    connect: &ConnectClient,
    connector: &str,
    key: &str,
    add: &[String],
    remove: &[String],
) -> Result<Value, ExecError> {
    let mut config = connect
        .get_connector_config(connector)
        .await
        .map_err(|e| connect_err(connector, e))?;
    let before = config.get(key).map(str::to_string);
    let edit = edit_include_list(key, before.as_deref(), add, remove).map_err(|e| {
        ExecError::ConnectorConfig {
            connector: connector.to_string(),
            reason: e.to_string(),
        }
    })?;
    let started = Instant::now();
    if edit.changed {
        config.insert(key, edit.list.clone());
        connect
            .put_connector_config(connector, &config)
            .await
            .map_err(|e| connect_err(connector, e))?;
    }
    // Connect restarts the connector with the new config and hands its tasks new configs:
    // wait until every task carries the list, then until everything runs.
    loop {
        let tasks = connect
            .connector_tasks(connector)
            .await
            .map_err(|e| connect_err(connector, e))?;
        if !tasks.is_empty()
            && tasks
                .iter()
                .all(|t| t.config.get(key).is_none_or(|v| v == edit.list))
        {
            break;
        }
        if started.elapsed() > RECONFIGURE_WAIT {
            return Err(ExecError::Timeout {
                what: format!(
                    "the tasks of connector {connector} to take the new {key} ({} s); check the connector's status and its worker's log",
                    RECONFIGURE_WAIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    connect
        .wait_for_state(connector, &ExpectedState::running(), RECONFIGURE_WAIT)
        .await
        .map_err(|e| connect_err(connector, e))?;
    Ok(json!({
        "connector": connector,
        "setting": key,
        "before": before,
        "after": edit.list,
        "changed": edit.changed,
        "added": edit.added,
        "removed": edit.removed,
        "state": "RUNNING",
        "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}

/// `ALTER PUBLICATION … ADD / DROP TABLE` for the tables not already (or no longer) members;
/// a `FOR ALL TABLES` publication is left alone.
pub async fn update_publication(
    source: &Client,
    publication: &str,
    add: &[QualifiedName],
    remove: &[QualifiedName],
) -> Result<Value, ExecError> {
    let row = source
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| source_err(format!("reading publication {publication}"), &e))?;
    let Some(row) = row else {
        return Err(ExecError::Sql {
            side: "source",
            what: format!("changing publication {publication}"),
            reason: "the publication does not exist: check source.publication in the pipeline file against the connector's publication.name".into(),
        });
    };
    if row.get::<_, bool>(0) {
        return Ok(json!({"publication": publication, "all_tables": true, "changed": false}));
    }
    let member = |t: &QualifiedName| {
        let (schema, name) = (t.schema.clone(), t.name.clone());
        async move {
            source
                .query_opt(
                    "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                    &[&publication, &schema, &name],
                )
                .await
                .map(|r| r.is_some())
                .map_err(|e| source_err(format!("reading publication {publication}"), &e))
        }
    };
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for t in add {
        if !member(t).await? {
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                quote_ident(publication),
                quote_table(t)
            );
            source
                .batch_execute(&sql)
                .await
                .map_err(|e| source_err(sql.clone(), &e))?;
            added.push(t.to_string());
        }
    }
    for t in remove {
        if member(t).await? {
            let sql = format!(
                "ALTER PUBLICATION {} DROP TABLE {}",
                quote_ident(publication),
                quote_table(t)
            );
            source
                .batch_execute(&sql)
                .await
                .map_err(|e| source_err(sql.clone(), &e))?;
            removed.push(t.to_string());
        }
    }
    Ok(json!({
        "publication": publication,
        "added": added,
        "removed": removed,
        "changed": !added.is_empty() || !removed.is_empty(),
    }))
}

/// What is wrong with a connector's signal settings for an incremental snapshot through
/// `want` (pure); `None`: it reads signals from that table.
pub fn signal_config_problem(
    connector: &str,
    collection: Option<&str>,
    channels: Option<&str>,
    want: &QualifiedName,
) -> Option<String> {
    let want_text = want.to_string();
    match collection.map(str::trim).filter(|c| !c.is_empty()) {
        None => {
            return Some(format!(
                "connector {connector} has no {SIGNAL_COLLECTION}, so it reads no signals and cannot take the incremental snapshot this plan needs: create a signal table (id varchar primary key, type varchar, data varchar) and set {SIGNAL_COLLECTION}={want_text} on the connector"
            ))
        }
        Some(c) if c != want_text => {
            return Some(format!(
                "connector {connector} reads signals from {c}, the pipeline file names {want_text} (source.signal_table): make them the same"
            ))
        }
        Some(_) => {}
    }
    if let Some(channels) = channels {
        if !channels.split(',').any(|c| c.trim() == "source") {
            return Some(format!(
                "connector {connector} has {SIGNAL_CHANNELS}={channels}, without `source`: it does not read the signal table; add `source`"
            ));
        }
    }
    None
}

/// Checks the connector's signal settings against the step's signal table.
pub async fn check_signal_config(
    connect: &ConnectClient,
    connector: &str,
    signal_table: &QualifiedName,
) -> Result<(), ExecError> {
    let config = connect
        .get_connector_config(connector)
        .await
        .map_err(|e| connect_err(connector, e))?;
    match signal_config_problem(
        connector,
        config.get(SIGNAL_COLLECTION),
        config.get(SIGNAL_CHANNELS),
        signal_table,
    ) {
        Some(reason) => Err(ExecError::ConnectorConfig {
            connector: connector.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Insert Debezium's `execute-snapshot` signal (`id`, `type`, `data`, the signal table's
/// first three columns) under a deterministic id, unless a row with that id exists (a retry
/// after a crash sends it once). With `skip_if_empty`, nothing is sent while every table is
/// empty: there is nothing the stream did not carry.
pub async fn send_snapshot_signal(
    source: &Client,
    signal_id: &str,
    signal_table: &QualifiedName,
    data: &str,
    tables: &[QualifiedName],
    skip_if_empty: bool,
) -> Result<Value, ExecError> {
    if skip_if_empty {
        let mut rows = false;
        for t in tables {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", quote_table(t));
            let r = source
                .query_one(&sql, &[])
                .await
                .map_err(|e| source_err(format!("reading {t}"), &e))?;
            rows |= r.get::<_, bool>(0);
        }
        if !rows {
            return Ok(json!({
                "skipped": true,
                "reason": "the tables are empty: every row reaches the sink through the stream",
            }));
        }
    }
    let table = quote_table(signal_table);
    let id_column = source
        .query_opt(
            "SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = to_regclass($1) AND a.attnum = 1 AND NOT a.attisdropped",
            &[&table],
        )
        .await
        .map_err(|e| source_err(format!("reading signal table {signal_table}"), &e))?
        .map(|r| r.get::<_, String>(0))
        .ok_or_else(|| ExecError::Sql {
            side: "source",
            what: format!("sending a snapshot signal to {signal_table}"),
            reason: "the signal table does not exist: create it (id varchar primary key, type varchar, data varchar) or fix source.signal_table".into(),
        })?;
    let exists = source
        .query_opt(
            &format!(
                "SELECT 1 FROM {table} WHERE {}::text = $1",
                quote_ident(&id_column)
            ),
            &[&signal_id],
        )
        .await
        .map_err(|e| source_err(format!("reading signal table {signal_table}"), &e))?
        .is_some();
    if !exists {
        source
            .execute(
                &format!("INSERT INTO {table} VALUES ($1, 'execute-snapshot', $2)"),
                &[&signal_id, &data],
            )
            .await
            .map_err(|e| source_err(format!("inserting a signal into {signal_table}"), &e))?;
    }
    Ok(json!({
        "skipped": false,
        "signal_id": signal_id,
        "already_sent": exists,
        "tables": tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
    }))
}

/// Whether the connector's committed source offsets show an incremental snapshot of any of
/// these tables still running.
pub async fn snapshot_running(
    connect: &ConnectClient,
    connector: &str,
    tables: &[QualifiedName],
) -> Result<bool, ExecError> {
    let offsets = connect
        .get_offsets(connector)
        .await
        .map_err(|e| connect_err(connector, e))?;
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    Ok(offsets.offsets.iter().any(|o| {
        o.offset
            .as_ref()
            .and_then(crate::guard::incremental_snapshot)
            .is_some_and(|running| running.is_empty() || running.iter().any(|r| names.contains(r)))
    }))
}

/// The topics among `topics` the broker has (pure reading, no creation): a table never
/// written to has no topic yet, and nothing of it to wait for.
pub async fn existing_topics(
    sink: &lockstep_sink::SinkPipeline,
    topics: &[String],
) -> Result<Vec<String>, ExecError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut config = rdkafka::ClientConfig::new();
    for (k, v) in &sink.kafka.consumer {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &sink.kafka.bootstrap_servers)
        .set("group.id", format!("lockstep-sink-{}-status", sink.name))
        .set("allow.auto.create.topics", "false");
    let topics = topics.to_vec();
    let broker_err = |reason: String| ExecError::Sql {
        side: "broker",
        what: "reading topic metadata".into(),
        reason,
    };
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create().map_err(|e| broker_err(e.to_string()))?;
        let mut out = Vec::new();
        for topic in topics {
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map_err(|e| broker_err(format!("{topic}: {e}")))?;
            if metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            {
                out.push(topic);
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| broker_err(e.to_string()))?
}

/// Refusals of plans whose incremental snapshot signal the connector would not read,
/// checked before anything is recorded (fail closed: a connector that cannot be read is a
/// refusal too). One line per connector and signal table.
pub async fn signal_refusals(
    plans: &[lockstep_ddl_plan::Plan],
    connect: Option<&ConnectClient>,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for p in plans {
        for s in &p.steps {
            let lockstep_ddl_plan::StepKind::IncrementalSnapshotSignal {
                connector,
                signal_table,
                ..
            } = &s.kind
            else {
                continue;
            };
            if seen.contains(&(connector.clone(), signal_table.clone())) {
                continue;
            }
            seen.push((connector.clone(), signal_table.clone()));
            let Some(c) = connect else {
                out.push(format!(
                    "statement {}: step {} (incremental_snapshot_signal) needs the Kafka Connect cluster to check connector {connector}'s signal settings: pass --connect-url",
                    p.statement + 1,
                    s.n
                ));
                continue;
            };
            if let Err(e) = check_signal_config(c, connector, signal_table).await {
                out.push(format!(
                    "statement {}: step {} (incremental_snapshot_signal): {e}",
                    p.statement + 1,
                    s.n
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("orders"), "\"orders\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_table(&QualifiedName::new("public", "Order Lines")),
            "\"public\".\"Order Lines\""
        );
    }

    #[test]
    fn signal_settings_are_checked_fail_closed() {
        let want = QualifiedName::new("public", "dbz_signal");
        // (collection, channels, problem expected containing)
        let cases: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("public.dbz_signal"), None, None),
            (Some(" public.dbz_signal "), Some("source,kafka"), None),
            (None, None, Some("has no signal.data.collection")),
            (Some(""), None, Some("has no signal.data.collection")),
            (
                Some("public.other"),
                None,
                Some("reads signals from public.other"),
            ),
            (
                Some("public.dbz_signal"),
                Some("kafka"),
                Some("without `source`"),
            ),
        ];
        for (collection, channels, expected) in cases {
            let got = signal_config_problem("c1", *collection, *channels, &want);
            match (expected, &got) {
                (None, None) => {}
                (Some(text), Some(problem)) => {
                    assert!(problem.contains(text), "{collection:?}: {problem}")
                }
                _ => panic!("{collection:?} {channels:?}: {got:?}"),
            }
        }
    }
}
