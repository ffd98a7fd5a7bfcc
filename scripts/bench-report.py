#!/usr/bin/env python3
"""Turns the criterion output of `cargo bench -p beluga-benches --bench peers`
into the peer tables of docs/benchmarks.md and the chart
docs/img/peers-threads.svg (ns/op against thread count per library).

Usage: scripts/bench-report.py [CRITERION_DIR] [--chart SVG]
  CRITERION_DIR  default target/criterion (quick mode writes target/criterion-quick)
  --chart SVG    where the chart goes, default docs/img/peers-threads.svg
Prints one Markdown table per peer group on stdout.
"""

import argparse
import json
import re
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("root", nargs="?", default="target/criterion")
parser.add_argument("--chart", default="docs/img/peers-threads.svg")
ARGS = parser.parse_args()
ROOT = Path(ARGS.root)
LIBS = ["beluga", "metrics", "prometheus", "prometheus-client", "otel-sdk", "otel-sdk-bound", "measured"]
# Rows that measure the cost around the libraries (the macro call with a
# recorder that does nothing, the router without middleware), shown but never
# the "best peer".
BASELINES = {"noop-recorder", "bare-router"}
COLORS = {
    "beluga": "#0b7285", "metrics": "#e8590c", "prometheus": "#5f3dc4", "prometheus-client": "#2b8a3e",
    "otel-sdk": "#c92a2a", "otel-sdk-bound": "#f08c00", "measured": "#495057",
}


def median_ns(path):
    estimates = json.loads(path.read_text())
    return estimates["median"]["point_estimate"]


def collect():
    """{(operation, variant): {library: median ns}}"""
    rows = {}
    for estimates in ROOT.glob("peers_*/**/new/estimates.json"):
        bench = json.loads((estimates.parent / "benchmark.json").read_text())
        # peers/counter_inc/2_threads, peers/high_cardinality/5000/1_threads, peers/encode
        group = bench["group_id"]
        library = bench.get("function_id") or bench.get("value_str")
        parts = group.split("/")
        if len(parts) < 2 or library is None:
            continue
        operation, variant = parts[1], "/".join(parts[2:]) or "-"
        rows.setdefault((operation, variant), {})[library] = median_ns(estimates)
    return rows


def variant_key(variant):
    """Orders `2_threads` after `1_threads` and `5000/2_threads` after `5000/1_threads`."""
    return [int(n) for n in re.findall(r"\d+", variant)], variant


def threads_of(variant):
    """The thread count a variant names (`4_threads` -> 4), if it names one."""
    match = re.search(r"(\d+)_threads?$", variant)
    return int(match.group(1)) if match else None


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.2f} ns"


