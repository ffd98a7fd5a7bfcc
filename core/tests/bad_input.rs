//! One test per class of bad input: each gets its typed error (or its
//! documented outcome) and nothing already recorded is lost.

use beluga_metrics::{
    Buckets, Format, LabelError, Opts, Registry, RegistryError, Unit, ValueError,
};
use beluga_test_support::promtool_check;

#[test]
fn invalid_metric_names_are_refused() {
    let r = Registry::new();
    for name in [
        "",
        "9lives",
        "agent-calls",
        "agent calls",
        "ünïcode",
        "__internal",
        "a:b",
    ] {
        let err = r.counter(Opts::new(name, "x")).err();
        assert!(
            matches!(err, Some(RegistryError::InvalidMetricName { .. })),
            "{name:?} gave {err:?}"
        );
    }
    // `_total` belongs to counters only.
    let err = r.gauge(Opts::new("queue_total", "x")).unwrap_err();
    assert!(matches!(err, RegistryError::InvalidMetricName { .. }));
    assert!(err.to_string().contains("_total"));
}

#[test]
fn invalid_and_reserved_label_names_are_refused() {
    let r = Registry::new();
    for label in [
        "",
        "1st",
        "model-name",
        "__name__",
        "quantile",
        "otel_metric_overflow",
    ] {
        let err = r
            .counter_family(Opts::new("c_total", "x").labels([label]))
            .err();
        assert!(
            matches!(err, Some(RegistryError::InvalidLabelName { .. })),
            "{label:?} gave {err:?}"
        );
    }
    let err = r
        .histogram_family(Opts::new("h", "x").labels(["le"]), Buckets::default())
        .unwrap_err();
    assert!(matches!(err, RegistryError::InvalidLabelName { ref label, .. } if label == "le"));
    let err = r
        .counter_family(Opts::new("d_total", "x").labels(["model", "model"]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::InvalidLabelName { .. }));
    // `le` is fine outside histograms.
    assert!(r.gauge_family(Opts::new("g", "x").labels(["le"])).is_ok());
}

#[test]
fn reuse_with_another_definition_is_a_conflict() {
    let r = Registry::new();
    let c = r
        .counter_family(Opts::new("calls_total", "Calls.").labels(["model"]))
        .unwrap();
    c.with_labels(&["a"]).unwrap().inc();
    let cases = [
        (r.gauge(Opts::new("calls", "Calls.")).err(), "type"),
        (
            r.counter_family(Opts::new("calls_total", "Other help.").labels(["model"]))
                .err(),
            "help text",
        ),
        (
            r.counter_family(Opts::new("calls_total", "Calls.").labels(["tenant"]))
                .err(),
            "label names",
        ),
        (
            r.float_counter_family(Opts::new("calls_total", "Calls.").labels(["model"]))
                .err(),
            "value type (integer vs floating-point counter)",
        ),
    ];
    for (err, what) in cases {
        assert_eq!(
            err,
            Some(RegistryError::Conflict {
                name: if what == "type" {
                    "calls"
                } else {
                    "calls_total"
                }
                .into(),
                differs_in: what
            })
        );
    }
    let h = r
        .histogram(
            Opts::new("lat_seconds", "L.").unit(Unit::SECONDS),
            Buckets::new([1.0]),
        )
        .unwrap();
    let err = r
        .histogram(
            Opts::new("lat_seconds", "L.").unit(Unit::SECONDS),
            Buckets::new([2.0]),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        RegistryError::Conflict {
            differs_in: "bucket boundaries",
            ..
        }
    ));
    drop(h);
    // Nothing recorded was lost by the refused registrations.
    assert_eq!(c.with_labels(&["a"]).unwrap().get(), 1);
}

