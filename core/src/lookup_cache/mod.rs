//! How a lookup finds its series without a lock: the per-thread gate whose
//! grace periods let lookups read families' lock-free indexes, and a
//! per-thread cache for where they cannot.
//!
//! A lookup enters its thread's gate and, where the process-wide barrier
//! grace periods rely on is available ([`lock_free_lookups`]: Linux's
//! `membarrier`), reads the family's index (`series_index`): it compares
//! the label values (so a hash collision can never merge two series) and
//! lends the series to the caller's closure: no lock, no atomic
//! read-modify-write, no allocation, and nothing written to a line another
//! thread reads. A label set the index lacks (a new one, or one refused by
//! the cardinality limit) goes to the family's table.
//!
//! Without the barrier (other platforms, Miri), each thread keeps a small
//! four-way set-associative cache (64 sets of 4 entries, 256 in all) from
//! *(family, label-value hash)* to the series in front of the family's
//! `RwLock`-guarded table, so a loop over a few dozen label sets (models ×
//! tenants) takes no lock: with two ways, the one set in a hundred that
//! three of them share would miss every time. A hit compares the label
//! values and checks the family's removal version; a miss reads the table
//! and caches what it finds.
//!
//! The index is read first, the cache only where the index cannot be: a
//! lookup over thousands of label sets then scans no cache and takes no
//! miss path, and a hot loop runs as many instructions as through the
//! cache (`peers/high_cardinality` and `peers/label_lookup_inc` measure
//! both; docs/design-notes.md has the comparison).
//!
//! # Protocol
//!
//! * A thread reads indexes only after its cache has joined the list of
//!   caches (the list of threads (`reclaim::threads`); its first lookup, which takes the table, joins
//!   it), because grace periods wait for listed threads only; and only
//!   inside its gate, which it holds for the whole lookup, the caller's
//!   closure included.
//! * What a lookup reads outside its own cache (a family's index, the series
//!   found there) is freed only through `reclaim::retire`, which waits until every
//!   thread that was inside a lookup has left it.
//! * A cache entry owns one strong reference to its series
//!   (`Arc::into_raw`), so the series outlives the entry even if the
//!   family removes it.
//! * `Family::remove` bumps the family's version; entries carry the version
//!   they were filled at and are ignored once it changes. It also marks the
//!   series removed and *sweeps*: every thread's cache lets go of removed
//!   series at once if its owner is not inside a lookup, otherwise when the
//!   owner leaves it, so a removed series' memory goes even when the threads
//!   that cached it never record again
//!   ([`gate`](crate::reclaim::gate) has that protocol).
//! * The owner holds its cache through the gate for the whole lookup,
//!   including the caller's closure, so a nested lookup from inside the
//!   closure cannot evict the entry in use: such nested lookups, lookups
//!   that meet a sweep in progress, and lookups during thread teardown
//!   read neither the index nor the cache: they take the family's table.
//! * Thread teardown: the cache has no destructor (a thread-local with one
//!   is read through a state flag on every access), so a second
//!   thread-local, [`Teardown`], registered when the cache first joins the
//!   list, closes the gate for good, leaves the list and releases the ways.
//! * Family ids are 32-bit and unique for the life of the process: they
//!   start at 1, an empty way has family 0, and families made after the
//!   four billionth get 0, which is never cached (their lookups always
//!   take the index or the table). A family's storage type never changes,
//!   so a way whose tag names a family holds that family's `Arc<Series<S>>`
//!   and is only ever read back as that type (debug builds also compare
//!   `TypeId`s).
//! * A set is two cache lines: the first holds what every lookup reads (the
//!   four ways' 12-byte tags), the second the series pointers and how to
//!   release each (see `set.rs`). A lookup that misses after the caches
//!   were flushed loads one line of its set.
//! * Lookups know series, not handles: they lend `&Arc<Series<S>>` and the
//!   family turns that into a handle without a reference-count increment
//!   (`Sealed::lend`).

use std::any::TypeId;
use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::series::Series;

mod set;

use crate::reclaim::gate::{Entry, Gate};
use crate::reclaim::{collect_garbage, fence, lock_free_lookups, threads};
use crate::thread_words::{ThreadWords, WORDS};
pub(crate) use set::{next_family_id, Key};
use set::{Set, SETS, WAYS};

