"""Command line: ``rtcforensics analyze | summary | export | decrypt | checks | explain``.

Exit codes (the same for every subcommand; :data:`EXIT_CODES`):

- 0 — nothing at or above ``--fail-on`` (default ``high``) and the run is complete;
- 1 — findings at or above ``--fail-on``; ``decrypt``: packets failed authentication, or a ``--key`` given
  verified no packet;
- 2 — a usage or input error, reported as ONE line naming the file and the problem (never a traceback for a
  user's mistake); nothing analysed;
- 3 — incomplete: a check failed, a tool failure or time-out made a check not observable, a budget or limit
  cut the work short, a capture of a batch could not be analysed (its error is in the report), ``export``
  could not write every frame, the process ran out of memory (frames that could not be built are named in
  the report; when even the report could not be written, one line says so). Findings at or above
  ``--fail-on`` take precedence (exit 1): either way the run needs a look;
- 4 — an internal error (a bug): one line on stderr (``RTCF_DEBUG=1`` shows the traceback);
- 130 — interrupted (Ctrl-C); no truncated output file is left behind.

Progress goes to stderr (file names escaped), results to stdout or ``-o``. Subcommands are declared in
:data:`SUBCOMMANDS` (one function each that adds its parser); append to it to add one.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import budget
from ._version import __version__
from .capture import NO_LIMITS, FrameUnavailable, ReadLimits
from .errors import RtcForensicsError
from .report.safe import for_terminal_name

FORMATS = ("table", "json", "sarif", "html", "markdown")
SEVERITIES = ("info", "low", "medium", "high", "critical", "none")
DEFAULT_FAIL_ON = "high"
# Read limits of every command that loads a capture (--max-packets, --max-bytes). A packet held costs about
# 0.1 KB (a tiny record) to 0.5 KB (media) of memory: the default keeps a hostile capture of millions of
# tiny records to a few hundred MB, far beyond what one call's capture holds. Hitting it: exit 3. Zero-length
# records are counted (an `empty_records` anomaly), not held, and do not count toward it.
DEFAULT_MAX_PACKETS = 5_000_000
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = {
    EXIT_OK: "nothing at or above --fail-on, run complete",
    EXIT_FINDINGS: "findings at or above --fail-on (decrypt: a packet failed authentication or a --key verified "
    "nothing)",
    EXIT_USAGE: "usage or input error (one line naming the file and the problem)",
    EXIT_INCOMPLETE: "incomplete run: a check failed, a tool failed or timed out, a limit was hit, a capture of "
    "a batch could not be analysed, or export could not write every frame",
    EXIT_INTERNAL: "internal error (a bug; RTCF_DEBUG=1 shows the traceback)",
    EXIT_INTERRUPTED: "interrupted",
}


class UsageError(Exception):
    """A mistake in the command line; the message is the one line shown."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse would print the usage too)
        raise UsageError(message)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def shown(path: Any) -> str:
    """A file name for a terminal line: control characters and bidi overrides shown as escapes."""
    return for_terminal_name(path)


def safe_path(path: str | os.PathLike[str]) -> Path:
    """A path no external tool can read as an option: one starting with ``-`` is made absolute."""
    p = Path(path)
    return p.absolute() if str(p).startswith("-") else p


def expand_captures(args: Sequence[str]) -> list[Path]:
    """Files, directories (their capture files) and globs → capture paths, in order, without duplicates."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(
                q for q in p.iterdir() if q.is_file() and q.name.lower().endswith(CAPTURE_SUFFIXES)
            )
            if not found:
                raise RtcForensicsError(
                    f"{a}: directory holds no capture files ({', '.join(CAPTURE_SUFFIXES)})"
                )
            out += found
        elif not p.exists() and any(ch in a for ch in "*?["):
            found = sorted(Path(x) for x in glob.glob(a) if Path(x).is_file())
            if not found:
                raise RtcForensicsError(f"{a}: no file matches this pattern")
            out += found
        else:
            out.append(p)
    return [safe_path(p) for p in dict.fromkeys(out)]


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for it in items or ():
        key, sep, value = it.partition("=")
        if not sep:
            raise UsageError(f"--param {it!r}: expected CHECK.NAME=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def count_arg(text: str) -> int | None:
    """``--max-packets``: a positive count (``_`` or ``,`` between digits allowed), or ``none``."""
    t = text.strip().lower().replace("_", "").replace(",", "")
    if t in ("none", "unlimited"):
        return None
    if not t.isdigit() or int(t) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of packets, or none")
    return int(t)


def size_arg(text: str) -> int:
    """``--max-bytes``: a positive size in bytes, with an optional binary unit (``512M``, ``4G``, ``4GiB``)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text.strip().lower().replace("_", ""))
    value = int(float(m[1]) * SIZE_UNITS[m[2]]) if m else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive size such as 4G, 512M or 1000000")
    return value


