"""SARIF 2.1.0: rules from the check catalogue, results located by capture (artifact) and frame (logical
locations ``frame N``), the finding identity as a partial fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._version import __version__
from ..checks import Severity, load_catalogue
from .jsonout import input_warnings
from .safe import json_inert

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def rules() -> list[dict[str, Any]]:
    out = []
    for cid, c in load_catalogue().items():
        sev = str(c.severity)
        out.append(
            {
                "id": cid,
                "name": c.slug,
                "shortDescription": {"text": c.title},
                "fullDescription": {"text": c.sections.get("What it flags", c.title)},
                "help": {
                    "text": "\n\n".join(f"{k}: {v}" for k, v in c.sections.items()),
                    "markdown": "\n\n".join(f"**{k}**: {v}" for k, v in c.sections.items()),
                },
                "defaultConfiguration": {"level": LEVEL[sev]},
                "properties": {
                    "tags": ["security", "webrtc", c.family.lower()],
                    "precision": str(c.confidence),
                    "security-severity": SECURITY_SEVERITY[sev],
                    "references": list(c.references),
                },
            }
        )
    return out


def _uri(cap: dict[str, Any]) -> str:
    p = cap.get("path") or cap.get("name") or "capture"
    return Path(p).as_posix()


def run_for(doc: dict[str, Any]) -> dict[str, Any]:
    rule_list = rules()
    index = {r["id"]: i for i, r in enumerate(rule_list)}
    uri = _uri(doc["capture"])
    artifact: dict[str, Any] = {"location": {"uri": uri}, "mimeType": "application/vnd.tcpdump.pcap"}
    if doc["capture"].get("sha256"):
        artifact["hashes"] = {"sha-256": doc["capture"]["sha256"]}
    results = []
    for f in doc["findings"]:
        loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": uri, "index": 0}}}
        if f["frames"]:
            loc["logicalLocations"] = [
                {"name": f"frame {n}", "kind": "element", "fullyQualifiedName": f"{uri}#frame={n}"}
                for n in f["frames"][:20]
            ]
        results.append(
            {
                "ruleId": f["id"],
                "ruleIndex": index[f["id"]],
                "level": LEVEL[f["severity"]],
                "message": {"text": f"{f['title']}: {f['message']}"},
                "locations": [loc],
                "partialFingerprints": {"rtcforensicsIdentity/v1": f["identity"]},
                "properties": {
                    "slug": f["slug"],
                    "severity": f["severity"],
                    "confidence": f["confidence"],
                    "endpoints": f["endpoints"],
                    "frames": f["frames"],
                    "flow_id": f["flow_id"],
                    "evidence": f["evidence"],
                    "security-severity": SECURITY_SEVERITY[f["severity"]],
                },
            }
        )
    not_seen = [
        {
            "level": "note",
            "message": {"text": f"{c['id']} {c['slug']}: {c['status']}: {c['reason']}"},
            "descriptor": {"id": c["id"], "index": index[c["id"]]},
        }
        for c in doc["coverage"]
        if c["status"] in ("not observable", "failed") and c["id"] in index
    ]
    problems = [{"level": "warning", "message": {"text": w}} for w in input_warnings(doc)]
    problems += [
        {"level": "note", "message": {"text": f"not examined: {o['why']}"}}
        for o in doc["overview"].get("opaque_legs", [])
    ]
    tool_failed = any(
        a.get("layer") == "tshark" and a.get("name") == "tshark_failed" for a in doc["anomalies"]
    )
    return {
        "tool": {
            "driver": {
                "name": "rtcforensics",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": "https://rtcforensics.invalid/",
                "rules": rule_list,
            }
        },
        "artifacts": [artifact],
        "invocations": [
            {
                "executionSuccessful": (doc.get("run") or {}).get("complete", True)
                and not tool_failed
                and not any(c["status"] == "failed" for c in doc["coverage"]),
                "toolExecutionNotifications": problems,
                "toolConfigurationNotifications": not_seen,
            }
        ],
        "results": results,
        "columnKind": "unicodeCodePoints",
    }


def render(docs: dict[str, Any] | list[dict[str, Any]]) -> str:
    docs = docs if isinstance(docs, list) else [docs]
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run_for(d) for d in docs]}
    return json_inert(log, sort_keys=False) + "\n"


__all__ = ["Severity", "render", "rules"]
