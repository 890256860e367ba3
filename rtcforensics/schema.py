"""Frame schemas: every column of every public frame, its dtype and its meaning, declared once.

A table module declares its frame with :func:`frame_schema` and builds rows as plain Python values;
:meth:`FrameSchema.conform` turns them into a frame with exactly the declared columns and dtypes, so
empty frames, concatenated frames and frames from different captures all look alike.

Dtype vocabulary (strings, resolved here, so the declaration reads as documentation):

- ``"Int64"``, ``"Int32"``, ``"UInt16"``, ``"UInt32"``, ... pandas nullable integers (NA = not in the packet)
- ``"boolean"``  nullable boolean (NA = unknown)
- ``"float64"``  floats (NaN = unknown)
- ``"string"``   pandas string dtype
- ``"ts"``       UTC timestamps, ``datetime64[ns, UTC]``
- ``"category:a,b,c"`` a categorical with those categories, declared once (never inferred)
- ``"object"``   Python objects (lists, dicts, bytes) where a column holds structure
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SCHEMAS: dict[str, FrameSchema] = {}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    meaning: str

    def pandas_dtype(self) -> Any:
        if self.dtype == "ts":
            return pd.DatetimeTZDtype("ns", "UTC")
        if self.dtype.startswith("category:"):
            cats = [c for c in self.dtype[len("category:") :].split(",") if c]
            return pd.CategoricalDtype(cats, ordered=False)
        if self.dtype == "string":
            return pd.StringDtype()
        return self.dtype


@dataclass(frozen=True)
class FrameSchema:
    name: str
    doc: str
    columns: tuple[Column, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"frame {self.name!r} has no column {name!r}")

    def empty(self) -> pd.DataFrame:
        return self.conform(pd.DataFrame({c.name: [] for c in self.columns}))

    def from_records(self, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        rows = list(rows)
        if not rows:
            return self.empty()
        # object dtype first: letting pandas infer would turn [int, None] into float64 and round big integers
        return self.conform(
            pd.DataFrame({n: pd.Series([r.get(n) for r in rows], dtype=object) for n in self.names})
        )

    def from_columns(self, cols: Mapping[str, Sequence[Any] | np.ndarray]) -> pd.DataFrame:
        return self.conform(pd.DataFrame({n: cols[n] for n in self.names if n in cols}))

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return ``df`` with exactly the declared columns, in order, with the declared dtypes.

        Missing columns are added as all-NA; undeclared columns are an error in the builder (raise),
        because an undocumented column is a schema drift."""
        extra = [c for c in df.columns if c not in self.names]
        if extra:
            raise ValueError(f"frame {self.name!r}: undeclared columns {extra}")
        out = {}
        n = len(df)
        ranged = df.index.equals(pd.RangeIndex(n))
        for c in self.columns:
            dt = c.pandas_dtype()
            if c.name in df.columns:
                s = df[c.name]
                if ranged and s.dtype == dt:
                    out[c.name] = s  # already conform: no copy (a frame of a million rows is built once)
                    continue
            else:
                s = pd.Series([None] * n, index=df.index, dtype="object")
            out[c.name] = _cast(s, dt, c)
        return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)

    def describe(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "column": [c.name for c in self.columns],
                "dtype": [c.dtype for c in self.columns],
                "meaning": [c.meaning for c in self.columns],
            }
        )


def _cast(s: pd.Series, dt: Any, col: Column) -> pd.Series:
    s = s.reset_index(drop=True)
    if col.dtype == "ts":  # .astype(dt): pandas 3 infers second resolution for all-NA columns
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return (s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")).astype(dt)
        if len(s) and pd.api.types.is_integer_dtype(s.dtype):
            return pd.to_datetime(s, unit="ns", utc=True).astype(dt)
        return pd.to_datetime(s, utc=True).astype(dt)
    if col.dtype == "object":
        return s.astype(object)
    if col.dtype == "float64":
        return pd.to_numeric(s, errors="coerce").astype("float64")
    if col.dtype == "boolean":
        return s.astype("boolean")
    if isinstance(dt, pd.CategoricalDtype):
        return s.astype(object).astype(dt)
    if isinstance(dt, str) and dt[:1] in ("I", "U"):
        if s.dtype == object:
            # Build from Python ints directly: going through float64 (pd.to_numeric) would round values
            # above 2**53 (64-bit tie-breakers, SSRC-derived keys). Non-integers become NA.
            vals = [_as_int(v) for v in s.tolist()]
            return pd.Series(pd.array(vals, dtype=dt), index=s.index)
        return s.astype(dt)
    return s.astype(dt)


def _as_int(v: Any) -> int | None:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if v != v or v in (float("inf"), float("-inf")) else int(v)
    try:
        return int(str(v), 0)
    except ValueError:
        return None


def frame_schema(name: str, doc: str, columns: Sequence[tuple[str, str, str]]) -> FrameSchema:
    """Declare (and register) the schema of a public frame: ``columns`` are ``(name, dtype, meaning)``."""
    if name in SCHEMAS:
        raise ValueError(f"frame schema {name!r} declared twice")
    names = [c[0] for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"frame schema {name!r} has duplicate columns")
    schema = FrameSchema(name, doc, tuple(Column(*c) for c in columns))
    SCHEMAS[name] = schema
    return schema


ANOMALIES = frame_schema(
    "anomalies",
    "What could not be parsed or looked wrong, Zeek-weird style: one row per occurrence.",
    [
        ("frame", "Int64", "Wireshark frame number (NA when the problem is not tied to one frame)"),
        ("ts", "ts", "capture time of that frame (UTC)"),
        (
            "layer",
            "category:capture,link,ip,udp,tcp,stun,turn,dtls,rtp,rtcp,sctp,sdp,signalling,tshark,keylog,check,srtp",
            "layer that raised it",
        ),
        ("name", "string", "stable snake_case anomaly name, e.g. stun_attr_length"),
        ("detail", "string", "human-readable description: protocol, thing, problem"),
        ("flow_id", "Int64", "flow the frame belongs to, when known"),
    ],
)
