"""Real browsers calling each other: headless Chromium ↔ Chromium, and Firefox ESR → Chromium.

Each browser runs in its own namespace host and loads ``lab/web/call.html`` from an aiohttp server on a third
host; the page drives the call by itself (fake audio+video from getUserMedia, a data channel "chat" with a few
messages, plain-WebSocket signalling with trickled candidates) and POSTs back what the browser reports: local and
remote SDP, getStats(), navigator.userAgent, candidates, data-channel messages. No driver protocol is used.

- ``browsers_chromium``: two Chromium instances on a private LAN (10.10.0.0/24).
- ``browsers_firefox_chromium``: Firefox ESR (caller, SSLKEYLOGFILE → ``<name>.keylog``) calling Chromium on
  documentation addresses (198.51.100.0/24).
- ``browsers_e2ee``: the same call (203.0.113.0/24) with the page's ``e2ee=1``: both browsers run every
  encoded audio/video frame through an RTCRtpScriptTransform worker (``lab/web/e2ee_worker.js``) that seals it
  with AES-GCM (WebCrypto, SFrame-style header) under keys derived from a secret both pages get in the URL
  fragment; the keylog still decrypts SRTP, but the payloads inside stay encrypted. The worker's frame
  counters and the SSRCs it saw are in the truth (``e2ee``), the secret only under ``secrets``.

Chromium and Firefox negotiate DTLS 1.3: certificates and the SRTP profile travel encrypted, so the truth file
records ``encrypted_handshake: true`` and takes DTLS facts from the browsers' own getStats() (transport and
certificate stats). The module is also the signalling/page server: ``python -m lab.scenarios.browsers serve``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lab.pages import HTTP_PORT, SERVE_OPTIONS, command_main, serve_pages

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 4
MESSAGES = 3
CHROMIUM = "chromium"
FIREFOX = "firefox-esr"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--password-store=basic",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]
FIREFOX_PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # getUserMedia on the lab's plain-HTTP page (not a secure context)
    "media.devices.insecure.enabled": True,
    "media.getusermedia.insecure.enabled": True,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.update.service.enabled": False,
    "app.update.checkInstallTime": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "network.prefetch-next": False,
    "network.dns.disablePrefetch": True,
    "network.predictor.enabled": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.aboutHomeSnippets.updateUrl": "",
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "services.settings.server": "",
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.newtabpage.enabled": False,
    "browser.startup.page": 0,
    "captivedetect.canonicalURL": "",
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.ping-centre.telemetry": False,
    "dom.push.enabled": False,
    "dom.push.serverURL": "",
    "geo.enabled": False,
    "browser.region.update.enabled": False,
    "browser.search.update": False,
    "media.gmp-manager.url": "",
    "media.gmp-gmpopenh264.enabled": True,
    "media.gmp-gmpopenh264.autoupdate": False,
    "security.OCSP.enabled": 0,
    "network.trr.mode": 5,
    "browser.discovery.enabled": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "browser.tabs.remote.autostart": True,
    "media.autoplay.default": 0,
    "datareporting.usage.uploadEnabled": False,
    "toolkit.telemetry.archive.enabled": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "network.http.http3.enable": False,
}
# Chromium's / W3C srtpCipher names -> IANA SRTP protection profile names (RFC 5764 §4.1.2, RFC 7714 §14.2)
SRTP_IANA = {
    "AES_CM_128_HMAC_SHA1_80": "SRTP_AES128_CM_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32": "SRTP_AES128_CM_HMAC_SHA1_32",
    "AEAD_AES_128_GCM": "SRTP_AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM": "SRTP_AEAD_AES_256_GCM",
}
TLS_VERSION = {"FEFF": "DTLS 1.0", "FEFD": "DTLS 1.2", "FEFC": "DTLS 1.3"}


# --------------------------------------------------------------------------------------------------------------
# the page + signalling server (run inside the "sig" namespace)


def serve(args: argparse.Namespace) -> None:
    from aiohttp import WSMsgType, web

    work = Path(args.work)
    rooms: dict[str, dict[str, Any]] = {}

    async def ws(request: web.Request) -> web.WebSocketResponse:
        room, role = request.match_info["room"], request.match_info["role"]
        other = "callee" if role == "caller" else "caller"
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        r = rooms.setdefault(room, {"socks": {}, "queue": {"caller": [], "callee": []}, "log": []})
        r["socks"][role] = sock
        for m in r["queue"][role]:
            await sock.send_str(m)
        r["queue"][role].clear()
        async for msg in sock:
            if msg.type != WSMsgType.TEXT:
                continue
            r["log"].append({"from": role, "t": time.time(), "data": json.loads(msg.data)})
            peer = r["socks"].get(other)
            if peer is not None and not peer.closed:
                await peer.send_str(msg.data)
            else:
                r["queue"][other].append(msg.data)
        (work / f"signalling_{room}.json").write_text(json.dumps(r["log"], indent=1))
        return sock

    async def result(request: web.Request) -> web.Response:
        kind, room, role = (request.match_info[k] for k in ("kind", "room", "role"))
        (work / f"{kind}_{room}_{role}.json").write_text(await request.text())
        return web.Response(text="ok\n")

    serve_pages(
        args.host,
        ("call.html", "call.js", "e2ee_worker.js"),
        [("GET", "/ws/{room}/{role}", ws), ("POST", "/{kind:result|closed}/{room}/{role}", result)],
        max_body=16 * 1024 * 1024,
    )


# --------------------------------------------------------------------------------------------------------------
# launching browsers


def _origin(url: str) -> str:
    return url.split("/call.html")[0]


def _chromium(host: Any, url: str, work: Path, tag: str) -> Any:
    profile = Path(tempfile.mkdtemp(prefix=f"rtcf-chromium-{tag}-"))
    # getUserMedia needs a secure context: let the lab's plain-HTTP page origin count as one
    return host.popen(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--unsafely-treat-insecure-origin-as-secure={_origin(url)}",
            url,
        ],
        log=work / f"chromium_{tag}.log",
        env={"HOME": str(profile)},
    ), profile


def _firefox(host: Any, url: str, work: Path, tag: str, keylog: Path, extra_prefs: dict | None = None) -> Any:
    profile = Path(tempfile.mkdtemp(prefix=f"rtcf-firefox-{tag}-"))
    all_prefs = {**FIREFOX_PREFS, **(extra_prefs or {})}
    prefs = "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in all_prefs.items())
    (profile / "user.js").write_text(prefs)
    env = {
        "HOME": str(profile),
        "SSLKEYLOGFILE": str(keylog),
        "MOZ_HEADLESS": "1",
        "MOZ_DISABLE_AUTO_SAFE_MODE": "1",
        "MOZ_CRASHREPORTER_DISABLE": "1",
    }
    return host.popen(
        [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), url],
        log=work / f"firefox_{tag}.log",
        env=env,
    ), profile


def _kill_namespace(host: Any) -> None:
    """Kill what is left in a browser host's namespace (all of it was started by this scenario)."""
    for _ in range(3):
        pids = subprocess.run(
            ["ip", "netns", "pids", host.ns], check=False, capture_output=True, text=True
        ).stdout.split()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.3)


