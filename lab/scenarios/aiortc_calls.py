"""aiortc calls: clean_call, datachannel_only, ws_plaintext_private, fingerprint_rewrite, ipv6_eui64.

Two aiortc peers (lab/peer.py) in their own namespaces, signalling through lab/signalling_server.py (or one
HTTP POST), tapped on the bridge. Truth comes from what the peers' stacks recorded in-process.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.netns import Host, Lab

PEER = str(T.LAB / "peer.py")
SIGNAL = str(T.LAB / "signalling_server.py")

ALL_SLUGS = [
    "signalling-plaintext",
    "signalling-weak-tls",
    "signalling-secret-exposed",
    "sdes-key-exposed",
    "sdp-plain-rtp-offered",
    "dtls-fingerprint-mismatch",
    "fingerprint-weak-hash",
    "dtls-weak-version",
    "dtls-handshake-failed",
    "dtls-cert-weak",
    "srtp-null-cipher",
    "srtp-weak-profile",
    "rtp-unencrypted",
    "ice-private-ip-exposed",
    "ice-ipv6-eui64",
    "stun-no-integrity",
    "turn-open-relay",
    "turn-internal-peer",
    "turn-credential-lifetime",
    "outdated-component",
    "unsolicited-media",
]
# never asserted either way for aiortc calls: aiortc offers (not chooses) CBC/SHA-1 suites -> info only;
# it cannot make mDNS candidates; software strings sit in (decryptable) HTTP headers.
UNDECIDED = {"dtls-weak-cipher", "ice-no-mdns", "software-disclosure"}


def absent(*present: str) -> list[str]:
    return [s for s in ALL_SLUGS if s not in present]


def onlink(h: Host, *nets: str) -> None:
    """Other documentation / private nets are on the same bridge: reach them on-link."""
    for n in nets:
        fam = "-6" if ":" in n else "-4"
        h.run("ip", fam, "route", "add", n, "dev", "eth0")


def wait_file(p: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not p.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {p}")
        time.sleep(0.1)


def wait_procs(procs: list[subprocess.Popen], timeout: float = 90) -> None:
    """Wait for every process; if one fails, give the others a short grace and stop them."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes did not finish in {timeout}s")
        if any(p.poll() not in (None, 0) for p in procs):
            grace = time.monotonic() + 5
            while any(p.poll() is None for p in procs) and time.monotonic() < grace:
                time.sleep(0.2)
            for p in procs:
                stop(p)
            break
        time.sleep(0.2)
    bad = [
        p.args[p.args.index("--role") + 1] if "--role" in p.args else str(p.args)
        for p in procs
        if p.returncode != 0
    ]
    if bad:
        raise RuntimeError(f"process(es) failed: {bad}")


def stop(p: subprocess.Popen) -> None:
    import os
    import signal

    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def peer_argv(role: str, out: Path, **opts: Any) -> list[str]:
    argv = [T.PY, PEER, "--role", role, "--out", str(out)]
    for k, v in opts.items():
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        argv += [flag] if v is True else [flag, str(v)]
    return argv


def load(p: Path) -> dict[str, Any]:
    if not p.exists():
        raise RuntimeError(f"peer wrote no result {p}")
    return json.loads(p.read_text())


def dedupe_keylog(path: Path) -> None:
    if path.exists():
        lines = list(dict.fromkeys(line for line in path.read_text().splitlines() if line.strip()))
        path.write_text("\n".join(lines) + "\n")


def dtls_truth(offer: dict, answer: dict) -> list[dict[str, Any]]:
    """One row per DTLS handshake, from both ends' OpenSSL connections (they must agree)."""
    rows = []
    for a, b in ((offer, answer), (answer, offer)):
        for hs in a["dtls"]:
            if hs.get("role") != "client" or not hs.get("client_random"):
                continue
            srv = next((h for h in b["dtls"] if h.get("client_random") == hs["client_random"]), None)
            pair = hs.get("pair", {})
            row = {
                "client": pair.get("turn_socket") or pair.get("local"),
                "server": pair.get("turn_server") or pair.get("remote"),
                "client_random": hs["client_random"],
                "version": T.DTLS_VERSION.get(hs["version"], hs["version"]),
                "cipher_suite": T.openssl_iana_names().get(hs["cipher_openssl"], hs["cipher_openssl"]),
                "srtp_profile": T.SRTP_IANA.get(hs["srtp_profile_openssl"] or "", hs["srtp_profile_openssl"]),
                "client_cert_sha256": hs["local_cert_sha256"],
                "server_cert_sha256": hs["peer_cert_sha256"],
                "encrypted_handshake": hs["version"] == "DTLSv1.3",
                "completed": hs["state"] == "connected" and (srv or {}).get("state") == "connected",
                "client_state": hs["state"],
                "server_state": (srv or {}).get("state"),
                "via_turn": "turn_socket" in pair,
            }
            if srv is not None and srv.get("local_cert_sha256") != hs["peer_cert_sha256"]:
                raise RuntimeError("DTLS peers disagree on the server certificate")
            rows.append(row)
    return rows


