"""Command line of the case store: ``ingest``, ``query``, ``watch`` and ``fleet``.

``register(subparsers)`` adds the subcommands to the ``rtcforensics`` parser; each sets ``fn=run`` so the main
CLI dispatches to :func:`run`. ``python -m rtcforensics.case ...`` runs them on their own. Exit codes as the
main CLI: 0 done, 1 (``fleet``) findings at or above ``--fail-on``, 2 a usage or input error (one line), 3 an
incomplete run (a capture failed to ingest).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import RtcForensicsError

EXIT_INCOMPLETE = 3
QUERY_FORMATS = ("table", "csv", "json")
FLEET_FORMATS = ("table", "json", "html", "sarif")
COMMANDS = ("ingest", "query", "watch", "fleet")


def _progress(msg: str) -> None:
    from ..report.safe import for_terminal_line

    print(for_terminal_line(msg), file=sys.stderr, flush=True)


def _ingest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", required=True, metavar="DIR", help="case directory (created when absent)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="captures ingested in parallel (processes)"
    )
    where.add_argument(
        "--scheduler",
        metavar="tcp://HOST:8786",
        help="send the per-capture work to this Dask distributed scheduler",
    )
    kl = p.add_mutually_exclusive_group()
    kl.add_argument(
        "--keylog",
        metavar="F",
        help="one SSLKEYLOGFILE for every capture (default: <name>.keylog beside each capture, when present)",
    )
    kl.add_argument("--no-keylog", action="store_true", help="use no keylog, not even one beside a capture")
    p.add_argument("--show-secrets", action="store_true", help="store secrets unredacted (default: redacted)")
    p.add_argument("--param", action="append", metavar="CHECK.NAME=VALUE", help="override a check threshold")
    from ..cli import add_memory_option  # main() applies it to this process; local workers share it

    add_memory_option(p)


def register(subparsers: Any) -> None:
    """Add ``ingest``, ``query``, ``watch`` and ``fleet`` to an argparse subparsers object."""
    from ..cli import size_arg

    p = subparsers.add_parser(
        "ingest",
        help="load and check captures into a case store (Parquet + manifest)",
        description="Runs the load and the checks on each capture and writes its frames, "
        "findings and coverage into the case directory. Captures whose "
        "sha256 is already there are skipped.",
    )
    p.add_argument(
        "captures",
        nargs="+",
        metavar="CAPTURE_OR_DIR",
        help="capture files, directories or globs; - reads one capture from standard input "
        "(dumpcap -w - | rtcforensics ingest - --case DIR)",
    )
    _ingest_options(p)
    p.add_argument("--retry-failed", action="store_true", help="try captures that failed before again")
    p.add_argument("--force", action="store_true", help="re-ingest captures already in the case")
    p.add_argument(
        "--stream-above",
        type=size_arg,
        metavar="SIZE",
        help=(
            "stream captures larger than this (e.g. 512M; default 1G): constant memory; the checks that need "
            "signalling, SDP or per-packet frames are not run (an incomplete ingest)"
        ),
    )
    p.set_defaults(fn=run)

    p = subparsers.add_parser(
        "query",
        help="SQL over a case (DuckDB): frames, findings, coverage, manifest",
        description="Tables: one per frame (stun, dtls, packets, ...), findings, coverage "
        "and manifest; every table but manifest has a capture column.",
    )
    p.add_argument("case_dir", metavar="DIR")
    p.add_argument("sql", nargs="?", metavar="SQL", help="the query (omit to list the tables)")
    p.add_argument("--format", choices=QUERY_FORMATS, default="table", dest="query_format")
    p.add_argument("-o", "--output", metavar="OUT", help="write the result here instead of stdout")
    p.add_argument("--show-secrets", action="store_true", help="do not redact keys, passwords, tokens")
    p.set_defaults(fn=run)

    p = subparsers.add_parser(
        "watch",
        help="ingest ring-buffer files into a case as they are closed",
        description="A file is ready when a newer file appears in the directory (the "
        "writer moved on), or when the watch stops. Ctrl-C stops cleanly.",
    )
    p.add_argument("watch_dir", metavar="DIR")
    _ingest_options(p)
    p.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="seconds between looks (default 2)"
    )
    p.add_argument(
        "--pattern", default="*", metavar="GLOB", help="file names to watch (default: capture files)"
    )
    p.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C / SIGTERM)",
    )
    p.set_defaults(fn=run)

    p = subparsers.add_parser(
        "fleet", help="the fleet report of a case: per-capture findings and the cross-capture checks"
    )
    p.add_argument("case_dir", metavar="DIR")
    p.add_argument(
        "--format", choices=FLEET_FORMATS, default="table", dest="fleet_format", help="default: table"
    )
    p.add_argument(
        "-o", "--output", metavar="OUT", help="write the report here (atomically) instead of stdout"
    )
    p.add_argument(
        "--param", action="append", metavar="CHECK.NAME=VALUE", help="override a case check threshold"
    )
    p.add_argument(
        "--fail-on",
        choices=("info", "low", "medium", "high", "critical", "none"),
        default="none",
        help="exit 1 when a cross-capture finding is at or above this severity (default none)",
    )
    p.add_argument("--show-secrets", action="store_true", help="do not redact keys, passwords, tokens")
    p.set_defaults(fn=run)


def _params(items: Sequence[str] | None) -> dict[str, Any]:
    from ..cli import parse_params

    return parse_params(items)


def _keylog(a: argparse.Namespace) -> str | None:
    from .ingestion import KEYLOG_AUTO

    if getattr(a, "no_keylog", False):
        return None
    return str(a.keylog) if a.keylog else KEYLOG_AUTO


def _emit(text: str, out: str | None) -> None:
    """To ``out`` written atomically (temporary name, then rename; never through a planted symlink), or to
    stdout: the main CLI's output rule."""
    from ..cli import _emit as emit

    emit(text, out)


