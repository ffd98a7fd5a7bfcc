//! One simulated agent: each turn plans, calls an LLM (with retries), calls
//! tools, runs a safety check and answers an API request, and records all
//! of it through the monitor API.
//!
//! A turn first draws its whole outcome (durations are simulated, not
//! slept), then records it in one block, so the recording cost can be
//! timed on its own (every 16th turn, to keep the clock reads out of the
//! measurement).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beluga_monitor::{
    AgentMetrics, ApiRequestHandle, ErrorKind, LlmCall, LlmCallHandle, Monitor, MonitorError,
    OperationHandle, SafetyCheckHandle, SafetyVerdict, ToolCallHandle,
};
use crossbeam_utils::CachePadded;

use crate::rng::{LogNormal, Rng, Weighted};
use crate::scenario::Scenario;

/// Totals one agent accumulates; summed into the report.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    /// What the agents did: the counts the report shows as they are.
    pub totals: Totals,
    /// Timed turns (every 16th) that paid no first use (see
    /// `beluga_metrics::diagnostics::first_uses_on_this_thread`): steady-state recording. Their metric operations, recording time (clock overhead
    /// removed) and per-turn times.
    pub steady_ops: u64,
    pub steady_record_ns: u64,
    pub steady_turns: TurnTimes,
    /// Timed turns that paid a first use (a new series, the thread's first
    /// record, a new part of a histogram): their count and recording time.
    pub first_use_turns: u64,
    pub first_use_record_ns: u64,
    /// Simulated agent time (what a real agent would spend waiting on LLMs
    /// and tools).
    pub simulated_ns: u64,
    /// Wall time of the agent's loop.
    pub wall_ns: u64,
}

/// Counts of what the agents did, summed over agents and reported as is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Totals {
    pub turns: u64,
    pub api_requests: u64,
    pub llm_calls: u64,
    pub tokens_input: u64,
    pub tokens_output: u64,
    pub errors: u64,
    pub unsafe_flags: u64,
    pub metric_ops: u64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        // Saturating, like the counters these totals are checked against.
        self.turns = self.turns.saturating_add(o.turns);
        self.api_requests = self.api_requests.saturating_add(o.api_requests);
        self.llm_calls = self.llm_calls.saturating_add(o.llm_calls);
        self.tokens_input = self.tokens_input.saturating_add(o.tokens_input);
        self.tokens_output = self.tokens_output.saturating_add(o.tokens_output);
        self.errors = self.errors.saturating_add(o.errors);
        self.unsafe_flags = self.unsafe_flags.saturating_add(o.unsafe_flags);
        self.metric_ops = self.metric_ops.saturating_add(o.metric_ops);
    }
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.totals += o.totals;
        self.steady_ops += o.steady_ops;
        self.steady_record_ns = self.steady_record_ns.saturating_add(o.steady_record_ns);
        self.steady_turns.merge(&o.steady_turns);
        self.first_use_turns += o.first_use_turns;
        self.first_use_record_ns = self
            .first_use_record_ns
            .saturating_add(o.first_use_record_ns);
        self.simulated_ns = self.simulated_ns.saturating_add(o.simulated_ns);
        self.wall_ns = self.wall_ns.max(o.wall_ns);
    }
}

/// Recording times of single turns, in nanoseconds (1 % precision).
#[derive(Debug, Clone)]
pub(crate) struct TurnTimes(hdrhistogram::Histogram<u64>);

impl Default for TurnTimes {
    fn default() -> Self {
        // 1 ns to 100 s at two significant figures; never fails for these
        // constant bounds, and a failure would only lose the percentiles.
        TurnTimes(
            hdrhistogram::Histogram::new_with_bounds(1, 100_000_000_000, 2).unwrap_or_else(|_| {
                hdrhistogram::Histogram::new(2).expect("2 significant figures")
            }),
        )
    }
}

impl TurnTimes {
    fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.max(1));
    }

    fn merge(&mut self, other: &TurnTimes) {
        let _ = self.0.add(&other.0);
    }

    /// The `q` quantile (0 to 1), 0 when nothing was recorded.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.0.len()
    }
}