def rtp_truth(*peers: dict, wire_copies: int = 1) -> list[dict[str, Any]]:
    rows = []
    for p in peers:
        kinds = {s["ssrc"]: s["kind"] for s in p.get("senders", [])}
        for ssrc, r in sorted(p["rtp_sent"].items()):
            row = {
                "ssrc": int(ssrc),
                "packets": r["packets"],
                "pt": r["pt"],
                "kind": kinds.get(int(ssrc)),
                "src": r["src"],
                "dst": r["dst"],
            }
            if wire_copies != 1:
                row["wire_copies"] = wire_copies
            stats = [
                s
                for s in p.get("stats", [])
                if s.get("type") == "outbound-rtp" and s.get("ssrc") == int(ssrc)
            ]
            if stats:
                row["getstats_packets_sent"] = stats[0].get("packetsSent")
            rows.append(row)
    return rows


def stun_truth(*peers: dict) -> dict[str, int]:
    """Top-level STUN messages on the wire: what each aioice sent directly or to its TURN server, plus what
    the TURN server sent back (STUN carried inside ChannelData is not top-level)."""
    return T.add_counts(
        *[p[k] for p in peers for k in ("stun_sent_direct", "stun_sent_turn", "stun_recv_turn")]
    )


def candidates_truth(*pairs: tuple[str, dict]) -> list[dict[str, Any]]:
    rows = []
    for side, p in pairs:
        sdp = p.get("local_sdp_full") or p.get("local_sdp") or ""
        for c in T.candidates_from_sdp(sdp):
            rows.append({**c, "side": side})
    return T.dedupe(rows)


def tshark_rtp_counts(cap: Path) -> Counter:
    rows = T.tshark_fields(cap, ["rtp.ssrc"], display_filter="rtp && !rtcp && !icmp && !icmpv6")
    c: Counter = Counter()
    for (ssrcs,) in rows:
        for s in ssrcs.split(","):
            if s:
                c[int(s, 16)] += 1
    return c


def cross_check_rtp(cap: Path, rtp: list[dict]) -> None:
    seen = tshark_rtp_counts(cap)
    for r in rtp:
        want = r["packets"] * r.get("wire_copies", 1)
        if seen.get(r["ssrc"], 0) != want:
            raise RuntimeError(
                f"tshark sees {seen.get(r['ssrc'], 0)} RTP packets with SSRC {r['ssrc']}, "
                f"aiortc sent {r['packets']} (x{r.get('wire_copies', 1)})"
            )


def call_truth(
    offer: dict,
    answer: dict,
    *,
    transport: str,
    tls: bool,
    received_answer: bool = False,
    wire_copies: int = 1,
) -> dict[str, Any]:
    sdps = [
        T.sdp_facts(offer["local_sdp"], "offer", transport, tls),
        T.sdp_facts(answer["local_sdp"], "answer", transport, tls),
    ]
    if received_answer and offer.get("remote_sdp") and offer["remote_sdp"] != answer["local_sdp"]:
        sdps[1]["leg"] = "answerer->relay"
        rec = T.sdp_facts(offer["remote_sdp"], "answer", transport, tls)
        rec["leg"] = "relay->offerer"
        sdps.append(rec)
    for p, facts in ((offer, sdps[0]), (answer, sdps[1])):
        for hs in p["dtls"]:
            if hs.get("local_cert_sha256") and facts["fingerprint"].get("sha-256") != hs["local_cert_sha256"]:
                raise RuntimeError(f"{p['role']}: SDP fingerprint as sent != its DTLS certificate")
    return {
        "sdp": sdps,
        "dtls": dtls_truth(offer, answer),
        "rtp": rtp_truth(offer, answer, wire_copies=wire_copies),
        "stun": stun_truth(offer, answer),
        "candidates": candidates_truth(("offer", offer), ("answer", answer)),
    }


