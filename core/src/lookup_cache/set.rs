//! One set of the cache: four ways from *(family, version, hash)* to a
//! series whose strong reference the way owns.

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::series::Series;

/// Sets in the cache.
pub(super) const SETS: usize = 64;
/// Entries per set, kept roughly in most-recently-used order.
pub(super) const WAYS: usize = 4;

/// What a way stores to recognise a label set: 12 bytes, so that the four
/// ways' tags share one cache line.
///
/// `family_version` holds the family's id (low half) and the low 32 bits
/// of its removal version (high half), so that a hit compares one word and
/// one half-word; `hash` is the label-set hash's low 32 bits with the low
/// bit set, so a lookup's tag is never the all-zero tag of an empty way.
/// Fewer bits than the full hash only ever cost a label comparison (a hit
/// always compares the values). A version that wrapped around cannot
/// revive a stale way: a way whose series was removed is let go at the
/// latest when its owner leaves the lookup it is in (the sweep in `reclaim::gate`),
/// long before 2^32 further removals.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(4))]
pub(super) struct Tag {
    family_version: u64,
    hash: u32,
}

impl Tag {
    fn family(&self) -> u32 {
        self.family_version as u32
    }
}

const EMPTY_TAG: Tag = Tag {
    family_version: 0,
    hash: 0,
};

/// A lookup's key: the tag the ways are compared with and the set it
/// lives in.
#[derive(Clone, Copy)]
pub(crate) struct Key {
    pub(super) tag: Tag,
    set: u32,
}

impl Key {
    /// The key of label-set hash `hash` in family `family` (0: a family
    /// that must never be cached, see [`next_family_id`]) at removal
    /// version `version`.
    #[inline]
    pub(crate) fn new(family: u32, version: u64, hash: u64) -> Key {
        let mixed = hash ^ u64::from(family).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Key {
            tag: Tag {
                family_version: u64::from(family) | version << 32,
                hash: hash as u32 | 1,
            },
            set: (mixed >> 58) as u32 % SETS as u32,
        }
    }

    pub(super) fn index(&self) -> usize {
        self.set as usize
    }

    /// Whether ways may hold this key's series: not for family 0.
    pub(super) fn cacheable(&self) -> bool {
        self.tag.family() != 0
    }
}

/// The next family id from `counter`: 1, 2, … up to `u32::MAX - 1`
/// (the counter stops at `u32::MAX`), then 0 for every later family. Ids must never repeat while a cache may hold a
/// way of the family (a way is read back as its family's storage type), so
/// rather than wrap, families past the four billionth get 0, which the
/// cache never stores: their lookups always take the family's index.
pub(crate) fn next_family_id(counter: &std::sync::atomic::AtomicU32) -> u32 {
    // `fetch_update` is `try_update` on nightly (Miri's toolchain); stable,
    // and so the crate's minimum Rust, has only this name.
    #[allow(deprecated)]
    counter
        .fetch_update(Relaxed, Relaxed, |id| id.checked_add(1))
        .map_or(0, |id| id)
}

/// One set of the cache, two cache lines. The first holds what every
/// lookup reads, hit or miss: the four ways' tags. The second holds what a
/// hit and a fill read: the
/// series pointers and how to release them. A lookup that misses after the
/// caches were flushed then loads one line for its set.
#[repr(C, align(64))]
pub(super) struct Set {
    /// `EMPTY_TAG` marks an empty way.
    pub(super) tags: [Tag; WAYS],
    _line_end: [u32; 4],
    /// From `Arc::into_raw` of an `Arc<Series<S>>`, where `S` is the storage
    /// type of the family the tag names; null for an empty way.
    pub(super) series: [*const (); WAYS],
    pub(super) owners: [Option<&'static Owner>; WAYS],
}

const _: () = assert!(
    std::mem::size_of::<Set>() == 128 && std::mem::offset_of!(Set, series) == 64,
    "a set is two cache lines, the tags in the first"
);

/// How to give a way's strong reference back, and ask about its series,
/// without knowing its storage type: one constant per storage type.
pub(super) struct Owner {
    /// Knows the concrete `S`.
    release: unsafe fn(*const ()),
    /// Knows the concrete `S`.
    removed: unsafe fn(*const ()) -> bool,
    /// `TypeId::of::<S>`, checked against the reader's in debug builds.
    pub(super) storage_type: fn() -> TypeId,
}

/// Holds the [`Owner`] of storage type `S`.
struct OwnerOf<S>(PhantomData<S>);

impl<S: Send + Sync + 'static> OwnerOf<S> {
    const OWNER: Owner = Owner {
        release: release::<S>,
        removed: removed::<S>,
        storage_type: TypeId::of::<S>,
    };
}

