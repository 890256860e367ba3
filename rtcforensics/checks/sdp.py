"""SDP family: what the session descriptions themselves say (SDES keys, plain RTP, weak fingerprint hashes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .common import endpoints, frames_of, listish, parties, rows, val
from .context import CheckContext
from .registry import Confidence, Hit, Severity, check

PLAIN_PROTOS = ("RTP/AVP", "RTP/AVPF")
WEAK_FP_HASHES = {"md5": Severity.MEDIUM, "md2": Severity.MEDIUM, "sha-1": Severity.LOW}


def exposure(row: Any) -> str:
    """How a description reached us: ``clear`` (read off the wire without TLS), ``decrypted`` (inside TLS,
    read with the keylog), ``side`` (a side file given by the analyst) or ``unknown``."""
    src = str(val(row, "source", "") or "")
    if src and src not in ("wire", "capture"):
        return "side"
    if val(row, "decrypted", False):
        return "decrypted"
    tls = val(row, "tls", None)
    if tls is False:
        return "clear"
    if tls is True:
        return "decrypted"
    return "unknown"


def sdp_where(row: Any) -> dict[str, Any]:
    """Where a description was read: its role, transport, exposure (clear / decrypted / side) and origin; for
    a side file, which file."""
    where = {
        "role": val(row, "role"),
        "transport": val(row, "transport"),
        "exposure": exposure(row),
        "origin": val(row, "origin"),
    }
    if where["exposure"] == "side" and val(row, "source"):
        where["side_file"] = val(row, "source")
    return where


def sdp_endpoints(row: Any) -> list[str]:
    """Client address and server ip:port of the message that carried the description."""
    return endpoints(*parties(row))


@check(
    id="SDP001",
    slug="sdes-key-exposed",
    title="SRTP master key (SDES a=crypto) exposed in SDP",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    needs=("sdp",),
    references=("RFC 4568 §8.3", "RFC 8827 §6.5", "RFC 8826 §4.3"),
)
def sdes_key_exposed(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: an SDP that carries ``a=crypto`` lines with inline SRTP master keys (SDES keying).
    Severity is per instance: critical when the description crossed the wire in clear (anyone on the path can
    decrypt the media), medium when it was read only after TLS decryption with the keylog (the signalling
    server and anyone holding its TLS keys can), low when it came from a side file.
    Why it matters: with SDES the media key travels inside the signalling, so the confidentiality of the
    media is exactly that of the signalling path, including every server on it; WebRTC forbids SDES.
    Evidence: one row per description (frame, role, suites; keys redacted unless --show-secrets).
    False positives: none for the key being present; a lab that uses SDES on purpose.
    References: RFC 4568 §8.3; RFC 8827 §6.5 (SDES must not be offered); RFC 8826 §4.3."""
    df = ctx.frame("sdp")
    for r in rows(df):
        suites = listish(val(r, "crypto_suites"))
        if not suites:
            continue
        how = exposure(r)
        sev = {"clear": Severity.CRITICAL, "decrypted": Severity.MEDIUM, "side": Severity.LOW}.get(
            how, Severity.HIGH
        )
        ev = {**sdp_where(r), "crypto_suites": suites}
        keys = listish(val(r, "crypto_keys_secret"))
        if keys:
            ev["crypto_keys_secret"] = keys
        yield Hit(
            message=f"SDP {val(r, 'role', 'description')} carries {len(suites)} a=crypto inline SRTP key(s) "
            f"({', '.join(map(str, suites))}); seen {how}",
            endpoints=sdp_endpoints(r),
            flow_id=val(r, "flow_id"),
            frames=frames_of(val(r, "frame")),
            evidence=ev,
            key=(how, *sdp_endpoints(r)),
            severity=sev,
        )


