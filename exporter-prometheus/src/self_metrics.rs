//! The exporter's own metrics, registered in the registry it serves.

use beluga_metrics::{
    Buckets, Counter, Family, Gauge, Histogram, Opts, Registry, RegistryError, Unit,
};

/// The exporter's self-metric counting scrapes served, by `format`
/// (exposed as `beluga_exporter_scrapes_total`).
pub const SCRAPES_METRIC: &str = "beluga_exporter_scrapes";
/// The exporter's self-metric timing one scrape's encode (and compression).
pub const SCRAPE_DURATION_METRIC: &str = "beluga_exporter_scrape_duration_seconds";
/// The exporter's self-metric counting exposition bytes encoded
/// (exposed as `beluga_exporter_encoded_bytes_total`).
pub const ENCODED_BYTES_METRIC: &str = "beluga_exporter_encoded_bytes";
/// The exporter's self-metric counting requests not answered with metrics,
/// by `reason` (exposed as `beluga_exporter_errors_total`).
pub const ERRORS_METRIC: &str = "beluga_exporter_errors";
/// The exporter's self-metric holding the bytes of scrape responses handed
/// to connections and not yet written to them.
pub const UNSENT_BYTES_METRIC: &str = "beluga_exporter_unsent_bytes";

#[derive(Clone)]
pub(crate) struct SelfMetrics {
    pub(crate) scrapes: Family<Counter>,
    pub(crate) duration: Histogram,
    pub(crate) encoded_bytes: Counter,
    pub(crate) errors: Family<Counter>,
    pub(crate) unsent_bytes: Gauge,
}

impl SelfMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, RegistryError> {
        Ok(SelfMetrics {
            scrapes: registry.counter_family(
                Opts::new(SCRAPES_METRIC, "Scrapes served, by exposition format.")
                    .labels(["format"]),
            )?,
            duration: registry.histogram(
                Opts::new(
                    SCRAPE_DURATION_METRIC,
                    "Time to encode (and compress) one scrape.",
                )
                .unit(Unit::SECONDS),
                Buckets::new([
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0,
                ]),
            )?,
            encoded_bytes: registry.counter(
                Opts::new(
                    ENCODED_BYTES_METRIC,
                    "Exposition bytes encoded, before compression.",
                )
                .unit(Unit::BYTES),
            )?,
            errors: registry.counter_family(
                Opts::new(
                    ERRORS_METRIC,
                    "Requests not answered with metrics, by reason.",
                )
                .labels(["reason"]),
            )?,
            unsent_bytes: registry.gauge(
                Opts::new(
                    UNSENT_BYTES_METRIC,
                    "Bytes of scrape responses handed to connections and not yet written to them.",
                )
                .unit(Unit::BYTES),
            )?,
        })
    }

    pub(crate) fn error(&self, reason: &'static str) {
        let _ = self.errors.with(&[reason], Counter::inc);
    }
}
