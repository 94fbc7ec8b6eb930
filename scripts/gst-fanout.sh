#!/usr/bin/env bash
# The same fan-out as corecast, done by GStreamer: one UDP stream in on 127.0.0.1:IN_PORT, each
# datagram sent unchanged to 127.0.0.1:BASE, BASE+1, ..., BASE+COUNT-1 by multiudpsink (which
# sends one buffer to all its clients with sendmmsg). The peer scripts/bench.sh measures corecast
# against. Usage:
#   scripts/gst-fanout.sh IN_PORT BASE COUNT [IP:FIRST_PORT:COUNT]
# Needs gst-launch-1.0 with udpsrc and multiudpsink (Debian: gstreamer1.0-tools,
# gstreamer1.0-plugins-base, gstreamer1.0-plugins-good). Runs in the foreground (exec), so the
# caller's PID is gst-launch's. A fourth argument, `IP:FIRST_PORT:COUNT`, adds that many more
# clients at IP (scripts/bench-gso.sh: the send-only rig's namespace, where nothing receives).
set -euo pipefail
if [ $# -ne 3 ] && [ $# -ne 4 ]; then
  echo "usage: $0 IN_PORT BASE COUNT [IP:FIRST_PORT:COUNT]" >&2
  exit 2
fi
in_port=$1 base=$2 count=$3 more=${4:-}
clients=$(python3 - "$base" "$count" "$more" <<'PY'
import sys
base, count, more = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
clients = ["127.0.0.1:%d" % p for p in range(base, base + count)]
if more:
    ip, first, n = more.rsplit(":", 2)
    clients += ["%s:%d" % (ip, p) for p in range(int(first), int(first) + int(n))]
print(",".join(clients))
PY
)
# 4 MiB socket buffers each way, like corecast's defaults (--rcvbuf/--sndbuf); no clock sync,
# no preroll: forward each datagram as soon as it arrives.
exec gst-launch-1.0 -q \
  udpsrc address=127.0.0.1 port="$in_port" buffer-size=4194304 \
  ! multiudpsink clients="$clients" buffer-size=4194304 sync=false async=false
