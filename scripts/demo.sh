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

if ! command -v prometheus >/dev/null 2>&1; then
    echo "prometheus is not installed: sudo apt-get install prometheus (or run scripts/test.sh once)" >&2
    exit 1
fi
data="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT INT TERM

cargo build --release -p agent-sim
target/release/agent-sim --listen 127.0.0.1:2222 --quiet "$@" &
pids+=($!)
prometheus --config.file=deploy/prometheus.yml --storage.tsdb.path="$data" \
    --web.listen-address=127.0.0.1:9090 --enable-feature="$features" >"$data/prometheus.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
    curl -fs http://127.0.0.1:9090/-/ready >/dev/null 2>&1 && break
    sleep 0.2
done
cat <<MSG
agent-sim metrics:  http://127.0.0.1:2222/metrics
Prometheus:         http://127.0.0.1:9090  (features: $features; try: sum(rate(monitoring_api_requests_total[1m])))
Grafana:            provision deploy/grafana/ (datasource uid beluga-prometheus -> http://127.0.0.1:9090)
Ctrl-C stops both.
MSG
wait "${pids[0]}"
