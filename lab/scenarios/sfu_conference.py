"""An SFU conference: sfu_conference.

Janus 1.1.2 (Debian's ``janus``) VideoRoom on its own host (203.0.113.30); three headless browsers — two
Chromium, one Firefox ESR writing its SSLKEYLOGFILE — each load ``lab/web/sfu_conference.html`` from a page server
(203.0.113.10:8080, this module's ``serve``) and drive Janus's WebSocket API in plain JS (ws://203.0.113.30:8188,
no TLS): each publishes audio+video on one PeerConnection and subscribes to the two others on one PeerConnection
per feed, so every participant runs three ICE/DTLS sessions, all with Janus. Janus answers publishers with
``a=setup:active`` (Janus is the DTLS client) and offers to subscribers (the browser is the DTLS client); DTLS 1.2.

The pages are paced by the scenario (``/wait/stop``, ``/wait/leave``): all senders stop together
(encodings inactive, replaceTrack(null)), getStats() of every PeerConnection 2 s later, then Janus's admin API (HTTP on 127.0.0.1 in
the SFU's namespace, off the wire) lists every session and handle with ``handle_info`` (ICE selected pair, DTLS
role/state/fingerprints, SSRCs, packet counters per medium), then the pages leave.

Truth: Janus's admin API and the browsers' getStats(); tshark (not our parser) cross-checks RTP per SSRC and
reads the DTLS ClientHello randoms (they travel in clear).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.netns import Host, Lab
from lab.pages import HTTP_PORT, SERVE_OPTIONS, command_main, serve_pages
from lab.scenarios.aiortc_calls import absent
from lab.scenarios.browsers import _chromium, _firefox, _kill_namespace, _version

NAME = "sfu_conference"
SFU_IP, WEB_IP = "203.0.113.30", "203.0.113.10"
WS_PORT, ADMIN_PORT = 8188, 7088
ROOM = 1234
ADMIN_SECRET = "rtcf-janus-admin-7c41"
SECONDS = 2
# Firefox first: it takes longest to start; the Chromiums start once it publishes (capture size)
PARTICIPANTS = (
    ("carol", "firefox", "192.0.2.13"),
    ("alice", "chromium", "192.0.2.11"),
    ("bob", "chromium", "198.51.100.12"),
)
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


# --------------------------------------------------------------------------------------------------------------
# page server (run inside the "web" namespace)


def serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    work = Path(args.work)

    async def note(request: web.Request) -> web.Response:
        kind, who = request.match_info["kind"], request.match_info["who"]
        tmp = work / f".{kind}_{who}.json"
        tmp.write_text(await request.text())
        tmp.rename(work / f"{kind}_{who}.json")
        return web.Response(text="ok\n")

    async def wait(request: web.Request) -> web.Response:
        flag = work / f"flag_{request.match_info['flag']}"
        while not flag.exists():
            await asyncio.sleep(0.1)
        return web.Response(text="go\n")

    serve_pages(
        args.host,
        ("sfu_conference.html", "sfu_conference.js"),
        [("GET", "/wait/{flag}", wait), ("POST", "/{kind:published|ready|result|closed}/{who}", note)],
        max_body=32 * 1024 * 1024,
    )


# --------------------------------------------------------------------------------------------------------------
# Janus


def janus_config(w: Path) -> Path:
    d = w / "janus"
    d.mkdir()
    keep_plugins = {"libjanus_videoroom.so"}
    plugins = sorted(p.name for p in (JANUS_LIB / "plugins").glob("*.so") if p.name not in keep_plugins)
    transports = sorted(
        p.name
        for p in (JANUS_LIB / "transports").glob("*.so")
        if p.name not in ("libjanus_websockets.so", "libjanus_http.so")
    )
    (d / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{d}"
    plugins_folder = "{JANUS_LIB / "plugins"}"
    transports_folder = "{JANUS_LIB / "transports"}"
    events_folder = "{JANUS_LIB / "events"}"
    loggers_folder = "{JANUS_LIB / "loggers"}"
    debug_level = 4
    admin_secret = "{ADMIN_SECRET}"
    server_name = "rtcf-lab-sfu"
    session_timeout = 60
}}
media: {{
    ipv6 = false
    rtp_port_range = "20000-20200"
}}
nat: {{
    ice_enforce_list = "eth0"
    ignore_mdns = true
}}
plugins: {{
    disable = "{",".join(plugins)}"
}}
transports: {{
    disable = "{",".join(transports)}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
"""
    )
    (d / "janus.transport.websockets.jcfg").write_text(
        f"""general: {{
    json = "indented"
    ws = true
    ws_port = {WS_PORT}
    ws_ip = "{SFU_IP}"
    wss = false
}}
admin: {{
    admin_ws = false
    admin_wss = false
}}
"""
    )
    (d / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    json = "indented"
    base_path = "/janus"
    http = false
    https = false
}}
admin: {{
    admin_base_path = "/admin"
    admin_http = true
    admin_port = {ADMIN_PORT}
    admin_ip = "127.0.0.1"
    admin_https = false
}}
"""
    )
    (d / "janus.plugin.videoroom.jcfg").write_text(
        f"""room-{ROOM}: {{
    description = "rtcf lab conference"
    publishers = 3
    bitrate = 48000
    fir_freq = 10
    audiocodec = "opus"
    videocodec = "vp8"
}}
"""
    )
    return d


def admin(sfu: Host, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One Janus admin API request over HTTP on the SFU's loopback (never on the bridge)."""
    body = {**body, "transaction": f"rtcf-{time.monotonic_ns()}", "admin_secret": ADMIN_SECRET}
    r = sfu.run(
        "curl", "-s", "-m", "10", "-d", json.dumps(body), f"http://127.0.0.1:{ADMIN_PORT}/admin{path}"
    )
    res = json.loads(r.stdout)
    if res.get("janus") not in ("success", "server_info"):
        raise RuntimeError(f"janus admin {path} {body['janus']}: {res}")
    return res


