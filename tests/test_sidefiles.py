"""Side inputs (signalling=): SDP files, a chrome://webrtc-internals dump, JSON lines. The descriptions
in them are the real ones of the clean_call sample (read from its WSS signalling with the keylog); the
capture is then loaded *without* the keylog, as an analyst would who has the dump but not the TLS keys."""

from __future__ import annotations

import json

import pytest
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics.errors import CaptureError
from rtcforensics.tables.signalling import messages


@pytest.fixture(scope="module")
def clean_call_sdps() -> dict:
    p = sample_path("clean_call")
    cap = rtcforensics.load(p, keylog=p.with_suffix(".keylog"))
    out: dict = {}
    for m in messages(cap):
        for f in m.items:
            if f.kind == "sdp" and m.direction == "client_to_server":
                out[f.role] = f.text
    assert set(out) == {"offer", "answer"}
    return out


def _no_keylog(*side) -> rtcforensics.Capture:
    return rtcforensics.load(sample_path("clean_call"), signalling=list(side))


def test_sdp_files_join_the_frames_and_link_the_session(tmp_path, clean_call_sdps) -> None:
    t = load_truth("clean_call")
    (tmp_path / "offer.sdp").write_text(clean_call_sdps["offer"])
    (tmp_path / "answer.sdp").write_text(clean_call_sdps["answer"])
    cap = _no_keylog(tmp_path / "offer.sdp", tmp_path / "answer.sdp")
    df = cap.sdp
    assert list(df["source"]) == ["offer.sdp", "answer.sdp"] and set(df["source_kind"]) == {"sdp_file"}
    assert df["frame"].isna().all() and df["tls"].isna().all()
    for e in t["sdp"]:
        r = df[df["role"] == e["role"]].iloc[0]
        assert dict(r["fingerprints"]) == e["fingerprint"] and r["ice_ufrag"] == e["ice_ufrag"]
    s = cap.sessions
    assert list(s["kind"]) == ["ice"]
    r = s.iloc[0]
    assert r["fingerprint_status"] == "match" and r["dtls_client"] == t["dtls"][0]["client"]
    c = cap.candidates
    side = c[c["origin"] == "sdp"]
    assert set(side["source"]) == {"offer.sdp", "answer.sdp"} and side["in_clear"].isna().all()


def test_webrtc_internals_dump(tmp_path, clean_call_sdps) -> None:
    from rtcforensics.dissect.sdp import parse_sdp

    offer = parse_sdp(clean_call_sdps["offer"])
    cand = offer.media[0].candidates[0]
    line = (
        f"candidate:{cand.foundation} {cand.component} {cand.transport} {cand.priority} {cand.address} "
        f"{cand.port} typ {cand.type}"
    )
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
    dump = {
        "getUserMedia": [],
        "UserAgent": ua,
        "PeerConnections": {
            "12345-1": {
                "constraints": "",
                "rtcConfiguration": "{ iceServers: [] }",
                "url": "https://203.0.113.10:8443/",
                "updateLog": [
                    {"time": "1764140400000", "type": "createOffer", "value": "offerToReceiveAudio: 1"},
                    {
                        "time": "1764140400010",
                        "type": "createOfferOnSuccess",
                        "value": f"type: offer, sdp: {clean_call_sdps['offer']}",
                    },
                    {
                        "time": "1764140400020",
                        "type": "setLocalDescription",
                        "value": f"type: offer, sdp: {clean_call_sdps['offer']}",
                    },
                    {
                        "time": "1764140400030",
                        "type": "icecandidate",
                        "value": f"sdpMid: 0, sdpMLineIndex: 0, candidate: {line}",
                    },
                    {
                        "time": "1764140400500",
                        "type": "setRemoteDescription",
                        "value": f"type: answer, sdp: {clean_call_sdps['answer']}",
                    },
                ],
                "stats": {},
            }
        },
    }
    p = tmp_path / "webrtc_internals_dump.txt"
    p.write_text(json.dumps(dump))
    cap = _no_keylog(p)
    df = cap.sdp
    assert list(df["role"]) == ["offer", "answer"]  # createOfferOnSuccess duplicates setLocalDescription
    assert list(df["direction"]) == ["local", "remote"] and set(df["source_kind"]) == {"webrtc_internals"}
    assert list(df["ts"].astype("int64")) == [1764140400020 * 10**6, 1764140400500 * 10**6]
    assert df["stack"].iloc[0] == "aiortc"  # the o= line wins over the dump's UA for what it recognises
    c = cap.candidates
    tr = c[c["origin"] == "trickle"]
    assert list(zip(tr["address"], tr["port"])) == [(cand.address, cand.port)] and list(tr["mid"]) == ["0"]
    assert cap.sessions.iloc[0]["fingerprint_status"] == "match"


def test_json_lines_with_a_bad_line(tmp_path, clean_call_sdps) -> None:
    lines = [
        json.dumps(
            {"ts": 1764140400.25, "dir": "out", "msg": {"type": "offer", "sdp": clean_call_sdps["offer"]}}
        ),
        '{"ts": 1764140400.30, "dir": "in", "msg": {"type": "answer", "sdp": "v=0',  # cut short
        json.dumps(
            {
                "ts": "2025-11-26T07:00:00.5Z",
                "dir": "in",
                "msg": {"type": "answer", "sdp": clean_call_sdps["answer"]},
            }
        ),
        "",
    ]
    p = tmp_path / "signalling.jsonl"
    p.write_text("\n".join(lines))
    cap = _no_keylog(p)
    df = cap.sdp
    assert list(df["role"]) == ["offer", "answer"] and set(df["source_kind"]) == {"jsonl"}
    assert df["ts"].iloc[0].value == 1764140400250000000
    a = cap.dissection.anomalies.frame()
    bad = a[a["name"] == "json_invalid"]
    assert len(bad) == 1 and "signalling.jsonl: line 2" in bad["detail"].iloc[0]


def test_unusable_side_files(tmp_path) -> None:
    with pytest.raises(CaptureError, match="nothere.sdp"):
        _no_keylog(tmp_path / "nothere.sdp")
    empty = tmp_path / "empty.json"
    empty.write_text("\n\n")
    cap = _no_keylog(empty)
    assert len(cap.sdp) == 0
    assert "side_file_empty" in set(cap.dissection.anomalies.frame()["name"])


def test_a_5000_digit_json_number_is_kept_as_text_not_an_error(tmp_path, clean_call_sdps) -> None:
    # issue 19: Python's int() refuses more than 4,300 digits; the message around such a number stays readable
    huge = "7" * 5000
    offer = json.dumps({"type": "offer", "sdp": clean_call_sdps["offer"]})
    (tmp_path / "offer.json").write_text(offer.replace("{", '{"seq": ' + huge + ", ", 1))
    answer = json.dumps({"ts": 0, "msg": {"type": "answer", "sdp": clean_call_sdps["answer"]}})
    (tmp_path / "answer.jsonl").write_text(answer.replace('"ts": 0', f'"ts": {huge}') + "\n")
    cap = _no_keylog(tmp_path / "offer.json", tmp_path / "answer.jsonl")
    df = cap.sdp
    assert list(df["role"]) == ["offer", "answer"] and list(df["source"]) == ["offer.json", "answer.jsonl"]
    assert df["ts"].isna().all()  # a time beyond any timestamp is no time, not an error
    assert cap.sessions.iloc[0]["fingerprint_status"] == "match"
    assert "json_invalid" not in set(cap.dissection.anomalies.frame()["name"])
