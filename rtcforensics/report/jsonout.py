"""The JSON report: a documented, versioned document every other renderer is built from.

Schema ``rtcforensics-report/1`` (:data:`SCHEMA`, a JSON Schema; tests validate every output with it)::

    {"schema": "rtcforensics-report/1",
     "tool": {"name", "version"},
     "generated": ISO-8601 UTC,
     "capture": {"path", "name", "sha256"},
     "summary": {"findings": {severity: count}, "coverage": {status: count}},
     "overview": {"period", "legs", "relays", "signalling", "handshakes", "streams", "media_servers",
                  "opaque_legs", "notes"},
     "findings": [finding record: id, slug, severity, confidence, title, message, endpoints, flow_id,
                  frames, evidence, identity, references],
     "coverage": [{"id", "slug", "status", "reason", "findings"}],
     "anomalies": [{"frame", "ts", "layer", "name", "detail", "flow_id"}]  (check failures, and the capture's
                  own rows of layers "capture" (damaged / cut short) and "tshark" (tool failures)),
     "run": {"complete": bool, "incomplete_reasons": [str]},
     "secrets_shown": bool}

``run.complete`` is false when the results may miss something the capture holds: a check failed, a tool
failure or time-out made a check not observable, a budget or limit cut the work short. Every format says
so at the top (:func:`incomplete_reasons`), and the CLI exits with ``EXIT_INCOMPLETE`` (3) unless findings
at or above ``--fail-on`` already decide the exit code.

``capture.truncated`` is true when the file is damaged or cut short (results cover what could be read);
``summary.anomalies`` counts every anomaly row of the capture by layer. :func:`input_warnings` turns both
into the lines every format shows.

``overview.media_servers`` lists the SFU / conference servers at the hub of the call (``host``, ``role``,
``encryption``: media is hop by hop, readable there); each media leg names its ``media_server`` (or null).
``overview.opaque_legs`` lists the legs the tool could not see into (TLS no keylog opened: ``client``,
``server``, ``flow_id``, ``first_frame``, ``turn`` (a TURN-over-TLS relay connection), ``why``); such a
TURN leg is not listed as signalling.

Versioning: additive changes keep ``/1``; a removed or re-typed field bumps it. Secrets are redacted
(``<redacted>``) unless ``show_secrets``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd

from .._version import __version__
from ..checks import Confidence, Report, Severity
from ..checks.analyze import FINDING_COLUMNS
from ..checks.analyze import incomplete_reasons as log_reasons
from ..values import plain
from .overview import build_overview, empty_overview
from .safe import json_inert, redact, scrub_keylog

SCHEMA_ID = "rtcforensics-report/1"
_SEV = [str(s) for s in Severity]
_CONF = [str(c) for c in Confidence]
FINDING_SCHEMA = {
    "type": "object",
    "required": list(FINDING_COLUMNS),
    "properties": {
        "id": {"type": "string", "pattern": "^(SIG|SDP|DTLS|SRTP|ICE|TURN|COMP)[0-9]{3}$"},
        "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
        "severity": {"enum": _SEV},
        "confidence": {"enum": _CONF},
        "title": {"type": "string"},
        "message": {"type": "string"},
        "endpoints": {"type": "array", "items": {"type": "string"}},
        "flow_id": {"type": ["integer", "null"]},
        "frames": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "evidence": {"type": "object"},
        "identity": {"type": "string"},
        "references": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "rtcforensics analysis report",
    "type": "object",
    "required": [
        "schema",
        "tool",
        "generated",
        "capture",
        "summary",
        "overview",
        "findings",
        "coverage",
        "anomalies",
        "secrets_shown",
    ],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "tool": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {"name": {"const": "rtcforensics"}, "version": {"type": "string"}},
        },
        "generated": {"type": "string"},
        "capture": {
            "type": "object",
            "required": ["path"],
            "properties": {
                "path": {"type": "string"},
                "name": {"type": "string"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "truncated": {"type": "boolean"},
                "error": {"type": "string"},
            },
        },
        "summary": {
            "type": "object",
            "required": ["findings", "coverage"],
            "properties": {
                "findings": {"type": "object", "properties": {s: {"type": "integer"} for s in _SEV}},
                "coverage": {"type": "object"},
                "anomalies": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "overview": {"type": "object", "required": ["legs", "relays", "signalling", "handshakes", "streams"]},
        "findings": {"type": "array", "items": FINDING_SCHEMA},
        "coverage": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "slug", "status", "reason", "findings"],
                "properties": {
                    "status": {"enum": ["found", "clean", "not observable", "failed"]},
                    "reason": {"type": "string"},
                    "findings": {"type": "integer"},
                },
            },
        },
        "anomalies": {"type": "array"},
        "run": {
            "type": "object",
            "required": ["complete", "incomplete_reasons"],
            "properties": {
                "complete": {"type": "boolean"},
                "incomplete_reasons": {"type": "array", "items": {"type": "string"}},
            },
        },
        "secrets_shown": {"type": "boolean"},
    },
}


# Anomaly layers about the input and the tools rather than one packet: each row goes into the report; and
# the keylog rows that say the whole keylog is of no use (not each unreadable line).
INPUT_LAYERS = ("capture", "tshark")
KEYLOG_WARNINGS = ("keylog_unusable", "keylog_no_match")
MAX_INPUT_ROWS = 50


def _anomaly_log(cap: Any) -> Any:
    try:
        return getattr(cap, "anomaly_log", None) if cap is not None else None
    except Exception:
        return None


def capture_anomalies(cap: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(rows of the input layers, counts of every row by layer) from the capture's anomaly log."""
    log = _anomaly_log(cap)
    if log is None:
        return [], {}
    df = log.frame()
    counts = {str(k): int(v) for k, v in df["layer"].astype(str).value_counts().sort_index().items()}
    rows = df[
        df["layer"].astype(str).isin(INPUT_LAYERS)
        | df["name"].astype(str).isin(KEYLOG_WARNINGS)
        | _is_limit(df["name"].astype(str))
    ]
    rows = rows.head(MAX_INPUT_ROWS)
    return [{k: plain(v) for k, v in r.items()} for r in rows.to_dict("records")], counts


