"""The check catalogue (one module per family) and :func:`analyze`."""

from .analyze import Coverage, Finding, Report, analyze
from .registry import Check, Confidence, Hit, NotObservable, Severity, check, get, load_catalogue

__all__ = [
           "Check",
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
