"""SRTP family: how the media itself is protected (DTLS-SRTP profile, SDES suites, plaintext RTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pandas as pd

from ..tables.srtp import key_sources
from .common import endpoints, frames_of, listish, rows, truthy, val
from .context import CheckContext
from .dtls import hs_endpoints, hs_key, turn_servers
from .registry import Confidence, Hit, NotObservable, Severity, check
from .sdp import sdp_endpoints, sdp_where


def _profiles(ctx: CheckContext) -> Iterator[tuple[str, Any, str]]:
    """(profile or SDES suite chosen, row, source) from DTLS handshakes and SDES answers."""
    dtls = ctx.optional("dtls", ("srtp_profile",))
    sdp = ctx.optional("sdp", ("crypto_suites",))
    if (dtls is None or not len(dtls)) and (sdp is None or not len(sdp)):
        raise NotObservable("no DTLS-SRTP handshake and no SDES description in this capture")
    hidden = 0
    if dtls is not None:
        for r in rows(dtls):
            p = val(r, "srtp_profile")
            if p:
                yield str(p), r, "dtls"
            elif "srtp_profile" in listish(val(r, "encrypted_parts")):
                hidden += 1
    sdes_answers = (
        0
        if sdp is None
        else sum(1 for r in rows(sdp) if val(r, "role") == "answer" and listish(val(r, "crypto_suites")))
    )
    if hidden and dtls is not None and hidden == len(dtls) and not sdes_answers:
        raise NotObservable(
            f"the SRTP profile travels encrypted in all {hidden} DTLS 1.3 handshake(s) (give --keylog)"
        )
    if hidden:
        ctx.missing.append(f"SRTP profile encrypted in {hidden} DTLS 1.3 handshake(s) (no keylog)")
    if sdp is not None:
        for r in rows(sdp):
            if val(r, "role") == "answer":
                for s in listish(val(r, "crypto_suites")):
                    yield str(s), r, "sdes"


def _hit(ctx: CheckContext, prof: str, r: Any, src: str, msg: str) -> Hit:
    if src == "dtls":
        return Hit(
            message=msg,
            endpoints=hs_endpoints(r, turn_servers(ctx)),
            flow_id=val(r, "flow_id"),
            frames=frames_of(val(r, "frames")),
            evidence={"srtp_profile": prof, "keying": "dtls-srtp"},
            key=(*hs_key(r), prof),
        )
    return Hit(
        message=msg,
        endpoints=sdp_endpoints(r),
        flow_id=val(r, "flow_id"),
        frames=frames_of(val(r, "frame")),
        evidence={**sdp_where(r), "srtp_profile": prof, "keying": "sdes"},
        key=(val(r, "origin"), prof),
    )


@check(
    id="SRTP001",
    slug="srtp-null-cipher",
    title="SRTP with NULL encryption negotiated",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    references=("RFC 5764 §4.1.2", "RFC 8827 §6.5", "RFC 4568 §6.2"),
)
def srtp_null_cipher(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: a DTLS-SRTP handshake that selected ``SRTP_NULL_HMAC_SHA1_80/_32``, or an SDES answer
    that accepted a ``NULL_*`` crypto suite.
    Why it matters: media is authenticated but not encrypted; anyone on the path hears and sees it.
    A client that offers a NULL profile while the server chose an encrypting one is reported at info: the
    offer invites a server (or an on-path attacker who controls the answer) to pick it.
    Evidence: one row per handshake or description (frames, flow, profile; ``negotiated``).
    False positives: labs that disable encryption on purpose.
    References: RFC 5764 §4.1.2; RFC 8827 §6.5; RFC 4568 §6.2."""
    for prof, r, src in _profiles(ctx):
        if "NULL" in prof.upper():
            h = _hit(ctx, prof, r, src, f"{prof} negotiated ({src}): media not encrypted")
            yield replace(h, evidence={**h.evidence, "negotiated": True})
        elif src == "dtls":
            offered = [str(o) for o in listish(val(r, "srtp_profiles_offered")) if "NULL" in str(o).upper()]
            if offered:
                h = _hit(ctx, prof, r, src, f"client offers {', '.join(offered)}; {prof} was chosen")
                yield replace(
                    h,
                    evidence={**h.evidence, "negotiated": False, "null_offered": offered},
                    severity=Severity.INFO,
                    key=(*h.key, "offered"),
                )


