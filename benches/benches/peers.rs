//! beluga-metrics side by side with its peers, in the same run: counter
//! increment, 2-label lookup plus increment, histogram record (each from 1
//! thread up to every core and twice that), text encoding of 1k/10k/100k
//! series, an agent turn recorded with cold caches, lookups over 5,000 and
//! 50,000 label sets, the `metrics` facade and native histograms; plus
//! allocation counts per operation and memory per series, measured with a
//! counting global allocator and written to
//! `target/criterion/peers-memory.json` (`target/criterion-quick/` in quick
//! mode) for `scripts/bench-report.py`.
//!
//! With `BELUGA_COLD_ALTERNATING=<MiB>` set, no criterion suite runs: the
//! cold turn and its steps are timed for every library alternately, turn by
//! turn, and per-turn medians printed (see `cold_alternating`;
//! `BELUGA_COLD_ROUNDS` sets the turns per step, 500 by default). Run
//! under `callgrind --cache-sim=yes --toggle-collect='*cold_step*'`, the
//! same mode counts the cache lines each library's steps load
//! (docs/benchmarks.md, "Cache lines, counted").

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use beluga_benches::{contended, cores};
use criterion::{BenchmarkId, Criterion, Throughput};

// ---------------------------------------------------------------- allocator

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
/// Counting is on while the memory report runs and off for the timed
/// benchmarks: two shared atomics per allocation would otherwise add a
/// contended cache line to every allocating operation, a cost no user pays.
static COUNTING: AtomicBool = AtomicBool::new(true);

// SAFETY: every method forwards to the system allocator unchanged; the
// counters beside it are atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            LIVE_BYTES.fetch_add(layout.size() as i64, Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------- the libraries

const MODELS: [&str; 20] = [
    "model-0", "model-1", "model-2", "model-3", "model-4", "model-5", "model-6", "model-7",
    "model-8", "model-9", "model-10", "model-11", "model-12", "model-13", "model-14", "model-15",
    "model-16", "model-17", "model-18", "model-19",
];
const TENANTS: [&str; 3] = ["free", "pro", "enterprise"];
const BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// The operations every library is measured on.
trait Library: Sync {
    const NAME: &'static str;
    fn counter_inc(&self);
    /// `None` if the library has no label lookup (bound instruments).
    fn labelled_inc(&self, model: &'static str, tenant: &'static str) -> Option<()>;
    fn histogram_record(&self, value: f64);
    /// One observation into a 2-label histogram family; `None` if the
    /// library has no label lookup.
    fn labelled_record(&self, model: &'static str, tenant: &'static str, value: f64) -> Option<()>;
}

/// Libraries that also encode the Prometheus text format.
trait Encodes {
    /// A family with `series` two-label counter series, then its encoder.
    fn encoder(series: usize) -> Box<dyn FnMut() -> usize>;
}

fn series_label(i: usize) -> (String, &'static str) {
    (
        format!("/api/v1/endpoint/{}", i / 5),
        ["200", "400", "404", "429", "500"][i % 5],
    )
}

// beluga-metrics
struct Beluga {
    counter: beluga_metrics::Counter,
    family: beluga_metrics::Family<beluga_metrics::Counter>,
    histogram: beluga_metrics::Histogram,
    histograms: beluga_metrics::Family<beluga_metrics::Histogram>,
}

impl Beluga {
    fn new() -> Self {
        Self::with_limit(beluga_metrics::DEFAULT_CARDINALITY_LIMIT)
    }

    /// With a cardinality limit of `limit` label sets per family.
    fn with_limit(limit: usize) -> Self {
        use beluga_metrics::{Buckets, Opts, Registry};
        let r = Registry::new();
        Beluga {
            counter: r.counter(Opts::new("c_total", "c")).unwrap(),
            family: r
                .counter_family(
                    Opts::new("l_total", "l")
                        .labels(["model", "tenant"])
                        .cardinality_limit(limit),
                )
                .unwrap(),
            histogram: r
                .histogram(Opts::new("h", "h"), Buckets::new(BUCKETS))
                .unwrap(),
            histograms: r
                .histogram_family(
                    Opts::new("lh", "lh").labels(["model", "tenant"]),
                    Buckets::new(BUCKETS),
                )
                .unwrap(),
        }
    }
}

impl Library for Beluga {
    const NAME: &'static str = "beluga";
    #[inline]
    fn counter_inc(&self) {
        self.counter.inc();
    }
    #[inline]
    fn labelled_inc(&self, model: &'static str, tenant: &'static str) -> Option<()> {
        self.family.with(&[model, tenant], |c| c.inc()).ok()
    }
    #[inline]
    fn histogram_record(&self, value: f64) {
        self.histogram.record(value);
    }
    #[inline]
    fn labelled_record(&self, model: &'static str, tenant: &'static str, value: f64) -> Option<()> {
        self.histograms
            .with(&[model, tenant], |h| h.record(value))
            .ok()
    }
}

impl Encodes for Beluga {
    fn encoder(series: usize) -> Box<dyn FnMut() -> usize> {
        use beluga_metrics::{Encoder, Format, Opts, Registry};
        let r = Registry::new();
        let f = r
            .counter_family(
                Opts::new("requests_total", "r")
                    .labels(["endpoint", "status"])
                    .cardinality_limit(series),
            )
            .unwrap();
        for i in 0..series {
            let (endpoint, status) = series_label(i);
            f.with_labels(&[endpoint.as_str(), status])
                .unwrap()
                .add(i as u64);
        }
        let mut encoder = Encoder::new();
        Box::new(move || encoder.encode(&r, Format::PrometheusText).len())
    }
}

// metrics + metrics-exporter-prometheus (global recorder, installed once)
struct MetricsRs {
    counter: metrics::Counter,
    histogram: metrics::Histogram,
}

fn metrics_handle() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("one recorder per process");
        handle
    })
}

impl MetricsRs {
    fn new() -> Self {
        metrics_handle();
        MetricsRs {
            counter: metrics::counter!("c_total"),
            histogram: metrics::histogram!("h"),
        }
    }
}

