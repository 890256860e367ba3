"""Indicators out, from a button: the indicator files of ``rtcforensics.report.indicators`` (CSV, JSON, a
STIX 2.1 bundle, a Wireshark display filter per finding, a pcap slice of each finding's frames), the same as
``rtcforensics export --indicators``; secrets redacted as in every report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..checks.analyze import Report
from ..report.indicators import write_indicators
from ..report.jsonout import document
from ..report.outfiles import OutputDir
from . import _avail, _safe


def export_indicators(
    report: Report, out_dir: str | os.PathLike[str], *, capture: Path | None = None, overwrite: bool = False
) -> tuple[list[dict[str, Any]], OutputDir]:
    """Write the indicator files of ``report`` into ``out_dir``; returns the indicators and the directory
    (its ``files`` and ``missing`` say what was written)."""
    out = OutputDir(out_dir, force=overwrite)
    inds = write_indicators(document(report), out, capture=capture)
    return inds, out


def export_widget(cap: Any, report: Report | None = None, out_dir: str | os.PathLike[str] = "out") -> Any:
    """A button that writes the indicator files into ``out_dir`` and lists them."""
    import ipywidgets as w

    from ._static import LiveBox

    if report is None:
        report, why = _avail.report(cap)
        if report is None:
            return w.HTML(f"<p class='rtcf-missing'>Indicators: {_safe.escape(why)}</p>")
    folder = w.Text(value=str(out_dir), description="Folder", layout=w.Layout(width="50%"))
    overwrite = w.Checkbox(value=False, description="overwrite")
    go = w.Button(description="Export indicators", icon="download")
    result = w.HTML()
    box = LiveBox(
        [w.HBox([folder, overwrite, go]), result],
        static=lambda: (
            result.value
            or (
                "<p><b>Indicators</b> not exported in this session (<i>Export indicators</i> writes them into "
                f"<code>{_safe.escape(folder.value)}</code>)</p>"
            )
        ),
    )
    box.add_class("rtcf-export")

    def on_click(_: Any = None) -> None:
        try:
            inds, out = export_indicators(
                report,
                folder.value,
                capture=getattr(cap, "path", None),  # type: ignore[arg-type]
                overwrite=overwrite.value,
            )
        except Exception as e:
            result.value = f"<p class='rtcf-missing'>{_safe.escape(e)}</p>"
            return
        files = "".join(f"<li><code>{_safe.escape(f.get('name', f))}</code></li>" for f in out.files)
        missing = "".join(
            f"<li>{_safe.escape(m.get('name'))}: {_safe.escape(m.get('why') or m.get('reason'))}</li>"
            for m in out.missing
        )
        result.value = (
            f"<p>{len(inds)} indicator(s) written to <code>{_safe.escape(out.path)}</code>:</p>"
            f"<ul>{files}</ul>" + (f"<p>not written:</p><ul>{missing}</ul>" if missing else "")
        )
        box.refresh_static()

    go.on_click(on_click)
    return box
