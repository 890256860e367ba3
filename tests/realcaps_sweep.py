"""The must-show sweep of issue 14: on every third-party capture in ../shared/realcaps and every sample capture,
the facts of our ``stun``, ``dtls`` and ``rtp_streams`` frames against tshark's reading of the same packets,
and every medium+ finding with the hosts it names.

Run ``python -m tests.realcaps_sweep`` (from the project root) for the table; ``tests/test_realcaps_sweep.py``
runs the same code and holds the reviewed expectations. tshark runs once per capture (cached in the run) with
the heuristics the docs name: ``rtp_udp``, ``rtp_stun`` (RTP in TURN) and ``dtls_stun`` (DTLS in TURN).

What is compared (only where tshark shows something; a frame tshark does not dissect is counted as *silent*):
- stun: per frame, the transaction ids, USERNAMEs, SOFTWAREs, ERROR-CODEs and the presence of
  MESSAGE-INTEGRITY / FINGERPRINT (a TURN Send/Data indication and the message it carries are one frame for
  both readers, so per-frame unions are compared); STUN frames tshark reads and we do not are differences.
- dtls: per handshake row, the client random (ClientHello frames), the chosen suite, version and use_srtp
  profile (ServerHello frames), SNI, and for a record-only version the record header versions. tshark 4.0
  cannot read DTLS 1.3 (supported_versions, CID records): a DTLS 1.3 version is not compared.
- rtp_streams: per stream, every packet's SSRC, sequence number and payload type at its frame, the stream's
  first sequence number and its payload type set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.truthlib import TSHARK_HEUR  # noqa: E402

SAMPLES = ROOT / "sample_captures"
REALCAPS = ROOT.parent / "shared" / "realcaps"
HEURISTICS = tuple(TSHARK_HEUR)  # rtp_udp, rtp_stun, dtls_stun: the lab's truth files read with the same
SEP = "\x1f"  # between a field's occurrences: a byte no STUN text or hex dump carries
MEDIUM_PLUS = ("medium", "high", "critical")

FIELDS = (
    "frame.number",
    "stun.id",
    "classicstun.id",
    "stun.att.username",
    "stun.att.software",
    "stun.att.error.class",
    "stun.att.error",
    "stun.att.type",
    "classicstun.att.type",
    "dtls.record.version",
    "dtls.handshake.type",
    "dtls.handshake.random",
    "dtls.handshake.ciphersuite",
    "dtls.handshake.version",
    "dtls.use_srtp.protection_profile",
    "dtls.handshake.extensions_server_name",
    "rtp.ssrc",
    "rtp.seq",
    "rtp.p_type",
)


def realcap_paths() -> list[Path]:
    """Every capture under ../shared/realcaps (empty when the folder is absent)."""
    if not REALCAPS.is_dir():
        return []
    return sorted(p for p in REALCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())


def sample_paths() -> list[Path]:
    return sorted(SAMPLES.glob("*.pcapng"))


def label(path: Path) -> str:
    return str(path.relative_to(REALCAPS)) if REALCAPS in path.parents else f"sample/{path.stem}"


@cache
def tshark_view(path: Path) -> dict[int, dict[str, list[str]]]:
    """frame number -> field -> values, for frames with STUN, DTLS or RTP as tshark reads them (a message
    quoted in an ICMP error is not one on the wire: left out, as our readers leave it)."""
    exe = shutil.which("tshark")
    if exe is None:
        raise RuntimeError("tshark not installed")
    cmd = [
        exe,
        "-r",
        str(path),
        "-n",
        *HEURISTICS,
        "-Y",
        "(stun || classicstun || dtls || rtp) && !icmp && !icmpv6",
    ]
    cmd += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", f"aggregator={SEP}"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False).stdout
    view: dict[int, dict[str, list[str]]] = {}
    for line in out.splitlines():
        cells = line.split("\t")
        row = {f: [v for v in c.split(SEP) if v] for f, c in zip(FIELDS, cells)}
        view[int(cells[0])] = row
    return view


def _hex(v: str) -> str:
    return v.lower().removeprefix("0x")


def _int(v: str) -> int:
    return int(v, 16) if v.lower().startswith("0x") else int(v)


# ---------------------------------------------------------------------------------------------------------
@dataclass
class Part:
    """One frame's comparison: rows compared, rows tshark was silent on, and the differences (text)."""

    compared: int = 0
    silent: int = 0
    diffs: list[str] = field(default_factory=list)

    def text(self) -> str:
        mark = "=" if not self.diffs else f"≠{len(self.diffs)}"
        return f"{self.compared}{mark}" + (f" ({self.silent} silent)" if self.silent else "")


