"""SSLKEYLOGFILE reading (the NSS key log format written by Firefox, OpenSSL, BoringSSL, aiortc's peers).

Each line is ``<LABEL> <client_random hex> <secret hex>``; ``#`` lines are comments. DTLS 1.2 uses
``CLIENT_RANDOM`` (the 48-byte master secret); DTLS 1.3 the ``CLIENT_/SERVER_HANDSHAKE_TRAFFIC_SECRET``,
``CLIENT_/SERVER_TRAFFIC_SECRET_0`` and ``EXPORTER_SECRET`` lines. Secrets are matched to a handshake by
its ClientHello random. A line that cannot be read becomes an anomaly (layer ``keylog``); the rest stays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..anomalies import AnomalyLog
from ..errors import InputError

LABELS = frozenset(
    {
        "CLIENT_RANDOM",  # TLS/DTLS <= 1.2 master secret
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EARLY_EXPORTER_SECRET",
        "EXPORTER_SECRET",
        "RSA",  # "RSA <encrypted pre-master prefix> <pre-master>": not keyed by client random; kept, unused
    }
)


@dataclass
class KeyLog:
    """Secrets by client random: ``secrets[client_random][label] = secret``."""

    path: str | None = None
    secrets: dict[bytes, dict[str, bytes]] = field(default_factory=dict)
    lines: int = 0
    bad_lines: int = 0

    def get(self, client_random: bytes, label: str) -> bytes | None:
        return self.secrets.get(client_random, {}).get(label)

    def labels(self, client_random: bytes) -> set[str]:
        return set(self.secrets.get(client_random, {}))

    def __contains__(self, client_random: bytes) -> bool:
        return client_random in self.secrets

    def __len__(self) -> int:
        return len(self.secrets)


def parse_keylog(text: str, anomalies: AnomalyLog | None = None, path: str | None = None) -> KeyLog:
    kl = KeyLog(path=path)
    where = path or "keylog"
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kl.lines += 1
        parts = line.split()
        problem = None
        if len(parts) != 3:
            problem = f"keylog line {no} has {len(parts)} fields, expected 3"
        elif parts[0] not in LABELS:
            # never the label itself: a mangled line can carry secret bytes in it
            problem = f"keylog line {no} has an unknown label ({len(parts[0])} characters)"
        else:
            try:
                cr, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            except ValueError:
                problem = f"keylog line {no} is not hexadecimal"
            else:
                if parts[0] != "RSA" and len(cr) != 32:
                    problem = f"keylog line {no} has a client random of {len(cr)} bytes, expected 32"
                elif parts[0] == "CLIENT_RANDOM" and len(secret) != 48:
                    problem = f"keylog line {no} has a master secret of {len(secret)} bytes, expected 48"
                elif len(secret) not in (32, 48) and parts[0] != "RSA":
                    problem = f"keylog line {no} has a secret of {len(secret)} bytes, expected 32 or 48"
        if problem is not None:
            kl.bad_lines += 1
            if anomalies is not None:
                anomalies.add("keylog", "keylog_bad_line", f"{where}: {problem}")
            continue
        kl.secrets.setdefault(cr, {})[parts[0]] = secret
    if not kl.secrets and anomalies is not None:
        anomalies.add(
            "keylog",
            "keylog_unusable",
            f"{where}: no usable key line ({kl.lines} line(s), {kl.bad_lines} unreadable): not an "
            "SSLKEYLOGFILE? Nothing can be decrypted with it",
        )
    return kl


def read_keylog(path: str | os.PathLike[str], anomalies: AnomalyLog | None = None) -> KeyLog:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(p, f"keylog cannot be read ({e.strerror or e})") from None
    return parse_keylog(data.decode("utf-8", errors="replace"), anomalies, str(p))