/// Live counters the terminal view reads while agents run (published every
/// 64 turns, so the hot loop stays free of shared writes).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub api_requests: AtomicU64,
    pub errors: AtomicU64,
    pub unsafe_flags: AtomicU64,
    pub metric_ops: AtomicU64,
}

pub(crate) type SharedProgress = Arc<[CachePadded<Progress>]>;

/// Distributions drawn from, built once from the seed and shared.
pub(crate) struct Workload {
    pub scenario: Scenario,
    models: Weighted,
    tenants: Weighted,
    latency: Vec<LogNormal>,
    ttft: Vec<LogNormal>,
    input_tokens: Vec<LogNormal>,
    output_tokens: Vec<LogNormal>,
    tool_latency: Vec<LogNormal>,
    plan: LogNormal,
    safety: LogNormal,
}

impl Workload {
    pub(crate) fn new(scenario: Scenario, seed: u64) -> Workload {
        let mut rng = Rng::new(seed ^ 0xA5A5_5A5A_DEAD_BEEF);
        let per_model =
            |f: &dyn Fn(&crate::scenario::Model) -> (f64, f64), rng: &mut Rng| -> Vec<LogNormal> {
                scenario
                    .models
                    .iter()
                    .map(|m| {
                        let (median, p99) = f(m);
                        LogNormal::new(median, p99, rng)
                    })
                    .collect()
            };
        let latency = per_model(&|m| (m.latency_ms_median, m.latency_ms_p99), &mut rng);
        let ttft = per_model(&|m| (m.ttft_ms_median, m.ttft_ms_median * 4.0), &mut rng);
        let input_tokens = per_model(
            &|m| (m.input_tokens_median, m.input_tokens_median * 6.0),
            &mut rng,
        );
        let output_tokens = per_model(
            &|m| (m.output_tokens_median, m.output_tokens_median * 5.0),
            &mut rng,
        );
        let tool_latency = scenario
            .tools
            .iter()
            .map(|t| LogNormal::new(t.latency_ms_median, t.latency_ms_p99, &mut rng))
            .collect();
        Workload {
            models: Weighted::new(scenario.models.iter().map(|m| m.weight)),
            tenants: Weighted::new(scenario.tenants.iter().map(|t| t.weight)),
            latency,
            ttft,
            input_tokens,
            output_tokens,
            tool_latency,
            plan: LogNormal::new(40.0, 300.0, &mut rng),
            safety: LogNormal::new(3.0, 25.0, &mut rng),
            scenario,
        }
    }
}

/// Every series a turn records into, resolved once for all agents.
pub(crate) struct Handles {
    llm: Vec<Vec<LlmCallHandle>>,
    tools: Vec<Vec<ToolCallHandle>>,
    safety: Vec<SafetyCheckHandle>,
    api: Vec<[ApiRequestHandle; 3]>,
    turn: OperationHandle,
    plan: OperationHandle,
}

const API_OK: usize = 0;
const API_FAILED: usize = 1;
const API_UNAVAILABLE: usize = 2;

impl Handles {
    /// `None` when the monitor's metrics are off.
    pub(crate) fn resolve(
        metrics: &AgentMetrics,
        scenario: &Scenario,
    ) -> Result<Option<Handles>, MonitorError> {
        let Some(turn) = metrics.operation_handle("agent_turn")? else {
            return Ok(None);
        };
        fn some<T>(handle: Option<T>) -> T {
            handle.expect("the turn handle resolved, so metrics are on")
        }
        let mut llm = Vec::new();
        for m in &scenario.models {
            let mut per_tenant = Vec::new();
            for t in &scenario.tenants {
                per_tenant.push(some(metrics.llm_call_handle(
                    "chat",
                    &m.provider,
                    &m.name,
                    &t.name,
                )?));
            }
            llm.push(per_tenant);
        }
        let mut tools = Vec::new();
        for tool in &scenario.tools {
            let mut per_tenant = Vec::new();
            for t in &scenario.tenants {
                per_tenant.push(some(metrics.tool_call_handle(&tool.name, &t.name)?));
            }
            tools.push(per_tenant);
        }
        let safety = scenario
            .safety_categories
            .iter()
            .map(|c| Ok(some(metrics.safety_check_handle(c)?)))
            .collect::<Result<_, MonitorError>>()?;
        let api = scenario
            .endpoints
            .iter()
            .map(|e| {
                Ok([
                    some(metrics.api_request_handle("POST", e, 200)?),
                    some(metrics.api_request_handle("POST", e, 500)?),
                    some(metrics.api_request_handle("POST", e, 503)?),
                ])
            })
            .collect::<Result<_, MonitorError>>()?;
        Ok(Some(Handles {
            llm,
            tools,
            safety,
            api,
            turn,
            plan: some(metrics.operation_handle("plan")?),
        }))
    }

