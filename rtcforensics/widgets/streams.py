"""RTP stream plots: packets, loss, jitter and bitrate per second for one stream (flow + SSRC)."""

from __future__ import annotations

import io
from collections.abc import Set as AbstractSet
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import _avail, _safe
from .select import stream_options, stream_series

METRICS = {
    "packets": ("packets / bin", "#4c78a8"),
    "lost": ("lost / bin", "#d62728"),
    "jitter_ms": ("jitter (ms)", "#f58518"),
    "kbps": ("kbit/s", "#54a24b"),
}


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
    from ._static import LiveBox

    picker = w.Dropdown(options=opts, value=opts[0][1], description="Stream", layout=w.Layout(width="95%"))
    image = w.Image(format="png")
    facts = w.HTML()
    box = LiveBox([picker, facts, image])
    box.add_class("rtcf-streams")

    def show(key: tuple[int, int]) -> None:
        flow_id, ssrc = key
        row = streams[(streams["flow_id"] == flow_id) & (streams["ssrc"] == ssrc)]
        codec = row["codec"].iloc[0] if "codec" in row.columns and len(row) else None
        codec = None if codec is None or pd.isna(codec) else codec
        clock = row["clock_rate"].iloc[0] if "clock_rate" in row.columns and len(row) else None
        clock = None if clock is None or pd.isna(clock) else int(clock)
        series = stream_series(rtp, flow_id, ssrc, bin_s=bin_s, clock=clock, codec=codec)
        image.value = render_png(series, title=f"flow {flow_id} SSRC 0x{ssrc:08x}")
        keep = [
            c for c in ("packets", "lost", "jitter_ms", "kbps", "keying", "codec", "pt") if c in row.columns
        ]
        facts.value = _safe.frame_html(row[keep]) if keep else ""
        box.refresh_static()

    picker.observe(lambda ch: show(ch["new"]), names="value")
    show(opts[0][1])
    return box


# -- every stream at once: quality, the payload evidence, playback ------------------------------------------
QUALITY_COLUMNS = (
    "src",
    "dst",
    "ssrc",
    "codec",
    "packets",
    "lost",
    "loss_pct",
    "jitter_ms",
    "jitter_ms_max",
    "kbps",
    "keying",
    "plaintext_score",
    "payload_entropy",
)


def quality_table(rtp_streams: pd.DataFrame | None) -> pd.DataFrame | None:
    """All streams' loss and jitter in one table, worst loss first (``loss_pct`` of the expected packets)."""
    if rtp_streams is None:
        return None
    df = rtp_streams.copy()
    df["loss_pct"] = (
        100.0 * df["lost"].astype("Float64") / df["expected"].astype("Float64").where(df["expected"] > 0)
    ).round(2)
    df["ssrc"] = [f"{int(s):#010x}" for s in df["ssrc"]]
    df = df.sort_values(["loss_pct", "packets"], ascending=[False, False], na_position="last")
    return df[[c for c in QUALITY_COLUMNS if c in df.columns]].reset_index(drop=True)


