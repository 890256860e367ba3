"""ICE family: what candidates reveal, connectivity-check integrity, media without consent."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..addr import NOT_PUBLIC, endpoint_array
from ..budget import give_back
from ..tables.origins import header_authors
from .common import TURN_FLOW_METHODS, endpoints, ep, frames_of, host, listish, rows, truthy, val
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


def _nonempty(s: pd.Series) -> np.ndarray:
    """``s`` holds a value that is not empty text (``astype("string") != ""``, NA: False), compared in place:
    no text per row (a categorical of a million rows made one)."""
    return s.notna().to_numpy(bool) & (s != "").fillna(False).to_numpy(bool)


def _ice_checks(stun: pd.DataFrame) -> np.ndarray:
    """Which `stun` rows are Binding requests that are ICE connectivity checks (vectorised
    :func:`_is_ice_check`), read from the columns it needs (a million messages: no copy of the frame)."""
    mask = ((stun["method"] == "Binding") & (stun["cls"] == "request")).fillna(False).to_numpy(bool)
    ice = np.zeros(len(stun), dtype=bool)
    if "username" in stun.columns:
        ice |= _nonempty(stun["username"])
    if "priority" in stun.columns:
        ice |= stun["priority"].notna().to_numpy(bool)
    if "use_candidate" in stun.columns:
        ice |= stun["use_candidate"].fillna(False).astype(bool).to_numpy(bool)
    if "ice_role" in stun.columns:
        ice |= _nonempty(stun["ice_role"])
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
    at = _nonzero32(_ice_checks(df) & no_integrity)  # a million flows: every per-row number at half size
    del no_integrity
    if not len(at):
        return
    fl = _StunFlows(df, at)
    if len(at) > _STEP:
        give_back()  # the per-row temporaries, freed, are not kept in the C heap under the next ones
    if fl.n <= ctx.param("max_flow_findings"):
        every = np.arange(fl.n)
        lists = _lists_by_code(fl.codes, df["frame"].array.take(at))
        for j, eps in enumerate(zip(fl.endpoints(every, "src"), fl.endpoints(every, "dst"), lists)):
            yield _flow_hit(fl.row(j, *eps))
        return
    # past max_flow_findings: one finding per sending host and server, a lone flow of its own; the frames
    # are listed only for the flows a finding names, endpoints written only for those
    group = fl.host_groups()
    sizes = np.bincount(group[group >= 0])
    order = np.argsort(group, kind="stable").astype(np.int32)
    ranked = group[order]  # then each flow's place in its group
    bounds = np.searchsorted(ranked, np.arange(len(sizes) + 1)).astype(np.int32)
    kept = ranked >= 0
    ranked[~kept] = 0
    ranked = np.arange(fl.n, dtype=np.int32) - bounds[ranked]
    shown = np.sort(order[kept & (ranked < SAMPLE_FLOWS)])
    del ranked, kept, group
    is_shown = np.zeros(fl.n + 1, dtype=bool)  # the extra False: code -1 (no flow)
    is_shown[shown] = True
    named_rows = np.flatnonzero(is_shown[fl.codes])
    frames: dict[int, list[Any]] = dict(
        zip(shown.tolist(), _lists_by_code(fl.codes[named_rows], df["frame"].array.take(at[named_rows])))
    )
    del named_rows, is_shown
    client = dict(zip(shown.tolist(), fl.endpoints(shown, "src")))
    firsts = order[bounds[:-1]]  # the first flow of each group: its sender and server
    senders, servers = fl.texts(firsts, "src"), fl.endpoints(firsts, "dst")
    for k in range(len(sizes)):
        idx = order[bounds[k] : bounds[k + 1]]
        j = int(idx[0])
        if sizes[k] == 1:
            yield _flow_hit(fl.row(j, client[j], servers[k], frames[j]))
        else:
            sample = [(int(fl.ids[i]), client[i], frames[i]) for i in idx[:SAMPLE_FLOWS].tolist()]
            yield _hosts_hit(
                str(senders[k]),
                str(servers[k]),
                bool(fl.proprietary[j]),
                flows=len(idx),
                requests=int(fl.requests[idx].sum()),
                username=bool(fl.username[idx].any()),
                sample=sample,
            )


_KEY_LIMIT = 2**63  # what an int64 key holds
_STEP = 1 << 14  # rows per step of per-row work: no temporary spans a million rows


def _steps(n: int) -> Iterator[slice]:
    return (slice(lo, lo + _STEP) for lo in range(0, n, _STEP))


def _nonzero32(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)`` as int32 (int64 from 2**31 rows): every per-row number at half size."""
    at = np.flatnonzero(mask)
    return at.astype(np.int32) if len(mask) < 2**31 else at


