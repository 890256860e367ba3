"""JA3 / JA3S against Wireshark's dtls.handshake.ja3 / ja3s (tshark 4.0.17); JA4 against its specification."""

from __future__ import annotations

import pytest
from dtls_realcap import dtls_datagrams

from rtcforensics.dissect.dtls import parse_client_hello, parse_fragments, parse_records, parse_server_hello
from rtcforensics.dissect.ja import ja3, ja3s, ja4, ja4_from_parts, ja4_r


def hello(realcaps, cap, number, msg_type):
    dg = next(d for d in dtls_datagrams(realcaps / cap) if d.frame == number)
    for rec in parse_records(dg.data):
        for frag in parse_fragments(rec.payload):
            if frag.msg_type == msg_type and frag.frag_length == frag.length:
                return frag.body
    raise LookupError(number)


# (capture, frame, tshark dtls.handshake.ja3)
JA3 = [
    ("pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap", 1, "c14667d7da3e6f7a7ab5519ef78c2452"),
    ("pion_dtls/capture-firefox-Mozilla_Firefox_125.0.pcap", 1, "3e12a43c7535bb32beac3928f8fe905d"),
    ("nDPI/dtls.pcap", 1, "bd743610892cec1efed851b2b5efd4f5"),
    ("nDPI/dtls.pcap", 3, "b2a6643b6798940d25020cb4abe9e2aa"),
    ("nDPI/dtls.pcap", 7, "320d2222212f652e923c3458b463c5b4"),
    ("nDPI/dtls.pcap", 9, "0948eb2de8dfddd510d5b97930d3ad1b"),
    ("zeek/dtls13-wolfssl.pcap", 1, "ab7ea25b30fb7a01b2705f9286cdca5b"),
    ("zeek/dtls13-wolfssl.pcap", 3, "2c5a35379c12a8c3726da8cfb4680efb"),
    ("nDPI/dtls_old_version.pcapng", 1, "be3660f0bdab46442f52b205919fee37"),
    ("nDPI/stun_dtls_unidirectional_client.pcap", 3, "f5eee7bc59657db39e2b9cdd401d78b7"),
    ("nDPI/dtls_certificate_fragments.pcap", 21, "681eb4fb79ccb6d60d35fa502c279d42"),
]
JA3S = [
    ("nDPI/geforcenow.pcapng", 62, "a9e0318114bb46bdbeef6d54e42c915f"),
    ("nDPI/stun_google_meet.pcapng", 12, "1f5d6a6d0bc5d514dd84d13e6283d309"),
    ("nDPI/stun_zoom.pcapng", 15, "323ab23be4a686962b978f9ca6735add"),
    ("nDPI/dtls.pcap", 10, "c2c89a8b10ca74ec5a350a59fb762fb6"),
    ("nDPI/dtls.pcap", 8, "ecfd4f82776364c3015565f97e8c3897"),
]


@pytest.mark.realcaps
@pytest.mark.parametrize("cap,number,expected", JA3)
def test_ja3_equals_wireshark(realcaps, cap, number, expected):
    assert ja3(parse_client_hello(hello(realcaps, cap, number, 1)))[1] == expected


@pytest.mark.realcaps
@pytest.mark.parametrize("cap,number,expected", JA3S)
def test_ja3s_equals_wireshark(realcaps, cap, number, expected):
    assert ja3s(parse_server_hello(hello(realcaps, cap, number, 2)))[1] == expected


@pytest.mark.realcaps
def test_ja3_string_chrome(realcaps):
    ch = parse_client_hello(hello(realcaps, "pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap", 1, 1))
    # tshark dtls.handshake.ja3_full
    assert ja3(ch)[0] == (
        "65277,49195-49199-52393-52392-49161-49171-49162-49172-156-47-53,23-65281-10-11-35-13-14,29-23-24,0"
    )


