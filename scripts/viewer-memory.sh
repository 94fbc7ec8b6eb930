#!/usr/bin/env bash
# Memory per subscriber, plain RTP against WebRTC viewers, in one run: for each of PAIRS pairs,
# a fresh `corecast serve --no-pin --shards 1` and `corecast loadgen --sources 1 --subscribers N
# --duration D --bitrate 500000 [--whep]` against it, VmRSS sampled every 100 ms.
# Peak: the highest VmRSS while the load generator runs; steady: the median over the last 2 s
# of sending (after the handshake thread has let go of finished handshakes, which it keeps for
# 10 s: D should be at least 15). Both less the idle VmRSS 0.5 s after start, over N.
# Usage: scripts/viewer-memory.sh [N=1000] [D=15] [PAIRS=2]   (needs a release build)
set -euo pipefail
N=${1:-1000}
D=${2:-15}
PAIRS=${3:-2}
BIN=${CORECAST:-target/release/corecast}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

one() { # $1 rtp|whep
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
  base=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  (while kill -0 "$pid" 2>/dev/null; do
    echo "$(date +%s.%N) $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
    sleep 0.1
  done) >"$WORK/rss" &
  sampler=$!
  t0=$(date +%s.%N)
  "$BIN" loadgen --server "127.0.0.1:$http" --sources 1 \
    --subscribers "$N" --duration "$D" --bitrate 500000 --max-loss 1 --max-p99-ms none \
    --json --server-pid "$pid" "${whep[@]}" >"$WORK/loadgen.json" 2>"$WORK/loadgen.log" ||
    { echo "loadgen failed ($1):"; tail -5 "$WORK/loadgen.log"; }
  t1=$(date +%s.%N)
  kill -INT "$pid"
  wait "$pid" || true
  kill "$sampler" 2>/dev/null || true
  python3 - "$WORK/rss" "$base" "$t0" "$t1" "$1" "$N" <<'PY'
import sys
path, base, t0, t1, mode, n = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:5]), sys.argv[5], int(sys.argv[6])
rows = [(float(t), int(r)) for t, r in (l.split() for l in open(path) if len(l.split()) == 2)]
peak = max(r for t, r in rows if t0 <= t <= t1)
# The loadgen drains for about 1.5 s after sending: the steady window ends before that.
late = sorted(r for t, r in rows if t1 - 3.5 <= t <= t1 - 1.5)
steady = late[len(late) // 2]
print(f"{mode:4} x {n}: idle {base} kB, peak {peak} kB, steady {steady} kB; per subscriber: "
      f"peak {(peak - base) * 1024 // n} B, steady {(steady - base) * 1024 // n} B")
PY
}

for _ in $(seq "$PAIRS"); do
  one rtp
  one whep
done
