"""Read limits on every command that loads a capture (issue 19 item 3): ``--max-packets`` and ``--max-bytes``
(inflated bytes of a gzip-compressed capture), passed through ``capture.load`` to the fast path. A limit that cuts
the capture short is an anomaly and an incomplete run (exit 3, or 1 when findings at or above --fail-on decide
it), never silent; the findings of the packets read are kept.

weak_dtls (openssl s_client/s_server): its DTLS 1.0 handshake (192.0.2.30:50010 -> 192.0.2.40:4433) lies in
frames 9-20, its DTLS 1.2 handshake (:50012 -> :4434) in frames 33-40; 25 packets hold the first one only."""

from __future__ import annotations

import gzip
import json

import pytest
from samples import load_truth, sample_path

from rtcforensics import budget
from rtcforensics.cli import DEFAULT_MAX_PACKETS, build_parser, main, memory_budget

FIRST, SECOND = "192.0.2.30:50010", "192.0.2.30:50012"  # the clients of weak_dtls's two handshakes


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def _slugs_naming(findings, endpoint):
    return {f["slug"] for f in findings if endpoint in (f.get("endpoints") or [])}


@pytest.fixture(scope="module")
def truth():
    return load_truth("weak_dtls")


def test_max_packets_below_the_sample_s_count_is_incomplete_and_keeps_the_findings_read(capsys, truth):
    weak = sample_path("weak_dtls")
    code, out, err = run(
        capsys, "analyze", weak, "--max-packets", "25", "--format", "json", "--fail-on", "none"
    )
    assert code == 3, err
    doc = json.loads(out)
    assert doc["run"]["complete"] is False
    assert any("packet_limit" in r and "25 packets" in r for r in doc["run"]["incomplete_reasons"])
    assert "INCOMPLETE" in err
    # every finding the truth gives the first handshake is still reported; none of the unread second one
    first = {f["slug"] for f in truth["findings"] if FIRST in f["endpoints"]}
    assert first == {"dtls-weak-version", "dtls-weak-cipher", "srtp-weak-profile"}
    assert first <= _slugs_naming(doc["findings"], FIRST)
    assert not _slugs_naming(doc["findings"], SECOND)
    assert {"192.0.2.40:4433"} == {e for f in doc["findings"] for e in f["endpoints"] if e.endswith(":4433")}
    # findings at or above --fail-on still decide the exit code (its worst finding here is medium)
    assert run(capsys, "analyze", weak, "--max-packets", "25", "--fail-on", "medium")[0] == 1
    assert "INCOMPLETE RUN: capture packet_limit" in run(capsys, "analyze", weak, "--max-packets", "25")[1]


def test_max_packets_through_load_summary_export_and_decrypt(capsys, tmp_path):
    from rtcforensics import load

    weak = sample_path("weak_dtls")
    cap = load(weak, max_packets=25)
    assert list(cap.packets["frame"]) == list(range(1, 26))
    assert "packet_limit" in set(cap.anomalies["name"])
    code, _, err = run(capsys, "summary", weak, "--max-packets", "25")
    assert code == 3 and "packet_limit" in err
    code, _, err = run(
        capsys, "export", weak, "--to", tmp_path / "x", "--format", "csv", "--max-packets", "25"
    )
    assert code == 3 and "packet_limit" in err
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert any("packet_limit" in r for r in manifest["incomplete_reasons"])
    assert (tmp_path / "x" / "packets.csv").read_text().count("\n") == 26  # header + the 25 packets read
    code, _, err = run(capsys, "decrypt", weak, "-o", tmp_path / "d", "--max-packets", "25")
    assert code == 3 and "packet_limit" in err
    # without a limit the same sample is complete
    assert run(capsys, "summary", weak)[0] == 0


def test_max_bytes_bounds_the_inflated_size_of_a_gzip_capture(capsys, tmp_path, truth):
    gz = tmp_path / "weak_dtls.pcapng.gz"
    gz.write_bytes(gzip.compress(sample_path("weak_dtls").read_bytes()))
    code, out, err = run(capsys, "analyze", gz, "--max-bytes", "5K", "--format", "json", "--fail-on", "none")
    assert code == 3, err
    doc = json.loads(out)
    assert any("gzip_inflated_limit" in r and "5,120 bytes" in r for r in doc["run"]["incomplete_reasons"])
    # the reader stopped inside a block (packet 25 of the 5,120 inflated bytes is partial), the file did not
    # end there: the limit row alone, no capture_truncated ("file ends inside the block")
    capture_rows = [(a["name"], a["frame"]) for a in doc["anomalies"] if a["layer"] == "capture"]
    assert capture_rows == [("gzip_inflated_limit", 24)] and doc["capture"]["truncated"]
    assert {"dtls-weak-version", "dtls-weak-cipher"} <= _slugs_naming(doc["findings"], FIRST)
    assert not _slugs_naming(doc["findings"], SECOND)


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--max-packets", "0", "expected a positive number of packets"),
        ("--max-packets", "ten", "expected a positive number of packets"),
        ("--max-bytes", "4X", "expected a positive size"),
        ("--max-bytes", "0.1", "expected a positive size"),
        ("--max-memory", "4X", "expected a positive size"),
        ("--max-memory", "0.5", "expected a positive size"),
    ],
)
def test_bad_limits_are_one_line_usage_errors(capsys, option, value, said):
    code, out, err = run(capsys, "analyze", sample_path("weak_dtls"), option, value)
    assert code == 2 and said in err and option in err and "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1


def test_limit_defaults_are_documented_and_parsed():
    from rtcforensics.dissect.pcapio import MAX_INFLATED

    p = build_parser()
    for cmd in (
        ["analyze", "x"],
        ["summary", "x"],
        ["export", "x", "--to", "d"],
        ["decrypt", "x", "-o", "d"],
    ):
        a = p.parse_args(cmd)
        assert (a.max_packets, a.max_bytes, a.max_memory) == (DEFAULT_MAX_PACKETS, MAX_INFLATED, None), cmd
        assert memory_budget(a) == budget.default_limit()
    a = p.parse_args(
        ["analyze", "x", "--max-packets", "none", "--max-bytes", "1.5GiB", "--max-memory", "none"]
    )
    assert (a.max_packets, a.max_bytes, memory_budget(a)) == (None, 3 << 29, None)
    assert memory_budget(p.parse_args(["summary", "x", "--max-memory", "2G"])) == 2 << 30
    sub = next(x for x in p._subparsers._group_actions[0].choices.items() if x[0] == "analyze")[1]
    text = " ".join(sub.format_help().split())
    assert f"default {DEFAULT_MAX_PACKETS:_}" in text and f"default {MAX_INFLATED >> 30}G" in text
    assert (
        "--max-memory SIZE memory budget, e.g. 2G (default 75 % of the memory of the machine or container"
        in text
    )
