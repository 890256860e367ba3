"""tshark, bounded: version, field table, field export of the control plane.

Every tshark (and editcap) invocation goes through :func:`run_tool`: a time limit, no capture
privileges (offline ``-r FILE`` only, never ``-i``), ``-n`` (no name resolution), and a
:class:`~rtcforensics.errors.ToolError` naming the file when the tool fails, times out or is missing.

Field names drift between tshark 4.0 and 4.6, and so do field types (``http.file_data`` is a string
in 4.0 and bytes later). :data:`FIELDS` maps the logical names the package uses to the candidate tshark
abbreviations, newest first; :func:`resolve_fields` picks the first one the installed tshark knows
(``tshark -G fields``) and :func:`export` decodes each value by the type that tshark declares, so the
callers never see the difference. Output is read with ``-T json -e ...``: JSON strings are exact,
unlike ``-T fields`` which escapes CR/LF in strings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ToolError
from .jsonsdp import json_loads

DEFAULT_TIMEOUT_S = 300.0

# logical name -> candidate tshark field abbreviations (first one present in the installed tshark wins)
FIELDS: dict[str, tuple[str, ...]] = {
    "frame": ("frame.number",),
    "time_epoch": ("frame.time_epoch",),
    "protocols": ("frame.protocols",),
    "ip_src": ("ip.src",),
    "ip_dst": ("ip.dst",),
    "ipv6_src": ("ipv6.src",),
    "ipv6_dst": ("ipv6.dst",),
    "tcp_srcport": ("tcp.srcport",),
    "tcp_dstport": ("tcp.dstport",),
    "udp_srcport": ("udp.srcport",),
    "udp_dstport": ("udp.dstport",),
    "tcp_stream": ("tcp.stream",),
    "tcp_payload": ("tcp.payload",),
    "tcp_reassembled": ("tcp.reassembled.data",),
    "udp_payload": ("udp.payload",),
    "tls_hs_type": ("tls.handshake.type",),
    "tls_hs_version": ("tls.handshake.version",),
    "tls_supported_version": ("tls.handshake.extensions.supported_version",),
    "tls_cipher": ("tls.handshake.ciphersuite",),
    "tls_sni": ("tls.handshake.extensions_server_name",),
    "http_method": ("http.request.method",),
    "http_uri": ("http.request.uri",),
    "http_full_uri": ("http.request.full_uri",),
    "http_status": ("http.response.code",),
    "http_request_lines": ("http.request.line",),
    "http_response_lines": ("http.response.line",),
    "http_body": ("http.file_data",),
    "http_response_for_uri": ("http.response_for.uri",),
    "ws_opcode": ("websocket.opcode",),
    "ws_fin": ("websocket.fin",),
    "ws_pmc": ("websocket.pmc",),
    "ws_text": ("websocket.payload.text",),
    "ws_decompression_failed": ("websocket.decompression.failed.expert",),
    "data": ("data.data",),
}

# Preferences that make tshark do the work we rely on (these are the 4.0-4.6 defaults, set explicitly so
# that a user's preference file cannot switch them off).
PREFS: tuple[str, ...] = (
    "tcp.desegment_tcp_streams:TRUE",
    "http.desegment_headers:TRUE",
    "http.desegment_body:TRUE",
    "http.dechunk_body:TRUE",
    "http.decompress_body:TRUE",
    "sip.desegment_headers:TRUE",
    "sip.desegment_body:TRUE",
    "tls.desegment_ssl_records:TRUE",
    "tls.desegment_ssl_application_data:TRUE",
    "websocket.decompress:TRUE",
)

KEYLOG_PREF = "tls.keylog_file"

_FORBIDDEN = {"-i", "-D", "-L", "--list-interfaces", "-I", "-k", "-S", "-w", "-b", "-a", "-f", "-y", "-F"}


def tshark_path() -> str | None:
    return shutil.which("tshark")


def run_tool(
    argv: Sequence[str],
    *,
    path: str | os.PathLike[str],
    timeout: float = DEFAULT_TIMEOUT_S,
    tool: str = "tshark",
    warnings: list[str] | None = None,
) -> str:
    """Run ``tool`` (tshark or editcap) with ``argv`` on the offline file ``path``; return stdout.

    tshark is always run offline (``-r``), with ``-n``; capture options are refused. Raises
    ToolError("<path>: tshark ...") when the tool is missing, fails or exceeds ``timeout`` seconds."""
    exe = shutil.which(tool)
    if exe is None:
        raise ToolError(
            f"{path}: {tool} is not installed (needed for signalling; install Wireshark's tshark)"
        )
    args = list(argv)
    if tool == "tshark":
        bad = [a for a in args if a in _FORBIDDEN]
        if bad:
            raise ToolError(f"{path}: refusing to run tshark with capture option(s) {bad}")
        if "-r" not in args and "-G" not in args and "-v" not in args and "--version" not in args:
            raise ToolError(f"{path}: tshark must read a file (-r)")
        if "-r" in args and "-n" not in args:
            args.insert(0, "-n")
    env = dict(os.environ)
    env.setdefault("LC_ALL", "C.UTF-8")
    try:
        cp = subprocess.run(
            [exe, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"{path}: {tool} did not finish within {timeout:g} s") from None
    except OSError as e:
        raise ToolError(f"{path}: {tool} could not be started ({e})") from None
    if cp.returncode != 0:
        err = _clean_stderr(cp.stderr.decode("utf-8", "replace"))
        if tool == "tshark" and "cut short in the middle of a packet" in err and cp.stdout.strip():
            # a truncated capture: what was read before the cut is still good; the caller is told
            if warnings is not None:
                warnings.append(f"{path}: {tool}: {err}")
            return cp.stdout.decode("utf-8", "surrogateescape")
        raise ToolError(f"{path}: {tool} failed (exit {cp.returncode}): {err or 'no message'}")
    return cp.stdout.decode("utf-8", "surrogateescape")


def _clean_stderr(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and "could be dangerous" not in ln]
    return " | ".join(lines)[:600]


@lru_cache(maxsize=1)
def tshark_version() -> str | None:
    """The installed tshark version (``"4.0.17"``), or None when tshark is absent or unusable."""
    if tshark_path() is None:
        return None
    try:
        out = run_tool(["--version"], path="tshark", timeout=30)
    except ToolError:
        return None
    m = re.search(r"TShark \(Wireshark\) (\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def version_tuple(version: str | None = None) -> tuple[int, ...]:
    v = version if version is not None else tshark_version()
    if not v:
        return ()
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


@lru_cache(maxsize=1)
def field_types() -> dict[str, str]:
    """``{abbrev: FT_TYPE}`` for every field the installed tshark knows (``tshark -G fields``)."""
    out = run_tool(["-G", "fields"], path="tshark -G fields", timeout=120)
    types: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0] == "F":
            types[parts[2]] = parts[3]
    return types


def resolve_fields(logical: Iterable[str]) -> dict[str, str]:
    """Map logical names (keys of :data:`FIELDS`) to the abbreviation the installed tshark knows.

    Raises ToolError when none of a field's candidates exists (a tshark too old or too new)."""
    known = field_types()
    out: dict[str, str] = {}
    for name in logical:
        cands = FIELDS[name]
        for c in cands:
            if c in known:
                out[name] = c
                break
        else:
            raise ToolError(
                f"tshark {tshark_version()}: none of the fields {cands} exists (needed for {name})"
            )
    return out


