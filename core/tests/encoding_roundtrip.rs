//! Property test: any label value and help text survives encoding in both
//! formats, read back by an independent parser.

use beluga_metrics::{Format, Opts, Registry};
use beluga_test_support::exposition::{samples, unescape_help};
use proptest::prelude::*;

/// Strings heavy in the characters escaping has to handle.
fn nasty() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\\".to_string()),
            Just("\\\\".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just("🐋".to_string()),
            Just("ü".to_string()),
            Just("{}=,".to_string()),
            "[a-z ]{1,3}",
            any::<char>()
                .prop_filter("not a NUL", |c| *c != '\0')
                .prop_map(String::from),
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn label_values_and_help_round_trip(a in nasty(), b in nasty(), help in nasty()) {
        let registry = Registry::new();
        let family = registry
            .counter_family(Opts::new("rt_total", help.clone()).labels(["a", "b"]))
            .unwrap();
        family.with_labels(&[&a, &b]).unwrap().add(42);
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let text = registry.encode(format);
            let sample = samples(&text)
                .into_iter()
                .find(|s| s.name == "rt_total")
                .expect("the sample is present");
            prop_assert_eq!(
                &sample.labels,
                &vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())]
            );
            prop_assert_eq!(&sample.value, "42");
            let help_prefix = match format {
                Format::PrometheusText => "# HELP rt_total ",
                Format::OpenMetrics => "# HELP rt ",
            };
            let line = text.split('\n').find(|l| l.starts_with(help_prefix)).unwrap();
            prop_assert_eq!(unescape_help(&line[help_prefix.len()..]), help.clone());
            // No raw newline leaks into the exposition: line count is fixed.
            let expected_lines = if format == Format::OpenMetrics { 7 } else { 6 };
            prop_assert_eq!(text.split_terminator('\n').count(), expected_lines, "{}", text);
        }
    }
}
