//! A per-thread cache of resolved label sets, and the grace periods that
//! let lookups read families without locks.
//!
//! Each thread keeps a small four-way set-associative cache (64 sets of 4
//! entries, 256 in all) from *(family, label-value hash)* to the series, so a
//! loop over a few dozen label sets (models × tenants) stays in it: with two
//! ways, the one set in a hundred that three of them share would miss every
//! time. A hit compares the label values (so a hash collision can never
//! merge two series), checks the family's removal version, and lends the
//! handle to the caller's closure: no lock, no atomic RMW, no allocation. A
//! miss reads the family's lock-free index (`series_index`), lends what it
//! finds the same way, and caches it only if the key missed recently (a
//! cached entry costs a reference-count increment, and a family visited in
//! scrambled order would pay one, plus an eviction, on every lookup).
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
//! * Thread teardown: the cache has no destructor (a thread-local with one
//!   is read through a state flag on every access), so a second
//!   thread-local, [`Teardown`], registered when the cache first joins the
//!   list, closes the gate for good, leaves the list and releases the ways.
//! * Family ids are 32-bit and unique for the life of the process: they
//!   start at 1, an empty way has family 0, and families made after the
//!   four billionth get 0, which is never cached (their lookups always read
//!   the index). A family's storage type never changes, so a way whose tag
//!   names a family holds that family's `Arc<Series<S>>` and is only ever
//!   read back as that type (debug builds also compare `TypeId`s).
//! * A set is two cache lines: the first holds what every lookup reads (the
//!   four ways' 12-byte tags and the set's miss tags), the second the series
//!   pointers and how to release each (see `set.rs`). A lookup that misses
//!   after the caches were flushed loads one line of its set.
//! * What a lookup reads outside its own cache (a family's index, the series
//!   found there) is freed only through [`retire`], which waits until every
//!   thread that was inside a lookup has left it.
//! * The cache knows series, not handles: it lends `&Arc<Series<S>>` and the
//!   family turns that into a handle without a reference-count increment
//!   (`Sealed::lend`).

use std::any::TypeId;
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::process_fence;
use crate::series::Series;

mod gate;
mod set;

use gate::{Entry, Gate};
pub(crate) use set::{next_family_id, Key};
use set::{Set, SETS, WAYS};

/// One thread's cache. The gate sits in its own cache line ahead of the
/// sets; it plays the part a `RefCell`'s borrow flag would otherwise play.
///
/// Nothing in it needs dropping: a thread-local with a destructor gets a
/// state flag that every access reads first, at the far end of this 8 KiB
/// value (another cache line, often another page, to load when the caches
/// are cold). Its teardown is [`Teardown`]'s instead.
#[repr(C)]
struct ThreadCache {
    gate: Gate,
    /// Whether the cache is in [`CACHES`] (after its first fill).
    listed: Cell<bool>,
    /// Whether lookups that miss may read families' lock-free indexes
    /// ([`lock_free_lookups`]), copied here when the cache joins the list
    /// so that a miss reads it from the gate's cache line.
    index_reads: Cell<bool>,
    /// Only touched by whoever holds the gate: the owner between `enter`
    /// and `leave`, or a sweeper between `owner_is_out` and `unclaim`.
    sets: UnsafeCell<[Set; SETS]>,
}

#[cfg(not(loom))]
thread_local! {
    static CACHE: ThreadCache = const {
        ThreadCache {
            gate: Gate::new(),
            listed: Cell::new(false),
            index_reads: Cell::new(false),
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
        listed: Cell::new(false),
        index_reads: Cell::new(false),
        sets: UnsafeCell::new([Set::EMPTY; SETS]),
    };
}

/// Tears this thread's cache down when the thread exits: registered (by
/// touching it) when the cache joins the list, so every cache that is
/// listed or holds a series has one. `ThreadCache` has no destructor, so
/// the cache is still there when this runs.
struct Teardown;

thread_local! {
    static TEARDOWN: Teardown = const { Teardown };
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = CACHE.try_with(ThreadCache::tear_down);
    }
}

/// The address of a live thread's cache, as kept in [`CACHES`], with an id
/// no other cache ever has (an address can be reused by a later thread).
struct Listed {
    cache: *const ThreadCache,
    id: u64,
}

