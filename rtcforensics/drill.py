"""Drill-down: one frame's full Wireshark dissection through pyshark.

pyshark drives tshark from asyncio and fails with "This event loop is already running" inside a Jupyter
kernel. :func:`dissect_frame` therefore runs it in a worker thread with an event loop of its own, bounded
by a timeout, so it works the same from a script, a notebook cell or a coroutine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CaptureError, ToolError

#: WebRTC runs on random ports: let tshark's heuristics find RTP, and DTLS/RTP next to STUN (RFC 7983).
HEURISTICS = ("rtp_udp", "rtp_stun", "dtls_stun")
DEFAULT_TIMEOUT_S = 60.0


@dataclass(repr=False)
class FrameDissection:
    """Frame ``number`` as Wireshark dissects it. ``packet`` is the pyshark Packet (walk it as usual:
    ``fd.packet.stun.att_ipv4_xord``); ``layers`` the protocol names outermost first."""

    number: int
    packet: Any

    @property
    def layers(self) -> list[str]:
        return [layer.layer_name for layer in self.packet.layers]

    def __getitem__(self, layer: str) -> Any:
        """The pyshark layer of that name (``fd["stun"]``); the innermost one when it occurs twice."""
        found = [x for x in self.packet.layers if x.layer_name == layer]
        if not found:
            raise KeyError(f"frame {self.number} has no {layer!r} layer (layers: {', '.join(self.layers)})")
        return found[-1]

    def get_layers(self, layer: str) -> list[Any]:
        """Every layer of that name, outermost first (e.g. a STUN message inside a TURN Data indication)."""
        return [x for x in self.packet.layers if x.layer_name == layer]

    def fields(self, layer: str) -> dict[str, list[str]]:
        """``{field name: [shown values ...]}`` of the innermost layer of that name, every occurrence kept."""
        return _layer_fields(self[layer])

    def to_dict(self) -> dict[str, Any]:
        """Plain data: frame number, layer names, and per layer ``{field: [values]}`` (layers seen twice
        become a list of such dicts)."""
        out: dict[str, Any] = {}
        for layer in self.packet.layers:
            d = _layer_fields(layer)
            name = layer.layer_name
            if name in out:
                prev = out[name]
                out[name] = (prev if isinstance(prev, list) else [prev]) + [d]
            else:
                out[name] = d
        return {"frame": self.number, "layers": self.layers, "fields": out}

    def summary(self) -> str:
        p = self.packet
        proto = getattr(p, "highest_layer", "?")
        length = getattr(p, "length", "?")
        ts = getattr(p, "sniff_time", None)
        return f"frame {self.number} {ts} {'/'.join(self.layers)} {proto} {length} bytes"

    def __str__(self) -> str:
        return str(self.packet)

    def __repr__(self) -> str:
        return f"<FrameDissection {self.summary()}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(self.summary())


def _layer_fields(layer: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, container in getattr(layer, "_all_fields", {}).items():
        values = []
        for f in container.all_fields:
            v = f.show if f.show not in (None, "") else (f.showname or f.raw_value or "")
            values.append(v)
        out[name] = values
    return out


def _tshark_args(number: int) -> list[str]:
    args: list[str] = []
    for h in HEURISTICS:
        args += ["--enable-heuristic", h]
    # tshark may stop after frame `number`: nothing later changes how earlier frames dissect on one pass.
    args += ["-c", str(number)]
    return args


def _dissect_in_own_loop(
    path: Path, number: int, keylog: Path | None, timeout: float, started: list[Any]
) -> Any:
    import pyshark  # heavy import, only for drill-down

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    packets: list[Any] = []
    prefs = {"tls.keylog_file": str(keylog)} if keylog else None
    cap = None
    try:
        cap = pyshark.FileCapture(
            str(path),
            display_filter=f"frame.number == {number}",
            keep_packets=False,
            custom_parameters=_tshark_args(number),
            override_prefs=prefs,
            eventloop=loop,
        )
        started.append(cap)
        loop.run_until_complete(
            asyncio.wait_for(cap.packets_from_tshark(packets.append, close_tshark=False), timeout)
        )
    except asyncio.TimeoutError:
        raise ToolError(
            f"tshark (pyshark) took longer than {timeout:g}s to dissect frame {number} of {path}"
        ) from None
    finally:
        try:
            if cap is not None:
                _reap(loop, cap)
                loop.run_until_complete(cap.close_async())  # kills tshark if it is still running
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return packets[0] if packets else None


def _reap(loop: asyncio.AbstractEventLoop, cap: Any) -> None:
    """Let this loop see tshark's exit before pyshark closes the pipes. tshark stops by itself after frame
    ``number`` (-c); closing its transport before asyncio's child watcher (a thread per child on Python 3.11)
    has reported the exit makes the transport reap the child itself, and the watcher then logs "Unknown child
    process pid N". Waiting here (bounded) gives the watcher the child first."""
    for proc in list(getattr(cap, "_running_processes", ())):
        try:
            loop.run_until_complete(asyncio.wait_for(proc.wait(), 5))
        except (asyncio.TimeoutError, ProcessLookupError):
            pass  # close_async kills it


def dissect_frame(
    path: str | os.PathLike[str],
    number: int,
    keylog: str | os.PathLike[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> FrameDissection:
    """Frame ``number`` (Wireshark's 1-based number) of ``path`` fully dissected by tshark via pyshark.

    Runs in a worker thread with its own event loop, so it also works while an event loop is running in
    the calling thread (a Jupyter kernel, a coroutine). ``keylog`` (an SSLKEYLOGFILE) is handed to tshark
    as ``tls.keylog_file``. Raises :class:`CaptureError` when the frame does not exist and
    :class:`ToolError` when tshark fails or exceeds ``timeout`` seconds."""
    p = Path(path)
    if not p.is_file():
        raise CaptureError(p, "no such file")
    if number < 1:
        raise CaptureError(p, f"frame numbers start at 1, not {number}")
    kl = Path(keylog) if keylog else None
    if kl is not None and not kl.is_file():
        raise CaptureError(kl, "keylog file not found")
    started: list[Any] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtcforensics-drill")
    try:
        future = pool.submit(_dissect_in_own_loop, p, number, kl, timeout, started)
        try:
            # The worker enforces `timeout` itself and kills tshark; the margin covers its cleanup.
            packet = future.result(timeout=timeout + 10)
        except concurrent.futures.TimeoutError:
            raise ToolError(f"dissecting frame {number} of {p} did not finish in {timeout:g}s") from None
        except ToolError:
            raise
        except Exception as e:  # pyshark raises its own exception types for tshark failures
            raise ToolError(
                f"tshark (pyshark) failed on frame {number} of {p}: {type(e).__name__}: {e}"
            ) from e
    finally:
        pool.shutdown(wait=False)
    if packet is None:
        raise CaptureError(p, f"has no frame {number}")
    return FrameDissection(number, packet)


__all__ = ["HEURISTICS", "FrameDissection", "dissect_frame"]