impl Library for MetricsRs {
    const NAME: &'static str = "metrics";
    #[inline]
    fn counter_inc(&self) {
        self.counter.increment(1);
    }
    #[inline]
    fn labelled_inc(&self, model: &'static str, tenant: &'static str) -> Option<()> {
        metrics::counter!("l_total", "model" => model, "tenant" => tenant).increment(1);
        Some(())
    }
    #[inline]
    fn histogram_record(&self, value: f64) {
        self.histogram.record(value);
    }
    #[inline]
    fn labelled_record(&self, model: &'static str, tenant: &'static str, value: f64) -> Option<()> {
        metrics::histogram!("lh", "model" => model, "tenant" => tenant).record(value);
        Some(())
    }
}

impl Encodes for MetricsRs {
    fn encoder(series: usize) -> Box<dyn FnMut() -> usize> {
        let handle = metrics_handle();
        let name = format!("requests_{series}_total");
        for i in 0..series {
            let (endpoint, status) = series_label(i);
            metrics::counter!(name.clone(), "endpoint" => endpoint, "status" => status)
                .increment(i as u64);
        }
        // The global recorder also renders the other benchmarks' metrics:
        // they are few, next to the family under test.
        Box::new(move || handle.render().len())
    }
}

// prometheus (tikv)
struct Tikv {
    counter: prometheus::IntCounter,
    family: prometheus::IntCounterVec,
    histogram: prometheus::Histogram,
    histograms: prometheus::HistogramVec,
}

impl Tikv {
    fn new() -> Self {
        Tikv {
            counter: prometheus::IntCounter::new("c_total", "c").unwrap(),
            family: prometheus::IntCounterVec::new(
                prometheus::Opts::new("l_total", "l"),
                &["model", "tenant"],
            )
            .unwrap(),
            histogram: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new("h", "h").buckets(BUCKETS.to_vec()),
            )
            .unwrap(),
            histograms: prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new("lh", "lh").buckets(BUCKETS.to_vec()),
                &["model", "tenant"],
            )
            .unwrap(),
        }
    }
}

impl Library for Tikv {
    const NAME: &'static str = "prometheus";
    #[inline]
    fn counter_inc(&self) {
        self.counter.inc();
    }
    #[inline]
    fn labelled_inc(&self, model: &'static str, tenant: &'static str) -> Option<()> {
        self.family.with_label_values(&[model, tenant]).inc();
        Some(())
    }
    #[inline]
    fn histogram_record(&self, value: f64) {
        self.histogram.observe(value);
    }
    #[inline]
    fn labelled_record(&self, model: &'static str, tenant: &'static str, value: f64) -> Option<()> {
        self.histograms
            .with_label_values(&[model, tenant])
            .observe(value);
        Some(())
    }
}

impl Encodes for Tikv {
    fn encoder(series: usize) -> Box<dyn FnMut() -> usize> {
        use prometheus::Encoder;
        let registry = prometheus::Registry::new();
        let family = prometheus::IntCounterVec::new(
            prometheus::Opts::new("requests_total", "r"),
            &["endpoint", "status"],
        )
        .unwrap();
        registry.register(Box::new(family.clone())).unwrap();
        for i in 0..series {
            let (endpoint, status) = series_label(i);
            family
                .with_label_values(&[endpoint.as_str(), status])
                .inc_by(i as u64);
        }
        let encoder = prometheus::TextEncoder::new();
        let mut buffer = Vec::new();
        Box::new(move || {
            buffer.clear();
            encoder.encode(&registry.gather(), &mut buffer).unwrap();
            buffer.len()
        })
    }
}

// prometheus-client
type PcLabels = [(&'static str, &'static str); 2];

struct PromClient {
    counter: prometheus_client::metrics::counter::Counter,
    family: prometheus_client::metrics::family::Family<
        PcLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    histogram: prometheus_client::metrics::histogram::Histogram,
    histograms: prometheus_client::metrics::family::Family<
        PcLabels,
        prometheus_client::metrics::histogram::Histogram,
        fn() -> prometheus_client::metrics::histogram::Histogram,
    >,
}

impl PromClient {
    fn new() -> Self {
        PromClient {
            counter: Default::default(),
            family: Default::default(),
            histogram: prometheus_client::metrics::histogram::Histogram::new(BUCKETS),
            histograms: prometheus_client::metrics::family::Family::new_with_constructor(|| {
                prometheus_client::metrics::histogram::Histogram::new(BUCKETS)
            }),
        }
    }
}

impl Library for PromClient {
    const NAME: &'static str = "prometheus-client";
    #[inline]
    fn counter_inc(&self) {
        self.counter.inc();
    }
    #[inline]
    fn labelled_inc(&self, model: &'static str, tenant: &'static str) -> Option<()> {
        self.family
            .get_or_create(&[("model", model), ("tenant", tenant)])
            .inc();
        Some(())
    }
    #[inline]
    fn histogram_record(&self, value: f64) {
        self.histogram.observe(value);
    }
    #[inline]
    fn labelled_record(&self, model: &'static str, tenant: &'static str, value: f64) -> Option<()> {
        self.histograms
            .get_or_create(&[("model", model), ("tenant", tenant)])
            .observe(value);
        Some(())
    }
}

