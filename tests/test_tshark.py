"""The bounded tshark runner: version, field table against the installed tshark, subset export."""

from __future__ import annotations

import re
import subprocess

import pytest

from rtcforensics.dissect import tshark
from rtcforensics.errors import ToolError
from rtcforensics.tables import signalling

pytestmark = pytest.mark.skipif(tshark.tshark_path() is None, reason="tshark not installed")


def test_every_field_the_code_uses_exists_in_installed_tshark() -> None:
    # Fails when a tshark upgrade renames or drops a field we read (4.0 -> 4.6 drift).
    resolved = tshark.resolve_fields(tshark.FIELDS)
    known = tshark.field_types()
    assert set(resolved) == set(tshark.FIELDS)
    for logical, abbrev in resolved.items():
        assert abbrev in known, logical
    assert set(signalling.TSHARK_FIELDS) <= set(tshark.FIELDS)


def test_every_preference_we_set_exists_in_installed_tshark() -> None:
    known = tshark.known_prefs()
    assert tshark.KEYLOG_PREF in known
    assert [p for p in tshark.PREFS if p.split(":", 1)[0] not in known] == []


def test_field_types_match_tshark_dash_G() -> None:
    out = subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True, check=True).stdout
    rows = {p[2]: p[3] for p in (ln.split("\t") for ln in out.splitlines()) if len(p) > 3 and p[0] == "F"}
    types = tshark.field_types()
    for abbrev in ("http.file_data", "websocket.payload.text", "tcp.stream", "frame.time_epoch"):
        assert types[abbrev] == rows[abbrev]


def test_version_is_the_installed_one() -> None:
    out = subprocess.run(["tshark", "--version"], capture_output=True, text=True, check=True).stdout
    expected = re.search(r"TShark \(Wireshark\) (\d+\.\d+\.\d+)", out).group(1)
    assert tshark.tshark_version() == expected
    assert tshark.version_tuple() >= (4, 0, 0)


def test_unknown_field_raises_tool_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tshark.FIELDS, "bogus", ("no.such.field.anywhere",))
    with pytest.raises(ToolError, match="no.such.field.anywhere"):
        tshark.resolve_fields(["bogus"])


def test_capture_options_refused_and_missing_file_named(tmp_path) -> None:
    with pytest.raises(ToolError, match="capture option"):
        tshark.run_tool(["-i", "lo", "-r", "x"], path="x")
    missing = tmp_path / "nothere.pcap"
    with pytest.raises(ToolError, match="nothere.pcap"):
        tshark.export(missing, ["frame"])


def test_not_a_capture_is_a_tool_error_naming_the_file(tmp_path) -> None:
    bad = tmp_path / "garbage.pcap"
    bad.write_bytes(b"this is not a capture file at all" * 10)
    with pytest.raises(ToolError, match="garbage.pcap"):
        tshark.export(bad, ["frame", "protocols"])


def test_time_limit_raises_tool_error(realcaps) -> None:
    with pytest.raises(ToolError, match="did not finish"):
        tshark.run_tool(
            ["-r", str(realcaps / "sipcapture_heplify" / "rtp_rtcp_sip_ipv4_udp.pcap")],
            path="rtp_rtcp_sip_ipv4_udp.pcap",
            timeout=0.001,
        )


def test_time_formats_of_4_0_and_4_6_parse_alike() -> None:
    assert tshark.parse_time("1501770877.501001000") == 1501770877501001000
    assert tshark.parse_time("2017-08-03T14:34:37.501001000Z") == 1501770877501001000
    assert tshark.parse_time("") is None


def test_control_plane_subset_maps_frames_back(realcaps) -> None:
    # Dissecting only frames 4..27 (copied into a temporary capture) gives the same messages with the
    # original frame numbers as dissecting the whole file.
    path = realcaps / "zeek" / "websocket.pcap"
    fields = ["ws_text", "http_method", "http_status"]
    whole = tshark.export(path, fields, display_filter="http || websocket")
    sub = tshark.export(path, fields, display_filter="http || websocket", frames=list(range(1, 28)))
    assert [(p.frame, p.fields) for p in whole] == [(p.frame, p.fields) for p in sub]
    texts = {p.frame: p.all("ws_text") for p in whole if p.all("ws_text")}
    assert texts[18] == ["Hello, WebSocket!"]


def test_export_raw_gives_unmasked_sip_over_websocket(sample, truth) -> None:
    path = sample("sip_ws")
    t = truth("sip_ws")["sip"]
    raw = tshark.export_raw(path, "sip", display_filter="websocket && sip")
    assert sorted(raw) == t["tshark_frames"]
    first_lines = [raw[f][0].split(b"\r\n", 1)[0].decode() for f in sorted(raw)]
    assert [ln for ln in first_lines if not ln.startswith("SIP/2.0")] == t["uac_sent"]
    assert [ln for ln in first_lines if ln.startswith("SIP/2.0")] == t["uas_sent"]