def parse_time(value: str) -> int | None:
    """A tshark absolute time as ns since the epoch: ``"1501770877.501001000"`` (4.0) or ISO 8601 (4.6)."""
    v = value.strip()
    if not v:
        return None
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?", v)
    if m:
        frac = (m.group(2) or "").ljust(9, "0")
        return int(m.group(1)) * 1_000_000_000 + int(frac)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?", v)
    if m:
        base = datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
        if base.tzinfo is None:
            base = base.replace(tzinfo=timezone.utc)
        frac = (m.group(2) or "").ljust(9, "0")
        return int(base.timestamp()) * 1_000_000_000 + int(frac)
    return None


def _decode(value: str, ftype: str) -> Any:
    if ftype == "FT_BYTES" or ftype == "FT_UINT_BYTES":
        h = value.replace(":", "").strip()
        try:
            return bytes.fromhex(h)
        except ValueError:
            return value.encode("utf-8", "surrogateescape")
    if ftype in ("FT_STRING", "FT_STRINGZ", "FT_UINT_STRING", "FT_STRINGZPAD", "FT_STRINGZTRUNC"):
        return value
    if ftype.startswith(("FT_UINT", "FT_INT")) or ftype == "FT_FRAMENUM":
        try:
            return int(value, 0)
        except ValueError:
            return value
    if ftype == "FT_BOOLEAN":
        return value.strip().lower() in ("1", "true", "yes")
    return value