    /// The duration histogram and token counters of one model for one tenant.
    pub(crate) fn llm(&self, model: usize, tenant: usize) -> &LlmCallHandle {
        &self.llm[model][tenant]
    }
}

const LLM_ERRORS: [ErrorKind; 3] = [
    ErrorKind::Timeout,
    ErrorKind::RateLimited,
    ErrorKind::Unavailable,
];
const MAX_ATTEMPTS: usize = 11;
const MAX_TOOLS: usize = 8;

/// What one turn did, drawn before anything is recorded.
struct Turn {
    tenant: usize,
    model: usize,
    endpoint: usize,
    plan_ms: f64,
    attempts: [(f64, Option<ErrorKind>); MAX_ATTEMPTS],
    attempt_count: usize,
    succeeded: bool,
    ttft_ms: f64,
    input: u64,
    output: u64,
    tools: [(usize, f64, bool); MAX_TOOLS],
    tool_count: usize,
    category: usize,
    verdict: SafetyVerdict,
    safety_ms: f64,
    api_status: usize,
}

pub(crate) struct Agent {
    index: usize,
    rng: Rng,
    workload: Arc<Workload>,
    handles: Arc<Handles>,
    monitor: Monitor,
    progress: SharedProgress,
    clock_overhead_ns: u64,
    /// Turns between two updates of the live counters: every turn when
    /// paced (a few per second), every 64 in stress mode.
    publish_every: u64,
    stats: Stats,
}

/// How long a pair of clock reads takes, to subtract from timed blocks.
pub(crate) fn clock_overhead_ns() -> u64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..1000 {
                std::hint::black_box(Instant::now());
            }
            start.elapsed().as_nanos() as u64 / 1000
        })
        .min()
        .unwrap_or(0)
}

/// A synthetic W3C trace id for turn `turn` of agent `agent` (and span ids
/// for its LLM attempts), derived without touching the workload's random
/// stream, so a seed still reproduces the same totals. Exemplars carry it:
/// Grafana links a slow LLM-latency bucket to the turn that landed there.
fn trace_ids(agent: usize, turn: u64, attempt: usize) -> ([u8; 16], [u8; 8]) {
    let mix = |mut x: u64| {
        // splitmix64's finaliser
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let high = mix(((agent as u64) << 40) ^ turn ^ 0x7472_6163_6500_0000);
    let low = mix(high ^ turn.rotate_left(17));
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&high.to_be_bytes());
    trace_id[8..].copy_from_slice(&low.to_be_bytes());
    let span_id = mix(low ^ (attempt as u64 + 1)).to_be_bytes();
    (trace_id, span_id)
}

