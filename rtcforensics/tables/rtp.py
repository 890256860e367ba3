"""The `rtp` (per packet), `rtp_streams` (per flow + SSRC) and `rtcp` (per RTCP packet) frames.

`rtp` comes straight from the fast path's header columns. `rtp_streams` adds sequence accounting (lost
packets with 16-bit wrap-around), RFC 3550 §6.4.1 jitter, bitrate, the keying as far as the capture shows it
(:func:`keying_for`) and evidence, from payload samples, of whether the media is plaintext
(:func:`plaintext_evidence`). `rtcp` decodes every packet of every compound RTCP datagram
(``dissect.rtp.decode_rtcp_compound``); SRTCP shows only its clear first header and is marked encrypted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..addr import endpoint
from ..capture import Capture, register_frame
from ..dissect.fastpath import VIA
from ..dissect.model import Datagram
from ..dissect.rtp import RTCP_PT_NAMES, RtcpCompound, decode_rtcp_compound, decode_rtp, rtcp_problem
from ..errors import DecodeError
from ..schema import frame_schema

VIA_CATS = "category:" + ",".join(VIA)
KEYINGS = ("dtls-srtp", "sdes", "sdes (inferred)", "none", "unknown")

RTP = frame_schema(
    "rtp",
    "One row per RTP (or SRTP: the header is in clear) packet, also when carried in TURN or TCP framing.",
    [
        ("frame", "Int64", "Wireshark frame number (the frame where a TCP-framed message completes)"),
        ("ts", "ts", "capture time (UTC)"),
        ("flow_id", "Int64", "flow (packets.flow_id; the outer 5-tuple when via TURN)"),
        ("ssrc", "UInt32", "synchronisation source"),
        ("seq", "UInt16", "sequence number"),
        ("rtp_ts", "UInt32", "RTP timestamp (media clock units)"),
        ("pt", "UInt8", "payload type"),
        ("marker", "boolean", "marker bit"),
        ("version", "UInt8", "RTP version (2)"),
        ("padding", "boolean", "padding bit"),
        ("extension", "boolean", "header-extension bit"),
        ("csrc_count", "UInt8", "number of CSRCs"),
        (
            "ext_profile",
            "UInt16",
            "header-extension profile: 0xBEDE one-byte, 0x100x two-byte (RFC 8285); NA without extension",
        ),
        ("payload_len", "Int32", "payload bytes after header, CSRCs, extension and (readable) padding"),
        ("length", "Int32", "bytes of the whole RTP packet (SRTP: auth tag included)"),
        ("via_turn", VIA_CATS, "how it was unwrapped from TURN (NA: direct)"),
    ],
)

RTP_STREAMS = frame_schema(
    "rtp_streams",
    "One row per RTP stream: a flow and an SSRC (one direction of media).",
    [
        ("flow_id", "Int64", "flow (packets.flow_id)"),
        ("ssrc", "UInt32", "synchronisation source"),
        ("src", "string", "sender ip:port of the stream's first packet (the outer 5-tuple when via TURN)"),
        ("dst", "string", "receiver ip:port of the stream's first packet"),
        ("packets", "Int64", "RTP packets received"),
        ("pts", "object", "sorted list of payload types seen"),
        ("pt", "UInt8", "most frequent payload type"),
        (
            "codec",
            "string",
            "codec name (static payload types here; from SDP when the sessions layer adds it)",
        ),
        ("clock_rate", "Int32", "media clock rate used for jitter, Hz"),
        (
            "clock_rate_source",
            "category:static-pt,sdp,guess",
            "where clock_rate comes from: RFC 3551 static payload type, SDP, or a guess from the timestamps' "
            "pace snapped to a usual rate (48000 audio, 90000 video, ...)",
        ),
        ("first_frame", "Int64", "frame of the first packet"),
        ("last_frame", "Int64", "frame of the last packet"),
        ("first_ts", "ts", "time of the first packet (UTC)"),
        ("last_ts", "ts", "time of the last packet (UTC)"),
        ("duration_s", "float64", "last_ts - first_ts, seconds"),
        ("seq_first", "UInt16", "first sequence number"),
        ("seq_last", "UInt16", "last sequence number (highest, after unwrapping)"),
        (
            "expected",
            "Int64",
            "packets expected from the extended sequence range (16-bit wrap-around unwrapped)",
        ),
        ("lost", "Int64", "expected - distinct sequence numbers received (sequence gaps)"),
        ("duplicates", "Int64", "packets whose sequence number was already received"),
        (
            "out_of_order",
            "Int64",
            "packets arriving with a lower extended sequence number than their predecessor",
        ),
        (
            "jitter_ms",
            "float64",
            "RFC 3550 §6.4.1 interarrival jitter estimate at the last packet, milliseconds "
            "(computed over the packets of the main payload type)",
        ),
        (
            "jitter_ms_mean",
            "float64",
            "mean of the running jitter estimate after each packet but the first, ms (as "
            "Wireshark's RTP stream analysis)",
        ),
        ("jitter_ms_max", "float64", "maximum of the running jitter estimate, ms"),
        ("bytes", "Int64", "RTP bytes (whole packets)"),
        ("kbps", "float64", "RTP bitrate over the stream's duration, kbit/s (NA for a single packet)"),
        ("via_turn", VIA_CATS, "how the stream was unwrapped from TURN (NA: direct)"),
        (
            "keying",
            "category:" + ",".join(KEYINGS),
            "how SRTP keys were agreed as far as the capture shows: dtls-srtp (DTLS on the same flow), sdes "
            "(a=crypto in SDP), sdes (inferred) (encrypted media on a flow whose ICE start is in the capture and "
            "no DTLS handshake anywhere: keys came with the signalling or out of band), none (plain RTP/AVP "
            "negotiated), unknown (see keying_for)",
        ),
        (
            "plaintext_score",
            "float64",
            "0..1: how strongly the payload bytes look like unencrypted media (see plaintext_evidence)",
        ),
        ("plaintext_reason", "string", "the evidence behind plaintext_score, in words"),
        ("payload_entropy", "float64", "Shannon entropy of the sampled payload bytes, bits per byte"),
        ("samples", "Int64", "payloads sampled for the plaintext evidence"),
    ],
)

RTCP = frame_schema(
    "rtcp",
    "One row per RTCP packet inside each (compound) RTCP datagram, SRTCP included (clear header only).",
    [
        ("frame", "Int64", "Wireshark frame number"),
        ("ts", "ts", "capture time (UTC)"),
        ("flow_id", "Int64", "flow (packets.flow_id)"),
        ("index", "Int32", "position of the packet inside its compound datagram (0-based)"),
        (
            "pt",
            "UInt8",
            "RTCP packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, 205 RTPFB, 206 PSFB, 207 XR)",
        ),
        ("pt_name", "string", "packet type name (SR, RR, SDES, BYE, APP, RTPFB, PSFB, XR, ...)"),
        ("count", "UInt8", "RC / SC / FMT field"),
        ("length", "Int32", "packet length in bytes, header included"),
        ("ssrc", "UInt32", "sender SSRC (SR/RR/FB/APP/XR), first chunk's SSRC (SDES), first SSRC (BYE)"),
        ("media_ssrc", "UInt32", "RTPFB/PSFB media source, or the first report block's source"),
        ("report_count", "Int32", "number of report blocks (SR/RR)"),
        (
            "reports",
            "object",
            "list of report blocks as dicts (ssrc, fraction_lost, cumulative_lost, "
            "highest_seq, jitter, lsr, dlsr)",
        ),
        ("fraction_lost", "float64", "first report block: fraction lost since the last report, 0..1"),
        ("cumulative_lost", "Int64", "first report block: cumulative packets lost (signed 24-bit)"),
        ("jitter_rtp_ts", "UInt32", "first report block: interarrival jitter in RTP timestamp units"),
        ("sr_ntp_ts", "ts", "SR: sender's NTP wall-clock time (UTC)"),
        ("sr_rtp_ts", "UInt32", "SR: RTP timestamp matching sr_ntp_ts"),
        ("sr_packets", "UInt32", "SR: sender's packet count"),
        ("sr_octets", "UInt32", "SR: sender's octet count"),
        ("cname", "string", "SDES CNAME of the first chunk (stable per endpoint; can identify a user)"),
        ("sdes", "object", "all SDES chunks: list of dicts (ssrc, cname, name, tool, ...)"),
        ("bye_reason", "string", "BYE reason text"),
        ("fb_name", "string", "feedback message: NACK, PLI, FIR, REMB, TWCC, ..."),
        ("app_name", "string", "APP packet name (4 ASCII characters)"),
        ("xr_blocks", "object", "XR report block types"),
        ("encrypted", "boolean", "SRTCP: the compound does not parse past its clear first header"),
        ("via_turn", VIA_CATS, "how it was unwrapped from TURN (NA: direct)"),
    ],
)

# RFC 3551 §6 static payload types: (encoding name, clock rate)
STATIC_PT = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    5: ("DVI4", 8000),
    6: ("DVI4", 16000),
    7: ("LPC", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    10: ("L16", 44100),
    11: ("L16", 44100),
    12: ("QCELP", 8000),
    13: ("CN", 8000),
    14: ("MPA", 90000),
    15: ("G728", 8000),
    16: ("DVI4", 11025),
    17: ("DVI4", 22050),
    18: ("G729", 8000),
    25: ("CelB", 90000),
    26: ("JPEG", 90000),
    28: ("nv", 90000),
    31: ("H261", 90000),
    32: ("MPV", 90000),
    33: ("MP2T", 90000),
    34: ("H263", 90000),
}
USUAL_CLOCKS = (8000, 16000, 24000, 32000, 44100, 48000, 90000)


def _int(values: np.ndarray, dtype: str, na: np.ndarray | None = None) -> Any:
    arr = pd.array(values, dtype=dtype)
    if na is not None and na.any():
        arr[na] = pd.NA
    return arr


def _via(codes: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int64), dtype=RTP.column("via_turn").pandas_dtype())


@register_frame(RTP)
def build_rtp(cap: Capture) -> pd.DataFrame:
    r = cap.dissection.rtp
    if not len(r.get("frame", ())):
        return RTP.empty()
    prof = r["ext_profile"]
    return pd.DataFrame(
        {
            "frame": _int(r["frame"], "Int64"),
            "ts": pd.to_datetime(r["ts_ns"], unit="ns", utc=True),
            "flow_id": _int(r["flow_id"], "Int64"),
            "ssrc": _int(r["ssrc"], "UInt32"),
            "seq": _int(r["seq"], "UInt16"),
            "rtp_ts": _int(r["rtp_ts"], "UInt32"),
            "pt": _int(r["pt"], "UInt8"),
            "marker": pd.array(r["marker"], dtype="boolean"),
            "version": _int(r["version"], "UInt8"),
            "padding": pd.array(r["padding"], dtype="boolean"),
            "extension": pd.array(r["extension"], dtype="boolean"),
            "csrc_count": _int(r["csrc_count"], "UInt8"),
            "ext_profile": _int(np.where(prof < 0, 0, prof).astype(np.uint16), "UInt16", prof < 0),
            "payload_len": _int(r["payload_len"], "Int32"),
            "length": _int(r["length"], "Int32"),
            "via_turn": _via(r["via_turn"]),
        }
    )


# ---------------------------------------------------------------------------------------------------
# keying
KeyingRefiner = Callable[[Capture, pd.DataFrame], "pd.Series | None"]
KEYING_REFINERS: list[KeyingRefiner] = []


def register_keying_refiner(fn: KeyingRefiner) -> KeyingRefiner:
    """Register ``fn(cap, streams) -> Series`` (index aligned with ``streams``; values in dtls-srtp / sdes /
    none / unknown, NA = no opinion). The sessions layer uses it to bring SDP facts in (a=crypto → sdes,
    RTP/AVP without crypto → none, a=fingerprint → dtls-srtp). Later refiners override earlier ones."""
    KEYING_REFINERS.append(fn)
    return fn


def keying_for(cap: Capture, streams: pd.DataFrame | None = None) -> pd.Series:
    """Keying of each RTP stream as far as the capture itself shows it.

    ``dtls-srtp`` when the ``dtls`` frame has a handshake on the stream's flow (RFC 5764: keys come from that handshake);
    otherwise ``unknown``: telling SDES (RFC 4568 a=crypto) from plain RTP needs the SDP, which this
    function does not read; registered refiners (:func:`register_keying_refiner`) add it when the capture
    or side inputs carry SDP frames. ``streams`` defaults to ``cap.rtp_streams``' (flow_id, ssrc)."""
    if streams is None:
        streams = cap.rtp_streams[["flow_id", "ssrc"]]
    # flows of the DTLS frame: DTLS corroborated by a handshake or a coherent epoch, not by first byte alone
    dtls_flows = set(cap.dtls["flow_id"].dropna().astype(int).tolist())
    out = pd.Series(
        ["dtls-srtp" if int(f) in dtls_flows else "unknown" for f in streams["flow_id"]],
        index=streams.index,
        dtype=object,
    )
    if KEYING_REFINERS and "sdp" in cap.frame_names():
        for fn in KEYING_REFINERS:
            refined = fn(cap, streams)
            if refined is not None:
                refined = refined.reindex(streams.index)
                out = out.where(refined.isna(), refined)
    return out


