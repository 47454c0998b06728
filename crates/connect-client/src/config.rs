//! Connector configuration maps and secret masking.
//!
//! Kafka Connect configurations are flat `String -> String` maps that routinely
//! carry database passwords, SASL JAAS configs and API keys. Everything in this
//! module exists so that such values never reach a terminal, a log line or an
//! error message by accident:
//!
//! * [`ConnectorConfig`] and [`ConfigPatch`] print masked values in `Debug`.
//! * [`ConnectorConfig::masked`] gives a copy that is safe to display (plan
//!   output, diffs).
//! * [`is_sensitive_key`] is the single definition of "this key holds a secret"
//!   shared by the other lockstep crates (linting, plan rendering).
//! * [`scrub_text`] removes credentials embedded in free text (URLs with
//!   user-info, `password=...` pairs, Java `Map.toString()` dumps) and is applied
//!   to every message this crate copies out of a Connect response.
//!
//! Values that are Connect config-provider placeholders (`${file:/p:k}`,
//! `${env:VAR}`, `${directory:/d:f}`, `${vault:...}`) are references, not
//! secrets, and are always shown verbatim so operators can see *where* a
//! secret comes from.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The replacement shown instead of a secret value.
pub const MASK: &str = "****";

/// Substrings which, found anywhere in a key (lower-cased, separators removed),
/// mark it as holding a secret.
const SENSITIVE_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "apikey",
    "privatekey",
    "userinfo", // basic.auth.user.info = "user:password"
    "jaas",     // sasl.jaas.config embeds username/password
];

/// Whole tokens (between `.`, `_`, `-`) that mark a key as holding a secret.
const SENSITIVE_TOKENS: &[&str] = &["pwd", "token", "tokens"];

/// A key whose *last* token is one of these names where/how a secret is
/// obtained or handled (a file path, a URL, a class, a mode, a timeout...), not
/// the secret itself, e.g. `ssl.keystore.location`,
/// `sasl.oauthbearer.token.endpoint.url`,
/// `value.converter.basic.auth.credentials.source`.
const NON_SECRET_LAST_TOKENS: &[&str] = &[
    "url",
    "urls",
    "uri",
    "endpoint",
    "class",
    "type",
    "mode",
    "location",
    "path",
    "file",
    "dir",
    "directory",
    "enable",
    "enabled",
    "ms",
    "seconds",
    "sec",
    "size",
    "bytes",
    "format",
    "algorithm",
    "algorithms",
    "provider",
    "providers",
    "source",
    "name",
    "names",
    "id",
    "version",
    "protocol",
    "strategy",
    "length",
    "count",
    "timeout",
    "interval",
    "retries",
    "policy",
    "charset",
    "encoding",
    "header",
    "prefix",
    "suffix",
    "field",
    "fields",
    "columns",
    "separator",
    "delimiter",
    "required",
];

/// For keys ending in `.key` (`ssl.keystore.key`, `secret.key`, `api.key`,
/// `signing.key`...) the value is usually key material. These preceding tokens
/// describe data keys instead (`message.key`, `primary.key`, `record.key`...).
const NON_SECRET_KEY_QUALIFIERS: &[&str] = &[
    "message",
    "record",
    "primary",
    "foreign",
    "partition",
    "routing",
    "shard",
    "sort",
    "row",
    "document",
    "cache",
    "schema",
    "topic",
    "index",
    "field",
    "column",
    "lookup",
    "unique",
    "natural",
    "surrogate",
    "business",
    "idempotency",
    "dedup",
    "dedupe",
    "join",
    "group",
    "hash",
    "event",
    "kafka",
];

