"""DuckDB over a case store: SQL across every capture, frames back as pandas.

``open_case(DIR)`` returns a :class:`Case`. Its DuckDB connection (in memory; the Parquet files are read in
place, nothing is loaded until asked) has one view per stored frame (``stun``, ``dtls``, ``packets`` ...) plus
``findings``, ``coverage`` and ``manifest``. Every view but ``manifest`` carries a ``capture`` column (the
capture id, 16 hex digits of its sha256; ``manifest`` has the rest: path, sha256, packets, time span, status)
and shows only captures whose ingest completed (an ``ok`` manifest row). ``object`` columns of the frames
(lists, dicts) are DuckDB ``JSON`` (``classes->>0``, ``CAST(classes AS VARCHAR[])``); ``findings.endpoints``,
``frames`` and ``references`` are lists (``unnest(endpoints)``, ``list_contains(frames, 36)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from .. import tables  # noqa: F401  (registers the frame schemas: without it only anomalies is known)
from ..errors import RtcForensicsError
from ..schema import SCHEMAS
from .store import (
    COVERAGE,
    COVERAGE_SCHEMA,
    FINDINGS,
    FINDINGS_SCHEMA,
    MANIFEST_SCHEMA,
    OK,
    PART,
    CaseStore,
    arrow_schema,
    arrow_to_pandas,
    findings_from_arrow,
    from_arrow,
)

FIXED_TABLES = ("findings", "coverage", "manifest")


def _sql_str(s: str | os.PathLike[str]) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _arrow(result: Any) -> Any:
    """A DuckDB relation as an Arrow table (duckdb 1.x and 2.x)."""
    fn = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
    return fn()


class Case:
    """A case directory opened for queries. ``sql(q)`` → pandas; ``frame(name)`` → the frame across all
    captures, typed as ``load`` types it (built on first use, cached); ``relation(name)`` → a lazy DuckDB
    relation. Call :meth:`refresh` after an ingest to see new captures."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        try:
            import duckdb
        except ImportError:
            raise RtcForensicsError("the case store needs duckdb (pip install rtcforensics[case])") from None
        self.store = CaseStore(root)
        self.store.check()
        self.root = self.store.root
        self.con = duckdb.connect(":memory:")
        self._frames: dict[str, pd.DataFrame] = {}
        self.refresh()

    # -- views --------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """(Re)create the views over what is on disk now."""
        self._frames.clear()
        manifest = self.store.manifest_dir
        if any(manifest.glob("*.parquet")):
            self.con.execute(
                f"create or replace view manifest as select * from read_parquet("
                f"{_sql_str(manifest / '*.parquet')}, union_by_name=true)"
            )
        else:
            self._empty_view("manifest", MANIFEST_SCHEMA)
        self.tables_ = list(FIXED_TABLES)
        for name in (FINDINGS, COVERAGE, *self.store.tables()):
            d = self.store.table_dir(name)
            json_cols: list[str] = []
            if name == FINDINGS:
                schema = FINDINGS_SCHEMA
                json_cols = ["evidence"]
            elif name == COVERAGE:
                schema = COVERAGE_SCHEMA
            elif name in SCHEMAS:
                schema = arrow_schema(SCHEMAS[name])
                json_cols = [c.name for c in SCHEMAS[name].columns if c.dtype == "object"]
            else:
                continue  # a frame this version does not know (stored by a newer one): not shown
            if not any(d.glob(f"capture=*/{PART}")):
                self._empty_view(name, schema, with_capture=True)
            else:
                present = self._columns(d)
                casts = [f"CAST({_ident(c)} AS JSON) AS {_ident(c)}" for c in json_cols if c in present]
                replace = f" replace ({', '.join(casts)})" if casts else ""
                self.con.execute(
                    f"create or replace view {_ident(name)} as select *{replace} from read_parquet("
                    f"{_sql_str(d / 'capture=*' / PART)}, hive_partitioning=true, union_by_name=true, "
                    f"hive_types={{'capture': VARCHAR}}) "
                    f"where capture in (select capture from manifest where status = '{OK}')"
                )
            if name not in self.tables_:
                self.tables_.append(name)

    def _columns(self, d: Path) -> set[str]:
        rel = self.con.sql(
            f"select * from read_parquet({_sql_str(d / 'capture=*' / PART)}, union_by_name=true) limit 0"
        )
        return set(rel.columns)

    def _empty_view(self, name: str, schema: Any, with_capture: bool = False) -> None:
        tbl = schema.empty_table()
        if with_capture:
            import pyarrow as pa

            tbl = tbl.add_column(0, "capture", pa.array([], pa.string()))
        self.con.register(f"__empty_{name}", tbl)
        self.con.execute(
            f"create or replace view {_ident(name)} as select * from {_ident('__empty_' + name)}"
        )

    # -- queries ------------------------------------------------------------------------------------
    @property
    def tables(self) -> list[str]:
        """The views: findings, coverage, manifest and one per stored frame."""
        return list(self.tables_)

    def sql(self, query: str, params: Any = None) -> pd.DataFrame:
        """Run SQL over the case; the result as a pandas frame (nullable integers kept exact)."""
        import duckdb

        try:
            rel = self.con.sql(query, params=params)
            if rel is None:  # a statement (create view ...), not a query
                return pd.DataFrame()
            table = _arrow(rel)
        except duckdb.Error as e:
            raise RtcForensicsError(f"query failed: {' '.join(str(e).split())}") from None
        return arrow_to_pandas(table)

    def relation(self, name: str) -> Any:
        """A lazy DuckDB relation over one view (filter, project, aggregate before anything is read)."""
        self._check_table(name)
        return self.con.table(name)

    def _check_table(self, name: str) -> None:
        if name not in self.tables_:
            raise RtcForensicsError(
                f"{self.root}: no table {name!r} in this case (tables: {', '.join(self.tables_)})"
            )

    def frame(self, name: str, where: str | None = None) -> pd.DataFrame:
        """Frame ``name`` over every capture of the case, as ``rtcforensics.load`` types it (declared dtypes,
        categoricals, lists and dicts), with the ``capture`` column first. ``findings`` / ``coverage`` /
        ``manifest`` work too. ``where``: an SQL condition to read only part (not cached)."""
        if where is None and name in self._frames:
            return self._frames[name]
        self._check_table(name)
        q = f"select * from {_ident(name)}" + (f" where {where}" if where else "")
        rel = self.con.sql(q)
        if name in SCHEMAS:
            df = from_arrow(_arrow(rel), name)
        elif name == FINDINGS:
            df = findings_from_arrow(_arrow(rel))
        else:
            df = arrow_to_pandas(_arrow(rel))
        if where is None:
            self._frames[name] = df
        return df

    def manifest(self) -> pd.DataFrame:
        return self.sql("select * from manifest order by path")

    def captures(self) -> list[str]:
        """Capture ids whose ingest completed."""
        return [
            str(c)
            for c in self.sql(f"select capture from manifest where status = '{OK}' order by capture")[
                "capture"
            ]
        ]

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Case:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Case {self.root} ({len(self.captures())} captures; tables: {', '.join(self.tables_)})>"


def open_case(root: str | os.PathLike[str]) -> Case:
    """Open the case directory ``root`` (made by ``rtcforensics ingest``) for DuckDB queries."""
    return Case(root)
