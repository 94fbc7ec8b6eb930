#!/usr/bin/python3
"""A plain-RTP VP8 receiver that asks for what it loses: GStreamer's rtpbin (AVPF profile, its
jitter buffer's retransmission requests on), fed by a udpsrc, decoding with vp8dec. Used by
node/tests/lossy_link.rs inside a network namespace; runs with Debian's python3 and its
GStreamer bindings (python3-gi, gir1.2-gstreamer-1.0), which .ci/run installs.

  nack_receiver.py --port 12000 --rtcp-to 10.99.0.1:41000 --frames 300 [--no-nack]

Listens on --port for RTP and sends its RTCP (receiver reports and, with NACK on, generic
NACKs) from --port + 1 to --rtcp-to, the node's shard socket, which takes a subscriber's RTCP
from its media port or the one after it. Stops when --frames frames have been depayloaded, or
--idle seconds pass without one, or after --timeout; then prints one JSON object: frames
depayloaded (whole frames handed on by rtpvp8depay, which drops any frame with a missing
packet), frames decoded, and the jitter buffer's own counts (packets pushed and lost,
retransmissions asked for and those that came in time).
"""

import argparse
import json
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rtcp-to", required=True)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--nack", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--latency-ms", type=int, default=300)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    host, rtcp_port = args.rtcp_to.rsplit(":", 1)

    Gst.init(None)
    retransmit = "true" if args.nack else "false"
    pipeline = Gst.parse_launch(
        f"rtpbin name=rb rtp-profile=avpf latency={args.latency_ms} do-retransmission={retransmit} "
        f"udpsrc port={args.port} buffer-size=4194304 caps=\"application/x-rtp,media=video,"
        f"clock-rate=90000,encoding-name=VP8,payload=96\" ! rb.recv_rtp_sink_0 "
        f"rb.send_rtcp_src_0 ! udpsink host={host} port={rtcp_port} bind-port={args.port + 1} "
        f"sync=false async=false "
        f"rtpvp8depay name=depay ! vp8dec name=dec ! fakesink name=sink sync=false"
    )
    rtpbin = pipeline.get_by_name("rb")
    depay = pipeline.get_by_name("depay")
    counts = {"frames_depayloaded": 0, "frames_decoded": 0, "warnings": 0}
    pts = []
    state = {"last": time.monotonic(), "jitterbuffer": None}

    def linked(_bin, pad):
        if pad.get_name().startswith("recv_rtp_src_"):
            pad.link(depay.get_static_pad("sink"))

    def new_jitterbuffer(_bin, jb, _session, _ssrc):
        state["jitterbuffer"] = jb

    # rtpsession sizes its RTCP (NACKs included) by the session's bandwidth, which it would
    # otherwise estimate from the first packets; a low estimate holds NACKs back past the
    # jitter buffer's latency. Say what the stream is: a few Mbit/s.
    session = rtpbin.emit("get-session", 0)
    if session is not None:
        session.set_property("bandwidth", 500_000.0)
    rtpbin.connect("pad-added", linked)
    rtpbin.connect("new-jitterbuffer", new_jitterbuffer)

    def count(key):
        def probe(_pad, _info):
            counts[key] += 1
            state["last"] = time.monotonic()
            return Gst.PadProbeReturn.OK

        return probe

    def frame_out(pad, info):
        buf = info.get_buffer()
        if buf is not None and buf.pts != Gst.CLOCK_TIME_NONE:
            pts.append(buf.pts)
        return count("frames_depayloaded")(pad, info)

    depay.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, frame_out)
    pipeline.get_by_name("dec").get_static_pad("src").add_probe(
        Gst.PadProbeType.BUFFER, count("frames_decoded"))

    loop = GLib.MainLoop()
    started = time.monotonic()

    def check():
        now = time.monotonic()
        done = counts["frames_depayloaded"] >= args.frames
        idle = counts["frames_depayloaded"] > 0 and now - state["last"] > args.idle
        if done or idle or now - started > args.timeout:
            loop.quit()
            return False
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.WARNING:
            counts["warnings"] += 1
            print(f"nack_receiver: warning: {msg.parse_warning()[0].message}", file=sys.stderr)
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"nack_receiver: {err.message} ({debug})", file=sys.stderr)
            loop.quit()

    bus.connect("message", on_message)
    GLib.timeout_add(50, check)
    pipeline.set_state(Gst.State.PLAYING)
    print("listening", file=sys.stderr, flush=True)
    loop.run()
    stats = {}
    jb = state["jitterbuffer"]
    if jb is not None:
        s = jb.get_property("stats")
        for key in ("num-pushed", "num-lost", "num-late", "num-duplicates", "rtx-count",
                    "rtx-success-count"):
            ok, value = s.get_uint64(key)
            stats[key.replace("-", "_")] = value if ok else None
    pipeline.set_state(Gst.State.NULL)
    # Frames missing between the first and the last received: a gap in their timestamps of
    # more than one frame interval (the sender's --fps).
    interval = Gst.SECOND / args.fps
    missed = sum(max(0, round((b - a) / interval) - 1) for a, b in zip(pts, pts[1:]))
    print(json.dumps({**counts, "frames_missed": missed, "jitterbuffer": stats}), flush=True)


if __name__ == "__main__":
    main()
