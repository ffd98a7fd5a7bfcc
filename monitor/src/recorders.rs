//! The standard agent metrics and their recording methods.

use std::time::{Duration, Instant};

use crate::custom::{CustomLabels, CustomMetrics};
use crate::error::MonitorError;
use beluga_metrics::{
    Buckets, Counter, Exemplar, Family, FloatCounter, Gauge, Histogram, Opts, Registry, Unit,
};

/// The outcome of a safety check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafetyVerdict {
    /// The content passed.
    Safe,
    /// The content was flagged as unsafe.
    Unsafe,
    /// The check itself failed.
    Error,
}

impl SafetyVerdict {
    /// The `verdict` label value.
    ///
    /// ```
    /// assert_eq!(beluga_monitor::SafetyVerdict::Unsafe.as_str(), "unsafe");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SafetyVerdict::Safe => "safe",
            SafetyVerdict::Unsafe => "unsafe",
            SafetyVerdict::Error => "error",
        }
    }
}

/// One LLM call (or other GenAI operation) to record, following the
/// OpenTelemetry GenAI semantic conventions.
///
/// ```
/// use std::time::Duration;
/// use beluga_monitor::{ErrorKind, LlmCall};
/// let ok = LlmCall::chat("anthropic", "claude-sonnet", "pro")
///     .duration(Duration::from_millis(1200))
///     .tokens(2000, 450)
///     .time_to_first_chunk(Duration::from_millis(180))
///     .cost_usd(0.0128);
/// let failed = LlmCall::chat("openai", "gpt-4o", "free")
///     .duration(Duration::from_secs(30))
///     .error(ErrorKind::Timeout);
/// # let _ = (ok, failed);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall<'a> {
    operation: &'a str,
    provider: &'a str,
    model: &'a str,
    tenant: &'a str,
    duration: Duration,
    tokens: Option<(u64, u64)>,
    error: Option<&'static str>,
    time_to_first_chunk: Option<Duration>,
    cost_usd: Option<f64>,
    trace: Option<([u8; 16], [u8; 8])>,
}

impl<'a> LlmCall<'a> {
    /// A call of GenAI operation `operation` (`chat`, `text_completion`,
    /// `embeddings`, `invoke_agent`, ...) to `model` of `provider`
    /// (`openai`, `anthropic`, `aws.bedrock`, ...) for `tenant`.
    pub fn new(operation: &'a str, provider: &'a str, model: &'a str, tenant: &'a str) -> Self {
        LlmCall {
            operation,
            provider,
            model,
            tenant,
            duration: Duration::ZERO,
            tokens: None,
            error: None,
            time_to_first_chunk: None,
            cost_usd: None,
            trace: None,
        }
    }

    /// A `chat` call.
    pub fn chat(provider: &'a str, model: &'a str, tenant: &'a str) -> Self {
        LlmCall::new("chat", provider, model, tenant)
    }

    /// How long the call took, end to end.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Input (prompt) and output (completion) tokens.
    pub fn tokens(mut self, input: u64, output: u64) -> Self {
        self.tokens = Some((input, output));
        self
    }

    /// Marks the call failed, with a bounded error kind (see [`ErrorKind`](super::ErrorKind)).
    pub fn error(mut self, kind: impl Into<&'static str>) -> Self {
        self.error = Some(kind.into());
        self
    }

    /// For streaming calls: time until the first chunk arrived.
    pub fn time_to_first_chunk(mut self, ttfc: Duration) -> Self {
        self.time_to_first_chunk = Some(ttfc);
        self
    }

    /// What the call cost, in US dollars.
    pub fn cost_usd(mut self, usd: f64) -> Self {
        self.cost_usd = Some(usd);
        self
    }

