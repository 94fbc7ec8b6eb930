#!/usr/bin/python3
"""A VP8 sender that retransmits what it is asked for: GStreamer's rtpbin (AVPF) with an
rtprtxsend auxiliary sender (RFC 4588, payload type 96 retransmitted as 97), fed by vp8enc.
Used by node/tests/lossy_link.rs inside a network namespace; runs with Debian's python3 and its
GStreamer bindings (python3-gi, gir1.2-gstreamer-1.0), which .ci/run installs.

  rtx_sender.py --to 10.99.0.1:20000 --feedback-port 13000 --frames 300

Sends --frames frames at 30 fps to --to from --bind-port (so the node latches to one address)
and takes RTCP (the node's NACKs and PLIs) on --feedback-port, which the node is told as the
source's `feedback`. Exits at the end of the stream (or after --timeout) and prints one JSON
object: RTP packets sent and retransmissions sent (rtprtxsend's own counts).
"""

import argparse
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--bind-port", type=int, required=True)
    ap.add_argument("--feedback-port", type=int, required=True)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    host, port = args.to.rsplit(":", 1)

    Gst.init(None)
    state = {"rtx": None}

    def aux_sender(_rtpbin, _session):
        rtx = Gst.ElementFactory.make("rtprtxsend", None)
        rtx.set_property(
            "payload-type-map",
            Gst.Structure.new_from_string("application/x-rtp-pt-map, 96=(uint)97"))
        rtx.set_property("max-size-time", 2000)
        state["rtx"] = rtx
        b = Gst.Bin.new(None)
        b.add(rtx)
        b.add_pad(Gst.GhostPad.new("src_0", rtx.get_static_pad("src")))
        b.add_pad(Gst.GhostPad.new("sink_0", rtx.get_static_pad("sink")))
        return b

    # rtpbin asks for its auxiliary sender when its send pad is requested: the handler must be
    # connected before anything is linked to it.
    pipeline = Gst.Pipeline.new(None)
    rtpbin = Gst.ElementFactory.make("rtpbin", "rb")
    Gst.util_set_object_arg(rtpbin, "rtp-profile", "avpf")
    rtpbin.connect("request-aux-sender", aux_sender)
    media = Gst.parse_bin_from_description(
        f"videotestsrc is-live=true num-buffers={args.frames} ! "
        f"video/x-raw,width=640,height=360,framerate=30/1 ! "
        f"vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 target-bitrate=1500000 ! "
        f"rtpvp8pay pt=96 picture-id-mode=15-bit", True)
    out = Gst.parse_bin_from_description(
        f"udpsink host={host} port={port} bind-port={args.bind_port}", True)
    feedback = Gst.parse_bin_from_description(
        f"udpsrc port={args.feedback_port} caps=application/x-rtcp", True)
    for element in (rtpbin, media, out, feedback):
        pipeline.add(element)
    media.get_static_pad("src").link(rtpbin.request_pad_simple("send_rtp_sink_0"))
    rtpbin.get_static_pad("send_rtp_src_0").link(out.get_static_pad("sink"))
    feedback.get_static_pad("src").link(rtpbin.request_pad_simple("recv_rtcp_sink_0"))
    loop = GLib.MainLoop()
    bus = pipeline.get_bus()
    bus.add_signal_watch()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.EOS:
            # The last packets may still be asked for.
            GLib.timeout_add(500, loop.quit)
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"rtx_sender: {err.message} ({debug})", file=sys.stderr)
            loop.quit()

    bus.connect("message", on_message)
    GLib.timeout_add(int(args.timeout * 1000), loop.quit)
    pipeline.set_state(Gst.State.PLAYING)
    print("sending", file=sys.stderr, flush=True)
    loop.run()
    out = {"rtx_packets": None, "rtx_requests": None}
    if state["rtx"] is not None:
        out["rtx_packets"] = state["rtx"].get_property("num-rtx-packets")
        out["rtx_requests"] = state["rtx"].get_property("num-rtx-requests")
    pipeline.set_state(Gst.State.NULL)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
