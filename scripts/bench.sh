#!/usr/bin/env bash
# The node's benchmark, in one command: builds in release, then measures
#   (a) the kernel's limit: benches/src/bin/rawlimit.rs, one thread sending with send_to and
#       with sendmmsg to N loopback receivers, packets per CPU-second of the sending thread
#       (receivers sleeping in epoll like the load generator's, and spinning);
#   (b) corecast (`corecast serve`, one unpinned shard) driven by `corecast loadgen` with
#       1 source x 10, 100, 1 000 and 5 000 subscribers, and 4 sources x 1 000 subscribers (in
#       all, 250 on each source, so the same packets out per second as 1 x 1 000), at 2 Mbit/s;
#   (c) the same 1-source fan-outs done by GStreamer (`udpsrc ! multiudpsink`,
#       scripts/gst-fanout.sh), driven by the same load generator in raw mode;
#   each three times, interleaved (corecast, GStreamer, corecast, ...), reporting medians, as
#   runs on a 2-core machine vary by 10-20% from one to the next; then a run at half of
#   corecast's saturation (for latency) and a perf profile, and writes
#   the generated section of BENCHMARKS.md (between `<!-- bench.sh begin -->` and
#   `<!-- bench.sh end -->`), benches/results/*.json (every run's raw JSON) and
#   benches/results/fanout.svg. About 7 minutes on the 2-core development machine.
#
#   scripts/bench.sh            full run; rewrites BENCHMARKS.md's generated section
#   scripts/bench.sh --quick    a few seconds per step, for CI: writes only under
#                               target/bench-quick/ (Markdown, JSON, SVG), touches nothing tracked
#
# Everything binds to 127.0.0.1; every process started here is stopped on exit. When allowed
# (root), every measured process runs at nice -19, so other work on the machine disturbs the
# figures less; the CPU busy before the run is measured and printed with the results.
#
# Why one unpinned shard: the figure of merit is packets out per CPU-second, which does not
# depend on how many threads share the work, and one forwarding thread compares like with like
# against the probe's one sending thread and GStreamer's one streaming thread. On a 2-core
# machine that also runs the load generator, pinning buys no locality and can hold the shard on
# a core a load-generator thread is using while the other core idles.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COMMAND="scripts/bench.sh${*:+ $*}"

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    *)
      echo "bench.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

BITRATE=2000000
if [ "$QUICK" = 1 ]; then
  OUT=target/bench-quick
  RESULTS=$OUT/results
  DURATION=1
  REPEAT=1
  HALF_DURATION=1
  PROBE_SECONDS=0.2
  PROBE_RECEIVERS="10"
  CORECAST_RUNS="1x10 1x100"
  WEBRTC_RUNS="1x10"
  GST_RUNS="1x10"
  PERF_RUN=""
else
  OUT=target/bench
  RESULTS=benches/results
  DURATION=6
  REPEAT=3
  HALF_DURATION=8
  PROBE_SECONDS=1.5
  PROBE_RECEIVERS="10 100 1000 5000"
  CORECAST_RUNS="1x10 1x100 1x1000 1x5000 4x1000"
  WEBRTC_RUNS="1x1000"
  GST_RUNS="1x10 1x100 1x1000 1x5000"
  PERF_RUN="1x1000"
fi
# A socket per subscriber: 5 000 of them in the load generator, as many held to check ports.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

LOGS=$OUT/logs
mkdir -p "$RESULTS" "$LOGS"
# Only this script's own files: benches/results/ also holds other scripts' (join-time.json,
# webhook-*.json, ...) and bench-gso.sh's subdirectories.
rm -f "$RESULTS"/{corecast,gstreamer,webrtc,rawlimit}-*.json "$RESULTS"/{halfsat,meta}.json \
  "$RESULTS"/perf-*.txt "$RESULTS"/perf-*.json "$RESULTS"/fanout.svg

# Processes stopped on exit, ports, the sampler, run records.
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# --- build and tools ----------------------------------------------------------------------------
log "building (release)"
cargo build --release --locked -q -p corecast -p corecast-benches --bins
CORECAST=$ROOT/target/release/corecast
RAWLIMIT=$ROOT/target/release/rawlimit
if ! "$CORECAST" loadgen --help >/dev/null 2>&1; then
  echo "bench.sh: \`corecast loadgen\` is missing from this build" >&2
  exit 1
fi

