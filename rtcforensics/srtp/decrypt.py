"""``cap.decrypt()``: find every SRTP key the capture and its side inputs give, authenticate and decrypt every
stream, and write what a responder needs: a plain-RTP pcap and audio.

Keys, in the order they are tried for a stream (the one whose auth tag verifies wins; a tag does not verify
by chance, so a wrong candidate costs time, never a wrong answer):
1. keys given by the user per SSRC (``SSRC=SUITE inline:BASE64``) or for any stream (``SUITE inline:BASE64``);
2. DTLS-SRTP keys derived with the keylog for the handshake on the stream's own flow, by sender;
3. SDES a=crypto keys from every SDP seen (wire or side files);
4. DTLS-SRTP keys of handshakes on other flows (relayed calls show the handshake on both legs).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..addr import endpoint, split_endpoint
from ..errors import DecodeError, InputError
from ..tables.rtp import STATIC_PT
from ..tables.srtp import SRTP_STREAMS
from . import audio
from .collect import collect_media
from .keys import MasterKey, dtls12_srtp_keys, dtls13_srtp_keys, parse_inline, parse_key_spec, profile
from .pcapout import write_rtp_pcap
from .session import KeyLookup, StreamState, decrypt_streams

if TYPE_CHECKING:
    from ..capture import Capture


@dataclass
class DecryptResult:
    capture: str
    streams: pd.DataFrame
    states: dict[tuple[int, str, int], StreamState] = field(repr=False, default_factory=dict)
    codecs: dict[int, tuple[str, int]] = field(repr=False, default_factory=dict)
    anomalies: list[dict[str, Any]] = field(default_factory=list)

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``decrypted.pcap`` (plain RTP, playable in Wireshark) and one WAV per audio stream."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        plain = sorted(
            ((r[1], st.sender, st.receiver, r[6]) for st in self.states.values() for r in st.plain),
            key=lambda x: x[0],
        )
        if plain:
            p = out / "decrypted.pcap"
            write_rtp_pcap(p, plain)
            written.append(p)
        dbfs: dict[tuple[int, str, int], float] = {}
        for k, st in self.states.items():
            pts = Counter(r[3] for r in st.plain)
            if not pts:
                continue
            pt = pts.most_common(1)[0][0]
            payloads = [_rtp_payload(r[6]) for r in sorted(st.plain, key=lambda r: r[0]) if r[3] == pt]
            codec = self.codecs.get(pt) or STATIC_PT.get(pt) or _probe_opus(pt, payloads)
            if codec is None:
                continue
            name, rate = codec
            if name in ("PCMU", "PCMA"):
                pcm = audio.decode_g711(payloads, name)
            elif name.lower() in ("opus", "opus?"):
                rate = 48000
                pcm = audio.decode_opus(payloads, rate)
            else:
                continue
            p = out / f"flow{st.flow_id}_ssrc{st.ssrc:08x}_{name.lower().rstrip('?')}.wav"
            audio.write_wav(p, pcm, rate)
            written.append(p)
            dbfs[k] = audio.rms_dbfs(pcm)
        if dbfs:
            keys = list(self.states)
            self.streams["audio_dbfs"] = [dbfs.get(k, math.nan) for k in keys]
        return written


def _rtp_payload(pkt: bytes) -> bytes:
    from ..dissect.rtp import decode_rtp

    try:
        return bytes(decode_rtp(pkt).payload)
    except DecodeError:
        return b""


def _probe_opus(pt: int, payloads: list[bytes]) -> tuple[str, int] | None:
    """A dynamic PT with no rtpmap in sight (signalling encrypted): call it Opus when libopus decodes its first
    payloads without a single error. Reported as "opus?" so a reader knows it was inferred."""
    if pt < 96 or len(payloads) < 10:
        return None
    import av

    codec = av.CodecContext.create("opus", "r")
    try:
        for p in payloads[:50]:
            if p:
                codec.decode(av.Packet(p))
    except (av.error.InvalidDataError, ValueError):
        return None
    return ("opus?", 48000)


# E2EE test. Ciphertext (the AES-GCM/CTR or ChaCha20 output of an SFrame / encoded-transform E2EE layer) is
# indistinguishable from uniform bytes; a codec bitstream is not: even range- or bool-coded (Opus, VP8) it
# keeps a bias, strongest in quiet frames, and a chi-square goodness-of-fit test over enough bytes shows it.
# The first and last bytes of every payload are left out, since E2EE schemes keep a few bytes in clear there
# (SFrame header: config byte, KID, counter; codec headers a depacketizer must read, e.g. VP8's 3/10 bytes;
# RED block headers; IV/trailer bytes).
_E2EE_TRIM = 16
# up to this many packets of the stream (~40 s of audio): loud speech alone can look near-uniform in the
# middle bytes for a few seconds (measured below), the quieter frames around it do not
E2EE_PACKETS = 2000
# chi-square, 255 degrees of freedom, upper 0.1 % point (Wilson-Hilferty: 330.5): uniform bytes exceed it once
# in a thousand streams
_CHI2_255_P001 = 330.5
# bytes needed before "uniform" is believed: audio codecs sit >= 0.04 bit/byte below 8 bits over a call
# (chi-square excess >= 0.055 per byte, ~230 at 4 KiB); video bitstreams come closer (Chromium VP8-in-RED:
# 0.0037 bit/byte), so they need more
_E2EE_MIN_BYTES_AUDIO = 4096
_E2EE_MIN_BYTES_OTHER = 16384
_NOT_MEDIA = ("rtx", "ulpfec", "flexfec", "flexfec-03", "cn", "telephone-event")


def _chi2_uniform(chunks: Iterable[bytes]) -> tuple[float, int]:
    """Chi-square statistic of the byte histogram against uniform (255 d.o.f.), and the byte count."""
    import numpy as np

    data = b"".join(chunks)
    if not data:
        return math.nan, 0
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).astype(float)
    e = len(data) / 256
    return float(((counts - e) ** 2).sum() / e), len(data)


def _e2ee_suspected(
    codec: tuple[str, int] | None, pt: int | None, sample: list[bytes], ent: float
) -> bool | None:
    """Decrypted payloads that still look encrypted (insertable streams / encoded transform / SFrame).

    True when the payload bytes, the first and last ``_E2EE_TRIM`` of each left out, pass a chi-square test
    of uniformity (``sample``: up to ``E2EE_PACKETS`` payloads of the stream's main payload type), or, for
    Opus, when libopus rejects one of the first 50 payloads (no real Opus stream measured had one: eight).

    Measured (chi-square of the trimmed bytes; < 330.5 passes): Firefox 153 / Chromium 156 frames sealed with
    AES-GCM by an RTCRtpScriptTransform (browsers_e2ee, three generated calls): Opus 217-272, VP8-in-RED
    233-287; the same call without E2EE (browsers_firefox_chromium): Opus 1531-3763, VP8-in-RED 819-33343;
    aiortc VP8 1334, ffmpeg PCMU 142112, an older Chrome's Opus speech (third-party ogolosovskiy
    webrtc_opus_p2p): 238 over its first 200 packets (all speech) but 590 over all 501. Whole-payload entropy
    does not separate them (plain Chromium Opus 7.95, VP8-in-RED 7.99 bits/byte), nor does libopus alone: it
    decodes SFrame-wrapped Opus without an error once the header's first byte reads as a TOC with frame-count
    code 0 (from the 9th packet on here), and even decodes VP8-in-RED. Short streams of plain Opus can pass the
    uniformity test too (Janus forwarding Chromium's audio, a few KiB): an Opus stream whose decoded audio has
    pauses (``_quiet_fraction``) is not called encrypted. None: not enough bytes to tell, or no media of its
    own (RTX, FEC, comfort noise, DTMF)."""
    if len(sample) < 10 or math.isnan(ent):
        return None
    name = codec[0].lower() if codec else None
    if name in _NOT_MEDIA:
        return None
    if name in ("opus", "opus?") and _probe_opus(pt if pt is not None and pt >= 96 else 96, sample) is None:
        return True
    audio = codec is not None and codec[1] != 90000
    chi2, n = _chi2_uniform(p[_E2EE_TRIM:-_E2EE_TRIM] for p in sample if len(p) > 2 * _E2EE_TRIM)
    if n < (_E2EE_MIN_BYTES_AUDIO if audio else _E2EE_MIN_BYTES_OTHER):
        return None
    if chi2 >= _CHI2_255_P001:
        return False
    # near-uniform bytes, but Opus that decodes to real pauses is a codec bitstream after all
    return not (name in ("opus", "opus?") and _quiet_fraction(sample) >= _E2EE_QUIET_FRACTION)


# Ciphertext that libopus accepts decodes to loud noise in every frame: random coarse energies almost never
# give a frame below -60 dBFS. Real audio has pauses. Measured (20 ms frames below -60 dBFS): the sealed
# Opus of browsers_e2ee 0 %; Chromium Opus that Janus forwarded to Firefox (sfu_conference SSRCs 248419120,
# 2547012624: chi-square 260 and 265, i.e. "uniform", over only 9305 and 4415 bytes) 64 % and 74 %.
_E2EE_QUIET_DBFS = -60.0
_E2EE_QUIET_FRACTION = 0.2


def _quiet_fraction(payloads: list[bytes]) -> float:
    """Fraction of 20 ms frames of the decoded Opus quieter than ``_E2EE_QUIET_DBFS`` (0.0 when nothing decodes)."""
    import numpy as np

    from .audio import decode_opus

    pcm = decode_opus(payloads, 48000).astype(np.float64)
    frames = pcm[: len(pcm) // 960 * 960].reshape(-1, 960)
    if not len(frames):
        return 0.0
    rms = np.sqrt((frames**2).mean(axis=1))
    return float((rms < 32768.0 * 10 ** (_E2EE_QUIET_DBFS / 20)).mean())


def _entropy(chunks: Iterable[bytes]) -> float:
    c: Counter[int] = Counter()
    n = 0
    for b in chunks:
        c.update(b)
        n += len(b)
    if n < 256:
        return math.nan
    return -sum(v / n * math.log2(v / n) for v in c.values())


def _dtls_keys(cap: Capture, lookup: KeyLookup, anomalies: list[dict[str, Any]]) -> None:
    from ..tables.dtls import capture_keylog, tracker

    keylog = capture_keylog(cap)
    if keylog is None or not len(keylog):
        return
    frame = cap.dtls
    for hs in tracker(cap).handshakes:
        ch, sh = hs.client_hello, hs.server_hello
        if ch is None or hs.client is None or hs.server is None:
            continue
        rows = frame[(frame.flow_id == hs.flow_id) & (frame.client_random == ch.random.hex())]
        prof_name = rows.srtp_profile.iloc[0] if len(rows) else None
        if (
            prof_name is None
            or prof_name is pd.NA
            or (isinstance(prof_name, float) and math.isnan(prof_name))
        ):
            continue
        try:
            prof = profile(str(prof_name))
        except DecodeError as e:
            anomalies.append(
                {"frame": hs.frames[0] if hs.frames else None, "name": e.name, "detail": e.detail}
            )
            continue
        version = hs.version
        src = f"dtls-srtp:frame {hs.frames[0] if hs.frames else '?'}"
        pair: tuple[MasterKey, MasterKey] | None = None
        if version == 0xFEFC:  # DTLS 1.3
            secret = keylog.get(ch.random, "EXPORTER_SECRET")
            if secret is not None:
                hash_name = "sha384" if len(secret) == 48 else "sha256"
                pair = dtls13_srtp_keys(secret, prof, hash_name)
        else:
            master = keylog.get(ch.random, "CLIENT_RANDOM")
            if master is not None and sh is not None:
                prf_hash = "sha384" if "SHA384" in str(rows.cipher_suite.iloc[0]) else "sha256"
                pair = dtls12_srtp_keys(
                    master,
                    ch.random,
                    sh.random,
                    prof,
                    "DTLS 1.0" if version == 0xFEFF else "DTLS 1.2",
                    prf_hash,
                )
        if pair is None:
            continue
        client_key, server_key = pair
        lookup.add_sender(hs.flow_id, _norm(hs.client), client_key, src)
        lookup.add_sender(hs.flow_id, _norm(hs.server), server_key, src)
        lookup.add_any(client_key, src)
        lookup.add_any(server_key, src)


def _norm(ep: str) -> str:
    return endpoint(*split_endpoint(ep)) or ep


def _sdes_keys(cap: Capture, lookup: KeyLookup, anomalies: list[dict[str, Any]]) -> None:
    sdp = cap.sdp
    for _, row in sdp.iterrows():
        suites = list(row.crypto_suites) if isinstance(row.crypto_suites, list) else []
        secrets = list(row.crypto_keys_secret) if isinstance(row.crypto_keys_secret, list) else []
        where = f"sdes:frame {row.frame}" if not pd.isna(row.frame) else "sdes:side file"
        for suite, secret in zip(suites, secrets):
            try:
                lookup.add_any(parse_inline(suite, secret), where)
            except DecodeError as e:
                anomalies.append(
                    {
                        "frame": None if pd.isna(row.frame) else int(row.frame),
                        "name": e.name,
                        "detail": e.detail,
                    }
                )


def _codecs(cap: Capture) -> dict[int, tuple[str, int]]:
    out: dict[int, tuple[str, int]] = {}
    for codecs in cap.sdp.codecs:
        for c in codecs if isinstance(codecs, list) else []:
            try:
                pt, rest = str(c).split(" ", 1)
                enc, clock = (rest.split("/") + ["0"])[:2]
                out.setdefault(int(pt), (enc, int(clock)))
            except ValueError:
                continue
    return out


def _user_keys(keys: Iterable[str] | Mapping[int | str, str] | None) -> list[str]:
    """User key specs as ``[SSRC=]SUITE inline:BASE64`` strings; a mapping ``{ssrc: spec}`` names the SSRC of
    each (an int, or a decimal / 0x-hex string)."""
    if keys is None:
        return []
    if isinstance(keys, str):
        return [keys]
    if isinstance(keys, Mapping):
        return [f"{ssrc if isinstance(ssrc, str) else int(ssrc)}={spec}" for ssrc, spec in keys.items()]
    return list(keys)


def decrypt(
    cap: Capture,
    keylog: str | os.PathLike[str] | None = None,
    keys: Iterable[str] | Mapping[int | str, str] | None = None,
) -> DecryptResult:
    """Authenticate and decrypt every SRTP/SRTCP stream of ``cap`` with every key it can find.

    ``keylog`` overrides the capture's keylog for DTLS-SRTP; ``keys`` are user keys in the a=crypto form
    ``[SSRC=]AES_CM_128_HMAC_SHA1_80 inline:BASE64``, or a mapping ``{ssrc: "SUITE inline:BASE64"}``."""
    anomalies: list[dict[str, Any]] = []
    lookup = KeyLookup()
    for spec in _user_keys(keys):
        try:
            ssrc, mk = parse_key_spec(spec)
        except DecodeError as e:
            raise InputError("--key", f"{e.detail}") from None
        if ssrc is None:
            lookup.add_any(mk, "user")
        else:
            lookup.add_ssrc(ssrc, mk, "user")
    if keylog is not None:
        from ..capture import Capture as _C

        cap = _C(
            cap.path,
            keylog=keylog,
            signalling=cap.signalling_files,
            progress=False,
            strict=cap.strict,
            **cap.limits,
        )
    _dtls_keys(cap, lookup, anomalies)
    _sdes_keys(cap, lookup, anomalies)
    packets, _log = collect_media(cap.path, **cap.limits)
    states = decrypt_streams(packets, lookup)
    codecs = _codecs(cap)
    rows = []
    for st in states.values():
        pts = sorted(st.payload_types)
        main_pt = Counter(r[3] for r in st.plain).most_common(1)[0][0] if st.plain else None
        codec = (codecs.get(main_pt) or STATIC_PT.get(main_pt)) if main_pt is not None else None
        sample = [_rtp_payload(r[6]) for r in st.plain[:200] if r[3] == main_pt]
        if codec is None and main_pt is not None:
            codec = _probe_opus(main_pt, sample)
        ent = _entropy(sample)
        e2ee_sample = (
            sample
            if len(st.plain) <= 200
            else [_rtp_payload(r[6]) for r in st.plain[:E2EE_PACKETS] if r[3] == main_pt]
        )
        rows.append(
            {
                "flow_id": st.flow_id,
                "sender": st.sender,
                "receiver": st.receiver,
                "ssrc": st.ssrc,
                "status": st.status,
                "key_source": st.key_source,
                "profile": st.key.profile.dtls_name if st.key else None,
                "rtp_packets": st.rtp_packets,
                "rtcp_packets": st.rtcp_packets,
                "authenticated": st.authenticated,
                "auth_failed": st.auth_failed,
                "replayed": st.replayed,
                "failed_frames": list(st.failed_frames),
                "first_frames": [r[0] for r in st.plain[:5]],
                "payload_types": pts,
                "codec": codec[0] if codec else None,
                "payload_entropy": ent,
                "e2ee_suspected": _e2ee_suspected(codec, main_pt, e2ee_sample, ent),
                "audio_dbfs": math.nan,
            }
        )
    return DecryptResult(str(cap.path), SRTP_STREAMS.from_records(rows), states, codecs, anomalies)
