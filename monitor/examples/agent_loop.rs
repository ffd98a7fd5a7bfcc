//! An agent loop instrumented with every kind of standard metric, printing
//! the Prometheus text at the end.
//!
//! Run it with `cargo run -p beluga-monitor --example agent_loop`.

use std::time::Duration;

use beluga_metrics::{Buckets, Format, Registry};
use beluga_monitor::{ErrorKind, LlmCall, Monitor, MonitorError, SafetyVerdict};

fn main() -> Result<(), MonitorError> {
    let registry = Registry::new();
    let monitor = Monitor::builder()
        .service_name("my-agent")
        .metrics(true)
        .registry(&registry)
        .build()?;
    let metrics = monitor.metrics();
    metrics.register_custom_counter(
        "agent_handoffs_total",
        "Handoffs between sub-agents.",
        &["from", "to"],
    )?;
    metrics.register_custom_histogram(
        "agent_plan_steps",
        "Steps in each plan.",
        &["agent"],
        Buckets::linear(1.0, 1.0, 8),
    )?;
    metrics.update_component_health("vector_store", true)?;

    // A hot path resolves its series once and keeps the handles.
    let chat_ok = metrics
        .api_request_handle("POST", "/v1/chat", 200)?
        .expect("metrics are on");

    for turn in 0..5u64 {
        let tenant = ["free", "pro", "enterprise"][turn as usize % 3];
        let operation = metrics.start_operation("agent_turn")?;

        let plan = metrics.start_operation("plan")?;
        metrics.record_custom_histogram(
            "agent_plan_steps",
            (turn % 4 + 1) as f64,
            &[("agent", "planner")],
        )?;
        plan.finish();

        metrics.record_llm_call(
            &LlmCall::chat("openai", "gpt-4o", tenant)
                .duration(Duration::from_millis(400 + 150 * turn))
                .tokens(1200 + 10 * turn, 250)
                .time_to_first_chunk(Duration::from_millis(120))
                .cost_usd(0.004),
        )?;
        metrics.record_tool_call("web_search", tenant, Duration::from_millis(210), None)?;
        if turn == 3 {
            metrics.record_tool_call(
                "sql",
                tenant,
                Duration::from_millis(30),
                Some(ErrorKind::ToolFailure.as_str()),
            )?;
            metrics.record_error("executor", ErrorKind::ToolFailure)?;
            metrics.record_llm_call(
                &LlmCall::chat("anthropic", "claude-sonnet", tenant)
                    .duration(Duration::from_secs(30))
                    .error(ErrorKind::Timeout),
            )?;
        }
        metrics.record_custom_counter(
            "agent_handoffs_total",
            1,
            &[("from", "planner"), ("to", "coder")],
        )?;

        let verdict = if turn == 4 {
            SafetyVerdict::Unsafe
        } else {
            SafetyVerdict::Safe
        };
        metrics.record_safety_check("violence", verdict, Duration::from_millis(3))?;

        chat_ok.record(Duration::from_millis(600));
        metrics.record_api_request("GET", "/v1/history", 404, Duration::from_millis(5))?;
        operation.finish();
    }

    print!("{}", registry.encode(Format::PrometheusText));
    Ok(())
}
