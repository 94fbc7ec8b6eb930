#!/usr/bin/env python3
"""Turns the raw results of scripts/bench.sh into a Markdown section (and the plot).

    scripts/bench-report.py halfsat RESULTS_DIR
        print the subscriber count of the half-of-saturation run (see saturation() below)
    scripts/bench-report.py report RESULTS_DIR --command CMD [--markdown OUT.md]
        [--benchmarks BENCHMARKS.md] [--svg OUT.svg]
        write the section to OUT.md (default: stdout), splice it into BENCHMARKS.md between
        `<!-- bench.sh begin -->` and `<!-- bench.sh end -->` (created at the end of the file the
        first time), and draw the plot (scripts/plot.py)

RESULTS_DIR holds what bench.sh wrote:
- rawlimit-<N>.r<k>.json: the probe with N receivers, repetition k (benches/src/bin/rawlimit.rs);
- <forwarder>-<S>x<M>.r<k>.json: one run, {"forwarder", "sources", "subscribers", "exit",
  "rss_kb_baseline", "rss_kb_peak", "rss_kb_last", "thread_cpu_s": {thread: CPU s}, "wall_s",
  "loadgen": the load generator's JSON, unchanged};
- halfsat.json (the same, for the half-of-saturation run), perf-*.txt, meta.json.
"""

import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

BEGIN = "<!-- bench.sh begin -->"
END = "<!-- bench.sh end -->"

# Targets of issue 5.
TARGET_RAW = 0.9
TARGET_GST = 1.3
TARGET_P99_US = 1000
TARGET_BYTES_PER_SUB = 2048

RUN_RE = re.compile(r"^(corecast|webrtc|gstreamer)-(\d+)x(\d+)\.r(\d+)\.json$")
PROBE_RE = re.compile(r"^rawlimit-(\d+)\.r(\d+)\.json$")
SPIN_RE = re.compile(r"^rawlimit-spin-(\d+)\.r(\d+)\.json$")


def load(path):
    with open(path) as f:
        return json.load(f)


def runs(results):
    """Every forwarder run: {(forwarder, sources, subscribers): [record, ...]}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        m = RUN_RE.match(os.path.basename(path))
        if m:
            out.setdefault((m[1], int(m[2]), int(m[3])), []).append(load(path))
    return out


def probes(results, spin=False):
    """Every probe run with receivers sleeping in epoll (or spinning):
    {receivers: [probe JSON, ...]}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        m = (SPIN_RE if spin else PROBE_RE).match(os.path.basename(path))
        if m:
            out.setdefault(int(m[1]), []).append(load(path))
    return out


def halfsat_run(results):
    path = os.path.join(results, "halfsat.json")
    return load(path) if os.path.exists(path) else None


def lg(r, key, default=None):
    return (r.get("loadgen") or {}).get(key, default)


def cpu_rate(r):
    """Packets out per CPU-second of the forwarding process: packets the load generator
    received (and verified) over the forwarder's CPU time during the run."""
    rx, cpu = lg(r, "packets_received"), lg(r, "server_cpu_s")
    return rx / cpu if rx and cpu else None


def latency(r, q):
    return (lg(r, "latency_us") or {}).get(q)


