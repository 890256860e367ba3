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
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_captures"
CLI = [sys.executable, "-m", "rtcforensics.cli"]
FORMATS = ("table", "json", "sarif", "html", "markdown")
CAPTURES = sorted(p.name[: -len(".pcapng")] for p in SAMPLES.glob("*.pcapng"))

# (exit 3 = an incomplete run: still searched for secrets)
# slow: every CLI format of every sample capture, about 4.5 minutes on 2 cores (still run in CI)
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


def _cli(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_outputs_hold_no_secret(fmt: str, tmp_path: Path) -> None:
    """All sample captures without a keylog in one run, then each keylog capture with its keylog (two runs at a
    time: each run waits on tshark part of the time, and the machine has two cores)."""
    plain = [n for n in CAPTURES if not keylog_of(n)]
    runs = [(plain, None)] + [([n], keylog_of(n)) for n in CAPTURES if keylog_of(n)]

    def one(i: int, names: list[str], keylog: Path | None) -> list[str]:
        out = tmp_path / f"out{i}.{fmt}"
        args = [
            "analyze",
            *[str(SAMPLES / f"{n}.pcapng") for n in names],
            "--format",
            fmt,
            "-o",
            str(out),
            "--fail-on",
            "none",
            "--jobs",
            "2",
        ]
        if keylog:
            args += ["--keylog", str(keylog)]
        cp = _cli(args)
        assert cp.returncode in (0, 3), cp.stderr[-2000:]
        text = out.read_text() + cp.stderr
        return [
            f"{n} ({fmt}): {sorted(bad)}"
            for n in names
            if (bad := leaks(text, known_secrets(n) | keylog_secrets(n)))
        ]

    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda r: one(r[0], *r[1]), enumerate(runs)))
    problems = [p for ps in found for p in ps]
    assert not problems, "\n".join(problems)


def test_show_secrets_shows_them_but_never_the_keylog() -> None:
    """--show-secrets is honoured (the search above is not vacuous) and still keeps keylog secrets out."""
    for name in ("sdes_plain_rtp", "clean_call"):
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
        cp = _cli(args)
        assert cp.returncode in (0, 3), cp.stderr[-2000:]
        assert json.loads(cp.stdout)["secrets_shown"] is True
        assert not leaks(cp.stdout, keylog_secrets(name))
    assert leaks(
        _cli(
            [
                "analyze",
                str(SAMPLES / "sdes_plain_rtp.pcapng"),
                "--format",
                "json",
                "--fail-on",
                "none",
                "--show-secrets",
            ]
        ).stdout,
        known_secrets("sdes_plain_rtp"),
    ), "--show-secrets shows no SDES key: the redaction test above would pass vacuously"


def test_summary_and_export_hold_no_secret(tmp_path: Path) -> None:
    problems = []
    for name in ("sdes_plain_rtp", "clean_call", "turn_relay_longterm", "ws_plaintext_private", "sip_ws"):
        k = ["--keylog", str(keylog_of(name))] if keylog_of(name) else []
        cap = str(SAMPLES / f"{name}.pcapng")
        cp = _cli(["summary", cap, *k])
        assert cp.returncode in (0, 3), cp.stderr[-2000:]
        d = tmp_path / name
        ce = _cli(["export", cap, "--to", str(d), "--format", "csv", *k])
        assert ce.returncode in (0, 3), ce.stderr[-2000:]
        text = cp.stdout + "".join(p.read_text() for p in sorted(d.glob("*.csv")))
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
