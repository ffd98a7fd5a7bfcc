//! # beluga-metrics
//!
//! A metrics engine for AI-agent workloads: counters, gauges and histograms
//! whose recording path never locks, never allocates and never hashes once a
//! handle is resolved; labelled families with a cardinality limit; and
//! hand-written Prometheus text 0.0.4, OpenMetrics 1.0 and protobuf encoders
//! (the protobuf one with native histograms derived from the HDR counts).
//!
//! ```
//! use beluga_metrics::{Buckets, Format, Opts, Registry, Unit};
//!
//! let registry = Registry::new();
//! let tokens = registry.counter_family(
//!     Opts::new("agent_llm_tokens_total", "Tokens used.").labels(["model", "tenant"]),
//! )?;
//! let latency = registry.histogram(
//!     Opts::new("agent_llm_call_duration_seconds", "LLM call duration.").unit(Unit::SECONDS),
//!     Buckets::gen_ai_operation_duration(),
//! )?;
//!
//! let gpt_free = tokens.with_labels(&["gpt-4o", "free"])?; // resolve once, keep the handle
//! gpt_free.add(1200);
//! latency.record(0.42);
//!
//! let text = registry.encode(Format::PrometheusText);
//! assert!(text.contains("agent_llm_tokens_total{model=\"gpt-4o\",tenant=\"free\"} 1200\n"));
//! assert!(text.contains("agent_llm_call_duration_seconds_bucket{le=\"0.64\"} 1\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Where to start
//!
//! * [`Registry`]: define metrics ([`Opts`], [`Unit`], [`Buckets`]); names
//!   and labels are checked here, once.
//! * [`Counter`], [`FloatCounter`], [`Gauge`], [`Histogram`]: handles to
//!   keep and record through. [`Family`] resolves label values to handles;
//!   [`Family::with`] records without creating one.
//! * The `beluga-monitor` crate: the agent-monitoring API (API requests, LLM and tool
//!   calls, tokens, cost, safety checks), built on this crate's public API only.
//! * [`Encoder`] and [`Format`]: Prometheus text 0.0.4 and OpenMetrics 1.0;
//!   [`Exposition`] adds the protobuf format with native histograms
//!   ([`ExponentialBuckets`]); [`Visitor`]: the same data for other exporters.
//!
//! How the engine works, and what each series costs in memory, is in
//! `docs/architecture.md`; measured costs against other libraries are in
//! `docs/benchmarks.md`.

#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

// Layers, lowest first. A module imports only from its own layer or a lower
// one (`scripts/check-layers.py` enforces it; `docs/architecture.md` explains
// it). Within a layer, imports never form a cycle.
//
// 0. names, descriptors, errors, leaves
mod desc;
mod error;
mod escape;
mod exemplar;
mod first_use;
mod name;
mod reclaim;
mod sync;
mod thread_words;
// 1. storage: cells written by one thread, read by all
mod exemplar_slots;
mod histogram;
mod shards;
mod thread_slot;
// 2. series and label sets, with the per-thread lookup cache beside them
mod label_set;
mod label_values;
mod lookup_cache;
mod sample;
mod series;
mod series_index;
mod series_table;
// 3. handles, and the families that resolve label values to them
pub mod diagnostics;
mod erased_family;
mod family;
mod handles;
mod idle_expiry;
// 4. the registry
mod registry;
// 5. reading out: the visitor walk and the text encoders
mod encoding;
mod visit;

pub use desc::{Descriptor, MetricType, Opts, Unit};
pub use encoding::{Encoder, Exposition, Format, DEFAULT_NATIVE_SCHEMA};
pub use error::{BucketsError, LabelError, RegistryError, ValueError};
pub use exemplar::{Exemplar, ExemplarError, ExemplarValue, MAX_EXEMPLAR_LABEL_CHARS};
pub use family::{Family, DEFAULT_CARDINALITY_LIMIT};
pub use handles::{Counter, FloatCounter, Gauge, Histogram, HistogramTimer, Metric};
pub use histogram::{Buckets, ExponentialBuckets, ExponentialScale, HistogramValue, Quantiles};
pub use name::{MAX_LABEL_VALUE_BYTES, MAX_NAME_BYTES, OVERFLOW_LABEL};
pub use registry::{
    Registry, INVALID_VALUES_METRIC, OVERFLOW_METRIC, REFUSED_FAMILIES_METRIC, SATURATIONS_METRIC,
};
pub use sample::{Labels, Value};
pub use visit::Visitor;