    /// The trace the call ran in (W3C trace and span ids): kept as the
    /// exemplar of the call's duration bucket, so an operator can jump from
    /// a slow bucket in Grafana to the trace.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use beluga_monitor::{LlmCall, Monitor};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let (trace_id, span_id) = ([0x4b; 16], [0x1f; 8]); // from your tracing context
    /// monitor.metrics().record_llm_call(
    ///     &LlmCall::chat("openai", "gpt-4o", "pro").duration(Duration::from_secs(3)).trace(trace_id, span_id),
    /// )?;
    /// let text = monitor.registry().encode(beluga_metrics::Format::OpenMetrics);
    /// assert!(text.contains("# {trace_id=\"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b\",span_id=\"1f1f1f1f1f1f1f1f\"} 3.0 "));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn trace(mut self, trace_id: [u8; 16], span_id: [u8; 8]) -> Self {
        self.trace = Some((trace_id, span_id));
        self
    }
}

/// The standard metrics, registered once per monitor.
pub(super) struct Standard {
    pub(super) api_requests: Family<Counter>,
    pub(super) response_time: Family<Histogram>,
    pub(super) errors: Family<Counter>,
    pub(super) requests: Family<Counter>,
    pub(super) active_operations: Family<Gauge>,
    pub(super) operation_duration: Family<Histogram>,
    pub(super) gen_ai_duration: Family<Histogram>,
    pub(super) gen_ai_token_usage: Family<Histogram>,
    pub(super) gen_ai_time_to_first_chunk: Family<Histogram>,
    pub(super) gen_ai_tokens: Family<Counter>,
    pub(super) gen_ai_cost: Family<FloatCounter>,
    pub(super) safety_checks: Family<Counter>,
    pub(super) safety_flags: Family<Counter>,
    pub(super) safety_duration: Family<Histogram>,
    pub(super) component_health: Family<Gauge>,
}

/// The monitor's recorders: standard agent metrics and custom metrics.
///
/// Every method returns `Result<_, MonitorError>` and never panics: the only
/// failure on the standard metrics is a [`LabelError`](beluga_metrics::LabelError)
/// (which cannot happen with these fixed label lists), and on custom metrics
/// an unregistered name or wrong labels. Label values (models, tenants,
/// endpoints, components) go through each family's cardinality limit: never
/// pass user IDs or free text.
pub struct AgentMetrics {
    pub(super) standard: Option<Standard>,
    custom: Option<CustomMetrics>,
}

fn status_label(status: u16, buffer: &mut [u8; 5]) -> &str {
    let mut n = status;
    let mut i = buffer.len();
    loop {
        i -= 1;
        buffer[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buffer[i..]).expect("ASCII digits")
}

const GEN_AI_DURATION_LABELS: [&str; 6] = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_tool_name",
    "error_type",
    "tenant",
];

impl AgentMetrics {
    pub(super) fn disabled() -> Self {
        AgentMetrics {
            standard: None,
            custom: None,
        }
    }

