//! The HDR (high dynamic range) index layout used by per-thread histograms.
//!
//! Values are first scaled to integers in units of the histogram's
//! *resolution*, then laid out exactly as `hdrhistogram` lays out a
//! histogram with `lowest = 1`, `highest = 2^27 - 1` and 2 significant
//! figures: 128 linear sub-buckets per power of two, so any value is known to
//! within 1/128 (< 0.8 %) of itself. That is 2,688 counts.
//!
//! Because the layouts match, [`value_at`] of an index, recorded into an
//! `hdrhistogram::Histogram` built with [`new_merge_target`], lands in the same
//! bucket; merged reads then use the crate's quantile code.

/// log2 of the linear sub-buckets per power of two (2 significant figures).
const HALF_MAGNITUDE: u32 = 7;
const HALF_COUNT: usize = 1 << HALF_MAGNITUDE;
/// The largest integer value tracked; larger values are clamped to it.
pub(crate) const HIGHEST: u64 = (1 << 27) - 1;
/// Number of counts in one per-thread HDR array.
pub(crate) const LEN: usize = 2688;
const _: () = assert!(index_of(HIGHEST) == LEN - 1);

/// Position in the counts array of integer `value` (clamped to [`HIGHEST`]).
#[inline]
pub(crate) const fn index_of(value: u64) -> usize {
    index_of_in_range(if value > HIGHEST { HIGHEST } else { value })
}

/// [`index_of`] of a value already at most [`HIGHEST`] (the recording path
/// clamps as a float first).
#[inline]
pub(crate) const fn index_of_in_range(value: u64) -> usize {
    debug_assert!(value <= HIGHEST);
    // Power-of-two bucket: 0 for values below 256, then one per doubling.
    let bucket = (64 - HALF_MAGNITUDE - 1 - (value | 0xff).leading_zeros()) as usize;
    let sub_bucket = (value >> bucket) as usize;
    ((bucket + 1) << HALF_MAGNITUDE) + sub_bucket - HALF_COUNT
}

/// Lowest integer value that maps to `index`.
pub(crate) fn value_at(index: usize) -> u64 {
    let bucket = (index >> HALF_MAGNITUDE) as i64 - 1;
    let sub_bucket = (index & (HALF_COUNT - 1)) + HALF_COUNT;
    if bucket < 0 {
        (sub_bucket - HALF_COUNT) as u64
    } else {
        (sub_bucket as u64) << bucket
    }
}

/// An empty `hdrhistogram` with the same layout, to merge per-thread counts into.
pub(crate) fn new_merge_target() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, HIGHEST, 2)
        .expect("constant bounds 1..2^27 at 2 significant figures are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn layout_matches_hdrhistogram() {
        let reference = new_merge_target();
        for value in (0..HIGHEST)
            .step_by(997)
            .chain([0, 1, 255, 256, 257, 1 << 20, HIGHEST])
        {
            let index = index_of(value);
            assert!(index < LEN);
            assert!(
                value_at(index) <= value,
                "{value} maps below its bucket start"
            );
            assert!(
                reference.equivalent(value, value_at(index)),
                "{value} and its bucket start {} differ in hdrhistogram",
                value_at(index)
            );
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn relative_error_is_under_one_percent() {
        for value in [300u64, 1_000, 123_456, 99_999_999] {
            let start = value_at(index_of(value));
            assert!((value - start) as f64 / value as f64 <= 1.0 / 128.0);
        }
    }
}
