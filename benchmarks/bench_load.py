"""Load benchmark: rtcforensics.load with the media-plane frames built vs tshark -T fields into pandas.

Builds a capture of ~N packets (default 1,000,000) by repeating a real call with its timestamps shifted
forward one call-length per copy, writes it to benchmarks/work/ (gitignored), then in separate child
processes (so each peak RSS is its own):

  ours   : rtcforensics.load(path); packets, flows, rtp, rtp_streams, rtcp (+ stun, dtls when registered)
  tshark : tshark -T fields with the same fields (heuristics for RTP on random ports) -> pandas.read_csv

and prints both wall times, their ratio and the peak RSS of each. No pass/fail: figures to read.

    .venv/bin/python benchmarks/bench_load.py [--packets 1000000] [--source CAPTURE] [--skip-tshark]
    .venv/bin/python benchmarks/bench_load.py --emit 30000000 | CONSUMER     # the capture to a pipe
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
DEFAULT_SOURCES = [
    ROOT.parent / "shared/realcaps/ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap",  # SDES call, direct UDP
    ROOT / "sample_captures/clean_call.pcapng",
]
TSHARK_FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.dstport",
    "frame.len",
    "rtp.ssrc",
    "rtp.seq",
    "rtp.timestamp",
    "rtp.p_type",
    "rtp.marker",
    "rtcp.pt",
    "rtcp.senderssrc",
    "stun.type",
    "dtls.record.content_type",
]


def build(source: Path, packets: int) -> Path:
    """Write ``source`` repeated up to ``packets`` records as a nanosecond pcap, each copy shifted forward in
    time by one call-length and continuing the call: RTP sequence numbers and timestamps carry on per SSRC,
    STUN transaction ids differ per copy (so streams and transactions look like one long call, not the same
    few seconds replayed)."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"bench_{packets}_{source.stem}.pcap"
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        emit(fh, source, packets)
    tmp.rename(out)
    return out


def emit(fh: BinaryIO, source: Path, packets: int) -> int:
    """Write the capture :func:`build` describes to ``fh`` (a file or a pipe: one copy of the call in memory
    at a time); returns the packets written."""
    sys.path.insert(0, str(ROOT))
    from rtcforensics.dissect.fastpath import dissect
    from rtcforensics.dissect.pcapio import CaptureReader

    recs = []
    linktypes = set()
    for b in CaptureReader(source).batches():
        linktypes.update(b.linktype.tolist())
        for i in range(len(b)):
            recs.append((int(b.ts_ns[i]), b.packet(i), int(b.origlen[i])))
    if len(linktypes) != 1:
        raise SystemExit(f"{source}: needs a single link type, has {sorted(linktypes)}")
    ts0 = np.array([r[0] for r in recs], dtype=np.int64)
    span = int(ts0[-1] - ts0[0]) + 20_000_000
    hdr = np.zeros((len(recs), 4), dtype="<u4")
    hdr[:, 2] = [len(r[1]) for r in recs]
    hdr[:, 3] = [max(r[2], len(r[1])) for r in recs]
    sizes = 16 + hdr[:, 2].astype(np.int64)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    template = bytearray(int(sizes.sum()))
    for (_ts, data, _), o in zip(recs, offs.tolist()):
        template[o + 16 : o + 16 + len(data)] = data
    # where each copy must differ: RTP seq / timestamp per SSRC, STUN transaction ids
    d = dissect(source, progress=False)
    r = d.rtp
    direct = r["via_turn"] < 0
    seq_pos, seq_step, ts_pos, ts_step = [], [], [], []
    for ssrc in np.unique(r["ssrc"][direct]).tolist():
        sel = direct & (r["ssrc"] == ssrc)
        rts = r["rtp_ts"][sel].astype(np.int64)
        step_ts = int(rts.max() - rts.min()) + int(np.median(np.diff(rts))) if len(rts) > 1 else 960
        key = int(ssrc).to_bytes(4, "big")
        for fr in r["frame"][sel].tolist():
            p = template.find(key, int(offs[fr - 1]) + 16, int(offs[fr - 1] + sizes[fr - 1])) - 8
            seq_pos.append(p + 2)
            seq_step.append(int(sel.sum()))
            ts_pos.append(p + 4)
            ts_step.append(step_ts)
    tx_pos = []
    for dg in d.stun:
        if dg.via_turn is None and dg.transport == "udp":
            o = int(offs[dg.frame - 1])
            tx_pos.append(template.find(dg.data[:20], o + 16, o + int(sizes[dg.frame - 1])) + 16)
    tmpl = np.frombuffer(bytes(template), dtype=np.uint8)

    def field(pos: list[int], width: int) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(pos, dtype=np.int64)
        idx = p[:, None] + np.arange(width)[None, :]
        return idx, tmpl[idx].astype(np.int64) @ (256 ** np.arange(width - 1, -1, -1))

    seq_idx, seq0 = field(seq_pos, 2)
    ts_idx, rts0 = field(ts_pos, 4)
    tx_idx, tx0 = field(tx_pos, 4)

    def put(buf: np.ndarray, idx: np.ndarray, values: np.ndarray, width: int) -> None:
        for k in range(width):
            buf[idx[:, k]] = (values >> (8 * (width - 1 - k))) & 0xFF

    copies = -(-packets // len(recs))
    fh.write(np.array([0xA1B23C4D, 0x00040002, 0, 0, 262144, linktypes.pop()], dtype="<u4").tobytes()[:24])
    written = 0
    for c in range(copies):
        n = min(len(recs), packets - written)
        ts = ts0[:n] + c * span
        hdr[:n, 0] = ts // 1_000_000_000
        hdr[:n, 1] = ts % 1_000_000_000
        buf = tmpl.copy()
        idx = offs[:n, None] + np.arange(16)[None, :]
        buf[idx] = hdr[:n].view(np.uint8).reshape(n, 16)
        put(buf, seq_idx, (seq0 + c * np.asarray(seq_step)) % 65536, 2)
        put(buf, ts_idx, (rts0 + c * np.asarray(ts_step)) % (1 << 32), 4)
        put(buf, tx_idx, tx0 ^ c, 4)
        fh.write(buf[: int(offs[n - 1] + sizes[n - 1])].tobytes())
        written += n
    return written


def run_ours(path: str) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    import rtcforensics  # imported before the clock starts, as pandas is on the tshark side

    t0 = time.perf_counter()
    cap = rtcforensics.load(path, progress=False)
    sizes: dict[str, float] = {}
    for name in ("packets", "flows", "rtp", "rtp_streams", "rtcp", "stun", "dtls"):
        if name in cap.frame_names():
            t1 = time.perf_counter()
            sizes[name] = len(cap.get_frame(name))
            sizes[f"{name}_s"] = round(time.perf_counter() - t1, 2)  # packets_s includes the fast-path pass
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **sizes}


