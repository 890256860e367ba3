"""Golden reports: the JSON and markdown reports of three sample captures, compared whole with the files in
``tests/golden/`` (tool version, run time and capture path masked). A deliberate change of a verdict or a
format is accepted by refreshing them: ``.venv/bin/python -m tests.golden --update`` (then review the diff)."""

from __future__ import annotations

import json

import pytest
from golden import CASES, FORMATS, MASK, UPDATE_COMMAND, capture_path, diff, golden_path, render

from rtcforensics.report.jsonout import SCHEMA


@pytest.fixture(scope="module", params=CASES)
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    if not capture_path(request.param).exists():
        pytest.skip(f"sample capture {request.param!r} not present")
    return request.param, render(request.param)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_report_matches_golden_file(rendered: tuple[str, dict[str, str]], fmt: str) -> None:
    name, texts = rendered
    assert golden_path(name, fmt).exists(), f"no golden file for {name} {fmt}: run {UPDATE_COMMAND}"
    d = diff(name, fmt, texts[fmt])
    assert not d, f"{name} {fmt} report differs from its golden file (if intended: {UPDATE_COMMAND})\n{d}"


def test_golden_json_is_a_valid_masked_report(rendered: tuple[str, dict[str, str]]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    name, texts = rendered
    doc = json.loads(texts["json"])
    jsonschema.validate(doc, SCHEMA)
    assert doc["tool"]["version"] == MASK["version"] and doc["generated"] == MASK["generated"]
    assert doc["capture"]["path"] == f"{MASK['path']}/{name}.pcapng"
    assert (
        "generated &lt;generated&gt;" in texts["markdown"]
        and str(capture_path(name).parent.parent) not in texts["markdown"] + texts["json"]
    )
