"""Certificate facts from real DTLS certificates (cross-checked with tshark export + openssl x509)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest
from dtls_realcap import dtls_datagrams

from rtcforensics.dissect.dtls import DtlsTracker
from rtcforensics.dissect.x509 import cert_facts
from rtcforensics.errors import DecodeError

pytestmark = pytest.mark.realcaps


def chains(realcaps, cap):
    (hs,) = [h for h in DtlsTracker().feed_all(dtls_datagrams(realcaps / cap)).handshakes if h.certs][:1]
    return hs.certs


def test_self_signed_ecdsa_webrtc_cert(realcaps):
    certs = chains(realcaps, "nDPI/geforcenow.pcapng")
    f = cert_facts(certs["server"][0])
    assert f.subject == "CN=NVIDIA GameStream" and f.issuer == "CN=NVIDIA GameStream"
    assert f.key_type == "EC secp256r1" and f.key_bits == 256
    assert f.sig_alg == "ecdsa-with-SHA256"
    assert f.not_before == datetime(2022, 5, 21, 12, 24, 31, tzinfo=timezone.utc)
    assert f.not_after == datetime(2024, 5, 20, 12, 24, 31, tzinfo=timezone.utc)
    assert f.self_signed is True
    assert f.sha256 == hashlib.sha256(certs["server"][0]).hexdigest()
    c = cert_facts(certs["client"][0])
    assert c.subject == "CN=WebRTC" and c.not_after == datetime(2023, 6, 20, 12, 24, 31, tzinfo=timezone.utc)


def test_webpki_chain_is_not_self_signed(realcaps):
    certs = chains(realcaps, "nDPI/stun_zoom.pcapng")
    assert len(certs["server"]) == 3
    f = cert_facts(certs["server"][0])
    assert f.subject.startswith("CN=*.cloud.zoom.us,O=Zoom Video Communications")
    assert f.key_type == "RSA" and f.key_bits == 2048
    assert f.sig_alg == "sha256WithRSAEncryption"
    assert f.self_signed is False
    assert f.sha256 == "bf2af50bcc9945ec552ee2752718bdfa33e47fc84bc2d47aa9ba5a938afd1930"


def test_sha1_rsa_cert(realcaps):
    f = cert_facts(chains(realcaps, "zeek/dtls1_0.pcap")["server"][0])
    assert f.subject == "CN=bro" and f.key_type == "RSA" and f.key_bits == 2048
    assert f.sig_alg == "sha1WithRSAEncryption"


def test_non_der_cert_is_a_decode_error(realcaps):
    # the LiveFoundry certificate encodes the default version explicitly (BER, not DER): openssl reads it,
    # `cryptography` refuses — we report it and keep the hash
    der = chains(realcaps, "nDPI/stun_dtls_unidirectional_server.pcap")["server"][0]
    with pytest.raises(DecodeError) as e:
        cert_facts(der)
    assert e.value.name == "x509_parse"
    assert str(e.value).startswith("X.509 certificate cannot be parsed")


def test_truncated_cert_is_a_decode_error(realcaps):
    der = chains(realcaps, "nDPI/geforcenow.pcapng")["server"][0]
    with pytest.raises(DecodeError):
        cert_facts(der[:-20])
