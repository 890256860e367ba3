"""Every external tool gets paths that cannot be read as options (issue 19 item 6): a capture named ``-h.pcapng``,
opened by the library with a relative path, reaches editcap (the control-plane subset for tshark) as an absolute
path, and its signalling is read (ws_plaintext_private: an HTTP upgrade and WebSocket SDP in clear)."""

from __future__ import annotations

import shutil

from samples import sample_path

import rtcforensics
from rtcforensics.dissect import tshark


def test_a_capture_named_like_an_option_reaches_editcap_as_an_absolute_path(tmp_path, monkeypatch) -> None:
    shutil.copy(sample_path("ws_plaintext_private"), tmp_path / "-h.pcapng")
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    real = tshark.run_tool

    def spy(args, *a, **kw):
        calls.append([str(x) for x in args] + [kw.get("tool", "tshark")])
        return real(args, *a, **kw)

    monkeypatch.setattr(tshark, "run_tool", spy)
    cap = rtcforensics.load("-h.pcapng", progress=False)
    assert len(cap.signalling) and not cap.tool_failures()
    editcap = [c for c in calls if c[-1] == "editcap"]
    assert editcap, "the control-plane subset was not cut with editcap"
    for c in editcap:
        assert str(tmp_path / "-h.pcapng") in c and "-h.pcapng" not in c
