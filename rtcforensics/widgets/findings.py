"""The findings table: filter by severity, pick a row, see its evidence and drill down to a frame's full
Wireshark dissection (``cap.frame(n)``)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from . import _avail, _safe
from .select import SEVERITIES, _as_list, filter_findings, finding_frames, finding_label, findings_frame

TABLE_COLUMNS = ("severity", "confidence", "slug", "title", "endpoints", "flow_id", "frames")


def findings_table(findings: Any, *, min_severity: Any = None) -> pd.DataFrame:
    """The rows the table shows (severity-ordered), with frames shortened for display."""
    df = filter_findings(findings_frame(findings), min_severity=min_severity)
    out = df[list(TABLE_COLUMNS)].copy()
    out["frames"] = [_short(finding_frames(r)) for _, r in df.iterrows()]
    out["flow_id"] = pd.array([None if pd.isna(v) else int(v) for v in out["flow_id"]], dtype="Int64")
    out["endpoints"] = [", ".join(map(str, _as_list(v))) for v in out["endpoints"]]
    return out


def _short(frames: list[int], n: int = 8) -> str:
    return ", ".join(map(str, frames[:n])) + (f" … (+{len(frames) - n})" if len(frames) > n else "")


def dissection_text(cap: Any, number: int, *, show_secrets: bool = False) -> str:
    """Frame ``number``'s dissection as plain text (unescaped; secrets redacted unless ``show_secrets``), or
    why it is not available."""
    return _safe.redact_text(_dissection(cap, number), show_secrets=show_secrets)


def _dissection(cap: Any, number: int) -> str:
    if not hasattr(cap, "frame"):
        return "frame drill-down is not available for this object"
    try:
        tree = cap.frame(int(number))
    except ModuleNotFoundError as e:
        return f"frame drill-down is not available yet ({e.name} missing)"
    except Exception as e:
        return f"frame {number} could not be dissected: {type(e).__name__}: {e}"
    if isinstance(tree, (dict, list)):
        return json.dumps(tree, indent=1, default=str)
    for attr in ("text", "pretty", "show_text"):
        v = getattr(tree, attr, None)
        if isinstance(v, str):
            return v
    return str(tree)


def detail_html(finding: pd.Series | dict[str, Any], *, show_secrets: bool = False) -> str:
    """One finding's record as escaped HTML (message, endpoints, frames, evidence, references)."""
    ev = finding.get("evidence") or {}
    if not isinstance(ev, dict):
        ev = {"evidence": ev}
    ev = _safe.redact(ev, show_secrets=show_secrets)  # by key (crypto_keys_secret, ...) and by value
    ev_df = pd.DataFrame({"key": list(ev.keys()), "value": [_evidence_text(v) for v in ev.values()]})
    refs = _as_list(finding.get("references"))
    parts = [
        f"<h4>{_safe.escape(_safe.redact_text(finding_label(finding), show_secrets=show_secrets))}</h4>",
        f"<p>{_safe.escape(_safe.redact_text(finding.get('message') or '', show_secrets=show_secrets))}</p>",
        (
            f"<p><b>check</b> {_safe.escape(finding.get('id'))} ({_safe.escape(finding.get('slug'))}), "
            f"<b>confidence</b> {_safe.escape(finding.get('confidence'))}</p>"
        ),
        f"<p><b>frames</b> {_safe.escape(_short(finding_frames(finding), 30) or 'none')}</p>",
    ]
    if len(ev_df):
        parts.append(_safe.frame_html(ev_df, show_secrets=show_secrets))
    if refs:
        parts.append(f"<p><b>references</b> {_safe.escape('; '.join(map(str, refs)))}</p>")
    return "".join(parts)


def severity_coloured(html: str) -> str:
    """A findings table's severity cells (its first column) in their severity colour (the table is already
    escaped HTML)."""
    import re

    from .timeline import SEVERITY_COLOURS

    def paint(m: re.Match[str]) -> str:
        colour = SEVERITY_COLOURS[m.group(2)]
        return f"{m.group(1)}<td style='color:white;background:{colour};font-weight:bold'>{m.group(2)}</td>"

    return re.sub(r"(<tr>\s*)<td>(" + "|".join(SEVERITY_COLOURS) + r")</td>", paint, html)


def _evidence_text(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def findings_widget(cap: Any, findings: Any = None, *, show_secrets: bool = False) -> Any:
    """Severity filter, the table, a row picker; the picked finding's detail and a frame drill-down."""
    import ipywidgets as w

    from ._static import LiveBox

    if findings is None:
        findings, why = _avail.report(cap)
        if findings is None:
            return w.HTML(f"<p class='rtcf-missing'>Findings: {_safe.escape(why)}</p>")
    all_f = findings_frame(findings)
    sev = w.Dropdown(options=["any"] + list(SEVERITIES), value="any", description="Severity ≥")
    table = w.HTML()
    rows = w.Select(options=[], rows=6, description="Finding", layout=w.Layout(width="95%"))
    detail = w.HTML()
    frame_pick = w.Dropdown(options=[], description="Frame")
    go = w.Button(description="Dissect frame", icon="search")
    tree = w.HTML()
    state: dict[str, pd.DataFrame] = {}

    def refresh(_: Any = None) -> None:
        df = filter_findings(all_f, min_severity=None if sev.value == "any" else sev.value)
        state["df"] = df
        t = findings_table(df)
        table.value = (
            severity_coloured(_safe.frame_html(t, show_secrets=show_secrets))
            if len(t)
            else "<p>No findings at this severity.</p>"
        )
        rows.options = [
            (_safe.redact_text(finding_label(r), show_secrets=show_secrets), i) for i, r in df.iterrows()
        ]
        rows.value = 0 if len(df) else None
        pick()

    def pick(_: Any = None) -> None:
        df = state.get("df")
        if df is None or rows.value is None or rows.value >= len(df):
            detail.value = ""
            frame_pick.options = []
            return
        f = df.loc[rows.value]
        detail.value = detail_html(f, show_secrets=show_secrets)
        frames = finding_frames(f)[:200]
        frame_pick.options = frames
        frame_pick.value = frames[0] if frames else None
        tree.value = ""
        box.refresh_static()

    def dissect(_: Any = None) -> None:
        if frame_pick.value is None:
            tree.value = "<p>This finding cites no frame.</p>"
            return
        text = dissection_text(cap, frame_pick.value, show_secrets=show_secrets)
        tree.value = f"<pre class='rtcf-tree'>{_safe.escape(text)}</pre>"
        box.refresh_static()

    box = LiveBox(
        [sev, table, rows, detail, w.HBox([frame_pick, go]), tree],
        static=lambda: "".join(
            (f"<p><b>Severity ≥</b> {_safe.escape(sev.value)}</p>", table.value, detail.value, tree.value)
        ),
    )
    box.add_class("rtcf-findings")
    sev.observe(refresh, names="value")
    rows.observe(pick, names="value")
    go.on_click(dissect)
    refresh()
    return box
