//! A family's lock-free index from label-set hash to series: what every
//! lookup reads (see `lookup_cache`).
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
//! * **Layout.** An open-addressing array of one-word entries, probed
//!   linearly from bits of the label-set hash: an entry is a pointer to a
//!   series the family's table owns, with a 16-bit tag (the hash's top
//!   bits, low bit set) in the address's unused top 16 bits. Null marks an
//!   empty entry; a removed one has no address and tag 2, which is even,
//!   so no live entry's tag equals it and a probe compares tags only. At
//!   most half the entries are used (live or removed), so every probe ends
//!   at an empty entry. The array is made of 64-byte lines of eight
//!   entries (50,000 label sets in 1 MiB, where two-word entries took 2 MiB
//!   and left the L2 cache), and the pointer to it carries log2 of its size
//!   in its six low bits, so a reader finds both with one load (from the
//!   family's first cache line) and goes straight to its entry. A reader
//!   compares the series' label values (`label_values`: up to 40 bytes
//!   inside the series, right before what a record reads). A series whose
//!   address needs the top 16 bits (none on x86-64 and arm64 Linux, macOS
//!   and Windows; every one on 32-bit platforms and under an allocator that
//!   tags pointers' top byte, as Android's does) is not indexed: lookups
//!   find it through the table.
//! * **Writers** are serialised by the family table's write lock: every
//!   method that changes the index says so and is only called under it. An
//!   insert fills an empty entry with one release store. A removal stores
//!   the removed marker (release), so probes continue past it; a growth
//!   (when half the entries are used) builds a new array from the live entries,
//!   placing each by the hash of its label values (the family rehashes
//!   them: an entry keeps only 16 bits of its hash), publishes it with a
//!   release store and *retires* the old one.
//! * **Readers** run inside their thread's lookup-cache gate (see
//!   `reclaim::gate`) and load entries with acquire, which pairs with
//!   the store that published the entry after the series was made. Tags
//!   are only a filter: readers compare label values, so equal hashes (or
//!   tags) never merge two series.
//! * **Reclamation.** A removed series and a replaced array may still be in
//!   use by a reader that loaded them before the change. The family hands
//!   the table's reference to a removed series, and the index hands its old
//!   arrays, to `reclaim::retire`, which frees them once every thread
//!   that might hold them has left its gate (a grace period, with the same
//!   process-wide barrier the cache sweep uses). Readers therefore never
//!   see freed memory and never write a reference count.
//!
//! Where the process-wide barrier is unavailable, lookups do not use the
//! index (`reclaim::lock_free_lookups`) and take the table's read lock
//! as before; the index is still kept up to date.

use std::sync::Arc;

use crate::label_values::LabelValues;
use crate::series::Series;
use crate::sync::{AtomicPtr, AtomicU64, Ordering::*};

/// One entry, one word: the series pointer with a 16-bit tag from its
/// label-set hash in the address's unused top bits (null: empty; a tag
/// with address 0: removed).
type Entry<S> = AtomicPtr<Series<S>>;

/// Eight entries: one cache line. Arrays are made of lines, so an array's
/// address has six low zero bits, which [`SeriesIndex::current`] uses to
/// carry the array's size: a reader finds both with one load.
#[repr(C, align(64))]
struct Line<S>([Entry<S>; ENTRIES_PER_LINE]);

const ENTRIES_PER_LINE: usize = 8;
/// The low bits of [`SeriesIndex::current`] that hold log2 of the size.
const SIZE_BITS: usize = 63;
/// Where an entry's tag starts: the top 16 bits of the word.
const TAG_SHIFT: u32 = usize::BITS - 16;
/// The address bits of an entry.
const ADDRESS: usize = (1 << TAG_SHIFT) - 1;

// `entries` reads an array of lines as one slice of entries: that needs the
// lines to hold their entries with no padding in or between them. (Loom's
// atomics are larger; under loom no index is ever read.)
#[cfg(not(beluga_loom))]
const _: () = assert!(
    std::mem::size_of::<Line<()>>() == ENTRIES_PER_LINE * std::mem::size_of::<Entry<()>>()
        && std::mem::size_of::<Line<()>>() == 64,
    "a line is eight one-word entries, nothing else"
);

/// An array that was replaced, waiting in `reclaim::retire`.
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

