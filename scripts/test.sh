#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need when it
# is missing, then runs every check CI runs. About 15 minutes on 2 cores
# from a fresh clone, build included.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s ==\n' "$*"; }

# Real Prometheus, promtool and Pushgateway (Debian packages).
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-pushgateway >/dev/null 2>&1; then
    say "installing Debian's prometheus and prometheus-pushgateway (apt-get)"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        prometheus prometheus-pushgateway >/dev/null
fi

# A Python venv with opentelemetry-proto (an OTLP decoder we do not control),
# grpcio and grpcio-status (a real OTLP/gRPC receiver, RetryInfo details).
venv="$PWD/.venv"
if ! "$venv/bin/python" -c 'import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc, grpc, grpc_status' >/dev/null 2>&1; then
    say "creating $venv with opentelemetry-proto, grpcio and grpcio-status (pip)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q opentelemetry-proto grpcio grpcio-status
fi
export BELUGA_OTLP_PYTHON="$venv/bin/python"
# Every test that needs one of the programs above runs here: a missing one
# fails instead of skipping (plain `cargo test` skips, saying why).
export BELUGA_REQUIRE_EXTERNAL=1

say "core layers (imports point down; scripts/check-layers.py --graph shows them)"
python3 scripts/check-layers.py

say "docs and sources read as a reference (no session talk, machine-local timings or commit hashes)"
python3 scripts/check-docs.py

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

say "cargo doc (broken links and missing docs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet

say "cargo clippy, agent-sim built with only the OTLP exporter, the exporters with no optional feature"
cargo clippy -p agent-sim --all-targets --no-default-features --features otlp -- -D warnings
cargo clippy -p beluga-exporter-prometheus -p beluga-exporter-otlp --all-targets --no-default-features -- -D warnings

say "cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-features 2>&1 | tee "$log"

say "agent-sim's own tests in its default build (its flags without the OTLP exporter)"
cargo test -p agent-sim --bins 2>&1 | tee -a "$log"

say "agent-sim end to end, built with only the OTLP exporter"
cargo test -p agent-sim --no-default-features --features otlp 2>&1 | tee -a "$log"

say "the tutorial's step 1 and whole program as a crate of one's own"
bash scripts/tutorial-crate.sh

say "loom models (RUSTFLAGS=--cfg beluga_loom)"
RUSTFLAGS="--cfg beluga_loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p beluga-metrics --lib --release -- loom_models 2>&1 | tee -a "$log"

say "Miri: the shard arena, thread slots, label values and the lookup cache (undefined behaviour checks)"
# Miri needs the nightly toolchain's miri and rust-src components. They are
# installed here when rustup can fetch them; where it cannot, the step says
# so and the loom models above remain the check of these protocols.
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal -c miri -c rust-src >/dev/null 2>&1 \
        || rustup +nightly component add miri rust-src >/dev/null 2>&1 || true
fi
if cargo +nightly miri --version >/dev/null 2>&1; then
    # Every unit test of core runs, but those marked
    # `#[cfg_attr(miri, ignore = ...)]`: the ones that exercise no unsafe
    # protocol and would take minutes here.
    cargo +nightly miri test -p beluga-metrics --lib 2>&1 | tee -a "$log"
    cargo +nightly miri test -p beluga-metrics --test lookup_cache 2>&1 | tee -a "$log"
else
    echo "Miri is not available on this machine (no nightly miri component): skipped"
fi

say "benchmarks, quick mode (they compile and run; numbers are not checked here), and their report"
BELUGA_BENCH_QUICK=1 cargo bench -p beluga-benches
chart="$(mktemp --suffix .svg)"
python3 scripts/bench-report.py target/criterion-quick --chart "$chart" >/dev/null
rm -f "$chart"

say "all checks passed"
# One plain closing line with the totals of every test runner above
# (cargo test, the loom models, Miri).
awk '/^test result:/ { p += $4; f += $6 } END { printf "cargo test: %d passed, %d failed\n", p, f }' "$log"
