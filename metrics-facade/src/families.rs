//! The slow path: from a `metrics::Key` to a beluga handle, creating the
//! family on first use of a name.
//!
//! A name's family is created by the first call site that uses it: its
//! label keys, in that call's order, become the family's label names. Later
//! keys may list the same label keys in any order; a key whose label keys
//! differ is refused (see [`Rejection`]).

use std::collections::HashMap;

use beluga_metrics::{
    Buckets, Counter, Family, Gauge, Histogram, Opts, Registry, RegistryError, Unit,
};
use metrics::Key;
use parking_lot::{Mutex, RwLock};

use crate::names::{label_name, metric_name};
use crate::{Matcher, Rejection, REJECTIONS_METRIC};

/// Which of the three `metrics` instruments a call site asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

enum AnyFamily {
    Counter(Family<Counter>),
    Gauge(Family<Gauge>),
    Histogram(Family<Histogram>),
}

/// A handle resolved on the slow path, before it is wrapped for `metrics`.
pub(crate) enum Resolved {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

/// What `describe_*` said about a name.
struct Description {
    help: String,
    unit: Option<metrics::Unit>,
}

/// A family and the name, as written at the call site, that created it.
struct Named {
    written: String,
    family: AnyFamily,
}

/// Every family the recorder created, by exposed (sanitized) name.
pub(crate) struct Families {
    registry: Registry,
    table: RwLock<HashMap<String, Named>>,
    max_families: usize,
    descriptions: Mutex<HashMap<String, Description>>,
    default_buckets: Buckets,
    bucket_rules: Vec<(Matcher, Buckets)>,
    rejections: Family<Counter>,
}

impl Families {
    pub(crate) fn new(
        registry: Registry,
        default_buckets: Buckets,
        bucket_rules: Vec<(Matcher, Buckets)>,
        max_families: usize,
    ) -> Result<Families, RegistryError> {
        let rejections = registry.counter_family(
            Opts::new(
                REJECTIONS_METRIC,
                "metrics-facade calls that recorded nothing, by reason (label_names, conflict, invalid_name, label_value, late_description, name_collision, family_limit).",
            )
            .labels(["reason"]),
        )?;
        Ok(Families {
            registry,
            table: RwLock::new(HashMap::new()),
            max_families,
            descriptions: Mutex::new(HashMap::new()),
            default_buckets,
            bucket_rules,
            rejections,
        })
    }

    pub(crate) fn reject(&self, why: Rejection) {
        // The reason list is fixed, so this lookup never meets the
        // cardinality limit; a failure here has nowhere better to go.
        let _ = self.rejections.with(&[why.as_str()], Counter::inc);
    }

    /// Records what `describe_*` said. Help and unit are fixed when the
    /// family is created; a description arriving after that, saying
    /// something else, is counted as `late_description` and dropped.
    pub(crate) fn describe(&self, name: &str, unit: Option<metrics::Unit>, help: &str) {
        let exposed = metric_name(name).into_owned();
        if let Some(existing) = self.table.read().get(&exposed) {
            let current = match &existing.family {
                AnyFamily::Counter(f) => f.descriptor().help(),
                AnyFamily::Gauge(f) => f.descriptor().help(),
                AnyFamily::Histogram(f) => f.descriptor().help(),
            };
            if current != help {
                self.reject(Rejection::LateDescription);
            }
            return;
        }
        self.descriptions.lock().insert(
            exposed,
            Description {
                help: help.to_owned(),
                unit,
            },
        );
    }

    /// The handle for `key`, creating its family and series as needed.
    pub(crate) fn resolve(&self, kind: Kind, key: &Key) -> Result<Resolved, Rejection> {
        let name = metric_name(key.name());
        if let Some(named) = self.table.read().get(name.as_ref()) {
            return Self::series(named, kind, key);
        }
        let mut table = self.table.write();
        if !table.contains_key(name.as_ref()) {
            if table.len() >= self.max_families {
                return Err(Rejection::FamilyLimit);
            }
            let family = self.create(kind, &name, key)?;
            let named = Named {
                written: key.name().to_owned(),
                family,
            };
            table.insert(name.clone().into_owned(), named);
        }
        Self::series(&table[name.as_ref()], kind, key)
    }