def admin_snapshot(sfu: Host) -> dict[str, Any]:
    snap: dict[str, Any] = {"info": admin(sfu, "", {"janus": "info"}), "sessions": {}}
    for sid in admin(sfu, "", {"janus": "list_sessions"})["sessions"]:
        handles = {}
        for hid in admin(sfu, f"/{sid}", {"janus": "list_handles"})["handles"]:
            handles[str(hid)] = admin(sfu, f"/{sid}/{hid}", {"janus": "handle_info"})["info"]
        snap["sessions"][str(sid)] = handles
    return snap


# --------------------------------------------------------------------------------------------------------------
# the scenario


def _wait_files(paths: list[Path], timeout: float, what: str, work: Path) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for f in work.glob("result_*.json"):
            errs = json.loads(f.read_text()).get("errors")
            if errs:
                raise RuntimeError(f"{f.name}: page errors {errs}")
        if time.monotonic() > deadline:
            missing = [p.name for p in paths if not p.exists()]
            raise RuntimeError(f"timed out waiting for {what}: {missing} (see {work})")
        time.sleep(0.2)


def sfu_conference(out: Path) -> dict[str, Any]:
    w = T.workdir(NAME)
    cap, keylog = out / f"{NAME}.pcapng", out / f"{NAME}.keylog"
    if keylog.exists():
        keylog.unlink()
    raw_keylog = w / "firefox.keylog"
    conf = janus_config(w)
    profiles: list[Path] = []
    try:
        with Lab(NAME) as lab:
            sfu = lab.host("sfu", f"{SFU_IP}/24")
            web = lab.host("web", f"{WEB_IP}/24")
            hosts = {who: lab.host(who, f"{ip}/24") for who, _kind, ip in PARTICIPANTS}
            for h in (sfu, web):
                for n in ("192.0.2.0/24", "198.51.100.0/24"):
                    h.run("ip", "route", "add", n, "dev", "eth0")
            for h in hosts.values():
                h.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
                h.run("ip", "route", "add", "224.0.0.0/4", "dev", "eth0", check=False)
            with lab.capture(cap):
                pj = sfu.popen(
                    [
                        "janus",
                        "-C",
                        str(conf / "janus.jcfg"),
                        "-F",
                        str(conf),
                        "-o",
                        "-N",
                        "-L",
                        str(w / "janus.log"),
                    ],
                    log=w / "janus.stdout",
                )
                sfu.wait_listening(WS_PORT, proc=pj)
                sfu.wait_listening(ADMIN_PORT, proc=pj)
                web.popen(
                    [
                        sys.executable,
                        "-m",
                        "lab.scenarios.sfu_conference",
                        "serve",
                        "--work",
                        str(w),
                        "--host",
                        WEB_IP,
                    ],
                    log=w / "web.log",
                    cwd=str(T.ROOT),
                )
                web.wait_listening(HTTP_PORT)
                for who, kind, _ip in PARTICIPANTS:
                    url = (
                        f"http://{WEB_IP}:{HTTP_PORT}/sfu_conference.html?name={who}&janus=ws://{SFU_IP}:{WS_PORT}"
                        f"&room={ROOM}&feeds={len(PARTICIPANTS) - 1}"
                    )
                    if kind == "chromium":
                        _p, prof = _chromium(hosts[who], url, w, who)
                    else:
                        _p, prof = _firefox(hosts[who], url, w, who, raw_keylog)
                    profiles.append(prof)
                    if kind == "firefox":  # the slowest to start: the others join once it publishes
                        _wait_files([w / f"published_{who}.json"], 60, f"{who} to publish", w)
                names = [who for who, _k, _i in PARTICIPANTS]
                _wait_files([w / f"ready_{n}.json" for n in names], 90, "every participant connected", w)
                time.sleep(SECONDS)
                (w / "flag_stop").write_text("stop\n")
                _wait_files([w / f"result_{n}.json" for n in names], 30, "getStats", w)
                snapshot = admin_snapshot(sfu)
                (w / "janus_admin.json").write_text(json.dumps(snapshot, indent=1))
                (w / "flag_leave").write_text("leave\n")
                _wait_files([w / f"closed_{n}.json" for n in names], 30, "the pages to leave", w)
                time.sleep(0.5)
                lab.stop_all()
                for h in hosts.values():
                    _kill_namespace(h)
    finally:
        for p in profiles:
            shutil.rmtree(p, ignore_errors=True)
    cap.chmod(0o644)
    if not raw_keylog.exists():
        raise RuntimeError("Firefox wrote no SSLKEYLOGFILE")
    lines = [x for x in raw_keylog.read_text().splitlines() if x.strip() and not x.startswith("#")]
    keylog.write_text("\n".join(dict.fromkeys(lines)) + "\n")
    keylog.chmod(0o644)
    results = {who: json.loads((w / f"result_{who}.json").read_text()) for who, _k, _i in PARTICIPANTS}
    return build_truth(cap, keylog, w, results, snapshot)


