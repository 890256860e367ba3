"""The `sdp` frame reproduces every sample capture's truth: fingerprints, ufrag, setup, protos, transport."""

from __future__ import annotations

import re
import subprocess

import pytest
from samples import SAMPLES, load_truth, sample_names, sample_path

import rtcforensics


def _cap(name: str, keylog: bool = True) -> rtcforensics.Capture:
    p = sample_path(name)
    kl = p.with_suffix(".keylog")
    return rtcforensics.load(p, keylog=kl if keylog and kl.exists() else None)


def _readable(name: str, entry: dict) -> bool:
    return not entry.get("tls") or (SAMPLES / f"{name}.keylog").exists()


WITH_SDP = [n for n in sample_names() if any(_readable(n, e) for e in load_truth(n).get("sdp") or [])]


@pytest.mark.parametrize("name", WITH_SDP)
def test_truth_descriptions_found(name: str) -> None:
    t = load_truth(name)
    df = _cap(name).sdp
    for e in t["sdp"]:
        if not _readable(name, e):
            continue
        rows = df[df["role"] == e["role"]]
        if e.get("ice_ufrag"):
            rows = rows[rows["ice_ufrag"] == e["ice_ufrag"]]
        assert len(rows), (name, e["role"])
        want = e.get("fingerprint") or {}
        # a description relayed over two legs may differ per leg (rewritten): one copy must match the truth
        ok = [
            r for _, r in rows.iterrows() if all(dict(r["fingerprints"]).get(a) == h for a, h in want.items())
        ]
        assert ok, (name, e["role"])
        r = ok[0]
        if e.get("setup"):
            assert r["setup"] == e["setup"]
        assert list(r["protos"]) == e["protos"]
        transport = e.get("transport")
        if transport == "sip-websocket":
            assert r["transport"] == "websocket" and r["envelope"] == "sip"
        elif transport:
            assert r["transport"] == transport
        assert bool(r["tls"]) == bool(e.get("tls"))
        if e.get("sip"):
            assert r["envelope"] == "sip"


def test_same_facts_with_wss_decrypted_and_side_by_side_relay_copies() -> None:
    # The WSS capture decrypted with its keylog gives the same description facts on both relay legs as the
    # plaintext variant does: each description is seen twice (to the relay, from the relay), identically.
    for name in ("clean_call", "ws_plaintext_private"):
        t = load_truth(name)
        df = _cap(name).sdp
        for e in t["sdp"]:
            rows = df[(df["role"] == e["role"]) & (df["ice_ufrag"] == e["ice_ufrag"])]
            assert len(rows) == 2
            assert rows["text_sha256"].nunique() == 1
            assert set(rows["direction"]) == {"client_to_server", "server_to_client"}
            assert set(rows["tls"]) == {bool(e["tls"])} and set(rows["decrypted"]) == {bool(e["tls"])}


def test_rewritten_fingerprint_is_visible_per_leg() -> None:
    t = load_truth("fingerprint_rewrite")
    df = _cap("fingerprint_rewrite").sdp
    ans = next(e for e in t["sdp"] if e["role"] == "answer")
    rows = df[(df["role"] == "answer") & (df["ice_ufrag"] == ans["ice_ufrag"])]
    assert rows["fingerprint_sha256"].nunique() == 2  # one leg original, one rewritten
    legs = dict(zip(rows["direction"], rows["fingerprint_sha256"]))
    assert legs["client_to_server"] == t["mitm"]["answer_fingerprint_sha256"]  # bob -> relay
    assert legs["server_to_client"] == t["mitm"]["fake_fingerprint_sha256"]  # relay -> alice


def test_secrets_not_in_clear() -> None:
    # ice-pwd values as tshark's SDP dissector reads them from the plaintext capture never appear in the
    # frame; their sha-256 prefixes do. SDES keys appear only in crypto_keys_secret.
    from rtcforensics.dissect.sdp import secret_hash

    cap = _cap("sdes_plain_rtp")
    t = load_truth("sdes_plain_rtp")
    df = cap.sdp
    keys = [s["inline"] for s in t["secrets"]["sdes"]]
    public = df.drop(columns=["crypto_keys_secret"]).astype(str).to_csv()
    assert not any(k in public for k in keys)
    assert sorted(k for ks in df["crypto_keys_secret"] for k in ks) == sorted(keys)

    cap = _cap("ws_plaintext_private")
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(cap.path),
            "-Y",
            "websocket",
            "-T",
            "fields",
            "-e",
            "websocket.payload.text",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pwds = set(re.findall(r"a=ice-pwd:([^\\\\\r\n\"]+)", out))
    assert pwds
    text = cap.sdp.astype(str).to_csv()
    assert not any(p in text for p in pwds)
    assert {secret_hash(p) for p in pwds} == set(cap.sdp["ice_pwd_sha256"])


def test_hostile_strings_kept_verbatim() -> None:
    # Frames hold what was on the wire, byte for byte (escaping is the renderers' job): session name,
    # candidate foundations (with terminal escapes) and the User-Agent of the WebSocket upgrade.
    t = load_truth("hostile_strings")["hostile"]
    cap = _cap("hostile_strings")
    assert set(cap.sdp["session_name"]) == {t["session_name"]}
    c = cap.candidates
    sdp_c = c[c["origin"] == "sdp"]
    assert set(zip(sdp_c["role"], sdp_c["foundation"])) == set(t["foundations"].items())
    s = cap.signalling
    assert t["user_agent"] in set(s["user_agent"].dropna())
