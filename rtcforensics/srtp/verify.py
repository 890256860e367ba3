"""Does an SRTP packet's authentication tag verify? Asked outside libsrtp's replay protection.

libsrtp estimates a packet's index (RFC 3711 §3.3.1) and checks it against the replay window *before* it
authenticates the packet; a packet it rejects as a replay ("bad index" / "index too old") was never
authenticated. A forger who does not know the stream's sequence numbers (an injected stream sharing a real
SSRC, a random sequence start) lands there about half of the time, so "rejected as a replay" does not say
"genuine packet seen twice". This module answers the question libsrtp skipped: whether the tag verifies with
the stream's key at a given rollover counter (ROC).

- Session keys: RFC 3711 §4.3 key derivation (AES-CM PRF, key derivation rate 0): labels 0x00 (cipher key),
  0x01 (authentication key), 0x02 (salt); the AEAD profiles use the same PRF (RFC 7714 §11) with their 96-bit
  master salt (zero-padded to the PRF's 112 bits, as libsrtp does).
- AES_CM + HMAC-SHA1 (RFC 3711 §4.2): tag = HMAC-SHA1(k_a, header ‖ encrypted payload ‖ ROC) truncated to the
  profile's tag length.
- AEAD_AES_GCM (RFC 7714 §8): IV = (0x0000 ‖ SSRC ‖ ROC ‖ SEQ) ⊕ k_s, associated data = the RTP header (with CSRCs
  and extension); the 16-byte tag is checked by decrypting.
"""

from __future__ import annotations

import functools
import hmac
from hashlib import sha1

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keys import MasterKey

LABEL_RTP_CIPHER, LABEL_RTP_AUTH, LABEL_RTP_SALT = 0x00, 0x01, 0x02
AUTH_KEY_LEN = 20  # HMAC-SHA1 session authentication key (RFC 3711 §4.2.1 / §8.2: n_a = 160)


def _prf(master: MasterKey, label: int, n: int) -> bytes:
    """RFC 3711 §4.3.1 with kdr = 0: x = (label ‖ 0^48) ⊕ master_salt, right-aligned in 112 bits;
    PRF_n(k_master, x) = first n bytes of AES-CM keystream with IV = x · 2^16."""
    x = bytearray(master.salt.ljust(14, b"\0"))
    x[7] ^= label
    enc = Cipher(algorithms.AES(master.key), modes.CTR(bytes(x) + b"\0\0")).encryptor()
    return enc.update(b"\0" * n) + enc.finalize()


@functools.lru_cache(maxsize=64)
def _session_keys(master: MasterKey) -> tuple[bytes, bytes, bytes]:
    p = master.profile
    return (
        _prf(master, LABEL_RTP_CIPHER, p.key_len),
        _prf(master, LABEL_RTP_AUTH, AUTH_KEY_LEN),
        _prf(master, LABEL_RTP_SALT, p.salt_len),
    )


def _header_len(pkt: bytes) -> int | None:
    """RTP header length (RFC 3550 §5.1, §5.3.1): fixed 12 bytes, CSRCs, and the extension when X is set."""
    n = 12 + 4 * (pkt[0] & 0x0F)
    if pkt[0] & 0x10:
        if len(pkt) < n + 4:
            return None
        n += 4 + 4 * int.from_bytes(pkt[n + 2 : n + 4], "big")
    return n if n <= len(pkt) else None


def rtp_tag_verifies(master: MasterKey, pkt: bytes, roc: int) -> bool:
    """True when ``pkt`` (an SRTP packet as on the wire, no MKI) authenticates with ``master`` at ``roc``."""
    p = master.profile
    hl = _header_len(pkt) if len(pkt) >= 12 else None
    if hl is None or len(pkt) < hl + p.rtp_tag_len or not 0 <= roc < 1 << 32:
        return False
    k_e, k_a, k_s = _session_keys(master)
    if p.dtls_name.startswith("SRTP_AEAD_AES_"):
        iv = bytes(a ^ b for a, b in zip(b"\0\0" + pkt[8:12] + roc.to_bytes(4, "big") + pkt[2:4], k_s))
        try:
            AESGCM(k_e).decrypt(iv, pkt[hl:], pkt[:hl])
        except InvalidTag:
            return False
        return True
    body, tag = pkt[: -p.rtp_tag_len], pkt[-p.rtp_tag_len :]
    want = hmac.new(k_a, body + roc.to_bytes(4, "big"), sha1).digest()[: p.rtp_tag_len]
    return hmac.compare_digest(want, tag)


def guess_index(highest: int | None, seq: int) -> int:
    """RFC 3711 §3.3.1 / Appendix A: the packet index a receiver whose highest index is ``highest`` gives a
    packet with sequence number ``seq`` (ROC 0 before any packet)."""
    if highest is None:
        return seq
    roc, s_l = highest >> 16, highest & 0xFFFF
    if s_l < 0x8000:
        v = roc - 1 if seq - s_l > 0x8000 else roc
    else:
        v = roc + 1 if s_l - 0x8000 > seq else roc
    return max(v, 0) << 16 | seq