def shard_cpu(r):
    """CPU seconds of corecast's shard thread(s) during the run."""
    v = [s for name, s in (r.get("thread_cpu_s") or {}).items() if name.startswith("corecast-shard")]
    return sum(v) if v else None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def median_run(rs):
    """The repetition with the median packets per CPU-second (the lower one of an even count)."""
    ok = sorted((r for r in rs if cpu_rate(r) is not None), key=cpu_rate)
    if not ok:
        return rs[0]
    return ok[(len(ok) - 1) // 2]


def pooled_loss(rs):
    exp = sum(lg(r, "packets_expected") or 0 for r in rs)
    lost = sum(lg(r, "lost") or 0 for r in rs)
    return lost / exp if exp else None


def probe_rate(ps):
    return median(p["modes"]["sendmmsg"]["pps_per_cpu_s"] for p in ps)


def probe_for(all_probes, subscribers):
    """The probe with the receiver count closest to the run's subscribers (all sources)."""
    if not all_probes:
        return None, None
    n = min(all_probes, key=lambda k: abs(k - subscribers))
    return n, probe_rate(all_probes[n])


def saturation(results):
    """Saturation of one corecast shard, found cheaply from runs already made, without a ramp:
    the packets out per second at which the forwarding thread would be busy all the time, i.e.
    packets received / CPU-seconds of the shard thread, in the median repetition of the
    loss-free 1-source configuration with the most subscribers (1 000 in the full run: enough
    that the per-copy cost dominates). Returns (saturation pps, packets in per second per
    subscriber, the run it came from), or None."""
    best = None
    for (fw, s, m), rs in runs(results).items():
        if fw != "corecast" or s != 1 or (pooled_loss(rs) or 0) > 0:
            continue
        r = median_run(rs)
        if not lg(r, "packets_received") or not shard_cpu(r):
            continue
        if best is None or m > best[0]:
            best = (m, r)
    if best is None:
        return None
    m, r = best
    return lg(r, "packets_received") / shard_cpu(r), lg(r, "received_pps") / m, r


def burst_packets(meta):
    """Packets in a delta frame and in a keyframe of the load generator's VP8 stream (the same
    arithmetic as loadgen/src/stream.rs: keyframes are five deltas, a GOP averages the
    bitrate, frames are cut into equal packets of at most packet_size - 12 payload bytes)."""
    per_frame = meta.get("bitrate", 2_000_000) // 8 // meta.get("fps", 30)
    gop = meta.get("gop", 60)
    delta = per_frame * gop // (gop - 1 + 5)
    room = meta.get("packet_size", 1200) - 12
    return math.ceil(delta / room), math.ceil(delta * 5 / room), gop


# --- formatting ---------------------------------------------------------------------------------

def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_range(xs):
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return ""
    return f" ({min(xs):,.0f}–{max(xs):,.0f})"


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def fmt_loss(x):
    if x is None:
        return "–"
    if x == 0:
        return "0"
    return f"{x * 100:.3g}%"


def fmt_us(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_ms(us):
    return "–" if us is None else f"{us / 1000:,.1f} ms"


def fmt_bytes(b):
    if b is None:
        return "–"
    if abs(b) >= 10 * 1024:
        return f"{b / 1024:,.0f} KiB"
    return f"{b:,.0f} B"


def verdict(ok):
    return "**met**" if ok else "**not met**"


def config_name(s, m):
    return f"{s} × {m:,}"


def config_order(key):
    fw, s, m = key
    return (s > 1, m, {"corecast": 0, "webrtc": 1}.get(fw, 2))


# --- the section --------------------------------------------------------------------------------

def report(args):
    results = args.results
    meta = load(os.path.join(results, "meta.json"))
    rs = runs(results)
    ps = probes(results)
    hs = halfsat_run(results)
    sat = saturation(results)
    L = []
    w = L.append

    w("## Node: fan-out against the kernel's limit and GStreamer (generated by scripts/bench.sh)")
    w("")
    w(f"Generated by `{args.command}` on {meta['date']}. Machine: {meta['cpu']}, "
      f"{meta['cores']} cores; kernel {meta['kernel']}; {meta['rustc']}; {meta['gst']}.")
    w("")
    w(f"Set-up: {meta['setup']}")
    w("")
    busy = meta.get("background_busy_cores")
    if busy is not None:
        if busy < 0.1:
            w(f"The machine was idle when the run started ({busy:.2f} cores busy over one second).")
        else:
            w(f"**Caution:** {busy:.2f} of the {meta['cores']} cores were already busy with other "
              "work when the run started (measured over one second); the figures carry that "
              "noise, which is why each is a median of repetitions.")
        w("")

    # The raw limit.
    w("### The kernel's limit: `rawlimit`")
    w("")
    sp = probes(results, spin=True)
    w("One thread sending 1 200-byte datagrams round-robin to N sockets on 127.0.0.1, drained by "
      "one receiver thread, with one `send_to` per packet and with `sendmmsg` of 64 "
      "(`benches/src/bin/rawlimit.rs`). Packets per CPU-second of the sending thread "
      "(`CLOCK_THREAD_CPUTIME_ID`)"
      + (", median of the repetitions (range)" if any(len(v) > 1 for v in ps.values()) else "")
      + ". On loopback the sender also delivers each datagram into the receiving socket and, if "
      "the receiver sleeps, wakes it; the receiver sleeps in `epoll` like the load generator's "
      "(the limit the forwarders are compared with, in bold), or spins without `epoll` so "
      "nothing waits on the sockets (the send path alone, no wake-ups).")
    w("")
    w("| receivers | `send_to` packets per CPU-s | `sendmmsg` packets per CPU-s | `sendmmsg` ns per packet | `sendmmsg`, spinning receiver | loss |")
    w("|---:|---:|---:|---:|---:|---:|")
    for n in sorted(ps):
        st = [p["modes"]["send_to"]["pps_per_cpu_s"] for p in ps[n]]
        mm = [p["modes"]["sendmmsg"]["pps_per_cpu_s"] for p in ps[n]]
        spin = [p["modes"]["sendmmsg"]["pps_per_cpu_s"] for p in sp.get(n, [])]
        everything = ps[n] + sp.get(n, [])
        sent = sum(p["modes"][k]["packets_sent"] for p in everything for k in ("send_to", "sendmmsg"))
        lost = sum(p["modes"][k]["lost"] for p in everything for k in ("send_to", "sendmmsg"))
        w(f"| {n:,} | {fmt_int(median(st))}{fmt_range(st)} | **{fmt_int(median(mm))}**{fmt_range(mm)} | "
          f"{1e9 / median(mm):,.0f} | {fmt_int(median(spin))}{fmt_range(spin)} | "
          f"{fmt_loss(lost / sent if sent else None)} |")
    w("")

    # The main table.
    w("### corecast and GStreamer `multiudpsink`, same load generator")
    w("")
    w("Packets out per CPU-second = packets the load generator received and verified / CPU "
      "seconds (user + system, all threads) of the forwarding process over the same span "
      "(sending and draining); median of the repetitions (range). \"× raw\" divides the median "
      "by the `sendmmsg` probe's median at the nearest probed receiver count, \"× GStreamer\" by "
      "`multiudpsink`'s median at the same subscriber count. Loss: over all repetitions. "
      "Latency: load generator's send stamp (in the payload) to receipt, over every copy, "
      "median of the repetitions. RSS: the forwarding process's peak VmRSS during the run; per "
      "subscriber: (peak − VmRSS of the same process just after start, idle, no subscribers) / "
      "subscribers. Verified: the load generator's checks (SSRC, sequence, timestamps, payload "
      "bytes, joins on keyframes) passed in every repetition; loss is judged separately.")
    w("")
    w("| forwarder | sources × subscribers | packets out per s | packets out per CPU-s | × raw | × GStreamer | loss | p50 µs | p99 µs | RSS MiB | RSS per subscriber | verified |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    rows = {}
    for key in sorted(rs, key=config_order):
        fw, s, m = key
        reps = rs[key]
        rates = [cpu_rate(r) for r in reps]
        rate = median(rates)
        _, raw = probe_for(ps, m)
        g = rs.get(("gstreamer", s, m))
        gst_rate = median(cpu_rate(r) for r in g) if g else None
        vs_gst = rate / gst_rate if fw == "corecast" and rate and gst_rate else None
        base = median(r.get("rss_kb_baseline") for r in reps)
        peak = median(r.get("rss_kb_peak") for r in reps)
        per_sub = (peak - base) * 1024 / m if base is not None and peak is not None else None
        passed = sum(1 for r in reps if r.get("exit") == 0)
        row = dict(rate=rate, raw=rate / raw if rate and raw else None, gst=vs_gst,
                   loss=pooled_loss(reps), p50=median(latency(r, "p50") for r in reps),
                   p99=median(latency(r, "p99") for r in reps), peak=peak, per_sub=per_sub,
                   pps=median(lg(r, "received_pps") for r in reps))
        rows[key] = row
        w(f"| {fw} | {config_name(s, m)} | {fmt_int(row['pps'])} | **{fmt_int(rate)}**{fmt_range(rates)} | "
          f"{fmt_ratio(row['raw'])} | {fmt_ratio(vs_gst)} | {fmt_loss(row['loss'])} | "
          f"{fmt_us(row['p50'])} | {fmt_us(row['p99'])} | "
          f"{'–' if peak is None else f'{peak / 1024:.1f}'} | {fmt_bytes(per_sub)} | "
          f"{'yes' if passed == len(reps) else 'no'} ({passed}/{len(reps)}) |")
    w("")
    webrtc = [k for k in rows if k[0] == "webrtc" and ("corecast", k[1], k[2]) in rows]
    if webrtc:
        w("`webrtc` is corecast with every subscriber a WHEP viewer (`corecast loadgen --whep`: "
          "ICE, DTLS, and every copy SRTP-sealed on the shard and opened and verified by the "
          "load generator), each repetition right after the plain run of the same size. "
          "LiveKit publishes 38k packets out per vCPU (560,962 packets/s on 16 vCPU at 92%).")
        w("")
        w("The ratio is of the two medians; the pairs are each repetition's WebRTC run over the "
          "plain run just before it, so a machine that drifts between repetitions moves both "
          "halves of a pair alike. The target counts as met only if both the ratio and the "
          "median of the pairs reach it.")
        w("")
        w("| sources × subscribers | WebRTC ÷ plain, packets out per CPU-s | each pair | target | WebRTC ÷ LiveKit's 38k per vCPU | target |")
        w("|---|---:|---:|---|---:|---|")
        for key in webrtc:
            plain_key = ("corecast", key[1], key[2])
            ratio = rows[key]["rate"] / rows[plain_key]["rate"] \
                if rows[key]["rate"] and rows[plain_key]["rate"] else None
            pairs = [cpu_rate(v) / cpu_rate(p) for v, p in zip(rs[key], rs[plain_key])
                     if cpu_rate(v) and cpu_rate(p)]
            paired = median(pairs)
            met = ratio is not None and ratio >= 0.75 and paired is not None and paired >= 0.75
            vs_livekit = rows[key]["rate"] / 38_000 if rows[key]["rate"] else None
            w(f"| {config_name(key[1], key[2])} | {fmt_ratio(ratio)} | "
              f"{', '.join(fmt_ratio(x) for x in pairs) or '–'} | ≥ 0.75×: {verdict(met)} | "
              f"{fmt_ratio(vs_livekit)} | "
              f"≥ 5×: {verdict(vs_livekit is not None and vs_livekit >= 5)} |")
        w("")

    # Saturation and the half-of-saturation run.
    delta_pk, key_pk, gop = burst_packets(meta)
    w("### Saturation, and latency at half of it")
    w("")
    if sat is None:
        w("No loss-free 1-source corecast run with a measured shard CPU time: saturation not "
          "estimated.")
        w("")
    else:
        sat_pps, per_sub, src = sat
        w(f"Saturation is estimated without a ramp, from the median repetition of corecast 1 × "
          f"{src['subscribers']:,}: it forwarded {lg(src, 'packets_received'):,} packets with "
          f"{shard_cpu(src):.2f} CPU-seconds of its shard thread, so one shard is busy all the "
          f"time at about **{sat_pps:,.0f} packets out per second** ({per_sub:,.0f} per second "
          f"per subscriber at 2 Mbit/s: {sat_pps / per_sub:,.0f} subscribers). Half of "
          f"saturation: {sat_pps / 2:,.0f} packets out per second, one run of "
          f"{meta.get('half_duration', '')} s below.")
        w("")
    if hs is not None:
        busy_share = (shard_cpu(hs) or 0) / (lg(hs, "duration_s") or hs.get("wall_s") or 1)
        w("| run | packets out per s | shard busy | loss | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | verified |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        w(f"| corecast 1 × {hs['subscribers']:,} | {fmt_int(lg(hs, 'received_pps'))} | "
          f"{busy_share * 100:.0f}% | {fmt_loss(pooled_loss([hs]))} | {fmt_us(latency(hs, 'p50'))} | "
          f"{fmt_us(latency(hs, 'p90'))} | {fmt_us(latency(hs, 'p99'))} | "
          f"{fmt_us(latency(hs, 'p999'))} | {fmt_us(latency(hs, 'max'))} | "
          f"{'yes' if hs.get('exit') == 0 else 'no'} |")
        w("")
        c = (lg(hs, "server_cpu_s") or 0) / max(1, lg(hs, "packets_received") or 1)
        frac = key_pk / ((gop - 1) * delta_pk + key_pk)
        q = max(0.0, 1 - 0.01 / frac)
        m = hs["subscribers"]
        w(f"What sets this latency is the shape of the stream, not a backlog in the forwarder: "
          f"the load generator "
          f"sends each frame's packets back to back, as an encoder does ({delta_pk} packets per "
          f"delta frame, {key_pk} per keyframe, a keyframe every {gop} frames), and one shard "
          f"sends the {m:,} copies of every packet of a frame one after the other at "
          f"{c * 1e6:.1f} µs each (this run's CPU per copy). A delta frame takes "
          f"{fmt_ms(delta_pk * m * c * 1e6)} to fan out, a keyframe "
          f"{fmt_ms(key_pk * m * c * 1e6)}; keyframes carry {frac * 100:.1f}% of the copies, so "
          f"the 99th percentile copy sits {q * 100:.0f}% of the way through a keyframe's "
          f"burst: about **{fmt_ms(q * key_pk * m * c * 1e6)}** from the burst alone, against "
          f"{fmt_ms(latency(hs, 'p99'))} measured. A p99 under 1 ms with this stream needs "
          f"fewer than {1e-3 / (q * key_pk * c):,.0f} subscribers per shard (or a paced "
          f"source, or more shards: each takes its share of a burst in parallel).")
        w("")

    # Targets.
    w("### Against the targets of issue 5")
    w("")
    cc = {k: v for k, v in rows.items() if k[0] == "corecast"}
    if cc:
        ordered = sorted(cc.items(), key=lambda kv: config_order(kv[0]))
        raws = [(k, v["raw"]) for k, v in ordered if v["raw"] is not None]
        if raws:
            big = [x for k, x in raws if k[2] >= 1000] or [x for _, x in raws]
            sp = probes(results, spin=True)
            floor = []
            for k, v in ordered:
                _, f = probe_for(sp, k[2])
                if f and v["rate"]:
                    floor.append((k, v["rate"] / f))
            w(f"- ≥ {TARGET_RAW}× the raw limit in packets out per CPU-second (at 1 000 "
              f"subscribers and more): {verdict(min(big) >= TARGET_RAW)}: "
              + ", ".join(f"{config_name(k[1], k[2])}: {x:.2f}×" for k, x in raws) + "."
              + (" Against the send path alone (the probe with spinning receivers, no wake-ups): "
                 + ", ".join(f"{config_name(k[1], k[2])}: {x:.2f}×" for k, x in floor) + "."
                 if floor else ""))
        gsts = [(k, v["gst"]) for k, v in ordered if v["gst"] is not None]
        if gsts:
            w(f"- ≥ {TARGET_GST}× GStreamer `multiudpsink`: "
              f"{verdict(min(x for _, x in gsts) >= TARGET_GST)}: "
              + ", ".join(f"{config_name(k[1], k[2])}: {x:.2f}×" for k, x in gsts) + ".")
        if hs is not None:
            p99 = latency(hs, "p99")
            w(f"- p99 < 1 ms at half of saturation: "
              f"{verdict(p99 is not None and p99 < TARGET_P99_US)}: {fmt_ms(p99)} at "
              f"{fmt_int(lg(hs, 'received_pps'))} packets out per second (see above for why).")
        if sat is not None:
            below = [(k, v["loss"]) for k, v in ordered if v["pps"] and v["pps"] < sat[0]]
            if hs is not None:
                below.append((("corecast", 1, hs["subscribers"]), pooled_loss([hs])))
            lossy = [(k, x) for k, x in below if (x or 0) > 0]
            above = [(k, v["loss"]) for k, v in ordered if v["pps"] and v["pps"] >= sat[0]]
            text = (", ".join(f"{config_name(k[1], k[2])} lost {fmt_loss(x)}" for k, x in lossy)
                    if lossy else f"the {len(below)} configurations below {sat[0]:,.0f} packets "
                                  "out per second lost nothing")
            if above:
                text += "; at or above it: " + ", ".join(
                    f"{config_name(k[1], k[2])} lost {fmt_loss(x)}" for k, x in above)
            w(f"- No loss below saturation: {verdict(not lossy)}: {text}.")
        mem = [(k, v["per_sub"]) for k, v in ordered if v["per_sub"] is not None and k[2] >= 1000]
        if mem:
            w(f"- < 2 KiB of memory per subscriber (at 1 000 subscribers and more): "
              f"{verdict(max(x for _, x in mem) < TARGET_BYTES_PER_SUB)}: "
              + ", ".join(f"{config_name(k[1], k[2])}: {fmt_bytes(x)}" for k, x in mem) + ".")
        one = sorted((k[2], v["peak"]) for k, v in cc.items() if k[1] == 1 and v["peak"] is not None)
        if len(one) >= 2 and one[-1][0] > one[0][0]:
            (m0, p0), (m1, p1) = one[0], one[-1]
            w(f"  Marginal cost: from 1 × {m0:,} to 1 × {m1:,} the peak RSS grew "
              f"{fmt_bytes((p1 - p0) * 1024 / (m1 - m0))} per added subscriber.")
    w("")

    # Where the time goes.
    w("### Where corecast's CPU goes")
    w("")
    w("Per thread, in the median repetition of each configuration (from "
      "/proc/PID/task/*/schedstat, over the whole run including set-up), and the shard's "
      "CPU per copy next to the probe's `sendmmsg` cost per packet:")
    w("")
    w("| run | shard CPU s | ingest CPU s | other threads CPU s | shard µs per copy | probe µs per packet |")
    w("|---|---:|---:|---:|---:|---:|")
    for key in sorted((k for k in rs if k[0] == "corecast"), key=config_order):
        r = median_run(rs[key])
        t = r.get("thread_cpu_s") or {}
        shard = shard_cpu(r) or 0
        ingest = sum(v for k, v in t.items() if k.startswith("corecast-ingest"))
        other = sum(t.values()) - shard - ingest
        rx = lg(r, "packets_received") or 0
        _, raw = probe_for(ps, key[2])
        w(f"| {config_name(key[1], key[2])} | {shard:.2f} | {ingest:.2f} | {other:.2f} | "
          f"{shard * 1e6 / rx if rx else 0:.2f} | {1e6 / raw if raw else 0:.2f} |")
    w("")
    perf_section(w, results, meta)

    w("### Notes")
    w("")
    w(NOTES.strip())
    w("")
    if args.svg:
        w(f"![packets out per CPU-second and p99 latency against subscribers]({args.svg_rel})")
        w("")
    w(f"Raw results (every run's JSON with the load generator's report, the probe's, the perf "
      f"profile): `{args.results_rel}/`.")
    md = "\n".join(L) + "\n"

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md)
    else:
        sys.stdout.write(md)
    if args.benchmarks:
        splice(args.benchmarks, md)
    if args.svg:
        import subprocess
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "plot.py"), results, args.svg],
                       check=True)


