"""rtcforensics: security analysis of WebRTC captures.

The public names are resolved on first use (PEP 562), so importing one layer (``rtcforensics.dissect.fastpath``)
does not pull in the layers above it (tables, checks).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import CaptureError, DecodeError, RtcForensicsError, ToolError

if TYPE_CHECKING:
    from .capture import Capture, load
    from .case.query import open_case
    from .checks.analyze import analyze

_LAZY = {
    "Capture": ".capture",
    "load": ".capture",
    "analyze": ".checks.analyze",
    "open_case": ".case.query",
}

__all__ = [
    "Capture",
    "CaptureError",
    "DecodeError",
    "RtcForensicsError",
    "ToolError",
    "__version__",
    "analyze",
    "load",
    "open_case",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtcforensics' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
