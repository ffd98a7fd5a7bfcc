//! One set of the cache: four ways from *(family, version, hash)* to a
//! series whose strong reference the way owns.

use std::any::TypeId;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::series::Series;

/// Sets in the cache.
pub(super) const SETS: usize = 64;
/// Entries per set, kept roughly in most-recently-used order.
pub(super) const WAYS: usize = 4;

/// What identifies a cached label set.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) family: u64,
    pub(crate) version: u64,
    pub(crate) hash: u64,
}

impl Key {
    pub(super) fn index(&self) -> usize {
        let mixed = self.hash ^ self.family.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 58) as usize % SETS
    }
}

/// One set of the cache. What a lookup scans, the keys and the series
/// pointers of the four ways, fills the first two cache lines; what only
/// filling, evicting and sweeping need, the owners, comes after. A lookup
/// right after the caches were flushed then misses on two lines for the
/// set, not on the four or five that whole entries would span.
#[repr(C, align(64))]
pub(super) struct Set {
    /// `family == 0` marks an empty way (family ids start at 1).
    pub(super) keys: [Key; WAYS],
    /// From `Arc::into_raw` of an `Arc<Series<S>>`, where `S` is the storage
    /// type of the family the key names; null for an empty way.
    pub(super) series: [*const (); WAYS],
    pub(super) owners: [Option<Owner>; WAYS],
}

/// Keys a set remembers having missed without caching them.
const MISS_TAGS: usize = 2;

/// Tags of the last keys that missed a set without being cached (0: none),
/// kept beside the sets (not in them: a set stays four cache lines, and a
/// hit never reads this).
#[derive(Clone, Copy)]
pub(super) struct Misses([u32; MISS_TAGS]);

impl Misses {
    pub(super) const NONE: Misses = Misses([0; MISS_TAGS]);

    /// Whether `key` missed recently (then it is worth caching); otherwise
    /// remembers that it did, in place of the oldest such key. Inlined, and
    /// without `rotate_right` (a call to `memmove` for two words): it runs
    /// on every lookup that misses the cache.
    #[inline]
    pub(super) fn missed_before(&mut self, key: Key) -> bool {
        let tag = ((key.hash ^ key.family.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as u32 | 1;
        let [newest, _] = self.0;
        if self.0.contains(&tag) {
            return true;
        }
        self.0 = [tag, newest];
        false
    }
}

const _: () = assert!(
    std::mem::size_of::<Set>() == 256,
    "a set is four cache lines"
);

/// How to give a way's strong reference back, and ask about its series,
/// without knowing its storage type.
#[derive(Clone, Copy)]
pub(super) struct Owner {
    /// Knows the concrete `S`.
    release: unsafe fn(*const ()),
    /// Knows the concrete `S`.
    removed: unsafe fn(*const ()) -> bool,
    /// `TypeId::of::<S>()`, checked against the reader's in debug builds.
    pub(super) storage_type: TypeId,
}

const EMPTY_KEY: Key = Key {
    family: 0,
    version: 0,
    hash: 0,
};

impl Set {
    pub(super) const EMPTY: Set = Set {
        keys: [EMPTY_KEY; WAYS],
        series: [std::ptr::null(); WAYS],
        owners: [None; WAYS],
    };

    pub(super) fn swap(&mut self, a: usize, b: usize) {
        self.keys.swap(a, b);
        self.series.swap(a, b);
        self.owners.swap(a, b);
    }

    /// Evicts the last way, shifts the others back, and puts `series` (of
    /// storage type `S`) in front under `key`.
    pub(super) fn insert_front<S: Send + Sync + 'static>(
        &mut self,
        key: Key,
        series: Arc<Series<S>>,
    ) {
        self.release(WAYS - 1);
        self.keys.rotate_right(1);
        self.series.rotate_right(1);
        self.owners.rotate_right(1);
        self.keys[0] = key;
        self.series[0] = Arc::into_raw(series).cast();
        self.owners[0] = Some(Owner {
            release: release::<S>,
            removed: removed::<S>,
            storage_type: TypeId::of::<S>(),
        });
    }

    /// Gives back the ways whose series were removed from their family;
    /// with `Some(family)`, only looks at that family's ways (a sweep for
    /// one removal need not read every cached series).
    pub(super) fn forget_removed(&mut self, family: Option<u64>) {
        for way in 0..WAYS {
            let Some(owner) = self.owners[way] else {
                continue;
            };
            if family.is_some_and(|f| f != self.keys[way].family) {
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
        self.keys[way] = EMPTY_KEY;
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

impl Drop for Set {
    fn drop(&mut self) {
        for way in 0..WAYS {
            self.release(way);
        }
    }
}