def _ufrag(sdp: str) -> str | None:
    return next(
        (ln.split(":", 1)[1].strip() for ln in sdp.splitlines() if ln.startswith("a=ice-ufrag:")), None
    )


def _hex(fp: str) -> str:
    return fp.replace(":", "").lower()


def _pair_ends(selected: str) -> tuple[str, str]:
    """Janus's 'selected-pair' ("203.0.113.30:20000 [host,udp] <-> 198.51.100.12:34206 [host,udp]")."""
    left, right = selected.split("<->")
    return left.split()[0], right.split()[0]


def wire_rtp_and_hellos(cap: Path) -> tuple[Counter, dict[tuple[str, str], list[str]], dict[int, set[str]]]:
    """What tshark reads: RTP per (SSRC, src, dst); DTLS ClientHello randoms per (src, dst); RTP header PT per
    SSRC."""
    rtp: Counter = Counter()
    pts: dict[int, set[str]] = {}
    for ssrc, s, sp, d, dp, pt in T.tshark_fields(
        cap,
        ["rtp.ssrc", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "rtp.p_type"],
        display_filter="rtp && !rtcp && !icmp",
        first_only=True,
    ):
        if ssrc:
            rtp[(int(ssrc, 16), f"{s}:{sp}", f"{d}:{dp}")] += 1
            pts.setdefault(int(ssrc, 16), set()).add(pt)
    hellos: dict[tuple[str, str], list[str]] = {}
    for s, sp, d, dp, rnd in T.tshark_fields(
        cap,
        ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "dtls.handshake.random"],
        display_filter="dtls.handshake.type == 1 && !icmp",
        first_only=True,
    ):
        if rnd:  # a fragmented ClientHello: the random is read once, in the reassembled message
            hellos.setdefault((f"{s}:{sp}", f"{d}:{dp}"), []).append(rnd.replace(":", "").lower())
    return rtp, hellos, pts


