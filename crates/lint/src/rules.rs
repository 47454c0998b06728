//! The rule catalog. Every rule has a stable id (never reused), a name, a default severity, the
//! rationale and the fix, and a pure check over one connector's configuration (plus, for
//! set rules, every connector linted together).

use std::collections::BTreeMap;

use lockstep_connect::{
    is_config_provider_placeholder, is_sensitive_key, scrub_text, ConnectorConfig,
};
use serde::Serialize;

use crate::profile::Profile;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "info" | "note" => Some(Self::Info),
            "warning" | "warn" => Some(Self::Warning),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// A rule's documentation: what `lockstep lint --explain`, SARIF and the text output show.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleInfo {
    /// Stable id, e.g. `LS201`.
    pub id: &'static str,
    /// Stable short name, e.g. `tolerance-all-without-dlq`.
    pub name: &'static str,
    pub default_severity: Severity,
    /// One line: what is wrong.
    pub summary: &'static str,
    /// Why it breaks pipelines.
    pub rationale: &'static str,
    /// What to write instead.
    pub fix: &'static str,
}

/// One rule firing, before severity and location are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The key the problem is about (its line is shown); `None` for a missing key.
    pub key: Option<String>,
    /// What is wrong here. Never contains a secret value.
    pub message: String,
}

fn hit(key: Option<&str>, message: impl Into<String>) -> Hit {
    Hit {
        key: key.map(str::to_string),
        message: message.into(),
    }
}

/// Facts from outside one configuration.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Known partition counts per topic (from `--partitions`, or derived from source
    /// connectors in the same set that create their topics).
    pub topic_partitions: BTreeMap<String, u32>,
}

/// The connector being checked.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub config: &'a ConnectorConfig,
}

/// What kind of connector a class is, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PostgresSource,
    /// MySQL or MariaDB (binlog, schema history topic).
    MySqlSource,
    /// SQL Server (one task per database).
    SqlServerSource,
    /// Oracle, Db2, Informix: other Debezium relational sources (one task).
    OtherDebeziumSource,
    /// A JDBC sink; `debezium` tells the dialect of its keys.
    JdbcSink {
        debezium: bool,
    },
    OtherSink,
    OtherSource,
}

impl Kind {
    fn is_debezium_relational(self) -> bool {
        matches!(
            self,
            Self::PostgresSource
                | Self::MySqlSource
                | Self::SqlServerSource
                | Self::OtherDebeziumSource
        )
    }
    fn is_sink(self) -> bool {
        matches!(self, Self::JdbcSink { .. } | Self::OtherSink)
    }
}

impl<'a> Subject<'a> {
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.config.get(key).map(str::trim)
    }
    fn is(&self, key: &str, value: &str) -> bool {
        self.get(key).is_some_and(|v| v.eq_ignore_ascii_case(value))
    }
    fn non_empty(&self, key: &str) -> Option<&'a str> {
        self.get(key).filter(|v| !v.is_empty())
    }
    pub fn class(&self) -> &'a str {
        self.get("connector.class").unwrap_or("")
    }
    pub fn kind(&self) -> Kind {
        let class = self.class();
        match class {
            "io.debezium.connector.postgresql.PostgresConnector" => Kind::PostgresSource,
            "io.debezium.connector.mysql.MySqlConnector"
            | "io.debezium.connector.mariadb.MariaDbConnector" => Kind::MySqlSource,
            "io.debezium.connector.sqlserver.SqlServerConnector" => Kind::SqlServerSource,
            "io.debezium.connector.oracle.OracleConnector"
            | "io.debezium.connector.db2.Db2Connector"
            | "io.debezium.connector.informix.InformixConnector" => Kind::OtherDebeziumSource,
            "io.debezium.connector.jdbc.JdbcSinkConnector" => Kind::JdbcSink { debezium: true },
            "io.confluent.connect.jdbc.JdbcSinkConnector" => Kind::JdbcSink { debezium: false },
            _ if self.get("topics").is_some()
                || self.get("topics.regex").is_some()
                || class.ends_with("SinkConnector") =>
            {
                Kind::OtherSink
            }
            _ => Kind::OtherSource,
        }
    }
    fn list(&self, key: &str) -> Vec<&'a str> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
    fn tasks_max(&self) -> u32 {
        self.get("tasks.max")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }
}

