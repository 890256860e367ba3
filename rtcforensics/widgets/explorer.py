"""The capture explorer: pick a capture and a session, filter by protocol, time window and severity; the
packets and findings left, the topology and the timeline of what is selected."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _avail, _safe
from .findings import findings_table
from .select import PROTOCOL_GROUPS, SEVERITIES, apply_view, session_options, time_bounds

PACKET_COLUMNS = ("frame", "ts", "src", "sport", "dst", "dport", "transport", "demux", "cls", "length",
                  "via_turn", "flow_id")


def _open(source: Any, keylog: Any = None) -> Any:
    if hasattr(source, "frame_names"):
        return source
    import rtcforensics

    return rtcforensics.load(source, keylog=keylog, progress=False)


def _keylog_for(path: Path) -> Path | None:
    k = path.with_suffix(".keylog")
    return k if k.is_file() else None


def explorer(captures: Any, *, selected: str | None = None, max_rows: int = 200) -> Any:
    """Explorer over one capture (a ``Capture`` or path) or several (a list of paths or captures, or
    ``{label: path or Capture}``, e.g. :func:`sample_captures`); ``selected`` is the label shown first. A
    capture given as a path is loaded when first chosen, with the keylog beside it (``NAME.keylog``)."""
    import ipywidgets as w

    if isinstance(captures, (str, os.PathLike)) or hasattr(captures, "frame_names"):
        captures = [captures]
    if isinstance(captures, Mapping):
        choices = list(captures.items())
    else:
        choices = [(getattr(c, "path", Path(str(c))).name if not isinstance(c, (str, os.PathLike))
                    else Path(c).name, c) for c in captures]  # type: ignore[union-attr]
    loaded: dict[str, Any] = {}

    labels = [label for label, _ in choices]
    if selected is not None and selected not in labels:
        raise ValueError(f"no capture labelled {selected!r} (have: {', '.join(labels)})")
    pick_cap = w.Dropdown(options=labels, value=selected or labels[0], description="Capture")
    pick_session = w.Dropdown(options=[("all sessions", 0)], value=0, description="Session")
    # background traffic (class "other": neighbour discovery, multicast, ...) is off until asked for
    protos = w.SelectMultiple(options=list(PROTOCOL_GROUPS), value=tuple(g for g in PROTOCOL_GROUPS if g != "other"),
                              description="Protocols", rows=len(PROTOCOL_GROUPS))
    window = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.1, description="Seconds",
                                continuous_update=False, layout=w.Layout(width="60%"))
    sev = w.Dropdown(options=["any"] + list(SEVERITIES), value="any", description="Severity ≥")
    status = w.HTML()
    packets_out = w.HTML()
    findings_out = w.HTML()
    state: dict[str, Any] = {}

    def load_current(_: Any = None) -> None:
        label = pick_cap.value
        src = dict(choices)[label]
        if label not in loaded:
            try:
                keylog = _keylog_for(Path(src)) if isinstance(src, (str, os.PathLike)) else None
                loaded[label] = _open(src, keylog)
            except Exception as e:  # noqa: BLE001
                status.value = f"<p class='rtcf-missing'>{_safe.escape(label)}: {_safe.escape(e)}</p>"
                state.clear()
                return
        cap = loaded[label]
        packets, why = _avail.frame(cap, "packets")
        sessions, _ = _avail.frame(cap, "sessions")
        report, rwhy = _avail.report(cap)
        state.update(cap=cap, packets=packets, sessions=sessions, report=report)
        notes = [x for x in (why, rwhy) if x]
        status.value = "".join(f"<p class='rtcf-missing'>{_safe.escape(n)}</p>" for n in notes)
        opts = session_options(sessions)
        state["session_keys"] = [key for _, key in opts]
        pick_session.options = [(label, i) for i, (label, _) in enumerate(opts)]
        pick_session.value = 0
        bounds = time_bounds(packets) if packets is not None else None
        span = (bounds[1] - bounds[0]).total_seconds() if bounds else 1.0
        window.max = max(span, 0.1)
        window.value = (0.0, window.max)
        window.step = max(round(span / 100, 3), 0.001)
        refresh()

    def refresh(_: Any = None) -> None:
        packets = state.get("packets")
        if packets is None:
            packets_out.value = ""
            findings_out.value = ""
            return
        full = window.value[0] <= 0.0 and window.value[1] >= window.max
        pk, fd = apply_view(packets, state.get("report"), state.get("sessions"),
                            protocols=None if len(protos.value) == len(PROTOCOL_GROUPS) else list(protos.value),
                            start_s=None if full else window.value[0], end_s=None if full else window.value[1],
                            min_severity=None if sev.value == "any" else sev.value,
                            session=state.get("session_keys", [None])[pick_session.value or 0])
        cols = [c for c in PACKET_COLUMNS if c in pk.columns]
        shown = pk[cols].copy()
        if "ts" in shown.columns and len(packets):
            # seconds from the first packet of the capture, as the time slider counts
            shown.insert(1, "t_s", ((shown["ts"] - packets["ts"].min()).dt.total_seconds()).round(6))
            shown = shown.drop(columns=["ts"])
        packets_out.value = (f"<h4>{len(pk)} of {len(packets)} packets</h4>" + _safe.frame_html(shown, max_rows=max_rows))
        if state.get("report") is None:
            findings_out.value = ""
        else:
            t = findings_table(fd)
            findings_out.value = f"<h4>{len(t)} findings</h4>" + (_safe.frame_html(t) if len(t) else "")

    pick_cap.observe(load_current, names="value")
    for c in (pick_session, protos, window, sev):
        c.observe(refresh, names="value")
    load_current()
    box = w.VBox([w.HBox([pick_cap, pick_session, sev]), w.HBox([protos, window]), status, findings_out,
                  packets_out])
    box.add_class("rtcf-explorer")
    return box


SUMMARY_FRAMES = ("packets", "flows", "stun", "dtls", "rtp_streams", "signalling", "sdp", "candidates", "sessions",
                  "anomalies")


def summary_rows(cap: Any) -> list[tuple[str, str]]:
    """``(frame, rows or why not)`` for the frames a summary shows, and the findings by severity."""
    out: list[tuple[str, str]] = []
    for name in SUMMARY_FRAMES:
        df, why = _avail.frame(cap, name)
        out.append((name, f"{len(df)} rows" if df is not None else why))
    report, why = _avail.report(cap)
    if report is None:
        out.append(("findings", why))
    else:
        from .select import findings_frame

        fd = findings_frame(report)
        counts = fd["severity"].value_counts()
        out.append(("findings", ", ".join(f"{counts.get(s, 0)} {s}" for s in reversed(SEVERITIES))))
    return out


def summary(cap: Any) -> Any:
    """The capture's name and what each frame holds, as an HTML widget."""
    import ipywidgets as w

    name = getattr(getattr(cap, "path", None), "name", str(cap))
    rows = "".join(f"<tr><td>{_safe.escape(k)}</td><td>{_safe.escape(v)}</td></tr>" for k, v in summary_rows(cap))
    box = w.HTML(f"<h4>{_safe.escape(name)}</h4><table class='rtcf-table'>{rows}</table>")
    box.add_class("rtcf-summary")
    return box


def table(df: Any, *, max_rows: int = 50, show_secrets: bool = False, empty: str = "nothing of this kind in "
          "this capture") -> Any:
    """A frame as an escaped HTML table widget (secrets redacted unless ``show_secrets``); ``empty`` is said
    when it has no rows, "not available yet" when it is None."""
    import ipywidgets as w

    if df is None:
        return w.HTML("<p class='rtcf-missing'>not available yet</p>")
    if not len(df):
        return w.HTML(f"<p><i>{_safe.escape(empty)}</i></p>")
    return w.HTML(_safe.frame_html(df, max_rows=max_rows, show_secrets=show_secrets))


def sample_captures(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """``{name: path}`` of the captures in a directory (pcap, pcapng, gzip-compressed), sorted."""
    d = Path(directory)
    out: dict[str, Path] = {}
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        if p.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")):
            out[p.name] = p
    return out


__all__: Sequence[str] = ("explorer", "sample_captures", "summary", "summary_rows", "table")
