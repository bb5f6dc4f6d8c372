//! A latency histogram: 1 µs buckets up to 20 ms, then 1 ms buckets up to
//! 10 s (anything later lands in the last bucket).

const FINE_US: usize = 20_000;
const COARSE_MS: usize = 10_000;

/// Counts of latencies.
#[derive(Clone)]
pub struct Histogram {
    fine: Vec<u32>,
    coarse: Vec<u32>,
    count: u64,
    sum_ns: u128,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// Empty.
    pub fn new() -> Self {
        Self {
            fine: vec![0; FINE_US],
            coarse: vec![0; COARSE_MS],
            count: 0,
            sum_ns: 0,
            max_ns: 0,
        }
    }

    /// Adds one latency.
    pub fn add(&mut self, ns: u64) {
        let us = (ns / 1000) as usize;
        if us < FINE_US {
            self.fine[us] += 1;
        } else {
            let ms = (us / 1000).min(COARSE_MS - 1);
            self.coarse[ms] += 1;
        }
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean in µs.
    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.count as f64 / 1000.0
        }
    }

    /// Largest in µs.
    pub fn max_us(&self) -> f64 {
        self.max_ns as f64 / 1000.0
    }

    /// The `q` quantile (0..=1) in µs: the upper edge of its bucket.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (us, n) in self.fine.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return (us + 1) as f64;
            }
        }
        for (ms, n) in self.coarse.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return ((ms + 1) * 1000) as f64;
            }
        }
        self.max_us()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for i in 0..100u64 {
            h.add(i * 1000 + 500);
        }
        assert_eq!(h.quantile_us(0.5), 50.0);
        assert_eq!(h.quantile_us(0.99), 99.0);
        assert_eq!(h.quantile_us(1.0), 100.0);
        h.add(30_000_000);
        assert_eq!(h.quantile_us(1.0), 31_000.0);
    }
}