/// One hit when `condition` holds.
fn fire_if(condition: bool, key: Option<&str>, message: &str) -> Vec<Hit> {
    if condition {
        vec![hit(key, message)]
    } else {
        Vec::new()
    }
}

type Check = fn(&Subject, &Context, &Profile) -> Vec<Hit>;

pub(crate) struct Rule {
    pub info: RuleInfo,
    pub check: Check,
}

macro_rules! rule {
    ($id:literal, $name:literal, $sev:ident, $summary:literal, $why:literal, $fix:literal, $check:expr) => {
        Rule {
            info: RuleInfo {
                id: $id,
                name: $name,
                default_severity: Severity::$sev,
                summary: $summary,
                rationale: $why,
                fix: $fix,
            },
            check: $check,
        }
    };
}

/// Ids of the rules about suppressions themselves (not suppressible).
pub const SUPPRESSION_WITHOUT_JUSTIFICATION: &str = "LS001";
pub const UNKNOWN_RULE_IN_SUPPRESSION: &str = "LS002";
/// Ids of the rules that look at several connectors together.
pub const SHARED_SLOT: &str = "LS610";
pub const SHARED_SCHEMA_HISTORY: &str = "LS702";

fn no_check(_: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    Vec::new()
}

pub(crate) static RULES: &[Rule] = &[
    rule!("LS001", "suppression-without-justification", Error,
        "an inline suppression has no justification",
        "A suppression silences a production-readiness check; without the reason, a reviewer cannot tell a deliberate exception from a way around the linter.",
        "Write the reason as the value: `lint: {suppress: {LS604: \"heartbeats come from the application's own writer\"}}`.",
        no_check),
    rule!("LS002", "unknown-rule-in-suppression", Warning,
        "an inline suppression names a rule that does not exist",
        "A typo in a suppression silences nothing, and the finding it was meant for still fires (or the suppression is stale).",
        "Use an id from `lockstep lint rules` (e.g. LS604) or remove the suppression.",
        no_check),
    rule!("LS101", "converter-not-explicit", Warning,
        "key.converter / value.converter not set on the connector",
        "Without explicit converters the worker's defaults apply; changing the worker (or moving the connector to another cluster) silently changes the bytes written to or expected from every topic.",
        "Set key.converter and value.converter (and their schemas.enable) explicitly in the connector config.",
        check_converters),
    rule!("LS102", "json-without-schemas", Warning,
        "JsonConverter with schemas.enable=false",
        "Schemaless JSON loses types (decimals, timestamps, optionality); consumers of governed topics cannot validate or evolve the data safely.",
        "Keep schemas.enable=true, or use a schema-registry converter (Avro, Protobuf, JSON Schema) for governed topics.",
        check_json_schemas),
    rule!("LS201", "tolerance-all-without-dlq", Error,
        "errors.tolerance=all without a dead-letter queue",
        "With errors.tolerance=all, records that fail conversion or transformation are skipped; without a dead-letter topic (which only sinks have) they are lost without a trace.",
        "On a sink set errors.deadletterqueue.topic.name (with context headers); on a source keep errors.tolerance=none.",
        check_tolerance_without_dlq),
    rule!("LS202", "dlq-without-context-headers", Warning,
        "a dead-letter queue without context headers",
        "Without context headers a record in the DLQ does not say which topic, partition, offset and exception it came from, so it cannot be diagnosed or replayed.",
        "Set errors.deadletterqueue.context.headers.enable=true.",
        check_dlq_headers),
    rule!("LS203", "log-includes-messages", Warning,
        "errors.log.include.messages=true logs whole records",
        "Failed records (keys, values, headers) are written to the worker log; CDC records carry personal and financial data that logs must not hold.",
        "Keep errors.log.include.messages=false; inspect failures through the DLQ with context headers.",
        check_log_messages),
    rule!("LS301", "sink-schema-auto-change", Info,
        "the sink creates or alters target tables by itself",
        "auto.create / auto.evolve (Debezium JDBC: schema.evolution=basic) let a source schema change alter the target database without review; regulated targets require reviewed DDL.",
        "Turn them off (auto.create=false, auto.evolve=false, or schema.evolution=none) and apply target DDL through reviewed migrations.",
        check_sink_auto_schema),
    rule!("LS302", "delete-without-record-key", Error,
        "delete.enabled=true without the record key as primary key",
        "A sink can only delete a row it can find by key; JDBC sinks refuse delete.enabled=true unless the primary key comes from the record key.",
        "Set pk.mode=record_key (Confluent) or primary.key.mode=record_key (Debezium JDBC).",
        check_delete_without_key),
    rule!("LS303", "insert-not-replay-safe", Warning,
        "a JDBC sink in insert mode",
        "Sinks deliver at least once: after a restart or rebalance records are replayed, and plain INSERTs fail on duplicate keys (or duplicate rows without keys).",
        "Set insert.mode=upsert with the primary key from the record key.",
        check_insert_mode),
    rule!("LS401", "plaintext-secret", Error,
        "a password, token or key written in clear in the config",
        "The value is stored in Connect's config topic and returned by its REST API to anyone who can read connector configs; it ends up in repositories, tickets and logs.",
        "Use a config provider reference: ${file:/path/secrets.properties:key}, ${env:VAR} or ${directory:/run/secrets:name}.",
        check_plaintext_secrets),
    rule!("LS501", "tasks-exceed-source-parallelism", Warning,
        "tasks.max above what the source connector can use",
        "Debezium reads one transaction log with one task (SQL Server: one task per database); extra tasks are never started, and the config suggests a parallelism that does not exist.",
        "Set tasks.max=1 (SQL Server: at most the number of databases in database.names).",
        check_source_tasks),
    rule!("LS502", "tasks-exceed-partitions", Warning,
        "a sink's tasks.max above the partitions of its topics",
        "A sink task consumes whole partitions; tasks beyond the partition count sit idle while holding worker resources.",
        "Set tasks.max to at most the total partition count of the sink's topics.",
        check_sink_tasks),
    rule!("LS601", "pg-slot-not-explicit", Error,
        "PostgreSQL connector without slot.name",
        "Every connector without slot.name uses the slot `debezium`: a second connector on the same database takes over or fails on the first one's slot, and nobody can tell which connector holds WAL.",
        "Set slot.name to a name unique per connector (letters, digits, underscores).",
        check_pg_slot),
    rule!("LS602", "pg-publication-not-explicit", Warning,
        "PostgreSQL connector without publication.name",
        "The default publication `dbz_publication` is shared by every connector that does not name one; changing it for one connector changes what the others capture.",
        "Set publication.name to a name unique per connector.",
        check_pg_publication),
    rule!("LS603", "pg-publication-all-tables", Warning,
        "publication.autocreate.mode=all_tables (the default)",
        "A publication FOR ALL TABLES publishes every table of the database, including ones the connector does not capture, and needs superuser rights to create.",
        "Set publication.autocreate.mode=filtered (or disabled, with a publication created by a reviewed migration).",
        check_pg_publication_mode),
    rule!("LS604", "pg-no-heartbeat", Warning,
        "PostgreSQL connector without heartbeat.interval.ms",
        "When captured tables are idle while others are busy, the slot's confirmed position does not move and the database keeps WAL until its disk fills.",
        "Set heartbeat.interval.ms (e.g. 10000), with heartbeat.action.query on databases where captured tables can be idle.",
        check_pg_heartbeat),
    rule!("LS605", "snapshot-mode-risk", Warning,
        "a snapshot.mode that can lose, skip or repeat data",
        "always re-reads every table at each restart; never/no_data start without the existing rows; initial_only stops after the snapshot; when_needed re-snapshots silently when offsets are lost; exported is deprecated.",
        "Use snapshot.mode=initial, and incremental snapshots (signals) to re-read tables on purpose.",
        check_snapshot_mode),
    rule!("LS606", "no-table-include-list", Warning,
        "a Debezium source without table.include.list",
        "Without an include list the connector captures every table it can see, including new ones created later: data leaves the database without review.",
        "List the captured tables in table.include.list (schema.table, comma-separated).",
        check_table_include_list),
    rule!("LS607", "decimal-double", Warning,
        "decimal.handling.mode=double",
        "Doubles cannot represent decimal amounts exactly: money and quantities are silently rounded on the way to every consumer.",
        "Use decimal.handling.mode=precise (or string when consumers cannot read Connect decimals).",
        check_decimal_double),
    rule!("LS608", "tombstones-disabled", Warning,
        "tombstones.on.delete=false",
        "Without a tombstone after each delete, log compaction never removes a deleted row's events: the data stays in the topic for ever (right to erasure), and consumers that read tombstones miss deletes.",
        "Keep tombstones.on.delete=true (the default).",
        check_tombstones),
    rule!("LS609", "deletes-skipped", Warning,
        "skipped.operations drops deletes",
        "With `d` in skipped.operations deletes never reach the topic, so every replica keeps rows the source has deleted.",
        "Remove `d` from skipped.operations (keep `t` or `none`).",
        check_skipped_deletes),
    rule!("LS610", "pg-slot-shared", Error,
        "two PostgreSQL connectors use the same replication slot",
        "A logical replication slot serves one consumer: the second connector fails, or both take turns and each misses the other's changes.",
        "Give each connector its own slot.name (and publication.name).",
        no_check),
    rule!("LS701", "schema-history-incomplete", Error,
        "MySQL/MariaDB connector without its schema history topic settings",
        "The binlog connector needs its schema history (schema.history.internal.kafka.topic and .bootstrap.servers) to interpret binlog events after a restart; without it the connector cannot start or recover.",
        "Set schema.history.internal.kafka.topic (one per connector, infinite retention, one partition) and schema.history.internal.kafka.bootstrap.servers.",
        check_schema_history),
    rule!("LS702", "schema-history-shared", Error,
        "two connectors share a schema history topic",
        "Each connector replays the whole history topic on start; a shared topic mixes DDL of different databases and corrupts both connectors' view of the schema.",
        "Give every connector its own schema.history.internal.kafka.topic.",
        no_check),
    rule!("LS703", "schema-history-lossy", Warning,
        "schema history settings that drop DDL",
        "skip.unparseable.ddl=true silently ignores DDL the parser does not understand, and store.only.captured.tables.ddl=true drops DDL of tables added to the include list later: both leave the connector with a wrong schema.",
        "Keep schema.history.internal.skip.unparseable.ddl=false and schema.history.internal.store.only.captured.tables.ddl=false.",
        check_schema_history_lossy),
    rule!("LS704", "mysql-snapshot-locking", Warning,
        "snapshot.locking.mode extended or none",
        "extended holds the global read lock for the whole snapshot (all writes blocked); none takes no lock, which is only safe when no DDL runs during a data snapshot.",
        "Use snapshot.locking.mode=minimal (the default).",
        check_mysql_locking),
    rule!("LS801", "topic-naming", Warning,
        "a topic name that does not follow the naming convention",
        "Topic names carry ownership, environment and ACLs; names outside the convention escape quotas, ACL prefixes and retention policies.",
        "Rename the topic (topic.prefix, DLQ, schema history, sink topics) to match the profile's topic pattern.",
        check_topic_naming),
];

