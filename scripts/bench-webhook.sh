#!/usr/bin/env bash
# Forwarding with no event handler against forwarding with a webhook that never answers, in one
# run: a dead endpoint must not slow forwarding. Writes benches/results/webhook-*.json and the
# section between the markers below in BENCHMARKS.md.
#
#   scripts/bench-webhook.sh [SUBSCRIBERS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
subs=${1:-1000}
secs=${2:-10}
cargo build --release -q -p corecast
bin=target/release/corecast
mkdir -p benches/results
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# A TCP endpoint that accepts connections and never answers.
python3 - <<'PY' > /tmp/corecast-hole.port &
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1024)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
PY
pids+=($!)
for _ in $(seq 50); do [ -s /tmp/corecast-hole.port ] && break; sleep 0.1; done
hole=$(cat /tmp/corecast-hole.port)

run() {
  local mode=$1; shift
  local http=127.0.0.1:$((18900 + RANDOM % 500))
  # Events every 100 ms, with every subscriber's deltas in each `stats` event: the handler side
  # works hard, so a cost to forwarding would show.
  "$bin" serve --http "$http" --no-pin --shards 1 --rtp-ports 43000-43099 --stats-interval 100 "$@" \
    >/dev/null 2>&1 &
  local server=$!
  pids+=($server)
  for _ in $(seq 100); do curl -sf "http://$http/healthz" >/dev/null && break; sleep 0.05; done
  "$bin" loadgen --server "$http" --sources 1 --subscribers "$subs" --duration "$secs" \
    --server-pid "$server" --json > "benches/results/webhook-$mode.json" || true
  curl -s "http://$http/metrics" | grep -E '^corecast_events_(dropped|delivered)_total' \
    > "benches/results/webhook-$mode.metrics" || true
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
}

run none
run dead --webhook "http://127.0.0.1:$hole/hook;timeout-ms=2000"

python3 - "$subs" "$secs" <<'PY'
import json, sys, platform, datetime, os, re
subs, secs = sys.argv[1], sys.argv[2]
rows = []
for mode, label in [("none", "no event handler"), ("dead", "webhook that never answers")]:
    r = json.load(open(f"benches/results/webhook-{mode}.json"))
    metrics = open(f"benches/results/webhook-{mode}.metrics").read()
    dropped = sum(float(m) for m in re.findall(r'_dropped_total\{[^}]*\} (\S+)', metrics))
    cpu = r.get("server_cpu_s") or 0
    rows.append((label, r["packets_received"], cpu, r["packets_received"] / cpu if cpu else 0,
                 r["lost"], r["latency_us"]["p50"], r["latency_us"]["p99"], dropped))
base = rows[0][3]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
out = [
    "<!-- bench-webhook.sh begin -->",
    "## Node: forwarding with a webhook that never answers",
    "",
    f"Command: `scripts/bench-webhook.sh {subs} {secs}` (generated; {cpu}, {os.cpu_count()} cores, "
    f"kernel {platform.release()}, {datetime.date.today()}). One `corecast serve` with one shard and "
    "`--stats-interval 100` per row, driven by `corecast loadgen` (1 source × "
    f"{subs} subscribers, 2 Mbit/s, {secs} s); the second row adds `--webhook` to an endpoint that "
    "accepts and never answers.",
    "",
    "| event handlers | copies received | server CPU s | copies per CPU-second | vs none | lost | p50 µs | p99 µs | events dropped |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for label, recv, cpu, rate, lost, p50, p99, dropped in rows:
    out.append(f"| {label} | {recv} | {cpu:.2f} | {rate:,.0f} | {rate / base:.2f} | {lost} | {p50} | {p99} | {dropped:.0f} |")
out.append("<!-- bench-webhook.sh end -->")
text = open("BENCHMARKS.md").read()
section = "\n".join(out) + "\n"
if "<!-- bench-webhook.sh begin -->" in text:
    text = re.sub(r"<!-- bench-webhook.sh begin -->.*?<!-- bench-webhook.sh end -->\n?", section, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section
open("BENCHMARKS.md", "w").write(text)
print(section)
PY
