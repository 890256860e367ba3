"""The `sdp` frame: every session description seen, on the wire (HTTP, WebSocket, SIP, JSON at any depth)
or in a side file (``signalling=``), one row each.

Secrets: the ICE password is stored only as a sha-256 prefix (``ice_pwd_sha256``); SDES keys
(``a=crypto inline:``) are kept as suite + sha-256 prefix, and in clear only in the documented secret
column ``crypto_keys_secret`` (reports show it only with ``--show-secrets``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..capture import Capture, register_frame
from ..dissect.jsonsdp import Found
from ..dissect.sdp import Candidate, SessionDescription, parse_sdp, recognise_stack, secret_hash
from ..errors import DecodeError
from ..schema import frame_schema
from .rtp import register_keying_refiner
from .signalling import Message, add_anomaly, frame_flow_map, messages

SOURCE_KINDS = "http,websocket,sip,sdp_file,webrtc_internals,jsonl,json_file"

SDP = frame_schema(
    "sdp",
    "Session descriptions (and SDP-free ICE/DTLS parameter sets such as mediasoup's), one row per description "
    "seen on the wire or in a side file.",
    [
        ("sdp_index", "Int64", "description number in this capture (candidates.sdp_index refers to it)"),
        ("frame", "Int64", "Wireshark frame of the message that carried it (NA for side files)"),
        ("ts", "ts", "capture time of that frame, or the time a side file recorded (UTC)"),
        ("source", "string", "'wire', or the side file's name"),
        ("source_kind", "category:" + SOURCE_KINDS, "how it was carried / which kind of side file"),
        ("signalling_msg", "Int64", "signalling.msg_index of the carrying message"),
        (
            "transport",
            "category:http,websocket,sip",
            "signalling protocol that carried it (NA for side files)",
        ),
        ("tls", "boolean", "the carrying message was inside TLS (NA for side files)"),
        ("decrypted", "boolean", "read after TLS decryption with the keylog"),
        ("src", "string", "sender IP address of the carrying message"),
        ("sport", "Int32", "sender port"),
        ("dst", "string", "receiver IP address"),
        ("dport", "Int32", "receiver port"),
        ("flow_id", "Int64", "flow of the carrying frame"),
        (
            "client_endpoint",
            "string",
            "signalling.client_endpoint of the carrying message (the side that opened it)",
        ),
        ("server_endpoint", "string", "signalling.server_endpoint of the carrying message (the listener)"),
        (
            "answers_frame",
            "Int64",
            (
                "signalling.answers_frame of the carrying message: for a SIP answer, the frame "
                "of the offer it answers (paired by dialog and CSeq)"
            ),
        ),
        (
            "direction",
            "string",
            (
                "carrying message: request/response/client_to_server/server_to_client; side "
                "files: local/remote when the dump says"
            ),
        ),
        (
            "role",
            "category:offer,answer,pranswer,rollback",
            ("offer/answer as signalled (type, SIP exchange, HTTP request/response)"),
        ),
        ("format", "category:sdp,json_params", "an SDP text, or ICE/DTLS parameters in JSON without SDP"),
        ("envelope", "string", "wrapping: plain, janus, livekit, mediasoup, whip, sip, webrtc_internals"),
        ("json_path", "string", "where in the JSON message the description was found"),
        ("origin", "string", "the o= line value"),
        ("origin_username", "string", "o= username"),
        ("session_id", "string", "o= sess-id"),
        ("session_version", "string", "o= sess-version"),
        ("session_name", "string", "s= value"),
        (
            "stack",
            "string",
            (
                "implementation recognised from o=/s= (Firefox, libwebrtc, aiortc, Janus, "
                "FreeSWITCH, Asterisk, mediasoup-client) or the side file's user agent"
            ),
        ),
        ("stack_version", "string", "its version where the SDP (or dump) tells"),
        ("ice_lite", "boolean", "a=ice-lite (typical of SFUs and media servers)"),
        ("media_count", "Int32", "number of m= lines"),
        ("kinds", "object", "list of m= media kinds"),
        ("protos", "object", "list of m= transport protocols, one per m-line (e.g. UDP/TLS/RTP/SAVPF)"),
        ("mids", "object", "list of a=mid values"),
        (
            "fingerprints",
            "object",
            ("list of (hash function, lowercase hex without colons), session+media, deduplicated"),
        ),
        ("fingerprint_sha256", "string", "the first sha-256 fingerprint (lowercase hex), for joins"),
        ("setup", "string", "a=setup (first seen: session level, then media)"),
        ("ice_ufrag", "string", "a=ice-ufrag (first seen)"),
        ("ice_ufrags", "object", "list of every distinct a=ice-ufrag"),
        ("ice_pwd_sha256", "string", "sha-256 prefix of a=ice-pwd (the password itself is never stored)"),
        ("crypto_suites", "object", "list of SDES a=crypto suites (RFC 4568)"),
        ("crypto_key_sha256", "object", "list of sha-256 prefixes of the inline keys"),
        (
            "crypto_keys_secret",
            "object",
            (
                "SECRET: list of the inline SDES key||salt values in clear (base64); "
                "shown only with show_secrets"
            ),
        ),
        ("candidate_count", "Int32", "a=candidate lines in this description"),
        ("end_of_candidates", "boolean", "a=end-of-candidates present"),
        ("ssrcs", "object", "list of a=ssrc values"),
        ("codecs", "object", "list of 'pt encoding/clock' from a=rtpmap"),
        (
            "media_lines",
            "object",
            "per m-line: {kind, port, proto, connection, sdes (a=crypto present), fingerprint, ssrcs}",
        ),
        ("connection", "string", "c= address (session level, else first media)"),
        (
            "text_sha256",
            "string",
            "sha-256 prefix of the description text (same text seen twice = same value)",
        ),
    ],
)


@dataclass
class Desc:
    """One description with its context (internal; used by the candidates and sessions builders)."""

    index: int
    row: dict[str, Any]
    sd: SessionDescription | None  # None for json_params
    params: dict[str, Any] = field(default_factory=dict)

    def candidates(self) -> list[tuple[str | None, int | None, Candidate]]:
        """(mid, m-line index, candidate) for every candidate this description carries."""
        if self.sd is None:
            return [(None, None, c) for c in self.params.get("candidates", [])]
        out: list[tuple[str | None, int | None, Candidate]] = [(None, None, c) for c in self.sd.candidates]
        for i, m in enumerate(self.sd.media):
            out += [(m.mid, i, c) for c in m.candidates]
        return out


def _context(m: Message | None, flows: dict[int, int]) -> dict[str, Any]:
    if m is None:
        return {}
    return {
        "frame": m.frame,
        "ts": m.ts_ns,
        "source": "wire",
        "source_kind": m.transport if m.transport in ("http", "websocket", "sip") else None,
        "signalling_msg": m.index,
        "transport": m.transport if m.transport in ("http", "websocket", "sip") else None,
        "tls": m.tls,
        "decrypted": m.decrypted,
        "src": m.src,
        "sport": m.sport,
        "dst": m.dst,
        "dport": m.dport,
        "flow_id": flows.get(m.frame),
        "direction": m.direction,
        "client_endpoint": m.client_endpoint,
        "server_endpoint": m.server_endpoint,
        "answers_frame": m.answers_frame,
    }


def _http_role(m: Message) -> str | None:
    # WHIP/WHEP (RFC 9725): the POST body is the offer, the 201 response body the answer.
    if m.transport == "http":
        return "offer" if m.direction == "request" else "answer"
    return None


def describe(
    cap: Capture,
    found: Found,
    ctx: dict[str, Any],
    frame: int | None,
    ts_ns: int | None,
    user_agent: str | None = None,
) -> tuple[dict[str, Any], SessionDescription | None] | None:
    """Turn one found description into an sdp row (and its parsed form); None when it is not SDP."""
    row = dict(ctx)
    row.update({"role": found.role, "envelope": found.envelope, "json_path": found.path})
    if found.kind == "params":
        p = found.params
        for name, detail in p.get("problems", []):
            add_anomaly(cap, "sdp", name, detail, frame, ts_ns)
        fps = list(dict.fromkeys(p.get("fingerprints", [])))
        row.update(
            {
                "format": "json_params",
                "fingerprints": fps,
                "fingerprint_sha256": next((h for a, h in fps if a == "sha-256"), None),
                "ice_ufrag": p.get("ice_ufrag"),
                "ice_ufrags": [p["ice_ufrag"]] if p.get("ice_ufrag") else [],
                "ice_pwd_sha256": secret_hash(p["ice_pwd_secret"]) if p.get("ice_pwd_secret") else None,
                "ice_lite": p.get("ice_lite"),
                "candidate_count": len(p.get("candidates", [])),
                "setup": {"client": "active", "server": "passive", "auto": "actpass"}.get(
                    p.get("dtls_role") or ""
                ),
                "media_count": 0,
                "protos": [],
                "kinds": [],
                "mids": [],
                "crypto_suites": [],
                "crypto_key_sha256": [],
                "crypto_keys_secret": [],
                "ssrcs": [],
                "codecs": [],
                "media_lines": [],
            }
        )
        return row, None
    text = found.text or ""
    try:
        sd = parse_sdp(text)
    except DecodeError as e:
        add_anomaly(cap, "sdp", e.name, e.detail, frame, ts_ns)
        return None
    for name, detail in sd.problems:
        add_anomaly(cap, "sdp", name, detail, frame, ts_ns)
    stack, version = recognise_stack(sd)
    if user_agent and stack in (None, "libwebrtc", "Firefox"):
        ua_stack, ua_version = stack_from_user_agent(user_agent)
        # Firefox has written SDPARTA-99.0 into o= since version 100: the sender's User-Agent is better
        if ua_stack and (
            stack is None
            or (stack == "libwebrtc" and ua_stack in ("Chrome", "Safari", "Edge"))
            or stack == ua_stack
        ):
            stack, version = ua_stack, ua_version or version
    fps = sd.all_fingerprints()
    cryptos = sd.all_crypto()
    pwds = sd.pwds_secret()
    row.update(
        {
            "format": "sdp",
            "origin": sd.origin,
            "origin_username": sd.origin_username,
            "session_id": sd.session_id,
            "session_version": sd.session_version,
            "session_name": sd.session_name,
            "stack": stack,
            "stack_version": version,
            "ice_lite": sd.ice_lite,
            "media_count": len(sd.media),
            "kinds": [m.kind for m in sd.media],
            "protos": [m.proto for m in sd.media],
            "mids": [m.mid for m in sd.media if m.mid is not None],
            "fingerprints": fps,
            "fingerprint_sha256": next((h for a, h in fps if a == "sha-256"), None),
            "setup": next(iter(sd.setups()), None),
            "ice_ufrag": next(iter(sd.ufrags()), None),
            "ice_ufrags": sd.ufrags(),
            "ice_pwd_sha256": secret_hash(pwds[0]) if pwds else None,
            "crypto_suites": [c.suite for _, c in cryptos],
            "crypto_key_sha256": [secret_hash(c.key_secret) for _, c in cryptos if c.key_secret],
            "crypto_keys_secret": [c.key_secret for _, c in cryptos if c.key_secret],
            "candidate_count": len(sd.all_candidates()),
            "end_of_candidates": any(m.end_of_candidates for m in sd.media),
            "ssrcs": [s for m in sd.media for s in m.ssrcs],
            "codecs": [f"{pt} {enc}" for m in sd.media for pt, enc in m.rtpmap.items()],
            "media_lines": [
                {
                    "kind": m.kind,
                    "port": m.port,
                    "proto": m.proto,
                    "connection": m.connection or sd.connection,
                    "sdes": bool(m.crypto),
                    "fingerprint": bool(m.fingerprints or sd.fingerprints),
                    "ssrcs": list(m.ssrcs),
                }
                for m in sd.media
            ],
            "connection": sd.connection or next((m.connection for m in sd.media if m.connection), None),
            "text_sha256": hashlib.sha256(
                "\n".join(ln.strip() for ln in text.splitlines() if ln.strip()).encode(
                    "utf-8", "surrogateescape"
                )
            ).hexdigest()[:16],
        }
    )
    return row, sd


def stack_from_user_agent(ua: str) -> tuple[str | None, str | None]:
    """(browser, version) from a User-Agent: Edge, Chrome/Chromium, Firefox, Safari."""
    import re

    for name, pat in (
        ("Edge", r"Edg/(\d[\d.]*)"),
        ("Firefox", r"Firefox/(\d[\d.]*)"),
        ("Chrome", r"(?:Chrome|Chromium|HeadlessChrome)/(\d[\d.]*)"),
        ("Safari", r"Version/(\d[\d.]*)(?: Mobile/\S+)? Safari/"),
    ):
        m = re.search(pat, ua)
        if m:
            return name, m.group(1)
    return None, None


def descriptions(cap: Capture) -> list[Desc]:
    """Every description (wire, then side files), cached; the `sdp` frame is its public view."""
    return cap.cached("sdp_descriptions", lambda: _build(cap))


def _build(cap: Capture) -> list[Desc]:
    from ..sidefiles import side_items

    out: list[Desc] = []
    msgs = messages(cap)
    flows = frame_flow_map(cap) if msgs else {}
    for m in msgs:
        for f in m.items:
            if f.kind not in ("sdp", "params"):
                continue
            if f.role is None and f.kind == "sdp":
                f.role = _http_role(m)
            ua = m.user_agent if m.direction in ("request", "client_to_server") else None
            got = describe(cap, f, _context(m, flows), m.frame, m.ts_ns, ua)
            if got is not None:
                out.append(Desc(len(out), got[0], got[1], f.params))
    for item in side_items(cap):
        if item.found.kind not in ("sdp", "params"):
            continue
        ctx = {
            "source": item.source,
            "source_kind": item.source_kind,
            "ts": item.ts_ns,
            "direction": item.direction,
        }
        got = describe(cap, item.found, ctx, None, item.ts_ns, item.user_agent)
        if got is not None:
            out.append(Desc(len(out), got[0], got[1], item.found.params))
    for d in out:
        d.row["sdp_index"] = d.index
    return out


@register_frame(SDP)
def build_sdp(cap: Capture) -> pd.DataFrame:
    return SDP.from_records([d.row for d in descriptions(cap)])


def sdp_readable(cap: Capture) -> bool:
    """Could this capture (with its side inputs) show any SDP? Cleartext HTTP/WebSocket/SIP on the wire, a keylog
    or pcapng-embedded secrets for TLS, or side files. Decided from the fast path's classes, without tshark."""
    if cap.keylog is not None or cap.signalling_files or cap.info.get("decryption_secrets"):
        return True
    return bool(cap.packets["cls"].isin(["http", "websocket", "sip"]).any())


