#!/usr/bin/env bash
# UDP GSO against the per-datagram path (issue 15), in one command: 1 source x 1 000 subscribers
# of a VP8-shaped 2 Mbit/s stream, packets out per CPU-second of the forwarding thread, on two
# rigs, every figure of a rig measured in the same run:
#   loopback   corecast --gso on and --gso off, WebRTC viewers (--whep) with GSO, GStreamer
#              `multiudpsink`, and the kernel's limit (rawlimit: sendmmsg, and GSO messages of
#              4, 8 and 16 datagrams) with receivers draining on the other core. Each datagram
#              is delivered into its receiver's socket by the sender's own thread, and a GSO
#              message is split into its datagrams there (software segmentation). Then plain
#              subscribers and WebRTC viewers again with the shard and the load generator placed
#              apart, as a node runs by default: the shard pinned to core 1 (`--cores 1`), the
#              load generator held to core 0 (`taskset -c 0`), so that neither runs on the
#              other's core (the viewers' load generator decrypts every copy, and unplaced it
#              shares the shard's core and caches part of the time).
#   send-only  the same senders into the network namespace of scripts/send-only-rig.sh, which
#              drops everything at its ingress: the send side alone, and a GSO message crosses
#              the veth whole, as to a NIC with UDP segmentation offload. corecast and GStreamer
#              send to 999 subscribers there and one verified subscriber on this host.
# Each configuration runs three times, interleaved; the report gives medians (and ranges). It
# writes the section of BENCHMARKS.md between `<!-- bench-gso.sh begin -->` and
# `<!-- bench-gso.sh end -->` and benches/results/gso/*.json. About 5 minutes on the 2-core
# development machine; the send-only rig needs root (netns, veth, nft), and is skipped, said
# so, without it.
#
#   scripts/bench-gso.sh           full run; rewrites BENCHMARKS.md's bench-gso section
#   scripts/bench-gso.sh --quick   a second per step, 100 subscribers: writes only under
#                                  target/bench-gso-quick/, touches nothing tracked
#   --subscribers N                1 x N instead (2 to 5000): its own section of BENCHMARKS.md
#                                  and benches/results/gso-N/ (low fan-out: --subscribers 10)
#   --perf                         then profile corecast's shard thread (perf, cpu-clock, 4 s)
#                                  with GSO on the send-only rig and for WebRTC viewers on
#                                  loopback: the top symbols go to $RESULTS/perf-*.txt
#
# corecast's packets out are its own count of copies the kernel took (`node.packets_forwarded`
# in /v1/stats, which with GSO counts datagrams, not messages); its CPU is its shard thread's.
# GStreamer's on the send-only rig are the rig's drop counter (GStreamer sends no GSO, so that
# counts datagrams) plus what the verified subscriber received.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="scripts/bench-gso.sh${*:+ $*}"

QUICK=0
PERF=0
M_ASKED=""
for arg in "$@"; do
  if [ "$M_ASKED" = next ]; then
    M_ASKED=$arg
    continue
  fi
  case "$arg" in
    --quick) QUICK=1 ;;
    --subscribers) M_ASKED=next ;;
    --perf) PERF=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    *)
      echo "bench-gso.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

BITRATE=2000000
SEGMENTS=16
RIG_IP=10.77.0.2
RIG_HOST_IP=10.77.0.1
RIG_PORT=40000
if [ "$QUICK" = 1 ]; then
  OUT=target/bench-gso-quick
  RESULTS=$OUT/results
  DURATION=1
  REPEAT=1
  PROBE_SECONDS=0.2
  M=100
else
  OUT=target/bench-gso
  RESULTS=benches/results/gso
  DURATION=6
  REPEAT=3
  PROBE_SECONDS=1.5
  M=1000
