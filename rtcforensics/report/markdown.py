"""Markdown report for a ticket. Capture-derived text goes through :func:`safe.for_markdown` (inline) or
:func:`safe.for_markdown_code` (inside fenced blocks): no raw HTML, link or formatting survives."""

from __future__ import annotations

from typing import Any

from .jsonout import input_warnings
from .safe import for_markdown as m
from .safe import for_markdown_code as mc
from .safe import json_inert

ORDER = ("critical", "high", "medium", "low", "info")


def _enc(v: Any) -> str:
    return "encrypted" if v is True else "**clear**" if v is False else "unknown"


def render(doc: dict[str, Any]) -> str:
    cap, ov = doc["capture"], doc["overview"]
    out = [f"# rtcforensics report: {m(cap.get('name') or cap.get('path'))}", ""]
    run = doc.get("run") or {}
    if run.get("complete") is False:
        out += ["> **INCOMPLETE RUN** — these results may miss findings the capture holds:", ">"]
        out += [f"> - {m(r)}" for r in run.get("incomplete_reasons", [])] + [""]
    out.append(f"- tool: rtcforensics {m(doc['tool']['version'])}, generated {m(doc['generated'])}")
    if cap.get("sha256"):
        out.append(f"- capture sha256: `{mc(cap['sha256'])}`")
    if ov.get("period"):
        out.append(
            f"- period: {m(ov['period']['first'])} → {m(ov['period']['last'])} ({ov['period']['packets']} packets)"
        )
    counts = doc["summary"]["findings"]
    out.append("- findings: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ORDER))
    out.append("")
    warnings = [w for w in input_warnings(doc) if not w.startswith("INCOMPLETE RUN: ")]
    if warnings:
        out += ["## Warnings", ""] + [f"- **warning**: {m(w)}" for w in warnings] + [""]
    if ov.get("signalling"):
        out += [
            "## Signalling",
            "",
            "| client | server | transport | encryption | messages |",
            "|---|---|---|---|---|",
        ]
        for s in ov["signalling"]:
            out.append(
                f"| {m(s['client'])} | {m(s['server'])} | {m('/'.join(s['transports']))} | {_enc(s['encrypted'])} "
                f"| {s['messages']} |"
            )
        out.append("")
    if ov.get("media_servers"):
        out += ["## Media servers", "", "| host | role | encryption |", "|---|---|---|"]
        out += [
            f"| {m(ms['host'])} | {m(ms['role'])} | {m(ms['encryption'])} |" for ms in ov["media_servers"]
        ]
        out.append("")
    if ov.get("legs"):
        out += [
            "## Media legs",
            "",
            "| a | b | transport | classes | packets | encryption |",
            "|---|---|---|---|---|---|",
        ]
        for leg in ov["legs"]:
            out.append(
                f"| {m(leg['a'])} | {m(leg['b'])} | {m(leg['transport'])} | {m(', '.join(leg['classes']))} "
                f"| {leg['packets']} | {_enc(leg['encrypted'])}"
                + (f" (hop by hop, to SFU {m(leg['media_server'])})" if leg.get("media_server") else "")
                + " |"
            )
        out.append("")
    if ov.get("opaque_legs"):
        out += (
            ["## Not examined (could not see into)", ""]
            + [f"- {m(o['why'])}" for o in ov["opaque_legs"]]
            + [""]
        )
    out += ["## Findings", ""]
    if not doc["findings"]:
        out += ["No findings.", ""]
    for f in doc["findings"]:
        out.append(f"### {m(f['severity'].upper())} {m(f['id'])} {m(f['slug'])}: {m(f['title'])}")
        out.append("")
        out.append(f"{m(f['message'])}")
        out.append("")
        out.append(f"- confidence: {m(f['confidence'])}")
        out.append(f"- endpoints: {m(', '.join(f['endpoints'])) or '-'}")
        out.append(f"- frames: {m(', '.join(str(x) for x in f['frames'][:50])) or '-'}")
        out.append(f"- references: {m('; '.join(f['references']))}")
        out.append(f"- identity: `{mc(f['identity'])}`")
        out.append("")
        out.append("```json")
        out.append(mc(json_inert(f["evidence"])))
        out.append("```")
        out.append("")
    out += ["## Coverage", "", "| check | slug | status | why |", "|---|---|---|---|"]
    for c in doc["coverage"]:
        out.append(f"| {m(c['id'])} | {m(c['slug'])} | {m(c['status'])} | {m(c['reason'])} |")
    out.append("")
    return "\n".join(out)
