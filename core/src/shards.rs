//! Sharded 64-bit cells: the storage behind counters.
//!
//! # Protocol
//!
//! A counter owns one cell per thread slot below
//! [`shard_count()`](crate::thread_slot::shard_count), plus one *shared*
//! cell.
//!
//! * A thread whose slot (see [`thread_slot`](crate::thread_slot)) is below
//!   the number of owned cells is the only writer of that cell. It adds with a
//!   `Relaxed` load followed by a `Relaxed` store: no locked instruction, no
//!   retry loop.
//! * Every other thread adds to the shared cell with an atomic
//!   read-modify-write (`fetch_add`, or a compare-exchange loop for `f64`).
//! * A reader sums all cells with `Relaxed` loads. Each cell only grows, and
//!   per-location coherence guarantees a later load never returns an older
//!   value than an earlier one, so two reads by the same reader never go
//!   backwards. A record that happens-before a read (through any
//!   synchronisation: a join, a channel, a mutex) is seen by that read.
//!
//! # Layout
//!
//! Cells live in *chunks* of [`CHUNK`] counters, laid out by slot: stripe
//! `s` of a chunk holds slot `s`'s cells of all its counters, side by side.
//! Only the thread holding slot `s` writes stripe `s`, so no two threads
//! ever write the same cache line (stripes are padded apart), yet a counter
//! costs 8 bytes per slot instead of a padded cache line per slot, and a
//! reader walking counters in order streams through each stripe. Chunks come
//! from a process-wide arena and are never freed; a dropped counter's cells
//! are zeroed and reused by the next counter (no handle can reach them any
//! more, and the arena's mutex orders the zeroing before the reuse).
//!
//! A counter keeps a pointer to its stripe-0 cell and the stripe stride, so
//! an add is one multiply-add away from its cell with no load from the
//! chunk (`counter_inc` in `benches/benches/core.rs` measures it); the
//! `Arc` it also holds keeps the chunk alive for as long as the pointer.
//!
//! The same cells hold either `u64` counts or `f64` bit patterns; the metric
//! kind decides which accessor it uses and never mixes them.

use std::sync::Arc;

use crate::sync::{model_switch_point, AtomicU64, Ordering::Relaxed};
use crate::thread_slot;

/// Counters per chunk.
#[cfg_attr(beluga_loom, allow(dead_code))]
pub(crate) const CHUNK: usize = 2048;
/// Cells between two stripes, so the last cell of one stripe and the first
/// of the next never share a cache line (two 64-byte lines of padding).
const STRIPE_PAD: usize = 16;

/// Cells of `per_stripe` counters for `stripes` slots (the last stripe is
/// the shared one).
pub(crate) struct Chunk {
    cells: Box<[AtomicU64]>,
    stride: usize,
    stripes: usize,
}

impl Chunk {
    fn new(stripes: usize, per_stripe: usize) -> Chunk {
        let stride = per_stripe + STRIPE_PAD;
        Chunk {
            cells: (0..stripes * stride).map(|_| AtomicU64::new(0)).collect(),
            stride,
            stripes,
        }
    }

    #[inline]
    fn cell(&self, stripe: usize, index: usize) -> &AtomicU64 {
        &self.cells[stripe * self.stride + index]
    }
}

/// Where counters get their cells: chunks plus the cells of dropped counters.
#[cfg(not(beluga_loom))]
#[derive(Default)]
struct Arena {
    chunks: Vec<Arc<Chunk>>,
    /// Cells of dropped counters, zeroed: (chunk, index).
    free: Vec<(usize, usize)>,
    /// Next never-used index in the last chunk.
    next: usize,
}

#[cfg(not(beluga_loom))]
fn arena() -> &'static parking_lot::Mutex<Arena> {
    static ARENA: std::sync::OnceLock<parking_lot::Mutex<Arena>> = std::sync::OnceLock::new();
    ARENA.get_or_init(Default::default)
}

