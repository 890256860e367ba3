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
    (["analyze", "{sample}", "--param", "ICE005.min_packets=abc"],
     "check parameter 'ICE005.min_packets' takes an integer (default 10), not 'abc'"),
    (["analyze", "{sample}", "--param", "ICE005.min_packets=2.5"],
     "check parameter 'ICE005.min_packets' takes an integer (default 10), not 2.5"),
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
    code, out, _ = run(capsys, "decrypt", sample_path("clean_call"), "--keylog", SAMPLES / t["keylog"], "-o", tmp_path)
    assert code == 0
    rows = _decrypt_rows(out)
    for s in t["rtp"]:
        row = rows[(f"{s['src']} → {s['dst']}", f"{s['ssrc']:#010x}")]
        rtp, rtcp = map(int, row[1].split("+"))
        assert row[0] == "authenticated" and rtp == s["packets"] and row[2:4] == [f"{rtp + rtcp}/{rtp + rtcp}", "0"]
        assert row[4].startswith("dtls-srtp:")
    assert (tmp_path / "decrypted.pcap").exists() and list(tmp_path.glob("*_opus.wav"))


def test_decrypt_reports_the_tampered_frame_and_exits_1(capsys, tmp_path):
    from corrupt import tampered_sdes_capture

    sample_path("sdes_plain_rtp")  # skips when absent
    bad, victim = tampered_sdes_capture(tmp_path / "flipped.pcapng")
    code, out, _ = run(capsys, "decrypt", bad, "-o", tmp_path / "out")
    assert code == 1
    assert "partly authenticated" in out and f"failed authentication in frame(s) {victim}\n" in out


@pytest.mark.parametrize("key,needle", [
    ("", "--key #1: empty key"),
    ("1=AES_CM_128_HMAC_SHA1_80:inline:bm90LWEta2V5LWF0LWFsbA!!", "--key #1: SDES inline key is not valid base64"),
    ("1=AES_CM_128_HMAC_SHA1_80:inline:c2hvcnQta2V5", "--key #1: SDES inline key has 9 bytes"),
    ("x1=AES_CM_128_HMAC_SHA1_80:inline:c2hvcnQta2V5", "--key #1: SSRC 'x1' is not a number"),
    ("4294967296=AES_CM_128_HMAC_SHA1_80:inline:FfLxRxclZ/lNM/g5MNSZgmvAUzR/pgSIVyOHUHji",
     "--key #1: SSRC '4294967296' does not fit in 32 bits"),
    ("AES_CM_128_HMAC_SHA1_80", "--key #1: key is not of the form [SSRC=]SUITE inline:BASE64"),
])
def test_decrypt_malformed_key_exits_2_without_echoing_it(capsys, tmp_path, key, needle):
    code, out, err = run(capsys, "decrypt", sample_path("sdes_plain_rtp"), "-o", tmp_path, "--key", key)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith(f"rtcforensics: error: {needle}")
    secret = key.split("inline:")[-1] if "inline:" in key else None
    assert not secret or secret not in err
    assert not list(tmp_path.iterdir())  # refused before anything was read or written


@pytest.mark.realcaps
@pytest.mark.parametrize("capture", ["ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap",
                                     "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap",
                                     "veondigital_srtp_decoder/TCP_call_1.pcap",
                                     "veondigital_srtp_decoder/udp_call_02_03_client.pcap"])
def test_decrypt_third_party_sdes_calls_with_published_keys(capsys, tmp_path, realcaps, capture):
    published = [k for k in json.loads((realcaps / "sdes_keys.json").read_text()) if k["capture"] == capture]
    argv = ["decrypt", realcaps / capture, "-o", tmp_path]
    for k in published:
        argv += ["--key", f"{k['ssrc']}={k['suite']}:inline:{k['inline_key_b64']}"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    rows = _decrypt_rows(out)
    verified = {ssrc: r for (_, ssrc), r in rows.items() if r[0] == "authenticated"}
    assert verified and set(verified) <= {f"{int(k['ssrc'], 16):#010x}" for k in published}
    for r in verified.values():  # a key that authenticates verifies every packet of its stream
        done, total = r[2].split("/")
        assert done == total and r[3] == "0" and r[4] == "user"
    assert list(tmp_path.glob("*.wav")) and (tmp_path / "decrypted.pcap").exists()
    assert not [k for k in published if k["inline_key_b64"] in out + err]
