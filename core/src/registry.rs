//! The registry: where metrics are defined, checked and found for export.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::desc::{Descriptor, MetricType, Opts, Unit};
use crate::erased_family::ErasedFamily;
use crate::error::RegistryError;
use crate::family::{Family, DEFAULT_CARDINALITY_LIMIT};
use crate::handles::{Counter, FloatCounter, Gauge, Histogram, Metric};
use crate::histogram::{BucketMap, Buckets};
use crate::name::{check_label_name, check_metric_name};

/// Family name of the self-metric counting label sets sent to overflow.
pub const OVERFLOW_METRIC: &str = "beluga_cardinality_overflow";
/// Family name of the self-metric counting dropped values (NaN, negative increments).
pub const INVALID_VALUES_METRIC: &str = "beluga_invalid_values";
/// Family name of the process-wide self-metric counting integer-counter adds
/// that saturated at `u64::MAX` (exposed only once one has).
pub const SATURATIONS_METRIC: &str = "beluga_saturated_increments";
/// Family name of the self-metric counting registrations refused by the
/// family limit (exposed only once one was).
pub const REFUSED_FAMILIES_METRIC: &str = "beluga_refused_families";

/// A set of metric families, exported together.
///
/// Cloning a `Registry` is cheap and gives another handle to the same set.
/// Use [`Registry::global`] for one process-wide registry, or create your
/// own (tests, libraries, several endpoints).
///
/// Registering the same name again with the same definition returns the
/// same metric; any other reuse of a name, or a name that would collide in
/// the exposition, is a [`RegistryError`].
///
/// ```
/// use beluga_metrics::{Format, Opts, Registry, RegistryError};
/// let registry = Registry::new();
/// let a = registry.counter(Opts::new("jobs_total", "Jobs run."))?;
/// let b = registry.counter(Opts::new("jobs_total", "Jobs run."))?;
/// a.inc();
/// assert_eq!(b.get(), 1); // the same metric
///
/// let reuse = registry.gauge(Opts::new("jobs", "A gauge."));
/// assert!(matches!(reuse, Err(RegistryError::Conflict { differs_in: "type", .. })));
///
/// // A histogram `wait` writes `wait_count`, so no counter may be called that.
/// registry.histogram(Opts::new("wait", "Waits."), beluga_metrics::Buckets::default())?;
/// let clash = registry.counter(Opts::new("wait_count", "A counter."));
/// assert!(matches!(clash, Err(RegistryError::NameCollision { .. })));
///
/// assert!(registry.encode(Format::PrometheusText).contains("jobs_total 1\n"));
/// # Ok::<(), RegistryError>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

/// A refresh run right before every read of the registry.
type BeforeRead = Arc<dyn Fn() + Send + Sync>;

struct RegistryInner {
    default_limit: usize,
    state: RwLock<RegistryState>,
    before_read: RwLock<Vec<BeforeRead>>,
    self_metrics: [Descriptor; 2],
    saturations: Descriptor,
    /// The most families the registry holds (`usize::MAX`: no limit).
    family_limit: AtomicUsize,
    refused_families: AtomicU64,
    refused_families_metric: Descriptor,
}

#[derive(Default)]
struct RegistryState {
    families: BTreeMap<Arc<str>, Arc<dyn ErasedFamily>>,
    /// Every name some family writes into an exposition -> that family.
    exposed: HashMap<String, Arc<str>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.read();
        f.debug_struct("Registry")
            .field("families", &state.families.keys().collect::<Vec<_>>())
            .field("default_cardinality_limit", &self.inner.default_limit)
            .finish()
    }
}

fn self_metric(name: &str, help: &str) -> Descriptor {
    Descriptor {
        name: name.into(),
        help: help.into(),
        unit: Unit::NONE,
        metric_type: MetricType::Counter,
        label_names: Arc::from([Box::from("metric")]),
    }
}

impl Registry {
    /// An empty registry with the default cardinality limit (2000 label
    /// sets per family).
    pub fn new() -> Registry {
        Registry::with_cardinality_limit(DEFAULT_CARDINALITY_LIMIT)
    }