    pub(super) fn register(
        registry: &Registry,
        limit: Option<usize>,
    ) -> Result<Self, MonitorError> {
        let opts = |name: &str, help: &str, labels: &[&str]| {
            let o = Opts::new(name, help).labels(labels.iter().copied());
            match limit {
                Some(limit) => o.cardinality_limit(limit),
                None => o,
            }
        };
        let seconds =
            |name: &str, help: &str, labels: &[&str]| opts(name, help, labels).unit(Unit::SECONDS);
        let standard = Standard {
            api_requests: registry.counter_family(opts(
                "monitoring_api_requests_total",
                "API requests handled, by method, endpoint and status code.",
                &["method", "endpoint", "status"],
            ))?,
            response_time: registry.histogram_family(
                seconds(
                    "monitoring_response_time_seconds",
                    "Response time of API requests (type=\"api\").",
                    &["type", "method", "endpoint"],
                ),
                Buckets::prometheus_default(),
            )?,
            errors: registry.counter_family(opts(
                "monitoring_errors_total",
                "Errors, by component and bounded error type.",
                &["component", "error_type"],
            ))?,
            requests: registry.counter_family(opts(
                "monitoring_requests_total",
                "Operations started, by operation.",
                &["operation"],
            ))?,
            active_operations: registry.gauge_family(opts(
                "monitoring_active_operations",
                "Operations in progress, by operation.",
                &["operation"],
            ))?,
            operation_duration: registry.histogram_family(
                seconds(
                    "monitoring_operation_duration_seconds",
                    "Duration of finished operations, by operation.",
                    &["operation"],
                ),
                Buckets::prometheus_default(),
            )?,
            gen_ai_duration: registry.histogram_family(
                seconds(
                    "gen_ai_client_operation_duration_seconds",
                    "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration).",
                    &GEN_AI_DURATION_LABELS,
                ),
                Buckets::gen_ai_operation_duration(),
            )?,
            gen_ai_token_usage: registry.histogram_family(
                opts(
                    "gen_ai_client_token_usage",
                    "Tokens per GenAI call, by token type (OpenTelemetry gen_ai.client.token.usage).",
                    &[
                        "gen_ai_operation_name",
                        "gen_ai_provider_name",
                        "gen_ai_request_model",
                        "gen_ai_token_type",
                        "tenant",
                    ],
                )
                .unit(Unit::TOKENS),
                Buckets::gen_ai_token_usage(),
            )?,
            gen_ai_time_to_first_chunk: registry.histogram_family(
                seconds(
                    "gen_ai_client_operation_time_to_first_chunk_seconds",
                    "Time to the first chunk of streaming GenAI calls (OpenTelemetry gen_ai.client.operation.time_to_first_chunk).",
                    &["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "tenant"],
                ),
                Buckets::gen_ai_operation_duration(),
            )?,
            gen_ai_tokens: registry.counter_family(
                opts(
                    "gen_ai_client_tokens_total",
                    "Tokens used, by model, token type and tenant (for cost dashboards).",
                    &["gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type", "tenant"],
                )
                .unit(Unit::TOKENS),
            )?,
            gen_ai_cost: registry.float_counter_family(
                opts(
                    "gen_ai_client_cost_usd_total",
                    "Spend on GenAI calls in US dollars, by model and tenant.",
                    &["gen_ai_provider_name", "gen_ai_request_model", "tenant"],
                )
                .unit(Unit::USD),
            )?,
            safety_checks: registry.counter_family(opts(
                "monitoring_safety_checks_total",
                "Safety checks run, by category and verdict.",
                &["category", "verdict"],
            ))?,
            safety_flags: registry.counter_family(opts(
                "monitoring_safety_flags_total",
                "Content flagged unsafe, by category.",
                &["category"],
            ))?,
            safety_duration: registry.histogram_family(
                seconds(
                    "monitoring_safety_check_duration_seconds",
                    "Duration of safety checks, by category.",
                    &["category"],
                ),
                Buckets::prometheus_default(),
            )?,
            component_health: registry.gauge_family(opts(
                "monitoring_component_health",
                "Component health: 1 healthy, 0 unhealthy.",
                &["component"],
            ))?,
        };
        Ok(AgentMetrics {
            standard: Some(standard),
            custom: Some(CustomMetrics::new(registry.clone(), limit)),
        })
    }

    /// Whether recording does anything (`Monitor::builder().metrics(..)`).
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// let on = Monitor::builder().registry(&Default::default()).build()?;
    /// assert!(on.metrics().is_enabled());
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.standard.is_some()
    }

