//! The watchdog against the real stack, through the built binary.
//!
//! Credentials rejected: a Debezium PostgreSQL connector whose database role may no longer log
//! in fails; `lockstep watch` classifies the trace as a permanent authentication failure,
//! raises exactly one alert with the cause and the fix, and never restarts it, however many
//! cycles run. (The stack's PostgreSQL trusts local connections, so a wrong *password* is
//! accepted there; a role that is refused login gives the same class of error — the JDBC
//! driver's "FATAL: role ... is not permitted to log in" — without touching the shared
//! server's pg_hba.conf.)
//!
//! Not automated here, because it needs stopping the shared PostgreSQL: stop the source
//! database for 20 s under load, see the task fail with "terminating connection due to
//! administrator command" / "Connection refused" (retriable), and the watchdog restart it once
//! the database is back (time from database-back to RUNNING printed), then `lockstep verify`
//! at zero differences. `policy::tests` covers the decisions of that scenario.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lockstep_connect::{ConnectorState, RestartOptions};
use lockstep_e2e::{eventually, unique_name, Stack};

fn lockstep(stack: &Stack, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    cmd.args(args)
        .env("LOCKSTEP_CONNECT_URL", &stack.connect_url)
        .env_remove("LOCKSTEP_CONFIG")
        .env_remove("LOCKSTEP_CLUSTER")
        .env_remove("LOCKSTEP_STATE_DIR");
    cmd
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
#[ignore = "unfinished: after ALTER ROLE .. NOLOGIN and a restart, the Debezium 3.6 task on the stack stays RUNNING (observed three times), so no FAILED trace is produced yet; the decisions are covered by lockstep-watchdog's policy tests"]
fn rejected_credentials_raise_one_alert_and_no_restart_loop() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stack = Stack::get();
    let name = unique_name("wd_auth");
    let role = format!("{name}_role");
    let publication = format!("{name}_pub");
    let state_dir: PathBuf = std::env::temp_dir().join(format!("lockstep-watchdog-{name}"));
    std::fs::create_dir_all(&state_dir).expect("state dir");

    let setup = rt.block_on(async {
        let pg = stack.pg_source().await?;
        pg.batch_execute(&format!(
            "create table public.{name} (id bigint primary key, v text);
             insert into public.{name} values (1, 'a');
             create role {role} login replication;
             grant select on public.{name} to {role};
             create publication {publication} for table public.{name};"
        ))
        .await?;
        stack
            .start_pg_connector(
                &name,
                &[&name],
                &[
                    ("database.user", role.as_str()),
                    ("publication.name", publication.as_str()),
                    ("publication.autocreate.mode", "disabled"),
                    // Debezium retries connection errors for ever by default; fail at once.
                    ("errors.max.retries", "0"),
                ],
            )
            .await
    });

    let body = || -> anyhow::Result<()> {
        setup.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let client = stack.connect_client()?;
        rt.block_on(async {
            let pg = stack.pg_source().await?;
            pg.batch_execute(&format!("alter role {role} nologin"))
                .await?;
            client
                .restart_connector(
                    &name,
                    RestartOptions {
                        include_tasks: true,
                        only_failed: false,
                    },
                )
                .await?;
            eventually("the task to fail", Duration::from_secs(90), || async {
                let status = client.connector_status(&name).await?;
                if status.has_failure() {
                    return Ok(Some(()));
                }
                anyhow::bail!("not failed yet: {status:?}")
            })
            .await
        })?;

        // One cycle: the classified cause and the fix, exit 1.
        let once = lockstep(
            &stack,
            &[
                "watch",
                "--once",
                "--connector",
                &name,
                "--state-dir",
                state_dir.to_str().expect("utf-8"),
                "-o",
                "json",
            ],
        )
        .output()?;
        anyhow::ensure!(once.status.code() == Some(1), "{}", text(&once));
        let report: serde_json::Value = serde_json::from_slice(&once.stdout)?;
        let row = &report["connectors"][0];
        anyhow::ensure!(row["connector"] == name.as_str(), "{report}");
        anyhow::ensure!(row["cause"] == "authentication", "{report}");
        anyhow::ensure!(row["action"] == "alert: not restarted", "{report}");
        anyhow::ensure!(
            row["detail"]
                .as_str()
                .is_some_and(|d| d.contains("database.user")),
            "the fix is named: {report}"
        );

        // A long-running watchdog, polling every 500 ms for 8 s: still one alert, no restart.
        let mut child = lockstep(
            &stack,
            &[
                "watch",
                "--interval",
                "500ms",
                "--initial-backoff",
                "1s",
                "--connector",
                &name,
                "--state-dir",
                state_dir.to_str().expect("utf-8"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
        std::thread::sleep(Duration::from_secs(8));
        child.kill()?;
        let output = child.wait_with_output()?;
        let store = lockstep_store::Store::open_existing(&state_dir.join(lockstep_store::DB_FILE))?;
        let records: Vec<_> = store
            .audit_records(None, 0)?
            .into_iter()
            .filter(|r| r.subject == name)
            .collect();
        let actions: Vec<(String, serde_json::Value)> = records
            .iter()
            .map(|r| (r.action.clone(), r.details_json()))
            .collect();
        // The --once run and the long run each raise the alert once (separate processes).
        let alerts: Vec<_> = actions
            .iter()
            .filter(|(a, _)| a == "alert.raised")
            .collect();
        anyhow::ensure!(
            alerts.len() == 2,
            "one alert per watchdog process: {actions:?}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for (_, details) in &alerts {
            anyhow::ensure!(details["cause"] == "authentication", "{details}");
            anyhow::ensure!(details["kind"] == "permanent_failure", "{details}");
        }
        anyhow::ensure!(
            !actions
                .iter()
                .any(|(a, _)| a.starts_with("connector.restart")),
            "a permanent failure is never restarted: {actions:?}"
        );
        anyhow::ensure!(store.verify_chain()?.intact);
        // Still FAILED: nobody restarted it.
        let status = rt.block_on(client.connector_status(&name))?;
        anyhow::ensure!(
            status
                .tasks
                .iter()
                .any(|t| t.state == ConnectorState::Failed),
            "{status:?}"
        );
        Ok(())
    };
    let result = body();

    // Cleanup, whatever happened.
    rt.block_on(async {
        if let Ok(client) = stack.connect_client() {
            let _ = client.delete_connector(&name).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Err(e) = stack.drop_pg_slot(&name, &publication).await {
            eprintln!("cleanup of slot {name}: {e:#}");
        }
        if let Ok(pg) = stack.pg_source().await {
            let _ = pg
                .batch_execute(&format!(
                    "drop publication if exists {publication};
                     drop table if exists public.{name};
                     drop owned by {role}; drop role if exists {role};"
                ))
                .await;
        }
    });
    let _ = std::fs::remove_dir_all(&state_dir);
    if let Err(e) = result {
        panic!("{e:#}");
    }
}
