"""DTLS record / handshake decoders on real captures (values cross-checked with tshark 4.0.17)."""

from __future__ import annotations

import pytest
from dtls_realcap import dtls_datagrams

from rtcforensics.anomalies import AnomalyLog
from rtcforensics.dissect.dtls import (
    DTLS1_2,
    DTLS1_3,
    ContentType,
    DtlsTracker,
    HandshakeType,
    Reassembler,
    iana_name,
    parse_client_hello,
    parse_fragments,
    parse_records,
    parse_server_hello,
)
from rtcforensics.errors import DecodeError, TruncatedError

pytestmark = pytest.mark.realcaps

CHROME = "pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap"
FIREFOX = "pion_dtls/capture-firefox-Mozilla_Firefox_125.0.pcap"


def frame(realcaps, cap, number):
    return next(d for d in dtls_datagrams(realcaps / cap) if d.frame == number)


def client_hello_body(realcaps, cap, number):
    rec = next(parse_records(frame(realcaps, cap, number).data))
    (frag,) = parse_fragments(rec.payload)
    assert frag.msg_type == HandshakeType.CLIENT_HELLO
    return frag.body


def test_records_of_a_flight(realcaps):
    # Chrome 123 frame 3 (pion's flight): ServerHello, Certificate, ServerKeyExchange, CertificateRequest,
    # ServerHelloDone, each in its own DTLS 1.2 record (tshark: dtls.record.version 0xfefd x5, types 2,11,12,13,14)
    recs = list(parse_records(frame(realcaps, CHROME, 3).data))
    assert [r.content_type for r in recs] == [22] * 5
    assert {r.version for r in recs} == {DTLS1_2}
    types = [parse_fragments(r.payload)[0].msg_type for r in recs]
    assert types == [2, 11, 12, 13, 14]
    # frame 4: client's Certificate, ClientKeyExchange, CertificateVerify, CCS, then the epoch-1 Finished
    recs = list(parse_records(frame(realcaps, CHROME, 4).data))
    assert [r.content_type for r in recs] == [22, 22, 22, 20, 22]
    assert [r.epoch for r in recs] == [0, 0, 0, 0, 1]


def test_unified_header_with_connection_id(realcaps):
    # zeek dtls13-cid: the client asked for CID "I am a client CID" (17 bytes); the server's encrypted
    # records carry it in the RFC 9147 unified header 0b001CSLEE (0x3e: C, S, L set, epoch bits 2)
    dg = frame(realcaps, "zeek/dtls13-cid.pcap", 8)
    with pytest.raises(DecodeError) as e:
        list(parse_records(dg.data))
    assert e.value.name == "dtls_cid_unknown"
    recs = list(parse_records(dg.data, cid_len=17))
    assert recs[0].unified and recs[0].content_type is None
    assert recs[0].cid == b"I am a client CID"
    assert recs[0].epoch == 2 and recs[0].seq_bits == 16
    assert sum(len(r.header) + len(r.payload) for r in recs) == len(dg.data)


def test_tracker_learns_cid_length_from_hellos(realcaps):
    an = AnomalyLog()
    t = DtlsTracker(an).feed_all(dtls_datagrams(realcaps / "zeek/dtls13-cid.pcap"))
    assert an.rows == []
    hs = [h for h in t.handshakes if h.server_hello is not None and h.server_hello.ext.connection_id]
    assert len(hs) == 1
    assert hs[0].client_hello.ext.connection_id == b"I am a client CID"
    assert hs[0].server_hello.ext.connection_id == b"fancy server CID"
    assert hs[0].encrypted_records == {"server": 7, "client": 4}


