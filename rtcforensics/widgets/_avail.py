"""Getting frames, the report and the topology graph from a capture when some parts may not exist yet.

A widget asks here instead of touching ``cap.<frame>`` directly; what is missing comes back as ``None``
with a reason in words, and the widget shows that reason instead of failing."""

from __future__ import annotations

from typing import Any

import pandas as pd


def frame(cap: Any, name: str) -> tuple[pd.DataFrame | None, str]:
    """``(frame, "")`` or ``(None, reason)``."""
    try:
        names = cap.frame_names()
    except Exception as e:  # noqa: BLE001
        return None, f"frames not available ({type(e).__name__}: {e})"
    if name not in names:
        return None, f"the {name!r} frame is not available yet"
    try:
        return cap.get_frame(name), ""
    except Exception as e:  # noqa: BLE001 - a builder that fails must not take the widget down
        return None, f"the {name!r} frame could not be built ({type(e).__name__}: {e})"


def report(cap: Any) -> tuple[Any | None, str]:
    """``rtcforensics.analyze(cap)`` once per capture, or ``(None, reason)``."""
    try:
        from ..checks.analyze import analyze
    except Exception as e:  # noqa: BLE001
        return None, f"the checks (rtcforensics.analyze) are not available yet ({type(e).__name__}: {e})"
    try:
        if hasattr(cap, "cached"):
            return cap.cached("widgets.report", lambda: analyze(cap)), ""
        return analyze(cap), ""
    except Exception as e:  # noqa: BLE001
        return None, f"analysis failed ({type(e).__name__}: {e})"


def graph(cap: Any) -> tuple[Any | None, str]:
    """``rtcforensics.topology.graph(cap)``, or ``(None, reason)``."""
    try:
        from ..topology import graph as build
    except Exception as e:  # noqa: BLE001
        return None, f"the topology graph (rtcforensics.topology) is not available yet ({type(e).__name__})"
    try:
        if hasattr(cap, "cached"):
            return cap.cached("widgets.graph", lambda: build(cap)), ""
        return build(cap), ""
    except Exception as e:  # noqa: BLE001
        return None, f"the topology graph could not be built ({type(e).__name__}: {e})"


def frame_or_none(cap: Any, name: str) -> pd.DataFrame | None:
    """Frame ``name`` of ``cap``, or None when it is not available (for notebook glue)."""
    return frame(cap, name)[0]


def report_or_none(cap: Any) -> Any | None:
    """``rtcforensics.analyze(cap)`` (computed once per capture), or None when the checks are not available."""
    return report(cap)[0]
