"""Request/response matching of the `stun` frame (rtt_ms, response_frame, request_frame) under a flood: 10^5
one-packet flows each carrying a copy of the real call's Binding request (fuzz/hostile.py ``many_udp_flows``,
behind the call of stun_no_integrity) change nothing in the call's matched transactions, and no flood copy
is credited with the call's response, which came before it. Four copies leave from the SIP ports 5060/5061:
STUN by content wins over the port (SIP user agents send STUN keepalives on their SIP flow, RFC 5626)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from samples import sample_path

import rtcforensics
from fuzz import hostile

MATCHED = ["rtt_ms", "response_frame", "request_frame"]


@pytest.mark.slow
def test_a_flood_of_copies_changes_no_match(tmp_path: Path) -> None:
    call = rtcforensics.load(sample_path("stun_no_integrity"), progress=False).stun
    cap = rtcforensics.load(hostile.many_udp_flows(tmp_path, 1).path, progress=False)
    flood = cap.stun
    n = len(call)
    assert n == 6 and len(flood) == n + 100_000
    # the call's rows first, then the copies; the copies share the call's transaction id and method
    # (the flood file is a microsecond pcap, the call a nanosecond pcapng: times agree to the microsecond)
    pd.testing.assert_frame_equal(
        flood.iloc[:n][["frame", *MATCHED]], call[["frame", *MATCHED]], check_exact=False, atol=0.002, rtol=0
    )
    assert call["response_frame"].notna().sum() == 3 and call["rtt_ms"].notna().sum() == 6
    copies = flood.iloc[n:]
    assert (copies["cls"] == "request").all() and copies["txid"].nunique() == 1
    assert copies["txid"].iloc[0] in set(call["txid"])
    assert copies[MATCHED].isna().all().all()
    assert np.isfinite(flood["rtt_ms"]).sum() == 6
    # the copies from the SIP ports are STUN messages in the packets and the stun frame, not SIP
    pk = cap.packets
    on_sip = pk["sport"].isin([5060, 5061])
    assert on_sip.sum() == 4 and (pk.loc[on_sip, "cls"] == "stun").all()
    assert sorted(flood.loc[flood["sport"].isin([5060, 5061]), "frame"]) == sorted(pk.loc[on_sip, "frame"])
