"""The command line: every format, exit codes 0/1/2 with one clear line for a user's mistake, progress on
stderr, results on stdout or -o, many captures with --jobs and a cross-capture summary, export, checks,
explain."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from samples import ROOT, SAMPLES, load_truth, sample_path

from rtcforensics.checks import load_catalogue
from rtcforensics.cli import main


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["table", "json", "sarif", "html", "markdown"])
def test_every_format_and_exit_code(capsys, fmt):
    code, out, err = run(capsys, "analyze", sample_path("sdes_plain_rtp"), "--format", fmt)
    assert code == 1  # critical sdes-key-exposed >= default --fail-on high
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
    code, out, _ = run(
        capsys, "analyze", sample_path("clean_call"), "--keylog", SAMPLES / t["keylog"], "--format", "json"
    )
    assert code == 0
    assert all(f["severity"] in ("info", "low") for f in json.loads(out)["findings"])


def test_output_file_and_show_secrets(capsys, tmp_path):
    out_file = tmp_path / "r.json"
    _code, out, err = run(
        capsys, "analyze", sample_path("sdes_plain_rtp"), "--format", "json", "-o", out_file, "--show-secrets"
    )
    assert out == "" and f"wrote {out_file}" in err
    text = out_file.read_text()
    assert load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"] in text
    assert json.loads(text)["secrets_shown"] is True


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["analyze", "no/such/capture.pcapng"], "no/such/capture.pcapng: no such file"),
        (["analyze", "{bad}"], "not a pcap or pcapng capture"),
        (["analyze", "{sample}", "--keylog", "missing.keylog"], "missing.keylog: keylog file not found"),
        (["analyze", "{sample}", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["analyze", "{sample}", "--param", "DTLS005.nope=1"], "unknown check parameter 'DTLS005.nope'"),
        (
            ["analyze", "{sample}", "--param", "ICE005.min_packets=abc"],
            "check parameter 'ICE005.min_packets' takes an integer (default 10), not 'abc'",
        ),
        (
            ["analyze", "{sample}", "--param", "ICE005.min_packets=2.5"],
            "check parameter 'ICE005.min_packets' takes an integer (default 10), not 2.5",
        ),
        (["analyze", "{emptydir}"], "directory holds no capture files"),
        (
            ["analyze", "{sample}", "-o", "/nonexistent/dir/out.json"],
            "/nonexistent/dir/out.json: cannot write",
        ),
        (["explain", "no-such-check"], "no check with ID or slug 'no-such-check'"),
        ([], "a command is needed"),
    ],
)
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
    p = subprocess.run(
        [exe, "analyze", str(tmp_path / "absent.pcap")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 2 and p.stdout == ""
    assert (
        p.stderr.strip().splitlines()[-1] == f"rtcforensics: error: {tmp_path / 'absent.pcap'}: no such file"
    )


def test_many_captures_in_parallel_with_cross_capture_summary(capsys, tmp_path):
    names = ["turn_open_relay", "turn_internal_peer_allowed", "turn_internal_peer_refused"]
    for n in names:
        shutil.copy(sample_path(n), tmp_path / sample_path(n).name)
    code, out, err = run(
        capsys, "analyze", tmp_path, "--jobs", "2", "--format", "json", "--fail-on", "critical"
    )
    doc = json.loads(out)
    assert [r["capture"]["name"] for r in doc["reports"]] == sorted(sample_path(n).name for n in names)
    assert code == 1  # the accepted internal peer is critical
    turn = doc["cross_capture"]["turn_server"]
    assert sorted(turn["203.0.113.50:3478"]) == sorted(sample_path(n).name for n in names)
    assert err.count("finding(s)") == 3
    code, out, _ = run(
        capsys, "analyze", str(tmp_path / "turn_*.pcapng"), "--format", "table", "--fail-on", "none"
    )
    assert code == 0 and "across captures" in out and "203.0.113.50:3478" in out


def test_checks_and_explain(capsys):
    code, out, _ = run(capsys, "checks", "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)] == list(load_catalogue())
    code, out, _ = run(capsys, "explain", "turn-credential-lifetime")
    assert code == 0 and out.startswith("TURN003  turn-credential-lifetime")
    for section in (
        "What it flags:",
        "Why it matters:",
        "Evidence:",
        "False positives:",
        "References:",
        "max_lifetime_s = 86400",
    ):
        assert section in out


def test_summary_and_version(capsys):
    code, out, _ = run(capsys, "summary", sample_path("fingerprint_rewrite"))
    assert code == 0 and "203.0.113.66:8080" in out and "CLEAR" in out and "DTLS 1.2" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "rtcforensics " in capsys.readouterr().out


def test_export_every_frame_redacted(capsys, tmp_path):
    code, _, _err = run(
        capsys, "export", sample_path("sdes_plain_rtp"), "--to", tmp_path / "x", "--format", "csv"
    )
    assert code == 0
    written = {p.stem for p in (tmp_path / "x").glob("*.csv")}
    assert {"packets", "flows", "sdp", "signalling", "rtp_streams", "anomalies"} <= written
    key = load_truth("sdes_plain_rtp")["secrets"]["sdes"][0]["inline"]
    assert key not in (tmp_path / "x" / "sdp.csv").read_text()
    run(
        capsys,
        "export",
        sample_path("sdes_plain_rtp"),
        "--to",
        tmp_path / "y",
        "--format",
        "csv",
        "--show-secrets",
    )
    assert key in (tmp_path / "y" / "sdp.csv").read_text()
    code, _, _ = run(capsys, "export", sample_path("weak_dtls"), "--to", tmp_path / "z")
    assert code == 0 and (tmp_path / "z" / "dtls.parquet").exists()


# -- decrypt -----------------------------------------------------------------------------------------------
def _decrypt_rows(out: str) -> dict[tuple[str, str], list[str]]:
    """(sender → receiver, SSRC) → the row's columns after them (status, rtp+rtcp, verified, failed, key, ...)."""
    rows = {}
    for ln in out.splitlines()[1:]:
        parts = ln.split()
        if len(parts) >= 8 and parts[0].isdigit() and parts[2] == "→":
            rows[(f"{parts[1]} → {parts[3]}", parts[4])] = parts[5:]
    return rows


