"""The fleet report of a case as HTML and SARIF (the JSON and terminal table live beside ``fleet_report`` in
:mod:`.correlate`).

Both render the document ``fleet_report`` returns (already redacted unless ``--show-secrets``) with the
single-capture reports' pieces: HTML through ``report.safe.for_html`` with ``report.html``'s style sheet and
Content-Security-Policy (one self-contained file, no script, no remote load); SARIF 2.1.0 with
``report.sarif``'s levels and security severities, one run whose rules are the case checks, whose artifacts
are the case's captures, and one result per cross-capture finding (``ruleId`` = the check ID as in the
single-capture SARIF, the slug as the rule's ``name`` and the result's ``properties.slug``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..report import sarif
from ..report.html import CSP, CSS, ORDER
from ..report.safe import for_html as h
from .correlate import CASE_CHECKS, render_json, render_table

CAPTURE_COLUMNS = ("name", "status", "packets", "first_ts", "last_ts", "sha256", "path", "error")


def _sev_spans(counts: Mapping[str, int]) -> str:
    return " ".join(f'<span class="sev {s}">{int(counts.get(s, 0))} {s}</span>' for s in ORDER)


def _finding_html(f: Mapping[str, Any]) -> str:
    return (
        f'<div class="finding"><p><span class="sev {h(f["severity"])}">{h(f["severity"])}</span> '
        f"<b>{h(f['id'])} {h(f['slug'])}</b> — {h(f['title'])} "
        f'<span class="muted">(confidence {h(f["confidence"])})</span></p>'
        f"<p>{h(f['message'])}</p><table>"
        f"<tr><th>hosts</th><td>{h(', '.join(f['endpoints']))}</td></tr>"
        f"<tr><th>captures</th><td>{h(', '.join(str(c) for c in f['evidence'].get('captures') or []))}</td></tr>"
        f"<tr><th>frames</th><td>{h(', '.join(str(x) for x in f['frames'][:100]))}</td></tr>"
        f"<tr><th>references</th><td>{h('; '.join(f['references']))}</td></tr>"
        f"<tr><th>identity</th><td><code>{h(f['identity'])}</code></td></tr></table>"
        f"<pre>{h(json.dumps(f['evidence'], indent=2, ensure_ascii=False, sort_keys=True))}</pre></div>"
    )


def render_html(doc: Mapping[str, Any]) -> str:
    """The fleet document as one self-contained HTML page: summary, cross-capture findings, per-check totals
    over the captures, the per-capture table and the case checks' coverage."""
    case, summary = doc["case"], doc["summary"]
    p = [f"<h1>rtcforensics fleet report: case {h(case['path'])}</h1>"]
    reasons = doc["run"]["incomplete_reasons"]
    if reasons:
        p.append(
            '<div class="warning"><h2>Incomplete run</h2><p>these results may miss findings the captures hold'
            "</p><ul>" + "".join(f"<li>{h(r)}</li>" for r in reasons) + "</ul></div>"
        )
    p.append(
        f"<table><tr><th>case</th><td>{h(case['path'])}</td></tr>"
        f"<tr><th>captures</th><td>{int(case['captures'])} ({int(case['ok'])} ok, {int(case['failed'])} failed), "
        f"{int(case['packets'])} packets</td></tr>"
        f"<tr><th>period</th><td>{h(case['period']['first'])} → {h(case['period']['last'])}</td></tr>"
        f"<tr><th>per-capture findings</th><td>{_sev_spans(summary['findings'])}</td></tr>"
        f"<tr><th>cross-capture findings</th><td>{_sev_spans(summary['case_findings'])}</td></tr>"
        f"<tr><th>tool</th><td>rtcforensics {h(doc['tool']['version'])}, generated {h(doc['generated'])}"
        + (" — <b>secrets shown</b>" if doc.get("secrets_shown") else "")
        + "</td></tr></table>"
    )
    p.append('<h2 id="case-findings">Cross-capture findings</h2>')
    if not doc["case_findings"]:
        p.append("<p>No cross-capture findings.</p>")
    p += [_finding_html(f) for f in doc["case_findings"]]
    p.append('<h2 id="by-check">Per-capture findings by check</h2>')
    if summary["by_slug"]:
        p.append("<table><tr><th>check</th><th>severity</th><th>findings</th><th>captures</th></tr>")
        p += [
            f"<tr><td>{h(r['slug'])}</td><td>{h(r['severity'])}</td><td>{int(r['findings'])}</td>"
            f"<td>{int(r['captures'])}</td></tr>"
            for r in summary["by_slug"]
        ]
        p.append("</table>")
    else:
        p.append('<p class="muted">no per-capture findings</p>')
    p.append('<h2 id="captures">Captures</h2><table id="capture-table"><tr>')
    p.append("".join(f"<th>{h(c)}</th>" for c in CAPTURE_COLUMNS) + "".join(f"<th>{s}</th>" for s in ORDER))
    p.append("</tr>")
    for c in doc["captures"]:
        p.append(
            "<tr>"
            + "".join(f"<td>{h('' if c.get(k) is None else c.get(k))}</td>" for k in CAPTURE_COLUMNS)
            + "".join(f"<td>{int(c['findings'].get(s, 0))}</td>" for s in ORDER)
            + "</tr>"
        )
    p.append("</table>")
    p.append(
        '<h2 id="coverage">Case checks</h2><table><tr><th>check</th><th>slug</th><th>status</th><th>why</th></tr>'
    )
    p += [
        f"<tr><td>{h(c['id'])}</td><td>{h(c['slug'])}</td><td>{h(c['status'])}</td><td>{h(c['reason'])}</td></tr>"
        for c in doc["case_coverage"]
    ]
    p.append("</table>")
    body = "\n".join(p)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>rtcforensics fleet: {h(case['path'])}</title><style>{CSS}</style></head><body>\n{body}\n"
        "</body></html>\n"
    )


