"""The `dtls` frame on real captures (values cross-checked with tshark 4.0.17) and on our samples' truth."""

from __future__ import annotations

import pandas as pd
import pytest
from dtls_realcap import dtls_datagrams
from samples import load_truth, sample_names, sample_path

from rtcforensics.anomalies import AnomalyLog
from rtcforensics.tables.dtls import DTLS, analyze_datagrams, dtls_frame


def frame_of(realcaps, cap):
    an = AnomalyLog()
    t = analyze_datagrams(dtls_datagrams(realcaps / cap), an)
    return dtls_frame(t.handshakes, an), an


@pytest.mark.realcaps
def test_chrome_123_handshake_row(realcaps):
    df, an = frame_of(realcaps, "pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap")
    assert list(df.columns) == DTLS.names and len(df) == 1 and an.rows == []
    r = df.iloc[0]
    assert r.client == "10.1.0.129:54427" and r.server == "10.1.0.129:59458"
    assert r.frames == [1, 2, 3, 4, 5] and r.first_frame == 1
    assert r.version == "DTLS 1.2" and r.versions_offered == ["DTLS 1.2"]
    assert r.cipher_suite == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    assert r.client_suites[:3] == [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ]
    assert r.srtp_profiles_offered == [
        "SRTP_AES128_CM_HMAC_SHA1_80",
        "SRTP_AEAD_AES_256_GCM",
        "SRTP_AEAD_AES_128_GCM",
    ]
    assert r.srtp_profile == "SRTP_AES128_CM_HMAC_SHA1_80" and r.srtp_profile_source == "clear"
    # tshark dtls.handshake.certificate, SHA-256 over the DER
    assert r.server_cert_sha256 == "78a799a1ea31e8c278b878ee32c79b327798e99f49d5a10f5bec0b8593ca9115"
    assert r.client_cert_sha256 == "f2943e72daa138fdabcae2ee2f26159bf89eeb08b9e27d50c8a6691afff60105"
    assert r.client_cert_subject == "CN=WebRTC" and r.client_cert_source == "clear"
    assert r.ems == True and r.renegotiation_info == True
    assert r.key_exchange_group == "x25519"
    assert r.extensions_offered == [
        "extended_master_secret",
        "renegotiation_info",
        "supported_groups",
        "ec_point_formats",
        "session_ticket",
        "signature_algorithms",
        "use_srtp",
    ]
    assert r.completed == True and r.alerts == [] and r.encrypted_parts == []
    assert r.ja3_hash == "c14667d7da3e6f7a7ab5519ef78c2452" and r.ja4.startswith("dd2i1107")
    assert r.decryption == "none"
    assert df.ts_first.dtype == "datetime64[ns, UTC]"
    assert r.retransmissions == 1  # frame 2 repeats the ClientHello of frame 1


@pytest.mark.realcaps
def test_dtls10_with_32bit_srtp_tag(realcaps):
    df, _ = frame_of(realcaps, "nDPI/stun_dtls_unidirectional_server.pcap")
    r = df.iloc[0]
    assert r.version == "DTLS 1.0" and r.cipher_suite == "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
    assert r.srtp_profile == "SRTP_AES128_CM_HMAC_SHA1_32"
    assert pd.isna(r.client_random)  # server side only: no ClientHello in this capture
    assert len(r.server_chain_sha256) == 1  # tshark: one dtls.handshake.certificate (in 3 fragments)
    df, _ = frame_of(realcaps, "nDPI/stun_dtls_unidirectional_client.pcap")
    r = df.iloc[0]
    assert r.srtp_profiles_offered == ["SRTP_AES128_CM_HMAC_SHA1_32", "SRTP_AES128_CM_HMAC_SHA1_80"]
    # no ServerHello in the capture; the client's epoch-1 Finished (tshark frame 4) has record version 0xfeff
    assert r.version == "DTLS 1.0" and r.version_source == "record" and r.handshake_seen == True
    assert pd.isna(r.completed)


@pytest.mark.realcaps
def test_unparseable_cert_keeps_hash_and_adds_anomaly(realcaps):
    df, an = frame_of(realcaps, "nDPI/stun_dtls_unidirectional_server.pcap")
    r = df.iloc[0]
    assert len(r.server_cert_sha256) == 64 and pd.isna(r.server_cert_subject)
    assert [a["name"] for a in an.rows] == ["x509_parse"]


