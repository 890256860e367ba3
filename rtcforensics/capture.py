"""The Capture object: a capture file plus side inputs, with frames built lazily and cached.

Frames are registered by table modules with :func:`register_frame`; ``cap.<name>`` builds the frame
on first access (after the one fast-path pass it needs) and caches it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypedDict

import pandas as pd

from . import budget
from .anomalies import AnomalyLog
from .errors import CaptureError, RtcForensicsError
from .schema import SCHEMAS, FrameSchema

Builder = Callable[["Capture"], pd.DataFrame]


class ReadLimits(TypedDict):
    """Limits of a pass over the capture file (``dissect(**limits)``); None: the reader's default."""

    max_packets: int | None  # packets read at most (None: no limit)
    max_inflated: int | None  # bytes a gzip-compressed capture may inflate to


NO_LIMITS = ReadLimits(max_packets=None, max_inflated=None)


class FrameUnavailable(RtcForensicsError, LookupError):
    """A frame that this capture cannot build, with the reason (a capture made from a streamed dissection
    holds no per-packet columns and no signalling, see :meth:`Capture.from_dissection`; resident memory was
    over the memory budget when it was to be built, see :meth:`Capture.get_frame`)."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(f"frame {name!r} is not available: {why}")


_BUILDERS: dict[str, tuple[FrameSchema, Builder]] = {}


def register_frame(schema: FrameSchema) -> Callable[[Builder], Builder]:
    """Register ``builder(cap) -> DataFrame`` as the way to build frame ``schema.name``."""

    def deco(fn: Builder) -> Builder:
        if schema.name in _BUILDERS:
            raise ValueError(f"frame {schema.name!r} has two builders")
        _BUILDERS[schema.name] = (schema, fn)
        return fn

    return deco


def _load_builders() -> None:
    # Importing the table modules registers their builders.
    from . import tables  # noqa: F401


class Capture:
    """A loaded capture. Frames are attributes (``cap.stun``, ``cap.dtls`` ...), built on first use."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keylog: str | os.PathLike[str] | None = None,
        signalling: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        strict: bool = False,
        max_packets: int | None = None,
        max_inflated: int | None = None,
    ) -> None:
        p = Path(path)
        if not p.exists():
            raise CaptureError(p, "no such file")
        if p.is_dir():
            raise CaptureError(p, "is a directory, not a capture file")
        try:
            with p.open("rb") as fh:
                fh.read(1)
        except OSError as e:
            raise CaptureError(p, f"cannot be read ({e.strerror or e})") from None
        self.path = p
        self.keylog = Path(keylog) if keylog else None
        if self.keylog is not None and not self.keylog.is_file():
            raise CaptureError(self.keylog, "keylog file not found")
        if signalling is None:
            sig: list[Path] = []
        elif isinstance(signalling, (str, os.PathLike)):
            sig = [Path(signalling)]
        else:
            sig = [Path(s) for s in signalling]
        for s in sig:
            if not s.is_file():
                raise CaptureError(s, "signalling side file not found")
        self.signalling_files = sig
        self.progress = progress
        self.strict = strict
        for name, v in (("max_packets", max_packets), ("max_inflated", max_inflated)):
            if v is not None and v < 1:
                raise ValueError(f"{name} must be at least 1 (None: no limit), not {v}")
        # read limits, passed to every pass over the file (``dissect(**cap.limits)``)
        self.limits = ReadLimits(max_packets=max_packets, max_inflated=max_inflated)
        self._frames: dict[str, pd.DataFrame] = {}
        self._cache: dict[str, Any] = {}  # intermediate results shared between builders
        # frames this capture cannot build -> why (see from_dissection); empty for a capture file
        self.unavailable: dict[str, str] = {}
        # frames refused for the memory budget -> the reason until it is in the anomaly log, then ""
        self._budget_refusals: dict[str, str] = {}
        _load_builders()

    @classmethod
    def from_dissection(
        cls,
        dissection: Any,
        *,
        frames: Iterable[str],
        why: str | Callable[[str], str],
        name: str | None = None,
        keylog: str | os.PathLike[str] | None = None,
        strict: bool = False,
    ) -> Capture:
        """A capture whose fast-path pass is already made (``dissect.model.Dissection``): the streaming load,
        whose ``datagrams`` dataset gives the STUN/DTLS/RTCP/ZRTP lists, its ``info`` and a fresh anomaly log,
        and no per-packet columns. Only ``frames`` are built, by the same builders as for a capture file
        (they must need nothing of the dissection but its datagrams, ``info`` and anomaly log); every other
        frame is unavailable — absent from ``frame_names()``, and ``get_frame`` raises
        :class:`FrameUnavailable` with ``why`` (or ``why(frame)``) — never silently empty. ``name``: what the capture is called
        (default: the dissection's path); the file itself is not read again (``sha256`` comes from
        ``info``)."""
        _load_builders()
        unknown = sorted(set(frames) - set(_BUILDERS))
        if unknown:
            raise ValueError(f"no builder for frame(s) {', '.join(unknown)}")
        keep = set(frames)
        cap = cls.__new__(cls)
        cap.path = Path(name or dissection.path)
        cap.keylog = Path(keylog) if keylog else None
        cap.signalling_files = []
        cap.progress = False
        cap.strict = strict
        cap.limits = NO_LIMITS
        cap._frames = {}
        cap._cache = {"dissection": dissection}
        if dissection.info.get("sha256"):
            cap._cache["sha256"] = dissection.info["sha256"]
        cap.unavailable = {n: why if isinstance(why, str) else why(n) for n in _BUILDERS if n not in keep}
        cap._budget_refusals = {}
        return cap

    # -- frames -------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> pd.DataFrame:
        if name.startswith("_") or name == "unavailable":
            raise AttributeError(name)
        if name in _BUILDERS:
            return self.get_frame(name)
        raise AttributeError(
            f"Capture has no frame or attribute {name!r}; frames: {', '.join(self.frame_names())}"
        )

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(_BUILDERS))

    def frame_names(self) -> list[str]:
        """The frames this capture can build (every registered frame, for a capture file)."""
        _load_builders()
        return sorted(n for n in _BUILDERS if n not in self.unavailable)

    def get_frame(self, name: str) -> pd.DataFrame:
        """Frame ``name``, built on first use and cached. A frame not built yet is not built when resident
        memory is at or above the memory budget (:mod:`rtcforensics.budget`): :class:`FrameUnavailable` says
        why, and a ``memory_limit`` anomaly (one per frame) makes the run incomplete. Frames already built stay
        usable."""
        if name in self.unavailable:
            raise FrameUnavailable(name, self.unavailable[name])
        if name not in self._frames:
            got = budget.over()
            if got is not None:
                self._refuse(name, budget.frame_refused(name, got))
            schema, fn = _BUILDERS[name]
            df = fn(self)
            self._frames[name] = schema.conform(df) if list(df.columns) != schema.names else df
            del df
            budget.give_back()
        return self._frames[name]

    def _refuse(self, name: str, why: str) -> NoReturn:
        """Refuse to build frame ``name`` for ``why`` (the memory budget); the first refusal of each frame is
        an anomaly row."""
        if name not in self._budget_refusals:
            self._budget_refusals[name] = why
            if "dissection" in self._cache:  # else logged when the dissection is made (see ``dissection``)
                self._log_refusals(self._cache["dissection"].anomalies)
        raise FrameUnavailable(name, why)

    def _log_refusals(self, log: AnomalyLog) -> None:
        for name, why in self._budget_refusals.items():
            if why:
                log.add("capture", "memory_limit", f"frame {name!r} not built: {why}")
                self._budget_refusals[name] = ""  # logged

    def frame_or_none(self, name: str) -> pd.DataFrame | None:
        """Frame ``name`` when this installation (and this capture) can build it, else None (optional
        layers; a frame refused by the memory budget too)."""
        if name not in _BUILDERS or name in self.unavailable:
            return None
        try:
            return self.get_frame(name)
        except (ImportError, FrameUnavailable):
            return None

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """Compute an intermediate result once per capture (e.g. the fast-path pass, tshark export)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def dissection(self) -> Any:
        """The one fast-path pass over the capture (``dissect.model.Dissection``)."""
        from .dissect.fastpath import dissect

        def make() -> Any:
            d = dissect(self.path, progress=self.progress, strict=self.strict, **self.limits)
            self._log_refusals(d.anomalies)
            budget.give_back()
            return d

        return self.cached("dissection", make)

    @property
    def info(self) -> dict[str, Any]:
        """What the fast path learnt of the file itself: format, link types, ``truncated``, embedded secrets."""
        return self.dissection.info

    @property
    def anomaly_log(self) -> AnomalyLog:
        """The log every layer writes anomaly rows to (``cap.anomalies`` is the frame built from it)."""
        return self.dissection.anomalies

    def tool_failures(self) -> list[str]:
        """Details of the external-tool (tshark) failures recorded so far: frames read through that tool may be
        empty for that reason rather than because the traffic is absent."""
        return [
            str(r["detail"])
            for r in self.anomaly_log.rows
            if r["layer"] == "tshark" and r["name"] == "tshark_failed"
        ]

    def sha256(self) -> str:
        def make() -> str:
            h = hashlib.sha256()
            with self.path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()

        return self.cached("sha256", make)

    def frame(self, number: int) -> Any:
        """Frame ``number``'s full Wireshark dissection (pyshark, in a worker thread)."""
        from .drill import dissect_frame

        return dissect_frame(self.path, number, keylog=self.keylog)

    def decrypt(
        self,
        keylog: str | os.PathLike[str] | None = None,
        keys: Iterable[str] | Mapping[int | str, str] | None = None,
    ) -> Any:
        """Authenticate and decrypt every SRTP/SRTCP stream (SDES keys from SDP, DTLS-SRTP via the keylog,
        user keys ``[SSRC=]SUITE inline:BASE64``, or a mapping ``{ssrc: "SUITE inline:BASE64"}``); ``.streams``
        says per stream what verified (a user key that verifies no packet: ``authentication failed``),
        ``.write(dir)`` writes a plain-RTP pcap and WAV audio. Needs the ``srtp`` extra (pylibsrtp). Without
        arguments the result is the one the ``srtp_streams`` frame was built from (computed once)."""
        if keylog is None and keys is None:
            from .tables.srtp import decrypted

            return decrypted(self)
        from .srtp.decrypt import decrypt

        return decrypt(self, keylog=keylog, keys=keys)

    def __repr__(self) -> str:
        built = ", ".join(sorted(self._frames)) or "none yet"
        return f"<Capture {self.path.name} (frames built: {built})>"


