//! agent-sim: simulated AI agents recording through beluga-metrics, served
//! at `/metrics` (default build) or pushed over OTLP (`--features otlp`).
//!
//! `cargo run --release -p agent-sim` starts one agent per core at 20 turns
//! per second each, serves `http://0.0.0.0:2222/metrics`, and shows a live
//! view until Ctrl-C. `--rate 0` is stress mode: agents record as fast as
//! they can and the final report gives metric operations per second and the
//! measured cost per operation.

#![forbid(unsafe_code)]

mod agent;
mod cli;
mod exporter;
mod report;
mod rng;
mod scenario;
mod view;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beluga_metrics::Registry;
use beluga_monitor::Monitor;
use clap::Parser;
use crossbeam_utils::CachePadded;

use agent::{Agent, Handles, Progress, SharedProgress, Stats, Workload};
use cli::{Args, ReportFormat};
use scenario::Scenario;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    args.check_features()?;
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path).map_err(|e| e.to_string())?,
        None => Scenario::default_scenario(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("agent-sim-io")
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;

    let registry = Registry::new();
    let monitor = Monitor::builder()
        .service_name("agent-sim")
        .registry(&registry)
        .build()
        .map_err(|e| e.to_string())?;
    if !args.no_process_metrics {
        beluga_process_metrics::register(&registry).map_err(|e| e.to_string())?;
        beluga_process_metrics::RuntimeCollector::register(
            &registry,
            "agent-sim-io",
            runtime.handle(),
        )
        .map_err(|e| e.to_string())?;
    }
    for component in ["llm_gateway", "tools", "safety", "api"] {
        monitor
            .metrics()
            .update_component_health(component, true)
            .map_err(|e| e.to_string())?;
    }
    let handles = Arc::new(
        Handles::resolve(monitor.metrics(), &scenario)
            .map_err(|e| e.to_string())?
            .expect("metrics are on"),
    );
    let exporter = exporter::Running::start(&args.exporter_settings(), &monitor, &runtime)?;
    let banner = format!(
        "agent-sim · {} agent(s) · {} · seed {} · {}",
        args.agents,
        if args.rate > 0.0 {
            format!("{} turns/s each", args.rate)
        } else {
            "stress mode".into()
        },
        args.seed,
        exporter.describe()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let skip_final_wait = Arc::new(AtomicBool::new(false));
    {
        let (stop, skip) = (stop.clone(), skip_final_wait.clone());
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    skip.store(true, Ordering::Relaxed);
                }
            }
        });
    }

    let workload = Arc::new(Workload::new(scenario, args.seed));
    let progress: SharedProgress = (0..args.agents)
        .map(|_| CachePadded::new(Progress::default()))
        .collect();
    let clock = agent::clock_overhead_ns();
    let started = Instant::now();
    let agents: Vec<_> = (0..args.agents)
        .map(|i| {
            let agent = Agent::new(
                i,
                args.seed,
                workload.clone(),
                handles.clone(),
                monitor.clone(),
                progress.clone(),
                clock,
            );
            let (stop, rate, duration) = (stop.clone(), args.rate, args.duration);
            std::thread::Builder::new()
                .name(format!("agent-{i}"))
                .spawn(move || agent.run(rate, duration, &stop))
                .map_err(|e| format!("cannot start agent thread: {e}"))
        })
        .collect::<Result<_, _>>()?;

    let live = !args.quiet && std::io::stderr().is_terminal();
    let mut view = view::LiveView::new(args.duration);
    if !live {
        eprintln!("{banner}");
    }
    while !agents.iter().all(|a| a.is_finished()) {
        std::thread::sleep(Duration::from_millis(if live { 1000 } else { 50 }));
        if live {
            view.draw(&progress, &handles, &workload.scenario, &banner);
        }
    }
    let mut stats = Stats::default();
    for agent in agents {
        stats += agent
            .join()
            .map_err(|_| "an agent thread panicked".to_string())?;
    }
    let elapsed = started.elapsed();
    if live {
        view.draw(&progress, &handles, &workload.scenario, &banner);
    }

    let delivered = exporter.finish(args.final_scrape_wait, &runtime, &skip_final_wait);

    let report = report::Report::new(&stats, elapsed, args.agents, args.seed);
    match args.report {
        Some(ReportFormat::Json) => {
            println!(
                "{}",
                serde_json::to_string(&report).expect("the report serialises")
            );
        }
        None => eprint!("{}", report.human()),
    }
    delivered.map_err(|e| format!("the final export failed: {e}"))
}
