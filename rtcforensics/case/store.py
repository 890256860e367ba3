"""The case store on disk: one Parquet dataset per frame, partitioned by capture, and a manifest.

Layout of a case directory::

    case.json                                   store format and the tool version that created it
    frames/<frame>/capture=<id>/part.parquet    every frame of every capture (schema: rtcforensics.schema)
    findings/capture=<id>/part.parquet          the findings of the per-capture checks (the Finding record)
    coverage/capture=<id>/part.parquet          found / clean / not observable / failed, per check
    manifest/<id>.parquet                       one row per capture: path, sha256, size, packets, span, status
    .tmp/                                       partitions being written (never read)

``<id>`` is the first 16 hex digits of the capture's SHA-256. A capture's partitions are written into
``.tmp`` and renamed into place; its manifest row is written last (also by rename), so a partition whose
capture has no ``ok`` manifest row is an interrupted write: the query layer ignores it and the next ingest
removes it.

Column types come from the declared frame schemas (:data:`rtcforensics.schema.SCHEMAS`): nullable
integers keep their width, ``ts`` is ``timestamp[ns, UTC]``, categoricals are stored as strings (their
declared categories come back on read), and ``object`` columns (lists, dicts) as JSON text, with bytes as
``{"$bytes": "<hex>"}``; :func:`from_arrow` turns a stored table back into the frame as ``load`` builds it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import RtcForensicsError
from ..schema import SCHEMAS, Column, FrameSchema
from ..values import isna, plain

STORE_FORMAT = 1
FRAMES, FINDINGS, COVERAGE, MANIFEST, TMP = "frames", "findings", "coverage", "manifest", ".tmp"
PART = "part.parquet"
ID_LEN = 16
OK, FAILED = "ok", "failed"
BYTES_TAG = "$bytes"

_INT_TYPES = {
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
}

# The per-capture tables that are not frames of a Capture: their arrow schemas are fixed here.
FINDINGS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("slug", pa.string()),
        ("severity", pa.string()),
        ("confidence", pa.string()),
        ("title", pa.string()),
        ("message", pa.string()),
        ("endpoints", pa.list_(pa.string())),
        ("flow_id", pa.int64()),
        ("frames", pa.list_(pa.int64())),
        ("evidence", pa.string()),
        ("identity", pa.string()),
        ("references", pa.list_(pa.string())),
    ],
    metadata={b"rtcf_json": b"evidence"},
)
COVERAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("slug", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("findings", pa.int64()),
    ]
)
MANIFEST_SCHEMA = pa.schema(
    [
        ("capture", pa.string()),
        ("sha256", pa.string()),
        ("path", pa.string()),
        ("name", pa.string()),
        ("size", pa.int64()),
        ("packets", pa.int64()),
        ("first_ts", pa.timestamp("ns", tz="UTC")),
        ("last_ts", pa.timestamp("ns", tz="UTC")),
        ("tool_version", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("keylog", pa.string()),
        ("truncated", pa.bool_()),
        ("findings", pa.int64()),
        ("checks_failed", pa.int64()),
        ("frames", pa.list_(pa.string())),
        ("secrets_shown", pa.bool_()),
        ("ingested", pa.timestamp("ns", tz="UTC")),
        ("duration_s", pa.float64()),
        ("worker", pa.string()),
        ("streamed", pa.bool_()),  # loaded by the streaming driver (large or standard input): see ingestion
        (
            "incomplete",
            pa.string(),
        ),  # why the results may miss something (checks not run ...); None: complete
    ]
)
# Manifest columns that differ between two ingests of the same capture (compare runs without them).
VOLATILE = ("ingested", "duration_s", "worker", "path")


class CaseError(RtcForensicsError):
    """A case directory that cannot be used (the message names the directory and the problem)."""


def capture_id(sha256: str) -> str:
    return sha256[:ID_LEN]


# -- column codec ---------------------------------------------------------------------------------


def arrow_type(col: Column) -> pa.DataType:
    if col.dtype in _INT_TYPES:
        return _INT_TYPES[col.dtype]
    if col.dtype == "boolean":
        return pa.bool_()
    if col.dtype == "float64":
        return pa.float64()
    if col.dtype == "ts":
        return pa.timestamp("ns", tz="UTC")
    return pa.string()  # string, category:..., object (JSON text)


def arrow_schema(schema: FrameSchema) -> pa.Schema:
    json_cols = ",".join(c.name for c in schema.columns if c.dtype == "object")
    return pa.schema(
        [pa.field(c.name, arrow_type(c)) for c in schema.columns],
        metadata={b"rtcf_frame": schema.name.encode(), b"rtcf_json": json_cols.encode()},
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {BYTES_TAG: bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted((_jsonable(x) for x in v), key=str)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if hasattr(v, "tolist") and not isinstance(v, str) and int(getattr(v, "ndim", 0)) > 0:  # numpy arrays
        return _jsonable(v.tolist())
    return plain(v)


def encode_json(v: Any) -> str | None:
    """One ``object`` cell as JSON text (None stays NULL; bytes tagged so they come back as bytes)."""
    if isna(v):
        return None
    return json.dumps(_jsonable(v), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _unbytes(v: Any) -> Any:
    if isinstance(v, list):
        return [_unbytes(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1 and BYTES_TAG in v and isinstance(v[BYTES_TAG], str):
            return bytes.fromhex(v[BYTES_TAG])
        return {k: _unbytes(x) for k, x in v.items()}
    return v


def decode_json(s: Any) -> Any:
    if s is None or isna(s):
        return None
    return _unbytes(json.loads(s))


def _json_column(s: pd.Series) -> list[str | None]:
    """``encode_json`` of every value; lists of strings (e.g. `flows.classes`, a handful of distinct values in
    a million rows) are encoded once per distinct value."""
    seen: dict[tuple[str, ...], str | None] = {}
    out: list[str | None] = []
    for v in s:
        if isinstance(v, list) and all(type(x) is str for x in v):
            key = tuple(v)
            enc = seen.get(key)
            if enc is None:
                enc = seen[key] = encode_json(v)
            out.append(enc)
        else:
            out.append(encode_json(v))
    return out


def _strings(s: pd.Series) -> pa.Array:
    """A string or categorical column as Arrow strings (NA → null); vectorised for the common dtypes."""
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype) and all(isinstance(c, str) for c in dt.categories):
        codes = s.cat.codes.to_numpy()
        cats = pa.array(list(dt.categories), pa.string())
        return cats.take(pa.array(codes, mask=codes < 0))
    if isinstance(dt, pd.StringDtype):
        return pa.array(s.array, type=pa.string())
    return pa.array([None if isna(v) else str(v) for v in s.astype(object)], pa.string())


def to_arrow(df: pd.DataFrame, schema: FrameSchema) -> pa.Table:
    """A conformed frame as an Arrow table with the store's types (see the module docstring)."""
    df = schema.conform(df) if list(df.columns) != schema.names else df
    arrays = []
    for c in schema.columns:
        t = arrow_type(c)
        s = df[c.name]
        if c.dtype == "object":
            arrays.append(pa.array(_json_column(s), pa.string()))
        elif pa.types.is_string(t):
            arrays.append(_strings(s))
        else:
            arrays.append(pa.Array.from_pandas(s, type=t))
    return pa.Table.from_arrays(arrays, schema=arrow_schema(schema))


