"""Teaching labs: exercises whose answers are checked against what the capture itself shows.

``check_answer(cap, question, answer)`` works the answer out from the capture's frames (never from a truth
file or a stored key) and compares. The answer keys are pure functions over frames
(``leaked_private_addresses``, ``fingerprint_mismatches``, ``open_relay_allocations``,
``unencrypted_streams``) or over the checks' report (``injection_evidence``), so the labs are tested without a
kernel.

Questions:

- ``private_address``: an address that left the host in an ICE candidate (or its raddr) and is not
  public (RFC 1918, CGNAT, loopback, link-local, ULA)
- ``mitm``: the SHA-256 (hex, colons allowed) of an a=fingerprint that matches no certificate on the wire
  (rewritten in transit), or of a certificate that no a=fingerprint describes
- ``open_relay``: the relayed address (``"ip:port"``) a TURN server allocated for a request carrying no
  MESSAGE-INTEGRITY, or the frame number of that Allocate success (or of the request)
- ``plaintext_ssrc``: the SSRC (int, or hex string) of an RTP stream sent without encryption
- ``media_encrypted``: True or False — was all media encrypted?
- ``injector``: the IP address (``"ip"`` or ``"ip:port"``) of the host that sent media into the call on a
  5-tuple without ICE consent (check ICE005 ``unsolicited-media``); packets it forged under a call
  participant's address are found by SRTP authentication (SRTP004 ``srtp-auth-failure``, with the keylog) but
  carry the spoofed address, so they do not name it
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import _avail, _safe
from .select import _as_list, _col

NOT_PUBLIC = ("loopback", "private", "cgnat", "link_local", "ula")
QUESTIONS = ("private_address", "mitm", "open_relay", "plaintext_ssrc", "media_encrypted", "injector")
INJECTION_CHECKS = ("unsolicited-media", "srtp-auth-failure")


@dataclass
class LabResult:
    """The verdict on one answer. ``correct`` is None when the capture cannot settle the question."""

    question: str
    answer: Any
    correct: bool | None
    message: str
    expected_count: int = 0
    details: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.correct)

    def _repr_html_(self) -> str:
        colour = {True: "#2e7d32", False: "#c62828", None: "#6d6d6d"}[self.correct]
        mark = {True: "✔ correct", False: "✘ not yet", None: "? cannot be checked"}[self.correct]
        return (f"<div class='rtcf-lab' style='border-left:4px solid {colour};padding:4px 8px'>"
                f"<b style='color:{colour}'>{mark}</b> — {_safe.escape(self.message)}</div>")

    def __repr__(self) -> str:
        mark = {True: "correct", False: "not yet", None: "cannot be checked"}[self.correct]
        return f"{mark}: {self.message}"


# -- answer keys (pure) -------------------------------------------------------------------------------------
def _scope(address: str) -> str:
    try:
        from ..addr import scope

        return scope(address)
    except Exception:  # noqa: BLE001 - an unparsable address has no scope
        return "unknown"


def _norm_addr(a: Any) -> str:
    s = str(a).strip()
    if s.startswith("[") and "]" in s:
        s = s[1:s.index("]")]
    elif s.count(":") == 1 and "." in s:  # ip:port
        s = s.split(":")[0]
    return s.lower()


def leaked_private_addresses(candidates: pd.DataFrame) -> set[str]:
    """Non-public addresses in the ``candidates`` frame: candidate addresses and their raddr."""
    out: set[str] = set()
    if candidates is None or not len(candidates):
        return out
    acol = _col(candidates, "address", "ip")
    scol = _col(candidates, "scope")
    for _, r in candidates.iterrows():
        if acol is not None and r[acol] is not None and r[acol] is not pd.NA:
            sc = str(r[scol]) if scol is not None and r[scol] is not pd.NA else _scope(str(r[acol]))
            if sc in NOT_PUBLIC:
                out.add(_norm_addr(r[acol]))
        raddr = r.get("raddr") if "raddr" in candidates.columns else None
        if raddr is not None and raddr is not pd.NA and str(raddr) and _scope(str(raddr)) in NOT_PUBLIC:
            out.add(_norm_addr(raddr))
    return out


_HEX = re.compile(r"^[0-9a-f]{64}$")


def _hexes(v: Any) -> set[str]:
    """SHA-256 hex strings found in a cell (a string, a list, or a dict such as {"sha-256": "..."})."""
    out: set[str] = set()
    for x in _as_list(v) if not isinstance(v, dict) else list(v.values()):
        if isinstance(x, (dict, list, tuple)):
            out |= _hexes(x)
            continue
        s = str(x).replace(":", "").strip().lower()
        if " " in s:  # "sha-256 AB:CD..."
            s = s.split()[-1]
        if _HEX.match(s):
            out.add(s)
    return out


def sdp_fingerprints(sdp: pd.DataFrame) -> set[str]:
    """Every SHA-256 a=fingerprint the ``sdp`` frame holds (session and media level), lowercase hex."""
    out: set[str] = set()
    if sdp is None or not len(sdp):
        return out
    for c in sdp.columns:
        if "fingerprint" in str(c).lower():
            for v in sdp[c]:
                out |= _hexes(v)
    return out


def _cert_hashes(dtls: pd.DataFrame | None) -> tuple[list[tuple[int, str, str, list[Any]]], bool]:
    """``[(flow_id, side, sha256, frames)]`` of the certificates on the wire, and whether every handshake
    showed both certificates (DTLS 1.3 without a keylog does not)."""
    out: list[tuple[int, str, str, list[Any]]] = []
    complete = dtls is not None and len(dtls) > 0
    if dtls is None:
        return out, False
    for _, r in dtls.iterrows():
        for side in ("client", "server"):
            c = f"{side}_cert_sha256"
            h = r.get(c) if c in dtls.columns else None
            if h is None or h is pd.NA:
                complete = False
                continue
            out.append((int(r["flow_id"]), side, str(h).replace(":", "").lower(), list(_as_list(r.get("frames")))))
    return out, complete


def fingerprint_mismatches(dtls: pd.DataFrame | None, sdp: pd.DataFrame | None) -> pd.DataFrame:
    """The man-in-the-middle signatures between certificates on the wire and SDP a=fingerprints:

    - ``certificate_not_in_sdp``: a DTLS certificate that no SHA-256 a=fingerprint describes;
    - ``fingerprint_without_certificate``: an SHA-256 a=fingerprint that matches no certificate on the wire,
      counted only when every handshake showed both certificates (so an encrypted DTLS 1.3 certificate
      does not look like a rewrite) — the fingerprint a relay substituted in transit.

    Columns ``kind``, ``sha256``, ``flow_id`` (handshake or signalling flow), ``frame`` (first frame of the
    handshake, or of the SDP). Empty when there is nothing to compare."""
    cols = ["kind", "sha256", "flow_id", "frame"]
    fps = sdp_fingerprints(sdp)
    certs, complete = _cert_hashes(dtls)
    rows: list[dict[str, Any]] = []
    if fps and certs:
        for flow_id, _side, h, frames in certs:
            if h not in fps:
                rows.append({"kind": "certificate_not_in_sdp", "sha256": h, "flow_id": flow_id,
                             "frame": min(frames) if frames else None})
        if complete:
            on_wire = {h for _, _, h, _ in certs}
            for _, r in sdp.iterrows():  # type: ignore[union-attr]
                for h in sorted(_sdp_row_fingerprints(r)):
                    if h not in on_wire:
                        rows.append({"kind": "fingerprint_without_certificate", "sha256": h,
                                     "flow_id": r.get("flow_id"), "frame": r.get("frame")})
    out = pd.DataFrame(rows, columns=cols)
    return out.drop_duplicates(subset=["kind", "sha256"]).reset_index(drop=True)


def _sdp_row_fingerprints(row: pd.Series) -> set[str]:
    out: set[str] = set()
    for c in row.index:
        if "fingerprint" in str(c).lower():
            out |= _hexes(row[c])
    return out


def open_relay_allocations(stun: pd.DataFrame) -> pd.DataFrame:
    """TURN Allocate successes answering a request without MESSAGE-INTEGRITY: ``request_frame``,
    ``response_frame``, ``flow_id``, ``relayed`` (XOR-RELAYED-ADDRESS when present)."""
    cols = ["request_frame", "response_frame", "flow_id", "relayed"]
    if stun is None or not len(stun):
        return pd.DataFrame({c: [] for c in cols})
    method = stun["method"].astype(str).str.lower()
    cls = stun["cls"].astype(str).str.lower()
    alloc = stun[method == "allocate"]
    req = alloc[cls[alloc.index] == "request"]
    ok = alloc[cls[alloc.index].isin(["success", "success_response", "success response"])]
    rows = []
    relayed_col = _col(stun, "xor_relayed", "xor_relayed_address", "relayed")
    for _, resp in ok.iterrows():
        match = req[req["txid"] == resp["txid"]]
        if not len(match):
            continue
        rq = match.iloc[0]
        integ = rq.get("has_integrity")
        if integ is pd.NA or integ is None:
            continue
        if not bool(integ):
            rows.append({"request_frame": int(rq["frame"]), "response_frame": int(resp["frame"]),
                         "flow_id": int(resp["flow_id"]) if resp.get("flow_id") is not pd.NA else None,
                         "relayed": resp.get(relayed_col) if relayed_col else None})
    return pd.DataFrame(rows, columns=cols)


PLAINTEXT_SCORE = 0.5  # rtp_streams.plaintext_score at or above which payloads look like plaintext media


def unencrypted_streams(rtp_streams: pd.DataFrame) -> pd.DataFrame:
    """RTP streams sent without encryption: keying ``none``; or keying not known to be SRTP
    (``dtls-srtp``/``sdes``) while the payload itself looks like plaintext media (``plaintext_score``)."""
    if rtp_streams is None or not len(rtp_streams):
        return rtp_streams
    n = len(rtp_streams)
    keying = (rtp_streams["keying"].astype(object).map(lambda v: "" if v is None or v is pd.NA else str(v).lower())
              if "keying" in rtp_streams.columns else pd.Series([""] * n, index=rtp_streams.index))
    mask = keying == "none"
    score = _col(rtp_streams, "plaintext_score")
    if score is not None:
        sc = pd.to_numeric(rtp_streams[score], errors="coerce").fillna(0.0)
        mask |= ~keying.isin(["dtls-srtp", "sdes"]) & (sc >= PLAINTEXT_SCORE)
    return rtp_streams[mask]


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


def injection_evidence(report: Any) -> InjectionEvidence:
    """Read the ``unsolicited-media`` and ``srtp-auth-failure`` findings (and their coverage) of a checks
    report (``rtcforensics.checks.analyze.analyze``): who sent media without ICE consent, and which SRTP
    packets a keyed stream did not authenticate. The checks decide; this only reads their findings."""
    ev = InjectionEvidence()
    for c in getattr(report, "coverage", ()):
        if c.slug in INJECTION_CHECKS:
            ev.status[c.slug] = (str(c.status), str(c.reason))
    for f in getattr(report, "findings", ()):
        eps = [str(e) for e in f.endpoints]
        if f.slug == "unsolicited-media" and eps:
            ip = _norm_addr(eps[0])
            dst = eps[1] if len(eps) > 1 else ""
            ev.injectors.setdefault(ip, []).append((eps[0], dst, int(f.evidence.get("packets", len(f.frames)))))
            if dst:
                ev.receivers.add(_norm_addr(dst))
        elif f.slug == "srtp-auth-failure" and eps:
            ssrc = f.evidence.get("ssrc")
            n = int(f.evidence.get("auth_failed", len(f.frames)))
            ev.forged.append((eps[0], eps[1] if len(eps) > 1 else "", None if ssrc is None else int(ssrc), n,
                              [int(x) for x in f.frames]))
            ev.spoofed.add(_norm_addr(eps[0]))
    return ev


# -- checking -----------------------------------------------------------------------------------------------
def _need(cap: Any, *names: str) -> tuple[list[pd.DataFrame], str]:
    frames = []
    for n in names:
        df, why = _avail.frame(cap, n)
        if df is None:
            return [], why
        frames.append(df)
    return frames, ""


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


def check_answer(cap: Any, question: str, answer: Any) -> LabResult:
    """Compare ``answer`` with what ``cap`` shows for ``question`` (see the module docstring).

    ``None`` is the right answer only when the capture shows nothing of the kind; otherwise it is read as
    "no answer yet"."""
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r} (one of: {', '.join(QUESTIONS)})")
    result = _check(cap, question, answer)
    if answer is None and result.correct is False:
        result.message = ("no answer yet: set ANSWER in the first cell (or `answer` in this cell) and run it "
                          "again")
    return result


def _check(cap: Any, question: str, answer: Any) -> LabResult:
    if question == "injector":
        return _check_injector(cap, answer)
    if question == "private_address":
        got, why = _need(cap, "candidates")
        if why:
            return LabResult(question, answer, None, why)
        leaked = leaked_private_addresses(got[0])
        a = _norm_addr(answer)
        if not leaked:
            return LabResult(question, answer, a in ("", "none"), "this capture leaks no private address in its "
                             "candidates" + ("" if a in ("", "none") else "; answer None"))
        if a in leaked:
            return LabResult(question, answer, True, f"{a} is a {_scope(a)} address and it crossed the wire in an "
                             f"ICE candidate ({len(leaked)} such address(es) in this capture)", len(leaked))
        hint = "it is public" if _scope(a) == "public" else "it is not in any candidate here"
        return LabResult(question, answer, False, f"{a}: {hint}. Look at the candidates frame's scope column.",
                         len(leaked))
    if question == "mitm":
        got, why = _need(cap, "dtls", "sdp")
        if why:
            return LabResult(question, answer, None, why)
        dtls, sdp = got
        if not sdp_fingerprints(sdp):
            return LabResult(question, answer, None, "no a=fingerprint was readable in this capture's signalling")
        if not _cert_hashes(dtls)[0]:
            return LabResult(question, answer, None, "no DTLS certificate was readable in this capture")
        bad = fingerprint_mismatches(dtls, sdp)
        if not len(bad):
            ok = answer is None or str(answer).strip().lower() in ("none", "")
            return LabResult(question, answer, ok, "every DTLS certificate matches the a=fingerprints and every "
                             "fingerprint its certificate: no MITM signature here" + ("" if ok else "; answer None"))
        h = str(answer).replace(":", "").strip().lower()
        found = bad[bad["sha256"] == h]
        if len(found):
            what = ("a certificate no a=fingerprint describes: someone else terminated DTLS"
                    if found["kind"].iloc[0] == "certificate_not_in_sdp" else
                    "an a=fingerprint that matches no certificate on the wire: the description was rewritten "
                    "in transit")
            return LabResult(question, answer, True, f"{what} ({len(bad)} mismatch(es) in this capture)", len(bad))
        return LabResult(question, answer, False, "that hash is on both sides of the comparison. Compare "
                         "dtls.*_cert_sha256 with every sdp fingerprint, leg by leg.", len(bad))
    if question == "open_relay":
        got, why = _need(cap, "stun")
        if why:
            return LabResult(question, answer, None, why)
        allocs = open_relay_allocations(got[0])
        if not len(allocs):
            return LabResult(question, answer, answer is None, "no Allocate here succeeded without "
                             "MESSAGE-INTEGRITY: the server challenged every request")
        relayed = {str(r).lower() for r in allocs["relayed"] if r is not None and r is not pd.NA}
        if isinstance(answer, str) and ":" in answer and str(answer).strip().lower() in relayed:
            return LabResult(question, answer, True, f"{answer} was handed out to a client that sent no "
                             f"credentials: anyone can relay through this server", len(allocs))
        n = _parse_int(answer) if not isinstance(answer, str) or ":" not in answer else None
        if n is not None and (n in set(allocs["response_frame"]) or n in set(allocs["request_frame"])):
            return LabResult(question, answer, True, f"frame {n}: the server allocated a relay for a request that "
                             f"carried no credentials", len(allocs))
        return LabResult(question, answer, False, "that is not an unauthenticated Allocate, its success, or the "
                         "address it relayed. Filter stun for method Allocate and look at has_integrity.", len(allocs))
    got, why = _need(cap, "rtp_streams")
    if why:
        return LabResult(question, answer, None, why)
    plain = unencrypted_streams(got[0])
    if question == "plaintext_ssrc":
        n = _parse_int(answer)
        ssrcs = {int(s) for s in plain["ssrc"]} if plain is not None and len(plain) else set()
        if not ssrcs:
            return LabResult(question, answer, answer is None, "every RTP stream here is encrypted")
        if n in ssrcs:
            return LabResult(question, answer, True, f"SSRC 0x{n:08x} carries media anyone on the path can play",
                             len(ssrcs))
        return LabResult(question, answer, False, "that SSRC is not one of the plaintext streams. Look at "
                         "rtp_streams.keying.", len(ssrcs))
    # media_encrypted
    truth = not (plain is not None and len(plain))
    if not isinstance(answer, bool):
        return LabResult(question, answer, False, "answer True or False")
    if answer == truth:
        return LabResult(question, answer, True, "all media was encrypted" if truth else
                         f"{len(plain)} stream(s) travelled without encryption")
    return LabResult(question, answer, False, "look again at rtp_streams.keying and the SDP's m= protos")


def _injection_report(cap: Any) -> tuple[Any | None, str]:
    """The two injection checks run over ``cap`` (once per capture), or ``(None, reason)``."""
    try:
        from ..checks.analyze import analyze
    except Exception as e:  # noqa: BLE001
        return None, f"the checks (rtcforensics.analyze) are not available ({type(e).__name__}: {e})"

    def make() -> Any:
        return analyze(cap, only=list(INJECTION_CHECKS))

    try:
        return (cap.cached("labs.injection_report", make) if hasattr(cap, "cached") else make()), ""
    except Exception as e:  # noqa: BLE001
        return None, f"analysis failed ({type(e).__name__}: {e})"


def _forged_note(cap: Any, ev: InjectionEvidence) -> str:
    """What SRTP authentication adds: the forged packets, or why they could not be looked for."""
    if ev.forged:
        spoofed = ", ".join(sorted(ev.spoofed))
        return (f". Besides, {ev.forged_packets} SRTP packet(s) claiming to come from {spoofed} failed "
                f"authentication (srtp-auth-failure): forged under that address by a host without the key")
    status, reason = ev.status.get("srtp-auth-failure", ("not observable", "the check did not run"))
    if status == "clean":
        return ". Every SRTP packet authenticated with the call's keys: nothing was forged under a participant's address"
    if getattr(cap, "keylog", None) is None and "keylog" in reason:
        return (". Packets forged under a participant's address were not looked for: authenticating SRTP needs the "
                "keys, so load the capture with its keylog (KEYLOG)")
    return f". SRTP authentication could not be checked: {reason}"


def _check_injector(cap: Any, answer: Any) -> LabResult:
    q = "injector"
    report, why = _injection_report(cap)
    if report is None:
        return LabResult(q, answer, None, why)
    ev = injection_evidence(report)
    details = [f"{src} -> {dst}: {n} media packet(s) without ICE consent" for ips in ev.injectors.values()
               for src, dst, n in ips]
    details += [f"{src} -> {dst}: SSRC {ssrc:#010x}, {n} packet(s) failing SRTP authentication (frames "
                f"{', '.join(map(str, frames[:10]))}{', ...' if len(frames) > 10 else ''})"
                if ssrc is not None else f"{src} -> {dst}: {n} packet(s) failing SRTP authentication"
                for src, dst, ssrc, n, frames in ev.forged]
    note = _forged_note(cap, ev)
    a = "" if answer is None else _norm_addr(answer)
    if not ev.injectors:
        status, reason = ev.status.get("unsolicited-media", ("not observable", "the check did not run"))
        if ev.forged:
            return LabResult(q, answer, None, "no host sent media without ICE consent here, but "
                             f"{ev.forged_packets} SRTP packet(s) under {', '.join(sorted(ev.spoofed))} failed "
                             "authentication: forged under a participant's address, so no IP address in the capture "
                             "names their sender (on one LAN, their Ethernet source does)", 0, details)
        if status != "clean":
            return LabResult(q, answer, None, f"whether media arrived without ICE consent cannot be told: {reason}",
                             0, details)
        ok = a in ("", "none")
        return LabResult(q, answer, ok, "every media 5-tuple here had ICE consent: no host injected media" +
                         ("" if ok else ", so answer None") + note, 0, details)
    if a in ev.injectors:
        sent = ev.injectors[a]
        n = sum(x[2] for x in sent)
        dsts = ", ".join(sorted({x[1] for x in sent}))
        return LabResult(q, answer, True, f"{a} sent {n} media packet(s) to {dsts} on a 5-tuple that never had ICE "
                         f"consent: no Binding check there was ever answered" + note, len(ev.injectors), details)
    if a in ev.spoofed:
        hint = (f"{a} is the address the packets failing SRTP authentication carry, but they were forged under it. "
                "Which host sent media on a 5-tuple that never saw a Binding success?")
    elif a in ev.receivers:
        hint = f"{a} received the unsolicited media; who sent it?"
    elif a:
        hint = (f"{a} sent no media without ICE consent. Compare the media flows with the flows that saw a Binding "
                "success.")
    else:
        hint = "give an IP address"
    return LabResult(q, answer, False, hint, len(ev.injectors), details)