def test_client_hello_firefox(realcaps):
    ch = parse_client_hello(client_hello_body(realcaps, FIREFOX, 1))
    # tshark: dtls.handshake.random, extension types, groups, signature algorithms, use_srtp, ALPN
    assert ch.version == DTLS1_2
    assert ch.random.hex() == "a9d2765eaa8856d81195252cd120135b1f1a67c059a5b73d1bd3ed02c07421b8"
    assert ch.session_id == b"" and ch.cookie == b""
    assert ch.cipher_suites == [0xC02B, 0xC02F, 0xCCA9, 0xCCA8, 0xC00A, 0xC009, 0xC013, 0xC014]
    assert ch.compression == [0]
    assert ch.ext.types == [23, 65281, 10, 11, 16, 13, 28, 14]
    assert ch.ext.supported_groups == [0x1D, 0x17, 0x18]
    assert ch.ext.signature_algorithms[:4] == [0x0403, 0x0503, 0x0603, 0x0203]
    assert len(ch.ext.signature_algorithms) == 15
    assert ch.ext.srtp_profiles == [7, 8, 1, 2] and ch.ext.srtp_mki == b""
    assert [iana_name("srtp_profiles", p) for p in ch.ext.srtp_profiles] == [
        "SRTP_AEAD_AES_128_GCM",
        "SRTP_AEAD_AES_256_GCM",
        "SRTP_AES128_CM_HMAC_SHA1_80",
        "SRTP_AES128_CM_HMAC_SHA1_32",
    ]
    assert ch.ext.ems and ch.ext.renegotiation_info == b""
    assert ch.ext.alpn == ["webrtc", "c-webrtc"]
    assert ch.ext.sni is None


def test_hello_verify_request_and_fragmented_client_hello(realcaps):
    # zeek dtls1_2: CH in two fragments (frames 1-2: offsets 0/203 of 287), HelloVerifyRequest (3, cookie
    # 4c28...), CH with cookie again in two fragments (4-5: 0/203 of 307)
    t = DtlsTracker().feed_all(dtls_datagrams(realcaps / "zeek/dtls1_2.pcap"))
    (hs,) = t.handshakes
    assert hs.hello_verify_cookie.hex() == "4c281da5216e0bcdc6d35770176ee12f676baa9b"
    assert hs.client_hello.cookie == hs.hello_verify_cookie
    assert hs.client_hellos == 2
    assert hs.retransmissions == 0
    assert len(hs.client_hello.cipher_suites) > 50  # only complete after the second fragment
    assert hs.kx_group == 0x17  # ServerKeyExchange named_curve (tshark: 0x0017)


def test_certificate_reassembled_from_eight_fragments(realcaps):
    # nDPI dtls_certificate_fragments, second flow: a 1712-byte Certificate in 8 fragments over frames
    # 23-24 (tshark: fragment_offset 0,140,...,1526), then a client Certificate in frame 25
    dgs = [d for d in dtls_datagrams(realcaps / "nDPI/dtls_certificate_fragments.pcap") if d.frame >= 21]
    t = DtlsTracker().feed_all(dgs)
    (hs,) = t.handshakes
    import hashlib

    assert hashlib.sha256(hs.certs["server"][0]).hexdigest() == (
        "4a799416443fbd05415ac720f312547000735d33002d2c809b39e19f2da74987"
    )
    # the same fragments fed in reverse order rebuild the same message
    frags = []
    for dg in (d for d in dgs if d.frame in (23, 24)):
        for rec in parse_records(dg.data):
            frags += [f for f in parse_fragments(rec.payload) if f.msg_type == HandshakeType.CERTIFICATE]
    assert len(frags) == 8
    ra = Reassembler()
    outs = [ra.add(f) for f in reversed(frags)]
    assert [o is not None for o in outs] == [False] * 7 + [True]
    cert_body = outs[-1][2]
    assert hashlib.sha256(cert_body[6 : 6 + len(hs.certs["server"][0])]).hexdigest().startswith("4a799416")
    # and once complete, a repeated fragment is a retransmission, not a new message
    assert ra.add(frags[3]) is None and ra.retransmissions == 1


def test_fragment_overrun_is_a_decode_error(realcaps):
    rec = next(parse_records(frame(realcaps, CHROME, 1).data))
    bad = bytearray(rec.payload)
    bad[6:9] = (0x10).to_bytes(3, "big")  # fragment_offset 16 + full length > message length
    with pytest.raises(DecodeError) as e:
        parse_fragments(bytes(bad))
    assert e.value.name == "dtls_fragment_overrun"
    assert str(e.value) == "DTLS handshake fragment exceeds message length"


def test_truncated_datagram_keeps_earlier_records(realcaps):
    data = frame(realcaps, CHROME, 3).data
    got: list = []
    with pytest.raises(TruncatedError) as e:
        got.extend(parse_records(data[:-10]))
    assert len(got) == 4  # ServerHelloDone is the one cut
    assert e.value.name == "dtls_record_truncated"
    assert str(e.value) == "DTLS record length exceeds the datagram"


