//! Base-2 exponential buckets derived from a histogram's HDR counts: what
//! Prometheus native histograms and OpenTelemetry exponential histograms
//! carry.
//!
//! # From HDR sub-buckets to exponential buckets
//!
//! Every observation is also counted in one HDR sub-bucket (see
//! `layout.rs`): in units of the histogram's resolution `r`, sub-bucket `k`
//! holds values in `[lo_k · r, hi_k · r)`, at most 1/128 of its own value
//! wide. Sub-bucket 0, `[0, r)`, is the *zero bucket* (threshold `r`).
//! Every other sub-bucket's count goes, whole, to the exponential bucket
//! holding the sub-bucket's midpoint. At scale `s` (Prometheus calls it the
//! schema) bucket `i` holds `(b^i, b^(i+1)]` with `b = 2^(2^-s)`
//! (OpenTelemetry's numbering; Prometheus numbers the same bucket `i + 1`).
//!
//! **Worst-case error.** An observation is at most half a sub-bucket (0.4 %
//! of its value) from its sub-bucket's midpoint, so it is counted either in
//! its own exponential bucket or, when it lies within 0.4 % of a boundary,
//! in the neighbouring one. Counts, sum, minimum and maximum are exact; a
//! quantile computed from the buckets carries the consumer's interpolation
//! error (up to one bucket, 9.05 % of the value at scale 3) plus 0.4 %.
//! The HDR counts track `[0, 2 × the largest classic boundary]`:
//! observations above it are counted in the bucket of that upper limit, and
//! negative observations in the zero bucket (the classic buckets, sum and
//! minimum still count them exactly).

use super::layout;

/// What a reader wants: the finest scale to use, and the most buckets to
/// keep. The scale is lowered (adjacent buckets merged in pairs) until the
/// populated range fits `max_buckets`.
///
/// ```
/// use beluga_metrics::ExponentialScale;
/// let prometheus = ExponentialScale::fixed(3);
/// assert_eq!((prometheus.max_scale, prometheus.max_buckets), (3, usize::MAX));
/// let otlp = ExponentialScale { max_scale: 20, max_buckets: 160 };
/// # let _ = otlp;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExponentialScale {
    /// The finest scale (OpenTelemetry scale, Prometheus schema), at most
    /// 8 and at least -4. HDR counts resolve values to 1/128, so scales above
    /// 7 split HDR sub-buckets no further.
    pub max_scale: i8,
    /// The most buckets (from the first populated to the last) to keep.
    pub max_buckets: usize,
}

impl ExponentialScale {
    /// Exactly scale `scale`, however many buckets that takes (Prometheus
    /// native histograms with a configured schema).
    pub fn fixed(scale: i8) -> ExponentialScale {
        ExponentialScale {
            max_scale: scale,
            max_buckets: usize::MAX,
        }
    }

    fn clamped_scale(self) -> i32 {
        i32::from(self.max_scale.clamp(MIN_SCALE, MAX_SCALE))
    }
}

/// The exponential bucket (OpenTelemetry numbering) of HDR sub-bucket
/// `index` at `scale`, for a histogram of this `resolution`: the bucket
/// holding the sub-bucket's midpoint.
fn bucket_of(index: usize, resolution: f64, scale: i32) -> i32 {
    let low = layout::value_at(index) as f64;
    let high = layout::value_at(index + 1) as f64;
    let midpoint = (low + high) / 2.0 * resolution;
    (midpoint.log2() * f64::from(scale).exp2()).ceil() as i32 - 1
}

/// [`bucket_of`] for every HDR index: a family computes it once per scale
/// (a logarithm per sub-bucket is most of the cost of a read otherwise).
pub(crate) fn bucket_table(resolution: f64, scale: i32) -> Box<[i32]> {
    (0..layout::LEN)
        .map(|index| {
            if index == 0 {
                0
            } else {
                bucket_of(index, resolution, scale)
            }
        })
        .collect()
}

/// The coarsest and finest scales offered (Prometheus schemas -4 to 8).
const MIN_SCALE: i8 = -4;
const MAX_SCALE: i8 = 8;

