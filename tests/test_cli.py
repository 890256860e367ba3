"""The command line: every format, exit codes 0/1/2 with one clear line for a user's mistake, progress on
stderr, results on stdout or -o, many captures with --jobs and a cross-capture summary, export, checks,
explain."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from samples import ROOT, SAMPLES, load_truth, sample_path

from rtcforensics.checks.registry import load_catalogue
from rtcforensics.cli import main


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["table", "json", "sarif", "html", "markdown"])
def test_every_format_and_exit_code(capsys, fmt):
    code, out, err = run(capsys, "analyze", sample_path("sdes_plain_rtp"), "--format", fmt)
    assert code == 1  # critical sdes-key-exposed >= default --fail-on medium
    assert "sdes-key-exposed" in out and "analysing" in err and "sdes-key-exposed" not in err
    key = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    assert key not in out


def test_fail_on_levels(capsys):
    weak = sample_path("weak_dtls")  # worst finding: medium
    assert run(capsys, "analyze", weak, "--fail-on", "medium")[0] == 1
    assert run(capsys, "analyze", weak, "--fail-on", "high")[0] == 0
    assert run(capsys, "analyze", weak, "--fail-on", "none")[0] == 0


def test_clean_capture_exits_zero(capsys):
    t = load_truth("clean_call")
    code, out, _ = run(capsys, "analyze", sample_path("clean_call"), "--keylog", SAMPLES / t["keylog"],
                       "--format", "json")
    assert code == 0
    assert all(f["severity"] in ("info", "low") for f in json.loads(out)["findings"])


def test_output_file_and_show_secrets(capsys, tmp_path):
    out_file = tmp_path / "r.json"
    _code, out, err = run(capsys, "analyze", sample_path("sdes_plain_rtp"), "--format", "json", "-o", out_file,
                         "--show-secrets")
    assert out == "" and f"wrote {out_file}" in err
    text = out_file.read_text()
    assert load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"] in text
    assert json.loads(text)["secrets_shown"] is True


@pytest.mark.parametrize("argv,needle", [
    (["analyze", "no/such/capture.pcapng"], "no/such/capture.pcapng: no such file"),
    (["analyze", "{bad}"], "not a pcap or pcapng capture"),
    (["analyze", "{sample}", "--keylog", "missing.keylog"], "missing.keylog: keylog file not found"),
    (["analyze", "{sample}", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["analyze", "{sample}", "--param", "DTLS005.nope=1"], "unknown check parameter 'DTLS005.nope'"),
    (["analyze", "{emptydir}"], "directory holds no capture files"),
    (["analyze", "{sample}", "-o", "/nonexistent/dir/out.json"], "/nonexistent/dir/out.json: cannot write"),
    (["explain", "no-such-check"], "no check with ID or slug 'no-such-check'"),
    ([], "a command is needed"),
])
def test_user_errors_exit_2_with_one_line(capsys, tmp_path, argv, needle):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is a text file, not a capture\n")
    (tmp_path / "empty").mkdir()
    argv = [a.format(bad=bad, sample=sample_path("weak_dtls"), emptydir=tmp_path / "empty") for a in argv]
    code, out, err = run(capsys, *argv)
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # progress lines aside
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("rtcforensics: error: ") and needle in lines[0], err
    assert "Traceback" not in err


def test_console_script_bad_input(tmp_path):
    exe = shutil.which("rtcforensics", path=str(ROOT / ".venv" / "bin"))
    if exe is None:
        pytest.skip("console script not installed")
    p = subprocess.run([exe, "analyze", str(tmp_path / "absent.pcap")], capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines()[-1] == f"rtcforensics: error: {tmp_path / 'absent.pcap'}: no such file"


def test_many_captures_in_parallel_with_cross_capture_summary(capsys, tmp_path):
    names = ["turn_open_relay", "turn_internal_peer_allowed", "turn_internal_peer_refused"]
    for n in names:
        shutil.copy(sample_path(n), tmp_path / sample_path(n).name)
    code, out, err = run(capsys, "analyze", tmp_path, "--jobs", "2", "--format", "json", "--fail-on", "critical")
    doc = json.loads(out)
    assert [r["capture"]["name"] for r in doc["reports"]] == sorted(sample_path(n).name for n in names)
    assert code == 1  # the accepted internal peer is critical
    turn = doc["cross_capture"]["turn_server"]
    assert sorted(turn["203.0.113.50:3478"]) == sorted(sample_path(n).name for n in names)
    assert err.count("finding(s)") == 3
    code, out, _ = run(capsys, "analyze", str(tmp_path / "turn_*.pcapng"), "--format", "table", "--fail-on", "none")
    assert code == 0 and "across captures" in out and "203.0.113.50:3478" in out


def test_checks_and_explain(capsys):
    code, out, _ = run(capsys, "checks", "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)] == list(load_catalogue())
    code, out, _ = run(capsys, "explain", "turn-credential-lifetime")
    assert code == 0 and out.startswith("TURN003  turn-credential-lifetime")
    for section in ("What it flags:", "Why it matters:", "Evidence:", "False positives:", "References:",
                    "max_lifetime_s = 86400"):
        assert section in out


def test_summary_and_version(capsys):
    code, out, _ = run(capsys, "summary", sample_path("fingerprint_rewrite"))
    assert code == 0 and "203.0.113.66:8080" in out and "CLEAR" in out and "DTLS 1.2" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "rtcforensics " in capsys.readouterr().out


def test_export_every_frame_redacted(capsys, tmp_path):
    code, _, _err = run(capsys, "export", sample_path("sdes_plain_rtp"), "--to", tmp_path / "x", "--format", "csv")
    assert code == 0
    written = {p.stem for p in (tmp_path / "x").glob("*.csv")}
    assert {"packets", "flows", "sdp", "signalling", "rtp_streams", "anomalies"} <= written
    key = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    assert key not in (tmp_path / "x" / "sdp.csv").read_text()
    run(capsys, "export", sample_path("sdes_plain_rtp"), "--to", tmp_path / "y", "--format", "csv", "--show-secrets")
    assert key in (tmp_path / "y" / "sdp.csv").read_text()
    code, _, _ = run(capsys, "export", sample_path("weak_dtls"), "--to", tmp_path / "z")
    assert code == 0 and (tmp_path / "z" / "dtls.parquet").exists()
