"""Keylog contents never reach an output (issue 19 item 5): a line the reader cannot use is an anomaly that
says which line and what is wrong with it, never its label or any of its bytes. The keylog is the clean_call
sample's own, with one line's label altered (as the hostile corpus does)."""

from __future__ import annotations

from samples import SAMPLES

from rtcforensics.anomalies import AnomalyLog
from rtcforensics.dissect.keylog import parse_keylog


def test_a_line_with_an_unknown_label_is_reported_without_its_content() -> None:
    lines = (SAMPLES / "clean_call.keylog").read_text().splitlines()
    k = next(j for j, ln in enumerate(lines) if ln.strip() and not ln.startswith("#"))
    label, rnd, sec = lines[k].split()
    lines[k] = f"{label}X{sec[:24]} {rnd} {sec}"
    log = AnomalyLog()
    kl = parse_keylog("\n".join(lines), log, "sslkeys.log")
    (row,) = log.rows
    assert row["name"] == "keylog_bad_line" and kl.bad_lines == 1 and kl.secrets
    assert (
        row["detail"]
        == f"sslkeys.log: keylog line {k + 1} has an unknown label ({len(label) + 25} characters)"
    )
    for piece in (label, sec[:8], rnd[:8], sec[-8:]):
        assert piece not in row["detail"]
