"""TURN family: relay authentication, where the relay was asked to send, credential lifetimes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pandas as pd

from ..addr import NOT_PUBLIC, classify
from .common import TURN_FLOW_METHODS, endpoints, ep, frames_of, host, listish, rows, val
from .context import CheckContext
from .registry import Confidence, Hit, NotObservable, Severity, check

METADATA_IPS = {"169.254.169.254", "fd00:ec2::254", "100.100.100.200"}
PEER_METHODS = ("CreatePermission", "ChannelBind", "Send")


def _eps(r: Any) -> list[str]:
    return endpoints(ep(val(r, "src"), val(r, "sport")), ep(val(r, "dst"), val(r, "dport")))


def _stun(ctx: CheckContext) -> pd.DataFrame:
    return ctx.frame("stun", ("method", "cls", "txid"))


def _turn_present(df: pd.DataFrame) -> pd.DataFrame:
    t = df[df["method"].astype(str).isin(TURN_FLOW_METHODS)]
    if not len(t):
        raise NotObservable("no TURN messages in this capture")
    return t


def _responses(df: pd.DataFrame) -> dict[str, Any]:
    """txid → last response row (success or error)."""
    out: dict[str, Any] = {}
    for r in rows(df[df["cls"].astype(str).isin(["success", "error"])]):
        out[str(val(r, "txid"))] = r
    return out


@check(
    id="TURN001",
    slug="turn-open-relay",
    title="TURN Allocate succeeded without authentication",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    needs=("stun",),
    references=("RFC 8656 §7.2, §9", "RFC 8489 §9.2", "CVE-2018-4058"),
)
def turn_open_relay(ctx: CheckContext) -> Iterator[Hit]:
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
    alloc = t[t["method"].astype(str) == "Allocate"]
    reqs = {str(val(r, "txid")): r for r in rows(alloc[alloc["cls"].astype(str) == "request"])}
    for s in rows(alloc[alloc["cls"].astype(str) == "success"]):
        q = reqs.get(str(val(s, "txid")))
        # RFC 8656 §7.2 / RFC 8489 §9.2.4: a success to an authenticated request carries MESSAGE-INTEGRITY;
        # one without it (and a request without it, when seen) was never authenticated.
        if val(s, "has_integrity") is not False or (q is not None and val(q, "has_integrity") is not False):
            continue
        proprietary = bool(
            val(s, "unknown_required")
            or (q is not None and val(q, "unknown_required"))
            or not val(s, "xor_relayed")
        )
        server = ep(val(s, "src"), val(s, "sport"))
        yield Hit(
            message=f"Allocate to {server} succeeded without MESSAGE-INTEGRITY"
            + (" (proprietary relay protocol: not RFC TURN authentication, by design)" if proprietary else "")
            + ("" if q is not None else " (request not in capture; response unauthenticated)"),
            endpoints=endpoints(ep(val(s, "dst"), val(s, "dport")), server),
            flow_id=val(s, "flow_id"),
            frames=frames_of(val(q, "frame") if q is not None else None, val(s, "frame")),
            evidence={
                "server": server,
                "relayed": val(s, "xor_relayed"),
                "software": val(s, "software"),
                "proprietary": proprietary,
                "request_seen": q is not None,
            },
            key=(server,),
            severity=Severity.LOW if proprietary else None,
            confidence=Confidence.LOW if proprietary else None,
        )


def _host(peer: Any) -> str:
    return host(peer) or str(peer)


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


@check(
    id="TURN002",
    slug="turn-internal-peer",
    title="TURN relay asked to reach an internal address",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    needs=("stun",),
    references=("RFC 8656 §21.2", "CVE-2020-26262", "CVE-2018-4058"),
)
def turn_internal_peer(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: CreatePermission, ChannelBind or Send toward a loopback, private, CGNAT, link-local,
    ULA, cloud-metadata (169.254.169.254) or IPv4-embedding IPv6 peer. Severity per instance: critical
    when the server accepted (success response, or data relayed back from that peer), low when it refused,
    high when no answer was seen. One finding per allocation, listing the peers. A private/CGNAT/ULA peer
    that behaves as the remote party's ICE host candidate (signalled as a candidate, sent ICE checks through
    the relay, or permitted together with public peers as browsers do for every remote candidate) is
    ordinary ICE and, when all peers are such, the finding is low at low confidence.
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
    data_from = {
        _host(p) for r in rows(t[t["method"].astype(str) == "Data"]) for p in listish(val(r, "xor_peer"))
    }
    remote_cands = _candidate_addresses(ctx)
    # one finding per allocation (client, server); per peer: why it is internal and what the server did
    allocs: dict[tuple[Any, Any], dict[str, dict[str, Any]]] = defaultdict(dict)
    first_row: dict[tuple[Any, Any], Any] = {}
    for r in rows(
        t[t["method"].astype(str).isin(PEER_METHODS) & t["cls"].astype(str).isin(["request", "indication"])]
    ):
        for peer in listish(val(r, "xor_peer")):
            peer_ip = _host(peer)
            risk = peer_risk(peer_ip)
            if risk is None:
                continue
            k = (ep(val(r, "src"), val(r, "sport")), ep(val(r, "dst"), val(r, "dport")))
            first_row.setdefault(k, r)
            p = allocs[k].setdefault(
                str(peer),
                {
                    "host": peer_ip,
                    "scope": risk[0],
                    "why": risk[1],
                    "outcome": "unanswered",
                    "methods": set(),
                    "frames": [],
                },
            )
            p["methods"].add(str(val(r, "method")))
            p["frames"] += frames_of(val(r, "frame"))
            got = resp.get(str(val(r, "txid")))
            if got is not None:
                p["frames"] += frames_of(val(got, "frame"))
                if str(val(got, "cls")) == "success":
                    p["outcome"] = "accepted"
                elif p["outcome"] != "accepted":
                    p["outcome"] = "refused"
            if peer_ip in data_from:
                p["outcome"] = "accepted"
    rank = {"accepted": Severity.CRITICAL, "unanswered": Severity.HIGH, "refused": Severity.LOW}
    checked = {_host(v) for v in df["turn_peer"].dropna()} if "turn_peer" in df.columns else set()
    public_peers: dict[tuple[Any, Any], bool] = defaultdict(bool)
    for r in rows(t[t["method"].astype(str).isin(PEER_METHODS)]):
        for peer in listish(val(r, "xor_peer")):
            if peer_risk(_host(peer)) is None:
                public_peers[(ep(val(r, "src"), val(r, "sport")), ep(val(r, "dst"), val(r, "dport")))] = True
    for (client, server), peers in allocs.items():
        for p in peers.values():
            # ICE: the remote party's private host candidate, known from signalling, checked through the relay,
            # or installed together with its public candidates (browsers permit every remote candidate)
            p["ice_candidate"] = p["scope"] in ("private", "cgnat", "ula") and (
                p["host"] in remote_cands or p["host"] in checked or public_peers[(client, server)]
            )
        risky = [p for p in peers.values() if not p["ice_candidate"]]
        if risky:
            sev, conf = max(rank[p["outcome"]] for p in risky), None
        else:  # every peer is a remote party's host candidate: ordinary ICE on one LAN
            sev, conf = Severity.LOW, Confidence.LOW
        outcomes = sorted({p["outcome"] for p in peers.values()})
        yield Hit(
            message=f"relay {server} asked by {client} to reach {len(peers)} internal peer(s): "
            + "; ".join(
                f"{peer} ({p['why']}, {p['outcome']}"
                + (", an ICE candidate of the remote party" if p["ice_candidate"] else "")
                + ")"
                for peer, p in peers.items()
            ),
            endpoints=[*peers, client, server],
            flow_id=val(first_row[(client, server)], "flow_id"),
            frames=[f for p in peers.values() for f in p["frames"]],
            evidence={
                "server": server,
                "client": client,
                "outcomes": outcomes,
                "peers": {
                    peer: {
                        "scope": p["scope"],
                        "outcome": p["outcome"],
                        "methods": sorted(p["methods"]),
                        "ice_candidate": p["ice_candidate"],
                    }
                    for peer, p in peers.items()
                },
            },
            key=(server, *sorted(p["host"] for p in peers.values())),
            severity=sev,
            confidence=conf,
        )


def _candidate_addresses(ctx: CheckContext) -> set[str]:
    """Addresses the remote party signalled as its own candidates (SDP / trickle, not STUN-observed)."""
    c = ctx.optional("candidates", ("address",))
    if c is None:
        return set()
    if "origin" in c.columns:
        c = c[c["origin"].astype(str).isin(["sdp", "trickle"])]
    return {str(a) for a in c["address"].dropna()}


@check(
    id="TURN003",
    slug="turn-credential-lifetime",
    title="TURN REST credential valid far beyond the call",
    severity=Severity.LOW,
    confidence=Confidence.MEDIUM,
    needs=("stun",),
    references=("draft-uberti-behave-turn-rest-00 §2.2", "RFC 8656 §9.2"),
    params={
        "max_lifetime_s": (86400, "credentials valid longer than this after use are flagged (low)"),
        "egregious_lifetime_s": (30 * 86400, "longer than this is medium"),
    },
)
def turn_credential_lifetime(ctx: CheckContext) -> Iterator[Hit]:
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
    seen: set[tuple[str | None, str]] = set()
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
        yield Hit(
            message=f"TURN credential for {server} still valid {left / 86400:.1f} days after use",
            endpoints=_eps(r),
            flow_id=val(r, "flow_id"),
            frames=frames_of(val(r, "frame")),
            evidence={"username": str(user), "expiry": expiry, "remaining_s": int(left), "server": server},
            key=(server, str(user)),
            severity=sev,
        )
