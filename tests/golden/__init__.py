"""Golden outputs: the JSON and markdown reports of three sample captures, volatile fields masked.

Compared by ``tests/test_golden.py``; refreshed (after a deliberate change of a verdict or a format) by ONE
command from the project root::

    .venv/bin/python -m tests.golden --update

``python -m tests.golden`` alone compares and prints a diff per file that differs (exit 1). Masked: the tool
version, the time of the run (``generated``) and the capture's path (kept: its name and sha256) — what changes
between runs and machines, never what the tool concluded.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SAMPLES = ROOT / "sample_captures"
CASES = ("fingerprint_rewrite", "sdes_plain_rtp", "turn_open_relay")
FORMATS = {"json": ".json", "markdown": ".md"}
UPDATE_COMMAND = ".venv/bin/python -m tests.golden --update"
MASK = {"version": "<version>", "generated": "<generated>", "path": "<path>"}


def capture_path(name: str) -> Path:
    return SAMPLES / f"{name}.pcapng"


def golden_path(name: str, fmt: str) -> Path:
    return HERE / f"{name}{FORMATS[fmt]}"


def mask(doc: dict[str, Any]) -> dict[str, Any]:
    """The report document with its volatile fields replaced by placeholders."""
    out = dict(doc)
    out["tool"] = {**doc["tool"], "version": MASK["version"]}
    out["generated"] = MASK["generated"]
    cap = dict(doc["capture"])
    cap["path"] = f"{MASK['path']}/{cap.get('name') or Path(str(cap.get('path'))).name}"
    out["capture"] = cap
    return out


_ROOT_TEXT = re.compile(re.escape(str(ROOT)) + r"/?")


def render(name: str) -> dict[str, str]:
    """{format: text} of the reports of sample ``name`` as ``rtcforensics analyze CAPTURE --format F`` makes
    them (no keylog, no side files, default parameters), masked."""
    from rtcforensics.cli import analyze_one
    from rtcforensics.report import jsonout, markdown

    doc = mask(analyze_one(str(capture_path(name)), None, None, {}, False))
    texts = {"json": jsonout.render(doc), "markdown": markdown.render(doc)}
    return {fmt: _ROOT_TEXT.sub("<root>/", t) for fmt, t in texts.items()}


def diff(name: str, fmt: str, got: str) -> str:
    """A unified diff (at most 80 lines) of the golden file against ``got``; empty when equal."""
    path = golden_path(name, fmt)
    want = path.read_text(encoding="utf-8") if path.exists() else ""
    if want == got:
        return ""
    lines = list(
        difflib.unified_diff(
            want.splitlines(), got.splitlines(), f"golden/{path.name}", "now", lineterm="", n=2
        )
    )
    more = f"\n… {len(lines) - 80} more diff lines" if len(lines) > 80 else ""
    return "\n".join(lines[:80]) + more


def update(names: tuple[str, ...] = CASES) -> list[Path]:
    written = []
    for name in names:
        for fmt, text in render(name).items():
            p = golden_path(name, fmt)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(p)
            written.append(p)
    return written
