"""COMP family: software and versions the capture discloses, and known vulnerabilities of those versions.

Version knowledge is data: ``rtcforensics/data/vulns.json`` (component, affected ranges, CVE, fixed in,
source). Where a version is read: STUN/TURN SOFTWARE attribute, HTTP/SIP User-Agent and Server headers,
SDP o= / s= lines, and the DTLS ClientHello's JA4 when ``rtcforensics/data/dtls_fingerprints.json`` knows it
(a lead, reported at low severity and confidence: other versions may send the same ClientHello).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

from ..tables.origins import Authors, header_authors
from ..values import token_kind
from .common import endpoints, ep, frames_of, host, parties, rows, val
from .context import CheckContext
from .registry import Confidence, Hit, NotObservable, Severity, check

# (frame, column, evidence key, whose endpoint: "src" = the sender of that message)
SOURCES = (
    ("stun", "software", "software"),
    ("signalling", "user_agent", "user_agent"),
    ("signalling", "server", "server"),
    ("sdp", "origin", "sdp_origin"),
    ("sdp", "session_name", "sdp_session_name"),
    ("dtls", "ja4", "ja4"),
)
CONFIDENCE_BY_SOURCE = {
    "software": Confidence.HIGH,
    "server": Confidence.HIGH,
    "user_agent": Confidence.MEDIUM,
    "sdp_origin": Confidence.MEDIUM,
    "sdp_session_name": Confidence.MEDIUM,
    "ja4": Confidence.LOW,
}
# sources that name software themselves (banners); a fingerprint is matched, not disclosed
BANNERS = frozenset(k for _, _, k in SOURCES) - {"ja4"}


@dataclass(frozen=True)
class Observation:
    kind: str  # software | user_agent | server | sdp_origin | sdp_session_name | ja4 (+ sip_ prefix)
    text: str
    sender: str | None  # endpoint (or client address) that wrote it
    group: tuple[Any, ...]  # flow-level grouping key
    endpoints: tuple[str, ...]
    flow_id: Any
    frame: Any
    relayed_by: str | None = None  # a proxy that only forwarded it (never named as running it)


@lru_cache(maxsize=1)
def vuln_table() -> dict[str, Any]:
    """The version-knowledge table (``rtcforensics/data/vulns.json``)."""
    return json.loads(resources.files("rtcforensics").joinpath("data/vulns.json").read_text())


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def in_range(v: str, lo: str, hi: str) -> bool:
    t = version_tuple(v)
    return version_tuple(lo) <= t < version_tuple(hi)


@lru_cache(maxsize=1)
def dtls_fingerprints() -> dict[str, list[dict[str, Any]]]:
    """JA4 -> the known stacks sending that ClientHello (``rtcforensics/data/dtls_fingerprints.json``)."""
    data = json.loads(resources.files("rtcforensics").joinpath("data/dtls_fingerprints.json").read_text())
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in data["fingerprints"]:
        out[e["ja4"]].append(e)
    return dict(out)


def identify_ja4(ja4: str) -> dict[str, Any] | None:
    """The one known stack a DTLS ClientHello fingerprint belongs to, or None (unknown, or shared by two)."""
    known = dtls_fingerprints().get(ja4, [])
    return known[0] if len(known) == 1 else None


def identify(text: str) -> list[tuple[str, str]]:
    """``[(component, version)]`` recognised in a software string."""
    out = []
    for comp, spec in vuln_table()["components"].items():
        for pat in spec["patterns"]:
            m = re.search(pat, text, re.IGNORECASE)
            if m:
                out.append((comp, m.group(1)))
                break
    return out


def known_vulns(component: str, version: str) -> list[dict[str, Any]]:
    return [
        v
        for v in vuln_table()["vulns"]
        if v["component"] == component and any(in_range(version, lo, hi) for lo, hi in v["affected"])
    ]


def _msg_endpoints(
    r: Any, kind: str, authors: Authors | None = None
) -> tuple[str | None, tuple[str, ...], tuple[Any, ...], str | None]:
    """(whose software it is, endpoints, flow group, relayed by) for a message row: client/server roles when
    the frame has them (a User-Agent is the client's even on a server-to-client WebSocket message); for a
    signalling message, the host that wrote the header (``tables.origins``), not a proxy that relayed it."""
    src, dst = ep(val(r, "src"), val(r, "sport")), ep(val(r, "dst"), val(r, "dport"))
    if val(r, "direction") is not None or "msg_index" in r:  # a signalling message: client/server
        client, server = parties(r)
        i = val(r, "msg_index")
        relay = None
        if kind.endswith("user_agent"):
            sender = client
            if authors is not None and i is not None and int(i) in authors.user_agent:
                sender, relay = authors.user_agent[int(i)], authors.user_agent_relayed_by.get(int(i))
        elif kind.endswith("server"):
            sender = server
            if authors is not None and i is not None and int(i) in authors.server:
                sender, relay = authors.server[int(i)], authors.server_relayed_by.get(int(i))
        else:
            sender = server if str(val(r, "direction", "")) in ("response", "server_to_client") else client
        if relay is not None:
            return sender, tuple(endpoints(sender)), ("origin", sender), relay
        return sender, tuple(endpoints(client, server)), ("server", server), None
    return src, tuple(endpoints(src, dst)), ("sender", src), None


def observations(ctx: CheckContext, kinds: frozenset[str] | None = None) -> list[Observation]:
    """What the capture says of its software, from the ``SOURCES`` of ``kinds`` (default: all); raises
    NotObservable when no frame holding those sources can be built."""
    out: list[Observation] = []
    available = False
    for frame, col, kind in SOURCES:
        if kinds is not None and kind not in kinds:
            continue
        df = ctx.optional(frame, (col,))
        if df is None:
            continue
        available = True
        authors = header_authors(df) if frame == "signalling" else None
        for r in rows(df[df[col].notna()]):
            text = str(val(r, col, "")).strip()
            if not text:
                continue
            if frame == "dtls":  # the ClientHello's fingerprint: the DTLS client's stack
                client = val(r, "client")
                out.append(
                    Observation(
                        kind,
                        text,
                        client,
                        ("sender", client),
                        tuple(endpoints(client, val(r, "server"))),
                        val(r, "flow_id"),
                        (val(r, "frames") or [None])[0],
                    )
                )
                continue
            sender, eps, group, relay = _msg_endpoints(r, kind, authors)
            k = f"sip_{kind}" if frame == "signalling" and str(val(r, "transport")) == "sip" else kind
            out.append(Observation(k, text, sender, group, eps, val(r, "flow_id"), val(r, "frame"), relay))
    if not available:
        raise NotObservable("no frame records software strings (stun SOFTWARE, signalling headers, SDP o=)")
    return out


@check(
    id="COMP001",
    slug="outdated-component",
    title="Component version with a known CVE",
    severity=Severity.HIGH,
    confidence=Confidence.MEDIUM,
    references=("rtcforensics/data/vulns.json", "CVE-2022-2294", "CVE-2020-26262"),
)
def outdated_component(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a STUN SOFTWARE attribute, User-Agent or Server header, or SDP o=/s= line that names a
    component version inside an affected range of the version table (coturn, Chrome/libwebrtc, Firefox,
    Janus, FreeSWITCH, Asterisk). Severity is the worst CVE matched; confidence is high for server-sent
    SOFTWARE/Server, medium for User-Agent and SDP (clients can lie, distributions backport fixes).
    A DTLS ClientHello whose JA4 is the one a known-vulnerable version sends (``data/dtls_fingerprints.json``,
    each fingerprint read from a capture of a stack whose version is known) is reported at low severity and
    low confidence: other versions may send the same ClientHello, so it is a lead, not a verdict. A version
    released after the capture began (release dates kept beside the fingerprints) is never named.
    Why it matters: a known-vulnerable relay, media server or browser in the call path can be attacked
    with public exploits (e.g. CVE-2022-2294 heap overflow in libwebrtc, exploited in the wild).
    Evidence: component, version, where it was read, the CVEs with their fixed versions and sources.
    False positives: distribution packages with backported fixes keep the old version string; a JA4 shared by
    newer, fixed versions than the ones the fingerprint table has seen.
    References: rtcforensics/data/vulns.json (each entry cites its advisory); CVE-2022-2294; CVE-2020-26262."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    captured = capture_start(ctx)
    for o in observations(ctx):
        for comp, version, vulns, match in _versions_with_cves(o, captured):
            k = (comp, version, o.sender or o.endpoints)
            entry = seen.setdefault(
                k, {"obs": o, "frames": [], "vulns": vulns, "kinds": set(), "match": None}
            )
            entry["frames"] += frames_of(o.frame)
            entry["kinds"].add(o.kind)
            entry["match"] = entry["match"] or match
    for (comp, version, _), e in seen.items():
        o, vulns = e["obs"], e["vulns"]
        sev = max(Severity.parse(v["severity"]) for v in vulns)
        conf = max(CONFIDENCE_BY_SOURCE.get(k, Confidence.MEDIUM) for k in e["kinds"])
        ev: dict[str, Any] = {
            "component": comp,
            "version": version,
            "read_from": sorted(e["kinds"]),
            "text": o.text,
            "cves": [
                {"cve": v["cve"], "fixed_in": v["fixed_in"], "severity": v["severity"], "source": v["source"]}
                for v in vulns
            ],
        }
        msg = (
            f"{comp} {version} (read from {', '.join(sorted(e['kinds']))}) is affected by "
            f"{', '.join(v['cve'] for v in vulns)}"
        )
        if e["kinds"] == {"ja4"}:  # only a fingerprint match: a lead for the analyst, not a finding to act on
            sev = Severity.LOW
            ev["fingerprint_source"] = e["match"]["source"]
            released = {
                v: d for v, d in (e["match"].get("released") or {}).items() if v in e["match"]["versions"]
            }
            ev["released"] = released
            when = ""
            if captured is not None:
                ev["capture_date"] = captured.date().isoformat()
                when = (
                    f", or another version released at or before the capture ({captured.date().isoformat()})"
                )
            msg = (
                f"DTLS ClientHello fingerprint {o.text} is the one {comp} {version} sends (seen in "
                f"{e['match']['source'].split(':')[0]}); {comp} {version} is affected by "
                f"{', '.join(v['cve'] for v in vulns)} (other versions may send the same ClientHello{when})"
            )
        yield Hit(
            message=msg,
            endpoints=[o.sender] if o.sender else list(o.endpoints),
            flow_id=o.flow_id,
            frames=e["frames"],
            evidence=ev,
            key=(comp, version, o.sender or ""),
            severity=sev,
            confidence=conf,
        )


def possible_versions(match: dict[str, Any], captured: pd.Timestamp | None) -> list[str]:
    """The versions of a fingerprint entry that existed when the capture was taken: a version whose release
    date (``released`` in the fingerprint table) is after ``captured`` cannot have sent the ClientHello.
    Versions with no known release date stay (the capture date then bounds nothing)."""
    released = match.get("released") or {}
    out = []
    for v in match["versions"]:
        day = released.get(v)
        if captured is not None and day and pd.Timestamp(day, tz="UTC") > captured:
            continue
        out.append(v)
    return out


def capture_start(ctx: CheckContext) -> pd.Timestamp | None:
    """When the capture began (its first packet), or None when unknown."""
    pk = ctx.optional("packets", ("ts",))
    if pk is None or not len(pk) or pk["ts"].isna().all():
        return None
    return pd.Timestamp(pk["ts"].min())


def _versions_with_cves(
    o: Observation, captured: pd.Timestamp | None = None
) -> Iterator[tuple[str, str, list[dict[str, Any]], dict[str, Any] | None]]:
    """(component, version, CVEs, fingerprint entry or None) an observation points at, when CVEs apply. A JA4
    match counts only when every version known to send that ClientHello is affected by the same CVEs."""
    if o.kind == "ja4":
        match = identify_ja4(o.text)
        if match is None:
            return
        versions = possible_versions(match, captured)
        if not versions:
            return  # every version known to send it was released after the capture: it cannot be one of them
        per_version = [known_vulns(match["component"], v) for v in versions]
        common = [v for v in per_version[0] if all(v in other for other in per_version[1:])]
        if common:
            yield match["component"], ", ".join(versions), common, {**match, "versions": versions}
        return
    for comp, version in identify(o.text):
        vulns = known_vulns(comp, version)
        if vulns:
            yield comp, version, vulns, None


@check(
    id="COMP002",
    slug="software-disclosure",
    title="Software and version disclosed",
    severity=Severity.INFO,
    confidence=Confidence.HIGH,
    references=("RFC 8489 §14.14", "RFC 9110 §10.1.5, §10.2.4", "RFC 3261 §20.35"),
)
def software_disclosure(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: server or client software named in a STUN/TURN SOFTWARE attribute, an HTTP/SIP
    User-Agent or Server header, or an SDP o=/s= line. One finding per server (with every client that talked
    to it) or, for STUN, per sender, listing what was read.
    Why it matters: version banners let an attacker pick exploits (see outdated-component) and
    fingerprint the stack in use.
    Evidence: the strings per source (software, user_agent, server, sdp_origin).
    A value that is a token (``values.token_kind``) is not software: signalling-secret-exposed reports it.
    False positives: informational by nature.
    References: RFC 8489 §14.14 (SOFTWARE is optional); RFC 9110 §10.1.5, §10.2.4; RFC 3261 §20.35."""
    groups: dict[tuple[Any, ...], list[Observation]] = defaultdict(list)
    relayed: list[Observation] = []
    for o in observations(ctx, BANNERS):
        if token_kind(o.text):
            continue  # a token is a secret (signalling-secret-exposed), not a software name
        if (
            o.kind.startswith("sdp_")
            and not identify(o.text)
            and not re.search(r"[A-Za-z]{3,}[-/ ]?\d", o.text)
        ):
            continue  # "o=- 4611 2 IN IP4 ..." names no software
        if o.relayed_by is not None:
            relayed.append(o)
        else:
            groups[o.group].append(o)
    # a relayed header joins the finding of the host that wrote it (as a client of a server, or as a server)
    home: dict[str, tuple[Any, ...]] = {}
    for g, obs in groups.items():
        for o in obs:
            if o.sender:
                home.setdefault(o.sender, g)
                home.setdefault(host(o.sender) or o.sender, g)
    for o in relayed:
        groups[home.get(o.sender or "") or home.get(host(o.sender) or "") or o.group].append(o)
    for group, obs in groups.items():
        seen: dict[str, list[str]] = {}
        for o in obs:
            seen.setdefault(o.kind, [])
            if o.text not in seen[o.kind]:
                seen[o.kind].append(o.text)
        ev: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in seen.items()}
        relays = sorted({o.relayed_by for o in obs if o.relayed_by})
        if relays:
            ev["relayed_by"] = relays
        # the hosts that wrote what was read (a proxy that relayed a header is not among them); for a server's
        # finding, the clients first, then the server they talked to
        eps = list(dict.fromkeys(e for o in obs for e in ((o.sender,) if o.sender else o.endpoints)))
        if group[0] == "server":
            eps = [e for e in eps if e != group[1]] + [group[1]]
        yield Hit(
            message="; ".join(f"{k}: {' | '.join(v)}" for k, v in seen.items()),
            endpoints=eps,
            flow_id=obs[0].flow_id,
            frames=frames_of(*[o.frame for o in obs][:50]),
            evidence=ev,
            key=(group[1] or "", *sorted(f"{k}={t}" for k, v in seen.items() for t in v)),
        )
