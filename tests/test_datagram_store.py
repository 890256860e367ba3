"""The datagram store (rtcforensics.dissect.model.Datagrams) on a real TURN-over-TLS call: the messages the fast
path keeps as columns read back as tshark shows them, column by column and in the stream's Arrow form; the
dissection's STUN messages are let go once the `stun` frame is built, and reading them then says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_tshark import fields
from samples import sample_path

import rtcforensics
from rtcforensics.dissect.demux import DTLS, RTCP, STUN, ZRTP
from rtcforensics.dissect.fastpath import dissect
from rtcforensics.dissect.model import Datagram, Datagrams, Dissection
from rtcforensics.dissect.stream import _datagrams_table, read_datagrams
from rtcforensics.dissect.stun import StunMessage

# alice on UDP; bob's leg is TURN-TCP to coturn with ChannelData on channel 0x4000 (STUN, DTLS and RTCP inside)
CAPTURE = "turn_tls_relay"


@pytest.fixture(scope="module")
def path() -> Path:
    return sample_path(CAPTURE)


@pytest.fixture(scope="module")
def dis(path: Path) -> Dissection:
    return dissect(path, progress=False)


def _kinds(d: Dissection) -> dict[str, Datagrams]:
    return {"stun": d.stun, "dtls": d.dtls, "rtcp": d.rtcp, "zrtp": d.zrtp}


def test_messages_read_back_as_tshark_shows_them(path: Path, dis: Dissection) -> None:
    rows = fields(
        path,
        ["frame.number", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "udp.payload"],
        display_filter="udp && stun",
    )
    bare = [
        (dg.frame, dg.src, dg.sport, dg.dst, dg.dport, dg.data.hex())
        for dg in dis.stun
        if dg.transport == "udp" and dg.via_turn is None
    ]
    assert len(bare) == 5 and bare == [(int(r[0]), r[1], int(r[2]), r[3], int(r[4]), r[5]) for r in rows]
    # every message unwrapped from ChannelData names its channel as tshark reads it, and the peer bound to it
    theirs = {
        (int(f), int(c, 16))
        for f, c in fields(path, ["frame.number", "stun.channel"], display_filter="tcp && stun.channel")
    }
    relayed = [dg for dg in [*dis.stun, *dis.dtls, *dis.rtcp] if dg.via_turn == "channel"]
    assert len(relayed) == 18 and {(dg.frame, dg.turn_channel) for dg in relayed} <= theirs
    assert {(dg.transport, dg.turn_peer) for dg in relayed} == {("tcp", "203.0.113.50:49188")}
    assert [dg.via_turn for dg in dis.dtls if dg.transport == "udp"] == [None] * 5


def test_columns_agree_with_the_messages(dis: Dissection) -> None:
    for kind, c in _kinds(dis).items():
        objs = list(c)
        assert len(objs) == len(c) == {"stun": 17, "dtls": 10, "rtcp": 18, "zrtp": 0}[kind]
        for name in ("frame", "ts_ns", "flow_id", "sport", "dport"):
            assert c.column(name).tolist() == [getattr(dg, name) for dg in objs], (kind, name)
        assert c.column("turn_channel").tolist() == [
            -1 if dg.turn_channel is None else dg.turn_channel for dg in objs
        ]
        for name in ("src", "dst", "transport", "via_turn", "turn_peer"):
            got = [None if i < 0 else c.strings[i] for i in c.codes(name).tolist()]
            assert got == [getattr(dg, name) for dg in objs], (kind, name)
        offsets, buf = c.payloads()
        assert [buf[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())] == [
            dg.data for dg in objs
        ]
        # 64 bytes of columns per message besides its payload (a Datagram object with its ints: ~400)
        assert c.nbytes == 64 * len(c) + sum(len(dg.data) for dg in objs)
        assert list(Datagrams(objs)) == objs
        if objs:
            assert c[0] == objs[0] and c[-1] == objs[-1] and c[1:4] == objs[1:4]
            with pytest.raises(IndexError):
                c[len(c)]
    # a message read out is a copy: changing it leaves the store as it was
    dg = dis.stun[0]
    dg.flow_id = 999
    assert dis.stun[0].flow_id != 999


def test_retain_and_renumber(dis: Dissection) -> None:
    c = Datagrams(dis.rtcp)
    c.retain([dg.via_turn is None for dg in c])
    want = [dg for dg in dis.rtcp if dg.via_turn is None]
    assert len(want) == 9 and list(c) == want
    flows = sorted({dg.flow_id for dg in want})
    flow_map = np.arange(max(flows) + 1) + 100
    c.renumber_flows(flow_map)
    assert [dg.flow_id for dg in c] == [dg.flow_id + 100 for dg in want]
    assert [dg.data for dg in c] == [dg.data for dg in want]


def test_arrow_form_reads_back(dis: Dissection) -> None:
    table = _datagrams_table({STUN: dis.stun, DTLS: dis.dtls, RTCP: dis.rtcp, ZRTP: dis.zrtp})
    frames = table["frame"].to_pylist()
    assert len(frames) == 45 and frames == sorted(frames)
    back = read_datagrams(table)
    for kind, c in _kinds(dis).items():
        assert list(back[kind]) == list(c), kind
    # a slice of the dataset (an offset into its Arrow buffers) reads back the messages it holds
    part = table.slice(7, 20)
    want: list[Datagram] = sorted((dg for c in _kinds(dis).values() for dg in c), key=lambda dg: dg.frame)[
        7:27
    ]
    got = read_datagrams(part)
    assert sorted((dg for c in got.values() for dg in c), key=lambda dg: dg.frame) == want
    # one kind only (read without a filter): the slice's offset into the payload buffer counts
    rtcp = read_datagrams(_datagrams_table({RTCP: dis.rtcp}).slice(3, 5))
    assert list(rtcp["rtcp"]) == list(dis.rtcp)[3:8] and not len(rtcp["stun"])


def test_stun_messages_released_once_the_frame_is_built(path: Path, dis: Dissection) -> None:
    cap = rtcforensics.load(path, progress=False)
    df = cap.stun
    assert df["frame"].tolist() == [dg.frame for dg in dis.stun]
    for read in (len, list, bool, lambda c: c[0]):
        with pytest.raises(RuntimeError, match="`stun` frame was built"):
            read(cap.dissection.stun)
    assert cap.stun is df and len(cap.dissection.dtls) == 10  # the other kinds are kept
    # equal attribute lists are one list object, with the values the parser gives
    assert df["attr_names"].tolist() == [StunMessage.parse(dg.data).attribute_names for dg in dis.stun]
    distinct = {tuple(v) for v in df["attr_names"]}
    assert len({id(v) for v in df["attr_names"]}) == len(distinct) < len(df)
    assert len({id(v) for v in df["unknown_attrs"]}) == 1 and df["unknown_attrs"].iloc[0] == []


def test_drain_gives_every_message_and_lets_go(dis: Dissection) -> None:
    c = Datagrams(dis.stun)
    want = list(c)
    assert len(want) == 17
    drained = c.drain(step=4)  # at least an eighth at a time: here 4
    got = [next(drained) for _ in range(5)]
    # the first 4 were let go when the 5th step was split off: the store holds the rest only
    assert len(c) == len(want) - 8 and list(c) == want[8:]
    got += list(drained)
    assert got == want and len(c) == 0 and list(c) == []


def test_absent_strings_share_one_buffer() -> None:
    df = rtcforensics.load(sample_path("stun_no_integrity"), progress=False).stun
    # six Binding messages with no TURN attributes: those columns hold no value and share one buffer of nulls
    # (8 bytes a row of offsets each, otherwise); columns with values have their own
    empty = [c for c in df.columns if str(df[c].dtype) == "string" and df[c].isna().all()]
    assert len(df) == 6 and empty == [
        "turn_peer", "realm", "software", "mapped", "xor_relayed", "xor_peer", "requested_transport"
    ]  # fmt: skip

    def offsets(c: str) -> int:
        return int(df[c].array._pa_array.chunk(0).buffers()[1].address)

    assert len({offsets(c) for c in empty}) == 1
    assert offsets("src") != offsets("realm") and df["src"].notna().all()
    # each column its own pandas array: setting a value in one leaves the others as they were
    df.loc[df.index[0], "realm"] = "example.org"
    assert df["realm"].iloc[0] == "example.org" and df["software"].isna().all() and df["mapped"].isna().all()
