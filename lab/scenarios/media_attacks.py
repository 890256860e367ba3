"""Media injection against an aiortc call: media_injection.

Scenario ``media_injection`` — three hosts on one LAN (documentation range 192.0.2.0/24 on the lab bridge):

- ``alice`` (192.0.2.10, offerer) and ``bob`` (192.0.2.20, answerer, the victim) hold an aiortc audio call over
  DTLS-SRTP; the offer/answer travels in one plain HTTP POST to bob; the DTLS master secret goes to the keylog.
  Both peers run with ``--media-report`` (lab/peer.py): once media flows each writes its selected ICE pair and
  its senders' SSRCs, and bob counts what reaches his sockets (per source address) and what his libsrtp
  accepts or rejects (per SSRC, with libsrtp's reason).
- ``mallory`` (192.0.2.66), the attacker, on the same bridge, reads those reports (standing for what an
  attacker on the LAN learns by watching the call) and, while the call runs:
  (a) off-path probe: ffmpeg sends plain RTP (PCMU tone, its own SSRC) from mallory's own address to bob's
      media port (the local candidate of bob's selected pair); bob never did ICE with mallory;
  (b) spoofed injection: mallory holds alice's address on its loopback (ARP kept honest: ``arp_ignore=1`` and
      ``arp_announce=2``, so mallory neither answers ARP for it nor announces it), and ffmpeg sends SRTP under
      its own random SDES-style key from alice's address and port to bob's media port, with alice's audio
      SSRC and payload type, so the packets land in the stream keyed by the DTLS handshake. Two bursts of 15,
      with sequence numbers (ffmpeg ``-seq``) chosen from alice's last sent one: the first BEHIND packets
      behind it (a replay-looking injection: bob's libsrtp turns them away at its 1024-packet replay window
      before checking their tag), the second AHEAD packets ahead (libsrtp checks the tag and fails it).

Truth from the stacks: ffmpeg's own packet counts (``-loglevel verbose``) and SDPs, aiortc's RTP per SSRC as
handed to the socket, bob's libsrtp accept/reject counts per SSRC, the addresses from the peers' selected
pairs. Alice's audio SSRC carries aiortc's packets and ffmpeg's injected ones on the same addresses, so its
``rtp`` row counts both (``senders`` gives the split).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable
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
    peer_argv,
    wait_procs,
)

NAME = "media_injection"
ALICE_IP, BOB_IP, MALLORY_IP = "192.0.2.10", "192.0.2.20", "192.0.2.66"
HTTP_PORT = 8080
PROBE_PORT = 40000  # mallory's own source port for the off-path probe
PROBE_SECONDS = 2.0  # PCMU, 20 ms packets: about 100 packets
INJECT_FRAMES = 15  # per burst, two bursts: Opus frames of 20 ms, one SRTP packet each
BEHIND = 2000  # first burst starts this far behind the caller's sequence number (past a 1024-packet window)
AHEAD = 20000  # second burst starts this far ahead of it
SUITE = "AES_CM_128_HMAC_SHA1_80"
CALL_SECONDS = 6.0


def _signed32(v: int) -> int:
    """ffmpeg's -ssrc is a signed 32-bit option; the same 32 bits go on the wire."""
    return v - (1 << 32) if v >= 1 << 31 else v


def _muxed(log: str) -> int:
    """Packets muxed, from ffmpeg's own end-of-run statistics (verbose)."""
    counts = [int(m) for m in re.findall(r"Output stream #\d+:\d+ \(audio\): .*?; (\d+) packets muxed", log)]
    if len(counts) != 1:
        raise RuntimeError(f"ffmpeg reported {counts} muxed packet counts")
    return counts[0]


def _ffmpeg(w: Path, tag: str, host: Host, argv: list[str], timeout: float = 30) -> dict[str, Any]:
    log = w / f"ffmpeg_{tag}.log"
    p = host.popen(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "verbose", *argv], log=log)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"ffmpeg {tag} did not finish") from None
    text = log.read_text(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"ffmpeg {tag} failed ({p.returncode}): {text[-800:]}")
    return {"packets": _muxed(text), "log": text}