impl Encodes for PromClient {
    fn encoder(series: usize) -> Box<dyn FnMut() -> usize> {
        use prometheus_client::metrics::counter::Counter;
        use prometheus_client::metrics::family::Family;
        let mut registry = prometheus_client::registry::Registry::default();
        let family = Family::<[(&'static str, String); 2], Counter>::default();
        registry.register("requests", "r", family.clone());
        for i in 0..series {
            let (endpoint, status) = series_label(i);
            family
                .get_or_create(&[("endpoint", endpoint), ("status", status.to_string())])
                .inc_by(i as u64);
        }
        let mut buffer = String::new();
        Box::new(move || {
            buffer.clear();
            prometheus_client::encoding::text::encode(&mut buffer, &registry).unwrap();
            buffer.len()
        })
    }
}

// OpenTelemetry SDK: unbound (attributes on every call) and bound instruments
struct Otel {
    _provider: opentelemetry_sdk::metrics::SdkMeterProvider,
    counter: opentelemetry::metrics::Counter<u64>,
    histogram: opentelemetry::metrics::Histogram<f64>,
}

impl Otel {
    fn new() -> Self {
        Self::with_limit(None)
    }

    /// With a cardinality limit of `limit` attribute sets per instrument
    /// (the SDK's default is 2,000).
    fn with_limit(limit: Option<usize>) -> Self {
        use opentelemetry::metrics::MeterProvider;
        let mut builder = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(opentelemetry_sdk::metrics::ManualReader::builder().build());
        if let Some(limit) = limit {
            builder = builder.with_view(move |_: &opentelemetry_sdk::metrics::Instrument| {
                opentelemetry_sdk::metrics::Stream::builder()
                    .with_cardinality_limit(limit)
                    .build()
                    .ok()
            });
        }
        let provider = builder.build();
        let meter = provider.meter("bench");
        Otel {
            counter: meter.u64_counter("c").build(),
            histogram: meter
                .f64_histogram("h")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            _provider: provider,
        }
    }
}

impl Library for Otel {
    const NAME: &'static str = "otel-sdk";
    #[inline]
    fn counter_inc(&self) {
        self.counter.add(1, &[]);
    }
    #[inline]
    fn labelled_inc(&self, model: &'static str, tenant: &'static str) -> Option<()> {
        use opentelemetry::KeyValue;
        self.counter.add(
            1,
            &[
                KeyValue::new("model", model),
                KeyValue::new("tenant", tenant),
            ],
        );
        Some(())
    }
    #[inline]
    fn histogram_record(&self, value: f64) {
        self.histogram.record(value, &[]);
    }
    #[inline]
    fn labelled_record(&self, model: &'static str, tenant: &'static str, value: f64) -> Option<()> {
        use opentelemetry::KeyValue;
        self.histogram.record(
            value,
            &[
                KeyValue::new("model", model),
                KeyValue::new("tenant", tenant),
            ],
        );
        Some(())
    }
}

struct OtelBound {
    _otel: Otel,
    counter: opentelemetry::metrics::BoundCounter<u64>,
    histogram: opentelemetry::metrics::BoundHistogram<f64>,
}

impl OtelBound {
    fn new() -> Self {
        let otel = Otel::new();
        OtelBound {
            counter: otel.counter.bind(&[]),
            histogram: otel.histogram.bind(&[]),
            _otel: otel,
        }
    }
}

impl Library for OtelBound {
    const NAME: &'static str = "otel-sdk-bound";
    #[inline]
    fn counter_inc(&self) {
        self.counter.add(1);
    }
    fn labelled_inc(&self, _: &'static str, _: &'static str) -> Option<()> {
        None
    }
    #[inline]
    fn histogram_record(&self, value: f64) {
        self.histogram.record(value);
    }
    fn labelled_record(&self, _: &'static str, _: &'static str, _: f64) -> Option<()> {
        None
    }
}

// measured
#[derive(Clone, Copy, PartialEq, Debug, measured::LabelGroup)]
#[label(set = PairSet)]
struct Pair<'a> {
    #[label(dynamic_with = lasso::ThreadedRodeo, default)]
    model: &'a str,
    #[label(dynamic_with = lasso::ThreadedRodeo, default)]
    tenant: &'a str,
}

struct Measured {
    counter: measured::Counter,
    family: measured::CounterVec<PairSet>,
    histogram: measured::Histogram<14>,
    histograms: measured::HistogramVec<PairSet, 14>,
}

impl Measured {
    fn new() -> Self {
        Measured {
            counter: measured::Counter::new(),
            family: measured::CounterVec::with_label_set(PairSet::default()),
            histogram: measured::Histogram::with_metadata(
                measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
            ),
            histograms: measured::HistogramVec::with_label_set_and_metadata(
                PairSet::default(),
                measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
            ),
        }
    }
}

impl Library for Measured {
    const NAME: &'static str = "measured";
    #[inline]
    fn counter_inc(&self) {
        self.counter.inc();
    }
    #[inline]
    fn labelled_inc(&self, model: &'static str, tenant: &'static str) -> Option<()> {
        self.family.inc(Pair { model, tenant });
        Some(())
    }
    #[inline]
    fn histogram_record(&self, value: f64) {
        self.histogram.observe(value);
    }
    #[inline]
    fn labelled_record(&self, model: &'static str, tenant: &'static str, value: f64) -> Option<()> {
        self.histograms.observe(Pair { model, tenant }, value);
        Some(())
    }
}

impl Encodes for Measured {
    fn encoder(series: usize) -> Box<dyn FnMut() -> usize> {
        use measured::metric::MetricFamilyEncoding;
        let family = measured::CounterVec::with_label_set(PairSet::default());
        let statuses: Vec<String> = ["200", "400", "404", "429", "500"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for i in 0..series {
            let (endpoint, _) = series_label(i);
            family.inc_by(
                Pair {
                    model: &endpoint,
                    tenant: &statuses[i % 5],
                },
                i as u64,
            );
        }
        let mut encoder = measured::text::BufferedTextEncoder::new();
        Box::new(move || {
            family
                .collect_family_into(
                    measured::metric::name::MetricName::from_str("requests_total"),
                    &mut encoder,
                )
                .unwrap();
            encoder.finish().len()
        })
    }
}

// ---------------------------------------------------------------- benchmarks

fn thread_counts() -> Vec<usize> {
    let cores = cores();
    let mut counts: Vec<usize> = (1..=cores).collect();
    counts.push(cores * 2);
    counts
}

fn recording<L: Library>(c: &mut Criterion, lib: &L) {
    let values: Vec<f64> = (0..1024).map(|i| 0.005 * 1.0069f64.powi(i)).collect();
    // The 60 label sets, padded to 64 entries so picking one is a mask,
    // not a division that would cost more than some libraries' lookups.
    let mut pairs = Vec::new();
    for m in MODELS {
        for t in TENANTS {
            pairs.push((m, t));
        }
    }
    for i in 0..4 {
        pairs.push(pairs[i * 13]);
    }
    assert_eq!(pairs.len(), 64);
    for &threads in &thread_counts() {
        let mut group = c.benchmark_group(format!("peers/counter_inc/{threads}_threads"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(L::NAME, |b| {
            b.iter_custom(|iters| contended(threads, iters, |_| lib.counter_inc()))
        });
        group.finish();

        if lib.labelled_inc("model-0", "free").is_some() {
            let mut group = c.benchmark_group(format!("peers/label_lookup_inc/{threads}_threads"));
            group.throughput(Throughput::Elements(1));
            group.bench_function(L::NAME, |b| {
                b.iter_custom(|iters| {
                    contended(threads, iters, |i| {
                        let (m, t) = pairs[(i as usize * 7) & 63];
                        lib.labelled_inc(black_box(m), black_box(t));
                    })
                })
            });
            group.finish();
        }

        let mut group = c.benchmark_group(format!("peers/histogram_record/{threads}_threads"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(L::NAME, |b| {
            b.iter_custom(|iters| {
                contended(threads, iters, |i| {
                    lib.histogram_record(black_box(values[(i & 1023) as usize]))
                })
            })
        });
        group.finish();
    }
}

/// Label sets for the cold rows: more than any per-thread cache of a few
/// hundred entries holds.
fn cold_label_sets() -> &'static [(&'static str, &'static str)] {
    static SETS: std::sync::OnceLock<Vec<(&'static str, &'static str)>> =
        std::sync::OnceLock::new();
    SETS.get_or_init(|| {
        let models: Vec<&'static str> = (0..20)
            .map(|i| &*Box::leak(format!("model-{i}").into_boxed_str()))
            .collect();
        let tenants: Vec<&'static str> = (0..50)
            .map(|i| &*Box::leak(format!("tenant-{i}").into_boxed_str()))
            .collect();
        models
            .iter()
            .flat_map(|m| tenants.iter().map(move |t| (*m, *t)))
            .collect()
    })
}

/// The value cold turns record into their histograms, also recorded into
/// every series before timing: an agent's series have long seen the range
/// of its latencies. (A beluga histogram series allocates a page of
/// per-thread counts the first time a thread records a value in a range it
/// has not seen, a first-use cost like creating the series; before this
/// warm-up recorded the same value, most timed beluga turns paid it.)
const COLD_VALUE: f64 = 0.42;

/// Evicts the caches by reading `bytes` of a buffer of that size, one
/// load per 64-byte line (outside the timed region).
fn flush_caches(buffer: &[u8]) {
    let mut sum = 0u8;
    for line in buffer.chunks(64) {
        sum = sum.wrapping_add(line[0]);
    }
    black_box(sum);
}

/// One agent turn recorded with cold caches: a 2-label counter lookup and
/// increment, a 2-label histogram record and a plain counter increment,
/// over 1,000 label sets, right after walking 64 MiB (everything evicted)
/// or 4 MiB (L1 and L2 evicted). Criterion's iteration count is honoured
/// by timing at most 16 cold turns per call and scaling (every turn needs
/// its own walk, which takes far longer than the turn).
fn cold<L: Library>(c: &mut Criterion, lib: &L) {
    let sets = cold_label_sets();
    if lib.labelled_inc(sets[0].0, sets[0].1).is_none()
        || lib.labelled_record(sets[0].0, sets[0].1, 0.1).is_none()
    {
        return;
    }
    // Every series exists, and has recorded the value the turns record,
    // before timing: first use is not the cold cost (see `COLD_VALUE`).
    for &(m, t) in sets {
        lib.labelled_inc(m, t);
        lib.labelled_record(m, t, COLD_VALUE);
    }
    let turns_per_sample = if beluga_benches::quick() { 2 } else { 48 };
    for (row, mib) in [("64MiB", 64usize), ("4MiB", 4)] {
        let buffer: Vec<u8> = (0..mib << 20).map(|i| i as u8).collect();
        let mut group = c.benchmark_group(format!("peers/cold_turn/{row}"));
        group.sample_size(10);
        // Criterion's warm-up doubles the iteration count until the *wall*
        // time of the calls (walks included) passes the warm-up time; with a
        // walk per turn and at most 16 turns per call that would double the
        // count into overflow. One short warm-up call is enough here.
        group.warm_up_time(std::time::Duration::from_millis(1));
        let mut next = 0usize;
        group.bench_function(L::NAME, |b| {
            b.iter_custom(|iters| {
                if iters == 0 {
                    return std::time::Duration::ZERO;
                }
                let turns = iters.min(turns_per_sample);
                let mut timed = std::time::Duration::ZERO;
                for _ in 0..turns {
                    next = (next + 617) % sets.len();
                    let (m, t) = sets[next];
                    flush_caches(&buffer);
                    let start = std::time::Instant::now();
                    lib.labelled_inc(black_box(m), black_box(t));
                    lib.labelled_record(black_box(m), black_box(t), black_box(COLD_VALUE));
                    lib.counter_inc();
                    timed += start.elapsed();
                }
                let scaled = timed.as_nanos() * u128::from(iters) / u128::from(turns);
                std::time::Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
            })
        });
        group.finish();
    }
}

/// The steps of a cold turn, as the alternating probe times them.
#[derive(Clone, Copy)]
enum ColdStep {
    CounterLookup,
    HistogramLookup,
    PlainCounter,
    WholeTurn,
}

impl ColdStep {
    const ALL: [ColdStep; 4] = [
        ColdStep::CounterLookup,
        ColdStep::HistogramLookup,
        ColdStep::PlainCounter,
        ColdStep::WholeTurn,
    ];

    fn name(self) -> &'static str {
        match self {
            ColdStep::CounterLookup => "2-label counter lookup + inc",
            ColdStep::HistogramLookup => "2-label histogram lookup + record",
            ColdStep::PlainCounter => "plain counter inc",
            ColdStep::WholeTurn => "whole turn",
        }
    }
}

/// What happens before each timed step: a walk over a buffer that evicts
/// the caches, or a real sleep (an agent waiting for an LLM: the core runs
/// other work or idles, and the caches cool down on their own).
#[derive(Clone, Copy)]
enum Pause<'a> {
    Walk(&'a [u8]),
    Sleep(std::time::Duration),
}

/// Pauses as `pause` says, then times `step` once.
fn time_cold_step<L: Library>(
    lib: &L,
    step: ColdStep,
    (m, t): (&'static str, &'static str),
    pause: Pause<'_>,
) -> u128 {
    match pause {
        Pause::Walk(buffer) => flush_caches(buffer),
        Pause::Sleep(wait) => std::thread::sleep(wait),
    }
    let start = std::time::Instant::now();
    cold_step(lib, step, m, t);
    start.elapsed().as_nanos()
}

/// One step of a cold turn, out of line so that a cache simulator can count
/// what it alone touches (`callgrind --toggle-collect='*cold_step*'`, see
/// docs/benchmarks.md).
#[inline(never)]
fn cold_step<L: Library>(lib: &L, step: ColdStep, m: &'static str, t: &'static str) {
    match step {
        ColdStep::CounterLookup => {
            lib.labelled_inc(black_box(m), black_box(t));
        }
        ColdStep::HistogramLookup => {
            lib.labelled_record(black_box(m), black_box(t), black_box(COLD_VALUE));
        }
        ColdStep::PlainCounter => lib.counter_inc(),
        ColdStep::WholeTurn => {
            lib.labelled_inc(black_box(m), black_box(t));
            lib.labelled_record(black_box(m), black_box(t), black_box(COLD_VALUE));
            lib.counter_inc();
        }
    }
}

/// `BELUGA_COLD_ALTERNATING=<MiB>` (a walk over that many MiB before each
/// step) or `BELUGA_PACED_MS=<ms>` (a real sleep instead, as an agent
/// waits for an LLM): instead of the criterion suites, times single cold
/// turns (and each step of one) of every library with labelled families
/// *alternately*, library after library, turn by turn, in one process, and
/// prints per-turn medians and 90th percentiles. The criterion `cold_turn`
/// rows take each library's samples minutes apart and move by 15 % and
/// more with the machine's neighbours; alternating puts every library
/// under the same conditions, which is what comparing two versions of
/// beluga needs.
fn cold_alternating(pause: std::time::Duration, mib: usize, rounds: usize) {
    let buffer: Vec<u8> = (0..mib << 20).map(|i| i as u8).collect();
    let pause = if mib > 0 {
        Pause::Walk(&buffer)
    } else {
        Pause::Sleep(pause)
    };
    let sets = cold_label_sets();
    let (beluga, metrics, tikv) = (Beluga::new(), MetricsRs::new(), Tikv::new());
    let (client, otel, measured) = (PromClient::new(), Otel::new(), Measured::new());
    type Timer<'a> = Box<dyn Fn(ColdStep, (&'static str, &'static str)) -> u128 + 'a>;
    fn timer<'a, L: Library>(lib: &'a L, pause: Pause<'a>) -> (&'static str, Timer<'a>) {
        for &(m, t) in cold_label_sets() {
            lib.labelled_inc(m, t);
            lib.labelled_record(m, t, COLD_VALUE);
        }
        (
            L::NAME,
            Box::new(move |step, set| time_cold_step(lib, step, set, pause)),
        )
    }
    let libs = [
        timer(&beluga, pause),
        timer(&metrics, pause),
        timer(&tikv, pause),
        timer(&client, pause),
        timer(&otel, pause),
        timer(&measured, pause),
    ];
    let mut times = vec![vec![Vec::with_capacity(rounds); ColdStep::ALL.len()]; libs.len()];
    let mut next = 0;
    for round in 0..rounds * ColdStep::ALL.len() {
        let step = ColdStep::ALL[round % ColdStep::ALL.len()];
        for (lib, (_, time)) in libs.iter().enumerate() {
            next = (next + 617) % sets.len();
            times[lib][step as usize].push(time(step, sets[next]));
        }
    }
    // Per library and step: (median, 90th percentile).
    let quantiles: Vec<Vec<(u128, u128)>> = times
        .into_iter()
        .map(|steps| {
            steps
                .into_iter()
                .map(|mut v| {
                    v.sort_unstable();
                    (v[v.len() / 2], v[v.len() * 9 / 10])
                })
                .collect()
        })
        .collect();
    match pause {
        Pause::Walk(_) => println!(
            "cold steps after walking {mib} MiB, {rounds} alternated turns, ns (median / p90)"
        ),
        Pause::Sleep(wait) => {
            println!("steps after sleeping {wait:?}, {rounds} alternated turns, ns (median / p90)")
        }
    }
    for step in ColdStep::ALL {
        let row: Vec<String> = libs
            .iter()
            .zip(&quantiles)
            .map(|((name, _), q)| {
                let (median, p90) = q[step as usize];
                format!("{name} {median} / {p90}")
            })
            .collect();
        let best = |pick: fn(&(u128, u128)) -> u128| {
            quantiles[1..]
                .iter()
                .map(|q| pick(&q[step as usize]))
                .min()
                .unwrap_or(1) as f64
                / pick(&quantiles[0][step as usize]).max(1) as f64
        };
        println!(
            "{:34} {} | beluga vs best peer {:.2}x median, {:.2}x p90",
            step.name(),
            row.join(", "),
            best(|q| q.0),
            best(|q| q.1)
        );
    }
}

/// `n` distinct (model, tenant) label sets, 50 tenants per model, in a
/// scrambled order (a stride coprime with `n`), so that consecutive lookups
/// share neither a model nor a tenant and no cache of a few hundred entries
/// holds them.
fn scrambled_label_sets(n: usize) -> Vec<(&'static str, &'static str)> {
    let tenants: Vec<&'static str> = (0..50)
        .map(|i| &*Box::leak(format!("tenant-{i}").into_boxed_str()))
        .collect();
    let sets: Vec<(&'static str, &'static str)> = (0..n / 50)
        .flat_map(|m| {
            let model: &'static str = Box::leak(format!("model-{m}").into_boxed_str());
            tenants.iter().map(move |t| (model, *t))
        })
        .collect();
    let stride = 7919; // prime, so coprime with 5,000 and 50,000
    (0..n).map(|i| sets[(i * stride) % n]).collect()
}

/// 2-label `&str` lookups + increment over 5,000 and 50,000 label sets in
/// scrambled order, at 1, 2 and 4 threads (issue 11, item 2). Every series
/// exists before timing; `make` builds the library with room for them all.
fn high_cardinality<L: Library>(c: &mut Criterion, make: impl Fn(usize) -> L) {
    for n in [5_000, 50_000] {
        let lib = make(n);
        let sets = scrambled_label_sets(n);
        if lib.labelled_inc(sets[0].0, sets[0].1).is_none() {
            return;
        }
        for &(m, t) in &sets {
            lib.labelled_inc(m, t);
        }
        for threads in [1, 2, 4] {
            let mut group =
                c.benchmark_group(format!("peers/high_cardinality/{n}/{threads}_threads"));
            group.throughput(Throughput::Elements(1));
            group.bench_function(L::NAME, |b| {
                b.iter_custom(|iters| {
                    contended(threads, iters, |i| {
                        // Every thread walks the same scrambled order.
                        let (m, t) = sets[(i as usize) % n];
                        lib.labelled_inc(black_box(m), black_box(t));
                    })
                })
            });
            group.finish();
        }
    }
}

fn encoding<E: Encodes>(c: &mut Criterion, name: &str) {
    for series in [1_000, 10_000, 100_000] {
        let mut encode = E::encoder(series);
        let bytes = encode();
        let mut group = c.benchmark_group(format!("peers/encode/{series}_series"));
        group.throughput(Throughput::Bytes(bytes as u64));
        if series >= 100_000 {
            group.sample_size(10);
        }
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(encode()))
        });
        group.finish();
    }
}

