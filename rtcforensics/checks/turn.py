"""TURN family: relay authentication, where the relay was asked to send, credential lifetimes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator

import pandas as pd

from ..addr import NOT_PUBLIC, classify
from .common import endpoints, ep, frames_of, listish, rows, val
from .registry import Confidence, Hit, NotObservable, Severity, check

METADATA_IPS = {"169.254.169.254", "fd00:ec2::254", "100.100.100.200"}
PEER_METHODS = ("CreatePermission", "ChannelBind", "Send")


def _eps(r: Any) -> list[str]:
    return endpoints(ep(val(r, "src"), val(r, "sport")), ep(val(r, "dst"), val(r, "dport")))


def _stun(ctx: Any) -> pd.DataFrame:
    return ctx.frame("stun", ("method", "cls", "txid"))


def _turn_present(df: pd.DataFrame) -> pd.DataFrame:
    t = df[df["method"].astype(str).isin(["Allocate", "Refresh", "CreatePermission", "ChannelBind", "Send",
                                          "Data"])]
    if not len(t):
        raise NotObservable("no TURN messages in this capture")
    return t


def _responses(df: pd.DataFrame) -> dict[str, Any]:
    """txid → last response row (success or error)."""
    out: dict[str, Any] = {}
    for r in rows(df[df["cls"].astype(str).isin(["success", "error"])]):
        out[str(val(r, "txid"))] = r
    return out


@check(id="TURN001", slug="turn-open-relay", title="TURN Allocate succeeded without authentication",
       severity=Severity.HIGH, confidence=Confidence.HIGH, needs=("stun",),
       references=("RFC 8656 §7.2, §9", "RFC 8489 §9.2", "CVE-2018-4058"))
def turn_open_relay(ctx: Any) -> Iterator[Hit]:
    """What it flags: an Allocate success response whose request carried no MESSAGE-INTEGRITY (no
    long-term-credential challenge was answered). Proprietary relay protocols that reuse the Allocate
    method (e.g. WhatsApp: unknown attributes, no XOR-RELAYED-ADDRESS) are reported low at low confidence.
    Why it matters: an open relay lets anyone relay traffic through the operator's network: abuse,
    amplification, and a path to internal addresses (see turn-internal-peer).
    Evidence: the request and response frames, the server, the relayed address granted.
    False positives: proprietary relays that authenticate with their own attributes.
    References: RFC 8656 §7.2 and §9; RFC 8489 §9.2; CVE-2018-4058."""
    df = _stun(ctx)
    t = _turn_present(df)
    reqs = {str(val(r, "txid")): r for r in rows(t[(t["method"].astype(str) == "Allocate")
                                                  & (t["cls"].astype(str) == "request")])}
    for s in rows(t[(t["method"].astype(str) == "Allocate") & (t["cls"].astype(str) == "success")]):
        q = reqs.get(str(val(s, "txid")))
        if q is None or val(q, "has_integrity") is not False:
            continue
        proprietary = bool(val(q, "unknown_attrs") or val(s, "unknown_attrs")) or not val(s, "xor_relayed")
        server = ep(val(q, "dst"), val(q, "dport"))
        yield Hit(message=f"Allocate to {server} succeeded without MESSAGE-INTEGRITY"
                          + (" (proprietary relay protocol)" if proprietary else ""),
                  endpoints=_eps(q), flow_id=val(s, "flow_id"), frames=frames_of(val(q, "frame"), val(s, "frame")),
                  evidence={"server": server, "relayed": val(s, "xor_relayed"), "software": val(s, "software"),
                            "proprietary": proprietary},
                  key=(server,), severity=Severity.LOW if proprietary else None,
                  confidence=Confidence.LOW if proprietary else None)


def peer_host(peer: str) -> str:
    """The address part of ``ip:port`` / ``[v6]:port``."""
    p = peer.strip()
    if p.startswith("["):
        return p[1:].split("]", 1)[0]
    return p.rsplit(":", 1)[0] if p.count(":") == 1 else p


def peer_risk(addr: str) -> tuple[str, str] | None:
    """(scope, why) when a TURN peer address is internal; None when it is public."""
    info = classify(addr)
    ip = info.ip or addr
    if ip in METADATA_IPS or addr in METADATA_IPS:
        return "metadata", f"cloud metadata service {ip}"
    if info.embedded:
        return f"embedded_{info.embedded}", f"IPv6 {addr} embeds IPv4 {ip} ({info.scope})"
    if info.scope in NOT_PUBLIC or info.scope == "unspecified":
        return info.scope, f"{info.scope} address {ip}"
    return None


@check(id="TURN002", slug="turn-internal-peer", title="TURN relay asked to reach an internal address",
       severity=Severity.HIGH, confidence=Confidence.HIGH, needs=("stun",),
       references=("RFC 8656 §21.2", "CVE-2020-26262", "CVE-2018-4058"))
def turn_internal_peer(ctx: Any) -> Iterator[Hit]:
    """What it flags: CreatePermission, ChannelBind or Send toward a loopback, private, CGNAT, link-local,
    ULA, cloud-metadata (169.254.169.254) or IPv4-embedding IPv6 peer. Severity per instance: critical
    when the server accepted (success response, or data relayed back from that peer), low when it refused,
    high when no answer was seen. A private peer that is also an ICE candidate of the remote party is
    ordinary ICE behaviour (both ends on one LAN) and is reported low at low confidence.
    Why it matters: a relay that forwards to internal addresses is an SSRF gateway into the operator's
    network (coturn CVE-2020-26262 reached loopback services this way).
    Evidence: request, response, peer address and why it is internal.
    False positives: ICE toward a peer's private host candidate (see above).
    References: RFC 8656 §21.2; CVE-2020-26262; CVE-2018-4058."""
    df = _stun(ctx)
    t = _turn_present(df)
    if "xor_peer" not in t.columns:
        raise NotObservable("stun frame has no XOR-PEER-ADDRESS column")
    resp = _responses(t)
    data_from = {peer_host(str(p)) for r in rows(t[t["method"].astype(str) == "Data"])
                 for p in listish(val(r, "xor_peer"))}
    remote_cands = _candidate_addresses(ctx)
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for r in rows(t[t["method"].astype(str).isin(PEER_METHODS) & t["cls"].astype(str).isin(["request",
                                                                                          "indication"])]):
        for peer in listish(val(r, "xor_peer")):
            host = peer_host(str(peer))
            risk = peer_risk(host)
            if risk is not None:
                groups[(ep(val(r, "dst"), val(r, "dport")), host)].append((r, risk))
    for (server, host), items in groups.items():
        scope, why = items[0][1]
        outcome = "unanswered"
        frames: list[int] = []
        for r, _ in items:
            frames += frames_of(val(r, "frame"))
            got = resp.get(str(val(r, "txid")))
            if got is not None:
                frames += frames_of(val(got, "frame"))
                if str(val(got, "cls")) == "success":
                    outcome = "accepted"
                elif outcome != "accepted":
                    outcome = "refused"
        if host in data_from:
            outcome = "accepted"
        sev = {"accepted": Severity.CRITICAL, "refused": Severity.LOW, "unanswered": Severity.HIGH}[outcome]
        conf = None
        ice_like = scope in ("private", "cgnat", "ula") and host in remote_cands
        if ice_like:
            sev, conf = Severity.LOW, Confidence.LOW
        methods = sorted({str(val(r, "method")) for r, _ in items})
        yield Hit(message=f"{'/'.join(methods)} toward {why} via {server}: {outcome}"
                          + (" (peer is an ICE candidate of the remote party)" if ice_like else ""),
                  endpoints=endpoints(*_eps(items[0][0]), host), flow_id=val(items[0][0], "flow_id"),
                  frames=frames, evidence={"peer": host, "scope": scope, "outcome": outcome, "methods": methods,
                                           "server": server, "ice_candidate": ice_like},
                  key=(server, host), severity=sev, confidence=conf)


def _candidate_addresses(ctx: Any) -> set[str]:
    c = ctx.optional("candidates", ("address",))
    if c is None:
        return set()
    return {str(a) for a in c["address"].dropna()}


@check(id="TURN003", slug="turn-credential-lifetime", title="TURN REST credential valid far beyond the call",
       severity=Severity.LOW, confidence=Confidence.MEDIUM, needs=("stun",),
       references=("draft-uberti-behave-turn-rest-00 §2.2", "RFC 8656 §9.2"),
       params={"max_lifetime_s": (86400, "credentials valid longer than this after use are flagged (low)"),
               "egregious_lifetime_s": (30 * 86400, "longer than this is medium")})
def turn_credential_lifetime(ctx: Any) -> Iterator[Hit]:
    """What it flags: a TURN USERNAME in the REST-API form ``<expiry unix time>:<user>`` whose expiry lies
    more than ``max_lifetime_s`` after the moment it was used (low; medium beyond ``egregious_lifetime_s``).
    Why it matters: a TURN REST credential is a bearer token; one leaked from a page or a log stays usable
    for relaying until it expires.
    Evidence: the username (user part), expiry, the remaining lifetime in seconds.
    False positives: a username that merely contains a number of that size.
    References: draft-uberti-behave-turn-rest-00 §2.2; RFC 8656 §9.2."""
    df = _stun(ctx)
    t = _turn_present(df)
    if "rest_expiry" not in t.columns:
        raise NotObservable("stun frame does not decode TURN REST usernames (rest_expiry)")
    seen: set[tuple[str, str]] = set()
    for r in rows(t[(t["cls"].astype(str) == "request") & t["rest_expiry"].notna()]):
        user, expiry_ts, ts = val(r, "username"), val(r, "rest_expiry"), val(r, "ts")
        if ts is None:
            continue
        expiry = int(pd.Timestamp(expiry_ts).timestamp())
        left = expiry - pd.Timestamp(ts).timestamp()
        server = ep(val(r, "dst"), val(r, "dport"))
        if left <= ctx.param("max_lifetime_s") or (server, str(user)) in seen:
            continue
        seen.add((server, str(user)))
        sev = Severity.MEDIUM if left > ctx.param("egregious_lifetime_s") else None
        yield Hit(message=f"TURN credential for {server} still valid {left / 86400:.1f} days after use",
                  endpoints=_eps(r), flow_id=val(r, "flow_id"), frames=frames_of(val(r, "frame")),
                  evidence={"username": str(user), "expiry": expiry, "remaining_s": int(left), "server": server},
                  key=(server, str(user)), severity=sev)
