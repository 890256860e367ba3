"""SCTP over DTLS (RFC 8261) and the Data Channel Establishment Protocol (RFC 8832).

- :func:`parse_sctp` reads one SCTP packet (RFC 9260 §3: 12-byte common header, 4-byte aligned chunks);
  DATA (RFC 9260 §3.3.1) and I-DATA (RFC 8260 §2.1) chunks are decoded, others kept by type.
- :class:`SctpAssembler` rebuilds user messages of one direction from (possibly fragmented, possibly
  retransmitted) DATA / I-DATA chunks.
- :func:`parse_dcep` reads DATA_CHANNEL_OPEN / DATA_CHANNEL_ACK (PPID 50).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DecodeError, TruncatedError

DATA, INIT, INIT_ACK, SACK, I_DATA = 0, 1, 2, 3, 64

# RFC 8831 §8 / RFC 8832: payload protocol identifiers of WebRTC data channels
PPID_DCEP = 50
PPID_STRING, PPID_BINARY_PARTIAL, PPID_BINARY, PPID_STRING_PARTIAL = 51, 52, 53, 54
PPID_STRING_EMPTY, PPID_BINARY_EMPTY = 56, 57
TEXT_PPIDS = {PPID_STRING, PPID_STRING_PARTIAL, PPID_STRING_EMPTY}
BINARY_PPIDS = {PPID_BINARY, PPID_BINARY_PARTIAL, PPID_BINARY_EMPTY}

# RFC 8832 §5.1 channel types
CHANNEL_TYPES = {
    0x00: ("reliable", True),
    0x80: ("reliable", False),
    0x01: ("max_retransmits", True),
    0x81: ("max_retransmits", False),
    0x02: ("max_lifetime_ms", True),
    0x82: ("max_lifetime_ms", False),
}


@dataclass(slots=True)
class DataChunk:
    tsn: int
    stream: int
    ssn: int  # DATA: stream sequence number; I-DATA: message identifier (MID)
    ppid: int  # I-DATA non-first fragments carry an FSN here instead (see fsn)
    unordered: bool
    begin: bool
    end: bool
    payload: bytes
    fsn: int = 0  # I-DATA fragment sequence number
    idata: bool = False


@dataclass
class SctpPacket:
    sport: int
    dport: int
    vtag: int
    chunk_types: list[int]
    data: list[DataChunk]


def parse_sctp(data: bytes) -> SctpPacket:
    if len(data) < 12:
        raise TruncatedError("sctp_truncated", "SCTP common header is truncated")
    sport, dport = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
    vtag = int.from_bytes(data[4:8], "big")
    pos, types, chunks = 12, [], []
    while pos + 4 <= len(data):
        ctype, flags, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 4 or pos + length > len(data):
            raise TruncatedError("sctp_chunk_length", f"SCTP chunk type {ctype} has invalid length {length}")
        value = data[pos + 4 : pos + length]
        types.append(ctype)
        if ctype == DATA:
            if len(value) < 12:
                raise DecodeError("sctp_data_short", "SCTP DATA chunk is shorter than its header")
            chunks.append(
                DataChunk(
                    int.from_bytes(value[0:4], "big"),
                    int.from_bytes(value[4:6], "big"),
                    int.from_bytes(value[6:8], "big"),
                    int.from_bytes(value[8:12], "big"),
                    bool(flags & 4),
                    bool(flags & 2),
                    bool(flags & 1),
                    value[12:],
                )
            )
        elif ctype == I_DATA:
            if len(value) < 16:
                raise DecodeError("sctp_data_short", "SCTP I-DATA chunk is shorter than its header")
            begin = bool(flags & 2)
            last = int.from_bytes(value[12:16], "big")
            chunks.append(
                DataChunk(
                    int.from_bytes(value[0:4], "big"),
                    int.from_bytes(value[4:6], "big"),
                    int.from_bytes(value[8:12], "big"),
                    last if begin else 0,
                    bool(flags & 4),
                    begin,
                    bool(flags & 1),
                    value[16:],
                    fsn=0 if begin else last,
                    idata=True,
                )
            )
        pos += (length + 3) & ~3
    return SctpPacket(sport, dport, vtag, types, chunks)


@dataclass
class Message:
    stream: int
    ppid: int
    unordered: bool
    data: bytes
    first_tsn: int


# Bytes of incomplete messages one direction may hold. Real stacks stop far below: libwebrtc's max-message-size
# is 256 KiB, Firefox sends up to its a=max-message-size in practice a few MiB. Beyond it the held fragments are
# dropped (``limit_hits``; the caller reports them, the anomaly name ends in ``_limit``).
MAX_PENDING_BYTES = 64 << 20


@dataclass
class SctpAssembler:
    """User messages of one direction of one association, in the order they complete. Fragments are held up to
    ``max_pending`` bytes; past that they are dropped and described in ``limit_hits`` (never an unbounded buffer)."""

    seen_tsns: set[int] = field(default_factory=set)
    pending: dict[int, DataChunk] = field(default_factory=dict)  # DATA fragments by TSN
    ipending: dict[tuple[int, bool, int], dict[int, DataChunk]] = field(default_factory=dict)
    duplicates: int = 0
    max_pending: int = MAX_PENDING_BYTES
    pending_bytes: int = 0
    limit_hits: list[str] = field(default_factory=list)

    def add(self, chunk: DataChunk) -> Message | None:
        if chunk.tsn in self.seen_tsns:
            self.duplicates += 1
            return None
        self.seen_tsns.add(chunk.tsn)
        if chunk.begin and chunk.end:
            return Message(chunk.stream, chunk.ppid, chunk.unordered, chunk.payload, chunk.tsn)
        if self.pending_bytes + len(chunk.payload) > self.max_pending:
            self._drop_pending(chunk)
        self.pending_bytes += len(chunk.payload)
        if chunk.idata:
            return self._add_idata(chunk)
        self.pending[chunk.tsn] = chunk
        # RFC 9260 §6.9: fragments of one message have consecutive TSNs, B on the first, E on the last
        start = chunk.tsn
        while not self.pending[start].begin:
            prev = (start - 1) & 0xFFFFFFFF
            if prev not in self.pending:
                return None
            start = prev
        parts, t = [], start
        while True:
            c = self.pending.get(t)
            if c is None:
                return None
            parts.append(c)
            if c.end:
                break
            t = (t + 1) & 0xFFFFFFFF
        for c in parts:
            del self.pending[c.tsn]
        self.pending_bytes -= sum(len(c.payload) for c in parts)
        first = parts[0]
        return Message(
            first.stream, first.ppid, first.unordered, b"".join(c.payload for c in parts), first.tsn
        )

    def _drop_pending(self, chunk: DataChunk) -> None:
        n = len(self.pending) + sum(len(f) for f in self.ipending.values())
        self.limit_hits.append(
            f"SCTP reassembly holds {self.pending_bytes:,} bytes of incomplete messages ({n} fragments) and "
            f"TSN {chunk.tsn} brings {len(chunk.payload):,} more (limit {self.max_pending:,}): the held fragments "
            "are dropped, their messages lost"
        )
        self.pending.clear()
        self.ipending.clear()
        self.pending_bytes = 0

    def _add_idata(self, chunk: DataChunk) -> Message | None:
        key = (chunk.stream, chunk.unordered, chunk.ssn)
        frags = self.ipending.setdefault(key, {})
        frags[chunk.fsn] = chunk
        last = next((c.fsn for c in frags.values() if c.end), None)
        if last is None or 0 not in frags or any(i not in frags for i in range(last + 1)):
            return None
        del self.ipending[key]
        parts = [frags[i] for i in range(last + 1)]
        self.pending_bytes -= sum(len(c.payload) for c in frags.values())
        return Message(
            chunk.stream, parts[0].ppid, chunk.unordered, b"".join(c.payload for c in parts), parts[0].tsn
        )


@dataclass
class DcepOpen:
    channel_type: int
    priority: int
    reliability: int
    label: str
    protocol: str

    @property
    def ordered(self) -> bool:
        return CHANNEL_TYPES.get(self.channel_type, ("unknown", True))[1]

    @property
    def reliability_text(self) -> str:
        kind = CHANNEL_TYPES.get(self.channel_type, (f"type_0x{self.channel_type:02x}", True))[0]
        return kind if kind == "reliable" else f"{kind}={self.reliability}"


def parse_dcep(data: bytes) -> DcepOpen | str:
    """DATA_CHANNEL_OPEN (0x03) as :class:`DcepOpen`; ``"ack"`` for DATA_CHANNEL_ACK (0x02)."""
    if not data:
        raise TruncatedError("dcep_truncated", "DCEP message is empty")
    if data[0] == 0x02:
        return "ack"
    if data[0] != 0x03:
        raise DecodeError("dcep_unknown_type", f"DCEP message has unknown type 0x{data[0]:02x}")
    if len(data) < 12:
        raise TruncatedError("dcep_truncated", "DCEP DATA_CHANNEL_OPEN is truncated")
    ctype = data[1]
    prio = int.from_bytes(data[2:4], "big")
    rel = int.from_bytes(data[4:8], "big")
    llen, plen = int.from_bytes(data[8:10], "big"), int.from_bytes(data[10:12], "big")
    if 12 + llen + plen > len(data):
        raise TruncatedError("dcep_truncated", "DCEP DATA_CHANNEL_OPEN label/protocol exceed the message")
    label = data[12 : 12 + llen].decode("utf-8", errors="replace")
    proto = data[12 + llen : 12 + llen + plen].decode("utf-8", errors="replace")
    return DcepOpen(ctype, prio, rel, label, proto)