def test_decrypt_sdes_capture_writes_pcap_and_audio(capsys, tmp_path):
    t = load_truth("sdes_plain_rtp")
    s = next(x for x in t["rtp"] if x["keying"] == "sdes")
    code, out, err = run(capsys, "decrypt", sample_path("sdes_plain_rtp"), "-o", tmp_path)
    assert code == 0 and "decrypting" in err
    row = _decrypt_rows(out)[(f"{s['src']} → {s['dst']}", f"{s['ssrc']:#010x}")]
    assert row[:4] == ["authenticated", f"{s['packets']}+0", f"{s['packets']}/{s['packets']}", "0"]
    assert row[4].startswith("sdes:frame")
    assert (tmp_path / "decrypted.pcap").exists()
    wav = list(tmp_path.glob("*.wav"))
    assert len(wav) == 1 and wav[0].name.endswith("_pcmu.wav") and f"wrote {wav[0]}" in out
    for secret in t["secrets"]["sdes"]:
        assert secret["inline"] not in out + err


def test_decrypt_dtls_srtp_call_with_keylog(capsys, tmp_path):
    t = load_truth("clean_call")
    code, out, _ = run(
        capsys, "decrypt", sample_path("clean_call"), "--keylog", SAMPLES / t["keylog"], "-o", tmp_path
    )
    assert code == 0
    rows = _decrypt_rows(out)
    for s in t["rtp"]:
        row = rows[(f"{s['src']} → {s['dst']}", f"{s['ssrc']:#010x}")]
        rtp, rtcp = map(int, row[1].split("+"))
        assert (
            row[0] == "authenticated"
            and rtp == s["packets"]
            and row[2:4] == [f"{rtp + rtcp}/{rtp + rtcp}", "0"]
        )
        assert row[4].startswith("dtls-srtp:")
    assert (tmp_path / "decrypted.pcap").exists() and list(tmp_path.glob("*_opus.wav"))


