#!/usr/bin/env python3
"""Time to first picture for joins and switches, with `join: keyframe` and `join: replay`.

Issue 14's target: with an encoder whose keyframe interval is 10 s and that ignores keyframe
requests, a new subscriber shows its first picture within 300 ms of joining, and is back at live
within one keyframe interval. This runs one release node and two GStreamer VP8 encoders sending
through plain udpsinks (nothing reads RTCP, so PLIs go unanswered):
  long:  keyframe-max-dist=300 (a keyframe every 10 s), the source joined and switched to
         (`--switch-timeout 15000`, so a `keyframe` switch waits for it);
  short: keyframe-max-dist=30, where switching subscribers start.
For each policy (a node each) it makes JOINS subscribers of `long` at random moments of its GOP,
one at a time, each a UDP socket here, and measures from the API call that made it:
  first:    the first packet received (it is always a keyframe's first packet: checked),
  live:     (replay) when the shard reports the replay finished (caught up with live),
and SWITCHES subscribers of `short` switched to `long`: from the switch call to the first
packet of `long`'s keyframe. ffmpeg decodes FFMPEG extra joins per policy (its default probing,
a 4 MiB socket buffer for the replay's burst) and its first-frame time and warnings are
reported too. Chromium (scripts/browser/watch.mjs, headless) joins BROWSER times per policy, as a
WHEP viewer of a channel of `long`, at random moments of its GOP: the page's own clock, from
its connection (ICE and DTLS done, when the node starts its track) to its first video frame
presented (requestVideoFrameCallback), and from opening the page.

  scripts/join-time.py                 JOINS=10 SWITCHES=10 FFMPEG=3 BROWSER=5
  JOINS=20 scripts/join-time.py

Writes benches/results/join-time.json and prints the table BENCHMARKS.md quotes. Loopback only;
every process started is stopped on exit.
"""

import json
import os
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
JOINS = int(os.environ.get("JOINS", "10"))
SWITCHES = int(os.environ.get("SWITCHES", "10"))
FFMPEG = int(os.environ.get("FFMPEG", "3"))
BROWSER = int(os.environ.get("BROWSER", "5"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "benches/results/join-time.json"))
GOP_S = 10.0
PROCS = []


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
    for p in PROCS:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    PROCS.append(p)
    return p


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
        return json.loads(text) if text else None

    def replays_finished(self):
        return sum(s["replay"]["finished"] for s in self.call("GET", "/v1/stats")["shards"])


