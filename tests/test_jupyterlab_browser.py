"""Every notebook of notebooks/ in a real browser: ONE JupyterLab server (started headless on a free localhost
port, stopped at the end of the module) and ONE Debian Chromium driven by Playwright for all of them.

Each notebook is opened, run (Run All) and must finish with no error output, no stderr, no "Error displaying
widget"; the static copies every live view leaves for the saved notebook are hidden while the widgets render.
In the quickstart and the incident notebook a finding is picked and the topology, the ladder and the packet
grid are seen to redraw; each lab gets its answer (the one the truth file implies) and says it is correct; the
private-address lab is also given the NAT's public address, which the IP headers show, and refuses it with a
hint. JupyterLab then saves the notebook (without widget state, its default): the saved file has no error, a
static copy after every widget, no secret the truth files record, and its nbconvert export keeps the tables
and figures; the saved notebook reopened with its kernel shut down shows the verdict card, tables and figures.
Screenshots are kept as artifacts (``$RTCF_ARTIFACTS`` or ``<tmp>/rtcforensics-artifacts/``).

The notebooks run here are not run again by tests/test_notebooks.py: its checks of the saved notebooks are
applied to the files JupyterLab saved."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samples import ROOT, SAMPLES, load_truth, sample_path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("RTCF_ARTIFACTS") or Path(tempfile.gettempdir()) / "rtcforensics-artifacts")
RUN_TIMEOUT_S = 300
START_TIMEOUT_S = 90

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(d: Path) -> None:
    """User settings for the test server: no windowing (every cell in the DOM), no news or update checks."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for rel, value in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(value))


NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
# the capture each notebook runs on here (its own default otherwise): the quickstart on a capture with known
# secrets (SDES key, WHIP bearer token and cookie), so the oracle has something to look for
CAPTURES = {"01_quickstart": "sdes_plain_rtp"}


class Lab:
    """One JupyterLab server on a copy of notebooks/ (sample_captures/ linked beside it)."""

    def __init__(self, base: str, token: str, nbdir: Path, out: Path) -> None:
        self.base, self.token, self.nbdir, self.out = base, token, nbdir, out

    def url(self, path: str = "") -> str:
        return f"{self.base}/lab/tree/{path}?token={self.token}&reset"


def params(name: str, out: Path) -> dict[str, Any]:
    """The parameters injected after a notebook's ``parameters`` cell (as papermill does)."""
    from test_notebooks import lab_answer

    p: dict[str, Any] = {}
    if name in CAPTURES:
        p["CAPTURE"] = f"../sample_captures/{CAPTURES[name]}.pcapng"
    if name == "02_incident_response":
        p["EXPORT_DIR"] = str(out)
    if name.startswith("03_lab_") and name != "03_lab_private_address":  # that one is answered in the box
        p["ANSWER"] = lab_answer(name)[1]
    return p


def capture_of(name: str) -> str:
    import nbformat

    if name in CAPTURES:
        return CAPTURES[name]
    src = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells[0].source
    return src.split("../sample_captures/", 1)[1].split(".pcap", 1)[0]