    /// An empty registry whose families keep at most `limit` label sets
    /// each, unless their [`Opts::cardinality_limit`] says otherwise.
    ///
    /// ```
    /// use beluga_metrics::{Opts, Registry};
    /// let registry = Registry::with_cardinality_limit(2);
    /// let users = registry.counter_family(Opts::new("logins_total", "Logins.").labels(["user"]))?;
    /// for user in ["ann", "bob", "cid", "dan"] {
    ///     users.with_labels(&[user])?.inc();
    /// }
    /// assert_eq!(users.len(), 2);
    /// assert_eq!(users.refused_label_sets(), 2);
    /// let text = registry.encode(beluga_metrics::Format::PrometheusText);
    /// assert!(text.contains("logins_total{otel_metric_overflow=\"true\"} 2\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_cardinality_limit(limit: usize) -> Registry {
        let mut state = RegistryState::default();
        let self_metrics = [
            self_metric(
                OVERFLOW_METRIC,
                "Lookups of new label sets sent to the overflow series because the family reached its cardinality limit.",
            ),
            self_metric(
                INVALID_VALUES_METRIC,
                "Recorded values dropped: NaN or infinite observations, negative, infinite or overflowing increments, label values over the length limit.",
            ),
        ];
        let saturations = Descriptor {
            label_names: Arc::from([]),
            ..self_metric(
                SATURATIONS_METRIC,
                "Integer-counter adds in this process that saturated at 2^64-1 instead of wrapping.",
            )
        };
        let refused_families_metric = Descriptor {
            label_names: Arc::from([]),
            ..self_metric(
                REFUSED_FAMILIES_METRIC,
                "Metric registrations refused because the registry held its family limit.",
            )
        };
        for desc in self_metrics
            .iter()
            .chain([&saturations, &refused_families_metric])
        {
            for exposed in desc.exposed_names() {
                state.exposed.insert(exposed, desc.name.clone());
            }
        }
        Registry {
            inner: Arc::new(RegistryInner {
                default_limit: limit,
                state: RwLock::new(state),
                before_read: RwLock::new(Vec::new()),
                self_metrics,
                saturations,
                family_limit: AtomicUsize::new(usize::MAX),
                refused_families: AtomicU64::new(0),
                refused_families_metric,
            }),
        }
    }

    /// Caps how many families the registry holds (default: no cap). A
    /// registration of a new name past it fails with
    /// [`RegistryError::FamilyLimit`] and is counted in
    /// `beluga_refused_families_total` ([`Registry::refused_families`]);
    /// names already registered keep working. For registries fed names
    /// from outside (a facade, a plugin, a config file).
    ///
    /// ```
    /// use beluga_metrics::{Format, Opts, Registry, RegistryError};
    /// let registry = Registry::new();
    /// registry.set_family_limit(1);
    /// registry.counter(Opts::new("a_total", "A."))?;
    /// let refused = registry.counter(Opts::new("b_total", "B."));
    /// assert!(matches!(refused, Err(RegistryError::FamilyLimit { limit: 1, .. })));
    /// registry.counter(Opts::new("a_total", "A."))?.inc(); // still found
    /// assert_eq!(registry.refused_families(), 1);
    /// assert!(registry.encode(Format::PrometheusText).contains("beluga_refused_families_total 1\n"));
    /// # Ok::<(), RegistryError>(())
    /// ```
    pub fn set_family_limit(&self, limit: usize) {
        self.inner.family_limit.store(limit, Ordering::Relaxed);
    }

    /// Registrations refused by [`Registry::set_family_limit`] so far.
    ///
    /// ```
    /// assert_eq!(beluga_metrics::Registry::new().refused_families(), 0);
    /// ```
    pub fn refused_families(&self) -> u64 {
        self.inner.refused_families.load(Ordering::Relaxed)
    }

    /// The process-wide registry, created on first use.
    ///
    /// ```
    /// use beluga_metrics::{Opts, Registry};
    /// let starts = Registry::global().counter(Opts::new("doc_global_starts_total", "Starts."))?;
    /// starts.inc();
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// Registers (or finds) an unlabelled `u64` counter.
    pub fn counter(&self, opts: Opts) -> Result<Counter, RegistryError> {
        self.unlabelled::<Counter>(opts, None)
    }

    /// Registers (or finds) a labelled family of `u64` counters.
    pub fn counter_family(&self, opts: Opts) -> Result<Family<Counter>, RegistryError> {
        self.register(opts, None)
    }

    /// Registers (or finds) an unlabelled `f64` counter.
    pub fn float_counter(&self, opts: Opts) -> Result<FloatCounter, RegistryError> {
        self.unlabelled::<FloatCounter>(opts, None)
    }

    /// Registers (or finds) a labelled family of `f64` counters.
    pub fn float_counter_family(&self, opts: Opts) -> Result<Family<FloatCounter>, RegistryError> {
        self.register(opts, None)
    }

    /// Registers (or finds) an unlabelled gauge.
    pub fn gauge(&self, opts: Opts) -> Result<Gauge, RegistryError> {
        self.unlabelled::<Gauge>(opts, None)
    }

    /// Registers (or finds) a labelled family of gauges.
    pub fn gauge_family(&self, opts: Opts) -> Result<Family<Gauge>, RegistryError> {
        self.register(opts, None)
    }

    /// Registers (or finds) an unlabelled histogram with these buckets.
    pub fn histogram(&self, opts: Opts, buckets: Buckets) -> Result<Histogram, RegistryError> {
        self.unlabelled::<Histogram>(opts, Some(buckets))
    }

    /// Registers (or finds) a labelled family of histograms with these buckets.
    ///
    /// ```
    /// use beluga_metrics::{Buckets, Opts, Registry, Unit};
    /// let registry = Registry::new();
    /// let duration = registry.histogram_family(
    ///     Opts::new("gen_ai_client_operation_duration_seconds", "LLM call duration.")
    ///         .unit(Unit::SECONDS)
    ///         .labels(["gen_ai_request_model"]),
    ///     Buckets::gen_ai_operation_duration(),
    /// )?;
    /// duration.with_labels(&["gpt-4o"])?.record(0.8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn histogram_family(
        &self,
        opts: Opts,
        buckets: Buckets,
    ) -> Result<Family<Histogram>, RegistryError> {
        self.register(opts, Some(buckets))
    }

    fn unlabelled<M: Metric>(
        &self,
        opts: Opts,
        buckets: Option<Buckets>,
    ) -> Result<M, RegistryError> {
        if !opts.label_names.is_empty() {
            return Err(RegistryError::UnexpectedLabels { name: opts.name });
        }
        let family = self.register::<M>(opts, buckets)?;
        let no_labels: [&str; 0] = [];
        Ok(family
            .with_labels(&no_labels)
            .expect("an unlabelled family takes zero label values"))
    }

    fn register<M: Metric>(
        &self,
        opts: Opts,
        buckets: Option<Buckets>,
    ) -> Result<Family<M>, RegistryError> {
        let descriptor = Self::describe::<M>(&opts)?;
        if let Some(buckets) = &buckets {
            buckets
                .check()
                .map_err(|reason| RegistryError::InvalidBuckets {
                    metric: opts.name.clone(),
                    reason,
                })?;
        }
        let bounds = buckets.map(|b| b.shared());
        let bounds_slice = bounds.as_deref();
        let mut state = self.inner.state.write();
        if let Some(existing) = state.families.get(&descriptor.name) {
            let differs_in = if existing.descriptor().metric_type != descriptor.metric_type {
                Some("type")
            } else if existing.descriptor().help != descriptor.help {
                Some("help text")
            } else if existing.descriptor().unit != descriptor.unit {
                Some("unit")
            } else if existing.descriptor().label_names != descriptor.label_names {
                Some("label names")
            } else if existing.bounds() != bounds_slice {
                Some("bucket boundaries")
            } else if existing.idle_expiry() != opts.idle_expiry {
                Some("idle expiry")
            } else {
                None
            };
            if let Some(differs_in) = differs_in {
                return Err(RegistryError::Conflict {
                    name: opts.name,
                    differs_in,
                });
            }
            return match existing.clone().into_any().downcast() {
                Ok(inner) => Ok(Family { inner }),
                Err(_) => Err(RegistryError::Conflict {
                    name: opts.name,
                    differs_in: "value type (integer vs floating-point counter)",
                }),
            };
        }
        let exposed = descriptor.exposed_names();
        if let Some((clashing, owner)) = exposed
            .iter()
            .find_map(|n| state.exposed.get(n).map(|owner| (n, owner)))
        {
            return Err(RegistryError::NameCollision {
                name: opts.name,
                clashing_name: clashing.clone(),
                existing: owner.to_string(),
            });
        }
        let family_limit = self.inner.family_limit.load(Ordering::Relaxed);
        if state.families.len() >= family_limit {
            self.inner.refused_families.fetch_add(1, Ordering::Relaxed);
            return Err(RegistryError::FamilyLimit {
                name: opts.name,
                limit: family_limit,
            });
        }
        let limit = opts.cardinality_limit.unwrap_or(self.inner.default_limit);
        let map = bounds.clone().map(|b| Arc::new(BucketMap::new(b)));
        let family = Family::<M>::new(descriptor, map, limit, opts.idle_expiry);
        let name = family.inner.descriptor.name.clone();
        for exposed in exposed {
            state.exposed.insert(exposed, name.clone());
        }
        state
            .families
            .insert(name, family.inner.clone() as Arc<dyn ErasedFamily>);
        Ok(family)
    }

    /// Checks the options and turns them into a descriptor.
    fn describe<M: Metric>(opts: &Opts) -> Result<Descriptor, RegistryError> {
        let invalid_name = |reason| RegistryError::InvalidMetricName {
            name: opts.name.clone(),
            reason,
        };
        check_metric_name(&opts.name).map_err(invalid_name)?;
        let base = match M::TYPE {
            MetricType::Counter => opts.name.strip_suffix("_total").unwrap_or(&opts.name),
            _ if opts.name.ends_with("_total") => return Err(invalid_name(
                "the \"_total\" suffix is reserved for counters; drop it for gauges and histograms",
            )),
            _ => &opts.name,
        };
        check_metric_name(base).map_err(invalid_name)?;
        if base.trim_start_matches('_').is_empty() {
            // `_` would be exposed as `__total`, `__bucket`...: reserved names.
            return Err(invalid_name("it has no character other than \"_\""));
        }
        if let Some(unit) = opts.unit.prometheus_suffix() {
            let suffix = format!("_{unit}");
            if !base.ends_with(&suffix) {
                return Err(RegistryError::UnitNotInName {
                    name: opts.name.clone(),
                    expected_suffix: suffix,
                });
            }
        }
        for (i, label) in opts.label_names.iter().enumerate() {
            let invalid_label = |reason| RegistryError::InvalidLabelName {
                metric: opts.name.clone(),
                label: label.clone(),
                reason,
            };
            check_label_name(label, M::TYPE == MetricType::Histogram).map_err(invalid_label)?;
            if opts.label_names[..i].contains(label) {
                return Err(invalid_label("it appears twice"));
            }
        }
        Ok(Descriptor {
            name: base.into(),
            help: opts.help.as_str().into(),
            unit: opts.unit,
            metric_type: M::TYPE,
            label_names: opts
                .label_names
                .iter()
                .map(|l| Box::from(l.as_str()))
                .collect(),
        })
    }

    /// Every family, in name order, as a snapshot: registration never
    /// waits on a walk that holds it.
    /// Runs `refresh` right before every read of this registry (each
    /// [`encode`](Registry::encode), [`Encoder::encode`](crate::Encoder::encode)
    /// and [`visit`](Registry::visit), so every scrape and every export), for
    /// metrics whose values live outside the process's recording paths:
    /// `/proc` figures, a runtime's task counts, a connection pool's size.
    /// They cost nothing between reads.
    ///
    /// `refresh` runs on the reading thread, before any family is read, and
    /// should set gauges or add to counters and return; it must not read
    /// this registry (a read started from inside a refresh skips the
    /// refreshes). Refreshes run in the order they were added; one that
    /// panics is skipped for that read and the read goes on.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use beluga_metrics::{Format, Opts, Registry};
    ///
    /// let registry = Registry::new();
    /// let pool_size = registry.gauge(Opts::new("db_pool_connections", "Open connections."))?;
    /// let pool = Arc::new(AtomicUsize::new(0)); // owned by some other library
    /// let seen = pool.clone();
    /// registry.before_read(move || pool_size.set(seen.load(Ordering::Relaxed) as f64));
    ///
    /// pool.store(7, Ordering::Relaxed);
    /// assert!(registry.encode(Format::PrometheusText).contains("db_pool_connections 7.0\n"));
    /// # Ok::<(), beluga_metrics::RegistryError>(())
    /// ```
    pub fn before_read(&self, refresh: impl Fn() + Send + Sync + 'static) {
        self.inner.before_read.write().push(Arc::new(refresh));
    }

    /// Runs the [`before_read`](Registry::before_read) refreshes, unless this
    /// thread is already inside one.
    pub(crate) fn refresh_before_read(&self) {
        thread_local! {
            static REFRESHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        // Cloned out so a refresh may register metrics (taking the state
        // lock) or add another refresh without deadlocking.
        let refreshes: Vec<BeforeRead> = self.inner.before_read.read().clone();
        if refreshes.is_empty() || REFRESHING.with(|r| r.replace(true)) {
            return;
        }
        for refresh in refreshes {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| refresh()));
        }
        REFRESHING.with(|r| r.set(false));
    }

    pub(crate) fn families(&self) -> Vec<Arc<dyn ErasedFamily>> {
        self.inner.state.read().families.values().cloned().collect()
    }

    /// The descriptors of the overflow and invalid-value self-metrics.
    pub(crate) fn self_metrics(&self) -> &[Descriptor; 2] {
        &self.inner.self_metrics
    }

    /// The descriptor of the counter-saturation self-metric.
    pub(crate) fn saturations_metric(&self) -> &Descriptor {
        &self.inner.saturations
    }

    /// The descriptor of the refused-families self-metric.
    pub(crate) fn refused_families_metric(&self) -> &Descriptor {
        &self.inner.refused_families_metric
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn same_definition_returns_the_same_metric() {
        let r = Registry::new();
        let a = r
            .histogram(
                Opts::new("h_seconds", "H.").unit(Unit::SECONDS),
                Buckets::default(),
            )
            .unwrap();
        let b = r
            .histogram(
                Opts::new("h_seconds", "H.").unit(Unit::SECONDS),
                Buckets::default(),
            )
            .unwrap();
        a.record(1.0);
        assert_eq!(b.get().count(), 1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn refreshes_run_before_every_read_survive_panics_and_never_recurse() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let r = Registry::new();
        let runs = Arc::new(AtomicU64::new(0));
        let gauge = r.gauge(Opts::new("refreshed", "R.")).unwrap();
        r.before_read(|| panic!("a broken refresh"));
        let (inner, counted) = (r.clone(), runs.clone());
        r.before_read(move || {
            let n = counted.fetch_add(1, Ordering::Relaxed) + 1;
            gauge.set(n as f64);
            // A read from inside a refresh skips the refreshes.
            assert!(inner
                .encode(crate::Format::PrometheusText)
                .contains("refreshed "));
        });
        assert!(r
            .encode(crate::Format::PrometheusText)
            .contains("refreshed 1.0\n"));
        assert!(r
            .encode(crate::Format::OpenMetrics)
            .contains("refreshed 2.0\n"));
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }
}
