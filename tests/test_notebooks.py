"""Every notebook runs top to bottom (nbclient, a real kernel) on the sample captures.

Each run works on a temporary copy of notebooks/ (sample_captures/ linked beside it, as in the repository),
with parameters injected after the tagged ``parameters`` cell the way papermill does. The quickstart must run
on a spread of sample captures; the injection lab's drill-down must put the attacker's MAC under the caller's
address. Executed notebooks are saved, reopened without their widget state (as JupyterLab does when the state
was not saved) and exported with nbconvert: the verdict card, the tables and the figures are still there, and
no secret the truth files record is.

Every notebook is also run, saved and reopened in JupyterLab (tests/test_jupyterlab_browser.py), which applies
this module's checks (:func:`check_saved_notebook`, :func:`check_indicators`, :func:`lab_answer`) to the files
JupyterLab saved; those runs are not repeated here."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from samples import ROOT, SAMPLES, load_truth, sample_names, sample_path

NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 300
NB_NAMES = [
    "01_quickstart",
    "02_incident_response",
    "03_lab_private_address",
    "03_lab_mitm",
    "03_lab_open_relay",
    "03_lab_encryption",
    "03_lab_injection",
]


def _workdir(tmp_path: Path) -> Path:
    nbdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nbdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (tmp_path / "sample_captures").symlink_to(SAMPLES)
    return nbdir


def run(tmp_path: Path, name: str, **params: Any) -> nbformat.NotebookNode:
    nbdir = _workdir(tmp_path)
    path = nbdir / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert "parameters" in nb.cells[0].metadata.get("tags", []), (
        f"{name}: first cell is not tagged parameters"
    )
    if params:
        src = "# injected by the test\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(1, cell)
    NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(nbdir)}}
    ).execute()
    return nb


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            for v in o.get("data", {}).values():
                parts.append(v if isinstance(v, str) else json.dumps(v))
    return "\n".join(parts)


def errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def widget_views(nb: nbformat.NotebookNode) -> int:
    return sum(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for c in nb.cells
        for o in c.get("outputs", [])
    )


def test_notebooks_are_committed_clean() -> None:
    for name in NB_NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert "parameters" in nb.cells[0].metadata.get("tags", []), name
        assert re.search(
            r'^CAPTURE = "\.\./sample_captures/\w+\.pcapng"$', nb.cells[0].source, re.MULTILINE
        ), name
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, f"{name}: outputs not cleared"


# The quickstart on a spread of deployments (plain and relayed calls, SDES, E2EE, SIP gateway, SFU, TURN-TLS,
# hostile strings): one kernel each keeps the suite within its time budget. RTCF_ALL_SAMPLES=1 runs every sample.
# The SDES call (sdes_plain_rtp) is the quickstart's capture in JupyterLab (tests/test_jupyterlab_browser.py).
QUICKSTART_SAMPLES = (
    "fingerprint_rewrite",
    "turn_relay_longterm",
    "browsers_e2ee",
    "sip_gateway",
    "sfu_conference",
    "turn_tls_relay",
    "hostile_strings",
)


def _quickstart_samples() -> list[str]:
    names = sample_names() or ["clean_call"]
    if os.environ.get("RTCF_ALL_SAMPLES"):
        return names
    return [n for n in names if n in QUICKSTART_SAMPLES] or names[:1]


@pytest.mark.slow
@pytest.mark.parametrize("capture", _quickstart_samples())
def test_quickstart_runs_on_every_sample_capture(tmp_path: Path, capture: str) -> None:
    sample_path(capture)
    nb = run(tmp_path, "01_quickstart", CAPTURE=f"../sample_captures/{capture}.pcapng")
    assert errors(nb) == []
    text = outputs_text(nb)
    assert "Traceback" not in text
    # findings, ladder, topology and explorer are widgets, each followed by its static copy
    assert widget_views(nb) == 4
    assert f"{capture}.pcapng" in text and "rtcf-verdict" in text


def check_indicators(csv: Path, capture: str) -> None:
    """The indicators file the incident notebook wrote for ``capture``: every certificate, the rewritten
    fingerprint as an indicator of its own, every endpoint of the truth's findings."""
    truth = load_truth(capture)
    assert csv.is_file()
    body = csv.read_text()
    certs = {d[k] for d in truth["dtls"] for k in ("client_cert_sha256", "server_cert_sha256")}
    assert all(c in body for c in certs)
    # the fingerprint the relay substituted is an indicator of its own
    rewritten = {s["fingerprint"]["sha-256"] for s in truth["sdp"]} - certs
    assert rewritten and all(f"sdp_fingerprint_sha256,{h}" in body for h in rewritten)
    for f in truth["findings"]:
        for e in f["endpoints"]:
            assert e in body or e.rsplit(":", 1)[0] in body


def _lab_verdict(nb: nbformat.NotebookNode) -> str:
    last = nb.cells[-1]
    return "\n".join(o.get("data", {}).get("text/html", "") for o in last.get("outputs", []))


def lab_answer(name: str) -> tuple[str, Any]:
    """(capture, the answer its truth file implies) of a lab notebook."""
    if name == "03_lab_private_address":
        return "nat_call", load_truth("nat_call")["nat"]["hosts"][0]["private_address"]
    if name == "03_lab_mitm":
        t = load_truth("fingerprint_rewrite")
        certs = {d[k] for d in t["dtls"] for k in ("client_cert_sha256", "server_cert_sha256")}
        rewritten = sorted({s["fingerprint"]["sha-256"] for s in t["sdp"]} - certs)
        return "fingerprint_rewrite", rewritten[0]
    if name == "03_lab_open_relay":
        ip, port = load_truth("turn_open_relay")["turn"]["relayed_address"]
        return "turn_open_relay", f"{ip}:{port}"
    if name == "03_lab_injection":
        return "media_injection", load_truth("media_injection")["attack"]["attacker"]
    t = load_truth("sdes_plain_rtp")
    return "sdes_plain_rtp", next(s["ssrc"] for s in t["rtp"] if not s["encrypted"])


