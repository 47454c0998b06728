//! Risk and strategy of each change class. The risk is what the change does to the pipeline
//! when run on the source alone; the strategy is the family of plan that makes it safe.
//!
//! Facts behind the rules (Debezium PostgreSQL connector, pgoutput):
//! - logical decoding carries no DDL: the connector learns a table's new shape from the
//!   relation message that precedes the first change after the DDL, so each event is decoded
//!   with the table as it was at that WAL position;
//! - the primary key is not in the relation message: the connector reads it over JDBC, so
//!   around a key change events can carry an inconsistent key (Debezium's documentation: make
//!   the table read-only, let the connector drain, stop it, change the key, restart it);
//! - table rewrites (ADD COLUMN with a volatile default, ALTER TYPE ... USING) change stored
//!   values without emitting change events;
//! - topics and `table.include.list` are by table name; TRUNCATE is skipped by default
//!   (`skipped.operations=t`).

use crate::catalog::Catalog;
use crate::model::{
    Change, ClassifiedChange, Concurrency, ConstraintDef, ConstraintKind, ReplicaIdentity, Risk,
    RiskLevel, Strategy,
};
use crate::types::TypeChange;

fn risk(level: RiskLevel, reason: &str) -> Risk {
    Risk {
        level,
        reason: reason.to_string(),
    }
}

/// Assess one change against the catalog as it was before the change.
pub fn assess(change: Change, before: &Catalog) -> ClassifiedChange {
    use RiskLevel::*;
    use Strategy::*;
    let (risk, strategy) = match &change {
        Change::CreateTable { .. } => (
            risk(L1, "a new table is captured only once it is in the connector's table.include.list and the publication, and the target lacks it: its rows would be missing (drift)"),
            CreateTable,
        ),
        Change::DropTable { .. } => (
            risk(L1, "no change event announces a dropped table: the target keeps it and its rows (drift)"),
            DropTable,
        ),
        Change::RenameTable { .. } => (
            risk(L3, "Debezium routes and filters by table name: changes under the new name go to a new topic, or are dropped by table.include.list (lost changes)"),
            RenameTable,
        ),
        Change::Truncate { .. } => (
            risk(L1, "Debezium skips TRUNCATE by default (skipped.operations=t): the target keeps the rows (drift)"),
            Truncate,
        ),
        Change::AddColumn { column, .. } => match &column.default {
            None if column.nullable => (
                risk(L2, "change events carry a column the target lacks: the sink holds or stops"),
                TargetFirst,
            ),
            None => (
                risk(L2, "NOT NULL without a default: fails on the source unless the table is empty, and events carry a column the target lacks"),
                ExpandContract,
            ),
            Some(d) if d.is_constant() => (
                risk(L2, "events carry a column the target lacks, and existing rows get the default on the source without change events"),
                TargetFirst,
            ),
            Some(_) => (
                risk(L2, "computed default: existing rows get values computed on the source (a table rewrite, no change events), which the target cannot recompute; only a re-snapshot copies them"),
                ExpandContract,
            ),
        },
        Change::DropColumn { column, .. } => (
            if column.nullable || column.default.is_some() {
                risk(L2, "events stop carrying the column: the target keeps it with stale values, and the sink fails once the target requires it")
            } else {
                risk(L2, "events stop carrying the column, which the target requires (NOT NULL, no default): inserts fail on the target")
            },
            ExpandContract,
        ),
        Change::RenameColumn { .. } => (
            risk(L2, "events carry the new column name: the target lacks it (the sink holds or stops) and the old column stops getting values"),
            Boundary,
        ),
        Change::AlterColumnType { direction, .. } => match direction {
            TypeChange::Same | TypeChange::Widening => (
                risk(L2, "widening: values wider than the target's column are rejected by the target"),
                TargetFirst,
            ),
            TypeChange::Narrowing => (
                risk(L1, "narrowing: the target keeps the wider type, and values the source rounds in place change without change events (drift)"),
                ExpandContract,
            ),
            TypeChange::Conversion => (
                risk(L2, "conversion: stored values are rewritten on the source without change events, and new events carry values of the new type the target's column may reject"),
                Boundary,
            ),
        },
        Change::SetNotNull { .. } => (
            risk(L1, "the target stays nullable (schema drift)"),
            ExpandContract,
        ),
        Change::DropNotNull { .. } => (
            risk(L2, "NULLs written on the source are rejected by the target's NOT NULL column"),
            TargetFirst,
        ),
        Change::SetDefault { .. } | Change::DropDefault { .. } => (
            risk(L0, "defaults never reach change events (values do); mirrored to keep the schemas equal"),
            TargetFirst,
        ),
        Change::AddPrimaryKey { .. } | Change::DropPrimaryKey { .. } => (
            risk(L3, "Debezium keys messages by the primary key, read from the catalog rather than the WAL: around the change, events can carry an inconsistent key, and the sink upserts by key"),
            KeyChange,
        ),
        Change::SetReplicaIdentity { table, to, .. } => {
            let has_pk = before.table(table).is_some_and(|t| !t.primary_key.is_empty());
            if has_pk && matches!(to, ReplicaIdentity::Default | ReplicaIdentity::Full | ReplicaIdentity::Index(_)) {
                (
                    risk(L1, "changes which old values UPDATE and DELETE events carry (the WAL's old tuple); message keys stay the primary key"),
                    SourceOnly,
                )
            } else {
                (
                    risk(L3, "the replica identity is the key of a table without a primary key"),
                    KeyChange,
                )
            }
        }
        Change::CreateIndex { unique, concurrently, .. } => (
            risk(
                L0,
                match (unique, concurrently) {
                    (_, true) => "indexes do not reach change events",
                    (_, false) => "indexes do not reach change events; without CONCURRENTLY the build blocks writes to the table",
                },
            ),
            if *unique { SourceOnly } else { TargetFirst },
        ),
        Change::DropIndex { .. } => (risk(L0, "indexes do not reach change events"), TargetFirst),
        Change::CreateView { .. } | Change::DropView { .. } => (
            risk(L0, "views are not replicated; mirrored to keep the schemas equal"),
            TargetFirst,
        ),
        Change::AddConstraint { constraint, not_valid, .. } => (
            risk(L0, "constraints do not change events; the source enforces them"),
            match (constraint, not_valid) {
                (ConstraintDef::Check { .. }, false) => TargetFirst,
                _ => SourceOnly,
            },
        ),
        Change::ValidateConstraint { .. } => (
            risk(L0, "validating a constraint does not change events"),
            SourceOnly,
        ),
        Change::DropConstraint { kind, .. } => (
            risk(L0, "constraints do not change events"),
            match kind {
                ConstraintKind::Check => TargetFirst,
                ConstraintKind::Unique | ConstraintKind::ForeignKey => SourceOnly,
            },
        ),
        Change::Comment { .. } => (
            risk(L0, "comments do not reach change events; mirrored to keep the schemas equal"),
            TargetFirst,
        ),
    };
    let concurrency = match &change {
        Change::CreateIndex { .. }
        | Change::DropIndex { .. }
        | Change::CreateView { .. }
        | Change::DropView { .. }
        | Change::Comment { .. } => Concurrency::NonStructural,
        _ => Concurrency::Structural,
    };
    ClassifiedChange {
        change,
        risk,
        strategy,
        concurrency,
    }
}
