"""The `stun` frame: one row per STUN/TURN message (outer messages and messages unwrapped from TURN)."""

from __future__ import annotations

import gc
import re
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.arrays import ArrowStringArray

from ..anomalies import AnomalyLog
from ..budget import give_back
from ..capture import Capture, register_frame
from ..dissect.model import Datagram, Datagrams, ReleasedDatagrams
from ..dissect.stun import TURN_METHODS, AttrType, StunClass, StunMessage
from ..errors import DecodeError
from ..schema import frame_schema

STUN = frame_schema(
    "stun",
    "One row per STUN/TURN message (RFC 8489/5389/3489, TURN RFC 8656/6062, ICE RFC 8445), in capture "
    "order. A TURN Send/Data indication is a row; a STUN message it carries (an ICE check through the relay) "
    "is another row with via_turn set. Addresses are 'ip:port' ('[ip]:port' for IPv6), XOR attributes "
    "already de-XORed. Secrets are never stored: MESSAGE-INTEGRITY is reported by presence only and an "
    "RFC 3489 PASSWORD attribute only appears in attr_names.",
    [
        ("frame", "Int64", "Wireshark frame number"),
        ("ts", "ts", "capture time (UTC)"),
        ("flow_id", "Int64", "flow (bidirectional 5-tuple on the wire) the message travelled in"),
        ("src", "string", "source IP on the wire (the TURN client or server for relayed messages)"),
        ("sport", "Int32", "source port"),
        ("dst", "string", "destination IP on the wire"),
        ("dport", "Int32", "destination port"),
        ("transport", "category:udp,tcp", "transport on the wire"),
        (
            "via_turn",
            "category:channel,data_indication,send_indication",
            "how the message was wrapped in TURN; NA when it travelled bare",
        ),
        ("turn_peer", "string", "peer ip:port on the far side of the relay, for messages via TURN"),
        ("turn_channel", "Int32", "TURN channel number, for messages that travelled in ChannelData"),
        (
            "method",
            "string",
            (
                "IANA method name (Binding, Allocate, Refresh, Send, Data, CreatePermission, "
                "ChannelBind, ...); unknown codes as '0x0nn'"
            ),
        ),
        ("cls", "category:request,success,error,indication", "message class (RFC 8489 §5 C1C0 bits)"),
        ("txid", "string", "transaction id, lowercase hex (12 bytes; 16 for classic RFC 3489 messages)"),
        ("classic", "boolean", "no magic cookie: an RFC 3489 message"),
        ("username", "string", "USERNAME (ICE 'ufrag:ufrag', TURN user or REST 'expiry:user'); not a secret"),
        ("realm", "string", "REALM"),
        ("nonce_present", "boolean", "a NONCE attribute is present"),
        ("software", "string", "SOFTWARE (implementation and version)"),
        ("error_code", "Int32", "ERROR-CODE number (e.g. 401, 437)"),
        ("error_reason", "string", "ERROR-CODE reason phrase"),
        ("mapped", "string", "MAPPED-ADDRESS"),
        (
            "xor_mapped",
            "string",
            ("XOR-MAPPED-ADDRESS (0x0020; the MS-TURN/pre-RFC code 0x8020 when only that is present)"),
        ),
        ("xor_relayed", "string", "XOR-RELAYED-ADDRESS"),
        (
            "xor_peer",
            "string",
            (
                "every XOR-PEER-ADDRESS in wire order, joined with ',' (split on ',' to get "
                "the list; IPv6 is bracketed so it never contains ',')"
            ),
        ),
        ("xor_peer_count", "Int32", "number of XOR-PEER-ADDRESS attributes (0 when none)"),
        ("lifetime_s", "Int64", "LIFETIME in seconds"),
        ("channel", "Int32", "CHANNEL-NUMBER (0x4000-0x4FFF)"),
        ("priority", "UInt32", "ICE PRIORITY"),
        ("use_candidate", "boolean", "USE-CANDIDATE present (ICE nomination)"),
        ("ice_role", "category:controlling,controlled", "ICE-CONTROLLING / ICE-CONTROLLED present"),
        ("tiebreaker", "UInt64", "the ICE role attribute's 64-bit tie-breaker"),
        ("has_integrity", "boolean", "MESSAGE-INTEGRITY (HMAC-SHA1) present"),
        ("has_integrity_sha256", "boolean", "MESSAGE-INTEGRITY-SHA256 present"),
        ("has_fingerprint", "boolean", "FINGERPRINT present"),
        ("fingerprint_ok", "boolean", "FINGERPRINT CRC-32 verified; NA when there is no FINGERPRINT"),
        (
            "unknown_attrs",
            "object",
            "list of attribute codes we do not know, as '0xnnnn' (kept, not dropped)",
        ),
        (
            "unknown_required",
            "boolean",
            "an unknown attribute is in the comprehension-required range (< 0x8000)",
        ),
        (
            "attr_names",
            "object",
            (
                "list of attribute names in wire order (IANA names; '0xnnnn' when unknown); "
                "not 'attrs', which pandas reserves (DataFrame.attrs)"
            ),
        ),
        ("requested_transport", "string", "REQUESTED-TRANSPORT: 'udp', 'tcp' or 'proto N'"),
        (
            "rest_expiry",
            "ts",
            "TURN REST credential expiry, from a TURN-method USERNAME '<unix expiry>:<user>'",
        ),
        (
            "rtt_ms",
            "float64",
            (
                "request to response time in ms, by transaction id and method on the same flow "
                "(any flow when none there): on a response row "
                "from the last transmission of its request before it; on that request row the same "
                "value (earlier retransmissions: NA)"
            ),
        ),
        ("response_frame", "Int64", "on a request row: frame of the first response matched to it"),
        ("request_frame", "Int64", "on a response row: frame of the request transmission it is timed from"),
    ],
)