def memory_arg(text: str) -> int:
    """``--max-memory``: a size as for ``--max-bytes``, or ``0``/``none`` for no budget (returned as 0)."""
    if text.strip().lower() in ("0", "none", "unlimited"):
        return 0
    return size_arg(text)


def memory_budget(a: argparse.Namespace) -> int | None:
    """The memory budget of ``--max-memory`` in bytes: not given, the default (``budget.default_limit``);
    ``0``/``none``: None (no budget)."""
    given = getattr(a, "max_memory", None)
    return budget.default_limit() if given is None else (given or None)


def limits(a: argparse.Namespace) -> ReadLimits:
    """The read limits given on the command line, as ``capture.load`` takes them."""
    return ReadLimits(max_packets=a.max_packets, max_inflated=a.max_bytes)


def _load(
    path: Path,
    keylog: str | None,
    signalling: Sequence[str] | None,
    read_limits: ReadLimits = NO_LIMITS,
) -> Any:
    from .capture import load

    cap = load(
        safe_path(path),
        keylog=keylog and safe_path(keylog),
        signalling=[safe_path(s) for s in signalling or []] or None,
        **read_limits,
    )
    try:  # read the file now so that a broken capture is the user's error (exit 2), not a failed check
        cap.get_frame("packets")
    except (ImportError, KeyError, FrameUnavailable):  # not built (memory budget): the report says so
        pass
    return cap


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())


def analyze_one(
    path: str,
    keylog: str | None,
    signalling: Sequence[str] | None,
    params: dict[str, Any],
    show_secrets: bool,
    read_limits: ReadLimits = NO_LIMITS,
) -> dict[str, Any]:
    """Load, analyse and render one capture to its JSON document (runs in a worker process too)."""
    from .checks import analyze
    from .report.jsonout import document

    try:
        cap = _load(Path(path), keylog, signalling, read_limits)
        return document(analyze(cap, params=params), show_secrets=show_secrets)
    except RtcForensicsError as e:  # subclasses with extra __init__ arguments do not unpickle
        raise RtcForensicsError(_one_line(e)) from None


