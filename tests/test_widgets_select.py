"""Selection and filtering behind the widgets (rtcforensics/widgets/select.py, labs.py, incident.py).

Pure functions, no kernel: every assertion is on frames built from the sample captures (and the facts their
truth files record), or on a real capture's frame with one known change made to it."""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics.widgets import _safe, incident, labs, select


@cache
def _cap(name: str) -> rtcforensics.Capture:
    keylog = sample_path(name).with_suffix(".keylog")
    return rtcforensics.load(sample_path(name), keylog=keylog if keylog.is_file() else None, progress=False)


def cap(name: str) -> rtcforensics.Capture:
    sample_path(name)  # skips when absent
    return _cap(name)


def need(c: rtcforensics.Capture, *frames: str) -> None:
    missing = [f for f in frames if f not in c.frame_names()]
    if missing:
        pytest.skip(f"frame(s) {missing} not built in this tree yet")


@cache
def _report(name: str):
    analyze = getattr(rtcforensics, "analyze", None)
    if analyze is None:
        pytest.skip("rtcforensics.analyze not available in this tree yet")
    return analyze(cap(name))


def _endpoint_flow(packets: pd.DataFrame, a: str, b: str) -> int:
    """flow_id of the UDP flow between two ip:port endpoints (as the truth files write them)."""
    (ai, ap), (bi, bp) = (x.rsplit(":", 1) for x in (a, b))
    m = (
        (packets.src == ai) & (packets.sport == int(ap)) & (packets.dst == bi) & (packets.dport == int(bp))
    ) | ((packets.src == bi) & (packets.sport == int(bp)) & (packets.dst == ai) & (packets.dport == int(ap)))
    ids = packets.loc[m, "flow_id"].dropna().unique()
    assert len(ids) == 1, f"expected one flow between {a} and {b}, got {list(ids)}"
    return int(ids[0])


# -- protocol, time and flow filters ------------------------------------------------------------------------
def test_protocol_filter_counts_stun_messages_of_the_truth_file() -> None:
    c = cap("ws_plaintext_private")
    need(c, "packets")
    truth = load_truth("ws_plaintext_private")
    stun = select.filter_packets(c.packets, protocols=["stun/turn"])
    assert len(stun) == sum(truth["stun"].values())
    media = select.filter_packets(c.packets, protocols=["media"])
    assert len(media) >= sum(s["packets"] for s in truth["rtp"])
    cls = select.class_column(c.packets)
    assert set(media[cls].astype(str)) <= {"rtp", "rtcp", "zrtp"}
    both = select.filter_packets(c.packets, protocols=["stun/turn", "media"])
    assert len(both) == len(stun) + len(media)


def test_time_window_before_dtls_holds_no_dtls_and_no_media() -> None:
    c = cap("ws_plaintext_private")
    need(c, "packets")
    pk = c.packets
    cls = select.class_column(pk)
    t0 = pk["ts"].min()
    first_dtls = pk.loc[pk[cls].astype(str) == "dtls", "ts"].min()
    before = (first_dtls - t0).total_seconds() - 1e-6
    win = select.filter_packets(pk, start=0.0, end=before, relative=True)
    assert len(win) > 0
    assert not set(win[cls].astype(str)) & {"dtls", "rtp", "rtcp"}
    assert win["ts"].max() < first_dtls
    after = select.filter_packets(pk, start=before, relative=True)
    assert len(win) + len(after) == len(pk)


def test_flow_filter_keeps_one_media_flow() -> None:
    c = cap("clean_call")
    need(c, "packets")
    truth = load_truth("clean_call")
    s = truth["rtp"][0]
    fid = _endpoint_flow(c.packets, s["src"], s["dst"])
    media = select.filter_packets(c.packets, protocols=["media"], flow_ids=[fid])
    cls = select.class_column(c.packets)
    # every RTP packet of the truth file travels on this one bundled flow
    assert (media[cls].astype(str) == "rtp").sum() == sum(r["packets"] for r in truth["rtp"])


