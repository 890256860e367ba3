"""Zero-length records (captured length 0) keep Wireshark's frame numbering but have no row (issue 19).

A real call with empty records inserted (``fuzz.hostile.with_empty_records``: runs at the start, in the middle,
singles, at the end; pcap and pcapng) gives the frames and findings of the call itself, its packets numbered as
tshark numbers them; the streaming load writes the same packets; ``max_packets`` counts packets, not records."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from media_tshark import fields
from samples import sample_path

import rtcforensics
from rtcforensics.anomalies import AnomalyLog
from rtcforensics.case.store import from_arrow
from rtcforensics.checks.analyze import analyze
from rtcforensics.dissect.pcapio import CaptureReader
from rtcforensics.dissect.stream import stream

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz import hostile  # noqa: E402

NAME = "fingerprint_rewrite"  # a MITM call: STUN, a DTLS handshake, RTP, WebSocket signalling (tshark)
FRAMES = ("packets", "stun", "dtls", "rtp")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[int]]]:
    if shutil.which("editcap") is None:
        pytest.skip("editcap (Wireshark) not installed")
    out = tmp_path_factory.mktemp("empty_records")
    return {fmt: hostile.with_empty_records(NAME, out, fmt) for fmt in ("pcap", "pcapng")}


@pytest.fixture(scope="module")
def original(made: dict[str, tuple[Path, list[int]]]) -> dict[str, rtcforensics.Capture]:
    """The call without empty records, per format (the pcap one is editcap's microsecond copy)."""
    pcap = made["pcap"][0].parent / f".{NAME}.src.pcap"  # written by Pcap.of_sample
    return {"pcapng": rtcforensics.load(sample_path(NAME)), "pcap": rtcforensics.load(pcap)}


def _is_frame(name: str) -> bool:
    return name in ("frame", "frames") or name.endswith("_frame")


def _moved(v: Any, new: dict[int, int], frame: bool) -> Any:
    """``v`` with frame numbers mapped through ``new`` (``frame``: ``v`` holds frame numbers), inside lists and
    dicts too (e.g. dtls.alerts: [{"frame": …}])."""
    if isinstance(v, dict):
        return {k: _moved(x, new, _is_frame(str(k))) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        moved = [_moved(x, new, frame) for x in v]
        return np.array(moved, dtype=v.dtype) if isinstance(v, np.ndarray) else type(v)(moved)
    return new[int(v)] if frame and v is not None and not pd.isna(v) else v


def _renumbered(df: pd.DataFrame, new: dict[int, int]) -> pd.DataFrame:
    """``df`` with every frame number (columns ``frame``, ``frames``, ``*_frame``, and such keys in the dicts
    of object columns) mapped through ``new``."""
    df = df.copy()
    for c in df.columns:
        s, known = df[c].copy(), df[c].notna().to_numpy()
        if s.dtype == object:
            s[known] = pd.Series(
                [_moved(v, new, _is_frame(c)) for v in s[known]], index=s.index[known], dtype=object
            )
        elif _is_frame(c):
            s[known] = [new[int(v)] for v in s[known]]
        df[c] = s
    return df


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_real_packets_keep_tshark_s_frame_numbers(
    made: dict[str, tuple[Path, list[int]]], original: dict[str, rtcforensics.Capture], fmt: str
) -> None:
    path, frames = made[fmt]
    rows = [(int(n), int(c)) for n, c in fields(path, ["frame.number", "frame.cap_len"], heuristics=False)]
    assert [n for n, c in rows if c] == frames  # tshark numbers the real packets where the generator put them
    empty = [n for n, c in rows if not c]
    cap = rtcforensics.load(path)
    assert cap.packets["frame"].tolist() == frames
    assert cap.info["empty_records"] == len(empty) == 35 and cap.info["records"] == len(rows)
    assert cap.info["packets"] == len(cap.packets) == len(frames)
    (row,) = [r for r in cap.anomaly_log.rows if r["name"] == "empty_records"]
    runs = [[empty[0], empty[0]]]  # tshark's empty frames as runs of consecutive numbers
    for n in empty[1:]:
        if n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:5])
    assert shown == "1-2, 6, 14-19, 27, 35" and row["frame"] == 1
    assert row["detail"].startswith(
        f"35 zero-length record(s) (captured length 0) in {len(runs)} run(s), frames {shown} …:"
    )
    new = dict(zip(range(1, len(frames) + 1), frames))
    for name in FRAMES:  # the original's rows, frame numbers moved to where tshark shows them
        want = _renumbered(original[fmt].get_frame(name), new)
        pd.testing.assert_frame_equal(cap.get_frame(name), want, obj=name)


@pytest.mark.slow  # two whole analyses (tshark for the signalling): ~3 s idle, ~8 s under load
def test_findings_equal_the_original_s(
    made: dict[str, tuple[Path, list[int]]], original: dict[str, rtcforensics.Capture]
) -> None:
    path, frames = made["pcapng"]
    new = dict(zip(range(1, len(frames) + 1), frames))

    def key(f: Any, renumber: dict[int, int] | None) -> tuple[Any, ...]:
        fr = [renumber[x] for x in f.frames] if renumber else list(f.frames)
        return (f.id, f.slug, f.severity, f.confidence, tuple(f.endpoints), f.flow_id, tuple(fr))

    want = sorted(key(f, new) for f in analyze(original["pcapng"]).findings)
    got = sorted(key(f, None) for f in analyze(rtcforensics.load(path)).findings)
    assert got == want and any(s == "dtls-fingerprint-mismatch" for _, s, *_ in got)


def test_streamed_packets_equal_the_in_memory_ones(
    made: dict[str, tuple[Path, list[int]]], tmp_path: Path
) -> None:
    path, frames = made["pcap"]
    res = stream(path, tmp_path, chunk_packets=40)  # chunks end inside runs of empty records and between them
    cap = rtcforensics.load(path)
    for name in ("packets", "rtp"):
        got = from_arrow(pq.read_table(tmp_path / name / "part.parquet"), name)
        pd.testing.assert_frame_equal(got, cap.get_frame(name), obj=name)
    assert res.info["empty_records"] == 35 and res.info["packets"] == len(frames)
    names = pq.read_table(tmp_path / "anomalies" / "part.parquet").column("name").to_pylist()
    assert names.count("empty_records") == 1


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_empty_records_do_not_count_toward_max_packets(
    made: dict[str, tuple[Path, list[int]]], fmt: str
) -> None:
    path, frames = made[fmt]
    for limit, cut in ((len(frames), False), (100, True)):
        log = AnomalyLog()
        r = CaptureReader(path, log, chunk_size=1000, max_packets=limit)  # small chunks: runs cross them
        got = np.concatenate([b.frame for b in r.batches()]).tolist()
        assert got == frames[:limit] and r.packets == limit and r.truncated is cut
        names = [row["name"] for row in log.rows]
        assert ("packet_limit" in names) is cut and names[-1] == "empty_records"
        # the records read: every one up to the last packet kept (and, uncut, the three at the end)
        assert r.records == (frames[limit - 1] if cut else frames[-1] + 3)
