//! Numbers about the engine itself, for benchmarks, tests and tools that
//! study it: what a series costs in memory, and whether a block of
//! recording paid a one-time cost.
//!
//! **Outside the stability promise.** Recording, reading and exporting
//! metrics never needs these; they describe how this version of the engine
//! is built and may change, or go, in any release.

use crate::handles::Histogram;

/// How many first uses the calling thread has paid for so far, in any
/// registry: creating a series (a label set's first lookup), taking a
/// thread slot (its first record), allocating its part of a histogram
/// series or a new octave of it. Every other record is steady-state. Read
/// it around a block of recording to tell the two apart, as agent-sim's
/// report does.
///
/// ```
/// use beluga_metrics::{diagnostics::first_uses_on_this_thread, Opts, Registry};
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
    crate::first_use::first_uses_on_this_thread()
}

/// Heap bytes one counter series costs on the running target, label values and
/// exposition text not included: one 8-byte cell per shard plus the shared
/// cell (in a striped arena chunk, see `docs/architecture.md`) and the
/// series header.
///
/// ```
/// let bytes = beluga_metrics::diagnostics::counter_series_bytes();
/// assert!(bytes >= 8 * 5 && bytes < 256);
/// ```
pub fn counter_series_bytes() -> usize {
    crate::handles::counter_series_bytes()
}

/// Heap bytes each recording thread holds for histogram series `h`, on
/// average over the threads that recorded into it: a fixed part (exact
/// bucket counts, sum, minimum, maximum; about 300 bytes with 14
/// boundaries) plus 128 bytes for each octave of values the thread recorded
/// into. Latencies spread over 1 ms - 1 s touch 11 octaves, about 1.7 KiB;
/// the worst case, values over the whole trackable range, is 21 octaves,
/// about 3 KiB. Before anything is recorded, the fixed part.
///
/// ```
/// use beluga_metrics::{diagnostics::histogram_bytes_per_recording_thread, Buckets, Opts, Registry};
/// let h = Registry::new().histogram(Opts::new("h", "h"), Buckets::gen_ai_operation_duration())?;
/// h.record(0.2);
/// assert!(histogram_bytes_per_recording_thread(&h) <= 512);
/// for ms in 1..=1000 {
///     h.record(ms as f64 / 1000.0);
/// }
/// assert!(histogram_bytes_per_recording_thread(&h) <= 2048);
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
pub fn histogram_bytes_per_recording_thread(h: &Histogram) -> usize {
    h.bytes_per_recording_thread()
}