fi
if [ -n "$M_ASKED" ]; then
  if ! [[ "$M_ASKED" =~ ^[0-9]+$ ]] || [ "$M_ASKED" -lt 2 ] || [ "$M_ASKED" -gt 5000 ]; then
    echo "bench-gso.sh: --subscribers takes 2 to 5000" >&2
    exit 2
  fi
  M=$M_ASKED
  [ "$QUICK" = 1 ] || RESULTS=benches/results/gso-$M
  OUT=$OUT-$M
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
LOGS=$OUT/logs
mkdir -p "$RESULTS" "$LOGS"
rm -f "$RESULTS"/*.json

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

log "building (release)"
cargo build --release --locked -q -p corecast -p corecast-benches --bins
CORECAST=$ROOT/target/release/corecast
RAWLIMIT=$ROOT/target/release/rawlimit
HAVE_GST=0
if gst-inspect-1.0 multiudpsink >/dev/null 2>&1 && gst-inspect-1.0 udpsrc >/dev/null 2>&1; then
  HAVE_GST=1
else
  log "GStreamer multiudpsink not available: no GStreamer runs"
fi
RIG=0
rig_down() { [ "$RIG" = 1 ] && scripts/send-only-rig.sh down >/dev/null 2>&1 || true; }
trap 'cleanup; rig_down' EXIT
if [ "$(id -u)" = 0 ] && scripts/send-only-rig.sh up >"$LOGS/rig.log" 2>&1; then
  RIG=1
else
  log "WARNING: the send-only rig could not be set up (root, netns, veth and nft needed; see" \
    "$LOGS/rig.log): loopback only"
fi
rig_dropped() { scripts/send-only-rig.sh status | sed -E 's/.*dropped_packets=([0-9]+).*/\1/'; }

BUSY=$(background_busy)
log "${BUSY} cores busy before the run"

# corecast's own counts, after its last snapshot: {"packets_forwarded", "gso": {...}}.
node_counts() {
  sleep 1.2
  curl -sf "http://127.0.0.1:$HTTP_PORT/v1/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
gso = {k: sum(sh["gso"][k] for sh in s["shards"]) for k in ("messages", "copies", "refused")}
print(json.dumps({"packets_forwarded": s["node"]["packets_forwarded"], "gso": gso,
                  "packets_in": sum(sh["packets_in"] for sh in s["shards"]),
                  "segments": max(sh["gso"]["segments"] for sh in s["shards"])}))'
}

# The load generator's flags for rig $1 and transport $2 (`whep` for viewers), as the caller's
# locals `extra` (flags), `verified` (subscribers it receives) and `media_ip` (the node's
# --rtp-ip): on the send-only rig it verifies one subscriber on this host and the rest go into
# the rig's namespace.
load_flags() {
  extra=()
  verified=$M
  media_ip=127.0.0.1
  [ "$2" = whep ] && extra+=(--whep)
  if [ "$1" = sendonly ]; then
    verified=1
    media_ip=$RIG_HOST_IP
    extra+=(--bind-ip "$RIG_HOST_IP" --unverified $((M - 1)) --unverified-to "$RIG_IP:$RIG_PORT")
  fi
}

# One corecast run: $1 rig (loopback|sendonly), $2 gso mode, $3 out file, $4 `whep` for viewers,
# $5 `apart` to pin the shard to core 1 and hold the load generator to core 0.
run_corecast() {
  local rig=$1 gso=$2 out=$3 transport=${4:-rtp} name rc counts extra verified media_ip
  local core="" place=()
  name=$(basename "$out" .json)
  load_flags "$rig" "$transport"
  if [ "${5:-}" = apart ]; then
    core=1
    place=(taskset -c 0)
  fi
  log "corecast --gso $gso ($transport, $rig${core:+, apart}): 1 x $M, ${DURATION}s ($name)"
  SHARD_CORE=$core RTP_IP=$media_ip start_corecast "$name" "$verified" --gso "$gso" \
    --gso-segments "$SEGMENTS"
  sleep 0.5
  start_sampler "$SERVER" "$LOGS/$name.sample.json"
  set +e
  "${place[@]}" "${PRIO[@]}" "$CORECAST" loadgen --server "127.0.0.1:$HTTP_PORT" \
    --recv-base-port "$RECV_BASE" --sources 1 --subscribers "$verified" --duration "$DURATION" \
    --bitrate "$BITRATE" --max-loss 1 --max-p99-ms none --json --server-pid "$SERVER" \
    "${extra[@]}" \
    >"$LOGS/$name.loadgen.json" 2>"$LOGS/$name.loadgen.log"
  rc=$?
  set -e
  counts=$(node_counts || echo '{}')
  stop_sampler
  stop_server
  write_record "$out" "corecast" 1 "$M" "$rc" "$LOGS/$name.loadgen.json" \
    "$LOGS/$name.sample.json" "" \
    "{\"rig\": \"$rig\", \"gso\": \"$gso\", \"transport\": \"$transport\", \"node\": $counts}"
}

