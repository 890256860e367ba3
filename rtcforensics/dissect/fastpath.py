"""The media-plane fast path: one pass over a capture that hands a :class:`Dissection` to the table builders.

Per batch of records (``pcapio``) the common case — UDP over IPv4 or IPv6 without extension headers (behind
any supported link layer) carrying RTP, directly or inside TURN ChannelData, or carrying nothing of interest
— is taken with numpy: link offsets, IP and UDP headers, RFC 7983 class, RTP header columns. Every other
packet (STUN, DTLS, RTCP, ZRTP, Send/Data indications, IPv6 extension headers, fragments, TCP, anything
malformed) goes through the Python path below,
which handles the general case completely; the numpy path is only a shortcut for packets it can fully
decode.

Layers, one module each, composed by :class:`_Pass` (which holds the per-batch numpy path and UDP):
``iplayer`` link (Ethernet with 802.1Q / 802.1ad / QinQ tags, Linux cooked v1/v2, raw IPv4/IPv6, BSD
null/loopback) → IPv4 (fragment reassembly) / IPv6 (extension headers, fragments); ``tcpframing`` TCP;
``turn`` RFC 7983 filing and TURN unwrapping; ``rtpvec`` RTP header columns; shared state in
``passstate``.
TCP directions are reassembled in order (retransmissions dropped) and, when their first bytes show TURN-TCP
(RFC 8656 §12.5) or RFC 4571 framing, split into messages that are demultiplexed like UDP payloads; other
TCP (TLS, HTTP, WebSocket, SIP …) and UDP SIP are listed in ``control_frames`` for tshark.

A reassembled unit (IP fragments, a TCP-framed message) belongs to the frame where it completes, as in
Wireshark.
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from ..addr import endpoint
from ..anomalies import AnomalyLog
from . import demux
from .demux import (
    CLASSES,
    DTLS,
    OTHER,
    RTCP,
    RTP,
    SIP,
    STUN,
    STUN_MAGIC,
    TURN_CHANNEL,
    ZRTP,
    classify_array,
)
from .iplayer import ETH_IPV4, ETH_IPV6, IpLayer, _Frag, link_offsets
from .model import VIA, Datagrams, Dissection
from .passstate import (
    IP_PROTO_TRANSPORT,
    T_OTHER,
    T_SCTP,
    T_TCP,
    T_UDP,
    TRANSPORTS,
    V_CHANNEL,
    Ctx,
    be16,
    be32,
    first_of_codes,
    u8,
)
from .pcapio import Batch, CaptureReader, link_type_name
from .rtpvec import RtpColumns, corroborate, rtp_arrays
from .tcpframing import TcpFraming, _TcpDir
from .turn import STUN_CHANNELBIND_REQUEST, STUN_DATA_INDICATION, STUN_SEND_INDICATION, TurnUnwrap


def new_datagrams() -> dict[int, Datagrams]:
    """The pass's STUN / DTLS / RTCP / ZRTP messages, empty, by class (demux)."""
    return {STUN: Datagrams(), DTLS: Datagrams(), RTCP: Datagrams(), ZRTP: Datagrams()}


def _new_cols() -> dict[str, list[np.ndarray]]:
    """Per-batch packet columns for the `packets` frame (model.PACKET_COLUMNS)."""
    return {k: [] for k in _COLUMN_DTYPES}


