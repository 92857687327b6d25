//! The accumulators of one statement's durations: exact mean and variance (Welford), and a log-linear
//! histogram whose percentiles are within ±1/32 (3.1 %) of the exact order statistic.

use crate::store::query_stats::{DurationHistogram, EXPORT_BUCKETS_SECONDS};

/// Sub-buckets per power of two: a bucket is at most 1/16 of its lower bound wide, so its midpoint is within
/// 1/32 of any value in it.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

/// Bucket of a duration in nanoseconds: exact below 16 ns, then 16 buckets per power of two.
fn bucket_of(ns: u64) -> u32 {
    if ns < SUB {
        return ns as u32;
    }
    let exponent = 63 - ns.leading_zeros();
    let sub = (ns >> (exponent - SUB_BITS)) & (SUB - 1);
    (exponent - SUB_BITS + 1) * SUB as u32 + sub as u32
}

/// Lower bound and width (ns) of a bucket.
fn bucket_range(index: u32) -> (u64, u64) {
    if u64::from(index) < SUB {
        return (u64::from(index), 1);
    }
    let exponent = index / SUB as u32 + SUB_BITS - 1;
    let shift = exponent - SUB_BITS;
    ((SUB + u64::from(index) % SUB) << shift, 1 << shift)
}

/// Counts per bucket, stored only from the lowest to the highest bucket seen (a statement's durations
/// usually span a few dozen buckets, not the 700 from 1 ns to an hour).
#[derive(Clone, Debug, Default)]
pub struct LogHistogram {
    first: u32,
    counts: Vec<u64>,
}

impl LogHistogram {
    pub fn record(&mut self, ns: u64) {
        let index = bucket_of(ns);
        if self.counts.is_empty() {
            self.first = index;
        } else if index < self.first {
            let grow = (self.first - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = index;
        }
        let at = (index - self.first) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += 1;
    }

    /// The nearest-rank `p` quantile (0 < p ≤ 1) in ns: the midpoint of the bucket holding it, kept within
    /// [min, max] (the exact extremes). None when empty.
    pub fn quantile(&self, p: f64, min: u64, max: u64) -> Option<u64> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = bucket_range(self.first + i as u32);
                return Some((low + width / 2).clamp(min, max));
            }
        }
        Some(max)
    }
}

/// Count, mean and sum of squared deviations (M2), updated one value at a time (Welford) and mergeable
/// (Chan et al.), so that mean and standard deviation are exact without keeping the values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        let n = self.count + other.count;
        let delta = other.mean - self.mean;
        self.mean += delta * other.count as f64 / n as f64;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / n as f64;
        self.count = n;
    }

    /// Population standard deviation (pg_stat_statements' stddev_exec_time).
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).max(0.0).sqrt()
        }
    }
}

/// Index into [`EXPORT_BUCKETS_SECONDS`] of the first bound at or above `seconds`; 16 = above them all.
pub fn export_bucket(seconds: f64) -> usize {
    EXPORT_BUCKETS_SECONDS.partition_point(|&bound| bound < seconds)
}

pub fn record_export(histogram: &mut DurationHistogram, seconds: f64) {
    record_export_at(histogram, export_bucket(seconds), seconds);
}

/// [`record_export`] with the bucket already found ([`export_bucket`]).
pub fn record_export_at(histogram: &mut DurationHistogram, bucket: usize, seconds: f64) {
    if let Some(count) = histogram.counts.get_mut(bucket) {
        *count += 1;
    }
    histogram.count += 1;
    histogram.sum_seconds += seconds;
}

pub fn merge_export(into: &mut DurationHistogram, from: &DurationHistogram) {
    for (a, b) in into.counts.iter_mut().zip(from.counts) {
        *a += b;
    }
    into.count += from.count;
    into.sum_seconds += from.sum_seconds;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator (xorshift), so that the distributions are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn exact_quantile(sorted: &[u64], p: f64) -> u64 {
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn buckets_tile_the_line_without_gaps() {
        let mut expected_low = 0;
        for index in 0..700 {
            let (low, width) = bucket_range(index);
            assert_eq!(low, expected_low, "bucket {index}");
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(low + width - 1), index);
            assert!(width as f64 <= (low.max(1) as f64) / 16.0 || low < 16, "bucket {index} too wide");
            expected_low = low + width;
        }
    }

    #[test]
    fn percentiles_are_within_five_percent_of_the_exact_order_statistic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        type Draw = Box<dyn FnMut(&mut Rng) -> f64>;
        let distributions: [(&str, Draw); 4] = [
            ("uniform 50-500 µs", Box::new(|r| 50_000.0 + 450_000.0 * r.next())),
            ("exponential, mean 200 µs", Box::new(|r| -200_000.0 * (1.0 - r.next()).ln())),
            ("log-normal around 1 ms", Box::new(|r| (13.8 + 1.5 * (r.next() + r.next() + r.next() - 1.5)).exp())),
            (
                "bimodal: 90 % at 20 µs, 10 % at 80 ms",
                Box::new(|r| if r.next() < 0.9 { 20_000.0 * (1.0 + r.next()) } else { 80e6 * (1.0 + r.next()) }),
            ),
        ];
        for (name, mut draw) in distributions {
            let mut values: Vec<u64> = (0..50_000).map(|_| draw(&mut rng).max(1.0) as u64).collect();
            let mut histogram = LogHistogram::default();
            values.iter().for_each(|&v| histogram.record(v));
            values.sort_unstable();
            let (min, max) = (values[0], *values.last().unwrap());
            for p in [0.5, 0.9, 0.95, 0.99, 0.999] {
                let exact = exact_quantile(&values, p) as f64;
                let estimate = histogram.quantile(p, min, max).unwrap() as f64;
                let error = (estimate - exact).abs() / exact;
                assert!(error <= 0.05, "{name}: p{p}: estimate {estimate} vs exact {exact} ({:.2} %)", error * 100.0);
            }
        }
    }

    #[test]
    fn welford_matches_a_two_pass_computation_and_merges_exactly() {
        let mut rng = Rng(42);
        let values: Vec<f64> = (0..10_001).map(|_| 0.01 + 5.0 * rng.next() * rng.next()).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let mut whole = Moments::default();
        values.iter().for_each(|&v| whole.add(v));
        assert!((whole.mean - mean).abs() <= 1e-12 * mean);
        assert!((whole.stddev() - variance.sqrt()).abs() <= 1e-9 * variance.sqrt());
        let (mut left, mut right) = (Moments::default(), Moments::default());
        values[..3000].iter().for_each(|&v| left.add(v));
        values[3000..].iter().for_each(|&v| right.add(v));
        left.merge(&right);
        assert_eq!(left.count, whole.count);
        assert!((left.mean - mean).abs() <= 1e-12 * mean);
        assert!((left.stddev() - variance.sqrt()).abs() <= 1e-9 * variance.sqrt());
    }

    #[test]
    fn export_buckets_take_a_value_equal_to_a_bound() {
        assert_eq!(export_bucket(0.0), 0);
        assert_eq!(export_bucket(0.0001), 0);
        assert_eq!(export_bucket(0.00011), 1);
        assert_eq!(export_bucket(10.0), 15);
        assert_eq!(export_bucket(11.0), 16);
        let mut h = DurationHistogram::default();
        record_export(&mut h, 20.0);
        record_export(&mut h, 0.003);
        assert_eq!((h.count, h.counts.iter().sum::<u64>(), h.counts[5]), (2, 1, 1));
    }
}
