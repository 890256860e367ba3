"""Fuzz: RTP headers (CSRC, extensions, padding) and RTCP compound packets."""

from __future__ import annotations


def test_fuzz_rtp_rtcp(fuzz_target) -> None:
    fuzz_target("rtp")


def test_rtp_seeds_decode(loaded_targets) -> None:
    from rtcforensics.dissect.rtp import decode_rtp

    seeds = [s for s in loaded_targets.seeds("rtp") if not 192 <= s[1] <= 223]
    assert len({decode_rtp(s).ssrc for s in seeds}) >= 2
