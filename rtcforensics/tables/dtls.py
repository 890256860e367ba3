"""The `dtls` frame: one row per DTLS handshake (DTLS 1.0/1.2 in clear, DTLS 1.3 with or without keys), and
one per DTLS session whose handshake is not in the capture (``handshake_seen`` False: version and endpoints
from the record headers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..anomalies import AnomalyLog
from ..capture import Capture, register_frame
from ..dissect.dtls import (
    DTLS1_0,
    DTLS1_2,
    DTLS1_3,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    DtlsTracker,
    Handshake,
    iana_name,
    is_grease,
    version_name,
)
from ..dissect.ja import ja3, ja3s, ja4
from ..dissect.model import Datagram
from ..dissect.x509 import CertFacts, cert_facts, sha256_hex
from ..errors import DecodeError
from ..schema import frame_schema

_SRC = "category:clear,decrypted"


def _cert_columns(side: str) -> list[tuple[str, str, str]]:
    return [
        (
            f"{side}_cert_sha256",
            "string",
            (
                f"SHA-256 of the {side}'s leaf certificate DER, lowercase hex "
                "(compare with a=fingerprint); NA when not sent or encrypted"
            ),
        ),
        (f"{side}_cert_subject", "string", "leaf subject (RFC 4514)"),
        (f"{side}_cert_issuer", "string", "leaf issuer (RFC 4514)"),
        (f"{side}_cert_key_type", "string", "public key type: RSA, EC <curve>, Ed25519, ..."),
        (f"{side}_cert_key_bits", "Int32", "public key size in bits"),
        (f"{side}_cert_sig_alg", "string", "certificate signature algorithm, e.g. ecdsa-with-SHA256"),
        (f"{side}_cert_not_before", "ts", "validity start (UTC)"),
        (f"{side}_cert_not_after", "ts", "validity end (UTC)"),
        (
            f"{side}_cert_dates_clipped",
            "boolean",
            (
                "a validity date lay beyond what a timestamp can hold "
                "(e.g. RFC 5280's 9999-12-31 'no expiry') and was clipped to "
                "the last representable instant; the text is in anomalies"
            ),
        ),
        (
            f"{side}_cert_not_after_text",
            "string",
            "validity end as the certificate writes it (ISO 8601, UTC) when it was clipped; NA otherwise",
        ),
        (
            f"{side}_cert_self_signed",
            "boolean",
            "subject == issuer and the signature verifies with its own key",
        ),
        (f"{side}_chain_sha256", "object", "SHA-256 of every certificate of the chain as sent, leaf first"),
        (
            f"{side}_cert_source",
            _SRC,
            "how the certificate was read: clear (DTLS <= 1.2) or decrypted (keylog)",
        ),
    ]


DTLS = frame_schema(
    "dtls",
    "One row per DTLS handshake (per flow and client random). Facts read in clear from DTLS <= 1.2 and from "
    "the DTLS 1.3 hellos; certificates, SRTP profile and chosen extensions of DTLS 1.3 only with a keylog "
    "(otherwise NA and listed in encrypted_parts).",
    [
        ("flow_id", "Int64", "flow (bidirectional 5-tuple) carrying the handshake"),
        (
            "client",
            "string",
            (
                "ip:port that sent the ClientHello (outer address when via TURN); when "
                "handshake_seen is False: the endpoint that sent the first record (roles unknown)"
            ),
        ),
        ("server", "string", "ip:port of the other side"),
        (
            "handshake_seen",
            "boolean",
            (
                "a handshake message of this session is in the capture; False: the "
                "capture starts mid-session, the row stands for the protected records "
                "(version and endpoints from their headers, roles unknown)"
            ),
        ),
        (
            "via_turn",
            "category:channel,data_indication,send_indication",
            "how the DTLS travelled inside TURN, NA when direct",
        ),
        ("turn_peer", "string", "peer ip:port on the far side of the relay, when via TURN and known"),
        ("frames", "object", "Wireshark frame numbers of the datagrams of this handshake (and its session)"),
        ("first_frame", "Int64", "first of frames"),
        ("ts_first", "ts", "time of the first datagram"),
        ("ts_last", "ts", "time of the last datagram"),
        ("client_random", "string", "ClientHello random, lowercase hex (keylog key)"),
        ("client_hellos", "Int32", "ClientHellos sent (HelloVerifyRequest / HelloRetryRequest make 2)"),
        ("hello_verify", "boolean", "the server sent a HelloVerifyRequest cookie (DTLS <= 1.2)"),
        ("hello_retry", "boolean", "the server sent a HelloRetryRequest (DTLS 1.3)"),
        (
            "versions_offered",
            "object",
            "versions the client offered (supported_versions, else legacy_version)",
        ),
        (
            "version",
            "string",
            (
                "negotiated version: DTLS 1.0 / DTLS 1.2 / DTLS 1.3 / DTLS 0.9 (OpenSSL "
                "pre-0.9.8f, DTLS1_BAD_VER 0x0100); from the ServerHello, else from the headers "
                "of the protected (epoch > 0) records; NA when neither is seen"
            ),
        ),
        ("version_source", "category:handshake,record", "where version was read"),
        ("client_suites", "object", "cipher suites offered, IANA names, wire order, GREASE removed"),
        ("cipher_suite", "string", "cipher suite chosen by the server (IANA name)"),
        ("compression", "Int32", "compression method chosen (0 = null)"),
        ("srtp_profiles_offered", "object", "use_srtp protection profiles offered (IANA names)"),
        ("srtp_mki_offered", "string", "use_srtp MKI offered by the client, hex (empty: none)"),
        (
            "srtp_profile",
            "string",
            "SRTP protection profile chosen (ServerHello, or EncryptedExtensions in 1.3)",
        ),
        ("srtp_profile_source", _SRC, "how srtp_profile was read"),
        ("extensions_offered", "object", "ClientHello extensions, IANA names, wire order, GREASE removed"),
        ("extensions_chosen", "object", "ServerHello (+ EncryptedExtensions in 1.3) extensions, IANA names"),
        ("extensions_chosen_source", _SRC, "clear, or decrypted when EncryptedExtensions was read"),
        (
            "ems",
            "boolean",
            (
                "extended_master_secret negotiated (offered and echoed; NA for DTLS 1.3, "
                "whose key schedule always binds the transcript)"
            ),
        ),
        ("renegotiation_info", "boolean", "secure renegotiation (RFC 5746) negotiated; NA for DTLS 1.3"),
        ("supported_groups", "object", "groups offered (IANA names)"),
        ("key_share_groups", "object", "key_share groups the client sent shares for (e.g. X25519MLKEM768)"),
        (
            "key_exchange_group",
            "string",
            "group chosen: ServerHello key_share (1.3) or ServerKeyExchange (1.2)",
        ),
        ("signature_algorithms", "object", "signature schemes offered (IANA names)"),
        ("alpn", "object", "ALPN protocols offered"),
        ("sni", "string", "server_name offered"),
        ("connection_id_client", "string", "connection_id the client asked to receive (hex; RFC 9146)"),
        ("connection_id_server", "string", "connection_id the server asked to receive (hex)"),
        *_cert_columns("client"),
        *_cert_columns("server"),
        ("alerts", "object", "alerts: list of {frame, side, level, description, encrypted, source}"),
        (
            "completed",
            "boolean",
            (
                "handshake finished on the wire (both Finished seen, or client epoch-3 "
                "records in DTLS 1.3); False after a fatal alert, or ClientHellos without "
                "answer; NA when not observable"
            ),
        ),
        ("encrypted_parts", "object", "facts not observable without keys (certificate, srtp_profile, ...)"),
        (
            "decryption",
            "category:none,decrypted,undecryptable",
            "keylog use: none (no keylog given), decrypted, undecryptable (see decryption_detail)",
        ),
        ("decryption_detail", "string", "why decryption failed, when it did"),
        ("retransmissions", "Int32", "handshake fragments seen again (retransmitted flights)"),
        ("ja3", "string", "JA3 string of the ClientHello (decimal, GREASE removed)"),
        ("ja3_hash", "string", "MD5 of ja3"),
        ("ja3s", "string", "JA3S string of the ServerHello"),
        ("ja3s_hash", "string", "MD5 of ja3s"),
        ("ja4", "string", "JA4 of the ClientHello, protocol character 'd' (DTLS) as the JA4 spec defines"),
    ],
)


def _ts(ns: int | None) -> pd.Timestamp | None:
    return None if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC")


def _names(table: str, codes: list[int] | None) -> list[str] | None:
    if codes is None:
        return None
    return [iana_name(table, c) for c in codes if not is_grease(c)]


def _cert_row(
    side: str, chain: list[bytes] | None, source: str | None, anomalies: AnomalyLog, hs: Handshake
) -> dict[str, Any]:
    if not chain:
        return {}
    row: dict[str, Any] = {
        f"{side}_chain_sha256": [sha256_hex(c) for c in chain],
        f"{side}_cert_source": source,
    }
    try:
        f: CertFacts | None = cert_facts(chain[0])
    except DecodeError as e:
        anomalies.add(
            "dtls",
            e.name,
            f"{side} certificate: {e.detail}",
            frame=hs.frames[0] if hs.frames else None,
            flow_id=hs.flow_id,
        )
        f = None
    row[f"{side}_cert_sha256"] = sha256_hex(chain[0])
    if f is not None:
        nb, nb_clipped = _representable(f.not_before)
        na, na_clipped = _representable(f.not_after)
        if nb_clipped or na_clipped:
            anomalies.add(
                "dtls",
                "cert_date_out_of_range",
                f"{side} certificate validity {f.not_before} .. {f.not_after} lies beyond the timestamp "
                "range; clipped",
                frame=hs.frames[0] if hs.frames else None,
                flow_id=hs.flow_id,
            )
        row.update(
            {
                f"{side}_cert_subject": f.subject,
                f"{side}_cert_issuer": f.issuer,
                f"{side}_cert_key_type": f.key_type,
                f"{side}_cert_key_bits": f.key_bits,
                f"{side}_cert_sig_alg": f.sig_alg,
                f"{side}_cert_not_before": nb,
                f"{side}_cert_not_after": na,
                f"{side}_cert_dates_clipped": nb_clipped or na_clipped,
                f"{side}_cert_not_after_text": f.not_after.isoformat()
                if na_clipped and f.not_after
                else None,
                f"{side}_cert_self_signed": f.self_signed,
            }
        )
    return row


_TS_MIN, _TS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")


def _representable(dt: Any) -> tuple[Any, bool]:
    """``dt`` as a timestamp the frame can hold, clipped to pandas' range (2262 at most), and whether it was."""
    if dt is None:
        return None, False
    try:
        ts = pd.Timestamp(dt)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        return (_TS_MAX if dt.year > 2000 else _TS_MIN), True
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    if ts > _TS_MAX:
        return _TS_MAX, True
    if ts < _TS_MIN:
        return _TS_MIN, True
    return ts.as_unit("ns"), False