/// The tag kept for a label-set hash: its top 16 bits with the low one set,
/// so never 0.
fn tag_of(hash: u64) -> usize {
    (hash >> 48) as usize | 1
}

/// Where a probe for `hash` starts: bits the tag does not hold, as long as
/// the array has at most 2^32 entries.
fn start(hash: u64, mask: usize) -> usize {
    (hash >> 16) as usize & mask
}

/// `series` with `tag` in the top bits, as an entry holds it, or `None`
/// when its address needs those bits (not on x86-64 and arm64 Linux, macOS
/// and Windows, whose heaps use at most 48 address bits; always on 32-bit
/// platforms, and where the allocator tags the top byte of pointers, as
/// Android does on arm64): such a series is left out of the index and found
/// through the family's table, correct but through its read lock.
fn tagged<S>(series: *const Series<S>, tag: usize) -> Option<*mut Series<S>> {
    if series as usize & !ADDRESS != 0 {
        return None;
    }
    // `wrapping_add` keeps the pointer's provenance; the result is only
    // dereferenced after `untag` brings it back.
    Some(
        series
            .cast::<u8>()
            .wrapping_add(tag << TAG_SHIFT)
            .cast_mut()
            .cast(),
    )
}

/// The series pointer of an entry whose tag is `tag` (null if removed).
fn untag<S>(entry: *mut Series<S>, tag: usize) -> *const Series<S> {
    entry
        .cast::<u8>()
        .wrapping_sub(tag << TAG_SHIFT)
        .cast_const()
        .cast()
}

/// A removed entry: not null, so probes continue past it, with no address
/// and an even tag, which no live entry's tag equals (see [`tag_of`]).
fn removed<S>() -> *mut Series<S> {
    std::ptr::null_mut::<u8>()
        .wrapping_add(REMOVED_TAG << TAG_SHIFT)
        .cast()
}

const REMOVED_TAG: usize = 2;

const INITIAL_CAPACITY: usize = 16;

