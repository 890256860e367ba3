"""ICE004 past ``max_flow_findings`` flows: one finding per sending host and server with the flow count and a
bounded sample (issue 19 row ``many_udp_flows``; fuzz/hostile.py builds the full 10^5-flow row). Here the real
unprotected ICE check of sample_captures/stun_no_integrity is replayed from 120 source ports of its sender, as
the hostile generator does, and read back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import rtcforensics  # noqa: E402
from fuzz import hostile  # noqa: E402
from rtcforensics.checks.analyze import analyze  # noqa: E402

FLOWS = 120


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flood")
    cap = hostile.Pcap.of_sample("stun_no_integrity", out)
    req = cap.pkts[hostile._stun_requests(cap)[0]]
    path = out / "flood.pcap"
    with path.open("wb") as fh:
        fh.write(cap.header)
        for p in cap.pkts:
            fh.write(cap.record(p))
        for k in range(FLOWS):
            q = req.rebuilt(sport=20000 + k)
            fh.write(cap.record(hostile.Pkt((req.ts[0] + 5, k), q.data)))
    return path


def test_flood_of_flows_is_one_finding_per_host(flood: Path) -> None:
    cap = rtcforensics.load(flood, progress=False)
    found = analyze(cap, only=["ICE004"]).findings
    assert len(found) == 1  # the call's own flow (2 checks) and the 120 replays share sender and server
    f = found[0]
    assert f.endpoints == ["192.0.2.10", "192.0.2.20:55736"]
    assert (f.evidence["flows"], f.evidence["requests"]) == (FLOWS + 1, FLOWS + 2)
    assert len(f.evidence["sample_flows"]) == 20 and f.evidence["sample_flows"][0]["frames"] == [26, 32]
    # the sample in order of appearance, each flow named by its own sender's port: the call's, then replays
    clients = [s["client"] for s in f.evidence["sample_flows"]]
    assert clients == ["192.0.2.10:44540"] + [f"192.0.2.10:{20000 + k}" for k in range(19)]
    assert f.flow_id is None and len(f.frames) == 20


def test_below_the_limit_one_finding_per_flow(flood: Path) -> None:
    cap = rtcforensics.load(flood, progress=False)
    found = analyze(cap, only=["ICE004"], params={"ICE004.max_flow_findings": 1000}).findings
    assert len(found) == FLOWS + 1
    assert {f.evidence["requests"] for f in found} == {1, 2}


@pytest.fixture(scope="module")
def flood_and_stray(tmp_path_factory: pytest.TempPathFactory, flood: Path) -> Path:
    """The flood, then the same real request once from another host of the test network (192.0.2.11)."""
    out = tmp_path_factory.mktemp("stray")
    cap = hostile.Pcap.of_sample("stun_no_integrity", out)
    req = cap.pkts[hostile._stun_requests(cap)[0]]
    src = bytearray(req.addrs()[0])
    src[-1] += 1
    path = out / "flood_and_stray.pcap"
    stray = req.rebuilt(sport=40000, src=bytes(src))
    path.write_bytes(flood.read_bytes() + cap.record(hostile.Pkt((req.ts[0] + 6, 0), stray.data)))
    return path


def test_a_lone_flow_past_the_limit_is_its_own_finding(flood_and_stray: Path) -> None:
    cap = rtcforensics.load(flood_and_stray, progress=False)
    found = sorted(analyze(cap, only=["ICE004"]).findings, key=lambda f: f.flow_id or 0)
    assert len(found) == 2  # the flood's sender and server as one finding; the other host's one flow
    hosts, lone = found
    assert (hosts.evidence["flows"], hosts.evidence["requests"]) == (FLOWS + 1, FLOWS + 2)
    assert lone.endpoints == ["192.0.2.11:40000", "192.0.2.20:55736"]
    assert lone.flow_id is not None and lone.evidence["requests"] == 1
    assert lone.frames == [len(cap.packets)]  # the last frame of the file
    assert cap.flows.set_index("flow_id").loc[lone.flow_id, "a"] == "192.0.2.11:40000"
