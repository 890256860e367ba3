"""SDES-keyed SRTP and plain RTP from ffmpeg, announced by an SDP sent WHIP-style over plain HTTP or HTTPS.

Scenario ``sdes_plain_rtp``:

- ``pub`` (192.0.2.10) asks ffmpeg which SDP it announces for two RTP outputs: PCMU as SRTP keyed by SDES
  (``-srtp_out_suite AES_CM_128_HMAC_SHA1_80 -srtp_out_params KEY`` → ``a=crypto:1 ... inline:KEY``) and PCMA as
  plain RTP. ffmpeg 5.1 writes ``RTP/AVP`` on both m-lines (it does not write ``RTP/SAVP`` for SRTP): the SRTP
  stream is recognisable only by its ``a=crypto`` line.
- ``pub`` POSTs that SDP (``application/sdp``) to an aiohttp server on ``srv`` (192.0.2.20:8080) over plain
  HTTP with a WHIP bearer token (``Authorization: Bearer``, RFC 9725 §4.5); the server checks it, answers
  ``201 Created`` with an answer SDP carrying its own ``a=crypto`` key and a session cookie (``Set-Cookie``), and
  starts an ffmpeg receiver from the offer (it decrypts the SRTP stream with the offered key).
- ffmpeg on ``pub`` sends 5 s of two sine tones; ``pub`` then DELETEs the resource (WHIP teardown, with the
  token and the cookie), the server
  stops the receiver, and the decoded audio levels (ffmpeg ``volumedetect``) show the SRTP was decrypted with the
  key that crossed the wire in clear.

Scenario ``sdes_https``: the same call (same hosts and addresses, same programs), but the WHIP endpoint is
HTTPS on 192.0.2.20:8443 (aiohttp with a self-signed ECDSA certificate from ``lab.truthlib.make_cert``; the
client trusts it as its CA file). Python's ssl negotiates TLS 1.3; the client writes its TLS secrets to
``sdes_https.keylog`` (``SSLContext.keylog_filename``), so the SDPs, the bearer token and the cookie can be
read only with the keylog. The media are unchanged: the SDES key now travels inside TLS, but the PCMA stream
is still plain RTP.

Run by ``python -m lab.generate sdes_plain_rtp sdes_https``. The module is also the server/client program run
inside the namespaces: ``python -m lab.scenarios.ffmpeg_sdes serve|post|delete ...`` (``--cert/--key`` on the
server and ``--cafile/--keylog`` on the client for HTTPS).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = "sdes_plain_rtp"
PUB_IP, SRV_IP = "192.0.2.10", "192.0.2.20"
HTTP_PORT = 8080
HTTPS_PORT = 8443
SRTP_PORT, RTP_PORT = 5004, 5006  # RTCP on +1 (ffmpeg's default)
SUITE = "AES_CM_128_HMAC_SHA1_80"
SECONDS = 5


def _ffmpeg_sender(sdp_file: Path, key: str, ssrcs: tuple[int, int], seconds: float) -> list[str]:
    """One ffmpeg: 440 Hz PCMU as SDES-SRTP to SRTP_PORT, 660 Hz PCMA as plain RTP to RTP_PORT, 20 ms packets."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "verbose",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=8000:samples_per_frame=160",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=660:sample_rate=8000:samples_per_frame=160",
        "-map",
        "0:a",
        "-t",
        str(seconds),
        "-c:a",
        "pcm_mulaw",
        "-payload_type",
        "0",
        "-ssrc",
        str(ssrcs[0]),
        "-f",
        "rtp",
        "-srtp_out_suite",
        SUITE,
        "-srtp_out_params",
        key,
        f"srtp://{SRV_IP}:{SRTP_PORT}",
        "-map",
        "1:a",
        "-t",
        str(seconds),
        "-c:a",
        "pcm_alaw",
        "-payload_type",
        "8",
        "-ssrc",
        str(ssrcs[1]),
        "-f",
        "rtp",
        f"rtp://{SRV_IP}:{RTP_PORT}",
        "-sdp_file",
        str(sdp_file),
    ]


