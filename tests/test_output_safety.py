"""Hostile strings from a capture come out inert in every output.

The capture is sample_captures/hostile_strings.pcapng (lab/scenarios/hostile.py): real aiortc/aioice/aiohttp
peers put ``<script>alert(1)</script>``, ``"><img src=x onerror=alert(1)>`` and terminal escape sequences
(``ESC[31m``, ``ESC]0;title BEL``) into the SDP session name, ICE candidate foundations, STUN SOFTWARE, the
HTTP User-Agent and WebSocket JSON fields. Checked: the HTML report, markdown (also rendered to HTML by a
Markdown renderer that passes inline HTML through), SARIF and JSON (valid, and safe to embed in a page), the
terminal table and summary (no escape sequences), DataFrame HTML displays and the widgets.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAP = ROOT / "sample_captures" / "hostile_strings.pcapng"
TRUTH = ROOT / "sample_captures" / "hostile_strings.truth.json"

pytestmark = pytest.mark.skipif(not CAP.exists(), reason="hostile_strings capture not generated")

TERMINAL_CONTROLS = ("\x1b", "\x07", "\x9b", "\x9d")  # ESC, BEL, 8-bit CSI, 8-bit OSC


@pytest.fixture(scope="module")
def hostile() -> dict[str, Any]:
    return json.loads(TRUTH.read_text())["hostile"]


@pytest.fixture(scope="module")
def cap() -> Any:
    """The capture loaded once through the API (its frames are built once, then read by each test)."""
    import rtcforensics

    return rtcforensics.load(CAP)


class _Inspector(HTMLParser):
    """Collects what a browser would make live: elements, event-handler attributes, script text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and any(k == "src" and v == "x" for k, v in attrs):
            self.live.append("<img src=x> element")
        for k, v in attrs:
            if k.startswith("on") and "alert" in (v or ""):
                self.live.append(f"{tag} {k}={v!r}")
            if k in ("href", "src") and (v or "").strip().lower().startswith("javascript:"):
                self.live.append(f"{tag} {k}={v!r}")
        # a <script> whose type is not JavaScript is a data block, never run (HTML spec, "data block"):
        # the JSON report embedded in <script type="application/json"> is data, its text is not script text
        js = dict(attrs).get("type") in (None, "", "text/javascript", "module", "application/javascript")
        if tag == "script" and js:
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and "alert(1)" in data:
            self.live.append(f"script text {data[:80]!r}")


def live_markup(html_text: str) -> list[str]:
    p = _Inspector()
    p.feed(html_text)
    p.close()
    return p.live


def test_inspector_sees_live_markup(hostile: dict[str, Any]) -> None:
    # the checker is not blind: the raw strings ARE live markup
    raw = "<p>" + hostile["session_name"] + "</p>"
    found = live_markup(raw)
    assert any("script text" in f for f in found) and any("onerror" in f for f in found)


def test_hostile_strings_reach_the_frames(hostile: dict[str, Any], cap: Any) -> None:
    """The parsers keep the strings as sent (a forensic tool must not lose them): so the output checks
    below are not vacuous."""
    assert hostile["session_name"] in set(cap.get_frame("sdp")["session_name"].dropna())
    assert set(hostile["foundations"].values()) <= set(cap.get_frame("candidates")["foundation"].dropna())
    assert hostile["stun_software"] in set(cap.get_frame("stun")["software"].dropna())
    assert hostile["user_agent"] in set(cap.get_frame("signalling")["user_agent"].dropna())


