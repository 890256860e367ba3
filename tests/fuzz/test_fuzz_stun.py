"""Fuzz: STUN/TURN messages (attribute table, XOR addresses, integrity, fingerprint) and ChannelData."""

from __future__ import annotations


def test_fuzz_stun(fuzz_target) -> None:
    fuzz_target("stun")


def test_stun_seeds_are_real_messages(loaded_targets) -> None:
    from rtcforensics.dissect.stun import StunMessage

    parsed = [StunMessage.parse(s, strict=False) for s in loaded_targets.seeds("stun") if s[0] <= 3]
    assert parsed and {m.method_name for m in parsed} >= {"Binding", "Allocate"}