# --------------------------------------------------------------------------------------------------------------
# truth from the browsers' own reports


def _by_type(stats: list[dict], t: str) -> list[dict]:
    return [s for s in stats if s.get("type") == t]


def _by_id(stats: list[dict]) -> dict[str, dict]:
    return {s["id"]: s for s in stats}


def _fp(s: str | None) -> str | None:
    return s.replace(":", "").lower() if s else None


def _side_facts(res: dict) -> dict:
    """Selected pair, DTLS, certificates, senders from one browser's getStats()."""
    stats = res["stats"]
    ids = _by_id(stats)
    tr = _by_type(stats, "transport")
    t = tr[0] if tr else {}
    pair = ids.get(t.get("selectedCandidatePairId", "")) if t else None
    if pair is None:  # Firefox has no transport stats: the nominated/selected succeeded pair
        pairs = [
            p
            for p in _by_type(stats, "candidate-pair")
            if p.get("state") == "succeeded" and (p.get("nominated") or p.get("selected"))
        ]
        pair = pairs[0] if pairs else None
    lc = ids.get(pair["localCandidateId"]) if pair else None
    rc = ids.get(pair["remoteCandidateId"]) if pair else None
    local_cert = ids.get(t.get("localCertificateId", "")) if t else None
    remote_cert = ids.get(t.get("remoteCertificateId", "")) if t else None

    def cert(c: dict | None) -> dict | None:
        if not c:
            return None
        der = base64.b64decode(c["base64Certificate"]) if c.get("base64Certificate") else b""
        return {
            "algorithm": c.get("fingerprintAlgorithm"),
            "fingerprint": _fp(c.get("fingerprint")),
            "der_sha256": hashlib.sha256(der).hexdigest() if der else None,
        }

    def addr(c: dict | None) -> str | None:
        if not c:
            return None
        a = c.get("address") or c.get("ip")
        return f"{a}:{c.get('port')}"

    codecs = {c["id"]: c for c in _by_type(stats, "codec")}
    outbound = []
    for o in _by_type(stats, "outbound-rtp"):
        codec = codecs.get(o.get("codecId", ""), {})
        outbound.append(
            {
                "ssrc": o["ssrc"],
                "kind": o.get("kind") or o.get("mediaType"),
                "packets_sent": o.get("packetsSent"),
                "bytes_sent": o.get("bytesSent"),
                "retransmitted_packets_sent": o.get("retransmittedPacketsSent"),
                "rtx_ssrc": o.get("rtxSsrc"),
                "pt": codec.get("payloadType"),
                "codec": codec.get("mimeType"),
                "mid": o.get("mid"),
            }
        )
    pairs = _by_type(stats, "candidate-pair")
    stun = {
        k: sum(p.get(k, 0) or 0 for p in pairs)
        for k in (
            "requestsSent",
            "responsesReceived",
            "requestsReceived",
            "responsesSent",
            "consentRequestsSent",
        )
    }
    return {
        "user_agent": res["userAgent"],
        "selected_pair": {
            "local": addr(lc),
            "remote": addr(rc),
            "local_type": (lc or {}).get("candidateType"),
            "remote_type": (rc or {}).get("candidateType"),
            "local_address_reported": (lc or {}).get("address"),
            "state": (pair or {}).get("state"),
        }
        if pair
        else None,
        "transport": {
            k: t.get(k)
            for k in (
                "dtlsState",
                "tlsVersion",
                "dtlsCipher",
                "srtpCipher",
                "dtlsRole",
                "iceRole",
                "iceState",
                "tlsGroup",
            )
            if k in t
        }
        if t
        else None,
        "local_cert": cert(local_cert),
        "remote_cert": cert(remote_cert),
        "outbound": outbound,
        "stun_pair_counters": stun,
        "inbound": [
            {"ssrc": i["ssrc"], "kind": i.get("kind"), "packets_received": i.get("packetsReceived")}
            for i in _by_type(stats, "inbound-rtp")
        ],
        "data_channels": [
            {
                "label": d.get("label"),
                "messages_sent": d.get("messagesSent"),
                "messages_received": d.get("messagesReceived"),
                "state": d.get("state"),
            }
            for d in _by_type(stats, "data-channel")
        ],
    }


