"""Signalling server for the lab: aiohttp, HTTPS/WSS (with a keylog) or plain HTTP/WS.

    python lab/signalling_server.py --host 192.0.2.1 --port 8443 [--cert C --key K] [--keylog F]
                                    [--rewrite-fingerprint] [--log out.json]

- ``GET /config`` → JSON {"rooms": "...", "server": "rtcf-lab"} (an HTTPS request before the WebSocket).
- ``GET /ws/{room}/{role}`` (role ``offer`` or ``answer``) → WebSocket; every text message is relayed to the
  other role of the room (queued until it connects).
- ``--rewrite-fingerprint``: act as a man in the middle: in JSON messages from the answerer that carry an SDP
  answer, replace every ``a=fingerprint:<hash>`` value with that hash of a certificate of our own.
  What was received and what was forwarded is written to ``--log``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import signal
import ssl
from collections import defaultdict
from pathlib import Path

from aiohttp import WSMsgType, web


class Rooms:
    def __init__(self, rewrite: bool, fake_fp: dict[str, str]) -> None:
        self.sockets: dict[tuple[str, str], web.WebSocketResponse] = {}
        self.pending: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.rewrite = rewrite
        self.fake_fp = fake_fp
        self.log: list[dict] = []

    def transform(self, role: str, text: str) -> str:
        if not (self.rewrite and role == "answer"):
            return text
        try:
            msg = json.loads(text)
        except ValueError:
            return text
        if not (isinstance(msg, dict) and msg.get("type") == "answer" and "sdp" in msg):
            return text
        before = msg["sdp"]
        after = re.sub(
            r"a=fingerprint:(sha-\d+) ([0-9A-Fa-f:]+)",
            lambda m: f"a=fingerprint:{m.group(1)} {self.fake_fp[m.group(1).lower()]}",
            before,
        )
        msg["sdp"] = after
        self.log.append({"event": "rewrite", "sdp_received": before, "sdp_forwarded": after})
        return json.dumps(msg)


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    rooms: Rooms = request.app["rooms"]
    note_tls(request)
    room, role = request.match_info["room"], request.match_info["role"]
    other = "answer" if role == "offer" else "offer"
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    rooms.sockets[(room, role)] = ws
    for text in rooms.pending.pop((room, role), []):
        await ws.send_str(text)
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        text = rooms.transform(role, msg.data)
        peer = rooms.sockets.get((room, other))
        if peer is not None and not peer.closed:
            await peer.send_str(text)
        else:
            rooms.pending[(room, other)].append(text)
    rooms.sockets.pop((room, role), None)
    return ws


def note_tls(request: web.Request) -> None:
    """What the server's own TLS stack negotiated on this connection (Python ssl / OpenSSL)."""
    so = request.transport.get_extra_info("ssl_object") if request.transport else None
    if so is not None:
        peer = request.transport.get_extra_info("peername")
        request.app["rooms"].log.append(
            {
                "event": "tls",
                "path": request.path,
                "peer": f"{peer[0]}:{peer[1]}",
                "version": so.version(),
                "cipher": so.cipher()[0],
            }
        )


async def config_handler(request: web.Request) -> web.Response:
    note_tls(request)
    return web.json_response({"server": "rtcf-lab", "ws": "/ws/{room}/{role}"})


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--keylog")
    ap.add_argument("--tls10", action="store_true", help="TLS 1.0 only, security level 0")
    ap.add_argument("--rewrite-fingerprint", action="store_true")
    ap.add_argument("--fake-cert", help="PEM certificate whose SHA-256 replaces the answer's fingerprint")
    ap.add_argument("--log")
    ap.add_argument("--ready", help="file to create once listening")
    args = ap.parse_args()

    fake_fp: dict[str, str] = {}
    if args.fake_cert:
        der = ssl.PEM_cert_to_DER_cert(Path(args.fake_cert).read_text())
        for alg in ("sha-256", "sha-384", "sha-512"):
            h = hashlib.new(alg.replace("-", ""), der).hexdigest().upper()
            fake_fp[alg] = ":".join(h[i : i + 2] for i in range(0, len(h), 2))
    app = web.Application()
    app["rooms"] = rooms = Rooms(args.rewrite_fingerprint, fake_fp)
    app.router.add_get("/config", config_handler)
    app.router.add_get("/ws/{room}/{role}", ws_handler)
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.tls10:
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if args.keylog:
            ctx.keylog_filename = args.keylog
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port, ssl_context=ctx).start()
    if args.ready:
        Path(args.ready).write_text("ok")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    if args.log:
        Path(args.log).write_text(json.dumps({"fake_fingerprints": fake_fp, "events": rooms.log}, indent=1))
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