def _is_limit(names: Any) -> Any:
    """Anomaly names that say a budget or limit cut the work short (``budget_*``, ``*_limit``, ``limit_*``)."""
    return names.str.contains(r"budget|limit|timeout|timed_out", regex=True)


def incomplete_reasons(report: Any) -> list[str]:
    """Why the run's results may miss something the capture holds (empty: the run is complete).

    The Report's own ``incomplete`` (checks that failed or could not run, cut-short anomalies at analysis time),
    plus cut-short anomalies logged since (frames the report itself reads, e.g. data channels)."""
    own = getattr(report, "incomplete", None)
    out = (
        [str(r) for r in own]
        if isinstance(own, (list, tuple))
        else log_reasons(getattr(report, "coverage", []), None)
    )
    log = _anomaly_log(getattr(report, "cap", None))
    out += log_reasons([], log) if log is not None else []
    if own is True and not out:
        out.append("the analysis did not complete")
    return list(dict.fromkeys(out))


def input_warnings(doc: dict[str, Any]) -> list[str]:
    """What a reader must know before trusting the report: the capture is damaged or cut short, tshark failed.
    One line each (capture-derived text inside: renderers escape them like any other)."""
    reasons = (doc.get("run") or {}).get("incomplete_reasons", [])
    out = [f"INCOMPLETE RUN: {r}" for r in reasons]
    said = " ".join(reasons)
    capture = [a for a in doc.get("anomalies", []) if a.get("layer") == "capture"]
    limited = [a for a in capture if _is_limit(pd.Series([str(a.get("name") or "")])).iloc[0]]
    if doc["capture"].get("truncated") and not limited:  # a read limit stops the read before any damage
        out.append(
            "the capture file is damaged or cut short: the results cover only the packets read before "
            "the damage"
        )
    for a in doc.get("anomalies", []):
        if a.get("layer") == "capture":
            if a in limited and f"capture {a.get('name')}: {a.get('detail')}" in said:
                continue  # a read limit: already said by the incomplete-run line
            where = f" (after frame {a['frame']})" if a.get("frame") else ""
            out.append(f"capture {a.get('name')}{where}: {a.get('detail')}")
        elif a.get("name") in KEYLOG_WARNINGS:
            out.append(f"keylog: {a.get('detail')}")
        elif a.get("layer") == "tshark" and a.get("name") != "tshark_failed":
            out.append(
                f"tshark {a.get('name')}: signalling, SDP and candidates could not be read completely "
                f"({a.get('detail')})"
            )
    return out


def document(report: Report, show_secrets: bool = False) -> dict[str, Any]:
    """The report as a plain, JSON-able, redacted dict (the one source for every output format)."""
    cov: dict[str, int] = {}
    for c in report.coverage:
        cov[c.status] = cov.get(c.status, 0) + 1
    anomalies = [{k: plain(v) for k, v in row.items()} for row in report.anomalies.to_dict("records")]
    overview = build_overview(report.cap)
    # after the overview: a frame it reads (data channels: SCTP reassembly) can hit a limit
    input_rows, anomaly_counts = capture_anomalies(report.cap)
    reasons = incomplete_reasons(report)
    doc = {
        "schema": SCHEMA_ID,
        "tool": {"name": "rtcforensics", "version": __version__},
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "capture": dict(report.capture),
        "run": {"complete": not reasons, "incomplete_reasons": reasons},
        "summary": {"findings": report.counts(), "coverage": cov, "anomalies": anomaly_counts},
        "overview": overview,
        "findings": [f.to_dict() for f in report.findings],
        "coverage": [c.to_dict() for c in report.coverage],
        "anomalies": input_rows + anomalies,
        "secrets_shown": bool(show_secrets),
    }
    out = scrub_keylog(redact(doc, show_secrets))  # keylog contents never, --show-secrets or not
    out["secrets_shown"] = bool(show_secrets)
    return out


def failed_document(path: str, error: str) -> dict[str, Any]:
    """The document of a capture that could not be analysed at all (a batch keeps going): no findings,
    every format says why at the top, and the run counts as incomplete."""
    p = str(path)
    return {
        "schema": SCHEMA_ID,
        "tool": {"name": "rtcforensics", "version": __version__},
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "capture": {"path": p, "name": p.replace("\\", "/").rsplit("/", 1)[-1], "error": redact(error)},
        "run": {
            "complete": False,
            "incomplete_reasons": [f"the capture could not be analysed: {redact(error)}"],
        },
        "summary": {"findings": {str(s): 0 for s in Severity}, "coverage": {}, "anomalies": {}},
        "overview": empty_overview(),
        "findings": [],
        "coverage": [],
        "anomalies": [],
        "secrets_shown": False,
    }


def render(doc: dict[str, Any] | list[dict[str, Any]], cross: dict[str, Any] | None = None) -> str:
    """JSON text: one document, or ``{"schema", "reports": [...], "cross_capture": {...}}`` for several."""
    if isinstance(doc, list):
        return (
            json_inert(
                {"schema": SCHEMA_ID + "+multi", "reports": doc, "cross_capture": cross or {}},
                sort_keys=False,
            )
            + "\n"
        )
    return json_inert(doc, sort_keys=False) + "\n"
