//! OTLP exporter for beluga-metrics.
//!
//! Not implemented yet: this crate is a placeholder in the workspace so the
//! layout is fixed. Exporters read a registry through
//! `beluga_metrics::Registry::visit`, the same data the Prometheus encoder reads.
#![deny(missing_docs)]
