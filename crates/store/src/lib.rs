//! lockstep's durable embedded store: one SQLite file (`<state dir>/lockstep.db`) holding
//!
//! * **operations and their steps**, a durable state machine generic over the plan (plans and
//!   step outputs are JSON values; the store knows no DDL type). A step is persisted as
//!   `Running` *before* it runs ([`Store::begin_step`]) and with its result *after*
//!   ([`Store::finish_step`]); every change is a compare-and-set along the legal transitions
//!   of [`state`], so after a crash [`Store::unfinished_operations`] shows exactly where each
//!   operation stopped, and two executors racing on one step cannot both win.
//! * **the audit log**, append-only and hash-chained: each record carries the SHA-256 of the
//!   previous one ([`audit`] documents the encoding); [`Store::verify_chain`] finds the first
//!   edited, deleted or reordered record. Every state change appends its record in the same
//!   transaction, so state and audit never disagree; values under secret-looking keys are
//!   masked before anything is hashed or stored.
//! * the cursor of the optional **Kafka mirror** ([`mirror`]), which publishes each record to
//!   a topic, at least once, in order.
//!
//! Durability: WAL journal, `synchronous=FULL` (a committed change survives power loss), a
//! busy timeout for concurrent processes, schema versioned by `PRAGMA user_version` (a file
//! from a newer lockstep is refused, never downgraded).
//!
//! ```no_run
//! # fn main() -> Result<(), lockstep_store::StoreError> {
//! use lockstep_store::{NewOperation, OperationOutcome, StepOutcome, Store};
//! let store = Store::open_dir(std::path::Path::new(".lockstep"))?;
//! let id = store.create_operation(&NewOperation {
//!     kind: "ddl".into(),
//!     subject: "public.orders".into(),
//!     requested_by: "alice".into(),
//!     plan: serde_json::json!({"statements": ["ALTER TABLE orders ADD COLUMN note text"]}),
//!     steps: vec!["target ddl".into(), "source ddl".into()],
//!     require_approval: false,
//! })?;
//! store.start_operation(id, "executor")?;
//! for index in 0..2 {
//!     let ticket = store.begin_step(id, index, "executor")?; // persisted before it runs
//!     // ... run the step ...
//!     store.finish_step(&ticket, StepOutcome::Succeeded(serde_json::Value::Null), "executor")?;
//! }
//! store.finish_operation(id, OperationOutcome::Succeeded, "executor")?;
//! assert!(store.verify_chain()?.intact);
//! # Ok(()) }
//! ```

pub mod audit;
mod error;
pub mod mirror;
mod model;
mod schema;
pub mod state;
mod store;
mod time;

pub use audit::{AuditRecord, BreakReason, ChainBreak, ChainReport, GENESIS_HASH};
pub use error::{Result, StoreError};
pub use model::{
    AuditEntry, ListFilter, NewOperation, Operation, OperationId, OperationOutcome,
    OperationSummary, Stamp, Step, StepOutcome, StepState, StepTicket,
};
pub use schema::SCHEMA_VERSION;
pub use state::{OperationEvent, OperationState, StepEvent, StepStatus};
pub use store::{Store, BUSY_TIMEOUT, DB_FILE};
pub use time::Timestamp;
