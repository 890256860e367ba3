"""Helpers for scenarios: scratch directories, stack versions, facts from real stacks, tshark cross-checks.

Everything here reports what a real stack said (aiortc/aioice in-process, coturn, openssl, tshark); nothing
here parses captures with our own code.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "lab"
PY = sys.executable
TSHARK_HEUR = [
    "--enable-heuristic",
    "rtp_udp",
    "--enable-heuristic",
    "rtp_stun",
    "--enable-heuristic",
    "dtls_stun",
]
TSHARK_TIMEOUT = 120

# RFC 5389 §6 STUN class from the two class bits of the message type
STUN_CLASS = {0: "request", 1: "indication", 2: "success", 3: "error"}
# IANA STUN methods (RFC 5389, 5766, 6062)
STUN_METHOD = {
    0x001: "Binding",
    0x003: "Allocate",
    0x004: "Refresh",
    0x006: "Send",
    0x007: "Data",
    0x008: "CreatePermission",
    0x009: "ChannelBind",
    0x00A: "Connect",
    0x00B: "ConnectionBind",
    0x00C: "ConnectionAttempt",
}
# OpenSSL's SRTP profile names -> IANA names (RFC 5764 §4.1.2, RFC 7714 §14.2)
SRTP_IANA = {
    "SRTP_AES128_CM_SHA1_80": "SRTP_AES128_CM_HMAC_SHA1_80",
    "SRTP_AES128_CM_SHA1_32": "SRTP_AES128_CM_HMAC_SHA1_32",
    "SRTP_NULL_SHA1_80": "SRTP_NULL_HMAC_SHA1_80",
    "SRTP_NULL_SHA1_32": "SRTP_NULL_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "SRTP_AEAD_AES_256_GCM",
}
SRTP_IDS = {
    "SRTP_AES128_CM_HMAC_SHA1_80": 0x0001,
    "SRTP_AES128_CM_HMAC_SHA1_32": 0x0002,
    "SRTP_NULL_HMAC_SHA1_80": 0x0005,
    "SRTP_NULL_HMAC_SHA1_32": 0x0006,
    "SRTP_AEAD_AES_128_GCM": 0x0007,
    "SRTP_AEAD_AES_256_GCM": 0x0008,
}
DTLS_VERSION = {"DTLSv1": "DTLS 1.0", "DTLSv1.2": "DTLS 1.2", "DTLSv1.3": "DTLS 1.3"}


def workdir(name: str) -> Path:
    """A fresh scratch directory for scenario ``name`` (git-ignored)."""
    d = LAB / "work" / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def stun_key(method: int, cls: int) -> str:
    return f"{STUN_METHOD.get(method, hex(method))}/{STUN_CLASS[cls]}"


def stun_key_from_type(msg_type: int) -> str:
    """'Binding/request' from a 16-bit STUN message type (RFC 5389 §6: class bits C1 at 0x100, C0 at 0x10)."""
    cls = ((msg_type >> 7) & 0x2) | ((msg_type >> 4) & 0x1)
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    return stun_key(method, cls)


@functools.cache
def openssl_iana_names() -> dict[str, str]:
    """OpenSSL cipher name -> IANA name, as the installed openssl reports it."""
    out = subprocess.run(
        ["openssl", "ciphers", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    names = {}
    for line in out.splitlines():
        parts = line.split(" - ")
        if len(parts) >= 2:
            names[parts[1].split()[0]] = parts[0].strip()
    return names


def openssl(*args: str, cwd: Path) -> str:
    """Run the openssl command line in ``cwd``; its stdout, or RuntimeError with its stderr."""
    r = subprocess.run(["openssl", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {r.stderr[-1000:]}")
    return r.stdout


def self_signed_cert(work: Path, stem: str, newkey: Sequence[str], subject: str) -> dict[str, Any]:
    """A self-signed certificate ``<stem>.pem`` with key ``<stem>.key`` made by ``openssl req`` (``newkey``:
    e.g. ["rsa:1024"] or ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]), and what openssl says of it:
    SHA-256 of the DER, subject, key type and size, signature algorithm."""
    pem = f"{stem}.pem"
    openssl(
        "req",
        "-x509",
        "-newkey",
        *newkey,
        "-sha256",
        "-days",
        "30",
        "-nodes",
        "-subj",
        subject,
        "-keyout",
        f"{stem}.key",
        "-out",
        pem,
        cwd=work,
    )
    fp = openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256", cwd=work)
    text = openssl("x509", "-in", pem, "-noout", "-text", cwd=work)
    bits = re.search(r"Public-Key: \((\d+) bit\)", text)
    sig = re.search(r"Signature Algorithm: (\S+)", text)
    if sig is None:
        raise RuntimeError(f"openssl x509 -text printed no signature algorithm for {pem}")
    return {
        "sha256": fp.split("=", 1)[1].strip().replace(":", "").lower(),
        "subject": openssl("x509", "-in", pem, "-noout", "-subject", cwd=work).split("=", 1)[1].strip(),
        "key_type": "RSA" if "rsaEncryption" in text else "EC",
        "key_bits": int(bits.group(1)) if bits else None,
        "signature_algorithm": sig.group(1),
    }


@functools.cache
def stack_versions() -> dict[str, str]:
    """Versions of the stacks this generator drives (those installed)."""
    v: dict[str, str] = {}
    try:
        import aiohttp
        import aioice
        import aiortc
        import OpenSSL

        v.update(
            aiortc=aiortc.__version__,
            aioice=aioice.__version__,
            aiohttp=aiohttp.__version__,
            pyopenssl=OpenSSL.__version__,
        )
    except ImportError:
        pass
    ssl_v = subprocess.run(["openssl", "version"], check=False, capture_output=True, text=True).stdout.split()
    if len(ssl_v) > 1:
        v["openssl"] = ssl_v[1]
    v["python"] = sys.version.split()[0]
    ts = subprocess.run(
        ["tshark", "--version"], check=False, capture_output=True, text=True
    ).stdout.splitlines()
    if ts:
        m = re.search(r"(\d+\.\d+\.\d+)", ts[0])
        if m:
            v["tshark"] = m.group(1)
    return v


def coturn_version() -> str:
    out = subprocess.run(["turnserver", "--version"], check=False, capture_output=True, text=True, timeout=10)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def scope(addr: str) -> str:
    """Address scope as docs/architecture.md names it (documentation ranges count as public)."""
    ip = ipaddress.ip_address(addr.split("%")[0])
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.version == 4:
        if ip in ipaddress.ip_network("100.64.0.0/10"):
            return "cgnat"
        if any(ip in ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")):
            return "private"
        return "public"
    if ip in ipaddress.ip_network("fc00::/7"):
        return "ula"
    return "public"


def eui64_mac(addr: str) -> str | None:
    """MAC from an EUI-64 IPv6 interface id (…ff:fe…, universal/local bit flipped), else None."""
    ip = ipaddress.ip_address(addr)
    if ip.version != 6:
        return None
    iid = ip.packed[8:]
    if iid[3:5] != b"\xff\xfe":
        return None
    mac = bytes([iid[0] ^ 0x02]) + iid[1:3] + iid[5:8]
    return ":".join(f"{b:02x}" for b in mac)


def eui64_address(prefix: str, mac: str) -> str:
    """IPv6 address = /64 ``prefix`` + modified EUI-64 interface id from ``mac`` (RFC 4291 App. A)."""
    b = bytes(int(x, 16) for x in mac.split(":"))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:6]
    net = ipaddress.ip_network(prefix)
    return str(ipaddress.IPv6Address(net.network_address.packed[:8] + iid))


def sdp_facts(sdp: str, role: str, transport: str, tls: bool) -> dict[str, Any]:
    """Facts of one SDP exactly as a stack sent/received it (lines read verbatim, not re-derived)."""
    fps: dict[str, str] = {}
    ufrag = setup = None
    protos = []
    for line in sdp.splitlines():
        if line.startswith("a=fingerprint:"):
            alg, val = line[len("a=fingerprint:") :].split(" ", 1)
            fps[alg.lower()] = val.replace(":", "").lower()
        elif line.startswith("a=ice-ufrag:") and ufrag is None:
            ufrag = line.split(":", 1)[1]
        elif line.startswith("a=setup:") and setup is None:
            setup = line.split(":", 1)[1]
        elif line.startswith("m="):
            protos.append(line.split()[2])
    return {
        "role": role,
        "fingerprint": fps,
        "ice_ufrag": ufrag,
        "setup": setup,
        "protos": protos,
        "transport": transport,
        "tls": tls,
    }


def candidates_from_sdp(sdp: str) -> list[dict[str, Any]]:
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            out.append(candidate_fact(line[2:]))
    return out


def candidate_fact(cand: str) -> dict[str, Any]:
    """One candidate attribute ('candidate:…') as a truth row."""
    parts = cand.split(":", 1)[1].split()
    c: dict[str, Any] = {
        "address": parts[4],
        "port": int(parts[5]),
        "transport": parts[2].lower(),
        "type": parts[7],
        "scope": scope(parts[4]),
    }
    if "raddr" in parts:
        c["raddr"] = parts[parts.index("raddr") + 1]
    mac = eui64_mac(parts[4]) if ":" in parts[4] else None
    if mac:
        c["eui64_mac"] = mac
    return c


def dedupe(rows: Iterable[dict]) -> list[dict]:
    seen, out = set(), []
    for r in rows:
        k = json.dumps(r, sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def add_counts(*dicts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


def tshark_fields(
    cap: Path,
    fields: list[str],
    *,
    display_filter: str | None = None,
    extra: list[str] | None = None,
    keylog: Path | None = None,
    heuristics: bool = True,
    first_only: bool = False,
    aggregator: str = ",",
) -> list[list[str]]:
    """tshark -T fields rows (bounded); each row a list of the field strings ('' when absent). A field that
    occurs several times in a packet gives its values joined by ``aggregator`` (``first_only``: the first
    value; a character no value holds, e.g. "\x1f", keeps values with commas apart).
    ``heuristics``: the WebRTC heuristics (RTP on any UDP port, RTP/DTLS inside TURN); ``extra``: more
    options (e.g. Decode-As ``-d``)."""
    argv = [
        "tshark",
        "-n",
        "-r",
        str(cap),
        *(TSHARK_HEUR if heuristics else []),
        *(extra or []),
        "-T",
        "fields",
        "-E",
        "separator=\t",
        *(["-E", "occurrence=f"] if first_only else ["-E", "occurrence=a", "-E", f"aggregator={aggregator}"]),
    ]
    if keylog:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    if display_filter:
        argv += ["-Y", display_filter]
    for f in fields:
        argv += ["-e", f]
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=TSHARK_TIMEOUT)
    if res.returncode != 0:
        raise RuntimeError(f"tshark failed on {cap.name}: {res.stderr.strip()[:500]}")
    return [line.split("\t") for line in res.stdout.splitlines()]


WireFrame = dict[str, list[str]]
_APART = "\x1f"  # joins a field's occurrences: no value tshark prints holds it (commas are common)


def tshark_frames(
    cap: Path,
    fields: Sequence[str],
    *,
    display_filter: str | None = None,
    extra: list[str] | None = None,
    keylog: Path | None = None,
    heuristics: bool = True,
) -> list[WireFrame]:
    """One tshark pass, one dict per frame: each field -> every value it has in that frame ([] when absent),
    and "frame.protocols" -> the frame's protocol stack (what a display filter naming a protocol tests). A
    test module can read everything it needs in one pass and apply each test's filter in Python."""
    names = ["frame.protocols", *fields]
    rows = tshark_fields(
        cap,
        names,
        display_filter=display_filter,
        extra=extra,
        keylog=keylog,
        heuristics=heuristics,
        aggregator=_APART,
    )
    out = []
    for r in rows:
        f = {n: (v.split(_APART) if v else []) for n, v in zip(names, r, strict=True)}
        f["frame.protocols"] = f["frame.protocols"][0].split(":") if f["frame.protocols"] else []
        out.append(f)
    return out