# ---------------------------------------------------------------------------------------------------
# plaintext evidence
def _entropy(data: bytes) -> float:
    if not data:
        return float("nan")
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


def _random_entropy(n: int) -> float:
    """Expected plug-in entropy estimate of n uniformly random bytes (Miller-Madow bias 255 / (2 n ln 2));
    its standard deviation is a few hundredths for n >= 512, so 0.15 below it is far outside chance."""
    return 8.0 - 255.0 / (2.0 * max(n, 1) * math.log(2))


def _top_share(data: bytes, k: int = 16) -> float:
    counts = np.sort(np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256))[::-1]
    return float(counts[:k].sum() / max(len(data), 1))


def _opus_toc_ok(payloads: list[bytes]) -> bool:
    """RFC 6716 §3.1: the TOC byte; a plain Opus stream repeats one configuration and its frame-count
    codes are self-consistent (code 1: two equal frames → odd total length; code 3: 1..48 frames)."""
    tocs = [p[0] for p in payloads if p]
    if len(tocs) < 6:
        return False
    _, n = Counter(tocs).most_common(1)[0]
    if n / len(tocs) < 0.6:
        return False
    for p in payloads:
        if not p:
            continue
        code = p[0] & 3
        if code == 1 and (len(p) - 1) % 2:
            return False
        if code == 3 and (len(p) < 2 or not 1 <= (p[1] & 0x3F) <= 48):
            return False
    return True


