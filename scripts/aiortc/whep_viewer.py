#!/usr/bin/env python3
"""An independent WHEP viewer built on aiortc: corecast's WebRTC egress checked by a stack that
shares no code with Chromium (aioice for ICE, OpenSSL for DTLS, libsrtp2 for SRTP, FFmpeg for
decoding).

    python3 whep_viewer.py URL SECONDS [--profile NAME] [--token T] [--codec NAME] [--vanish]

Offers recvonly video and audio to the WHEP URL, sets the answer, decodes everything for
SECONDS after DTLS connects, DELETEs the resource and prints one JSON line: video frames
decoded, the picture sizes seen, audio frames, decoder errors, the SRTP profile OpenSSL
negotiated, the ICE/DTLS states it went through. Exits 1 when something failed (no DTLS, no
frames, a decoder error, a refused DELETE), 2 on bad arguments.

--profile restricts the DTLS use_srtp extension to one profile (aiortc offers all three by
default, from the module list `aiortc.rtcdtlstransport.SRTP_PROFILES`), so that each can be
exercised in turn. --codec restricts the video offer to one codec (aiortc offers VP8 and two
H.264 profiles by default). --vanish leaves as a crashed or unplugged viewer does: after
SECONDS it prints its report and exits at once, with no DELETE, no DTLS close_notify and no
more consent checks, so that the node has only consent expiry (RFC 7675) to notice it is gone.

aioice never gathers 127.0.0.1, so the host candidates are pinned to loopback: the test node
listens on 127.0.0.1 and nothing should leave the machine.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import aioice.ice
import av.logging
from aiortc import RTCPeerConnection, RTCSessionDescription, rtcdtlstransport
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender

# The RFC 5764 / RFC 7714 names, mapped to aiortc's profile objects.
PROFILES = {
    "AEAD_AES_256_GCM": rtcdtlstransport.SRTP_AEAD_AES_256_GCM,
    "AEAD_AES_128_GCM": rtcdtlstransport.SRTP_AEAD_AES_128_GCM,
    "AES_CM_128_HMAC_SHA1_80": rtcdtlstransport.SRTP_AES128_CM_SHA1_80,
}
OPENSSL_TO_RFC = {p.openssl_profile.decode(): name for name, p in PROFILES.items()}

CONNECT_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 10.0


class ErrorCounter(logging.Handler):
    """Counts (and keeps the first few of) the records that say a frame failed to decode:
    aiortc's decoder thread logs a warning and carries on, so nothing raises to the viewer."""

    def __init__(self, match=None):
        super().__init__(level=logging.WARNING)
        self.match = match
        self.count = 0
        self.samples = []

    def emit(self, record):
        message = record.getMessage()
        if self.match is not None and self.match not in message:
            return
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append(f"{record.name}: {message}")


def loopback_only(use_ipv4, use_ipv6):
    return ["127.0.0.1"] if use_ipv4 else []


def http(method, url, body=None, token=None, content_type=None):
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def answered_codecs(sdp):
    """The first codec each accepted m-section of the answer names, e.g. {"video": "VP8/90000"}."""
    codecs, kind, first_pt = {}, None, None
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts = line[2:].split()
            accepted = len(parts) > 1 and parts[1] != "0"
            kind = parts[0] if accepted else None
            first_pt = parts[3] if accepted and len(parts) > 3 else None
            if kind:
                codecs[kind + "_pt"] = first_pt
        elif kind and line.startswith(f"a=rtpmap:{first_pt} "):
            codecs[kind] = line.split(" ", 1)[1]
        elif kind and first_pt and line.startswith(f"a=fmtp:{first_pt} "):
            codecs[kind + "_fmtp"] = line.split(" ", 1)[1]
    return codecs