def _transport_stats(stats: list[dict]) -> dict[str, Any]:
    t = next((x for x in stats if x.get("type") == "transport"), {})
    return {
        k: t.get(k) for k in ("dtlsState", "tlsVersion", "dtlsCipher", "srtpCipher", "dtlsRole", "iceRole")
    }


def build_truth(cap: Path, keylog: Path, w: Path, results: dict, snapshot: dict) -> dict[str, Any]:
    from lab.scenarios.browsers import SRTP_IANA as BROWSER_SRTP
    from lab.scenarios.browsers import TLS_VERSION, _cand

    kinds = {who: kind for who, kind, _ip in PARTICIPANTS}
    ips = {who: ip for who, _kind, ip in PARTICIPANTS}
    handles = {hid: h for hs in snapshot["sessions"].values() for hid, h in hs.items()}
    by_ufrag = {_ufrag(h["sdps"]["local"]): (hid, h) for hid, h in handles.items()}
    # every PeerConnection of every page, matched to its Janus handle by Janus's ICE ufrag in the SDP it sent
    pcs: list[dict[str, Any]] = []
    for who, res in results.items():
        if res.get("errors"):
            raise RuntimeError(f"{who}: page errors {res['errors']}")
        pub = res["publisher"]
        rows = [("publisher", who, pub["localOffer"], pub["remoteAnswer"], pub["stats"])]
        rows += [
            ("subscriber", s["display"], s["localAnswer"], s["remoteOffer"], s["stats"])
            for s in res["subscribers"]
        ]
        for role, feed, browser_sdp, janus_sdp, stats in rows:
            hid, h = by_ufrag[_ufrag(janus_sdp)]
            ps = h["plugin_specific"]
            if ps["type"] != role or (role == "publisher" and ps["display"] != who):
                raise RuntimeError(
                    f"{who} {role}: matched Janus handle {hid} is {ps['type']} {ps.get('display')}"
                )
            if role == "subscriber" and {x["feed_display"] for x in ps["streams"]} != {feed}:
                raise RuntimeError(f"{who} subscriber to {feed}: Janus handle {hid} feeds {ps['streams']}")
            pcs.append(
                {
                    "who": who,
                    "role": role,
                    "feed": feed,
                    "handle": hid,
                    "janus": h,
                    "browser_sdp": browser_sdp,
                    "janus_sdp": janus_sdp,
                    "stats": stats,
                }
            )
    if len(pcs) != len(handles) or len(pcs) != len(PARTICIPANTS) ** 2:
        raise RuntimeError(f"{len(pcs)} PeerConnections for {len(handles)} Janus handles")

    wire_rtp, hellos, wire_pts = wire_rtp_and_hellos(cap)
    keylog_randoms = {
        ln.split()[1].lower() for ln in keylog.read_text().splitlines() if ln.startswith("CLIENT_RANDOM")
    }
    rtp, dtls, sdps, legs, cands = [], [], [], [], []
    for pc in pcs:
        h = pc["janus"]["webrtc"]
        janus_ep, browser_ep = _pair_ends(h["ice"]["selected-pair"])
        if not browser_ep.startswith(ips[pc["who"]] + ":"):
            raise RuntimeError(f"{pc['who']}: Janus's selected pair {h['ice']['selected-pair']}")
        if h["ice"]["state"] != "ready" or h["dtls"]["dtls-state"] != "connected":
            raise RuntimeError(
                f"handle {pc['handle']}: ICE {h['ice']['state']} DTLS {h['dtls']['dtls-state']}"
            )
        tr = _transport_stats(pc["stats"])
        # DTLS roles: Janus 'active' = Janus is the DTLS client
        janus_client = h["dtls"]["dtls-role"] == "active"
        client, server = (janus_ep, browser_ep) if janus_client else (browser_ep, janus_ep)
        randoms = hellos.get((client, server), [])
        if len(set(randoms)) != 1:
            raise RuntimeError(f"{client} -> {server}: ClientHello randoms on the wire {randoms}")
        if kinds[pc["who"]] == "firefox" and not janus_client and randoms[0] not in keylog_randoms:
            raise RuntimeError(f"Firefox's ClientHello random {randoms[0]} is not in its keylog")
        janus_cert, browser_cert = _hex(h["dtls"]["fingerprint"]), _hex(h["dtls"]["remote-fingerprint"])
        fps = T.sdp_facts(pc["browser_sdp"], "", "websocket", False)["fingerprint"]
        if fps.get("sha-256") != browser_cert or h["dtls"]["remote-fingerprint-hash"] != "sha-256":
            raise RuntimeError(
                f"{pc['who']}: Janus's remote fingerprint is not the browser's SDP fingerprint"
            )
        profile = T.SRTP_IANA.get(h["dtls"]["srtp-profile"], h["dtls"]["srtp-profile"])
        if BROWSER_SRTP.get(tr["srtpCipher"], tr["srtpCipher"]) != profile:
            raise RuntimeError(f"{pc['who']}: browser SRTP {tr['srtpCipher']} != Janus {profile}")
        dtls.append(
            {
                "client": client,
                "server": server,
                "client_is": "janus" if janus_client else kinds[pc["who"]],
                "participant": pc["who"],
                "peer_connection": f"{pc['role']}:{pc['feed']}",
                "client_random": randoms[0],
                "version": TLS_VERSION[tr["tlsVersion"].upper()],
                "cipher_suite": tr["dtlsCipher"],
                "srtp_profile": profile,
                "client_cert_sha256": janus_cert if janus_client else browser_cert,
                "server_cert_sha256": browser_cert if janus_client else janus_cert,
                "encrypted_handshake": tr["tlsVersion"].upper() == "FEFC",
                "completed": True,
                "janus_handle": pc["handle"],
            }
        )
        # RTP: Janus's own per-m-line counters (publisher: received from the browser; subscriber: sent to it)
        outbound = {s["ssrc"]: s for s in pc["stats"] if s.get("type") == "outbound-rtp"}
        inbound = {s["ssrc"]: s for s in pc["stats"] if s.get("type") == "inbound-rtp"}
        for m in h["media"].values():
            if pc["role"] == "publisher":
                ssrc, packets, src, dst = (
                    m["ssrc"]["ssrc-peer"],
                    m["stats"]["in"]["packets"],
                    browser_ep,
                    janus_ep,
                )
                extra = {
                    "getstats_packets_sent": outbound.get(ssrc, {}).get("packetsSent"),
                    "getstats_rtx_ssrc": outbound.get(ssrc, {}).get("rtxSsrc"),
                }
                sender = pc["who"]
            else:
                ssrc, packets, src, dst = (
                    m["ssrc"]["ssrc"],
                    m["stats"]["out"]["packets"],
                    janus_ep,
                    browser_ep,
                )
                extra = {
                    "getstats_packets_received": inbound.get(ssrc, {}).get("packetsReceived"),
                    "forwarded_from": pc["feed"],
                }
                sender = "janus"
            if wire_pts.get(ssrc) != {str(m["codecs"]["pt"])}:
                raise RuntimeError(f"SSRC {ssrc}: RTP payload types on the wire {wire_pts.get(ssrc)}")
            on_wire = wire_rtp.get((ssrc, src, dst), 0)
            if on_wire != packets or sum(v for (x, _a, _b), v in wire_rtp.items() if x == ssrc) != packets:
                raise RuntimeError(
                    f"SSRC {ssrc} {src}->{dst}: Janus counted {packets}, tshark reads {on_wire}"
                )
            rtp.append(
                {
                    "ssrc": ssrc,
                    "packets": packets,
                    "src": src,
                    "dst": dst,
                    "pt": m["codecs"]["pt"],
                    "kind": m["type"],
                    "codec": m["codecs"]["codec"],
                    "sender": sender,
                    "participant": pc["who"],
                    "leg": pc["role"],
                    **extra,
                }
            )
        sdps.append(
            {
                **T.sdp_facts(
                    pc["browser_sdp"], "offer" if pc["role"] == "publisher" else "answer", "websocket", False
                ),
                "sent_by": pc["who"],
                "to": f"{SFU_IP}:{WS_PORT}",
            }
        )
        sdps.append(
            {
                **T.sdp_facts(
                    pc["janus_sdp"], "answer" if pc["role"] == "publisher" else "offer", "websocket", False
                ),
                "sent_by": "janus",
                "to": pc["who"],
            }
        )
        for ln in pc["browser_sdp"].splitlines():
            if ln.startswith("a=candidate:"):
                cands.append({**_cand(ln[2:], T.candidate_fact, T.scope), "side": pc["who"]})
        for ln in pc["janus_sdp"].splitlines():
            if ln.startswith("a=candidate:"):
                cands.append({**T.candidate_fact(ln[2:]), "side": "janus"})
        legs.append(
            {
                "participant": pc["who"],
                "browser": kinds[pc["who"]],
                "peer_connection": f"{pc['role']}:{pc['feed']}",
                "janus_handle": pc["handle"],
                "janus_session": pc["janus"]["session_id"],
                "browser_endpoint": browser_ep,
                "sfu_endpoint": janus_ep,
                "janus_selected_pair": h["ice"]["selected-pair"],
                "ice_state": h["ice"]["state"],
                "dtls_role_janus": h["dtls"]["dtls-role"],
                "dtls_state": h["dtls"]["dtls-state"],
                "browser_transport_stats": tr,
                "ssrcs": {m["type"]: m["ssrc"] for m in h["media"].values()},
                "janus_packets": {
                    m["type"]: {"in": m["stats"]["in"]["packets"], "out": m["stats"]["out"]["packets"]}
                    for m in h["media"].values()
                },
            }
        )
    seen_ssrcs = {r["ssrc"] for r in rtp}
    rtx = Counter({k: v for k, v in wire_rtp.items() if k[0] not in seen_ssrcs})
    janus_rtx = {
        m["ssrc"].get("ssrc-peer-rtx") for h in handles.values() for m in h["webrtc"]["media"].values()
    }
    if any(k[0] not in janus_rtx for k in rtx):
        raise RuntimeError(f"RTP on the wire with SSRCs neither Janus nor a browser reported: {rtx}")
    info = snapshot["info"]
    participants = {
        who: {
            "browser": kinds[who],
            "address": ips[who],
            "user_agent": results[who]["userAgent"],
            "publisher_id": results[who]["publisher"]["id"],
            "janus_session": results[who]["sessionId"],
        }
        for who in results
    }
    findings: list[dict[str, Any]] = [
        {
            "slug": "signalling-plaintext",
            "endpoints": [ips[who], f"{SFU_IP}:{WS_PORT}"],
            "evidence": {"transport": "websocket"},
        }
        for who, _k, _i in PARTICIPANTS
    ]
    # the pages POST their getStats()/SDPs to the lab's page server in clear (http://203.0.113.10:8080/result/..)
    findings += [
        {
            "slug": "signalling-plaintext",
            "endpoints": [ips[who], f"{WEB_IP}:{HTTP_PORT}"],
            "evidence": {"transport": "http"},
            "note": "the lab page's result POST (SDPs and getStats) in clear",
        }
        for who, _k, _i in PARTICIPANTS
    ]
    return {
        "description": "Janus 1.1.2 VideoRoom SFU with three headless browsers (2 Chromium, 1 Firefox ESR with "
        "SSLKEYLOGFILE) each publishing audio+video and subscribing to the two others: 9 PeerConnections, "
        "9 DTLS 1.2 handshakes, all with Janus; Janus API over plain WebSocket (ws://203.0.113.30:8188); "
        "media hop-by-hop SRTP (the SFU decrypts and re-encrypts), not end-to-end",
        "stacks": {
            "janus": info["version_string"],
            "janus_crypto": info["dependencies"]["crypto"],
            "libnice": info["dependencies"]["libnice"],
            "libsrtp": info["dependencies"]["libsrtp"],
            "chromium": _version("chromium"),
            "firefox-esr": _version("firefox-esr"),
        },
        "keylog": keylog.name,
        "sfu": SFU_IP,
        "sfu_api": f"{SFU_IP}:{WS_PORT}",
        "sfu_media_endpoints": sorted({lg["sfu_endpoint"] for lg in legs}),
        "topology": "star: every participant's PeerConnections (1 publisher + 2 subscribers) end at Janus; no "
        "media flows between participants",
        "media_protection": {"scheme": "DTLS-SRTP hop by hop", "sfu_reads_media": True, "end_to_end": False},
        "participants": participants,
        "secrets": {"janus_admin_secret": ADMIN_SECRET},
        "legs": legs,
        "findings": findings,
        # every slug the truth does not list is absent, and the media is not end-to-end encrypted
        "absent_findings": [*absent(*{f["slug"] for f in findings}), "srtp-e2ee-payload"],
        "dtls": dtls,
        "sdp": sdps,
        "rtp": rtp,
        "rtx_on_wire": [
            {"ssrc": k[0], "src": k[1], "dst": k[2], "packets": v} for k, v in sorted(rtx.items())
        ],
        "candidates": T.dedupe(cands),
        "janus": {
            "version": info["version_string"],
            "server_name": info["server-name"],
            "handles": len(handles),
            "sessions": len(snapshot["sessions"]),
            "room": ROOM,
        },
        "notes": "Truth from Janus's admin API (handle_info: ICE selected pair and state, DTLS role/state/"
        "fingerprints/SRTP profile, SSRCs and packet counters per m-line, queried on the SFU's loopback after "
        "every sender had stopped) and the browsers' getStats() (transport stats: DTLS version, cipher, SRTP "
        "cipher). RTP rows: media SSRCs only, counted by Janus (in: from a publisher, out: to a subscriber), "
        "equal to tshark's counts; the browsers' RTX SSRCs (padding probes, never retransmissions here) are "
        "listed under rtx_on_wire as tshark reads them. client_random is read from the ClientHello on the wire "
        "(tshark); Firefox's are also in its keylog. Janus is the DTLS client toward publishers "
        "(a=setup:active), the browsers toward Janus on subscriber PeerConnections.",
    }


SCENARIOS = {NAME: sfu_conference}


def main(argv: list[str] | None = None) -> None:
    command_main("lab.scenarios.sfu_conference", {"serve": (serve, SERVE_OPTIONS)}, argv)


if __name__ == "__main__":
    main()