// ---------------------------------------------------------------- allocations and memory

/// Allocations per operation after warm-up (the same 10,000 operations
/// once before: a library may allocate the first time it sees a value range,
/// as beluga does per octave of a histogram), on the calling thread's view
/// of a process-wide counter (the benchmark runs nothing else meanwhile).
fn allocations_per_op(op: impl Fn(u64)) -> f64 {
    for i in 0..10_000 {
        op(i);
    }
    let before = ALLOCATIONS.load(Relaxed);
    for i in 0..10_000 {
        op(i);
    }
    (ALLOCATIONS.load(Relaxed) - before) as f64 / 10_000.0
}

fn bytes_per<T>(n: usize, make: impl FnOnce(usize) -> T) -> (f64, T) {
    let before = LIVE_BYTES.load(Relaxed);
    let kept = make(n);
    ((LIVE_BYTES.load(Relaxed) - before) as f64 / n as f64, kept)
}

fn measure_library<L: Library>(lib: &L) -> serde_json::Value {
    let labelled = lib.labelled_inc("model-0", "free").map(|_| {
        allocations_per_op(|i| {
            let _ = lib.labelled_inc(MODELS[(i % 20) as usize], TENANTS[(i % 3) as usize]);
        })
    });
    serde_json::json!({
        "allocations_per_op": {
            "counter_inc": allocations_per_op(|_| lib.counter_inc()),
            "label_lookup_inc": labelled,
            "histogram_record": allocations_per_op(|i| lib.histogram_record(i as f64 * 0.01)),
        }
    })
}