impl Set {
    pub(super) const EMPTY: Set = Set {
        tags: [EMPTY_TAG; WAYS],
        _line_end: [0; 4],
        series: [std::ptr::null(); WAYS],
        owners: [None; WAYS],
    };

    pub(super) fn swap(&mut self, a: usize, b: usize) {
        self.tags.swap(a, b);
        self.series.swap(a, b);
        self.owners.swap(a, b);
    }

    /// Evicts the last way, shifts the others back, and puts `series` (of
    /// storage type `S`) in front under `key`. Never called for a key that
    /// is not [`cacheable`](Key::cacheable).
    pub(super) fn insert_front<S: Send + Sync + 'static>(
        &mut self,
        key: Key,
        series: Arc<Series<S>>,
    ) {
        debug_assert!(key.cacheable());
        self.release(WAYS - 1);
        self.tags.rotate_right(1);
        self.series.rotate_right(1);
        self.owners.rotate_right(1);
        self.tags[0] = key.tag;
        self.series[0] = Arc::into_raw(series).cast();
        self.owners[0] = Some(&OwnerOf::<S>::OWNER);
    }

    /// Gives back the ways whose series were removed from their family;
    /// with `Some(family)`, only looks at that family's ways (a sweep for
    /// one removal need not read every cached series).
    pub(super) fn forget_removed(&mut self, family: Option<u32>) {
        for way in 0..WAYS {
            let Some(owner) = self.owners[way] else {
                continue;
            };
            if family.is_some_and(|f| f != self.tags[way].family()) {
                continue;
            }
            // SAFETY: `owners[way]` is set, so `series[way]` is the pointer
            // it was stored with in `insert_front`, whose reference the way
            // still owns (the series is alive), and `removed` knows its `S`.
            if unsafe { (owner.removed)(self.series[way]) } {
                self.release(way);
            }
        }
    }

    /// Gives way `way`'s reference back and empties it.
    fn release(&mut self, way: usize) {
        if let Some(owner) = self.owners[way].take() {
            // SAFETY: `series[way]` and `owners[way]` were set together in
            // `insert_front` from one `Arc::into_raw` of an
            // `Arc<Series<S>>` whose `S` `release` knows, moved together
            // since, and `take` makes this the only release of it.
            unsafe { (owner.release)(self.series[way]) };
        }
        self.tags[way] = EMPTY_TAG;
        self.series[way] = std::ptr::null();
    }
}

/// # Safety
/// `series` must come from `Arc::into_raw` of an `Arc<Series<S>>` whose
/// reference has not been given back yet.
unsafe fn release<S>(series: *const ()) {
    // SAFETY: guaranteed by the caller.
    drop(unsafe { Arc::from_raw(series.cast::<Series<S>>()) });
}

/// # Safety
/// As for [`release`]: `series` points to a live `Series<S>`.
unsafe fn removed<S>(series: *const ()) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe { &*series.cast::<Series<S>>() }
        .removed
        .load(Relaxed)
}

impl Set {
    /// Gives back every way's reference (the cache's teardown: a set has
    /// no destructor, see `ThreadCache`).
    pub(super) fn release_all(&mut self) {
        for way in 0..WAYS {
            self.release(way);
        }
    }
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Ids never wrap back to one in use: past `u32::MAX` every family gets
    /// 0, which is never cached.
    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn family_ids_end_at_zero_instead_of_wrapping() {
        let counter = AtomicU32::new(u32::MAX - 1);
        assert_eq!(next_family_id(&counter), u32::MAX - 1);
        assert_eq!(next_family_id(&counter), 0);
        assert_eq!(next_family_id(&counter), 0);
        assert!(!Key::new(0, 0, 0).cacheable());
        assert!(Key::new(1, 0, 0).cacheable());
    }

    /// A lookup's tag never equals an empty way's, whatever the family,
    /// version and hash (family 0 included), so an empty way is never
    /// read as a hit.
    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn no_key_matches_an_empty_way() {
        for (family, version, hash) in [(0, 0, 0), (0, 0, u64::MAX), (1, 0, 0), (0, 1 << 32, 2)] {
            let key = Key::new(family, version, hash);
            assert!(Set::EMPTY.tags.iter().all(|t| *t != key.tag));
        }
    }
}
