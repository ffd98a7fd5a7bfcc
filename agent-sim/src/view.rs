//! The live terminal view: a progress bar and a table refreshed every
//! second, with LLM latency quantiles read from the engine's own histograms.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::agent::{Handles, SharedProgress};
use crate::scenario::Scenario;

pub(crate) struct LiveView {
    started: Instant,
    duration: Option<Duration>,
    last: Option<(Instant, [u64; 3], Vec<u64>)>,
    lines_drawn: usize,
}

fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

impl LiveView {
    pub(crate) fn new(duration: Option<Duration>) -> LiveView {
        LiveView {
            started: Instant::now(),
            duration,
            last: None,
            lines_drawn: 0,
        }
    }

    /// Redraws the view on stderr.
    pub(crate) fn draw(
        &mut self,
        progress: &SharedProgress,
        handles: &Handles,
        scenario: &Scenario,
        banner: &str,
    ) {
        let now = Instant::now();
        let elapsed = now - self.started;
        let totals = progress.iter().fold([0u64; 3], |mut acc, p| {
            acc[0] += p.api_requests.load(Relaxed);
            acc[1] += p.errors.load(Relaxed);
            acc[2] += p.unsafe_flags.load(Relaxed);
            acc
        });
        let ops: u64 = progress.iter().map(|p| p.metric_ops.load(Relaxed)).sum();
        let tokens: Vec<u64> = (0..scenario.models.len())
            .map(|m| {
                (0..scenario.tenants.len())
                    .map(|t| {
                        let (i, o) = handles.llm(m, t).tokens_used();
                        i + o
                    })
                    .sum()
            })
            .collect();
        let (since, before, tokens_before) =
            self.last
                .clone()
                .unwrap_or((self.started, [0; 3], vec![0; tokens.len()]));
        let dt = (now - since).as_secs_f64().max(1e-9);
        let per_s = |i: usize| (totals[i] - before[i]) as f64 / dt;

        let mut lines = vec![banner.to_string()];
        lines.push(match self.duration {
            Some(d) => format!(
                "{} {:>5.1}s / {:.0}s",
                bar(elapsed.as_secs_f64() / d.as_secs_f64(), 40),
                elapsed.as_secs_f64(),
                d.as_secs_f64()
            ),
            None => format!("running {:.0}s (Ctrl-C to stop)", elapsed.as_secs_f64()),
        });
        lines.push(format!(
            "last {dt:.0} s: requests/s {:>8.1}   errors/s {:>6.1}   | since start: unsafe flags {:>6}   metric ops {:>12}",
            per_s(0),
            per_s(1),
            totals[2],
            ops
        ));
        lines.push(format!(
            "{:<16} {:<12} {:>10} {:>9} {:>9} {:>9}",
            "model", "provider", "tokens/s", "p50 ms", "p95 ms", "p99 ms"
        ));
        lines.push(format!(
            "{:<16} {:<12} {:>10} {:>29}",
            "",
            "",
            format!("(last {dt:.0} s)"),
            "(LLM call latency since start)"
        ));
        for (m, model) in scenario.models.iter().enumerate() {
            let mut merged: Option<beluga_metrics::Quantiles> = None;
            for t in 0..scenario.tenants.len() {
                let q = handles.llm(m, t).duration_histogram().quantiles();
                match &mut merged {
                    None => merged = Some(q),
                    Some(all) => {
                        all.merge(&q);
                    }
                }
            }
            let quantile = |p: f64| merged.as_ref().map_or(0.0, |q| q.quantile(p) * 1000.0);
            let tokens_per_s = (tokens[m] - tokens_before.get(m).copied().unwrap_or(0)) as f64 / dt;
            lines.push(format!(
                "{:<16} {:<12} {:>10.0} {:>9.0} {:>9.0} {:>9.0}",
                model.name,
                model.provider,
                tokens_per_s,
                quantile(0.5),
                quantile(0.95),
                quantile(0.99)
            ));
        }
        let mut err = std::io::stderr().lock();
        if self.lines_drawn > 0 {
            let _ = write!(err, "\x1b[{}A", self.lines_drawn);
        }
        for line in &lines {
            let _ = writeln!(err, "\x1b[2K{line}");
        }
        let _ = err.flush();
        self.lines_drawn = lines.len();
        self.last = Some((now, totals, tokens));
    }
}
