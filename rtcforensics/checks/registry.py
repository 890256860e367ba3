"""The check catalogue: one function per check, registered with :func:`check`.

A check is a small function ``fn(ctx) -> iterable of Hit``. Its docstring IS its documentation page, with
the fixed sections ``What it flags`` / ``Why it matters`` / ``Evidence`` / ``False positives`` /
``References``. IDs are stable, in families (``SIG001``, ``DTLS003``, ...), never reused; slugs are the
public contract (DESIGN.md section 4). The registry raises at import on a duplicate or malformed ID or slug,
a missing docstring section, or an undeclared parameter.

Thresholds are named parameters declared beside the check (``params={"max_lifetime_s": (86400, "...")}``);
a run can override them (``analyze(cap, params={"TURN003.max_lifetime_s": 3600})``).

Other check families (the public API, for checks that do not run over one ``Capture``):

- ``@check(..., scope="case")`` registers a cross-capture check (family ``CASE``, IDs ``CASE`` + 3 digits)
  in :data:`CASE_REGISTRY` under the same rules (documentation sections, parameters, unique slugs across
  both scopes); per-capture ``analyze`` never sees it. ``rtcforensics.case.correlate`` runs them over a case.
- :func:`make_finding` turns a check's :class:`Hit` into the ``Finding`` record (identity, defaults);
  :func:`merge` deduplicates findings on identity as ``analyze`` does.
- :func:`check_by_slug` looks a check of either scope up by slug; :func:`slug_in_use` says whether a slug is
  taken.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analyze import Finding

FAMILIES = ("SIG", "SDP", "DTLS", "SRTP", "ICE", "TURN", "COMP")
ID_RE = re.compile(r"^(" + "|".join(FAMILIES) + r")(\d{3})$")
CASE_FAMILIES = ("CASE",)  # checks over a case of many captures (scope "case")
CASE_ID_RE = re.compile(r"^(" + "|".join(CASE_FAMILIES) + r")(\d{3})$")
SCOPES = ("capture", "case")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DOC_SECTIONS = ("What it flags", "Why it matters", "Evidence", "False positives", "References")
LIFECYCLE = ("preview", "stable", "removed")


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Severity) -> Severity:
        if isinstance(value, Severity):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {value!r} (one of: {', '.join(str(s) for s in cls)})"
            ) from None


class Confidence(enum.IntEnum):
    LOW = 0
    MEDIUM = 1
    HIGH = 2

    def __str__(self) -> str:
        return self.name.lower()


class NotObservable(Exception):
    """Raised by a check when what it looks at cannot be seen in this capture (reason in words)."""


@dataclass
class Hit:
    """One piece of evidence a check returns; ``analyze`` turns hits into Finding records.

    ``key``: the stable values that make this instance distinct (used for the finding identity, with the
    check ID and endpoints; never message text, timestamps or frame numbers). ``severity`` /
    ``confidence``: per-instance overrides of the check's defaults."""

    message: str
    endpoints: Sequence[str] = ()
    flow_id: int | None = None
    frames: Sequence[int] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    key: Sequence[Any] = ()
    severity: Severity | None = None
    confidence: Confidence | None = None


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    doc: str


@dataclass(frozen=True)
class Check:
    id: str
    slug: str
    title: str
    severity: Severity
    confidence: Confidence
    needs: tuple[str, ...]
    references: tuple[str, ...]
    params: tuple[Param, ...]
    fn: Callable[..., Iterable[Hit]]
    doc: str
    sections: Mapping[str, str]
    status: str = "stable"
    scope: str = "capture"  # "capture": runs over one Capture (analyze); "case": over a case of many

    @property
    def family(self) -> str:
        m = (CASE_ID_RE if self.scope == "case" else ID_RE).match(self.id)
        return m.group(1) if m else ""

    def param_defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    @property
    def help_uri(self) -> str:
        return f"https://rtcforensics.invalid/checks/{self.id}"  # no network: a stable name, not a link to follow


REGISTRY: dict[str, Check] = {}
_BY_SLUG: dict[str, str] = {}
# Cross-capture checks (scope "case"): kept apart so that per-capture runs and catalogues never see them.
CASE_REGISTRY: dict[str, Check] = {}
_CASE_BY_SLUG: dict[str, str] = {}


