"""The checks against real captures: every finding of every sample truth file is found (slug, endpoints,
severity and evidence where the truth gives them), nothing medium+ on clean captures, and third-party
captures (realcaps) raise exactly what is true about them — nothing more at medium or above."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from samples import REALCAPS, SAMPLES, load_truth, sample_names, sample_path

import rtcforensics
from rtcforensics.checks.analyze import Report
from rtcforensics.checks.registry import Severity, load_catalogue

SAMPLES_WITH_TRUTH = sample_names()


@functools.cache
def report_for(path: str, keylog: str | None = None, params: tuple = ()) -> Report:
    return rtcforensics.analyze(rtcforensics.load(path, keylog=keylog), params=dict(params))


def sample_report(name: str) -> Report:
    t = load_truth(name)
    keylog = str(SAMPLES / t["keylog"]) if t.get("keylog") and (SAMPLES / t["keylog"]).exists() else None
    return report_for(str(sample_path(name)), keylog)


def realcap_report(rel: str, params: tuple = ()) -> Report:
    p = REALCAPS / rel
    if not p.exists():
        pytest.skip(f"{rel} not present")
    return report_for(str(p), None, params)


def _addr(endpoint: str) -> str:
    if endpoint.startswith("["):
        return endpoint[1:].split("]", 1)[0]
    return endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint


def endpoint_in(truth_ep: str, mine: list[str]) -> bool:
    """A truth endpoint with a port must appear exactly; an address alone matches that address with any port."""
    if truth_ep in mine:
        return True
    bare = _addr(truth_ep) == truth_ep
    return bare and any(_addr(m) == truth_ep for m in mine)


def evidence_agrees(truth_ev: dict[str, Any], mine: dict[str, Any]) -> bool:
    values = [x for v in mine.values() for x in (v if isinstance(v, list) else [v])]
    for k, v in truth_ev.items():
        if k in mine and (
            mine[k] == v
            or (
                isinstance(mine[k], list)
                and (v in mine[k] or (isinstance(v, list) and set(map(str, v)) <= set(map(str, mine[k]))))
            )
        ):
            continue
        if all(x in values for x in (v if isinstance(v, list) else [v])):
            continue  # the same facts under another name (e.g. ws_upgrade_user_agent vs user_agent)
        return False
    return True


def matching(report: Report, tf: dict[str, Any]) -> list[Any]:
    return [
        f
        for f in report.findings
        if f.slug == tf["slug"] and all(endpoint_in(e, f.endpoints) for e in tf.get("endpoints", []))
    ]


@pytest.mark.parametrize("name", SAMPLES_WITH_TRUTH)
def test_truth_findings_are_found(name):
    t = load_truth(name)
    r = sample_report(name)
    for tf in t["findings"]:
        got = matching(r, tf)
        assert got, (tf, [(f.slug, f.endpoints) for f in r.findings])
        if "severity" in tf:
            assert any(f.severity == tf["severity"] for f in got), (tf, [f.severity for f in got])
        if tf.get("evidence"):
            assert any(evidence_agrees(tf["evidence"], f.evidence) for f in got), (
                tf,
                [f.evidence for f in got],
            )
        if tf.get("frames"):
            assert any(set(tf["frames"]) <= set(f.frames) for f in got), (tf, [f.frames for f in got])
        if "accepted" in tf:  # turn-internal-peer: critical when the relay accepted, lower when it refused
            sev = max(Severity.parse(f.severity) for f in got)
            assert (sev == Severity.CRITICAL) if tf["accepted"] else (sev <= Severity.LOW), (tf, sev)


@pytest.mark.parametrize("name", SAMPLES_WITH_TRUTH)
def test_absent_findings_stay_absent(name):
    """Slugs the truth file says are absent raise nothing above info (offered-only weak DTLS suites are
    info by design)."""
    t = load_truth(name)
    r = sample_report(name)
    bad = [
        (f.slug, f.severity, f.message)
        for f in r.findings
        if f.slug in set(t.get("absent_findings", [])) and Severity.parse(f.severity) > Severity.INFO
    ]
    assert not bad


@pytest.mark.parametrize("name", SAMPLES_WITH_TRUTH)
def test_nothing_medium_or_above_that_the_truth_does_not_list(name):
    """No crying wolf on our own captures: every finding at medium or above is one the truth file expects
    (same slug and endpoints). The truth comes from the stacks, so a loud finding it lacks is a false alarm
    (e.g. Firefox's frozen SDPARTA-99.0 read as an outdated Firefox 99)."""
    t = load_truth(name)
    r = sample_report(name)
    unexpected = [
        (f.slug, f.severity, f.endpoints, f.message)
        for f in r.findings
        if Severity.parse(f.severity) >= Severity.MEDIUM
        and not any(f in matching(r, tf) for tf in t["findings"])
    ]
    assert not unexpected


@pytest.mark.parametrize("name", SAMPLES_WITH_TRUTH)
def test_coverage_for_every_check_and_nothing_failed(name):
    r = sample_report(name)
    assert [c.id for c in r.coverage] == list(load_catalogue())
    assert not [c for c in r.coverage if c.status == "failed"], [c.reason for c in r.coverage]
    for c in r.coverage:
        assert c.reason
        assert (c.status == "found") == (c.findings > 0) == any(f.id == c.id for f in r.findings)


def test_clean_captures_raise_nothing_medium_or_above():
    clean = [n for n in SAMPLES_WITH_TRUTH if not load_truth(n)["findings"]]
    if not clean:
        pytest.skip("no clean sample capture yet")
    for n in clean:
        loud = [
            (f.slug, f.severity)
            for f in sample_report(n).findings
            if Severity.parse(f.severity) >= Severity.MEDIUM
        ]
        assert not loud, (n, loud)


def test_sdes_key_is_redacted_but_kept_for_show_secrets():
    from rtcforensics.report.jsonout import document

    t = load_truth("sdes_plain_rtp")
    r = sample_report("sdes_plain_rtp")
    keys = {s["inline"] for s in t["secrets"]["sdes"]}
    shown = str(document(r, show_secrets=True)["findings"])
    hidden = str(document(r)["findings"])
    assert any(k in shown for k in keys)
    assert not any(k in hidden for k in keys) and "<redacted>" in hidden


# -- third-party captures ----------------------------------------------------------------------------------
# (capture, {slug: (severity, confidence)} of every finding at medium or above, low/info findings expected)
REALCAP_EXPECT = [
    # applications: nothing at medium or above (their deviations are by design)
    ("nDPI/stun_google_meet.pcapng", {}, {}),
    (
        "nDPI/stun_dtls_rtp.pcapng",
        {},
        {"turn-internal-peer": ("low", "low")},
    ),  # Meet via Google TURN: ICE peer
    (
        "nDPI/wa_voice.pcap",
        {},
        {"turn-open-relay": ("low", "low")},
    ),  # WhatsApp Allocate without MI, by design
    ("nDPI/stun_wa_call.pcapng", {}, {}),
    ("nDPI/stun_zoom.pcapng", {}, {}),
    ("nDPI/discord.pcap", {}, {}),  # own encryption over RTP framing: random payload, no plaintext evidence
    ("nDPI/geforcenow.pcapng", {}, {}),
    ("pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap", {}, {}),
    # the ClientHello's JA4 is the one Firefox 125.0 sends (data/dtls_fingerprints.json): a lead, low/low
    ("pion_dtls/capture-firefox-Mozilla_Firefox_125.0.pcap", {}, {"outdated-component": ("low", "low")}),
    # true problems
    (
        "nDPI/stun_dtls_rtp_unidir.pcapng",  # coturn 4.5.0.3, first Allocate succeeds with no credentials
        {
            "turn-open-relay": ("high", "high"),
            "outdated-component": ("high", "high"),
            "dtls-weak-version": ("medium", "high"),
            "dtls-weak-cipher": ("medium", "high"),
        },
        {"turn-internal-peer": ("low", "low")},
    ),
    (
        "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap",
        {"outdated-component": ("high", "high")},
        {"turn-internal-peer": ("low", "low")},
    ),
    (
        "zeek/dtls1_0.pcap",
        {"dtls-weak-version": ("medium", "high"), "dtls-weak-cipher": ("medium", "high")},
        {"dtls-cert-weak": ("low", "high")},
    ),  # sha1WithRSAEncryption certificate signature
    (
        "nDPI/stun_dtls_unidirectional_server.pcap",
        {"dtls-weak-version": ("medium", "high"), "dtls-weak-cipher": ("medium", "high")},
        {"srtp-weak-profile": ("low", "high")},
    ),
    ("zeek/dtls13-cid.pcap", {}, {"dtls-handshake-failed": ("low", "low")}),
    (
        "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap",
        {
            "sdp-plain-rtp-offered": ("high", "high"),
            "signalling-plaintext": ("high", "high"),
            "signalling-secret-exposed": ("high", "high"),
            "rtp-unencrypted": ("high", "medium"),
        },
        {},
    ),
]


@pytest.mark.realcaps
@pytest.mark.parametrize("rel,loud,quiet", REALCAP_EXPECT, ids=[e[0] for e in REALCAP_EXPECT])
def test_realcaps_raise_what_is_true(realcaps, rel, loud, quiet):
    r = realcap_report(rel)
    medium_up = {f.slug for f in r.findings if Severity.parse(f.severity) >= Severity.MEDIUM}
    assert medium_up == set(loud), (rel, [(f.slug, f.severity, f.message) for f in r.findings])
    for slug, (sev, conf) in {**loud, **quiet}.items():
        got = [(f.severity, f.confidence) for f in r.findings if f.slug == slug]
        assert (sev, conf) in got, (slug, got)
    assert not [c for c in r.coverage if c.status == "failed"]


@pytest.mark.realcaps
def test_outdated_component_cites_cve_and_source(realcaps):
    r = realcap_report("nDPI/stun_dtls_rtp_unidir.pcapng")
    f = next(f for f in r.findings if f.slug == "outdated-component")
    assert f.evidence["component"] == "coturn" and f.evidence["version"] == "4.5.0.3"
    assert f.evidence["read_from"] == ["software"] and f.endpoints == ["10.1.0.3:5853"]
    cves = {c["cve"]: c for c in f.evidence["cves"]}
    assert cves["CVE-2020-26262"]["fixed_in"] == "4.5.2" and cves["CVE-2020-26262"]["source"]


@pytest.mark.realcaps
def test_outdated_component_from_dtls_fingerprint(realcaps):
    """A JA4 read from the ClientHello names the version only through the fingerprint table, and only as
    a lead: Firefox 125's fingerprint points at the Firefox CVEs fixed in ESR 140.9 / 149 (low, low);
    Chromium 123's at no CVE in the table; Chromium 156 and Firefox ESR 153 share one JA4, so it names
    neither."""
    from rtcforensics.checks.comp import identify_ja4

    r = realcap_report("pion_dtls/capture-firefox-Mozilla_Firefox_125.0.pcap")
    f = next(f for f in r.findings if f.slug == "outdated-component")
    assert (f.severity, f.confidence, f.endpoints) == ("low", "low", ["10.1.0.191:53771"])
    assert f.evidence["read_from"] == ["ja4"] and f.evidence["component"] == "firefox"
    assert f.evidence["version"] == "125.0" and f.evidence["text"] == "dd2i0808wc_c6c2b6ec87e0_06b1ae923e2a"
    assert {c["cve"] for c in f.evidence["cves"]} == {"CVE-2026-4704", "CVE-2026-4718"}
    assert "pion/dtls" in f.evidence["fingerprint_source"]
    # software-disclosure is about banners: a fingerprint is not one
    assert not [f for f in r.findings if f.slug == "software-disclosure"]
    assert not [
        f
        for f in realcap_report("pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap").findings
        if f.slug == "outdated-component"
    ]
    chromium156 = sample_report("browsers_chromium")
    ja4 = rtcforensics.load(sample_path("browsers_chromium")).dtls.ja4.dropna().iloc[0]
    assert identify_ja4(ja4) is None and not [
        f for f in chromium156.findings if f.slug == "outdated-component"
    ]


@pytest.mark.realcaps
def test_plain_rtp_stream_in_ndpi_rtp_capture(realcaps):
    r = realcap_report("nDPI/rtp.pcapng")
    f = [f for f in r.findings if f.slug == "rtp-unencrypted" and "172.16.168.24:40252" in f.endpoints]
    assert f and f[0].evidence["codec"] == "PCMA" and f[0].severity == "high"


@pytest.mark.realcaps
def test_proprietary_allocate_is_low_confidence(realcaps):
    r = realcap_report("nDPI/wa_voice.pcap")
    relay = [f for f in r.findings if f.slug == "turn-open-relay"]
    assert relay and all(f.confidence == "low" and f.evidence["proprietary"] for f in relay)


# Checks whose thresholds keep them quiet on these captures; with the threshold moved, the same real
# traffic exercises their logic (and proves the default is what keeps them quiet).
THRESHOLD_CASES = [
    # TLS 1.0 ServerHello (imap.gmail.com:993): not a signalling port by default
    (
        "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap",
        "signalling-weak-tls",
        (("SIG002.signalling_ports", [993]),),
        ["192.168.1.142", "173.194.222.109:993"],
    ),
    # (unsolicited-media had a case here: single stray RTP-looking datagrams in veondigital's udp_call_02_03;
    # issue 14 item 3 made the fast path call uncorroborated one-packet "RTP" other, so they exercise nothing)
]


@pytest.mark.realcaps
@pytest.mark.parametrize("rel,slug,params,eps", THRESHOLD_CASES, ids=[c[1] for c in THRESHOLD_CASES])
def test_threshold_moves_a_check_on_real_traffic(realcaps, rel, slug, params, eps):
    assert not [f for f in realcap_report(rel).findings if f.slug == slug]
    got = [
        f
        for f in realcap_report(
            rel, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params)
        ).findings
        if f.slug == slug
    ]
    assert any(all(endpoint_in(e, f.endpoints) for e in eps) for f in got), [
        (f.endpoints, f.message) for f in got
    ]


