"""rtcforensics.drill: one frame's Wireshark dissection via pyshark, called from inside a running event loop
(as in a Jupyter kernel), checked against our own STUN decoder on the same frame."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from stun_realcaps import stun_datagrams

import rtcforensics
from rtcforensics.dissect.stun import AttrType, StunMessage
from rtcforensics.drill import FrameDissection, dissect_frame
from rtcforensics.errors import CaptureError

COTURN_UNIDIR = "nDPI/stun_dtls_rtp_unidir.pcapng"
PCMA = "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap"


def _ours(path: Path, frame: int) -> StunMessage:
    return StunMessage.parse(next(d.data for d in stun_datagrams(path) if d.frame == frame))


@pytest.mark.realcaps
def test_dissect_frame_inside_running_event_loop(realcaps: Path) -> None:
    path = realcaps / COTURN_UNIDIR

    async def in_kernel() -> FrameDissection:
        assert asyncio.get_running_loop().is_running()
        return dissect_frame(path, 2)

    fd = asyncio.run(in_kernel())
    ours = _ours(path, 2)  # Coturn Allocate success
    assert fd.layers == ["eth", "ip", "udp", "stun"]
    stun = fd.fields("stun")
    assert stun["stun.type"] == ["0x0103"] and "Allocate Success Response" in str(fd["stun"])
    # tshark de-XORs XOR-RELAYED-ADDRESS then XOR-MAPPED-ADDRESS, in wire order, like we do
    relayed, mapped = ours.get(AttrType.XOR_RELAYED_ADDRESS), ours.get(AttrType.XOR_MAPPED_ADDRESS)
    assert stun["stun.att.ipv4"] == [relayed.ip, mapped.ip] == ["10.1.0.3", "10.10.0.1"]
    assert stun["stun.att.port"] == [str(relayed.port), str(mapped.port)]
    assert stun["stun.att.software"] == [ours.get(AttrType.SOFTWARE)]
    assert [x.replace(":", "") for x in stun["stun.id"]] == [ours.txid]
    d = fd.to_dict()
    assert d["frame"] == 2 and d["fields"]["stun"]["stun.att.lifetime"] == [str(ours.get(AttrType.LIFETIME))]
    assert fd.summary().startswith("frame 2 ") and "stun" in fd.summary()


@pytest.mark.realcaps
def test_capture_frame_from_a_coroutine(realcaps: Path) -> None:
    """Capture.frame(n) is the same drill-down; an ICE check with USERNAME and MESSAGE-INTEGRITY."""
    path = realcaps / PCMA
    cap = rtcforensics.load(path)

    async def in_kernel() -> FrameDissection:
        return cap.frame(406)

    fd = asyncio.run(in_kernel())
    ours = _ours(path, 406)
    stun = fd.fields("stun")
    assert stun["stun.att.username"] == [ours.get(AttrType.USERNAME)] == ["CZOVMpZGGn9UNv6O:deRIjUdWWgD9lRbt"]
    assert stun["stun.att.hmac"][0].replace(":", "") == ours.get(AttrType.MESSAGE_INTEGRITY).hex()
    assert stun["stun.att.priority"] == [str(ours.get(AttrType.PRIORITY))]


@pytest.mark.realcaps
def test_missing_frame_and_keylog_are_capture_errors(realcaps: Path, tmp_path: Path) -> None:
    path = realcaps / COTURN_UNIDIR
    with pytest.raises(CaptureError, match="has no frame 44"):
        dissect_frame(path, 44)  # the capture has 43 frames
    with pytest.raises(CaptureError, match="keylog file not found"):
        dissect_frame(path, 1, keylog=tmp_path / "absent.keylog")


def test_keylog_decrypts_tls_in_sample(sample, truth) -> None:
    """With the sample's SSLKEYLOGFILE, tshark decrypts the signalling: a frame shows HTTP/WebSocket
    inside TLS; without it, the same frame shows only TLS records."""
    import subprocess

    path = sample("clean_call")
    keylog = path.with_suffix(".keylog")
    if not keylog.exists():
        pytest.skip("clean_call.keylog not present")
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-o",
            f"tls.keylog_file:{keylog}",
            "-Y",
            "tls && (http || websocket)",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    frames = [int(x) for x in out.split()]
    if not frames:
        pytest.skip("no decryptable HTTP/WebSocket frame in clean_call")

    async def in_kernel() -> tuple[FrameDissection, FrameDissection]:
        return dissect_frame(path, frames[0], keylog=keylog), dissect_frame(path, frames[0])

    with_keys, without = asyncio.run(in_kernel())
    assert {"http", "websocket"} & set(with_keys.layers)
    assert not {"http", "websocket"} & set(without.layers)
