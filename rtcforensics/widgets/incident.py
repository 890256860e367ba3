"""Incident-response views: who talked to whom, through which relays, encrypted or not, fingerprints against
certificates, and the indicators to export. Pure functions over frames (tested without a kernel)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..values import ep
from .labs import fingerprint_mismatches, mismatched_certificates
from .select import _as_list, encryption_of, findings_frame

INDICATOR_COLUMNS = ["kind", "value", "context"]


def relay_allocations(stun: pd.DataFrame | None) -> pd.DataFrame:
    """One row per successful TURN Allocate: ``server`` (ip:port), ``client``, ``relayed``, ``username``,
    ``authenticated`` (the request carried MESSAGE-INTEGRITY), ``peers`` (XOR-PEER-ADDRESSes the client host
    asked the same server for, in CreatePermission / ChannelBind / Send), ``frame``."""
    cols = ["server", "client", "relayed", "username", "authenticated", "peers", "frame"]
    if stun is None or not len(stun):
        return pd.DataFrame({c: [] for c in cols})
    method = stun["method"].astype(str)
    cls = stun["cls"].astype(str)
    ok = stun[(method == "Allocate") & (cls == "success")]
    req = stun[(method == "Allocate") & (cls == "request")].set_index("txid", drop=False)
    perm = stun[
        method.isin(["CreatePermission", "ChannelBind", "Send"]) & (cls.isin(["request", "indication"]))
    ]
    rows = []
    for _, r in ok.iterrows():
        server = ep(r["src"], r["sport"])
        client = ep(r["dst"], r["dport"])
        q = req.loc[[r["txid"]]] if r["txid"] in req.index else None
        user = q["username"].iloc[-1] if q is not None else None
        integ = q["has_integrity"].iloc[-1] if q is not None else pd.NA
        peers: list[str] = []
        # by host pair, not 5-tuple: a NAT may give the client's later requests another port
        p = perm[(perm["src"] == r["dst"]) & (perm["dst"] == r["src"])]
        for v in p["xor_peer"]:
            for x in str(v).split(",") if v is not None and v is not pd.NA else []:
                if x and x not in peers:
                    peers.append(x)
        rows.append(
            {
                "server": server,
                "client": client,
                "relayed": r.get("xor_relayed"),
                "username": None if user is pd.NA else user,
                "authenticated": None if integ is pd.NA else bool(integ),
                "peers": peers,
                "frame": int(r["frame"]),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def fingerprint_table(dtls: pd.DataFrame | None, report: Any) -> pd.DataFrame:
    """Each DTLS certificate on the wire and the verdict of check DTLS001 (dtls-fingerprint-mismatch) on it:
    ``flow_id``, ``side``, ``endpoint``, ``cert_sha256``, ``in_sdp`` (False when the check found that no
    a=fingerprint describes it; NA when the check could not compare on this capture)."""
    cols = ["flow_id", "side", "endpoint", "cert_sha256", "in_sdp"]
    if dtls is None or not len(dtls):
        return pd.DataFrame({c: [] for c in cols})
    status = next(
        (c.status for c in getattr(report, "coverage", ()) if c.slug == "dtls-fingerprint-mismatch"),
        "not observable",
    )
    unmatched = mismatched_certificates(report)
    rows: list[dict[str, Any]] = []
    for _, r in dtls.iterrows():
        for side in ("client", "server"):
            h = r.get(f"{side}_cert_sha256")
            if h is None or h is pd.NA:
                continue
            h = str(h).lower()
            rows.append(
                {
                    "flow_id": int(r["flow_id"]),
                    "side": side,
                    "endpoint": r.get(side),
                    "cert_sha256": h,
                    "in_sdp": pd.NA if status in ("not observable", "failed") else h not in unmatched,
                }
            )
    out = pd.DataFrame(rows, columns=cols)
    out["in_sdp"] = out["in_sdp"].astype("boolean")
    return out


FLOW_COLUMNS = (
    "flow_id",
    "transport",
    "a",
    "b",
    "classes",
    "packets",
    "bytes",
    "first_ts",
    "last_ts",
    "via_turn",
)


def conversation_flows(flows: pd.DataFrame | None) -> pd.DataFrame | None:
    """Flows that carried something we classify (STUN, DTLS, RTP, TLS, HTTP, …): neighbour discovery,
    multicast and other background traffic (classes only ``other``) left out."""
    if flows is None or not len(flows) or "classes" not in flows.columns:
        return flows
    keep = flows["classes"].map(lambda v: bool({str(x) for x in _as_list(v)} - {"other"}))
    return flows[keep]


def flow_encryption(flows: pd.DataFrame | None, *, background: bool = False) -> pd.DataFrame:
    """Who talked to whom: the flows with their encryption state in words (``encrypted`` / ``plaintext`` /
    ``unknown``); background traffic left out unless ``background``."""
    if flows is None or not len(flows):
        return pd.DataFrame({"flow_id": [], "encryption": []})
    shown = flows if background else conversation_flows(flows)
    cols = [c for c in FLOW_COLUMNS if c in shown.columns]  # type: ignore[union-attr]
    out = shown[cols].copy() if cols else shown.copy()  # type: ignore[index,union-attr]
    out["encryption"] = [encryption_of(r) for _, r in shown.iterrows()]  # type: ignore[union-attr]
    return out.reset_index(drop=True)


def _addr_kind(value: str) -> str:
    v = str(value)
    has_port = (v.startswith("[") and "]:" in v) or (v.count(":") == 1)
    return "endpoint" if has_port else "address"


STREAM_COLUMNS = (
    "flow_id",
    "ssrc",
    "src",
    "dst",
    "packets",
    "pt",
    "codec",
    "lost",
    "jitter_ms",
    "kbps",
    "via_turn",
    "keying",
    "plaintext_score",
    "plaintext_reason",
)


def stream_encryption(rtp_streams: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per RTP stream: the columns that say whether it was encrypted (keying, plaintext evidence)."""
    if rtp_streams is None:
        return None
    return rtp_streams[[c for c in STREAM_COLUMNS if c in rtp_streams.columns]]


