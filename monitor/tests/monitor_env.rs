//! `OTEL_SERVICE_NAME` names the service when the builder does not.
//! (Its own test binary: it sets a process-wide environment variable.)

use beluga_metrics::{Format, Registry};
use beluga_monitor::Monitor;

#[test]
fn otel_service_name_is_honoured_and_the_builder_wins() {
    std::env::set_var("OTEL_SERVICE_NAME", "from-env");
    let registry = Registry::new();
    let monitor = Monitor::builder().registry(&registry).build().unwrap();
    assert_eq!(monitor.service_name(), "from-env");
    assert!(registry
        .encode(Format::PrometheusText)
        .contains("target_info{service_name=\"from-env\""));
    let named = Monitor::builder()
        .service_name("from-builder")
        .registry(&Registry::new())
        .build()
        .unwrap();
    assert_eq!(named.service_name(), "from-builder");
    std::env::remove_var("OTEL_SERVICE_NAME");
    let unnamed = Monitor::builder()
        .registry(&Registry::new())
        .build()
        .unwrap();
    assert_eq!(unnamed.service_name(), "unknown_service");
}
