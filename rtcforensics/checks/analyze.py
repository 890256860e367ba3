"""Run the check catalogue over a capture: findings (deduplicated records), evidence and coverage.

``analyze(cap)`` never stops at a broken check: a check that raises is recorded as ``failed`` in coverage
and as an ``anomalies`` row (layer ``check``), and the run goes on (``strict=True`` re-raises). A check
whose frames are not available, or empty because the thing cannot be seen in this capture, is
``not observable`` with the reason — never ``clean``.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pandas as pd

from ..anomalies import AnomalyLog
from ..errors import CaptureError
from .registry import Check, Confidence, Hit, NotObservable, Severity, load_catalogue

FOUND, CLEAN, NOT_OBSERVABLE, FAILED = "found", "clean", "not observable", "failed"

# Why a frame can be empty, in words for the coverage table.
EMPTY_REASON = {
    "packets": "the capture holds no packets",
    "flows": "the capture holds no flows",
    "stun": "no STUN/TURN messages in this capture",
    "dtls": "no DTLS handshake in this capture",
    "rtp": "no RTP packets in this capture",
    "rtp_streams": "no RTP streams in this capture",
    "rtcp": "no RTCP in this capture",
    "signalling": "no readable signalling (HTTP/WebSocket/SIP) in this capture — absent, or inside TLS "
                  "without a keylog",
    "sdp": "no session description seen (signalling absent or encrypted; give --keylog or --signalling)",
    "candidates": "no ICE candidates seen (signalling absent or encrypted, no STUN-observed addresses)",
    "sessions": "no ICE session could be reconstructed",
    "datachannels": "no data channels seen",
}
# Frames read (wholly or partly) from tshark's control-plane export: when tshark failed, an empty frame says
# nothing about the traffic, and the reason must say so.
TSHARK_FRAMES = frozenset({"signalling", "sdp", "candidates", "sessions"})


def tool_failures(cap: Any) -> list[str]:
    """Details of the tshark failures recorded on ``cap``'s anomaly log (empty for other frame sources)."""
    log = getattr(getattr(cap, "dissection", None), "anomalies", None)
    return [str(r["detail"]) for r in getattr(log, "rows", ()) if r["layer"] == "tshark" and r["name"] == "tshark_failed"]


def empty_reason(cap: Any, name: str) -> str:
    """Why frame ``name`` is empty, in words for the coverage table."""
    failed = tool_failures(cap) if name in TSHARK_FRAMES else []
    if failed:
        return f"tshark failed, so {name} could not be read: {failed[0]}"
    return EMPTY_REASON.get(name, f"frame {name!r} is empty")


class FrameSource(Protocol):
    def get_frame(self, name: str) -> pd.DataFrame: ...

    def frame_names(self) -> list[str]: ...


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


FINDING_COLUMNS = ["id", "slug", "severity", "confidence", "title", "message", "endpoints", "flow_id", "frames",
                   "evidence", "identity", "references"]


@dataclass
class Report:
    """What ``analyze`` returns. ``findings`` are sorted most severe first."""

    capture: dict[str, Any]
    findings: list[Finding]
    coverage: list[Coverage]
    anomalies: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    cap: Any = None  # the Capture analysed (for summaries and renderers), not serialised

    @property
    def findings_frame(self) -> pd.DataFrame:
        df = pd.DataFrame([f.to_dict() for f in self.findings], columns=FINDING_COLUMNS)
        df["severity"] = pd.Categorical(df["severity"], categories=[str(s) for s in Severity], ordered=True)
        df["confidence"] = pd.Categorical(df["confidence"], categories=[str(c) for c in Confidence], ordered=True)
        df["flow_id"] = df["flow_id"].astype("Int64")
        return df

    @property
    def evidence(self) -> dict[str, dict[str, Any]]:
        """Evidence per finding identity."""
        return {f.identity: {"frames": f.frames, "endpoints": f.endpoints, **f.evidence} for f in self.findings}

    @property
    def coverage_frame(self) -> pd.DataFrame:
        return pd.DataFrame([c.to_dict() for c in self.coverage], columns=["id", "slug", "status", "reason",
                                                                           "findings"])

    def at_or_above(self, severity: str | Severity) -> list[Finding]:
        level = Severity.parse(severity)
        return [f for f in self.findings if f.severity_level >= level]

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in Severity}
        for f in self.findings:
            out[f.severity] += 1
        return out


class CheckContext:
    """What a check sees: frames (guarded so absent input becomes "not observable"), its parameters."""

    def __init__(self, cap: FrameSource, check: Check, params: Mapping[str, Any], frames: dict[str, pd.DataFrame]):
        self.cap = cap
        self.check = check
        self.params = dict(params)
        self._frames = frames
        self.missing: list[str] = []

    def frame(self, name: str, columns: Sequence[str] = (), *, allow_empty: bool = False) -> pd.DataFrame:
        """Frame ``name``; raises NotObservable when it is not built in this version, lacks ``columns``, or
        (unless ``allow_empty``) has no rows."""
        df = _get_frame(self.cap, name, self._frames)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise NotObservable(f"frame {name!r} has no column(s) {', '.join(missing)}")
        if len(df) == 0 and not allow_empty:
            raise NotObservable(empty_reason(self.cap, name))
        return df

    def optional(self, name: str, columns: Sequence[str] = ()) -> pd.DataFrame | None:
        """Frame ``name`` when available with ``columns`` (possibly empty), else None (the reason is kept
        in ``self.missing`` for the coverage table)."""
        try:
            return self.frame(name, columns, allow_empty=True)
        except (NotObservable, _FrameFailed) as e:
            self.missing.append(str(e))
            return None

    def param(self, name: str) -> Any:
        return self.params[name]


