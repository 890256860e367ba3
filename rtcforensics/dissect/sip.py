"""SIP message text (RFC 3261): start line, headers (compact forms expanded, folded lines joined), bodies
framed by Content-Length on streams, several messages in one buffer; and the dialog facts a message carries
(Call-ID, CSeq, From/To tags, Via, Contact, Record-Route, X-Forwarded-*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DecodeError

_SIP_COMPACT = {
    "c": "content-type",
    "l": "content-length",
    "i": "call-id",
    "f": "from",
    "t": "to",
    "m": "contact",
    "v": "via",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}
_SIP_START = re.compile(r"^(?:([A-Z]+) (\S+) SIP/2\.0|SIP/2\.0 (\d{3})(?: .*)?)$")


@dataclass
class SipMessage:
    method: str | None
    uri: str | None
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


def is_sip(data: bytes | str) -> bool:
    head = data[:200].decode("latin-1") if isinstance(data, bytes) else data[:200]
    first = head.split("\n", 1)[0].rstrip("\r")
    return bool(_SIP_START.match(first))


def parse_sip(data: bytes) -> list[SipMessage]:
    """Split ``data`` into SIP messages (RFC 3261 §7; Content-Length frames them on streams).

    Raises DecodeError(sip_malformed) when the start is not a SIP start line; a body shorter than its
    Content-Length raises TruncatedError-like DecodeError(sip_truncated) after the complete messages."""
    out: list[SipMessage] = []
    pos = 0
    while pos < len(data):
        while data[pos : pos + 2] == b"\r\n":  # keep-alive CRLFs (RFC 5626)
            pos += 2
        if pos >= len(data):
            break
        end = data.find(b"\r\n\r\n", pos)
        sep = 4
        if end < 0:
            end, sep = data.find(b"\n\n", pos), 2
        if end < 0:
            raise DecodeError("sip_truncated", "SIP message headers end before the blank line")
        head = data[pos:end].decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        m = _SIP_START.match(head[0].strip())
        if not m:
            raise DecodeError("sip_malformed", f"SIP start line not recognised: {head[0][:80]!r}")
        headers: list[tuple[str, str]] = []
        for ln in head[1:]:
            if ln[:1] in (" ", "\t") and headers:  # folded header line
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + ln.strip())
                continue
            k, _, v = ln.partition(":")
            k = k.strip().lower()
            headers.append((_SIP_COMPACT.get(k, k), v.strip()))
        clen = next((v for k, v in headers if k == "content-length"), None)
        body_start = end + sep
        if clen is not None and clen.strip().isdigit():
            n = int(clen.strip())
        else:
            n = len(data) - body_start  # datagram: the body runs to the end
        body = data[body_start : body_start + n]
        msg = SipMessage(m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None, headers, body)
        out.append(msg)
        if len(body) < n:
            raise SipPartial(
                out,
                DecodeError("sip_truncated", f"SIP body shorter ({len(body)} bytes) than Content-Length {n}"),
            )
        pos = body_start + n
    return out


class SipPartial(DecodeError):
    """Raised after the complete messages when the last one is cut short; ``done`` holds the complete ones."""

    def __init__(self, done: list[SipMessage], err: DecodeError) -> None:
        super().__init__(err.name, err.detail)
        self.done = done


# -- dialog facts (RFC 3261 §8.1.1, §12) --------------------------------------------------------------------

_TAG = re.compile(r";\s*tag=([^;>\s,]+)", re.IGNORECASE)
_USERINFO_PASSWORD = re.compile(r"^(sips?:[^:@;?>]+):([^@;?>]+)@", re.IGNORECASE)


def _split_commas(value: str) -> list[str]:
    """Header values joined with commas (RFC 3261 §7.3.1), commas inside quotes or <...> kept."""
    out: list[str] = []
    cur: list[str] = []
    quoted = angle = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        elif ch == "," and not quoted and not angle:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def redact_sip_uri(uri: str | None) -> str | None:
    """A SIP URI with the password of its userinfo (``sip:user:password@host``, RFC 3261 §19.1.1, deprecated)
    replaced by ``<redacted>``."""
    if not uri:
        return uri
    return _USERINFO_PASSWORD.sub(r"\1:<redacted>@", uri.strip())


def _uri_of(value: str) -> str:
    """The URI of a name-addr or addr-spec header value (Contact, From, To)."""
    m = re.search(r"<([^>]*)>", value)
    return (m.group(1) if m else value.split(";", 1)[0]).strip()


def _via_host(via: str) -> str | None:
    """The sent-by host of one Via value (``SIP/2.0/UDP host:port;branch=...``), without brackets or port."""
    parts = via.split(None, 1)
    if len(parts) < 2:
        return None
    sent_by = parts[1].split(";", 1)[0].strip()
    if sent_by.startswith("["):
        return sent_by[1 : sent_by.find("]")] if "]" in sent_by else sent_by[1:]
    return sent_by.rsplit(":", 1)[0] if sent_by.count(":") == 1 else sent_by


@dataclass
class Dialog:
    """What a SIP message says of its dialog and its path (the `signalling` frame's ``sip_*`` columns)."""

    call_id: str | None = None
    cseq_num: int | None = None
    cseq_method: str | None = None
    from_tag: str | None = None
    to_tag: str | None = None
    via_count: int = 0
    via_bottom_host: str | None = None  # sent-by of the bottom Via: the originating user agent (§8.1.1.7)
    contact: str | None = None  # first Contact URI, userinfo password redacted
    record_route: bool = False
    x_forwarded_for: str | None = None
    x_forwarded_proto: str | None = None


def dialog(s: SipMessage) -> Dialog:
    """Dialog identifiers (Call-ID, CSeq, From/To tags) and path headers of one SIP message."""
    d = Dialog(call_id=s.header("call-id"))
    cseq = (s.header("cseq") or "").split()
    if cseq and cseq[0].isdigit() and len(cseq[0]) <= 10:
        d.cseq_num = int(cseq[0])
    if len(cseq) > 1:
        d.cseq_method = cseq[1].upper()
    for name, attr in (("from", "from_tag"), ("to", "to_tag")):
        v = s.header(name)
        m = _TAG.search(v) if v else None
        if m:
            setattr(d, attr, m.group(1))
    vias = [v for k, val in s.headers if k == "via" for v in _split_commas(val)]
    d.via_count = len(vias)
    if vias:
        d.via_bottom_host = _via_host(vias[-1])
    contact = s.header("contact")
    if contact:
        first = _split_commas(contact)
        d.contact = redact_sip_uri(_uri_of(first[0])) if first else None
    d.record_route = s.header("record-route") is not None
    d.x_forwarded_for = s.header("x-forwarded-for")
    d.x_forwarded_proto = s.header("x-forwarded-proto")
    return d


class OfferAnswer:
    """RFC 3264 offer/answer inside SIP (RFC 6337 §2), paired by transaction, never by adjacency.

    An SDP in a request (INVITE, re-INVITE, UPDATE, PRACK) is an offer; an SDP in a response to that request
    (same Call-ID, From tag, CSeq number and method: 183 and 200 alike, a forked 200 too) is its answer. An
    INVITE without SDP makes the first response with SDP the offer and the ACK's SDP its answer. A request
    challenged by 401/407 is re-sent with a new CSeq: the retry is a new offer, answered by the responses to
    the retry. ``role`` returns (role, frame of the offer it answers)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[frozenset[str], str | None, str | None, int | None, str], int] = {}
        self.response_offers: dict[tuple[frozenset[str], str | None, str | None, int | None, str], int] = {}

    def role(
        self, s: SipMessage, d: Dialog, frame: int, has_sdp: bool, leg: frozenset[str] = frozenset()
    ) -> tuple[str | None, int | None]:
        """``leg``: the two endpoints the message travelled between. A proxy forwards the same transaction on
        each of its legs; an answer is paired with the offer on its own leg."""
        method = (s.method or d.cseq_method or "").upper()
        key = (leg, d.call_id, d.from_tag, d.cseq_num, "INVITE" if method == "ACK" else method)
        if s.method is not None:  # a request
            if not has_sdp:
                return None, None
            if method == "ACK":
                offer = self.response_offers.get(key)
                return ("answer", offer) if offer is not None else ("offer", None)
            self.requests.setdefault(key, frame)  # a retransmission keeps the first frame
            return "offer", None
        if not has_sdp:
            return None, None
        offer = self.requests.get(key)
        if offer is not None:
            return "answer", offer
        self.response_offers.setdefault(key, frame)
        return "offer", None
