"""Everything that makes capture-derived text safe to show, in ONE place (reports, CLI, export, widgets).

- :func:`redact` — secrets replaced by ``<redacted>`` in any nested structure, unless ``show_secrets``.
  Recognised by *name* (dict keys / frame columns: :data:`SECRET_KEY`) and by *value* — shape and context
  inside free text (:func:`redact_text`): SDES ``inline:`` keys, ``ice-pwd`` in SDP, JSON or URLs,
  ``Authorization``/``Cookie``/token headers, ``bearer`` in any case, Basic/Digest credentials, URL query
  values of secret parameters (``access-token``, ``X-Amz-Signature``, ``sessionid``, …), the password in a
  URI's userinfo (``sip:bob:PASS@host``, ``wss://u:PASS@h``), ``token=``/``password:`` in prose, JWTs and
  AWS access key IDs wherever they stand; a STUN SOFTWARE / User-Agent / Server value that is a token
  (:data:`TOKEN_VALUED_KEY`, ``values.token_kind``); in Wireshark's dissection text, ``Cookie pair:`` values,
  the SDES key material the SDP dissector decodes (``Key and Salt``, ``Master Key``, ``Master salt``), Basic
  ``Credentials:`` and JSON members whose names say secret. A value recognised by context in one place is
  redacted wherever else it stands in the same text (the tree repeats an attribute's value on its own line).
- :func:`scrub_keylog` — keylog contents (``LABEL <hex> <hex>`` lines, a keylog line's label) removed
  *always*, ``--show-secrets`` or not.
- :func:`for_terminal` / :func:`for_terminal_line` — ANSI/VT escape sequences and other control characters
  removed; :func:`for_html`, :func:`for_markdown`, :func:`for_markdown_code` — inert markup;
  :func:`csv_cell` — spreadsheet formulas neutralised.
- :func:`redact_frame` — the same redaction for a pandas frame about to be exported or shown.

Every renderer passes capture-derived strings through these and nothing else.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..values import token_kind

REDACTED = "<redacted>"

# Keys (dict keys, frame columns) whose values are secrets wherever they appear in a structure. Narrow on
# purpose: evidence keys such as "session_id" (an SDP o= id) or "auth_kinds" are facts, not secrets.
SECRET_KEY = re.compile(
    r"(_secret$|^secret$|^api_?secret$|password|passwd|^pwd$|ice[-_]?pwd$|credential$|^token$|_token$|"
    r"access[-_]?token|^jwt$|api[-_]?key$|cookie|^authorization$|^proxy[-_]authorization$|"
    r"^inline$|crypto_keys|^x-amz-(?:signature|credential|security-token)$)",
    re.IGNORECASE,
)

# Keys / columns that name software (STUN SOFTWARE, User-Agent, Server header): a name is a fact, but a value
# that is a token (``values.token_kind``: a JWT, a hex / base64 blob, a random string) is a secret.
TOKEN_VALUED_KEY = re.compile(r"^(?:software|user[-_]?agent|server)$", re.IGNORECASE)
# The same fields as header lines inside free text (raw SIP / HTTP messages).
_TOKEN_HEADER = re.compile(
    r"((?:^|[\r\n])[ \t]*(?:user-agent|server|software)[ \t]*:[ \t]*)([^\s]+)(?=[ \t]*(?:[\r\n]|$))",
    re.IGNORECASE,
)

# Names of URL query parameters, JSON members and "name: value" pairs whose values are secrets: a name that
# CONTAINS one of the first group, or IS one of the second.
_NAME_PART = (
    r"token|secret|passw(?:or)?d|pwd|credential|signature|api[-_]?key|access[-_]?key|sessionid|"
    r"session[-_]id|sessid|session[-_]?key|jwt|cookie|passphrase|auth"
)
_NAME_WHOLE = r"key|sig|sid|pass|code|ticket|session"
SECRET_NAME = re.compile(rf"^(?:[\w.-]*(?:{_NAME_PART})[\w.-]*|{_NAME_WHOLE})$", re.IGNORECASE)
_QNAME = rf"(?:[\w.-]*(?:{_NAME_PART})[\w.-]*|(?:{_NAME_WHOLE})(?![\w.-]))"

_NOT_DONE = r"(?!<redacted)"  # a value already redacted (e.g. "<redacted:3fa2…>") keeps its hash prefix
_Q = r"(?:\\*[\"'])?"  # an optional quote, possibly backslash-escaped (JSON inside JSON)

# Secrets embedded in free text (SDP lines, headers, URLs, JSON, prose). Group 1 is kept, group 2 is redacted
# (and a third group, if any, is kept).
_TEXT_PATTERNS: list[re.Pattern[str]] = [
    # SDES a=crypto key||salt
    re.compile(r"(inline:)" + _NOT_DONE + r"([A-Za-z0-9+/=]{16,})"),
    # ICE password: a=ice-pwd:X, "icePwd": "X", ice-pwd=X, ice_pwd: X (any case)
    re.compile(
        r"(\bice[-_]?pwd" + _Q + r"\s*[:=]\s*" + _Q + r")" + _NOT_DONE + r"([^\s\"'\\&,;}\]<>]+)",
        re.IGNORECASE,
    ),
    # header lines whose whole value is a secret
    re.compile(
        r"((?:^|[\r\n])\s*(?:(?:proxy-)?authorization|cookie|set-cookie|api-key|token|x-[\w-]*(?:token|"
        r"key|secret|auth|signature)[\w-]*)\s*:\s*)" + _NOT_DONE + r"([^\r\n]+)",
        re.IGNORECASE,
    ),
    # HTTP auth schemes: bearer in any case (token68), Basic with base64, Digest with its parameters
    re.compile(r"(\bbearer\s+)" + _NOT_DONE + r"([A-Za-z0-9._~+/=-]{4,})", re.IGNORECASE),
    re.compile(r"(\bdigest\s+)" + _NOT_DONE + r"([\w-]+\s*=[^\r\n]*)", re.IGNORECASE),
    # URL query (and fragment / matrix) values of secret parameters
    re.compile(r"([?&;#]" + _QNAME + r"=)" + _NOT_DONE + r"([^&#\s\"'<>\\]+)", re.IGNORECASE),
    # JSON members (also escaped JSON inside a JSON string) whose names say secret
    re.compile(
        r"(\\*[\"'](?:" + _QNAME + r")\\*[\"']\s*:\s*\\*[\"'])" + _NOT_DONE + r"((?:[^\"'\\]|\\[^\"'])+)",
        re.IGNORECASE,
    ),
    # the password of a URI's userinfo: sip:bob:PASS@host, sips:, turn(s):, stun(s):, scheme://user:PASS@host
    re.compile(
        r"(\b(?:sips?|turns?|stuns?|tel):[^:@\s;<>\"'/]+:)" + _NOT_DONE + r"([^@\s;<>\"']+)(?=@)",
        re.IGNORECASE,
    ),
    re.compile(
        r"(\b[a-z][a-z0-9+.-]*://[^/\s:@<>\"']+:)" + _NOT_DONE + r"([^@\s/<>\"']+)(?=@)", re.IGNORECASE
    ),
    # Wireshark tree lines whose value is a secret: a cookie's value (``Cookie pair: name=VALUE``), the SDES
    # key material the SDP dissector decodes from ``inline:`` (hex key||salt, master key, master salt), the
    # ``user:password`` it decodes from HTTP Basic
    re.compile(
        r"((?:^|[\r\n])[ \t]*(?:set-)?cookie pair[ \t]*:[ \t]*[^=\r\n]*=)" + _NOT_DONE + r"([^\r\n]+)", re.I
    ),
    re.compile(
        r"((?:^|[\r\n])[ \t]*(?:key and salt|master key|master salt|credentials)[ \t]*:[ \t]*)"
        + _NOT_DONE
        + r"([^\r\n]+)",
        re.IGNORECASE,
    ),
    # prose: "token: X", "password=X", "api key = X", "secret X"
    re.compile(
        r"(\b(?:access[-_ ]?token|token|password|passwd|passphrase|pwd|secret|api[-_ ]?key|"
        r"access[-_ ]?key|session[-_ ]?id)\b\s*[:=]\s*)" + _NOT_DONE + r"([^\s,;\"'&<>]+)",
        re.IGNORECASE,
    ),
]
# HTTP Basic credentials: base64 that decodes to "user:password" (so "basic information" stays).
_BASIC = re.compile(r"(\bbasic\s+)" + _NOT_DONE + r"([A-Za-z0-9+/]{4,}={0,2})(?![\w+/=])", re.IGNORECASE)
# Secrets by shape alone: JSON Web Tokens, AWS access key IDs.
_SHAPES = [
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
]
# Keylog contents: a key line (LABEL client_random secret) and the label quoted in a keylog anomaly.
_KEYLOG = [
    re.compile(r"\b[A-Z][A-Z0-9_]{2,}[ \t]+[0-9A-Fa-f]{32,}[ \t]+[0-9A-Fa-f]{16,}"),
    re.compile(
        r"\b(?:CLIENT_RANDOM|RSA|[A-Z_]*SECRET[A-Z0-9_]*)[ \t]+[0-9A-Fa-f]{16,}(?:[ \t]+[0-9A-Fa-f]+)?"
    ),
    re.compile(r"(\bkeylog\b[^\r\n]*?\blabel\s+)(\S+)", re.IGNORECASE),
]


# Wireshark's JSON tree names a member with its value: "Member with value: apiSecret:X", "Path with value:
# /auth/apiSecret:X" (in brackets in tshark's text). The value of a member whose name says secret
# (:func:`is_secret_name`) is redacted.
_JSON_MEMBER = re.compile(
    r"(\b(?:member|path) with value:[ \t]*(?:[^\]\r\n]*/)?([\w.-]+):)" + _NOT_DONE + r"([^\]\r\n]+)",
    re.IGNORECASE,
)
# A secret found by context is redacted wherever else its value stands in the same text: Wireshark shows an
# SDP attribute whole ("Media Attribute (a): ice-pwd:X") and again as a bare "Media Attribute Value: X" line,
# a JSON member's value again as "String value: X". Values shorter than this are not searched for.
_EVERYWHERE_MIN = 8


def _kept_tail(m: re.Match[str]) -> str:
    return m.group(3) if (m.re.groups or 0) >= 3 and m.group(3) else ""


def scrub_keylog(obj: Any) -> Any:
    """A copy of ``obj`` with keylog contents removed (applied even with ``--show-secrets``)."""
    if isinstance(obj, dict):
        return {k: scrub_keylog(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_keylog(v) for v in obj]
    if isinstance(obj, str):
        return scrub_keylog_text(obj)
    return obj


def scrub_keylog_text(s: str) -> str:
    if "keylog" not in s.lower() and not re.search(r"[0-9A-Fa-f]{16}", s):
        return s
    s = _KEYLOG[0].sub(REDACTED, s)
    s = _KEYLOG[1].sub(REDACTED, s)
    return _KEYLOG[2].sub(lambda m: m.group(1) + REDACTED, s)


def redact_text(s: str) -> str:
    """``s`` with every secret recognised by shape or context replaced by ``<redacted>`` (and keylog
    contents removed); a value recognised by context in one place is redacted everywhere in ``s``."""
    found: set[str] = set()

    def keep(m: re.Match[str], secret: str) -> str:
        found.add(secret.strip())
        return m.group(1) + REDACTED

    for pat in _TEXT_PATTERNS:
        s = pat.sub(lambda m: keep(m, m.group(2)) + _kept_tail(m), s)
    s = _JSON_MEMBER.sub(lambda m: keep(m, m.group(3)) if is_secret_name(m.group(2)) else m.group(0), s)
    s = _BASIC.sub(lambda m: keep(m, m.group(2)) if _is_basic(m.group(2)) else m.group(0), s)
    for pat in _SHAPES:
        s = pat.sub(REDACTED, s)
    s = _TOKEN_HEADER.sub(lambda m: keep(m, m.group(2)) if token_kind(m.group(2)) else m.group(0), s)
    for v in sorted((v for v in found if len(v) >= _EVERYWHERE_MIN), key=len, reverse=True):
        s = s.replace(v, REDACTED)
    return scrub_keylog_text(s)


def redact_token(v: Any) -> Any:
    """A software field's value (STUN SOFTWARE, User-Agent, Server), redacted when it is a token."""
    return REDACTED if isinstance(v, str) and token_kind(v) else v