def _inject(path: Path, values: dict[str, Any]) -> None:
    import nbformat

    if not values:
        return
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell(
        "# injected by the test\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
    )
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(1, cell)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    tmp_path = tmp_path_factory.mktemp("jupyterlab")
    nbdir = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (tmp_path / "sample_captures").symlink_to(SAMPLES)
    for name in NOTEBOOKS:
        _inject(nbdir / f"{name}.ipynb", params(name, tmp_path / "out"))
    settings = tmp_path / "settings"
    _settings(settings)
    port = _free_port()
    token = os.urandom(16).hex()
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        MPLBACKEND="Agg",
    )
    log = (tmp_path / "jupyterlab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={nbdir}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",
            "--ServerApp.terminals_enabled=False",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ],
        cwd=nbdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"jupyterlab exited ({proc.returncode}): {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("jupyterlab did not answer in time")
            time.sleep(0.5)
        yield Lab(base, token, nbdir, tmp_path / "out")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def page(jupyterlab: Lab) -> Iterator[Any]:
    """One Chromium, one JupyterLab page for every notebook (each opened and closed in turn)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 2200})
        finally:
            browser.close()


_CURRENT = "window.jupyterapp.shell.currentWidget"


def _open(page: Any, lab: Lab, path: str, *, kernel: bool = True) -> None:
    """Open ``path`` alone in the workspace; with ``kernel``, wait until its kernel is idle, else shut it
    down."""
    page.goto(lab.url(path), wait_until="domcontentloaded", timeout=90_000)
    page.wait_for_function(
        f"(path) => window.jupyterapp && {_CURRENT} && {_CURRENT}.context && {_CURRENT}.context.path === path",
        arg=path,
        timeout=90_000,
    )
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    if kernel:
        page.wait_for_function(
            f"() => {_CURRENT}.sessionContext.session && {_CURRENT}.sessionContext.session.kernel"
            f" && {_CURRENT}.sessionContext.session.kernel.status === 'idle'",
            timeout=120_000,
        )
    else:
        page.evaluate(
            f"async () => {{ await {_CURRENT}.sessionContext.ready; await {_CURRENT}.sessionContext.shutdown(); }}"
        )


def _close(page: Any, *, save: bool) -> None:
    page.evaluate(
        f"async (save) => {{ const w = {_CURRENT}; if (save) await w.context.save();"
        " await w.sessionContext.shutdown(); w.dispose(); }",
        save,
    )


def _run_all(page: Any, name: str) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not _all_cells_ran(page):
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / f"jupyterlab_{name}_timeout.png"))
            pytest.fail(f"{name} did not finish running in time")
        page.wait_for_timeout(500)


def _all_cells_ran(page: Any) -> bool:
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    return bool(prompts) and all(
        p.strip().startswith("[") and p.strip()[1:-2].strip().isdigit() for p in prompts
    )


def _redrawn(page: Any, img: Any, before: str | None) -> None:
    page.wait_for_function(
        "([el, src]) => el.getAttribute('src') !== src", arg=[img.element_handle(), before], timeout=60_000
    )


def _pick_in(page: Any, view: str) -> None:
    """Pick the first finding in ``view``'s picker and see its image redrawn."""
    img = page.locator(f"{view} img").first
    img.scroll_into_view_if_needed()
    before = img.get_attribute("src")
    page.locator(f"{view} select").first.select_option(index=1)
    _redrawn(page, img, before)


def _lab_box(page: Any, answer: str) -> str:
    box = page.locator(".rtcf-lab-box")
    box.locator("input").first.fill(answer)
    before = box.inner_text()
    box.locator("button", has_text="Check").click()
    page.wait_for_function(
        "([el, t]) => el.innerText !== t && el.innerText.includes('✔') || el.innerText.includes('✘')",
        arg=[box.element_handle(), before],
        timeout=60_000,
    )
    page.wait_for_timeout(300)
    return str(box.locator(".rtcf-lab").inner_text())


def _in_the_browser(page: Any, name: str, lab: Lab) -> None:
    """What a person sees once the notebook ran: no error, the static copies hidden, the views linked."""
    body = page.locator(".jp-Notebook").inner_text()
    assert "Error displaying widget" not in body and "Traceback" not in body, name
    for mime in ("application/vnd.jupyter.stderr", "application/vnd.jupyter.error"):
        assert page.locator(f".jp-OutputArea-output[data-mime-type='{mime}']").count() == 0, (name, mime)
    displays = page.locator(".rtcf-static").evaluate_all("els => els.map(e => getComputedStyle(e).display)")
    assert set(displays) <= {"none"}, name  # every static copy hidden while its widget renders
    if name == "01_quickstart":
        page.wait_for_selector(".rtcf-topology img", timeout=60_000)
        assert "packets" in page.locator(".rtcf-summary").inner_text()
        assert "Verdict" in page.locator(".rtcf-verdict").inner_text()
        assert len(displays) >= 4
        img = page.locator(".rtcf-topology img").first
        img.scroll_into_view_if_needed()
        page.wait_for_function("(el) => el.complete && el.naturalWidth >= 300", arg=img.element_handle())
        _pick_in(page, ".rtcf-topology")
        assert "flows" in page.locator(".rtcf-topology").inner_text()
        _pick_in(page, ".rtcf-ladder")
        page.locator(".rtcf-findings").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart.png"))
        img.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart_topology.png"))
    elif name == "02_incident_response":
        assert "Verdict" in page.locator(".rtcf-verdict").first.inner_text()
        bench = page.locator(".rtcf-workbench")
        bench.scroll_into_view_if_needed()
        imgs = bench.locator("img")
        before = [imgs.nth(i).get_attribute("src") for i in range(3)]  # topology, ladder, timeline
        grid = bench.locator(".widget-html-content").nth(1)
        grid_before = grid.evaluate("el => el.textContent")
        bench.locator("select").first.select_option(index=1)
        for i in range(3):
            _redrawn(page, imgs.nth(i), before[i])
        page.wait_for_function(
            "([el, t]) => el.textContent !== t && el.textContent.includes('cited by the finding')",
            arg=[grid.element_handle(), grid_before],
            timeout=60_000,
        )
        page.screenshot(path=str(ARTIFACTS / "jupyterlab_incident_workbench.png"))
        export = page.locator(".rtcf-export")
        export.scroll_into_view_if_needed()
        export.locator("button", has_text="Export indicators").click()
        page.wait_for_function(
            "(el) => el.innerText.includes('indicator(s) written')",
            arg=export.element_handle(),
            timeout=60_000,
        )
        assert "stix" in export.inner_text().lower()
    elif name == "03_lab_private_address":
        truth = load_truth(capture_of(name))["nat"]["hosts"][0]
        wrong = _lab_box(page, truth["nat_public_address"])
        assert "✘" in wrong and "IP headers" in wrong and "Hint" in wrong, wrong
        right = _lab_box(page, truth["private_address"])
        assert "✔ correct" in right and "Why it matters" in right, right
    elif name.startswith("03_lab_"):
        verdict = page.locator(".rtcf-lab").last.inner_text()
        assert "✔ correct" in verdict, (name, verdict)


