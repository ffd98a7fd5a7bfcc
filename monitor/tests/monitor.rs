//! The monitor API: exact exposition lines for every recording method,
//! promtool on the result, and each bad input's error.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use beluga_metrics::{Buckets, Format, LabelError, Opts, Registry, RegistryError};
use beluga_monitor::{ErrorKind, LlmCall, Monitor, MonitorError, SafetyVerdict};
use beluga_test_support::promtool_check;

fn monitor() -> (Registry, Monitor) {
    let registry = Registry::new();
    let monitor = Monitor::builder()
        .service_name("test-agent")
        .registry(&registry)
        .build()
        .unwrap();
    (registry, monitor)
}

fn text(registry: &Registry) -> String {
    registry.encode(Format::PrometheusText)
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.split('\n').any(|l| l == *line),
            "missing line:\n{line}\n--- exposition ---\n{text}"
        );
    }
}

#[test]
fn target_info_and_start_time() {
    let (registry, monitor) = monitor();
    let text = text(&registry);
    assert_lines(
        &text,
        &[&format!(
            "target_info{{service_name=\"test-agent\",telemetry_sdk_name=\"beluga-metrics\",telemetry_sdk_language=\"rust\",telemetry_sdk_version=\"{}\"}} 1.0",
            env!("CARGO_PKG_VERSION")
        )],
    );
    assert!(text.contains("# TYPE monitoring_start_time_seconds gauge"));
    assert_eq!(monitor.service_name(), "test-agent");
}

#[test]
fn api_requests() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    m.record_api_request("GET", "/v1/agents", 200, Duration::from_millis(30))
        .unwrap();
    m.record_api_request("GET", "/v1/agents", 500, Duration::from_millis(2))
        .unwrap();
    let handle = m
        .api_request_handle("GET", "/v1/agents", 200)
        .unwrap()
        .unwrap();
    handle.record(Duration::from_millis(5));
    assert_lines(
        &text(&registry),
        &[
            r#"# TYPE monitoring_api_requests_total counter"#,
            r#"monitoring_api_requests_total{method="GET",endpoint="/v1/agents",status="200"} 2"#,
            r#"monitoring_api_requests_total{method="GET",endpoint="/v1/agents",status="500"} 1"#,
            r#"# TYPE monitoring_response_time_seconds histogram"#,
            r#"monitoring_response_time_seconds_bucket{type="api",method="GET",endpoint="/v1/agents",le="0.005"} 2"#,
            r#"monitoring_response_time_seconds_bucket{type="api",method="GET",endpoint="/v1/agents",le="0.01"} 2"#,
            r#"monitoring_response_time_seconds_bucket{type="api",method="GET",endpoint="/v1/agents",le="0.05"} 3"#,
            r#"monitoring_response_time_seconds_bucket{type="api",method="GET",endpoint="/v1/agents",le="10.0"} 3"#,
            r#"monitoring_response_time_seconds_bucket{type="api",method="GET",endpoint="/v1/agents",le="+Inf"} 3"#,
            r#"monitoring_response_time_seconds_count{type="api",method="GET",endpoint="/v1/agents"} 3"#,
        ],
    );
}

#[test]
fn errors_use_bounded_kinds() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    m.record_error("retriever", ErrorKind::Timeout).unwrap();
    m.record_error("retriever", ErrorKind::Timeout).unwrap();
    m.record_error("planner", "plan_rejected").unwrap();
    assert_lines(
        &text(&registry),
        &[
            r#"monitoring_errors_total{component="retriever",error_type="timeout"} 2"#,
            r#"monitoring_errors_total{component="planner",error_type="plan_rejected"} 1"#,
        ],
    );
}

#[test]
fn operations() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    let outer = m.start_operation("turn").unwrap();
    let inner = m.start_operation("turn").unwrap();
    assert_lines(
        &text(&registry),
        &[r#"monitoring_active_operations{operation="turn"} 2.0"#],
    );
    drop(inner);
    let took = outer.finish();
    m.record_request("turn").unwrap();
    let t = text(&registry);
    assert_lines(
        &t,
        &[
            r#"monitoring_active_operations{operation="turn"} 0.0"#,
            r#"monitoring_requests_total{operation="turn"} 3"#,
            r#"monitoring_operation_duration_seconds_count{operation="turn"} 2"#,
            r#"monitoring_operation_duration_seconds_bucket{operation="turn",le="+Inf"} 2"#,
        ],
    );
    assert!(took < Duration::from_secs(5));
}

