//! A per-thread cache of resolved label sets.
//!
//! Resolving label values through a family's table costs a shared lock and a
//! reference-count increment, both atomic read-modify-writes on cache lines
//! that every thread touches, which is what makes labelled lookups slow and
//! collapse under contention in other libraries. Each thread therefore keeps
//! a small four-way set-associative cache (64 sets of 4 entries, 256 in
//! all) from *(family, label-value hash)* to the series, so a loop over a
//! few dozen label sets (models × tenants) stays in it: with two ways, the
//! one set in a hundred that three of them share would miss every time. A hit compares the label values (so a hash collision can
//! never merge two series), checks the family's removal version, and lends
//! the handle to the caller's closure: no lock, no atomic RMW, no allocation.
//!
//! # Protocol
//!
//! * An entry owns one strong reference to its series (`Arc::into_raw`), so
//!   the series outlives the entry even if the family removes it.
//! * `Family::remove` bumps the family's version; entries carry the version
//!   they were filled at and are ignored once it changes.
//! * The cache is a `RefCell`: while a closure runs on a borrowed handle the
//!   cache stays borrowed, so a nested lookup from inside the closure cannot
//!   evict the entry in use. Such nested lookups, and lookups during thread
//!   teardown, bypass the cache and take the family's table path.
//! * Family ids are unique for the life of the process (they start at 1; an
//!   empty way has family 0) and a family's storage type never changes, so a
//!   way whose key names a family holds that family's `Arc<Series<S>>` and is
//!   only ever read back as that type (debug builds also compare `TypeId`s).
//! * A set keeps what a lookup scans (keys, series pointers) in its first two
//!   cache lines and the owners (how to release each way) after them.
//! * The cache knows series, not handles: it lends `&Arc<Series<S>>` and the
//!   family turns that into a handle without a reference-count increment
//!   (`Sealed::lend`).

use std::any::TypeId;
use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::label_set::same_value;
use crate::series::Series;

/// Sets in the cache.
const SETS: usize = 64;
/// Entries per set, kept roughly in most-recently-used order.
const WAYS: usize = 4;

/// What identifies a cached label set.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) family: u64,
    pub(crate) version: u64,
    pub(crate) hash: u64,
}

impl Key {
    fn index(&self) -> usize {
        let mixed = self.hash ^ self.family.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 58) as usize % SETS
    }
}

/// One set of the cache. What a lookup scans, the keys and the series
/// pointers of the four ways, fills the first two cache lines; what only
/// filling and evicting need, the owners, comes after. A lookup right after
/// the caches were flushed then misses on two lines for the set, not on the
/// four or five that whole entries would span.
#[repr(C, align(64))]
struct Set {
    /// `family == 0` marks an empty way (family ids start at 1).
    keys: [Key; WAYS],
    /// From `Arc::into_raw` of an `Arc<Series<S>>`, where `S` is the storage
    /// type of the family the key names; null for an empty way.
    series: [*const (); WAYS],
    owners: [Option<Owner>; WAYS],
}

/// How to give a way's strong reference back.
#[derive(Clone, Copy)]
struct Owner {
    /// Knows the concrete `S`.
    release: unsafe fn(*const ()),
    /// `TypeId::of::<S>()`, checked against the reader's in debug builds.
    storage_type: TypeId,
}

const EMPTY_KEY: Key = Key {
    family: 0,
    version: 0,
    hash: 0,
};

impl Set {
    const EMPTY: Set = Set {
        keys: [EMPTY_KEY; WAYS],
        series: [std::ptr::null(); WAYS],
        owners: [None; WAYS],
    };

    fn swap(&mut self, a: usize, b: usize) {
        self.keys.swap(a, b);
        self.series.swap(a, b);
        self.owners.swap(a, b);
    }

    /// Evicts the last way, shifts the others back, and puts `series` (of
    /// storage type `S`) in front under `key`.
    fn insert_front<S: Send + Sync + 'static>(&mut self, key: Key, series: Arc<Series<S>>) {
        self.release(WAYS - 1);
        self.keys.rotate_right(1);
        self.series.rotate_right(1);
        self.owners.rotate_right(1);
        self.keys[0] = key;
        self.series[0] = Arc::into_raw(series).cast();
        self.owners[0] = Some(Owner {
            release: release::<S>,
            storage_type: TypeId::of::<S>(),
        });
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

impl Drop for Set {
    fn drop(&mut self) {
        for way in 0..WAYS {
            self.release(way);
        }
    }
}

thread_local! {
    static CACHE: RefCell<[Set; SETS]> = const { RefCell::new([Set::EMPTY; SETS]) };
}

fn labels_match<V: AsRef<str>>(stored: &[Box<str>], values: &[V]) -> bool {
    stored.len() == values.len()
        && stored
            .iter()
            .zip(values)
            .all(|(a, b)| same_value(a, b.as_ref()))
}

/// What resolving a label set through the family's table gave.
pub(crate) struct Resolved<S> {
    pub(crate) series: Arc<Series<S>>,
    /// False for the overflow series: a refused label set must miss the
    /// cache every time so that every refusal is counted (even when the
    /// value asked for happens to equal the overflow series' own `"true"`).
    pub(crate) cacheable: bool,
}

/// Runs `f` on the series for `values`, from this thread's cache when it
/// holds it, otherwise from `resolve` (and then caches it).
#[inline]
pub(crate) fn with_series<S: Send + Sync + 'static, V: AsRef<str>, R>(
    key: Key,
    values: &[V],
    resolve: impl FnOnce() -> Resolved<S>,
    f: impl FnOnce(&Arc<Series<S>>) -> R,
) -> R {
    let mut resolve = Some(resolve);
    let mut f = Some(f);
    let served = CACHE.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        let set = &mut cache[key.index()];
        for way in 0..WAYS {
            if set.keys[way] != key {
                continue;
            }
            debug_assert!(
                set.owners[way].is_some_and(|o| o.storage_type == TypeId::of::<S>()),
                "a family's id names one storage type"
            );
            // SAFETY: a non-empty way whose key names this family was filled
            // by `insert_front::<S>` with this family's storage type `S`
            // (family ids are unique for the life of the process and a
            // family's storage type never changes; empty ways have family 0,
            // which no family has), so `series[way]` came from
            // `Arc::into_raw` of an `Arc<Series<S>>`, and the way still owns
            // that reference while the cache is borrowed. `ManuallyDrop`
            // keeps us from giving back a reference we do not own.
            let series =
                ManuallyDrop::new(unsafe { Arc::from_raw(set.series[way].cast::<Series<S>>()) });
            if labels_match(&series.label_values, values) {
                let result = f.take()?(&series);
                if way > 0 {
                    set.swap(way - 1, way); // move towards the front
                }
                return Some(result);
            }
        }
        let Resolved { series, cacheable } = resolve.take()?();
        let result = f.take()?(&series);
        if cacheable {
            set.insert_front(key, series);
        }
        Some(result)
    });
    match served {
        Ok(Some(result)) => result,
        // Re-entered from inside `f`, or the thread is tearing down.
        _ => match (resolve.take(), f.take()) {
            (Some(resolve), Some(f)) => f(&resolve().series),
            // `f` ran but returned nothing through the cache path: cannot
            // happen, as every path that takes `f` returns `Some`.
            _ => unreachable!("the lookup cache consumed its closure without a result"),
        },
    }
}