def _mline_keying(line: dict) -> str | None:
    proto = str(line.get("proto") or "")
    if line.get("sdes"):
        return "sdes"  # RFC 4568 a=crypto: whatever the proto says (ffmpeg writes RTP/AVP for SRTP too)
    if "TLS" in proto or line.get("fingerprint"):
        return "dtls-srtp"
    if proto.startswith("RTP/AVP"):
        return "none"  # RFC 3551 plain RTP with no key exchange at all
    return None


@register_keying_refiner
def sdp_keying(cap: Capture, streams: pd.DataFrame) -> pd.Series:
    """Keying of RTP streams from the SDP m-line that describes them: a=ssrc, else the m-line's
    connection address and port equal to one end of the stream's flow."""
    out = pd.Series([None] * len(streams), index=streams.index, dtype=object)
    if not sdp_readable(cap):
        return out  # no SDP can be read: don't pay for a tshark pass over the control plane
    sdp = cap.sdp
    if not len(sdp) or not len(streams):
        return out
    by_ssrc: dict[int, str] = {}
    by_endpoint: dict[tuple[str, int], str] = {}
    for lines in sdp.media_lines:
        for line in lines if isinstance(lines, list) else []:
            k = _mline_keying(line)
            if k is None:
                continue
            for ssrc in line.get("ssrcs") or []:
                by_ssrc[int(ssrc)] = k
            if line.get("connection") and line.get("port"):
                addr = str(line["connection"]).split()[-1].split("/")[0]  # "IN IP4 192.0.2.20[/ttl]"
                by_endpoint[(addr, int(line["port"]))] = k
    flows = cap.flows.set_index("flow_id")
    for i, (fid, ssrc) in enumerate(zip(streams["flow_id"], streams["ssrc"])):
        # the m-line whose address and port are an end of this flow describes this transport; an a=ssrc match
        # only when none does (a media relay such as rtpengine keeps the SSRC when it bridges SRTP to RTP)
        k = None
        if fid in flows.index:
            f = flows.loc[fid]
            for ip, port in ((f.a_ip, f.a_port), (f.b_ip, f.b_port)):
                if not pd.isna(port):
                    k = k or by_endpoint.get((str(ip), int(port)))
        out.iloc[i] = k or by_ssrc.get(int(ssrc))
    return out
