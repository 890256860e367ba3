"""One aiortc peer for the lab, run inside a host's namespace; writes what its own stack did as JSON.

    python lab/peer.py --role offer|answer --out result.json [options]

Signalling:
- ``--signal ws://H:P`` or ``wss://H:P`` (with ``--cafile``): WebSocket ``/ws/{room}/{role}`` on
  lab/signalling_server.py; messages ``{"type": "offer"|"answer", "sdp": ...}`` and, with ``--trickle``,
  the SDP without candidates followed by ``{"candidate": "candidate:…", "sdpMid":…, "sdpMLineIndex":…}``
  and ``{"candidate": null}``. ``--config-url`` makes an HTTPS GET first.
- ``--http-listen H:P`` (answerer) / ``--http-offer URL`` (offerer): one HTTP POST of the offer, the answer
  in the response (no trickle).

Ground truth is taken in-process (aiortc/aioice/pyOpenSSL objects, not the wire): the SDP as sent and as
received, every STUN message aioice sent (and received from a TURN server), every RTP packet handed to SRTP
per SSRC, the DTLS connection's version / cipher / SRTP profile / both certificates / client random, and
getStats(). With ``--keylog`` the TLS keys of the signalling connections and the DTLS master secret
(CLIENT_RANDOM line) are appended to that file.

``--media-report PATH`` (opt-in, for injection scenarios): once connected, the peer writes its selected ICE
pair, its senders' SSRCs and the RTP it has sent so far to PATH (read by the scenario mid-call), and records
what arrived at its sockets: non-STUN datagrams per source address, and every SRTP/SRTCP packet its libsrtp
session accepted or rejected, per SSRC and with libsrtp's reason (``srtp_rx``, ``rx_by_source``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import ssl
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiohttp import web
from aioice import stun
from aioice.ice import StunProtocol
from aioice.turn import TurnClientMixin, TurnClientUdpProtocol, TurnTransport, is_channel_data
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
    rtcdtlstransport,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

REC: dict[str, Any] = {
    "stun_sent_direct": Counter(),
    "stun_sent_relayed": Counter(),
    "stun_sent_turn": Counter(),
    "stun_recv_turn": Counter(),
    "stun_recv": Counter(),
    "stun_sent_to": {},
    "stun_recv_from": {},
    "xor_mapped": [],
    "rtp_sent": {},
    "rtcp_sent": 0,
    "dtls": [],
    "dc_sent": [],
    "dc_received": [],
    "turn_software": [],
    "turn_data_indications": [],
}
KEYLOG: Path | None = None


def stun_name(msg: stun.Message) -> str:
    cls = {
        stun.Class.REQUEST: "request",
        stun.Class.INDICATION: "indication",
        stun.Class.RESPONSE: "success",
        stun.Class.ERROR: "error",
    }[msg.message_class]
    return f"{msg.message_method.name.title().replace('_', '')}/{cls}"


def install_hooks() -> None:
    orig_ice_send = StunProtocol.send_stun

    def ice_send(self: StunProtocol, message: stun.Message, addr: tuple[str, int]) -> None:
        relayed = isinstance(self.transport, TurnTransport)
        REC["stun_sent_relayed" if relayed else "stun_sent_direct"][stun_name(message)] += 1
        if not relayed:  # per destination: behind a NAT, checks toward private addresses never leave the LAN
            REC["stun_sent_to"].setdefault(addr[0], Counter())[stun_name(message)] += 1
        return orig_ice_send(self, message, addr)

    StunProtocol.send_stun = ice_send  # type: ignore[method-assign]

    orig_ice_recv = StunProtocol.datagram_received

    def ice_recv(self: StunProtocol, data: bytes, addr: tuple) -> None:
        try:
            msg = stun.parse_message(data)
            REC["stun_recv"][stun_name(msg)] += 1
            REC["stun_recv_from"].setdefault(addr[0], Counter())[stun_name(msg)] += 1
            mapped = msg.attributes.get("XOR-MAPPED-ADDRESS")
            if (
                mapped
                and msg.message_class == stun.Class.RESPONSE
                and not isinstance(self.transport, TurnTransport)
            ):
                sock = self.transport.get_extra_info("sockname")
                row = {"from": hp(addr[0], addr[1]), "local": hp(sock[0], sock[1]), "mapped": hp(*mapped)}
                if row not in REC["xor_mapped"]:  # what the STUN server (or the other peer) saw us as
                    REC["xor_mapped"].append(row)
        except ValueError:
            pass
        return orig_ice_recv(self, data, addr)

    StunProtocol.datagram_received = ice_recv  # type: ignore[method-assign]

    orig_turn_send = TurnClientMixin.send_stun

    def turn_send(self: TurnClientMixin, message: stun.Message, addr: tuple[str, int]) -> None:
        REC["stun_sent_turn"][stun_name(message)] += 1
        return orig_turn_send(self, message, addr)

    TurnClientMixin.send_stun = turn_send  # type: ignore[method-assign]

    orig_turn_recv = TurnClientMixin.datagram_received

    def turn_recv(self: TurnClientMixin, data: bytes, addr: tuple[str, int]) -> None:
        if not (len(data) >= 4 and is_channel_data(data)):
            try:
                msg = stun.parse_message(data)
                REC["stun_recv_turn"][stun_name(msg)] += 1
                if msg.message_method == stun.Method.DATA and "DATA" in msg.attributes:
                    peer = msg.attributes.get("XOR-PEER-ADDRESS") or ("?", 0)
                    REC["turn_data_indications"].append(
                        {
                            "peer": hp(peer[0], peer[1]),
                            "data": msg.attributes["DATA"].decode(errors="replace"),
                        }
                    )
                sw = msg.attributes.get("SOFTWARE")
                if sw and sw not in REC["turn_software"]:
                    REC["turn_software"].append(sw)
            except ValueError:
                pass
        return orig_turn_recv(self, data, addr)

    TurnClientMixin.datagram_received = turn_recv  # type: ignore[method-assign]

    # Media counted where it leaves the stack for the socket (after SRTP, whose header stays in clear):
    # direct: StunProtocol.send_data -> sendto; relayed: TurnClientUdpProtocol._send (ChannelData).
    orig_send_data = StunProtocol.send_data

    async def send_data(self: StunProtocol, data: bytes, addr: tuple) -> None:
        if not isinstance(self.transport, TurnTransport):
            lc = self.local_candidate
            note_media(data, hp(lc.host, lc.port), hp(addr[0], addr[1]))
        return await orig_send_data(self, data, addr)

    StunProtocol.send_data = send_data  # type: ignore[method-assign]

    orig_turn_raw = TurnClientUdpProtocol._send

    def turn_raw(self: TurnClientUdpProtocol, data: bytes) -> None:
        if len(data) >= 4 and is_channel_data(data):
            sock = self.transport.get_extra_info("sockname")
            note_media(data[4:], hp(sock[0], sock[1]), hp(self.server[0], self.server[1]))
        return orig_turn_raw(self, data)

    TurnClientUdpProtocol._send = turn_raw  # type: ignore[method-assign]

    T = rtcdtlstransport.RTCDtlsTransport
    orig_start = T.start

    async def start(self: Any, remoteParameters: Any) -> None:
        await orig_start(self, remoteParameters)
        REC["dtls"].append(dtls_facts(self, remoteParameters))

    T.start = start  # type: ignore[method-assign]


def count_received_media() -> None:
    """--media-report: count what reaches this peer's sockets and what its libsrtp makes of it.

    aioice hands every non-STUN datagram of every candidate socket to aiortc whatever its source (it keeps no
    per-address filter), and aiortc's RTCDtlsTransport runs each RTP/RTCP one through its receive-side
    pylibsrtp Session. The Session class aiortc uses is replaced by a subclass that counts, per SSRC, packets
    accepted and packets rejected (with libsrtp's error text); the sending Session only protects, so it counts
    nothing. RTCP this peer sends is also counted per sender SSRC (``rtcp_sent_by_ssrc``), and the last RTP
    sequence number it sent per SSRC is kept (``rtp_last_seq``, in the mid-call report). Nothing else
    changes: the packets are processed exactly as before."""
    import pylibsrtp

    REC.setdefault("rtcp_sent_by_ssrc", Counter())
    REC.setdefault("rtp_last_seq", {})
    rx: dict[str, dict[str, Any]] = REC.setdefault("srtp_rx", {})
    by_source: dict[str, Counter] = REC.setdefault("rx_by_source", {})

    def note(kind: str, data: bytes, error: str | None) -> None:
        if len(data) < 12:
            return
        ssrc = struct.unpack("!L", data[4:8] if kind == "rtcp" else data[8:12])[0]
        row = rx.setdefault(
            str(ssrc),
            {
                "rtp_accepted": 0,
                "rtp_rejected": 0,
                "rtcp_accepted": 0,
                "rtcp_rejected": 0,
                "reasons": Counter(),
            },
        )
        row[f"{kind}_{'rejected' if error else 'accepted'}"] += 1
        if error:
            row["reasons"][f"{kind}: {error}"] += 1

    def counted(kind: str, unprotect: Any, packet: bytes) -> bytes:
        try:
            out = unprotect(packet)
        except pylibsrtp.Error as e:
            note(kind, packet, str(e))
            raise
        note(kind, packet, None)
        return out

    class CountingSession(pylibsrtp.Session):
        def unprotect(self, packet: bytes) -> bytes:
            return counted("rtp", super().unprotect, packet)

        def unprotect_rtcp(self, packet: bytes) -> bytes:
            return counted("rtcp", super().unprotect_rtcp, packet)

    rtcdtlstransport.Session = CountingSession  # type: ignore[attr-defined, misc]

    orig_recv = StunProtocol.datagram_received

    def recv(self: StunProtocol, data: bytes, addr: tuple) -> None:
        try:
            stun.parse_message(data)
        except ValueError:
            # RFC 7983: 20..63 DTLS, 128..191 RTP/RTCP
            b = data[0] if data else 0
            kind = "dtls" if 20 <= b <= 63 else "rtp/rtcp" if 128 <= b <= 191 else "other"
            by_source.setdefault(hp(addr[0], addr[1]), Counter())[kind] += 1
        return orig_recv(self, data, addr)

    StunProtocol.datagram_received = recv  # type: ignore[method-assign]


def disable_check_integrity() -> None:
    """--no-integrity: aioice sends its ICE connectivity checks (Binding requests) without
    MESSAGE-INTEGRITY (FINGERPRINT kept); everything else unchanged. The other side's aioice answers
    them with 400 Bad Request (RFC 8489 section 9.1.3)."""
    orig_request = StunProtocol.request

    async def request(
        self: StunProtocol,
        request: stun.Message,
        addr: tuple,
        integrity_key: Any = None,
        retransmissions: Any = None,
    ) -> Any:
        if (
            integrity_key is not None
            and request.message_method == stun.Method.BINDING
            and request.message_class == stun.Class.REQUEST
            and "USERNAME" in request.attributes
        ):
            REC["checks_without_integrity"] = REC.get("checks_without_integrity", 0) + 1
            request.add_fingerprint()
            integrity_key = None
        try:
            return await orig_request(
                self, request, addr, integrity_key=integrity_key, retransmissions=retransmissions
            )
        except stun.TransactionError as exc:
            if exc.response is not None:
                REC.setdefault("check_errors", Counter())[str(exc.response.attributes.get("ERROR-CODE"))] += 1
            raise

    StunProtocol.request = request  # type: ignore[method-assign]


def hp(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def note_media(data: bytes, src: str, dst: str) -> None:
    # RFC 7983: 128..191 -> RTP/RTCP; RTCP packet types 192..223 (RFC 5761 §4)
    if len(data) < 12 or not 128 <= data[0] <= 191:
        return
    if 192 <= data[1] <= 223:
        REC["rtcp_sent"] += 1
        if "rtcp_sent_by_ssrc" in REC:  # --media-report: SRTCP per sender SSRC (first packet of the compound)
            REC["rtcp_sent_by_ssrc"][str(struct.unpack("!L", data[4:8])[0])] += 1
        return
    ssrc = struct.unpack("!L", data[8:12])[0]
    row = REC["rtp_sent"].setdefault(str(ssrc), {"packets": 0, "pt": data[1] & 0x7F, "src": src, "dst": dst})
    row["packets"] += 1
    if "rtp_last_seq" in REC:  # --media-report: the sequence number last sent per SSRC
        REC["rtp_last_seq"][str(ssrc)] = struct.unpack("!H", data[2:4])[0]


def pair_of(dtls: Any) -> dict[str, Any]:
    conn = dtls.transport._connection
    pair = conn._nominated.get(1)
    if pair is None:
        return {}
    lc, rc = pair.local_candidate, pair.remote_candidate
    out = {
        "local": hp(lc.host, lc.port),
        "remote": hp(rc.host, rc.port),
        "local_type": lc.type,
        "remote_type": rc.type,
    }
    if isinstance(pair.protocol.transport, TurnTransport):
        inner = pair.protocol.transport._TurnTransport__inner_protocol  # type: ignore[attr-defined]
        sock = inner.transport.get_extra_info("sockname")
        out["turn_socket"] = hp(sock[0], sock[1])
        out["turn_server"] = hp(inner.server[0], inner.server[1])
    return out


def cert_sha256(x509: Any) -> str | None:
    if x509 is None:
        return None
    return hashlib.sha256(x509.to_cryptography().public_bytes(Encoding.DER)).hexdigest()


def dtls_facts(t: Any, remote: Any) -> dict[str, Any]:
    c = t._ssl
    facts: dict[str, Any] = {"role": t._role, "state": t.state, "pair": pair_of(t)}
    if c is None:
        return facts
    prof = c.get_selected_srtp_profile()
    facts.update(
        version=c.get_protocol_version_name(),
        cipher_openssl=c.get_cipher_name(),
        srtp_profile_openssl=prof.decode() if prof else None,
        local_cert_sha256=cert_sha256(c.get_certificate()),
        peer_cert_sha256=cert_sha256(c.get_peer_certificate()),
        client_random=c.client_random().hex() if c.client_random() else None,
        remote_fingerprints=[{"algorithm": f.algorithm, "value": f.value} for f in remote.fingerprints],
        handshake_done=bool(t.encrypted),
    )
    if KEYLOG is not None and c.client_random() and c.master_key():
        with open(KEYLOG, "a") as fh:
            fh.write(f"CLIENT_RANDOM {c.client_random().hex()} {c.master_key().hex()}\n")
    return facts


class PatternVideo(VideoStreamTrack):
    """Small moving test pattern (320x240) so VP8 has something to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.zeros((240, 320, 3), np.uint8)
        x = (self.n * 4) % 320
        img[:, x : x + 20] = (255, 200, 0)
        img[(self.n * 2) % 240 : (self.n * 2) % 240 + 10, :] = (0, 100, 255)
        self.n += 1
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def strip_candidates(sdp: str) -> tuple[str, list[tuple[str, int, str]]]:
    lines, cands, mid, idx = [], [], None, -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            idx += 1
        if line.startswith("a=mid:"):
            mid = line.split(":", 1)[1]
        if line.startswith("a=candidate:"):
            cands.append((mid or str(idx), idx, line[2:]))
            continue
        if line.startswith("a=end-of-candidates"):
            continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n", cands


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        servers = [RTCIceServer(**s) for s in json.loads(args.ice_servers)] if args.ice_servers else []
        cfg = RTCConfiguration(
            iceServers=servers or None,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=RTCIceTransportPolicy.RELAY if args.relay_only else RTCIceTransportPolicy.ALL,
        )
        self.pc = RTCPeerConnection(cfg)
        self.identity()
        self.connected = asyncio.Event()
        self.finished = asyncio.Event()
        self.dc_done = asyncio.Event()
        self.expect = json.loads(args.expect_messages) if args.expect_messages else []

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            REC.setdefault("states", []).append(self.pc.connectionState)
            if self.pc.connectionState == "connected":
                self.connected.set()
            if self.pc.connectionState in ("failed", "closed"):
                self.finished.set()

        @self.pc.on("datachannel")
        def on_dc(channel: Any) -> None:
            self.wire_channel(channel)

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            async def drain() -> None:
                while True:
                    try:
                        await track.recv()
                    except MediaStreamError:
                        return

            asyncio.ensure_future(drain())

    def identity(self) -> None:
        """--certificate PEM: present that key and certificate in DTLS (and its fingerprint in the SDP)
        instead of the fresh one aiortc made for this connection — a cloned identity; --save-certificate PEM:
        write this connection's own key and certificate there (what a cloner would copy)."""
        a = self.args
        certs = self.pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
        if a.certificate:
            data = Path(a.certificate).read_bytes()
            key = load_pem_private_key(data, password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):  # aiortc offers ECDSA cipher suites only
                raise SystemExit(f"{a.certificate}: not an EC private key ({type(key).__name__})")
            certs[:] = [rtcdtlstransport.RTCCertificate(key=key, cert=x509.load_pem_x509_certificate(data))]
        cert = certs[0]._cert
        if a.save_certificate:
            key_pem = certs[0]._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            pem = key_pem + cert.public_bytes(Encoding.PEM)
            out = Path(a.save_certificate)
            out.write_bytes(pem)
            out.chmod(0o600)
        REC["certificate"] = {
            "sha256": hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
            "subject": cert.subject.rfc4514_string(),
            "source": "loaded" if a.certificate else "generated by aiortc",
        }

    def wire_channel(self, channel: Any) -> None:
        self.channel = channel

        @channel.on("message")
        def on_message(message: Any) -> None:
            REC["dc_received"].append({"label": channel.label, "message": message})
            if len([m for m in REC["dc_received"]]) >= len(self.expect):
                self.dc_done.set()

        @channel.on("open")
        def on_open() -> None:
            self.send_messages()

        if channel.readyState == "open":
            self.send_messages()

    def send_messages(self) -> None:
        if getattr(self, "_sent", False):
            return
        self._sent = True
        for m in json.loads(self.args.messages or "[]"):
            self.channel.send(m)
            REC["dc_sent"].append({"label": self.channel.label, "message": m})

    def add_media(self) -> None:
        kinds = [k for k in (self.args.media or "").split(",") if k]
        if "audio" in kinds:
            self.pc.addTrack(AudioStreamTrack())
        if "video" in kinds:
            self.pc.addTrack(PatternVideo())
        if self.args.datachannel:
            self.wire_channel(self.pc.createDataChannel(self.args.datachannel))
        if not self.expect:
            self.dc_done.set()

    def ssl_ctx(self) -> ssl.SSLContext | None:
        if not self.args.cafile:
            return None
        ctx = ssl.create_default_context(cafile=self.args.cafile)
        if self.args.tls10:
            # TLS 1.0 only, security level 0 (what an old signalling client would negotiate)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if self.args.keylog:
            ctx.keylog_filename = self.args.keylog
        return ctx

    async def local_description(self, kind: str) -> str:
        if kind == "offer":
            await self.pc.setLocalDescription(await self.pc.createOffer())
        else:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp = self.pc.localDescription.sdp
        if self.args.fingerprint_hash:
            sdp = self.rewrite_fingerprint(sdp, self.args.fingerprint_hash)
        return sdp

    def rewrite_fingerprint(self, sdp: str, alg: str) -> str:
        """--fingerprint-hash ALG: replace every a=fingerprint line of the SDP we are about to send by one
        line with ALG, computed from our own DTLS certificate (what aiortc would write for that hash)."""
        cert = self.pc._RTCPeerConnection__certificates[0]._cert  # type: ignore[attr-defined]
        der = cert.public_bytes(Encoding.DER)
        digest = hashlib.new(alg.replace("-", ""), der).hexdigest().upper()
        line = f"a=fingerprint:{alg} " + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        REC["sdp_as_generated"] = sdp
        REC["fingerprint_rewritten"] = {
            "algorithm": alg,
            "value": digest.lower(),
            "cert_sha256": hashlib.sha256(der).hexdigest(),
        }
        out, done = [], set()
        section = 0
        for ln in sdp.split("\r\n"):
            if ln.startswith("m="):
                section += 1
            if ln.startswith("a=fingerprint:"):
                if section not in done:
                    out.append(line)
                    done.add(section)
                continue
            out.append(ln)
        return "\r\n".join(out)

    async def run_ws(self) -> None:
        a = self.args
        ctx = self.ssl_ctx()
        async with aiohttp.ClientSession() as http:
            if a.config_url:
                async with http.get(a.config_url, ssl=ctx) as resp:
                    REC["config"] = await resp.json()
            url = f"{a.signal}/ws/{a.room}/{a.role}"
            async with http.ws_connect(url, ssl=ctx if ctx else False) as ws:
                if a.role == "offer":
                    self.add_media()
                    await self.send_description(ws, "offer")
                async for msg in ws:
                    data = json.loads(msg.data)
                    if data.get("type") in ("offer", "answer"):
                        REC["remote_sdp"] = data["sdp"]
                        await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], data["type"]))
                        if data["type"] == "offer":
                            self.add_media()
                            await self.send_description(ws, "answer")
                        if not a.trickle:
                            break
                    elif "candidate" in data:
                        REC.setdefault("remote_candidates", []).append(data["candidate"])
                        if data["candidate"]:
                            c = candidate_from_sdp(data["candidate"].split(":", 1)[1])
                            c.sdpMid, c.sdpMLineIndex = data.get("sdpMid"), data.get("sdpMLineIndex")
                            await self.pc.addIceCandidate(c)
                        else:
                            await self.pc.addIceCandidate(None)
                            break
                await self.converse()
                await ws.close()

    async def send_description(self, ws: Any, kind: str) -> None:
        sdp = await self.local_description(kind)
        REC["local_sdp_full"] = sdp
        if self.args.trickle:
            bare, cands = strip_candidates(sdp)
            await ws.send_str(json.dumps({"type": kind, "sdp": bare}))
            REC["local"] = {"sdp": bare}
            for mid, idx, cand in cands:
                await ws.send_str(json.dumps({"candidate": cand, "sdpMid": mid, "sdpMLineIndex": idx}))
                REC.setdefault("local_candidates", []).append(cand)
            await ws.send_str(json.dumps({"candidate": None}))
        else:
            await ws.send_str(json.dumps({"type": kind, "sdp": sdp}))
            REC["local"] = {"sdp": sdp}

    async def run_http_answer(self) -> None:
        host, port = self.args.http_listen.rsplit(":", 1)
        done = asyncio.Event()

        async def offer(request: web.Request) -> web.Response:
            body = await request.json()
            REC["remote_sdp"] = body["sdp"]
            await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
            self.add_media()
            sdp = await self.local_description("answer")
            REC["local"] = {"sdp": sdp}
            done.set()
            return web.json_response({"type": "answer", "sdp": sdp})

        app = web.Application()
        app.router.add_post("/offer", offer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, host, int(port)).start()
        Path(self.args.ready).write_text("ok") if self.args.ready else None
        await done.wait()
        await self.converse()
        await runner.cleanup()

    async def run_http_offer(self) -> None:
        self.add_media()
        sdp = await self.local_description("offer")
        REC["local"] = {"sdp": sdp}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.args.http_offer, json={"type": "offer", "sdp": sdp}) as resp,
        ):
            ans = await resp.json()
        REC["remote_sdp"] = ans["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(ans["sdp"], ans["type"]))
        await self.converse()

    async def converse(self) -> None:
        """Wait for the connection, let media / messages flow, then close."""
        a = self.args
        await asyncio.wait(
            [asyncio.ensure_future(self.connected.wait()), asyncio.ensure_future(self.finished.wait())],
            timeout=a.timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        REC["connected"] = self.connected.is_set()
        if self.connected.is_set() and a.media_report:
            asyncio.ensure_future(self.write_media_report())
        if self.connected.is_set():
            t0 = time.monotonic()
            await asyncio.sleep(a.duration)
            if self.expect:
                await asyncio.wait_for(self.dc_done.wait(), timeout=a.timeout)
            await asyncio.sleep(max(0.0, a.duration - (time.monotonic() - t0)))
            REC["stats"] = await self.stats()
            # let the other side finish its own exchange before closing
            await asyncio.sleep(a.linger)
        else:
            await asyncio.sleep(a.linger)
        REC["senders"] = [
            {"kind": s.kind, "ssrc": s._ssrc, "rtx_ssrc": getattr(s, "_rtx_ssrc", None)}
            for s in self.pc.getSenders()
        ]
        REC["ice_connection_state"] = self.pc.iceConnectionState
        await self.pc.close()

    async def write_media_report(self) -> None:
        """--media-report: selected pair, own SSRCs and RTP sent so far, written once media flows."""
        deadline = time.monotonic() + self.args.timeout
        while not REC["rtp_sent"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        senders = [s for s in self.pc.getSenders() if s.transport is not None]
        report = {
            "role": self.args.role,
            "pair": pair_of(senders[0].transport) if senders else {},
            "senders": [
                {"kind": s.kind, "ssrc": s._ssrc, "rtx_ssrc": getattr(s, "_rtx_ssrc", None)} for s in senders
            ],
            "rtp_sent": json.loads(json.dumps(REC["rtp_sent"])),
            "rtp_last_seq": dict(REC.get("rtp_last_seq", {})),
            "written_monotonic": time.monotonic(),
        }
        tmp = Path(self.args.media_report + ".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        tmp.rename(self.args.media_report)
        REC["media_report"] = report

    async def stats(self) -> list[dict]:
        report = await self.pc.getStats()
        rows = []
        for s in report.values():
            d = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in vars(s).items()}
            rows.append(d)
        return rows


async def main() -> None:
    global KEYLOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=["offer", "answer"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--signal")
    ap.add_argument("--room", default="lab")
    ap.add_argument("--config-url")
    ap.add_argument("--cafile")
    ap.add_argument("--http-listen")
    ap.add_argument("--http-offer")
    ap.add_argument("--ready")
    ap.add_argument("--trickle", action="store_true")
    ap.add_argument("--keylog")
    ap.add_argument("--media", default="")
    ap.add_argument("--datachannel")
    ap.add_argument("--messages", help="JSON list of text messages to send on the data channel")
    ap.add_argument("--expect-messages", help="JSON list of messages expected from the other side")
    ap.add_argument("--ice-servers", help='JSON list of {"urls":…, "username":…, "credential":…}')
    ap.add_argument("--relay-only", action="store_true")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--linger", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument(
        "--fingerprint-hash", help="send our SDP with a=fingerprint in this hash only (e.g. sha-1)"
    )
    ap.add_argument("--no-integrity", action="store_true", help="ICE checks without MESSAGE-INTEGRITY")
    ap.add_argument("--certificate", help="PEM (key + certificate) to present in DTLS instead of a fresh one")
    ap.add_argument("--save-certificate", help="write this connection's DTLS key + certificate (PEM) here")
    ap.add_argument("--tls10", action="store_true", help="signalling TLS client limited to TLS 1.0")
    ap.add_argument(
        "--media-report",
        help="write selected pair + own SSRCs here once media flows; count what "
        "arrives (per source) and what libsrtp accepts/rejects (per SSRC)",
    )
    args = ap.parse_args()
    KEYLOG = Path(args.keylog) if args.keylog else None
    install_hooks()
    if args.no_integrity:
        disable_check_integrity()
    if args.media_report:
        count_received_media()
    peer = Peer(args)
    REC["role"] = args.role
    if args.http_listen:
        job = peer.run_http_answer()
    elif args.http_offer:
        job = peer.run_http_offer()
    else:
        job = peer.run_ws()
    try:
        await asyncio.wait_for(job, timeout=3 * args.timeout + args.duration)
    except asyncio.TimeoutError:
        REC["error"] = "timeout"
    finally:
        REC["local_sdp"] = REC.get("local", {}).get("sdp")
        Path(args.out).write_text(
            json.dumps(REC, indent=1, default=lambda o: dict(o) if isinstance(o, Counter) else str(o))
        )


if __name__ == "__main__":
    asyncio.run(main())