impl Listed {
    /// The cache's gate.
    fn gate(&self) -> &Gate {
        // SAFETY: a listed cache stays alive, and listed, while the `CACHES`
        // lock is held, which every holder of a `&Listed` does; we make a
        // reference to its gate only, never to the whole cache (its owner
        // may be using the rest).
        unsafe { &(*self.cache).gate }
    }
}

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

    /// Puts the cache in the list (so that sweeps and grace periods know
    /// it) and registers its teardown. Returns `false`, leaving it out,
    /// when the thread is already exiting: the caller must then neither
    /// read an index nor fill the cache.
    #[cold]
    fn join_list(&self) -> bool {
        if TEARDOWN.try_with(|_| ()).is_err() {
            return false;
        }
        crate::first_use::note();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let me: *const ThreadCache = self;
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CACHES.lock().push(Listed { cache: me, id });
        self.listed.set(true);
        self.index_reads.set(lock_free_lookups());
        true
    }

    /// Owner, at thread exit (not inside a lookup): closes the gate for
    /// good, so lookups from destructors that run later bypass the cache;
    /// leaves the list, waiting out a sweep in progress (sweeps hold the
    /// list's lock); then, the sets being nobody else's, gives back every
    /// series they hold.
    fn tear_down(&self) {
        self.gate.close();
        if self.listed.get() {
            let me: *const ThreadCache = self;
            CACHES.lock().retain(|listed| listed.cache != me);
        }
        // SAFETY: the gate is closed (as if the owner were inside a
        // lookup, for good) and the cache is out of the list, so no sweeper
        // can reach the sets; this is the only reference made to them.
        let sets = unsafe { self.sets() };
        sets.iter_mut().for_each(Set::release_all);
    }

    /// Owner, after `leave` said a sweep is owed: performs it, waiting out
    /// a sweeper that holds the claim (it holds it for a bounded time and
    /// runs no user code meanwhile).
    #[cold]
    fn sweep_owed(&self) {
        self.perform_owed_sweeps();
        // Retired items may have been waiting for this thread alone.
        collect_garbage();
    }

    fn perform_owed_sweeps(&self) {
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
pub(crate) fn forget_removed(family: u32) {
    let caches = CACHES.lock();
    let asked: Vec<u64> = caches.iter().map(|l| l.gate().claim()).collect();
    let barrier = process_fence::heavy();
    for (listed, asked) in caches.iter().zip(asked) {
        let gate = listed.gate();
        if barrier && gate.owner_is_out() {
            // Only this family's ways need reading, unless an earlier sweep
            // is still owed by this cache.
            let only = (gate.done() + 1 == asked).then_some(family);
            // SAFETY: the cache is alive (`CACHES` is locked); the owner is
            // out and sees our claim until `unclaim` (the gate's protocol),
            // so the sets are ours alone meanwhile.
            let sets =
                unsafe { &mut *UnsafeCell::raw_get(std::ptr::addr_of!((*listed.cache).sets)) };
            sets.iter_mut().for_each(|set| set.forget_removed(only));
            gate.sweep_done(asked);
        }
        gate.unclaim();
    }
}

/// Whether lookups that miss the cache may read a family's
/// [`SeriesIndex`](crate::series_index) without a lock: only where the
/// process-wide barrier that [`retire`]'s grace periods need is available.
#[inline]
pub(crate) fn lock_free_lookups() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(process_fence::heavy)
}

/// Something retired, and the threads it waits for: `(cache id, ticket)`
/// for each cache whose owner was inside a lookup when it was retired.
struct Garbage {
    /// Only ever dropped.
    _item: Box<dyn Send>,
    waiting: Vec<(u64, u64)>,
}

/// Retired items still waiting for their grace period.
static GARBAGE: Mutex<Vec<Garbage>> = Mutex::new(Vec::new());

/// Frees `item` (a removed series' last table reference, an index array
/// that was replaced) once no thread can still be using it: at once if no
/// thread is inside a lookup, otherwise when each thread that was has left
/// it. Callers must have made `item` unreachable for new lookups first.
///
/// # Protocol
///
/// A reader reaches indexed memory only inside its gate (`enter` stores
/// `in_use`, then a light fence, then it loads the index). `retire` runs
/// after the writer unlinked `item` (a release store), issues the heavy
/// barrier and reads every listed cache's `in_use`: as in the sweep
/// (Dekker's argument), a reader that could have loaded `item` is seen in
/// use, and a reader seen out cannot load it afterwards. Each cache seen in
/// use is asked for a sweep (a ticket); the item is freed once, for each of
/// them, the owner has performed that sweep (`done` reaches the ticket,
/// which it does right after leaving the lookup), has been seen out after a
/// later barrier, or has exited. The loom model in `gate.rs` checks it.
///
/// Without the barrier, lookups never read the index (see
/// [`lock_free_lookups`]), so `item` is freed at once.
pub(crate) fn retire(item: Box<dyn Send>) {
    if !lock_free_lookups() {
        drop(item); // no lookup reads an index: nothing can hold it
        return;
    }
    let waiting: Vec<(u64, u64)> = {
        let caches = CACHES.lock();
        if !process_fence::heavy() {
            // Registered once; a refusal now would be a kernel change.
            // Keep the item rather than risk a reader.
            caches.iter().map(|l| (l.id, l.gate().ask())).collect()
        } else {
            caches
                .iter()
                .filter(|l| !l.gate().owner_is_out())
                .map(|l| (l.id, l.gate().ask()))
                .collect()
        }
    };
    if waiting.is_empty() {
        drop(item);
    } else {
        GARBAGE.lock().push(Garbage {
            _item: item,
            waiting,
        });
    }
    collect_garbage();
}

