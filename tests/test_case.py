"""The case store (rtcforensics/case): ingest, DuckDB queries, re-ingest, failures, interrupted ingests,
and the cross-capture checks, on a handful of small sample captures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from samples import ROOT, sample_path

import rtcforensics
from rtcforensics.case import open_case
from rtcforensics.case.ingestion import ingest, keylog_for
from rtcforensics.case.store import VOLATILE
from rtcforensics.report.safe import redact_frame
from rtcforensics.schema import SCHEMAS

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

# small captures that share facts: the TURN ones use one static credential ('rtcf-user') from different
# client hosts; ws_plaintext_private leaks RFC 1918 candidates; weak_dtls has two handshakes of one server
NAMES = [
    "turn_internal_peer_refused",
    "turn_relay_longterm",
    "turn_internal_peer_allowed",
    "weak_dtls",
    "ws_plaintext_private",
]


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("case") / "c"
    res = ingest([sample_path(n) for n in NAMES], d)
    assert [r["status"] for r in res.rows] == ["ok"] * len(NAMES)
    return d


@pytest.fixture(scope="module")
def caps() -> dict[str, Any]:
    """The same captures loaded directly (frames cached on each), to compare with the store."""
    out = {}
    for n in NAMES:
        p = sample_path(n)
        out[n] = rtcforensics.load(p, keylog=keylog_for(p))
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _cid(case: Any, name: str) -> str:
    m = case.sql("select capture from manifest where name = ?", [f"{name}.pcapng"])
    assert len(m) == 1
    return str(m["capture"].iloc[0])


def test_ingest_equals_per_capture_analyze(case_dir: Path, caps: dict[str, Any]) -> None:
    case = open_case(case_dir)
    for name in NAMES:
        rep = rtcforensics.analyze(caps[name])
        want = sorted((f.slug, f.severity, tuple(f.frames), f.identity) for f in rep.findings)
        got = case.frame("findings", where=f"capture = '{_cid(case, name)}'")
        assert sorted((r.slug, r.severity, tuple(r.frames), r.identity) for r in got.itertuples()) == want
        assert len(want) > 0  # every one of these captures has findings
    # the SQL of the "must show"
    by_slug = case.sql("select slug, count(*) as n from findings group by 1 order by 1")
    assert dict(zip(by_slug["slug"], by_slug["n"]))["turn-internal-peer"] == 2  # allowed + refused


def test_manifest_rows(case_dir: Path, caps: dict[str, Any]) -> None:
    case = open_case(case_dir)
    m = case.manifest().set_index("name")
    for name in NAMES:
        p = sample_path(name)
        r = m.loc[f"{name}.pcapng"]
        assert r["status"] == "ok" and pd.isna(r["error"])
        assert r["size"] == p.stat().st_size
        assert r["sha256"].startswith(r["capture"]) and len(r["sha256"]) == 64
        assert r["tool_version"] == rtcforensics.__version__
        assert (r["keylog"] is not None and not pd.isna(r["keylog"])) == (keylog_for(p) is not None)
        cap = caps[name]
        assert r["packets"] == len(cap.packets)
        assert r["first_ts"] == cap.packets["ts"].min() and r["last_ts"] == cap.packets["ts"].max()
    # counts in the frames agree with the manifest, capture by capture (no duplicate partitions)
    n = case.sql(
        "select m.name, m.packets, count(p.frame) as rows from manifest m join packets p using (capture) "
        "group by 1, 2"
    )
    assert (n["packets"] == n["rows"]).all() and len(n) == len(NAMES)


@pytest.mark.parametrize(
    "frame", ["packets", "flows", "stun", "dtls", "sdp", "candidates", "sessions", "signalling", "anomalies"]
)
def test_frames_round_trip(case_dir: Path, caps: dict[str, Any], frame: str) -> None:
    """Each capture's frame from the store equals the frame `load` builds (redacted as stored): declared
    dtypes (nullable ints, categoricals, UTC ns timestamps) and lists/dicts, across captures of mixed content."""
    case = open_case(case_dir)
    whole = case.frame(frame)
    declared = SCHEMAS[frame].empty()
    for c in SCHEMAS[frame].columns:  # one frame over all captures keeps the declared dtypes
        assert whole[c.name].dtype == declared[c.name].dtype, c.name
    rows = 0
    for name in NAMES:
        want = SCHEMAS[frame].conform(redact_frame(caps[name].get_frame(frame)))
        got = whole[whole["capture"] == _cid(case, name)].drop(columns="capture").reset_index(drop=True)
        if frame == "anomalies":  # the store adds analyze's own rows (check failures) after the capture's
            got = got.iloc[: len(want)]
        for c in SCHEMAS[frame].columns:
            if c.dtype == "object":  # tuples come back as lists (JSON)
                want[c.name] = pd.Series([_norm(v) for v in want[c.name]], dtype=object)
        pd.testing.assert_frame_equal(got, want, check_dtype=True)
        rows += len(want)
    assert rows == len(whole) or frame == "anomalies"


def test_object_and_categorical_columns_in_sql(case_dir: Path) -> None:
    case = open_case(case_dir)
    # dtls.versions_offered (a list) is JSON; weak_dtls offered DTLS 1.0 in one handshake, 1.2 in the other
    df = case.sql(
        "select d.version, d.versions_offered->>0 as first_offered, d.cipher_suite from dtls d "
        "join manifest m using (capture) where m.name = 'weak_dtls.pcapng' order by d.first_frame"
    )
    assert list(df["version"]) == ["DTLS 1.0", "DTLS 1.2"]
    assert set(df["cipher_suite"]) == {"TLS_RSA_WITH_AES_128_CBC_SHA"}
    # findings.frames is a real list in SQL
    n = case.sql(
        "select count(*) as n from findings where list_contains(frames, 9) and slug = 'dtls-weak-version'"
    )
    assert int(n["n"].iloc[0]) == 1
    stun = case.frame("stun")
    assert list(stun["transport"].cat.categories) == ["udp", "tcp"]


def test_reingest_is_a_noop(case_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in case_dir.rglob("*.parquet")}
    res = ingest([sample_path(n) for n in NAMES], case_dir)
    assert res.rows == [] and len(res.skipped) == len(NAMES)
    assert {p: p.stat().st_mtime_ns for p in case_dir.rglob("*.parquet")} == before


def test_corrupt_and_truncated_captures_are_recorded(tmp_path: Path) -> None:
    good = sample_path("turn_open_relay")
    bad = tmp_path / "bad_magic.pcapng"
    bad.write_bytes(b"XXXX" + good.read_bytes()[4:])  # a good capture with its magic mutated
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(sample_path("fingerprint_rewrite").read_bytes()[:9000])  # cut in the middle of a block
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtcforensics.case",
            "ingest",
            str(bad),
            str(cut),
            str(good),
            "--case",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 3, out.stderr  # incomplete: one capture failed
    assert "Traceback" not in out.stderr
    case = open_case(tmp_path / "c")
    m = case.manifest().set_index("name")
    assert m.loc["bad_magic.pcapng", "status"] == "failed"
    assert (
        str(bad) in m.loc["bad_magic.pcapng", "error"]
        and "not a pcap or pcapng" in m.loc["bad_magic.pcapng", "error"]
    )
    assert m.loc["cut.pcapng", "status"] == "ok" and m.loc["cut.pcapng", "truncated"]
    assert m.loc["turn_open_relay.pcapng", "status"] == "ok"
    assert set(
        case.sql(
            "select distinct slug from findings where capture = ?",
            [m.loc["turn_open_relay.pcapng", "capture"]],
        )["slug"]
    ) >= {"turn-open-relay"}
    # the failed capture has no partition at all
    assert (
        case.sql(
            "select count(*) as n from packets where capture = ?", [m.loc["bad_magic.pcapng", "capture"]]
        )["n"].iloc[0]
        == 0
    )
    # re-ingest skips the failed one too, unless asked to retry
    again = ingest([bad, cut, good], tmp_path / "c")
    assert again.rows == [] and len(again.skipped) == 3
    retry = ingest([bad], tmp_path / "c", retry_failed=True)
    assert [r["status"] for r in retry.rows] == ["failed"]
    assert len(open_case(tmp_path / "c").manifest()) == 3


def test_killed_ingest_resumes_without_duplicates(tmp_path: Path) -> None:
    """SIGKILL the ingest after its first capture is in; the partial work stays invisible; the next ingest
    cleans it and finishes, each capture exactly once."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ["turn_open_relay", "turn_internal_peer_refused", "weak_dtls", "srtp_null"]
    for n in names:
        shutil.copy(sample_path(n), inputs / f"{n}.pcapng")
    case = tmp_path / "c"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtcforensics.case", "ingest", str(inputs), "--case", str(case)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list((case / "manifest").glob("*.parquet")):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = len(list((case / "manifest").glob("*.parquet")))
    assert 1 <= done < len(names)
    with open_case(case) as c:  # what the killed ingest left is not visible
        assert set(c.sql("select distinct capture from packets")["capture"]) <= set(c.captures())
    res = ingest([inputs], case)
    assert len(res.rows) == len(names) - done and len(res.skipped) == done
    with open_case(case) as c:
        m = c.manifest()
        assert sorted(m["name"]) == sorted(f"{n}.pcapng" for n in names) and (m["status"] == "ok").all()
        n = c.sql(
            "select m.name, m.packets, count(p.frame) as rows, count(distinct p.frame) as frames "
            "from manifest m join packets p using (capture) group by 1, 2"
        )
        assert (n["packets"] == n["rows"]).all() and (n["rows"] == n["frames"]).all() and len(n) == len(names)
    assert not list((case / ".tmp").iterdir())


