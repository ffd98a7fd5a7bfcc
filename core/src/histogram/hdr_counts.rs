//! HDR counts for quantiles: one byte per count and thread, carried into a
//! shared 64-bit count when it fills.
//!
//! A histogram keeps 2,688 HDR counts (see [`layout`](super::layout)): 21
//! octaves of 128 sub-buckets. At four bytes per count and thread that was
//! 10.5 KiB per series per recording thread, most of it never touched: a
//! latency distribution spanning 1 ms to 1 s lands in 11 octaves. So a
//! thread's counts are one byte each, in pages of one octave (128 bytes)
//! allocated the first time the thread records into that octave, and each
//! series has one set of shared 64-bit counts, paged the same way, that the
//! threads' bytes carry into when they fill.
//!
//! # Protocol
//!
//! * **Pages.** A page pointer starts null and is published once: a
//!   thread's narrow pages by their owner (the only writer) with a release
//!   store, the series' wide pages with a compare-exchange (any thread may
//!   carry first; the loser frees its page). Readers load with acquire. Pages
//!   are freed only when their owner (`NarrowCounts` or `WideCounts`) is
//!   dropped, which needs exclusive access.
//! * **Narrow counts** hold 0 to 254; only their owner writes them, with a
//!   plain load and a release store (a plain store on x86; release so that
//!   every value read after a carry orders that carry before the read,
//!   which a relaxed store would not: the loom model below found that). The
//!   record that would make one 255
//!   *carries*: it stores [`CARRYING`] (255) into the count, adds 255 to the
//!   wide count with a release `fetch_add`, then stores 0 with release.
//! * **Wide counts** only grow: by 255 per carry, and by 1 per record of a
//!   thread that has no slot of its own (the shared slot has no narrow
//!   counts; it adds to the wide ones directly).
//! * **Readers** merge one page at a time: read the page's wide counts, then
//!   every thread's narrow counts (acquire), then the wide counts again. If
//!   a narrow count reads `CARRYING`, or a wide count changed between the
//!   two reads, they retry the page (yielding). Otherwise each count is
//!   exact: a narrow count read before its carry's `CARRYING` store pairs
//!   with a wide count without that carry (had the wide count included it,
//!   the acquire read of the wide count would order the `CARRYING` store
//!   before the narrow read); a narrow count read after the carry (any value
//!   the owner stored since, all release stores) orders the carry's
//!   `fetch_add` before the second wide read, which
//!   therefore differs from the first unless the first already included it.
//!   Wide counts increase on every change, so equal reads are the same value.
//!
//! Writers never wait; a reader waits at most for a carry in progress (a
//! few instructions, unless the carrying thread is preempted). Counts never
//! go backwards between reads and nothing is counted twice or lost, which
//! the loom model at the bottom checks across a carry.

#[cfg(not(beluga_loom))]
use super::layout;
use crate::sync::{model_switch_point, AtomicPtr, AtomicU64, AtomicU8, Ordering::*};

/// Counts per page: one octave's sub-buckets.
#[cfg(not(beluga_loom))]
pub(crate) const PAGE: usize = 128;
/// Pages that cover every HDR index.
#[cfg(not(beluga_loom))]
pub(crate) const PAGES: usize = layout::LEN / PAGE;
#[cfg(not(beluga_loom))]
const _: () = assert!(PAGES * PAGE == layout::LEN);

// Under loom, two pages of two counts: a merge then takes a handful of
// atomic loads instead of hundreds, so the model can explore every
// interleaving. Counts are independent of each other, so the protocol is
// the same; HDR indexes wrap onto the four counts (see `locate`).
#[cfg(beluga_loom)]
pub(crate) const PAGE: usize = 2;
#[cfg(beluga_loom)]
pub(crate) const PAGES: usize = 2;

/// The page and the position in it of HDR `index`.
#[inline(always)]
fn locate(index: usize) -> (usize, usize) {
    #[cfg(beluga_loom)]
    let index = index % (PAGES * PAGE);
    (index / PAGE, index % PAGE)
}

/// A narrow count whose owner is carrying it into the wide count.
const CARRYING: u8 = u8::MAX;
/// What one carry adds to the wide count: the 254 a full narrow count holds
/// plus the record that carries.
const CARRY: u64 = CARRYING as u64;

type NarrowPage = [AtomicU8; PAGE];
type WidePage = [AtomicU64; PAGE];

/// One thread's HDR counts, one byte each (see the module docs).
pub(crate) struct NarrowCounts {
    pages: [AtomicPtr<NarrowPage>; PAGES],
}

/// A series' shared HDR counts, into which threads' narrow counts carry.
pub(crate) struct WideCounts {
    pages: [AtomicPtr<WidePage>; PAGES],
}

fn null_pages<T>() -> [AtomicPtr<T>; PAGES] {
    std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut()))
}

