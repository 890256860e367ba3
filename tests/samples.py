"""Where the test data lives: bundled sample captures, their truth files, third-party captures (absent → skip)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_captures"
REALCAPS = ROOT.parent / "shared" / "realcaps"


def sample_names() -> list[str]:
    """Names of the bundled sample captures that have a truth file."""
    return sorted(p.name[: -len(".truth.json")] for p in SAMPLES.glob("*.truth.json"))


def sample_path(name: str) -> Path:
    for ext in (".pcapng", ".pcap", ".pcapng.gz", ".pcap.gz"):
        p = SAMPLES / f"{name}{ext}"
        if p.exists():
            return p
    pytest.skip(f"sample capture {name!r} not present")
    raise AssertionError  # unreachable


def load_truth(name: str) -> dict[str, Any]:
    p = SAMPLES / f"{name}.truth.json"
    if not p.exists():
        pytest.skip(f"truth file for {name!r} not present")
    return json.loads(p.read_text())
