"""SIG family: the signalling channel (HTTP, WebSocket, SIP) and what it exposes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from .common import endpoints, ep, frames_of, listish, rows, val
from .registry import Confidence, Hit, NotObservable, Severity, check

SESSION_BODIES = {"sdp", "candidate", "candidates", "ice", "sip", "jsep", "offer", "answer", "trickle"}
WEAK_TLS_VERSIONS = {"SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}
WEAK_SUITE_MARKERS = ("_NULL_", "_EXPORT", "_RC4_", "_DES_", "3DES", "_anon_", "_MD5")


def _flow_key(r: Any) -> tuple[Any, ...]:
    """Group a client's messages to one server (several TCP connections are one finding)."""
    return client_server(r)


def client_server(r: Any) -> tuple[str | None, str | None]:
    """(client address, server ip:port) of a signalling message. The client's ephemeral port is left out:
    it changes per connection and says nothing an analyst needs."""
    d = str(val(r, "direction", "") or "")
    src, dst = (val(r, "src"), val(r, "sport")), (val(r, "dst"), val(r, "dport"))
    if d in ("response", "server_to_client"):
        client, server = dst, src
    elif d in ("request", "client_to_server"):
        client, server = src, dst
    else:  # unknown: the lower port is the listening one
        client, server = (src, dst) if (val(r, "sport") or 0) >= (val(r, "dport") or 0) else (dst, src)
    return (str(client[0]) if client[0] else None), ep(*server)