@pytest.mark.realcaps
def test_grease_removed(realcaps):
    body = bytearray(hello(realcaps, "pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap", 1, 1))
    ch = parse_client_hello(bytes(body))
    at = bytes(body).index(bytes.fromhex("c02bc02f"))
    body[at : at + 2] = bytes.fromhex("3a3a")  # first suite replaced by a GREASE value
    g = parse_client_hello(bytes(body))
    assert g.cipher_suites[0] == 0x3A3A
    assert ja3(g)[0] == ja3(ch)[0].replace("49195-", "")
    assert ja4(g).startswith("dd2i1007")  # one cipher fewer: GREASE does not count


def test_ja4_specification_example():
    # technical_details/JA4.md: the worked example's sorted lists and its published hashes
    ciphers = [
        "002f",
        "0035",
        "009c",
        "009d",
        "1301",
        "1302",
        "1303",
        "c013",
        "c014",
        "c02b",
        "c02c",
        "c02f",
        "c030",
        "cca8",
        "cca9",
    ]
    exts = [
        "0005",
        "000a",
        "000b",
        "000d",
        "0012",
        "0015",
        "0017",
        "001b",
        "0023",
        "002b",
        "002d",
        "0033",
        "4469",
        "ff01",
    ]
    sigs = ["0403", "0804", "0401", "0503", "0805", "0501", "0806", "0601"]
    assert ja4_from_parts("t13d1516h2", ciphers, exts, sigs) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4_from_parts("t13d1516h2", ciphers, exts, []).endswith("_6d807ffa2a79")
    assert ja4_from_parts("t13i0000h2", [], [], []) == "t13i0000h2_000000000000_000000000000"


@pytest.mark.realcaps
def test_ja4_dtls(realcaps):
    # Firefox 125: DTLS 1.2 (no supported_versions) -> "d" + "d2", no SNI -> "i", 8 suites, 8 extensions,
    # ALPN "webrtc" -> "wc"
    ch = parse_client_hello(hello(realcaps, "pion_dtls/capture-firefox-Mozilla_Firefox_125.0.pcap", 1, 1))
    assert ja4(ch).startswith("dd2i0808wc_")
    raw = ja4_r(ch)
    assert raw.split("_")[1] == "c009,c00a,c013,c014,c02b,c02f,cca8,cca9"
    assert raw.split("_")[2] == "000a,000b,000d,000e,0017,001c,ff01"  # ALPN (0010) left out of the hash
    # wolfSSL DTLS 1.3: supported_versions {0xfefc} -> "d3"
    ch = parse_client_hello(hello(realcaps, "zeek/dtls13-wolfssl.pcap", 1, 1))
    assert ja4(ch)[:4] == "dd3i"


# JA4 cross-checked with the independent ja4plus 1.4.0 (generate_ja4 fed the same hello fields)
JA4 = [
    ("pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap", 1, "dd2i110700_c45550529adf_d9dd6182da81"),
    ("pion_dtls/capture-firefox-Mozilla_Firefox_125.0.pcap", 1, "dd2i0808wc_c6c2b6ec87e0_06b1ae923e2a"),
    ("nDPI/dtls.pcap", 7, "dd3i270600_991e33d7eb74_10f9deb96590"),
    ("zeek/dtls13-wolfssl.pcap", 1, "dd3i270500_991e33d7eb74_06a427f2011b"),
    ("nDPI/stun_dtls_unidirectional_client.pcap", 3, "dd1i350400_23b9269eae60_dbc12469f409"),
]


@pytest.mark.realcaps
@pytest.mark.parametrize("cap,number,expected", JA4)
def test_ja4_equals_ja4plus(realcaps, cap, number, expected):
    assert ja4(parse_client_hello(hello(realcaps, cap, number, 1))) == expected


def test_ja4_dtls13_and_12_offered_is_d2(sample):
    """Chromium offers supported_versions {0xfefc, 0xfefd}: the spec's "highest value" is 0xfefd -> "d2"
    (ja4plus 1.4.0 gives the same string)."""
    import rtcforensics
    from rtcforensics.tables.dtls import tracker

    cap = rtcforensics.load(sample("browsers_chromium"), progress=False)
    ch = next(h.client_hello for h in tracker(cap).handshakes if h.client_hello is not None)
    assert ch.ext.supported_versions == [0xFEFC, 0xFEFD]
    assert ja4(ch) == "dd2i140900_fa23b50283d1_01b4b87481e4"