def draw_entropy(
    rtp_streams: pd.DataFrame | None, ax: Axes, *, readable: AbstractSet[int] = frozenset()
) -> Axes:
    """Payload entropy (bits per byte) per stream, the evidence behind "plain": encrypted payload sits near 8,
    G.711 and other plain codecs well below. Streams in ``readable`` (SSRCs the checks found readable) in red.
    Returns ``ax``."""
    if rtp_streams is None or not len(rtp_streams) or "payload_entropy" not in rtp_streams.columns:
        ax.text(
            0.5, 0.5, "no RTP streams", ha="center", va="center", transform=ax.transAxes, parse_math=False
        )
        ax.set_axis_off()
        return ax
    df = rtp_streams.reset_index(drop=True)
    ent = pd.to_numeric(df["payload_entropy"], errors="coerce").fillna(0.0)
    colours = ["#d62728" if int(s) in readable else "#4c78a8" for s in df["ssrc"]]
    ax.barh(range(len(df)), ent, color=colours)
    ax.axvline(8.0, color="#555555", linestyle="--", linewidth=1)
    ax.text(8.0, -0.6, " random (encrypted)", fontsize=7, va="bottom", parse_math=False)
    ax.set_yticks(range(len(df)))
    ax.set_yticklabels([f"{int(r.ssrc):#010x} {r.src}" for r in df.itertuples()], fontsize=7)
    ax.set_xlim(0, 8.6)
    ax.set_xlabel("payload entropy (bits per byte)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return ax


def entropy_png(rtp_streams: pd.DataFrame | None, readable: AbstractSet[int] = frozenset()) -> bytes:
    n = len(rtp_streams) if rtp_streams is not None else 1
    fig = Figure(figsize=(7.0, 1.2 + 0.35 * max(n, 1)), dpi=100)
    draw_entropy(rtp_streams, fig.add_subplot(1, 1, 1), readable=readable)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def stream_audio(cap: Any, flow_id: int, ssrc: int) -> tuple[bytes, str] | tuple[None, str]:
    """``(WAV bytes, how)`` of one stream's audio: decrypted SRTP (keys from the keylog or SDES) or plain
    G.711 RTP; ``(None, why not)`` otherwise."""
    import tempfile
    from pathlib import Path

    from ..dissect.rtp import decode_rtp
    from ..srtp import audio
    from ..tables.rtp import STATIC_PT

    with tempfile.TemporaryDirectory() as tmp:
        try:
            written = cap.decrypt().write(tmp)
        except ImportError as e:
            written = []
            why = f"SRTP cannot be decrypted here ({e})"
        else:
            why = "no key decrypted this stream"
        wav = next((p for p in written if p.name.startswith(f"flow{flow_id}_ssrc{ssrc:08x}_")), None)
        if wav is None:
            wav = next((p for p in written if f"_ssrc{ssrc:08x}_" in p.name), None)
        if wav is not None:
            return wav.read_bytes(), "decrypted SRTP"
        streams, _ = _avail.frame(cap, "rtp_streams")
        row = streams[(streams["ssrc"] == ssrc)] if streams is not None else None
        if row is None or not len(row) or str(row["keying"].iloc[0]) != "none":
            return None, why
        pt = int(row["pt"].iloc[0])
        codec = STATIC_PT.get(pt, ("?", 0))
        if codec[0] not in ("PCMU", "PCMA"):
            return None, f"plain RTP, but payload type {pt} is not G.711"
        from ..srtp.collect import collect_media

        packets, _ = collect_media(cap.path, **cap.limits)
        payloads = []
        for p in packets:
            if not p.rtcp and p.ssrc == ssrc:
                rtp = decode_rtp(p.data)
                if rtp.payload_type == pt:
                    payloads.append(bytes(rtp.payload))
        path = audio.write_wav(Path(tmp) / "plain.wav", audio.decode_g711(payloads, codec[0]), codec[1])
        return path.read_bytes(), f"plain RTP ({codec[0]})"


def rtp_views(cap: Any, report: Any = None) -> Any:
    """Every stream's loss and jitter in one table, the payload-entropy plot (the evidence behind "plain"),
    and a player for a stream's audio (plain, or decrypted with the capture's keys)."""
    import ipywidgets as w

    from ._static import LiveBox, png_html
    from .labs import readable_streams

    streams, why = _avail.frame(cap, "rtp_streams")
    if streams is None:
        return w.HTML(f"<p class='rtcf-missing'>RTP streams: {_safe.escape(why)}</p>")
    if not len(streams):
        return w.HTML("<p>No RTP streams in this capture.</p>")
    if report is None:
        report, _ = _avail.report(cap)
    readable = {int(s) for s in readable_streams(report, streams)["ssrc"]}
    table = w.HTML(_safe.frame_html(quality_table(streams)))  # type: ignore[arg-type]
    plot = w.Image(value=entropy_png(streams, readable), format="png")
    picker = w.Dropdown(options=stream_options(streams), description="Stream", layout=w.Layout(width="70%"))
    play = w.Button(description="Play", icon="play")
    player = w.HTML()
    box = LiveBox(
        [table, plot, w.HBox([picker, play]), player],
        static=lambda: table.value + png_html(plot.value, "payload entropy per stream"),
    )
    box.add_class("rtcf-rtp")

    def on_play(_: Any = None) -> None:
        if picker.value is None:
            return
        flow_id, ssrc = picker.value
        wav, how = stream_audio(cap, flow_id, ssrc)
        if wav is None:
            player.value = f"<p><i>{_safe.escape(how)}</i></p>"
            return
        import base64

        data = base64.b64encode(wav).decode("ascii")
        player.value = (
            f"<p>{_safe.escape(how)}, SSRC {ssrc:#010x}</p>"
            f"<audio controls src='data:audio/wav;base64,{data}'></audio>"
        )

    play.on_click(on_play)
    return box
