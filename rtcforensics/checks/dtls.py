"""DTLS family: the handshake that keys DTLS-SRTP — certificates vs signalled fingerprints, version, suites."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Generator, Iterator
from datetime import timedelta
from typing import Any

import pandas as pd

from ..dissect.stun import TURN_METHODS, method_name
from ..tables.sessions import cert_matches
from .common import endpoints, ep, frames_of, host, listish, rows, truthy, val
from .context import CheckContext
from .registry import Confidence, Hit, NotObservable, Severity, check
from .sdp import fingerprints, sdp_endpoints

SIDES = ("client", "server")
TURN_METHOD_NAMES = sorted(method_name(m) for m in TURN_METHODS)


def hs_endpoints(r: Any, relays: Collection[str] = ()) -> list[str]:
    """The two ends of a handshake. Relayed through TURN, the end that is the TURN server on the wire
    (``relays``, from :func:`turn_servers`) is replaced by the peer behind the relay: that peer, not the
    relay, chose the version and suite and presented its certificate."""
    client, server, peer = val(r, "client"), val(r, "server"), val(r, "turn_peer")
    if peer and relays:
        if server in relays:
            server = peer
        elif client in relays:
            client = peer
    return endpoints(client, server)


def turn_servers(ctx: CheckContext) -> frozenset[str]:
    """ip:port of every TURN server on the wire: the receiver of TURN requests and Send indications, the
    sender of TURN responses and Data indications (messages carried inside TURN left out)."""
    stun = ctx.optional("stun", ("method", "cls", "src", "sport", "dst", "dport", "turn_peer"))
    if stun is None or not len(stun):
        return frozenset()
    outer = stun[stun["turn_peer"].isna()]
    turn = outer["method"].isin(TURN_METHOD_NAMES)
    cls = outer["cls"].astype("string")
    to_server = outer[turn & (cls.isin(["request"]) | (outer["method"] == "Send"))]
    from_server = outer[turn & (cls.isin(["success", "error"]) | (outer["method"] == "Data"))]
    found = [ep(a, b) for a, b in zip(to_server["dst"], to_server["dport"])]
    found += [ep(a, b) for a, b in zip(from_server["src"], from_server["sport"])]
    return frozenset(e for e in found if e)


def hs_key(r: Any) -> tuple[Any, ...]:
    return (val(r, "client"), val(r, "server"))


def is_weak_version(v: Any) -> bool:
    s = str(v or "").lower()
    return bool(s) and ("1.0" in s or "0100" in s or "pre" in s or "0.9" in s)


def suite_weakness(suite: str) -> tuple[Severity, list[str]] | None:
    """Why an IANA cipher-suite name is weak, and how badly (None when it is not)."""
    s = str(suite or "").upper()
    if not s.startswith("TLS_") or (s.startswith(("TLS_AES_", "TLS_CHACHA20_")) and "_WITH_" not in s):
        return None
    kx, _, rest = s[4:].partition("_WITH_")
    bad = []
    if "NULL" in rest or "NULL" in kx:
        bad.append("NULL cipher")
    if "EXPORT" in s:
        bad.append("EXPORT")
    if rest.startswith("RC4"):
        bad.append("RC4")
    if rest.startswith(("DES", "3DES")) or "_DES_" in s:
        bad.append("DES/3DES")
    if "ANON" in kx:
        bad.append("anonymous key exchange")
    if bad:
        return Severity.HIGH, bad
    if kx in ("RSA", "PSK", "DH_RSA", "DH_DSS", "ECDH_RSA", "ECDH_ECDSA", "RSA_PSK"):
        bad.append("no forward secrecy")
    if "_CBC_" in rest:
        bad.append("CBC")
    if rest.endswith(("_SHA", "_MD5")):
        bad.append("SHA-1 MAC" if rest.endswith("_SHA") else "MD5 MAC")
    return (Severity.MEDIUM, bad) if bad else None


@check(
    id="DTLS001",
    slug="dtls-fingerprint-mismatch",
    title="DTLS certificate does not match the signalled fingerprint (possible MITM)",
    severity=Severity.CRITICAL,
    confidence=Confidence.MEDIUM,
    needs=("sdp",),
    references=("RFC 8842 §5", "RFC 5763 §5", "RFC 8122 §5", "RFC 8827 §6.5"),
)
def dtls_fingerprint_mismatch(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: (1) a certificate presented in a DTLS handshake (read on the wire, or decrypted with
    the keylog) whose SHA-256 is not any ``a=fingerprint`` signalled for that session; (2) the same session
    description (same o= line and ICE ufrag) seen on two signalling legs with different fingerprints, i.e.
    rewritten in transit.
    Why it matters: the fingerprint is the only thing that authenticates a WebRTC media peer; a mismatch
    is exactly what a man in the middle who rewrites the SDP and terminates DTLS looks like.
    Evidence: the handshake (frames, endpoints, certificate hash) and the fingerprints signalled, or the
    two descriptions and their fingerprints.
    False positives: an ICE restart or renegotiation whose new SDP was not captured; an SFU that
    terminates DTLS legitimately presents its own certificate (its SDP then carries that fingerprint).
    References: RFC 8842 §5; RFC 5763 §5; RFC 8122 §5; RFC 8827 §6.5."""
    sdp = ctx.frame("sdp", ("fingerprints",))
    # (2) one description, two legs, different fingerprints
    legs: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in rows(sdp):
        origin, ufrag = val(r, "origin"), val(r, "ice_ufrag")
        if origin or ufrag:
            legs[(origin, ufrag)].append(r)
    for (origin, ufrag), rs in legs.items():
        seen: dict[frozenset[tuple[str, str]], Any] = {}
        for r in rs:
            fp = frozenset(fingerprints(r))
            if fp:
                seen.setdefault(fp, r)
        if len(seen) > 1:
            rr = list(seen.values())
            yield Hit(
                message=f"the same description (ufrag {ufrag}) was seen with {len(seen)} different "
                f"fingerprints: rewritten in transit",
                endpoints=[e for r in rr for e in sdp_endpoints(r)],
                frames=frames_of(*[val(r, "frame") for r in rr]),
                evidence={
                    "ice_ufrag": ufrag,
                    "origin": origin,
                    "fingerprints": [sorted(f"{a} {h}" for a, h in fp) for fp in seen],
                },
                key=("rewritten", origin, ufrag),
            )
    # (1) certificate on the wire vs fingerprints signalled to its peer
    dtls = ctx.optional("dtls")
    if dtls is None or not len(dtls):
        return
    signalled = {h for r in rows(sdp) for a, h in fingerprints(r) if a == "sha-256"}
    if not signalled:
        return
    delivered: dict[str, set[str]] = defaultdict(
        set
    )  # recipient address -> sha-256 fingerprints it was given
    delivered_frames: dict[str, list[int]] = defaultdict(list)
    for r in rows(sdp):
        to = val(r, "dst")
        if to:
            delivered[str(to)].update(h for a, h in fingerprints(r) if a == "sha-256")
            delivered_frames[str(to)] += frames_of(val(r, "frame"))
    judged = yield from _session_mismatches(ctx, dtls)
    n_cert = len(judged)
    relays = turn_servers(ctx)
    for r in rows(dtls):
        if (val(r, "flow_id"), val(r, "first_frame")) in judged:
            continue  # the sessions layer linked this handshake to its descriptions and compared already
        for side, other in (("client", "server"), ("server", "client")):
            cert = val(r, f"{side}_cert_sha256")
            if not cert:
                continue
            n_cert += 1
            cert = str(cert).lower()
            peer_ip = host(val(r, other)) or ""
            if delivered.get(peer_ip):
                pool, scope, conf = delivered[peer_ip], f"to its peer {peer_ip}", Confidence.HIGH
            else:
                pool, scope, conf = signalled, "in this capture", Confidence.MEDIUM
            if cert_matches(cert, [pool]):
                continue
            yield Hit(
                message=f"{side} {val(r, side)} presented certificate sha-256 {cert[:16]}…, which matches no "
                f"a=fingerprint signalled {scope}",
                endpoints=hs_endpoints(r, relays),
                flow_id=val(r, "flow_id"),
                frames=frames_of(val(r, "frames"), delivered_frames.get(peer_ip, [])),
                evidence={"side": side, "cert_sha256": cert, "signalled_sha256": sorted(pool)},
                key=("cert", side, cert, *hs_endpoints(r)),
                confidence=conf,
            )
    if n_cert == 0:
        why = "no certificate readable in any DTLS handshake (DTLS 1.3 without keylog?)"
        if not legs:
            raise NotObservable(why)
        ctx.missing.append(why + "; only descriptions were compared across legs")


