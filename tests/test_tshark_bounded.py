"""tshark runs bounded and its failures are surfaced, not swallowed (issue 9, item 5).

- the runner's time limit turns a long run into ToolError naming the file;
- a tshark that cannot read the capture (failure injected with a wrapper earlier on PATH that fails every
  ``-r`` run and passes version/field queries through to the real tshark) becomes an ``anomalies`` row naming
  the file, the signalling checks say "not observable" (never "clean"), and the report says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtcforensics.dissect import tshark
from rtcforensics.errors import ToolError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_captures" / "ws_plaintext_private.pcapng"

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None or not SAMPLE.exists(), reason="tshark and the sample capture needed"
)


def test_time_limit_is_a_tool_error_naming_the_file() -> None:
    with pytest.raises(ToolError) as e:
        tshark.export(SAMPLE, ["frame", "ws_text"], display_filter="websocket", timeout=0.001)
    assert str(SAMPLE) in str(e.value) and "did not finish within" in str(e.value)


def test_capture_options_are_refused_before_anything_runs() -> None:
    for opt in ("-i", "-w", "-k"):
        with pytest.raises(ToolError, match="capture option"):
            tshark.run_tool(["-r", str(SAMPLE), opt, "x"], path=SAMPLE)


@pytest.fixture
def broken_tshark(tmp_path: Path) -> dict[str, str]:
    real = shutil.which("tshark")
    script = tmp_path / "bin" / "tshark"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = "-r" ] && { echo "tshark: The file appears to be damaged '
        'or corrupt." >&2; exit 2; }; done\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ['PATH']}"}


def test_tshark_failure_becomes_an_anomaly_and_not_observable(broken_tshark: dict[str, str]) -> None:
    code = (
        "import sys, json, rtcforensics\n"
        "from rtcforensics.checks.analyze import analyze\n"
        "cap = rtcforensics.load(sys.argv[1])\n"
        "cap.get_frame('signalling')\n"
        "a = cap.get_frame('anomalies')\n"
        "cov = analyze(cap).coverage\n"
        "print(json.dumps({'anomalies': a[['layer', 'name', 'detail']].astype(str).values.tolist(),\n"
        "  'coverage': {r['slug']: r['status'] for r in cov.to_dict('records')} if hasattr(cov, 'to_dict')\n"
        "              else {c.slug: c.status for c in cov}}))\n"
    )
    cp = subprocess.run(
        [sys.executable, "-c", code, str(SAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        env=broken_tshark,
        cwd=ROOT,
        check=False,
    )
    assert cp.returncode == 0, cp.stderr[-2000:]
    res = json.loads(cp.stdout.strip().splitlines()[-1])
    failed = [d for layer, name, d in res["anomalies"] if layer == "tshark" and name == "tshark_failed"]
    assert failed and str(SAMPLE) in failed[0] and "damaged" in failed[0]
    assert res["coverage"]["signalling-plaintext"] == "not observable"


def test_tshark_failure_reaches_the_cli_report(broken_tshark: dict[str, str]) -> None:
    cp = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtcforensics.cli",
            "analyze",
            str(SAMPLE),
            "--format",
            "json",
            "--fail-on",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=broken_tshark,
        cwd=ROOT,
        check=False,
    )
    # a tool failure that leaves checks not observable is an incomplete run: exit 3, and the report says so
    assert cp.returncode == 3 and "Traceback" not in cp.stderr, cp.stderr[-2000:]
    doc = json.loads(cp.stdout)
    assert doc["run"]["complete"] is False, doc["run"]
    said = json.dumps([doc.get("anomalies"), doc["overview"].get("notes"), doc.get("coverage")]) + cp.stderr
    assert "tshark" in said, "tshark failed, yet neither the report nor stderr says so"
    cov = {c["slug"]: c for c in doc["coverage"]}
    for slug in ("signalling-plaintext", "sdes-key-exposed"):  # signalling and SDP come from tshark's export
        assert cov[slug]["status"] == "not observable" and cov[slug]["reason"].startswith("tshark failed"), (
            cov[slug]
        )
        assert "absent" not in cov[slug]["reason"]
