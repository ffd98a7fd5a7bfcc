//! Recording and encoding costs of the core engine.

use std::hint::black_box;

use beluga_benches::{contended, cores};
use beluga_metrics::{Buckets, Encoder, Format, Opts, Registry, Unit};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Latencies spread over the GenAI duration buckets, so the bucket search
/// and the HDR index do real work.
fn latencies() -> Vec<f64> {
    (0..1024).map(|i| 0.005 * 1.0069f64.powi(i)).collect()
}

fn counter(c: &mut Criterion) {
    let registry = Registry::new();
    let counter = registry.counter(Opts::new("bench_total", "b")).unwrap();
    let mut group = c.benchmark_group("counter_inc");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_thread", |b| b.iter(|| black_box(&counter).inc()));
    let threads = cores();
    group.bench_function(format!("{threads}_threads"), |b| {
        b.iter_custom(|iters| contended(threads, iters, |_| black_box(&counter).inc()))
    });
    group.finish();
}

fn label_lookup(c: &mut Criterion) {
    let registry = Registry::new();
    let family = registry
        .counter_family(Opts::new("bench_tokens_total", "b").labels(["model", "tenant"]))
        .unwrap();
    // A realistic family: 20 models x 3 tenants.
    for model in 0..20 {
        for tenant in ["free", "pro", "enterprise"] {
            family
                .with_labels(&[format!("model-{model}").as_str(), tenant])
                .unwrap();
        }
    }
    let threads = cores();
    let mut group = c.benchmark_group("label_lookup_inc");
    group.throughput(Throughput::Elements(1));
    // `with` lends the handle to a closure: the lookup-and-record path.
    group.bench_function("with/1_thread", |b| {
        b.iter(|| {
            family
                .with(black_box(&["model-7", "pro"]), |c| c.inc())
                .unwrap()
        })
    });
    group.bench_function(format!("with/{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            contended(threads, iters, |_| {
                family
                    .with(black_box(&["model-7", "pro"]), |c| c.inc())
                    .unwrap()
            })
        })
    });
    // `with_labels` returns an owned handle (a reference-count increment).
    group.bench_function("with_labels/1_thread", |b| {
        b.iter(|| {
            family
                .with_labels(black_box(&["model-7", "pro"]))
                .unwrap()
                .inc()
        })
    });
    group.bench_function(format!("with_labels/{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            contended(threads, iters, |_| {
                family
                    .with_labels(black_box(&["model-7", "pro"]))
                    .unwrap()
                    .inc()
            })
        })
    });
    group.finish();
}

fn histogram(c: &mut Criterion) {
    let registry = Registry::new();
    let histogram = registry
        .histogram(
            Opts::new("bench_seconds", "b").unit(Unit::SECONDS),
            Buckets::gen_ai_operation_duration(),
        )
        .unwrap();
    let values = latencies();
    let mut group = c.benchmark_group("histogram_record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_thread", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            histogram.record(black_box(values[i]));
        })
    });
    let threads = cores();
    group.bench_function(format!("{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            contended(threads, iters, |i| {
                histogram.record(black_box(values[(i & 1023) as usize]))
            })
        })
    });
    group.finish();
}

/// 10,000 labelled counter series plus 100 histogram series.
fn encode(c: &mut Criterion) {
    let registry = Registry::new();
    beluga_benches::counter_series(&registry, 10_000);
    let histograms = registry
        .histogram_family(
            Opts::new("bench_duration_seconds", "Durations.")
                .unit(Unit::SECONDS)
                .labels(["model"]),
            Buckets::gen_ai_operation_duration(),
        )
        .unwrap();
    let values = latencies();
    for model in 0..100 {
        let h = histograms.with_labels(&[format!("model-{model}")]).unwrap();
        for v in &values[..64] {
            h.record(*v);
        }
    }
    let mut encoder = Encoder::new();
    let mut group = c.benchmark_group("encode_10k_counters_100_histograms");
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let bytes = encoder.encode(&registry, format).len();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format!("{format:?}"), |b| {
            b.iter(|| black_box(encoder.encode(&registry, format).len()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = beluga_benches::criterion();
    targets = counter, label_lookup, histogram, encode
}
criterion_main!(benches);
