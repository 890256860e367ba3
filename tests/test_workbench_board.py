"""Linked views, the verdict card and the call ladder (rtcforensics/widgets/board.py, verdict.py, ladder.py),
built on sample captures without a kernel."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache

import ipywidgets as w
from matplotlib.figure import Figure
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics import widgets
from rtcforensics.widgets import _static, board, ladder, select, verdict

PNG = b"\x89PNG\r\n\x1a\n"


@cache
def cap(name: str) -> rtcforensics.Capture:
    keylog = sample_path(name).with_suffix(".keylog")
    return rtcforensics.load(sample_path(name), keylog=keylog if keylog.is_file() else None, progress=False)


def test_picking_a_finding_narrows_every_view_to_its_frames() -> None:
    c = cap("fingerprint_rewrite")
    report = widgets.analyze(c)
    fd = select.findings_frame(report)
    i = next(
        i for i, r in fd.iterrows() if r["slug"] == "dtls-fingerprint-mismatch" and r["flow_id"] is not None
    )
    v = board.finding_view(report, c.packets, i)
    assert v.frames == sorted(report.findings[i].frames) and set(v.packets["frame"]) == set(v.frames)
    truth = load_truth("fingerprint_rewrite")["dtls"][0]
    assert {truth["client"].rsplit(":", 1)[0], truth["server"].rsplit(":", 1)[0]} <= v.hosts
    assert v.span is not None and v.span[0] <= v.span[1]
    assert board.finding_view(report, c.packets, -1).packets is c.packets
    box = widgets.workbench(c, report)
    picker = next(x for x in _walk(box) if isinstance(x, w.Select))
    grid = next(x for x in _walk(box) if isinstance(x, w.HTML) and "packet(s)" in x.value)
    assert f"<h4>{len(c.packets)} packet(s)</h4>" in grid.value
    images = [x for x in _walk(box) if isinstance(x, w.Image)]
    before = [bytes(x.value) for x in images]
    picker.value = i
    assert f"<h4>{len(v.frames)} packet(s) cited by the finding</h4>" in grid.value
    assert all(bytes(x.value).startswith(PNG) for x in images)
    assert [bytes(x.value) for x in images] != before  # topology, ladder and timeline follow the pick
    assert "dtls-fingerprint-mismatch" in box.static_html()


def test_dissection_layers_are_collapsible_and_complete() -> None:
    c = cap("sdes_plain_rtp")
    n = next(f for f in load_truth("sdes_plain_rtp")["findings"] if f["slug"] == "sdes-key-exposed")[
        "frames"
    ][0]
    layers = board.dissection_layers(c, n)
    names = [name for name, _ in layers]
    if names == ["error"]:
        import pytest

        pytest.skip(layers[0][1])
    assert names[:2] == ["eth", "ip"] and "sdp" in names  # the SDP decoded as a layer of its own, not cut
    sdp = dict(layers)["sdp"]
    assert "crypto" in sdp and "inline:<redacted>" in sdp
    html = board.layers_html(layers)
    assert html.count("<details") == len(layers) and html.count(" open>") == 1


def test_verdict_card_on_the_sdes_call() -> None:
    c = cap("sdes_plain_rtp")
    report = widgets.analyze(c)
    truth = load_truth("sdes_plain_rtp")
    media = verdict.media_legs(c.rtp_streams, None, report)
    assert set(media["state"]) == {"readable"}  # plain RTP, and SDES whose key crossed the wire in clear
    hows = " ".join(media["how"])
    assert "plain RTP" in hows and "SDES: its key crossed the wire in clear" in hows
    assert {int(s, 16) for s in media["ssrc"]} == {s["ssrc"] for s in truth["rtp"]}
    sig = verdict.signalling_legs(c.signalling)
    assert set(sig["state"]) == {"readable"} and (sig["descriptions"] > 0).any()
    html = verdict.verdict_card(c, report)._repr_html_()
    assert "rtcf-verdict" in html and "sdes-key-exposed" in html
    suspects = [h for h, _, sev in verdict.suspect_hosts(report) if sev == "critical"]
    assert suspects  # the hosts of the key that crossed in clear


def test_verdict_card_signalling_inside_tls_is_protected() -> None:
    c = cap("sdes_https")
    sig = verdict.signalling_legs(c.signalling)
    assert len(sig) and set(sig["state"]) == {"protected"} and all("decrypted here" in h for h in sig["how"])


def test_ladder_has_a_column_per_host_and_marks_the_rewritten_offer() -> None:
    c = cap("fingerprint_rewrite")
    report = widgets.analyze(c)
    ev = ladder.capture_events(c, report)
    assert set(ev["kind"]) >= {"signalling", "ice", "dtls", "media"}
    assert list(ev["ts"]) == sorted(ev["ts"])
    rewritten = next(
        f for f in report.findings if f.slug == "dtls-fingerprint-mismatch" and f.flow_id is None
    )
    marked = ev[ev["frames"].map(lambda fr: bool(set(fr) & set(rewritten.frames)))]
    assert len(marked) and set(marked["severity"]) == {"critical"}
    ax = Figure().add_subplot()
    hosts = ladder.columns(ev)
    assert ladder.draw_ladder(ev, ax, hosts=hosts) is ax
    assert {t.get_text() for t in ax.texts} >= set(hosts)
    assert any("dtls-fingerprint-mismatch" in t.get_text() for t in ax.texts)
    box = widgets.ladder_widget(c, report)
    assert isinstance(box, _static.LiveBox) and "data:image/png;base64," in box.static_html()


def _walk(widget: w.Widget) -> list[w.Widget]:
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += _walk(child)
    return out


def test_explorer_adds_an_uploaded_capture_with_its_keylog(tmp_path) -> None:
    from rtcforensics.widgets.explorer import LOAD_STEPS, load_steps, save_uploads

    src = sample_path("clean_call")
    files = [{"name": "../../evil/" + src.name, "content": memoryview(src.read_bytes())}]
    saved = save_uploads(files, tmp_path)
    assert saved == [tmp_path / src.name] and saved[0].read_bytes() == src.read_bytes()
    assert not list(tmp_path.glob(".*.part"))
    steps = list(load_steps(rtcforensics.load(saved[0], progress=False)))
    assert [d for d, _, _ in steps] == list(range(len(LOAD_STEPS) + 2)) and steps[-1][2] == "done"
    box = widgets.explorer(cap("ws_plaintext_private"), upload_dir=tmp_path / "up")
    up_cap, up_keylog = [x for x in _walk(box) if isinstance(x, w.FileUpload)][:2]
    add = next(x for x in _walk(box) if isinstance(x, w.Button) and x.description == "Add")
    keylog = src.with_suffix(".keylog")
    up_cap.value = (
        {
            "name": src.name,
            "type": "",
            "size": 0,
            "content": memoryview(src.read_bytes()),
            "last_modified": datetime.now(timezone.utc),
        },
    )
    up_keylog.value = (
        {
            "name": keylog.name,
            "type": "",
            "size": 0,
            "content": memoryview(keylog.read_bytes()),
            "last_modified": datetime.now(timezone.utc),
        },
    )
    add.click()
    pick = next(x for x in _walk(box) if isinstance(x, w.Dropdown))
    assert pick.value == src.name
    packets_out = [x for x in _walk(box) if isinstance(x, w.HTML)][-1]
    n = len(cap("clean_call").packets)
    assert f"of {n} packets" in packets_out.value
    # a bad path is one line naming it
    path_in = next(x for x in _walk(box) if isinstance(x, w.Text))
    up_cap.value = ()
    path_in.value = str(tmp_path / "missing.pcapng")
    add.click()
    status = [x for x in _walk(box) if isinstance(x, w.HTML) and "rtcf-missing" in x.value]
    assert status and "missing.pcapng: no such file" in status[0].value


def test_export_button_writes_the_indicator_files(tmp_path) -> None:
    c = cap("fingerprint_rewrite")
    box = widgets.export_widget(c, widgets.analyze(c), tmp_path / "iocs")
    go = next(x for x in _walk(box) if isinstance(x, w.Button))
    go.click()
    written = {p.name for p in (tmp_path / "iocs").iterdir()}
    assert {"indicators.csv", "indicators.json", "filters.txt", "manifest.json"} <= written
    certs = {
        d[k]
        for d in load_truth("fingerprint_rewrite")["dtls"]
        for k in ("client_cert_sha256", "server_cert_sha256")
    }
    assert all(h in (tmp_path / "iocs" / "indicators.csv").read_text() for h in certs)
    assert "indicators.csv" in box.static_html()
    go.click()  # the files exist now: said in one line, nothing overwritten
    assert "rtcf-missing" in [x for x in _walk(box) if isinstance(x, w.HTML)][-1].value
