//! A family's lock-free index from label-set hash to series, for lookups
//! that miss the per-thread cache.
//!
//! With thousands of label sets visited in no particular order (tenants ×
//! models), most lookups miss any per-thread cache. Resolving them through
//! the family's `RwLock`-guarded table costs two atomic read-modify-writes
//! on a line every thread shares (the lock's count) and an `Arc` clone, and
//! collapses under contention. The index answers the same question with
//! loads only.
//!
//! # Protocol
//!
//! * **Layout.** An open-addressing array of `(tag, series)` entries,
//!   probed linearly from the hash; `tag` is the label-set hash with its low
//!   bit set (0 marks an empty entry), `series` a pointer to a series the
//!   family's table owns. At most half the entries are used (live or
//!   removed), so every probe ends at an empty entry. The array is made of
//!   64-byte lines, and the pointer to it carries log2 of its size in its
//!   six low bits, so a reader finds both with one load (from the family's
//!   first cache line) and goes straight to its entry. A reader compares
//!   the series' packed label values (`packed_values`), one line for short
//!   values, rather than its list of boxed strings.
//! * **Writers** are serialised by the family table's write lock: every
//!   method that changes the index says so and is only called under it. An
//!   insert fills an empty entry: series pointer first, then the tag, both
//!   release stores. A removal nulls the series pointer (release) and keeps
//!   the tag, so probes continue past it; a growth (when half the entries
//!   are used) builds a new array from the live entries, publishes it with a
//!   release store and *retires* the old one.
//! * **Readers** run inside their thread's lookup-cache gate (see
//!   `lookup_cache::gate`) and load everything with acquire: a tag they see
//!   was stored after its series pointer, so the pointer is there (or null,
//!   removed since). They compare label values, so equal hashes never merge
//!   two series.
//! * **Reclamation.** A removed series and a replaced array may still be in
//!   use by a reader that loaded them before the change. The family hands
//!   the table's reference to a removed series, and the index hands its old
//!   arrays, to `lookup_cache::retire`, which frees them once every thread
//!   that might hold them has left its gate (a grace period, with the same
//!   process-wide barrier the cache sweep uses). Readers therefore never
//!   see freed memory and never write a reference count.
//!
//! Where the process-wide barrier is unavailable, lookups do not use the
//! index (`lookup_cache::lock_free_lookups`) and take the table's read lock
//! as before; the index is still kept up to date.

use std::sync::Arc;

use crate::series::Series;
use crate::sync::{AtomicPtr, AtomicU64, Ordering::*};

/// One entry: a tag (0: empty) and a series pointer (null: removed).
struct Entry<S> {
    tag: AtomicU64,
    series: AtomicPtr<Series<S>>,
}

/// Four entries: one cache line. Arrays are made of lines, so an array's
/// address has six low zero bits, which [`SeriesIndex::current`] uses to
/// carry the array's size: a reader finds both with one load.
#[repr(C, align(64))]
struct Line<S>([Entry<S>; ENTRIES_PER_LINE]);

const ENTRIES_PER_LINE: usize = 4;
/// The low bits of [`SeriesIndex::current`] that hold log2 of the size.
const SIZE_BITS: usize = 63;

// `entries` reads an array of lines as one slice of entries: that needs the
// lines to hold their entries with no padding in or between them. (Loom's
// atomics are larger; under loom no index is ever read.)
#[cfg(not(loom))]
const _: () = assert!(
    std::mem::size_of::<Line<()>>() == ENTRIES_PER_LINE * std::mem::size_of::<Entry<()>>()
        && std::mem::size_of::<Line<()>>() == 64,
    "a line is four 16-byte entries, nothing else"
);

