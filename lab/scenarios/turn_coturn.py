"""coturn scenarios: turn_relay_longterm, turn_open_relay, turn_internal_peer_refused, turn_internal_peer_allowed.

coturn 4.6.1 (Debian's turnserver) in its own namespace; clients are aiortc peers (relay-only call) or
lab/turn_client.py (aioice's TURN client protocol). Truth: what the clients' aioice sent and received,
coturn's own log, the UDP peers' logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.netns import Host, Lab
from lab.scenarios.aiortc_calls import (
    absent,
    call_truth,
    cross_check_rtp,
    dedupe_keylog,
    load,
    onlink,
    start_signalling,
    stop,
    two_peers,
    wait_file,
    wait_procs,
)

TURN_IP = "203.0.113.50"
REALM = "rtcf.example"
CLIENT = str(T.LAB / "turn_client.py")
ECHO = str(T.LAB / "udp_echo.py")


def coturn_conf(w: Path, *lines: str) -> Path:
    conf = w / "turnserver.conf"
    base = [
        f"listening-ip={TURN_IP}",
        f"relay-ip={TURN_IP}",
        "listening-port=3478",
        "min-port=49160",
        "max-port=49200",
        f"realm={REALM}",
        "fingerprint",
        "no-tls",
        "no-dtls",
        "no-cli",
        "no-rfc5780",
        "no-stun-backward-compatibility",
        f"log-file={w / 'turn.log'}",
        "simple-log",
        "verbose",
        f"pidfile={w / 'turn.pid'}",
        f"userdb={w / 'turndb'}",
    ]
    conf.write_text("\n".join(base + list(lines)) + "\n")
    return conf


def start_coturn(host: Host, w: Path, conf: Path) -> subprocess.Popen:
    p = host.popen(["turnserver", "-c", str(conf)], log=w / "turn.stdout")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = host.run("ss", "-lun", check=False)
        if f"{TURN_IP}:3478" in r.stdout:
            return p
        if p.poll() is not None:
            raise RuntimeError(f"turnserver exited: {(w / 'turn.stdout').read_text()[-800:]}")
        time.sleep(0.2)
    raise RuntimeError("turnserver did not start listening")


def coturn_log(w: Path) -> str:
    logs = sorted(w.glob("turn*.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs)


def coturn_facts(w: Path) -> dict[str, Any]:
    log = coturn_log(w)
    keep = [
        line
        for line in log.splitlines()
        if "session" in line
        and "/" not in line.split("session", 1)[1]
        and re.search(
            r"(ALLOCATE|CREATE_PERMISSION|CHANNEL_BIND|REFRESH|SEND|peer .* deleted|"
            r"denied|forbidden|error \d+|success)",
            line,
            re.IGNORECASE,
        )
    ]
    return {"version": T.coturn_version(), "log_lines": keep[:80]}


def turn_stun(*clients: dict) -> dict[str, int]:
    return T.add_counts(*[c[k] for c in clients for k in ("stun_sent_turn", "stun_recv_turn")])


def echo(host: Host, w: Path, bind: str, tag: str) -> subprocess.Popen:
    ready = w / f"echo-{tag}.ready"
    p = host.popen(
        [T.PY, ECHO, "--bind", bind, "--log", str(w / f"echo-{tag}.json"), "--ready", str(ready)],
        log=w / f"echo-{tag}.log",
    )
    wait_file(ready)
    return p


def software_finding() -> dict[str, Any]:
    return {
        "slug": "software-disclosure",
        "endpoints": [f"{TURN_IP}:3478"],
        "software": "Coturn-4.6.1 'Gorst'",
    }


def check_software(clients: list[dict]) -> str:
    sw = sorted({s for c in clients for s in c.get("turn_software", [])})
    if not sw or not sw[0].startswith("Coturn-4.6.1"):
        raise RuntimeError(f"unexpected TURN SOFTWARE: {sw}")
    return sw[0]


# --------------------------------------------------------------------------------------------- scenarios


def turn_relay_longterm(out: Path) -> dict[str, Any]:
    name = "turn_relay_longterm"
    w = T.workdir(name)
    cap, keylog = out / f"{name}.pcapng", out / f"{name}.keylog"
    user, password = "rtcf-user", "Lab-Turn-Pw-7f3a91"
    with Lab(name) as lab:
        turn = lab.host("turn", f"{TURN_IP}/24")
        sig = lab.host("sig", "203.0.113.10/24")
        alice = lab.host("alice", "192.0.2.10/24")
        bob = lab.host("bob", "198.51.100.20/24")
        onlink(turn, "192.0.2.0/24", "198.51.100.0/24")
        onlink(sig, "192.0.2.0/24", "198.51.100.0/24")
        onlink(alice, "203.0.113.0/24")
        onlink(bob, "203.0.113.0/24")
        conf = coturn_conf(w, "lt-cred-mech", f"user={user}:{password}")
        ice = json.dumps(
            [{"urls": f"turn:{TURN_IP}:3478?transport=udp", "username": user, "credential": password}]
        )
        base = {
            "signal": f"wss://{sig.ip}:8443",
            "cafile": str(w / "signal.crt"),
            "keylog": str(keylog),
            "media": "audio",
            "ice_servers": ice,
            "relay_only": True,
            "duration": 2,
        }
        servers = [lambda: start_coturn(turn, w, conf), lambda: start_signalling(sig, w, tls=True)]
        offer, answer = two_peers(lab, w, cap, alice, bob, base, base, servers=servers)
    dedupe_keylog(keylog)
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError(f"{name} did not connect")
    core = call_truth(offer, answer, transport="websocket", tls=True, wire_copies=2)
    core["stun"] = T.add_counts(core["stun"])
    for c in core["candidates"]:
        if c["type"] != "relay":
            raise RuntimeError(f"non-relay candidate in a relay-only call: {c}")
    cross_check_rtp(cap, core["rtp"])
    software = check_software([offer, answer])
    return {
        "description": "aiortc audio call forced through coturn (iceTransportPolicy relay, lt-cred-mech static "
        "user): 401 challenge, authenticated Allocate, CreatePermission/ChannelBind, media in "
        "ChannelData (each RTP packet on the wire twice); signalling over WSS; TLS keys of the signalling "
        "and the DTLS master secret (CLIENT_RANDOM) in keylog, so the SRTP inside ChannelData can be "
        "decrypted",
        "keylog": keylog.name,
        "stacks": {"coturn": T.coturn_version()},
        "findings": [software_finding()],
        "absent_findings": [s for s in absent() if s not in ("outdated-component",)],
        **core,
        "turn": {
            "server": f"{TURN_IP}:3478",
            "username": user,
            "realm": REALM,
            "auth": "long-term",
            "software": software,
            "coturn": coturn_facts(w),
        },
        "secrets": {"turn_password": password},
        "notes": "The TURN password must not appear in any output (the wire carries only MESSAGE-INTEGRITY "
        "HMACs keyed with MD5(username:realm:password)).",
    }


def turn_open_relay(out: Path) -> dict[str, Any]:
    name = "turn_open_relay"
    w = T.workdir(name)
    cap = out / f"{name}.pcapng"
    with Lab(name) as lab:
        turn = lab.host("turn", f"{TURN_IP}/24")
        client = lab.host("client", "192.0.2.77/24")
        target = lab.host("target", "198.51.100.99/24")
        onlink(turn, "192.0.2.0/24", "198.51.100.0/24")
        onlink(client, "203.0.113.0/24")
        onlink(target, "203.0.113.0/24")
        conf = coturn_conf(w, "no-auth")
        with lab.capture(cap):
            pt = start_coturn(turn, w, conf)
            pe = echo(target, w, f"{target.ip}:9000", "target")
            pc = client.popen(
                [
                    T.PY,
                    CLIENT,
                    "--server",
                    f"{TURN_IP}:3478",
                    "--mode",
                    "channel",
                    "--peers",
                    json.dumps([[target.ip, 9000]]),
                    "--out",
                    str(w / "client.json"),
                ],
                log=w / "client.log",
            )
            wait_procs([pc], timeout=60)
            stop(pe)
            stop(pt)
    res = load(w / "client.json")
    echoed = load(w / "echo-target.json")["received"]
    if not res["received"] or not echoed:
        raise RuntimeError("open relay did not relay")
    software = check_software([res])
    return {
        "description": "coturn with no-auth: aioice's TURN client allocates without any credentials (no 401 "
        "challenge, no MESSAGE-INTEGRITY), binds a channel to a public peer and relays UDP "
        "both ways",
        "keylog": None,
        "stacks": {"coturn": T.coturn_version()},
        "findings": [{"slug": "turn-open-relay", "endpoints": [f"{TURN_IP}:3478"]}, software_finding()],
        "absent_findings": [
            "turn-internal-peer",
            "signalling-plaintext",
            "dtls-handshake-failed",
            "rtp-unencrypted",
            "ice-private-ip-exposed",
        ],
        "stun": turn_stun(res),
        "turn": {
            "server": f"{TURN_IP}:3478",
            "username": None,
            "realm": None,
            "auth": "none",
            "client": res["client"],
            "relayed_address": res["relayed_address"],
            "peers": res["peers"],
            "relayed_back": res["received"],
            "peer_received": echoed,
            "software": software,
            "coturn": coturn_facts(w),
        },
    }


def _internal(out: Path, name: str, allowed: bool) -> dict[str, Any]:
    w = T.workdir(name)
    cap = out / f"{name}.pcapng"
    peers = [["127.0.0.1", 9000], ["10.99.0.5", 9000], ["169.254.169.254", 80]]
    if allowed:
        # TURN REST credentials (use-auth-secret): username "<expiry>:<user>", password HMAC-SHA1(secret)
        secret = "rtcf-lab-static-auth-secret-42"
        expiry = int(time.time()) + 10 * 365 * 24 * 3600
        user = f"{expiry}:rtcf-rest-user"
        password = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
        conf_lines = ["use-auth-secret", f"static-auth-secret={secret}", "allow-loopback-peers"]
        secrets = {"turn_static_auth_secret": secret, "turn_password": password}
    else:
        user, password = "rtcf-user", "Lab-Turn-Pw-2b9c44"
        conf_lines = [
            "lt-cred-mech",
            f"user={user}:{password}",
            "denied-peer-ip=10.0.0.0-10.255.255.255",
            "denied-peer-ip=169.254.0.0-169.254.255.255",
            "denied-peer-ip=127.0.0.0-127.255.255.255",
        ]
        secrets = {"turn_password": password}
    with Lab(name) as lab:
        turn = lab.host("turn", f"{TURN_IP}/24")
        client = lab.host("client", "192.0.2.77/24")
        internal = lab.host("internal", "10.99.0.5/24")
        meta = lab.host("meta", "169.254.169.254/16")
        onlink(turn, "192.0.2.0/24", "10.99.0.0/24", "169.254.0.0/16")
        onlink(client, "203.0.113.0/24")
        onlink(internal, "203.0.113.0/24")
        onlink(meta, "203.0.113.0/24")
        conf = coturn_conf(w, *conf_lines)
        with lab.capture(cap):
            pt = start_coturn(turn, w, conf)
            echoes = [
                echo(turn, w, "127.0.0.1:9000", "loopback"),
                echo(internal, w, "10.99.0.5:9000", "private"),
                echo(meta, w, "169.254.169.254:80", "metadata"),
            ]
            pc = client.popen(
                [
                    T.PY,
                    CLIENT,
                    "--server",
                    f"{TURN_IP}:3478",
                    "--mode",
                    "permission-send",
                    "--username",
                    user,
                    "--password",
                    password,
                    "--count",
                    "2",
                    "--peers",
                    json.dumps(peers),
                    "--out",
                    str(w / "client.json"),
                ],
                log=w / "client.log",
            )
            wait_procs([pc], timeout=60)
            for p in echoes:
                stop(p)
            stop(pt)
    res = load(w / "client.json")
    arrived = {tag: load(w / f"echo-{tag}.json")["received"] for tag in ("loopback", "private", "metadata")}
    results = {p["peer"]: p.get("create_permission") for p in res["peers"]}
    if allowed and (set(results.values()) != {"success"} or not all(arrived.values())):
        raise RuntimeError(f"internal peers not relayed: {results} {[len(v) for v in arrived.values()]}")
    if not allowed and (any(v != "error" for v in results.values()) or any(arrived.values())):
        raise RuntimeError(f"internal peers not refused: {results}")
    software = check_software([res])
    internal_eps = [f"{h}:{p}" for h, p in peers]
    findings = [
        {
            "slug": "turn-internal-peer",
            "endpoints": internal_eps,
            "accepted": allowed,
            "severity_hint": "critical" if allowed else "lower",
        },
        software_finding(),
    ]
    truth: dict[str, Any] = {
        "keylog": None,
        "stacks": {"coturn": T.coturn_version()},
        "absent_findings": ["turn-open-relay", "signalling-plaintext", "dtls-handshake-failed"],
        "stun": turn_stun(res),
        "turn": {
            "server": f"{TURN_IP}:3478",
            "username": user,
            "realm": REALM,
            "client": res["client"],
            "relayed_address": res["relayed_address"],
            "peers": res["peers"],
            "data_indications": res["turn_data_indications"],
            "peer_received": arrived,
            "software": software,
            "coturn": coturn_facts(w),
        },
        "secrets": secrets,
    }
    if allowed:
        truth["description"] = (
            "coturn with allow-loopback-peers and no denied-peer-ip, TURN REST credentials "
            "(use-auth-secret, username '<expiry>:<user>' valid ~10 years): authenticated "
            "CreatePermission + Send indications toward 127.0.0.1, 10.99.0.5 and "
            "169.254.169.254 succeed; the peers receive the data and their echoes come back "
            "in Data indications"
        )
        truth["turn"]["auth"] = "turn-rest"
        truth["turn"]["credential_expiry"] = expiry
        findings.append(
            {
                "slug": "turn-credential-lifetime",
                "endpoints": [f"{TURN_IP}:3478"],
                "username": user,
                "expiry": expiry,
            }
        )
    else:
        truth["description"] = (
            "coturn with lt-cred-mech and denied-peer-ip for 10/8, 169.254/16, 127/8: "
            "authenticated CreatePermission toward 127.0.0.1, 10.99.0.5 and 169.254.169.254 "
            "is refused (403 Forbidden); the Send indications that follow are dropped"
        )
        truth["turn"]["auth"] = "long-term"
        truth["absent_findings"].append("turn-credential-lifetime")
    truth["findings"] = findings
    return truth


def turn_internal_peer_refused(out: Path) -> dict[str, Any]:
    return _internal(out, "turn_internal_peer_refused", allowed=False)


def turn_internal_peer_allowed(out: Path) -> dict[str, Any]:
    return _internal(out, "turn_internal_peer_allowed", allowed=True)


SCENARIOS = {
    "turn_relay_longterm": turn_relay_longterm,
    "turn_open_relay": turn_open_relay,
    "turn_internal_peer_refused": turn_internal_peer_refused,
    "turn_internal_peer_allowed": turn_internal_peer_allowed,
}