def parse_doc(doc: str) -> dict[str, str]:
    """Split a check docstring into its fixed sections (``What it flags: ...`` paragraphs)."""
    text = "\n".join(line.strip() for line in (doc or "").strip().splitlines())
    pat = re.compile(r"^(" + "|".join(re.escape(s) for s in DOC_SECTIONS) + r"):\s*", re.MULTILINE)
    parts: dict[str, str] = {}
    matches = list(pat.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        parts[m.group(1)] = " ".join(text[m.end() : end].split())
    return parts


def check(
    *,
    id: str,
    slug: str,
    title: str,
    severity: Severity,
    confidence: Confidence,
    needs: Sequence[str] = (),
    references: Sequence[str] = (),
    params: Mapping[str, tuple[Any, str]] | None = None,
    status: str = "stable",
    scope: str = "capture",
) -> Callable[[Callable[..., Iterable[Hit]]], Callable[..., Iterable[Hit]]]:
    """Register a check. Raises ``ValueError`` at import on anything malformed.

    ``scope="capture"`` (default): ``fn(ctx)`` gets a per-capture ``CheckContext`` and the check joins the
    catalogue ``analyze`` runs. ``scope="case"``: a cross-capture check (ID ``CASE`` + 3 digits) kept in
    :data:`CASE_REGISTRY`; what ``fn`` receives is up to the runner (``rtcforensics.case.correlate``)."""
    if scope not in SCOPES:
        raise ValueError(f"check {id!r}: scope {scope!r} not in {SCOPES}")
    registry, by_slug = (CASE_REGISTRY, _CASE_BY_SLUG) if scope == "case" else (REGISTRY, _BY_SLUG)
    id_re, families = (CASE_ID_RE, CASE_FAMILIES) if scope == "case" else (ID_RE, FAMILIES)

    def deco(fn: Callable[..., Iterable[Hit]]) -> Callable[..., Iterable[Hit]]:
        where = f"{'case ' if scope == 'case' else ''}check {fn.__module__}.{fn.__name__}"
        if not id_re.match(id):
            raise ValueError(f"{where}: malformed ID {id!r} (want FAMILY + 3 digits, families {families})")
        if not SLUG_RE.match(slug):
            raise ValueError(f"{where}: malformed slug {slug!r} (kebab-case)")
        if id in registry:
            raise ValueError(f"{where}: duplicate check ID {id!r} (already {registry[id].fn.__name__})")
        if slug_in_use(slug):
            taken = _BY_SLUG.get(slug) or _CASE_BY_SLUG.get(slug)
            raise ValueError(f"{where}: duplicate slug {slug!r} (already {taken})")
        if status not in LIFECYCLE:
            raise ValueError(f"{where}: status {status!r} not in {LIFECYCLE}")
        if not isinstance(severity, Severity) or not isinstance(confidence, Confidence):
            raise ValueError(f"{where}: severity/confidence must be Severity/Confidence members")
        if not title.strip():
            raise ValueError(f"{where}: empty title")
        sections = parse_doc(fn.__doc__ or "")
        missing = [s for s in DOC_SECTIONS if not sections.get(s)]
        if missing:
            raise ValueError(f"{where}: docstring lacks section(s) {missing}")
        ps = tuple(Param(n, d, doc) for n, (d, doc) in (params or {}).items())
        for p in ps:
            if not re.match(r"^[a-z][a-z0-9_]*$", p.name) or not p.doc.strip():
                raise ValueError(f"{where}: parameter {p.name!r} needs a snake_case name and a description")
        registry[id] = Check(
            id=id,
            slug=slug,
            title=title,
            severity=severity,
            confidence=confidence,
            needs=tuple(needs),
            references=tuple(references),
            params=ps,
            fn=fn,
            doc=(fn.__doc__ or "").strip(),
            sections=sections,
            status=status,
            scope=scope,
        )
        by_slug[slug] = id
        return fn

    return deco


def slug_in_use(slug: str) -> bool:
    """Whether a check of either scope already has ``slug`` (slugs are unique across scopes)."""
    return slug in _BY_SLUG or slug in _CASE_BY_SLUG


def check_by_slug(slug: str) -> Check | None:
    """The registered check (either scope) whose slug is ``slug`` (case-insensitive), or None. Per-capture
    checks are registered when their family modules are imported (``catalogue.load_catalogue()``), case
    checks when ``rtcforensics.case.correlate`` is."""
    key = slug.strip().lower()
    if key in _BY_SLUG:
        return REGISTRY[_BY_SLUG[key]]
    if key in _CASE_BY_SLUG:
        return CASE_REGISTRY[_CASE_BY_SLUG[key]]
    return None


def make_finding(check: Check, hit: Hit) -> Finding:
    """The ``Finding`` record (``checks.analyze.Finding``) of one ``hit`` of ``check``: the check's ID, slug,
    title and references, the hit's severity/confidence or the check's defaults, endpoints deduplicated,
    frames sorted, evidence made plain (JSON-ready), and the identity (check ID + the hit's ``key``, or its
    endpoints) that deduplicates it — exactly as ``analyze`` builds findings."""
    from .analyze import _finding  # the one implementation (analyze imports this module)

    return _finding(check, hit)


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """Deduplicate ``Finding`` records on identity as ``analyze`` does: frames and endpoints united, the
    highest severity (with its message and evidence) and the highest confidence kept; first-seen order."""
    from .analyze import _merge

    return _merge(findings)


def __getattr__(name: str) -> Any:
    # load_catalogue and get live in .catalogue (it imports the family modules, which import this module);
    # kept reachable here for callers that still import them from the registry (cli.py, report/sarif.py).
    if name in ("load_catalogue", "get"):
        from . import catalogue

        return getattr(catalogue, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
