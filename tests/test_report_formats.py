"""Every output format on every sample capture: JSON valid against its versioned schema, SARIF valid
against the official 2.1.0 schema, HTML self-contained, markdown and table inert, secrets redacted."""

from __future__ import annotations

import functools
import json
import re

import jsonschema
import pytest
from samples import ROOT, SAMPLES, load_truth, sample_names, sample_path

import rtcforensics
from rtcforensics.report import html, jsonout, markdown, sarif, table

SARIF_SCHEMA = ROOT.parent / "shared" / "schemas" / "sarif-2.1.0-rtm.5.json"
NAMES = sample_names()


@functools.cache
def analysed(name: str):
    t = load_truth(name)
    keylog = SAMPLES / t["keylog"] if t.get("keylog") and (SAMPLES / t["keylog"]).exists() else None
    cap = rtcforensics.load(sample_path(name), keylog=keylog)
    return cap, rtcforensics.analyze(cap)


def doc(name: str, show_secrets: bool = False):
    return jsonout.document(analysed(name)[1], show_secrets=show_secrets)


def secrets_of(name: str) -> list[str]:
    s = load_truth(name).get("secrets") or {}
    out = [x["inline"] for x in s.get("sdes", [])]
    out += [v for k, v in s.items() if isinstance(v, str)]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_json_is_valid_and_carries_every_finding(name):
    d = doc(name)
    jsonschema.validate(d, jsonout.SCHEMA)
    text = jsonout.render(d)
    back = json.loads(text)
    assert back["schema"] == "rtcforensics-report/1"
    assert [f["identity"] for f in back["findings"]] == [f.identity for f in analysed(name)[1].findings]
    assert len(back["coverage"]) == len(analysed(name)[1].coverage)


@pytest.mark.parametrize("name", NAMES)
def test_sarif_is_valid_against_the_official_schema(name):
    if not SARIF_SCHEMA.exists():
        pytest.skip("SARIF schema not present")
    log = json.loads(sarif.render(doc(name)))
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    run = log["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    findings = analysed(name)[1].findings
    assert len(run["results"]) == len(findings)
    for res, f in zip(run["results"], findings):
        assert rules[res["ruleIndex"]] == res["ruleId"] == f.id
        assert res["partialFingerprints"]["rtcforensicsIdentity/v1"] == f.identity
        if f.frames:
            assert res["locations"][0]["logicalLocations"][0]["name"] == f"frame {f.frames[0]}"
    assert run["artifacts"][0]["hashes"]["sha-256"] == analysed(name)[0].sha256()


@pytest.mark.parametrize("name", NAMES)
def test_html_is_one_self_contained_file(name):
    cap, _ = analysed(name)
    out = html.render(doc(name), [cap])
    assert out.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in out
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", out, re.IGNORECASE)  # nothing fetched
    assert "<script" not in out.lower() and "<link" not in out.lower()
    assert 'src="data:image/png;base64,' in out  # the topology figure, inline
    for f in analysed(name)[1].findings:
        assert html.h(f.slug) in out


@pytest.mark.parametrize("name", NAMES)
def test_markdown_and_table_list_every_finding(name):
    d = doc(name)
    md, tb = markdown.render(d), table.render(d)
    assert "\x1b" not in tb and "\x07" not in tb
    for f in d["findings"]:
        assert f["id"] in md and f["slug"] in tb
        assert f"frame.number in {{{' '.join(map(str, f['frames'][:12]))}}}" in tb if f["frames"] else True


@pytest.mark.parametrize("name", [n for n in NAMES if load_truth(n).get("secrets")])
def test_secrets_never_in_any_output_unless_asked(name):
    cap, _ = analysed(name)
    d = doc(name)
    outs = [jsonout.render(d), sarif.render(d), html.render(d, [cap]), markdown.render(d), table.render(d)]
    for s in secrets_of(name):
        assert not any(s in o for o in outs), s
    if load_truth(name)["secrets"].get("sdes"):  # the SDES key is in the capture: shown only when asked
        shown = jsonout.render(doc(name, show_secrets=True))
        assert any(s in shown for s in secrets_of(name))


def test_hostile_strings_render_inert_in_every_format():
    name = "hostile_strings"
    if name not in NAMES:
        pytest.skip("hostile_strings sample not present")
    hostile = load_truth(name)["hostile"]
    cap, _r = analysed(name)
    d = doc(name)
    raw = json.dumps(d)
    assert "<script>alert(1)</script>" in raw  # the hostile text did reach the findings (as data)
    h = html.render(d, [cap])
    md = markdown.render(d)
    tb = table.render(d) + table.render_overview(d)
    assert "<script" not in h.lower() and "<img src=x" not in h.lower()
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert "\x1b" not in tb and "\x07" not in tb
    assert "<script>alert(1)</script>" in tb  # visible as text in the terminal, but no escape sequence
    assert hostile["user_agent"].split(" ")[0] in tb


def test_damaged_capture_is_said_in_every_format(tmp_path, capsys):
    """A capture cut short inside a packet block: the capture-layer anomaly and ``capture.truncated`` reach
    the table, JSON, SARIF (a toolExecutionNotification), markdown and HTML; the whole file says nothing."""
    src = sample_path("sdes_plain_rtp")
    data = src.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) // 2])
    cap = rtcforensics.load(cut)
    d = jsonout.document(rtcforensics.analyze(cap))
    assert cap.info["truncated"] and d["capture"]["truncated"] is True
    jsonschema.validate(d, jsonout.SCHEMA)
    rows = [a for a in d["anomalies"] if a["layer"] == "capture"]
    assert [a["name"] for a in rows] == ["capture_truncated"] and d["summary"]["anomalies"]["capture"] == 1
    detail = rows[0]["detail"]
    assert detail.startswith("file ends inside the block after frame ")
    log = json.loads(sarif.render(d))
    if SARIF_SCHEMA.exists():
        jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    notes = [n["message"]["text"] for n in log["runs"][0]["invocations"][0]["toolExecutionNotifications"]]
    assert any("damaged or cut short" in n for n in notes) and any(detail in n for n in notes)
    back = json.loads(jsonout.render(d))  # JSON carries the facts the other formats put in words
    assert back["capture"]["truncated"] is True and detail in [a["detail"] for a in back["anomalies"]]
    for fmt, text in (
        ("table", table.render(d)),
        ("markdown", markdown.render(d)),
        ("html", html.render([d], [cap], {})),
    ):
        assert "damaged or cut short" in text and "capture_truncated" in text.replace("\\_", "_"), fmt
    # `rtcforensics summary` says it too (it renders no findings, only the overview)
    from rtcforensics.cli import main

    assert main(["summary", str(cut)]) == 0
    said = capsys.readouterr().out
    assert "WARNING   the capture file is damaged or cut short" in said and detail in said
    assert main(["summary", str(src)]) == 0 and "WARNING" not in capsys.readouterr().out
    whole = doc("sdes_plain_rtp")
    assert whole["capture"]["truncated"] is False and not jsonout.input_warnings(whole)
    assert "damaged" not in table.render(whole)
    assert not json.loads(sarif.render(whole))["runs"][0]["invocations"][0]["toolExecutionNotifications"]


