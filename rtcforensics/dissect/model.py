"""What one pass of the fast path hands to the table builders.

The fast path (``dissect.fastpath``) reads every packet once. Media-plane payloads that need
per-message parsing in Python (STUN/TURN, DTLS, RTCP, ZRTP) are kept in capture order in :class:`Datagrams`
(columns, about 64 bytes plus the payload per message; a :class:`Datagram` object is made on access); RTP headers are extracted vectorised into column arrays; everything else (TCP that is not
TURN/RFC 4571 media framing, TLS, HTTP, WebSocket, SIP) is listed by frame number for tshark.
One row per record with bytes goes into raw numpy columns (:data:`PACKET_COLUMNS`), keyed by its Wireshark
frame number; ``tables.packets`` turns them into the public `packets` frame. The dissection layer never imports
the table layer.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

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


VIA = ("channel", "data_indication", "send_indication")  # Datagram.via_turn values; fastpath codes 0..2


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


# Datagrams columns: name -> array typecode (strings are ids into Datagrams.strings; -1 = None)
_NUMBERS = {"frame": "q", "ts_ns": "q", "flow_id": "q", "sport": "i", "dport": "i", "turn_channel": "i"}
_STRINGS = ("src", "dst", "transport", "via_turn", "turn_peer")
_DTYPES = {"q": np.int64, "i": np.int32}
assert array("q").itemsize == 8 and array("i").itemsize == 4


class Datagrams(Sequence[Datagram]):
    """Datagrams in capture order, held as columns: numbers in typed arrays, addresses and other strings
    interned to ids into :attr:`strings`, payloads concatenated in one buffer (about 64 bytes per message
    besides its payload, against ~400 for a :class:`Datagram` object with its ints and bytes).

    Iterating and indexing make one :class:`Datagram` at a time, a fresh object each time: changing it
    does not change the container (use :meth:`renumber_flows` / :meth:`retain`). Filled with :meth:`add`
    (the fields, no Datagram needed) or :meth:`append`; read column-wise with :meth:`column` / :meth:`codes`
    / :meth:`payloads` (``dissect.stream`` turns them into Arrow columns)."""

    __slots__ = ("_data", "_end", "_ids", "_num", "_str", "strings")

    def __init__(self, items: Iterable[Datagram] = ()) -> None:
        self._num = {n: array(t) for n, t in _NUMBERS.items()}
        self._str = {n: array("i") for n in _STRINGS}
        self._end = array("q")  # end of each payload in _data (it starts where the previous one ends)
        self._data = bytearray()
        self.strings: list[str] = []  # every distinct string of the string columns, by id
        self._ids: dict[str, int] = {}
        for dg in items:
            self.append(dg)

    def _id(self, s: str | None) -> int:
        if s is None:
            return -1
        i = self._ids.get(s)
        if i is None:
            i = self._ids[s] = len(self.strings)
            self.strings.append(s)
        return i

    def add(
        self,
        frame: int,
        ts_ns: int,
        flow_id: int,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        transport: str,
        data: bytes | bytearray | memoryview,
        via_turn: str | None = None,
        turn_channel: int | None = None,
        turn_peer: str | None = None,
    ) -> None:
        """Append one message by its fields (those of :class:`Datagram`); ``data`` is copied."""
        num, st, ids = self._num, self._str, self._ids
        num["frame"].append(frame)
        num["ts_ns"].append(ts_ns)
        num["flow_id"].append(flow_id)
        num["sport"].append(sport)
        num["dport"].append(dport)
        num["turn_channel"].append(-1 if turn_channel is None else turn_channel)
        s = ids.get(src)
        st["src"].append(self._id(src) if s is None else s)
        s = ids.get(dst)
        st["dst"].append(self._id(dst) if s is None else s)
        s = ids.get(transport)
        st["transport"].append(self._id(transport) if s is None else s)
        st["via_turn"].append(-1 if via_turn is None else self._id(via_turn))
        st["turn_peer"].append(-1 if turn_peer is None else self._id(turn_peer))
        self._data += data
        self._end.append(len(self._data))

    def append(self, dg: Datagram) -> None:
        self.add(
            dg.frame,
            dg.ts_ns,
            dg.flow_id,
            dg.src,
            dg.sport,
            dg.dst,
            dg.dport,
            dg.transport,
            dg.data,
            dg.via_turn,
            dg.turn_channel,
            dg.turn_peer,
        )

    def extend(self, items: Iterable[Datagram]) -> None:
        for dg in items:
            self.append(dg)

    def __len__(self) -> int:
        return len(self._end)

    def _make(self, i: int) -> Datagram:
        num, st, names = self._num, self._str, self.strings
        via, peer, ch = st["via_turn"][i], st["turn_peer"][i], num["turn_channel"][i]
        return Datagram(
            num["frame"][i],
            num["ts_ns"][i],
            num["flow_id"][i],
            names[st["src"][i]],
            num["sport"][i],
            names[st["dst"][i]],
            num["dport"][i],
            names[st["transport"][i]],
            bytes(self._data[self._end[i - 1] if i else 0 : self._end[i]]),
            None if via < 0 else names[via],
            None if ch < 0 else ch,
            None if peer < 0 else names[peer],
        )

    @overload
    def __getitem__(self, i: int) -> Datagram: ...

    @overload
    def __getitem__(self, i: slice) -> list[Datagram]: ...

    def __getitem__(self, i: int | slice) -> Datagram | list[Datagram]:
        """One message (a fresh Datagram), or a list of them for a slice (as a list would give)."""
        n = len(self)
        if isinstance(i, slice):
            return [self._make(k) for k in range(*i.indices(n))]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("Datagrams index out of range")
        return self._make(i)

    def __iter__(self) -> Iterator[Datagram]:
        num, st, names, data = self._num, self._str, self.strings, self._data
        start = 0
        for fr, ts, fl, s, sp, d, dp, t, via, ch, peer, end in zip(
            num["frame"],
            num["ts_ns"],
            num["flow_id"],
            st["src"],
            num["sport"],
            st["dst"],
            num["dport"],
            st["transport"],
            st["via_turn"],
            num["turn_channel"],
            st["turn_peer"],
            self._end,
        ):
            yield Datagram(
                fr,
                ts,
                fl,
                names[s],
                sp,
                names[d],
                dp,
                names[t],
                bytes(data[start:end]),
                None if via < 0 else names[via],
                None if ch < 0 else ch,
                None if peer < 0 else names[peer],
            )
            start = end

    def drain(self, step: int = 100_000) -> Iterator[Datagram]:
        """Every message in order, as iteration gives them, letting go of those already given ``step`` at a
        time (at least an eighth of the store at a time): afterwards the store is empty. For a consumer that
        holds the only reference and turns the messages into something else (the `stun` frame): the store
        shrinks as the result grows, rather than both being held at the end."""
        step = max(1, step, len(self) // 8)
        while len(self):
            head = self._split_front(min(step, len(self)))
            yield from head
            del head

    def _split_front(self, k: int) -> Datagrams:
        """The first ``k`` messages as a new store (sharing :attr:`strings`); this one keeps the rest, in
        new buffers so that the memory of the first ``k`` is released."""
        head = Datagrams()
        head.strings, head._ids = self.strings, self._ids
        for cols, into in ((self._num, head._num), (self._str, head._str)):
            for name, a in cols.items():
                into[name], cols[name] = a[:k], a[k:]
        cut = self._end[k - 1]
        head._end = self._end[:k]
        head._data, self._data = self._data[:cut], self._data[cut:]
        rest = np.frombuffer(self._end, dtype=np.int64)[k:] - cut
        self._end = array("q", rest.tobytes())
        return head

    def __repr__(self) -> str:
        return f"<Datagrams: {len(self)} messages, {len(self._data)} payload bytes>"

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns and payloads (not counting over-allocation and the strings)."""
        arrays = (*self._num.values(), *self._str.values(), self._end)
        return sum(a.itemsize * len(a) for a in arrays) + len(self._data)

    # -- column-wise ----------------------------------------------------------------------------
    def column(self, name: str) -> np.ndarray:
        """A copy of number column ``name`` (frame, ts_ns, flow_id: int64; sport, dport, turn_channel: int32,
        -1 where ``turn_channel`` is None)."""
        a = self._num[name]
        return (
            np.frombuffer(a, dtype=_DTYPES[a.typecode]).copy() if len(a) else np.zeros(0, _DTYPES[a.typecode])
        )

    def codes(self, name: str) -> np.ndarray:
        """Ids into :attr:`strings` of string column ``name`` (src, dst, transport, via_turn, turn_peer) as
        int32, -1 where the value is None (a copy)."""
        a = self._str[name]
        return np.frombuffer(a, dtype=np.int32).copy() if len(a) else np.zeros(0, np.int32)

    def payloads(self) -> tuple[np.ndarray, bytes]:
        """(offsets, buffer): message i's bytes are ``buffer[offsets[i]:offsets[i + 1]]`` (len + 1 offsets)."""
        ends = np.frombuffer(self._end, dtype=np.int64) if len(self._end) else np.zeros(0, np.int64)
        return np.concatenate([np.zeros(1, np.int64), ends]), bytes(self._data)

    @classmethod
    def from_columns(
        cls,
        numbers: Mapping[str, np.ndarray],
        strings: Mapping[str, tuple[Sequence[str], np.ndarray]],
        offsets: np.ndarray,
        buffer: bytes | bytearray | memoryview,
    ) -> Datagrams:
        """Messages from whole columns: ``numbers`` as :meth:`column` gives them, ``strings`` as
        (values, ids into values with -1 for None) per string column, payloads as :meth:`payloads` gives
        them (``offsets[0]`` need not be 0)."""
        out = cls()
        for name, t in _NUMBERS.items():
            out._num[name].frombytes(np.ascontiguousarray(numbers[name], dtype=_DTYPES[t]).tobytes())
        for name in _STRINGS:
            values, ids = strings[name]
            remap = np.array([out._id(v) for v in values] + [-1], dtype=np.int32)
            ids = np.asarray(ids, dtype=np.int64)
            out._str[name].frombytes(remap[np.where(ids < 0, len(values), ids)].tobytes())
        offsets = np.asarray(offsets, dtype=np.int64)
        out._data += memoryview(buffer)[int(offsets[0]) : int(offsets[-1])] if len(offsets) else b""
        out._end.frombytes((offsets[1:] - (offsets[0] if len(offsets) else 0)).tobytes())
        lens = {len(a) for a in (*out._num.values(), *out._str.values(), out._end)}
        if len(lens) > 1:
            raise ValueError(f"Datagrams columns of different lengths: {sorted(lens)}")
        return out

    def renumber_flows(self, flow_map: np.ndarray) -> None:
        """Replace each message's flow id ``f`` with ``flow_map[f]``."""
        if len(self):
            new = np.asarray(flow_map, dtype=np.int64)[self.column("flow_id")]
            self._num["flow_id"] = array("q", new.tobytes())

    def retain(self, keep: np.ndarray | Sequence[bool]) -> None:
        """Keep only the messages where ``keep`` is true (in place, order kept)."""
        keep = np.asarray(keep, dtype=bool)
        if len(keep) != len(self):
            raise ValueError(f"retain: {len(keep)} flags for {len(self)} messages")
        if keep.all():
            return
        idx = np.flatnonzero(keep)
        for cols in (self._num, self._str):
            for name, a in cols.items():
                cols[name] = array(a.typecode, np.frombuffer(a, dtype=_DTYPES[a.typecode])[idx].tobytes())
        offsets, buf = self.payloads()
        view = memoryview(buf)
        self._data = bytearray(b"".join(view[offsets[i] : offsets[i + 1]] for i in idx.tolist()))
        self._end = array("q", np.cumsum(np.diff(offsets)[idx], dtype=np.int64).tobytes())


