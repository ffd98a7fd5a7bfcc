//! Command-line flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::exporter::{ExporterKind, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One JSON object on stdout at exit.
    Json,
}

fn default_agents() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses `20s`, `2m`, `1h30m`, `500ms`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {text:?}: use a number with a unit, like 20s, 2m, 1h30m or 500ms")
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(seconds).map_err(|_| bad())?;
        rest = tail;
    }
    Ok(total)
}

#[derive(Debug, Parser)]
#[command(
    name = "agent-sim",
    version,
    about = "Simulates AI agents (LLM calls, tools, safety checks, API requests) and records their metrics with beluga-metrics."
)]
pub(crate) struct Args {
    /// Simulated agents, one thread each (default: one per core).
    #[arg(long, default_value_t = default_agents())]
    pub agents: usize,

    /// How long to run, e.g. 20s, 2m (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Turns per second per agent; 0 runs as fast as possible (stress mode).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,

    /// Address of the /metrics endpoint (Prometheus exporter).
    #[arg(long, default_value = "0.0.0.0:2222")]
    pub listen: String,

    /// Seed of the workload: the same seed, rate and duration give the same totals.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Scenario file (TOML; see deploy/scenarios/default.toml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,

    /// Print a machine-readable report on stdout at exit.
    #[arg(long, value_enum)]
    pub report: Option<ReportFormat>,

    /// Exporter to run (those compiled in; default: prometheus if built with it).
    #[arg(long, value_enum)]
    pub exporter: Option<ExporterKind>,

    /// OTLP collector base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318).
    #[arg(long)]
    pub otlp_endpoint: Option<String>,

    /// OTLP export interval, e.g. 10s (default: OTEL_METRIC_EXPORT_INTERVAL or 60s).
    #[arg(long, value_parser = parse_duration)]
    pub otlp_interval: Option<Duration>,

    /// After the agents stop, how long to wait for one more scrape (or for
    /// the final OTLP export) so the last totals are delivered.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub final_scrape_wait: Duration,

    /// No live terminal view.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    pub(crate) fn exporter_settings(&self) -> Settings {
        Settings {
            kind: self
                .exporter
                .unwrap_or_else(ExporterKind::default_for_build),
            listen: self.listen.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
            otlp_interval: self.otlp_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "20", "s", "5 minutes", "-1s", "3d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