    /// Records one API request: `monitoring_api_requests_total{method,endpoint,status}`
    /// and `monitoring_response_time_seconds{type="api",method,endpoint}`.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// monitor.metrics().record_api_request("GET", "/v1/agents", 200, std::time::Duration::from_millis(12))?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_api_request(
        &self,
        method: &str,
        endpoint: &str,
        status: u16,
        duration: Duration,
    ) -> Result<(), MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(());
        };
        let mut buffer = [0u8; 5];
        let status = status_label(status, &mut buffer);
        s.api_requests
            .with(&[method, endpoint, status], Counter::inc)?;
        s.response_time
            .with(&["api", method, endpoint], |h| h.record_duration(duration))?;
        Ok(())
    }

    /// Resolves the series of one (method, endpoint, status) once, for hot
    /// loops: [`ApiRequestHandle::record`] then costs about one counter
    /// increment plus one histogram record. `None` when metrics are off.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let ok = monitor.metrics().api_request_handle("POST", "/v1/chat", 200)?;
    /// if let Some(ok) = &ok {
    ///     ok.record(std::time::Duration::from_millis(80));
    /// }
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn api_request_handle(
        &self,
        method: &str,
        endpoint: &str,
        status: u16,
    ) -> Result<Option<ApiRequestHandle>, MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(None);
        };
        let mut buffer = [0u8; 5];
        let status = status_label(status, &mut buffer);
        Ok(Some(ApiRequestHandle {
            requests: s.api_requests.with_labels(&[method, endpoint, status])?,
            response_time: s.response_time.with_labels(&["api", method, endpoint])?,
        }))
    }

    /// Counts an error of a component: `monitoring_errors_total{component,error_type}`.
    /// `kind` is an [`ErrorKind`](super::ErrorKind) or a `&'static str`, never
    /// an error message.
    ///
    /// ```
    /// # use beluga_monitor::{ErrorKind, Monitor};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// monitor.metrics().record_error("retriever", ErrorKind::Timeout)?;
    /// monitor.metrics().record_error("planner", "plan_rejected")?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_error(
        &self,
        component: &str,
        kind: impl Into<&'static str>,
    ) -> Result<(), MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(());
        };
        s.errors.with(&[component, kind.into()], Counter::inc)?;
        Ok(())
    }

    /// Counts one request of an operation: `monitoring_requests_total{operation}`.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// monitor.metrics().record_request("summarize")?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_request(&self, operation: &str) -> Result<(), MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(());
        };
        s.requests.with(&[operation], Counter::inc)?;
        Ok(())
    }

    /// Starts an operation: counts it in `monitoring_requests_total` and
    /// `monitoring_active_operations`; when the guard is dropped (or
    /// [`finish`](OperationGuard::finish)ed) the gauge goes back down and the
    /// duration lands in `monitoring_operation_duration_seconds`.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let registry = beluga_metrics::Registry::new();
    /// # let monitor = Monitor::builder().registry(&registry).build()?;
    /// {
    ///     let _op = monitor.metrics().start_operation("plan")?;
    ///     assert!(registry.encode(beluga_metrics::Format::PrometheusText)
    ///         .contains("monitoring_active_operations{operation=\"plan\"} 1.0"));
    /// }
    /// assert!(registry.encode(beluga_metrics::Format::PrometheusText)
    ///     .contains("monitoring_active_operations{operation=\"plan\"} 0.0"));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn start_operation(&self, operation: &str) -> Result<OperationGuard, MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(OperationGuard { live: None });
        };
        s.requests.with(&[operation], Counter::inc)?;
        let active = s.active_operations.with_labels(&[operation])?;
        active.inc();
        Ok(OperationGuard {
            live: Some((
                active,
                s.operation_duration.with_labels(&[operation])?,
                Instant::now(),
            )),
        })
    }

    /// Records one GenAI call: its duration
    /// (`gen_ai_client_operation_duration_seconds`, with `error_type` on
    /// failure), its input and output tokens (`gen_ai_client_token_usage`
    /// and `gen_ai_client_tokens_total`), time to first chunk and cost when
    /// given.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use beluga_monitor::{LlmCall, Monitor};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// monitor.metrics().record_llm_call(
    ///     &LlmCall::chat("openai", "gpt-4o", "enterprise").duration(Duration::from_secs(2)).tokens(900, 120),
    /// )?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_llm_call(&self, call: &LlmCall<'_>) -> Result<(), MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(());
        };
        let error = call.error.unwrap_or("");
        s.gen_ai_duration.with(
            &[
                call.operation,
                call.provider,
                call.model,
                "",
                error,
                call.tenant,
            ],
            |h| match call.trace {
                // No extra labels: the exemplar cannot be refused.
                Some((trace_id, span_id)) => {
                    let _ = h.record_with_exemplar(
                        call.duration.as_secs_f64(),
                        &Exemplar::new(trace_id, span_id),
                    );
                }
                None => h.record_duration(call.duration),
            },
        )?;
        if let Some((input, output)) = call.tokens {
            for (kind, n) in [("input", input), ("output", output)] {
                s.gen_ai_token_usage.with(
                    &[call.operation, call.provider, call.model, kind, call.tenant],
                    |h| h.record(n as f64),
                )?;
                s.gen_ai_tokens
                    .with(&[call.provider, call.model, kind, call.tenant], |c| {
                        c.add(n)
                    })?;
            }
        }
        if let Some(ttfc) = call.time_to_first_chunk {
            s.gen_ai_time_to_first_chunk.with(
                &[call.operation, call.provider, call.model, call.tenant],
                |h| h.record_duration(ttfc),
            )?;
        }
        if let Some(usd) = call.cost_usd {
            s.gen_ai_cost
                .with(&[call.provider, call.model, call.tenant], |c| c.add(usd))?;
        }
        Ok(())
    }

    /// Resolves the series of successful calls of one (operation, provider,
    /// model, tenant) once, for hot loops. `None` when metrics are off.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// if let Some(gpt) = monitor.metrics().llm_call_handle("chat", "openai", "gpt-4o", "free")? {
    ///     gpt.record(Duration::from_millis(700), 1500, 200);
    /// }
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn llm_call_handle(
        &self,
        operation: &str,
        provider: &str,
        model: &str,
        tenant: &str,
    ) -> Result<Option<LlmCallHandle>, MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(None);
        };
        let usage = |kind| {
            s.gen_ai_token_usage
                .with_labels(&[operation, provider, model, kind, tenant])
        };
        let tokens = |kind| {
            s.gen_ai_tokens
                .with_labels(&[provider, model, kind, tenant])
        };
        Ok(Some(LlmCallHandle {
            duration: s
                .gen_ai_duration
                .with_labels(&[operation, provider, model, "", "", tenant])?,
            input_usage: usage("input")?,
            output_usage: usage("output")?,
            input_tokens: tokens("input")?,
            output_tokens: tokens("output")?,
            time_to_first_chunk: s
                .gen_ai_time_to_first_chunk
                .with_labels(&[operation, provider, model, tenant])?,
            cost: s.gen_ai_cost.with_labels(&[provider, model, tenant])?,
        }))
    }

    /// Records one tool call, as the GenAI `execute_tool` operation in
    /// `gen_ai_client_operation_duration_seconds{gen_ai_operation_name="execute_tool",gen_ai_tool_name=..}`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use beluga_monitor::{ErrorKind, Monitor};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let m = monitor.metrics();
    /// m.record_tool_call("web_search", "pro", Duration::from_millis(320), None)?;
    /// m.record_tool_call("sql", "pro", Duration::from_millis(50), Some(ErrorKind::ToolFailure.as_str()))?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_tool_call(
        &self,
        tool: &str,
        tenant: &str,
        duration: Duration,
        error: Option<&'static str>,
    ) -> Result<(), MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(());
        };
        s.gen_ai_duration.with(
            &["execute_tool", "", "", tool, error.unwrap_or(""), tenant],
            |h| h.record_duration(duration),
        )?;
        Ok(())
    }

    /// Records one safety check: `monitoring_safety_checks_total{category,verdict}`,
    /// `monitoring_safety_check_duration_seconds{category}`, and, for an
    /// unsafe verdict, `monitoring_safety_flags_total{category}`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use beluga_monitor::{Monitor, SafetyVerdict};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// monitor.metrics().record_safety_check("self_harm", SafetyVerdict::Safe, Duration::from_millis(3))?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_safety_check(
        &self,
        category: &str,
        verdict: SafetyVerdict,
        duration: Duration,
    ) -> Result<(), MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(());
        };
        s.safety_checks
            .with(&[category, verdict.as_str()], Counter::inc)?;
        s.safety_duration
            .with(&[category], |h| h.record_duration(duration))?;
        if verdict == SafetyVerdict::Unsafe {
            s.safety_flags.with(&[category], Counter::inc)?;
        }
        Ok(())
    }

    /// Sets `monitoring_component_health{component}` to 1 (healthy) or 0.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// monitor.metrics().update_component_health("vector_store", false)?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn update_component_health(
        &self,
        component: &str,
        healthy: bool,
    ) -> Result<(), MonitorError> {
        let Some(s) = &self.standard else {
            return Ok(());
        };
        s.component_health
            .with(&[component], |g| g.set(if healthy { 1.0 } else { 0.0 }))?;
        Ok(())
    }

    pub(super) fn custom(&self) -> Option<&CustomMetrics> {
        self.custom.as_ref()
    }
}

