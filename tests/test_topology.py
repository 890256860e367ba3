"""topology.graph(cap): hosts with roles, flows with protocols, encryption state and session ids."""

from __future__ import annotations

import networkx as nx
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics.topology import graph


def _graph(name: str, keylog: bool = True) -> tuple[rtcforensics.Capture, nx.MultiDiGraph]:
    p = sample_path(name)
    kl = p.with_suffix(".keylog")
    cap = rtcforensics.load(p, keylog=kl if keylog and kl.exists() else None)
    return cap, graph(cap)


def _host(ep: str) -> str:
    return ep.rsplit(":", 1)[0].strip("[]")


def test_clean_call_roles_and_edges() -> None:
    t = load_truth("clean_call")
    cap, g = _graph("clean_call")
    assert isinstance(g, nx.MultiDiGraph)
    sig = _host(t["signalling"]["server"])
    assert g.nodes[sig]["role"] == "signalling_server"
    hs = t["dtls"][0]
    peers = {_host(hs["client"]), _host(hs["server"])}
    assert {n for n, d in g.nodes(data=True) if d["role"] == "peer"} == peers
    s = cap.sessions.iloc[0]
    media = [d for _, _, d in g.edges(data=True) if d["flow_id"] == s["dtls_flow_id"]]
    assert len(media) == 1 and media[0]["session_ids"] == [int(s["session_id"])]
    assert {"dtls", "rtp", "stun"} <= set(media[0]["protocols"]) and media[0]["encrypted"] is True
    to_sig = [d for u, v, d in g.edges(data=True) if sig in (u, v)]
    assert to_sig and all(d["encrypted"] is True for d in to_sig)  # WSS / HTTPS


def test_plaintext_signalling_edges() -> None:
    t = load_truth("ws_plaintext_private")
    cap, g = _graph("ws_plaintext_private")
    s = cap.signalling
    server = set(s[s["direction"] == "request"]["dst"])
    assert len(server) == 1
    (srv,) = server
    edges = [d for u, v, d in g.edges(data=True) if srv in (u, v)]
    assert edges and all(d["encrypted"] is False and "websocket" in d["protocols"] for d in edges)
    assert {c["address"] for c in t["candidates"]} <= {n for n, d in g.nodes(data=True) if d["role"] == "peer"}
    assert all(g.nodes[n]["scope"] == "private" for n in {c["address"] for c in t["candidates"]})


def test_turn_server_and_relay_permissions() -> None:
    t = load_truth("turn_internal_peer_allowed")
    _, g = _graph("turn_internal_peer_allowed")
    srv = _host(t["turn"]["server"])
    assert g.nodes[srv]["role"] == "turn_server"
    assert any("Coturn" in s for s in g.nodes[srv]["software"])
    perms = {d["peer"] for u, v, d in g.edges(data=True) if d["kind"] == "relay_permission" and u == srv}
    assert perms == {p["peer"] for p in t["turn"]["peers"]}
    assert g.nodes[_host(t["turn"]["client"])]["role"] == "peer"


def test_relayed_call_media_edges_go_through_turn() -> None:
    t = load_truth("turn_relay_longterm")
    cap, g = _graph("turn_relay_longterm")
    srv = _host(t["turn"]["server"])
    sid = int(cap.sessions.iloc[0]["session_id"])
    carrying = [(u, v) for u, v, d in g.edges(data=True) if d["kind"] == "flow" and sid in d["session_ids"]]
    assert carrying and all(srv in (u, v) for u, v in carrying)
    assert len(carrying) == 2  # both peers' legs to the relay


def test_other_traffic_left_out_unless_asked() -> None:
    cap, g = _graph("ws_plaintext_private")
    full = graph(cap, include_other=True)
    assert full.number_of_edges() >= g.number_of_edges()
    assert all(set(d["protocols"]) - {"other"} or d["session_ids"] for _, _, d in g.edges(data=True))
