"""The media-plane fast path: one pass over a capture that hands a :class:`Dissection` to the table builders.

Per batch of records (``pcapio``) the common case — UDP over IPv4 or IPv6 without extension headers (behind
any supported link layer) carrying RTP, directly or inside TURN ChannelData, or carrying nothing of interest
— is taken with numpy: link offsets, IP and UDP headers, RFC 7983 class, RTP header columns. Every other
packet (STUN, DTLS, RTCP, ZRTP, Send/Data indications, IPv6 extension headers, fragments, TCP, anything
malformed) goes through the Python path below,
which handles the general case completely; the numpy path is only a shortcut for packets it can fully
decode.

Layers: link (Ethernet with 802.1Q / 802.1ad / QinQ tags, Linux cooked v1/v2, raw IPv4/IPv6, BSD
null/loopback) → IPv4 (fragment reassembly) / IPv6 (extension headers, fragments) → UDP / TCP.
TCP directions are reassembled in order (retransmissions dropped) and, when their first bytes show TURN-TCP
(RFC 8656 §12.5) or RFC 4571 framing, split into messages that are demultiplexed like UDP payloads; other
TCP (TLS, HTTP, WebSocket, SIP …) and UDP SIP are listed in ``control_frames`` for tshark.

A reassembled unit (IP fragments, a TCP-framed message) belongs to the frame where it completes, as in
Wireshark.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..anomalies import AnomalyLog
from ..errors import DecodeError
from . import demux
from .demux import (
    CLASSES,
    DTLS,
    HTTP,
    OTHER,
    RTCP,
    RTP,
    SIP,
    STUN,
    TCP_DECIDE_BYTES,
    TLS,
    TURN_CHANNEL,
    WEBSOCKET,
    ZRTP,
    classify,
    classify_array,
    tcp_kind,
)
from .model import Datagram, Dissection
from .pcapio import Batch, CaptureReader, link_type_name
from .rtp import decode_rtp
from .stun import AttrType, StunClass, StunMethod, message_type, walk_attributes, xor_address

TRANSPORTS = ("udp", "tcp", "sctp", "icmp", "icmpv6", "other")
T_UDP, T_TCP, T_SCTP, T_ICMP, T_ICMP6, T_OTHER = range(len(TRANSPORTS))
IP_PROTO_TRANSPORT = {17: T_UDP, 6: T_TCP, 132: T_SCTP, 1: T_ICMP, 58: T_ICMP6}
VIA = ("channel", "data_indication", "send_indication")  # codes 0..2; -1 = not via TURN
V_CHANNEL, V_DATA, V_SEND = range(3)
VIA_CODE = {name: i for i, name in enumerate(VIA)}

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
IPV6_EXT = {0, 43, 60, 135, 139, 140}  # hop-by-hop, routing, dest options, mobility, HIP, shim6

STUN_SEND_INDICATION = message_type(StunMethod.SEND, StunClass.INDICATION)  # 0x0016
STUN_DATA_INDICATION = message_type(StunMethod.DATA, StunClass.INDICATION)  # 0x0017
STUN_CHANNELBIND_REQUEST = message_type(StunMethod.CHANNEL_BIND, StunClass.REQUEST)  # 0x0009
ATTR_XOR_PEER_ADDRESS, ATTR_DATA, ATTR_CHANNEL_NUMBER = (int(AttrType.XOR_PEER_ADDRESS), int(AttrType.DATA),
                                                         int(AttrType.CHANNEL_NUMBER))
STUN_MAGIC_BYTES = b"\x21\x12\xa4\x42"

RTP_SAMPLES_PER_STREAM = 16
TCP_MAX_PENDING = 64  # out-of-order segments held per direction before giving up on the gap
MAX_FRAG_BUFFERS = 4096

# numpy RTP columns (name, dtype)
RTP_COLUMNS = (("frame", np.int64), ("ts_ns", np.int64), ("flow_id", np.int64), ("ssrc", np.uint32),
               ("seq", np.uint16), ("rtp_ts", np.uint32), ("pt", np.uint8), ("marker", np.bool_),
               ("version", np.uint8), ("padding", np.bool_), ("extension", np.bool_), ("csrc_count", np.uint8),
               ("ext_profile", np.int32), ("payload_len", np.int32), ("length", np.int32), ("via_turn", np.int8))


# --------------------------------------------------------------------------------------------------
def _first_of_codes(codes: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each code, for codes numbered by first appearance (factorize)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    cm = np.maximum.accumulate(codes)
    return np.flatnonzero(np.diff(cm, prepend=-1) > 0)


# small vectorised readers over a batch buffer (indices must be valid: callers mask first)
def _u8(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return arr[idx].astype(np.int64)


def _be16(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (arr[idx].astype(np.int64) << 8) | arr[idx + 1]


def _be32(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return ((arr[idx].astype(np.int64) << 24) | (arr[idx + 1].astype(np.int64) << 16)
            | (arr[idx + 2].astype(np.int64) << 8) | arr[idx + 3])


def link_offsets(arr: np.ndarray, b: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Per packet: offset of the network header in the batch buffer and its ethertype (0 when not IP).

    Link types: 1 Ethernet (802.1Q/802.1ad/QinQ tags skipped), 113 Linux cooked v1, 276 Linux cooked v2,
    101/228/229/12/14 raw IP, 0 BSD null (host byte order), 108 OpenBSD loopback (network order)."""
    n = len(b)
    off, cap, lt = b.off, b.caplen, b.linktype
    l3 = np.zeros(n, dtype=np.int64)
    et = np.zeros(n, dtype=np.int64)
    last = len(arr) - 1

    def be16_at(rel: np.ndarray, sel: np.ndarray) -> np.ndarray:
        ok = sel & (cap >= rel + 2)
        idx = np.where(ok, off + rel, 0)
        return np.where(ok, _be16(arr, np.minimum(idx, last - 1)), 0)

    eth = lt == 1
    if eth.any():
        rel = np.full(n, 12, dtype=np.int64)
        t = be16_at(rel, eth)
        for _ in range(3):  # up to three stacked tags
            tagged = eth & np.isin(t, VLAN_TPIDS)
            if not tagged.any():
                break
            rel = np.where(tagged, rel + 4, rel)
            t = np.where(tagged, be16_at(rel, tagged), t)
        l3[eth], et[eth] = rel[eth] + 2, t[eth]
    sll = lt == 113
    if sll.any():
        l3[sll], et[sll] = 16, be16_at(np.full(n, 14, dtype=np.int64), sll)[sll]
    sll2 = lt == 276
    if sll2.any():
        l3[sll2], et[sll2] = 20, be16_at(np.zeros(n, dtype=np.int64), sll2)[sll2]
    raw = np.isin(lt, (101, 12, 14, 228, 229))
    if raw.any():
        ok = raw & (cap >= 1)
        ver = np.where(ok, arr[np.where(ok, off, 0)] >> 4, 0)
        et[raw] = np.where(ver == 4, ETH_IPV4, np.where(ver == 6, ETH_IPV6, 0))[raw]
        l3[raw] = 0
    null = (lt == 0) | (lt == 108)
    if null.any():
        ok = null & (cap >= 4)
        idx = np.where(ok, off, 0)
        fam_be = _be32(arr, np.minimum(idx, last - 3))
        fam_le = ((arr[idx + 3].astype(np.int64) << 24) | (arr[idx + 2].astype(np.int64) << 16)
                  | (arr[idx + 1].astype(np.int64) << 8) | arr[idx])
        # DLT_NULL is in the capturing host's byte order: take whichever reading is a small number
        fam = np.where((lt == 108) | (fam_be < fam_le), fam_be, fam_le)
        fam = np.where(ok, fam, -1)
        et[null] = np.where(fam == 2, ETH_IPV4, np.where(np.isin(fam, (10, 24, 28, 30)), ETH_IPV6, 0))[null]
        l3[null] = 4
    return l3, et


