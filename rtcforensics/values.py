"""The ground floor for values read out of frames: NA-aware cell access, endpoint text, evidence values.

Frames hold pandas NA, NaN, lists and numpy scalars side by side; every layer above the tables (checks,
sessions, topology, reports, widgets) reads cells through these few functions instead of writing its own.
Endpoints use the project's notation (``ip:port``, ``[v6]:port``; see :func:`rtcforensics.addr.endpoint`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

from .addr import endpoint, split_endpoint


def isna(v: Any) -> bool:
    """None, pandas NA/NaT or NaN; a container or a string is never NA (even when empty)."""
    if v is None:
        return True
    if isinstance(v, (list, tuple, set, frozenset, dict, bytes, str)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def val(row: Any, name: str, default: Any = None) -> Any:
    """``row[name]`` with NA (and a missing column) read as ``default``."""
    try:
        v = row[name]
    except (KeyError, IndexError):
        return default
    return default if isna(v) else v


def truthy(row: Any, name: str) -> bool:
    """True only when the column exists and holds a true value (NA = unknown = not true)."""
    return bool(val(row, name, False))


def listish(v: Any) -> list[Any]:
    """A cell that may hold a list, a tuple, an array, a comma-separated string or a scalar → list (NA items
    dropped)."""
    if isna(v):
        return []
    if isinstance(v, (list, tuple, set, frozenset)):
        return [x for x in v if not isna(x)]
    if hasattr(v, "tolist") and not isinstance(v, str):
        return [x for x in v.tolist() if not isna(x)]
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()] if "," in v else ([v] if v else [])
    return [v]


def plain(v: Any) -> Any:
    """A cell or evidence value as a JSON-able Python value (NA → None, numpy scalars → Python, bytes → hex,
    timestamps → ISO 8601, containers recursively)."""
    if v is None:
        return None
    if isinstance(v, (list, tuple, set, frozenset)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def ep(addr: Any, port: Any = None) -> str | None:
    """``ip:port`` (``[v6]:port``) for display and endpoint lists; the address alone when the port is unknown;
    None when the address is unknown."""
    if isna(addr) or addr == "":
        return None
    a = str(addr)
    if isna(port):
        return a
    return endpoint(a[1:-1] if a.startswith("[") and a.endswith("]") else a, port)


def host(endpoint_text: Any) -> str | None:
    """The address of an ``ip:port`` / ``[v6]:port`` endpoint (or of a bare address); None when NA/empty."""
    if isna(endpoint_text) or str(endpoint_text) == "":
        return None
    return split_endpoint(str(endpoint_text).strip())[0]


def parties(row: Any) -> tuple[str | None, str | None]:
    """(client address, server ip:port) of a signalling message (or of the message that carried a description)
    from its ``client_endpoint`` / ``server_endpoint`` columns (who opened the connection, the listener). The
    client's ephemeral port is left out: it changes per connection and says nothing an analyst needs."""
    s = val(row, "server_endpoint")
    return host(val(row, "client_endpoint")), (str(s) if s else None)


def endpoints(*eps: Any) -> list[str]:
    """The endpoints given, in order, without duplicates and without the unknown ones."""
    return [e for e in dict.fromkeys(eps) if e]


def frames_of(*cells: Any) -> list[int]:
    """Sorted distinct frame numbers from cells that hold an int or a list of ints."""
    out: list[int] = []
    for c in cells:
        for f in listish(c):
            try:
                out.append(int(f))
            except (TypeError, ValueError):
                continue
    return sorted(set(out))


_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*$")
_HEX = re.compile(r"^(?:0x)?[0-9a-fA-F]{32,}$")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]{20,}={0,2}$")
TOKEN_MIN_LEN = 24  # shorter single words (product names, build ids) are not called tokens


def token_kind(text: Any) -> str | None:
    """``jwt`` | ``hex`` | ``base64`` | ``random`` when a whole value (a STUN SOFTWARE, a User-Agent, a header)
    is a token rather than a name: one word of at least ``TOKEN_MIN_LEN`` characters that is a JWT, a hex
    or base64 blob mixing digits with lower and upper case, or an unbroken run whose characters are as varied
    as random ones (>= 4.2 bits of entropy per character); None otherwise. Product names and versions
    (``Coturn-4.6.1 'Gorst'``, ``Mozilla/5.0 (...)``, ``aiortc``) have spaces, dots or few distinct characters."""
    if isna(text):
        return None
    t = str(text).strip()
    if len(t) < TOKEN_MIN_LEN or any(c.isspace() for c in t):
        return None
    if _JWT.match(t):
        return "jwt"
    if _HEX.match(t):
        return "hex"
    parts = [p for p in re.split(r"[-_./+]", t) if p]
    if all(re.fullmatch(r"[A-Za-z]+\d*|\d+", p) for p in parts):
        return None  # words and numbers (joined by separators): a product name with its version
    if len(re.findall(r"[A-Za-z](?=\d)|\d(?=[A-Za-z])", t)) < 3:
        return None  # random strings switch between letters and digits all along; names do not
    classes = sum(bool(re.search(p, t)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    if _B64.match(t) and classes == 3:
        return "base64"
    counts = [t.count(c) for c in set(t)]
    bits = -sum(n / len(t) * math.log2(n / len(t)) for n in counts)
    return "random" if classes == 3 and bits >= 4.2 and not re.search(r"\d+\.\d+", t) else None


def records(df: pd.DataFrame) -> Iterable[dict[str, Any]]:
    """Rows of ``df`` as dicts with NA read as None (``to_dict`` speed, not ``iterrows``)."""
    cols = list(df.columns)
    for tup in df.itertuples(index=False, name=None):
        yield {c: (None if isna(v) else v) for c, v in zip(cols, tup)}


__all__ = [
    "endpoint",
    "endpoints",
    "ep",
    "frames_of",
    "host",
    "isna",
    "listish",
    "parties",
    "plain",
    "records",
    "split_endpoint",
    "token_kind",
    "truthy",
    "val",
]