@dataclass
class Packet:
    """One exported packet: ``frame`` (in the original capture) and ``fields[logical] -> [values]``."""

    frame: int
    fields: dict[str, list[Any]]

    def get(self, name: str) -> Any:
        v = self.fields.get(name)
        return v[0] if v else None

    def all(self, name: str) -> list[Any]:
        return self.fields.get(name) or []


def frame_ranges(frames: Sequence[int]) -> list[str]:
    """Sorted frame numbers as editcap's selection arguments (``[1, 2, 3, 7]`` -> ``["1-3", "7"]``)."""
    out: list[str] = []
    start = prev = None
    for f in frames:
        if start is None:
            start = prev = f
        elif f == prev + 1:  # type: ignore[operator]
            prev = f
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = f
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return out


MAX_RANGES = 20_000  # beyond this the argv gets unwieldy: dissect the whole file with a filter instead


@contextmanager
def _subset(
    path: str | os.PathLike[str], frames: Sequence[int] | np.ndarray | None, timeout: float
) -> Iterator[tuple[str, np.ndarray | None]]:
    """Yield (file to dissect, mapping new frame number - 1 → original frame number or None).

    With ``frames``, those frames are copied in order (editcap) into a temporary capture; without, or
    when the list would make an unwieldy command line, the original file is used as is."""
    if frames is None:
        yield str(path), None
        return
    fr = np.unique(np.asarray(frames, dtype=np.int64))
    ranges = frame_ranges([int(x) for x in fr])
    if len(ranges) > MAX_RANGES:
        yield str(path), None
        return
    with tempfile.TemporaryDirectory(prefix="rtcf-tshark-") as tmp:
        sub = os.path.join(tmp, "control.pcapng")
        src = str(Path(path).absolute())  # a name such as -h.pcap is never read as an option
        try:
            run_tool(["-r", src, sub, *ranges], path=path, timeout=timeout, tool="editcap")
        except ToolError:
            # editcap 4.0 cannot copy a selection out of a pcapng with embedded TLS secrets (DSB):
            # dissect the whole file instead, the secrets stay where tshark finds them
            yield str(path), None
            return
        yield sub, fr


@lru_cache(maxsize=1)
def known_prefs() -> frozenset[str]:
    """Preference names the installed tshark accepts (``tshark -G defaultprefs``)."""
    out = run_tool(["-G", "defaultprefs"], path="tshark -G defaultprefs", timeout=120)
    return frozenset(m.group(1) for m in re.finditer(r"^#?([a-z0-9_.-]+):", out, re.MULTILINE))


def _options(keylog: str | os.PathLike[str] | None, extra_opts: Sequence[str]) -> list[str]:
    opts: list[str] = []
    known = known_prefs()
    for p in PREFS:
        if p.split(":", 1)[0] in known:  # an unknown -o is fatal to tshark; a renamed pref keeps its default
            opts += ["-o", p]
    if keylog:
        opts += ["-o", f"{KEYLOG_PREF}:{Path(keylog).resolve()}"]
    return opts + list(extra_opts)


