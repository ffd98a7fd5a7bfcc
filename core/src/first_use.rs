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

/// How many first uses the calling thread has paid for so far, in any
/// registry: creating a series (a label set's first lookup), taking a
/// thread slot (its first record), allocating its part of a histogram
/// series or a new octave of it. Every other record is steady-state. Read
/// it around a block of recording to tell the two apart, as agent-sim's
/// report does.
///
/// ```
/// use beluga_metrics::{first_uses_on_this_thread, Opts, Registry};
/// let family = Registry::new().counter_family(Opts::new("calls", "Calls.").labels(["model"]))?;
/// family.with(&["gpt-4o"], |c| c.inc())?; // creates the series
/// let before = first_uses_on_this_thread();
/// family.with(&["gpt-4o"], |c| c.inc())?;
/// assert_eq!(first_uses_on_this_thread(), before, "steady state");
/// family.with(&["claude"], |c| c.inc())?;
/// assert!(first_uses_on_this_thread() > before, "a new label set");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn first_uses_on_this_thread() -> u64 {
    FIRST_USES.try_with(Cell::get).unwrap_or(0)
}