/// The catalog, in id order.
pub fn catalog() -> impl Iterator<Item = &'static RuleInfo> {
    RULES.iter().map(|r| &r.info)
}

/// A rule by id (`LS604`) or name (`pg-no-heartbeat`), case-insensitive.
pub fn find_rule(id_or_name: &str) -> Option<&'static RuleInfo> {
    catalog()
        .find(|r| r.id.eq_ignore_ascii_case(id_or_name) || r.name.eq_ignore_ascii_case(id_or_name))
}

// ---------------------------------------------------------------- checks

fn check_converters(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    let missing: Vec<&str> = ["key.converter", "value.converter"]
        .into_iter()
        .filter(|k| s.non_empty(k).is_none())
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    vec![hit(
        None,
        format!(
            "{} not set: the worker's default converter applies",
            missing.join(" and ")
        ),
    )]
}

fn check_json_schemas(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    ["key", "value"]
        .into_iter()
        .filter(|side| {
            s.get(&format!("{side}.converter"))
                .is_some_and(|c| c == "org.apache.kafka.connect.json.JsonConverter")
                && s.is(&format!("{side}.converter.schemas.enable"), "false")
        })
        .map(|side| {
            let key = format!("{side}.converter.schemas.enable");
            hit(
                Some(&key),
                format!("{side}s are written as JSON without schemas"),
            )
        })
        .take(1)
        .collect()
}

