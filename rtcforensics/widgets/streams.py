"""RTP stream plots: packets, loss, jitter and bitrate per second for one stream (flow + SSRC)."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import _avail, _safe
from .select import stream_options, stream_series

METRICS = {"packets": ("packets / bin", "#4c78a8"), "lost": ("lost / bin", "#d62728"),
           "jitter_ms": ("jitter (ms)", "#f58518"), "kbps": ("kbit/s", "#54a24b")}


def plot_metric(series: pd.DataFrame, ax: Axes, metric: str = "packets") -> Axes:
    """One metric of ``stream_series`` output against time on ``ax``; returns ``ax``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (one of: {', '.join(METRICS)})")
    label, colour = METRICS[metric]
    if series is None or not len(series):
        ax.text(0.5, 0.5, "no packets", ha="center", va="center", transform=ax.transAxes, parse_math=False)
        return ax
    if metric in ("packets", "lost"):
        ax.bar(series["t_s"], series[metric], width=0.9 * _bin(series), align="edge", color=colour)
    else:
        ax.plot(series["t_s"], series[metric], color=colour, drawstyle="steps-post")
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    return ax


def _bin(series: pd.DataFrame) -> float:
    return float(series["t_s"].iloc[1] - series["t_s"].iloc[0]) if len(series) > 1 else 1.0


def render_png(series: pd.DataFrame, *, title: str = "") -> bytes:
    fig = Figure(figsize=(8.0, 5.0), dpi=100)
    axes = fig.subplots(len(METRICS), 1, sharex=True)
    for ax, m in zip(axes, METRICS):
        plot_metric(series, ax, m)
    axes[-1].set_xlabel("seconds from the stream's first packet")
    if title:
        axes[0].set_title(title, fontsize=9, parse_math=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def streams_widget(cap: Any, bin_s: float = 1.0) -> Any:
    """A stream picker and the four plots of the picked stream."""
    import ipywidgets as w

    streams, why = _avail.frame(cap, "rtp_streams")
    rtp, why2 = _avail.frame(cap, "rtp")
    if streams is None or rtp is None:
        return w.HTML(f"<p class='rtcf-missing'>RTP streams: {_safe.escape(why or why2)}</p>")
    opts = stream_options(streams)
    if not opts:
        return w.HTML("<p>No RTP streams in this capture.</p>")
    picker = w.Dropdown(options=opts, value=opts[0][1], description="Stream", layout=w.Layout(width="95%"))
    image = w.Image(format="png")
    facts = w.HTML()

    def show(key: tuple[int, int]) -> None:
        flow_id, ssrc = key
        row = streams[(streams["flow_id"] == flow_id) & (streams["ssrc"] == ssrc)]
        codec = row["codec"].iloc[0] if "codec" in row.columns and len(row) else None
        codec = None if codec is None or pd.isna(codec) else codec
        series = stream_series(rtp, flow_id, ssrc, bin_s=bin_s, codec=codec)
        image.value = render_png(series, title=f"flow {flow_id} SSRC 0x{ssrc:08x}")
        keep = [c for c in ("packets", "lost", "jitter_ms", "kbps", "keying", "codec", "pt") if c in row.columns]
        facts.value = _safe.frame_html(row[keep]) if keep else ""

    picker.observe(lambda ch: show(ch["new"]), names="value")
    show(opts[0][1])
    box = w.VBox([picker, facts, image])
    box.add_class("rtcf-streams")
    return box