if ! gst-inspect-1.0 multiudpsink >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing GStreamer (gstreamer1.0-tools, -plugins-base, -plugins-good)"
    apt-get install -y -q gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
      >"$LOGS/apt.log" 2>&1 || true
  fi
fi
HAVE_GST=0
if gst-inspect-1.0 multiudpsink >/dev/null 2>&1 && gst-inspect-1.0 udpsrc >/dev/null 2>&1; then
  HAVE_GST=1
else
  log "GStreamer multiudpsink not available: skipping its runs (no ratio to GStreamer)"
fi

# Every loadgen run here turns its thresholds off (--max-loss 1 --max-p99-ms none): the runs
# at and past saturation lose packets and queue for seconds by design; loss and latency are
# recorded and reported, and the exit status says only whether the stream verified.

# One corecast run: $1 sources, $2 subscribers, $3 duration, $4 out file, $5 extra JSON fields,
# $6 `whep` to make every subscriber a WebRTC viewer (recorded as forwarder `webrtc`).
run_corecast() {
  local s=$1 m=$2 d=$3 out=$4 extra=${5:-"{}"} transport=${6:-rtp} name rc base fw=corecast
  local whep=()
  if [ "$transport" = whep ]; then
    whep=(--whep)
    fw=webrtc
  fi
  name=$(basename "$out" .json)
  log "corecast: $s source(s) x $m subscribers, ${d}s ($name)"
  start_corecast "$name" "$m"
  sleep 0.5
  base=$(rss_kb "$SERVER")
  start_sampler "$SERVER" "$LOGS/$name.sample.json"
  set +e
  "${PRIO[@]}" "$CORECAST" loadgen --server "127.0.0.1:$HTTP_PORT" --recv-base-port "$RECV_BASE" \
    --sources "$s" --subscribers "$m" \
    --duration "$d" --bitrate "$BITRATE" --max-loss 1 --max-p99-ms none --json --server-pid "$SERVER" \
    "${whep[@]}" >"$LOGS/$name.loadgen.json" 2>"$LOGS/$name.loadgen.log"
  rc=$?
  set -e
  stop_sampler
  stop_server
  write_record "$out" "$fw" "$s" "$m" "$rc" "$LOGS/$name.loadgen.json" \
    "$LOGS/$name.sample.json" "$base" "$extra"
}

# One GStreamer run: $1 subscribers, $2 duration, $3 out file.
run_gst() {
  local m=$1 d=$2 out=$3 name rc base in_port recv_base gst
  name=$(basename "$out" .json)
  log "gstreamer multiudpsink: 1 source x $m subscribers, ${d}s ($name)"
  recv_base=$(free_udp_range $((m + 1)))
  in_port=$((recv_base + m))
  "${PRIO[@]}" scripts/gst-fanout.sh "$in_port" "$recv_base" "$m" >"$LOGS/$name.gst.log" 2>&1 &
  gst=$!
  PIDS+=("$gst")
  wait_udp_bound "$in_port"
  sleep 0.5
  base=$(rss_kb "$gst")
  start_sampler "$gst" "$LOGS/$name.sample.json"
  set +e
  "${PRIO[@]}" "$CORECAST" loadgen --raw-target "127.0.0.1:$in_port" --recv-base-port "$recv_base" \
    --sources 1 --subscribers "$m" --duration "$d" --bitrate "$BITRATE" --max-loss 1 --max-p99-ms none --json \
    --server-pid "$gst" >"$LOGS/$name.loadgen.json" 2>"$LOGS/$name.loadgen.log"
  rc=$?
  set -e
  stop_sampler
  stop_pid "$gst"
  forget_pid "$gst"
  write_record "$out" gstreamer 1 "$m" "$rc" "$LOGS/$name.loadgen.json" \
    "$LOGS/$name.sample.json" "$base" "{}"
}

# Other work on the machine skews every figure: measure it, say so, and record it.
BUSY=$(background_busy)
if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 0.1 else 1)" "$BUSY"; then
  log "machine idle before the run (${BUSY} cores busy)"
else
  log "WARNING: ${BUSY} cores were already busy before the run: the figures will be skewed"
fi

