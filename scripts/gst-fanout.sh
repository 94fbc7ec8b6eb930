#!/usr/bin/env bash
# The same fan-out as corecast, done by GStreamer: one UDP stream in on 127.0.0.1:IN_PORT, each
# datagram sent unchanged to 127.0.0.1:BASE, BASE+1, ..., BASE+COUNT-1 by multiudpsink (which
# sends one buffer to all its clients with sendmmsg). The peer scripts/bench.sh measures corecast
# against. Usage:
#   scripts/gst-fanout.sh IN_PORT BASE COUNT
# Needs gst-launch-1.0 with udpsrc and multiudpsink (Debian: gstreamer1.0-tools,
# gstreamer1.0-plugins-base, gstreamer1.0-plugins-good). Runs in the foreground (exec), so the
# caller's PID is gst-launch's.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 IN_PORT BASE COUNT" >&2
  exit 2
fi
in_port=$1 base=$2 count=$3
clients=$(python3 -c "import sys; b, n = int(sys.argv[1]), int(sys.argv[2]); print(','.join('127.0.0.1:%d' % p for p in range(b, b + n)))" "$base" "$count")
# 4 MiB socket buffers each way, like corecast's defaults (--rcvbuf/--sndbuf); no clock sync,
# no preroll: forward each datagram as soon as it arrives.
exec gst-launch-1.0 -q \
  udpsrc address=127.0.0.1 port="$in_port" buffer-size=4194304 \
  ! multiudpsink clients="$clients" buffer-size=4194304 sync=false async=false
