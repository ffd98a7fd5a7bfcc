//! The exporter, chosen at build time: `prometheus` (default feature)
//! serves `/metrics`; `otlp` pushes to a collector. This is the only file
//! that knows which one is compiled in; the agents record through the
//! monitor either way.

use std::time::Duration;

use beluga_monitor::Monitor;

#[cfg(not(any(feature = "prometheus", feature = "otlp")))]
compile_error!("agent-sim needs an exporter: enable the `prometheus` or the `otlp` feature");

/// Which exporter to run. Every kind is listed whatever the build, so that
/// asking for one this build leaves out says how to rebuild, instead of
/// clap's bare "invalid value".
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExporterKind {
    /// Serve /metrics for Prometheus to scrape (feature `prometheus`, the default).
    Prometheus,
    /// Push by Prometheus remote write, to --remote-write-url (feature `prometheus`).
    RemoteWrite,
    /// Push OTLP (HTTP or gRPC) to a collector (feature `otlp`).
    Otlp,
}

/// The error for an exporter or a flag this build leaves out.
pub(crate) fn missing_feature(what: &str, feature: &str) -> String {
    format!(
        "{what} needs the `{feature}` feature, which this build leaves out: \
         rebuild with `cargo run --release -p agent-sim --features {feature}`"
    )
}

impl ExporterKind {
    /// Whether this build has the exporter, or the error saying how to get it.
    pub(crate) fn compiled_in(self) -> Result<(), String> {
        let (compiled, feature, name) = match self {
            ExporterKind::Prometheus => (cfg!(feature = "prometheus"), "prometheus", "prometheus"),
            ExporterKind::RemoteWrite => {
                (cfg!(feature = "prometheus"), "prometheus", "remote-write")
            }
            ExporterKind::Otlp => (cfg!(feature = "otlp"), "otlp", "otlp"),
        };
        if compiled {
            Ok(())
        } else {
            Err(missing_feature(&format!("--exporter {name}"), feature))
        }
    }

    pub(crate) fn default_for_build() -> ExporterKind {
        #[cfg(feature = "prometheus")]
        return ExporterKind::Prometheus;
        #[cfg(not(feature = "prometheus"))]
        return ExporterKind::Otlp;
    }
}

pub(crate) struct Settings {
    pub kind: ExporterKind,
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub listen: String,
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub otlp_endpoint: Option<String>,
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub otlp_interval: Option<Duration>,
    /// `Some(true)`: gRPC; `Some(false)`: HTTP; `None`: the environment's.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub otlp_grpc: Option<bool>,
    /// `Some(true)`: delta; `Some(false)`: cumulative; `None`: the environment's.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub otlp_delta: Option<bool>,
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub remote_write_url: Option<String>,
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub remote_write_interval: Duration,
    /// The `instance` label pushed data carries (scraped data gets the
    /// target's address).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub instance: String,
}

/// A running exporter.
pub(crate) enum Running {
    #[cfg(feature = "prometheus")]
    Prometheus(beluga_exporter_prometheus::ExporterThread),
    #[cfg(feature = "otlp")]
    Otlp(beluga_exporter_otlp::OtlpExporter),
    #[cfg(feature = "prometheus")]
    RemoteWrite(beluga_exporter_prometheus::RemoteWriter, Duration),
}