# Functions whose inclusive time per copy the perf comparison shows, with what they stand for.
PERF_FUNCS = [
    ("udp_sendmsg", "the UDP send path, all of it (incl. loopback delivery below)"),
    ("ip_make_skb", "building each datagram (allocation, payload copy)"),
    ("_copy_from_iter", "copying the payload from the iovecs"),
    ("copy_msghdr_from_user", "reading each message's header and iovecs"),
    ("ip_route_output_flow", "route lookup per datagram"),
    ("__ip_dev_find", "source address check (socket bound to a specific address)"),
    ("net_rx_action", "loopback receive, in the sender's softirq"),
    ("__udp4_lib_lookup", "finding the receiving socket"),
    ("sock_def_readable", "waking the receiving sockets' waiters"),
    ("sock_wfree", "freeing each sent datagram, incl. waking the sending socket's waiters"),
    ("ktime_get_with_offset", "timestamping each datagram on loopback receive"),
]


def parse_perf(results, name):
    """(self samples by (dso, symbol), inclusive % by symbol, total samples) of a profile."""
    self_path = os.path.join(results, f"perf-{name}.self.txt")
    children_path = os.path.join(results, f"perf-{name}.children.txt")
    if not (os.path.exists(self_path) and os.path.exists(children_path)):
        return None
    def clean(line):
        # perf pads each row with empty columns ("-  -") after the symbol.
        return re.sub(r"(\s+-)+\s*$", "", line.rstrip())

    selfs = {}
    for line in map(clean, open(self_path)):
        m = re.match(r"^\s*[\d.]+%\s+(\d+)\s+(\S+)\s+\[.\]\s+(.*?)\s*$", line)
        if m:
            key = (m[2], m[3])
            selfs[key] = selfs.get(key, 0) + int(m[1])
    incl = {}
    for line in map(clean, open(children_path)):
        m = re.match(r"^\s*([\d.]+)%\s+[\d.]+%\s+\[.\]\s+(.*?)\s*$", line)
        if m:
            incl[m[2]] = max(incl.get(m[2], 0.0), float(m[1]))
    return selfs, incl, sum(selfs.values())