class _Pass(IpLayer, TcpFraming, TurnUnwrap, RtpColumns):
    """One fast-path pass: the layers composed, the per-batch numpy path, UDP dispatch and the end of pass.

    Drive it with ``batch(b)`` for every ``pcapio`` batch, then ``finish()``; :func:`dissect` does that."""

    def __init__(self, path: str, log: AnomalyLog, strict: bool, keep_payloads: bool = False) -> None:
        self.path = path
        self.log = log
        self.strict = strict
        # keep every RTP packet's bytes (``payloads``): the vectorised RTP shortcut is then off
        self.keep_payloads = keep_payloads
        self.payloads = Datagrams()
        self.ips: dict[str, int] = {}
        self.ip_list: list[str] = []
        self.ip4_ids: dict[int, int] = {}
        self.ip6_ids: dict[bytes, int] = {}
        self.flow_ids: dict[int, int] = {}
        self.flow_first: list[int] = []
        # per-batch packet columns for the `packets` frame
        self.cols: dict[str, list[np.ndarray]] = _new_cols()
        self.rtp_fast: list[dict[str, np.ndarray]] = []
        self.rtp_slow: list[tuple[Any, ...]] = []
        self.samples: dict[tuple[int, int], list[bytes]] = {}
        self.datagrams: dict[int, Datagrams] = new_datagrams()
        self.control: list[int] = []
        self.tcp: dict[tuple[int, int, int], _TcpDir] = {}
        self.tcp_seen: list[tuple[np.ndarray, np.ndarray]] = []  # (flow ids, frames) of TCP packets
        self.tcp_slow: list[tuple[int, int]] = []
        self.websocket_flows: set[int] = set()
        self.tcp_openers: dict[int, tuple[int, int, int, int]] = {}
        self.frag_frames: tuple[int, ...] = ()
        self.frags: dict[tuple[Any, ...], _Frag] = {}
        self.dtls_flows: set[int] = set()
        self.channels: dict[tuple[int, int], str] = {}  # (flow, channel number) -> peer ip:port
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.n = 0
        # per-packet output of the current batch (written by the Python path)
        self._row: tuple[int, int, int, int, int, int, int, int] | None = None

    # -- one batch ----------------------------------------------------------------------------
    def batch(self, b: Batch) -> None:
        n = len(b)
        if n == 0:
            return
        arr = b.arr
        if self.first_ts is None:
            self.first_ts = int(b.ts_ns[0])
        self.last_ts = int(b.ts_ns[-1])
        self.n += n
        off, cap = b.off, b.caplen
        src = np.full(n, -1, dtype=np.int32)
        dst = np.full(n, -1, dtype=np.int32)
        sport = np.full(n, -1, dtype=np.int32)
        dport = np.full(n, -1, dtype=np.int32)
        transport = np.full(n, -1, dtype=np.int8)
        cls = np.full(n, OTHER, dtype=np.int8)
        via = np.full(n, -1, dtype=np.int8)
        flow = np.full(n, -1, dtype=np.int64)

        l3, et = link_offsets(arr, b)
        last = len(arr) - 1
        # ---- IPv4 (unfragmented) and IPv6 (no extension header), fully captured ----------------------
        v4 = (et == ETH_IPV4) & (cap >= l3 + 20)
        v6 = (et == ETH_IPV6) & (cap >= l3 + 48)
        i3 = np.where(v4 | v6, off + l3, 0)
        b0 = u8(arr, np.minimum(i3, last))
        ihl = np.where(v6, 40, (b0 & 0x0F) * 4)  # header length
        v4 &= ((b0 >> 4) == 4) & (ihl >= 20) & (cap >= l3 + ihl + 8)
        v4 &= (be16(arr, np.minimum(i3 + 6, last - 1)) & 0x3FFF) == 0  # not a fragment
        v6 &= (b0 >> 4) == 6
        ip = v4 | v6
        i3 = np.where(ip, i3, 0)
        proto = np.where(v6, u8(arr, np.minimum(i3 + 6, last)), u8(arr, np.minimum(i3 + 9, last)))
        udp = ip & (proto == 17)
        i4 = np.where(udp, i3 + ihl, 0)
        ulen = be16(arr, np.minimum(i4 + 4, last - 1))
        udp &= (ulen >= 8) & (l3 + ihl + ulen <= cap)
        # IPv6: the UDP datagram is the whole payload (a jumbogram or padding goes the long way)
        udp &= ~v6 | (be16(arr, np.minimum(i3 + 4, last - 1)) == ulen)
        idx = np.flatnonzero(udp)
        fast = np.zeros(n, dtype=bool)  # row fully filled here
        dgcls = np.full(n, -1, dtype=np.int8)  # media datagram to file in the loop below (UDP payload known)
        pay_off = np.zeros(n, dtype=np.int64)
        pay_len = np.zeros(n, dtype=np.int64)
        rtp_args = None
        if len(idx):
            i4u = i4[idx]
            po = i4u + 8
            plen = ulen[idx] - 8
            sp = be16(arr, i4u)
            dp = be16(arr, i4u + 2)
            c = classify_array(arr, po, plen)
            notmedia = np.isin(sp, list(demux.NOT_MEDIA_UDP_PORTS)) | np.isin(
                dp, list(demux.NOT_MEDIA_UDP_PORTS)
            )
            # a well-known port, unless the content is STUN with its magic cookie (TURN servers listen on
            # 53 and 123; SIP user agents send STUN keepalives on their SIP flow, RFC 5626 §4.4.1)
            stun_ok = c == STUN
            stun_ok[stun_ok] = be32(arr, po[stun_ok] + 4) == STUN_MAGIC
            sip = (np.isin(sp, list(demux.SIP_PORTS)) | np.isin(dp, list(demux.SIP_PORTS))) & ~stun_ok
            if notmedia.any():
                c = np.where(notmedia & ~stun_ok, OTHER, c)
            # RTP directly in UDP, or inside ChannelData
            rtp_po = po.copy()
            rtp_len = plen.copy()
            v = np.full(len(idx), -1, dtype=np.int8)
            ch = (c == TURN_CHANNEL) & ~sip
            if ch.any():
                cidx = np.flatnonzero(ch)
                clen = be16(arr, po[cidx] + 2)
                inner = classify_array(arr, po[cidx] + 4, clen)
                ok = inner == RTP
                rtp_po[cidx[ok]] += 4
                rtp_len[cidx[ok]] = clen[ok]
                v[cidx[ok]] = V_CHANNEL
            cand = ((c == RTP) | (v == V_CHANNEL)) & ~sip
            rtp_ok, hdr, padlen = self._rtp_fits(arr, rtp_po, rtp_len, cand & (not self.keep_payloads))
            # STUN / DTLS / RTCP / ZRTP straight in UDP: the loop below only files the Datagram; TURN
            # Send/Data indications and ChannelBind requests take the full path (they are unwrapped)
            mtype = be16(arr, po)
            dg = ~sip & (
                (
                    (c == STUN)
                    & ~np.isin(mtype, (STUN_SEND_INDICATION, STUN_DATA_INDICATION, STUN_CHANNELBIND_REQUEST))
                )
                | (c == DTLS)
                | (c == RTCP)
                | (c == ZRTP)
            )
            take = ~sip & ((c == OTHER) | rtp_ok)
            rows = take | dg
            t_idx = idx[rows]
            fast[idx[take]] = True
            dgcls[idx[dg]] = c[dg]
            pay_off[idx[dg]] = po[dg]
            pay_len[idx[dg]] = plen[dg]
            src[t_idx], dst[t_idx] = self._ip_ids(arr, i3[t_idx], v6[t_idx])
            sport[t_idx] = sp[rows]
            dport[t_idx] = dp[rows]
            transport[t_idx] = T_UDP
            cls[t_idx] = np.where(rtp_ok[rows], RTP, OTHER)
            via[t_idx] = np.where(rtp_ok[rows], v[rows], -1)
            flow[t_idx] = self._flows_vec(
                T_UDP, src[t_idx], sport[t_idx], dst[t_idx], dport[t_idx], b.frame[t_idx]
            )
            r = np.flatnonzero(rtp_ok)
            if len(r):
                rtp_args = (idx[r], rtp_po[r], rtp_len[r], hdr[r], padlen[r], v[r])
        # ---- TCP of directions already known to be control plane ------------------------------------
        tcp = ip & (proto == 6) & (cap >= l3 + ihl + 20)
        tidx = np.flatnonzero(tcp)
        tcp_j = np.full(n, -1, dtype=np.int64)  # index into the TCP arrays, for the loop's quick check
        if len(tidx):
            t4 = i3[tidx] + ihl[tidx]
            doff = (u8(arr, t4 + 12) >> 4) * 4
            good = (doff >= 20) & (l3[tidx] + ihl[tidx] + doff <= cap[tidx])
            tidx, t4 = tidx[good], t4[good]
            s_id, d_id = self._ip_ids(arr, i3[tidx], v6[tidx])
            sp, dp = be16(arr, t4), be16(arr, t4 + 2)
            fl = self._flows_vec(T_TCP, s_id, sp, d_id, dp, b.frame[tidx])
            kc = self.known_control_class(fl, s_id, sp, d_id, dp)
            known = kc >= 0
            tcp_j[tidx[~known]] = np.flatnonzero(~known)
            k_idx = tidx[known]
            fast[k_idx] = True
            src[k_idx], dst[k_idx] = s_id[known], d_id[known]
            sport[k_idx], dport[k_idx] = sp[known], dp[known]
            transport[k_idx] = T_TCP
            cls[k_idx] = kc[known]
            flow[k_idx] = fl[known]
            self.tcp_seen.append((fl[known], b.frame[k_idx]))
        if rtp_args is not None:
            pk = rtp_args[0]
            self._rtp_columns(arr, b, pk, *rtp_args[1:], flow[pk])
        # ---- everything else, one packet at a time ----------------------------------------------
        buf = b.buf
        view = memoryview(buf)  # payloads go into the Datagrams without a bytes object of their own
        dlists = self.datagrams
        ips = self.ip_list
        frames, tss = b.frame, b.ts_ns
        tcp_ctl_f: list[int] = []
        tcp_ctl_i: list[int] = []
        for i in np.flatnonzero(~fast).tolist():
            c0 = int(dgcls[i])
            if c0 >= 0:  # a media datagram whose headers were read above
                fl0 = int(flow[i])
                po0 = int(pay_off[i])
                data = view[po0 : po0 + int(pay_len[i])]
                if c0 == DTLS and not self._dtls_ok(fl0, bytes(data)):
                    cls[i] = OTHER
                    continue
                dlists[c0].add(
                    int(frames[i]),
                    int(tss[i]),
                    fl0,
                    ips[src[i]],
                    int(sport[i]),
                    ips[dst[i]],
                    int(dport[i]),
                    "udp",
                    data,
                )
                cls[i] = c0
                continue
            j = int(tcp_j[i])
            if j >= 0:  # TCP: a direction that became known as control plane earlier in this batch
                fl0 = int(fl[j])
                c1 = self.control_class(fl0, int(s_id[j]), int(sp[j]))
                if c1 >= 0:
                    src[i], dst[i], sport[i], dport[i] = s_id[j], d_id[j], sp[j], dp[j]
                    transport[i], flow[i] = T_TCP, fl0
                    cls[i] = c1
                    tcp_ctl_f.append(fl0)
                    tcp_ctl_i.append(i)
                    continue
            o = int(off[i])
            pkt = buf[o : o + int(cap[i])]
            self._row = None
            self.packet(int(frames[i]), int(tss[i]), pkt, int(l3[i]), int(et[i]), int(b.linktype[i]))
            if self._row is not None:
                src[i], sport[i], dst[i], dport[i], transport[i], cls[i], via[i], flow[i] = self._row
        if tcp_ctl_i:
            self.tcp_seen.append((np.array(tcp_ctl_f, dtype=np.int64), frames[np.array(tcp_ctl_i)]))
        c_ = self.cols
        c_["frame"].append(b.frame)  # zero-length records have no row: frames may skip
        c_["ts_ns"].append(b.ts_ns)
        c_["src"].append(src)
        c_["sport"].append(sport)
        c_["dst"].append(dst)
        c_["dport"].append(dport)
        c_["transport"].append(transport)
        c_["length"].append(b.origlen.astype(np.int32))
        c_["cls"].append(cls)
        c_["via"].append(via)
        c_["flow"].append(flow.astype(np.int32))  # provisional ids (renumbered at the end)

    def _flows_vec(
        self,
        transport: int,
        src: np.ndarray,
        sport: np.ndarray,
        dst: np.ndarray,
        dport: np.ndarray,
        frames: np.ndarray,
    ) -> np.ndarray:
        ea = (src.astype(np.int64) << 16) | sport
        eb = (dst.astype(np.int64) << 16) | dport
        lo, hi = np.minimum(ea, eb), np.maximum(ea, eb)
        if len(self.ip_list) < (1 << 15):  # both endpoints fit in 31 bits: one int64 key, hashed
            codes, _ = pd.factorize((lo << 31) | hi)
            first = first_of_codes(codes)
            inv = codes
        else:
            pair = np.empty(len(lo), dtype=[("lo", np.int64), ("hi", np.int64)])
            pair["lo"], pair["hi"] = lo, hi
            _, first, inv = np.unique(pair, return_index=True, return_inverse=True)
            inv = inv.reshape(-1)
        ids = np.empty(len(first), dtype=np.int64)
        for k, f0 in enumerate(first.tolist()):
            lo_k, hi_k = int(lo[f0]), int(hi[f0])
            ids[k] = self.flow(
                transport, lo_k >> 16, lo_k & 0xFFFF, hi_k >> 16, hi_k & 0xFFFF, int(frames[f0])
            )
        return ids[inv]

    # -- the general path -----------------------------------------------------------------------
    def transport(self, frame: int, ts: int, src: int, dst: int, proto: int, seg: bytes) -> None:
        if proto == 17:
            if len(seg) < 8:
                self.anomaly("udp", "udp_truncated", "UDP header is truncated", frame=frame, ts_ns=ts)
                self._set_row(src, -1, dst, -1, T_UDP, OTHER, -1, -1)
                return
            sport, dport, ulen = struct.unpack_from("!HHH", seg)
            fl = self.flow(T_UDP, src, sport, dst, dport, frame)
            if ulen < 8:
                self.anomaly(
                    "udp",
                    "udp_length_invalid",
                    f"UDP length {ulen} is less than 8",
                    frame=frame,
                    ts_ns=ts,
                    flow_id=fl,
                )
                ulen = len(seg)
            elif ulen > len(seg):
                self.anomaly(
                    "udp",
                    "udp_truncated",
                    f"UDP datagram of {ulen} bytes captured with only {len(seg)}",
                    frame=frame,
                    ts_ns=ts,
                    flow_id=fl,
                )
                ulen = len(seg)
            payload = seg[8:ulen]
            if (sport in demux.SIP_PORTS or dport in demux.SIP_PORTS) and not demux.stun_by_content(payload):
                self.control.extend(self.frag_frames or (frame,))  # tshark needs every fragment
                self._set_row(src, sport, dst, dport, T_UDP, SIP, -1, fl)
                return
            if (
                sport in demux.NOT_MEDIA_UDP_PORTS or dport in demux.NOT_MEDIA_UDP_PORTS
            ) and not demux.stun_by_content(payload):
                self._set_row(src, sport, dst, dport, T_UDP, OTHER, -1, fl)
                return
            ctx = Ctx(frame, ts, fl, src, sport, dst, dport, "udp")
            c, v = self.media(ctx, payload)
            self._set_row(src, sport, dst, dport, T_UDP, c, v, fl)
        elif proto == 6:
            self.tcp_segment(frame, ts, src, dst, seg)
        else:
            t = IP_PROTO_TRANSPORT.get(proto, T_OTHER)
            sp = dp = -1
            if t == T_SCTP and len(seg) >= 4:
                sp, dp = struct.unpack_from("!HH", seg)
            fl = self.flow(t, src, max(sp, 0), dst, max(dp, 0), frame)
            self._set_row(src, sp, dst, dp, t, OTHER, -1, fl)

    # -- end of pass ----------------------------------------------------------------------------
    def finish(self) -> None:
        self.finish_fragments()
        self.finish_tcp()


