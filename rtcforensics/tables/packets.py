"""The `packets` frame (one row per capture record) and the `flows` frame (one row per 5-tuple)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..addr import endpoint_array as _endpoint_array
from ..capture import Capture, register_frame
from ..dissect.demux import CLASSES
from ..dissect.fastpath import TRANSPORTS, VIA
from ..dissect.model import Dissection
from ..schema import frame_schema

PACKETS = frame_schema(
    "packets",
    "Every record of the capture that holds bytes, one row per Wireshark frame, as the fast path saw it "
    "(zero-length records keep their frame numbers but have no row: an `empty_records` anomaly counts them).",
    [
        ("frame", "Int64", "Wireshark frame number (1-based; every record counts, zero-length ones too)"),
        ("ts", "ts", "capture time (UTC)"),
        ("src", "string", "source IP address (NA when the record is not IP)"),
        ("sport", "UInt16", "source port (UDP/TCP/SCTP; NA otherwise or for non-first IP fragments)"),
        ("dst", "string", "destination IP address"),
        ("dport", "UInt16", "destination port"),
        ("transport", "category:" + ",".join(TRANSPORTS), "IP payload protocol (NA when not IP)"),
        ("length", "Int32", "bytes on the wire (the record's original length, Wireshark frame.len)"),
        (
            "cls",
            "category:" + ",".join(CLASSES),
            "what the packet carries: RFC 7983 class of the UDP payload / TCP-framed message (the innermost one "
            "when unwrapped from TURN), or for other TCP the control-plane protocol (tls, http, websocket, sip); "
            "turn_channel when a ChannelData payload is none of the media classes",
        ),
        (
            "via_turn",
            "category:" + ",".join(VIA),
            "how the payload was unwrapped from TURN: ChannelData, Data or Send indication (NA: not via TURN)",
        ),
        ("flow_id", "Int64", "bidirectional 5-tuple id, numbered by first appearance (NA when not IP)"),
    ],
)

FLOWS = frame_schema(
    "flows",
    "One row per bidirectional 5-tuple (transport, {ip:port, ip:port}); endpoint a sent the first packet.",
    [
        ("flow_id", "Int64", "flow id (same as packets.flow_id), numbered by first appearance"),
        ("transport", "category:" + ",".join(TRANSPORTS), "IP payload protocol"),
        ("a", "string", "endpoint that sent the flow's first packet, ip:port ([ipv6]:port)"),
        ("b", "string", "the other endpoint, ip:port"),
        ("a_ip", "string", "a's address"),
        ("a_port", "UInt16", "a's port"),
        ("b_ip", "string", "b's address"),
        ("b_port", "UInt16", "b's port"),
        ("first_ts", "ts", "time of the first packet (UTC)"),
        ("last_ts", "ts", "time of the last packet (UTC)"),
        ("duration_s", "float64", "last_ts - first_ts in seconds"),
        ("packets", "Int64", "packets in both directions"),
        ("packets_a_to_b", "Int64", "packets sent by a"),
        ("bytes", "Int64", "bytes on the wire in both directions (sum of packets.length)"),
        (
            "classes",
            "object",
            "sorted list of packet classes seen (packets.cls), e.g. ['dtls', 'rtp', 'stun']",
        ),
        ("via_turn", "boolean", "some payload of this flow was unwrapped from TURN (ChannelData, Send/Data)"),
        (
            "encrypted",
            "boolean",
            "coarse: True when DTLS or TLS was seen on the flow (media keyed by DTLS-SRTP or TLS); False when it "
            "carries a cleartext control protocol (http, websocket, sip); NA otherwise — RTP without DTLS may be "
            "SDES-SRTP or plain RTP, which rtp_streams.keying / plaintext_score and the checks decide",
        ),
    ],
)


def _int_array(values: np.ndarray, dtype: str) -> Any:
    """numpy ints with -1 meaning NA -> pandas nullable integer array, without per-element work."""
    np_dt = {
        "UInt16": np.uint16,
        "Int64": np.int64,
        "Int32": np.int32,
        "UInt32": np.uint32,
        "UInt8": np.uint8,
    }[dtype]
    mask = values < 0
    data = np.where(mask, 0, values).astype(np_dt)
    arr = pd.array(data, dtype=dtype)
    if mask.any():
        arr[mask] = pd.NA
    return arr


def _codes_to_category(codes: np.ndarray, schema_col: str, frame: Any) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int64), dtype=frame.column(schema_col).pandas_dtype())


def _ids_to_string(ids: np.ndarray, names: list[str]) -> Any:
    table = np.array(names + [None], dtype=object)
    return pd.array(table[np.where(ids < 0, len(names), ids)], dtype="string")


def packets_frame(d: Dissection, release: bool = False) -> pd.DataFrame:
    """The `packets` frame from the fast path's raw per-packet columns (``Dissection.columns``, a whole
    capture's or a chunk's of the streaming load).

    ``release``: drop the raw columns from ``d`` as they are turned into the frame (the capture's builder
    does, so a large capture does not hold both)."""
    cols = d.columns
    if not cols or not len(cols.get("ts_ns", ())):
        return PACKETS.empty()

    def take(name: str) -> np.ndarray:
        return cols.pop(name) if release else cols[name]

    data = {
        "frame": _int_array(take("frame"), "Int64"),
        "ts": pd.to_datetime(take("ts_ns"), unit="ns", utc=True),
        "src": _ids_to_string(take("src"), d.addresses),
        "sport": _int_array(take("sport"), "UInt16"),
        "dst": _ids_to_string(take("dst"), d.addresses),
        "dport": _int_array(take("dport"), "UInt16"),
        "transport": _codes_to_category(take("transport"), "transport", PACKETS),
        "length": _int_array(take("length"), "Int32"),
        "cls": _codes_to_category(take("cls"), "cls", PACKETS),
        "via_turn": _codes_to_category(take("via"), "via_turn", PACKETS),
        "flow_id": _int_array(take("flow"), "Int64"),
    }
    return pd.DataFrame(data)


@register_frame(PACKETS)
def build_packets(cap: Capture) -> pd.DataFrame:
    return packets_frame(cap.dissection, release=True)


@register_frame(FLOWS)
def build_flows(cap: Capture) -> pd.DataFrame:
    p = cap.packets
    fid_all = p["flow_id"].to_numpy(dtype=np.int64, na_value=-1)
    has = fid_all >= 0
    if not has.any():
        return FLOWS.empty()
    fid = fid_all[has]
    n = int(fid.max()) + 1
    ts = p["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)[has]
    length = p["length"].to_numpy(dtype=np.int64, na_value=0)[has]
    rows = np.flatnonzero(has)
    _, first = np.unique(fid, return_index=True)  # flows are numbered by first appearance
    at = rows[first]  # each flow's first packet: its sender is endpoint a
    # direction of every packet without materialising 1M address strings: compare factorized codes
    src_codes = pd.factorize(p["src"])[0][has]
    sport = p["sport"].to_numpy(dtype=np.int64, na_value=-1)[has]
    a_code, a_sport = src_codes[first], sport[first]
    a_of_pkt = (src_codes == a_code[fid]) & (sport == a_sport[fid])
    first_ts = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last_ts = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first_ts, fid, ts)
    np.maximum.at(last_ts, fid, ts)
    cls_codes = p["cls"].cat.codes.to_numpy()[has].astype(np.int64)
    seen = np.zeros((n, len(CLASSES)), dtype=bool)
    seen[fid, cls_codes] = True
    via = np.zeros(n, dtype=bool)
    via[fid[p["via_turn"].notna().to_numpy()[has]]] = True
    packets = np.bincount(fid, minlength=n)
    a_to_b = np.bincount(fid[a_of_pkt], minlength=n)
    nbytes = np.bincount(fid, weights=length, minlength=n).astype(np.int64)
    del fid_all, has, fid, ts, length, rows, src_codes, sport, a_of_pkt, cls_codes  # per packet: done
    return _flows_frame(
        np.arange(n),
        p["transport"].array.take(at),
        p["src"].array.take(at),
        p["sport"].array.take(at),
        p["dst"].array.take(at),
        p["dport"].array.take(at),
        first_ts,
        last_ts,
        packets,
        a_to_b,
        nbytes,
        seen,
        via,
    )


def _flows_frame(
    flow_id: np.ndarray,
    transport: Any,
    a_ip: Any,
    a_port: Any,
    b_ip: Any,
    b_port: Any,
    first_ts: np.ndarray,
    last_ts: np.ndarray,
    packets: np.ndarray,
    packets_a_to_b: np.ndarray,
    nbytes: np.ndarray,
    seen: np.ndarray,
    via: np.ndarray,
) -> pd.DataFrame:
    """The `flows` frame from per-flow aggregates: addresses as string arrays, ports as nullable UInt16
    arrays, ``seen``: flows x CLASSES booleans. Column-wise, no Python object per flow but the ``classes``
    cells, which share one list per distinct set of classes (a million flows have a handful of sets; nothing
    mutates a cell)."""
    code = {c: i for i, c in enumerate(CLASSES)}
    enc_true = seen[:, code["dtls"]] | seen[:, code["tls"]]
    enc_false = ~enc_true & (seen[:, code["http"]] | seen[:, code["websocket"]] | seen[:, code["sip"]])
    encrypted = pd.array(enc_true, dtype="boolean")
    encrypted[~enc_true & ~enc_false] = pd.NA
    bits = np.zeros(len(seen), dtype=np.int64)
    for k in range(len(CLASSES)):
        bits[seen[:, k]] |= 1 << k
    uniq, inv = np.unique(bits, return_inverse=True)
    names = np.empty(len(uniq), dtype=object)
    for i, u in enumerate(uniq.tolist()):
        names[i] = sorted(CLASSES[k] for k in range(len(CLASSES)) if (u >> k) & 1)

    def ts(ns: np.ndarray) -> Any:
        return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC").array

    # every column in its schema dtype already, so the frame is made without a copy of its columns
    df = pd.DataFrame(
        {
            "flow_id": pd.array(flow_id, dtype="Int64"),
            "transport": transport,
            "a": _endpoint_array(a_ip, a_port),
            "b": _endpoint_array(b_ip, b_port),
            "a_ip": a_ip,
            "a_port": a_port,
            "b_ip": b_ip,
            "b_port": b_port,
            "first_ts": ts(first_ts),
            "last_ts": ts(last_ts),
            "duration_s": (last_ts - first_ts) / 1e9,
            "packets": pd.array(packets, dtype="Int64"),
            "packets_a_to_b": pd.array(packets_a_to_b, dtype="Int64"),
            "bytes": pd.array(nbytes, dtype="Int64"),
            "classes": names[inv.reshape(-1)],
            "via_turn": pd.array(via, dtype="boolean"),
            "encrypted": encrypted,
        },
        copy=False,
    )
    return FLOWS.conform(df)


class StreamFrames:
    """Arrow tables of the frames the streaming load (``dissect.stream``) writes chunk by chunk, in the case
    store's column types (``case.store.to_arrow``), so a streamed dataset reads back as ``load``'s frames."""

    def __init__(self) -> None:
        from ..case import store  # the store's codec; imported here: the case layer sits above the tables

        self.store = store

    def packets(self, d: Dissection) -> Any:
        return self.store.to_arrow(packets_frame(d), PACKETS)

    def rtp(self, d: Dissection) -> Any:
        from .rtp import RTP, build_rtp

        return self.store.to_arrow(build_rtp(_DissectionOnly(d)), RTP)  # type: ignore[arg-type]

    def anomalies(self, rows: list[dict[str, Any]], dropped: int = 0) -> Any:
        from ..anomalies import AnomalyLog
        from ..schema import ANOMALIES

        return self.store.to_arrow(AnomalyLog(rows=rows, dropped=dropped).frame(), ANOMALIES)

    def flows(self, agg: dict[str, np.ndarray], addresses: list[str]) -> Any:
        names = pa.array(addresses, type=pa.large_string())

        def ip(ids: np.ndarray) -> pd.arrays.ArrowStringArray:
            return pd.arrays.ArrowStringArray(names.take(pa.array(ids, mask=ids < 0)))

        def port(v: np.ndarray) -> Any:
            return _int_array(v, "UInt16")

        t = agg["transport"]
        seen = ((agg["classes"][:, None] >> np.arange(len(CLASSES))) & 1).astype(bool)
        df = _flows_frame(
            agg["flow_id"],
            pd.Categorical.from_codes(t, dtype=FLOWS.column("transport").pandas_dtype()),
            ip(agg["a_src"]),
            port(agg["a_port"]),
            ip(agg["b_src"]),
            port(agg["b_port"]),
            agg["first_ts"],
            agg["last_ts"],
            agg["packets"],
            agg["packets_a_to_b"],
            agg["bytes"],
            seen,
            agg["via"].astype(bool),
        )
        return self.store.to_arrow(df, FLOWS)

    def empty(self, name: str) -> Any:
        if name == "datagrams":
            from ..dissect.stream import DATAGRAMS_SCHEMA

            return DATAGRAMS_SCHEMA.empty_table()
        if name == "rtp_samples":
            from ..dissect.stream import SAMPLES_SCHEMA

            return SAMPLES_SCHEMA.empty_table()
        return self.store.empty_frame_table(name)


class _DissectionOnly:
    """What a table builder reads of a Capture when it reads only ``cap.dissection``."""

    def __init__(self, d: Dissection) -> None:
        self.dissection = d