@pytest.mark.realcaps
def test_fragmented_certificates_and_two_flows(realcaps):
    df, an = frame_of(realcaps, "nDPI/dtls_certificate_fragments.pcap")
    assert an.rows == []
    assert list(df.version) == ["DTLS 1.0", "DTLS 1.2"]
    assert list(df.cipher_suite) == ["TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    assert df.server_cert_sha256.tolist() == [
        "d02499c9e402f8d5db6d878a09cc0af8da355288ae296ae3bae9133d1818cdbc",
        "4a799416443fbd05415ac720f312547000735d33002d2c809b39e19f2da74987",
    ]
    assert df.srtp_profile.iloc[1] == "SRTP_AES128_CM_HMAC_SHA1_80" and pd.isna(df.srtp_profile.iloc[0])
    assert df.completed.tolist() == [True, True]


@pytest.mark.realcaps
def test_chacha_and_aes256gcm_profile(realcaps):
    df, _ = frame_of(realcaps, "nDPI/geforcenow.pcapng")
    r = df.iloc[0]
    assert r.cipher_suite == "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
    assert r.srtp_profile == "SRTP_AEAD_AES_256_GCM"
    assert r.server_cert_subject == "CN=NVIDIA GameStream" and r.server_cert_self_signed == True


@pytest.mark.realcaps
def test_dtls13_without_keys(realcaps):
    df, an = frame_of(realcaps, "zeek/dtls13-wolfssl.pcap")
    assert an.rows == []
    r = df.iloc[0]
    assert r.version == "DTLS 1.3" and r.versions_offered == ["DTLS 1.3"]
    assert r.cipher_suite == "TLS_AES_128_GCM_SHA256" and r.hello_retry == True
    assert r.key_exchange_group == "secp256r1"
    assert pd.isna(r.server_cert_sha256) and pd.isna(r.srtp_profile)
    assert {"server_certificate", "srtp_profile", "encrypted_extensions"} <= set(r.encrypted_parts)
    assert pd.isna(r.ems) and r.decryption == "none"
    assert r.completed == True  # the client sent epoch-3 records
    assert r.frames == list(range(1, 16))


@pytest.mark.realcaps
def test_dtls13_hellos_only_and_cid(realcaps):
    df, _ = frame_of(realcaps, "zeek/dtls13-cid.pcap")
    assert df.version.isna().tolist() == [True, False, True, True, False]
    assert df.version.iloc[1] == "DTLS 1.3"
    assert df.connection_id_client.iloc[1] == b"I am a client CID".hex()
    assert df.connection_id_server.iloc[1] == b"fancy server CID".hex()
    # ClientHellos that got no answer: the handshake failed
    assert df.completed.iloc[0] == False


@pytest.mark.realcaps
def test_alert_row(realcaps):
    df, _ = frame_of(realcaps, "nDPI/dtls.pcap")
    assert len(df) == 3
    assert df.alerts.iloc[1][0]["description"] == "unexpected_message"
    assert df.completed.iloc[1] == False
    assert df.srtp_profiles_offered.iloc[0] == ["SRTP_AES128_CM_HMAC_SHA1_80"]  # tshark: 0x0001 in frame 1
    assert df.srtp_profiles_offered.iloc[2] is None  # the DTLS 1.3 localhost ClientHello has no use_srtp
    assert df.version.iloc[2] == "DTLS 1.3"


def test_empty_frame_has_schema():
    df = dtls_frame([], AnomalyLog())
    assert list(df.columns) == DTLS.names and len(df) == 0
    assert str(df.server_cert_key_bits.dtype) == "Int32"