# --------------------------------------------------------------------------------------------------
def _progress_bar(progress: bool | None, total: int) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    # None: show only when the load takes longer than about a second
    return tqdm(
        total=total, unit="B", unit_scale=True, desc="dissecting", delay=0 if progress else 1.0, leave=False
    )


def _tshark_version() -> str | None:
    try:
        from . import tshark  # owned by the signalling engineer; optional here
    except ImportError:
        return None
    fn = getattr(tshark, "tshark_version", None)
    if fn is None:
        return None
    try:
        return fn()
    except Exception:
        return None


def dissect(
    path: str | os.PathLike[str] | BinaryIO,
    progress: bool | None = None,
    strict: bool = False,
    keep_payloads: bool = False,
    max_inflated: int | None = None,
    max_packets: int | None = None,
) -> Dissection:
    """Read ``path`` once and return the media-plane :class:`Dissection` (see module docstring).

    ``path``: a capture file, ``"-"`` (standard input) or a binary file object (read once, no seeking).
    ``keep_payloads``: also keep every RTP packet with its bytes in ``Dissection.rtp_payloads`` (for
    decryption; slower: RTP then takes the per-packet path). ``max_inflated``: bytes a gzip-compressed
    capture may inflate to (``pcapio.MAX_INFLATED`` when None); beyond, an anomaly and the packets read.
    ``max_packets``: read at most that many packets (a ``packet_limit`` anomaly and ``info["truncated"]``
    when the capture holds more; zero-length records do not count, have no row and are counted in
    ``info["empty_records"]``). Everything is held in memory: for captures too large for that, see
    ``dissect.stream``."""
    log = AnomalyLog()
    reader = CaptureReader(path, log, strict=strict, max_inflated=max_inflated, max_packets=max_packets)
    path = str(reader.path)
    version: list[str | None] = []
    vthread = threading.Thread(target=lambda: version.append(_tshark_version()), daemon=True)
    vthread.start()  # `tshark -v` takes a few hundred ms: run it while the capture is read
    st = _Pass(str(path), log, strict, keep_payloads=keep_payloads)
    bar = _progress_bar(progress, reader.size)
    done = 0
    try:
        batches = reader.batches()
        while (b := next(batches, None)) is not None:
            st.batch(b)
            if bar is not None:
                bar.update(b.progress_bytes - done)
                done = b.progress_bytes
            del b  # let the reader release this chunk before it reads the next
    finally:
        if bar is not None:
            bar.close()
    st.finish()
    st.flow_ids.clear()  # the pass is over: the 5-tuple index (~100 bytes a flow) goes before the columns join
    flow_map = _flow_renumbering(st)
    columns = _packet_columns(st, flow_map)
    rtp = rtp_arrays(st, flow_map)
    for lst in (*st.datagrams.values(), st.payloads):
        lst.renumber_flows(flow_map)
    samples = {(int(flow_map[f]), s): v for (f, s), v in st.samples.items()}
    for row in log.rows:
        if row["flow_id"] is not None and row["flow_id"] >= 0:
            row["flow_id"] = int(flow_map[row["flow_id"]])
    rtp = _corroborate_rtp(rtp, columns, samples, st.payloads, log)
    info = file_info(reader, st, _join(vthread, version))
    return Dissection(
        path=str(path),
        info=info,
        columns=columns,
        addresses=st.ip_list,
        stun=st.datagrams[STUN],
        dtls=st.datagrams[DTLS],
        rtcp=st.datagrams[RTCP],
        zrtp=st.datagrams[ZRTP],
        rtp=rtp,
        rtp_samples=samples,
        control_frames=np.array(sorted(set(st.control)), dtype=np.int64),
        anomalies=log,
        rtp_payloads=st.payloads,
        tcp_openers=_openers(st, flow_map),
    )