def test_decrypt_reports_the_tampered_frame_and_exits_1(capsys, tmp_path):
    from corrupt import tampered_sdes_capture

    sample_path("sdes_plain_rtp")  # skips when absent
    bad, victim = tampered_sdes_capture(tmp_path / "flipped.pcapng")
    code, out, _ = run(capsys, "decrypt", bad, "-o", tmp_path / "out")
    assert code == 1
    assert "partly authenticated" in out and f"failed authentication in frame(s) {victim}\n" in out


@pytest.mark.parametrize(
    "key,needle",
    [
        ("", "--key #1: empty key"),
        (
            "1=AES_CM_128_HMAC_SHA1_80:inline:bm90LWEta2V5LWF0LWFsbA!!",
            "--key #1: SDES inline key is not valid base64",
        ),
        ("1=AES_CM_128_HMAC_SHA1_80:inline:c2hvcnQta2V5", "--key #1: SDES inline key has 9 bytes"),
        ("x1=AES_CM_128_HMAC_SHA1_80:inline:c2hvcnQta2V5", "--key #1: SSRC 'x1' is not a number"),
        (
            "4294967296=AES_CM_128_HMAC_SHA1_80:inline:FfLxRxclZ/lNM/g5MNSZgmvAUzR/pgSIVyOHUHji",
            "--key #1: SSRC '4294967296' does not fit in 32 bits",
        ),
        ("AES_CM_128_HMAC_SHA1_80", "--key #1: key is not of the form [SSRC=]SUITE inline:BASE64"),
    ],
)
def test_decrypt_malformed_key_exits_2_without_echoing_it(capsys, tmp_path, key, needle):
    code, out, err = run(capsys, "decrypt", sample_path("sdes_plain_rtp"), "-o", tmp_path, "--key", key)
    lines = err.strip().splitlines()
    assert (
        code == 2 and out == "" and len(lines) == 1 and lines[0].startswith(f"rtcforensics: error: {needle}")
    )
    secret = key.split("inline:")[-1] if "inline:" in key else None
    assert not secret or secret not in err
    assert not list(tmp_path.iterdir())  # refused before anything was read or written


