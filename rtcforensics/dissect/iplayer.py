"""Fast-path layer: link layer and IP (RFC 791 / RFC 8200), with fragment reassembly.

``link_offsets`` finds the network header of every record of a batch at once (numpy); the scalar path
(:class:`IpLayer`) reads one IPv4 or IPv6 header (extension headers, fragments) and hands the payload to
``transport``. A fragmented datagram belongs to the frame where it completes, as in Wireshark.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .demux import OTHER
from .passstate import IP_PROTO_TRANSPORT, T_OTHER, PassState, be16, be32
from .pcapio import Batch, link_type_name

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
IPV6_EXT = {0, 43, 60, 135, 139, 140}  # hop-by-hop, routing, dest options, mobility, HIP, shim6
MAX_FRAG_BUFFERS = 4096
SUPPORTED_LINK_TYPES = (1, 113, 276, 101, 12, 14, 228, 229, 0, 108)


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
        return np.where(ok, be16(arr, np.minimum(idx, last - 1)), 0)

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
        fam_be = be32(arr, np.minimum(idx, last - 3))
        fam_le = (
            (arr[idx + 3].astype(np.int64) << 24)
            | (arr[idx + 2].astype(np.int64) << 16)
            | (arr[idx + 1].astype(np.int64) << 8)
            | arr[idx]
        )
        # DLT_NULL is in the capturing host's byte order: take whichever reading is a small number
        fam = np.where((lt == 108) | (fam_be < fam_le), fam_be, fam_le)
        fam = np.where(ok, fam, -1)
        et[null] = np.where(fam == 2, ETH_IPV4, np.where(np.isin(fam, (10, 24, 28, 30)), ETH_IPV6, 0))[null]
        l3[null] = 4
    return l3, et


@dataclass
class _Frag:
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    first_frame: int = 0
    header: bytes = b""
    frames: list[int] = field(default_factory=list)  # every frame that brought a fragment
    have: int = 0  # bytes received (overlaps counted twice): no assembly is tried before it reaches total


class IpLayer(PassState):
    """IPv4 / IPv6 headers, one record at a time, and the vectorised address interning."""

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
            src[four] = self._ip4_ids(be32(arr, i3[four] + 12))
            dst[four] = self._ip4_ids(be32(arr, i3[four] + 16))
        if is6.any():
            src[is6] = self._ip6_ids(arr, i3[is6] + 8)
            dst[is6] = self._ip6_ids(arr, i3[is6] + 24)
        return src, dst

    def packet(self, frame: int, ts: int, pkt: bytes, l3: int, et: int, linktype: int) -> None:
        if et == ETH_IPV4:
            self.ipv4(frame, ts, pkt, l3)
        elif et == ETH_IPV6:
            self.ipv6(frame, ts, pkt, l3)
        elif et == 0 and linktype not in SUPPORTED_LINK_TYPES:
            self.anomaly(
                "link",
                "link_type_unsupported",
                f"link type {link_type_name(linktype)} is not dissected",
                frame=frame,
                ts_ns=ts,
            )

    def ipv4(self, frame: int, ts: int, pkt: bytes, l3: int) -> None:
        if len(pkt) < l3 + 20:
            self.anomaly("ip", "ip_truncated", "IPv4 header is truncated", frame=frame, ts_ns=ts)
            return
        vihl = pkt[l3]
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or len(pkt) < l3 + ihl:
            self.anomaly(
                "ip",
                "ip_header_invalid",
                f"IPv4 header is invalid (version/IHL byte {vihl:#04x})",
                frame=frame,
                ts_ns=ts,
            )
            return
        total, ident, fragword = struct.unpack_from("!HHH", pkt, l3 + 2)
        proto = pkt[l3 + 9]
        src = self.ip_id(socket.inet_ntoa(pkt[l3 + 12 : l3 + 16]))
        dst = self.ip_id(socket.inet_ntoa(pkt[l3 + 16 : l3 + 20]))
        end = l3 + total
        if total < ihl:
            self.anomaly(
                "ip",
                "ip_length_invalid",
                f"IPv4 total length {total} is shorter than its header",
                frame=frame,
                ts_ns=ts,
            )
            end = len(pkt)
        elif end > len(pkt):
            self.anomaly(
                "ip",
                "ip_truncated",
                f"IPv4 packet of {total} bytes captured with only {len(pkt) - l3} (snaplen)",
                frame=frame,
                ts_ns=ts,
            )
            end = len(pkt)
        payload = pkt[l3 + ihl : end]
        mf, foff = fragword & 0x2000, (fragword & 0x1FFF) * 8
        frag = (foff, bool(mf), ident) if mf or foff else None
        self._deliver("4", frame, ts, src, dst, proto, payload, frag)

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
            self.anomaly(
                "ip",
                "ip_truncated",
                f"IPv6 packet of {plen + 40} bytes captured with only {len(pkt) - l3} (snaplen)",
                frame=frame,
                ts_ns=ts,
            )
            end = len(pkt)
        p = l3 + 40
        frag: tuple[int, bool, int] | None = None
        while True:
            if nh in IPV6_EXT or nh == 51 or nh == 44:
                if p + 8 > end:
                    self.anomaly(
                        "ip",
                        "ip_truncated",
                        f"IPv6 extension header {nh} is truncated",
                        frame=frame,
                        ts_ns=ts,
                    )
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
        self._deliver("6", frame, ts, src, dst, nh, pkt[p:end], frag)

    def _deliver(
        self,
        version: str,
        frame: int,
        ts: int,
        src: int,
        dst: int,
        proto: int,
        payload: bytes,
        frag: tuple[int, bool, int] | None,
    ) -> None:
        """Hand an IP payload to ``transport``; a fragment (offset, more, identification) waits for the
        datagram to complete, which is then handed over in the frame of its last fragment."""
        if frag is None:
            self.frag_frames = ()
        else:
            foff, more, ident = frag
            whole = self.reassemble((version, src, dst, ident, proto), foff, more, payload, frame, ts)
            if whole is None:
                self._set_row(src, -1, dst, -1, IP_PROTO_TRANSPORT.get(proto, T_OTHER), OTHER, -1, -1)
                return
            payload = whole
        self.transport(frame, ts, src, dst, proto, payload)

    def reassemble(
        self, key: tuple[Any, ...], foff: int, more: bool, data: bytes, frame: int, ts: int
    ) -> bytes | None:
        fr = self.frags.get(key)
        if fr is None:
            if len(self.frags) >= MAX_FRAG_BUFFERS:
                self.anomaly(
                    "ip",
                    "ip_fragments_dropped",
                    "too many incomplete fragmented datagrams; oldest dropped",
                    frame=frame,
                    ts_ns=ts,
                )
                self.frags.pop(next(iter(self.frags)))
            fr = self.frags[key] = _Frag(first_frame=frame)
        old = fr.parts.get(foff)
        fr.have += len(data) - (len(old) if old is not None else 0)
        fr.parts[foff] = data
        fr.frames.append(frame)
        if not more:
            fr.total = foff + len(data)
        if fr.total is None or fr.have < fr.total:
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
        self.frag_frames = tuple(fr.frames)
        return b"".join(chunks)[: fr.total]

    def finish_fragments(self) -> None:
        """Fragmented datagrams that never completed become anomaly rows."""
        for key, fr in self.frags.items():
            self.anomaly(
                "ip",
                "ip_fragments_incomplete",
                f"fragmented IPv{key[0]} datagram never completed ({len(fr.parts)} fragments seen)",
                frame=fr.first_frame,
            )