/// A histogram in base-2 exponential buckets (see the module docs for how
/// they are derived and the error that follows).
///
/// ```
/// use beluga_metrics::{Buckets, ExponentialScale, Opts, Registry};
/// let registry = Registry::new();
/// let h = registry.histogram(Opts::new("latency", "L."), Buckets::default())?;
/// for v in [0.001, 0.002, 0.004, 0.004] {
///     h.record(v);
/// }
/// let e = h.exponential(ExponentialScale::fixed(0));
/// assert_eq!(e.scale(), 0);
/// assert_eq!(e.total(), 4);
/// // Scale 0: powers of two. 0.004 is in (2^-8, 2^-7]: OpenTelemetry index -8.
/// assert_eq!(e.buckets().last(), Some((-8, 2)));
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBuckets {
    scale: i32,
    zero_threshold: f64,
    zero_count: u64,
    /// OpenTelemetry index of `counts[0]`.
    offset: i32,
    counts: Vec<u64>,
}

impl Default for ExponentialBuckets {
    /// No observations, at scale 0.
    fn default() -> Self {
        ExponentialBuckets::empty()
    }
}

impl ExponentialBuckets {
    pub(crate) fn empty() -> Self {
        ExponentialBuckets {
            scale: 0,
            zero_threshold: 0.0,
            zero_count: 0,
            offset: 0,
            counts: Vec::new(),
        }
    }

    /// Starts over at `want`'s finest scale, for a histogram of this
    /// `resolution`; then [`add_hdr`](Self::add_hdr) every HDR count in
    /// increasing index order and [`fit`](Self::fit).
    pub(crate) fn reset(&mut self, resolution: f64, want: ExponentialScale) {
        self.scale = want.clamped_scale();
        self.zero_threshold = resolution;
        self.zero_count = 0;
        self.offset = 0;
        self.counts.clear();
    }

    /// Adds the `count` observations of HDR sub-bucket `index`, whose
    /// exponential bucket at this scale is `bucket` (from
    /// [`bucket_table`]; ignored for sub-bucket 0, the zero bucket).
    pub(crate) fn add_hdr(&mut self, index: usize, bucket: i32, count: u64) {
        if count == 0 {
            return;
        }
        if index == 0 {
            self.zero_count += count;
        } else {
            self.add(bucket, count);
        }
    }

    /// Lowers the scale until the populated range fits `want.max_buckets`.
    pub(crate) fn fit(&mut self, want: ExponentialScale) {
        while self.counts.len() > want.max_buckets.max(1) && self.scale > i32::from(MIN_SCALE) {
            self.downscale();
        }
    }

    fn add(&mut self, bucket: i32, count: u64) {
        if self.counts.is_empty() {
            self.offset = bucket;
        }
        // Indexes arrive in non-decreasing order (the mapping is monotone).
        let at = (bucket - self.offset) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += count;
    }

    /// Halves the resolution: buckets `2j` and `2j + 1` become bucket `j`.
    fn downscale(&mut self) {
        // In place: the bucket at position `i` moves to `at <= i`, and
        // positions are visited in increasing order.
        let offset = self.offset >> 1;
        let mut len = 0;
        for i in 0..self.counts.len() {
            let at = (((self.offset + i as i32) >> 1) - offset) as usize;
            let count = std::mem::take(&mut self.counts[i]);
            self.counts[at] += count;
            len = at + 1;
        }
        self.counts.truncate(len);
        self.offset = offset;
        self.scale -= 1;
    }

    /// A copy at a scale no finer than `want.max_scale` and with at most
    /// `want.max_buckets` buckets, adjacent buckets merged in pairs as
    /// needed (exactly: each bucket of scale `s - 1` is the union of two of
    /// scale `s`). An exporter uses it to fit one reading to several
    /// instruments' limits, or to bring an older reading to a newer one's
    /// scale before subtracting.
    ///
    /// ```
    /// use beluga_metrics::{Buckets, ExponentialScale, Opts, Registry};
    /// let h = Registry::new().histogram(Opts::new("h", "H."), Buckets::default())?;
    /// (1..=1000).for_each(|i| h.record(f64::from(i) / 1000.0));
    /// let fine = h.exponential(ExponentialScale::fixed(6));
    /// let coarse = fine.coarsened(ExponentialScale { max_scale: 8, max_buckets: 20 });
    /// assert!(coarse.scale() < 6 && coarse.counts().len() <= 20);
    /// assert_eq!(coarse.total(), fine.total());
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    pub fn coarsened(&self, want: ExponentialScale) -> ExponentialBuckets {
        let mut out = self.clone();
        while out.scale > want.clamped_scale() {
            out.downscale();
        }
        out.fit(want);
        out
    }