class _FrameUnavailable(NotObservable):
    pass


class _FrameFailed(Exception):
    def __init__(self, name: str, err: BaseException):
        self.name = name
        self.err = err
        super().__init__(f"building frame {name!r} raised {type(err).__name__}: {err}")


def _get_frame(cap: FrameSource, name: str, cache: dict[str, Any]) -> pd.DataFrame:
    if name in cache:
        got = cache[name]
        if isinstance(got, BaseException):
            raise got
        return got
    if name not in cap.frame_names():
        err: BaseException = _FrameUnavailable(f"frame {name!r} is not available in this version (no builder)")
        cache[name] = err
        raise err
    try:
        df = cap.get_frame(name)
    except CaptureError:  # the input itself is unusable: that is the user's error to hear about, not a check's
        raise
    except ImportError as e:  # a part of the engine not in this build: unobservable, not a failure
        err = _FrameUnavailable(f"frame {name!r} cannot be built in this version ({e})")
        cache[name] = err
        raise err from e
    except Exception as e:  # a builder bug: the checks needing it fail, the run goes on
        if getattr(cap, "strict", False):
            raise
        err = _FrameFailed(name, e)
        err.__cause__ = e
        cache[name] = err
        raise err from e
    cache[name] = df
    return df


def resolve_params(catalogue: Mapping[str, Check], params: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
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
                raise ValueError(f"check parameter {k!r} takes {kind} (default {default!r}), not {v!r}") from None
        out[cid][pname] = v
    return out


def _identity(check: Check, hit: Hit) -> str:
    key = [str(k) for k in hit.key] if hit.key else sorted(str(e) for e in hit.endpoints)
    raw = "|".join([check.id, *key])
    return f"{check.id}:{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def _finding(check: Check, hit: Hit) -> Finding:
    return Finding(
        id=check.id, slug=check.slug,
        severity=str(hit.severity if hit.severity is not None else check.severity),
        confidence=str(hit.confidence if hit.confidence is not None else check.confidence),
        title=check.title, message=hit.message,
        endpoints=[str(e) for e in dict.fromkeys(hit.endpoints)],
        flow_id=None if hit.flow_id is None or pd.isna(hit.flow_id) else int(hit.flow_id),
        frames=sorted({int(f) for f in hit.frames if f is not None and not pd.isna(f)}),
        evidence={k: _plain(v) for k, v in dict(hit.evidence).items()},
        identity=_identity(check, hit), references=list(check.references),
    )


def _plain(v: Any) -> Any:
    """Evidence values as JSON-able Python values."""
    if v is None:
        return None
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


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
    except Exception:  # noqa: BLE001, S110 - an in-memory frame source has no file
        pass
    dis = getattr(cap, "dissection", None)  # read by now (the checks built their frames from it)
    if dis is not None:
        info["truncated"] = bool(dis.info.get("truncated"))
    return info


def analyze(cap: Any, params: Mapping[str, Any] | None = None, strict: bool = False,
            only: Iterable[str] | None = None) -> Report:
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
    for cid, chk in catalogue.items():
        if chk.status == "removed":
            continue
        ctx = CheckContext(cap, chk, per_check[cid], frames)
        try:
            for name in chk.needs:
                ctx.frame(name)
            hits = list(chk.fn(ctx) or ())
        except NotObservable as e:
            coverage.append(Coverage(cid, chk.slug, NOT_OBSERVABLE, str(e)))
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
            coverage.append(Coverage(cid, chk.slug, FAILED, reason))
            anomalies.add("check", "check_failed", f"check {cid} ({chk.slug}) raised {reason}")
            continue
        got = _merge(_finding(chk, h) for h in hits)
        findings.extend(got)
        if got:
            coverage.append(Coverage(cid, chk.slug, FOUND, f"{len(got)} finding(s)", len(got)))
        else:
            coverage.append(Coverage(cid, chk.slug, CLEAN, _clean_reason(chk, ctx.missing)))
    findings.sort(key=lambda f: (-Severity.parse(f.severity), f.id, f.frames[:1] or [0], f.identity))
    return Report(capture=capture_info(cap), findings=findings, coverage=coverage, anomalies=anomalies.frame(),
                  params={cid: p for cid, p in per_check.items() if p}, cap=cap)


def _clean_reason(chk: Check, missing: Sequence[str]) -> str:
    what = ", ".join(chk.needs) if chk.needs else "the frames available"
    out = f"examined {what}: nothing matched"
    return out + (f" (not examined: {'; '.join(missing)})" if missing else "")
