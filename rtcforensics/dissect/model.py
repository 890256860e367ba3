"""What one pass of the fast path hands to the table builders.

The fast path (``dissect.fastpath``) reads every packet once. Media-plane payloads that need
per-message parsing in Python (STUN/TURN, DTLS, RTCP, ZRTP) are kept as :class:`Datagram` objects in
capture order; RTP headers are extracted vectorised into column arrays; everything else (TCP that is not
TURN/RFC 4571 media framing, TLS, HTTP, WebSocket, SIP) is listed by frame number for tshark.
One row per record with bytes goes into raw numpy columns (:data:`PACKET_COLUMNS`), keyed by its Wireshark
frame number; ``tables.packets`` turns them into the public `packets` frame. The dissection layer never imports
the table layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..anomalies import AnomalyLog

# Raw per-packet columns, one row per record with bytes (zero-length records have none: they are counted in
# Dissection.info["empty_records"]); -1 means "not in the packet" throughout.
PACKET_COLUMNS = (
    ("frame", "Wireshark frame number (increasing; every record counts, zero-length ones included)"),
    ("ts_ns", "capture time, ns since the epoch"),
    ("src", "index into Dissection.addresses of the source IP (-1: not IP)"),
    ("sport", "source port (-1: none)"),
    ("dst", "index into Dissection.addresses of the destination IP"),
    ("dport", "destination port"),
    ("transport", "index into fastpath.TRANSPORTS"),
    ("length", "bytes on the wire (frame.len)"),
    ("cls", "index into demux.CLASSES"),
    ("via", "index into fastpath.VIA (-1: not via TURN)"),
    ("flow", "final flow id (numbered by first appearance; -1: not IP)"),
)


@dataclass(slots=True)
class Datagram:
    """One media-plane message (after any TURN ChannelData / Send / Data indication unwrapping).

    The 5-tuple is the outer one on the wire. When the message travelled inside TURN, ``via_turn``
    says how and ``turn_peer`` is the peer's ``ip:port`` on the far side of the relay when known.
    One UDP datagram or one RFC 4571 / TURN-TCP frame gives one Datagram; a DTLS datagram may hold
    several records (the DTLS parser splits them)."""

    frame: int
    ts_ns: int
    flow_id: int
    src: str
    sport: int
    dst: str
    dport: int
    transport: str  # "udp" | "tcp"
    data: bytes
    via_turn: str | None = None  # None | "channel" | "data_indication" | "send_indication"
    turn_channel: int | None = None
    turn_peer: str | None = None


@dataclass
class Dissection:
    """Result of one fast-path pass over a capture."""

    path: str
    info: dict[str, Any]
    # raw per-record columns (see PACKET_COLUMNS) and the interned addresses they index
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)
    stun: list[Datagram] = field(default_factory=list)
    dtls: list[Datagram] = field(default_factory=list)
    rtcp: list[Datagram] = field(default_factory=list)
    zrtp: list[Datagram] = field(default_factory=list)
    # RTP header columns, one entry per RTP packet (see tables.rtp for the names)
    rtp: dict[str, np.ndarray] = field(default_factory=dict)
    # a few payloads per (flow_id, ssrc) for plaintext evidence: {(flow_id, ssrc): [bytes, ...]}
    rtp_samples: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    # frames the fast path left to tshark (TCP that is not media framing, anything else of interest)
    control_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    anomalies: AnomalyLog = field(default_factory=AnomalyLog)
    # every RTP packet with its bytes, only when dissect(keep_payloads=True) (decryption needs them)
    rtp_payloads: list[Datagram] = field(default_factory=list)
    # TCP connections whose SYN the capture holds: flow_id -> (client ip:port, server ip:port)
    tcp_openers: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Number of records (Wireshark frames) in the capture, zero-length ones included."""
        return int(self.info.get("records", self.info.get("packets")) or 0)
