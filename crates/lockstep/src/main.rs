//! The `lockstep` binary: CLI verbs and the `serve` service. This file is the one reporting layer:
//! every error from the libraries arrives here and leaves as one message and an exit code.

mod audit_cmd;
mod bench_cmd;
mod bench_watch;
mod bench_workload;
mod cli;
mod connect_cmd;
mod connectors_cmd;
mod cpu_time;
mod ddl_api;
mod ddl_cmd;
mod ddl_queue;
mod lint_cmd;
mod output;
mod serve;
mod sink_cmd;
mod sink_service;
mod status_cmd;
mod target;
mod tune_cmd;
mod verify_cmd;
mod watch_cmd;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3); the Rust bindings leave it out.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// mimalloc gives freed memory back to the OS one second after it is freed. The sink frees and
/// allocates a batch's worth of memory several times a second, and with that default the kernel
/// spent a third of the sink's CPU zeroing pages it had just been given back (perf on
/// `lockstep bench sink`: 1,159 samples in the sink's threads with the default, 728 with ten
/// seconds). Ten seconds keeps the working set across batches and still returns a burst's
/// memory. `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory_between_batches() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of an integer option, callable at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) }
    }
}

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit codes a CI job can rely on (documented in `lockstep --help`).
pub mod exit {
    pub const OK: u8 = 0;
    /// The operation failed, or its input (a config, a connector) is invalid.
    pub const FAILED: u8 = 1;
    /// Command-line usage error (unknown flag, missing argument).
    pub const USAGE: u8 = 64;
}

/// An error that has already been reported to the user in full (e.g. a validation table):
/// `main` exits with its code and prints nothing more.
#[derive(Debug)]
pub struct AlreadyReported(pub u8);

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for AlreadyReported {}

fn main() -> ExitCode {
    keep_freed_memory_between_batches();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if let Some(reported) = err.downcast_ref::<AlreadyReported>() {
                return ExitCode::from(reported.0);
            }
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit::FAILED)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Connect(args) => connect_cmd::run(&cli.global, args).await,
        Command::Sink(args) => sink_cmd::run(&cli.global, args).await,
        Command::Verify(args) => verify_cmd::run(&cli.global, args).await,
        Command::Connectors(args) => connectors_cmd::run(&cli.global, args).await,
        Command::Lint(args) => lint_cmd::run(&cli.global, args).await,
        Command::Audit(args) => audit_cmd::run(&cli.global, args).await,
        Command::Watch(args) => watch_cmd::run(&cli.global, args).await,
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Bench(args) => bench_cmd::run(&cli.global, args).await,
        Command::Ddl(args) => ddl_cmd::run(&cli.global, args).await,
        Command::Pipeline(args) => ddl_cmd::run_pipeline(&cli.global, args).await,
        Command::Status(args) => status_cmd::run(&cli.global, args).await,
        Command::Tune(args) => tune_cmd::run(&cli.global, args).await,
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,lockstep=debug,lockstep_connect=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKSTEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod allocator_tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: plain getters/setters of integer options.
        let before = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc v3's default purge delay is 1000 ms; no other option has that default, so
        // this fails if the option number points elsewhere (unless the environment set it).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert!(before == 1_000 || before == 10_000, "{before}");
        }
        keep_freed_memory_between_batches();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 10_000);
        }
    }
}