/// Pre-resolved series of one API (method, endpoint, status).
#[derive(Clone, Debug)]
pub struct ApiRequestHandle {
    requests: Counter,
    response_time: Histogram,
}

impl ApiRequestHandle {
    /// Records one request that took `duration`.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let handle = monitor.metrics().api_request_handle("GET", "/health", 200)?.unwrap();
    /// handle.record(std::time::Duration::from_micros(150));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    #[inline]
    pub fn record(&self, duration: Duration) {
        self.requests.inc();
        self.response_time.record_duration(duration);
    }
}

/// Pre-resolved series of successful GenAI calls of one (operation,
/// provider, model, tenant).
#[derive(Clone, Debug)]
pub struct LlmCallHandle {
    duration: Histogram,
    input_usage: Histogram,
    output_usage: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
    time_to_first_chunk: Histogram,
    cost: FloatCounter,
}

impl LlmCallHandle {
    /// Records one successful call: its duration and its input and output tokens.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let claude = monitor.metrics().llm_call_handle("chat", "anthropic", "claude-sonnet", "pro")?.unwrap();
    /// claude.record(Duration::from_millis(850), 3000, 420);
    /// claude.record_time_to_first_chunk(Duration::from_millis(140));
    /// claude.add_cost_usd(0.015);
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    #[inline]
    pub fn record(&self, duration: Duration, input_tokens: u64, output_tokens: u64) {
        self.duration.record_duration(duration);
        self.input_usage.record(input_tokens as f64);
        self.output_usage.record(output_tokens as f64);
        self.input_tokens.add(input_tokens);
        self.output_tokens.add(output_tokens);
    }

