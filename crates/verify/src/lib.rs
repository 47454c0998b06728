//! `lockstep verify`: compares a source table with a target table, PostgreSQL or MariaDB/MySQL
//! on either side, in the manner of pt-table-checksum / pt-table-sync, and reports the rows
//! missing from the target, the rows only the target has, and the rows whose values differ —
//! each by primary key.
//!
//! Pure core, imperative shell:
//! - [`canonical`]: one text encoding per logical value, identical on both engines (the
//!   decisions are tabled there);
//! - [`plan`]: the compared columns (intersection by name), schema differences, and the keyset
//!   pagination SQL per engine;
//! - [`diff`]: canonical rows, chunk digests, the merge-join of a differing chunk;
//! - [`report`]: the serialisable result;
//! - `adapters` and [`verify`]: connections, catalog reads, the chunk walk with re-reads for
//!   rows still in flight.
//!
//! ```no_run
//! # async fn example() -> Result<(), lockstep_verify::VerifyError> {
//! use lockstep_verify::{verify, ConnectionSettings, Endpoint, Password, VerifyOptions};
//! let source = Endpoint::new(
//!     ConnectionSettings::postgres("pg.internal", 5432, "verify", "core"),
//!     "public.accounts".parse().map_err(lockstep_verify::VerifyError::InvalidOptions)?,
//! );
//! let target = Endpoint::new(
//!     ConnectionSettings::mysql("maria.internal", 3306, "verify", "replica")
//!         .with_password(Password::new("from a secret store")),
//!     "accounts".parse().map_err(lockstep_verify::VerifyError::InvalidOptions)?,
//! );
//! let report = verify(&source, &target, &VerifyOptions::default()).await?;
//! if !report.is_clean() {
//!     println!("{} missing, {} extra, {} differing",
//!         report.missing_count, report.extra_count, report.differing_count);
//! }
//! # Ok(())
//! # }
//! ```

mod adapters;
pub mod canonical;
pub mod diff;
mod error;
pub mod plan;
pub mod report;
mod run;
mod settings;

pub use canonical::ColumnKind;
pub use diff::{DifferingRow, Key};
pub use error::{Side, VerifyError};
pub use plan::SchemaDifference;
pub use report::VerifyReport;
pub use run::verify;
pub use settings::{ConnectionSettings, Endpoint, Engine, Password, TableRef, VerifyOptions};
