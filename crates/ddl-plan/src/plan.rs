//! One plan per statement, from its strategy. Every plan starts and ends with an audit
//! record; the source DDL is the point of no return: steps before it are undone when a step
//! fails, steps from it on are retried forward.

use lockstep_ddl::{
    Change, Classification, Concurrency, Engine, QualifiedName, Statement, Strategy, TableAfter,
};

use crate::facts::{PipelineFacts, SinkKind, TargetTable};
use crate::render::{self, TargetOp, TargetWork};
use crate::step::{AuditStage, Compensation, Expectation, ExpectedColumn, Plan, Step, StepKind};
use crate::{PlanError, PlanErrorKind, PlanErrors};

const INCLUDE_LIST: &str = "table.include.list";
/// Mark recorded with (or right after) the source DDL.
const MARK: &str = "ddl";
/// Mark recorded once the tables are quiesced (key changes, conversions, skipped TRUNCATE,
/// RENAME TABLE).
const QUIESCED: &str = "quiesced";

/// Plan every statement of a classified script. All or nothing: if any statement cannot
/// be planned, every reason is returned and no plan.
pub fn plan_script(c: &Classification, facts: &PipelineFacts) -> Result<Vec<Plan>, PlanErrors> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    // A table created earlier in the script is part of the pipeline for later statements.
    let mut facts = facts.clone();
    for s in &c.statements {
        match plan_statement(s, c.engine, &facts) {
            Ok(p) => {
                for ch in &s.changes {
                    match &ch.change {
                        Change::CreateTable { table, .. } => facts.tables.push(table.clone()),
                        Change::RenameTable { table, new_name } => {
                            facts.tables.retain(|t| t != table);
                            facts
                                .tables
                                .push(QualifiedName::new(table.schema.clone(), new_name.clone()));
                        }
                        Change::DropTable { table } => facts.tables.retain(|t| t != table),
                        _ => {}
                    }
                }
                plans.push(p)
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(PlanErrors { errors })
    }
}

struct Builder<'a> {
    facts: &'a PipelineFacts,
    steps: Vec<Step>,
    no_return: Option<usize>,
}

fn read_only(kind: &StepKind) -> bool {
    matches!(
        kind,
        StepKind::AuditRecord { .. }
            | StepKind::MarkSourcePosition { .. }
            | StepKind::WaitSinkApplied { .. }
            | StepKind::WaitSnapshotCompleted { .. }
            | StepKind::VerifyTargetSchema { .. }
            | StepKind::VerifyRows { .. }
    )
}

impl<'a> Builder<'a> {
    fn new(facts: &'a PipelineFacts) -> Self {
        Self {
            facts,
            steps: Vec::new(),
            no_return: None,
        }
    }

    fn push_full(
        &mut self,
        kind: StepKind,
        undo: Option<StepKind>,
        idempotent: bool,
        skip_if: Vec<crate::Check>,
    ) {
        let compensation = if read_only(&kind) {
            Compensation::Nothing
        } else if self.no_return.is_some() {
            Compensation::RollForward
        } else {
            match undo {
                Some(u) => Compensation::Undo { step: Box::new(u) },
                None => Compensation::Nothing,
            }
        };
        self.steps.push(Step {
            n: self.steps.len() + 1,
            kind,
            compensation,
            idempotent,
            skip_if,
        });
    }

    fn push(&mut self, kind: StepKind, undo: Option<StepKind>) {
        self.push_full(kind, undo, true, Vec::new());
    }

    fn audit(&mut self, stage: AuditStage) {
        self.push(StepKind::AuditRecord { stage }, None);
    }

    fn target(&mut self, op: TargetOp) {
        let engine = self.facts.target.engine;
        let undo = op.undo.map(|sql| StepKind::TargetDdl { engine, sql });
        let before_source = self.no_return.is_none();
        let kind = StepKind::TargetDdl {
            engine,
            sql: op.sql,
        };
        if before_source && undo.is_none() {
            // Nothing to undo it with: say so rather than pretend.
            self.steps.push(Step {
                n: self.steps.len() + 1,
                kind,
                compensation: Compensation::Manual {
                    reason: "the target change stays in place if the plan is abandoned (it is harmless to replication)".into(),
                },
                idempotent: op.idempotent,
                skip_if: op.skip_if,
            });
            return;
        }
        self.push_full(kind, undo, op.idempotent, op.skip_if);
    }

    fn targets(&mut self, ops: &[TargetOp]) {
        for op in ops {
            self.target(op.clone());
        }
    }

