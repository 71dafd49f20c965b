//! Turning runs into figures: HDR histograms of round trips, rates, medians
//! across runs and their spread.
//!
//! Every figure in the table is the median over the measured runs of a
//! per-run figure (a run's median, p99 or p99.9 round trip, a run's rate), and
//! the spread is the range of the per-run medians (or rates). The charts use
//! the histograms of all runs merged.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::plumbing::Res;

/// Round trips are recorded in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub fn new_histogram() -> Res<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 100_000_000_000, 3)?)
}

/// Records `d` (saturating at the histogram's top).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(ns);
}

/// The median of `v` (mean of the middle two for an even count); NaN if empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A figure over runs: the median of the per-run values and their range.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Median of the per-run values.
    pub median: f64,
    /// Smallest per-run value.
    pub min: f64,
    /// Largest per-run value.
    pub max: f64,
}

impl Spread {
    /// Summarizes per-run values.
    pub fn of(v: &[f64]) -> Spread {
        Spread {
            median: median(v),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// Round-trip latency over runs (nanoseconds).
#[derive(Debug, Clone)]
pub struct Latency {
    /// Per-run medians: their median and range.
    pub p50: Spread,
    /// Median over runs of each run's 99th percentile.
    pub p99: f64,
    /// Median over runs of each run's 99.9th percentile.
    pub p999: f64,
    /// Round trips recorded in all measured runs.
    pub samples: u64,
    /// Number of measured runs.
    pub runs: usize,
    /// All runs merged (for the charts).
    pub merged: Histogram<u64>,
}

impl Latency {
    /// Summarizes one histogram per run.
    pub fn of(runs: &[Histogram<u64>]) -> Res<Latency> {
        let q =
            |q: f64| -> Vec<f64> { runs.iter().map(|h| h.value_at_quantile(q) as f64).collect() };
        let mut merged = new_histogram()?;
        for h in runs {
            merged.add(h)?;
        }
        Ok(Latency {
            p50: Spread::of(&q(0.5)),
            p99: median(&q(0.99)),
            p999: median(&q(0.999)),
            samples: merged.len(),
            runs: runs.len(),
            merged,
        })
    }
}

/// One throughput run.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Messages moved.
    pub msgs: u64,
    /// Seconds from start to the last message received.
    pub secs: f64,
}

impl Rate {
    /// Messages per second.
    pub fn per_sec(self) -> f64 {
        if self.secs > 0.0 {
            self.msgs as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// One contended-lock run.
#[derive(Debug, Clone, Copy)]
pub struct LockRun {
    /// Acquisitions by all workers.
    pub acquisitions: u64,
    /// Acquisitions by a different worker than the previous one.
    pub handoffs: u64,
    /// Seconds the run took.
    pub secs: f64,
}

/// The cost of reading the clock once, in nanoseconds (median of many back-to-back
/// reads): each timed round trip includes one such read.
pub fn timer_overhead_ns() -> f64 {
    let mut v = Vec::with_capacity(10_001);
    for _ in 0..10_001 {
        let a = Instant::now();
        let b = Instant::now();
        v.push(b.duration_since(a).as_nanos() as f64);
    }
    median(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let s = Spread::of(&[5.0, 1.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
    }
}
