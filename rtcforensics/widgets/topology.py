"""The connection topology drawn with matplotlib: roles as node colours, encryption state as edge style,
findings highlighting the edges of their flows.

``draw(graph, ax, highlight=...)`` draws a ``networkx`` (Multi)DiGraph from ``rtcforensics.topology.graph``
onto ``ax`` and returns ``ax``; ``topology_widget(cap)`` wraps it with a finding picker."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterable
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from . import _avail, _safe
from .select import (
    ENCRYPTION_STYLES,
    ROLE_COLOURS,
    _as_list,
    encryption_of,
    filter_findings,
    finding_flow_ids,
    finding_frames,
    finding_label,
    findings_frame,
    highlighted_edges,
    role_of,
)

HIGHLIGHT = "#d62728"
EDGE = "#555555"


def _plain(text: Any, limit: int = 40) -> str:
    # Capture text on a plot (drawn with parse_math=False, so $...$ stays literal), secrets redacted, kept short.
    s = _safe.redact_text(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _title(text: Any, width: int = 80) -> str:
    # A title is wrapped, never cut.
    return "\n".join(textwrap.wrap(_safe.redact_text(text), width)) or " "


def roles_of(attrs: dict[str, Any]) -> list[str]:
    """Every role of a host (normalised, most specific first): a host can be a peer and a signalling server."""
    raw = _as_list(attrs.get("roles")) or _as_list(attrs.get("role"))
    out: list[str] = []
    for r in raw:
        n = role_of({"role": r})
        if n not in out:
            out.append(n)
    first = role_of(attrs)
    return [first] + [r for r in out if r != first] if out else [first]


def layout(graph: Any) -> dict[Any, tuple[float, float]]:
    """Deterministic positions: servers (signalling, STUN, TURN, media) on a top row, peers below them on the
    left and right, so a direct peer-to-peer flow never runs through a server's node."""
    nodes = list(graph.nodes)
    if not nodes:
        return {}
    by_role: dict[str, list[Any]] = {}
    for n in sorted(nodes, key=str):
        by_role.setdefault(role_of(graph.nodes[n]), []).append(n)
    peers = by_role.pop("peer", []) + by_role.pop("unknown", [])
    servers = [
        n
        for r in ("signalling_server", "stun_server", "turn_server", "media_server")
        for n in by_role.get(r, [])
    ]
    pos: dict[Any, tuple[float, float]] = {}
    half = math.ceil(len(peers) / 2)
    for col, (x, items) in enumerate(((-1.0, peers[:half]), (1.0, peers[half:]))):
        for i, n in enumerate(items):
            # one peer per side sits level; several spread downwards, the right column half a step lower
            pos[n] = (x, -1.0 * i - 0.5 * col * (len(items) > 1))
    for i, n in enumerate(servers):
        x = 0.0 if len(servers) == 1 else -0.7 + 1.4 * i / (len(servers) - 1)
        pos[n] = (x, 1.0 + 0.35 * (i % 2) * (len(servers) > 3))
    return pos


def _edge_label(d: dict[str, Any]) -> str:
    if d.get("kind") == "relay_permission":
        return "permission"
    protos = [str(p) for p in (d.get("protocols") or []) if str(p) != "other"]
    return "/".join(protos[:3])