/// One counter's cells. `repr(C)`: what an add reads comes first, 16
/// bytes that `Series` places right after the label values, so a lookup
/// and an increment read one stretch of 64 bytes of the series (one line,
/// or two adjacent ones).
#[repr(C)]
pub struct Shards {
    /// The first cell of this counter (slot 0's), and the distance between
    /// its cells, copied out of the chunk so an add needs no load from it.
    first: *const AtomicU64,
    stride: u32,
    owned: u32,
    chunk: Arc<Chunk>,
    /// Position in the chunk, and in the arena (`None` for private chunks).
    index: usize,
    #[cfg_attr(beluga_loom, allow(dead_code))]
    arena_chunk: Option<usize>,
}

// The hot fields' place (see above).
#[cfg(not(beluga_loom))]
const _: () = assert!(
    std::mem::offset_of!(Shards, first) == 0 && std::mem::offset_of!(Shards, owned) == 12,
    "an add's fields are the first 16 bytes"
);

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("owned", &self.owned)
            .field("sum", &self.sum_u64())
            .finish_non_exhaustive()
    }
}

impl Shards {
    /// Cells for one counter from the process-wide arena.
    #[cfg(not(beluga_loom))]
    pub(crate) fn new() -> Self {
        let stripes = thread_slot::shard_count() + 1;
        let mut arena = arena().lock();
        let (chunk, index) = match arena.free.pop() {
            Some(reused) => reused,
            None => {
                if arena.chunks.is_empty() || arena.next == CHUNK {
                    arena.chunks.push(Arc::new(Chunk::new(stripes, CHUNK)));
                    arena.next = 0;
                }
                arena.next += 1;
                (arena.chunks.len() - 1, arena.next - 1)
            }
        };
        Shards::in_chunk(arena.chunks[chunk].clone(), index, Some(chunk))
    }

    /// Under loom every counter gets a private chunk: loom's atomics must be
    /// created inside each model run, so a process-wide arena cannot hold them.
    #[cfg(beluga_loom)]
    pub(crate) fn new() -> Self {
        Self::with_owned(thread_slot::shard_count())
    }

    /// Cells for one counter in a chunk of its own, with `owned` owned cells
    /// (tests and loom models, which need their own atomics).
    #[cfg_attr(not(any(test, beluga_loom)), allow(dead_code))]
    pub(crate) fn with_owned(owned: usize) -> Self {
        Shards::in_chunk(Arc::new(Chunk::new(owned + 1, 1)), 0, None)
    }

    fn in_chunk(chunk: Arc<Chunk>, index: usize, arena_chunk: Option<usize>) -> Self {
        Shards {
            // From the array's own pointer, not from a reference to one
            // cell: a pointer made from `&cells[index]` may only reach that
            // one cell (Miri's Stacked Borrows check rejects the stride
            // arithmetic below otherwise). `index < stride`, so this stays
            // inside stripe 0.
            first: chunk.cells.as_ptr().wrapping_add(index),
            // A stripe is at most `CHUNK` cells plus padding, and there
            // are as many stripes as shards plus one: both far below 2^32.
            stride: u32::try_from(chunk.stride).expect("a chunk stripe fits u32"),
            owned: u32::try_from(chunk.stripes - 1).expect("the shard count fits u32"),
            chunk,
            index,
            arena_chunk,
        }
    }

    /// This counter's cell of stripe `stripe` (`stripe <= owned`).
    #[inline]
    fn cell_at(&self, stripe: usize) -> &AtomicU64 {
        debug_assert!(stripe <= self.owned as usize);
        // SAFETY: `first` points at this counter's cell in stripe 0 of
        // `chunk`, which `self` keeps alive; stripe `s`'s cell is `s * stride`
        // cells further, inside the chunk's cell array for every
        // `s <= owned` (the chunk has `owned + 1` stripes of `stride` cells).
        unsafe { &*self.first.add(stripe * self.stride as usize) }
    }

    /// Heap bytes one counter's cells take in an arena chunk.
    pub(crate) fn bytes_per_counter() -> usize {
        (thread_slot::shard_count() + 1) * std::mem::size_of::<AtomicU64>()
    }

