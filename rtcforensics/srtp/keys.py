"""SRTP master keys: SDES a=crypto inline keys (RFC 4568) and DTLS-SRTP keying material (RFC 5764 §4.2).

DTLS-SRTP: the keying material is the TLS exporter output for label "EXTRACTOR-dtls_srtp" and no context,
``2 * (key_len + salt_len)`` bytes long, laid out as client key | server key | client salt | server salt.
- DTLS 1.0 / 1.2: the exporter is the handshake PRF over master_secret, label, client_random + server_random
  (RFC 5705): P_SHA256 for 1.2 (or the suite's PRF hash), MD5 ⊕ SHA-1 for 1.0.
- DTLS 1.3: RFC 8446 §7.5: HKDF-Expand-Label(Derive-Secret(exporter_master_secret, label, ""), "exporter",
  Hash(""), length) — with the "dtls13" label prefix of RFC 9147 §5.9.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from ..dissect.dtls import DTLS1_0, DTLS1_2
from ..dissect.dtls13 import hkdf_expand_label, prf
from ..errors import DecodeError

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"


@dataclass(frozen=True)
class Profile:
    """An SRTP protection profile: IANA DTLS-SRTP name, SDES suite name, key/salt/tag lengths in bytes."""

    dtls_name: str
    sdes_name: str | None
    key_len: int
    salt_len: int
    rtp_tag_len: int
    libsrtp: str  # attribute name on pylibsrtp.Policy


PROFILES: tuple[Profile, ...] = (
    Profile(
        "SRTP_AES128_CM_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_80", 16, 14, 10, "SRTP_PROFILE_AES128_CM_SHA1_80"
    ),
    Profile(
        "SRTP_AES128_CM_HMAC_SHA1_32", "AES_CM_128_HMAC_SHA1_32", 16, 14, 4, "SRTP_PROFILE_AES128_CM_SHA1_32"
    ),
    Profile("SRTP_AEAD_AES_128_GCM", "AEAD_AES_128_GCM", 16, 12, 16, "SRTP_PROFILE_AEAD_AES_128_GCM"),
    Profile("SRTP_AEAD_AES_256_GCM", "AEAD_AES_256_GCM", 32, 12, 16, "SRTP_PROFILE_AEAD_AES_256_GCM"),
)


def profile(name: str) -> Profile:
    """Look a profile up by its DTLS-SRTP (IANA) or SDES (RFC 4568 / 7714) name."""
    for p in PROFILES:
        if name in (p.dtls_name, p.sdes_name):
            return p
    raise DecodeError("srtp_unknown_profile", f"SRTP profile {name!r} is not supported for decryption")


@dataclass(frozen=True)
class MasterKey:
    profile: Profile
    key: bytes
    salt: bytes

    @property
    def key_salt(self) -> bytes:
        return self.key + self.salt


def parse_inline(suite: str, inline: str) -> MasterKey:
    """Parse an SDES key: suite name and ``inline:BASE64[|lifetime][|MKI:len]`` (the ``inline:`` prefix optional)."""
    p = profile(suite)
    text = inline.strip()
    text = text.removeprefix("inline:")
    b64 = text.split("|", 1)[0]
    try:
        raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("sdes_key_base64", "SDES inline key is not valid base64") from None
    if len(raw) != p.key_len + p.salt_len:
        raise DecodeError(
            "sdes_key_length",
            f"SDES inline key has {len(raw)} bytes, {p.sdes_name} needs {p.key_len + p.salt_len}",
        )
    return MasterKey(p, raw[: p.key_len], raw[p.key_len :])


def parse_key_spec(spec: str) -> tuple[int | None, MasterKey]:
    """Parse a user key ``[SSRC=]SUITE inline:BASE64`` (SSRC decimal or 0x-hex; ':' or space after the suite)."""
    ssrc: int | None = None
    text = spec.strip()
    if not text:
        raise DecodeError("srtp_key_spec", "empty key: expected [SSRC=]SUITE inline:BASE64")
    if "=" in text.split()[0] and not text.startswith("inline:"):
        head, text = text.split("=", 1)
        try:
            ssrc = int(head, 0)
        except ValueError:
            raise DecodeError("srtp_key_spec", f"SSRC {head!r} is not a number") from None
        if not 0 <= ssrc < 1 << 32:
            raise DecodeError("srtp_key_spec", f"SSRC {head!r} does not fit in 32 bits")
    text = text.replace(":inline:", " inline:", 1)
    parts = text.split(None, 1)
    if len(parts) != 2:
        raise DecodeError("srtp_key_spec", "key is not of the form [SSRC=]SUITE inline:BASE64")
    return ssrc, parse_inline(parts[0], parts[1])


# The PRFs and HKDF-Expand-Label are the DTLS module's (one implementation for record keys and exporters).


def tls12_prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str = "sha256") -> bytes:
    return prf(DTLS1_2, hash_name, secret, label, seed, length)


def tls10_prf(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    return prf(DTLS1_0, "sha256", secret, label, seed, length)


def tls13_exporter(
    exporter_secret: bytes,
    label: bytes,
    context: bytes,
    length: int,
    hash_name: str = "sha256",
    prefix: bytes = b"dtls13",
) -> bytes:
    """RFC 8446 §7.5 exporter over the EXPORTER_SECRET (``prefix`` b"tls13" for a TLS-labelled stack)."""
    empty = hashlib.new(hash_name, b"").digest()
    derived = hkdf_expand_label(exporter_secret, label.decode(), empty, len(empty), hash_name, prefix=prefix)
    return hkdf_expand_label(
        derived, "exporter", hashlib.new(hash_name, context).digest(), length, hash_name, prefix=prefix
    )


def split_keying_material(material: bytes, p: Profile) -> tuple[MasterKey, MasterKey]:
    """RFC 5764 §4.2: client key | server key | client salt | server salt → (client, server) master keys."""
    k, s = p.key_len, p.salt_len
    if len(material) != 2 * (k + s):
        raise DecodeError("srtp_keying_length", "DTLS-SRTP keying material has the wrong length")
    return (
        MasterKey(p, material[:k], material[2 * k : 2 * k + s]),
        MasterKey(p, material[k : 2 * k], material[2 * k + s :]),
    )


def dtls12_srtp_keys(
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    p: Profile,
    version: str = "DTLS 1.2",
    prf_hash: str = "sha256",
) -> tuple[MasterKey, MasterKey]:
    """Client and server SRTP master keys for a DTLS 1.0/1.2 handshake."""
    n = 2 * (p.key_len + p.salt_len)
    seed = client_random + server_random
    if version == "DTLS 1.0":
        material = tls10_prf(master_secret, EXPORTER_LABEL, seed, n)
    else:
        material = tls12_prf(master_secret, EXPORTER_LABEL, seed, n, prf_hash)
    return split_keying_material(material, p)


def dtls13_srtp_keys(
    exporter_secret: bytes, p: Profile, hash_name: str = "sha256", prefix: bytes = b"dtls13"
) -> tuple[MasterKey, MasterKey]:
    """Client and server SRTP master keys for a DTLS 1.3 handshake from its EXPORTER_SECRET."""
    n = 2 * (p.key_len + p.salt_len)
    return split_keying_material(
        tls13_exporter(exporter_secret, EXPORTER_LABEL, b"", n, hash_name, prefix), p
    )