@check(
    id="SDP002",
    slug="sdp-plain-rtp-offered",
    title="Plain RTP (RTP/AVP) offered or answered in SDP",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("sdp",),
    references=("RFC 8827 §6.5", "RFC 8834 §5", "RFC 3551"),
)
def sdp_plain_rtp_offered(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: an m-line whose transport protocol is ``RTP/AVP`` or ``RTP/AVPF`` (no SRTP). Medium
    when offered, high when an answer accepts it (unencrypted media has been agreed).
    Why it matters: media negotiated this way travels unencrypted and unauthenticated; WebRTC requires
    ``UDP/TLS/RTP/SAVPF``.
    Evidence: one row per description with the plain m-line protocols.
    False positives: SIP trunks and legacy phones inside a trusted network, by design.
    References: RFC 8827 §6.5; RFC 8834 §5; RFC 3551."""
    df = ctx.frame("sdp", ("protos",))
    for r in rows(df):
        protos = [str(p) for p in listish(val(r, "protos"))]
        plain = sorted({p for p in protos if p.upper() in PLAIN_PROTOS})
        if not plain:
            continue
        role = str(val(r, "role", "") or "")
        sev = Severity.HIGH if role == "answer" else Severity.MEDIUM
        yield Hit(
            message=f"SDP {role or 'description'} uses {', '.join(plain)} (no SRTP) on "
            f"{sum(p.upper() in PLAIN_PROTOS for p in protos)} of {len(protos)} m-line(s)",
            endpoints=sdp_endpoints(r),
            flow_id=val(r, "flow_id"),
            frames=frames_of(val(r, "frame")),
            evidence={**sdp_where(r), "protos": protos},
            key=(*sdp_endpoints(r), *plain),
            severity=sev,
        )


def fingerprints(row: Any) -> list[tuple[str, str]]:
    """``[(hash function lowercased, lowercase hex)]`` from the sdp ``fingerprints`` column."""
    out = []
    for f in listish(val(row, "fingerprints")):
        if isinstance(f, dict):
            for k, v in f.items():
                out.append((str(k).lower(), str(v).lower().replace(":", "")))
        elif isinstance(f, (list, tuple)) and len(f) == 2:
            out.append((str(f[0]).lower(), str(f[1]).lower().replace(":", "")))
        else:
            alg, _, hx = str(f).strip().partition(" ")
            out.append((alg.lower(), hx.strip().lower().replace(":", "")))
    return out


@check(
    id="SDP003",
    slug="fingerprint-weak-hash",
    title="DTLS fingerprint uses a weak hash (MD5/SHA-1)",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("sdp",),
    references=("RFC 8122 §5", "RFC 8827 §6.5", "RFC 6151", "RFC 6194"),
)
def fingerprint_weak_hash(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: an ``a=fingerprint`` attribute computed with md5 (medium) or sha-1 (low).
    Why it matters: the fingerprint is what binds the DTLS certificate to the signalled identity; a
    second-preimage on a weak hash lets an attacker on the media path substitute a certificate.
    Evidence: one row per description and weak hash function.
    False positives: old gateways that still send sha-1 beside sha-256 (the strongest one is used).
    References: RFC 8122 §5 (sha-256 must be supported); RFC 8827 §6.5; RFC 6151; RFC 6194."""
    df = ctx.frame("sdp", ("fingerprints",))
    for r in rows(df):
        fps = fingerprints(r)
        for alg in sorted({a for a, _ in fps if a in WEAK_FP_HASHES}):
            strong = sorted({a for a, _ in fps if a not in WEAK_FP_HASHES})
            yield Hit(
                message=f"a=fingerprint uses {alg}" + (f" (also {', '.join(strong)})" if strong else ""),
                endpoints=sdp_endpoints(r),
                flow_id=val(r, "flow_id"),
                frames=frames_of(val(r, "frame")),
                evidence={**sdp_where(r), "hash": alg, "other_hashes": strong},
                key=(val(r, "origin"), val(r, "role"), alg),
                severity=Severity.LOW if strong else WEAK_FP_HASHES[alg],
            )