    #[inline]
    fn owned_count(&self) -> usize {
        self.owned as usize
    }

    #[inline]
    pub(crate) fn add_u64(&self, value: u64) {
        self.add_u64_at(thread_slot::current(), value);
    }

    /// Adds `value`, saturating at `u64::MAX`: a counter never wraps back
    /// to a smaller total. Saturated adds are counted process-wide
    /// ([`saturated_adds`]).
    #[inline]
    pub(crate) fn add_u64_at(&self, slot: u32, value: u64) {
        let slot = slot as usize;
        if slot < self.owned_count() {
            let cell = self.cell_at(slot);
            let before = cell.load(Relaxed);
            model_switch_point();
            match before.checked_add(value) {
                Some(sum) => cell.store(sum, Relaxed),
                None => saturate(cell),
            }
        } else {
            // A compare-exchange rather than `fetch_add`, which would wrap.
            let shared = self.cell_at(self.owned as usize);
            // `fetch_update` is `try_update` on nightly (Miri's toolchain);
            // stable, and so the crate's minimum Rust, has only this name.
            #[allow(deprecated)]
            if shared
                .fetch_update(Relaxed, Relaxed, |c| c.checked_add(value))
                .is_err()
            {
                saturate(shared);
            }
        }
    }

    /// Adds a finite, non-negative `value`; returns `false`, leaving the
    /// cell as it was, when the cell would pass `f64::MAX`.
    #[inline]
    #[must_use = "an add that would overflow is refused and must be counted"]
    pub(crate) fn add_f64(&self, value: f64) -> bool {
        self.add_f64_at(thread_slot::current(), value)
    }

    #[inline]
    #[must_use = "an add that would overflow is refused and must be counted"]
    pub(crate) fn add_f64_at(&self, slot: u32, value: f64) -> bool {
        let slot = slot as usize;
        if slot < self.owned_count() {
            let cell = self.cell_at(slot);
            let sum = f64::from_bits(cell.load(Relaxed)) + value;
            if !sum.is_finite() {
                return false;
            }
            cell.store(sum.to_bits(), Relaxed);
            true
        } else {
            let shared = self.cell_at(self.owned as usize);
            // `fetch_update`: see `add` above.
            #[allow(deprecated)]
            shared
                .fetch_update(Relaxed, Relaxed, |current| {
                    let next = f64::from_bits(current) + value;
                    next.is_finite().then_some(next.to_bits())
                })
                .is_ok()
        }
    }

    fn cells(&self) -> impl Iterator<Item = &AtomicU64> {
        (0..self.chunk.stripes).map(|s| self.chunk.cell(s, self.index))
    }

    /// The total, saturating at `u64::MAX` (every cell only grows, so the
    /// saturating sum never goes down either).
    pub(crate) fn sum_u64(&self) -> u64 {
        self.cells().fold(0u64, |acc, c| {
            model_switch_point();
            acc.saturating_add(c.load(Relaxed))
        })
    }

    /// The total, at most `f64::MAX` (cells stay finite; their sum is
    /// clamped rather than allowed to reach `+Inf`).
    pub(crate) fn sum_f64(&self) -> f64 {
        self.cells()
            .fold(0.0f64, |acc, c| acc + f64::from_bits(c.load(Relaxed)))
            .min(f64::MAX)
    }
}

/// Adds that hit `u64::MAX`, across all counters of the process.
static SATURATED_ADDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many counter adds saturated at `u64::MAX` in this process.
pub(crate) fn saturated_adds() -> u64 {
    SATURATED_ADDS.load(std::sync::atomic::Ordering::Relaxed)
}

