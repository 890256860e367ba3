"""Indicators out: every indicator the findings name, with all its contexts, role and severity.

An *indicator* is an observable value a responder can search for elsewhere (SIEM, firewall logs, another
capture): an address, an ``ip:port`` endpoint, a certificate SHA-256, a URL, a software string, an ICE ufrag,
an SSRC, a TURN username. Its *contexts* are the findings that name it (ID, slug, severity, confidence,
identity, frames, the evidence field it came from); its *roles* are what the capture shows the host doing
(peer, signalling server/client, TURN server/client, relayed address); its *severity* is the highest of its
contexts'.

:func:`indicators` builds them from a report document (:func:`rtcforensics.report.jsonout.document`, so
secrets are already redacted); :func:`write_indicators` writes

- ``indicators.csv`` — one row per indicator and context (cells a spreadsheet could run neutralised);
- ``indicators.json`` — the indicators with their contexts, and per finding its Wireshark display filter;
- ``indicators.stix.json`` — a STIX 2.1 bundle (the ``stix2`` library, ``pip install rtcforensics[export]``):
  one Indicator per value with a STIX pattern, an Identity for the tool, a Report tying them to the capture;
- ``filters.txt`` — a Wireshark display filter per finding (its frames, and its endpoints);
- ``slice-<ID>-<identity>.pcapng`` — per finding, the frames it cites, cut from the capture with editcap.

Each file is written atomically and listed with its sha256 in ``manifest.json`` (:class:`outfiles.OutputDir`).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..values import host, listish, split_endpoint
from .safe import REDACTED, csv_cell

SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
NAMESPACE = uuid.UUID("5c3f8a52-53b9-4c39-9d43-2f1f0d5e2b61")  # STIX ids derived from the value: reproducible
MAX_SLICE_RANGES = 2000
CSV_COLUMNS = (
    "type",
    "value",
    "roles",
    "severity",
    "finding_id",
    "slug",
    "finding_severity",
    "confidence",
    "identity",
    "field",
    "frames",
    "display_filter",
)

# evidence field → indicator type (fields not listed are not indicators)
_FIELD_TYPES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda k: k.endswith("cert_sha256") or k.endswith("fingerprints_sha256"), "x509-sha256"),
    (lambda k: k in ("software", "user_agent", "server_software"), "software"),
    (lambda k: k in ("url", "urls", "uri"), "url"),
    (lambda k: k in ("ice_ufrag", "ufrag"), "ice-ufrag"),
    (lambda k: k == "ssrc", "rtp-ssrc"),
    (lambda k: k in ("username", "turn_username"), "turn-username"),
    (
        lambda k: k in ("server", "relayed", "peer", "xor_peer", "relayed_address", "mapped", "xor_mapped"),
        "endpoint",
    ),
)


def _addr_type(a: str) -> str | None:
    try:
        return "ipv6-addr" if ipaddress.ip_address(a).version == 6 else "ipv4-addr"
    except ValueError:
        return None


def _endpoint_values(text: str) -> list[tuple[str, str]]:
    """(type, value) for an endpoint or bare address: the endpoint itself (when it has a port) and its host."""
    h = host(text)
    out: list[tuple[str, str]] = []
    if h is None:
        return out
    kind = _addr_type(h)
    if kind is None:
        return out
    if str(text) != h:
        out.append(("endpoint", str(text)))
    out.append((kind, h))
    return out


def _field_values(key: str, value: Any) -> list[tuple[str, str]]:
    kind = next((t for match, t in _FIELD_TYPES if match(key)), None)
    if kind is None and key == "fingerprints":
        kind = "x509-fingerprint"
    if kind is None:
        return []
    out: list[tuple[str, str]] = []
    items: Iterable[Any] = listish(value) if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if isinstance(v, (list, tuple)):
            out += [p for x in v for p in _field_values(key, x)]
            continue
        if v is None or v == "" or isinstance(v, bool) or REDACTED in str(v):
            continue
        text = str(v)
        if kind == "endpoint":
            out += _endpoint_values(text)
        elif kind == "x509-fingerprint":  # "sha-256 AB..." as written in SDP
            algo, _, hexval = text.partition(" ")
            if algo.lower() == "sha-256" and hexval:
                out.append(("x509-sha256", hexval.replace(":", "").lower()))
        elif kind == "x509-sha256":
            out.append((kind, text.replace(":", "").lower()))
        else:
            out.append((kind, text))
    return out


def roles_of(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Address → the roles the capture shows it in (a host can have several)."""
    roles: dict[str, set[str]] = {}
    ov = doc.get("overview") or {}

    def add(ep: Any, role: str) -> None:
        h = host(ep)
        if h:
            roles.setdefault(h, set()).add(role)

    # (overview part, field, role)
    for part, key, role in (
        ("signalling", "server", "signalling server"),
        ("signalling", "client", "signalling client"),
        ("relays", "server", "TURN server"),
        ("relays", "client", "TURN client"),
        ("relays", "relayed", "TURN relayed address"),
        ("legs", "a", "media peer"),
        ("legs", "b", "media peer"),
        ("handshakes", "client", "DTLS client"),
        ("handshakes", "server", "DTLS server"),
    ):
        for row in ov.get(part, []):
            add(row.get(key), role)
    return roles