def _tshark(cap: Path, keylog: Path | None, media_ports: list[int]) -> dict:
    from lab.truthlib import UDP_FRAME_FIELDS, stun_key_from_type, tshark_fields

    heur: dict[str, Any] = {"keylog": keylog}
    decode: dict[str, Any] = {
        "heuristics": False,
        "extra": [a for p in media_ports for a in ("-d", f"udp.port=={p},rtp")],
    }

    def fields(how: dict[str, Any], filt: str, *f: str) -> list[list[str]]:
        rows = tshark_fields(cap, list(f), display_filter=filt, first_only=True, **how)
        return [r for r in rows if any(r)]

    rtp_heur = Counter(int(r[0], 16) for r in fields(heur, "rtp && !rtcp", "rtp.ssrc") if r[0])
    # Decode-As on the media ports; RFC 5761 §4: payload types 64-95 there are RTCP, first byte < 128 is not RTP
    rtp_all = Counter(
        int(r[0], 16)
        for r in fields(decode, "rtp.version == 2 && !(rtp.p_type >= 64 && rtp.p_type <= 95)", "rtp.ssrc")
        if r[0]
    )
    # RTP header payload type per SSRC (Decode-As), to cross-check the PT the negotiated SDP gives
    rtp_pts: dict[int, Counter] = {}
    for r in fields(
        decode, "rtp.version == 2 && !(rtp.p_type >= 64 && rtp.p_type <= 95)", "rtp.ssrc", "rtp.p_type"
    ):
        if r[0] and len(r) > 1 and r[1]:
            rtp_pts.setdefault(int(r[0], 16), Counter())[int(r[1])] += 1
    stun = Counter(
        stun_key_from_type(int(r[0], 16)) for r in fields(heur, "stun && udp && !icmp", "stun.type") if r[0]
    )
    # Decode-As DTLS on the media ports: tshark 4.0's heuristic misses the large (ML-KEM key share) ServerHello
    as_dtls: dict[str, Any] = {
        "heuristics": False,
        "extra": [a for p in media_ports for a in ("-d", f"udp.port=={p},dtls")],
    }
    dtls = fields(
        as_dtls,
        "dtls.handshake.type == 1 || dtls.handshake.type == 2",
        *UDP_FRAME_FIELDS,
        "dtls.handshake.type",
        "dtls.handshake.version",
        "dtls.handshake.ciphersuite",
        "dtls.handshake.random",
    )
    mdns = fields(heur, "mdns", "frame.number", "ip.src", "dns.qry.name")
    http = fields(
        heur,
        "http.request || http.response",
        "frame.number",
        "ip.src",
        "http.request.uri",
        "http.user_agent",
        "http.server",
        "http.upgrade",
    )
    other = fields(
        heur, "udp && !(rtp || stun || dtls || rtcp || mdns || icmp)", "frame.number", "udp.payload"
    )
    unified = sum(1 for r in other if r[1][:1] in "23")  # RFC 9147 §4: 001xxxxx = DTLS 1.3 unified header
    # RFC 5761: 128..191 with payload type 192..223 = RTCP (here SRTCP, rtcp-mux; tshark's heuristic misses it)
    rtcp = sum(1 for r in other if r[1][:1] in "89ab" and 192 <= int(r[1][2:4], 16) <= 223)
    return {
        "http": http,
        "rtp_heur": rtp_heur,
        "rtp": rtp_all,
        "rtp_pts": rtp_pts,
        "stun": dict(sorted(stun.items())),
        "dtls": dtls,
        "mdns": mdns,
        "other": len(other),
        "dtls13_unified": unified,
        "srtcp": rtcp,
    }