def _vp8_ok(payloads: list[bytes]) -> bool:
    """RFC 7741 §4.2: VP8 payload descriptor reserved bits are zero (|X|R|N|S|R|PID|, then |I|L|T|K|RSV|)."""
    ps = [p for p in payloads if len(p) >= 3]
    if len(ps) < 6:
        return False
    for p in ps:
        if p[0] & 0x48 or p[0] & 0x07 > 4:
            return False
        if p[0] & 0x80 and p[1] & 0x0F:
            return False
    return True


def _h264_ok(payloads: list[bytes]) -> bool:
    """RFC 6184 §5.3: NAL unit header F bit zero and a defined type (1..23 single NAL, 24 STAP-A, 28 FU-A)."""
    ps = [p for p in payloads if len(p) >= 2]
    if len(ps) < 6:
        return False
    return all(not p[0] & 0x80 and (1 <= (p[0] & 0x1F) <= 24 or (p[0] & 0x1F) == 28) for p in ps)


def _h263_ok(payloads: list[bytes]) -> bool:
    """RFC 2190 §5.1: mode A payload headers (F=0) naming one source format (1..5, sub-QCIF..16CIF) in every
    sample, and an H.263 picture start code (22 bits 0000 0000 0000 0000 1000 00) after the header of the
    packets that begin a picture (SBIT 0)."""
    ps = [p for p in payloads if len(p) >= 7]
    if len(ps) < 6 or any(p[0] & 0x80 for p in ps):
        return False
    srcs = {p[1] >> 5 for p in ps}
    if len(srcs) != 1 or not 1 <= next(iter(srcs)) <= 5:
        return False
    return any(p[4] == 0 and p[5] == 0 and p[6] & 0xFC == 0x80 for p in ps)


