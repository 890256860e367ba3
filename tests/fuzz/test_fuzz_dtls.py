"""Fuzz: DTLS records, handshake reassembly and messages (tracker, non-strict), and X.509 certificates."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rtcforensics.dissect import x509
from rtcforensics.errors import DecodeError


def test_fuzz_dtls(fuzz_target) -> None:
    fuzz_target("dtls")


def test_fuzz_x509(fuzz_target) -> None:
    fuzz_target("x509")


def _ec_cert() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, "WebRTC")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        cx.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_regression_unknown_public_key_oid() -> None:
    # fuzz crash: a bit flip turned id-ecPublicKey (1.2.840.10045.2.1) into 1.18.840.10045.2.1;
    # cert.public_key() raised cryptography's UnsupportedAlgorithm out of x509.cert_facts
    der = _ec_cert()
    oid = bytes.fromhex("06072a8648ce3d0201")
    assert der.count(oid) == 1
    bad = der.replace(oid, bytes.fromhex("06075a8648ce3d0201"))
    facts = x509.cert_facts(bad)
    assert facts.key_type.startswith("unsupported") and facts.key_bits is None
    assert facts.sha256 == x509.sha256_hex(bad)
    assert x509.cert_facts(der).key_type == "EC secp256r1"


def test_x509_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as e:
        x509.cert_facts(_ec_cert()[:-40])
    assert e.value.name == "x509_parse"


def test_regression_issuer_decoded_lazily() -> None:
    # fuzz crash: cryptography decodes names lazily, so a certificate whose issuer CN is invalid UTF-8 loads,
    # then cert.issuer raised ValueError out of x509.cert_facts; now the documented DecodeError(x509_parse)
    der = _ec_cert()
    good = b"\x0c\x06WebRTC"  # UTF8String "WebRTC": issuer first, then subject
    i = der.index(good)
    bad = der[:i] + b"\x0c\x06Web\xffTC" + der[i + len(good) :]
    with pytest.raises(DecodeError) as e:
        x509.cert_facts(bad)
    assert e.value.name == "x509_parse" and "issuer" in e.value.detail


def test_regression_invalid_x509_version() -> None:
    # fuzz crash: a version field of 11 made load_der_x509_certificate raise cryptography's InvalidVersion
    # (not a ValueError) out of x509.cert_facts
    der = _ec_cert()
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (v3)
    assert der.count(v3) == 1
    with pytest.raises(DecodeError) as e:
        x509.cert_facts(der.replace(v3, bytes.fromhex("a00302010b")))
    assert e.value.name == "x509_parse" and "version" in e.value.detail


def test_regression_name_attribute_of_impossible_type() -> None:
    # fuzz crash: an issuer CN encoded as a BIT STRING loads, then cert.issuer raised TypeError
    # ("oid must be X500_UNIQUE_IDENTIFIER for BitString type") out of x509.cert_facts
    der = _ec_cert()
    good = b"\x0c\x06WebRTC"
    i = der.index(good)
    bad = der[:i] + b"\x03\x06\x00WebRT" + der[i + len(good) :]
    with pytest.raises(DecodeError) as e:
        x509.cert_facts(bad)
    assert e.value.name == "x509_parse"