def perf_section(w, results, meta):
    """corecast's profile, and per copy where it differs from GStreamer's under the same load."""
    run = meta.get("perf_run")
    if not run:
        return
    hz, secs = meta.get("perf_hz", 2000), meta.get("perf_seconds", 4)
    profiles = {}
    for fw in ("corecast", "gstreamer"):
        p = parse_perf(results, f"{fw}-{run}")
        lg_path = os.path.join(results, f"perf-{fw}-{run}.loadgen.json")
        if p is None or not os.path.exists(lg_path):
            continue
        pps = (load(lg_path) or {}).get("received_pps")
        if pps:
            profiles[fw] = (p, pps * secs)
    top = os.path.join(results, f"perf-corecast-{run}.txt")
    s, m = run.split("x")
    if os.path.exists(top):
        w(f"`perf record -e cpu-clock -g` on corecast during a separate {s} × {int(m):,} run "
          f"({secs} s; this VM has no hardware counters); symbols with at least 1% of the "
          "samples, self time:")
        w("")
        w("```text")
        with open(top) as f:
            w("\n".join(line.rstrip() for line in f.read().strip("\n").splitlines()))
        w("```")
        w("")
    if len(profiles) < 2:
        return
    (cc, cc_copies), (gs, gs_copies) = profiles["corecast"], profiles["gstreamer"]

    def ns(samples, copies):
        return samples / hz / copies * 1e9

    w(f"The same profile of GStreamer's `multiudpsink` at {s} × {int(m):,}, per copy (samples / "
      f"{hz} Hz / copies the load generator received in the window): where the two forwarders' "
      "time goes. Inclusive time of kernel functions, so rows overlap:")
    w("")
    w("| per copy | corecast ns | multiudpsink ns | corecast − multiudpsink |")
    w("|---|---:|---:|---:|")
    rows = [("everything", cc[2], gs[2])]
    user = lambda p: sum(v for (dso, _), v in p[0].items() if dso != "[kernel.kallsyms]")
    rows.append(("user space (the forwarder's own code and libraries)", user(cc), user(gs)))
    for fn, what in PERF_FUNCS:
        rows.append((f"`{fn}`: {what}", cc[1].get(fn, 0.0) / 100 * cc[2], gs[1].get(fn, 0.0) / 100 * gs[2]))
    for label, a, b in rows:
        w(f"| {label} | {ns(a, cc_copies):,.0f} | {ns(b, gs_copies):,.0f} | "
          f"{ns(a, cc_copies) - ns(b, gs_copies):+,.0f} |")
    w("")
    diffs = []
    for key in set(cc[0]) | set(gs[0]):
        d = ns(cc[0].get(key, 0), cc_copies) - ns(gs[0].get(key, 0), gs_copies)
        diffs.append((d, key))
    diffs.sort()
    more = [f"`{k[1]}` {d:+.0f}" for d, k in reversed(diffs[-8:]) if d > 0]
    less = [f"`{k[1]}` {d:+.0f}" for d, k in diffs[:5] if d < 0]
    w("Largest differences in self time per copy, ns (corecast − multiudpsink): "
      + ", ".join(more) + "; and the other way: " + ", ".join(less) + ".")
    w("")