async def consume(track, report, until):
    """Decode `track` until the monotonic time `until` (or its end)."""
    kind = track.kind
    first = None
    while True:
        left = until() - time.monotonic()
        if left <= 0:
            break
        try:
            frame = await asyncio.wait_for(track.recv(), timeout=left)
        except (asyncio.TimeoutError, MediaStreamError):
            break
        now = time.monotonic()
        first = first or now
        if kind == "video":
            report["video_frames"] += 1
            size = f"{frame.width}x{frame.height}"
            report["sizes"][size] = report["sizes"].get(size, 0) + 1
        else:
            report["audio_frames"] += 1
            report["audio_samples"] += frame.samples
            report["audio_rate"] = frame.sample_rate
        report[f"{kind}_span_s"] = round(now - first, 3)


async def rtp_stats(pc):
    """What aiortc's receivers counted per kind: RTP packets, loss and jitter from its own
    sequence tracking, and how many sender reports the node sent (remote-outbound-rtp)."""
    stats = {}
    for transceiver in pc.getTransceivers():
        kind = transceiver.kind
        for s in (await transceiver.receiver.getStats()).values():
            if s.type == "inbound-rtp":
                stats[kind] = {"packets": s.packetsReceived, "lost": s.packetsLost,
                               "jitter": s.jitter}
            elif s.type == "remote-outbound-rtp":
                stats.setdefault(kind + "_sender_report", {})["packets_sent"] = s.packetsSent
    return stats


async def watch(args):
    aioice.ice.get_host_addresses = loopback_only
    if args.profile != "all":
        rtcdtlstransport.SRTP_PROFILES = [PROFILES[args.profile]]

    decode_errors = ErrorCounter(match="failed to decode")
    logging.getLogger("aiortc").addHandler(decode_errors)
    # FFmpeg's own complaints (concealed corruption, missing references) never raise; PyAV
    # hands them to Python logging under "libav.*" once a level is set.
    libav_errors = ErrorCounter()
    libav_errors.setLevel(logging.ERROR)
    logging.getLogger("libav").addHandler(libav_errors)
    av.logging.set_level(av.logging.ERROR)

    report = {
        "offered_profiles": [OPENSSL_TO_RFC[p.openssl_profile.decode()]
                             for p in rtcdtlstransport.SRTP_PROFILES],
        "profile": None,
        "codecs": {},
        "video_frames": 0,
        "sizes": {},
        "audio_frames": 0,
        "audio_samples": 0,
        "audio_rate": None,
        "decode_errors": 0,
        "libav_errors": 0,
        "error_samples": [],
        "ice_states": [],
        "dtls_states": [],
        "connection_states": [],
        "received_s": 0.0,
        "delete_status": None,
        "failures": [],
    }
    pc = RTCPeerConnection()
    connected = asyncio.Event()
    deadline = {"t": float("inf")}
    tasks = []

    @pc.on("iceconnectionstatechange")
    def _ice():
        report["ice_states"].append(pc.iceConnectionState)

    @pc.on("connectionstatechange")
    def _conn():
        report["connection_states"].append(pc.connectionState)
        if pc.connectionState == "connected":
            connected.set()
        if pc.connectionState in ("failed", "closed"):
            connected.set()

    @pc.on("track")
    def _track(track):
        tasks.append(asyncio.ensure_future(consume(track, report, lambda: deadline["t"])))

    video = pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    if args.codec:
        wanted = [c for c in RTCRtpSender.getCapabilities("video").codecs
                  if c.mimeType.lower() in (f"video/{args.codec.lower()}", "video/rtx")]
        video.setCodecPreferences(wanted)
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    report["offered_video"] = sorted({
        line.split(" ", 1)[1] for line in pc.localDescription.sdp.splitlines()
        if line.startswith("a=rtpmap:") and "90000" in line and "rtx" not in line
    } | {
        line.split(" ", 1)[1] for line in pc.localDescription.sdp.splitlines()
        if line.startswith("a=fmtp:") and "profile-level-id" in line
    })

    status, headers, body = http("POST", args.url, pc.localDescription.sdp.encode(),
                                 args.token, "application/sdp")
    report["post_status"] = status
    if status != 201:
        report["failures"].append(f"POST answered {status}: {body.strip()}")
        await pc.close()
        return report
    # HTTP header names are case-insensitive (the node writes them in lower case).
    if not headers.get("Location"):
        report["failures"].append("201 without a Location")
        await pc.close()
        return report
    location = urllib.parse.urljoin(args.url, headers["Location"])
    report["resource"] = urllib.parse.urlparse(location).path
    report["codecs"] = answered_codecs(body)
    # What aiortc offered under the payload type the node chose (the answer's fmtp is the
    # node's: its source's own profile-level-id).
    offered_fmtp = {line.split(" ", 1)[0][len("a=fmtp:"):]: line.split(" ", 1)[1]
                    for line in pc.localDescription.sdp.splitlines()
                    if line.startswith("a=fmtp:")}
    report["codecs"]["video_offered_fmtp"] = offered_fmtp.get(report["codecs"].get("video_pt"))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    dtls = video.receiver.transport
    report["dtls_role"] = dtls._role
    dtls.on("statechange", lambda: report["dtls_states"].append(dtls.state))

    try:
        await asyncio.wait_for(connected.wait(), CONNECT_TIMEOUT_S)
    except asyncio.TimeoutError:
        pass
    if pc.connectionState != "connected":
        report["failures"].append(f"not connected within {CONNECT_TIMEOUT_S} s "
                                  f"(ice {pc.iceConnectionState}, dtls {dtls.state})")
    else:
        selected = dtls._ssl.get_selected_srtp_profile().decode()
        report["profile"] = OPENSSL_TO_RFC.get(selected, selected)
        started = time.monotonic()
        deadline["t"] = started + args.seconds
        await asyncio.gather(*tasks)
        # A track's decoder may still be finishing its last frames; those are not counted.
        report["received_s"] = round(time.monotonic() - started, 3)
        report["rtp"] = await rtp_stats(pc)

    if args.vanish:
        return finish(report, decode_errors, libav_errors)
    status, _, body = http("DELETE", location, token=args.token)
    report["delete_status"] = status
    if not 200 <= status < 300:
        report["failures"].append(f"DELETE answered {status}: {body.strip()}")
    await pc.close()
    return finish(report, decode_errors, libav_errors)


