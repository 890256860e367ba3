"""Legs the tool could not see into: TLS connections whose content no keylog opened.

The signalling frame keeps one ``transport = "tls"`` row per such connection (``tables.signalling``). On a
TURN port (RFC 8656 §3.3 / RFC 7065: 5349 for TURN over TLS, 3478 when TLS is run on the plain port) the leg
is a TURN client's connection to its relay: the TURN control, the ICE checks and the media of that client
travel inside it unread; elsewhere it may be signalling or anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..values import host, records, val

TURN_TLS_PORTS = frozenset({5349, 3478})


@dataclass(frozen=True)
class OpaqueLeg:
    client: str  # ip:port
    server: str  # ip:port
    flow_id: int | None
    first_frame: int | None
    turn: bool  # on a TURN port: a TURN client's relay connection

    @property
    def client_host(self) -> str | None:
        return host(self.client)

    @property
    def server_host(self) -> str | None:
        return host(self.server)

    @property
    def text(self) -> str:
        what = (
            "TURN over TLS: the TURN control, ICE checks and media of its client inside it"
            if self.turn
            else "its content"
        )
        return f"{self.client} <-> {self.server} (TLS with no keys in the keylog; not read: {what})"


def _port(endpoint: str | None) -> int | None:
    try:
        return int(str(endpoint).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def opaque_legs(sig: pd.DataFrame | None) -> list[OpaqueLeg]:
    """One entry per TLS connection of ``sig`` (the signalling frame) whose content could not be read."""
    if sig is None or not len(sig) or "transport" not in sig.columns:
        return []
    out: dict[tuple[str, str], OpaqueLeg] = {}
    for r in records(sig[sig["transport"].astype(str) == "tls"]):
        c, s = val(r, "client_endpoint"), val(r, "server_endpoint")
        if not c or not s:
            continue
        out.setdefault(
            (str(c), str(s)),
            OpaqueLeg(str(c), str(s), val(r, "flow_id"), val(r, "frame"), _port(s) in TURN_TLS_PORTS),
        )
    return list(out.values())