    /// Like [`record`](Self::record), keeping the call's trace as the
    /// exemplar of its duration bucket.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let gpt = monitor.metrics().llm_call_handle("chat", "openai", "gpt-4o", "pro")?.unwrap();
    /// gpt.record_traced(Duration::from_millis(900), 1200, 300, [7; 16], [9; 8]);
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_traced(
        &self,
        duration: Duration,
        input_tokens: u64,
        output_tokens: u64,
        trace_id: [u8; 16],
        span_id: [u8; 8],
    ) {
        // No extra labels: the exemplar cannot be refused.
        let _ = self
            .duration
            .record_with_exemplar(duration.as_secs_f64(), &Exemplar::new(trace_id, span_id));
        self.input_usage.record(input_tokens as f64);
        self.output_usage.record(output_tokens as f64);
        self.input_tokens.add(input_tokens);
        self.output_tokens.add(output_tokens);
    }

    /// Records the time to the first chunk of a streaming call (example at
    /// [`record`](Self::record)).
    #[inline]
    pub fn record_time_to_first_chunk(&self, ttfc: Duration) {
        self.time_to_first_chunk.record_duration(ttfc);
    }

    /// The duration histogram of these successful calls, for reading
    /// quantiles ([`Histogram::quantiles`]).
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let gpt = monitor.metrics().llm_call_handle("chat", "openai", "gpt-4o", "free")?.unwrap();
    /// gpt.record(std::time::Duration::from_millis(700), 10, 10);
    /// assert_eq!(gpt.duration_histogram().get().count(), 1);
    /// assert_eq!(gpt.tokens_used(), (10, 10));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn duration_histogram(&self) -> &Histogram {
        &self.duration
    }

    /// Input and output tokens recorded so far on these series.
    pub fn tokens_used(&self) -> (u64, u64) {
        (self.input_tokens.get(), self.output_tokens.get())
    }

    /// Adds the call's cost in US dollars (example at [`record`](Self::record)).
    #[inline]
    pub fn add_cost_usd(&self, usd: f64) {
        self.cost.add(usd);
    }
}

/// An operation in progress; see [`AgentMetrics::start_operation`].
#[must_use = "dropping the guard ends the operation at once"]
pub struct OperationGuard {
    live: Option<(Gauge, Histogram, Instant)>,
}