def plaintext_evidence(
    pt: int, clock_rate: int | None, samples: list[bytes]
) -> tuple[float, str, float, int]:
    """(score 0..1, reason, payload entropy bits/byte, payloads used) from sampled RTP packets.

    Encrypted (SRTP) payloads are uniformly random bytes: high entropy, no codec structure. Plaintext media
    shows structure: G.711 concentrates on few byte values (silence 0xD5/0x55 PCMA, 0xFF/0x7F PCMU), an Opus
    stream repeats its TOC byte, VP8 descriptors and H.264 NAL headers keep reserved bits zero, and raw
    audio has visibly low entropy. Structure tests need >= 6 payloads; with random bytes each passes by
    chance with probability far below 1e-3."""
    payloads: list[bytes] = []
    for raw in samples:
        try:
            payloads.append(decode_rtp(raw).payload)
        except DecodeError:
            continue
    data = b"".join(payloads)
    ent = _entropy(data)
    if len(data) < 64:
        return float("nan"), "too few payload bytes sampled", ent, len(payloads)
    reasons: list[tuple[float, str]] = []
    if pt in (0, 8) or (clock_rate == 8000 and pt not in STATIC_PT):
        share = _top_share(data)
        if share > 0.3:
            reasons.append(
                (0.95, f"G.711-like byte distribution: 16 byte values make {share:.0%} of the payload")
            )
    expect = _random_entropy(len(data))
    if len(data) >= 512 and ent < expect - 0.15:
        reasons.append(
            (
                0.85,
                f"payload bytes are not random: entropy {ent:.2f} bits/byte where encrypted bytes "
                f"would give {expect:.2f}",
            )
        )
    if _opus_toc_ok(payloads) and (clock_rate == 48000 or pt >= 96):
        reasons.append((0.8, "consistent Opus TOC bytes (RFC 6716 §3.1)"))
    if pt == 34 and _h263_ok(payloads):
        reasons.append((0.75, "H.263 payload headers (RFC 2190) and picture start codes in clear"))
    # VP8 and H.264 travel under dynamic payload types: their header tests say nothing of a static one
    if pt not in STATIC_PT and _vp8_ok(payloads):
        reasons.append((0.75, "valid VP8 payload descriptors (RFC 7741 §4.2) in every sample"))
    if pt not in STATIC_PT and _h264_ok(payloads):
        reasons.append((0.7, "valid H.264 NAL unit headers (RFC 6184) in every sample"))
    if reasons:
        score, why = max(reasons)
        return score, why, ent, len(payloads)
    if len(data) >= 512:
        return (
            0.02,
            f"payload bytes look random (entropy {ent:.2f} bits/byte): consistent with SRTP",
            ent,
            len(payloads),
        )
    return 0.2, f"no codec structure found (entropy {ent:.2f} bits/byte)", ent, len(payloads)


