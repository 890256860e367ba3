"""Fuzz: SCTP inside DTLS (DATA / I-DATA reassembly, DCEP) and the keylog reader."""

from __future__ import annotations


def test_fuzz_sctp_dcep(fuzz_target) -> None:
    fuzz_target("sctp")


def test_fuzz_keylog(fuzz_target) -> None:
    fuzz_target("keylog")


def test_keylog_seeds_carry_no_secret(loaded_targets) -> None:
    # the keylog seeds keep the structure only: no real secret from the sample keylogs
    from pathlib import Path

    real = set()
    for k in Path(loaded_targets.SAMPLES).glob("*.keylog"):
        real |= {w for ln in k.read_text().splitlines() for w in ln.split()[1:]}
    assert real and not any(r.encode() in s for s in loaded_targets.seeds("keylog") for r in real)