/// The page `pages[page]` points to, if any.
#[inline]
fn page_of<T>(pages: &[AtomicPtr<T>; PAGES], page: usize) -> Option<&T> {
    let ptr = pages[page].load(Acquire);
    // SAFETY: non-null page pointers come from `Box::into_raw` and were
    // published with release (store or compare-exchange), which our acquire
    // load synchronises with; pages are freed only by `free_pages`, from
    // `Drop`, which cannot run while `pages` is borrowed.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

fn free_pages<T>(pages: &mut [AtomicPtr<T>; PAGES]) {
    for page in pages.iter_mut() {
        let ptr = page.load(Acquire);
        if !ptr.is_null() {
            // SAFETY: `&mut` means no reader or writer is left, and every
            // non-null page pointer came from `Box::into_raw`, once.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

impl NarrowCounts {
    pub(crate) fn new() -> Self {
        NarrowCounts {
            pages: null_pages(),
        }
    }

    /// Owner only: counts one record at HDR `index`, carrying into `wide`
    /// when the narrow count fills.
    #[inline]
    pub(crate) fn increment(&self, index: usize, wide: &WideCounts) {
        let (page, at) = locate(index);
        let count = &self.page(page)[at];
        let n = count.load(Relaxed);
        if n < CARRYING - 1 {
            // Release (a plain store on x86): a reader that sees this value
            // also sees every carry before it in the wide count.
            count.store(n + 1, Release);
        } else {
            carry(count, index, wide);
        }
    }

    /// Owner only: the page, allocated on first use.
    #[inline]
    fn page(&self, page: usize) -> &NarrowPage {
        match page_of(&self.pages, page) {
            Some(counts) => counts,
            None => self.allocate(page),
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate(&self, page: usize) -> &NarrowPage {
        crate::first_use::note();
        let fresh: Box<NarrowPage> = Box::new(std::array::from_fn(|_| AtomicU8::new(0)));
        let fresh = Box::into_raw(fresh);
        // Only the owner writes its page pointers: a release store suffices.
        self.pages[page].store(fresh, Release);
        // SAFETY: just published from `Box::into_raw`; freed only in `Drop`.
        unsafe { &*fresh }
    }

    /// Heap bytes of the pages allocated so far.
    pub(crate) fn page_bytes(&self) -> usize {
        (0..PAGES)
            .filter(|&p| page_of(&self.pages, p).is_some())
            .count()
            * std::mem::size_of::<NarrowPage>()
    }
}

/// Carries a full narrow count (plus the record at hand) into `wide`.
#[cold]
#[inline(never)]
fn carry(count: &AtomicU8, index: usize, wide: &WideCounts) {
    count.store(CARRYING, Relaxed);
    model_switch_point();
    // Release: a reader whose acquire load sees this add also sees
    // `CARRYING` (or what follows) in the narrow count, never the old value.
    wide.add(index, CARRY, Release);
    model_switch_point();
    count.store(0, Release);
}

impl Drop for NarrowCounts {
    fn drop(&mut self) {
        free_pages(&mut self.pages);
    }
}

impl WideCounts {
    pub(crate) fn new() -> Self {
        WideCounts {
            pages: null_pages(),
        }
    }

    /// Adds `n` at HDR `index` (any thread).
    pub(crate) fn add(&self, index: usize, n: u64, order: crate::sync::Ordering) {
        let (page, at) = locate(index);
        let counts = match page_of(&self.pages, page) {
            Some(counts) => counts,
            None => self.allocate(page),
        };
        counts[at].fetch_add(n, order);
    }

    #[cold]
    fn allocate(&self, page: usize) -> &WidePage {
        crate::first_use::note();
        let fresh: Box<WidePage> = Box::new(std::array::from_fn(|_| AtomicU64::new(0)));
        let fresh = Box::into_raw(fresh);
        let published =
            match self.pages[page].compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire) {
                Ok(_) => fresh,
                Err(winner) => {
                    // SAFETY: `fresh` came from `Box::into_raw` above and was
                    // never published, so we still own it.
                    drop(unsafe { Box::from_raw(fresh) });
                    winner
                }
            };
        // SAFETY: published (by us or the winner) from `Box::into_raw`;
        // freed only in `Drop`.
        unsafe { &*published }
    }

    /// Heap bytes of the pages allocated so far.
    #[cfg(all(test, not(beluga_loom)))]
    pub(crate) fn page_bytes(&self) -> usize {
        (0..PAGES)
            .filter(|&p| page_of(&self.pages, p).is_some())
            .count()
            * std::mem::size_of::<WidePage>()
    }

    /// Reads one page's counts into `out` (zeros if the page is absent).
    fn read_page(&self, page: usize, out: &mut [u64; PAGE]) {
        match page_of(&self.pages, page) {
            Some(counts) => {
                for (out, count) in out.iter_mut().zip(counts) {
                    *out = count.load(Acquire);
                }
            }
            None => *out = [0; PAGE],
        }
    }

    /// Every HDR count of this series, exactly (see the module docs): the
    /// wide counts plus the narrow counts of `threads`, passed to `f` as
    /// `(index, count)` for each non-zero count.
    pub(crate) fn merge<'t>(
        &self,
        threads: impl Iterator<Item = &'t NarrowCounts> + Clone,
        mut f: impl FnMut(usize, u64),
    ) {
        let (mut before, mut after) = ([0u64; PAGE], [0u64; PAGE]);
        let mut narrow = [0u64; PAGE];
        for page in 0..PAGES {
            // An octave no thread has touched has no page anywhere: nothing
            // to read (a count on its way to the wide page starts from a
            // thread's page, so it is never skipped here). Most series touch
            // a few octaves of the 21.
            if page_of(&self.pages, page).is_none()
                && threads.clone().all(|t| page_of(&t.pages, page).is_none())
            {
                continue;
            }
            loop {
                self.read_page(page, &mut before);
                model_switch_point();
                narrow.fill(0);
                let mut carrying = false;
                for counts in threads.clone().filter_map(|t| page_of(&t.pages, page)) {
                    for (sum, count) in narrow.iter_mut().zip(counts) {
                        match count.load(Acquire) {
                            CARRYING => carrying = true,
                            n => *sum += u64::from(n),
                        }
                    }
                }
                model_switch_point();
                self.read_page(page, &mut after);
                if !carrying && before == after {
                    break;
                }
                yield_now();
            }
            for (i, (wide, narrow)) in after.iter().zip(&narrow).enumerate() {
                let count = wide.wrapping_add(*narrow);
                if count > 0 {
                    f(page * PAGE + i, count);
                }
            }
        }
    }
}

impl Drop for WideCounts {
    fn drop(&mut self) {
        free_pages(&mut self.pages);
    }
}

fn yield_now() {
    #[cfg(beluga_loom)]
    loom::thread::yield_now();
    #[cfg(not(beluga_loom))]
    std::thread::yield_now();
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;

    /// The plain definition: every record at an index counted once.
    fn merged(wide: &WideCounts, threads: &[&NarrowCounts]) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        wide.merge(threads.iter().copied(), |i, n| out.push((i, n)));
        out
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn carries_lose_and_double_nothing() {
        let wide = WideCounts::new();
        let (a, b) = (NarrowCounts::new(), NarrowCounts::new());
        for n in [0usize, 1, 253, 254, 255, 256, 509, 510, 1000] {
            let (wide, a) = (WideCounts::new(), NarrowCounts::new());
            for _ in 0..n {
                a.increment(7, &wide);
            }
            let expected: Vec<_> = (n > 0).then_some((7, n as u64)).into_iter().collect();
            assert_eq!(merged(&wide, &[&a]), expected, "{n} records");
        }
        for _ in 0..300 {
            a.increment(2000, &wide);
            b.increment(2000, &wide);
        }
        wide.add(2000, 5, Relaxed); // a thread without a slot of its own
        b.increment(5, &wide);
        assert_eq!(merged(&wide, &[&a, &b]), vec![(5, 1), (2000, 605)]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn pages_are_allocated_on_first_touch_only() {
        let (wide, a) = (WideCounts::new(), NarrowCounts::new());
        assert_eq!((a.page_bytes(), wide.page_bytes()), (0, 0));
        a.increment(3 * PAGE + 5, &wide);
        a.increment(3 * PAGE + 100, &wide);
        assert_eq!((a.page_bytes(), wide.page_bytes()), (PAGE, 0));
        for _ in 0..255 {
            a.increment(PAGES * PAGE - 1, &wide);
        }
        assert_eq!(a.page_bytes(), 2 * PAGE);
        assert_eq!(wide.page_bytes(), PAGE * 8, "the first carry pages in");
    }
}

#[cfg(all(test, beluga_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;

    /// An owner carries (its count is one short of full) while another
    /// thread adds to the wide count and a reader merges twice: the reader
    /// never sees a count go backwards or counted twice, and after the joins
    /// every record is counted once.
    #[test]
    fn carries_are_exact_under_concurrent_merges() {
        // Three preemptions cover every interleaving the argument in the
        // module docs is about (each mutation of the protocol tried fails
        // within them); unbounded, the model takes minutes.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let wide = Arc::new(WideCounts::new());
            let owner = Arc::new(NarrowCounts::new());
            // One count short of a carry (set directly: 254 increments
            // would spend loom's branch budget before the threads start).
            owner.increment(0, &wide);
            owner.page(0)[0].store(CARRYING - 1, Relaxed);
            let preset = u64::from(CARRYING - 1);
            let writer = {
                let (wide, owner) = (wide.clone(), owner.clone());
                loom::thread::spawn(move || {
                    owner.increment(0, &wide); // carries
                    owner.increment(0, &wide);
                })
            };
            let other = {
                let wide = wide.clone();
                loom::thread::spawn(move || wide.add(0, 1, Relaxed))
            };
            let read = || {
                let mut total = 0;
                wide.merge([&*owner].into_iter(), |_, n| total += n);
                total
            };
            let first = read();
            let second = read();
            assert!(
                (preset..=preset + 3).contains(&first) && second >= first,
                "read {first} then {second}"
            );
            writer.join().unwrap();
            other.join().unwrap();
            assert_eq!(read(), preset + 3);
        });
    }
}
