"""Secrets never reach an output unless asked for; keylog contents never at all.

Known secrets per sample capture come from outside our parser: the truth file's ``secrets`` (TURN passwords,
TURN REST shared secret, SDES keys, as the lab's stacks used them) and what tshark reads in the capture's
signalling (decrypted with the capture's keylog where there is one): ICE passwords, SDES ``inline:`` keys,
Authorization / Cookie values. The keylog's secrets (third column) form a separate set that must not appear
even with ``--show-secrets``.

Outputs searched: every CLI format (``rtcforensics analyze X --format F``), ``rtcforensics summary``, the
CSV export, and the Python renderers (JSON, SARIF, HTML, markdown, table) on a Report made in-process.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_captures"
FORMATS = ("table", "json", "sarif", "html", "markdown")
CAPTURES = sorted(p.name[: -len(".pcapng")] for p in SAMPLES.glob("*.pcapng"))

# (exit 3 = an incomplete run: still searched for secrets)
# slow: every CLI format of every sample capture, about 1.5 minutes on 2 cores (still run in CI)
pytestmark = [
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark needed for the secret oracle"),
    pytest.mark.slow,
]

_WIRE = [
    re.compile(r"ice-pwd:([A-Za-z0-9+/]{16,})"),
    re.compile(r"inline:([A-Za-z0-9+/=]{20,})"),
    re.compile(
        r'"(?:http\.authorization|http\.proxy_authorization|http\.cookie|http\.set_cookie|'
        r'sip\.Authorization|sip\.Proxy-Authorization)": "([^"]{6,})"'
    ),
    re.compile(r'\\"(?:credential|password|token)\\"\s*:\s*\\"([^"\\]{6,})\\"'),
]


def keylog_of(name: str) -> Path | None:
    k = SAMPLES / f"{name}.keylog"
    return k if k.exists() else None


_NOT_SECRET = {"sdp", "suite", "keys_stream", "role", "scheme", "kind", "expiry", "username", "user"}


def _strings(obj: object, key: str = "") -> list[str]:
    """String values of a truth ``secrets`` entry, leaving out descriptive fields (suite, which stream, ...)."""
    if isinstance(obj, dict):
        return [s for k, v in obj.items() if k not in _NOT_SECRET for s in _strings(v, k)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v, key)]
    return [obj] if isinstance(obj, str) else []


@cache
def known_secrets(name: str) -> frozenset[str]:
    truth = json.loads((SAMPLES / f"{name}.truth.json").read_text())
    found = {s for s in _strings(truth.get("secrets") or {}) if len(s) >= 8}
    argv = ["tshark", "-n", "-r", str(SAMPLES / f"{name}.pcapng"), "-T", "json"]
    k = keylog_of(name)
    if k:
        argv += ["-o", f"tls.keylog_file:{k}"]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False).stdout
    for pat in _WIRE:
        found |= set(pat.findall(text))
    return frozenset(found)


@cache
def keylog_secrets(name: str) -> frozenset[str]:
    k = keylog_of(name)
    if not k:
        return frozenset()
    return frozenset(
        p[2] for ln in k.read_text().splitlines() if len(p := ln.split()) == 3 and len(p[2]) >= 32
    )


def leaks(text: str, secrets: frozenset[str]) -> list[str]:
    """Secrets present in ``text`` as they are, HTML-escaped, JSON-escaped, or as uppercase hex (keylog)."""
    out = []
    low = text.lower()
    for s in secrets:
        forms = {s, html.escape(s), json.dumps(s)[1:-1]}
        if any(f in text for f in forms) or (re.fullmatch(r"[0-9a-f]+", s) and s in low):
            out.append(s)
    return out


def test_oracle_finds_secrets() -> None:
    # the oracle is not empty: ICE passwords in clear and in TLS, SDES keys, TURN passwords
    assert any(known_secrets(n) for n in ("ws_plaintext_private", "hostile_strings"))
    assert known_secrets("clean_call"), "ICE passwords inside WSS not found with the keylog"
    assert len(known_secrets("sdes_plain_rtp")) >= 2
    # the WHIP bearer token and session cookie the lab's client and server exchanged in clear
    whip = json.loads((SAMPLES / "sdes_plain_rtp.truth.json").read_text())["secrets"]["whip"]
    assert {whip["bearer_token"], whip["session_cookie"]} <= known_secrets("sdes_plain_rtp")
    assert f"Bearer {whip['bearer_token']}" in known_secrets("sdes_plain_rtp")  # as tshark reads the header
    assert "Lab-Turn-Pw-7f3a91" in known_secrets("turn_relay_longterm")
    assert keylog_secrets("clean_call")


CliResult = tuple[
    "int | None", str, str, float
]  # as conftest.cli_series gives: exit code, stdout, stderr, RSS
FormatRun = tuple[list[str], "int | None", "str | None", str]  # capture names, exit code, report, stderr
RUN_CHILDREN = 4  # processes the keylog runs are spread over (each start-up costs about a second)


@pytest.fixture(scope="module")
def cli_formats(cli_series, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[FormatRun]]:
    """Every CLI format of every sample capture: per format, (capture names, exit code, report, stderr) of each
    run. All sample captures without a keylog in one ``analyze`` run (``--jobs 2``), then each keylog
    capture with its keylog in a run of its own. The five formats of a run are five command lines in one
    process, sharing the run's analysis (``conftest.cli_series``); two processes at a time (each waits on
    tshark part of the time, and the machine has two cores)."""
    d = tmp_path_factory.mktemp("cli_formats")
    plain = [n for n in CAPTURES if not keylog_of(n)]
    keyed = sorted(
        (n for n in CAPTURES if keylog_of(n)), key=lambda n: -(SAMPLES / f"{n}.pcapng").stat().st_size
    )
    runs: list[tuple[list[str], Path | None]] = [(plain, None)] + [([n], keylog_of(n)) for n in keyed]

    def argv(i: int, names: list[str], keylog: Path | None, fmt: str) -> list[str]:
        args = [
            "analyze",
            *[str(SAMPLES / f"{n}.pcapng") for n in names],
            "--format",
            fmt,
            "-o",
            str(d / f"out{i}.{fmt}"),
            "--fail-on",
            "none",
            "--jobs",
            "2",
        ]
        return args + (["--keylog", str(keylog)] if keylog else [])

    # the plain run alone (it has two workers), the keylog runs dealt largest first over the other children
    children = [[0]] + [list(range(1 + c, len(runs), RUN_CHILDREN)) for c in range(RUN_CHILDREN)]

    def child(idx: list[int]) -> list[tuple[int, list[CliResult]]]:
        results = cli_series([argv(i, *runs[i], fmt) for i in idx for fmt in FORMATS], timeout=600 * len(idx))
        return [(i, results[k * len(FORMATS) : (k + 1) * len(FORMATS)]) for k, i in enumerate(idx)]

    with ThreadPoolExecutor(2) as pool:
        done = [r for rs in pool.map(child, [c for c in children if c]) for r in rs]
    out: dict[str, list[FormatRun]] = {fmt: [] for fmt in FORMATS}
    for i, results in done:
        stderr = "".join(err for _, _, err, _ in results)  # the analysis' progress is in the first one's
        for fmt, (code, *_) in zip(FORMATS, results):
            path = d / f"out{i}.{fmt}"
            out[fmt].append((runs[i][0], code, path.read_text() if path.exists() else None, stderr))
    return out


@pytest.fixture(scope="module")
def secrets_of() -> dict[str, frozenset[str]]:
    """The known and the keylog secrets of every sample capture (the tshark oracle two captures at a time)."""
    with ThreadPoolExecutor(2) as pool:
        known = dict(zip(CAPTURES, pool.map(known_secrets, CAPTURES)))
    return {n: known[n] | keylog_secrets(n) for n in CAPTURES}


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_outputs_hold_no_secret(
    fmt: str, cli_formats: dict[str, list[FormatRun]], secrets_of: dict[str, frozenset[str]]
) -> None:
    """Every sample capture through ``rtcforensics analyze --format FMT`` (keylog captures with their keylog):
    no known secret, no keylog secret in the report or on stderr."""
    runs = cli_formats[fmt]
    assert sorted(n for names, *_ in runs for n in names) == CAPTURES
    for names, code, report, stderr in runs:
        assert code in (0, 3), f"{names} ({fmt}): exit {code}\n{stderr[-2000:]}"
        assert report is not None, f"{names} ({fmt}): no report written\n{stderr[-2000:]}"
    problems = [
        f"{n} ({fmt}): {sorted(bad)}"
        for names, _, report, stderr in runs
        for n in names
        if (bad := leaks(f"{report}{stderr}", secrets_of[n]))
    ]
    assert not problems, "\n".join(problems)


def test_show_secrets_shows_them_but_never_the_keylog(cli_series) -> None:
    """--show-secrets is honoured (the search above is not vacuous) and still keeps keylog secrets out."""
    names = ("sdes_plain_rtp", "clean_call")
    runs = []
    for name in names:
        args = [
            "analyze",
            str(SAMPLES / f"{name}.pcapng"),
            "--format",
            "json",
            "--fail-on",
            "none",
            "--show-secrets",
        ]
        if keylog_of(name):
            args += ["--keylog", str(keylog_of(name))]
        runs.append(args)
    results = cli_series(runs)
    for name, (code, stdout, stderr, _) in zip(names, results):
        assert code in (0, 3), stderr[-2000:]
        assert json.loads(stdout)["secrets_shown"] is True
        assert not leaks(stdout, keylog_secrets(name))
    assert leaks(results[0][1], known_secrets("sdes_plain_rtp")), (
        "--show-secrets shows no SDES key: the redaction test above would pass vacuously"
    )


def test_summary_and_export_hold_no_secret(cli_series, tmp_path: Path) -> None:
    names = ("sdes_plain_rtp", "clean_call", "turn_relay_longterm", "ws_plaintext_private", "sip_ws")

    def runs(name: str) -> list[list[str]]:
        k = ["--keylog", str(keylog_of(name))] if keylog_of(name) else []
        cap = str(SAMPLES / f"{name}.pcapng")
        return [["summary", cap, *k], ["export", cap, "--to", str(tmp_path / name), "--format", "csv", *k]]

    # one process per half of the captures, the two at a time
    halves = [names[::2], names[1::2]]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda half: cli_series([r for n in half for r in runs(n)]), halves))
    problems = []
    for half, results in zip(halves, done):
        for k, name in enumerate(half):
            (cs, summary, es, _), (ce, _, ee, _) = results[2 * k : 2 * k + 2]
            assert cs in (0, 3), es[-2000:]
            assert ce in (0, 3), ee[-2000:]
            text = summary + "".join(p.read_text() for p in sorted((tmp_path / name).glob("*.csv")))
            bad = leaks(text, known_secrets(name) | keylog_secrets(name))
            if bad:
                problems.append(f"{name}: {sorted(bad)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", CAPTURES)
def test_python_renderers_hold_no_secret(name: str) -> None:
    import rtcforensics
    from rtcforensics.checks.analyze import analyze
    from rtcforensics.report import html as rhtml
    from rtcforensics.report import jsonout, markdown, sarif, table

    cap = rtcforensics.load(SAMPLES / f"{name}.pcapng", keylog=keylog_of(name))
    doc = jsonout.document(analyze(cap))
    outs = {
        "json": jsonout.render(doc, {}),
        "sarif": sarif.render([doc]),
        "html": rhtml.render([doc], [cap], {}),
        "markdown": markdown.render(doc),
        "table": table.render(doc),
    }
    secrets = known_secrets(name) | keylog_secrets(name)
    bad = {fmt: leaks(text, secrets) for fmt, text in outs.items()}
    assert not any(bad.values()), bad