def _run_call(
    name: str, out: Path, caller: str, callee: str, net: str, keylog_from_firefox: bool, e2ee: bool = False
) -> dict:
    from lab.netns import Lab
    from lab.truthlib import candidate_fact, dedupe, scope, sdp_facts, workdir

    work = workdir(name)
    cap = out / f"{name}.pcapng"
    keylog = out / f"{name}.keylog"
    if keylog.exists():
        keylog.unlink()
    raw_keylog = work / "firefox.keylog"
    sig_ip, a_ip, b_ip = f"{net}.2", f"{net}.11", f"{net}.12"
    room = "lab"
    url = f"http://{sig_ip}:{HTTP_PORT}/call.html?room={room}&seconds={SECONDS}&messages={MESSAGES}&role="
    # E2EE: the pages share a fresh secret through the URL fragment, which a browser never sends to the server
    secret = os.urandom(16) if e2ee else b""
    secret_b64 = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    suffix = f"&e2ee=1#e2ee-secret={secret_b64}" if e2ee else ""
    # WebCrypto (crypto.subtle) exists only in secure contexts: let Firefox count the lab's page origin as one
    # (Chromium gets --unsafely-treat-insecure-origin-as-secure for getUserMedia already)
    ff_prefs = {"dom.securecontext.allowlist": sig_ip} if e2ee else None
    profiles: list[Path] = []
    lab_tag = {
        "browsers_chromium": "chrchr",
        "browsers_firefox_chromium": "ffxchr",
        "browsers_e2ee": "ffxe2e",
    }[name]
    try:
        with Lab(lab_tag) as lab:
            sig = lab.host("sig", f"{sig_ip}/24")
            ha = lab.host("caller", f"{a_ip}/24")
            hb = lab.host("callee", f"{b_ip}/24")
            # multicast (mDNS .local candidates) needs a route in the browsers' namespaces
            for h in (ha, hb):
                h.run("ip", "route", "add", "224.0.0.0/4", "dev", "eth0", check=False)
            with lab.capture(cap):
                sig.popen(
                    [
                        sys.executable,
                        "-m",
                        "lab.scenarios.browsers",
                        "serve",
                        "--work",
                        str(work),
                        "--host",
                        sig_ip,
                    ],
                    log=work / "server.log",
                    cwd=str(ROOT),
                )
                sig.wait_listening(HTTP_PORT)
                procs = []
                for host, kind, role in ((hb, callee, "callee"), (ha, caller, "caller")):
                    if kind == "chromium":
                        p, prof = _chromium(host, url + role + suffix, work, role)
                    else:
                        p, prof = _firefox(host, url + role + suffix, work, role, raw_keylog, ff_prefs)
                    procs.append(p)
                    profiles.append(prof)
                    time.sleep(1.0)
                deadline = time.time() + 90
                want = [work / f"closed_{room}_{r}.json" for r in ("caller", "callee")]
                while time.time() < deadline and not all(p.exists() for p in want):
                    fails = [work / f"result_{room}_{r}.json" for r in ("caller", "callee")]
                    if any(f.exists() and json.loads(f.read_text()).get("errors") for f in fails):
                        break
                    time.sleep(0.5)
                time.sleep(0.5)
                lab.stop_all()
                for h in (ha, hb):
                    _kill_namespace(h)
    finally:
        for p in profiles:
            shutil.rmtree(p, ignore_errors=True)
    cap.chmod(0o644)

    res = {}
    for r in ("caller", "callee"):
        f = work / f"result_{room}_{r}.json"
        if not f.exists():
            raise RuntimeError(f"{r} page posted no result; see {work}")
        res[r] = json.loads(f.read_text())
        if res[r].get("errors"):
            raise RuntimeError(f"{r} page reported errors: {res[r]['errors']}")
        (work / f"stats_{r}.json").write_text(json.dumps(res[r]["stats"], indent=1))
    kinds = {"caller": caller, "callee": callee}
    side = {r: _side_facts(res[r]) for r in res}
    # Firefox reports its own host candidate only by its mDNS name, and Chromium redacts the address of a
    # peer-reflexive remote candidate: fill those in from the lab host the browser ran on (one address each)
    host_ip = {"caller": a_ip, "callee": b_ip}
    for r, f in side.items():
        sp = f["selected_pair"]
        if not sp:
            continue
        other = "callee" if r == "caller" else "caller"
        for key, owner in (("local", r), ("remote", other)):
            addr, port = sp[key].rsplit(":", 1)
            if not addr or addr.endswith(".local"):
                sp[f"{key}_reported"] = sp[key]
                sp[key] = f"{host_ip[owner]}:{port}"

    if keylog_from_firefox:
        if not raw_keylog.exists():
            raise RuntimeError("Firefox wrote no SSLKEYLOGFILE")
        lines = [x for x in raw_keylog.read_text().splitlines() if x.strip() and not x.startswith("#")]
        keylog.write_text("\n".join(dict.fromkeys(lines)) + "\n")
        keylog.chmod(0o644)

    media_ports = sorted(
        {int(f["selected_pair"]["local"].rsplit(":", 1)[1]) for f in side.values() if f["selected_pair"]}
    )
    ts = _tshark(cap, keylog if keylog.exists() else None, media_ports)

    # DTLS: one handshake (BUNDLE); roles from the side that reports dtlsRole, else from SDP a=setup
    client_role = None
    for r, f in side.items():
        if f["transport"] and f["transport"].get("dtlsRole") in ("client", "server"):
            client_role = (
                r if f["transport"]["dtlsRole"] == "client" else ("callee" if r == "caller" else "caller")
            )
            break
    if client_role is None:
        raise RuntimeError("no browser reported its DTLS role")
    server_role = "callee" if client_role == "caller" else "caller"
    cf, sf = side[client_role], side[server_role]
    tinfo = cf["transport"] or sf["transport"]
    # the ClientHello (X25519MLKEM768 key share) spans two datagrams: the reassembled one carries the random
    chello = [d for d in ts["dtls"] if d[5].split(",")[0] == "1" and d[8]]
    shello = [d for d in ts["dtls"] if d[5].split(",")[0] == "2" and d[7]]
    if not chello or not shello:
        raise RuntimeError("tshark sees no DTLS ClientHello/ServerHello")
    client_random = chello[0][8].replace(":", "").lower() or None
    wire_client = f"{chello[0][1]}:{chello[0][2]}"
    wire_suite = int(shello[0][7], 16)
    cc = cf["local_cert"] or sf["remote_cert"]
    sc = sf["local_cert"] or cf["remote_cert"]
    dtls = [
        {
            "client": cf["selected_pair"]["local"] if cf["selected_pair"] else None,
            "server": cf["selected_pair"]["remote"] if cf["selected_pair"] else None,
            "client_browser": kinds[client_role],
            "server_browser": kinds[server_role],
            "client_random": client_random,
            "version": TLS_VERSION.get((tinfo.get("tlsVersion") or "").upper(), tinfo.get("tlsVersion")),
            "cipher_suite": tinfo.get("dtlsCipher"),
            "srtp_profile": SRTP_IANA.get(tinfo.get("srtpCipher") or "", tinfo.get("srtpCipher")),
            "client_cert_sha256": (cc or {}).get("der_sha256") or (cc or {}).get("fingerprint"),
            "server_cert_sha256": (sc or {}).get("der_sha256") or (sc or {}).get("fingerprint"),
            "encrypted_handshake": TLS_VERSION.get((tinfo.get("tlsVersion") or "").upper()) == "DTLS 1.3",
            "completed": all(
                (f["transport"] or {}).get("dtlsState", "connected") == "connected" for f in side.values()
            ),
            "tls_group": tinfo.get("tlsGroup"),
            "reported_by": [r for r in side if side[r]["transport"]],
        }
    ]

    if cf["selected_pair"] and wire_client != cf["selected_pair"]["local"]:
        raise RuntimeError(
            f"ClientHello from {wire_client}, but the DTLS client's pair is {cf['selected_pair']}"
        )
    if dtls[0]["cipher_suite"] == "TLS_AES_128_GCM_SHA256" and wire_suite != 0x1301:
        raise RuntimeError(f"ServerHello suite {wire_suite:#06x} != getStats dtlsCipher")
    dtls[0]["server_hello_cipher_suite_on_wire"] = f"{wire_suite:#06x}"
    if keylog.exists():
        labels = sorted(
            {
                x.split()[0]
                for x in keylog.read_text().splitlines()
                if x.split() and x.split()[1].lower() == client_random
            }
        )
        if not labels:
            raise RuntimeError(f"the keylog has no secrets for the ClientHello random {client_random}")
        dtls[0]["keylog_labels"] = labels
    rtp, mismatches = [], []
    for r, f in side.items():
        # RTX SSRCs from the browser's own SDP (a=ssrc-group:FID media rtx; Firefox's getStats has no rtxSsrc)
        fid = {}
        for line in res[r]["localDescription"]["sdp"].splitlines():
            if line.startswith("a=ssrc-group:FID "):
                media, rtx_ssrc = (int(x) for x in line.split()[1:3])
                fid[media] = rtx_ssrc
        answer_sdp = next(
            d["sdp"]
            for d in (
                res[r]["localDescription"],
                res[r].get("currentRemoteDescription") or {},
                res[r]["remoteDescription"],
            )
            if d.get("type") == "answer"
        )
        for o in f["outbound"]:
            o["rtx_ssrc"] = o["rtx_ssrc"] or fid.get(o["ssrc"])
            header_pt, red_pt = _header_pt(answer_sdp, o)
            wire_pts = sorted(ts["rtp_pts"].get(o["ssrc"], {}))
            if wire_pts and wire_pts != [header_pt]:
                mismatches.append(
                    f"{kinds[r]} {o['kind']} ssrc {o['ssrc']}: RTP header PT on the wire {wire_pts}, "
                    f"negotiated SDP gives {header_pt} (getStats codec PT {o['pt']}, red {red_pt})"
                )
            wire = ts["rtp"].get(o["ssrc"], 0)
            wire_rtx = ts["rtp"].get(o["rtx_ssrc"], 0) if o["rtx_ssrc"] else 0
            row = {
                "ssrc": o["ssrc"],
                "packets": wire,
                "src": f["selected_pair"]["local"],
                "dst": f["selected_pair"]["remote"],
                "pt": header_pt,
                "kind": o["kind"],
                "codec": o["codec"],
                "codec_pt": o["pt"],
                "encapsulation": "red" if red_pt is not None else None,
                "side": r,
                "browser": kinds[r],
                "getstats_packets_sent": o["packets_sent"],
                "rtx_ssrc": o["rtx_ssrc"],
                "retransmitted_packets_sent": o["retransmitted_packets_sent"],
            }
            # the browser's packetsSent counts the sender's packets on both its SSRC and its RTX SSRC
            if wire + wire_rtx != o["packets_sent"]:
                mismatches.append(
                    f"{kinds[r]} {o['kind']} ssrc {o['ssrc']}: getStats packetsSent "
                    f"{o['packets_sent']}, on the wire {wire} + RTX {wire_rtx}"
                )
            if ts["rtp_heur"].get(o["ssrc"], 0) != wire:
                mismatches.append(
                    f"ssrc {o['ssrc']}: tshark heuristics see {ts['rtp_heur'].get(o['ssrc'], 0)}, "
                    f"Decode-As {wire}"
                )
            rtp.append(row)
            if o["rtx_ssrc"]:
                if ts["rtp_heur"].get(o["rtx_ssrc"], 0) != wire_rtx:
                    mismatches.append(
                        f"RTX ssrc {o['rtx_ssrc']}: tshark heuristics see "
                        f"{ts['rtp_heur'].get(o['rtx_ssrc'], 0)}, Decode-As {wire_rtx}"
                    )
                rtp.append(
                    {
                        "ssrc": o["rtx_ssrc"],
                        "packets": wire_rtx,
                        "rtx_of": o["ssrc"],
                        "src": row["src"],
                        "dst": row["dst"],
                        "kind": o["kind"],
                        "side": r,
                        "browser": kinds[r],
                    }
                )
    if mismatches:
        raise RuntimeError("RTP counts disagree: " + "; ".join(mismatches))

    stun_ts = ts["stun"]
    pair_counters = {r: f["stun_pair_counters"] for r, f in side.items()}
    stun_gs = {
        "Binding/request": sum(c["requestsSent"] for c in pair_counters.values()),
        "Binding/success": sum(c["responsesSent"] for c in pair_counters.values()),
    }

    sdps, cands = [], []
    for r in ("caller", "callee"):
        sent = res[r]["localDescriptionSent"]
        facts = sdp_facts(sent["sdp"], sent["type"], "websocket", False)
        facts["browser"] = kinds[r]
        facts["trickle"] = True
        sdps.append(facts)
        for c in dict.fromkeys(x for x in res[r]["localCandidates"] if x):  # Firefox ends with ""
            row = _cand(c, candidate_fact, scope)
            row["side"] = r
            row["browser"] = kinds[r]
            cands.append(row)
    cands = dedupe(cands)
    mdns_cands = [c for c in cands if c.get("mdns")]
    raw_host = sorted({c["address"] for c in cands if c["type"] == "host" and not c.get("mdns")})
    private = sorted({c["address"] for c in cands if not c.get("mdns") and c["scope"] != "public"})
    ws_ep = [[f"{a_ip}", f"{sig_ip}:{HTTP_PORT}"], [f"{b_ip}", f"{sig_ip}:{HTTP_PORT}"]]
    findings = [
        {"slug": "signalling-plaintext", "endpoints": ep, "evidence": {"transport": "websocket"}}
        for ep in ws_ep
    ]
    if private:
        findings.append({"slug": "ice-private-ip-exposed", "endpoints": private})
    if raw_host:
        # browsers can hide host addresses behind mDNS names; Chromium does not once media permission is granted
        findings.append(
            {
                "slug": "ice-no-mdns",
                "severity": "low",
                "endpoints": raw_host,
                "evidence": {"browsers": sorted({c["browser"] for c in cands if c["address"] in raw_host})},
            }
        )
    agents = sorted({h[3] for h in ts["http"] if h[3]})
    servers = sorted({h[4] for h in ts["http"] if h[4]})
    if not any(res[r]["userAgent"] in agents for r in res):
        raise RuntimeError(
            f"tshark sees no HTTP User-Agent equal to the pages' navigator.userAgent: {agents}"
        )
    findings.append(
        {
            "slug": "software-disclosure",
            "endpoints": [a_ip, b_ip, f"{sig_ip}:{HTTP_PORT}"],
            "evidence": {"user_agents": agents, "server": servers},
        }
    )
    absent = [
        "sdes-key-exposed",
        "sdp-plain-rtp-offered",
        "rtp-unencrypted",
        "dtls-weak-version",
        "dtls-weak-cipher",
        "dtls-handshake-failed",
        "srtp-null-cipher",
        "srtp-weak-profile",
        "dtls-fingerprint-mismatch",
        "fingerprint-weak-hash",
        "signalling-weak-tls",
        "stun-no-integrity",
        "turn-open-relay",
        "turn-internal-peer",
        "ice-ipv6-eui64",
    ]
    if not private:
        absent.append("ice-private-ip-exposed")
    if not raw_host:
        absent.append("ice-no-mdns")
    dc = []
    caller_sent = res["caller"]["dcSent"]
    callee_sent = res["callee"]["dcSent"]
    if caller_sent:
        dc.append({"label": "chat", "messages": caller_sent + callee_sent})
    if sorted(res["callee"]["dcReceived"]) != sorted(caller_sent) or sorted(
        res["caller"]["dcReceived"]
    ) != sorted(callee_sent):
        raise RuntimeError("data-channel messages sent and received differ")
    # "datachannels" is checked with tshark when a keylog is present; tshark 4.0 cannot decrypt DTLS 1.3
    dc_key = "datachannels_dtls13" if keylog.exists() and dtls[0]["encrypted_handshake"] else "datachannels"

    notes = [
        (
            "Truth from the pages themselves (lab/web/call.js): SDPs, getStats(), navigator.userAgent, candidates, "
            "data-channel messages; tshark 4.0.17 cross-checks RTP per SSRC, STUN counts, ClientHello."
        ),
        (
            f"{dtls[0]['version']}: certificates and the SRTP profile travel encrypted; version, suite, SRTP "
            f"profile, certificate fingerprints come from transport/certificate stats of "
            f"{' and '.join(sorted({kinds[r] for r in dtls[0]['reported_by']}))} (both sides agree). "
            "client_random is read from the ClientHello on the wire (tshark)."
        ),
        "Media senders were stopped (replaceTrack(null)) 1.5 s before getStats() so packetsSent is final.",
    ]
    notes.append(
        "RTP per SSRC: counted on the wire by tshark with Decode-As on the media ports (RFC 5761 "
        "demux); for each sender the browser's getStats packetsSent equals its SSRC's count plus its RTX "
        "SSRC's count (RTX carries padding probes: retransmittedPacketsSent 0); RTX SSRCs are rows with "
        "'rtx_of'. tshark's rtp_udp heuristic sees the same counts."
    )
    if stun_gs == stun_ts:
        notes.append(
            "STUN counts: sum of getStats candidate-pair requestsSent/responsesSent over both browsers, "
            "equal to tshark's count."
        )
    else:
        notes.append(
            f"STUN counts: tshark's count on the wire; the browsers' getStats candidate-pair counters "
            f"gave {stun_gs} (Firefox reports no requestsSent/responsesSent; checks sent between "
            f"getStats() and close are not counted)."
        )
    notes.append(
        f"{ts['dtls13_unified']} UDP datagrams are DTLS 1.3 records with the unified header "
        f"(RFC 9147), which tshark 4.0 does not dissect (encrypted handshake, SCTP data channel)."
    )
    if mdns_cands:
        notes.append(
            f"{len(mdns_cands)} mDNS (.local) host candidates: "
            + ", ".join(sorted({c["browser"] + " " + c["address"] for c in mdns_cands}))
            + "."
        )
    else:
        notes.append(
            "No mDNS (.local) candidates: with camera/microphone permission granted the browsers expose "
            "raw host addresses."
        )
    if ts["mdns"]:
        notes.append(
            f"mDNS on the wire: {len(ts['mdns'])} frame(s) ("
            + "; ".join(f"{m[1]} asks {m[2]}" for m in ts["mdns"])
            + "); no answer: ICE succeeded through a "
            "peer-reflexive candidate learned from the mDNS side's checks."
        )
    resolved = [
        f"{kinds[r]} {k}: {v['selected_pair'][k + '_reported']!r} -> {v['selected_pair'][k]}"
        for r, v in side.items()
        if v["selected_pair"]
        for k in ("local", "remote")
        if k + "_reported" in v["selected_pair"]
    ]
    if resolved:
        notes.append(
            "Selected-pair addresses the browser did not report (mDNS name / redacted prflx) were filled "
            "in from the lab host's address: " + "; ".join(resolved) + "."
        )
    if dc_key == "datachannels_dtls13":
        notes.append(
            "Data-channel messages are under 'datachannels_dtls13': inside DTLS 1.3, readable with the "
            "keylog's traffic secrets but not by tshark 4.0."
        )
    notes.append(f"{ts['srtcp']} SRTCP packets (rtcp-mux) are not recognised by tshark's heuristics.")
    if ts["other"] != ts["dtls13_unified"] + ts["srtcp"]:
        notes.append(f"{ts['other'] - ts['dtls13_unified'] - ts['srtcp']} other undissected UDP datagrams.")
    truth = {
        "description": f"{kinds['caller']} calls {kinds['callee']} (headless, fake audio+video, data channel "
        f"'chat'), plain WebSocket signalling with trickled candidates; {dtls[0]['version']}",
        "stacks": {
            "chromium": _version(CHROMIUM),
            **({"firefox-esr": _version(FIREFOX)} if "firefox" in (caller, callee) else {}),
        },
        "keylog": keylog.name if keylog.exists() else None,
        "findings": findings,
        "absent_findings": absent,
        "user_agents": {r: res[r]["userAgent"] for r in res},
        "dtls": dtls,
        "sdp": sdps,
        "rtp": rtp,
        "stun": stun_ts,
        "stun_getstats_pair_counters": pair_counters,
        "candidates": cands,
        "selected_pairs": {r: side[r]["selected_pair"] for r in side},
        "transport_stats": {r: side[r]["transport"] for r in side},
        "certificates": {r: {"local": side[r]["local_cert"], "remote": side[r]["remote_cert"]} for r in side},
        "inbound": {r: side[r]["inbound"] for r in side},
        dc_key: dc,
        "datachannel_stats": {r: side[r]["data_channels"] for r in side},
        "notes": " ".join(notes),
    }
    if e2ee:
        _e2ee_truth(truth, res, kinds, secret, secret_b64)
    return truth