class _StunFlows:
    """The flows of the `stun` rows ``at``, as ``groupby("flow_id", sort=False)`` with ``first`` (NA skipped)
    and ``any`` would give them, kept as numbers (a million one-packet flows: no text per row, no hash
    table per row, per-row work in steps). Flow ``j`` is the ``j``-th flow id in order of first appearance;
    rows without a flow id belong to none (code -1)."""

    def __init__(self, df: pd.DataFrame, at: np.ndarray) -> None:
        self.df = df
        self.codes, self.ids, first = _first_appearance_codes(df["flow_id"], at)
        self.n = len(self.ids)
        self.requests = np.zeros(self.n, dtype=np.int32)
        self.username = np.zeros(self.n, dtype=bool)
        self.proprietary = np.zeros(self.n, dtype=bool)
        named = _nonempty(df["username"]) if "username" in df.columns else np.zeros(len(df), dtype=bool)
        attrs = df["unknown_attrs"].to_numpy(object) if "unknown_attrs" in df.columns else None
        for s in _steps(len(at)):
            rows, codes = at[s], self.codes[s]
            flow = codes >= 0
            np.add.at(self.requests, codes[flow], 1)
            self.username[codes[flow & named[rows]]] = True
            if attrs is not None:  # a list per row (``.str.len() > 0``, NA: no)
                listed = np.fromiter(map(_has_items, attrs[rows]), dtype=bool, count=len(rows))
                self.proprietary[codes[flow & listed]] = True
        del named, attrs
        # per flow, the row of its first known sender / server address (-1: none): mostly its first row
        first_rows = np.take(at, first, out=first if first.dtype == at.dtype else None)  # in place
        self.first: dict[str, np.ndarray] = {}
        for col in ("src", "dst"):
            known = df[col].notna().to_numpy(bool)
            if known[at].all():
                self.first[col] = first_rows
            else:
                self.first[col] = np.append(at, -1)[_first_positions(self.codes, self.n, known[at])]

    def texts(self, flows: np.ndarray, col: str) -> list[Any]:
        """Column ``col`` of the first row of ``flows`` where it is known (None: never)."""
        return self._at(flows, col, lambda rows: _take(self.df[col], rows))

    def endpoints(self, flows: np.ndarray, side: str) -> list[Any]:
        """The ``src`` (client) or ``dst`` (server) endpoint of ``flows`` (:func:`addr.endpoint_array`)."""
        port = {"src": "sport", "dst": "dport"}[side]
        return self._at(
            flows,
            side,
            lambda rows: endpoint_array(_take(self.df[side], rows), self.df[port].array.take(rows)).tolist(),
        )

    def _at(self, flows: np.ndarray, col: str, make: Any) -> list[Any]:
        rows = self.first[col][flows]
        out: list[Any] = [None] * len(rows)
        known = np.flatnonzero(rows >= 0)
        if len(known):
            for i, t in zip(known.tolist(), make(rows[known])):
                out[i] = t
        return out

    def row(self, j: int, client: Any, server: Any, frames: list[Any]) -> dict[str, Any]:
        """Flow ``j`` as :func:`_flow_hit` reads it."""
        return {
            "flow_id": int(self.ids[j]),
            "requests": int(self.requests[j]),
            "proprietary": bool(self.proprietary[j]),
            "username": bool(self.username[j]),
            "client": client,
            "server": server,
            "frames": frames,
        }

    def host_groups(self) -> np.ndarray:
        """Per flow, its group of (sender address, server endpoint, proprietary) numbered in order of first
        appearance, -1 where the sender or server is unknown (as ``ngroup`` numbers them, NA keys skipped);
        from codes of the frame's address columns, no endpoint text."""
        ok = (self.first["src"] >= 0) & (self.first["dst"] >= 0)
        top = self.df["dport"].max()
        ports = (0 if pd.isna(top) else int(top)) + 2  # a port p as p + 1; 0: none, the address alone
        dst = self.first["dst"][ok]
        key = np.empty(len(dst), dtype=np.int64)  # (server address, port), then (sender, server, proprietary)
        for s, codes in _codes_of(self.df["dst"], dst):
            key[s] = codes * ports + self.df["dport"].array.take(dst[s]).to_numpy(np.int64, na_value=-1) + 1
        del dst
        servers = int(key.max(initial=0)) + 1
        src = self.first["src"][ok]
        if servers * len(self.df) * 2 >= _KEY_LIMIT:  # too many to pack: the servers numbered first
            key = pd.factorize(key, size_hint=1024)[0].astype(np.int64)
            servers = int(key.max(initial=0)) + 1
        proprietary = self.proprietary[ok]
        for s, codes in _codes_of(self.df["src"], src):
            key[s] = (codes * servers + key[s]) * 2 + proprietary[s]
        group = np.full(self.n, -1, dtype=np.int32)
        group[ok] = pd.factorize(key, sort=False, size_hint=1024)[0]
        return group


