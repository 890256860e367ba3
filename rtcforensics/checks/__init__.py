"""The check catalogue (one module per family) and :func:`analyze`."""

from .analyze import Coverage, Finding, Report, analyze
from .catalogue import get, load_catalogue
from .context import CheckContext
from .registry import Check, Confidence, Hit, NotObservable, Severity, check

__all__ = [
    "Check",
    "CheckContext",
    "Confidence",
    "Coverage",
    "Finding",
    "Hit",
    "NotObservable",
    "Report",
    "Severity",
    "analyze",
    "check",
    "get",
    "load_catalogue",
]