def _session_mismatches(ctx: CheckContext, dtls: pd.DataFrame) -> Generator[Hit, None, set[tuple[Any, Any]]]:
    """Mismatches the sessions layer found (it links each handshake to the descriptions of its ICE session
    and compares certificates with every copy of them). Returns the handshakes it judged."""
    s = ctx.optional(
        "sessions",
        (
            "offer_fingerprint_match",
            "answer_fingerprint_match",
            "certs_in_fingerprints",
            "offerer_dtls_role",
            "dtls_flow_id",
        ),
    )
    judged: set[tuple[Any, Any]] = set()
    if s is None or not len(s):
        return judged
    for r in rows(s[s["dtls_flow_id"].notna()]):
        facts = [val(r, f"{who}_fingerprint_match") for who in ("offer", "answer")]
        if val(r, "offerer_dtls_role") is None:  # roles unknown: are the certificates the session's at all
            facts = [val(r, "certs_in_fingerprints")]
        if all(f is None for f in facts):
            continue
        status = "mismatch" if any(f is False for f in facts) else "match"
        hs = dtls[(dtls["flow_id"] == val(r, "dtls_flow_id"))]
        if "first_frame" in dtls.columns and val(r, "dtls_first_frame") is not None:
            hs = hs[hs["first_frame"] == val(r, "dtls_first_frame")]
        for h in rows(hs):
            judged.add((val(h, "flow_id"), val(h, "first_frame")))
            if status != "mismatch":
                continue
            bad = [who for who in ("offer", "answer") if val(r, f"{who}_fingerprint_match") is False]
            yield Hit(
                message=f"the {' and '.join(bad) or 'signalled'} fingerprint(s) of this ICE session do not match "
                f"the certificate(s) presented in the DTLS handshake {val(h, 'client')} → "
                f"{val(h, 'server')}"
                + (" (the description was rewritten in transit)" if val(r, "fingerprint_rewritten") else ""),
                endpoints=hs_endpoints(h),
                flow_id=val(h, "flow_id"),
                frames=frames_of(val(h, "frames"), val(r, "offer_frame"), val(r, "answer_frame")),
                evidence={
                    "mismatched": bad,
                    "client_cert_sha256": val(h, "client_cert_sha256"),
                    "server_cert_sha256": val(h, "server_cert_sha256"),
                    "offer_fingerprints_sha256": listish(val(r, "offer_fingerprints_sha256")),
                    "answer_fingerprints_sha256": listish(val(r, "answer_fingerprints_sha256")),
                    "rewritten": bool(val(r, "fingerprint_rewritten", False)),
                    "session_id": val(r, "session_id"),
                },
                key=("session", *hs_endpoints(h)),
                confidence=Confidence.HIGH,
            )
    return judged


