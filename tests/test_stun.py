"""rtcforensics.dissect.stun: RFC 5769 test vectors, real third-party captures checked against tshark,
and malformed messages made by mutating real ones."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
from stun_realcaps import STUN_CAPTURES, stun_datagrams, tshark_counts, udp_payloads

from rtcforensics.dissect.stun import (
    ATTRIBUTE_CODES,
    ATTRIBUTES,
    Address,
    AttrType,
    ChannelData,
    StunClass,
    StunMessage,
    StunMethod,
    long_term_key,
    message_type,
)
from rtcforensics.errors import DecodeError, TruncatedError

# RFC 5769 §2.1-2.4, byte for byte.
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a6836765920202000080014"
    "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
RFC5769_RESPONSE_V4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f722000200008"
    "0001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96"
)
RFC5769_RESPONSE_V6 = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f722000200014"
    "0002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275"
    "bfe3ed4180280004c8fb0b4c"
)
RFC5769_LONG_TERM = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe3"
    "82b90000001500 1c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b"
    "6578616d706c652e6f726700000800 14f67024656dd64a3e02b8e0712e85c9a28ca89666".replace(" ", "")
)
RFC5769_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"

COTURN_UNIDIR = "nDPI/stun_dtls_rtp_unidir.pcapng"
GOOGLE_MEET = "nDPI/stun_google_meet.pcapng"
PCMA = "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap"
TURN_UDP = "veondigital_srtp_decoder/udp_call_02_03_client.pcap"


def _message(realcaps: Path, capture: str, frame: int) -> bytes:
    return next(d.data for d in stun_datagrams(realcaps / capture) if d.frame == frame)


def _tshark_fields(path: Path, *fields: str, filt: str = "stun") -> dict[int, list[list[str]]]:
    args = ["tshark", "-r", str(path), "-Y", filt, "-T", "fields", "-E", "occurrence=a", "-e", "frame.number"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = {}
    for line in out.splitlines():
        num, *vals = line.split("\t")
        rows[int(num)] = [v.split(",") if v else [] for v in vals]
    return rows


# -- RFC 5769 ------------------------------------------------------------------------------------------


def test_rfc5769_sample_request() -> None:
    msg = StunMessage.parse(RFC5769_REQUEST)
    assert (msg.method, msg.cls, msg.classic) == (StunMethod.BINDING, StunClass.REQUEST, False)
    assert msg.txid == "b7e7a701bc34d686fa87dfae"
    assert msg.attribute_names == [
        "SOFTWARE",
        "PRIORITY",
        "ICE-CONTROLLED",
        "USERNAME",
        "MESSAGE-INTEGRITY",
        "FINGERPRINT",
    ]
    assert msg.get(AttrType.SOFTWARE) == "STUN test client"
    assert msg.get(AttrType.PRIORITY) == 0x6E0001FF
    assert msg.get(AttrType.ICE_CONTROLLED) == 0x932FF9B151263B36
    assert msg.get(AttrType.USERNAME) == "evtj:h6vY"
    assert msg.fingerprint_ok is True
    assert msg.check_integrity(RFC5769_PASSWORD) is True
    assert msg.check_integrity(b"not the password") is False


@pytest.mark.parametrize(
    "data, expected",
    [
        (RFC5769_RESPONSE_V4, Address(4, "192.0.2.1", 32853)),
        (RFC5769_RESPONSE_V6, Address(6, "2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769_responses_xor_mapped(data: bytes, expected: Address) -> None:
    msg = StunMessage.parse(data)
    assert (msg.method_name, msg.class_name) == ("Binding", "success")
    assert msg.get(AttrType.SOFTWARE) == "test vector"
    assert msg.get(AttrType.XOR_MAPPED_ADDRESS) == expected
    assert msg.fingerprint_ok is True
    assert msg.check_integrity(RFC5769_PASSWORD) is True
    assert f"XOR-MAPPED-ADDRESS: {expected}" in msg.format()


def test_rfc5769_long_term_credentials() -> None:
    msg = StunMessage.parse(RFC5769_LONG_TERM)
    assert msg.get(AttrType.USERNAME) == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert msg.get(AttrType.REALM) == "example.org"
    assert msg.get(AttrType.NONCE) == "f//499k954d6OL34oL9FSTvy64sA"
    assert msg.fingerprint_ok is None
    # RFC 5769 §2.4: the password after SASLprep is "TheMatrIX"
    assert msg.check_integrity(long_term_key(msg.get(AttrType.USERNAME), "example.org", "TheMatrIX")) is True
    assert msg.check_integrity(long_term_key(msg.get(AttrType.USERNAME), "example.org", "TheMatrix")) is False


# -- the table and the type field -------------------------------------------------------------------------


def test_attribute_table_covers_every_code_once() -> None:
    assert set(ATTRIBUTES) == {int(a) for a in AttrType}
    assert len(ATTRIBUTE_CODES) == len(ATTRIBUTES)  # IANA names are unique
    assert ATTRIBUTES[0x0020].name == "XOR-MAPPED-ADDRESS" and ATTRIBUTES[0x8028].name == "FINGERPRINT"


@pytest.mark.parametrize("method", list(StunMethod))
@pytest.mark.parametrize("cls", list(StunClass))
def test_message_type_roundtrip(method: StunMethod, cls: StunClass) -> None:
    data = bytearray(RFC5769_RESPONSE_V4)
    data[0:2] = message_type(method, cls).to_bytes(2, "big")
    msg = StunMessage.parse(bytes(data), strict=False)
    assert (msg.method, msg.cls) == (method, cls)


# -- real captures against tshark -----------------------------------------------------------------------


@pytest.mark.realcaps
@pytest.mark.parametrize("capture", STUN_CAPTURES)
def test_counts_by_method_and_class_equal_tsharks(realcaps: Path, capture: str) -> None:
    counts: Counter = Counter()
    for d in stun_datagrams(realcaps / capture):
        msg = StunMessage.parse(d.data, strict=False)
        counts[(msg.method, msg.class_name)] += 1
    assert counts == tshark_counts(realcaps / capture)
    assert sum(counts.values()) > 0


@pytest.mark.realcaps
def test_known_counts_coturn_unidir(realcaps: Path) -> None:
    counts = Counter(
        (StunMessage.parse(d.data).method_name, StunMessage.parse(d.data).class_name)
        for d in stun_datagrams(realcaps / COTURN_UNIDIR)
    )
    assert counts == {
        ("Send", "indication"): 22,
        ("Data", "indication"): 15,
        ("Allocate", "request"): 2,
        ("Allocate", "success"): 1,
        ("Allocate", "error"): 1,
        ("CreatePermission", "request"): 1,
        ("CreatePermission", "success"): 1,
    }


@pytest.mark.realcaps
@pytest.mark.parametrize(
    "capture", [COTURN_UNIDIR, PCMA, TURN_UDP, "nDPI/stun_dtls_rtp.pcapng", "nDPI/geforcenow.pcapng"]
)
def test_addresses_equal_tsharks(realcaps: Path, capture: str) -> None:
    """Every address attribute (plain and de-XORed), in wire order, as tshark shows it."""
    shark = _tshark_fields(realcaps / capture, "stun.att.ipv4", "stun.att.port")
    per_frame: dict[int, list[tuple[str, str]]] = {}
    for d in stun_datagrams(realcaps / capture):
        msg = StunMessage.parse(d.data, strict=False)
        addrs = [a.value for a in msg if isinstance(a.value, Address)]
        per_frame.setdefault(d.frame, []).extend((x.ip, str(x.port)) for x in addrs)
    checked = 0
    for frame, pairs in per_frame.items():
        ips, ports = shark[frame]
        assert pairs == list(zip(ips, ports)), frame
        checked += len(pairs)
    assert checked > 0


@pytest.mark.realcaps
def test_private_xor_peer_addresses_in_coturn_calls(realcaps: Path) -> None:
    peers = {
        a.ip
        for d in stun_datagrams(realcaps / PCMA)
        for a in StunMessage.parse(d.data).get_all(AttrType.XOR_PEER_ADDRESS)
    }
    assert {"192.168.1.130", "10.202.203.50"} <= peers
    relayed = [
        StunMessage.parse(d.data).get(AttrType.XOR_RELAYED_ADDRESS)
        for d in stun_datagrams(realcaps / COTURN_UNIDIR)
    ]
    assert Address(4, "10.1.0.3", 60815) in relayed


@pytest.mark.realcaps
@pytest.mark.parametrize("capture", STUN_CAPTURES)
def test_fingerprint_verdicts_equal_tsharks(realcaps: Path, capture: str) -> None:
    shark = _tshark_fields(realcaps / capture, "stun.att.crc32.status")
    ours: Counter = Counter()
    for d in stun_datagrams(realcaps / capture):
        ok = StunMessage.parse(d.data, strict=False).fingerprint_ok
        if ok is not None:
            ours[ok] += 1
    theirs = Counter(s == "1" for (statuses,) in shark.values() for s in statuses)
    assert ours == theirs


@pytest.mark.realcaps
@pytest.mark.parametrize("capture", [COTURN_UNIDIR, PCMA, TURN_UDP])
def test_software_and_error_codes_equal_tsharks(realcaps: Path, capture: str) -> None:
    shark = _tshark_fields(realcaps / capture, "stun.att.software", "stun.att.error")
    soft_t: Counter = Counter()
    err_t: Counter = Counter()
    for softs, errs in shark.values():
        soft_t.update(softs)
        err_t.update(int(e) for e in errs)
    soft_o: Counter = Counter()
    err_o: Counter = Counter()
    for d in stun_datagrams(realcaps / capture):
        msg = StunMessage.parse(d.data, strict=False)
        soft_o.update(msg.get_all(AttrType.SOFTWARE))
        err_o.update(e.code % 100 for e in msg.get_all(AttrType.ERROR_CODE))  # tshark: number within class
    assert soft_o == soft_t and err_o == err_t


@pytest.mark.realcaps
def test_coturn_versions_and_errors(realcaps: Path) -> None:
    msgs = [StunMessage.parse(d.data) for d in stun_datagrams(realcaps / COTURN_UNIDIR)]
    assert {m.get(AttrType.SOFTWARE) for m in msgs} - {None} == {"Coturn-4.5.0.3 'dan Eider'"}
    assert [m.get(AttrType.ERROR_CODE).code for m in msgs if m.cls == StunClass.ERROR] == [437]
    first = msgs[0]  # the open relay: an Allocate with no credentials at all...
    assert first.method_name == "Allocate" and first.attribute_names == ["REQUESTED-TRANSPORT", "FINGERPRINT"]
    assert first.get(AttrType.REQUESTED_TRANSPORT) == 17
    assert (msgs[1].class_name, msgs[1].txid) == ("success", first.txid)  # ...succeeds
    pcma = [StunMessage.parse(d.data) for d in stun_datagrams(realcaps / PCMA)]
    errs = [m for m in pcma if m.cls == StunClass.ERROR]
    assert {(m.get(AttrType.ERROR_CODE).code, m.get(AttrType.REALM)) for m in errs} == {
        (401, "steppechange.com")
    }


@pytest.mark.realcaps
def test_google_meet_ice_attributes(realcaps: Path) -> None:
    reqs = [StunMessage.parse(d.data) for d in stun_datagrams(realcaps / GOOGLE_MEET)]
    reqs = [m for m in reqs if m.cls == StunClass.REQUEST]
    assert sum(not m.has(AttrType.MESSAGE_INTEGRITY) for m in reqs) == 12
    checks = [m for m in reqs if m.has(AttrType.MESSAGE_INTEGRITY)]
    assert Counter(m.get(AttrType.PRIORITY) for m in checks) == {
        1845501695: 19,
        1853824767: 10,
        1853827327: 3,
    }
    assert {m.get(AttrType.ICE_CONTROLLING) for m in checks} == {0x48E5659350CD8CB5, 0x6ADAFE75C4DA4F6D}
    assert all(m.get(AttrType.GOOG_NETWORK_INFO) is not None for m in checks)


@pytest.mark.realcaps
def test_whatsapp_unknown_attributes_recorded(realcaps: Path) -> None:
    msg = StunMessage.parse(_message(realcaps, "nDPI/stun_wa_call.pcapng", 22), strict=False)
    assert msg.unknown_attributes == [0x4000] and msg.unknown_required
    assert len(msg.attributes[0].raw) == 150  # kept, not dropped
    assert "0x4000: " in msg.format() and "[unknown, comprehension-required]" in msg.format()
    # WhatsApp reuses RESERVATION-TOKEN's code with other lengths: recorded as errors, message kept
    assert [e.name for e in msg.errors] == ["stun_attr_length"] * 3
    assert msg.get(AttrType.XOR_RELAYED_ADDRESS) == Address(4, "93.57.123.227", 3478)
    with pytest.raises(DecodeError, match="STUN RESERVATION-TOKEN has invalid length 16"):
        StunMessage.parse(_message(realcaps, "nDPI/stun_wa_call.pcapng", 22))


@pytest.mark.realcaps
def test_channel_data_from_real_turn_call(realcaps: Path) -> None:
    shark = _tshark_fields(realcaps / TURN_UDP, "stun.channel", "stun.length", filt="stun.channel && udp")
    payloads = dict(udp_payloads(realcaps / TURN_UDP))
    seen = Counter()
    for frame, (channels, lengths) in shark.items():
        cd = ChannelData.parse(payloads[frame])
        assert (cd.channel, len(cd.data)) == (int(channels[0], 16), int(lengths[0]))
        seen[cd.channel] += 1
    assert set(seen) == {0x4000, 0x4001}
    good = payloads[min(shark)]
    with pytest.raises(TruncatedError) as e:
        ChannelData.parse(good[:-1][: len(good) - 2])
    assert e.value.name == "turn_channel_length"
    with pytest.raises(DecodeError) as e:
        ChannelData.parse(b"\x50" + good[1:])
    assert e.value.name == "turn_channel_number"


# -- malformed messages: mutations of real ones ----------------------------------------------------------


@pytest.fixture
def allocate_success(realcaps: Path) -> bytes:
    """Coturn 4.5.0.3 Allocate success: XOR-RELAYED, XOR-MAPPED, LIFETIME, SOFTWARE, FINGERPRINT."""
    data = _message(realcaps, COTURN_UNIDIR, 2)
    assert StunMessage.parse(data).fingerprint_ok is True
    return data


def _attr_offset(data: bytes, atype: int) -> int:
    return next(a.offset for a in StunMessage.parse(data, strict=False) if a.type == atype)


def test_truncated_message(allocate_success: bytes) -> None:
    with pytest.raises(TruncatedError) as e:
        StunMessage.parse(allocate_success[:-1])
    assert e.value.name == "stun_truncated"
    with pytest.raises(TruncatedError):
        StunMessage.parse(allocate_success[:19])


def test_last_byte_changed_breaks_fingerprint(allocate_success: bytes) -> None:
    msg = StunMessage.parse(allocate_success[:-1] + b"z")
    assert msg.fingerprint_ok is False


def test_trailing_data_and_not_stun(allocate_success: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        StunMessage.parse(allocate_success + b"z")
    assert e.value.name == "stun_trailing_data"
    with pytest.raises(DecodeError) as e:
        StunMessage.parse(b"\xc1" + allocate_success[1:])
    assert e.value.name == "stun_not_stun"


def test_xor_mapped_family_mismatch(allocate_success: bytes) -> None:
    off = _attr_offset(allocate_success, AttrType.XOR_MAPPED_ADDRESS)
    bad = bytearray(allocate_success)
    bad[off + 5] = 0x02  # claims IPv6 in an 8-byte value
    with pytest.raises(DecodeError) as e:
        StunMessage.parse(bytes(bad))
    assert (e.value.name, e.value.detail) == (
        "stun_attr_length",
        "STUN XOR-MAPPED-ADDRESS has invalid length for IPv6",
    )
    bad[off + 5] = 0x07
    with pytest.raises(DecodeError) as e:
        StunMessage.parse(bytes(bad))
    assert e.value.name == "stun_address_family"
    # not strict: the bad attribute is kept raw, everything else decoded, the error listed
    msg = StunMessage.parse(bytes(bad), strict=False)
    assert [x.name for x in msg.errors] == ["stun_address_family"]
    assert msg.get(AttrType.XOR_MAPPED_ADDRESS) is None
    assert msg.get(AttrType.XOR_RELAYED_ADDRESS) == Address(4, "10.1.0.3", 60815)
    assert msg.get(AttrType.SOFTWARE) == "Coturn-4.5.0.3 'dan Eider'"
    assert msg.fingerprint_ok is False


def test_attribute_overflow_keeps_earlier_attributes(allocate_success: bytes) -> None:
    off = _attr_offset(allocate_success, AttrType.SOFTWARE)
    bad = bytearray(allocate_success)
    bad[off + 2 : off + 4] = b"\xff\xf0"
    with pytest.raises(DecodeError) as e:
        StunMessage.parse(bytes(bad))
    assert e.value.name == "stun_attr_overflow"
    msg = StunMessage.parse(bytes(bad), strict=False)
    assert msg.attribute_names == ["XOR-RELAYED-ADDRESS", "XOR-MAPPED-ADDRESS", "LIFETIME"]
    assert msg.get(AttrType.LIFETIME) == 600


@pytest.mark.realcaps
def test_error_code_with_invalid_class(realcaps: Path) -> None:
    good = _message(realcaps, COTURN_UNIDIR, 4)  # 437 Allocation Mismatch
    assert StunMessage.parse(good).get(AttrType.ERROR_CODE).code == 437
    off = _attr_offset(good, AttrType.ERROR_CODE)
    bad = bytearray(good)
    bad[off + 6] = 0x07
    with pytest.raises(DecodeError) as e:
        StunMessage.parse(bytes(bad))
    assert e.value.name == "stun_error_code"


@pytest.mark.realcaps
def test_password_attribute_never_kept(realcaps: Path) -> None:
    good = _message(realcaps, COTURN_UNIDIR, 5)  # CreatePermission with USERNAME "username1"
    off = _attr_offset(good, AttrType.USERNAME)
    bad = bytearray(good)
    bad[off : off + 2] = AttrType.PASSWORD.to_bytes(2, "big")  # the same bytes as an RFC 3489 PASSWORD
    msg = StunMessage.parse(bytes(bad))
    pw = next(a for a in msg if a.type == AttrType.PASSWORD)
    assert pw.value is None and pw.raw == b""
    assert "username1" not in msg.format() and "PASSWORD: <redacted>" in msg.format()


@pytest.mark.realcaps
def test_classic_rfc3489_message_recognised(realcaps: Path) -> None:
    good = _message(realcaps, GOOGLE_MEET, 1)  # Binding request to stun.l.google.com: no MI, no FINGERPRINT
    classic = good[:4] + b"\x01\x02\x03\x04" + good[8:]  # no magic cookie
    msg = StunMessage.parse(classic)
    assert msg.classic and msg.txid == "01020304" + good[8:20].hex()
    assert msg.method_name == "Binding" and msg.class_name == "request"
    assert "classic RFC 3489" in msg.format()


# -- our own sample captures (coturn 4.6.1, aiortc): MESSAGE-INTEGRITY with the lab's credentials ----------


@pytest.mark.parametrize("name", ["turn_relay_longterm", "turn_internal_peer_allowed"])
def test_long_term_integrity_verifies_with_the_lab_password(sample, truth, name: str) -> None:
    facts = truth(name)
    turn, password = facts["turn"], facts["secrets"]["turn_password"]
    key = long_term_key(turn["username"], turn["realm"], password)
    wrong = long_term_key(turn["username"], turn["realm"], password + "x")
    verdicts = []
    for d in stun_datagrams(sample(name)):
        msg = StunMessage.parse(d.data)
        if msg.get(AttrType.USERNAME) == turn["username"]:  # authenticated client requests
            verdicts.append((msg.check_integrity(key), msg.check_integrity(wrong)))
    assert len(verdicts) >= 3 and set(verdicts) == {(True, False)}


def test_sample_captures_counts_equal_truth(sample, truth) -> None:
    """The generator's STUN/TURN counts (from coturn and aiortc) from the messages tshark finds on the wire."""
    from samples import sample_names

    checked = 0
    for name in sample_names():
        facts = truth(name).get("stun")
        if not facts:
            continue
        got = Counter()
        for d in stun_datagrams(sample(name)):
            msg = StunMessage.parse(d.data)
            got[f"{msg.method_name}/{msg.class_name}"] += 1
        assert dict(got) == facts, name
        checked += 1
    if not checked:
        pytest.skip("no sample capture with STUN truth")


