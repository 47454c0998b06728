//! The Kafka Connect client against the real stack: a Debezium PostgreSQL connector created
//! through it streams real changes, answers every lifecycle verb, and exposes its offsets.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lockstep_connect::{
    ConnectError, ConnectorConfig, ConnectorState, CreateConnectorRequest, Expand, ExpectedState,
};
use lockstep_e2e::{consume, end_offsets, eventually, unique_name, Stack};
use serde_json::Value;

const STATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Removes the connector, its slot and publication even when the test failed half-way.
struct Cleanup {
    stack: Stack,
    connector: String,
    slot: String,
    publication: String,
}

impl Cleanup {
    fn new(stack: &Stack, connector: &str, config: &ConnectorConfig) -> Self {
        Self {
            stack: stack.clone(),
            connector: connector.to_string(),
            slot: config.get("slot.name").unwrap_or_default().to_string(),
            publication: config
                .get("publication.name")
                .unwrap_or_default()
                .to_string(),
        }
    }

    async fn run(self) {
        if let Ok(client) = self.stack.connect_client() {
            let _ = client.delete_connector(&self.connector).await;
        }
        if let Err(e) = self.stack.drop_pg_slot(&self.slot, &self.publication).await {
            eprintln!("cleanup of {}: {e:#}", self.connector);
        }
    }
}

fn debezium_config(stack: &Stack, name: &str, table: &str) -> ConnectorConfig {
    let mut config = ConnectorConfig::new();
    for (k, v) in stack.debezium_pg_config(name, &[table]) {
        config.insert(k, v);
    }
    config
}

fn payload(record: &lockstep_e2e::Record) -> Value {
    let value: Value =
        serde_json::from_slice(record.value.as_deref().expect("change event has a value"))
            .expect("change event is JSON");
    value["payload"].clone()
}