def test_session_filter_keeps_the_call_and_drops_the_signalling() -> None:
    c = cap("ws_plaintext_private")
    need(c, "packets", "sessions")
    truth = load_truth("ws_plaintext_private")
    d = truth["dtls"][0]
    media_flow = _endpoint_flow(c.packets, d["client"], d["server"])
    opts = select.session_options(c.sessions)
    assert opts[0] == ("all sessions", None) and len(opts) == 1 + len(c.sessions)
    ufrags = {s["ice_ufrag"] for s in truth["sdp"]}
    label, key = opts[1]
    assert all(u in label for u in ufrags)
    flows = select.session_flow_ids(c.sessions, key)
    assert media_flow in flows
    pk, _ = select.apply_view(c.packets, None, c.sessions, session=key)
    cls = select.class_column(pk)
    assert set(pk["flow_id"].astype(int)) == flows
    assert not set(pk[cls].astype(str)) & {"http", "websocket"}
    assert select.session_flow_ids(c.sessions, None) is None


# -- timeline phases ----------------------------------------------------------------------------------------
def test_flow_phases_order_stun_then_dtls_then_media() -> None:
    c = cap("ws_plaintext_private")
    need(c, "packets")
    truth = load_truth("ws_plaintext_private")
    d = truth["dtls"][0]
    fid = _endpoint_flow(c.packets, d["client"], d["server"])
    ph = select.flow_phases(c.packets, [fid]).set_index("phase")
    assert set(ph.index) == {"stun", "dtls", "media"}
    assert ph.loc["stun", "packets"] == sum(truth["stun"].values())
    assert ph.loc["stun", "start"] <= ph.loc["dtls", "start"] <= ph.loc["media", "start"]
    assert ph.loc["media", "packets"] >= sum(s["packets"] for s in truth["rtp"])
    # the signalling flow has a signalling phase and no media
    allph = select.flow_phases(c.packets)
    sig_flows = set(allph.loc[allph.phase == "signalling", "flow_id"])
    assert sig_flows and fid not in sig_flows


def test_phase_segments_split_bursts_and_keep_every_packet() -> None:
    c = cap("turn_relay_longterm")
    need(c, "packets")
    whole = select.flow_phases(c.packets)
    segs = select.phase_segments(c.packets, gap_s=0.5)
    merged = segs.groupby(["flow_id", "phase"])["packets"].sum()
    assert merged.to_dict() == whole.set_index(["flow_id", "phase"])["packets"].to_dict()
    assert len(segs) > len(whole)  # ICE checks and consent checks are separate bursts
    for _, g in segs.groupby(["flow_id", "phase"]):
        g = g.sort_values("start")
        gaps = (g["start"].iloc[1:].to_numpy() - g["end"].iloc[:-1].to_numpy()) / pd.Timedelta(seconds=1)
        assert (gaps > 0.5).all()
    # each relayed media flow: STUN (Allocate, ICE) before DTLS before media
    fl = c.flows
    for fid in fl.loc[fl["classes"].map(lambda x: "rtp" in list(x) or "turn_channel" in list(x)), "flow_id"]:
        g = segs[segs.flow_id == fid].set_index("phase")["start"].groupby(level=0).min()
        assert g["stun"] <= g["dtls"] <= g["media"], fid


# -- RTP stream series --------------------------------------------------------------------------------------
def test_stream_series_counts_every_packet_and_byte_of_a_stream() -> None:
    c = cap("clean_call")
    need(c, "rtp", "packets")
    truth = load_truth("clean_call")
    for s in truth["rtp"]:
        fid = _endpoint_flow(c.packets, s["src"], s["dst"])
        series = select.stream_series(c.rtp, fid, s["ssrc"], bin_s=0.5)
        assert series["packets"].sum() == s["packets"]
        assert series["lost"].sum() == 0
        p = select.stream_packets(c.rtp, fid, s["ssrc"])
        assert series["kbps"].sum() * 0.5 * 1000 / 8 == pytest.approx(p[select.PAYLOAD_LEN].sum())
        assert (series["jitter_ms"].dropna() >= 0).all()


