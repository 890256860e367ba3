"""Every notebook runs top to bottom (nbclient, a real kernel) on the sample captures.

Each run works on a temporary copy of notebooks/ (sample_captures/ linked beside it, as in the repository),
with parameters injected after the tagged ``parameters`` cell the way papermill does. The labs get the
answer the truth file implies and must say it is correct; the incident-response notebook must write the
indicators file; the quickstart must run on every sample capture."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from samples import ROOT, SAMPLES, load_truth, sample_names, sample_path
from nbclient import NotebookClient

NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 300
NB_NAMES = ["01_quickstart", "02_incident_response", "03_lab_private_address", "03_lab_mitm",
            "03_lab_open_relay", "03_lab_encryption", "03_lab_injection"]


def _workdir(tmp_path: Path) -> Path:
    nbdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nbdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (tmp_path / "sample_captures").symlink_to(SAMPLES)
    return nbdir


def run(tmp_path: Path, name: str, **params: Any) -> nbformat.NotebookNode:
    nbdir = _workdir(tmp_path)
    path = nbdir / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert "parameters" in nb.cells[0].metadata.get("tags", []), f"{name}: first cell is not tagged parameters"
    if params:
        src = "# injected by the test\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(1, cell)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(nbdir)}}).execute()
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
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def widget_views(nb: nbformat.NotebookNode) -> int:
    return sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))


def test_notebooks_are_committed_clean() -> None:
    for name in NB_NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert "parameters" in nb.cells[0].metadata.get("tags", []), name
        assert re.search(r'^CAPTURE = "\.\./sample_captures/\w+\.pcapng"$', nb.cells[0].source, re.MULTILINE), name
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, f"{name}: outputs not cleared"


@pytest.mark.slow
@pytest.mark.parametrize("capture", sample_names() or ["clean_call"])
def test_quickstart_runs_on_every_sample_capture(tmp_path: Path, capture: str) -> None:
    sample_path(capture)
    nb = run(tmp_path, "01_quickstart", CAPTURE=f"../sample_captures/{capture}.pcapng")
    assert errors(nb) == []
    text = outputs_text(nb)
    assert "Traceback" not in text
    # summary, findings, topology and explorer are widgets
    assert widget_views(nb) == 4
    assert f"{capture}.pcapng" in text


@pytest.mark.slow
def test_incident_response_writes_indicators(tmp_path: Path) -> None:
    sample_path("fingerprint_rewrite")
    truth = load_truth("fingerprint_rewrite")
    nb = run(tmp_path, "02_incident_response", EXPORT_DIR=str(tmp_path / "out"))
    assert errors(nb) == []
    csv = tmp_path / "out" / "fingerprint_rewrite.indicators.csv"
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


def _lab_answer(name: str) -> tuple[str, Any]:
    if name == "03_lab_private_address":
        t = load_truth("ws_plaintext_private")
        f = next(x for x in t["findings"] if x["slug"] == "ice-private-ip-exposed")
        return "ws_plaintext_private", f["endpoints"][0]
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
@pytest.mark.parametrize("name", [n for n in NB_NAMES if n.startswith("03_lab_")])
def test_lab_accepts_the_answer_the_capture_shows(tmp_path: Path, name: str) -> None:
    capture, answer = _lab_answer(name)
    sample_path(capture)
    nb = run(tmp_path, name, ANSWER=answer)
    assert errors(nb) == []
    verdict = _lab_verdict(nb)
    assert "✔ correct" in verdict, verdict


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
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    tables = "\n".join(str(m.get("state", {}).get("value", "")) for m in state.values())
    assert a["probe"]["src"] in tables and a["spoofed_source"] in tables
    assert "partly authenticated" in tables and "no ICE consent" in tables
    drill = nb.cells[-3]  # the drill-down table, before the answer's markdown and cell
    assert "cap.frame(" in drill.source
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in drill.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1
    html = state[views[0]]["state"]["value"]
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
    assert "no answer yet" in _lab_verdict(nb)