def display_filter(f: dict[str, Any], limit: int = 500) -> str:
    """A Wireshark display filter for finding ``f``: its frames, else its endpoints."""
    frames = [int(x) for x in f.get("frames", [])][:limit]
    if frames:
        return "frame.number in {" + " ".join(map(str, frames)) + "}"
    parts = []
    for ep in f.get("endpoints", []):
        h, port = split_endpoint(str(ep))
        kind = _addr_type(h)
        if not kind:
            continue
        field = "ipv6.addr" if kind == "ipv6-addr" else "ip.addr"
        parts.append(
            f"({field} == {h}"
            + (f" && (udp.port == {port} || tcp.port == {port}))" if port is not None else ")")
        )
    return " || ".join(dict.fromkeys(parts))


def indicators(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The indicators of a report document, most severe first, each with its contexts and roles."""
    roles = roles_of(doc)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for f in doc.get("findings", []):
        ctx = {
            "finding_id": f["id"],
            "slug": f["slug"],
            "severity": f["severity"],
            "confidence": f["confidence"],
            "identity": f["identity"],
            "frames": list(f.get("frames", [])),
            "display_filter": display_filter(f),
        }
        pairs = [(t, v, "endpoints") for ep in f.get("endpoints", []) for t, v in _endpoint_values(str(ep))]
        pairs += [(t, v, k) for k, val in (f.get("evidence") or {}).items() for t, v in _field_values(k, val)]
        for kind, value, field in pairs:
            ind = found.setdefault(
                (kind, value), {"type": kind, "value": value, "roles": [], "severity": "info", "contexts": []}
            )
            c = {**ctx, "field": field}
            if not any(x["identity"] == c["identity"] and x["field"] == field for x in ind["contexts"]):
                ind["contexts"].append(c)
            if SEVERITY_ORDER.index(f["severity"]) > SEVERITY_ORDER.index(ind["severity"]):
                ind["severity"] = f["severity"]
    for ind in found.values():
        h = (
            ind["value"]
            if ind["type"] in ("ipv4-addr", "ipv6-addr")
            else host(ind["value"])
            if ind["type"] == "endpoint"
            else None
        )
        ind["roles"] = sorted(roles.get(h or "", set()))
    return sorted(found.values(), key=lambda i: (-SEVERITY_ORDER.index(i["severity"]), i["type"], i["value"]))


def to_csv(inds: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for ind in inds:
        for c in ind["contexts"]:
            row = (
                ind["type"],
                ind["value"],
                "; ".join(ind["roles"]),
                ind["severity"],
                c["finding_id"],
                c["slug"],
                c["severity"],
                c["confidence"],
                c["identity"],
                c["field"],
                " ".join(map(str, c["frames"][:200])),
                c["display_filter"],
            )
            w.writerow([csv_cell(str(x)) for x in row])
    return buf.getvalue()


def _quote(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stix_pattern(kind: str, value: str) -> str | None:
    """The STIX 2.1 pattern of one indicator (None for kinds STIX has no object for)."""
    if kind in ("ipv4-addr", "ipv6-addr"):
        return f"[{kind}:value = {_quote(value)}]"
    if kind == "endpoint":
        h, port = split_endpoint(value)
        t = _addr_type(h)
        if not t or port is None:
            return None
        return (
            f"[network-traffic:dst_ref.type = '{t}' AND network-traffic:dst_ref.value = {_quote(h)} AND "
            f"network-traffic:dst_port = {port}]"
        )
    if kind == "x509-sha256":
        return f"[x509-certificate:hashes.'SHA-256' = {_quote(value)}]"
    if kind == "url":
        return f"[url:value = {_quote(value)}]"
    if kind == "software":
        return f"[software:name = {_quote(value)}]"
    if kind == "turn-username":
        return f"[user-account:account_login = {_quote(value)}]"
    return None


def to_stix(doc: dict[str, Any], inds: list[dict[str, Any]]) -> str:
    """A STIX 2.1 bundle (JSON text) of the indicators; ids derived from the values (same input, same ids)."""
    import stix2

    cap = doc.get("capture") or {}
    when = (doc.get("overview") or {}).get("period") or {}
    import pandas as pd

    try:  # the capture's first packet: the same capture gives the same bundle
        created = pd.Timestamp(str(when.get("first") or doc.get("generated"))).tz_convert("UTC").floor("ms")
    except (ValueError, TypeError):
        created = pd.Timestamp("1970-01-01", tz="UTC")
    created = created.to_pydatetime()
    tool = stix2.Identity(
        id=f"identity--{uuid.uuid5(NAMESPACE, 'rtcforensics')}",
        name="rtcforensics",
        identity_class="system",
        created=created,
        modified=created,
    )
    objs: list[Any] = [tool]
    for ind in inds:
        pattern = stix_pattern(ind["type"], ind["value"])
        if pattern is None:
            continue
        ctx = "; ".join(
            f"{c['finding_id']} {c['slug']} ({c['severity']}, frames {' '.join(map(str, c['frames'][:20]))})"
            for c in ind["contexts"]
        )
        objs.append(
            stix2.Indicator(
                id=f"indicator--{uuid.uuid5(NAMESPACE, ind['type'] + '|' + ind['value'])}",
                name=f"{ind['type']} {ind['value']}"[:250],
                pattern=pattern,
                pattern_type="stix",
                valid_from=created,
                created=created,
                modified=created,
                created_by_ref=tool.id,
                indicator_types=["anomalous-activity"],
                labels=[
                    f"severity:{ind['severity']}",
                    *[f"role:{r}" for r in ind["roles"]],
                    *sorted({f"finding:{c['slug']}" for c in ind["contexts"]}),
                ],
                description=f"seen in {cap.get('name') or cap.get('path')}: {ctx}"[:4000],
            )
        )
    objs.append(
        stix2.Report(
            id=f"report--{uuid.uuid5(NAMESPACE, 'report|' + str(cap.get('sha256') or cap.get('path')))}",
            name=f"rtcforensics indicators: {cap.get('name') or cap.get('path')}",
            published=created,
            created=created,
            modified=created,
            created_by_ref=tool.id,
            report_types=["threat-report"],
            object_refs=[o.id for o in objs],
            description=f"capture sha256 {cap.get('sha256', '?')}; {len(doc.get('findings', []))} finding(s)",
        )
    )
    bundle = stix2.Bundle(
        objects=objs, id=f"bundle--{uuid.uuid5(NAMESPACE, 'bundle|' + str(cap.get('sha256')))}"
    )
    return bundle.serialize(pretty=True) + "\n"


def filters_text(doc: dict[str, Any]) -> str:
    lines = ["# Wireshark display filters, one per finding: ID slug severity identity", ""]
    for f in doc.get("findings", []):
        lines += [
            f"# {f['id']} {f['slug']} {f['severity']} {f['identity']}",
            display_filter(f) or "# (no frames)",
            "",
        ]
    return "\n".join(lines)


def slice_name(f: dict[str, Any]) -> str:
    return f"slice-{f['id']}-{f['identity'].rsplit(':', 1)[-1]}.pcapng"


def write_indicators(
    doc: dict[str, Any],
    out: Any,
    *,
    capture: Path | None = None,
    slices: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Write the indicator files of ``doc`` into ``out`` (an :class:`outfiles.OutputDir`); returns them.
    Files that cannot be written are recorded in ``out.missing`` (and the manifest), never skipped silently."""
    say = progress or (lambda _m: None)
    inds = indicators(doc)
    findings = doc.get("findings", [])
    names = ["indicators.csv", "indicators.json", "indicators.stix.json", "filters.txt"]
    if slices and capture is not None:
        names += [slice_name(f) for f in findings if f.get("frames")]
    for n in names + ["manifest.json", "SHA256SUMS"]:
        out.check_free(n)
    out.write_text("indicators.csv", to_csv(inds))
    per_finding = [
        {
            "id": f["id"],
            "slug": f["slug"],
            "severity": f["severity"],
            "identity": f["identity"],
            "frames": f.get("frames", []),
            "display_filter": display_filter(f),
            "slice": slice_name(f) if slices and capture is not None and f.get("frames") else None,
        }
        for f in findings
    ]
    out.write_text(
        "indicators.json",
        json.dumps(
            {"capture": doc.get("capture"), "indicators": inds, "findings": per_finding},
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
    )
    try:
        out.write_text("indicators.stix.json", to_stix(doc, inds))
    except ImportError:
        out.not_written("indicators.stix.json", "needs the stix2 library (pip install rtcforensics[export])")
        say("indicators.stix.json: NOT WRITTEN (needs stix2: pip install rtcforensics[export])")
    out.write_text("filters.txt", filters_text(doc))
    if slices and capture is not None:
        for f in findings:
            if f.get("frames"):
                _slice(out, capture, f, say)
    out.manifest(doc.get("capture"), {"indicators": len(inds), "findings": len(findings)})
    return inds


def _slice(out: Any, capture: Path, f: dict[str, Any], say: Callable[[str], None]) -> None:
    from ..dissect import tshark
    from ..errors import ToolError

    ranges = tshark.frame_ranges(sorted({int(x) for x in f["frames"]}))
    name = slice_name(f)
    if len(ranges) > MAX_SLICE_RANGES:
        out.not_written(name, f"{len(ranges)} frame ranges: too many for one editcap command line")
        return
    src = capture.absolute()  # never read as an option, whatever the file is called
    try:
        out.write(
            name,
            lambda p: tshark.run_tool(["-r", str(src), str(p.absolute()), *ranges], path=src, tool="editcap"),
        )
    except ToolError as e:
        out.not_written(name, " ".join(str(e).split()))
        say(f"{name}: NOT WRITTEN ({' '.join(str(e).split())})")
