//! The engine-neutral description of a target table, read from the target's catalog.

use lockstep_debezium::Row;

/// A target table as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTable {
    /// PostgreSQL schema, or MariaDB database.
    pub schema: String,
    pub name: String,
    /// Column name and its declared type as the engine prints it (PostgreSQL `format_type`,
    /// e.g. `numeric(12,2)`; MariaDB `COLUMN_TYPE`, e.g. `decimal(12,2)`).
    pub columns: Vec<(String, String)>,
    pub primary_key: Vec<String>,
}

impl TargetTable {
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn column_type(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, t)| t.as_str())
    }

    /// Whether an event's key names exactly this table's primary key columns. Checked for
    /// every row, so it allocates nothing; the planners explain a mismatch themselves.
    pub fn is_keyed_by(&self, key: &Row) -> bool {
        !self.primary_key.is_empty()
            && key.columns.len() == self.primary_key.len()
            && self
                .primary_key
                .iter()
                .all(|k| key.columns.iter().any(|c| *c.name == **k))
    }
}

/// Columns of `row` the target does not have: the schema-drift check.
pub fn missing_columns(table: &TargetTable, row: &Row) -> Vec<String> {
    row.columns
        .iter()
        .filter(|c| table.column_type(&c.name).is_none())
        .map(|c| c.name.to_string())
        .collect()
}