def _run_json(
    path: str | os.PathLike[str], src: str, args: list[str], timeout: float, warnings: list[str] | None = None
) -> list[Any]:
    out = run_tool(["-r", src, *args], path=path, timeout=timeout, warnings=warnings)
    try:
        docs = json_loads(out) if out.strip() else []
    except (ValueError, RecursionError) as e:
        raise ToolError(f"{path}: tshark JSON output could not be read ({e})") from None
    return docs if isinstance(docs, list) else []


def _orig_frame(path: str | os.PathLike[str], num: int, mapping: np.ndarray | None) -> int:
    if mapping is None:
        return num
    if not 1 <= num <= len(mapping):
        raise ToolError(f"{path}: tshark reported frame {num} outside the control-plane subset")
    return int(mapping[num - 1])


def export(
    path: str | os.PathLike[str],
    logical: Sequence[str],
    *,
    display_filter: str | None = None,
    keylog: str | os.PathLike[str] | None = None,
    frames: Sequence[int] | np.ndarray | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    extra_opts: Sequence[str] = (),
    warnings: list[str] | None = None,
) -> list[Packet]:
    """Export ``logical`` fields of the packets matching ``display_filter``.

    ``frames``: when given, only those frames of ``path`` are copied (editcap, in order) into a
    temporary capture that tshark dissects; frame numbers are mapped back to the original ones, so
    TCP streams and TLS sessions stay whole as long as all their frames are listed. ``warnings``
    receives tshark's complaint when it read a damaged capture only up to the damage."""
    if frames is not None and len(frames) == 0:
        return []
    names = resolve_fields(logical)
    types = field_types()
    args = [*_options(keylog, extra_opts), "-T", "json"]
    for n in names.values():
        args += ["-e", n]
    if "frame" not in names:
        args += ["-e", "frame.number"]
    if display_filter:
        args += ["-Y", display_filter]
    with _subset(path, frames, timeout) as (src, mapping):
        docs = _run_json(path, src, args, timeout, warnings)
    rev = {v: k for k, v in names.items()}
    packets: list[Packet] = []
    for d in docs:
        layers = d.get("_source", {}).get("layers", {})
        fields: dict[str, list[Any]] = {}
        for abbrev, vals in layers.items():
            lname = rev.get(abbrev)
            if lname is None:
                continue
            if not isinstance(vals, list):
                vals = [vals]
            ft = types.get(abbrev, "FT_STRING")
            fields[lname] = [_decode(v, ft) for v in vals if isinstance(v, str)]
        fn = layers.get("frame.number")
        num = _orig_frame(path, int(fn[0] if isinstance(fn, list) else fn), mapping)
        fields["frame"] = [num]
        packets.append(Packet(num, fields))
    return packets