/// Frees what [`retire`] kept and no thread can be using any more. Called
/// by every `retire` and by every encode.
pub(crate) fn collect_garbage() {
    let freed: Vec<Garbage> = {
        let mut garbage = GARBAGE.lock();
        if garbage.is_empty() {
            return;
        }
        let caches = CACHES.lock();
        let barrier = process_fence::heavy();
        let done = |&(id, ticket): &(u64, u64)| match caches.iter().find(|l| l.id == id) {
            None => true, // the thread exited
            Some(listed) => {
                let gate = listed.gate();
                gate.done() >= ticket || (barrier && gate.owner_is_out())
            }
        };
        let (freed, kept) = std::mem::take(&mut *garbage)
            .into_iter()
            .partition(|g| g.waiting.iter().all(done));
        *garbage = kept;
        freed
    };
    drop(freed);
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
    resolve: impl FnOnce(Reading) -> Source<S>,
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
            if set.tags[way] != key.tag {
                continue;
            }
            debug_assert!(
                set.owners[way].is_some_and(|o| (o.storage_type)() == TypeId::of::<S>()),
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
            if series.label_values.equals(values) {
                let result = f.take()?(&series);
                if way > 0 {
                    set.swap(way - 1, way); // move towards the front
                }
                return Some(result);
            }
        }
        Some(miss(cache, set, key, resolve.take()?, f.take()?))
    });
    match served {
        Ok(Some(result)) => result,
        // Re-entered from inside `f`, a sweep in progress, or the thread is
        // tearing down.
        _ => match (resolve.take(), f.take()) {
            (Some(resolve), Some(f)) => match resolve(Reading::Locked) {
                Source::Table(resolved) => f(&resolved.series),
                // `Reading::Locked` never gives a borrowed series.
                Source::Index(_) => unreachable!("an index read outside the gate"),
            },
            // `f` ran but returned nothing through the cache path: cannot
            // happen, as every path that takes `f` returns `Some`.
            _ => unreachable!("the lookup cache consumed its closure without a result"),
        },
    }
}

/// How a lookup that missed the cache may read the family.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reading {
    /// Through its lock-free index (inside the gate, see
    /// [`lock_free_lookups`]), then its table if the index does not have it.
    Index,
    /// Through its table only.
    Locked,
}

/// Where a lookup that missed the cache found its series.
pub(crate) enum Source<S> {
    /// In the family's index: valid until the reader leaves its gate.
    Index(*const Series<S>),
    /// In the family's table (or created there), with a reference.
    Table(Resolved<S>),
}

/// A lookup that missed the cache, holding the gate: from the family's
/// index when lookups may read it, otherwise (or when the index does not
/// have it yet) from its table. Out of line, so that the hit path stays
/// small.
#[inline(never)]
fn miss<S: Send + Sync + 'static, R>(
    cache: &ThreadCache,
    set: &mut Set,
    key: Key,
    resolve: impl FnOnce(Reading) -> Source<S>,
    f: impl FnOnce(&Arc<Series<S>>) -> R,
) -> R {
    // Before the first index read: grace periods wait for listed caches
    // only.
    if !cache.listed.get() && !cache.join_list() {
        // The thread is exiting: the table, and no caching.
        return match resolve(Reading::Locked) {
            Source::Table(resolved) => f(&resolved.series),
            Source::Index(_) => unreachable!("an index read by a cache out of the list"),
        };
    }
    let reading = if cache.index_reads.get() {
        Reading::Index
    } else {
        Reading::Locked
    };
    match resolve(reading) {
        Source::Index(found) => {
            // SAFETY: the index gave a pointer to a series that an `Arc`
            // owned when it was loaded, and `retire` keeps that allocation
            // alive until we leave the gate, which the caller holds until
            // after we return; `ManuallyDrop` keeps us from giving back a
            // reference we do not own.
            let series = ManuallyDrop::new(unsafe { Arc::from_raw(found) });
            let result = f(&series);
            // Caching costs a reference-count increment on a line other
            // threads may share; pay it for label sets that come back, not
            // for each of thousands visited once in a while.
            if key.cacheable() && set.missed_before(key) {
                set.insert_front(key, Arc::clone(&series));
            }
            result
        }
        Source::Table(Resolved { series, cacheable }) => {
            let result = f(&series);
            if cacheable && key.cacheable() {
                set.insert_front(key, series);
            }
            result
        }
    }
}
