"""The media_injection sample (lab/scenarios/media_attacks.py): an aiortc call (DTLS-SRTP, keylog) into which an
attacker on the same LAN sends (a) ffmpeg plain RTP from its own address to the callee's media port and (b) ffmpeg
SRTP under its own key, spoofing the caller's address, port and audio SSRC, in two bursts: one with sequence
numbers behind the real stream (the callee's libsrtp turned them away at its replay window without checking
their tag) and one ahead (libsrtp failed their tag).

Ground truth comes from the stacks (truth file) and from tshark: the attacker's frames are the ones whose
Ethernet source is the attacker's MAC, whatever IP source they carry.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from samples import SAMPLES, load_truth, sample_path

import rtcforensics
from rtcforensics.checks.analyze import analyze

pytest.importorskip("pylibsrtp")
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

NAME = "media_injection"


def _truth() -> dict:
    return load_truth(NAME)


def _load(path: Path | None = None) -> rtcforensics.Capture:
    return rtcforensics.load(path or sample_path(NAME), keylog=SAMPLES / _truth()["keylog"])


@cache
def _report():
    return analyze(_load())


@cache
def _streams():
    return _load().decrypt().streams


def _tshark(fields: list[str], flt: str, path: Path | None = None) -> list[list[str]]:
    from lab.truthlib import tshark_fields

    return tshark_fields(path or sample_path(NAME), fields, display_filter=flt)


def _injected_frames() -> list[int]:
    """Frames the attacker sent from the spoofed (caller's) address: the caller's IP, the attacker's MAC."""
    a = _truth()["attack"]
    ip = a["spoofed_source"].rsplit(":", 1)[0]
    return [int(r[0]) for r in _tshark(["frame.number"], f"eth.src == {a['attacker_mac']} && ip.src == {ip}")]


def test_the_stacks_did_what_the_scenario_says():
    a = _truth()["attack"]
    rx = a["victim_srtp_rx"][str(a["inject"]["ssrc"])]
    bursts = a["inject"]["bursts"]
    # the callee's libsrtp: every aiortc packet accepted, every injected one rejected, half at the replay window
    assert rx["rtp_accepted"] == a["aiortc_sent_on_ssrc"]["rtp"]
    assert rx["reasons"] == {
        "rtp: replay check failed (index too old)": bursts["behind"]["packets"],
        "rtp: authentication failure": bursts["ahead"]["packets"],
    }
    assert a["victim_srtp_rx"][str(a["probe"]["ssrc"])]["reasons"] == {
        "rtp: authentication failure": a["probe"]["packets"]
    }
    # the tap saw every injected packet, all from the attacker's MAC under the caller's address
    assert len(_injected_frames()) == a["inject"]["packets"] == 30
    # ARP stayed truthful: only the caller's MAC ever claimed the caller's address
    ip = a["spoofed_source"].rsplit(":", 1)[0]
    claims = {r[0] for r in _tshark(["eth.src"], f"arp.opcode == 2 && arp.src.proto_ipv4 == {ip}")}
    assert claims <= {a["macs"]["alice"]}


def test_auth_failure_finding_is_exactly_the_injected_packets():
    t = _truth()
    a = t["attack"]
    got = [f for f in _report().findings if f.slug == "srtp-auth-failure"]
    assert len(got) == 1
    f = got[0]
    assert f.endpoints == [a["spoofed_source"], a["victim_media"]]
    assert f.evidence["ssrc"] == a["inject"]["ssrc"]
    assert sorted(f.frames) == _injected_frames()
    assert f.evidence["auth_failed"] == a["inject"]["packets"]
    # the real packets of the spoofed stream all authenticate: what aiortc sent on that SSRC, SRTP and SRTCP
    assert f.evidence["authenticated"] == a["aiortc_sent_on_ssrc"]["rtp"] + a["aiortc_sent_on_ssrc"]["rtcp"]
    assert f.evidence["status"] == "partly authenticated" and f.severity == "high"


def test_injected_packets_behind_the_window_are_auth_failures_not_replays():
    """libsrtp rejects the 'behind' burst as 'index too old' before looking at the tag; their tags do not verify,
    so they are authentication failures (before the fix they were counted as 15 replays)."""
    a = _truth()["attack"]
    st = _streams()
    row = st[(st.ssrc == a["inject"]["ssrc"]) & (st.sender == a["spoofed_source"])].iloc[0]
    assert int(row.replayed) == 0
    assert int(row.auth_failed) == a["inject"]["packets"]
    assert int(row.rtp_packets) == a["aiortc_sent_on_ssrc"]["rtp"] + a["inject"]["packets"]
    behind = a["inject"]["bursts"]["behind"]
    lo = behind["first_seq"]
    seqs = {int(r[0]): int(r[1]) for r in _tshark(["frame.number", "rtp.seq"], "rtp")}
    behind_frames = {fr for fr in _injected_frames() if (seqs[fr] - lo) % 65536 < behind["packets"]}
    assert len(behind_frames) == behind["packets"]
    assert behind_frames <= set(row.failed_frames)


def test_the_callee_stream_is_untouched():
    t = _truth()
    a = t["attack"]
    st = _streams()
    callee = st[st.sender == a["victim_media"]]
    assert len(callee) == 1
    row = callee.iloc[0]
    want = next(r for r in t["rtp"] if r["src"] == a["victim_media"])
    assert (
        row.status == "authenticated"
        and int(row.rtp_packets) == want["packets"]
        and int(row.auth_failed) == 0
    )


def test_unsolicited_media_names_the_attacker():
    a = _truth()["attack"]
    got = [f for f in _report().findings if f.slug == "unsolicited-media"]
    assert len(got) == 1, [(f.endpoints, f.message) for f in got]
    f = got[0]
    assert f.endpoints == [a["probe"]["src"], a["victim_media"]]
    assert f.endpoints[0].rsplit(":", 1)[0] == a["attacker"]
    assert f.evidence["packets"] == a["probe"]["packets"] and f.evidence["classes"] == ["rtp"]
    attacker_frames = {
        int(r[0])
        for r in _tshark(["frame.number"], f"eth.src == {a['attacker_mac']} && ip.src == {a['attacker']}")
    }
    assert set(f.frames) <= attacker_frames
    # the spoofed stream rides on the consented flow: no unsolicited-media for it
    assert not [g for g in got if a["spoofed_source"] in g.endpoints]


def test_probe_stream_has_no_key():
    a = _truth()["attack"]
    st = _streams()
    row = st[st.ssrc == a["probe"]["ssrc"]].iloc[0]
    assert row.status == "no key" and int(row.rtp_packets) == a["probe"]["packets"]


# -- the tag verifier used for replay-rejected packets, against libsrtp on real packets ----------------------


@pytest.mark.parametrize("name", [NAME, "sdes_plain_rtp", "clean_call"])
def test_tag_verifier_agrees_with_libsrtp(name):
    from rtcforensics.srtp.collect import collect_media
    from rtcforensics.srtp.verify import rtp_tag_verifies

    t = load_truth(name)
    keylog = SAMPLES / t["keylog"] if t.get("keylog") and (SAMPLES / t["keylog"]).exists() else None
    cap = rtcforensics.load(sample_path(name), keylog=keylog)
    res = cap.decrypt()
    packets = {p.frame: p for p in collect_media(cap.path)[0]}
    checked = 0
    for st in res.states.values():
        if st.key is None:
            continue
        for frame, *_ in st.plain:  # authenticated by libsrtp; these streams never wrapped (ROC 0)
            assert rtp_tag_verifies(st.key, packets[frame].data, 0)
            assert not rtp_tag_verifies(st.key, packets[frame].data, 1)
            checked += 1
        for frame in st.failed_frames:
            if not packets[frame].rtcp:
                assert not any(rtp_tag_verifies(st.key, packets[frame].data, r) for r in range(3))
    assert checked >= 250


def test_guess_index_follows_rfc3711():
    from rtcforensics.srtp.verify import guess_index

    assert guess_index(None, 1234) == 1234
    assert guess_index(40000, 41000) == 41000  # same ROC
    assert guess_index(65000, 10) == (1 << 16) | 10  # wrapped forward: ROC + 1
    assert guess_index((1 << 16) | 10, 65000) == 65000  # late packet from before the wrap: ROC - 1
    assert guess_index(10, 65000) == 65000  # ROC - 1 would be negative: stays at 0
    assert guess_index((3 << 16) | 30000, 20000) == (3 << 16) | 20000


# -- genuine replays still count as replays ------------------------------------------------------------------


def test_a_genuine_replay_is_still_a_replay(tmp_path):
    """Append one real SRTP packet and one real SRTCP packet of the caller's stream again at the end of the
    capture (mergecap -a): their indices were seen, their tags verify -> replayed, nothing more auth-failed."""
    if shutil.which("mergecap") is None or shutil.which("editcap") is None:
        pytest.skip("mergecap/editcap not installed")
    a = _truth()["attack"]
    ip, port = a["spoofed_source"].rsplit(":", 1)
    mac = a["macs"]["alice"]
    rtp = [
        int(r[0])
        for r in _tshark(
            ["frame.number"], f"eth.src == {mac} && ip.src == {ip} && udp.srcport == {port} && rtp && !rtcp"
        )
    ]
    # SRTCP: RTCP packet type SR (200) or RR (201) in the second byte (RFC 3550 §6.4; aiortc sends compounds)
    rtcp = [
        int(r[0])
        for r in _tshark(
            ["frame.number"],
            f"eth.src == {mac} && ip.src == {ip} && udp.srcport == "
            f"{port} && (udp.payload[1:1] == c8 || udp.payload[1:1] == c9)",
        )
    ]
    assert rtp and rtcp
    frames = [rtp[len(rtp) // 2]] + rtcp[:1]
    one = tmp_path / "dup.pcapng"
    subprocess.run(
        ["editcap", "-r", str(sample_path(NAME)), str(one), *map(str, frames)],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "replayed.pcapng"
    subprocess.run(
        ["mergecap", "-a", "-w", str(out), str(sample_path(NAME)), str(one)], check=True, capture_output=True
    )
    st = _load(out).decrypt().streams
    row = st[(st.ssrc == a["inject"]["ssrc"]) & (st.sender == a["spoofed_source"])].iloc[0]
    assert int(row.replayed) == len(frames)
    assert int(row.auth_failed) == a["inject"]["packets"]
    assert int(row.authenticated) == a["aiortc_sent_on_ssrc"]["rtp"] + a["aiortc_sent_on_ssrc"]["rtcp"]
