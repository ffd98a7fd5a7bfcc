//! A per-thread cache of resolved label sets.
//!
//! Resolving label values through a family's table costs a shared lock and a
//! reference-count increment, both atomic read-modify-writes on cache lines
//! that every thread touches, which is what makes labelled lookups slow and
//! collapse under contention in other libraries. Each thread therefore keeps
//! a small four-way set-associative cache (64 sets of 4 entries, 256 in
//! all) from *(family, label-value hash)* to the series, so a loop over a
//! few dozen label sets (models × tenants) stays in it: with two ways, the
//! one set in a hundred that three of them share would miss every time. A
//! hit compares the label values (so a hash collision can never merge two
//! series), checks the family's removal version, and lends
//! the handle to the caller's closure: no lock, no atomic RMW, no allocation.
//!
//! # Protocol
//!
//! * An entry owns one strong reference to its series (`Arc::into_raw`), so
//!   the series outlives the entry even if the family removes it.
//! * `Family::remove` bumps the family's version; entries carry the version
//!   they were filled at and are ignored once it changes. It also marks the
//!   series removed and *sweeps*: every thread's cache lets go of removed
//!   series at once if its owner is not inside a lookup, otherwise when the
//!   owner leaves it, so a removed series' memory goes even when the threads
//!   that cached it never record again ([`gate`] has that protocol).
//! * The owner holds its cache through the gate for the whole lookup,
//!   including the caller's closure, so a nested lookup from inside the
//!   closure cannot evict the entry in use: such nested lookups, lookups
//!   that meet a sweep in progress, and lookups during thread teardown
//!   bypass the cache and take the family's table path.
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
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::label_set::same_value;
use crate::process_fence;
use crate::series::Series;

mod gate;
mod set;

use gate::{Entry, Gate};
pub(crate) use set::Key;
use set::{Set, SETS, WAYS};

/// One thread's cache. The gate sits in its own cache line ahead of the
/// sets; it plays the part a `RefCell`'s borrow flag would otherwise play.
#[repr(C)]
struct ThreadCache {
    gate: Gate,
    listing: Listing,
    /// Only touched by whoever holds the gate: the owner between `enter`
    /// and `leave`, or a sweeper between `owner_is_out` and `unclaim`.
    sets: UnsafeCell<[Set; SETS]>,
}

#[cfg(not(loom))]
thread_local! {
    static CACHE: ThreadCache = const {
        ThreadCache {
            gate: Gate::new(),
            listing: Listing(Cell::new(std::ptr::null())),
            sets: UnsafeCell::new([Set::EMPTY; SETS]),
        }
    };
}

// Loom's atomics cannot be built in a constant; under loom only the models
// run, and they never look anything up.
#[cfg(loom)]
thread_local! {
    static CACHE: ThreadCache = ThreadCache {
        gate: Gate::new(),
        listing: Listing(Cell::new(std::ptr::null())),
        sets: UnsafeCell::new([Set::EMPTY; SETS]),
    };
}

/// The address under which a cache is in [`CACHES`] (null until its first
/// fill). Dropping it, when the thread exits, takes the cache out of the
/// list before the sets drop (fields drop in order), waiting out a sweep in
/// progress. `ThreadCache` itself has no `Drop`, so its teardown never
/// makes a reference to the whole cache while a sweeper may be reading the
/// gate or the sets.
struct Listing(Cell<*const ThreadCache>);

impl Drop for Listing {
    fn drop(&mut self) {
        let me = self.0.get();
        if !me.is_null() {
            CACHES.lock().retain(|listed| listed.0 != me);
        }
    }
}

/// The address of a live thread's cache, as kept in [`CACHES`].
struct Listed(*const ThreadCache);

// SAFETY: the pointer is only dereferenced under the `CACHES` lock, and a
// cache leaves the list (under that lock) before its sets are dropped and
// its thread-local storage freed; what a sweeper does through it is
// governed by the gate.
unsafe impl Send for Listed {}

/// Every thread's cache that has held a series, for sweeps.
static CACHES: Mutex<Vec<Listed>> = Mutex::new(Vec::new());

