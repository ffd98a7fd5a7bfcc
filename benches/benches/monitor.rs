//! The monitor API: pre-resolved handles and the name-based calls, next to
//! the raw core operations each one performs.

use std::hint::black_box;
use std::time::Duration;

use beluga_metrics::{Buckets, Opts, Registry, Unit};
use beluga_monitor::{LlmCall, Monitor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn api_request(c: &mut Criterion) {
    let registry = Registry::new();
    let monitor = Monitor::builder().registry(&registry).build().unwrap();
    let metrics = monitor.metrics();
    let handle = metrics
        .api_request_handle("POST", "/v1/chat", 200)
        .unwrap()
        .unwrap();
    // The raw operations a request record performs: one counter increment,
    // one histogram record.
    let raw_counter = registry.counter(Opts::new("raw_total", "raw")).unwrap();
    let raw_histogram = registry
        .histogram(
            Opts::new("raw_seconds", "raw").unit(Unit::SECONDS),
            Buckets::prometheus_default(),
        )
        .unwrap();
    let d = Duration::from_millis(42);

    let mut group = c.benchmark_group("record_api_request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_core_ops", |b| {
        b.iter(|| {
            raw_counter.inc();
            raw_histogram.record_duration(black_box(d));
        })
    });
    group.bench_function("handle", |b| b.iter(|| handle.record(black_box(d))));
    group.bench_function("by_name", |b| {
        b.iter(|| {
            metrics
                .record_api_request(black_box("POST"), black_box("/v1/chat"), 200, black_box(d))
                .unwrap()
        })
    });
    group.finish();
}

fn llm_call(c: &mut Criterion) {
    let registry = Registry::new();
    let monitor = Monitor::builder().registry(&registry).build().unwrap();
    let metrics = monitor.metrics();
    let handle = metrics
        .llm_call_handle("chat", "openai", "gpt-4o", "free")
        .unwrap()
        .unwrap();
    // The raw operations of one LLM call: a duration record, two token
    // records, two token-counter adds.
    let raw_duration = registry
        .histogram(
            Opts::new("raw_seconds", "raw").unit(Unit::SECONDS),
            Buckets::gen_ai_operation_duration(),
        )
        .unwrap();
    let raw_usage = registry
        .histogram_family(
            Opts::new("raw_token_usage", "raw").labels(["t"]),
            Buckets::gen_ai_token_usage(),
        )
        .unwrap();
    let (raw_in, raw_out) = (
        raw_usage.with_labels(&["in"]).unwrap(),
        raw_usage.with_labels(&["out"]).unwrap(),
    );
    let raw_tokens = registry
        .counter_family(Opts::new("raw_tokens_total", "raw").labels(["t"]))
        .unwrap();
    let (raw_tin, raw_tout) = (
        raw_tokens.with_labels(&["in"]).unwrap(),
        raw_tokens.with_labels(&["out"]).unwrap(),
    );
    let d = Duration::from_millis(730);

    let mut group = c.benchmark_group("record_llm_call");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_core_ops", |b| {
        b.iter(|| {
            raw_duration.record_duration(black_box(d));
            raw_in.record(black_box(1500.0));
            raw_out.record(black_box(300.0));
            raw_tin.add(black_box(1500));
            raw_tout.add(black_box(300));
        })
    });
    group.bench_function("handle", |b| {
        b.iter(|| handle.record(black_box(d), black_box(1500), black_box(300)))
    });
    group.bench_function("by_name", |b| {
        b.iter(|| {
            metrics
                .record_llm_call(
                    &LlmCall::chat(black_box("openai"), black_box("gpt-4o"), black_box("free"))
                        .duration(black_box(d))
                        .tokens(black_box(1500), black_box(300)),
                )
                .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = beluga_benches::criterion();
    targets = api_request, llm_call
}
criterion_main!(benches);