# One GStreamer run: $1 rig, $2 out file.
run_gst() {
  local rig=$1 out=$2 name rc recv_base in_port gst verified=$M more="" before=0 after=0
  name=$(basename "$out" .json)
  if [ "$rig" = sendonly ]; then
    verified=1
    more="$RIG_IP:$RIG_PORT:$((M - 1))"
  fi
  log "gstreamer multiudpsink ($rig): 1 x $M, ${DURATION}s ($name)"
  recv_base=$(free_udp_range $((verified + 1)))
  in_port=$((recv_base + verified))
  "${PRIO[@]}" scripts/gst-fanout.sh "$in_port" "$recv_base" "$verified" $more \
    >"$LOGS/$name.gst.log" 2>&1 &
  gst=$!
  PIDS+=("$gst")
  wait_udp_bound "$in_port"
  sleep 0.5
  [ "$rig" = sendonly ] && before=$(rig_dropped)
  start_sampler "$gst" "$LOGS/$name.sample.json"
  set +e
  "${PRIO[@]}" "$CORECAST" loadgen --raw-target "127.0.0.1:$in_port" --recv-base-port "$recv_base" \
    --sources 1 --subscribers "$verified" --duration "$DURATION" --bitrate "$BITRATE" \
    --max-loss 1 --max-p99-ms none --json --server-pid "$gst" \
    >"$LOGS/$name.loadgen.json" 2>"$LOGS/$name.loadgen.log"
  rc=$?
  set -e
  stop_sampler
  [ "$rig" = sendonly ] && after=$(rig_dropped)
  stop_pid "$gst"
  forget_pid "$gst"
  write_record "$out" gstreamer 1 "$M" "$rc" "$LOGS/$name.loadgen.json" \
    "$LOGS/$name.sample.json" "" "{\"rig\": \"$rig\", \"rig_dropped\": $((after - before))}"
}

# The kernel's limit: $1 rig, $2 out file.
run_probe() {
  local rig=$1 out=$2 where=()
  [ "$rig" = sendonly ] && where=(--send-only "$RIG_IP:$RIG_PORT")
  log "rawlimit ($rig): $M destinations, ${PROBE_SECONDS}s per mode"
  "${PRIO[@]}" "$RAWLIMIT" --receivers "$M" --seconds "$PROBE_SECONDS" --size 1200 \
    --gso 4,8,"$SEGMENTS" "${where[@]}" --json >"$out"
}

RIGS=loopback
[ "$RIG" = 1 ] && RIGS="loopback sendonly"
# Placing the shard and the load generator apart needs a core for each.
APART=0
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  APART=1
else
  log "fewer than 2 cores (or no taskset): no runs with the shard and load generator apart"
