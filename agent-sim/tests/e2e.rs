//! agent-sim end to end: a real Prometheus scrapes it and every dashboard
//! query returns data; the OTLP exporter delivers its totals; seeds
//! reproduce; bad input gets clear errors; Ctrl-C delivers the final totals.
//! Each test runs when the exporter it needs is compiled in (CI builds with
//! `--all-features`, so all of them run there).
// With one exporter compiled in, the other exporter's helpers go unused.
#![cfg_attr(
    not(all(feature = "prometheus", feature = "otlp")),
    allow(unused_imports, dead_code)
)]

use beluga_test_support::otlp;
use beluga_test_support::servers as prom;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agent-sim");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("agent-sim runs")
}

fn report(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "agent-sim failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--report json prints one JSON object")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Every target (query) of the Grafana dashboard's panels.
fn dashboard_targets() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/dashboards/beluga-agent.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "instance"));
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().cloned())
        .collect()
}

/// Every PromQL expression in the Grafana dashboard, as written (with the
/// `$instance` variable), each checked to use it.
fn dashboard_queries_raw() -> Vec<String> {
    dashboard_targets()
        .iter()
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .inspect(|q| assert!(q.contains("$instance"), "{q} ignores the instance variable"))
        .collect()
}

/// Every PromQL expression in the Grafana dashboard, as Grafana runs it with
/// the `instance` variable at "All".
fn dashboard_queries() -> Vec<String> {
    dashboard_queries_raw()
        .iter()
        .map(|q| all_instances(q))
        .collect()
}

/// A dashboard query as Grafana runs it with the `instance` variable at
/// "All" (its `allValue`).
fn all_instances(expr: &str) -> String {
    expr.replace("$instance", ".*")
}

/// The queries of dashboard targets that ask Grafana for exemplars.
fn dashboard_exemplar_queries() -> Vec<String> {
    dashboard_targets()
        .iter()
        .filter(|t| t["exemplar"] == true)
        .map(|t| all_instances(t["expr"].as_str().unwrap()))
        .collect()
}

