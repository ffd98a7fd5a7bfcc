#!/usr/bin/env bash
# A fleet on one machine: N agent-sim processes (ports 2222, 2223, ...) with
# distinct `instance` labels, scraped by one Prometheus through file-based
# service discovery (deploy/prometheus-fleet.yml). The Grafana dashboard's
# `instance` variable then shows each process or all of them.
#
#   scripts/fleet.sh 4                       # 4 processes, default workload
#   scripts/fleet.sh 4 --rate 20 --agents 1  # extra flags go to every agent-sim
#
# Stops everything on exit (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 64 ]; then
    echo "usage: scripts/fleet.sh N [agent-sim flags]   (N from 1 to 64)" >&2
    exit 2
fi
shift
source scripts/lib.sh
require_prometheus

cargo build --release -p agent-sim
targets=""
for i in $(seq 0 $((n - 1))); do
    port=$((2222 + i))
    target/release/agent-sim --listen "127.0.0.1:$port" --seed "$((i + 1))" --quiet "$@" &
    pids+=($!)
    targets+="${targets:+, }\"127.0.0.1:$port\""
done
cp deploy/prometheus-fleet.yml "$data/prometheus.yml"
echo "[{\"targets\": [$targets], \"labels\": {\"fleet\": \"local\"}}]" >"$data/fleet-targets.json"
start_prometheus "$data/prometheus.yml" "$data/tsdb" exemplar-storage
cat <<MSG
$n agent-sim processes: http://127.0.0.1:2222/metrics ... http://127.0.0.1:$((2222 + n - 1))/metrics
Prometheus:         http://127.0.0.1:9090  (try: sum by (instance) (rate(monitoring_api_requests_total[1m])))
Grafana:            the dashboard's "instance" variable picks one process or All
Ctrl-C stops everything.
MSG
wait "${pids[0]}"