    /// The source DDL: the point of no return.
    fn source(&mut self, s: &Statement, mark: Option<&str>, in_quiesce_session: bool) {
        let transactional = !s.changes.iter().any(|c| match &c.change {
            Change::CreateIndex { concurrently, .. } | Change::DropIndex { concurrently, .. } => {
                *concurrently
            }
            _ => false,
        });
        if !in_quiesce_session {
            self.no_return = Some(self.steps.len() + 1);
        }
        self.push_full(
            StepKind::SourceDdl {
                sql: s.sql.clone(),
                lock_timeout_ms: self.facts.settings.lock_timeout_ms,
                retries: self.facts.settings.ddl_retries,
                transactional,
                mark: mark.map(str::to_string),
                in_quiesce_session,
            },
            None,
            false,
            Vec::new(),
        );
    }

    /// Change the target exactly where the source changed. When the change makes the next
    /// events carry a column the target lacks (RENAME COLUMN), the sink's `block` policy
    /// stops the table there: pause the connector, run the source DDL with a mark in its
    /// transaction, hold the sink's tables at the mark, resume, wait until the sink reached
    /// it, change the target, release. Otherwise nothing in the events marks the position
    /// (a type conversion): [`Builder::quiesced_change`].
    fn at_boundary(&mut self, s: &Statement, tables: &[QualifiedName], target: &[TargetOp]) {
        let drift = s
            .changes
            .iter()
            .all(|c| matches!(c.change, Change::RenameColumn { .. }));
        if !drift {
            self.quiesced_change(s, tables, target);
            return;
        }
        self.pause();
        self.source(s, Some(MARK), false);
        for t in tables {
            self.push(
                StepKind::HoldSinkTable {
                    table: t.clone(),
                    at_mark: Some(MARK.into()),
                    drift: true,
                    quiesced: false,
                },
                None,
            );
        }
        self.resume();
        self.wait(MARK, tables);
        self.targets(target);
        for t in tables {
            self.push(StepKind::ReleaseSinkTable { table: t.clone() }, None);
        }
    }

    /// Change the target exactly where the source changed when nothing in the events marks
    /// the position (a type conversion, a TRUNCATE the connector skips): quiesce the tables,
    /// drain them, hold them in the sink, run the source DDL in the quiesce session and
    /// commit it, change the target, release.
    fn quiesced_change(&mut self, s: &Statement, tables: &[QualifiedName], target: &[TargetOp]) {
        self.quiesce(tables);
        for t in tables {
            self.push(
                StepKind::HoldSinkTable {
                    table: t.clone(),
                    at_mark: None,
                    drift: false,
                    quiesced: true,
                },
                Some(StepKind::ReleaseSinkTable { table: t.clone() }),
            );
        }
        self.source(s, None, true);
        self.commit_quiesced(tables);
        self.targets(target);
        for t in tables {
            self.push(StepKind::ReleaseSinkTable { table: t.clone() }, None);
        }
    }

    /// Quiesce the tables (writes wait) and let the sink apply them up to a mark emitted
    /// after the locks: from there nothing of them is in flight.
    fn quiesce(&mut self, tables: &[QualifiedName]) {
        for t in tables {
            self.push(
                StepKind::QuiesceSourceTable {
                    table: t.clone(),
                    lock_timeout_ms: self.facts.settings.lock_timeout_ms,
                },
                Some(StepKind::ReleaseSourceTable {
                    table: t.clone(),
                    commit: false,
                }),
            );
        }
        self.mark(QUIESCED);
        // Writes to the tables wait meanwhile: a short bound of its own.
        self.wait_within(QUIESCED, tables, self.facts.settings.quiesce_timeout_ms);
    }

    /// Commit the quiesce sessions, and the DDL run in them: the point of no return.
    fn commit_quiesced(&mut self, tables: &[QualifiedName]) {
        self.no_return = Some(self.steps.len() + 1);
        for t in tables {
            self.push(
                StepKind::ReleaseSourceTable {
                    table: t.clone(),
                    commit: true,
                },
                None,
            );
        }
    }

    fn mark(&mut self, name: &str) {
        self.push(StepKind::MarkSourcePosition { mark: name.into() }, None);
    }

    fn wait(&mut self, name: &str, tables: &[QualifiedName]) {
        self.wait_within(name, tables, self.facts.settings.wait_timeout_ms);
    }

    fn wait_within(&mut self, name: &str, tables: &[QualifiedName], timeout_ms: u64) {
        self.push(
            StepKind::WaitSinkApplied {
                mark: name.into(),
                tables: tables.to_vec(),
                timeout_ms,
            },
            None,
        );
    }

