"""SDP (RFC 8866) as far as the security checks need it, and ICE candidate lines (RFC 8839).

:func:`parse_sdp` reads a description leniently: lines it cannot read are listed in
``SessionDescription.problems`` (the table builder turns them into anomaly rows) and parsing goes on;
it raises :class:`DecodeError` only when the text is not SDP at all. Secrets are never kept in clear
here except in attributes named ``*_secret`` (ICE password, SDES inline keys): the table layer hashes
or redacts them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import DecodeError

HASH_PREFIX = 16  # sha256 hex characters kept for hashed secrets


def secret_hash(value: str | bytes) -> str:
    """sha256 hex prefix of a secret (ICE password, SDES key, token): comparable, not reversible."""
    b = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return hashlib.sha256(b).hexdigest()[:HASH_PREFIX]


@dataclass
class Candidate:
    """One ICE candidate (RFC 8839 §5.1), as written (``address`` may be an mDNS name)."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    raddr: str | None = None
    rport: int | None = None
    tcptype: str | None = None
    generation: int | None = None
    ufrag: str | None = None
    network_id: int | None = None
    network_cost: int | None = None
    extensions: dict[str, str] = field(default_factory=dict)


def parse_candidate(line: str) -> Candidate:
    """Parse ``candidate:...`` (with or without ``a=``). Raises DecodeError(sdp_candidate_malformed)."""
    s = line.strip()
    s = s.removeprefix("a=")
    s = s.removeprefix("candidate:")
    parts = s.split()
    if len(parts) < 8 or parts[6] != "typ":
        raise DecodeError(
            "sdp_candidate_malformed", f"SDP candidate has too few fields or no 'typ': {line[:120]!r}"
        )
    try:
        c = Candidate(
            foundation=parts[0],
            component=int(parts[1]),
            transport=parts[2].lower(),
            priority=int(parts[3]),
            address=parts[4],
            port=int(parts[5]),
            type=parts[7].lower(),
        )
    except ValueError:
        raise DecodeError(
            "sdp_candidate_malformed",
            f"SDP candidate has a non-numeric component, priority or port: {line[:120]!r}",
        ) from None
    if not (0 <= c.port <= 65535) or not (0 <= c.priority <= 0xFFFFFFFF):
        raise DecodeError(
            "sdp_candidate_malformed", f"SDP candidate port or priority out of range: {line[:120]!r}"
        )
    rest = parts[8:]
    for i in range(0, len(rest) - 1, 2):
        k, v = rest[i], rest[i + 1]
        if k == "raddr":
            c.raddr = v
        elif k == "rport":
            c.rport = _int(v)
        elif k == "tcptype":
            c.tcptype = v
        elif k == "generation":
            c.generation = _int(v)
        elif k == "ufrag":
            c.ufrag = v
        elif k == "network-id":
            c.network_id = _int(v)
        elif k == "network-cost":
            c.network_cost = _int(v)
        else:
            c.extensions[k] = v
    return c


def _int(v: str) -> int | None:
    try:
        return int(v)
    except ValueError:
        return None


@dataclass
class Crypto:
    """An SDES ``a=crypto`` line (RFC 4568). ``key_secret`` is the inline key||salt (base64) in clear."""

    tag: int | None
    suite: str
    key_secret: str | None
    lifetime: str | None = None
    mki: str | None = None
    session_params: list[str] = field(default_factory=list)


def parse_crypto(value: str) -> Crypto:
    parts = value.split()
    if len(parts) < 3:
        raise DecodeError("sdp_crypto_malformed", f"SDP a=crypto has fewer than 3 fields: {value[:80]!r}")
    key = lifetime = mki = None
    kp = parts[2]
    if kp.lower().startswith("inline:"):
        inner = kp[7:].split("|")
        key = inner[0]
        if len(inner) > 1:
            # RFC 4568 §6.1: lifetime may be omitted while MKI is present; MKI has a ':'
            for x in inner[1:]:
                if ":" in x:
                    mki = x
                else:
                    lifetime = x
    return Crypto(
        tag=_int(parts[0]),
        suite=parts[1],
        key_secret=key,
        lifetime=lifetime,
        mki=mki,
        session_params=parts[3:],
    )


