"""report/safe.py: the one place where capture-derived text is escaped, stripped and redacted. Inputs are
the hostile strings the hostile_strings sample carries (from its truth file) and the secrets the sample
truth files record."""

from __future__ import annotations

import pandas as pd
import pytest
from samples import ROOT, load_truth

from rtcforensics.report.safe import (
    REDACTED,
    for_html,
    for_markdown,
    for_markdown_code,
    for_terminal,
    for_terminal_line,
    json_inert,
    redact,
    redact_frame,
)


@pytest.fixture(scope="module")
def hostile():
    return load_truth("hostile_strings")["hostile"]


def test_terminal_escapes_are_stripped(hostile):
    for s in hostile["strings"] + [hostile["session_name"], hostile["stun_software"]]:
        out = for_terminal(s)
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert for_terminal(hostile["foundations"]["answer"]) == "<script>alert(1)</script>"
    assert for_terminal_line("a\r\nb\tc") == "a b c"
    assert for_terminal("8-bit CSI \x9b2J and C1 \x85 gone") == "8-bit CSI  and C1  gone"


def test_json_inert_escapes_markup_and_parses_back_equal(hostile):
    import json

    doc = {"s": hostile["session_name"], "all": hostile["strings"], "amp": "a&b"}
    text = json_inert(doc, sort_keys=False)
    assert not {"<", ">", "&"} & set(text)
    assert "\\u003cscript\\u003e" in text and "\\u0026" in text
    assert json.loads(text) == doc


def test_html_is_inert(hostile):
    out = for_html(hostile["session_name"])
    assert "<" not in out and ">" not in out and '"' not in out and "\x1b" not in out
    assert out.startswith("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img")


def test_markdown_is_inert(hostile):
    out = for_markdown(hostile["user_agent"])
    assert "<" not in out and ">" not in out
    assert for_markdown("1. not a list") == "1\\. not a list" and for_markdown("- no bullet").startswith(
        "\\-"
    )
    assert for_markdown("[x](javascript:alert(1))") == "\\[x\\]\\(javascript:alert\\(1\\)\\)"
    assert "```" not in for_markdown_code("```\nbreakout\n```").replace("`\u200b``", "")


def test_secrets_are_redacted_everywhere():
    sdes = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    turn = load_truth("turn_relay_longterm")["secrets"]["turn_password"]
    doc = {
        "evidence": {"crypto_keys_secret": [sdes], "turn_password": turn, "n": 3},
        "text": f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{sdes}\r\na=ice-pwd:{turn}",
        "url": f"wss://h/ws?room=1&token={turn}",
        "hdr": f"GET / HTTP/1.1\r\nCookie: sid={turn}\r\n",
        "json": f'{{"credential": "{turn}", "username": "1700000000:u"}}',
        "auth": f"Bearer {turn}",
        "janus": {"apisecret": turn, "token": turn, "session_id": 8390578340211869},  # Janus API members
    }
    out = str(redact(doc))
    assert sdes not in out and turn not in out
    r = redact(doc)
    assert r["evidence"]["crypto_keys_secret"] == REDACTED and r["evidence"]["n"] == 3
    assert "1700000000:u" in r["json"] and "room=1" in r["url"]  # usernames and plain fields stay
    assert r["janus"] == {"apisecret": REDACTED, "token": REDACTED, "session_id": 8390578340211869}
    assert redact(doc, show_secrets=True) is doc


def test_redact_frame_blanks_secret_columns():
    import pandas as pd

    sdes = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    df = pd.DataFrame({"crypto_keys_secret": [[sdes], None], "text": [f"inline:{sdes}", "x"]})
    out = redact_frame(df)
    assert out["crypto_keys_secret"].tolist() == [REDACTED, None]
    assert out["text"].tolist() == [f"inline:{REDACTED}", "x"]
    assert redact_frame(df, show_secrets=True)["crypto_keys_secret"][0] == [sdes]


def _planted():
    """Secrets the lab's stacks really used (truth files), planted in the other places issue 19 names."""
    turn = load_truth("turn_relay_longterm")["secrets"]["turn_password"]
    sdes = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    return turn, sdes


@pytest.mark.parametrize(
    "template",
    [
        "GET /ws?room=1&access-token={s} HTTP/1.1",
        "https://bucket.s3.amazonaws.com/rec.webm?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={s}&X-Amz-Date=1",
        "https://bucket.s3.amazonaws.com/rec.webm?X-Amz-Credential={s}%2F20261126",
        "wss://sig.example/ws?sessionid={s}&user=bob",
        "wss://sig.example/ws#access_token={s}",
        "INVITE sip:bob:{s}@example.com SIP/2.0",
        "REGISTER sips:alice:{s}@example.com;transport=ws SIP/2.0",
        "wss://bob:{s}@sig.example/ws",
        "authorization: bearer {s}",
        "the client sent BEARER {s} to the gateway",
        "a=ice-pwd:{s}",
        '{{"candidate": "x", "icePwd": "{s}"}}',
        '{{\\"type\\": \\"answer\\", \\"ice-pwd\\": \\"{s}\\"}}',
        "ice_pwd={s}",
        "X-Auth-Token: {s}",
        "login failed, password: {s} (retry)",
        "token={s}",
    ],
)
def test_secrets_redacted_by_shape_and_context(template):
    for secret in _planted():
        text = template.format(s=secret)
        out = redact(text)
        assert secret not in out and REDACTED in out, (template, out)
        assert redact(text, show_secrets=True) == text