@pytest.mark.realcaps
@pytest.mark.parametrize(
    "capture",
    [
        "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap",
        "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap",
        "veondigital_srtp_decoder/TCP_call_1.pcap",
        "veondigital_srtp_decoder/udp_call_02_03_client.pcap",
    ],
)
def test_decrypt_third_party_sdes_calls_with_published_keys(capsys, tmp_path, realcaps, capture):
    published = [k for k in json.loads((realcaps / "sdes_keys.json").read_text()) if k["capture"] == capture]
    argv = ["decrypt", realcaps / capture, "-o", tmp_path]
    for k in published:
        argv += ["--key", f"{k['ssrc']}={k['suite']}:inline:{k['inline_key_b64']}"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    rows = _decrypt_rows(out)
    verified = {ssrc: r for (_, ssrc), r in rows.items() if r[0] == "authenticated"}
    # RTCP-only SSRCs (browsers' 0xfa17fa17) verify with the key of the same direction (issue 14 item 7)
    rtcp_only = {ssrc for ssrc, r in verified.items() if r[1].startswith("0+")}
    assert verified and set(verified) - rtcp_only <= {f"{int(k['ssrc'], 16):#010x}" for k in published}
    for r in verified.values():  # a key that authenticates verifies every packet of its stream
        done, total = r[2].split("/")
        assert done == total and r[3] == "0" and r[4] == "user"
    assert list(tmp_path.glob("*.wav")) and (tmp_path / "decrypted.pcap").exists()
    assert not [k for k in published if k["inline_key_b64"] in out + err]


# -- exit codes: incomplete runs, batches, internal errors (issue 19 items 1-2, issue 14 item 8) -------------
def test_default_fail_on_is_the_readme_s():
    import re

    from rtcforensics.cli import DEFAULT_FAIL_ON, build_parser

    readme = (ROOT / "README.md").read_text()
    said = re.search(r"--fail-on`\s*\(default `(\w+)`\)", readme)
    assert said, "the README no longer states the default --fail-on"
    assert said.group(1) == DEFAULT_FAIL_ON == build_parser().parse_args(["analyze", "x"]).fail_on


def test_failed_check_makes_the_run_incomplete_in_every_format(capsys, monkeypatch):
    import rtcforensics.capture as capture_mod

    def broken(cap):
        raise RuntimeError("dtls builder broke")

    schema, _ = capture_mod._BUILDERS["dtls"]
    monkeypatch.setitem(capture_mod._BUILDERS, "dtls", (schema, broken))
    for fmt in ("json", "table", "markdown", "html", "sarif"):
        code, out, err = run(
            capsys, "analyze", sample_path("weak_dtls"), "--format", fmt, "--fail-on", "none"
        )
        assert code == 3, (fmt, err)  # not 0, not the findings code 1, not the usage code 2
        head = out[:3000]
        if fmt == "json":
            doc = json.loads(out)
            assert doc["run"]["complete"] is False and any(
                "DTLS" in r for r in doc["run"]["incomplete_reasons"]
            )
            assert list(doc).index("run") < list(doc).index("findings")
        elif fmt == "sarif":
            inv = json.loads(out)["runs"][0]["invocations"][0]
            assert inv["executionSuccessful"] is False
            assert any("INCOMPLETE RUN" in n["message"]["text"] for n in inv["toolExecutionNotifications"])
        else:
            assert "INCOMPLETE" in head.upper() and "dtls builder broke" in head, fmt
        assert "INCOMPLETE" in err
    # findings at or above --fail-on still decide: the SDES capture's critical finding survives a broken dtls
    assert run(capsys, "analyze", sample_path("sdes_plain_rtp"), "--format", "json")[0] == 1


def _empty_capture_dir(tmp_path):
    names = ["turn_open_relay", "turn_internal_peer_refused"]
    for n in names:
        shutil.copy(sample_path(n), tmp_path / sample_path(n).name)
    (tmp_path / "empty.pcap").write_bytes(b"")
    return sorted([sample_path(n).name for n in names] + ["empty.pcap"])


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_with_a_bad_capture_keeps_every_other_result(capsys, tmp_path, jobs):
    names = _empty_capture_dir(tmp_path)
    code, out, err = run(capsys, "analyze", tmp_path, "--jobs", jobs, "--format", "json", "--fail-on", "none")
    assert code == 3 and "Traceback" not in err
    reports = {r["capture"]["name"]: r for r in json.loads(out)["reports"]}
    assert sorted(reports) == names
    bad = reports["empty.pcap"]
    assert bad["run"]["complete"] is False and "empty.pcap" in bad["capture"]["error"]
    assert reports["turn_open_relay.pcapng"]["run"]["complete"] is True
    assert "turn-open-relay" in {f["slug"] for f in reports["turn_open_relay.pcapng"]["findings"]}
    assert "empty.pcap: NOT ANALYSED" in err
    # the findings code wins when findings decide it
    assert run(capsys, "analyze", tmp_path, "--jobs", jobs, "--format", "table", "--fail-on", "high")[0] == 1


def killing_worker(path, *args):
    """Stands in for cli.analyze_one in forked workers: the worker analysing empty.pcap is SIGKILLed (as by the
    OOM killer); the others analyse as usual."""
    import os
    import signal

    from rtcforensics import cli

    if path.endswith("empty.pcap"):
        os.kill(os.getpid(), signal.SIGKILL)
    return cli._real_analyze_one(path, *args)


def test_killed_worker_is_retried_then_reported_never_a_traceback(capsys, tmp_path, monkeypatch):
    import multiprocessing

    from rtcforensics import cli

    if multiprocessing.get_start_method() != "fork":
        pytest.skip("needs forked workers (the stand-in is patched into the parent)")
    _empty_capture_dir(tmp_path)
    monkeypatch.setattr(cli, "_real_analyze_one", cli.analyze_one, raising=False)
    monkeypatch.setattr(cli, "analyze_one", killing_worker)
    code, out, err = run(capsys, "analyze", tmp_path, "--jobs", "2", "--format", "json", "--fail-on", "none")
    assert code == 3 and "Traceback" not in err and "BrokenProcessPool" not in err
    reports = {r["capture"]["name"]: r for r in json.loads(out)["reports"]}
    assert "died twice" in reports["empty.pcap"]["capture"]["error"]
    assert (
        reports["turn_open_relay.pcapng"]["findings"] and reports["turn_open_relay.pcapng"]["run"]["complete"]
    )


def test_internal_error_is_one_line_exit_4(capsys, monkeypatch):
    from rtcforensics import cli

    def boom(a):
        raise RuntimeError("a bug\nin two lines")

    monkeypatch.setattr(cli, "cmd_checks", boom)
    monkeypatch.delenv("RTCF_DEBUG", raising=False)
    code, out, err = run(capsys, "checks")
    assert (
        code == 4
        and out == ""
        and err.strip()
        == (
            "rtcforensics: internal error: RuntimeError: a bug in two "
            "lines (a bug; RTCF_DEBUG=1 shows the traceback)"
        )
    )


# -- outputs a court would accept (issue 19 item 6) ------------------------------------------------------------
def _manifest_ok(d):
    import hashlib

    m = json.loads((d / "manifest.json").read_text())
    for f in m["files"]:
        assert hashlib.sha256((d / f["name"]).read_bytes()).hexdigest() == f["sha256"], f["name"]
    return m


def _planted_link(tmp_path, name):
    """(output directory holding ``name -> ../victim.txt``, the victim file)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to("../victim.txt")
    return out, victim


def test_export_refuses_a_planted_symlink_and_force_replaces_the_link_not_the_victim(capsys, tmp_path):
    out, victim = _planted_link(tmp_path, "packets.csv")
    code, _stdout, err = run(capsys, "export", sample_path("sdes_plain_rtp"), "--to", out, "--format", "csv")
    assert code == 2 and "packets.csv: exists as a symbolic link" in err
    assert victim.read_text() == "precious\n" and [p.name for p in out.iterdir()] == ["packets.csv"]
    code, _, err = run(
        capsys, "export", sample_path("sdes_plain_rtp"), "--to", out, "--format", "csv", "--force"
    )
    assert code == 0, err
    assert victim.read_text() == "precious\n" and not (out / "packets.csv").is_symlink()
    m = _manifest_ok(out)
    assert {"packets.csv", "sdp.csv", "signalling.csv"} <= {f["name"] for f in m["files"]}
    assert m["capture"]["sha256"] and not m["not_written"]
    assert not list(out.glob(".*"))  # no temporary file left
    code, _, err = run(capsys, "export", sample_path("sdes_plain_rtp"), "--to", out, "--format", "csv")
    assert code == 2 and "exists; refusing to overwrite it (use --force)" in err


def test_export_says_which_frame_is_missing_and_does_not_exit_0(capsys, tmp_path, monkeypatch):
    import rtcforensics.capture as capture_mod

    def broken(cap):
        raise ValueError("sessions builder broke")

    schema, _ = capture_mod._BUILDERS["sessions"]
    monkeypatch.setitem(capture_mod._BUILDERS, "sessions", (schema, broken))
    code, _, err = run(
        capsys, "export", sample_path("sdes_plain_rtp"), "--to", tmp_path / "x", "--format", "csv"
    )
    assert code == 3 and "sessions: NOT EXPORTED (ValueError: sessions builder broke)" in err
    assert "1 frame(s) not exported: sessions.csv" in err
    m = _manifest_ok(tmp_path / "x")
    assert m["not_written"] == [{"name": "sessions.csv", "error": "ValueError: sessions builder broke"}]
    assert not (tmp_path / "x" / "sessions.csv").exists()


def test_ctrl_c_during_export_leaves_no_truncated_file(capsys, tmp_path, monkeypatch):
    from rtcforensics import cli

    real = cli._write_table
    calls = []

    def interrupted_midway(df, fmt):
        write = real(df, fmt)

        def w(p):
            calls.append(p)
            if len(calls) == 3:
                p.write_text("packet,ts\n1,")  # half a table on disk, then Ctrl-C
                raise KeyboardInterrupt
            write(p)

        return w

    monkeypatch.setattr(cli, "_write_table", interrupted_midway)
    out = tmp_path / "x"
    code, _, err = run(capsys, "export", sample_path("sdes_plain_rtp"), "--to", out, "--format", "csv")
    assert code == 130 and "interrupted" in err
    m = _manifest_ok(out)
    assert m["interrupted"] is True and len(m["files"]) == 2
    csvs = sorted(p.name for p in out.glob("*.csv"))
    assert csvs == sorted(f["name"] for f in m["files"])  # only the complete ones, each with its sha256
    assert not list(out.glob(".*"))


def test_export_csv_neutralises_formulas(capsys, tmp_path):
    """hostile_strings carries a User-Agent and STUN SOFTWARE chosen by the lab; a cell that a spreadsheet
    would run (= + - @, tab, CR) gets a leading quote."""
    import csv

    t = load_truth("hostile_strings")
    code, _, _ = run(capsys, "export", sample_path("hostile_strings"), "--to", tmp_path, "--format", "csv")
    assert code in (0, 3)
    starts = ("=", "+", "-", "@", "\t", "\r")
    risky = []
    for p in tmp_path.glob("*.csv"):
        with p.open(newline="") as fh:
            for row in csv.reader(fh):
                risky += [
                    c for c in row if c.startswith(starts) and not c.lstrip("+-").replace(".", "").isdigit()
                ]
    assert not risky, risky[:5]
    from rtcforensics.report.safe import csv_cell

    for s in t["hostile"]["strings"]:
        assert not str(csv_cell(s)).startswith(starts)


def test_capture_named_like_an_option_keeps_its_signalling(capsys, tmp_path, monkeypatch):
    src = sample_path("fingerprint_rewrite")
    shutil.copy(src, tmp_path / "-h.pcapng")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "analyze", "./-h.pcapng", "--format", "json", "--fail-on", "none")
    assert code == 0, err
    doc = json.loads(out)
    assert {"signalling-plaintext", "dtls-fingerprint-mismatch"} <= {f["slug"] for f in doc["findings"]}
    assert doc["run"]["complete"] is True


def test_file_names_are_escaped_on_the_terminal(capsys, tmp_path):
    name = "call\x1b]0;pwned\x07\x1b[2J.pcapng"
    shutil.copy(sample_path("weak_dtls"), tmp_path / name)
    code, out, err = run(capsys, "analyze", tmp_path / name, "--fail-on", "none")
    assert code == 0 and "\x1b" not in err + out and "\x07" not in err
    assert "call\\x1b]0;pwned\\x07\\x1b[2J.pcapng" in err
    code, _, err = run(capsys, "analyze", tmp_path / "no\x1bcfile.pcap")
    assert code == 2 and "\x1b" not in err and "no\\x1bcfile.pcap: no such file" in err


# -- decrypt: a key that verifies nothing, outputs written whole (issue 14 item 7, issue 19 item 6) ------------
def test_decrypt_with_a_key_that_verifies_nothing_exits_1(capsys, tmp_path):
    import base64

    t = load_truth("sdes_plain_rtp")
    real = t["secrets"]["sdes"][0]["inline"]
    wrong = base64.b64encode(bytes(b ^ 0x5A for b in base64.b64decode(real))).decode()
    ssrc = next(x for x in t["rtp"] if x["keying"] == "sdes")["ssrc"]
    code, out, err = run(
        capsys,
        "decrypt",
        sample_path("clean_call"),
        "-o",
        tmp_path / "o",
        "--key",
        f"{ssrc}=AES_CM_128_HMAC_SHA1_80:inline:{wrong}",
    )
    assert code == 1 and "verified no packet" in err and wrong not in out + err


@pytest.mark.realcaps
def test_decrypt_with_a_wrong_key_for_a_real_stream_says_authentication_failed_with_counts(
    capsys, tmp_path, realcaps
):
    # issue 14 item 7: the published key of webrtc_opus_p2p's 0x20c23467 with its first byte changed
    capture = "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap"
    k = next(
        k
        for k in json.loads((realcaps / "sdes_keys.json").read_text())
        if k["capture"] == capture and "authenticated" in k["note"]
    )
    good = k["inline_key_b64"]
    wrong = ("G" if good[0] != "G" else "H") + good[1:]
    code, out, err = run(
        capsys,
        "decrypt",
        realcaps / capture,
        "-o",
        tmp_path,
        "--key",
        f"{k['ssrc']}={k['suite']}:inline:{wrong}",
    )
    assert code == 1, err
    m = re.search(
        rf"{int(k['ssrc'], 16):#010x}\s+authentication failed\s+(\d+)\+(\d+)\s+0/(\d+)\s+(\d+)\s+user", out
    )
    assert m, out
    rtp, rtcp, total, failed = (int(x) for x in m.groups())
    assert rtp > 0 and total == failed == rtp + rtcp
    assert "failed authentication in frame(s)" in out and wrong not in out + err and good not in out + err


def test_decrypt_refuses_a_planted_symlink(capsys, tmp_path):
    out, victim = _planted_link(tmp_path, "decrypted.pcap")
    code, _, err = run(capsys, "decrypt", sample_path("sdes_plain_rtp"), "-o", out)
    assert (
        code == 2
        and "decrypted.pcap: exists as a symbolic link" in err
        and victim.read_text() == "precious\n"
    )
    code, _stdout, err = run(capsys, "decrypt", sample_path("sdes_plain_rtp"), "-o", out, "--force")
    assert code == 0 and victim.read_text() == "precious\n" and not (out / "decrypted.pcap").is_symlink()
    m = _manifest_ok(out)
    assert "decrypted.pcap" in {f["name"] for f in m["files"]} and any(
        f["name"].endswith(".wav") for f in m["files"]
    )


def test_indicators_export(capsys, tmp_path):
    pytest.importorskip("stix2")
    t = load_truth("fingerprint_rewrite")
    code, _, err = run(capsys, "export", sample_path("fingerprint_rewrite"), "--indicators", "--to", tmp_path)
    assert code == 0, err
    m = _manifest_ok(tmp_path)
    doc = json.loads((tmp_path / "indicators.json").read_text())
    by_value = {i["value"]: i for i in doc["indicators"]}
    offer = t["sdp"][0]["fingerprint"]["sha-256"]
    assert by_value[offer]["type"] == "x509-sha256" and by_value[offer]["severity"] == "critical"
    assert "dtls-fingerprint-mismatch" in {c["slug"] for c in by_value[offer]["contexts"]}
    relay = by_value["203.0.113.66"]
    assert "signalling server" in relay["roles"] and relay["type"] == "ipv4-addr"
    bundle = json.loads((tmp_path / "indicators.stix.json").read_text())
    assert bundle["type"] == "bundle"
    patterns = [o["pattern"] for o in bundle["objects"] if o["type"] == "indicator"]
    assert f"[x509-certificate:hashes.'SHA-256' = '{offer}']" in patterns
    mitm = next(f for f in doc["findings"] if f["slug"] == "dtls-fingerprint-mismatch" and f["slice"])
    assert mitm["display_filter"].startswith("frame.number in {")
    sliced = subprocess.run(
        ["tshark", "-r", str(tmp_path / mitm["slice"]), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    ).stdout.split()
    assert len(sliced) == len(mitm["frames"])
    assert {f["name"] for f in m["files"]} >= {
        "indicators.csv",
        "indicators.json",
        "indicators.stix.json",
        "filters.txt",
        mitm["slice"],
    }


def test_export_redacts_a_token_valued_stun_software_unless_asked(capsys, tmp_path, realcaps):
    """ogolosovskiy webrtc_opus_p2p: one side sends an 88-character base64 blob as STUN SOFTWARE (a token, not
    a product name); the TURN server's own "Coturn-4.4.5.4 'Ardee West'" is a name and stays."""
    cap = realcaps / "ogolosovskiy_srtp_decoder" / "webrtc_opus_p2p.pcap"
    token = "GVWIkgfNVa//93woCSRK7qLXSJ4Iz14yyoGNhiJHrx/1TzeaMpjCwThlPdqI8L1sk1P0r4x9F2mOfVeWOSIy0w=="
    code, _, _ = run(capsys, "export", cap, "--to", tmp_path / "x", "--format", "csv")
    assert code == 0
    text = (tmp_path / "x" / "stun.csv").read_text()
    assert token not in text and "<redacted>" in text and "Coturn-4.4.5.4 'Ardee West'" in text
    run(capsys, "export", cap, "--to", tmp_path / "y", "--format", "csv", "--show-secrets")
    assert token in (tmp_path / "y" / "stun.csv").read_text()
