"""The `datachannels` frame: WebRTC data-channel messages read from decrypted DTLS (SCTP + DCEP).

Only DTLS sessions decrypted with a keylog contribute (DTLS 1.2 application records, DTLS 1.3 epoch-3
records). Message text is kept as evidence; reports redact it unless asked.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..anomalies import AnomalyLog
from ..capture import Capture, register_frame
from ..dissect.dtls import Handshake
from ..dissect.sctp import (
    MAX_PENDING_BYTES,
    PPID_DCEP,
    TEXT_PPIDS,
    DcepOpen,
    SctpAssembler,
    parse_dcep,
    parse_sctp,
)
from ..errors import DecodeError
from ..schema import frame_schema

DATACHANNELS = frame_schema(
    "datachannels",
    "One row per data-channel message (and DCEP open/ack), from SCTP inside decrypted DTLS. Needs a keylog.",
    [
        ("frame", "Int64", "Wireshark frame number of the datagram that completed the message"),
        ("ts", "ts", "time of that frame (UTC)"),
        ("flow_id", "Int64", "flow of the DTLS session"),
        ("channel", "Int32", "SCTP stream id (the data channel id)"),
        ("label", "string", "channel label from DATA_CHANNEL_OPEN (NA for pre-negotiated channels)"),
        ("protocol", "string", "channel sub-protocol from DATA_CHANNEL_OPEN"),
        ("ordered", "boolean", "ordered delivery (DCEP channel type)"),
        ("reliability", "string", "reliable, max_retransmits=N or max_lifetime_ms=N"),
        ("direction", "category:client_to_server,server_to_client", "DTLS role of sender -> receiver"),
        ("src", "string", "sender ip:port"),
        ("dst", "string", "receiver ip:port"),
        ("kind", "category:text,binary,dcep_open,dcep_ack,other", "message kind (from the SCTP PPID)"),
        ("ppid", "Int64", "SCTP payload protocol identifier (51 string, 53 binary, 56/57 empty, 50 DCEP)"),
        ("size", "Int64", "message size in bytes (0 for the empty-message PPIDs)"),
        ("text", "string", "UTF-8 text of a text message (evidence; redacted in reports unless asked)"),
        ("data", "object", "raw bytes of a binary or other message"),
    ],
)


def messages_of(hs: Handshake, anomalies: AnomalyLog, max_pending: int | None = None) -> list[dict[str, Any]]:
    """The data-channel messages of one decrypted DTLS session. A reassembly limit hit (``max_pending`` bytes of
    incomplete messages per direction, ``dissect.sctp.MAX_PENDING_BYTES`` by default) drops the held fragments:
    an ``sctp_reassembly_limit`` anomaly row per hit (frame, flow), which makes the run incomplete."""
    rows: list[dict[str, Any]] = []
    limit = MAX_PENDING_BYTES if max_pending is None else max_pending
    asm = {"client": SctpAssembler(max_pending=limit), "server": SctpAssembler(max_pending=limit)}
    opens: dict[int, DcepOpen] = {}
    ends = {"client": (hs.client, hs.server), "server": (hs.server, hs.client)}
    for frame, ts_ns, side, plain in hs.app_data:
        try:
            pkt = parse_sctp(plain)
        except DecodeError as e:
            anomalies.add("sctp", e.name, e.detail, frame=frame, ts_ns=ts_ns, flow_id=hs.flow_id)
            continue
        src, dst = ends.get(side, (None, None))
        for chunk in pkt.data:
            a = asm.setdefault(side, SctpAssembler(max_pending=limit))
            hits = len(a.limit_hits)
            msg = a.add(chunk)
            for hit in a.limit_hits[hits:]:
                anomalies.add(
                    "sctp",
                    "sctp_reassembly_limit",
                    f"{src} -> {dst}: {hit}",
                    frame=frame,
                    ts_ns=ts_ns,
                    flow_id=hs.flow_id,
                )
            if msg is None:
                continue
            row: dict[str, Any] = {
                "frame": frame,
                "ts": pd.Timestamp(ts_ns, unit="ns", tz="UTC"),
                "flow_id": hs.flow_id,
                "channel": msg.stream,
                "ppid": msg.ppid,
                "direction": "client_to_server" if side == "client" else "server_to_client",
                "src": src,
                "dst": dst,
            }
            if msg.ppid == PPID_DCEP:
                try:
                    d = parse_dcep(msg.data)
                except DecodeError as e:
                    anomalies.add("sctp", e.name, e.detail, frame=frame, ts_ns=ts_ns, flow_id=hs.flow_id)
                    continue
                if isinstance(d, DcepOpen):
                    opens[msg.stream] = d
                    row["kind"] = "dcep_open"
                else:
                    row["kind"] = "dcep_ack"
                row["size"] = len(msg.data)
            else:
                empty = msg.ppid in (56, 57)
                row["size"] = 0 if empty else len(msg.data)
                if msg.ppid in TEXT_PPIDS:
                    row["kind"] = "text"
                    row["text"] = "" if empty else msg.data.decode("utf-8", errors="replace")
                else:
                    row["kind"] = "binary" if msg.ppid in (52, 53, 57) else "other"
                    row["data"] = b"" if empty else msg.data
            o = opens.get(msg.stream)
            if o is not None:
                row.update(
                    label=o.label, protocol=o.protocol, ordered=o.ordered, reliability=o.reliability_text
                )
            rows.append(row)
    return rows


def datachannels_frame(handshakes: list[Handshake], anomalies: AnomalyLog) -> pd.DataFrame:
    rows = []
    for hs in handshakes:
        rows += messages_of(hs, anomalies)
    return DATACHANNELS.from_records(rows)


@register_frame(DATACHANNELS)
def build_datachannels(cap: Capture) -> pd.DataFrame:
    from .dtls import tracker

    return datachannels_frame(tracker(cap).handshakes, cap.dissection.anomalies)
