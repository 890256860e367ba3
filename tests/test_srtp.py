"""SRTP/SRTCP decryption from captures: keys from SDES, user input and DTLS-SRTP via keylogs (1.2 and 1.3)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

import rtcforensics
from rtcforensics.errors import CaptureError, DecodeError
from rtcforensics.srtp.collect import collect_media
from rtcforensics.srtp.keys import dtls12_srtp_keys, parse_inline, parse_key_spec, profile, tls12_prf
from rtcforensics.srtp.session import KeyLookup, decrypt_streams

pytest.importorskip("pylibsrtp")


def _by_ssrc(result):
    return {int(r.ssrc): r for r in result.streams.itertuples() if r.rtp_packets}


def test_sdes_stream_authenticates_and_plays(sample, truth, tmp_path):
    t = truth("sdes_plain_rtp")
    cap = rtcforensics.load(sample("sdes_plain_rtp"), progress=False)
    res = cap.decrypt()
    streams = _by_ssrc(res)
    for s in t["rtp"]:
        row = streams[s["ssrc"]]
        assert row.rtp_packets == s["packets"]
        if s["keying"] == "sdes":
            # the key came from the SDP that crossed the wire in clear (offer frame)
            assert row.status == "authenticated" and row.authenticated == s["packets"] + (
                row.rtcp_packets or 0
            )
            assert row.key_source.startswith("sdes:frame ")
            assert row.profile == "SRTP_AES128_CM_HMAC_SHA1_80"
        else:  # the plain RTP/AVP stream: no key is offered for it, none verifies
            assert row.status == "no key" and row.authenticated == 0
    written = res.write(tmp_path)
    wav = [p for p in written if p.suffix == ".wav"]
    assert len(wav) == 1 and "pcmu" in wav[0].name
    loud = res.streams.dropna(subset=["audio_dbfs"])
    assert len(loud) == 1 and -40 < float(loud.audio_dbfs.iloc[0]) < -3  # ffmpeg's sine, not silence
    # the plain-RTP pcap plays in Wireshark: tshark sees the same packet count as G.711 RTP
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(tmp_path / "decrypted.pcap"),
            "--enable-heuristic",
            "rtp_udp",
            "-Y",
            "rtp.p_type == 0",
            "-T",
            "fields",
            "-e",
            "rtp.ssrc",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    sdes = next(s for s in t["rtp"] if s["keying"] == "sdes")
    assert len(out.stdout.split()) == sdes["packets"]


def test_dtls12_keys_from_aiortc_keylog_authenticate_every_packet(sample, truth):
    t = truth("clean_call")
    path = sample("clean_call")
    keylog = path.with_suffix(".keylog")
    res = rtcforensics.load(path, keylog=keylog, progress=False).decrypt()
    streams = _by_ssrc(res)
    assert set(streams) == {s["ssrc"] for s in t["rtp"]}
    for s in t["rtp"]:
        row = streams[s["ssrc"]]
        assert row.rtp_packets == s["packets"]
        assert row.status == "authenticated" and row.auth_failed == 0
        assert row.key_source.startswith("dtls-srtp:")
        assert row.profile == t["dtls"][0]["srtp_profile"]
        assert row.e2ee_suspected is not True


def test_without_keylog_dtls_streams_have_no_key(sample):
    res = rtcforensics.load(sample("clean_call"), progress=False).decrypt()
    assert set(res.streams.status) == {"no key"}


def test_dtls13_keys_from_firefox_exporter_secret(sample, truth, tmp_path):
    t = truth("browsers_firefox_chromium")
    path = sample("browsers_firefox_chromium")
    res = rtcforensics.load(path, keylog=path.with_suffix(".keylog"), progress=False).decrypt()
    streams = _by_ssrc(res)
    for s in t["rtp"]:
        row = streams[s["ssrc"]]
        assert row.rtp_packets == s["packets"]
        assert row.status == "authenticated" and row.auth_failed == 0
        assert row.profile == t["dtls"][0]["srtp_profile"] == "SRTP_AEAD_AES_128_GCM"
    res.write(tmp_path)
    audio = res.streams.dropna(subset=["audio_dbfs"])
    assert len(audio) == 2 and (audio.audio_dbfs > -40).all()  # both browsers' fake microphones


def test_keylog_of_another_call_gives_no_key(sample, tmp_path):
    # the datachannel capture's keylog belongs to another call: no handshake of clean_call finds its secrets
    other = sample("datachannel_only").with_suffix(".keylog")
    res = rtcforensics.load(sample("clean_call"), keylog=other, progress=False).decrypt()
    assert set(res.streams.status) == {"no key"}


@pytest.mark.realcaps
@pytest.mark.parametrize("as_mapping", [False, True], ids=["list", "mapping"])
def test_wrong_key_for_a_stream_is_an_authentication_failure(realcaps, as_mapping):
    # the authors published a key for SSRC 0x2c2e32d2, which the call never used; its second stream is 0xe3b9fc5e.
    # issue 14 item 7: keys as ["SSRC=spec"] or {ssrc: spec}; a user key that verifies none of the stream's packets
    # is "authentication failed", with the counts
    capture = "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap"
    pub = next(
        k
        for k in json.loads((realcaps / "sdes_keys.json").read_text())
        if k["capture"] == capture and k["ssrc"] == "0x2c2e32d2"
    )
    spec = f"{pub['suite']} inline:{pub['inline_key_b64']}"
    keys = {0xE3B9FC5E: spec} if as_mapping else [f"0xe3b9fc5e={spec}"]
    res = rtcforensics.load(realcaps / capture, progress=False).decrypt(keys=keys)
    row = res.streams[(res.streams.ssrc == 0xE3B9FC5E) & (res.streams.rtp_packets > 0)].iloc[0]
    assert row.status == "authentication failed" and row.authenticated == 0 and row.rtp_packets == 498
    assert row.key_source == "user" and row.auth_failed == row.rtp_packets + row.rtcp_packets
    assert len(row.failed_frames) == 50


def test_decrypt_reads_no_more_than_the_load(sample):
    # the decryption pass keeps the user's read limits: the packets past max_packets are never read
    path = sample("sdes_plain_rtp")
    everything, _ = collect_media(path)
    limit = everything[len(everything) // 2].frame
    cap = rtcforensics.load(path, progress=False, max_packets=limit)
    packets, _ = collect_media(cap.path, **cap.limits)
    assert packets == [p for p in everything if p.frame <= limit] and len(packets) < len(everything)
    res = cap.decrypt()
    assert res.streams.rtp_packets.sum() == sum(not p.rtcp for p in packets)


def test_tampered_packet_fails_authentication(sample):
    path = sample("sdes_plain_rtp")
    packets, _ = collect_media(path)
    cap = rtcforensics.load(path, progress=False)
    suite = cap.sdp.crypto_suites.iloc[0][0]
    key = parse_inline(suite, cap.sdp.crypto_keys_secret.iloc[0][0])
    lookup = KeyLookup()
    lookup.add_any(key, "sdp")
    keyed = [p for p in packets if not p.rtcp]
    victim = keyed[len(keyed) // 2]
    # an on-path attacker flips one payload byte (the tag no longer verifies)
    i = packets.index(victim)
    packets[i] = dataclasses.replace(
        victim, data=victim.data[:20] + bytes([victim.data[20] ^ 0x01]) + victim.data[21:]
    )
    states = decrypt_streams(packets, lookup)
    st = next(s for s in states.values() if s.ssrc == victim.ssrc and s.flow_id == victim.flow_id)
    assert st.auth_failed == 1 and st.failed_frames == [victim.frame]
    assert st.status == "partly authenticated"


def test_key_spec_and_inline_parsing():
    ssrc, key = parse_key_spec(
        "0x20c23467=AES_CM_128_HMAC_SHA1_80 inline:FfLxRxclZ/lNM/g5MNSZgmvAUzR/pgSIVyOHUHji"
    )
    assert ssrc == 0x20C23467 and key.profile.dtls_name == "SRTP_AES128_CM_HMAC_SHA1_80"
    assert len(key.key) == 16 and len(key.salt) == 14
    assert (
        parse_key_spec("AES_CM_128_HMAC_SHA1_80:inline:FfLxRxclZ/lNM/g5MNSZgmvAUzR/pgSIVyOHUHji")[0] is None
    )
    with pytest.raises(DecodeError) as e:
        parse_inline("AES_CM_128_HMAC_SHA1_80", "inline:FfLxRxclZ/lNM/g5MNSZgmvAUzR/pgSIVyOH")
    assert e.value.name == "sdes_key_length"
    for bad in (
        "",
        "0x1ffffffff=AES_CM_128_HMAC_SHA1_80 inline:FfLxRxclZ/lNM/g5MNSZgmvAUzR/pgSIVyOHUHji",
        "AES_CM_128_HMAC_SHA1_80",
    ):
        with pytest.raises(DecodeError) as e:
            parse_key_spec(bad)
        assert e.value.name == "srtp_key_spec"
    with pytest.raises(DecodeError) as e:
        profile("SRTP_NULL_HMAC_SHA1_80")
    assert e.value.name == "srtp_unknown_profile"


def test_dtls12_exporter_layout():
    # RFC 5764 §4.2: the four parts are taken in order client key, server key, client salt, server salt
    p = profile("SRTP_AES128_CM_HMAC_SHA1_80")
    ms, cr, sr = bytes(range(48)), bytes(range(32)), bytes(range(32, 64))
    material = tls12_prf(ms, b"EXTRACTOR-dtls_srtp", cr + sr, 60)
    client, server = dtls12_srtp_keys(ms, cr, sr, p)
    assert client.key == material[:16] and server.key == material[16:32]
    assert client.salt == material[32:46] and server.salt == material[46:60]


def test_bad_user_key_is_an_input_error(sample):
    cap = rtcforensics.load(sample("sdes_plain_rtp"), progress=False)
    with pytest.raises(CaptureError) as e:
        cap.decrypt(keys=["1=AES_CM_128_HMAC_SHA1_80 inline:not-base64!!"])
    assert "base64" in str(e.value)


REALCAP_KEYS = [
    "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap",
    "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap",
    "veondigital_srtp_decoder/TCP_call_1.pcap",
    "veondigital_srtp_decoder/udp_call_02_03_client.pcap",
]


@pytest.mark.realcaps
@pytest.mark.parametrize("capture", REALCAP_KEYS)
def test_published_sdes_keys_on_third_party_calls(realcaps: Path, capture, tmp_path):
    published = [k for k in json.loads((realcaps / "sdes_keys.json").read_text()) if k["capture"] == capture]
    keys = [f"{k['ssrc']}={k['suite']} inline:{k['inline_key_b64']}" for k in published]
    res = rtcforensics.load(realcaps / capture, progress=False).decrypt(keys=keys)
    res.write(tmp_path)
    rtp = res.streams[res.streams.rtp_packets > 0]
    verified = rtp[rtp.status == "authenticated"]
    assert len(verified) >= 1
    for r in verified.itertuples():
        # every packet of a stream whose key authenticates verifies: no failure, nothing lost
        assert r.auth_failed == 0 and r.authenticated == r.rtp_packets + r.rtcp_packets
        assert r.audio_dbfs > -60  # decoded audio, not silence
    # real audio after decryption is not taken for an end-to-end-encrypted payload
    assert not verified.e2ee_suspected.fillna(False).any()
    # a published key that belongs to no SSRC of the call decrypts nothing
    published_ssrcs = {int(k["ssrc"], 16) for k in published}
    assert set(verified.ssrc.astype(int)) <= published_ssrcs


def test_relayed_call_decrypts_on_both_turn_legs(sample, truth):
    # relay-only through coturn: each packet crosses the wire twice inside ChannelData (client<->TURN per peer);
    # each leg is its own stream and must authenticate with the keys of the one DTLS-SRTP handshake
    t = truth("turn_relay_longterm")
    path = sample("turn_relay_longterm")
    res = rtcforensics.load(path, keylog=path.with_suffix(".keylog"), progress=False).decrypt()
    rtp = res.streams[res.streams.rtp_packets > 0]
    for s in t["rtp"]:
        legs = rtp[rtp.ssrc == s["ssrc"]]
        assert len(legs) == 2 and legs.flow_id.nunique() == 2
        assert (legs.status == "authenticated").all() and (legs.auth_failed == 0).all()
        assert (legs.rtp_packets == s["packets"]).all()