/// An array that was replaced, waiting in `lookup_cache::retire`.
struct Retired<S>(#[allow(dead_code)] Box<[Line<S>]>);

// SAFETY: the series pointers are never dereferenced through an array by
// whoever owns or drops it; readers dereference them under the protocol
// above, and `Series<S>` is `Send + Sync` when `S` is.
unsafe impl<S: Send + Sync> Send for Retired<S> {}

/// A family's lock-free index (see the module docs).
pub(crate) struct SeriesIndex<S> {
    /// The entry array (from `Box<[Line<S>]>`), with log2 of its number
    /// of entries in the low six bits.
    current: AtomicPtr<Line<S>>,
    /// Entries of the current array holding a tag, live or removed
    /// (writers only).
    used: AtomicU64,
    /// Live entries (writers only).
    live: AtomicU64,
}

/// The tag stored for a label-set hash (never 0).
fn tag_of(hash: u64) -> u64 {
    hash | 1
}

/// Where a probe for `tag` starts: the high bits (the low bit is forced).
fn start(tag: u64, mask: usize) -> usize {
    (tag >> 32) as usize & mask
}

const INITIAL_CAPACITY: usize = 16;

/// A new empty array of `capacity` entries (a power of two, at least a
/// line), as a tagged pointer for [`SeriesIndex::current`].
fn new_array<S>(capacity: usize) -> *mut Line<S> {
    debug_assert!(capacity.is_power_of_two() && capacity >= ENTRIES_PER_LINE);
    let lines: Box<[Line<S>]> = (0..capacity / ENTRIES_PER_LINE)
        .map(|_| {
            Line(std::array::from_fn(|_| Entry {
                tag: AtomicU64::new(0),
                series: AtomicPtr::new(std::ptr::null_mut()),
            }))
        })
        .collect();
    let base = Box::into_raw(lines).cast::<u8>();
    // Within the allocation (a line is 64 bytes), so the pointer keeps
    // its provenance.
    base.wrapping_add(capacity.trailing_zeros() as usize).cast()
}

/// The array's address, without the size bits.
fn untagged<S>(tagged: *mut Line<S>) -> *mut Line<S> {
    tagged
        .cast::<u8>()
        .wrapping_sub(tagged as usize & SIZE_BITS)
        .cast()
}

/// The entries of the array `tagged` points to.
///
/// # Safety
/// `tagged` came from [`new_array`] and the array is alive for `'a`.
unsafe fn entries<'a, S>(tagged: *mut Line<S>) -> &'a [Entry<S>] {
    let len = 1usize << (tagged as usize & SIZE_BITS);
    let base = untagged(tagged).cast::<Entry<S>>();
    // SAFETY: the array is `len / ENTRIES_PER_LINE` lines of
    // `ENTRIES_PER_LINE` entries each, `repr(C)` without padding between
    // entries (an entry is 16 bytes), alive for `'a` (the caller).
    unsafe { std::slice::from_raw_parts(base, len) }
}

/// Takes the array `tagged` points to back into a box.
///
/// # Safety
/// `tagged` came from [`new_array`], and nothing reads the array any more.
unsafe fn into_box<S>(tagged: *mut Line<S>) -> Box<[Line<S>]> {
    let lines = (1usize << (tagged as usize & SIZE_BITS)) / ENTRIES_PER_LINE;
    let base = untagged(tagged);
    // SAFETY: `new_array` made the box from `lines` lines at `base`.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, lines)) }
}

/// Writer: puts `series` in the first empty entry of its probe.
fn fill<S>(entries: &[Entry<S>], tag: u64, series: *const Series<S>) {
    let mask = entries.len() - 1;
    let mut i = start(tag, mask);
    loop {
        let entry = &entries[i];
        if entry.tag.load(Relaxed) == 0 {
            entry.series.store(series.cast_mut(), Release);
            entry.tag.store(tag, Release);
            return;
        }
        i = (i + 1) & mask;
    }
}

impl<S: Send + Sync + 'static> SeriesIndex<S> {
    pub(crate) fn new() -> Self {
        SeriesIndex {
            current: AtomicPtr::new(new_array(INITIAL_CAPACITY)),
            used: AtomicU64::new(0),
            live: AtomicU64::new(0),
        }
    }

    fn entries(&self) -> &[Entry<S>] {
        // SAFETY: `current` always holds a pointer from `new_array`,
        // published with release; an array it no longer holds is retired
        // and freed only after every reader that could have loaded it has
        // left its gate (`lookup_cache::retire`), and the last one is freed
        // in `Drop`, which needs exclusive access.
        unsafe { entries(self.current.load(Acquire)) }
    }

    /// Reader, inside its lookup-cache gate: the series for `values`.
    /// The pointer stays valid until the caller leaves the gate.
    #[inline]
    pub(crate) fn find<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Option<*const Series<S>> {
        let entries = self.entries();
        let tag = tag_of(hash);
        let mask = entries.len() - 1;
        let mut i = start(tag, mask);
        loop {
            let entry = &entries[i];
            let seen = entry.tag.load(Acquire);
            if seen == 0 {
                return None;
            }
            if seen == tag {
                let series = entry.series.load(Acquire);
                if !series.is_null() {
                    // SAFETY: a non-null series pointer in the index points
                    // to a series the table owned when it was loaded; a
                    // removed series is retired, not freed, until this
                    // reader has left its gate (module docs).
                    if unsafe { &(*series).packed_values }.equals(values) {
                        return Some(series);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Writer, under the family table's write lock: indexes `series`
    /// (which the table now owns) under `hash`.
    pub(crate) fn insert(&self, hash: u64, series: &Arc<Series<S>>) {
        let used = self.used.load(Relaxed) as usize;
        if (used + 1) * 2 > self.entries().len() {
            self.rebuild(1);
        }
        fill(self.entries(), tag_of(hash), Arc::as_ptr(series));
        self.used.fetch_add(1, Relaxed);
        self.live.fetch_add(1, Relaxed);
    }

    /// Writer, under the family table's write lock: un-indexes `series`
    /// (indexed under `hash`). The caller retires the table's reference.
    pub(crate) fn remove(&self, hash: u64, series: &Arc<Series<S>>) {
        let entries = self.entries();
        let tag = tag_of(hash);
        let target = Arc::as_ptr(series).cast_mut();
        let mut i = start(tag, entries.len() - 1);
        loop {
            let entry = &entries[i];
            let seen = entry.tag.load(Relaxed);
            if seen == 0 {
                return; // not indexed
            }
            if seen == tag && entry.series.load(Relaxed) == target {
                entry.series.store(std::ptr::null_mut(), Release);
                self.live.fetch_sub(1, Relaxed);
                return;
            }
            i = (i + 1) & (entries.len() - 1);
        }
    }

    /// Writer: replaces the array with one sized for the live entries plus
    /// `extra`, without the removed ones, and retires the old one.
    #[cold]
    fn rebuild(&self, extra: usize) {
        let old = self.entries();
        let live = self.live.load(Relaxed) as usize + extra;
        // Between a quarter and half full after a rebuild: dense enough
        // that 50,000 label sets fit in 1 MiB, sparse enough for short
        // probes.
        let capacity = (live * 2 + 2).next_power_of_two().max(INITIAL_CAPACITY);
        let fresh = new_array::<S>(capacity);
        // SAFETY: just made, not published yet.
        let fresh_entries = unsafe { entries(fresh) };
        let mut used = 0;
        for entry in old {
            let series = entry.series.load(Relaxed);
            if !series.is_null() {
                fill(fresh_entries, entry.tag.load(Relaxed), series);
                used += 1;
            }
        }
        self.used.store(used, Relaxed);
        let old = self.current.swap(fresh, AcqRel);
        // SAFETY: `old` came from `new_array` and is no longer reachable
        // from `current`; readers that loaded it before the swap are waited
        // out by `retire`.
        crate::lookup_cache::retire(Box::new(Retired(unsafe { into_box(old) })));
    }

    /// Heap bytes of the current array.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.entries().len()
    }
}

impl<S> Drop for SeriesIndex<S> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader is left, and the pointer came from
        // `new_array` (retired arrays are owned by the retire list).
        drop(unsafe { into_box(self.current.load(Relaxed)) });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::desc::{Descriptor, MetricType, Unit};

    fn descriptor() -> Descriptor {
        Descriptor {
            name: "t".into(),
            help: "t".into(),
            unit: Unit::NONE,
            metric_type: MetricType::Counter,
            label_names: Arc::from([Box::from("a"), Box::from("b")]),
        }
    }

    fn series(desc: &Descriptor, a: &str, b: &str) -> Arc<Series<()>> {
        Arc::new(Series::new(desc, [("a", a), ("b", b)].into_iter(), ()))
    }

    #[test]
    fn equal_hashes_never_merge_label_sets() {
        let desc = descriptor();
        let index = SeriesIndex::new();
        let (ab_c, a_bc) = (series(&desc, "ab", "c"), series(&desc, "a", "bc"));
        index.insert(42, &ab_c);
        index.insert(42, &a_bc);
        assert_eq!(index.find(42, &["ab", "c"]), Some(Arc::as_ptr(&ab_c)));
        assert_eq!(index.find(42, &["a", "bc"]), Some(Arc::as_ptr(&a_bc)));
        assert_eq!(index.find(42, &["abc", ""]), None);
        index.remove(42, &ab_c);
        assert_eq!(index.find(42, &["ab", "c"]), None);
        assert_eq!(index.find(42, &["a", "bc"]), Some(Arc::as_ptr(&a_bc)));
    }

    /// The index against the plain definition (a map from label values to
    /// the series), through inserts, removals, re-inserts and rebuilds.
    #[test]
    fn finds_what_a_map_of_label_values_finds() {
        let desc = descriptor();
        let index = SeriesIndex::new();
        let mut model: std::collections::HashMap<(String, String), Arc<Series<()>>> =
            Default::default();
        // Few distinct hashes, so that probes cross collisions and removed
        // entries all the time.
        let hash = |a: &str, b: &str| (a.len() as u64 * 31 + b.len() as u64) << 32;
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        // Miri (which checks the tagged array pointer) runs it shorter.
        let rounds = if cfg!(miri) { 400 } else { 20_000 };
        for _ in 0..rounds {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let (a, b) = (format!("m{}", rng % 97), format!("t{}", (rng >> 8) % 13));
            let key = (a.clone(), b.clone());
            match (rng >> 20) % 3 {
                0 if !model.contains_key(&key) => {
                    let s = series(&desc, &a, &b);
                    index.insert(hash(&a, &b), &s);
                    model.insert(key, s);
                }
                1 => {
                    if let Some(s) = model.remove(&key) {
                        index.remove(hash(&a, &b), &s);
                    }
                }
                _ => {}
            }
            let found = index.find(hash(&a, &b), &[a.as_str(), b.as_str()]);
            assert_eq!(found, model.get(&(a, b)).map(Arc::as_ptr));
        }
        assert!(index.capacity() >= 2 * model.len());
        // The retired arrays wait for no one here: no thread is in a lookup.
        crate::lookup_cache::collect_garbage();
    }
}
