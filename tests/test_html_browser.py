"""The HTML report opened in a real browser (Debian's Chromium, headless): it renders, shows the findings
and the topology figure, logs no console error, requests nothing from the network, and the hostile
sample's script/img injections stay text."""

from __future__ import annotations

import shutil

import pytest
from samples import load_truth, sample_names, sample_path

import rtcforensics
from rtcforensics.report import html, jsonout

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def _render(tmp_path, name):
    cap = rtcforensics.load(sample_path(name))
    doc = jsonout.document(rtcforensics.analyze(cap))
    out = tmp_path / f"{name}.html"
    out.write_text(html.render(doc, [cap]), encoding="utf-8")
    return out, doc


@pytest.fixture(scope="module")
def browser():
    sync = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium not installed")
    with sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, path):
    page = browser.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


@pytest.mark.parametrize("name", ["fingerprint_rewrite", "sdes_plain_rtp"])
def test_report_renders_in_chromium(browser, tmp_path, name):
    if name not in sample_names():
        pytest.skip(f"{name} not present")
    path, doc = _render(tmp_path, name)
    page, errors, requests = _open(browser, path)
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not errors, errors
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    body = page.inner_text("body")
    for f in doc["findings"]:
        assert f["slug"] in body
    assert page.locator(f"text={doc['findings'][0]['slug']}").first.is_visible()
    assert page.evaluate("document.querySelector('figure img').naturalWidth") > 100  # topology drawn
    page.close()


def test_hostile_capture_renders_inert(browser, tmp_path):
    if "hostile_strings" not in sample_names():
        pytest.skip("hostile_strings sample not present")
    path, _doc = _render(tmp_path, "hostile_strings")
    page, errors, _ = _open(browser, path)
    page.add_init_script("window.alert = () => { window.__alerted = true; }")
    page.reload()
    page.wait_for_load_state("load")
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("document.querySelectorAll('img[src=x], img[onerror]').length") == 0
    assert not page.evaluate("!!window.__alerted")
    body = page.inner_text("body")
    assert "<script>alert(1)</script>" in body  # shown as text
    assert load_truth("hostile_strings")["hostile"]["user_agent"].split(" <")[0] in body
    assert not errors, errors
    page.close()
