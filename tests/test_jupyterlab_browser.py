"""The quickstart notebook in a real browser: JupyterLab started headless on a free localhost port, Debian's
Chromium driven by Playwright runs every cell, and the widgets must render — no "Error displaying widget",
the topology image present and decoded, the findings widget shown, and picking a finding redraws the
topology with its flows highlighted; the verdict card and the ladder are there, and the static copies every
view leaves for the saved notebook are hidden while the widgets render. A screenshot is kept as an artifact
(``$RTCF_ARTIFACTS`` or ``<tmp>/rtcforensics-artifacts/``)."""

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

import pytest
from samples import ROOT, SAMPLES, sample_path

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
RUN_TIMEOUT_S = 240
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


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    sample_path("ws_plaintext_private")
    nbdir = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (tmp_path / "sample_captures").symlink_to(SAMPLES)
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
        yield f"{base}/lab/tree/01_quickstart.ipynb?token={token}&reset", nbdir
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


def _run_all(page) -> None:
    # the app is exposed (--LabApp.expose_app_in_browser): wait for the notebook's kernel, then Run All
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=90_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _all_cells_ran(page) -> bool:
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    return bool(prompts) and all(
        p.strip().startswith("[") and p.strip()[1:-2].strip().isdigit() for p in prompts
    )


def test_quickstart_renders_widgets_in_jupyterlab(jupyterlab: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, _ = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "jupyterlab_quickstart.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            _run_all(page)
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not _all_cells_ran(page):
                if time.monotonic() > deadline:
                    page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart_timeout.png"))
                    pytest.fail("the quickstart did not finish running in time")
                page.wait_for_timeout(1000)
            page.wait_for_selector(".rtcf-topology img", timeout=60_000)
            page.wait_for_selector(".rtcf-findings", timeout=60_000)
            body = page.locator(".jp-Notebook").inner_text()
            assert "Error displaying widget" not in body
            assert (
                page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count()
                == 0
            )
            assert "Traceback" not in body
            img = page.locator(".rtcf-topology img").first
            img.scroll_into_view_if_needed()
            page.wait_for_function(
                "(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=30_000
            )
            assert img.evaluate("el => el.naturalWidth") >= 300
            summary = page.locator(".rtcf-summary").inner_text()
            assert "packets" in summary
            assert "Verdict" in page.locator(".rtcf-verdict").inner_text()
            # every live view left a static copy for the saved notebook, hidden while the widget renders
            displays = page.locator(".rtcf-static").evaluate_all(
                "els => els.map(e => getComputedStyle(e).display)"
            )
            assert len(displays) >= 4 and set(displays) == {"none"}
            assert page.locator(".rtcf-ladder img").count() == 1
            # picking a finding goes through the kernel and comes back as a new drawing (its flows highlighted)
            before = img.get_attribute("src")
            page.locator(".rtcf-topology select").first.select_option(index=1)
            page.wait_for_function(
                "([el, src]) => el.getAttribute('src') !== src",
                arg=[img.element_handle(), before],
                timeout=30_000,
            )
            assert "flows" in page.locator(".rtcf-topology").inner_text()
            # the screenshot shows the findings table and the topology below it
            page.locator(".rtcf-findings").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
            img.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart_topology.png"))
        finally:
            browser.close()
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_saved_quickstart_reopened_without_kernel_shows_tables_and_figures(
    jupyterlab: tuple[str, Path],
) -> None:
    """The quickstart executed (nbclient), saved without its widget state and opened in JupyterLab without
    running anything: the static copies show the verdict card, the tables and the figures."""
    import nbformat
    from nbclient import NotebookClient
    from playwright.sync_api import sync_playwright

    url, nbdir = jupyterlab
    nb = nbformat.read(nbdir / "01_quickstart.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(nbdir)}}
    ).execute()
    nb.metadata.pop("widgets", None)  # as JupyterLab saves it by default: no widget state
    nbformat.write(nb, nbdir / "saved_quickstart.ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.goto(
                url.replace("01_quickstart.ipynb", "saved_quickstart.ipynb"),
                wait_until="domcontentloaded",
                timeout=60_000,
            )
            page.wait_for_selector(".rtcf-static", timeout=90_000)
            assert page.locator(".rtcf-verdict").first.is_visible()
            statics = page.locator(".rtcf-static")
            assert statics.count() >= 4
            assert all(
                statics.nth(i).is_visible() for i in range(statics.count())
            )  # no live widget to hide them
            assert page.locator(".rtcf-static table").count() >= 2
            imgs = page.locator(".rtcf-static img")
            assert imgs.count() >= 2  # the ladder and the topology
            for i in range(imgs.count()):
                imgs.nth(i).scroll_into_view_if_needed()
                page.wait_for_function(
                    "(el) => el.complete && el.naturalWidth > 0",
                    arg=imgs.nth(i).element_handle(),
                    timeout=30_000,
                )
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_saved_quickstart.png"), full_page=True)
        finally:
            browser.close()
