"""Fast-path layer: RFC 7983 filing of one payload and TURN unwrapping (RFC 8656): ChannelData, Send and
Data indications are opened and their payload is classified in turn; ChannelBind requests are remembered so
that ChannelData can name its peer. STUN, DTLS, RTCP and ZRTP payloads are kept as ``Datagram``; RTP goes to
``rtp_packet``.
"""

from __future__ import annotations

from ..errors import DecodeError
from .demux import DTLS, OTHER, RTP, STUN, TURN_CHANNEL, classify
from .passstate import V_CHANNEL, V_DATA, V_SEND, Ctx, PassState
from .stun import AttrType, StunClass, StunMethod, message_type, walk_attributes, xor_address

STUN_SEND_INDICATION = message_type(StunMethod.SEND, StunClass.INDICATION)  # 0x0016
STUN_DATA_INDICATION = message_type(StunMethod.DATA, StunClass.INDICATION)  # 0x0017
STUN_CHANNELBIND_REQUEST = message_type(StunMethod.CHANNEL_BIND, StunClass.REQUEST)  # 0x0009
ATTR_XOR_PEER_ADDRESS, ATTR_DATA, ATTR_CHANNEL_NUMBER = (
    int(AttrType.XOR_PEER_ADDRESS),
    int(AttrType.DATA),
    int(AttrType.CHANNEL_NUMBER),
)


class TurnUnwrap(PassState):
    """Classify a payload, file it, and open TURN envelopes."""

    def media(
        self, ctx: Ctx, data: bytes, via: int = -1, channel: int | None = None, peer: str | None = None
    ) -> tuple[int, int]:
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
            self.keep(self.datagrams[c], ctx, data, via, channel, peer)
            if c == STUN and via == -1:
                turn = self._turn_stun(ctx, data)
                if turn is not None:
                    v, payload, p = turn
                    ic, _ = self.media(ctx, payload, v, None, p)
                    return ic, v
        elif c == RTP and not self.rtp_packet(ctx, data, via, channel, peer):
            c = OTHER  # not even an RTP header: the first byte alone claims nothing
        return c, via

    def _dtls_ok(self, flow: int, data: bytes) -> bool:
        """RFC 9147 unified-header records (first byte 32..63) carry no version to check: take them as
        DTLS 1.3 only on a flow that has shown a DTLS handshake record (content types 20..25) before."""
        if data[0] < 32:
            self.dtls_flows.add(flow)
            return True
        return flow in self.dtls_flows

    def _turn_stun(self, ctx: Ctx, data: bytes) -> tuple[int, bytes, str | None] | None:
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