def file_info(reader: CaptureReader, st: _Pass, tshark_version: str | None) -> dict[str, Any]:
    """``Dissection.info``: what the pass learnt of the file itself (after the whole read)."""
    return {
        "path": str(reader.path),
        "sha256": reader.sha256(),
        "size": reader.size,
        "format": reader.format,
        "compressed": reader.compressed,
        "link_types": [link_type_name(t) for t in reader.link_types],
        "packets": st.n,  # rows of `packets`: records with bytes
        "records": reader.records,  # Wireshark's frame count (zero-length records included)
        "empty_records": reader.empty_records,
        "first_ts": _ts(st.first_ts),
        "last_ts": _ts(st.last_ts),
        "tshark_version": tshark_version,
        "decryption_secrets": reader.secrets,
        "truncated": reader.truncated,
    }


def _join(t: threading.Thread, out: list[str | None]) -> str | None:
    t.join(timeout=30)
    return out[0] if out else None


def _ts(ns: int | None) -> Any:
    import pandas as pd

    return None if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC")


def _flow_renumbering(st: _Pass) -> np.ndarray:
    """Provisional flow ids → final ids numbered by first appearance (frame order)."""
    first = np.asarray(st.flow_first, dtype=np.int64)
    order = np.argsort(first, kind="stable")
    m = np.empty(len(first) + 1, dtype=np.int64)
    m[order] = np.arange(len(first))
    m[-1] = -1  # provisional -1 (no flow) stays -1
    return m