def _raw_layers(
    path: str | os.PathLike[str],
    protocol: str,
    display_filter: str,
    keylog: str | os.PathLike[str] | None,
    frames: Sequence[int] | np.ndarray | None,
    timeout: float,
    extra_opts: Sequence[str],
    warnings: list[str] | None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(original frame number, layers) of ``tshark -T json -x -j "frame <protocol>"`` over ``frames``."""
    args = [
        *_options(keylog, extra_opts),
        "-T",
        "json",
        "-x",
        "--no-duplicate-keys",
        "-j",
        f"frame {protocol}",
        "-Y",
        display_filter,
    ]
    with _subset(path, frames, timeout) as (src, mapping):
        docs = _run_json(path, src, args, timeout, warnings)
    for d in docs:
        layers = d.get("_source", {}).get("layers", {})
        fr = layers.get("frame", {})
        fr = fr[0] if isinstance(fr, list) else fr
        yield _orig_frame(path, int(fr.get("frame.number", 0)), mapping), layers


def export_raw(
    path: str | os.PathLike[str],
    protocol: str,
    *,
    display_filter: str,
    keylog: str | os.PathLike[str] | None = None,
    frames: Sequence[int] | np.ndarray | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    extra_opts: Sequence[str] = (),
    warnings: list[str] | None = None,
) -> dict[int, list[bytes]]:
    """The bytes each ``protocol`` layer covered, per frame: ``{frame: [bytes, ...]}`` (``-T json -x``).

    These are the bytes as that layer saw them (unmasked WebSocket payload, decrypted TLS, reassembled
    TCP), which no field export gives when a sub-protocol took the payload (SIP over WebSocket)."""
    if frames is not None and len(frames) == 0:
        return {}
    out: dict[int, list[bytes]] = {}
    for num, layers in _raw_layers(
        path, protocol, display_filter, keylog, frames, timeout, extra_opts, warnings
    ):
        raw = layers.get(f"{protocol}_raw")
        if raw is None:
            continue
        items = raw if raw and isinstance(raw[0], list) else [raw]
        for it in items:
            if it and isinstance(it[0], str):
                try:
                    out.setdefault(num, []).append(bytes.fromhex(it[0]))
                except ValueError:
                    continue
    return out


# What the `signalling` frame reads (dissect.control): fields and the display filter of the control plane.
SIGNALLING_FIELDS = (
    "frame",
    "time_epoch",
    "protocols",
    "ip_src",
    "ip_dst",
    "ipv6_src",
    "ipv6_dst",
    "tcp_srcport",
    "tcp_dstport",
    "udp_srcport",
    "udp_dstport",
    "tcp_stream",
    "tls_hs_type",
    "tls_hs_version",
    "tls_supported_version",
    "tls_cipher",
    "tls_sni",
    "http_method",
    "http_uri",
    "http_full_uri",
    "http_status",
    "http_request_lines",
    "http_response_lines",
    "http_body",
    "http_response_for_uri",
    "ws_opcode",
    "ws_pmc",
    "ws_text",
    "data",
)
SIGNALLING_FILTER = "http || websocket || sip || tls.handshake.type == 1 || tls.handshake.type == 2"


def iter_field_names() -> Iterator[tuple[str, str]]:
    """(logical, candidate) pairs of the field table, for documentation and tests."""
    for k, cands in FIELDS.items():
        for c in cands:
            yield k, c


# tshark 4.0 cuts the websocket.payload.text field (and the unmasked payload it shows) at this many bytes
WS_TEXT_LIMIT = 262_144
WS_WHOLE_FILTER = f"websocket.payload_length_ext_64 >= {WS_TEXT_LIMIT - 4}"


def export_ws_whole(
    path: str | os.PathLike[str],
    *,
    keylog: str | os.PathLike[str] | None = None,
    frames: Sequence[int] | np.ndarray | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    extra_opts: Sequence[str] = (),
    warnings: list[str] | None = None,
) -> dict[int, list[bytes]]:
    """Whole payloads of the WebSocket messages at or over tshark's field limit (``WS_TEXT_LIMIT``), per frame,
    unmasked here from the ``websocket.masked_payload`` bytes (tshark keeps them whole) and the masking key.
    Unmasked (server) frames and permessage-deflate frames are left out: their whole bytes are not exported."""
    if frames is not None and len(frames) == 0:
        return {}
    out: dict[int, list[bytes]] = {}
    for num, layers in _raw_layers(
        path, "websocket", WS_WHOLE_FILTER, keylog, frames, timeout, extra_opts, warnings
    ):
        ws = layers.get("websocket")
        for w in ws if isinstance(ws, list) else [ws]:
            payload = _ws_unmasked(w) if isinstance(w, dict) else None
            if payload is not None:
                out.setdefault(num, []).append(payload)
    return out


def _ws_unmasked(w: dict[str, Any]) -> bytes | None:
    raw, key = w.get("websocket.masked_payload_raw"), str(w.get("websocket.masking_key") or "")
    if str(w.get("websocket.pmc") or "0") not in ("0", "False", "false"):
        return None  # compressed: inflating needs the connection's deflate context
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
        return None
    try:
        data = np.frombuffer(bytes.fromhex(raw[0]), dtype=np.uint8)
        mask = np.frombuffer(bytes.fromhex(key.replace(":", "")), dtype=np.uint8)
    except ValueError:
        return None
    if len(mask) != 4:
        return None
    return (data ^ np.resize(mask, len(data))).tobytes()