def table(rows, operation):
    variants = sorted({v for (op, v) in rows if op == operation}, key=variant_key)
    known = [lib for lib in LIBS if any(lib in rows[(operation, v)] for v in variants)]
    others = sorted({lib for v in variants for lib in rows[(operation, v)]} - set(LIBS))
    libs = known + others
    out = ["| " + operation + " | " + " | ".join(libs) + " | beluga vs best peer |", "|---" * (len(libs) + 2) + "|"]
    for v in variants:
        row = rows[(operation, v)]
        peers = {k: x for k, x in row.items() if k != "beluga" and k not in BASELINES}
        best = min(peers.values()) if peers else None
        cells = []
        for lib in libs:
            ns = row.get(lib)
            cell = fmt(ns) if ns is not None else "n/a"
            if lib == "beluga" or ns is None or "beluga" not in row:
                cells.append(f"**{cell}**" if lib == "beluga" else cell)
            else:
                cells.append(f"{cell} ({ns / row['beluga']:.1f}×)")
        ratio = f"{best / row['beluga']:.1f}× faster" if best and "beluga" in row else "n/a"
        if best and "beluga" in row and best < row["beluga"]:
            ratio = f"{row['beluga'] / best:.1f}× slower"
        out.append(f"| {v.replace('_', ' ')} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(out)


def chart(rows, path):
    ops = ["counter_inc", "label_lookup_inc", "histogram_record"]
    width, height, pad = 960, 330, 50
    panel = (width - pad) / len(ops)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>']
    for i, op in enumerate(ops):
        variants = sorted({v for (o, v) in rows if o == op and threads_of(v) is not None}, key=variant_key)
        threads = [threads_of(v) for v in variants]
        series = {lib: [rows[(op, v)].get(lib) for v in variants] for lib in LIBS}
        values = [x for s in series.values() for x in s if x]
        if not values:
            continue
        import math
        lo, hi = math.log10(min(values) * 0.8), math.log10(max(values) * 1.25)
        x0, y0, w, h = pad + i * panel + 10, 30, panel - 40, height - 90
        parts.append(f'<text x="{x0 + w / 2}" y="18" text-anchor="middle" font-weight="bold">{op} (ns/op, log)</text>')
        parts.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>')
        for d in range(math.floor(lo), math.ceil(hi) + 1):
            y = y0 + h - (d - lo) / (hi - lo) * h
            if y0 <= y <= y0 + h:
                parts.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
                parts.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{10 ** d:g}</text>')
        xs = {t: x0 + (k + 0.5) * w / len(threads) for k, t in enumerate(threads)}
        for t, x in xs.items():
            parts.append(f'<text x="{x:.1f}" y="{y0 + h + 14}" text-anchor="middle">{t} thr</text>')
        for lib, ys in series.items():
            points = [(xs[t], y0 + h - (math.log10(v) - lo) / (hi - lo) * h) for t, v in zip(threads, ys) if v]
            if len(points) > 1:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                width_px = 3 if lib == "beluga" else 1.5
                parts.append(f'<polyline points="{d}" fill="none" stroke="{COLORS[lib]}" stroke-width="{width_px}"/>')
            for x, y in points:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{COLORS[lib]}"/>')
    for k, lib in enumerate(LIBS):
        x = pad + k * 125
        parts.append(f'<rect x="{x}" y="{height - 28}" width="12" height="12" fill="{COLORS[lib]}"/>')
        parts.append(f'<text x="{x + 16}" y="{height - 18}">{lib}</text>')
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


def memory_tables():
    path = ROOT / "peers-memory.json"
    if not path.exists():
        return ""
    report = json.loads(path.read_text())
    out = ["| library | allocations per counter inc | per 2-label lookup + inc | per histogram record | bytes per 2-label counter series | bytes per histogram series, 1 thread, 1 record | same, 1,000 latencies over 1 ms - 1 s |",
           "|---|---|---|---|---|---|---|"]
    for lib in LIBS:
        r = report.get(lib)
        if not r:
            continue
        a = r["allocations_per_op"]
        f = lambda v: "n/a" if v is None else f"{v:g}"
        b = lambda k: f"{r[k]:.0f}" if k in r else "n/a"
        out.append(f"| {lib} | {f(a['counter_inc'])} | {f(a['label_lookup_inc'])} | {f(a['histogram_record'])} | "
                   f"{b('bytes_per_2_label_counter_series')} | {b('bytes_per_histogram_series_one_thread')} | "
                   f"{b('bytes_per_histogram_series_one_thread_latency_spread')} |")
    return "\n".join(out)


def main():
    rows = collect()
    if not rows:
        raise SystemExit(f"no peer results under {ROOT}: run `cargo bench -p beluga-benches --bench peers` first")
    first = ["counter_inc", "label_lookup_inc", "histogram_record", "encode"]
    operations = first + sorted({o for (o, _) in rows} - set(first))
    for op in operations:
        if any(o == op for (o, _) in rows):
            print(table(rows, op))
            print()
    print(memory_tables())
    chart(rows, Path(ARGS.chart))


if __name__ == "__main__":
    main()
