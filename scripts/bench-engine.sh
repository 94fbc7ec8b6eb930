#!/usr/bin/env bash
# Runs the engine's Criterion benchmarks and writes their figures as a Markdown table to stdout
# (and the raw Criterion output to target/bench-engine.log). Usage:
#   scripts/bench-engine.sh > /tmp/engine-bench.md
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/criterion
cargo bench -p corecast-benches --locked >target/bench-engine.log 2>&1

python3 - <<'PY'
import json, os, platform, subprocess, datetime

root = "target/criterion"
def est(path):
    with open(os.path.join(root, path, "new", "estimates.json")) as f:
        e = json.load(f)
    m = e["median"]
    return m["point_estimate"], m["confidence_interval"]["lower_bound"], m["confidence_interval"]["upper_bound"]

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Machine: {cpu}, {os.cpu_count()} cores; kernel {platform.release()}; "
      f"{subprocess.check_output(['rustc', '--version'], text=True).strip()}; "
      f"{datetime.date.today().isoformat()}\n")

print("| benchmark | subscribers on the packet's source | ns per packet (median, 95% CI) | ns per subscriber |")
print("|---|---:|---:|---:|")
for n in [1, 100, 1000, 10000]:
    p, lo, hi = est(f"fanout_one_source/{n}")
    print(f"| one source, {n} tracks | {n} | {p:,.0f} ({lo:,.0f}–{hi:,.0f}) | {p/n:.2f} |")
for n in [1000, 10000]:
    for layout in ["Grouped", "Scan"]:
        p, lo, hi = est(f"fanout_ten_sources/{layout}/{n}")
        print(f"| ten sources, {n} tracks, {layout.lower()} | {n//10} | {p:,.0f} ({lo:,.0f}–{hi:,.0f}) | {p/(n//10):.2f} |")

print("\n| payload inspection | ns per packet (median over the fixture) |")
print("|---|---:|")
for codec in ["vp8", "vp9", "h264", "h265", "av1", "opus"]:
    path = os.path.join(root, "keyframe", codec)
    if not os.path.isdir(path):
        continue
    with open(os.path.join(path, "new", "benchmark.json")) as f:
        elems = json.load(f)["throughput"]["Elements"]
    p, _, _ = est(f"keyframe/{codec}")
    print(f"| {codec} | {p/elems:.1f} |")

print("\n| one track's copy of a packet | ns (median) |")
print("|---|---:|")
for name in ["corecast_parse_and_splice", "rtp_crate_unmarshal_marshal"]:
    p, _, _ = est(f"rewrite/{name}")
    print(f"| {name} | {p:.1f} |")
PY