_REST_USERNAME = re.compile(r"^(\d{9,11}):")
_TRANSPORTS = {17: "udp", 6: "tcp"}


_ERROR_CODE, _XOR_MAPPED, _MS_XOR_MAPPED = (
    AttrType.ERROR_CODE,
    AttrType.XOR_MAPPED_ADDRESS,
    AttrType.MS_XOR_MAPPED_ADDRESS,
)
_XOR_PEER, _CONTROLLING, _CONTROLLED = (
    AttrType.XOR_PEER_ADDRESS,
    AttrType.ICE_CONTROLLING,
    AttrType.ICE_CONTROLLED,
)
_USERNAME, _TRANSPORT, _REALM, _NONCE = (
    AttrType.USERNAME,
    AttrType.REQUESTED_TRANSPORT,
    AttrType.REALM,
    AttrType.NONCE,
)
_SOFTWARE, _MAPPED, _RELAYED, _LIFETIME = (
    AttrType.SOFTWARE,
    AttrType.MAPPED_ADDRESS,
    AttrType.XOR_RELAYED_ADDRESS,
    AttrType.LIFETIME,
)
_CHANNEL, _PRIORITY, _USE_CANDIDATE = AttrType.CHANNEL_NUMBER, AttrType.PRIORITY, AttrType.USE_CANDIDATE
_INTEGRITY, _INTEGRITY_SHA256, _FINGERPRINT = (
    AttrType.MESSAGE_INTEGRITY,
    AttrType.MESSAGE_INTEGRITY_SHA256,
    AttrType.FINGERPRINT,
)


class _Lists:
    """One list object per distinct attr_names / unknown_attrs value of a frame (a list per row cost 128 and
    64 bytes at 10^6 rows); beyond ``limit`` distinct values, new values get lists of their own."""

    def __init__(self, limit: int = 10_000) -> None:
        self.names: dict[tuple[int, ...], list[str]] = {}
        self.unknown: dict[tuple[int, ...], list[str]] = {}
        self.limit = limit

    def attr_names(self, msg: StunMessage) -> list[str]:
        key = tuple([a.type for a in msg.attributes])
        names = self.names.get(key)
        if names is None:
            names = msg.attribute_names
            if len(self.names) < self.limit:
                self.names[key] = names
        return names

    def unknown_attrs(self, codes: list[int]) -> list[str]:
        key = tuple(codes)
        out = self.unknown.get(key)
        if out is None:
            out = [f"0x{c:04x}" for c in codes]
            if len(self.unknown) < self.limit:
                self.unknown[key] = out
        return out


