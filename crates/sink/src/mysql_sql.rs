//! Pure planning of a coalesced batch into MariaDB / MySQL statements (in progress).

use lockstep_debezium::CoalescedBatch;

use crate::table::TargetTable;
use crate::ApplyError;

/// One MariaDB statement with its positional parameters (None is SQL NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyStatement {
    pub sql: String,
    pub params: Vec<Option<String>>,
    /// Rows the statement carries (for metrics).
    pub rows: usize,
}

pub fn plan(_table: &TargetTable, _batch: &CoalescedBatch) -> Result<Vec<MyStatement>, ApplyError> {
    Err(ApplyError::Config(
        "MariaDB targets are not implemented yet".into(),
    ))
}
