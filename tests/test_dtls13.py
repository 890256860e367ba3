"""Decryption with keylogs: DTLS 1.0/1.2 records on the openssl/aiortc samples, the RFC 8446 key schedule on
a real TLS 1.3 record, DTLS 1.3 handshakes on the browser samples (when present)."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
from samples import load_truth, sample_names

import rtcforensics
from rtcforensics.anomalies import AnomalyLog
from rtcforensics.dissect.dtls import HandshakeType
from rtcforensics.dissect.dtls13 import _closest, hkdf_expand_label
from rtcforensics.dissect.keylog import parse_keylog, read_keylog
from rtcforensics.tables.dtls import analyze_datagrams, dtls_frame, handshake_row, tracker


def load(sample, truth, name, keylog=True):
    t = truth(name)
    path = sample(name)
    kl = path.with_name(t["keylog"]) if keylog and t.get("keylog") else None
    if keylog and (kl is None or not kl.exists()):
        pytest.skip(f"{name} has no keylog")
    return rtcforensics.load(path, keylog=kl, progress=False), t


def test_dtls10_and_12_cbc_application_data(sample, truth):
    # openssl s_client -> s_server, TLS_RSA_WITH_AES_128_CBC_SHA, MAC-then-encrypt with explicit IVs;
    # the text s_client sent is in the truth file
    cap, t = load(sample, truth, "weak_dtls")
    hss = tracker(cap).handshakes
    assert len(hss) == 2
    for hs, want in zip(hss, t["dtls"]):
        assert hs.client_hello.random.hex() == want["client_random"]
        assert hs.decryption == "decrypted" and hs.decrypt_errors == {}
        assert {"client", "server"} <= hs.finished
        texts = [p for (_, _, side, p) in hs.app_data if side == "client"]
        assert texts == [want["app_data"].encode() + b"\n"]
    df = cap.dtls
    assert df.decryption.tolist() == ["decrypted", "decrypted"]


def test_dtls12_gcm_application_data_is_sctp(sample, truth):
    cap, _ = load(sample, truth, "datachannel_only")
    (hs,) = tracker(cap).handshakes
    assert hs.decryption == "decrypted"
    assert len(hs.app_data) > 10
    # every record is an SCTP packet between ports 5000 (RFC 8841 default)
    assert {p[:4] for (_, _, _, p) in hs.app_data} == {bytes.fromhex("13881388")}


def test_keylog_of_another_capture(sample, truth):
    cap, _ = load(sample, truth, "weak_dtls", keylog=False)
    other = sample("datachannel_only").with_name("datachannel_only.keylog")
    if not other.exists():
        pytest.skip("datachannel_only.keylog not present")
    an = AnomalyLog()
    t = analyze_datagrams(cap.dissection.dtls, an, read_keylog(other))
    df = dtls_frame(t.handshakes, an)
    assert df.decryption.tolist() == ["undecryptable", "undecryptable"]
    assert all(d.startswith("keylog has no secrets for client random") for d in df.decryption_detail)
    # nothing else is lost
    assert df.server_cert_sha256.notna().all() and df.srtp_profile.notna().all()


def test_wrong_master_secret(sample, truth):
    cap, t = load(sample, truth, "weak_dtls", keylog=False)
    lines = []
    for want in t["dtls"]:
        lines.append(f"CLIENT_RANDOM {want['client_random']} {'11' * 48}")
    an = AnomalyLog()
    tr = analyze_datagrams(cap.dissection.dtls, an, parse_keylog("\n".join(lines)))
    df = dtls_frame(tr.handshakes, an)
    assert df.decryption.tolist() == ["undecryptable", "undecryptable"]
    assert df.decryption_detail.str.startswith("no record could be decrypted").all()
    # one anomaly per handshake, not one per record
    assert [r["name"] for r in an.rows] == ["dtls_decrypt_failed", "dtls_decrypt_failed"]
    assert df.cipher_suite.tolist() == ["TLS_RSA_WITH_AES_128_CBC_SHA"] * 2


def test_tls13_key_schedule_on_a_real_record(sample, truth):
    """HKDF-Expand-Label and the nonce rule are shared by TLS 1.3 and DTLS 1.3 (only the label prefix
    differs): decrypt the first encrypted record of clean_call's HTTPS signalling (TLS_AES_256_GCM_SHA384)
    with the keylog's SERVER_HANDSHAKE_TRAFFIC_SECRET: it must be EncryptedExtensions."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    path = sample("clean_call")
    kl = read_keylog(path.with_name("clean_call.keylog"))
    out = (
        subprocess.run(
            [
                "tshark",
                "-r",
                str(path),
                "-Y",
                "tls.handshake.type==2",
                "-T",
                "fields",
                "-e",
                "tcp.stream",
                "-e",
                "tls.handshake.ciphersuite",
                "-e",
                "frame.number",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        .stdout.split("\n")[0]
        .split("\t")
    )
    stream, suite, number = out
    assert suite == "0x1302"
    ch = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            f"tcp.stream=={stream} && tls.handshake.type==1",
            "-T",
            "fields",
            "-e",
            "tls.handshake.random",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()[0]
    payload = bytes.fromhex(
        subprocess.run(
            ["tshark", "-r", str(path), "-Y", f"frame.number=={number}", "-T", "fields", "-e", "tcp.payload"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    )
    pos, recs = 0, []
    while pos + 5 <= len(payload):
        n = int.from_bytes(payload[pos + 3 : pos + 5], "big")
        recs.append((payload[pos : pos + 5], payload[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    hdr, ct = next((h, c) for h, c in recs if h[0] == 23)
    secret = kl.get(bytes.fromhex(ch), "SERVER_HANDSHAKE_TRAFFIC_SECRET")
    key = hkdf_expand_label(secret, "key", b"", 32, "sha384", prefix=b"tls13 ")
    iv = hkdf_expand_label(secret, "iv", b"", 12, "sha384", prefix=b"tls13 ")
    inner = AESGCM(key).decrypt(iv, ct, hdr)  # sequence number 0: nonce = iv
    assert inner.rstrip(b"\0")[-1] == 22 and inner[0] == HandshakeType.ENCRYPTED_EXTENSIONS


def test_sequence_number_reconstruction():
    # RFC 9147 §4.2.2: the full number closest to (highest deprotected + 1) with the received low bits
    assert _closest(0x05, 8, 0) == 5
    assert _closest(0xFF, 8, 0x100) == 0xFF
    assert _closest(0x02, 8, 0x1FE) == 0x202
    assert _closest(0x1234, 16, 0x11230) == 0x11234


def test_chromium_dtls13_without_keys(sample, truth):
    """headless Chromium <-> Chromium: DTLS 1.3 recognised, encrypted parts flagged, nothing decrypted."""
    cap, t = load(sample, truth, "browsers_chromium", keylog=False)
    df = cap.dtls
    want = t["dtls"][0]
    r = df[df.client_random == want["client_random"]].iloc[0]
    assert r.version == "DTLS 1.3" and r.cipher_suite == want["cipher_suite"]
    assert r.key_share_groups[0] == "X25519MLKEM768" and r.key_exchange_group == "X25519MLKEM768"
    assert pd.isna(r.server_cert_sha256) and pd.isna(r.client_cert_sha256) and pd.isna(r.srtp_profile)
    assert {"server_certificate", "client_certificate", "srtp_profile"} <= set(r.encrypted_parts)
    assert r.decryption == "none" and r.completed == True
    assert len(cap.datachannels) == 0


def dtls13_keylog_samples() -> list[str]:
    names = [
        n
        for n in sample_names()
        if load_truth(n).get("keylog")
        and any(d.get("version") == "DTLS 1.3" for d in load_truth(n).get("dtls") or [])
    ]
    return names or ["(no DTLS 1.3 sample with a keylog yet)"]


@pytest.mark.parametrize("name", dtls13_keylog_samples())
def test_dtls13_decrypted_with_keylog(sample, truth, name):
    """Firefox -> Chromium, DTLS 1.3 with Firefox's SSLKEYLOGFILE: both certificates and the SRTP profile
    come out of the encrypted handshake and equal what the browsers reported."""
    cap, t = load(sample, truth, name)
    df = cap.dtls
    for want in t["dtls"]:
        r = df[df.client_random == want["client_random"]].iloc[0]
        assert r.version == want["version"] and r.decryption == "decrypted", r.decryption_detail
        assert r.server_cert_sha256 == want["server_cert_sha256"]
        assert r.client_cert_sha256 == want["client_cert_sha256"]
        assert r.srtp_profile == want["srtp_profile"]
        if want["version"] == "DTLS 1.3":
            assert r.server_cert_source == "decrypted" and r.srtp_profile_source == "decrypted"
            assert r.encrypted_parts == []  # everything encrypted was read
        hs = next(
            h
            for h in tracker(cap).handshakes
            if h.client_hello and h.client_hello.random.hex() == want["client_random"]
        )
        assert {"client", "server"} <= hs.finished


def test_decrypted_finished_messages(sample, truth):
    """Both epoch-1 Finished messages are decrypted and reassembled as handshake messages."""
    cap, _ = load(sample, truth, "datachannel_only")
    (hs,) = tracker(cap).handshakes
    fin = [m for m in hs.messages if m[2] == "finished"]
    assert [m[1] for m in fin] == ["client", "server"] and {m[3] for m in fin} == {"decrypted"}


@pytest.fixture
def firefox(sample, truth):
    name = "browsers_firefox_chromium"
    cap, t = load(sample, truth, name)
    return cap, t, sample(name).with_name(t["keylog"])


def _rebuild(cap, datagrams, keylog_text):
    an = AnomalyLog()
    tr = analyze_datagrams(datagrams, an, parse_keylog(keylog_text))
    return dtls_frame(tr.handshakes, an).iloc[0], an


def test_dtls13_one_bad_secret_loses_only_its_direction(firefox):
    cap, t, kl = firefox
    want = t["dtls"][0]
    lines = []
    for ln in kl.read_text().splitlines():
        if ln.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET"):
            label, cr, secret = ln.split()
            ln = f"{label} {cr} {'00' * (len(secret) // 2)}"
        lines.append(ln)
    r, an = _rebuild(cap, cap.dissection.dtls, "\n".join(lines))
    assert r.server_cert_sha256 == want["server_cert_sha256"] and r.srtp_profile == want["srtp_profile"]
    assert pd.isna(r.client_cert_sha256) and "client_certificate" in r.encrypted_parts
    assert r.decryption == "decrypted" and r.decryption_detail.startswith(
        "some records failed: dtls_decrypt_failed"
    )
    assert [a["name"] for a in an.rows] == ["dtls_decrypt_failed"]


def test_dtls13_reordered_and_truncated_records(firefox):
    cap, t, kl = firefox
    want = t["dtls"][0]
    dgs = list(cap.dissection.dtls)
    hs_frames = [i for i, d in enumerate(dgs) if d.sport == int(want["server"].rsplit(":", 1)[1])][:3]
    # the server's flight reordered (ServerHello stays first: it carries the clear hello)
    i, j = hs_frames[1], hs_frames[2]
    dgs[i], dgs[j] = dgs[j], dgs[i]
    r, an = _rebuild(cap, dgs, kl.read_text())
    assert (r.server_cert_sha256, r.client_cert_sha256, r.srtp_profile) == (
        want["server_cert_sha256"],
        want["client_cert_sha256"],
        want["srtp_profile"],
    )
    # the ServerHello's datagram arriving after the next one: the early records wait for the keys
    dgs = list(cap.dissection.dtls)
    i, j = hs_frames[0], hs_frames[1]
    dgs[i], dgs[j] = dgs[j], dgs[i]
    r, an = _rebuild(cap, dgs, kl.read_text())
    assert (r.server_cert_sha256, r.client_cert_sha256, r.srtp_profile) == (
        want["server_cert_sha256"],
        want["client_cert_sha256"],
        want["srtp_profile"],
    )
    assert r.encrypted_parts == [] and an.rows == []
    # a truncated datagram: what it carried is lost (and said), nothing else
    dgs = list(cap.dissection.dtls)
    k = hs_frames[2] if len(dgs[hs_frames[2]].data) > 200 else hs_frames[1]
    d = dgs[k]
    dgs[k] = type(d)(**{**{s: getattr(d, s) for s in d.__slots__}, "data": d.data[:-40]})
    r, an = _rebuild(cap, dgs, kl.read_text())
    assert r.version == "DTLS 1.3" and r.client_cert_sha256 == want["client_cert_sha256"]
    assert [(a["frame"], a["name"]) for a in an.rows] == [(d.frame, "dtls_record_truncated")]
    assert "server_finished" in r.encrypted_parts and "client_finished" not in r.encrypted_parts


def test_secrets_embedded_in_pcapng(sample, truth, tmp_path):
    """DTLS 1.0/1.2 keys carried in the capture itself (pcapng Decryption Secrets Block, as written by
    `editcap --inject-secrets tls,KEYLOG`): decrypted without a keylog= argument."""
    t = truth("weak_dtls")
    src = sample("weak_dtls")
    out = tmp_path / "weak_dtls_dsb.pcapng"
    subprocess.run(
        ["editcap", "--inject-secrets", f"tls,{src.with_name(t['keylog'])}", str(src), str(out)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    cap = rtcforensics.load(out, progress=False)
    assert cap.keylog is None
    assert cap.dtls.decryption.tolist() == ["decrypted", "decrypted"]
    assert [p for hs in tracker(cap).handshakes for (_, _, side, p) in hs.app_data if side == "client"] == [
        d["app_data"].encode() + b"\n" for d in t["dtls"]
    ]


def test_mutated_dtls13_records_with_keys_never_crash(firefox):
    """Bytes of the encrypted DTLS 1.3 flights mutated: decryption failures become anomalies, no exception."""
    cap, _, kl = firefox
    text = kl.read_text()
    base = list(cap.dissection.dtls)[:6]
    Dg = type(base[0])
    names = set()
    for k, d in enumerate(base):
        for pos in range(0, len(d.data), max(1, len(d.data) // 40)):
            data = d.data[:pos] + bytes([d.data[pos] ^ 0x5A]) + d.data[pos + 1 :]
            dgs = list(base)
            dgs[k] = Dg(**{**{s: getattr(d, s) for s in d.__slots__}, "data": data})
            an = AnomalyLog()
            tr = analyze_datagrams(dgs, an, parse_keylog(text))
            [handshake_row(h, an) for h in tr.handshakes]
            names |= {r["name"] for r in an.rows}
    assert "dtls_decrypt_failed" in names
    assert all(n.startswith(("dtls_", "x509_", "keylog_")) for n in names), names