fn check_tolerance_without_dlq(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if !s.is("errors.tolerance", "all") {
        return Vec::new();
    }
    if !s.kind().is_sink() {
        return vec![hit(
            Some("errors.tolerance"),
            "errors.tolerance=all on a source connector: failed records are dropped, and sources have no dead-letter queue",
        )];
    }
    if s.non_empty("errors.deadletterqueue.topic.name").is_none() {
        return vec![hit(
            Some("errors.tolerance"),
            "errors.tolerance=all without errors.deadletterqueue.topic.name: failed records are dropped silently",
        )];
    }
    Vec::new()
}

fn check_dlq_headers(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if s.non_empty("errors.deadletterqueue.topic.name").is_some()
        && !s.is("errors.deadletterqueue.context.headers.enable", "true")
    {
        let key = if s
            .get("errors.deadletterqueue.context.headers.enable")
            .is_some()
        {
            "errors.deadletterqueue.context.headers.enable"
        } else {
            "errors.deadletterqueue.topic.name"
        };
        return vec![hit(
            Some(key),
            "the dead-letter queue records carry no context headers (topic, partition, offset, exception)",
        )];
    }
    Vec::new()
}

fn check_log_messages(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    fire_if(
        s.is("errors.log.include.messages", "true"),
        Some("errors.log.include.messages"),
        "failed records, with their data, are written to the worker log",
    )
}

