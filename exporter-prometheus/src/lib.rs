//! Prometheus `/metrics` HTTP exporter for beluga-metrics.
//!
//! Not implemented yet: this crate is a placeholder in the workspace so the
//! layout is fixed. Until it lands, encode with
//! `beluga_metrics::Registry::encode` and serve the bytes with the
//! `Content-Type` from `beluga_metrics::Format::content_type`.
#![deny(missing_docs)]