# ---------------------------------------------------------------------------------------------------
def _guess_clock(rtp_ts: np.ndarray, ts_ns: np.ndarray) -> int | None:
    """Snap the pace of RTP timestamps against capture time to a usual media clock rate."""
    if len(rtp_ts) < 2:
        return None
    dt = (int(ts_ns[-1]) - int(ts_ns[0])) / 1e9
    if dt <= 0.2:
        return None
    d = (int(rtp_ts[-1]) - int(rtp_ts[0])) & 0xFFFFFFFF
    rate = d / dt
    best = min(USUAL_CLOCKS, key=lambda c: abs(math.log(max(rate, 1) / c)))
    return best if abs(math.log(max(rate, 1) / best)) < 0.25 else None


def _jitter(arrival_ns: np.ndarray, rtp_ts: np.ndarray, clock: int) -> np.ndarray:
    """RFC 3550 §6.4.1 / A.8 running interarrival jitter after each packet, in milliseconds.

    J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16 with D the difference of transit times in timestamp units;
    J = 0 at the first packet. The recursion is the linear filter J(i) = a J(i-1) + |D| / 16 (a = 15/16),
    evaluated in blocks with numpy: inside a block J(i) = a^(i+1) J0 + a^i * cumsum(|D(k)| a^-k) / 16."""
    n = len(arrival_ns)
    out = np.zeros(n, dtype=np.float64)
    if n < 2:
        return out
    a_ts = (arrival_ns - arrival_ns[0]).astype(np.float64) * clock / 1e9
    ds: np.ndarray = np.diff(rtp_ts.astype(np.int64))
    ds = ((ds + (1 << 31)) % (1 << 32)) - (1 << 31)  # 32-bit timestamp wrap-around
    d = np.abs(np.diff(a_ts) - ds) / 16.0
    a = 15.0 / 16.0
    block = 4096  # (16/15)^4096 ~ 1e115 stays inside float64
    k = np.arange(block, dtype=np.float64)
    pw, pw1, inv = a**k, a ** (k + 1), a**-k
    j0 = 0.0
    for s0 in range(0, len(d), block):
        x = d[s0 : s0 + block]
        m = len(x)
        j = pw1[:m] * j0 + pw[:m] * np.cumsum(x * inv[:m])
        out[1 + s0 : 1 + s0 + m] = j
        j0 = float(j[-1])
    return out * 1000.0 / clock


