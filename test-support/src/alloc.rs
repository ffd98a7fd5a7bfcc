//! A counting global allocator for tests that measure memory: it forwards
//! every call to the system allocator unchanged and counts, process-wide,
//! the heap bytes live and their peak, and, per thread, the bytes and
//! allocation calls that thread made. A test binary installs it once:
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: beluga_test_support::alloc::Counting = beluga_test_support::alloc::Counting;
//!
//! let (v, bytes, calls) = beluga_test_support::alloc::on_this_thread(|| vec![0u8; 100]);
//! assert_eq!((bytes, calls), (100, 1));
//! # drop(v);
//! ```
//!
//! Process-wide figures see every thread, a test harness's included: tests
//! that read them run one at a time ([`serial`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// The counting allocator; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Bytes (net of frees) and allocation calls made by this thread.
    static THREAD: Cell<(i64, u64)> = const { Cell::new((0, 0)) };
}

fn grew(bytes: i64, calls: u64) {
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
    CALLS.fetch_add(calls, Relaxed);
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = THREAD.try_with(|t| {
        let (b, c) = t.get();
        t.set((b + bytes, c + calls));
    });
}

// SAFETY: every method forwards to the system allocator with the same
// arguments; the counting beside it uses atomics and a `const`
// thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as i64, 1);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as i64, 1);
        // SAFETY: forwarded unchanged; the caller upholds its contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grew(-(layout.size() as i64), 0);
        // SAFETY: forwarded unchanged; `ptr` came from this allocator,
        // which is the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as i64 - layout.size() as i64, 1);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Heap bytes live in the whole process now.
pub fn live_bytes() -> i64 {
    LIVE.load(Relaxed)
}

/// The most heap bytes live at once since the last [`reset_peak`].
pub fn peak_bytes() -> i64 {
    PEAK.load(Relaxed)
}

/// Starts a new peak at the bytes live now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// Allocation calls (`alloc`, `alloc_zeroed`, `realloc`) in the whole
/// process so far.
pub fn allocations() -> u64 {
    CALLS.load(Relaxed)
}

/// Runs `f` and returns what it gave, the heap bytes the calling thread
/// gained while it ran (net of frees) and the allocation calls it made.
pub fn on_this_thread<T>(f: impl FnOnce() -> T) -> (T, i64, u64) {
    let (bytes0, calls0) = THREAD.with(Cell::get);
    let out = f();
    let (bytes1, calls1) = THREAD.with(Cell::get);
    (out, bytes1 - bytes0, calls1 - calls0)
}

/// Holds off the other tests of this binary that take it, for tests that
/// read process-wide figures. A test that panicked while holding it does
/// not poison it for the rest.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
