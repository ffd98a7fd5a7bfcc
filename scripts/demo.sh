#!/usr/bin/env bash
# The tutorial's steps 3 to 5 on one machine: agent-sim serving /metrics on
# :2222 and Debian's Prometheus scraping it with deploy/prometheus.yml, with
# exemplar storage on (each LLM-latency bucket links to a trace id).
# `scripts/demo.sh --native [agent-sim flags]` also turns on native
# histograms: Prometheus then scrapes protobuf and stores each histogram in
# its native form. Stops both on exit (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

features="exemplar-storage"
if [ "${1:-}" = "--native" ]; then
    features="native-histograms,exemplar-storage"
    shift
fi

source scripts/lib.sh
require_prometheus

cargo build --release -p agent-sim
target/release/agent-sim --listen 127.0.0.1:2222 --quiet "$@" &
pids+=($!)
start_prometheus deploy/prometheus.yml "$data" "$features"
cat <<MSG
agent-sim metrics:  http://127.0.0.1:2222/metrics
Prometheus:         http://127.0.0.1:9090  (features: $features; try: sum(rate(monitoring_api_requests_total[1m])))
Grafana:            import deploy/grafana/dashboards/beluga-agent.json (docs/tutorial.md, step 6)
Ctrl-C stops both.
MSG
wait "${pids[0]}"
