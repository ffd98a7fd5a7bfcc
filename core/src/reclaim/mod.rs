//! Safe memory reclamation for lock-free lookups: when memory that a
//! lookup may be reading without a lock (a family's index array that was
//! replaced, a removed series) can be freed.
//!
//! # Concept
//!
//! A lookup reads a family's index, and the series it finds there, without
//! taking a lock or touching a shared counter. A writer that unlinks such
//! memory therefore cannot know, from the memory itself, whether a reader
//! still holds it. Like epoch-based reclamation (crossbeam-epoch), a writer
//! *retires* the memory instead of freeing it, and it is freed after a
//! *grace period*: once every thread that was inside a lookup when it was
//! retired has left that lookup. Unlike an epoch scheme, a reader pays no
//! atomic read-modify-write and no full fence to enter or leave: each
//! thread's [`gate`] is a flag only its owner writes, and the writer pays
//! for the ordering with one process-wide barrier ([`fence::heavy`],
//! Linux's `membarrier`).
//!
//! # Parts
//!
//! * [`gate`]: one thread's gate, entered for the whole of each lookup.
//! * [`threads`]: the list of threads that may be inside a lookup.
//! * [`fence`]: the asymmetric fence pair (a compiler fence on the
//!   reader's side, a process-wide barrier on the writer's).
//! * [`retire`] and [`collect_garbage`] (here): the grace periods.
//!
//! # Protocol
//!
//! A reader reaches retirable memory only inside its gate (entering stores
//! `in_use`, then a light fence, then it loads the index). A writer unlinks
//! the memory (a release store), then [`retire`] issues the heavy barrier
//! and reads every listed gate: a reader that could have loaded the memory
//! is seen in use, and a reader seen out cannot load it afterwards
//! (Dekker's argument, as in the gate's sweeps). The memory waits for each
//! gate seen in use until its owner has left that lookup, has been seen out
//! after a later barrier, or has exited. Where the barrier is unavailable,
//! lookups never read indexes ([`lock_free_lookups`]) and retired memory is
//! freed at once.
//!
//! # Checked by
//!
//! The loom models in `gate.rs` (`retired_items_are_freed_only_after_readers_leave`
//! and the sweep models), with both fences as `SeqCst` fences; Miri runs the
//! lock-free index's and the lookup cache's tests (`scripts/test.sh`).

pub(crate) mod fence;
pub(crate) mod gate;
pub(crate) mod threads;

use parking_lot::Mutex;

/// Whether lookups may read a family's
/// `SeriesIndex` (`series_index.rs`) without a lock (instead of the
/// per-thread cache): only where the process-wide barrier that
/// [`retire`]'s grace periods need is available.
#[inline]
pub(crate) fn lock_free_lookups() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(fence::heavy)
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
        let caches = threads::lock();
        if !fence::heavy() {
            // Registered once; a refusal now would be a kernel change.
            // Keep the item rather than risk a reader.
            caches.iter().map(|l| (l.id(), l.gate().ask())).collect()
        } else {
            caches
                .iter()
                .filter(|l| !l.gate().owner_is_out())
                .map(|l| (l.id(), l.gate().ask()))
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
        let caches = threads::lock();
        let barrier = fence::heavy();
        let done = |&(id, ticket): &(u64, u64)| match caches.iter().find(|l| l.id() == id) {
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
