"""The JSON report: a documented, versioned document every other renderer is built from.

Schema ``rtcforensics-report/1`` (:data:`SCHEMA`, a JSON Schema; tests validate every output with it)::

    {"schema": "rtcforensics-report/1",
     "tool": {"name", "version"},
     "generated": ISO-8601 UTC,
     "capture": {"path", "name", "sha256"},
     "summary": {"findings": {severity: count}, "coverage": {status: count}},
     "overview": {"period", "legs", "relays", "signalling", "handshakes", "streams", "notes"},
     "findings": [finding record: id, slug, severity, confidence, title, message, endpoints, flow_id,
                  frames, evidence, identity, references],
     "coverage": [{"id", "slug", "status", "reason", "findings"}],
     "anomalies": [{"frame", "ts", "layer", "name", "detail", "flow_id"}]  (check failures, and the capture's
                  own rows of layers "capture" (damaged / cut short) and "tshark" (tool failures)),
     "secrets_shown": bool}

``capture.truncated`` is true when the file is damaged or cut short (results cover what could be read);
``summary.anomalies`` counts every anomaly row of the capture by layer. :func:`input_warnings` turns both
into the lines every format shows.

Versioning: additive changes keep ``/1``; a removed or re-typed field bumps it. Secrets are redacted
(``<redacted>``) unless ``show_secrets``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .._version import __version__
from ..checks.analyze import Report, _plain
from ..checks.registry import Confidence, Severity
from .overview import build_overview
from .safe import json_inert, redact

SCHEMA_ID = "rtcforensics-report/1"
_SEV = [str(s) for s in Severity]
_CONF = [str(c) for c in Confidence]
FINDING_SCHEMA = {
    "type": "object",
    "required": ["id", "slug", "severity", "confidence", "title", "message", "endpoints", "flow_id", "frames",
                 "evidence", "identity", "references"],
    "properties": {
        "id": {"type": "string", "pattern": "^(SIG|SDP|DTLS|SRTP|ICE|TURN|COMP)[0-9]{3}$"},
        "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
        "severity": {"enum": _SEV}, "confidence": {"enum": _CONF},
        "title": {"type": "string"}, "message": {"type": "string"},
        "endpoints": {"type": "array", "items": {"type": "string"}},
        "flow_id": {"type": ["integer", "null"]},
        "frames": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "evidence": {"type": "object"}, "identity": {"type": "string"},
        "references": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "rtcforensics analysis report",
    "type": "object",
    "required": ["schema", "tool", "generated", "capture", "summary", "overview", "findings", "coverage",
                 "anomalies", "secrets_shown"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "tool": {"type": "object", "required": ["name", "version"],
                 "properties": {"name": {"const": "rtcforensics"}, "version": {"type": "string"}}},
        "generated": {"type": "string"},
        "capture": {"type": "object", "required": ["path"],
                    "properties": {"path": {"type": "string"}, "name": {"type": "string"},
                                   "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                   "truncated": {"type": "boolean"}}},
        "summary": {"type": "object", "required": ["findings", "coverage"],
                    "properties": {"findings": {"type": "object",
                                                "properties": {s: {"type": "integer"} for s in _SEV}},
                                   "coverage": {"type": "object"},
                                   "anomalies": {"type": "object",
                                                 "additionalProperties": {"type": "integer"}}}},
        "overview": {"type": "object", "required": ["legs", "relays", "signalling", "handshakes", "streams"]},
        "findings": {"type": "array", "items": FINDING_SCHEMA},
        "coverage": {"type": "array", "items": {
            "type": "object", "required": ["id", "slug", "status", "reason", "findings"],
            "properties": {"status": {"enum": ["found", "clean", "not observable", "failed"]},
                           "reason": {"type": "string"}, "findings": {"type": "integer"}}}},
        "anomalies": {"type": "array"},
        "secrets_shown": {"type": "boolean"},
    },
}


# Anomaly layers about the input and the tools rather than one packet: each row goes into the report; and
# the keylog rows that say the whole keylog is of no use (not each unreadable line).
INPUT_LAYERS = ("capture", "tshark")
KEYLOG_WARNINGS = ("keylog_unusable", "keylog_no_match")
MAX_INPUT_ROWS = 50


def capture_anomalies(cap: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(rows of the input layers, counts of every row by layer) from the capture's anomaly log."""
    log = getattr(getattr(cap, "dissection", None), "anomalies", None)
    if log is None:
        return [], {}
    df = log.frame()
    counts = {str(k): int(v) for k, v in df["layer"].astype(str).value_counts().sort_index().items()}
    rows = df[df["layer"].astype(str).isin(INPUT_LAYERS) | df["name"].astype(str).isin(KEYLOG_WARNINGS)]
    rows = rows.head(MAX_INPUT_ROWS)
    return [{k: _plain(v) for k, v in r.items()} for r in rows.to_dict("records")], counts


def input_warnings(doc: dict[str, Any]) -> list[str]:
    """What a reader must know before trusting the report: the capture is damaged or cut short, tshark failed.
    One line each (capture-derived text inside: renderers escape them like any other)."""
    out = []
    if doc["capture"].get("truncated"):
        out.append("the capture file is damaged or cut short: the results cover only the packets read before "
                   "the damage")
    for a in doc.get("anomalies", []):
        if a.get("layer") == "capture":
            where = f" (after frame {a['frame']})" if a.get("frame") else ""
            out.append(f"capture {a.get('name')}{where}: {a.get('detail')}")
        elif a.get("name") in KEYLOG_WARNINGS:
            out.append(f"keylog: {a.get('detail')}")
        elif a.get("layer") == "tshark":
            out.append(f"tshark {a.get('name')}: signalling, SDP and candidates could not be read completely "
                       f"({a.get('detail')})")
    return out


def document(report: Report, show_secrets: bool = False) -> dict[str, Any]:
    """The report as a plain, JSON-able, redacted dict (the one source for every output format)."""
    cov: dict[str, int] = {}
    for c in report.coverage:
        cov[c.status] = cov.get(c.status, 0) + 1
    anomalies = [{k: _plain(v) for k, v in row.items()} for row in report.anomalies.to_dict("records")]
    input_rows, anomaly_counts = capture_anomalies(report.cap)
    doc = {
        "schema": SCHEMA_ID,
        "tool": {"name": "rtcforensics", "version": __version__},
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "capture": dict(report.capture),
        "summary": {"findings": report.counts(), "coverage": cov, "anomalies": anomaly_counts},
        "overview": build_overview(report.cap),
        "findings": [f.to_dict() for f in report.findings],
        "coverage": [c.to_dict() for c in report.coverage],
        "anomalies": input_rows + anomalies,
        "secrets_shown": bool(show_secrets),
    }
    out = redact(doc, show_secrets)
    out["secrets_shown"] = bool(show_secrets)
    return out


def render(doc: dict[str, Any] | list[dict[str, Any]], cross: dict[str, Any] | None = None) -> str:
    """JSON text: one document, or ``{"schema", "reports": [...], "cross_capture": {...}}`` for several."""
    if isinstance(doc, list):
        return json_inert({"schema": SCHEMA_ID + "+multi", "reports": doc, "cross_capture": cross or {}},
                          sort_keys=False) + "\n"
    return json_inert(doc, sort_keys=False) + "\n"
