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
# critical and high must not be told apart by shade alone: violet and red
SEVERITY_COLOURS = {
    "info": "#9d9d9d",
    "low": "#e7ba52",
    "medium": "#f58518",
    "high": "#d62728",
    "critical": "#7b00c8",
}


def flow_labels(flows: pd.DataFrame | None) -> dict[int, str]:
    """``flow_id -> "a ↔ b"`` (endpoints of the ``flows`` frame) for naming timeline rows."""
    if flows is None or not len(flows):
        return {}
    return {int(r.flow_id): f"{r.a} ↔ {r.b}" for r in flows[["flow_id", "a", "b"]].dropna().itertuples()}


def draw_timeline(
    phases: pd.DataFrame,
    marks: pd.DataFrame | None,
    ax: Axes,
    *,
    t0: pd.Timestamp | None = None,
    max_flows: int = 30,
    labels: dict[int, str] | None = None,
    span: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> Axes:
    """Draw one row per flow (``flow_phases`` or ``phase_segments`` output) with its phases as bars and
    ``finding_marks`` as markers coloured by severity, the most severe drawn on top; x is seconds from ``t0``
    (default: the first phase start). Rows are named by ``labels`` (flow id -> endpoints) when given, else
    ``flow N``; ``span`` (a finding's first and last cited frame) is shaded. Returns ax."""
    if phases is None or not len(phases):
        ax.text(
            0.5,
            0.5,
            "no STUN, DTLS or media seen",
            ha="center",
            va="center",
            transform=ax.transAxes,
            parse_math=False,
        )
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
        ax.broken_barh(
            [(x0, width)],
            (row[r["flow_id"]] - 0.4 + k * height, height * 0.9),
            facecolors=PHASE_COLOURS[r["phase"]],
        )
    if marks is not None and len(marks):
        m = marks[marks["flow_id"].isin(flows)]
        m = m.iloc[m["severity"].map(severity_rank).argsort(kind="stable")]  # most severe last: on top
        for _, r in m.iterrows():
            sev = str(r["severity"])
            ax.plot(
                [(r["ts"] - t0).total_seconds()],
                [row[r["flow_id"]]],
                marker="v",
                markersize=9,
                color=SEVERITY_COLOURS.get(sev, "black"),
                markeredgecolor="black",
                linestyle="",
                zorder=5 + max(severity_rank(sev), 0),
            )
    if span is not None:
        a, b = ((t - t0).total_seconds() for t in span)
        ax.axvspan(a - 0.02, b + 0.02, color="#d62728", alpha=0.12, zorder=0)
    ax.set_yticks(range(len(flows)))
    names = [_safe.redact_text((labels or {}).get(int(f), f"flow {f}")) for f in flows]
    ax.set_yticklabels(names, fontsize=7 if labels else 8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from first packet")
    handles: list[Any] = [
        Patch(facecolor=c, label=p) for p, c in PHASE_COLOURS.items() if p in set(phases["phase"])
    ]
    if marks is not None and len(marks):
        sevs = sorted(set(marks["severity"].astype(str)), key=severity_rank)
        handles += [
            Line2D(
                [],
                [],
                marker="v",
                linestyle="",
                color=SEVERITY_COLOURS.get(s, "black"),
                markeredgecolor="black",
                label=f"finding: {s}",
            )
            for s in sevs
            if s in SEVERITIES
        ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


def render_png(
    phases: pd.DataFrame,
    marks: pd.DataFrame | None,
    *,
    t0: Any = None,
    labels: dict[int, str] | None = None,
    span: Any = None,
) -> bytes:
    rows = max(1, min(30, phases["flow_id"].nunique() if phases is not None and len(phases) else 1))
    fig = Figure(figsize=(10.0, 1.6 + 0.4 * rows), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    draw_timeline(phases, marks, ax, t0=t0, labels=labels, span=span)
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
    from ._static import LiveBox

    labels = flow_labels(_avail.frame(cap, "flows")[0])
    img = w.Image(
        value=render_png(phases, marks, t0=bounds[0] if bounds else None, labels=labels), format="png"
    )
    box = LiveBox([img])
    box.add_class("rtcf-timeline")
    return box