impl OperationGuard {
    /// Ends the operation now and returns its duration.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let op = monitor.metrics().start_operation("retrieve")?;
    /// let took = op.finish();
    /// assert!(took < std::time::Duration::from_secs(1));
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn finish(mut self) -> Duration {
        self.end()
    }

    fn end(&mut self) -> Duration {
        match self.live.take() {
            Some((active, duration, started)) => {
                let elapsed = started.elapsed();
                active.dec();
                duration.record_duration(elapsed);
                elapsed
            }
            None => Duration::ZERO,
        }
    }
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        self.end();
    }
}

impl std::fmt::Debug for OperationGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationGuard")
            .field("running", &self.live.is_some())
            .finish()
    }
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

// Custom metrics, by name: the API over `CustomMetrics`.
impl AgentMetrics {
    /// Registers a custom counter. Registering the same definition again is
    /// fine; another definition under the same name is an error.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let m = monitor.metrics();
    /// m.register_custom_counter("agent_handoffs_total", "Handoffs between agents.", &["from", "to"])?;
    /// m.record_custom_counter("agent_handoffs_total", 1, &[("from", "planner"), ("to", "coder")])?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn register_custom_counter(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<(), MonitorError> {
        match self.custom() {
            Some(custom) => custom.register_counter(name, help, label_names),
            None => Ok(()),
        }
    }

    /// Registers a custom histogram with these buckets.
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # use beluga_metrics::Buckets;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let m = monitor.metrics();
    /// m.register_custom_histogram("agent_plan_steps", "Steps per plan.", &["agent"], Buckets::linear(1.0, 1.0, 10))?;
    /// let labels = std::collections::HashMap::from([("agent", "coder")]);
    /// m.record_custom_histogram("agent_plan_steps", 4.0, &labels)?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn register_custom_histogram(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: Buckets,
    ) -> Result<(), MonitorError> {
        match self.custom() {
            Some(custom) => custom.register_histogram(name, help, label_names, buckets),
            None => Ok(()),
        }
    }

    /// Adds `value` to a registered custom counter. An unregistered name is
    /// [`MonitorError::NotRegistered`]; labels that do not match the
    /// registered names are a [`MonitorError::Label`].
    ///
    /// ```
    /// # use beluga_monitor::{Monitor, MonitorError};
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let err = monitor.metrics().record_custom_counter("never_registered_total", 1, &[]).unwrap_err();
    /// assert!(matches!(err, MonitorError::NotRegistered { .. }));
    /// # Ok::<(), MonitorError>(())
    /// ```
    pub fn record_custom_counter<L: CustomLabels + ?Sized>(
        &self,
        name: &str,
        value: u64,
        labels: &L,
    ) -> Result<(), MonitorError> {
        match self.custom() {
            Some(custom) => custom.record_counter(name, value, labels),
            None => Ok(()),
        }
    }

    /// Records `value` into a registered custom histogram (errors as for
    /// [`record_custom_counter`](Self::record_custom_counter)).
    ///
    /// ```
    /// # use beluga_monitor::Monitor;
    /// # use beluga_metrics::Buckets;
    /// # let monitor = Monitor::builder().registry(&Default::default()).build()?;
    /// let m = monitor.metrics();
    /// m.register_custom_histogram("retrieval_documents", "Documents per retrieval.", &[], Buckets::exponential(1.0, 2.0, 8))?;
    /// m.record_custom_histogram("retrieval_documents", 12.0, &[])?;
    /// # Ok::<(), beluga_monitor::MonitorError>(())
    /// ```
    pub fn record_custom_histogram<L: CustomLabels + ?Sized>(
        &self,
        name: &str,
        value: f64,
        labels: &L,
    ) -> Result<(), MonitorError> {
        match self.custom() {
            Some(custom) => custom.record_histogram(name, value, labels),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels() {
        let mut b = [0u8; 5];
        assert_eq!(status_label(200, &mut b), "200");
        assert_eq!(status_label(0, &mut b), "0");
        assert_eq!(status_label(65535, &mut b), "65535");
    }
}
