"""SIP text (dissect/sip.py) on messages sent by the sip_ws sample's real SIP stack."""

from __future__ import annotations

import pytest

from rtcforensics.dissect.http import multipart_parts
from rtcforensics.dissect.sip import parse_sip


def test_sip_parser_multipart_and_errors(sample) -> None:
    # SIP messages as sent by the sip_ws sample's UAC, then wrapped the way RFC 5621 multipart bodies are
    from rtcforensics.dissect.tshark import export_raw

    raw = export_raw(sample("sip_ws"), "sip", display_filter="websocket && sip")
    invite = next(v[0] for v in raw.values() if v[0].startswith(b"INVITE"))
    msgs = parse_sip(invite + invite)  # two coalesced on a stream
    assert [m.method for m in msgs] == ["INVITE", "INVITE"] and msgs[0].body.startswith(b"v=0")
    sdp = msgs[0].body
    mp = (
        b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp + b"\r\n--b1\r\nContent-Type: "
        b"application/pidf+xml\r\n\r\n<presence/>\r\n--b1--\r\n"
    )
    parts = multipart_parts('multipart/mixed;boundary="b1"', mp)
    assert [p[0] for p in parts] == ["application/sdp", "application/pidf+xml"] and parts[0][1] == sdp
    from rtcforensics.errors import DecodeError

    with pytest.raises(DecodeError) as e:
        parse_sip(invite[:-10])
    assert e.value.name == "sip_truncated"
    assert [m.method for m in e.value.done] == ["INVITE"]  # the partial message is kept, body cut short
    with pytest.raises(DecodeError):
        parse_sip(b"GET / HTTP/1.1\r\n\r\n")