#[tokio::test]
async fn debezium_connector_streams_changes_and_answers_every_lifecycle_verb() {
    let stack = Stack::get();
    let client = stack.connect_client().expect("client");
    let name = unique_name("cdc-life").replace('_', "-");
    let table = name.replace('-', "_");
    let pg = stack.pg_source().await.expect("source db");
    pg.batch_execute(&format!(
        "create table {table} (id bigint primary key, note text not null);
         insert into {table} select g, 'before-' || g from generate_series(1, 3) g;"
    ))
    .await
    .expect("source table");

    let config = debezium_config(&stack, &name, &table);
    let cleanup = Cleanup::new(&stack, &name, &config);
    let outcome = async move {
        let info = client
            .create_connector(&CreateConnectorRequest {
                name: name.clone(),
                config: config.clone(),
                initial_state: None,
            })
            .await
            .expect("create connector");
        assert_eq!(info.name, name);

        let status = client
            .wait_for_state(&name, &ExpectedState::running(), STATE_TIMEOUT)
            .await
            .expect("connector reaches RUNNING");
        assert_eq!(status.tasks.len(), 1);
        assert_eq!(status.tasks[0].state, ConnectorState::Running);

        let listing = client
            .list_connectors_expanded(Expand::ALL)
            .await
            .expect("list expanded");
        let listed = listing.get(&name).expect("new connector listed");
        assert!(listed.status.is_some() && listed.info.is_some());

        // Rows inserted after the snapshot arrive as change events.
        pg.batch_execute(&format!(
            "insert into {table} select g, 'after-' || g from generate_series(4, 8) g"
        ))
        .await
        .expect("insert rows");
        let topic = format!("{name}.public.{table}");
        let consumer = stack.consumer().expect("consumer");
        let records =
            consume(&consumer, &topic, None, 8, Duration::from_secs(90)).expect("consume");
        let events: Vec<(String, i64, String)> = records
            .iter()
            .map(|r| {
                let p = payload(r);
                (
                    p["op"].as_str().unwrap_or_default().to_string(),
                    p["after"]["id"].as_i64().unwrap_or(-1),
                    p["after"]["note"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert_eq!(events.len(), 8, "3 snapshot reads + 5 inserts: {events:?}");
        let reads: BTreeSet<i64> = events.iter().filter(|e| e.0 == "r").map(|e| e.1).collect();
        let creates: BTreeSet<i64> = events.iter().filter(|e| e.0 == "c").map(|e| e.1).collect();
        assert_eq!(reads, (1..=3).collect());
        assert_eq!(creates, (4..=8).collect());
        assert!(events.iter().any(|e| e.2 == "after-8"));

        // Offsets cannot be changed while the connector runs: a typed error says so.
        match client.reset_offsets(&name).await {
            Err(ConnectError::OffsetsRequireStopped { .. }) => {}
            other => {
                panic!("resetting offsets of a RUNNING connector must need STOPPED, got {other:?}")
            }
        }

        client.pause_connector(&name).await.expect("pause");
        client
            .wait_for_state(&name, &ExpectedState::paused(), STATE_TIMEOUT)
            .await
            .expect("PAUSED");
        client.resume_connector(&name).await.expect("resume");
        client
            .wait_for_state(&name, &ExpectedState::running(), STATE_TIMEOUT)
            .await
            .expect("RUNNING again");
        client.stop_connector(&name).await.expect("stop");
        let stopped = client
            .wait_for_state(&name, &ExpectedState::stopped(), STATE_TIMEOUT)
            .await
            .expect("STOPPED");
        assert!(stopped.tasks.is_empty(), "a stopped connector has no tasks");

        // While STOPPED the offsets show the source position: Debezium's LSN for this server.
        let offsets = client.get_offsets(&name).await.expect("offsets");
        let entry = offsets
            .offsets
            .iter()
            .find(|o| o.partition.get("server").and_then(Value::as_str) == Some(name.as_str()))
            .unwrap_or_else(|| panic!("an offset for server {name}: {offsets:?}"));
        let lsn = entry
            .offset
            .as_ref()
            .and_then(|o| o.get("lsn"))
            .and_then(Value::as_i64)
            .expect("offset carries the LSN");
        let current: i64 = pg
            .query_one("select (pg_current_wal_lsn() - '0/0')::bigint", &[])
            .await
            .expect("current LSN")
            .get(0);
        assert!(
            lsn > 0 && lsn <= current,
            "offset LSN {lsn} within the WAL (current {current})"
        );
        println!("{name}: stopped at LSN {lsn} (server at {current})");
    };
    // Run the body, clean up whatever happened, then re-raise a failure.
    let result = tokio::spawn(outcome).await;
    cleanup.run().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn debezium_snapshot_of_100k_rows_arrives_whole() {
    const ROWS: i64 = 100_000;
    let stack = Stack::get();
    let client = stack.connect_client().expect("client");
    let name = unique_name("cdc-snap").replace('_', "-");
    let table = name.replace('-', "_");
    let pg = stack.pg_source().await.expect("source db");
    pg.batch_execute(&format!(
        "create table {table} (id bigint primary key, name text, amount numeric(12,2), created timestamptz default now());
         insert into {table} select g, 'name-' || g, g * 1.5, now() from generate_series(1, {ROWS}) g;"
    ))
    .await
    .expect("source table with rows");

    let config = debezium_config(&stack, &name, &table);
    let cleanup = Cleanup::new(&stack, &name, &config);
    let outcome = async move {
        let started = Instant::now();
        client
            .create_connector(&CreateConnectorRequest {
                name: name.clone(),
                config,
                initial_state: None,
            })
            .await
            .expect("create connector");
        let topic = format!("{name}.public.{table}");
        let consumer = stack.consumer().expect("consumer");

        // Count by end offsets: exact on this stack because Connect produces one record per batch.
        let ends = eventually(
            "end offsets reach the row count",
            Duration::from_secs(420),
            || {
                let ends = end_offsets(&consumer, &topic);
                async move {
                    let ends = ends?;
                    let total: i64 = ends.values().sum();
                    Ok((total >= ROWS).then_some(ends))
                }
            },
        )
        .await
        .expect("snapshot completes");
        let snapshot_secs = started.elapsed().as_secs_f64();
        assert_eq!(
            ends.values().sum::<i64>(),
            ROWS,
            "end offsets sum to the row count: {ends:?}"
        );

        // Count by consuming: every row exactly once.
        let records = consume(
            &consumer,
            &topic,
            None,
            ROWS as usize,
            Duration::from_secs(300),
        )
        .expect("consume snapshot");
        assert_eq!(
            records.len() as i64,
            ROWS,
            "records consumed equal the rows"
        );
        let ids: BTreeSet<i64> = records
            .iter()
            .map(|r| {
                let p = payload(r);
                assert_eq!(p["op"], "r", "snapshot events are reads");
                p["after"]["id"].as_i64().expect("id")
            })
            .collect();
        assert_eq!(ids.len() as i64, ROWS, "every row once");
        assert_eq!(ids.first().copied(), Some(1));
        assert_eq!(ids.last().copied(), Some(ROWS));
        println!(
            "snapshot of {ROWS} rows through Connect: {snapshot_secs:.1} s ({:.0} rows/s), end offsets {ends:?}",
            ROWS as f64 / snapshot_secs
        );
    };
    let result = tokio::spawn(outcome).await;
    cleanup.run().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}
