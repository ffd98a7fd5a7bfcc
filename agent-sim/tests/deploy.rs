//! What can be checked of `deploy/` without Docker or Grafana here: the
//! dashboard is a Grafana dashboard that a UI import asks a Prometheus
//! datasource for and that provisioning serves as is; every file the
//! compose setup and the provisioning files point at exists; the
//! datasources point where their Grafana can reach Prometheus. (That every
//! panel's query answers on a real Prometheus scraping agent-sim is
//! `tests/e2e.rs`.)

use std::path::{Path, PathBuf};

use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(
        &deploy().join("grafana/dashboards/beluga-agent.json"),
    ))
    .expect("the dashboard is JSON")
}

/// Every `datasource` object anywhere in the dashboard.
fn datasources(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "datasource" {
                    found.push(inner.clone());
                } else {
                    datasources(inner, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| datasources(v, found)),
        _ => {}
    }
}

#[test]
fn a_ui_import_asks_for_a_prometheus_datasource_and_every_panel_uses_it() {
    let dashboard = dashboard();
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0]["name"], "DS_PROMETHEUS");
    assert_eq!(inputs[0]["type"], "datasource");
    assert_eq!(inputs[0]["pluginId"], "prometheus");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(variable["type"], "datasource");
    assert_eq!(variable["query"], "prometheus");
    // An import substitutes the input here; provisioning leaves a value no
    // datasource has, and Grafana takes the default Prometheus.
    assert_eq!(variable["current"]["value"], "${DS_PROMETHEUS}");

    let mut found = Vec::new();
    datasources(&dashboard, &mut found);
    assert!(found.len() > 20, "{} datasource references", found.len());
    for datasource in found {
        assert_eq!(
            datasource,
            serde_json::json!({"type": "prometheus", "uid": "${datasource}"}),
            "every panel, query and variable goes through the datasource variable"
        );
    }
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard = dashboard();
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        for key in ["x", "y", "w", "h"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        assert!(panel["type"].is_string(), "{title}: type");
        for target in panel["targets"].as_array().unwrap() {
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}"
            );
            assert!(target["refId"].is_string(), "{title}: refId");
        }
    }
}

/// The host paths of a compose file's `volumes:` entries
/// (`- ./host:/container[:ro]`), relative to the compose file.
fn compose_mounts(compose: &str) -> Vec<(String, String)> {
    compose
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- ./"))
        .map(|mount| {
            let mut parts = mount.split(':');
            let host = parts.next().unwrap().to_string();
            let container = parts.next().expect("host:container").to_string();
            (host, container)
        })
        .collect()
}

#[test]
fn every_path_the_compose_setup_and_the_provisioning_name_exists() {
    let compose = read(&deploy().join("compose.yml"));
    let mounts = compose_mounts(&compose);
    assert!(mounts.len() >= 4, "{mounts:?}");
    for (host, _) in &mounts {
        assert!(
            deploy().join(host).exists(),
            "compose mounts ./{host}, which is missing"
        );
    }
    // The dashboard provider reads the folder the dashboards are mounted at.
    let provider = read(&deploy().join("grafana/provisioning/dashboards/beluga.yml"));
    let provider_path = provider
        .lines()
        .find_map(|l| l.trim().strip_prefix("path:"))
        .expect("a provider path")
        .trim()
        .to_string();
    assert!(
        mounts
            .iter()
            .any(|(host, container)| host == "grafana/dashboards" && *container == provider_path),
        "the dashboards folder is mounted at the provider's path {provider_path}"
    );
    let home = compose
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH:")
        })
        .expect("a home dashboard")
        .trim();
    assert_eq!(home, format!("{provider_path}/beluga-agent.json"));
    // Each datasource file points where its Grafana reaches Prometheus.
    let in_compose = read(&deploy().join("compose/grafana-datasource.yml"));
    assert!(in_compose.contains("url: http://prometheus:9090"));
    let on_host = read(&deploy().join("grafana/provisioning/datasources/prometheus.yml"));
    assert!(on_host.contains("url: http://127.0.0.1:9090"));
    // Prometheus in Docker scrapes agent-sim on the host, as the dashboard's job.
    let prometheus = read(&deploy().join("compose/prometheus.yml"));
    assert!(prometheus.contains("job_name: beluga-agent"));
    assert!(prometheus.contains("host.docker.internal:2222"));
    assert!(compose.contains("host.docker.internal:host-gateway"));
}