#[test]
fn llm_calls_follow_the_gen_ai_conventions() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    m.record_llm_call(
        &LlmCall::chat("openai", "gpt-4o", "free")
            .duration(Duration::from_millis(640))
            .tokens(1024, 64)
            .time_to_first_chunk(Duration::from_millis(80))
            .cost_usd(0.25),
    )
    .unwrap();
    m.record_llm_call(
        &LlmCall::chat("openai", "gpt-4o", "free")
            .duration(Duration::from_secs(90))
            .error(ErrorKind::Timeout),
    )
    .unwrap();
    let handle = m
        .llm_call_handle("chat", "openai", "gpt-4o", "free")
        .unwrap()
        .unwrap();
    handle.record(Duration::from_millis(10), 1, 4);
    handle.add_cost_usd(0.5);
    handle.record_time_to_first_chunk(Duration::from_millis(5));
    let ok = r#"gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_tool_name="",error_type="",tenant="free""#;
    let failed = r#"gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_tool_name="",error_type="timeout",tenant="free""#;
    let usage = |kind: &str| {
        format!(
            r#"gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_token_type="{kind}",tenant="free""#
        )
    };
    let t = text(&registry);
    assert_lines(
        &t,
        &[
            "# TYPE gen_ai_client_operation_duration_seconds histogram",
            &format!("gen_ai_client_operation_duration_seconds_bucket{{{ok},le=\"0.01\"}} 1"),
            &format!("gen_ai_client_operation_duration_seconds_bucket{{{ok},le=\"0.64\"}} 2"),
            &format!("gen_ai_client_operation_duration_seconds_bucket{{{ok},le=\"81.92\"}} 2"),
            &format!("gen_ai_client_operation_duration_seconds_count{{{ok}}} 2"),
            &format!("gen_ai_client_operation_duration_seconds_bucket{{{failed},le=\"81.92\"}} 0"),
            &format!("gen_ai_client_operation_duration_seconds_bucket{{{failed},le=\"+Inf\"}} 1"),
            "# TYPE gen_ai_client_token_usage histogram",
            &format!(
                "gen_ai_client_token_usage_bucket{{{},le=\"1.0\"}} 1",
                usage("input")
            ),
            &format!(
                "gen_ai_client_token_usage_bucket{{{},le=\"1024.0\"}} 2",
                usage("input")
            ),
            &format!("gen_ai_client_token_usage_sum{{{}}} 1025.0", usage("input")),
            &format!(
                "gen_ai_client_token_usage_bucket{{{},le=\"4.0\"}} 1",
                usage("output")
            ),
            &format!(
                "gen_ai_client_token_usage_bucket{{{},le=\"64.0\"}} 2",
                usage("output")
            ),
            r#"gen_ai_client_tokens_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_token_type="input",tenant="free"} 1025"#,
            r#"gen_ai_client_tokens_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",tenant="free"} 68"#,
            r#"gen_ai_client_cost_usd_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",tenant="free"} 0.75"#,
            r#"gen_ai_client_operation_time_to_first_chunk_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",tenant="free"} 2"#,
        ],
    );
}

#[test]
fn tool_calls_are_execute_tool_operations() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    m.record_tool_call("web_search", "pro", Duration::from_millis(300), None)
        .unwrap();
    m.record_tool_call(
        "sql",
        "pro",
        Duration::from_millis(20),
        Some("tool_failure"),
    )
    .unwrap();
    assert_lines(
        &text(&registry),
        &[
            r#"gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="execute_tool",gen_ai_provider_name="",gen_ai_request_model="",gen_ai_tool_name="web_search",error_type="",tenant="pro",le="0.32"} 1"#,
            r#"gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name="execute_tool",gen_ai_provider_name="",gen_ai_request_model="",gen_ai_tool_name="sql",error_type="tool_failure",tenant="pro"} 1"#,
        ],
    );
}

#[test]
fn safety_checks_and_unsafe_flags() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    for verdict in [
        SafetyVerdict::Safe,
        SafetyVerdict::Unsafe,
        SafetyVerdict::Unsafe,
        SafetyVerdict::Error,
    ] {
        m.record_safety_check("violence", verdict, Duration::from_millis(2))
            .unwrap();
    }
    assert_lines(
        &text(&registry),
        &[
            r#"monitoring_safety_checks_total{category="violence",verdict="safe"} 1"#,
            r#"monitoring_safety_checks_total{category="violence",verdict="unsafe"} 2"#,
            r#"monitoring_safety_checks_total{category="violence",verdict="error"} 1"#,
            r#"monitoring_safety_flags_total{category="violence"} 2"#,
            r#"monitoring_safety_check_duration_seconds_bucket{category="violence",le="0.005"} 4"#,
        ],
    );
}

