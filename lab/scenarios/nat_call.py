"""nat_call: two aiortc peers, each on a private LAN behind its own NAT router, calling peer-to-peer.

alice (10.0.1.10) sits behind natA (public 203.0.113.77), bob (192.168.7.20) behind natB (public
198.51.100.88); both routers masquerade (iptables MASQUERADE) and drop unsolicited UDP, as home routers do.
On the public segment: a STUN server (coturn, ``stun-only``) and lab/signalling_server.py (plain WebSocket).
ICE gathers host (private) and server-reflexive (the NAT's public mapping) candidates; the checks punch
through both NATs and media flows on the srflx pair. The tap is the public segment only: the IP headers show
the NATs' public addresses, the clear signalling shows the private host candidates (and the srflx
candidates' raddr) — which is what makes ``ice-private-ip-exposed`` worth reporting.

Truth: the peers' own stacks (SDP as sent, STUN per destination and the XOR-MAPPED-ADDRESS they received,
RTP per SSRC, DTLS), and the routers' conntrack tables (the NAT mappings actually used), read after the call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.netns import Host, Lab
from lab.scenarios.aiortc_calls import (
    absent,
    call_truth,
    cross_check_rtp,
    dedupe_keylog,
    onlink,
    start_signalling,
    two_peers,
)
from lab.scenarios.turn_coturn import TURN_IP, coturn_conf, start_coturn

NAME = "nat_call"
# (peer name, private address, LAN prefix length, router name, router's LAN address, router's public address)
SITES = (
    ("alice", "10.0.1.10", 24, "natA", "10.0.1.1", "203.0.113.77"),
    ("bob", "192.168.7.20", 24, "natB", "192.168.7.1", "198.51.100.88"),
)
STUN_IP = TURN_IP  # coturn_conf listens there; here it only answers Binding requests


def conntrack(router: Host) -> list[dict[str, Any]]:
    """The router's UDP NAT mappings: inside (the LAN host's address:port), outside (the router's public
    address:port the remote side sees), remote (where it was sent), from /proc/net/nf_conntrack."""
    text = router.run("cat", "/proc/net/nf_conntrack").stdout
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if "udp" not in parts:
            continue
        kv = [p.split("=", 1) for p in parts if "=" in p]
        src = [v for k, v in kv if k == "src"]
        dst = [v for k, v in kv if k == "dst"]
        sport = [v for k, v in kv if k == "sport"]
        dport = [v for k, v in kv if k == "dport"]
        if len(src) < 2 or T.scope(src[0]) != "private":
            continue  # not a mapping of the LAN (e.g. an unsolicited packet toward the router itself)
        rows.append(
            {
                "inside": f"{src[0]}:{sport[0]}",
                "outside": f"{dst[1]}:{dport[1]}",
                "remote": f"{dst[0]}:{dport[0]}",
                "assured": "[ASSURED]" in parts,
            }
        )
    return sorted(rows, key=lambda r: (r["inside"], r["remote"]))


def on_the_wire(ep: str, remote: str, mappings: list[dict[str, Any]]) -> str:
    """The public address:port that ``ep`` (a LAN host's address:port, talking to ``remote``) has on the tap."""
    if T.scope(ep.rsplit(":", 1)[0]) != "private":
        return ep
    hit = [m["outside"] for m in mappings if m["inside"] == ep and m["remote"] == remote]
    if len(hit) != 1:
        raise RuntimeError(f"no single NAT mapping for {ep} -> {remote}: {hit}")
    return hit[0]


def wire_stun(peer: dict[str, Any], stun_ip: str) -> dict[str, int]:
    """STUN this peer put on the public segment: what it sent to public addresses (its checks toward the
    other side's private host candidate die at its own router) and what the STUN server answered it."""
    sent = [c for ip, c in peer["stun_sent_to"].items() if T.scope(ip) == "public"]
    return T.add_counts(*sent, peer["stun_recv_from"].get(stun_ip, {}))


def nat_call(out: Path) -> dict[str, Any]:
    w = T.workdir(NAME)
    cap, keylog = out / f"{NAME}.pcapng", out / f"{NAME}.keylog"
    with Lab(NAME) as lab:
        sig = lab.host("sig", "203.0.113.10/24")
        stun_host = lab.host("stun", f"{STUN_IP}/24")
        onlink(sig, "198.51.100.0/24")
        onlink(stun_host, "198.51.100.0/24")
        peers: dict[str, Host] = {}
        routers: dict[str, Host] = {}
        for peer, priv, plen, rname, lan_ip, pub in SITES:
            r = lab.host(rname, f"{pub}/24")
            onlink(r, "198.51.100.0/24" if pub.startswith("203.") else "203.0.113.0/24")
            lab.router(r)
            routers[peer] = r
            peers[peer] = lab.lan_host(peer, f"{priv}/{plen}", r, f"{lan_ip}/{plen}")
        conf = coturn_conf(w, "stun-only", "no-auth")
        base = {
            "signal": f"ws://{sig.ip}:8080",
            "ice_servers": json.dumps([{"urls": f"stun:{STUN_IP}:3478"}]),
            "keylog": str(keylog),
            "media": "audio",
            "duration": 2,
        }
        servers = [lambda: start_coturn(stun_host, w, conf), lambda: start_signalling(sig, w, tls=False)]
        offer, answer = two_peers(lab, w, cap, peers["alice"], peers["bob"], base, base, servers=servers)
        nat = {peer: conntrack(routers[peer]) for peer in peers}
    dedupe_keylog(keylog)
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError(f"{NAME} did not connect")
    core = call_truth(offer, answer, transport="websocket", tls=False)
    mappings = nat["alice"] + nat["bob"]
    for r in core["rtp"]:
        r["lan_src"] = r["src"]
        r["src"] = on_the_wire(r["src"], r["dst"], mappings)
    for d in core["dtls"]:
        d["lan_client"], d["lan_server"] = d["client"], d["server"]
        d["client"] = on_the_wire(d["client"], d["server"], mappings)
        d["server"] = on_the_wire(d["server"], d["client"], mappings)
    core["stun"] = T.add_counts(wire_stun(offer, STUN_IP), wire_stun(answer, STUN_IP))
    cross_check_rtp(cap, core["rtp"])

    hosts: list[dict[str, Any]] = []
    for (peer, priv, _, rname, _, pub), res in zip(SITES, (offer, answer), strict=True):
        cands = [c for c in core["candidates"] if c["side"] == ("offer" if peer == "alice" else "answer")]
        srflx = [c for c in cands if c["type"] == "srflx"]
        if not srflx or any(c["address"] != pub for c in srflx):
            raise RuntimeError(f"{peer}: srflx candidates {srflx} are not its NAT's address {pub}")
        if not any(c["type"] == "host" and c["address"] == priv for c in cands):
            raise RuntimeError(f"{peer}: no host candidate {priv}")
        stun_seen = [m for m in res["xor_mapped"] if m["from"].startswith(f"{STUN_IP}:")]
        hosts.append(
            {
                "name": peer,
                "role": res["role"],
                "private_address": priv,
                "nat": rname,
                "nat_public_address": pub,
                "stun_mapped": stun_seen,
                "nat_mappings": nat[peer],
            }
        )
    media_pairs = sorted({(r["src"], r["dst"]) for r in core["rtp"]})
    for src, dst in media_pairs:
        if {src.rsplit(":", 1)[0], dst.rsplit(":", 1)[0]} != {h["nat_public_address"] for h in hosts}:
            raise RuntimeError(f"media not peer-to-peer between the NATs: {src} -> {dst}")
    private = sorted({h["private_address"] for h in hosts})
    pairs = offer["dtls"] + answer["dtls"]
    return {
        "description": "aiortc audio call between two peers on private LANs (10.0.1.0/24, 192.168.7.0/24), "
        "each behind its own NAT router (iptables MASQUERADE) with public 203.0.113.77 / 198.51.100.88; "
        "STUN from coturn (stun-only), plain WebSocket signalling on the public segment; media "
        "peer-to-peer on the srflx pair; tap on the public segment only (IP headers show the NATs, the "
        "signalling shows the private host candidates); DTLS keys in keylog",
        "keylog": keylog.name,
        "findings": [
            {"slug": "signalling-plaintext", "endpoints": [f"{sig.ip}:8080"]},
            {
                # each private address was revealed by the peer behind the NAT, which the wire knows only
                # as its NAT's public address (the source of its signalling connection)
                "slug": "ice-private-ip-exposed",
                "endpoints": private,
                "hosts": [
                    {
                        "private_address": h["private_address"],
                        "revealed_by": h["name"],
                        "seen_on_wire_as": h["nat_public_address"],
                    }
                    for h in hosts
                ],
            },
        ],
        "absent_findings": absent("signalling-plaintext", "ice-private-ip-exposed"),
        **core,
        "nat": {
            "hosts": hosts,
            "media_pairs": [list(p) for p in media_pairs],
            # aioice pairs its host candidate (the srflx one's base) with the other side's srflx candidate
            "selected_pair_types": sorted(
                {f"{hs['pair']['local_type']}/{hs['pair']['remote_type']}" for hs in pairs if hs.get("pair")}
            ),
            "router": "Linux netfilter (iptables-nft MASQUERADE, INPUT drops unsolicited UDP)",
        },
        "stun_server": f"{STUN_IP}:3478",
        "signalling": {"server": f"{sig.ip}:8080", "tls": False},
        "stacks": {"coturn": T.coturn_version()},
    }


SCENARIOS = {NAME: nat_call}
