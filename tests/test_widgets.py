"""The widget factories and plots (rtcforensics/widgets/*) built on sample captures, without a kernel.

Widgets are thin; what is asserted is what they show: the PNG the topology renders and what is highlighted in
it, the rows of the findings table, the drill-down text of a cited frame, the stream plots' data."""

from __future__ import annotations

from functools import cache

import ipywidgets as w
import pytest
from matplotlib.figure import Figure
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics import widgets
from rtcforensics.widgets import findings as wfind
from rtcforensics.widgets import select, streams, timeline, topology
from rtcforensics.widgets.explorer import summary_rows

PNG = b"\x89PNG\r\n\x1a\n"


@cache
def _cap(name: str) -> rtcforensics.Capture:
    keylog = sample_path(name).with_suffix(".keylog")
    return rtcforensics.load(sample_path(name), keylog=keylog if keylog.is_file() else None, progress=False)


def cap(name: str) -> rtcforensics.Capture:
    sample_path(name)
    return _cap(name)


def need(c: rtcforensics.Capture, *frames: str) -> None:
    missing = [f for f in frames if f not in c.frame_names()]
    if missing:
        pytest.skip(f"frame(s) {missing} not built in this tree yet")


def walk(widget: w.Widget) -> list[w.Widget]:
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += walk(child)
    return out


def first(widget: w.Widget, kind: type) -> w.Widget:
    return next(x for x in walk(widget) if isinstance(x, kind))


def test_topology_draw_styles_and_highlight() -> None:
    topo = pytest.importorskip("rtcforensics.topology")
    c = cap("sdes_plain_rtp")
    g = topo.graph(c)
    fig = Figure()
    ax = fig.add_subplot()
    assert topology.draw(g, ax) is ax
    arrows = [p for p in ax.patches if p.get_gid() and p.get_gid().startswith("edge-")]
    assert len(arrows) == g.number_of_edges() - sum(1 for u, v in g.edges() if u == v)
    # roles as node colours: one scatter with one colour per host
    assert len(ax.collections[0].get_offsets()) == g.number_of_nodes()
    rep = widgets.analyze(c)
    f = select.filter_findings(rep, slugs=["rtp-unencrypted"])
    assert len(f), "the SDES capture raises rtp-unencrypted"
    flows = select.finding_flow_ids(f.iloc[0], c.packets)
    ax2 = Figure().add_subplot()
    topology.draw(g, ax2, highlight=flows)
    thick = [p for p in ax2.patches if p.get_gid() and p.get_linewidth() >= 3]
    assert len(thick) == len(select.highlighted_edges(g, flows)) > 0
    # the plaintext RTP flow is never drawn as encrypted (solid)
    assert all(p.get_linestyle() not in ("-", "solid") for p in thick)


def test_capture_text_on_plots_is_not_mathtext() -> None:
    topo = pytest.importorskip("rtcforensics.topology")
    g = topo.graph(cap("ws_plaintext_private"))
    node = next(iter(g.nodes))
    g.nodes[node]["label"] = "$\\frac{broken$"  # would raise in matplotlib's mathtext parser if parsed
    for *_, d in g.edges(data=True):
        d["protocols"] = ["$x^{$", "websocket"]
    assert bytes(topology.render_png(g, title="$\\undefined{$")).startswith(PNG)
    ax = Figure().add_subplot()
    topology.draw(g, ax)
    assert "$\\frac{broken$" in [t.get_text() for t in ax.texts]


def test_topology_widget_renders_png_and_lists_frames_of_a_finding() -> None:
    pytest.importorskip("rtcforensics.topology")
    c = cap("ws_plaintext_private")
    box = widgets.topology_widget(c)
    img = first(box, w.Image)
    assert bytes(img.value).startswith(PNG)
    picker = first(box, w.Dropdown)
    labels = [lab for lab, _ in picker.options]
    rep = widgets.analyze(c)
    assert len(labels) == 1 + len(select.findings_frame(rep))
    before = bytes(img.value)
    pick = next(v for lab, v in picker.options if "private" in lab.lower())
    picker.value = pick
    assert bytes(img.value) != before
    info = [x for x in walk(box) if isinstance(x, w.HTML)][-1]
    assert "frames" in info.value


def test_widgets_say_what_failed_instead_of_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    c = rtcforensics.load(sample_path("clean_call"), progress=False)  # a fresh capture: nothing cached

    def broken(self: rtcforensics.Capture, name: str) -> None:
        raise ValueError(f"{name} builder broke")

    monkeypatch.setattr(rtcforensics.Capture, "get_frame", broken)
    box = widgets.streams_widget(c)
    assert isinstance(box, w.HTML) and "rtp_streams" in box.value and "could not be built" in box.value
    box = widgets.topology_widget(c)
    assert isinstance(box, w.HTML) and "could not be built" in box.value


