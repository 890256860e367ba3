"""Reading pcap and pcapng files (optionally gzip-compressed) in large chunks.

The reader walks record headers in a tight Python loop (the one step that cannot be vectorised: each
record's position depends on the previous one's length) and extracts every per-record field with numpy.
It yields :class:`Batch` objects of up to ``chunk_size`` bytes of records, each packet keyed by its
Wireshark frame number (1-based; every packet record counts, whatever it carries).

Zero-length records (captured length 0: a header and no bytes) are counted, not yielded: they keep their
place in the frame numbering (Wireshark shows them as frames), cost no per-packet memory, do not count
toward ``max_packets``, and are reported once at the end of the read (an ``empty_records`` anomaly: how
many, in how many runs, the first runs' frames; ``CaptureReader.empty_records``). A pcap run of them is
skipped vectorised (a gzip of zeros is tens of millions of them).

Formats: pcap with microsecond (``a1b2c3d4``) or nanosecond (``a1b23c4d``) magic in either byte order;
pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html) with several sections and
interfaces, per-interface link type, ``if_tsresol`` and ``if_tsoffset``, Enhanced / Simple / obsolete
Packet blocks; Decryption Secrets Blocks are kept (``CaptureReader.secrets``).

Bad input: a file that is not a capture raises :class:`CaptureError` naming the magic seen; a truncated
file or a corrupted record length ends the read with an anomaly row, keeping what was read before it.
gzip input inflates piece by piece (a bomb costs the memory of a chunk) up to ``MAX_INFLATED`` bytes
(``gzip_inflated_limit``: the packets before it are kept); a ratio beyond real captures' is an anomaly
(``gzip_ratio_high``).

Sources: a path, ``"-"`` for standard input, or a binary file object; a non-seekable stream (a pipe) is read
once, front to back (its size is unknown: 0), and its SHA-256 covers every byte the stream gave, including
what follows a ``max_packets`` cut (the rest is drained when ``sha256()`` is asked). ``max_packets``: stop
after that many packets (records with bytes) with a ``packet_limit`` anomaly and ``truncated`` set (the run is
incomplete). The memory budget (:mod:`rtcforensics.budget`) is checked once per batch, before the next chunk
is taken: when resident memory has reached the read's share of it (``budget.read_threshold``, fixed when the
read begins) the read stops there, with a ``memory_limit`` anomaly and ``truncated`` set, like ``max_packets``;
the first chunk is always read.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import budget
from ..anomalies import AnomalyLog
from ..errors import CaptureError

CHUNK_SIZE = 16 << 20
# Under a tight memory budget chunks are smaller, so that the read stops close to its share: a chunk of the
# worst capture (one-packet flows) costs about 20 times its size once read and its frames built. The default
# budget (most of the machine) keeps CHUNK_SIZE.
BUDGET_CHUNKS = 256  # chunk = budget / this, between 1 MiB and CHUNK_SIZE

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"

# pcapng block types
SHB, IDB, OPB, SPB, NRB, ISB, EPB, DSB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 0x0A

# Wireshark refuses records larger than this for ordinary link types (WTAP_MAX_PACKET_SIZE_STANDARD).
MAX_RECORD = 262_144
MAX_BLOCK = 16 << 20

LINKTYPE_NAMES = {
    0: "null",
    1: "ethernet",
    12: "raw",
    14: "raw",
    101: "raw",
    108: "loop",
    113: "linux_sll",
    228: "ipv4",
    229: "ipv6",
    276: "linux_sll2",
}


class _HashingReader:
    """A file wrapper that feeds every byte read to a hash (so hashing costs no second read)."""

    def __init__(self, raw: BinaryIO, sha: Any, head: bytes = b"") -> None:
        self.raw, self.sha = raw, sha
        self.head = head  # bytes already taken from a non-seekable stream, given back first
        self.count = 0  # bytes read so far

    def read(self, n: int = -1) -> bytes:
        if self.head:
            data, self.head = self.head, b""
            if n < 0 or n > len(data):
                data += self.raw.read(-1 if n < 0 else n - len(data))
            elif n < len(data):
                data, self.head = data[:n], data[n:]
        else:
            data = self.raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self.raw.closed


# Inflated bytes read from one gzip-compressed capture at most (a limit far above real captures, which are
# opened uncompressed when they are this large); beyond it the read stops with an anomaly, keeping what was read.
MAX_INFLATED = 64 << 30
# Real captures compress 2-20x (repeated media headers; a silent call perhaps 50x); deflate's ceiling is ~1032x.
# A ratio beyond this is reported once: a bomb, or a capture of little but padding.
GZIP_RATIO_REPORT = 200
# Runs of zero-length records named in the ``empty_records`` anomaly (the rest are counted)
EMPTY_RUNS_SHOWN = 5


class _GunzipReader:
    """Streaming gzip decompression that keeps every byte decoded before a cut or damaged stream
    (``gzip.GzipFile`` raises and loses the last read); multi-member files are followed. Inflation is
    bounded: no call inflates more than ``piece`` bytes at a time (a bomb costs no more memory than a
    chunk), and the stream stops after ``max_inflated`` bytes (``limit_hit``)."""

    def __init__(self, raw: Any, piece: int = 1 << 20, max_inflated: int = MAX_INFLATED) -> None:
        self.raw, self.piece, self.max_inflated = raw, piece, max_inflated
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.buf = bytearray()
        self.problem: str | None = None
        self.done = False
        self.limit_hit = False
        self.inflated = 0  # bytes produced so far
        self.compressed = 0  # bytes of the file consumed so far
        self._pending = b""  # compressed input not yet inflated

    def read(self, n: int) -> bytes:
        while len(self.buf) < n and not self.done:
            if not self._pending:
                data = self.raw.read(self.piece)
                if not data:
                    self.done = True
                    if not self.d.eof:
                        self.problem = "compressed stream ends before its end marker"
                    break
                self.compressed += len(data)
                self._pending = data
            self._inflate(n - len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _inflate(self, want: int) -> None:
        room = self.max_inflated - self.inflated
        if room <= 0:
            self.limit_hit = self.done = True
            return
        try:
            out = self.d.decompress(self._pending, min(max(want, self.piece), room))
        except zlib.error as e:
            self.problem, self.done, self._pending = str(e), True, b""
            return
        self.buf += out
        self.inflated += len(out)
        if self.d.eof:
            self._pending = self.d.unused_data
            if self._pending:  # next gzip member
                self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            self._pending = self.d.unconsumed_tail

    def close(self) -> None:
        pass


@dataclass
class Batch:
    """A run of packet records in capture order. ``off[i]`` is where packet i's bytes start in ``buf``;
    ``frame[i]`` its Wireshark frame number (increasing; not consecutive where zero-length records were
    skipped)."""

    buf: bytes
    off: np.ndarray  # int64
    caplen: np.ndarray  # int64
    origlen: np.ndarray  # int64
    ts_ns: np.ndarray  # int64, UTC nanoseconds since the epoch
    linktype: np.ndarray  # int32 per packet
    frame: np.ndarray  # int64, Wireshark frame numbers
    progress_bytes: int = 0  # bytes of the (possibly compressed) file consumed so far

    def __len__(self) -> int:
        return len(self.off)

    @property
    def arr(self) -> np.ndarray:
        return np.frombuffer(self.buf, dtype=np.uint8)

    def packet(self, i: int) -> bytes:
        o = int(self.off[i])
        return self.buf[o : o + int(self.caplen[i])]


@dataclass
class Interface:
    linktype: int
    snaplen: int
    tsresol: int = 6  # pcapng if_tsresol byte: bit 7 clear -> 10^-n, set -> 2^-n
    tsoffset_s: int = 0


def _gather_u32(arr: np.ndarray, offs: np.ndarray, count: int, endian: str) -> np.ndarray:
    """Read ``count`` consecutive uint32 at each offset: returns shape (len(offs), count)."""
    raw = np.empty((len(offs), 4 * count), dtype=np.uint8)
    for k in range(4 * count):  # column by column: no (n, 4*count) index array
        raw[:, k] = arr[offs + k]
    return raw.view(endian + "u4").reshape(len(offs), count).astype(np.int64)


def _ts_to_ns(ts: np.ndarray, tsresol: int) -> np.ndarray:
    """pcapng timestamps (units of 10^-n or 2^-n seconds) to nanoseconds."""
    ts = ts.astype(np.uint64)
    if tsresol & 0x80:
        k = tsresol & 0x7F
        if k >= 64:  # more fraction bits than a 64-bit timestamp holds (hostile if_tsresol)
            return (ts.astype(np.float64) * 1e9 / 2.0**k).astype(np.int64)
        sec = ts >> np.uint64(k)
        frac = ts & np.uint64((1 << k) - 1)
        if k <= 30:
            fns = (frac * np.uint64(10**9)) >> np.uint64(k)
        else:
            fns = (frac.astype(np.float64) * 1e9 / float(1 << k)).astype(np.uint64)
        return (sec * np.uint64(10**9) + fns).astype(np.int64)
    if tsresol <= 9:
        return (ts * np.uint64(10 ** (9 - tsresol))).astype(np.int64)
    if tsresol > 28:  # 10^(n-9) does not fit in uint64 (hostile if_tsresol)
        return (ts.astype(np.float64) / 10.0 ** (tsresol - 9)).astype(np.int64)
    return (ts // np.uint64(10 ** (tsresol - 9))).astype(np.int64)


class CaptureReader:
    """Streams packet records out of a pcap / pcapng file, gzip-compressed or not."""

    def __init__(
        self,
        path: str | os.PathLike[str] | BinaryIO,
        anomalies: AnomalyLog | None = None,
        chunk_size: int | None = None,
        strict: bool = False,
        max_inflated: int | None = None,
        max_packets: int | None = None,
        read_share: float | None = None,
    ) -> None:
        # a stream: "-" (standard input) or a binary file object, read once without seeking
        self._stream: BinaryIO | None = None
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == "-":
            self._stream = sys.stdin.buffer
            self.path = Path("-")
        elif hasattr(path, "read"):
            self._stream = path  # type: ignore[assignment]
            self.path = Path(str(getattr(path, "name", "-")))
        else:
            self.path = Path(path)  # type: ignore[arg-type]
        self.max_inflated = MAX_INFLATED if max_inflated is None else max_inflated
        self.max_packets = max_packets
        self.anomalies = anomalies if anomalies is not None else AnomalyLog()
        self.chunk_size = _chunk_for_budget() if chunk_size is None else chunk_size
        self._memory_stop_at: int | None = None  # resident bytes at which the read stops (memory budget)
        # the share of the memory budget free when the read begins that it may use (None: budget.READ_SHARE)
        self.read_share = read_share
        self.strict = strict
        self.size = self.path.stat().st_size if self._stream is None else _stream_size(self._stream)
        self.compressed = False
        self.format = ""
        self.link_types: list[int] = []
        self.secrets: list[tuple[int, bytes]] = []  # pcapng Decryption Secrets Blocks (type, data)
        self.packets = 0  # packets yielded (records with bytes)
        self.records = 0  # records read: the last frame number so far (zero-length records included)
        self.empty_records = 0  # zero-length records counted, not yielded
        self._empty_runs: list[list[int]] = []  # [first, last] frame of the first EMPTY_RUNS_SHOWN runs
        self._empty_run_count = 0
        self._empty_last = -1  # frame of the last zero-length record (a run that goes on across chunks)
        self.truncated = False
        self._raw: BinaryIO | None = None
        self._fh: BinaryIO | None = None
        self._prefix = b""
        self._sha = hashlib.sha256()
        self._hashed_upto = 0
        self._open()

    # -- opening -----------------------------------------------------------------------------
    def _open(self) -> None:
        if self._stream is not None:
            raw = self._stream
            try:
                first = raw.read(2)
            except OSError as e:
                raise CaptureError(self.path, f"cannot be read ({e.strerror or e})") from None
            hashed = _HashingReader(raw, self._sha, first)
            gz = first == GZIP_MAGIC
        else:
            try:
                raw = self.path.open("rb")
            except OSError as e:
                raise CaptureError(self.path, f"cannot be read ({e.strerror or e})") from None
            gz = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            hashed = _HashingReader(raw, self._sha)
        self._hashed = hashed
        fh: Any = hashed
        if gz:
            self.compressed = True
            fh = _GunzipReader(hashed, max_inflated=self.max_inflated)
        head = fh.read(4)
        if gz and len(head) < 4 and fh.problem:
            self._close_raw(raw)
            raise CaptureError(self.path, f"gzip-compressed but cannot be decompressed ({fh.problem})")
        if not head:
            self._close_raw(raw)
            raise CaptureError(self.path, "is empty" if not gz else "is an empty gzip stream")
        if head in PCAP_MAGICS:
            self.format = "pcap"
        elif head == PCAPNG_SHB:
            self.format = "pcapng"
        else:
            self._close_raw(raw)
            raise CaptureError(
                self.path,
                f"not a pcap or pcapng capture (first bytes {head.hex()}, "
                "expected a1b2c3d4, a1b23c4d or 0a0d0d0a)",
            )
        self._raw, self._fh, self._prefix = raw, fh, head

    def _close_raw(self, raw: BinaryIO) -> None:
        if self._stream is None:  # a stream belongs to the caller (standard input stays open)
            raw.close()

    def sha256(self) -> str:
        """SHA-256 of the file as stored (compressed bytes for .gz), hashed while it was read."""
        if self._stream is not None:  # whatever the stream still holds (after a max_packets cut) is drained
            for block in iter(lambda: self._stream.read(1 << 20), b""):  # type: ignore[union-attr]
                self._sha.update(block)
            return self._sha.hexdigest()
        if self._raw is not None and not self._raw.closed:
            for block in iter(lambda: self._raw.read(1 << 20), b""):  # type: ignore[union-attr]
                self._sha.update(block)
        else:
            with self.path.open("rb") as fh:
                fh.seek(self._hashed_upto)
                for block in iter(lambda: fh.read(1 << 20), b""):
                    self._sha.update(block)
                self._hashed_upto = fh.tell()
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._stream is None and self._raw is not None and not self._raw.closed:
            self._hashed_upto = self._raw.tell()
        if self._fh is not None:
            self._fh.close()
        if self._raw is not None:
            self._close_raw(self._raw)
        self._fh = self._raw = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _consumed(self) -> int:
        if self._stream is not None:
            return self._hashed.count
        try:
            return self._raw.tell() if self._raw is not None else self.size
        except (OSError, ValueError):
            return self.size

    def _chunks(self) -> Iterator[bytes]:
        """Raw chunks of the (decompressed) file; a damaged gzip stream ends with an anomaly."""
        assert self._fh is not None  # set by _open (internal invariant, not input)
        prefix, self._prefix = self._prefix, b""
        while True:
            data = prefix + self._fh.read(self.chunk_size)
            prefix = b""
            if not data:
                problem = getattr(self._fh, "problem", None)
                if problem:
                    self._problem("gzip_damaged", f"gzip stream damaged or cut short: {problem}")
                if isinstance(self._fh, _GunzipReader):
                    self._gzip_end(self._fh)
                return
            yield data

    def _gzip_end(self, gz: _GunzipReader) -> None:
        """Say when inflation hit its limit (the run then covers only the first bytes) and when the file
        inflates far more than a real capture does."""
        ratio = gz.inflated / max(gz.compressed, 1)
        if gz.limit_hit:
            self._problem(
                "gzip_inflated_limit",
                f"gzip-compressed capture inflates beyond {gz.max_inflated:,} bytes (read: "
                f"{gz.compressed:,} compressed bytes -> {gz.inflated:,}, ratio {ratio:,.0f}:1); only the "
                "packets in those bytes were read (decompress the file to analyse it whole)",
            )
        if ratio > GZIP_RATIO_REPORT and gz.inflated >= 1 << 20:
            self.anomalies.add(
                "capture",
                "gzip_ratio_high",
                f"gzip-compressed capture inflates {ratio:,.0f}:1 ({gz.compressed:,} -> "
                f"{gz.inflated:,} bytes); real captures compress 2-20x: a decompression bomb or a "
                "capture of little but padding",
                frame=self.records or None,
            )

    def _read_limit_hit(self) -> bool:
        """True when the read stopped at the inflated-bytes limit: the file goes on, so a partial record
        at the stop is no truncation (``gzip_inflated_limit`` says it; a ``max_packets`` cut returns first)."""
        return isinstance(self._fh, _GunzipReader) and self._fh.limit_hit

    def _problem(self, name: str, detail: str) -> None:
        self.truncated = True
        if self.strict:
            raise CaptureError(self.path, detail)
        self.anomalies.add("capture", name, detail, frame=self.records or None)

    # -- zero-length records ------------------------------------------------------------------------
    def _note_empty(self, first: np.ndarray, count: np.ndarray) -> None:
        """Count the runs of zero-length records starting at frames ``first`` (``count`` records each)."""
        if not len(first):
            return
        self.empty_records += int(count.sum())
        last = first + count - 1
        runs = [[a, b] for a, b in zip(first[:EMPTY_RUNS_SHOWN].tolist(), last[:EMPTY_RUNS_SHOWN].tolist())]
        if runs[0][0] == self._empty_last + 1:  # the run that ended the previous chunk goes on
            if self._empty_runs[-1][1] == self._empty_last:
                self._empty_runs[-1][1] = runs[0][1]
            runs = runs[1:]
            self._empty_run_count -= 1
        self._empty_run_count += len(first)
        self._empty_runs += runs[: max(EMPTY_RUNS_SHOWN - len(self._empty_runs), 0)]
        self._empty_last = int(last[-1])

    def _frame_numbers(
        self, frame: int, n: int, gap_at: array[int], gap_n: array[int]
    ) -> tuple[np.ndarray, int]:
        """Frame numbers of ``n`` packets read from ``frame`` on with the zero-length runs ``gap_at``/``gap_n``
        between them (counted here), and the records used in all."""
        if not gap_at:
            return np.arange(frame, frame + n, dtype=np.int64), n
        at = np.frombuffer(gap_at, dtype=np.int64)
        cnt = np.frombuffer(gap_n, dtype=np.int64)
        self._note_empty(frame + at + np.cumsum(cnt) - cnt, cnt)  # a run's first frame: records before it
        add = np.zeros(n + 1, dtype=np.int64)
        np.add.at(add, at, cnt)
        return frame + np.arange(n, dtype=np.int64) + np.cumsum(add)[:n], n + int(cnt.sum())

    def _empty_end(self) -> None:
        """One anomaly row for every zero-length record read (bounded, however many runs there were)."""
        if not self.empty_records:
            return
        shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in self._empty_runs)
        more = " …" if self._empty_run_count > len(self._empty_runs) else ""
        self.anomalies.add(
            "capture",
            "empty_records",
            f"{self.empty_records:,} zero-length record(s) (captured length 0) in {self._empty_run_count:,} "
            f"run(s), frames {shown}{more}: counted in the frame numbers as Wireshark counts them, not kept as "
            "packets (they hold no bytes)",
            frame=self._empty_runs[0][0],
        )

    # -- iteration ---------------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        self._memory_stop_at = budget.read_threshold(share=self.read_share)
        try:
            if self.format == "pcap":
                yield from self._pcap()
            else:
                yield from self._pcapng()
            self._empty_end()
        finally:
            self.close()

    def _pcap(self) -> Iterator[Batch]:
        chunks = self._chunks()
        buf = b""
        for data in chunks:
            buf += data
            if len(buf) >= 24:
                break
        while len(buf) < 24:
            more = next(chunks, None)
            if more is None:
                raise CaptureError(self.path, f"pcap file header cut short ({len(buf)} of 24 bytes)")
            buf += more
        endian, ts_mult = PCAP_MAGICS[buf[:4]]
        _vmaj, _vmin, _tz, _sig, snaplen, linktype = struct.unpack_from(endian + "HHiIII", buf, 4)
        linktype &= 0x0FFFFFFF  # upper bits: FCS length flags
        self.link_types = [linktype]
        limit = max(MAX_RECORD, snaplen if snaplen <= MAX_BLOCK else 0)
        u32 = struct.Struct(endian + "I").unpack_from
        pos = 24
        frame = 1
        done = False
        while True:
            offs: list[int] = []
            gap_at = array("q")  # runs of zero-length records: before offs[gap_at[k]], gap_n[k] of them
            gap_n = array("q")
            n = len(buf)
            off = pos
            bad = None
            while off + 16 <= n:
                incl = u32(buf, off + 8)[0]
                if incl > limit:
                    bad = incl
                    break
                if not incl:
                    end = _empty_run_end(buf, off, n, u32)
                    gap_at.append(len(offs))
                    gap_n.append((end - off) >> 4)
                    off = end
                    continue
                end = off + 16 + incl
                if end > n:
                    break
                offs.append(off)
                off = end
            cut = self._cut(offs, gap_at, gap_n)
            frames, used = self._frame_numbers(frame, len(offs), gap_at, gap_n)
            if offs:
                yield self._pcap_batch(buf, offs, endian, ts_mult, linktype, frames)
                self.packets += len(offs)
            frame += used
            self.records = frame - 1
            if cut:
                self._packet_limit()
                return
            if bad is not None:
                self._problem(
                    "record_length_invalid",
                    f"pcap record after frame {frame - 1} claims {bad} bytes (limit {limit}); "
                    "the rest of the file cannot be read",
                )
                return
            if done:
                if off < n and not self._read_limit_hit():
                    self._problem(
                        "capture_truncated",
                        f"file ends inside the record after frame {frame - 1} "
                        f"({n - off} bytes of a partial record dropped)",
                    )
                return
            buf = buf[off:]  # the consumed part is released before the next chunk is read
            more = next(chunks, None)
            if more is None:
                done = True
                pos = 0
                continue
            if self._memory_limit():
                return
            buf += more
            pos = 0

    def _pcap_batch(
        self, buf: bytes, offs: list[int], endian: str, ts_mult: int, linktype: int, frames: np.ndarray
    ) -> Batch:
        arr = np.frombuffer(buf, dtype=np.uint8)
        o = np.asarray(offs, dtype=np.int64)
        f = _gather_u32(arr, o, 4, endian)
        ts_ns = f[:, 0] * 1_000_000_000 + f[:, 1] * ts_mult
        n = len(o)
        return Batch(
            buf=buf,
            off=o + 16,
            caplen=f[:, 2],
            origlen=f[:, 3],
            ts_ns=ts_ns,
            linktype=np.full(n, linktype, dtype=np.int32),
            frame=frames,
            progress_bytes=self._consumed(),
        )

    def _pcapng(self) -> Iterator[Batch]:
        chunks = self._chunks()
        buf = b""
        off = 0
        frame = 1
        endian = "<"
        ifaces: list[Interface] = []  # of the current section
        exhausted = False
        last_ts = 0
        consumed = 0  # bytes of whole blocks dropped from buf so far
        while True:
            n = len(buf)
            pkts: list[int] = []  # block offsets of packet blocks
            kinds: dict[int, int] = {}  # index in pkts -> block type, for blocks other than EPB
            new_section = False
            bad: str | None = None
            u32 = struct.Struct(endian + "I").unpack_from
            while off + 12 <= n:
                btype = u32(buf, off)[0]
                if btype == SHB:
                    if buf[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a":
                        sec_endian = "<"
                    elif buf[off + 8 : off + 12] == b"\x1a\x2b\x3c\x4d":
                        sec_endian = ">"
                    else:
                        bad = "pcapng section header has an invalid byte-order magic"
                        break
                    if pkts:
                        new_section = True  # flush packets of the previous section first
                        break
                    endian = sec_endian
                    u32 = struct.Struct(endian + "I").unpack_from
                    ifaces = []
                blen = u32(buf, off + 4)[0]
                if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                    bad = f"pcapng block after frame {frame + len(pkts) - 1} has invalid length {blen}"
                    break
                if off + blen > n:
                    break
                if btype in (EPB, OPB, SPB):
                    if btype != EPB:
                        kinds[len(pkts)] = btype
                    pkts.append(off)
                elif btype == IDB:
                    ifaces.append(self._idb(buf, off, blen, endian))
                elif btype == DSB and blen >= 20:
                    stype, slen = struct.unpack_from(endian + "II", buf, off + 8)
                    self.secrets.append((stype, bytes(buf[off + 16 : off + 16 + min(slen, blen - 20)])))
                off += blen
            cut = False
            if pkts:
                batch, last_ts, used, cut = self._pcapng_batch(
                    buf, pkts, kinds, endian, ifaces, frame, last_ts
                )
                frame += used
                self.records = frame - 1
                if batch is not None:
                    yield batch
                    self.packets += len(batch)
            if cut:
                self._packet_limit()
                return
            if bad is not None:
                self._problem("record_length_invalid", bad + "; the rest of the file cannot be read")
                return
            if new_section:
                continue
            if exhausted:
                if consumed + off == 0 and n:  # not even the section header block is whole: nothing to read
                    raise CaptureError(
                        self.path, f"pcapng section header block cut short (file has {n} bytes)"
                    )
                if off < n and not self._read_limit_hit():
                    self._problem(
                        "capture_truncated",
                        f"file ends inside the block after frame {frame - 1} "
                        f"({n - off} bytes of a partial block dropped)",
                    )
                return
            buf = buf[off:]
            consumed += off
            more = next(chunks, None)
            if more is None:
                exhausted = True
                off = 0
                continue
            if self._memory_limit():
                return
            buf += more
            off = 0

    def _room(self) -> int | None:
        """Packets that may still be read (None: no ``max_packets``)."""
        return None if self.max_packets is None else max(self.max_packets - self.packets, 0)

    def _cut(self, offs: list[int], gap_at: array[int], gap_n: array[int]) -> bool:
        """Shorten ``offs`` (and the zero-length runs after the last packet kept) to ``max_packets``; True when
        the limit is reached."""
        room = self._room()
        if room is None or len(offs) <= room:  # a capture of exactly max_packets packets is whole
            return False
        del offs[room:]
        while gap_at and gap_at[-1] > room:
            gap_at.pop()
            gap_n.pop()
        return True

    def _packet_limit(self) -> None:
        self._problem(
            "packet_limit",
            f"stopped after {self.max_packets:,} packets (max_packets); the rest of the capture was not read",
        )

    def _memory_limit(self) -> bool:
        """True (with a ``memory_limit`` anomaly) when resident memory has reached the read's share of the
        memory budget: checked between chunks, when more of the capture is there to read."""
        if self._memory_stop_at is None or not self.records:  # something is read first
            return False
        got = budget.over(self._memory_stop_at)
        if got is None:
            return False
        self._problem(
            "memory_limit",
            f"stopped after frame {self.records:,}: resident memory {budget.mib(got.resident)} reached the "
            f"read share {budget.mib(got.threshold)} of the memory budget {budget.mib(got.limit)} (the frames "
            "built from what is read need several times as much); the rest of the capture was not read "
            "(raise --max-memory, or stream the capture into a case: rtcforensics ingest CAPTURE --case DIR "
            "--stream-above 1)",
        )
        return True

    def _idb(self, buf: bytes, off: int, blen: int, endian: str) -> Interface:
        linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, off + 8)
        iface = Interface(linktype=linktype, snaplen=snaplen)
        p, end = off + 16, off + blen - 4
        while p + 4 <= end:
            code, olen = struct.unpack_from(endian + "HH", buf, p)
            if code == 0:
                break
            val = buf[p + 4 : p + 4 + olen]
            if code == 9 and olen >= 1:
                iface.tsresol = val[0]
            elif code == 14 and olen == 8:
                tsoffset = struct.unpack(endian + "q", val)[0]
                if abs(tsoffset) < 9_000_000_000:  # else its nanoseconds overflow int64: not a real clock
                    iface.tsoffset_s = tsoffset
            p += 4 + olen + (-olen % 4)
        if linktype not in self.link_types:
            self.link_types.append(linktype)
        return iface

    def _pcapng_batch(
        self,
        buf: bytes,
        pkts: list[int],
        kinds: dict[int, int],
        endian: str,
        ifaces: list[Interface],
        frame: int,
        last_ts: int,
    ) -> tuple[Batch | None, int, int, bool]:
        """The packets of blocks ``pkts`` (records from ``frame`` on): (batch or None, last time, records
        used, cut by ``max_packets``). Zero-length records are counted and left out of the batch."""
        arr = np.frombuffer(buf, dtype=np.uint8)
        o = np.asarray(pkts, dtype=np.int64)
        n = len(o)
        # EPB layout: type, len, iface, ts_hi, ts_lo, caplen, origlen, data @ +28
        f = _gather_u32(arr, o, 7, endian)
        blen = f[:, 1]
        iface = f[:, 2].copy()
        ts_raw = (f[:, 3].astype(np.uint64) << np.uint64(32)) | f[:, 4].astype(np.uint64)
        caplen = f[:, 5].copy()
        origlen = f[:, 6].copy()
        data_off = o + 28
        spb = np.zeros(n, dtype=bool)
        for i, kind in kinds.items():
            if kind == OPB:  # 16-bit interface id, 16-bit drops count, then as EPB
                iface[i] = struct.unpack_from(endian + "H", buf, pkts[i] + 8)[0]
            else:  # SPB: original length, data @ +12, no interface id (0), no timestamp
                iface[i] = 0
                origlen[i] = f[i, 2]
                data_off[i] = o[i] + 12
                spb[i] = True
        if not ifaces:
            self._problem(
                "pcapng_no_interface", "pcapng packet blocks before any interface description block"
            )
            return None, last_ts, 0, False
        bad_iface = iface >= len(ifaces)
        claimed_iface = iface
        iface = np.where(bad_iface, 0, iface)
        room = blen - (data_off - o) - 4
        if spb.any():
            snap = np.array([ifc.snaplen or MAX_BLOCK for ifc in ifaces], dtype=np.int64)[iface]
            caplen = np.where(spb, np.minimum(np.minimum(origlen, snap), room), caplen)
        claimed = caplen
        over = caplen > room
        if over.any():
            caplen = np.minimum(caplen, np.maximum(room, 0))
        full = caplen > 0  # zero-length records are counted, not kept
        cut = False
        left = self._room()
        if left is not None and int(full.sum()) > left:  # keep the records before the first packet too many
            n, cut = int(np.flatnonzero(full)[left]), True
            iface, ts_raw, caplen, origlen, data_off, spb, full = (
                a[:n] for a in (iface, ts_raw, caplen, origlen, data_off, spb, full)
            )
        problems: list[tuple[np.ndarray, str, Callable[[int], str]]] = [
            (
                bad_iface,
                "pcapng_bad_interface",
                lambda i: (
                    f"packet block refers to interface {int(claimed_iface[i])}, only {len(ifaces)} described"
                ),
            ),
            (
                over,
                "record_length_invalid",
                lambda i: (
                    f"packet block claims {int(claimed[i])} captured bytes in a {int(blen[i])}-byte block"
                ),
            ),
        ]
        for mask, name, detail in problems:  # the first of each kind among the records read
            hit = np.flatnonzero(mask[:n])
            if len(hit):
                self.anomalies.add("capture", name, detail(int(hit[0])), frame=frame + int(hit[0]))
        ts_ns = np.empty(n, dtype=np.int64)
        linktype = np.empty(n, dtype=np.int32)
        for k, ifc in enumerate(ifaces):
            sel = iface == k
            if not sel.any():
                continue
            ts_ns[sel] = _ts_to_ns(ts_raw[sel], ifc.tsresol) + ifc.tsoffset_s * 1_000_000_000
            linktype[sel] = ifc.linktype
        if spb.any():  # SPB carries no time: Wireshark shows it with the previous packet's time
            for i in np.flatnonzero(spb).tolist():
                ts_ns[i] = ts_ns[i - 1] if i else last_ts
        last = int(ts_ns[-1]) if n else last_ts
        frames = np.arange(frame, frame + n, dtype=np.int64)
        if not full.all():
            empty = ~full
            starts = np.flatnonzero(empty & ~np.r_[False, empty[:-1]])
            ends = np.flatnonzero(empty & ~np.r_[empty[1:], False])
            self._note_empty(frames[starts], ends - starts + 1)
            data_off, caplen, origlen, ts_ns, linktype, frames = (
                a[full] for a in (data_off, caplen, origlen, ts_ns, linktype, frames)
            )
        if not len(frames):
            return None, last, n, cut
        batch = Batch(
            buf=buf,
            off=data_off,
            caplen=caplen,
            origlen=origlen,
            ts_ns=ts_ns,
            linktype=linktype,
            frame=frames,
            progress_bytes=self._consumed(),
        )
        return batch, last, n, cut


def _chunk_for_budget() -> int:
    """The chunk size when none is given: CHUNK_SIZE, smaller under a tight memory budget (BUDGET_CHUNKS)."""
    lim = budget.limit()
    return CHUNK_SIZE if lim is None else min(CHUNK_SIZE, max(1 << 20, lim // BUDGET_CHUNKS))


def _empty_run_end(buf: bytes, off: int, n: int, u32: Callable[[bytes, int], tuple[int, ...]]) -> int:
    """End of the run of zero-length pcap records (16-byte headers, captured length 0) that starts at ``off``,
    within ``buf[:n]``: one record is the usual case; a long run is scanned with numpy, in growing blocks."""
    end = off + 16
    if end + 16 > n or u32(buf, end + 8)[0]:
        return end
    k = 64
    while end + 16 <= n:
        m = min(k, (n - end) >> 4)
        incl = np.frombuffer(buf, dtype=np.uint32, count=4 * m, offset=end)[2::4]  # 0 in either byte order
        nz = np.flatnonzero(incl)
        if len(nz):
            return end + 16 * int(nz[0])
        end += 16 * m
        k = min(k * 8, 1 << 20)
    return end


def _stream_size(fh: Any) -> int:
    """Size of a stream's file when it is a regular file, else 0 (a pipe: unknown)."""
    try:
        st = os.fstat(fh.fileno())
    except (OSError, AttributeError, ValueError):
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def read_all(
    path: str | os.PathLike[str],
    anomalies: AnomalyLog | None = None,
    on_batch: Callable[[Batch], None] | None = None,
) -> CaptureReader:
    """Walk a whole capture (for tests and tools): returns the reader with its counters filled."""
    r = CaptureReader(path, anomalies)
    for b in r.batches():
        if on_batch is not None:
            on_batch(b)
    return r


def link_type_name(lt: int) -> str:
    return LINKTYPE_NAMES.get(lt, f"linktype_{lt}")
