"""The capture explorer: pick a capture and a session, filter by protocol, time window and severity; the
packets and findings left, the topology and the timeline of what is selected."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..capture import load
from . import _avail, _safe
from ._static import LiveBox, StaticHTML
from .findings import findings_table, severity_coloured
from .select import PROTOCOL_GROUPS, SEVERITIES, apply_view, declared, session_options, time_bounds

PACKET_COLUMNS = tuple(
    declared("packets", c)
    for c in (
        "frame",
        "ts",
        "src",
        "sport",
        "dst",
        "dport",
        "transport",
        "cls",
        "length",
        "via_turn",
        "flow_id",
    )
)


def _keylog_for(path: Path) -> Path | None:
    k = path.with_suffix(".keylog")
    return k if k.is_file() else None


LOAD_STEPS = (
    "packets",
    "flows",
    "stun",
    "dtls",
    "rtp_streams",
    "signalling",
    "sdp",
    "candidates",
    "sessions",
)


def load_steps(cap: Any) -> Iterator[tuple[int, int, str]]:
    """Build ``cap``'s frames and its report one step at a time, yielding ``(done, total, what is next)``
    after each: what a progress bar shows while a capture loads and is analysed."""
    total = len(LOAD_STEPS) + 1
    for i, name in enumerate(LOAD_STEPS):
        yield i, total, f"building {name}"
        _avail.frame(cap, name)
    yield len(LOAD_STEPS), total, "running the checks"
    _avail.report(cap)
    yield total, total, "done"


def save_uploads(files: Sequence[Mapping[str, Any]], directory: str | os.PathLike[str]) -> list[Path]:
    """Uploaded files (``FileUpload.value`` items: ``name``, ``content``) written into ``directory``, each
    atomically (temporary name, then rename), under its base name only."""
    out = []
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for f in files:
        name = Path(str(f["name"])).name
        if not name or name in (".", ".."):
            raise ValueError(f"an uploaded file has no usable name ({f['name']!r})")
        target = d / name
        tmp = d / f".{name}.part"
        tmp.write_bytes(bytes(f["content"]))
        os.replace(tmp, target)
        out.append(target)
    return out


def explorer(
    captures: Any,
    *,
    selected: str | None = None,
    max_rows: int = 200,
    upload_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Explorer over one capture (a ``Capture`` or path) or several (a list of paths or captures, or
    ``{label: path or Capture}``, e.g. :func:`sample_captures`); ``selected`` is the label shown first. A
    capture given as a path is loaded when first chosen, with the keylog beside it (``NAME.keylog``), a
    progress bar showing the frames being built and the checks running. *Add* loads your own capture (a path
    on the kernel's machine, or uploaded with its keylog and side files, written into ``upload_dir``)."""
    import tempfile

    import ipywidgets as w

    if isinstance(captures, (str, os.PathLike)) or hasattr(captures, "frame_names"):
        captures = [captures]
    if isinstance(captures, Mapping):
        choices = list(captures.items())
    else:
        choices = [
            (
                getattr(c, "path", Path(str(c))).name
                if not isinstance(c, (str, os.PathLike))
                else Path(c).name,
                c,
            )
            for c in captures
        ]  # type: ignore[union-attr]
    loaded: dict[str, Any] = {}

    labels = [label for label, _ in choices]
    if selected is not None and selected not in labels:
        raise ValueError(f"no capture labelled {selected!r} (have: {', '.join(labels)})")
    pick_cap = w.Dropdown(options=labels, value=selected or labels[0], description="Capture")
    pick_session = w.Dropdown(options=[("all sessions", 0)], value=0, description="Session")
    # background traffic (class "other": neighbour discovery, multicast, ...) is off until asked for
    protos = w.SelectMultiple(
        options=list(PROTOCOL_GROUPS),
        value=tuple(g for g in PROTOCOL_GROUPS if g != "other"),
        description="Protocols",
        rows=len(PROTOCOL_GROUPS),
    )
    window = w.FloatRangeSlider(
        value=(0.0, 1.0),
        min=0.0,
        max=1.0,
        step=0.1,
        description="Seconds",
        continuous_update=False,
        layout=w.Layout(width="60%"),
    )
    sev = w.Dropdown(options=["any"] + list(SEVERITIES), value="any", description="Severity ≥")
    status = w.HTML()
    packets_out = w.HTML()
    findings_out = w.HTML()
    bar = w.IntProgress(
        value=0, min=0, max=1, description="", layout=w.Layout(width="40%", visibility="hidden")
    )
    busy = w.HTML()
    path_in = w.Text(
        placeholder="path to a pcap/pcapng on the kernel's machine", layout=w.Layout(width="45%")
    )
    up_cap = w.FileUpload(accept=".pcap,.pcapng,.gz", multiple=False, description="Capture")
    up_keylog = w.FileUpload(multiple=False, description="Keylog")
    up_side = w.FileUpload(accept=".sdp,.json,.jsonl,.txt", multiple=True, description="Side files")
    add = w.Button(description="Add", icon="plus")
    state: dict[str, Any] = {}
    sources: dict[str, Any] = dict(choices)
    extras: dict[str, dict[str, Any]] = {}  # label -> keylog / side files given with an added capture

    def progress(cap: Any) -> None:
        bar.layout.visibility = "visible"
        for done, total, what in load_steps(cap):
            bar.max, bar.value = total, done
            busy.value = f"<i>{_safe.escape(what)} …</i>" if done < total else ""
        bar.layout.visibility = "hidden"

    def load_current(_: Any = None) -> None:
        label = pick_cap.value
        src = sources[label]
        if label not in loaded:
            busy.value = f"<i>loading {_safe.escape(label)} …</i>"
            try:
                given = extras.get(label, {})
                keylog = given.get("keylog") or (
                    _keylog_for(Path(src)) if isinstance(src, (str, os.PathLike)) else None
                )
                cap = (
                    src
                    if hasattr(src, "frame_names")
                    else load(src, keylog=keylog, signalling=given.get("side") or None, progress=False)
                )
                progress(cap)
                loaded[label] = cap
            except Exception as e:  # a user's bad file: one line naming it, no traceback
                busy.value = ""
                bar.layout.visibility = "hidden"
                status.value = f"<p class='rtcf-missing'>{_safe.escape(label)}: {_safe.escape(e)}</p>"
                state.clear()
                return
        busy.value = ""
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
        pk, fd = apply_view(
            packets,
            state.get("report"),
            state.get("sessions"),
            protocols=None if len(protos.value) == len(PROTOCOL_GROUPS) else list(protos.value),
            start_s=None if full else window.value[0],
            end_s=None if full else window.value[1],
            min_severity=None if sev.value == "any" else sev.value,
            session=state.get("session_keys", [None])[pick_session.value or 0],
        )
        cols = [c for c in PACKET_COLUMNS if c in pk.columns]
        shown = pk[cols].copy()
        if "ts" in shown.columns and len(packets):
            # seconds from the first packet of the capture, as the time slider counts
            shown.insert(1, "t_s", ((shown["ts"] - packets["ts"].min()).dt.total_seconds()).round(6))
            shown = shown.drop(columns=["ts"])
        packets_out.value = f"<h4>{len(pk)} of {len(packets)} packets</h4>" + _safe.frame_html(
            shown, max_rows=max_rows
        )
        if state.get("report") is None:
            findings_out.value = ""
        else:
            t = findings_table(fd)
            table_html = severity_coloured(_safe.frame_html(t)) if len(t) else ""
            findings_out.value = f"<h4>{len(t)} findings</h4>" + table_html
        box.refresh_static()

    def on_add(_: Any = None) -> None:
        try:
            if up_cap.value:
                d = (
                    Path(upload_dir)
                    if upload_dir is not None
                    else Path(tempfile.mkdtemp(prefix="rtcf-upload-"))
                )
                path = save_uploads(list(up_cap.value), d)[0]
                given = {
                    "keylog": save_uploads(list(up_keylog.value), d)[0] if up_keylog.value else None,
                    "side": save_uploads(list(up_side.value), d) if up_side.value else [],
                }
            elif path_in.value.strip():
                path = Path(path_in.value.strip()).expanduser()
                if not path.is_file():
                    raise ValueError(f"{path}: no such file")
                given = {}
            else:
                status.value = "<p class='rtcf-missing'>choose a file to upload, or type a path</p>"
                return
        except (OSError, ValueError) as e:
            status.value = f"<p class='rtcf-missing'>{_safe.escape(e)}</p>"
            return
        label = path.name
        sources[label] = path
        extras[label] = given
        loaded.pop(label, None)
        pick_cap.options = list(dict.fromkeys([*pick_cap.options, label]))
        if pick_cap.value == label:
            load_current()
        else:
            pick_cap.value = label  # loads it

    add.on_click(on_add)
    box = LiveBox(
        [
            w.HBox([pick_cap, pick_session, sev]),
            w.HBox([bar, busy]),
            w.HBox([protos, window]),
            status,
            findings_out,
            packets_out,
            w.Accordion(
                children=[w.VBox([w.HBox([path_in]), w.HBox([up_cap, up_keylog, up_side, add])])],
                titles=("Add your own capture",),
            ),
        ]
    )
    box.add_class("rtcf-explorer")
    pick_cap.observe(load_current, names="value")
    for c in (pick_session, protos, window, sev):
        c.observe(refresh, names="value")
    load_current()
    return box


