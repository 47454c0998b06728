//! Consumer lag: Burrow's status evaluation over a window of samples, and lag in seconds by
//! interpolating an offset→time table (as kafka-lag-exporter does).

use std::collections::VecDeque;

use serde::Serialize;

/// One sample of a consumer group partition: the committed offset, the lag (end offset minus
/// committed) and when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LagSample {
    pub at_ms: u64,
    pub offset: i64,
    pub lag: i64,
}

/// Burrow's partition status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LagStatus {
    Ok,
    /// Committing, but the lag grows over the whole window.
    Warn,
    /// No commit for longer than the window spans: the consumer stopped.
    Stop,
    /// Committing the same offset with lag: the consumer is alive but not progressing.
    Stall,
    /// The committed offset went backwards.
    Rewind,
}

impl LagStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            LagStatus::Ok => "OK",
            LagStatus::Warn => "WARN",
            LagStatus::Stop => "STOP",
            LagStatus::Stall => "STALL",
            LagStatus::Rewind => "REWIND",
        }
    }
}

/// Evaluates a window of samples (oldest first) the way Burrow does, in its order:
/// 1. no commit for longer than the window spans (now − last > last − first) → STOP;
/// 2. the offset went backwards anywhere → REWIND;
/// 3. any sample with zero lag → OK;
/// 4. the offset never changed (and lag > 0) → STALL;
/// 5. the lag never decreased and grew from first to last → WARN;
/// 6. otherwise OK.
///
/// Fewer than two samples give OK (Burrow waits for a full window).
pub fn evaluate(samples: &[LagSample], now_ms: u64) -> LagStatus {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return LagStatus::Ok;
    };
    if samples.len() < 2 {
        return LagStatus::Ok;
    }
    let span = last.at_ms.saturating_sub(first.at_ms);
    if last.lag > 0 && now_ms.saturating_sub(last.at_ms) > span {
        return LagStatus::Stop;
    }
    if samples.windows(2).any(|w| w[1].offset < w[0].offset) {
        return LagStatus::Rewind;
    }
    if samples.iter().any(|s| s.lag == 0) {
        return LagStatus::Ok;
    }
    if samples.iter().all(|s| s.offset == first.offset) {
        return LagStatus::Stall;
    }
    if samples.windows(2).all(|w| w[1].lag >= w[0].lag) && last.lag > first.lag {
        return LagStatus::Warn;
    }
    LagStatus::Ok
}

/// A bounded table of (end offset, time it was observed) for one partition, for turning a
/// consumer's offset into "how old is the record it has reached".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetTimeTable {
    points: VecDeque<(i64, u64)>,
    capacity: usize,
}

impl OffsetTimeTable {
    pub fn new(capacity: usize) -> Self {
        Self {
            points: VecDeque::new(),
            capacity: capacity.max(2),
        }
    }

    /// Records that the partition's end offset was `offset` at `at_ms`. A repeated offset keeps
    /// its first time (the records before it were produced by then); an offset lower than the
    /// last one (topic recreated) starts the table over.
    pub fn observe(&mut self, offset: i64, at_ms: u64) {
        match self.points.back() {
            Some(&(last, _)) if offset == last => return,
            Some(&(last, _)) if offset < last => self.points.clear(),
            _ => {}
        }
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back((offset, at_ms));
    }

    /// The estimated time at which `offset` was the end of the log: linear interpolation
    /// between the surrounding points, extrapolation from the two oldest points below the
    /// table, `None` with fewer than two points.
    pub fn time_of(&self, offset: i64) -> Option<u64> {
        if self.points.len() < 2 {
            return None;
        }
        let &(last_offset, last_time) = self.points.back()?;
        if offset >= last_offset {
            return Some(last_time);
        }
        let mut iter = self.points.iter().zip(self.points.iter().skip(1));
        let (lo, hi) = iter
            .find(|(_, &(hi_offset, _))| offset < hi_offset)
            .map(|(lo, hi)| (*lo, *hi))?;
        let (lo_offset, lo_time) = lo;
        let (hi_offset, hi_time) = hi;
        let slope = (hi_time as f64 - lo_time as f64) / (hi_offset as f64 - lo_offset as f64);
        let t = lo_time as f64 + (offset as f64 - lo_offset as f64) * slope;
        Some(t.max(0.0) as u64)
    }