/// Peak resident set size of a live process, from /proc.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if status.contains("State:\tZ") {
        return None;
    }
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(feature = "prometheus")]
#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let port = prom::free_port();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The shipped configuration, pointed at this run and scraping every second.
    let deployed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus.yml"
    ))
    .unwrap();
    let scrape_configs = deployed
        .split("scrape_configs:\n")
        .nth(1)
        .unwrap()
        .replace("127.0.0.1:2222", &target.to_string());
    assert!(scrape_configs.contains("job_name: beluga-agent"));
    // Classic histograms (OpenMetrics, with exemplars), and native ones
    // (Prometheus 2.42 then scrapes protobuf and keeps only the native form
    // of each histogram): the dashboard must work with both.
    let prometheus =
        prom::Prometheus::start_with(&scrape_configs, &["--enable-feature=exemplar-storage"]);
    let native = prom::Prometheus::start_with(
        &scrape_configs,
        &["--enable-feature=native-histograms,exemplar-storage"],
    );

    let started_at = unix_now();
    let mut sim = Command::new(BIN)
        .args([
            "--agents",
            "2",
            "--rate",
            "20",
            "--duration",
            "20s",
            "--seed",
            "7",
            "--report",
            "json",
            "--quiet",
        ])
        .args(["--listen", &target.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sim.id();
    let mut peak_kib = 0;
    let mut first_up_at = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && sim.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_rss_kib(pid) {
            peak_kib = kib;
        }
        if first_up_at.is_none() && !prometheus.query("up{job=\"beluga-agent\"} == 1").is_empty() {
            first_up_at = Some(unix_now());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = sim.wait_with_output().unwrap();
    let report = report(&output);
    assert!(
        peak_kib > 0 && peak_kib <= 64 * 1024,
        "peak RSS {peak_kib} KiB while scraped every second"
    );

    for (mode, prometheus) in [("classic", &prometheus), ("native", &native)] {
        let mut empty = Vec::new();
        for query in dashboard_queries() {
            if prometheus.query(&query).is_empty() {
                empty.push(query);
            }
        }
        assert!(
            empty.is_empty(),
            "{mode} histograms: dashboard queries without data: {empty:#?}\n{}",
            prometheus.log()
        );
        // The LLM latency panel shows exemplars: Grafana asks this API for
        // the panel's query, and each exemplar carries a trace id.
        let llm_panel = dashboard_exemplar_queries();
        assert!(!llm_panel.is_empty(), "a panel asks for exemplars");
        for query in llm_panel {
            let exemplars: Vec<Value> = prometheus
                .exemplars(&query)
                .into_iter()
                .map(|(_, e)| e)
                .collect();
            assert!(
                exemplars.iter().any(|e| e["labels"]["trace_id"]
                    .as_str()
                    .is_some_and(|t| t.len() == 32)),
                "{mode}: no exemplar with a trace id for {query}: {exemplars:?}"
            );
        }
    }
    // Each Prometheus really ingested the form it was set up for.
    let native_form = "histogram_count(gen_ai_client_operation_duration_seconds)";
    assert!(
        !native.query(native_form).is_empty(),
        "native mode stores native histograms"
    );
    assert!(
        prometheus.query(native_form).is_empty(),
        "classic mode stores classic buckets"
    );
    assert!(native
        .query("gen_ai_client_operation_duration_seconds_bucket")
        .is_empty());

    // Prometheus saw the final totals (the last scrape came after the agents stopped)...
    let total = prom::value_of(&prometheus.query("sum(monitoring_api_requests_total)")[0]);
    assert_eq!(total as u64, report["api_requests"].as_u64().unwrap());
    // ... and computes the same request rate as agent-sim's own count.
    // The window: from a second after Prometheus first scraped agent-sim
    // to a second before the run ended, so it holds only steady-state samples.
    let own_rate =
        report["api_requests"].as_f64().unwrap() / report["duration_s"].as_f64().unwrap();
    let window_start = first_up_at.expect("Prometheus scraped agent-sim during the run") + 1.0;
    let window_end = started_at + 19.0;
    let seconds = (window_end - window_start).floor() as u64;
    assert!(seconds >= 5, "only {seconds} s of steady-state samples");
    let response = prom::get(
        prometheus.addr,
        &format!(
            "/api/v1/query?query=sum%28rate%28monitoring_api_requests_total%5B{seconds}s%5D%29%29&time={window_end}"
        ),
        &[],
    );
    let json: Value = serde_json::from_slice(&response.body).unwrap();
    let prometheus_rate: f64 = json["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let off = (prometheus_rate - own_rate).abs() / own_rate;
    assert!(
        off <= 0.10,
        "Prometheus computes {prometheus_rate:.1} req/s, agent-sim did {own_rate:.1} req/s"
    );
}

#[cfg(feature = "otlp")]
#[test]
fn the_otlp_exporter_delivers_agent_sim_totals() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = otlp::Receiver::start("");
    let endpoint = receiver.endpoint();
    let output = run(&[
        "--exporter",
        "otlp",
        "--otlp-endpoint",
        &endpoint,
        "--otlp-interval",
        "1s",
        "--agents",
        "2",
        "--rate",
        "50",
        "--duration",
        "3s",
        "--seed",
        "3",
        "--report",
        "json",
        "--quiet",
    ]);
    let report = report(&output);
    let requests = receiver.requests();
    let last = requests.last().expect("at least the final export");
    let sum_ints = |name: &str, filter: &dyn Fn(&Value) -> bool| -> u64 {
        otlp::metric(last, name)["sum"]["data_points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| filter(p))
            .map(|p| otlp::int(&p["as_int"]))
            .sum()
    };
    let all = |_: &Value| true;
    let input = |p: &Value| otlp::attribute(p, "gen_ai_token_type").as_deref() == Some("input");
    let output_tokens =
        |p: &Value| otlp::attribute(p, "gen_ai_token_type").as_deref() == Some("output");
    assert_eq!(
        sum_ints("monitoring_api_requests", &all),
        report["api_requests"].as_u64().unwrap()
    );
    assert_eq!(
        sum_ints("monitoring_errors", &all),
        report["errors"].as_u64().unwrap()
    );
    assert_eq!(
        sum_ints("monitoring_safety_flags", &all),
        report["unsafe_flags"].as_u64().unwrap()
    );
    assert_eq!(
        sum_ints("gen_ai_client_tokens", &input),
        report["tokens_input"].as_u64().unwrap()
    );
    assert_eq!(
        sum_ints("gen_ai_client_tokens", &output_tokens),
        report["tokens_output"].as_u64().unwrap()
    );
    let llm_calls: u64 = otlp::metric(last, "gen_ai_client_operation_duration_seconds")
        ["histogram"]["data_points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| otlp::attribute(p, "gen_ai_operation_name").as_deref() == Some("chat"))
        .map(|p| otlp::int(&p["count"]))
        .sum();
    assert_eq!(llm_calls, report["llm_calls"].as_u64().unwrap());
    assert_eq!(
        otlp::resource_attribute(last, "service.name").as_deref(),
        Some("agent-sim")
    );
}

#[cfg(feature = "prometheus")]
#[test]
fn the_same_seed_gives_the_same_totals() {
    let args = |seed: &'static str| {
        [
            "--agents",
            "2",
            "--rate",
            "100",
            "--duration",
            "2s",
            "--seed",
            seed,
            "--report",
            "json",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
        ]
    };
    let (a, b) = (report(&run(&args("11"))), report(&run(&args("11"))));
    for field in [
        "turns",
        "api_requests",
        "llm_calls",
        "tokens_input",
        "tokens_output",
        "errors",
        "unsafe_flags",
        "metric_ops",
    ] {
        assert_eq!(
            a[field], b[field],
            "{field} differs between two runs with the same seed"
        );
    }
    assert_eq!(a["turns"], 400);
    let other = report(&run(&args("12")));
    assert_ne!(
        a["tokens_input"], other["tokens_input"],
        "another seed, another workload"
    );
}

#[test]
fn bad_flags_and_bad_scenarios_get_clear_errors() {
    let stderr = |args: &[&str]| {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} should fail with exit code 2"
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(stderr(&["--duration", "5x"]).contains("use a number with a unit"));
    assert!(stderr(&["--rate", "fast"]).contains("--rate"));
    assert!(stderr(&["--agents", "0", "--duration", "1s"]).contains("--agents must be at least 1"));
    assert!(stderr(&["--agents", "100000", "--duration", "1s"]).contains("at most 1024"));
    assert!(stderr(&["--agents", "-3"]).contains("from 1 to 1024"));
    assert!(stderr(&["--duration", "5000000000000000h"]).contains("longer than a year"));
    assert!(stderr(&["--rate", "-1"]).contains("--rate must be from 0"));
    assert!(stderr(&["--rate", "NaN"]).contains("--rate must be from 0"));
    assert!(stderr(&["--no-such-flag"]).contains("--no-such-flag"));
    assert!(stderr(&["--scenario", "/nonexistent/scenario.toml"])
        .contains("cannot read scenario /nonexistent/scenario.toml"));

    let dir = prom::TempDir::new("scenario");
    let broken = dir.0.join("broken.toml");
    std::fs::write(&broken, "models = [\n").unwrap();
    assert!(stderr(&["--scenario", broken.to_str().unwrap()]).contains("is not valid TOML"));
    let invalid = dir.0.join("invalid.toml");
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/scenarios/default.toml"
    ))
    .unwrap();
    std::fs::write(
        &invalid,
        default.replace("error_rate = 0.02", "error_rate = 2.0"),
    )
    .unwrap();
    assert!(stderr(&["--scenario", invalid.to_str().unwrap()])
        .contains("models[gpt-4o].error_rate = 2.0 must be a probability"));
    // Values that used to panic every agent thread, or pass silently.
    for (field, bad) in [
        ("latency_ms_p99 = 6000.0", "latency_ms_p99 = inf"),
        ("latency_ms_p99 = 6000.0", "latency_ms_p99 = 1e300"),
        ("latency_ms_median = 900.0", "latency_ms_median = 1e-300"),
        ("latency_ms_p99 = 6000.0", "latency_ms_p99 = nan"),
        ("input_tokens_median = 1400.0", "input_tokens_median = 4e18"),
    ] {
        std::fs::write(&invalid, default.replacen(field, bad, 1)).unwrap();
        let name = bad.split(' ').next().unwrap();
        let message = stderr(&["--scenario", invalid.to_str().unwrap(), "--duration", "1s"]);
        assert!(
            message.contains(&format!("models[gpt-4o].{name} = ")) && message.contains("must be"),
            "{bad}: {message}"
        );
    }

    if cfg!(feature = "prometheus") {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        assert!(stderr(&["--listen", &address, "--duration", "1s"])
            .contains(&format!("cannot listen on {address}")));
    }
}

#[cfg(feature = "prometheus")]
#[test]
fn ctrl_c_stops_cleanly_and_the_last_scrape_sees_the_final_totals() {
    let port = prom::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sim = Command::new(BIN)
        .args([
            "--agents",
            "2",
            "--rate",
            "50",
            "--report",
            "json",
            "--quiet",
            "--listen",
            &addr.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    prom::poll(
        "agent-sim to serve /metrics",
        Duration::from_secs(20),
        || {
            prom::request(addr, "GET", "/metrics", &[], b"")
                .ok()
                .filter(|r| r.status == 200)
        },
    );
    let status = Command::new("kill")
        .args(["-INT", &sim.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // agent-sim now waits for one more scrape; make it after the agents
    // have stopped (the report's totals stop changing).
    std::thread::sleep(Duration::from_millis(500));
    let final_text = prom::get(addr, "/metrics", &[]).text();
    let output = sim.wait_with_output().unwrap();
    let report = report(&output);
    let scraped: u64 = final_text
        .lines()
        .filter(|l| l.starts_with("monitoring_api_requests_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(report["api_requests"].as_u64().unwrap() > 0);
    assert_eq!(scraped, report["api_requests"].as_u64().unwrap());
}

/// Four agent-sim processes, one Prometheus discovering them through the
/// shipped file-SD configuration: the fleet's totals in Prometheus equal the
/// sum of the four reports, each instance's its own, and the dashboard's
/// queries work per instance.
#[cfg(feature = "prometheus")]
#[test]
fn a_fleet_of_four_is_scraped_through_file_discovery_and_adds_up() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let dir = std::env::temp_dir().join(format!("beluga-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports: Vec<u16> = (0..4).map(|_| prom::free_port()).collect();
    let targets: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let targets_file = dir.join("fleet-targets.json");
    std::fs::write(
        &targets_file,
        format!(
            "[{{\"targets\": [{}], \"labels\": {{\"fleet\": \"test\"}}}}]",
            targets.join(", ")
        ),
    )
    .unwrap();
    // The shipped configuration, with its targets file where this test wrote
    // it and a 1 s refresh.
    let deployed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus-fleet.yml"
    ))
    .unwrap();
    let scrape_configs = deployed
        .split("scrape_configs:\n")
        .nth(1)
        .unwrap()
        .replace(
            "'fleet-targets.json'",
            &format!("'{}'", targets_file.display()),
        )
        .replace("refresh_interval: 5s", "refresh_interval: 1s");
    assert!(scrape_configs.contains("file_sd_configs"));
    let prometheus = prom::Prometheus::start(&scrape_configs);

    let fleet: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            Command::new(BIN)
                .args([
                    "--agents",
                    "1",
                    "--rate",
                    "25",
                    "--duration",
                    "6s",
                    "--report",
                    "json",
                    "--quiet",
                ])
                .args([
                    "--seed",
                    &(i + 1).to_string(),
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reports: Vec<Value> = fleet
        .into_iter()
        .map(|child| report(&child.wait_with_output().unwrap()))
        .collect();
    // Every process has served its last scrape (agent-sim waits for it).
    let ran_until = unix_now();
    let _ = std::fs::remove_dir_all(&dir);

    // Series go stale once their process is gone: read the last value seen.
    let last = |selector: &str| format!("sum(max_over_time({selector}[5m]))");
    let expected: u64 = reports
        .iter()
        .map(|r| r["api_requests"].as_u64().unwrap())
        .sum();
    assert!(expected > 0);
    let total = prom::value_of(
        &prometheus.wait_for(
            &last("monitoring_api_requests_total"),
            Duration::from_secs(30),
        )[0],
    );
    assert_eq!(
        total as u64,
        expected,
        "fleet total vs the four reports\n{}",
        prometheus.log()
    );
    for (port, report) in ports.iter().zip(&reports) {
        let instance = format!("127.0.0.1:{port}");
        let selector =
            format!("monitoring_api_requests_total{{instance=\"{instance}\",fleet=\"test\"}}");
        let own = prom::value_of(&prometheus.query(&last(&selector))[0]);
        assert_eq!(
            own as u64,
            report["api_requests"].as_u64().unwrap(),
            "{instance}"
        );
        // The dashboard with the `instance` variable set to this process.
        let request_rate = dashboard_queries_raw()
            .into_iter()
            .find(|q| q.starts_with("sum(rate(monitoring_api_requests_total"))
            .expect("the request-rate panel")
            .replace("$instance", &instance)
            .replace("[1m]", "[5m]");
        // Evaluated when the processes had just exited (each waited for its
        // last scrape), as a live dashboard would have shown it.
        let per_instance = prometheus.query_at(&request_rate, ran_until);
        assert_eq!(per_instance.len(), 1, "{request_rate}: {per_instance:?}");
        assert!(prom::value_of(&per_instance[0]) > 0.0);
    }
}

/// agent-sim pushing by remote write: what Prometheus stores under the
/// process's `instance` equals its report.
#[cfg(feature = "prometheus")]
#[test]
fn remote_write_delivers_agent_sim_totals() {
    beluga_test_support::require!(beluga_test_support::External::Prometheus);
    let prometheus =
        prom::Prometheus::start_with("  []\n", &["--web.enable-remote-write-receiver"]);
    let url = format!("http://{}/api/v1/write", prometheus.addr);
    let output = run(&[
        "--exporter",
        "remote-write",
        "--remote-write-url",
        &url,
        "--remote-write-interval",
        "1s",
        "--instance",
        "sim-7",
        "--agents",
        "2",
        "--rate",
        "30",
        "--duration",
        "3s",
        "--report",
        "json",
        "--quiet",
    ]);
    let report = report(&output);
    let expected = report["api_requests"].as_u64().unwrap();
    assert!(expected > 0);
    let query = "sum(max_over_time(monitoring_api_requests_total{job=\"beluga-agent\",instance=\"sim-7\"}[5m]))";
    let stored = prom::poll("the pushed totals", Duration::from_secs(30), || {
        let result = prometheus.query(query);
        result
            .first()
            .map(prom::value_of)
            .filter(|v| *v as u64 == expected)
    });
    assert_eq!(stored as u64, expected);

    // A receiver that refuses every request: agent-sim says so and fails.
    let refused = run(&[
        "--exporter",
        "remote-write",
        "--remote-write-url",
        &format!("http://{}/api/v1/no-such-path", prometheus.addr),
        "--remote-write-interval",
        "200ms",
        "--duration",
        "1s",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("404"),
        "{stderr}"
    );

    let missing = run(&["--exporter", "remote-write", "--duration", "1s", "--quiet"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--remote-write-url"));
}

/// agent-sim over OTLP/gRPC with delta temporality: the deltas the receiver
/// got add up to the report's totals. (Deltas are delivered at least once:
/// an export the collector processed but answered after the client's
/// deadline is sent again within the next one. The 3 s interval gives each
/// export 3 s, so a loaded machine does not make this test count one twice.)
#[cfg(feature = "otlp")]
#[test]
fn grpc_and_delta_deliver_agent_sim_totals() {
    beluga_test_support::require!(beluga_test_support::External::OtlpPython);
    let receiver = otlp::GrpcReceiver::start("");
    let output = run(&[
        "--exporter",
        "otlp",
        "--otlp-protocol",
        "grpc",
        "--otlp-temporality",
        "delta",
        "--otlp-endpoint",
        &receiver.endpoint(),
        "--otlp-interval",
        "3s",
        "--agents",
        "2",
        "--rate",
        "40",
        "--duration",
        "4s",
        "--report",
        "json",
        "--quiet",
    ]);
    let report = report(&output);
    let requests = receiver.requests();
    assert!(requests.len() >= 2, "periodic exports plus the final one");
    let mut delivered = 0u64;
    for request in &requests {
        let requests_metric = otlp::metric(request, "monitoring_api_requests");
        if requests_metric.is_null() {
            continue;
        }
        assert_eq!(
            requests_metric["sum"]["aggregation_temporality"],
            "AGGREGATION_TEMPORALITY_DELTA"
        );
        delivered += requests_metric["sum"]["data_points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| otlp::int(&p["as_int"]))
            .sum::<u64>();
    }
    assert_eq!(delivered, report["api_requests"].as_u64().unwrap());
}
