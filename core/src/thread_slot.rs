//! Per-thread slot numbers: the key to single-writer shards.
//!
//! # Protocol
//!
//! Every thread that records gets a small integer, its *slot*, the first time
//! it records anything. Slots are unique among live threads: they come from a
//! process-wide pool that hands out the lowest free number, and a thread gives
//! its slot back when it exits (from a thread-local destructor).
//!
//! A metric keeps one cell per slot number below [`shard_count()`], plus one
//! *shared* cell, laid out so that no two threads' cells share a cache line
//! (see [`shards`](crate::shards) and the histogram storage). Because no two live threads hold
//! the same slot, the thread holding slot `i` is the only writer of cell `i`:
//! it can update it with a plain `load` + `store` instead of a locked
//! read-modify-write, which is what makes a counter increment cost about as
//! much as a thread-local add. Threads whose slot is `>= shard_count()` (more
//! recording threads than shards) or that are already tearing down their
//! thread-locals use the shared cell with atomic read-modify-write operations.
//!
//! Handing a slot from an exited thread to a new one goes through the pool's
//! mutex: the old thread's last store happens-before its unlock, which
//! happens-before the new thread's lock, so the new owner continues from the
//! old owner's final value. Nothing recorded by an exited thread is lost,
//! because the cells belong to the metric, not to the thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;

use crate::thread_words::WORDS;

/// Slot value of a thread whose thread-locals are being destroyed: it has
/// returned its slot and must use the shared cell from now on.
pub(crate) const RETIRED: u32 = u32::MAX - 1;

// The slot itself is `WORDS.slot`, in the cache line the lookup gate is in
// (see `thread_words`): `const` initialisation and no destructor, so
// reading it is a single TLS-relative load, and it stays readable during
// thread teardown.
thread_local! {
    // Its destructor returns the slot to the pool when the thread exits.
    static RELEASE_ON_EXIT: SlotRelease = const { SlotRelease };
}

struct SlotRelease;

impl Drop for SlotRelease {
    fn drop(&mut self) {
        let slot = WORDS.with(|w| w.slot.replace(RETIRED));
        if slot < RETIRED {
            pool().lock().release(slot);
        }
    }
}

#[derive(Default)]
struct SlotPool {
    next_unused: u32,
    free: BinaryHeap<Reverse<u32>>,
}

impl SlotPool {
    fn acquire(&mut self) -> u32 {
        match self.free.pop() {
            Some(Reverse(slot)) => slot,
            None => {
                let slot = self.next_unused;
                // Saturate rather than wrap: a thread beyond 4 billion live
                // threads simply shares the shared cell.
                self.next_unused = self.next_unused.saturating_add(1).min(RETIRED);
                slot
            }
        }
    }

    fn release(&mut self, slot: u32) {
        self.free.push(Reverse(slot));
    }
}

fn pool() -> &'static parking_lot::Mutex<SlotPool> {
    static POOL: OnceLock<parking_lot::Mutex<SlotPool>> = OnceLock::new();
    POOL.get_or_init(Default::default)
}

/// The calling thread's slot. Cheap after the first call on a thread.
#[inline]
pub(crate) fn current() -> u32 {
    let slot = WORDS.with(|w| w.slot.get());
    if slot < RETIRED {
        slot
    } else {
        assign_slow(slot)
    }
}

#[cold]
fn assign_slow(slot: u32) -> u32 {
    if slot == RETIRED {
        return RETIRED;
    }
    let slot = pool().lock().acquire();
    crate::first_use::note();
    WORDS.with(|w| w.slot.set(slot));
    // Touching the thread-local registers its destructor. If the thread is
    // already tearing down, registration fails: give the slot straight back.
    if RELEASE_ON_EXIT.try_with(|_| ()).is_err() {
        WORDS.with(|w| w.slot.set(RETIRED));
        pool().lock().release(slot);
        return RETIRED;
    }
    slot
}

/// Number of single-writer shards each metric keeps.
///
/// Twice the machine's parallelism rounded up to a power of two, between 4
/// and 64: enough for every core's worker plus a main thread and a few
/// helpers to each own a cell, without paying for hundreds of padded cells
/// per series on big machines.
pub(crate) fn shard_count() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores * 2).next_power_of_two().clamp(4, 64)
    })
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;

    #[test]
    fn live_threads_hold_distinct_slots_and_exited_slots_are_reused() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let slot = current();
                    barrier.wait(); // all four alive at once
                    slot
                })
            })
            .collect();
        let mut slots: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 4, "live threads must never share a slot");
    }

    #[test]
    fn pool_hands_out_the_lowest_free_slot() {
        let mut pool = SlotPool::default();
        assert_eq!((pool.acquire(), pool.acquire(), pool.acquire()), (0, 1, 2));
        pool.release(1);
        pool.release(0);
        assert_eq!(pool.acquire(), 0);
        assert_eq!(pool.acquire(), 1);
        assert_eq!(pool.acquire(), 3);
    }

    #[test]
    fn shard_count_is_a_power_of_two_in_range() {
        let n = shard_count();
        assert!(n.is_power_of_two() && (4..=64).contains(&n));
    }
}