/// One thread's cache: its sets. Its gate and flags are in the thread's
/// words ([`ThreadWords`]: `gate`, `listed`, `index_reads`), in one cache
/// line with the thread's slot, which every lookup reads; the sets are
/// read only where lookups cannot read indexes.
///
/// Nothing in it needs dropping: a thread-local with a destructor gets a
/// state flag that every access reads first, at the far end of this 8 KiB
/// value (another cache line, often another page, to load when the caches
/// are cold). Its teardown is [`Teardown`]'s instead.
struct ThreadCache {
    /// Only touched by whoever holds the gate: the owner between `enter`
    /// and `leave`, or a sweeper between `owner_is_out` and `unclaim`.
    sets: UnsafeCell<[Set; SETS]>,
}

thread_local! {
    static CACHE: ThreadCache = const {
        ThreadCache {
            sets: UnsafeCell::new([Set::EMPTY; SETS]),
        }
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
        let _ = WORDS.try_with(|words| CACHE.try_with(|cache| cache.tear_down(words)));
    }
}

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
    fn join_list(&self, words: &ThreadWords) -> bool {
        if TEARDOWN.try_with(|_| ()).is_err() {
            return false;
        }
        crate::first_use::note();
        threads::join(&words.gate, (self as *const ThreadCache).cast());
        words.listed.set(true);
        words.index_reads.set(lock_free_lookups());
        true
    }

    /// Owner, at thread exit (not inside a lookup): closes the gate for
    /// good, so lookups from destructors that run later bypass the cache;
    /// leaves the list, waiting out a sweep in progress (sweeps hold the
    /// list's lock); then, the sets being nobody else's, gives back every
    /// series they hold.
    fn tear_down(&self, words: &ThreadWords) {
        words.gate.close();
        if words.listed.get() {
            threads::leave((self as *const ThreadCache).cast());
        }
        // SAFETY: the gate is closed (as if the owner were inside a
        // lookup, for good) and the cache is out of the list, so no sweeper
        // can reach the sets; this is the only reference made to them.
        let sets = unsafe { self.sets() };
        sets.iter_mut().for_each(Set::release_all);
    }

    /// Owner, after `leave` said a sweep is owed: performs it, waiting out
    /// a sweeper that holds the claim (it holds it for a bounded time and
    /// runs no user code meanwhile). Takes no reference, for the reason
    /// [`Held`] gives.
    #[cold]
    #[inline(never)]
    fn sweep_owed() {
        let _ =
            WORDS.try_with(|words| CACHE.try_with(|cache| cache.perform_owed_sweeps(&words.gate)));
        // Retired items may have been waiting for this thread alone.
        collect_garbage();
    }

    fn perform_owed_sweeps(&self, gate: &Gate) {
        while gate.owed() {
            match gate.enter() {
                Entry::Entered => {
                    let asked = gate.asked();
                    // SAFETY: we hold the gate until `leave` below.
                    let sets = unsafe { self.sets() };
                    sets.iter_mut().for_each(|set| set.forget_removed(None));
                    gate.sweep_done(asked);
                    gate.leave();
                }
                Entry::Claimed => {
                    gate.leave();
                    std::thread::yield_now();
                }
                // `leave` was called, so we are not inside a lookup.
                Entry::Nested => return,
            }
        }
    }
}

/// The owner's hold on this thread's cache: leaves the gate when dropped
/// (also when the caller's closure panics), performing a sweep that became
/// owed.
///
/// It finds the cache through the thread-local again rather than keeping a
/// reference: a reference kept across the caller's closure (and into the
/// unwinding path) makes the compiler compute the cache's address from the
/// thread pointer, a load of the thread's control block, which is one more
/// cache line per lookup after the caches were flushed; the thread-local's
/// fields alone are read at fixed offsets from the thread pointer.
struct Held;

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        // `ThreadWords` has no destructor, so the thread-local is readable
        // until the thread is gone.
        let _ = WORDS.try_with(|words| {
            if words.gate.leave() {
                ThreadCache::sweep_owed();
            }
        });
    }
}

