"""Incident-response views: who talked to whom, through which relays, encrypted or not, fingerprints against
certificates, and the indicators to export. Pure functions over frames (tested without a kernel)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .labs import sdp_fingerprints
from .select import _as_list, _col, encryption_of, findings_frame

INDICATOR_COLUMNS = ["kind", "value", "context"]


def relay_allocations(stun: pd.DataFrame | None) -> pd.DataFrame:
    """One row per successful TURN Allocate: ``server`` (ip:port), ``client``, ``relayed``, ``username``,
    ``authenticated`` (the request carried MESSAGE-INTEGRITY), ``peers`` (XOR-PEER-ADDRESSes that client asked
    the same server for), ``frame``."""
    cols = ["server", "client", "relayed", "username", "authenticated", "peers", "frame"]
    if stun is None or not len(stun):
        return pd.DataFrame({c: [] for c in cols})
    method = stun["method"].astype(str)
    cls = stun["cls"].astype(str)
    ok = stun[(method == "Allocate") & (cls == "success")]
    req = stun[(method == "Allocate") & (cls == "request")].set_index("txid", drop=False)
    perm = stun[method.isin(["CreatePermission", "ChannelBind", "Send"]) & (cls.isin(["request", "indication"]))]
    rows = []
    for _, r in ok.iterrows():
        server = f"{r['src']}:{int(r['sport'])}"
        client = f"{r['dst']}:{int(r['dport'])}"
        q = req.loc[[r["txid"]]] if r["txid"] in req.index else None
        user = q["username"].iloc[-1] if q is not None else None
        integ = q["has_integrity"].iloc[-1] if q is not None else pd.NA
        peers: list[str] = []
        p = perm[(perm["src"] == r["dst"]) & (perm["sport"] == r["dport"]) & (perm["dst"] == r["src"])
                 & (perm["dport"] == r["sport"])]
        for v in p["xor_peer"]:
            for x in str(v).split(",") if v is not None and v is not pd.NA else []:
                if x and x not in peers:
                    peers.append(x)
        rows.append({"server": server, "client": client, "relayed": r.get("xor_relayed"),
                     "username": None if user is pd.NA else user,
                     "authenticated": None if integ is pd.NA else bool(integ), "peers": peers,
                     "frame": int(r["frame"])})
    return pd.DataFrame(rows, columns=cols)


def fingerprint_table(dtls: pd.DataFrame | None, sdp: pd.DataFrame | None) -> pd.DataFrame:
    """Each DTLS certificate on the wire against the a=fingerprints in the signalling: ``flow_id``, ``side``,
    ``endpoint``, ``cert_sha256``, ``in_sdp`` (True / False; NA when no SDP fingerprint was readable)."""
    cols = ["flow_id", "side", "endpoint", "cert_sha256", "in_sdp"]
    if dtls is None or not len(dtls):
        return pd.DataFrame({c: [] for c in cols})
    fps = sdp_fingerprints(sdp) if sdp is not None else set()
    rows: list[dict[str, Any]] = []
    for _, r in dtls.iterrows():
        for side in ("client", "server"):
            h = r.get(f"{side}_cert_sha256")
            if h is None or h is pd.NA:
                continue
            h = str(h).lower()
            rows.append({"flow_id": int(r["flow_id"]), "side": side, "endpoint": r.get(side), "cert_sha256": h,
                         "in_sdp": (h in fps) if fps else pd.NA})
    out = pd.DataFrame(rows, columns=cols)
    out["in_sdp"] = out["in_sdp"].astype("boolean")
    return out


def flow_encryption(flows: pd.DataFrame | None) -> pd.DataFrame:
    """Flows with their encryption state in words (``encrypted`` / ``plaintext`` / ``unknown``)."""
    if flows is None or not len(flows):
        return pd.DataFrame({"flow_id": [], "encryption": []})
    out = flows.copy()
    out["encryption"] = [encryption_of(r) for _, r in flows.iterrows()]
    return out


def indicators(*, flows: pd.DataFrame | None = None, dtls: pd.DataFrame | None = None,
               stun: pd.DataFrame | None = None, findings: Any = None) -> pd.DataFrame:
    """Indicators to hand on (``kind``, ``value``, ``context``), deduplicated: endpoints of the flows,
    certificate SHA-256s, TURN servers and relayed addresses, STUN SOFTWARE strings, and the endpoints of
    every finding at medium or above."""
    rows: list[dict[str, str]] = []
    if flows is not None and len(flows):
        for c in ("src", "dst", "a", "b", "endpoint_a", "endpoint_b"):
            if c in flows.columns:
                for v in flows[c].dropna().astype(str):
                    rows.append({"kind": "address", "value": v, "context": "flow endpoint"})
        ep = _col(flows, "endpoints")
        if ep:
            for v in flows[ep]:
                for x in _as_list(v):
                    rows.append({"kind": "endpoint", "value": str(x), "context": "flow endpoint"})
    if dtls is not None and len(dtls):
        for side in ("client", "server"):
            c = f"{side}_cert_sha256"
            if c in dtls.columns:
                for v in dtls[c].dropna():
                    rows.append({"kind": "cert_sha256", "value": str(v), "context": f"DTLS {side} certificate"})
    if stun is not None and len(stun):
        for _, r in relay_allocations(stun).iterrows():
            rows.append({"kind": "turn_server", "value": r["server"], "context": "TURN Allocate success"})
            if r["relayed"] is not None and r["relayed"] is not pd.NA:
                rows.append({"kind": "relayed_address", "value": str(r["relayed"]), "context": "XOR-RELAYED-ADDRESS"})
        if "software" in stun.columns:
            for v in stun["software"].dropna().unique():
                rows.append({"kind": "software", "value": str(v), "context": "STUN SOFTWARE"})
    fd = findings_frame(findings)
    for _, f in fd.iterrows():
        if f["severity"] in ("medium", "high", "critical"):
            for e in _as_list(f["endpoints"]):
                rows.append({"kind": "endpoint", "value": str(e), "context": f"finding {f['slug']}"})
    out = pd.DataFrame(rows, columns=INDICATOR_COLUMNS)
    return out.drop_duplicates(subset=["kind", "value"]).reset_index(drop=True)