def test_truncated_and_garbled_datagrams_become_anomalies(realcaps):
    dgs = dtls_datagrams(realcaps / CHROME)
    dgs[2] = type(dgs[2])(**{**{s: getattr(dgs[2], s) for s in dgs[2].__slots__}, "data": dgs[2].data[:-10]})
    garbled = bytearray(dgs[3].data)
    garbled[0] = 0x50  # not a content type
    dgs[3] = type(dgs[3])(**{**{s: getattr(dgs[3], s) for s in dgs[3].__slots__}, "data": bytes(garbled)})
    an = AnomalyLog()
    (hs,) = DtlsTracker(an).feed_all(dgs).handshakes
    names = [(r["frame"], r["name"]) for r in an.rows]
    assert (3, "dtls_record_truncated") in names
    assert (4, "dtls_bad_content_type") in names
    # what came before the damage is kept: the server's certificate arrived in frame 3's second record
    assert hs.server_hello is not None and "server" in hs.certs
    with pytest.raises(DecodeError):
        DtlsTracker(AnomalyLog(), strict=True).feed_all(dgs)


def test_dtls13_server_hello_and_hello_retry(realcaps):
    # nDPI dtls.pcap localhost flow: frame 8 is a HelloRetryRequest (the RFC 8446 magic random),
    # frame 10 the ServerHello selecting 0xfefc with key_share secp256r1 (tshark: 0x0017 = 23)
    body = parse_fragments(next(parse_records(frame(realcaps, "nDPI/dtls.pcap", 8).data)).payload)[0].body
    hrr = parse_server_hello(body)
    assert hrr.is_hello_retry_request and hrr.selected_version == DTLS1_3
    body = parse_fragments(next(parse_records(frame(realcaps, "nDPI/dtls.pcap", 10).data)).payload)[0].body
    sh = parse_server_hello(body)
    assert not sh.is_hello_retry_request
    assert sh.random.hex() == "5b735f4ed19246471d47f79878fb2d2e13a895100d8629d8c3ac6e2a66ca944b"
    assert sh.selected_version == DTLS1_3 and sh.ext.key_share_groups == [23]
    assert iana_name("cipher_suites", sh.cipher_suite) == "TLS_AES_128_GCM_SHA256"


def test_dtls13_handshake_with_hello_retry(realcaps):
    # the DTLS 1.3 localhost flow of nDPI dtls.pcap: CH, HRR, CH, SH, then unified-header records
    dgs = [d for d in dtls_datagrams(realcaps / "nDPI/dtls.pcap") if d.sport == 40983 or d.dport == 40983]
    (hs,) = DtlsTracker().feed_all(dgs).handshakes
    assert hs.client_hello.ext.supported_versions == [DTLS1_3]
    assert hs.client_hello.ext.key_share_groups == [0x17, 0x100]
    assert hs.hello_retry is not None and hs.version == DTLS1_3
    assert hs.encrypted_records["client"] > 0  # unified-header records after the hellos


def test_hybrid_pq_key_share_named(realcaps):
    # mutate the real DTLS 1.3 ClientHello of zeek dtls13-wolfssl: its secp256r1 key share (tshark: 23)
    # becomes X25519MLKEM768 (0x11EC), the group Chromium sends today
    body = bytearray(client_hello_body(realcaps, "zeek/dtls13-wolfssl.pcap", 1))
    ch = parse_client_hello(bytes(body))
    assert ch.ext.key_share_groups == [0x17]
    at = bytes(body).rfind(bytes([0, 51]))  # key_share is the last extension
    body[at + 6 : at + 8] = (0x11EC).to_bytes(2, "big")  # ext type, ext len, shares len, then the first group
    ch = parse_client_hello(bytes(body))
    assert ch.ext.key_share_groups[0] == 0x11EC
    assert iana_name("groups", 0x11EC) == "X25519MLKEM768"
    assert iana_name("groups", 0x11EB) == "SecP256r1MLKEM768"


def test_alert_in_clear(realcaps):
    # nDPI dtls.pcap frame 6 (GTP-tunnelled Facebook flow): fatal unexpected_message (tshark: level 2, desc 10)
    dgs = [d for d in dtls_datagrams(realcaps / "nDPI/dtls.pcap") if d.frame in (3, 4, 5, 6)]
    (hs,) = DtlsTracker().feed_all(dgs).handshakes
    assert hs.alerts == [
        {
            "frame": 6,
            "side": "client",
            "level": "fatal",
            "description": "unexpected_message",
            "encrypted": False,
            "source": "clear",
        }
    ]