def _tshark_stun(t: dict[str, list[str]]) -> dict[str, set[Any]]:
    types = set(t["stun.att.type"]) | set(t["classicstun.att.type"])
    codes = {100 * int(c) + int(n) for c, n in zip(t["stun.att.error.class"], t["stun.att.error"])}
    return {
        "txid": {_hex(v) for v in t["stun.id"] + t["classicstun.id"]},
        "username": set(t["stun.att.username"]),
        "software": set(t["stun.att.software"]),
        "error_code": codes,
        "integrity": {"0x0008" in types},
        "fingerprint": {"0x8028" in types},
    }


def compare_stun(cap: Any, view: dict[int, dict[str, list[str]]]) -> Part:
    from rtcforensics.values import records

    part = Part()
    ours: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records(cap.stun):
        ours[int(r["frame"])].append(r)
    for frame, rows in sorted(ours.items()):
        t = view.get(frame)
        if t is None or not (t["stun.id"] or t["classicstun.id"]):
            part.silent += 1
            continue
        part.compared += 1
        theirs = _tshark_stun(t)
        # tshark does not read a message carried inside a TURN Send/Data indication: compare the messages on
        # the wire alone when that is what tshark read
        outer = [r for r in rows if r["turn_peer"] is None and r["turn_channel"] is None]
        if {r["txid"] for r in rows} != theirs["txid"] and {r["txid"] for r in outer} == theirs["txid"]:
            rows = outer
        mine = {
            "txid": {r["txid"] for r in rows if r["txid"]},
            "username": {r["username"] for r in rows if r["username"] is not None},
            "software": {r["software"] for r in rows if r["software"] is not None},
            "error_code": {int(r["error_code"]) for r in rows if r["error_code"] is not None},
            "integrity": {any(bool(r["has_integrity"]) for r in rows)},
            "fingerprint": {any(bool(r["has_fingerprint"]) for r in rows)},
        }
        for k, v in mine.items():
            if v != theirs[k]:
                part.diffs.append(f"stun frame {frame} {k}: ours {sorted(v)} tshark {sorted(theirs[k])}")
    for frame, t in sorted(view.items()):
        if (t["stun.id"] or t["classicstun.id"]) and frame not in ours:
            part.diffs.append(
                f"stun frame {frame}: tshark reads STUN {t['stun.id'] or t['classicstun.id']}, we none"
            )
    return part


def compare_dtls(cap: Any, view: dict[int, dict[str, list[str]]]) -> Part:
    from rtcforensics.dissect.dtls import iana_name
    from rtcforensics.values import isna, listish, records

    part = Part()
    for r in records(cap.dtls):
        frames = [int(f) for f in listish(r["frames"])]
        rows = [(f, view[f]) for f in frames if f in view and view[f]["dtls.record.version"]]
        if not rows:
            part.silent += 1
            continue
        part.compared += 1
        where = f"dtls {r['client']} -> {r['server']}"
        ch = [t for _, t in rows if "1" in t["dtls.handshake.type"]]
        sh = [t for _, t in rows if "2" in t["dtls.handshake.type"]]
        checks: list[tuple[str, Any, set[Any]]] = []
        if ch and r["client_random"]:
            randoms = {_hex(x) for t in ch for x in t["dtls.handshake.random"]}
            checks.append(("client_random", r["client_random"], randoms))
            snis = {x for t in ch for x in t["dtls.handshake.extensions_server_name"]}
            checks.append(("sni", r["sni"], snis or {None}))
        tls13 = str(r["version"] or "").endswith("1.3")
        if sh and not tls13:
            suites = {
                iana_name("cipher_suites", _int(x)) for t in sh for x in t["dtls.handshake.ciphersuite"]
            }
            checks.append(("cipher_suite", r["cipher_suite"], suites))
            if r["version_source"] == "handshake":
                vers = {iana_name("versions", _int(x)) for t in sh for x in t["dtls.handshake.version"]}
                checks.append(("version", r["version"], vers))
            profs = {
                iana_name("srtp_profiles", _int(x)) for t in sh for x in t["dtls.use_srtp.protection_profile"]
            }
            if r["srtp_profile_source"] in (None, "clear") or profs:
                checks.append(("srtp_profile", r["srtp_profile"], profs or {None}))
        if r["version_source"] == "record" and not tls13 and not isna(r["version"]):
            recs = {iana_name("versions", _int(x)) for _, t in rows for x in t["dtls.record.version"]}
            checks.append(("record version", r["version"], recs))
        for name, mine, theirs in checks:
            if mine not in theirs:
                part.diffs.append(f"{where} {name}: ours {mine!r} tshark {sorted(map(str, theirs))}")
    return part


