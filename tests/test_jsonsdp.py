"""SDP, candidates and ICE/DTLS parameters inside JSON envelopes (dissect/jsonsdp.py).

The SDP, candidate and parameter values come from aiortc in-process (a real stack); the envelopes are the
shapes Janus, LiveKit and mediasoup use on the wire."""

from __future__ import annotations

import asyncio
import json

import pytest

from rtcforensics.dissect import jsonsdp
from rtcforensics.dissect.sdp import parse_candidate, parse_sdp
from rtcforensics.errors import DecodeError


@pytest.fixture(scope="module")
def real() -> dict:
    aiortc = pytest.importorskip("aiortc")
    from aiortc.sdp import candidate_to_sdp

    async def run() -> dict:
        pc = aiortc.RTCPeerConnection()
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        tr = pc.getTransceivers()[0]
        dtls = tr.sender.transport
        gatherer = dtls.transport.iceGatherer
        params = gatherer.getLocalParameters()
        cands = gatherer.getLocalCandidates()
        fps = dtls.getLocalParameters().fingerprints
        out = {
            "sdp": pc.localDescription.sdp,
            "type": pc.localDescription.type,
            "candidate": "candidate:" + candidate_to_sdp(cands[0]),
            "cand_obj": cands[0],
            "ufrag": params.usernameFragment,
            "pwd": params.password,
            "fps": [(f.algorithm, f.value) for f in fps],
        }
        await pc.close()
        return out

    return asyncio.run(run())


def test_w3c_description_and_trickle(real) -> None:
    found = jsonsdp.find({"type": real["type"], "sdp": real["sdp"]})
    assert [(f.kind, f.role, f.path, f.envelope) for f in found] == [("sdp", "offer", "$.sdp", "plain")]
    assert found[0].text == real["sdp"]
    t = jsonsdp.find(
        {"candidate": real["candidate"], "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": real["ufrag"]}
    )
    assert [(f.kind, f.mid, f.mline_index, f.ufrag) for f in t] == [("candidate", "0", 0, real["ufrag"])]
    c = parse_candidate(t[0].text)
    assert (c.address, c.port, c.priority) == (
        real["cand_obj"].ip,
        real["cand_obj"].port,
        real["cand_obj"].priority,
    )


def test_janus_envelopes(real) -> None:
    msg = {
        "janus": "message",
        "session_id": 1,
        "handle_id": 2,
        "transaction": "x",
        "body": {"request": "configure"},
        "jsep": {"type": "offer", "sdp": real["sdp"]},
    }
    f = jsonsdp.find(msg)
    assert [(x.kind, x.role, x.envelope, x.path) for x in f] == [("sdp", "offer", "janus", "$.jsep.sdp")]
    trickle = {
        "janus": "trickle",
        "candidate": {"candidate": real["candidate"], "sdpMid": "0", "sdpMLineIndex": 0},
    }
    f = jsonsdp.find(trickle)
    assert [(x.kind, x.envelope, x.path) for x in f] == [("candidate", "janus", "$.candidate.candidate")]
    done = jsonsdp.find({"janus": "trickle", "candidate": {"completed": True}})
    assert [(x.kind, x.text) for x in done] == [("candidate", "")]


def test_livekit_like_nested_json_string(real) -> None:
    # LiveKit-style signal messages carry the trickle candidate as a JSON *string* inside JSON.
    init = json.dumps({"candidate": real["candidate"], "sdpMid": "0", "sdpMLineIndex": 0})
    f = jsonsdp.find({"trickle": {"candidateInit": init, "target": "PUBLISHER"}})
    assert [(x.kind, x.envelope, x.path) for x in f] == [
        ("candidate", "livekit", "$.trickle.candidateInit<json>.candidate")
    ]
    f = jsonsdp.find({"answer": {"type": "answer", "sdp": real["sdp"]}})
    assert [(x.kind, x.role, x.envelope) for x in f] == [("sdp", "answer", "livekit")]


def test_escaped_newlines_twice_encoded(real) -> None:
    # An app that JSON-encodes the description object and sends it as a string inside another JSON
    inner = json.dumps({"type": "offer", "sdp": real["sdp"]})
    outer = json.dumps({"event": "signal", "data": {"payload": inner}})
    f = jsonsdp.find_in_text(outer)
    assert [(x.kind, x.role) for x in f] == [("sdp", "offer")]
    assert parse_sdp(f[0].text).ufrags() == [real["ufrag"]]
    # SDP whose newlines stayed escaped (\\r\\n in the decoded string) still parses
    flat = real["sdp"].replace("\r\n", "\\r\\n")
    assert parse_sdp(flat).ufrags() == [real["ufrag"]]


def test_mediasoup_like_transport_parameters(real) -> None:
    msg = {
        "response": True,
        "id": 7,
        "ok": True,
        "data": {
            "id": "t1",
            "iceParameters": {"usernameFragment": real["ufrag"], "password": real["pwd"], "iceLite": True},
            "iceCandidates": [
                {
                    "foundation": "udpcandidate",
                    "priority": 1076302079,
                    "ip": real["cand_obj"].ip,
                    "protocol": "udp",
                    "port": real["cand_obj"].port,
                    "type": "host",
                }
            ],
            "dtlsParameters": {
                "role": "auto",
                "fingerprints": [{"algorithm": a, "value": v} for a, v in real["fps"]],
            },
        },
    }
    f = jsonsdp.find(msg)
    assert [(x.kind, x.envelope) for x in f] == [("params", "mediasoup")]
    p = f[0].params
    assert p["ice_ufrag"] == real["ufrag"] and p["ice_lite"] is True
    assert p["fingerprints"] == [(a, v.replace(":", "").lower()) for a, v in real["fps"]]
    assert [(c.address, c.port) for c in p["candidates"]] == [(real["cand_obj"].ip, real["cand_obj"].port)]


def test_bad_json() -> None:
    with pytest.raises(DecodeError) as e:
        jsonsdp.find_in_text('{"type": "offer", "sdp": "v=0')
    assert e.value.name == "json_invalid"
    deep = {"a": None}
    cur = deep
    for _ in range(jsonsdp.MAX_DEPTH + 5):
        cur["a"] = {"a": None}
        cur = cur["a"]
    with pytest.raises(DecodeError) as e:
        jsonsdp.find(deep)
    assert e.value.name == "json_too_deep"
    bomb = "[" * 200000 + "]" * 200000
    with pytest.raises(DecodeError) as e:
        jsonsdp.find_in_text(bomb)
    assert e.value.name == "json_invalid"