def handshake_row(hs: Handshake, anomalies: AnomalyLog) -> dict[str, Any]:
    ch, sh, hrr = hs.client_hello, hs.server_hello, hs.hello_retry
    tls13 = hs.version == DTLS1_3
    client, server = hs.client, hs.server
    if client is None and server is None and len(hs.peers) == 2:
        client, server = hs.peers  # no hello seen: the two ends as the records show them, roles unknown
    version, version_source = hs.version, "handshake"
    if version is None:
        version, version_source = hs.record_version, "record"
    row: dict[str, Any] = {
        "flow_id": hs.flow_id,
        "client": client,
        "server": server,
        "via_turn": hs.via_turn,
        "handshake_seen": hs.handshake_seen,
        "turn_peer": hs.turn_peer,
        "frames": list(hs.frames),
        "first_frame": hs.frames[0] if hs.frames else None,
        "ts_first": _ts(hs.ts_first_ns),
        "ts_last": _ts(hs.ts_last_ns),
        "client_hellos": hs.client_hellos,
        "hello_verify": hs.hello_verify_cookie is not None,
        "hello_retry": hrr is not None,
        "version": version_name(version),
        "version_source": version_source if version is not None else None,
        "alerts": list(hs.alerts),
        "retransmissions": hs.retransmissions,
        "decryption": hs.decryption,
        "decryption_detail": hs.decryption_detail,
    }
    if ch is not None:
        e = ch.ext
        row.update(
            {
                "client_random": ch.random.hex(),
                "versions_offered": _names("versions", e.supported_versions or [ch.version]),
                "client_suites": _names("cipher_suites", ch.cipher_suites),
                "srtp_profiles_offered": _names("srtp_profiles", e.srtp_profiles),
                "srtp_mki_offered": e.srtp_mki.hex() if e.srtp_mki is not None else None,
                "extensions_offered": _names("extensions", e.types),
                "supported_groups": _names("groups", e.supported_groups),
                "key_share_groups": _names("groups", e.key_share_groups),
                "signature_algorithms": _names("signature_schemes", e.signature_algorithms),
                "alpn": e.alpn,
                "sni": e.sni,
                "connection_id_client": e.connection_id.hex() if e.connection_id is not None else None,
            }
        )
        row["ja3"], row["ja3_hash"] = ja3(ch)
        row["ja4"] = ja4(ch)
    chosen_src = None
    if sh is not None:
        se = sh.ext
        exts = list(se.types)
        chosen_src = hs.sources.get("server_hello", "clear")
        row.update(
            {
                "cipher_suite": iana_name("cipher_suites", sh.cipher_suite),
                "compression": sh.compression,
                "connection_id_server": se.connection_id.hex() if se.connection_id is not None else None,
            }
        )
        row["ja3s"], row["ja3s_hash"] = ja3s(sh)
        srtp = se.srtp_profiles
        srtp_src = chosen_src if srtp else None
        ee = hs.encrypted_extensions
        if ee is not None:
            exts += ee.types
            chosen_src = hs.sources.get("encrypted_extensions", "decrypted")
            if ee.srtp_profiles:
                srtp, srtp_src = ee.srtp_profiles, chosen_src
        row["extensions_chosen"] = _names("extensions", exts)
        row["extensions_chosen_source"] = chosen_src
        if srtp:
            row["srtp_profile"] = iana_name("srtp_profiles", srtp[0])
            row["srtp_profile_source"] = srtp_src
        if tls13:
            row["key_exchange_group"] = (
                iana_name("groups", se.key_share_groups[0]) if se.key_share_groups else None
            )
        else:
            if hs.kx_group is not None:
                row["key_exchange_group"] = iana_name("groups", hs.kx_group)
            row["ems"] = bool(se.ems and ch is not None and ch.ext.ems) if ch is not None else se.ems
            reneg_offered = ch is None or (
                ch.ext.renegotiation_info is not None or TLS_EMPTY_RENEGOTIATION_INFO_SCSV in ch.cipher_suites
            )
            row["renegotiation_info"] = bool(se.renegotiation_info is not None and reneg_offered)
    elif hrr is not None:
        row["cipher_suite"] = iana_name("cipher_suites", hrr.cipher_suite)
    for side in ("client", "server"):
        row.update(_cert_row(side, hs.certs.get(side), hs.sources.get(f"{side}_cert"), anomalies, hs))
    row["completed"] = _completed(hs)
    row["encrypted_parts"] = _encrypted_parts(hs, row)
    return row


