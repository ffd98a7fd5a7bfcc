//! Finding an observation's classic bucket in O(1).
//!
//! A binary search over 14 boundaries costs about four dependent,
//! hard-to-predict branches per record. Every record already computes its
//! HDR index (see [`layout`](super::layout)), so a family precomputes, for
//! each of the 2,688 HDR indexes, the first bucket any value with that index
//! can belong to, and whether every value with that index belongs to it
//! (*settled*: no boundary falls inside the index's range of values).
//! Recording takes a settled index's bucket with one table load and no
//! comparison; from an unsettled one (about one index per boundary) it steps
//! forward while the value exceeds the boundary. The table is exact by
//! construction (the start is never past the right bucket, a settled range
//! holds no boundary, and the forward scan is the definition of `le`), so
//! values on a boundary still count in that boundary's bucket.

use super::layout;

/// Bucket boundaries with their HDR-index lookup table, shared by every
/// series of a histogram family.
pub struct BucketMap {
    bounds: std::sync::Arc<[f64]>,
    /// What a record reads: shared with every series of the family.
    index: BucketIndex,
    /// The value of one HDR unit.
    resolution: f64,
    /// The exponential bucket of each HDR index at the scale last asked
    /// for (see `exponential::bucket_table`), built on first use.
    exponential: parking_lot::Mutex<Option<(i32, std::sync::Arc<[i32]>)>>,
}

/// What a record needs from its family's bucket map: the HDR scale and the
/// table from HDR index to classic bucket. Each series keeps a copy (two
/// floats and a reference-counted pointer), so a record goes from the series
/// straight to the table entry: after the caches were flushed, one cache
/// line fewer than through the map.
#[derive(Clone)]
pub(crate) struct BucketIndex {
    inv_resolution: f64,
    /// `layout::HIGHEST` as a float, the clamp's upper bound. Kept here
    /// rather than written as a constant: a float constant is loaded from
    /// the binary's read-only data, a cache line of its own for a record
    /// made after the caches were flushed, where this field shares the
    /// line the record reads `inv_resolution` from.
    highest_unit: f64,
    /// For each HDR index, a bucket index at or below the right one (low
    /// byte), with [`SETTLED`] when it is the right one for every value
    /// with that index.
    start: std::sync::Arc<[u16; layout::LEN]>,
}

impl BucketIndex {
    /// The HDR index of a non-NaN value (negatives map to 0, values beyond
    /// the tracked range to the last index).
    #[inline]
    pub(crate) fn hdr_index(&self, value: f64) -> usize {
        // Clamped as a float first, by comparisons that send NaN to 0 too
        // (`clamp` passes NaN through): negatives to 0, huge values and
        // infinities to the last unit. Then the conversion needs no
        // saturation: one instruction, where `as` adds five that check for
        // NaN and overflow, on every record (`peers/histogram_record`
        // measures it).
        let units = value * self.inv_resolution;
        let units = if units > 0.0 { units } else { 0.0 };
        let highest = self.highest_unit;
        let units = if units < highest { units } else { highest };
        // SAFETY: `units` is not NaN and lies in `0..=HIGHEST` (above), so
        // it truncates to an `i64` without overflow, which is all that
        // `to_int_unchecked` asks.
        layout::index_of_in_range(unsafe { units.to_int_unchecked::<i64>() } as u64)
    }

    /// The classic bucket of a non-NaN `value` whose HDR index is `hdr_index`
    /// (`bounds.len()` is the `+Inf` bucket); `bounds` are read only when
    /// the index is not settled.
    #[inline]
    pub(crate) fn bucket<'b>(
        &self,
        value: f64,
        hdr_index: usize,
        bounds: impl FnOnce() -> &'b [f64],
    ) -> usize {
        let entry = self.start[hdr_index];
        let mut i = usize::from(entry as u8);
        if entry & SETTLED == 0 {
            let bounds = bounds();
            while i < bounds.len() && value > bounds[i] {
                i += 1;
            }
        }
        i
    }
}

impl std::fmt::Debug for BucketMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketMap")
            .field("bounds", &self.bounds())
            .finish_non_exhaustive()
    }
}

/// Marks a [`BucketMap`] table entry whose bucket needs no comparison.
const SETTLED: u16 = 1 << 8;