def _e2ee_truth(truth: dict, res: dict, kinds: dict, secret: bytes, secret_b64: str) -> None:
    """What the pages' E2EE worker (lab/web/e2ee_worker.js) did, cross-checked against getStats(); the
    srtp-e2ee-payload findings for the streams it sealed."""
    facts: dict[str, Any] = {}
    problems: list[str] = []
    for r in ("caller", "callee"):
        e = res[r].get("e2ee")
        if not e:
            raise RuntimeError(f"{r} page reports no E2EE facts")
        stats = res[r]["stats"]
        inbound = {}
        for i in _by_type(stats, "inbound-rtp"):
            inbound[i.get("kind")] = {
                k: i.get(k)
                for k in (
                    "ssrc",
                    "packetsReceived",
                    "packetsLost",
                    "framesDecoded",
                    "keyFramesDecoded",
                    "totalSamplesReceived",
                    "concealedSamples",
                    "silentConcealedSamples",
                    "audioLevel",
                    "totalAudioEnergy",
                )
                if k in i
            }
        facts[r] = {
            "browser": kinds[r],
            "api": e["api"],
            "secure_context": e["secure_context"],
            "secret_bytes": e["secret_bytes"],
            "transforms": sorted(e["transforms"], key=lambda t: (t["side"], t["kind"])),
            "inbound_after_decrypt": inbound,
        }
    for r in ("caller", "callee"):
        other = "callee" if r == "caller" else "caller"
        mine = {(t["side"], t["kind"]): t for t in facts[r]["transforms"]}
        theirs = {(t["side"], t["kind"]): t for t in facts[other]["transforms"]}
        for kind in ("audio", "video"):
            snd, rcv = mine.get(("send", kind)), theirs.get(("receive", kind))
            if not snd or not snd["frames"]:
                problems.append(f"{kinds[r]} sealed no {kind} frame")
                continue
            if not rcv or not rcv["frames"]:
                problems.append(f"{kinds[other]} opened no {kind} frame")
                continue
            if rcv["failures"]:
                problems.append(
                    f"{kinds[other]}: {rcv['failures']} {kind} frame(s) failed to open ({rcv['first_error']})"
                )
            out_ssrc = [
                o["ssrc"] for o in truth["rtp"] if o["side"] == r and o["kind"] == kind and "rtx_of" not in o
            ]
            if sorted(snd["ssrcs"]) != sorted(out_ssrc) or sorted(rcv["ssrcs"]) != sorted(out_ssrc):
                problems.append(
                    f"{kinds[r]} {kind}: sealing transform saw SSRC {snd['ssrcs']}, opening transform "
                    f"{rcv['ssrcs']}, getStats outbound {out_ssrc}"
                )
            if kind == "audio" and rcv["frames"] != snd["frames"]:
                # one Opus frame per packet, no loss on the lab's bridge: every sealed frame is opened
                problems.append(
                    f"{kind}: {kinds[r]} sealed {snd['frames']} frames, {kinds[other]} opened {rcv['frames']}"
                )
    if problems:
        raise RuntimeError("E2EE facts disagree: " + "; ".join(problems))
    truth["e2ee"] = {
        "scheme": (
            "lab/web/e2ee_worker.js: AES-128-GCM (WebCrypto) per encoded frame, SFrame-style layout (RFC "
            "9605 header: config byte + counter; 16-byte tag); audio frames sealed whole, video frames keep "
            "the VP8 payload header (10 bytes key / 3 bytes delta) in clear as associated data; one key+salt "
            "per sender and kind (HKDF-SHA-256 from a shared 16-byte secret), nonce = salt XOR counter"
        ),
        "secret_shared_via": "URL fragment of both pages (#e2ee-secret=...), never sent over HTTP",
        "sides": facts,
    }
    truth["secrets"] = {"e2ee_secret_b64url": secret_b64, "e2ee_secret_hex": secret.hex()}
    # every media stream the pages sealed (RTX streams carry padding probes and retransmissions of them)
    for row in truth["rtp"]:
        if "rtx_of" not in row:
            truth["findings"].append(
                {
                    "slug": "srtp-e2ee-payload",
                    "endpoints": [row["src"], row["dst"]],
                    "evidence": {"ssrc": row["ssrc"]},
                    "kind": row["kind"],
                }
            )
    # nothing on the lab's bridge alters packets, and every frame the receivers got opened
    truth["absent_findings"].append("srtp-auth-failure")
    truth["description"] += (
        "; every audio and video frame end-to-end encrypted by the pages (encoded transform, AES-GCM, "
        "SFrame-style header)"
    )
    truth["notes"] += (
        " E2EE: frame counters and SSRCs from the pages' transform worker (lab/web/e2ee_worker.js, "
        "RTCEncodedFrame.getMetadata().synchronizationSource), equal to the getStats outbound SSRCs; the "
        "receivers decoded the opened frames (inbound_after_decrypt: totalSamplesReceived, framesDecoded; "
        "concealedSamples are mostly the 1.5 s after the senders stopped). The shared secret is under "
        "'secrets' (never on the wire: it travels only in the URL fragment given on the browsers' command "
        "lines)."
    )