def cross_capture(docs: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """Identifiers (certificates, TURN servers and usernames, addresses) seen in more than one capture."""
    seen: dict[str, dict[str, list[str]]] = {}
    for d in docs:
        name = d["capture"].get("name") or d["capture"].get("path")
        for kind, values in (d["overview"].get("identifiers") or {}).items():
            for v in values:
                seen.setdefault(kind, {}).setdefault(v, [])
                if name not in seen[kind][v]:
                    seen[kind][v].append(name)
    return {
        k: {v: cs for v, cs in items.items() if len(cs) > 1}
        for k, items in seen.items()
        if any(len(cs) > 1 for cs in items.values())
    }


def _emit(text: str, out: str | None) -> None:
    if out:
        from .report.outfiles import write_atomic

        write_atomic(safe_path(out), text)
        _progress(f"wrote {shown(out)}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


# -- analyze -------------------------------------------------------------------------------------------------
def _failed(path: Path, error: str, i: int, n: int) -> dict[str, Any]:
    from .report.jsonout import failed_document

    _progress(f"[{i}/{n}] {shown(path)}: NOT ANALYSED: {shown(error)}")
    return failed_document(str(path), error)


def _done(doc: dict[str, Any], path: Path, i: int, n: int) -> None:
    run = doc.get("run") or {}
    extra = "" if run.get("complete", True) else "  (INCOMPLETE)"
    _progress(f"[{i}/{n}] {shown(path)}: {len(doc['findings'])} finding(s){extra}")


def _analyze_serial(
    paths: Sequence[Path], a: argparse.Namespace, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[Any]]:
    from .checks import analyze
    from .report.jsonout import document

    docs: list[dict[str, Any]] = []
    caps: list[Any] = []
    n = len(paths)
    for i, p in enumerate(paths, 1):
        _progress(f"[{i}/{n}] analysing {shown(p)} …")
        try:
            cap = _load(p, a.keylog, a.signalling, limits(a))
            doc = document(analyze(cap, params=params), show_secrets=a.show_secrets)
        except RtcForensicsError as e:
            if n == 1:
                raise  # one capture: the user's error, exit 2
            docs.append(_failed(p, _one_line(e), i, n))
            caps.append(None)
            continue
        except (MemoryError, RecursionError, Exception) as e:
            docs.append(_failed(p, f"internal error {type(e).__name__}: {_one_line(e)}", i, n))
            caps.append(None)
            continue
        docs.append(doc)
        caps.append(cap)
        _done(doc, p, i, n)
    return docs, caps


def _analyze_parallel(
    paths: Sequence[Path], a: argparse.Namespace, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Captures in worker processes. A worker that dies (OOM killer, a crash) breaks the pool: the captures
    not finished are retried one at a time, each in a fresh single-worker pool, so the one that kills its
    worker is named and every other result is kept. Each worker's memory budget is this process's divided by
    the number of workers (the retries keep that share)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    n = len(paths)
    results: dict[int, dict[str, Any]] = {}

    def collect(fut: Any, i: int) -> bool:
        p = paths[i]
        try:
            results[i] = fut.result()
        except BrokenProcessPool:
            return False
        except RtcForensicsError as e:
            results[i] = _failed(p, _one_line(e), i + 1, n)
            return True
        except Exception as e:
            results[i] = _failed(p, f"internal error {type(e).__name__}: {_one_line(e)}", i + 1, n)
            return True
        _done(results[i], p, i + 1, n)
        return True

    args = (a.keylog, a.signalling, params, a.show_secrets, limits(a))
    workers = min(a.jobs, n)
    share = (budget.per_worker(budget.limit(), workers),)  # each worker's memory budget
    with ProcessPoolExecutor(max_workers=workers, initializer=budget.set_limit, initargs=share) as ex:
        futs = {ex.submit(analyze_one, str(p), *args): i for i, p in enumerate(paths)}
        for fut in as_completed(futs):
            collect(fut, futs[fut])
    for i in [i for i in range(n) if i not in results]:
        _progress(f"[{i + 1}/{n}] {shown(paths[i])}: worker process died; retrying alone")
        with ProcessPoolExecutor(max_workers=1, initializer=budget.set_limit, initargs=share) as ex:
            if not collect(ex.submit(analyze_one, str(paths[i]), *args), i):
                results[i] = _failed(
                    paths[i],
                    "the worker process analysing it died twice (killed, e.g. by the "
                    "out-of-memory killer, or crashed)",
                    i + 1,
                    n,
                )
    return [results[i] for i in range(n)]


def render_report(fmt: str, docs: list[dict[str, Any]], caps: list[Any] | None = None) -> str:
    """The report text of ``docs`` in format ``fmt`` (a batch: one report per capture, and what they share)."""
    from .report import html, jsonout, markdown, sarif, table

    cross = cross_capture(docs) if len(docs) > 1 else {}
    if fmt == "json":
        return jsonout.render(docs[0] if len(docs) == 1 else docs, cross)
    if fmt == "sarif":
        return sarif.render(docs)
    if fmt == "html":
        return html.render(docs, caps, cross)
    if fmt == "markdown":
        return "\n".join(markdown.render(d) for d in docs)
    return "\n".join(table.render(d) for d in docs) + table.render_cross(cross)


def exit_code(docs: Sequence[dict[str, Any]], fail_on: str) -> int:
    """1 when a finding is at or above ``fail_on``; else 3 when any run is incomplete; else 0."""
    from .checks import Severity

    if fail_on != "none":
        level = Severity.parse(fail_on)
        if any(Severity.parse(f["severity"]) >= level for d in docs for f in d["findings"]):
            return EXIT_FINDINGS
    if any((d.get("run") or {}).get("complete") is False for d in docs):
        return EXIT_INCOMPLETE
    return EXIT_OK


def cmd_analyze(a: argparse.Namespace) -> int:
    from .checks import load_catalogue
    from .checks.analyze import resolve_params

    paths = expand_captures(a.captures)
    params = parse_params(a.param)
    try:
        resolve_params(load_catalogue(), params)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if a.jobs > 1 and len(paths) > 1:
        docs, caps = _analyze_parallel(paths, a, params), None
    else:
        docs, caps = _analyze_serial(paths, a, params)
    _emit(render_report(a.format, docs, caps), a.output)
    code = exit_code(docs, a.fail_on)
    incomplete = [d for d in docs if (d.get("run") or {}).get("complete") is False]
    if incomplete:
        _progress(
            f"INCOMPLETE: {len(incomplete)} of {len(docs)} capture(s) not fully analysed (exit "
            f"{code}): " + ", ".join(shown(d["capture"].get("name")) for d in incomplete[:10])
        )
    return code


# -- summary -------------------------------------------------------------------------------------------------
def cmd_summary(a: argparse.Namespace) -> int:
    from .checks.analyze import capture_info
    from .report.jsonout import capture_anomalies
    from .report.overview import build_overview
    from .report.safe import redact
    from .report.table import render_overview

    cut: list[str] = []
    for p in expand_captures(a.captures):
        cap = _load(p, a.keylog, a.signalling, limits(a))
        overview = redact(build_overview(cap), a.show_secrets)
        # after the overview: the capture has been read, so damage and tool failures are known
        _emit(
            render_overview(
                {
                    "capture": capture_info(cap),
                    "tool": {"version": __version__},
                    "overview": overview,
                    "anomalies": capture_anomalies(cap)[0],
                }
            ),
            None,
        )
        cut += cut_short(cap, a.show_secrets)
    return _said_incomplete(cut)


# -- export --------------------------------------------------------------------------------------------------
def export_table(df: Any, fmt: str, show_secrets: bool) -> Any:
    """A frame as it is written by ``export``: secrets redacted, structured cells as JSON text, and for CSV
    every cell a spreadsheet could run as a formula neutralised."""
    from .report.safe import csv_frame, redact_frame

    df = redact_frame(df, show_secrets).copy()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(
                lambda v: (
                    None
                    if v is None
                    else v
                    if isinstance(v, str)
                    else json.dumps(v, default=str, ensure_ascii=False)
                )
            )
    return csv_frame(df) if fmt == "csv" else df


def _write_table(df: Any, fmt: str) -> Callable[[Path], None]:
    def write(p: Path) -> None:
        if fmt == "csv":
            df.to_csv(p, index=False)
        else:
            df.to_parquet(p, index=False)

    return write


def cmd_export(a: argparse.Namespace) -> int:
    from .checks.analyze import capture_info
    from .report.outfiles import MANIFEST, SHA256SUMS, OutputDir

    cap = _load(Path(a.capture), a.keylog, a.signalling, limits(a))
    if a.indicators:
        return _export_indicators(cap, a)
    fmt = a.format
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RtcForensicsError(
                "parquet export needs pyarrow (pip install rtcforensics[export]); or use --format csv"
            ) from None
    out = OutputDir(safe_path(a.to), force=a.force)
    names = cap.frame_names()
    for name in [f"{n}.{fmt}" for n in names] + [MANIFEST, SHA256SUMS]:
        out.check_free(name)  # refuse before writing anything
    unavailable: list[dict[str, str]] = []
    try:
        for name in names:
            fname = f"{name}.{fmt}"
            try:
                df = cap.get_frame(name)
                out.write(fname, _write_table(export_table(df, fmt, a.show_secrets), fmt))
            except FrameUnavailable as e:  # not built: the memory budget (said in the manifest, exit 3)
                out.not_written(fname, _one_line(e))
                _progress(f"{name}: NOT EXPORTED ({shown(_one_line(e))})")
            except (
                ImportError
            ) as e:  # an optional extra not installed: not part of this installation's export
                unavailable.append({"name": fname, "reason": f"needs an optional extra ({_one_line(e)})"})
                _progress(f"{name}: not available in this installation ({shown(_one_line(e))})")
            except RtcForensicsError:  # the capture is unusable, or an output file appeared meanwhile
                raise
            except (
                Exception
            ) as e:  # one frame failing (building or writing) does not stop the export: it is said
                out.not_written(fname, f"{type(e).__name__}: {_one_line(e)}")
                _progress(f"{name}: NOT EXPORTED ({type(e).__name__}: {shown(_one_line(e))})")
            else:
                _progress(f"{name}: {len(df)} rows → {shown(out.path / fname)}")
    except KeyboardInterrupt:
        out.not_written("*", "interrupted")
        out.manifest(capture_info(cap), {"interrupted": True, "unavailable": unavailable})
        raise
    tool = _tool_failures(cap)
    cut = cut_short(cap, a.show_secrets)
    out.manifest(
        capture_info(cap), {"unavailable": unavailable, "tool_failures": tool, "incomplete_reasons": cut}
    )
    _progress(f"exported {len(out.files) - 2} frame(s) to {shown(out.path)} (manifest: {MANIFEST})")
    if out.missing:
        _progress(
            f"INCOMPLETE: {len(out.missing)} frame(s) not exported: "
            + ", ".join(m["name"] for m in out.missing)
        )
        return EXIT_INCOMPLETE
    if tool:
        _progress(f"INCOMPLETE: a tool failed, frames read through it may be incomplete: {shown(tool[0])}")
        return EXIT_INCOMPLETE
    return _said_incomplete(cut) or EXIT_OK


def cut_short(cap: Any, show_secrets: bool = False) -> list[str]:
    """Why the frames of ``cap`` may miss what the capture holds: a read limit (--max-packets, --max-bytes,
    a reassembly limit), a tool failure, a frame item that could not be built (redacted, keylog-free)."""
    from .checks.analyze import incomplete_reasons
    from .report.safe import redact, scrub_keylog

    try:
        return [str(r) for r in scrub_keylog(redact(incomplete_reasons([], cap.anomaly_log), show_secrets))]
    except RtcForensicsError:
        raise
    except Exception as e:  # the anomaly log itself could not be had: that is incomplete too
        return [f"the anomalies could not be read ({type(e).__name__})"]


def _said_incomplete(reasons: Sequence[str]) -> int:
    """EXIT_INCOMPLETE with one stderr line when ``reasons`` (from :func:`cut_short`) is not empty, else 0."""
    if not reasons:
        return EXIT_OK
    more = f" (and {len(reasons) - 1} more: see manifest.json)" if len(reasons) > 1 else ""
    _progress(f"INCOMPLETE: {shown(_one_line(reasons[0]))}{more}")
    return EXIT_INCOMPLETE


def _tool_failures(cap: Any) -> list[str]:
    try:
        return list(cap.tool_failures())
    except Exception:
        return []


def _export_indicators(cap: Any, a: argparse.Namespace) -> int:
    from .checks import analyze
    from .report.indicators import write_indicators
    from .report.jsonout import document
    from .report.outfiles import OutputDir

    report = analyze(cap, params=parse_params(getattr(a, "param", None)))
    doc = document(report, show_secrets=a.show_secrets)
    out = OutputDir(safe_path(a.to), force=a.force)
    write_indicators(doc, out, capture=safe_path(Path(a.capture)), slices=not a.no_slices, progress=_progress)
    _progress(f"wrote {len(out.files)} indicator file(s) to {shown(out.path)}")
    if out.missing:
        _progress(
            f"INCOMPLETE: {len(out.missing)} file(s) not written: "
            + ", ".join(m["name"] for m in out.missing)
        )
        return EXIT_INCOMPLETE
    return EXIT_INCOMPLETE if (doc.get("run") or {}).get("complete") is False else EXIT_OK


# -- decrypt -------------------------------------------------------------------------------------------------
DECRYPT_COLUMNS = (
    ("flow", 4),
    ("sender → receiver", 44),
    ("SSRC", 10),
    ("status", 22),
    ("rtp+rtcp", 10),
    ("verified", 10),
    ("failed", 6),
    ("key", 18),
    ("profile", 27),
    ("codec", 6),
    ("audio", 9),
)


def _key_specs(specs: Sequence[str] | None) -> list[str]:
    """--key values checked before the capture is read: ``[SSRC=]SUITE:inline:BASE64`` (or a space before
    ``inline:``). The error names the --key by position, never its value (a key is a secret)."""
    from .errors import DecodeError, InputError
    from .srtp.keys import parse_key_spec

    out = []
    for i, spec in enumerate(specs or (), 1):
        try:
            parse_key_spec(spec)  # its messages never contain the key
        except DecodeError as e:
            raise InputError(f"--key #{i}", e.detail) from None
        out.append(spec)
    return out


def render_decrypt(streams: Any, written: Sequence[Path]) -> str:
    """The per-stream table of ``rtcforensics decrypt`` (capture-derived text stripped of escapes; keys never
    appear: a stream shows where its key came from, not the key)."""
    from .report.safe import for_terminal_line as t
    from .values import isna

    def cell(v: Any) -> str:
        return "-" if isna(v) else t(v)

    lines = ["  ".join(f"{h:{w}}" for h, w in DECRYPT_COLUMNS).rstrip()]
    for r in streams.itertuples():
        rtp, rtcp = int(r.rtp_packets or 0), int(r.rtcp_packets or 0)
        audio = "-" if isna(r.audio_dbfs) else f"{r.audio_dbfs:.1f} dBFS"
        codec = cell(r.codec) + ("" if isna(r.e2ee_suspected) or not r.e2ee_suspected else " e2ee?")
        vals = (
            cell(r.flow_id),
            f"{cell(r.sender)} → {cell(r.receiver)}",
            f"{int(r.ssrc):#010x}",
            cell(r.status),
            f"{rtp}+{rtcp}",
            f"{int(r.authenticated or 0)}/{rtp + rtcp}",
            str(int(r.auth_failed or 0)),
            cell(r.key_source),
            cell(r.profile),
            codec,
            audio,
        )
        lines.append("  ".join(f"{v:{w}}" for v, (_, w) in zip(vals, DECRYPT_COLUMNS)).rstrip())
        if int(r.auth_failed or 0):
            frames = [int(f) for f in (r.failed_frames or [])]
            lines.append(
                f"      failed authentication in frame(s) {', '.join(map(str, frames[:12]))}"
                + (" …" if int(r.auth_failed) > len(frames[:12]) else "")
            )
    if not len(streams):
        lines.append("  no SRTP/SRTCP stream in this capture")
    lines.append("")
    nothing = "nothing decrypted: no key verified any packet (give --keylog or --key)"
    lines += [f"wrote {shown(p)}" for p in written] or [nothing]
    return "\n".join(lines) + "\n"


def user_keys_verified(streams: Any) -> bool:
    """Whether a key given with --key authenticated at least one packet."""
    if not len(streams) or "key_source" not in streams.columns:
        return False
    mine = streams[streams["key_source"].astype("string").fillna("").str.startswith("user")]
    return bool(len(mine)) and int(mine["authenticated"].fillna(0).sum()) > 0


def cmd_decrypt(a: argparse.Namespace) -> int:
    from .checks.analyze import capture_info
    from .report.outfiles import MANIFEST, SHA256SUMS, OutputDir

    keys = _key_specs(a.key)
    cap = _load(Path(a.capture), a.keylog, a.signalling, limits(a))
    out = OutputDir(safe_path(a.output), force=a.force)
    for name in ("decrypted.pcap", MANIFEST, SHA256SUMS):
        out.check_free(name)
    _progress(f"decrypting {shown(a.capture)} …")
    try:
        res = cap.decrypt(keys=keys)
    except ImportError as e:
        raise RtcForensicsError(
            f"decrypt needs the srtp extra (pip install rtcforensics[srtp]): {e}"
        ) from None
    except FrameUnavailable as e:  # a frame the keys come from was not built (the memory budget)
        _progress(
            f"rtcforensics: error: {shown(a.capture)}: decryption could not complete ({shown(_one_line(e))})"
        )
        return EXIT_INCOMPLETE
    except RtcForensicsError:
        raise
    except Exception as e:  # a frame the keys come from could not be built: said, and not "nothing to do"
        _progress(
            f"rtcforensics: error: {shown(a.capture)}: decryption could not complete "
            f"({type(e).__name__}: {shown(_one_line(e))})"
        )
        return EXIT_INCOMPLETE
    written: list[Path] = []
    with out.private_dir() as tmp:
        try:
            produced = res.write(tmp)
        except OSError as e:
            raise RtcForensicsError(
                f"{a.output}: cannot write the decrypted output ({e.strerror or e})"
            ) from None
        for p in produced:
            out.check_free(p.name)
        written = [out.adopt(p) for p in produced]
    cut = cut_short(cap)
    out.manifest(capture_info(cap), {"streams": len(res.streams), "incomplete_reasons": cut})
    _emit(render_decrypt(res.streams, written), None)
    if int(res.streams["auth_failed"].fillna(0).sum()) if len(res.streams) else 0:
        return EXIT_FINDINGS
    if keys and not user_keys_verified(res.streams):
        _progress("the --key given verified no packet: wrong key, or no stream it applies to")
        return EXIT_FINDINGS
    return _said_incomplete(cut)


# -- checks, explain -----------------------------------------------------------------------------------------
def cmd_checks(a: argparse.Namespace) -> int:
    from .checks import load_catalogue

    rows = [(c.id, c.slug, str(c.severity), str(c.confidence), c.title) for c in load_catalogue().values()]
    if a.json:
        _emit(
            json.dumps(
                [dict(zip(("id", "slug", "severity", "confidence", "title"), r)) for r in rows], indent=2
            )
            + "\n",
            None,
        )
        return EXIT_OK
    w = max(len(r[1]) for r in rows)
    lines = [f"{'ID':8} {'slug':{w}} {'severity':9} {'confidence':10} title"]
    lines += [f"{r[0]:8} {r[1]:{w}} {r[2]:9} {r[3]:10} {r[4]}" for r in rows]
    _emit("\n".join(lines) + "\n", None)
    return EXIT_OK


def cmd_explain(a: argparse.Namespace) -> int:
    from .checks import get

    try:
        c = get(a.check)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    lines = [
        f"{c.id}  {c.slug}  ({c.status})",
        c.title,
        "",
        f"severity: {c.severity} (default; may be raised or lowered per instance)   confidence: {c.confidence}",
        f"needs: {', '.join(c.needs) or 'whichever frames are available'}",
        "",
    ]
    for k, v in c.sections.items():
        lines += [f"{k}:", f"  {v}", ""]
    if c.params:
        lines.append(f"Parameters (override with --param {c.id}.NAME=VALUE):")
        lines += [f"  {p.name} = {p.default!r}  {p.doc}" for p in c.params]
    _emit("\n".join(lines).rstrip() + "\n", None)
    return EXIT_OK


# -- the parser ----------------------------------------------------------------------------------------------
def add_inputs(p: argparse.ArgumentParser) -> None:
    """--keylog, --signalling, --show-secrets and the read limits (what capture-reading subcommands take)."""
    p.add_argument("--keylog", metavar="F", help="SSLKEYLOGFILE with TLS/DTLS secrets")
    p.add_argument(
        "--signalling",
        metavar="F",
        action="append",
        help="side file with signalling (SDP, webrtc-internals dump); repeatable",
    )
    p.add_argument("--show-secrets", action="store_true", help="do not redact keys, passwords, tokens")
    add_limits(p)


def add_limits(p: argparse.ArgumentParser) -> None:
    """--max-packets, --max-bytes, --max-memory: limits of a capture-loading subcommand (hitting one: exit 3)."""
    from .dissect.pcapio import MAX_INFLATED

    g = p.add_argument_group(
        "read limits",
        "A capture cut short by a limit is analysed up to it: an anomaly says so, every report format says "
        "the run is incomplete, and the exit code is 3 (1 when findings at or above --fail-on decide it).",
    )
    g.add_argument(
        "--max-packets",
        type=count_arg,
        default=DEFAULT_MAX_PACKETS,
        metavar="N",
        help=f"read at most N packets per capture (default {DEFAULT_MAX_PACKETS:_}; none: no limit). "
        "Memory grows with the packets held; zero-length records are counted, not held, and not limited",
    )
    g.add_argument(
        "--max-bytes",
        type=size_arg,
        default=MAX_INFLATED,
        metavar="SIZE",
        help="bytes a gzip-compressed capture may inflate to, e.g. 4G or 512M (default "
        f"{MAX_INFLATED >> 30}G)",
    )
    add_memory_option(g)


def add_memory_option(p: Any) -> None:
    """--max-memory SIZE: the process's memory budget (see :mod:`rtcforensics.budget`); main() applies it."""
    p.add_argument(
        "--max-memory",
        type=memory_arg,
        default=None,
        metavar="SIZE",
        help=f"memory budget, e.g. 2G (default {budget.DEFAULT_SHARE * 100:.0f} %% of the memory of the machine "
        "or container; 0 or none: no budget). Reading stops when resident memory has used a fifth of what "
        "was free of it (less 160 MiB for the rest of the run), and no frame is built above it: exit 3 with what was read; with --jobs N each "
        "worker gets 1/N",
    )


def add_analyze(sub: Any) -> None:
    p = sub.add_parser("analyze", help="run the checks and report")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="capture files, directories or globs")
    add_inputs(p)
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("-o", "--output", metavar="OUT", help="write the report here instead of stdout")
    p.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default=DEFAULT_FAIL_ON,
        help=f"exit 1 when a finding is at or above this severity (default {DEFAULT_FAIL_ON}; none: never)",
    )
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="captures analysed in parallel")
    p.add_argument("--param", action="append", metavar="CHECK.NAME=VALUE", help="override a check threshold")
    p.set_defaults(fn=cmd_analyze)


