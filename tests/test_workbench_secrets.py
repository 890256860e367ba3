"""No known secret reaches anything a person looks at in the workbench (rtcforensics/widgets/*), without a kernel.

The captures whose truth files record the secrets the lab put on the wire (SDES inline keys, WHIP bearer tokens
and session cookies, TURN passwords and static-auth secrets, E2EE keys) are loaded, every view is built, and
every text it would show — HTML values, picker labels, static copies, plot texts and tick labels, the evidence
of each finding, the dissection of every frame a finding cites — is searched for each secret. With
``show_secrets=True`` the findings view shows the SDES key: the opt-in works and the oracle can see a key."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import ipywidgets as w
import pytest
from matplotlib.figure import Figure
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics import widgets
from rtcforensics.widgets import _avail, _static, board, labs, ladder, select, topology
from rtcforensics.widgets import findings as wfind

SECRET_CAPTURES = [
    "sdes_plain_rtp",
    "sdes_https",
    "turn_internal_peer_allowed",
    "turn_relay_longterm",
    "browsers_e2ee",
]


def known_secrets(name: str) -> set[str]:
    """Every string of at least 8 characters under the truth file's ``secrets`` (not the descriptive fields:
    the SDES suite name, which description, the streams a key protects)."""
    out: set[str] = set()

    def walk(v: Any, key: str = "") -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k not in ("suite", "sdp", "keys_stream"):
                    walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and len(v) >= 8:
            out.add(v)

    secrets = load_truth(name).get("secrets", {})
    walk(secrets)
    return out | sdes_key_material(secrets)


def sdes_key_material(secrets: dict[str, Any]) -> set[str]:
    """The SDES keys' other spellings a dissection shows: the master key and the master salt in hex (what
    Wireshark's SDP dissector decodes from ``inline:``) and the hex of the base64 text ("Key and Salt")."""
    import base64

    out: set[str] = set()
    for k in secrets.get("sdes", []) if isinstance(secrets, dict) else []:
        b64 = str(k.get("inline", "")).split("|")[0]
        if not b64:
            continue
        raw = base64.b64decode(b64 + "=" * (-len(b64) % 4))
        out |= {raw[:16].hex(), raw[16:].hex(), b64.encode().hex()[:32]}
    return out


@cache
def _cap(name: str) -> rtcforensics.Capture:
    keylog = sample_path(name).with_suffix(".keylog")
    return rtcforensics.load(sample_path(name), keylog=keylog if keylog.is_file() else None, progress=False)


def walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def shown(widget: Any) -> str:
    """Everything a widget tree shows as text: HTML values, labels and options of pickers, its static copy."""
    parts = []
    for x in walk(widget):
        if isinstance(x, (w.HTML, w.Text, w.Label)):
            parts.append(str(x.value))
        if isinstance(x, (w.Dropdown, w.Select, w.SelectMultiple)):
            parts += [str(o[0] if isinstance(o, tuple) else o) for o in x.options]
    parts.append(_static.static_html(widget))
    if isinstance(widget, _static.LiveBox):
        parts.append(widget.static_html())
    return "\n".join(parts)


def figure_text(fig: Figure) -> str:
    return "\n".join(
        t.get_text()
        for ax in fig.axes
        for t in [*ax.texts, *ax.get_xticklabels(), *ax.get_yticklabels(), ax.title]
    )


def leaks(text: str, secrets: set[str]) -> list[str]:
    return sorted(s for s in secrets if s in text)


@pytest.mark.parametrize("name", SECRET_CAPTURES)
def test_no_known_secret_in_any_view(name: str) -> None:
    secrets = known_secrets(name)
    assert secrets, f"{name}: the truth file records no secret"
    c = _cap(name)
    report = widgets.analyze(c)
    texts = [
        widgets.verdict_card(c, report)._repr_html_(),
        widgets.summary(c)._repr_html_(),
        shown(widgets.findings_widget(c, report)),
        shown(widgets.topology_widget(c, report)),
        shown(widgets.ladder_widget(c, report)),
        shown(widgets.timeline_widget(c, report)),
        shown(widgets.streams_widget(c)),
        shown(widgets.explorer(c)),
        shown(widgets.workbench(c, report)),
        shown(widgets.rtp_views(c, report)),
        shown(widgets.lab_widget(c, "plaintext_ssrc", answer="0x1")),
    ]
    for frame in ("signalling", "sdp", "candidates", "stun", "rtp_streams", "flows", "sessions"):
        texts.append(widgets.table(widgets.frame(c, frame), max_rows=1000)._repr_html_())
        texts.append(widgets.grid(widgets.frame(c, frame))._repr_html_())
    fd = select.findings_frame(report)
    texts += [wfind.detail_html(f) for _, f in fd.iterrows()]
    texts.append(widgets.table(labs.readable_streams(report, widgets.frame(c, "rtp_streams")))._repr_html_())
    for q in labs.QUESTIONS:
        texts.append(labs.check_answer(c, q, None)._repr_html_())
    # plot texts: topology labels and title, ladder labels, with every finding highlighted in turn
    graph, _ = _avail.graph(c)
    events = ladder.capture_events(c, report)
    for _, f in list(fd.iterrows())[:6]:
        fig = Figure()
        topology.draw(graph, fig.add_subplot(), highlight=f, title=select.finding_label(f))
        texts.append(figure_text(fig))
        fig = Figure()
        ladder.draw_ladder(events, fig.add_subplot(), highlight=select.finding_frames(f))
        texts.append(figure_text(fig))
    assert leaks("\n".join(texts), secrets) == []


