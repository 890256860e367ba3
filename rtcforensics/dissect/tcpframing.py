"""Fast-path layer: TCP. Each direction is reassembled in order (retransmissions dropped, out-of-order
segments held) until its first bytes tell what it carries (``demux.tcp_kind``). TURN-TCP (RFC 8656 §12.5)
and RFC 4571 framing are split into messages handed to ``media``; other TCP (TLS, HTTP, WebSocket, SIP …)
is only classified and listed for tshark (``control``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .demux import HTTP, OTHER, SIP, TCP_DECIDE_BYTES, TLS, WEBSOCKET, tcp_kind
from .passstate import T_TCP, Ctx, PassState

_QUICK = {"tls": TLS, "sip": SIP, "other": OTHER}  # directions whose segments need no reassembly here
TCP_MAX_PENDING = 64  # out-of-order segments held per direction before giving up on the gap


@dataclass
class _TcpDir:
    next_seq: int | None = None
    kind: str | None = None  # turn | rfc4571 | tls | http | sip | websocket | other
    buf: bytearray = field(default_factory=bytearray)
    pending: dict[int, bytes] = field(default_factory=dict)
    broken: bool = False
    last_ctx: Any = None  # while undecided: where the buffered bytes were last extended


class TcpFraming(PassState):
    """TCP directions: ordering, kind, and TURN-TCP / RFC 4571 message framing."""

    def control_class(self, flow: int, src: int, sport: int) -> int:
        """Class of a direction already known to be control plane that takes the quick path (TLS, SIP or
        other, not a WebSocket flow); -1 when the direction still needs the per-segment path."""
        d = self.tcp.get((flow, src, sport))
        if d is None or flow in self.websocket_flows:
            return -1
        return _QUICK.get(d.kind or "", -1)

    def known_control_class(
        self, fl: np.ndarray, s_id: np.ndarray, sp: np.ndarray, d_id: np.ndarray, dp: np.ndarray
    ) -> np.ndarray:
        """``control_class`` of every TCP segment of a batch (looked up once per direction)."""
        # direction = flow and which end sent it
        dkey = fl * 2 + (((s_id.astype(np.int64) << 16) | sp) > ((d_id.astype(np.int64) << 16) | dp))
        ukeys, first, inv = np.unique(dkey, return_index=True, return_inverse=True)
        kind_code = np.full(len(ukeys), -1, dtype=np.int8)
        for k, j0 in enumerate(first.tolist()):
            kind_code[k] = self.control_class(int(fl[j0]), int(s_id[j0]), int(sp[j0]))
        return kind_code[inv.reshape(-1)]

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
        for f in self.frag_frames:  # earlier fragments of this segment: tshark needs them too
            if f != frame:
                self.tcp_slow.append((fl, f))
        if doff < 20 or doff > len(seg):
            self.anomaly(
                "tcp",
                "tcp_header_invalid",
                f"TCP data offset {doff} is invalid",
                frame=frame,
                ts_ns=ts,
                flow_id=fl,
            )
            self._set_row(src, sport, dst, dport, T_TCP, OTHER, -1, fl)
            return
        payload = seg[doff:]
        d = self.tcp.get((fl, src, sport))
        if d is None:
            d = self.tcp[(fl, src, sport)] = _TcpDir()
        if flags & 0x02:  # SYN
            d.next_seq = (seq + 1) & 0xFFFFFFFF
            if not flags & 0x10:  # SYN without ACK: this end opened the connection
                self.tcp_openers.setdefault(fl, (src, sport, dst, dport))
        cls, via = self._tcp_kind_class(d, fl), -1
        if payload and d.kind not in (None, "turn", "rfc4571"):  # control plane: tshark reassembles it
            if d.kind == "http" and payload.startswith(b"HTTP/1.1 101"):
                self.websocket_flows.add(fl)
        elif payload and not d.broken:
            if d.next_seq is None:
                d.next_seq = seq  # capture started mid-stream
            ctx = Ctx(frame, ts, fl, src, sport, dst, dport, "tcp")
            cls, via = self._tcp_data(ctx, d, seq, payload)
        self._set_row(src, sport, dst, dport, T_TCP, cls, via, fl)

    def _tcp_kind_class(self, d: _TcpDir, fl: int) -> int:
        if fl in self.websocket_flows:
            return WEBSOCKET
        return {"tls": TLS, "http": HTTP, "sip": SIP}.get(d.kind or "", OTHER)

    def _tcp_data(self, ctx: Ctx, d: _TcpDir, seq: int, payload: bytes) -> tuple[int, int]:
        """Append one segment's bytes in order; (class, TURN via code) for its packets row."""
        assert d.next_seq is not None  # set by the caller (internal invariant)
        rel = (seq - d.next_seq) & 0xFFFFFFFF
        if rel >= 0x80000000:  # old data: retransmission, possibly with new bytes at its end
            back = 0x100000000 - rel
            if back >= len(payload):
                return self._tcp_kind_class(d, ctx.flow), -1
            payload = payload[back:]
        elif rel > 0:  # a gap: hold the segment until the missing bytes arrive
            if len(d.pending) < TCP_MAX_PENDING:
                d.pending[seq] = payload
                return self._tcp_kind_class(d, ctx.flow), -1
            self.anomaly(
                "tcp",
                "tcp_gap",
                f"TCP stream lost {rel} bytes (segments missing from the capture)",
                frame=ctx.frame,
                ts_ns=ctx.ts,
                flow_id=ctx.flow,
            )
            d.buf.clear()
            if d.kind in ("turn", "rfc4571"):
                d.broken = True
                return OTHER, -1
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
                return OTHER, -1
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
        return self._tcp_kind_class(d, ctx.flow), -1

    def _tcp_append(self, d: _TcpDir, payload: bytes) -> None:
        assert d.next_seq is not None
        if d.kind is None or d.kind in ("turn", "rfc4571"):
            d.buf += payload
        d.next_seq = (d.next_seq + len(payload)) & 0xFFFFFFFF

    def _tcp_messages(self, ctx: Ctx, d: _TcpDir) -> tuple[int, int]:
        """Split the reassembled stream into messages; each complete one is demultiplexed. Returns the
        (class, TURN via code) of the last complete message (ChannelData over TURN-TCP is ``V_CHANNEL``)."""
        buf = d.buf
        cls, via = OTHER, -1
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
                    return cls, via
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
            cls, via = self.media(ctx, msg)
        del buf[:pos]
        return cls, via

    def _framing_lost(self, ctx: Ctx, d: _TcpDir, detail: str) -> None:
        self.anomaly(
            "tcp",
            "tcp_framing_lost",
            detail + "; the rest of this direction is not dissected",
            frame=ctx.frame,
            ts_ns=ctx.ts,
            flow_id=ctx.flow,
        )
        d.broken = True
        d.buf.clear()

    def finish_tcp(self) -> None:
        """Decide directions still undecided, split what they hold, and list every TCP frame that is not
        media framing for tshark."""
        for d in self.tcp.values():
            if d.kind is None and d.buf and d.last_ctx is not None:
                d.kind = tcp_kind(bytes(d.buf[:TCP_DECIDE_BYTES]), final=True)
                if d.kind in ("turn", "rfc4571"):
                    self._tcp_messages(d.last_ctx, d)
        self.list_tcp_control()

    def list_tcp_control(self) -> None:
        """Move the TCP frames seen so far (``tcp_seen``, ``tcp_slow``) that are not media framing to
        ``control``. At the end of the pass every direction is decided; the streaming pass calls it per chunk,
        when a direction still undecided counts as control."""
        media_flows = np.array(
            sorted({fl for (fl, _s, _p), d in self.tcp.items() if d.kind in ("turn", "rfc4571")}),
            dtype=np.int64,
        )
        seen = list(self.tcp_seen)
        if self.tcp_slow:
            sl = np.array(self.tcp_slow, dtype=np.int64)
            seen.append((sl[:, 0], sl[:, 1]))
        self.tcp_seen, self.tcp_slow = [], []
        if seen:
            flows_ = np.concatenate([f for f, _ in seen])
            frames_ = np.concatenate([f for _, f in seen])
            self.control.extend(frames_[~np.isin(flows_, media_flows)].tolist())
