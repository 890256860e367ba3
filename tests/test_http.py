"""Signalling bodies, headers and URLs (dissect/http.py): bodies made by aiortc, secrets in URLs."""

from __future__ import annotations

import json

import pytest

from rtcforensics.dissect.http import Message, classify_body, redact_url


def _report(layer: str, name: str, detail: str, frame: int | None = None, ts_ns: int | None = None) -> None:
    raise AssertionError(f"unexpected anomaly {name}: {detail}")


def test_url_secrets_redacted() -> None:
    url, found = redact_url("wss://sig.example/ws?room=lab&token=eyJhbGciOi.payload.sig&x=1")
    assert "eyJhbGciOi" not in url and "room=lab" in url and "x=1" in url
    assert [k for k, _ in found] == ["url:token"]


def test_whip_trickle_sdpfrag_body() -> None:
    # RFC 8840 / RFC 9725 PATCH body; the candidate line is one aiortc gathers
    aiortc = pytest.importorskip("aiortc")
    import asyncio

    from aiortc.sdp import candidate_to_sdp

    async def gather() -> str:
        pc = aiortc.RTCPeerConnection()
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        c = pc.getTransceivers()[0].sender.transport.transport.iceGatherer.getLocalCandidates()[0]
        await pc.close()
        return candidate_to_sdp(c)

    line = asyncio.run(gather())
    body = f"a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:{line}\r\n"

    m = Message(
        index=0,
        frame=1,
        ts_ns=None,
        transport="http",
        ip_proto="tcp",
        src=None,
        sport=None,
        dst=None,
        dport=None,
        tcp_stream=0,
        tls=False,
        decrypted=False,
        method="PATCH",
        direction="request",
    )
    classify_body(_report, m, body, "application/trickle-ice-sdpfrag")
    assert m.body_kind == "candidate"
    assert [f.text for f in m.items] == [f"candidate:{line}"] and m.items[0].envelope == "whip"


def _aiortc_offer() -> str:
    aiortc = pytest.importorskip("aiortc")
    import asyncio

    async def offer() -> str:
        pc = aiortc.RTCPeerConnection()
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(offer())


def _websocket_message() -> Message:
    return Message(
        index=0,
        frame=1,
        ts_ns=None,
        transport="websocket",
        ip_proto="tcp",
        src=None,
        sport=None,
        dst=None,
        dport=None,
        tcp_stream=0,
        tls=False,
        decrypted=False,
    )


def test_socketio_framed_json() -> None:
    # Socket.IO (Engine.IO message 4 + event 2) in front of the JSON array; SDP from aiortc
    sdp = _aiortc_offer()
    for text in (
        "42" + json.dumps(["offer", {"type": "offer", "sdp": sdp}]),
        "42/rooms,7" + json.dumps(["signal", {"description": {"type": "offer", "sdp": sdp}}]),
    ):
        m = _websocket_message()
        classify_body(_report, m, text, None)
        assert m.body_kind == "sdp" and [(f.kind, f.role, f.text) for f in m.items] == [("sdp", "offer", sdp)]


def test_huge_json_number_keeps_the_sdp() -> None:
    # issue 19: one 5,000-digit number (beyond Python's int conversion limit) beside an aiortc offer
    sdp = _aiortc_offer()
    text = json.dumps({"type": "offer", "sdp": sdp})[:-1] + f', "seq": {"9" * 5000}}}'
    m = _websocket_message()
    classify_body(_report, m, text, None)
    assert m.body_kind == "sdp" and [(f.kind, f.role, f.text) for f in m.items] == [("sdp", "offer", sdp)]
