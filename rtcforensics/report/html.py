"""Self-contained HTML report: one file, no network (inline CSS, a Content-Security-Policy that forbids
scripts and remote loads, the topology figure as an inline PNG). Every capture-derived string goes through
:func:`safe.for_html`."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from ..values import host
from .jsonout import input_warnings
from .safe import for_html as h

ORDER = ("critical", "high", "medium", "low", "info")
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f4f4f4}pre{background:#f7f7f7;padding:.5em;overflow:auto;
white-space:pre-wrap;word-break:break-all}.sev{font-weight:bold;padding:.1em .4em;border-radius:3px;color:#fff}
.critical{background:#7b0000}.high{background:#c0392b}.medium{background:#d68910}.low{background:#2e86c1}
.info{background:#7f8c8d}.clear{color:#c0392b;font-weight:bold}.finding{border:1px solid #ddd;padding:.5em 1em;
margin:.8em 0;border-radius:4px}.warning{border:2px solid #d68910;background:#fdf2e3;padding:0 1em;
margin:1em 0;border-radius:4px}.muted{color:#777}figure{margin:0}img{max-width:100%}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _enc(v: Any) -> str:
    return "encrypted" if v is True else '<span class="clear">clear</span>' if v is False else "unknown"


ROLE_COLOURS = {
    "media_server": "#8e44ad",
    "turn_server": "#e67e22",
    "stun_server": "#f1c40f",
    "signalling_server": "#27ae60",
    "peer": "#2e86c1",
}


def _host(endpoint: str) -> str:
    return host(endpoint) or str(endpoint)


def topology_png(doc: dict[str, Any], cap: Any = None) -> str | None:
    """The topology as a base64 PNG. Hosts and flows from ``rtcforensics.topology.graph(cap)`` (roles as
    node colours), or, without a capture object (reports built in worker processes), from the overview's
    legs, signalling and relays. Edge style: solid = encrypted, dashed = clear, dotted = unknown; red
    edges join two hosts that a finding names."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        import networkx as nx
    except ImportError:
        return None
    ov = doc["overview"]
    pairs: dict[tuple[str, ...], list[Any]] = {}
    roles: dict[str, str] = {}
    try:
        if cap is None:
            raise LookupError("no capture object")
        from ..topology import graph

        g = graph(cap)
        for n, d in g.nodes(data=True):
            roles[str(n)] = str(d.get("role") or "peer")
        for u, v, d in g.edges(data=True):
            pairs.setdefault(tuple(sorted((str(u), str(v)))), []).append(d.get("encrypted"))
    except Exception:
        for leg in ov.get("legs", [])[:80]:
            pairs.setdefault(tuple(sorted((_host(leg["a"]), _host(leg["b"])))), []).append(
                leg.get("encrypted")
            )
        for s in ov.get("signalling", []):
            roles[_host(s["server"])] = "signalling_server"
            pairs.setdefault(tuple(sorted((_host(s["client"]), _host(s["server"])))), []).append(
                s.get("encrypted")
            )
        for r in ov.get("relays", []):
            roles[_host(r["server"])] = "turn_server"
            pairs.setdefault(tuple(sorted((_host(r["client"]), _host(r["server"])))), []).append(None)
        for ms in ov.get("media_servers", []):
            roles[ms["host"]] = "media_server"
    if not pairs:
        return None
    flagged = set()
    for f in doc["findings"]:
        hosts = sorted({_host(e) for e in f["endpoints"]})
        flagged |= {(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1 :]}
    g2 = nx.Graph()
    for (a, b), encs in pairs.items():
        state = False if False in encs else True if encs and all(e is True for e in encs) else None
        g2.add_edge(a, b, state=state, flagged=(a, b) in flagged)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=90)
    pos = nx.spring_layout(g2, seed=7)
    nx.draw_networkx_nodes(
        g2,
        pos,
        node_size=280,
        ax=ax,
        node_color=[ROLE_COLOURS.get(roles.get(n, "peer"), "#2e86c1") for n in g2.nodes],
    )
    for style, state in (("solid", True), ("dashed", False), ("dotted", None)):
        edges = [(u, v) for u, v, d in g2.edges(data=True) if d["state"] is state]
        colours = ["#c0392b" if g2.edges[u, v]["flagged"] else "#555" for u, v in edges]
        nx.draw_networkx_edges(g2, pos, edgelist=edges, style=style, edge_color=colours, width=1.6, ax=ax)
    nx.draw_networkx_labels(g2, pos, labels={n: str(n)[:40] for n in g2.nodes}, font_size=7, ax=ax)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _timeline(doc: dict[str, Any]) -> list[tuple[str, str]]:
    ev: list[tuple[str, str]] = []
    ov = doc["overview"]
    for s in ov.get("signalling", []):
        if s.get("first"):
            ev.append((s["first"], f"signalling {s['client']} → {s['server']} ({'/'.join(s['transports'])})"))
    for leg in ov.get("legs", []):
        if leg.get("first"):
            ev.append((leg["first"], f"{','.join(leg['classes'])} {leg['a']} ↔ {leg['b']} starts"))
        if leg.get("last") and leg.get("last") != leg.get("first"):
            ev.append((leg["last"], f"{','.join(leg['classes'])} {leg['a']} ↔ {leg['b']} last packet"))
    return sorted(ev)[:200]


