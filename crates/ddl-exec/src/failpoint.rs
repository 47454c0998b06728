//! A test hook: stop the executor dead at one step, so a test can SIGKILL the process at
//! exactly that point and check that a restart resumes or compensates the operation.
//!
//! `LOCKSTEP_FAILPOINT=<step_kind>:<before|after>` (for example `source_ddl:after`). When the
//! executor reaches the first step of that kind of an operation it has persisted the step
//! `Running`, then:
//! - `before`: before the step's action runs;
//! - `after`: after the action ran, before its completion is persisted,
//!
//! it prints one line `failpoint reached: ...` to stderr and waits for ever (the process is
//! still alive, its other tasks still run; the test kills it). Unset: no effect. A value that
//! does not parse is an error when the process starts (`lockstep ddl ...`, `lockstep serve`),
//! never ignored. Only for tests: nothing else sets it.

use crate::error::ExecError;

/// The environment variable.
pub const ENV: &str = "LOCKSTEP_FAILPOINT";

/// Every step kind, as plans serialise it (`StepKind`'s serde tag). A unit test checks this
/// list against the enum.
pub const STEP_KINDS: &[&str] = &[
    "audit_record",
    "source_ddl",
    "target_ddl",
    "mark_source_position",
    "wait_sink_applied",
    "pause_connector",
    "resume_connector",
    "stop_connector",
    "restart_connector",
    "hold_sink_table",
    "release_sink_table",
    "quiesce_source_table",
    "release_source_table",
    "update_connector_config",
    "update_publication",
    "add_sink_table",
    "remove_sink_table",
    "incremental_snapshot_signal",
    "wait_snapshot_completed",
    "verify_target_schema",
    "verify_rows",
];

/// Where, around a step's action, the failpoint stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The step is persisted Running; its action has not run.
    Before,
    /// The action ran; its completion is not persisted.
    After,
}

impl When {
    pub fn as_str(self) -> &'static str {
        match self {
            When::Before => "before",
            When::After => "after",
        }
    }
}

/// A parsed `LOCKSTEP_FAILPOINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failpoint {
    pub kind: String,
    pub when: When,
}

/// Parse `<step_kind>:<before|after>` (pure). The error says what is expected.
pub fn parse(value: &str) -> Result<Failpoint, String> {
    let (kind, when) = value.trim().split_once(':').ok_or_else(|| {
        format!("'{value}' is not <step_kind>:<before|after> (for example source_ddl:after)")
    })?;
    let when = match when {
        "before" => When::Before,
        "after" => When::After,
        other => {
            return Err(format!(
                "'{other}' in '{value}' is neither `before` nor `after`"
            ))
        }
    };
    if !STEP_KINDS.contains(&kind) {
        return Err(format!(
            "'{kind}' in '{value}' is not a step kind; one of: {}",
            STEP_KINDS.join(", ")
        ));
    }
    Ok(Failpoint {
        kind: kind.to_string(),
        when,
    })
}

/// The failpoint the environment sets, if any; a bad value is an error.
pub fn from_env() -> Result<Option<Failpoint>, ExecError> {
    match std::env::var(ENV) {
        Ok(v) => parse(&v).map(Some).map_err(|reason| ExecError::Failpoint {
            reason: format!("{ENV}: {reason}; unset it outside tests"),
        }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ExecError::Failpoint {
            reason: format!("{ENV} is not valid UTF-8; unset it outside tests"),
        }),
    }
}

impl Failpoint {
    /// Whether this failpoint stops at `when` around a step of `kind` (pure).
    pub fn matches(&self, kind: &str, when: When) -> bool {
        self.kind == kind && self.when == when
    }

    /// Print the line the test waits for, then wait for ever (for the SIGKILL): never returns.
    pub async fn stop(&self, operation: i64, step: usize) {
        eprintln!(
            "failpoint reached: {}:{} at operation {operation} step {step}",
            self.kind,
            self.when.as_str()
        );
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kind_and_when_and_refuses_the_rest() {
        assert_eq!(
            parse("source_ddl:after"),
            Ok(Failpoint {
                kind: "source_ddl".into(),
                when: When::After
            })
        );
        assert_eq!(
            parse(" pause_connector:before\n").map(|f| f.when),
            Ok(When::Before)
        );
        for bad in [
            "",
            "source_ddl",
            "source_ddl:",
            "source_ddl:during",
            ":after",
            "sourceddl:after",
            "Source_DDL:after",
            "source_ddl:after:1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = parse("nope:after").unwrap_err();
        assert!(e.contains("release_sink_table"), "{e}");
    }

    #[test]
    fn matches_kind_and_when_only() {
        let f = parse("hold_sink_table:after").unwrap();
        assert!(f.matches("hold_sink_table", When::After));
        assert!(!f.matches("hold_sink_table", When::Before));
        assert!(!f.matches("release_sink_table", When::After));
    }

    /// The list is StepKind's variants exactly: serde names them when it meets an unknown one.
    #[test]
    fn step_kinds_are_the_plan_step_kinds() {
        let e = serde_json::from_value::<lockstep_ddl_plan::StepKind>(
            serde_json::json!({"kind": "no_such_kind"}),
        )
        .unwrap_err()
        .to_string();
        let listed: Vec<&str> = e
            .split("expected one of ")
            .nth(1)
            .unwrap_or_default()
            .split(", ")
            .map(|s| {
                s.trim()
                    .trim_matches('`')
                    .trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_')
                    .trim_matches('`')
            })
            .collect();
        let mut want: Vec<&str> = STEP_KINDS.to_vec();
        let mut got = listed.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "serde said: {e}");
    }
}
