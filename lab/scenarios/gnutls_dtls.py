"""DTLS-SRTP handshakes that negotiate the NULL SRTP profiles, between GnuTLS's gnutls-cli and gnutls-serv.

Scenario ``srtp_null``: three DTLS 1.2 handshakes over UDP in one capture, each with mutual certificates (ECDSA
P-256, as WebRTC endpoints use) and one line of application data echoed back:

1. ``null80``: both sides offer only ``SRTP_NULL_HMAC_SHA1_80`` -> negotiated: media authenticated, not encrypted.
2. ``offered``: the client offers ``SRTP_NULL_HMAC_SHA1_80`` and ``SRTP_AES128_CM_HMAC_SHA1_80``, the server
   supports only the AES profile -> ``SRTP_AES128_CM_HMAC_SHA1_80``: NULL offered but not chosen (no finding).
3. ``null32``: the client offers only ``SRTP_NULL_HMAC_SHA1_32`` (GnuTLS calls it ``SRTP_NULL_SHA1_32``), the
   server supports it and the AES profile -> the NULL profile with a 32-bit tag.

OpenSSL 3.0 refuses the NULL profiles and aiortc never offers them; GnuTLS 3.7 negotiates them. Neither GnuTLS's
tools nor the libsrtp we have send SRTP with a NULL cipher, so no media follows the handshakes (as in
``weak_dtls``). Truth comes from gnutls-cli's own session printout (``- Description:``, ``- SRTP profile:``), the
profile lists we configured, the certificates we made (``openssl x509 -fingerprint``) and GnuTLS's SSLKEYLOGFILE.
tshark 4.0 confirms version, suite, profile and certificates and decrypts the echoed line with the keylog; the
client's ephemeral port is read from tshark's ClientHello carrying the keylog's client random.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

NAME = "srtp_null"
CLI_IP, SRV_IP = "192.0.2.50", "192.0.2.60"
# (label, profiles the client offers, profiles the server supports, server port); GnuTLS's names
RUNS = [
    ("null80", "SRTP_NULL_HMAC_SHA1_80", "SRTP_NULL_HMAC_SHA1_80", 40084),
    ("offered", "SRTP_NULL_HMAC_SHA1_80:SRTP_AES128_CM_HMAC_SHA1_80", "SRTP_AES128_CM_HMAC_SHA1_80", 40085),
    ("null32", "SRTP_NULL_SHA1_32", "SRTP_NULL_SHA1_32:SRTP_AES128_CM_HMAC_SHA1_80", 40086),
]
# GnuTLS profile names -> IANA (RFC 5764 §4.1.2)
GNUTLS_SRTP = {
    "SRTP_AES128_CM_HMAC_SHA1_80": "SRTP_AES128_CM_HMAC_SHA1_80",
    "SRTP_AES128_CM_HMAC_SHA1_32": "SRTP_AES128_CM_HMAC_SHA1_32",
    "SRTP_NULL_HMAC_SHA1_80": "SRTP_NULL_HMAC_SHA1_80",
    "SRTP_NULL_SHA1_32": "SRTP_NULL_HMAC_SHA1_32",
}
# what gnutls-cli prints in "- Description: (DTLS1.2-X.509)-(kx)-(sig)-(cipher)" -> the IANA suite, for the suites
# GnuTLS's default priority chooses with an ECDSA certificate
GNUTLS_SUITE = {
    ("ECDHE-SECP256R1", "AES-256-GCM"): "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ("ECDHE-SECP256R1", "AES-128-GCM"): "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ("ECDHE-X25519", "AES-256-GCM"): "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ("ECDHE-X25519", "AES-128-GCM"): "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ("ECDHE-SECP256R1", "CHACHA20-POLY1305"): "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ("ECDHE-X25519", "CHACHA20-POLY1305"): "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
}


def _gnutls_version() -> str:
    out = subprocess.run(["gnutls-cli", "--version"], check=False, capture_output=True, text=True).stdout
    m = re.search(r"gnutls-cli (\S+)", out)
    return m.group(1) if m else "?"


def _client_facts(log: str) -> dict[str, Any]:
    """What gnutls-cli printed about the session it negotiated."""
    desc = re.search(
        r"^- Description: \((DTLS[\d.]+)-X\.509\)-\(([^)]+)\)-\(([^)]+)\)-\(([^)]+)\)", log, re.MULTILINE
    )
    prof = re.search(r"^- SRTP profile: (\S+)", log, re.MULTILINE)
    opts = re.search(r"^- Options: (.*)$", log, re.MULTILINE)
    return {
        "description": desc.group(0)[len("- Description: ") :] if desc else None,
        "protocol": desc.group(1) if desc else None,
        "kx": desc.group(2) if desc else None,
        "cipher": desc.group(4) if desc else None,
        "srtp_profile": prof.group(1) if prof else None,
        "options": opts.group(1).strip() if opts else "",
        "completed": "Handshake was completed" in log,
    }


def srtp_null(out: Path) -> dict[str, Any]:
    from lab.netns import Lab
    from lab.truthlib import SRTP_IDS, dtls_wire, no_media, self_signed_cert, workdir

    work = workdir(NAME)
    ec = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    certs = {
        "srv": self_signed_cert(work, "srv", ec, "/CN=gnutls-serv"),
        "cli": self_signed_cert(work, "cli", ec, "/CN=WebRTC"),
    }
    cap = out / f"{NAME}.pcapng"
    keylog = out / f"{NAME}.keylog"
    with Lab(NAME) as lab:
        cli = lab.host("cli", f"{CLI_IP}/24")
        srv = lab.host("srv", f"{SRV_IP}/24")
        with lab.capture(cap):
            for label, offer, support, sport in RUNS:
                server = srv.popen(
                    [
                        "gnutls-serv",
                        "--udp",
                        "-p",
                        str(sport),
                        "--echo",
                        "--x509keyfile",
                        "srv.key",
                        "--x509certfile",
                        "srv.pem",
                        f"--srtp-profiles={support}",
                    ],
                    log=work / f"serv_{label}.log",
                    env={"SSLKEYLOGFILE": str(work / f"serv_{label}.keylog")},
                    cwd=str(work),
                )
                srv.wait_listening(sport, proto="udp", proc=server)
                client = cli.popen(
                    [
                        "sh",
                        "-c",
                        (
                            f"(echo 'hello over {label} from gnutls-cli'; sleep 1.5) | exec gnutls-cli --udp -p {sport}"
                            f" {SRV_IP} --insecure --x509keyfile cli.key --x509certfile cli.pem"
                            f" --srtp-profiles={offer}"
                        ),
                    ],
                    log=work / f"cli_{label}.log",
                    env={"SSLKEYLOGFILE": str(work / f"cli_{label}.keylog")},
                    cwd=str(work),
                )
                client.wait(timeout=30)
                time.sleep(0.3)
                server.terminate()
                server.wait(timeout=10)
            lab.stop_all()
    cap.chmod(0o644)

    lines: list[str] = []
    for label, *_ in RUNS:
        for side in ("cli", "serv"):
            p = work / f"{side}_{label}.keylog"
            for line in p.read_text().splitlines() if p.exists() else []:
                if line.startswith("CLIENT_RANDOM") and line not in lines:
                    lines.append(line)
    keylog.write_text("\n".join(lines) + "\n")
    keylog.chmod(0o644)
    randoms = {line.split()[1].lower() for line in lines}

    hs, on_wire, echoed_on = dtls_wire(cap, [sport for *_, sport in RUNS], keylog)
    dtls = []
    for label, offer, support, sport in RUNS:
        facts = _client_facts((work / f"cli_{label}.log").read_text())
        if not facts["completed"] or not facts["srtp_profile"]:
            raise RuntimeError(
                f"gnutls-cli {label} did not negotiate: {(work / f'cli_{label}.log').read_text()[-1500:]}"
            )
        hellos = [
            r for r in hs if r["udp.dstport"] == str(sport) and r["dtls.handshake.type"].split(",")[0] == "1"
        ]
        shello = [
            r for r in hs if r["udp.srcport"] == str(sport) and "2" in r["dtls.handshake.type"].split(",")
        ]
        if not hellos or not shello:
            raise RuntimeError(f"tshark sees no ClientHello/ServerHello for {label}")
        client_random = hellos[-1]["dtls.handshake.random"].split(",")[0].replace(":", "").lower()
        if client_random not in randoms:
            raise RuntimeError(f"{label}: the ClientHello's random is not in GnuTLS's keylog")
        cport = int(hellos[-1]["udp.srcport"])
        profile = GNUTLS_SRTP[facts["srtp_profile"]]
        suite = GNUTLS_SUITE[(facts["kx"], facts["cipher"])]
        sh = shello[-1]
        wire_srtp = int(sh["dtls.use_srtp.protection_profile"].split(",")[0], 0)
        offered_on_wire = {int(x, 0) for x in hellos[-1]["dtls.use_srtp.protection_profile"].split(",") if x}
        if wire_srtp != SRTP_IDS[profile] or sh["dtls.handshake.version"].split(",")[0] != "0xfefd":
            raise RuntimeError(
                f"tshark disagrees on {label}: srtp {wire_srtp:#x}, version {sh['dtls.handshake.version']}"
            )
        if offered_on_wire != {SRTP_IDS[GNUTLS_SRTP[p]] for p in offer.split(":")}:
            raise RuntimeError(f"{label}: the ClientHello offers {offered_on_wire}, we configured {offer}")
        if on_wire.get(str(sport)) != {certs["srv"]["sha256"]} or on_wire.get(str(cport)) != {
            certs["cli"]["sha256"]
        }:
            raise RuntimeError(f"{label}: certificates on the wire differ from ours")
        echoed = echoed_on.get(str(cport), b"")
        if f"hello over {label}".encode() not in echoed:
            raise RuntimeError(f"tshark could not decrypt {label}'s echoed line with the keylog")
        dtls.append(
            {
                "client": f"{CLI_IP}:{cport}",
                "server": f"{SRV_IP}:{sport}",
                "client_random": client_random,
                "version": "DTLS 1.2",
                "cipher_suite": suite,
                "srtp_profile": profile,
                "srtp_profiles_offered": [GNUTLS_SRTP[p] for p in offer.split(":")],
                "client_cert_sha256": certs["cli"]["sha256"],
                "server_cert_sha256": certs["srv"]["sha256"],
                "encrypted_handshake": False,
                "completed": True,
                "mutual_auth": True,
                "extended_master_secret": "extended master secret" in facts["options"],
                "gnutls": {
                    "description": facts["description"],
                    "srtp_profile": facts["srtp_profile"],
                    "client_offered": offer,
                    "server_supported": support,
                },
                "app_data": f"hello over {label} from gnutls-cli",
            }
        )
    null = [d for d in dtls if "NULL" in d["srtp_profile"]]
    return {
        "description": "gnutls-cli/gnutls-serv DTLS 1.2 handshakes (mutual ECDSA certificates) negotiating "
        "use_srtp SRTP_NULL_HMAC_SHA1_80 and SRTP_NULL_HMAC_SHA1_32 (media authenticated, not encrypted), and one "
        "where the client offers the NULL profile but the server picks SRTP_AES128_CM_HMAC_SHA1_80",
        "stacks": {"gnutls": _gnutls_version()},
        "keylog": keylog.name,
        "findings": [
            {
                "slug": "srtp-null-cipher",
                "endpoints": [d["client"], d["server"]],
                "evidence": {"srtp_profile": d["srtp_profile"]},
            }
            for d in null
        ],
        "absent_findings": [
            "srtp-weak-profile",
            "dtls-weak-version",
            "dtls-weak-cipher",
            "dtls-cert-weak",
            "dtls-handshake-failed",
            "signalling-plaintext",
            "stun-no-integrity",
        ],
        "dtls": dtls,
        "certificates": {"server": certs["srv"], "client": certs["cli"]},
        **no_media(),
        "tshark_decode_as": [f"udp.port=={sport},dtls" for *_, sport in RUNS],
        "notes": (
            "Facts from gnutls-cli's session printout ('- Description:', '- SRTP profile:', '- Options:'), the "
            "profile lists we gave each side (--srtp-profiles), and the certificates we made (openssl req, "
            "openssl x509 -fingerprint -sha256). GnuTLS wrote SSLKEYLOGFILE (CLIENT_RANDOM) on both sides. "
            "tshark 4.0 (Decode-As udp.port==40084-40086,dtls) confirms the ServerHello's version and use_srtp "
            "profile, the ClientHello's offered profiles, both certificates, and decrypts each echoed line "
            "with the keylog; the client's ephemeral port is that of the ClientHello whose random is in the "
            "keylog. The 'offered' handshake shows SRTP_NULL_HMAC_SHA1_80 only in the ClientHello: "
            "srtp-null-cipher is about what is negotiated. No SRTP media follows (GnuTLS negotiates the "
            "profile only; libsrtp as bundled by pylibsrtp has no NULL-cipher policy)."
        ),
    }


SCENARIOS = {NAME: srtp_null}
