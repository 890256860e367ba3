"""Scale benchmark: big captures, many flows, and a fleet of captures through the case store.

Everything is built from a real sample capture by rewriting the pcap records (real packets, replicated):

  load      : 1M and 10M packets (``--sizes``) built by ``bench_load.build`` (a real call repeated, time
              shifted, RTP sequence/timestamps continued); ``rtcforensics.load`` + the media frames in a
              child process (wall time, peak RSS), and ``tshark -T fields`` on the smallest size (ratio).
  flows     : ``--flows`` distinct UDP flows of a few packets each: copies of a short real exchange, each
              with its IPv4 addresses rewritten (so each copy is new flows) and shifted in time; load time
              and peak RSS, packets/s.
  fleet     : ``--fleet`` copies of a sample call with shifted addresses (one file each) ingested into a
              case by 1 and by 2 local worker processes, and through a loopback Dask cluster (a ``dask
              scheduler`` and two ``dask worker`` processes on 127.0.0.1): captures/s and packets/s.

No pass/fail: figures to read. The machine is shared: run it when nothing else is busy.

    .venv/bin/python benchmarks/bench_scale.py                         # 1M, 10M, 1M flows, 200 captures
    .venv/bin/python benchmarks/bench_scale.py --sizes 1000000 --flows 100000 --fleet 20   # modest
    .venv/bin/python benchmarks/bench_scale.py --only fleet
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import bench_load  # noqa: E402  (the big-capture builder and the child runners are shared)

FLOW_SOURCE = ROOT / "sample_captures/turn_open_relay.pcapng"  # 42 packets: STUN/TURN + relayed UDP
FLEET_SOURCE = ROOT / "sample_captures/fingerprint_rewrite.pcapng"  # 177 packets: a whole aiortc call
ETHERTYPE_IPV4 = 0x0800


# -- pcap records ---------------------------------------------------------------------------------


def records(source: Path) -> tuple[int, list[tuple[int, bytes, int]]]:
    """(linktype, [(ts_ns, data, origlen)]) of ``source`` (any format tshark reads; converted by editcap)."""
    with tempfile.TemporaryDirectory() as td:
        pcap = Path(td) / "src.pcap"
        subprocess.run(["editcap", "-F", "pcap", str(source), str(pcap)], check=True)
        raw = pcap.read_bytes()
    magic = struct.unpack("<I", raw[:4])[0]
    endian, nano = {
        0xA1B2C3D4: ("<", False),
        0xA1B23C4D: ("<", True),
        0xD4C3B2A1: (">", False),
        0x4D3CB2A1: (">", True),
    }[magic]
    linktype = struct.unpack(endian + "I", raw[20:24])[0]
    out, off = [], 24
    while off + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", raw[off : off + 16])
        out.append(
            (sec * 1_000_000_000 + (frac if nano else frac * 1000), raw[off + 16 : off + 16 + incl], orig)
        )
        off += 16 + incl
    return linktype, out


def _ip_offset(linktype: int, data: bytes) -> int | None:
    if linktype == 1 and len(data) >= 34:  # Ethernet (one VLAN tag allowed)
        et, off = struct.unpack(">H", data[12:14])[0], 14
        if et == 0x8100:
            et, off = struct.unpack(">H", data[16:18])[0], 18
        return off if et == ETHERTYPE_IPV4 else None
    if linktype == 101:
        return 0 if data[:1] and data[0] >> 4 == 4 else None
    if linktype == 113:
        return 16 if struct.unpack(">H", data[14:16])[0] == ETHERTYPE_IPV4 else None
    return None


def _checksum(header: bytes) -> int:
    s = sum(struct.unpack(f">{len(header) // 2}H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def shift_addresses(linktype: int, data: bytes, k: int) -> bytes:
    """The packet with the low 16 bits of both IPv4 addresses XORed with ``k`` (header checksum fixed, UDP
    checksum cleared: legal for IPv4), so copy ``k`` is other hosts and other flows."""
    off = _ip_offset(linktype, data)
    if off is None or k == 0:
        return data
    b = bytearray(data)
    ihl = (b[off] & 0x0F) * 4
    for a in (off + 12, off + 16):
        v = struct.unpack(">I", b[a : a + 4])[0] ^ (k & 0xFFFF)
        b[a : a + 4] = struct.pack(">I", v)
    b[off + 10 : off + 12] = b"\0\0"
    b[off + 10 : off + 12] = struct.pack(">H", _checksum(bytes(b[off : off + ihl])))
    if b[off + 9] == 17 and len(b) >= off + ihl + 8:
        b[off + ihl + 6 : off + ihl + 8] = b"\0\0"
    return bytes(b)


def write_pcap(path: Path, linktype: int, recs: Iterator[tuple[int, bytes, int]]) -> int:
    n = 0
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        for ts, data, orig in recs:
            fh.write(
                struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000, len(data), max(orig, len(data)))
            )
            fh.write(data)
            n += 1
    return n


def _flow_key(linktype: int, data: bytes) -> frozenset[bytes]:
    o = _ip_offset(linktype, data) or 0
    ihl = (data[o] & 0x0F) * 4
    return frozenset(
        (
            data[o + 12 : o + 16] + data[o + ihl : o + ihl + 2],
            data[o + 16 : o + 20] + data[o + ihl + 2 : o + ihl + 4],
        )
    )


def build_flows(flows: int, source: Path = FLOW_SOURCE) -> tuple[Path, int]:
    """A capture of about ``flows`` distinct UDP flows: copies of ``source``'s UDP exchange, each with new
    addresses and shifted in time."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"flows_{flows}_{source.stem}.pcap"
    linktype, recs = records(source)
    udp = [r for r in recs if (o := _ip_offset(linktype, r[1])) is not None and r[1][o + 9] == 17]
    per_copy = len({_flow_key(linktype, r[1]) for r in udp}) or 1  # flows in one copy
    copies = max(1, flows // per_copy)
    span = udp[-1][0] - udp[0][0] + 1_000_000
    if not out.exists():

        def gen() -> Iterator[tuple[int, bytes, int]]:
            for c in range(copies):
                hi, lo = divmod(c + 1, 0xFFFF)
                for ts, data, orig in udp:
                    d = shift_addresses(linktype, data, lo)
                    if hi:  # beyond 65535 copies: vary the ports' high byte as well
                        o = _ip_offset(linktype, d) or 0
                        ihl = (d[o] & 0x0F) * 4
                        d = d[: o + ihl] + bytes([d[o + ihl] ^ (hi & 0xFF)]) + d[o + ihl + 1 :]
                    yield ts + c * span, d, orig

        write_pcap(out, linktype, gen())
    return out, copies * len(udp)


def build_fleet(n: int, source: Path = FLEET_SOURCE) -> tuple[Path, int]:
    """``n`` copies of ``source`` with shifted addresses, one pcap each, in work/fleet_<n>/."""
    d = WORK / f"fleet_{n}_{source.stem}"
    linktype, recs = records(source)
    if not (d.is_dir() and len(list(d.glob("*.pcap"))) == n):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for k in range(n):
            write_pcap(
                d / f"copy_{k:04d}.pcap",
                linktype,
                ((ts, shift_addresses(linktype, data, k), orig) for ts, data, orig in recs),
            )
    return d, len(recs)


# -- runs -----------------------------------------------------------------------------------------


def child_load(path: Path) -> dict[str, float]:
    return bench_load.child("ours", path)


def ingest_run(fleet: Path, case: Path, args: list[str]) -> float:
    shutil.rmtree(case, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rtcforensics.case", "ingest", str(fleet), "--case", str(case), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000", help="packet counts for the load runs")
    ap.add_argument("--source", type=Path, help="capture repeated for the load runs (default: bench_load's)")
    ap.add_argument("--flows", type=int, default=1_000_000, help="distinct flows for the many-flows run")
    ap.add_argument("--fleet", type=int, default=200, help="captures in the fleet runs")
    ap.add_argument("--only", choices=("load", "flows", "fleet"), action="append")
    ap.add_argument("--skip-tshark", action="store_true")
    a = ap.parse_args()
    only = set(a.only or ("load", "flows", "fleet"))
    print(f"machine   {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

    if "load" in only:
        source = a.source or next((p for p in bench_load.DEFAULT_SOURCES if p.exists()), None)
        if source is None:
            raise SystemExit("no source capture: pass --source")
        sizes = [int(s) for s in a.sizes.split(",") if s]
        first: dict[str, float] | None = None
        for n in sizes:
            t0 = time.perf_counter()
            path = bench_load.build(source, n)
            print(
                f"capture   {path.name}: {n:,} packets from {source.name}, {path.stat().st_size / 1e6:.0f} MB "
                f"(built in {time.perf_counter() - t0:.1f} s)"
            )
            ours = child_load(path)
            print(
                f"load      {n:>11,} packets  {ours['wall_s']:8.2f} s  peak RSS {ours['rss_mb']:7.0f} MB  "
                f"{n / ours['wall_s']:,.0f} packets/s"
            )
            if first is None:
                first = {"n": n, **ours}
                if not a.skip_tshark:
                    ts = bench_load.child("tshark", path)
                    print(
                        f"tshark    {n:>11,} packets  {ts['wall_s']:8.2f} s  peak RSS {ts['rss_mb']:7.0f} MB "
                        f"(pandas) / {ts['tshark_rss_mb']:.0f} MB (tshark)   ratio ours/tshark "
                        f"{ours['wall_s'] / ts['wall_s']:.3f}"
                    )
            else:
                print(
                    f"          time x{ours['wall_s'] / first['wall_s']:.2f} for x{n / first['n']:.0f} packets; "
                    f"RSS x{ours['rss_mb'] / first['rss_mb']:.2f}"
                )

    if "flows" in only and a.flows:
        t0 = time.perf_counter()
        path, packets = build_flows(a.flows)
        print(
            f"capture   {path.name}: ~{a.flows:,} UDP flows, {packets:,} packets from {FLOW_SOURCE.name}, "
            f"{path.stat().st_size / 1e6:.0f} MB (built in {time.perf_counter() - t0:.1f} s)"
        )
        ours = child_load(path)
        print(
            f"flows     {ours.get('flows', 0):>11,.0f} flows  {ours['wall_s']:8.2f} s  peak RSS "
            f"{ours['rss_mb']:7.0f} MB  {packets / ours['wall_s']:,.0f} packets/s"
        )

    if "fleet" in only and a.fleet:
        t0 = time.perf_counter()
        fleet, per = build_fleet(a.fleet)
        total = per * a.fleet
        print(
            f"fleet     {a.fleet} copies of {FLEET_SOURCE.name} ({per} packets each, shifted addresses) in "
            f"{fleet.relative_to(ROOT)} (built in {time.perf_counter() - t0:.1f} s)"
        )
        cases = WORK / "cases"
        for label, extra in (("1 local worker", []), ("2 local workers", ["--jobs", "2"])):
            wall = ingest_run(fleet, cases / label.replace(" ", "_"), extra)
            print(
                f"ingest    {label:22s} {wall:8.2f} s  {a.fleet / wall:6.2f} captures/s  {total / wall:9,.0f} "
                f"packets/s"
            )
        from rtcforensics.case.cluster import loopback_cluster

        with loopback_cluster(2) as address:
            wall = ingest_run(fleet, cases / "dask", ["--scheduler", address])
        print(
            f"ingest    {'dask, 2 workers':22s} {wall:8.2f} s  {a.fleet / wall:6.2f} captures/s  "
            f"{total / wall:9,.0f} packets/s   ({address})"
        )


if __name__ == "__main__":
    main()
