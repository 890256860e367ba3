"""Command line: ``rtcforensics analyze | summary | export | decrypt | checks | explain``.

Exit codes: 0 nothing at or above ``--fail-on``; 1 findings at or above it (``decrypt``: packets that failed
authentication); 2 usage or input error, reported as ONE line naming the file and the problem (never a
traceback for a user's mistake). Progress goes to stderr, results to stdout or ``-o``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

from ._version import __version__
from .errors import RtcForensicsError

FORMATS = ("table", "json", "sarif", "html", "markdown")
SEVERITIES = ("info", "low", "medium", "high", "critical", "none")
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")


class UsageError(Exception):
    """A mistake in the command line; the message is the one line shown."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse would print the usage too)
        raise UsageError(message)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def expand_captures(args: Sequence[str]) -> list[Path]:
    """Files, directories (their capture files) and globs → capture paths, in order, without duplicates."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.name.lower().endswith(CAPTURE_SUFFIXES))
            if not found:
                raise RtcForensicsError(f"{a}: directory holds no capture files ({', '.join(CAPTURE_SUFFIXES)})")
            out += found
        elif not p.exists() and any(ch in a for ch in "*?["):
            found = sorted(Path(x) for x in glob.glob(a) if Path(x).is_file())
            if not found:
                raise RtcForensicsError(f"{a}: no file matches this pattern")
            out += found
        else:
            out.append(p)
    return list(dict.fromkeys(out))


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


def _load(path: Path, keylog: str | None, signalling: Sequence[str] | None) -> Any:
    from .capture import load

    cap = load(path, keylog=keylog, signalling=list(signalling or []) or None)
    try:  # read the file now so that a broken capture is the user's error (exit 2), not a failed check
        cap.get_frame("packets")
    except (ImportError, KeyError):
        pass
    return cap


def analyze_one(path: str, keylog: str | None, signalling: Sequence[str] | None, params: dict[str, Any],
                show_secrets: bool) -> dict[str, Any]:
    """Load, analyse and render one capture to its JSON document (runs in a worker process too)."""
    from .checks.analyze import analyze
    from .report.jsonout import document

    try:
        cap = _load(Path(path), keylog, signalling)
    except RtcForensicsError as e:  # subclasses with extra __init__ arguments do not unpickle
        raise RtcForensicsError(str(e)) from None
    return document(analyze(cap, params=params), show_secrets=show_secrets)


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
    return {k: {v: cs for v, cs in items.items() if len(cs) > 1} for k, items in seen.items()
            if any(len(cs) > 1 for cs in items.values())}


def _emit(text: str, out: str | None) -> None:
    if out:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as e:
            raise RtcForensicsError(f"{out}: cannot write output ({e.strerror or e})") from None
        _progress(f"wrote {out}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def cmd_analyze(a: argparse.Namespace) -> int:
    from .checks.registry import Severity
    from .report import html, jsonout, markdown, sarif, table

    paths = expand_captures(a.captures)
    params = parse_params(a.param)
    from .checks.analyze import resolve_params
    from .checks.registry import load_catalogue

    try:
        resolve_params(load_catalogue(), params)
    except ValueError as e:
        raise UsageError(str(e)) from None
    docs: list[dict[str, Any]] = []
    caps: list[Any] = []
    if a.jobs > 1 and len(paths) > 1:
        with ProcessPoolExecutor(max_workers=a.jobs) as ex:
            futs = [ex.submit(analyze_one, str(p), a.keylog, a.signalling, params, a.show_secrets) for p in paths]
            for i, (p, fut) in enumerate(zip(paths, futs), 1):
                docs.append(fut.result())
                caps.append(None)
                _progress(f"[{i}/{len(paths)}] {p}: {len(docs[-1]['findings'])} finding(s)")
    else:
        from .checks.analyze import analyze
        from .report.jsonout import document

        for i, p in enumerate(paths, 1):
            _progress(f"[{i}/{len(paths)}] analysing {p} …")
            cap = _load(p, a.keylog, a.signalling)
            docs.append(document(analyze(cap, params=params), show_secrets=a.show_secrets))
            caps.append(cap)
            _progress(f"[{i}/{len(paths)}] {p}: {len(docs[-1]['findings'])} finding(s)")
    cross = cross_capture(docs) if len(docs) > 1 else {}
    if a.format == "json":
        text = jsonout.render(docs[0] if len(docs) == 1 else docs, cross)
    elif a.format == "sarif":
        text = sarif.render(docs)
    elif a.format == "html":
        text = html.render(docs, caps, cross)
    elif a.format == "markdown":
        text = "\n".join(markdown.render(d) for d in docs)
    else:
        text = "\n".join(table.render(d) for d in docs) + table.render_cross(cross)
    _emit(text, a.output)
    if a.fail_on == "none":
        return 0
    level = Severity.parse(a.fail_on)
    worst = [f for d in docs for f in d["findings"] if Severity.parse(f["severity"]) >= level]
    return 1 if worst else 0


def cmd_summary(a: argparse.Namespace) -> int:
    from .checks.analyze import capture_info
    from .report.jsonout import capture_anomalies
    from .report.overview import build_overview
    from .report.safe import redact
    from .report.table import render_overview

    for p in expand_captures(a.captures):
        cap = _load(p, a.keylog, a.signalling)
        overview = redact(build_overview(cap), a.show_secrets)
        # after the overview: the capture has been read, so damage and tool failures are known
        _emit(render_overview({"capture": capture_info(cap), "tool": {"version": __version__},
                               "overview": overview, "anomalies": capture_anomalies(cap)[0]}), None)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .report.safe import redact_frame

    cap = _load(Path(a.capture), a.keylog, a.signalling)
    out = Path(a.to)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RtcForensicsError(f"{out}: cannot create output directory ({e.strerror or e})") from None
    if a.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RtcForensicsError("parquet export needs pyarrow (pip install rtcforensics[export]); "
                                    "or use --format csv") from None
    written = 0
    for name in cap.frame_names():
        try:
            df = cap.get_frame(name)
        except Exception as e:  # noqa: BLE001 - one frame failing does not stop the export
            _progress(f"{name}: not exported ({type(e).__name__}: {e})")
            continue
        df = redact_frame(df, a.show_secrets).copy()
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].map(lambda v: None if v is None else v if isinstance(v, str)
                                  else json.dumps(v, default=str, ensure_ascii=False))
        target = out / f"{name}.{a.format}"
        if a.format == "csv":
            df.to_csv(target, index=False)
        else:
            df.to_parquet(target, index=False)
        written += 1
        _progress(f"{name}: {len(df)} rows → {target}")
    _progress(f"exported {written} frame(s) to {out}")
    return 0


DECRYPT_COLUMNS = (("flow", 4), ("sender → receiver", 44), ("SSRC", 10), ("status", 22), ("rtp+rtcp", 10),
                   ("verified", 10),
                   ("failed", 6), ("key", 18), ("profile", 27), ("codec", 6), ("audio", 9))


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
    from .checks.common import isna
    from .report.safe import for_terminal_line as t

    def cell(v: Any) -> str:
        return "-" if isna(v) else t(v)

    lines = ["  ".join(f"{h:{w}}" for h, w in DECRYPT_COLUMNS).rstrip()]
    for r in streams.itertuples():
        rtp, rtcp = int(r.rtp_packets or 0), int(r.rtcp_packets or 0)
        audio = "-" if isna(r.audio_dbfs) else f"{r.audio_dbfs:.1f} dBFS"
        codec = cell(r.codec) + ("" if isna(r.e2ee_suspected) or not r.e2ee_suspected else " e2ee?")
        vals = (cell(r.flow_id), f"{cell(r.sender)} → {cell(r.receiver)}", f"{int(r.ssrc):#010x}", cell(r.status),
                f"{rtp}+{rtcp}", f"{int(r.authenticated or 0)}/{rtp + rtcp}", str(int(r.auth_failed or 0)),
                cell(r.key_source),
                cell(r.profile), codec, audio)
        lines.append("  ".join(f"{v:{w}}" for v, (_, w) in zip(vals, DECRYPT_COLUMNS)).rstrip())
        if int(r.auth_failed or 0):
            frames = [int(f) for f in (r.failed_frames or [])]
            lines.append(f"      failed authentication in frame(s) {', '.join(map(str, frames[:12]))}"
                         + (" …" if int(r.auth_failed) > len(frames[:12]) else ""))
    if not len(streams):
        lines.append("  no SRTP/SRTCP stream in this capture")
    lines.append("")
    nothing = "nothing decrypted: no key verified any packet (give --keylog or --key)"
    lines += [f"wrote {t(p)}" for p in written] or [nothing]
    return "\n".join(lines) + "\n"


def cmd_decrypt(a: argparse.Namespace) -> int:
    keys = _key_specs(a.key)
    cap = _load(Path(a.capture), a.keylog, a.signalling)
    _progress(f"decrypting {a.capture} …")
    try:
        res = cap.decrypt(keys=keys)
    except ImportError as e:
        raise RtcForensicsError(f"decrypt needs the srtp extra (pip install rtcforensics[srtp]): {e}") from None
    try:
        written = res.write(a.output)
    except OSError as e:
        raise RtcForensicsError(f"{a.output}: cannot write the decrypted output ({e.strerror or e})") from None
    _emit(render_decrypt(res.streams, written), None)
    return 1 if int(res.streams["auth_failed"].fillna(0).sum()) else 0


def cmd_checks(a: argparse.Namespace) -> int:
    from .checks.registry import load_catalogue

    rows = [(c.id, c.slug, str(c.severity), str(c.confidence), c.title) for c in load_catalogue().values()]
    if a.json:
        _emit(json.dumps([dict(zip(("id", "slug", "severity", "confidence", "title"), r)) for r in rows],
                         indent=2) + "\n", None)
        return 0
    w = max(len(r[1]) for r in rows)
    lines = [f"{'ID':8} {'slug':{w}} {'severity':9} {'confidence':10} title"]
    lines += [f"{r[0]:8} {r[1]:{w}} {r[2]:9} {r[3]:10} {r[4]}" for r in rows]
    _emit("\n".join(lines) + "\n", None)
    return 0


def cmd_explain(a: argparse.Namespace) -> int:
    from .checks.registry import get

    try:
        c = get(a.check)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    lines = [f"{c.id}  {c.slug}  ({c.status})", c.title, "",
             f"severity: {c.severity} (default; may be raised or lowered per instance)   confidence: {c.confidence}",
             f"needs: {', '.join(c.needs) or 'whichever frames are available'}", ""]
    for k, v in c.sections.items():
        lines += [f"{k}:", f"  {v}", ""]
    if c.params:
        lines.append(f"Parameters (override with --param {c.id}.NAME=VALUE):")
        lines += [f"  {p.name} = {p.default!r}  {p.doc}" for p in c.params]
    _emit("\n".join(lines).rstrip() + "\n", None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="rtcforensics", description="Security analysis of WebRTC captures.")
    ap.add_argument("--version", action="version", version=f"rtcforensics {__version__}")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)

    def inputs(p: argparse.ArgumentParser) -> None:
        p.add_argument("--keylog", metavar="F", help="SSLKEYLOGFILE with TLS/DTLS secrets")
        p.add_argument("--signalling", metavar="F", action="append",
                       help="side file with signalling (SDP, webrtc-internals dump); repeatable")
        p.add_argument("--show-secrets", action="store_true", help="do not redact keys, passwords, tokens")

    p = sub.add_parser("analyze", help="run the checks and report")
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="capture files, directories or globs")
    inputs(p)
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("-o", "--output", metavar="OUT", help="write the report here instead of stdout")
    p.add_argument("--fail-on", choices=SEVERITIES, default="medium",
                   help="exit 1 when a finding is at or above this severity (default medium; none: never)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="captures analysed in parallel")
    p.add_argument("--param", action="append", metavar="CHECK.NAME=VALUE", help="override a check threshold")
    p.set_defaults(fn=cmd_analyze)

    p = sub.add_parser("summary", help="calls, peers, servers, streams and encryption per leg")
    p.add_argument("captures", nargs="+", metavar="CAPTURE")
    inputs(p)
    p.set_defaults(fn=cmd_summary)

    p = sub.add_parser("export", help="write every frame to a directory")
    p.add_argument("capture", metavar="CAPTURE")
    p.add_argument("--to", required=True, metavar="DIR")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    inputs(p)
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("decrypt", help="authenticate and decrypt SRTP/SRTCP; write a plain-RTP pcap and WAV audio",
                       description="Keys: SDES a=crypto lines in the capture or --signalling files, DTLS-SRTP "
                                   "via --keylog, and --key. Exit 1 when packets fail authentication.")
    p.add_argument("capture", metavar="CAPTURE")
    p.add_argument("--key", action="append", metavar="[SSRC=]SUITE:inline:BASE64",
                   help="an SRTP master key (for one SSRC, or for any stream); repeatable")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for decrypted.pcap and WAV files")
    p.add_argument("--keylog", metavar="F", help="SSLKEYLOGFILE with DTLS secrets (DTLS-SRTP keys)")
    p.add_argument("--signalling", metavar="F", action="append", help="side file with SDP (SDES keys); repeatable")
    p.set_defaults(fn=cmd_decrypt)

    p = sub.add_parser("checks", help="list the check catalogue")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_checks)

    p = sub.add_parser("explain", help="the documentation page of one check")
    p.add_argument("check", metavar="ID-or-slug")
    p.set_defaults(fn=cmd_explain)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    try:
        a = build_parser().parse_args(argv)
        if not getattr(a, "command", None):
            raise UsageError("a command is needed: analyze, summary, export, decrypt, checks or explain "
                             "(see --help)")
        if getattr(a, "jobs", 1) < 1:
            raise UsageError("--jobs must be at least 1")
        return int(a.fn(a))
    except UsageError as e:
        print(f"rtcforensics: error: {e}", file=sys.stderr)
        return 2
    except RtcForensicsError as e:
        print(f"rtcforensics: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rtcforensics ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("rtcforensics: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
