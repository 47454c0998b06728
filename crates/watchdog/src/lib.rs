//! lockstep's watchdog core. Everything here is a pure function over data: the Connect REST
//! calls, SQL queries and the clock live in the adapter (`lockstep watch`, `lockstep serve
//! --watch`), which feeds observations in and carries the returned actions out.
//!
//! * [`classify`]: a FAILED task's Java trace → retriable or permanent, with cause and fix.
//! * [`policy`]: restart policy (exponential backoff with injected jitter, a Strimzi-like cap,
//!   a circuit breaker) and [`policy::decide`], the reconcile step: observed state + memory →
//!   actions + new memory. Permanent failures are never restarted; they raise one alert.
//! * [`health`]: stuck detection (RUNNING but frozen while the source moves) and PostgreSQL
//!   replication-slot WAL retention.
//! * [`streaming`]: RUNNING but not streaming (a Debezium PostgreSQL connector whose slot is
//!   unused past a grace period) and its cause from a login with the connector's credentials.
//! * [`lag`]: Burrow-style consumer lag status and offset→time interpolation (lag in seconds).
//! * [`tune`]: the bounded auto-tuning controller (steps, cool-down, limits, hysteresis).
//! * [`metrics`]: the watchdog's Prometheus families (`lockstep_watchdog_*`).
//!
//! Time is milliseconds since the Unix epoch (`u64`), passed in, so every decision is
//! reproducible in a test.

#![forbid(unsafe_code)]

pub mod classify;
pub mod health;
pub mod lag;
pub mod metrics;
pub mod policy;
pub mod streaming;
pub mod tune;

pub use classify::{classify, Cause, Classification, FailureKind};
pub use metrics::WatchdogMetrics;
pub use policy::{
    decide, Action, Alert, AlertKind, ConnectorKey, ObservedConnector, ObservedState, ObservedTask,
    PolicyState, RestartPolicy,
};