fn check_sink_auto_schema(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    let Kind::JdbcSink { debezium } = s.kind() else {
        return Vec::new();
    };
    if debezium {
        if s.is("schema.evolution", "basic") {
            return vec![hit(
                Some("schema.evolution"),
                "schema.evolution=basic: the sink creates tables and adds columns on the target",
            )];
        }
        return Vec::new();
    }
    let on: Vec<&str> = ["auto.create", "auto.evolve"]
        .into_iter()
        .filter(|k| s.is(k, "true"))
        .collect();
    match on.first() {
        Some(first) => vec![hit(
            Some(first),
            format!(
                "{} on: the sink changes the target schema by itself",
                on.join(" and ")
            ),
        )],
        None => Vec::new(),
    }
}

fn pk_mode_key(debezium: bool) -> &'static str {
    if debezium {
        "primary.key.mode"
    } else {
        "pk.mode"
    }
}

fn check_delete_without_key(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    let Kind::JdbcSink { debezium } = s.kind() else {
        return Vec::new();
    };
    let pk = pk_mode_key(debezium);
    if s.is("delete.enabled", "true") && !s.is(pk, "record_key") {
        return vec![hit(
            Some("delete.enabled"),
            format!(
                "delete.enabled=true with {pk}={}: deletes need the record key as primary key",
                s.get(pk).unwrap_or("none (default)")
            ),
        )];
    }
    Vec::new()
}

fn check_insert_mode(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if !matches!(s.kind(), Kind::JdbcSink { .. }) {
        return Vec::new();
    }
    match s.get("insert.mode") {
        None => vec![hit(None, "insert.mode is not set and defaults to insert: replays after a restart fail or duplicate rows")],
        Some(m) if m.eq_ignore_ascii_case("insert") => vec![hit(
            Some("insert.mode"),
            "insert.mode=insert: replays after a restart fail or duplicate rows",
        )],
        Some(_) => Vec::new(),
    }
}

