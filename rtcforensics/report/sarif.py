"""SARIF 2.1.0: rules from the check catalogue, results located by capture (artifact) and frame (logical
locations ``frame N``), the finding identity as a partial fingerprint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..checks import Check, Severity, load_catalogue
from .jsonout import input_warnings
from .safe import json_inert

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def rule(check: Check, *, parameters: bool = False) -> dict[str, Any]:
    """One check as a SARIF reporting descriptor (with its parameters' defaults when ``parameters``)."""
    sev = str(check.severity)
    props: dict[str, Any] = {
        "tags": ["security", "webrtc", check.family.lower()],
        "precision": str(check.confidence),
        "security-severity": SECURITY_SEVERITY[sev],
        "references": list(check.references),
    }
    if parameters:
        props["parameters"] = check.param_defaults()
    return {
        "id": check.id,
        "name": check.slug,
        "shortDescription": {"text": check.title},
        "fullDescription": {"text": check.sections.get("What it flags", check.title)},
        "help": {
            "text": "\n\n".join(f"{k}: {v}" for k, v in check.sections.items()),
            "markdown": "\n\n".join(f"**{k}**: {v}" for k, v in check.sections.items()),
        },
        "defaultConfiguration": {"level": LEVEL[sev]},
        "properties": props,
    }


def rules() -> list[dict[str, Any]]:
    return [rule(c) for c in load_catalogue().values()]


def artifact(uri: str, sha256: str | None) -> dict[str, Any]:
    """A capture as a SARIF artifact."""
    art: dict[str, Any] = {"location": {"uri": uri}, "mimeType": "application/vnd.tcpdump.pcap"}
    if sha256:
        art["hashes"] = {"sha-256": sha256}
    return art


def location(uri: str, index: int, frames: Sequence[int] = ()) -> dict[str, Any]:
    """A location in the capture ``uri`` (artifact ``index``), at its first 20 ``frames`` if any."""
    loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": uri, "index": index}}}
    if frames:
        loc["logicalLocations"] = [
            {"name": f"frame {n}", "kind": "element", "fullyQualifiedName": f"{uri}#frame={n}"}
            for n in frames[:20]
        ]
    return loc


def result(f: Mapping[str, Any], locations: list[dict[str, Any]], rule_index: int) -> dict[str, Any]:
    """A finding record (``Finding.to_dict()``) as a SARIF result of the rule at ``rule_index``."""
    return {
        "ruleId": f["id"],
        "ruleIndex": rule_index,
        "level": LEVEL[f["severity"]],
        "message": {"text": f"{f['title']}: {f['message']}"},
        "locations": locations,
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


def coverage_notes(coverage: Iterable[Mapping[str, Any]], index: Mapping[str, int]) -> list[dict[str, Any]]:
    """The checks that could not run (not observable, failed) as configuration notifications."""
    return [
        {
            "level": "note",
            "message": {"text": f"{c['id']} {c['slug']}: {c['status']}: {c['reason']}"},
            "descriptor": {"id": c["id"], "index": index[c["id"]]},
        }
        for c in coverage
        if c["status"] in ("not observable", "failed") and c["id"] in index
    ]


def run(
    rule_list: list[dict[str, Any]],
    artifacts: list[dict[str, Any]],
    results: list[dict[str, Any]],
    *,
    successful: bool,
    problems: list[dict[str, Any]],
    not_seen: list[dict[str, Any]],
) -> dict[str, Any]:
    """One SARIF run of rtcforensics."""
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
        "artifacts": artifacts,
        "invocations": [
            {
                "executionSuccessful": successful,
                "toolExecutionNotifications": problems,
                "toolConfigurationNotifications": not_seen,
            }
        ],
        "results": results,
        "columnKind": "unicodeCodePoints",
    }


def log(runs: list[dict[str, Any]]) -> str:
    """The SARIF 2.1.0 log of ``runs`` as JSON text."""
    return json_inert({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}, sort_keys=False) + "\n"


def _uri(cap: dict[str, Any]) -> str:
    p = cap.get("path") or cap.get("name") or "capture"
    return Path(p).as_posix()


def run_for(doc: dict[str, Any]) -> dict[str, Any]:
    rule_list = rules()
    index = {r["id"]: i for i, r in enumerate(rule_list)}
    uri = _uri(doc["capture"])
    results = [result(f, [location(uri, 0, f["frames"])], index[f["id"]]) for f in doc["findings"]]
    problems = [{"level": "warning", "message": {"text": w}} for w in input_warnings(doc)]
    problems += [
        {"level": "note", "message": {"text": f"not examined: {o['why']}"}}
        for o in doc["overview"].get("opaque_legs", [])
    ]
    tool_failed = any(
        a.get("layer") == "tshark" and a.get("name") == "tshark_failed" for a in doc["anomalies"]
    )
    return run(
        rule_list,
        [artifact(uri, doc["capture"].get("sha256"))],
        results,
        successful=(doc.get("run") or {}).get("complete", True)
        and not tool_failed
        and not any(c["status"] == "failed" for c in doc["coverage"]),
        problems=problems,
        not_seen=coverage_notes(doc["coverage"], index),
    )


def render(docs: dict[str, Any] | list[dict[str, Any]]) -> str:
    docs = docs if isinstance(docs, list) else [docs]
    return log([run_for(d) for d in docs])


__all__ = [
    "Severity",
    "artifact",
    "coverage_notes",
    "location",
    "log",
    "render",
    "result",
    "rule",
    "rules",
    "run",
]