# --- (a) the kernel's limit ---------------------------------------------------------------------
# With a receiver that sleeps in epoll, as the load generator's do (the limit the forwarders are
# judged against), and with one that spins (no wake-ups: the send path alone).
for r in $(seq "$REPEAT"); do
  for n in $PROBE_RECEIVERS; do
    log "rawlimit: $n receivers, ${PROBE_SECONDS}s per mode (repetition $r)"
    "${PRIO[@]}" "$RAWLIMIT" --receivers "$n" --seconds "$PROBE_SECONDS" --size 1200 --json \
      >"$RESULTS/rawlimit-$n.r$r.json"
    "${PRIO[@]}" "$RAWLIMIT" --receivers "$n" --seconds "$PROBE_SECONDS" --size 1200 --json \
      --receiver spin >"$RESULTS/rawlimit-spin-$n.r$r.json"
  done
done

# --- (b) corecast, (c) GStreamer ----------------------------------------------------------------
# Each corecast run is followed by GStreamer's at the same subscriber count, so the two of a
# pair see the same state of the machine.
for run in $CORECAST_RUNS; do
  for r in $(seq "$REPEAT"); do
    run_corecast "${run%x*}" "${run#*x}" "$DURATION" "$RESULTS/corecast-$run.r$r.json"
    if [[ " $WEBRTC_RUNS " == *" $run "* ]]; then
      run_corecast "${run%x*}" "${run#*x}" "$DURATION" "$RESULTS/webrtc-$run.r$r.json" '{}' whep
    fi
    if [ "$HAVE_GST" = 1 ] && [[ " $GST_RUNS " == *" $run "* ]]; then
      run_gst "${run#*x}" "$DURATION" "$RESULTS/gstreamer-$run.r$r.json"
    fi
  done
done

# --- half of saturation -------------------------------------------------------------------------
# Saturation is estimated from the runs above (scripts/bench-report.py: packets out per
# CPU-second of the shard thread in the median repetition of the largest loss-free 1-source
# configuration), then one run at half of it measures latency.
if half=$(python3 scripts/bench-report.py halfsat "$RESULTS"); then
  run_corecast 1 "$half" "$HALF_DURATION" "$RESULTS/halfsat.json" '{"halfsat": true}'
else
  log "saturation not estimated: no half-of-saturation run"
fi

