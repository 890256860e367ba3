"""The `signalling` frame on sample captures (truth files) and third-party captures (tshark cross-checks)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import rtcforensics
from rtcforensics.tables.signalling import multipart_parts, parse_sip, redact_url


def _load(sample, name: str, keylog: bool = True) -> rtcforensics.Capture:
    p = sample(name)
    kl = p.with_suffix(".keylog")
    return rtcforensics.load(p, keylog=kl if keylog and kl.exists() else None)


def _tshark(path: Path, *args: str) -> list[list[str]]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True, text=True,
                         check=False).stdout  # exit 2 on a truncated capture still prints what was read
    return [ln.split("\t") for ln in out.splitlines() if ln]


def test_wss_decrypted_with_keylog(sample, truth) -> None:
    t = truth("clean_call")["signalling"]
    cap = _load(sample, "clean_call")
    s = cap.signalling
    assert len(s) and s["tls"].all() and s["decrypted"].all()
    host, _port = t["server"].rsplit(":", 1)
    http = s[s["transport"] == "http"]
    assert {u.split(t["server"], 1)[1] for u in http["url"]} == set(t["urls"])
    assert set(http[http["direction"] == "request"]["dst"]) == {host}
    ws = s[s["transport"] == "websocket"]
    assert len(ws) and all(u.startswith(f"wss://{t['server']}/ws/lab/") for u in ws["url"])
    assert set(ws["body_kind"]) == {"sdp"}
    # the TLS version the server chose, as tshark reads the ServerHello
    ref = _tshark(cap.path, "-Y", "tls.handshake.type == 2", "-T", "fields", "-e", "tls.handshake.extensions.supported_version")
    assert {r[0] for r in ref} == {"0x0304"} and set(s["tls_version"]) == {"TLS 1.3"}


def test_wss_without_keylog_is_one_unreadable_row_per_tls_connection(sample) -> None:
    cap = _load(sample, "clean_call", keylog=False)
    s = cap.signalling
    hellos = _tshark(cap.path, "-Y", "tls.handshake.type == 1", "-T", "fields", "-e", "tcp.stream",
                     "-e", "tls.handshake.extensions_server_name")
    assert set(s["transport"]) == {"tls"} and not s["decrypted"].any()
    assert sorted(s["tcp_stream"]) == sorted(int(r[0]) for r in hellos)
    assert len(cap.sdp) == 0


def test_whip_http_messages_match_truth(sample, truth) -> None:
    t = truth("sdes_plain_rtp")["http"]
    s = _load(sample, "sdes_plain_rtp").signalling
    na = lambda v: None if v is None or v is pd.NA else v
    got = [(int(r.frame), na(r.method), None if na(r.status) is None else int(r.status), na(r.content_type))
           for r in s.itertuples()]
    assert got == [(x["frame"], x["method"], x["status"], x["content_type"]) for x in t]
    assert list(s["body_kind"][:2]) == ["sdp", "sdp"] and not s["tls"].any()


def test_sip_over_websocket(sample, truth) -> None:
    t = truth("sip_ws")["sip"]
    s = _load(sample, "sip_ws", keylog=False).signalling
    ws = s[s["transport"] == "websocket"]
    assert list(ws["frame"]) == t["tshark_frames"]
    assert set(ws["body_kind"]) == {"sip"}
    sent = ws[ws["direction"] == "client_to_server"]
    assert list(sent["method"]) == [x.split()[0] for x in t["uac_sent"]]
    recv = ws[ws["direction"] == "server_to_client"]
    assert list(recv["status"]) == [int(x.split()[1]) for x in t["uas_sent"]]
    assert set(sent["user_agent"]) == {t["user_agent"]}
    assert set(recv["server"]) == {t["server"]}
    assert int(ws[ws["method"] == "INVITE"]["sdp_count"].iloc[0]) == 1
    assert len(set(ws["sip_call_id"])) == 1


def test_plain_websocket_json_with_trickle(sample, truth) -> None:
    t = truth("ws_plaintext_private")
    s = _load(sample, "ws_plaintext_private").signalling
    ws = s[s["transport"] == "websocket"]
    assert not ws["tls"].any()
    assert ws["sdp_count"].sum() >= len(t["sdp"])
    assert ws["candidate_count"].sum() >= len(t["candidates"])
    assert {"sdp", "candidate"} <= set(ws["body_kind"])


def test_invalid_json_in_a_mutated_capture_is_an_anomaly(sample, tmp_path) -> None:
    src = sample("ws_plaintext_private").read_bytes()
    good = b'{"type": "offer", "sdp"'
    assert good in src  # the relay forwards the offer unmasked to the answerer
    bad = tmp_path / "ws_bad_json.pcapng"
    bad.write_bytes(src.replace(good, b'{"type": "offer", "sdp\'', 1))
    cap = rtcforensics.load(bad)
    s = cap.signalling
    assert len(s) == len(_load(sample, "ws_plaintext_private").signalling)
    a = cap.dissection.anomalies.frame()
    assert "json_invalid" in set(a["name"])
    assert (s["body_kind"] == "text").sum() == 1


def test_truncated_capture_keeps_what_was_read(sample, tmp_path) -> None:
    src = sample("ws_plaintext_private").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(src[: len(src) * 6 // 10])
    full = _load(sample, "ws_plaintext_private").signalling
    s = rtcforensics.load(cut).signalling
    assert 0 < len(s) <= len(full)
    assert list(s["frame"]) == list(full["frame"][: len(s)])


@pytest.mark.realcaps
def test_sip_udp_and_http_cross_checked_with_tshark(realcaps) -> None:
    path = realcaps / "sipcapture_heplify" / "rtp_rtcp_sip_ipv4_udp.pcap"
    cap = rtcforensics.load(path)
    s = cap.signalling
    ref = _tshark(path, "-Y", "sip", "-T", "fields", "-e", "sip.Method", "-e", "sip.Status-Code")
    sip = s[s["transport"] == "sip"]
    assert Counter(m for m in sip["method"].dropna()) == Counter(r[0] for r in ref if r[0])
    assert Counter(int(x) for x in sip["status"].dropna()) == Counter(int(r[1]) for r in ref if len(r) > 1 and r[1])
    cookies = _tshark(path, "-Y", "http.cookie", "-T", "fields", "-e", "frame.number", "-e", "http.cookie")
    http = s[s["transport"] == "http"].set_index("frame")
    for frame, value in cookies:
        assert "cookie" in http.loc[int(frame), "auth_kinds"]
        assert http.loc[int(frame), "auth_present"]
    # the cookie values themselves are nowhere in the frame
    text = s.astype(str).to_csv()
    assert not any(v in text for _, v in cookies)


@pytest.mark.realcaps
def test_zeek_websocket(realcaps) -> None:
    path = realcaps / "zeek" / "websocket.pcap"
    s = rtcforensics.load(path).signalling
    ref = _tshark(path, "-Y", "websocket.payload.text", "-T", "fields", "-e", "frame.number")
    ws = s[s["transport"] == "websocket"]
    text_frames = list(ws[ws["ws_opcode"] == 1]["frame"])
    assert text_frames == [int(r[0]) for r in ref]
    ua = _tshark(path, "-Y", "http.request", "-T", "fields", "-e", "http.user_agent")[0][0]
    assert set(ws["user_agent"]) == {ua}
    assert set(ws[ws["frame"] == 18]["direction"]) == {"client_to_server"}


def test_sip_parser_multipart_and_errors(sample) -> None:
    # SIP messages as sent by the sip_ws sample's UAC, then wrapped the way RFC 5621 multipart bodies are
    from rtcforensics.dissect.tshark import export_raw

    raw = export_raw(sample("sip_ws"), "sip", display_filter="websocket && sip")
    invite = next(v[0] for v in raw.values() if v[0].startswith(b"INVITE"))
    msgs = parse_sip(invite + invite)  # two coalesced on a stream
    assert [m.method for m in msgs] == ["INVITE", "INVITE"] and msgs[0].body.startswith(b"v=0")
    sdp = msgs[0].body
    mp = (b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp + b"\r\n--b1\r\nContent-Type: "
          b"application/pidf+xml\r\n\r\n<presence/>\r\n--b1--\r\n")
    parts = multipart_parts('multipart/mixed;boundary="b1"', mp)
    assert [p[0] for p in parts] == ["application/sdp", "application/pidf+xml"] and parts[0][1] == sdp
    from rtcforensics.errors import DecodeError

    with pytest.raises(DecodeError) as e:
        parse_sip(invite[:-10])
    assert e.value.name == "sip_truncated"
    assert [m.method for m in e.value.done] == ["INVITE"]  # the partial message is kept, body cut short
    with pytest.raises(DecodeError):
        parse_sip(b"GET / HTTP/1.1\r\n\r\n")


def test_url_secrets_redacted() -> None:
    url, found = redact_url("wss://sig.example/ws?room=lab&token=eyJhbGciOi.payload.sig&x=1")
    assert "eyJhbGciOi" not in url and "room=lab" in url and "x=1" in url
    assert [k for k, _ in found] == ["url:token"]


def test_permessage_deflate_websocket_from_firefox(sample, truth) -> None:
    t = truth("browsers_firefox_chromium")
    cap = _load(sample, "browsers_firefox_chromium")
    s = cap.signalling
    ref = _tshark(cap.path, "-Y", "websocket.pmc == 1", "-T", "fields", "-e", "frame.number")
    comp = s[(s["transport"] == "websocket") & (s["ws_compressed"] == True)]
    assert set(comp["frame"]) == {int(r[0]) for r in ref} and len(comp)
    offer = next(e for e in t["sdp"] if e["role"] == "offer")
    sdp = cap.sdp
    got = sdp[sdp["signalling_msg"].isin(comp["msg_index"]) & (sdp["ice_ufrag"] == offer["ice_ufrag"])]
    assert len(got) and set(got["fingerprint_sha256"]) == {offer["fingerprint"]["sha-256"]}


@pytest.mark.realcaps
def test_chunked_http_bodies_are_dechunked(realcaps) -> None:
    path = realcaps / "sipcapture_heplify" / "rtp_rtcp_sip_ipv4_udp.pcap"
    s = rtcforensics.load(path).signalling.set_index("frame")
    ref = _tshark(path, "-Y", "http.transfer_encoding == \"chunked\"", "-T", "fields", "-e", "frame.number",
                  "-e", "http.chunk_size", "-E", "aggregator=,")
    assert ref
    for frame, sizes in ref:
        assert s.loc[int(frame), "body_len"] == sum(int(x) for x in sizes.split(",") if x)


def test_tls_secrets_embedded_in_pcapng(sample, truth, tmp_path) -> None:
    # The clean_call keylog injected into the capture as a pcapng Decryption Secrets Block (editcap): the
    # WSS signalling is read without keylog= and gives the same descriptions.
    p = sample("clean_call")
    dsb = tmp_path / "clean_call_dsb.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{p.with_suffix('.keylog')}", str(p), str(dsb)], check=True)
    cap = rtcforensics.load(dsb)
    s = cap.signalling
    assert s["decrypted"].all() and {"http", "websocket"} <= set(s["transport"])
    want = {(e["role"], e["fingerprint"]["sha-256"]) for e in truth("clean_call")["sdp"]}
    assert set(zip(cap.sdp["role"], cap.sdp["fingerprint_sha256"])) == want


def test_whip_trickle_sdpfrag_body() -> None:
    # RFC 8840 / RFC 9725 PATCH body; the candidate line is one aiortc gathers
    aiortc = pytest.importorskip("aiortc")
    import asyncio

    from aiortc.sdp import candidate_to_sdp

    from rtcforensics.tables.signalling import Message, classify_body

    async def gather() -> str:
        pc = aiortc.RTCPeerConnection()
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        c = pc.getTransceivers()[0].sender.transport.transport.iceGatherer.getLocalCandidates()[0]
        await pc.close()
        return candidate_to_sdp(c)

    line = asyncio.run(gather())
    body = f"a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:{line}\r\n"

    class _Cap:
        strict = False

    m = Message(index=0, frame=1, ts_ns=None, transport="http", ip_proto="tcp", src=None, sport=None, dst=None,
                dport=None, tcp_stream=0, tls=False, decrypted=False, method="PATCH", direction="request")
    classify_body(_Cap(), m, body, "application/trickle-ice-sdpfrag")  # type: ignore[arg-type]
    assert m.body_kind == "candidate"
    assert [f.text for f in m.items] == [f"candidate:{line}"] and m.items[0].envelope == "whip"


def test_socketio_framed_json() -> None:
    # Socket.IO (Engine.IO message 4 + event 2) in front of the JSON array; SDP from aiortc
    aiortc = pytest.importorskip("aiortc")
    import asyncio
    import json

    from rtcforensics.tables.signalling import Message, classify_body

    async def offer() -> str:
        pc = aiortc.RTCPeerConnection()
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    sdp = asyncio.run(offer())

    class _Cap:
        strict = False

    for text in ("42" + json.dumps(["offer", {"type": "offer", "sdp": sdp}]),
                 "42/rooms,7" + json.dumps(["signal", {"description": {"type": "offer", "sdp": sdp}}])):
        m = Message(index=0, frame=1, ts_ns=None, transport="websocket", ip_proto="tcp", src=None, sport=None,
                    dst=None, dport=None, tcp_stream=0, tls=False, decrypted=False)
        classify_body(_Cap(), m, text, None)  # type: ignore[arg-type]
        assert m.body_kind == "sdp" and [(f.kind, f.role, f.text) for f in m.items] == [("sdp", "offer", sdp)]
