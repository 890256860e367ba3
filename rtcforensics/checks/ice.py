"""ICE family: what candidates reveal, connectivity-check integrity, media without consent."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from ..addr import NOT_PUBLIC, endpoint_array
from ..tables.origins import header_authors
from .common import endpoints, ep, frames_of, host, listish, rows, truthy, val
from .context import CheckContext
from .registry import Confidence, Hit, NotObservable, Severity, check

EXPOSED = ("clear",)


SIGNALLED = ("sdp", "trickle")


def cand_exposure(r: Any) -> str:
    """``clear`` when the candidate crossed the wire readable (plaintext signalling or STUN), ``protected``
    (inside TLS, even if we decrypted it), ``side`` (from a side file)."""
    v = val(r, "in_clear")
    return "clear" if v is True else "protected" if v is False else "side"


def _signalled(df: Any) -> Any:
    return df[df["origin"].astype(str).isin(SIGNALLED)] if "origin" in df.columns else df


CAND_KEY = ("address", "port", "transport", "foundation")  # what identifies a candidate (:func:`cand_key`)


def _only(df: pd.DataFrame, keep: Any, cols: tuple[str, ...]) -> pd.DataFrame:
    """The rows ``keep`` of ``df``, with only the columns ``cols`` a check reads (the ones present): rows are
    read as dicts, and 10^5 candidates with every column took seconds per check."""
    return df.loc[keep, [c for c in dict.fromkeys(cols) if c in df.columns]]


def _isin(df: pd.DataFrame, col: str, values: Any) -> Any:
    """``df[col]`` (as text) is one of ``values``; False where the column is missing or NA."""
    if col not in df.columns:
        return pd.Series(False, index=df.index)
    return df[col].astype("string").isin(values).fillna(False).astype(bool)


def _cand_hit(r: Any, msg: str, ev: dict[str, Any], key: tuple[Any, ...], **kw: Any) -> Hit:
    return Hit(
        message=msg,
        endpoints=endpoints(ep(val(r, "address"), val(r, "port"))),
        flow_id=val(r, "flow_id"),
        frames=frames_of(val(r, "frame")),
        evidence={"type": val(r, "type"), "origin": val(r, "origin"), "exposure": cand_exposure(r), **ev},
        key=key,
        **kw,
    )


@check(
    id="ICE001",
    slug="ice-private-ip-exposed",
    title="Private / internal address revealed in ICE candidates",
    severity=Severity.LOW,
    confidence=Confidence.HIGH,
    needs=("candidates",),
    references=("RFC 8828 §3, §5", "RFC 8445 §5.1.1", "RFC 1918", "RFC 6598", "RFC 4193"),
)
def ice_private_ip_exposed(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a candidate address or related address (raddr) in RFC 1918, CGNAT (100.64/10),
    loopback, link-local or ULA space that crossed the wire readable (plaintext signalling). Documentation
    ranges count as public. One finding per address.
    Why it matters: internal addresses let a remote party or an observer map the user's network and
    fingerprint the device; RFC 8828 asks browsers not to reveal them without consent.
    Evidence: the address, its scope, candidate type and where it was read; ``sent_by``: the host that
    revealed it, the sender of its first copy on the wire (a signalling server that relayed the description
    to the other peer is not named).
    False positives: candidates read only after TLS decryption or from a side file are not flagged.
    References: RFC 8828 §3 and §5; RFC 8445 §5.1.1; RFC 1918; RFC 6598; RFC 4193."""
    df = _signalled(ctx.frame("candidates", ("address", "scope", "in_clear")))
    first = first_copies(df)
    found: dict[str, dict[str, Any]] = {}
    clear = df["in_clear"].astype("boolean").fillna(False).astype(bool)
    internal = _isin(df, "scope", NOT_PUBLIC) | _isin(df, "raddr_scope", NOT_PUBLIC)
    cols = (
        "in_clear",
        "scope",
        "ip",
        "address",
        "raddr_scope",
        "raddr_ip",
        "raddr",
        "type",
        "frame",
        "sender",
        *CAND_KEY,
    )
    for r in rows(_only(df, clear & internal, cols)):
        if cand_exposure(r) not in EXPOSED:
            continue
        for field, scol, ipcol in (("address", "scope", "ip"), ("raddr", "raddr_scope", "raddr_ip")):
            sc = str(val(r, scol, "") or "")
            if sc not in NOT_PUBLIC:
                continue
            ip = str(val(r, ipcol) or val(r, field))
            e = found.setdefault(
                ip, {"scope": sc, "fields": set(), "types": set(), "frames": [], "senders": set()}
            )
            e["fields"].add(field)
            e["types"].add(str(val(r, "type")))
            e["frames"] += frames_of(val(r, "frame"))
            author = val(first.get(cand_key(r), r), "sender")  # not a server that relayed it
            if author:
                e["senders"].add(str(author))
    if found:
        addrs = sorted(found)
        yield Hit(
            message=f"{len(addrs)} internal address(es) revealed in candidates that crossed the wire readable: "
            + ", ".join(f"{a} ({found[a]['scope']})" for a in addrs),
            endpoints=addrs,
            frames=[f for a in addrs for f in found[a]["frames"]],
            evidence={
                "addresses": {
                    a: {
                        "scope": found[a]["scope"],
                        "as": sorted(found[a]["fields"]),
                        "types": sorted(found[a]["types"]),
                        "sent_by": sorted(found[a]["senders"]),
                    }
                    for a in addrs
                }
            },
            key=tuple(addrs),
        )