def _row(d: Datagram, msg: StunMessage, lists: _Lists) -> tuple[Any, ...]:
    """The columns of one message's row in schema order, up to rest_expiry (the matching columns follow);
    ``lists`` gives the attr_names / unknown_attrs list objects (shared by the rows of equal values)."""
    first = msg.first  # first attribute of each type: presence tests
    g = msg.values.get  # msg.get, one dict lookup each
    err = g(_ERROR_CODE)
    xmapped = g(_XOR_MAPPED) or g(_MS_XOR_MAPPED)
    peers = msg.get_all(_XOR_PEER) if _XOR_PEER in first else ()
    role, tiebreaker = None, None
    if _CONTROLLING in first:
        role, tiebreaker = "controlling", g(_CONTROLLING)
    elif _CONTROLLED in first:
        role, tiebreaker = "controlled", g(_CONTROLLED)
    username = g(_USERNAME)
    rest_expiry = None
    if username and msg.method in TURN_METHODS:
        m = _REST_USERNAME.match(username)
        if m:
            rest_expiry = int(m.group(1)) * 1_000_000_000  # ns, like ts
    transport = g(_TRANSPORT)
    unknown = msg.unknown_attributes
    mapped, relayed = g(_MAPPED), g(_RELAYED)
    return (
        d.frame,
        d.ts_ns,
        d.flow_id,
        d.src,
        d.sport,
        d.dst,
        d.dport,
        d.transport,
        d.via_turn,
        d.turn_peer,
        d.turn_channel,
        msg.method_name,
        msg.class_name,
        msg.transaction_id.hex(),
        msg.classic,
        username,
        g(_REALM),
        _NONCE in first,
        g(_SOFTWARE),
        err.code if err else None,
        err.reason if err else None,
        None if mapped is None else str(mapped),
        None if xmapped is None else str(xmapped),
        None if relayed is None else str(relayed),
        ",".join(str(p) for p in peers) if peers else None,
        len(peers),
        g(_LIFETIME),
        g(_CHANNEL),
        g(_PRIORITY),
        _USE_CANDIDATE in first,
        role,
        tiebreaker,
        _INTEGRITY in first,
        _INTEGRITY_SHA256 in first,
        _FINGERPRINT in first,
        msg.fingerprint_ok,
        lists.unknown_attrs(unknown),
        msg.unknown_required if unknown else False,
        lists.attr_names(msg),
        None if transport is None else _TRANSPORTS.get(transport, f"proto {transport}"),
        rest_expiry,
    )


_MATCHED = ("rtt_ms", "response_frame", "request_frame")  # the last three columns, from _match_transactions
_REQUEST, _SUCCESS, _ERROR = int(StunClass.REQUEST), int(StunClass.SUCCESS), int(StunClass.ERROR)


