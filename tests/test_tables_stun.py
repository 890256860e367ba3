"""The `stun` frame (rtcforensics.tables.stun) on real captures, checked against tshark."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from stun_realcaps import STUN_CAPTURES, stun_datagrams, tshark_counts

from rtcforensics.anomalies import AnomalyLog
from rtcforensics.dissect.stun import METHOD_NAMES
from rtcforensics.tables import stun as stun_table
from rtcforensics.tables.stun import STUN, build_stun

COTURN_UNIDIR = "nDPI/stun_dtls_rtp_unidir.pcapng"
GOOGLE_MEET = "nDPI/stun_google_meet.pcapng"
PCMA = "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap"
OPUS = "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap"
TURN_UDP = "veondigital_srtp_decoder/udp_call_02_03_client.pcap"
TURN_TCP = "veondigital_srtp_decoder/TCP_call_1.pcap"

HAS_FASTPATH = importlib.util.find_spec("rtcforensics.dissect.fastpath") is not None


def _frame(realcaps: Path, capture: str, anomalies: AnomalyLog | None = None) -> pd.DataFrame:
    return build_stun(stun_datagrams(realcaps / capture), anomalies)


def _counts(df: pd.DataFrame) -> Counter:
    codes = {name: code for code, name in METHOD_NAMES.items()}
    return Counter((codes.get(m) or int(m, 16), c) for m, c in zip(df.method, df.cls.astype(str)))


@pytest.mark.realcaps
@pytest.mark.parametrize("capture", STUN_CAPTURES)
def test_counts_by_method_and_class_equal_tsharks(realcaps: Path, capture: str) -> None:
    df = _frame(realcaps, capture)
    assert _counts(df) == tshark_counts(realcaps / capture)
    assert list(df.columns) == STUN.names
    assert df.frame.is_monotonic_increasing


@pytest.mark.realcaps
def test_open_relay_allocate_without_integrity(realcaps: Path) -> None:
    """Coturn 4.5.0.3 grants an Allocate that carried no USERNAME and no MESSAGE-INTEGRITY."""
    df = _frame(realcaps, COTURN_UNIDIR)
    req = df.iloc[0]
    assert (req.method, req.cls, req.requested_transport) == ("Allocate", "request", "udp")
    assert (
        pd.isna(req.username)
        and not req.has_integrity
        and req.attr_names == ["REQUESTED-TRANSPORT", "FINGERPRINT"]
    )
    resp = df[df.frame == req.response_frame].iloc[0]
    assert (resp.cls, resp.request_frame, resp.xor_relayed, resp.xor_mapped, resp.lifetime_s) == (
        "success",
        req.frame,
        "10.1.0.3:60815",
        "10.10.0.1:26378",
        600,
    )
    assert resp.software == "Coturn-4.5.0.3 'dan Eider'"
    assert resp.rtt_ms == pytest.approx(req.rtt_ms) and resp.rtt_ms > 0
    err = df[df.cls == "error"]
    assert err.error_code.tolist() == [437] and err.error_reason.tolist() == [
        "Mismatched allocation: wrong transaction ID"
    ]


@pytest.mark.realcaps
def test_private_xor_peers(realcaps: Path) -> None:
    df = _frame(realcaps, COTURN_UNIDIR)
    cp = df[(df.method == "CreatePermission") & (df.cls == "request")].iloc[0]
    assert (cp.username, cp.xor_peer, cp.xor_peer_count, cp.has_integrity, cp.realm) == (
        "username1",
        "192.168.2.105:60770,10.0.0.147:60770",
        2,
        True,
        "",
    )
    for capture, private in (
        (PCMA, {"192.168.1.130", "10.202.203.50"}),
        (OPUS, {"192.168.1.130", "10.216.229.200"}),
    ):
        peers = _frame(realcaps, capture).xor_peer.dropna()
        ips = {p.rsplit(":", 1)[0] for joined in peers for p in joined.split(",")}
        assert private <= ips, capture


@pytest.mark.realcaps
def test_channel_bind_rows(realcaps: Path) -> None:
    df = _frame(realcaps, TURN_UDP)
    cb = df[(df.method == "ChannelBind") & (df.cls == "request")]
    assert cb[["frame", "channel", "xor_peer"]].values.tolist() == [
        [1137, 0x4001, "54.145.233.59:63280"],
        [1156, 0x4000, "54.145.233.59:56899"],
        [1158, 0x4001, "54.145.233.59:63280"],
        [1181, 0x4000, "54.145.233.59:56899"],
    ]
    assert (df[df.method == "ChannelBind"].cls == "success").sum() == 4
    assert set(df.software.dropna()) >= {"Coturn-4.4.5.4 'Ardee West'"}
    assert set(df.transport.astype(str)) == {"udp", "tcp"}


def _tshark_responses(path: Path) -> dict[int, tuple[int, float]]:
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            "stun.response-to",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "stun.response-to",
            "-e",
            "stun.time",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = (line.split("\t") for line in out.splitlines())
    return {int(f): (int(r), float(t)) for f, r, t in rows if "," not in r}  # one STUN message per frame


@pytest.mark.realcaps
@pytest.mark.parametrize("capture", [GOOGLE_MEET, PCMA, TURN_UDP])
def test_rtt_matches_tsharks_transactions(realcaps: Path, capture: str) -> None:
    """tshark times a response from the first transmission of its request, we from the last one before it
    (the unambiguous one, Karn); with no retransmission both agree to the microsecond."""
    df = _frame(realcaps, capture).set_index("frame", drop=False)
    shark = _tshark_responses(realcaps / capture)
    same = 0
    for frame, (req, secs) in shark.items():
        row = df.loc[frame]
        assert df.loc[row.request_frame].txid == df.loc[req].txid == row.txid
        assert row.request_frame >= req
        if row.request_frame == req:
            assert row.rtt_ms == pytest.approx(secs * 1000, abs=1e-3)
            same += 1
    assert same > 0
    answered = df[df.request_frame.notna()]
    assert (df.loc[answered.request_frame.astype(int), "response_frame"].notna()).all()


@pytest.mark.realcaps
def test_frame_built_in_blocks_is_the_whole_captures(realcaps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows become typed columns a block of messages at a time; transactions are matched over the whole
    capture, so a response in another block than its request is still timed from it."""
    whole = _frame(realcaps, PCMA)
    monkeypatch.setattr(stun_table, "_BLOCK", 7)
    blocks = _frame(realcaps, PCMA)
    pd.testing.assert_frame_equal(blocks, whole)
    row_of = {f: i for i, f in enumerate(blocks.frame)}
    answered = blocks[blocks.request_frame.notna()]
    crossing = [
        i for i, req in zip(answered.index, answered.request_frame) if i // 7 != row_of[int(req)] // 7
    ]
    assert crossing and blocks.loc[crossing, "rtt_ms"].notna().all()


