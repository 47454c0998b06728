//! The auto-tuner: a bounded feedback controller that moves a pipeline's throughput knobs to
//! keep its p99 lag under the SLO at the lowest cost.
//!
//! The knobs are documented parameters, each with a direction: larger `max.batch.size`,
//! `max.queue.size` (Debezium) and sink `batch.max_rows` raise throughput; smaller
//! `poll.interval.ms` (Debezium) and sink `linger_ms` lower latency. The controller moves all of
//! a pipeline's knobs together by one multiplicative step, so "one level up" and "one level
//! down" are symmetric.
//!
//! Stability, by construction:
//! * **hysteresis**: scale up only when p99 lag exceeds `scale_up_above` × SLO (or the pipeline
//!   is saturated); scale down only when the lag is below `scale_down_below` × SLO *and* the
//!   utilisation predicted after the step stays under `max_utilisation_after_down`: a step
//!   down that would saturate the pipeline again (and come straight back up) is never taken;
//! * **bounded steps**: each change multiplies by at most `step` (e.g. 1.5), and every value is
//!   clamped to its hard `[min, max]`;
//! * **cool-down**: no change within `cooldown_ms` of the last one, and a reversal of direction
//!   waits `reversal_cooldown_ms`;
//! * Debezium requires `max.queue.size` > `max.batch.size`: the plan keeps it so.
//!
//! [`Tuner::step`] is pure: it returns the changes (with the old value, so each is revertible)
//! and the new state. `recommend_only` makes the adapter print them instead of applying them.

use std::collections::BTreeMap;

use serde::Serialize;

/// Which way a knob raises throughput.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger value → more throughput (batch and queue sizes).
    Larger,
    /// Smaller value → more throughput / less latency (poll interval, linger).
    Smaller,
}

/// One tunable parameter with its hard limits.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Knob {
    /// The configuration key: `max.batch.size`, `max.queue.size`, `poll.interval.ms`,
    /// `batch.max_rows`, `batch.linger_ms`.
    pub name: String,
    pub direction: Direction,
    pub min: u64,
    pub max: u64,
}

impl Knob {
    pub fn new(name: &str, direction: Direction, min: u64, max: u64) -> Self {
        Self {
            name: name.into(),
            direction,
            min: min.min(max),
            max: max.max(min),
        }
    }

    /// Debezium's documented source knobs with conservative limits.
    pub fn debezium_defaults() -> Vec<Knob> {
        vec![
            Knob::new("max.batch.size", Direction::Larger, 256, 16_384),
            Knob::new("max.queue.size", Direction::Larger, 1_024, 65_536),
            Knob::new("poll.interval.ms", Direction::Smaller, 50, 1_000),
        ]
    }

    /// The sink's batch knobs.
    pub fn sink_defaults() -> Vec<Knob> {
        vec![
            Knob::new("batch.max_rows", Direction::Larger, 100, 50_000),
            Knob::new("batch.linger_ms", Direction::Smaller, 5, 1_000),
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TunerConfig {
    pub slo_p99_seconds: f64,
    pub scale_up_above: f64,
    pub scale_down_below: f64,
    pub saturated_utilisation: f64,
    pub max_utilisation_after_down: f64,
    /// Multiplicative step (> 1).
    pub step: f64,
    pub cooldown_ms: u64,
    pub reversal_cooldown_ms: u64,
    pub knobs: Vec<Knob>,
}

impl TunerConfig {
    pub fn new(slo_p99_seconds: f64, knobs: Vec<Knob>) -> Self {
        Self {
            slo_p99_seconds,
            scale_up_above: 0.8,
            scale_down_below: 0.3,
            saturated_utilisation: 0.95,
            max_utilisation_after_down: 0.7,
            step: 1.5,
            cooldown_ms: 60_000,
            reversal_cooldown_ms: 300_000,
            knobs,
        }
    }
}

/// What the tuner sees each cycle.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TunerObservation {
    pub now_ms: u64,
    /// p99 end-to-end lag over the last window, seconds.
    pub p99_lag_seconds: f64,
    /// Fraction of time the pipeline was busy (0..=1), e.g. the sink's batch time per second or
    /// 1 − Debezium's QueueRemainingCapacity / max.queue.size.
    pub utilisation: f64,
}

/// The tuner's memory: current values and the last change.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TunerState {
    pub values: BTreeMap<String, u64>,
    pub last_change_ms: Option<u64>,
    pub last_up: Option<bool>,
}

/// One parameter change; `from` makes it revertible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TuningChange {
    pub param: String,
    pub from: u64,
    pub to: u64,
    pub reason: String,
}

