"""SIG family: the signalling channel (HTTP, WebSocket, SIP) and what it exposes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pandas as pd

from ..dissect.sdp import secret_hash
from ..tables.origins import header_authors
from ..values import token_kind
from .common import endpoints, frames_of, isna, listish, parties, rows, val
from .comp import Observation, observations
from .context import CheckContext
from .registry import Confidence, Hit, NotObservable, Severity, check

ICE_PWD = "ice-pwd"
SESSION_BODIES = {"sdp", "candidate", "candidates", "ice", "sip", "jsep", "offer", "answer", "trickle"}
WEAK_TLS_VERSIONS = {"SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}
WEAK_SUITE_MARKERS = ("_NULL_", "_EXPORT", "_RC4_", "_DES_", "3DES", "_anon_", "_MD5")


def _flow_key(r: Any) -> tuple[Any, ...]:
    """Group a client's messages to one server (several TCP connections are one finding)."""
    return parties(r)


def _server_port(r: Any) -> int | None:
    server = parties(r)[1] or ""
    try:
        return int(server.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def _eps(r: Any) -> list[str]:
    return endpoints(*parties(r))


def carries_session(r: Any) -> bool:
    """Does a signalling message carry SDP, candidates or session control?"""
    kind = str(val(r, "body_kind", "") or "").lower()
    return kind in SESSION_BODIES or str(val(r, "transport", "")).lower() == "sip"


@check(
    id="SIG001",
    slug="signalling-plaintext",
    title="Signalling without TLS",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    needs=("signalling",),
    references=("RFC 8827 §5, §6.5", "RFC 8826 §4.3.1", "RFC 3261 §26.2"),
)
def signalling_plaintext(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: HTTP, WebSocket or SIP messages that carry SDP, ICE candidates or session control
    without TLS. One finding per signalling flow. A clear leg that relays the messages of a TLS leg (the back
    end of a TLS-terminating proxy or gateway: the same SIP transactions first crossed a TLS leg) is medium:
    the client's leg was encrypted and the exposure is inside the operator's network.
    Why it matters: the DTLS fingerprint in the SDP is what authenticates the media; whoever can rewrite
    plaintext signalling can substitute it and sit in the middle of the call. Plaintext signalling also
    leaks who calls whom, addresses and ICE credentials.
    Evidence: the flow, the frames, message kinds (body kinds, URLs/methods).
    False positives: a lab or a loopback test harness.
    References: RFC 8827 §5 and §6.5; RFC 8826 §4.3.1; RFC 3261 §26.2."""
    df = ctx.frame("signalling", ("tls",))
    behind = behind_tls_proxy(df)
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in rows(df):
        if val(r, "tls", None) is False and carries_session(r):
            groups[_flow_key(r)].append(r)
    for rs in groups.values():
        kinds = sorted({str(val(r, "body_kind") or val(r, "transport")) for r in rs})
        transports = sorted({str(val(r, "transport")) for r in rs})
        fronts = [behind.get(int(val(r, "flow_id", -1))) for r in rs]
        back_end = all(fronts)
        msg = f"{'/'.join(transports)} signalling in clear: {len(rs)} message(s) carrying {', '.join(kinds)}"
        ev = {
            "transport": max(transports, key=lambda x: sum(str(val(r, "transport")) == x for r in rs)),
            "transports": transports,
            "body_kinds": kinds,
            "messages": len(rs),
            "sip": any(str(val(r, "transport")) == "sip" or str(val(r, "body_kind")) == "sip" for r in rs),
            "urls": sorted({str(val(r, "url")) for r in rs if val(r, "url")})[:5],
        }
        if back_end:
            front = sorted({str(f) for f in fronts})
            msg += (
                f"; they relay messages that crossed the client's leg ({', '.join(front)}) inside TLS: a back-end "
                "leg behind a TLS-terminating proxy, so the exposure is inside the operator's network"
            )
            ev["behind_tls_proxy"] = True
            ev["tls_front_legs"] = front
        yield Hit(
            message=msg,
            endpoints=_eps(rs[0]),
            flow_id=val(rs[0], "flow_id"),
            frames=frames_of(*[val(r, "frame") for r in rs]),
            evidence=ev,
            key=(*transports, *_eps(rs[0])),
            severity=Severity.MEDIUM if back_end else None,
        )


TOKEN_FIELDS = {"software": "STUN SOFTWARE", "user_agent": "User-Agent", "server": "Server header"}


def token_values(ctx: CheckContext) -> list[tuple[Observation, str]]:
    """(observation, token kind) for every STUN SOFTWARE / User-Agent / Server value that is a token, with the
    host that wrote it (``comp.observations``: a proxy that relayed a header is not its author)."""
    try:
        obs = observations(ctx, frozenset(TOKEN_FIELDS))
    except NotObservable:
        return []
    return [(o, k) for o in obs for k in [token_kind(o.text)] if k is not None]


def _token_hits(tokens: list[tuple[Observation, str]], sig: pd.DataFrame | None) -> Iterator[Hit]:
    tls_at = (
        {}
        if sig is None or "frame" not in sig.columns
        else {int(f): t for f, t in zip(sig["frame"], sig["tls"]) if not isna(f) and not isna(t)}
    )
    groups: dict[tuple[Any, ...], list[tuple[Observation, str]]] = defaultdict(list)
    for o, kind in tokens:
        fld = o.kind.removeprefix("sip_")
        groups[(o.sender or "", fld, secret_hash(o.text))].append((o, kind))
    for (sender, fld, digest), items in groups.items():
        o, kind = items[0]
        decrypted = fld != "software" and all(
            tls_at.get(int(x.frame)) is True for x, _ in items if x.frame is not None
        )
        name = TOKEN_FIELDS.get(fld, fld)
        msg = (
            f"{name} value is a {kind} token ({len(o.text)} characters), "
            + ("seen after TLS decryption" if decrypted else "readable in clear")
            + f" in {len(items)} message(s): a secret, not a software name"
        )
        eps = endpoints(sender or None, *[e for x, _ in items for e in x.endpoints])
        yield Hit(
            message=msg,
            endpoints=eps,
            flow_id=o.flow_id,
            frames=frames_of(*[x.frame for x, _ in items]),
            evidence={
                "kinds": [f"{fld}-token"],
                "in_clear": not decrypted,
                "token": {"field": name, "kind": kind, "length": len(o.text), "sha256": digest},
            },
            key=("token", sender, fld, digest),
            severity=Severity.INFO if decrypted else Severity.LOW,
            confidence=Confidence.LOW,
        )


def behind_tls_proxy(df: pd.DataFrame) -> dict[int, str]:
    """Clear back-end legs of a TLS-terminating proxy: flow → the TLS front leg (``client → server``) whose
    SIP transactions it relays (``tables.origins``: the same Call-ID/CSeq first crossed that leg), or, when
    that leg is not readable, the one the proxy's ``X-Forwarded-Proto: https`` / ``X-Forwarded-For`` names
    (``client → proxy``)."""
    authors = header_authors(df)
    if not authors.front_leg and not authors.forwarded_tls:
        return {}
    tls_flows: dict[int, str] = {}
    for r in rows(df):
        f = val(r, "flow_id")
        if f is not None and val(r, "tls") is True and int(f) not in tls_flows:
            c, srv = parties(r)
            tls_flows[int(f)] = f"{c} → {srv}"
    out: dict[int, str] = {}
    for back in authors.front_leg:
        front, seen = back, set()
        while front in authors.front_leg and front not in seen:  # follow a chain of proxies to the first leg
            seen.add(front)
            front = authors.front_leg[front]
        if front in tls_flows and back not in tls_flows:
            out[back] = tls_flows[front]
        elif (
            front in authors.forwarded_tls and back not in tls_flows
        ):  # the TLS front leg is not in the capture
            out[back] = authors.forwarded_tls[front]
    for back, front_text in authors.forwarded_tls.items():  # X-Forwarded-Proto: https on the proxy's back end
        out.setdefault(back, front_text)
    return out


@check(
    id="SIG002",
    slug="signalling-weak-tls",
    title="Signalling over weak TLS (version < 1.2 or weak suite)",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("signalling",),
    references=("RFC 8996", "RFC 9325 §4", "RFC 8827 §5"),
    params={
        "signalling_ports": (
            [443, 8443, 5061, 7443, 4443, 8089, 3000, 8080, 8000],
            "server ports on which an unreadable TLS connection counts as signalling",
        )
    },
)
def signalling_weak_tls(ctx: CheckContext) -> Iterator[Hit]:
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
        yield Hit(
            message=f"signalling over {ver or 'TLS'}"
            + (f" with {suite}" if suite else "")
            + (" (content not readable: a TLS connection on a signalling port)" if opaque else ""),
            endpoints=_eps(rs[0]),
            flow_id=val(rs[0], "flow_id"),
            frames=frames_of(*[val(r, "frame") for r in rs]),
            evidence={"tls_version": ver, "cipher_suite": suite, "content_readable": not opaque},
            key=(*_eps(rs[0]), ver, suite),
            confidence=Confidence.LOW if opaque else None,
        )


# no ``needs``: a token in a STUN SOFTWARE attribute is reported when the capture has no signalling at all
@check(
    id="SIG003",
    slug="signalling-secret-exposed",
    title="Credentials or tokens readable in signalling",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    references=("RFC 8826 §4.3.1", "RFC 8489 §9.2", "RFC 6750 §5.3", "RFC 7616"),
)
def signalling_secret_exposed(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: signalling that carries authentication material — Authorization / digest headers,
    cookies, bearer tokens, passwords, TURN credentials (iceServers), ICE passwords — readable in clear
    (high). When it was read only after TLS decryption with the keylog it is reported as info; so is an
    ``a=ice-pwd`` that is the only secret of a clear flow (signalling-plaintext carries the weight there).
    A STUN SOFTWARE attribute, User-Agent or Server header whose whole value is a token (JWT, hex or base64
    blob, random string: ``values.token_kind``) is a secret too, not a software name: low severity and low
    confidence (its shape says token, not what it unlocks), one finding per host that wrote it; evidence
    ``token`` (field, kind, length, sha-256 prefix), never the value.
    Why it matters: a passive observer can replay the session token, log in as the user, or use the TURN
    relay with the user's credentials.
    Evidence: the flow, frames and the kinds of material (values redacted unless --show-secrets).
    False positives: short-lived single-use tokens (still worth knowing they travel in clear).
    References: RFC 8826 §4.3.1; RFC 8489 §9.2; RFC 6750 §5.3; RFC 7616."""
    tokens = token_values(ctx)
    try:
        df = ctx.frame("signalling", ("tls",))
    except NotObservable:
        if not tokens:
            raise
        yield from _token_hits(tokens, None)
        return
    yield from _token_hits(tokens, df)
    auth_col = next((c for c in ("auth", "auth_kinds", "auth_present") if c in df.columns), None)
    if auth_col is None:
        raise NotObservable("signalling frame does not record authentication material")
    behind = behind_tls_proxy(df)
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in rows(df):
        kinds = [str(k) for k in listish(val(r, auth_col)) if k not in (False, True)]
        if not kinds and val(r, auth_col) is True:
            kinds = ["credentials"]
        if not kinds:
            continue
        clear = val(r, "tls", None) is False
        groups[_flow_key(r) + (clear,)].append((r, kinds))
    # a=ice-pwd in a description that crossed the wire readable (the sdp frame keeps only its hash)
    sdp = ctx.optional("sdp", ("ice_pwd_sha256", "tls"))
    if sdp is not None:
        for r in rows(sdp):
            if (
                val(r, "ice_pwd_sha256")
                and val(r, "tls") is False
                and str(val(r, "source", "wire")) == "wire"
            ):
                groups[_flow_key(r) + (True,)].append((r, [ICE_PWD]))
    for key, items in groups.items():
        clear = key[2]
        kinds = sorted({k for _, ks in items for k in ks})
        rs = [r for r, _ in items]
        # an ICE password alone lets an on-path attacker forge connectivity checks (RFC 8445 §19.2), but whoever
        # reads it also reads the clear signalling itself (signalling-plaintext): info unless more travelled
        sev = None if clear and kinds != [ICE_PWD] else Severity.INFO
        msg = (
            f"{', '.join(kinds)} "
            + ("readable in clear" if clear else "seen after TLS decryption")
            + f" in {len(rs)} signalling message(s)"
        )
        ev: dict[str, Any] = {"kinds": kinds, "in_clear": clear}
        leg_fronts = [behind.get(int(val(r, "flow_id", -1))) for r in rs]
        fronts = {f for f in leg_fronts if f is not None}
        if clear and fronts and None not in leg_fronts:
            msg += (
                f" on a back-end leg behind a TLS-terminating proxy (the client's leg {', '.join(sorted(fronts))} "
                "was encrypted): readable inside the operator's network"
            )
            ev.update({"behind_tls_proxy": True, "tls_front_legs": sorted(fronts)})
            sev = Severity.MEDIUM if sev is None else sev
        yield Hit(
            message=msg,
            endpoints=_eps(rs[0]),
            flow_id=val(rs[0], "flow_id"),
            frames=frames_of(*[val(r, "frame") for r in rs]),
            evidence=ev,
            key=(*_eps(rs[0]), clear, *kinds),
            severity=sev,
        )