# -- the catalogue test: every check fires on a capture and stays quiet on another ----------------------
# Captures known to exercise a check beyond the sample truth files (realcaps; relative to REALCAPS).
REALCAP_FIRES = {slug: rel for rel, loud, quiet in REALCAP_EXPECT for slug in {**loud, **quiet}}


def _fires_on(slug: str) -> list[tuple[str, str]]:
    out = [
        ("sample", n) for n in SAMPLES_WITH_TRUTH if slug in {f["slug"] for f in load_truth(n)["findings"]}
    ]
    if REALCAP_FIRES.get(slug) and (REALCAPS / REALCAP_FIRES[slug]).exists():
        out.append(("realcap", REALCAP_FIRES[slug]))
    for rel, s, params, _ in THRESHOLD_CASES:
        if s == slug and (REALCAPS / rel).exists():
            out.append(("realcap+params", (rel, params)))
    return out


def _quiet_on(slug: str) -> list[str]:
    return [n for n in SAMPLES_WITH_TRUTH if slug in load_truth(n).get("absent_findings", [])]


@pytest.mark.parametrize("cid", list(load_catalogue()))
def test_catalogue_check_fires_somewhere_and_is_quiet_elsewhere(cid):
    chk = load_catalogue()[cid]
    fires = _fires_on(chk.slug)
    if not fires:
        pytest.skip(f"no sample or third-party capture exercises {chk.slug} yet")
    for kind, name in fires:
        if kind == "realcap+params":
            rel, params = name
            r = realcap_report(rel, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params))
        else:
            r = sample_report(name) if kind == "sample" else realcap_report(name)
        assert any(f.id == cid for f in r.findings), (cid, name)
        assert next(c for c in r.coverage if c.id == cid).status == "found"
    quiet = _quiet_on(chk.slug) or [
        n for n in SAMPLES_WITH_TRUTH if not any(f["slug"] == chk.slug for f in load_truth(n)["findings"])
    ]
    assert quiet, f"no capture to keep {chk.slug} quiet"
    r = sample_report(quiet[0])
    assert not [f for f in r.findings if f.id == cid and Severity.parse(f.severity) > Severity.INFO]
    assert next(c for c in r.coverage if c.id == cid).status in ("clean", "not observable", "found")


