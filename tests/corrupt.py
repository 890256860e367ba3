"""Corrupted captures derived from the real sample captures, made at test time into a directory.

Each case is a file plus what a tool must do with it:

- ``unreadable``: nothing can be read → CLI exit 2 with one line naming the file; the API raises CaptureError;
- ``partial``: packets can be read → results, and the damage recorded as anomalies;
- ``readable``: the records are intact (only packet bytes damaged) → results.

Kinds: ``editcap -E`` at several rates (packet bytes), truncation at seeded random offsets, zeroed and
oversized record lengths (pcapng block length, pcap caplen), wrong magic, an empty file, a PNG image renamed
``.pcap``, an empty gzip, and a capture of 100,000 tiny packets (one real small frame repeated, written by
our own pcap writer below).
"""

from __future__ import annotations

import gzip
import random
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_captures"

UNREADABLE, PARTIAL, READABLE = "unreadable", "partial", "readable"


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    expect: str  # unreadable | partial | readable
    how: str


def pcapng_blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, total length) of each pcapng block (little-endian captures, as dumpcap writes)."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if blen < 12 or pos + blen > len(data):
            break
        out.append((pos, btype, blen))
        pos += blen
    return out


def to_pcap(src: Path, dst: Path) -> Path:
    subprocess.run(
        ["editcap", "-F", "pcap", str(src), str(dst)], check=True, capture_output=True, timeout=120
    )
    return dst


def pcap_records(data: bytes) -> list[tuple[int, int]]:
    """(offset, caplen) of each record of a little-endian classic pcap."""
    out, pos = [], 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        if pos + 16 + caplen > len(data):
            break
        out.append((pos, caplen))
        pos += 16 + caplen
    return out


def write_pcap(path: Path, frames: list[bytes] | tuple[bytes, int], linktype: int = 1) -> Path:
    """A classic pcap (µs, little-endian). ``frames``: a list, or (frame, count) for one frame repeated."""
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        if isinstance(frames, tuple):
            frame, count = frames
            items = ((i, frame) for i in range(count))
        else:
            items = enumerate(frames)
        for i, f in items:
            sec, usec = divmod(1_700_000_000_000_000 + i * 20, 1_000_000)
            fh.write(struct.pack("<IIII", sec, usec, len(f), len(f)) + f)
    return path


def smallest_udp_frame(cap: Path) -> bytes:
    """The smallest Ethernet/IPv4/UDP frame of a capture (a real packet, e.g. a STUN or RTCP message)."""
    from rtcforensics.anomalies import AnomalyLog
    from rtcforensics.dissect.pcapio import CaptureReader

    best: bytes | None = None
    for b in CaptureReader(cap, AnomalyLog()).batches():
        for i in range(len(b)):
            p = b.packet(i)
            if (
                len(p) > 42
                and p[12:14] == b"\x08\x00"
                and p[23] == 17
                and (best is None or len(p) < len(best))
            ):
                best = bytes(p)
    assert best is not None, f"{cap} has no IPv4/UDP frame"
    return best


