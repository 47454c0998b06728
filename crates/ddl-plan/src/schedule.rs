//! Which DDL operations may run at the same time (pure).
//!
//! Every plan claims the resources its steps touch, shared or exclusive:
//! - its tables: exclusive for structural DDL (a table's structural changes run one after the
//!   other), shared for non-structural DDL (indexes, views, comments run side by side);
//! - the pipeline's change stream: exclusive for a plan that pauses, stops, restarts or
//!   reconfigures a connector or signals a snapshot (every other plan's marks and waits
//!   depend on the stream flowing), shared for a plan that waits on a mark;
//! - the pipeline's publication: exclusive for a plan that changes its members.
//!
//! Two claim sets conflict when they name the same resource and either is exclusive. The
//! queue is first come, first served: an operation starts when it conflicts with nothing
//! running and with nothing accepted before it that still waits, so a stream of small
//! operations never starves a structural one. The statements of one script stay in order:
//! a script is one queue entry whose claims are those of all its plans.

use std::fmt;

use lockstep_ddl::{Concurrency, QualifiedName};
use serde::Serialize;

use crate::step::{Plan, StepKind};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Resource {
    /// A source table of a pipeline: (pipeline, table).
    Table(String, QualifiedName),
    /// A pipeline's change stream (its source connectors and the sink reading them).
    Stream(String),
    /// A pipeline's publication.
    Publication(String),
    /// Everything: held by the recovery of unfinished operations at service start.
    All,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Table(pipeline, table) => write!(f, "table {table} of pipeline {pipeline}"),
            Resource::Stream(pipeline) => write!(f, "the change stream of pipeline {pipeline}"),
            Resource::Publication(pipeline) => write!(f, "the publication of pipeline {pipeline}"),
            Resource::All => f.write_str("every pipeline (recovery at start)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Shared,
    Exclusive,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Claim {
    pub resource: Resource,
    pub access: Access,
}

/// The claims of a queue entry: the strongest access per resource, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Claims(Vec<Claim>);

impl Claims {
    /// The claim of the recovery at service start: everything, exclusively.
    pub fn everything() -> Self {
        Claims(vec![Claim {
            resource: Resource::All,
            access: Access::Exclusive,
        }])
    }

    /// The claims of the plans of one script (run in order, as one entry).
    pub fn of_plans<'a>(pipeline: &str, plans: impl IntoIterator<Item = &'a Plan>) -> Self {
        // Every operation holds `All` shared (see `of`), so the recovery waits for them and
        // they for it.
        Self::of(
            plans
                .into_iter()
                .flat_map(|plan| plan_claims(pipeline, plan)),
        )
    }

    fn normalise(mut all: Vec<Claim>) -> Self {
        // Exclusive sorts after shared: keep the last (strongest) claim of each resource.
        all.sort();
        let mut out: Vec<Claim> = Vec::with_capacity(all.len());
        for claim in all {
            match out.last_mut() {
                Some(last) if last.resource == claim.resource => last.access = claim.access,
                _ => out.push(claim),
            }
        }
        Claims(out)
    }

    /// Claims on exactly these resources (every operation's shared hold on `All` added).
    pub fn of(claims: impl IntoIterator<Item = Claim>) -> Self {
        let mut all: Vec<Claim> = claims.into_iter().collect();
        all.push(Claim {
            resource: Resource::All,
            access: Access::Shared,
        });
        Self::normalise(all)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Claim> {
        self.0.iter()
    }

    /// The first resource both claim where either claim is exclusive.
    pub fn conflict(&self, other: &Claims) -> Option<&Resource> {
        self.0.iter().find_map(|a| {
            other
                .0
                .iter()
                .find(|b| {
                    a.resource == b.resource
                        && (a.access == Access::Exclusive || b.access == Access::Exclusive)
                })
                .map(|_| &a.resource)
        })
    }
}

fn plan_claims(pipeline: &str, plan: &Plan) -> Vec<Claim> {
    let claim = |resource, access| Claim { resource, access };
    let table_access = match plan.concurrency {
        Concurrency::Structural => Access::Exclusive,
        Concurrency::NonStructural => Access::Shared,
    };
    let mut out: Vec<Claim> = plan
        .tables
        .iter()
        .map(|t| {
            claim(
                Resource::Table(pipeline.to_string(), t.clone()),
                table_access,
            )
        })
        .collect();
    for step in &plan.steps {
        let stream = match &step.kind {
            StepKind::PauseConnector { .. }
            | StepKind::ResumeConnector { .. }
            | StepKind::StopConnector { .. }
            | StepKind::RestartConnector { .. }
            | StepKind::UpdateConnectorConfig { .. }
            | StepKind::IncrementalSnapshotSignal { .. } => Some(Access::Exclusive),
            StepKind::WaitSinkApplied { .. }
            | StepKind::WaitSnapshotCompleted { .. }
            | StepKind::MarkSourcePosition { .. }
            | StepKind::HoldSinkTable { .. }
            | StepKind::AddSinkTable { .. }
            | StepKind::RemoveSinkTable { .. } => Some(Access::Shared),
            StepKind::SourceDdl { mark: Some(_), .. } => Some(Access::Shared),
            _ => None,
        };
        if let Some(access) = stream {
            out.push(claim(Resource::Stream(pipeline.to_string()), access));
        }
        if let StepKind::UpdatePublication { .. } = &step.kind {
            out.push(claim(
                Resource::Publication(pipeline.to_string()),
                Access::Exclusive,
            ));
        }
    }
    out
}

/// Why a queued entry cannot start yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// A running operation holds a resource it needs.
    Running(Resource),
    /// An operation accepted before it waits for a resource it needs (first come, first served).
    Earlier(Resource),
}

/// Whether the entry at `index` of `queue` (in the order accepted) may start while `running`
/// run: `Ok(())`, or what it waits for.
pub fn may_start(running: &[&Claims], queue: &[&Claims], index: usize) -> Result<(), Wait> {
    let Some(entry) = queue.get(index) else {
        return Ok(());
    };
    for r in running {
        if let Some(resource) = entry.conflict(r) {
            return Err(Wait::Running(resource.clone()));
        }
    }
    for earlier in &queue[..index] {
        if let Some(resource) = entry.conflict(earlier) {
            return Err(Wait::Earlier(resource.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{AuditStage, Compensation, Step};
    use lockstep_ddl::{Risk, RiskLevel, Strategy};

    fn step(kind: StepKind) -> Step {
        Step {
            n: 1,
            kind,
            compensation: Compensation::Nothing,
            idempotent: true,
            skip_if: Vec::new(),
        }
    }

    fn plan(tables: &[&str], concurrency: Concurrency, steps: Vec<StepKind>) -> Plan {
        Plan {
            statement: 0,
            sql: String::new(),
            summary: String::new(),
            risk: Risk {
                level: RiskLevel::L0,
                reason: String::new(),
            },
            strategy: Strategy::TargetFirst,
            concurrency,
            tables: tables
                .iter()
                .map(|t| QualifiedName::new("public", *t))
                .collect(),
            steps: std::iter::once(StepKind::AuditRecord {
                stage: AuditStage::Begin,
            })
            .chain(steps)
            .map(step)
            .collect(),
            point_of_no_return: 0,
            source_after: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn index(table: &str) -> Claims {
        Claims::of_plans("p", [&plan(&[table], Concurrency::NonStructural, vec![])])
    }

    fn add_column(table: &str) -> Claims {
        Claims::of_plans("p", [&plan(&[table], Concurrency::Structural, vec![])])
    }

    fn rename_column(table: &str) -> Claims {
        let pause = StepKind::PauseConnector {
            connector: "c".into(),
        };
        let wait = StepKind::WaitSinkApplied {
            mark: "m".into(),
            tables: vec![],
            timeout_ms: 1,
        };
        Claims::of_plans(
            "p",
            [&plan(&[table], Concurrency::Structural, vec![pause, wait])],
        )
    }

    fn drop_column(table: &str) -> Claims {
        let mark = StepKind::MarkSourcePosition { mark: "m".into() };
        Claims::of_plans("p", [&plan(&[table], Concurrency::Structural, vec![mark])])
    }

    fn create_table(table: &str) -> Claims {
        let publication = StepKind::UpdatePublication {
            publication: "pub".into(),
            add: vec![],
            remove: vec![],
        };
        Claims::of_plans(
            "p",
            [&plan(&[table], Concurrency::Structural, vec![publication])],
        )
    }

    #[test]
    fn which_operations_run_side_by_side() {
        let cases: Vec<(&str, Claims, Claims, bool)> = vec![
            ("two indexes on one table", index("a"), index("a"), true),
            (
                "index and structural change on one table",
                index("a"),
                add_column("a"),
                false,
            ),
            (
                "two structural changes on one table",
                add_column("a"),
                add_column("a"),
                false,
            ),
            (
                "structural changes on two tables",
                add_column("a"),
                add_column("b"),
                true,
            ),
            (
                "two marks and waits on two tables",
                drop_column("a"),
                drop_column("b"),
                true,
            ),
            (
                "a pause and a wait on another table",
                rename_column("a"),
                drop_column("b"),
                false,
            ),
            (
                "a pause and an index on another table",
                rename_column("a"),
                index("b"),
                true,
            ),
            (
                "two pauses on two tables",
                rename_column("a"),
                rename_column("b"),
                false,
            ),
            (
                "two publication changes",
                create_table("a"),
                create_table("b"),
                false,
            ),
            (
                "a publication change and an index",
                create_table("a"),
                index("b"),
                true,
            ),
            (
                "recovery and anything",
                Claims::everything(),
                index("b"),
                false,
            ),
        ];
        for (name, a, b, together) in cases {
            assert_eq!(a.conflict(&b).is_none(), together, "{name}: a vs b");
            assert_eq!(b.conflict(&a).is_none(), together, "{name}: b vs a");
        }
    }

    #[test]
    fn tables_of_different_pipelines_are_different_resources() {
        let a = Claims::of_plans("p1", [&plan(&["t"], Concurrency::Structural, vec![])]);
        let b = Claims::of_plans("p2", [&plan(&["t"], Concurrency::Structural, vec![])]);
        assert_eq!(a.conflict(&b), None);
    }

    #[test]
    fn a_script_claims_the_strongest_access_of_its_plans() {
        let script = Claims::of_plans(
            "p",
            [
                &plan(&["a"], Concurrency::NonStructural, vec![]),
                &plan(&["a"], Concurrency::Structural, vec![]),
            ],
        );
        let table = Resource::Table("p".into(), QualifiedName::new("public", "a"));
        let claim = script
            .iter()
            .find(|c| c.resource == table)
            .expect("claims the table");
        assert_eq!(claim.access, Access::Exclusive);
        assert_eq!(script.iter().filter(|c| c.resource == table).count(), 1);
    }

    #[test]
    fn first_come_first_served() {
        let running = index("a");
        let structural = add_column("a");
        let later_index = index("a");
        let other = add_column("b");
        let queue = [&structural, &later_index, &other];
        assert_eq!(
            may_start(&[&running], &queue, 0),
            Err(Wait::Running(Resource::Table(
                "p".into(),
                QualifiedName::new("public", "a")
            )))
        );
        // The index could run beside the running one, but not overtake the structural change.
        assert!(matches!(
            may_start(&[&running], &queue, 1),
            Err(Wait::Earlier(_))
        ));
        assert_eq!(may_start(&[&running], &queue, 2), Ok(()));
        assert_eq!(may_start(&[], &queue, 0), Ok(()));
    }
}
