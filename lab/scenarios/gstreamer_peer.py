"""A third WebRTC stack: gstreamer_peer.

GStreamer 1.22 ``webrtcbin`` (Debian's gstreamer1.0-plugins-bad: webrtcbin, DTLS (OpenSSL), SRTP (libsrtp2),
SCTP; gstreamer1.0-nice: libnice ICE) driven from Python through GObject introspection calls headless Chromium.
Chromium loads ``lab/web/call.html`` as the callee from ``python -m lab.scenarios.browsers serve`` (plain
WebSocket signalling ``/ws/lab/{caller,callee}``: JSON {type, sdp} and trickled {candidate, sdpMid,
sdpMLineIndex}); this module's ``peer`` command is the caller and speaks the same protocol: it offers audio
(Opus from audiotestsrc) + video (VP8 from videotestsrc, 160x120) sendrecv and a data channel "chat" with three
messages (Chromium's page echoes each one back), receives Chromium's audio+video into fakesinks, stops its
senders (valves) after a few seconds and reads webrtcbin's ``get-stats``.

The peer runs with the project's venv interpreter (aiohttp for the WebSocket) and Debian's python3-gi appended
to sys.path (``/usr/lib/python3/dist-packages``; the venv's Python is 3.11 like Debian's, so the compiled gi
module loads). Truth: webrtcbin's stats and SDPs, Chromium's getStats() and SDPs; tshark cross-checks RTP per
SSRC and reads the DTLS ClientHello random (the handshake is DTLS 1.2 in clear: GStreamer's OpenSSL 3.0 has no
DTLS 1.3). Neither stack writes DTLS keys, so there is no keylog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.netns import Lab
from lab.pages import HTTP_PORT, REQUIRED, command_main
from lab.scenarios.aiortc_calls import absent
from lab.scenarios.browsers import _chromium, _kill_namespace, _version
from lab.scenarios.sfu_conference import wire_rtp_and_hellos

NAME = "gstreamer_peer"
NET = "198.51.100"
SIG_IP, GST_IP, CHR_IP = f"{NET}.2", f"{NET}.21", f"{NET}.22"
SECONDS = 3
MESSAGES = 3
SYSTEM_DIST = "/usr/lib/python3/dist-packages"
PIPELINE = (
    "webrtcbin name=webrtc bundle-policy=max-bundle "
    "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! "
    "valve name=audiovalve drop=false ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! webrtc. "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=10/1 ! videoconvert ! "
    "vp8enc deadline=1 target-bitrate=100000 keyframe-max-dist=30 ! rtpvp8pay pt=96 ! "
    "valve name=videovalve drop=false ! application/x-rtp,media=video,encoding-name=VP8,payload=96 ! webrtc."
)


# --------------------------------------------------------------------------------------------------------------
# the webrtcbin peer (runs inside the "gst" namespace)


def _gvalue(v: Any) -> Any:
    """A stats field as JSON: numbers/strings/bools as they are, enums by nick, anything else as text."""
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    nick = getattr(v, "value_nick", None)
    if nick is not None:
        return nick
    return str(v)


def _structure(s: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def each(field_id: int, value: Any) -> bool:
        from gi.repository import GLib

        out[GLib.quark_to_string(field_id)] = _gvalue(value)
        return True

    s.foreach(each)
    return out


def run_peer(args: argparse.Namespace) -> None:
    sys.path.append(SYSTEM_DIST)
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    gi.require_version("GstSdp", "1.0")
    import aiohttp
    from gi.repository import GLib, Gst, GstSdp, GstWebRTC

    Gst.init(None)
    rec: dict[str, Any] = {
        "gstreamer": Gst.version_string(),
        "local_candidates": [],
        "remote_candidates": [],
        "dc_sent": [],
        "dc_received": [],
        "states": [],
        "errors": [],
    }
    pipe = Gst.parse_launch(PIPELINE)
    webrtc = pipe.get_by_name("webrtc")
    loop = asyncio.new_event_loop()
    outq: asyncio.Queue = asyncio.Queue()
    connected = asyncio.Event()
    echoes = asyncio.Event()
    glib_loop = GLib.MainLoop()
    threading.Thread(target=glib_loop.run, daemon=True).start()
    channel: dict[str, Any] = {}

    def send(obj: dict) -> None:
        loop.call_soon_threadsafe(outq.put_nowait, obj)

    def mids(sdp: str) -> list[str]:
        return [ln.split(":", 1)[1].strip() for ln in sdp.splitlines() if ln.startswith("a=mid:")]

    def on_offer(promise: Gst.Promise, _data: Any) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        if offer is None or offer.sdp is None:
            rec["errors"].append(f"create-offer: {reply.to_string() if reply else None}")
            return
        text = offer.sdp.as_text()
        webrtc.emit("set-local-description", offer, Gst.Promise.new())
        rec["local_sdp"] = text
        rec["mids"] = mids(text)
        send({"type": "offer", "sdp": text})

    def on_negotiation_needed(element: Any) -> None:
        if "offer_made" in rec:
            return
        rec["offer_made"] = True
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))

    def on_dc_open(dc: Any) -> None:
        for i in range(1, MESSAGES + 1):
            m = f"hello {i} from gstreamer"
            dc.emit("send-string", m)
            rec["dc_sent"].append(m)

    def on_dc_message(dc: Any, msg: str) -> None:
        rec["dc_received"].append(msg)
        if len(rec["dc_received"]) >= MESSAGES:
            loop.call_soon_threadsafe(echoes.set)

    def on_ice_candidate(element: Any, mline: int, cand: str) -> None:
        rec["local_candidates"].append(cand)
        mid = rec["mids"][mline] if mline < len(rec.get("mids", [])) else str(mline)
        send({"candidate": cand, "sdpMid": mid, "sdpMLineIndex": mline})

    def on_gathering(element: Any, _pspec: Any) -> None:
        state = element.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and "gathered" not in rec:
            rec["gathered"] = True
            send({"candidate": None})

    def on_connection(element: Any, _pspec: Any) -> None:
        state = element.get_property("connection-state")
        rec["states"].append(state.value_nick)
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            loop.call_soon_threadsafe(connected.set)

    def on_pad(element: Any, pad: Any) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        rec.setdefault("receive_pads", []).append(
            pad.get_current_caps().to_string() if pad.get_current_caps() else ""
        )

    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect("on-ice-candidate", on_ice_candidate)
    webrtc.connect("notify::ice-gathering-state", on_gathering)
    webrtc.connect("notify::connection-state", on_connection)
    webrtc.connect("pad-added", on_pad)

    def stats() -> list[dict[str, Any]]:
        promise = Gst.Promise.new()
        webrtc.emit("get-stats", None, promise)
        promise.wait()
        reply = promise.get_reply()
        rows: list[dict[str, Any]] = []

        def each(_field_id: int, value: Any) -> bool:
            if isinstance(value, Gst.Structure):
                rows.append({"gst_name": value.get_name(), **_structure(value)})
            return True

        reply.foreach(each)
        return rows

    async def main() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{args.signal}/ws/lab/caller") as ws:

            async def writer() -> None:
                while True:
                    await ws.send_str(json.dumps(await outq.get()))

            wtask = asyncio.ensure_future(writer())
            pipe.set_state(Gst.State.PLAYING)
            # the data channel before the first offer (webrtcbin then offers m=application)
            dc = webrtc.emit("create-data-channel", "chat", None)
            channel["dc"] = dc
            dc.connect("on-open", on_dc_open)
            dc.connect("on-message-string", on_dc_message)
            peer_done = asyncio.Event()

            async def reader() -> None:
                async for msg in ws:
                    data = json.loads(msg.data)
                    if data.get("type") == "answer":
                        rec["remote_sdp"] = data["sdp"]
                        _, sdpmsg = GstSdp.SDPMessage.new_from_text(data["sdp"])
                        answer = GstWebRTC.WebRTCSessionDescription.new(
                            GstWebRTC.WebRTCSDPType.ANSWER, sdpmsg
                        )
                        webrtc.emit("set-remote-description", answer, Gst.Promise.new())
                    elif data.get("type") == "done":
                        peer_done.set()
                    elif "candidate" in data:
                        rec["remote_candidates"].append(data["candidate"])
                        if data["candidate"]:
                            webrtc.emit("add-ice-candidate", data["sdpMLineIndex"], data["candidate"])

            rtask = asyncio.ensure_future(reader())
            await asyncio.wait_for(connected.wait(), timeout=20)
            rec["connected"] = True
            await asyncio.wait_for(echoes.wait(), timeout=15)
            await asyncio.sleep(args.seconds)
            for valve in ("audiovalve", "videovalve"):
                pipe.get_by_name(valve).set_property("drop", True)
            await asyncio.sleep(1.5)
            rec["stats"] = await loop.run_in_executor(None, stats)
            send({"type": "done"})
            await asyncio.wait_for(peer_done.wait(), timeout=30)
            await asyncio.sleep(0.5)
            pipe.set_state(Gst.State.NULL)
            wtask.cancel()
            rtask.cancel()

    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main())
    except Exception as e:
        rec["errors"].append(repr(e))
        pipe.set_state(Gst.State.NULL)
    finally:
        glib_loop.quit()
        rec.pop("offer_made", None)
        tmp = Path(args.out + ".tmp")
        tmp.write_text(json.dumps(rec, indent=1, default=str))
        tmp.rename(args.out)


# --------------------------------------------------------------------------------------------------------------
# the scenario


def gstreamer_peer(out: Path) -> dict[str, Any]:
    w = T.workdir(NAME)
    cap = out / f"{NAME}.pcapng"
    room = "lab"
    profiles: list[Path] = []
    try:
        with Lab(NAME) as lab:
            sig = lab.host("sig", f"{SIG_IP}/24")
            gst = lab.host("gst", f"{GST_IP}/24")
            chro = lab.host("chromium", f"{CHR_IP}/24")
            chro.run("ip", "route", "add", "224.0.0.0/4", "dev", "eth0", check=False)
            with lab.capture(cap):
                sig.popen(
                    [
                        sys.executable,
                        "-m",
                        "lab.scenarios.browsers",
                        "serve",
                        "--work",
                        str(w),
                        "--host",
                        SIG_IP,
                    ],
                    log=w / "server.log",
                    cwd=str(T.ROOT),
                )
                sig.wait_listening(HTTP_PORT)
                url = (
                    f"http://{SIG_IP}:{HTTP_PORT}/call.html?room={room}&seconds={SECONDS}"
                    f"&messages={MESSAGES}&role=callee"
                )
                _p, prof = _chromium(chro, url, w, "callee")
                profiles.append(prof)
                time.sleep(2.0)
                pg = gst.popen(
                    [
                        sys.executable,
                        "-m",
                        "lab.scenarios.gstreamer_peer",
                        "peer",
                        "--signal",
                        f"ws://{SIG_IP}:{HTTP_PORT}",
                        "--out",
                        str(w / "gst.json"),
                        "--seconds",
                        str(SECONDS),
                    ],
                    log=w / "gst.log",
                    cwd=str(T.ROOT),
                    env={"GST_DEBUG": "webrtcbin:3,dtlsconnection:3"},
                )
                deadline = time.monotonic() + 90
                closed = w / f"closed_{room}_callee.json"
                while time.monotonic() < deadline and not (closed.exists() and pg.poll() is not None):
                    if pg.poll() not in (None, 0):
                        break
                    time.sleep(0.3)
                time.sleep(0.5)
                lab.stop_all()
                _kill_namespace(chro)
    finally:
        for p in profiles:
            shutil.rmtree(p, ignore_errors=True)
    cap.chmod(0o644)
    gs = json.loads((w / "gst.json").read_text()) if (w / "gst.json").exists() else None
    if gs is None or gs["errors"] or not gs.get("connected"):
        raise RuntimeError(f"webrtcbin peer failed: {gs and gs['errors']}; see {w}/gst.log")
    res_path = w / f"result_{room}_callee.json"
    if not res_path.exists():
        raise RuntimeError(f"Chromium posted no result; see {w}")
    chrome = json.loads(res_path.read_text())
    if chrome.get("errors"):
        raise RuntimeError(f"Chromium page errors: {chrome['errors']}")
    return build_truth(cap, w, gs, chrome)


def build_truth(cap: Path, w: Path, gs: dict, chrome: dict) -> dict[str, Any]:
    from lab.scenarios.browsers import SRTP_IANA as BROWSER_SRTP
    from lab.scenarios.browsers import TLS_VERSION, _cand, _side_facts

    side = _side_facts(chrome)
    pair = side["selected_pair"]
    tr = side["transport"]
    chrome_ep, gst_ep = pair["local"], pair["remote"]
    if not (chrome_ep.startswith(CHR_IP + ":") and gst_ep.startswith(GST_IP + ":")):
        raise RuntimeError(f"unexpected selected pair {pair}")
    # webrtcbin's own view of the selected pair
    gstats = {r["id"]: r for r in gs["stats"]}
    gtr = next(r for r in gs["stats"] if r["gst_name"] == "transport")
    gpair = gstats[gtr["selected-candidate-pair-id"]]
    # (webrtcbin 1.22 swaps the "local-candidate"/"remote-candidate" type names; the ids say which is which)
    g_local = gstats[gpair["local-candidate-id"]]
    g_remote = gstats[gpair["remote-candidate-id"]]
    if (f"{g_local['address']}:{g_local['port']}", f"{g_remote['address']}:{g_remote['port']}") != (
        gst_ep,
        chrome_ep,
    ):
        raise RuntimeError(f"webrtcbin's selected pair {g_local} / {g_remote} != Chromium's {pair}")
    wire_rtp, hellos, wire_pts = wire_rtp_and_hellos(cap)

    # RTP: webrtcbin outbound-rtp packets-sent (its senders stopped by valves before get-stats), Chromium's
    # outbound-rtp packetsSent (senders stopped before getStats); kinds/PTs from each stack's codec stats
    codecs = {r["ssrc"]: r for r in gs["stats"] if r["gst_name"] == "codec" and "ssrc" in r}
    g_inbound = {r["ssrc"]: r.get("packets-received") for r in gs["stats"] if r["gst_name"] == "inbound-rtp"}
    c_inbound = {i["ssrc"]: i["packets_received"] for i in side["inbound"]}
    rtp = []
    for r in gs["stats"]:
        if r["gst_name"] != "outbound-rtp":
            continue
        c = codecs[r["ssrc"]]
        rtp.append(
            {
                "ssrc": r["ssrc"],
                "packets": r["packets-sent"],
                "src": gst_ep,
                "dst": chrome_ep,
                "pt": c["payload-type"],
                "kind": c["mime-type"].split("/")[0],
                "codec": c["mime-type"],
                "sender": "gstreamer",
                "getstats_packets_received_by_chromium": c_inbound.get(r["ssrc"]),
            }
        )
    for o in side["outbound"]:
        rtp.append(
            {
                "ssrc": o["ssrc"],
                "packets": o["packets_sent"],
                "src": chrome_ep,
                "dst": gst_ep,
                "pt": o["pt"],
                "kind": o["kind"],
                "codec": o["codec"],
                "sender": "chromium",
                "retransmitted_packets_sent": o["retransmitted_packets_sent"],
                "webrtcbin_packets_received": g_inbound.get(o["ssrc"]),
            }
        )
    for r in rtp:
        on_wire = wire_rtp.get((r["ssrc"], r["src"], r["dst"]), 0)
        if on_wire != r["packets"] or wire_pts.get(r["ssrc"]) != {str(r["pt"])}:
            raise RuntimeError(
                f"SSRC {r['ssrc']}: {r['sender']} reported {r['packets']} PT {r['pt']}, tshark "
                f"reads {on_wire} PT {wire_pts.get(r['ssrc'])}"
            )
    if sum(wire_rtp.values()) != sum(r["packets"] for r in rtp):
        raise RuntimeError(f"RTP on the wire that neither stack reported: {wire_rtp}")

    # DTLS 1.2 in clear: Chromium is the client (webrtcbin offers actpass, Chromium answers active)
    gst_fp = T.sdp_facts(gs["local_sdp"], "offer", "websocket", False)["fingerprint"]
    chrome_fp = T.sdp_facts(chrome["localDescriptionSent"]["sdp"], "answer", "websocket", False)[
        "fingerprint"
    ]
    if tr["dtlsRole"] != "client":
        raise RuntimeError(f"Chromium's DTLS role {tr['dtlsRole']}")
    client, server = chrome_ep, gst_ep
    randoms = set(hellos.get((client, server), []))
    if len(randoms) != 1 or list(hellos) != [(client, server)]:
        raise RuntimeError(f"ClientHellos on the wire: {hellos}")
    if side["remote_cert"]["der_sha256"] != gst_fp.get("sha-256"):
        raise RuntimeError("the certificate Chromium got is not the one webrtcbin's SDP announces")
    if side["local_cert"]["der_sha256"] != chrome_fp.get("sha-256"):
        raise RuntimeError("Chromium's certificate is not the one its SDP announces")
    dtls = [
        {
            "client": client,
            "server": server,
            "client_is": "chromium",
            "client_random": randoms.pop(),
            "version": TLS_VERSION[tr["tlsVersion"].upper()],
            "cipher_suite": tr["dtlsCipher"],
            "srtp_profile": BROWSER_SRTP.get(tr["srtpCipher"], tr["srtpCipher"]),
            "client_cert_sha256": side["local_cert"]["der_sha256"],
            "server_cert_sha256": side["remote_cert"]["der_sha256"],
            "encrypted_handshake": tr["tlsVersion"].upper() == "FEFC",
            "completed": tr["dtlsState"] == "connected" and "connected" in gs["states"],
        }
    ]
    cands = [{**T.candidate_fact(c), "side": "gstreamer"} for c in gs["local_candidates"]]
    cands += [
        {**_cand(c, T.candidate_fact, T.scope), "side": "chromium"} for c in gs["remote_candidates"] if c
    ]
    sig_ep = f"{SIG_IP}:{HTTP_PORT}"
    findings: list[dict[str, Any]] = [
        {"slug": "signalling-plaintext", "endpoints": [ip, sig_ep], "evidence": {"transport": "websocket"}}
        for ip in (GST_IP, CHR_IP)
    ]
    # libnice offers the host's IPv6 link-local address, whose interface id is the modified EUI-64 of its MAC
    eui = sorted(
        {(c["address"], c["eui64_mac"]) for c in cands if c["side"] == "gstreamer" and c.get("eui64_mac")}
    )
    for a, mac in eui:
        findings.append({"slug": "ice-ipv6-eui64", "endpoints": [a], "mac": mac})
    # ... and that link-local address travels in the clear signalling (an internal address, RFC 8828)
    internal = sorted(
        {c["address"] for c in cands if c["scope"] in ("private", "link_local", "ula", "loopback")}
    )
    if internal:
        findings.append({"slug": "ice-private-ip-exposed", "endpoints": internal})
    dc_stats = side["data_channels"]
    return {
        "description": "GStreamer 1.22 webrtcbin (libnice ICE, OpenSSL DTLS 1.2, libsrtp2 SRTP, usrsctp data "
        "channel) driven from Python/GObject introspection calls headless Chromium: Opus+VP8 both ways, data "
        "channel 'chat' (3 messages, echoed), plain WebSocket signalling with trickled candidates",
        "stacks": {"gstreamer": gs["gstreamer"], "chromium": _version("chromium")},
        "keylog": None,
        "findings": findings,
        # every slug the truth does not list is absent, and the media is not end-to-end encrypted
        "absent_findings": [*absent(*{f["slug"] for f in findings}), "srtp-e2ee-payload"],
        "user_agents": {"chromium": chrome["userAgent"]},
        "selected_pair": {"gstreamer": gst_ep, "chromium": chrome_ep},
        "dtls": dtls,
        "sdp": [
            {**T.sdp_facts(gs["local_sdp"], "offer", "websocket", False), "sent_by": "gstreamer"},
            {
                **T.sdp_facts(chrome["localDescriptionSent"]["sdp"], "answer", "websocket", False),
                "sent_by": "chromium",
            },
        ],
        "rtp": rtp,
        "candidates": T.dedupe(cands),
        "datachannels": [
            {"label": "chat", "from": "gstreamer", "messages": gs["dc_sent"]},
            {"label": "chat", "from": "chromium", "messages": gs["dc_received"]},
        ],
        "datachannel_stats": {"chromium": dc_stats},
        "webrtcbin_stats": [
            r
            for r in gs["stats"]
            if r["gst_name"] in ("transport", "candidate-pair", "outbound-rtp", "inbound-rtp", "codec")
        ],
        "chromium_transport_stats": tr,
        "notes": "Truth from webrtcbin's get-stats (outbound/inbound RTP, codecs, selected candidate pair; "
        "webrtcbin 1.22 labels its Opus stream's outbound-rtp kind 'video': kinds come from its codec stats) and "
        "Chromium's getStats (DTLS version/cipher/SRTP profile/certificates: webrtcbin reports none); both "
        "stacks' counters equal tshark's per SSRC. client_random is read from the ClientHello on the wire. "
        "webrtcbin gathers IPv6 link-local and TCP host candidates too; ICE selected UDP/IPv4. libnice also "
        "multicasts SSDP M-SEARCH (UPnP IGD discovery, 239.255.255.250:1900) from webrtcbin's host.",
    }


SCENARIOS = {NAME: gstreamer_peer}


def main(argv: list[str] | None = None) -> None:
    options = [
        ("--signal", REQUIRED),
        ("--out", REQUIRED),
        ("--seconds", {"type": float, "default": SECONDS}),
    ]
    command_main("lab.scenarios.gstreamer_peer", {"peer": (run_peer, options)}, argv)


if __name__ == "__main__":
    main()