/// 1,000 latencies spread log-uniformly over three decades, 1 ms to 1 s:
/// what an LLM or tool call duration histogram sees.
fn latency_spread() -> Vec<f64> {
    (0..1000)
        .map(|i| 0.001 * 1000f64.powf(f64::from(i) / 999.0))
        .collect()
}

fn memory_report() -> serde_json::Value {
    let mut report = serde_json::Map::new();
    let n = 2_000;
    let names: Vec<String> = (0..n).map(|i| format!("value-{i}")).collect();
    let leak: &'static [String] = Box::leak(names.into_boxed_slice());

    macro_rules! entry {
        ($lib:expr, $make:expr, $label:expr, $hist:expr) => {{
            let lib = $make;
            let mut v = measure_library(&lib);
            let (per_series, _keep) = bytes_per(n, |n| {
                for i in 0..n {
                    ($label)(&lib, leak[i].as_str());
                }
            });
            v["bytes_per_2_label_counter_series"] = serde_json::json!(per_series);
            let (per_hist, _keep2) = bytes_per(200, |n| ($hist)(n, &[0.5]));
            v["bytes_per_histogram_series_one_thread"] = serde_json::json!(per_hist);
            let spread = latency_spread();
            let (per_spread, _keep3) = bytes_per(200, |n| ($hist)(n, &spread));
            v["bytes_per_histogram_series_one_thread_latency_spread"] =
                serde_json::json!(per_spread);
            report.insert($lib.to_string(), v);
        }};
    }

    entry!(
        "beluga",
        Beluga::new(),
        |l: &Beluga, v: &'static str| l.family.with(&[v, "pro"], |c| c.inc()).unwrap(),
        |n: usize, values: &[f64]| {
            use beluga_metrics::{Buckets, Opts, Registry};
            let r = Registry::new();
            let f = r
                .histogram_family(Opts::new("m", "m").labels(["k"]), Buckets::new(BUCKETS))
                .unwrap();
            for i in 0..n {
                let h = f.with_labels(&[i.to_string()]).unwrap();
                values.iter().for_each(|v| h.record(*v));
            }
            r
        }
    );
    entry!(
        "metrics",
        MetricsRs::new(),
        |_: &MetricsRs, v: &'static str| {
            metrics::counter!("mem_total", "model" => v, "tenant" => "pro").increment(1)
        },
        |n: usize, values: &[f64]| {
            for i in 0..n {
                let h = metrics::histogram!("mem_h", "k" => i.to_string());
                values.iter().for_each(|v| h.record(*v));
            }
        }
    );
    entry!(
        "prometheus",
        Tikv::new(),
        |l: &Tikv, v: &'static str| l.family.with_label_values(&[v, "pro"]).inc(),
        |n: usize, values: &[f64]| {
            let h = prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new("m", "m").buckets(BUCKETS.to_vec()),
                &["k"],
            )
            .unwrap();
            for i in 0..n {
                let s = h.with_label_values(&[i.to_string().as_str()]);
                values.iter().for_each(|v| s.observe(*v));
            }
            h
        }
    );
    entry!(
        "prometheus-client",
        PromClient::new(),
        |l: &PromClient, v: &'static str| l
            .family
            .get_or_create(&[("model", v), ("tenant", "pro")])
            .inc(),
        |n: usize, values: &[f64]| {
            use prometheus_client::metrics::family::Family;
            use prometheus_client::metrics::histogram::Histogram;
            let f: Family<[(&'static str, String); 1], Histogram, _> =
                Family::new_with_constructor(|| Histogram::new(BUCKETS));
            for i in 0..n {
                let s = f.get_or_create(&[("k", i.to_string())]);
                values.iter().for_each(|v| s.observe(*v));
            }
            f
        }
    );
    entry!(
        "otel-sdk",
        Otel::new(),
        |l: &Otel, v: &'static str| {
            use opentelemetry::KeyValue;
            l.counter.add(
                1,
                &[KeyValue::new("model", v), KeyValue::new("tenant", "pro")],
            )
        },
        |n: usize, values: &[f64]| {
            use opentelemetry::KeyValue;
            let o = Otel::new();
            for i in 0..n {
                let labels = [KeyValue::new("k", i.to_string())];
                values.iter().for_each(|v| o.histogram.record(*v, &labels));
            }
            o
        }
    );
    entry!(
        "measured",
        Measured::new(),
        |l: &Measured, v: &'static str| l.family.inc(Pair {
            model: v,
            tenant: "pro"
        }),
        |n: usize, values: &[f64]| {
            let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let f: measured::HistogramVec<PairSet, 14> =
                measured::HistogramVec::with_label_set_and_metadata(
                    PairSet::default(),
                    measured::metric::histogram::Thresholds::with_buckets(BUCKETS),
                );
            for k in &keys {
                for v in values {
                    f.observe(
                        Pair {
                            model: k,
                            tenant: "x",
                        },
                        *v,
                    );
                }
            }
            f
        }
    );
    let bound = OtelBound::new();
    report.insert("otel-sdk-bound".into(), measure_library(&bound));
    serde_json::Value::Object(report)
}

