"""Many captures as one case: a Parquet store per frame, DuckDB to query it, Dask to ingest fleets.

``ingest CAPTURES_OR_DIRS... --case DIR`` (or :func:`ingest`) loads each capture, runs the checks and writes
its frames, findings and coverage into ``DIR`` (:mod:`.store` describes the layout and the manifest);
re-ingesting skips captures already there (by sha256), a capture that fails is recorded with its error, and
an interrupted ingest leaves nothing that looks complete. :func:`open_case` queries the case with DuckDB
(:mod:`.query`: ``case.sql(...)`` → pandas, ``case.frame("stun")`` typed as ``load`` types it).
:mod:`.correlate` holds the cross-capture checks (family ``CASE``) and the fleet report (:mod:`.fleetout`
renders it as HTML and SARIF); :mod:`.watch` ingests ring-buffer files as they are closed; :mod:`.cluster`
starts a loopback Dask cluster.

    python -m rtcforensics.case ingest sample_captures --case c        # or: rtcforensics ingest ...
    python -m rtcforensics.case query c "select slug, count(*) from findings group by 1"
    python -m rtcforensics.case ingest /shared/pcaps --case /shared/c --jobs 2
    python -m rtcforensics.case ingest /shared/pcaps --case /shared/c --scheduler tcp://HOST:8786
    python -m rtcforensics.case watch /var/spool/ring --case c           # dumpcap -b files:N -w ring/x.pcapng
    dumpcap -w - | python -m rtcforensics.case ingest - --case c        # a capture from standard input
    python -m rtcforensics.case fleet c --format json -o fleet.json     # or html, sarif, table
    python -m rtcforensics.case fleet c --param CASE005.turn_servers=203.0.113.0/24   # declared relays

Fleets on Dask: ``dask scheduler`` on one machine, ``dask worker tcp://HOST:8786 --nthreads 1 --nworkers N``
on each worker machine (same Python environment with this package; the captures and the case directory on
a shared file system). One capture is one task, so throughput grows with worker processes until the shared
disk is the limit; the result is the same as a local ingest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ingestion import IngestResult, ingest
    from .query import Case, open_case

__all__ = ["Case", "IngestResult", "ingest", "open_case"]


def __getattr__(name: str) -> Any:  # heavy imports (duckdb, pyarrow) only when used
    if name in ("Case", "open_case"):
        from . import query

        return getattr(query, name)
    if name in ("ingest", "IngestResult"):
        from . import ingestion

        return getattr(ingestion, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
