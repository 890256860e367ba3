"""Fuzz: RFC 7983 demultiplexing (scalar and vectorised classifiers must agree; TCP framing detection)."""

from __future__ import annotations


def test_fuzz_demux(fuzz_target) -> None:
    fuzz_target("demux")


def test_demux_target_checks_agreement(loaded_targets) -> None:
    # the target is not vacuous: it raises when the two classifiers disagree
    from rtcforensics.dissect import demux

    orig = demux.classify
    try:
        demux.classify = lambda data: demux.OTHER if orig(data) == demux.STUN else demux.STUN  # type: ignore
        stun_seed = next(s for s in loaded_targets.seeds("demux") if orig(s) == demux.STUN)
        try:
            loaded_targets.TARGETS["demux"](stun_seed)
        except AssertionError:
            pass
        else:
            raise AssertionError("a disagreement went unnoticed")
    finally:
        demux.classify = orig
