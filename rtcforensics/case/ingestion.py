"""Ingest captures into a case: load, run the checks, write frames, findings and coverage per capture.

:func:`ingest_one` is the unit of work (one capture → its partitions and manifest row); it never raises for a
bad capture (the manifest row says ``failed`` with the error) and is what runs in a local process pool
(``jobs``) or on a Dask distributed worker (``scheduler``). :func:`ingest` is the client side: it expands the
inputs, hashes them, skips those already in the case, hands out the work and reports progress. The client
holds the case lock (one ingest per case at a time) and cleans what an interrupted ingest left.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from .. import budget
from .._version import __version__
from ..errors import RtcForensicsError
from .store import (
    FAILED,
    OK,
    PART,
    CaseError,
    CaseStore,
    capture_id,
    coverage_table,
    findings_table,
    to_arrow,
)
from .streamed import MAX_DATAGRAMS

CAPTURE_SUFFIXES = (".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap", ".cap")
# Captures above this size (bytes on disk) are streamed (``dissect.stream``) rather than loaded in memory;
# standard input ("-") always is. Streamed, a capture's packets, flows, rtp and anomalies frames are stored,
# its stun and dtls frames are built from the stream's datagrams (up to ``streamed.MAX_DATAGRAMS``) and the
# checks that need only those are run; the others are recorded in coverage as not run (see case.streamed).
STREAM_ABOVE = 1 << 30
STDIN = "-"
KEYLOG_AUTO = "auto"
MEMORY_AUTO = "auto"  # IngestOptions.max_memory: this process's memory budget (rtcforensics.budget)
SCHEDULER_CONNECT_TIMEOUT_S = 20

Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def keylog_for(path: Path) -> Path | None:
    """The keylog beside a capture: ``<name>.keylog`` for ``<name>.pcapng`` (also .pcap, .cap, .gz)."""
    name = path.name
    for suf in CAPTURE_SUFFIXES:
        if name.lower().endswith(suf):
            k = path.with_name(name[: -len(suf)] + ".keylog")
            return k if k.is_file() else None
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, RtcForensicsError):
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _failed_row(task: Mapping[str, Any], error: str, started: float) -> dict[str, Any]:
    return {
        "capture": task["capture"],
        "sha256": task.get("sha256"),
        "path": task["path"],
        "name": Path(task["path"]).name,
        "size": task.get("size"),
        "tool_version": __version__,
        "status": FAILED,
        "error": error,
        "keylog": task.get("keylog"),
        "findings": None,
        "secrets_shown": bool(task.get("show_secrets")),
        "ingested": pd.Timestamp.now(tz="UTC"),
        "duration_s": round(time.time() - started, 3),
        "worker": _worker_name(),
        "frames": [],
    }


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def ingest_one(task: Mapping[str, Any]) -> dict[str, Any]:
    """Ingest one capture into the case at ``task["case"]`` and return its manifest row.

    ``task``: ``case`` (directory), ``path``, ``sha256``, ``capture`` (partition id), ``size``, ``keylog``
    (path or None), ``show_secrets``, ``params`` (check thresholds), ``max_memory`` (the memory budget of the
    process while it runs, bytes or None for none; absent: the process's own). Partitions are written to a
    staging directory and renamed into place; the manifest row is written last."""
    with budget.limited(task["max_memory"]) if "max_memory" in task else nullcontext():
        return _ingest_one(task)


def _ingest_one(task: Mapping[str, Any]) -> dict[str, Any]:
    from ..capture import load
    from ..checks.analyze import analyze
    from ..report.safe import redact, redact_frame
    from ..schema import SCHEMAS

    started = time.time()
    store = CaseStore(task["case"])
    cid = task["capture"]
    show = bool(task.get("show_secrets"))
    staging = store.staging(cid)
    if task.get("stream"):
        return _ingest_streamed(task, store, staging, started)
    try:
        cap = load(task["path"], keylog=task.get("keylog"))
        packets = cap.get_frame("packets")  # reads the file: a broken capture fails here, as in the CLI
        report = analyze(cap, params=dict(task.get("params") or {}))
        errors: list[str] = []
        written: list[str] = []
        for name in cap.frame_names():
            if name not in SCHEMAS:
                continue
            try:
                df = cap.get_frame(name)
                if name == "anomalies" and len(report.anomalies):
                    df = SCHEMAS[name].conform(pd.concat([df, report.anomalies], ignore_index=True))
            except Exception as e:
                errors.append(f"frame {name}: {_one_line(e)}")
                continue
            store.write_part(staging, name, to_arrow(redact_frame(df, show), SCHEMAS[name]))
            written.append(name)
        findings = [f.to_dict() for f in report.findings]
        store.write_part(staging, "findings", findings_table(redact(findings, show)))
        store.write_part(
            staging, "coverage", coverage_table(redact([c.to_dict() for c in report.coverage], show))
        )
        stale = store.manifest_dir / f"{cid}.parquet"
        if stale.exists():  # re-ingest (retry or force): the old row must not vouch for half-new partitions
            stale.unlink()
        store.commit(staging, cid)
        ts = packets["ts"].dropna() if "ts" in packets.columns else pd.Series([], dtype=object)
        label = task.get("label", task["path"])  # "-": a capture spooled from standard input
        row = {
            "capture": cid,
            "sha256": task["sha256"],
            "path": label,
            "name": "<stdin>" if label == STDIN else Path(label).name,
            "size": task.get("size"),
            "packets": len(packets),
            "first_ts": ts.min() if len(ts) else None,
            "last_ts": ts.max() if len(ts) else None,
            "tool_version": __version__,
            "status": OK,
            "error": "; ".join(errors) or None,
            "keylog": task.get("keylog"),
            "truncated": bool(report.capture.get("truncated", False)),
            "incomplete": "; ".join(redact(list(report.incomplete), show)) or None,
            "findings": len(findings),
            "checks_failed": sum(c.status == "failed" for c in report.coverage),
            "frames": written,
            "secrets_shown": show,
            "ingested": pd.Timestamp.now(tz="UTC"),
            "duration_s": round(time.time() - started, 3),
            "worker": _worker_name(),
        }
    except Exception as e:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        row = _failed_row(task, _one_line(e), started)
    store.write_manifest_row(row)
    return row


STREAMED_DATASETS = ("packets", "flows", "rtp", "anomalies")  # the stream's datasets that are frames


def _ingest_streamed(
    task: Mapping[str, Any], store: CaseStore, staging: Path, started: float
) -> dict[str, Any]:
    """Ingest one capture through the streaming driver (a large file, or standard input when ``path`` is
    "-": its sha256, hence its id, is known only at the end). The stream writes the packets, flows, rtp and
    anomalies partitions straight into the staging directory; the `stun` and `dtls` frames are then built
    from its datagrams and the checks whose frames are all there are run (``case.streamed``); the others are
    recorded in coverage as not observable with the reason, so the manifest row says why the run is
    ``incomplete``. Returns the manifest row; for standard input whose content is already in the case, a row
    with status ``skipped`` (nothing written)."""
    import shutil

    from ..dissect.stream import CHUNK_PACKETS, stream
    from ..report.safe import redact, redact_frame
    from ..schema import SCHEMAS
    from .streamed import analyze_streamed

    cid = task["capture"]
    src = task["path"]
    show = bool(task.get("show_secrets"))
    try:
        r = stream(
            task.get("source") or src,
            staging,
            chunk_packets=int(task.get("chunk_packets") or CHUNK_PACKETS),
            max_packets=task.get("max_packets"),
        )
        sha = r.info["sha256"]
        if src == STDIN:
            cid = capture_id(sha)
            prev = store.known().get(sha)
            if prev is not None and prev["status"] == OK and not task.get("force"):
                shutil.rmtree(staging, ignore_errors=True)
                return {**prev, "status": "skipped"}
        why = (
            "standard input"
            if src == STDIN
            else f"{task.get('size') or 0:,} bytes, above the in-memory limit of {task.get('stream_above'):,}"
        )
        keylog = task.get("keylog") if src != STDIN else None
        sc = analyze_streamed(
            staging,
            r.info,
            how=why,
            name="<stdin>" if src == STDIN else src,
            keylog=keylog,
            params=dict(task.get("params") or {}),
            max_datagrams=int(task.get("max_datagrams") or MAX_DATAGRAMS),
        )
        for name in [p.name for p in staging.iterdir() if p.is_dir()]:
            if name not in STREAMED_DATASETS:  # datagrams, rtp_samples: inputs of the builders, not frames
                shutil.rmtree(staging / name)
        for name, df in sc.frames.items():
            store.write_part(staging, name, to_arrow(redact_frame(df, show), SCHEMAS[name]))
        if sc.anomalies is not None and len(sc.anomalies):
            _append_part(
                staging / "anomalies" / PART, to_arrow(redact_frame(sc.anomalies, show), SCHEMAS["anomalies"])
            )
        store.write_part(staging, "findings", findings_table(redact(sc.findings, show)))
        store.write_part(staging, "coverage", coverage_table(redact(sc.coverage, show)))
        stale = store.manifest_dir / f"{cid}.parquet"
        if stale.exists():
            stale.unlink()
        frames = (*STREAMED_DATASETS, *sc.frames)
        written = [n for n in store.commit(staging, cid) if n in frames]
        info = r.info
        incomplete = list(sc.incomplete)
        if info.get("truncated"):
            incomplete.append(
                "capture read only in part (truncated, damaged, max_packets or the memory budget)"
            )
        row = {
            "capture": cid,
            "sha256": sha,
            "path": src,
            "name": "<stdin>" if src == STDIN else Path(src).name,
            "size": task.get("size") if src != STDIN else None,
            "packets": int(info["packets"]),
            "first_ts": info["first_ts"],
            "last_ts": info["last_ts"],
            "tool_version": __version__,
            "status": OK,
            "error": "; ".join(sc.errors) or None,
            "keylog": keylog,
            "truncated": bool(info.get("truncated")),
            "findings": len(sc.findings),
            "checks_failed": sc.checks_failed,
            "frames": written,
            "secrets_shown": show,
            "ingested": pd.Timestamp.now(tz="UTC"),
            "duration_s": round(time.time() - started, 3),
            "worker": _worker_name(),
            "streamed": True,
            "incomplete": "; ".join(incomplete),
        }
    except Exception as e:
        shutil.rmtree(staging, ignore_errors=True)
        row = _failed_row({**task, "capture": cid}, _one_line(e), started)
        if src == STDIN:  # no id without the whole stream's hash: a failed stdin ingest is keyed by time
            row["capture"] = "stdin" + hashlib.sha256(str(started).encode()).hexdigest()[:11]
    store.write_manifest_row(row)
    return row


def _append_part(part: Path, rows: Any) -> None:
    """Add the Arrow table ``rows`` to the Parquet file ``part`` (row group by row group, then renamed)."""
    import pyarrow.parquet as pq

    if not rows.num_rows:
        return
    pf = pq.ParquetFile(part)
    tmp = part.with_name(".append.tmp")
    with pq.ParquetWriter(tmp, pf.schema_arrow) as w:
        for i in range(pf.num_row_groups):
            w.write_table(pf.read_row_group(i))
        w.write_table(rows.cast(pf.schema_arrow))
    os.replace(tmp, part)


# -- the client side ------------------------------------------------------------------------------


@dataclass
class IngestResult:
    """What one ``ingest`` call did: manifest rows of the captures it ingested (ok or failed), and the
    captures it skipped because their sha256 was already in the case."""

    case: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != OK]

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == OK]


@dataclass(frozen=True)
class IngestOptions:
    """How captures are ingested (see :func:`ingest`)."""

    jobs: int = 1
    scheduler: str | None = None
    keylog: str | None = KEYLOG_AUTO
    show_secrets: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    retry_failed: bool = False
    force: bool = False
    stream_above: int = STREAM_ABOVE  # bytes: larger captures are streamed (see STREAM_ABOVE)
    chunk_packets: int | None = None  # packets per chunk when streaming (dissect.stream.CHUNK_PACKETS)
    max_packets: int | None = None  # read at most this many packets of a streamed capture
    # STUN/DTLS/RTCP/ZRTP messages above which a streamed capture's stun/dtls frames and checks are not built
    max_datagrams: int = MAX_DATAGRAMS
    # memory budget in bytes of the ingest (None: none; "auto": this process's, rtcforensics.budget): divided
    # among local worker processes; on a Dask cluster, given per task (default: each worker's own)
    max_memory: int | str | None = MEMORY_AUTO

    def check(self) -> None:
        """Raise (one line) on options that cannot work, before any capture is read."""
        if self.jobs < 1:
            raise RtcForensicsError("--jobs must be at least 1")
        if self.max_memory != MEMORY_AUTO and not (
            self.max_memory is None or (isinstance(self.max_memory, int) and self.max_memory > 0)
        ):
            raise RtcForensicsError(
                f"max_memory must be a number of bytes, None or 'auto', not {self.max_memory!r}"
            )
        if self.params:
            from ..checks.analyze import resolve_params
            from ..checks.catalogue import load_catalogue

            try:
                resolve_params(load_catalogue(), self.params)
            except ValueError as e:
                raise RtcForensicsError(str(e)) from None
        if self.keylog not in (None, KEYLOG_AUTO) and not Path(self.keylog).is_file():
            raise RtcForensicsError(f"{self.keylog}: keylog file not found")


@contextmanager
def case_lock(store: CaseStore) -> Iterator[None]:
    """Exclusive lock on the case for one ingest (or watch) at a time."""
    store.root.mkdir(parents=True, exist_ok=True)
    path = store.root / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise CaseError(f"{store.root}: another ingest is writing to this case (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files, directories (their capture files) and globs → capture paths (the CLI's rules)."""
    from ..cli import expand_captures

    return [p.resolve() for p in expand_captures([str(i) for i in inputs])]


def plan(
    store: CaseStore, paths: Iterable[Path], opts: IngestOptions
) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[dict[str, Any]]]:
    """Tasks to run, captures skipped (path, reason), and rows for files that cannot even be read."""
    known = store.known()
    tasks: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    unreadable: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for p in paths:
        path = str(p)
        if opts.keylog == KEYLOG_AUTO:
            kl = keylog_for(p)
            klog = str(kl) if kl else None
        else:
            klog = opts.keylog
        try:
            if not p.is_file():
                raise OSError("no such file" if not p.exists() else "not a regular file")
            size = p.stat().st_size
            digest = sha256_file(p)
        except OSError as e:
            cid = "path" + hashlib.sha256(path.encode()).hexdigest()[: 16 - 4]
            unreadable.append(
                _failed_row(
                    {"capture": cid, "path": path, "keylog": klog, "show_secrets": opts.show_secrets},
                    f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})",
                    time.time(),
                )
            )
            continue
        if digest in seen:
            skipped.append((path, f"same content as {seen[digest]} in this run"))
            continue
        seen[digest] = path
        prev = known.get(digest)
        if prev is not None and not opts.force and (prev["status"] == OK or not opts.retry_failed):
            skipped.append((path, f"already in the case ({prev['status']}, as {prev['path']})"))
            continue
        tasks.append(
            {
                "case": str(store.root.resolve()),
                "path": path,
                "sha256": digest,
                "capture": capture_id(digest),
                "size": size,
                "keylog": klog,
                "show_secrets": bool(opts.show_secrets),
                "params": dict(opts.params),
                **_stream_task(opts, size > opts.stream_above),
            }
        )
    return tasks, skipped, unreadable


