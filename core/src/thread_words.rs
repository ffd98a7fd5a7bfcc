//! The thread-local words a labelled record reads, in one cache line.
//!
//! A lookup reads its thread's gate and flags (see
//! [`reclaim::gate`](crate::reclaim::gate) and `lookup_cache`), and the record
//! that follows reads the thread's slot (see
//! [`thread_slot`](crate::thread_slot)). As two thread-locals they would sit
//! where the linker puts them, usually lines apart: two cache lines to
//! load for an agent's record made after its caches were flushed, where
//! one will do.
//! So they share one value, aligned to a cache line, with no destructor (a
//! thread-local with one is read through a state flag first, and this one
//! must stay readable while the thread's other destructors run).
//!
//! Each field belongs to the module that documents it; this module only
//! places them.

use std::cell::Cell;

use crate::reclaim::gate::Gate;

/// Slot value of a thread that has not recorded yet (see `thread_slot`).
pub(crate) const UNASSIGNED: u32 = u32::MAX;

/// What a thread's lookups and records read on every call.
#[repr(C, align(64))]
pub(crate) struct ThreadWords {
    /// The lookup gate (`reclaim::gate`): who may read the thread's lookup
    /// cache and when the thread is inside a lookup.
    pub(crate) gate: Gate,
    /// Whether the thread's lookup cache is in the list of caches
    /// (`lookup_cache`), after the thread's first lookup.
    pub(crate) listed: Cell<bool>,
    /// Whether the thread's lookups read families' lock-free indexes
    /// (`reclaim::lock_free_lookups`), set when the cache joins the
    /// list.
    pub(crate) index_reads: Cell<bool>,
    /// The thread's slot (`thread_slot`), or one of its markers.
    pub(crate) slot: Cell<u32>,
}

#[cfg(not(beluga_loom))]
thread_local! {
    /// This thread's words.
    pub(crate) static WORDS: ThreadWords = const {
        ThreadWords {
            gate: Gate::new(),
            listed: Cell::new(false),
            index_reads: Cell::new(false),
            slot: Cell::new(UNASSIGNED),
        }
    };
}

// Loom's atomics cannot be built in a constant; under loom only the models
// run, and they read no thread's words.
#[cfg(beluga_loom)]
thread_local! {
    /// This thread's words.
    pub(crate) static WORDS: ThreadWords = ThreadWords {
        gate: Gate::new(),
        listed: Cell::new(false),
        index_reads: Cell::new(false),
        slot: Cell::new(UNASSIGNED),
    };
}

#[cfg(all(test, not(beluga_loom)))]
mod tests {
    use super::*;

    /// The point of the module: everything in one cache line.
    #[test]
    fn the_words_fill_one_cache_line() {
        assert_eq!(std::mem::align_of::<ThreadWords>(), 64);
        assert_eq!(std::mem::size_of::<ThreadWords>(), 64);
        WORDS.with(|w| assert_eq!(std::ptr::from_ref(w) as usize % 64, 0));
    }
}