def test_encrypted_alert_marked(realcaps):
    # zeek dtls1_2 frame 16: the client's close alert travels at epoch 1 (encrypted)
    (hs,) = DtlsTracker().feed_all(dtls_datagrams(realcaps / "zeek/dtls1_2.pcap")).handshakes
    assert hs.alerts == [
        {"frame": 16, "side": "client", "level": None, "description": None, "encrypted": True}
    ]
    assert hs.finished == {"client", "server"} and hs.ccs == {"client", "server"}


def test_old_openssl_version(realcaps):
    (hs,) = DtlsTracker().feed_all(dtls_datagrams(realcaps / "nDPI/dtls_old_version.pcapng")).handshakes
    assert hs.version == 0x0100 and hs.client_hello.version == 0x0100
    assert hs.hello_verify_cookie is not None


def test_ack_content_type_recognised(realcaps):
    # RFC 9147 §7: content type 26; a real plaintext record with its type byte changed to 26
    data = bytearray(frame(realcaps, CHROME, 5).data)
    data[0] = 26
    rec = next(parse_records(bytes(data)))
    assert rec.content_type == ContentType.ACK and iana_name("content_types", 26) == "ack"
    dgs = dtls_datagrams(realcaps / CHROME)
    dgs[4] = type(dgs[4])(**{**{s: getattr(dgs[4], s) for s in dgs[4].__slots__}, "data": bytes(data)})
    (hs,) = DtlsTracker().feed_all(dgs).handshakes
    assert (5, "server", "ack", "clear") in hs.messages


@pytest.mark.parametrize("cap", [CHROME, "zeek/dtls13-cid.pcap", "nDPI/dtls_certificate_fragments.pcap"])
def test_mutated_datagrams_never_crash(realcaps, cap):
    """Every byte of the first datagrams set to 0x00 / 0xff / flipped, and every truncation: the tracker
    records anomalies (DecodeError) and never raises anything else."""
    base = dtls_datagrams(realcaps / cap)[:8]
    Dg = type(base[0])

    def run(k, data):
        dgs = list(base)
        dgs[k] = Dg(**{**{s: getattr(base[k], s) for s in base[k].__slots__}, "data": data})
        an = AnomalyLog()
        DtlsTracker(an).feed_all(dgs)
        return an

    names = set()
    for k, d in enumerate(base):
        for pos in range(min(len(d.data), 160)):
            for v in (0x00, 0xFF, d.data[pos] ^ 0x80):
                names |= {r["name"] for r in run(k, d.data[:pos] + bytes([v]) + d.data[pos + 1 :]).rows}
        for cut in range(0, len(d.data), 7):
            names |= {r["name"] for r in run(k, d.data[:cut]).rows}
    assert names  # the mutations were noticed, as named anomalies
    assert all(n.startswith(("dtls_", "x509_")) for n in names), names


def test_one_byte_fragments_and_empty_declarations_are_cheap(realcaps):
    # issue 19: the real 1712-byte Certificate of dtls_certificate_fragments cut into one-byte fragments
    # (shuffled) rebuilds the same message, and fragments that declare a 1 MiB message without bytes hold no
    # 1 MiB buffer each
    import random
    import sys

    from rtcforensics.dissect.dtls import Fragment

    dgs = [
        d for d in dtls_datagrams(realcaps / "nDPI/dtls_certificate_fragments.pcap") if d.frame in (23, 24)
    ]
    frags = [
        f
        for dg in dgs
        for rec in parse_records(dg.data)
        for f in parse_fragments(rec.payload)
        if f.msg_type == HandshakeType.CERTIFICATE
    ]
    whole = next(o for o in map(Reassembler().add, frags) if o is not None)
    body = whole[2]
    tiny = [
        Fragment(frags[0].msg_type, len(body), frags[0].message_seq, i, 1, body[i : i + 1])
        for i in range(len(body))
    ]
    random.Random(7).shuffle(tiny)
    ra = Reassembler()
    outs = [ra.add(f) for f in tiny]
    assert outs[-1] == whole and all(o is None for o in outs[:-1])
    empty = Reassembler()
    for seq in range(2000):
        assert empty.add(Fragment(frags[0].msg_type, 1 << 20, seq, 0, 0, b"")) is None
    held = sum(sys.getsizeof(p.pieces) + sum(len(b) for _o, b in p.pieces) for p in empty._msgs.values())
    assert held < 2000 * 1024  # not 2000 MiB
