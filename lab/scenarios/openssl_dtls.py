"""Weak DTLS-SRTP handshakes between openssl s_client and s_server over UDP.

Scenario ``weak_dtls``, two handshakes in one capture, both with mutual certificates as WebRTC does:

1. DTLS 1.0 (``-dtls1``), non-PFS CBC suite ``AES128-SHA`` (TLS_RSA_WITH_AES_128_CBC_SHA, security level 0),
   ``-use_srtp SRTP_AES128_CM_SHA1_32`` (32-bit auth tag profile); server certificate RSA-1024.
2. DTLS 1.2 (``-dtls1_2``), the same suite, profile and certificates, on another port pair.

Each client sends one line of application data and closes (close_notify). Truth comes from openssl itself (its
session printout: protocol, cipher, SRTP profile, master key; the certificates we generated, hashed by
``openssl x509 -fingerprint -sha256``); tshark confirms version, suite, SRTP profile, certificates and, with
the keylog, decrypts the application data. ``weak_dtls.keylog`` is openssl's ``-keylogfile`` (CLIENT_RANDOM).
openssl speaks no SRTP itself: the handshakes negotiate the profile but no media follows.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

NAME = "weak_dtls"
CLI_IP, SRV_IP = "192.0.2.30", "192.0.2.40"
CIPHER = "AES128-SHA:@SECLEVEL=0"
PROFILE = "SRTP_AES128_CM_SHA1_32"
# (label, openssl version flag, client port, server port)
RUNS = [("dtls1.0", "-dtls1", 50010, 4433), ("dtls1.2", "-dtls1_2", 50012, 4434)]


def _certs(work: Path) -> dict[str, dict]:
    """Self-signed certificates: server RSA-1024 (weak on purpose), client ECDSA P-256 (as browsers use)."""
    from lab.truthlib import self_signed_cert

    return {
        "srv": self_signed_cert(work, "srv", ["rsa:1024"], "/CN=weak-dtls-server"),
        "cli": self_signed_cert(work, "cli", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/CN=WebRTC"),
    }


def _session_facts(log: str) -> dict:
    """What s_client printed about the session it negotiated."""

    def grab(pattern: str) -> str | None:
        m = re.search(pattern, log, flags=re.MULTILINE)
        return m.group(1).strip() if m else None

    return {
        "protocol": grab(r"^\s*Protocol\s*:\s*(\S+)"),
        "cipher": grab(r"^\s*Cipher\s*:\s*(\S+)"),
        "srtp_profile": grab(r"SRTP Extension negotiated, profile=(\S+)"),
        "master_key": grab(r"^\s*Master-Key\s*:\s*(\S+)"),
        "peer_cert_subject": grab(r"^subject=(.*)$"),
        "new_line": grab(r"^(New, .*)$"),
        "extended_master_secret": grab(r"^\s*Extended master secret: (\S+)"),
    }


def weak_dtls(out: Path) -> dict:
    from lab.netns import Lab
    from lab.truthlib import DTLS_VERSION, SRTP_IANA, dtls_wire, no_media, openssl_iana_names, workdir

    work = workdir(NAME)
    certs = _certs(work)
    cap = out / f"{NAME}.pcapng"
    keylog = out / f"{NAME}.keylog"
    logs: dict[str, str] = {}
    with Lab(NAME) as lab:
        cli = lab.host("cli", f"{CLI_IP}/24")
        srv = lab.host("srv", f"{SRV_IP}/24")
        with lab.capture(cap):
            for label, flag, cport, sport in RUNS:
                # s_server quits on EOF on stdin: give it a pipe that stays open
                srv.popen(
                    [
                        "sh",
                        "-c",
                        (
                            f"sleep 30 | exec openssl s_server {flag} -accept {SRV_IP}:{sport} -naccept 1"
                            f" -cert srv.pem -key srv.key -cipher '{CIPHER}' -use_srtp {PROFILE}"
                            f" -verify 1 -CAfile cli.pem -keylogfile srv_{label}.keylog"
                        ),
                    ],
                    log=work / f"s_server_{label}.log",
                    cwd=str(work),
                )
                srv.wait_listening(sport, proto="udp")
                c = cli.popen(
                    [
                        "sh",
                        "-c",
                        (
                            f"(sleep 1; echo 'hello over {label} from s_client'; sleep 0.5)"
                            f" | openssl s_client {flag} -connect {SRV_IP}:{sport} -bind {CLI_IP}:{cport}"
                            f" -cert cli.pem -key cli.key -cipher '{CIPHER}' -use_srtp {PROFILE}"
                            f" -keylogfile cli_{label}.keylog -sess_out cli_{label}.sess"
                        ),
                    ],
                    log=work / f"s_client_{label}.log",
                    cwd=str(work),
                )
                # the pipe: 'sleep 1; echo' feeds s_client's stdin, EOF makes it send close_notify and exit
                c.wait(timeout=30)
                deadline = time.time() + 10  # s_server -naccept 1 ends after the client's close_notify
                while (
                    "CONNECTION CLOSED" not in (work / f"s_server_{label}.log").read_text()
                    and time.time() < deadline
                ):
                    time.sleep(0.1)
                time.sleep(0.3)
            lab.stop_all()
    cap.chmod(0o644)

    lines = []
    for label, *_ in RUNS:
        for side in ("cli", "srv"):
            for line in (work / f"{side}_{label}.keylog").read_text().splitlines():
                if line.startswith("CLIENT_RANDOM") and line not in lines:
                    lines.append(line)
    keylog.write_text("\n".join(lines) + "\n")
    keylog.chmod(0o644)
    randoms = {line.split()[1].lower(): line.split()[2].lower() for line in lines}

    iana = openssl_iana_names()
    rows, certs_on_wire, appdata = dtls_wire(cap, [sport for *_, sport in RUNS], keylog)
    dtls = []
    for label, _flag, cport, sport in RUNS:
        clog = (work / f"s_client_{label}.log").read_text()
        slog = (work / f"s_server_{label}.log").read_text()
        logs[label] = clog
        sess = _session_facts(clog)
        if not sess["protocol"] or not sess["cipher"] or sess["cipher"] == "0000":
            raise RuntimeError(f"s_client {label} did not complete: {clog[-1500:]}")
        hello = [
            r
            for r in rows
            if r["udp.srcport"] == str(cport) and r["dtls.handshake.type"].split(",")[0] == "1"
        ]
        shello = [
            r for r in rows if r["udp.srcport"] == str(sport) and "2" in r["dtls.handshake.type"].split(",")
        ]
        if not hello or not shello:
            raise RuntimeError(f"tshark sees no ClientHello/ServerHello for {label}")
        client_random = hello[-1]["dtls.handshake.random"].replace(":", "").lower()
        if client_random not in randoms or randoms[client_random] != sess["master_key"].lower():
            raise RuntimeError(f"keylog master secret for {label} does not match s_client's Master-Key")
        version = DTLS_VERSION[sess["protocol"]]
        cipher = iana[sess["cipher"]]
        profile = SRTP_IANA[sess["srtp_profile"]]
        sh = shello[-1]
        wire_suite = int(sh["dtls.handshake.ciphersuite"].split(",")[0], 0)
        wire_ver = sh["dtls.handshake.version"].split(",")[0]
        wire_srtp = int(sh["dtls.use_srtp.protection_profile"].split(",")[0], 0)
        expect_ver = {"DTLS 1.0": "0xfeff", "DTLS 1.2": "0xfefd"}[version]
        if wire_suite != 0x002F or wire_ver != expect_ver or wire_srtp != 0x0002:
            raise RuntimeError(
                f"tshark disagrees on {label}: suite {wire_suite:#x} version {wire_ver} srtp {wire_srtp:#x}"
            )
        srv_on_wire = certs_on_wire.get(str(sport), set())
        cli_on_wire = certs_on_wire.get(str(cport), set())
        if srv_on_wire != {certs["srv"]["sha256"]} or cli_on_wire != {certs["cli"]["sha256"]}:
            raise RuntimeError(f"certificates on the wire differ from ours for {label}")
        if f"hello over {label}".encode() not in appdata.get(str(sport), b""):
            raise RuntimeError(f"tshark could not decrypt {label}'s application data with the keylog")
        dtls.append(
            {
                "client": f"{CLI_IP}:{cport}",
                "server": f"{SRV_IP}:{sport}",
                "client_random": client_random,
                "version": version,
                "cipher_suite": cipher,
                "srtp_profile": profile,
                "client_cert_sha256": certs["cli"]["sha256"],
                "server_cert_sha256": certs["srv"]["sha256"],
                "encrypted_handshake": False,
                "completed": True,
                "mutual_auth": True,
                "extended_master_secret": sess["extended_master_secret"] == "yes",
                "openssl": {
                    "protocol": sess["protocol"],
                    "cipher": sess["cipher"],
                    "srtp_profile": sess["srtp_profile"],
                    "server_printed_cipher": _grab(slog, r"^CIPHER is (\S+)"),
                    "server_printed_srtp": _grab(slog, r"SRTP Extension negotiated, profile=(\S+)"),
                },
                "app_data": f"hello over {label} from s_client",
            }
        )
    both = [f"{CLI_IP}:{RUNS[0][2]}", f"{SRV_IP}:{RUNS[0][3]}"]
    both12 = [f"{CLI_IP}:{RUNS[1][2]}", f"{SRV_IP}:{RUNS[1][3]}"]
    return {
        "description": "openssl s_client/s_server DTLS 1.0 and DTLS 1.2 handshakes with TLS_RSA_WITH_AES_128_CBC_SHA, "
        "use_srtp SRTP_AES128_CM_HMAC_SHA1_32, RSA-1024 server certificate",
        "stacks": {},
        "keylog": keylog.name,
        "findings": [
            {"slug": "dtls-weak-version", "endpoints": both, "evidence": {"version": "DTLS 1.0"}},
            {
                "slug": "dtls-weak-cipher",
                "endpoints": both,
                "evidence": {"cipher_suite": dtls[0]["cipher_suite"]},
            },
            {
                "slug": "dtls-weak-cipher",
                "endpoints": both12,
                "evidence": {"cipher_suite": dtls[1]["cipher_suite"]},
            },
            {
                "slug": "srtp-weak-profile",
                "endpoints": both,
                "evidence": {"srtp_profile": dtls[0]["srtp_profile"]},
            },
            {
                "slug": "srtp-weak-profile",
                "endpoints": both12,
                "evidence": {"srtp_profile": dtls[1]["srtp_profile"]},
            },
            {
                "slug": "dtls-cert-weak",
                "endpoints": [f"{SRV_IP}:{RUNS[0][3]}", f"{SRV_IP}:{RUNS[1][3]}"],
                "evidence": {
                    "key_type": "RSA",
                    "key_bits": certs["srv"]["key_bits"],
                    "cert_sha256": certs["srv"]["sha256"],
                },
            },
        ],
        "absent_findings": [
            "dtls-handshake-failed",
            "srtp-null-cipher",
            "signalling-plaintext",
            "sdes-key-exposed",
            "stun-no-integrity",
            "turn-open-relay",
        ],
        "dtls": dtls,
        "certificates": {"server": certs["srv"], "client": certs["cli"]},
        **no_media(),
        "notes": (
            "Facts from openssl's own session printout (s_client: Protocol, Cipher, SRTP Extension "
            "negotiated, Master-Key; s_server: CIPHER is, SRTP profile) and the certificates we generated "
            "(openssl x509 -fingerprint -sha256). tshark 4.0 (Decode-As udp.port==4433/4434,dtls) confirms "
            "ServerHello version/suite/use_srtp profile and the certificate hashes, and decrypts each "
            "client's line of application data with weak_dtls.keylog (CLIENT_RANDOM lines from "
            "-keylogfile, whose master secrets equal s_client's Master-Key). The server requests a client "
            "certificate (-verify 1): mutual authentication as in WebRTC. No SRTP media follows (openssl "
            "negotiates the profile only). Server certificate RSA-1024 (sha256WithRSAEncryption), client "
            "certificate ECDSA P-256."
        ),
    }


def _grab(text: str, pattern: str) -> str | None:
    m = re.search(pattern, text, flags=re.MULTILINE)
    return m.group(1) if m else None


SCENARIOS = {NAME: weak_dtls}
