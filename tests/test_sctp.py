"""SCTP + DCEP decoding on the SCTP packets decrypted from the datachannel_only sample (aiortc, keylog)."""

from __future__ import annotations

import pytest

import rtcforensics
from rtcforensics.dissect.sctp import (
    DATA,
    INIT,
    INIT_ACK,
    PPID_DCEP,
    DataChunk,
    DcepOpen,
    SctpAssembler,
    parse_dcep,
    parse_sctp,
)
from rtcforensics.errors import DecodeError, TruncatedError
from rtcforensics.tables.dtls import tracker


@pytest.fixture
def packets(sample, truth):
    t = truth("datachannel_only")
    path = sample("datachannel_only")
    kl = path.with_name(t["keylog"])
    if not kl.exists():
        pytest.skip("keylog not present")
    (hs,) = tracker(rtcforensics.load(path, keylog=kl, progress=False)).handshakes
    return [(side, p) for (_, _, side, p) in hs.app_data]


def test_association_setup_and_ports(packets):
    _, first = packets[0]
    pkt = parse_sctp(first)
    assert (pkt.sport, pkt.dport) == (5000, 5000) and pkt.vtag == 0
    assert pkt.chunk_types == [INIT]
    types = [set(parse_sctp(p).chunk_types) for _, p in packets]
    # RFC 9260 §5.1 four-way handshake: INIT, INIT ACK, COOKIE ECHO (10), COOKIE ACK (11), then DATA / SACK
    seen = set().union(*types)
    assert {INIT, INIT_ACK, 10, 11, DATA, 3} <= seen
    assert min(i for i, t in enumerate(types) if DATA in t) > min(i for i, t in enumerate(types) if 10 in t)


def test_dcep_open_and_ack(packets):
    msgs = []
    for _, p in packets:
        for c in parse_sctp(p).data:
            if c.ppid == PPID_DCEP:
                msgs.append(parse_dcep(c.payload))
    opened = [m for m in msgs if isinstance(m, DcepOpen)]
    assert len(opened) == 1 and msgs.count("ack") == 1
    o = opened[0]
    assert (o.label, o.protocol, o.ordered, o.reliability_text) == ("chat", "", True, "reliable")


def test_fragmented_and_retransmitted_data(packets):
    # a real text DATA chunk split into three fragments (B / middle / E, consecutive TSNs), fed out of
    # order and with a duplicate: one message, the original bytes
    chunk = next(c for _, p in packets for c in parse_sctp(p).data if c.ppid == 51 and len(c.payload) > 20)
    d = chunk.payload
    frags = [
        DataChunk(chunk.tsn + i, chunk.stream, chunk.ssn, chunk.ppid, False, i == 0, i == 2, part)
        for i, part in enumerate((d[:5], d[5:12], d[12:]))
    ]
    asm = SctpAssembler()
    assert asm.add(frags[2]) is None and asm.add(frags[0]) is None
    assert asm.add(frags[0]) is None and asm.duplicates == 1
    msg = asm.add(frags[1])
    assert msg is not None and msg.data == d and msg.first_tsn == chunk.tsn and msg.stream == chunk.stream


def test_malformed_chunks(packets):
    raw = next(p for _, p in packets if DATA in parse_sctp(p).chunk_types)
    bad = bytearray(raw)
    bad[14:16] = (len(raw)).to_bytes(2, "big")  # first chunk's length runs past the packet
    with pytest.raises(TruncatedError) as e:
        parse_sctp(bytes(bad))
    assert e.value.name == "sctp_chunk_length"
    with pytest.raises(TruncatedError):
        parse_sctp(raw[:8])
    with pytest.raises(DecodeError) as e:
        parse_dcep(b"\x07" + bytes(11))
    assert str(e.value) == "DCEP message has unknown type 0x07"


def test_mutated_sctp_packets_never_crash(sample, truth):
    """Every SCTP packet of the session with bytes mutated: anomalies (layer sctp), never an exception."""
    from rtcforensics.anomalies import AnomalyLog
    from rtcforensics.tables.datachannels import messages_of

    t = truth("datachannel_only")
    path = sample("datachannel_only")
    (hs,) = tracker(rtcforensics.load(path, keylog=path.with_name(t["keylog"]), progress=False)).handshakes
    original = list(hs.app_data)
    names = set()
    for k, (frame, ts, side, p) in enumerate(original):
        for pos in range(0, len(p), max(1, len(p) // 24)):
            for v in (0x00, 0xFF):
                hs.app_data = list(original)
                hs.app_data[k] = (frame, ts, side, p[:pos] + bytes([v]) + p[pos + 1 :])
                an = AnomalyLog()
                messages_of(hs, an)
                names |= {r["name"] for r in an.rows}
        hs.app_data = list(original)
        an = AnomalyLog()
        hs.app_data[k] = (frame, ts, side, p[: len(p) // 2])
        messages_of(hs, an)
        names |= {r["name"] for r in an.rows}
    assert names and all(n.startswith(("sctp_", "dcep_")) for n in names), names


def test_reassembly_buffer_is_bounded(packets):
    # issue 19: a message that never ends must not grow a buffer without bound. A real text chunk repeated as
    # middle fragments (consecutive TSNs, no E): held up to the limit, then dropped and described; a whole
    # message after it still comes through
    chunk = next(c for _, p in packets for c in parse_sctp(p).data if c.ppid == 51 and len(c.payload) > 20)
    d = chunk.payload
    limit = 50 * len(d)
    asm = SctpAssembler(max_pending=limit)
    for i in range(120):
        assert (
            asm.add(DataChunk(chunk.tsn + i, chunk.stream, chunk.ssn, chunk.ppid, False, i == 0, False, d))
            is None
        )
        assert asm.pending_bytes <= limit
    assert len(asm.limit_hits) == 2 and f"limit {limit:,}" in asm.limit_hits[0]
    whole = DataChunk(chunk.tsn + 500, chunk.stream, chunk.ssn + 1, chunk.ppid, False, True, True, d)
    assert asm.add(whole).data == d
