//! The per-thread lookup cache never changes what a lookup returns.

use beluga_metrics::{Format, Opts, Registry};

#[test]
fn removed_series_are_not_served_from_the_cache() {
    let r = Registry::new();
    let f = r
        .counter_family(Opts::new("c_total", "c").labels(["k"]))
        .unwrap();
    f.with(&["x"], |c| c.add(5)).unwrap();
    assert!(f.remove(&["x"]).unwrap());
    f.with(&["x"], |c| c.inc()).unwrap();
    assert_eq!(
        f.with_labels(&["x"]).unwrap().get(),
        1,
        "a fresh series after removal"
    );
    assert!(r
        .encode(Format::PrometheusText)
        .contains("c_total{k=\"x\"} 1\n"));
}

#[test]
fn nested_lookups_inside_the_closure_work() {
    let r = Registry::new();
    let a = r
        .counter_family(Opts::new("a_total", "a").labels(["k"]))
        .unwrap();
    let b = r
        .counter_family(Opts::new("b_total", "b").labels(["k"]))
        .unwrap();
    a.with(&["1"], |outer| {
        outer.inc();
        b.with(&["1"], |inner| inner.inc()).unwrap();
        a.with(&["1"], |same| same.inc()).unwrap();
    })
    .unwrap();
    assert_eq!(a.with_labels(&["1"]).unwrap().get(), 2);
    assert_eq!(b.with_labels(&["1"]).unwrap().get(), 1);
}

#[test]
fn many_label_sets_and_families_stay_exact_through_evictions() {
    let r = Registry::new();
    let families: Vec<_> = (0..4)
        .map(|i| {
            r.counter_family(Opts::new(format!("f{i}_total"), "f").labels(["a", "b"]))
                .unwrap()
        })
        .collect();
    // Under Miri (slow), still more label sets than the 256-entry cache holds.
    let (rounds, sets) = if cfg!(miri) { (2, 80) } else { (3, 300) };
    for round in 0..rounds {
        for (i, family) in families.iter().enumerate() {
            for j in 0..sets {
                let (a, b) = (format!("v{j}"), format!("{i}-{}", j % 7));
                family.with(&[&a, &b], |c| c.add(j + 1)).unwrap();
            }
        }
        for family in &families {
            assert_eq!(family.len() as u64, sets);
        }
        for (i, family) in families.iter().enumerate() {
            for j in 0..sets {
                let (a, b) = (format!("v{j}"), format!("{i}-{}", j % 7));
                assert_eq!(
                    family.with_labels(&[a, b]).unwrap().get(),
                    (j + 1) * (round + 1)
                );
            }
        }
    }
}

#[test]
fn same_values_in_different_families_do_not_mix() {
    let r = Registry::new();
    let counts = r
        .counter_family(Opts::new("n_total", "n").labels(["k"]))
        .unwrap();
    let gauges = r.gauge_family(Opts::new("g", "g").labels(["k"])).unwrap();
    counts.with(&["same"], |c| c.add(3)).unwrap();
    gauges.with(&["same"], |g| g.set(9.0)).unwrap();
    assert_eq!(counts.with(&["same"], |c| c.get()).unwrap(), 3);
    assert_eq!(gauges.with(&["same"], |g| g.get()).unwrap(), 9.0);
}

#[test]
fn refused_label_sets_are_counted_on_every_lookup() {
    let r = Registry::new();
    let f = r
        .counter_family(Opts::new("c_total", "c").labels(["k"]).cardinality_limit(1))
        .unwrap();
    f.with(&["kept"], |c| c.inc()).unwrap();
    for _ in 0..5 {
        f.with(&["refused"], |c| c.inc()).unwrap();
    }
    assert_eq!(f.refused_label_sets(), 5);
    assert!(r
        .encode(Format::PrometheusText)
        .contains("c_total{otel_metric_overflow=\"true\"} 5\n"));
}

#[test]
fn a_refused_value_equal_to_the_overflow_label_value_is_still_counted() {
    // The overflow series' own label value is "true": a lookup of "true"
    // past the limit once matched it in the cache and went uncounted.
    let r = Registry::new();
    let f = r
        .counter_family(Opts::new("c_total", "c").labels(["k"]).cardinality_limit(1))
        .unwrap();
    f.with(&["kept"], |c| c.inc()).unwrap();
    for _ in 0..5 {
        f.with(&["true"], |c| c.inc()).unwrap();
        f.with_labels(&["true"]).unwrap().inc();
    }
    assert_eq!(f.refused_label_sets(), 10);
    let text = r.encode(Format::PrometheusText);
    assert!(
        text.contains("c_total{otel_metric_overflow=\"true\"} 10\n"),
        "{text}"
    );
    assert!(
        text.contains("beluga_cardinality_overflow_total{metric=\"c\"} 10\n"),
        "{text}"
    );
}