def _openers(st: _Pass, flow_map: np.ndarray) -> dict[int, tuple[str, str]]:
    """TCP flow id → (client, server) endpoints, for connections whose SYN is in the capture."""
    ips = st.ip_list
    out = {}
    for fl, (s, sp, d, dp) in st.tcp_openers.items():
        c, v = endpoint(ips[s], sp), endpoint(ips[d], dp)
        if c is not None and v is not None:
            out[int(flow_map[fl])] = (c, v)
    return out


def _corroborate_rtp(
    rtp: dict[str, np.ndarray],
    columns: dict[str, np.ndarray],
    samples: dict[tuple[int, int], list[bytes]],
    payloads: Datagrams,
    log: AnomalyLog,
) -> dict[str, np.ndarray]:
    """Keep as RTP only the candidates ``rtpvec.corroborate`` accepts; the others become `other` (or
    `turn_channel` inside ChannelData) in the packet columns, with one anomaly row per flow saying why."""
    keep, rejected = corroborate(rtp)
    return _drop_uncorroborated(rtp, keep, rejected, columns, samples, payloads, log)


def _drop_uncorroborated(
    rtp: dict[str, np.ndarray],
    keep: np.ndarray,
    rejected: list[tuple[int, int, int, int]],
    columns: dict[str, np.ndarray],
    samples: dict[tuple[int, int], list[bytes]],
    payloads: Datagrams | None,
    log: AnomalyLog,
) -> dict[str, np.ndarray]:
    """The RTP rows ``keep`` says; the rejected groups' packets become `other` (or `turn_channel`) in
    ``columns`` (rows found by their frame number), their samples and payloads go, one anomaly row per flow."""
    if not rejected:
        return rtp
    frames = columns["frame"]
    gone = rtp["frame"][~keep]
    rows = np.minimum(np.searchsorted(frames, gone), max(len(frames) - 1, 0))
    rows = rows[frames[rows] == gone] if len(frames) else rows[:0]
    cls = columns["cls"]
    sel = rows[cls[rows] == RTP]
    cls[sel] = np.where(columns["via"][sel] == V_CHANNEL, TURN_CHANNEL, OTHER)
    out = {k: v[keep] for k, v in rtp.items()}
    bad = {(f, s) for f, s, _n, _fr in rejected}
    for key in bad:
        samples.pop(key, None)
    if payloads:
        payloads.retain([(dg.flow_id, int.from_bytes(dg.data[8:12], "big")) not in bad for dg in payloads])
    per_flow: dict[int, list[tuple[int, int, int, int]]] = {}
    for g in rejected:
        per_flow.setdefault(g[0], []).append(g)
    for fl, groups in per_flow.items():
        n = sum(g[2] for g in groups)
        first = min(g[3] for g in groups)
        log.add(
            "rtp",
            "rtp_uncorroborated",
            f"{n} packet(s) with {len(groups)} SSRC(s) look like RTP by their first byte but show no stable "
            f"SSRC with sequence and timestamp continuity: classed other",
            frame=first,
            flow_id=fl,
        )
    return out


