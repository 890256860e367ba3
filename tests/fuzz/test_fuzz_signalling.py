"""Fuzz: signalling bodies from HTTP / WebSocket payloads (SDP, trickle, JSON, SIP over WebSocket, forms,
multipart), SIP framing, header auth material and URL redaction."""

from __future__ import annotations


def test_fuzz_signalling_bodies(fuzz_target) -> None:
    fuzz_target("signalling")


def test_signalling_seeds_hold_sdp_and_sip(loaded_targets) -> None:
    seeds = loaded_targets.seeds("signalling")
    assert any(b'"sdp"' in s for s in seeds)
    assert any(s.startswith((b"INVITE ", b"SIP/2.0 ")) for s in seeds)
