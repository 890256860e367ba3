"""The `signalling` frame on sample captures (truth files) and third-party captures (tshark cross-checks)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import rtcforensics


def _load(sample, name: str, keylog: bool = True) -> rtcforensics.Capture:
    p = sample(name)
    kl = p.with_suffix(".keylog")
    return rtcforensics.load(p, keylog=kl if keylog and kl.exists() else None)


def _tshark(path: Path, *args: str) -> list[list[str]]:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), *args], capture_output=True, text=True, check=False
    ).stdout  # exit 2 on a truncated capture still prints what was read
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
    ref = _tshark(
        cap.path,
        "-Y",
        "tls.handshake.type == 2",
        "-T",
        "fields",
        "-e",
        "tls.handshake.extensions.supported_version",
    )
    assert {r[0] for r in ref} == {"0x0304"} and set(s["tls_version"]) == {"TLS 1.3"}


def test_wss_without_keylog_is_one_unreadable_row_per_tls_connection(sample) -> None:
    cap = _load(sample, "clean_call", keylog=False)
    s = cap.signalling
    hellos = _tshark(
        cap.path,
        "-Y",
        "tls.handshake.type == 1",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "tls.handshake.extensions_server_name",
    )
    assert set(s["transport"]) == {"tls"} and not s["decrypted"].any()
    assert sorted(s["tcp_stream"]) == sorted(int(r[0]) for r in hellos)
    assert len(cap.sdp) == 0


def test_whip_http_messages_match_truth(sample, truth) -> None:
    t = truth("sdes_plain_rtp")["http"]
    s = _load(sample, "sdes_plain_rtp").signalling

    def na(v):
        return None if v is None or v is pd.NA else v

    got = [
        (int(r.frame), na(r.method), None if na(r.status) is None else int(r.status), na(r.content_type))
        for r in s.itertuples()
    ]
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
    assert Counter(int(x) for x in sip["status"].dropna()) == Counter(
        int(r[1]) for r in ref if len(r) > 1 and r[1]
    )
    cookies = _tshark(path, "-Y", "http.cookie", "-T", "fields", "-e", "frame.number", "-e", "http.cookie")
    http = s[s["transport"] == "http"].set_index("frame")
    for frame, _value in cookies:
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
    ref = _tshark(
        path,
        "-Y",
        'http.transfer_encoding == "chunked"',
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "http.chunk_size",
        "-E",
        "aggregator=,",
    )
    assert ref
    for frame, sizes in ref:
        assert s.loc[int(frame), "body_len"] == sum(int(x) for x in sizes.split(",") if x)


def test_tls_secrets_embedded_in_pcapng(sample, truth, tmp_path) -> None:
    # The clean_call keylog injected into the capture as a pcapng Decryption Secrets Block (editcap): the
    # WSS signalling is read without keylog= and gives the same descriptions.
    p = sample("clean_call")
    dsb = tmp_path / "clean_call_dsb.pcapng"
    subprocess.run(
        ["editcap", "--inject-secrets", f"tls,{p.with_suffix('.keylog')}", str(p), str(dsb)], check=True
    )
    cap = rtcforensics.load(dsb)
    s = cap.signalling
    assert s["decrypted"].all() and {"http", "websocket"} <= set(s["transport"])
    want = {(e["role"], e["fingerprint"]["sha-256"]) for e in truth("clean_call")["sdp"]}
    assert set(zip(cap.sdp["role"], cap.sdp["fingerprint_sha256"])) == want


def test_client_and_server_endpoints_from_the_syn(sample, truth) -> None:
    # sip_ws: the UAC opened the WebSocket connection; every message of it names the UAC as client
    cap = _load(sample, "sip_ws")
    s = cap.signalling
    syn = _tshark(
        sample("sip_ws"),
        "-Y",
        "tcp.flags.syn==1 && tcp.flags.ack==0",
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "tcp.srcport",
        "-e",
        "ip.dst",
        "-e",
        "tcp.dstport",
    )
    opened = {(f"{r[0]}:{r[1]}", f"{r[2]}:{r[3]}") for r in syn}
    ws = s[s["transport"].isin(["http", "websocket"])]
    assert len(ws) and set(zip(ws["client_endpoint"], ws["server_endpoint"])) <= opened
    # the messages the UAC sent (truth) are the ones whose sender is the client
    sent = ws[(ws["src"] + ":" + ws["sport"].astype(str)) == ws["client_endpoint"]]
    assert [int(f) for f in sent["frame"] if int(f) in truth("sip_ws")["sip"]["tshark_frames"]] == [
        27,
        35,
        358,
    ]


def test_sip_dialog_columns_match_tshark(realcaps) -> None:
    path = realcaps / "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap"
    s = rtcforensics.load(path, progress=False).signalling
    sip = s[s["transport"] == "sip"].set_index("frame")
    ref = _tshark(
        path,
        "-Y",
        "sip",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-e",
        "frame.number",
        "-e",
        "sip.CSeq.seq",
        "-e",
        "sip.CSeq.method",
        "-e",
        "sip.from.tag",
        "-e",
        "sip.to.tag",
        "-e",
        "sip.Via",
    )
    assert len(ref) == len(sip)
    for fr, seq, meth, ftag, ttag, via in ref:
        r = sip.loc[int(fr)]
        assert (r["sip_cseq_num"], r["sip_cseq_method"]) == (int(seq), meth)
        assert (r["sip_from_tag"] or "", r["sip_to_tag"] if r["sip_to_tag"] is not pd.NA else "") == (
            ftag,
            ttag,
        )
        assert r["sip_via_count"] == len(via.split("|"))
        # UDP: the request's sender is the client
        sender = f"{r['src']}:{r['sport']}"
        assert (r["client_endpoint"] == sender) == (r["direction"] == "request")


def test_sdp_answers_name_their_offer(realcaps) -> None:
    # every SIP answer names the request of the same transaction (Call-ID, CSeq), never just the previous SDP
    for name in ("sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap", "sipcapture_heplify/sip_ipv6_udp.pcap"):
        s = rtcforensics.load(realcaps / name, progress=False).signalling.set_index("frame")
        answers = s[s["answers_frame"].notna()]
        assert len(answers), name
        for _fr, r in answers.iterrows():
            offer = s.loc[int(r["answers_frame"])]
            assert offer["direction"] == "request" and offer["body_kind"] == "sdp"
            assert (offer["sip_call_id"], offer["sip_cseq_num"], offer["sip_from_tag"]) == (
                r["sip_call_id"],
                r["sip_cseq_num"],
                r["sip_from_tag"],
            )
            assert r["status"] >= 180 and r["body_kind"] == "sdp"


def test_offer_answer_paired_across_407_and_reinvites(sample, truth) -> None:
    # sip_gateway: Kamailio challenges the first INVITE with 407; the retry (CSeq 2) and the hold/resume
    # re-INVITEs (CSeq 3, 4) are answered by 200s with SDP, on the WebSocket leg and on the UDP leg to baresip.
    # Every answer names the INVITE of its own CSeq on its own leg, as Kamailio logged them (truth).
    t = truth("sip_gateway")["sip"]["kamailio"]
    s = _load(sample, "sip_gateway").signalling.set_index("frame")

    def ep(r) -> str:
        return f"{r['src']}:{r['sport']}"

    want = {
        (e["src"], e["dst"], int(e["cseq"].split()[0]))
        for e in t
        if e["start"].startswith("SIP/2.0 200") and "sdp" in e
    }
    got = set()
    for _fr, r in s[s["answers_frame"].notna()].iterrows():
        offer = s.loc[int(r["answers_frame"])]
        assert offer["method"] == "INVITE" and offer["sip_cseq_num"] == r["sip_cseq_num"]
        assert {ep(offer), f"{offer['dst']}:{offer['dport']}"} == {
            ep(r),
            f"{r['dst']}:{r['dport']}",
        }  # same leg
        got.add((ep(r), f"{r['dst']}:{r['dport']}", int(r["sip_cseq_num"])))
    assert want <= got
    challenged = {int(e["cseq"].split()[0]) for e in t if e["start"].startswith("SIP/2.0 407")}
    assert challenged == {1}
    answered = {int(s.loc[int(f), "sip_cseq_num"]) for f in s["answers_frame"].dropna()}
    assert not (answered & challenged)
    # nginx terminated wss:// and forwarded in clear to Kamailio: the back-end leg says so
    leg = s[(s["transport"] == "websocket") & (s["server_endpoint"] == "10.0.0.20:8080")]
    assert len(leg) and set(leg["x_forwarded_proto"]) == {"https"}
    assert set(leg["client_endpoint"]) == {
        next(e["src"] for e in t if e["proto"] == "ws" and e["dir"] == "recv")
    }


def _oversized_ws_capture(tmp_path: Path) -> Path:
    """fuzz.hostile's row: the MITM call's offer over WebSocket padded past tshark's 256 KiB text-field limit."""
    from fuzz.hostile import GENERATORS

    return GENERATORS["ws_oversized_message"](tmp_path, 1).path


