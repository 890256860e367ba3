"""Every SRTP and SRTCP packet of a capture with its bytes, for decryption.

The fast path keeps RTP as header columns only (that is what makes it fast). Decryption needs the bytes, so
this runs the same pass with ``keep_payloads=True``: every RTP packet then goes through the scalar path (TURN
unwrapping, RFC 4571 framing included) and is kept with its bytes. It is slower than a load (Python per
packet) and is only run by ``decrypt``."""

from __future__ import annotations

import os

from ..addr import endpoint
from ..anomalies import AnomalyLog
from ..budget import BudgetExceeded
from ..dissect.fastpath import dissect
from ..dissect.model import Datagram
from .session import MediaPacket


def _ep(ip: str, port: int) -> str:
    return endpoint(ip, port) or ""


def _media(dg: Datagram, rtcp: bool) -> MediaPacket:
    """One RTP (SSRC at bytes 8..12) or RTCP (SSRC at bytes 4..8) datagram as a ``MediaPacket``."""
    at = 4 if rtcp else 8
    return MediaPacket(
        frame=dg.frame,
        ts_ns=dg.ts_ns,
        flow_id=dg.flow_id,
        sender=_ep(dg.src, dg.sport),
        receiver=_ep(dg.dst, dg.dport),
        ssrc=int.from_bytes(dg.data[at : at + 4], "big"),
        rtcp=rtcp,
        data=dg.data,
        via_turn=dg.via_turn,
    )


def collect_media(
    path: str | os.PathLike[str], *, max_packets: int | None = None, max_inflated: int | None = None
) -> tuple[list[MediaPacket], AnomalyLog]:
    """All RTP and RTCP packets of ``path`` in capture order, flow ids as in the capture's frames. Pass the
    capture's read limits (``collect_media(cap.path, **cap.limits)``) so that this pass reads what the load
    read, no more. This pass holds every media packet's bytes: when the memory budget stops it (a
    ``memory_limit`` anomaly), :class:`~rtcforensics.budget.BudgetExceeded` is raised rather than a
    decryption of part of the capture that would read as the whole."""
    d = dissect(path, progress=False, keep_payloads=True, max_packets=max_packets, max_inflated=max_inflated)
    cut = [r["detail"] for r in d.anomalies.rows if r["name"] == "memory_limit"]
    if cut:
        raise BudgetExceeded(f"{path}: collecting the SRTP packets for decryption {cut[0]}")
    out = [_media(dg, rtcp=False) for dg in d.rtp_payloads]
    out += [_media(dg, rtcp=True) for dg in d.rtcp if len(dg.data) >= 8]
    out.sort(key=lambda p: p.frame)
    return out, d.anomalies
