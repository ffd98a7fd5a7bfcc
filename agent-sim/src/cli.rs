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

/// The longest duration any flag takes: a year. Longer ones are refused
/// with an error instead of overflowing a deadline somewhere later.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The most agents (one thread each) a run may start.
pub(crate) const MAX_AGENTS: usize = 1024;

/// The highest `--rate`, in turns per second per agent.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;

/// Parses `--agents`: 1 to [`MAX_AGENTS`].
pub(crate) fn parse_agents(text: &str) -> Result<usize, String> {
    let agents: usize = text.trim().parse().map_err(|_| {
        format!("invalid agent count {text:?}: use a whole number from 1 to {MAX_AGENTS}")
    })?;
    if !(1..=MAX_AGENTS).contains(&agents) {
        return Err(format!(
            "--agents must be at least 1 and at most {MAX_AGENTS} (one thread each), got {agents}"
        ));
    }
    Ok(agents)
}

/// Parses `--rate`: turns per second per agent, 0 (stress mode) to [`MAX_RATE`].
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|_| {
        format!("invalid rate {text:?}: use turns per second per agent, 0 for stress mode")
    })?;
    if !(0.0..=MAX_RATE).contains(&rate) {
        return Err(format!(
            "--rate must be from 0 (stress mode) to {MAX_RATE} turns per second, got {text}"
        ));
    }
    Ok(rate)
}

/// Parses `20s`, `2m`, `1h30m`, `500ms`: up to [`MAX_DURATION`].
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
        let too_long = || format!("duration {text:?} is longer than a year");
        let part = Duration::try_from_secs_f64(seconds).map_err(|_| too_long())?;
        total = total
            .checked_add(part)
            .filter(|t| *t <= MAX_DURATION)
            .ok_or_else(too_long)?;
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
    #[arg(long, default_value_t = default_agents(), value_parser = parse_agents, allow_negative_numbers = true)]
    pub agents: usize,

    /// How long to run, e.g. 20s, 2m (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Turns per second per agent; 0 runs as fast as possible (stress mode).
    #[arg(long, default_value_t = 20.0, value_parser = parse_rate, allow_negative_numbers = true)]
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

    /// Exporter to run (default: prometheus; otlp in a build with only
    /// the `otlp` feature).
    #[arg(long, value_enum)]
    pub exporter: Option<ExporterKind>,

    /// OTLP collector base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT or
    /// http://localhost:4318). The --otlp-* flags need the `otlp` feature.
    #[arg(long)]
    pub otlp_endpoint: Option<String>,

    /// OTLP export interval, e.g. 10s (default: OTEL_METRIC_EXPORT_INTERVAL or 60s).
    #[arg(long, value_parser = parse_duration)]
    pub otlp_interval: Option<Duration>,

    /// OTLP transport: http (protobuf, port 4318) or grpc (port 4317)
    /// (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http).
    #[arg(long, value_parser = ["http", "grpc"])]
    pub otlp_protocol: Option<String>,

    /// OTLP temporality: cumulative or delta (default:
    /// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, else cumulative).
    #[arg(long, value_parser = ["cumulative", "delta"])]
    pub otlp_temporality: Option<String>,

    /// Remote-write receiver for `--exporter remote-write`
    /// (Prometheus: http://HOST:9090/api/v1/write, with --web.enable-remote-write-receiver).
    #[arg(long)]
    pub remote_write_url: Option<String>,

    /// Remote-write interval, e.g. 5s.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub remote_write_interval: Duration,

    /// The `instance` label of pushed metrics (default: the host name and
    /// process id); scraped metrics get the target address instead.
    #[arg(long)]
    pub instance: Option<String>,

    /// After the agents stop, how long to wait for one more scrape (or for
    /// the final OTLP export) so the last totals are delivered.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub final_scrape_wait: Duration,

    /// No live terminal view.
    #[arg(long)]
    pub quiet: bool,

    /// Leave out the `process_*` metrics (CPU, memory, file descriptors,
    /// threads) and the `tokio_runtime_*` metrics of the exporter's runtime.
    #[arg(long)]
    pub no_process_metrics: bool,
}