@pytest.mark.parametrize(
    "text",
    [
        "wss://sig.example/ws?room=1&user=bob",
        "sip:bob@example.com;transport=ws",
        "turn:203.0.113.50:3478?transport=udp",
        "basic information about the call",
        "the digest of the message",
        "DTLS001 dee5013abb537142d9fdd9fa99342ada9a85337f3644a93e6f766fb907601871",
        "a=ice-ufrag:hlsW",
        "token=<redacted:3fa2abcd>",
    ],
)
def test_facts_that_look_like_secrets_stay(text):
    assert redact(text) == text


def test_jwt_and_basic_credentials_by_shape():
    import base64

    turn, _ = _planted()
    basic = base64.b64encode(f"bob:{turn}".encode()).decode()
    assert turn not in redact(f"Proxy says Basic {basic} was sent")
    assert basic not in redact(f"Proxy says Basic {basic} was sent")
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(f'{{"sub":"{turn}"}}'.encode()).decode().rstrip("=")
    jwt = f"{head}.{body}.c2lnbmF0dXJl"
    assert jwt not in redact(f"welcome {jwt} ok") and redact(f"welcome {jwt} ok") == f"welcome {REDACTED} ok"


def test_keylog_contents_never_reach_an_output():
    from rtcforensics.report.safe import scrub_keylog

    line = next(
        ln
        for ln in (ROOT / "sample_captures" / "clean_call.keylog").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    )
    label, random, secret = line.split()
    for shown in (True, False):
        doc = {
            "anomalies": [
                {"detail": f"keylog line 3 has unknown label {label[:40]!r}"},
                {"detail": f"read: {label} {random} {secret}"},
            ]
        }
        out = str(scrub_keylog(redact(doc, show_secrets=shown)))
        assert secret not in out and random not in out and label not in out
    df = pd.DataFrame({"detail": [f"{label} {random} {secret}"]})
    assert secret not in str(redact_frame(df, show_secrets=True)["detail"][0])


def test_csv_cells_neutralised():
    from rtcforensics.report.safe import csv_cell, csv_frame

    ua = load_truth("hostile_strings")["hostile"]["user_agent"]
    for cell in (
        '=HYPERLINK("http://x","y")',
        "=cmd|' /C calc'!A0",
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\rx",
        f"={ua}",
    ):
        assert csv_cell(cell) == "'" + cell
    assert csv_cell("-5") == "-5" and csv_cell("1.5") == "1.5" and csv_cell(7) == 7 and csv_cell(ua) == ua
    df = csv_frame(pd.DataFrame({"user_agent": ["=1+2", "ok"], "n": [1, 2]}))
    assert df["user_agent"].tolist() == ["'=1+2", "ok"] and df["n"].tolist() == [1, 2]


def test_terminal_names_escaped_visibly():
    from rtcforensics.report.safe import for_terminal_name

    assert for_terminal_name("a\x1b]0;t\x07\u202egpj.pcap\n") == "a\\x1b]0;t\\x07\\u202egpj.pcap\\n"


def test_token_valued_software_redacted_names_kept():
    """A STUN SOFTWARE value seen in ogolosovskiy webrtc_opus_p2p (88-char base64) is a token; product names
    from the sample captures stay, in a structure, a frame column and a header line."""
    token = "GVWIkgfNVa//93woCSRK7qLXSJ4Iz14yyoGNhiJHrx/1TzeaMpjCwThlPdqI8L1sk1P0r4x9F2mOfVeWOSIy0w=="
    names = ["Coturn-4.6.1 'Gorst'", "Python/3.11 aiohttp/3.14.5"]
    assert redact({"software": token, "user_agent": names[1], "server": "203.0.113.10:8080"}) == {
        "software": REDACTED,
        "user_agent": names[1],
        "server": "203.0.113.10:8080",
    }
    df = pd.DataFrame({"software": [token, names[0], None]})
    assert redact_frame(df)["software"].tolist()[:2] == [REDACTED, names[0]]
    assert redact_frame(df, show_secrets=True)["software"].tolist()[:2] == [token, names[0]]
    assert redact(f"REGISTER sip:x SIP/2.0\r\nUser-Agent: {token}\r\nServer: {names[0]}\r\n") == (
        f"REGISTER sip:x SIP/2.0\r\nUser-Agent: {REDACTED}\r\nServer: {names[0]}\r\n"
    )
