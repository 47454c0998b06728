//! `lockstep bench watch`, small: a connector of the test's own on the stack's Connect worker
//! (FileStreamSource, cheap) guarantees the recording holds one; the bench records
//! `GET /connectors?expand=status&expand=info`, replays it scaled on 2 in-process endpoints of
//! 10 connectors each, runs the watchdog for 5 cycles and reports cycle time and CPU.

use std::process::Command;
use std::time::Duration;

use lockstep_connect::{ConnectorConfig, CreateConnectorRequest, ExpectedState};
use lockstep_e2e::{unique_name, Stack};

#[tokio::test]
async fn bench_watch_small_reports_cycle_time_and_cpu() {
    let stack = Stack::get();
    let name = unique_name("bench_watch").replace('_', "-");
    let recording = std::env::temp_dir().join(format!("{name}.json"));

    let body = {
        let (stack, name, recording) = (stack.clone(), name.clone(), recording.clone());
        async move {
            let result: anyhow::Result<()> = async {
                let client = stack.connect_client()?;
                let mut config = ConnectorConfig::new();
                for (k, v) in [
                    (
                        "connector.class",
                        "org.apache.kafka.connect.file.FileStreamSourceConnector",
                    ),
                    ("tasks.max", "1"),
                    ("file", "/dev/null"),
                    ("topic", name.as_str()),
                    // Not a real secret: checks that a recording never holds one.
                    ("database.password", "bench-watch-not-a-secret"),
                ] {
                    config.insert(k.to_string(), v.to_string());
                }
                client
                    .create_connector(&CreateConnectorRequest {
                        name: name.clone(),
                        config,
                        initial_state: None,
                    })
                    .await?;
                client
                    .wait_for_state(&name, &ExpectedState::running(), Duration::from_secs(60))
                    .await?;

                let output = Command::new(env!("CARGO_BIN_EXE_lockstep"))
                    .args([
                        "bench",
                        "watch",
                        "--endpoints",
                        "2",
                        "--connectors-per-endpoint",
                        "10",
                        "--cycles",
                        "5",
                        "--failed-every",
                        "5",
                        "--save-recording",
                    ])
                    .arg(&recording)
                    .args(["-o", "json"])
                    .env("LOCKSTEP_CONNECT_URL", &stack.connect_url)
                    .env_remove("LOCKSTEP_CONFIG")
                    .env_remove("LOCKSTEP_CLUSTER")
                    .output()?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                println!("{stdout}\n{stderr}");
                anyhow::ensure!(
                    output.status.success(),
                    "lockstep bench watch failed: {stderr}"
                );
                let report: serde_json::Value = serde_json::from_str(&stdout)?;
                anyhow::ensure!(report["endpoints"] == 2, "{report}");
                anyhow::ensure!(report["connectors_per_cycle"] == 20, "{report}");
                anyhow::ensure!(report["failed_per_cycle"] == 4, "{report}");
                anyhow::ensure!(report["cycles"] == 5, "{report}");
                anyhow::ensure!(
                    report["endpoints_kind"]
                        .as_str()
                        .is_some_and(|k| k.contains("recorded-replay")),
                    "the report says the endpoints are replays: {report}"
                );
                for key in ["cycle_ms_p50", "cycle_ms_p99", "cpu_ms_per_cycle_p50"] {
                    anyhow::ensure!(
                        report[key].as_f64().is_some_and(|v| v > 0.0),
                        "{key}: {report}"
                    );
                }
                // The recording holds the test's connector, and replays the same way.
                let recorded: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&recording)?)?;
                anyhow::ensure!(recorded.get(&name).is_some(), "{recorded}");
                anyhow::ensure!(
                    !recorded.to_string().contains("bench-watch-not-a-secret"),
                    "a saved recording masks secret config values"
                );
                let replayed = Command::new(env!("CARGO_BIN_EXE_lockstep"))
                    .args([
                        "bench",
                        "watch",
                        "--endpoints",
                        "1",
                        "--connectors-per-endpoint",
                        "3",
                        "--cycles",
                        "2",
                        "--recorded",
                    ])
                    .arg(&recording)
                    .env_remove("LOCKSTEP_CONNECT_URL")
                    .env_remove("LOCKSTEP_CONFIG")
                    .output()?;
                println!("{}", String::from_utf8_lossy(&replayed.stdout));
                anyhow::ensure!(
                    replayed.status.success(),
                    "replaying a saved recording: {}",
                    String::from_utf8_lossy(&replayed.stderr)
                );
                Ok(())
            }
            .await;
            if let Err(e) = result {
                panic!("{e:#}");
            }
        }
    };
    let cleanup = async {
        if let Ok(client) = stack.connect_client() {
            let _ = client.delete_connector(&name).await;
        }
        let _ = std::fs::remove_file(&recording);
    };
    lockstep_e2e::with_cleanup(body, cleanup).await;
}
