//! The shared fixtures (`beluga_test_support::servers`), and what only this
//! crate's tests use.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use beluga_test_support::servers::*;

/// A registry big enough that one encode takes a few milliseconds.
pub fn big_registry() -> beluga_metrics::Registry {
    let r = beluga_metrics::Registry::new();
    let family = r
        .counter_family(
            beluga_metrics::Opts::new("big_total", "Big.")
                .labels(["k"])
                .cardinality_limit(300_000),
        )
        .unwrap();
    for i in 0..200_000 {
        family.with_labels(&[i.to_string()]).unwrap().inc();
    }
    r
}
