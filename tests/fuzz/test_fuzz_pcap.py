"""Fuzz: pcap / pcapng / gzip reading and the fast path behind it; regressions for crashes found."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rtcforensics.anomalies import AnomalyLog
from rtcforensics.dissect import pcapio


@pytest.mark.slow  # about 2 minutes under load
def test_fuzz_pcap_reader_and_fast_path(fuzz_target) -> None:
    fuzz_target("pcap")


def _pcapng(idb_options: bytes, ts: int = 0x0000000100000000) -> bytes:
    """SHB + IDB (Ethernet, with options) + one EPB holding a 60-byte frame, little-endian."""
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    shb = (
        struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack("<I", 12 + len(shb_body))
    )
    opts = idb_options + b"\x00\x00\x00\x00"
    idb_body = struct.pack("<HHI", 1, 0, 65535) + opts
    idb = struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack("<I", 12 + len(idb_body))
    frame = bytes(range(60))
    epb_body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, 60, 60) + frame
    epb = struct.pack("<II", 6, 12 + len(epb_body)) + epb_body + struct.pack("<I", 12 + len(epb_body))
    return shb + idb + epb


def _read(tmp_path, data: bytes) -> tuple[pcapio.CaptureReader, list[int]]:
    p = tmp_path / "x.pcapng"
    p.write_bytes(data)
    r = pcapio.CaptureReader(p, AnomalyLog())
    ts: list[int] = []
    for b in r.batches():
        ts += [int(t) for t in b.ts_ns]
    return r, ts


def test_regression_if_tsresol_decimal_too_fine(tmp_path) -> None:
    # fuzz crash: if_tsresol 10^-127 made 10**(127-9) overflow uint64 in pcapio._ts_to_ns (OverflowError)
    r, ts = _read(tmp_path, _pcapng(struct.pack("<HH", 9, 1) + bytes([127, 0, 0, 0])))
    assert r.packets == 1 and ts == [0]


def test_regression_if_tsresol_binary_too_fine(tmp_path) -> None:
    # the 2^-n branch with n >= 64: more fraction bits than the timestamp has
    r, ts = _read(tmp_path, _pcapng(struct.pack("<HH", 9, 1) + bytes([0x80 | 100, 0, 0, 0])))
    assert r.packets == 1 and ts == [0]


def test_regression_if_tsoffset_overflow(tmp_path) -> None:
    # if_tsoffset of 2^62 s: its nanoseconds do not fit int64 (OverflowError when added to the column);
    # the offset is ignored and the packet keeps its own time: 2^32 µs (default resolution) = 4294.967296 s
    r, ts = _read(tmp_path, _pcapng(struct.pack("<HH", 14, 8) + struct.pack("<q", 1 << 62)))
    assert r.packets == 1 and ts == [4_294_967_296_000]


def test_tsresol_fine_but_valid_still_exact() -> None:
    # the fix must not change real resolutions: nanoseconds (10^-9) and 2^-30
    t = np.array([1_700_000_000_123_456_789], dtype=np.int64)
    assert int(pcapio._ts_to_ns(t, 9)[0]) == 1_700_000_000_123_456_789
    assert int(pcapio._ts_to_ns(np.array([3 << 30], dtype=np.int64), 0x80 | 30)[0]) == 3_000_000_000