def compare_rtp(cap: Any, view: dict[int, dict[str, list[str]]]) -> Part:
    from rtcforensics.values import records

    part = Part()
    rtp = cap.rtp
    by_stream = {k: g for k, g in rtp.groupby(["flow_id", "ssrc"], sort=False)}
    for s in records(cap.rtp_streams):
        g = by_stream.get((s["flow_id"], s["ssrc"]))
        where = f"rtp ssrc 0x{int(s['ssrc']):08x} {s['src']}"
        if g is None:
            part.diffs.append(f"{where}: no packets in the rtp frame")
            continue
        read = [(int(f), int(q), int(p)) for f, q, p in zip(g["frame"], g["seq"], g["pt"]) if int(f) in view]
        read = [x for x in read if view[x[0]]["rtp.ssrc"]]
        if not read:
            part.silent += 1
            continue
        part.compared += 1
        bad = [
            f
            for f, q, p in read
            if int(s["ssrc"]) not in {_int(x) for x in view[f]["rtp.ssrc"]}
            or q not in {int(x) for x in view[f]["rtp.seq"]}
            or p not in {int(x) for x in view[f]["rtp.p_type"]}
        ]
        if bad:
            part.diffs.append(f"{where}: {len(bad)} packet(s) read otherwise by tshark, first frame {bad[0]}")
        if int(s["packets"]) != len(g):
            part.diffs.append(f"{where}: packets {s['packets']} but {len(g)} rows")
        first = view.get(int(s["first_frame"]))
        if first and first["rtp.seq"] and int(s["seq_first"]) not in {int(x) for x in first["rtp.seq"]}:
            part.diffs.append(f"{where}: seq_first {s['seq_first']} tshark {first['rtp.seq']}")
        theirs = sorted({p for _, _, p in read})
        if len(read) == len(g) and sorted(int(p) for p in s["pts"]) != theirs:
            part.diffs.append(f"{where}: pts {list(s['pts'])} tshark {theirs}")
    return part


# ---------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    capture: str
    stun: Part
    dtls: Part
    rtp: Part
    findings: list[tuple[str, str, str]]  # (severity, slug, hosts) of every medium+ finding
    error: str = ""

    @property
    def equal(self) -> bool:
        return not (self.error or self.stun.diffs or self.dtls.diffs or self.rtp.diffs)


def finding_hosts(endpoints: Iterable[str]) -> str:
    """The hosts a finding names, in its order, deduplicated (``values.host`` of each endpoint)."""
    from rtcforensics.values import host

    out: list[str] = []
    for e in endpoints:
        h = host(e) or e
        if h not in out:
            out.append(h)
    return ",".join(out)


def sweep_one(path: Path, with_findings: bool = True) -> Result:
    import rtcforensics
    from rtcforensics.checks.analyze import analyze

    kl = path.with_suffix(".keylog")
    cap = rtcforensics.load(path, keylog=kl if kl.exists() else None, progress=False)
    view = tshark_view(path)
    res = Result(label(path), compare_stun(cap, view), compare_dtls(cap, view), compare_rtp(cap, view), [])
    if with_findings:
        rep = analyze(cap)
        res.findings = sorted(
            (f.severity, f.slug, finding_hosts(f.endpoints))
            for f in rep.findings
            if f.severity in MEDIUM_PLUS
        )
    return res


def _job(args: tuple[Path, bool]) -> Result:
    try:
        return sweep_one(*args)
    except Exception as e:  # one capture's failure is a row of the table, not the end of the sweep
        empty = Part()
        return Result(label(args[0]), empty, empty, empty, [], f"{type(e).__name__}: {e}")


def sweep(paths: Iterable[tuple[Path, bool]], workers: int = 2) -> Iterator[Result]:
    """Results in the order given; ``workers`` processes (the machine has two cores)."""
    jobs = list(paths)
    if workers <= 1:
        yield from map(_job, jobs)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_job, jobs)


def table(results: Iterable[Result]) -> Iterator[str]:
    yield f"{'capture':58} {'stun':>14} {'dtls':>10} {'rtp_streams':>14} eq  medium+ findings (slug@hosts)"
    for r in results:
        found = "; ".join(f"{sev[0].upper()} {slug}@{hosts}" for sev, slug, hosts in r.findings) or "-"
        eq = "y" if r.equal else "n"
        yield f"{r.capture:58} {r.stun.text():>14} {r.dtls.text():>10} {r.rtp.text():>14} {eq}   {found}"
        for d in (r.stun.diffs + r.dtls.diffs + r.rtp.diffs)[:8]:
            yield f"    ! {d}"
        if r.error:
            yield f"    ! {r.error}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [(p, True) for p in realcap_paths() + sample_paths()]
    if args:
        paths = [(p, f) for p, f in paths if any(a in label(p) for a in args)]
    workers = int(os.environ.get("RTCF_SWEEP_WORKERS", "2"))
    results = []
    for line in table(r for r in sweep(paths, workers) if results.append(r) is None):
        print(line, flush=True)
    return 0 if all(r.equal for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