fi
for r in $(seq "$REPEAT"); do
  for rig in $RIGS; do
    run_probe "$rig" "$RESULTS/probe-$rig.r$r.json"
    run_corecast "$rig" on "$RESULTS/corecast-gso-$rig.r$r.json"
    run_corecast "$rig" off "$RESULTS/corecast-nogso-$rig.r$r.json"
    [ "$HAVE_GST" = 1 ] && run_gst "$rig" "$RESULTS/gstreamer-$rig.r$r.json"
    if [ "$rig" = loopback ]; then
      run_corecast loopback on "$RESULTS/webrtc-gso-loopback.r$r.json" whep
      if [ "$APART" = 1 ]; then
        run_corecast loopback on "$RESULTS/corecast-gso-apart-loopback.r$r.json" rtp apart
        run_corecast loopback on "$RESULTS/webrtc-gso-apart-loopback.r$r.json" whep apart
      fi
    fi
  done
done

# --- where the shard's time goes (--perf) -------------------------------------------------------
# $1 rig, $2 transport, $3 name: corecast --gso on under the load generator, its shard thread
# sampled for 4 s once the stream is steady.
profile_shard() {
  local rig=$1 transport=$2 name=$3 lg tid extra verified media_ip
  load_flags "$rig" "$transport"
  log "perf: corecast --gso on ($transport, $rig), 1 x $M, 4 s of the shard thread"
  RTP_IP=$media_ip start_corecast "$name" "$verified" --gso on --gso-segments "$SEGMENTS"
  "${PRIO[@]}" "$CORECAST" loadgen --server "127.0.0.1:$HTTP_PORT" --recv-base-port "$RECV_BASE" \
    --sources 1 --subscribers "$verified" --duration 10 --bitrate "$BITRATE" --max-loss 1 \
    --max-p99-ms none --json "${extra[@]}" >"$RESULTS/$name.loadgen.json" 2>"$LOGS/$name.log" &
  lg=$!
  PIDS+=("$lg")
  sleep 4
  tid=$(grep -l corecast-shard /proc/"$SERVER"/task/*/comm | head -1 | cut -d/ -f5)
  if perf record -q -g -e cpu-clock -F 2000 -t "$tid" -o "$OUT/$name.data" -- sleep 4 \
    >"$LOGS/$name.perf.log" 2>&1; then
    perf report -i "$OUT/$name.data" --stdio --no-children --sort dso,symbol -g none \
      --percent-limit 0.7 2>/dev/null | grep -E '^ +[0-9]' >"$RESULTS/$name.txt" || true
  else
    log "perf record failed (see $LOGS/$name.perf.log)"
  fi
  wait "$lg" 2>/dev/null || true
  forget_pid "$lg"
  stop_server
}
if [ "$PERF" = 1 ]; then
  if command -v perf >/dev/null; then
    [ "$RIG" = 1 ] && profile_shard sendonly rtp perf-corecast-gso-sendonly
    profile_shard loopback whep perf-webrtc-gso-loopback
  else
    log "WARNING: --perf asked for, but perf is not installed (Debian: linux-perf): no profiles"
  fi
fi

python3 - "$RESULTS/meta.json" "$COMMAND" "$DURATION" "$BITRATE" "$BUSY" "$REPEAT" "$M" \
  "$SEGMENTS" "${PRIO[*]}" "$QUICK" <<'PY'
import datetime, json, os, platform, sys
out, command, duration, bitrate, busy, repeat, m, segments, prio, quick = sys.argv[1:11]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"command": command, "date": datetime.date.today().isoformat(), "cpu": cpu,
           "cores": os.cpu_count(), "kernel": platform.release(), "duration": int(duration),
           "bitrate": int(bitrate), "background_busy_cores": float(busy), "repeat": int(repeat),
           "subscribers": int(m), "segments": int(segments), "prio": prio,
           "quick": quick == "1"}, open(out, "w"), indent=1)
PY

if [ "$QUICK" = 1 ]; then
  python3 scripts/bench-gso-report.py "$RESULTS" --markdown "$OUT/bench-gso.md"
  log "quick run done: $OUT/bench-gso.md, $RESULTS/"
else
  python3 scripts/bench-gso-report.py "$RESULTS" --markdown "$OUT/bench-gso.md" \
    --benchmarks BENCHMARKS.md
  log "done: BENCHMARKS.md (bench-gso section), $RESULTS/*.json"
fi
