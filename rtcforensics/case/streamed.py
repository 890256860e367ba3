"""The checks of a streamed capture: the frames that need only bounded data, rebuilt from the stream's datasets.

A capture streamed into a case (``ingest --stream-above``, or ``ingest -``) is never held in memory: its
`packets`, `flows` and `rtp` frames go to the case chunk by chunk, tshark does not see its control plane,
and no per-packet frame is built. What the stream keeps besides grows with the traffic's *messages*, not its
packets: the ``datagrams`` dataset (every STUN/TURN, DTLS, RTCP and ZRTP message with its bytes). From it
:func:`analyze_streamed` makes a :class:`~rtcforensics.capture.Capture` (``Capture.from_dissection``: the
datagrams read back from disk as the builders iterate them, the stream's ``info``, no per-packet columns),
builds the `stun` and `dtls` frames with the builders ``load()`` uses, and runs every check of the catalogue
over it: the checks whose frames are all there (DTLS002-005, ICE004, TURN001-003, SRTP001/002 from the DTLS
handshakes, COMP001/002 from STUN SOFTWARE and DTLS ClientHellos) give their real findings (a check that
could also have read signalling says so in its coverage: "not examined"); the others are "not observable"
with the reason (the frame they need is not available when streamed, and why), and the run stays incomplete.
The `rtcp` frame is not built (its corroboration needs every RTP packet's SSRC and flow).

Bound: a frame whose messages exceed :data:`MAX_DATAGRAMS` (STUN messages for `stun`, DTLS records'
datagrams for `dtls`) is not built; the checks that need it are not run, and coverage and the manifest say
why. Memory stays within the streaming budget (1 GB): see :data:`MAX_DATAGRAMS`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..dissect.model import Datagram, Dissection

# Messages of one kind (STUN for the `stun` frame, DTLS for `dtls`) a streamed capture may have for that frame
# to be built. Measured (2 shared cores) on turn_relay_longterm's STUN messages repeated, building the stun
# frame and running the checks over it: peak RSS 435 MB at 100,000 messages, 780 MB at 250,000, 909 MB at
# 300,000 (about 2.3 KB a message over ~200 MB), so 250,000 keeps a streamed ingest under 1 GB. A day of one
# call's ICE consent checks (a request and its response every ~5 s each way) is ~70,000 STUN messages; DTLS
# is a handful of datagrams per call. RTCP and ZRTP messages are not read, however many.
MAX_DATAGRAMS = 250_000
READ_BATCH = 50_000  # datagram rows turned into Python objects at a time
# The frames a streamed capture builds (their builders need only the datagrams, ``info`` and the anomaly log).
STREAMED_FRAMES = ("stun", "dtls", "anomalies")
STORED_FRAMES = ("stun", "dtls")  # written to the case beside the stream's packets, flows, rtp, anomalies
MEMORY = "memory budget"  # words that make ``incomplete_reasons`` count a not-observable check as not run
PER_PACKET = frozenset({"packets", "flows", "rtp"})
SIGNALLING = frozenset({"signalling", "sdp", "candidates", "sessions"})


def unavailable_reason(how: str, frame: str, over: Mapping[str, tuple[int, int]] | None = None) -> str:
    """Why ``frame`` is not available for a capture streamed because ``how``; ``over``: frame -> (messages,
    limit) of the frames not built because their messages exceed the limit."""
    if over and frame in over:
        n, limit = over[frame]
        why = f"its {n:,} {frame.upper()} messages exceed the {limit:,} held in memory to build the {frame} frame"
    elif frame in PER_PACKET:
        why = f"its {frame} frame is stored in the case but not held in memory for the checks"
    elif frame in SIGNALLING:
        why = "no signalling: tshark does not dissect the control plane of a streamed capture"
    else:
        why = "no per-packet RTP frame or payloads are held in memory"
    return f"the capture was streamed ({how}): {why} ({MEMORY})"


@dataclass
class StreamedChecks:
    """What :func:`analyze_streamed` made: findings and coverage as dicts (the store's records), the frames
    built (unredacted), the anomaly rows of the builders and checks, the checks not run and why the run is
    incomplete."""

    findings: list[dict[str, Any]]
    coverage: list[dict[str, Any]]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    anomalies: pd.DataFrame | None = None
    not_run: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # frames that could not be built
    checks_failed: int = 0


def datagram_counts(out: Path) -> dict[str, int]:
    """Rows of the stream's ``datagrams`` dataset in ``out`` per kind (stun, dtls, rtcp, zrtp)."""
    kinds = pq.read_table(out / "datagrams" / "part.parquet", columns=["kind"])["kind"].value_counts()
    return {str(k["values"]): int(k["counts"]) for k in kinds.to_pylist()}


class DatagramsOnDisk:
    """The messages of one ``kind`` of a stream's ``datagrams`` dataset, read from disk each time they are
    iterated (``dissect.stream.read_datagrams``, :data:`READ_BATCH` rows at a time), so the builders, which
    make one pass over them, never hold them all as Python objects. Addresses and names are interned."""

    def __init__(self, part: Path, kind: str, count: int) -> None:
        self.part, self.kind, self.count = part, kind, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Datagram]:
        from ..dissect.stream import read_datagrams

        if not self.count:
            return
        pf = pq.ParquetFile(self.part)
        for batch in pf.iter_batches(batch_size=READ_BATCH):
            t = pa.Table.from_batches([batch])
            t = t.filter(pc.equal(t["kind"], self.kind))
            for dg in read_datagrams(t)[self.kind]:
                dg.src, dg.dst, dg.transport = (
                    sys.intern(dg.src),
                    sys.intern(dg.dst),
                    sys.intern(dg.transport),
                )
                if dg.via_turn is not None:
                    dg.via_turn = sys.intern(dg.via_turn)
                if dg.turn_peer is not None:
                    dg.turn_peer = sys.intern(dg.turn_peer)
                yield dg