def test_overview_parties_and_sfu_as_media_server_in_every_format():
    """sfu_conference: three browsers send their media to a Janus SFU (203.0.113.30); the overview names it
    the media server and says the media is hop by hop (readable there), in every format."""
    d = doc("sfu_conference")
    ov = d["overview"]
    assert [m["host"] for m in ov["media_servers"]] == ["203.0.113.30"]
    assert "not end-to-end" in ov["media_servers"][0]["encryption"]
    assert {leg["media_server"] for leg in ov["legs"]} == {"203.0.113.30"}
    # signalling parties from values.parties: client address (no ephemeral port) -> listening server
    assert {(s["client"], s["server"]) for s in ov["signalling"]} == {
        (c, srv)
        for c in ("192.0.2.11", "192.0.2.13", "198.51.100.12")
        for srv in ("203.0.113.10:8080", "203.0.113.30:8188")
    }
    tb, md, ht = table.render(d), markdown.render(d), html.render(d)
    assert "media server  203.0.113.30  SFU / media server" in tb and "to SFU 203.0.113.30 (hop by hop)" in tb
    assert "## Media servers" in md and "not end-to-end" in md
    assert "<h2>Media servers</h2>" in ht and "not end-to-end" in ht


def test_unread_turn_tls_leg_is_not_examined_in_every_format_and_not_signalling():
    """turn_tls_relay: 192.0.2.10 reaches its TURN server 203.0.113.50:5349 over TLS the keylog does not open."""
    d = doc("turn_tls_relay")
    jsonschema.validate(d, jsonout.SCHEMA)
    ov = d["overview"]
    turn = [o for o in ov["opaque_legs"] if o["turn"]]
    assert [(o["client"], o["server"]) for o in turn] == [("192.0.2.10:38730", "203.0.113.50:5349")]
    assert "203.0.113.50:5349" in " ".join(analysed("turn_tls_relay")[1].opaque_legs)
    assert all(s["server"] != "203.0.113.50:5349" for s in ov["signalling"])
    tb, md, ht = table.render(d), markdown.render(d), html.render(d)
    assert "not examined (could not see into)\n" in tb
    assert "## Not examined (could not see into)" in md
    assert "<h2>Not examined (could not see into)</h2>" in ht
    for text in (tb, ht):
        assert (
            "192.0.2.10:38730 &lt;-&gt; 203.0.113.50:5349" in text
            or "192.0.2.10:38730 <-> 203.0.113.50:5349" in text
        )
    notes = json.loads(sarif.render(d))["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert any(
        "not examined" in n["message"]["text"] and "203.0.113.50:5349" in n["message"]["text"] for n in notes
    )
    assert all(o["server"] != "203.0.113.30:8188" for o in doc("sfu_conference")["overview"]["opaque_legs"])