def _stream_task(opts: IngestOptions, stream: bool) -> dict[str, Any]:
    if not stream:
        return {}
    return {
        "stream": True,
        "stream_above": opts.stream_above,
        "chunk_packets": opts.chunk_packets,
        "max_packets": opts.max_packets,
        "max_datagrams": opts.max_datagrams,
        "force": opts.force,
    }


def _memory_task(opts: IngestOptions) -> dict[str, Any]:
    """The task key of ``opts.max_memory`` for a capture ingested in this process (none: the process's)."""
    return {} if opts.max_memory == MEMORY_AUTO else {"max_memory": opts.max_memory}


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the client decides what stops, not the workers
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_tasks(
    tasks: list[dict[str, Any]],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    on_row: Callable[[dict[str, Any]], None] = lambda r: None,
    max_memory: int | str | None = MEMORY_AUTO,
) -> list[dict[str, Any]]:
    """Run :func:`ingest_one` over ``tasks`` in this process, ``jobs`` local processes, or on the Dask
    cluster at ``scheduler``; call ``on_row`` as each finishes. A task whose worker died is recorded failed.
    ``max_memory`` (see :class:`IngestOptions`): each local worker gets its share."""
    rows: list[dict[str, Any]] = []
    total = budget.limit() if isinstance(max_memory, str) else max_memory  # str: MEMORY_AUTO
    share: dict[str, int | None] = {"max_memory": total}
    if scheduler:
        share = {} if isinstance(max_memory, str) else share  # "auto": each Dask worker's own default
    elif jobs > 1 and len(tasks) > 1:
        share = {"max_memory": budget.per_worker(total, min(jobs, len(tasks)))}
    tasks = [{**t, **share} for t in tasks]

    def done(task: dict[str, Any], row: dict[str, Any] | None, err: BaseException | None) -> None:
        if row is None:
            row = _failed_row(task, f"worker failed: {_one_line(err) if err else 'no result'}", time.time())
            CaseStore(task["case"]).write_manifest_row(row)
        rows.append(row)
        on_row(row)

    if not tasks:
        return rows
    if scheduler:
        _run_dask(tasks, scheduler, done)
    elif jobs > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: the client may hold threads (pyarrow); forking them is unsafe
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
        ) as ex:
            futs = {ex.submit(ingest_one, t): t for t in tasks}
            for fut in as_completed(futs):
                try:
                    done(futs[fut], fut.result(), None)
                except Exception as e:
                    done(futs[fut], None, e)
    else:
        for t in tasks:
            done(t, ingest_one(t), None)
    return rows