fn check_plaintext_secrets(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    s.config
        .iter()
        .filter_map(|(key, value)| {
            let value = value.trim();
            if value.is_empty() || is_config_provider_placeholder(value) {
                return None;
            }
            if is_sensitive_key(key) {
                return Some(hit(
                    Some(key),
                    format!("{key} holds a literal secret (value not shown)"),
                ));
            }
            (scrub_text(value) != value).then(|| {
                hit(
                    Some(key),
                    format!("{key} embeds a credential (value not shown)"),
                )
            })
        })
        .collect()
}

fn check_source_tasks(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    let tasks = s.tasks_max();
    let limit = match s.kind() {
        Kind::PostgresSource | Kind::MySqlSource | Kind::OtherDebeziumSource => 1,
        Kind::SqlServerSource => s.list("database.names").len().max(1) as u32,
        _ => return Vec::new(),
    };
    if tasks > limit {
        vec![hit(
            Some("tasks.max"),
            format!("tasks.max={tasks} but this connector runs at most {limit} task(s)"),
        )]
    } else {
        Vec::new()
    }
}

fn check_sink_tasks(s: &Subject, ctx: &Context, _: &Profile) -> Vec<Hit> {
    if !s.kind().is_sink() || s.get("topics.regex").is_some() {
        return Vec::new();
    }
    let topics = s.list("topics");
    if topics.is_empty() {
        return Vec::new();
    }
    let known: Option<u32> = topics
        .iter()
        .map(|t| ctx.topic_partitions.get(*t).copied())
        .sum();
    let tasks = s.tasks_max();
    match known {
        Some(partitions) if tasks > partitions => vec![hit(
            Some("tasks.max"),
            format!(
                "tasks.max={tasks} but its {} topic(s) have {partitions} partition(s) in total",
                topics.len()
            ),
        )],
        _ => Vec::new(),
    }
}

fn check_pg_slot(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    fire_if(
        s.kind() == Kind::PostgresSource && s.non_empty("slot.name").is_none(),
        None,
        "slot.name is not set: the shared default slot `debezium` is used",
    )
}

fn check_pg_publication(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    fire_if(
        s.kind() == Kind::PostgresSource && s.non_empty("publication.name").is_none(),
        None,
        "publication.name is not set: the shared default publication `dbz_publication` is used",
    )
}

fn check_pg_publication_mode(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if s.kind() != Kind::PostgresSource {
        return Vec::new();
    }
    if s.is("plugin.name", "decoderbufs") {
        return Vec::new();
    }
    match s.get("publication.autocreate.mode") {
        None => vec![hit(
            None,
            "publication.autocreate.mode is not set and defaults to all_tables: the publication covers every table",
        )],
        Some(m) if m.eq_ignore_ascii_case("all_tables") => vec![hit(
            Some("publication.autocreate.mode"),
            "publication.autocreate.mode=all_tables: the publication covers every table",
        )],
        Some(_) => Vec::new(),
    }
}

fn check_pg_heartbeat(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if s.kind() != Kind::PostgresSource {
        return Vec::new();
    }
    match s.get("heartbeat.interval.ms") {
        None => vec![hit(
            None,
            "heartbeat.interval.ms is not set: heartbeats are off and idle tables let WAL grow",
        )],
        Some(v) if v.parse::<u64>().is_ok_and(|n| n == 0) => vec![hit(
            Some("heartbeat.interval.ms"),
            "heartbeat.interval.ms=0 turns heartbeats off: idle tables let WAL grow",
        )],
        Some(_) => Vec::new(),
    }
}