def make_png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [0, 1, 0])
    fig.savefig(path, format="png")
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def build(
    out: Path,
    bases: tuple[str, ...] = ("ws_plaintext_private", "turn_open_relay", "sdes_plain_rtp"),
    seed: int = 7983,
    tiny_packets: int = 100_000,
) -> list[Case]:
    """Make the corrupted corpus in ``out`` from the named sample captures; returns the cases."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    cases: list[Case] = []
    srcs = [SAMPLES / f"{b}.pcapng" for b in bases if (SAMPLES / f"{b}.pcapng").exists()]
    assert srcs, "no sample captures"

    for src in srcs:
        data = src.read_bytes()
        blocks = pcapng_blocks(data)
        epbs = [b for b in blocks if b[1] == 6]
        stem = src.stem
        # editcap -E: random bytes of packet data changed, records intact
        for rate in (0.001, 0.02, 0.2):
            dst = out / f"{stem}.E{rate}.pcapng"
            subprocess.run(
                ["editcap", "-E", str(rate), "--seed", str(seed), str(src), str(dst)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            cases.append(Case(dst.name, dst, READABLE, f"editcap -E {rate} --seed {seed}"))
        # truncation at random offsets past the first packet (cut inside a block)
        first_epb = epbs[0][0]
        for _k in range(3):
            off = rng.randrange(first_epb + epbs[0][2] + 1, len(data) - 1)
            dst = out / f"{stem}.cut{off}.pcapng"
            dst.write_bytes(data[:off])
            cases.append(Case(dst.name, dst, PARTIAL, f"truncated at byte {off} of {len(data)}"))
        # truncation inside the section header: nothing usable
        off = rng.randrange(1, 28)
        dst = out / f"{stem}.cuthead{off}.pcapng"
        dst.write_bytes(data[:off])
        cases.append(Case(dst.name, dst, UNREADABLE, f"truncated at byte {off} (inside the section header)"))
        # pcapng block length zeroed / oversized in the middle of the file
        mid = epbs[len(epbs) // 2][0]
        for label, value in (("zerolen", 0), ("hugelen", 0xFFFFFFF0), ("oddlen", 13)):
            b = bytearray(data)
            struct.pack_into("<I", b, mid + 4, value)
            dst = out / f"{stem}.{label}.pcapng"
            dst.write_bytes(bytes(b))
            cases.append(Case(dst.name, dst, PARTIAL, f"block at byte {mid}: total length set to {value}"))
        # the same on a classic pcap: record caplen zeroed / oversized / larger than the snaplen
        pcap = to_pcap(src, out / f"{stem}.pcap")
        pdata = pcap.read_bytes()
        recs = pcap_records(pdata)
        rmid = recs[len(recs) // 2][0]
        for label, value in (("caplen0", 0), ("caplenhuge", 0x7FFFFFF0), ("caplen70000", 70000)):
            b = bytearray(pdata)
            struct.pack_into("<I", b, rmid + 8, value)
            dst = out / f"{stem}.{label}.pcap"
            dst.write_bytes(bytes(b))
            # the record's bytes are then read as the next record header (zero) or run past the end
            cases.append(Case(dst.name, dst, PARTIAL, f"pcap record at byte {rmid}: caplen set to {value}"))
        pcap.unlink()
        # gzip-compressed and cut short
        dst = out / f"{stem}.cut.pcapng.gz"
        gz = gzip.compress(data)
        dst.write_bytes(gz[: len(gz) // 3])
        cases.append(Case(dst.name, dst, PARTIAL, "gzip stream cut at a third"))

    # wrong magic, empty, image, empty gzip
    src = srcs[0]
    dst = out / "wrong_magic.pcapng"
    dst.write_bytes(b"\x0b\x0d\x0d\x0a" + src.read_bytes()[4:])
    cases.append(Case(dst.name, dst, UNREADABLE, "first 4 bytes changed"))
    dst = out / "empty.pcap"
    dst.write_bytes(b"")
    cases.append(Case(dst.name, dst, UNREADABLE, "empty file"))
    cases.append(Case("image.pcap", make_png(out / "image.pcap"), UNREADABLE, "a PNG image renamed .pcap"))
    dst = out / "empty.pcap.gz"
    dst.write_bytes(gzip.compress(b""))
    cases.append(Case(dst.name, dst, UNREADABLE, "a gzip of nothing"))
    # 100,000 tiny packets: one real small frame repeated
    frame = smallest_udp_frame(srcs[0])
    dst = write_pcap(out / "tiny_100k.pcap", (frame, tiny_packets))
    cases.append(Case(dst.name, dst, READABLE, f"{tiny_packets} copies of a {len(frame)}-byte real frame"))
    return cases


def flip_packet_byte(src: Path, dst: Path, frame: int, from_end: int) -> Path:
    """Copy a little-endian pcapng ``src`` to ``dst`` with one byte of packet ``frame`` flipped: the byte
    ``from_end`` bytes before the end of its data (for SRTP with an N-byte tag, ``N + 1`` is the last
    encrypted payload byte: what an on-path injector or a corrupting link leaves)."""
    data = bytearray(src.read_bytes())
    off = [b for b in pcapng_blocks(bytes(data)) if b[1] == 6][frame - 1][0]  # Enhanced Packet Blocks
    caplen = struct.unpack_from("<I", data, off + 20)[0]
    data[off + 28 + caplen - from_end] ^= 0x01  # packet data starts 28 bytes into the block
    dst.write_bytes(bytes(data))
    return dst


def tampered_sdes_capture(dst: Path) -> tuple[Path, int]:
    """sdes_plain_rtp with the last encrypted payload byte of one packet flipped: the middle packet of its
    SDES-keyed PCMU stream (AES_CM_128_HMAC_SHA1_80, 10-byte tag). Returns (path, that packet's frame)."""
    import json

    import rtcforensics

    src = SAMPLES / "sdes_plain_rtp.pcapng"
    truth = json.loads((SAMPLES / "sdes_plain_rtp.truth.json").read_text())
    ssrc = next(s["ssrc"] for s in truth["rtp"] if s["keying"] == "sdes")
    rtp = rtcforensics.load(src).rtp
    frames = rtp[rtp.ssrc == ssrc].frame.tolist()
    victim = int(frames[len(frames) // 2])
    return flip_packet_byte(src, dst, victim, 10 + 1), victim
