"""sfu_conference: Janus's and the browsers' account of the conference checked against the capture with tshark.

- a star: every participant's three PeerConnections (one publisher, two subscribers) end at Janus; no UDP between
  participants; one DTLS handshake per PeerConnection, with the roles Janus reported;
- each publisher's media SSRCs only on its own leg to Janus; Janus forwards on SSRCs of its own (never the
  publisher's) and forwards no more than it received;
- the Janus API travels in clear on the WebSocket (the videoroom join of every participant is readable);
- Firefox's keylog holds the client randoms of its own handshakes.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections import Counter, defaultdict
from typing import Any

import pytest
from samples import SAMPLES, load_truth, sample_path

from lab.truthlib import WireFrame, tshark_frames
from lab.truthlib import first_values as first

NAME = "sfu_conference"
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


# one tshark pass for everything the tests below read; each applies its own filter in Python
FIELDS = (
    "ip.src",
    "ip.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.dstport",
    "dtls.handshake.type",
    "dtls.handshake.random",
    "rtp.ssrc",
    "websocket.payload.text",
)


@functools.cache
def wire() -> list[WireFrame]:
    return tshark_frames(sample_path(NAME), FIELDS, display_filter="udp || websocket")


def udp(*without: str) -> list[WireFrame]:
    """UDP frames that carry none of ``without`` (e.g. "icmp": an ICMP error quoting a datagram)."""
    return [
        f for f in wire() if "udp" in f["frame.protocols"] and not set(without) & set(f["frame.protocols"])
    ]


def truth() -> dict[str, Any]:
    return load_truth(NAME)


def addr(ep: str) -> str:
    return ep.rsplit(":", 1)[0]


def test_every_participant_talks_only_to_the_sfu() -> None:
    t = truth()
    sfu = t["sfu"]
    people = {p["address"] for p in t["participants"].values()}
    flows = {first(f, "ip.src", "ip.dst") for f in udp("icmp", "mdns")}
    assert flows, "no UDP at all"
    for src, dst in flows:
        assert sfu in (src, dst), f"UDP {src} -> {dst} does not involve the SFU"
    assert {a for f in flows for a in f} - {sfu} == people
    assert t["sfu_media_endpoints"] and all(addr(e) == sfu for e in t["sfu_media_endpoints"])


def test_one_dtls_handshake_per_peer_connection_with_the_roles_janus_reported() -> None:
    t = truth()
    hellos: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for s, sp, d, dp, rnd in (
        first(f, "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "dtls.handshake.random")
        for f in udp("icmp")
        if "1" in f["dtls.handshake.type"]
    ):
        if rnd:
            hellos[rnd.replace(":", "").lower()].add((f"{s}:{sp}", f"{d}:{dp}"))
    assert len(hellos) == len(t["dtls"]) == len(t["participants"]) ** 2
    per_person: Counter = Counter()
    for d in t["dtls"]:
        assert hellos[d["client_random"]] == {(d["client"], d["server"])}
        browser_ep = d["server"] if d["client_is"] == "janus" else d["client"]
        assert addr(browser_ep) == t["participants"][d["participant"]]["address"]
        # Janus is the DTLS client toward publishers, the browser toward Janus on subscriber PeerConnections
        assert (d["client_is"] == "janus") == d["peer_connection"].startswith("publisher:")
        per_person[d["participant"]] += 1
    assert set(per_person.values()) == {len(t["participants"])}


def test_media_is_forwarded_on_the_sfus_own_ssrcs() -> None:
    t = truth()
    wire: dict[int, Counter] = defaultdict(Counter)
    for ssrc, s, sp, d, dp in (
        first(f, "rtp.ssrc", "ip.src", "udp.srcport", "ip.dst", "udp.dstport")
        for f in udp("rtcp", "icmp")
        if "rtp" in f["frame.protocols"]
    ):
        if ssrc:
            wire[int(ssrc, 16)][(f"{s}:{sp}", f"{d}:{dp}")] += 1
    published = {(r["participant"], r["kind"]): r for r in t["rtp"] if r["leg"] == "publisher"}
    forwarded = [r for r in t["rtp"] if r["leg"] == "subscriber"]
    assert len(published) == 2 * len(t["participants"])
    assert len(forwarded) == 2 * len(published)
    for r in t["rtp"]:
        assert wire[r["ssrc"]] == Counter({(r["src"], r["dst"]): r["packets"]})
    for r in forwarded:
        src = published[(r["forwarded_from"], r["kind"])]
        assert r["ssrc"] != src["ssrc"] and addr(r["src"]) == t["sfu"]
        assert 0 < r["packets"] <= src["packets"]
    assert len({r["ssrc"] for r in t["rtp"]}) == len(t["rtp"])


def test_janus_api_in_clear_from_every_participant() -> None:
    t = truth()
    host, port = t["sfu_api"].rsplit(":", 1)
    publisher = re.compile(r'"ptype" *: *"publisher"')
    joins = [
        first(f, "ip.src")
        for f in wire()
        if first(f, "ip.dst", "tcp.dstport") == (host, port)
        and any(publisher.search(text) for text in f["websocket.payload.text"])
    ]
    people = {p["address"] for p in t["participants"].values()}
    assert {r[0] for r in joins} == people
    assert {f["endpoints"][0] for f in t["findings"] if f["slug"] == "signalling-plaintext"} == people


def test_firefox_keylog_holds_its_own_client_randoms() -> None:
    t = truth()
    randoms = {
        ln.split()[1].lower()
        for ln in (SAMPLES / t["keylog"]).read_text().splitlines()
        if ln.startswith("CLIENT_RANDOM")
    }
    (ff,) = [who for who, p in t["participants"].items() if p["browser"] == "firefox"]
    mine = {d["client_random"] for d in t["dtls"] if d["participant"] == ff}
    assert mine and mine <= randoms
    assert not randoms - mine  # nothing from the Chromium participants
