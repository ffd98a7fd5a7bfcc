# What scripts/demo.sh and scripts/fleet.sh share: a Prometheus from
# Debian's package, a scratch directory, and stopping everything they
# started on exit. Sourced, not run.

# Exits with how to install Prometheus when it is missing.
require_prometheus() {
    if ! command -v prometheus >/dev/null 2>&1; then
        echo "prometheus is not installed: sudo apt-get install prometheus (or run scripts/test.sh once)" >&2
        exit 1
    fi
}

# A scratch directory ($data) and the background processes ($pids) to stop
# on exit, Ctrl-C included.
data="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT INT TERM

# Starts Prometheus on 127.0.0.1:9090 with config $1, storage $2 and the
# feature flags $3, logging to $data/prometheus.log, and waits (up to 20 s)
# until it is ready.
start_prometheus() {
    prometheus --config.file="$1" --storage.tsdb.path="$2" \
        --web.listen-address=127.0.0.1:9090 --enable-feature="$3" \
        >"$data/prometheus.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -fs http://127.0.0.1:9090/-/ready >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "Prometheus did not become ready; its log:" >&2
    cat "$data/prometheus.log" >&2
    exit 1
}
