"""The streaming load (dissect.stream) against the in-memory load, on real sample captures.

Small chunks (50 packets) force many chunks on a capture of a few hundred packets, so flows, TCP
directions, TURN channels and RTP streams all cross chunk boundaries."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from samples import sample_path

import rtcforensics
from rtcforensics.case.ingestion import IngestOptions, IngestResult, ingest, ingest_stdin, writing
from rtcforensics.case.store import CaseStore, findings_from_arrow, from_arrow
from rtcforensics.checks.analyze import Coverage, incomplete_reasons
from rtcforensics.dissect.fastpath import dissect
from rtcforensics.dissect.pcapio import CaptureReader
from rtcforensics.dissect.stream import StreamResult, read_datagrams, stream

# call_with_noise: QUIC-like noise whose first bytes look like RTP (rejected by corroboration);
# turn_relay_longterm: ChannelData and Send/Data indications; sip_ws: TCP (SIP over WebSocket);
# ipv6_eui64: IPv6.
CAPTURES = ("call_with_noise", "turn_relay_longterm", "sip_ws", "ipv6_eui64")
CHUNK = 50


def _frame(out: Path, name: str) -> pd.DataFrame:
    return from_arrow(pq.read_table(out / name / "part.parquet"), name)


@pytest.fixture(scope="module")
def loaded() -> Callable[[str], rtcforensics.Capture]:
    caps: dict[str, rtcforensics.Capture] = {}

    def get(name: str) -> rtcforensics.Capture:
        if name not in caps:
            caps[name] = rtcforensics.load(sample_path(name), progress=False)
        return caps[name]

    return get


@pytest.mark.parametrize("name", CAPTURES)
def test_streamed_frames_equal_in_memory(
    name: str, loaded: Callable[[str], rtcforensics.Capture], tmp_path: Path
) -> None:
    cap = loaded(name)
    r = stream(sample_path(name), tmp_path, chunk_packets=CHUNK)
    n = len(cap.packets)
    assert r.info["chunks"] == -(-n // CHUNK) > 4
    assert r.info["packets"] == n and r.info["sha256"] == cap.info["sha256"]
    pd.testing.assert_frame_equal(_frame(tmp_path, "packets"), cap.packets)
    pd.testing.assert_frame_equal(_frame(tmp_path, "rtp"), cap.rtp)
    flows = _frame(tmp_path, "flows").sort_values("flow_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(flows, cap.flows)
    # the parsed-later datagrams are the in-memory ones, in capture order per kind
    d = cap.dissection
    back = read_datagrams(pq.read_table(tmp_path / "datagrams" / "part.parquet"))
    for kind in ("stun", "dtls", "rtcp", "zrtp"):
        mine = getattr(d, kind)
        assert [(g.frame, g.flow_id, g.data, g.via_turn) for g in back[kind]] == [
            (g.frame, g.flow_id, g.data, g.via_turn) for g in mine
        ], kind
    # anomalies: the same (layer, name, flow) rows (RTP corroboration counts per chunk, so details may split)
    key = ["layer", "name", "flow_id"]
    a = _frame(tmp_path, "anomalies")[key].drop_duplicates().sort_values(key).reset_index(drop=True)
    b = d.anomalies.frame()[key].drop_duplicates().sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_noise_is_still_rejected_across_chunks(tmp_path: Path) -> None:
    """The noise flow of call_with_noise is rejected as RTP chunk by chunk, as in memory; the call's streams
    that cross chunk boundaries are kept (the RTP rows equal, test above)."""
    d = dissect(sample_path("call_with_noise"), progress=False)
    stream(sample_path("call_with_noise"), tmp_path, chunk_packets=CHUNK)
    an = _frame(tmp_path, "anomalies")
    mem = {r["flow_id"] for r in d.anomalies.rows if r["name"] == "rtp_uncorroborated"}
    assert mem  # the capture's noise flow(s)
    assert set(an.loc[an["name"] == "rtp_uncorroborated", "flow_id"]) == mem


def test_idle_flows_are_closed_and_reopened(
    tmp_path: Path, loaded: Callable[[str], rtcforensics.Capture]
) -> None:
    """With a 1 s idle timeout, flows that pause (consent checks, a quiet TURN allocation) are closed and come
    back as new flows: packets and RTP rows stay the same apart from flow ids, each new flow lies inside one
    in-memory flow, and the totals per in-memory flow add up."""
    name = "turn_relay_longterm"
    cap = loaded(name)
    r = stream(sample_path(name), tmp_path, chunk_packets=CHUNK, idle_timeout_s=1.0)
    p = _frame(tmp_path, "packets")
    want = cap.packets
    pd.testing.assert_frame_equal(p.drop(columns="flow_id"), want.drop(columns="flow_id"))
    pair = pd.DataFrame({"s": p["flow_id"], "m": want["flow_id"]}).dropna().drop_duplicates()
    assert pair["s"].is_unique  # a streamed flow never spans two in-memory flows
    flows = _frame(tmp_path, "flows")
    assert len(flows) == r.info["flows"] > len(cap.flows)  # some flows were closed idle and came back
    assert flows["flow_id"].is_unique
    tot = flows.merge(pair, left_on="flow_id", right_on="s").groupby("m")[["packets", "bytes"]].sum()
    mem = cap.flows.set_index("flow_id")[["packets", "bytes"]]
    pd.testing.assert_frame_equal(tot.sort_index(), mem.loc[tot.index], check_names=False, check_dtype=False)
    assert tot.index.tolist() == mem.index.tolist()
    rtp = _frame(tmp_path, "rtp")
    pd.testing.assert_frame_equal(rtp.drop(columns="flow_id"), cap.rtp.drop(columns="flow_id"))


def _pipe(data: bytes) -> tuple[object, threading.Thread]:
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as fh:
            fh.write(data)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return os.fdopen(r, "rb"), t


@pytest.mark.parametrize("compress", [False, True])
def test_reads_a_pipe(compress: bool, tmp_path: Path, loaded: Callable[[str], rtcforensics.Capture]) -> None:
    """A non-seekable stream (pcapng, gzip too) gives the same frames and the sha256 of the bytes sent."""
    import hashlib

    name = "nat_call"
    raw = sample_path(name).read_bytes()
    data = gzip.compress(raw) if compress else raw
    fh, t = _pipe(data)
    with fh:
        r: StreamResult = stream(fh, tmp_path, chunk_packets=100)  # type: ignore[arg-type]
    t.join()
    assert r.info["sha256"] == hashlib.sha256(data).hexdigest()
    assert r.info["compressed"] is compress and r.info["size"] == 0
    pd.testing.assert_frame_equal(_frame(tmp_path, "packets"), loaded(name).packets)


def test_max_packets() -> None:
    path = sample_path("clean_call")
    n = sum(len(b) for b in CaptureReader(path).batches())
    d = dissect(path, progress=False, max_packets=100)
    assert d.records == 100 and len(d.columns["ts_ns"]) == 100 and d.info["truncated"]
    assert [r["name"] for r in d.anomalies.rows].count("packet_limit") == 1
    whole = dissect(path, progress=False, max_packets=n)  # exactly the capture's records: not truncated
    assert whole.records == n and not whole.info["truncated"]
    assert np.array_equal(whole.columns["ts_ns"][:100], d.columns["ts_ns"])


# -- the case store: standard input and streamed ingest ---------------------------------------------------


def _case_part(case: Path, table: str, cid: str) -> pa.Table:
    base = case / ("frames/" + table if table not in ("findings", "coverage") else table)
    return pq.read_table(base / f"capture={cid}" / "part.parquet")


def _manifest(case: Path) -> list[dict]:
    return CaseStore(case).manifest_rows()


@pytest.mark.slow
def test_stdin_ingest_equals_file_ingest(tmp_path: Path) -> None:
    """`cat FILE | python -m rtcforensics.case ingest - --case DIR` stores the same frames and findings as
    ingesting FILE (a capture below the streaming threshold is spooled and analysed in memory)."""
    path = sample_path("turn_open_relay")
    by_file, by_pipe = tmp_path / "file", tmp_path / "pipe"
    ingest([path], by_file)
    with path.open("rb") as fh:
        done = subprocess.run(
            [sys.executable, "-m", "rtcforensics.case", "ingest", "-", "--case", str(by_pipe)],
            stdin=fh,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stderr
    (a,), (b,) = _manifest(by_file), _manifest(by_pipe)
    assert a["sha256"] == b["sha256"] and b["path"] == "-" and b["packets"] == a["packets"] == 42
    assert b["findings"] == a["findings"] > 0
    cid = a["capture"]
    for table in ("packets", "flows", "rtp", "stun"):
        assert _case_part(by_pipe, table, cid).equals(_case_part(by_file, table, cid)), table
    fa = findings_from_arrow(_case_part(by_file, "findings", cid))
    fb = findings_from_arrow(_case_part(by_pipe, "findings", cid))
    pd.testing.assert_frame_equal(fa, fb)


def test_streamed_ingest(tmp_path: Path, loaded: Callable[[str], rtcforensics.Capture]) -> None:
    """Above the threshold a capture (a file, or standard input) is streamed: its frames equal the in-memory
    ones, the checks that need signalling or per-packet frames are recorded as not run with the reason, and
    the manifest says streamed / incomplete."""
    name = "sip_ws"
    path = sample_path(name)
    case = tmp_path / "case"
    res = ingest([path], case, stream_above=10_000, chunk_packets=CHUNK)
    (row,) = res.rows
    assert row["status"] == "ok" and row["streamed"] and row["packets"] == 400
    assert "checks not run" in row["incomplete"] and row["sha256"] == loaded(name).info["sha256"]
    cid = row["capture"]
    pd.testing.assert_frame_equal(
        from_arrow(_case_part(case, "packets", cid), "packets"), loaded(name).packets
    )
    pd.testing.assert_frame_equal(from_arrow(_case_part(case, "stun", cid), "stun"), loaded(name).stun)
    cov = _case_part(case, "coverage", cid).to_pandas().set_index("id")
    not_run = cov.loc[sorted(NOT_RUN)]  # the checks needing signalling or per-packet frames (below)
    assert (not_run["status"] == "not observable").all() and not_run["reason"].str.contains("streamed").all()
    assert "TURN001" not in row["incomplete"]  # run (sip_ws has no TURN: not observable for that reason)
    assert incomplete_reasons([Coverage(id=i, **c) for i, c in cov.to_dict("index").items()])  # incomplete
    # the same capture on standard input, streamed: already in the case (same sha256) → skipped
    store, result = CaseStore(case), IngestResult(case)
    with writing(store), path.open("rb") as fh:
        ingest_stdin(store, result, IngestOptions(stream_above=10_000, chunk_packets=CHUNK), source=fh)
    assert not result.rows and result.skipped[0][0] == "-"
    with writing(store), path.open("rb") as fh:
        opts = IngestOptions(stream_above=10_000, chunk_packets=CHUNK, force=True)
        ingest_stdin(store, result, opts, source=fh)
    (again,) = result.rows
    assert again["streamed"] and again["capture"] == cid and again["path"] == "-"
    assert _case_part(case, "packets", cid).num_rows == 400


# -- the checks of a streamed capture (case.streamed) -----------------------------------------------------
# weak_dtls: two DTLS 1.0 handshakes (openssl), weak suites and certificate; turn_internal_peer_refused and
# turn_relay_longterm: one TURN user ('rtcf-user') from different client hosts. (A streamed capture's dtls
# frame in the case checks: tests/test_case.py::test_certificate_reuse_is_seen_when_a_call_repeats.)
STREAMED = ("weak_dtls", "turn_internal_peer_refused", "turn_relay_longterm")
# the checks that need signalling (tshark) or per-packet frames, which a streamed capture has not in memory
# (SIG003 also reads STUN SOFTWARE tokens: it runs when there are some, not in these captures)
NOT_RUN = {"SIG001", "SIG002", "SIG003", "SDP001", "SDP002", "SDP003", "DTLS001", "SRTP003", "SRTP006"}
NOT_RUN |= {"ICE001", "ICE002", "ICE003", "ICE005"}
RUN = {"DTLS002", "DTLS003", "DTLS004", "DTLS005", "SRTP001", "SRTP002", "ICE004", "TURN001", "TURN002"}
RUN |= {"TURN003", "COMP001", "COMP002"}


@pytest.fixture(scope="module")
def streamed_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The STREAMED captures streamed into one case; capture ids by name."""
    d = tmp_path_factory.mktemp("streamed")
    res = ingest([sample_path(n) for n in STREAMED], d / "c", stream_above=1_000)
    assert [(r["status"], r["streamed"]) for r in res.rows] == [("ok", True)] * len(STREAMED)
    return d / "c", {r["name"].split(".")[0]: r["capture"] for r in res.rows}