_PANDAS_TYPES = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas keeping nullable integers exact (never through float64)."""
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)


def from_arrow(table: pa.Table, name: str, keep: Iterable[str] = ("capture",)) -> pd.DataFrame:
    """A stored frame (possibly several captures) back as the frame ``load`` builds: declared columns and
    dtypes, JSON decoded; the ``keep`` columns (``capture``) first, as strings."""
    schema = SCHEMAS[name]
    df = arrow_to_pandas(table)
    extra = {k: df.pop(k).astype("string") for k in keep if k in df.columns}
    for c in schema.columns:
        if c.dtype == "object" and c.name in df.columns:
            df[c.name] = pd.Series([decode_json(v) for v in df[c.name]], index=df.index, dtype=object)
    df = df[[c for c in df.columns if c in schema.names]]
    out = schema.conform(df)
    for i, (k, v) in enumerate(extra.items()):
        out.insert(i, k, v.reset_index(drop=True))
    return out


def findings_table(findings: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = [dict(f) for f in findings]
    cols: dict[str, list[Any]] = {n: [] for n in FINDINGS_SCHEMA.names}
    for f in rows:
        for n in FINDINGS_SCHEMA.names:
            v: Any = f.get(n)
            if n == "evidence":
                v = encode_json(v or {})
            elif n in ("endpoints", "references"):
                v = [str(x) for x in (v or [])]
            elif n == "frames":
                v = [int(x) for x in (v or [])]
            elif n == "flow_id":
                v = None if isna(v) else int(v)
            cols[n].append(v)
    return pa.table(cols, schema=FINDINGS_SCHEMA)


def findings_from_arrow(table: pa.Table) -> pd.DataFrame:
    df = arrow_to_pandas(table)
    if "evidence" in df.columns:
        df["evidence"] = pd.Series([decode_json(v) for v in df["evidence"]], index=df.index, dtype=object)
    for n in ("endpoints", "frames", "references"):
        if n in df.columns:
            df[n] = pd.Series([[] if v is None else list(v) for v in df[n]], index=df.index, dtype=object)
    return df


def coverage_table(coverage: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = [dict(c) for c in coverage]
    return pa.table({n: [r.get(n) for r in rows] for n in COVERAGE_SCHEMA.names}, schema=COVERAGE_SCHEMA)


def manifest_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(rows)
    cols: dict[str, list[Any]] = {}
    for f in MANIFEST_SCHEMA:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_timestamp(f.type):
            vals = [
                None
                if isna(v)
                else pd.Timestamp(v).tz_convert("UTC")
                if pd.Timestamp(v).tzinfo
                else pd.Timestamp(v).tz_localize("UTC")
                for v in vals
            ]
        cols[f.name] = vals
    return pa.table(cols, schema=MANIFEST_SCHEMA)


# -- the directory --------------------------------------------------------------------------------


class CaseStore:
    """Paths and atomic writes of one case directory (no query engine: see :mod:`rtcforensics.case.query`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # layout
    def table_dir(self, table: str) -> Path:
        if table in (FINDINGS, COVERAGE):
            return self.root / table
        return self.root / FRAMES / table

    def partition(self, table: str, cid: str) -> Path:
        return self.table_dir(table) / f"capture={cid}"

    @property
    def manifest_dir(self) -> Path:
        return self.root / MANIFEST

    @property
    def tmp_dir(self) -> Path:
        return self.root / TMP

    def exists(self) -> bool:
        return (self.root / "case.json").is_file()

    def create(self) -> None:
        """Create the case directory (or check that an existing one is a case of a format we read)."""
        meta = self.root / "case.json"
        if meta.is_file():
            self.check()
            return
        if self.root.exists() and not self.root.is_dir():
            raise CaseError(f"{self.root}: exists and is not a directory")
        if self.root.is_dir() and any(p.name != ".lock" for p in self.root.iterdir()):
            raise CaseError(f"{self.root}: directory is not empty and is not a case (no case.json)")
        try:
            for d in (
                self.root / FRAMES,
                self.root / FINDINGS,
                self.root / COVERAGE,
                self.manifest_dir,
                self.tmp_dir,
            ):
                d.mkdir(parents=True, exist_ok=True)
            from .._version import __version__

            write_text_atomic(meta, json.dumps({"format": STORE_FORMAT, "created_by": __version__}) + "\n")
        except OSError as e:
            raise CaseError(f"{self.root}: cannot create the case ({e.strerror or e})") from None

    def check(self) -> None:
        meta = self.root / "case.json"
        if not meta.is_file():
            raise CaseError(f"{self.root}: not a case directory (no case.json; create one with ingest)")
        try:
            fmt = json.loads(meta.read_text()).get("format")
        except (OSError, ValueError) as e:
            raise CaseError(f"{meta}: unreadable ({e})") from None
        if fmt != STORE_FORMAT:
            raise CaseError(f"{self.root}: case store format {fmt!r}, this version reads {STORE_FORMAT}")

    # manifest
    def manifest_rows(self) -> list[dict[str, Any]]:
        """Every manifest row (one per capture attempted), as plain dicts."""
        out: list[dict[str, Any]] = []
        if not self.manifest_dir.is_dir():
            return out
        for p in sorted(self.manifest_dir.glob("*.parquet")):
            try:
                out += pq.read_table(p).to_pylist()
            except (OSError, pa.ArrowException) as e:
                raise CaseError(f"{p}: unreadable manifest row ({e})") from None
        return out

    def known(self) -> dict[str, dict[str, Any]]:
        """Manifest rows by full sha256 (rows without one, for unreadable files, are left out)."""
        return {r["sha256"]: r for r in self.manifest_rows() if r.get("sha256")}

    def write_manifest_row(self, row: Mapping[str, Any]) -> None:
        tmp = self.tmp_dir / f"manifest-{row['capture']}-{uuid.uuid4().hex}.parquet"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(manifest_table([row]), tmp)
        _fsync(tmp)
        os.replace(tmp, self.manifest_dir / f"{row['capture']}.parquet")

    # partitions
    def staging(self, cid: str) -> Path:
        d = self.tmp_dir / f"{cid}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        d.mkdir(parents=True)
        return d

    @staticmethod
    def write_part(staging: Path, table: str, data: pa.Table) -> None:
        d = staging / table
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, d / PART)
        _fsync(d / PART)

    def commit(self, staging: Path, cid: str) -> list[str]:
        """Move every staged partition of capture ``cid`` into place (replacing stale ones); return the names."""
        names = sorted(p.name for p in staging.iterdir() if p.is_dir())
        for name in names:
            target = self.partition(name, cid)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.rename(staging / name, target)
        shutil.rmtree(staging, ignore_errors=True)
        return names

    def drop_capture(self, cid: str) -> None:
        """Remove every partition of capture ``cid`` (not its manifest row)."""
        for d in self.partition_dirs():
            if d.name == f"capture={cid}":
                shutil.rmtree(d, ignore_errors=True)

    def partition_dirs(self) -> list[Path]:
        out: list[Path] = []
        for base in (self.root / FRAMES, self.root / FINDINGS, self.root / COVERAGE):
            if base.is_dir():
                out += [p for p in base.rglob("capture=*") if p.is_dir()]
        return out

    def tables(self) -> list[str]:
        """Every frame stored in this case (the union over its captures)."""
        base = self.root / FRAMES
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def clean(self) -> list[Path]:
        """Remove what an interrupted ingest left: staging dirs and partitions without an ``ok`` manifest row.
        Call only while holding the case lock. Returns what was removed."""
        removed: list[Path] = []
        if self.tmp_dir.is_dir():
            for p in self.tmp_dir.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed.append(p)
        ok = {r["capture"] for r in self.manifest_rows() if r.get("status") == OK}
        for d in self.partition_dirs():
            if d.name.split("=", 1)[1] not in ok:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
        return removed


def _fsync(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def empty_frame_table(name: str) -> pa.Table:
    return arrow_schema(SCHEMAS[name]).empty_table()


__all__ = [
    "COVERAGE_SCHEMA",
    "FAILED",
    "FINDINGS_SCHEMA",
    "MANIFEST_SCHEMA",
    "OK",
    "VOLATILE",
    "CaseError",
    "CaseStore",
    "arrow_schema",
    "arrow_to_pandas",
    "capture_id",
    "coverage_table",
    "decode_json",
    "encode_json",
    "findings_from_arrow",
    "findings_table",
    "from_arrow",
    "manifest_table",
    "to_arrow",
]
