//! `lockstep audit show|verify`: the hash-chained audit log kept in the state store
//! (`<state dir>/lockstep.db`, see `lockstep-store`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use lockstep_store::{AuditRecord, ChainReport, Store, DB_FILE};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::output::{print, TableView};
use crate::{exit, AlreadyReported};

/// Longest details text in the table (json/yaml carry it whole).
const DETAILS_SHOWN: usize = 80;

#[derive(Debug, Args)]
#[command(
    after_help = "Every change lockstep makes (DDL operations and their steps, watchdog restarts,
tuning changes, alerts) is appended to the audit log in the same transaction as the change. Each
record carries the SHA-256 of the one before it, so editing, deleting or reordering any record
breaks the chain from that record on; `verify` names the first broken one. Values under
secret-looking keys (password, token, ...) are masked before they are stored.

Examples:
  lockstep audit show                       the last 50 records
  lockstep audit show --since 1200 -o json  records after seq 1200, for a script
  lockstep audit verify                     exit 0 intact, 1 broken (with the seq and why)"
)]
pub struct AuditArgs {
    #[command(flatten)]
    pub state: StateDirArgs,
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Where lockstep keeps its state (operations, audit log): shared by every verb that uses it.
#[derive(Debug, Args, Clone)]
pub struct StateDirArgs {
    /// Directory of lockstep's state store (the file lockstep.db in it).
    #[arg(
        long,
        global = true,
        env = "LOCKSTEP_STATE_DIR",
        default_value = ".lockstep",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
}

impl StateDirArgs {
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join(DB_FILE)
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show audit records, oldest first (by default the last 50).
    Show {
        /// Only records after this sequence number (pass the last seq you saw).
        #[arg(long, value_name = "SEQ")]
        since: Option<u64>,
        /// At most this many records (0: no limit).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Check the whole hash chain: exit 0 when intact, 1 naming the first broken seq and why.
    Verify,
}

pub async fn run(global: &GlobalArgs, args: AuditArgs) -> anyhow::Result<u8> {
    let store = Store::open_existing(&args.state.db_path())?;
    match args.command {
        AuditCommand::Show { since, limit } => {
            let records = match since {
                Some(after) => store.audit_records(Some(after), limit)?,
                None if limit == 0 => store.audit_records(None, 0)?,
                None => store.audit_tail(limit)?,
            };
            print(global.output, &RecordsView(records))?;
            Ok(exit::OK)
        }
        AuditCommand::Verify => {
            let report = store.verify_chain()?;
            print(global.output, &ReportView(&report))?;
            match &report.broken {
                None => Ok(exit::OK),
                Some(broken) => {
                    eprintln!(
                        "error: the audit log in {} is broken at seq {}: {}. Records before seq {} verify; \
                         restore lockstep.db from a backup, or compare with the audit mirror topic, to see what changed",
                        store.path().display(),
                        broken.seq,
                        broken.reason,
                        broken.seq
                    );
                    Err(AlreadyReported(exit::FAILED).into())
                }
            }
        }
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct RecordsView(Vec<AuditRecord>);

impl TableView for RecordsView {
    fn headers(&self) -> Vec<&'static str> {
        vec!["SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "DETAILS"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|r| {
                vec![
                    r.seq.to_string(),
                    r.ts.clone(),
                    r.actor.clone(),
                    r.action.clone(),
                    r.subject.clone(),
                    shorten(&r.details, DETAILS_SHOWN),
                ]
            })
            .collect()
    }

    fn footer(&self) -> Vec<String> {
        if self.0.is_empty() {
            vec!["(no audit records)".to_string()]
        } else {
            Vec::new()
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[derive(Serialize)]
#[serde(transparent)]
struct ReportView<'a>(&'a ChainReport);

impl TableView for ReportView<'_> {
    fn headers(&self) -> Vec<&'static str> {
        vec!["CHAIN", "RECORDS READ", "VERIFIED TO SEQ", "ITS HASH"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let r = self.0;
        vec![vec![
            if r.intact { "intact" } else { "BROKEN" }.to_string(),
            r.records.to_string(),
            r.last_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.last_hash.clone().unwrap_or_else(|| "-".into()),
        ]]
    }

    fn footer(&self) -> Vec<String> {
        match &self.0.broken {
            Some(broken) => vec![format!("first break: {broken}")],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_details_are_shortened_on_a_character_boundary() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 5), "abcd…");
        assert_eq!(shorten("ééééééé", 4), "ééé…");
    }
}
