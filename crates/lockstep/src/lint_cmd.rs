//! `lockstep lint connectors PATH` and `lockstep lint rules`: the production-readiness linter.
//! Rules, profiles and rendering live in `lockstep-lint`; this module loads the manifests and
//! picks the output and the exit code.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, Subcommand, ValueEnum};
use lockstep_connectors::{load, load_file, parse_var_assignment, LoadOptions};
use lockstep_lint::{catalog, lint, render, Context, Profile, Severity, PROFILES};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::exit;
use crate::output::{print, TableView};

const AFTER_HELP: &str = "\
Every finding has a stable rule id (LS101...), a severity, the reason and the fix;
`lockstep lint rules` lists the catalog.

Profiles: default (each rule at its default severity) and regulated (schemaless JSON, message
logging, sink auto-DDL, double decimals, disabled tombstones and implicit converters are errors).

Suppress a finding in the manifest, with the reason (a suppression without one is an error):
  lint:
    suppress:
      LS604: \"heartbeats come from the application's own heartbeat writer\"

Exit codes: 0 nothing at or above --fail-on (default: error); 1 findings at or above it, or the
manifests could not be loaded.

Examples:
  lockstep lint connectors connectors/prod --env dr
  lockstep lint connectors connectors/prod --profile regulated --format sarif > lint.sarif
  lockstep lint connectors orders-sink.yaml --partitions shop.public.orders=6";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct LintArgs {
    #[command(subcommand)]
    pub command: LintCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Findings with code frames, for people.
    Text,
    /// The report as JSON.
    Json,
    /// SARIF 2.1.0, for code-review tools.
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Subcommand)]
pub enum LintCommand {
    /// Lint connector manifests: a file, or a directory (base/ + overlays, or *.yaml files).
    Connectors {
        /// A manifest file or a directory of one Connect cluster's manifests.
        #[arg(value_name = "DIR|FILE")]
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = LintFormat::Text)]
        format: LintFormat,
        /// Rule profile: default or regulated.
        #[arg(long, default_value = "default")]
        profile: String,
        /// Exit 1 when a finding has this severity or higher.
        #[arg(long, value_enum, default_value_t = FailOn::Error)]
        fail_on: FailOn,
        /// Topic naming convention (a regular expression) instead of the default.
        #[arg(long, value_name = "REGEX")]
        topic_pattern: Option<String>,
        /// Known partition count of a topic (repeatable), for tasks.max checks.
        #[arg(long, value_name = "TOPIC=N", value_parser = parse_partitions)]
        partitions: Vec<(String, u32)>,
        /// Environment overlay to apply (overlays/<ENV>/) before linting.
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
        /// Variable for ${var:NAME} (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var_assignment)]
        vars: Vec<(String, String)>,
        /// Extra variables file (YAML map).
        #[arg(long, value_name = "FILE")]
        vars_file: Vec<PathBuf>,
    },
    /// The rule catalog: id, name, default severity, what it checks.
    Rules,
}

fn parse_partitions(text: &str) -> Result<(String, u32), String> {
    let (topic, n) = parse_var_assignment(text).map_err(|_| format!("'{text}' is not TOPIC=N"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("'{text}': the partition count must be a whole number"))?;
    Ok((topic, n))
}

pub async fn run(global: &GlobalArgs, args: LintArgs) -> anyhow::Result<u8> {
    match args.command {
        LintCommand::Rules => {
            let rows = catalog()
                .map(|r| RuleRow {
                    id: r.id,
                    name: r.name,
                    severity: r.default_severity,
                    summary: r.summary,
                    rationale: r.rationale,
                    fix: r.fix,
                })
                .collect();
            print(global.output, &Rules(rows))?;
            Ok(exit::OK)
        }
        LintCommand::Connectors {
            path,
            format,
            profile,
            fail_on,
            topic_pattern,
            partitions,
            env,
            vars,
            vars_file,
        } => {
            let mut profile = Profile::named(&profile).ok_or_else(|| {
                anyhow!(
                    "no lint profile '{profile}': use one of {}",
                    PROFILES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            if let Some(pattern) = topic_pattern {
                profile = profile
                    .with_topic_pattern(&pattern)
                    .map_err(|e| anyhow!(e))?;
            }
            let options = LoadOptions {
                env,
                vars: vars.into_iter().collect(),
                vars_files: vars_file,
            };
            let manifests = if path.is_dir() {
                let mut all = Vec::new();
                for dir in cluster_dirs(&path)? {
                    all.extend(load(&dir, &options)?.manifests);
                }
                all
            } else {
                let mut vars = std::collections::BTreeMap::new();
                for file in &options.vars_files {
                    vars.extend(read_vars(file)?);
                }
                vars.extend(options.vars.clone());
                vec![load_file(&path, &vars)?]
            };
            let context = Context {
                topic_partitions: partitions.into_iter().collect(),
            };
            let report = lint(&manifests, &profile, &context);
            let text = match format {
                LintFormat::Text => render::text(&report),
                LintFormat::Json => render::json(&report),
                LintFormat::Sarif => render::sarif(&report),
            };
            print!("{text}");
            let threshold = match fail_on {
                FailOn::Error => Severity::Error,
                FailOn::Warning => Severity::Warning,
                FailOn::Info => Severity::Info,
            };
            Ok(match report.max_severity() {
                Some(s) if s >= threshold => exit::FAILED,
                _ => exit::OK,
            })
        }
    }
}

/// `path` itself when it holds manifests (`base/` or manifest files), otherwise its
/// sub-directories that do (a directory of Connect clusters, like `examples/connectors/`).
fn cluster_dirs(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let holds_manifests = |dir: &Path| {
        dir.join("base").is_dir()
            || std::fs::read_dir(dir).is_ok_and(|rd| {
                rd.filter_map(Result::ok).any(|e| {
                    let p = e.path();
                    p.is_file()
                        && p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                            matches!(x.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json")
                        })
                        && p.file_stem().and_then(|s| s.to_str()) != Some("vars")
                })
            })
    };
    if holds_manifests(path) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && holds_manifests(p))
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(anyhow!(
            "{}: no connector manifests here or in its sub-directories (*.yaml, *.yml, *.json; see `lockstep connectors --help`)",
            path.display()
        ));
    }
    Ok(dirs)
}

fn read_vars(file: &std::path::Path) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow!("cannot read the variables file {}: {e}", file.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        anyhow!(
            "{}: a variables file is a map of NAME: value ({e})",
            file.display()
        )
    })
}

#[derive(Serialize)]
struct RuleRow {
    id: &'static str,
    name: &'static str,
    severity: Severity,
    summary: &'static str,
    rationale: &'static str,
    fix: &'static str,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Rules(Vec<RuleRow>);

impl TableView for Rules {
    fn headers(&self) -> Vec<&'static str> {
        vec!["ID", "NAME", "SEVERITY", "CHECKS"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.name.to_string(),
                    r.severity.as_str().to_string(),
                    r.summary.to_string(),
                ]
            })
            .collect()
    }
    fn footer(&self) -> Vec<String> {
        vec!["\n`-o yaml` shows each rule's rationale and fix.".into()]
    }
}
