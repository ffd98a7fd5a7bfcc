//! A series' label values packed into one allocation, as the family's
//! lock-free index compares them.
//!
//! A lookup that misses the per-thread cache compares the values it was
//! given with the series' own. Kept as a list of boxed strings those live
//! in three or more places (the list, then each value), every one a cache
//! line to load when the caches are cold; packed, two short values share
//! one line with their lengths. The list stays, for the cache's hit path
//! and for everything else: compared from the packed form, a hit took
//! 0.7 ns longer (`label_lookup_inc/with`, 9.3 -> 10.0 ns), 34 more
//! instructions for the lengths' bounds checks and offsets.
//!
//! Layout: per value, its length in bytes as a little-endian `u32`, then
//! its UTF-8 bytes; nothing is aligned and there is no count in front (a
//! comparison checks the allocation's size instead).

use crate::label_set::same_bytes;

/// The label values of one series, in the family's label order, packed.
pub(crate) struct PackedValues(Box<[u8]>);

impl PackedValues {
    /// Packs `values`. Lengths past `u32::MAX` cannot occur: values are at
    /// most [`MAX_LABEL_VALUE_BYTES`](crate::MAX_LABEL_VALUE_BYTES) long.
    pub(crate) fn new<'v>(values: impl Iterator<Item = &'v str> + Clone) -> PackedValues {
        let bytes: usize = values.clone().map(|v| 4 + v.len()).sum();
        let mut packed = Vec::with_capacity(bytes);
        for value in values {
            packed.extend_from_slice(&(value.len() as u32).to_le_bytes());
            packed.extend_from_slice(value.as_bytes());
        }
        PackedValues(packed.into_boxed_slice())
    }

    /// Whether the values are exactly `values`, value by value (so
    /// `["ab", "c"]` never equals `["a", "bc"]`). Inlined: every lookup
    /// that misses the cache runs it.
    ///
    /// Where each stored value starts is computed from the lengths of the
    /// values asked for, not read from the stored lengths one after the
    /// other, so the loads of all values are independent of each other.
    /// That is exact: each stored length must equal the value's, so each
    /// stored value starts where the computed offset says, and the last
    /// one must end where the allocation ends.
    #[inline]
    pub(crate) fn equals<V: AsRef<str>>(&self, values: &[V]) -> bool {
        let packed: &[u8] = &self.0;
        let mut at = 0;
        for value in values {
            let value = value.as_ref().as_bytes();
            let end = at + 4 + value.len();
            let Some((len, stored)) = packed.get(at..end).and_then(|s| s.split_first_chunk::<4>())
            else {
                return false;
            };
            if u32::from_le_bytes(*len) as usize != value.len() || !same_bytes(stored, value) {
                return false;
            }
            at = end;
        }
        at == packed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn value_boundaries_count() {
        let packed = PackedValues::new(["ab", "c"].into_iter());
        assert!(packed.equals(&["ab", "c"]));
        assert!(!packed.equals(&["a", "bc"]));
        assert!(!packed.equals(&["abc", ""]));
        assert!(!packed.equals(&["ab"]));
        assert!(!packed.equals(&["ab", "c", ""]));
        let none = PackedValues::new(std::iter::empty());
        assert!(none.equals::<&str>(&[]));
        assert!(!none.equals(&[""]));
    }

    /// Value lists that often differ only in where one value ends and the
    /// next begins, or in one byte.
    fn near(stored: &[String], cut: usize, flip: Option<usize>) -> Vec<String> {
        let joined: String = stored.concat();
        let mut asked = stored.to_vec();
        if let (Some(first), true) = (asked.first_mut(), stored.len() > 1) {
            let at = cut.min(joined.len());
            if joined.is_char_boundary(at) {
                *first = joined[..at].to_string();
                asked[1..].iter_mut().for_each(String::clear);
                asked[1] = joined[at..].to_string();
            }
        }
        if let Some(i) = flip {
            if let Some(v) = asked.get_mut(i % stored.len().max(1)) {
                v.push('x');
            }
        }
        asked
    }

    proptest! {
        /// `equals` is the plain definition: same number of values, each
        /// equal.
        #[test]
        fn equals_is_value_by_value_equality(
            stored in proptest::collection::vec("[a-c]{0,20}", 0..4),
            other in proptest::collection::vec("[a-c]{0,20}", 0..4),
            cut in 0usize..40,
            flip in proptest::option::of(0usize..4),
        ) {
            let packed = PackedValues::new(stored.iter().map(String::as_str));
            prop_assert!(packed.equals(&stored));
            prop_assert_eq!(packed.equals(&other), stored == other);
            let asked = near(&stored, cut, flip);
            prop_assert_eq!(packed.equals(&asked), stored == asked);
        }
    }
}
