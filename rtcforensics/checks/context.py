"""What a check sees: :class:`CheckContext` (frames guarded so that absent input becomes "not observable",
the check's parameters), and why a frame can be empty, in words for the coverage table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

from ..capture import FrameUnavailable
from ..errors import CaptureError
from .registry import Check, NotObservable

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
    "srtp_streams": "no SRTP stream decrypted (no keys, or no SRTP in this capture)",
}
# Frames read (wholly or partly) from tshark's control-plane export: when tshark failed, an empty frame says
# nothing about the traffic, and the reason must say so.
TSHARK_FRAMES = frozenset({"signalling", "sdp", "candidates", "sessions"})


def tool_failures(cap: Any) -> list[str]:
    """Details of the tshark failures recorded on ``cap`` (``Capture.tool_failures``; empty for other frame
    sources)."""
    fn = getattr(cap, "tool_failures", None)
    return list(fn()) if callable(fn) else []


def empty_reason(cap: Any, name: str) -> str:
    """Why frame ``name`` is empty, in words for the coverage table."""
    failed = tool_failures(cap) if name in TSHARK_FRAMES else []
    if failed:
        return f"tshark failed, so {name} could not be read: {failed[0]}"
    return EMPTY_REASON.get(name, f"frame {name!r} is empty")


def unavailable_reason(cap: Any, name: str) -> str | None:
    """Why ``cap`` cannot build frame ``name`` although this version has a builder for it (a capture made
    from a streamed dissection: ``Capture.unavailable``), else None."""
    got = getattr(cap, "unavailable", None)
    return got.get(name) if isinstance(got, Mapping) else None


class FrameSource(Protocol):
    """What analyze needs of a capture (a :class:`~rtcforensics.capture.Capture`, or a test's filter over one)."""

    def get_frame(self, name: str) -> pd.DataFrame: ...

    def frame_names(self) -> list[str]: ...


class CheckContext:
    """What a check sees: frames (guarded so absent input becomes "not observable"), its parameters."""

    def __init__(
        self,
        cap: FrameSource,
        check: Check,
        params: Mapping[str, Any],
        frames: dict[str, pd.DataFrame | BaseException],
    ) -> None:
        self.cap = cap
        self.check = check
        self.params = dict(params)
        self._frames = frames
        self.missing: list[str] = []
        # optional frames asked for that this capture cannot build (``Capture.unavailable``: streamed)
        self.unavailable: list[str] = []

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
            if unavailable_reason(self.cap, name):
                self.unavailable.append(name)
            else:
                self.missing.append(str(e))
            return None

    def not_examined(self) -> list[str]:
        """What the check could not look at, in words for the coverage table: optional frames missing or
        empty, and those the capture cannot build, grouped by the reason."""
        by_why: dict[str, list[str]] = {}
        for name in dict.fromkeys(self.unavailable):
            by_why.setdefault(unavailable_reason(self.cap, name) or "", []).append(name)
        out = list(self.missing)
        out += [f"frame(s) {', '.join(names)} not available: {why}" for why, names in by_why.items()]
        return out

    def param(self, name: str) -> Any:
        return self.params[name]

    @property
    def keylog(self) -> Any:
        """The keylog given with the capture (None when none was, or the frame source has none)."""
        return getattr(self.cap, "keylog", None)


class _FrameUnavailable(NotObservable):
    pass


class _FrameFailed(Exception):
    def __init__(self, name: str, err: BaseException) -> None:
        self.name = name
        self.err = err
        super().__init__(f"building frame {name!r} raised {type(err).__name__}: {err}")


def _get_frame(cap: FrameSource, name: str, cache: dict[str, pd.DataFrame | BaseException]) -> pd.DataFrame:
    if name in cache:
        got = cache[name]
        if isinstance(got, BaseException):
            raise got
        return got
    if name not in cap.frame_names():
        why = unavailable_reason(cap, name)
        err: BaseException = _FrameUnavailable(
            f"frame {name!r} is not available: {why}"
            if why
            else f"frame {name!r} is not available in this version (no builder)"
        )
        cache[name] = err
        raise err
    try:
        df = cap.get_frame(name)
    except FrameUnavailable as e:  # not built (memory budget, or a frame it needs): not observable
        err = _FrameUnavailable(str(e))
        cache[name] = err
        raise err from None
    except (
        CaptureError
    ):  # the input itself is unusable: that is the user's error to hear about, not a check's
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
