"""TURN over TLS and over TCP: turn_tls_relay.

Two coturn 4.6.1 servers (Debian's turnserver) on two hosts, two aiortc peers with iceTransportPolicy "relay":

- alice (192.0.2.10, the answerer, so the DTLS client) reaches ``turns:203.0.113.50:5349`` — TURN over TLS
  (TCP), self-signed certificate made with openssl; everything alice sends or receives, STUN/TURN control and
  media alike, travels inside that TLS connection. Its TLS keys are NOT in the keylog: the leg is opaque.
- bob (198.51.100.20, the offerer) reaches ``turn:203.0.113.60:3478?transport=tcp`` — TURN over plain TCP:
  Allocate/CreatePermission/ChannelBind and ChannelData framed on a TCP stream (RFC 6062 §… / RFC 8656 §5),
  readable on the wire; the media inside ChannelData is SRTP.
- between the two relays (203.0.113.50:49xxx <-> 203.0.113.60:49xxx) the media and the relayed ICE checks cross
  as plain UDP datagrams (SRTP, DTLS, STUN Binding).

Signalling: lab/signalling_server.py over WSS (self-signed); the keylog holds the signalling TLS keys and the
DTLS master secret (CLIENT_RANDOM), so the SRTP on the UDP and TCP legs can be decrypted, not the TURN-TLS leg.

The peers are lab/peer.py run through this module (``python -m lab.scenarios.turn_tls_relay peer ARGS``), which
adds hooks for the TURN-over-stream client of aioice (``TurnClientTcpProtocol``, used for both TCP and TLS):
the TCP/TLS connection (addresses, TLS version, cipher, server certificate), every STUN message and ChannelData
frame written to / read from the stream, and the RTP inside each ChannelData frame handed to the stream.
Truth also takes coturn's own session log (per-session user/realm, local/remote addresses, and the "usage"
lines: packets received/sent on the client leg and on the peer (relay) leg).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.netns import Host, Lab
from lab.scenarios.aiortc_calls import (
    absent,
    dedupe_keylog,
    dtls_truth,
    load,
    onlink,
    peer_argv,
    start_signalling,
    stop,
    wait_procs,
)

NAME = "turn_tls_relay"
TLS_IP = "203.0.113.50"  # coturn #1: TURN over TLS on 5349 only
TCP_IP = "203.0.113.60"  # coturn #2: TURN over TCP (and UDP) on 3478
REALM = "rtcf.example"
USER, PASSWORD = "rtcf-user", "Lab-Turn-Tls-Pw-58e1c0"


# --------------------------------------------------------------------------------------------------------------
# peer wrapper: lab/peer.py plus hooks on aioice's TURN-over-stream client


def _install_stream_hooks() -> None:
    from aioice import stun
    from aioice.turn import TurnClientMixin, TurnClientTcpProtocol, is_channel_data

    import lab.peer as P

    facts: dict[str, Any] = P.REC.setdefault(
        "turn_stream", {"connections": [], "sent": Counter(), "received": Counter()}
    )

    def kind(data: bytes) -> str:
        if len(data) >= 4 and is_channel_data(data):
            return "ChannelData"
        try:
            return P.stun_name(stun.parse_message(data))
        except ValueError:
            return "other"

    orig_made = TurnClientTcpProtocol.connection_made

    def made(self: Any, transport: Any) -> None:
        sock = transport.get_extra_info("sockname")
        peer = transport.get_extra_info("peername")
        ssl_obj = transport.get_extra_info("ssl_object")
        row: dict[str, Any] = {
            "local": P.hp(sock[0], sock[1]),
            "server": P.hp(peer[0], peer[1]),
            "tls": ssl_obj is not None,
        }
        if ssl_obj is not None:
            der = ssl_obj.getpeercert(binary_form=True)
            row.update(
                tls_version=ssl_obj.version(),
                cipher=ssl_obj.cipher()[0],
                server_cert_sha256=hashlib.sha256(der).hexdigest() if der else None,
            )
        facts["connections"].append(row)
        self._rtcf_leg = (row["local"], row["server"])
        return orig_made(self, transport)

    TurnClientTcpProtocol.connection_made = made  # type: ignore[method-assign]

    orig_send = TurnClientTcpProtocol._send

    def send(self: Any, data: bytes) -> None:
        k = kind(data)
        facts["sent"][k] += 1
        if k == "ChannelData":
            src, dst = self._rtcf_leg
            P.note_media(data[4:], src, dst)
        return orig_send(self, data)

    TurnClientTcpProtocol._send = send  # type: ignore[method-assign]

    rtp_in: Counter = facts.setdefault("rtp_received", Counter())

    def recv(self: Any, data: bytes, addr: Any) -> None:
        k = kind(data)
        facts["received"][k] += 1
        # RTP inside the ChannelData (RFC 7983: 128..191; RTCP packet types 192..223 per RFC 5761 §4)
        inner = data[4:]
        if k == "ChannelData" and len(inner) >= 12 and 128 <= inner[0] <= 191 and not 192 <= inner[1] <= 223:
            rtp_in[str(int.from_bytes(inner[8:12], "big"))] += 1
        # looked up at call time: lab/peer.py patches TurnClientMixin.datagram_received in its main()
        return TurnClientMixin.datagram_received(self, data, addr)

    TurnClientTcpProtocol.datagram_received = recv  # type: ignore[method-assign, assignment]


def run_peer(argv: list[str]) -> None:
    import asyncio

    import lab.peer as P

    _install_stream_hooks()
    sys.argv = ["lab/peer.py", *argv]
    asyncio.run(P.main())


# --------------------------------------------------------------------------------------------------------------
# coturn


def coturn_conf(w: Path, tag: str, ip: str, lines: list[str]) -> Path:
    conf = w / f"turnserver-{tag}.conf"
    base = [
        f"listening-ip={ip}",
        f"relay-ip={ip}",
        "min-port=49160",
        "max-port=49200",
        f"realm={REALM}",
        "fingerprint",
        "lt-cred-mech",
        f"user={USER}:{PASSWORD}",
        "no-dtls",
        "no-cli",
        "no-rfc5780",
        "no-stun-backward-compatibility",
        f"log-file={w / f'turn-{tag}.log'}",
        "simple-log",
        "verbose",
        f"pidfile={w / f'turn-{tag}.pid'}",
        f"userdb={w / f'turndb-{tag}'}",
    ]
    conf.write_text("\n".join(base + lines) + "\n")
    return conf


def start_coturn(host: Host, w: Path, tag: str, conf: Path, port: int) -> subprocess.Popen:
    p = host.popen(["turnserver", "-c", str(conf)], log=w / f"turn-{tag}.stdout")
    host.wait_listening(port, proto="tcp", timeout=15, proc=p)
    return p


def coturn_sessions(w: Path, tag: str) -> list[dict[str, Any]]:
    """coturn's own account of each session: user, realm, client leg addresses, and its final usage counters
    (rp/rb/sp/sb: packets/bytes received from / sent to the client; the peer usage line: the relay leg)."""
    text = "\n".join(p.read_text(errors="replace") for p in sorted(w.glob(f"turn-{tag}*.log")))
    sessions: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        m = re.search(r"session (\d+): (.*)", line)
        if not m:
            continue
        s = sessions.setdefault(m.group(1), {"session": m.group(1)})
        rest = m.group(2)
        if rest.startswith("usage:") or rest.startswith("peer usage:"):
            key = "peer_usage" if rest.startswith("peer") else "client_usage"
            s[key] = {k: int(v) for k, v in re.findall(r"\b(rp|rb|sp|sb)=(\d+)", rest)}
        elif "closed (2nd stage)" in rest:
            cm = re.search(
                r"user <([^>]*)> realm <([^>]*)> origin <[^>]*>, local ([\d.:]+), remote ([\d.:]+)", rest
            )
            if cm:
                s.update(user=cm.group(1), realm=cm.group(2), local=cm.group(3), remote=cm.group(4))
    return [s for s in sessions.values() if "user" in s or "client_usage" in s]


# --------------------------------------------------------------------------------------------------------------
# the scenario


def _peer_cmd(role: str, w: Path, **opts: Any) -> list[str]:
    argv = peer_argv(role, w / f"{role}.json", **opts)
    # peer_argv gives [python, lab/peer.py, ...]: run it through this module's wrapper instead
    return [T.PY, "-m", "lab.scenarios.turn_tls_relay", "peer", *argv[2:]]


def _rtp_tshark(cap: Path) -> Counter:
    """(ssrc, src, dst) -> RTP packets tshark reads, on UDP (between the relays) and inside ChannelData on the
    TURN-TCP stream (tshark's STUN-over-TCP dissector + rtp_stun heuristic). Every RTP header of a frame
    counts: one TCP segment may carry several ChannelData messages, RTCP among them (so no "!rtcp")."""
    rows = T.tshark_fields(
        cap,
        ["rtp.ssrc", "ip.src", "udp.srcport", "tcp.srcport", "ip.dst", "udp.dstport", "tcp.dstport"],
        display_filter="rtp && !icmp",
    )
    seen: Counter = Counter()
    for ssrcs, s, us, ts, d, ud, td in rows:
        for x in filter(None, ssrcs.split(",")):
            seen[(int(x, 16), f"{s}:{us or ts}", f"{d}:{ud or td}")] += 1
    return seen


def _tcp_payload_frames(cap: Path) -> dict[tuple[str, str], dict[str, int]]:
    """Per TCP direction (src, dst): frames and frames with payload, read by tshark."""
    rows = T.tshark_fields(
        cap,
        ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.len"],
        display_filter="tcp",
        heuristics=False,
    )
    out: dict[tuple[str, str], dict[str, int]] = {}
    for s, sp, d, dp, ln in rows:
        row = out.setdefault(
            (f"{s}:{sp}", f"{d}:{dp}"), {"frames": 0, "payload_frames": 0, "payload_bytes": 0}
        )
        row["frames"] += 1
        if ln and int(ln) > 0:
            row["payload_frames"] += 1
            row["payload_bytes"] += int(ln)
    return out


def turn_tls_relay(out: Path) -> dict[str, Any]:
    name = NAME
    w = T.workdir(name)
    cap, keylog = out / f"{name}.pcapng", out / f"{name}.keylog"
    with Lab(name) as lab:
        sig = lab.host("sig", "203.0.113.10/24")
        t_tls = lab.host("turntls", f"{TLS_IP}/24")
        t_tcp = lab.host("turntcp", f"{TCP_IP}/24")
        alice = lab.host("alice", "192.0.2.10/24")
        bob = lab.host("bob", "198.51.100.20/24")
        for h in (sig, t_tls, t_tcp):
            onlink(h, "192.0.2.0/24", "198.51.100.0/24")
        onlink(alice, "203.0.113.0/24")
        onlink(bob, "203.0.113.0/24")
        _, turn_crt = T.make_cert(w, "turntls", TLS_IP)
        cert_facts = T.openssl("x509", "-in", str(turn_crt), "-noout", "-fingerprint", "-sha256", cwd=w)
        turn_cert_sha256 = cert_facts.split("=", 1)[1].strip().replace(":", "").lower()
        conf_tls = coturn_conf(
            w,
            "tls",
            TLS_IP,
            [
                "tls-listening-port=5349",
                "no-udp",
                "no-tcp",
                f"cert={turn_crt}",
                f"pkey={w / 'turntls.key'}",
            ],
        )
        conf_tcp = coturn_conf(w, "tcp", TCP_IP, ["listening-port=3478", "no-tls"])
        common = {
            "signal": f"wss://{sig.ip}:8443",
            "cafile": str(w / "signal.crt"),
            "keylog": str(keylog),
            "media": "audio",
            "relay_only": True,
            "duration": 2,
            "timeout": 30,
        }
        # alice (TURN-TLS) closes first, bob 2.5 s later: every packet alice sent still reaches bob through
        # bob's TURN-TCP stream, and bob's packets cross both readable legs whatever alice does
        alice_linger, bob_linger = 0.5, 3.0
        alice_opts = {
            **common,
            "linger": alice_linger,
            "ice_servers": json.dumps(
                [{"urls": f"turns:{TLS_IP}:5349?transport=tcp", "username": USER, "credential": PASSWORD}]
            ),
        }
        bob_opts = {
            **common,
            "linger": bob_linger,
            "ice_servers": json.dumps(
                [{"urls": f"turn:{TCP_IP}:3478?transport=tcp", "username": USER, "credential": PASSWORD}]
            ),
        }
        # aioice opens the TLS connection with asyncio's default context: trust coturn's self-signed
        # certificate through OpenSSL's SSL_CERT_FILE (no SSLKEYLOGFILE: the TURN-TLS keys stay unknown)
        env = {"SSL_CERT_FILE": str(turn_crt), "PYTHONPATH": str(T.ROOT)}
        with lab.capture(cap):
            running = [
                start_coturn(t_tls, w, "tls", conf_tls, 5349),
                start_coturn(t_tcp, w, "tcp", conf_tcp, 3478),
                start_signalling(sig, w, tls=True),
            ]
            try:
                pa = alice.popen(
                    _peer_cmd("answer", w, **alice_opts), log=w / "answer.log", env=env, cwd=str(T.ROOT)
                )
                time.sleep(0.5)
                pb = bob.popen(
                    _peer_cmd("offer", w, **bob_opts), log=w / "offer.log", env=env, cwd=str(T.ROOT)
                )
                wait_procs([pa, pb], timeout=120)
                time.sleep(1.0)  # coturn closes the sessions and logs its usage counters
            finally:
                for p in reversed(running):
                    stop(p)
    dedupe_keylog(keylog)
    cap.chmod(0o644)
    bob_r, alice_r = load(w / "offer.json"), load(w / "answer.json")
    if not (bob_r.get("connected") and alice_r.get("connected")):
        raise RuntimeError(f"{name} did not connect: {bob_r.get('error')} {alice_r.get('error')}")
    return build_truth(cap, keylog, w, alice_r, bob_r, turn_cert_sha256, sig.ip)


def build_truth(
    cap: Path, keylog: Path, w: Path, alice: dict, bob: dict, turn_cert_sha256: str, sig_ip: str
) -> dict[str, Any]:
    conn_a = alice["turn_stream"]["connections"]
    conn_b = bob["turn_stream"]["connections"]
    if len(conn_a) != 1 or len(conn_b) != 1:
        raise RuntimeError(f"expected one TURN connection per peer: {conn_a} {conn_b}")
    ca, cb = conn_a[0], conn_b[0]
    if not ca["tls"] or cb["tls"]:
        raise RuntimeError(f"alice must use TLS, bob plain TCP: {ca} {cb}")
    if ca["server_cert_sha256"] != turn_cert_sha256:
        raise RuntimeError("alice's TLS peer certificate is not coturn's")
    sw = sorted({x for r in (alice, bob) for x in r.get("turn_software", [])})
    if sw != ["Coturn-4.6.1 'Gorst'"]:
        raise RuntimeError(f"unexpected TURN SOFTWARE: {sw}")
    pair_a = next(d["pair"] for d in alice["dtls"])
    pair_b = next(d["pair"] for d in bob["dtls"])
    relay_a, relay_b = pair_a["local"], pair_b["local"]
    if pair_a["remote"] != relay_b or pair_b["remote"] != relay_a:
        raise RuntimeError(f"selected pairs are not relay<->relay: {pair_a} {pair_b}")
    for pair in (pair_a, pair_b):
        if pair["local_type"] != "relay" or pair["remote_type"] != "relay":
            raise RuntimeError(f"non-relay pair: {pair}")

    # RTP: what each stack handed to its TURN stream (inside ChannelData), and where it shows on the wire
    seen = _rtp_tshark(cap)
    rtp = []
    tcp_leg = {"alice": (TCP_IP + ":3478", cb["local"]), "bob": (cb["local"], TCP_IP + ":3478")}
    for who, res, (src_relay, dst_relay) in (
        ("alice", alice, (relay_a, relay_b)),
        ("bob", bob, (relay_b, relay_a)),
    ):
        kinds = {s["ssrc"]: s["kind"] for s in res.get("senders", [])}
        for ssrc, r in sorted(res["rtp_sent"].items()):
            stats = [
                s
                for s in res.get("stats", [])
                if s.get("type") == "outbound-rtp" and s.get("ssrc") == int(ssrc)
            ]
            for a, b in ((src_relay, dst_relay), tcp_leg[who]):
                if seen.get((int(ssrc), a, b), 0) != r["packets"]:
                    raise RuntimeError(
                        f"{who} SSRC {ssrc}: handed {r['packets']} RTP to its TURN stream, tshark sees "
                        f"{seen.get((int(ssrc), a, b), 0)} on {a} -> {b}"
                    )
            rtp.append(
                {
                    "ssrc": int(ssrc),
                    "packets": r["packets"],
                    "pt": r["pt"],
                    "kind": kinds.get(int(ssrc)),
                    # the leg tshark can read: relay -> relay, UDP (the stack's own leg is TURN-TLS/TCP)
                    "src": src_relay,
                    "dst": dst_relay,
                    # the copy inside ChannelData on bob's TURN-TCP stream (tshark_decode_as hides it from
                    # the generic per-frame count, see notes); the copy on alice's TURN-TLS leg is not readable
                    "tcp_leg": {"src": tcp_leg[who][0], "dst": tcp_leg[who][1], "packets": r["packets"]},
                    "received_by_other_stack": (bob if who == "alice" else alice)["turn_stream"][
                        "rtp_received"
                    ].get(ssrc, 0),
                    "sender": who,
                    "stack_leg": {
                        "src": r["src"],
                        "dst": r["dst"],
                        "transport": "tls" if who == "alice" else "tcp",
                    },
                    **({"getstats_packets_sent": stats[0].get("packetsSent")} if stats else {}),
                }
            )
    for r in rtp:
        # bob stays 2.5 s longer: he reads all of alice's packets (alice may close before bob's last arrive)
        if r["sender"] == "alice" and r["received_by_other_stack"] != r["packets"]:
            raise RuntimeError(f"SSRC {r['ssrc']}: sent {r['packets']}, the other stack read {r}")
    other = sum(v for (s, _a, _b), v in seen.items() if s not in {r["ssrc"] for r in rtp})
    if other or sum(seen.values()) != 2 * sum(r["packets"] for r in rtp):
        raise RuntimeError(f"tshark reads RTP elsewhere than the UDP and TCP legs: {seen}")

    # DTLS: the handshake between the two aiortc peers, seen on the wire between the relays
    dtls = dtls_truth(bob, alice)
    for d in dtls:
        client_relay = relay_a if d["client"] == ca["local"] else relay_b
        server_relay = relay_b if client_relay == relay_a else relay_a
        d["stack_client"], d["stack_server"] = d["client"], d["server"]
        d["client"], d["server"] = client_relay, server_relay
    # top-level STUN on the wire: the ICE checks between the relays, plus bob's TURN-TCP control messages (readable
    # TCP; ChannelData is not STUN). alice's TURN-TLS leg carries hers inside TLS: not on the wire as STUN.
    tcp_leg = bob["turn_stream"]
    stun = T.add_counts(
        alice["stun_sent_relayed"],
        bob["stun_sent_relayed"],
        {k: v for k, v in tcp_leg["sent"].items() if k != "ChannelData"},
        {k: v for k, v in tcp_leg["received"].items() if k != "ChannelData"},
    )

    tcp = _tcp_payload_frames(cap)
    sessions = {"tls": coturn_sessions(w, "tls"), "tcp": coturn_sessions(w, "tcp")}

    def leg(conn: dict, res: dict, transport: str, tag: str) -> dict[str, Any]:
        up = tcp.get((conn["local"], conn["server"]), {})
        down = tcp.get((conn["server"], conn["local"]), {})
        ses = [s for s in sessions[tag] if s.get("remote") == conn["local"]]
        row: dict[str, Any] = {
            "client": conn["local"],
            "server": conn["server"],
            "transport": transport,
            "stack_messages_sent": dict(sorted(res["turn_stream"]["sent"].items())),
            "stack_messages_received": dict(sorted(res["turn_stream"]["received"].items())),
            "tcp_payload_frames": {
                "client_to_server": up.get("payload_frames", 0),
                "server_to_client": down.get("payload_frames", 0),
            },
            "coturn_session": ses[0] if ses else None,
            "readable_without_keys": transport == "tcp",
        }
        if conn["tls"]:
            row.update(
                tls_version=conn["tls_version"],
                tls_cipher=conn["cipher"],
                server_cert_sha256=conn["server_cert_sha256"],
            )
        return row

    legs = [
        leg(ca, alice, "tls", "tls"),
        leg(cb, bob, "tcp", "tcp"),
        {
            "client": relay_a,
            "server": relay_b,
            "transport": "udp",
            "role": "relay<->relay",
            "rtp_packets": {f"{r['src']}->{r['dst']}": r["packets"] for r in rtp},
            "readable_without_keys": True,
        },
    ]
    # coturn's relay-side counters agree with what the stacks wrote/read as ChannelData on their streams (give or
    # take the last few packets in flight when the first peer closes)
    for lg in legs[:2]:
        ses = lg["coturn_session"]
        if ses is None or "peer_usage" not in ses:
            raise RuntimeError(f"coturn logged no session usage for {lg['client']}")
        sp, rp = ses["peer_usage"]["sp"], ses["peer_usage"]["rp"]
        sent, got = lg["stack_messages_sent"]["ChannelData"], lg["stack_messages_received"]["ChannelData"]
        if abs(sp - sent) > 3 or abs(rp - got) > 3:
            raise RuntimeError(
                f"coturn peer usage {ses['peer_usage']} far from ChannelData of {lg['client']}"
            )
    return {
        "description": "aiortc audio call relay-only through two coturns: alice over TURN-TLS "
        f"(turns:{TLS_IP}:5349, self-signed cert, TLS keys NOT in keylog: media and TURN control opaque), "
        f"bob over TURN-TCP (turn:{TCP_IP}:3478?transport=tcp: STUN/ChannelData readable on the stream), "
        "SRTP/DTLS/ICE as UDP between the two relays; WSS signalling; signalling TLS keys and DTLS master "
        "secret in keylog",
        "keylog": keylog.name,
        "stacks": {"coturn": T.coturn_version()},
        "findings": [
            {
                "slug": "software-disclosure",
                "endpoints": [f"{TCP_IP}:3478"],
                "software": "Coturn-4.6.1 'Gorst'",
            },
        ],
        "absent_findings": [s for s in absent() if s not in ("outdated-component",)],
        "sdp": [
            T.sdp_facts(bob["local_sdp"], "offer", "websocket", True),
            T.sdp_facts(alice["local_sdp"], "answer", "websocket", True),
        ],
        "dtls": dtls,
        "rtp": rtp,
        "stun": stun,
        "candidates": [
            {**c, "side": side}
            for side, res in (("offer", bob), ("answer", alice))
            for c in T.candidates_from_sdp(res.get("local_sdp_full") or res["local_sdp"])
        ],
        "turn_legs": legs,
        "turn_credentials": {"username": USER, "realm": REALM, "auth": "long-term"},
        "turn_servers": {
            "tls": {"server": f"{TLS_IP}:5349", "transport": "tls", "cert_sha256": turn_cert_sha256},
            "tcp": {"server": f"{TCP_IP}:3478", "transport": "tcp", "software": "Coturn-4.6.1 'Gorst'"},
        },
        "signalling": {"server": f"{sig_ip}:8443", "tls": True},
        "coverage": {
            "opaque": [
                {"leg": f"{ca['local']} <-> {ca['server']}", "why": "TURN over TLS, no keys in keylog"}
            ],
            "readable": [
                f"{cb['local']} <-> {cb['server']} (TURN over TCP)",
                f"{relay_a} <-> {relay_b} (UDP)",
            ],
        },
        "secrets": {"turn_password": PASSWORD},
        "tshark_decode_as": ["tcp.port==3478,data"],
        "notes": "RTP rows count what each aiortc handed (inside ChannelData) to its TURN stream; src/dst is the "
        "UDP leg between the relays, where tshark reads each packet once. Each packet also crosses bob's "
        "TURN-TCP stream inside ChannelData (tcp_leg; bob's aioice read every one of alice's, "
        "received_by_other_stack), where one TCP segment can carry several ChannelData messages (RTP and RTCP "
        "together): tshark_decode_as ('tcp.port==3478,data') keeps the generic one-row-per-frame RTP count to "
        "the UDP leg; tests/test_truth_turn_tls.py counts the TCP leg per RTP header. The copy on alice's "
        "TURN-TLS leg is not readable. STUN counts: the ICE checks both peers sent through their relays, which "
        "cross the relay<->relay leg as top-level UDP STUN; the TURN control messages travel on the TCP/TLS "
        "streams (turn_legs[].stack_messages_*). coturn's usage counters: client_usage rp/sp are its "
        "reads/writes on the stream (not TCP segments), peer_usage sp/rp match the ChannelData frames the "
        "client sent/received, give or take the last packets in flight at teardown (checked at generation: "
        "within 3).",
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["peer"]:
        run_peer(argv[1:])
    else:
        raise SystemExit("usage: python -m lab.scenarios.turn_tls_relay peer PEER-ARGS")


SCENARIOS = {NAME: turn_tls_relay}

if __name__ == "__main__":
    main(sys.argv[1:])
