"""rtcforensics: security analysis of WebRTC captures."""

from ._version import __version__
from .capture import Capture, load
from .errors import CaptureError, DecodeError, RtcForensicsError, ToolError

__all__ = ["__version__", "load", "Capture", "CaptureError", "DecodeError", "RtcForensicsError", "ToolError"]
