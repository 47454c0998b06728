//! Bounded exponential backoff with jitter for HTTP 409 answers.

use std::time::Duration;

/// How the client retries requests that Connect answers with 409 Conflict
/// (rebalance in progress, unknown leader, stale configuration).
///
/// Only 409 is retried, never any other status or transport error; see the
/// crate documentation for why that is safe for every endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; `1` disables retries.
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub initial_backoff: Duration,
    /// Upper bound of a single backoff.
    pub max_backoff: Duration,
    /// No new attempt is started once this much time has passed since the
    /// first one (the backoff is shortened to fit).
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 500 ms doubling to at most 8 s, within 30 s overall.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_total: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before attempt number `attempt + 1`, after `attempt` failed
    /// attempts (`attempt >= 1`) and `elapsed` time since the first one, or
    /// `None` when no further attempt may be made.
    ///
    /// `jitter` in `[0, 1)` picks a point in the upper half of the exponential
    /// window ("equal jitter"): the delay is at least half the nominal backoff,
    /// so retries still space out, while concurrent clients de-synchronise.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration, jitter: f64) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts || elapsed >= self.max_total {
            return None;
        }
        let exp = attempt.saturating_sub(1).min(30);
        let nominal = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = nominal / 2;
        let delay = half + half.mul_f64(jitter);
        let remaining = self.max_total - elapsed;
        Some(delay.min(remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_bounded() {
        let p = RetryPolicy::default();
        let d: Vec<Option<Duration>> = (1..=6)
            .map(|a| p.next_delay(a, Duration::ZERO, 1.0))
            .collect();
        assert_eq!(
            d,
            vec![
                Some(Duration::from_millis(500)),
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(8)),
                None, // 6 attempts made
            ]
        );
        // lower bound of jitter window is half the nominal backoff
        assert_eq!(
            p.next_delay(3, Duration::ZERO, 0.0),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn total_budget_is_respected() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.next_delay(2, Duration::from_millis(29_500), 1.0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(p.next_delay(2, Duration::from_secs(30), 1.0), None);
        // the sum of all default delays fits the budget
        let total: Duration = (1..6)
            .filter_map(|a| p.next_delay(a, Duration::ZERO, 1.0))
            .sum();
        assert!(total <= p.max_total, "{total:?}");
    }

    #[test]
    fn none_never_retries_and_bad_jitter_is_clamped() {
        assert_eq!(RetryPolicy::none().next_delay(1, Duration::ZERO, 0.5), None);
        let p = RetryPolicy::default();
        assert_eq!(
            p.next_delay(1, Duration::ZERO, f64::NAN),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            p.next_delay(1, Duration::ZERO, 7.0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(p.next_delay(0, Duration::ZERO, 0.5), None);
    }
}