def add_summary(sub: Any) -> None:
    p = sub.add_parser("summary", help="calls, peers, servers, streams and encryption per leg")
    p.add_argument("captures", nargs="+", metavar="CAPTURE")
    add_inputs(p)
    p.set_defaults(fn=cmd_summary)


def add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write every frame (or, with --indicators, the indicators) to a directory",
        description="Files are written under temporary names and renamed when complete, never "
        "through a symbolic link nor over an existing file (unless --force), and "
        "listed with their sha256 in manifest.json and SHA256SUMS. Exit 3 when a "
        "frame could not be exported.",
    )
    p.add_argument("capture", metavar="CAPTURE")
    p.add_argument("--to", required=True, metavar="DIR")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument(
        "--indicators",
        action="store_true",
        help="write the indicators of the findings instead: CSV, JSON, a STIX 2.1 bundle, a Wireshark "
        "display filter and a pcap slice per finding",
    )
    p.add_argument("--no-slices", action="store_true", help="with --indicators: no pcap slices")
    p.add_argument("--param", action="append", metavar="CHECK.NAME=VALUE", help="override a check threshold")
    p.add_argument("--force", action="store_true", help="replace existing files (and symbolic links) in DIR")
    add_inputs(p)
    p.set_defaults(fn=cmd_export)