def section(doc: dict[str, Any], cap: Any = None) -> str:
    cap_info, ov = doc["capture"], doc["overview"]
    counts = doc["summary"]["findings"]
    p: list[str] = [f"<h1>rtcforensics report: {h(cap_info.get('name') or cap_info.get('path'))}</h1>"]
    warnings = input_warnings(doc)
    if warnings:
        incomplete = (doc.get("run") or {}).get("complete") is False
        p.append(
            '<div class="warning">'
            + (
                "<h2>Incomplete run</h2><p>these results may miss findings the capture holds</p>"
                if incomplete
                else "<h2>Warnings</h2>"
            )
            + "<ul>"
            + "".join(f"<li>{h(w)}</li>" for w in warnings)
            + "</ul></div>"
        )
    p.append("<table><tr><th>capture</th><td>" + h(cap_info.get("path")) + "</td></tr>")
    if cap_info.get("sha256"):
        p.append(f"<tr><th>sha256</th><td><code>{h(cap_info['sha256'])}</code></td></tr>")
    if ov.get("period"):
        p.append(
            f"<tr><th>period</th><td>{h(ov['period']['first'])} → {h(ov['period']['last'])} "
            f"({int(ov['period']['packets'])} packets)</td></tr>"
        )
    p.append(
        "<tr><th>findings</th><td>"
        + " ".join(f'<span class="sev {s}">{counts.get(s, 0)} {s}</span>' for s in ORDER)
        + "</td></tr>"
    )
    p.append(
        f"<tr><th>tool</th><td>rtcforensics {h(doc['tool']['version'])}, generated {h(doc['generated'])}"
        + (" — <b>secrets shown</b>" if doc.get("secrets_shown") else "")
        + "</td></tr></table>"
    )
    png = topology_png(doc, cap)
    p.append("<h2>Topology</h2>")
    if png:
        p.append(
            f'<figure><img alt="topology: endpoints and legs" src="data:image/png;base64,{png}">'
            '<figcaption class="muted">nodes: <span style="color:#2e86c1">peer</span>, '
            '<span style="color:#27ae60">signalling server</span>, <span style="color:#e67e22">TURN server'
            '</span>, <span style="color:#f1c40f">STUN server</span>, <span style="color:#8e44ad">media server'
            "</span>; edges: solid encrypted, dashed clear, dotted unknown; red: hosts named by a finding"
            "</figcaption></figure>"
        )
    else:
        p.append('<p class="muted">no endpoints to draw</p>')
    if ov.get("signalling"):
        p.append(
            "<h2>Signalling</h2><table><tr><th>client</th><th>server</th><th>transport</th><th>encryption</th>"
            "<th>messages</th></tr>"
        )
        for s in ov["signalling"]:
            p.append(
                f"<tr><td>{h(s['client'])}</td><td>{h(s['server'])}</td><td>{h('/'.join(s['transports']))}</td>"
                f"<td>{_enc(s['encrypted'])}</td><td>{int(s['messages'])}</td></tr>"
            )
        p.append("</table>")
    if ov.get("media_servers"):
        p.append("<h2>Media servers</h2><table><tr><th>host</th><th>role</th><th>encryption</th></tr>")
        p += [
            f"<tr><td>{h(ms['host'])}</td><td>{h(ms['role'])}</td><td>{h(ms['encryption'])}</td></tr>"
            for ms in ov["media_servers"]
        ]
        p.append("</table>")
    if ov.get("opaque_legs"):
        p.append(
            "<h2>Not examined (could not see into)</h2><ul>"
            + "".join(f"<li>{h(o['why'])}</li>" for o in ov["opaque_legs"])
            + "</ul>"
        )
    p.append("<h2>Findings</h2>")
    if not doc["findings"]:
        p.append("<p>No findings.</p>")
    for f in doc["findings"]:
        p.append(
            f'<div class="finding"><p><span class="sev {h(f["severity"])}">{h(f["severity"])}</span> '
            f"<b>{h(f['id'])} {h(f['slug'])}</b> — {h(f['title'])} "
            f'<span class="muted">(confidence {h(f["confidence"])})</span></p>'
            f"<p>{h(f['message'])}</p><table>"
            f"<tr><th>endpoints</th><td>{h(', '.join(f['endpoints']))}</td></tr>"
            f"<tr><th>frames</th><td>{h(', '.join(str(x) for x in f['frames'][:100]))}</td></tr>"
            f"<tr><th>references</th><td>{h('; '.join(f['references']))}</td></tr>"
            f"<tr><th>identity</th><td><code>{h(f['identity'])}</code></td></tr></table>"
            f"<pre>{h(json.dumps(f['evidence'], indent=2, ensure_ascii=False, sort_keys=True))}</pre></div>"
        )
    p.append("<h2>Streams</h2>")
    if ov.get("streams"):
        cols = sorted({k for s in ov["streams"] for k in s})
        p.append("<table><tr>" + "".join(f"<th>{h(c)}</th>" for c in cols) + "</tr>")
        for s in ov["streams"]:
            p.append("<tr>" + "".join(f"<td>{h(s.get(c))}</td>" for c in cols) + "</tr>")
        p.append("</table>")
    elif ov.get("legs"):
        p.append(
            "<table><tr><th>a</th><th>b</th><th>transport</th><th>classes</th><th>packets</th>"
            "<th>encryption</th></tr>"
        )
        for leg in ov["legs"]:
            p.append(
                f"<tr><td>{h(leg['a'])}</td><td>{h(leg['b'])}</td><td>{h(leg['transport'])}</td>"
                f"<td>{h(', '.join(leg['classes']))}</td><td>{h(leg['packets'])}</td>"
                f"<td>{_enc(leg['encrypted'])}"
                + (f" (hop by hop, to SFU {h(leg['media_server'])})" if leg.get("media_server") else "")
                + "</td></tr>"
            )
        p.append("</table>")
    else:
        p.append('<p class="muted">no media streams seen</p>')
    tl = _timeline(doc)
    p.append("<h2>Timeline</h2>")
    if tl:
        p.append(
            "<table><tr><th>time (UTC)</th><th>event</th></tr>"
            + "".join(f"<tr><td>{h(ts)}</td><td>{h(what)}</td></tr>" for ts, what in tl)
            + "</table>"
        )
    else:
        p.append('<p class="muted">no timed events</p>')
    p.append("<h2>Coverage</h2><table><tr><th>check</th><th>slug</th><th>status</th><th>why</th></tr>")
    for c in doc["coverage"]:
        p.append(
            f"<tr><td>{h(c['id'])}</td><td>{h(c['slug'])}</td><td>{h(c['status'])}</td><td>{h(c['reason'])}</td></tr>"
        )
    p.append("</table>")
    if ov.get("notes"):
        p.append('<p class="muted">' + h("; ".join(ov["notes"])) + "</p>")
    return "\n".join(p)


def render(
    docs: dict[str, Any] | list[dict[str, Any]],
    caps: list[Any] | None = None,
    cross: dict[str, Any] | None = None,
) -> str:
    docs = docs if isinstance(docs, list) else [docs]
    caps = caps or [None] * len(docs)
    title = docs[0]["capture"].get("name", "report") if len(docs) == 1 else f"{len(docs)} captures"
    body = "\n<hr>\n".join(section(d, c) for d, c in zip(docs, caps))
    if cross:
        body += (
            "\n<h2>Across captures</h2><table><tr><th>kind</th><th>value</th><th>captures</th></tr>"
            + "".join(
                f"<tr><td>{h(k)}</td><td>{h(v)}</td><td>{h(', '.join(cs))}</td></tr>"
                for k, items in cross.items()
                for v, cs in items.items()
            )
            + "</table>"
        )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>rtcforensics: {h(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )
