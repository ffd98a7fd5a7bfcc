//! The recorder's mapping from `metrics` keys to beluga series, its typed
//! refusals, and its per-thread cache, through a local recorder.

use beluga_metrics::{Buckets, Format, Registry};
use beluga_metrics_facade::{BelugaRecorder, Matcher, REJECTIONS_METRIC};

fn setup() -> (Registry, BelugaRecorder) {
    let registry = Registry::new();
    let recorder = BelugaRecorder::builder()
        .registry(&registry)
        .buckets_for_metric(
            Matcher::Suffix("_tokens".into()),
            Buckets::new([100.0, 1000.0]),
        )
        .build()
        .expect("recorder");
    (registry, recorder)
}

fn text(registry: &Registry) -> String {
    registry.encode(Format::PrometheusText)
}

fn rejected(registry: &Registry, reason: &str) -> u64 {
    let needle = format!("{REJECTIONS_METRIC}{{reason=\"{reason}\"}} ");
    text(registry)
        .lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .map_or(0, |v| v.parse().expect("a count"))
}

#[test]
fn label_keys_in_any_order_reach_the_same_series() {
    let (registry, recorder) = setup();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("calls", "model" => "gpt", "tenant" => "free").increment(1);
        metrics::counter!("calls", "tenant" => "free", "model" => "gpt").increment(2);
        let tenant = String::from("pro");
        metrics::counter!("calls", "tenant" => tenant, "model" => "gpt").increment(4);
    });
    let text = text(&registry);
    assert!(
        text.contains("calls_total{model=\"gpt\",tenant=\"free\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("calls_total{model=\"gpt\",tenant=\"pro\"} 4\n"),
        "{text}"
    );
}

#[test]
fn calls_the_family_cannot_take_are_counted_and_never_panic() {
    let (registry, recorder) = setup();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("steps", "agent" => "a").increment(1);
        metrics::counter!("steps", "tool" => "search").increment(1); // other key
        metrics::counter!("steps").increment(1); // one fewer
        metrics::counter!("steps", "agent" => "a", "tool" => "x").increment(1); // one more
        metrics::counter!("twice", "a" => "1", "a" => "2").increment(1); // repeated key
        metrics::gauge!("steps").set(1.0); // a counter's name as a gauge
        metrics::gauge!("queue_total").set(1.0); // `_total` is for counters
        metrics::counter!("long", "v" => "x".repeat(100_000)).increment(1);
    });
    assert_eq!(rejected(&registry, "label_names"), 4);
    assert_eq!(rejected(&registry, "conflict"), 1);
    assert_eq!(rejected(&registry, "invalid_name"), 1);
    assert_eq!(rejected(&registry, "label_value"), 1);
    let text = text(&registry);
    assert!(text.contains("steps_total{agent=\"a\"} 1\n"), "{text}");
}

#[test]
fn descriptions_set_help_and_unit_before_first_use_and_late_ones_are_counted() {
    let (registry, recorder) = setup();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_histogram!(
            "llm.latency_seconds",
            metrics::Unit::Seconds,
            "LLM latency."
        );
        metrics::describe_gauge!("cache_size", metrics::Unit::Bytes, "Cache size."); // no suffix
        metrics::histogram!("llm.latency_seconds").record(0.2);
        metrics::gauge!("cache_size").set(10.0);
        metrics::describe_gauge!("cache_size", "Another text.");
        metrics::describe_gauge!("cache_size", "Cache size."); // the same text: fine
    });
    let om = registry.encode(Format::OpenMetrics);
    assert!(om.contains("# UNIT llm_latency_seconds seconds\n"), "{om}");
    assert!(
        om.contains("# HELP llm_latency_seconds LLM latency.\n"),
        "{om}"
    );
    assert!(om.contains("# HELP cache_size Cache size.\n"), "{om}");
    assert!(!om.contains("# UNIT cache_size"), "{om}");
    assert_eq!(rejected(&registry, "late_description"), 1);
}

