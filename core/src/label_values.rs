//! A series' label values, with their lengths, inside the series when they
//! are short.
//!
//! Every lookup compares the values it was given with a series' own (so a
//! hash collision can never merge two series): a per-thread cache hit, a
//! lookup through the family's lock-free index, one through its table. As a
//! list of boxed strings the values lived in three places or more (the list,
//! then each value); as one allocation (count, lengths, bytes) they were
//! still one pointer away from the series, so a lookup over more label sets
//! than the caches hold waited for the series, then for its values: one
//! more dependent load that missed the L2 cache on every lookup over 50,000
//! label sets, and half a line more where the allocation straddled two
//! lines. Here up to seven values of up to 40 bytes in all sit in 48 bytes
//! inside the series, which puts them in the cache line that also holds
//! what a record reads (see `Series`); longer values spill to one
//! allocation, as before.
//!
//! # Layout
//!
//! A header word, then 40 bytes:
//!
//! * **Inline.** The header's low byte holds the number of values `n`
//!   (at most 7), its byte `i + 1` the length of value `i` (a byte is
//!   enough: the values total at most 40 bytes). The 40 bytes hold the values' UTF-8 bytes back to back, then zeros.
//! * **Spilled** (more values, or more bytes). The header is [`SPILLED`],
//!   all ones: its low byte, 255, is no inline count. The 40 bytes start
//!   with a `Box<[u64]>`: word 0 holds `n`, words `1..=n` the lengths,
//!   and the bytes follow, back to back.
//!
//! Nothing changes after [`LabelValues::new`].
//!
//! A comparison builds the header the values *asked for* would have and
//! compares it with the stored one: one comparison for the count and every
//! length. Each stored value then starts where the sum of the asked lengths
//! before it says, so the loads of all values are independent of each
//! other, and all inside the 40 bytes (the stored lengths sum to at most 40).
//! The spilled form compares count and lengths one by one, the same way.

use std::mem::ManuallyDrop;

use crate::label_set::same_bytes;

/// Bytes of values kept inside the series.
const INLINE_BYTES: usize = 40;
/// Values kept inside the series: the header has a byte for the count and
/// one per value.
const INLINE_VALUES: usize = 7;
/// The header of spilled values.
const SPILLED: u64 = u64::MAX;

/// The label values of one series, in the family's label order.
#[repr(C)]
pub(crate) struct LabelValues {
    header: u64,
    body: Body,
}

/// The header says which field is in use.
#[repr(C)]
union Body {
    inline: [u8; INLINE_BYTES],
    spilled: ManuallyDrop<Box<[u64]>>,
}

// `Series` places the storage right after the values, in the same line.
const _: () = assert!(std::mem::size_of::<LabelValues>() == 48);

const WORD: usize = std::mem::size_of::<u64>();

/// Value `i`'s length as the inline header holds it: in byte `i + 1`
/// (`i < INLINE_VALUES`, `len <= 255`).
#[inline(always)]
fn length_byte(i: usize, len: usize) -> u64 {
    (len as u64) << (8 * (i + 1))
}

/// The inline header of values with these lengths, if they fit inline.
fn inline_header(lengths: impl Iterator<Item = usize>) -> Option<u64> {
    let (mut header, mut count, mut total) = (0u64, 0usize, 0usize);
    for len in lengths {
        total += len;
        if count == INLINE_VALUES || total > INLINE_BYTES {
            return None;
        }
        header |= length_byte(count, len);
        count += 1;
    }
    Some(header | count as u64)
}

/// The spilled form: count, lengths and bytes in one allocation.
fn spill<'v>(values: impl Iterator<Item = &'v str> + Clone) -> Box<[u64]> {
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
    words.into_boxed_slice()
}

