//! Connector manifests: one file per connector, a directory per Connect cluster, overlays per
//! environment, `${var:NAME}` variables.
//!
//! ```text
//! connectors/prod-cluster/          one directory per Kafka Connect cluster
//!   vars.yaml                       variables for every environment (optional)
//!   base/inventory-cdc.yaml         one connector per file (YAML or JSON)
//!   overlays/dr/vars.yaml           variables of the `dr` environment (optional)
//!   overlays/dr/inventory-cdc.yaml  changes for `dr`: keys set, or removed with null
//! ```
//!
//! A directory without `base/` is a flat set of manifests. A manifest:
//!
//! ```yaml
//! name: inventory-cdc
//! initial_state: running            # optional: running | paused | stopped (on create)
//! config:
//!   connector.class: io.debezium.connector.postgresql.PostgresConnector
//!   database.hostname: ${var:pg_host}
//!   database.password: ${file:/run/secrets/pg.properties:password}   # stays a reference
//! lint:
//!   suppress:
//!     LS604: "heartbeats come from the application's own writer"      # justification required
//! ```
//!
//! Loading is all or nothing: every problem of every file is collected and reported with the
//! file and the field, and no partial set is returned.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use lockstep_connect::{ConnectorConfig, InitialState};
use serde_yaml_ng::Value;

use crate::vars::substitute;

/// Where something is written: file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// An inline lint suppression: `lint: {suppress: {RULE: "justification"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The rule id as written (e.g. `LS604`).
    pub rule: String,
    /// Why the rule does not apply here; `None` or blank when missing (the linter reports that).
    pub justification: Option<String>,
    pub location: Option<Location>,
}

/// One connector's desired state, after overlays and variables.
#[derive(Clone)]
pub struct Manifest {
    pub name: String,
    /// The connector configuration, without the `name` key (added when sent to Connect).
    pub config: ConnectorConfig,
    /// State the connector starts in when created (Connect's `initial_state`).
    pub initial_state: Option<InitialState>,
    pub suppressions: Vec<Suppression>,
    /// The file that declares the connector (the base file).
    pub file: PathBuf,
    /// Overlay files applied on top, in order.
    pub overlays: Vec<PathBuf>,
    key_locations: BTreeMap<String, Location>,
    name_location: Location,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `ConnectorConfig`'s Debug masks secrets.
        f.debug_struct("Manifest")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("overlays", &self.overlays)
            .field("initial_state", &self.initial_state)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// A manifest built in memory rather than loaded (tests, configs read from elsewhere);
    /// every location points at line 1 of `file`.
    pub fn in_memory(
        name: impl Into<String>,
        config: ConnectorConfig,
        file: impl Into<PathBuf>,
    ) -> Self {
        let file = file.into();
        let mut config = config;
        config.remove("name");
        Self {
            name: name.into(),
            config,
            initial_state: None,
            suppressions: Vec::new(),
            name_location: Location {
                file: file.clone(),
                line: 1,
                column: 1,
            },
            file,
            overlays: Vec::new(),
            key_locations: BTreeMap::new(),
        }
    }

    /// Where `key` of the configuration was last set (base or overlay file).
    pub fn key_location(&self, key: &str) -> Option<&Location> {
        self.key_locations.get(key)
    }

    /// Where the connector is declared (the line of its `name`).
    pub fn location(&self) -> &Location {
        &self.name_location
    }

    /// The configuration as Connect stores it: with `name`.
    pub fn config_with_name(&self) -> ConnectorConfig {
        let mut config = self.config.clone();
        config.insert("name", self.name.clone());
        config
    }
}

/// Every manifest of one Connect cluster's directory, sorted by connector name.
#[derive(Debug, Clone)]
pub struct ManifestSet {
    pub dir: PathBuf,
    pub env: Option<String>,
    pub manifests: Vec<Manifest>,
}