@pytest.mark.parametrize("name", ["sdes_plain_rtp", "sdes_https"])
def test_dissection_of_cited_frames_is_redacted(name: str) -> None:
    """The frames that carried the WHIP offer (bearer token, session cookie, a=crypto key) dissected in full:
    nothing of them survives the redaction, unless asked for."""
    secrets = known_secrets(name)
    c = _cap(name)
    report = widgets.analyze(c)
    cited = sorted(
        {
            n
            for f in report.findings
            if f.slug in ("sdes-key-exposed", "signalling-secret-exposed")
            for n in f.frames
        }
    )
    assert cited
    texts = [wfind.dissection_text(c, n) for n in cited[:4]]
    if all("not available" in t or "could not be dissected" in t for t in texts):
        pytest.skip(texts[0])
    text = "\n".join(texts)
    assert leaks(text, secrets) == []
    # the layered view (widgets.board) shows the same frames through the same redactor
    layers = "\n".join(t for n in cited[:4] for _, t in board.dissection_layers(c, n))
    assert leaks(layers, secrets) == []
    # what the tree showed in place of the cookie's value and the SDES key material
    assert "Cookie pair: whip_session=<redacted>" in text
    assert "Master Key: <redacted>" in text and "Master salt: <redacted>" in text
    raw = "\n".join(wfind.dissection_text(c, n, show_secrets=True) for n in cited[:4])
    assert leaks(raw, secrets), "the oracle sees the secrets in the unredacted dissection"


def test_show_secrets_opts_in() -> None:
    c = _cap("sdes_plain_rtp")
    key = next(k["inline"] for k in load_truth("sdes_plain_rtp")["secrets"]["sdes"] if k["sdp"] == "offer")
    report = widgets.analyze(c)
    f = next(r for _, r in select.findings_frame(report).iterrows() if r["slug"] == "sdes-key-exposed")
    assert key not in wfind.detail_html(f)
    assert key in wfind.detail_html(f, show_secrets=True)


def test_dissected_sdp_attribute_value_of_ice_pwd_is_redacted() -> None:
    """sip_ws carries its SDP in SIP over a plain WebSocket, and Wireshark dissects it attribute by attribute:
    the ICE password stands whole on ``Media Attribute (a): ice-pwd:X`` and alone on a ``Media Attribute
    Value: X`` line (grouped apart from its field name). The password recognised on the first is redacted on
    the second too; it is the password the sdp frame hashed."""
    from rtcforensics.tables.sdp import secret_hash

    c = _cap("sip_ws")
    sdp = widgets.frame(c, "sdp")
    row = sdp[sdp["ice_pwd_sha256"].notna()].iloc[0]
    raw = [
        x.strip()
        for _, t in board.dissection_layers(c, int(row["frame"]), show_secrets=True)
        for x in t.splitlines()
    ]
    pwd = next(x for x in raw if x.startswith("Media Attribute (a): ice-pwd:")).split("ice-pwd:", 1)[1]
    assert secret_hash(pwd) == row["ice_pwd_sha256"]
    assert f"Media Attribute Value: {pwd}" in raw
    red = [x.strip() for _, t in board.dissection_layers(c, int(row["frame"])) for x in t.splitlines()]
    assert pwd not in "\n".join(red)
    assert "Media Attribute (a): ice-pwd:<redacted>" in red and "Media Attribute Value: <redacted>" in red
    assert "Media Attribute Value: 1 urn:ietf:params:rtp-hdrext:sdes:mid" in red  # other values stay