def test_stream_series_counts_removed_packets_as_lost_and_jitter_matches_engine() -> None:
    c = cap("clean_call")
    need(c, "rtp", "rtp_streams", "packets")
    s = load_truth("clean_call")["rtp"][0]
    fid = _endpoint_flow(c.packets, s["src"], s["dst"])
    rtp = c.rtp
    p = select.stream_packets(rtp, fid, s["ssrc"])
    # drop 3 packets in the middle and 1 run of 4: 7 sequence numbers missing
    drop = list(p.index[[20, 40, 60]]) + list(p.index[100:104])
    series = select.stream_series(rtp.drop(index=drop), fid, s["ssrc"])
    assert series["lost"].sum() == 7
    assert series["packets"].sum() == s["packets"] - 7
    # RFC 3550 jitter at the last packet agrees with the engine's per-stream figure
    full = select.stream_series(rtp, fid, s["ssrc"])
    st = c.rtp_streams
    row = st[(st.flow_id == fid) & (st.ssrc == s["ssrc"])].iloc[0]
    if pd.notna(row.get("jitter_ms")):
        assert full["jitter_ms"].dropna().iloc[-1] == pytest.approx(
            float(row["jitter_ms"]), rel=0.05, abs=0.05
        )


def test_stream_series_across_sequence_wraparound() -> None:
    c = cap("clean_call")
    need(c, "rtp", "packets")
    s = load_truth("clean_call")["rtp"][0]
    fid = _endpoint_flow(c.packets, s["src"], s["dst"])
    rtp = c.rtp.copy()
    m = (rtp.flow_id == fid) & (rtp.ssrc == s["ssrc"])
    first = int(rtp.loc[m, "seq"].iloc[0])
    # shift the stream's sequence numbers so that they wrap through 65535 -> 0 in the middle of the call
    rtp.loc[m, "seq"] = (rtp.loc[m, "seq"].astype("int64") - first + 65536 - s["packets"] // 2) % 65536
    assert (rtp.loc[m, "seq"] == 0).any() and (rtp.loc[m, "seq"] == 65535).any()
    series = select.stream_series(rtp, fid, s["ssrc"])
    assert series["lost"].sum() == 0
    assert series["packets"].sum() == s["packets"]


def test_stream_options_label_every_stream_of_the_truth_file() -> None:
    c = cap("clean_call")
    need(c, "rtp_streams")
    opts = select.stream_options(c.rtp_streams)
    ssrcs = {key[1] for _, key in opts}
    assert {s["ssrc"] for s in load_truth("clean_call")["rtp"]} <= ssrcs


# -- findings -----------------------------------------------------------------------------------------------
def test_findings_filtered_by_severity_on_the_private_address_capture() -> None:
    rep = _report("ws_plaintext_private")
    df = select.findings_frame(rep)
    truth_slugs = {f["slug"] for f in load_truth("ws_plaintext_private")["findings"]}
    assert truth_slugs <= set(df["slug"])
    medium = select.filter_findings(rep, min_severity="medium")
    assert (medium["severity"].map(select.severity_rank) >= 2).all()
    ranks = list(medium["severity"].map(select.severity_rank))
    assert ranks == sorted(ranks, reverse=True)
    info = select.filter_findings(rep, min_severity="info")
    assert len(info) == len(df)
    only = select.filter_findings(rep, slugs=["ice-private-ip-exposed"])
    assert set(only["slug"]) == {"ice-private-ip-exposed"}
    with pytest.raises(ValueError, match="unknown severity"):
        select.filter_findings(rep, min_severity="severe")


def test_clean_call_has_nothing_at_medium_or_above() -> None:
    rep = _report("clean_call")
    assert len(select.filter_findings(rep, min_severity="medium")) == 0


def test_finding_leads_to_its_flows_and_frames() -> None:
    rep = _report("sdes_plain_rtp")
    c = cap("sdes_plain_rtp")
    need(c, "packets")
    f = select.filter_findings(rep, slugs=["rtp-unencrypted"]).iloc[0]
    truth = next(x for x in load_truth("sdes_plain_rtp")["findings"] if x["slug"] == "rtp-unencrypted")
    fid = _endpoint_flow(c.packets, *truth["endpoints"])
    assert fid in select.finding_flow_ids(f, c.packets)
    sdes = select.filter_findings(rep, slugs=["sdes-key-exposed"]).iloc[0]
    truth_sdes = next(x for x in load_truth("sdes_plain_rtp")["findings"] if x["slug"] == "sdes-key-exposed")
    assert set(truth_sdes["frames"]) & set(select.finding_frames(sdes))
    marks = select.finding_marks(rep, c.packets)
    assert fid in set(marks.loc[marks.slug == "rtp-unencrypted", "flow_id"])


def test_apply_view_narrows_findings_to_the_flows_left() -> None:
    rep = _report("sdes_plain_rtp")
    c = cap("sdes_plain_rtp")
    need(c, "packets")
    pk, fd = select.apply_view(c.packets, rep, protocols=["signalling"])
    cls = select.class_column(c.packets)
    assert set(pk[cls].astype(str)) <= {"tls", "http", "websocket", "sip"}
    # the media finding concerns an RTP flow only, so it leaves; the signalling ones stay
    assert "rtp-unencrypted" not in set(fd["slug"])
    assert "signalling-plaintext" in set(fd["slug"])
    pk_all, fd_all = select.apply_view(c.packets, rep)
    assert len(pk_all) == len(c.packets) and len(fd_all) == len(select.findings_frame(rep))


# -- topology -----------------------------------------------------------------------------------------------
def test_topology_highlight_and_styles_on_the_sdes_capture() -> None:
    topo = pytest.importorskip("rtcforensics.topology")
    rep = _report("sdes_plain_rtp")
    c = cap("sdes_plain_rtp")
    g = topo.graph(c)
    f = select.filter_findings(rep, slugs=["rtp-unencrypted"]).iloc[0]
    edges = select.highlighted_edges(g, select.finding_flow_ids(f, c.packets))
    assert edges
    truth = next(x for x in load_truth("sdes_plain_rtp")["findings"] if x["slug"] == "rtp-unencrypted")
    ips = {e.rsplit(":", 1)[0] for e in truth["endpoints"]}
    for u, v, k in edges:
        assert {str(u), str(v)} == ips or ips <= {str(u).rsplit(":", 1)[0], str(v).rsplit(":", 1)[0]}
        assert select.encryption_of(g.edges[u, v, k]) != "encrypted"
    summary = select.topology_summary(g)
    assert summary["encryption"].get("plaintext", 0) >= 1  # the HTTP signalling at least


# -- labs: the answer keys read the tool's own findings ---------------------------------------------------------
def test_lab_private_address() -> None:
    c = cap("ws_plaintext_private")
    truth = next(
        f for f in load_truth("ws_plaintext_private")["findings"] if f["slug"] == "ice-private-ip-exposed"
    )
    assert set(truth["endpoints"]) <= labs.leaked_private_addresses(_report("ws_plaintext_private"))
    got = labs.check_answer(c, "private_address", truth["endpoints"][0])
    assert got.correct is True and "RFC 8828" in got.why
    wrong = labs.check_answer(c, "private_address", "192.0.2.10")
    assert wrong.correct is False and "public" in wrong.message and not wrong.why
    invalid = labs.check_answer(c, "private_address", "10.20.0")
    assert invalid.correct is False and "not an IP address" in invalid.message
    assert labs.leaked_private_addresses(_report("clean_call")) == set()


def test_lab_private_address_behind_nat() -> None:
    """On nat_call (two peers on private LANs behind NAT routers, tapped on the public side) the IP headers show
    only the NATs: the lab accepts each private address the truth file records and rejects a NAT's public
    address, the one the IP headers do show, with a hint that points at the candidates."""
    c = cap("nat_call")
    hosts = load_truth("nat_call")["nat"]["hosts"]
    packets = c.packets
    on_wire = set(packets["src"].astype(str)) | set(packets["dst"].astype(str))
    for h in hosts:
        assert h["private_address"] not in on_wire and h["nat_public_address"] in on_wire
        got = labs.check_answer(c, "private_address", h["private_address"])
        assert got.correct is True and "RFC 8828" in got.why
        wrong = labs.check_answer(c, "private_address", h["nat_public_address"])
        assert wrong.correct is False and not wrong.why
        assert "IP headers" in wrong.message and "Hint" in wrong.message
        assert labs.private_addresses_behind(_report("nat_call"))[h["nat_public_address"]] == {
            h["private_address"]
        }
    assert labs.leaked_private_addresses(_report("nat_call")) == {h["private_address"] for h in hosts}


def test_lab_mitm() -> None:
    c = cap("fingerprint_rewrite")
    t = load_truth("fingerprint_rewrite")
    certs = {d[k] for d in t["dtls"] for k in ("client_cert_sha256", "server_cert_sha256")}
    # the relay rewrote the answer's fingerprint on one leg: that value describes no certificate
    rewritten = {s["fingerprint"]["sha-256"] for s in t["sdp"]} - certs
    assert len(rewritten) == 1
    bad = labs.fingerprint_mismatches(_report("fingerprint_rewrite"))
    assert set(bad["sha256"]) == rewritten
    assert set(bad["kind"]) == {"fingerprint_without_certificate"}
    h = rewritten.pop()
    assert "no answer yet" in labs.check_answer(c, "mitm", None).message
    assert labs.check_answer(c, "mitm", h).correct is True
    colons = ":".join(h[i : i + 2] for i in range(0, len(h), 2)).upper()
    assert labs.check_answer(c, "mitm", colons).correct is True
    for honest_cert in certs:  # the certificates themselves are described by the first leg's SDPs
        assert labs.check_answer(c, "mitm", honest_cert).correct is False
    short = labs.check_answer(c, "mitm", h[:16])
    assert short.correct is False and "too short to decide" in short.message
    assert "not a SHA-256" in labs.check_answer(c, "mitm", "zz").message
    ft = incident.fingerprint_table(c.dtls, _report("fingerprint_rewrite"))
    assert set(ft["cert_sha256"]) == certs and ft["in_sdp"].all()
    # on the honest call nothing mismatches
    honest = cap("ws_plaintext_private")
    assert len(labs.fingerprint_mismatches(_report("ws_plaintext_private"))) == 0
    assert labs.check_answer(honest, "mitm", None).correct is True
    ft = incident.fingerprint_table(honest.dtls, _report("ws_plaintext_private"))
    assert len(ft) == 2 and ft["in_sdp"].all()


def test_lab_open_relay() -> None:
    c = cap("turn_open_relay")
    turn = load_truth("turn_open_relay")["turn"]
    assert turn["auth"] == "none"
    relayed = "{}:{}".format(*turn["relayed_address"])
    allocs = labs.open_relay_allocations(_report("turn_open_relay"))
    assert list(allocs["relayed"]) == [relayed] and list(allocs["server"]) == [turn["server"]]
    st = c.stun.set_index("frame")
    a = allocs.iloc[0]
    assert (
        st.at[a["response_frame"], "method"] == "Allocate"
        and str(st.at[a["response_frame"], "cls"]) == "success"
    )
    assert not bool(st.at[a["request_frame"], "has_integrity"])
    assert labs.check_answer(c, "open_relay", relayed).correct is True
    assert labs.check_answer(c, "open_relay", int(a["response_frame"])).correct is True
    assert labs.check_answer(c, "open_relay", turn["server"]).correct is False
    assert "not an ip:port" in labs.check_answer(c, "open_relay", "relay:49152").message
    rel = incident.relay_allocations(c.stun)
    assert list(rel["server"]) == [turn["server"]] and list(rel["client"]) == [turn["client"]]
    assert rel["peers"].iloc[0] == [p["peer"] for p in turn["peers"]]
    assert rel["authenticated"].iloc[0] is not None and not rel["authenticated"].iloc[0]
    # the long-term-credential relay challenged first: no unauthenticated allocation there
    lt = cap("turn_relay_longterm")
    lt_truth = load_truth("turn_relay_longterm")
    assert len(labs.open_relay_allocations(_report("turn_relay_longterm"))) == 0
    assert labs.check_answer(lt, "open_relay", relayed).correct is False
    rel = incident.relay_allocations(lt.stun)
    assert len(rel) == lt_truth["stun"]["Allocate/success"]
    assert rel["authenticated"].all() and set(rel["username"]) == {lt_truth["turn"]["username"]}


def test_lab_plaintext_stream() -> None:
    c = cap("sdes_plain_rtp")
    truth = load_truth("sdes_plain_rtp")
    plain = {s["ssrc"] for s in truth["rtp"] if not s["encrypted"]}
    enc = {s["ssrc"] for s in truth["rtp"] if s["encrypted"]}
    got = {int(x) for x in labs.unencrypted_streams(_report("sdes_plain_rtp"))["ssrc"]}
    assert plain == got and not (enc & got)
    ssrc = min(plain)
    assert labs.check_answer(c, "plaintext_ssrc", ssrc).correct is True
    assert labs.check_answer(c, "plaintext_ssrc", hex(ssrc)).correct is True
    # the SDES stream is encrypted, but its key crossed the wire in the plaintext offer: readable as well
    assert any(k["sdp"] == "offer" and k["keys_stream"] for k in truth["secrets"]["sdes"])
    sdes = labs.check_answer(c, "plaintext_ssrc", min(enc))
    assert sdes.correct is True and "SDES key crossed the wire in clear" in sdes.message
    assert "not an SSRC" in labs.check_answer(c, "plaintext_ssrc", "0xnope").message
    assert labs.check_answer(c, "plaintext_ssrc", 1).correct is False
    assert labs.check_answer(c, "media_encrypted", False).correct is True
    assert labs.check_answer(cap("clean_call"), "media_encrypted", True).correct is True


def test_lab_hints_come_in_steps_and_the_answer_box_checks() -> None:
    import ipywidgets as w

    spec = labs.QUESTION_SPECS["plaintext_ssrc"]
    assert [labs.hint("plaintext_ssrc", i) for i in range(5)] == [*spec.hints, spec.hints[-1], spec.hints[-1]]
    c = cap("sdes_plain_rtp")
    ssrc = min(s["ssrc"] for s in load_truth("sdes_plain_rtp")["rtp"] if not s["encrypted"])
    box = labs.lab_widget(c, "plaintext_ssrc")
    text = next(x for x in box.children[1].children if isinstance(x, w.Text))
    check, more = (x for x in box.children[1].children if isinstance(x, w.Button))
    hints, verdict = box.children[2], box.children[3]
    assert verdict.value == "" and hints.value == ""  # nothing answered before the question is asked
    more.click()
    assert spec.hints[0] in hints.value and spec.hints[1] not in hints.value
    text.value = "hello"
    check.click()
    assert "not an SSRC" in verdict.value
    text.value = hex(ssrc)
    check.click()
    assert "✔ correct" in verdict.value and "Why it matters" in verdict.value
    assert "✔ correct" in box.static_html() and spec.hints[0] in box.static_html()


def test_lab_injector() -> None:
    c = cap("media_injection")
    need(c, "packets", "stun")
    pytest.importorskip("pylibsrtp")
    from rtcforensics.checks.analyze import analyze

    t = load_truth("media_injection")
    a = t["attack"]
    caller_ip = a["spoofed_source"].rsplit(":", 1)[0]
    victim_ip = a["victim_media"].rsplit(":", 1)[0]
    unsolicited = next(f for f in t["findings"] if f["slug"] == "unsolicited-media")
    assert unsolicited["endpoints"][0].rsplit(":", 1)[0] == a["attacker"]
    # the answer key reads the two checks' findings: who sent media without consent, what was forged under whom
    ev = labs.injection_evidence(analyze(c))
    assert set(ev.injectors) == {a["attacker"]}
    assert ev.injectors[a["attacker"]] == [(a["probe"]["src"], a["probe"]["dst"], a["probe"]["packets"])]
    assert ev.spoofed == {caller_ip} and ev.forged_packets == a["inject"]["packets"]
    assert [f[2] for f in ev.forged] == [a["inject"]["ssrc"]]
    # right: the attacker's IP, alone or with the port it sent from; the forged packets are counted
    for answer in (a["attacker"], a["probe"]["src"]):
        got = labs.check_answer(c, "injector", answer)
        assert got.correct is True, got
        assert (
            f"{a['inject']['packets']} SRTP packet(s)" in got.message and "srtp-auth-failure" in got.message
        )
    # wrong: the caller's address the forged packets carry, and the victim
    wrong = labs.check_answer(c, "injector", caller_ip)
    assert wrong.correct is False and "forged" in wrong.message
    assert labs.check_answer(c, "injector", a["spoofed_source"]).correct is False
    assert labs.check_answer(c, "injector", victim_ip).correct is False
    assert "no answer yet" in labs.check_answer(c, "injector", None).message
    assert labs.check_answer(c, "injector", None).correct is False
    # without the keylog the injector is still found; the result says the forged packets need it
    bare = rtcforensics.load(sample_path("media_injection"), progress=False)
    got = labs.check_answer(bare, "injector", a["attacker"])
    assert got.correct is True and "keylog" in got.message and "SRTP packet(s)" not in got.message
    # a call nobody injected into: None is the right answer, any address is wrong
    clean = cap("clean_call")
    need(clean, "packets", "stun")
    assert "unsolicited-media" in load_truth("clean_call")["absent_findings"]
    assert labs.check_answer(clean, "injector", None).correct is True
    assert labs.check_answer(clean, "injector", a["attacker"]).correct is False


def test_check_answer_rejects_unknown_question() -> None:
    with pytest.raises(ValueError, match="unknown question"):
        labs.check_answer(None, "who-dunnit", 1)


# -- escaping and indicators --------------------------------------------------------------------------------
def test_capture_text_is_escaped_in_tables() -> None:
    c = cap("sdes_plain_rtp")
    need(c, "signalling")
    sig = c.signalling.copy()
    ua = "user_agent" if "user_agent" in sig.columns else sig.columns[-1]
    real = sig[ua].dropna().astype(str)
    assert len(real), "the sample's signalling carries a User-Agent"
    sig[ua] = sig[ua].astype(object)
    sig.loc[sig[ua].notna(), ua] = "<script>alert(1)</script>" + real.iloc[0]
    html = _safe.frame_html(sig)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_indicators_of_the_sdes_call() -> None:
    c = cap("sdes_plain_rtp")
    need(c, "flows", "stun", "dtls", "signalling")
    rep = _report("sdes_plain_rtp")
    iocs = incident.indicators(flows=c.flows, dtls=c.dtls, stun=c.stun, signalling=c.signalling, findings=rep)
    truth = load_truth("sdes_plain_rtp")
    media = next(x for x in truth["findings"] if x["slug"] == "rtp-unencrypted")
    assert set(media["endpoints"]) <= set(iocs.loc[iocs.kind == "endpoint", "value"])
    sw = next(x for x in truth["findings"] if x["slug"] == "software-disclosure")["evidence"]
    assert {sw["user_agent"], sw["server"]} <= set(iocs.loc[iocs.kind == "software", "value"])
    assert not iocs.duplicated(subset=["kind", "value"]).any()
    # background traffic (IPv6 neighbour discovery, multicast) is not an indicator
    assert not iocs["value"].str.contains("ff02::").any()


@pytest.mark.realcaps
def test_stream_series_loss_and_jitter_on_a_real_turn_call(realcaps) -> None:
    # veondigital's client-side TURN/UDP Opus call: one stream lost packets on the way
    path = realcaps / "veondigital_srtp_decoder" / "udp_call_02_03_client.pcap"
    if not path.exists():
        pytest.skip(f"{path} not present")
    c = rtcforensics.load(path, progress=False)
    st = c.rtp_streams
    lossy = 0
    for _, s in st.iterrows():
        fid, ssrc = int(s["flow_id"]), int(s["ssrc"])
        series = select.stream_series(c.rtp, fid, ssrc)
        p = select.stream_packets(c.rtp, fid, ssrc)
        ext = select._unwrap16(p["seq"].to_numpy())
        expected_lost = int(ext.max() - ext.min() + 1) - len(set(ext.tolist()))
        assert series["lost"].sum() == expected_lost == int(s["lost"])
        assert series["packets"].sum() == int(s["packets"])
        assert series["jitter_ms"].dropna().iloc[-1] == pytest.approx(float(s["jitter_ms"]), rel=0.01)
        lossy += expected_lost > 0
    assert lossy >= 1


@pytest.mark.realcaps
def test_open_relay_on_a_real_coturn_capture(realcaps) -> None:
    # nDPI's one-directional coturn 4.5 capture: the first Allocate carries no credentials and succeeds,
    # then the client asks for permissions toward two private peers (realcaps/README.md inventory)
    path = realcaps / "nDPI" / "stun_dtls_rtp_unidir.pcapng"
    if not path.exists():
        pytest.skip(f"{path} not present")
    c = rtcforensics.load(path, progress=False)
    allocs = labs.open_relay_allocations(rtcforensics.analyze(c))
    assert list(allocs["request_frame"]) == [1] and list(allocs["response_frame"]) == [2]
    assert labs.check_answer(c, "open_relay", 2).correct is True
    rel = incident.relay_allocations(c.stun)
    assert rel["authenticated"].tolist() == [False]
    assert rel["relayed"].iloc[0].startswith("10.1.0.3:")
    assert {p.rsplit(":", 1)[0] for p in rel["peers"].iloc[0]} == {"192.168.2.105", "10.0.0.147"}
