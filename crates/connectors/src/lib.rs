//! Connectors as code: the desired state of a Kafka Connect cluster kept in files, compared with
//! the live cluster, and applied safely.
//!
//! * [`manifest`]: one file per connector (YAML or JSON), a directory per Connect cluster,
//!   overlays per environment (`base/` + `overlays/<env>/`) and `${var:NAME}` variables.
//!   Loading is all or nothing; every error names the file and the field.
//! * [`plan`]: the pure diff of desired against live configurations: create / update / delete /
//!   unchanged per connector and a per-key diff whose values are display-safe (secrets masked).
//! * [`apply`]: the executor over [`lockstep_connect::ConnectClient`]: validates every config
//!   that would change first and changes nothing when one is invalid; then applies in a stable
//!   order and waits for each connector's expected state.
//! * [`export`]: live configurations as manifests; literal secrets never written in clear.
//! * [`drift`]: the plan seen as drift, once (CLI) or in a loop that reports and optionally
//!   reverts (service); the audit records each check calls for are decided here (pure) and
//!   appended to the store by the caller.
//! * [`metrics`]: the drift loop's Prometheus families (`lockstep_connectors_*`), registered
//!   in the service's one registry.
//!
//! # Invariants
//!
//! * Config-provider placeholders (`${file:...}`, `${env:...}`, `${directory:...}`) are kept
//!   verbatim everywhere: never resolved, and compared like for like, since Connect's
//!   `GET /connectors/{name}/config` returns them unresolved too.
//! * No secret value appears in a plan, a report, an error or a log line: every value that
//!   leaves this crate for display goes through [`lockstep_connect::mask_value`].
//! * `${var:NAME}` is lockstep's own substitution, done at load time; an undefined variable is
//!   a load error, never an empty string.
//! * Nothing is deleted unless pruning was asked for.

#![forbid(unsafe_code)]

pub mod apply;
pub mod drift;
pub mod export;
pub mod manifest;
pub mod metrics;
pub mod plan;
mod vars;

pub use apply::{
    apply, fetch_live, live_configs, validate_changes, ApplyError, ApplyOptions, ApplyOutcome,
    ApplyReport, InvalidConfig, LiveConnector, OutcomeStatus,
};
pub use drift::{
    audit_events, DriftAuditEvent, DriftCheck, DriftReport, DriftStatus, DriftWatcher, AUDIT_ACTOR,
};
pub use export::{export_manifest, ExportedManifest};
pub use manifest::{
    load, load_file, parse_var_assignment, LoadOptions, Location, Manifest, ManifestError,
    ManifestSet, Problem, Suppression,
};
pub use metrics::DriftMetrics;
pub use plan::{diff_configs, plan, Action, ConnectorPlan, KeyChange, KeyDiff, Plan, PlanSummary};
pub use vars::substitute;
