//! The one place that chooses between `std` atomics and loom's
//! model-checked twins, so every lock-free protocol in the crate can be
//! run under `RUSTFLAGS="--cfg loom"` without touching its code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};
