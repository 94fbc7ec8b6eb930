#!/usr/bin/env python3
"""Draws scripts/bench.sh's results: packets out per CPU-second and p99 latency against
subscribers, for corecast, GStreamer multiudpsink and the kernel's raw limit.

    scripts/plot.py RESULTS_DIR OUT.svg

Uses matplotlib when it is installed; otherwise writes the same two panels as plain SVG by hand,
so the benchmark needs nothing beyond python3.
"""

import math
import os
import sys


def report_module():
    """scripts/bench-report.py, which knows how the results are laid out and aggregated."""
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("bench_report", os.path.join(here, "bench-report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_series(results):
    """{series name: [(subscribers, packets out per CPU-second, p99 µs)]}, medians over the
    repetitions, for the forwarders and for the probe."""
    br = report_module()
    rs = br.runs(results)

    def point(m, reps):
        return (m, br.median(br.cpu_rate(r) for r in reps),
                br.median(br.latency(r, "p99") for r in reps))

    series = {}
    for fw, label in [("corecast", "corecast, 1 source"), ("gstreamer", "GStreamer multiudpsink")]:
        series[label] = sorted(point(m, reps) for (f, s, m), reps in rs.items() if f == fw and s == 1)
    multi = sorted(point(m, reps) for (f, s, m), reps in rs.items() if f == "corecast" and s > 1)
    if multi:
        series["corecast, 4 sources"] = multi
    hs = br.halfsat_run(results)
    if hs is not None:
        series["corecast, half of saturation"] = [point(hs["subscribers"], [hs])]
    ps = br.probes(results)
    raw = {
        "raw limit, sendmmsg (probe)": [
            (n, br.median(p["modes"]["sendmmsg"]["pps_per_cpu_s"] for p in ps[n]), None) for n in sorted(ps)],
        "raw limit, send_to (probe)": [
            (n, br.median(p["modes"]["send_to"]["pps_per_cpu_s"] for p in ps[n]), None) for n in sorted(ps)],
    }
    sp = br.probes(results, spin=True)
    if sp:
        raw["send path alone, sendmmsg (probe, spinning receiver)"] = [
            (n, br.median(p["modes"]["sendmmsg"]["pps_per_cpu_s"] for p in sp[n]), None) for n in sorted(sp)]
    return series, raw


STYLE = {
    "corecast, 1 source": ("#1f77b4", "o", "-"),
    "GStreamer multiudpsink": ("#d62728", "s", "-"),
    "corecast, 4 sources": ("#1f77b4", "D", "none"),
    "corecast, half of saturation": ("#2ca02c", "*", "none"),
    "raw limit, sendmmsg (probe)": ("#555555", "", "--"),
    "raw limit, send_to (probe)": ("#999999", "", ":"),
    "send path alone, sendmmsg (probe, spinning receiver)": ("#555555", "", "-."),
}


def plot_matplotlib(series, raw, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plt.rcParams["svg.hashsalt"] = "corecast"

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, pts in list(raw.items()) + list(series.items()):
        pts = [p for p in pts if p[1]]
        if not pts:
            continue
        color, marker, ls = STYLE[name]
        a.plot([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker or None,
               linestyle=ls if ls != "none" else "None", label=name, markersize=9 if marker == "*" else 6)
    a.set_xscale("log")
    a.set_xlabel("subscribers")
    a.set_ylabel("packets out per CPU-second")
    a.set_ylim(bottom=0)
    a.set_title("Forwarding cost (higher is better)")
    a.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=8)
    for name, pts in series.items():
        pts = [p for p in pts if p[2]]
        if not pts:
            continue
        color, marker, ls = STYLE[name]
        b.plot([p[0] for p in pts], [p[2] for p in pts], color=color, marker=marker or None,
               linestyle=ls if ls != "none" else "None", label=name, markersize=9 if marker == "*" else 6)
    b.axhline(1000, color="#999999", linestyle=":", label="1 ms (target at half of saturation)")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("subscribers")
    b.set_ylabel("p99 latency, µs")
    b.set_title("p99 forwarding latency (lower is better)")
    b.grid(True, which="both", alpha=0.3)
    b.legend(fontsize=8)
    xs = sorted({p[0] for name, pts in series.items() if "half" not in name for p in pts})
    for ax in (a, b):
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:,}" for x in xs], fontsize=8)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    a.yaxis.set_major_formatter(plain)
    b.yaxis.set_major_formatter(plain)
    fig.tight_layout()
    # No date and a fixed hash salt, so re-plotting the same numbers gives the same file.
    fig.savefig(out, format="svg", metadata={"Date": None})


def plot_by_hand(series, raw, out):
    """The same two panels as a hand-written SVG (log x; linear y left, log y right)."""
    W, H, PW, PH, M = 1100, 440, 420, 300, 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>']
    all_x = [p[0] for pts in list(series.values()) + list(raw.values()) for p in pts]
    xlo, xhi = math.log10(max(1, min(all_x) / 1.5)), math.log10(max(all_x) * 1.5)

    def panel(ox, title, ylabel, key, ylog, sets, ref=None):
        ys = [p[key] for pts in sets.values() for p in pts if p[key]]
        if ref:
            ys.append(ref)
        if not ys:
            return
        if ylog:
            ylo, yhi = math.log10(min(ys) / 1.5), math.log10(max(ys) * 1.5)
        else:
            ylo, yhi = 0, max(ys) * 1.1

        def X(x):
            return ox + (math.log10(x) - xlo) / (xhi - xlo) * PW

        def Y(y):
            v = math.log10(y) if ylog else y
            return M + PH - (v - ylo) / (yhi - ylo) * PH

        parts.append(f'<rect x="{ox}" y="{M}" width="{PW}" height="{PH}" fill="none" stroke="#333"/>')
        parts.append(f'<text x="{ox + PW / 2}" y="{M - 25}" text-anchor="middle" font-size="13">{title}</text>')
        parts.append(f'<text x="{ox + PW / 2}" y="{M + PH + 35}" text-anchor="middle">subscribers</text>')
        parts.append(f'<text x="{ox - 55}" y="{M + PH / 2}" text-anchor="middle" '
                     f'transform="rotate(-90 {ox - 55} {M + PH / 2})">{ylabel}</text>')
        for e in range(math.ceil(xlo), math.floor(xhi) + 1):
            x = X(10 ** e)
            parts.append(f'<line x1="{x}" y1="{M}" x2="{x}" y2="{M + PH}" stroke="#ddd"/>')
            parts.append(f'<text x="{x}" y="{M + PH + 15}" text-anchor="middle">{10 ** e:,}</text>')
        ticks = ([10 ** e for e in range(math.ceil(ylo), math.floor(yhi) + 1)] if ylog else
                 [yhi / 5 * i for i in range(6)])
        for t in ticks:
            y = Y(t) if (not ylog or t > 0) else None
            if y is None:
                continue
            parts.append(f'<line x1="{ox}" y1="{y}" x2="{ox + PW}" y2="{y}" stroke="#eee"/>')
            parts.append(f'<text x="{ox - 5}" y="{y + 4}" text-anchor="end">{t:,.0f}</text>')
        if ref:
            parts.append(f'<line x1="{ox}" y1="{Y(ref)}" x2="{ox + PW}" y2="{Y(ref)}" '
                         f'stroke="#999" stroke-dasharray="2,3"/>')
        ly = M + 10
        for name, pts in sets.items():
            pts = [p for p in pts if p[key]]
            if not pts:
                continue
            color, marker, ls = STYLE[name]
            if ls != "none" and len(pts) > 1:
                dash = {"--": ' stroke-dasharray="6,4"', ":": ' stroke-dasharray="2,3"'}.get(ls, "")
                d = " ".join(f"{X(p[0]):.1f},{Y(p[key]):.1f}" for p in pts)
                parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
            if marker:
                for p in pts:
                    parts.append(f'<circle cx="{X(p[0]):.1f}" cy="{Y(p[key]):.1f}" r="{5 if marker == "*" else 3.5}" fill="{color}"/>')
            parts.append(f'<line x1="{ox + 8}" y1="{ly}" x2="{ox + 28}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
            parts.append(f'<text x="{ox + 32}" y="{ly + 4}" font-size="10">{name}</text>')
            ly += 14

    panel(M, "Forwarding cost (higher is better)", "packets out per CPU-second", 1, False,
          {**raw, **series})
    panel(M + PW + 130, "p99 forwarding latency (lower is better)", "p99 latency, µs", 2, True,
          series, ref=1000)
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    series, raw = load_series(sys.argv[1])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plot_by_hand(series, raw, sys.argv[2])
        return
    plot_matplotlib(series, raw, sys.argv[2])


if __name__ == "__main__":
    main()