def case_rules() -> list[dict[str, Any]]:
    """SARIF rules of the case checks (the single-capture rules' shape, with their parameters' defaults)."""
    return [sarif.rule(c, parameters=True) for c in CASE_CHECKS.values()]


def render_sarif(doc: Mapping[str, Any]) -> str:
    """The fleet document as a SARIF 2.1.0 log: one run, one result per cross-capture finding, located in
    the captures it names (and at its frames when it names one capture)."""
    rules = case_rules()
    index = {r["id"]: i for i, r in enumerate(rules)}
    artifacts: list[dict[str, Any]] = []
    by_name: dict[str, int] = {}
    for c in doc["captures"]:
        uri = Path(str(c.get("path") or c.get("name") or "capture")).as_posix()
        by_name.setdefault(str(c.get("name")), len(artifacts))
        artifacts.append(sarif.artifact(uri, c.get("sha256")))
    results = []
    for f in doc["case_findings"]:
        caps = [str(x) for x in f["evidence"].get("captures") or []]
        frames = f["frames"] if len(caps) == 1 else ()
        locs = [
            sarif.location(artifacts[by_name[n]]["location"]["uri"], by_name[n], frames)
            for n in caps
            if n in by_name
        ]
        results.append(sarif.result(f, locs, index[f["id"]]))
    run = sarif.run(
        rules,
        artifacts,
        results,
        successful=bool(doc["run"]["complete"]),
        problems=[{"level": "warning", "message": {"text": r}} for r in doc["run"]["incomplete_reasons"]],
        not_seen=sarif.coverage_notes(doc["case_coverage"], index),
    )
    run["properties"] = {"case": doc["case"]["path"], "summary": doc["summary"]}
    return sarif.log([run])


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "table": render_table,
    "json": render_json,
    "html": render_html,
    "sarif": render_sarif,
}
FORMATS = tuple(RENDERERS)
