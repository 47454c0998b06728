//! MariaDB / MySQL target adapter (in progress).

use std::collections::BTreeMap;

use lockstep_debezium::Column;

use crate::mysql_sql::MyStatement;
use crate::pipeline::TargetSettings;
use crate::table::TargetTable;
use crate::{ApplyError, PartitionKey};

pub struct MariaDbTarget {}

fn not_yet() -> ApplyError {
    ApplyError::Config("MariaDB targets are not implemented yet".into())
}

impl MariaDbTarget {
    pub async fn connect(_settings: &TargetSettings) -> Result<Self, ApplyError> {
        Err(not_yet())
    }
    pub async fn load_offsets(
        &mut self,
        _pipeline: &str,
    ) -> Result<BTreeMap<PartitionKey, i64>, ApplyError> {
        Err(not_yet())
    }
    pub async fn table(&mut self, _name: &str) -> Result<TargetTable, ApplyError> {
        Err(not_yet())
    }
    pub fn forget(&mut self, _name: &str) {}
    pub async fn apply(
        &mut self,
        _pipeline: &str,
        _statements: &[MyStatement],
        _expected: &BTreeMap<PartitionKey, Option<i64>>,
        _next: &BTreeMap<PartitionKey, i64>,
    ) -> Result<(), ApplyError> {
        Err(not_yet())
    }
    pub async fn add_nullable_columns(
        &mut self,
        _table: &TargetTable,
        _columns: &[Column],
    ) -> Result<(), ApplyError> {
        Err(not_yet())
    }
}