impl Running {
    pub(crate) fn start(
        settings: &Settings,
        monitor: &Monitor,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Running, String> {
        let _ = (runtime, monitor);
        settings.kind.compiled_in()?;
        match settings.kind {
            #[cfg(feature = "prometheus")]
            ExporterKind::Prometheus => beluga_exporter_prometheus::PrometheusExporter::builder()
                .registry(monitor.registry())
                .listen(settings.listen.clone())
                .serve_in_thread()
                .map(Running::Prometheus)
                .map_err(|e| e.to_string()),
            #[cfg(feature = "prometheus")]
            ExporterKind::RemoteWrite => {
                let url = settings.remote_write_url.clone().ok_or_else(|| {
                    "--exporter remote-write needs --remote-write-url (e.g. http://127.0.0.1:9090/api/v1/write)"
                        .to_string()
                })?;
                let _guard = runtime.enter();
                beluga_exporter_prometheus::RemoteWriteBuilder::new(url)
                    .registry(monitor.registry())
                    .external_label("job", "beluga-agent")
                    .external_label("instance", settings.instance.clone())
                    .interval(settings.remote_write_interval)
                    .spawn()
                    .map(|writer| Running::RemoteWrite(writer, settings.remote_write_interval))
                    .map_err(|e| e.to_string())
            }
            #[cfg(feature = "otlp")]
            ExporterKind::Otlp => {
                let _guard = runtime.enter();
                let mut builder = beluga_exporter_otlp::OtlpExporter::builder()
                    .registry(monitor.registry())
                    .service_name(monitor.service_name());
                if let Some(endpoint) = &settings.otlp_endpoint {
                    builder = builder.endpoint(endpoint.clone());
                }
                if let Some(interval) = settings.otlp_interval {
                    builder = builder.interval(interval);
                }
                if let Some(grpc) = settings.otlp_grpc {
                    builder = builder.protocol(if grpc {
                        beluga_exporter_otlp::Protocol::Grpc
                    } else {
                        beluga_exporter_otlp::Protocol::HttpProtobuf
                    });
                }
                if let Some(delta) = settings.otlp_delta {
                    builder = builder.temporality(if delta {
                        beluga_exporter_otlp::Temporality::Delta
                    } else {
                        beluga_exporter_otlp::Temporality::Cumulative
                    });
                }
                builder
                    .spawn()
                    .map(Running::Otlp)
                    .map_err(|e| e.to_string())
            }
            // Refused above by `compiled_in`.
            #[allow(unreachable_patterns)]
            kind => Err(format!("{kind:?}: not compiled in")),
        }
    }

    /// Where the metrics go, for the banner.
    pub(crate) fn describe(&self) -> String {
        match self {
            #[cfg(feature = "prometheus")]
            Running::Prometheus(e) => format!("serving http://{}/metrics", e.local_addr()),
            #[cfg(feature = "otlp")]
            Running::Otlp(e) => format!("pushing OTLP every {:?}", e.interval()),
            #[cfg(feature = "prometheus")]
            Running::RemoteWrite(_, interval) => format!("remote write every {interval:?}"),
        }
    }

    /// Lets the last totals out: Prometheus gets until `wait` to scrape once
    /// more (only if something has been scraping), OTLP makes a final export.
    pub(crate) fn finish(
        self,
        wait: Duration,
        runtime: &tokio::runtime::Runtime,
        stop_waiting: &std::sync::atomic::AtomicBool,
    ) -> Result<(), String> {
        let _ = (&runtime, &stop_waiting);
        match self {
            #[cfg(feature = "prometheus")]
            Running::Prometheus(exporter) => {
                // Only a complete GET whose encode began after the agents
                // stopped carries the final totals (a HEAD, or a scrape
                // already encoding, does not).
                let mark = exporter.scrape_mark();
                if exporter.scrapes_served() > 0 {
                    eprintln!(
                        "agents stopped; waiting up to {wait:?} for one more scrape so it sees the final totals \
                         (Ctrl-C again skips the wait; --final-scrape-wait 0s never waits)"
                    );
                    let deadline = std::time::Instant::now() + wait;
                    while !exporter.delivered_since(mark)
                        && std::time::Instant::now() < deadline
                        && !stop_waiting.load(std::sync::atomic::Ordering::Relaxed)
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                exporter.shutdown();
                Ok(())
            }
            #[cfg(feature = "otlp")]
            Running::Otlp(exporter) => runtime
                .block_on(exporter.shutdown(wait))
                .map_err(|e| e.to_string()),
            #[cfg(feature = "prometheus")]
            Running::RemoteWrite(writer, _) => runtime
                .block_on(writer.shutdown(wait))
                .map_err(|e| e.to_string()),
        }
    }
}