def test_findings_widget_rows_severity_filter_and_drill_down() -> None:
    c = cap("sdes_plain_rtp")
    rep = widgets.analyze(c)
    if rep is None:
        pytest.skip("rtcforensics.analyze not available yet")
    box = widgets.findings_widget(c, rep)
    sev = first(box, w.Dropdown)
    rows = first(box, w.Select)
    all_rows = len(rows.options)
    assert all_rows == len(select.findings_frame(rep))
    sev.value = "critical"
    crit = select.filter_findings(rep, min_severity="critical")
    assert len(rows.options) == len(crit)
    truth = next(f for f in load_truth("sdes_plain_rtp")["findings"] if f["slug"] == "sdes-key-exposed")
    assert "sdes-key-exposed" in set(crit["slug"]), "the SDES key crossed the wire in clear: critical"
    rows.value = next(i for i, r in crit.iterrows() if r["slug"] == "sdes-key-exposed")
    detail = [x for x in walk(box) if isinstance(x, w.HTML)][1]
    assert "sdes-key-exposed" in detail.value
    assert "82tuFY6" not in detail.value  # the inline key stays redacted
    frame_pick = [x for x in walk(box) if isinstance(x, w.Dropdown)][1]
    assert set(truth["frames"]) & set(frame_pick.options)
    text = wfind.dissection_text(c, frame_pick.options[0])
    if "not available" in text:
        pytest.skip(text)
    assert "http" in text.lower()  # the SDP travelled in an HTTP message


def test_findings_table_escapes_and_orders() -> None:
    c = cap("ws_plaintext_private")
    rep = widgets.analyze(c)
    if rep is None:
        pytest.skip("rtcforensics.analyze not available yet")
    t = widgets.findings_table(rep)
    ranks = list(t["severity"].map(select.severity_rank))
    assert ranks == sorted(ranks, reverse=True)
    assert {f["slug"] for f in load_truth("ws_plaintext_private")["findings"]} <= set(t["slug"])


def test_timeline_draw_has_one_row_per_flow_and_marks_findings() -> None:
    c = cap("sdes_plain_rtp")
    need(c, "packets")
    phases = select.flow_phases(c.packets)
    marks = select.finding_marks(widgets.analyze(c), c.packets)
    ax = Figure().add_subplot()
    assert timeline.draw_timeline(phases, marks, ax) is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        f"flow {f}" for f in sorted(phases.flow_id.unique())
    ]
    assert len(ax.lines) == len(marks)
    box = widgets.timeline_widget(c)
    assert bytes(first(box, w.Image).value).startswith(PNG)


def test_streams_widget_and_plots_on_the_clean_call() -> None:
    c = cap("clean_call")
    need(c, "rtp", "rtp_streams")
    box = widgets.streams_widget(c)
    picker = first(box, w.Dropdown)
    assert len(picker.options) == len(c.rtp_streams)
    assert bytes(first(box, w.Image).value).startswith(PNG)
    flow_id, ssrc = picker.options[0][1]
    series = select.stream_series(c.rtp, flow_id, ssrc)
    ax = Figure().add_subplot()
    assert streams.plot_metric(series, ax, "packets") is ax
    assert sum(p.get_height() for p in ax.patches) == series["packets"].sum()
    with pytest.raises(ValueError, match="unknown metric"):
        streams.plot_metric(series, ax, "mos")


def test_explorer_filters_follow_the_controls() -> None:
    c = cap("ws_plaintext_private")
    need(c, "packets", "sessions")
    box = widgets.explorer(c)
    protos = first(box, w.SelectMultiple)
    pick_session = [x for x in walk(box) if isinstance(x, w.Dropdown)][1]
    packets_out = [x for x in walk(box) if isinstance(x, w.HTML)][-1]
    total = len(c.packets)
    # background traffic is off by default
    fg = select.filter_packets(c.packets, protocols=[g for g in select.PROTOCOL_GROUPS if g != "other"])
    assert 0 < len(fg) < total
    assert f"{len(fg)} of {total} packets" in packets_out.value
    protos.value = ("stun/turn",)
    stun = select.filter_packets(c.packets, protocols=["stun/turn"])
    assert len(stun) == sum(load_truth("ws_plaintext_private")["stun"].values())
    assert f"{len(stun)} of {total} packets" in packets_out.value
    protos.value = tuple(select.PROTOCOL_GROUPS)
    assert f"{total} of {total} packets" in packets_out.value
    # picking the one ICE session keeps its flows only: no signalling
    assert next(lab for lab, _ in pick_session.options) == "all sessions" and len(pick_session.options) == 2
    pick_session.value = 1
    key = select.session_options(c.sessions)[1][1]
    pk, _ = select.apply_view(c.packets, None, c.sessions, session=key)
    assert f"{len(pk)} of {total} packets" in packets_out.value
    assert "websocket" not in packets_out.value


def test_explorer_switches_capture() -> None:
    c = cap("ws_plaintext_private")
    other = sample_path("clean_call")
    need(c, "packets")
    box = widgets.explorer(
        {"clean_call.pcapng": other, "ws_plaintext_private.pcapng": c}, selected="ws_plaintext_private.pcapng"
    )
    pick_cap = first(box, w.Dropdown)
    protos = first(box, w.SelectMultiple)
    packets_out = [x for x in walk(box) if isinstance(x, w.HTML)][-1]
    protos.value = tuple(select.PROTOCOL_GROUPS)
    assert f"{len(c.packets)} of {len(c.packets)} packets" in packets_out.value
    pick_cap.value = "clean_call.pcapng"  # loaded now, with clean_call.keylog beside it
    n = len(cap("clean_call").packets)
    assert f"{n} of {n} packets" in packets_out.value
    assert n != len(c.packets)
    with pytest.raises(ValueError, match="no capture labelled"):
        widgets.explorer({"a": other}, selected="b")


def test_summary_counts_frames() -> None:
    c = cap("ws_plaintext_private")
    need(c, "packets")
    rows = dict(summary_rows(c))
    assert rows["packets"] == f"{len(c.packets)} rows"
    assert "candidates" in rows
    html = widgets.summary(c)._repr_html_()
    assert "ws_plaintext_private.pcapng" in html and f"<td>{len(c.packets)} rows</td>" in html
