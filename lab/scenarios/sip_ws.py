"""SIP over plain WebSocket (RFC 7118) carrying an INVITE with an SDP offer and a 200 OK with the answer.

Scenario ``sip_ws``: a UAC on ``alice`` (203.0.113.10) opens ``ws://203.0.113.20:8080/sip`` with
``Sec-WebSocket-Protocol: sip`` (aiohttp's WebSocket client) to a UAS on ``pbx`` (aiohttp's WebSocket server).
INVITE (SDP offer) → 100 Trying → 180 Ringing → 200 OK (SDP answer) → ACK; about 3 s of audio over DTLS-SRTP
between the two aiortc peer connections whose SDPs the SIP messages carry; BYE → 200 OK. The SIP text is
composed by our UAs (User-Agent / Server headers with versions); SDPs, ICE, DTLS and RTP come from aiortc.
Both UAs record in-process what their stack did (``lab.peer`` hooks: STUN sent, RTP per SSRC, DTLS facts,
getStats()); the DTLS 1.2 master secret is written as ``sip_ws.keylog`` (CLIENT_RANDOM).

The module is also the UA program run inside the namespaces: ``python -m lab.scenarios.sip_ws uac|uas ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NAME = "sip_ws"
UAC_IP, UAS_IP = "203.0.113.10", "203.0.113.20"
WS_PORT = 8080
UAC_AGENT = "rtcf-lab-uac/0.1.0 (aiortc 1.16.0; aiohttp {aiohttp})"
UAS_AGENT = "rtcf-lab-pbx/0.1.0 (aiortc 1.16.0; aiohttp {aiohttp})"
MEDIA_SECONDS = 3.0


# --------------------------------------------------------------------------------------------------------------
# SIP text (RFC 3261) over WebSocket (RFC 7118 §5: one SIP message per WebSocket text message)


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(6)


def _parse(msg: str) -> tuple[str, dict[str, str], str]:
    head, _, body = msg.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    return lines[0], headers, body


def _compose(start: str, headers: list[tuple[str, str]], body: str = "", ctype: str | None = None) -> str:
    hs = list(headers)
    if body:
        hs.append(("Content-Type", ctype or "application/sdp"))
    hs.append(("Content-Length", str(len(body.encode()))))
    return start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n" + body


def _response(
    req: str, code: int, reason: str, server: str, to_tag: str, contact: str | None = None, body: str = ""
) -> str:
    _, h, _ = _parse(req)
    to = h["to"] if ";tag=" in h["to"] or code == 100 else f"{h['to']};tag={to_tag}"
    headers = [
        ("Via", h["via"]),
        ("From", h["from"]),
        ("To", to),
        ("Call-ID", h["call-id"]),
        ("CSeq", h["cseq"]),
    ]
    if contact:
        headers.append(("Contact", contact))
    headers.append(("Server", server))
    return _compose(f"SIP/2.0 {code} {reason}", headers, body)


# --------------------------------------------------------------------------------------------------------------
# the UAs (run inside the namespaces)


def _sine_track() -> Any:
    import fractions

    import av
    import numpy as np
    from aiortc.mediastreams import AudioStreamTrack

    class Sine(AudioStreamTrack):
        """440 Hz tone, 20 ms frames of 48 kHz mono s16 (so decrypted audio is not silence)."""

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        async def recv(self) -> av.AudioFrame:
            frame = await super().recv()  # paces at real time, gives pts/time_base
            t = (np.arange(frame.samples) + self.n) / frame.sample_rate
            self.n += frame.samples
            data = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
            out = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
            out.sample_rate, out.pts, out.time_base = (
                frame.sample_rate,
                frame.pts,
                fractions.Fraction(1, frame.sample_rate),
            )
            return out

    return Sine()


async def _stats(pc: Any) -> list[dict]:
    report = await pc.getStats()
    return [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in vars(s).items()}
        for s in report.values()
    ]


def _make_pc(rec: dict) -> tuple[Any, asyncio.Event]:
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection()
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        rec.setdefault("states", []).append(pc.connectionState)
        if pc.connectionState == "connected":
            connected.set()

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def drain() -> None:
            n = 0
            while True:
                try:
                    await track.recv()
                    n += 1
                    rec["frames_received"] = n
                except MediaStreamError:
                    return

        asyncio.ensure_future(drain())

    pc.addTrack(_sine_track())
    return pc, connected


async def _finish(pc: Any, rec: dict, out: Path) -> None:
    from lab import peer as P

    rec["senders"] = [{"kind": s.kind, "ssrc": s._ssrc} for s in pc.getSenders()]
    await pc.close()
    rec.update({k: v for k, v in P.REC.items()})
    out.write_text(json.dumps(rec, default=lambda o: dict(o) if isinstance(o, Counter) else str(o), indent=1))


def _setup_hooks(keylog: str | None) -> None:
    from lab import peer as P

    P.install_hooks()
    P.KEYLOG = Path(keylog) if keylog else None


async def uac(args: argparse.Namespace) -> None:
    import aiohttp
    from aiortc import RTCSessionDescription

    _setup_hooks(args.keylog)
    agent = UAC_AGENT.format(aiohttp=aiohttp.__version__)
    rec: dict[str, Any] = {"sip_sent": [], "sip_received": []}
    pc, connected = _make_pc(rec)
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    rec["local_sdp"] = offer
    via_host = f"{secrets.token_hex(5)}.invalid"  # RFC 7118 §5.2: a random domain for Via/Contact
    call_id = secrets.token_hex(10)
    tag = secrets.token_hex(5)
    contact = f"<sip:alice@{via_host};transport=ws;ob>"
    target = f"sip:bob@{UAS_IP}"

    def request(method: str, cseq: int, to: str, body: str = "", branch: str | None = None) -> str:
        return _compose(
            f"{method} {target};transport=ws SIP/2.0",
            [
                ("Via", f"SIP/2.0/WS {via_host};branch={branch or _branch()}"),
                ("Max-Forwards", "70"),
                ("From", f'"Alice" <sip:alice@{UAS_IP}>;tag={tag}'),
                ("To", to),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} {method}"),
                ("Contact", contact),
                ("User-Agent", agent),
                *([("Allow", "INVITE,ACK,CANCEL,BYE,OPTIONS")] if method == "INVITE" else []),
            ],
            body,
        )

    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"ws://{UAS_IP}:{WS_PORT}/sip", protocols=("sip",)) as ws,
    ):
        rec["ws_protocol"] = ws.protocol

        async def send(text: str) -> None:
            rec["sip_sent"].append(text.split("\r\n", 1)[0])
            await ws.send_str(text)

        async def recv() -> tuple[str, dict[str, str], str]:
            msg = await asyncio.wait_for(ws.receive(), timeout=20)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"unexpected WebSocket message {msg.type}")
            rec["sip_received"].append(msg.data.split("\r\n", 1)[0])
            return _parse(msg.data)

        to = f"<{target}>"
        await send(request("INVITE", 1, to, offer))
        while True:
            start, h, body = await recv()
            code = int(start.split()[1])
            if code >= 200:
                break
        if code != 200:
            raise RuntimeError(f"INVITE answered {start}")
        rec["remote_sdp"] = body
        rec["server_header"] = h.get("server")
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        to = h["to"]
        await send(request("ACK", 1, to))
        await asyncio.wait_for(connected.wait(), timeout=20)
        await asyncio.sleep(MEDIA_SECONDS)
        rec["stats"] = await _stats(pc)
        await send(request("BYE", 2, to))
        start, h, _ = await recv()
        if not start.startswith("SIP/2.0 200"):
            raise RuntimeError(f"BYE answered {start}")
        await asyncio.sleep(0.3)
        await ws.close()
    await _finish(pc, rec, Path(args.out))


async def uas(args: argparse.Namespace) -> None:
    import aiohttp
    from aiohttp import web
    from aiortc import RTCSessionDescription

    _setup_hooks(args.keylog)
    server = UAS_AGENT.format(aiohttp=aiohttp.__version__)
    rec: dict[str, Any] = {"sip_sent": [], "sip_received": []}
    done = asyncio.Event()
    to_tag = secrets.token_hex(5)
    state: dict[str, Any] = {}

    async def sip(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        rec["ws_protocol"] = ws.ws_protocol
        rec["ws_upgrade_user_agent"] = request.headers.get("User-Agent")

        async def send(text: str) -> None:
            rec["sip_sent"].append(text.split("\r\n", 1)[0])
            await ws.send_str(text)

        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            rec["sip_received"].append(msg.data.split("\r\n", 1)[0])
            start, h, body = _parse(msg.data)
            method = start.split()[0]
            contact = f"<sip:bob@{UAS_IP}:{WS_PORT};transport=ws>"
            if method == "INVITE":
                rec["user_agent_header"] = h.get("user-agent")
                await send(_response(msg.data, 100, "Trying", server, to_tag))
                pc, _ = _make_pc(rec)
                state["pc"] = pc
                rec["remote_sdp"] = body
                await pc.setRemoteDescription(RTCSessionDescription(body, "offer"))
                await send(_response(msg.data, 180, "Ringing", server, to_tag, contact))
                await pc.setLocalDescription(await pc.createAnswer())
                rec["local_sdp"] = pc.localDescription.sdp
                await send(_response(msg.data, 200, "OK", server, to_tag, contact, pc.localDescription.sdp))
            elif method == "ACK":
                pass
            elif method == "BYE":
                rec["stats"] = await _stats(state["pc"])
                await send(_response(msg.data, 200, "OK", server, to_tag))
                done.set()
            else:
                await send(_response(msg.data, 405, "Method Not Allowed", server, to_tag))
        return ws

    app = web.Application()
    app.router.add_get("/sip", sip)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, UAS_IP, WS_PORT).start()
    await asyncio.wait_for(done.wait(), timeout=60)
    await asyncio.sleep(0.5)
    await _finish(state["pc"], rec, Path(args.out))
    await runner.cleanup()


# --------------------------------------------------------------------------------------------------------------
# the scenario


def _pair(row: dict) -> tuple[str | None, str | None]:
    if "src" in row:
        return row["src"], row["dst"]
    p = row.get("pair") or {}
    return p.get("local"), p.get("remote")


def _tshark(cap: Path, keylog: Path) -> dict:
    base = ["tshark", "-r", str(cap), "--enable-heuristic", "rtp_udp", "-o", f"tls.keylog_file:{keylog}"]
    sip = subprocess.run(
        [
            *base,
            "-Y",
            "sip",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "sip.Request-Line",
            "-e",
            "sip.Status-Line",
            "-e",
            "sip.User-Agent",
            "-e",
            "sip.Server",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    rtp = subprocess.run(
        [*base, "-Y", "rtp && !rtcp", "-T", "fields", "-e", "rtp.ssrc"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    ws = subprocess.run(
        [
            *base,
            "-Y",
            "http.upgrade || websocket",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "http.request.method",
            "-e",
            "http.response.code",
            "-e",
            "http.user_agent",
            "-e",
            "http.server",
            "-e",
            "http.upgrade",
            "-e",
            "http.sec_websocket_protocol",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    dtls = subprocess.run(
        [
            *base,
            "-Y",
            "dtls.handshake.type==2",
            "-T",
            "fields",
            "-e",
            "dtls.handshake.version",
            "-e",
            "dtls.handshake.ciphersuite",
            "-e",
            "dtls.use_srtp.protection_profile",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    sdp = subprocess.run(
        [*base, "-Y", "sdp", "-T", "fields", "-e", "sdp.media_attr"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return {
        "sdp_attrs": [line.split(",") for line in sdp.splitlines() if line],
        "sip": [line.split("\t") for line in sip.splitlines() if line],
        "rtp": Counter(int(s, 16) for s in rtp.split()),
        "ws": [line.split("\t") for line in ws.splitlines() if line],
        "dtls": [line.split("\t") for line in dtls.splitlines() if line],
    }


def sip_ws(out: Path) -> dict:
    from lab.netns import Lab
    from lab.truthlib import (
        DTLS_VERSION,
        SRTP_IANA,
        add_counts,
        candidates_from_sdp,
        openssl_iana_names,
        sdp_facts,
        workdir,
    )

    work = workdir(NAME)
    cap = out / f"{NAME}.pcapng"
    keylog = out / f"{NAME}.keylog"
    if keylog.exists():
        keylog.unlink()
    py = [sys.executable, "-m", "lab.scenarios.sip_ws"]
    with Lab(NAME) as lab:
        a = lab.host("alice", f"{UAC_IP}/24")
        b = lab.host("pbx", f"{UAS_IP}/24")
        with lab.capture(cap):
            s = b.popen(
                [*py, "uas", "--out", str(work / "uas.json"), "--keylog", str(keylog)],
                log=work / "uas.log",
                cwd=str(ROOT),
            )
            b.wait_listening(WS_PORT)
            c = a.popen(
                [*py, "uac", "--out", str(work / "uac.json"), "--keylog", str(keylog)],
                log=work / "uac.log",
                cwd=str(ROOT),
            )
            for p, n in ((c, "uac"), (s, "uas")):
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired as e:
                    raise RuntimeError(
                        f"{n} did not finish: {(work / f'{n}.log').read_text()[-2000:]}"
                    ) from e
                if p.returncode != 0:
                    raise RuntimeError(f"{n} failed: {(work / f'{n}.log').read_text()[-2000:]}")
            lab.stop_all()
    cap.chmod(0o644)
    uacr = json.loads((work / "uac.json").read_text())
    uasr = json.loads((work / "uas.json").read_text())
    lines = list(dict.fromkeys(x for x in keylog.read_text().splitlines() if x.strip()))
    keylog.write_text("\n".join(lines) + "\n")
    keylog.chmod(0o644)

    iana = openssl_iana_names()
    dtls = []
    for me, other in ((uacr, uasr), (uasr, uacr)):
        for hs in me["dtls"]:
            if hs.get("role") != "client" or not hs.get("client_random"):
                continue
            srv = next((h for h in other["dtls"] if h.get("client_random") == hs["client_random"]), {})
            dtls.append(
                {
                    "client": hs["pair"].get("local"),
                    "server": hs["pair"].get("remote"),
                    "client_random": hs["client_random"],
                    "version": DTLS_VERSION.get(hs["version"], hs["version"]),
                    "cipher_suite": iana.get(hs["cipher_openssl"], hs["cipher_openssl"]),
                    "srtp_profile": SRTP_IANA.get(hs["srtp_profile_openssl"], hs["srtp_profile_openssl"]),
                    "client_cert_sha256": hs["local_cert_sha256"],
                    "server_cert_sha256": hs["peer_cert_sha256"],
                    "encrypted_handshake": hs["version"] == "DTLSv1.3",
                    "completed": hs.get("state") == "connected" and srv.get("state") == "connected",
                }
            )
    rtp = []
    for side, r in (("uac", uacr), ("uas", uasr)):
        for ssrc, row in sorted(r["rtp_sent"].items()):
            src, dst = _pair(row)
            st = next(
                (
                    x
                    for x in r.get("stats", [])
                    if x.get("type") == "outbound-rtp" and x.get("ssrc") == int(ssrc)
                ),
                {},
            )
            rtp.append(
                {
                    "ssrc": int(ssrc),
                    "packets": row["packets"],
                    "src": src,
                    "dst": dst,
                    "pt": row["pt"],
                    "kind": "audio",
                    "side": side,
                    "getstats_packets_sent": st.get("packetsSent"),
                }
            )
    stun = add_counts(*[r[k] for r in (uacr, uasr) for k in ("stun_sent_direct", "stun_sent_turn")])

    ts = _tshark(cap, keylog)
    for r in rtp:
        if ts["rtp"].get(r["ssrc"]) != r["packets"]:
            raise RuntimeError(
                f"tshark sees {ts['rtp'].get(r['ssrc'])} RTP packets for SSRC {r['ssrc']}, "
                f"aiortc sent {r['packets']}"
            )
    sip_lines = [(x[1] or x[2]) for x in ts["sip"]]
    want = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"]
    got = [(line.split()[0] if not line.startswith("SIP/2.0") else line.split()[1]) for line in sip_lines]
    if got != want:
        raise RuntimeError(f"tshark SIP sequence {got} != {want}")
    upgrade = next((x for x in ts["ws"] if x[1] == "GET"), None)
    switch = next((x for x in ts["ws"] if x[2] == "101"), None)
    if not upgrade or not switch or "sip" not in (switch[6] or ""):
        raise RuntimeError(f"tshark sees no WebSocket upgrade with protocol sip: {ts['ws']}")

    # transport "sip-websocket": tshark hands the WebSocket payload to its SIP/SDP dissectors (sdp.media_attr)
    sdps = [
        sdp_facts(uacr["local_sdp"], "offer", "sip-websocket", False),
        sdp_facts(uasr["local_sdp"], "answer", "sip-websocket", False),
    ]
    attrs = {a.lower() for row in ts["sdp_attrs"] for a in row}
    for s in sdps:
        for alg, val in s["fingerprint"].items():
            colon = ":".join(val[i : i + 2] for i in range(0, len(val), 2))
            if f"fingerprint:{alg} {colon}" not in attrs:
                raise RuntimeError(f"tshark does not see the {s['role']} {alg} fingerprint in SIP/SDP")
    sdps[0]["sip"] = "INVITE"  # SIP over WebSocket (RFC 7118)
    sdps[1]["sip"] = "200 OK"
    cands = [
        {**c, "side": side}
        for side, r in (("uac", uacr), ("uas", uasr))
        for c in candidates_from_sdp(r["local_sdp"])
    ]
    private = [c for c in cands if c["scope"] != "public"]
    ua = uasr.get("user_agent_header")
    server = uacr.get("server_header")
    ws_ep = [UAC_IP, f"{UAS_IP}:{WS_PORT}"]
    return {
        "description": "SIP over plain WebSocket (RFC 7118, Sec-WebSocket-Protocol: sip): INVITE/200 OK with aiortc "
        "SDPs, 3 s DTLS-SRTP audio, BYE",
        "stacks": {},
        "keylog": keylog.name,
        "findings": [
            {
                "slug": "signalling-plaintext",
                "endpoints": ws_ep,
                "evidence": {"transport": "websocket", "sip": True},
            },
            {
                "slug": "software-disclosure",
                "endpoints": ws_ep,
                "evidence": {
                    "sip_user_agent": ua,
                    "sip_server": server,
                    "ws_upgrade_user_agent": upgrade[3] or None,
                    "http_server": switch[4] or None,
                },
            },
            *(
                [{"slug": "ice-private-ip-exposed", "endpoints": sorted({c["address"] for c in private})}]
                if private
                else []
            ),
        ],
        "absent_findings": [
            "sdes-key-exposed",
            "sdp-plain-rtp-offered",
            "rtp-unencrypted",
            "dtls-weak-version",
            "dtls-weak-cipher",
            "dtls-cert-weak",
            "dtls-handshake-failed",
            "srtp-null-cipher",
            "srtp-weak-profile",
            "dtls-fingerprint-mismatch",
            "fingerprint-weak-hash",
            "signalling-weak-tls",
            "stun-no-integrity",
            "turn-open-relay",
            "turn-internal-peer",
            *([] if private else ["ice-private-ip-exposed"]),
        ],
        "sip": {
            "uac_sent": uacr["sip_sent"],
            "uas_sent": uasr["sip_sent"],
            "ws_protocol": uasr.get("ws_protocol"),
            "user_agent": ua,
            "server": server,
            "tshark_frames": [int(x[0]) for x in ts["sip"]],
        },
        "dtls": dtls,
        "sdp": sdps,
        "rtp": rtp,
        "stun": stun,
        "candidates": cands,
        "notes": (
            "SIP composed by our UAs (lab/scenarios/sip_ws.py) over aiohttp's WebSocket client/server; SDPs, "
            "ICE, DTLS, RTP from aiortc 1.16 (in-process records via lab.peer hooks). tshark confirms the SIP "
            "sequence INVITE/100/180/200/ACK/BYE/200 inside WebSocket, the 101 upgrade with protocol sip, "
            "RTP counts per SSRC (--enable-heuristic rtp_udp), the SDP fingerprints (sdp.media_attr) and, with "
            "sip_ws.keylog, the DTLS 1.2 handshake. "
            "aiortc makes no mDNS candidates: host candidates carry raw (documentation, i.e. public) "
            "addresses; RFC 7118 random '.invalid' host in Via/Contact."
        ),
    }


SCENARIOS = {NAME: sip_ws}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lab.scenarios.sip_ws")
    ap.add_argument("role", choices=["uac", "uas"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--keylog")
    args = ap.parse_args(argv)
    asyncio.run(uac(args) if args.role == "uac" else uas(args))


if __name__ == "__main__":
    main()