impl LabelValues {
    /// Copies `values`: inside when they fit, to one allocation otherwise.
    pub(crate) fn new<'v>(values: impl Iterator<Item = &'v str> + Clone) -> LabelValues {
        let Some(header) = inline_header(values.clone().map(str::len)) else {
            return LabelValues {
                header: SPILLED,
                body: Body {
                    spilled: ManuallyDrop::new(spill(values)),
                },
            };
        };
        let mut inline = [0u8; INLINE_BYTES];
        let mut at = 0;
        for value in values {
            inline[at..at + value.len()].copy_from_slice(value.as_bytes());
            at += value.len();
        }
        LabelValues {
            header,
            body: Body { inline },
        }
    }

    /// The spilled form's words, if the values spilled.
    #[inline]
    fn spilled(&self) -> Option<&[u64]> {
        // SAFETY: the header says which field `new` wrote.
        (self.header == SPILLED).then(|| unsafe { &**self.body.spilled })
    }

    /// The number of values.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        match self.spilled() {
            Some(words) => words[0] as usize,
            None => (self.header & 0xff) as usize,
        }
    }

    /// Whether the values are exactly `values`, value by value (so
    /// `["ab", "c"]` never equals `["a", "bc"]`). Inlined always: every
    /// lookup runs it, a hot loop's included, and a call here shows in
    /// `peers/label_lookup_inc` (docs/design-notes.md).
    /// Spilled values are compared out of line: one call more for label
    /// sets over 40 bytes, and less code in every lookup.
    #[inline(always)]
    pub(crate) fn equals<V: AsRef<str>>(&self, values: &[V]) -> bool {
        // `SPILLED` is no inline header (its count byte is 255), so equal
        // headers mean inline values of the same count and lengths.
        match Self::header_of(values) {
            Some(asked) if asked == self.header => self.inline_equals(values),
            _ if self.header == SPILLED => self.spilled_equals(values),
            _ => false,
        }
    }

    /// The inline header `values` would have, or `None` if they could
    /// not be inline for their count or a length (their total is not
    /// checked: a header with a total over 40 bytes equals no stored one).
    #[inline(always)]
    fn header_of<V: AsRef<str>>(values: &[V]) -> Option<u64> {
        if values.len() > INLINE_VALUES {
            return None;
        }
        let mut header = values.len() as u64;
        let mut lengths = 0;
        for (i, value) in values.iter().enumerate() {
            let len = value.as_ref().len();
            lengths |= len;
            // `i < 7` (checked above); a length over 255 is refused below.
            header |= length_byte(i, len);
        }
        // A length over 255 would have carried into the next value's byte
        // (`["a" x 256, ""]` would read as `["", "a"]`).
        (lengths <= usize::from(u8::MAX)).then_some(header)
    }

    /// [`equals`](Self::equals) for inline values whose header equals the
    /// one asked for.
    #[inline(always)]
    fn inline_equals<V: AsRef<str>>(&self, values: &[V]) -> bool {
        debug_assert!(self.header != SPILLED);
        // SAFETY: the header is an inline one (the caller), so `new` wrote
        // the inline bytes.
        let inline = unsafe { &self.body.inline };
        let mut at = 0;
        for value in values {
            let value = value.as_ref().as_bytes();
            // SAFETY: the headers are equal, so the asked lengths are the
            // stored ones: `at` sums those before this value, and all of
            // them sum to at most `INLINE_BYTES` (`inline_header`).
            let stored = unsafe { inline.get_unchecked(at..at + value.len()) };
            if !same_bytes(stored, value) {
                return false;
            }
            at += value.len();
        }
        true
    }

    /// [`equals`](Self::equals) for spilled values.
    #[inline(never)]
    fn spilled_equals<V: AsRef<str>>(&self, values: &[V]) -> bool {
        let Some(words) = self.spilled() else {
            return false;
        };
        if words[0] != values.len() as u64 {
            return false;
        }
        let mut bytes = Self::spilled_bytes(words, values.len());
        for (i, value) in values.iter().enumerate() {
            let value = value.as_ref().as_bytes();
            if words[1 + i] != value.len() as u64 {
                return false;
            }
            // SAFETY: the values' bytes follow the lengths (`spill`); the
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
        let spilled = self.spilled();
        let count = self.len();
        let bytes = match spilled {
            Some(words) => Self::spilled_bytes(words, count),
            // SAFETY: not spilled, so `new` wrote the inline bytes.
            None => unsafe { self.body.inline.as_ptr() },
        };
        let header = self.header;
        let mut at = 0;
        (0..count).map(move |i| {
            let len = match spilled {
                Some(words) => words[1 + i] as usize,
                None => (header >> (8 * (i + 1))) as usize & 0xff,
            };
            // SAFETY: `new` wrote value after value, each `len` bytes of a
            // `&str`, from `bytes` on; `at` sums the lengths before this
            // one, so this is exactly that value's bytes, inside the inline
            // bytes or the allocation, and valid UTF-8.
            let value = unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(bytes.add(at), len))
            };
            at += len;
            value
        })
    }

    /// Where spilled values' bytes start, after `count` lengths.
    #[inline(always)]
    fn spilled_bytes(words: &[u64], count: usize) -> *const u8 {
        // In bounds (or one past the end for empty values): the allocation
        // has `1 + count` words before the bytes.
        words.as_ptr().wrapping_add(1 + count).cast::<u8>()
    }
}

impl Drop for LabelValues {
    fn drop(&mut self) {
        if self.header == SPILLED {
            // SAFETY: spilled, so `new` wrote the box, and it is dropped
            // once, here.
            unsafe { ManuallyDrop::drop(&mut self.body.spilled) }
        }
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

    /// The inline form holds up to seven values of up to 40 bytes in all;
    /// one more value or one more byte spills. Both forms compare, count
    /// and iterate alike.
    #[test]
    fn inline_and_spilled_boundaries() {
        let forty = "x".repeat(40);
        let forty_one = "x".repeat(41);
        let seven = ["a", "b", "c", "d", "e", "f", "g"];
        let eight = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let cases: [(&[&str], bool); 6] = [
            (&[forty.as_str()], true),
            (&[forty_one.as_str()], false),
            (&[&forty[..20], &forty[..20]], true),
            (&[&forty[..20], &forty[..21]], false),
            (&seven, true),
            (&eight, false),
        ];
        for (values, inline) in cases {
            let stored = LabelValues::new(values.iter().copied());
            assert_eq!(stored.spilled().is_none(), inline, "{values:?}");
            assert_eq!(stored.len(), values.len());
            assert_eq!(stored.iter().collect::<Vec<_>>(), values);
            assert!(stored.equals(values));
            assert!(!stored.equals(&values[1..]));
        }
        // An inline label set asked with eight values, and the other way.
        assert!(!LabelValues::new(seven.into_iter()).equals(&eight));
        assert!(!LabelValues::new(eight.into_iter()).equals(&seven));
    }

    /// A length over 255 does not fit the header's byte: asked for, it must
    /// not carry into the next value's byte and pass for another label set.
    #[test]
    fn a_long_asked_length_never_carries_into_the_next() {
        let stored = LabelValues::new(["", "a"].into_iter());
        let long = "a".repeat(256);
        // 256 in value 0's byte is 1 in value 1's byte: ["", "a"]'s header.
        assert!(!stored.equals(&[long.as_str(), ""]));
        assert!(stored.equals(&["", "a"]));
    }

    proptest! {
        /// The comparison against the plain definition: value-by-value
        /// equality of the lists.
        #[test]
        #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
        fn equals_is_value_by_value_equality(
            stored in proptest::collection::vec("[a-c]{0,20}", 0..9),
            other in proptest::collection::vec("[a-c]{0,20}", 0..9),
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
