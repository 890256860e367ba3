"""rtcforensics: security analysis of WebRTC captures.

The public names are resolved on first use (PEP 562), so importing one layer (``rtcforensics.dissect.fastpath``)
does not pull in the layers above it (tables, checks).
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING, Any

# pyarrow's default pool (mimalloc) reserves a 1 GiB arena on its first string column: a run under a memory limit
# (RLIMIT_AS, a container) then fails on address space it never uses. The system allocator reserves what it uses.
# Set before pyarrow is imported by any layer; a user's own choice of pool wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

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