def _is_basic(b64: str) -> bool:
    import base64
    import binascii

    try:
        return b":" in base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False


def is_secret_name(name: str) -> bool:
    """Whether a parameter / header / member called ``name`` carries a secret value (``access-token``,
    ``X-Amz-Signature``, ``sessionid``, ``pwd`` …): the one list for redacting by context."""
    return bool(SECRET_NAME.match(name.strip()))


def redact(obj: Any, show_secrets: bool = False) -> Any:
    """A copy of ``obj`` (dicts, lists, strings) with every secret redacted (unless ``show_secrets``)."""
    if show_secrets:
        return obj
    if isinstance(obj, dict):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and SECRET_KEY.search(k) and v not in (None, "", [], {})
                else redact(redact_token(v))
                if isinstance(k, str) and TOKEN_VALUED_KEY.match(k)
                else redact(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def _cells(col: pd.Series, fn: Callable[[Any], Any]) -> pd.Series:
    """``fn`` applied to the text (and list/dict) cells of ``col``; each distinct string is done once (a
    million-row categorical column costs its categories, not its rows)."""
    done: dict[str, Any] = {}

    def one(v: Any) -> Any:
        if isinstance(v, str):
            if v not in done:
                done[v] = fn(v)
            return done[v]
        return fn(v) if isinstance(v, (list, dict, tuple)) else v

    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = [one(c) for c in col.cat.categories]
        if len(set(map(str, cats))) == len(cats):
            return col.cat.rename_categories(cats)
        return pd.Series([one(v) for v in col], index=col.index, dtype=object)
    try:  # hashable cells: each distinct value once, then a take
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
    except TypeError:  # lists / dicts in the column
        return pd.Series([one(v) for v in col], index=col.index, dtype=col.dtype)
    import numpy as np

    mapped = np.array([one(u) for u in uniques] + [None], dtype=object)  # code -1 (NA) takes the last: None
    out = pd.Series(mapped[codes], index=col.index, dtype=object)
    return out.astype(col.dtype) if isinstance(col.dtype, pd.StringDtype) else out


def _textual(col: pd.Series) -> bool:
    return col.dtype == object or isinstance(col.dtype, (pd.StringDtype, pd.CategoricalDtype))


def redact_frame(df: pd.DataFrame, show_secrets: bool = False) -> pd.DataFrame:
    """A copy of a frame for export or display: secret columns blanked, secrets inside text cells redacted
    (keylog contents removed even with ``show_secrets``)."""
    out = df.copy()
    for c in out.columns:
        if not show_secrets and SECRET_KEY.search(str(c)):
            out[c] = pd.Series(
                [
                    None if v is None or (not isinstance(v, (list, dict)) and pd.isna(v)) else REDACTED
                    for v in out[c]
                ],
                index=out.index,
                dtype=object,
            )
        elif _textual(out[c]):
            token_field = not show_secrets and TOKEN_VALUED_KEY.match(str(c))
            out[c] = _cells(
                out[c],
                scrub_keylog
                if show_secrets
                else (lambda v: redact(redact_token(v)))
                if token_field
                else redact,
            )
    return out


# CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), other 2-byte ESC sequences, 8-bit CSI, and C0/C1 controls.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def for_terminal(s: Any) -> str:
    """Text with escape sequences and control characters removed (newlines and tabs kept)."""
    t = "" if s is None else str(s)
    t = _ANSI.sub("", t)
    return _CONTROL.sub("", t)


def for_terminal_line(s: Any) -> str:
    """One terminal line: as :func:`for_terminal`, newlines and tabs shown as spaces."""
    return re.sub(r"[\r\n\t]+", " ", for_terminal(s))


def for_terminal_name(s: Any) -> str:
    """A file name (or any user-supplied name) for a terminal line: every control character, line break and
    bidirectional override shown as a visible escape (``\\x1b``, ``\\n``, ``\\u202e``), so the name cannot
    move the cursor, set the title or hide part of itself, and stays recognisable."""

    def esc(m: re.Match[str]) -> str:
        c = m.group(0)
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
            f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
        )

    return _ANY_CONTROL.sub(esc, "" if s is None else str(s))