def _completed(hs: Handshake) -> bool | None:
    if any(a.get("level") == "fatal" for a in hs.alerts):
        return False
    if hs.version == DTLS1_3:
        if hs.finished >= {"client", "server"} or 3 in hs.epochs_seen.get("client", set()):
            return True  # the client sends epoch-3 records only after its Finished
        return None
    if {"client", "server"} <= hs.finished:
        return True
    if not hs.handshake_seen and hs.app_records:
        return True  # application data flows (epoch > 0): the handshake finished before the capture began
    if hs.server_hello is None and hs.client_hello is not None:
        return False if hs.ts_last_ns is not None and not hs.encrypted_records else None
    return None


def _encrypted_parts(hs: Handshake, row: dict[str, Any]) -> list[str]:
    """DTLS 1.3 facts that travelled encrypted and were not read (no keylog, or records lost / failed)."""
    if hs.version != DTLS1_3:
        return []
    seen = {(side, msg) for (_, side, msg, _) in hs.messages}
    parts = []
    if hs.encrypted_extensions is None:
        parts += ["encrypted_extensions", "srtp_profile"]
    if row.get("server_cert_sha256") is None:
        parts.append("server_certificate")
    if ("server", "server_certificate_verify") not in seen and ("server", "certificate_verify") not in seen:
        parts.append("server_certificate_verify")
    if "server" not in hs.finished:
        parts.append("server_finished")
    # the client certificate is only sent when requested; without keys the request itself is unseen
    requested = ("server", "certificate_request") in seen or hs.encrypted_extensions is None
    if requested and row.get("client_cert_sha256") is None:
        parts.append("client_certificate")
    if "client" not in hs.finished:
        parts.append("client_finished")
    return parts