def _key(f: Any) -> tuple[str, str, str, tuple[str, ...]]:
    return (f["id"], f["slug"], f["severity"], tuple(f["endpoints"]))


@pytest.mark.parametrize("name", ["weak_dtls", "turn_internal_peer_refused"])
def test_streamed_checks_equal_in_memory(name: str, streamed_case: tuple[Path, dict[str, str]]) -> None:
    """The checks a streamed capture runs (their frames, stun and dtls, are built from its datagrams by the
    builders load() uses) find what the in-memory analysis finds; the others are not observable, saying the
    capture was streamed and which frame is missing; the manifest names the checks not run."""
    from rtcforensics.case.ingestion import keylog_for

    case, ids = streamed_case
    cid = ids[name]
    path = sample_path(name)
    mem = rtcforensics.analyze(rtcforensics.load(path, keylog=keylog_for(path), progress=False))
    got = findings_from_arrow(_case_part(case, "findings", cid)).to_dict("records")
    cov = {c["id"]: c for c in _case_part(case, "coverage", cid).to_pylist()}
    ran = {i for i, c in cov.items() if "streamed" not in c["reason"] or c["status"] != "not observable"}
    assert ran >= RUN
    assert got and {f["id"] for f in got} <= RUN
    want = [f.to_dict() for f in mem.findings if f.id in RUN]
    assert sorted(map(_key, got)) == sorted(map(_key, want))
    for i in NOT_RUN:
        assert cov[i]["status"] == "not observable", i
        assert "not available: the capture was streamed" in cov[i]["reason"], cov[i]
    assert "no signalling" in cov["SDP001"]["reason"] and "packets frame" in cov["ICE005"]["reason"]
    (row,) = [r for r in _manifest(case) if r["capture"] == cid]
    assert row["findings"] == len(got) and "dtls" in row["frames"] and "stun" in row["frames"]
    assert "checks not run (SIG001" in row["incomplete"] and "ICE005" in row["incomplete"]