impl ThreadCache {
    /// Owner, holding the gate: its sets.
    ///
    /// # Safety
    /// The caller holds the gate (`enter` returned `Entered` and `leave`
    /// has not been called), and makes no other reference to the sets
    /// while this one lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn sets(&self) -> &mut [Set; SETS] {
        // SAFETY: guaranteed by the caller.
        unsafe { &mut *self.sets.get() }
    }

    #[cold]
    fn join_list(&self) {
        let me: *const ThreadCache = self;
        CACHES.lock().push(Listed(me));
        self.listing.0.set(me);
    }

    /// Owner, after `leave` said a sweep is owed: performs it, waiting out
    /// a sweeper that holds the claim (it holds it for a bounded time and
    /// runs no user code meanwhile).
    #[cold]
    fn sweep_owed(&self) {
        while self.gate.owed() {
            match self.gate.enter() {
                Entry::Entered => {
                    let asked = self.gate.asked();
                    // SAFETY: we hold the gate until `leave` below.
                    let sets = unsafe { self.sets() };
                    sets.iter_mut().for_each(|set| set.forget_removed(None));
                    self.gate.sweep_done(asked);
                    self.gate.leave();
                }
                Entry::Claimed => {
                    self.gate.leave();
                    std::thread::yield_now();
                }
                // `leave` was called, so we are not inside a lookup.
                Entry::Nested => return,
            }
        }
    }
}

/// The owner's hold on its cache: leaves the gate when dropped (also when
/// the caller's closure panics), performing a sweep that became owed.
struct Held<'c>(&'c ThreadCache);

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.0.gate.leave() {
            self.0.sweep_owed();
        }
    }
}

/// Drops the removed series of family `family` from every thread's cache:
/// at once from caches whose owner is not inside a lookup, and from the
/// others when their owner leaves it. Called by `Family::remove` after
/// marking the series removed.
///
/// Where the process-wide barrier is unavailable (see `process_fence`) no
/// other thread's cache is touched: each owner sweeps its own when it next
/// leaves a lookup, so a thread that never records again keeps what it
/// cached (at most 256 series).
pub(crate) fn forget_removed(family: u64) {
    let caches = CACHES.lock();
    // A listed cache stays alive, and listed, while we hold the lock; we
    // make references to its gate and, when the gate gives them to us, its
    // sets, never to the whole cache (its owner may be using the rest).
    // SAFETY: as just said.
    let gate = |listed: &Listed| unsafe { &(*listed.0).gate };
    let asked: Vec<u64> = caches.iter().map(|l| gate(l).claim()).collect();
    let barrier = process_fence::heavy();
    for (listed, asked) in caches.iter().zip(asked) {
        let gate = gate(listed);
        if barrier && gate.owner_is_out() {
            // Only this family's ways need reading, unless an earlier sweep
            // is still owed by this cache.
            let only = (gate.done() + 1 == asked).then_some(family);
            // SAFETY: the cache is alive (see above); the owner is out and
            // sees our claim until `unclaim` (the gate's protocol), so the
            // sets are ours alone meanwhile.
            let sets = unsafe { &mut *UnsafeCell::raw_get(std::ptr::addr_of!((*listed.0).sets)) };
            sets.iter_mut().for_each(|set| set.forget_removed(only));
            gate.sweep_done(asked);
        }
        gate.unclaim();
    }
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
        match cache.gate.enter() {
            Entry::Entered => {}
            Entry::Nested => return None,
            Entry::Claimed => {
                drop(Held(cache));
                return None;
            }
        }
        let _held = Held(cache);
        // SAFETY: we hold the gate until `_held` drops, and this is the
        // only reference to the sets we make meanwhile.
        let set = &mut unsafe { cache.sets() }[key.index()];
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
            // that reference while we hold the gate. `ManuallyDrop` keeps us
            // from giving back a reference we do not own.
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
            if cache.listing.0.get().is_null() {
                cache.join_list();
            }
            set.insert_front(key, series);
        }
        Some(result)
    });
    match served {
        Ok(Some(result)) => result,
        // Re-entered from inside `f`, a sweep in progress, or the thread is
        // tearing down.
        _ => match (resolve.take(), f.take()) {
            (Some(resolve), Some(f)) => f(&resolve().series),
            // `f` ran but returned nothing through the cache path: cannot
            // happen, as every path that takes `f` returns `Some`.
            _ => unreachable!("the lookup cache consumed its closure without a result"),
        },
    }
}