/// Drops the removed series of family `family` from every thread's cache:
/// at once from caches whose owner is not inside a lookup, and from the
/// others when their owner leaves it. Called by `Family::remove` after
/// marking the series removed.
///
/// Where the process-wide barrier is unavailable (see `reclaim::fence`) no
/// other thread's cache is touched: each owner sweeps its own when it next
/// leaves a lookup, so a thread that never records again keeps what it
/// cached (at most 256 series).
pub(crate) fn forget_removed(family: u32) {
    let caches = threads::lock();
    let asked: Vec<u64> = caches.iter().map(|l| l.gate().claim()).collect();
    let barrier = fence::heavy();
    for (listed, asked) in caches.iter().zip(asked) {
        let gate = listed.gate();
        if barrier && gate.owner_is_out() {
            // Only this family's ways need reading, unless an earlier sweep
            // is still owed by this cache.
            let only = (gate.done() + 1 == asked).then_some(family);
            let cache: *const ThreadCache = listed.cache().cast();
            // SAFETY: every listed cache is a `ThreadCache` (only
            // `join_list` lists one), alive while the list is locked; the
            // owner is out and sees our claim until `unclaim` (the gate's
            // protocol), so the sets are ours alone meanwhile.
            let sets = unsafe { &mut *UnsafeCell::raw_get(std::ptr::addr_of!((*cache).sets)) };
            sets.iter_mut().for_each(|set| set.forget_removed(only));
            gate.sweep_done(asked);
        }
        gate.unclaim();
    }
}

/// What resolving a label set through the family's table gave.
pub(crate) struct Resolved<S> {
    pub(crate) series: Arc<Series<S>>,
    /// False for the overflow series: a refused label set must miss the
    /// cache every time so that every refusal is counted (even when the
    /// value asked for happens to equal the overflow series' own `"true"`).
    pub(crate) cacheable: bool,
}