def encoder(port, gop, pattern):
    pipeline = (
        f"videotestsrc is-live=true pattern={pattern} ! video/x-raw,width=640,height=360,framerate=30/1 "
        f"! vp8enc keyframe-max-dist={gop} deadline=1 cpu-used=8 target-bitrate=1000000 "
        f"! rtpvp8pay picture-id-mode=15-bit ! udpsink host=127.0.0.1 port={port}"
    )
    return spawn(["gst-launch-1.0", "-q", *pipeline.split()],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def vp8_keyframe_start(pkt):
    """The RTP packet starts a VP8 keyframe (RFC 7741: S=1, PID 0, P=0)."""
    if len(pkt) < 13:
        return False
    cc = pkt[0] & 0x0F
    off = 12 + 4 * cc
    if pkt[0] & 0x10:  # header extension
        ext_len = int.from_bytes(pkt[off + 2:off + 4], "big")
        off += 4 + 4 * ext_len
    d = pkt[off]
    start = d & 0x10 and (d & 0x07) == 0
    off += 1
    if d & 0x80:
        x = pkt[off]
        off += 1
        if x & 0x80:
            off += 2 if pkt[off] & 0x80 else 1
        if x & 0x40:
            off += 1
        if x & 0x30:
            off += 1
    return bool(start) and (pkt[off] & 0x01) == 0


def first_packet(sock, deadline):
    """Wait for the first datagram; return (arrival time, keyframe start?)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, False
        r, _, _ = select.select([sock], [], [], left)
        if r:
            data = sock.recv(2048)
            return time.monotonic(), vp8_keyframe_start(data)


def node(policy):
    http = free_port(socket.SOCK_STREAM)
    log = open(os.path.join(LOGS, f"serve-{policy}.log"), "w")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    spawn([os.path.join(target, "release/corecast"), "serve", "--http", f"127.0.0.1:{http}",
           "--rtp-ip", "127.0.0.1", "--no-pin", "--history-ms", "11000",
           "--history-packets", "8192", "--max-sources", "4", "--stats-interval", "20",
           # A switch waits as long as the GOP with `keyframe`, instead of giving up at 5 s.
           "--switch-timeout", "15000"],
          stdout=log, stderr=log)
    api = Api(f"http://127.0.0.1:{http}")
    for _ in range(100):
        try:
            api.call("GET", "/healthz")
            return api
        except Exception:
            time.sleep(0.1)
    sys.exit(f"join-time: the node did not come up; see {LOGS}/serve-{policy}.log")


def ffmpeg_join(api, long_id):
    """One ffmpeg subscriber: seconds to its first decoded frame, and its warnings."""
    port = free_port()
    while port % 2:
        port = free_port()
    sdp = urllib.request.urlopen(f"{api.base}/v1/sources/{long_id}/sdp?dest=127.0.0.1:{port}").read()
    path = os.path.join(LOGS, f"join-{port}.sdp")
    open(path, "wb").write(sdp)
    ff = spawn(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
                "-protocol_whitelist", "file,udp,rtp", "-buffer_size", "4194304",
                "-i", path,
                "-enc_time_base", "-1", "-f", "null", "-", "-stats_period", "0.01",
                "-progress", "pipe:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Media sent before ffmpeg listens would be lost: wait for its socket in the kernel's table.
    needle = f":{port:04X} "
    for _ in range(500):
        if any(needle in line for line in open("/proc/net/udp").read().splitlines()[1:]):
            break
        time.sleep(0.01)
    made = time.monotonic()
    sub = api.call("POST", "/v1/subscribers", {"source": long_id, "dest": f"127.0.0.1:{port}"})
    first = None
    deadline = made + GOP_S + 5
    while time.monotonic() < deadline:
        line = ff.stdout.readline()
        if line.startswith("frame=") and int(line.split("=")[1]) >= 1:
            first = time.monotonic() - made
            break
    time.sleep(1.0)
    ff.send_signal(signal.SIGINT)
    _, err = ff.communicate(timeout=10)
    api.call("DELETE", f"/v1/subscribers/{sub['id']}")
    warnings = [l for l in err.splitlines() if l.strip() and "Exiting normally" not in l
                and "received signal" not in l]
    return first, warnings


def browser_join(api, channel):
    """One Chromium viewer: seconds from connected to its first frame, and from the page's start."""
    out = os.path.join(LOGS, "browser")
    run = subprocess.run(["node", os.path.join(ROOT, "scripts/browser/watch.mjs"),
                          f"{api.base}/watch/{channel}", "1", out],
                         capture_output=True, text=True, timeout=60)
    try:
        report = json.loads(run.stdout)
    except ValueError:
        return None, None, f"watch.mjs: {run.stdout[-300:]} {run.stderr[-300:]}"
    t = report.get("timing") or {}
    if report.get("error") or "firstFrame" not in t or "connected" not in t:
        return None, None, report.get("error") or f"no first frame: {t}"
    return ((t["firstFrame"] - t["connected"]) / 1e3, (t["firstFrame"] - t["start"]) / 1e3, None)


def run(policy):
    api = node(policy)
    long_src = api.call("POST", "/v1/sources", {"name": "long", "codec": "vp8", "join": policy})
    short_src = api.call("POST", "/v1/sources", {"name": "short", "codec": "vp8"})
    encoder(long_src["ingest"]["port"], 300, "ball")
    encoder(short_src["ingest"]["port"], 30, "smpte")
    # Past the long source's first keyframe, so every join lands somewhere inside a GOP.
    time.sleep(1.5)
    rng = random.Random(14)
    out = {"joins": [], "live": [], "switches": [], "not_keyframe": 0, "ffmpeg": [],
           "browser": [], "browser_page": [], "browser_errors": []}
    for _ in range(JOINS):
        # Anywhere in the GOP (each `keyframe` join ends at a keyframe, so this is its phase).
        time.sleep(rng.uniform(0.0, GOP_S))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        finished = api.replays_finished()
        made = time.monotonic()
        sub = api.call("POST", "/v1/subscribers",
                       {"source": long_src["id"], "dest": f"127.0.0.1:{sock.getsockname()[1]}"})
        at, key = first_packet(sock, made + GOP_S + 5)
        if at is not None:
            out["joins"].append(at - made)
            out["not_keyframe"] += 0 if key else 1
        if policy == "replay":
            while api.replays_finished() == finished and time.monotonic() < made + 15:
                time.sleep(0.005)
            out["live"].append(time.monotonic() - made)
        api.call("DELETE", f"/v1/subscribers/{sub['id']}")
        sock.close()
    for _ in range(SWITCHES):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sub = api.call("POST", "/v1/subscribers",
                       {"source": short_src["id"], "dest": f"127.0.0.1:{sock.getsockname()[1]}"})
        first_packet(sock, time.monotonic() + 5)
        time.sleep(rng.uniform(0.0, GOP_S))
        asked = time.monotonic()
        api.call("POST", f"/v1/subscribers/{sub['id']}/switch", {"source": long_src["id"]})
        # Applied when the subscriber's first packet of `long` goes out (its keyframe, or the
        # replay's first): the API says so within a stats interval.
        deadline = asked + GOP_S + 5
        got = None
        while time.monotonic() < deadline:
            view = api.call("GET", f"/v1/subscribers/{sub['id']}")
            if view["source"] == long_src["id"]:
                got = time.monotonic() - asked
                break
            time.sleep(0.002)
        if got is not None:
            out["switches"].append(got)
        api.call("DELETE", f"/v1/subscribers/{sub['id']}")
        sock.close()
    for _ in range(FFMPEG):
        first, warnings = ffmpeg_join(api, long_src["id"])
        out["ffmpeg"].append({"first_frame_s": first, "warnings": warnings})
    if BROWSER:
        channel = api.call("POST", "/v1/channels", {"name": "long", "video": long_src["id"]})
        for _ in range(BROWSER):
            time.sleep(rng.uniform(0.0, GOP_S))
            joined, page, error = browser_join(api, channel["id"])
            if error:
                out["browser_errors"].append(error)
            else:
                out["browser"].append(joined)
                out["browser_page"].append(page)
    stop_all()
    PROCS.clear()
    return out


def summary(xs):
    if not xs:
        return "-"
    xs = sorted(xs)
    return (f"median {statistics.median(xs) * 1e3:.0f} ms, max {xs[-1] * 1e3:.0f} ms "
            f"(n={len(xs)})")


if __name__ == "__main__":
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "corecast"], cwd=ROOT, check=True)
    LOGS = tempfile.mkdtemp(prefix="join-time.")
    try:
        results = {p: run(p) for p in ("keyframe", "replay")}
    finally:
        stop_all()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    json.dump(results, open(OUT, "w"), indent=1)
    print("| policy | join: first packet | replay caught up | switch applied | ffmpeg first frame "
          "| ffmpeg warnings | Chromium: connected to first frame | Chromium: page to first frame |")
    print("|---|---|---|---|---|---|---|---|")
    for p, r in results.items():
        ff = [f["first_frame_s"] for f in r["ffmpeg"] if f["first_frame_s"] is not None]
        warn = sum(len(f["warnings"]) for f in r["ffmpeg"])
        print(f"| {p} | {summary(r['joins'])} | {summary(r['live'])} | {summary(r['switches'])} "
              f"| {summary(ff)} | {warn} | {summary(r['browser'])} | {summary(r['browser_page'])} |")
        if r["not_keyframe"]:
            print(f"  {r['not_keyframe']} joins did not start at a keyframe", file=sys.stderr)
    for p, r in results.items():
        for e in r["browser_errors"]:
            print(f"  {p}: browser: {e}", file=sys.stderr)
        for f in r["ffmpeg"]:
            for w in f["warnings"]:
                print(f"  {p}: ffmpeg: {w}", file=sys.stderr)