fn check_snapshot_mode(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if !matches!(s.kind(), Kind::PostgresSource | Kind::MySqlSource) {
        return Vec::new();
    }
    let Some(mode) = s.get("snapshot.mode") else {
        return Vec::new();
    };
    let why = match mode.to_ascii_lowercase().as_str() {
        "always" => "re-reads every table at each restart (load on the source, duplicates downstream)",
        "never" | "no_data" | "schema_only" => "starts without the existing rows: replicas miss everything written before the connector",
        "initial_only" => "stops after the snapshot and never streams changes",
        "when_needed" => "silently takes a new snapshot when offsets are missing or expired",
        "recovery" | "schema_only_recovery" => "is a one-off repair mode: left in place it rebuilds the schema history at every start",
        "exported" => "is deprecated; use initial",
        _ => return Vec::new(),
    };
    vec![hit(
        Some("snapshot.mode"),
        format!("snapshot.mode={mode} {why}"),
    )]
}

fn check_table_include_list(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    fire_if(
        s.kind().is_debezium_relational() && s.non_empty("table.include.list").is_none(),
        None,
        "table.include.list is not set: every visible table is captured, including future ones",
    )
}

fn check_decimal_double(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    fire_if(
        s.kind().is_debezium_relational() && s.is("decimal.handling.mode", "double"),
        Some("decimal.handling.mode"),
        "decimal.handling.mode=double rounds DECIMAL/NUMERIC values (money) to binary floating point",
    )
}

fn check_tombstones(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    fire_if(
        s.kind().is_debezium_relational() && s.is("tombstones.on.delete", "false"),
        Some("tombstones.on.delete"),
        "tombstones.on.delete=false: compaction never removes deleted rows' events",
    )
}

fn check_skipped_deletes(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    let skips_deletes = s
        .list("skipped.operations")
        .iter()
        .any(|o| o.eq_ignore_ascii_case("d"));
    fire_if(
        s.kind().is_debezium_relational() && skips_deletes,
        Some("skipped.operations"),
        "skipped.operations includes d: deletes are never captured",
    )
}

fn uses_kafka_schema_history(s: &Subject) -> bool {
    s.get("schema.history.internal")
        .is_none_or(|c| c.is_empty() || c.ends_with("KafkaSchemaHistory"))
}

fn check_schema_history(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if s.kind() != Kind::MySqlSource || !uses_kafka_schema_history(s) {
        return Vec::new();
    }
    let missing: Vec<&str> = [
        "schema.history.internal.kafka.topic",
        "schema.history.internal.kafka.bootstrap.servers",
    ]
    .into_iter()
    .filter(|k| s.non_empty(k).is_none())
    .collect();
    if missing.is_empty() {
        Vec::new()
    } else {
        vec![hit(None, format!("{} not set", missing.join(" and ")))]
    }
}

fn check_schema_history_lossy(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if s.kind() != Kind::MySqlSource
        && s.kind() != Kind::SqlServerSource
        && s.kind() != Kind::OtherDebeziumSource
    {
        return Vec::new();
    }
    [
        (
            "schema.history.internal.skip.unparseable.ddl",
            "DDL the parser cannot read is skipped",
        ),
        (
            "schema.history.internal.store.only.captured.tables.ddl",
            "DDL of tables added to the include list later is missing from the history",
        ),
    ]
    .into_iter()
    .filter(|(k, _)| s.is(k, "true"))
    .map(|(k, why)| hit(Some(k), format!("{k}=true: {why}")))
    .take(1)
    .collect()
}

fn check_mysql_locking(s: &Subject, _: &Context, _: &Profile) -> Vec<Hit> {
    if s.kind() != Kind::MySqlSource {
        return Vec::new();
    }
    let data_snapshot = !matches!(
        s.get("snapshot.mode")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("never" | "no_data" | "schema_only" | "recovery" | "schema_only_recovery")
    );
    match s.get("snapshot.locking.mode").map(str::to_ascii_lowercase).as_deref() {
        Some("extended") => vec![hit(
            Some("snapshot.locking.mode"),
            "snapshot.locking.mode=extended blocks all writes to the database for the whole snapshot",
        )],
        Some("none") if data_snapshot => vec![hit(
            Some("snapshot.locking.mode"),
            "snapshot.locking.mode=none takes no lock during a data snapshot: a concurrent DDL corrupts the captured schema",
        )],
        _ => Vec::new(),
    }
}

