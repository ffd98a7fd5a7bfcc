//! Sharded 64-bit cells: the storage behind counters.
//!
//! # Protocol
//!
//! A `Shards` holds [`shard_count()`](crate::thread_slot::shard_count)
//! *owned* cells and one *shared* cell, each on its own cache line
//! ([`CachePadded`]) so that two threads writing neighbouring cells never
//! invalidate each other's line.
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
//! The same cells hold either `u64` counts or `f64` bit patterns; the metric
//! kind decides which accessor it uses and never mixes them.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering::Relaxed};
use crate::thread_slot;

/// Sharded cells behind a counter (see the module docs).
pub struct Shards {
    /// `owned` cells followed by the shared cell (always the last one).
    cells: Box<[CachePadded<AtomicU64>]>,
}

impl Shards {
    /// Shards sized for this machine, each holding the bits of `initial`.
    pub(crate) fn new(initial: u64) -> Self {
        Self::with_owned(thread_slot::shard_count(), initial)
    }

    pub(crate) fn with_owned(owned: usize, initial: u64) -> Self {
        // Only the shared cell carries the initial value, so sums stay right.
        let cells = (0..=owned)
            .map(|i| CachePadded::new(AtomicU64::new(if i == owned { initial } else { 0 })))
            .collect();
        Shards { cells }
    }

    /// Bytes this value occupies on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.cells)
    }

    #[inline]
    fn owned_count(&self) -> usize {
        self.cells.len() - 1
    }

    #[inline]
    pub(crate) fn add_u64(&self, value: u64) {
        self.add_u64_at(thread_slot::current(), value);
    }

    #[inline]
    pub(crate) fn add_u64_at(&self, slot: u32, value: u64) {
        let slot = slot as usize;
        if slot < self.owned_count() {
            let cell = &self.cells[slot];
            cell.store(cell.load(Relaxed).wrapping_add(value), Relaxed);
        } else {
            self.cells[self.owned_count()].fetch_add(value, Relaxed);
        }
    }

    #[inline]
    pub(crate) fn add_f64(&self, value: f64) {
        self.add_f64_at(thread_slot::current(), value);
    }

    #[inline]
    pub(crate) fn add_f64_at(&self, slot: u32, value: f64) {
        let slot = slot as usize;
        if slot < self.owned_count() {
            let cell = &self.cells[slot];
            let sum = f64::from_bits(cell.load(Relaxed)) + value;
            cell.store(sum.to_bits(), Relaxed);
        } else {
            let shared = &self.cells[self.owned_count()];
            let mut current = shared.load(Relaxed);
            loop {
                let next = (f64::from_bits(current) + value).to_bits();
                match shared.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                    Ok(_) => break,
                    Err(seen) => current = seen,
                }
            }
        }
    }

    pub(crate) fn sum_u64(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |acc, c| acc.wrapping_add(c.load(Relaxed)))
    }

    pub(crate) fn sum_f64(&self) -> f64 {
        self.cells
            .iter()
            .map(|c| f64::from_bits(c.load(Relaxed)))
            .sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owned_and_shared_cells_add_up() {
        let shards = Shards::with_owned(2, 0);
        shards.add_u64_at(0, 5);
        shards.add_u64_at(1, 7);
        shards.add_u64_at(9, 11); // beyond the owned cells: shared
        shards.add_u64_at(thread_slot::RETIRED, 1);
        assert_eq!(shards.sum_u64(), 24);
    }

    #[test]
    fn float_cells_add_up() {
        let shards = Shards::with_owned(2, 0f64.to_bits());
        shards.add_f64_at(0, 0.5);
        shards.add_f64_at(5, 0.25);
        assert_eq!(shards.sum_f64(), 0.75);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;

    /// Two owners and one shared-cell writer race a reader: the reader's two
    /// reads never go backwards, and after the joins it sees every add.
    #[test]
    fn sums_are_monotonic_and_complete() {
        loom::model(|| {
            let shards = Arc::new(Shards::with_owned(2, 0));
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
            let shards = Arc::new(Shards::with_owned(1, 0));
            let pool = Arc::new(crate::sync::Mutex::new(Some(0u32)));
            let owners: Vec<_> = (0..2)
                .map(|_| {
                    let (shards, pool) = (shards.clone(), pool.clone());
                    loom::thread::spawn(move || {
                        // Take the slot, record, give it back (thread exit).
                        let slot = loop {
                            if let Some(slot) = pool.lock().take() {
                                break slot;
                            }
                            loom::thread::yield_now();
                        };
                        shards.add_u64_at(slot, 1);
                        *pool.lock() = Some(slot);
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