#[test]
fn names_that_collide_in_the_exposition_are_refused_at_registration() {
    let r = Registry::new();
    r.histogram(Opts::new("latency", "L."), Buckets::default())
        .unwrap();
    for clash in ["latency_count", "latency_sum", "latency_bucket"] {
        let err = r.counter(Opts::new(clash, "x")).unwrap_err();
        assert!(
            matches!(err, RegistryError::NameCollision { ref existing, .. } if existing == "latency"),
            "{clash}: {err:?}"
        );
    }
    r.counter(Opts::new("x", "counter x")).unwrap();
    // Counter `x` owns the family name `x` and exposes `x_total`/`x_created`.
    let err = r
        .histogram(Opts::new("x", "x"), Buckets::default())
        .unwrap_err();
    assert!(matches!(
        err,
        RegistryError::Conflict {
            differs_in: "type",
            ..
        }
    ));
    let err = r.gauge(Opts::new("x_created", "x")).unwrap_err();
    assert!(matches!(err, RegistryError::NameCollision { .. }));
    // The self-metrics' names are taken too.
    let err = r
        .counter(Opts::new("beluga_cardinality_overflow_total", "x"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::NameCollision { .. }));
    let text = r.encode(Format::PrometheusText);
    assert_eq!(
        text.matches("# TYPE latency ").count(),
        1,
        "one family per name"
    );
}

#[test]
fn unit_must_be_the_name_suffix() {
    let r = Registry::new();
    let err = r
        .histogram(
            Opts::new("latency", "L.").unit(Unit::SECONDS),
            Buckets::default(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::UnitNotInName {
            name: "latency".into(),
            expected_suffix: "_seconds".into()
        }
    );
    assert!(r
        .counter(Opts::new("sent_bytes_total", "S.").unit(Unit::BYTES))
        .is_ok());
}

#[test]
fn bad_buckets_are_refused() {
    let r = Registry::new();
    for bounds in [
        vec![1.0, 1.0],
        vec![2.0, 1.0],
        vec![f64::NAN],
        vec![0.5, f64::INFINITY],
        vec![1.0, 1e308],
        vec![1e-300],
        vec![-1e301, 0.0],
    ] {
        let err = r
            .histogram(Opts::new("h", "h"), Buckets::new(bounds.clone()))
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::InvalidBuckets { .. }),
            "{bounds:?}"
        );
    }
}

#[test]
fn labels_on_an_unlabelled_constructor_are_refused() {
    let err = Registry::new()
        .counter(Opts::new("c_total", "c").labels(["a"]))
        .unwrap_err();
    assert!(matches!(err, RegistryError::UnexpectedLabels { .. }));
}

#[test]
fn label_count_mismatch_is_an_error_not_a_panic() {
    let r = Registry::new();
    let f = r
        .counter_family(Opts::new("c_total", "c").labels(["model", "tenant"]))
        .unwrap();
    let handle = f.with_labels(&["gpt-4o", "free"]).unwrap();
    handle.inc();
    assert_eq!(
        f.with_labels(&["gpt-4o"]).err(),
        Some(LabelError::CountMismatch {
            metric: "c".into(),
            expected: 2,
            got: 1
        })
    );
    assert!(matches!(
        f.with_labels(&["a", "b", "c"]),
        Err(LabelError::CountMismatch { got: 3, .. })
    ));
    assert!(matches!(
        f.remove(&["a"]),
        Err(LabelError::CountMismatch { .. })
    ));
    assert!(matches!(
        f.with_label_pairs(&[("model", "a")]),
        Err(LabelError::MissingLabel { ref label, .. }) if label == "tenant"
    ));
    assert!(matches!(
        f.with_label_pairs(&[("model", "a"), ("tenant", "b"), ("user", "c")]),
        Err(LabelError::UnknownLabel { ref label, .. }) if label == "user"
    ));
    assert!(matches!(
        f.with_label_pairs(&[("model", "a"), ("model", "b")]),
        Err(LabelError::DuplicateLabel { .. })
    ));
    assert_eq!(handle.get(), 1, "the good series is untouched");
}