def _ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], check=False, capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def _wait_json(p: Path, procs: list[subprocess.Popen], timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not p.exists():
        if time.monotonic() > deadline or any(x.poll() is not None for x in procs):
            raise RuntimeError(f"no media report {p.name} (peer exited or timed out)")
        time.sleep(0.05)
    return json.loads(p.read_text())


def _arp_replies(cap: Path, ip: str) -> set[str]:
    """Ethernet sources of ARP replies claiming ``ip`` (tshark)."""
    rows = T.tshark_fields(cap, ["eth.src"], display_filter=f"arp.opcode == 2 && arp.src.proto_ipv4 == {ip}")
    return {r[0] for r in rows if r and r[0]}


def media_injection(out: Path) -> dict[str, Any]:
    w = T.workdir(NAME)
    cap, keylog = out / f"{NAME}.pcapng", out / f"{NAME}.keylog"
    inject_key = base64.b64encode(secrets.token_bytes(30)).decode()  # mallory's own key: 16 B key + 14 B salt
    probe_ssrc = secrets.randbits(32)
    attack: dict[str, Any] = {}
    with Lab(NAME) as lab:
        alice = lab.host("alice", f"{ALICE_IP}/24")
        bob = lab.host("bob", f"{BOB_IP}/24")
        mallory = lab.host("mallory", f"{MALLORY_IP}/24")
        # the spoofed source address lives on mallory's loopback; ARP on eth0 stays truthful
        for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
            for dev in ("all", "eth0"):
                mallory.run("sysctl", "-qw", f"net.ipv4.conf.{dev}.{key}={value}")
        mallory.run("ip", "addr", "add", f"{ALICE_IP}/32", "dev", "lo")
        common = {"keylog": str(keylog), "media": "audio", "duration": CALL_SECONDS, "linger": 1.0}
        reports = {"alice": w / "alice.media.json", "bob": w / "bob.media.json"}
        with lab.capture(cap):
            pb = bob.popen(
                peer_argv(
                    "answer",
                    w / "answer.json",
                    http_listen=f"{BOB_IP}:{HTTP_PORT}",
                    ready=str(w / "bob.ready"),
                    media_report=str(reports["bob"]),
                    **common,
                ),
                log=w / "answer.log",
            )
            deadline = time.monotonic() + 20
            while not (w / "bob.ready").exists():
                if time.monotonic() > deadline or pb.poll() is not None:
                    raise RuntimeError("bob's HTTP endpoint did not come up")
                time.sleep(0.05)
            pa = alice.popen(
                peer_argv(
                    "offer",
                    w / "offer.json",
                    http_offer=f"http://{BOB_IP}:{HTTP_PORT}/offer",
                    media_report=str(reports["alice"]),
                    **common,
                ),
                log=w / "offer.log",
            )
            rep_b = _wait_json(reports["bob"], [pa, pb])
            rep_a = _wait_json(reports["alice"], [pa, pb])
            victim, spoofed = rep_b["pair"]["local"], rep_b["pair"]["remote"]
            if rep_a["pair"]["local"] != spoofed or rep_a["pair"]["remote"] != victim:
                raise RuntimeError(f"selected pairs disagree: {rep_a['pair']} / {rep_b['pair']}")
            audio = next(s for s in rep_a["senders"] if s["kind"] == "audio")
            ssrc = int(audio["ssrc"])
            pt = rep_a["rtp_sent"][str(ssrc)]["pt"]
            v_ip, v_port = victim.rsplit(":", 1)
            s_ip, s_port = spoofed.rsplit(":", 1)
            if s_ip != ALICE_IP or v_ip != BOB_IP:
                raise RuntimeError(f"unexpected selected pair {spoofed} -> {victim}")
            # (a) off-path probe: plain RTP from mallory's own address to the victim's media port
            probe = _ffmpeg(
                w,
                "probe",
                mallory,
                [
                    "-re",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=1000:sample_rate=8000:samples_per_frame=160",
                    "-t",
                    str(PROBE_SECONDS),
                    "-c:a",
                    "pcm_mulaw",
                    "-payload_type",
                    "0",
                    "-ssrc",
                    str(_signed32(probe_ssrc)),
                    "-rtpflags",
                    "skip_rtcp",
                    "-f",
                    "rtp",
                    "-sdp_file",
                    str(w / "probe.sdp"),
                    f"rtp://{v_ip}:{v_port}?localaddr={MALLORY_IP}&localport={PROBE_PORT}",
                ],
            )
            # (b) spoofed injection: SRTP under mallory's own key, from alice's address/port, alice's SSRC and PT
            last_seq = int(rep_a["rtp_last_seq"][str(ssrc)])
            if last_seq < BEHIND + 200:
                # libsrtp gives ROC 0 to any sequence number until the index passes 2^15: no room behind
                raise RuntimeError(
                    f"alice's sequence numbers start too low ({last_seq}) to inject behind; run again"
                )
            bursts = {"behind": (last_seq - BEHIND) % 65536, "ahead": (last_seq + AHEAD) % 65536}
            injected = {}
            for tag, seq in bursts.items():
                injected[tag] = _ffmpeg(
                    w,
                    f"inject_{tag}",
                    mallory,
                    [
                        "-re",
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=frequency=700:sample_rate=48000",
                        "-frames:a",
                        str(INJECT_FRAMES),
                        "-c:a",
                        "libopus",
                        "-frame_duration",
                        "20",
                        "-ar",
                        "48000",
                        "-ac",
                        "2",
                        "-payload_type",
                        str(pt),
                        "-ssrc",
                        str(_signed32(ssrc)),
                        "-seq",
                        str(seq),
                        "-rtpflags",
                        "skip_rtcp",
                        "-f",
                        "rtp",
                        "-srtp_out_suite",
                        SUITE,
                        "-srtp_out_params",
                        inject_key,
                        "-sdp_file",
                        str(w / "inject.sdp"),
                        f"srtp://{v_ip}:{v_port}?localaddr={s_ip}&localport={s_port}",
                    ],
                )
                injected[tag].update(first_seq=seq, log=None)
            inject = {
                "packets": sum(b["packets"] for b in injected.values()),
                "bursts": {
                    k: {"packets": v["packets"], "first_seq": v["first_seq"]} for k, v in injected.items()
                },
                "caller_last_seq_at_report": last_seq,
            }
            if pa.poll() is not None or pb.poll() is not None:
                raise RuntimeError("the call ended before the injection finished (raise CALL_SECONDS)")
            wait_procs([pa, pb])
        attack = {
            "probe": {
                **probe,
                "ssrc": probe_ssrc,
                "src": f"{MALLORY_IP}:{PROBE_PORT}",
                "dst": victim,
                "pt": 0,
                "sdp": (w / "probe.sdp").read_text(),
            },
            "inject": {
                **inject,
                "ssrc": ssrc,
                "src": spoofed,
                "dst": victim,
                "pt": pt,
                "sdp": (w / "inject.sdp").read_text(),
            },
        }
        macs = {"alice": alice.mac, "bob": bob.mac, "mallory": mallory.mac}
    dedupe_keylog(keylog)
    offer, answer = load(w / "offer.json"), load(w / "answer.json")
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError(f"{NAME} did not connect")
    core = call_truth(offer, answer, transport="http", tls=False)
    probe, inject = attack["probe"], attack["inject"]

    # the audio SSRC's row: aiortc's packets plus ffmpeg's injected ones, same addresses
    row = next(r for r in core["rtp"] if r["ssrc"] == inject["ssrc"])
    if (row["src"], row["dst"]) != (inject["src"], inject["dst"]):
        raise RuntimeError(f"aiortc sent SSRC {inject['ssrc']} on {row['src']} -> {row['dst']}")
    aiortc_sent = row["packets"]
    aiortc_rtcp = int(offer.get("rtcp_sent_by_ssrc", {}).get(str(inject["ssrc"]), 0))
    if aiortc_rtcp != offer["rtcp_sent"]:
        raise RuntimeError(f"alice sent RTCP under other SSRCs: {offer.get('rtcp_sent_by_ssrc')}")
    row["senders"] = {"aiortc": aiortc_sent, "ffmpeg (spoofed injection)": inject["packets"]}
    row["packets"] = aiortc_sent + inject["packets"]
    core["rtp"].append(
        {
            "ssrc": probe["ssrc"],
            "packets": probe["packets"],
            "pt": 0,
            "kind": "audio",
            "src": probe["src"],
            "dst": probe["dst"],
            "senders": {"ffmpeg (probe)": probe["packets"]},
            "foreign": True,
        }
    )
    if any(r["ssrc"] == probe["ssrc"] for r in core["rtp"][:-1]):
        raise RuntimeError("probe SSRC collides with an aiortc SSRC; run again")

    # what bob's libsrtp made of it
    rx = answer.get("srtp_rx", {})
    by_src = answer.get("rx_by_source", {})
    got_a = rx.get(str(inject["ssrc"]), {})
    got_p = rx.get(str(probe["ssrc"]), {})
    if got_a.get("rtp_rejected") != inject["packets"] or got_a.get("rtp_accepted") != aiortc_sent:
        raise RuntimeError(
            f"bob's libsrtp on SSRC {inject['ssrc']}: {got_a}; aiortc sent {aiortc_sent}, "
            f"ffmpeg injected {inject['packets']}"
        )
    want_reasons = {
        "rtp: replay check failed (index too old)": inject["bursts"]["behind"]["packets"],
        "rtp: authentication failure": inject["bursts"]["ahead"]["packets"],
    }
    if dict(got_a.get("reasons", {})) != want_reasons:
        raise RuntimeError(
            f"bob's libsrtp rejected the bursts for {got_a.get('reasons')}, expected {want_reasons}"
        )
    if got_p.get("rtp_rejected") != probe["packets"] or got_p.get("rtp_accepted"):
        raise RuntimeError(
            f"bob's libsrtp on probe SSRC {probe['ssrc']}: {got_p}, ffmpeg sent {probe['packets']}"
        )
    if by_src.get(probe["src"], {}).get("rtp/rtcp") != probe["packets"]:
        raise RuntimeError(f"bob's socket got {by_src.get(probe['src'])} from {probe['src']}")
    if _arp_replies(cap, ALICE_IP) - {macs["alice"]}:
        raise RuntimeError(
            f"ARP replies for {ALICE_IP} from {_arp_replies(cap, ALICE_IP)}: mallory answered ARP"
        )
    cross_check_rtp(cap, core["rtp"])
    present = ("signalling-plaintext", "unsolicited-media", "srtp-auth-failure")
    # rtp-unencrypted: the probe is plain RTP on the wire, but not media of the call, and it goes to a port
    # whose SDP m-line announced DTLS-SRTP; whether that is "unencrypted media" is left undecided
    undecided = {"rtp-unencrypted"}
    return {
        "description": "aiortc audio call (DTLS-SRTP, keylog; offer/answer in one plain HTTP POST) between two "
        "hosts on one LAN; an attacker on the same bridge sends ffmpeg plain RTP from its own address to the "
        "callee's media port (no ICE), then spoofs the caller's address and port and injects ffmpeg SRTP under "
        "its own key with the caller's audio SSRC; the callee's libsrtp rejects both",
        "keylog": keylog.name,
        "findings": [
            {"slug": "signalling-plaintext", "endpoints": [f"{BOB_IP}:{HTTP_PORT}"]},
            {
                "slug": "unsolicited-media",
                "endpoints": [probe["src"], probe["dst"]],
                "evidence": {"packets": probe["packets"]},
            },
            {
                "slug": "srtp-auth-failure",
                "endpoints": [inject["src"], inject["dst"]],
                "evidence": {
                    "ssrc": inject["ssrc"],
                    "authenticated": aiortc_sent + aiortc_rtcp,
                    "auth_failed": inject["packets"],
                },
            },
        ],
        "absent_findings": [s for s in absent(*present) if s not in undecided] + ["srtp-e2ee-payload"],
        "stacks": {"ffmpeg": _ffmpeg_version()},
        **core,
        "attack": {
            "attacker": MALLORY_IP,
            "attacker_mac": macs["mallory"],
            "macs": macs,
            "victim_media": victim,
            "spoofed_source": spoofed,
            "probe": {k: v for k, v in probe.items() if k != "log"},
            "inject": {
                **{k: v for k, v in inject.items() if k != "log"},
                "suite": SUITE,
                "attacker_key_inline": inject_key,
            },
            "aiortc_sent_on_ssrc": {"rtp": aiortc_sent, "rtcp": aiortc_rtcp},
            "victim_srtp_rx": rx,
            "victim_rx_by_source": by_src,
        },
        "notes": "SSRC rows count packets on the wire per SSRC: the caller's audio SSRC carries aiortc's packets "
        "and the injected ones (same source address and port), split in `senders`. The injected SRTP uses the "
        "attacker's own key (attack.inject.attacker_key_inline), not a key of the call. srtp-auth-failure "
        "evidence: `authenticated` = what aiortc sent on that SSRC (SRTP + SRTCP), `auth_failed` = what ffmpeg "
        "injected. The callee's libsrtp rejected every injected packet (attack.victim_srtp_rx.reasons): the "
        "burst behind the real sequence numbers as 'index too old' (libsrtp checks its replay window before "
        "the tag, so those were never authenticated), the burst ahead as authentication failures; and the whole "
        "probe (authentication failure). rtp-unencrypted is not asserted either way: the probe is plain RTP, but not the call's media, "
        "sent to a port announced for DTLS-SRTP. ARP stayed truthful: only the caller's MAC answered ARP for the "
        "caller's address (checked with tshark).",
    }


SCENARIOS: dict[str, Callable[[Path], dict]] = {"media_injection": media_injection}