@pytest.mark.realcaps
def test_google_meet_ice_columns(realcaps: Path) -> None:
    df = _frame(realcaps, GOOGLE_MEET)
    req = df[(df.method == "Binding") & (df.cls == "request")]
    assert (~req.has_integrity).sum() == 12
    checks = req[req.has_integrity]
    assert set(checks.ice_role.astype(str)) == {"controlling"}
    assert set(checks.tiebreaker.astype("uint64")) == {0x48E5659350CD8CB5, 0x6ADAFE75C4DA4F6D}
    assert checks.priority.value_counts().to_dict() == {1845501695: 19, 1853824767: 10, 1853827327: 3}
    assert checks.use_candidate.sum() > 0 and checks.fingerprint_ok.all()
    assert checks.attr_names.iloc[0][:3] == ["USERNAME", "GOOG-NETWORK-INFO", "ICE-CONTROLLING"]
    assert str(df.ts.dtype) == "datetime64[ns, UTC]"


@pytest.mark.realcaps
def test_whatsapp_and_zoom_load_with_anomalies_not_errors(realcaps: Path) -> None:
    log = AnomalyLog()
    wa = _frame(realcaps, "nDPI/wa_voice.pcap", log)
    assert len(wa) == 66  # every message kept
    assert Counter(r["name"] for r in log.rows) == {"stun_length": 24}
    assert set(wa.unknown_attrs.explode().dropna()) == {"0x4000", "0x4002"} and wa.unknown_required.any()
    zoom = _frame(realcaps, "nDPI/stun_zoom.pcapng")
    assert len(zoom) == 24 and zoom.fingerprint_ok.all()


