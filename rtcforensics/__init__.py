"""rtcforensics: security analysis of WebRTC captures."""

from ._version import __version__
from .capture import Capture, load
from .errors import CaptureError, DecodeError, RtcForensicsError, ToolError
from .checks.analyze import analyze  # noqa: E402  (checks owner: one additive line)

__all__ = ["__version__", "load", "analyze", "Capture", "CaptureError", "DecodeError", "RtcForensicsError", "ToolError"]
