"""The call topology as a graph: ``graph(cap) -> networkx.MultiDiGraph``.

Nodes are hosts (IP addresses) with ``roles`` (every role seen) and ``role`` (the most specific one):
``media_server`` (an ice-lite or server-stack description's host, or a host with ICE sessions toward
several peers), ``turn_server`` (answered an Allocate), ``stun_server`` (answered a Binding request that
was not an ICE check), ``signalling_server`` (received HTTP requests / WebSocket upgrades / SIP
requests, or a TLS connection whose content we could not read), ``peer`` (ICE checks, DTLS, RTP).
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
import pandas as pd

from .addr import classify

ROLE_ORDER = ("media_server", "turn_server", "stun_server", "signalling_server", "peer")
SERVER_STACKS = {"Janus", "FreeSWITCH", "Asterisk", "mediasoup-client"}


def _v(x: Any) -> Any:
    if x is None or x is pd.NA:
        return None
    try:
        if not isinstance(x, (list, tuple, str, dict)) and pd.isna(x):
            return None
    except (TypeError, ValueError):
        pass
    return x


def _host(ep: Any) -> str | None:
    """IP of an 'ip:port' / '[v6]:port' string."""
    s = _v(ep)
    if s is None:
        return None
    s = str(s)
    if s.startswith("["):
        return s[1:].split("]", 1)[0]
    return s.rsplit(":", 1)[0] if s.count(":") == 1 else s


def _frame(cap: Any, name: str) -> pd.DataFrame | None:
    return cap.frame_or_none(name)
    try:
        return cap.get_frame(name)
    except ImportError:
        return None


def graph(cap: Any, *, include_other: bool = False) -> nx.MultiDiGraph:
    """The hosts and flows of ``cap`` with roles, encryption state and session ids (see module docstring).

    ``include_other``: also flows with nothing WebRTC-related on them (neighbour discovery, multicast,
    unrelated traffic); left out by default."""
    g = nx.MultiDiGraph()
    roles: dict[str, set[str]] = defaultdict(set)
    software: dict[str, set[str]] = defaultdict(set)

    flows = _frame(cap, "flows")
    sessions = _frame(cap, "sessions")
    flow_sessions: dict[int, list[int]] = defaultdict(list)
    if sessions is not None:
        for r in sessions.to_dict("records"):
            ids = list(_v(r.get("flow_id")) or [])
            for extra in ("turn_flow_id", "dtls_flow_id"):
                if _v(r.get(extra)) is not None:
                    ids.append(int(r[extra]))
            for f in dict.fromkeys(ids):
                flow_sessions[int(f)].append(int(r["session_id"]))

    sig = _frame(cap, "signalling")
    sig_flows: dict[int, set[str]] = defaultdict(set)
    if sig is not None:
        for r in sig.to_dict("records"):
            direction, transport = _v(r.get("direction")), str(r.get("transport"))
            server = None
            if direction in ("request", "client_to_server") or transport == "tls":
                server = _v(r.get("dst"))
            elif direction == "server_to_client":
                server = _v(r.get("src"))
            if server and not (transport == "sip" and direction == "response"):
                roles[str(server)].add("signalling_server")
            if _v(r.get("server")):
                software[str(r.get("src"))].add(str(r["server"]))
            if _v(r.get("flow_id")) is not None:
                tls_suffix = "+tls" if r.get("tls") is True and transport != "tls" else ""
                sig_flows[int(r["flow_id"])].add(transport + tls_suffix)

    stun = _frame(cap, "stun")
    if stun is not None and len(stun):
        for r in stun.to_dict("records"):
            method, cls = _v(r.get("method")), _v(r.get("cls"))
            src, dst = _v(r.get("src")), _v(r.get("dst"))
            if method == "Allocate" and cls in ("success", "error") and src:
                roles[str(src)].add("turn_server")
                if dst:
                    roles[str(dst)].add("peer")  # the TURN client
            elif method == "Binding" and cls == "request" and not _v(r.get("username")) and dst \
                    and not _v(r.get("via_turn")):
                roles[str(dst)].add("stun_server")
            elif method == "Binding" and cls == "request" and _v(r.get("username")) and src \
                    and not _v(r.get("via_turn")):
                roles[str(src)].add("peer")
                roles[str(dst)].add("peer")
            if _v(r.get("software")) and src:
                software[str(src)].add(str(r["software"]))
    # the TURN server answers Binding too: it is not also a STUN-only server nor an ICE peer
    for h, rs in roles.items():
        if "turn_server" in rs:
            rs.discard("stun_server")
            rs.discard("peer")

    dtls = _frame(cap, "dtls")
    if dtls is not None:
        for r in dtls.to_dict("records"):
            for side in ("client", "server"):
                hh = _host(r.get(side))
                if hh and "turn_server" not in roles.get(hh, set()):
                    roles[hh].add("peer")
    streams = _frame(cap, "rtp_streams")
    if streams is not None and {"src", "dst"} <= set(streams.columns):
        for r in streams[["src", "dst"]].to_dict("records"):
            for h in (_v(r["src"]), _v(r["dst"])):
                if h and "turn_server" not in roles.get(str(h), set()):
                    roles[str(h)].add("peer")

    sdp = _frame(cap, "sdp")
    cands = _frame(cap, "candidates")
    if sdp is not None and cands is not None and len(sdp):
        server_idx = {int(r["sdp_index"]) for r in sdp.to_dict("records")
                      if r.get("ice_lite") is True or _v(r.get("stack")) in SERVER_STACKS}
        for r in cands.to_dict("records"):
            if _v(r.get("sdp_index")) is not None and int(r["sdp_index"]) in server_idx and _v(r.get("ip")) \
                    and str(r.get("type")) == "host":
                roles[str(r["ip"])].add("media_server")
    if sessions is not None:
        remotes: dict[str, set[str]] = defaultdict(set)
        for r in sessions.to_dict("records"):
            pair = _v(r.get("selected_pair"))
            if not pair or " <-> " not in str(pair):
                continue
            a, b = (_host(x) for x in str(pair).split(" <-> "))
            if a and b:
                remotes[a].add(b)
                remotes[b].add(a)
        for h, peers in remotes.items():
            if len(peers) >= 3 and "turn_server" not in roles.get(h, set()):
                roles[h].add("media_server")

    if flows is not None:
        for r in flows.to_dict("records"):
            fid = int(r["flow_id"])
            a, b = _v(r.get("a_ip")), _v(r.get("b_ip"))
            if a is None or b is None:
                continue
            classes = [str(c) for c in (_v(r.get("classes")) if isinstance(r.get("classes"), (list, tuple))
                                        else []) if c]
            protocols = sorted(set(classes) | sig_flows.get(fid, set()))
            enc = _v(r.get("encrypted"))
            if not include_other and not (set(classes) - {"other"}) and fid not in sig_flows \
                    and fid not in flow_sessions:
                continue
            if any(p.endswith("+tls") or p == "tls" for p in sig_flows.get(fid, ())):
                enc = True
            elif sig_flows.get(fid) and all(not p.endswith("+tls") for p in sig_flows[fid]) and enc is None:
                enc = False
            for h in (a, b):
                if h not in g:
                    g.add_node(h)
            g.add_edge(a, b, key=fid, flow_id=fid, kind="flow", transport=_v(r.get("transport")),
                       sport=_v(r.get("a_port")), dport=_v(r.get("b_port")), protocols=protocols,
                       packets=_v(r.get("packets")), bytes=_v(r.get("bytes")),
                       encrypted=None if enc is None else bool(enc), via_turn=_v(r.get("via_turn")),
                       session_ids=flow_sessions.get(fid, []), observed=True,
                       first_ts=_v(r.get("first_ts")), last_ts=_v(r.get("last_ts")))

    if sessions is not None:
        for r in sessions.to_dict("records"):
            server = _host(r.get("turn_server"))
            for peer in list(_v(r.get("turn_peers")) or []):
                ph = _host(peer)
                if server and ph and ph != server:
                    g.add_edge(server, ph, key=f"perm:{r['session_id']}:{peer}", kind="relay_permission",
                               flow_id=None, peer=peer, relayed_address=_v(r.get("relayed_address")),
                               session_ids=[int(r["session_id"])], observed=False, encrypted=None, protocols=["turn"])

    for h in list(g.nodes):
        rs = roles.get(h, set())
        ordered = [x for x in ROLE_ORDER if x in rs]
        info = classify(h)
        g.nodes[h].update({"roles": ordered, "role": ordered[0] if ordered else "unknown", "scope": info.scope,
                           "software": sorted(software.get(h, set())), "label": h})
    return g
