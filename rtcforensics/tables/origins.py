"""Who wrote a signalling header: the originating user agent or responder, not a proxy that relayed it.

A SIP proxy (Kamailio), a WebSocket gateway or a TLS-terminating reverse proxy (nginx) forwards a request's
``User-Agent`` and a response's ``Server`` unchanged. The capture shows it: the same SIP transaction (Call-ID,
CSeq, method or status) crosses several legs, and the first copy on the wire was sent by the host that wrote
it; every later copy from another host is a relay. A connection whose SIP requests all first appeared on
another leg is the back-end leg of a proxy: the upgrade request and the WebSocket messages on it carry the
headers of the client on the front leg (RFC 3261 §16.6: a proxy keeps User-Agent / Server; §20.35, §20.41).

What a message says of its path comes first: the bottom ``Via`` of a SIP request that crossed proxies names
the user agent that sent it (RFC 3261 §8.1.1.7, when it is an address), and a proxy's ``X-Forwarded-For``
names the client of the front leg (``X-Forwarded-Proto: https``: that leg was TLS). They hold when the front
leg is encrypted without a keylog; without them the first visible copy is the relay's, and the relay is all
the packets can name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..values import ep, host, parties, records, val


@dataclass
class Authors:
    """Per signalling message (``msg_index``): the host that wrote its User-Agent (client address) and the
    endpoint that wrote its Server header, and the hosts that only relayed them. ``front_leg``: for a
    back-end leg of a proxy, the flow on which its SIP requests first appeared."""

    user_agent: dict[int, str | None] = field(default_factory=dict)
    server: dict[int, str | None] = field(default_factory=dict)
    user_agent_relayed_by: dict[int, str] = field(default_factory=dict)
    server_relayed_by: dict[int, str] = field(default_factory=dict)
    front_leg: dict[int, int] = field(default_factory=dict)  # back-end flow_id -> front flow_id
    # clear flow whose messages carry X-Forwarded-Proto: https -> "client → proxy": the back end of a TLS proxy
    forwarded_tls: dict[int, str] = field(default_factory=dict)


def _address(text: Any) -> str | None:
    """``text`` as an IP address literal (brackets and a port allowed); None for a name such as ``x.invalid``."""
    t = str(text or "").strip()
    for cand in (t, host(t) or "", t.strip("[]")):
        try:
            return str(ipaddress.ip_address(cand))
        except ValueError:
            continue
    return None


def forwarded_client(r: dict[str, Any]) -> str | None:
    """The original client a proxy names in ``X-Forwarded-For`` (its first, left-most entry)."""
    xff = val(r, "x_forwarded_for")
    return _address(str(xff).split(",")[0]) if xff else None


def _sender(r: dict[str, Any]) -> str | None:
    """Who originated a message as the message itself says: the bottom Via of a SIP request (RFC 3261
    §8.1.1.7, when it is an address), else the proxy's X-Forwarded-For, else the sender on the wire."""
    if (
        val(r, "method") and (val(r, "sip_via_count") or 0) > 1
    ):  # one Via: the sender is the user agent itself
        via = _address(val(r, "sip_via_bottom_host"))
        if via is not None:
            return via
    return forwarded_client(r) or (str(val(r, "src")) if val(r, "src") else None)


def header_authors(sig: pd.DataFrame | None) -> Authors:
    """Attribute every signalling message's User-Agent and Server to the host that wrote it (module doc)."""
    out = Authors()
    if sig is None or not len(sig) or "msg_index" not in sig.columns:
        return out
    rs = sorted(records(sig), key=lambda r: (val(r, "frame") or 0, val(r, "msg_index") or 0))
    # SIP transactions: the first copy on the wire names its author
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    sip = "sip_call_id" in sig.columns and "sip_cseq" in sig.columns
    for r in rs:
        if not (sip and val(r, "sip_call_id") and val(r, "sip_cseq")):
            continue
        what = val(r, "method") if val(r, "method") else val(r, "status")
        first.setdefault((val(r, "sip_call_id"), val(r, "sip_cseq"), str(what)), r)

    def origin(r: dict[str, Any]) -> dict[str, Any] | None:
        if not (sip and val(r, "sip_call_id") and val(r, "sip_cseq")):
            return None
        what = val(r, "method") if val(r, "method") else val(r, "status")
        f = first.get((val(r, "sip_call_id"), val(r, "sip_cseq"), str(what)))
        return f if f is not None and val(f, "src") != val(r, "src") else None

    # back-end legs: a flow whose SIP requests were first sent on another flow
    for r in rs:
        o = origin(r)
        if (
            o is not None
            and val(r, "method")
            and val(r, "flow_id") is not None
            and val(o, "flow_id") is not None
        ):
            out.front_leg.setdefault(int(val(r, "flow_id")), int(val(o, "flow_id")))
    front_client: dict[int, str | None] = {}
    for r in rs:  # the front leg's client, following chains of proxies
        f = val(r, "flow_id")
        if f is None or int(f) in front_client:
            continue
        front_client[int(f)] = forwarded_client(r) or parties(r)[0]

    def leg_client(flow: Any, default: str | None) -> str | None:
        seen: set[int] = set()
        while flow is not None and int(flow) in out.front_leg and int(flow) not in seen:
            seen.add(int(flow))
            flow = out.front_leg[int(flow)]
        return front_client.get(int(flow), default) if flow is not None else default

    for r in rs:
        i = val(r, "msg_index")
        if i is None:
            continue
        i = int(i)
        client, server = parties(r)
        o = origin(r)
        f = val(r, "flow_id")
        if (
            str(val(r, "x_forwarded_proto") or "").lower() == "https"
            and val(r, "tls") is not None
            and not bool(val(r, "tls"))
            and f is not None
        ):
            out.forwarded_tls.setdefault(int(f), f"{forwarded_client(r) or '?'} → {client or '?'}")
        if val(r, "user_agent"):
            said = _sender(r) if val(r, "method") or forwarded_client(r) else None
            if said is not None and said != val(r, "src"):  # Via / X-Forwarded-For names the originator
                author: str | None = said
            elif o is not None and val(
                r, "method"
            ):  # a relayed SIP request: its first copy's sender wrote it
                author = _sender(o)
            else:  # the connection's client, or the front leg's client when this is a proxy's back end
                author = leg_client(val(r, "flow_id"), client)
            out.user_agent[i] = author
            if author != client and client:
                out.user_agent_relayed_by[i] = client
        if val(r, "server"):
            if o is not None and val(r, "status"):  # a relayed SIP response: the responder wrote it
                out.server[i] = ep(val(o, "src"), val(o, "sport"))
                out.server_relayed_by[i] = str(val(r, "src"))
            else:
                out.server[i] = server
    return out
