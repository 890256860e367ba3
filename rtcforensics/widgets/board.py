"""Linked views: pick a finding, and every view follows.

The topology highlights the finding's hosts and edges, the ladder thickens the arrows of the frames it
cites, the timeline shades its span, the packet grid keeps only its frames, and the dissection of a cited
frame opens collapsible per layer (SDP, STUN, DTLS decoded in full by Wireshark). :func:`finding_view` is the
pure selection behind it (tested without a kernel); :func:`workbench` wires it to the widgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import _avail, _safe
from .explorer import PACKET_COLUMNS
from .findings import detail_html
from .select import finding_flow_ids, finding_frames, finding_label, findings_frame, time_bounds


@dataclass
class FindingView:
    """What the linked views show for one finding (or for none: ``index`` -1)."""

    index: int
    frames: list[int] = field(default_factory=list)
    flows: set[int] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    span: tuple[pd.Timestamp, pd.Timestamp] | None = None
    packets: pd.DataFrame | None = None


def finding_view(findings: Any, packets: pd.DataFrame | None, index: int) -> FindingView:
    """Frames, flows, hosts, time span and packet rows of finding ``index`` of ``findings`` (all packets when
    ``index`` is -1)."""
    fd = findings_frame(findings)
    if index < 0 or index >= len(fd):
        return FindingView(-1, packets=packets)
    f = fd.loc[index]
    frames = finding_frames(f)
    flows = finding_flow_ids(f, packets)
    rows = packets[packets["frame"].isin(frames)] if packets is not None and len(packets) else packets
    hosts = (
        {str(h) for c in ("src", "dst") for h in rows[c].dropna()}
        if rows is not None and len(rows)
        else set()
    )
    return FindingView(index, frames, flows, hosts, time_bounds(rows) if rows is not None else None, rows)


def dissection_layers(cap: Any, number: int, *, show_secrets: bool = False) -> list[tuple[str, str]]:
    """Frame ``number`` as Wireshark dissects it, one ``(layer name, text)`` per layer, outermost first,
    every field shown (SDP, STUN attributes, DTLS handshake in full), secrets redacted unless asked."""
    try:
        fd = cap.frame(int(number))
    except Exception as e:
        return [("error", f"frame {number} could not be dissected: {type(e).__name__}: {e}")]
    layers = getattr(getattr(fd, "packet", None), "layers", None)
    if not layers:
        return [("frame", _safe.redact_text(str(fd), show_secrets=show_secrets))]
    return [
        (str(layer.layer_name), _safe.redact_text(str(layer), show_secrets=show_secrets)) for layer in layers
    ]


def layers_html(layers: list[tuple[str, str]]) -> str:
    """Static collapsible layers: one ``<details>`` per layer (the innermost open)."""
    out = []
    for i, (name, text) in enumerate(layers):
        opened = " open" if i == len(layers) - 1 else ""
        out.append(
            f"<details{opened}><summary><b>{_safe.escape(name)}</b></summary>"
            f"<pre class='rtcf-tree'>{_safe.escape(text)}</pre></details>"
        )
    return "".join(out)


def workbench(cap: Any, findings: Any = None, *, show_secrets: bool = False, max_rows: int = 200) -> Any:
    """A finding picker linked to the topology, the ladder, the timeline, the packet grid and the frame
    dissection (collapsible per layer)."""
    import ipywidgets as w

    from . import ladder, timeline, topology
    from ._static import LiveBox
    from .select import finding_marks, phase_segments

    if findings is None:
        findings, why = _avail.report(cap)
        if findings is None:
            return w.HTML(f"<p class='rtcf-missing'>Workbench: {_safe.escape(why)}</p>")
    fd = findings_frame(findings)
    packets, _ = _avail.frame(cap, "packets")
    graph, _ = _avail.graph(cap)
    events = ladder.capture_events(cap, findings)
    hosts = ladder.columns(events, graph) if len(events) else []
    phases = phase_segments(packets) if packets is not None else None
    marks = finding_marks(findings, packets) if packets is not None else None
    t0 = time_bounds(packets)[0] if packets is not None and len(packets) else None  # type: ignore[index]
    labels = timeline.flow_labels(_avail.frame(cap, "flows")[0])

    picker = w.Select(
        options=[("(all: no finding selected)", -1)]
        + [(_safe.redact_text(finding_label(r), show_secrets=show_secrets), i) for i, r in fd.iterrows()],
        value=-1,
        rows=min(8, len(fd) + 1),
        description="Finding",
        layout=w.Layout(width="95%"),
    )
    detail = w.HTML()
    topo = w.Image(format="png", layout=w.Layout(max_width="700px"))
    lad = w.Image(format="png", layout=w.Layout(max_width="100%"))
    tl = w.Image(format="png", layout=w.Layout(max_width="100%"))
    grid = w.HTML()
    frame_pick = w.Dropdown(options=[], description="Frame")
    go = w.Button(description="Dissect frame", icon="search")
    layers = w.Accordion(children=[])
    layers_static = w.HTML(layout=w.Layout(display="none"))  # the static copy of the accordion
    tabs = w.Tab(children=[topo, lad, tl, grid])
    for i, t in enumerate(("Topology", "Ladder", "Timeline", "Packets")):
        tabs.set_title(i, t)
    box = LiveBox(
        [picker, detail, tabs, w.HBox([frame_pick, go]), layers, layers_static],
        static=lambda: "".join(
            (
                detail.value,
                _static_img(topo),
                _static_img(lad),
                _static_img(tl),
                grid.value,
                layers_static.value,
            )
        ),
    )
    box.add_class("rtcf-workbench")

    def show(_: Any = None) -> None:
        v = finding_view(fd, packets, picker.value)
        f = fd.loc[v.index] if v.index >= 0 else None
        detail.value = detail_html(f, show_secrets=show_secrets) if f is not None else ""
        if graph is not None:
            topo.value = topology.render_png(
                graph, highlight=v.flows, title=finding_label(f) if f is not None else None
            )
        lad.value = ladder.render_png(events, hosts=hosts, highlight=v.frames)
        tl.value = (
            timeline.render_png(phases, marks, t0=t0, labels=labels, span=v.span)
            if phases is not None
            else b""
        )
        rows = v.packets
        if rows is not None:
            cols = [c for c in PACKET_COLUMNS if c in rows.columns]
            shown = rows[cols].copy()
            if t0 is not None and "ts" in shown.columns:
                shown.insert(1, "t_s", (shown["ts"] - t0).dt.total_seconds().round(6))
                shown = shown.drop(columns=["ts"])
            head = f"<h4>{len(rows)} packet(s)" + (" cited by the finding" if v.index >= 0 else "") + "</h4>"
            grid.value = head + _safe.frame_html(shown, max_rows=max_rows, show_secrets=show_secrets)
        frame_pick.options = v.frames[:200]
        frame_pick.value = v.frames[0] if v.frames else None
        layers.children = []
        layers_static.value = ""
        box.refresh_static()

    def dissect(_: Any = None) -> None:
        if frame_pick.value is None:
            return
        parts = dissection_layers(cap, frame_pick.value, show_secrets=show_secrets)
        layers.children = [w.HTML(f"<pre class='rtcf-tree'>{_safe.escape(text)}</pre>") for _, text in parts]
        for i, (name, _) in enumerate(parts):
            layers.set_title(i, name)
        layers.selected_index = len(parts) - 1 if parts else None
        layers_static.value = f"<p><b>frame {int(frame_pick.value)}</b></p>" + layers_html(parts)
        box.refresh_static()

    picker.observe(show, names="value")
    go.on_click(dissect)
    show()
    return box


def _static_img(image: Any) -> str:
    from ._static import png_html

    return png_html(image.value) if image.value else ""