def load(
    path: str | os.PathLike[str],
    *,
    keylog: str | os.PathLike[str] | None = None,
    signalling: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    strict: bool = False,
    max_packets: int | None = None,
    max_inflated: int | None = None,
) -> Capture:
    """Open a capture (pcap, pcapng, optionally gzip-compressed) for analysis.

    ``keylog``: an SSLKEYLOGFILE for TLS/DTLS secrets. ``signalling``: side files (SDP, a
    chrome://webrtc-internals dump, JSON lines) whose SDPs join the frames. ``progress``: show a progress
    bar for long loads (default: when it takes over a second); ``strict``: raise on the first anomaly.
    ``max_packets``: read at most that many packets; ``max_inflated``: bytes a gzip-compressed capture may
    inflate to (default ``dissect.pcapio.MAX_INFLATED``). A limit that cuts the capture short is a
    ``packet_limit`` / ``gzip_inflated_limit`` anomaly: the frames hold the packets read, and the run is
    incomplete. Nothing is parsed until a frame is first used, except that the file must exist and be
    readable."""
    return Capture(
        path,
        keylog=keylog,
        signalling=signalling,
        progress=progress,
        strict=strict,
        max_packets=max_packets,
        max_inflated=max_inflated,
    )


__all__ = [
    "NO_LIMITS",
    "SCHEMAS",
    "Capture",
    "FrameUnavailable",
    "ReadLimits",
    "RtcForensicsError",
    "load",
    "register_frame",
]
