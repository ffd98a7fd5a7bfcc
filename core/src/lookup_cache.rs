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
//!   the handle's `TypeId`, so an entry is only ever read back as the type it
//!   was stored as.

use std::any::TypeId;
use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::family::{same_value, Metric, Series};

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
    handle_type: TypeId,
    /// From `Arc::into_raw` of an `Arc<Series<S>>`, where `S` is the storage
    /// of the handle type `handle_type`.
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

/// Runs `f` on the handle for `values`, from this thread's cache when it
/// holds it, otherwise from `resolve` (and then caches it).
#[inline]
pub(crate) fn with_handle<M: Metric, V: AsRef<str>, R>(
    key: Key,
    values: &[V],
    resolve: impl FnOnce() -> M,
    f: impl FnOnce(&M) -> R,
) -> R {
    let mut resolve = Some(resolve);
    let mut f = Some(f);
    let served = CACHE.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        let set = &mut cache[key.index()];
        for (way, slot) in set.iter().enumerate() {
            let Some(entry) = slot else { continue };
            if entry.key != key || entry.handle_type != TypeId::of::<M>() {
                continue;
            }
            // SAFETY: the entry was stored by `store::<M>` (same TypeId), so
            // `series` came from `Arc::into_raw` of an
            // `Arc<Series<M::Storage>>`, and the entry still owns that
            // reference while the cache is borrowed. `ManuallyDrop` keeps us
            // from giving back a reference we do not own.
            let handle = ManuallyDrop::new(M::from_series(unsafe {
                Arc::from_raw(entry.series.cast::<Series<M::Storage>>())
            }));
            if labels_match(&handle.series().label_values, values) {
                let result = f.take()?(&handle);
                if way > 0 {
                    set.swap(way - 1, way); // move towards the front
                }
                return Some(result);
            }
        }
        let handle = resolve.take()?();
        let result = f.take()?(&handle);
        // The overflow series' labels never match the values asked for, so
        // refused label sets are never cached and keep being counted.
        if labels_match(&handle.series().label_values, values) {
            // Evict the last entry, shift the others back, insert in front.
            set.rotate_right(1);
            set[0] = Some(store(key, handle));
        }
        Some(result)
    });
    match served {
        Ok(Some(result)) => result,
        // Re-entered from inside `f`, or the thread is tearing down.
        _ => {
            let handle = resolve.take().expect("resolve is used at most once")();
            f.take().expect("f is used at most once")(&handle)
        }
    }
}

fn store<M: Metric>(key: Key, handle: M) -> Entry {
    Entry {
        key,
        handle_type: TypeId::of::<M>(),
        series: Arc::into_raw(handle.into_series()).cast(),
        release: release::<M::Storage>,
    }
}