impl ManifestSet {
    /// Desired configurations by connector name (without the `name` key), the input of
    /// [`crate::plan()`].
    pub fn desired(&self) -> BTreeMap<String, ConnectorConfig> {
        self.manifests
            .iter()
            .map(|m| (m.name.clone(), m.config.clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Manifest> {
        self.manifests.iter().find(|m| m.name == name)
    }
}

/// How to load a directory.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Environment whose overlay (`overlays/<env>/`) is applied.
    pub env: Option<String>,
    /// Variables given on the command line (`--var NAME=VALUE`); they win over files.
    pub vars: BTreeMap<String, String>,
    /// Extra variable files (`--vars-file`), applied after the directory's own.
    pub vars_files: Vec<PathBuf>,
}

/// One problem found while loading: file, field (`config.snapshot.mode`), what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Loading failed; every problem found is listed.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ManifestError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        if n > 1 {
            writeln!(f, "{n} problems in the connector manifests:")?;
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if n > 1 {
                write!(f, "  ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl ManifestError {
    fn one(file: &Path, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                file: file.to_path_buf(),
                field: field.map(str::to_string),
                message: message.into(),
            }],
        }
    }
}

/// Parses `NAME=VALUE` (a `--var` argument).
pub fn parse_var_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("'{text}' is not NAME=VALUE")),
    }
}

const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

