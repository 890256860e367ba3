"""A corrupted-capture corpus (tests/corrupt.py, made from the sample captures at test time) through the CLI and
the API: never a traceback; exit 2 with one line naming the file when nothing can be read, otherwise results
plus anomalies; bounded time per input (a timeout fails the test on a hang) and bounded memory (peak RSS of
the child process, from wait4)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corrupt
from peakrss import run_measured

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TIMEOUT_S = 240  # per input; far above what any of them needs: hitting it means a hang
RSS_LIMIT_MB = 1500  # per child process


def run_bounded(argv: list[str], timeout: float, cwd: Path = ROOT) -> tuple[int | None, str, str, float]:
    """Run argv; (exit code or None on timeout, stdout, stderr, peak RSS in MB of that command, see
    tests/peakrss.py)."""
    return run_measured(argv, timeout, cwd=cwd)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[corrupt.Case]:
    cases = corrupt.build(tmp_path_factory.mktemp("corrupt"))
    assert len(cases) >= 30
    return cases


RunResult = tuple[int | None, str, str, float]  # exit code (None: timed out), stdout, stderr, peak RSS in MB


def cli_corpus(
    corpus: list[corrupt.Case], cli_series: Callable[..., list[RunResult]]
) -> dict[str, RunResult]:
    """Every corrupted capture through `rtcforensics analyze --format json`, two at a time, largest first: each
    in a process of its own (a fork of one that has imported what the CLI imports, ``conftest.cli_series``:
    the start-up is about half the cost of a small input's run), its own exit code, output and peak RSS."""
    order = sorted(corpus, key=lambda c: -c.path.stat().st_size)
    runs = [["analyze", str(c.path), "--format", "json", "--fail-on", "none"] for c in order]
    return dict(zip((c.name for c in order), cli_series(runs, timeout=TIMEOUT_S, jobs=2, errors="replace")))


def api_corpus(corpus: list[corrupt.Case], per_input: int = 120) -> RunResult:
    """Every corrupted capture through the API (API_SCRIPT), in one child process."""
    return run_bounded(
        [PY, "-c", API_SCRIPT, str(per_input), *[str(c.path) for c in corpus]], per_input * len(corpus)
    )


@pytest.fixture(scope="module")
def corpus_runs(corpus: list[corrupt.Case], cli_series) -> tuple[dict[str, RunResult], RunResult]:
    """The corpus through the CLI and, at the same time (its one process beside the CLI's two), the API."""
    with ThreadPoolExecutor(max_workers=1) as ex:
        api = ex.submit(api_corpus, corpus)
        cli = cli_corpus(corpus, cli_series)
        return cli, api.result()


@pytest.fixture(scope="module")
def cli_runs(corpus_runs: tuple[dict[str, RunResult], RunResult]) -> dict[str, RunResult]:
    return corpus_runs[0]


def _cli_problems(case: corrupt.Case, run: tuple[int | None, str, str, float]) -> list[str]:
    code, out, err, rss = run
    what = f"{case.name} ({case.how})"
    probs = []
    if code is None:
        return [f"{what}: CLI did not finish within {TIMEOUT_S} s"]
    if "Traceback" in err or "Traceback" in out:
        probs.append(f"{what}: traceback\n{err[-1500:]}")
    if rss > RSS_LIMIT_MB:
        probs.append(f"{what}: CLI peak RSS {rss:.0f} MB")
    if case.expect == corrupt.UNREADABLE:
        lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # progress lines start with [i/n]
        if code != 2:
            probs.append(f"{what}: exit {code}, expected 2")
        elif (
            len(lines) != 1
            or not lines[0].startswith("rtcforensics: error: ")
            or str(case.path) not in lines[0]
        ):
            probs.append(f"{what}: expected one error line naming the file, got {lines!r}")
    else:
        if code not in (0, 3):
            return probs + [
                f"{what}: exit {code}, expected results (0, or 3 for an incomplete run)\n{err[-800:]}"
            ]
        try:
            doc = json.loads(out)
        except ValueError as e:
            return probs + [f"{what}: stdout is not JSON ({e})"]
        if (code == 3) != (doc.get("run", {}).get("complete") is False):
            probs.append(f"{what}: exit {code} but the report says run {doc.get('run')}")
        if doc["capture"].get("path") != str(case.path):
            probs.append(f"{what}: report names {doc['capture'].get('path')!r}")
        if not doc["coverage"]:
            probs.append(f"{what}: the report has no coverage (no check ran)")
    return probs


@pytest.mark.slow  # the corpus, CLI and API (one fixture for the three tests): about 2 minutes on 2 cores
def test_cli_on_corrupted_corpus(corpus: list[corrupt.Case], cli_runs) -> None:
    problems = [p for c in corpus for p in _cli_problems(c, cli_runs[c.name])]
    worst = max(r[3] for r in cli_runs.values())
    print(f"\nCLI: {len(corpus)} corrupted captures, peak RSS {worst:.0f} MB, {len(problems)} problem(s)")
    assert not problems, "\n".join(problems)


@pytest.mark.slow  # the corpus, CLI and API (one fixture for the three tests): about 2 minutes on 2 cores
def test_cli_report_says_capture_is_damaged(corpus: list[corrupt.Case], cli_runs) -> None:
    """A damaged capture gives partial results AND says so: the capture-layer anomaly (truncation, bad record
    length, damaged gzip) must reach the report, not only the API's `anomalies` frame."""
    silent = []
    for c in corpus:
        code, out, _, _ = cli_runs[c.name]
        if c.expect != corrupt.PARTIAL or code not in (0, 3):
            continue
        doc = json.loads(out)
        told = json.dumps(doc.get("anomalies", [])) + json.dumps(doc["overview"].get("notes", []))
        if not any(
            w in told.lower() for w in ("truncat", "cut short", "damaged", "invalid length", "claims")
        ):
            silent.append(c.name)
    assert not silent, f"{len(silent)} damaged captures reported as if whole: {silent}"


# The API check runs in one child (peak RSS measured for it), each input under its own alarm.
API_SCRIPT = r"""
import json, signal, sys, traceback
import rtcforensics
from rtcforensics.errors import CaptureError
from rtcforensics.checks.analyze import analyze
from rtcforensics.report import html, jsonout, markdown, sarif, table

def hang(*a):
    raise TimeoutError("hang")

signal.signal(signal.SIGALRM, hang)
res = {}
for path in sys.argv[2:]:
    r = res[path] = {}
    signal.alarm(int(sys.argv[1]))
    try:
        cap = rtcforensics.load(path)
        frames = {}
        for name in cap.frame_names():
            frames[name] = len(cap.get_frame(name))
        an = cap.get_frame("anomalies")
        r["frames"] = frames
        r["anomalies"] = sorted(set(zip(an["layer"].astype(str), an["name"].astype(str))))
        doc = jsonout.document(analyze(cap))
        for text in (jsonout.render(doc, {}), sarif.render([doc]), html.render([doc], [cap], {}),
                     markdown.render(doc), table.render(doc)):
            assert isinstance(text, str) and text
        r["ok"] = True
    except CaptureError as e:
        r["capture_error"] = str(e)
    except BaseException as e:
        r["crash"] = traceback.format_exc()
    finally:
        signal.alarm(0)
print(json.dumps(res))
"""


@pytest.mark.slow  # the corpus, CLI and API (one fixture for the three tests): about 2 minutes on 2 cores
def test_api_on_corrupted_corpus(
    corpus: list[corrupt.Case], corpus_runs: tuple[dict[str, RunResult], RunResult]
) -> None:
    code, out, err, rss = corpus_runs[1]
    assert code == 0, f"API child failed (exit {code}):\n{err[-3000:]}"
    res = json.loads(out.strip().splitlines()[-1])
    problems = []
    for c in corpus:
        r = res[str(c.path)]
        what = f"{c.name} ({c.how})"
        if "crash" in r:
            problems.append(f"{what}: {r['crash'][-1500:]}")
        elif c.expect == corrupt.UNREADABLE:
            if "capture_error" not in r or str(c.path) not in r["capture_error"]:
                problems.append(f"{what}: expected CaptureError naming the file, got {r}")
        elif not r.get("ok"):
            problems.append(f"{what}: expected results, got {r}")
        elif r["frames"].get("packets", 0) == 0:
            problems.append(f"{what}: no packets read")
        elif c.expect == corrupt.PARTIAL and not any(layer == "capture" for layer, _ in r["anomalies"]):
            problems.append(f"{what}: no capture-layer anomaly in {r['anomalies']}")
    print(f"\nAPI: {len(corpus)} corrupted captures, peak RSS {rss:.0f} MB, {len(problems)} problem(s)")
    assert rss < RSS_LIMIT_MB, f"API child peak RSS {rss:.0f} MB"
    assert not problems, "\n".join(problems)


def test_pcapng_cut_inside_section_header_is_unreadable(tmp_path: Path) -> None:
    # found by this corpus: a pcapng cut inside its section header block gave an empty result and exit 0
    from rtcforensics.anomalies import AnomalyLog
    from rtcforensics.dissect.pcapio import CaptureReader
    from rtcforensics.errors import CaptureError

    p = tmp_path / "cut.pcapng"
    p.write_bytes((corrupt.SAMPLES / "turn_open_relay.pcapng").read_bytes()[:20])
    with pytest.raises(CaptureError) as e:
        list(CaptureReader(p, AnomalyLog()).batches())
    assert str(p) in str(e.value) and "section header block cut short" in str(e.value)


def test_hundred_thousand_tiny_packets(tmp_path: Path) -> None:
    frame = corrupt.smallest_udp_frame(corrupt.SAMPLES / "ws_plaintext_private.pcapng")
    path = corrupt.write_pcap(tmp_path / "tiny.pcap", (frame, 100_000))
    script = (
        "import sys, rtcforensics; cap = rtcforensics.load(sys.argv[1]); p = cap.get_frame('packets'); "
        "print(len(p), p['frame'].iloc[-1], len(cap.get_frame('flows')))"
    )
    code, out, err, rss = run_bounded([PY, "-c", script, str(path)], TIMEOUT_S)
    assert code == 0, err[-2000:]
    n, last, flows = out.split()
    assert (int(n), int(last), int(flows)) == (100_000, 100_000, 1)
    print(f"\n100,000 tiny packets: peak RSS {rss:.0f} MB")
    assert rss < RSS_LIMIT_MB