/// Runs `f` on the series for `values`: from the family's lock-free index
/// (`find`) when this thread may read it, otherwise from this thread's
/// cache; failing those, from the family's table (`resolve`, which creates
/// the series when it is new).
#[inline]
pub(crate) fn with_series<S: Send + Sync + 'static, V: AsRef<str>, R>(
    key: Key,
    values: &[V],
    find: impl FnOnce() -> Option<*const Series<S>>,
    resolve: impl FnOnce() -> Resolved<S>,
    f: impl FnOnce(&Arc<Series<S>>) -> R,
) -> R {
    let mut resolve = Some(resolve);
    let mut f = Some(f);
    let served = WORDS.try_with(|words| {
        match words.gate.enter() {
            Entry::Entered => {}
            Entry::Nested => return None,
            Entry::Claimed => {
                drop(Held);
                return None;
            }
        }
        let _held = Held;
        if words.index_reads.get() {
            return Some(match find() {
                // SAFETY: see `lend`; we hold the gate until `_held` drops.
                Some(found) => f.take()?(&*unsafe { lend(found) }),
                None => from_table(resolve.take()?, f.take()?),
            });
        }
        // SAFETY: we hold the gate until `_held` drops.
        Some(unsafe { through_cache(key, values, resolve.take()?, f.take()?) })
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

/// The lookup through this thread's cache (where the thread may not read
/// indexes): its sets, then the family's table. The cache's address (a
/// load of the thread's control block, see [`Held`]) is computed here
/// only, and the thread's words are read by address only in the
/// out-of-line miss path, so the index path computes neither. Inline,
/// because out of line a hit pays a call and passes the closures through
/// memory: about a fifth slower in `peers/label_lookup_inc` built without
/// the barrier (docs/design-notes.md).
///
/// # Safety
///
/// The caller holds this thread's gate (`enter` returned `Entered`) until
/// this returns, and holds no reference to the sets.
#[inline]
unsafe fn through_cache<S: Send + Sync + 'static, V: AsRef<str>, R>(
    key: Key,
    values: &[V],
    resolve: impl FnOnce() -> Resolved<S>,
    f: impl FnOnce(&Arc<Series<S>>) -> R,
) -> R {
    // SAFETY: `this_threads_cache` is valid while this thread runs.
    let cache = unsafe { &*this_threads_cache() };
    // SAFETY: the caller holds the gate until we return, and this is the
    // only reference to the sets we make meanwhile.
    let set = &mut unsafe { cache.sets() }[key.index()];
    let hit = (0..WAYS).find_map(|way| {
        if set.tags[way] != key.tag {
            return None;
        }
        debug_assert!(
            set.owners[way].is_some_and(|o| (o.storage_type)() == TypeId::of::<S>()),
            "a family's id names one storage type"
        );
        // SAFETY: a non-empty way whose key names this family was
        // filled by `insert_front::<S>` with this family's storage
        // type `S` (family ids are unique for the life of the
        // process and a family's storage type never changes; empty
        // ways have family 0, which no family has), so
        // `series[way]` came from `Arc::into_raw` of an
        // `Arc<Series<S>>`, and the way still owns that reference
        // while we hold the gate. `ManuallyDrop` keeps us from
        // giving back a reference we do not own.
        let series =
            ManuallyDrop::new(unsafe { Arc::from_raw(set.series[way].cast::<Series<S>>()) });
        series.label_values.equals(values).then_some((way, series))
    });
    match hit {
        Some((way, series)) => {
            let result = f(&series);
            if way > 0 {
                set.swap(way - 1, way); // move towards the front
            }
            result
        }
        None => miss(cache, set, key, resolve, f),
    }
}

/// This thread's cache, by its address (computed from the thread pointer,
/// a load of the thread's control block), for the paths that use the sets;
/// the index path reads none of it.
///
/// The pointer is valid, for this thread, until the thread exits:
/// `ThreadCache` has no destructor, so the thread-local lives as long as
/// the thread's storage, and a reference made from it while the thread
/// runs is sound.
#[inline]
fn this_threads_cache() -> *const ThreadCache {
    CACHE.with(std::ptr::from_ref)
}

/// The series an index entry points to, as the `Arc` the family's table
/// owns, without taking a reference.
///
/// # Safety
///
/// `found` came from the family's index, read inside this thread's gate,
/// which the caller still holds: the entry pointed to a series an `Arc`
/// owned when it was loaded, and `retire` keeps that allocation alive
/// until the reader leaves the gate. `ManuallyDrop` keeps the caller from
/// giving back a reference it does not own.
#[inline]
unsafe fn lend<S>(found: *const Series<S>) -> ManuallyDrop<Arc<Series<S>>> {
    // SAFETY: `found` is `Arc::as_ptr` of a live `Arc<Series<S>>` (the
    // caller's contract above), and the result is never dropped.
    ManuallyDrop::new(unsafe { Arc::from_raw(found) })
}

/// A label set the family's index does not have (a new one, or refused by
/// the cardinality limit): the family's table. Out of line, so that the
/// index path stays small.
#[inline(never)]
fn from_table<S, R>(
    resolve: impl FnOnce() -> Resolved<S>,
    f: impl FnOnce(&Arc<Series<S>>) -> R,
) -> R {
    f(&resolve().series)
}

/// A lookup that missed the cache, holding the gate: the family's table,
/// and the series is cached. A thread's first lookup also joins the list
/// of caches (grace periods wait for listed threads only), after which,
/// where lookups may read indexes, the thread's later lookups read the
/// family's index instead of the cache. Out of line, so that the hit path
/// stays small.
#[inline(never)]
fn miss<S: Send + Sync + 'static, R>(
    cache: &ThreadCache,
    set: &mut Set,
    key: Key,
    resolve: impl FnOnce() -> Resolved<S>,
    f: impl FnOnce(&Arc<Series<S>>) -> R,
) -> R {
    // `WORDS` has no destructor: readable until the thread is gone.
    let joined = WORDS.with(|words| words.listed.get() || cache.join_list(words));
    if !joined {
        // The thread is exiting: the table, and no caching.
        return f(&resolve().series);
    }
    let Resolved { series, cacheable } = resolve();
    let result = f(&series);
    // Once the thread reads indexes, its cache is not read again.
    if cacheable && key.cacheable() && !WORDS.with(|words| words.index_reads.get()) {
        set.insert_front(key, series);
    }
    result
}

/// Runs `f` with this thread's lookups going through its cache and the
/// families' tables, as they do where the process-wide barrier is missing
/// (tests of the cache on machines that have it).
#[cfg(all(test, not(beluga_loom)))]
pub(crate) fn through_the_cache<R>(f: impl FnOnce() -> R) -> R {
    WORDS.with(|words| {
        if !words.listed.get() {
            CACHE.with(|cache| cache.join_list(words));
        }
        let index_reads = words.index_reads.replace(false);
        let result = f();
        words.index_reads.set(index_reads);
        result
    })
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;
    use crate::label_set::hash_values;
    use crate::{Format, Opts, Registry};

    /// Lookups that must return the same whichever way they go: through
    /// evictions, removal, nesting and the cardinality limit.
    fn lookups_stay_exact() {
        let r = Registry::new();
        let families: Vec<_> = (0..3)
            .map(|i| {
                r.counter_family(Opts::new(format!("f{i}_total"), "f").labels(["a", "b"]))
                    .unwrap()
            })
            .collect();
        // More label sets than the cache's 256 entries.
        for round in 1..=2u64 {
            for (i, family) in families.iter().enumerate() {
                for j in 0..300u64 {
                    let (a, b) = (format!("v{j}"), format!("{i}-{}", j % 7));
                    family.with(&[&a, &b], |c| c.add(j + 1)).unwrap();
                }
            }
            for (i, family) in families.iter().enumerate() {
                assert_eq!(family.len(), 300);
                for j in 0..300u64 {
                    let (a, b) = (format!("v{j}"), format!("{i}-{}", j % 7));
                    assert_eq!(
                        family.with(&[&a, &b], |c| c.get()).unwrap(),
                        (j + 1) * round
                    );
                }
            }
        }
        // Removal: the next lookup gets a fresh series.
        let f = &families[0];
        assert!(f.remove(&["v3", "0-3"]).unwrap());
        f.with(&["v3", "0-3"], |c| c.inc()).unwrap();
        assert_eq!(f.with(&["v3", "0-3"], |c| c.get()).unwrap(), 1);
        // Nested lookups, of the same series too.
        f.with(&["v5", "0-5"], |outer| {
            outer.inc();
            f.with(&["v5", "0-5"], |same| same.inc()).unwrap();
        })
        .unwrap();
        assert_eq!(f.with(&["v5", "0-5"], |c| c.get()).unwrap(), 12 + 2);
        // Refused label sets are counted on every lookup.
        let limited = r
            .counter_family(Opts::new("l_total", "l").labels(["k"]).cardinality_limit(1))
            .unwrap();
        limited.with(&["kept"], |c| c.inc()).unwrap();
        for _ in 0..5 {
            limited.with(&["true"], |c| c.inc()).unwrap();
        }
        assert_eq!(limited.refused_label_sets(), 5);
        assert!(r
            .encode(Format::PrometheusText)
            .contains("l_total{otel_metric_overflow=\"true\"} 5\n"));
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn lookups_through_the_index_stay_exact() {
        lookups_stay_exact();
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn lookups_through_the_cache_stay_exact() {
        through_the_cache(lookups_stay_exact);
    }

    /// Which way a lookup went shows in the series' reference count: the
    /// table holds two (by hash and in creation order), a cache one more.
    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn index_reads_leave_the_cache_out() {
        let r = Registry::new();
        let f = r
            .counter_family(Opts::new("c_total", "c").labels(["k"]))
            .unwrap();
        let owners = || {
            let hash = hash_values(f.inner.seed, &["x"]).unwrap();
            Arc::strong_count(f.inner.table.read().find(hash, &["x"]).unwrap())
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                f.with(&["x"], |c| c.inc()).unwrap(); // joins the list, creates
                f.with(&["x"], |c| c.inc()).unwrap();
                let expected = if lock_free_lookups() { 2 } else { 3 };
                assert_eq!(
                    owners(),
                    expected,
                    "the table's, and the cache's without index reads"
                );
            });
        });
        std::thread::scope(|s| {
            s.spawn(|| {
                through_the_cache(|| {
                    f.with(&["x"], |c| c.inc()).unwrap();
                    f.with(&["x"], |c| c.inc()).unwrap();
                    assert_eq!(owners(), 3, "the table's and the cache's");
                });
            });
        });
        assert_eq!(f.with(&["x"], |c| c.get()).unwrap(), 4);
    }
}