def draw(
    graph: Any,
    ax: Axes,
    highlight: Iterable[int] | Any = None,
    *,
    labels: bool = True,
    legend: bool = True,
    title: str | None = None,
) -> Axes:
    """Draw ``graph`` on ``ax`` and return ``ax``.

    Node colour = role (``ROLE_COLOURS``), edge line style = encryption (solid encrypted, dashed plaintext,
    dotted unknown), edges carrying a flow in ``highlight`` (flow ids, or a finding record) drawn thick in
    red. Several flows between the same two hosts are drawn as separate arcs."""
    if highlight is not None and hasattr(highlight, "get") and not isinstance(highlight, (set, frozenset)):
        highlight = finding_flow_ids(highlight)
    hl = set(highlighted_edges(graph, highlight or ()))
    pos = layout(graph)
    ax.set_axis_off()
    if title:
        ax.set_title(_title(title), fontsize=10, parse_math=False)
    if not pos:
        ax.text(
            0.5,
            0.5,
            "no hosts in this capture",
            ha="center",
            va="center",
            transform=ax.transAxes,
            parse_math=False,
        )
        return ax
    # edges: one arc per (u, v, key), offset by its index among the edges joining the same pair
    pairs: dict[frozenset[Any], int] = {}
    edges = (
        list(graph.edges(keys=True, data=True))
        if graph.is_multigraph()
        else [(u, v, 0, d) for u, v, d in graph.edges(data=True)]
    )
    show_labels = labels and len(edges) <= 24
    for u, v, k, d in edges:
        if u == v:
            continue
        pair = frozenset((u, v))
        i = pairs.get(pair, 0)
        pairs[pair] = i + 1
        rad = 0.15 * ((i + 1) // 2) * (1 if i % 2 else -1) if i else 0.0
        is_hl = (u, v, k) in hl
        permission = d.get("kind") == "relay_permission"
        style: Any = (0, (1, 3)) if permission else ENCRYPTION_STYLES[encryption_of(d)]
        colour = HIGHLIGHT if is_hl else ("#9a9a9a" if permission else EDGE)
        arrow = FancyArrowPatch(
            pos[u],
            pos[v],
            arrowstyle="-|>",
            mutation_scale=10,
            connectionstyle=f"arc3,rad={rad}",
            linestyle=style,
            linewidth=3.0 if is_hl else 1.2,
            color=colour,
            shrinkA=14,
            shrinkB=14,
            zorder=3 if is_hl else 1,
            alpha=0.9,
        )
        arrow.set_gid(f"edge-{d.get('flow_id', '')}")
        ax.add_patch(arrow)
        text = _edge_label(d) if show_labels else ""
        if text:
            (x1, y1), (x2, y2) = pos[u], pos[v]
            mx, my = (x1 + x2) / 2 + rad * (y2 - y1) / 2, (y1 + y2) / 2 - rad * (x2 - x1) / 2
            ax.text(
                mx,
                my,
                _plain(text),
                fontsize=6.5,
                ha="center",
                va="center",
                color=colour,
                zorder=6,
                parse_math=False,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    colours = [ROLE_COLOURS[role_of(graph.nodes[n])] for n in pos]
    ax.scatter(xs, ys, s=420, c=colours, edgecolors="black", linewidths=0.8, zorder=4)
    # a host with several roles: a ring per further role around its node
    for n, (x, y) in pos.items():
        for j, r in enumerate(roles_of(graph.nodes[n])[1:3]):
            ax.scatter(
                [x],
                [y],
                s=420 + 260 * (j + 1),
                facecolors="none",
                edgecolors=ROLE_COLOURS[r],
                linewidths=2.5,
                zorder=3.9 - j * 0.1,
            )
    if labels:
        for n, (x, y) in pos.items():
            rs = roles_of(graph.nodes[n])
            above = rs[0] not in ("peer", "unknown")
            text = _plain(graph.nodes[n].get("label") or n)
            if len(rs) > 1:
                text += "\n" + " + ".join(r.replace("_", " ") for r in rs)
            ax.text(
                x,
                y + 0.16 if above else y - 0.16,
                text,
                ha="center",
                va="bottom" if above else "top",
                fontsize=8,
                zorder=5,
                parse_math=False,
            )
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.55)
    if legend:
        roles_present = sorted(
            {r for n in graph.nodes for r in roles_of(graph.nodes[n])}, key=list(ROLE_COLOURS).index
        )
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=9,
                markerfacecolor=ROLE_COLOURS[r],
                markeredgecolor="black",
                label=r.replace("_", " "),
            )
            for r in roles_present
        ]
        kinds = {encryption_of(d) for *_, d in edges if d.get("kind") != "relay_permission"}
        handles += [
            Line2D([], [], color=EDGE, linestyle=s, label=e)  # type: ignore[arg-type]
            for e, s in ENCRYPTION_STYLES.items()
            if e in kinds
        ]
        if any(d.get("kind") == "relay_permission" for *_, d in edges):
            handles.append(Line2D([], [], color="#9a9a9a", linestyle=(0, (1, 3)), label="TURN permission"))
        if hl:
            handles.append(Line2D([], [], color=HIGHLIGHT, linewidth=3, label="selected finding"))
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.02),
            ncol=4,
            fontsize=7,
            frameon=False,
        )
    return ax


def render_png(
    graph: Any,
    highlight: Iterable[int] | Any = None,
    *,
    title: str | None = None,
    size: tuple[float, float] = (7.0, 4.5),
) -> bytes:
    """The drawing as PNG bytes (a Figure of its own: pyplot's global state is not touched)."""
    fig = Figure(figsize=size, dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    draw(graph, ax, highlight=highlight, title=title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def topology_widget(cap: Any, findings: Any = None) -> Any:
    """A finding picker above the topology image; picking a finding highlights its flows' edges and lists
    its frames. Says what is missing when the graph or the findings are not available."""
    import ipywidgets as w

    from ._static import LiveBox

    graph, why = _avail.graph(cap)
    if graph is None:
        return w.HTML(f"<p class='rtcf-missing'>Topology: {_safe.escape(why)}</p>")
    if findings is None:
        findings, fwhy = _avail.report(cap)
    else:
        fwhy = ""
    fdf = filter_findings(findings_frame(findings)) if findings is not None else findings_frame(None)
    packets, _ = _avail.frame(cap, "packets")
    name = cap.path.name if hasattr(cap, "path") else None
    options = [("(no finding selected)", -1)] + [
        (_safe.redact_text(finding_label(r)), i) for i, r in fdf.iterrows()
    ]
    picker = w.Dropdown(options=options, value=-1, description="Finding", layout=w.Layout(width="95%"))
    image = w.Image(value=render_png(graph, title=name), format="png", layout=w.Layout(max_width="760px"))
    info = w.HTML(_safe.escape(fwhy) if fwhy else "")
    box = LiveBox([picker, image, info])
    box.add_class("rtcf-topology")

    def on_pick(change: Any) -> None:
        i = change["new"]
        if i is None or i < 0:
            image.value = render_png(graph, title=name)
            info.value = ""
            box.refresh_static()
            return
        f = fdf.loc[i]
        flows = finding_flow_ids(f, packets)
        image.value = render_png(graph, highlight=flows, title=finding_label(f))
        frames = finding_frames(f)
        info.value = (
            f"<b>flows</b> {_safe.escape(', '.join(map(str, sorted(flows))) or 'none')}; "
            f"<b>frames</b> {_safe.escape(', '.join(map(str, frames[:50])) or 'none')}"
            + (" …" if len(frames) > 50 else "")
        )
        box.refresh_static()

    picker.observe(on_pick, names="value")
    return box