#[test]
fn label_values_that_differ_only_in_boundaries_never_merge() {
    let r = Registry::new();
    let f = r
        .counter_family(Opts::new("c_total", "c").labels(["a", "b"]))
        .unwrap();
    f.with_labels(&["ab", "c"]).unwrap().inc();
    f.with_labels(&["a", "bc"]).unwrap().add(10);
    assert_eq!(f.len(), 2);
    assert_eq!(f.with_labels(&["ab", "c"]).unwrap().get(), 1);
    assert_eq!(f.with_labels(&["a", "bc"]).unwrap().get(), 10);
}

#[test]
fn nan_and_negative_values_are_refused_and_counted() {
    let r = Registry::new();
    let h = r
        .histogram(Opts::new("h", "h"), Buckets::new([1.0]))
        .unwrap();
    h.record(0.5);
    h.record(f64::NAN);
    assert_eq!(h.try_record(f64::NAN), Err(ValueError::NaN));
    let cost = r
        .float_counter(Opts::new("cost_usd_total", "c").unit(Unit::USD))
        .unwrap();
    cost.add(1.5);
    cost.add(-1.0);
    cost.add(f64::INFINITY);
    cost.add(f64::NAN);
    assert_eq!(cost.try_add(-2.0), Err(ValueError::NotMonotonic));
    assert_eq!(
        (h.get().count(), cost.get()),
        (1, 1.5),
        "nothing valid was lost"
    );
    let text = r.encode(Format::PrometheusText);
    assert!(
        text.contains("beluga_invalid_values_total{metric=\"h\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("beluga_invalid_values_total{metric=\"cost_usd\"} 3\n"),
        "{text}"
    );
    // A gauge may legitimately be NaN.
    let g = r.gauge(Opts::new("g", "g")).unwrap();
    g.set(f64::NAN);
    assert!(g.get().is_nan());
}

#[test]
fn cardinality_flood_goes_to_the_overflow_series() {
    let r = Registry::new();
    let f = r
        .counter_family(
            Opts::new("by_user_total", "Do not do this.")
                .labels(["user"])
                .cardinality_limit(10),
        )
        .unwrap();
    for i in 0..10_000 {
        f.with_labels(&[format!("user-{i}")]).unwrap().inc();
    }
    assert_eq!(f.len(), 10);
    assert_eq!(f.refused_label_sets(), 9_990);
    // Known label sets keep their own series after the limit.
    f.with_labels(&["user-0"]).unwrap().inc();
    let text = r.encode(Format::PrometheusText);
    assert!(text.contains("by_user_total{user=\"user-0\"} 2\n"));
    assert!(text.contains("by_user_total{otel_metric_overflow=\"true\"} 9990\n"));
    assert!(text.contains("beluga_cardinality_overflow_total{metric=\"by_user\"} 9990\n"));
    // Removing a series frees room for a new one.
    assert!(f.remove(&["user-3"]).unwrap());
    f.with_labels(&["newcomer"]).unwrap().inc();
    assert!(r
        .encode(Format::PrometheusText)
        .contains("by_user_total{user=\"newcomer\"} 1\n"));
    assert_eq!(f.len(), 10);
}

#[test]
fn default_cardinality_limit_is_2000() {
    let r = Registry::new();
    let f = r.gauge_family(Opts::new("g", "g").labels(["k"])).unwrap();
    assert_eq!(f.cardinality_limit(), 2000);
    assert_eq!(beluga_metrics::DEFAULT_CARDINALITY_LIMIT, 2000);
}

#[test]
fn errors_explain_what_to_do() {
    let err = Registry::new()
        .counter(Opts::new("bad-name", "x"))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("bad-name") && message.contains("use letters"),
        "{message}"
    );
}