_STUN_METHOD = {"0x0001": "Binding", "0x001": "Binding", "1": "Binding"}
_STUN_CLASS = {
    "0x00": "request",
    "0x01": "indication",
    "0x02": "success",
    "0x03": "error",
    "0": "request",
    "1": "indication",
    "2": "success",
    "3": "error",
}


def _header_pt(answer_sdp: str, o: dict) -> tuple[int | None, int | None]:
    """RTP header payload type of an outbound stream: (header PT, RED PT or None).

    getStats' codecId names the media codec (e.g. VP8, PT 96). When the negotiated answer's section for the
    stream (a=mid) carries both red/90000 and ulpfec/90000, Chromium and Firefox send video inside RED
    (RFC 2198, the ULPFEC wrapper, RFC 5109): the RTP header then has the RED PT and the codec PT sits in
    the (encrypted) RED block header. Cross-checked against the wire by the caller."""
    sections, cur = [], None
    for line in answer_sdp.splitlines():
        if line.startswith("m="):
            cur = {"mid": None, "codecs": {}}
            sections.append(cur)
        elif cur is not None and line.startswith("a=mid:"):
            cur["mid"] = line.split(":", 1)[1].strip()
        elif cur is not None and line.startswith("a=rtpmap:"):
            pt, enc = line[len("a=rtpmap:") :].split(" ", 1)
            cur["codecs"].setdefault(enc.split("/")[0].lower(), int(pt))
    sec = next((x for x in sections if x["mid"] == str(o.get("mid"))), None)
    if sec is None or o.get("pt") is None:
        return o.get("pt"), None
    codecs = sec["codecs"]
    if o.get("kind") == "video" and "red" in codecs and "ulpfec" in codecs and codecs["red"] != o["pt"]:
        return codecs["red"], codecs["red"]
    return o["pt"], None


