//! Counting first uses per thread: the one-time costs a thread pays the
//! first time it records somewhere (creating a series, taking a thread
//! slot, allocating its part of a histogram or a page of it, joining the
//! lookup caches' list), so that a caller timing its recording can tell
//! them from steady-state cost.

use std::cell::Cell;

thread_local! {
    static FIRST_USES: Cell<u64> = const { Cell::new(0) };
}

/// Called on every first-use path (all of them cold).
#[cold]
pub(crate) fn note() {
    let _ = FIRST_USES.try_with(|n| n.set(n.get() + 1));
}

/// See [`diagnostics::first_uses_on_this_thread`](crate::diagnostics::first_uses_on_this_thread).
pub(crate) fn first_uses_on_this_thread() -> u64 {
    FIRST_USES.try_with(Cell::get).unwrap_or(0)
}