def test_query_cli(case_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The query command in process (``python -m rtcforensics.case`` is run as a process by the ingest tests):
    JSON rows equal to the SQL's, and a user's mistake is one line on stderr with exit code 2."""
    from rtcforensics.case.cli import main

    sql = "select slug, count(*) as n from findings group by 1 order by 1"
    capsys.readouterr()
    assert main(["query", str(case_dir), sql, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    want = open_case(case_dir).sql(sql)
    assert rows == [{"slug": s, "n": int(n)} for s, n in zip(want["slug"], want["n"])]
    assert main(["query", str(case_dir), "select * from nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err and "Traceback" not in err
    assert main(["query", str(ROOT / "docs"), "select 1"]) == 2
    assert "not a case directory" in capsys.readouterr().err


def test_case_checks_on_samples(case_dir: Path) -> None:
    from rtcforensics.case.correlate import fleet_report, run_case_checks

    case = open_case(case_dir)
    findings, coverage = run_case_checks(case)
    status = {c.slug: c.status for c in coverage}
    # 'rtcf-user' (coturn lt-cred-mech static user) authenticates TURN requests from 192.0.2.77
    # (turn_internal_peer_refused) and from both peers of turn_relay_longterm (192.0.2.10, 198.51.100.20)
    shared = [f for f in findings if f.slug == "turn-credential-shared"]
    assert len(shared) == 1
    assert shared[0].evidence["username"] == "rtcf-user"
    assert shared[0].endpoints == ["192.0.2.10", "192.0.2.77", "198.51.100.20"]
    assert sorted(shared[0].evidence["captures"]) == [
        "turn_internal_peer_refused.pcapng",
        "turn_relay_longterm.pcapng",
    ]
    # the REST credential of turn_internal_peer_allowed comes from one client only, and is used ten years
    # before its expiry (2036): neither shared nor expired
    assert status["turn-credential-expired-use"] == "clean"
    # no two of these captures share a DTLS certificate, and the relayed handshakes of turn_relay_longterm
    # (the relay's address on the wire beside the peer's) do not count as a second host
    assert status["dtls-certificate-reused"] == "clean"
    # ws_plaintext_private's 10.20.0.x are private candidates AND media sources, but in the same capture only
    assert status["private-address-media-elsewhere"] == "clean"
    doc = fleet_report(case)
    assert doc["case"]["ok"] == len(NAMES) and doc["run"]["complete"]
    assert [f["slug"] for f in doc["case_findings"]] == ["turn-credential-shared"]
    assert sum(doc["summary"]["findings"].values()) == int(
        case.sql("select count(*) as n from findings")["n"][0]
    )


def test_certificate_reuse_is_seen_when_a_call_repeats(tmp_path: Path) -> None:
    """The same call ingested twice (the capture rewritten as pcap by editcap: another file, the same packets)
    presents each certificate in two captures: CASE003 says so, by capture, with the hosts that presented it.
    The original (10,756 bytes) is streamed, the copy (9,511 bytes) loaded in memory: the dtls frame of a
    streamed capture joins the case as any other."""
    from rtcforensics.case.correlate import run_case_checks

    if not shutil.which("editcap"):
        pytest.skip("editcap not installed")
    src = sample_path("weak_dtls")
    copy = tmp_path / "weak_dtls_copy.pcap"
    subprocess.run(["editcap", "-F", "pcap", str(src), str(copy)], check=True, timeout=60)
    res = ingest([src, copy], tmp_path / "c", stream_above=10_000)
    assert [bool(r.get("streamed")) for r in res.rows] == [True, False]
    findings, _ = run_case_checks(open_case(tmp_path / "c"))
    reused = sorted((f for f in findings if f.slug == "dtls-certificate-reused"), key=lambda f: f.endpoints)
    # weak_dtls: openssl s_client on 192.0.2.30 and s_server on 192.0.2.40, one certificate each, both handshakes
    assert [f.endpoints for f in reused] == [["192.0.2.30"], ["192.0.2.40"]]
    for f in reused:
        assert sorted(f.evidence["captures"]) == ["weak_dtls.pcapng", "weak_dtls_copy.pcap"]
        assert f.severity == "high" and f.confidence == "medium"  # two calls, one host each


def test_volatile_manifest_columns_are_declared() -> None:
    from rtcforensics.case.store import MANIFEST_SCHEMA

    assert set(VOLATILE) <= set(MANIFEST_SCHEMA.names)


# -- the registry's public API for other check families ------------------------------------------------------
def test_case_checks_use_the_public_registry() -> None:
    from rtcforensics.case.correlate import CASE_CHECKS
    from rtcforensics.checks import registry
    from rtcforensics.checks.analyze import _finding, _merge
    from rtcforensics.checks.registry import (
        Confidence,
        Hit,
        Severity,
        check,
        check_by_slug,
        make_finding,
        merge,
    )

    assert CASE_CHECKS is registry.CASE_REGISTRY
    assert not set(CASE_CHECKS) & set(registry.REGISTRY)  # analyze never runs a case check
    chk = check_by_slug("intermediary-unexpected")
    assert chk is not None and chk.id == "CASE005" and chk.scope == "case" and chk.family == "CASE"
    assert check_by_slug("TURN-OPEN-RELAY") is registry.REGISTRY["TURN001"]

    def register(cid: str, slug: str, scope: str) -> None:
        def fn(ctx: Any) -> list[Hit]:
            """What it flags: x.
            Why it matters: x.
            Evidence: x.
            False positives: x.
            References: x."""
            return []

        check(id=cid, slug=slug, title="t", severity=Severity.LOW, confidence=Confidence.LOW, scope=scope)(fn)

    for cid, slug, scope, refused in [
        ("CASE999", "turn-open-relay", "case", "duplicate slug 'turn-open-relay'"),  # unique across scopes
        ("CASE001", "x-y-v", "case", "duplicate check ID 'CASE001'"),
        ("CASE998", "x-y-z", "capture", "malformed ID 'CASE998'"),  # a CASE ID is not a capture check
        ("SIG997", "x-y-w", "case", "malformed ID 'SIG997'"),
    ]:
        with pytest.raises(ValueError, match=refused):
            register(cid, slug, scope)
    assert not {"CASE999", "CASE998", "SIG997"} & (set(CASE_CHECKS) | set(registry.REGISTRY))
    # make_finding / merge are analyze's own: the same records for the same hits
    c = check_by_slug("dtls-weak-version")
    assert c is not None
    hits = [Hit("m1", endpoints=["192.0.2.30"], frames=[9]), Hit("m2", endpoints=["192.0.2.30"], frames=[3])]
    assert merge(make_finding(c, h) for h in hits) == _merge(_finding(c, h) for h in hits)
    assert [f.frames for f in merge(make_finding(c, h) for h in hits)] == [[3, 9]]


# -- CASE005: relays, SFUs and signalling servers where they should not be ----------------------------------
def _case005(findings: list[Any]) -> list[Any]:
    return [f for f in findings if f.slug == "intermediary-unexpected"]


def test_intermediary_declared_hosts(case_dir: Path) -> None:
    """With the expected intermediaries declared, a host outside them is named, with the capture, the role
    and how the packets establish it (ws_plaintext_private: the lab's signalling server on 10.20.0.1:8080)."""
    from rtcforensics.case.correlate import run_case_checks
    from rtcforensics.errors import RtcForensicsError

    case = open_case(case_dir)
    params = {
        "CASE005.turn_servers": "203.0.113.50",  # coturn of the three TURN captures
        "CASE005.signalling_servers": "203.0.113.0/24, 2001:db8::/32",  # turn_relay_longterm's 203.0.113.10
    }
    got = _case005(run_case_checks(case, params)[0])
    assert len(got) == 1
    f = got[0]
    assert f.endpoints == ["10.20.0.1"] and f.severity == "high" and f.confidence == "high"
    assert f.evidence["role"] == "signalling_server" and f.evidence["captures"] == [
        "ws_plaintext_private.pcapng"
    ]
    seen = f.evidence["seen_in"][0]
    assert seen["endpoints"] == ["10.20.0.1:8080"] and seen["clients"] == ["10.20.0.11", "10.20.0.12"]
    assert f.frames[0] == 25 and "signalling" in f.evidence["established_by"]
    assert f.evidence["expected"] == ["203.0.113.0/24", "2001:db8::/32"]
    # the TURN server is the declared one: nothing to say about it
    assert not [x for x in got if x.evidence["role"] == "turn_server"]
    with pytest.raises(RtcForensicsError, match="CASE005.turn_servers: 'turn.example' is not an IP"):
        run_case_checks(case, {"CASE005.turn_servers": "turn.example"})


def _shifted_copy(src: Path, out: Path, k: int) -> None:
    """``src`` rewritten by the scale benchmark's address shifter (real packets, IPv4 low 16 bits ^ k)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "benchmarks" / "bench_scale.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    linktype, recs = bench.records(src)
    bench.write_pcap(out, linktype, ((ts, bench.shift_addresses(linktype, d, k), o) for ts, d, o in recs))


@pytest.fixture(scope="module")
def shifted_case(case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The module's case (copied, not re-ingested) plus turn_internal_peer_refused with its addresses shifted
    (k=1: coturn 203.0.113.50 becomes 203.0.113.51), saved under a name with markup in it."""
    if not shutil.which("editcap"):
        pytest.skip("editcap not installed")
    d = tmp_path_factory.mktemp("shifted")
    case = d / "c"
    shutil.copytree(case_dir, case)
    name = "refused_<i>shifted.pcap"
    _shifted_copy(sample_path("turn_internal_peer_refused"), d / name, 1)
    res = ingest([d / name], case)
    assert [r["status"] for r in res.rows] == ["ok"]
    return case, name


def test_intermediary_outlier_names_the_other_relay(case_dir: Path, shifted_case: tuple[Path, str]) -> None:
    from rtcforensics.case.correlate import run_case_checks

    findings, coverage = run_case_checks(open_case(case_dir))
    assert not _case005(findings)  # three TURN captures, one coturn: too few to call anything an outlier
    assert {c.slug: c.status for c in coverage}["intermediary-unexpected"] == "clean"
    case, name = shifted_case
    got = _case005(run_case_checks(open_case(case))[0])
    assert len(got) == 1
    f = got[0]
    assert f.endpoints == ["203.0.113.51"] and f.evidence["captures"] == [name]
    assert f.severity == "medium" and f.confidence == "low"
    assert f.evidence["role"] == "turn_server" and "Allocate" in f.evidence["established_by"]
    assert f.evidence["usual"] == {"host": "203.0.113.50", "captures": 3}
    assert f.evidence["captures_with_role"] == 4
    seen = f.evidence["seen_in"][0]
    assert seen["endpoints"] == ["203.0.113.51:3478"] and seen["clients"] == ["192.0.2.76"]  # 192.0.2.77 ^ 1
    assert f.frames == [28]  # the Allocate success, as in the original capture
    assert f.message.startswith(f"TURN server 203.0.113.51 in {name}: TURN server in 1 of the 4 captures")


# -- the fleet report: HTML and SARIF ---------------------------------------------------------------------------
class _Html:
    """The parts of an HTML page a reader sees: text, the tables' cell texts, and which elements exist."""

    def __init__(self, text: str) -> None:
        from html.parser import HTMLParser

        self.tags: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.ids: dict[str, int] = {}
        self.text: list[str] = []
        page = self

        class P(HTMLParser):
            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                page.tags.append(tag)
                if tag == "table":
                    page.tables.append([])
                    if dict(attrs).get("id"):
                        page.ids[str(dict(attrs)["id"])] = len(page.tables) - 1
                elif tag == "tr":
                    page.tables[-1].append([])
                elif tag in ("td", "th"):
                    page.tables[-1][-1].append("")

            def handle_data(self, data: str) -> None:
                page.text.append(data)
                if page.tables and page.tables[-1] and page.tables[-1][-1]:
                    page.tables[-1][-1][-1] += data

        p = P(convert_charrefs=True)
        p.feed(text)
        p.close()


def test_fleet_html_and_sarif(shifted_case: tuple[Path, str], tmp_path: Path) -> None:
    from rtcforensics.case.cli import main

    case, name = shifted_case
    outs = {}
    for fmt in ("json", "html", "sarif"):
        out = tmp_path / f"fleet.{fmt}"
        assert main(["fleet", str(case), "--format", fmt, "-o", str(out)]) == 0
        outs[fmt] = out.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name not in {f"fleet.{f}" for f in outs}]  # no temp left
    doc = json.loads(outs["json"])
    assert doc["schema"] == "rtcforensics-fleet/1" and not doc["secrets_shown"]
    assert {c["name"] for c in doc["captures"]} == {f"{n}.pcapng" for n in NAMES} | {name}
    assert [f["slug"] for f in doc["case_findings"]] == ["turn-credential-shared", "intermediary-unexpected"]

    page = _Html(outs["html"])
    text = "".join(page.text)
    for f in doc["case_findings"]:
        assert f["message"] in text and f"{f['id']} {f['slug']}" in text
    assert "i" not in page.tags  # the capture's name is shown, its markup inert
    rows = page.tables[page.ids["capture-table"]]
    header, body = rows[0], rows[1:]
    assert header[:3] == ["name", "status", "packets"]
    by_name = {r[0]: dict(zip(header, r)) for r in body}
    assert set(by_name) == {f"{n}.pcapng" for n in NAMES} | {name}
    m = open_case(case).manifest().set_index("name")
    for n, r in by_name.items():
        assert r["status"] == "ok" and int(r["packets"]) == int(m.loc[n, "packets"])
        assert r["sha256"] == m.loc[n, "sha256"]
    counts = {c["name"]: c["findings"] for c in doc["captures"]}
    assert int(by_name["weak_dtls.pcapng"]["medium"]) == counts["weak_dtls.pcapng"]["medium"] > 0

    log = json.loads(outs["sarif"])
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["CASE001", "CASE002", "CASE003", "CASE004", "CASE005"]
    assert len(run["results"]) == len(doc["case_findings"])
    for res, f in zip(run["results"], doc["case_findings"]):
        assert (
            res["ruleId"] == f["id"]
            and rules[res["ruleIndex"]]["name"] == res["properties"]["slug"] == f["slug"]
        )
        assert res["partialFingerprints"]["rtcforensicsIdentity/v1"] == f["identity"]
    assert len(run["artifacts"]) == len(NAMES) + 1
    (relay,) = [r for r in run["results"] if r["ruleId"] == "CASE005"]
    (loc,) = relay["locations"]
    art = run["artifacts"][loc["physicalLocation"]["artifactLocation"]["index"]]
    assert art["location"]["uri"].endswith(name) and art["hashes"]["sha-256"] == m.loc[name, "sha256"]
    assert [x["name"] for x in loc["logicalLocations"]] == ["frame 28"]
    assert run["invocations"][0]["executionSuccessful"] is True


# -- ingest from standard input -------------------------------------------------------------------------------
def test_ingest_cli_passes_stdin_dash_unchanged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rtcforensics.case import cli, ingestion

    seen: list[Any] = []

    def fake_ingest(inputs: Any, case: Any, **kw: Any) -> Any:
        seen.append(list(inputs))
        return ingestion.IngestResult(Path(case))

    monkeypatch.setattr(ingestion, "ingest", fake_ingest)
    assert cli.main(["ingest", "-", "--case", str(tmp_path / "c")]) == 0
    assert seen == [["-"]]


@pytest.mark.slow
def test_ingest_from_standard_input(case_dir: Path, tmp_path: Path) -> None:
    """``dumpcap -w - | rtcforensics ingest - --case DIR``: the capture read from a pipe is the same capture."""
    import inspect

    from rtcforensics.case import ingestion

    if '"-"' not in inspect.getsource(ingestion):
        pytest.skip(
            "reading a capture from standard input is case/ingestion.py's part (stream room): not in yet"
        )
    with sample_path("weak_dtls").open("rb") as fh:
        out = subprocess.run(
            [sys.executable, "-m", "rtcforensics.case", "ingest", "-", "--case", str(tmp_path / "c")],
            stdin=fh,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert out.returncode == 0, out.stderr
    got = open_case(tmp_path / "c").manifest()
    want = open_case(case_dir).manifest().set_index("name").loc["weak_dtls.pcapng"]
    assert len(got) == 1 and got["status"].iloc[0] == "ok"
    assert got["sha256"].iloc[0] == want["sha256"] and got["packets"].iloc[0] == want["packets"]
    twice = subprocess.run(
        [sys.executable, "-m", "rtcforensics.case", "ingest", "-", "-", "--case", str(tmp_path / "c")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert twice.returncode == 2 and "only once" in twice.stderr