def _run_dask(
    tasks: list[dict[str, Any]],
    scheduler: str,
    done: Callable[[dict[str, Any], dict[str, Any] | None, BaseException | None], None],
) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise RtcForensicsError(
            "--scheduler needs dask[distributed] (pip install rtcforensics[case])"
        ) from None
    try:
        client = Client(scheduler, timeout=f"{SCHEDULER_CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as e:
        raise RtcForensicsError(f"{scheduler}: cannot reach the Dask scheduler ({_one_line(e)})") from None
    try:
        futs = client.map(
            ingest_one,
            tasks,
            pure=False,
            key=[f"rtcf-ingest-{t['capture']}-{os.getpid()}-{i}" for i, t in enumerate(tasks)],
        )
        by_key = {f.key: t for f, t in zip(futs, tasks)}
        for fut in as_completed(futs):
            try:
                done(by_key[fut.key], fut.result(), None)
            except Exception as e:
                done(by_key[fut.key], None, e)
    finally:
        client.close()


@contextmanager
def writing(store: CaseStore, progress: Progress = _quiet) -> Iterator[None]:
    """Create the case if needed, hold its lock, and remove what an interrupted ingest left."""
    store.create()
    with case_lock(store):
        for p in store.clean():
            progress(f"removed {p.relative_to(store.root)} (left by an interrupted ingest)")
        yield


def ingest_files(
    store: CaseStore,
    files: Sequence[Path],
    result: IngestResult,
    opts: IngestOptions,
    progress: Progress = _quiet,
) -> None:
    """Ingest ``files`` into ``store`` (the caller holds the lock: :func:`writing`), adding to ``result``."""
    tasks, skipped, unreadable = plan(store, files, opts)
    result.skipped += skipped
    for path, why in skipped:
        progress(f"skip {path}: {why}")
    for row in unreadable:
        store.write_manifest_row(row)
        result.rows.append(row)
        progress(f"FAILED: {row['error']}")
    done = 0

    def on_row(row: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        result.rows.append(row)
        if row["status"] == OK:
            progress(
                f"[{done}/{len(tasks)}] {row['path']}: {row['packets']} packets, {row['findings']} finding(s) "
                f"({row['duration_s']:.1f} s)"
            )
        else:
            progress(f"[{done}/{len(tasks)}] {row['path']}: FAILED: {row['error']}")

    run_tasks(tasks, jobs=opts.jobs, scheduler=opts.scheduler, on_row=on_row, max_memory=opts.max_memory)


def ingest(
    inputs: Sequence[str | os.PathLike[str]],
    case: str | os.PathLike[str],
    *,
    progress: Progress = _quiet,
    **options: Any,
) -> IngestResult:
    """Ingest captures (files, directories, globs) into the case directory ``case`` (created if needed).

    ``options`` (:class:`IngestOptions`): ``jobs`` local worker processes, or ``scheduler`` a Dask distributed
    scheduler address; ``keylog`` ``"auto"`` (``<name>.keylog`` beside each capture), a path (one keylog for
    all) or None; ``show_secrets``; ``params`` check thresholds as for ``analyze``. Captures whose sha256 is
    already in the case are skipped (``retry_failed``: try failed ones again; ``force``: re-ingest all).

    ``"-"`` among ``inputs`` reads a capture from standard input. It, and every capture larger than
    ``stream_above`` bytes (default :data:`STREAM_ABOVE`, 1 GiB), is streamed (``dissect.stream``, in chunks
    of ``chunk_packets``; ``max_packets`` stops early): its packets, flows, rtp and anomalies frames are
    stored in constant memory; its stun and dtls frames are built from the stream's STUN/DTLS messages (when
    there are at most ``max_datagrams``) and the checks that need only them are run; the others are recorded
    in coverage as not run (not observable, with the reason) and its manifest row says ``streamed`` and why
    it is ``incomplete``."""
    try:
        opts = IngestOptions(**options)
    except TypeError as e:
        raise TypeError(f"ingest(): {e}") from None
    opts.check()
    store = CaseStore(case)
    stdin = [i for i in inputs if os.fspath(i) == STDIN]
    if len(stdin) > 1:
        raise RtcForensicsError("'-' (standard input) can be given only once")
    rest = [i for i in inputs if os.fspath(i) != STDIN]
    files = expand_inputs(rest) if rest or not stdin else []
    result = IngestResult(Path(case))
    with writing(store, progress):
        if stdin:
            ingest_stdin(store, result, opts, progress)
        ingest_files(store, files, result, opts, progress)
    return result


class _Chain:
    """A read-only binary stream: the spooled head (a file), then the rest of the original stream."""

    def __init__(self, head: BinaryIO, tail: BinaryIO) -> None:
        self.head, self.tail, self.name = head, tail, STDIN

    def read(self, n: int = -1) -> bytes:
        data = self.head.read(n) if self.head is not None else b""
        if data:
            return data
        return self.tail.read(n)


def ingest_stdin(
    store: CaseStore,
    result: IngestResult,
    opts: IngestOptions,
    progress: Progress = _quiet,
    source: BinaryIO | None = None,
) -> None:
    """Ingest the capture on standard input (or ``source``) in this process (the caller holds the lock).

    Its first ``stream_above`` bytes are spooled to a file in the case's ``.tmp``: a capture that ends within
    them is ingested as a file (in memory, every check run: the same frames and findings as ingesting the file,
    with path "-"); a longer one is streamed (spooled head, then the rest of the stream: constant memory)."""
    src = source if source is not None else sys.stdin.buffer
    store.tmp_dir.mkdir(parents=True, exist_ok=True)
    spool = store.tmp_dir / f"stdin-{os.getpid()}-{time.time_ns()}.spool"
    try:
        h = hashlib.sha256()
        size = 0
        ended = False
        with spool.open("wb") as fh:
            while size <= opts.stream_above:
                block = src.read(1 << 20)
                if not block:
                    ended = True
                    break
                fh.write(block)
                h.update(block)
                size += len(block)
        if ended:
            tasks, skipped, unreadable = plan(store, [spool], opts)
            if skipped:
                result.skipped.append((STDIN, skipped[0][1]))
                progress(f"skip standard input: {skipped[0][1]}")
                return
            if unreadable:  # the spool we just wrote: cannot happen short of a full disk
                raise CaseError(f"standard input: {unreadable[0]['error']}")
            task = {**tasks[0], "label": STDIN, **_memory_task(opts)}
            task.pop("stream", None)
            row = ingest_one(task)
        else:
            with spool.open("rb") as head:
                task = {
                    "case": str(store.root.resolve()),
                    "path": STDIN,
                    "sha256": None,
                    "capture": "stdin",
                    "size": None,
                    "keylog": None,
                    "show_secrets": bool(opts.show_secrets),
                    "params": dict(opts.params),
                    **_stream_task(opts, True),
                    **_memory_task(opts),
                    "source": _Chain(head, src),
                }
                row = ingest_one(task)
    finally:
        spool.unlink(missing_ok=True)
    if row["status"] == "skipped":
        result.skipped.append((STDIN, f"already in the case ({OK}, as {row['path']})"))
        progress(f"skip standard input: already in the case as {row['path']}")
        return
    result.rows.append(row)
    if row["status"] == OK:
        progress(
            f"standard input: {row['packets']} packets, {row['findings']} finding(s) ({row['duration_s']:.1f} s)"
            + (f"; incomplete: {row['incomplete']}" if row.get("incomplete") else "")
        )
    else:
        progress(f"standard input: FAILED: {row['error']}")


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