SUMMARY_FRAMES = (
    "packets",
    "flows",
    "stun",
    "dtls",
    "rtp_streams",
    "signalling",
    "sdp",
    "candidates",
    "sessions",
    "anomalies",
)


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


def summary(cap: Any) -> StaticHTML:
    """The capture's name and what each frame holds, as an HTML table (saved with the notebook)."""
    name = getattr(getattr(cap, "path", None), "name", str(cap))
    rows = "".join(
        f"<tr><td>{_safe.escape(k)}</td><td>{_safe.escape(v)}</td></tr>" for k, v in summary_rows(cap)
    )
    return StaticHTML(
        f"<div class='rtcf-summary'><h4>{_safe.escape(name)}</h4><table class='rtcf-table'>{rows}"
        "</table></div>"
    )


def table(
    df: Any,
    *,
    max_rows: int = 50,
    show_secrets: bool = False,
    empty: str = "nothing of this kind in this capture",
) -> StaticHTML:
    """A frame as an escaped HTML table (secrets redacted unless ``show_secrets``), saved with the notebook
    as it is; ``empty`` is said when it has no rows, "not available" when it is None."""
    if df is None:
        return StaticHTML("<p class='rtcf-missing'>not available for this capture</p>")
    if not len(df):
        return StaticHTML(f"<p><i>{_safe.escape(empty)}</i></p>")
    return StaticHTML(_safe.frame_html(df, max_rows=max_rows, show_secrets=show_secrets))