    fn connectors(&self) -> Vec<String> {
        self.facts.source_connectors.clone()
    }

    fn pause(&mut self) {
        for c in self.connectors() {
            self.push(
                StepKind::PauseConnector {
                    connector: c.clone(),
                },
                Some(StepKind::ResumeConnector { connector: c }),
            );
        }
    }

    fn resume(&mut self) {
        for c in self.connectors() {
            self.push(StepKind::ResumeConnector { connector: c }, None);
        }
    }

    fn snapshot(
        &mut self,
        tables: &[QualifiedName],
        skip_if_empty: bool,
    ) -> Result<(), (PlanErrorKind, String)> {
        let Some(signal) = self.facts.signal_table.clone() else {
            return Err((
                PlanErrorKind::NeedsSignalTable,
                "this change needs an incremental snapshot of the table, and the pipeline names no signal table (Debezium's signal.data.collection); add one to the connector and the pipeline facts".into(),
            ));
        };
        let connector = self.connectors().into_iter().next().unwrap_or_default();
        let collections: Vec<String> = tables
            .iter()
            .map(|t| format!("\"{}\"", json_escape(&t.to_string())))
            .collect();
        let data = format!(
            "{{\"data-collections\": [{}], \"type\": \"incremental\"}}",
            collections.join(", ")
        );
        self.push(
            StepKind::IncrementalSnapshotSignal {
                connector: connector.clone(),
                signal_table: signal,
                data,
                tables: tables.to_vec(),
                skip_if_empty,
            },
            None,
        );
        self.push(
            StepKind::WaitSnapshotCompleted {
                connector,
                tables: tables.to_vec(),
                timeout_ms: self.facts.settings.wait_timeout_ms,
            },
            None,
        );
        Ok(())
    }

    fn verify_schema(&mut self, after: &[TableAfter]) {
        for a in after {
            let (table, expect) = match &a.schema {
                None => (self.facts.target_table(&a.table), Expectation::Absent),
                Some(t) => (
                    self.facts.target_table(&t.name),
                    Expectation::Columns {
                        columns: t
                            .columns
                            .iter()
                            .map(|c| ExpectedColumn {
                                name: c.name.clone(),
                                data_type: render::type_sql(self.facts.target.engine, &c.data_type)
                                    .ok(),
                                nullable: c.nullable,
                            })
                            .collect(),
                        primary_key: t.primary_key.clone(),
                    },
                ),
            };
            self.push(StepKind::VerifyTargetSchema { table, expect }, None);
        }
    }

    fn verify_rows(&mut self, tables: &[QualifiedName]) {
        for t in tables {
            self.push(
                StepKind::VerifyRows {
                    source_table: t.clone(),
                    target_table: self.facts.target_table(t),
                },
                None,
            );
        }
    }