def test_streamed_captures_are_correlated(streamed_case: tuple[Path, dict[str, str]]) -> None:
    """The case checks see the stun frames of streamed captures: the TURN user shared by the clients of the
    two TURN captures."""
    from rtcforensics.case.correlate import run_case_checks

    case, _ = streamed_case
    findings, coverage = run_case_checks(rtcforensics.open_case(case))
    (shared,) = [f for f in findings if f.slug == "turn-credential-shared"]
    assert shared.evidence["username"] == "rtcf-user"
    assert shared.endpoints == ["192.0.2.10", "192.0.2.77", "198.51.100.20"]
    assert {c.slug: c.status for c in coverage}["dtls-certificate-reused"] == "clean"  # the dtls frames read


def test_fleet_report_of_streamed_captures_is_incomplete(streamed_case: tuple[Path, dict[str, str]]) -> None:
    """A fleet over streamed captures is not a complete run: each capture's manifest `incomplete` text (the
    checks it could not run) is one of the fleet's incomplete reasons."""
    from rtcforensics.case.correlate import fleet_report

    case, _ = streamed_case
    doc = fleet_report(rtcforensics.open_case(case))
    assert doc["run"]["complete"] is False
    reasons = doc["run"]["incomplete_reasons"]
    assert len(reasons) == len(STREAMED)
    assert all(": " in r and "checks not run (SIG001" in r for r in reasons), reasons
    assert [c["streamed"] for c in doc["captures"]] == [True] * len(STREAMED)


def test_streamed_datagrams_above_the_limit(tmp_path: Path) -> None:
    """More DTLS messages than ``max_datagrams``: the dtls frame is not built and the checks that need it are
    not run, with the reason in coverage and in the manifest; the stun frame (no STUN here) still is."""
    res = ingest([sample_path("weak_dtls")], tmp_path, stream_above=1_000, max_datagrams=3)
    (row,) = res.rows
    assert row["status"] == "ok" and row["findings"] == 0
    assert "dtls" not in row["frames"] and {"stun", "packets"} <= set(row["frames"])
    assert "dtls frame not built: its 30 DTLS messages exceed the limit of 3" in row["incomplete"]
    cov = _case_part(tmp_path, "coverage", row["capture"]).to_pandas().set_index("id")
    for i in ("DTLS002", "DTLS003", "DTLS004", "DTLS005"):
        assert cov.loc[i, "status"] == "not observable"
        assert "its 30 DTLS messages exceed the 3 held in memory" in cov.loc[i, "reason"], i
