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
//! * Family ids are unique for the life of the process, and the entry records
//!   the storage's `TypeId`, so an entry is only ever read back as the type it
//!   was stored as.
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

struct Entry {
    key: Key,
    storage_type: TypeId,
    /// From `Arc::into_raw` of an `Arc<Series<S>>`, where `S` is the storage
    /// type `storage_type`.
    series: *const (),
    /// Gives the strong reference back; knows the concrete `S`.
    release: unsafe fn(*const ()),
}

/// # Safety
/// `series` must come from `Arc::into_raw` of an `Arc<Series<S>>` whose
/// reference has not been given back yet.
unsafe fn release<S>(series: *const ()) {
    // SAFETY: guaranteed by the caller.
    drop(unsafe { Arc::from_raw(series.cast::<Series<S>>()) });
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: `series` and `release` were set together in `store` from
        // one `Arc::into_raw`, and each entry is dropped once.
        unsafe { (self.release)(self.series) }
    }
}

thread_local! {
    static CACHE: RefCell<[[Option<Entry>; WAYS]; SETS]> =
        const { RefCell::new([const { [const { None }; WAYS] }; SETS]) };
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
        for (way, slot) in set.iter().enumerate() {
            let Some(entry) = slot else { continue };
            if entry.key != key || entry.storage_type != TypeId::of::<S>() {
                continue;
            }
            // SAFETY: the entry was stored by `store::<S>` (same TypeId), so
            // `series` came from `Arc::into_raw` of an `Arc<Series<S>>`, and
            // the entry still owns that reference while the cache is
            // borrowed. `ManuallyDrop` keeps us from giving back a reference
            // we do not own.
            let series =
                ManuallyDrop::new(unsafe { Arc::from_raw(entry.series.cast::<Series<S>>()) });
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
            // Evict the last entry, shift the others back, insert in front.
            set.rotate_right(1);
            set[0] = Some(store(key, series));
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

fn store<S: Send + Sync + 'static>(key: Key, series: Arc<Series<S>>) -> Entry {
    Entry {
        key,
        storage_type: TypeId::of::<S>(),
        series: Arc::into_raw(series).cast(),
        release: release::<S>,
    }
}