impl TuningChange {
    pub fn direction(&self) -> &'static str {
        if self.to > self.from {
            "increase"
        } else {
            "decrease"
        }
    }

    pub fn revert(&self) -> TuningChange {
        TuningChange {
            param: self.param.clone(),
            from: self.to,
            to: self.from,
            reason: format!("revert of: {}", self.reason),
        }
    }
}

pub struct Tuner {
    pub config: TunerConfig,
}

impl Tuner {
    pub fn new(config: TunerConfig) -> Self {
        Self { config }
    }

    /// One control step. Values missing from `state` start at the knob's current value given
    /// in `state.values` by the adapter; unknown knobs are left alone.
    pub fn step(
        &self,
        state: &TunerState,
        obs: &TunerObservation,
    ) -> (Vec<TuningChange>, TunerState) {
        let c = &self.config;
        let mut next = state.clone();
        if !(obs.p99_lag_seconds.is_finite() && obs.utilisation.is_finite()) {
            return (Vec::new(), next);
        }
        let lag_ratio = obs.p99_lag_seconds / c.slo_p99_seconds.max(f64::MIN_POSITIVE);
        let up = lag_ratio > c.scale_up_above || obs.utilisation >= c.saturated_utilisation;
        let predicted_after_down = obs.utilisation * c.step;
        let down = !up
            && lag_ratio < c.scale_down_below
            && predicted_after_down <= c.max_utilisation_after_down;
        if !up && !down {
            return (Vec::new(), next);
        }
        if let Some(last) = state.last_change_ms {
            let wait = if state.last_up == Some(up) {
                c.cooldown_ms
            } else {
                c.reversal_cooldown_ms
            };
            if obs.now_ms.saturating_sub(last) < wait {
                return (Vec::new(), next);
            }
        }
        let reason = if up {
            format!(
                "p99 lag {:.2}s vs SLO {:.2}s, utilisation {:.0}%: raise throughput",
                obs.p99_lag_seconds,
                c.slo_p99_seconds,
                obs.utilisation * 100.0
            )
        } else {
            format!(
                "p99 lag {:.2}s well under SLO {:.2}s, utilisation {:.0}%: lower cost",
                obs.p99_lag_seconds,
                c.slo_p99_seconds,
                obs.utilisation * 100.0
            )
        };
        let step = c.step.max(1.0);
        let mut changes = Vec::new();
        for knob in &c.knobs {
            let Some(&from) = state.values.get(&knob.name) else {
                continue;
            };
            let grow = matches!(
                (up, knob.direction),
                (true, Direction::Larger) | (false, Direction::Smaller)
            );
            let raw = if grow {
                (from as f64 * step).ceil()
            } else {
                (from as f64 / step).floor()
            };
            let to = (raw.clamp(0.0, u64::MAX as f64) as u64).clamp(knob.min, knob.max);
            next.values.insert(knob.name.clone(), to);
        }
        // Debezium: max.queue.size must stay larger than max.batch.size.
        if let (Some(&batch), Some(&queue)) = (
            next.values.get("max.batch.size"),
            next.values.get("max.queue.size"),
        ) {
            if queue <= batch {
                let limit = c
                    .knobs
                    .iter()
                    .find(|k| k.name == "max.queue.size")
                    .map_or(u64::MAX, |k| k.max);
                let queue = batch.saturating_mul(2).min(limit).max(batch + 1);
                next.values.insert("max.queue.size".into(), queue);
            }
        }
        for knob in &c.knobs {
            let (Some(&from), Some(&to)) =
                (state.values.get(&knob.name), next.values.get(&knob.name))
            else {
                continue;
            };
            if from != to {
                changes.push(TuningChange {
                    param: knob.name.clone(),
                    from,
                    to,
                    reason: reason.clone(),
                });
            }
        }
        if !changes.is_empty() {
            next.last_change_ms = Some(obs.now_ms);
            next.last_up = Some(up);
        }
        (changes, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn tuner() -> Tuner {
        let mut config = TunerConfig::new(5.0, Knob::debezium_defaults());
        config.cooldown_ms = 10_000;
        config.reversal_cooldown_ms = 60_000;
        Tuner::new(config)
    }

    #[test]
    fn decisions_table() {
        let t = tuner();
        let start = TunerState {
            values: values(&[
                ("max.batch.size", 2048),
                ("max.queue.size", 8192),
                ("poll.interval.ms", 500),
            ]),
            ..TunerState::default()
        };
        // (name, lag, utilisation, expected batch size after the step)
        let cases: &[(&str, f64, f64, u64)] = &[
            ("inside the band: nothing", 3.0, 0.5, 2048),
            ("lag over 80% of the SLO: up", 4.5, 0.5, 3072),
            ("saturated even with low lag: up", 0.5, 0.97, 3072),
            ("low lag, low utilisation: down", 0.5, 0.2, 1365),
            (
                "low lag but a step down would saturate: hold",
                0.5,
                0.6,
                2048,
            ),
            ("garbage input: hold", f64::NAN, 0.2, 2048),
        ];
        for (name, lag, util, want) in cases {
            let (_, next) = t.step(
                &start,
                &TunerObservation {
                    now_ms: 0,
                    p99_lag_seconds: *lag,
                    utilisation: *util,
                },
            );
            assert_eq!(next.values["max.batch.size"], *want, "{name}");
        }
    }

    #[test]
    fn limits_cooldown_queue_invariant_and_revert() {
        let t = tuner();
        let mut state = TunerState {
            values: values(&[
                ("max.batch.size", 16_000),
                ("max.queue.size", 16_001),
                ("poll.interval.ms", 60),
            ]),
            ..TunerState::default()
        };
        let hot = |now_ms| TunerObservation {
            now_ms,
            p99_lag_seconds: 60.0,
            utilisation: 1.0,
        };
        let (changes, next) = t.step(&state, &hot(0));
        assert_eq!(next.values["max.batch.size"], 16_384, "clamped at max");
        assert_eq!(next.values["poll.interval.ms"], 50, "clamped at min");
        assert!(next.values["max.queue.size"] > next.values["max.batch.size"]);
        assert!(changes
            .iter()
            .all(|c| c.reason.contains("raise throughput")));
        let revert: Vec<_> = changes.iter().map(TuningChange::revert).collect();
        for (c, r) in changes.iter().zip(&revert) {
            assert_eq!((r.from, r.to), (c.to, c.from));
        }
        state = next;
        let (changes, _) = t.step(&state, &hot(5_000));
        assert!(changes.is_empty(), "cool-down");
        // A reversal waits the longer cool-down.
        let cold = |now_ms| TunerObservation {
            now_ms,
            p99_lag_seconds: 0.1,
            utilisation: 0.1,
        };
        assert!(t.step(&state, &cold(30_000)).0.is_empty());
        assert!(!t.step(&state, &cold(60_000)).0.is_empty());
    }

    /// A simple plant: records arrive at `load` per second; the connector drains a batch per
    /// cycle, each cycle costing a fixed overhead, the poll interval and a per-record time.
    /// Lag is the backlog's drain time plus the poll interval.
    struct Plant {
        backlog: f64,
    }

    impl Plant {
        fn capacity(values: &BTreeMap<String, u64>) -> f64 {
            let batch = values["max.batch.size"] as f64;
            let poll = values["poll.interval.ms"] as f64 / 1000.0;
            batch / (0.02 + poll + batch * 0.000_2)
        }

        /// Advances one second; returns (p99 lag, utilisation).
        fn tick(&mut self, load: f64, values: &BTreeMap<String, u64>) -> (f64, f64) {
            let cap = Self::capacity(values);
            self.backlog = (self.backlog + load - cap).max(0.0);
            let poll = values["poll.interval.ms"] as f64 / 1000.0;
            let lag = self.backlog / cap + poll;
            let utilisation = if self.backlog > 0.0 {
                1.0
            } else {
                (load / cap).min(1.0)
            };
            (lag, utilisation)
        }
    }

    /// A closed-loop run: the plant under `load_at(second)` for `end` seconds, one tuner step
    /// a second (5 s SLO, 30 s cool-down, 5 min before a reversal, from Debezium's defaults).
    struct Run {
        /// (second, direction) of each max.batch.size change.
        history: Vec<(u64, &'static str)>,
        /// The lag and the plant's capacity after each second.
        lags: Vec<f64>,
        capacity: Vec<f64>,
        /// The knobs at the end.
        values: BTreeMap<String, u64>,
    }

    /// Runs the loop; after every step the knobs are within their limits and
    /// max.queue.size > max.batch.size (`name` names the run when that fails).
    fn simulate(name: &str, end: u64, load_at: impl Fn(u64) -> f64) -> Run {
        let t = Tuner::new(TunerConfig {
            cooldown_ms: 30_000,
            reversal_cooldown_ms: 300_000,
            ..TunerConfig::new(5.0, Knob::debezium_defaults())
        });
        let mut state = TunerState {
            values: values(&[
                ("max.batch.size", 2048),
                ("max.queue.size", 8192),
                ("poll.interval.ms", 500),
            ]),
            ..TunerState::default()
        };
        let mut plant = Plant { backlog: 0.0 };
        let mut history = Vec::new();
        let mut lags = Vec::new();
        let mut capacity = Vec::new();
        for second in 0..end {
            let (lag, util) = plant.tick(load_at(second), &state.values);
            lags.push(lag);
            let (changes, next) = t.step(
                &state,
                &TunerObservation {
                    now_ms: second * 1000,
                    p99_lag_seconds: lag,
                    utilisation: util,
                },
            );
            for c in changes.iter().filter(|c| c.param == "max.batch.size") {
                history.push((second, c.direction()));
            }
            for knob in &t.config.knobs {
                let v = next.values[&knob.name];
                assert!(
                    v >= knob.min && v <= knob.max,
                    "{name}: {} = {v} out of limits",
                    knob.name
                );
            }
            assert!(
                next.values["max.queue.size"] > next.values["max.batch.size"],
                "{name}: queue <= batch"
            );
            state = next;
            capacity.push(Plant::capacity(&state.values));
        }
        Run {
            history,
            lags,
            capacity,
            values: state.values,
        }
    }

    #[test]
    fn converges_after_a_load_step_without_oscillating() {
        // 1,000 records/s, then a step to 4,000 records/s at t = 10 min.
        let Run {
            history,
            lags,
            values,
            ..
        } = simulate("load step", 3_600, |second| {
            if second < 600 {
                1_000.0
            } else {
                4_000.0
            }
        });
        // It reacted to the step.
        assert!(
            history.iter().any(|(s, d)| *s >= 600 && *d == "increase"),
            "{history:?}"
        );
        // It settles: no change in the last 30 minutes, and the lag is within the SLO there.
        assert!(history.iter().all(|(s, _)| *s < 1_800), "{history:?}");
        assert!(
            lags[1_800..].iter().all(|l| *l <= 5.0),
            "lag max {:?}",
            lags[1_800..].iter().cloned().fold(0.0, f64::max)
        );
        // No oscillation: after the load step the direction changes at most once.
        let after: Vec<&str> = history
            .iter()
            .filter(|(s, _)| *s >= 600)
            .map(|(_, d)| *d)
            .collect();
        let reversals = after.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(reversals <= 1, "{history:?}");
        // And the pipeline can carry the load it settled on.
        assert!(Plant::capacity(&values) >= 4_000.0, "{values:?}");
    }

    /// One load profile: `(from second, records/s)` phases, each longer than 30 minutes.
    struct Profile {
        name: &'static str,
        phases: &'static [(u64, f64)],
        end: u64,
    }

    /// Load steps up *and* down, from several starting points: after every load change the
    /// tuner settles (no change in the phase's last 20 minutes, lag within the SLO there), never
    /// reverses direction more than once inside a phase, stays within the limits, and after a
    /// step down it gives capacity back (lower cost) without dropping below the load.
    #[test]
    fn load_profiles_converge_up_and_down_without_oscillating() {
        const SETTLED: u64 = 1_200;
        let profiles = [
            Profile {
                name: "step up then down",
                phases: &[(0, 1_000.0), (1_800, 4_000.0), (5_400, 1_000.0)],
                end: 9_000,
            },
            Profile {
                name: "small step up then down",
                phases: &[(0, 500.0), (1_800, 1_500.0), (5_400, 500.0)],
                end: 9_000,
            },
            Profile {
                name: "start overloaded, then quiet",
                phases: &[(0, 4_500.0), (3_600, 200.0)],
                end: 7_200,
            },
            Profile {
                name: "two steps up, one down",
                phases: &[
                    (0, 300.0),
                    (1_800, 2_000.0),
                    (5_400, 4_200.0),
                    (9_000, 300.0),
                ],
                end: 12_600,
            },
        ];
        for profile in &profiles {
            let name = profile.name;
            let Run {
                history,
                lags,
                capacity,
                values,
            } = simulate(name, profile.end, |second| {
                profile
                    .phases
                    .iter()
                    .rev()
                    .find(|(from, _)| *from <= second)
                    .map_or(0.0, |(_, load)| *load)
            });
            let ends: Vec<u64> = profile
                .phases
                .iter()
                .skip(1)
                .map(|(from, _)| *from)
                .chain([profile.end])
                .collect();
            for (i, (&(from, load), &to)) in profile.phases.iter().zip(&ends).enumerate() {
                let in_phase: Vec<&str> = history
                    .iter()
                    .filter(|(s, _)| (from..to).contains(s))
                    .map(|(_, d)| *d)
                    .collect();
                let settled = to - SETTLED;
                assert!(
                    history.iter().all(|(s, _)| !(settled..to).contains(s)),
                    "{name}, phase {i} ({load}/s): still changing in its last {SETTLED} s: {history:?}"
                );
                let worst = lags[settled as usize..to as usize]
                    .iter()
                    .cloned()
                    .fold(0.0, f64::max);
                assert!(
                    worst <= 5.0,
                    "{name}, phase {i} ({load}/s): settled lag {worst:.2}s over the SLO"
                );
                let reversals = in_phase.windows(2).filter(|w| w[0] != w[1]).count();
                assert!(
                    reversals <= 1,
                    "{name}, phase {i} ({load}/s): oscillates: {history:?}"
                );
                let settled_capacity = capacity[to as usize - 1];
                assert!(
                    settled_capacity >= load,
                    "{name}, phase {i}: capacity {settled_capacity:.0}/s below the load {load}/s"
                );
                if i > 0 {
                    let before = profile.phases[i - 1].1;
                    let expected = if load > before {
                        "increase"
                    } else {
                        "decrease"
                    };
                    assert!(
                        in_phase.contains(&expected),
                        "{name}, phase {i} ({before}/s -> {load}/s): no {expected}: {history:?}"
                    );
                }
            }
            println!(
                "{name}: {} change(s) of max.batch.size at {:?}; settled at {:?}",
                history.len(),
                history.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                values
            );
        }
    }
}
