//! A tokio runtime's stable metrics, refreshed before every read.

use beluga_metrics::{Family, Gauge, LabelError, Opts, Registry, RegistryError};

/// Why [`RuntimeCollector::register`] failed.
///
/// ```
/// use beluga_process_metrics::{RuntimeCollector, RuntimeCollectorError};
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let too_long = "r".repeat(100_000);
/// let e = RuntimeCollector::register(&Default::default(), &too_long, runtime.handle());
/// assert!(matches!(e, Err(RuntimeCollectorError::Label(_))));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeCollectorError {
    /// A family of the same name but another definition is registered.
    Registry(RegistryError),
    /// The runtime's name is not a usable label value (too long).
    Label(LabelError),
}

impl std::fmt::Display for RuntimeCollectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeCollectorError::Registry(e) => {
                write!(f, "cannot register the tokio runtime metrics: {e}")
            }
            RuntimeCollectorError::Label(e) => {
                write!(f, "cannot label the tokio runtime metrics: {e}")
            }
        }
    }
}

impl std::error::Error for RuntimeCollectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeCollectorError::Registry(e) => Some(e),
            RuntimeCollectorError::Label(e) => Some(e),
        }
    }
}

/// Exposes a tokio runtime's stable `RuntimeMetrics` as gauges labelled
/// with a name for the runtime, so several runtimes can share a registry:
///
/// | metric | meaning |
/// |---|---|
/// | `tokio_runtime_workers{runtime}` | worker threads |
/// | `tokio_runtime_alive_tasks{runtime}` | tasks spawned and not yet finished |
/// | `tokio_runtime_global_queue_depth{runtime}` | tasks waiting in the global (injection) queue |
///
/// ```
/// use beluga_metrics::{Format, Registry};
/// use beluga_process_metrics::RuntimeCollector;
///
/// let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
/// let registry = Registry::new();
/// RuntimeCollector::register(&registry, "main", runtime.handle())?;
/// let text = registry.encode(Format::PrometheusText);
/// assert!(text.contains("tokio_runtime_workers{runtime=\"main\"} 2.0\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RuntimeCollector {
    _private: (),
}

impl RuntimeCollector {
    /// Registers the gauges for the runtime behind `handle` under the label
    /// `runtime="<name>"`. The collector holds a clone of the handle, which
    /// reads the runtime's counters (after the runtime shuts down they keep
    /// their last values).
    pub fn register(
        registry: &Registry,
        name: &str,
        handle: &tokio::runtime::Handle,
    ) -> Result<(), RuntimeCollectorError> {
        let family = |metric: &str, help: &str| -> Result<Family<Gauge>, RuntimeCollectorError> {
            registry
                .gauge_family(Opts::new(metric, help).labels(["runtime"]))
                .map_err(RuntimeCollectorError::Registry)
        };
        let label = |f: Family<Gauge>| f.with_labels(&[name]).map_err(RuntimeCollectorError::Label);
        let workers = label(family(
            "tokio_runtime_workers",
            "Worker threads of the tokio runtime.",
        )?)?;
        let alive = label(family(
            "tokio_runtime_alive_tasks",
            "Tasks spawned on the tokio runtime and not yet finished.",
        )?)?;
        let queued = label(family(
            "tokio_runtime_global_queue_depth",
            "Tasks waiting in the tokio runtime's global queue.",
        )?)?;
        let handle = handle.clone();
        let refresh = move || {
            let metrics = handle.metrics();
            workers.set(metrics.num_workers() as f64);
            alive.set(metrics.num_alive_tasks() as f64);
            queued.set(metrics.global_queue_depth() as f64);
        };
        refresh();
        registry.before_read(refresh);
        Ok(())
    }
}