_COLUMN_DTYPES = {
    "frame": np.int64,
    "ts_ns": np.int64,
    "src": np.int32,
    "sport": np.int32,
    "dst": np.int32,
    "dport": np.int32,
    "transport": np.int8,
    "length": np.int32,
    "cls": np.int8,
    "via": np.int8,
    "flow": np.int64,
}


def _packet_columns(st: _Pass, flow_map: np.ndarray | None) -> dict[str, np.ndarray]:
    """Join the per-batch packet columns (model.PACKET_COLUMNS); the per-batch arrays are released as they are
    joined and flow ids are renumbered to their final values (kept provisional when ``flow_map`` is None)."""
    cols = st.cols
    out: dict[str, np.ndarray] = {}
    for name, dt in _COLUMN_DTYPES.items():
        parts = cols.pop(name)
        if not parts:
            out[name] = np.zeros(0, dtype=dt)
        else:
            out[name] = (parts[0] if len(parts) == 1 else np.concatenate(parts)).astype(dt, copy=False)
    if flow_map is not None:
        flow = out["flow"]
        out["flow"] = flow_map[np.where(flow < 0, len(flow_map) - 1, flow)]
    return out


__all__ = ["CLASSES", "TRANSPORTS", "VIA", "dissect", "link_offsets"]