/// Returns true when the configuration key `key` (case-insensitive) names a
/// value that must be treated as a secret.
///
/// The rule is deliberately biased towards masking: hiding a harmless value in
/// a plan is a nuisance, printing a production password is an incident. It
/// matches `password`, `passwd`, `secret`, `token`, `credential(s)`,
/// `api.key`/`apikey`, `private.key`, `sasl.jaas.config`, `*.key.password`,
/// `ssl.keystore.password`/`ssl.truststore.password`, `ssl.keystore.key`,
/// `basic.auth.user.info`, and keys ending in `.key` that are not data keys.
/// It does **not** match converter or data-key settings such as
/// `key.converter`, `key.converter.schemas.enable`, `message.key.columns` or
/// `primary.key.mode`, nor keys that name a location/URL/class of a secret
/// (`ssl.keystore.location`, `sasl.oauthbearer.token.endpoint.url`).
pub fn is_sensitive_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    let tokens: Vec<&str> = lower
        .split(['.', '_', '-', ' '])
        .filter(|t| !t.is_empty())
        .collect();
    let Some(&last) = tokens.last() else {
        return false;
    };
    if NON_SECRET_LAST_TOKENS.contains(&last) {
        return false;
    }
    let compact: String = tokens.concat();
    if SENSITIVE_FRAGMENTS.iter().any(|f| compact.contains(f)) {
        return true;
    }
    if tokens
        .iter()
        .any(|t| SENSITIVE_TOKENS.contains(t) || (t.len() > 5 && t.ends_with("token")))
    {
        return true;
    }
    if last == "key" {
        let qualifier = tokens.len().checked_sub(2).and_then(|i| tokens.get(i));
        return match qualifier {
            Some(q) => !NON_SECRET_KEY_QUALIFIERS.contains(q),
            None => true,
        };
    }
    false
}

/// Returns true when `value` is exactly one Kafka Connect config-provider
/// placeholder such as `${file:/opt/secrets.properties:db.password}`,
/// `${env:DB_PASSWORD}` or `${directory:/run/secrets:db-password}`.
///
/// Placeholders are resolved by the worker at runtime; the string itself is a
/// reference, safe (and useful) to show. A value that merely *contains* a
/// placeholder next to literal text is not considered a placeholder, because
/// the literal part may itself be secret.
pub fn is_config_provider_placeholder(value: &str) -> bool {
    let v = value.trim();
    let Some(inner) = v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    if inner.contains(['{', '}', '$']) {
        return false;
    }
    let Some((provider, rest)) = inner.split_once(':') else {
        return false;
    };
    !provider.is_empty()
        && !rest.is_empty()
        && provider
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The display form of `value` under configuration key `key`: [`MASK`] for a
/// non-empty secret that is not a config-provider placeholder, otherwise the
/// value with any embedded credentials scrubbed by [`scrub_text`].
pub fn mask_value<'a>(key: &str, value: &'a str) -> Cow<'a, str> {
    if is_sensitive_key(key) && !value.is_empty() && !is_config_provider_placeholder(value) {
        Cow::Borrowed(MASK)
    } else {
        scrub_text(value)
    }
}

