//! Typed errors. Each `Display` says what went wrong and what to do instead.

use std::fmt;

/// Why a metric could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// The metric name breaks the Prometheus naming rules.
    InvalidMetricName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A label name breaks the Prometheus naming rules or is reserved.
    InvalidLabelName {
        /// The metric being registered.
        metric: String,
        /// The label name as given.
        label: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The metric's unit is not the suffix of its name, which OpenMetrics requires.
    UnitNotInName {
        /// The metric name as given.
        name: String,
        /// The suffix the name must end with, such as `_seconds`.
        expected_suffix: String,
    },
    /// Histogram bucket boundaries are not finite and strictly increasing.
    InvalidBuckets {
        /// The metric being registered.
        metric: String,
        /// What is wrong with them.
        reason: BucketsError,
    },
    /// The name is registered already with a different type, help, unit,
    /// label names or buckets.
    Conflict {
        /// The family name.
        name: String,
        /// Which property differs.
        differs_in: &'static str,
    },
    /// Label names were given to a constructor of an unlabelled metric.
    UnexpectedLabels {
        /// The metric being registered.
        name: String,
    },
    /// The exposition of this metric would contain a name that another
    /// registered metric already produces (for example counter `x` writes
    /// `x_total`, so a gauge `x_total` would clash with it).
    NameCollision {
        /// The metric being registered.
        name: String,
        /// The exposition name both would produce.
        clashing_name: String,
        /// The already-registered family that produces it.
        existing: String,
    },
    /// The registry holds as many families as
    /// [`Registry::set_family_limit`](crate::Registry::set_family_limit)
    /// allows; counted in `beluga_refused_families_total`.
    FamilyLimit {
        /// The metric being registered.
        name: String,
        /// The limit in force.
        limit: usize,
    },
}

/// Why histogram bucket boundaries are unusable ([`Buckets::check`](crate::Buckets::check)).
///
/// ```
/// use beluga_metrics::{Buckets, BucketsError};
/// assert_eq!(Buckets::new([1.0, 0.1]).check(), Err(BucketsError::NotIncreasing));
/// assert_eq!(BucketsError::NotIncreasing.to_string(), "boundaries are not strictly increasing");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BucketsError {
    /// More than 255 boundaries.
    TooMany,
    /// A boundary is NaN or infinite (the `+Inf` bucket is added for you).
    NotFinite,
    /// The boundaries are not in strictly increasing order.
    NotIncreasing,
    /// A boundary is larger in magnitude than 1e300.
    TooLarge,
    /// The largest boundary is positive but smaller than 1e-290.
    TopTooSmall,
}

impl fmt::Display for BucketsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BucketsError::TooMany => "more than 255 boundaries",
            BucketsError::NotFinite => "a boundary is NaN or infinite",
            BucketsError::NotIncreasing => "boundaries are not strictly increasing",
            BucketsError::TooLarge => "a boundary is larger in magnitude than 1e300",
            BucketsError::TopTooSmall => "the largest boundary is positive but smaller than 1e-290",
        })
    }
}

