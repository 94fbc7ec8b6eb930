#!/usr/bin/env bash
# Memory per subscriber, plain RTP against WebRTC viewers, in one run. For each of PAIRS
# rounds and each count in COUNTS: a fresh `corecast serve --no-pin --shards 1` and
# `corecast loadgen --sources 1 --subscribers N --duration D --bitrate 500000 [--whep]` against
# it, the node's VmRSS and RssAnon sampled every 100 ms.
# Peak: the highest reading while the load generator runs; steady: the median over the last 2 s
# of sending (after the handshake thread has let go of finished handshakes, which it keeps for
# 10 s: D should be at least 15). Each less the idle reading 0.5 s after start.
# Two figures per mode:
# - average: (steady - idle) / N at the largest count. It includes what the node touches once
#   for the first subscriber of a kind (for viewers: the WebRTC and crypto code's pages, the
#   seal arena, the handshake thread's arena), spread over N;
# - marginal: what one more subscriber costs, the slope of steady RssAnon between the smallest
#   and the largest count (file-backed pages, the binary's code, are not per subscriber).
# Usage: scripts/viewer-memory.sh [COUNTS="500 1500"] [D=15] [PAIRS=2]   (needs a release build)
set -euo pipefail
COUNTS=${1:-500 1500}
D=${2:-15}
PAIRS=${3:-2}
BIN=${CORECAST:-target/release/corecast}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
read -r -a counts <<<"$COUNTS"

one() { # $1 rtp|whep, $2 N: appends "mode n idle_rss steady_rss peak_rss idle_anon steady_anon"
  local http lo pid sampler base t0 t1 whep=()
  [ "$1" = whep ] && whep=(--whep)
  http=$((20000 + RANDOM % 10000))
  lo=$((31000 + RANDOM % 1000 * 16))
  "$BIN" serve --http "127.0.0.1:$http" --rtp-ip 127.0.0.1 --rtp-ports "$lo-$((lo + 15))" \
    --shards 1 --no-pin >"$WORK/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 0.5
  base=$(awk '/^VmRSS|^RssAnon/ {printf "%s ", $2}' "/proc/$pid/status")
  (while kill -0 "$pid" 2>/dev/null; do
    echo "$(date +%s.%N) $(awk '/^VmRSS|^RssAnon/ {printf "%s ", $2}' "/proc/$pid/status" 2>/dev/null)"
    sleep 0.1
  done) >"$WORK/rss" &
  sampler=$!
  t0=$(date +%s.%N)
  "$BIN" loadgen --server "127.0.0.1:$http" --sources 1 \
    --subscribers "$2" --duration "$D" --bitrate 500000 --max-loss 1 --max-p99-ms none \
    --json --server-pid "$pid" "${whep[@]}" >"$WORK/loadgen.json" 2>"$WORK/loadgen.log" ||
    { echo "loadgen failed ($1 x $2):"; tail -5 "$WORK/loadgen.log"; }
  t1=$(date +%s.%N)
  kill -INT "$pid"
  wait "$pid" || true
  kill "$sampler" 2>/dev/null || true
  python3 - "$WORK/rss" "$base" "$t0" "$t1" "$1" "$2" >>"$WORK/results" <<'PY'
import sys
path, base, t0, t1, mode, n = sys.argv[1], sys.argv[2].split(), *map(float, sys.argv[3:5]), sys.argv[5], int(sys.argv[6])
rows = [(float(t), int(r), int(a)) for t, r, a in (l.split() for l in open(path) if len(l.split()) == 3)]
peak = max(r for t, r, a in rows if t0 <= t <= t1)
# The loadgen drains for about 1.5 s after sending: the steady window ends before that.
late = sorted((r, a) for t, r, a in rows if t1 - 3.5 <= t <= t1 - 1.5)
steady, steady_anon = late[len(late) // 2]
print(mode, n, base[0], steady, peak, base[1], steady_anon)
PY
  tail -1 "$WORK/results" | awk '{printf "%-4s x %5d: idle %d kB, peak %d kB, steady %d kB (anon %d kB); per subscriber: peak %d B, steady %d B\n", $1, $2, $3, $5, $4, $7, ($5-$3)*1024/$2, ($4-$3)*1024/$2}'
}

for _ in $(seq "$PAIRS"); do
  for n in "${counts[@]}"; do
    one rtp "$n"
    one whep "$n"
  done
done

python3 - "$WORK/results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
rows = [(m, int(n), *map(int, rest)) for m, n, *rest in rows]
counts = sorted({r[1] for r in rows})
def median(mode, n, f):
    return statistics.median(f(r) for r in rows if r[0] == mode and r[1] == n)
hi, lo = counts[-1], counts[0]
avg, marg = {}, {}
for mode in ("rtp", "whep"):
    avg[mode] = median(mode, hi, lambda r: (r[3] - r[2]) * 1024 / hi)
    line = f"{mode:4}: average at {hi}: {avg[mode]:,.0f} B per subscriber (VmRSS)"
    if hi != lo:
        marg[mode] = (median(mode, hi, lambda r: r[6] - r[5]) - median(mode, lo, lambda r: r[6] - r[5])) * 1024 / (hi - lo)
        line += f"; marginal {lo}→{hi}: {marg[mode]:,.0f} B per subscriber (RssAnon)"
    print(line)
line = f"viewer beyond plain: average {avg['whep'] - avg['rtp']:,.0f} B"
if marg:
    line += f", marginal {marg['whep'] - marg['rtp']:,.0f} B"
print(line + " (medians over the rounds)")
PY
