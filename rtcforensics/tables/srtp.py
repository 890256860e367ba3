"""The `srtp_streams` frame: every SRTP/SRTCP stream after decryption with the keys the capture and its side
inputs give (the keylog's DTLS-SRTP secrets, SDES a=crypto keys of every SDP seen).

Decryption itself is :mod:`rtcforensics.srtp` (it needs the ``srtp`` extra, pylibsrtp). The frame is built
only when a key source exists; without one it is empty and :func:`key_sources` says why, so a check can tell
"no keys" from "no streams". User keys (``cap.decrypt(keys=...)``) are not part of the frame: they are an
analyst's hypothesis, not something the capture says.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..capture import Capture, register_frame
from ..schema import frame_schema
from ..values import listish

SRTP_STREAMS = frame_schema(
    "srtp_streams",
    "One row per SRTP stream (flow, sender, SSRC) after decryption: which key, and what authenticated.",
    [
        ("flow_id", "Int64", "flow the stream travelled on"),
        ("sender", "string", "ip:port that sent it"),
        ("receiver", "string", "ip:port it was sent to"),
        ("ssrc", "UInt32", "RTP synchronisation source"),
        (
            "status",
            "category:authenticated,partly authenticated,authentication failed,no key",
            (
                "authenticated: every packet's tag verified; partly: some failed (injection or corruption); "
                "authentication failed: a key was tried and verified no packet"
            ),
        ),
        (
            "key_source",
            "string",
            (
                "where the key came from: user, sdes:frame N, sdes:side, dtls-srtp:frame N (keylog); "
                "for authentication failed, the key that was tried"
            ),
        ),
        ("profile", "string", "SRTP protection profile (IANA DTLS-SRTP name)"),
        ("rtp_packets", "Int64", "SRTP packets seen"),
        ("rtcp_packets", "Int64", "SRTCP packets seen"),
        ("authenticated", "Int64", "packets whose tag verified"),
        ("auth_failed", "Int64", "packets whose tag did not verify with the stream's key"),
        (
            "replayed",
            "Int64",
            (
                "packets libsrtp rejected as replays (index seen before or behind the window) "
                "whose tag verifies; replay-rejected packets whose tag does not verify count in "
                "auth_failed"
            ),
        ),
        ("failed_frames", "object", "first frames (up to 50) that failed authentication"),
        ("first_frames", "object", "first frames (up to 5) that authenticated: where to look at the stream"),
        ("payload_types", "object", "RTP payload types seen after decryption"),
        ("codec", "string", "codec by payload type (static table, else SDP rtpmap)"),
        ("payload_entropy", "float64", "bits/byte of the decrypted payloads (near 8: still encrypted)"),
        (
            "e2ee_suspected",
            "boolean",
            "decrypted payloads still look random: e.g. insertable streams / SFrame",
        ),
        ("audio_dbfs", "float64", "loudness of the decoded audio (dBFS), when written"),
    ],
)


def key_sources(keylog: Any, sdp: pd.DataFrame | None) -> list[str]:
    """Where SRTP keys can come from: ``"keylog"`` (DTLS-SRTP, when a keylog was given), ``"sdes"`` (a=crypto
    keys in a description of the ``sdp`` frame, wire or side file). Empty: nothing to decrypt with."""
    out = []
    if keylog is not None:
        out.append("keylog")
    if (
        sdp is not None
        and "crypto_keys_secret" in sdp.columns
        and any(listish(v) for v in sdp["crypto_keys_secret"])
    ):
        out.append("sdes")
    return out


def decrypted(cap: Capture) -> Any:
    """``cap.decrypt()`` with the capture's own keys, run once per capture (its anomalies join the capture's
    log). Raises ImportError without the srtp extra."""
    from ..srtp.decrypt import decrypt

    def run() -> Any:
        res = decrypt(cap)
        for a in res.anomalies:
            cap.anomaly_log.add("srtp", str(a.get("name")), str(a.get("detail")), frame=a.get("frame"))
        return res

    return cap.cached("decrypt", run)


@register_frame(SRTP_STREAMS)
def build_srtp_streams(cap: Capture) -> pd.DataFrame:
    if not key_sources(cap.keylog, cap.frame_or_none("sdp")):
        return SRTP_STREAMS.empty()
    return decrypted(cap).streams
