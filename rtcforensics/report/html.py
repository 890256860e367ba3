"""Self-contained HTML report: one file, no network (inline CSS, a Content-Security-Policy that forbids
scripts and remote loads, the topology figure as an inline PNG). Every capture-derived string goes through
:func:`safe.for_html`."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

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
margin:.8em 0;border-radius:4px}.muted{color:#777}figure{margin:0}img{max-width:100%}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _enc(v: Any) -> str:
    return "encrypted" if v is True else '<span class="clear">clear</span>' if v is False else "unknown"


def topology_png(doc: dict[str, Any], cap: Any = None) -> str | None:
    """The topology as a base64 PNG: ``rtcforensics.topology.graph(cap)`` when the package has it, else the
    overview's endpoints and legs. Nodes: endpoints (servers and relays coloured); edges: solid =
    encrypted, dashed = clear or unknown; red = a finding names both ends."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        import networkx as nx
    except ImportError:
        return None
    g = None
    if cap is not None:
        try:
            from ..topology import graph  # type: ignore[attr-defined]

            g = nx.Graph(graph(cap))
        except Exception:  # topology not in this build, or failed: fall back to the overview
            g = None
    ov = doc["overview"]
    flagged = {tuple(sorted(f["endpoints"][:2])) for f in doc["findings"] if len(f["endpoints"]) >= 2}
    if g is None:
        g = nx.Graph()
        for leg in ov.get("legs", [])[:60]:
            g.add_edge(leg["a"], leg["b"], encrypted=leg.get("encrypted"), kind="media")
        for s in ov.get("signalling", []):
            g.add_edge(str(s["client"]), str(s["server"]), encrypted=s.get("encrypted"), kind="signalling")
        for r in ov.get("relays", []):
            g.add_edge(r["client"], r["server"], encrypted=None, kind="turn")
    if g.number_of_nodes() == 0:
        return None
    servers = {s["server"] for s in ov.get("signalling", [])} | {r["server"] for r in ov.get("relays", [])}
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=90)
    pos = nx.spring_layout(g, seed=7)
    colours = ["#e67e22" if n in servers else "#2e86c1" for n in g.nodes]
    nx.draw_networkx_nodes(g, pos, node_color=colours, node_size=260, ax=ax)
    for style, enc in (("solid", True), ("dashed", False)):
        edges = [(u, v) for u, v, d in g.edges(data=True) if bool(d.get("encrypted")) is enc]
        ecol = ["#c0392b" if tuple(sorted((str(u), str(v)))) in flagged else "#555" for u, v in edges]
        nx.draw_networkx_edges(g, pos, edgelist=edges, style=style, edge_color=ecol, ax=ax)
    nx.draw_networkx_labels(g, pos, labels={n: str(n)[:40] for n in g.nodes}, font_size=7, ax=ax)
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
    p.append("<table><tr><th>capture</th><td>" + h(cap_info.get("path")) + "</td></tr>")
    if cap_info.get("sha256"):
        p.append(f"<tr><th>sha256</th><td><code>{h(cap_info['sha256'])}</code></td></tr>")
    if ov.get("period"):
        p.append(f"<tr><th>period</th><td>{h(ov['period']['first'])} → {h(ov['period']['last'])} "
                 f"({int(ov['period']['packets'])} packets)</td></tr>")
    p.append("<tr><th>findings</th><td>" + " ".join(
        f'<span class="sev {s}">{counts.get(s, 0)} {s}</span>' for s in ORDER) + "</td></tr>")
    p.append(f"<tr><th>tool</th><td>rtcforensics {h(doc['tool']['version'])}, generated {h(doc['generated'])}"
             + (" — <b>secrets shown</b>" if doc.get("secrets_shown") else "") + "</td></tr></table>")
    png = topology_png(doc, cap)
    p.append("<h2>Topology</h2>")
    if png:
        p.append(f'<figure><img alt="topology: endpoints and legs" src="data:image/png;base64,{png}">'
                 '<figcaption class="muted">orange: servers/relays; solid: encrypted, dashed: clear or unknown; '
                 'red: named by a finding</figcaption></figure>')
    else:
        p.append('<p class="muted">no endpoints to draw</p>')
    if ov.get("signalling"):
        p.append("<h2>Signalling</h2><table><tr><th>client</th><th>server</th><th>transport</th><th>encryption</th>"
                 "<th>messages</th></tr>")
        for s in ov["signalling"]:
            p.append(f"<tr><td>{h(s['client'])}</td><td>{h(s['server'])}</td><td>{h('/'.join(s['transports']))}</td>"
                     f"<td>{_enc(s['encrypted'])}</td><td>{int(s['messages'])}</td></tr>")
        p.append("</table>")
    p.append("<h2>Findings</h2>")
    if not doc["findings"]:
        p.append("<p>No findings.</p>")
    for f in doc["findings"]:
        p.append(f'<div class="finding"><p><span class="sev {h(f["severity"])}">{h(f["severity"])}</span> '
                 f"<b>{h(f['id'])} {h(f['slug'])}</b> — {h(f['title'])} "
                 f'<span class="muted">(confidence {h(f["confidence"])})</span></p>'
                 f"<p>{h(f['message'])}</p><table>"
                 f"<tr><th>endpoints</th><td>{h(', '.join(f['endpoints']))}</td></tr>"
                 f"<tr><th>frames</th><td>{h(', '.join(str(x) for x in f['frames'][:100]))}</td></tr>"
                 f"<tr><th>references</th><td>{h('; '.join(f['references']))}</td></tr>"
                 f"<tr><th>identity</th><td><code>{h(f['identity'])}</code></td></tr></table>"
                 f"<pre>{h(json.dumps(f['evidence'], indent=2, ensure_ascii=False, sort_keys=True))}</pre></div>")
    p.append("<h2>Streams</h2>")
    if ov.get("streams"):
        cols = sorted({k for s in ov["streams"] for k in s})
        p.append("<table><tr>" + "".join(f"<th>{h(c)}</th>" for c in cols) + "</tr>")
        for s in ov["streams"]:
            p.append("<tr>" + "".join(f"<td>{h(s.get(c))}</td>" for c in cols) + "</tr>")
        p.append("</table>")
    elif ov.get("legs"):
        p.append("<table><tr><th>a</th><th>b</th><th>transport</th><th>classes</th><th>packets</th>"
                 "<th>encryption</th></tr>")
        for leg in ov["legs"]:
            p.append(f"<tr><td>{h(leg['a'])}</td><td>{h(leg['b'])}</td><td>{h(leg['transport'])}</td>"
                     f"<td>{h(', '.join(leg['classes']))}</td><td>{h(leg['packets'])}</td>"
                     f"<td>{_enc(leg['encrypted'])}</td></tr>")
        p.append("</table>")
    else:
        p.append('<p class="muted">no media streams seen</p>')
    tl = _timeline(doc)
    p.append("<h2>Timeline</h2>")
    if tl:
        p.append("<table><tr><th>time (UTC)</th><th>event</th></tr>"
                 + "".join(f"<tr><td>{h(ts)}</td><td>{h(what)}</td></tr>" for ts, what in tl) + "</table>")
    else:
        p.append('<p class="muted">no timed events</p>')
    p.append("<h2>Coverage</h2><table><tr><th>check</th><th>slug</th><th>status</th><th>why</th></tr>")
    for c in doc["coverage"]:
        p.append(f"<tr><td>{h(c['id'])}</td><td>{h(c['slug'])}</td><td>{h(c['status'])}</td><td>{h(c['reason'])}</td></tr>")
    p.append("</table>")
    if ov.get("notes"):
        p.append('<p class="muted">' + h("; ".join(ov["notes"])) + "</p>")
    return "\n".join(p)


def render(docs: dict[str, Any] | list[dict[str, Any]], caps: list[Any] | None = None,
           cross: dict[str, Any] | None = None) -> str:
    docs = docs if isinstance(docs, list) else [docs]
    caps = caps or [None] * len(docs)
    title = docs[0]["capture"].get("name", "report") if len(docs) == 1 else f"{len(docs)} captures"
    body = "\n<hr>\n".join(section(d, c) for d, c in zip(docs, caps))
    if cross:
        body += "\n<h2>Across captures</h2><table><tr><th>kind</th><th>value</th><th>captures</th></tr>" + "".join(
            f"<tr><td>{h(k)}</td><td>{h(v)}</td><td>{h(', '.join(cs))}</td></tr>"
            for k, items in cross.items() for v, cs in items.items()) + "</table>"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>rtcforensics: {h(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")