@pytest.mark.slow
def test_injection_lab_shows_who_sent_the_forged_packets(tmp_path: Path) -> None:
    """On media_injection the lab's tables show the unsolicited flow, the stream whose forged packets fail
    SRTP authentication, and the drill-down puts the attacker's MAC under the caller's IP address."""
    sample_path("media_injection")
    pytest.importorskip("pylibsrtp")
    a = load_truth("media_injection")["attack"]
    nb = run(tmp_path, "03_lab_injection")
    assert errors(nb) == []
    assert "Traceback" not in outputs_text(nb)
    tables = outputs_text(nb)
    assert a["probe"]["src"] in tables and a["spoofed_source"] in tables
    assert "partly authenticated" in tables and "no ICE consent" in tables
    drill = nb.cells[-3]  # the drill-down table, before the answer's markdown and cell
    assert "cap.frame(" in drill.source
    views = [o["data"]["text/html"] for o in drill.outputs if "text/html" in o.get("data", {})]
    assert len(views) == 1
    html = views[0]
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.DOTALL)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r, re.DOTALL) for r in rows]
    cells = [[c.strip() for c in r] for r in cells if r]
    caller_ip = a["spoofed_source"].rsplit(":", 1)[0]
    forged = next(r for r in cells if "failing SRTP authentication" in r[0])
    assert forged[2:] == [caller_ip, a["attacker_mac"]]
    honest = next(r for r in cells if "Binding request" in r[0])
    assert honest[2:] == [caller_ip, a["macs"]["alice"]]
    probe = next(r for r in cells if "no ICE consent" in r[0])
    assert probe[2:] == [a["attacker"], a["attacker_mac"]]
    verdict = _lab_verdict(nb)  # no ANSWER: the question and the answer box, no verdict yet
    assert "Which host injected media" in verdict and "✔" not in verdict and "✘" not in verdict


# -- saved, reopened without a kernel, exported: the same tables and figures, no secret ---------------------
def known_secrets(name: str) -> set[str]:
    from test_workbench_secrets import known_secrets as ks

    return ks(name)


def saved_and_reopened(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """``nb`` written to ``path`` and read back without its widget state (what JupyterLab keeps when widget
    state is not saved, and what nbconvert sees then)."""
    nbformat.write(nb, path)
    back = nbformat.read(path, as_version=4)
    back.metadata.pop("widgets", None)
    return back


def static_copies(nb: nbformat.NotebookNode) -> list[str]:
    """Per widget output, the static copy that follows it in the same cell (empty string when missing)."""
    out = []
    for c in nb.cells:
        outs = c.get("outputs", [])
        for i, o in enumerate(outs):
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                nxt = outs[i + 1].get("data", {}).get("text/html", "") if i + 1 < len(outs) else ""
                out.append(nxt if "rtcf-static" in nxt else "")
    return out


def exported_html(nb: nbformat.NotebookNode) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


# The other notebooks, and these two on their browser captures, are run, saved and checked this way in
# JupyterLab (tests/test_jupyterlab_browser.py): here only the runs the browser does not make.
SAVED_CASES = [
    ("01_quickstart", "turn_internal_peer_allowed"),
    ("02_incident_response", "sdes_https"),
]


def check_saved_notebook(nb: nbformat.NotebookNode, name: str, saved: Path, captures: list[str]) -> None:
    """``nb`` saved to ``saved`` and reopened without widget state: a static copy after every widget, the
    nbconvert export keeps them with the tables and figures, and no secret of ``captures``' truth files is in
    the saved file or the export."""
    back = saved_and_reopened(nb, saved)
    copies = static_copies(back)
    assert copies and all(copies), f"{name}: a widget output without its static copy"
    html = exported_html(back)
    # every widget's static copy is in the export (no widget state: nbconvert falls back to it)
    assert len(re.findall(r"class=[\"']rtcf-static[\"']", html)) >= len(copies)
    assert "<table" in html
    figures = {"01_quickstart": 2, "02_incident_response": 3}.get(name, 0)  # ladder, topology (, timeline)
    assert html.count("data:image/png;base64,") >= figures
    if name in ("01_quickstart", "02_incident_response"):
        assert "rtcf-verdict" in html
    if name.startswith("03_lab_"):
        assert "rtcf-question" in html
    # no secret anywhere in the saved file (outputs and widget state) nor in the export
    secrets = {
        s
        for c in captures
        if (ROOT / "sample_captures" / f"{c}.truth.json").is_file()
        for s in known_secrets(c)
    }
    text = saved.read_text()
    assert sorted(s for s in secrets if s in text or s in html) == []


@pytest.mark.slow
@pytest.mark.parametrize("name,capture", SAVED_CASES)
def test_saved_notebook_keeps_tables_and_figures_and_no_secret(
    tmp_path: Path, name: str, capture: str
) -> None:
    sample_path(capture)
    params: dict[str, Any] = {"CAPTURE": f"../sample_captures/{capture}.pcapng"}
    if name == "02_incident_response":
        params["EXPORT_DIR"] = str(tmp_path / "out")
    nb = run(tmp_path, name, **params)
    assert errors(nb) == []
    check_saved_notebook(nb, name, tmp_path / f"{name}.saved.ipynb", [capture])