def _match_transactions(
    frames: np.ndarray,
    tss: np.ndarray,
    flows: np.ndarray,
    txids: np.ndarray,
    methods: np.ndarray,
    classes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rtt_ms / response_frame / request_frame columns, in capture order (NaN / -1 where none), from each
    row's frame, time, flow (-1 or above), transaction id as a code (a non-negative int, equal for equal ids:
    e.g. factorized), method code (12 bits) and class, all int64 arrays of one length.

    A response is matched to requests with its transaction id and method on the same flow (a message relayed
    by TURN is seen once per leg, each leg with its own flow); only when there is none, on any flow.
    Only the rows whose transaction id and method occur both in a request and in a response are visited,
    and the same flow's book holds only requests whose flow, id and method a response has: nothing else can
    match (a flood of 10^6 requests sharing one id, answered once, books them once, not twice).
    Linear in the rows visited however often a transaction id recurs (the benchmark's repeated call
    replays them): per key, the requests seen so far and those not yet answered; a response answers every
    earlier unanswered request and drops it from that list. A key of one request holds just its row number."""
    n = len(frames)
    rtt = np.full(n, np.nan)
    response = np.full(n, -1, dtype=np.int64)
    request = np.full(n, -1, dtype=np.int64)
    keys = (methods.astype(np.int64) << 32) | txids  # a method is 12 bits, a txid code below 2^31
    asked, answered = classes == _REQUEST, (classes == _SUCCESS) | (classes == _ERROR)
    visit = np.flatnonzero((asked | answered) & np.isin(keys, np.intersect1d(keys[asked], keys[answered])))
    if not len(visit):
        return rtt, response, request
    # the same flow's book is read only by responses: it holds only requests whose flow and key a response has
    replies = visit[answered[visit]]
    replied = {_on_flow(f, k) for f, k in zip(flows[replies].tolist(), keys[replies].tolist())}
    maybe = np.isin(flows[visit], flows[replies])  # a request's flow has a response (of some key)
    del replies
    # key -> its one request's row number, or (row numbers of its requests in capture order, those not
    # yet answered), in typed arrays (8 bytes a request, not a list slot and an int object)
    same_flow: dict[int, int | tuple[array[int], array[int]]] = {}  # (flow_id, txid, method): _on_flow
    any_flow: dict[int, int | tuple[array[int], array[int]]] = {}  # (txid, method)
    for j in range(len(visit)):
        i = int(visit[j])
        key = int(keys[i])
        if asked[i]:
            on_flow = _on_flow(int(flows[i]), key) if maybe[j] else -1
            books = ((same_flow, on_flow), (any_flow, key)) if on_flow in replied else ((any_flow, key),)
            for book, k in books:
                sent = book.get(k)
                if sent is None:
                    book[k] = i
                elif isinstance(sent, int):
                    book[k] = (array("q", (sent, i)), array("q", (sent, i)))
                else:
                    sent[0].append(i)
                    sent[1].append(i)
            continue
        sent = same_flow.get(_on_flow(int(flows[i]), key))
        if sent is None:
            sent = any_flow.get(key)
            if sent is None:
                continue
        ts = int(tss[i])
        if isinstance(sent, int):
            requests: array[int] | tuple[int] = (sent,)
            unanswered: array[int] | None = None
        else:
            requests, unanswered = sent
        for last in reversed(requests):
            if tss[last] <= ts:
                break
        else:
            continue
        # Karn: time from the last transmission before the response, the only unambiguous one
        value = (ts - int(tss[last])) / 1e6
        request[i], rtt[i] = frames[last], value
        if rtt[last] != rtt[last]:  # NaN: not timed yet
            rtt[last] = value
        waiting = array("q")
        for q in requests if unanswered is None else unanswered:
            if response[q] < 0:  # (it may have been answered through the other book)
                if tss[q] <= ts:
                    response[q] = frames[i]
                else:
                    waiting.append(q)
        if unanswered is not None:
            unanswered[:] = waiting
    return rtt, response, request


def _on_flow(flow: int, key: int) -> int:
    """One int for a flow (-1 or above) and a key of :func:`_match_transactions` (below 2^44)."""
    return ((flow + 1) << 44) | key


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while building: the build only allocates objects it keeps (no
    cycles to find), yet every few hundred allocations the collector would walk the young objects, and
    ever more of the whole heap as it grows (profiled at 1M packets: 19 -> 6 us per parsed message)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_stun(datagrams: Iterable[Datagram], anomalies: AnomalyLog | None = None) -> pd.DataFrame:
    """The `stun` frame from Datagrams each holding one whole STUN message.

    A message that cannot be parsed at all becomes an anomaly row only; attribute problems become
    anomaly rows and the message keeps its row with everything that could be read."""
    with _gc_paused():
        return _build(datagrams, anomalies)


#: messages turned into typed columns at a time: the Python row tuples of one block are all that is held
#: besides the frame being built (a whole capture's rows at once cost ~2 KB per message at 10^6 messages)
_BLOCK = 10_000
_BLOCK_NAMES = STUN.names[: -len(_MATCHED)]
_STRINGS = [c.name for c in STUN.columns if c.name in _BLOCK_NAMES and c.dtype == "string"]
_INTS = {c.name: c.dtype for c in STUN.columns if c.name in _BLOCK_NAMES and c.dtype[:1] in ("I", "U")}


def _build(datagrams: Iterable[Datagram], anomalies: AnomalyLog | None) -> pd.DataFrame:
    blocks: list[dict[str, Any]] = []  # typed columns (arrays) of each block of rows, in capture order
    rows: list[tuple[Any, ...]] = []
    lists = _Lists()
    # what _match_transactions reads, for every row, in typed arrays (the transaction ids: the txid column)
    frames, tss, flows = array("q"), array("q"), array("q")
    methods, classes = array("i"), array("b")
    parse = StunMessage.parse
    for d in datagrams:
        try:
            msg = parse(d.data, strict=False)
        except DecodeError as e:
            if anomalies is not None:
                anomalies.add("stun", e.name, e.detail, frame=d.frame, ts_ns=d.ts_ns, flow_id=d.flow_id)
            continue
        if msg.errors and anomalies is not None:
            for err in msg.errors:
                anomalies.add("stun", err.name, err.detail, frame=d.frame, ts_ns=d.ts_ns, flow_id=d.flow_id)
        rows.append(_row(d, msg, lists))
        frames.append(d.frame)
        tss.append(d.ts_ns)
        flows.append(d.flow_id)
        methods.append(msg.method)
        classes.append(msg.cls)
        if len(rows) == _BLOCK:
            blocks.append(_typed(rows))
            rows = []
    if rows:
        blocks.append(_typed(rows))
    del rows, lists
    give_back()  # the messages' memory (a drained store is empty by now), before the columns are joined
    if not blocks:
        return STUN.empty()
    cols: dict[str, pd.Series] = {}
    # one column at a time, each block's part let go as it is joined
    for k, name in enumerate(_BLOCK_NAMES, 1):
        parts = [b.pop(name) for b in blocks]
        cols[name] = pd.Series(
            parts[0] if len(parts) == 1 else type(parts[0])._concat_same_type(parts), copy=False
        )
        del parts
        if k % 4 == 0:
            give_back()  # the parts joined so far (they sit between the columns kept: trimmed, not reused)
    give_back()  # the blocks' parts, before the matching's Python objects
    txids = pd.factorize(cols["txid"])[0].astype(np.int64)
    rtt, response, request = _match_transactions(
        _int64(frames), _int64(tss), _int64(flows), txids, _int64(methods), _int64(classes)
    )
    del frames, tss, flows, txids, methods, classes
    cols["rtt_ms"] = pd.Series(rtt)  # none: NaN
    cols["response_frame"] = pd.Series(pd.arrays.IntegerArray(response, response < 0))
    cols["request_frame"] = pd.Series(pd.arrays.IntegerArray(request, request < 0))
    del rtt, response, request
    return STUN.conform(pd.DataFrame(cols, copy=False))


def _int64(a: array[int]) -> np.ndarray:
    return np.frombuffer(a, dtype=a.typecode).astype(np.int64)


def _typed(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """One block of rows (tuples from :func:`_row`) as typed columns, by name."""
    cols: dict[str, Any] = dict(zip(_BLOCK_NAMES, (list(c) for c in zip(*rows))))
    rows.clear()
    # integer columns straight from the Python ints (a list with None would become float64 in a DataFrame,
    # and 64-bit values must not pass through float64); conform reads value by value what pandas refuses
    for name, dtype in _INTS.items():
        try:
            cols[name] = pd.array(cols[name], dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            pass
    df = STUN.conform(pd.DataFrame(cols, columns=STUN.names))
    # the arrays only (a Series per column and block would be ~40 Python objects per block kept to the end);
    # a string column with no value in the block shares one Arrow buffer of nulls with the others: most rows
    # lack most attributes, and each such column cost 8 bytes a row of offsets (72 MB at 10^6 messages)
    out = {name: df[name].array for name in _BLOCK_NAMES}
    for name in _STRINGS:
        a = out[name]
        if isinstance(a, ArrowStringArray) and len(a) and a.isna().all():
            out[name] = ArrowStringArray(pa.chunked_array([_nulls(len(a))]), dtype=a.dtype)
    return out


@lru_cache(maxsize=2)
def _nulls(n: int) -> pa.Array:
    """``n`` null strings, one buffer (Arrow arrays are immutable: sharing is safe; each column gets its own
    pandas array around it)."""
    return pa.nulls(n, pa.large_string())


#: what reading the dissection's STUN messages says once the `stun` frame is built
RELEASED = (
    "the STUN messages were let go once the `stun` frame was built from them (one row per message, "
    "cap.stun); dissect the capture again for their bytes"
)


@register_frame(STUN)
def _build_frame(cap: Capture) -> pd.DataFrame:
    """The `stun` frame; the dissection's STUN messages, read by nothing else, are taken out of it and drained
    as the rows are made: the store shrinks as the frame grows (a 10^6 message flood holds ~130 MB of them)."""
    dis = cap.dissection
    store, dis.stun = dis.stun, ReleasedDatagrams(RELEASED)
    return build_stun(store.drain() if isinstance(store, Datagrams) else store, dis.anomalies)


__all__ = ["STUN", "StunClass", "build_stun"]