// ---------------------------------------------------------------- exemplars and native histograms

/// One histogram record with and without an exemplar (beluga; the
/// exemplar's slot is claimed without a lock and its clock read is part of
/// the cost).
fn exemplars(c: &mut Criterion) {
    use beluga_metrics::{Buckets, Exemplar, Opts, Registry};
    let registry = Registry::new();
    let h = registry
        .histogram(
            Opts::new("exemplar_bench_seconds", "Latency."),
            Buckets::new(BUCKETS),
        )
        .expect("histogram");
    let values: Vec<f64> = (0..1024).map(|i| 0.005 * 1.0069f64.powi(i)).collect();
    let exemplar = Exemplar::new([0x4b; 16], [0x1f; 8]);
    let mut group = c.benchmark_group("peers/histogram_exemplar/1_threads");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("beluga/without", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            h.record(black_box(values[i & 1023]))
        })
    });
    group.bench_function("beluga/with", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            h.record_with_exemplar(black_box(values[i & 1023]), &exemplar)
        })
    });
    group.finish();

    // What keeping native buckets at record time costs the peer that does
    // (beluga derives them from its HDR counts when read).
    use prometheus_client::metrics::histogram::{Histogram, NativeHistogramConfig};
    let peer = Histogram::new_classic_and_native(BUCKETS, NativeHistogramConfig::with_schema(3));
    let mut group = c.benchmark_group("peers/histogram_record_native/1_threads");
    group.throughput(Throughput::Elements(1));
    group.bench_function("beluga", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            h.record(black_box(values[i & 1023]))
        })
    });
    group.bench_function("prometheus-client", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            peer.observe(black_box(values[i & 1023]))
        })
    });
    group.finish();
}

