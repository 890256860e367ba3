"""SSLKEYLOGFILE reading on the samples' keylogs; bad lines made by mutating real ones."""

from __future__ import annotations

import pytest

from rtcforensics.anomalies import AnomalyLog
from rtcforensics.dissect.keylog import parse_keylog, read_keylog
from rtcforensics.errors import InputError


def test_sample_keylog_tls13_and_dtls12_lines(sample, truth):
    path = sample("clean_call").with_name("clean_call.keylog")
    if not path.exists():
        pytest.skip("clean_call.keylog not present")
    an = AnomalyLog()
    kl = read_keylog(path, an)
    assert an.rows == [] and kl.bad_lines == 0
    dtls_cr = bytes.fromhex(truth("clean_call")["dtls"][0]["client_random"])
    assert kl.labels(dtls_cr) == {"CLIENT_RANDOM"}
    assert len(kl.get(dtls_cr, "CLIENT_RANDOM")) == 48
    # the HTTPS/WSS signalling connections are TLS 1.3: five labels per client random
    tls13 = [cr for cr in kl.secrets if cr != dtls_cr]
    assert tls13 and all(
        kl.labels(cr)
        == {
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
            "EXPORTER_SECRET",
        }
        for cr in tls13
    )


def test_bad_lines_become_anomalies_and_good_lines_stay(sample):
    path = sample("weak_dtls").with_name("weak_dtls.keylog")
    if not path.exists():
        pytest.skip("weak_dtls.keylog not present")
    good = [ln for ln in path.read_text().splitlines() if ln.startswith("CLIENT_RANDOM")]
    label, cr, secret = good[0].split()
    text = "\n".join(
        [
            "# comment",
            good[0],
            f"{label} {cr}",  # missing field
            f"CLIENT_RANDOM {cr} {secret[:-2]}zz",  # not hex
            f"CLIENT_RANDOM {cr[:-2]} {secret}",  # 31-byte random
            f"CLIENT_RANDOM {cr} {secret[:-2]}",  # 47-byte master secret
            f"SERVER_RANDOM_SECRET {cr} {secret}",  # unknown label
            good[1],
        ]
    )
    an = AnomalyLog()
    kl = parse_keylog(text, an, "k.log")
    assert len(kl) == 2 and kl.bad_lines == 5 and kl.lines == 7
    assert [r["name"] for r in an.rows] == ["keylog_bad_line"] * 5
    assert an.rows[0]["detail"] == "k.log: keylog line 3 has 2 fields, expected 3"
    assert an.rows[1]["detail"] == "k.log: keylog line 4 is not hexadecimal"
    assert an.rows[2]["detail"] == "k.log: keylog line 5 has a client random of 31 bytes, expected 32"
    assert an.rows[3]["detail"] == "k.log: keylog line 6 has a master secret of 47 bytes, expected 48"
    assert "unknown label" in an.rows[4]["detail"]
    assert kl.get(bytes.fromhex(cr), "CLIENT_RANDOM") == bytes.fromhex(secret)


def test_unreadable_keylog(tmp_path):
    with pytest.raises(InputError) as e:
        read_keylog(tmp_path / "missing.keylog")
    assert "missing.keylog" in str(e.value)


def test_wrong_keylog_is_said_in_the_report(sample):
    """A file that is no keylog, and the keylog of another session: both reach the report as warnings, and
    the keylog that belongs to the capture raises neither."""
    import rtcforensics
    from rtcforensics.report import jsonout

    cap_path = sample("clean_call")
    not_a_keylog = cap_path.with_name("clean_call.truth.json")
    other = cap_path.with_name("weak_dtls.keylog")
    own = cap_path.with_name("clean_call.keylog")
    if not (other.exists() and own.exists()):
        pytest.skip("keylogs not present")

    def warnings(keylog):
        return jsonout.input_warnings(
            jsonout.document(rtcforensics.analyze(rtcforensics.load(cap_path, keylog=keylog)))
        )

    w = warnings(not_a_keylog)
    lines = sum(1 for ln in not_a_keylog.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
    assert w == [
        f"keylog: {not_a_keylog}: no usable key line ({lines} line(s), {lines} unreadable): not an "
        "SSLKEYLOGFILE? Nothing can be decrypted with it"
    ]
    w = warnings(other)
    n_other = len({ln.split()[1] for ln in other.read_text().splitlines() if ln.strip()})
    assert w == [
        f"keylog: {other}: none of its {n_other} client random(s) belongs to one of the 1 DTLS "
        "handshake(s) of this capture (a keylog of another session?)"
    ]
    assert warnings(own) == []
