"""Small helpers shared by the check families (no check logic lives here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd


def isna(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (list, tuple, set, dict, bytes, str)):
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
    """A column cell that may hold a list, a tuple, a comma-separated string or a scalar → list."""
    if isna(v):
        return []
    if isinstance(v, (list, tuple, set, frozenset)):
        return [x for x in v if not isna(x)]
    if hasattr(v, "tolist") and not isinstance(v, str):
        return [x for x in v.tolist() if not isna(x)]
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()] if "," in v else ([v] if v else [])
    return [v]


def ep(addr: Any, port: Any = None) -> str | None:
    """``ip:port`` (``[v6]:port``) for display and endpoint lists; None when the address is unknown."""
    if isna(addr) or addr == "":
        return None
    a = str(addr)
    if isna(port):
        return a
    return f"[{a}]:{int(port)}" if ":" in a and not a.startswith("[") else f"{a}:{int(port)}"


def endpoints(*eps: Any) -> list[str]:
    return [e for e in dict.fromkeys(eps) if e]


def frames_of(*cells: Any) -> list[int]:
    """Frame numbers from cells that hold an int or a list of ints."""
    out: list[int] = []
    for c in cells:
        for f in listish(c):
            try:
                out.append(int(f))
            except (TypeError, ValueError):
                continue
    return sorted(set(out))


def rows(df: pd.DataFrame) -> Iterable[Any]:
    """Iterate rows as named-access records (pandas Series)."""
    for _, r in df.iterrows():
        yield r
