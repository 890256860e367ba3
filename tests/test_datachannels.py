"""The `datachannels` frame: messages read back exactly as the peers sent them (truth files)."""

from __future__ import annotations

import pytest
from samples import load_truth, sample_names

import rtcforensics
from rtcforensics.tables.datachannels import DATACHANNELS


def samples_with_messages() -> list[str]:
    names = [n for n in sample_names() if load_truth(n).get("datachannels") and load_truth(n).get("keylog")]
    return names or ["(no sample with data-channel messages and a keylog yet)"]


@pytest.mark.parametrize("name", samples_with_messages())
def test_messages_read_back_exactly(sample, truth, name):
    t = truth(name)
    path = sample(name)
    cap = rtcforensics.load(path, keylog=path.with_name(t["keylog"]), progress=False)
    df = cap.datachannels
    assert list(df.columns) == DATACHANNELS.names
    text = df[df.kind == "text"]
    # each sender's messages, in the order they were sent, equal one side's list in the truth
    got = sorted(tuple(g.text.tolist()) for _, g in text.groupby("src", sort=False))
    want_msgs = {}
    for ch in t["datachannels"]:
        want_msgs.setdefault(ch.get("from"), []).extend(ch["messages"])
    assert got == sorted(tuple(m) for m in want_msgs.values())
    labels = {ch["label"] for ch in t["datachannels"]}
    assert set(text.label) == labels
    assert (text["size"] == text.text.str.encode("utf-8").str.len()).all()
    opens = df[df.kind == "dcep_open"]
    assert set(opens.label) == labels and opens.ordered.all()


def test_no_keylog_no_messages(sample, truth):
    cap = rtcforensics.load(sample("datachannel_only"), progress=False)
    assert len(cap.datachannels) == 0
    assert cap.dtls.decryption.tolist() == ["none"]


def test_direction_and_endpoints(sample, truth):
    t = truth("datachannel_only")
    path = sample("datachannel_only")
    cap = rtcforensics.load(path, keylog=path.with_name(t["keylog"]), progress=False)
    df = cap.datachannels
    hs = cap.dtls.iloc[0]
    c2s = df[df.direction == "client_to_server"]
    assert (c2s.src == hs.client).all() and (c2s.dst == hs.server).all()
    assert df.frame.is_monotonic_increasing and df.ts.dt.tz is not None
    assert df.flow_id.nunique() == 1 and df.flow_id.iloc[0] == hs.flow_id


def test_dtls13_datachannel_messages(sample, truth):
    """Firefox -> Chromium over DTLS 1.3: the data-channel messages decrypted with Firefox's keylog."""
    t = truth("browsers_firefox_chromium")
    if not t.get("datachannels_dtls13"):
        pytest.skip("no DTLS 1.3 data-channel truth")
    path = sample("browsers_firefox_chromium")
    cap = rtcforensics.load(path, keylog=path.with_name(t["keylog"]), progress=False)
    text = cap.datachannels[cap.datachannels.kind == "text"]
    want = [m for ch in t["datachannels_dtls13"] for m in ch["messages"]]
    assert text.text.tolist() == want
    assert set(text.label) == {ch["label"] for ch in t["datachannels_dtls13"]}