/// A new empty array of `capacity` entries (a power of two, at least a
/// line), as a tagged pointer for [`SeriesIndex::current`].
fn new_array<S>(capacity: usize) -> *mut Line<S> {
    debug_assert!(capacity.is_power_of_two() && capacity >= ENTRIES_PER_LINE);
    let lines: Box<[Line<S>]> = (0..capacity / ENTRIES_PER_LINE)
        .map(|_| {
            Line(std::array::from_fn(
                |_| AtomicPtr::new(std::ptr::null_mut()),
            ))
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
    // entries (an entry is one word), alive for `'a` (the caller).
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

/// Writer: puts `entry` (a tagged series) in the first empty entry of the
/// probe for `hash`, with one release store.
fn fill<S>(entries: &[Entry<S>], hash: u64, entry: *mut Series<S>) {
    let mask = entries.len() - 1;
    let mut i = start(hash, mask);
    loop {
        if entries[i].load(Relaxed).is_null() {
            entries[i].store(entry, Release);
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
        // left its gate (`reclaim::retire`), and the last one is freed
        // in `Drop`, which needs exclusive access.
        unsafe { entries(self.current.load(Acquire)) }
    }

    /// Reader, inside its lookup-cache gate: the series for `values`.
    /// The pointer stays valid until the caller leaves the gate. Inlined
    /// into every lookup: the scan of tags up to the first entry with this
    /// label set's tag (or an empty one), and the comparison of that
    /// entry's values. Only a tag that matched another label set's (the
    /// tag keeps 15 bits of the hash) continues out of line: so a label set
    /// displaced from its first entry costs one more step of the scan, not
    /// a call, which a hot loop over such label sets would pay on every
    /// lookup (docs/design-notes.md).
    #[inline(always)]
    pub(crate) fn find<V: AsRef<str>>(&self, hash: u64, values: &[V]) -> Option<*const Series<S>> {
        let entries = self.entries();
        let tag = tag_of(hash);
        let mask = entries.len() - 1;
        let mut i = start(hash, mask);
        let series = loop {
            let seen = entries[i].load(Acquire);
            let bits = seen as usize;
            if bits >> TAG_SHIFT == tag {
                break untag(seen, tag);
            }
            if bits == 0 {
                return None;
            }
            i = (i + 1) & mask;
        };
        // SAFETY: as in `probe_from`: a live entry (a removed one's tag
        // equals no live one's) points to a series that stays allocated
        // until this reader leaves its gate.
        if unsafe { &(*series).label_values }.equals(values) {
            return Some(series);
        }
        Self::probe_from(entries, i, tag, values)
    }

    /// The rest of [`find`](Self::find)'s probe, after the entry at `first`
    /// (whose tag matched but whose values did not).
    #[inline(never)]
    fn probe_from<V: AsRef<str>>(
        entries: &[Entry<S>],
        first: usize,
        tag: usize,
        values: &[V],
    ) -> Option<*const Series<S>> {
        let mask = entries.len() - 1;
        let mut i = first;
        loop {
            i = (i + 1) & mask;
            let seen = entries[i].load(Acquire);
            let bits = seen as usize;
            if bits == 0 {
                return None;
            }
            if bits >> TAG_SHIFT == tag {
                let series = untag(seen, tag);
                // SAFETY: a live entry points to a series the table owned
                // when it was loaded (the acquire load pairs with the
                // writer's release store, which came after the series was
                // made); a removed series is retired, not freed, until this
                // reader has left its gate (module docs). A removed entry's
                // tag equals no live one's, so it is never followed.
                if unsafe { &(*series).label_values }.equals(values) {
                    return Some(series);
                }
            }
        }
    }

    /// Writer, under the family table's write lock: indexes `series`
    /// (which the table now owns) under `hash`. A series whose address
    /// leaves no room for the tag is not indexed (see [`tagged`]).
    /// `rehash` gives the hash of an indexed series' label values (the
    /// family's own, `hash_values` with its seed): a growth needs it to
    /// place the entries, which keep 16 bits of their hash.
    pub(crate) fn insert(
        &self,
        hash: u64,
        series: &Arc<Series<S>>,
        rehash: impl Fn(&LabelValues) -> Option<u64>,
    ) {
        let Some(entry) = tagged(Arc::as_ptr(series), tag_of(hash)) else {
            return;
        };
        let used = self.used.load(Relaxed) as usize;
        if (used + 1) * 2 > self.entries().len() {
            self.rebuild(1, rehash);
        }
        fill(self.entries(), hash, entry);
        self.used.fetch_add(1, Relaxed);
        self.live.fetch_add(1, Relaxed);
    }

    /// Writer, under the family table's write lock: un-indexes `series`
    /// (indexed under `hash`). The caller retires the table's reference.
    pub(crate) fn remove(&self, hash: u64, series: &Arc<Series<S>>) {
        let entries = self.entries();
        let tag = tag_of(hash);
        let Some(target) = tagged(Arc::as_ptr(series), tag) else {
            return; // never indexed
        };
        let mut i = start(hash, entries.len() - 1);
        loop {
            let seen = entries[i].load(Relaxed);
            if seen.is_null() {
                return; // not indexed
            }
            if seen == target {
                entries[i].store(removed(), Release);
                self.live.fetch_sub(1, Relaxed);
                return;
            }
            i = (i + 1) & (entries.len() - 1);
        }
    }

    /// Writer: replaces the array with one sized for the live entries plus
    /// `extra`, without the removed ones, and retires the old one.
    #[cold]
    fn rebuild(&self, extra: usize, rehash: impl Fn(&LabelValues) -> Option<u64>) {
        let old = self.entries();
        let live = self.live.load(Relaxed) as usize + extra;
        // Between a quarter and half full after a rebuild: dense enough
        // that 50,000 label sets fit in 1 MiB (eight-byte entries),
        // sparse enough for short probes.
        let capacity = (live * 2 + 2).next_power_of_two().max(INITIAL_CAPACITY);
        let fresh = new_array::<S>(capacity);
        // SAFETY: just made, not published yet.
        let fresh_entries = unsafe { entries(fresh) };
        let mut used = 0;
        for entry in old {
            let seen = entry.load(Relaxed);
            let tag = seen as usize >> TAG_SHIFT;
            if seen as usize & ADDRESS == 0 {
                continue; // empty or removed
            }
            // SAFETY: a live entry's series is owned by the table, whose
            // write lock the caller holds, so it is alive.
            let series = unsafe { &*untag(seen, tag) };
            // Its values passed the length check when it was made.
            if let Some(hash) = rehash(&series.label_values) {
                fill(fresh_entries, hash, seen);
                used += 1;
            }
        }
        self.used.store(used, Relaxed);
        let old = self.current.swap(fresh, AcqRel);
        // SAFETY: `old` came from `new_array` and is no longer reachable
        // from `current`; readers that loaded it before the swap are waited
        // out by `retire`.
        crate::reclaim::retire(Box::new(Retired(unsafe { into_box(old) })));
    }

    /// Heap bytes of the current array.
    #[cfg(test)]
    // The loom build leaves out the tests that read it.
    #[cfg_attr(beluga_loom, allow(dead_code))]
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

#[cfg(all(test, not(beluga_loom)))]
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
        let rehash = |_: &LabelValues| Some(42);
        let (ab_c, a_bc) = (series(&desc, "ab", "c"), series(&desc, "a", "bc"));
        index.insert(42, &ab_c, rehash);
        index.insert(42, &a_bc, rehash);
        assert_eq!(index.find(42, &["ab", "c"]), Some(Arc::as_ptr(&ab_c)));
        assert_eq!(index.find(42, &["a", "bc"]), Some(Arc::as_ptr(&a_bc)));
        assert_eq!(index.find(42, &["abc", ""]), None);
        index.remove(42, &ab_c);
        assert_eq!(index.find(42, &["ab", "c"]), None);
        assert_eq!(index.find(42, &["a", "bc"]), Some(Arc::as_ptr(&a_bc)));
    }

    /// A removed entry is skipped without being read, whatever the hash of
    /// the lookup: its tag (2) is even and every live tag is odd, so a
    /// probe never follows its (null) address.
    #[test]
    fn removed_entries_never_match() {
        let desc = descriptor();
        let index = SeriesIndex::new();
        // Hashes whose top 16 bits are the marker's tag, and one bit off.
        for hash in [2 << 48, 3 << 48, (2 << 48) | 0xffff] {
            assert_ne!(tag_of(hash), REMOVED_TAG);
            let rehash = move |_: &LabelValues| Some(hash);
            let x = series(&desc, "x", "y");
            index.insert(hash, &x, rehash);
            index.remove(hash, &x);
            assert_eq!(index.find(hash, &["x", "y"]), None);
            let again = series(&desc, "x", "y");
            index.insert(hash, &again, rehash);
            assert_eq!(index.find(hash, &["x", "y"]), Some(Arc::as_ptr(&again)));
            index.remove(hash, &again);
        }
    }

    /// Only addresses that leave the top 16 bits free take a tag; others
    /// are left out of the index (and found through the table).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_tag_goes_only_where_the_address_leaves_room() {
        // Addresses without provenance: only compared, never read.
        let at = |address: usize| {
            std::ptr::null::<u8>()
                .wrapping_add(address)
                .cast::<Series<()>>()
        };
        let low = at(0x7fff_ffff_f000);
        let entry = tagged(low, 0x8001).expect("a 47-bit address has room");
        assert_eq!(entry as usize >> TAG_SHIFT, 0x8001);
        assert_eq!(untag(entry, 0x8001), low);
        let high = at(1 << 50);
        assert!(tagged(high, 1).is_none());
    }

    /// The index against the plain definition (a map from label values to
    /// the series), through inserts, removals, re-inserts and rebuilds.
    #[test]
    fn finds_what_a_map_of_label_values_finds() {
        let desc = descriptor();
        // Few distinct hashes, so that probes cross collisions and removed
        // entries all the time (and every tag is the same).
        let index = SeriesIndex::new();
        let hash = |a: &str, b: &str| (a.len() as u64 * 31 + b.len() as u64) << 32;
        let rehash = |values: &LabelValues| {
            let values: Vec<&str> = values.iter().collect();
            Some(hash(values[0], values[1]))
        };
        let mut model: std::collections::HashMap<(String, String), Arc<Series<()>>> =
            Default::default();
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
                    index.insert(hash(&a, &b), &s, rehash);
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
        assert!(index.used.load(Relaxed) as usize >= model.len());
        // The retired arrays wait for no one here: no thread is in a lookup.
        crate::reclaim::collect_garbage();
    }
}