#[cold]
fn saturate(cell: &AtomicU64) {
    cell.store(u64::MAX, Relaxed);
    SATURATED_ADDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

// SAFETY: `first` points into `chunk`, an `Arc` of atomics that is itself
// `Send + Sync`; the pointer is only ever turned into shared references to
// those atomics.
unsafe impl Send for Shards {}
// SAFETY: as above.
unsafe impl Sync for Shards {}

impl Drop for Shards {
    fn drop(&mut self) {
        #[cfg(not(beluga_loom))]
        if let Some(chunk) = self.arena_chunk {
            // No handle reaches these cells any more: clear them for reuse.
            for cell in self.cells() {
                cell.store(0, Relaxed);
            }
            arena().lock().free.push((chunk, self.index));
        }
    }
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn owned_and_shared_cells_add_up() {
        let shards = Shards::with_owned(2);
        shards.add_u64_at(0, 5);
        shards.add_u64_at(1, 7);
        shards.add_u64_at(9, 11); // beyond the owned cells: shared
        shards.add_u64_at(thread_slot::RETIRED, 1);
        assert_eq!(shards.sum_u64(), 24);
    }

    #[test]
    fn arena_cells_are_zeroed_and_reused() {
        let first = Shards::new();
        first.add_u64_at(0, 41);
        first.add_u64_at(99, 1);
        assert_eq!(first.sum_u64(), 42);
        drop(first);
        // Whichever cells the next counters get, they start at zero.
        let next: Vec<Shards> = (0..3).map(|_| Shards::new()).collect();
        assert!(next.iter().all(|s| s.sum_u64() == 0));
    }

    #[test]
    fn counters_in_one_chunk_do_not_share_cells() {
        let counters: Vec<Shards> = (0..100).map(|_| Shards::new()).collect();
        for (i, c) in counters.iter().enumerate() {
            c.add_u64_at(0, i as u64);
            c.add_u64_at(1, 1);
        }
        for (i, c) in counters.iter().enumerate() {
            assert_eq!(c.sum_u64(), i as u64 + 1);
        }
    }

    #[test]
    fn float_cells_add_up() {
        let shards = Shards::with_owned(2);
        assert!(shards.add_f64_at(0, 0.5));
        assert!(shards.add_f64_at(5, 0.25));
        assert_eq!(shards.sum_f64(), 0.75);
    }
}

#[cfg(all(test, beluga_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;

    /// Two owners and one shared-cell writer race a reader: the reader's two
    /// reads never go backwards, and after the joins it sees every add.
    #[test]
    fn sums_are_monotonic_and_complete() {
        // With the switch points every interleaving of the adds and the two
        // reads is reachable; unbounded that is millions of executions
        // (minutes), and two preemptions already reach every pair of sums
        // the reads can see.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(|| {
            let shards = Arc::new(Shards::with_owned(2));
            let writers: Vec<_> = [0u32, 1, 7]
                .into_iter()
                .map(|slot| {
                    let shards = shards.clone();
                    loom::thread::spawn(move || {
                        shards.add_u64_at(slot, 1);
                        shards.add_u64_at(slot, 2);
                    })
                })
                .collect();
            let first = shards.sum_u64();
            let second = shards.sum_u64();
            assert!(
                second >= first,
                "a counter went backwards: {first} then {second}"
            );
            for w in writers {
                w.join().unwrap();
            }
            assert_eq!(shards.sum_u64(), 9);
        });
    }

    /// A slot handed from an exited owner to a new owner through the pool's
    /// mutex: the new owner continues from the old owner's last value.
    #[test]
    fn slot_handoff_through_the_pool_loses_nothing() {
        loom::model(|| {
            let shards = Arc::new(Shards::with_owned(1));
            let pool = Arc::new(loom::sync::Mutex::new(Some(0u32)));
            let owners: Vec<_> = (0..2)
                .map(|_| {
                    let (shards, pool) = (shards.clone(), pool.clone());
                    loom::thread::spawn(move || {
                        // Take the slot, record, give it back (thread exit).
                        let slot = loop {
                            if let Some(slot) = pool.lock().unwrap().take() {
                                break slot;
                            }
                            loom::thread::yield_now();
                        };
                        shards.add_u64_at(slot, 1);
                        *pool.lock().unwrap() = Some(slot);
                    })
                })
                .collect();
            for o in owners {
                o.join().unwrap();
            }
            assert_eq!(shards.sum_u64(), 2);
        });
    }
}
