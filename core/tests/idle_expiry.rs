//! Idle series expiry: idle series leave the exposition and the family,
//! handles still held keep every count, and a series nobody holds starts
//! again from zero.

use std::time::Duration;

use beluga_metrics::{Format, Opts, Registry, RegistryError};

const IDLE: Duration = Duration::from_millis(100);

/// Encodes until `done` says so (each encode is what judges idleness).
fn encode_until(r: &Registry, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = r.encode(Format::PrometheusText);
        if done(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}; last exposition:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn family(r: &Registry, limit: usize) -> beluga_metrics::Family<beluga_metrics::Counter> {
    r.counter_family(
        Opts::new("calls_total", "Calls.")
            .labels(["tenant"])
            .cardinality_limit(limit)
            .expire_after_idle(IDLE),
    )
    .unwrap()
}

#[test]
fn idle_series_leave_and_free_their_place() {
    let r = Registry::new();
    let f = family(&r, 2);
    std::thread::scope(|s| {
        s.spawn(|| {
            f.with(&["a"], |c| c.inc()).unwrap();
            f.with(&["b"], |c| c.add(2)).unwrap();
        });
    });
    let first = r.encode(Format::PrometheusText);
    assert!(first.contains("calls_total{tenant=\"a\"} 1\n"), "{first}");
    encode_until(&r, "both series to expire", |t| !t.contains("tenant="));
    assert_eq!(f.len(), 0);
    // Their places are free again: no overflow for two new tenants.
    std::thread::scope(|s| {
        s.spawn(|| {
            f.with(&["c"], |c| c.inc()).unwrap();
            f.with(&["d"], |c| c.inc()).unwrap();
        });
    });
    assert_eq!((f.len(), f.refused_label_sets()), (2, 0));
}

#[test]
fn a_held_handle_keeps_every_count() {
    let r = Registry::new();
    let f = family(&r, 10);
    let held = f.with_labels(&["held"]).unwrap();
    held.add(5);
    encode_until(&r, "the held series to expire", |t| !t.contains("held"));
    assert_eq!((f.len(), f.expired_but_held()), (0, 1));
    held.inc();
    // The next encode sees the record and brings the series back, whole.
    let text = r.encode(Format::PrometheusText);
    assert!(text.contains("calls_total{tenant=\"held\"} 6\n"), "{text}");
    assert_eq!((f.len(), f.expired_but_held()), (1, 0));

    // A lookup of an expired series that is still held finds it too.
    encode_until(&r, "the held series to expire again", |t| {
        !t.contains("held")
    });
    f.with(&["held"], |c| c.inc()).unwrap();
    assert_eq!(held.get(), 7);
    let text = r.encode(Format::PrometheusText);
    assert!(text.contains("calls_total{tenant=\"held\"} 7\n"), "{text}");
}

#[test]
fn a_series_nobody_holds_starts_again_from_zero() {
    let r = Registry::new();
    let f = family(&r, 10);
    // Recorded from a thread that exits, so no lookup cache holds it.
    std::thread::scope(|s| {
        s.spawn(|| f.with(&["gone"], |c| c.add(3)).unwrap());
    });
    encode_until(&r, "the series to expire", |t| !t.contains("gone"));
    r.encode(Format::PrometheusText); // forgets what nobody holds
    assert_eq!(f.expired_but_held(), 0);
    std::thread::scope(|s| {
        s.spawn(|| f.with(&["gone"], |c| c.inc()).unwrap());
    });
    let text = r.encode(Format::PrometheusText);
    assert!(text.contains("calls_total{tenant=\"gone\"} 1\n"), "{text}");
}

#[test]
fn series_recorded_into_stay() {
    let r = Registry::new();
    let f = family(&r, 10);
    let busy = f.with_labels(&["busy"]).unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < IDLE * 4 {
        busy.inc();
        let text = r.encode(Format::PrometheusText);
        assert!(text.contains("tenant=\"busy\""), "{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn expiry_is_part_of_the_definition() {
    let r = Registry::new();
    family(&r, 10);
    let other = r.counter_family(
        Opts::new("calls_total", "Calls.")
            .labels(["tenant"])
            .cardinality_limit(10),
    );
    assert!(matches!(
        other,
        Err(RegistryError::Conflict {
            differs_in: "idle expiry",
            ..
        })
    ));
}