class ReleasedDatagrams(Datagrams):
    """Stands where a :class:`Datagrams` was once what it held is no longer kept (e.g. the STUN messages once
    the `stun` frame is built from them): reading it raises ``RuntimeError`` saying why, never an empty
    sequence."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why

    def _refuse(self) -> RuntimeError:
        return RuntimeError(f"these datagrams are no longer held: {self.why}")

    def __len__(self) -> int:
        raise self._refuse()

    def __iter__(self) -> Iterator[Datagram]:
        raise self._refuse()

    def __getitem__(self, i: Any) -> Any:
        raise self._refuse()

    def add(self, *args: Any, **kwargs: Any) -> None:
        raise self._refuse()

    def column(self, name: str) -> np.ndarray:
        raise self._refuse()

    def codes(self, name: str) -> np.ndarray:
        raise self._refuse()

    def payloads(self) -> tuple[np.ndarray, bytes]:
        raise self._refuse()

    def __repr__(self) -> str:
        return f"<Datagrams released: {self.why}>"


@dataclass
class Dissection:
    """Result of one fast-path pass over a capture."""

    path: str
    info: dict[str, Any]
    # raw per-record columns (see PACKET_COLUMNS) and the interned addresses they index
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)
    # the media-plane messages: Datagrams from the fast path (a Sequence: the streamed load reads them from disk)
    stun: Sequence[Datagram] = field(default_factory=Datagrams)
    dtls: Sequence[Datagram] = field(default_factory=Datagrams)
    rtcp: Sequence[Datagram] = field(default_factory=Datagrams)
    zrtp: Sequence[Datagram] = field(default_factory=Datagrams)
    # RTP header columns, one entry per RTP packet (see tables.rtp for the names)
    rtp: dict[str, np.ndarray] = field(default_factory=dict)
    # a few payloads per (flow_id, ssrc) for plaintext evidence: {(flow_id, ssrc): [bytes, ...]}
    rtp_samples: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    # frames the fast path left to tshark (TCP that is not media framing, anything else of interest)
    control_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    anomalies: AnomalyLog = field(default_factory=AnomalyLog)
    # every RTP packet with its bytes, only when dissect(keep_payloads=True) (decryption needs them)
    rtp_payloads: Sequence[Datagram] = field(default_factory=Datagrams)
    # TCP connections whose SYN the capture holds: flow_id -> (client ip:port, server ip:port)
    tcp_openers: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Number of records (Wireshark frames) in the capture, zero-length ones included."""
        return int(self.info.get("records", self.info.get("packets")) or 0)