@pytest.mark.realcaps
def test_unpadded_attributes_keep_username_and_integrity(realcaps: Path) -> None:
    # [MS-TURN] stacks (Teams, Skype for Business) do not pad attribute values: a Google Meet ICE check whose
    # USERNAME is not a multiple of 4 long, with its padding removed the MS-TURN way, still reads whole
    reqs = [
        d.data
        for d in stun_datagrams(realcaps / GOOGLE_MEET)
        if (m := StunMessage.parse(d.data)).cls == StunClass.REQUEST
        and m.has(AttrType.MESSAGE_INTEGRITY)
        and len(m.get(AttrType.USERNAME)) % 4
    ]
    good = reqs[0]
    msg = StunMessage.parse(good)
    bare, off = bytearray(good[:20]), 20
    for a in msg.attributes:
        bare += good[a.offset : a.offset + 4 + a.length]  # header and value, no padding
        off = a.offset + 4 + a.length + (-a.length % 4)
    assert off == len(good) and len(bare) < len(good)
    bare[2:4] = (len(bare) - 20).to_bytes(2, "big")
    got = StunMessage.parse(bytes(bare), strict=False)
    assert [e.name for e in got.errors if e.name != "stun_length"] == ["stun_attr_unpadded"]
    assert [a.type for a in got.attributes] == [a.type for a in msg.attributes]
    assert got.get(AttrType.USERNAME) == msg.get(AttrType.USERNAME)
    assert got.has(AttrType.MESSAGE_INTEGRITY) and got.get(AttrType.PRIORITY) == msg.get(AttrType.PRIORITY)
    with pytest.raises(DecodeError) as e:
        StunMessage.parse(bytes(bare))
    assert e.value.name in ("stun_length", "stun_attr_unpadded")