def _take(col: pd.Series, rows: np.ndarray) -> list[Any]:
    """``col.array.take(rows).tolist()``; an Arrow column of many chunks read chunk by chunk (Arrow's take on
    a chunked array first joins the chunks: a copy of the whole column, 10 MiB at a million addresses)."""
    if not isinstance(col.array, pd.arrays.ArrowStringArray):
        return list(col.array.take(rows).tolist())
    out: list[Any] = [None] * len(rows)
    lo = 0
    for chunk in col.array.__arrow_array__().chunks:
        here = np.flatnonzero((rows >= lo) & (rows < lo + len(chunk)))
        if len(here):
            for i, v in zip(here.tolist(), chunk.take(pa.array(rows[here] - lo)).to_pylist()):
                out[i] = v
        lo += len(chunk)
    return out


def _codes_of(col: pd.Series, rows: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Codes (int64) of the values of ``col`` at ``rows`` where it is known, equal values equal codes, in steps
    of rows. An Arrow column is dictionary-encoded and its int32 indices read in place (``pd.factorize``
    made three copies of a million codes, one of them int64)."""
    if isinstance(col.array, pd.arrays.ArrowStringArray):
        ix = col.array.__arrow_array__().dictionary_encode().combine_chunks().indices
        codes = np.frombuffer(ix.buffers()[1], dtype=np.int32, count=len(ix) + ix.offset)[ix.offset :]
    else:
        codes = pd.factorize(col.array)[0]
    for s in _steps(len(rows)):
        yield s, codes[rows[s]].astype(np.int64)


def _first_appearance_codes(col: pd.Series, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pd.factorize(col[at], sort=False)`` of an integer column (codes in order of first appearance, NA -1)
    and each code's first position. Flow ids (small, non-negative) go through a table as long as the largest
    id instead of a hash table (a million distinct flows took 64 MiB), read in steps."""
    ids = col.array
    n = len(at)
    low, high = 0, -1
    for s in _steps(n):
        part = ids.take(at[s])
        known = ~np.asarray(part.isna(), dtype=bool)
        values = part.to_numpy(np.int64, na_value=0)
        low = min(low, int(np.min(values, where=known, initial=0)))
        high = max(high, int(np.max(values, where=known, initial=-1)))
    if low < 0 or high >= 2 * n + 65536 or n >= 2**30:
        codes, uniques = pd.factorize(ids.take(at), sort=False)
        return codes, np.asarray(uniques, dtype=np.int64), _first_positions(codes, len(uniques), codes >= 0)
    codes = np.empty(n, dtype=np.int32)  # first the ids (-1: NA), then their codes
    first = np.full(high + 1, n, dtype=np.int32)
    for s in _steps(n):
        part = codes[s]
        part[:] = ids.take(at[s]).to_numpy(np.int64, na_value=-1)
        rows = np.flatnonzero(part >= 0)
        np.minimum.at(first, part[rows], (rows + s.start).astype(np.int32))
    found = _nonzero32(first < n)
    pos = first[found]
    del first
    if (pos[1:] < pos[:-1]).any():  # ids not numbered in order of appearance
        by = np.argsort(pos, kind="stable")
        found, pos = found[by], pos[by]
    code_of = np.full(high + 2, -1, dtype=np.int32)  # the last: NA (-1)
    code_of[found] = np.arange(len(found), dtype=np.int32)
    for s in _steps(n):
        codes[s] = code_of[codes[s]]
    return codes, found, pos


def _first_positions(codes: np.ndarray, n: int, ok: np.ndarray) -> np.ndarray:
    """Per code ``0..n-1``, the position of its first row where ``ok`` (``len(codes)``: none)."""
    first = np.full(n, len(codes), dtype=np.int64)
    rows = np.flatnonzero(ok & (codes >= 0))
    np.minimum.at(first, codes[rows], rows)
    return first


def _has_items(v: Any) -> bool:
    try:
        return len(v) > 0
    except TypeError:  # NA
        return False


def _lists_by_code(codes: np.ndarray, values: Any) -> list[list[Any]]:
    """``values`` as one list per distinct code ``>= 0``, codes ascending, each in row order (what
    ``groupby(sort=False).agg(list)`` gives on factorized keys, without a Python call per group: 10^5
    one-packet flows); code -1 rows are dropped as groupby drops NA keys."""
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
    src: str,
    server: str,
    proprietary: bool,
    *,
    flows: int,
    requests: int,
    username: bool,
    sample: list[tuple[Any, Any, list[Any]]],
) -> Hit:
    """Past ``max_flow_findings`` flows, one finding per sending host and server: how many flows, how many
    requests, and a bounded sample of the flows (a flood of one-packet flows must not become a flood of
    findings). ``sample``: (flow id, client endpoint, frames) of the first ``SAMPLE_FLOWS`` flows."""
    return Hit(
        message=f"{requests} ICE connectivity check(s) without MESSAGE-INTEGRITY from {src} to {server} on "
        f"{flows} flows ({len(sample)} of them in the evidence)",
        endpoints=endpoints(src, server),
        flow_id=None,
        frames=frames_of(*[frames[:1] for _, _, frames in sample]),
        evidence={
            "flows": flows,
            "requests": requests,
            "sample_flows": [
                {"flow_id": int(fid), "client": c, "frames": list(frames[:3])} for fid, c, frames in sample
            ],
            "proprietary_attributes": proprietary,
            "username_present": username,
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
    # flows not judged, as numbers (a million STUN messages: no text per row)
    answered = ((stun["method"] == "Binding") & (stun["cls"] == "success")).fillna(False).to_numpy(bool)
    relayed = stun["method"].isin(TURN_FLOW_METHODS).fillna(False).to_numpy(bool)
    skip = [_flow_ids(stun, answered), _flow_ids(stun, relayed)]  # consented; TURN
    del answered, relayed
    # media an SDP exchange without ICE agreed on (a gateway's plain SIP leg): consent is an ICE mechanism
    sessions = ctx.optional("sessions", ("kind", "flow_id"))
    if sessions is not None:
        no_ice = [
            listish(fl) for k, fl in zip(sessions["kind"].astype(str), sessions["flow_id"]) if k == "sdp"
        ]
        skip.append(np.array([int(f) for fls in no_ice for f in fls], dtype=np.int64))
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
    min_packets = ctx.param("min_packets")
    cls_col = "demux" if "demux" in pk.columns else "cls"
    media = pk[cls_col].isin(sorted(MEDIA_CLASSES)).fillna(False).to_numpy(bool, copy=True)
    if "transport" in pk.columns:
        media &= (pk["transport"] == "udp").fillna(False).to_numpy(bool)
    if "via_turn" in pk.columns:
        vt = pk["via_turn"]
        media &= (vt.isna() | vt.isin(["", "None", "<NA>"]).fillna(False)).to_numpy(bool)
    flow = pk["flow_id"].to_numpy(np.int64, na_value=-1)
    media &= pk["flow_id"].notna().to_numpy(bool)
    # only the flows with enough media packets and no reason to skip them are read row by row
    ids, counts = np.unique(flow[media], return_counts=True)
    judged = ids[(counts >= min_packets) & ~np.isin(ids, np.concatenate(skip))]
    at = np.flatnonzero(media & np.isin(flow, judged))
    del media, flow
    packets = pk[["flow_id", cls_col, "frame"]].take(at).assign(row=at)  # no text columns copied
    for fid, g in packets.groupby("flow_id", sort=True):
        fid = int(fid)
        classes = sorted(set(g[cls_col].astype(str)))
        if classes == ["rtp"] and longest_stream.get(fid, len(g)) < min_packets:
            continue
        row = int(g["row"].iat[0])
        first = {c: pk[c].iat[row] for c in ("src", "sport", "dst", "dport") if c in pk.columns}
        yield Hit(
            message=f"{len(g)} media packet(s) ({', '.join(classes)}) on a flow with no ICE consent",
            endpoints=_stun_eps(first),
            flow_id=fid,
            frames=[int(f) for f in g["frame"].head(5)],
            evidence={"packets": len(g), "classes": classes},
            key=tuple(sorted(_stun_eps(first))),
        )


def _flow_ids(df: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The distinct flow ids of ``rows`` of ``df`` (NA dropped)."""
    fl = df["flow_id"]
    return np.unique(fl.to_numpy(np.int64, na_value=0)[rows & fl.notna().to_numpy(bool)])
