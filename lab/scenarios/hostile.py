"""hostile_strings: an aiortc call whose peers put attacker-chosen text everywhere their stacks let them.

Two aiortc/aioice peers signal through lab/signalling_server.py over plain WebSocket (aiohttp client with a
hostile ``User-Agent``) and carry hostile text in:

- the SDP session name (``s=``) of the offer and of the answer (rewritten in the SDP text the peer sends;
  aiortc parses it as the session name);
- the ICE candidate foundations (aioice's ``candidate_foundation`` patched; a foundation cannot hold spaces);
- the STUN SOFTWARE attribute of every integrity-protected message aioice sends (added before
  MESSAGE-INTEGRITY, so the checks still authenticate);
- the HTTP ``User-Agent`` of the WebSocket upgrade (markup only: aiohttp refuses control characters in
  headers) and extra JSON fields of the signalling messages.

The same module is the peer program (``python lab/scenarios/hostile.py peer --role offer|answer ...``) so that
the hostile payloads live next to the scenario that uses them. Truth: the strings as each stack sent them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as the peer program inside a namespace
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lab import truthlib as T

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
CSI = "\x1b[31m"
OSC = "\x1b]0;title\x07"

SESSION_NAME = f"{SCRIPT}{IMG}{CSI}red{OSC}"
# no spaces (RFC 8839 foundations are tokens; aiortc splits candidate lines on whitespace)
FOUNDATION = {"offer": f"{SCRIPT}{CSI}", "answer": f"{SCRIPT}{OSC}"}
SOFTWARE = f"{SCRIPT}{IMG}{CSI}{OSC}"
# aiohttp refuses control characters in header values: the User-Agent carries markup only
USER_AGENT = f"Mozilla/5.0 {SCRIPT}{IMG}"
JSON_FIELDS = {"nick": f"{IMG}{CSI}{OSC}", "note": SCRIPT}


# ------------------------------------------------------------------------------------------------ peer


def _install_hooks(role: str, rec: dict[str, Any]) -> None:
    import aioice.ice
    from aioice import stun

    aioice.ice.candidate_foundation = lambda *a, **k: FOUNDATION[role]  # type: ignore[assignment]
    orig = stun.Message.add_message_integrity

    def add_mi(self: stun.Message, key: bytes) -> None:
        self.attributes.pop("SOFTWARE", None)
        self.attributes["SOFTWARE"] = SOFTWARE
        rec["stun_software_sent"] += 1
        orig(self, key)

    stun.Message.add_message_integrity = add_mi  # type: ignore[method-assign]


def _hostile_sdp(sdp: str) -> str:
    lines = sdp.split("\r\n")
    return "\r\n".join(f"s={SESSION_NAME}" if ln.startswith("s=") else ln for ln in lines)


async def _peer(role: str, signal: str, out: Path, duration: float) -> None:
    import asyncio

    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    rec: dict[str, Any] = {"role": role, "stun_software_sent": 0, "connected": False}
    _install_hooks(role, rec)
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    done = asyncio.Event()

    @pc.on("connectionstatechange")
    async def _state() -> None:
        if pc.connectionState == "connected":
            rec["connected"] = True
            done.set()
        elif pc.connectionState == "failed":
            done.set()

    async with (
        aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http,
        http.ws_connect(f"{signal}/ws/hostile/{role}") as ws,
    ):
        if role == "offer":
            await pc.setLocalDescription(await pc.createOffer())
        else:
            msg = json.loads((await ws.receive()).data)
            rec["remote_sdp"] = msg["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], msg["type"]))
            await pc.setLocalDescription(await pc.createAnswer())
        sdp = _hostile_sdp(pc.localDescription.sdp)
        rec["local_sdp"] = sdp
        body = {"type": role, "sdp": sdp, **JSON_FIELDS}
        rec["json_sent"] = body
        await ws.send_str(json.dumps(body))
        if role == "offer":
            msg = json.loads((await ws.receive()).data)
            rec["remote_sdp"] = msg["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], msg["type"]))
        try:
            await asyncio.wait_for(done.wait(), 20)
        except asyncio.TimeoutError:
            pass
        if rec["connected"]:
            await asyncio.sleep(duration)
        rec["remote_session_name"] = _session_name(pc.remoteDescription.sdp)
        await ws.close()
    await pc.close()
    out.write_text(json.dumps(rec, indent=1))
    if not rec["connected"]:
        raise SystemExit(f"{role}: did not connect")


def _session_name(sdp: str) -> str | None:
    from aiortc.sdp import SessionDescription

    return SessionDescription.parse(sdp).name


def peer_main(argv: list[str]) -> None:
    import argparse
    import asyncio

    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("offer", "answer"), required=True)
    ap.add_argument("--signal", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=2.0)
    a = ap.parse_args(argv)
    asyncio.run(_peer(a.role, a.signal, Path(a.out), a.duration))


# -------------------------------------------------------------------------------------------- scenario


def hostile_strings(out: Path) -> dict[str, Any]:
    from lab.netns import Lab
    from lab.scenarios.aiortc_calls import absent, load, start_signalling, stop, three_hosts, wait_procs

    name = "hostile_strings"
    w = T.workdir(name)
    cap = out / f"{name}.pcapng"
    me = str(Path(__file__).resolve())
    with Lab(name) as lab:
        sig, alice, bob = three_hosts(lab)
        with lab.capture(cap):
            server = start_signalling(sig, w, tls=False)
            signal = f"ws://{sig.ip}:8080"
            pb = bob.popen(
                [T.PY, me, "peer", "--role", "answer", "--signal", signal, "--out", str(w / "answer.json")],
                log=w / "answer.log",
            )
            time.sleep(0.5)
            pa = alice.popen(
                [T.PY, me, "peer", "--role", "offer", "--signal", signal, "--out", str(w / "offer.json")],
                log=w / "offer.log",
            )
            try:
                wait_procs([pa, pb])
            finally:
                stop(server)
    offer, answer = load(w / "offer.json"), load(w / "answer.json")
    for p, other in ((offer, answer), (answer, offer)):
        if other["remote_session_name"] != SESSION_NAME:
            raise RuntimeError(f"{other['role']} did not parse the hostile session name")
        if p["stun_software_sent"] == 0:
            raise RuntimeError(f"{p['role']} sent no STUN message with SOFTWARE")
        if f"candidate:{FOUNDATION[p['role']]} " not in p["local_sdp"]:
            raise RuntimeError(f"{p['role']}: hostile foundation not in its SDP")
    sdps = [
        T.sdp_facts(offer["local_sdp"], "offer", "websocket", False),
        T.sdp_facts(answer["local_sdp"], "answer", "websocket", False),
    ]
    candidates = [
        {**c, "side": side}
        for side, p in (("offer", offer), ("answer", answer))
        for c in T.candidates_from_sdp(p["local_sdp"])
    ]
    return {
        "description": "aiortc audio call whose peers carry hostile strings (HTML/script injection, terminal "
        "escape sequences) in the SDP session name, ICE candidate foundations, STUN SOFTWARE, the HTTP "
        "User-Agent and WebSocket JSON fields; signalling over plain WebSocket (aiohttp)",
        "keylog": None,
        "findings": [{"slug": "signalling-plaintext", "endpoints": [f"{sig.ip}:8080"]}],
        "absent_findings": absent("signalling-plaintext", "outdated-component"),
        "sdp": sdps,
        "candidates": T.dedupe(candidates),
        "hostile": {
            "session_name": SESSION_NAME,
            "foundations": FOUNDATION,
            "stun_software": SOFTWARE,
            "stun_software_messages": {
                "offer": offer["stun_software_sent"],
                "answer": answer["stun_software_sent"],
            },
            "user_agent": USER_AGENT,
            "json_fields": JSON_FIELDS,
            "strings": [SCRIPT, IMG, CSI, OSC],
        },
    }


SCENARIOS = {"hostile_strings": hostile_strings}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        peer_main(sys.argv[2:])
    else:
        sys.exit("usage: hostile.py peer --role offer|answer --signal ws://H:P --out F")
