//! A stand-in for a dependency (an HTTP client, a vector store driver...)
//! that instruments itself with the `metrics` macros and knows nothing of
//! beluga. `beluga-metrics-facade`'s tests prove its metrics reach
//! `/metrics`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::time::Duration;

/// Describes this crate's metrics, as a well-behaved library does at start.
pub fn describe() {
    metrics::describe_counter!(
        "vector_store_queries_total",
        "Queries sent to the vector store."
    );
    metrics::describe_histogram!(
        "vector_store.query.duration_seconds",
        metrics::Unit::Seconds,
        "Time a vector store query took."
    );
}

/// Runs one query against a pretend vector store and records it.
pub fn query(collection: &str, took: Duration, hits: usize) {
    metrics::counter!("vector_store_queries_total", "collection" => collection.to_owned())
        .increment(1);
    metrics::histogram!("vector_store.query.duration_seconds").record(took);
    metrics::gauge!("vector_store_last_hits", "collection" => collection.to_owned())
        .set(hits as f64);
}
