"""Per-flow timeline: STUN, DTLS, media and signalling phases as bars, findings as marks."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import _avail, _safe
from .select import PHASES, SEVERITIES, finding_marks, phase_segments, severity_rank, time_bounds

PHASE_COLOURS = {"stun": "#72b7b2", "dtls": "#f58518", "media": "#4c78a8", "signalling": "#54a24b"}
SEVERITY_COLOURS = {"info": "#9d9d9d", "low": "#e7ba52", "medium": "#f58518", "high": "#d62728",
                    "critical": "#7b0000"}


def draw_timeline(phases: pd.DataFrame, marks: pd.DataFrame | None, ax: Axes, *,
                  t0: pd.Timestamp | None = None, max_flows: int = 30) -> Axes:
    """Draw one row per flow (``flow_phases`` or ``phase_segments`` output) with its phases as bars and ``finding_marks`` as
    markers coloured by severity; x is seconds from ``t0`` (default: the first phase start). Returns ax."""
    if phases is None or not len(phases):
        ax.text(0.5, 0.5, "no STUN, DTLS or media seen", ha="center", va="center", transform=ax.transAxes,
                parse_math=False)
        ax.set_axis_off()
        return ax
    if t0 is None:
        t0 = phases["start"].min()
    flows = sorted(phases["flow_id"].unique())[:max_flows]
    row = {f: i for i, f in enumerate(flows)}
    n_phase = len(PHASES)
    height = 0.8 / n_phase
    for _, r in phases[phases["flow_id"].isin(flows)].iterrows():
        k = list(PHASES).index(r["phase"])
        x0 = (r["start"] - t0).total_seconds()
        width = max((r["end"] - r["start"]).total_seconds(), 0.02)
        ax.broken_barh([(x0, width)], (row[r["flow_id"]] - 0.4 + k * height, height * 0.9),
                       facecolors=PHASE_COLOURS[r["phase"]])
    if marks is not None and len(marks):
        m = marks[marks["flow_id"].isin(flows)]
        for _, r in m.iterrows():
            sev = str(r["severity"])
            ax.plot([(r["ts"] - t0).total_seconds()], [row[r["flow_id"]]], marker="v", markersize=9,
                    color=SEVERITY_COLOURS.get(sev, "black"), markeredgecolor="black", linestyle="", zorder=5)
    ax.set_yticks(range(len(flows)))
    ax.set_yticklabels([f"flow {f}" for f in flows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from first packet")
    handles: list[Any] = [Patch(facecolor=c, label=p) for p, c in PHASE_COLOURS.items() if p in set(phases["phase"])]
    if marks is not None and len(marks):
        sevs = sorted(set(marks["severity"].astype(str)), key=severity_rank)
        handles += [Line2D([], [], marker="v", linestyle="", color=SEVERITY_COLOURS.get(s, "black"),
                           markeredgecolor="black", label=f"finding: {s}") for s in sevs if s in SEVERITIES]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


def render_png(phases: pd.DataFrame, marks: pd.DataFrame | None, *, t0: Any = None) -> bytes:
    rows = max(1, min(30, phases["flow_id"].nunique() if phases is not None and len(phases) else 1))
    fig = Figure(figsize=(9.0, 1.6 + 0.4 * rows), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    draw_timeline(phases, marks, ax, t0=t0)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def timeline_widget(cap: Any, findings: Any = None, flow_ids: Any = None) -> Any:
    """The timeline of every flow (or ``flow_ids``) of ``cap`` as an image widget."""
    import ipywidgets as w

    packets, why = _avail.frame(cap, "packets")
    if packets is None:
        return w.HTML(f"<p class='rtcf-missing'>Timeline: {_safe.escape(why)}</p>")
    if findings is None:
        findings, _ = _avail.report(cap)
    phases = phase_segments(packets, flow_ids)
    marks = finding_marks(findings, packets) if findings is not None else None
    bounds = time_bounds(packets)
    img = w.Image(value=render_png(phases, marks, t0=bounds[0] if bounds else None), format="png")
    box = w.VBox([img])
    box.add_class("rtcf-timeline")
    return box