@check(
    id="DTLS002",
    slug="dtls-weak-version",
    title="DTLS 1.0 offered or negotiated",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("dtls",),
    references=("RFC 8996", "RFC 9147", "RFC 8827 §6.5"),
)
def dtls_weak_version(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a DTLS handshake that negotiated DTLS 1.0 (or a pre-standard version), or a client
    whose best offer is DTLS 1.0 (medium); DTLS 1.0 merely listed beside a newer negotiated version (info).
    Why it matters: DTLS 1.0 (TLS 1.1 based) is deprecated by RFC 8996; it lacks AEAD suites and modern
    hash functions in the handshake. WebRTC requires DTLS 1.2 or later.
    Evidence: one row per handshake: versions offered and negotiated, frames.
    False positives: none when the ServerHello was seen.
    References: RFC 8996; RFC 9147; RFC 8827 §6.5."""
    df = ctx.frame("dtls", ("version",))
    relays = turn_servers(ctx)
    for r in rows(df):
        neg = val(r, "version")
        offered = [str(v) for v in listish(val(r, "versions_offered"))]
        if neg and is_weak_version(neg):
            sev, msg = None, f"negotiated {neg}"
        elif not neg and offered and all(is_weak_version(v) for v in offered):
            sev, msg = None, f"client offers only {', '.join(offered)}"
        elif any(is_weak_version(v) for v in offered):
            sev, msg = (
                Severity.INFO,
                f"client also offers {', '.join(v for v in offered if is_weak_version(v))}",
            )
        else:
            continue
        yield Hit(
            message=f"DTLS {msg}",
            endpoints=hs_endpoints(r, relays),
            flow_id=val(r, "flow_id"),
            frames=frames_of(val(r, "frames")),
            evidence={"version": neg, "versions_offered": offered},
            key=(*hs_key(r), neg),
            severity=sev,
        )


@check(
    id="DTLS003",
    slug="dtls-weak-cipher",
    title="Weak DTLS cipher suite",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("dtls",),
    references=("RFC 8827 §6.5", "RFC 9325 §4.2", "RFC 7457"),
)
def dtls_weak_cipher(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a negotiated suite without forward secrecy, with CBC or a SHA-1/MD5 MAC (medium), or
    NULL / EXPORT / RC4 / DES / anonymous (high). Such broken suites (or MD5) merely offered while a strong one
    was chosen (or while the choice was not seen) are low, with the list; dated ones (CBC, SHA-1 MAC, no forward
    secrecy) merely offered are info: common for compatibility and not exploitable.
    Why it matters: the DTLS suite protects the exporter that keys SRTP and the data channels; without
    forward secrecy a later key compromise decrypts recorded calls.
    Evidence: one row per handshake: chosen suite, the weak suites offered, frames.
    False positives: offered-only rows are informational by design.
    References: RFC 8827 §6.5 (ECDHE with AEAD required); RFC 9325 §4.2; RFC 7457."""
    df = ctx.frame("dtls", ("cipher_suite",))
    relays = turn_servers(ctx)
    for r in rows(df):
        chosen = val(r, "cipher_suite")
        w = suite_weakness(chosen) if chosen else None
        offered_weak = [s for s in map(str, listish(val(r, "client_suites"))) if suite_weakness(s)]
        if w:
            sev, why = w
            yield Hit(
                message=f"negotiated {chosen} ({', '.join(why)})",
                endpoints=hs_endpoints(r, relays),
                flow_id=val(r, "flow_id"),
                frames=frames_of(val(r, "frames")),
                evidence={"cipher_suite": chosen, "weakness": why, "negotiated": True},
                key=(*hs_key(r), chosen),
                severity=sev,
            )
        elif offered_weak:
            # NULL / EXPORT / RC4 / DES / anonymous / MD5 offered invite a downgrade by whoever answers: low, with
            # the list; merely dated suites (CBC, SHA-1 MAC, no forward secrecy) offered: info
            broken = [
                x
                for x in offered_weak
                if (suite_weakness(x) or (Severity.INFO, []))[0] == Severity.HIGH
                or x.upper().endswith("_MD5")
            ]
            yield Hit(
                message=f"client offers {len(offered_weak)} weak suite(s) "
                + (f"but {chosen} was chosen" if chosen else "(choice not seen)")
                + (f", {len(broken)} of them broken: {', '.join(broken[:12])}" if broken else ""),
                endpoints=hs_endpoints(r, relays),
                flow_id=val(r, "flow_id"),
                frames=frames_of(val(r, "frames")),
                evidence={
                    "cipher_suite": chosen,
                    "offered_weak": offered_weak[:12],
                    "negotiated": False,
                    "offered_broken": broken,
                },
                key=(*hs_key(r), "offered"),
                severity=Severity.LOW if broken else Severity.INFO,
            )


def alert_text(a: Any) -> str:
    if isinstance(a, dict):
        desc = a.get("description") or ("encrypted alert" if a.get("encrypted") else "alert")
        return f"{a.get('level') or ''} {desc} from {a.get('side') or '?'} (frame {a.get('frame')})".strip()
    return str(a)


def is_fatal(a: Any) -> bool:
    """A fatal alert (close_notify and warnings are the normal way to end)."""
    if isinstance(a, dict):
        desc = str(a.get("description") or "").lower()
        level = str(a.get("level") or "").lower()
        if desc in ("close_notify", "user_canceled"):
            return False
        return level == "fatal" or (level not in ("warning",) and bool(desc))
    return "close_notify" not in str(a).lower()


@check(
    id="DTLS004",
    slug="dtls-handshake-failed",
    title="DTLS handshake failed or did not complete",
    severity=Severity.MEDIUM,
    confidence=Confidence.MEDIUM,
    needs=("dtls",),
    references=("RFC 9147 §5", "RFC 6347 §4.2", "RFC 5763 §6.7.1"),
)
def dtls_handshake_failed(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a handshake that ended in a fatal alert (medium), or that never completed with no
    alert seen (low, low confidence: the capture may have started late or seen one direction only).
    Why it matters: a fingerprint check failing on one side ends in an alert (bad_certificate): a MITM
    attempt, or a misconfigured peer; either way the call had no protected media on that path.
    Evidence: one row per handshake: alerts, completion, frames.
    False positives: captures that miss part of the handshake; ICE pairs abandoned in favour of another.
    References: RFC 9147 §5; RFC 6347 §4.2; RFC 5763 §6.7.1."""
    df = ctx.frame("dtls", ("completed",))
    relays = turn_servers(ctx)
    if df["completed"].isna().all() and not any(listish(a) for a in df.get("alerts", [])):
        raise NotObservable("whether the DTLS handshakes completed cannot be seen (no alerts, completion NA)")
    for r in rows(df):
        alerts = [alert_text(a) for a in listish(val(r, "alerts"))]
        fatal = [t for a, t in zip(listish(val(r, "alerts")), alerts) if is_fatal(a)]
        completed = val(r, "completed")
        if fatal:
            yield Hit(
                message=f"handshake alert(s): {', '.join(fatal)}",
                endpoints=hs_endpoints(r, relays),
                flow_id=val(r, "flow_id"),
                frames=frames_of(val(r, "frames")),
                evidence={"alerts": fatal, "completed": completed},
                key=(*hs_key(r), "alert"),
            )
        elif completed is False:
            yield Hit(
                message="handshake did not complete (no alert seen)",
                endpoints=hs_endpoints(r, relays),
                flow_id=val(r, "flow_id"),
                frames=frames_of(val(r, "frames")),
                evidence={"alerts": alerts, "completed": False},
                key=(*hs_key(r), "incomplete"),
                severity=Severity.LOW,
                confidence=Confidence.LOW,
            )


@check(
    id="DTLS005",
    slug="dtls-cert-weak",
    title="Weak DTLS certificate (small key, weak signature, absurd validity)",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("dtls",),
    references=("RFC 8827 §6.5", "RFC 5763 §5", "NIST SP 800-131A"),
    params={
        "min_rsa_bits": (2048, "RSA keys shorter than this are weak"),
        "min_ec_bits": (224, "EC keys shorter than this are weak"),
        "max_validity_days": (3650, "a validity period longer than this is absurd for a per-call cert"),
    },
)
def dtls_cert_weak(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a DTLS certificate with an RSA key under ``min_rsa_bits`` or an EC key under
    ``min_ec_bits`` (medium), an MD5/SHA-1 signature (low), or a validity period that ends before it starts
    or spans more than ``max_validity_days`` (low).
    Why it matters: the certificate key is what the fingerprint pins; a short key can be factored and the
    peer impersonated with a matching fingerprint. Absurd validity shows a hand-made or embedded cert that
    is reused across calls and so links them.
    Evidence: one row per certificate side and weakness.
    False positives: the signature on a self-signed WebRTC certificate is not what secures the call
    (the fingerprint is), hence low.
    References: RFC 8827 §6.5; RFC 5763 §5; NIST SP 800-131A."""
    df = ctx.frame("dtls")
    seen_any = False
    for r in rows(df):
        for side in SIDES:
            ktype = str(val(r, f"{side}_cert_key_type", "") or "").upper()
            bits = val(r, f"{side}_cert_key_bits")
            sig = str(val(r, f"{side}_cert_sig_alg", "") or "").lower()
            nb, na = val(r, f"{side}_cert_not_before"), val(r, f"{side}_cert_not_after")
            if not (ktype or sig or bits):
                continue
            seen_any = True
            probs: list[tuple[str, Severity]] = []
            if bits is not None:
                if "RSA" in ktype and int(bits) < ctx.param("min_rsa_bits"):
                    probs.append((f"RSA {int(bits)}-bit key", Severity.MEDIUM))
                if ("EC" in ktype) and int(bits) < ctx.param("min_ec_bits"):
                    probs.append((f"EC {int(bits)}-bit key", Severity.MEDIUM))
            if "md5" in sig or "sha1" in sig or "sha-1" in sig:
                probs.append((f"signature {sig}", Severity.LOW))
            if nb is not None and na is not None:
                nb, na = pd.Timestamp(nb), pd.Timestamp(na)
                if na < nb:
                    probs.append(("validity ends before it starts", Severity.LOW))
                elif na - nb > timedelta(days=ctx.param("max_validity_days")):
                    written = val(r, f"{side}_cert_not_after_text")
                    probs.append(
                        (
                            f"valid until {str(written)[:10]} (beyond the timestamp range)"
                            if truthy(r, f"{side}_cert_dates_clipped") and written
                            else f"valid for {(na - nb).days} days",
                            Severity.LOW,
                        )
                    )
            for what, sev in probs:
                yield Hit(
                    message=f"{side} certificate: {what}",
                    endpoints=endpoints(val(r, side)),
                    flow_id=val(r, "flow_id"),
                    frames=frames_of(val(r, "frames")),
                    evidence={
                        "side": side,
                        "problem": what,
                        "key_type": ktype,
                        "key_bits": bits,
                        "signature_algorithm": sig,
                        "cert_sha256": val(r, f"{side}_cert_sha256"),
                    },
                    key=(val(r, f"{side}_cert_sha256") or val(r, side), what.split(" ")[0]),
                    severity=sev,
                )
    if not seen_any:
        raise NotObservable("no certificate readable in any DTLS handshake (DTLS 1.3 without keylog?)")