    /// The scale (OpenTelemetry) or schema (Prometheus).
    pub fn scale(&self) -> i32 {
        self.scale
    }

    /// Upper bound of the zero bucket, which holds `[0, threshold)`: the
    /// histogram's resolution.
    pub fn zero_threshold(&self) -> f64 {
        self.zero_threshold
    }

    /// Observations in the zero bucket.
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// OpenTelemetry index of the first populated bucket (Prometheus index
    /// minus one).
    pub fn offset(&self) -> i32 {
        self.offset
    }

    /// Counts from bucket [`offset`](Self::offset) on, zeros included.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// `(OpenTelemetry index, count)` of every non-empty bucket.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (self.offset + i as i32, *c))
    }

    /// Observations in every bucket, the zero bucket included.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.zero_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket of `v` by the plain definition: the `i` with
    /// `b^i < v <= b^(i+1)`, found by walking powers.
    fn plain_bucket(v: f64, scale: i32) -> i32 {
        let base = (2f64).powf((-scale as f64).exp2());
        let mut i = (v.log2() * (scale as f64).exp2()).floor() as i32 - 2;
        while base.powi(i + 1) < v {
            i += 1;
        }
        i
    }

    fn built(values: &[f64], resolution: f64, want: ExponentialScale) -> ExponentialBuckets {
        let mut counts = vec![0u64; layout::LEN];
        for &v in values {
            counts[layout::index_of((v / resolution) as u64)] += 1;
        }
        let mut e = ExponentialBuckets::empty();
        e.reset(resolution, want);
        let table = bucket_table(resolution, want.clamped_scale());
        for (index, count) in counts.iter().enumerate() {
            e.add_hdr(index, table[index], *count);
        }
        e.fit(want);
        e
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn each_value_lands_in_its_bucket_or_within_half_a_sub_bucket_of_a_boundary() {
        let resolution = 1e-6;
        for scale in [0i32, 3, 5] {
            let base = (2f64).powf((-scale as f64).exp2());
            for k in 0..2_000 {
                let v = 0.0003 * 1.0037f64.powi(k);
                let e = built(&[v], resolution, ExponentialScale::fixed(scale as i8));
                let (got, _) = e.buckets().next().expect("one bucket");
                let want = plain_bucket(v, scale);
                if got != want {
                    // Only next to a boundary: within 0.4 % of b^(want) or b^(want+1).
                    let boundary = if got < want {
                        base.powi(want)
                    } else {
                        base.powi(want + 1)
                    };
                    assert!(
                        ((v - boundary) / v).abs() <= 1.0 / 256.0 + 1e-9,
                        "v={v} scale={scale}"
                    );
                    assert_eq!((got - want).abs(), 1);
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn downscaling_merges_pairs_and_keeps_every_count() {
        let values: Vec<f64> = (0..5_000).map(|k| 0.001 * 1.0017f64.powi(k)).collect();
        let fine = built(&values, 1e-6, ExponentialScale::fixed(6));
        let capped = built(
            &values,
            1e-6,
            ExponentialScale {
                max_scale: 6,
                max_buckets: 40,
            },
        );
        assert!(capped.counts().len() <= 40 && capped.scale() < 6);
        assert_eq!(capped.total(), values.len() as u64);
        // Merging the fine buckets by the plain definition gives the same.
        let shift = fine.scale() - capped.scale();
        let mut expected = std::collections::BTreeMap::new();
        for (i, c) in fine.buckets() {
            *expected.entry(i >> shift).or_insert(0) += c;
        }
        assert_eq!(
            capped.buckets().collect::<Vec<_>>(),
            expected.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn the_table_is_monotone_like_the_values() {
        let table = bucket_table(1e-6, 3);
        assert!(table[1..].windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn values_below_the_resolution_are_in_the_zero_bucket() {
        let e = built(&[0.0, 0.5e-6, 2e-6], 1e-6, ExponentialScale::fixed(3));
        assert_eq!(e.zero_count(), 2);
        assert_eq!(e.zero_threshold(), 1e-6);
        assert_eq!(e.total(), 3);
    }
}