def add_decrypt(sub: Any) -> None:
    p = sub.add_parser(
        "decrypt",
        help="authenticate and decrypt SRTP/SRTCP; write a plain-RTP pcap and WAV audio",
        description="Keys: SDES a=crypto lines in the capture or --signalling files, DTLS-SRTP "
        "via --keylog, and --key. Exit 1 when packets fail authentication or a --key "
        "verifies no packet. Output files are written whole (temporary name, then "
        "rename), never over existing files unless --force, listed in manifest.json.",
    )
    p.add_argument("capture", metavar="CAPTURE")
    p.add_argument(
        "--key",
        action="append",
        metavar="[SSRC=]SUITE:inline:BASE64",
        help="an SRTP master key (for one SSRC, or for any stream); repeatable",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="directory for decrypted.pcap and WAV files"
    )
    p.add_argument("--keylog", metavar="F", help="SSLKEYLOGFILE with DTLS secrets (DTLS-SRTP keys)")
    p.add_argument(
        "--signalling", metavar="F", action="append", help="side file with SDP (SDES keys); repeatable"
    )
    p.add_argument("--force", action="store_true", help="replace existing files (and symbolic links) in DIR")
    add_limits(p)
    p.set_defaults(fn=cmd_decrypt)


def add_checks(sub: Any) -> None:
    p = sub.add_parser("checks", help="list the check catalogue")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_checks)