fn check_topic_naming(s: &Subject, _: &Context, profile: &Profile) -> Vec<Hit> {
    let mut names: Vec<(&str, &str)> = [
        "topic.prefix",
        "errors.deadletterqueue.topic.name",
        "schema.history.internal.kafka.topic",
    ]
    .into_iter()
    .filter_map(|k| s.non_empty(k).map(|v| (k, v)))
    .collect();
    if s.kind().is_sink() {
        names.extend(s.list("topics").into_iter().map(|t| ("topics", t)));
    }
    let mut hits: Vec<Hit> = Vec::new();
    for (key, name) in names {
        if profile.topic_pattern.is_match(name)
            || hits.iter().any(|h| h.key.as_deref() == Some(key))
        {
            continue;
        }
        hits.push(hit(
            Some(key),
            format!(
                "topic name '{name}' does not match the convention {}",
                profile.topic_pattern.as_str()
            ),
        ));
    }
    hits
}

// ---------------------------------------------------------------- set rules

/// `(rule, connector, key, message)` for problems between connectors linted together.
pub(crate) fn set_hits(subjects: &[Subject]) -> Vec<SetHit> {
    let mut out = Vec::new();
    // Replication slots: one per database; the default is `debezium`.
    let mut slots: BTreeMap<(String, String, String, String), Vec<&str>> = BTreeMap::new();
    for s in subjects.iter().filter(|s| s.kind() == Kind::PostgresSource) {
        let key = (
            s.get("database.hostname").unwrap_or("").to_string(),
            s.get("database.port").unwrap_or("5432").to_string(),
            s.get("database.dbname").unwrap_or("").to_string(),
            s.non_empty("slot.name").unwrap_or("debezium").to_string(),
        );
        slots.entry(key).or_default().push(s.name);
    }
    for ((host, port, db, slot), names) in slots {
        shared(&mut out, SHARED_SLOT, "slot.name", &names, |others| {
            format!("replication slot '{slot}' on {host}:{port}/{db} is also used by {others}")
        });
    }
    let mut histories: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in subjects {
        if let Some(topic) = s.non_empty("schema.history.internal.kafka.topic") {
            histories.entry(topic).or_default().push(s.name);
        }
    }
    for (topic, names) in histories {
        shared(
            &mut out,
            SHARED_SCHEMA_HISTORY,
            "schema.history.internal.kafka.topic",
            &names,
            |others| format!("schema history topic '{topic}' is also used by {others}"),
        );
    }
    out
}

type SetHit = (&'static str, String, Option<String>, String);

/// One hit per connector of a group of two or more that share something they must not.
fn shared(
    out: &mut Vec<SetHit>,
    rule: &'static str,
    key: &str,
    names: &[&str],
    message: impl Fn(&str) -> String,
) {
    if names.len() < 2 {
        return;
    }
    for name in names {
        let others: Vec<&str> = names.iter().filter(|n| *n != name).copied().collect();
        out.push((
            rule,
            name.to_string(),
            Some(key.to_string()),
            message(&others.join(", ")),
        ));
    }
}

/// Partition counts of topics created by source connectors in the set
/// (`topic.creation.default.partitions`), by topic prefix.
pub(crate) fn derived_partitions(
    subjects: &[Subject],
    sink_topics: &[&str],
) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for s in subjects.iter().filter(|s| !s.kind().is_sink()) {
        let (Some(prefix), Some(partitions)) = (
            s.non_empty("topic.prefix"),
            s.get("topic.creation.default.partitions")
                .and_then(|p| p.parse::<u32>().ok()),
        ) else {
            continue;
        };
        for topic in sink_topics {
            if topic.starts_with(&format!("{prefix}.")) {
                out.insert(topic.to_string(), partitions);
            }
        }
    }
    out
}

pub(crate) fn sink_topics<'a>(subjects: &[Subject<'a>]) -> Vec<&'a str> {
    subjects
        .iter()
        .filter(|s| s.kind().is_sink())
        .flat_map(|s| s.list("topics"))
        .collect()
}
