//! Label sets: how a list of label values is hashed, compared and checked
//! against a family's label names. Shared by the family table and the
//! per-thread lookup cache, so both agree on what "the same label set" means.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use crate::desc::Descriptor;
use crate::error::LabelError;
use crate::name::MAX_LABEL_VALUE_BYTES;

/// Up to 8 bytes as one word, without a call to `memcpy`. For a given
/// length the word is unique to the bytes (the reads cover every byte), so
/// equal lengths plus equal words mean equal strings.
#[inline]
fn short_word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    debug_assert!(n <= 8);
    let u32_at = |i: usize| u64::from(u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()));
    if n >= 4 {
        u32_at(0) | u32_at(n - 4) << 32
    } else if n > 0 {
        u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16
    } else {
        0
    }
}

/// Byte-string equality without a call to `memcmp` up to 16 bytes: one
/// word per side up to 8 bytes, the first and last 8 bytes (which overlap)
/// up to 16.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    let word_at = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
    n == b.len()
        && if n <= 8 {
            short_word(a) == short_word(b)
        } else if n <= 16 {
            word_at(a, 0) == word_at(b, 0) && word_at(a, n - 8) == word_at(b, n - 8)
        } else {
            a == b
        }
}

/// Hashes label values with a per-process random seed: a folded 128-bit
/// multiply per value of up to 8 bytes, two for 9 to 16 (its first and
/// last eight bytes), one per 8-byte word beyond, keyed by
/// the value's length so value boundaries count. Collisions only cost a
/// comparison: lookups always compare the values themselves.
///
/// `Err(i)` when value `i` is longer than [`MAX_LABEL_VALUE_BYTES`], found
/// before it is hashed: the length check rides on the branch long values
/// take anyway, so short values pay nothing for it.
#[inline]
pub(crate) fn hash_values<S: AsRef<str>>(seed: u64, values: &[S]) -> Result<u64, usize> {
    hash_strs(seed, values.iter().map(AsRef::as_ref))
}

/// [`hash_values`] of values given one by one (a series' own, for one).
#[inline(always)]
pub(crate) fn hash_strs<'v>(
    seed: u64,
    values: impl Iterator<Item = &'v str>,
) -> Result<u64, usize> {
    #[inline]
    fn mix(h: u64, word: u64, key: u64) -> u64 {
        let product = u128::from(h ^ word) * u128::from(key ^ 0x9E37_79B9_7F4A_7C15);
        (product as u64) ^ ((product >> 64) as u64)
    }
    let mut h = seed;
    for (i, value) in values.enumerate() {
        let bytes = value.as_bytes();
        let len = bytes.len() as u64;
        if bytes.len() <= 8 {
            h = mix(h, short_word(bytes), len);
            continue;
        }
        if bytes.len() <= 16 {
            // The first and the last eight bytes (which overlap below 16)
            // cover every byte, so at a given length they are unique to the
            // value, as `short_word` is below 8: no loop for the lengths
            // model names and tenant ids often have.
            let word_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
            h = mix(h, word_at(0), len);
            h = mix(h, word_at(bytes.len() - 8), len);
            continue;
        }
        if bytes.len() > MAX_LABEL_VALUE_BYTES {
            return Err(i);
        }
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            h = mix(h, u64::from_le_bytes(chunk.try_into().unwrap()), len);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            h = mix(h, short_word(rest), len);
        }
    }
    Ok(h)
}

#[inline]
pub(crate) fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new().hash_one(0x6265_6c75_6761u64)
    })
}

/// Checks that `got` values were given for the family described by `desc`.
#[inline]
pub(crate) fn check_count(desc: &Descriptor, got: usize) -> Result<(), LabelError> {
    let expected = desc.label_names.len();
    if got == expected {
        return Ok(());
    }
    Err(LabelError::CountMismatch {
        metric: desc.name.to_string(),
        expected,
        got,
    })
}

/// The error for value `label` of the family described by `desc`, which is
/// `bytes` long, past [`MAX_LABEL_VALUE_BYTES`].
#[cold]
pub(crate) fn value_too_long(desc: &Descriptor, label: usize, bytes: usize) -> LabelError {
    LabelError::ValueTooLong {
        metric: desc.name.to_string(),
        label: desc.label_names[label].to_string(),
        bytes,
    }
}

/// Puts `(name, value)` pairs into the label order of the family described
/// by `desc`: every label exactly once, no others.
pub(crate) fn order_pairs<'v>(
    desc: &Descriptor,
    pairs: impl Iterator<Item = (&'v str, &'v str)>,
) -> Result<Vec<&'v str>, LabelError> {
    let names = &desc.label_names;
    let metric = || desc.name.to_string();
    let mut values: Vec<Option<&str>> = vec![None; names.len()];
    for (name, value) in pairs {
        let Some(i) = names.iter().position(|n| **n == *name) else {
            return Err(LabelError::UnknownLabel {
                metric: metric(),
                label: name.to_string(),
            });
        };
        if values[i].replace(value).is_some() {
            return Err(LabelError::DuplicateLabel {
                metric: metric(),
                label: name.to_string(),
            });
        }
    }
    values
        .iter()
        .zip(names.iter())
        .map(|(v, name)| {
            v.ok_or_else(|| LabelError::MissingLabel {
                metric: metric(),
                label: name.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn short_value_equality_is_exact() {
        let values = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "abcd",
            "abdc",
            "abcde",
            "abcdefg",
            "abcdefgh",
            "abcdefgX",
            "Xbcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnoX",
            "Xbcdefghijklmnop",
            "abcdefghXjklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopX",
            "\0",
            "\0\0",
        ];
        for a in values {
            for b in values {
                let same = same_bytes(a.as_bytes(), b.as_bytes());
                assert_eq!(same, a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn every_byte_of_a_value_counts_in_the_hash() {
        // Every length through the one-word, two-word and chunked paths.
        for len in 1..=40 {
            let value: Vec<u8> = (0..len as u8).map(|i| b'a' + i % 26).collect();
            let hash = |bytes: &[u8]| hash_values(7, &[std::str::from_utf8(bytes).unwrap()]);
            for at in 0..len {
                let mut changed = value.clone();
                changed[at] = b'Z';
                assert_ne!(hash(&value), hash(&changed), "length {len}, byte {at}");
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn value_boundaries_are_part_of_the_hash() {
        let seed = 42;
        assert_ne!(
            hash_values(seed, &["ab", "c"]),
            hash_values(seed, &["a", "bc"])
        );
        assert_ne!(hash_values(seed, &["", "x"]), hash_values(seed, &["x", ""]));
        assert_eq!(
            hash_values(seed, &["gpt-4o", "free"]),
            hash_values(seed, &[String::from("gpt-4o"), String::from("free")])
        );
        let long = "x".repeat(MAX_LABEL_VALUE_BYTES + 1);
        let at_limit = "x".repeat(MAX_LABEL_VALUE_BYTES);
        assert_eq!(hash_values(seed, &["a", &long]), Err(1));
        assert!(hash_values(seed, &[&at_limit, "b"]).is_ok());
    }
}