fn is_manifest_file(path: &Path) -> bool {
    let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if file_name.starts_with('.') || !path.is_file() {
        return false;
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let ext_ok = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    ext_ok && stem != "vars"
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ManifestError::one(dir, None, format!("cannot read the directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_manifest_file(p))
        .collect();
    files.sort();
    Ok(files)
}

fn vars_file_in(dir: &Path) -> Option<PathBuf> {
    MANIFEST_EXTENSIONS
        .iter()
        .map(|ext| dir.join(format!("vars.{ext}")))
        .find(|p| p.is_file())
}

/// Loads a cluster directory: `base/` (or the directory itself), the environment's overlay,
/// and the variables.
pub fn load(dir: &Path, options: &LoadOptions) -> Result<ManifestSet, ManifestError> {
    if !dir.is_dir() {
        return Err(ManifestError::one(
            dir,
            None,
            "not a directory: give the directory of one Connect cluster's manifests (with base/ or *.yaml files)",
        ));
    }
    let base_dir = if dir.join("base").is_dir() {
        dir.join("base")
    } else {
        dir.to_path_buf()
    };
    let overlay_dir = match &options.env {
        Some(env) => {
            let path = dir.join("overlays").join(env);
            if !path.is_dir() {
                let known = std::fs::read_dir(dir.join("overlays"))
                    .map(|rd| {
                        let mut names: Vec<String> = rd
                            .filter_map(Result::ok)
                            .filter(|e| e.path().is_dir())
                            .filter_map(|e| e.file_name().to_str().map(str::to_string))
                            .collect();
                        names.sort();
                        names
                    })
                    .unwrap_or_default();
                return Err(ManifestError::one(
                    &path,
                    None,
                    format!(
                        "environment '{env}' has no overlay directory; known environments: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            Some(path)
        }
        None => None,
    };

    // Variables: directory, environment, --vars-file, --var (later wins).
    let mut var_files: Vec<PathBuf> = vars_file_in(dir).into_iter().collect();
    if let Some(od) = &overlay_dir {
        var_files.extend(vars_file_in(od));
    }
    var_files.extend(options.vars_files.iter().cloned());
    let mut vars = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &var_files {
        match read_vars_file(file) {
            Ok(v) => vars.extend(v),
            Err(mut e) => problems.append(&mut e.problems),
        }
    }
    vars.extend(options.vars.clone());
    if !problems.is_empty() {
        return Err(ManifestError { problems });
    }

    let base_files = manifest_files(&base_dir)?;
    if base_files.is_empty() {
        return Err(ManifestError::one(
            &base_dir,
            None,
            "no connector manifests here (*.yaml, *.yml or *.json, one connector per file)",
        ));
    }
    let mut parsed: BTreeMap<String, Parsed> = BTreeMap::new();
    for file in &base_files {
        match parse_file(file, &vars, Mode::Base) {
            Ok(p) => {
                if let Some(existing) = parsed.get(&p.name) {
                    problems.push(Problem {
                        file: file.clone(),
                        field: Some("name".into()),
                        message: format!(
                            "connector '{}' is already declared in {}; one file per connector",
                            p.name,
                            existing.file.display()
                        ),
                    });
                } else {
                    parsed.insert(p.name.clone(), p);
                }
            }
            Err(mut e) => problems.append(&mut e.problems),
        }
    }
    if let Some(od) = &overlay_dir {
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for file in manifest_files(od)? {
            let overlay = match parse_file(&file, &vars, Mode::Overlay) {
                Ok(p) => p,
                Err(mut e) => {
                    problems.append(&mut e.problems);
                    continue;
                }
            };
            if let Some(previous) = seen.insert(overlay.name.clone(), file.clone()) {
                problems.push(Problem {
                    file: file.clone(),
                    field: Some("name".into()),
                    message: format!(
                        "connector '{}' already has an overlay in {}",
                        overlay.name,
                        previous.display()
                    ),
                });
                continue;
            }
            match parsed.get_mut(&overlay.name) {
                Some(base) => base.merge(overlay),
                None => {
                    // A connector that exists only in this environment.
                    let mut full = overlay;
                    full.config.retain(|_, v| v.is_some());
                    parsed.insert(full.name.clone(), full);
                }
            }
        }
    }
    let mut manifests = Vec::with_capacity(parsed.len());
    for (_, p) in parsed {
        match p.finish() {
            Ok(m) => manifests.push(m),
            Err(mut e) => problems.append(&mut e.problems),
        }
    }
    if !problems.is_empty() {
        return Err(ManifestError { problems });
    }
    Ok(ManifestSet {
        dir: dir.to_path_buf(),
        env: options.env.clone(),
        manifests,
    })
}

/// Loads one manifest file on its own (no overlays), with the given variables.
pub fn load_file(file: &Path, vars: &BTreeMap<String, String>) -> Result<Manifest, ManifestError> {
    parse_file(file, vars, Mode::Base)?.finish()
}

fn read_vars_file(file: &Path) -> Result<BTreeMap<String, String>, ManifestError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ManifestError::one(file, None, format!("cannot read the variables file: {e}"))
    })?;
    let value = parse_text(file, &text)?;
    let map = match value {
        Value::Mapping(map) => map,
        Value::Null => return Ok(BTreeMap::new()),
        _ => {
            return Err(ManifestError::one(
                file,
                None,
                "a variables file is a map of NAME: value",
            ))
        }
    };
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (k, v) in map {
        let Some(name) = k.as_str().map(str::to_string) else {
            problems.push(Problem {
                file: file.to_path_buf(),
                field: None,
                message: "variable names must be strings".into(),
            });
            continue;
        };
        match scalar_to_string(&v) {
            Some(s) => {
                out.insert(name, s);
            }
            None => problems.push(Problem {
                file: file.to_path_buf(),
                field: Some(name),
                message: "a variable's value must be a string, number or boolean".into(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ManifestError { problems })
    }
}

fn parse_text(file: &Path, text: &str) -> Result<Value, ManifestError> {
    let is_json = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str::<Value>(text)
            .map_err(|e| ManifestError::one(file, None, format!("not valid JSON: {e}")))
    } else {
        serde_yaml_ng::from_str::<Value>(text)
            .map_err(|e| ManifestError::one(file, None, format!("not valid YAML: {e}")))
    }
}

fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Base,
    Overlay,
}

/// A file as parsed, before overlays are merged and the result is checked.
struct Parsed {
    name: String,
    file: PathBuf,
    overlays: Vec<PathBuf>,
    /// `None` removes the key (overlays only).
    config: BTreeMap<String, Option<String>>,
    initial_state: Option<InitialState>,
    suppressions: Vec<Suppression>,
    key_locations: BTreeMap<String, Location>,
    name_location: Location,
}

impl Parsed {
    fn merge(&mut self, overlay: Parsed) {
        for (key, value) in overlay.config {
            match value {
                Some(v) => {
                    self.config.insert(key.clone(), Some(v));
                    if let Some(loc) = overlay.key_locations.get(&key) {
                        self.key_locations.insert(key, loc.clone());
                    }
                }
                None => {
                    self.config.remove(&key);
                    self.key_locations.remove(&key);
                }
            }
        }
        if overlay.initial_state.is_some() {
            self.initial_state = overlay.initial_state;
        }
        self.suppressions.extend(overlay.suppressions);
        self.overlays.push(overlay.file);
    }

    fn finish(self) -> Result<Manifest, ManifestError> {
        let class_ok = self
            .config
            .get("connector.class")
            .and_then(Option::as_deref)
            .is_some_and(|c| !c.trim().is_empty());
        if !class_ok {
            return Err(ManifestError::one(
                &self.file,
                Some("config.connector.class"),
                "missing: every connector names its plugin class, e.g. io.debezium.connector.postgresql.PostgresConnector",
            ));
        }
        let config: ConnectorConfig = self
            .config
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        Ok(Manifest {
            name: self.name,
            config,
            initial_state: self.initial_state,
            suppressions: self.suppressions,
            file: self.file,
            overlays: self.overlays,
            key_locations: self.key_locations,
            name_location: self.name_location,
        })
    }
}

const TOP_LEVEL_KEYS: &[&str] = &["name", "config", "initial_state", "lint"];

fn parse_file(
    file: &Path,
    vars: &BTreeMap<String, String>,
    mode: Mode,
) -> Result<Parsed, ManifestError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ManifestError::one(file, None, format!("cannot read the manifest: {e}")))?;
    let value = parse_text(file, &text)?;
    let Value::Mapping(top) = value else {
        return Err(ManifestError::one(
            file,
            None,
            "a manifest is a map with `name` and `config` (one connector per file)",
        ));
    };
    let mut problems = Vec::new();
    let problem = |field: Option<String>, message: String| Problem {
        file: file.to_path_buf(),
        field,
        message,
    };
    for key in top.keys() {
        let k = key.as_str().unwrap_or("<non-string key>");
        if !TOP_LEVEL_KEYS.contains(&k) {
            problems.push(problem(
                Some(k.to_string()),
                format!(
                    "unknown field; a manifest has {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ));
        }
    }
    let lines = LineIndex::new(&text);

    let name = match top.get("name") {
        Some(Value::String(s)) => match substitute(s, vars) {
            Ok(n) if n.trim().is_empty() => {
                problems.push(problem(Some("name".into()), "is empty".into()));
                String::new()
            }
            Ok(n) if n.trim() != n => {
                problems.push(problem(
                    Some("name".into()),
                    "has leading or trailing spaces".into(),
                ));
                String::new()
            }
            Ok(n) => n,
            Err(var) => {
                problems.push(problem(Some("name".into()), undefined_var(&var)));
                String::new()
            }
        },
        Some(_) => {
            problems.push(problem(Some("name".into()), "must be a string".into()));
            String::new()
        }
        None => {
            problems.push(problem(
                Some("name".into()),
                "missing: every manifest names its connector".into(),
            ));
            String::new()
        }
    };
    let name_location = lines.locate(file, "name", 0).unwrap_or(Location {
        file: file.to_path_buf(),
        line: 1,
        column: 1,
    });

    let initial_state = match top.get("initial_state") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "running" => Some(InitialState::Running),
            "paused" => Some(InitialState::Paused),
            "stopped" => Some(InitialState::Stopped),
            _ => {
                problems.push(problem(
                    Some("initial_state".into()),
                    format!("'{s}' is not one of running, paused, stopped"),
                ));
                None
            }
        },
        Some(_) => {
            problems.push(problem(
                Some("initial_state".into()),
                "must be one of running, paused, stopped".into(),
            ));
            None
        }
    };

    let config_line = lines.key_line("config", 0).unwrap_or(0);
    let mut config = BTreeMap::new();
    let mut key_locations = BTreeMap::new();
    match top.get("config") {
        Some(Value::Mapping(map)) => {
            for (k, v) in map {
                let Some(key) = k.as_str() else {
                    problems.push(problem(
                        Some("config".into()),
                        "configuration keys must be strings".into(),
                    ));
                    continue;
                };
                let field = Some(format!("config.{key}"));
                let raw = match v {
                    Value::Null if mode == Mode::Overlay => None,
                    Value::Null => {
                        problems.push(problem(
                            field,
                            "has no value (null removes a key only in an overlay); write \"\" for an empty value".into(),
                        ));
                        continue;
                    }
                    Value::Sequence(items) => {
                        // Connect lists are comma-separated strings.
                        let parts: Option<Vec<String>> =
                            items.iter().map(scalar_to_string).collect();
                        match parts {
                            Some(parts) => Some(parts.join(",")),
                            None => {
                                problems.push(problem(
                                    field,
                                    "a list may hold only strings, numbers or booleans".into(),
                                ));
                                continue;
                            }
                        }
                    }
                    Value::Mapping(_) | Value::Tagged(_) => {
                        problems.push(problem(
                            field,
                            "must be a string, number, boolean or list (Connect configs are flat)"
                                .into(),
                        ));
                        continue;
                    }
                    scalar => scalar_to_string(scalar),
                };
                let value = match raw {
                    Some(raw) => match substitute(&raw, vars) {
                        Ok(v) => Some(v),
                        Err(var) => {
                            problems.push(problem(field, undefined_var(&var)));
                            continue;
                        }
                    },
                    None => None,
                };
                if key == "name" {
                    if value.as_deref().is_some_and(|v| v != name) && !name.is_empty() {
                        problems.push(problem(
                            field,
                            format!(
                                "'{}' differs from the manifest's name '{name}'; remove it or make them equal",
                                value.unwrap_or_default()
                            ),
                        ));
                    }
                    continue;
                }
                if let Some(loc) = lines.locate(file, key, config_line) {
                    key_locations.insert(key.to_string(), loc);
                }
                config.insert(key.to_string(), value);
            }
        }
        Some(Value::Null) | None if mode == Mode::Overlay => {}
        Some(_) => problems.push(problem(
            Some("config".into()),
            "must be a map of configuration keys to values".into(),
        )),
        None => problems.push(problem(
            Some("config".into()),
            "missing: the connector's configuration goes under `config`".into(),
        )),
    }

    let mut suppressions = Vec::new();
    match top.get("lint") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(lint)) => {
            let lint_line = lines.key_line("lint", 0).unwrap_or(0);
            let suppress_line = lines.key_line("suppress", lint_line).unwrap_or(lint_line);
            for key in lint.keys() {
                if key.as_str() != Some("suppress") {
                    problems.push(problem(
                        Some(format!("lint.{}", key.as_str().unwrap_or("?"))),
                        "unknown field; `lint` has only `suppress`".into(),
                    ));
                }
            }
            match lint.get("suppress") {
                None | Some(Value::Null) => {}
                Some(Value::Mapping(map)) => {
                    for (rule, why) in map {
                        let Some(rule) = rule.as_str() else {
                            problems.push(problem(
                                Some("lint.suppress".into()),
                                "rule ids must be strings such as LS604".into(),
                            ));
                            continue;
                        };
                        let justification = match why {
                            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                            _ => None,
                        };
                        suppressions.push(Suppression {
                            rule: rule.to_string(),
                            justification,
                            location: lines.locate(file, rule, suppress_line),
                        });
                    }
                }
                Some(_) => problems.push(problem(
                    Some("lint.suppress".into()),
                    "must be a map of rule id to justification, e.g. LS604: \"why it is safe here\"".into(),
                )),
            }
        }
        Some(_) => problems.push(problem(
            Some("lint".into()),
            "must be a map with `suppress`".into(),
        )),
    }

    if !problems.is_empty() {
        return Err(ManifestError { problems });
    }
    Ok(Parsed {
        name,
        file: file.to_path_buf(),
        overlays: Vec::new(),
        config,
        initial_state,
        suppressions,
        key_locations,
        name_location,
    })
}

fn undefined_var(var: &str) -> String {
    if var.starts_with("${var:") {
        format!("malformed variable reference '{var}': write ${{var:NAME}}")
    } else {
        format!(
            "variable '{var}' is not defined: add it to vars.yaml, the environment's overlays/<env>/vars.yaml, --vars-file, or pass --var {var}=VALUE"
        )
    }
}

/// Finds the line of a key in YAML or JSON text, for code frames and error positions.
struct LineIndex<'a> {
    lines: Vec<&'a str>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// 1-based line of the first `key:` (bare, single- or double-quoted) after line `after`.
    fn key_line(&self, key: &str, after: usize) -> Option<usize> {
        self.find(key, after).map(|(line, _)| line)
    }

    fn locate(&self, file: &Path, key: &str, after: usize) -> Option<Location> {
        self.find(key, after).map(|(line, column)| Location {
            file: file.to_path_buf(),
            line,
            column,
        })
    }

    fn find(&self, key: &str, after: usize) -> Option<(usize, usize)> {
        self.lines
            .iter()
            .enumerate()
            .skip(after)
            .find_map(|(i, line)| {
                let trimmed = line.trim_start();
                let indent = line.len() - trimmed.len();
                let body = trimmed
                    .strip_prefix(['{', ','])
                    .unwrap_or(trimmed)
                    .trim_start();
                let shift = trimmed.len() - body.len();
                let rest = ["\"", "'", ""].iter().find_map(|q| {
                    body.strip_prefix(q)
                        .and_then(|r| r.strip_prefix(key))
                        .and_then(|r| r.strip_prefix(q))
                })?;
                rest.trim_start()
                    .starts_with(':')
                    .then_some((i + 1, indent + shift + 1))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "lockstep-manifest-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default()
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Self(path)
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&path, text).expect("write");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PG: &str = "\
name: inventory-cdc
config:
  connector.class: io.debezium.connector.postgresql.PostgresConnector
  database.hostname: ${var:pg_host}
  database.password: ${file:/run/secrets/pg.properties:password}
  tasks.max: 1
  snapshot.mode: initial
  table.include.list: [public.orders, public.customers]
lint:
  suppress:
    LS604: \"heartbeats come from the app\"
    LS606:
";

    #[test]
    fn loads_a_flat_directory_with_vars_and_locations() {
        let dir = TempDir::new("flat");
        dir.write("vars.yaml", "pg_host: db-1\n");
        let file = dir.write("inventory.yaml", PG);
        let set = load(&dir.0, &LoadOptions::default()).expect("loads");
        assert_eq!(set.manifests.len(), 1);
        let m = &set.manifests[0];
        assert_eq!(m.name, "inventory-cdc");
        assert_eq!(m.config.get("database.hostname"), Some("db-1"));
        assert_eq!(
            m.config.get("database.password"),
            Some("${file:/run/secrets/pg.properties:password}"),
            "config-provider placeholders stay verbatim"
        );
        assert_eq!(m.config.get("tasks.max"), Some("1"));
        assert_eq!(
            m.config.get("table.include.list"),
            Some("public.orders,public.customers")
        );
        assert!(!m.config.contains_key("name"));
        assert_eq!(m.config_with_name().get("name"), Some("inventory-cdc"));
        let loc = m.key_location("snapshot.mode").expect("located");
        assert_eq!(
            (loc.file.as_path(), loc.line, loc.column),
            (file.as_path(), 7, 3)
        );
        assert_eq!(m.location().line, 1);
        assert_eq!(m.suppressions.len(), 2);
        assert_eq!(m.suppressions[0].rule, "LS604");
        assert_eq!(
            m.suppressions[0].justification.as_deref(),
            Some("heartbeats come from the app")
        );
        assert_eq!(
            m.suppressions[0].location.as_ref().map(|l| l.line),
            Some(11)
        );
        assert_eq!(m.suppressions[1].justification, None);
    }

    #[test]
    fn overlays_set_and_remove_keys_and_env_vars_win() {
        let dir = TempDir::new("overlay");
        dir.write("vars.yaml", "pg_host: db-dev\n");
        dir.write("base/inventory.yaml", PG);
        dir.write(
            "base/orders.json",
            r#"{"name": "orders-sink", "config": {"connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector", "topics": "a"}}"#,
        );
        dir.write("overlays/prod/vars.yaml", "pg_host: db-prod\n");
        let overlay = dir.write(
            "overlays/prod/inventory.yaml",
            "name: inventory-cdc\ninitial_state: paused\nconfig:\n  snapshot.mode: no_data\n  tasks.max: null\n",
        );
        dir.write(
            "overlays/prod/extra.yaml",
            "name: prod-only\nconfig:\n  connector.class: X\n",
        );
        let set = load(
            &dir.0,
            &LoadOptions {
                env: Some("prod".into()),
                ..Default::default()
            },
        )
        .expect("loads");
        let names: Vec<&str> = set.manifests.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["inventory-cdc", "orders-sink", "prod-only"]);
        let m = set.get("inventory-cdc").expect("present");
        assert_eq!(m.config.get("database.hostname"), Some("db-prod"));
        assert_eq!(m.config.get("snapshot.mode"), Some("no_data"));
        assert!(!m.config.contains_key("tasks.max"));
        assert_eq!(m.initial_state, Some(InitialState::Paused));
        assert_eq!(m.overlays, vec![overlay.clone()]);
        assert_eq!(
            m.key_location("snapshot.mode").map(|l| (&l.file, l.line)),
            Some((&overlay, 4))
        );

        let cli = load(
            &dir.0,
            &LoadOptions {
                env: Some("prod".into()),
                vars: [("pg_host".to_string(), "db-cli".to_string())].into(),
                ..Default::default()
            },
        )
        .expect("loads");
        assert_eq!(
            cli.get("inventory-cdc")
                .and_then(|m| m.config.get("database.hostname")),
            Some("db-cli")
        );

        let err = load(
            &dir.0,
            &LoadOptions {
                env: Some("qa".into()),
                ..Default::default()
            },
        )
        .expect_err("unknown env")
        .to_string();
        assert!(err.contains("'qa'") && err.contains("prod"), "{err}");
    }

    #[test]
    fn rejects_bad_manifests_naming_file_and_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("a.yaml", "config: {connector.class: X}\n", "name: missing"),
            ("b.yaml", "name: b\n", "config: missing"),
            (
                "c.yaml",
                "name: c\nconfig: {tasks.max: 1}\n",
                "config.connector.class: missing",
            ),
            (
                "d.yaml",
                "name: d\nconfig: {connector.class: X, x: null}\n",
                "config.x: has no value",
            ),
            (
                "e.yaml",
                "name: e\nconfig: {connector.class: X, x: {a: 1}}\n",
                "config.x: must be a string",
            ),
            (
                "f.yaml",
                "name: f\nconfig: {connector.class: X, h: \"${var:nope}\"}\n",
                "config.h: variable 'nope' is not defined",
            ),
            (
                "g.yaml",
                "name: g\nconfig: {connector.class: X}\ninitial_state: sleeping\n",
                "initial_state: 'sleeping' is not one of",
            ),
            (
                "h.yaml",
                "name: h\nconfig: {connector.class: X}\nstate: x\n",
                "state: unknown field",
            ),
            (
                "i.yaml",
                "name: i\nconfig: {connector.class: X, name: other}\n",
                "config.name: 'other' differs",
            ),
            ("j.json", "{\"name\": \"j\", \"config\": ", "not valid JSON"),
            ("k.yaml", "- a\n- b\n", "a manifest is a map"),
            (
                "l.yaml",
                "name: l\nconfig: {connector.class: X}\nlint: {suppress: [LS101]}\n",
                "lint.suppress: must be a map",
            ),
        ];
        for (file, text, expected) in cases {
            let dir = TempDir::new("bad");
            let path = dir.write(file, text);
            let err = load(&dir.0, &LoadOptions::default())
                .expect_err(file)
                .to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains(expected),
                "{file}: expected '{expected}' in: {err}"
            );
        }
    }

    #[test]
    fn duplicate_names_and_every_problem_are_reported() {
        let dir = TempDir::new("dup");
        dir.write("a.yaml", "name: same\nconfig: {connector.class: X}\n");
        dir.write("b.yaml", "name: same\nconfig: {connector.class: X}\n");
        dir.write("c.yaml", "name: c\n");
        let err = load(&dir.0, &LoadOptions::default()).expect_err("dup");
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("already declared"), "{err}");
    }

    #[test]
    fn empty_directories_and_vars_files_are_explained() {
        let dir = TempDir::new("empty");
        dir.write("vars.yaml", "a: 1\n");
        let err = load(&dir.0, &LoadOptions::default())
            .expect_err("empty")
            .to_string();
        assert!(err.contains("no connector manifests"), "{err}");
        dir.write("vars.yaml", "a: [1]\n");
        dir.write("x.yaml", "name: x\nconfig: {connector.class: X}\n");
        let err = load(&dir.0, &LoadOptions::default())
            .expect_err("bad vars")
            .to_string();
        assert!(err.contains("vars.yaml: a:"), "{err}");
    }

    #[test]
    fn key_lines_in_json_and_quoted_yaml() {
        let json = "{\n  \"name\": \"x\",\n  \"config\": {\n    \"connector.class\": \"X\",\n    \"tasks.max\": \"2\"\n  }\n}\n";
        let idx = LineIndex::new(json);
        assert_eq!(idx.key_line("tasks.max", 3), Some(5));
        assert_eq!(idx.key_line("name", 0), Some(2));
        let yaml = "name: x\nconfig:\n  'tasks.max': 2\n  \"a.b\" : 1\n  tasks.maximum: 3\n";
        let idx = LineIndex::new(yaml);
        assert_eq!(idx.key_line("tasks.max", 2), Some(3));
        assert_eq!(idx.key_line("a.b", 2), Some(4));
        assert_eq!(idx.key_line("tasks.maximum", 2), Some(5));
        assert_eq!(idx.key_line("missing", 0), None);
    }

    #[test]
    fn var_assignments_parse() {
        assert_eq!(
            parse_var_assignment("pg_host=db=1"),
            Ok(("pg_host".into(), "db=1".into()))
        );
        assert!(parse_var_assignment("novalue").is_err());
        assert!(parse_var_assignment("=x").is_err());
    }
}