impl std::error::Error for BucketsError {}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::InvalidMetricName { name, reason } => write!(
                f,
                "invalid metric name {name:?}: {reason}; use letters, digits and underscores, \
                 not starting with a digit, e.g. \"agent_llm_calls_total\""
            ),
            RegistryError::InvalidLabelName {
                metric,
                label,
                reason,
            } => write!(
                f,
                "invalid label name {label:?} on metric {metric:?}: {reason}; use letters, \
                 digits and underscores, not starting with a digit or \"__\""
            ),
            RegistryError::UnitNotInName {
                name,
                expected_suffix,
            } => write!(
                f,
                "metric {name:?} has a unit but its name does not end with {expected_suffix:?}; \
                 OpenMetrics requires the unit as the name's suffix, so rename it"
            ),
            RegistryError::InvalidBuckets { metric, reason } => write!(
                f,
                "invalid histogram buckets for {metric:?}: {reason}; give finite boundaries \
                 in strictly increasing order (the +Inf bucket is added for you)"
            ),
            RegistryError::Conflict { name, differs_in } => write!(
                f,
                "metric {name:?} is already registered with a different {differs_in}; register \
                 it once with one definition, or pick another name"
            ),
            RegistryError::UnexpectedLabels { name } => write!(
                f,
                "metric {name:?} was given label names but registered as unlabelled; use the \
                 `_family` constructor (e.g. `counter_family`) for labelled metrics"
            ),
            RegistryError::NameCollision {
                name,
                clashing_name,
                existing,
            } => write!(
                f,
                "metric {name:?} would expose the name {clashing_name:?}, which metric \
                 {existing:?} already exposes; pick a name that does not collide"
            ),
            RegistryError::FamilyLimit { name, limit } => write!(
                f,
                "metric {name:?} not registered: the registry holds its limit of {limit} \
                 families; build names from a fixed set and put what varies in label values"
            ),
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegistryError::InvalidBuckets { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Why a set of label values could not be resolved to a series.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelError {
    /// The number of values differs from the family's label names.
    CountMismatch {
        /// The family name.
        metric: String,
        /// How many label names the family has.
        expected: usize,
        /// How many values were given.
        got: usize,
    },
    /// A `(name, value)` pair names a label the family does not have.
    UnknownLabel {
        /// The family name.
        metric: String,
        /// The label name given.
        label: String,
    },
    /// A `(name, value)` list lacks one of the family's labels.
    MissingLabel {
        /// The family name.
        metric: String,
        /// The label that has no value.
        label: String,
    },
    /// A `(name, value)` list gives the same label twice.
    DuplicateLabel {
        /// The family name.
        metric: String,
        /// The label given twice.
        label: String,
    },
    /// A label value is longer than [`MAX_LABEL_VALUE_BYTES`](crate::MAX_LABEL_VALUE_BYTES).
    /// Nothing is recorded; the refusal is counted in
    /// `beluga_invalid_values_total{metric="..."}`.
    ValueTooLong {
        /// The family name.
        metric: String,
        /// The label whose value is too long.
        label: String,
        /// The value's length in bytes.
        bytes: usize,
    },
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::CountMismatch {
                metric,
                expected,
                got,
            } => write!(
                f,
                "metric {metric:?} has {expected} label name(s) but {got} value(s) were given; \
                 pass one value per label name, in registration order"
            ),
            LabelError::UnknownLabel { metric, label } => write!(
                f,
                "metric {metric:?} has no label {label:?}; use only the label names it was \
                 registered with"
            ),
            LabelError::MissingLabel { metric, label } => write!(
                f,
                "no value given for label {label:?} of metric {metric:?}; every registered \
                 label needs a value (use \"\" for none)"
            ),
            LabelError::DuplicateLabel { metric, label } => write!(
                f,
                "label {label:?} of metric {metric:?} was given twice; give each label once"
            ),
            LabelError::ValueTooLong {
                metric,
                label,
                bytes,
            } => write!(
                f,
                "the value of label {label:?} of metric {metric:?} is {bytes} bytes, more than the \
                 {} allowed; label values name things (a model, a tenant), they do not carry data",
                crate::name::MAX_LABEL_VALUE_BYTES
            ),
        }
    }
}

impl std::error::Error for LabelError {}

/// Why a value was refused by a `try_` recording method.
///
/// The plain recording methods (`record`, `add`) never fail: they drop such a
/// value and count it in the `beluga_invalid_values_total` self-metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is NaN, which has no place in a sum or a bucket.
    NaN,
    /// A counter was asked to go down (or by an infinite amount).
    NotMonotonic,
    /// The value is `+Inf` or `-Inf`, which a histogram does not record
    /// (its sum would stay infinite, or become NaN, for good).
    Infinite,
    /// Adding the amount would take a floating-point counter past
    /// `f64::MAX` (to `+Inf`); the counter keeps its value.
    Overflow,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::NaN => {
                f.write_str("value is NaN; check the computation that produced it before recording")
            }
            ValueError::NotMonotonic => f.write_str(
                "counters only go up by finite amounts; use a gauge for values that go down",
            ),
            ValueError::Infinite => f.write_str(
                "value is infinite; histograms record finite observations only",
            ),
            ValueError::Overflow => f.write_str(
                "the counter would pass f64::MAX; it keeps its value and the amount is counted as invalid",
            ),
        }
    }
}

impl std::error::Error for ValueError {}
