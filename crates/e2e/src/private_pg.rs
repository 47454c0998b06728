//! A PostgreSQL server of a test's own: `initdb` + `postgres` from the local stack's PostgreSQL
//! binaries, in a temporary directory, on a free port of 127.0.0.1, with `wal_level=logical` (as
//! the stack's server) and `pg_hba.conf` requiring scram-sha-256 passwords for every connection.
//!
//! Tests that must stop the source database, or that need a server which really checks
//! passwords, use it instead of the shared stack's PostgreSQL (which trusts 127.0.0.1 and must
//! never be stopped). The shared Connect worker reaches it on 127.0.0.1 like any other server.
//!
//! Only the postmaster this value started is ever signalled (by its pid), and dropping the value
//! stops it and removes the directory, whether the test passed or panicked.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::unique_name;

/// The superuser of the private server.
pub const PRIVATE_PG_USER: &str = "postgres";

/// A private PostgreSQL server, stopped and deleted on drop.
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    /// uid / gid to run as: PostgreSQL refuses to run as root, so root runs it as `postgres`.
    run_as: Option<(u32, u32)>,
    postmaster: Option<Child>,
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("password", &"****")
            .field("pid", &self.pid())
            .finish()
    }
}

/// The newest PostgreSQL `bin` directory with `initdb` (`LOCKSTEP_PG_BINDIR` overrides), as
/// `scripts/stack` finds it.
fn pg_bindir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("LOCKSTEP_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("listing /usr/lib/postgresql for the PostgreSQL binaries: run `scripts/stack install` (or set LOCKSTEP_PG_BINDIR)")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| anyhow!("no /usr/lib/postgresql/*/bin/initdb: run `scripts/stack install` (or set LOCKSTEP_PG_BINDIR)"))
}

/// uid and gid of the `postgres` account, read from /etc/passwd.
fn postgres_account() -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres"))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .ok_or_else(|| anyhow!("running as root, but there is no `postgres` account to run PostgreSQL as: run `scripts/stack install`"))
}

fn is_root() -> bool {
    // The owner of /proc/self is the effective uid of this process.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends a signal to one pid with kill(1): only ever the postmaster this value started.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

impl PrivatePostgres {
    /// Creates the cluster in a new temporary directory and starts it; waits until it accepts
    /// connections.
    pub fn start() -> Result<Self> {
        let bin = pg_bindir()?;
        let run_as = if is_root() {
            Some(postgres_account()?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(unique_name("lockstep-pg"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut pg = Self {
            dir,
            bin,
            port: free_port()?,
            password: format!("e2e-{:016x}", rand::random::<u64>()),
            run_as,
            postmaster: None,
        };
        // From here on, Drop removes the directory if anything fails.
        pg.init()?;
        pg.start_again()?;
        Ok(pg)
    }

    fn init(&self) -> Result<()> {
        let pwfile = self.dir.join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.dir, Some(uid), Some(gid)).with_context(|| {
                format!("handing {} to the postgres account", self.dir.display())
            })?;
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
        }
        let log = self.dir.join("initdb.log");
        let mut cmd = Command::new(self.bin.join("initdb"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", PRIVATE_PG_USER, "--auth-local=scram-sha-256"])
            .args([
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .arg("--no-sync")
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdin(Stdio::null())
            .stdout(File::create(&log)?)
            .stderr(File::create(&log)?.try_clone()?);
        self.as_owner(&mut cmd);
        let status = cmd.status().context("running initdb")?;
        let _ = std::fs::remove_file(&pwfile);
        if !status.success() {
            bail!("initdb failed ({status}):\n{}", tail(&log, 20));
        }
        let mut conf = OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))?;
        write!(
            conf,
            "\n# lockstep e2e private server\nlisten_addresses = '127.0.0.1'\nport = {}\n\
             unix_socket_directories = '{}'\npassword_encryption = scram-sha-256\n\
             wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\n\
             max_connections = 50\nshared_buffers = 32MB\n\
             # disposable: no fsync. Never copy this to production.\nfsync = off\nfull_page_writes = off\n",
            self.port,
            self.dir.display()
        )?;
        Ok(())
    }

    fn as_owner(&self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server log (stderr of the postmaster), for a failing test's message.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Starts the server again on the same port and data directory (after [`Self::stop`]);
    /// waits until it accepts connections.
    pub fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(self.log_path(), Some(uid), Some(gid))?;
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C meant for the test runner does not reach it.
            .process_group(0);
        self.as_owner(&mut cmd);
        let child = cmd.spawn().context("starting postgres")?;
        self.postmaster = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.postmaster.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.postmaster = None;
                    bail!(
                        "the private PostgreSQL exited at start ({status}):\n{}",
                        tail(&self.log_path(), 20)
                    );
                }
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the private PostgreSQL on port {} did not accept connections within 60 s:\n{}",
                    self.port,
                    tail(&self.log_path(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server with a fast shutdown (SIGINT: open sessions are terminated with
    /// "terminating connection due to administrator command", as an operator's
    /// `pg_ctl stop -m fast`) and waits for the postmaster to exit.
    pub fn stop(&mut self) -> Result<()> {
        self.shutdown("INT", Duration::from_secs(60))
    }

    fn shutdown(&mut self, sig: &str, patience: Duration) -> Result<()> {
        let Some(mut child) = self.postmaster.take() else {
            return Ok(());
        };
        signal(child.id(), sig);
        let deadline = Instant::now() + patience;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the private PostgreSQL (pid {}) ignored SIG{sig} for {patience:?} and was killed",
                    child.id()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the postmaster this value started runs.
    pub fn is_running(&mut self) -> bool {
        match self.postmaster.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Child::id)
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password (the server checks it: scram-sha-256).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A connection as the superuser, with its password, over TCP.
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client> {
        self.connect_as(PRIVATE_PG_USER, &self.password, db).await
    }

    /// A connection as any role with the given password, over TCP.
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<tokio_postgres::Client> {
        let (client, connection) = self
            .client_config(user, password, db)
            .connect(tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!(
                    "connecting to the private PostgreSQL 127.0.0.1:{}/{db} as {user}",
                    self.port
                )
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Connection settings for `user` / `password` on `db`, over TCP (a writer that must
    /// reconnect after [`Self::stop`] keeps a copy).
    pub fn client_config(&self, user: &str, password: &str, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.host())
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(db)
            .application_name("lockstep-e2e")
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// A Debezium PostgreSQL source config for tables of this server's `postgres` database,
    /// logging in as the superuser with its password; one partition per topic.
    pub fn debezium_config(&self, name: &str, tables: &[&str]) -> BTreeMap<String, String> {
        let include: Vec<String> = tables.iter().map(|t| format!("public.{t}")).collect();
        let slot = name.replace('-', "_");
        [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector".to_string(),
            ),
            ("tasks.max", "1".into()),
            ("database.hostname", self.host().into()),
            ("database.port", self.port.to_string()),
            ("database.user", PRIVATE_PG_USER.into()),
            ("database.password", self.password.clone()),
            ("database.dbname", "postgres".into()),
            ("topic.prefix", name.to_string()),
            ("plugin.name", "pgoutput".into()),
            ("slot.name", slot.clone()),
            ("publication.name", format!("{slot}_pub")),
            ("publication.autocreate.mode", "filtered".into()),
            ("table.include.list", include.join(",")),
            ("snapshot.mode", "initial".into()),
            ("topic.creation.default.partitions", "1".into()),
            ("topic.creation.default.replication.factor", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Immediate shutdown (SIGQUIT): nothing of a disposable server needs a checkpoint.
        if let Err(e) = self.shutdown("QUIT", Duration::from_secs(20)) {
            eprintln!("private PostgreSQL: {e:#}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "private PostgreSQL: cannot remove {}: {e}",
                self.dir.display()
            );
        }
    }
}
