"""Run the check catalogue over a capture: findings (deduplicated records), evidence and coverage.

``analyze(cap)`` never stops at a broken check: a check that raises is recorded as ``failed`` in coverage
and as an ``anomalies`` row (layer ``check``), the findings it returned before it broke are kept, the run is
marked incomplete (``Report.incomplete``) and goes on (``strict=True`` re-raises). A check
whose frames are not available, or empty because the thing cannot be seen in this capture, is
``not observable`` with the reason — never ``clean``.
"""

from __future__ import annotations

import hashlib
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pandas as pd

from ..anomalies import AnomalyLog
from ..budget import FRAME_REFUSED, give_back
from ..errors import CaptureError
from ..tables.legs import OpaqueLeg, opaque_legs
from ..values import plain
from .catalogue import load_catalogue
from .context import CheckContext, FrameSource, _FrameFailed, empty_reason, tool_failures
from .registry import Check, Confidence, Hit, NotObservable, Severity

FOUND, CLEAN, NOT_OBSERVABLE, FAILED = "found", "clean", "not observable", "failed"

__all__ = [
    "CheckContext",
    "Coverage",
    "Finding",
    "FrameSource",
    "Report",
    "analyze",
    "capture_info",
    "empty_reason",
    "incomplete_reasons",
    "resolve_params",
    "tool_failures",
]


@dataclass
class Finding:
    id: str
    slug: str
    severity: str
    confidence: str
    title: str
    message: str
    endpoints: list[str]
    flow_id: int | None
    frames: list[int]
    evidence: dict[str, Any]
    identity: str
    references: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def severity_level(self) -> Severity:
        return Severity.parse(self.severity)


@dataclass
class Coverage:
    id: str
    slug: str
    status: str  # found | clean | not observable | failed
    reason: str
    findings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The findings frame's columns and the JSON finding record's keys: the Finding fields, defined once there.
FINDING_COLUMNS = [f.name for f in fields(Finding)]


@dataclass
class Report:
    """What ``analyze`` returns. ``findings`` are sorted most severe first."""

    capture: dict[str, Any]
    findings: list[Finding]
    coverage: list[Coverage]
    anomalies: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    cap: Any = None  # the Capture analysed (for summaries and renderers), not serialised
    # Why the results may miss something the capture holds (empty: the run is complete): a check failed, a
    # tool failure or time-out made a check not observable, a budget or limit cut the work short, a frame
    # builder failed. Every output must say so, and the exit code too.
    incomplete: list[str] = field(default_factory=list)
    # Connections the tool could not see into (TLS without keys): what the checks examined excludes them.
    opaque_legs: list[str] = field(default_factory=list)

    @property
    def is_incomplete(self) -> bool:
        return bool(self.incomplete)

    @property
    def findings_frame(self) -> pd.DataFrame:
        df = pd.DataFrame([f.to_dict() for f in self.findings], columns=FINDING_COLUMNS)
        df["severity"] = pd.Categorical(df["severity"], categories=[str(s) for s in Severity], ordered=True)
        df["confidence"] = pd.Categorical(
            df["confidence"], categories=[str(c) for c in Confidence], ordered=True
        )
        df["flow_id"] = df["flow_id"].astype("Int64")
        return df

    @property
    def evidence(self) -> dict[str, dict[str, Any]]:
        """Evidence per finding identity."""
        return {
            f.identity: {"frames": f.frames, "endpoints": f.endpoints, **f.evidence} for f in self.findings
        }

    @property
    def coverage_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [c.to_dict() for c in self.coverage], columns=["id", "slug", "status", "reason", "findings"]
        )

    def at_or_above(self, severity: str | Severity) -> list[Finding]:
        level = Severity.parse(severity)
        return [f for f in self.findings if f.severity_level >= level]

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in Severity}
        for f in self.findings:
            out[f.severity] += 1
        return out