@register_frame(RTP_STREAMS)
def build_rtp_streams(cap: Capture) -> pd.DataFrame:
    r = cap.dissection.rtp
    n = len(r.get("frame", ()))
    if not n:
        return RTP_STREAMS.empty()
    key = (r["flow_id"].astype(np.int64) << 32) | r["ssrc"].astype(np.int64)
    # streams numbered by first packet (factorize keeps first-appearance order); packets grouped by
    # stream, in arrival order inside each
    g, uniq = pd.factorize(key)
    if len(uniq) <= 64:  # the usual case: a few streams, one linear pass each beats a sort
        order = np.concatenate([np.flatnonzero(g == k) for k in range(len(uniq))])
    else:
        order = np.argsort(g, kind="stable")
    g_sorted = g[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    ends = np.r_[starts[1:], n]
    seq = r["seq"][order].astype(np.int64)
    # extended sequence numbers: unwrap 16-bit steps (RFC 3550 A.1), restart at each stream
    step = np.diff(seq, prepend=seq[:1])
    step = ((step + 32768) % 65536) - 32768
    step[starts] = 0
    ext = np.cumsum(step)
    ext = ext - np.repeat(ext[starts], ends - starts) + np.repeat(seq[starts], ends - starts)
    ts_ns = r["ts_ns"][order]
    rtp_ts = r["rtp_ts"][order]
    pt = r["pt"][order]
    length = r["length"][order].astype(np.int64)
    frame = r["frame"][order]
    via = r["via_turn"][order]

    packets = cap.packets
    # endpoints of each stream's first packet (its row found by frame number: zero-length records have none)
    first_rows = packets.iloc[packets["frame"].searchsorted(frame[starts])]
    ends_src = [
        endpoint(ip, pt)
        for ip, pt in zip(
            first_rows["src"].to_numpy(dtype=object, na_value=None),
            first_rows["sport"].to_numpy(dtype=object, na_value=None),
        )
    ]
    ends_dst = [
        endpoint(ip, pt)
        for ip, pt in zip(
            first_rows["dst"].to_numpy(dtype=object, na_value=None),
            first_rows["dport"].to_numpy(dtype=object, na_value=None),
        )
    ]

    rows = []
    samples = cap.dissection.rtp_samples
    for k, (s0, s1) in enumerate(zip(starts.tolist(), ends.tolist())):
        e = ext[s0:s1]
        pt_counts = np.bincount(pt[s0:s1])
        pts = np.flatnonzero(pt_counts)
        main_pt = int(pt_counts.argmax())
        clock: int | None
        if main_pt in STATIC_PT:
            codec, clock, src = STATIC_PT[main_pt][0], STATIC_PT[main_pt][1], "static-pt"
        else:
            sel = pt[s0:s1] == main_pt
            codec, clock, src = None, _guess_clock(rtp_ts[s0:s1][sel], ts_ns[s0:s1][sel]), "guess"
            if clock is None and sel.sum() >= 2:
                # too short to measure: video packets share timestamps (one frame, several packets)
                same = np.diff(rtp_ts[s0:s1][sel].astype(np.int64)) == 0
                clock = 90000 if same.mean() > 0.2 else 48000
        emax, emin = int(e.max()), int(e.min())
        if emax - emin < 4 * len(e) + 1024:
            distinct = int(np.count_nonzero(np.bincount(e - emin)))
        else:
            distinct = len(np.unique(e))
        dur = (int(ts_ns[s1 - 1]) - int(ts_ns[s0])) / 1e9
        flow_id = int(r["flow_id"][order[s0]])
        ssrc = int(r["ssrc"][order[s0]])
        if clock:
            sel = pt[s0:s1] == main_pt
            jv = _jitter(ts_ns[s0:s1][sel], rtp_ts[s0:s1][sel], clock)
            jit, jit_mean, jit_max = (
                float(jv[-1]),
                float(jv[1:].mean()) if len(jv) > 1 else float("nan"),
                float(jv.max()),
            )
        else:
            jit = jit_mean = jit_max = float("nan")
        score, reason, ent, nsamp = plaintext_evidence(main_pt, clock, samples.get((flow_id, ssrc), []))
        v = via[s0:s1]
        vv = v[v >= 0]
        nbytes = int(length[s0:s1].sum())
        rows.append(
            {
                "flow_id": flow_id,
                "ssrc": ssrc,
                "src": ends_src[k],
                "dst": ends_dst[k],
                "packets": s1 - s0,
                "pts": [int(x) for x in pts],
                "pt": main_pt,
                "codec": codec,
                "clock_rate": clock,
                "clock_rate_source": src if clock else None,
                "first_frame": int(frame[s0]),
                "last_frame": int(frame[s1 - 1]),
                "first_ts": int(ts_ns[s0]),
                "last_ts": int(ts_ns[s1 - 1]),
                "duration_s": dur,
                "seq_first": int(seq[s0]),
                "seq_last": emax & 0xFFFF,
                "expected": emax - emin + 1,
                "lost": emax - emin + 1 - distinct,
                "duplicates": (s1 - s0) - distinct,
                "out_of_order": int((np.diff(e) < 0).sum()),
                "jitter_ms": jit,
                "jitter_ms_mean": jit_mean,
                "jitter_ms_max": jit_max,
                "bytes": nbytes,
                "kbps": nbytes * 8 / dur / 1000 if dur > 0 else None,
                "via_turn": VIA[int(np.bincount(vv).argmax())] if len(vv) else None,
                "keying": None,
                "plaintext_score": score,
                "plaintext_reason": reason,
                "payload_entropy": ent,
                "samples": nsamp,
            }
        )
    df = pd.DataFrame(rows)
    df["first_ts"] = pd.to_datetime(df["first_ts"], unit="ns", utc=True)
    df["last_ts"] = pd.to_datetime(df["last_ts"], unit="ns", utc=True)
    df = RTP_STREAMS.conform(df)
    keying = keying_for(cap, df[["flow_id", "ssrc"]])
    keying = keying.where(~_sdes_inferred(cap, df, keying), "sdes (inferred)")
    df["keying"] = pd.Categorical(keying, dtype=RTP_STREAMS.column("keying").pandas_dtype())
    return df


def _sdes_inferred(cap: Capture, streams: pd.DataFrame, keying: pd.Series) -> pd.Series:
    """Streams whose SRTP must have been keyed without DTLS: keying unknown, payload random (SRTP), no DTLS
    packet anywhere in the capture, and the flow's ICE connectivity checks (its start) before its first media
    packet — a DTLS-SRTP call would show its handshake between the two (RFC 5764 §4)."""
    out = pd.Series(False, index=streams.index)
    pk = cap.packets
    if not len(streams) or (pk["cls"] == "dtls").any():
        return out
    first_stun = pk[pk["cls"] == "stun"].groupby("flow_id")["frame"].min()
    for i, (flow, first, score) in enumerate(
        zip(streams["flow_id"], streams["first_frame"], streams["plaintext_score"])
    ):
        if keying.iloc[i] != "unknown" or pd.isna(score) or float(score) >= 0.3 or pd.isna(flow):
            continue
        start = first_stun.get(int(flow))
        out.iloc[i] = start is not None and not pd.isna(start) and int(start) < int(first)
    return out


# ---------------------------------------------------------------------------------------------------
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def _ntp_to_ns(ntp: int) -> int | None:
    sec, frac = ntp >> 32, ntp & 0xFFFFFFFF
    if sec < NTP_EPOCH_OFFSET:
        return None
    return (sec - NTP_EPOCH_OFFSET) * 1_000_000_000 + (frac * 1_000_000_000 >> 32)


def corroborated_rtcp(cap: Capture) -> list[tuple[Datagram, RtcpCompound]]:
    """The candidate RTCP datagrams (first byte and packet type by RFC 7983) that are RTCP: each of valid
    structure (:func:`rtcp_problem`), on a flow that corroborates it: a compound read in clear to its last
    byte, one sender SSRC in two packets or more, RTP on the same flow (RFC 5761 multiplexing), or an SSRC
    (sender, reported or fed back) that an RTP stream of the capture carries (RTCP on its own port pair
    names the RTP flow's SSRCs). The others are
    anomaly rows with the reason (``rtcp_invalid`` per packet, ``rtcp_uncorroborated`` per flow)."""
    d = cap.dissection
    valid: dict[int, list[tuple[Datagram, RtcpCompound]]] = {}
    for dg in d.rtcp:
        try:
            comp = decode_rtcp_compound(dg.data)
        except DecodeError as e:
            d.anomalies.add("rtcp", e.name, e.detail, frame=dg.frame, ts_ns=dg.ts_ns, flow_id=dg.flow_id)
            continue
        why = rtcp_problem(comp)
        if why is not None:
            d.anomalies.add(
                "rtcp",
                "rtcp_invalid",
                f"not RTCP: {why}; classed other",
                frame=dg.frame,
                ts_ns=dg.ts_ns,
                flow_id=dg.flow_id,
            )
            continue
        valid.setdefault(dg.flow_id, []).append((dg, comp))
    has_rtp = len(d.rtp.get("ssrc", ())) > 0
    rtp_ssrcs = {int(x) for x in np.unique(d.rtp["ssrc"])} if has_rtp else set()
    rtp_flows = {int(x) for x in np.unique(d.rtp["flow_id"])} if has_rtp else set()
    out: list[tuple[Datagram, RtcpCompound]] = []
    for flow_id, items in valid.items():
        senders = Counter(p.ssrc for _, c in items for p in c.packets[:1])
        named = {
            s
            for _, c in items
            for p in c.packets
            for s in (p.ssrc, p.media_ssrc, *(b.ssrc for b in p.reports))
            if s is not None
        }
        clear = any(not c.encrypted for _, c in items)
        if clear or max(senders.values()) >= 2 or flow_id in rtp_flows or named & rtp_ssrcs:
            out.extend(items)
            continue
        dg0 = items[0][0]
        d.anomalies.add(
            "rtcp",
            "rtcp_uncorroborated",
            f"{len(items)} packet(s) look like SRTCP but none reads in clear, no sender SSRC repeats, the "
            f"flow carries no RTP and no RTP stream carries one of their SSRCs: classed other",
            frame=dg0.frame,
            ts_ns=dg0.ts_ns,
            flow_id=flow_id,
        )
    out.sort(key=lambda x: x[0].frame)
    return out


@register_frame(RTCP)
def build_rtcp(cap: Capture) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for dg, comp in cap.cached("rtcp_corroborated", lambda: corroborated_rtcp(cap)):
        for i, p in enumerate(comp.packets):
            rb = p.reports[0] if p.reports else None
            si = p.sender_info if not comp.encrypted else None
            rows.append(
                {
                    "frame": dg.frame,
                    "ts": dg.ts_ns,
                    "flow_id": dg.flow_id,
                    "index": i,
                    "pt": p.packet_type,
                    "pt_name": RTCP_PT_NAMES.get(p.packet_type, str(p.packet_type)),
                    "count": p.count,
                    "length": p.length,
                    "ssrc": p.ssrc,
                    "media_ssrc": p.media_ssrc if p.media_ssrc is not None else (rb.ssrc if rb else None),
                    "report_count": None if comp.encrypted else len(p.reports),
                    "reports": None
                    if comp.encrypted
                    else [
                        {
                            "ssrc": b.ssrc,
                            "fraction_lost": b.fraction_lost,
                            "cumulative_lost": b.cumulative_lost,
                            "highest_seq": b.highest_seq,
                            "jitter": b.jitter,
                            "lsr": b.lsr,
                            "dlsr": b.dlsr,
                        }
                        for b in p.reports
                    ],
                    "fraction_lost": rb.fraction_lost if rb else None,
                    "cumulative_lost": rb.cumulative_lost if rb else None,
                    "jitter_rtp_ts": rb.jitter if rb else None,
                    "sr_ntp_ts": _ntp_to_ns(si["ntp_ts"]) if si else None,
                    "sr_rtp_ts": si["rtp_ts"] if si else None,
                    "sr_packets": si["packets"] if si else None,
                    "sr_octets": si["octets"] if si else None,
                    "cname": p.sdes[0].get("cname") if p.sdes else None,
                    "sdes": p.sdes or None,
                    "bye_reason": p.bye_reason,
                    "fb_name": p.fb_name,
                    "app_name": p.app_name,
                    "xr_blocks": p.xr_blocks or None,
                    "encrypted": comp.encrypted,
                    "via_turn": dg.via_turn,
                }
            )
    if not rows:
        return RTCP.empty()
    df = pd.DataFrame(rows)
    for c in ("ts", "sr_ntp_ts"):
        df[c] = pd.to_datetime(df[c].astype("Int64"), unit="ns", utc=True)
    return RTCP.conform(df)
