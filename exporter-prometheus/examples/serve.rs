//! Serves a small registry on 127.0.0.1:2222 until Ctrl-C (or stdin closes).
//!
//! `cargo run -p beluga-exporter-prometheus --example serve`, then
//! `curl -s localhost:2222/metrics`.

use beluga_exporter_prometheus::PrometheusExporter;
use beluga_metrics::{Opts, Registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new();
    registry
        .counter(Opts::new(
            "example_starts_total",
            "Times this example started.",
        ))?
        .inc();
    let exporter = PrometheusExporter::builder()
        .registry(&registry)
        .listen("127.0.0.1:2222")
        .serve_in_thread()?;
    println!(
        "serving http://{}/metrics; press Enter to stop",
        exporter.local_addr()
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    exporter.shutdown();
    Ok(())
}