def _server_port(r: Any) -> int | None:
    server = client_server(r)[1] or ""
    try:
        return int(server.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def _eps(r: Any) -> list[str]:
    return endpoints(*client_server(r))


def carries_session(r: Any) -> bool:
    """Does a signalling message carry SDP, candidates or session control?"""
    kind = str(val(r, "body_kind", "") or "").lower()
    return kind in SESSION_BODIES or str(val(r, "transport", "")).lower() == "sip"


@check(id="SIG001", slug="signalling-plaintext", title="Signalling without TLS",
       severity=Severity.HIGH, confidence=Confidence.HIGH, needs=("signalling",),
       references=("RFC 8827 §5, §6.5", "RFC 8826 §4.3.1", "RFC 3261 §26.2"))
def signalling_plaintext(ctx: Any) -> Iterator[Hit]:
    """What it flags: HTTP, WebSocket or SIP messages that carry SDP, ICE candidates or session control
    without TLS. One finding per signalling flow.
    Why it matters: the DTLS fingerprint in the SDP is what authenticates the media; whoever can rewrite
    plaintext signalling can substitute it and sit in the middle of the call. Plaintext signalling also
    leaks who calls whom, addresses and ICE credentials.
    Evidence: the flow, the frames, message kinds (body kinds, URLs/methods).
    False positives: a lab or a loopback test harness.
    References: RFC 8827 §5 and §6.5; RFC 8826 §4.3.1; RFC 3261 §26.2."""
    df = ctx.frame("signalling", ("tls",))
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in rows(df):
        if val(r, "tls", None) is False and carries_session(r):
            groups[_flow_key(r)].append(r)
    for rs in groups.values():
        kinds = sorted({str(val(r, "body_kind") or val(r, "transport")) for r in rs})
        transports = sorted({str(val(r, "transport")) for r in rs})
        yield Hit(message=f"{'/'.join(transports)} signalling in clear: {len(rs)} message(s) carrying "
                          f"{', '.join(kinds)}",
                  endpoints=_eps(rs[0]), flow_id=val(rs[0], "flow_id"), frames=frames_of(*[val(r, "frame") for r in rs]),
                  evidence={"transport": max(transports, key=lambda x: sum(str(val(r, "transport")) == x for r in rs)),
                            "transports": transports, "body_kinds": kinds, "messages": len(rs),
                            "sip": any(str(val(r, "transport")) == "sip" or str(val(r, "body_kind")) == "sip"
                                       for r in rs),
                            "urls": sorted({str(val(r, "url")) for r in rs if val(r, "url")})[:5]},
                  key=(*transports, *_eps(rs[0])))


@check(id="SIG002", slug="signalling-weak-tls", title="Signalling over weak TLS (version < 1.2 or weak suite)",
       severity=Severity.MEDIUM, confidence=Confidence.HIGH, needs=("signalling",),
       references=("RFC 8996", "RFC 9325 §4", "RFC 8827 §5"),
       params={"signalling_ports": ([443, 8443, 5061, 7443, 4443, 8089, 3000, 8080, 8000],
                                    "server ports on which an unreadable TLS connection counts as signalling")})
def signalling_weak_tls(ctx: Any) -> Iterator[Hit]:
    """What it flags: a signalling connection whose TLS version is below 1.2 or whose negotiated suite is
    NULL, EXPORT, RC4, DES/3DES, anonymous or MD5-based. A TLS connection whose content could not be read
    counts only when its server port is one of ``signalling_ports`` (reported at low confidence).
    Why it matters: signalling protects the SDP fingerprint; TLS 1.0/1.1 are deprecated (RFC 8996) and
    those suites are breakable, so the protection is nominal.
    Evidence: the flow, frames, TLS version and suite.
    False positives: none when the version was read from the ServerHello.
    References: RFC 8996; RFC 9325 §4; RFC 8827 §5."""
    df = ctx.frame("signalling", ("tls",))
    if "tls_version" not in df.columns:
        raise NotObservable("signalling frame does not record the TLS version")
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in rows(df):
        if not val(r, "tls", False):
            continue
        opaque = str(val(r, "transport")) == "tls"  # content unreadable: signalling only if on a web/SIP port
        if opaque and _server_port(r) not in ctx.param("signalling_ports"):
            continue
        ver = str(val(r, "tls_version", "") or "")
        suite = str(val(r, "tls_cipher_suite", "") or "")
        weak_ver = ver in WEAK_TLS_VERSIONS
        weak_suite = any(m in suite for m in WEAK_SUITE_MARKERS)
        if weak_ver or weak_suite:
            groups[_flow_key(r) + (ver, suite)].append(r)
    for key, rs in groups.items():
        ver, suite = key[2], key[3]
        opaque = all(str(val(r, "transport")) == "tls" for r in rs)
        yield Hit(message=f"signalling over {ver or 'TLS'}" + (f" with {suite}" if suite else "")
                          + (" (content not readable: a TLS connection on a signalling port)" if opaque else ""),
                  endpoints=_eps(rs[0]), flow_id=val(rs[0], "flow_id"), frames=frames_of(*[val(r, "frame") for r in rs]),
                  evidence={"tls_version": ver, "cipher_suite": suite, "content_readable": not opaque},
                  key=(*_eps(rs[0]), ver, suite), confidence=Confidence.LOW if opaque else None)


@check(id="SIG003", slug="signalling-secret-exposed", title="Credentials or tokens readable in signalling",
       severity=Severity.HIGH, confidence=Confidence.HIGH, needs=("signalling",),
       references=("RFC 8826 §4.3.1", "RFC 8489 §9.2", "RFC 6750 §5.3", "RFC 7616"))
def signalling_secret_exposed(ctx: Any) -> Iterator[Hit]:
    """What it flags: signalling that carries authentication material — Authorization / digest headers,
    cookies, bearer tokens, passwords, TURN credentials (iceServers), ICE passwords — readable in clear
    (high). When it was read only after TLS decryption with the keylog it is reported as info.
    Why it matters: a passive observer can replay the session token, log in as the user, or use the TURN
    relay with the user's credentials.
    Evidence: the flow, frames and the kinds of material (values redacted unless --show-secrets).
    False positives: short-lived single-use tokens (still worth knowing they travel in clear).
    References: RFC 8826 §4.3.1; RFC 8489 §9.2; RFC 6750 §5.3; RFC 7616."""
    df = ctx.frame("signalling", ("tls",))
    auth_col = next((c for c in ("auth", "auth_kinds", "auth_present") if c in df.columns), None)
    if auth_col is None:
        raise NotObservable("signalling frame does not record authentication material")
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in rows(df):
        kinds = [str(k) for k in listish(val(r, auth_col)) if k not in (False, True)]
        if not kinds and val(r, auth_col) is True:
            kinds = ["credentials"]
        if not kinds:
            continue
        clear = val(r, "tls", None) is False
        groups[_flow_key(r) + (clear,)].append((r, kinds))
    for key, items in groups.items():
        clear = key[2]
        kinds = sorted({k for _, ks in items for k in ks})
        rs = [r for r, _ in items]
        yield Hit(message=f"{', '.join(kinds)} " + ("readable in clear" if clear else "seen after TLS decryption")
                          + f" in {len(rs)} signalling message(s)",
                  endpoints=_eps(rs[0]), flow_id=val(rs[0], "flow_id"), frames=frames_of(*[val(r, "frame") for r in rs]),
                  evidence={"kinds": kinds, "in_clear": clear}, key=(*_eps(rs[0]), clear, *kinds),
                  severity=None if clear else Severity.INFO)