def _saved_file_checks(name: str, lab: Lab) -> None:
    """The checks of tests/test_notebooks.py on the notebook JupyterLab saved."""
    import nbformat
    from test_notebooks import check_saved_notebook, errors, outputs_text

    nb = nbformat.read(lab.nbdir / f"{name}.ipynb", as_version=4)
    assert errors(nb) == [], name
    assert "Traceback" not in outputs_text(nb)
    captures = [capture_of(name)] + (["turn_relay_longterm"] if name == "03_lab_open_relay" else [])
    check_saved_notebook(nb, name, lab.nbdir / f"{name}.saved.ipynb", captures)
    if name.startswith("03_lab_"):
        assert "✔ correct" in outputs_text(nb)
    if name == "02_incident_response":
        from test_notebooks import check_indicators

        check_indicators(lab.out / f"{capture_of(name)}.indicators.csv", capture_of(name))


def _reopened(page: Any, name: str, lab: Lab) -> None:
    """The saved notebook (no widget state) opened again, its kernel shut down: the static copies show."""
    _open(page, lab, f"{name}.saved.ipynb", kernel=False)
    if name in ("01_quickstart", "02_incident_response"):
        page.wait_for_selector(".rtcf-static", state="attached", timeout=60_000)
        assert page.locator(".rtcf-verdict").first.is_visible()
    statics = page.locator(".rtcf-static")
    hidden = [
        statics.nth(i).evaluate("e => e.outerHTML.slice(0, 300)")
        for i in range(statics.count())
        if not statics.nth(i).is_visible()
    ]
    assert hidden == [], name  # no widget to hide them
    if name.startswith("03_lab_"):
        assert page.locator(".rtcf-question").first.is_visible()
    assert page.locator(".jp-OutputArea-output table").count() >= 1, name
    imgs = page.locator(".rtcf-static img")
    assert imgs.count() >= {"01_quickstart": 2, "02_incident_response": 3}.get(name, 0), name
    for i in range(imgs.count()):
        imgs.nth(i).scroll_into_view_if_needed()
        page.wait_for_function(
            "(el) => el.complete && el.naturalWidth > 0", arg=imgs.nth(i).element_handle(), timeout=30_000
        )
    page.screenshot(path=str(ARTIFACTS / f"jupyterlab_{name}_saved.png"))
    _close(page, save=False)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_saves_and_reopens_in_jupyterlab(page: Any, jupyterlab: Lab, name: str) -> None:
    sample_path(capture_of(name))
    _open(page, jupyterlab, f"{name}.ipynb")
    _run_all(page, name)
    try:
        _in_the_browser(page, name, jupyterlab)
        page.screenshot(path=str(ARTIFACTS / f"jupyterlab_{name}.png"))
    finally:
        _close(page, save=True)
    assert (ARTIFACTS / f"jupyterlab_{name}.png").stat().st_size > 10_000
    _saved_file_checks(name, jupyterlab)
    _reopened(page, name, jupyterlab)
