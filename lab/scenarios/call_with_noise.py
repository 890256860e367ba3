"""A clean aiortc call with unrelated UDP on the same hosts: QUIC/HTTP-3, DNS, NTP and a burst of random datagrams.

Scenario ``call_with_noise``: the ``clean_call`` set-up (alice 192.0.2.10 calls bob 198.51.100.20, audio over
DTLS-SRTP, signalling over HTTPS + WSS on ``sig`` 203.0.113.10) while ``svc`` (203.0.113.53) runs Debian's
``dnsmasq`` (DNS on 53/udp), ``chronyd`` (NTP server on 123/udp, ``-x``: never touches a clock) and an aioquic
HTTP/3 server on 443/udp. During the call each peer's host runs a noise driver
(``python -m lab.scenarios.call_with_noise noise``): ``dig`` queries to dnsmasq, ``chronyd -Q`` (query only)
against the NTP server, an aioquic HTTP/3 GET, and (alice only) a burst of datagrams of random bytes to bob
whose first byte falls in the RTP (128..191) or DTLS (20..63) ranges. The burst is noise by definition.

Truth: ``call_flows`` (the call's media 5-tuples from the peers' own records and the signalling connections),
``noise_flows`` (every other flow, with the packets each stack sent: aioquic's datagrams counted in-process at
the socket, dig's one query per name, the burst sender's datagrams; NTP from tshark with chronyd's own report of
the exchange), plus the usual call truth (SDP, DTLS, RTP, STUN, candidates). QUIC secrets (aioquic's
``secrets_log_file``) join the call's keylog. The module is also the noise driver and the HTTP/3 server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import ssl
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from lab import truthlib as T

NAME = "call_with_noise"
SVC_IP = "203.0.113.53"
QUIC_PORT = 443
BURST_PORT = 47000
BURST = 40
NAMES = {"alice": ["turn.lab.example", "call.lab.example", "time.lab.example"], "bob": ["call.lab.example"]}
ZONE = {"turn.lab.example": "203.0.113.20", "call.lab.example": "203.0.113.10", "time.lab.example": SVC_IP}
BODY = b"rtcforensics lab: an HTTP/3 response that is not part of any call\n" * 8


# --------------------------------------------------------------------------------------------------------------
# aioquic HTTP/3 server and client, counting the datagrams they hand to their socket


def _counting(proto: Any, transport: Any) -> Any:
    class Counting:
        def sendto(self, data: bytes, addr: Any = None) -> None:
            proto.sent[f"{addr[0]}:{addr[1]}"] = proto.sent.get(f"{addr[0]}:{addr[1]}", 0) + 1
            transport.sendto(data, addr)

        def __getattr__(self, name: str) -> Any:
            return getattr(transport, name)

    return Counting()


def _h3_protocol() -> Any:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived

    class H3(QuicConnectionProtocol):
        """One aioquic connection speaking HTTP/3 (server: answers every GET; client: ``get``)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.sent: dict[str, int] = {}
            self.received = 0
            self.requests: list[dict[str, Any]] = []
            self.waiters: dict[int, asyncio.Future] = {}
            self.bodies: dict[int, dict[str, Any]] = {}
            H3.instances.append(self)

        instances: ClassVar[list[Any]] = []

        def connection_made(self, transport: Any) -> None:
            super().connection_made(_counting(self, transport))

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.received += 1
            super().datagram_received(data, addr)

        def quic_event_received(self, event: Any) -> None:
            for ev in self.h3.handle_event(event):
                if isinstance(ev, HeadersReceived) and not self._quic.configuration.is_client:
                    hdrs = dict(ev.headers)
                    self.requests.append({k.decode(): v.decode() for k, v in hdrs.items()})
                    self.h3.send_headers(
                        ev.stream_id,
                        [
                            (b":status", b"200"),
                            (b"content-type", b"text/plain"),
                            (b"content-length", str(len(BODY)).encode()),
                        ],
                    )
                    self.h3.send_data(ev.stream_id, BODY, end_stream=True)
                    self.transmit()
                elif isinstance(ev, HeadersReceived):
                    self.bodies.setdefault(ev.stream_id, {"body": b""})["headers"] = {
                        k.decode(): v.decode() for k, v in ev.headers
                    }
                elif isinstance(ev, DataReceived):
                    self.bodies.setdefault(ev.stream_id, {"body": b""})["body"] += ev.data
                if getattr(ev, "stream_ended", False) and ev.stream_id in self.waiters:
                    self.waiters.pop(ev.stream_id).set_result(self.bodies.get(ev.stream_id))

        async def get(self, authority: str, path: str) -> dict[str, Any]:
            sid = self._quic.get_next_available_stream_id()
            self.h3.send_headers(
                sid,
                [
                    (b":method", b"GET"),
                    (b":scheme", b"https"),
                    (b":authority", authority.encode()),
                    (b":path", path.encode()),
                ],
                end_stream=True,
            )
            fut = asyncio.get_running_loop().create_future()
            self.waiters[sid] = fut
            self.transmit()
            return await asyncio.wait_for(fut, 10)

    return H3