#[test]
fn threads_share_series_through_their_own_caches() {
    const TURNS: u64 = if cfg!(miri) { 60 } else { 1000 };
    let r = Registry::new();
    let f = r
        .counter_family(Opts::new("c_total", "c").labels(["k"]))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || {
                for i in 0..TURNS {
                    f.with(&[if i % 2 == 0 { "even" } else { "odd" }], |c| c.inc())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(f.with(&["even"], |c| c.get()).unwrap(), 2 * TURNS);
    assert_eq!(f.with(&["odd"], |c| c.get()).unwrap(), 2 * TURNS);
}

/// Thousands of label sets, more than any thread's cache holds, looked up
/// by several threads in scrambled order while another thread keeps adding
/// new ones (so the family's index grows under the readers): every count is
/// exact.
#[test]
#[cfg_attr(
    miri,
    ignore = "under Miri lookups cannot use the lock-free index (no membarrier) and this takes minutes"
)]
fn high_cardinality_lookups_are_exact_while_the_index_grows() {
    let r = Registry::new();
    let f = r
        .counter_family(
            Opts::new("hc_total", "hc")
                .labels(["model", "tenant"])
                .cardinality_limit(20_000),
        )
        .unwrap();
    let (sets, passes, threads) = if cfg!(miri) {
        (300, 2, 2)
    } else {
        (5_000, 3, 4)
    };
    let label = |i: usize| (format!("model-{}", i / 50), format!("tenant-{}", i % 50));
    for i in 0..sets {
        let (m, t) = label(i);
        f.with(&[&m, &t], |_| ()).unwrap();
    }
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..passes {
                    for k in 0..sets {
                        let (m, t) = label((k * 7919) % sets);
                        f.with(&[&m, &t], |c| c.inc()).unwrap();
                    }
                }
            });
        }
        s.spawn(|| {
            for i in sets..sets * 2 {
                let (m, t) = label(i);
                f.with(&[&m, &t], |c| c.inc()).unwrap();
            }
        });
    });
    for i in 0..sets * 2 {
        let (m, t) = label(i);
        let expected = if i < sets {
            (passes * threads) as u64
        } else {
            1
        };
        assert_eq!(f.with_labels(&[&m, &t]).unwrap().get(), expected, "{m} {t}");
    }
}

/// Label sets removed and recreated while other threads look them (and
/// others) up: lookups never see a freed series, and label sets that were
/// never removed count exactly.
#[test]
#[cfg_attr(
    miri,
    ignore = "under Miri lookups cannot use the lock-free index (no membarrier) and this takes minutes"
)]
fn removals_under_concurrent_lookups_keep_the_others_exact() {
    let r = Registry::new();
    let f = r
        .counter_family(
            Opts::new("churn_total", "churn")
                .labels(["tenant"])
                .cardinality_limit(10_000),
        )
        .unwrap();
    let (sets, rounds) = (2_000, 50);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let lookups = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut k = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    k = (k + 7919) % sets;
                    // Even label sets are never removed.
                    let label = format!("t{}", k & !1);
                    f.with(&[&label], |c| c.inc()).unwrap();
                    let churned = format!("t{}", k | 1);
                    f.with(&[&churned], |c| c.inc()).unwrap();
                    lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        // Removals start once the readers are under way, and each round
        // waits for more lookups, so the two really overlap.
        let mut seen = 0;
        for round in 0..rounds {
            while lookups.load(std::sync::atomic::Ordering::Relaxed) < seen + 200 {
                std::thread::yield_now();
            }
            seen = lookups.load(std::sync::atomic::Ordering::Relaxed);
            for k in (1..sets).step_by(2).skip(round % 7).step_by(7) {
                f.remove(&[format!("t{k}")]).unwrap();
            }
            let _ = r.encode(Format::PrometheusText); // collects retired series
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let total: u64 = (0..sets)
        .step_by(2)
        .map(|k| f.with_labels(&[format!("t{k}")]).unwrap().get())
        .sum();
    let lookups = lookups.load(std::sync::atomic::Ordering::Relaxed);
    assert!(lookups >= 200 * rounds as u64, "{lookups} lookups");
    assert_eq!(
        total, lookups,
        "one increment per loop on a never-removed label set"
    );
}