def finish(report, decode_errors, libav_errors):
    """The report's decoder figures and the failures they mean."""
    report["decode_errors"] = decode_errors.count
    report["libav_errors"] = libav_errors.count
    report["error_samples"] = decode_errors.samples + libav_errors.samples
    if report["profile"] and not report["video_frames"] and "video" in report["codecs"]:
        report["failures"].append("no video frame decoded")
    if report["profile"] and not report["audio_frames"] and "audio" in report["codecs"]:
        report["failures"].append("no audio frame decoded")
    if decode_errors.count or libav_errors.count:
        report["failures"].append("decoder errors")
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the channel's WHEP endpoint")
    parser.add_argument("seconds", type=float, help="how long to receive once connected")
    parser.add_argument("--profile", default="all", choices=["all", *PROFILES],
                        help="the one SRTP profile to offer in DTLS (default: all aiortc has)")
    parser.add_argument("--codec", help="offer only this video codec (VP8 or H264)")
    parser.add_argument("--token", help="bearer token for the WHEP endpoint")
    parser.add_argument("--vanish", action="store_true",
                        help="exit without DELETE or closing the connection once done")
    args = parser.parse_args()
    if args.profile != "all" and PROFILES[args.profile] not in rtcdtlstransport.SRTP_PROFILES:
        print(json.dumps({"failures": [f"this libsrtp2 lacks {args.profile}"]}))
        return 1
    report = asyncio.run(asyncio.wait_for(watch(args), args.seconds + 3 * CONNECT_TIMEOUT_S))
    print(json.dumps(report, sort_keys=True), flush=True)
    if args.vanish:
        # No asyncio teardown: the peer connection is never closed, as when a tab crashes.
        os._exit(1 if report["failures"] else 0)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
