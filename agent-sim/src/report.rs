//! The final report: a JSON object (`--report json`) or a human summary.

use std::time::Duration;

use serde::Serialize;

use crate::agent::{Stats, Totals};

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub duration_s: f64,
    pub agents: usize,
    pub seed: u64,
    #[serde(flatten)]
    pub totals: Totals,
    pub metric_ops_per_sec: f64,
    /// Steady-state cost of one metric operation: recording time over
    /// operations in the timed turns (every 16th, clock overhead removed)
    /// that paid no first use.
    pub overhead_ns_per_op: f64,
    /// Recording time of one whole steady-state turn (every metric of the
    /// turn): median and 99th percentile over the timed turns.
    pub steady_turn_ns_median: u64,
    pub steady_turn_ns_p99: u64,
    pub steady_turns_timed: u64,
    /// Timed turns that paid a first use (a new series, the thread's first
    /// record, a new part of a histogram), and their mean recording time.
    pub first_use_turns_timed: u64,
    pub first_use_turn_ns_mean: f64,
    /// Recording time as a share of the simulated agent time (what a real
    /// agent spends on LLM and tool calls).
    pub overhead_share_of_agent_time: f64,
    /// Recording time as a share of the simulator's own busy loop (only
    /// meaningful in stress mode, where the loop does nothing else).
    pub overhead_share_of_wall_loop: f64,
}

impl Report {
    pub(crate) fn new(stats: &Stats, elapsed: Duration, agents: usize, seed: u64) -> Report {
        let duration_s = elapsed.as_secs_f64();
        let per_op = ratio(stats.steady_record_ns as f64, stats.steady_ops as f64);
        let record_ns_estimate = per_op * stats.totals.metric_ops as f64;
        Report {
            duration_s,
            agents,
            seed,
            totals: stats.totals,
            metric_ops_per_sec: if duration_s > 0.0 {
                stats.totals.metric_ops as f64 / duration_s
            } else {
                0.0
            },
            overhead_ns_per_op: per_op,
            steady_turn_ns_median: stats.steady_turns.quantile(0.5),
            steady_turn_ns_p99: stats.steady_turns.quantile(0.99),
            steady_turns_timed: stats.steady_turns.len(),
            first_use_turns_timed: stats.first_use_turns,
            first_use_turn_ns_mean: ratio(
                stats.first_use_record_ns as f64,
                stats.first_use_turns as f64,
            ),
            overhead_share_of_agent_time: ratio(record_ns_estimate, stats.simulated_ns as f64),
            overhead_share_of_wall_loop: ratio(
                record_ns_estimate,
                stats.wall_ns as f64 * agents as f64,
            ),
        }
    }

    pub(crate) fn human(&self) -> String {
        let mut out = format!(
            "agent-sim: {turns} turns by {agents} agent(s) in {d:.1} s (seed {seed})\n\
             \x20 api requests   {api}\n\
             \x20 llm calls      {llm}\n\
             \x20 tokens         {ti} in / {to} out\n\
             \x20 errors         {err}\n\
             \x20 unsafe flags   {unsafe_}\n\
             \x20 metric ops     {ops} ({ops_s}: counter adds, histogram records, gauge sets and label lookups)\n",
            turns = self.totals.turns,
            agents = self.agents,
            d = self.duration_s,
            seed = self.seed,
            api = self.totals.api_requests,
            llm = self.totals.llm_calls,
            ti = self.totals.tokens_input,
            to = self.totals.tokens_output,
            err = self.totals.errors,
            unsafe_ = self.totals.unsafe_flags,
            ops = self.totals.metric_ops,
            ops_s = if self.metric_ops_per_sec >= 1e6 {
                format!("{:.1} M/s", self.metric_ops_per_sec / 1e6)
            } else {
                format!("{:.0}/s", self.metric_ops_per_sec)
            },
        );
        if self.steady_turns_timed == 0 {
            out.push_str(
                "  recording cost too short a run to time (every 16th turn is timed once its series exist); run longer\n",
            );
            return out;
        }
        out.push_str(&format!(
            "  recording cost {ns:.1} ns per metric op: the time the agents spent inside beluga-metrics calls, \
             measured on every 16th turn once its series existed, clock overhead removed\n\
             \x20                = {agent:.5} % of simulated agent time, {wall:.1} % of the simulator's busy loop\n\
             \x20 one turn       {median} ns median, {p99} ns p99 to record a whole turn ({steady} timed turns); \
             turns that created series: {first:.0} ns on average ({firsts} timed turns)\n",
            ns = self.overhead_ns_per_op,
            agent = self.overhead_share_of_agent_time * 100.0,
            wall = self.overhead_share_of_wall_loop * 100.0,
            median = self.steady_turn_ns_median,
            p99 = self.steady_turn_ns_p99,
            steady = self.steady_turns_timed,
            first = self.first_use_turn_ns_mean,
            firsts = self.first_use_turns_timed,
        ));
        out
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_too_short_to_time_says_so() {
        let report = Report::new(&Stats::default(), Duration::from_secs(1), 1, 42);
        let text = report.human();
        assert!(text.contains("too short a run to time"), "{text}");
        assert!(!text.contains("0.0 ns per metric op"), "{text}");
    }
}
