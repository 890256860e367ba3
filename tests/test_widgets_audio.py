"""Playback in the RTP views (rtcforensics/widgets/streams.py): the audio of a plain RTP stream of a real
capture, decoded without a kernel, against what the lab's own receiver (ffmpeg) decoded from the same stream."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics import widgets
from rtcforensics.srtp import audio
from rtcforensics.widgets import streams


def test_plain_g711_stream_plays_as_the_receiver_decoded_it() -> None:
    """sdes_plain_rtp's second stream is plain PCMA: the player's WAV is 8 kHz mono with the sample count and
    the mean volume that ffmpeg, receiving the call, decoded (truth ``receiver.rtp_decoded``)."""
    truth = load_truth("sdes_plain_rtp")
    plain = next(s for s in truth["rtp"] if not s["encrypted"])
    cap = rtcforensics.load(sample_path("sdes_plain_rtp"), progress=False)
    rtp = widgets.frame(cap, "rtp_streams")
    flow_id = int(rtp.loc[rtp["ssrc"] == plain["ssrc"], "flow_id"].iloc[0])
    wav, how = streams.stream_audio(cap, flow_id, plain["ssrc"])
    assert wav is not None, how
    assert how == "plain RTP (PCMA)"
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert int(plain["codec"].split("/")[1]) == w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    decoded = truth["receiver"]["rtp_decoded"]
    assert len(samples) == decoded["samples"]  # 5.0 s
    assert abs(audio.rms_dbfs(samples) - decoded["mean_volume_db"]) < 0.5
    # the SDES-keyed stream plays too: decrypted with the key its offer carried in clear
    pytest.importorskip("pylibsrtp")
    sdes = next(s for s in truth["rtp"] if s["encrypted"])
    sdes_flow = int(rtp.loc[rtp["ssrc"] == sdes["ssrc"], "flow_id"].iloc[0])
    wav, how = streams.stream_audio(cap, sdes_flow, sdes["ssrc"])
    assert wav is not None and how == "decrypted SRTP", how
    with wave.open(io.BytesIO(wav)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert w.getframerate() == 8000
    decoded = truth["receiver"]["srtp_decoded"]
    assert len(samples) == decoded["samples"]
    assert abs(audio.rms_dbfs(samples) - decoded["mean_volume_db"]) < 0.5