# Record-layer versions of DTLSPlaintext / DTLSCiphertext headers: 1.0, 1.2 (also 1.3's legacy) and
# OpenSSL's pre-standard DTLS1_BAD_VER.
RECORD_VERSIONS = frozenset({DTLS1_0, DTLS1_2, 0x0100})


def dtls_problem(hs: Handshake) -> str | None:
    """Why the records grouped as ``hs`` are not DTLS (None when they are): DTLS is a handshake message read
    in clear (any hello, HelloVerifyRequest, or another handshake message of a capture that starts mid-
    handshake), or protected records of a DTLS record version in a coherent epoch — at least two, none in
    epoch 0, in one epoch or two consecutive ones (a rekey) — as a capture that starts mid-session shows
    them. A ChangeCipherSpec or ACK alone is not a handshake: one byte of noise can look like either."""
    readable = [m for m in hs.messages if m[3] != "encrypted" and m[2] not in ("change_cipher_spec", "ack")]
    if hs.client_hello or hs.server_hello or hs.hello_retry or hs.hello_verify_cookie or readable:
        return None
    n = sum(hs.encrypted_records.values())
    epochs = sorted(set().union(*hs.epochs_seen.values())) if hs.epochs_seen else []
    if hs.record_version is not None and hs.record_version not in RECORD_VERSIONS:
        return f"record version 0x{hs.record_version:04x}, which no DTLS version uses"
    if n < 2:
        return f"{n} protected record(s) and no handshake message"
    if 0 in epochs:
        return "epoch 0 records without a readable handshake message"
    if epochs and epochs[-1] - epochs[0] > 1:
        return (
            f"protected records in epochs {', '.join(map(str, epochs))} (not one session's) with no handshake"
        )
    return None