@check(
    id="SRTP002",
    slug="srtp-weak-profile",
    title="SRTP profile with a 32-bit authentication tag",
    severity=Severity.LOW,
    confidence=Confidence.HIGH,
    references=("RFC 5764 §4.1.2", "RFC 3711 §9.5", "RFC 7714", "RFC 8827 §6.5"),
)
def srtp_weak_profile(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: ``SRTP_AES128_CM_HMAC_SHA1_32`` (or an SDES ``*_32`` suite) negotiated.
    Why it matters: a 32-bit tag gives a forger a 1 in 2^32 chance per packet, which a determined attacker
    on a long call can afford; RFC 8827 asks for the 80-bit tag or AEAD-GCM (RFC 7714).
    Evidence: one row per handshake or description (frames, flow, profile).
    False positives: RTP audio gateways that choose it for bandwidth (still a weaker choice).
    References: RFC 5764 §4.1.2; RFC 3711 §9.5; RFC 7714; RFC 8827 §6.5."""
    for prof, r, src in _profiles(ctx):
        if prof.upper().endswith("_32") and "NULL" not in prof.upper():
            yield _hit(ctx, prof, r, src, f"{prof} negotiated ({src}): 32-bit authentication tag")


@check(
    id="SRTP003",
    slug="rtp-unencrypted",
    title="Unencrypted RTP media",
    severity=Severity.HIGH,
    confidence=Confidence.HIGH,
    needs=("rtp_streams",),
    references=("RFC 8827 §6.5", "RFC 8834 §5", "RFC 3711"),
    params={
        "min_plaintext_score": (
            0.7,
            ("rtp_streams.plaintext_score from which a payload counts as plaintext evidence"),
        ),
        "strong_plaintext_score": (0.9, "score from which unknown keying is reported high"),
    },
)
def rtp_unencrypted(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: an RTP stream with no SRTP keying (no DTLS-SRTP handshake, no SDES) whose payload
    shows plaintext evidence (codec structure, G.711 byte distribution, low entropy: plaintext_score of at
    least ``min_plaintext_score``). Keying not established by the capture: high (medium confidence) when the
    score reaches ``strong_plaintext_score``, else medium at low confidence.
    Why it matters: anyone on the path can play the audio or video back.
    Evidence: one row per stream (flow, SSRC, payload type, codec, packets, the plaintext evidence; every
    plaintext SSRC of its flow).
    False positives: application-level encryption over RTP framing (Discord) shows random payload and is not
    flagged; comfort noise or silence alone may look plain.
    References: RFC 8827 §6.5; RFC 8834 §5; RFC 3711."""
    df = ctx.frame("rtp_streams", ("keying", "plaintext_score"))
    plain = [
        r
        for r in rows(df)
        if val(r, "plaintext_score") is not None
        and float(val(r, "plaintext_score")) >= ctx.param("min_plaintext_score")
        and str(val(r, "keying", "unknown")) not in ("dtls-srtp", "sdes")
    ]
    flow_ssrcs: dict[Any, list[int]] = {}
    for r in plain:
        flow_ssrcs.setdefault(val(r, "flow_id"), []).append(int(val(r, "ssrc")))
    for r in plain:
        keying = str(val(r, "keying", "unknown"))
        score = val(r, "plaintext_score")
        if keying == "none":
            sev, conf = None, None
        elif float(score) >= ctx.param("strong_plaintext_score"):
            sev, conf = Severity.HIGH, Confidence.MEDIUM
        else:
            sev, conf = Severity.MEDIUM, Confidence.LOW
        ssrc = val(r, "ssrc")
        eps = endpoints(val(r, "src"), val(r, "dst"))
        yield Hit(
            message=f"RTP stream SSRC {int(ssrc):#010x} ({int(val(r, 'packets', 0))} packets, "
            f"{val(r, 'codec') or 'PT ' + str(val(r, 'pt'))}) carries plaintext media: "
            f"{val(r, 'plaintext_reason') or 'payload looks unencrypted'} (keying {keying})",
            endpoints=eps,
            flow_id=val(r, "flow_id"),
            frames=frames_of(val(r, "first_frame")),
            evidence={
                "ssrc": ssrc,
                "keying": keying,
                "plaintext_score": score,
                "plaintext_reason": val(r, "plaintext_reason"),
                "pt": val(r, "pt"),
                "codec": val(r, "codec"),
                "packets": val(r, "packets"),
                "flow_ssrcs": sorted(set(flow_ssrcs.get(val(r, "flow_id"), []))),
            },
            key=(*eps, ssrc),
            severity=sev,
            confidence=conf,
        )


def decrypted_streams(ctx: CheckContext) -> pd.DataFrame:
    """The capture's SRTP streams that some key verified (frame ``srtp_streams``: decrypted once per capture
    with the keylog and the SDES keys the capture carries). Raises NotObservable when there is no key, no
    stream, or no packet verified."""
    sources = key_sources(ctx.keylog, ctx.optional("sdp", ("crypto_keys_secret",)))
    if not sources:
        raise NotObservable("no SRTP keys: no keylog given (--keylog) and no SDES key in any SDP seen")
    streams = ctx.frame("srtp_streams", ("authenticated", "status"), allow_empty=True)
    if not len(streams):
        raise NotObservable("no SRTP/SRTCP stream in this capture")
    keyed = streams[streams["authenticated"].fillna(0) > 0]
    if not len(keyed):
        why = "keylog given" if "keylog" in sources else "SDES keys in the SDP"
        raise NotObservable(
            f"no SRTP packet authenticated with the keys available ({why}; "
            f"{len(streams)} stream(s) without a working key)"
        )
    return keyed


def _stream_hit(r: Any, message: str, frames: Any, evidence: dict[str, Any], **kw: Any) -> Hit:
    ssrc = val(r, "ssrc")
    eps = endpoints(val(r, "sender"), val(r, "receiver"))
    return Hit(
        message=message,
        endpoints=eps,
        flow_id=val(r, "flow_id"),
        frames=frames_of(frames),
        evidence={
            "ssrc": ssrc,
            "sender": val(r, "sender"),
            "receiver": val(r, "receiver"),
            "key_source": val(r, "key_source"),
            "profile": val(r, "profile"),
            **evidence,
        },
        key=(*eps, ssrc),
        **kw,
    )


@check(
    id="SRTP004",
    slug="srtp-auth-failure",
    title="SRTP packets failing authentication in a keyed stream",
    severity=Severity.HIGH,
    confidence=Confidence.MEDIUM,
    references=("RFC 3711 §3.3", "RFC 3711 §9.5", "RFC 5764 §4.2", "RFC 4568 §6.1"),
)
def srtp_auth_failure(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: SRTP/SRTCP packets whose authentication tag does not verify inside a stream whose key
    verifies its other packets (the capture is decrypted with the keylog or the SDES keys it carries).
    Why it matters: a receiver drops such packets; on the wire they are packets injected by someone without
    the key (media injection, replay with altered bytes, a fuzzing probe) or corrupted in transit or capture.
    Evidence: one row per stream (SSRC, sender, key source, counts, the frames that failed).
    False positives: corruption by a faulty link or capture tool (truncated snaplen, editcap); packets of a
    re-keyed stream (new SDES offer) sent before the new key took effect.
    References: RFC 3711 §3.3 and §9.5; RFC 5764 §4.2; RFC 4568 §6.1."""
    for r in rows(decrypted_streams(ctx)):
        failed = int(val(r, "auth_failed", 0))
        if not failed:
            continue
        ok = int(val(r, "authenticated", 0))
        ssrc = int(val(r, "ssrc"))
        yield _stream_hit(
            r,
            f"{failed} packet(s) of SRTP stream SSRC {ssrc:#010x} from {val(r, 'sender')} fail "
            f"authentication while {ok} verify with the same key ({val(r, 'key_source')}): "
            "injected or corrupted packets",
            val(r, "failed_frames"),
            {"authenticated": ok, "auth_failed": failed, "status": val(r, "status")},
        )


@check(
    id="SRTP005",
    slug="srtp-e2ee-payload",
    title="Media additionally end-to-end encrypted",
    severity=Severity.INFO,
    confidence=Confidence.MEDIUM,
    references=("RFC 9605", "W3C WebRTC Encoded Transform"),
)
def srtp_e2ee_payload(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: an SRTP stream that authenticates and decrypts, yet whose decrypted payloads still look
    random: their bytes (a few at each end of every payload left out, where E2EE schemes keep headers in
    clear) pass a chi-square test of uniformity over up to 2000 packets, which codec bitstreams — Opus, VP8,
    G.711 — fail; or libopus rejects Opus payloads. Media additionally end-to-end encrypted (e.g. WebRTC
    encoded transform / insertable streams, SFrame). Streams too short to tell, RTX, FEC, comfort noise and
    DTMF are not judged.
    Why it matters: the hop-by-hop SRTP keys (keylog, SDES) do not reveal the media; an analyst learns that
    the application encrypts end to end and that decrypted audio will be noise, rather than hearing silence.
    Evidence: one row per stream (SSRC, sender, payload entropy, codec; its first authenticated frames).
    False positives: one stream in a thousand of real codec data passes the test by chance (0.1 % level);
    a capture holding only a few seconds of loud speech comes closer than a whole call.
    References: RFC 9605 (SFrame); W3C WebRTC Encoded Transform (insertable streams)."""
    for r in rows(decrypted_streams(ctx)):
        if not truthy(r, "e2ee_suspected"):
            continue
        ent = float(val(r, "payload_entropy"))
        ssrc = int(val(r, "ssrc"))
        yield _stream_hit(
            r,
            f"SRTP stream SSRC {ssrc:#010x} from {val(r, 'sender')} decrypts, yet its payloads "
            f"still look encrypted (bytes uniform; {ent:.2f} bits/byte): media additionally "
            "end-to-end encrypted (e.g. encoded transform/SFrame)",
            val(r, "first_frames") or (),
            {
                "payload_entropy": round(ent, 3),
                "codec": val(r, "codec"),
                "payload_types": listish(val(r, "payload_types")),
            },
        )


@check(
    id="SRTP006",
    slug="srtp-sdes-inferred",
    title="SRTP keyed without DTLS (SDES or out of band)",
    severity=Severity.LOW,
    confidence=Confidence.MEDIUM,
    needs=("rtp_streams",),
    references=("RFC 4568 §8.3", "RFC 5764 §4", "RFC 8827 §6.5"),
)
def srtp_sdes_inferred(ctx: CheckContext) -> Iterator[Hit]:
    """What it flags: encrypted RTP (SRTP) on a flow whose ICE connectivity checks — the start of the call —
    are in the capture, in a capture with no DTLS handshake at all (``rtp_streams.keying`` =
    ``sdes (inferred)``): the SRTP keys were not agreed by DTLS-SRTP, so they travelled in the signalling
    (SDES a=crypto) or out of band. One finding per flow.
    Why it matters: with SDES the media is exactly as secret as the signalling path; whoever saw (or can read
    the logs of) the signalling servers held the media keys. WebRTC forbids SDES.
    Evidence: the flow, its SSRCs, the frames of its first media packets.
    False positives: a DTLS handshake that the capture missed although the ICE checks before it are in it
    (capture loss), or a proprietary key exchange (e.g. ZRTP inside the media, which would show as zrtp).
    References: RFC 4568 §8.3; RFC 5764 §4; RFC 8827 §6.5."""
    df = ctx.frame("rtp_streams", ("keying",))
    inferred = df[df["keying"].astype(str) == "sdes (inferred)"]
    for flow, g in inferred.groupby("flow_id", sort=True):
        ssrcs = sorted(int(x) for x in g["ssrc"])
        eps = endpoints(*g["src"].tolist(), *g["dst"].tolist())
        yield Hit(
            message=f"{len(ssrcs)} SRTP stream(s) on a flow whose ICE start is in the capture, with no DTLS "
            "handshake anywhere: keyed by SDES or out of band, so whoever saw the signalling held "
            "the media keys",
            endpoints=eps,
            flow_id=int(flow),
            frames=frames_of(*g["first_frame"].tolist()),
            evidence={"ssrcs": ssrcs, "keying": "sdes (inferred)", "packets": int(g["packets"].sum())},
            key=tuple(sorted(eps)),
        )
