"""rtcforensics.values: the NA-aware helpers every layer reads frames through, on frames of real captures."""

from __future__ import annotations

import pandas as pd
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics.values import endpoints, ep, frames_of, host, isna, listish, plain, records, val


def test_endpoints_round_trip_on_a_real_call():
    t = load_truth("clean_call")
    cap = rtcforensics.load(sample_path("clean_call"))
    hs = t["dtls"][0]
    d = cap.dtls.iloc[0]
    assert ep(host(d["client"]), int(d["client"].rsplit(":", 1)[1])) == hs["client"]
    assert host(hs["server"]) == hs["server"].rsplit(":", 1)[0]
    st = next(iter(records(cap.stun)))
    assert ep(st["src"], st["sport"]) == f"{st['src']}:{st['sport']}"
    assert endpoints(hs["client"], None, hs["client"], hs["server"]) == [hs["client"], hs["server"]]


def test_ipv6_and_bare_addresses():
    assert ep("2001:db8::1", 5000) == "[2001:db8::1]:5000" == ep("[2001:db8::1]", 5000)
    assert ep("2001:db8::1") == "2001:db8::1" and ep(pd.NA, 5) is None and ep("", 5) is None
    assert host("[2001:db8::1]:5000") == "2001:db8::1" == host("2001:db8::1")
    assert host("10.0.0.5") == "10.0.0.5" and host(pd.NA) is None


def test_na_aware_cells_of_a_real_frame():
    cap = rtcforensics.load(sample_path("clean_call"))
    row = next(iter(records(cap.dtls)))
    assert val(row, "no_such_column", "d") == "d"
    frames = frames_of(row["frames"])
    assert frames and frames == sorted(set(frames)) and all(isinstance(f, int) for f in frames)
    assert listish(pd.NA) == [] and listish("a, b") == ["a", "b"] and listish([1, None, pd.NA]) == [1]
    assert isna(pd.NA) and isna(float("nan")) and not isna([]) and not isna("")
    assert plain({"a": pd.NA, "b": [pd.Timestamp(0, tz="UTC")], "c": b"\x01"}) == {
        "a": None,
        "b": ["1970-01-01T00:00:00+00:00"],
        "c": "01",
    }