def sample_captures(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """``{name: path}`` of the captures in a directory (pcap, pcapng, gzip-compressed), sorted."""
    d = Path(directory)
    out: dict[str, Path] = {}
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        if p.name.endswith((".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")):
            out[p.name] = p
    return out


__all__: Sequence[str] = ("explorer", "sample_captures", "summary", "summary_rows", "table")


GRID_CSS = (
    ".rtcf-grid:has(table.dataTable) .rtcf-grid-fallback, .rtcf-grid [id$='_fallback'] {display: none}"
    ".rtcf-grid-fallback thead th {position: sticky; top: 0; background: white}"
    ".rtcf-grid-fallback {max-height: 420px; overflow: auto}"
)


def grid_frame(df: pd.DataFrame, *, first: Sequence[str] = (), t0: Any = None) -> pd.DataFrame:
    """The frame as a grid shows it: the deciding columns ``first``, timestamps as seconds from ``t0`` (the
    frame's first timestamp when not given), lists and dicts in one line."""
    out = df[[c for c in first if c in df.columns] + [c for c in df.columns if c not in first]].copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or str(out[c].dtype).startswith("datetime64"):
            base = t0 if t0 is not None else out[c].min()
            out[c] = (out[c] - base).dt.total_seconds().round(6)
            out = out.rename(columns={c: f"{c} (+s)"})
    return out


def grid(
    df: Any,
    *,
    first: Sequence[str] = (),
    t0: Any = None,
    max_rows: int = 5000,
    show_secrets: bool = False,
    empty: str = "nothing of this kind in this capture",
) -> StaticHTML:
    """A sortable, searchable table (itables / DataTables) with sticky headers, the deciding columns first and
    relative times; its static copy (an escaped HTML table) is kept in the saved notebook and shown wherever
    the DataTables script does not run (an untrusted or exported notebook offline). Secrets are redacted
    before anything reaches the page."""
    if df is None or not len(df):
        return table(df, empty=empty)
    shown = _safe.redact_frame(grid_frame(df.head(max_rows), first=first, t0=t0), show_secrets=show_secrets)
    static = _safe.frame_html(shown, max_rows=max_rows, show_secrets=True)  # already redacted
    try:
        from itables import to_html_datatable
    except ImportError:
        return StaticHTML(static)
    cells = shown.map(_safe.grid_cell)
    dt = to_html_datatable(
        cells,
        connected=True,
        display_logo_when_loading=False,
        allow_html=False,
        showIndex=False,
        scrollY="420px",
        scrollCollapse=True,
        paging=False,
        maxBytes=0,
        classes="display nowrap compact cell-border",
        warn_on_unexpected_types=False,
    )
    return StaticHTML(
        f"<div class='rtcf-grid'><style>{GRID_CSS}</style>{dt}"
        f"<div class='rtcf-grid-fallback'>{static}</div></div>"
    )
