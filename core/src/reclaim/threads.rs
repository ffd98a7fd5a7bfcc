//! The list of threads that may be inside a lookup: every thread whose
//! lookups read lock-free memory (a family's index) or whose per-thread
//! cache holds series. Grace periods ([`retire`](super::retire)) wait for
//! listed threads only; sweeps of removed series
//! (`lookup_cache::forget_removed`) visit listed caches only.
//!
//! An entry keeps the address of the thread's [`Gate`] and, opaquely, of
//! its lookup cache, with an id no other entry ever has (an address can be
//! reused by a later thread). Both are thread-locals of the listed thread
//! without destructors: they live until the thread's storage is freed,
//! after the thread has left the list (`lookup_cache`'s teardown does it).

use parking_lot::{Mutex, MutexGuard};

use super::gate::Gate;

/// One listed thread.
pub(crate) struct Listed {
    gate: *const Gate,
    cache: *const (),
    id: u64,
}

impl Listed {
    /// The thread's gate.
    pub(crate) fn gate(&self) -> &Gate {
        // SAFETY: a listed thread's gate stays alive, and listed, while the
        // list's lock is held, which every holder of a `&Listed` does (the
        // only way to one is through [`lock`]'s guard).
        unsafe { &*self.gate }
    }

    /// The address of the thread's lookup cache, as given to [`join`].
    pub(crate) fn cache(&self) -> *const () {
        self.cache
    }

    /// The entry's id, never reused.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

// SAFETY: the pointers are only dereferenced under the list's lock, and a
// thread leaves the list (under that lock) before its cache is released
// and its thread-local storage freed; what another thread does through
// them is governed by the gate.
unsafe impl Send for Listed {}

static THREADS: Mutex<Vec<Listed>> = Mutex::new(Vec::new());

/// Lists the calling thread: its gate and its cache (both thread-locals
/// without destructors, which the caller takes out with [`leave`] before
/// its storage goes). Returns the entry's id.
pub(crate) fn join(gate: &Gate, cache: *const ()) -> u64 {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    THREADS.lock().push(Listed { gate, cache, id });
    id
}

/// Takes the thread whose cache is at `cache` out of the list, waiting out
/// whoever holds the list (a sweep or a grace period in progress).
pub(crate) fn leave(cache: *const ()) {
    THREADS.lock().retain(|listed| listed.cache != cache);
}

/// The list, locked: sweeps and grace periods run under it.
pub(crate) fn lock() -> MutexGuard<'static, Vec<Listed>> {
    THREADS.lock()
}
