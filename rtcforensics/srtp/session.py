"""Authenticate and decrypt SRTP/SRTCP streams with libsrtp (pylibsrtp), one libsrtp session per stream.

A stream is (flow_id, sender ip:port, SSRC): each leg of a relayed call is its own stream, so the same packet
seen twice on the wire (client→TURN and TURN→peer) is not taken for a replay.

libsrtp checks the replay window before it authenticates: a packet it rejects as a replay was never
authenticated. Such a packet counts as ``replayed`` only when its tag verifies with the stream's key (at the
rollover counter a receiver would give it, :mod:`.verify`; SRTCP carries its index, so a fresh libsrtp session
verifies it); otherwise it is an authentication failure: injected packets that share a real SSRC with their own
sequence numbers fall behind the window about half of the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pylibsrtp

from .keys import MasterKey
from .verify import guess_index, rtp_tag_verifies

REPLAY_WINDOW = 1024  # a capture may reorder within a flow; 1024 keeps genuine replays visible


@dataclass(slots=True)
class MediaPacket:
    """One SRTP or SRTCP packet as it travelled (after TURN unwrapping)."""

    frame: int
    ts_ns: int
    flow_id: int
    sender: str  # "ip:port"
    receiver: str
    ssrc: int
    rtcp: bool
    data: bytes
    via_turn: str | None = None


@dataclass
class StreamState:
    flow_id: int
    sender: str
    receiver: str
    ssrc: int
    key: MasterKey | None = None
    key_source: str | None = None
    session: pylibsrtp.Session | None = None
    rtp_packets: int = 0
    rtcp_packets: int = 0
    authenticated: int = 0
    auth_failed: int = 0
    replayed: int = 0
    no_key: int = 0
    failed_frames: list[int] = field(default_factory=list)
    payload_types: set[int] = field(default_factory=set)
    keys_tried: int = 0  # candidate keys offered for this stream (none verified when key is None)
    highest_index: int | None = None  # highest RTP packet index (ROC << 16 | SEQ) that authenticated
    # (frame, ts_ns, seq, pt, rtp_ts, marker, plaintext rtp packet) for output writers
    plain: list[tuple[int, int, int, int, int, int, bytes]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.key is None:
            return "authentication failed" if self.keys_tried else "no key"
        if self.authenticated and not self.auth_failed:
            return "authenticated"
        if self.authenticated:
            return "partly authenticated"
        return "authentication failed"


def _session(key: MasterKey) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key.key_salt,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=getattr(pylibsrtp.Policy, key.profile.libsrtp),
    )
    policy.window_size = REPLAY_WINDOW
    return pylibsrtp.Session(policy=policy)


def _try(session: pylibsrtp.Session, pkt: MediaPacket) -> bytes | None:
    try:
        return session.unprotect_rtcp(pkt.data) if pkt.rtcp else session.unprotect(pkt.data)
    except pylibsrtp.Error as e:
        if "replay" in str(e).lower():
            raise _Replay from None
        return None


class _Replay(Exception):
    pass


def _verifies_outside_window(st: StreamState, pkt: MediaPacket) -> bool:
    """A packet libsrtp turned away as a replay: does its tag verify with the stream's key? SRTP: at the ROC a
    receiver would estimate for it, or one either side (libsrtp estimates ROC 0 until the index passes 2^15);
    SRTCP: a fresh session (the index travels in the packet, so there is nothing to estimate)."""
    assert st.key is not None
    if pkt.rtcp:
        try:
            return _try(_session(st.key), pkt) is not None
        except _Replay:
            return False
    roc = guess_index(st.highest_index, int.from_bytes(pkt.data[2:4], "big")) >> 16
    return any(rtp_tag_verifies(st.key, pkt.data, r) for r in (roc, roc - 1, roc + 1))


def choose_key(
    candidates: list[tuple[MasterKey, str]], first: list[MediaPacket]
) -> tuple[MasterKey, str] | None:
    """The candidate key that authenticates the stream's first packets (a tag cannot verify by chance)."""
    for key, source in candidates:
        s = _session(key)
        for pkt in first:
            try:
                if _try(s, pkt) is not None:
                    return key, source
            except _Replay:
                continue
    return None