def for_html(s: Any) -> str:
    return html.escape(for_terminal("" if s is None else str(s)), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")
_MD_LINE_START = re.compile(r"^(\s*)(\d+)([.)])|^(\s*)([-=>])")


def for_markdown(s: Any) -> str:
    """Inert Markdown: specials backslash-escaped, HTML-escaped, one line (safe inside a table cell)."""
    t = _MD_SPECIAL.sub(r"\\\1", for_terminal_line("" if s is None else str(s)))
    t = _MD_LINE_START.sub(
        lambda m: f"{m.group(1)}{m.group(2)}\\{m.group(3)}" if m.group(2) else f"{m.group(4)}\\{m.group(5)}",
        t,
    )  # "1." list, "-" bullet, "=" heading, ">" quote
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


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def csv_cell(v: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text beginning with ``= + - @`` (or tab, CR, LF, or their
    full-width forms) gets a leading ``'`` (OWASP's advice); plain numbers such as ``-5`` are left alone."""
    if isinstance(v, str) and v.startswith(_FORMULA_START) and not _NUMBER.fullmatch(v):
        return "'" + v
    return v


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell (and column name) passed through :func:`csv_cell`."""
    out = df.copy()
    for c in out.columns:
        if _textual(out[c]):
            out[c] = _cells(out[c], csv_cell)
    out.columns = [csv_cell(str(c)) for c in out.columns]
    return out
