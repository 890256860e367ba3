"""Fast-path layer: RTP header columns. The vectorised path reads the headers of every RTP packet of a batch
that it can fully decode (numpy); the others go through ``decode_rtp`` one at a time (which names the
problem). Both write the same columns (:data:`RTP_COLUMNS`), joined in frame order at the end of the pass,
and keep a few payloads per (flow, SSRC) as plaintext evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DecodeError
from .passstate import Ctx, PassState, be16, be32, first_of_codes, u8
from .pcapio import Batch
from .rtp import decode_rtp

RTP_SAMPLES_PER_STREAM = 16

# numpy RTP columns (name, dtype)
RTP_COLUMNS = (
    ("frame", np.int64),
    ("ts_ns", np.int64),
    ("flow_id", np.int64),
    ("ssrc", np.uint32),
    ("seq", np.uint16),
    ("rtp_ts", np.uint32),
    ("pt", np.uint8),
    ("marker", np.bool_),
    ("version", np.uint8),
    ("padding", np.bool_),
    ("extension", np.bool_),
    ("csrc_count", np.uint8),
    ("ext_profile", np.int32),
    ("payload_len", np.int32),
    ("length", np.int32),
    ("via_turn", np.int8),
)


class RtpColumns(PassState):
    """RTP packets → header columns (vectorised when possible) and payload samples."""

    def _rtp_fits(
        self, arr: np.ndarray, po: np.ndarray, plen: np.ndarray, cand: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which candidate RTP packets have a complete header (CSRCs, extension, padding): these the numpy
        path decodes; the others go to decode_rtp, which names the problem."""
        last = len(arr) - 1
        b0 = u8(arr, np.where(cand, po, 0))
        cc = b0 & 0x0F
        hdr = 12 + 4 * cc
        ok = cand & (plen >= 12) & (hdr <= plen)
        has_x = ok & ((b0 & 0x10) != 0)
        xi = np.where(has_x & (hdr + 4 <= plen), po + hdr + 2, 0)
        xlen = np.where(has_x, be16(arr, np.minimum(xi, last - 1)) * 4 + 4, 0)
        ok &= ~has_x | (hdr + 4 <= plen)
        hdr = hdr + xlen
        ok &= hdr <= plen
        has_p = ok & ((b0 & 0x20) != 0)
        padlen = np.where(has_p, u8(arr, np.where(has_p, po + plen - 1, 0)), 0)
        padlen = np.where(
            hdr + padlen <= plen, padlen, 0
        )  # as decode_rtp: a count that does not fit = unknown
        return ok, hdr, padlen

    def _rtp_columns(
        self,
        arr: np.ndarray,
        b: Batch,
        pk: np.ndarray,
        po: np.ndarray,
        plen: np.ndarray,
        hdr: np.ndarray,
        padlen: np.ndarray,
        v: np.ndarray,
        flow: np.ndarray,
    ) -> None:
        b0 = arr[po]
        b1 = arr[po + 1]
        cc = b0 & 0x0F
        has_x = (b0 & 0x10) != 0
        xi = np.where(has_x, po + 12 + 4 * cc.astype(np.int64), 0)
        ssrc = be32(arr, po + 8).astype(np.uint32)
        cols = {
            "frame": b.frame[pk],
            "ts_ns": b.ts_ns[pk],
            "flow_id": flow,
            "ssrc": ssrc,
            "seq": be16(arr, po + 2).astype(np.uint16),
            "rtp_ts": be32(arr, po + 4).astype(np.uint32),
            "pt": (b1 & 0x7F).astype(np.uint8),
            "marker": (b1 & 0x80) != 0,
            "version": (b0 >> 6).astype(np.uint8),
            "padding": (b0 & 0x20) != 0,
            "extension": has_x,
            "csrc_count": cc.astype(np.uint8),
            "ext_profile": np.where(has_x, be16(arr, xi), -1).astype(np.int32),
            "payload_len": (plen - hdr - padlen).astype(np.int32),
            "length": plen.astype(np.int32),
            "via_turn": v,
        }
        self.rtp_fast.append(cols)
        # payload samples for plaintext evidence: the first packets of each (flow, ssrc)
        key = (flow.astype(np.int64) << 32) | ssrc.astype(np.int64)
        codes, uniq = pd.factorize(key)
        first = first_of_codes(codes)
        buf = b.buf
        for k, f0 in zip(uniq.tolist(), first.tolist()):
            sk = (k >> 32, k & 0xFFFFFFFF)
            have = self.samples.setdefault(sk, [])
            need = RTP_SAMPLES_PER_STREAM - len(have)
            if need <= 0:
                continue
            sel = np.flatnonzero(key[f0:] == k)[:need] + f0
            for j in sel.tolist():
                p = int(po[j])
                have.append(bytes(buf[p : p + int(plen[j])]))

    def rtp_packet(
        self, ctx: Ctx, data: bytes, via: int, channel: int | None = None, peer: str | None = None
    ) -> bool:
        if self.keep_payloads and len(data) >= 12:
            self.keep(self.payloads, ctx, data, via, channel, peer)
        try:
            p = decode_rtp(data)
        except DecodeError as e:
            self.anomaly("rtp", e.name, e.detail, frame=ctx.frame, ts_ns=ctx.ts, flow_id=ctx.flow)
            return False
        self.rtp_slow.append(
            (
                ctx.frame,
                ctx.ts,
                ctx.flow,
                p.ssrc,
                p.sequence_number,
                p.timestamp,
                p.payload_type,
                p.marker,
                p.version,
                p.padding,
                p.extension,
                len(p.csrc),
                -1 if p.extension_profile is None else p.extension_profile,
                len(p.payload),
                len(data),
                via,
            )
        )
        have = self.samples.setdefault((ctx.flow, p.ssrc), [])
        if len(have) < RTP_SAMPLES_PER_STREAM:
            have.append(bytes(data))
        return True