#[test]
fn histogram_buckets_follow_the_first_matching_rule() {
    let (registry, recorder) = setup();
    metrics::with_local_recorder(&recorder, || {
        metrics::histogram!("prompt_tokens").record(150.0);
        metrics::histogram!("step_seconds").record(0.3);
    });
    let text = text(&registry);
    assert!(
        text.contains("prompt_tokens_bucket{le=\"1000.0\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains("prompt_tokens_bucket{le=\"0.005\"}"),
        "{text}"
    );
    assert!(
        text.contains("step_seconds_bucket{le=\"0.5\"} 1\n"),
        "{text}"
    );
}

#[test]
fn gauges_and_absolute_counters_follow_the_metrics_api() {
    let (registry, recorder) = setup();
    metrics::with_local_recorder(&recorder, || {
        let g = metrics::gauge!("inflight");
        g.set(5.0);
        g.increment(2.5);
        g.decrement(1.0);
        let c = metrics::counter!("mirrored");
        c.absolute(10);
        c.absolute(7); // a counter never goes down
        c.absolute(12);
        metrics::histogram!("h").record_many(0.1, 3);
    });
    let text = text(&registry);
    assert!(text.contains("inflight 6.5\n"), "{text}");
    assert!(text.contains("mirrored_total 12\n"), "{text}");
    assert!(text.contains("h_count 3\n"), "{text}");
}

#[test]
fn two_recorders_on_one_thread_never_share_handles() {
    let (a_registry, a) = setup();
    let (b_registry, b) = setup();
    for _ in 0..3 {
        metrics::with_local_recorder(&a, || metrics::counter!("same_key").increment(1));
        metrics::with_local_recorder(&b, || metrics::counter!("same_key").increment(10));
    }
    assert!(text(&a_registry).contains("same_key_total 3\n"));
    assert!(text(&b_registry).contains("same_key_total 30\n"));
}

#[test]
fn many_threads_and_more_keys_than_a_thread_caches_lose_nothing() {
    let registry = Registry::with_cardinality_limit(10_000);
    let recorder = BelugaRecorder::builder()
        .registry(&registry)
        .build()
        .expect("recorder");
    // 5,000 keys per thread: past the per-thread cache's 4,096 entries, so
    // every thread's cache is emptied and refilled while counting.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                metrics::with_local_recorder(&recorder, || {
                    for _round in 0..2 {
                        for i in 0..5_000u32 {
                            metrics::counter!("wide", "k" => (i % 1_000).to_string(), "p" => (i / 1_000).to_string())
                                .increment(1);
                        }
                    }
                })
            });
        }
    });
    let text = text(&registry);
    let total: u64 = text
        .lines()
        .filter(|l| l.starts_with("wide_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 4 * 2 * 5_000);
    assert!(text.contains("wide_total{k=\"7\",p=\"3\"} 8\n"));
}

/// Names that differ as written but are exposed alike never merge: the
/// first creates the family, the other records nothing and is counted.
#[test]
fn names_that_sanitize_alike_are_a_counted_collision_not_a_merge() {
    let (registry, recorder) = setup();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("http.requests").increment(1);
        metrics::counter!("http-requests").increment(10);
        metrics::counter!("http_requests").increment(100);
        metrics::counter!("http.requests").increment(2);
    });
    let text = text(&registry);
    assert!(text.contains("http_requests_total 3\n"), "{text}");
    assert_eq!(rejected(&registry, "name_collision"), 2);
}

/// 100,000 distinct names (a name built from unbounded input) make at most
/// `max_families` families; the rest are counted, and names in use keep
/// recording.
#[test]
fn distinct_names_past_the_family_limit_are_counted_not_kept() {
    let (registry, recorder) = setup();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..100_000 {
            metrics::counter!(format!("route_{i}")).increment(1);
        }
        metrics::counter!("route_0").increment(1);
    });
    let text = text(&registry);
    let families = text
        .lines()
        .filter(|l| l.starts_with("# TYPE route_"))
        .count();
    assert_eq!(families, beluga_metrics_facade::DEFAULT_MAX_FAMILIES);
    assert!(text.contains("route_0_total 2\n"));
    assert!(!text.contains("route_99999_total"));
    assert_eq!(
        rejected(&registry, "family_limit"),
        100_000 - beluga_metrics_facade::DEFAULT_MAX_FAMILIES as u64
    );
}
