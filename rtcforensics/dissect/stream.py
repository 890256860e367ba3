"""Constant-memory streaming load: the fast path over a capture of any size, written to Parquet chunk by chunk.

:func:`dissect.fastpath.dissect` holds every per-packet column of a capture until its end (10M packets peak
near 4 GB). :func:`stream` drives the same layers (``fastpath._Pass``) over the capture in chunks of
``chunk_packets`` records and, after each chunk, writes what that chunk finished to one Parquet file per
dataset (``OUT/<name>/part.parquet``, one row group per chunk, written as ``.part.parquet.tmp`` and renamed
when the run ends, so a file that exists is complete):

``packets``    the `packets` frame (same columns and types as ``load``'s: Wireshark frame numbers, in order;
               zero-length records have no row, as in ``load``)
``rtp``        the `rtp` frame (the RTP packets that corroboration kept)
``flows``      the `flows` frame, one row per flow when it is closed (idle or at the end of the capture),
               so rows are not in flow_id order
``anomalies``  the `anomalies` frame (flow ids final)
``datagrams``  the STUN / DTLS / RTCP / ZRTP messages the table builders parse (``kind``, the Datagram
               fields, ``data`` as bytes): they are not held; the case store's streamed ingest
               (``case.streamed``) reads them back in batches to build the `stun` and `dtls` frames (up to
               ``MAX_DATAGRAMS`` each), then deletes ``datagrams`` and ``rtp_samples``
``rtp_samples`` the first payloads of each (flow, SSRC) (plaintext evidence), written when the flow closes

Memory is bounded by one chunk's columns twice (the chunk being written and the one read after it) plus
state per *live* flow, stream and handshake — not per packet:

- Flow ids: numbered by first appearance as in the in-memory load, renumbered chunk by chunk: the flows
  first seen in a chunk get ids above every earlier chunk's, in the order of their first frame, so while no
  flow is closed idle the ids equal the in-memory ones. A flow idle for ``idle_timeout_s`` of capture time
  (default 300 s) is closed: its `flows` row is written and the pass forgets it (its TCP directions, TURN
  channels, DTLS mark, RTP stream state). When the same 5-tuple comes back later it is a new flow with a new
  id (the `flows` rows then show two flows of the same endpoints, the first ending before the second starts).
- RTP corroboration (``rtpvec.corroborate``) runs per chunk with carry-over: a chunk's candidates are judged
  with the next chunk's candidates in view (a stream that starts at the end of a chunk is judged with its
  continuation) and with the running counts of every live (flow, SSRC) from earlier chunks; an SSRC once
  corroborated stays corroborated. Judging a stream on what came before and one chunk after, rather than
  on the whole capture, can differ from the in-memory load only for a stream whose first two packets are
  more than a chunk apart, or whose early packets look like RTP and later ones do not.
- Datagrams, anomaly rows, control-plane frame numbers and RTP columns are written (or counted) per chunk
  and released; the address table (one string per distinct IP address) and the set of corroborated SSRCs
  grow with distinct addresses and streams, not with packets. TCP directions whose kind is still undecided at
  a chunk's end count their frames as control plane (the in-memory load decides them at the end).
- Not supported while streaming: ``keep_payloads`` (decryption needs every RTP packet's bytes) and tshark
  (control-plane frames are counted in ``info["control_frames"]``, signalling is not extracted).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..anomalies import AnomalyLog
from .demux import DTLS, RTCP, STUN, ZRTP
from .fastpath import _drop_uncorroborated, _new_cols, _packet_columns, _Pass, file_info, new_datagrams
from .model import Datagrams, Dissection
from .pcapio import Batch, CaptureReader
from .rtpvec import corroborate, rtp_arrays, rtp_group_stats

CHUNK_PACKETS = 500_000  # ~0.5 GB peak with the next chunk in view (1M: ~0.8 GB)
IDLE_TIMEOUT_S = 300.0
FLOWS_PER_WRITE = 100_000
DATAGRAMS_SPILL = 50_000  # messages held in the pass before they become Arrow rows
DATAGRAM_KINDS = {STUN: "stun", DTLS: "dtls", RTCP: "rtcp", ZRTP: "zrtp"}
DATAGRAMS_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("frame", pa.int64()),
        ("ts_ns", pa.int64()),
        ("flow_id", pa.int64()),
        ("src", pa.string()),
        ("sport", pa.int32()),
        ("dst", pa.string()),
        ("dport", pa.int32()),
        ("transport", pa.string()),
        ("data", pa.binary()),
        ("via_turn", pa.string()),
        ("turn_channel", pa.int32()),
        ("turn_peer", pa.string()),
    ]
)
SAMPLES_SCHEMA = pa.schema(
    [("flow_id", pa.int64()), ("ssrc", pa.int64()), ("index", pa.int32()), ("payload", pa.binary())]
)


# -- the pass ------------------------------------------------------------------------------------------
class _StreamPass(_Pass):
    """The fast-path pass with provisional flow ids kept for live flows only (``flow_first`` is a dict)."""

    def __init__(self, path: str, log: AnomalyLog, strict: bool) -> None:
        super().__init__(path, log, strict)
        self.flow_first: dict[int, int] = {}  # type: ignore[assignment]
        self.n_prov = 0

    def _new_flow(self, frame: int) -> int:
        f = self.n_prov
        self.n_prov += 1
        self.flow_first[f] = frame
        return f

    def forget_flows(self, prov: set[int]) -> None:
        """Drop every piece of per-flow state of the provisional ids ``prov`` (closed idle)."""
        for key in [k for k, f in self.flow_ids.items() if f in prov]:
            del self.flow_ids[key]
        for f in prov:
            self.flow_first.pop(f, None)
            self.tcp_openers.pop(f, None)
        self.dtls_flows -= prov
        self.websocket_flows -= prov
        for tkey in [k for k in self.tcp if k[0] in prov]:
            del self.tcp[tkey]
        for ckey in [k for k in self.channels if k[0] in prov]:
            del self.channels[ckey]


@dataclass
class _Chunk:
    """What one chunk of the pass produced, flow ids provisional."""

    start: int  # packets (rows) before this chunk
    columns: dict[str, np.ndarray]
    rtp: dict[str, np.ndarray]
    datagrams: pa.Table  # DATAGRAMS_SCHEMA, flow ids provisional (Arrow: far smaller than Datagram objects)
    anomalies: list[dict[str, Any]]
    dropped: int  # anomaly rows beyond the log's limit in this chunk (an `anomalies_truncated` row says so)
    n_prov: int  # provisional ids below this were created by the end of this chunk
    end_ts: int

    @property
    def flows(self) -> np.ndarray:
        f = self.columns["flow"]
        return np.unique(f[f >= 0])


@dataclass
class StreamResult:
    """What :func:`stream` wrote and learnt: ``info`` as ``Dissection.info`` (plus ``control_frames``,
    ``chunks``, ``flows``), ``rows`` per dataset, ``files`` per dataset, ``wall_s``."""

    out: Path
    info: dict[str, Any]
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)
    wall_s: float = 0.0


class _Writers:
    """One ParquetWriter per dataset (``OUT/<name>/.part.parquet.tmp``), renamed to ``part.parquet`` when
    all is written; :meth:`abort` removes the temporary files."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.w: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}

    def tmp(self, name: str) -> Path:
        return self.out / name / ".part.parquet.tmp"

    def write(self, name: str, table: pa.Table) -> None:
        w = self.w.get(name)
        if w is None:
            self.tmp(name).parent.mkdir(parents=True, exist_ok=True)
            w = self.w[name] = pq.ParquetWriter(self.tmp(name), table.schema)
            self.rows[name] = 0
        if table.num_rows or not self.rows[name]:
            w.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows[name] += table.num_rows

    def close(self) -> dict[str, Path]:
        out = {}
        for name, w in self.w.items():
            w.close()
            final = self.out / name / "part.parquet"
            with open(self.tmp(name), "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp(name), final)
            out[name] = final
        self.w = {}
        return out

    def abort(self) -> None:
        for name, w in self.w.items():
            try:
                w.close()
            except Exception:
                pass
            self.tmp(name).unlink(missing_ok=True)
        self.w = {}


# -- the driver ----------------------------------------------------------------------------------------
class _Streamer:
    def __init__(
        self, st: _StreamPass, writers: _Writers, idle_timeout_ns: int, tables: Any, log: AnomalyLog
    ) -> None:
        self.st, self.writers, self.idle_ns, self.tables, self.log = st, writers, idle_timeout_ns, tables, log
        self.done_prov = 0  # provisional ids below this have a final id
        self.next_final = 0
        self.live_prov = np.zeros(0, dtype=np.int64)  # sorted; the live flows' provisional ids
        self.live_final = np.zeros(0, dtype=np.int64)
        # per live flow aggregates (aligned with live_prov): see _aggregate
        self.agg: dict[str, np.ndarray] = {k: np.zeros(0, dtype=np.int64) for k in _AGG}
        self.prior: dict[str, np.ndarray] | None = None  # RTP group stats of earlier chunks (provisional ids)
        self.accepted = np.zeros(0, dtype=np.int64)  # SSRCs corroborated so far
        self.control = 0
        self.dropped = 0
        self.flows_closed = 0
        self.dg_parts: list[pa.Table] = []  # this chunk's datagrams so far (see spill)

    # chunk boundary -----------------------------------------------------------------------------
    def take(self, start: int) -> _Chunk:
        st = self.st
        st.list_tcp_control()
        self.control += len(set(st.control))
        st.control = []
        columns = _packet_columns(st, None)
        st.cols = _new_cols()
        rtp = rtp_arrays(st, None)
        self.spill(0)
        dg = pa.concat_tables(self.dg_parts) if self.dg_parts else DATAGRAMS_SCHEMA.empty_table()
        self.dg_parts = []
        rows, dropped = self.log.rows, self.log.dropped  # the log's limit then applies per chunk
        self.log.rows, self.log.dropped = [], 0
        self.dropped += dropped
        return _Chunk(start, columns, rtp, dg, rows, dropped, st.n_prov, st.last_ts or 0)

    def spill(self, at_least: int = DATAGRAMS_SPILL) -> None:
        """Turn the pass's messages into an Arrow table once there are ``at_least`` of them (the Arrow rows are
        written with the chunk; the pass starts new containers)."""
        st = self.st
        if sum(len(v) for v in st.datagrams.values()) < max(at_least, 1):
            return
        self.dg_parts.append(_datagrams_table(st.datagrams))
        st.datagrams = new_datagrams()

    def fmap(self, prov: np.ndarray) -> np.ndarray:
        """Provisional → final flow ids (-1 stays -1)."""
        prov = np.asarray(prov, dtype=np.int64)
        pos = np.searchsorted(self.live_prov, np.maximum(prov, 0))
        pos = np.minimum(pos, max(len(self.live_prov) - 1, 0))
        if not len(self.live_prov):
            return np.full(len(prov), -1, dtype=np.int64)
        ok = (prov >= 0) & (self.live_prov[pos] == prov)
        return np.where(ok, self.live_final[pos], -1)

    def flush(self, c: _Chunk, ahead: _Chunk | None) -> None:
        st = self.st
        # 1. the flows first seen in this chunk get their final ids, by first frame
        new = np.arange(self.done_prov, c.n_prov, dtype=np.int64)
        if len(new):
            first = np.array([st.flow_first.get(int(p), 1 << 62) for p in new], dtype=np.int64)
            order = np.argsort(first, kind="stable")
            fin = np.empty(len(new), dtype=np.int64)
            fin[order] = self.next_final + np.arange(len(new))
            self.next_final += len(new)
            self.done_prov = c.n_prov
            self.live_prov = np.concatenate([self.live_prov, new])
            self.live_final = np.concatenate([self.live_final, fin])
            for k, v in self.agg.items():
                self.agg[k] = np.concatenate([v, np.full(len(new), _AGG[k], dtype=np.int64)])
        # 2. RTP corroboration with the next chunk in view and the running counts of earlier chunks
        rtp = c.rtp
        n_here = len(rtp["frame"])
        if n_here:
            both = rtp if ahead is None else {k: np.concatenate([rtp[k], ahead.rtp[k]]) for k in rtp}
            keep, _ = corroborate(both, self.prior, self.accepted)
            keep = keep[:n_here]
            # carried on: the groups this chunk saw (a stream already corroborated stays so by its SSRC, in
            # `accepted`; noise — a new random "SSRC" per packet — is then not carried beyond one chunk)
            g = rtp_group_stats(rtp, self.prior)
            here = g["rows"] > 0
            self.prior = {k: g[k][here] for k in ("flow_id", "ssrc", "count", "good", "seq", "rtp_ts")}
            rejected = _rejected_groups(rtp, keep)
            chunk_log = AnomalyLog(limit=1 << 62)
            rtp = _drop_uncorroborated(rtp, keep, rejected, c.columns, st.samples, None, chunk_log)
            c.anomalies.extend(chunk_log.rows)
            if len(rtp["ssrc"]):
                self.accepted = np.union1d(self.accepted, rtp["ssrc"].astype(np.int64))
        # 3. final flow ids everywhere
        cols = c.columns
        cols["flow"] = self.fmap(cols["flow"])
        rtp["flow_id"] = self.fmap(rtp["flow_id"])
        for row in c.anomalies:
            f = row.get("flow_id")
            if f is not None and f >= 0:
                row["flow_id"] = int(self.fmap(np.array([f]))[0])
        # 4. write the chunk's frames
        n = len(cols["ts_ns"])
        d = Dissection(path=st.path, info={}, columns=cols, addresses=st.ip_list, rtp=rtp)
        self.writers.write("packets", self.tables.packets(d))
        self.writers.write("rtp", self.tables.rtp(d))
        self.writers.write("anomalies", self.tables.anomalies(c.anomalies, c.dropped))
        dg = c.datagrams
        i = dg.schema.get_field_index("flow_id")
        dg = dg.set_column(i, "flow_id", pa.array(self.fmap(dg.column(i).to_numpy()), pa.int64()))
        self.writers.write("datagrams", dg)
        # 5. per-flow aggregates; flows idle past the timeout are closed (unless the next chunk has them)
        if n:
            self._aggregate(cols)
        keep_prov = ahead.flows if ahead is not None else None
        self._close(c.end_ts - self.idle_ns if ahead is not None else None, keep_prov)

    def _aggregate(self, cols: dict[str, np.ndarray]) -> None:
        fid = cols["flow"]
        has = fid >= 0
        if not has.any():
            return
        fid = fid[has]
        u, first, inv = np.unique(fid, return_index=True, return_inverse=True)
        o = np.argsort(self.live_final)  # final ids of live flows are not in provisional order
        pos = o[np.searchsorted(self.live_final[o], u)]  # every flow here is live
        a = self.agg
        src, sport = cols["src"][has].astype(np.int64), cols["sport"][has].astype(np.int64)
        fresh = a["packets"][pos] == 0
        fp = pos[fresh]
        a["a_src"][fp] = src[first[fresh]]
        a["a_port"][fp] = sport[first[fresh]]
        a["b_src"][fp] = cols["dst"][has][first[fresh]]
        a["b_port"][fp] = cols["dport"][has][first[fresh]]
        a["transport"][fp] = cols["transport"][has][first[fresh]]
        ts = cols["ts_ns"][has]
        lo = np.full(len(u), np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(len(u), np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, inv, ts)
        np.maximum.at(hi, inv, ts)
        a["first_ts"][pos] = np.minimum(a["first_ts"][pos], lo)
        a["last_ts"][pos] = np.maximum(a["last_ts"][pos], hi)
        a["packets"][pos] += np.bincount(inv, minlength=len(u))
        a_of = (src == a["a_src"][pos][inv]) & (sport == a["a_port"][pos][inv])
        a["packets_a_to_b"][pos] += np.bincount(inv[a_of], minlength=len(u))
        a["bytes"][pos] += np.bincount(
            inv, weights=cols["length"][has].astype(np.int64), minlength=len(u)
        ).astype(np.int64)
        mask = np.zeros(len(u), dtype=np.int64)
        np.bitwise_or.at(mask, inv, np.left_shift(1, cols["cls"][has].astype(np.int64)))
        a["classes"][pos] |= mask
        via = np.zeros(len(u), dtype=np.int64)
        np.bitwise_or.at(via, inv, (cols["via"][has] >= 0).astype(np.int64))
        a["via"][pos] |= via

    def _close(self, before_ns: int | None, keep_prov: np.ndarray | None) -> None:
        """Write and forget the flows whose last packet is before ``before_ns`` (None: every flow)."""
        a = self.agg
        if before_ns is None:
            gone = np.ones(len(self.live_prov), dtype=bool)
        else:
            gone = (a["packets"] > 0) & (a["last_ts"] < before_ns)
            if keep_prov is not None and len(keep_prov):
                gone &= ~np.isin(self.live_prov, keep_prov)
            gone &= self.live_prov < self.done_prov
        if not gone.any():
            return
        seen = np.flatnonzero(gone & (a["packets"] > 0))
        for lo in range(0, len(seen), FLOWS_PER_WRITE):  # a million flows closing at once: in slices
            sl = seen[lo : lo + FLOWS_PER_WRITE]
            self.writers.write(
                "flows",
                self.tables.flows(
                    {"flow_id": self.live_final[sl], **{k: v[sl] for k, v in a.items()}}, self.st.ip_list
                ),
            )
        self.flows_closed += len(seen)
        prov = self.live_prov[gone]
        final = self.live_final[gone]
        self._write_samples(set(prov.tolist()), dict(zip(prov.tolist(), final.tolist())))
        if self.prior is not None:
            stay = ~np.isin(self.prior["flow_id"], prov)
            self.prior = {k: v[stay] for k, v in self.prior.items()}
        if before_ns is not None:
            self.st.forget_flows(set(prov.tolist()))
        self.live_prov, self.live_final = self.live_prov[~gone], self.live_final[~gone]
        self.agg = {k: v[~gone] for k, v in a.items()}

    def _write_samples(self, prov: set[int], final: dict[int, int]) -> None:
        rows: dict[str, list[Any]] = {"flow_id": [], "ssrc": [], "index": [], "payload": []}
        samples = self.st.samples
        for key in [k for k in samples if k[0] in prov]:
            for i, p in enumerate(samples.pop(key)):
                rows["flow_id"].append(final[key[0]])
                rows["ssrc"].append(key[1])
                rows["index"].append(i)
                rows["payload"].append(p)
        self.writers.write("rtp_samples", pa.table(rows, schema=SAMPLES_SCHEMA))


# aggregate columns of a live flow and their initial values
_AGG = {
    "transport": -1,
    "a_src": -1,
    "a_port": -1,
    "b_src": -1,
    "b_port": -1,
    "first_ts": np.iinfo(np.int64).max,
    "last_ts": np.iinfo(np.int64).min,
    "packets": 0,
    "packets_a_to_b": 0,
    "bytes": 0,
    "classes": 0,  # bit k: CLASSES[k] seen
    "via": 0,
}


def _rejected_groups(rtp: dict[str, np.ndarray], keep: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(flow, ssrc, packets, first frame) of the groups whose rows ``keep`` drops (as ``corroborate`` says)."""
    if keep.all():
        return []
    gone = ~keep
    key = (rtp["flow_id"][gone].astype(np.int64) << 32) | rtp["ssrc"][gone].astype(np.int64)
    u, first, counts = np.unique(key, return_index=True, return_counts=True)
    frames = rtp["frame"][gone]
    return [
        (int(k >> 32), int(k & 0xFFFFFFFF), int(n), int(frames[f]))
        for k, f, n in zip(u.tolist(), first.tolist(), counts.tolist())
    ]


def _datagrams_table(lists: Mapping[int, Datagrams]) -> pa.Table:
    """The pass's messages as rows of the ``datagrams`` dataset, in capture order across kinds (straight from
    the containers' columns)."""
    parts = []
    for cls, dgs in lists.items():
        n = len(dgs)
        if not n:
            continue
        names = pa.array(dgs.strings, pa.string())
        cols: dict[str, pa.Array] = {"kind": pa.repeat(pa.scalar(DATAGRAM_KINDS[cls], pa.string()), n)}
        for name in DATAGRAMS_SCHEMA.names[1:]:
            if name in _STRING_COLUMNS:
                ids = dgs.codes(name)
                cols[name] = names.take(pa.array(ids, mask=ids < 0))
            elif name == "data":
                offsets, buf = dgs.payloads()
                raw = pa.Array.from_buffers(
                    pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
                )
                cols[name] = raw.cast(pa.binary())
            else:
                v = dgs.column(name)
                cols[name] = pa.array(
                    v, DATAGRAMS_SCHEMA.field(name).type, mask=v < 0 if name == "turn_channel" else None
                )
        parts.append(pa.table(cols, schema=DATAGRAMS_SCHEMA))
    if not parts:
        return DATAGRAMS_SCHEMA.empty_table()
    t = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    order = np.argsort(t.column("frame").to_numpy(), kind="stable")  # capture order across kinds
    return t.take(pa.array(order)) if len(parts) > 1 else t


_STRING_COLUMNS = ("src", "dst", "transport", "via_turn", "turn_peer")


def read_datagrams(table: pa.Table) -> dict[str, Datagrams]:
    """The ``datagrams`` dataset (or a slice of it) back as Datagrams per kind, in capture order (column by
    column: no Python object per row)."""
    out = {k: Datagrams() for k in DATAGRAM_KINDS.values()}
    if not table.num_rows:
        return out
    kinds = table.column("kind")
    present = pc.unique(kinds).to_pylist()
    for kind in present:
        if kind not in out:
            raise ValueError(f"datagrams dataset: unknown kind {kind!r}")
        out[kind] = _from_arrow(table if len(present) == 1 else table.filter(pc.equal(kinds, kind)))
    return out


def _from_arrow(t: pa.Table) -> Datagrams:
    numbers = {
        name: pc.fill_null(t.column(name), -1).to_numpy()
        for name in ("frame", "ts_ns", "flow_id", "sport", "dport", "turn_channel")
    }
    strings = {}
    for name in _STRING_COLUMNS:
        enc = pc.dictionary_encode(t.column(name).combine_chunks())
        strings[name] = (enc.dictionary.to_pylist(), pc.fill_null(enc.indices, -1).to_numpy())
    data = t.column("data").combine_chunks().cast(pa.large_binary())
    offsets = np.frombuffer(data.buffers()[1], dtype=np.int64)[data.offset : data.offset + len(data) + 1]
    buf = data.buffers()[2]
    return Datagrams.from_columns(numbers, strings, offsets, b"" if buf is None else memoryview(buf))


def _slices(b: Batch, start: int, stop: int) -> Batch:
    return Batch(
        buf=b.buf,
        off=b.off[start:stop],
        caplen=b.caplen[start:stop],
        origlen=b.origlen[start:stop],
        ts_ns=b.ts_ns[start:stop],
        linktype=b.linktype[start:stop],
        frame=b.frame[start:stop],
        progress_bytes=b.progress_bytes,
    )


def stream(
    source: str | os.PathLike[str] | BinaryIO,
    out: str | os.PathLike[str],
    *,
    chunk_packets: int = CHUNK_PACKETS,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    max_packets: int | None = None,
    max_inflated: int | None = None,
    strict: bool = False,
    on_chunk: Callable[[int], None] | None = None,
) -> StreamResult:
    """Dissect ``source`` (a path, ``"-"`` for standard input, or a binary file object) in chunks of
    ``chunk_packets`` records, writing the datasets of the module docstring into directory ``out``.

    ``on_chunk(packets_so_far)`` is called after each chunk is written (progress). On an error the
    temporary files are removed and the error propagates."""
    if chunk_packets < 1:
        raise ValueError("chunk_packets must be at least 1")
    # the frame converters belong to the table layer, which the dissection layer does not import at load time
    from ..tables.packets import StreamFrames

    tables = StreamFrames()

    t0 = time.perf_counter()
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    log = AnomalyLog()
    reader = CaptureReader(source, log, strict=strict, max_inflated=max_inflated, max_packets=max_packets)
    st = _StreamPass(str(reader.path), log, strict)
    writers = _Writers(outp)
    s = _Streamer(st, writers, int(idle_timeout_s * 1e9), tables, log)
    pending: _Chunk | None = None
    in_chunk = 0
    chunk_start = 0  # packets before the chunk being read
    chunks = 0
    try:
        for b in reader.batches():
            i = 0
            while i < len(b):
                take = min(len(b) - i, chunk_packets - in_chunk)
                st.batch(_slices(b, i, i + take) if take < len(b) else b)
                s.spill()
                i += take
                in_chunk += take
                if in_chunk >= chunk_packets:
                    c = s.take(chunk_start)
                    if pending is not None:
                        s.flush(pending, c)
                        chunks += 1
                        if on_chunk is not None:
                            on_chunk(c.start)
                    pending, chunk_start, in_chunk = c, chunk_start + in_chunk, 0
            del b
        st.finish()
        last = s.take(chunk_start)
        st.flow_ids.clear()  # the pass is over: the 5-tuple index is no longer needed
        if pending is not None:
            s.flush(pending, last)
            chunks += 1
        s.flush(last, None)
        chunks += 1 if len(last.columns["ts_ns"]) or not chunks else 0
        s._close(None, None)
        for name in ("packets", "rtp", "anomalies", "datagrams", "flows", "rtp_samples"):
            if name not in writers.w:  # an empty capture still gets every dataset
                writers.write(name, tables.empty(name))
        files = writers.close()
    except BaseException:
        writers.abort()
        raise
    info = {
        **file_info(reader, st, None),
        "control_frames": s.control,
        "chunks": chunks,
        "flows": s.next_final,
        "anomalies_dropped": s.dropped,
    }
    return StreamResult(
        out=outp,
        info=info,
        rows=dict(writers.rows),
        files=files,
        addresses=list(st.ip_list),
        wall_s=time.perf_counter() - t0,
    )


__all__ = ["CHUNK_PACKETS", "IDLE_TIMEOUT_S", "StreamResult", "read_datagrams", "stream"]