def add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="the documentation page of one check")
    p.add_argument("check", metavar="ID-or-slug")
    p.set_defaults(fn=cmd_explain)


# One function per subcommand, each adding its parser with ``set_defaults(fn=handler)``; handlers return the
# exit code. Append to add a subcommand (e.g. the case store's ``ingest``/``query``/``watch``).
def add_case(sub: Any) -> None:
    """The case store's ``ingest``, ``query``, ``watch`` and ``fleet`` (rtcforensics.case)."""
    from .case.cli import register

    register(sub)


SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_analyze,
    add_summary,
    add_export,
    add_decrypt,
    add_checks,
    add_explain,
    add_case,
]


def build_parser() -> argparse.ArgumentParser:
    codes = "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items())
    ap = _Parser(
        prog="rtcforensics",
        description="Security analysis of WebRTC captures.",
        epilog=f"Exit codes: {codes}.",
    )
    ap.add_argument("--version", action="version", version=f"rtcforensics {__version__}")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)
    for add in SUBCOMMANDS:
        add(sub)
    ap.set_defaults(command_names=list(sub.choices))
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    try:
        a = build_parser().parse_args(argv)
        if not getattr(a, "command", None):
            names = a.command_names
            raise UsageError(f"a command is needed: {', '.join(names[:-1])} or {names[-1]} (see --help)")
        if getattr(a, "jobs", 1) < 1:
            raise UsageError("--jobs must be at least 1")
        if not hasattr(a, "max_memory"):  # a subcommand without --max-memory: the process's budget
            return int(a.fn(a))
        with budget.limited(memory_budget(a)):
            return int(a.fn(a))
    except UsageError as e:
        print(f"rtcforensics: error: {shown(e)}", file=sys.stderr)
        return EXIT_USAGE
    except RtcForensicsError as e:
        print(f"rtcforensics: error: {shown(_one_line(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `rtcforensics ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("rtcforensics: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:  # the capture needs more memory than the process may have: a limit, not a bug
        if os.environ.get("RTCF_DEBUG"):
            raise
        print(
            "rtcforensics: out of memory: the run could not finish and what it had not written is lost "
            "(give it more memory, lower --max-memory or --max-packets, or stream the capture into a case: "
            "rtcforensics ingest CAPTURE --case DIR --stream-above 1)",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    except Exception as e:  # a bug: one line (and the traceback on request), never exit 1 (the findings code)
        if os.environ.get("RTCF_DEBUG"):
            raise
        print(
            f"rtcforensics: internal error: {type(e).__name__}: {shown(_one_line(e))} (a bug; RTCF_DEBUG=1 "
            "shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