/// Removes credentials embedded in free text:
///
/// * the password part of URL user-info (`postgres://app:s3cret@db` becomes
///   `postgres://app:****@db`);
/// * values of sensitive `key=value` pairs, as found in JDBC URLs
///   (`;password=...`), query strings and Java `Map.toString()` dumps that
///   Connect sometimes puts in error messages (`{database.password=...}`).
///
/// Returns the input unchanged (borrowed) when nothing needed scrubbing.
pub fn scrub_text(text: &str) -> Cow<'_, str> {
    let step1 = scrub_url_userinfo(text);
    match scrub_key_values(&step1) {
        Cow::Borrowed(_) => step1,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

fn scrub_url_userinfo(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(pos) = rest.find("://") {
        let (before, after_scheme) = rest.split_at(pos + 3);
        out.push_str(before);
        let authority_end = after_scheme
            .find(['/', '?', '#', ' ', '\t', '\n', '"', '\'', ','])
            .unwrap_or(after_scheme.len());
        let (authority, tail) = after_scheme.split_at(authority_end);
        match authority.rfind('@') {
            Some(at) => {
                let (userinfo, host) = authority.split_at(at);
                match userinfo.split_once(':') {
                    Some((user, pass))
                        if !pass.is_empty() && !is_config_provider_placeholder(pass) =>
                    {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                        changed = true;
                    }
                    _ => out.push_str(userinfo),
                }
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = tail;
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn scrub_key_values(text: &str) -> Cow<'_, str> {
    if !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut idx = 0usize;
    let bytes_len = text.len();
    while idx < bytes_len {
        let Some(rel) = text[idx..].find('=') else {
            out.push_str(&text[idx..]);
            break;
        };
        let eq = idx + rel;
        // The key is the run of key characters immediately before '='.
        let key_start = text[..eq]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_key_char(*c))
            .last()
            .map(|(i, _)| i)
            .unwrap_or(eq);
        let key = &text[key_start..eq];
        out.push_str(&text[idx..=eq]);
        let value_start = eq + 1;
        let value_end = value_end(text, value_start);
        let value = &text[value_start..value_end];
        if !key.is_empty()
            && is_sensitive_key(key)
            && !value.is_empty()
            && !is_config_provider_placeholder(value.trim_matches('"'))
        {
            if value.starts_with('"') {
                out.push('"');
                out.push_str(MASK);
                out.push('"');
            } else {
                out.push_str(MASK);
            }
            changed = true;
        } else {
            out.push_str(value);
        }
        idx = value_end;
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// End (exclusive) of a `key=value` value starting at `start`: a quoted value
/// runs to its closing quote, a bare one to the next separator.
fn value_end(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return match quoted.find('"') {
            Some(close) => start + 1 + close + 1,
            None => text.len(),
        };
    }
    rest.find([',', ';', '&', '}', ' ', '\t', '\n', ')', ']'])
        .map(|p| start + p)
        .unwrap_or(text.len())
}

/// A connector configuration: Connect's flat `String -> String` map.
///
/// Serialises exactly like the underlying map. Deserialisation never fails on
/// value types: numbers and booleans (which some endpoints and hand-written
/// files produce) are converted to their string form, nested JSON is kept as
/// compact JSON text, and `null` values are dropped (Connect treats an absent
/// key and a null value the same way).
///
/// `Debug` masks secrets (see [`is_sensitive_key`]); use [`Self::masked`] for
/// display and [`Self::get`] / [`Self::as_map`] when the real value is needed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectorConfig(
    #[serde(deserialize_with = "deserialize_string_map")] BTreeMap<String, String>,
);

impl ConnectorConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// The real (unmasked) value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over real (unmasked) `(key, value)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The underlying map with real values.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Consumes the configuration, returning the underlying map.
    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }

    /// A copy safe to display: secret values replaced by [`MASK`] (unless they
    /// are config-provider placeholders) and credentials embedded in other
    /// values scrubbed.
    pub fn masked(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), mask_value(k, v).into_owned()))
            .collect()
    }

    /// The value of `connector.class`, if set.
    pub fn connector_class(&self) -> Option<&str> {
        self.get("connector.class")
    }
}

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, mask_value(k, v))))
            .finish()
    }
}

impl From<BTreeMap<String, String>> for ConnectorConfig {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ConnectorConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl IntoIterator for ConnectorConfig {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A partial configuration update for `PATCH /connectors/{name}/config`
/// (Kafka 3.9+): `Some(value)` sets or adds a key, `None` removes it (sent as
/// JSON `null`). `Debug` masks secrets like [`ConnectorConfig`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigPatch(BTreeMap<String, Option<String>>);

impl ConfigPatch {
    /// An empty patch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or adds) `key` to `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), Some(value.into()));
        self
    }

    /// Removes `key` from the connector configuration.
    pub fn remove(mut self, key: impl Into<String>) -> Self {
        self.0.insert(key.into(), None);
        self
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The real (unmasked) entries.
    pub fn as_map(&self) -> &BTreeMap<String, Option<String>> {
        &self.0
    }
}

impl fmt::Debug for ConfigPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, v.as_deref().map(|v| mask_value(k, v)))),
            )
            .finish()
    }
}

/// Converts any JSON scalar to the string Connect would use for it.
/// Returns `None` for `null`.
pub(crate) fn json_to_config_string(value: serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        other @ (serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
            Some(other.to_string())
        }
    }
}