async def quic_server(args: argparse.Namespace) -> None:
    from aioquic.asyncio import serve
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    H3 = _h3_protocol()
    cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    cfg.load_cert_chain(args.cert, args.key)
    server = await serve(args.host, QUIC_PORT, configuration=cfg, create_protocol=H3)
    Path(args.ready).write_text("ok\n")

    def dump() -> None:
        rows = [{"sent": p.sent, "received": p.received, "requests": p.requests} for p in H3.instances]
        tmp = Path(args.out + ".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(args.out)

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(15, lambda: stop.done() or stop.set_result(None))
    while not stop.done():
        dump()
        await asyncio.sleep(0.2)
    dump()
    server.close()


async def quic_get(host: str, me: str, keylog: str | None) -> dict[str, Any]:
    import aioquic
    from aioquic.asyncio import connect
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    H3 = _h3_protocol()
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE)
    with contextlib.ExitStack() as stack:
        if keylog:
            cfg.secrets_log_file = stack.enter_context(open(keylog, "a"))
        async with connect(host, QUIC_PORT, configuration=cfg, create_protocol=H3) as client:
            local = client._transport.get_extra_info("sockname")
            res = await client.get(host, "/noise")
        await asyncio.sleep(0.2)
    return {
        "aioquic": aioquic.__version__,
        "local": f"{me}:{local[1]}",  # aioquic binds a dual-stack socket on "::"
        "server": f"{host}:{QUIC_PORT}",
        "status": res["headers"].get(":status"),
        "body_bytes": len(res["body"]),
        "datagrams_sent": sum(client.sent.values()),
        "datagrams_received": client.received,
    }


# --------------------------------------------------------------------------------------------------------------
# the noise driver (one per peer host)


