"""Every sample capture's truth file, checked against the capture with tshark (not with our own parser).

The truth files were written by lab/generate.py from what the real stacks reported; here tshark confirms the
facts that travel on the wire: RTP SSRCs and packet counts, STUN/TURN message counts by method and class,
DTLS version / cipher suite / SRTP profile / certificate hashes (when the handshake is in clear), SDP
fingerprints in plaintext (or keylog-decrypted) signalling, data-channel messages decrypted with the keylog.

tshark reads each capture once per set of options (Decode-As rules, keylog) with every field these tests use
(wire_frames.frames_once, cached for the session); each test applies its display filter to those frames.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import shutil
import subprocess
from collections import Counter
from typing import Any

import pytest
from samples import SAMPLES, load_truth, sample_names, sample_path
from wire_frames import frames_once, has, joined, text_has

from lab.truthlib import SRTP_IDS, WireFrame, stun_key_from_type, tshark_fields

NAMES = sample_names()

SRTP_PROFILES = {v: k for k, v in SRTP_IDS.items()}  # RFC 5764 §4.1.2, RFC 7714 §14.2
DTLS_VERSIONS = {0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}

ADDR_FIELDS = ("ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst", "udp.dstport")
STUN_FIELDS = (
    "stun.type",
    "stun.id",
    "stun.channel",
    "stun.att.ipv4",
    "stun.att.username",
    "stun.att.realm",
    "stun.att.error.class",
    "stun.att.error",
    "stun.att.hmac",
    "stun.att.software",
)
DTLS_FIELDS = (
    "dtls.handshake.type",
    "dtls.handshake.random",
    "dtls.handshake.version",
    "dtls.handshake.ciphersuite",
    "dtls.use_srtp.protection_profile",
    "dtls.handshake.certificate",
)
# string fields of readable signalling (SDP over WebSocket, HTTP bodies, JSON)
SIGNALLING_TEXT = ("websocket.payload.text", "http.file_data", "json.value.string")
# everything any test here reads, in the one pass per capture and options
WIRE_FIELDS = (
    "frame.number",
    *ADDR_FIELDS,
    "eth.src",
    "tcp.stream",
    "rtp.ssrc",
    *STUN_FIELDS,
    *DTLS_FIELDS,
    "data.data",
    *SIGNALLING_TEXT,
)

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def test_stun_key_matches_rfc5389() -> None:
    # tshark's stun.type.class is not the RFC 5389 §6 class: the key is made from the message type
    assert stun_key_from_type(0x0001) == "Binding/request"
    assert stun_key_from_type(0x0101) == "Binding/success"
    assert stun_key_from_type(0x0113) == "Allocate/error"
    assert stun_key_from_type(0x0016) == "Send/indication"
    assert stun_key_from_type(0x0109) == "ChannelBind/success"


def test_signalling_text_search_never_reads_into_an_escape() -> None:
    # tshark prints a string's CR LF as \r\n and other unprintables as \xNN: no match may touch one
    shown = "Via: SIP/2.0/WSS x.invalid\\r\\nMax-Forwards: 70 \\x010.0.0.5"
    assert text_has([shown], "sip/2.0", ignore_case=True)
    assert not text_has([shown], "sip/2.0")
    assert not text_has([shown], "Max-Forwards")  # cut by the escape before it: no sure answer
    assert not text_has([shown], "10.0.0.5")  # "\x01" then "0.0.0.5": not the address
    with pytest.raises(ValueError):
        text_has([shown], "\\r")


@functools.cache
def cipher_names() -> dict[int, str]:
    """Cipher suite code -> IANA name, from the installed openssl's own table."""
    out = subprocess.run(
        ["openssl", "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    names = {}
    for line in out.splitlines():
        m = re.match(r"\s*0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+)", line)
        if m:
            names[int(m.group(1) + m.group(2), 16)] = m.group(3)
    return names


def decode_as(truth: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    for d in truth.get("tshark_decode_as", []):
        out += ["-d", d]
    return tuple(out)


def wire(name: str, keylog: bool = False, decode: bool = True) -> tuple[WireFrame, ...]:
    """Every frame of a sample with WIRE_FIELDS, read once per session and options; ``keylog``: decrypt with
    the sample's keylog (when it has one); ``decode=False`` leaves out the truth's Decode-As rules (they are
    for RTP counting and may hide other protocols on the same port, e.g. STUN on a TURN-TCP leg)."""
    truth = load_truth(name)
    kl = SAMPLES / truth["keylog"] if keylog and truth.get("keylog") else None
    return frames_once(sample_path(name), WIRE_FIELDS, kl, decode_as(truth) if decode else ())


def not_icmp(frame: WireFrame) -> bool:
    """`!icmp && !icmpv6`: not a packet quoted inside an ICMP error."""
    return not has(frame, "icmp") and not has(frame, "icmpv6")


def in_signalling(
    name: str,
    needle: str,
    fields: tuple[str, ...],
    display_filter: str,
    *,
    keylog: bool,
    ignore_case: bool = False,
) -> bool:
    """Whether ``display_filter`` (``needle`` searched in signalling string ``fields``, or more) selects a
    frame: yes when the one pass shows ``needle`` in one of ``fields``, else tshark's own filter answers."""
    if any(
        text_has((v for field in fields for v in frame[field]), needle, ignore_case=ignore_case)
        for frame in wire(name, keylog=keylog)
    ):
        return True
    return bool(tshark_filtered(name, display_filter, keylog))


@functools.cache
def tshark_filtered(name: str, display_filter: str, keylog: bool) -> list[list[str]]:
    """Frame numbers tshark's own display filter selects (Decode-As rules on)."""
    truth = load_truth(name)
    kl = SAMPLES / truth["keylog"] if keylog and truth.get("keylog") else None
    return tshark_fields(
        sample_path(name),
        ["frame.number"],
        display_filter=display_filter,
        extra=list(decode_as(truth)),
        keylog=kl,
    )


def endpoint(ip4: str, ip6: str, port: str) -> str:
    return f"{ip4 or ip6}:{port}"


def unbracket(ep: str) -> str:
    """'[2001:db8::1]:5000' -> '2001:db8::1:5000' (tshark's fields carry no brackets)."""
    return ep.replace("[", "").replace("]", "")


@pytest.mark.parametrize("name", NAMES)
def test_truth_file_shape(name: str) -> None:
    t = load_truth(name)
    assert t["scenario"] == name
    for key in ("generator", "generated", "description", "stacks", "findings", "absent_findings"):
        assert key in t, f"{name}.truth.json lacks {key!r}"
    slugs = {f["slug"] for f in t["findings"]}
    assert not slugs & set(t["absent_findings"]), f"{name}: a slug is both present and absent"
    if t.get("keylog"):
        assert (SAMPLES / t["keylog"]).exists()


@pytest.mark.parametrize("name", NAMES)
def test_rtp_ssrcs_and_counts(name: str) -> None:
    t = load_truth(name)
    if not t.get("rtp"):
        pytest.skip(f"{name}: no RTP in truth")
    # display filter "rtp && !rtcp && !icmp && !icmpv6"
    rows = [
        joined(f, ("rtp.ssrc", *ADDR_FIELDS))
        for f in wire(name)
        if has(f, "rtp") and not has(f, "rtcp") and not_icmp(f)
    ]
    counts: Counter = Counter()
    legs: dict[int, Counter] = {}
    for ssrcs, s4, s6, sp, d4, d6, dp in rows:
        for s in ssrcs.split(","):
            if s:
                ssrc = int(s, 16)
                counts[ssrc] += 1
                legs.setdefault(ssrc, Counter())[(endpoint(s4, s6, sp), endpoint(d4, d6, dp))] += 1
    for r in t["rtp"]:
        want = r["packets"] * r.get("wire_copies", 1)
        assert counts[r["ssrc"]] == want, f"SSRC {r['ssrc']:#x}: tshark {counts[r['ssrc']]}, truth {want}"
        if r.get("src") and r.get("dst"):
            src, dst = unbracket(r["src"]), unbracket(r["dst"])
            assert legs[r["ssrc"]][(src, dst)] == r["packets"], f"SSRC {r['ssrc']:#x} not on {src} -> {dst}"


@pytest.mark.parametrize("name", NAMES)
def test_stun_counts_by_method_and_class(name: str) -> None:
    t = load_truth(name)
    if "stun" not in t:
        pytest.skip(f"{name}: no STUN counts in truth")
    # display filter "stun && !icmp && !icmpv6"
    rows = [
        joined(f, ("stun.type", "stun.channel", "tcp.stream"))
        for f in wire(name, decode=False)
        if has(f, "stun") and not_icmp(f)
    ]
    seen: Counter = Counter()
    for types, channel, tcp_stream in rows:
        if not types:
            continue
        if tcp_stream:
            # TURN over TCP (RFC 6062 framing): one segment may hold several messages and ChannelData;
            # every STUN type listed is a top-level message of that stream
            for t_ in types.split(","):
                seen[stun_key_from_type(int(t_, 16))] += 1
            continue
        if channel:
            continue  # ChannelData: STUN inside it is not a top-level message
        seen[stun_key_from_type(int(types.split(",")[0], 16))] += 1
    assert dict(sorted(seen.items())) == dict(sorted(t["stun"].items()))


@pytest.mark.parametrize("name", NAMES)
def test_dtls_handshakes(name: str) -> None:
    t = load_truth(name)
    clear = [d for d in t.get("dtls", []) if not d.get("encrypted_handshake") and d.get("client_random")]
    if not clear:
        pytest.skip(f"{name}: no DTLS handshake in clear with a known client random")
    # display filter "dtls.handshake && !icmp && !icmpv6" (a handshake's fields are in no other frame)
    rows = [
        joined(f, ("frame.number", *ADDR_FIELDS, *DTLS_FIELDS))
        for f in wire(name)
        if (f["dtls.handshake.type"] or f["dtls.handshake.certificate"]) and not_icmp(f)
    ]
    for d in clear:
        rnd = d["client_random"].lower()
        hello = [r for r in rows if "1" in r[7].split(",") and r[8].replace(":", "").lower() == rnd]
        assert hello, f"{name}: no ClientHello with random {rnd}"
        client = endpoint(hello[0][1], hello[0][2], hello[0][3])
        server = endpoint(hello[0][4], hello[0][5], hello[0][6])
        if d.get("client") and d.get("server"):
            assert (client, server) == (unbracket(d["client"]), unbracket(d["server"]))
        from_server = [
            r for r in rows if endpoint(r[1], r[2], r[3]) == server and endpoint(r[4], r[5], r[6]) == client
        ]
        from_client = [
            r for r in rows if endpoint(r[1], r[2], r[3]) == client and endpoint(r[4], r[5], r[6]) == server
        ]
        sh = [r for r in from_server if "2" in r[7].split(",")]
        assert sh, f"{name}: no ServerHello for {client} -> {server}"
        sh_row = sh[0]
        assert DTLS_VERSIONS[int(sh_row[9].split(",")[-1], 16)] == d["version"]
        assert cipher_names()[int(sh_row[10].split(",")[0], 16)] == d["cipher_suite"]
        if d.get("srtp_profile"):
            assert SRTP_PROFILES[int(sh_row[11].split(",")[0], 16)] == d["srtp_profile"]
        for rows_dir, key in ((from_server, "server_cert_sha256"), (from_client, "client_cert_sha256")):
            if not d.get(key):
                continue
            certs = [c for r in rows_dir for c in r[12].split(",") if c]
            assert certs, f"{name}: no {key.split('_')[0]} certificate on the wire"
            assert hashlib.sha256(bytes.fromhex(certs[0].replace(":", ""))).hexdigest() == d[key]


@pytest.mark.parametrize("name", NAMES)
def test_sdp_fingerprints_in_readable_signalling(name: str) -> None:
    t = load_truth(name)
    sdps = [
        s
        for s in t.get("sdp", [])
        if s.get("fingerprint")
        and s.get("transport") in ("websocket", "http")
        and (not s.get("tls") or t.get("keylog"))
    ]
    if not sdps:
        pytest.skip(f"{name}: no SDP fingerprint in readable signalling")
    for s in sdps:
        alg, hexval = next(iter(s["fingerprint"].items()))
        colon = ":".join(hexval[i : i + 2] for i in range(0, len(hexval), 2))
        found = in_signalling(
            name,
            colon,
            SIGNALLING_TEXT,
            f'websocket.payload.text matches "(?i){colon}" || http.file_data matches "(?i){colon}" '
            f'|| json.value.string matches "(?i){colon}"',
            keylog=bool(s.get("tls")),
            ignore_case=True,
        )
        assert found, f"{name}: {s['role']} fingerprint {alg} {colon[:23]}... not found in signalling"


@pytest.mark.parametrize("name", NAMES)
def test_datachannel_messages_decrypt_with_keylog(name: str) -> None:
    t = load_truth(name)
    if not t.get("datachannels") or not t.get("keylog"):
        pytest.skip(f"{name}: no data channel messages with a keylog")
    # display filter "dtls"
    blob = " ".join(
        ",".join(f["data.data"]).replace(":", "") for f in wire(name, keylog=True) if has(f, "dtls")
    )
    for ch in t["datachannels"]:
        for m in ch["messages"]:
            assert m.encode().hex() in blob, f"{name}: message {m!r} not in decrypted DTLS"


@pytest.mark.parametrize("name", NAMES)
def test_datachannel_messages_not_readable_without_keylog(name: str) -> None:
    t = load_truth(name)
    if not t.get("datachannels"):
        pytest.skip(f"{name}: no data channel messages")
    # every frame's undissected data, not only that of display filter "dtls": readable anywhere is a failure
    blob = " ".join(",".join(f["data.data"]).replace(":", "") for f in wire(name))
    for ch in t["datachannels"]:
        for m in ch["messages"]:
            assert m.encode().hex() not in blob


@pytest.mark.parametrize("name", NAMES)
def test_secrets_absent_from_capture_outputs(name: str) -> None:
    """A secret the truth lists (e.g. a TURN password) is never on the wire (long-term auth sends only HMACs)."""
    t = load_truth(name)
    secrets = [s for s in t.get("secrets", {}).values() if isinstance(s, str) and s]
    if not secrets:
        pytest.skip(f"{name}: no secrets listed")
    data = sample_path(name).read_bytes()
    for s in secrets:
        assert s.encode() not in data


def stun_rows(name: str) -> list[dict[str, str]]:
    """STUN messages over UDP (display filter "stun && udp && !icmp && !icmpv6"), ChannelData left out."""
    fields = ("frame.number", *STUN_FIELDS)
    return [
        dict(zip(fields, joined(f, fields), strict=True))
        for f in wire(name)
        if has(f, "stun") and has(f, "udp") and not_icmp(f) and not f["stun.channel"]
    ]


@pytest.mark.parametrize("name", NAMES)
def test_turn_facts(name: str) -> None:
    t = load_truth(name)
    turn = t.get("turn")
    if not turn:
        pytest.skip(f"{name}: no TURN facts")
    rows = stun_rows(name)
    if turn.get("software"):
        assert any(turn["software"] in r["stun.att.software"] for r in rows)
    if turn.get("username"):
        assert any(r["stun.att.username"] == turn["username"] for r in rows)
        assert any(r["stun.att.realm"] == turn["realm"] for r in rows if r["stun.att.error"])
    allocs = [
        r for r in rows if stun_key_from_type(int(r["stun.type"].split(",")[0], 16)).startswith("Allocate/")
    ]
    errors = [r for r in allocs if r["stun.att.error.class"]]
    if turn.get("auth") == "none":
        assert allocs and not errors, "open relay: Allocate must succeed without a challenge"
        assert not any(r["stun.att.hmac"] for r in allocs), "open relay: no MESSAGE-INTEGRITY on Allocate"
    elif turn.get("auth"):
        codes = {int(r["stun.att.error.class"]) * 100 + int(r["stun.att.error"]) for r in errors}
        assert 401 in codes, "long-term auth: Allocate must be challenged with 401"
    for peer in turn.get("peers", []):
        if "create_permission" not in peer:
            continue
        host = peer["peer"].rsplit(":", 1)[0]
        reqs = [
            r
            for r in rows
            if r["stun.type"].split(",")[0] == "0x0008" and host in r["stun.att.ipv4"].split(",")
        ]
        assert reqs, f"{name}: no CreatePermission toward {host}"
        answers = [r for r in rows if r["stun.id"] in {q["stun.id"] for q in reqs} and r not in reqs]
        classes = {stun_key_from_type(int(r["stun.type"].split(",")[0], 16)).split("/")[1] for r in answers}
        assert classes == {peer["create_permission"]}
        if peer.get("error_code"):
            codes = {int(r["stun.att.error.class"]) * 100 + int(r["stun.att.error"]) for r in answers}
            assert codes == {peer["error_code"]}


@pytest.mark.parametrize("name", NAMES)
def test_eui64_finding_matches_the_wire(name: str) -> None:
    t = load_truth(name)
    found = [f for f in t["findings"] if f["slug"] == "ice-ipv6-eui64" and f.get("mac")]
    if not found:
        pytest.skip(f"{name}: no ice-ipv6-eui64 finding with a MAC")
    for f in found:
        for addr in f["endpoints"]:
            ip = ipaddress.ip_address(addr)  # display filter f"ipv6.src == {addr}"
            macs = {
                ",".join(frame["eth.src"])
                for frame in wire(name)
                if any(ipaddress.ip_address(v) == ip for v in frame["ipv6.src"])
            }
            assert macs == {f["mac"]}, f"{addr} sent from {macs}"


@pytest.mark.parametrize("name", NAMES)
def test_private_candidates_readable_in_signalling(name: str) -> None:
    t = load_truth(name)
    found = [f for f in t["findings"] if f["slug"] == "ice-private-ip-exposed"]
    if not found:
        pytest.skip(f"{name}: no ice-private-ip-exposed finding")
    for f in found:
        for addr in f["endpoints"]:
            host = addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr
            readable = in_signalling(
                name,
                host,
                ("websocket.payload.text", "http.file_data"),
                f'websocket.payload.text contains "{host}" || http.file_data contains "{host}" '
                f'|| sip contains "{host}"',
                keylog=True,
            )
            assert readable, f"{name}: {host} not in readable signalling"