#[test]
fn component_health() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    m.update_component_health("llm_gateway", true).unwrap();
    m.update_component_health("vector_store", true).unwrap();
    m.update_component_health("vector_store", false).unwrap();
    assert_lines(
        &text(&registry),
        &[
            r#"monitoring_component_health{component="llm_gateway"} 1.0"#,
            r#"monitoring_component_health{component="vector_store"} 0.0"#,
        ],
    );
}

#[test]
fn custom_metrics_with_pairs_and_maps() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    m.register_custom_counter("agent_handoffs_total", "Handoffs.", &["from", "to"])
        .unwrap();
    m.register_custom_histogram(
        "agent_plan_steps",
        "Steps.",
        &["agent"],
        Buckets::new([1.0, 5.0]),
    )
    .unwrap();
    m.record_custom_counter(
        "agent_handoffs_total",
        2,
        &[("to", "coder"), ("from", "planner")],
    )
    .unwrap();
    m.record_custom_counter(
        "agent_handoffs_total",
        1,
        &HashMap::from([
            ("from".to_string(), "planner".to_string()),
            ("to".to_string(), "coder".to_string()),
        ]),
    )
    .unwrap();
    m.record_custom_histogram(
        "agent_plan_steps",
        3.0,
        &BTreeMap::from([("agent", "coder")]),
    )
    .unwrap();
    assert_lines(
        &text(&registry),
        &[
            r#"agent_handoffs_total{from="planner",to="coder"} 3"#,
            r#"agent_plan_steps_bucket{agent="coder",le="5.0"} 1"#,
        ],
    );
}

#[test]
fn custom_metric_errors() {
    let (_registry, monitor) = monitor();
    let m = monitor.metrics();
    m.register_custom_counter("jobs_total", "Jobs.", &["queue"])
        .unwrap();
    m.register_custom_histogram("job_seconds", "Job time.", &[], Buckets::default())
        .unwrap();
    assert_eq!(
        m.record_custom_counter("nope_total", 1, &[]),
        Err(MonitorError::NotRegistered {
            name: "nope_total".into()
        })
    );
    assert_eq!(
        m.record_custom_histogram("jobs_total", 1.0, &[("queue", "a")]),
        Err(MonitorError::WrongKind {
            name: "jobs_total".into(),
            registered_as: "counter"
        })
    );
    assert!(matches!(
        m.record_custom_counter("jobs_total", 1, &[("queue", "a"), ("user", "u1")]),
        Err(MonitorError::Label(LabelError::UnknownLabel { .. }))
    ));
    assert!(matches!(
        m.record_custom_counter("jobs_total", 1, &[]),
        Err(MonitorError::Label(LabelError::MissingLabel { .. }))
    ));
    assert!(matches!(
        m.register_custom_counter("jobs_total", "Other help.", &["queue"]),
        Err(MonitorError::Registry(RegistryError::Conflict { .. }))
    ));
    assert!(matches!(
        m.register_custom_counter("bad name", "x", &[]),
        Err(MonitorError::Registry(
            RegistryError::InvalidMetricName { .. }
        ))
    ));
    // Re-registering the same definition is fine.
    m.register_custom_counter("jobs_total", "Jobs.", &["queue"])
        .unwrap();
    let message = MonitorError::NotRegistered { name: "x".into() }.to_string();
    assert!(message.contains("register_custom_counter"), "{message}");
}

#[test]
fn a_taken_standard_name_is_a_build_error() {
    let registry = Registry::new();
    registry
        .gauge(Opts::new("monitoring_errors", "Something else."))
        .unwrap();
    let err = Monitor::builder().registry(&registry).build().unwrap_err();
    assert!(matches!(err, MonitorError::Registry(_)), "{err:?}");
}

#[test]
fn disabled_monitor_records_nothing() {
    let registry = Registry::new();
    let monitor = Monitor::builder()
        .metrics(false)
        .registry(&registry)
        .build()
        .unwrap();
    let m = monitor.metrics();
    assert!(!m.is_enabled());
    m.record_api_request("GET", "/", 200, Duration::ZERO)
        .unwrap();
    m.record_llm_call(&LlmCall::chat("a", "b", "c")).unwrap();
    assert!(m.api_request_handle("GET", "/", 200).unwrap().is_none());
    drop(m.start_operation("x").unwrap());
    m.record_custom_counter("anything", 1, &[]).unwrap();
    assert_eq!(text(&registry), "");
}