fn deserialize_string_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of configuration keys to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some((k, v)) = access.next_entry::<String, serde_json::Value>()? {
                if let Some(v) = json_to_config_string(v) {
                    map.insert(k, v);
                }
            }
            Ok(map)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
    }
    deserializer.deserialize_any(MapVisitor)
}

/// Deserialises an optional JSON scalar as an optional string (numbers and
/// booleans converted), for fields Connect declares as strings but may emit
/// with other JSON types.
pub(crate) fn deserialize_opt_coerced_string<'de, D>(
    deserializer: D,
) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.and_then(json_to_config_string))
}

/// Deserialises a JSON array (or null) of scalars as strings.
pub(crate) fn deserialize_coerced_string_vec<'de, D>(
    deserializer: D,
) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<Vec<serde_json::Value>>::deserialize(deserializer)?;
    Ok(value
        .unwrap_or_default()
        .into_iter()
        .filter_map(json_to_config_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_key_table() {
        let cases: &[(&str, bool)] = &[
            // secrets
            ("database.password", true),
            ("DATABASE.PASSWORD", true),
            ("connection.password", true),
            ("database.sslpassword", true),
            ("ssl.keystore.password", true),
            ("ssl.truststore.password", true),
            ("ssl.key.password", true),
            ("producer.override.ssl.key.password", true),
            ("sasl.jaas.config", true),
            ("schema.history.internal.producer.sasl.jaas.config", true),
            ("consumer.override.sasl.jaas.config", true),
            ("value.converter.basic.auth.user.info", true),
            ("basic.auth.user.info", true),
            ("aws.secret.access.key", true),
            ("client.secret", true),
            ("sasl.oauthbearer.client.credentials.client.secret", true),
            ("gcp.credentials", true),
            ("credentials.json", true),
            ("api.key", true),
            ("apikey", true),
            ("api_key", true),
            ("datadog.api-key", true),
            ("private.key", true),
            ("snowflake.private.key", true),
            ("snowflake.private.key.passphrase", true),
            ("ssl.keystore.key", true),
            ("secret.key", true),
            ("signing.key", true),
            ("auth.token", true),
            ("config.providers.vault.param.token", true),
            ("accessToken", true),
            ("db.pwd", true),
            ("mongodb.passwd", true),
            ("key", true),
            // not secrets
            ("key.converter", false),
            ("key.converter.schemas.enable", false),
            ("value.converter", false),
            ("message.key.columns", false),
            ("primary.key.mode", false),
            ("primary.key.fields", false),
            ("transforms.route.key.field.name", false),
            ("record.key", false),
            ("message.key", false),
            ("key.ignore", false),
            ("database.user", false),
            ("database.hostname", false),
            ("connector.class", false),
            ("topic.prefix", false),
            ("ssl.keystore.location", false),
            ("ssl.keystore.type", false),
            ("ssl.truststore.location", false),
            ("sasl.oauthbearer.token.endpoint.url", false),
            ("sasl.login.callback.handler.class", false),
            ("value.converter.basic.auth.credentials.source", false),
            ("password.encoder.cipher.algorithm", false),
            ("aws.access.key.id", false),
            ("tokenizer", false),
            ("", false),
            ("snapshot.mode", false),
        ];
        let mut failures = Vec::new();
        for (key, expected) in cases {
            if is_sensitive_key(key) != *expected {
                failures.push(format!("{key:?}: expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "misclassified keys: {failures:#?}");
    }

    #[test]
    fn placeholder_table() {
        let cases: &[(&str, bool)] = &[
            ("${file:/opt/secrets.properties:db.password}", true),
            ("${env:DB_PASSWORD}", true),
            ("${directory:/run/secrets:db-password}", true),
            ("  ${vault:secret/data/db:password}  ", true),
            ("${file:/a:b}${file:/c:d}", false),
            ("pre${env:X}", false),
            ("${env:X}post", false),
            ("${}", false),
            ("${:x}", false),
            ("${env:}", false),
            ("${env}", false),
            ("hunter2", false),
            ("", false),
        ];
        for (value, expected) in cases {
            assert_eq!(
                is_config_provider_placeholder(value),
                *expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn mask_value_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("database.password", "hunter2", MASK),
            ("database.password", "${file:/s.properties:pw}", "${file:/s.properties:pw}"),
            ("database.password", "${env:PG_PASSWORD}", "${env:PG_PASSWORD}"),
            ("database.password", "", ""),
            ("database.password", "x${env:PG}", MASK),
            ("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"p\";", MASK),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter", "org.apache.kafka.connect.json.JsonConverter"),
            ("message.key.columns", "inventory.customers:id", "inventory.customers:id"),
            ("connection.url", "jdbc:postgresql://db:5432/app?user=app&password=s3cret", "jdbc:postgresql://db:5432/app?user=app&password=****"),
            ("connection.url", "jdbc:sqlserver://db;user=app;password=s3cret;encrypt=true", "jdbc:sqlserver://db;user=app;password=****;encrypt=true"),
            ("connection.uri", "mongodb://app:s3cret@mongo:27017/?replicaSet=rs0", "mongodb://app:****@mongo:27017/?replicaSet=rs0"),
            ("connection.uri", "mongodb://mongo:27017", "mongodb://mongo:27017"),
            ("connection.url", "postgres://app:${env:PW}@db/app", "postgres://app:${env:PW}@db/app"),
        ];
        for (key, value, expected) in cases {
            assert_eq!(mask_value(key, value), *expected, "{key} = {value}");
        }
    }

    #[test]
    fn scrub_java_map_dump() {
        let msg = "Connector config {connector.class=x, database.password=hunter2, database.user=app} contains no connector type";
        let scrubbed = scrub_text(msg);
        assert!(!scrubbed.contains("hunter2"), "{scrubbed}");
        assert!(scrubbed.contains("database.password=****"));
        assert!(scrubbed.contains("database.user=app"));
    }

    #[test]
    fn scrub_leaves_ordinary_text_alone() {
        let msg = "Connector orders not found";
        assert!(matches!(scrub_text(msg), Cow::Borrowed(_)));
        let msg = "Invalid value a=b for configuration snapshot.mode";
        assert_eq!(scrub_text(msg), msg);
    }

    #[test]
    fn debug_masks_secrets_but_not_placeholders() {
        let cfg: ConnectorConfig = [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("database.password", "hunter2"),
            ("database.user", "${file:/secrets:user}"),
            ("ssl.truststore.password", "${env:TRUST_PW}"),
            (
                "key.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
        ]
        .into_iter()
        .collect();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("\"database.password\": \"****\""), "{dbg}");
        assert!(dbg.contains("${env:TRUST_PW}"), "{dbg}");
        assert!(dbg.contains("JsonConverter"), "{dbg}");
        let masked = cfg.masked();
        assert_eq!(
            masked.get("database.password").map(String::as_str),
            Some(MASK)
        );
        assert_eq!(cfg.get("database.password"), Some("hunter2"));
    }

    #[test]
    fn patch_debug_masks_and_serialises_nulls() {
        let patch = ConfigPatch::new()
            .set("database.password", "hunter2")
            .remove("snapshot.mode");
        let dbg = format!("{patch:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let json = serde_json::to_string(&patch).unwrap();
        assert_eq!(
            json,
            r#"{"database.password":"hunter2","snapshot.mode":null}"#
        );
    }

    #[test]
    fn config_deserialisation_coerces_scalars() {
        let cfg: ConnectorConfig = serde_json::from_str(
            r#"{"tasks.max": 1, "key.converter.schemas.enable": false, "name": "inv",
                "weird": {"a": [1, 2]}, "gone": null, "ratio": 0.5}"#,
        )
        .unwrap();
        assert_eq!(cfg.get("tasks.max"), Some("1"));
        assert_eq!(cfg.get("key.converter.schemas.enable"), Some("false"));
        assert_eq!(cfg.get("weird"), Some(r#"{"a":[1,2]}"#));
        assert_eq!(cfg.get("ratio"), Some("0.5"));
        assert!(!cfg.contains_key("gone"));
        // round-trips as a plain map of strings
        let back = serde_json::to_value(&cfg).unwrap();
        assert_eq!(back["tasks.max"], "1");
    }
}