def two_peers(
    lab: Lab,
    w: Path,
    cap: Path,
    offer_host: Host,
    answer_host: Host,
    offer_opts: dict,
    answer_opts: dict,
    servers: Sequence[Callable[[], subprocess.Popen]] = (),
) -> tuple[dict, dict]:
    """Run an answerer and an offerer peer under the tap; ``servers`` (signalling, TURN) are started in order
    inside the capture before the peers and stopped in reverse order once both peers are done."""
    with lab.capture(cap):
        running: list[subprocess.Popen] = []
        try:
            for start in servers:
                running.append(start())
            pb = answer_host.popen(
                peer_argv("answer", w / "answer.json", **answer_opts), log=w / "answer.log"
            )
            if answer_opts.get("ready"):
                wait_file(Path(answer_opts["ready"]))
            else:
                time.sleep(0.5)
            pa = offer_host.popen(peer_argv("offer", w / "offer.json", **offer_opts), log=w / "offer.log")
            wait_procs([pa, pb])
        finally:
            for proc in reversed(running):
                stop(proc)
    return load(w / "offer.json"), load(w / "answer.json")


def start_signalling(
    host: Host, w: Path, *, tls: bool, extra: Sequence[str] = (), address: str | None = None
) -> subprocess.Popen:
    """lab/signalling_server.py on ``host`` (``address``: default its IPv4), plain WS on 8080 or HTTPS/WSS on
    8443 with a certificate made for it; returns once it listens."""
    argv = [
        T.PY,
        SIGNAL,
        "--host",
        address or host.ip,
        "--port",
        "8443" if tls else "8080",
        "--ready",
        str(w / "sig.ready"),
    ]
    if tls:
        key, crt = T.make_cert(w, "signal", address or host.ip)
        argv += ["--cert", str(crt), "--key", str(key)]
    p = host.popen(argv + list(extra), log=w / "sig.log")
    wait_file(w / "sig.ready")
    return p


# --------------------------------------------------------------------------------------------- scenarios


def three_hosts(lab: Lab, server: tuple[str, str] = ("sig", "203.0.113.10")) -> tuple[Host, Host, Host]:
    """A signalling server (``server``: host name and address in 203.0.113.0/24) and two peers, alice
    (192.0.2.10) and bob (198.51.100.20), each on its own documentation subnet standing for the Internet, all
    three routed on-link to each other."""
    sig = lab.host(server[0], f"{server[1]}/24")
    alice = lab.host("alice", "192.0.2.10/24")
    bob = lab.host("bob", "198.51.100.20/24")
    onlink(sig, "192.0.2.0/24", "198.51.100.0/24")
    onlink(alice, "203.0.113.0/24", "198.51.100.0/24")
    onlink(bob, "203.0.113.0/24", "192.0.2.0/24")
    return sig, alice, bob


