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
    assert {c["address"] for c in t["candidates"]} <= {
        n for n, d in g.nodes(data=True) if d["role"] == "peer"
    }
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


def test_gateway_intermediaries_and_the_software_each_really_runs() -> None:
    # issue 14 item 1: nginx and Kamailio relay the Server headers of Kamailio and baresip; each host's software
    # is what it wrote, and the hosts that forward another leg's SIP requests are signalling proxies
    t = load_truth("sip_gateway")
    p = sample_path("sip_gateway")
    g = graph(rtcforensics.load(p, keylog=p.with_suffix(".keylog")))
    h = t["hosts"]
    front, back = sorted(h["proxy"]["address"], key=lambda a: not a.startswith("203."))
    assert g.nodes[front]["software"] == [f"nginx/{h['proxy']['version']}"]
    assert [s for s in g.nodes[h["sip"]["address"]]["software"]] == [
        x["evidence"]["server"] for x in t["findings"] if x["endpoints"] == [h["sip"]["address"]]
    ]
    assert any(h["pbx"]["version"] in s for s in g.nodes[h["pbx"]["address"]]["software"])
    assert (
        g.nodes[back]["role"] == "signalling_proxy"
        and "signalling_proxy" in g.nodes[h["sip"]["address"]]["roles"]
    )


def test_sfu_is_the_media_server_every_participant_talks_to() -> None:
    # Janus (sfu_conference): every participant's PeerConnections end at it; the media is hop by hop
    t = load_truth("sfu_conference")
    cap, g = _graph("sfu_conference")
    sfu = t["sfu"]
    assert t["media_protection"]["sfu_reads_media"] and not t["media_protection"]["end_to_end"]
    assert g.nodes[sfu]["role"] == "media_server" and g.nodes[sfu]["sfu"] is True
    participants = {p["address"] for p in t["participants"].values()}
    for p in participants:
        assert g.nodes[p]["role"] == "peer" and g.nodes[p]["sfu"] is False
    s = cap.sessions
    paired = s[s.selected_pair.notna()]
    # every session with a selected pair ends at the SFU, and says so: its media is readable there
    assert len(paired) >= 9 and set(paired.media_server) == {sfu}
    ends = {_host(e) for pair in paired.selected_pair for e in pair.split(" <-> ")}
    assert ends == participants | {sfu}


def test_peer_to_peer_calls_have_no_media_server() -> None:
    cap, g = _graph("browsers_chromium")
    assert cap.sessions.media_server.isna().all()
    assert not any(d["sfu"] for _, d in g.nodes(data=True))


def test_unread_turn_over_tls_leg_is_a_relay_and_its_client_a_peer() -> None:
    # turn_tls_relay: alice (192.0.2.10) reaches coturn 203.0.113.50:5349 over TLS whose keys are not in the
    # keylog; the opaque leg is neither signalling nor a reason to drop alice
    t = load_truth("turn_tls_relay")
    _, g = _graph("turn_tls_relay")
    opaque = t["coverage"]["opaque"][0]["leg"]
    client, server = (_host(e) for e in opaque.split(" <-> "))
    assert (client, server) == ("192.0.2.10", "203.0.113.50")
    assert g.nodes[server]["role"] == "turn_server" and "signalling_server" not in g.nodes[server]["roles"]
    assert g.nodes[client]["role"] == "peer"
    tcp = _host(t["turn_servers"]["tcp"]["server"])
    tcp_edges = [d for a, b, d in g.edges(data=True) if tcp in (a, b) and d.get("dport") == 3478]
    assert tcp_edges and all(d["via_turn"] for d in tcp_edges)
