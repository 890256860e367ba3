"""The memory budget (issue 19 item 3, ``rtcforensics.budget``, ``--max-memory``): checked by the package where
stopping is clean — between chunks of the read, and before a frame is built — so that a capture too big for
the memory given ends as an incomplete run (a ``memory_limit`` anomaly, exit 3) with the findings of what was
read, never as an OOM kill.

A budget below the interpreter's own resident memory makes every check fire at once, so the read and the
frames are tested on real sample captures without huge files: weak_dtls (openssl s_client/s_server) read in
chunks of 6,000 bytes comes as frames 1-31 and 32-52; its DTLS 1.0 handshake (192.0.2.30:50010 ->
192.0.2.40:4433) lies in frames 9-20, its DTLS 1.2 one (:50012 -> :4434) in frames 33-40. The flood of
one-packet flows (fuzz/hostile.py ``many_udp_flows``, 10^5 flows behind the real call of stun_no_integrity)
is built at test time and analysed in a fresh process under a budget well below its need."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from peakrss import run_measured
from samples import sample_path

import rtcforensics
from rtcforensics import budget
from rtcforensics.capture import FrameUnavailable
from rtcforensics.checks.analyze import analyze
from rtcforensics.cli import main
from rtcforensics.dissect import pcapio
from rtcforensics.dissect.pcapio import CaptureReader

ROOT = Path(__file__).resolve().parent.parent
FIRST, SECOND = "192.0.2.30:50010", "192.0.2.30:50012"  # the clients of weak_dtls's two handshakes
CHUNK = 6000  # weak_dtls in chunks of 6,000 bytes: frames 1-31, then 32-52


def _memory_limit_rows(log):
    return [r for r in log.rows if r["name"] == "memory_limit"]


def _slugs_naming(findings, endpoint):
    return {f.slug for f in findings if endpoint in f.endpoints}


def test_resident_memory_and_the_default_budget():
    status = Path("/proc/self/status").read_text()
    vm_rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
    assert abs(budget.resident() - vm_rss) < 8 << 20
    mem_total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    assert 0 < budget.available() <= mem_total
    assert budget.default_limit() == int(budget.available() * budget.DEFAULT_SHARE)
    before = budget.limit()
    with budget.limited(1000 << 20):
        assert budget.limit() == 1000 << 20
        free = (900 << 20) - budget.RESERVE
        assert budget.read_threshold(start=100 << 20) == (100 << 20) + int(free * budget.READ_SHARE)
        assert budget.read_threshold(start=900 << 20) == 900 << 20  # less than RESERVE free: stop at once
        assert budget.read_threshold(start=1100 << 20) == 1000 << 20  # nothing free: the budget itself
        with budget.limited(None):
            assert budget.limit() is None and budget.over() is None and budget.read_threshold() is None
    assert budget.limit() == before


def _cgroup_fs(root: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return str(root)


def test_the_cgroup_limit_v2_and_v1(tmp_path):
    # the kernel's own formats (cgroups(7)): /proc/self/cgroup lines "id:controllers:path", v2 memory.max is a
    # number or "max", v1 says "no limit" with 2^63 rounded down to a page
    me = tmp_path / "cgroup"
    me.write_text("0::/user.slice/app.scope\n")
    v2 = _cgroup_fs(
        tmp_path / "v2",
        {
            "memory.max": "max\n",
            "user.slice/memory.max": "2147483648\n",
            "user.slice/app.scope/memory.max": "max\n",
        },
    )
    assert budget._cgroup_limit(str(me), v2) == 2 << 30  # a parent's limit binds the child
    Path(v2, "user.slice/app.scope/memory.max").write_text("1073741824\n")
    assert budget._cgroup_limit(str(me), v2) == 1 << 30  # the smallest wins
    Path(v2, "user.slice/app.scope/memory.max").write_text("max\n")
    Path(v2, "user.slice/memory.max").write_text("max\n")
    assert budget._cgroup_limit(str(me), v2) is None  # no limit anywhere
    me.write_text("12:pids:/docker/abc\n4:cpu,memory:/docker/abc\n")
    v1 = _cgroup_fs(tmp_path / "v1", {"memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n"})
    assert budget._cgroup_limit(str(me), v1) is None
    Path(v1, "memory/docker/abc/memory.limit_in_bytes").write_text("536870912\n")
    assert budget._cgroup_limit(str(me), v1) == 512 << 20
    # inside the container the cgroup's own directory is the mount's root
    v1_inside = _cgroup_fs(tmp_path / "v1in", {"memory/memory.limit_in_bytes": "536870912\n"})
    assert budget._cgroup_limit(str(me), v1_inside) == 512 << 20
    assert budget._cgroup_limit(str(tmp_path / "absent"), v1) is None


def test_a_budget_below_resident_memory_stops_the_read_after_the_first_chunk():
    path = sample_path("weak_dtls")
    whole = CaptureReader(path, chunk_size=CHUNK)
    assert [(int(b.frame[0]), int(b.frame[-1])) for b in whole.batches()] == [(1, 31), (32, 52)]
    assert not whole.truncated and not _memory_limit_rows(whole.anomalies)
    with budget.limited(1):
        r = CaptureReader(path, chunk_size=CHUNK)
        kept = [b.frame.tolist() for b in r.batches()]
    assert kept == [list(range(1, 32))]  # the first chunk is read, the next is not
    assert r.truncated and (r.records, r.packets) == (31, 31)
    (row,) = _memory_limit_rows(r.anomalies)
    assert row["frame"] == 31 and row["layer"] == "capture"
    assert row["detail"].startswith("stopped after frame 31: resident memory ")
    assert (
        "of the memory budget 0 MiB" in row["detail"]
        and "the rest of the capture was not read" in row["detail"]
    )


def test_a_capture_read_under_the_budget_keeps_the_findings_of_what_was_read(monkeypatch):
    monkeypatch.setattr(pcapio, "CHUNK_SIZE", CHUNK)  # the reader's default chunk (no chunk_size given)
    cap = rtcforensics.load(sample_path("weak_dtls"), progress=False)
    with budget.limited(1):
        d = cap.dissection  # the read: stopped at the budget after the first chunk
    assert d.info["truncated"] and (d.info["records"], d.info["packets"]) == (31, 31)
    with budget.limited(None):  # the frames: built from what was read
        assert cap.packets["frame"].tolist() == list(range(1, 32))
        report = analyze(cap)
    assert any(r.startswith("capture memory_limit: stopped after frame 31:") for r in report.incomplete)
    assert {"dtls-weak-version", "dtls-weak-cipher", "srtp-weak-profile"} <= _slugs_naming(
        report.findings, FIRST
    )
    assert not _slugs_naming(report.findings, SECOND)


def test_over_the_budget_a_frame_is_not_built_and_its_checks_are_not_observable():
    cap = rtcforensics.load(sample_path("weak_dtls"), progress=False)
    full = analyze(cap, only=["DTLS002", "SIG001"])
    dtls = cap.dtls  # built before the budget: stays usable
    cap2 = rtcforensics.load(sample_path("weak_dtls"), progress=False)
    cap2.get_frame("dtls")
    with budget.limited(1):
        assert cap2.dtls is cap2.get_frame("dtls")
        for _ in range(2):
            with pytest.raises(FrameUnavailable, match="memory budget: resident memory"):
                cap2.get_frame("flows")
        report = analyze(cap2, only=["DTLS002", "SIG001"])
    by_id = {c.id: c for c in report.coverage}
    assert by_id["DTLS002"].status == "found"
    assert [f.to_dict() for f in report.findings] == [f.to_dict() for f in full.findings if f.id == "DTLS002"]
    assert by_id["SIG001"].status == "not observable" and "memory budget" in by_id["SIG001"].reason
    assert any(r.startswith("check SIG001 (signalling-plaintext) could not run:") for r in report.incomplete)
    details = [r["detail"] for r in _memory_limit_rows(cap2.anomaly_log)]
    assert sum(d.startswith("frame 'flows' not built: memory budget") for d in details) == 1  # asked twice
    assert any(d.startswith("frame 'signalling' not built") for d in details)
    assert len(cap2.flows) == len(cap.flows) > 0 and len(dtls) == len(
        cap2.dtls
    )  # under no budget it is built


def test_max_memory_on_the_command_line(capsys, tmp_path):
    weak = str(sample_path("weak_dtls"))
    before = budget.limit()
    code = main(["analyze", weak, "--max-memory", "1M", "--format", "json", "--fail-on", "none"])
    out, err = capsys.readouterr()
    assert code == 3 and "INCOMPLETE" in err
    doc = json.loads(out)
    assert doc["run"]["complete"] is False and doc["findings"] == []
    assert {c["status"] for c in doc["coverage"]} == {"not observable"}
    assert all("memory budget" in c["reason"] for c in doc["coverage"])
    assert any(a["name"] == "memory_limit" and "of 1 MiB" in a["detail"] for a in doc["anomalies"])
    assert budget.limit() == before  # the option applies to that command only
    assert main(["analyze", weak, "--max-memory", "none", "--fail-on", "none"]) == 0
    capsys.readouterr()
    assert main(["summary", weak, "--max-memory", "1M"]) == 3
    assert main(["decrypt", weak, "-o", str(tmp_path / "d"), "--max-memory", "1M"]) == 3
    code = main(["export", weak, "--to", str(tmp_path / "x"), "--format", "csv", "--max-memory", "1M"])
    assert code == 3
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert {m["name"] for m in manifest["not_written"]} >= {"packets.csv", "stun.csv", "dtls.csv"}
    assert all("memory budget" in m["error"] for m in manifest["not_written"])
    assert not (tmp_path / "x" / "packets.csv").exists()


def test_each_worker_of_a_batch_gets_its_share_of_the_budget(capsys):
    """Two worker processes under --max-memory 4M: each refuses its frames at its own 2 MiB."""
    caps = [sample_path("weak_dtls"), sample_path("stun_no_integrity")]
    argv = ["analyze", *map(str, caps), "--jobs", "2", "--max-memory", "4M", "--format", "json"]
    code = main([*argv, "--fail-on", "none"])
    docs = json.loads(capsys.readouterr().out)["reports"]
    assert code == 3 and len(docs) == 2
    for d in docs:
        assert d["run"]["complete"] is False and d["findings"] == []
        limits = {
            a["detail"].split("memory budget of ")[1][:5]
            for a in d["anomalies"]
            if a["name"] == "memory_limit"
        }
        assert limits == {"2 MiB"}


def test_ingest_gives_the_budget_to_the_capture_it_analyses(tmp_path):
    from rtcforensics.case.ingestion import ingest

    res = ingest([sample_path("weak_dtls")], tmp_path / "case", max_memory=1)
    (row,) = res.rows
    assert row["status"] == "failed" and "memory budget" in row["error"]
    assert budget.limit() == budget.default_limit()


def test_the_srtp_collection_refuses_to_decrypt_part_of_a_capture(monkeypatch):
    from rtcforensics.srtp.collect import collect_media

    monkeypatch.setattr(pcapio, "CHUNK_SIZE", CHUNK)
    with budget.limited(1), pytest.raises(budget.BudgetExceeded, match="stopped after frame 31"):
        collect_media(sample_path("weak_dtls"))
    packets, _ = collect_media(sample_path("weak_dtls"))  # no error without the budget
    assert packets == []


@pytest.mark.slow
def test_a_flood_of_flows_under_a_budget_keeps_the_call_s_findings(tmp_path):
    """10^5 one-packet flows behind a real call, analysed in a fresh process under 300 MiB (the run without a
    budget peaks near 400 MB): the read stops at the budget's share, exit 3, the call's findings all kept."""
    sys.path.insert(0, str(ROOT))
    from fuzz import hostile

    flood = hostile.many_udp_flows(tmp_path, 1).path
    call = analyze(rtcforensics.load(sample_path("stun_no_integrity"), progress=False))
    out = tmp_path / "report.json"
    limit = 300 << 20
    argv = [sys.executable, "-m", "rtcforensics.cli", "analyze", str(flood), "--max-memory", str(limit)]
    argv += ["--format", "json", "-o", str(out), "--fail-on", "none"]
    code, _, err, peak_mb = run_measured(argv, 600, cwd=ROOT)  # the command's own peak (tests/peakrss.py)
    peak = int(peak_mb * (1 << 20))
    assert code == 3, err[-2000:]
    doc = json.loads(out.read_text())
    assert doc["run"]["complete"] is False
    (read,) = [r for r in doc["run"]["incomplete_reasons"] if "stopped after frame" in r]
    stopped = int(read.split("stopped after frame ")[1].split(":")[0].replace(",", ""))
    assert 40 < stopped < 100_040  # the call (frames 1-40) read, the flood not wholly
    got = {(f["id"], tuple(f["frames"]), tuple(f["endpoints"])) for f in doc["findings"]}
    want = {(f.id, tuple(f.frames), tuple(f.endpoints)) for f in call.findings}
    assert len(want) == 4 and want <= got
    assert peak < limit * 1.3, f"peak {peak >> 20} MiB"