    fn create(&self, kind: Kind, name: &str, key: &Key) -> Result<AnyFamily, Rejection> {
        let description = self.descriptions.lock().remove(name);
        let help = description.as_ref().map_or("", |d| d.help.as_str());
        let mut labels: Vec<String> = Vec::new();
        for label in key.labels() {
            let label = label_name(label.key()).into_owned();
            if labels.contains(&label) {
                return Err(Rejection::LabelNames);
            }
            labels.push(label);
        }
        let unit = description
            .as_ref()
            .and_then(|d| d.unit)
            .map_or(Unit::NONE, |unit| beluga_unit(unit, name, kind));
        let opts = Opts::new(name, help).unit(unit).labels(labels);
        let registered = match kind {
            Kind::Counter => self.registry.counter_family(opts).map(AnyFamily::Counter),
            Kind::Gauge => self.registry.gauge_family(opts).map(AnyFamily::Gauge),
            Kind::Histogram => {
                let buckets = self
                    .bucket_rules
                    .iter()
                    .find(|(matcher, _)| matcher.matches(key.name()))
                    .map_or(&self.default_buckets, |(_, buckets)| buckets);
                self.registry
                    .histogram_family(opts, buckets.clone())
                    .map(AnyFamily::Histogram)
            }
        };
        registered.map_err(|e| match e {
            RegistryError::Conflict { .. } | RegistryError::NameCollision { .. } => {
                Rejection::Conflict
            }
            RegistryError::FamilyLimit { .. } => Rejection::FamilyLimit,
            _ => Rejection::InvalidName,
        })
    }

    fn series(named: &Named, kind: Kind, key: &Key) -> Result<Resolved, Rejection> {
        if named.written != key.name() {
            return Err(Rejection::NameCollision);
        }
        match (&named.family, kind) {
            (AnyFamily::Counter(f), Kind::Counter) => lookup(f, key).map(Resolved::Counter),
            (AnyFamily::Gauge(f), Kind::Gauge) => lookup(f, key).map(Resolved::Gauge),
            (AnyFamily::Histogram(f), Kind::Histogram) => lookup(f, key).map(Resolved::Histogram),
            _ => Err(Rejection::Conflict),
        }
    }
}

/// The key's label values in the family's label order.
fn lookup<M: beluga_metrics::Metric>(family: &Family<M>, key: &Key) -> Result<M, Rejection> {
    let names = family.descriptor().label_names();
    if key.labels().len() != names.len() {
        return Err(Rejection::LabelNames);
    }
    let mut values: Vec<&str> = Vec::with_capacity(names.len());
    for name in names {
        let mut matching = key
            .labels()
            .filter(|l| label_name(l.key()) == name.as_ref());
        match (matching.next(), matching.next()) {
            (Some(label), None) => values.push(label.value()),
            _ => return Err(Rejection::LabelNames),
        }
    }
    family
        .with_labels(&values)
        .map_err(|_| Rejection::LabelValue)
}

/// The beluga unit for a described unit, when the name already carries its
/// Prometheus suffix. Names are never rewritten, so `request_time` described
/// in seconds stays unit-less rather than becoming `request_time_seconds`.
fn beluga_unit(unit: metrics::Unit, name: &str, kind: Kind) -> Unit {
    let base = match kind {
        Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    match unit {
        metrics::Unit::Seconds if base.ends_with("_seconds") => Unit::SECONDS,
        metrics::Unit::Bytes if base.ends_with("_bytes") => Unit::BYTES,
        _ => Unit::NONE,
    }
}

impl std::fmt::Debug for Families {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.table.read();
        let mut names: Vec<(&str, &str)> = table
            .iter()
            .map(|(name, named)| {
                let kind = match named.family {
                    AnyFamily::Counter(_) => Kind::Counter,
                    AnyFamily::Gauge(_) => Kind::Gauge,
                    AnyFamily::Histogram(_) => Kind::Histogram,
                };
                (name.as_str(), kind.as_str())
            })
            .collect();
        names.sort_unstable();
        f.debug_struct("Families")
            .field("families", &names)
            .finish()
    }
}
