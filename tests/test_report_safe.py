"""report/safe.py: the one place where capture-derived text is escaped, stripped and redacted. Inputs are
the hostile strings the hostile_strings sample carries (from its truth file) and the secrets the sample
truth files record."""

from __future__ import annotations

import pytest
from samples import load_truth

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
    assert for_markdown("1. not a list") == "1\\. not a list" and for_markdown("- no bullet").startswith("\\-")
    assert for_markdown("[x](javascript:alert(1))") == "\\[x\\]\\(javascript:alert\\(1\\)\\)"
    assert "```" not in for_markdown_code("```\nbreakout\n```").replace("`\u200b``", "")


def test_secrets_are_redacted_everywhere():
    sdes = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    turn = load_truth("turn_relay_longterm")["secrets"]["turn_password"]
    doc = {"evidence": {"crypto_keys_secret": [sdes], "turn_password": turn, "n": 3},
           "text": f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{sdes}\r\na=ice-pwd:{turn}",
           "url": f"wss://h/ws?room=1&token={turn}", "hdr": f"GET / HTTP/1.1\r\nCookie: sid={turn}\r\n",
           "json": f'{{"credential": "{turn}", "username": "1700000000:u"}}', "auth": f"Bearer {turn}"}
    out = str(redact(doc))
    assert sdes not in out and turn not in out
    r = redact(doc)
    assert r["evidence"]["crypto_keys_secret"] == REDACTED and r["evidence"]["n"] == 3
    assert "1700000000:u" in r["json"] and "room=1" in r["url"]  # usernames and plain fields stay
    assert redact(doc, show_secrets=True) is doc


def test_redact_frame_blanks_secret_columns():
    import pandas as pd

    sdes = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    df = pd.DataFrame({"crypto_keys_secret": [[sdes], None], "text": [f"inline:{sdes}", "x"]})
    out = redact_frame(df)
    assert out["crypto_keys_secret"].tolist() == [REDACTED, None]
    assert out["text"].tolist() == [f"inline:{REDACTED}", "x"]
    assert redact_frame(df, show_secrets=True)["crypto_keys_secret"][0] == [sdes]