@pytest.mark.parametrize("name", [n for n in sample_names() if load_truth(n).get("dtls")])
def test_dtls_truth_through_load(name, sample, truth):
    """Every DTLS fact of a sample's truth file, through rtcforensics.load (with its keylog when it has one)."""
    import rtcforensics

    t = truth(name)
    path = sample(name)
    keylog = path.with_name(t["keylog"]) if t.get("keylog") else None
    cap = rtcforensics.load(path, keylog=keylog, progress=False)
    df = cap.dtls
    assert df.client_random.nunique() == len(t["dtls"])
    for want in t["dtls"]:
        rows = df[df.client_random == want["client_random"]]
        # relayed through one TURN server on both sides, the same handshake is seen on both legs
        assert len(rows) == (2 if want.get("via_turn") and len(df) == 2 else 1), want
        for _, r in rows.iterrows():
            check_row(r, want, keylog)
        if want.get("via_turn"):
            # the truth's endpoints are the relays' when the relays talk UDP to each other
            # (turn_tls_relay: alice TURN-TLS, bob TURN-TCP); the leg a peer reaches through TURN is unwrapped
            assert rows.via_turn.notna().any(), want


def check_row(r, want, keylog):
    if not want.get("via_turn") or pd.isna(r.via_turn):
        assert (r.client, r.server) == (want["client"], want["server"])
    else:
        assert r.via_turn in ("channel", "data_indication", "send_indication")
    assert r.version == want["version"]
    assert r.cipher_suite == want["cipher_suite"]
    if want.get("completed") is True:
        assert r.completed == True
    elif want.get("completed") is False:
        # a peer that rejects the certificate after the handshake completed on the wire sends an alert
        assert r.completed == False or len(r.alerts) > 0
    if "extended_master_secret" in want:
        assert r.ems == want["extended_master_secret"]
    if want.get("encrypted_handshake") and keylog is None:
        assert pd.isna(r.server_cert_sha256) and "server_certificate" in r.encrypted_parts
        assert pd.isna(r.srtp_profile) and "srtp_profile" in r.encrypted_parts
    else:
        assert r.srtp_profile == want["srtp_profile"]
        assert r.server_cert_sha256 == want["server_cert_sha256"]
        assert r.client_cert_sha256 == want["client_cert_sha256"]
    if keylog is not None and keylog_has_secret(keylog, want):
        assert r.decryption == "decrypted", r.decryption_detail
    elif keylog is not None:
        # a keylog of TLS secrets only (signalling over HTTPS/WSS): nothing to decrypt this handshake with
        assert r.decryption != "decrypted"


def keylog_has_secret(keylog, want) -> bool:
    """The truth's ``keylog_has_secret`` where the lab set it, else whether the keylog keys this client random."""
    if "keylog_has_secret" in want:
        return bool(want["keylog_has_secret"])
    from rtcforensics.dissect.keylog import read_keylog

    return bytes.fromhex(want["client_random"]) in read_keylog(keylog)


def test_certificate_valid_until_9999_never_breaks_the_frame(monkeypatch):
    # issue 19: RFC 5280's "no expiry" (99991231235959Z) is beyond pandas' nanosecond range; the handshake stays,
    # the date is clipped with a flag and an anomaly row, and DTLS005 still sees the absurd validity
    import dataclasses
    from datetime import datetime, timezone

    import rtcforensics
    from rtcforensics.tables import dtls as tdtls

    real = tdtls.cert_facts

    def forever(der):
        return dataclasses.replace(
            real(der), not_after=datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
        )

    monkeypatch.setattr(tdtls, "cert_facts", forever)
    cap = rtcforensics.load(sample_path("weak_dtls"))
    d = cap.dtls
    t = load_truth("weak_dtls")
    assert len(d) == len(t["dtls"]) and d["server_cert_sha256"].notna().all()
    assert d["server_cert_dates_clipped"].all()
    assert (d["server_cert_not_after"].dt.year == 2262).all()
    assert (d["server_cert_not_after_text"] == "9999-12-31T23:59:59+00:00").all()
    assert (cap.anomalies["name"] == "cert_date_out_of_range").sum() >= len(d)
    r = rtcforensics.analyze(cap, only=["dtls-cert-weak"])
    # the date the certificate writes, not a day count from the clipped one
    said = [f.message for f in r.findings if "valid" in f.message]
    assert said and all(
        m.endswith("certificate: valid until 9999-12-31 (beyond the timestamp range)") for m in said
    )


# --- mid-session captures: no handshake, only protected records (issue 14 item 6) ----------------------------

_TSHARK_VERSION = {"0xfeff": "DTLS 1.0", "0xfefd": "DTLS 1.2", "0x0100": "DTLS 0.9 (OpenSSL pre-0.9.8f)"}