/// Encoding 100 histogram series (1,000 latencies each over 1 ms - 1 s) in
/// the Prometheus protobuf format with native histograms: beluga's encoder
/// (classic buckets plus schema-3 native buckets from the HDR counts)
/// against `prometheus-client`'s (`new_classic_and_native`, schema 3).
fn native_encoding(c: &mut Criterion) {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::{Histogram, NativeHistogramConfig};
    const SERIES: usize = 100;
    let latency = |k: usize| 0.001 * 1000f64.powf((k as f64 * 0.618_034).fract());

    let registry = beluga_metrics::Registry::new();
    let family = registry
        .histogram_family(
            beluga_metrics::Opts::new("native_bench_seconds", "Latency.").labels(["endpoint"]),
            beluga_metrics::Buckets::new(BUCKETS),
        )
        .expect("family");
    let mut peer_registry = prometheus_client::registry::Registry::default();
    let peer: Family<Vec<(String, String)>, Histogram, _> = Family::new_with_constructor(|| {
        Histogram::new_classic_and_native(BUCKETS, NativeHistogramConfig::with_schema(3))
    });
    peer_registry.register("native_bench_seconds", "Latency.", peer.clone());
    for s in 0..SERIES {
        let endpoint = format!("/api/v1/endpoint/{s}");
        let ours = family.with_labels(&[endpoint.as_str()]).expect("series");
        let theirs = peer.get_or_create_owned(&vec![("endpoint".to_string(), endpoint)]);
        for k in 0..1_000 {
            ours.record(latency(s * 1_000 + k));
            theirs.observe(latency(s * 1_000 + k));
        }
    }
    let mut encoder = beluga_metrics::Encoder::new();
    let mut group = c.benchmark_group(format!("peers/encode_protobuf_native/{SERIES}_series"));
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("beluga", |b| {
        b.iter(|| {
            black_box(
                encoder
                    .encode_exposition(&registry, beluga_metrics::Exposition::Protobuf)
                    .len(),
            )
        })
    });
    group.bench_function("prometheus-client", |b| {
        b.iter(|| {
            black_box(
                prometheus_client::encoding::prometheus_protobuf::encode_to_vec(&peer_registry)
                    .expect("encodes")
                    .len(),
            )
        })
    });
    group.finish();
}