    /// Lag in seconds of a consumer at `committed`: now minus the time the next record it must
    /// read was at the end of the log. Zero when caught up.
    pub fn lag_seconds(&self, committed: i64, now_ms: u64) -> Option<f64> {
        let &(end, _) = self.points.back()?;
        if committed >= end {
            return Some(0.0);
        }
        let t = self.time_of(committed)?;
        Some(now_ms.saturating_sub(t) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(points: &[(u64, i64, i64)]) -> Vec<LagSample> {
        points
            .iter()
            .map(|&(at_s, offset, lag)| LagSample {
                at_ms: at_s * 1000,
                offset,
                lag,
            })
            .collect()
    }

    #[test]
    fn burrow_rules() {
        let cases: Vec<(&str, Vec<LagSample>, u64, LagStatus)> = vec![
            ("empty", vec![], 0, LagStatus::Ok),
            ("one sample", w(&[(0, 10, 5)]), 0, LagStatus::Ok),
            (
                "caught up once in the window",
                w(&[(0, 10, 5), (10, 20, 0), (20, 30, 4)]),
                20,
                LagStatus::Ok,
            ),
            (
                "lag shrinking",
                w(&[(0, 10, 50), (10, 40, 30), (20, 70, 10)]),
                20,
                LagStatus::Ok,
            ),
            (
                "committing but falling behind",
                w(&[(0, 10, 5), (10, 20, 8), (20, 30, 8), (30, 40, 12)]),
                30,
                LagStatus::Warn,
            ),
            (
                "same offset with lag: stalled",
                w(&[(0, 10, 5), (10, 10, 9), (20, 10, 12)]),
                20,
                LagStatus::Stall,
            ),
            (
                "no commit for longer than the window: stopped",
                w(&[(0, 10, 5), (10, 20, 5), (20, 30, 5)]),
                41,
                LagStatus::Stop,
            ),
            (
                "no commit but nothing to read: ok",
                w(&[(0, 10, 0), (10, 20, 0)]),
                100,
                LagStatus::Ok,
            ),
            (
                "offset reset backwards",
                w(&[(0, 100, 5), (10, 40, 65), (20, 50, 55)]),
                20,
                LagStatus::Rewind,
            ),
        ];
        for (name, samples, now_s, want) in cases {
            assert_eq!(evaluate(&samples, now_s * 1000), want, "{name}");
        }
    }

    #[test]
    fn offset_time_interpolation() {
        let mut t = OffsetTimeTable::new(4);
        assert_eq!(t.lag_seconds(0, 0), None);
        t.observe(100, 10_000);
        assert_eq!(t.time_of(50), None, "one point is not a rate");
        t.observe(200, 20_000);
        t.observe(200, 25_000); // idle: keeps the first time
        t.observe(400, 30_000);
        let cases: &[(i64, u64)] = &[
            (100, 10_000),
            (150, 15_000),
            (200, 20_000),
            (300, 25_000),
            (400, 30_000),
            (999, 30_000),
        ];
        for (offset, want) in cases {
            assert_eq!(t.time_of(*offset), Some(*want), "offset {offset}");
        }
        // Below the table: extrapolated from the oldest two points (100/s), floored at 0.
        assert_eq!(t.time_of(50), Some(5_000));
        assert_eq!(t.time_of(-10_000), Some(0));
        // Lag in seconds.
        assert_eq!(t.lag_seconds(400, 40_000), Some(0.0));
        assert_eq!(t.lag_seconds(300, 40_000), Some(15.0));
        // Bounded: the oldest point falls out.
        t.observe(500, 40_000);
        t.observe(600, 50_000);
        assert_eq!(t.time_of(200), Some(20_000));
        // 150 is now below the table: extrapolated with the 200→400 slope (50 ms per offset).
        assert_eq!(t.time_of(150), Some(17_500));
    }

    #[test]
    fn a_recreated_topic_starts_the_table_over() {
        let mut t = OffsetTimeTable::new(8);
        t.observe(1_000, 1_000);
        t.observe(2_000, 2_000);
        t.observe(10, 3_000);
        assert_eq!(t.time_of(5), None);
        t.observe(20, 4_000);
        assert_eq!(t.time_of(15), Some(3_500));
    }
}
