//! Deterministic randomness: a SplitMix64 generator per agent and
//! precomputed sample tables, so a seed fixes the whole workload and a draw
//! in the hot loop costs a few nanoseconds.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for a
/// workload generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// A standard normal variate (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

const TABLE: usize = 4096;

/// 4,096 precomputed draws of a log-normal distribution with a given
/// median and 99th percentile.
#[derive(Debug, Clone)]
pub(crate) struct LogNormal(Box<[f64]>);

impl LogNormal {
    pub(crate) fn new(median: f64, p99: f64, rng: &mut Rng) -> LogNormal {
        // p99 = median * exp(2.326 * sigma)
        let sigma = (p99 / median).ln().max(0.0) / 2.326;
        LogNormal(
            (0..TABLE)
                .map(|_| median * (sigma * rng.normal()).exp())
                .collect(),
        )
    }

    #[inline]
    pub(crate) fn draw(&self, rng: &mut Rng) -> f64 {
        self.0[(rng.next_u64() >> 52) as usize]
    }
}

/// Picks an index with probability proportional to its weight.
#[derive(Debug, Clone)]
pub(crate) struct Weighted(Box<[f64]>);

impl Weighted {
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Weighted {
        let mut total = 0.0;
        let cumulative: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Weighted(cumulative.iter().map(|c| c / total).collect())
    }

    #[inline]
    pub(crate) fn pick(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0
            .iter()
            .position(|c| u < *c)
            .unwrap_or(self.0.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
    }

    #[test]
    fn lognormal_median_and_tail() {
        let mut rng = Rng::new(1);
        let d = LogNormal::new(100.0, 1000.0, &mut rng);
        let mut v = d.0.to_vec();
        v.sort_by(f64::total_cmp);
        let median = v[TABLE / 2];
        let p99 = v[TABLE * 99 / 100];
        assert!((80.0..125.0).contains(&median), "{median}");
        assert!((700.0..1400.0).contains(&p99), "{p99}");
    }

    #[test]
    fn weighted_picks_follow_weights() {
        let mut rng = Rng::new(3);
        let w = Weighted::new([3.0, 1.0]);
        let firsts = (0..10_000).filter(|_| w.pick(&mut rng) == 0).count();
        assert!((7_000..8_000).contains(&firsts), "{firsts}");
    }
}