def resolve_params(
    catalogue: Mapping[str, Check], params: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Per-check parameters: defaults overridden by ``params`` keys ``"ID.name"`` or ``"slug.name"``."""
    out = {cid: c.param_defaults() for cid, c in catalogue.items()}
    by_slug = {c.slug: cid for cid, c in catalogue.items()}
    for k, v in (params or {}).items():
        who, _, pname = str(k).rpartition(".")
        cid = who.upper() if who.upper() in catalogue else by_slug.get(who)
        if cid is None or pname not in out[cid]:
            raise ValueError(f"unknown check parameter {k!r}")
        default = out[cid][pname]
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(v, bool):
            kind = "an integer" if isinstance(default, int) else "a number"
            try:
                if isinstance(default, int) and isinstance(v, float) and not v.is_integer():
                    raise ValueError(v)
                v = type(default)(v)
            except (TypeError, ValueError):
                raise ValueError(
                    f"check parameter {k!r} takes {kind} (default {default!r}), not {v!r}"
                ) from None
        out[cid][pname] = v
    return out


def _identity(check: Check, hit: Hit) -> str:
    key = [str(k) for k in hit.key] if hit.key else sorted(str(e) for e in hit.endpoints)
    raw = "|".join([check.id, *key])
    return f"{check.id}:{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def _finding(check: Check, hit: Hit) -> Finding:
    return Finding(
        id=check.id,
        slug=check.slug,
        severity=str(hit.severity if hit.severity is not None else check.severity),
        confidence=str(hit.confidence if hit.confidence is not None else check.confidence),
        title=check.title,
        message=hit.message,
        endpoints=[str(e) for e in dict.fromkeys(hit.endpoints)],
        flow_id=None if hit.flow_id is None or pd.isna(hit.flow_id) else int(hit.flow_id),
        frames=sorted({int(f) for f in hit.frames if f is not None and not pd.isna(f)}),
        evidence={k: plain(v) for k, v in dict(hit.evidence).items()},
        identity=_identity(check, hit),
        references=list(check.references),
    )


_plain = plain  # the name report/ imported before rtcforensics.values existed


def _merge(findings: Iterable[Finding]) -> list[Finding]:
    """Deduplicate on identity: frames and endpoints united, the highest severity and confidence kept."""
    out: dict[str, Finding] = {}
    for f in findings:
        if f.identity not in out:
            out[f.identity] = f
            continue
        g = out[f.identity]
        g.frames = sorted(set(g.frames) | set(f.frames))
        g.endpoints = list(dict.fromkeys([*g.endpoints, *f.endpoints]))
        if Severity.parse(f.severity) > Severity.parse(g.severity):
            g.severity, g.message, g.evidence = f.severity, f.message, f.evidence
        if Confidence[f.confidence.upper()] > Confidence[g.confidence.upper()]:
            g.confidence = f.confidence
    return list(out.values())


def capture_info(cap: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"path": str(getattr(cap, "path", "") or "")}
    if info["path"]:
        info["name"] = cap.path.name
    try:
        info["sha256"] = cap.sha256()
    except Exception:
        pass
    file_info = getattr(cap, "info", None)  # read by now (the checks built their frames from it)
    if isinstance(file_info, dict):
        info["truncated"] = bool(file_info.get("truncated"))
    return info


def analyze(
    cap: Any, params: Mapping[str, Any] | None = None, strict: bool = False, only: Iterable[str] | None = None
) -> Report:
    """Run every check (or ``only`` those IDs/slugs) over ``cap``; see the module docstring."""
    catalogue = load_catalogue()
    if only is not None:
        wanted = {o.upper() for o in only} | {o.lower() for o in only}
        catalogue = {cid: c for cid, c in catalogue.items() if cid in wanted or c.slug in wanted}
    per_check = resolve_params(catalogue, params)
    frames: dict[str, Any] = {}
    anomalies = AnomalyLog()
    findings: list[Finding] = []
    coverage: list[Coverage] = []
    opaque = _opaque(cap)
    for cid, chk in catalogue.items():
        if chk.status == "removed":
            continue
        ctx = CheckContext(cap, chk, per_check[cid], frames)
        hits: list[Hit] = []
        try:
            for name in chk.needs:
                ctx.frame(name)
            for h in chk.fn(ctx) or ():
                hits.append(h)  # kept even if the check breaks on a later item
            give_back()  # what the check built for itself (a flood's per-flow lists) goes back
        except NotObservable as e:
            # an optional frame not built for the memory budget: the check's own words would read as absence
            budget_cut = [m for m in ctx.not_examined() if FRAME_REFUSED in m and m not in str(e)]
            cut = f" (not examined: {'; '.join(budget_cut)})" if budget_cut else ""
            coverage.append(Coverage(cid, chk.slug, NOT_OBSERVABLE, f"{e}{cut}"))
            continue
        except CaptureError:  # the capture (or a side input) is unusable: the caller's error, not a check's
            raise
        except Exception as e:
            if strict:
                raise
            origin = e.__cause__ if isinstance(e, _FrameFailed) and e.__cause__ is not None else e
            where = traceback.extract_tb(origin.__traceback__)[-1] if origin.__traceback__ else None
            loc = f" at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else ""
            reason = f"{e}{loc}" if isinstance(e, _FrameFailed) else f"{type(e).__name__}: {e}{loc}"
            kept = _merge(_finding(chk, h) for h in hits)  # what it found before it broke is still evidence
            findings.extend(kept)
            if kept:
                reason += f" (after {len(kept)} finding(s), which are reported)"
            coverage.append(Coverage(cid, chk.slug, FAILED, reason, len(kept)))
            anomalies.add("check", "check_failed", f"check {cid} ({chk.slug}) raised {reason}")
            continue
        got = _merge(_finding(chk, h) for h in hits)
        findings.extend(got)
        unread = [leg.text for leg in opaque if leg.turn] if chk.family in MEDIA_FAMILIES else []
        if got:
            # a capture that cannot build some frames (streamed) says what the findings were made without
            partial = f" (not examined: {'; '.join(ctx.not_examined())})" if ctx.unavailable else ""
            coverage.append(Coverage(cid, chk.slug, FOUND, f"{len(got)} finding(s){partial}", len(got)))
        else:
            coverage.append(
                Coverage(cid, chk.slug, CLEAN, _clean_reason(chk, [*ctx.not_examined(), *unread]))
            )
    findings.sort(key=lambda f: (-Severity.parse(f.severity), f.id, f.frames[:1] or [0], f.identity))
    return Report(
        capture=capture_info(cap),
        findings=findings,
        coverage=coverage,
        anomalies=anomalies.frame(),
        params={cid: p for cid, p in per_check.items() if p},
        cap=cap,
        opaque_legs=[leg.text for leg in opaque],
        incomplete=incomplete_reasons(coverage, getattr(cap, "anomaly_log", None)),
    )


# Words in a coverage reason that say a tool (not the traffic) made a check not observable.
TOOL_REASONS = ("tshark failed", "timed out", "time limit", "budget", "limit reached", "limit hit")
# Anomaly names that say the work was cut short: a tool failed, a budget or limit was hit, a builder failed.
CUT_SHORT = re.compile(r"tshark_failed|frame_failed|budget|limit|timeout|timed_out")


def incomplete_reasons(coverage: Sequence[Coverage], log: Any = None) -> list[str]:
    """Why a run's results may miss something the capture holds (see ``Report.incomplete``): checks that
    failed, checks not observable because a tool failed or timed out, anomaly rows of ``log`` (the capture's
    AnomalyLog) naming a tool failure, a budget or limit, or a frame that could not be built."""
    out: list[str] = []
    for c in coverage:
        if c.status == FAILED:
            out.append(f"check {c.id} ({c.slug}) failed: {c.reason}")
        elif c.status == NOT_OBSERVABLE and any(w in c.reason.lower() for w in TOOL_REASONS):
            out.append(f"check {c.id} ({c.slug}) could not run: {c.reason}")
    for a in getattr(log, "rows", ()):
        if CUT_SHORT.search(str(a.get("name") or "")) and not str(a.get("name")).startswith("anomalies_"):
            out.append(f"{a.get('layer')} {a.get('name')}: {a.get('detail')}")
    return list(dict.fromkeys(out))


# Check families whose subject (ICE, TURN, DTLS, SRTP) can travel inside an unread TURN-over-TLS leg.
MEDIA_FAMILIES = ("DTLS", "SRTP", "ICE", "TURN")


def _opaque(cap: Any) -> list[OpaqueLeg]:
    """The capture's unread TLS legs (``tables.legs``); none when the signalling frame cannot be had."""
    get = getattr(cap, "frame_or_none", None)
    try:
        return opaque_legs(get("signalling")) if get is not None else []
    except CaptureError:
        raise
    except Exception:  # the signalling checks report a frame that cannot be built
        return []


def _clean_reason(chk: Check, missing: Sequence[str]) -> str:
    what = ", ".join(chk.needs) if chk.needs else "the frames available"
    out = f"examined {what}: nothing matched"
    return out + (f" (not examined: {'; '.join(missing)})" if missing else "")
