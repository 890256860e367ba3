"""What the layers of the fast path share: the state of one pass and the helpers every layer calls.

The pass (:class:`dissect.fastpath._Pass`) is composed of one class per layer — link/IP with fragments
(``iplayer``), TCP framing (``tcpframing``), TURN unwrapping and RFC 7983 filing (``turn``), RTP columns
(``rtpvec``) — each a subclass of :class:`PassState`, which declares the attributes they read and write and
the interning / anomaly helpers. A layer calls the next one up through methods declared here, so each module
reads on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..anomalies import AnomalyLog
from ..errors import DecodeError
from .model import VIA, Datagrams

if TYPE_CHECKING:
    from .iplayer import _Frag
    from .tcpframing import _TcpDir

TRANSPORTS = ("udp", "tcp", "sctp", "icmp", "icmpv6", "other")
T_UDP, T_TCP, T_SCTP, T_ICMP, T_ICMP6, T_OTHER = range(len(TRANSPORTS))
IP_PROTO_TRANSPORT = {17: T_UDP, 6: T_TCP, 132: T_SCTP, 1: T_ICMP, 58: T_ICMP6}
# VIA (model): ("channel", "data_indication", "send_indication"), codes 0..2; -1 = not via TURN
V_CHANNEL, V_DATA, V_SEND = range(3)
VIA_CODE = {name: i for i, name in enumerate(VIA)}


def first_of_codes(codes: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each code, for codes numbered by first appearance (factorize)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    cm = np.maximum.accumulate(codes)
    return np.flatnonzero(np.diff(cm, prepend=-1) > 0)


# small vectorised readers over a batch buffer (indices must be valid: callers mask first)
def u8(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return arr[idx].astype(np.int64)


def be16(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (arr[idx].astype(np.int64) << 8) | arr[idx + 1]


def be32(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (
        (arr[idx].astype(np.int64) << 24)
        | (arr[idx + 1].astype(np.int64) << 16)
        | (arr[idx + 2].astype(np.int64) << 8)
        | arr[idx + 3]
    )


@dataclass(slots=True)
class Ctx:
    """Where a payload came from: frame, time, flow and 5-tuple (address ids)."""

    frame: int
    ts: int
    flow: int
    src: int
    sport: int
    dst: int
    dport: int
    transport: str


class PassState:
    """State of one fast-path pass shared by its layers, and the helpers they all use."""

    path: str
    log: AnomalyLog
    strict: bool
    keep_payloads: bool  # keep every RTP packet's bytes (``payloads``); the vectorised RTP shortcut is off
    payloads: Datagrams
    ips: dict[str, int]
    ip_list: list[str]
    ip4_ids: dict[int, int]
    ip6_ids: dict[bytes, int]
    flow_ids: dict[int, int]  # (transport, lower endpoint, higher endpoint) packed in one int -> flow
    flow_first: list[int]
    rtp_fast: list[dict[str, np.ndarray]]
    rtp_slow: list[tuple[Any, ...]]
    samples: dict[tuple[int, int], list[bytes]]
    datagrams: dict[int, Datagrams]
    control: list[int]
    tcp: dict[tuple[int, int, int], _TcpDir]
    tcp_seen: list[tuple[np.ndarray, np.ndarray]]  # (flow ids, frames) of TCP packets
    tcp_slow: list[tuple[int, int]]
    websocket_flows: set[int]
    frag_frames: tuple[
        int, ...
    ]  # frames of the fragments the current record completed (() when unfragmented)
    tcp_openers: dict[int, tuple[int, int, int, int]]  # flow -> (src, sport, dst, dport) of its first SYN
    frags: dict[tuple[Any, ...], _Frag]
    dtls_flows: set[int]
    channels: dict[tuple[int, int], str]  # (flow, channel number) -> peer ip:port
    # per-packet output of the Python path for the current record
    _row: tuple[int, int, int, int, int, int, int, int] | None

    # -- interning ----------------------------------------------------------------------------
    def keep(
        self, into: Datagrams, ctx: Ctx, data: bytes, via: int, channel: int | None, peer: str | None
    ) -> None:
        """File the payload at ``ctx`` in ``into`` (``via`` indexes ``VIA``; -1 = not through TURN)."""
        into.add(
            ctx.frame,
            ctx.ts,
            ctx.flow,
            self.ip_list[ctx.src],
            ctx.sport,
            self.ip_list[ctx.dst],
            ctx.dport,
            ctx.transport,
            data,
            VIA[via] if via >= 0 else None,
            channel,
            peer,
        )

    def ip_id(self, ip: str) -> int:
        i = self.ips.get(ip)
        if i is None:
            i = self.ips[ip] = len(self.ip_list)
            self.ip_list.append(ip)
        return i

    def flow(self, transport: int, a: int, ap: int, b: int, bp: int, frame: int) -> int:
        ea, eb = (a << 16) | ap, (b << 16) | bp
        # one int per 5-tuple (an endpoint is below 2^47): a third of a tuple's memory, for a million flows
        key = (transport << 96) | ((ea << 48) | eb if ea <= eb else (eb << 48) | ea)
        f = self.flow_ids.get(key)
        if f is None:
            f = self.flow_ids[key] = self._new_flow(frame)
        elif frame < self.flow_first[f]:
            self.flow_first[f] = frame
        return f

    def _new_flow(self, frame: int) -> int:
        """A provisional id for a flow first seen at ``frame`` (the streaming pass keeps only live flows)."""
        f = len(self.flow_first)
        self.flow_first.append(frame)
        return f

    def anomaly(
        self,
        layer: str,
        name: str,
        detail: str,
        frame: int | None = None,
        ts_ns: int | None = None,
        flow_id: int | None = None,
    ) -> None:
        if self.strict:
            raise DecodeError(name, f"frame {frame}: {detail}" if frame else detail)
        self.log.add(layer, name, detail, frame=frame, ts_ns=ts_ns, flow_id=flow_id)

    def _set_row(
        self, src: int, sport: int, dst: int, dport: int, transport: int, cls: int, via: int, flow: int
    ) -> None:
        self._row = (src, sport, dst, dport, transport, cls, via, flow)

    # -- calls between layers (implemented by the layer named) --------------------------------
    def transport(self, frame: int, ts: int, src: int, dst: int, proto: int, seg: bytes) -> None:
        """IP payload → UDP / TCP / other (the pass)."""
        raise NotImplementedError

    def media(
        self, ctx: Ctx, data: bytes, via: int = -1, channel: int | None = None, peer: str | None = None
    ) -> tuple[int, int]:
        """Classify and file one payload (``turn``)."""
        raise NotImplementedError

    def rtp_packet(
        self, ctx: Ctx, data: bytes, via: int, channel: int | None = None, peer: str | None = None
    ) -> bool:
        """Record one RTP packet (``rtpvec``); False when its header does not decode."""
        raise NotImplementedError