def test_websocket_text_over_tshark_limit_is_read_whole(tmp_path) -> None:
    # issue 19 item 4: tshark 4.0 cuts websocket.payload.text at 262,144 bytes; the message is read whole from
    # its masked payload bytes, so the offer inside it (and its fingerprint) is not lost
    path = _oversized_ws_capture(tmp_path)
    (row,) = _tshark(
        path,
        "-Y",
        "websocket.payload_length_ext_64 > 262144",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "websocket.payload_length_ext_64",
    )
    frame, length = int(row[0]), int(row[1])
    cap = rtcforensics.load(path, progress=False)
    s = cap.signalling.set_index("frame")
    assert s.loc[frame, "body_len"] == length > 262_144 and s.loc[frame, "body_kind"] == "sdp"
    a = cap.dissection.anomalies.frame()
    assert not {"json_invalid", "websocket_text_limit"} & set(a["name"])
    offers = cap.sdp[cap.sdp["frame"] == frame]
    assert len(offers) == 1
    # the same offer as in the unpadded sample (its fingerprint lies past the first 256 KiB now)
    from samples import sample_path

    base = rtcforensics.load(sample_path("fingerprint_rewrite"), progress=False).sdp
    fp = offers["fingerprint_sha256"].iloc[0]
    assert isinstance(fp, str) and fp in set(base["fingerprint_sha256"])


def test_websocket_text_over_limit_not_readable_is_reported(tmp_path) -> None:
    # without the whole bytes (as for a compressed or unmasked message) the cut is an anomaly the report shows
    # (layer tshark, a *_limit name: the run is incomplete), not a silent json_invalid
    from rtcforensics.dissect.control import build_messages
    from rtcforensics.tables.signalling import _report, export_control_plane

    cap = rtcforensics.load(_oversized_ws_capture(tmp_path), progress=False)
    build_messages(export_control_plane(cap), {}, _report(cap), None, {})
    a = cap.dissection.anomalies.frame()
    rows = a[a["name"] == "websocket_text_limit"]
    assert len(rows) == 1 and rows["layer"].iloc[0] == "tshark" and "262,144" in rows["detail"].iloc[0]
