"""Data-channel reassembly limits (issue 19 item 3): SCTP fragments held beyond ``max_pending`` bytes are dropped,
and each hit is an ``sctp_reassembly_limit`` anomaly row of the `datachannels` frame's builder that makes the run
incomplete (reports say so at the top; export/summary exit 3), like every other limit.

The SCTP packets are the real ones decrypted from the datachannel_only sample (aiortc, keylog); the hostile
variant clears the E (ending fragment) flag of its user messages' DATA chunks, so that no message ever ends."""

from __future__ import annotations

import pytest

import rtcforensics
from rtcforensics.anomalies import AnomalyLog
from rtcforensics.checks import analyze
from rtcforensics.report.jsonout import document
from rtcforensics.tables import datachannels
from rtcforensics.tables.datachannels import messages_of
from rtcforensics.tables.dtls import tracker

PPID_DCEP = 50


def never_ending(sctp: bytes) -> bytes:
    """An SCTP packet with the E flag of every DATA chunk that is not DCEP cleared (RFC 9260 §3.3.1)."""
    b, pos = bytearray(sctp), 12
    while pos + 16 <= len(b):
        length = int.from_bytes(b[pos + 2 : pos + 4], "big")
        if b[pos] == 0 and int.from_bytes(b[pos + 12 : pos + 16], "big") != PPID_DCEP:
            b[pos + 1] &= ~1
        pos += (length + 3) & ~3
    return bytes(b)


def _load(sample, truth):
    t = truth("datachannel_only")
    path = sample("datachannel_only")
    kl = path.with_name(t["keylog"])
    if not kl.exists():
        pytest.skip("keylog not present")
    return t, rtcforensics.load(path, keylog=kl, progress=False)


def test_clean_call_lists_its_channel_and_is_complete(sample, truth):
    t, cap = _load(sample, truth)
    doc = document(analyze(cap))
    assert doc["run"]["complete"] is True
    want = [m for ch in t["datachannels"] for m in ch["messages"]]
    (dc,) = doc["overview"]["datachannels"]
    assert dc["label"] == "chat" == t["datachannels"][0]["label"]
    assert dc["messages"] == len(want) and dc["bytes"] == sum(len(m.encode()) for m in want)
    assert not [w for w in want if w in str(doc["overview"])]  # counts, never the messages


def test_reassembly_limit_is_an_anomaly_row_naming_frame_flow_and_hosts(sample, truth):
    _, cap = _load(sample, truth)
    (hs,) = tracker(cap).handshakes
    hs.app_data = [(f, ts, side, never_ending(p)) for f, ts, side, p in hs.app_data]
    log = AnomalyLog()
    rows = messages_of(hs, log, max_pending=40)
    assert {r["kind"] for r in rows} == {"dcep_open", "dcep_ack"}  # no text message ever completes
    hits = [r for r in log.rows if r["name"] == "sctp_reassembly_limit"]
    assert hits and all(r["flow_id"] == hs.flow_id and r["layer"] == "sctp" for r in hits)
    assert {r["frame"] for r in hits} <= {f for f, *_ in hs.app_data}
    ways = (f"{hs.client} -> {hs.server}: ", f"{hs.server} -> {hs.client}: ")
    assert all("(limit 40)" in r["detail"] and r["detail"].startswith(ways) for r in hits)


def test_a_limit_hit_while_reporting_makes_the_run_incomplete(sample, truth, monkeypatch, tmp_path):
    from rtcforensics.cli import cut_short
    from rtcforensics.report import table

    _, cap = _load(sample, truth)
    (hs,) = tracker(cap).handshakes
    hs.app_data = [(f, ts, side, never_ending(p)) for f, ts, side, p in hs.app_data]
    monkeypatch.setattr(datachannels, "MAX_PENDING_BYTES", 40)
    doc = document(analyze(cap))
    assert doc["run"]["complete"] is False
    assert any(r.startswith("sctp sctp_reassembly_limit: ") for r in doc["run"]["incomplete_reasons"])
    assert "INCOMPLETE RUN: sctp sctp_reassembly_limit" in table.render(doc)
    assert any("sctp_reassembly_limit" in r for r in cut_short(cap))  # export, summary, decrypt: exit 3