def corroborated(handshakes: list[Handshake], anomalies: AnomalyLog) -> list[Handshake]:
    """The handshakes that are DTLS (:func:`dtls_problem`); each other one is an anomaly row
    ``dtls_uncorroborated`` with the reason, and its flow is not called DTLS."""
    out = []
    for hs in handshakes:
        why = dtls_problem(hs)
        if why is None:
            out.append(hs)
            continue
        anomalies.add(
            "dtls",
            "dtls_uncorroborated",
            f"{len(hs.frames)} datagram(s) look like DTLS by their first byte but show {why}: classed other",
            frame=hs.frames[0] if hs.frames else None,
            ts_ns=hs.ts_first_ns,
            flow_id=hs.flow_id,
        )
    return out


def dtls_frame(handshakes: list[Handshake], anomalies: AnomalyLog) -> pd.DataFrame:
    rows = [handshake_row(hs, anomalies) for hs in corroborated(handshakes, anomalies)]
    return DTLS.from_records(rows)


def analyze_datagrams(
    datagrams: Iterable[Datagram], anomalies: AnomalyLog, keylog: Any = None, strict: bool = False
) -> DtlsTracker:
    return DtlsTracker(anomalies, keylog, strict).feed_all(datagrams)


TLS_KEY_LOG_SECRET = 0x544C534B  # pcapng Decryption Secrets Block type "TLSK": NSS key log text


def capture_keylog(cap: Capture) -> Any:
    """The keylog for ``cap``: its ``keylog=`` file plus any TLS key log embedded in the pcapng (DSB); read
    once per capture (its unreadable lines are anomalies, said once)."""
    return cap.cached("keylog", lambda: _read_capture_keylog(cap))


def _read_capture_keylog(cap: Capture) -> Any:
    from ..dissect.keylog import parse_keylog, read_keylog

    anomalies = cap.dissection.anomalies
    keylog = read_keylog(cap.keylog, anomalies) if cap.keylog is not None else None
    embedded = [
        data
        for stype, data in cap.dissection.info.get("decryption_secrets") or []
        if stype == TLS_KEY_LOG_SECRET
    ]
    if embedded:
        dsb = parse_keylog(
            b"\n".join(embedded).decode("utf-8", errors="replace"),
            anomalies,
            f"{cap.path.name} (embedded secrets)",
        )
        if keylog is None:
            return dsb
        for cr, labels in dsb.secrets.items():
            keylog.secrets.setdefault(cr, {}).update(
                {k: v for k, v in labels.items() if k not in keylog.secrets.get(cr, {})}
            )
    return keylog


def tracker(cap: Capture) -> DtlsTracker:
    """The DTLS pass over ``cap`` (shared by the `dtls` and `datachannels` frames)."""

    def run() -> DtlsTracker:
        keylog = capture_keylog(cap)
        t = analyze_datagrams(cap.dissection.dtls, cap.dissection.anomalies, keylog, cap.strict)
        _note_keylog_unmatched(cap, keylog, t)
        return t

    return cap.cached("dtls_tracker", run)


def _note_keylog_unmatched(cap: Capture, keylog: Any, t: DtlsTracker) -> None:
    """A keylog given by the user whose client randoms match none of the capture's DTLS handshakes is most
    likely the keylog of another session: say so (anomaly ``keylog_no_match``), not just decrypt nothing."""
    if cap.keylog is None or keylog is None or not keylog.secrets:
        return
    randoms = [hs.client_hello.random for hs in t.handshakes if hs.client_hello is not None]
    if randoms and not any(r in keylog for r in randoms):
        cap.dissection.anomalies.add(
            "keylog",
            "keylog_no_match",
            f"{cap.keylog}: none of its {len(keylog.secrets)} client random(s) belongs to one of the "
            f"{len(randoms)} DTLS handshake(s) of this capture (a keylog of another session?)",
        )


@register_frame(DTLS)
def build_dtls(cap: Capture) -> pd.DataFrame:
    return dtls_frame(tracker(cap).handshakes, cap.dissection.anomalies)