@pytest.fixture(scope="module")
def outputs(cli_series, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every CLI format of the capture, and its summary: six command lines in one process (the five formats
    share one analysis, ``conftest.cli_series``)."""
    d = tmp_path_factory.mktemp("hostile_out")
    formats = ("html", "markdown", "sarif", "json", "table")
    runs = [
        ["analyze", str(CAP), "--format", fmt, "-o", str(d / fmt), "--fail-on", "none"] for fmt in formats
    ]
    results = cli_series(runs + [["summary", str(CAP)]], timeout=300)
    for argv, (code, _, err, _) in zip(runs + [["summary"]], results):
        assert code in (0, 1), f"{argv}: exit {code}\n{err[-2000:]}"
        assert "Traceback" not in err
    out = {fmt: (d / fmt).read_text(encoding="utf-8") for fmt in formats}
    out["summary"] = results[-1][1]
    return out


def test_html_report_is_inert(outputs: dict[str, str]) -> None:
    text = outputs["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, "the hostile string did not reach the report"
    assert not live_markup(text)
    assert not [c for c in TERMINAL_CONTROLS if c in text]


def test_markdown_is_inert(outputs: dict[str, str]) -> None:
    import mistune

    text = outputs["markdown"]
    assert "alert(1)" in text, "the hostile string did not reach the report"
    assert not [c for c in TERMINAL_CONTROLS if c in text]
    # as a Markdown viewer that passes inline HTML would show it
    rendered = mistune.create_markdown(escape=False)(text)
    assert not live_markup(rendered), live_markup(rendered)


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_json_and_sarif_are_valid_and_safe_to_embed(
    outputs: dict[str, str], hostile: dict[str, Any], fmt: str
) -> None:
    text = outputs[fmt]
    doc = json.loads(text)
    flat = json.dumps(doc, ensure_ascii=False)
    assert "alert(1)" in flat, "the hostile string did not reach the report"
    # JSON escapes control characters itself; markup must be escaped too (\u003c), so that the document
    # can sit inside <script type="application/json"> or be shown by a viewer without breaking out
    assert "</script" not in text.lower() and "<img" not in text.lower() and "<script" not in text.lower()
    page = f'<script type="application/json">{text}</script>'
    assert not live_markup(page)


def test_terminal_outputs_have_no_escape_sequences(outputs: dict[str, str]) -> None:
    for fmt in ("table", "summary"):
        text = outputs[fmt]
        assert not [c for c in TERMINAL_CONTROLS if c in text], fmt
    assert "alert(1)" in outputs["table"], "the hostile string did not reach the terminal table"


def test_dataframe_html_displays_are_inert(cap: Any) -> None:
    from rtcforensics.widgets import _safe

    problems = {}
    for name in cap.frame_names():
        df = cap.get_frame(name)
        for how, html_text in (
            ("_repr_html_", df._repr_html_() or ""),
            ("to_html", df.to_html()),
            ("widgets frame_html", _safe.frame_html(df)),
        ):
            live = live_markup(html_text)
            if live:
                problems[f"{name} {how}"] = live
        ctl = [c for c in TERMINAL_CONTROLS if c in _safe.frame_html(df)]
        if ctl:
            problems[f"{name} widgets frame_html controls"] = ctl
    assert not problems, problems


def _widget_html(w: Any, seen: set[int] | None = None) -> list[str]:
    """HTML-bearing values of a widget tree (HTML/HTMLMath values, Output widgets' HTML outputs, static views'
    ``_repr_html_``)."""
    seen = seen if seen is not None else set()
    if id(w) in seen:
        return []
    seen.add(id(w))
    out = []
    if type(w).__name__ in ("HTML", "HTMLMath") and isinstance(getattr(w, "value", None), str):
        out.append(w.value)
    if hasattr(w, "_repr_html_") and not hasattr(w, "children"):  # static views (saved-notebook fallbacks)
        html = w._repr_html_()
        if isinstance(html, str):
            out.append(html)
    for part in ("static", "view"):  # a live widget with its static twin
        sub = getattr(w, part, None)
        if sub is not None and sub is not w and not isinstance(sub, (str, bytes)):
            out += _widget_html(sub, seen)
    for o in getattr(w, "outputs", ()) or ():
        data = o.get("data", {}) if isinstance(o, dict) else {}
        if "text/html" in data:
            out.append(data["text/html"])
    for c in getattr(w, "children", ()) or ():
        out += _widget_html(c, seen)
    return out


def test_widgets_are_inert(cap: Any) -> None:
    pytest.importorskip("ipywidgets")
    from rtcforensics import widgets

    built = {
        "explorer": widgets.explorer([CAP]),
        "summary": widgets.summary(cap),
        "findings": widgets.findings_widget(cap),
    }
    for name in ("sdp", "candidates", "stun", "signalling"):
        built[f"table {name}"] = widgets.table(cap.get_frame(name))
    problems = {}
    reached = False
    for name, w in built.items():
        for h in _widget_html(w):
            reached |= "alert(1)" in h
            live = live_markup(h)
            ctl = [c for c in TERMINAL_CONTROLS if c in h]
            if live or ctl:
                problems[name] = live + ctl
    assert reached, "no widget showed the hostile strings (the check would be vacuous)"
    assert not problems, problems