def noise(args: argparse.Namespace) -> None:
    rec: dict[str, Any] = {"host": args.me, "dns": [], "ntp": None, "quic": None, "burst": None}
    time.sleep(args.delay)
    for name in NAMES[args.role]:
        r = subprocess.run(
            ["dig", f"@{SVC_IP}", "+tries=1", "+time=3", "+nocookie", "+noedns", name, "A"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        answer = [
            x.split()[-1] for x in r.stdout.splitlines() if x and not x.startswith(";") and "\tA\t" in x
        ]
        server = next((x.split()[2] for x in r.stdout.splitlines() if x.startswith(";; SERVER:")), None)
        rec["dns"].append({"name": name, "answer": answer, "status": r.returncode, "dig_server": server})
    ntp_conf = Path(args.work) / f"chrony_client_{args.role}.conf"
    ntp_conf.write_text(
        f"server {SVC_IP} iburst maxsamples 4\ncmdport 0\npidfile {args.work}/chrony_{args.role}.pid\n"
    )
    r = subprocess.run(
        ["chronyd", "-Q", "-u", "root", "-f", str(ntp_conf), "-t", "10"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    rec["ntp"] = {
        "server": f"{SVC_IP}:123",
        "chronyd_Q": (r.stdout + r.stderr).strip().splitlines(),
        "rc": r.returncode,
    }
    rec["quic"] = asyncio.run(quic_get(SVC_IP, args.me, args.keylog))
    if args.burst_to:
        host, port = args.burst_to.rsplit(":", 1)
        rng = random.Random()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((args.me, 0))
        firsts = []
        for i in range(BURST):
            first = rng.randrange(128, 192) if i % 2 == 0 else rng.randrange(20, 64)
            payload = bytes([first]) + os.urandom(rng.randrange(40, 200))
            s.sendto(payload, (host, int(port)))
            firsts.append(first)
            time.sleep(0.01)
        rec["burst"] = {
            "src": f"{args.me}:{s.getsockname()[1]}",
            "dst": args.burst_to,
            "packets": BURST,
            "first_bytes": firsts,
        }
        s.close()
    Path(args.out).write_text(json.dumps(rec, indent=1))


# --------------------------------------------------------------------------------------------------------------
# the scenario


def _wire_flows(cap: Path) -> Counter:
    """UDP datagrams per (src, dst, what tshark calls it) — the cross-check, not the truth."""
    rows = T.tshark_fields(
        cap,
        ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "frame.protocols"],
        display_filter="udp && !icmp",
        heuristics=False,
        first_only=True,
    )
    return Counter(
        (f"{r[0]}:{r[1]}", f"{r[2]}:{r[3]}", r[4].split(":udp:", 1)[-1].split(":")[0]) for r in rows
    )


def call_with_noise(out: Path) -> dict[str, Any]:
    from lab.netns import Lab
    from lab.scenarios import aiortc_calls as A

    w = T.workdir(NAME)
    cap, keylog = out / f"{NAME}.pcapng", out / f"{NAME}.keylog"
    if keylog.exists():
        keylog.unlink()
    with Lab(NAME) as lab:
        sig, alice, bob = A.three_hosts(lab)
        svc = lab.host("svc", f"{SVC_IP}/24")
        A.onlink(svc, "192.0.2.0/24", "198.51.100.0/24")
        key, crt = T.make_cert(w, "svc", SVC_IP)
        (w / "chrony_server.conf").write_text(
            f"bindaddress {SVC_IP}\nallow all\nlocal stratum 8\ncmdport 0\npidfile {w}/chrony_server.pid\n"
        )
        base = {
            "signal": f"wss://{sig.ip}:8443",
            "config_url": f"https://{sig.ip}:8443/config",
            "cafile": str(w / "signal.crt"),
            "keylog": str(keylog),
            "media": "audio",
            "duration": 5,
        }
        with lab.capture(cap):
            servers = [
                A.start_signalling(sig, w, tls=True),
                svc.popen(
                    [
                        "dnsmasq",
                        "--no-daemon",
                        "--conf-file=/dev/null",
                        "--no-resolv",
                        "--no-hosts",
                        f"--listen-address={SVC_IP}",
                        "--bind-interfaces",
                        "--user=root",
                        "--log-queries",
                        "--log-facility=-",
                        f"--pid-file={w}/dnsmasq.pid",
                        *[f"--host-record={n},{a}" for n, a in ZONE.items()],
                    ],
                    log=w / "dnsmasq.log",
                ),
                svc.popen(
                    ["chronyd", "-d", "-x", "-u", "root", "-f", str(w / "chrony_server.conf")],
                    log=w / "chronyd.log",
                ),
                svc.popen(
                    [
                        T.PY,
                        "-m",
                        "lab.scenarios.call_with_noise",
                        "quic-server",
                        "--host",
                        SVC_IP,
                        "--cert",
                        str(crt),
                        "--key",
                        str(key),
                        "--out",
                        str(w / "quic_server.json"),
                        "--ready",
                        str(w / "quic.ready"),
                    ],
                    log=w / "quic_server.log",
                    cwd=str(T.ROOT),
                ),
            ]
            svc.wait_listening(53, proto="udp", proc=servers[1])
            svc.wait_listening(123, proto="udp", proc=servers[2])
            A.wait_file(w / "quic.ready")
            pb = bob.popen(A.peer_argv("answer", w / "answer.json", **base), log=w / "answer.log")
            time.sleep(0.5)
            pa = alice.popen(A.peer_argv("offer", w / "offer.json", **base), log=w / "offer.log")
            drivers = []
            for h, role, burst in ((alice, "alice", f"{bob.ip}:{BURST_PORT}"), (bob, "bob", None)):
                argv = [
                    T.PY,
                    "-m",
                    "lab.scenarios.call_with_noise",
                    "noise",
                    "--role",
                    role,
                    "--me",
                    h.ip,
                    "--work",
                    str(w),
                    "--out",
                    str(w / f"noise_{role}.json"),
                    "--keylog",
                    str(keylog),
                    "--delay",
                    "1.5" if role == "alice" else "2.0",
                ]
                drivers.append(
                    h.popen(
                        argv + (["--burst-to", burst] if burst else []),
                        log=w / f"noise_{role}.log",
                        cwd=str(T.ROOT),
                    )
                )
            A.wait_procs([pa, pb, *drivers], timeout=90)
            time.sleep(0.5)
            for p in reversed(servers):
                A.stop(p)
    cap.chmod(0o644)
    A.dedupe_keylog(keylog)
    keylog.chmod(0o644)
    offer, answer = A.load(w / "offer.json"), A.load(w / "answer.json")
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError(f"{NAME}: the call did not connect")
    core = A.call_truth(offer, answer, transport="websocket", tls=True)
    A.cross_check_rtp(cap, core["rtp"])
    drv = {r: A.load(w / f"noise_{r}.json") for r in ("alice", "bob")}
    qsrv = json.loads((w / "quic_server.json").read_text())
    dns_log = (w / "dnsmasq.log").read_text(errors="replace")
    wire = _wire_flows(cap)
    problems: list[str] = []

    noise_flows: list[dict[str, Any]] = []
    for role, host in (("alice", alice), ("bob", bob)):
        d = drv[role]
        q = d["quic"]
        if q["status"] != "200" or q["body_bytes"] != len(BODY):
            problems.append(f"{role}: HTTP/3 GET gave {q['status']} / {q['body_bytes']} bytes")
        srv = next((c for c in qsrv if q["local"] in c["sent"]), None)
        if srv is None:
            problems.append(f"the QUIC server never sent to {q['local']}")
            continue
        noise_flows += [
            {
                "src": q["local"],
                "dst": q["server"],
                "proto": "quic",
                "packets": q["datagrams_sent"],
                "stack": f"aioquic {q['aioquic']} client (datagrams handed to the socket)",
            },
            {
                "src": q["server"],
                "dst": q["local"],
                "proto": "quic",
                "packets": srv["sent"][q["local"]],
                "stack": f"aioquic {q['aioquic']} HTTP/3 server (datagrams handed to the socket)",
            },
        ]
        for qd in d["dns"]:
            if qd["answer"] != [ZONE[qd["name"]]]:
                problems.append(f"{role}: dig {qd['name']} answered {qd['answer']}")
            if f"query[A] {qd['name']} from {host.ip}" not in dns_log:
                problems.append(f"dnsmasq logged no query for {qd['name']} from {host.ip}")
        dns_src = {k[0] for k in wire if k[0].startswith(host.ip + ":") and k[1] == f"{SVC_IP}:53"}
        for src in sorted(dns_src):
            noise_flows += [
                {
                    "src": src,
                    "dst": f"{SVC_IP}:53",
                    "proto": "dns",
                    "packets": 1,
                    "stack": "dig (one query per name, +tries=1)",
                    "names": [qd["name"] for qd in d["dns"]],
                },
                {
                    "src": f"{SVC_IP}:53",
                    "dst": src,
                    "proto": "dns",
                    "packets": 1,
                    "stack": "dnsmasq (--log-queries: one reply per query)",
                },
            ]
        if len(dns_src) != len(d["dns"]):
            problems.append(
                f"{role}: {len(d['dns'])} dig queries, {len(dns_src)} DNS source ports on the wire"
            )
        ntp = [k for k in wire if k[0].startswith(host.ip + ":") and k[1] == f"{SVC_IP}:123"]
        if not ntp or d["ntp"]["rc"] != 0:
            problems.append(f"{role}: chronyd -Q failed or no NTP on the wire: {d['ntp']}")
        for src, dst, _ in ntp:
            noise_flows += [
                {
                    "src": src,
                    "dst": dst,
                    "proto": "ntp",
                    "packets": sum(v for k, v in wire.items() if k[:2] == (src, dst)),
                    "stack": "chronyd -Q (counted by tshark)",
                    "chronyd_Q": d["ntp"]["chronyd_Q"],
                },
                {
                    "src": dst,
                    "dst": src,
                    "proto": "ntp",
                    "packets": sum(v for k, v in wire.items() if k[:2] == (dst, src)),
                    "stack": "chronyd -x server (counted by tshark)",
                },
            ]
        if d["burst"]:
            b = d["burst"]
            noise_flows.append(
                {
                    "src": b["src"],
                    "dst": b["dst"],
                    "proto": "random",
                    "packets": b["packets"],
                    "stack": "lab noise driver (random bytes; first byte in 128..191 or 20..63)",
                    "first_bytes": b["first_bytes"],
                }
            )
    for f in noise_flows:
        seen = sum(v for k, v in wire.items() if k[:2] == (f["src"], f["dst"]))
        f["wire_packets"] = seen
        if seen != f["packets"]:
            problems.append(f"{f['proto']} {f['src']} -> {f['dst']}: stack {f['packets']}, tshark {seen}")
    call_flows = []
    for r in core["rtp"]:
        call_flows.append(
            {
                "src": r["src"],
                "dst": r["dst"],
                "proto": "udp",
                "what": f"ICE/DTLS/SRTP (RTP SSRC {r['ssrc']})",
            }
        )
    for p in (offer, answer):
        call_flows.append(
            {"src": p["role"], "dst": f"{sig.ip}:8443", "proto": "tcp", "what": "HTTPS + WSS signalling"}
        )
    call_eps = {(f["src"], f["dst"]) for f in call_flows}
    if any((f["src"], f["dst"]) in call_eps for f in noise_flows):
        problems.append("a noise flow shares a 5-tuple with the call")
    if problems:
        raise RuntimeError(f"{NAME} facts disagree: " + "; ".join(problems))
    for p in (offer, answer):
        host_ip = alice.ip if p is offer else bob.ip
        for f in call_flows:
            if f["src"] == p["role"]:
                f["src"] = host_ip
    versions = {
        "dnsmasq": subprocess.run(["dnsmasq", "-v"], capture_output=True, text=True).stdout.split()[2],
        "chrony": subprocess.run(["chronyd", "-v"], capture_output=True, text=True).stdout.split()[3],
        "bind9-dig": subprocess.run(["dig", "-v"], capture_output=True, text=True).stderr.split()[1],
        "aioquic": drv["alice"]["quic"]["aioquic"],
    }
    return {
        "description": "clean aiortc audio call (DTLS-SRTP, HTTPS+WSS signalling) with unrelated UDP on the same "
        "hosts: aioquic HTTP/3, dig->dnsmasq DNS, chronyd NTP, and a burst of random datagrams whose first bytes "
        "look like RTP or DTLS; only the call's flows are the call",
        "stacks": versions,
        "keylog": keylog.name,
        "findings": [],
        "absent_findings": A.absent(),
        **core,
        "call_flows": call_flows,
        "noise_flows": noise_flows,
        "noise_drivers": drv,
        "quic_server": qsrv,
        "notes": (
            "call_flows: the call's media 5-tuples (aiortc's own RTP records, selected ICE pair) and the two "
            "signalling TCP connections; every other flow is noise_flows ('other'): QUIC (aioquic, datagrams "
            "counted in-process at the socket by both ends), DNS (dig +tries=1, one query per name; dnsmasq "
            "logs each), NTP (chronyd -Q against chronyd -x; packets counted by tshark), and a burst of "
            f"{BURST} datagrams of random bytes from alice to bob:{BURST_PORT} (closed port: bob answers with "
            "ICMP port unreachable), alternately first byte 128..191 (RTP version 2) and 20..63 (DTLS content "
            "types). QUIC TLS secrets are in the keylog (aioquic secrets_log_file) with the call's."
        ),
    }


SCENARIOS = {NAME: call_with_noise}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lab.scenarios.call_with_noise")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("quic-server")
    for a in ("--host", "--cert", "--key", "--out", "--ready"):
        s.add_argument(a, required=True)
    n = sub.add_parser("noise")
    n.add_argument("--role", required=True, choices=sorted(NAMES))
    n.add_argument("--me", required=True)
    n.add_argument("--work", required=True)
    n.add_argument("--out", required=True)
    n.add_argument("--keylog")
    n.add_argument("--delay", type=float, default=1.0)
    n.add_argument("--burst-to")
    args = ap.parse_args(argv)
    if args.cmd == "quic-server":
        asyncio.run(quic_server(args))
    else:
        noise(args)


if __name__ == "__main__":
    main()
