"""Record decryption with keylog secrets: DTLS 1.3 (RFC 9147 + RFC 8446 key schedule) and DTLS 1.0/1.2.

DTLS 1.3 (RFC 9147):
- traffic keys from the keylog's traffic secrets with HKDF-Expand-Label, whose label prefix is "dtls13"
  instead of TLS 1.3's "tls13 " (§5.9): ``key``, ``iv`` and the record-number key ``sn`` (§4.2.3);
- epoch 2 = handshake secrets, epoch 3 = ``*_TRAFFIC_SECRET_0``, each KeyUpdate one more ("traffic upd");
- the sequence number is unmasked with AES-ECB(sn_key, ciphertext[0..15]) (ChaCha20 for ChaCha suites),
  rebuilt to the full value closest to the last one + 1 (§4.2.2); nonce = iv XOR 64-bit sequence number;
  the additional data is the unified header as sent but with the sequence number unmasked (§4);
- the plaintext is DTLSInnerPlaintext: content, the real content type, zero padding.

DTLS 1.0/1.2 (RFC 6347, RFC 5246/4346 PRF, RFC 5288 GCM, RFC 7905 ChaCha20, RFC 7366 encrypt-then-MAC):
the key block comes from the ``CLIENT_RANDOM`` master secret and both randoms; sequence numbers in the
MAC / additional data are epoch (16 bits) || sequence (48 bits).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from ..errors import DecodeError
from .dtls import DTLS1_0, DTLS1_3, ClientHello, Record, ServerHello, iana_name
from .keylog import KeyLog

# ---------------------------------------------------------------------------------------------------------
# DTLS 1.3


def hkdf_expand_label(
    secret: bytes, label: str, context: bytes, length: int, hash_name: str, prefix: bytes = b"dtls13"
) -> bytes:
    """RFC 8446 §7.1 HKDF-Expand-Label with the DTLS 1.3 label prefix (RFC 9147 §5.9)."""
    full = prefix + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    algo = hashes.SHA384() if hash_name == "sha384" else hashes.SHA256()
    return HKDFExpand(algo, length, info).derive(secret)


@dataclass(frozen=True)
class Suite13:
    aead: str  # "gcm" | "chacha" | "ccm" | "ccm8"
    key_len: int
    hash_name: str


SUITES13 = {
    0x1301: Suite13("gcm", 16, "sha256"),
    0x1302: Suite13("gcm", 32, "sha384"),
    0x1303: Suite13("chacha", 32, "sha256"),
    0x1304: Suite13("ccm", 16, "sha256"),
    0x1305: Suite13("ccm8", 16, "sha256"),
}


def _aead(kind: str, key: bytes) -> Any:
    if kind == "gcm":
        return AESGCM(key)
    if kind == "chacha":
        return ChaCha20Poly1305(key)
    return AESCCM(key, tag_length=8 if kind == "ccm8" else 16)


@dataclass
class _Epoch13:
    key: bytes
    iv: bytes
    sn_key: bytes
    secret: bytes
    highest: int = -1


class Dtls13Decryptor:
    """Decrypts the unified-header records of one DTLS 1.3 handshake, both directions."""

    def __init__(self, suite: int, secrets: dict[str, dict[int, bytes]]) -> None:
        if suite not in SUITES13:
            raise DecodeError(
                "dtls_unsupported_suite",
                f"DTLS 1.3 cipher suite {iana_name('cipher_suites', suite)} cannot be decrypted",
            )
        self.suite = SUITES13[suite]
        self._secrets = secrets  # side -> {epoch: traffic secret}
        self._epochs: dict[tuple[str, int], _Epoch13] = {}
        self.ok = 0
        self.failed = 0

    def _keys(self, side: str, epoch: int) -> _Epoch13 | None:
        k = self._epochs.get((side, epoch))
        if k is not None:
            return k
        by_epoch = self._secrets.get(side, {})
        secret = by_epoch.get(epoch)
        if secret is None and epoch > 3:
            prev = self._keys(side, epoch - 1)
            if prev is not None:  # RFC 8446 §7.2 key update
                secret = hkdf_expand_label(
                    prev.secret, "traffic upd", b"", len(prev.secret), self.suite.hash_name
                )
        if secret is None:
            return None
        s = self.suite
        k = _Epoch13(
            hkdf_expand_label(secret, "key", b"", s.key_len, s.hash_name),
            hkdf_expand_label(secret, "iv", b"", 12, s.hash_name),
            hkdf_expand_label(secret, "sn", b"", s.key_len, s.hash_name),
            secret,
        )
        self._epochs[(side, epoch)] = k
        return k

    def _mask(self, sn_key: bytes, sample: bytes) -> bytes:
        if self.suite.aead == "chacha":
            # RFC 9147 §4.2.3: ciphertext[0..3] is the block counter, [4..15] the nonce: the 16-byte
            # counter||nonce layout `cryptography` takes for raw ChaCha20
            enc = Cipher(algorithms.ChaCha20(sn_key, sample), mode=None).encryptor()
            return enc.update(bytes(16))
        enc = Cipher(algorithms.AES(sn_key), modes.ECB()).encryptor()
        return enc.update(sample) + enc.finalize()

    def decrypt_unified(self, rec: Record, side: str) -> tuple[int, int, bytes]:
        """(content type, epoch, content) of one unified-header record sent by ``side``."""
        ct = rec.payload
        if len(ct) < 16:
            raise DecodeError("dtls_record_too_short", "DTLS 1.3 encrypted record is shorter than 16 bytes")
        last = None
        for epoch in self._candidate_epochs(side, rec.epoch):
            k = self._keys(side, epoch)
            if k is None:
                continue
            mask = self._mask(k.sn_key, ct[:16])
            nbytes = rec.seq_bits // 8
            low = rec.seq ^ int.from_bytes(mask[:nbytes], "big")
            seq = _closest(low, rec.seq_bits, k.highest + 1)
            seq_off = 1 + (len(rec.cid) if rec.cid is not None else 0)
            aad = rec.header[:seq_off] + low.to_bytes(nbytes, "big") + rec.header[seq_off + nbytes :]
            nonce = bytes(a ^ b for a, b in zip(k.iv, seq.to_bytes(12, "big")))
            try:
                inner = _aead(self.suite.aead, k.key).decrypt(nonce, ct, aad)
            except InvalidTag:
                last = epoch
                continue
            k.highest = max(k.highest, seq)
            self.ok += 1
            body = inner.rstrip(b"\x00")
            if not body:
                raise DecodeError("dtls_inner_plaintext", "DTLS 1.3 inner plaintext has no content type")
            return body[-1], epoch, body[:-1]
        self.failed += 1
        if last is None:
            raise DecodeError(
                "dtls_no_epoch_keys",
                f"DTLS 1.3 record of epoch bits {rec.epoch} from the {side}: no secret in the keylog",
            )
        raise DecodeError(
            "dtls_decrypt_failed",
            f"DTLS 1.3 record from the {side} failed authentication with the keylog's secrets",
        )

    def _candidate_epochs(self, side: str, bits: int) -> list[int]:
        known = sorted({e for (s, e) in self._epochs if s == side} | set(self._secrets.get(side, {})))
        top = max(known) if known else 3
        cands = [e for e in range(2, top + 2) if e & 3 == bits]
        return sorted(cands, key=lambda e: -e)


def _closest(low: int, bits: int, expected: int) -> int:
    """The full sequence number with these low bits nearest to ``expected`` (RFC 9147 §4.2.2)."""
    span = 1 << bits
    base = expected - (expected % span) + low
    best = min((base - span, base, base + span), key=lambda c: (abs(c - expected), c))
    return max(best, low)


# ---------------------------------------------------------------------------------------------------------
# DTLS 1.0 / 1.2


def _p_hash(name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = b""
    a = seed
    while len(out) < length:
        a = hmac.new(secret, a, name).digest()
        out += hmac.new(secret, a + seed, name).digest()
    return out[:length]


def prf(version: int, hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """TLS PRF: RFC 5246 §5 (DTLS 1.2) or the MD5/SHA-1 PRF of RFC 4346 §5 (DTLS 1.0 = TLS 1.1)."""
    if version == DTLS1_0:
        half = (len(secret) + 1) // 2
        a = _p_hash("md5", secret[:half], label + seed, length)
        b = _p_hash("sha1", secret[len(secret) - half :], label + seed, length)
        return bytes(x ^ y for x, y in zip(a, b))
    return _p_hash(hash_name, secret, label + seed, length)


@dataclass(frozen=True)
class Suite12:
    kind: str  # "gcm" | "chacha" | "ccm" | "ccm8" | "cbc"
    key_len: int
    mac: str | None  # hmac hash for cbc
    fixed_iv: int
    prf_hash: str


def suite12(code: int) -> Suite12:
    name = iana_name("cipher_suites", code)
    prf_hash = "sha384" if name.endswith("_SHA384") else "sha256"
    aes_len = 32 if "AES_256" in name else 16
    if "CHACHA20_POLY1305" in name:
        return Suite12("chacha", 32, None, 12, prf_hash)
    if "_AES_" in name and "_GCM_" in name:
        return Suite12("gcm", aes_len, None, 4, prf_hash)
    if "_AES_" in name and name.endswith("_CCM_8"):
        return Suite12("ccm8", aes_len, None, 4, prf_hash)
    if "_AES_" in name and name.endswith("_CCM"):
        return Suite12("ccm", aes_len, None, 4, prf_hash)
    if "_AES_" in name and "_CBC_" in name:
        mac = {"_SHA": "sha1", "_SHA256": "sha256", "_SHA384": "sha384"}.get(name[name.rindex("_") :])
        if mac is not None:
            return Suite12("cbc", aes_len, mac, 0, prf_hash)
    raise DecodeError("dtls_unsupported_suite", f"DTLS cipher suite {name} cannot be decrypted")


class Dtls12Decryptor:
    """Decrypts epoch-1 records of one DTLS 1.0/1.2 handshake from its master secret."""

    def __init__(
        self,
        version: int,
        suite: int,
        master: bytes,
        client_random: bytes,
        server_random: bytes,
        encrypt_then_mac: bool,
    ) -> None:
        s = suite12(suite)
        self.s = s
        self.version = version
        self.etm = encrypt_then_mac and s.kind == "cbc"
        self.mac_name = s.mac or "sha1"
        mac_len = hashlib.new(s.mac).digest_size if s.mac else 0
        need = 2 * mac_len + 2 * s.key_len + 2 * s.fixed_iv
        kb = prf(version, s.prf_hash, master, b"key expansion", server_random + client_random, need)
        i = 0

        def take(n: int) -> bytes:
            nonlocal i
            i += n
            return kb[i - n : i]

        self.mac_key = {"client": take(mac_len), "server": take(mac_len)}
        self.key = {"client": take(s.key_len), "server": take(s.key_len)}
        self.iv = {"client": take(s.fixed_iv), "server": take(s.fixed_iv)}
        self.ok = 0
        self.failed = 0

    def decrypt_record(self, rec: Record, side: str) -> bytes:
        if rec.epoch != 1:
            raise DecodeError(
                "dtls_epoch_unsupported",
                f"DTLS record of epoch {rec.epoch}: only epoch 1 keys come from the master secret",
            )
        seq8 = rec.epoch.to_bytes(2, "big") + rec.seq.to_bytes(6, "big")
        hdr = bytes([rec.content_type or 0]) + (rec.version or 0).to_bytes(2, "big")
        try:
            out = self._open(rec.payload, side, seq8, hdr)
        except DecodeError:
            self.failed += 1
            raise
        self.ok += 1
        return out

    def _fail(self) -> DecodeError:
        return DecodeError(
            "dtls_decrypt_failed", "DTLS record failed authentication with the keylog's master secret"
        )

    def _open(self, p: bytes, side: str, seq8: bytes, hdr: bytes) -> bytes:
        s = self.s
        key = self.key[side]
        if s.kind == "cbc":
            mac_len = len(self.mac_key[side])
            if self.etm:
                body, tag = p[:-mac_len], p[-mac_len:]
                want = hmac.new(
                    self.mac_key[side], seq8 + hdr + len(body).to_bytes(2, "big") + body, self.mac_name
                ).digest()
                if len(p) < 32 + mac_len or len(body) % 16 or not hmac.compare_digest(tag, want):
                    raise self._fail()
                plain = self._cbc(key, body)
                pad = plain[-1]
                if pad + 1 > len(plain):
                    raise self._fail()
                return plain[: -(pad + 1)]
            if len(p) < 32 or len(p) % 16:
                raise self._fail()
            plain = self._cbc(key, p)
            pad = plain[-1]
            if pad + 1 + mac_len > len(plain) or plain[-(pad + 1) :] != bytes([pad]) * (pad + 1):
                raise self._fail()
            content = plain[: -(pad + 1 + mac_len)]
            tag = plain[-(pad + 1 + mac_len) : -(pad + 1)]
            want = hmac.new(
                self.mac_key[side], seq8 + hdr + len(content).to_bytes(2, "big") + content, self.mac_name
            ).digest()
            if not hmac.compare_digest(tag, want):
                raise self._fail()
            return content
        tag_len = 8 if s.kind == "ccm8" else 16
        if s.kind == "chacha":
            nonce = bytes(a ^ b for a, b in zip(self.iv[side], bytes(4) + seq8))
            ct = p
        else:
            nonce = self.iv[side] + p[:8]
            ct = p[8:]
        if len(ct) < tag_len:
            raise self._fail()
        aad = seq8 + hdr + (len(ct) - tag_len).to_bytes(2, "big")
        try:
            return _aead(s.kind, key).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise self._fail() from None

    @staticmethod
    def _cbc(key: bytes, p: bytes) -> bytes:
        d = Cipher(algorithms.AES(key), modes.CBC(p[:16])).decryptor()
        return d.update(p[16:]) + d.finalize()


# ---------------------------------------------------------------------------------------------------------


def make_decryptor(keylog: KeyLog, ch: ClientHello, sh: ServerHello) -> Dtls13Decryptor | Dtls12Decryptor:
    """A decryptor for this handshake from ``keylog``; DecodeError (the reason) when there is none."""
    cr = ch.random
    if cr not in keylog:
        raise DecodeError(
            "keylog_no_secrets",
            f"keylog has no secrets for client random {cr.hex()[:16]}... (keylog of another capture?)",
        )
    version = sh.selected_version
    if version == DTLS1_3:
        g = keylog.get
        secrets = {
            "client": {
                e: s
                for e, s in (
                    (2, g(cr, "CLIENT_HANDSHAKE_TRAFFIC_SECRET")),
                    (3, g(cr, "CLIENT_TRAFFIC_SECRET_0")),
                )
                if s is not None
            },
            "server": {
                e: s
                for e, s in (
                    (2, g(cr, "SERVER_HANDSHAKE_TRAFFIC_SECRET")),
                    (3, g(cr, "SERVER_TRAFFIC_SECRET_0")),
                )
                if s is not None
            },
        }
        if not secrets["client"] and not secrets["server"]:
            raise DecodeError(
                "keylog_no_secrets",
                "keylog has no DTLS 1.3 traffic secrets for this client random "
                f"(labels: {', '.join(sorted(keylog.labels(cr)))})",
            )
        return Dtls13Decryptor(sh.cipher_suite, secrets)
    master = keylog.get(cr, "CLIENT_RANDOM")
    if master is None:
        raise DecodeError(
            "keylog_no_secrets", "keylog has no CLIENT_RANDOM master secret for this client random"
        )
    return Dtls12Decryptor(version, sh.cipher_suite, master, cr, sh.random, 22 in sh.ext.types)