#[test]
fn user_supplied_label_values_hit_the_cardinality_limit() {
    let registry = Registry::new();
    let monitor = Monitor::builder()
        .registry(&registry)
        .cardinality_limit(3)
        .build()
        .unwrap();
    for i in 0..10 {
        // Don't do this: an endpoint per user id.
        monitor
            .metrics()
            .record_api_request("GET", &format!("/users/{i}"), 200, Duration::ZERO)
            .unwrap();
    }
    assert_lines(
        &text(&registry),
        &[
            r#"monitoring_api_requests_total{otel_metric_overflow="true"} 7"#,
            r#"beluga_cardinality_overflow_total{metric="monitoring_api_requests"} 7"#,
        ],
    );
}

#[test]
fn promtool_accepts_the_monitor_output() {
    let (registry, monitor) = monitor();
    let m = monitor.metrics();
    m.record_api_request(
        "POST",
        "/v1/chat \"quoted\"\n",
        200,
        Duration::from_millis(3),
    )
    .unwrap();
    m.record_error("c", ErrorKind::Other).unwrap();
    drop(m.start_operation("op").unwrap());
    m.record_llm_call(
        &LlmCall::chat("openai", "gpt-4o", "free")
            .duration(Duration::from_millis(5))
            .tokens(1, 2)
            .time_to_first_chunk(Duration::from_millis(1))
            .cost_usd(0.1),
    )
    .unwrap();
    m.record_tool_call("t", "free", Duration::ZERO, None)
        .unwrap();
    m.record_safety_check("s", SafetyVerdict::Unsafe, Duration::ZERO)
        .unwrap();
    m.update_component_health("db", true).unwrap();
    let report = promtool_check(&text(&registry));
    assert!(report.trim().is_empty(), "promtool: {report}");
}

#[test]
fn handles_write_the_same_series_as_the_name_based_calls() {
    let by_name = monitor();
    let by_handle = monitor();
    let d = Duration::from_millis(120);
    {
        let m = by_name.1.metrics();
        m.record_api_request("POST", "/v1/chat", 200, d).unwrap();
        m.record_llm_call(
            &LlmCall::chat("openai", "gpt-4o", "pro")
                .duration(d)
                .tokens(10, 20),
        )
        .unwrap();
        m.record_tool_call("search", "pro", d, None).unwrap();
        m.record_safety_check("hate", SafetyVerdict::Unsafe, d)
            .unwrap();
        m.record_request("turn").unwrap();
    }
    {
        let m = by_handle.1.metrics();
        m.api_request_handle("POST", "/v1/chat", 200)
            .unwrap()
            .unwrap()
            .record(d);
        m.llm_call_handle("chat", "openai", "gpt-4o", "pro")
            .unwrap()
            .unwrap()
            .record(d, 10, 20);
        m.tool_call_handle("search", "pro")
            .unwrap()
            .unwrap()
            .record(d);
        m.safety_check_handle("hate")
            .unwrap()
            .unwrap()
            .record(SafetyVerdict::Unsafe, d);
        m.operation_handle("turn").unwrap().unwrap();
    }
    let samples = |r: &Registry| -> Vec<String> {
        text(r)
            .split('\n')
            .filter(|l| {
                !l.starts_with('#')
                    && !l.starts_with("monitoring_start_time")
                    && !l.ends_with(" 0")
                    && !l.ends_with(" 0.0")
            })
            .map(str::to_string)
            .collect()
    };
    let mut expected = samples(&by_name.0);
    // record_request counts a request; the unused operation handle does not.
    expected.retain(|l| !l.starts_with("monitoring_requests_total"));
    let mut got = samples(&by_handle.0);
    got.retain(|l| !l.starts_with("monitoring_requests_total"));
    assert_eq!(got, expected);

    let turn = by_handle
        .1
        .metrics()
        .operation_handle("turn")
        .unwrap()
        .unwrap();
    let running = turn.begin();
    assert!(text(&by_handle.0).contains("monitoring_active_operations{operation=\"turn\"} 1.0"));
    running.end_with_duration(Duration::from_secs(2));
    let t = text(&by_handle.0);
    assert!(t.contains("monitoring_active_operations{operation=\"turn\"} 0.0"));
    assert!(t.contains("monitoring_operation_duration_seconds_sum{operation=\"turn\"} 2.0"));
}