#[test]
fn histogram_extremes_keep_the_exposition_valid() {
    let r = Registry::new();
    let h = r
        .histogram(Opts::new("h", "h"), Buckets::new([-1.0, 0.0, 1e300]))
        .unwrap();
    h.record(f64::INFINITY);
    h.record(f64::NEG_INFINITY);
    assert_eq!(h.try_record(f64::INFINITY), Err(ValueError::Infinite));
    for v in [f64::MAX, f64::MAX, -f64::MAX, -5.0, 1e-320, 0.0] {
        h.record(v);
    }
    let value = h.get();
    assert_eq!(
        value.count(),
        6,
        "finite values all count; infinities do not"
    );
    assert!(value.sum().is_finite(), "sum {}", value.sum());
    let q = h.quantiles();
    assert!(q.quantile(0.5).is_finite() && q.quantile(1.0).is_finite());
    let text = r.encode(Format::OpenMetrics);
    assert!(
        text.contains("beluga_invalid_values_total{metric=\"h\"} 2\n"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| !l.starts_with('#') && l.ends_with("NaN")),
        "{text}"
    );
    // MAX + MAX overflowed: the sum saturates at f64::MAX and stays there.
    assert!(text.contains("h_sum 1.7976931348623157e308\n"), "{text}");
    promtool_check(&r.encode(Format::PrometheusText));
}

#[test]
fn counters_never_go_down() {
    let r = Registry::new();
    let c = r.counter(Opts::new("c_total", "c")).unwrap();
    c.add(u64::MAX);
    c.inc();
    c.add(7);
    assert_eq!(c.get(), u64::MAX);
    let text = r.encode(Format::PrometheusText);
    assert!(text.contains(&format!("c_total {}\n", u64::MAX)), "{text}");
    assert!(
        text.contains("beluga_saturated_increments_total "),
        "{text}"
    );

    let f = r.float_counter(Opts::new("f_total", "f")).unwrap();
    f.add(f64::MAX);
    f.add(f64::MAX);
    assert_eq!(f.try_add(1e300), Err(ValueError::Overflow));
    assert_eq!(f.get(), f64::MAX);
    // Threads beyond the owned cells go through the shared cell: the same rules.
    std::thread::scope(|s| {
        for _ in 0..12 {
            s.spawn(|| {
                c.add(u64::MAX);
                f.add(f64::MAX);
            });
        }
    });
    assert_eq!((c.get(), f.get()), (u64::MAX, f64::MAX));
    let text = r.encode(Format::PrometheusText);
    assert!(!text.contains("+Inf\n"), "{text}");
}

#[test]
fn names_and_label_values_have_limits() {
    let r = Registry::new();
    for name in ["_", "__", "___total"] {
        assert!(
            matches!(
                r.counter(Opts::new(name, "x")),
                Err(RegistryError::InvalidMetricName { .. })
            ),
            "{name}"
        );
    }
    let long = "a".repeat(256);
    assert!(r.gauge(Opts::new(long.as_str(), "x")).is_err());
    assert!(r.gauge(Opts::new("a".repeat(255), "x")).is_ok());
    assert!(r
        .counter_family(Opts::new("l_total", "l").labels([long.as_str()]))
        .is_err());

    let family = r
        .counter_family(Opts::new("calls_total", "c").labels(["tenant"]))
        .unwrap();
    let huge = "t".repeat(1 << 20);
    let err = family.with_labels(&[huge.as_str()]).unwrap_err();
    assert!(
        matches!(err, LabelError::ValueTooLong { bytes, .. } if bytes == 1 << 20),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("more than the 1024 allowed"),
        "{err}"
    );
    let at_limit = "t".repeat(1024);
    family.with_labels(&[at_limit.as_str()]).unwrap().inc();
    assert_eq!(family.len(), 1);
    let text = r.encode(Format::PrometheusText);
    assert!(
        text.contains("beluga_invalid_values_total{metric=\"calls\"} 1\n"),
        "{text}"
    );
}