@pytest.mark.realcaps
def test_ja4_version_released_after_the_capture_is_refused(realcaps, monkeypatch):
    """Issue 14 item 4: the Firefox 125 capture (first packet 2024-04-18) matches Firefox 125.0's JA4, released
    2024-04-16: named, with the release date and the capture date in evidence. Were 125.0 released after the
    capture, it could not have sent that ClientHello, and no version is named."""
    from rtcforensics.checks import comp

    rel = "pion_dtls/capture-firefox-Mozilla_Firefox_125.0.pcap"
    f = next(f for f in realcap_report(rel).findings if f.slug == "outdated-component")
    assert f.evidence["released"] == {"125.0": "2024-04-16"} and f.evidence["capture_date"] == "2024-04-18"
    assert "at or before the capture (2024-04-18)" in f.message
    table = comp.dtls_fingerprints()
    later = {
        k: [{**e, "released": {v: "2024-05-14" for v in e["versions"]}} for e in es]
        for k, es in table.items()
    }
    monkeypatch.setattr(comp, "dtls_fingerprints", lambda: later)
    r = rtcforensics.analyze(rtcforensics.load(realcaps / rel), only=["outdated-component"])
    assert not r.findings and r.coverage[0].status == "clean"


@pytest.mark.realcaps
def test_broken_suites_offered_but_not_chosen_are_low_with_the_list(realcaps):
    """Issue 14 item 6: OpenSSL's DTLS 1.2 ClientHello (zeek dtls1_2) offers 3DES suites; ECDHE-RSA-AES256-GCM
    was chosen. Offering them invites a downgrade: low, with the list; dated suites alone stay info."""
    r = realcap_report("zeek/dtls1_2.pcap")
    got = [f for f in r.findings if f.slug == "dtls-weak-cipher"]
    assert got and all(f.severity == "low" and not f.evidence["negotiated"] for f in got)
    for f in got:
        assert f.evidence["cipher_suite"] == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
        assert "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA" in f.evidence["offered_broken"]
        assert all(
            "3DES" in s or "RC4" in s or "NULL" in s or "DES" in s for s in f.evidence["offered_broken"]
        )


@pytest.mark.realcaps
def test_srtp_without_dtls_after_ice_is_sdes_inferred(realcaps):
    """Issue 14 item 6: ogolosovskiy's SDES call (keys published in sdes_keys.json, SDP not in the capture): ICE
    checks, then SRTP, and no DTLS handshake: keying 'sdes (inferred)', and a finding per flow."""
    rel = "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap"
    cap = rtcforensics.load(REALCAPS / rel)
    st = cap.rtp_streams
    assert set(st["keying"].astype(str)) == {"sdes (inferred)"} and len(cap.dtls) == 0
    f = [f for f in realcap_report(rel).findings if f.slug == "srtp-sdes-inferred"]
    assert len(f) == 1 and f[0].severity == "low"
    assert set(f[0].evidence["ssrcs"]) == set(int(x) for x in st["ssrc"]) >= {0x20C23467}
    # a DTLS-SRTP call's streams are not inferred
    assert "sdes (inferred)" not in set(
        rtcforensics.load(sample_path("clean_call")).rtp_streams["keying"].astype(str)
    )
