"""Everything that makes capture-derived text safe to show, in ONE place.

- :func:`redact` — secrets (ICE passwords, TURN passwords/credentials, SDES inline keys, tokens, cookies,
  Authorization values) replaced by ``<redacted>`` in any nested structure, unless ``show_secrets``.
- :func:`for_terminal` — ANSI/VT escape sequences and other control characters removed.
- :func:`for_html` — HTML-escaped (text and attribute values).
- :func:`for_markdown` — Markdown and inline HTML neutralised, table pipes and newlines escaped.
- :func:`redact_frame` — the same redaction for a pandas frame about to be exported.

Every renderer passes capture-derived strings through these and nothing else.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

REDACTED = "<redacted>"

# Keys whose values are secrets wherever they appear in a structure.
SECRET_KEY = re.compile(r"(_secret$|^secret$|password|passwd|^pwd$|ice_pwd$|credential$|^token$|_token$|cookie|"
                        r"^authorization$|^inline$|crypto_keys)", re.IGNORECASE)

# Secrets embedded in free text (SDP lines, headers, URLs, JSON). Group 1 is kept, group 2 is redacted.
_TEXT_PATTERNS = [
    re.compile(r"(inline:)([A-Za-z0-9+/=]{16,})"),  # SDES a=crypto key||salt
    re.compile(r"(a=ice-pwd:)(\S+)"),
    re.compile(r"((?:^|[\r\n])\s*(?:Authorization|Proxy-Authorization|Cookie|Set-Cookie)\s*:\s*)([^\r\n]+)", re.IGNORECASE),
    re.compile(r"((?:Bearer|Basic|Digest)\s+)([A-Za-z0-9._~+/=-]{6,}[^\r\n\"']*)"),
    re.compile(r"([?&](?:token|access_token|auth|key|password|pwd|secret|credential|sig|signature)=)([^&#\s\"']+)",
               re.IGNORECASE),
    re.compile(r"(\"(?:credential|password|pwd|token|secret|iceUfragPwd|icePwd|ice_pwd)\"\s*:\s*\")([^\"]*)",
               re.IGNORECASE),
]

# CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), other 2-byte ESC sequences, 8-bit CSI, and C0/C1 controls.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"
                   r"|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def redact_text(s: str) -> str:
    for pat in _TEXT_PATTERNS:
        s = pat.sub(lambda m: m.group(1) + REDACTED, s)
    return s


def redact(obj: Any, show_secrets: bool = False) -> Any:
    """A copy of ``obj`` (dicts, lists, strings) with every secret redacted (unless ``show_secrets``)."""
    if show_secrets:
        return obj
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and SECRET_KEY.search(k) and v not in (None, "", [], {})
                    else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def redact_frame(df: pd.DataFrame, show_secrets: bool = False) -> pd.DataFrame:
    """A copy of a frame for export: secret columns blanked, secrets inside text cells redacted."""
    if show_secrets:
        return df
    out = df.copy()
    for c in out.columns:
        if SECRET_KEY.search(str(c)):
            out[c] = pd.Series([None if v is None or (not isinstance(v, (list, dict)) and pd.isna(v)) else REDACTED
                                for v in out[c]], index=out.index, dtype=object)
        elif out[c].dtype == object or isinstance(out[c].dtype, pd.StringDtype):
            out[c] = pd.Series([redact(v) if isinstance(v, (str, list, dict)) else v for v in out[c]],
                               index=out.index, dtype=out[c].dtype)
    return out


def for_terminal(s: Any) -> str:
    """Text with escape sequences and control characters removed (newlines and tabs kept)."""
    t = "" if s is None else str(s)
    t = _ANSI.sub("", t)
    return _CONTROL.sub("", t)


def for_terminal_line(s: Any) -> str:
    """One terminal line: as :func:`for_terminal`, newlines and tabs shown as spaces."""
    return re.sub(r"[\r\n\t]+", " ", for_terminal(s))


def for_html(s: Any) -> str:
    return html.escape(for_terminal("" if s is None else str(s)), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")
_MD_LINE_START = re.compile(r"^(\s*)(\d+)([.)])|^(\s*)([-=>])")


def for_markdown(s: Any) -> str:
    """Inert Markdown: specials backslash-escaped, HTML-escaped, one line (safe inside a table cell)."""
    t = _MD_SPECIAL.sub(r"\\\1", for_terminal_line("" if s is None else str(s)))
    t = _MD_LINE_START.sub(lambda m: f"{m.group(1)}{m.group(2)}\\{m.group(3)}" if m.group(2)
                           else f"{m.group(4)}\\{m.group(5)}", t)  # "1." list, "-" bullet, "=" heading, ">" quote
    return html.escape(t, quote=False)  # then < > & become entities: no raw HTML survives


def json_inert(obj: Any, indent: int | None = 2, sort_keys: bool = True) -> str:
    """JSON text in which ``<``, ``>`` and ``&`` are ``\\u`` escapes (the same JSON value; no markup in any
    viewer, safe inside ``<script type="application/json">``) and no escape sequence survives (JSON already
    escapes control characters). The serialiser of every JSON output (report, SARIF, evidence blocks)."""
    import json

    text = json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=sort_keys, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def for_markdown_code(s: Any) -> str:
    """Text for a fenced code block: no fence can be closed from inside."""
    return for_terminal("" if s is None else str(s)).replace("```", "`\u200b``")