def decrypt_streams(
    packets: Iterable[MediaPacket], keys_for: KeyLookup
) -> dict[tuple[int, str, int], StreamState]:
    """Run every packet through its stream's libsrtp session; returns per-stream state with plaintext RTP."""
    streams: dict[tuple[int, str, int], StreamState] = {}
    pending: dict[tuple[int, str, int], list[MediaPacket]] = {}
    chosen_by_direction: dict[tuple[int, str], list[tuple[MasterKey, str]]] = {}
    probe = 4  # packets buffered to pick the key

    def feed(st: StreamState, pkt: MediaPacket) -> None:
        if pkt.rtcp:
            st.rtcp_packets += 1
        else:
            st.rtp_packets += 1
        if st.session is None:
            if st.keys_tried:  # a key meant for this stream was tried on it and verified nothing
                st.auth_failed += 1
                if len(st.failed_frames) < 50:
                    st.failed_frames.append(pkt.frame)
            else:
                st.no_key += 1
            return
        try:
            out = _try(st.session, pkt)
        except _Replay:
            if _verifies_outside_window(st, pkt):
                st.replayed += 1
                return
            out = None
        if out is None:
            st.auth_failed += 1
            if len(st.failed_frames) < 50:
                st.failed_frames.append(pkt.frame)
            return
        st.authenticated += 1
        if not pkt.rtcp and len(out) >= 12:
            seq = int.from_bytes(out[2:4], "big")
            idx = guess_index(st.highest_index, seq)
            st.highest_index = idx if st.highest_index is None else max(st.highest_index, idx)
            pt = out[1] & 0x7F
            st.payload_types.add(pt)
            st.plain.append(
                (pkt.frame, pkt.ts_ns, seq, pt, int.from_bytes(out[4:8], "big"), out[1] >> 7, out)
            )

    def settle(k: tuple[int, str, int]) -> None:
        buf = pending.pop(k)
        st = streams[k]
        rtp_first = [p for p in buf if not p.rtcp] or buf
        candidates = keys_for(buf[0])
        direction = (st.flow_id, st.sender)
        if all(p.rtcp for p in buf):
            # an RTCP-only SSRC (e.g. browsers' 0xfa17fa17 receiver reports) has no key of its own: the sender's
            # other streams' keys protect its SRTCP (one DTLS-SRTP or SDES key per direction)
            candidates += [c for c in chosen_by_direction.get(direction, []) if c not in candidates]
        # only keys bound to this stream (its SSRC, its flow and sender) make a failure "authentication failed";
        # keys offered to any stream that don't fit just mean no key was found for it
        st.keys_tried = keys_for.specific(buf[0])
        chosen = choose_key(candidates, rtp_first)
        if chosen is not None:
            st.key, st.key_source = chosen
            st.session = _session(st.key)
            if chosen not in chosen_by_direction.setdefault(direction, []):
                chosen_by_direction[direction].append(chosen)
        elif st.keys_tried:
            st.key_source = keys_for.specific_sources(buf[0])[0]
        for p in buf:
            feed(st, p)

    for pkt in packets:
        k = (pkt.flow_id, pkt.sender, pkt.ssrc)
        if k not in streams:
            streams[k] = StreamState(pkt.flow_id, pkt.sender, pkt.receiver, pkt.ssrc)
            pending[k] = []
        if k in pending:
            pending[k].append(pkt)
            if sum(1 for p in pending[k] if not p.rtcp) >= probe:
                settle(k)
            continue
        feed(streams[k], pkt)
    for k in list(pending):
        settle(k)
    for st in streams.values():
        # free libsrtp state now: a Session kept in a cached result until interpreter exit would be finalised
        # after libsrtp itself is torn down, and pylibsrtp then prints a traceback
        st.session = None
    return streams


class KeyLookup:
    """Candidate master keys for a packet: per SSRC (SDES, user keys) and per flow+sender (DTLS-SRTP)."""

    def __init__(self) -> None:
        self.by_ssrc: dict[int, list[tuple[MasterKey, str]]] = {}
        self.by_sender: dict[tuple[int, str], list[tuple[MasterKey, str]]] = {}
        self.any: list[tuple[MasterKey, str]] = []

    def add_ssrc(self, ssrc: int, key: MasterKey, source: str) -> None:
        self.by_ssrc.setdefault(ssrc, []).append((key, source))

    def add_sender(self, flow_id: int, sender: str, key: MasterKey, source: str) -> None:
        self.by_sender.setdefault((flow_id, sender), []).append((key, source))

    def add_any(self, key: MasterKey, source: str) -> None:
        self.any.append((key, source))

    def specific(self, pkt: MediaPacket) -> int:
        return len(self.specific_sources(pkt))

    def specific_sources(self, pkt: MediaPacket) -> list[str]:
        """Where the keys bound to this packet's stream (its SSRC, or its flow and sender) came from."""
        return [
            src
            for _, src in (
                *self.by_ssrc.get(pkt.ssrc, ()),
                *self.by_sender.get((pkt.flow_id, pkt.sender), ()),
            )
        ]

    def __call__(self, pkt: MediaPacket) -> list[tuple[MasterKey, str]]:
        out = list(self.by_ssrc.get(pkt.ssrc, ()))
        out += self.by_sender.get((pkt.flow_id, pkt.sender), [])
        out += [k for k in self.any if k not in out]
        return out


def iter_sorted(packets: Iterable[MediaPacket]) -> Iterator[MediaPacket]:
    return iter(sorted(packets, key=lambda p: p.frame))
