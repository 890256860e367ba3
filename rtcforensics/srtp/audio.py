"""Decoded audio out of decrypted RTP: G.711 (PCMU/PCMA) in our own code, Opus through PyAV's libopus."""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def _ulaw_table() -> np.ndarray:
    # ITU-T G.711 μ-law expansion: complement, sign, 3-bit exponent, 4-bit mantissa, bias 0x84.
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    sign = u & 0x80
    exp = (u >> 4) & 0x07
    mant = u & 0x0F
    mag = (((mant << 3) + 0x84) << exp) - 0x84
    return np.where(sign != 0, -mag, mag).astype(np.int16)


def _alaw_table() -> np.ndarray:
    # ITU-T G.711 A-law expansion: even bits inverted (xor 0x55), segment and mantissa.
    a = np.arange(256, dtype=np.int32) ^ 0x55
    sign = a & 0x80
    seg = (a >> 4) & 0x07
    mant = a & 0x0F
    mag = np.where(seg == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << np.maximum(seg - 1, 0))
    return np.where(sign != 0, mag, -mag).astype(np.int16)


ULAW = _ulaw_table()
ALAW = _alaw_table()


def decode_g711(payloads: Iterable[bytes], law: str) -> np.ndarray:
    table = ULAW if law == "PCMU" else ALAW
    data = b"".join(payloads)
    return table[np.frombuffer(data, dtype=np.uint8)] if data else np.zeros(0, dtype=np.int16)


def decode_opus(payloads: Iterable[bytes], rate: int = 48000) -> np.ndarray:
    """Decode Opus frames (one per RTP payload) to mono 16-bit PCM at ``rate``."""
    import av  # PyAV, installed with the `srtp` extra

    codec = av.CodecContext.create("opus", "r")
    codec.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks: list[np.ndarray] = []
    for payload in payloads:
        if not payload:
            continue
        try:
            frames = codec.decode(av.Packet(payload))
        except av.error.InvalidDataError:
            continue  # a corrupt frame is skipped, the rest of the stream still plays
        for fr in frames:
            for out in resampler.resample(fr):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.int16))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def rms_dbfs(samples: np.ndarray) -> float:
    """Loudness of decoded audio in dBFS (-inf for digital silence): 'not silence' is a number, not a feeling."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return float("-inf") if rms == 0 else 20 * np.log10(rms / 32768.0)
