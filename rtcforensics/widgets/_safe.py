"""The one call point where widgets make capture text safe to show.

Everything from a capture (addresses, SDP, user agents, messages) passes through here before it reaches
HTML. The escaping and redaction themselves are ``rtcforensics.report.safe`` (one implementation for the
whole project); this module only adapts it to frames shown as HTML tables.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..report import safe as _impl


def escape(value: Any) -> str:
    """Text for HTML: control characters removed, escaped (quotes too)."""
    return _impl.for_html("" if value is None or value is pd.NA else value)


def redact_frame(df: pd.DataFrame, *, show_secrets: bool = False) -> pd.DataFrame:
    """The frame with secret columns and secrets inside text cells redacted, unless ``show_secrets``."""
    return _impl.redact_frame(df, show_secrets=show_secrets)


def frame_html(df: pd.DataFrame, *, max_rows: int = 200, show_secrets: bool = False) -> str:
    """An escaped HTML table of a frame (first ``max_rows`` rows), secrets redacted unless asked."""
    shown = redact_frame(df.head(max_rows), show_secrets=show_secrets)
    shown = shown.map(_cell)
    table = shown.to_html(escape=True, index=False, border=0, classes="rtcf-table", na_rep="")
    more = f"<p><i>{len(df) - max_rows} more rows not shown</i></p>" if len(df) > max_rows else ""
    return table + more


def grid_cell(v: Any) -> Any:
    """A cell for a DataTables grid: structured values in one line, control characters removed."""
    return _cell(v)


def _cell(v: Any) -> Any:
    # Structured cells in one line; control characters removed before pandas escapes the text.
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (list, tuple, set)):
        v = ", ".join(str(x) for x in v)
    elif isinstance(v, dict):
        v = ", ".join(f"{k}={x}" for k, x in v.items())
    if isinstance(v, str):
        return _impl.for_terminal(v)
    return v


def redact_text(text: Any, *, show_secrets: bool = False) -> str:
    """Free text (a dissection, a label, a message) with the secrets in it redacted unless ``show_secrets``."""
    s = "" if text is None or text is pd.NA else str(text)
    return s if show_secrets else str(_impl.redact(s))


def redact(obj: Any, *, show_secrets: bool = False) -> Any:
    """A structure (dict, list, text) with secret keys and secrets in text redacted unless ``show_secrets``."""
    return _impl.redact(obj, show_secrets=show_secrets)