// ---------------------------------------------------------------- the `metrics` facade

/// The same `metrics` macro calls through beluga's recorder and through
/// `metrics-exporter-prometheus`'s, each installed as the thread's local
/// recorder: no labels, two literal labels, two owned labels (60 label
/// sets) and a histogram record.
fn facade(c: &mut Criterion) {
    let registry = beluga_metrics::Registry::new();
    let beluga = beluga_metrics_facade::BelugaRecorder::builder()
        .registry(&registry)
        .build()
        .expect("beluga recorder");
    let peer = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    // `metrics`' own no-op recorder: what the macro call costs before any
    // recorder does anything (building the key, owned labels included).
    let floor = metrics::NoopRecorder;
    let recorders: [(&str, &(dyn metrics::Recorder + Sync)); 3] = [
        ("beluga", &beluga),
        ("metrics-exporter-prometheus", &peer),
        ("noop-recorder", &floor),
    ];
    let mut pairs = Vec::new();
    for m in MODELS {
        for t in TENANTS {
            pairs.push((m, t));
        }
    }
    for i in 0..4 {
        pairs.push(pairs[i * 13]);
    }
    let values: Vec<f64> = (0..1024).map(|i| 0.005 * 1.0069f64.powi(i)).collect();
    let rows: [(&str, &(dyn Fn(u64) + Sync)); 4] = [
        ("no_labels", &|_| {
            metrics::counter!("facade_plain").increment(1)
        }),
        ("static_labels", &|_| {
            metrics::counter!("facade_static", "model" => "gpt-4o", "tenant" => "free").increment(1)
        }),
        ("owned_labels", &|i| {
            let (m, t) = pairs[(i as usize * 7) & 63];
            metrics::counter!("facade_owned", "model" => m.to_owned(), "tenant" => t.to_owned())
                .increment(1)
        }),
        ("histogram", &|i| {
            metrics::histogram!("facade_histogram").record(values[(i & 1023) as usize])
        }),
    ];
    for threads in [1, cores()] {
        for (row, op) in rows {
            let mut group =
                c.benchmark_group(format!("peers/metrics_facade/{row}/{threads}_threads"));
            group.throughput(Throughput::Elements(1));
            for (name, recorder) in recorders {
                group.bench_function(name, |b| {
                    b.iter_custom(|iters| {
                        // The recorder is each thread's local one, set once
                        // outside the timed loop.
                        beluga_benches::contended_with(
                            threads,
                            iters,
                            || metrics::set_default_local_recorder(recorder),
                            op,
                        )
                    })
                });
            }
            group.finish();
        }
    }
}

fn main() {
    let rounds = || {
        std::env::var("BELUGA_COLD_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(500)
    };
    if let Ok(mib) = std::env::var("BELUGA_COLD_ALTERNATING") {
        match mib.parse() {
            Ok(mib) if mib > 0 => cold_alternating(std::time::Duration::ZERO, mib, rounds()),
            _ => eprintln!("BELUGA_COLD_ALTERNATING takes a buffer size in MiB (64 or 4)"),
        }
        return;
    }
    if let Ok(ms) = std::env::var("BELUGA_PACED_MS") {
        match ms.parse::<u64>() {
            Ok(ms) if (1..=10_000).contains(&ms) => {
                cold_alternating(std::time::Duration::from_millis(ms), 0, rounds())
            }
            _ => eprintln!("BELUGA_PACED_MS takes a sleep in milliseconds, 1 to 10000 (e.g. 10)"),
        }
        return;
    }
    let report = memory_report();
    let dir = beluga_benches::output_directory();
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(
        dir.join("peers-memory.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    let beluga_allocs = &report["beluga"]["allocations_per_op"];
    for op in ["counter_inc", "label_lookup_inc", "histogram_record"] {
        assert_eq!(
            beluga_allocs[op].as_f64(),
            Some(0.0),
            "beluga allocates on {op}"
        );
    }

    COUNTING.store(false, Relaxed);
    let mut c = beluga_benches::criterion();
    recording(&mut c, &Beluga::new());
    recording(&mut c, &MetricsRs::new());
    recording(&mut c, &Tikv::new());
    recording(&mut c, &PromClient::new());
    recording(&mut c, &Otel::new());
    recording(&mut c, &OtelBound::new());
    recording(&mut c, &Measured::new());
    cold(&mut c, &Beluga::new());
    cold(&mut c, &MetricsRs::new());
    cold(&mut c, &Tikv::new());
    cold(&mut c, &PromClient::new());
    cold(&mut c, &Otel::new());
    cold(&mut c, &Measured::new());
    high_cardinality(&mut c, Beluga::with_limit);
    high_cardinality(&mut c, |_| MetricsRs::new());
    high_cardinality(&mut c, |_| Tikv::new());
    high_cardinality(&mut c, |_| PromClient::new());
    high_cardinality(&mut c, |n| Otel::with_limit(Some(n)));
    high_cardinality(&mut c, |_| Measured::new());
    facade(&mut c);
    exemplars(&mut c);
    native_encoding(&mut c);
    encoding::<Beluga>(&mut c, "beluga");
    encoding::<MetricsRs>(&mut c, "metrics");
    encoding::<Tikv>(&mut c, "prometheus");
    encoding::<PromClient>(&mut c, "prometheus-client");
    encoding::<Measured>(&mut c, "measured");
    c.final_summary();
}
