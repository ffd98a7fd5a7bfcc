//! Classic (Prometheus `le`) bucket boundaries.

use std::sync::Arc;

use crate::error::BucketsError;

/// Upper boundaries of a histogram's classic buckets, finite and strictly
/// increasing; the `+Inf` bucket is implicit. An observation equal to a
/// boundary counts in that boundary's bucket (`le` means "less or equal").
///
/// ```
/// use beluga_metrics::Buckets;
/// let b = Buckets::gen_ai_operation_duration();
/// assert_eq!(b.bounds()[0], 0.01);
/// assert_eq!(b.bounds().len(), 14);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(Arc<[f64]>);

/// The largest magnitude a boundary may have.
pub(crate) const MAX_BOUND: f64 = 1e300;
/// The smallest a positive largest boundary may be.
pub(crate) const MIN_TOP_BOUND: f64 = 1e-290;

const GEN_AI_DURATION: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const GEN_AI_TOKENS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
const GEN_AI_SERVER_TTFT: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const GEN_AI_SERVER_TPOT: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
const PROMETHEUS_DEFAULT: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Buckets {
    /// Boundaries of your own. They are checked when the histogram is
    /// registered: finite, strictly increasing, at most 255 of them, none
    /// beyond ±1e300, and the largest, if positive, at least 1e-290.
    ///
    /// ```
    /// use beluga_metrics::Buckets;
    /// let b = Buckets::new([0.1, 0.5, 1.0]);
    /// assert_eq!(b.bounds(), &[0.1, 0.5, 1.0]);
    /// ```
    pub fn new(bounds: impl Into<Vec<f64>>) -> Buckets {
        Buckets(bounds.into().into())
    }

    /// OpenTelemetry GenAI `gen_ai.client.operation.duration` (seconds):
    /// 0.01 to 81.92, doubling.
    pub fn gen_ai_operation_duration() -> Buckets {
        Buckets::new(GEN_AI_DURATION)
    }

    /// OpenTelemetry GenAI `gen_ai.client.token.usage` (tokens): 1 to 4^13.
    pub fn gen_ai_token_usage() -> Buckets {
        Buckets::new(GEN_AI_TOKENS)
    }

    /// OpenTelemetry GenAI `gen_ai.server.time_to_first_token` (seconds).
    pub fn gen_ai_time_to_first_token() -> Buckets {
        Buckets::new(GEN_AI_SERVER_TTFT)
    }

    /// OpenTelemetry GenAI `gen_ai.server.time_per_output_token` (seconds).
    ///
    /// ```
    /// use beluga_metrics::Buckets;
    /// assert_eq!(Buckets::gen_ai_time_per_output_token().bounds().last(), Some(&2.5));
    /// ```
    pub fn gen_ai_time_per_output_token() -> Buckets {
        Buckets::new(GEN_AI_SERVER_TPOT)
    }

    /// The Prometheus client libraries' default (seconds, 5 ms to 10 s).
    pub fn prometheus_default() -> Buckets {
        Buckets::new(PROMETHEUS_DEFAULT)
    }

    /// `count` boundaries starting at `start`, each `factor` times the last.
    ///
    /// ```
    /// use beluga_metrics::Buckets;
    /// assert_eq!(Buckets::exponential(1.0, 2.0, 4).bounds(), &[1.0, 2.0, 4.0, 8.0]);
    /// ```
    pub fn exponential(start: f64, factor: f64, count: usize) -> Buckets {
        Buckets::new(
            std::iter::successors(Some(start), |b| Some(b * factor))
                .take(count)
                .collect::<Vec<_>>(),
        )
    }

    /// `count` boundaries starting at `start`, `width` apart.
    ///
    /// ```
    /// use beluga_metrics::Buckets;
    /// assert_eq!(Buckets::linear(0.0, 0.5, 3).bounds(), &[0.0, 0.5, 1.0]);
    /// ```
    pub fn linear(start: f64, width: f64, count: usize) -> Buckets {
        Buckets::new(
            (0..count)
                .map(|i| start + width * i as f64)
                .collect::<Vec<_>>(),
        )
    }

    /// The finite upper boundaries, ascending.
    pub fn bounds(&self) -> &[f64] {
        &self.0
    }

    pub(crate) fn shared(&self) -> Arc<[f64]> {
        self.0.clone()
    }

    /// `Err(reason)` unless the boundaries are usable: at most 255, finite,
    /// strictly increasing, none larger in magnitude than 1e300,
    /// and, when the largest is positive, at least 1e-290. The
    /// quantile scale spans twice the largest boundary in 2^27 steps; these
    /// limits keep that step a normal float, so bucket assignment stays
    /// exact and quantiles finite. The registry runs this check when a
    /// histogram is registered; builders that take buckets ahead of that
    /// run it to fail early.
    ///
    /// ```
    /// use beluga_metrics::Buckets;
    /// assert!(Buckets::new([0.1, 1.0]).check().is_ok());
    /// assert_eq!(
    ///     Buckets::new([1.0, 0.1]).check(),
    ///     Err(beluga_metrics::BucketsError::NotIncreasing)
    /// );
    /// ```
    pub fn check(&self) -> Result<(), BucketsError> {
        if self.0.len() > 255 {
            return Err(BucketsError::TooMany);
        }
        if self.0.iter().any(|b| !b.is_finite()) {
            return Err(BucketsError::NotFinite);
        }
        if self.0.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BucketsError::NotIncreasing);
        }
        if self.0.iter().any(|b| b.abs() > MAX_BOUND) {
            return Err(BucketsError::TooLarge);
        }
        if self
            .0
            .last()
            .is_some_and(|&top| top > 0.0 && top < MIN_TOP_BOUND)
        {
            return Err(BucketsError::TopTooSmall);
        }
        Ok(())
    }

    /// Index of the bucket that counts `value` (`bounds.len()` for `+Inf`):
    /// the reference the recording path's table is tested against.
    #[cfg(test)]
    #[inline]
    pub(crate) fn index_of(bounds: &[f64], value: f64) -> usize {
        bounds.partition_point(|&b| b < value)
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets::prometheus_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn value_on_a_boundary_counts_in_that_bucket() {
        let b = [1.0, 2.0, 4.0];
        assert_eq!(Buckets::index_of(&b, 0.5), 0);
        assert_eq!(Buckets::index_of(&b, 1.0), 0);
        assert_eq!(Buckets::index_of(&b, 1.0000001), 1);
        assert_eq!(Buckets::index_of(&b, 4.0), 2);
        assert_eq!(Buckets::index_of(&b, 4.5), 3);
        assert_eq!(Buckets::index_of(&b, f64::INFINITY), 3);
        assert_eq!(Buckets::index_of(&b, f64::NEG_INFINITY), 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn checks_refuse_bad_boundaries() {
        for b in [
            Buckets::gen_ai_operation_duration(),
            Buckets::gen_ai_token_usage(),
            Buckets::gen_ai_time_to_first_token(),
            Buckets::gen_ai_time_per_output_token(),
            Buckets::prometheus_default(),
        ] {
            assert!(b.check().is_ok());
        }
        assert!(Buckets::new([1.0, 1.0]).check().is_err());
        assert!(Buckets::new([2.0, 1.0]).check().is_err());
        assert!(Buckets::new([f64::NAN]).check().is_err());
        assert!(Buckets::new([1.0, f64::INFINITY]).check().is_err());
        assert!(Buckets::new([1.0, 1e308]).check().is_err());
        assert!(Buckets::new([-1e301, 1.0]).check().is_err());
        assert!(Buckets::new([1e-300]).check().is_err());
        assert!(Buckets::new([1e-320, 1e-290]).check().is_ok());
        assert!(Buckets::new([-5.0, -1.0]).check().is_ok());
        assert!(Buckets::new([-1e300, 0.0, 1e300]).check().is_ok());
    }
}