@dataclass
class Media:
    """One m= section with its own attributes (session-level ones are not copied in)."""

    kind: str
    port: int | None
    proto: str
    formats: list[str]
    mid: str | None = None
    connection: str | None = None
    direction: str | None = None
    setup: str | None = None
    ice_ufrag: str | None = None
    ice_pwd_secret: str | None = None
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    crypto: list[Crypto] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    end_of_candidates: bool = False
    rtpmap: dict[int, str] = field(default_factory=dict)
    ssrcs: list[int] = field(default_factory=list)
    rtcp_mux: bool = False
    ice_options: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class SessionDescription:
    """A parsed SDP. Session-level values are in the top fields; per-media ones in ``media``."""

    version: int | None = None
    origin: str | None = None
    origin_username: str | None = None
    session_id: str | None = None
    session_version: str | None = None
    origin_address: str | None = None
    session_name: str | None = None
    connection: str | None = None
    setup: str | None = None
    ice_ufrag: str | None = None
    ice_pwd_secret: str | None = None
    ice_lite: bool = False
    ice_options: list[str] = field(default_factory=list)
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)  # session-level (trickle sdpfrag)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (anomaly name, detail)

    # -- effective values (media-level overrides session-level) --------------------------------
    def all_fingerprints(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for fp in self.fingerprints + [f for m in self.media for f in m.fingerprints]:
            if fp not in out:
                out.append(fp)
        return out

    def ufrags(self) -> list[str]:
        out: list[str] = []
        for u in [self.ice_ufrag] + [m.ice_ufrag for m in self.media]:
            if u and u not in out:
                out.append(u)
        return out

    def pwds_secret(self) -> list[str]:
        out: list[str] = []
        for p in [self.ice_pwd_secret] + [m.ice_pwd_secret for m in self.media]:
            if p and p not in out:
                out.append(p)
        return out

    def setups(self) -> list[str]:
        out: list[str] = []
        for s in [self.setup] + [m.setup for m in self.media]:
            if s and s not in out:
                out.append(s)
        return out

    def all_candidates(self) -> list[tuple[Media | None, Candidate]]:
        return [(None, c) for c in self.candidates] + [(m, c) for m in self.media for c in m.candidates]

    def all_crypto(self) -> list[tuple[Media, Crypto]]:
        return [(m, c) for m in self.media for c in m.crypto]


_FP = re.compile(r"^\s*(\S+)\s+([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+|[0-9A-Fa-f]+)\s*$")


def normalise_fingerprint(value: str) -> tuple[str, str]:
    """``"sha-256 AB:CD:..."`` → ``("sha-256", "abcd...")``. Raises DecodeError(sdp_fingerprint_malformed)."""
    m = _FP.match(value)
    if not m:
        raise DecodeError(
            "sdp_fingerprint_malformed", f"SDP a=fingerprint is not 'hash-func hex': {value[:100]!r}"
        )
    return m.group(1).lower(), m.group(2).replace(":", "").lower()


def looks_like_sdp(text: str) -> bool:
    t = text.lstrip("\ufeff \t\r\n")
    return t.startswith("v=0") and ("\no=" in t or "\\no=" in t or "\ro=" in t)


def split_lines(text: str) -> list[str]:
    """SDP lines, tolerating CRLF, LF, bare CR, and JSON-style escaped newlines left in the text."""
    if "\n" not in text and "\r" not in text and ("\\r\\n" in text or "\\n" in text):
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n")
    return [ln for ln in re.split(r"\r\n|\n|\r", text) if ln.strip()]


def parse_sdp(text: str, *, fragment: bool = False) -> SessionDescription:
    """Parse an SDP description (or an ``application/trickle-ice-sdpfrag`` when ``fragment``).

    Raises DecodeError(sdp_not_sdp) when the text does not start with ``v=`` (fragments excepted)."""
    lines = split_lines(text)
    sd = SessionDescription()
    if not lines:
        raise DecodeError("sdp_not_sdp", "SDP is empty")
    if not fragment and not lines[0].lstrip("\ufeff ").startswith("v="):
        raise DecodeError("sdp_not_sdp", f"SDP does not start with v=: {lines[0][:60]!r}")
    cur: Media | None = None
    for ln in lines:
        ln = ln.lstrip("\ufeff").rstrip()
        if len(ln) < 2 or ln[1] != "=":
            sd.problems.append(("sdp_line_malformed", f"SDP line is not 'x=value': {ln[:80]!r}"))
            continue
        t, v = ln[0], ln[2:]
        try:
            if t == "v":
                sd.version = _int(v.strip())
            elif t == "o":
                _origin(sd, v)
            elif t == "s":
                sd.session_name = v
            elif t == "c":
                if cur is None:
                    sd.connection = v.strip()
                else:
                    cur.connection = v.strip()
            elif t == "m":
                cur = _media(v)
                sd.media.append(cur)
            elif t == "a":
                _attribute(sd, cur, v)
        except DecodeError as e:
            sd.problems.append((e.name, e.detail))
    if not fragment and sd.origin is None:
        sd.problems.append(("sdp_no_origin", "SDP has no o= line"))
    return sd


def _origin(sd: SessionDescription, v: str) -> None:
    sd.origin = v
    parts = v.split()
    if len(parts) != 6:
        raise DecodeError("sdp_origin_malformed", f"SDP o= line does not have 6 fields: {v[:100]!r}")
    sd.origin_username, sd.session_id, sd.session_version = parts[0], parts[1], parts[2]
    sd.origin_address = parts[5]


def _media(v: str) -> Media:
    parts = v.split()
    if len(parts) < 3:
        raise DecodeError("sdp_media_malformed", f"SDP m= line has fewer than 3 fields: {v[:80]!r}")
    port = _int(parts[1].split("/")[0])
    return Media(kind=parts[0], port=port, proto=parts[2], formats=parts[3:])


_DIRECTIONS = {"sendrecv", "sendonly", "recvonly", "inactive"}


def _attribute(sd: SessionDescription, m: Media | None, v: str) -> None:
    name, sep, value = v.partition(":")
    val: str | None = value if sep else None
    (m.attributes if m is not None else sd.attributes).append((name, val))
    if name == "fingerprint" and val is not None:
        fp = normalise_fingerprint(val)
        (m.fingerprints if m is not None else sd.fingerprints).append(fp)
    elif name == "setup" and val is not None:
        if m is not None:
            m.setup = val.strip().lower()
        else:
            sd.setup = val.strip().lower()
    elif name == "ice-ufrag" and val is not None:
        if m is not None:
            m.ice_ufrag = val.strip()
        else:
            sd.ice_ufrag = val.strip()
    elif name == "ice-pwd" and val is not None:
        if m is not None:
            m.ice_pwd_secret = val.strip()
        else:
            sd.ice_pwd_secret = val.strip()
    elif name == "ice-lite":
        sd.ice_lite = True
    elif name == "ice-options" and val is not None:
        (m.ice_options if m is not None else sd.ice_options).extend(val.split())
    elif name == "candidate" and val is not None:
        c = parse_candidate("candidate:" + val)
        (m.candidates if m is not None else sd.candidates).append(c)
    elif name == "end-of-candidates" and m is not None:
        m.end_of_candidates = True
    elif name == "group" and val is not None:
        sd.groups.append(val)
    elif m is None:
        return
    elif name == "mid" and val is not None:
        m.mid = val.strip()
    elif name in _DIRECTIONS:
        m.direction = name
    elif name == "crypto" and val is not None:
        m.crypto.append(parse_crypto(val))
    elif name == "rtpmap" and val is not None:
        pt, _, enc = val.partition(" ")
        p = _int(pt)
        if p is not None:
            m.rtpmap[p] = enc.strip()
    elif name == "ssrc" and val is not None:
        s = _int(val.split()[0]) if val.split() else None
        if s is not None and s not in m.ssrcs:
            m.ssrcs.append(s)
    elif name == "rtcp-mux":
        m.rtcp_mux = True


# -- implementation recognition ----------------------------------------------------------------

_SDPARTA = re.compile(r"^mozilla\.\.\.THIS_IS_SDPARTA-(\S+)$")


def recognise_stack(sd: SessionDescription) -> tuple[str | None, str | None]:
    """(stack, version) as far as the o=/s= lines and telltale attributes tell.

    Firefox writes ``mozilla...THIS_IS_SDPARTA-<v>`` into o= (frozen at 99.0 since Firefox 100: the
    table layer prefers the sender's User-Agent for the version); libwebrtc (Chrome, Safari, Edge, native
    apps) writes ``o=- <19-digit id> <n> IN IP4 127.0.0.1``; aiortc ``o=- <NTP seconds> <same> IN IP4
    0.0.0.0``; Janus ``a=msid-semantic: WMS janus``; mediasoup-client ``o=mediasoup-client``;
    FreeSWITCH and Asterisk name themselves in o= or s= (Asterisk's version when s= carries it)."""
    user = sd.origin_username or ""
    sname = (sd.session_name or "").strip()
    # Janus writes "a=msid-semantic: WMS janus" (and may keep the peer's o= line in its answers)
    if any(k == "msid-semantic" and v and "janus" in v.split() for k, v in sd.attributes):
        return "Janus", None
    m = _SDPARTA.match(user)
    if m:
        return "Firefox", m.group(1)
    low_user, low_s = user.lower(), sname.lower()
    if low_user == "freeswitch" or low_s.startswith("freeswitch"):
        return "FreeSWITCH", _version_in(sname)
    if low_s.startswith("asterisk") or low_user.startswith("asterisk"):
        return "Asterisk", _version_in(sname)
    if low_user == "mediasoup-client":
        return "mediasoup-client", None
    if "janus" in low_s or "janus" in low_user:
        return "Janus", _version_in(sname)
    sid, sver = sd.session_id or "", sd.session_version or ""
    if user == "-" and sd.origin_address == "127.0.0.1" and sid.isdigit() and len(sid) >= 17:
        return "libwebrtc", None
    if (
        user == "-"
        and sid.isdigit()
        and sid == sver
        and sd.origin_address == "0.0.0.0"
        and 3_000_000_000 <= int(sid) < 5_000_000_000
    ):
        return "aiortc", None
    return None, None


def _version_in(text: str) -> str | None:
    m = re.search(r"(\d+(?:\.\d+)+)", text)
    return m.group(1) if m else None


def summary(sd: SessionDescription) -> dict[str, Any]:
    """Plain-dict facts of one description (no secrets in clear), for frames and reports."""
    return {
        "origin": sd.origin,
        "protos": [m.proto for m in sd.media],
        "fingerprints": sd.all_fingerprints(),
        "setups": sd.setups(),
        "ufrags": sd.ufrags(),
        "ice_pwd_sha256": [secret_hash(p) for p in sd.pwds_secret()],
        "crypto_suites": [c.suite for _, c in sd.all_crypto()],
        "candidates": len(sd.all_candidates()),
    }