impl BucketMap {
    /// Builds the table for boundaries already checked by `Buckets::check`
    /// (finite, strictly increasing, at most 255).
    pub(crate) fn new(bounds: std::sync::Arc<[f64]>) -> Self {
        // Track quantiles up to twice the last boundary, at the resolution
        // that fits that range into 2^27 units (1.2 µs for the GenAI duration
        // buckets, 1 token for the GenAI token buckets).
        let highest = bounds.last().copied().filter(|b| *b > 0.0).unwrap_or(1.0) * 2.0;
        let resolution = highest / layout::HIGHEST as f64;
        let mut start = std::sync::Arc::new([0u16; layout::LEN]);
        let table = std::sync::Arc::get_mut(&mut start).expect("just made");
        for (index, slot) in table.iter_mut().enumerate() {
            // Every value with this index lies in [floor, ceiling]: one unit
            // beyond each end absorbs float rounding. Index 0 also holds every
            // negative value, the last index every value beyond the range.
            let floor = match index {
                0 => f64::NEG_INFINITY,
                _ => (layout::value_at(index) as f64 - 1.0) * resolution,
            };
            let ceiling = match index + 1 {
                layout::LEN => f64::INFINITY,
                next => (layout::value_at(next) as f64 + 1.0) * resolution,
            };
            let first = bounds.partition_point(|&b| b < floor);
            let last = bounds.partition_point(|&b| b < ceiling);
            let settled = if first == last { SETTLED } else { 0 };
            *slot = u16::from(u8::try_from(first).expect("at most 255 boundaries")) | settled;
        }
        BucketMap {
            bounds,
            index: BucketIndex {
                inv_resolution: 1.0 / resolution,
                highest_unit: layout::HIGHEST as f64,
                start,
            },
            resolution,
            exponential: parking_lot::Mutex::new(None),
        }
    }

    /// Each HDR index's exponential bucket at `scale`, computed once per
    /// family (and again only when another scale is asked for).
    pub(crate) fn exponential_table(&self, scale: i32) -> std::sync::Arc<[i32]> {
        let mut cached = self.exponential.lock();
        match &*cached {
            Some((at, table)) if *at == scale => table.clone(),
            _ => {
                let table: std::sync::Arc<[i32]> =
                    super::exponential::bucket_table(self.resolution, scale).into();
                *cached = Some((scale, table.clone()));
                table
            }
        }
    }

    pub(crate) fn bounds(&self) -> &std::sync::Arc<[f64]> {
        &self.bounds
    }

    pub(crate) fn resolution(&self) -> f64 {
        self.resolution
    }

    /// What a record needs (see [`BucketIndex`]).
    pub(crate) fn index(&self) -> &BucketIndex {
        &self.index
    }

    /// The HDR index of a non-NaN value (negatives map to 0, values beyond
    /// the tracked range to the last index).
    #[inline]
    pub(crate) fn hdr_index(&self, value: f64) -> usize {
        self.index.hdr_index(value)
    }

    /// The classic bucket of a non-NaN `value` whose HDR index is `hdr_index`
    /// (`bounds.len()` is the `+Inf` bucket).
    #[inline]
    pub(crate) fn bucket(&self, value: f64, hdr_index: usize) -> usize {
        self.index.bucket(value, hdr_index, || &self.bounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Buckets;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn table_agrees_with_binary_search_everywhere() {
        for buckets in [
            Buckets::gen_ai_operation_duration(),
            Buckets::gen_ai_token_usage(),
            Buckets::prometheus_default(),
            Buckets::new([-5.0, -1.0, 0.0, 1e-9, 3.0]),
            Buckets::new([]),
        ] {
            let map = BucketMap::new(buckets.shared());
            let bounds = buckets.bounds();
            let mut probes = vec![0.0, -0.0, -1e9, 1e300, f64::INFINITY, f64::NEG_INFINITY];
            for b in bounds {
                probes.extend([*b, b.next_down(), b.next_up(), b * 0.999, b * 1.001]);
            }
            probes.extend((0..20_000).map(|i| 1e-7 * 1.0013f64.powi(i)));
            for v in probes {
                assert_eq!(
                    map.bucket(v, map.hdr_index(v)),
                    Buckets::index_of(bounds, v),
                    "value {v:e} with bounds {bounds:?}"
                );
            }
        }
    }

    /// Any finite value of the whole `f64` range, weighted towards the
    /// edges: zeros, subnormals, the smallest and largest normals.
    fn any_finite() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::num::f64::NORMAL
                | proptest::num::f64::SUBNORMAL
                | proptest::num::f64::ZERO
                | proptest::num::f64::NEGATIVE
                | proptest::num::f64::POSITIVE,
            Just(f64::MAX),
            Just(-f64::MAX),
            Just(f64::MIN_POSITIVE),
            Just(1e300),
            Just(1e-290),
        ]
        .prop_filter("finite", |v| v.is_finite())
    }

