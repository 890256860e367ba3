"""``watch``: ring-buffer files (editcap-split pieces of a sample capture, appearing one by one, as dumpcap
writes them) are ingested once closed; SIGINT stops the watch cleanly and the last file is ingested too."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from samples import sample_path

import rtcforensics
from rtcforensics.case import open_case

pytest.importorskip("duckdb")


def _manifest_names(case: Path) -> set[str]:
    if not (case / "manifest").is_dir() or not any((case / "manifest").glob("*.parquet")):
        return set()
    with open_case(case) as c:
        return set(c.sql("select name from manifest where status = 'ok'")["name"])


def _wait(cond: object, timeout: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_watch_ingests_closed_ring_files_and_stops_on_sigint(tmp_path: Path) -> None:
    if not shutil.which("editcap"):
        pytest.skip("editcap not installed")
    src = sample_path("fingerprint_rewrite")  # 177 packets
    split = tmp_path / "split"
    split.mkdir()
    subprocess.run(["editcap", "-c", "60", str(src), str(split / "ring.pcapng")], check=True, timeout=60)
    pieces = sorted(split.iterdir())
    assert len(pieces) == 3  # ring_00000_<time>.pcapng, ring_00001_..., ring_00002_...
    ring, case = tmp_path / "ring", tmp_path / "case"
    ring.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtcforensics.case",
            "watch",
            str(ring),
            "--case",
            str(case),
            "--interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the writer is on the first file: nothing is ready
        shutil.copy(pieces[0], ring / pieces[0].name)
        time.sleep(2.0)
        assert _manifest_names(case) == set()
        # it moves on to the second: the first is closed and gets ingested, the second is not
        shutil.copy(pieces[1], ring / pieces[1].name)
        _wait(lambda: _manifest_names(case) == {pieces[0].name}, 180, proc)
        shutil.copy(pieces[2], ring / pieces[2].name)
        _wait(lambda: _manifest_names(case) == {pieces[0].name, pieces[1].name}, 180, proc)
        # Ctrl-C: the watch ingests the last file and exits cleanly
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    with open_case(case) as c:
        m = c.manifest()
        assert sorted(m["name"]) == [p.name for p in pieces] and (m["status"] == "ok").all()
        assert int(m["packets"].sum()) == len(rtcforensics.load(src).packets) == 177
        assert [int(n) for n in m.sort_values("name")["packets"]] == [60, 60, 57]
        # every piece once: no duplicate frames
        n = c.sql("select capture, count(*) as rows, count(distinct frame) as frames from packets group by 1")
        assert (n["rows"] == n["frames"]).all() and int(n["rows"].sum()) == 177
    assert not list((case / ".tmp").iterdir())
