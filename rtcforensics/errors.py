"""Exceptions. Each names the file (or layer) and the problem in words an analyst can act on."""

from __future__ import annotations

from pathlib import Path


class RtcForensicsError(Exception):
    """Base class for every error this package raises on purpose."""


class CaptureError(RtcForensicsError):
    """Nothing usable could be read from a capture (or a side input) file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InputError(CaptureError):
    """A side input (keylog, signalling file, key) is unusable."""


class DecodeError(RtcForensicsError):
    """A protocol unit could not be decoded.

    ``name`` is the stable snake_case anomaly name (``stun_attr_length``), ``detail`` the human text
    (``"STUN XOR-MAPPED-ADDRESS has invalid length for IPv4"``).
    """

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        super().__init__(detail)


class TruncatedError(DecodeError):
    """The unit ends before its declared length."""


class ToolError(RtcForensicsError):
    """An external tool (tshark) failed, timed out or is missing."""