    /// The recording path's HDR index at the values where its unchecked
    /// conversion could go wrong; small enough for Miri (`scripts/test.sh`),
    /// which would report the undefined behaviour of an out-of-range
    /// `to_int_unchecked`.
    #[test]
    fn hdr_index_at_the_edges() {
        let map = BucketMap::new(Buckets::gen_ai_operation_duration().shared());
        let index = map.index();
        let unit = map.resolution();
        let highest = layout::HIGHEST as f64 * unit;
        for value in [
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            -f64::MAX,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            unit,
            unit.next_down(),
            highest,
            highest.next_up(),
            highest.next_down(),
            highest * 2.0,
        ] {
            // The same multiplication as the code, so only the clamp and the
            // conversion are compared, not two roundings.
            let units = value * index.inv_resolution;
            let plain = layout::index_of(if units > 0.0 { units as u64 } else { 0 });
            assert_eq!(index.hdr_index(value), plain, "value {value:e}");
            assert!(index.hdr_index(value) < layout::LEN);
        }
    }

    /// Every `f64` bit pattern: NaNs, infinities, subnormals, both zeros.
    fn any_bits() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(layout::HIGHEST as f64),
            Just((layout::HIGHEST as f64).next_up()),
            Just((layout::HIGHEST as f64).next_down()),
        ]
    }

    /// Any positive normal scale (the inverse of a resolution).
    fn any_scale() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        any_bits().prop_filter("a usable scale", |s| s.is_normal() && *s > 0.0)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// The recording path's HDR index (float clamp, unchecked
        /// conversion) is the plain definition: the saturating conversion
        /// of the value in HDR units, with NaN and negatives at 0, for every
        /// bit pattern and for scales from tiny to huge.
        #[test]
        #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
        fn hdr_index_is_the_saturating_definition(
            value in any_bits(),
            scale in any_scale(),
        ) {
            let index = BucketIndex { inv_resolution: scale, highest_unit: layout::HIGHEST as f64, start: BucketMap::new(Buckets::new([]).shared()).index().start.clone() };
            let units = value * scale;
            let plain = layout::index_of(if units > 0.0 { units as u64 } else { 0 });
            proptest::prop_assert_eq!(index.hdr_index(value), plain, "value {:e} scale {:e}", value, scale);
        }

        /// For every bucket set registration accepts and every finite value,
        /// the table's bucket is the plain definition's (first bound >= value).
        #[test]
        #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
        fn table_agrees_with_the_definition_over_all_of_f64(
            raw in proptest::collection::vec(any_finite(), 0..12),
            values in proptest::collection::vec(any_finite(), 1..64),
        ) {
            let mut bounds: Vec<f64> = raw
                .into_iter()
                .map(|b| b.clamp(-crate::histogram::buckets::MAX_BOUND, crate::histogram::buckets::MAX_BOUND))
                .collect();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup_by(|a, b| a == b);
            let buckets = Buckets::new(bounds);
            proptest::prop_assume!(buckets.check().is_ok());
            let map = BucketMap::new(buckets.shared());
            let bounds = buckets.bounds();
            let mut probes = values;
            for b in bounds {
                probes.extend([*b, b.next_down(), b.next_up()]);
            }
            for v in probes {
                proptest::prop_assert_eq!(
                    map.bucket(v, map.hdr_index(v)),
                    Buckets::index_of(bounds, v),
                    "value {:e} with bounds {:?}", v, bounds
                );
                proptest::prop_assert!(map.resolution().is_normal());
            }
        }
    }
}
