"""Fuzz: the SDP parser (candidates, crypto, fingerprints) and SDP inside JSON at any depth."""

from __future__ import annotations


def test_fuzz_sdp(fuzz_target) -> None:
    fuzz_target("sdp")


def test_fuzz_jsonsdp(fuzz_target) -> None:
    fuzz_target("jsonsdp")


def test_sdp_seeds_parse(loaded_targets) -> None:
    from rtcforensics.dissect.sdp import parse_sdp

    parsed = [parse_sdp(s.decode("utf-8", "replace")) for s in loaded_targets.seeds("sdp")]
    assert any(sd.all_fingerprints() for sd in parsed) and any(sd.all_candidates() for sd in parsed)
