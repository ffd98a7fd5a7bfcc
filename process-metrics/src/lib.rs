//! # beluga-process-metrics
//!
//! The standard `process_*` metrics every Prometheus client library
//! exposes, and an optional tokio runtime collector, for a beluga
//! [`Registry`]. Values are read when the registry is read (each scrape or
//! export, through [`Registry::before_read`]): nothing runs between reads.
//!
//! ```
//! use beluga_metrics::{Format, Registry};
//!
//! let registry = Registry::new();
//! beluga_process_metrics::register(&registry)?;
//! let text = registry.encode(Format::PrometheusText);
//! # #[cfg(target_os = "linux")]
//! assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"));
//! # Ok::<(), beluga_metrics::RegistryError>(())
//! ```
//!
//! | metric | type | source (Linux) |
//! |---|---|---|
//! | `process_cpu_seconds_total` | counter | user + system time, `/proc/self/stat` |
//! | `process_resident_memory_bytes` | gauge | resident pages × page size, `/proc/self/stat` |
//! | `process_virtual_memory_bytes` | gauge | `vsize`, `/proc/self/stat` |
//! | `process_threads` | gauge | `num_threads`, `/proc/self/stat` |
//! | `process_open_fds` | gauge | entries of `/proc/self/fd` |
//! | `process_max_fds` | gauge | soft "Max open files", `/proc/self/limits` |
//! | `process_start_time_seconds` | gauge | boot time (`/proc/stat`) + start ticks, Unix seconds |
//!
//! On other systems [`register`] registers nothing and returns `Ok`: the
//! metrics are absent rather than zero. A file that cannot be read or
//! parsed at read time leaves its metrics at their previous values and
//! counts one `beluga_process_metrics_read_errors_total`.
//!
//! With the `tokio` feature, [`RuntimeCollector`] adds a runtime's worker
//! count, alive tasks and global queue depth (tokio's stable
//! `RuntimeMetrics`).

#![deny(missing_docs)]

use beluga_metrics::{Registry, RegistryError};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(feature = "tokio")]
mod runtime;

#[cfg(feature = "tokio")]
pub use runtime::{RuntimeCollector, RuntimeCollectorError};

/// The self-metric counting `/proc` reads that failed.
pub const READ_ERRORS_METRIC: &str = "beluga_process_metrics_read_errors_total";

/// Registers the `process_*` metrics in `registry`, refreshed before every
/// read. Registering twice (or in two registries) is harmless: each
/// registration refreshes the same values, and CPU time is added as the
/// difference from what the counter already shows.
///
/// Fails only if a family of the same name but another definition is
/// already registered.
///
/// ```
/// let registry = beluga_metrics::Registry::new();
/// beluga_process_metrics::register(&registry)?;
/// beluga_process_metrics::register(&registry)?; // harmless
/// # Ok::<(), beluga_metrics::RegistryError>(())
/// ```
pub fn register(registry: &Registry) -> Result<(), RegistryError> {
    #[cfg(target_os = "linux")]
    {
        linux::register(registry)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = registry;
        Ok(())
    }
}

/// Whether this system has the `process_*` metrics (Linux only).
///
/// ```
/// assert_eq!(beluga_process_metrics::supported(), cfg!(target_os = "linux"));
/// ```
pub fn supported() -> bool {
    cfg!(target_os = "linux")
}