@check(
    id="ICE002",
    slug="ice-ipv6-eui64",
    title="IPv6 candidate with an EUI-64 interface id (reveals the MAC)",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("candidates",),
    references=("RFC 8828 §5", "RFC 8981", "RFC 7217", "RFC 4291 App. A"),
)
def ice_ipv6_eui64(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: an IPv6 candidate or related address whose interface id is EUI-64
    (``xx:xx:xx:ff:fe:xx:xx:xx``), from which the MAC address follows. Medium when it crossed the wire
    readable, low otherwise.
    Why it matters: the MAC is a stable hardware identifier that follows the device across networks and
    names its vendor.
    Evidence: the address and the MAC it reveals.
    False positives: none for the address; virtual interfaces have synthetic MACs (still stable).
    References: RFC 8828 §5; RFC 8981; RFC 7217; RFC 4291 Appendix A."""
    df = ctx.frame("candidates", ("address", "eui64", "mac"))
    macs = df["mac"].notna() | (df["raddr_mac"].notna() if "raddr_mac" in df.columns else False)
    cols = ("address", "mac", "raddr", "raddr_mac", "flow_id", "frame", "origin", "in_clear")
    for r in rows(_only(df, macs, cols)):
        for field, mcol in (("address", "mac"), ("raddr", "raddr_mac")):
            mac = val(r, mcol)
            a = val(r, field)
            if not mac or not a:
                continue
            clear = cand_exposure(r) in EXPOSED
            yield Hit(
                message=f"IPv6 {field} {a} is EUI-64: reveals MAC {mac}",
                endpoints=[str(a)],
                flow_id=val(r, "flow_id"),
                frames=frames_of(val(r, "frame")),
                evidence={
                    "address": str(a),
                    "mac": mac,
                    "field": field,
                    "origin": val(r, "origin"),
                    "exposure": cand_exposure(r),
                },
                key=(str(a).lower(),),
                severity=None if clear else Severity.LOW,
            )


@check(
    id="ICE003",
    slug="ice-no-mdns",
    title="Raw host IP in candidates where mDNS obfuscation was possible",
    severity=Severity.LOW,
    confidence=Confidence.MEDIUM,
    needs=("candidates",),
    references=("RFC 8828 §5.2", "draft-ietf-mmusic-mdns-ice-candidates"),
)
def ice_no_mdns(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: host candidates with raw IP addresses instead of mDNS ``.local`` names, sent by a
    browser; one finding listing the addresses (a second, low confidence, for libwebrtc o= lines alone).
    The ICE agent that made a candidate is the host that first sent a description with its ufrag (a copy
    relayed or posted by another host is not its own); it is a browser when that host's User-Agent says so (``tables.origins``: the host that wrote it) or
    the description's o= line does (Firefox, Chrome). A host that sent it as the server of its signalling
    connection (an SFU, a gateway) and native stacks are not flagged: they cannot use mDNS names. An o= line
    that says only libwebrtc (Chromium or a native app) is reported at low confidence.
    Why it matters: browsers hide host addresses behind mDNS names (RFC 8828 mode 2) precisely so that a
    web page cannot learn the local address; a raw one shows that protection was off.
    Evidence: the addresses and where they were read; ``agents``: per host that made them, the browser and
    what identified it (``identified_by``).
    False positives: browsers that had camera/microphone permission (RFC 8828 mode 1 reveals host
    addresses by design), hence medium confidence.
    References: RFC 8828 §5.2; draft-ietf-mmusic-mdns-ice-candidates."""
    df = _signalled(ctx.frame("candidates", ("address", "type", "scope")))
    sig_df = ctx.optional("signalling", ("user_agent",))
    agents = _IceAgents(ctx.optional("sdp", ("stack",)), sig_df, df)
    # one finding for the browsers known as such, one (low confidence) for libwebrtc o= lines alone
    found: dict[bool, dict[str, dict[str, Any]]] = defaultdict(dict)
    raw_host = _isin(df, "type", ("host",)) & ~_isin(df, "scope", ("mdns", "invalid", "unspecified"))
    cols = ("type", "mdns", "scope", "ip", "address", "port", "frame", *CAND_KEY, *_IceAgents.CAND_COLS)
    for r in rows(_only(df, raw_host, cols)):
        if str(val(r, "type", "")) != "host" or truthy(r, "mdns"):
            continue
        sc = str(val(r, "scope", "") or "")
        who = agents.browser(r)
        if who is None or sc in ("mdns", "invalid", "unspecified"):
            continue  # only a browser could have sent an mDNS name instead
        ip = str(val(r, "ip") or val(r, "address"))
        e = found[who[1] == "libwebrtc"].setdefault(
            ip, {"scope": sc, "frames": [], "ports": set(), "agents": {}}
        )
        e["frames"] += frames_of(val(r, "frame"))
        e["ports"].add(ep(val(r, "address"), val(r, "port")))
        e["agents"][who[0]] = {"browser": who[1], "identified_by": who[2]}
    for native_maybe, got in sorted(found.items()):
        addrs = sorted(got)
        agents_ev = {h: a for e in got.values() for h, a in e["agents"].items()}
        browsers = sorted({a["browser"] for a in agents_ev.values()})
        msg = (
            f"{len(addrs)} host candidate address(es) sent as raw IPs, no mDNS name: "
            + ", ".join(addrs)
            + " (by "
            + ", ".join(
                f"{h}: {a['browser']} per its {a['identified_by']}" for h, a in sorted(agents_ev.items())
            )
            + ", which can hide them)"
        )
        if native_maybe:
            msg += "; libwebrtc's o= line is also written by native apps, which cannot: low confidence"
        yield Hit(
            message=msg,
            endpoints=addrs,
            frames=[f for a in addrs for f in got[a]["frames"]],
            evidence={
                "addresses": {
                    a: {"scope": got[a]["scope"], "candidates": sorted(got[a]["ports"])} for a in addrs
                },
                "browsers": browsers,
                "agents": agents_ev,
            },
            key=tuple(addrs),
            confidence=Confidence.LOW if native_maybe else None,
        )


BROWSERS = (
    ("firefox", re.compile(r"Firefox|SDPARTA", re.IGNORECASE)),
    ("chromium", re.compile(r"Chrom(e|ium)\b|\bEdg(e|/)", re.IGNORECASE)),
    ("safari", re.compile(r"Version/[\d.]+ (Mobile/\w+ )?Safari/|^Safari$", re.IGNORECASE)),
)


def browser_of(text: str) -> str | None:
    """The browser a User-Agent or an sdp ``stack`` names (``libwebrtc`` alone is not one)."""
    for name, pat in BROWSERS:
        if pat.search(text):
            return name
    return None


def cand_key(c: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies one candidate across its copies (the original and relayed or posted ones)."""
    return (val(c, "address"), val(c, "port"), val(c, "transport"), val(c, "foundation"))


def first_copies(cands: pd.DataFrame) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Per candidate (:func:`cand_key`), its first copy on the wire: a candidate seen again later (relayed by
    a signalling server, posted in a stats dump) was made by the host that sent it first. The copies hold
    the columns the checks read of them (``_IceAgents.CAND_COLS``)."""
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    cols = (*CAND_KEY, "frame", *_IceAgents.CAND_COLS)
    for c in sorted(
        rows(_only(cands, slice(None), cols)), key=lambda c: (val(c, "frame") is None, val(c, "frame") or 0)
    ):
        first.setdefault(cand_key(c), c)
    return first


class _IceAgents:
    """Who made a candidate, and whether it is a browser (ICE003)."""

    CAND_COLS = ("ufrag", "sdp_index", "signalling_msg", "sender")  # what it reads of a candidate

    def __init__(self, sdp: pd.DataFrame | None, sig: pd.DataFrame | None, cands: pd.DataFrame) -> None:
        self.first_cand = first_copies(cands)
        self.sdp: dict[int, dict[str, Any]] = {}
        self.first: dict[str, dict[str, Any]] = {}  # ufrag -> first description on the wire that carried it
        if sdp is not None and "sdp_index" in sdp.columns:
            for d in sorted(
                rows(sdp),
                key=lambda d: (val(d, "frame") is None, val(d, "frame") or 0, val(d, "sdp_index") or 0),
            ):
                self.sdp[int(val(d, "sdp_index"))] = d
                for u in listish(val(d, "ice_ufrags")) or listish(val(d, "ice_ufrag")):
                    self.first.setdefault(str(u), d)
        self.msgs: dict[int, dict[str, Any]] = {}
        self.ua: dict[str, str] = {}  # host -> browser its own User-Agent names
        if sig is not None and "msg_index" in sig.columns:
            authors = header_authors(sig)
            for m in rows(sig):
                i = val(m, "msg_index")
                if i is None:
                    continue
                self.msgs[int(i)] = m
                b = browser_of(str(val(m, "user_agent") or ""))
                author = authors.user_agent.get(int(i))
                if b and author:
                    self.ua.setdefault(author, b)

    @staticmethod
    def _server_sent(m: dict[str, Any]) -> bool:
        srv = host(val(m, "server_endpoint"))
        if srv is not None and val(m, "src") is not None:
            return str(val(m, "src")) == srv
        return str(val(m, "direction", "")) in ("response", "server_to_client")

    def browser(self, c: dict[str, Any]) -> tuple[str, str, str] | None:
        """(agent host, browser, what identified it) for a candidate row; None when its sender is not
        known to be a browser."""
        c = self.first_cand.get(cand_key(c), c)
        d = self.first.get(str(val(c, "ufrag"))) if val(c, "ufrag") else None
        if d is None and val(c, "sdp_index") is not None:
            d = self.sdp.get(int(val(c, "sdp_index")))
        carrier = (
            d
            if d is not None
            else self.msgs.get(int(val(c, "signalling_msg")))
            if val(c, "signalling_msg") is not None
            else None
        )
        if carrier is None:
            return None
        if str(val(carrier, "source", "wire") or "wire") != "wire":  # a side file: the dump's own stack
            b = browser_of(str(val(carrier, "stack") or ""))
            return (str(val(c, "sender") or val(carrier, "source")), b, "side file") if b else None
        if self._server_sent(carrier):
            return None  # the server of its signalling connection (SFU, gateway): no mDNS
        agent = str(val(carrier, "src") or "")
        if agent in self.ua:
            return agent, self.ua[agent], "User-Agent"
        stack = str(val(carrier, "stack") or "") if d is not None else ""
        b = browser_of(stack)
        if b:
            return agent, b, "SDP o= line"
        if stack == "libwebrtc":
            return agent, "libwebrtc", "SDP o= line"
        return None


def _is_ice_check(r: Any) -> bool:
    """A Binding request that is an ICE connectivity check (USERNAME or PRIORITY present), not a plain
    STUN server-reflexive query."""
    return bool(
        val(r, "username")
        or val(r, "priority") is not None
        or truthy(r, "use_candidate")
        or val(r, "ice_role")
    )


def _ice_checks(stun: pd.DataFrame) -> np.ndarray:
    """Which `stun` rows are Binding requests that are ICE connectivity checks (vectorised
    :func:`_is_ice_check`), read from the columns it needs (a million messages: no copy of the frame)."""
    mask = ((stun["method"] == "Binding") & (stun["cls"] == "request")).fillna(False).to_numpy(bool)
    ice = np.zeros(len(stun), dtype=bool)
    if "username" in stun.columns:
        ice |= (stun["username"].astype("string") != "").fillna(False).to_numpy(bool)
    if "priority" in stun.columns:
        ice |= stun["priority"].notna().to_numpy(bool)
    if "use_candidate" in stun.columns:
        ice |= stun["use_candidate"].fillna(False).astype(bool).to_numpy(bool)
    if "ice_role" in stun.columns:
        ice |= (stun["ice_role"].astype("string") != "").fillna(False).to_numpy(bool)
    return mask & ice


def _stun_eps(r: Any) -> list[str]:
    return endpoints(ep(val(r, "src"), val(r, "sport")), ep(val(r, "dst"), val(r, "dport")))


@check(
    id="ICE004",
    slug="stun-no-integrity",
    title="ICE connectivity checks without MESSAGE-INTEGRITY",
    severity=Severity.MEDIUM,
    confidence=Confidence.HIGH,
    needs=("stun",),
    references=("RFC 8445 §7.2.2", "RFC 8489 §14.5", "RFC 7983"),
    params={
        "max_flow_findings": (
            50,
            "above this many flows, one finding per sending host and server (count and a sample of flows)",
        )
    },
)
def stun_no_integrity(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: Binding requests that are ICE connectivity checks (USERNAME, PRIORITY or ICE role
    present) but carry no MESSAGE-INTEGRITY. One finding per flow. Plain server-reflexive Binding queries
    (no USERNAME) are not ICE checks and are not flagged. Applications with proprietary STUN variants
    (unknown comprehension-required attributes) are reported at low confidence. Above ``max_flow_findings``
    flows (a flood of one-packet flows), one finding per sending host and server with the flow count and a
    sample of 20 flows.
    Why it matters: without integrity anyone who can inject packets can answer connectivity checks, steer
    the selected pair and redirect media or keep consent alive (RFC 7675).
    Evidence: the flow, the frames of the unprotected requests, their count.
    False positives: proprietary ICE variants by design (reported low confidence).
    References: RFC 8445 §7.2.2; RFC 8489 §14.5; RFC 7983."""
    df = ctx.frame("stun", ("method", "cls", "has_integrity", "flow_id", "frame"))
    no_integrity = df["has_integrity"].astype("boolean").fillna(True).eq(False).to_numpy(bool)
    at = np.flatnonzero(_ice_checks(df) & no_integrity)
    if not len(at):
        return
    bad = df[["flow_id", "frame", "src", "sport", "dst", "dport"]].take(at)  # not the long text columns
    proprietary = np.zeros(len(at), dtype=bool)
    if "unknown_attrs" in df.columns:
        proprietary = df["unknown_attrs"].str.len().fillna(0).gt(0).to_numpy(bool)[at]
    named = np.zeros(len(at), dtype=bool)
    if "username" in df.columns:
        named = (df["username"].astype("string") != "").fillna(False).to_numpy(bool)[at]
    per = pd.DataFrame(
        {
            "flow_id": bad["flow_id"],
            "frame": bad["frame"],
            "proprietary": proprietary,
            "username": named,
            "src": bad["src"].astype("string"),
            "server": endpoint_array(bad["dst"], bad["dport"]),
            "client": endpoint_array(bad["src"], bad["sport"]),
        }
    )
    del bad
    flows = per.groupby("flow_id", sort=False).agg(
        requests=("frame", "size"),
        proprietary=("proprietary", "any"),
        username=("username", "any"),
        src=("src", "first"),
        client=("client", "first"),
        server=("server", "first"),
    )
    if len(flows) <= ctx.param("max_flow_findings"):
        flows["frames"] = _lists_by_key(per["flow_id"], per["frame"])
        yield from map(_flow_hit, rows(flows.reset_index()))
        return
    # past max_flow_findings: one finding per sending host and server, a lone flow of its own; the frames
    # are listed only for the flows a finding names
    ngroup = flows.groupby(["src", "server", "proprietary"], sort=False).ngroup()  # NA keys: NaN, skipped
    group = ngroup.fillna(-1).to_numpy(dtype=np.int64)
    sizes = np.bincount(group[group >= 0])
    shown = flows.index[(group >= 0) & (flows.groupby(group).cumcount().to_numpy() < SAMPLE_FLOWS)]
    named_rows = per["flow_id"].isin(shown).to_numpy(bool)
    frames = dict(zip(shown, _lists_by_key(per["flow_id"][named_rows], per["frame"][named_rows])))
    del per
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(sizes) + 1))
    lone = order[bounds[:-1][sizes == 1]]
    lone_rows = dict(zip(lone.tolist(), rows(flows.iloc[lone].reset_index())))
    for k in range(len(sizes)):
        idx = order[bounds[k] : bounds[k + 1]]
        if sizes[k] == 1:
            f = lone_rows[int(idx[0])]
            yield _flow_hit({**f, "frames": frames[f["flow_id"]]})
        else:
            g = flows.iloc[idx]
            yield _hosts_hit(
                str(g["src"].iat[0]), str(g["server"].iat[0]), bool(g["proprietary"].iat[0]), g, frames
            )


def _lists_by_key(keys: pd.Series, values: pd.Series) -> list[list[Any]]:
    """``values`` as one list per distinct key, keys in order of first appearance (what
    ``groupby(sort=False).agg(list)`` gives, without a Python call per group: 10^5 one-packet flows)."""
    codes, _ = pd.factorize(keys, sort=False)  # NA keys: -1, dropped as groupby drops them
    kept = np.flatnonzero(codes >= 0)
    order = kept[np.argsort(codes[kept], kind="stable")]
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    return [part.tolist() for part in np.split(values.to_numpy(object)[order], cuts)] if len(order) else []


def _flow_hit(f: dict[str, Any]) -> Hit:
    eps = endpoints(f["client"], f["server"])
    return Hit(
        message=f"{f['requests']} ICE connectivity check(s) without MESSAGE-INTEGRITY",
        endpoints=eps,
        flow_id=f["flow_id"],
        frames=frames_of(f["frames"]),
        evidence={
            "requests": int(f["requests"]),
            "proprietary_attributes": bool(f["proprietary"]),
            "username_present": bool(f["username"]),
        },
        key=tuple(sorted(eps)),
        severity=Severity.LOW if f["proprietary"] else None,
        confidence=Confidence.LOW if f["proprietary"] else None,
    )


SAMPLE_FLOWS = 20  # flows named in an aggregated finding's evidence


def _hosts_hit(
    src: str, server: str, proprietary: bool, g: pd.DataFrame, frames: dict[Any, list[Any]]
) -> Hit:
    """Past ``max_flow_findings`` flows, one finding per sending host and server: how many flows, how many
    requests, and a bounded sample of the flows (a flood of one-packet flows must not become a flood of
    findings). ``frames``: the frames of each sampled flow."""
    sample = g.head(SAMPLE_FLOWS)
    requests = int(g["requests"].sum())
    return Hit(
        message=f"{requests} ICE connectivity check(s) without MESSAGE-INTEGRITY from {src} to {server} on "
        f"{len(g)} flows ({len(sample)} of them in the evidence)",
        endpoints=endpoints(src, server),
        flow_id=None,
        frames=frames_of(*[frames[fid][:1] for fid in sample.index]),
        evidence={
            "flows": len(g),
            "requests": requests,
            "sample_flows": [
                {"flow_id": int(fid), "client": c, "frames": list(frames[fid][:3])}
                for fid, c in zip(sample.index, sample["client"])
            ],
            "proprietary_attributes": proprietary,
            "username_present": bool(g["username"].any()),
        },
        key=("hosts", src, server),
        severity=Severity.LOW if proprietary else None,
        confidence=Confidence.LOW if proprietary else None,
    )


MEDIA_CLASSES = {"rtp", "rtcp", "dtls", "zrtp"}


@check(
    id="ICE005",
    slug="unsolicited-media",
    title="Media on a 5-tuple without ICE consent",
    severity=Severity.MEDIUM,
    confidence=Confidence.MEDIUM,
    needs=("packets", "stun"),
    references=("RFC 7675 §5", "RFC 8445 §7.3", "RFC 8826 §4.2.1"),
    params={
        "min_packets": (
            10,
            ("flows with fewer media packets are ignored (stray packets that merely look like RTP)"),
        )
    },
)
def unsolicited_media(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a UDP flow carrying at least ``min_packets`` RTP, RTCP or DTLS packets (outside TURN) on
    which no ICE Binding check was answered with success in the capture, in a capture where ICE is in use.
    RTP counts only when one SSRC carries ``min_packets`` of them (random datagrams whose first byte looks
    like RTP carry a new SSRC each); media of an SDP exchange without ICE (a gateway's plain SIP leg, joined
    by the `sessions` frame) is not judged: consent is an ICE mechanism. One finding per flow.
    Why it matters: ICE consent is what stops a web page from using a browser as a packet cannon, and media
    arriving without it may be injected or redirected by an attacker who knows the ports.
    Evidence: the flow, its media classes and first frames.
    False positives: consent obtained before the capture started; non-ICE legs whose SDP was not captured.
    References: RFC 7675 §5; RFC 8445 §7.3; RFC 8826 §4.2.1."""
    stun = ctx.frame("stun", ("method", "cls", "flow_id"))
    pk = ctx.frame("packets", ("flow_id",))
    if not _ice_checks(stun).any():
        raise NotObservable("no ICE connectivity checks in this capture (ICE not in use, or before capture)")
    ok = stun[(stun["method"].astype(str) == "Binding") & (stun["cls"].astype(str) == "success")]
    consented = set(ok["flow_id"].dropna().astype(int))
    turn_flows = set(
        stun[
            stun["method"]
            .astype(str)
            .isin(["Allocate", "Refresh", "CreatePermission", "ChannelBind", "Send", "Data"])
        ]["flow_id"]
        .dropna()
        .astype(int)
    )
    # media an SDP exchange without ICE agreed on (a gateway's plain SIP leg): consent is an ICE mechanism
    sessions = ctx.optional("sessions", ("kind", "flow_id"))
    no_ice = (
        set()
        if sessions is None
        else {
            int(f)
            for k, fl in zip(sessions["kind"].astype(str), sessions["flow_id"])
            if k == "sdp"
            for f in listish(fl)
        }
    )
    # RTP is media only when one SSRC carries a run of packets (stray datagrams whose first byte looks like
    # RTP carry a new SSRC each)
    streams = ctx.optional("rtp_streams", ("flow_id", "packets"))
    longest_stream: dict[int, int] = (
        {}
        if streams is None or not len(streams)
        else {
            int(f): int(n)
            for f, n in streams.dropna(subset=["flow_id"]).groupby("flow_id")["packets"].max().items()
        }
    )
    cls_col = "demux" if "demux" in pk.columns else "cls"
    media = pk[pk[cls_col].astype(str).isin(MEDIA_CLASSES)]
    if "transport" in media.columns:
        media = media[media["transport"].astype(str) == "udp"]
    if "via_turn" in media.columns:
        media = media[media["via_turn"].isna() | (media["via_turn"].astype(str).isin(["", "None", "<NA>"]))]
    for flow, g in media.groupby("flow_id", sort=True):
        flow = int(flow)
        if flow in consented or flow in turn_flows or flow in no_ice or len(g) < ctx.param("min_packets"):
            continue
        classes = sorted(set(g[cls_col].astype(str)))
        if classes == ["rtp"] and longest_stream.get(flow, len(g)) < ctx.param("min_packets"):
            continue
        first = g.iloc[0]
        yield Hit(
            message=f"{len(g)} media packet(s) ({', '.join(classes)}) on a flow with no ICE consent",
            endpoints=_stun_eps(first),
            flow_id=flow,
            frames=[int(f) for f in g["frame"].head(5)],
            evidence={"packets": len(g), "classes": classes},
            key=tuple(sorted(_stun_eps(first))),
        )
