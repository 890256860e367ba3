"""The check catalogue: every required slug present, IDs well formed and unique, every check documented,
and the registry refusing malformed registrations at import time."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from rtcforensics.checks import registry
from rtcforensics.checks.comp import identify, known_vulns, vuln_table
from rtcforensics.checks.registry import (
    DOC_SECTIONS,
    ID_RE,
    REGISTRY,
    Confidence,
    Severity,
    check,
    get,
    load_catalogue,
)

# DESIGN.md section 4: the slugs are the contract.
REQUIRED_SLUGS = {
    "signalling-plaintext",
    "signalling-weak-tls",
    "signalling-secret-exposed",
    "sdes-key-exposed",
    "sdp-plain-rtp-offered",
    "dtls-fingerprint-mismatch",
    "fingerprint-weak-hash",
    "dtls-weak-version",
    "dtls-weak-cipher",
    "dtls-handshake-failed",
    "dtls-cert-weak",
    "srtp-null-cipher",
    "srtp-weak-profile",
    "rtp-unencrypted",
    "ice-private-ip-exposed",
    "ice-ipv6-eui64",
    "ice-no-mdns",
    "stun-no-integrity",
    "turn-open-relay",
    "turn-internal-peer",
    "turn-credential-lifetime",
    "outdated-component",
    "software-disclosure",
    "unsolicited-media",
}


def test_every_required_slug_is_a_check():
    slugs = {c.slug for c in load_catalogue().values()}
    assert slugs >= REQUIRED_SLUGS, REQUIRED_SLUGS - slugs


def test_ids_well_formed_unique_and_in_family_order():
    cat = load_catalogue()
    assert all(ID_RE.match(cid) for cid in cat)
    assert len({c.slug for c in cat.values()}) == len(cat)
    families = [c.family for c in cat.values()]
    assert families == sorted(families, key=registry.FAMILIES.index)


@pytest.mark.parametrize("cid", sorted(load_catalogue()))
def test_every_check_is_documented(cid):
    c = load_catalogue()[cid]
    for sec in DOC_SECTIONS:
        assert len(c.sections[sec]) > 15, (cid, sec)
    assert c.references and c.title
    for p in c.params:
        assert p.doc and p.name.islower()
    assert c.status == "stable"


def test_duplicate_id_is_refused():
    with pytest.raises(ValueError, match="duplicate check ID 'SIG001'"):

        @check(
            id="SIG001", slug="some-new-thing", title="t", severity=Severity.LOW, confidence=Confidence.LOW
        )
        def dup(ctx):
            """What it flags: x x x x x x x x x x. Why it matters: x x x x x x x x x x.
            Evidence: x x x x x x x x x x. False positives: x x x x x x x x x x. References: x x x x x x x x."""


def test_duplicate_slug_is_refused():
    with pytest.raises(ValueError, match="duplicate slug 'turn-open-relay'"):

        @check(
            id="TURN999", slug="turn-open-relay", title="t", severity=Severity.LOW, confidence=Confidence.LOW
        )
        def dup(ctx):
            """What it flags: x. Why it matters: x. Evidence: x. False positives: x. References: x."""

    assert "TURN999" not in REGISTRY


@pytest.mark.parametrize("bad", ["sig001", "SIG01", "XYZ001", "SIG0001", "SIG-001"])
def test_malformed_id_is_refused(bad):
    with pytest.raises(ValueError, match="malformed ID"):
        check(id=bad, slug="x-y", title="t", severity=Severity.LOW, confidence=Confidence.LOW)(lambda ctx: [])
    assert bad not in REGISTRY


def test_undocumented_check_is_refused():
    with pytest.raises(ValueError, match=r"lacks section\(s\) \['False positives', 'References'\]"):

        @check(
            id="COMP998", slug="half-documented", title="t", severity=Severity.LOW, confidence=Confidence.LOW
        )
        def half(ctx):
            """What it flags: a thing.
            Why it matters: because.
            Evidence: rows. False positives: not a section unless it starts a line."""

    assert "COMP998" not in REGISTRY


def test_get_by_id_or_slug():
    assert get("turn-open-relay").id == get("turn001").id == "TURN001"
    with pytest.raises(KeyError):
        get("no-such-check")


@pytest.mark.parametrize("key", ["CASE005", "case005", "intermediary-unexpected"])
def test_explain_a_cross_capture_check(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    from rtcforensics.cli import main

    assert main(["explain", key]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CASE005  intermediary-unexpected")
    assert "What it flags:" in out and "Parameters (override with --param CASE005." in out


def test_severity_parse_and_order():
    assert Severity.parse("Critical") > Severity.parse("high") > Severity.MEDIUM
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("severe")


# -- version knowledge (rtcforensics/data/vulns.json) -------------------------------------------------
def test_vuln_table_entries_are_complete():
    data = json.loads(resources.files("rtcforensics").joinpath("data/vulns.json").read_text())
    comps = {v["component"] for v in data["vulns"]}
    assert {"coturn", "chrome", "firefox", "janus", "freeswitch", "asterisk"} <= comps
    for v in data["vulns"]:
        assert v["cve"].startswith("CVE-") and v["source"] and v["fixed_in"] and v["affected"]
        assert v["component"] in data["components"]


def test_frozen_firefox_sdp_version_names_none():
    # every Firefox from 99 on writes SDPARTA-99.0 (ESR 153.7 does, in browsers_firefox_chromium)
    assert identify("mozilla...THIS_IS_SDPARTA-99.0 6330767648244164092 0 IN IP4 0.0.0.0") == []


@pytest.mark.parametrize(
    "text,comp,version,cve,hit",
    [
        ("Coturn-4.4.5.4 'Ardee West'", "coturn", "4.4.5.4", "CVE-2020-26262", True),  # realcaps SOFTWARE
        ("Coturn-4.6.1 'Gorst'", "coturn", "4.6.1", "CVE-2020-26262", False),  # sample captures' coturn
        (
            "Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/103.0.5060.114 Safari/537.36",
            "chrome",
            "103.0.5060.114",
            "CVE-2022-2294",
            False,
        ),  # the fixed version itself
        (
            "Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/103.0.5060.53 Safari/537.36",
            "chrome",
            "103.0.5060.53",
            "CVE-2022-2294",
            True,
        ),
        (
            "mozilla...THIS_IS_SDPARTA-68.0",
            "firefox",
            "68.0",
            "CVE-2026-4704",
            True,
        ),  # before the freeze at 99
        ("Asterisk PBX 20.5.0", "asterisk", "20.5.0", "CVE-2023-49786", True),
        ("Asterisk PBX 20.5.1", "asterisk", "20.5.1", "CVE-2023-49786", False),
        ("FreeSWITCH-mod_sofia/1.10.10-release", "freeswitch", "1.10.10", "CVE-2023-51443", True),
    ],
)
def test_version_matching(text, comp, version, cve, hit):
    assert (comp, version) in identify(text)
    assert (cve in {v["cve"] for v in known_vulns(comp, version)}) is hit
    assert vuln_table()["schema"] == "rtcforensics-vulns/1"
