#!/usr/bin/env bash
# Does joining WebRTC viewers disturb forwarding? Issue 13 asks to measure forwarding to 1 000
# plain subscribers while 500 viewers join (ICE + DTLS on the node's handshake thread) and to show
# no loss and the p99 before and during the joins.
#
# One release node (`corecast serve`, one unpinned shard, as in bench.sh) and two load
# generators:
#   plain: 1 source x 1 000 plain RTP subscribers for the whole run, every packet verified;
#   whep:  started once plain has forwarded for a while, 500 WebRTC viewers of a second source's
#          channel join (at most 128 handshakes in flight), then watch until the run ends.
# The plain generator prints its figures once a second (received pps, gaps, p99 of that second);
# each line is stamped with the wall clock as it arrives, and so are the whep generator's start
# and its first progress line (its viewers are all connected by then), which bound the joining
# window. Writes benches/results/join-under-load.json and prints the table BENCHMARKS.md quotes.
#
#   scripts/join-under-load.sh                      defaults below
#   PLAIN=1000 VIEWERS=500 BITRATE=500000 scripts/join-under-load.sh
#
# Everything binds to 127.0.0.1 and every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAIN=${PLAIN:-1000}
VIEWERS=${VIEWERS:-500}
BITRATE=${BITRATE:-500000}
VIEWER_BITRATE=${VIEWER_BITRATE:-200000}
BEFORE_S=${BEFORE_S:-8}
DURATION=${DURATION:-30}
OUT=${OUT:-benches/results/join-under-load.json}

cargo build --release -q -p corecast
CORECAST=target/release/corecast
LOGS=$(mktemp -d /tmp/join-under-load.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_tcp_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Prefix every line read with the wall clock, in seconds.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }

HTTP_PORT=$(free_tcp_port)
"$CORECAST" serve --http "127.0.0.1:$HTTP_PORT" --rtp-ip 127.0.0.1 --shards 1 --no-pin \
  >"$LOGS/serve.log" 2>&1 &
NODE=$!
PIDS+=("$NODE")
up=0
for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$NODE" 2>/dev/null || break
  sleep 0.1
done
[ "$up" = 1 ] || { echo "join-under-load: the node did not come up; see $LOGS/serve.log" >&2; exit 1; }

"$CORECAST" loadgen --server "127.0.0.1:$HTTP_PORT" --sources 1 --subscribers "$PLAIN" \
  --duration "$DURATION" --bitrate "$BITRATE" --server-pid "$NODE" --json \
  --max-loss 1 --max-p99-ms none \
  >"$LOGS/plain.json" 2> >(stamp >"$LOGS/plain.err") &
PLAIN_PID=$!
PIDS+=("$PLAIN_PID")

# Wait (bounded) until plain has forwarded for BEFORE_S seconds: its progress lines say so.
for _ in $(seq $((20 * (BEFORE_S + 30)))); do
  if awk -v b="$BEFORE_S" '$3 == "s" && $2 + 0 >= b { found = 1 } END { exit !found }' \
    "$LOGS/plain.err" 2>/dev/null; then break; fi
  kill -0 "$PLAIN_PID" 2>/dev/null || { echo "join-under-load: plain loadgen ended early" >&2; cat "$LOGS/plain.err" >&2; exit 1; }
  sleep 0.05
done

WHEP_START=$(date +%s.%N)
"$CORECAST" loadgen --server "127.0.0.1:$HTTP_PORT" --sources 1 --subscribers "$VIEWERS" \
  --whep --duration $((DURATION - BEFORE_S - 12)) --bitrate "$VIEWER_BITRATE" --json \
  --max-loss 1 --max-p99-ms none \
  >"$LOGS/whep.json" 2> >(stamp >"$LOGS/whep.err") &
WHEP_PID=$!
PIDS+=("$WHEP_PID")

plain_rc=0
whep_rc=0
wait "$WHEP_PID" || whep_rc=$?
wait "$PLAIN_PID" || plain_rc=$?
sleep 0.2 # the stamping subshells flush their last line

python3 - "$LOGS" "$WHEP_START" "$OUT" "$plain_rc" "$whep_rc" "$PLAIN" "$VIEWERS" "$BITRATE" <<'PY'
import json, statistics, sys
logs, whep_start, out, plain_rc, whep_rc, plain_n, viewers, bitrate = sys.argv[1:9]
whep_start = float(whep_start)

def progress(path):
    """(wall, elapsed_s, lost_so_far, p99_us) of each progress line."""
    rows = []
    for line in open(path):
        parts = line.split()
        # "<wall> <elapsed> s sent N received X pps lost so far G p99 P µs switches S"
        if len(parts) > 14 and parts[2] == "s" and parts[3] == "sent":
            p99 = None if parts[13] == "-" else int(parts[13])
            rows.append((float(parts[0]), float(parts[1]), int(parts[11]), p99))
    return rows

def report(path):
    text = open(path).read()
    return json.JSONDecoder().raw_decode(text[text.index("{"):])[0] if "{" in text else None

plain = progress(f"{logs}/plain.err")
whep = progress(f"{logs}/whep.err")
if not plain or not whep:
    sys.exit("join-under-load: missing progress lines; see " + logs)
joined_at = whep[0][0]  # the whep generator starts sending once every viewer is connected
p_report, w_report = report(f"{logs}/plain.json"), report(f"{logs}/whep.json")

def window(lo, hi):
    # Each line covers the second before it; skip the first (subscribers settling).
    sel = [r for r in plain[1:] if lo < r[0] <= hi + 1.0 and r[3] is not None]
    return sel

before = window(0, whep_start)
during = window(whep_start, joined_at)
after = window(joined_at, float("inf"))
def summary(rows):
    p99s = [r[3] for r in rows]
    return {"seconds": len(rows), "p99_us_median": int(statistics.median(p99s)) if p99s else None,
            "p99_us_max": max(p99s) if p99s else None}
res = {
    "plain_subscribers": int(plain_n), "viewers": int(viewers), "bitrate": int(bitrate),
    "join_s": round(joined_at - whep_start, 2),
    "before": summary(before), "during": summary(during), "after": summary(after),
    "plain_exit": int(plain_rc), "whep_exit": int(whep_rc),
    "plain_lost": p_report.get("lost") if p_report else None,
    "plain_expected": p_report.get("packets_expected") if p_report else None,
    "plain": p_report, "whep": w_report,
}
with open(out, "w") as f:
    json.dump(res, f, indent=1)
    f.write("\n")
print(f"{plain_n} plain subscribers at {int(bitrate) // 1000} kbit/s; {viewers} viewers joined in {res['join_s']} s")
print("| window | seconds | p99 µs (median of 1-s windows) | p99 µs (worst 1-s window) |")
print("|---|---:|---:|---:|")
for name in ("before", "during", "after"):
    s = res[name]
    print(f"| {name} | {s['seconds']} | {s['p99_us_median']} | {s['p99_us_max']} |")
print(f"plain: lost {res['plain_lost']} of {res['plain_expected']} expected, exit {plain_rc}; whep exit {whep_rc}")
PY
