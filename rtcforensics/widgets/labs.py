"""Teaching labs: exercises whose answers are checked against the tool's own findings.

``check_answer(cap, question, answer)`` reads the checks' report of the capture (``rtcforensics.analyze``):
one home per verdict, so a lab can never contradict the tool on the same capture. The answer keys are
pure functions over a ``Report`` (``leaked_private_addresses``, ``fingerprint_mismatches``,
``open_relay_allocations``, ``unencrypted_streams``, ``readable_streams``, ``injection_evidence``), tested
without a kernel. :func:`lab_widget` is the answer box: Check and Hint buttons, hints in steps, the input
validated, and "why it matters" once the answer is right.

Questions (``QUESTIONS``):

- ``private_address``: an internal address revealed in an ICE candidate that crossed the wire readable
  (check ICE001 ``ice-private-ip-exposed``)
- ``mitm``: the SHA-256 (hex, colons allowed) of an a=fingerprint that matches no certificate on the wire,
  or of a certificate no a=fingerprint describes (check DTLS001 ``dtls-fingerprint-mismatch``)
- ``open_relay``: the relayed address (``"ip:port"``) a TURN server allocated without authentication, or the
  frame number of that Allocate request or success (check TURN001 ``turn-open-relay``)
- ``plaintext_ssrc``: the SSRC of a stream anyone on the path can play: plain RTP (SRTP003
  ``rtp-unencrypted``), or SDES-keyed while its key crossed the wire in clear (SDP001 ``sdes-key-exposed``)
- ``media_encrypted``: True or False — was all media out of reach of an observer on the path?
- ``injector``: the IP address of the host that sent media into the call on a 5-tuple without ICE consent
  (ICE005 ``unsolicited-media``); packets it forged under a participant's address fail SRTP authentication
  (SRTP004 ``srtp-auth-failure``, with the keylog) but carry the spoofed address, so they do not name it
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..addr import scope as _scope
from ..checks.analyze import Report
from ..values import host, listish
from . import _avail, _safe

QUESTIONS = ("private_address", "mitm", "open_relay", "plaintext_ssrc", "media_encrypted", "injector")
INJECTION_CHECKS = ("unsolicited-media", "srtp-auth-failure")
GREEN, RED, GREY = "#2e7d32", "#c62828", "#6d6d6d"


@dataclass
class LabResult:
    """The verdict on one answer. ``correct`` is None when the capture cannot settle the question;
    ``why`` (what the attacker does next, which rule was broken) is shown once the answer is right."""

    question: str
    answer: Any
    correct: bool | None
    message: str
    expected_count: int = 0
    details: list[str] = field(default_factory=list)
    why: str = ""

    def __bool__(self) -> bool:
        return bool(self.correct)

    def _repr_html_(self) -> str:
        colour = {True: GREEN, False: RED, None: GREY}[self.correct]
        mark = {True: "✔ correct", False: "✘ not yet", None: "? cannot be checked"}[self.correct]
        out = (
            f"<div class='rtcf-lab' style='border-left:4px solid {colour};padding:4px 8px'>"
            f"<b style='color:{colour}'>{mark}</b> — {_safe.escape(_safe.redact_text(self.message))}"
        )
        if self.correct and self.why:
            out += f"<p class='rtcf-why'><b>Why it matters.</b> {_safe.escape(self.why)}</p>"
        return out + "</div>"

    def __repr__(self) -> str:
        mark = {True: "correct", False: "not yet", None: "cannot be checked"}[self.correct]
        return f"{mark}: {self.message}"


# -- the questions: prompt, stepped hints, why it matters, input validation ----------------------------------
def _as_ip(a: Any) -> str | None:
    h = host(a)
    try:
        return str(ipaddress.ip_address(h)) if h else None
    except ValueError:
        return None


def _parse_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    s = str(v).strip().lower()
    try:
        return int(s, 16) if s.startswith("0x") else int(s)
    except ValueError:
        try:
            return int(s, 16)
        except ValueError:
            return None


_HEXCHARS = re.compile(r"^[0-9a-f]+$")


def _sha256(v: Any) -> str:
    return str(v).replace(":", "").strip().lower()


def _invalid_ip(a: Any) -> str | None:
    return None if _as_ip(a) else f'{a!r} is not an IP address (e.g. "10.1.2.3")'


def _invalid_sha256(a: Any) -> str | None:
    h = _sha256(a)
    if not _HEXCHARS.match(h):
        return f"{a!r} is not a SHA-256 in hex (64 hex digits, colons allowed)"
    if len(h) < 64:
        return f"a fingerprint prefix ({len(h)} hex digits) is too short to decide: give all 64"
    if len(h) > 64:
        return f"{len(h)} hex digits: a SHA-256 has 64 (is that a SHA-384 or SHA-512 fingerprint?)"
    return None


def _invalid_relay(a: Any) -> str | None:
    if isinstance(a, str) and ":" in a:
        ip, _, port = a.strip().rpartition(":")
        return None if _as_ip(ip.strip("[]")) and port.isdigit() else f"{a!r} is not an ip:port"
    n = _parse_int(a)
    return None if n is not None and n > 0 else f"{a!r} is neither a relayed ip:port nor a frame number"


def _invalid_ssrc(a: Any) -> str | None:
    n = _parse_int(a)
    return (
        None
        if n is not None and 0 <= n < 1 << 32
        else (f"{a!r} is not an SSRC (a 32-bit number, e.g. 0x1234abcd or 305441741)")
    )


def _invalid_bool(a: Any) -> str | None:
    return None if isinstance(a, bool) else "answer True or False"


@dataclass(frozen=True)
class Question:
    name: str
    prompt: str
    hints: tuple[str, ...]
    why: str
    invalid: Callable[[Any], str | None]


QUESTION_SPECS: dict[str, Question] = {
    q.name: q
    for q in (
        Question(
            "private_address",
            "Which internal (private, CGNAT, link-local, ULA) address did the ICE candidates reveal?",
            (
                "Candidates travel inside the SDP or trickled messages; here the signalling was not encrypted.",
                "Behind a NAT the IP headers show only the NAT's public address; the candidates frame shows "
                "what each host said about itself, and its scope column says private/public for each address.",
                "Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) stand for public addresses; "
                "a host candidate in 10/8, 172.16/12 or 192.168/16 is what you are after.",
            ),
            "An address behind the NAT tells an outsider how the victim's network is laid out and helps to "
            "fingerprint the device; with it, a web page can aim requests at the victim's router or "
            "neighbours. RFC 8828 §5 asks browsers to hide host candidates behind mDNS names unless the user "
            "consented, and RFC 8826 §4.2.4 names this leak.",
            _invalid_ip,
        ),
        Question(
            "mitm",
            "Which SHA-256 shows the man in the middle: an a=fingerprint no certificate on the wire "
            "matches, or a certificate no a=fingerprint describes?",
            (
                "DTLS-SRTP authenticates the peer only through the a=fingerprint its SDP carried.",
                "Compare the dtls frame's client_cert_sha256/server_cert_sha256 with every sdp fingerprint, copy "
                "by copy: the same description crossed two legs.",
                "One description arrived with a fingerprint different from the one it left with; the "
                "certificates themselves are fine.",
            ),
            "The fingerprint is the only thing binding the DTLS certificate to the signalling (RFC 8122 §5, "
            "RFC 5763 §5, RFC 8827 §6.5). Whoever rewrites it can terminate DTLS towards both peers with his own "
            "certificates and relay the media between them: he hears and can alter everything while both "
            "browsers show an encrypted call. Identity assertions (RFC 8827 §7) or signalling over TLS to a "
            "trusted server are what would have stopped it.",
            _invalid_sha256,
        ),
        Question(
            "open_relay",
            "Which relayed address did the TURN server hand out without authentication (or the "
            "frame of that Allocate)?",
            (
                "A TURN server must answer a first Allocate with 401 and a NONCE (RFC 8656 §7.2).",
                "Filter the stun frame for method Allocate and compare the requests' has_integrity.",
                "The success response's XOR-RELAYED-ADDRESS (xor_relayed) is the relayed address.",
            ),
            "An open relay lets anyone send traffic from the operator's address: abuse that is blamed on the "
            "operator, amplification, and — when the relay may reach internal peers (turn-internal-peer) — a "
            "path into the operator's own network. RFC 8656 §9 requires long-term credentials (or an "
            "equivalent) on every Allocate; CVE-2018-4058 was exactly this in coturn.",
            _invalid_relay,
        ),
        Question(
            "plaintext_ssrc",
            "Which stream (SSRC) could anyone on the path play back?",
            (
                "A stream is readable when it was not encrypted, or when its key was readable.",
                "rtp_streams.keying says how each stream was keyed; plaintext_score says what its payload looks "
                "like.",
                "With SDES (a=crypto) the key travels in the SDP: was that SDP itself protected?",
            ),
            "WebRTC media must be SRTP keyed by DTLS-SRTP (RFC 8827 §6.5); plain RTP can be played back by "
            "anyone who captures it (Wireshark: Telephony → RTP → Play Streams), and SDES (RFC 4568) is only as "
            "secret as the signalling that carries its key — in clear signalling, the key is public and the "
            "encrypted stream just as readable (RFC 4568 §8.3).",
            _invalid_ssrc,
        ),
        Question(
            "media_encrypted",
            "Was all media out of reach of an observer on the path?",
            (
                "Look at every RTP stream, not only the first.",
                "A stream keyed by SDES whose SDP crossed the wire in clear does not count as protected.",
                "rtp_streams.keying and the findings rtp-unencrypted / sdes-key-exposed settle it.",
            ),
            "One readable stream is enough to hear one side of the call (RFC 8827 §6.5, RFC 4568 §8.3).",
            _invalid_bool,
        ),
        Question(
            "injector",
            "Which host injected media into the call?",
            (
                "ICE consent (RFC 7675) is granted per 5-tuple: legitimate media flows carry Binding successes.",
                "Compare the media flows with the flows that saw a Binding success: one carried media without.",
                "Packets that fail SRTP authentication were forged, but their IP source is the address they "
                "impersonate: the Ethernet source tells who sent them.",
            ),
            "ICE consent (RFC 7675) protects addresses, SRTP authentication (RFC 3711 §3.3) protects content: a "
            "host without the keys can still flood a receiver or, under a participant's spoofed address, get "
            "past consent — and only the tag check stops its packets from being played. Next the attacker "
            "tries an SDES or NULL-cipher call, where no tag stands in the way.",
            _invalid_ip,
        ),
    )
}


def hint(question: str, step: int) -> str:
    """Hint number ``step`` (0-based) of ``question``; the last one once the steps run out."""
    hints = QUESTION_SPECS[question].hints
    return hints[min(max(step, 0), len(hints) - 1)]


def validate(question: str, answer: Any) -> str | None:
    """Why ``answer`` cannot be an answer to ``question`` (None when it has the right form)."""
    return QUESTION_SPECS[question].invalid(answer)


# -- answer keys: pure functions over the checks' report -----------------------------------------------------
def _findings(report: Report | None, slug: str) -> list[Any]:
    return [f for f in getattr(report, "findings", ()) if f.slug == slug]


def _status(report: Report | None, slug: str) -> tuple[str, str]:
    for c in getattr(report, "coverage", ()):
        if c.slug == slug:
            return str(c.status), str(c.reason)
    return "not observable", "the check did not run"


def leaked_private_addresses(report: Report | None) -> set[str]:
    """Internal addresses that the ``ice-private-ip-exposed`` findings name."""
    out: set[str] = set()
    for f in _findings(report, "ice-private-ip-exposed"):
        out.update(str(a).lower() for a in (f.evidence.get("addresses") or {}))
    return out


def private_addresses_behind(report: Report | None) -> dict[str, set[str]]:
    """For each address that sent (in its IP header) candidates revealing an internal address, those internal
    addresses (``ice-private-ip-exposed``'s ``sent_by``): behind a NAT, the NAT's public address."""
    out: dict[str, set[str]] = {}
    for f in _findings(report, "ice-private-ip-exposed"):
        for a, e in (f.evidence.get("addresses") or {}).items():
            for by in listish(e.get("sent_by") if isinstance(e, dict) else None):
                if _scope(str(by)) == "public":
                    out.setdefault(str(by).lower(), set()).add(str(a).lower())
    return out


def fingerprint_mismatches(report: Report | None) -> pd.DataFrame:
    """The hashes the ``dtls-fingerprint-mismatch`` findings show to be the man-in-the-middle signature:

    - ``certificate_not_in_sdp``: a DTLS certificate that no signalled a=fingerprint describes;
    - ``fingerprint_without_certificate``: a signalled SHA-256 that matches no certificate of the handshake
      (the fingerprint substituted in transit).

    Columns ``kind``, ``sha256``, ``flow_id``, ``frame`` (first frame the finding cites)."""
    cols = ["kind", "sha256", "flow_id", "frame"]
    rows: list[dict[str, Any]] = []
    certs: set[str] = set()
    found = _findings(report, "dtls-fingerprint-mismatch")
    for f in found:
        ev = f.evidence
        certs.update(
            str(ev[k]).lower()
            for k in ("client_cert_sha256", "server_cert_sha256", "cert_sha256")
            if ev.get(k)
        )
    for f in found:
        ev, first = f.evidence, (min(f.frames) if f.frames else None)
        if ev.get("cert_sha256"):  # a certificate on the wire that no fingerprint describes
            rows.append(
                {
                    "kind": "certificate_not_in_sdp",
                    "sha256": str(ev["cert_sha256"]).lower(),
                    "flow_id": f.flow_id,
                    "frame": first,
                }
            )
        signalled = {
            str(h).lower()
            for k in ("offer_fingerprints_sha256", "answer_fingerprints_sha256")
            for h in listish(ev.get(k))
        }
        copies = [
            {str(x).split()[-1].lower() for x in listish(c) if str(x).startswith("sha-256 ")}
            for c in listish(ev.get("fingerprints"))
        ]  # copies of one description: ["sha-256 hex", ...]
        signalled.update(*copies)
        # without any certificate to compare with, the fingerprints that differ between copies are the suspects
        if certs:
            suspects = signalled - certs
        else:
            suspects = set().union(*copies) - copies[0].intersection(*copies[1:]) if copies else set()
        for h in sorted(suspects):
            rows.append(
                {"kind": "fingerprint_without_certificate", "sha256": h, "flow_id": f.flow_id, "frame": first}
            )
        for k in ("client_cert_sha256", "server_cert_sha256") if ev.get("mismatched") else ():
            cert = str(ev.get(k) or "").lower()
            if cert and cert not in signalled:  # the session layer: a certificate no copy described
                rows.append(
                    {"kind": "certificate_not_in_sdp", "sha256": cert, "flow_id": f.flow_id, "frame": first}
                )
    out = pd.DataFrame(rows, columns=cols)
    return out.drop_duplicates(subset=["kind", "sha256"]).reset_index(drop=True)


def mismatched_certificates(report: Report | None) -> set[str]:
    """Certificates the ``dtls-fingerprint-mismatch`` findings name as described by no fingerprint."""
    fm = fingerprint_mismatches(report)
    return set(fm.loc[fm["kind"] == "certificate_not_in_sdp", "sha256"])


def open_relay_allocations(report: Report | None) -> pd.DataFrame:
    """The ``turn-open-relay`` findings: ``request_frame`` (NA when the request is not in the capture),
    ``response_frame``, ``flow_id``, ``server``, ``relayed`` (XOR-RELAYED-ADDRESS)."""
    cols = ["request_frame", "response_frame", "flow_id", "server", "relayed"]
    rows = []
    for f in _findings(report, "turn-open-relay"):
        frames = sorted(int(x) for x in f.frames)
        seen = bool(f.evidence.get("request_seen")) and len(frames) > 1
        rows.append(
            {
                "request_frame": frames[0] if seen else None,
                "response_frame": frames[-1] if frames else None,
                "flow_id": f.flow_id,
                "server": f.evidence.get("server"),
                "relayed": f.evidence.get("relayed"),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def unencrypted_streams(report: Report | None) -> pd.DataFrame:
    """The ``rtp-unencrypted`` findings: ``ssrc``, ``flow_id``, ``keying``, ``plaintext_score``, ``codec``."""
    cols = ["ssrc", "flow_id", "keying", "plaintext_score", "codec"]
    rows = [
        {
            "ssrc": int(f.evidence["ssrc"]),
            "flow_id": f.flow_id,
            "keying": f.evidence.get("keying"),
            "plaintext_score": f.evidence.get("plaintext_score"),
            "codec": f.evidence.get("codec"),
        }
        for f in _findings(report, "rtp-unencrypted")
        if f.evidence.get("ssrc") is not None
    ]
    return pd.DataFrame(rows, columns=cols)


def readable_streams(report: Report | None, rtp_streams: pd.DataFrame | None) -> pd.DataFrame:
    """Streams anyone on the path can play: ``ssrc``, ``flow_id``, ``why`` — ``plain`` (an
    ``rtp-unencrypted`` finding) or ``sdes key in clear`` (an SDES-keyed stream while an ``sdes-key-exposed``
    finding says its description crossed the wire in clear)."""
    plain = unencrypted_streams(report)
    rows = [{"ssrc": int(r.ssrc), "flow_id": r.flow_id, "why": "plain"} for r in plain.itertuples()]
    exposed = any(str(f.evidence.get("exposure")) == "clear" for f in _findings(report, "sdes-key-exposed"))
    if exposed and rtp_streams is not None and len(rtp_streams):
        sdes = rtp_streams[rtp_streams["keying"].astype(object) == "sdes"]
        rows += [
            {"ssrc": int(r.ssrc), "flow_id": int(r.flow_id), "why": "sdes key in clear"}
            for r in sdes.itertuples()
        ]
    return (
        pd.DataFrame(rows, columns=["ssrc", "flow_id", "why"]).drop_duplicates("ssrc").reset_index(drop=True)
    )


@dataclass
class InjectionEvidence:
    """What the injection checks of a report show (``injection_evidence``).

    ``injectors``: sender IP -> ``[(sender ip:port, receiver ip:port, packets)]`` of the unsolicited-media
    findings (media on a 5-tuple that never had ICE consent); ``receivers``: the addresses that media went to;
    ``forged``: ``[(claimed sender ip:port, receiver ip:port, SSRC, packets, frames)]`` of the
    srtp-auth-failure findings; ``spoofed``: the IPs those forged packets claim; ``status``: slug ->
    ``(coverage status, reason)`` of both checks."""

    injectors: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    receivers: set[str] = field(default_factory=set)
    forged: list[tuple[str, str, int | None, int, list[int]]] = field(default_factory=list)
    spoofed: set[str] = field(default_factory=set)
    status: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def forged_packets(self) -> int:
        return sum(f[3] for f in self.forged)


def injection_evidence(report: Report | None) -> InjectionEvidence:
    """Read the ``unsolicited-media`` and ``srtp-auth-failure`` findings (and their coverage) of a checks
    report: who sent media without ICE consent, and which SRTP packets a keyed stream did not authenticate.
    The checks decide; this only reads their findings."""
    ev = InjectionEvidence()
    for slug in INJECTION_CHECKS:
        ev.status[slug] = _status(report, slug)
    for f in _findings(report, "unsolicited-media"):
        eps = [str(e) for e in f.endpoints]
        if eps:
            ip = str(host(eps[0])).lower()
            dst = eps[1] if len(eps) > 1 else ""
            ev.injectors.setdefault(ip, []).append(
                (eps[0], dst, int(f.evidence.get("packets", len(f.frames))))
            )
            if dst:
                ev.receivers.add(str(host(dst)).lower())
    for f in _findings(report, "srtp-auth-failure"):
        eps = [str(e) for e in f.endpoints]
        if eps:
            ssrc = f.evidence.get("ssrc")
            n = int(f.evidence.get("auth_failed", len(f.frames)))
            ev.forged.append(
                (
                    eps[0],
                    eps[1] if len(eps) > 1 else "",
                    None if ssrc is None else int(ssrc),
                    n,
                    [int(x) for x in f.frames],
                )
            )
            ev.spoofed.add(str(host(eps[0])).lower())
    return ev


# -- checking -----------------------------------------------------------------------------------------------
def check_answer(cap: Any, question: str, answer: Any) -> LabResult:
    """Compare ``answer`` with what the checks' report of ``cap`` shows for ``question`` (module docstring).

    ``None`` is the right answer only when the capture shows nothing of the kind; otherwise it is read as
    "no answer yet". An answer of the wrong form is rejected with what is wrong with it."""
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r} (one of: {', '.join(QUESTIONS)})")
    report, why = _avail.report(cap)
    if report is None:
        return LabResult(question, answer, None, why)
    result = _check(cap, report, question, answer)
    if answer is None and result.correct is False:
        result.message = (
            "no answer yet: set ANSWER in the first cell (or type it in the answer box) and check again"
        )
    elif result.correct is False and answer is not None and not result.details:
        problem = validate(question, answer)
        if problem:
            result.message = problem
    if result.correct:
        result.why = QUESTION_SPECS[question].why
    return result


def _none(answer: Any) -> bool:
    return answer is None or str(answer).strip().lower() in ("", "none")


def _not_observable(question: str, answer: Any, report: Report, slug: str) -> LabResult | None:
    status, reason = _status(report, slug)
    if status in ("not observable", "failed"):
        return LabResult(question, answer, None, f"{slug} could not be checked on this capture: {reason}")
    return None


def _check(cap: Any, report: Report, question: str, answer: Any) -> LabResult:
    q = question
    if q == "injector":
        return _check_injector(cap, report, answer)
    if q == "private_address":
        leaked = leaked_private_addresses(report)
        a = _as_ip(answer) or ("" if _none(answer) else str(answer))
        if not leaked:
            return _not_observable(q, answer, report, "ice-private-ip-exposed") or LabResult(
                q,
                answer,
                _none(answer),
                "this capture leaks no internal address in candidates "
                "that crossed the wire readable" + ("" if _none(answer) else "; answer None"),
            )
        if a in leaked:
            return LabResult(
                q,
                answer,
                True,
                f"{a} is a {_scope(a)} address and it crossed the wire in an ICE "
                f"candidate ({len(leaked)} such address(es) in this capture)",
                len(leaked),
            )
        fronts = private_addresses_behind(report).get(a)
        if fronts:
            return LabResult(
                q,
                answer,
                False,
                f"{a} is public: it is what the IP headers show sending the candidates that revealed "
                f"{len(fronts)} internal address(es), the NAT in front of a host or the server relaying its "
                "signalling. Hint: read the candidates themselves; a host candidate's address, or the raddr "
                "of an srflx candidate, names the host behind the NAT.",
                len(leaked),
            )
        reason = "it is public" if _scope(a) == "public" else "no candidate that crossed the wire revealed it"
        return LabResult(q, answer, False, f"{a}: {reason}.", len(leaked))
    if q == "mitm":
        bad = fingerprint_mismatches(report)
        if not len(bad):
            ok = _none(answer)
            return _not_observable(q, answer, report, "dtls-fingerprint-mismatch") or LabResult(
                q,
                answer,
                ok,
                "every DTLS certificate matches the a=fingerprints and every "
                "fingerprint its certificate: no MITM signature here" + ("" if ok else "; answer None"),
            )
        found = bad[bad["sha256"] == _sha256(answer)]
        if len(found):
            what = (
                "a certificate no a=fingerprint describes: someone else terminated DTLS"
                if found["kind"].iloc[0] == "certificate_not_in_sdp"
                else "an a=fingerprint that matches no certificate on the wire: the description was rewritten "
                "in transit"
            )
            return LabResult(q, answer, True, f"{what} ({len(bad)} mismatch(es) in this capture)", len(bad))
        return LabResult(
            q,
            answer,
            False,
            "that hash is on both sides of the comparison: a certificate and the fingerprint describing it.",
            len(bad),
        )
    if q == "open_relay":
        allocs = open_relay_allocations(report)
        if not len(allocs):
            return _not_observable(q, answer, report, "turn-open-relay") or LabResult(
                q,
                answer,
                _none(answer),
                "no Allocate here succeeded without MESSAGE-INTEGRITY: the server challenged every request",
            )
        relayed = {str(r).lower() for r in allocs["relayed"] if r}
        if isinstance(answer, str) and ":" in answer and answer.strip().lower() in relayed:
            return LabResult(
                q,
                answer,
                True,
                f"{answer} was handed out to a client that sent no credentials: "
                "anyone can relay through this server",
                len(allocs),
            )
        n = None if isinstance(answer, str) and ":" in answer else _parse_int(answer)
        frames = {int(x) for c in ("request_frame", "response_frame") for x in allocs[c].dropna()}
        if n is not None and n in frames:
            return LabResult(
                q,
                answer,
                True,
                f"frame {n}: the server allocated a relay for a request that carried no credentials",
                len(allocs),
            )
        return LabResult(
            q,
            answer,
            False,
            "that is not an unauthenticated Allocate, its success, or the address it relayed.",
            len(allocs),
        )
    streams, _ = _avail.frame(cap, "rtp_streams")
    readable = readable_streams(report, streams)
    if q == "plaintext_ssrc":
        n = _parse_int(answer)
        by_ssrc = dict(zip(readable["ssrc"], readable["why"]))
        if not by_ssrc:
            return _not_observable(q, answer, report, "rtp-unencrypted") or LabResult(
                q, answer, _none(answer), "every RTP stream here is out of an observer's reach"
            )
        if n in by_ssrc:
            how = (
                "it travelled without encryption"
                if by_ssrc[n] == "plain"
                else "it is SRTP, but its SDES key crossed the wire in clear inside the SDP"
            )
            return LabResult(
                q, answer, True, f"SSRC 0x{n:08x}: anyone on the path can play it: {how}", len(by_ssrc)
            )
        return LabResult(q, answer, False, "that SSRC is not one of the readable streams.", len(by_ssrc))
    # media_encrypted
    truth = not len(readable)
    if not isinstance(answer, bool):
        return LabResult(q, answer, False, "answer True or False")
    if answer == truth:
        return LabResult(
            q,
            answer,
            True,
            "all media was out of reach"
            if truth
            else f"{len(readable)} stream(s) could be played by anyone on the path",
        )
    return LabResult(q, answer, False, "look again at every stream's keying, and at how its key travelled.")


def _forged_note(cap: Any, ev: InjectionEvidence) -> str:
    """What SRTP authentication adds: the forged packets, or why they could not be looked for."""
    if ev.forged:
        spoofed = ", ".join(sorted(ev.spoofed))
        return (
            f". Besides, {ev.forged_packets} SRTP packet(s) claiming to come from {spoofed} failed "
            f"authentication (srtp-auth-failure): forged under that address by a host without the key"
        )
    status, reason = ev.status.get("srtp-auth-failure", ("not observable", "the check did not run"))
    if status == "clean":
        return ". Every SRTP packet authenticated with the call's keys: nothing was forged under a participant's address"
    if getattr(cap, "keylog", None) is None and "keylog" in reason:
        return (
            ". Packets forged under a participant's address were not looked for: authenticating SRTP needs the "
            "keys, so load the capture with its keylog (KEYLOG)"
        )
    return f". SRTP authentication could not be checked: {reason}"


def _check_injector(cap: Any, report: Report, answer: Any) -> LabResult:
    q = "injector"
    ev = injection_evidence(report)
    details = [
        f"{src} -> {dst}: {n} media packet(s) without ICE consent"
        for ips in ev.injectors.values()
        for src, dst, n in ips
    ]
    details += [
        f"{src} -> {dst}: SSRC {ssrc:#010x}, {n} packet(s) failing SRTP authentication (frames "
        f"{', '.join(map(str, frames[:10]))}{', ...' if len(frames) > 10 else ''})"
        if ssrc is not None
        else f"{src} -> {dst}: {n} packet(s) failing SRTP authentication"
        for src, dst, ssrc, n, frames in ev.forged
    ]
    note = _forged_note(cap, ev)
    a = "" if _none(answer) else (_as_ip(answer) or str(answer).strip().lower())
    if not ev.injectors:
        status, reason = ev.status.get("unsolicited-media", ("not observable", "the check did not run"))
        if ev.forged:
            return LabResult(
                q,
                answer,
                None,
                "no host sent media without ICE consent here, but "
                f"{ev.forged_packets} SRTP packet(s) under {', '.join(sorted(ev.spoofed))} failed "
                "authentication: forged under a participant's address, so no IP address in the capture "
                "names their sender (on one LAN, their Ethernet source does)",
                0,
                details,
            )
        if status != "clean":
            return LabResult(
                q,
                answer,
                None,
                f"whether media arrived without ICE consent cannot be told: {reason}",
                0,
                details,
            )
        ok = a == ""
        return LabResult(
            q,
            answer,
            ok,
            "every media 5-tuple here had ICE consent: no host injected media"
            + ("" if ok else ", so answer None")
            + note,
            0,
            details,
        )
    if a in ev.injectors:
        sent = ev.injectors[a]
        n = sum(x[2] for x in sent)
        dsts = ", ".join(sorted({x[1] for x in sent}))
        return LabResult(
            q,
            answer,
            True,
            f"{a} sent {n} media packet(s) to {dsts} on a 5-tuple that never had ICE "
            f"consent: no Binding check there was ever answered" + note,
            len(ev.injectors),
            details,
        )
    if a in ev.spoofed:
        msg = (
            f"{a} is the address the packets failing SRTP authentication carry, but they were forged under it. "
            "Which host sent media on a 5-tuple that never saw a Binding success?"
        )
    elif a in ev.receivers:
        msg = f"{a} received the unsolicited media; who sent it?"
    elif a:
        msg = (
            f"{a} sent no media without ICE consent. Compare the media flows with the flows that saw a Binding "
            "success."
        )
    else:
        msg = "give an IP address"
    return LabResult(q, answer, False, msg, len(ev.injectors), details)


# -- the answer box -----------------------------------------------------------------------------------------
def _typed(question: str, text: str) -> Any:
    """The answer typed in the box as the value ``check_answer`` takes."""
    t = text.strip()
    if question == "media_encrypted":
        return {"true": True, "yes": True, "false": False, "no": False}.get(t.lower(), t)
    if question in ("plaintext_ssrc",) or (question == "open_relay" and ":" not in t):
        n = _parse_int(t)
        return n if n is not None else t
    return t or None


def lab_widget(cap: Any, question: str, answer: Any = None) -> Any:
    """The question, an answer box with Check and Hint buttons (hints in steps) and the verdict; ``answer``
    (e.g. the notebook's ANSWER) is filled in and checked at once. Saved notebooks keep the question and the
    last verdict as static HTML."""
    import ipywidgets as w

    from ._static import LiveBox

    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r} (one of: {', '.join(QUESTIONS)})")
    spec = QUESTION_SPECS[question]
    prompt = w.HTML(f"<p class='rtcf-question'><b>Question.</b> {_safe.escape(spec.prompt)}</p>")
    box_in = w.Text(
        value="" if answer is None else str(answer), placeholder="your answer", layout=w.Layout(width="60%")
    )
    check = w.Button(description="Check", icon="check", button_style="primary")
    more = w.Button(description="Hint", icon="lightbulb-o")
    verdict = w.HTML()
    hints = w.HTML()
    shown = {"hints": 0}

    def on_check(_: Any = None) -> None:
        typed = _typed(question, box_in.value) if box_in.value.strip() else None
        problem = validate(question, typed) if typed is not None else None
        if problem:
            verdict.value = LabResult(question, typed, False, problem)._repr_html_()
        else:
            verdict.value = check_answer(cap, question, typed)._repr_html_()
        view.refresh_static()

    def on_hint(_: Any = None) -> None:
        n = min(shown["hints"] + 1, len(spec.hints))
        shown["hints"] = n
        hints.value = "".join(
            f"<p class='rtcf-hint'><b>Hint {i + 1}.</b> {_safe.escape(h)}</p>"
            for i, h in enumerate(spec.hints[:n])
        )
        more.disabled = n >= len(spec.hints)
        view.refresh_static()

    view = LiveBox(
        [prompt, w.HBox([box_in, check, more]), hints, verdict],
        static=lambda: prompt.value + hints.value + verdict.value,
    )
    view.add_class("rtcf-lab-box")
    check.on_click(on_check)
    more.on_click(on_hint)
    if answer is not None:
        on_check()
    return view
