//! The one place that chooses between `std` atomics and loom's
//! model-checked twins, so every lock-free protocol in the crate can be
//! run under `RUSTFLAGS="--cfg beluga_loom"` without touching its code.

#[cfg(beluga_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};
#[cfg(not(beluga_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};

/// Under loom, a point where the model may switch threads; nothing
/// otherwise. Loom does not always explore a switch between one thread's
/// load and store of a location (a single-writer increment) and another
/// thread's load of it: without these points a reader in a model can end
/// up running before every writer in every execution (seen: 414 executions
/// of the shard model, all reading 0). Placed between the steps of the
/// protocols the models check.
#[inline(always)]
pub(crate) fn model_switch_point() {
    #[cfg(beluga_loom)]
    loom::thread::yield_now();
}