def rtp_arrays(st: RtpColumns, flow_map: np.ndarray | None) -> dict[str, np.ndarray]:
    """Join the per-batch RTP columns (numpy path, then Python path) in frame order; the per-batch
    arrays are released column by column as they are joined."""
    parts = st.rtp_fast
    if st.rtp_slow:
        cols = list(zip(*st.rtp_slow))
        parts.append({name: np.asarray(cols[k], dtype=dt) for k, (name, dt) in enumerate(RTP_COLUMNS)})
        st.rtp_slow = []
    if not parts:
        return {name: np.zeros(0, dtype=dt) for name, dt in RTP_COLUMNS}
    out = {}
    for name, dt in RTP_COLUMNS:
        out[name] = np.concatenate([p.pop(name) for p in parts]).astype(dt, copy=False)
    st.rtp_fast = []
    if len(parts) > 1 and not (np.diff(out["frame"]) >= 0).all():  # Python-path rows interleave
        order = np.argsort(out["frame"], kind="stable")
        for k in list(out):
            out[k] = out[k][order]
    if flow_map is not None:  # None: provisional ids kept (the streaming pass maps them itself)
        out["flow_id"] = flow_map[out["flow_id"]]
    return out


# A first byte of 128..191 makes a candidate; RTP is claimed only for a stream that shows it (issue: QUIC,
# proprietary UDP and random datagrams must not become RTP streams of one packet).
RTP_MIN_PACKETS = 2
RTP_SEQ_WINDOW = 1000  # |seq step| that still counts as the same stream (loss, reordering)
RTP_TS_WINDOW = 1 << 24  # |timestamp step| likewise (~3 min at 90 kHz)


