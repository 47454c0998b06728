//! The `lockstep` binary as an operator or a CI job uses it, against the real Connect worker:
//! outputs, messages and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

use lockstep_e2e::{unique_name, Stack};

fn lockstep(stack: Option<&Stack>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    cmd.args(args)
        .env_remove("LOCKSTEP_CONFIG")
        .env_remove("LOCKSTEP_CLUSTER")
        .current_dir(std::env::temp_dir());
    match stack {
        Some(stack) => cmd.env("LOCKSTEP_CONNECT_URL", &stack.connect_url),
        None => cmd.env_remove("LOCKSTEP_CONNECT_URL"),
    };
    cmd.output().expect("running the lockstep binary")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}", unique_name("cli")));
    std::fs::write(&path, contents).expect("write temp file");
    path
}

#[test]
fn validate_fails_with_connects_messages_and_exit_1() {
    let stack = Stack::get();
    let file = temp_file(
        "incomplete.json",
        r#"{"name": "orders-cdc", "config": {"connector.class": "io.debezium.connector.postgresql.PostgresConnector", "database.password": "hunter2-secret"}}"#,
    );
    let output = lockstep(
        Some(&stack),
        &["connect", "validate", "-f", file.to_str().expect("path")],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("topic.prefix") && stdout.contains("A value is required"),
        "{stdout}"
    );
    assert!(
        stderr.contains("is not a valid io.debezium.connector.postgresql.PostgresConnector config"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "a secret leaked"
    );

    let json = lockstep(
        Some(&stack),
        &[
            "connect",
            "validate",
            "-f",
            file.to_str().expect("path"),
            "-o",
            "json",
        ],
    );
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json report");
    assert_eq!(report["valid"], false);
    assert!(report["error_count"].as_u64().unwrap_or(0) >= 2, "{report}");
}

#[test]
fn validate_names_an_unknown_class() {
    let stack = Stack::get();
    let file = temp_file(
        "unknown.yaml",
        "name: ghost\nconnector.class: com.example.NoSuchConnector\n",
    );
    let output = lockstep(
        Some(&stack),
        &["connect", "validate", "-f", file.to_str().expect("path")],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.contains("com.example.NoSuchConnector"), "{stderr}");
    assert!(
        stderr.len() < 2_000,
        "the error is readable, not a dump of every plugin: {stderr}"
    );
}

#[test]
fn listing_is_machine_readable_and_unknown_connectors_fail_clearly() {
    let stack = Stack::get();
    let ls = lockstep(Some(&stack), &["connect", "ls", "-o", "json"]);
    assert_eq!(ls.status.code(), Some(0), "{:?}", text(&ls));
    let listing: serde_json::Value = serde_json::from_slice(&ls.stdout).expect("json listing");
    assert!(listing.is_array());

    // Other tests add and remove connectors on the shared worker; while the group rebalances
    // Connect reports itself unhealthy ("ensuring membership in the cluster"), which `info`
    // shows as it is. The test is about the output, so it waits for a healthy worker.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let (info, stdout) = loop {
        let info = lockstep(Some(&stack), &["connect", "info", "-o", "yaml"]);
        let (stdout, _) = text(&info);
        if stdout.contains("health: healthy") || std::time::Instant::now() > deadline {
            break (info, stdout);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    assert_eq!(info.status.code(), Some(0));
    assert!(
        stdout.contains("version: 4.") && stdout.contains("health: healthy"),
        "{stdout}"
    );

    let plugins = lockstep(Some(&stack), &["connect", "plugins"]);
    assert!(text(&plugins)
        .0
        .contains("io.debezium.connector.postgresql.PostgresConnector"));

    let missing = lockstep(Some(&stack), &["connect", "status", "no-such-connector"]);
    let (_, stderr) = text(&missing);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr.contains("no-such-connector") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_and_missing_configuration_are_told_apart() {
    let usage = lockstep(None, &["connect", "frobnicate"]);
    assert_eq!(usage.status.code(), Some(64));

    let unconfigured = lockstep(None, &["connect", "ls"]);
    let (_, stderr) = text(&unconfigured);
    assert_eq!(unconfigured.status.code(), Some(1));
    assert!(
        stderr.contains("--connect-url") && stderr.contains("LOCKSTEP_CONNECT_URL"),
        "{stderr}"
    );

    let unreachable = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["connect", "ls", "--connect-url", "http://127.0.0.1:9"])
        .output()
        .expect("run");
    let (_, stderr) = text(&unreachable);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        stderr.contains("127.0.0.1:9"),
        "names the worker it could not reach: {stderr}"
    );
}

#[test]
fn serve_answers_health_connectors_and_its_openapi_spec() {
    let stack = Stack::get();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["serve", "--listen", &listen])
        .env("LOCKSTEP_CONNECT_URL", &stack.connect_url)
        .env_remove("LOCKSTEP_CONFIG")
        .current_dir(std::env::temp_dir())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start lockstep serve");
    let get = |path: &str| -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&listen).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())?;
        Some((status, body))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let health = loop {
        if let Some(answer) = get("/healthz") {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not start listening"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let connectors = get("/api/v1/connectors");
    let spec = get("/openapi.json");
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(health.0, 200);
    assert!(health.1.contains("\"ok\""), "{}", health.1);
    let (status, body) = connectors.expect("connectors answer");
    assert_eq!(status, 200, "{body}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&body)
            .map(|v| v.is_array())
            .unwrap_or(false),
        "{body}"
    );
    let (status, body) = spec.expect("spec answer");
    assert_eq!(status, 200);
    let spec: serde_json::Value = serde_json::from_str(&body).expect("spec is JSON");
    assert!(spec["paths"]["/api/v1/connectors"].is_object(), "{spec}");
}