@pytest.mark.realcaps
def test_malformed_message_becomes_anomaly_row(realcaps: Path) -> None:
    dgs = list(stun_datagrams(realcaps / COTURN_UNIDIR))
    first = dgs[0]
    truncated = dataclasses.replace(dgs[1], data=dgs[1].data[:-1])  # Allocate success, cut short
    bad_attr = bytearray(dgs[3].data)  # 437 error: mutate ERROR-CODE's class to 7
    bad_attr[20 + 6] = 0x07
    log = AnomalyLog()
    df = build_stun([first, truncated, dataclasses.replace(dgs[3], data=bytes(bad_attr))], log)
    assert df.frame.tolist() == [1, 4]  # the truncated message has no row, the bad attribute keeps its row
    assert [(r["name"], r["frame"], r["layer"]) for r in log.rows] == [
        ("stun_truncated", 2, "stun"),
        ("stun_error_code", 4, "stun"),
    ]
    assert pd.isna(df.iloc[1].error_code) and df.iloc[1].software == "Coturn-4.5.0.3 'dan Eider'"


@pytest.mark.realcaps
def test_rest_expiry_from_turn_rest_username(realcaps: Path) -> None:
    """TURN REST usernames '<expiry>:<user>' (no realcap has one: a real Allocate with its 16-byte
    USERNAME replaced by a REST one of the same length)."""
    dg = next(d for d in stun_datagrams(realcaps / PCMA) if d.frame == 411)
    assert b"57AC9F2950D2B2DD" in dg.data
    rest = dataclasses.replace(dg, data=dg.data.replace(b"57AC9F2950D2B2DD", b"1700000000:alice"))
    binding = next(d for d in stun_datagrams(realcaps / PCMA) if d.frame == 406)  # ICE ufrag:ufrag
    df = build_stun([rest, binding])
    assert df.rest_expiry.iloc[0] == pd.Timestamp("2023-11-14T22:13:20Z")
    assert df.username.iloc[0] == "1700000000:alice" and pd.isna(df.rest_expiry.iloc[1])


def test_empty_frame_has_schema() -> None:
    df = build_stun([])
    assert list(df.columns) == STUN.names and len(df) == 0
    assert str(df.ts.dtype) == "datetime64[ns, UTC]" and str(df.rest_expiry.dtype) == "datetime64[ns, UTC]"


# -- through rtcforensics.load, once the fast path exists ------------------------------------------------


@pytest.mark.realcaps
@pytest.mark.skipif(not HAS_FASTPATH, reason="dissect.fastpath not written yet")
@pytest.mark.parametrize("capture", STUN_CAPTURES)
def test_loaded_capture_counts_equal_tsharks(realcaps: Path, capture: str) -> None:
    import rtcforensics

    df = rtcforensics.load(realcaps / capture, progress=False).stun
    outer = df[df.via_turn.isna()]  # tshark 4.0 does not dissect STUN inside TURN
    assert _counts(outer) == tshark_counts(realcaps / capture)
    assert outer.frame.tolist() == [d.frame for d in stun_datagrams(realcaps / capture)]
    assert outer.txid.tolist() == build_stun(stun_datagrams(realcaps / capture)).txid.tolist()