# --------------------------------------------------------------------------------------------------
@dataclass
class _TcpDir:
    next_seq: int | None = None
    kind: str | None = None  # turn | rfc4571 | tls | http | sip | websocket | other
    buf: bytearray = field(default_factory=bytearray)
    pending: dict[int, bytes] = field(default_factory=dict)
    broken: bool = False
    last_ctx: Any = None  # while undecided: where the buffered bytes were last extended


@dataclass
class _Frag:
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    first_frame: int = 0
    header: bytes = b""


class _Pass:
    """State of one fast-path pass."""

    def __init__(self, path: str, log: AnomalyLog, strict: bool) -> None:
        self.path = path
        self.log = log
        self.strict = strict
        self.ips: dict[str, int] = {}
        self.ip_list: list[str] = []
        self.ip4_ids: dict[int, int] = {}
        self.ip6_ids: dict[bytes, int] = {}
        self.flow_ids: dict[tuple[int, int, int], int] = {}
        self.flow_first: list[int] = []
        # per-batch packet columns for the `packets` frame ("frame" holds (first frame, count) per batch)
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                                  ("frame", "ts_ns", "src", "sport", "dst", "dport", "transport",
                                                   "length", "cls", "via", "flow")}
        self.rtp_fast: list[dict[str, np.ndarray]] = []
        self.rtp_slow: list[tuple[Any, ...]] = []
        self.samples: dict[tuple[int, int], list[bytes]] = {}
        self.datagrams: dict[int, list[Datagram]] = {STUN: [], DTLS: [], RTCP: [], ZRTP: []}
        self.control: list[int] = []
        self.tcp: dict[tuple[int, int, int], _TcpDir] = {}
        self.tcp_seen: list[tuple[np.ndarray, np.ndarray]] = []  # (flow ids, frames) of TCP packets
        self.tcp_slow: list[tuple[int, int]] = []
        self.websocket_flows: set[int] = set()
        self.frags: dict[tuple[Any, ...], _Frag] = {}
        self.dtls_flows: set[int] = set()
        self.channels: dict[tuple[int, int], str] = {}  # (flow, channel number) -> peer ip:port
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.n = 0
        # per-packet output of the current batch (written by the Python path)
        self._row: tuple[int, int, int, int, int, int, int, int] | None = None

    # -- interning ----------------------------------------------------------------------------
    def ip_id(self, ip: str) -> int:
        i = self.ips.get(ip)
        if i is None:
            i = self.ips[ip] = len(self.ip_list)
            self.ip_list.append(ip)
        return i

    def flow(self, transport: int, a: int, ap: int, b: int, bp: int, frame: int) -> int:
        ea, eb = (a << 16) | ap, (b << 16) | bp
        key = (transport, ea, eb) if ea <= eb else (transport, eb, ea)
        f = self.flow_ids.get(key)
        if f is None:
            f = self.flow_ids[key] = len(self.flow_first)
            self.flow_first.append(frame)
        elif frame < self.flow_first[f]:
            self.flow_first[f] = frame
        return f

    def anomaly(self, layer: str, name: str, detail: str, frame: int | None = None, ts_ns: int | None = None,
                flow_id: int | None = None) -> None:
        if self.strict:
            raise DecodeError(name, f"frame {frame}: {detail}" if frame else detail)
        self.log.add(layer, name, detail, frame=frame, ts_ns=ts_ns, flow_id=flow_id)

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
        b0 = _u8(arr, np.minimum(i3, last))
        ihl = np.where(v6, 40, (b0 & 0x0F) * 4)  # header length
        v4 &= ((b0 >> 4) == 4) & (ihl >= 20) & (cap >= l3 + ihl + 8)
        v4 &= (_be16(arr, np.minimum(i3 + 6, last - 1)) & 0x3FFF) == 0  # not a fragment
        v6 &= (b0 >> 4) == 6
        ip = v4 | v6
        i3 = np.where(ip, i3, 0)
        proto = np.where(v6, _u8(arr, np.minimum(i3 + 6, last)), _u8(arr, np.minimum(i3 + 9, last)))
        udp = ip & (proto == 17)
        i4 = np.where(udp, i3 + ihl, 0)
        ulen = _be16(arr, np.minimum(i4 + 4, last - 1))
        udp &= (ulen >= 8) & (l3 + ihl + ulen <= cap)
        # IPv6: the UDP datagram is the whole payload (a jumbogram or padding goes the long way)
        udp &= ~v6 | (_be16(arr, np.minimum(i3 + 4, last - 1)) == ulen)
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
            sp = _be16(arr, i4u)
            dp = _be16(arr, i4u + 2)
            c = classify_array(arr, po, plen)
            notmedia = np.isin(sp, list(demux.NOT_MEDIA_UDP_PORTS)) | np.isin(dp, list(demux.NOT_MEDIA_UDP_PORTS))
            sip = np.isin(sp, list(demux.SIP_PORTS)) | np.isin(dp, list(demux.SIP_PORTS))
            c = np.where(notmedia, OTHER, c)
            # RTP directly in UDP, or inside ChannelData
            rtp_po = po.copy()
            rtp_len = plen.copy()
            v = np.full(len(idx), -1, dtype=np.int8)
            ch = (c == TURN_CHANNEL) & ~sip
            if ch.any():
                cidx = np.flatnonzero(ch)
                clen = _be16(arr, po[cidx] + 2)
                inner = classify_array(arr, po[cidx] + 4, clen)
                ok = inner == RTP
                rtp_po[cidx[ok]] += 4
                rtp_len[cidx[ok]] = clen[ok]
                v[cidx[ok]] = V_CHANNEL
            cand = ((c == RTP) | (v == V_CHANNEL)) & ~sip
            rtp_ok, hdr, padlen = self._rtp_fits(arr, rtp_po, rtp_len, cand)
            # STUN / DTLS / RTCP / ZRTP straight in UDP: the loop below only files the Datagram; TURN
            # Send/Data indications and ChannelBind requests take the full path (they are unwrapped)
            mtype = _be16(arr, po)
            dg = ~sip & (((c == STUN) & ~np.isin(mtype, (STUN_SEND_INDICATION, STUN_DATA_INDICATION,
                                                         STUN_CHANNELBIND_REQUEST)))
                         | (c == DTLS) | (c == RTCP) | (c == ZRTP))
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
            flow[t_idx] = self._flows_vec(T_UDP, src[t_idx], sport[t_idx], dst[t_idx], dport[t_idx],
                                          b.frame[t_idx])
            r = np.flatnonzero(rtp_ok)
            if len(r):
                rtp_args = (idx[r], rtp_po[r], rtp_len[r], hdr[r], padlen[r], v[r])
        # ---- TCP of directions already known to be control plane ------------------------------------
        tcp = ip & (proto == 6) & (cap >= l3 + ihl + 20)
        tidx = np.flatnonzero(tcp)
        tcp_j = np.full(n, -1, dtype=np.int64)  # index into the TCP arrays, for the loop's quick check
        if len(tidx):
            t4 = i3[tidx] + ihl[tidx]
            doff = (_u8(arr, t4 + 12) >> 4) * 4
            good = (doff >= 20) & (l3[tidx] + ihl[tidx] + doff <= cap[tidx])
            tidx, t4 = tidx[good], t4[good]
            s_id, d_id = self._ip_ids(arr, i3[tidx], v6[tidx])
            sp, dp = _be16(arr, t4), _be16(arr, t4 + 2)
            fl = self._flows_vec(T_TCP, s_id, sp, d_id, dp, b.frame[tidx])
            # direction = flow and which end sent it
            dkey = fl * 2 + (((s_id.astype(np.int64) << 16) | sp) > ((d_id.astype(np.int64) << 16) | dp))
            ukeys, first, inv = np.unique(dkey, return_index=True, return_inverse=True)
            kind_code = np.full(len(ukeys), -1, dtype=np.int8)
            for k, j0 in enumerate(first.tolist()):
                fl0 = int(fl[j0])
                d = self.tcp.get((fl0, int(s_id[j0]), int(sp[j0])))
                if d is not None and d.kind in ("tls", "sip", "other") and fl0 not in self.websocket_flows:
                    kind_code[k] = {"tls": TLS, "sip": SIP, "other": OTHER}[d.kind]
            kc = kind_code[inv.reshape(-1)]
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
                data = buf[po0 : po0 + int(pay_len[i])]
                if c0 == DTLS and not self._dtls_ok(fl0, data):
                    cls[i] = OTHER
                    continue
                dlists[c0].append(Datagram(frame=int(frames[i]), ts_ns=int(tss[i]), flow_id=fl0,
                                           src=ips[src[i]], sport=int(sport[i]), dst=ips[dst[i]],
                                           dport=int(dport[i]), transport="udp", data=data))
                cls[i] = c0
                continue
            j = int(tcp_j[i])
            if j >= 0:  # TCP: a direction that became known as control plane earlier in this batch
                fl0 = int(fl[j])
                d = self.tcp.get((fl0, int(s_id[j]), int(sp[j])))
                if d is not None and d.kind in ("tls", "sip", "other") and fl0 not in self.websocket_flows:
                    src[i], dst[i], sport[i], dport[i] = s_id[j], d_id[j], sp[j], dp[j]
                    transport[i], flow[i] = T_TCP, fl0
                    cls[i] = TLS if d.kind == "tls" else SIP if d.kind == "sip" else OTHER
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
        c_["frame"].append(np.array([b.frame[0], len(b)], dtype=np.int64))  # frames are consecutive
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

    def _rtp_fits(self, arr: np.ndarray, po: np.ndarray, plen: np.ndarray,
                  cand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which candidate RTP packets have a complete header (CSRCs, extension, padding): these the numpy
        path decodes; the others go to decode_rtp, which names the problem."""
        last = len(arr) - 1
        b0 = _u8(arr, np.where(cand, po, 0))
        cc = b0 & 0x0F
        hdr = 12 + 4 * cc
        ok = cand & (plen >= 12) & (hdr <= plen)
        has_x = ok & ((b0 & 0x10) != 0)
        xi = np.where(has_x & (hdr + 4 <= plen), po + hdr + 2, 0)
        xlen = np.where(has_x, _be16(arr, np.minimum(xi, last - 1)) * 4 + 4, 0)
        ok &= ~has_x | (hdr + 4 <= plen)
        hdr = hdr + xlen
        ok &= hdr <= plen
        has_p = ok & ((b0 & 0x20) != 0)
        padlen = np.where(has_p, _u8(arr, np.where(has_p, po + plen - 1, 0)), 0)
        padlen = np.where(hdr + padlen <= plen, padlen, 0)  # as decode_rtp: a count that does not fit = unknown
        return ok, hdr, padlen

    def _rtp_columns(self, arr: np.ndarray, b: Batch, pk: np.ndarray, po: np.ndarray, plen: np.ndarray,
                     hdr: np.ndarray, padlen: np.ndarray, v: np.ndarray, flow: np.ndarray) -> None:
        b0 = arr[po]
        b1 = arr[po + 1]
        cc = b0 & 0x0F
        has_x = (b0 & 0x10) != 0
        xi = np.where(has_x, po + 12 + 4 * cc.astype(np.int64), 0)
        ssrc = _be32(arr, po + 8).astype(np.uint32)
        cols = {
            "frame": b.frame[pk], "ts_ns": b.ts_ns[pk], "flow_id": flow, "ssrc": ssrc,
            "seq": _be16(arr, po + 2).astype(np.uint16), "rtp_ts": _be32(arr, po + 4).astype(np.uint32),
            "pt": (b1 & 0x7F).astype(np.uint8), "marker": (b1 & 0x80) != 0, "version": (b0 >> 6).astype(np.uint8),
            "padding": (b0 & 0x20) != 0, "extension": has_x, "csrc_count": cc.astype(np.uint8),
            "ext_profile": np.where(has_x, _be16(arr, xi), -1).astype(np.int32),
            "payload_len": (plen - hdr - padlen).astype(np.int32), "length": plen.astype(np.int32), "via_turn": v,
        }
        self.rtp_fast.append(cols)
        # payload samples for plaintext evidence: the first packets of each (flow, ssrc)
        key = (flow.astype(np.int64) << 32) | ssrc.astype(np.int64)
        codes, uniq = pd.factorize(key)
        first = _first_of_codes(codes)
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

    def _ip4_ids(self, ips: np.ndarray) -> np.ndarray:
        inv, uniq = pd.factorize(ips)  # hashing: faster than sorting for long batches
        ids = np.empty(len(uniq), dtype=np.int32)
        for k, u in enumerate(uniq.tolist()):
            i = self.ip4_ids.get(u)
            if i is None:
                i = self.ip4_ids[u] = self.ip_id(socket.inet_ntoa(u.to_bytes(4, "big")))
            ids[k] = i
        return ids[inv]

    def _ip6_ids(self, arr: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Interned ids of the 16-byte addresses starting at ``at`` in ``arr`` (the text is inet_ntop's, as
        the Python path writes it)."""
        raw = np.ascontiguousarray(arr[at[:, None] + np.arange(16)]).view(np.dtype((np.void, 16))).ravel()
        uniq, inv = np.unique(raw, return_inverse=True)
        ids = np.empty(len(uniq), dtype=np.int32)
        for k, u in enumerate(uniq.tolist()):
            i = self.ip6_ids.get(u)
            if i is None:
                i = self.ip6_ids[u] = self.ip_id(socket.inet_ntop(socket.AF_INET6, u))
            ids[k] = i
        return ids[inv.reshape(-1)]

    def _ip_ids(self, arr: np.ndarray, i3: np.ndarray, is6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(source ids, destination ids) of the IPv4 or IPv6 headers starting at ``i3``."""
        src = np.empty(len(i3), dtype=np.int32)
        dst = np.empty(len(i3), dtype=np.int32)
        four = ~is6
        if four.any():
            src[four] = self._ip4_ids(_be32(arr, i3[four] + 12))
            dst[four] = self._ip4_ids(_be32(arr, i3[four] + 16))
        if is6.any():
            src[is6] = self._ip6_ids(arr, i3[is6] + 8)
            dst[is6] = self._ip6_ids(arr, i3[is6] + 24)
        return src, dst

    def _flows_vec(self, transport: int, src: np.ndarray, sport: np.ndarray, dst: np.ndarray,
                   dport: np.ndarray, frames: np.ndarray) -> np.ndarray:
        ea = (src.astype(np.int64) << 16) | sport
        eb = (dst.astype(np.int64) << 16) | dport
        lo, hi = np.minimum(ea, eb), np.maximum(ea, eb)
        if len(self.ip_list) < (1 << 15):  # both endpoints fit in 31 bits: one int64 key, hashed
            codes, _ = pd.factorize((lo << 31) | hi)
            first = _first_of_codes(codes)
            inv = codes
        else:
            pair = np.empty(len(lo), dtype=[("lo", np.int64), ("hi", np.int64)])
            pair["lo"], pair["hi"] = lo, hi
            _, first, inv = np.unique(pair, return_index=True, return_inverse=True)
            inv = inv.reshape(-1)
        ids = np.empty(len(first), dtype=np.int64)
        for k, f0 in enumerate(first.tolist()):
            lo_k, hi_k = int(lo[f0]), int(hi[f0])
            ids[k] = self.flow(transport, lo_k >> 16, lo_k & 0xFFFF, hi_k >> 16, hi_k & 0xFFFF, int(frames[f0]))
        return ids[inv]

    # -- the general path -----------------------------------------------------------------------
    def packet(self, frame: int, ts: int, pkt: bytes, l3: int, et: int, linktype: int) -> None:
        if et == ETH_IPV4:
            self.ipv4(frame, ts, pkt, l3)
        elif et == ETH_IPV6:
            self.ipv6(frame, ts, pkt, l3)
        elif et == 0 and linktype not in (1, 113, 276, 101, 12, 14, 228, 229, 0, 108):
            self.anomaly("link", "link_type_unsupported",
                         f"link type {link_type_name(linktype)} is not dissected", frame=frame, ts_ns=ts)

    def _set_row(self, src: int, sport: int, dst: int, dport: int, transport: int, cls: int, via: int,
                 flow: int) -> None:
        self._row = (src, sport, dst, dport, transport, cls, via, flow)

    def ipv4(self, frame: int, ts: int, pkt: bytes, l3: int) -> None:
        if len(pkt) < l3 + 20:
            self.anomaly("ip", "ip_truncated", "IPv4 header is truncated", frame=frame, ts_ns=ts)
            return
        vihl = pkt[l3]
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or len(pkt) < l3 + ihl:
            self.anomaly("ip", "ip_header_invalid", f"IPv4 header is invalid (version/IHL byte {vihl:#04x})",
                         frame=frame, ts_ns=ts)
            return
        total, ident, fragword = struct.unpack_from("!HHH", pkt, l3 + 2)
        proto = pkt[l3 + 9]
        src = self.ip_id(socket.inet_ntoa(pkt[l3 + 12 : l3 + 16]))
        dst = self.ip_id(socket.inet_ntoa(pkt[l3 + 16 : l3 + 20]))
        end = l3 + total
        if total < ihl:
            self.anomaly("ip", "ip_length_invalid", f"IPv4 total length {total} is shorter than its header",
                         frame=frame, ts_ns=ts)
            end = len(pkt)
        elif end > len(pkt):
            self.anomaly("ip", "ip_truncated", f"IPv4 packet of {total} bytes captured with only "
                         f"{len(pkt) - l3} (snaplen)", frame=frame, ts_ns=ts)
            end = len(pkt)
        payload = pkt[l3 + ihl : end]
        mf, foff = fragword & 0x2000, (fragword & 0x1FFF) * 8
        if mf or foff:
            whole = self.reassemble(("4", src, dst, ident, proto), foff, bool(mf), payload, frame, ts)
            if whole is None:
                self._set_row(src, -1, dst, -1, IP_PROTO_TRANSPORT.get(proto, T_OTHER), OTHER, -1, -1)
                return
            payload = whole
        self.transport(frame, ts, src, dst, proto, payload)

    def ipv6(self, frame: int, ts: int, pkt: bytes, l3: int) -> None:
        if len(pkt) < l3 + 40:
            self.anomaly("ip", "ip_truncated", "IPv6 header is truncated", frame=frame, ts_ns=ts)
            return
        plen = struct.unpack_from("!H", pkt, l3 + 4)[0]
        nh = pkt[l3 + 6]
        src = self.ip_id(socket.inet_ntop(socket.AF_INET6, pkt[l3 + 8 : l3 + 24]))
        dst = self.ip_id(socket.inet_ntop(socket.AF_INET6, pkt[l3 + 24 : l3 + 40]))
        end = l3 + 40 + plen
        if plen == 0:  # jumbogram or unknown: take what was captured
            end = len(pkt)
        elif end > len(pkt):
            self.anomaly("ip", "ip_truncated", f"IPv6 packet of {plen + 40} bytes captured with only "
                         f"{len(pkt) - l3} (snaplen)", frame=frame, ts_ns=ts)
            end = len(pkt)
        p = l3 + 40
        frag: tuple[int, bool, int] | None = None
        while True:
            if nh in IPV6_EXT or nh == 51 or nh == 44:
                if p + 8 > end:
                    self.anomaly("ip", "ip_truncated", f"IPv6 extension header {nh} is truncated",
                                 frame=frame, ts_ns=ts)
                    return
                nxt, hlen = pkt[p], pkt[p + 1]
                if nh == 44:
                    fo = struct.unpack_from("!H", pkt, p + 2)[0]
                    frag = ((fo >> 3) * 8, bool(fo & 1), struct.unpack_from("!I", pkt, p + 4)[0])
                    p += 8
                elif nh == 51:
                    p += (hlen + 2) * 4
                else:
                    p += (hlen + 1) * 8
                nh = nxt
                continue
            break
        payload = pkt[p:end]
        if frag is not None:
            foff, more, ident = frag
            whole = self.reassemble(("6", src, dst, ident, nh), foff, more, payload, frame, ts)
            if whole is None:
                self._set_row(src, -1, dst, -1, IP_PROTO_TRANSPORT.get(nh, T_OTHER), OTHER, -1, -1)
                return
            payload = whole
        self.transport(frame, ts, src, dst, nh, payload)

    def reassemble(self, key: tuple[Any, ...], foff: int, more: bool, data: bytes, frame: int,
                   ts: int) -> bytes | None:
        fr = self.frags.get(key)
        if fr is None:
            if len(self.frags) >= MAX_FRAG_BUFFERS:
                self.anomaly("ip", "ip_fragments_dropped", "too many incomplete fragmented datagrams; "
                             "oldest dropped", frame=frame, ts_ns=ts)
                self.frags.pop(next(iter(self.frags)))
            fr = self.frags[key] = _Frag(first_frame=frame)
        fr.parts[foff] = data
        if not more:
            fr.total = foff + len(data)
        if fr.total is None:
            return None
        pos = 0
        chunks = []
        for o in sorted(fr.parts):
            if o > pos:
                return None  # a hole: wait for more fragments
            chunk = fr.parts[o]
            if o + len(chunk) > pos:
                chunks.append(chunk[pos - o :])
                pos = o + len(chunk)
        if pos < fr.total:
            return None
        del self.frags[key]
        return b"".join(chunks)[: fr.total]

    def transport(self, frame: int, ts: int, src: int, dst: int, proto: int, seg: bytes) -> None:
        if proto == 17:
            if len(seg) < 8:
                self.anomaly("udp", "udp_truncated", "UDP header is truncated", frame=frame, ts_ns=ts)
                self._set_row(src, -1, dst, -1, T_UDP, OTHER, -1, -1)
                return
            sport, dport, ulen = struct.unpack_from("!HHH", seg)
            fl = self.flow(T_UDP, src, sport, dst, dport, frame)
            if ulen < 8:
                self.anomaly("udp", "udp_length_invalid", f"UDP length {ulen} is less than 8", frame=frame,
                             ts_ns=ts, flow_id=fl)
                ulen = len(seg)
            elif ulen > len(seg):
                self.anomaly("udp", "udp_truncated", f"UDP datagram of {ulen} bytes captured with only "
                             f"{len(seg)}", frame=frame, ts_ns=ts, flow_id=fl)
                ulen = len(seg)
            payload = seg[8:ulen]
            if sport in demux.SIP_PORTS or dport in demux.SIP_PORTS:
                self.control.append(frame)
                self._set_row(src, sport, dst, dport, T_UDP, SIP, -1, fl)
                return
            if sport in demux.NOT_MEDIA_UDP_PORTS or dport in demux.NOT_MEDIA_UDP_PORTS:
                self._set_row(src, sport, dst, dport, T_UDP, OTHER, -1, fl)
                return
            ctx = _Ctx(frame, ts, fl, src, sport, dst, dport, "udp")
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

    # -- media demux --------------------------------------------------------------------------
    def media(self, ctx: _Ctx, data: bytes, via: int = -1, channel: int | None = None,
              peer: str | None = None) -> tuple[int, int]:
        """Classify one payload (RFC 7983) and file it; returns (class, via) for the packets row."""
        c = classify(data)
        if c == DTLS and not self._dtls_ok(ctx.flow, data):
            c = OTHER
        if c == TURN_CHANNEL and via == -1:
            ch = (data[0] << 8) | data[1]
            clen = (data[2] << 8) | data[3]
            inner = data[4 : 4 + clen]
            ic, _ = self.media(ctx, inner, V_CHANNEL, ch, self.channels.get((ctx.flow, ch)))
            return (ic if ic != OTHER else TURN_CHANNEL), V_CHANNEL
        if c in self.datagrams:
            self.datagrams[c].append(Datagram(
                frame=ctx.frame, ts_ns=ctx.ts, flow_id=ctx.flow, src=self.ip_list[ctx.src], sport=ctx.sport,
                dst=self.ip_list[ctx.dst], dport=ctx.dport, transport=ctx.transport, data=bytes(data),
                via_turn=VIA[via] if via >= 0 else None, turn_channel=channel, turn_peer=peer))
            if c == STUN and via == -1:
                turn = self._turn_stun(ctx, data)
                if turn is not None:
                    v, payload, p = turn
                    ic, _ = self.media(ctx, payload, v, None, p)
                    return ic, v
        elif c == RTP:
            self.rtp_packet(ctx, data, via)
        return c, via

    def _dtls_ok(self, flow: int, data: bytes) -> bool:
        """RFC 9147 unified-header records (first byte 32..63) carry no version to check: take them as
        DTLS 1.3 only on a flow that has shown a DTLS handshake record (content types 20..25) before."""
        if data[0] < 32:
            self.dtls_flows.add(flow)
            return True
        return flow in self.dtls_flows

    def _turn_stun(self, ctx: _Ctx, data: bytes) -> tuple[int, bytes, str | None] | None:
        """For Send/Data indications: (via, DATA payload, XOR-PEER-ADDRESS). Remembers ChannelBind
        requests so ChannelData can name its peer. Malformed attributes are the STUN parser's business."""
        mtype = (data[0] << 8) | data[1]
        if mtype not in (STUN_SEND_INDICATION, STUN_DATA_INDICATION, STUN_CHANNELBIND_REQUEST):
            return None
        end = min(len(data), 20 + ((data[2] << 8) | data[3]))
        key = data[4:20]
        peer = payload = channel = None
        for at, start, al in walk_attributes(data, end)[0]:  # a framing error ends the walk; parse reports it
            if at == ATTR_XOR_PEER_ADDRESS:
                try:
                    peer = str(xor_address(data[start : start + al], key))
                except DecodeError:
                    peer = None
            elif at == ATTR_DATA:
                payload = data[start : start + al]
            elif at == ATTR_CHANNEL_NUMBER and al >= 2:
                channel = (data[start] << 8) | data[start + 1]
        if mtype == STUN_CHANNELBIND_REQUEST:
            if channel is not None and peer is not None:
                self.channels[(ctx.flow, channel)] = peer
            return None
        if payload is None:
            return None
        return (V_SEND if mtype == STUN_SEND_INDICATION else V_DATA), payload, peer

    def rtp_packet(self, ctx: _Ctx, data: bytes, via: int) -> None:
        try:
            p = decode_rtp(data)
        except DecodeError as e:
            self.anomaly("rtp", e.name, e.detail, frame=ctx.frame, ts_ns=ctx.ts, flow_id=ctx.flow)
            return
        self.rtp_slow.append((ctx.frame, ctx.ts, ctx.flow, p.ssrc, p.sequence_number, p.timestamp, p.payload_type,
                              p.marker, p.version, p.padding, p.extension, len(p.csrc),
                              -1 if p.extension_profile is None else p.extension_profile, len(p.payload), len(data), via))
        have = self.samples.setdefault((ctx.flow, p.ssrc), [])
        if len(have) < RTP_SAMPLES_PER_STREAM:
            have.append(bytes(data))

    # -- TCP ------------------------------------------------------------------------------------
    def tcp_segment(self, frame: int, ts: int, src: int, dst: int, seg: bytes) -> None:
        if len(seg) < 20:
            self.anomaly("tcp", "tcp_truncated", "TCP header is truncated", frame=frame, ts_ns=ts)
            self._set_row(src, -1, dst, -1, T_TCP, OTHER, -1, -1)
            return
        sport, dport, seq = struct.unpack_from("!HHI", seg)
        doff = (seg[12] >> 4) * 4
        flags = seg[13]
        fl = self.flow(T_TCP, src, sport, dst, dport, frame)
        self.tcp_slow.append((fl, frame))
        if doff < 20 or doff > len(seg):
            self.anomaly("tcp", "tcp_header_invalid", f"TCP data offset {doff} is invalid", frame=frame,
                         ts_ns=ts, flow_id=fl)
            self._set_row(src, sport, dst, dport, T_TCP, OTHER, -1, fl)
            return
        payload = seg[doff:]
        d = self.tcp.get((fl, src, sport))
        if d is None:
            d = self.tcp[(fl, src, sport)] = _TcpDir()
        if flags & 0x02:  # SYN
            d.next_seq = (seq + 1) & 0xFFFFFFFF
        cls = self._tcp_kind_class(d, fl)
        if payload and d.kind not in (None, "turn", "rfc4571"):  # control plane: tshark reassembles it
            if d.kind == "http" and payload.startswith(b"HTTP/1.1 101"):
                self.websocket_flows.add(fl)
        elif payload and not d.broken:
            if d.next_seq is None:
                d.next_seq = seq  # capture started mid-stream
            ctx = _Ctx(frame, ts, fl, src, sport, dst, dport, "tcp")
            cls = self._tcp_data(ctx, d, seq, payload)
        self._set_row(src, sport, dst, dport, T_TCP, cls, -1, fl)

    def _tcp_kind_class(self, d: _TcpDir, fl: int) -> int:
        if fl in self.websocket_flows:
            return WEBSOCKET
        return {"tls": TLS, "http": HTTP, "sip": SIP}.get(d.kind or "", OTHER)

    def _tcp_data(self, ctx: _Ctx, d: _TcpDir, seq: int, payload: bytes) -> int:
        assert d.next_seq is not None  # set by the caller (internal invariant)
        rel = (seq - d.next_seq) & 0xFFFFFFFF
        if rel >= 0x80000000:  # old data: retransmission, possibly with new bytes at its end
            back = 0x100000000 - rel
            if back >= len(payload):
                return self._tcp_kind_class(d, ctx.flow)
            payload = payload[back:]
        elif rel > 0:  # a gap: hold the segment until the missing bytes arrive
            if len(d.pending) < TCP_MAX_PENDING:
                d.pending[seq] = payload
                return self._tcp_kind_class(d, ctx.flow)
            self.anomaly("tcp", "tcp_gap", f"TCP stream lost {rel} bytes (segments missing from the capture)",
                         frame=ctx.frame, ts_ns=ctx.ts, flow_id=ctx.flow)
            d.buf.clear()
            if d.kind in ("turn", "rfc4571"):
                d.broken = True
                return OTHER
        self._tcp_append(d, payload)
        while d.pending:  # drain held segments that now fit
            nxt = d.pending.pop(d.next_seq, None)
            if nxt is None:
                break
            self._tcp_append(d, nxt)
        if d.kind is None:
            d.last_ctx = ctx
            d.kind = tcp_kind(bytes(d.buf[:TCP_DECIDE_BYTES]))
            if d.kind is None:
                return OTHER
            if d.kind in ("tls", "sip", "other"):
                # the reverse direction is the same protocol: a direction that only carries ACKs so far
                # then takes the quick path too
                rev = self.tcp.setdefault((ctx.flow, ctx.dst, ctx.dport), _TcpDir())
                if rev.kind is None and not rev.buf:
                    rev.kind = d.kind
        if d.kind in ("turn", "rfc4571"):
            return self._tcp_messages(ctx, d)
        if d.kind == "http" and d.buf.startswith(b"HTTP/1.1 101"):
            self.websocket_flows.add(ctx.flow)
        d.buf.clear()
        return self._tcp_kind_class(d, ctx.flow)

    def _tcp_append(self, d: _TcpDir, payload: bytes) -> None:
        assert d.next_seq is not None
        if d.kind is None or d.kind in ("turn", "rfc4571"):
            d.buf += payload
        d.next_seq = (d.next_seq + len(payload)) & 0xFFFFFFFF

    def _tcp_messages(self, ctx: _Ctx, d: _TcpDir) -> int:
        """Split the reassembled stream into messages; each complete one is demultiplexed."""
        buf = d.buf
        cls = OTHER
        pos = 0
        n = len(buf)
        while True:
            if d.kind == "turn":
                if n - pos < 4:
                    break
                b0 = buf[pos]
                if b0 <= 3:
                    total = 20 + ((buf[pos + 2] << 8) | buf[pos + 3])
                    start = pos
                elif 64 <= b0 <= 79:
                    clen = (buf[pos + 2] << 8) | buf[pos + 3]
                    total = 4 + clen + (-clen % 4)  # RFC 8656 §12.5: padded to 4 over TCP
                    start = pos
                else:
                    self._framing_lost(ctx, d, f"TURN-TCP stream has a message starting with byte {b0:#04x}")
                    return cls
                if n - pos < total:
                    break
                msg = bytes(buf[start : start + total])
                if 64 <= b0 <= 79:
                    msg = msg[: 4 + ((msg[2] << 8) | msg[3])]
            else:
                if n - pos < 2:
                    break
                flen = (buf[pos] << 8) | buf[pos + 1]
                total = 2 + flen
                if n - pos < total:
                    break
                msg = bytes(buf[pos + 2 : pos + total])
            pos += total
            cls, _ = self.media(ctx, msg)
        del buf[:pos]
        return cls

    def _framing_lost(self, ctx: _Ctx, d: _TcpDir, detail: str) -> None:
        self.anomaly("tcp", "tcp_framing_lost", detail + "; the rest of this direction is not dissected",
                     frame=ctx.frame, ts_ns=ctx.ts, flow_id=ctx.flow)
        d.broken = True
        d.buf.clear()

    # -- end of pass ----------------------------------------------------------------------------
    def finish(self) -> None:
        for key, fr in self.frags.items():
            self.anomaly("ip", "ip_fragments_incomplete",
                         f"fragmented IPv{key[0]} datagram never completed ({len(fr.parts)} fragments seen)",
                         frame=fr.first_frame)
        for d in self.tcp.values():
            if d.kind is None and d.buf and d.last_ctx is not None:
                d.kind = tcp_kind(bytes(d.buf[:TCP_DECIDE_BYTES]), final=True)
                if d.kind in ("turn", "rfc4571"):
                    self._tcp_messages(d.last_ctx, d)
        media_flows = np.array(sorted({fl for (fl, _s, _p), d in self.tcp.items() if d.kind in ("turn", "rfc4571")}),
                               dtype=np.int64)
        seen = list(self.tcp_seen)
        if self.tcp_slow:
            sl = np.array(self.tcp_slow, dtype=np.int64)
            seen.append((sl[:, 0], sl[:, 1]))
        if seen:
            flows_ = np.concatenate([f for f, _ in seen])
            frames_ = np.concatenate([f for _, f in seen])
            self.control.extend(frames_[~np.isin(flows_, media_flows)].tolist())


@dataclass(slots=True)
class _Ctx:
    frame: int
    ts: int
    flow: int
    src: int
    sport: int
    dst: int
    dport: int
    transport: str


# --------------------------------------------------------------------------------------------------
def _progress_bar(progress: bool | None, total: int) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    # None: show only when the load takes longer than about a second
    return tqdm(total=total, unit="B", unit_scale=True, desc="dissecting", delay=0 if progress else 1.0,
                leave=False)


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
    except Exception:  # noqa: BLE001 - a missing or broken tshark must not stop the media plane
        return None


def dissect(path: str | os.PathLike[str], progress: bool | None = None, strict: bool = False) -> Dissection:
    """Read ``path`` once and return the media-plane :class:`Dissection` (see module docstring)."""
    log = AnomalyLog()
    reader = CaptureReader(path, log, strict=strict)
    version: list[str | None] = []
    vthread = threading.Thread(target=lambda: version.append(_tshark_version()), daemon=True)
    vthread.start()  # `tshark -v` takes a few hundred ms: run it while the capture is read
    st = _Pass(str(path), log, strict)
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
    from ..tables.packets import build_packets_frame  # late: tables import capture, which imports us lazily

    flow_map = _flow_renumbering(st)
    packets = build_packets_frame(st, flow_map)
    rtp = _rtp_arrays(st, flow_map)
    for lst in st.datagrams.values():
        for dg in lst:
            dg.flow_id = int(flow_map[dg.flow_id])
    samples = {(int(flow_map[f]), s): v for (f, s), v in st.samples.items()}
    for row in log.rows:
        if row["flow_id"] is not None and row["flow_id"] >= 0:
            row["flow_id"] = int(flow_map[row["flow_id"]])
    info = {
        "path": str(path), "sha256": reader.sha256(), "size": reader.size, "format": reader.format,
        "compressed": reader.compressed, "link_types": [link_type_name(t) for t in reader.link_types],
        "packets": st.n, "first_ts": _ts(st.first_ts), "last_ts": _ts(st.last_ts),
        "tshark_version": _join(vthread, version), "decryption_secrets": reader.secrets,
        "truncated": reader.truncated,
    }
    return Dissection(path=str(path), info=info, packets=packets, stun=st.datagrams[STUN],
                      dtls=st.datagrams[DTLS], rtcp=st.datagrams[RTCP], zrtp=st.datagrams[ZRTP], rtp=rtp,
                      rtp_samples=samples, control_frames=np.array(sorted(set(st.control)), dtype=np.int64),
                      anomalies=log)


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


def _rtp_arrays(st: _Pass, flow_map: np.ndarray) -> dict[str, np.ndarray]:
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
    out["flow_id"] = flow_map[out["flow_id"]]
    return out


__all__ = ["CLASSES", "TRANSPORTS", "VIA", "dissect", "link_offsets"]