def _muxed_counts(log: str) -> list[int]:
    """Packets muxed per output stream, from ffmpeg's own end-of-run statistics (verbose)."""
    return [int(m) for m in re.findall(r"Output stream #\d+:\d+ \(audio\): .*?; (\d+) packets muxed", log)]


# --------------------------------------------------------------------------------------------------------------
# programs run inside the namespaces


def _answer_sdp(offer: str, key: str) -> str:
    sess = secrets.randbelow(2**62)
    lines = ["v=0", f"o=- {sess} 1 IN IP4 {SRV_IP}", "s=rtcforensics WHIP lab", "t=0 0"]
    for m in re.findall(r"^m=.*?(?=^m=|\Z)", offer, flags=re.DOTALL | re.MULTILINE):
        mline = m.splitlines()[0]
        lines += [mline, f"c=IN IP4 {SRV_IP}", "a=recvonly"]
        crypto = re.search(r"^a=crypto:(\d+) (\S+) ", m, flags=re.MULTILINE)
        if crypto:
            lines.append(f"a=crypto:{crypto.group(1)} {crypto.group(2)} inline:{key}")
    return "\r\n".join(lines) + "\r\n"


def serve(args: argparse.Namespace) -> None:
    """aiohttp WHIP-style endpoint: POST application/sdp → 201 + answer; DELETE stops the receiver."""
    import asyncio

    from aiohttp import web

    work = Path(args.work)
    state: dict[str, subprocess.Popen] = {}

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {args.token}"

    async def post(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        if request.content_type != "application/sdp":
            return web.Response(status=415, text="expected application/sdp\n")
        offer = await request.text()
        (work / "offer_received.sdp").write_text(offer)
        key = base64.b64encode(os.urandom(30)).decode()
        answer = _answer_sdp(offer, key)
        (work / "answer_sent.sdp").write_text(answer)
        (work / "answer_key.txt").write_text(key)
        with open(work / "ffmpeg_rx.log", "wb") as log:
            state["rx"] = subprocess.Popen(
                [
                    "ffmpeg",
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "verbose",
                    "-y",
                    "-protocol_whitelist",
                    "file,udp,rtp",
                    "-i",
                    str(work / "offer_received.sdp"),
                    "-map",
                    "0:0",
                    str(work / "rx_srtp.wav"),
                    "-map",
                    "0:1",
                    str(work / "rx_rtp.wav"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await asyncio.sleep(0.5)  # let the receiver bind its ports before the publisher starts sending
        resp = web.Response(
            status=201,
            text=answer,
            content_type="application/sdp",
            headers={"Location": "/whip/lab/resource/1"},
        )
        state["cookie"] = secrets.token_urlsafe(18)
        (work / "session_cookie.txt").write_text(state["cookie"])
        resp.set_cookie("whip_session", state["cookie"], path="/whip", httponly=True)
        return resp

    async def delete(request: web.Request) -> web.Response:
        if not authorised(request) or request.cookies.get("whip_session") != state.get("cookie"):
            return web.Response(status=403)
        rx = state.pop("rx", None)
        if rx is not None:
            rx.send_signal(signal.SIGINT)
            try:
                rx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rx.kill()
        return web.Response(status=200, text="")

    app = web.Application()
    app.router.add_post("/whip/lab", post)
    app.router.add_delete("/whip/lab/resource/1", delete)
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    web.run_app(app, host=SRV_IP, port=args.port, ssl_context=ctx, print=None)


def client(args: argparse.Namespace) -> None:
    import asyncio

    import aiohttp

    ctx = None
    # the TLS version and cipher suite of each connection, as the client's OpenSSL reports them
    handshakes: list[dict] = []
    if args.cafile:  # HTTPS: trust the lab's self-signed certificate, write the TLS secrets to the keylog
        ctx = ssl.create_default_context(cafile=args.cafile)
        if args.keylog:
            ctx.keylog_filename = args.keylog

        class Recording(ssl.SSLObject):
            def do_handshake(self) -> None:
                super().do_handshake()  # raises SSLWantReadError until the handshake is complete
                handshakes.append({"tls_version": self.version(), "tls_cipher": self.cipher()[0]})

        ctx.sslobject_class = Recording

    def tls_facts() -> dict:
        return handshakes[-1] if handshakes else {}  # one connection per program run (POST or DELETE)

    async def go() -> dict:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx) if ctx else None) as s:
            if args.cmd == "post":
                body = Path(args.sdp).read_text()
                headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {args.token}"}
                async with s.post(args.url, data=body, headers=headers) as r:
                    tls = tls_facts()
                    cookie = r.cookies.get("whip_session")
                    return {
                        "status": r.status,
                        "location": r.headers.get("Location"),
                        "answer": await r.text(),
                        "server": r.headers.get("Server"),
                        "cookie": cookie.value if cookie else None,
                        **tls,
                    }
            headers = {"Authorization": f"Bearer {args.token}", "Cookie": f"whip_session={args.cookie}"}
            async with s.delete(args.url, headers=headers) as r:
                return {"status": r.status, **tls_facts()}

    result = asyncio.run(go())
    Path(args.result).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------------------------
# the scenario


def _tshark_rtp(cap: Path) -> tuple[Counter, Counter, list[list[str]]]:
    decode = []
    for p in (SRTP_PORT, RTP_PORT):
        decode += ["-d", f"udp.port=={p},rtp", "-d", f"udp.port=={p + 1},rtcp"]
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(cap),
            *decode,
            "-Y",
            "rtp",
            "-T",
            "fields",
            "-e",
            "rtp.ssrc",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.p_type",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines() if line]
    rtp = Counter(int(r[0], 16) for r in rows)
    out = subprocess.run(
        ["tshark", "-r", str(cap), *decode, "-Y", "rtcp", "-T", "fields", "-e", "udp.dstport"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rtcp = Counter(int(x) for x in out.split())
    return rtp, rtcp, rows


def _tshark_http(cap: Path, keylog: Path | None = None) -> list[list[str]]:
    """HTTP messages as tshark reads them (inside TLS with ``keylog``): frame, method, status, content type,
    User-Agent, Server."""
    from lab.truthlib import tshark_fields

    fields = [
        "frame.number",
        "http.request.method",
        "http.response.code",
        "http.content_type",
        "http.user_agent",
        "http.server",
    ]
    tls = ["-d", f"tcp.port=={HTTPS_PORT},tls"] if keylog else []
    rows = tshark_fields(cap, fields, display_filter="http", extra=tls, keylog=keylog, heuristics=False)
    return [r for r in rows if any(r)]


def _volume(wav: Path) -> dict:
    r = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(wav), "-af", "volumedetect", "-f", "null", "-"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    mean = re.search(r"mean_volume: (-?[\d.]+) dB", r.stderr)
    n = re.search(r"n_samples: (\d+)", r.stderr)
    return {"mean_volume_db": float(mean.group(1)) if mean else None, "samples": int(n.group(1)) if n else 0}


def _tshark_tls(cap: Path) -> list[list[str]]:
    """Every TLS ServerHello from the HTTPS port: frame, supported_versions (the TLS 1.3 marker), legacy
    version, cipher suite."""
    from lab.truthlib import tshark_fields

    fields = [
        "frame.number",
        "tls.handshake.extensions.supported_version",
        "tls.handshake.version",
        "tls.handshake.ciphersuite",
    ]
    rows = tshark_fields(
        cap,
        fields,
        display_filter=f"tls.handshake.type == 2 && tcp.srcport == {HTTPS_PORT}",
        extra=["-d", f"tcp.port=={HTTPS_PORT},tls"],
        heuristics=False,
    )
    return [r for r in rows if any(r)]


def sdes_plain_rtp(out: Path) -> dict:
    return _sdes_call(out, NAME, tls=False)


def sdes_https(out: Path) -> dict:
    return _sdes_call(out, "sdes_https", tls=True)


def _sdes_call(out: Path, name: str, tls: bool) -> dict:
    """The WHIP-style SDES call; ``tls``: the endpoint is HTTPS and the client writes its TLS keys to
    ``out / f"{name}.keylog"`` (otherwise plain HTTP, no keylog)."""
    from lab.netns import Lab
    from lab.truthlib import make_cert, workdir

    work = workdir(name)
    py = [sys.executable, "-m", "lab.scenarios.ffmpeg_sdes"]
    key = base64.b64encode(os.urandom(30)).decode()  # 16-byte master key + 14-byte salt (RFC 4568 §6.1)
    ssrcs = (secrets.randbits(31), secrets.randbits(31))  # ffmpeg's -ssrc is a signed int
    token = secrets.token_urlsafe(24)  # the WHIP bearer token (RFC 9725 §4.5), in clear over plain HTTP
    cap = out / f"{name}.pcapng"
    keylog = out / f"{name}.keylog" if tls else None
    port = HTTPS_PORT if tls else HTTP_PORT
    server_tls: list[str] = []
    client_tls: list[str] = []
    if tls:
        cert_key, cert = make_cert(work, "whip", SRV_IP)
        server_tls = ["--cert", str(cert), "--key", str(cert_key)]
        client_tls = ["--cafile", str(cert), "--keylog", str(keylog)]
        keylog.unlink(missing_ok=True)
    with Lab(name) as lab:
        pub = lab.host("pub", f"{PUB_IP}/24")
        srv = lab.host("srv", f"{SRV_IP}/24")
        # what SDP would ffmpeg announce? (a 40 ms dry run before the tap starts; the same key and ports)
        pre = pub.popen(_ffmpeg_sender(work / "offer.sdp", key, ssrcs, 0.04), log=work / "ffmpeg_pre.log")
        pre.wait(timeout=30)
        offer = (work / "offer.sdp").read_text()
        if f"inline:{key}" not in offer:
            raise RuntimeError("ffmpeg's SDP has no a=crypto with our key")
        with lab.capture(cap):
            server = srv.popen(
                [*py, "serve", "--work", str(work), "--token", token, "--port", str(port), *server_tls],
                log=work / "server.log",
                cwd=str(ROOT),
            )
            srv.wait_listening(port, proc=server)
            base = f"{'https' if tls else 'http'}://{SRV_IP}:{port}"
            c = pub.popen(
                [
                    *py,
                    "post",
                    "--url",
                    f"{base}/whip/lab",
                    "--sdp",
                    str(work / "offer.sdp"),
                    "--result",
                    str(work / "post.json"),
                    "--token",
                    token,
                    *client_tls,
                ],
                log=work / "post.log",
                cwd=str(ROOT),
            )
            if c.wait(timeout=30) != 0:
                raise RuntimeError(f"WHIP POST failed: {(work / 'post.log').read_text()[-2000:]}")
            post = json.loads((work / "post.json").read_text())
            tx = pub.popen(
                _ffmpeg_sender(work / "offer_tx.sdp", key, ssrcs, SECONDS), log=work / "ffmpeg_tx.log"
            )
            if tx.wait(timeout=SECONDS + 30) != 0:
                raise RuntimeError(f"ffmpeg sender failed: {(work / 'ffmpeg_tx.log').read_text()[-2000:]}")
            time.sleep(0.3)
            c = pub.popen(
                [
                    *py,
                    "delete",
                    "--url",
                    f"{base}{post['location']}",
                    "--result",
                    str(work / "del.json"),
                    "--token",
                    token,
                    "--cookie",
                    post["cookie"] or "",
                    *client_tls,
                ],
                log=work / "del.log",
                cwd=str(ROOT),
            )
            c.wait(timeout=30)
            server.send_signal(signal.SIGINT)
            time.sleep(0.5)
            lab.stop_all()

    cap.chmod(0o644)
    tx_log = (work / "ffmpeg_tx.log").read_text()
    muxed = _muxed_counts(tx_log)
    if len(muxed) != 2:
        raise RuntimeError(f"could not read ffmpeg's packet counts: {tx_log[-1500:]}")
    if (work / "offer_tx.sdp").read_text() != offer:
        raise RuntimeError("ffmpeg announced a different SDP on the real run")
    answer_key = (work / "answer_key.txt").read_text().strip()
    rtp_counts, rtcp_counts, rows = _tshark_rtp(cap)
    for ssrc, n in zip(ssrcs, muxed):
        if rtp_counts.get(ssrc) != n:
            raise RuntimeError(
                f"tshark counts {rtp_counts.get(ssrc)} RTP packets for SSRC {ssrc:#x}, ffmpeg {n}"
            )
    src_ports = {int(r[0], 16): int(r[2]) for r in rows}
    http = _tshark_http(cap, keylog)
    ua = next((r[4] for r in http if r[1] == "POST"), "")
    server_hdr = next((r[5] for r in http if r[2] == "201"), "")
    post_frame = next((int(r[0]) for r in http if r[1] == "POST"), None)
    answer_frame = next((int(r[0]) for r in http if r[2] == "201"), None)
    cookie = (work / "session_cookie.txt").read_text().strip()
    deleted = json.loads((work / "del.json").read_text())
    if post["status"] != 201 or post["cookie"] != cookie or deleted["status"] != 200:
        raise RuntimeError(
            f"WHIP with token and cookie failed: POST {post['status']}, DELETE {deleted['status']}"
        )
    vol_srtp, vol_rtp = _volume(work / "rx_srtp.wav"), _volume(work / "rx_rtp.wav")
    if not vol_srtp["samples"] or (vol_srtp["mean_volume_db"] or -99) < -40:
        raise RuntimeError(f"receiver did not decrypt the SRTP stream: {vol_srtp}")
    tls_facts = _check_tls(cap, keylog, post, deleted, http, (key, answer_key, token, cookie)) if tls else {}

    pub_http = f"{PUB_IP}"
    srv_http = f"{SRV_IP}:{port}"
    srtp_ep = [f"{PUB_IP}:{src_ports[ssrcs[0]]}", f"{SRV_IP}:{SRTP_PORT}"]
    rtp_ep = [f"{PUB_IP}:{src_ports[ssrcs[1]]}", f"{SRV_IP}:{RTP_PORT}"]
    findings = [
        {
            "slug": "sdes-key-exposed",
            # in clear: anyone on the path has the media key; inside TLS: whoever holds the TLS keys (and the
            # WHIP server) has it, and this capture shows it only with the keylog
            "severity": "medium" if tls else "critical",
            "endpoints": [pub_http, srv_http],
            "frames": [f for f in (post_frame, answer_frame) if f],
        },
        {"slug": "sdp-plain-rtp-offered", "endpoints": [pub_http, srv_http]},
        {"slug": "rtp-unencrypted", "endpoints": rtp_ep},
        *([] if tls else [{"slug": "signalling-plaintext", "endpoints": [pub_http, srv_http]}]),
        {
            # the bearer token on POST and DELETE, the session cookie set by the 201 and sent back on DELETE
            # (over HTTPS they are read only after TLS decryption with the keylog: info)
            "slug": "signalling-secret-exposed",
            "severity": "info" if tls else "high",
            "endpoints": [pub_http, srv_http],
            "evidence": {"in_clear": not tls},
        },
        {
            "slug": "software-disclosure",
            "endpoints": [pub_http, srv_http],
            "evidence": {"user_agent": ua, "server": server_hdr},
        },
    ]
    absent = [
        "dtls-weak-version",
        "dtls-weak-cipher",
        "dtls-handshake-failed",
        "dtls-cert-weak",
        "dtls-fingerprint-mismatch",
        "fingerprint-weak-hash",
        "srtp-null-cipher",
        "srtp-weak-profile",
        "stun-no-integrity",
        "turn-open-relay",
        "turn-internal-peer",
        "turn-credential-lifetime",
        "ice-ipv6-eui64",
        "signalling-weak-tls",
        *(["signalling-plaintext"] if tls else []),
    ]
    if tls:
        description = (
            "SDP with a=crypto (SDES) POSTed over HTTPS (TLS 1.3, WHIP-style, bearer token, session cookie; "
            "client TLS keys in keylog) + ffmpeg SDES-SRTP PCMU and plain RTP PCMA"
        )
    else:
        description = (
            "SDP with a=crypto (SDES) POSTed over plain HTTP (WHIP-style, bearer token, session cookie) + "
            "ffmpeg SDES-SRTP PCMU and plain RTP PCMA"
        )
    notes = (
        "Packet counts are ffmpeg's own 'packets muxed' per output, equal to tshark's RTP count per SSRC with "
        f"Decode-As udp.port=={SRTP_PORT}/{RTP_PORT},rtp and {SRTP_PORT + 1}/{RTP_PORT + 1},rtcp (RTCP SR: "
        "ffmpeg's; SRTCP on the SRTP port pair). ffmpeg 5.1 writes m=audio ... RTP/AVP even for the SRTP "
        "output: only a=crypto tells it apart (its SDP also says 'a=tool:libavformat LIBAVFORMAT_VERSION', "
        "a Debian build quirk). The SDP offer was taken from a 40 ms ffmpeg dry run before the tap started "
        "(same key, ports, SSRCs; the real run wrote the identical SDP). The server's ffmpeg receiver decoded "
        "the SRTP stream with the offered key (receiver.srtp_decoded: non-silent 440 Hz tone). "
        "secrets.sdes holds the raw inline keys, secrets.whip the bearer token the publisher sent on POST and "
        "DELETE (the server refuses requests without it) and the session cookie the server set on its 201 "
        "and got back on DELETE; all cross the wire in clear and must be redacted in any output."
    )
    if tls:
        notes = notes.replace(
            "all cross the wire in clear and must be redacted in any output.",
            f"all cross the wire inside TLS ({tls_facts['tls_version']}, {tls_facts['cipher']}: the client's "
            "OpenSSL; tshark's ServerHello supported_version agrees) and are absent from the capture bytes; "
            "they are readable only with the keylog (the client's SSLContext.keylog_filename: two connections, "
            "POST and DELETE) and must be redacted in any output. The frames are tshark's with "
            f"-o tls.keylog_file and Decode-As tcp.port=={HTTPS_PORT},tls (the frame ending each decrypted "
            "HTTP message); without the keylog tshark reads no HTTP.",
        )
    truth = {
        "description": description,
        "stacks": {"ffmpeg": _ffmpeg_version()},
        "keylog": keylog.name if keylog else None,
        "findings": findings,
        "absent_findings": absent,
        "secrets": {
            "whip": {"bearer_token": token, "session_cookie": cookie},
            "sdes": [
                {"sdp": "offer", "suite": SUITE, "inline": key, "keys_stream": srtp_ep},
                {"sdp": "answer", "suite": SUITE, "inline": answer_key, "keys_stream": None},
            ],
        },
        "dtls": [],
        "sdp": [
            {
                "role": "offer",
                "transport": "http",
                "tls": tls,
                "method": "POST",
                "url": "/whip/lab",
                "frame": post_frame,
                "protos": ["RTP/AVP", "RTP/AVP"],
                "crypto": [SUITE, None],
                "ports": [SRTP_PORT, RTP_PORT],
                "text": _redact(offer, key),
            },
            {
                "role": "answer",
                "transport": "http",
                "tls": tls,
                "status": 201,
                "frame": answer_frame,
                "protos": ["RTP/AVP", "RTP/AVP"],
                "crypto": [SUITE, None],
                "text": _redact(post["answer"], answer_key),
            },
        ],
        "rtp": [
            {
                "ssrc": ssrcs[0],
                "packets": muxed[0],
                "src": srtp_ep[0],
                "dst": srtp_ep[1],
                "pt": 0,
                "codec": "PCMU/8000",
                "keying": "sdes",
                "encrypted": True,
                "rtcp_packets": rtcp_counts.get(SRTP_PORT + 1, 0),
            },
            {
                "ssrc": ssrcs[1],
                "packets": muxed[1],
                "src": rtp_ep[0],
                "dst": rtp_ep[1],
                "pt": 8,
                "codec": "PCMA/8000",
                "keying": "none",
                "encrypted": False,
                "rtcp_packets": rtcp_counts.get(RTP_PORT + 1, 0),
            },
        ],
        "stun": {},
        "candidates": [],
        "http": [
            {
                "frame": int(r[0]),
                "method": r[1] or None,
                "status": int(r[2]) if r[2] else None,
                "content_type": r[3] or None,
            }
            for r in http
        ],
        "receiver": {"srtp_decoded": vol_srtp, "rtp_decoded": vol_rtp},
        "notes": notes,
    }
    if tls:
        truth["signalling"] = {
            "server": srv_http,
            "tls": True,
            "urls": ["/whip/lab", post["location"]],
            **tls_facts,
        }
    return truth


def _check_tls(
    cap: Path, keylog: Path, post: dict, deleted: dict, http: list[list[str]], secret_values: tuple[str, ...]
) -> dict:
    """HTTPS: both requests ran over TLS 1.3 (the client's OpenSSL), tshark agrees on every ServerHello, reads
    the four HTTP messages only with the keylog, and no secret is in the capture bytes."""
    if not keylog.exists() or "CLIENT_HANDSHAKE_TRAFFIC_SECRET" not in keylog.read_text():
        raise RuntimeError("the client wrote no TLS 1.3 secrets to the keylog")
    keylog.chmod(0o644)
    versions = {post.get("tls_version"), deleted.get("tls_version")}
    if versions != {"TLSv1.3"}:
        raise RuntimeError(f"expected TLS 1.3 on POST and DELETE, the client's OpenSSL says {versions}")
    hellos = _tshark_tls(cap)
    if len(hellos) != 2 or any(h[1] != "0x0304" for h in hellos):
        raise RuntimeError(f"tshark: expected two TLS 1.3 ServerHellos from :{HTTPS_PORT}, read {hellos}")
    methods = [(r[1], r[2]) for r in http]
    if methods != [("POST", ""), ("", "201"), ("DELETE", ""), ("", "200")]:
        raise RuntimeError(f"tshark with the keylog reads {methods}, not POST/201/DELETE/200")
    if _tshark_http(cap):
        raise RuntimeError("tshark reads HTTP without the keylog")
    data = cap.read_bytes()
    leaked = [i for i, v in enumerate(secret_values) if v.encode() in data]
    if leaked:
        raise RuntimeError(f"secret(s) #{leaked} in clear in the capture bytes")
    return {
        "tls_version": "TLS 1.3",
        "cipher": post["tls_cipher"],
        "server_hellos": [int(h[0]) for h in hellos],
    }


def _redact(sdp: str, key: str) -> str:
    return sdp.replace(key, "<redacted>")


def _ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], check=False, capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


SCENARIOS = {NAME: sdes_plain_rtp, "sdes_https": sdes_https}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lab.scenarios.ffmpeg_sdes")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--work", required=True)
    s.add_argument("--token", required=True, help="the bearer token POST and DELETE must present")
    s.add_argument("--port", type=int, default=HTTP_PORT)
    s.add_argument("--cert", help="PEM certificate: serve HTTPS")
    s.add_argument("--key", help="its private key")
    p = sub.add_parser("post")
    p.add_argument("--url", required=True)
    p.add_argument("--sdp", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--cafile", help="HTTPS: the CA file to trust")
    p.add_argument("--keylog", help="HTTPS: append the TLS secrets here (SSLKEYLOGFILE format)")
    d = sub.add_parser("delete")
    d.add_argument("--url", required=True)
    d.add_argument("--result", required=True)
    d.add_argument("--token", required=True)
    d.add_argument("--cookie", required=True)
    d.add_argument("--cafile", help="HTTPS: the CA file to trust")
    d.add_argument("--keylog", help="HTTPS: append the TLS secrets here (SSLKEYLOGFILE format)")
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        serve(args)
    else:
        client(args)


if __name__ == "__main__":
    main()
