"""Views that survive saving: a live widget while the kernel runs, and a static copy of what it shows.

A :class:`LiveBox` displayed in a notebook emits two outputs: the widget, and a static HTML copy of what the
widget shows (tables as HTML, figures as PNG ``<img>``), kept up to date while the view changes. Saved and
reopened without a kernel (or without widget state), or exported with ``jupyter nbconvert --to html``, the
notebook still shows the tables and figures. While the widget renders, a CSS rule hides the static copy in
the same output area (``.rtcf-live`` is the live widget's class), so nothing shows twice.

:func:`static_html` renders any widget tree to that static HTML (pure; tested without a kernel).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from . import _safe

LIVE_CLASS = "rtcf-live"
STATIC_CLASS = "rtcf-static"
# Hide the static copy where the live widget rendered (JupyterLab, nbconvert's lab template, classic notebook).
STATIC_CSS = (
    f"<style>.jp-OutputArea:has(.{LIVE_CLASS}) .{STATIC_CLASS}, .output:has(.{LIVE_CLASS}) "
    f".{STATIC_CLASS} {{display: none}}</style>"
)
TEXT_PLAIN = "rtcforensics view (interactive with a running kernel; its static copy follows)"


def png_html(png: bytes, alt: str = "figure") -> str:
    """A PNG as an ``<img>`` with a data URI (survives saving and HTML export)."""
    data = base64.b64encode(bytes(png)).decode("ascii")
    return f"<img alt='{_safe.escape(alt)}' src='data:image/png;base64,{data}' style='max-width:100%'/>"


def static_html(widget: Any) -> str:
    """What ``widget`` (and its children) shows, as static HTML: HTML values as they are (they are built
    escaped and redacted), images as PNG, pickers as their description and chosen label."""
    if isinstance(widget, w.Image):
        return png_html(widget.value) if widget.value else ""
    if isinstance(widget, (w.HTML, w.HTMLMath)):
        return str(widget.value)
    if isinstance(widget, w.Button):
        return ""
    if isinstance(widget, (w.Dropdown, w.Select, w.RadioButtons, w.ToggleButtons)):
        return _pick(widget.description, str(widget.label or ""))
    if isinstance(widget, w.SelectMultiple):
        return _pick(widget.description, ", ".join(map(str, widget.label)))
    if isinstance(widget, (w.Text, w.Textarea, w.Label)):
        return _pick(getattr(widget, "description", ""), str(widget.value)) if widget.value else ""
    if isinstance(widget, (w.FloatRangeSlider, w.IntRangeSlider)):
        lo, hi = widget.value
        return _pick(widget.description, f"{lo:g} to {hi:g}")
    if isinstance(widget, w.Box):
        inner = "".join(static_html(c) for c in widget.children)
        return (
            f"<div style='display:flex;gap:1em;flex-wrap:wrap'>{inner}</div>"
            if isinstance(widget, w.HBox)
            else inner
        )
    return ""


def _pick(description: str, label: str) -> str:
    text = _safe.escape(_safe.redact_text(label))
    return (
        f"<p class='rtcf-pick'><b>{_safe.escape(description)}</b> {text}</p>"
        if description
        else f"<p>{text}</p>"
    )


class LiveBox(w.VBox):  # type: ignore[misc]
    """A VBox that, displayed in a notebook, also leaves its static copy (``static()``, default: the static
    HTML of its children) and refreshes that copy on :meth:`refresh_static`."""

    def __init__(
        self, children: Sequence[Any] = (), *, static: Callable[[], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(list(children), **kwargs)
        self._static = static
        self._handles: list[Any] = []
        self.add_class(LIVE_CLASS)

    def static_html(self) -> str:
        body = self._static() if self._static is not None else static_html(self)
        return f"{STATIC_CSS}<div class='{STATIC_CLASS}'>{body}</div>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = TEXT_PLAIN
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        handle = display(
            {"text/html": self.static_html(), "text/plain": "(static copy)"}, raw=True, display_id=True
        )
        if handle is not None:
            self._handles.append(handle)

    def refresh_static(self) -> None:
        """Bring the static copies displayed so far up to date with what the widget shows now."""
        if not self._handles:
            return
        html = self.static_html()
        for h in self._handles:
            h.update({"text/html": html, "text/plain": "(static copy)"}, raw=True)


class StaticHTML:
    """HTML that needs no widget (a table, a card): displays as ``text/html``, saved as it is."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return "rtcforensics table (HTML)"