impl Args {
    /// Refuses flags of an exporter this build leaves out, saying how to
    /// rebuild, instead of ignoring them.
    pub(crate) fn check_features(&self) -> Result<(), String> {
        if let Some(kind) = self.exporter {
            kind.compiled_in()?;
        }
        if !cfg!(feature = "otlp") {
            let given = [
                ("--otlp-endpoint", self.otlp_endpoint.is_some()),
                ("--otlp-interval", self.otlp_interval.is_some()),
                ("--otlp-protocol", self.otlp_protocol.is_some()),
                ("--otlp-temporality", self.otlp_temporality.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                return Err(crate::exporter::missing_feature(flag, "otlp"));
            }
        }
        if !cfg!(feature = "prometheus") && self.remote_write_url.is_some() {
            return Err(crate::exporter::missing_feature(
                "--remote-write-url",
                "prometheus",
            ));
        }
        Ok(())
    }

    pub(crate) fn exporter_settings(&self) -> Settings {
        Settings {
            kind: self
                .exporter
                .unwrap_or_else(ExporterKind::default_for_build),
            listen: self.listen.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
            otlp_interval: self.otlp_interval,
            otlp_grpc: self.otlp_protocol.as_deref().map(|p| p == "grpc"),
            otlp_delta: self.otlp_temporality.as_deref().map(|t| t == "delta"),
            remote_write_url: self.remote_write_url.clone(),
            remote_write_interval: self.remote_write_interval,
            instance: self.instance.clone().unwrap_or_else(|| {
                let host = std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_string())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into());
                format!("{host}:{}", std::process::id())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags of a left-out exporter fail with the rebuild command; in a
    /// build that has it they pass (CI runs this in the default build,
    /// with every feature, and with only `otlp`).
    #[test]
    fn flags_of_an_exporter_left_out_say_how_to_rebuild() {
        let parse = |args: &[&str]| {
            Args::try_parse_from(std::iter::once("agent-sim").chain(args.iter().copied()))
                .expect("the flags parse in every build")
        };
        let otlp = parse(&["--otlp-endpoint", "http://127.0.0.1:4318"]).check_features();
        let exporter = parse(&["--exporter", "otlp"]).check_features();
        if cfg!(feature = "otlp") {
            assert_eq!(otlp, Ok(()));
            assert_eq!(exporter, Ok(()));
        } else {
            let error = otlp.unwrap_err();
            assert!(
                error.contains("--otlp-endpoint") && error.contains("--features otlp"),
                "{error}"
            );
            assert!(exporter.unwrap_err().contains("--features otlp"));
        }
        let remote =
            parse(&["--remote-write-url", "http://127.0.0.1:9090/api/v1/write"]).check_features();
        assert_eq!(remote.is_ok(), cfg!(feature = "prometheus"), "{remote:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h1h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "",
            "20",
            "s",
            "5 minutes",
            "-1s",
            "3d",
            ".",
            "1..2s",
            "1e3s",
            "NaNs",
            "infs",
            "1µs",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        for huge in [
            "5000000000000000h",
            "9000h",
            "18446744073709551615s",
            "8761h",
        ] {
            let error = parse_duration(huge).unwrap_err();
            assert!(error.contains("longer than a year"), "{huge}: {error}");
        }
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
    }

    #[test]
    fn agents_and_rates_have_ranges() {
        assert_eq!(parse_agents("4"), Ok(4));
        assert_eq!(parse_agents("1024"), Ok(1024));
        for bad in ["0", "1025", "100000", "-1", "x", "", "18446744073709551616"] {
            assert!(parse_agents(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["-1", "NaN", "inf", "1e7", "fast", ""] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    /// No flag value, however odd, makes the parser panic.
    #[test]
    fn no_flag_value_panics() {
        use clap::Parser as _;
        let values = [
            "",
            " ",
            "0",
            "-0",
            "1h1h",
            "🐋",
            "1µs",
            "\u{0}",
            "99999999999999999999999h",
            "1e308s",
            "-",
            "--",
            "0x10",
            "1_000",
        ];
        for flag in [
            "--agents",
            "--rate",
            "--duration",
            "--otlp-interval",
            "--final-scrape-wait",
            "--seed",
            "--listen",
            "--report",
            "--exporter",
        ] {
            for value in values {
                let _ = Args::try_parse_from(["agent-sim", flag, value]);
            }
        }
    }
}
