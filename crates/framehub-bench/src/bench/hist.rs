//! A fixed-size latency histogram: logarithmic buckets 1 % wide from 1 µs
//! to ~100 s, so memory stays bounded (one `u64` per bucket) whatever the
//! run length, and quantiles are within ±0.5 % of the exact sample.

use serde::{Deserialize, Serialize};

/// Bucket `i` (for `i >= 1`) covers `[GROWTH^(i-1), GROWTH^i)` µs; bucket 0 holds samples under 1 µs.
const GROWTH: f64 = 1.01;
/// ln(1e8 µs) / ln(1.01) ≈ 1851: enough buckets for 100 s; larger samples land in the last one.
const BUCKETS: usize = 1860;

/// Counts of latency samples in microseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    sum_us: f64,
    min_us: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            n: 0,
            sum_us: 0.0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

/// Quantiles of a [`Histogram`], in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample (exact).
    pub max_ms: f64,
    /// Smallest sample (exact).
    pub min_ms: f64,
    /// Mean (exact).
    pub mean_ms: f64,
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        if us == 0 {
            return 0;
        }
        let i = ((us as f64).ln() / GROWTH.ln()).floor() as usize + 1;
        i.min(BUCKETS - 1)
    }

    /// Records one sample.
    pub fn record(&mut self, us: u64) {
        self.counts[Self::bucket(us)] += 1;
        self.n += 1;
        self.sum_us += us as f64;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The `q`-quantile (0..=1) in µs: the geometric middle of the bucket
    /// holding it, clamped to the exact min and max.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let mid = if i == 0 {
                    0.5
                } else {
                    GROWTH.powf(i as f64 - 0.5)
                };
                return mid.clamp(self.min_us as f64, self.max_us as f64);
            }
        }
        self.max_us as f64
    }

    /// The distribution as `[latency ms, fraction of samples ≤ it]` at the
    /// fractions 0, 0.01, …, 0.99, 0.995, 0.999 and 1 (the exact min and
    /// max at the ends): enough for a CDF plot, bounded in size. Empty
    /// without samples.
    pub fn cdf(&self) -> Vec<[f64; 2]> {
        if self.n == 0 {
            return Vec::new();
        }
        let mut out: Vec<[f64; 2]> = (0..100)
            .map(|i| f64::from(i) / 100.0)
            .chain([0.995, 0.999])
            .map(|q| [self.quantile_us(q) / 1000.0, q])
            .collect();
        out[0][0] = self.min_us as f64 / 1000.0;
        out.push([self.max_us as f64 / 1000.0, 1.0]);
        out
    }

    /// Quantiles and extremes in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        if self.n == 0 {
            return LatencySummary::default();
        }
        LatencySummary {
            samples: self.n,
            p50_ms: self.quantile_us(0.50) / 1000.0,
            p95_ms: self.quantile_us(0.95) / 1000.0,
            p99_ms: self.quantile_us(0.99) / 1000.0,
            max_ms: self.max_us as f64 / 1000.0,
            min_ms: self.min_us as f64 / 1000.0,
            mean_ms: self.sum_us / self.n as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_half_a_percent() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record(us);
        }
        for (q, exact) in [(0.5, 5000.0), (0.95, 9500.0), (0.99, 9900.0)] {
            let got = h.quantile_us(q);
            assert!(
                (got - exact).abs() / exact < 0.006,
                "q{q}: {got} vs {exact}"
            );
        }
        let s = h.summary();
        assert_eq!(s.samples, 10_000);
        assert!((s.max_ms - 10.0).abs() < 1e-9);
        assert!((s.mean_ms - 5.0005).abs() < 1e-6);
    }

    #[test]
    fn merge_and_extremes() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(0);
        b.record(u64::MAX / 2);
        a.merge(&b);
        assert_eq!(a.summary().samples, 2);
        assert_eq!(a.quantile_us(0.5), 0.5);
        assert_eq!(a.summary().max_ms, (u64::MAX / 2) as f64 / 1000.0);
        assert_eq!(Histogram::default().summary().samples, 0);
        assert!(Histogram::default().cdf().is_empty());
    }

    #[test]
    fn cdf_is_monotone_and_ends_at_the_extremes() {
        let mut h = Histogram::default();
        for us in [5_000u64, 7_000, 9_000, 20_000, 40_000] {
            h.record(us);
        }
        let cdf = h.cdf();
        assert_eq!(cdf.first().map(|p| p[0]), Some(5.0));
        assert_eq!(cdf.last().copied(), Some([40.0, 1.0]));
        assert!(cdf
            .windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]));
    }
}