def cmd_ingest(a: argparse.Namespace) -> int:
    from .ingestion import ingest

    if a.captures.count("-") > 1:
        raise RtcForensicsError("- (a capture on standard input) can be given only once")
    res = ingest(
        a.captures,
        a.case,
        jobs=a.jobs,
        scheduler=a.scheduler,
        keylog=_keylog(a),
        show_secrets=a.show_secrets,
        params=_params(a.param),
        retry_failed=a.retry_failed,
        force=a.force,
        progress=_progress,
        **({} if a.stream_above is None else {"stream_above": a.stream_above}),
    )
    partial = [r for r in res.ok if r.get("incomplete")]
    _progress(
        f"{a.case}: {len(res.ok)} ingested ({len(partial)} incomplete), {len(res.failed)} failed, "
        f"{len(res.skipped)} skipped"
    )
    return EXIT_INCOMPLETE if res.failed or partial else 0


def format_result(df: Any, fmt: str, show_secrets: bool = False) -> str:
    """A query result for a person: secrets redacted (unless asked), control characters made inert."""
    import json

    from ..report.safe import csv_frame, for_terminal_line, json_inert, redact_frame
    from ..values import plain

    df = redact_frame(df, show_secrets)
    if fmt == "json":
        rows = [{str(k): plain(v) for k, v in r.items()} for r in df.to_dict("records")]
        return json_inert(rows, sort_keys=False) + "\n"
    if fmt == "csv":
        return str(csv_frame(df).to_csv(index=False))
    if not len(df.columns):
        return "(no result)\n"
    shown = df.copy()
    for c in shown.columns:
        shown[c] = [
            for_terminal_line(
                v
                if isinstance(v, str)
                else json.dumps(plain(v), ensure_ascii=False)
                if isinstance(v, (list, dict))
                else ""
                if plain(v) is None
                else v
            )
            for v in shown[c]
        ]
    text = shown.to_string(index=False, max_colwidth=80)
    return f"{text}\n({len(df)} row{'s' if len(df) != 1 else ''})\n"


def cmd_query(a: argparse.Namespace) -> int:
    from .query import open_case

    with open_case(a.case_dir) as case:
        if not a.sql:
            lines = []
            for t in case.tables:
                n = int(case.sql(f'select count(*) as n from "{t}"')["n"].iloc[0])
                lines.append(f"{t:14s} {n:>10d} rows")
            _emit("\n".join(lines) + "\n", a.output)
            return 0
        df = case.sql(a.sql)
    _emit(format_result(df, a.query_format, a.show_secrets), a.output)
    return 0


def cmd_watch(a: argparse.Namespace) -> int:
    from .watch import watch

    if a.interval <= 0:
        raise RtcForensicsError("--interval must be positive")
    res = watch(
        a.watch_dir,
        a.case,
        interval=a.interval,
        pattern=a.pattern,
        jobs=a.jobs,
        scheduler=a.scheduler,
        keylog=_keylog(a),
        show_secrets=a.show_secrets,
        params=_params(a.param),
        exit_after=a.exit_after,
        progress=_progress,
    )
    _progress(f"{a.case}: watch stopped; {len(res.ok)} ingested, {len(res.failed)} failed")
    return EXIT_INCOMPLETE if res.failed else 0


def cmd_fleet(a: argparse.Namespace) -> int:
    from ..checks.registry import Severity
    from .correlate import fleet_report
    from .fleetout import RENDERERS
    from .query import open_case

    with open_case(a.case_dir) as case:
        doc = fleet_report(case, params=_params(a.param), show_secrets=a.show_secrets)
    _emit(RENDERERS[a.fleet_format](doc), a.output)
    if a.fail_on != "none":
        level = Severity.parse(a.fail_on)
        if any(Severity.parse(f["severity"]) >= level for f in doc["case_findings"]):
            return 1
    return EXIT_INCOMPLETE if doc["case"]["failed"] or not doc["run"]["complete"] else 0


def run(a: argparse.Namespace) -> int:
    """Run the subcommand parsed into ``a`` (``a.command`` one of ingest, query, watch, fleet)."""
    fn = {"ingest": cmd_ingest, "query": cmd_query, "watch": cmd_watch, "fleet": cmd_fleet}[a.command]
    return int(fn(a))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rtcforensics.case``: the case subcommands on their own, with the main CLI's conventions."""
    import os

    from ..cli import UsageError, _Parser

    try:
        ap = _Parser(
            prog="python -m rtcforensics.case", description="Case store: many captures, DuckDB, Dask."
        )
        register(ap.add_subparsers(dest="command", parser_class=_Parser))
        a = ap.parse_args(argv)
        if not getattr(a, "command", None):
            raise UsageError(f"a command is needed: {', '.join(COMMANDS)} (see --help)")
        return run(a)
    except UsageError as e:
        print(f"rtcforensics: error: {e}", file=sys.stderr)
        return 2
    except RtcForensicsError as e:
        print(f"rtcforensics: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("rtcforensics: interrupted", file=sys.stderr)
        return 130