/// A simulated latency in milliseconds as a `Duration`. The scenario's
/// ranges keep draws far inside what a `Duration` holds; a value outside
/// still never panics an agent (NaN and negatives read as zero, overflow as
/// the largest `Duration`).
fn ms(d: f64) -> Duration {
    Duration::try_from_secs_f64(d / 1000.0).unwrap_or(if d > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

impl Agent {
    pub(crate) fn new(
        index: usize,
        seed: u64,
        workload: Arc<Workload>,
        handles: Arc<Handles>,
        monitor: Monitor,
        progress: SharedProgress,
        clock_overhead_ns: u64,
    ) -> Agent {
        Agent {
            index,
            rng: Rng::new(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(index as u64 + 1),
            ),
            workload,
            handles,
            monitor,
            progress,
            clock_overhead_ns,
            publish_every: 64,
            stats: Stats::default(),
        }
    }

    /// Runs turns at `rate` per second (0: as fast as possible) until
    /// `duration` has passed (when given) or `stop` is set.
    pub(crate) fn run(mut self, rate: f64, duration: Option<Duration>, stop: &AtomicBool) -> Stats {
        let start = Instant::now();
        self.publish_every = if rate > 0.0 { 1 } else { 64 };
        if rate > 0.0 {
            // Turn i is due at start + i / rate: a fixed number of turns for
            // a given duration, so a seed reproduces the same totals.
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut i: u32 = 0;
            loop {
                let offset = interval * i;
                if duration.is_some_and(|d| offset >= d) || stop.load(Relaxed) {
                    break;
                }
                let due = start + offset;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                self.turn();
                i += 1;
            }
        } else {
            let deadline = duration.map(|d| start + d);
            while !stop.load(Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                for _ in 0..256 {
                    self.turn();
                }
            }
        }
        self.publish();
        self.stats.wall_ns = start.elapsed().as_nanos() as u64;
        self.stats
    }

    fn publish(&self) {
        let p = &self.progress[self.index];
        p.api_requests
            .store(self.stats.totals.api_requests, Relaxed);
        p.errors.store(self.stats.totals.errors, Relaxed);
        p.unsafe_flags
            .store(self.stats.totals.unsafe_flags, Relaxed);
        p.metric_ops.store(self.stats.totals.metric_ops, Relaxed);
    }

    fn draw(&mut self) -> Turn {
        let w = &*self.workload;
        let rng = &mut self.rng;
        let s = &w.scenario;
        let model = w.models.pick(rng);
        let tenant = w.tenants.pick(rng);
        let endpoint = rng.below(s.endpoints.len());
        let mut turn = Turn {
            tenant,
            model,
            endpoint,
            plan_ms: w.plan.draw(rng),
            attempts: [(0.0, None); MAX_ATTEMPTS],
            attempt_count: 0,
            succeeded: false,
            ttft_ms: w.ttft[model].draw(rng),
            input: (w.input_tokens[model].draw(rng) as u64).max(1),
            output: (w.output_tokens[model].draw(rng) as u64).max(1),
            tools: [(0, 0.0, false); MAX_TOOLS],
            tool_count: 0,
            category: rng.below(s.safety_categories.len()),
            verdict: SafetyVerdict::Safe,
            safety_ms: w.safety.draw(rng),
            api_status: API_OK,
        };
        let retries = s.rates.max_retries as usize;
        for attempt in 0..=retries {
            let latency = w.latency[model].draw(rng);
            let failed = rng.chance(s.models[model].error_rate);
            let kind = failed.then(|| LLM_ERRORS[rng.below(LLM_ERRORS.len())]);
            turn.attempts[attempt] = (latency, kind);
            turn.attempt_count = attempt + 1;
            if !failed {
                turn.succeeded = true;
                break;
            }
        }
        let mean = s.rates.tool_calls_per_turn;
        let tool_count =
            (mean.floor() as usize + usize::from(rng.chance(mean.fract()))).min(MAX_TOOLS);
        for slot in turn.tools.iter_mut().take(tool_count) {
            let tool = rng.below(s.tools.len());
            *slot = (
                tool,
                w.tool_latency[tool].draw(rng),
                rng.chance(s.tools[tool].error_rate),
            );
        }
        turn.tool_count = tool_count;
        turn.verdict = if rng.chance(s.rates.unsafe_rate) {
            SafetyVerdict::Unsafe
        } else if rng.chance(s.rates.safety_error_rate) {
            SafetyVerdict::Error
        } else {
            SafetyVerdict::Safe
        };
        turn.api_status = if !turn.succeeded {
            API_UNAVAILABLE
        } else if rng.chance(s.rates.api_error_rate) {
            API_FAILED
        } else {
            API_OK
        };
        turn
    }

    fn turn(&mut self) {
        let turn = self.draw();
        let timed = self.stats.totals.turns % 16 == 0;
        let first_uses = timed.then(beluga_metrics::diagnostics::first_uses_on_this_thread);
        let started = timed.then(Instant::now);
        let ops = self.record(&turn);
        if let (Some(started), Some(first_uses)) = (started, first_uses) {
            let ns = (started.elapsed().as_nanos() as u64).saturating_sub(self.clock_overhead_ns);
            if beluga_metrics::diagnostics::first_uses_on_this_thread() == first_uses {
                self.stats.steady_record_ns += ns;
                self.stats.steady_ops += ops;
                self.stats.steady_turns.record(ns);
            } else {
                self.stats.first_use_record_ns += ns;
                self.stats.first_use_turns += 1;
            }
        }
        self.stats.totals.metric_ops += ops;
        self.stats.totals.turns += 1;
        if self.stats.totals.turns % self.publish_every == 0 {
            self.publish();
        }
    }

    /// Records one turn; returns the number of metric operations performed.
    fn record(&mut self, turn: &Turn) -> u64 {
        let h = &*self.handles;
        let s = &self.workload.scenario;
        let metrics = self.monitor.metrics();
        let model = &s.models[turn.model];
        let tenant = s.tenants[turn.tenant].name.as_str();
        let mut ops = 0u64;
        let mut simulated_ms = turn.plan_ms;

        let running = h.turn.begin();
        h.plan.record(ms(turn.plan_ms));
        ops += 4;

        for (attempt, &(latency, kind)) in turn.attempts[..turn.attempt_count].iter().enumerate() {
            simulated_ms += latency;
            self.stats.totals.llm_calls += 1;
            match kind {
                None => {
                    let llm = &h.llm[turn.model][turn.tenant];
                    let (trace_id, span_id) =
                        trace_ids(self.index, self.stats.totals.turns, attempt);
                    llm.record_traced(ms(latency), turn.input, turn.output, trace_id, span_id);
                    llm.record_time_to_first_chunk(ms(turn.ttft_ms.min(latency)));
                    let usd = turn.input as f64 / 1000.0 * model.usd_per_1k_input
                        + turn.output as f64 / 1000.0 * model.usd_per_1k_output;
                    llm.add_cost_usd(usd);
                    ops += 7;
                    let totals = &mut self.stats.totals;
                    totals.tokens_input = totals.tokens_input.saturating_add(turn.input);
                    totals.tokens_output = totals.tokens_output.saturating_add(turn.output);
                }
                Some(kind) => {
                    let call = LlmCall::chat(&model.provider, &model.name, tenant)
                        .duration(ms(latency))
                        .error(kind);
                    let _ = metrics.record_llm_call(&call);
                    let _ = metrics.record_error("llm", kind);
                    ops += 2;
                    self.stats.totals.errors += 1;
                }
            }
        }

        for &(tool, latency, failed) in &turn.tools[..turn.tool_count] {
            simulated_ms += latency;
            if failed {
                let name = s.tools[tool].name.as_str();
                let kind = ErrorKind::ToolFailure;
                let _ = metrics.record_tool_call(name, tenant, ms(latency), Some(kind.as_str()));
                let _ = metrics.record_error("tools", kind);
                ops += 2;
                self.stats.totals.errors += 1;
            } else {
                h.tools[tool][turn.tenant].record(ms(latency));
                ops += 1;
            }
        }

        simulated_ms += turn.safety_ms;
        h.safety[turn.category].record(turn.verdict, ms(turn.safety_ms));
        ops += 2;
        if turn.verdict == SafetyVerdict::Unsafe {
            ops += 1;
            self.stats.totals.unsafe_flags += 1;
        }

        h.api[turn.endpoint][turn.api_status].record(ms(simulated_ms));
        ops += 2;
        self.stats.totals.api_requests += 1;
        if turn.api_status != API_OK {
            let kind = if turn.api_status == API_UNAVAILABLE {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Other
            };
            let _ = metrics.record_error("api", kind);
            ops += 1;
            self.stats.totals.errors += 1;
        }

        running.end_with_duration(ms(simulated_ms));
        ops += 2;
        self.stats.simulated_ns = self
            .stats
            .simulated_ns
            .saturating_add((simulated_ms * 1e6) as u64);
        ops
    }
}