def streamed_dissection(
    out: Path, info: Mapping[str, Any], name: str, counts: Mapping[str, int]
) -> Dissection:
    """The fast-path result of the capture streamed into ``out``, for ``Capture.from_dissection``: its
    ``info``, a fresh anomaly log (the stream's rows are in its ``anomalies`` dataset), the STUN/DTLS/RTCP/ZRTP
    messages read from the ``datagrams`` dataset as they are iterated (``counts`` of them per kind), no
    per-packet columns."""
    part = out / "datagrams" / "part.parquet"

    def lazy(kind: str) -> Sequence[Datagram]:
        # an iterable read from disk where the model says sequence: the builders of the frames built here iterate
        return cast(Sequence[Datagram], DatagramsOnDisk(part, kind, counts.get(kind, 0)))

    return Dissection(
        path=name, info=dict(info), stun=lazy("stun"), dtls=lazy("dtls"), rtcp=lazy("rtcp"), zrtp=lazy("zrtp")
    )


def analyze_streamed(
    out: Path,
    info: Mapping[str, Any],
    *,
    how: str,
    name: str,
    keylog: str | None = None,
    params: Mapping[str, Any] | None = None,
    max_datagrams: int = MAX_DATAGRAMS,
) -> StreamedChecks:
    """Build the bounded frames of the capture streamed into ``out`` (``dissect.stream``'s datasets, ``info``
    its StreamResult.info) and run the checks over them; see the module docstring. ``how``: why the capture
    was streamed (for the reasons), ``name``: what it is called, ``keylog``: SSLKEYLOGFILE for DTLS 1.3."""
    from ..capture import Capture
    from ..checks.analyze import FAILED, NOT_OBSERVABLE, analyze

    counts = datagram_counts(out)
    over = {f: (counts[f], max_datagrams) for f in STORED_FRAMES if counts.get(f, 0) > max_datagrams}
    cap = Capture.from_dissection(
        streamed_dissection(out, info, name, counts),
        frames=[f for f in STREAMED_FRAMES if f not in over],
        why=lambda frame: unavailable_reason(how, frame, over),
        keylog=keylog,
    )
    report = analyze(cap, params=dict(params or {}))
    frames: dict[str, pd.DataFrame] = {}
    errors: list[str] = []
    for f in STORED_FRAMES:
        if f in over:
            continue
        try:
            frames[f] = cap.get_frame(f)
        except Exception as e:
            errors.append(f"frame {f}: {type(e).__name__}: {e}")
    anomalies = cap.get_frame("anomalies")
    if len(report.anomalies):
        anomalies = pd.concat([anomalies, report.anomalies], ignore_index=True)
    coverage = [c.to_dict() for c in report.coverage]
    not_run = [
        c["id"] for c in coverage if c["status"] == NOT_OBSERVABLE and f"streamed ({how})" in c["reason"]
    ]
    incomplete = [
        f"{f} frame not built: its {n:,} {f.upper()} messages exceed the limit of {limit:,}"
        for f, (n, limit) in over.items()
    ]
    if not_run:
        incomplete.append(
            f"{len(not_run)} checks not run ({', '.join(not_run)}): the capture was streamed ({how}) and "
            "the frames they need are not available (their coverage says which and why)"
        )
    partial = [
        c["id"]
        for c in coverage
        if c["status"] != NOT_OBSERVABLE and c["id"] not in not_run and f"streamed ({how})" in c["reason"]
    ]
    if partial:
        incomplete.append(
            f"{len(partial)} checks run without some of their inputs ({', '.join(partial)}): frames not "
            "available when streamed (their coverage says which)"
        )
    incomplete += [r for r in report.incomplete if not any(f"check {i} " in r for i in not_run)]
    return StreamedChecks(
        findings=[f.to_dict() for f in report.findings],
        coverage=coverage,
        frames=frames,
        anomalies=anomalies,
        not_run=not_run,
        incomplete=incomplete,
        errors=errors,
        checks_failed=sum(c["status"] == FAILED for c in coverage),
    )