# --- where the time goes ------------------------------------------------------------------------
# perf (cpu-clock: this VM has no hardware counters) on corecast and on GStreamer under the same
# load, 4 s each, so the report can say per copy where the two differ.
PERF_SECONDS=4
PERF_HZ=2000
profile() { # $1: PID, $2: name
  if ! perf record -q -g -e cpu-clock -F "$PERF_HZ" -p "$1" -o "$OUT/perf-$2.data" \
    -- sleep "$PERF_SECONDS" >"$LOGS/perf-$2.log" 2>&1; then
    log "perf record failed (see $LOGS/perf-$2.log): no profile of $2"
    return 0
  fi
  perf report -i "$OUT/perf-$2.data" --stdio --no-children --sort comm,dso,symbol -g none \
    --percent-limit 1 2>/dev/null | grep -E '^ +[0-9]' | sed -E 's/([[:space:]]+-)+[[:space:]]*$//' \
    | head -20 \
    >"$RESULTS/perf-$2.txt" || true
  perf report -i "$OUT/perf-$2.data" --stdio --no-children --sort dso,symbol -g none -n \
    2>/dev/null | grep -E '^ +[0-9]' >"$RESULTS/perf-$2.self.txt" || true
  perf report -i "$OUT/perf-$2.data" --stdio --children --sort symbol -g none \
    2>/dev/null | grep -E '^ +[0-9]' >"$RESULTS/perf-$2.children.txt" || true
}
if [ -n "$PERF_RUN" ] && command -v perf >/dev/null; then
  s=${PERF_RUN%x*}
  m=${PERF_RUN#*x}
  log "perf: corecast $s x $m, ${PERF_SECONDS}s of cpu-clock samples"
  start_corecast "perf-corecast-$PERF_RUN" "$m"
  "${PRIO[@]}" "$CORECAST" loadgen --server "127.0.0.1:$HTTP_PORT" --recv-base-port "$RECV_BASE" \
    --sources "$s" --subscribers "$m" --duration $((PERF_SECONDS + 4)) --bitrate "$BITRATE" \
    --max-loss 1 --max-p99-ms none --json --server-pid "$SERVER" \
    >"$RESULTS/perf-corecast-$PERF_RUN.loadgen.json" 2>"$LOGS/perf-corecast.loadgen.log" &
  lg=$!
  PIDS+=("$lg")
  sleep 3
  profile "$SERVER" "corecast-$PERF_RUN"
  wait "$lg" 2>/dev/null || true
  forget_pid "$lg"
  stop_server
  if [ "$HAVE_GST" = 1 ] && [ "$s" = 1 ]; then
    log "perf: gstreamer 1 x $m, ${PERF_SECONDS}s of cpu-clock samples"
    recv_base=$(free_udp_range $((m + 1)))
    "${PRIO[@]}" scripts/gst-fanout.sh "$((recv_base + m))" "$recv_base" "$m" \
      >"$LOGS/perf-gst.log" 2>&1 &
    gst=$!
    PIDS+=("$gst")
    wait_udp_bound "$((recv_base + m))"
    "${PRIO[@]}" "$CORECAST" loadgen --raw-target "127.0.0.1:$((recv_base + m))" \
      --recv-base-port "$recv_base" --sources 1 --subscribers "$m" \
      --duration $((PERF_SECONDS + 4)) --bitrate "$BITRATE" --max-loss 1 --max-p99-ms none --json \
      --server-pid "$gst" >"$RESULTS/perf-gstreamer-$PERF_RUN.loadgen.json" \
      2>"$LOGS/perf-gstreamer.loadgen.log" &
    lg=$!
    PIDS+=("$lg")
    sleep 3
    profile "$gst" "gstreamer-$PERF_RUN"
    wait "$lg" 2>/dev/null || true
    forget_pid "$lg"
    stop_pid "$gst"
    forget_pid "$gst"
  fi
fi

# --- report -------------------------------------------------------------------------------------
python3 - "$RESULTS/meta.json" "$COMMAND" "$DURATION" "$BITRATE" "$HAVE_GST" "$BUSY" "$REPEAT" \
  "${PRIO[*]}" "$HALF_DURATION" "$PERF_SECONDS" "$PERF_HZ" "$PERF_RUN" <<'PY'
import datetime, json, os, platform, subprocess, sys
(out, command, duration, bitrate, have_gst, busy, repeat, prio, half_duration, perf_seconds,
 perf_hz, perf_run) = sys.argv[1:13]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def version(cmd):
    try:
        return subprocess.check_output(cmd, text=True, stderr=subprocess.DEVNULL).splitlines()[0].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "not installed"
gst = version(["gst-launch-1.0", "--version"]).replace("gst-launch-1.0 version", "GStreamer") if have_gst == "1" else "GStreamer not installed"
setup = (f"each run starts a fresh forwarder on 127.0.0.1 and drives it for {duration} s with "
         f"`corecast loadgen` (VP8-shaped streams at {int(bitrate) / 1e6:g} Mbit/s each, packets of "
         "at most 1 200 bytes, every received packet verified). corecast: `corecast serve "
         "--shards 1 --no-pin` (one forwarding thread, unpinned; defaults otherwise: batches of "
         "64, 4 MiB socket buffers). GStreamer: `scripts/gst-fanout.sh` (`udpsrc ! multiudpsink "
         "clients=…`, 4 MiB socket buffers, `sync=false`), the load generator in raw mode "
         "(`--raw-target`, `--recv-base-port`). "
         + (f"Each configuration (and the probe) ran {repeat} times, interleaved with its peer; "
            "tables give the median (and the range)." if int(repeat) > 1 else "")
         + (f" Measured processes ran under `{prio}`." if prio else ""))
meta = {"command": command, "date": datetime.date.today().isoformat(), "cpu": cpu,
        "cores": os.cpu_count(), "kernel": platform.release(), "gst": gst,
        "rustc": version(["rustc", "--version"]), "setup": setup,
        "background_busy_cores": float(busy), "repeat": int(repeat), "bitrate": int(bitrate),
        "fps": 30, "gop": 60, "packet_size": 1200, "half_duration": int(half_duration),
        "perf_seconds": int(perf_seconds), "perf_hz": int(perf_hz), "perf_run": perf_run}
with open(out, "w") as f:
    json.dump(meta, f, indent=1)
    f.write("\n")
PY

if [ "$QUICK" = 1 ]; then
  python3 scripts/bench-report.py report "$RESULTS" --command "$COMMAND" \
    --markdown "$OUT/bench.md" --svg "$OUT/fanout.svg"
  log "quick run done: $OUT/bench.md, $OUT/fanout.svg, $RESULTS/"
else
  python3 scripts/bench-report.py report "$RESULTS" --command "$COMMAND" \
    --markdown "$OUT/bench.md" --benchmarks BENCHMARKS.md --svg "$RESULTS/fanout.svg"
  log "done: BENCHMARKS.md (generated section), $RESULTS/fanout.svg, $RESULTS/*.json"
fi
