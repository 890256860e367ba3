"""ICE family: what candidates reveal, connectivity-check integrity, media without consent."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ..addr import NOT_PUBLIC
from .common import endpoints, ep, frames_of, rows, truthy, val
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


def _cand_hit(r: Any, msg: str, ev: dict[str, Any], key: tuple[Any, ...], **kw: Any) -> Hit:
    return Hit(message=msg, endpoints=endpoints(ep(val(r, "address"), val(r, "port"))), flow_id=val(r, "flow_id"),
               frames=frames_of(val(r, "frame")),
               evidence={"type": val(r, "type"), "origin": val(r, "origin"), "exposure": cand_exposure(r), **ev},
               key=key, **kw)


@check(id="ICE001", slug="ice-private-ip-exposed", title="Private / internal address revealed in ICE candidates",
       severity=Severity.LOW, confidence=Confidence.HIGH, needs=("candidates",),
       references=("RFC 8828 §3, §5", "RFC 8445 §5.1.1", "RFC 1918", "RFC 6598", "RFC 4193"))
def ice_private_ip_exposed(ctx: Any) -> Iterator[Hit]:
    """What it flags: a candidate address or related address (raddr) in RFC 1918, CGNAT (100.64/10),
    loopback, link-local or ULA space that crossed the wire readable (plaintext signalling). Documentation
    ranges count as public. One finding per address.
    Why it matters: internal addresses let a remote party or an observer map the user's network and
    fingerprint the device; RFC 8828 asks browsers not to reveal them without consent.
    Evidence: the address, its scope, candidate type and where it was read.
    False positives: candidates read only after TLS decryption or from a side file are not flagged.
    References: RFC 8828 §3 and §5; RFC 8445 §5.1.1; RFC 1918; RFC 6598; RFC 4193."""
    df = _signalled(ctx.frame("candidates", ("address", "scope", "in_clear")))
    found: dict[str, dict[str, Any]] = {}
    for r in rows(df):
        if cand_exposure(r) not in EXPOSED:
            continue
        for field, scol, ipcol in (("address", "scope", "ip"), ("raddr", "raddr_scope", "raddr_ip")):
            sc = str(val(r, scol, "") or "")
            if sc not in NOT_PUBLIC:
                continue
            ip = str(val(r, ipcol) or val(r, field))
            e = found.setdefault(ip, {"scope": sc, "fields": set(), "types": set(), "frames": [], "senders": set()})
            e["fields"].add(field)
            e["types"].add(str(val(r, "type")))
            e["frames"] += frames_of(val(r, "frame"))
            if val(r, "sender"):
                e["senders"].add(str(val(r, "sender")))
    if found:
        addrs = sorted(found)
        yield Hit(message=f"{len(addrs)} internal address(es) revealed in candidates that crossed the wire readable: "
                          + ", ".join(f"{a} ({found[a]['scope']})" for a in addrs),
                  endpoints=addrs, frames=[f for a in addrs for f in found[a]["frames"]],
                  evidence={"addresses": {a: {"scope": found[a]["scope"], "as": sorted(found[a]["fields"]),
                                              "types": sorted(found[a]["types"]),
                                              "sent_by": sorted(found[a]["senders"])} for a in addrs}},
                  key=tuple(addrs))


@check(id="ICE002", slug="ice-ipv6-eui64", title="IPv6 candidate with an EUI-64 interface id (reveals the MAC)",
       severity=Severity.MEDIUM, confidence=Confidence.HIGH, needs=("candidates",),
       references=("RFC 8828 §5", "RFC 8981", "RFC 7217", "RFC 4291 App. A"))
def ice_ipv6_eui64(ctx: Any) -> Iterator[Hit]:
    """What it flags: an IPv6 candidate or related address whose interface id is EUI-64
    (``xx:xx:xx:ff:fe:xx:xx:xx``), from which the MAC address follows. Medium when it crossed the wire
    readable, low otherwise.
    Why it matters: the MAC is a stable hardware identifier that follows the device across networks and
    names its vendor.
    Evidence: the address and the MAC it reveals.
    False positives: none for the address; virtual interfaces have synthetic MACs (still stable).
    References: RFC 8828 §5; RFC 8981; RFC 7217; RFC 4291 Appendix A."""
    df = ctx.frame("candidates", ("address", "eui64", "mac"))
    for r in rows(df):
        for field, mcol in (("address", "mac"), ("raddr", "raddr_mac")):
            mac = val(r, mcol)
            a = val(r, field)
            if not mac or not a:
                continue
            clear = cand_exposure(r) in EXPOSED
            yield Hit(message=f"IPv6 {field} {a} is EUI-64: reveals MAC {mac}",
                      endpoints=[str(a)], flow_id=val(r, "flow_id"), frames=frames_of(val(r, "frame")),
                      evidence={"address": str(a), "mac": mac, "field": field, "origin": val(r, "origin"),
                                "exposure": cand_exposure(r)},
                      key=(str(a).lower(),), severity=None if clear else Severity.LOW)


@check(id="ICE003", slug="ice-no-mdns", title="Raw host IP in candidates where mDNS obfuscation was possible",
       severity=Severity.LOW, confidence=Confidence.MEDIUM, needs=("candidates",),
       references=("RFC 8828 §5.2", "draft-ietf-mmusic-mdns-ice-candidates"))
def ice_no_mdns(ctx: Any) -> Iterator[Hit]:
    """What it flags: host candidates sent by a browser (recognised by its description's stack or its
    User-Agent) with raw IP addresses instead of mDNS ``.local`` names; one finding listing the addresses.
    Native stacks and servers, which cannot use mDNS names, are not flagged.
    Why it matters: browsers hide host addresses behind mDNS names (RFC 8828 mode 2) precisely so that a
    web page cannot learn the local address; a raw one shows that protection was off.
    Evidence: the address and where it was read.
    False positives: browsers that had camera/microphone permission (RFC 8828 mode 1 reveals host
    addresses by design), hence medium confidence.
    References: RFC 8828 §5.2; draft-ietf-mmusic-mdns-ice-candidates."""
    df = _signalled(ctx.frame("candidates", ("address", "type", "scope")))
    sig = ctx.optional("signalling", ("user_agent",))
    sdp = ctx.optional("sdp", ("stack",))
    found: dict[str, dict[str, Any]] = {}
    for r in rows(df):
        if str(val(r, "type", "")) != "host" or truthy(r, "mdns"):
            continue
        sc = str(val(r, "scope", "") or "")
        b = _sender_browser(r, sig, sdp)
        if b is None or sc in ("mdns", "invalid", "unspecified"):
            continue  # only a browser could have sent an mDNS name instead
        ip = str(val(r, "ip") or val(r, "address"))
        e = found.setdefault(ip, {"scope": sc, "frames": [], "ports": set(), "browsers": set()})
        e["frames"] += frames_of(val(r, "frame"))
        e["ports"].add(ep(val(r, "address"), val(r, "port")))
        e["browsers"].add(b)
    if found:
        addrs = sorted(found)
        browsers = sorted({b for e in found.values() for b in e["browsers"]})
        yield Hit(message=f"{len(addrs)} host candidate address(es) sent as raw IPs, no mDNS name: "
                          + ", ".join(addrs) + f" (from {', '.join(browsers)}, which can hide them)",
                  endpoints=addrs, frames=[f for a in addrs for f in found[a]["frames"]],
                  evidence={"addresses": {a: {"scope": found[a]["scope"], "candidates": sorted(found[a]["ports"])}
                                          for a in addrs}, "browsers": browsers},
                  key=tuple(addrs))


BROWSERS = (("firefox", re.compile(r"Firefox/|SDPARTA", re.IGNORECASE)),
            ("chromium", re.compile(r"Chrom(e|ium)/|HeadlessChrome|libwebrtc|WebRTC", re.IGNORECASE)),
            ("safari", re.compile(r"Version/[\d.]+ Safari/", re.IGNORECASE)))


def browser_of(text: str) -> str | None:
    for name, pat in BROWSERS:
        if pat.search(text):
            return name
    return None


def _sender_browser(r: Any, sig: Any, sdp: Any) -> str | None:
    """The browser that sent a candidate: the stack of its description, or the User-Agent of the client
    that sent the trickle message (a browser can hide host addresses behind mDNS names)."""
    if sdp is not None and val(r, "sdp_index") is not None and "sdp_index" in sdp.columns:
        d = sdp[sdp["sdp_index"] == val(r, "sdp_index")]
        if len(d) and val(d.iloc[0], "stack"):
            return browser_of(str(val(d.iloc[0], "stack")))
    if sig is not None and val(r, "signalling_msg") is not None and "msg_index" in sig.columns:
        m = sig[sig["msg_index"] == val(r, "signalling_msg")]
        if len(m) and str(val(m.iloc[0], "direction")) in ("request", "client_to_server"):
            return browser_of(str(val(m.iloc[0], "user_agent") or ""))
    return None


def _is_ice_check(r: Any) -> bool:
    """A Binding request that is an ICE connectivity check (USERNAME or PRIORITY present), not a plain
    STUN server-reflexive query."""
    return bool(val(r, "username") or val(r, "priority") is not None or truthy(r, "use_candidate")
                or val(r, "ice_role"))


def _stun_eps(r: Any) -> list[str]:
    return endpoints(ep(val(r, "src"), val(r, "sport")), ep(val(r, "dst"), val(r, "dport")))


@check(id="ICE004", slug="stun-no-integrity", title="ICE connectivity checks without MESSAGE-INTEGRITY",
       severity=Severity.MEDIUM, confidence=Confidence.HIGH, needs=("stun",),
       references=("RFC 8445 §7.2.2", "RFC 8489 §14.5", "RFC 7983"))
def stun_no_integrity(ctx: Any) -> Iterator[Hit]:
    """What it flags: Binding requests that are ICE connectivity checks (USERNAME, PRIORITY or ICE role
    present) but carry no MESSAGE-INTEGRITY. One finding per flow. Plain server-reflexive Binding queries
    (no USERNAME) are not ICE checks and are not flagged. Applications with proprietary STUN variants
    (unknown comprehension-required attributes) are reported at low confidence.
    Why it matters: without integrity anyone who can inject packets can answer connectivity checks, steer
    the selected pair and redirect media or keep consent alive (RFC 7675).
    Evidence: the flow, the frames of the unprotected requests, their count.
    False positives: proprietary ICE variants by design (reported low confidence).
    References: RFC 8445 §7.2.2; RFC 8489 §14.5; RFC 7983."""
    df = ctx.frame("stun", ("method", "cls", "has_integrity"))
    bind = df[(df["method"].astype(str) == "Binding") & (df["cls"].astype(str) == "request")]
    groups: dict[Any, list[Any]] = defaultdict(list)
    for r in rows(bind):
        if _is_ice_check(r) and val(r, "has_integrity") is False:
            groups[val(r, "flow_id")].append(r)
    for flow, rs in groups.items():
        proprietary = any(val(r, "unknown_attrs") for r in rs)
        yield Hit(message=f"{len(rs)} ICE connectivity check(s) without MESSAGE-INTEGRITY",
                  endpoints=_stun_eps(rs[0]), flow_id=flow, frames=frames_of(*[val(r, "frame") for r in rs]),
                  evidence={"requests": len(rs), "proprietary_attributes": proprietary,
                            "username_present": any(bool(val(r, "username")) for r in rs)},
                  key=tuple(sorted(_stun_eps(rs[0]))),
                  severity=Severity.LOW if proprietary else None,
                  confidence=Confidence.LOW if proprietary else None)


MEDIA_CLASSES = {"rtp", "rtcp", "dtls", "zrtp"}


@check(id="ICE005", slug="unsolicited-media", title="Media on a 5-tuple without ICE consent",
       severity=Severity.MEDIUM, confidence=Confidence.MEDIUM, needs=("packets", "stun"),
       references=("RFC 7675 §5", "RFC 8445 §7.3", "RFC 8826 §4.2.1"),
       params={"min_packets": (10, ("flows with fewer media packets are ignored (stray packets that merely "
                                    "look like RTP)"))})
def unsolicited_media(ctx: Any) -> Iterator[Hit]:
    """What it flags: a UDP flow carrying at least ``min_packets`` RTP, RTCP or DTLS packets (outside TURN) on
    which no ICE Binding check was answered with success in the capture, in a capture where ICE is in use.
    One finding per flow.
    Why it matters: ICE consent is what stops a web page from using a browser as a packet cannon, and media
    arriving without it may be injected or redirected by an attacker who knows the ports.
    Evidence: the flow, its media classes and first frames.
    False positives: consent obtained before the capture started; non-ICE legs of a gateway.
    References: RFC 7675 §5; RFC 8445 §7.3; RFC 8826 §4.2.1."""
    stun = ctx.frame("stun", ("method", "cls", "flow_id"))
    pk = ctx.frame("packets", ("flow_id",))
    ice_checks = stun[(stun["method"].astype(str) == "Binding") & (stun["cls"].astype(str) == "request")]
    ice_checks = ice_checks[[_is_ice_check(r) for r in rows(ice_checks)]] if len(ice_checks) else ice_checks
    if not len(ice_checks):
        raise NotObservable("no ICE connectivity checks in this capture (ICE not in use, or before capture)")
    ok = stun[(stun["method"].astype(str) == "Binding") & (stun["cls"].astype(str) == "success")]
    consented = set(ok["flow_id"].dropna().astype(int))
    turn_flows = set(stun[stun["method"].astype(str).isin(["Allocate", "Refresh", "CreatePermission",
                                                            "ChannelBind", "Send", "Data"])]["flow_id"]
                     .dropna().astype(int))
    cls_col = "demux" if "demux" in pk.columns else "cls"
    media = pk[pk[cls_col].astype(str).isin(MEDIA_CLASSES)]
    if "transport" in media.columns:
        media = media[media["transport"].astype(str) == "udp"]
    if "via_turn" in media.columns:
        media = media[media["via_turn"].isna() | (media["via_turn"].astype(str).isin(["", "None", "<NA>"]))]
    for flow, g in media.groupby("flow_id", sort=True):
        flow = int(flow)
        if flow in consented or flow in turn_flows or len(g) < ctx.param("min_packets"):
            continue
        first = g.iloc[0]
        classes = sorted(set(g[cls_col].astype(str)))
        yield Hit(message=f"{len(g)} media packet(s) ({', '.join(classes)}) on a flow with no ICE consent",
                  endpoints=_stun_eps(first), flow_id=flow, frames=[int(f) for f in g["frame"].head(5)],
                  evidence={"packets": len(g), "classes": classes}, key=tuple(sorted(_stun_eps(first))))