def corroborate(
    rtp: dict[str, np.ndarray],
    prior: dict[str, np.ndarray] | None = None,
    accepted_ssrcs: np.ndarray | None = None,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Which RTP candidates are RTP: a (flow, SSRC) with at least :data:`RTP_MIN_PACKETS` packets of which
    at least half follow their predecessor with a small sequence step and a small timestamp step, or whose
    SSRC is corroborated that way on another flow (a stream that moved). Returns the mask of packets kept and
    the rejected (flow, ssrc, packets, first frame) groups.

    Streaming (``dissect.stream``): ``prior`` holds what earlier chunks showed of each group
    (:func:`rtp_group_stats`), counted as if those packets were here; ``accepted_ssrcs`` are SSRCs already
    corroborated."""
    n = len(rtp["ssrc"])
    if n == 0:
        return np.ones(0, dtype=bool), []
    g = rtp_group_stats(rtp, prior)
    counts, good_steps, g_ssrc, real = g["count"], g["good"], g["ssrc"], g["rows"] > 0
    ok = (counts >= RTP_MIN_PACKETS) & (2 * good_steps >= counts - 1)
    ok |= np.isin(g_ssrc, g_ssrc[ok & real] if prior is not None else g_ssrc[ok])
    if accepted_ssrcs is not None and len(accepted_ssrcs):
        ok |= np.isin(g_ssrc, accepted_ssrcs)
    keep = np.empty(n, dtype=bool)
    keep[g["order"]] = np.repeat(ok[real], g["rows"][real])
    rejected = []
    if not ok[real].all():
        for k in np.flatnonzero(~ok & real).tolist():
            rejected.append(
                (int(g["flow_id"][k]), int(g_ssrc[k]), int(g["rows"][k]), int(g["first_frame"][k]))
            )
    return keep, rejected


def rtp_group_stats(
    rtp: dict[str, np.ndarray], prior: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Per (flow, SSRC) group of ``rtp`` (plus the groups of ``prior``, earlier packets of a stream summed up
    by this function before): flow_id, ssrc, count, good (steps with small sequence and timestamp steps), seq
    and rtp_ts of the last packet, rows (packets in ``rtp``), first_frame (in ``rtp``, -1 when none);
    ``order`` sorts ``rtp``'s rows by group, capture order inside each (groups of ``prior`` come first)."""
    flow = rtp["flow_id"].astype(np.int64)
    ssrc = rtp["ssrc"].astype(np.int64)
    seq = rtp["seq"].astype(np.int64)
    ts = rtp["rtp_ts"].astype(np.int64)
    frame = rtp["frame"].astype(np.int64)
    m = 0
    if prior is not None and len(prior["ssrc"]):
        m = len(prior["ssrc"])  # one pseudo-row per earlier group: its last packet, before this chunk's
        flow = np.concatenate([prior["flow_id"].astype(np.int64), flow])
        ssrc = np.concatenate([prior["ssrc"].astype(np.int64), ssrc])
        seq = np.concatenate([prior["seq"].astype(np.int64), seq])
        ts = np.concatenate([prior["rtp_ts"].astype(np.int64), ts])
        frame = np.concatenate([np.full(m, -1, dtype=np.int64), frame])
    n = len(ssrc)
    key = (flow << 32) | ssrc
    order = np.argsort(key, kind="stable")  # groups together, capture order inside each
    k = key[order]
    seq, ts, frame = seq[order], ts[order], frame[order]
    same = np.zeros(n, dtype=bool)
    same[1:] = k[1:] == k[:-1]
    ds = np.zeros(n, dtype=np.int64)
    dts = np.zeros(n, dtype=np.int64)
    ds[1:] = (seq[1:] - seq[:-1]) % 65536
    dts[1:] = (ts[1:] - ts[:-1]) % (1 << 32)
    cont = (
        same
        & (((ds >= 1) & (ds <= RTP_SEQ_WINDOW)) | (ds >= 65536 - RTP_SEQ_WINDOW))
        & ((dts <= RTP_TS_WINDOW) | (dts >= (1 << 32) - RTP_TS_WINDOW))
    )
    starts = np.flatnonzero(~same)
    counts = np.diff(np.append(starts, n))
    good = np.add.reduceat(cont.astype(np.int64), starts) if n else np.zeros(0, dtype=np.int64)
    ends = np.append(starts[1:], n) - 1
    pseudo = order < m  # the prior rows
    rows = counts - np.add.reduceat(pseudo.astype(np.int64), starts) if n else counts
    real_first = np.where(pseudo, np.iinfo(np.int64).max, frame)
    first_frame = np.minimum.reduceat(real_first, starts) if n else np.zeros(0, dtype=np.int64)
    first_frame = np.where(rows > 0, first_frame, -1)
    total = rows.copy()
    if m:
        pidx = order[starts] < m  # a group's pseudo-row sorts first (prior rows come before this chunk's)
        pc = np.zeros(len(starts), dtype=np.int64)
        pg = np.zeros(len(starts), dtype=np.int64)
        pc[pidx] = prior["count"][order[starts][pidx]]  # type: ignore[index]
        pg[pidx] = prior["good"][order[starts][pidx]]  # type: ignore[index]
        total += pc
        good = good + pg
    return {
        "flow_id": k[starts] >> 32,
        "ssrc": k[starts] & 0xFFFFFFFF,
        "count": total,
        "good": good,
        "seq": seq[ends],
        "rtp_ts": ts[ends],
        "rows": rows,
        "first_frame": first_frame,
        "order": order[order >= m] - m if m else order,
    }
