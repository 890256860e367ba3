"""Certificate facts for the `dtls` frame, read with `cryptography`.

A DTLS Certificate message carries DER certificates; what an analyst compares with an SDP
``a=fingerprint`` is the SHA-256 of that DER (RFC 8122 §5), so the hash is taken over the bytes on the
wire, never over a re-encoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from ..errors import DecodeError


@dataclass(frozen=True)
class CertFacts:
    sha256: str  # lowercase hex of SHA-256(DER), no colons
    subject: str | None  # RFC 4514 string
    issuer: str | None
    key_type: str | None  # "RSA", "EC secp256r1", "Ed25519", ...
    key_bits: int | None
    sig_alg: str | None  # e.g. "ecdsa-with-SHA256", "sha256WithRSAEncryption"
    not_before: datetime | None  # UTC
    not_after: datetime | None
    self_signed: bool | None  # subject == issuer and the signature verifies with its own key
    serial: str | None  # lowercase hex


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _key_facts(key: object) -> tuple[str | None, int | None]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519", 256
    if isinstance(key, x448.X448PublicKey):
        return "X448", 448
    return (type(key).__name__ or None), None


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True


def _utc(cert: x509.Certificate, attr: str) -> datetime:
    aware = getattr(cert, f"{attr}_utc", None)  # cryptography >= 42
    if aware is not None:
        return aware.astimezone(timezone.utc)
    return getattr(cert, attr).replace(tzinfo=timezone.utc)


def cert_facts(der: bytes) -> CertFacts:
    """Facts of one DER certificate. The hash is always available; when the DER does not parse,
    ``DecodeError("x509_parse", ...)`` is raised and the caller keeps :func:`sha256_hex` alone."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as e:  # InvalidVersion is not a ValueError
        raise DecodeError("x509_parse", f"X.509 certificate cannot be parsed ({e})") from None
    key_type: str | None
    key_bits: int | None
    try:
        key_type, key_bits = _key_facts(cert.public_key())
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:  # unsupported key algorithm: keep the OID name
        key_type, key_bits = f"unsupported ({e})", None
    try:  # cryptography decodes fields lazily: a damaged name or time raises here, not at load
        try:
            sig_alg = cert.signature_algorithm_oid._name
        except Exception:
            sig_alg = cert.signature_algorithm_oid.dotted_string
        return CertFacts(
            sha256=sha256_hex(der),
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            key_type=key_type,
            key_bits=key_bits,
            sig_alg=sig_alg,
            not_before=cert.not_valid_before_utc.astimezone(timezone.utc),
            not_after=cert.not_valid_after_utc.astimezone(timezone.utc),
            self_signed=_self_signed(cert),
            serial=format(cert.serial_number, "x"),
        )
    except (ValueError, TypeError) as e:  # TypeError: e.g. a name attribute of an impossible ASN.1 type
        raise DecodeError("x509_parse", f"X.509 certificate cannot be parsed ({e})") from None
