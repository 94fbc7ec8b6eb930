# Helpers shared by the node benchmarks (scripts/bench.sh, scripts/bench-gso.sh): processes
# stopped on exit, free and quiet ports, the machine's background load, a per-thread CPU and RSS
# sampler, and one run's JSON record. Sourced, not run; the caller sets `LOGS`.

# --- processes started here, stopped on exit ---------------------------------------------------
PIDS=()
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget_pid() {
  local keep=() pid
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  PIDS=("${keep[@]}")
}

log() { printf '== %s\n' "$*" >&2; }

# Measured processes run at the highest priority we may give them.
PRIO=()
if [ "$(id -u)" = 0 ] && nice -n -19 true 2>/dev/null; then
  PRIO=(nice -n -19)
fi

# --- helpers ------------------------------------------------------------------------------------
free_tcp_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The first of N consecutive UDP ports on 127.0.0.1 that are free now and quiet (nothing arrives
# on them for 0.3 s: another program on this machine may be sending to a port nobody has bound),
# below the ephemeral range, so the kernel does not hand them out meanwhile.
free_udp_range() {
  python3 - "$1" <<'PY'
import socket, sys, time
n = int(sys.argv[1])
lo = 23000
while lo + n <= 32768:
    held = []
    try:
        for p in range(lo, lo + n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(s)
            s.bind(("127.0.0.1", p))
            s.setblocking(False)
    except OSError:
        for s in held:
            s.close()
        lo = p + 1
        continue
    time.sleep(0.3)
    noisy = None
    for s in held:
        try:
            s.recv(1)
            noisy = s.getsockname()[1]
        except BlockingIOError:
            pass
    for s in held:
        s.close()
    if noisy is None:
        print(lo)
        sys.exit(0)
    lo = noisy + 1
sys.exit("no %d consecutive free, quiet UDP ports in 23000-32767" % n)
PY
}

# Share of the machine's CPU busy over one second (0..cores), before anything is started.
background_busy() {
  python3 - <<'PY'
import time
def read():
    return list(map(int, open("/proc/stat").readline().split()[1:9]))
a = read(); time.sleep(1); b = read()
d = [y - x for x, y in zip(a, b)]
import os
print(f"{(sum(d) - d[3] - d[4]) / max(1, sum(d)) * os.cpu_count():.2f}")
PY
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Samples a process every 0.25 s until told to stop (SIGTERM) or the process ends, then writes
# {rss_kb_peak, rss_kb_last, thread_cpu_s: {thread name: CPU s between first and last sample},
# thread_runs: {thread name: times scheduled in meanwhile}, wall_s} to $2.
start_sampler() {
  python3 - "$1" "$2" <<'PY' &
import json, os, signal, sys, time
pid, out = sys.argv[1], sys.argv[2]
tick = os.sysconf("SC_CLK_TCK")
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def sample():
    rss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = s[s.index("(") + 1 : s.rindex(")")]
        fields = s[s.rindex(")") + 2 :].split()
        cpu, runs = (int(fields[11]) + int(fields[12])) / tick, None  # utime + stime
        # schedstat: nanoseconds on the CPU (not rounded to clock ticks, which a lightly
        # loaded thread needs) and how many times it was scheduled in (its wake-ups).
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns, _, slices = f.read().split()[:3]
            cpu, runs = int(ns) / 1e9, int(slices)
        except (OSError, ValueError):
            pass
        threads[tid] = (name, cpu, runs)
    return time.monotonic(), rss, threads
first = last = None
peak = 0
while not stop:
    try:
        s = sample()
    except (OSError, ValueError):
        break
    first = first or s
    last = s
    peak = max(peak, s[1] or 0)
    time.sleep(0.25)
cpu, runs = {}, {}
if first and last:
    for tid, (name, used, slices) in last[2].items():
        _, used0, slices0 = first[2].get(tid, (name, 0, 0))
        cpu[name] = cpu.get(name, 0) + used - used0
        if slices is not None:
            runs[name] = runs.get(name, 0) + slices - (slices0 or 0)
with open(out, "w") as f:
    json.dump({"rss_kb_peak": peak, "rss_kb_last": last[1] if last else None,
               "thread_cpu_s": cpu, "thread_runs": runs,
               "wall_s": (last[0] - first[0]) if first else 0}, f)
PY
  SAMPLER=$!
  PIDS+=("$SAMPLER")
}
stop_sampler() {
  kill -TERM "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  forget_pid "$SAMPLER"
}

# Waits until something is bound to UDP port $1 on 127.0.0.1 (or 10 s pass).
wait_udp_bound() {
  python3 - "$1" <<'PY'
import socket, sys, time
deadline = time.time() + 10
while time.time() < deadline:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(0)
    finally:
        s.close()
    time.sleep(0.1)
sys.exit("nothing bound UDP port %s" % sys.argv[1])
PY
}

# Writes one run's record: $1 out file, $2 forwarder, $3 sources, $4 subscribers, $5 loadgen exit
# status, $6 loadgen JSON file, $7 sampler file, $8 RSS at start (kB), $9 extra JSON fields.
write_record() {
  python3 - "$@" <<'PY'
import json, sys
out, fw, s, m, rc, lg, smp, base, extra = sys.argv[1:10]
try:
    with open(lg) as f:
        text = f.read().strip()
    # One JSON object, on one line or pretty-printed.
    loadgen = json.JSONDecoder().raw_decode(text[text.index("{"):])[0] if "{" in text else None
except (OSError, ValueError):
    loadgen = None
with open(smp) as f:
    sample = json.load(f)
rec = {"forwarder": fw, "sources": int(s), "subscribers": int(m), "exit": int(rc),
       "rss_kb_baseline": int(base) if base else None, **sample, **json.loads(extra),
       "loadgen": loadgen}
with open(out, "w") as f:
    json.dump(rec, f, indent=1)
    f.write("\n")
PY
}


SERVER=""
HTTP_PORT=""
RECV_BASE=""
# `corecast serve` with one shard, unpinned unless $SHARD_CORE names its core, media on $RTP_IP
# (default 127.0.0.1): $1 log name, $2 subscriber ports the load generator will bind, then any
# more `serve` flags.
start_corecast() {
  local name=$1 ports=$2 lo
  shift 2
  HTTP_PORT=$(free_tcp_port)
  # Ingest ports (16) and, right after them, the subscribers' ports, all checked free and quiet.
  lo=$(free_udp_range $((16 + ports)))
  RECV_BASE=$((lo + 16))
  # `--cores` names the shards' cores, one shard each: one core is one shard.
  local placement=(--shards 1 --no-pin)
  [ -n "${SHARD_CORE:-}" ] && placement=(--cores "$SHARD_CORE")
  "${PRIO[@]}" "$CORECAST" serve --http "127.0.0.1:$HTTP_PORT" --rtp-ip "${RTP_IP:-127.0.0.1}" \
    --rtp-ports "$lo-$((lo + 15))" "${placement[@]}" "$@" >"$LOGS/$name.serve.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  echo "corecast serve did not come up; see $LOGS/$name.serve.log" >&2
  exit 1
}
stop_server() {
  stop_pid "$SERVER"
  forget_pid "$SERVER"
  SERVER=""
}

