//! A series' label values, with their lengths, in one allocation.
//!
//! Every lookup compares the values it was given with a series' own (so a
//! hash collision can never merge two series): a per-thread cache hit, a
//! lookup through the family's lock-free index, one through its table. As a
//! list of boxed strings the values lived in three places or more (the list,
//! then each value): as many cache lines to load when the caches are cold,
//! and as many allocations per series. Here the count, the lengths and the
//! bytes share one allocation, so the values of a 2-label series and their
//! lengths are one line.
//!
//! # Layout
//!
//! One `Box<[u64]>`: word 0 holds the number of values `n`, words `1..=n`
//! their lengths in bytes, in order; their UTF-8 bytes follow, back to back
//! (value `i` starts after the lengths plus the lengths of the values
//! before it). Nothing in it changes after [`LabelValues::new`].
//!
//! A comparison computes where each stored value starts from the lengths of
//! the values *asked for*, so the loads of all values are independent of
//! each other. That is exact: it only reads value `i` once the lengths of
//! the values before it matched, so each stored value starts where the
//! computed offset says, inside the allocation.

use crate::label_set::same_bytes;

/// The label values of one series, in the family's label order.
pub(crate) struct LabelValues(Box<[u64]>);

const WORD: usize = std::mem::size_of::<u64>();

impl LabelValues {
    /// Copies `values` into one allocation.
    pub(crate) fn new<'v>(values: impl Iterator<Item = &'v str> + Clone) -> LabelValues {
        let count = values.clone().count();
        let bytes: usize = values.clone().map(str::len).sum();
        let mut words = vec![0u64; 1 + count + bytes.div_ceil(WORD)];
        words[0] = count as u64;
        let mut packed = Vec::with_capacity(bytes);
        for (i, value) in values.enumerate() {
            words[1 + i] = value.len() as u64;
            packed.extend_from_slice(value.as_bytes());
        }
        for (word, chunk) in words[1 + count..].iter_mut().zip(packed.chunks(WORD)) {
            let mut in_order = [0u8; WORD];
            in_order[..chunk.len()].copy_from_slice(chunk);
            // Native order, so that the bytes lie in memory as given.
            *word = u64::from_ne_bytes(in_order);
        }
        LabelValues(words.into_boxed_slice())
    }

    /// The number of values.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.0[0] as usize
    }

    /// Whether the values are exactly `values`, value by value (so
    /// `["ab", "c"]` never equals `["a", "bc"]`). Inlined always: every
    /// lookup runs it, a hot loop's included (a per-thread cache hit took
    /// 1.7 ns longer when the compiler chose not to inline its comparison).
    #[inline(always)]
    pub(crate) fn equals<V: AsRef<str>>(&self, values: &[V]) -> bool {
        let words = self.0.as_ptr();
        // SAFETY: the allocation has word 0, the count (`new`).
        if unsafe { *words } != values.len() as u64 {
            return false;
        }
        let mut bytes = self.bytes_start(values.len());
        for (i, value) in values.iter().enumerate() {
            let value = value.as_ref().as_bytes();
            // SAFETY: words `1..=n` hold the lengths, and `i < n` (the
            // count equals `values.len()`).
            if unsafe { *words.add(1 + i) } != value.len() as u64 {
                return false;
            }
            // SAFETY: the values' bytes follow the lengths (`new`); the
            // values before this one had the lengths asked for, so this one
            // starts at `bytes` and its stored length, equal to
            // `value.len()`, keeps it inside the allocation.
            let stored = unsafe { std::slice::from_raw_parts(bytes, value.len()) };
            if !same_bytes(stored, value) {
                return false;
            }
            bytes = bytes.wrapping_add(value.len());
        }
        true
    }

    /// The values, in order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        let count = self.len();
        let bytes = self.bytes_start(count);
        let mut at = 0;
        self.0[1..=count].iter().map(move |&len| {
            let len = len as usize;
            // SAFETY: `new` wrote value after value, each `len` bytes of a
            // `&str`, starting where the lengths end; `at` sums the lengths
            // before this one, so this is exactly that value's bytes, in
            // the allocation, and valid UTF-8.
            let value = unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(bytes.add(at), len))
            };
            at += len;
            value
        })
    }

    /// Where the values' bytes start, after `count` lengths.
    #[inline(always)]
    fn bytes_start(&self, count: usize) -> *const u8 {
        // In bounds (or one past the end for empty values): the allocation
        // has `1 + count` words before the bytes.
        self.0.as_ptr().wrapping_add(1 + count).cast::<u8>()
    }
}

impl std::fmt::Debug for LabelValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The values given, each possibly cut short or with one byte changed:
    /// near misses for the comparison.
    fn near(values: &[String], cut: usize, flip: Option<usize>) -> Vec<String> {
        let mut asked = values.to_vec();
        if let Some(value) = asked.get_mut(cut % values.len().max(1)) {
            value.truncate(cut / 4);
        }
        if let Some(i) = flip {
            if let Some(value) = asked.get_mut(i) {
                if !value.is_empty() {
                    let last = value.pop().unwrap();
                    value.push(if last == 'a' { 'b' } else { 'a' });
                }
            }
        }
        asked
    }

    #[test]
    fn value_boundaries_count() {
        let stored = LabelValues::new(["ab", "c"].into_iter());
        assert!(stored.equals(&["ab", "c"]));
        assert!(!stored.equals(&["a", "bc"]));
        assert!(!stored.equals(&["abc", ""]));
        assert!(!stored.equals(&["ab"]));
        assert!(!stored.equals(&["ab", "c", ""]));
    }

    #[test]
    fn empty_and_long_values_round_trip() {
        let long = "x".repeat(1024);
        let values = ["", long.as_str(), "", "é"];
        let stored = LabelValues::new(values.into_iter());
        assert_eq!(stored.len(), 4);
        assert_eq!(stored.iter().collect::<Vec<_>>(), values);
        assert!(stored.equals(&values));
        let none = LabelValues::new(std::iter::empty());
        assert_eq!(none.len(), 0);
        assert!(none.equals::<&str>(&[]));
        assert!(!none.equals(&[""]));
    }

    proptest! {
        /// The comparison against the plain definition: value-by-value
        /// equality of the lists.
        #[test]
        fn equals_is_value_by_value_equality(
            stored in proptest::collection::vec("[a-c]{0,20}", 0..4),
            other in proptest::collection::vec("[a-c]{0,20}", 0..4),
            cut in 0usize..40,
            flip in proptest::option::of(0usize..4),
        ) {
            let packed = LabelValues::new(stored.iter().map(String::as_str));
            prop_assert!(packed.equals(&stored));
            prop_assert_eq!(packed.equals(&other), stored == other);
            let asked = near(&stored, cut, flip);
            prop_assert_eq!(packed.equals(&asked), stored == asked);
            prop_assert_eq!(packed.iter().collect::<Vec<_>>(), stored.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