def _sample_stun(sample, name: str) -> pd.DataFrame:
    if not HAS_FASTPATH:
        pytest.skip("dissect.fastpath not written yet")
    import rtcforensics

    return rtcforensics.load(sample(name), progress=False).stun


def test_sample_captures_stun_truth(sample, truth) -> None:
    """Counts by method/class written by the generator from coturn/aiortc, for the messages on the wire
    (ICE checks relayed inside ChannelData/Send/Data are further rows with via_turn set)."""
    from samples import sample_names

    checked = 0
    for name in sample_names():
        facts = truth(name).get("stun")
        if facts is None:
            continue
        df = _sample_stun(sample, name)
        outer = df[df.via_turn.isna()]
        got = Counter(f"{m}/{c}" for m, c in zip(outer.method, outer.cls.astype(str)))
        assert dict(got) == facts, name
        checked += 1
    if not checked:
        pytest.skip("no sample capture has STUN truth yet")


def test_sample_turn_rest_credentials_and_internal_peers(sample, truth) -> None:
    facts = truth("turn_internal_peer_allowed")
    df = _sample_stun(sample, "turn_internal_peer_allowed")
    user = facts["turn"]["username"]
    expiry = int(user.split(":")[0])
    rest = df[df.username == user]
    assert len(rest) > 0 and set(rest.method) >= {"Allocate", "CreatePermission"}
    assert set(rest.rest_expiry) == {pd.Timestamp(expiry, unit="s", tz="UTC")}
    cp = df[(df.method == "CreatePermission") & (df.cls == "request")]
    assert cp.xor_peer.tolist() == [p["peer"] for p in facts["turn"]["peers"]]
    answered = df.set_index("frame").loc[cp.response_frame.astype(int)]
    assert answered.cls.astype(str).tolist() == ["success"] * len(cp)
    relayed = df[(df.method == "Allocate") & (df.cls == "success")].xor_relayed.tolist()
    assert relayed == ["{}:{}".format(*facts["turn"]["relayed_address"])]


def test_sample_open_relay_and_secrets_absent(sample, truth) -> None:
    df = _sample_stun(sample, "turn_open_relay")
    alloc = df[df.method == "Allocate"]
    assert alloc.cls.astype(str).tolist() == ["request", "success"]
    assert not alloc.has_integrity.any() and alloc.username.isna().all() and not alloc.nonce_present.any()
    for name in ("turn_relay_longterm", "turn_internal_peer_allowed"):
        frame = _sample_stun(sample, name)
        text = frame.astype(str).to_csv()
        assert "rtcf-user" in text or "rtcf-rest-user" in text  # usernames are not secret
        for secret in truth(name)["secrets"].values():
            assert secret not in text, name


def test_sample_ice_checks_through_turn_matched_per_leg(sample) -> None:
    """aiortc ICE checks relayed by coturn in ChannelData appear twice (client->relay, relay->peer), with
    one transaction id: each response is timed against the request on its own leg (flow), and the
    client's leg takes longer than the relay-to-peer leg it contains."""
    df = _sample_stun(sample, "turn_relay_longterm")
    relayed = df[df.via_turn.astype(str) == "channel"]
    assert set(relayed.method) == {"Binding"} and set(relayed.turn_channel) == {0x4000}
    by_frame = df.set_index("frame")
    responses = relayed[relayed.cls.astype(str) == "success"]
    assert len(responses) == 4
    for r in responses.itertuples():
        req = by_frame.loc[r.request_frame]
        assert (req.txid, req.flow_id, req.response_frame) == (r.txid, r.flow_id, r.frame)
    for _, legs in relayed[relayed.cls.astype(str) == "request"].groupby("txid"):
        first, second = legs.sort_values("frame").rtt_ms.tolist()
        assert first > second > 0