def first_values(frame: WireFrame, *fields: str) -> tuple[str, ...]:
    """The first value of each field in ``frame`` ('' when absent), as tshark's ``-E occurrence=f`` gives."""
    return tuple((frame[f] or [""])[0] for f in fields)


# who sent a UDP datagram to whom, in which frame: the first fields of most truth cross-checks
UDP_FRAME_FIELDS = ("frame.number", "ip.src", "udp.srcport", "ip.dst", "udp.dstport")


def dtls_wire(
    cap: Path, ports: Iterable[int], keylog: Path
) -> tuple[list[dict[str, str]], dict[str, set[str]], dict[str, bytes]]:
    """What tshark reads of the DTLS on ``ports`` (Decode-As), with ``keylog``: the handshake rows (dicts keyed
    by field name, repeated fields joined by ","), the SHA-256 of every certificate sent from each UDP source
    port, and the decrypted application data received on each UDP destination port."""
    decode = [a for port in ports for a in ("-d", f"udp.port=={port},dtls")]
    fields = [
        *UDP_FRAME_FIELDS,
        "dtls.handshake.type",
        "dtls.record.version",
        "dtls.handshake.version",
        "dtls.handshake.random",
        "dtls.handshake.ciphersuite",
        "dtls.use_srtp.protection_profile",
        "dtls.alert_message.desc",
        "dtls.handshake.certificate",
    ]
    rows = [
        dict(zip(fields, r))
        for r in tshark_fields(cap, fields, display_filter="dtls", extra=decode, keylog=keylog)
    ]
    certs: dict[str, set[str]] = {}
    for r in rows:
        for der in filter(None, r["dtls.handshake.certificate"].split(",")):
            certs.setdefault(r["udp.srcport"], set()).add(
                hashlib.sha256(bytes.fromhex(der.replace(":", ""))).hexdigest()
            )
    data: dict[str, bytes] = {}
    for port, hexdata in tshark_fields(
        cap, ["udp.dstport", "data.data"], display_filter="dtls.app_data", extra=decode, keylog=keylog
    ):
        data[port] = data.get(port, b"") + bytes.fromhex(hexdata.replace(":", "").replace(",", ""))
    return rows, certs, data


def no_media() -> dict[str, Any]:
    """The truth keys of a capture with handshakes only: no SDP, RTP, STUN or candidates to check."""
    return {"sdp": [], "rtp": [], "stun": {}, "candidates": []}


def run_json(argv: list[str], timeout: float = 60) -> Any:
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {res.stderr[-800:]}")
    return json.loads(res.stdout)


def make_cert(out_dir: Path, cn: str, ip: str) -> tuple[Path, Path]:
    """Self-signed ECDSA certificate ``<cn>.crt`` (key ``<cn>.key``) for a TLS server at ``ip``."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        f"{cn}.key",
        "-out",
        f"{cn}.crt",
        "-days",
        "30",
        "-subj",
        f"/CN={cn}",
        "-addext",
        f"subjectAltName=IP:{ip}",
        cwd=out_dir,
    )
    return out_dir / f"{cn}.key", out_dir / f"{cn}.crt"