def indicators(
    *,
    flows: pd.DataFrame | None = None,
    dtls: pd.DataFrame | None = None,
    stun: pd.DataFrame | None = None,
    signalling: pd.DataFrame | None = None,
    findings: Any = None,
) -> pd.DataFrame:
    """Indicators to hand on (``kind``, ``value``, ``context``), deduplicated on (kind, value), first
    context kept: endpoints of the conversation flows, DTLS certificate SHA-256s, a=fingerprints that match
    no certificate (rewritten in transit, from the findings of DTLS001), TURN servers and relayed addresses,
    software strings (STUN SOFTWARE, HTTP User-Agent / Server), and the addresses of every finding at medium
    or above."""
    rows: list[dict[str, str]] = []

    def add(kind: str, value: Any, context: str) -> None:
        if value is None or value is pd.NA or str(value) == "":
            return
        rows.append({"kind": kind, "value": str(value), "context": context})

    flows = conversation_flows(flows)
    if flows is not None and len(flows):
        for c in ("a", "b", "src", "dst"):
            if c in flows.columns:
                for _, r in flows.iterrows():
                    add(_addr_kind(r[c]), r[c], f"flow {r['flow_id']} ({r.get('transport')})")
    if dtls is not None and len(dtls):
        for side in ("client", "server"):
            c = f"{side}_cert_sha256"
            if c in dtls.columns:
                for _, r in dtls[dtls[c].notna()].iterrows():
                    add("cert_sha256", r[c], f"DTLS {side} certificate, flow {r['flow_id']}")
    if findings is not None:
        for _, r in fingerprint_mismatches(findings).iterrows():
            add(
                "sdp_fingerprint_sha256" if r["kind"] == "fingerprint_without_certificate" else "cert_sha256",
                r["sha256"],
                r["kind"].replace("_", " "),
            )
    if stun is not None and len(stun):
        for _, r in relay_allocations(stun).iterrows():
            add("turn_server", r["server"], "TURN Allocate success")
            add("relayed_address", r["relayed"], f"XOR-RELAYED-ADDRESS for {r['client']}")
        if "software" in stun.columns:
            for v in stun["software"].dropna().unique():
                add("software", v, "STUN SOFTWARE")
    if signalling is not None and len(signalling):
        for c, what in (("user_agent", "HTTP User-Agent"), ("server", "HTTP Server")):
            if c in signalling.columns:
                for v in signalling[c].dropna().unique():
                    add("software", v, what)
    fd = findings_frame(findings)
    for _, f in fd.iterrows():
        if f["severity"] in ("medium", "high", "critical"):
            for e in _as_list(f["endpoints"]):
                add(_addr_kind(e), e, f"finding {f['slug']}")
    out = pd.DataFrame(rows, columns=INDICATOR_COLUMNS)
    return out.drop_duplicates(subset=["kind", "value"]).reset_index(drop=True)
