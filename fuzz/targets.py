"""Fuzz targets: one function per parser we own, taking raw bytes, and their seed corpora.

A target calls the parser the way the package does and lets only the documented, deliberate errors through
(:class:`~rtcforensics.errors.DecodeError` and its subclasses for decoders, ``CaptureError`` for a file that
cannot be read at all). Anything else escaping — IndexError, struct.error, UnicodeDecodeError, RecursionError,
an ``assert`` — is a crash. Targets also check a few invariants that must hold for any input (e.g. the scalar
and vectorised RFC 7983 classifiers agree).

Seeds are taken from the sample captures at run time (``seeds(target)``): UDP payloads by RFC 7983 class,
DTLS certificates, SDP / JSON / SIP text found in the capture bytes, the heads of the capture files.

The module imports the package lazily (inside :func:`load`) so that a coverage-guided driver (atheris) can
instrument ``rtcforensics`` before it is imported.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_captures"

TARGETS: dict[str, Callable[[bytes], None]] = {}
_M: dict[str, Any] = {}


def target(name: str) -> Callable[[Callable[[bytes], None]], Callable[[bytes], None]]:
    def deco(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
        TARGETS[name] = fn
        return fn

    return deco


def load() -> None:
    """Import the parsers (call once, inside atheris.instrument_imports when fuzzing with atheris)."""
    if _M:
        return
    import numpy as np

    from rtcforensics import errors
    from rtcforensics.anomalies import AnomalyLog
    from rtcforensics.dissect import (
        demux,
        dtls,
        fastpath,
        jsonsdp,
        keylog,
        pcapio,
        rtp,
        sctp,
        sdp,
        stun,
        x509,
    )
    from rtcforensics.dissect.model import Datagram
    from rtcforensics.tables import signalling

    _M.update(
        np=np,
        errors=errors,
        AnomalyLog=AnomalyLog,
        demux=demux,
        dtls=dtls,
        fastpath=fastpath,
        jsonsdp=jsonsdp,
        keylog=keylog,
        pcapio=pcapio,
        rtp=rtp,
        sctp=sctp,
        sdp=sdp,
        stun=stun,
        x509=x509,
        Datagram=Datagram,
        signalling=signalling,
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------- targets


_TMP: dict[str, str] = {}


@target("pcap")
def fuzz_pcap(data: bytes) -> None:
    """pcap/pcapng/gzip reading (pcapio) and the fast path over what was read (link, IP, UDP/TCP, TURN, demux)."""
    m = _M
    path = _TMP.get("pcap")
    if path is None:
        fd, path = tempfile.mkstemp(prefix="rtcf-fuzz-", suffix=".pcap")
        os.close(fd)
        _TMP["pcap"] = path
    with open(path, "wb") as fh:
        fh.write(data)
    log = m["AnomalyLog"]()
    try:
        reader = m["pcapio"].CaptureReader(path, log, chunk_size=1024)
    except m["errors"].CaptureError:
        return
    st = m["fastpath"]._Pass(path, log, False)
    try:
        for b in reader.batches():
            st.batch(b)
    except m["errors"].CaptureError:
        return
    st.finish()


@target("demux")
def fuzz_demux(data: bytes) -> None:
    """RFC 7983 classification: scalar and vectorised must agree; TCP framing detection."""
    m = _M
    np = m["np"]
    demux = m["demux"]
    one = demux.classify(data)
    # the same payload inside a larger buffer, as the fast path sees it
    buf = np.frombuffer(b"\xaa" * 7 + data + b"\x55" * 9, dtype=np.uint8)
    vec = demux.classify_array(buf, np.array([7], dtype=np.int64), np.array([len(data)], dtype=np.int64))
    if int(vec[0]) != one:
        raise AssertionError(
            f"classify {demux.CLASSES[one]} != classify_array {demux.CLASSES[int(vec[0])]} "
            f"for {data[:24].hex()}"
        )
    for final in (False, True):
        kind = demux.tcp_kind(data, final)
        if final and kind is None:
            raise AssertionError("tcp_kind(final=True) returned None")


@target("stun")
def fuzz_stun(data: bytes) -> None:
    """STUN/TURN messages (attribute table, XOR addresses, integrity, fingerprint) and ChannelData."""
    m = _M
    stun = m["stun"]
    DecodeError = m["errors"].DecodeError
    for strict in (False, True):
        try:
            msg = stun.StunMessage.parse(data, strict=strict)
        except DecodeError:
            continue
        msg.format()
        _ = msg.attribute_names, msg.unknown_attributes, msg.unknown_required, msg.fingerprint_ok
        msg.check_integrity(b"fuzz-key")
        _ = msg.txid, msg.method_name, msg.class_name
        list(msg)
    try:
        stun.ChannelData.parse(data)
    except DecodeError:
        pass


def _datagrams(data: bytes) -> list[Any]:
    """Split fuzz bytes into datagrams of one flow, alternating direction (first byte: split count)."""
    Datagram = _M["Datagram"]
    if not data:
        return []
    parts = [data[1:]]
    if data[0] & 1 and len(data) > 8:
        cut = 1 + (data[0] * 7) % (len(data) - 1)
        parts = [data[1:cut], data[cut:]]
    out = []
    for i, p in enumerate(parts):
        a, b = ("192.0.2.1", 5000), ("198.51.100.2", 6000)
        src, dst = (a, b) if i % 2 == 0 else (b, a)
        out.append(
            Datagram(
                frame=i + 1,
                ts_ns=i * 1000,
                flow_id=0,
                src=src[0],
                sport=src[1],
                dst=dst[0],
                dport=dst[1],
                transport="udp",
                data=p,
            )
        )
    return out


@target("dtls")
def fuzz_dtls(data: bytes) -> None:
    """DTLS records (1.0/1.2 and the 1.3 unified header), handshake reassembly, hellos, certificates, JA3/JA4,
    through the tracker the table builder uses (non-strict: problems become anomalies, never exceptions)."""
    m = _M
    dtls = m["dtls"]
    log = m["AnomalyLog"]()
    hss = dtls.handshakes_from_datagrams(_datagrams(data), log)
    for hs in hss:
        _ = hs.version, hs.is_dtls13
    # the record and message parsers on their own (strict: DecodeError is the only way out)
    DecodeError = m["errors"].DecodeError
    try:
        for rec in dtls.parse_records(data):
            if rec.content_type == 22 and rec.epoch == 0:
                for fr in dtls.parse_fragments(rec.payload):
                    for fn in (
                        dtls.parse_client_hello,
                        dtls.parse_server_hello,
                        lambda b: dtls.parse_certificate(b, False),
                        lambda b: dtls.parse_certificate(b, True),
                        dtls.parse_encrypted_extensions,
                        dtls.parse_server_key_exchange_group,
                        dtls.parse_hello_verify_request,
                    ):
                        try:
                            fn(fr.body)
                        except DecodeError:
                            pass
            elif rec.content_type == 21:
                try:
                    dtls.parse_alert(rec.payload)
                except DecodeError:
                    pass
    except DecodeError:
        pass


@target("x509")
def fuzz_x509(data: bytes) -> None:
    """Certificate facts with `cryptography` (DER as it comes out of a DTLS Certificate message)."""
    m = _M
    try:
        m["x509"].cert_facts(data)
    except m["errors"].DecodeError:
        pass


@target("rtp")
def fuzz_rtp(data: bytes) -> None:
    """RTP header (CSRC, extensions, padding) and RTCP compound packets."""
    m = _M
    rtp = m["rtp"]
    DecodeError = m["errors"].DecodeError
    try:
        rtp.decode_rtp(data)
    except DecodeError:
        pass
    try:
        rtp.decode_rtcp_compound(data)
    except DecodeError:
        pass


@target("sdp")
def fuzz_sdp(data: bytes) -> None:
    """SDP parser, candidate and crypto lines, stack recognition and summary."""
    m = _M
    sdp = m["sdp"]
    DecodeError = m["errors"].DecodeError
    text = _text(data)
    for fragment in (False, True):
        try:
            sd = sdp.parse_sdp(text, fragment=fragment)
        except DecodeError:
            continue
        sd.all_fingerprints()
        sd.ufrags()
        sd.pwds_secret()
        sd.setups()
        sd.all_candidates()
        sd.all_crypto()
        sdp.recognise_stack(sd)
        sdp.summary(sd)
    sdp.looks_like_sdp(text)
    for ln in sdp.split_lines(text):
        for fn, prefix in ((sdp.parse_candidate, "a=candidate:"), (sdp.parse_crypto, "a=crypto:")):
            if ln.startswith(prefix):
                try:
                    fn(ln[2:] if fn is sdp.parse_candidate else ln[len(prefix) :])
                except DecodeError:
                    pass
        if ln.startswith("a=fingerprint:"):
            try:
                sdp.normalise_fingerprint(ln[len("a=fingerprint:") :])
            except DecodeError:
                pass


@target("jsonsdp")
def fuzz_jsonsdp(data: bytes) -> None:
    """SDP, candidates and ICE parameters inside JSON at any depth (escaped newlines, nested strings)."""
    m = _M
    j = m["jsonsdp"]
    DecodeError = m["errors"].DecodeError
    text = _text(data)
    try:
        j.find_in_text(text)
    except DecodeError:
        pass
    try:
        obj = j.loads(text)
    except (DecodeError, ValueError):
        return
    try:
        j.find(obj)
        j.envelope_of(obj)
    except DecodeError:
        pass


class _StubCap:
    """What classify_body needs of a Capture: non-strict, an anomaly log."""

    strict = False

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.dissection = SimpleNamespace(anomalies=_M["AnomalyLog"]())

    def cached(self, name: str, fn: Callable[[], Any]) -> Any:
        return fn()


@target("signalling")
def fuzz_signalling(data: bytes) -> None:
    """Signalling bodies as they come out of HTTP / WebSocket payloads: body classification (SDP, trickle
    fragments, JSON, SIP over WebSocket, forms, multipart), SIP framing, header auth and URL redaction."""
    m = _M
    s = m["signalling"]
    DecodeError = m["errors"].DecodeError
    text = _text(data)
    cut = text.find("\n\n")
    ctype = text[:cut].strip() if 0 <= cut < 200 else None
    body = text[cut + 2 :] if ctype is not None else text
    for transport in ("websocket", "http", "sip"):
        msg = s.Message(
            index=0,
            frame=1,
            ts_ns=0,
            transport=transport,
            ip_proto="tcp",
            src="192.0.2.1",
            sport=1,
            dst="192.0.2.2",
            dport=2,
            tcp_stream=0,
            tls=False,
            decrypted=False,
        )
        s.classify_body(_StubCap(), msg, body, ctype, body.encode("utf-8", "surrogateescape"))
    try:
        s.parse_sip(data)
    except DecodeError:
        pass
    s.is_sip(data)
    s.multipart_parts(ctype or "multipart/mixed; boundary=b", data)
    lines = text.splitlines()
    s.header_auth(s._headers(lines))
    for ln in lines[:20]:
        s.redact_url(ln)


@target("sctp")
def fuzz_sctp(data: bytes) -> None:
    """SCTP packets inside DTLS (data channels), DATA/I-DATA reassembly and DCEP."""
    m = _M
    sctp = m["sctp"]
    DecodeError = m["errors"].DecodeError
    try:
        pkt = sctp.parse_sctp(data)
    except DecodeError:
        pkt = None
    if pkt is not None:
        asm = sctp.SctpAssembler()
        for ch in pkt.data + pkt.data[::-1]:
            msg = asm.add(ch)
            if msg is not None and msg.ppid == 50:
                try:
                    sctp.parse_dcep(msg.data)
                except DecodeError:
                    pass
    try:
        sctp.parse_dcep(data)
    except DecodeError:
        pass


@target("keylog")
def fuzz_keylog(data: bytes) -> None:
    """SSLKEYLOGFILE text (NSS key log format) as given by the analyst or a pcapng DSB."""
    m = _M
    m["keylog"].parse_keylog(_text(data), m["AnomalyLog"]())


# --------------------------------------------------------------------------------------------- seeds


def sample_captures() -> list[Path]:
    return sorted(SAMPLES.glob("*.pcapng")) + sorted(SAMPLES.glob("*.pcap"))


def _udp_payloads(path: Path, limit: int = 20000) -> list[bytes]:
    """UDP payloads of a capture (Ethernet / IPv4 / IPv6), read with our own reader."""
    load()
    pcapio = _M["pcapio"]
    out: list[bytes] = []
    for b in pcapio.CaptureReader(path, _M["AnomalyLog"]()).batches():
        for i in range(len(b)):
            pkt = b.packet(i)
            if int(b.linktype[i]) != 1 or len(pkt) < 14:
                continue
            et = struct.unpack_from("!H", pkt, 12)[0]
            p = 14
            if et == 0x8100 and len(pkt) >= 18:
                et = struct.unpack_from("!H", pkt, 16)[0]
                p = 18
            if et == 0x0800 and len(pkt) >= p + 20 and pkt[p + 9] == 17:
                p += (pkt[p] & 15) * 4
            elif et == 0x86DD and len(pkt) >= p + 40 and pkt[p + 6] == 17:
                p += 40
            else:
                continue
            if len(pkt) >= p + 8:
                out.append(bytes(pkt[p + 8 :]))
            if len(out) >= limit:
                return out
    return out


def _pick(items: list[bytes], n: int) -> list[bytes]:
    """Up to n distinct items, spread over the list (deterministic)."""
    uniq = list(dict.fromkeys(items))
    if len(uniq) <= n:
        return uniq
    step = len(uniq) / n
    return [uniq[int(i * step)] for i in range(n)]


_SDP_RE = re.compile(rb"v=0(?:\r\n|\\r\\n|\n|\\n)o=.{0,6000}?(?=\"|\x00|$)", re.DOTALL)
_JSON_RE = re.compile(rb"\{\"[^\x00-\x08]{8,6000}?\}(?=[\x00-\x1f]|$)", re.DOTALL)
_SIP_RE = re.compile(
    rb"(?:INVITE|REGISTER|BYE|ACK|OPTIONS|SIP/2\.0) [^\x00]{20,4000}?\r\n\r\n[^\x00]{0,3000}"
)


@lru_cache(maxsize=1)
def _all_seeds() -> dict[str, list[bytes]]:
    load()
    demux = _M["demux"]
    by_cls: dict[int, list[bytes]] = {}
    text_sdp: list[bytes] = []
    text_json: list[bytes] = []
    text_sip: list[bytes] = []
    heads: list[bytes] = []
    for cap in sample_captures():
        for p in _udp_payloads(cap):
            by_cls.setdefault(demux.classify(p), []).append(p)
        raw = cap.read_bytes()
        heads.append(raw[:4096])
        text_sdp += [m.group(0) for m in _SDP_RE.finditer(raw)][:20]
        text_json += [m.group(0) for m in _JSON_RE.finditer(raw)][:40]
        text_sip += [m.group(0) for m in _SIP_RE.finditer(raw)][:20]
    stun = by_cls.get(demux.STUN, [])
    dtls_dg = by_cls.get(demux.DTLS, [])
    rtp = by_cls.get(demux.RTP, []) + by_cls.get(demux.RTCP, [])
    chan = by_cls.get(demux.TURN_CHANNEL, [])
    certs = _certificates(dtls_dg)
    seeds = {
        "pcap": heads + _pcap_heads() + _mixed_pcaps(),
        "demux": _pick(stun, 20) + _pick(dtls_dg, 20) + _pick(rtp, 20) + _pick(chan, 10),
        "stun": _pick(stun, 150) + _pick(chan, 20),
        "dtls": [b"\x00" + d for d in _pick([d for d in dtls_dg if d[0] == 22], 80)] + _pick(dtls_dg, 40),
        "x509": certs,
        "rtp": _pick(by_cls.get(demux.RTP, []), 80) + _pick(by_cls.get(demux.RTCP, []), 80),
        "sdp": _pick([_unescape(s) for s in text_sdp], 60),
        "jsonsdp": _pick(text_json, 80),
        "signalling": _pick(text_json, 40)
        + _pick(text_sip, 20)
        + [b"application/sdp\n\n" + _unescape(s) for s in _pick(text_sdp, 10)],
        "sctp": [_SCTP_SEED],
        "keylog": _keylog_seeds(),
    }
    return seeds


def _unescape(s: bytes) -> bytes:
    return s.replace(b"\\r\\n", b"\r\n").replace(b"\\n", b"\n")


def _certificates(dtls_datagrams: list[bytes]) -> list[bytes]:
    """DER certificates from the clear DTLS 1.0/1.2 handshakes of the sample captures."""
    dtls = _M["dtls"]
    out: list[bytes] = []
    for d in dtls_datagrams:
        if d[0] != 22:
            continue
        try:
            for rec in dtls.parse_records(d):
                if rec.content_type != 22 or rec.epoch != 0:
                    continue
                for fr in dtls.parse_fragments(rec.payload):
                    if fr.msg_type == 11 and fr.frag_offset == 0 and len(fr.body) == fr.length:
                        out += dtls.parse_certificate(fr.body, False)
        except _M["errors"].DecodeError:
            continue
    return list(dict.fromkeys(out))[:20] + _made_certificates()


def _made_certificates() -> list[bytes]:
    """Self-signed certificates of the key types WebRTC stacks use (ECDSA P-256, RSA, Ed25519), made now."""
    import datetime

    from cryptography import x509 as cx
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    out = []
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    for key, algo in (
        (ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()),
        (rsa.generate_private_key(65537, 1024), hashes.SHA256()),
        (ed25519.Ed25519PrivateKey.generate(), None),
    ):
        name = cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, "fuzz")])
        cert = (
            cx.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(12345)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, algo)
        )
        out.append(cert.public_bytes(serialization.Encoding.DER))
    return out


def _pcap_heads() -> list[bytes]:
    """Classic-pcap versions of the heads of a few sample captures (our reader has two formats)."""
    import subprocess

    out: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="rtcf-seed-") as d:
        for cap in sample_captures()[:6]:
            dst = Path(d) / (cap.stem + ".pcap")
            cp = subprocess.run(
                ["editcap", "-F", "pcap", "-r", str(cap), str(dst), "1-12"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if cp.returncode == 0 and dst.exists():
                out.append(dst.read_bytes()[:4096])
    return out


def _mixed_pcaps(per_file: int = 14, budget: int = 7000) -> list[bytes]:
    """Per sample capture, a small classic pcap of frames of different kinds from anywhere in the file
    (the heads alone are mostly ARP, TCP handshakes and the first STUN checks)."""
    pcapio = _M["pcapio"]
    out = []
    for cap in sample_captures():
        picked: dict[tuple[int, int, int], bytes] = {}
        for b in pcapio.CaptureReader(cap, _M["AnomalyLog"]()).batches():
            for i in range(len(b)):
                p = bytes(b.packet(i))
                if len(p) < 42 or int(b.linktype[i]) != 1:
                    continue
                v4 = p[12:14] == b"\x08\x00"
                proto = p[23] if v4 else p[20] if p[12:14] == b"\x86\xdd" else -1
                l4 = 14 + ((p[14] & 15) * 4 if v4 else 40)
                first = p[l4 + 8] if proto == 17 and len(p) > l4 + 8 else -1
                key = (proto, first >> 4 if first >= 0 else -1, len(p) > 600)
                picked.setdefault(key, p)
        frames = sorted(picked.values(), key=len)[:per_file]
        body = b"".join(
            struct.pack("<IIII", 1_700_000_000, k, len(f), len(f)) + f for k, f in enumerate(frames)
        )
        out.append((struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + body)[:budget])
    return out


# A minimal SCTP packet (common header + one DATA chunk holding a DCEP DATA_CHANNEL_OPEN, RFC 8832 §5.1);
# data channels travel inside DTLS, so no clear SCTP is in the sample captures.
_SCTP_SEED = (
    struct.pack("!HHII", 5000, 5000, 0x01020304, 0)
    + struct.pack("!BBH", 0, 3, 16 + 12 + 5)
    + struct.pack("!IHHI", 1, 0, 0, 50)
    + bytes([3, 0])
    + struct.pack("!HIHH", 0, 0, 4, 0)
    + b"chat"
    + b"\x00" * 3
)


def _keylog_seeds() -> list[bytes]:
    """Structure only: the keylog lines' labels and lengths with random-looking hex (never the real secrets)."""
    out = []
    for k in sorted(SAMPLES.glob("*.keylog")):
        lines = []
        for ln in k.read_text(errors="replace").splitlines()[:8]:
            parts = ln.split()
            if len(parts) == 3:
                lines.append(f"{parts[0]} {'ab' * (len(parts[1]) // 2)} {'cd' * (len(parts[2]) // 2)}")
        out.append("\n".join(lines).encode())
    return out


def seeds(name: str) -> list[bytes]:
    return [s for s in _all_seeds().get(name, []) if s is not None]


def write_corpus(name: str, directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, s in enumerate(seeds(name)):
        (directory / f"seed-{i:04d}").write_bytes(s)
        n += 1
    return n