def http_offer_options(bob: Host, w: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Peer options for signalling by one plain HTTP POST: the offerer posts its offer to bob's listener on
    :8080 and gets the answer back (the offerer's options, the answerer's)."""
    return {"http_offer": f"http://{bob.ip}:8080/offer"}, {
        "http_listen": f"{bob.ip}:8080",
        "ready": str(w / "bob.ready"),
    }


def clean_call(out: Path) -> dict[str, Any]:
    name = "clean_call"
    w = T.workdir(name)
    cap, keylog = out / f"{name}.pcapng", out / f"{name}.keylog"
    with Lab(name) as lab:
        sig, alice, bob = three_hosts(lab)

        base = {
            "signal": f"wss://{sig.ip}:8443",
            "config_url": f"https://{sig.ip}:8443/config",
            "cafile": str(w / "signal.crt"),
            "keylog": str(keylog),
            "media": "audio,video",
            "duration": 3,
        }
        offer, answer = two_peers(
            lab, w, cap, alice, bob, base, base, servers=[lambda: start_signalling(sig, w, tls=True)]
        )
    dedupe_keylog(keylog)
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError("clean_call did not connect")
    truth = {
        "description": "aiortc audio+video call over DTLS-SRTP on public (documentation) host candidates; "
        "signalling over HTTPS + WSS (aiohttp, self-signed cert); TLS and DTLS keys in keylog",
        "keylog": keylog.name,
        "findings": [],
        "absent_findings": absent(),
        **call_truth(offer, answer, transport="websocket", tls=True),
        "signalling": {
            "server": f"{sig.ip}:8443",
            "tls": True,
            "urls": ["/config", "/ws/lab/offer", "/ws/lab/answer"],
        },
    }
    cross_check_rtp(cap, truth["rtp"])
    return truth


def datachannel_only(out: Path) -> dict[str, Any]:
    name = "datachannel_only"
    w = T.workdir(name)
    cap, keylog = out / f"{name}.pcapng", out / f"{name}.keylog"
    to_bob = ["hello bob", "rtcforensics datachannel test 1", "the quick brown fox"]
    to_alice = ["hello alice", "ack 1", "jumps over the lazy dog"]
    with Lab(name) as lab:
        alice = lab.host("alice", "192.0.2.10/24")
        bob = lab.host("bob", "192.0.2.20/24")
        via_offer, via_answer = http_offer_options(bob, w)
        offer, answer = two_peers(
            lab,
            w,
            cap,
            alice,
            bob,
            {
                **via_offer,
                "keylog": str(keylog),
                "datachannel": "chat",
                "messages": json.dumps(to_bob),
                "expect_messages": json.dumps(to_alice),
                "duration": 1,
            },
            {
                **via_answer,
                "keylog": str(keylog),
                "messages": json.dumps(to_alice),
                "expect_messages": json.dumps(to_bob),
                "duration": 1,
            },
        )
    dedupe_keylog(keylog)
    got_b = [m["message"] for m in answer["dc_received"]]
    got_a = [m["message"] for m in offer["dc_received"]]
    if got_b != to_bob or got_a != to_alice:
        raise RuntimeError(f"data channel messages not delivered: {got_b} / {got_a}")
    truth = {
        "description": "aiortc data-channel-only session (label 'chat', text both ways) over DTLS/SCTP; "
        "SDP offer/answer in one plain HTTP POST; DTLS master secret in keylog",
        "keylog": keylog.name,
        "findings": [{"slug": "signalling-plaintext", "endpoints": [f"{bob.ip}:8080"]}],
        "absent_findings": absent("signalling-plaintext"),
        **call_truth(offer, answer, transport="http", tls=False),
        "datachannels": [
            {"label": "chat", "from": "offer", "messages": to_bob},
            {"label": "chat", "from": "answer", "messages": to_alice},
        ],
    }
    return truth


def ws_plaintext_private(out: Path) -> dict[str, Any]:
    name = "ws_plaintext_private"
    w = T.workdir(name)
    cap = out / f"{name}.pcapng"
    with Lab(name) as lab:
        sig = lab.host("sig", "10.20.0.1/24")
        alice = lab.host("alice", "10.20.0.11/24")
        bob = lab.host("bob", "10.20.0.12/24")

        base = {"signal": f"ws://{sig.ip}:8080", "trickle": True, "media": "audio", "duration": 2}
        offer, answer = two_peers(
            lab, w, cap, alice, bob, base, base, servers=[lambda: start_signalling(sig, w, tls=False)]
        )
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError(f"{name} did not connect")
    core = call_truth(offer, answer, transport="websocket", tls=False)
    # trickled candidates (as sent, one JSON message each)
    trickled = [
        {**T.candidate_fact(c), "side": side}
        for side, p in (("offer", offer), ("answer", answer))
        for c in p.get("local_candidates", [])
    ]
    core["candidates"] = T.dedupe(trickled)
    cross_check_rtp(cap, core["rtp"])
    private = sorted({c["address"] for c in core["candidates"] if c["scope"] == "private"})
    return {
        "description": "aiortc audio call on RFC 1918 host candidates; plaintext WebSocket signalling with "
        "JSON-wrapped SDP ({type, sdp}) and trickled candidates ({candidate, sdpMid, sdpMLineIndex})",
        "keylog": None,
        "findings": [
            {"slug": "signalling-plaintext", "endpoints": [f"{sig.ip}:8080"]},
            {"slug": "ice-private-ip-exposed", "endpoints": private},
        ],
        "absent_findings": absent("signalling-plaintext", "ice-private-ip-exposed"),
        **core,
        "trickle": True,
    }


def fingerprint_rewrite(out: Path) -> dict[str, Any]:
    name = "fingerprint_rewrite"
    w = T.workdir(name)
    cap = out / f"{name}.pcapng"
    with Lab(name) as lab:
        relay, alice, bob = three_hosts(lab, server=("relay", "203.0.113.66"))
        _, fake = T.make_cert(w, "mitm", relay.ip)

        base = {"signal": f"ws://{relay.ip}:8080", "media": "audio", "duration": 1, "timeout": 15}
        rewrite = ["--rewrite-fingerprint", "--fake-cert", str(fake), "--log", str(w / "relay.json")]
        servers = [lambda: start_signalling(relay, w, tls=False, extra=rewrite)]
        offer, answer = two_peers(lab, w, cap, alice, bob, base, base, servers=servers)
    relay_log = load(w / "relay.json")
    if not relay_log["events"]:
        raise RuntimeError("relay rewrote nothing")
    core = call_truth(offer, answer, transport="websocket", tls=False, received_answer=True)
    states = {h["role"]: h["state"] for p in (offer, answer) for h in p["dtls"]}
    if offer["connected"]:
        raise RuntimeError("offerer accepted a rewritten fingerprint")
    cross_check_rtp(cap, core["rtp"])
    mitm_fp = relay_log["fake_fingerprints"]["sha-256"].replace(":", "").lower()
    answer_facts = T.sdp_facts(answer["local_sdp"], "answer", "", False)
    return {
        "description": "signalling relay (MITM, plain WebSocket) rewrites the a=fingerprint of the aiortc "
        "answer; the DTLS handshake completes on the wire, then the offerer rejects the "
        "answerer's certificate (fingerprint mismatch) and the call fails",
        "keylog": None,
        "findings": [
            {
                # the certificate on the wire is not the one the (rewritten) answer announces
                "slug": "dtls-fingerprint-mismatch",
                "endpoints": [d["client"] for d in core["dtls"]] + [d["server"] for d in core["dtls"]],
            },
            {
                # the same answer (ICE ufrag) seen on both signalling legs with different fingerprints
                "slug": "dtls-fingerprint-mismatch",
                "endpoints": [bob.ip, f"{relay.ip}:8080", alice.ip],
                "evidence": {"ice_ufrag": answer_facts["ice_ufrag"]},
            },
            {"slug": "signalling-plaintext", "endpoints": [f"{relay.ip}:8080"]},
        ],
        "absent_findings": [
            s
            for s in absent("dtls-fingerprint-mismatch", "signalling-plaintext")
            if s not in ("dtls-handshake-failed", "ice-private-ip-exposed")
        ],
        **core,
        "mitm": {
            "relay": relay.ip,
            "fake_fingerprint_sha256": mitm_fp,
            "answer_fingerprint_sha256": answer_facts["fingerprint"].get("sha-256"),
            "dtls_states": states,
        },
        "notes": "Both SDPs of the answer crossed the wire (bob->relay and relay->alice); their sha-256 "
        "fingerprints differ. The answerer's certificate on the wire matches the original answer.",
    }


def ipv6_eui64(out: Path) -> dict[str, Any]:
    name = "ipv6_eui64"
    w = T.workdir(name)
    cap = out / f"{name}.pcapng"
    mac = "52:54:00:12:34:56"
    v6 = T.eui64_address("2001:db8:1::/64", mac)
    with Lab(name) as lab:
        sig = lab.host("sig", "203.0.113.10/24", v6=["2001:db8:1::10/64"])
        alice = lab.host("alice", None, v6=[f"{v6}/64"], mac=mac)
        bob = lab.host("bob", None, v6=["2001:db8:1::20/64"])

        base = {"signal": "ws://[2001:db8:1::10]:8080", "media": "audio", "duration": 2}
        servers = [lambda: start_signalling(sig, w, tls=False, address="2001:db8:1::10")]
        offer, answer = two_peers(lab, w, cap, alice, bob, base, base, servers=servers)
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError(f"{name} did not connect")
    core = call_truth(offer, answer, transport="websocket", tls=False)
    cross_check_rtp(cap, core["rtp"])
    eui = [c for c in core["candidates"] if c.get("eui64_mac")]
    if not eui or eui[0]["eui64_mac"] != mac:
        raise RuntimeError(f"no EUI-64 candidate for {mac}: {core['candidates']}")
    return {
        "description": "aiortc audio call over IPv6 only; the offerer's host candidate has an EUI-64 "
        f"interface id derived from its MAC {mac}; plain WebSocket signalling",
        "keylog": None,
        "findings": [
            {"slug": "ice-ipv6-eui64", "endpoints": [v6], "mac": mac},
            {"slug": "signalling-plaintext", "endpoints": ["[2001:db8:1::10]:8080"]},
        ],
        "absent_findings": absent("ice-ipv6-eui64", "signalling-plaintext"),
        **core,
    }


SCENARIOS = {
    "clean_call": clean_call,
    "datachannel_only": datachannel_only,
    "ws_plaintext_private": ws_plaintext_private,
    "fingerprint_rewrite": fingerprint_rewrite,
    "ipv6_eui64": ipv6_eui64,
}
