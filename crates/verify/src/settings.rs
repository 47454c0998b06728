//! What to compare and how: connection settings (plain fields, never a URL with a password in
//! it), table names and the run's options.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A database engine lockstep verify can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    /// MariaDB or MySQL (the same protocol and catalog).
    Mysql,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MariaDB/MySQL",
        })
    }
}

/// A password. Never printed: `Debug` and `Display` show `****`.
pub use lockstep_secret::Secret as Password;

/// Where a database is and who to log in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Password>,
    pub database: String,
}

impl ConnectionSettings {
    pub fn postgres(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        database: impl Into<String>,
    ) -> Self {
        Self {
            engine: Engine::Postgres,
            host: host.into(),
            port,
            user: user.into(),
            password: None,
            database: database.into(),
        }
    }

    pub fn mysql(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        database: impl Into<String>,
    ) -> Self {
        Self {
            engine: Engine::Mysql,
            ..Self::postgres(host, port, user, database)
        }
    }

    pub fn with_password(mut self, password: Password) -> Self {
        self.password = Some(password);
        self
    }
}

/// A table, optionally schema-qualified. Without a schema, PostgreSQL uses `public` and
/// MariaDB/MySQL the connection's database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableRef {
    pub schema: Option<String>,
    pub name: String,
}

impl TableRef {
    pub fn new(schema: Option<&str>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.map(str::to_string),
            name: name.into(),
        }
    }

    /// The schema this table lives in on `settings`' server.
    pub fn schema_or_default<'a>(&'a self, settings: &'a ConnectionSettings) -> &'a str {
        match (&self.schema, settings.engine) {
            (Some(schema), _) => schema,
            (None, Engine::Postgres) => "public",
            (None, Engine::Mysql) => &settings.database,
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// `table` or `schema.table` (no quoting: a name containing a dot needs [`TableRef::new`]).
impl FromStr for TableRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!("invalid table name {s:?}: expected `table` or `schema.table`, both non-empty")
        };
        match s.split_once('.') {
            None if !s.is_empty() => Ok(Self::new(None, s)),
            Some((schema, name))
                if !schema.is_empty() && !name.is_empty() && !name.contains('.') =>
            {
                Ok(Self::new(Some(schema), name))
            }
            _ => Err(invalid()),
        }
    }
}

/// One side of a comparison: a table on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub connection: ConnectionSettings,
    pub table: TableRef,
}

impl Endpoint {
    pub fn new(connection: ConnectionSettings, table: TableRef) -> Self {
        Self { connection, table }
    }

    /// `engine host:port/database schema.table`, for reports and errors (no credentials).
    pub fn describe(&self) -> String {
        format!(
            "{} {}:{}/{} {}.{}",
            self.connection.engine,
            self.connection.host,
            self.connection.port,
            self.connection.database,
            self.table.schema_or_default(&self.connection),
            self.table.name
        )
    }
}

/// How a verification runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyOptions {
    /// Source rows per chunk (keyset page). Default 1,000.
    pub chunk_size: usize,
    /// How often a differing chunk is re-read before it is reported, so that rows still in
    /// flight through a live pipeline converge. Default 3.
    pub max_retries: u32,
    /// Pause before each re-read of a differing chunk. Default 500 ms.
    #[serde(with = "duration_millis")]
    pub retry_delay: Duration,
    /// How many keys of each kind (missing, extra, differing) the report lists; all are counted.
    /// Default 1,000.
    pub max_listed_keys: usize,
    /// Fail before comparing rows when the column sets differ, instead of comparing the common
    /// columns and listing the difference in the report.
    pub fail_on_schema_difference: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            chunk_size: 1_000,
            max_retries: 3,
            retry_delay: Duration::from_millis(500),
            max_listed_keys: 1_000,
            fail_on_schema_difference: false,
        }
    }
}

impl VerifyOptions {
    /// Rejects options a run cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.chunk_size == 0 {
            return Err("chunk size must be at least 1 (the default is 1000)".to_string());
        }
        Ok(())
    }
}

pub(crate) mod duration_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_masked() {
        let settings = ConnectionSettings::mysql("db", 3306, "app", "shop")
            .with_password(Password::new("hunter2"));
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("****"), "{debug}");
        assert_eq!(format!("{}", Password::new("x")), "****");
    }

    #[test]
    fn table_names_parse() {
        let cases: &[(&str, Option<TableRef>)] = &[
            ("orders", Some(TableRef::new(None, "orders"))),
            ("shop.orders", Some(TableRef::new(Some("shop"), "orders"))),
            ("", None),
            (".orders", None),
            ("shop.", None),
            ("a.b.c", None),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<TableRef>().ok(), *expected, "{text:?}");
        }
    }

    #[test]
    fn default_schema_per_engine() {
        let table = TableRef::new(None, "t");
        let pg = ConnectionSettings::postgres("h", 5432, "u", "db1");
        let my = ConnectionSettings::mysql("h", 3306, "u", "db2");
        assert_eq!(table.schema_or_default(&pg), "public");
        assert_eq!(table.schema_or_default(&my), "db2");
        let qualified = TableRef::new(Some("s"), "t");
        assert_eq!(qualified.schema_or_default(&my), "s");
    }

    #[test]
    fn options_validate() {
        assert!(VerifyOptions::default().validate().is_ok());
        let zero = VerifyOptions {
            chunk_size: 0,
            ..VerifyOptions::default()
        };
        assert!(zero.validate().is_err());
    }
}