NOTES = """
- Everything runs on one machine: the load generator (its sender and receiving threads), the
  forwarder and the kernel's loopback delivery share the cores, so packets per wall-second,
  loss and latency at high load say as much about the rig as about the forwarder. Packets out
  per CPU-second of the forwarding process is the figure that does not depend on the rig; the
  ratios use it.
- On loopback, the sender's `sendmmsg` also pays for delivering each datagram into the
  receiver's socket and waking the receiver (the softirq runs in the sender's context), so "the
  kernel's send path" here includes receive-side work; it does for the probe, corecast and
  GStreamer alike. perf shows the forwarders spending about 97% of their time in the kernel.
- corecast's process CPU includes its ingest thread (`recvmmsg` and one copy per input packet),
  and its control, telemetry and HTTP threads; GStreamer's includes `udpsrc`'s receive. The probe
  has neither, so 1.0× the probe means the whole node costs what the bare `sendmmsg` of its
  copies costs.
- Above saturation (1 × 5 000 at 2 Mbit/s is about 1.1 million copies per second on one shard
  and one receiving thread), loss and latency measure the rig, and copies the receivers dropped
  count against the forwarder's packets per CPU-second.
"""


def splice(path, md):
    with open(path) as f:
        text = f.read()
    block = f"{BEGIN}\n{md}{END}\n"
    if BEGIN in text and END in text:
        a = text.index(BEGIN)
        b = text.index(END) + len(END)
        if b < len(text) and text[b] == "\n":
            b += 1
        text = text[:a] + block + text[b:]
    else:
        if not text.endswith("\n"):
            text += "\n"
        text += "\n" + block
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("halfsat")
    h.add_argument("results")
    r = sub.add_parser("report")
    r.add_argument("results")
    r.add_argument("--command", required=True)
    r.add_argument("--markdown")
    r.add_argument("--benchmarks")
    r.add_argument("--svg")
    args = ap.parse_args()
    if args.cmd == "halfsat":
        sat = saturation(args.results)
        if sat is None:
            sys.exit("no loss-free 1-source corecast run with shard CPU time to estimate saturation")
        sat_pps, per_sub, _ = sat
        print(max(1, round(sat_pps / 2 / per_sub)))
        return
    root = os.path.dirname(os.path.abspath(args.benchmarks)) if args.benchmarks else os.getcwd()
    args.results_rel = os.path.relpath(os.path.abspath(args.results), root)
    args.svg_rel = os.path.relpath(os.path.abspath(args.svg), root) if args.svg else None
    report(args)


if __name__ == "__main__":
    main()
