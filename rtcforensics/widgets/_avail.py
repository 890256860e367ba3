"""Frames, the report and the topology graph of a capture, computed once per capture for every view.

A view asks here instead of touching ``cap.<frame>`` directly: a frame whose builder fails comes back as
``None`` with the reason in words, and the view shows that reason instead of failing."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pandas as pd

from ..checks.analyze import Report, analyze
from ..topology import graph as build_graph


def frame(cap: Any, name: str) -> tuple[pd.DataFrame | None, str]:
    """``(frame, "")`` or ``(None, reason)``."""
    if name not in cap.frame_names():
        return None, f"this capture has no {name!r} frame"
    try:
        return cap.get_frame(name), ""
    except Exception as e:
        return None, f"the {name!r} frame could not be built ({type(e).__name__}: {e})"


def report(cap: Any) -> tuple[Report | None, str]:
    """``rtcforensics.analyze(cap)`` once per capture, or ``(None, reason)``."""
    try:
        return cap.cached("widgets.report", lambda: analyze(cap)), ""
    except Exception as e:
        return None, f"analysis failed ({type(e).__name__}: {e})"


def graph(cap: Any) -> tuple[nx.MultiDiGraph | None, str]:
    """``rtcforensics.topology.graph(cap)`` once per capture, or ``(None, reason)``."""
    try:
        return cap.cached("widgets.graph", lambda: build_graph(cap)), ""
    except Exception as e:
        return None, f"the topology graph could not be built ({type(e).__name__}: {e})"


def frame_or_none(cap: Any, name: str) -> pd.DataFrame | None:
    """Frame ``name`` of ``cap``, or None when it could not be built (for notebook glue)."""
    return frame(cap, name)[0]


def report_or_none(cap: Any) -> Report | None:
    """``rtcforensics.analyze(cap)`` (computed once per capture), or None when the analysis failed."""
    return report(cap)[0]