def _tshark_rows(path, filt, fields_):
    from media_tshark import fields

    return fields(path, fields_, display_filter=filt, heuristics=False)


def _cut(src, dst, first):
    """``editcap -r src dst first-``: the capture as if it had started at frame ``first``."""
    import subprocess

    subprocess.run(
        ["editcap", "-r", str(src), str(dst), f"{first}-1000000"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return dst


@pytest.mark.parametrize("name", ["datachannel_only", "weak_dtls"])
def test_mid_session_row_from_record_headers(name, tmp_path):
    import rtcforensics

    src = sample_path(name)
    first_app = int(_tshark_rows(src, "dtls.record.content_type==23", ["frame.number"])[0][0])
    cut = _cut(src, tmp_path / f"{name}_mid.pcapng", first_app)
    df = rtcforensics.load(cut, progress=False).dtls
    # tshark on the cut capture: the first application-data record's sender and receiver and its version
    src_ip, sport, dst_ip, dport, ver = _tshark_rows(
        cut,
        "dtls.record.content_type==23",
        ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "dtls.record.version"],
    )[0]
    r = df[df.client == f"{src_ip}:{sport}"].iloc[0]
    assert r.server == f"{dst_ip}:{dport}"
    assert r.handshake_seen == False and r.version_source == "record"
    assert r.version == _TSHARK_VERSION[ver.split(",")[0]]
    assert r.completed == True  # application data flows: the handshake was over before the capture began
    assert pd.isna(r.client_random) and pd.isna(r.cipher_suite)
    flt = f"dtls && !icmp && udp.port=={sport} && udp.port=={dport}"
    flow_frames = {int(f) for (f,) in _tshark_rows(cut, flt, ["frame.number"])}
    assert set(r.frames) == flow_frames
    # the handshakes the cut kept stay rows of their own, read from the handshake
    assert (df.handshake_seen == (df.version_source == "handshake")).all()


@pytest.mark.realcaps
def test_mid_session_realcap_google_meet(realcaps):
    # nDPI/stun_google_meet.pcapng: flow to Google's 142.250.82.76:3478 starts with application data (frame 89)
    import rtcforensics

    path = realcaps / "nDPI/stun_google_meet.pcapng"
    df = rtcforensics.load(path, progress=False).dtls
    r = df[df.handshake_seen == False]
    assert len(r) == 1
    r = r.iloc[0]
    src_ip, sport, dst_ip, dport, ver = _tshark_rows(
        path, "frame.number==89", ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "dtls.record.version"]
    )[0]
    assert (
        (r.client, r.server)
        == (f"{src_ip}:{sport}", f"{dst_ip}:{dport}")
        == ("142.250.82.76:3478", "192.168.12.156:38152")
    )
    assert r.version == _TSHARK_VERSION[ver] == "DTLS 1.2" and r.version_source == "record"
    assert r.first_frame == 89 and r.completed == True
    assert (df[df.handshake_seen].version_source == "handshake").all()


@pytest.mark.realcaps
def test_dtls1_bad_ver_from_records(realcaps, tmp_path):
    # nDPI/dtls_old_version.pcapng speaks DTLS1_BAD_VER (0x0100, OpenSSL before 0.9.8f) in every record header;
    # cut at frame 7 (ServerHello, ChangeCipherSpec, epoch-1 Finished) the version still reads from the records
    from rtcforensics.dissect.fastpath import dissect

    src = realcaps / "nDPI/dtls_old_version.pcapng"
    cut = _cut(src, tmp_path / "old_mid.pcapng", 7)
    versions = {v for (vs,) in _tshark_rows(cut, "dtls", ["dtls.record.version"]) for v in vs.split(",")}
    assert versions == {"0x0100"}
    an = AnomalyLog()
    t = analyze_datagrams(dissect(cut, progress=False).dtls, an)
    assert len(t.handshakes) == 1 and t.handshakes[0].record_version == 0x0100
    df = dtls_frame(t.handshakes, an)
    assert df.version.tolist() == [_TSHARK_VERSION["0x0100"]] and df.handshake_seen.tolist() == [True]
    assert (df.client.iloc[0], df.server.iloc[0]) == ("37.188.4.115:56453", "70.66.6.128:443")
