"""Every SRTP and SRTCP packet of a capture with its bytes, for decryption.

The fast path keeps RTP as header columns only (that is what makes it fast). Decryption needs the bytes, so
this runs the same pass with the vectorised RTP shortcut turned off: every RTP packet then goes through the
scalar path (TURN unwrapping, RFC 4571 framing included) and is recorded with its bytes. It is slower than a
load (Python per packet) and is only run by ``decrypt``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..addr import endpoint
from ..anomalies import AnomalyLog
from ..dissect import fastpath
from ..dissect.demux import RTCP
from ..dissect.pcapio import CaptureReader
from .session import MediaPacket


class _KeepRtpPass(fastpath._Pass):
    def __init__(self, path: str, log: AnomalyLog, strict: bool) -> None:
        super().__init__(path, log, strict)
        self.kept: list[tuple[int, int, int, str, str, str | None, bytes]] = []

    def _rtp_fits(self, arr: np.ndarray, po: np.ndarray, plen: np.ndarray,
                  cand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(po)  # no packet for the numpy path: all take the scalar path below
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)

    def rtp_packet(self, ctx: Any, data: bytes, via: int) -> None:
        super().rtp_packet(ctx, data, via)
        if len(data) >= 12:
            self.kept.append((ctx.frame, ctx.ts, ctx.flow, _ep(self.ip_list[ctx.src], ctx.sport),
                              _ep(self.ip_list[ctx.dst], ctx.dport), fastpath.VIA[via] if via >= 0 else None,
                              bytes(data)))


def _ep(ip: str, port: int) -> str:
    return endpoint(ip, port) or ""


def collect_media(path: str | os.PathLike[str]) -> tuple[list[MediaPacket], AnomalyLog]:
    """All RTP and RTCP packets of ``path`` in capture order, flow ids as in the capture's frames."""
    log = AnomalyLog()
    reader = CaptureReader(path, log, strict=False)
    st = _KeepRtpPass(str(path), log, False)
    for b in reader.batches():
        st.batch(b)
    st.finish()
    flow_map = fastpath._flow_renumbering(st)
    out = [MediaPacket(frame=f, ts_ns=ts, flow_id=int(flow_map[fl]), sender=s, receiver=d,
                       ssrc=int.from_bytes(data[8:12], "big"), rtcp=False, data=data, via_turn=via)
           for f, ts, fl, s, d, via, data in st.kept]
    for dg in st.datagrams[RTCP]:
        if len(dg.data) < 8:
            continue
        out.append(MediaPacket(frame=dg.frame, ts_ns=dg.ts_ns, flow_id=int(flow_map[dg.flow_id]),
                               sender=_ep(dg.src, dg.sport), receiver=_ep(dg.dst, dg.dport),
                               ssrc=int.from_bytes(dg.data[4:8], "big"), rtcp=True, data=dg.data,
                               via_turn=dg.via_turn))
    out.sort(key=lambda p: p.frame)
    return out, log