def run_tshark(path: str) -> dict[str, float]:
    import pandas as pd

    t0 = time.perf_counter()
    cmd = [
        "tshark",
        "-r",
        path,
        "-n",
        "--enable-heuristic",
        "rtp_udp",
        "--enable-heuristic",
        "rtp_stun",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=f",
    ]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    df = pd.read_csv(
        proc.stdout,
        sep="\t",
        header=None,
        names=TSHARK_FIELDS,
        dtype=str,
        engine="c",
        quoting=3,
        na_filter=True,
    )
    proc.wait()
    df["frame.time_epoch"] = pd.to_numeric(df["frame.time_epoch"])
    for c in (
        "udp.srcport",
        "udp.dstport",
        "tcp.srcport",
        "tcp.dstport",
        "frame.len",
        "rtp.seq",
        "rtp.timestamp",
        "rtp.p_type",
    ):
        df[c] = pd.to_numeric(df[c]).astype("Int64")
    rtp = df[df["rtp.ssrc"].notna()]
    streams = rtp.groupby("rtp.ssrc").size()
    wall = time.perf_counter() - t0
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "wall_s": wall,
        "rss_mb": self_rss,
        "tshark_rss_mb": child_rss,
        "rows": len(df),
        "rtp": len(rtp),
        "streams": len(streams),
    }


def child(kind: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, f"--child-{kind}", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--source", type=Path)
    ap.add_argument("--skip-tshark", action="store_true")
    ap.add_argument("--child-ours")
    ap.add_argument("--child-tshark")
    ap.add_argument("--emit", type=int, metavar="N", help="write the N-packet capture to standard output")
    a = ap.parse_args()
    if a.child_ours:
        print(json.dumps(run_ours(a.child_ours)))
        return
    if a.child_tshark:
        print(json.dumps(run_tshark(a.child_tshark)))
        return
    source = a.source or next((p for p in DEFAULT_SOURCES if p.exists()), None)
    if source is None:
        raise SystemExit("no source capture: pass --source")
    if a.emit:
        try:
            emit(sys.stdout.buffer, source, a.emit)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # the reader stopped (e.g. max_packets)
            os._exit(0)
        return
    t0 = time.perf_counter()
    path = build(source, a.packets)
    print(
        f"capture   {path.relative_to(ROOT)}  ({a.packets:,} packets from {source.name}, "
        f"{path.stat().st_size / 1e6:.0f} MB, built in {time.perf_counter() - t0:.1f} s)"
    )
    ours = child("ours", path)
    print(f"ours      {ours['wall_s']:7.2f} s   peak RSS {ours['rss_mb']:6.0f} MB")
    print(
        "          "
        + "  ".join(
            f"{k}={ours[k]:,} ({ours[k + '_s']} s)"
            for k in ours
            if k not in ("wall_s", "rss_mb") and not k.endswith("_s")
        )
    )
    if a.skip_tshark:
        return
    ts = child("tshark", path)
    print(
        f"tshark    {ts['wall_s']:7.2f} s   peak RSS {ts['rss_mb']:6.0f} MB (pandas) / "
        f"{ts['tshark_rss_mb']:.0f} MB (tshark)   rows={ts['rows']:,} rtp={ts['rtp']:,}"
    )
    print(f"ratio     {ours['wall_s'] / ts['wall_s']:.3f}  (ours / tshark; target <= 0.2)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