    fn include(&mut self, add: &[QualifiedName], remove: &[QualifiedName]) {
        for c in self.connectors() {
            let add: Vec<String> = add.iter().map(|t| t.to_string()).collect();
            let remove: Vec<String> = remove.iter().map(|t| t.to_string()).collect();
            let undo = StepKind::UpdateConnectorConfig {
                connector: c.clone(),
                key: INCLUDE_LIST.into(),
                add: remove.clone(),
                remove: add.clone(),
            };
            self.push(
                StepKind::UpdateConnectorConfig {
                    connector: c,
                    key: INCLUDE_LIST.into(),
                    add,
                    remove,
                },
                Some(undo),
            );
        }
    }
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn error(s: &Statement, kind: PlanErrorKind, message: impl Into<String>) -> PlanError {
    PlanError {
        statement: s.index,
        kind,
        message: message.into(),
    }
}

fn summary(s: &Statement) -> String {
    let mut classes: Vec<&str> = Vec::new();
    for c in &s.changes {
        let n = c.change.class_name();
        if !classes.contains(&n) {
            classes.push(n);
        }
    }
    let tables: Vec<String> = s.tables.iter().map(|t| t.to_string()).collect();
    let mut out = classes.join(" + ");
    if !tables.is_empty() {
        out.push_str(" on ");
        out.push_str(&tables.join(", "));
    } else if let Some(Change::CreateView { view, .. } | Change::DropView { view }) =
        s.changes.first().map(|c| &c.change)
    {
        out.push_str(&format!(" {view}"));
    }
    out.push_str(&format!(" ({}, {})", s.strategy, s.risk.level));
    out
}

/// Plan one classified statement for this pipeline.
pub fn plan_statement(
    s: &Statement,
    engine: Engine,
    facts: &PipelineFacts,
) -> Result<Plan, PlanError> {
    if facts.source_connectors.is_empty() {
        return Err(error(
            s,
            PlanErrorKind::NoConnector,
            "the pipeline facts name no source connector",
        ));
    }
    let creates: Vec<&QualifiedName> = s
        .changes
        .iter()
        .filter_map(|c| match &c.change {
            Change::CreateTable { table, .. } => Some(table),
            _ => None,
        })
        .collect();
    for t in &s.tables {
        if facts.signal_table.as_ref() == Some(t) {
            return Err(error(
                s,
                PlanErrorKind::SignalTable,
                format!("{t} is the connector's signal table: lockstep does not change it"),
            ));
        }
        if !creates.contains(&t) && !facts.has_table(t) {
            return Err(error(
                s,
                PlanErrorKind::OutsidePipeline,
                format!("table {t} is not one of the pipeline's tables"),
            ));
        }
    }
    let mut work = TargetWork::default();
    for c in &s.changes {
        let w = render::target_work(&c.change, engine, facts)
            .map_err(|(kind, m)| error(s, kind, format!("{}: {m}", c.change.class_name())))?;
        work.before.extend(w.before);
        work.after.extend(w.after);
        work.notes.extend(w.notes);
        work.snapshot |= w.snapshot;
        work.verify_rows |= w.verify_rows;
    }
    let needs_hold = matches!(s.strategy, Strategy::Boundary | Strategy::RenameTable)
        || (s.strategy == Strategy::Truncate && !facts.emits_truncate);
    if needs_hold {
        if let SinkKind::Connect { connector } = &facts.sink {
            return Err(error(
                s,
                PlanErrorKind::NeedsLockstepSink,
                format!(
                    "{} must reach the target exactly at its position in the change stream, which needs a sink that can hold a table at a source position (lockstep's sink); the Connect sink connector {connector} cannot",
                    summary(s)
                ),
            ));
        }
    }

    let mut b = Builder::new(facts);
    let tables = s.tables.clone();
    let mut notes = work.notes.clone();
    b.audit(AuditStage::Begin);
    let r = |e: (PlanErrorKind, String)| error(s, e.0, e.1);
    match s.strategy {
        Strategy::TargetFirst => {
            b.targets(&work.before);
            b.source(s, None, false);
            b.targets(&work.after);
        }
        Strategy::SourceOnly => {
            b.source(s, None, false);
        }
        Strategy::ExpandContract => {
            b.targets(&work.before);
            b.source(s, None, false);
            b.mark(MARK);
            b.wait(MARK, &tables);
            if work.snapshot {
                b.snapshot(&tables, false).map_err(r)?;
            }
            b.targets(&work.after);
        }
        Strategy::Boundary => {
            b.targets(&work.before);
            b.at_boundary(s, &tables, &work.after);
            if work.snapshot {
                b.snapshot(&tables, false).map_err(r)?;
            }
            let quiesced = b
                .steps
                .iter()
                .any(|s| matches!(s.kind, StepKind::QuiesceSourceTable { .. }));
            notes.push(if quiesced {
                "writes to the table wait (reads go on) from the quiesce until the source DDL commits; the sink holds the table from there until the target has changed".into()
            } else {
                "the connector is paused only while the source DDL runs; the sink holds the table from the DDL's position until the target has changed".into()
            });
        }
        Strategy::KeyChange => {
            b.quiesce(&tables);
            for c in b.connectors() {
                b.push(
                    StepKind::StopConnector {
                        connector: c.clone(),
                    },
                    Some(StepKind::RestartConnector { connector: c }),
                );
            }
            b.source(s, None, true);
            b.commit_quiesced(&tables);
            b.targets(&work.before);
            b.targets(&work.after);
            for c in b.connectors() {
                b.push(StepKind::RestartConnector { connector: c }, None);
            }
            b.snapshot(&tables, false).map_err(r)?;
            work.verify_rows = true;
            notes.push("writes to the table wait (reads go on) from the quiesce until the source DDL commits; Debezium reads primary keys over JDBC, so the connector is stopped across the change and restarted to read the new key".into());
        }
        Strategy::CreateTable => {
            b.targets(&work.before);
            b.include(&tables, &[]);
            for t in &tables {
                if facts.sink == SinkKind::Lockstep {
                    b.push(
                        StepKind::AddSinkTable {
                            source_table: t.clone(),
                            topic: facts.topic(t),
                            target_table: facts.target_table(t),
                            held: false,
                        },
                        Some(StepKind::RemoveSinkTable {
                            source_table: t.clone(),
                            topic: facts.topic(t),
                        }),
                    );
                }
            }
            b.source(s, None, false);
            if let Some(p) = facts.publication.as_ref().filter(|p| !p.all_tables) {
                b.push(
                    StepKind::UpdatePublication {
                        publication: p.name.clone(),
                        add: tables.clone(),
                        remove: Vec::new(),
                    },
                    None,
                );
            }
            b.snapshot(&tables, true).map_err(r)?;
            if let SinkKind::Connect { connector } = &facts.sink {
                notes.push(format!(
                    "the sink connector {connector} must read the new topic ({}): check its topics / topics.regex",
                    tables.iter().map(|t| facts.topic(t)).collect::<Vec<_>>().join(", ")
                ));
            }
            notes.push("rows written before the table joins the publication are copied by the incremental snapshot (skipped while the table is empty)".into());
        }
        Strategy::DropTable => {
            b.source(s, None, false);
            b.mark(MARK);
            b.wait(MARK, &tables);
            b.targets(&work.after);
            for t in &tables {
                if facts.sink == SinkKind::Lockstep {
                    b.push(
                        StepKind::RemoveSinkTable {
                            source_table: t.clone(),
                            topic: facts.topic(t),
                        },
                        None,
                    );
                }
            }
            b.include(&[], &tables);
        }
        Strategy::RenameTable => {
            let renames: Vec<(QualifiedName, QualifiedName)> = s
                .changes
                .iter()
                .filter_map(|c| match &c.change {
                    Change::RenameTable { table, new_name } => Some((
                        table.clone(),
                        QualifiedName::new(table.schema.clone(), new_name.clone()),
                    )),
                    _ => None,
                })
                .collect();
            let new: Vec<QualifiedName> = renames.iter().map(|(_, n)| n.clone()).collect();
            b.include(&new, &[]);
            for (_, n) in &renames {
                b.push(
                    StepKind::AddSinkTable {
                        source_table: n.clone(),
                        topic: facts.topic(n),
                        target_table: TargetTable {
                            schema: facts.target.schema.clone(),
                            name: n.name.clone(),
                        },
                        held: true,
                    },
                    Some(StepKind::RemoveSinkTable {
                        source_table: n.clone(),
                        topic: facts.topic(n),
                    }),
                );
            }
            // The include-list change restarted the connector. Debezium reads a table's key
            // columns by its name when it first decodes the table after a start, so a change
            // made under the old name and decoded after the rename committed would lose its
            // key. Quiesced and drained, the table has no such change: every one made under
            // the old name is applied before the rename, which runs in the quiesce session;
            // the old topic ends there, and the new one is held until the target is renamed.
            b.quiesce(&tables);
            b.source(s, None, true);
            b.commit_quiesced(&tables);
            b.targets(&work.after);
            for (old, n) in &renames {
                b.push(StepKind::ReleaseSinkTable { table: n.clone() }, None);
                b.push(
                    StepKind::RemoveSinkTable {
                        source_table: old.clone(),
                        topic: facts.topic(old),
                    },
                    None,
                );
            }
            b.include(&[], &tables);
            notes.push("events under the new name go to a new topic: the sink holds it until the target table is renamed, after the old topic is applied up to the rename".into());
        }
        Strategy::Truncate => {
            if facts.emits_truncate {
                b.source(s, None, false);
                b.mark(MARK);
                b.wait(MARK, &tables);
                notes.push("the connector emits TRUNCATE events and the sink applies them in order: nothing to mirror by hand".into());
            } else {
                // Nothing in the stream marks where a skipped TRUNCATE was.
                b.quiesced_change(s, &tables, &work.after);
                notes.push("writes to the table wait (reads go on) from the quiesce until the source TRUNCATE commits; the sink holds the table from there until the target is truncated".into());
            }
        }
    }
    if s.concurrency == Concurrency::Structural
        || matches!(s.strategy, Strategy::DropTable | Strategy::CreateTable)
    {
        b.verify_schema(&s.after);
    }
    if work.verify_rows {
        let alive: Vec<QualifiedName> = s
            .after
            .iter()
            .filter_map(|a| a.schema.as_ref().map(|t| t.name.clone()))
            .collect();
        b.verify_rows(&alive);
    }
    b.audit(AuditStage::End);
    let point_of_no_return = b.no_return.unwrap_or(0);
    Ok(Plan {
        statement: s.index,
        sql: s.sql.clone(),
        summary: summary(s),
        risk: s.risk.clone(),
        strategy: s.strategy,
        concurrency: s.concurrency,
        tables,
        steps: b.steps,
        point_of_no_return,
        source_after: s.after.clone(),
        notes,
    })
}
