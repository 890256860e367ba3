"""The call topology as a graph: ``graph(cap) -> networkx.MultiDiGraph``.

Nodes are hosts (IP addresses) with ``roles`` (every role seen) and ``role`` (the most specific one):
``media_server`` (an ice-lite or server-stack description's host, or a host with ICE sessions toward
several peers), ``turn_server`` (answered an Allocate, or the server of an unread TLS leg on a TURN port,
whose client is a ``peer``: ``tables.legs``), ``stun_server`` (answered a Binding request that
was not an ICE check), ``signalling_proxy`` (forwards SIP requests that first crossed another leg: a
WebSocket gateway, a TLS-terminating proxy, a SIP proxy), ``signalling_server`` (received HTTP requests / WebSocket upgrades / SIP
requests, or a TLS connection whose content we could not read), ``peer`` (ICE checks, DTLS, RTP).
``sfu`` (bool) marks the media server every participant's media ends at (``sessions.media_server``): the
media is hop by hop there, that server decrypts it.
Edges are flows (one edge per ``flows.flow_id``, from the side that spoke first), with transport,
ports, protocols (demux classes, signalling transports), packets, bytes, ``encrypted``
(True/False/None) and the ``session_ids`` of the `sessions` that used them. TURN permissions add
``relay_permission`` edges from the TURN server to each permitted peer (``observed=False``: the relayed
leg itself may not be in the capture).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import networkx as nx

from .addr import classify
from .tables.legs import opaque_legs
from .tables.origins import header_authors
from .tables.sessions import SERVER_STACKS
from .values import host as _host
from .values import val

ROLE_ORDER = ("media_server", "turn_server", "stun_server", "signalling_proxy", "signalling_server", "peer")


def graph(cap: Any, *, include_other: bool = False) -> nx.MultiDiGraph:
    """The hosts and flows of ``cap`` with roles, encryption state and session ids (see module docstring).

    ``include_other``: also flows with nothing WebRTC-related on them (neighbour discovery, multicast,
    unrelated traffic); left out by default."""
    g = nx.MultiDiGraph()
    roles: dict[str, set[str]] = defaultdict(set)
    software: dict[str, set[str]] = defaultdict(set)
    hubs: set[str] = set()  # sessions.media_server: media is hop by hop, decrypted there

    flows = cap.frame_or_none("flows")
    sessions = cap.frame_or_none("sessions")
    flow_sessions: dict[int, list[int]] = defaultdict(list)
    if sessions is not None:
        for r in sessions.to_dict("records"):
            ids = list(val(r, "flow_id") or [])
            for extra in ("turn_flow_id", "dtls_flow_id"):
                if val(r, extra) is not None:
                    ids.append(int(r[extra]))
            for f in dict.fromkeys(ids):
                flow_sessions[int(f)].append(int(r["session_id"]))

    sig = cap.frame_or_none("signalling")
    sig_flows: dict[int, set[str]] = defaultdict(set)
    if sig is not None:
        authors = header_authors(sig)
        back_legs = set(authors.front_leg)
        turn_tls = {leg.flow_id for leg in opaque_legs(sig) if leg.turn}
        for leg in opaque_legs(sig):
            if (
                leg.turn and leg.server_host and leg.client_host
            ):  # an unread TURN-over-TLS leg: relay and client
                roles[leg.server_host].add("turn_server")
                roles[leg.client_host].add("peer")
        for r in sig.to_dict("records"):
            direction, transport = val(r, "direction"), str(r.get("transport"))
            server = None
            if transport == "tls" and val(r, "flow_id") in turn_tls:
                sig_flows[int(r["flow_id"])].add(
                    "turn+tls"
                )  # a TURN relay's leg, not signalling (roles above)
                continue
            if direction in ("request", "client_to_server") or transport == "tls":
                server = val(r, "dst")
            elif direction == "server_to_client":
                server = val(r, "src")
            if server and not (transport == "sip" and direction == "response"):
                roles[str(server)].add("signalling_server")
            if val(r, "server"):  # the responder that wrote it, not a proxy that relayed it
                author = authors.server.get(int(r["msg_index"])) if val(r, "msg_index") is not None else None
                software[_host(author) or str(r.get("src"))].add(str(r["server"]))
            if (
                val(r, "flow_id") is not None
                and int(r["flow_id"]) in back_legs
                and direction in ("request", "client_to_server")
            ):
                roles[str(val(r, "src"))].add("signalling_proxy")  # relays another leg's requests
            if val(r, "flow_id") is not None:
                tls_suffix = "+tls" if r.get("tls") is True and transport != "tls" else ""
                sig_flows[int(r["flow_id"])].add(transport + tls_suffix)

    stun = cap.frame_or_none("stun")
    if stun is not None and len(stun):
        for r in stun.to_dict("records"):
            method, cls = val(r, "method"), val(r, "cls")
            src, dst = val(r, "src"), val(r, "dst")
            if method == "Allocate" and cls in ("success", "error") and src:
                roles[str(src)].add("turn_server")
                if dst:
                    roles[str(dst)].add("peer")  # the TURN client
            elif (
                method == "Binding"
                and cls == "request"
                and not val(r, "username")
                and dst
                and not val(r, "via_turn")
            ):
                roles[str(dst)].add("stun_server")
            elif (
                method == "Binding"
                and cls == "request"
                and val(r, "username")
                and src
                and not val(r, "via_turn")
            ):
                roles[str(src)].add("peer")
                roles[str(dst)].add("peer")
            if val(r, "software") and src:
                software[str(src)].add(str(r["software"]))
    # the TURN server answers Binding too: it is not also a STUN-only server nor an ICE peer
    for rs in roles.values():
        if "turn_server" in rs:
            rs.discard("stun_server")
            rs.discard("peer")

    dtls = cap.frame_or_none("dtls")
    if dtls is not None:
        for r in dtls.to_dict("records"):
            for side in ("client", "server"):
                hh = _host(r.get(side))
                if hh and "turn_server" not in roles.get(hh, set()):
                    roles[hh].add("peer")
    streams = cap.frame_or_none("rtp_streams")
    if streams is not None and {"src", "dst"} <= set(streams.columns):
        for r in streams[["src", "dst"]].to_dict("records"):
            for h in (val(r, "src"), val(r, "dst")):
                if h and "turn_server" not in roles.get(str(h), set()):
                    roles[str(h)].add("peer")

    sdp = cap.frame_or_none("sdp")
    cands = cap.frame_or_none("candidates")
    if sdp is not None and cands is not None and len(sdp):
        server_idx = {
            int(r["sdp_index"])
            for r in sdp.to_dict("records")
            if r.get("ice_lite") is True or val(r, "stack") in SERVER_STACKS
        }
        for r in cands.to_dict("records"):
            if (
                val(r, "sdp_index") is not None
                and int(r["sdp_index"]) in server_idx
                and val(r, "ip")
                and str(r.get("type")) == "host"
            ):
                roles[str(r["ip"])].add("media_server")
    if sessions is not None:
        remotes: dict[str, set[str]] = defaultdict(set)
        for r in sessions.to_dict("records"):
            pair = val(r, "selected_pair")
            if not pair or " <-> " not in str(pair):
                continue
            a, b = (_host(x) for x in str(pair).split(" <-> "))
            if a and b:
                remotes[a].add(b)
                remotes[b].add(a)
        for h, peers in remotes.items():
            if len(peers) >= 3 and "turn_server" not in roles.get(h, set()):
                roles[h].add("media_server")
        if "media_server" in sessions.columns:  # the hub the participants' media ends at (SFU, MCU, gateway)
            for h in sessions["media_server"].dropna().astype(str):
                roles[h].add("media_server")
                hubs.add(h)

    if flows is not None:
        dtls_flows: set[int] = set() if dtls is None else {int(f) for f in dtls["flow_id"].dropna()}
        for r in flows.to_dict("records"):
            fid = int(r["flow_id"])
            a, b = val(r, "a_ip"), val(r, "b_ip")
            if a is None or b is None:
                continue
            classes = [
                str(c)
                for c in (val(r, "classes") if isinstance(r.get("classes"), (list, tuple)) else [])
                if c
            ]
            protocols = sorted(set(classes) | sig_flows.get(fid, set()))
            enc = val(r, "encrypted")
            if enc is True and "tls" not in classes and fid not in dtls_flows:
                enc = None  # DTLS by first byte only, no handshake or coherent epoch: not called encrypted
            if (
                not include_other
                and not (set(classes) - {"other"})
                and fid not in sig_flows
                and fid not in flow_sessions
            ):
                continue
            if any(p.endswith("+tls") or p == "tls" for p in sig_flows.get(fid, ())):
                enc = True
            elif sig_flows.get(fid) and all(not p.endswith("+tls") for p in sig_flows[fid]) and enc is None:
                enc = False
            for h in (a, b):
                if h not in g:
                    g.add_node(h)
            g.add_edge(
                a,
                b,
                key=fid,
                flow_id=fid,
                kind="flow",
                transport=val(r, "transport"),
                sport=val(r, "a_port"),
                dport=val(r, "b_port"),
                protocols=protocols,
                packets=val(r, "packets"),
                bytes=val(r, "bytes"),
                encrypted=None if enc is None else bool(enc),
                via_turn=val(r, "via_turn"),
                session_ids=flow_sessions.get(fid, []),
                observed=True,
                first_ts=val(r, "first_ts"),
                last_ts=val(r, "last_ts"),
            )

    if sessions is not None:
        for r in sessions.to_dict("records"):
            server = _host(r.get("turn_server"))
            for peer in list(val(r, "turn_peers") or []):
                ph = _host(peer)
                if server and ph and ph != server:
                    g.add_edge(
                        server,
                        ph,
                        key=f"perm:{r['session_id']}:{peer}",
                        kind="relay_permission",
                        flow_id=None,
                        peer=peer,
                        relayed_address=val(r, "relayed_address"),
                        session_ids=[int(r["session_id"])],
                        observed=False,
                        encrypted=None,
                        protocols=["turn"],
                    )

    for h in list(g.nodes):
        rs = roles.get(h, set())
        ordered = [x for x in ROLE_ORDER if x in rs]
        info = classify(h)
        g.nodes[h].update(
            {
                "roles": ordered,
                "role": ordered[0] if ordered else "unknown",
                "scope": info.scope,
                "software": sorted(software.get(h, set())),
                "label": h,
                "sfu": h in hubs,
            }
        )
    return g