def _cand(c: str, candidate_fact: Any, scope: Any) -> dict:
    parts = c.split(":", 1)[1].split()
    if parts[4].endswith(".local"):
        row = {
            "address": parts[4],
            "port": int(parts[5]),
            "transport": parts[2].lower(),
            "type": parts[7],
            "scope": "mdns",
            "mdns": True,
        }
        if "raddr" in parts:
            row["raddr"] = parts[parts.index("raddr") + 1]
        return row
    return candidate_fact(c)


def _version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], check=False, capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        return "?"
    return out.strip().split()[-1] if "Firefox" in out else (out.split()[1] if out.split() else "?")


def browsers_chromium(out: Path) -> dict:
    return _run_call("browsers_chromium", out, "chromium", "chromium", "10.10.0", keylog_from_firefox=False)


def browsers_firefox_chromium(out: Path) -> dict:
    return _run_call(
        "browsers_firefox_chromium", out, "firefox", "chromium", "198.51.100", keylog_from_firefox=True
    )


def browsers_e2ee(out: Path) -> dict:
    return _run_call(
        "browsers_e2ee", out, "firefox", "chromium", "203.0.113", keylog_from_firefox=True, e2ee=True
    )


SCENARIOS = {
    "browsers_chromium": browsers_chromium,
    "browsers_firefox_chromium": browsers_firefox_chromium,
    "browsers_e2ee": browsers_e2ee,
}


def main(argv: list[str] | None = None) -> None:
    command_main("lab.scenarios.browsers", {"serve": (serve, SERVE_OPTIONS)}, argv)


if __name__ == "__main__":
    main()
