"""Fuzz every parser we own: coverage-guided with atheris (libFuzzer), seeded from the sample captures.

    .venv/bin/python fuzz/run_long.py                       # every target, 1,000,000 inputs each
    .venv/bin/python fuzz/run_long.py stun dtls --runs 5000000
    .venv/bin/python fuzz/run_long.py --max-time 600 sdp    # ten minutes on the SDP parser
    .venv/bin/python fuzz/run_long.py --list

Each target runs in its own process (``--worker``): libFuzzer mutates the seed corpus (written from the sample
captures into ``--work DIR/<target>/corpus``, which also keeps the inputs that found new coverage), with a
per-input time limit (``-timeout``, a hang is a crash) and an RSS limit. A crash leaves the input in
``DIR/<target>/crash-*``; turn it into a regression test (tests/fuzz/) before fixing the parser.
Without atheris (``pip install atheris``) a deterministic mutation loop over the same seeds is used instead
(same targets, same reporting, no coverage feedback).

The CI run is tests/fuzz/ (10,000 inputs per target through this same driver).
Prints one line per target: ``<target>: <N> inputs, <crash file or 'no crash'>``; exit 1 when any target crashed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_LEN = {"pcap": 8192, "x509": 4096}
DONE = re.compile(r"Done (\d+) runs")


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------- worker


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One libFuzzer-like mutation: bit flips, byte set/insert/erase, interesting lengths, splices, cuts."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        n = len(b)
        if op == 0 and n:
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            i = rng.randrange(n + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and n:
            i = rng.randrange(n)
            del b[i : i + rng.randint(1, 16)]
        elif op == 4 and n >= 2:  # a 16/32-bit length-like field set to an edge value
            i = rng.randrange(n - 1)
            v = rng.choice((0, 1, 0xFFFF, 0x7FFF, n, n + 1, n - 1, rng.randrange(65536)))
            w = rng.choice((2, 4)) if i + 4 <= n else 2
            b[i : i + w] = (v & (256**w - 1)).to_bytes(w, "big")
        elif op == 5 and n:
            del b[rng.randrange(n) :]
        elif op == 6 and pool:
            o = rng.choice(pool)
            i, j = rng.randrange(n + 1), rng.randrange(len(o) + 1)
            b = b[:i] + bytearray(o[j : j + rng.randint(1, 64)]) + b[i:]
        elif op == 7 and n:
            i = rng.randrange(n)
            b[i:i] = b[i : i + rng.randint(1, 32)]
    return bytes(b)


def _worker_plain(name: str, fn, corpus: Path, runs: int, max_len: int, artifacts: Path) -> int:
    pool = [p.read_bytes()[:max_len] for p in sorted(corpus.iterdir())] or [b""]
    rng = random.Random(f"rtcforensics-fuzz-{name}")
    done = 0
    for i in range(runs):
        data = pool[i] if i < len(pool) else _mutate(rng, rng.choice(pool), pool)[:max_len]
        try:
            fn(data)
        except Exception:
            crash = artifacts / f"crash-{name}-{i}"
            crash.write_bytes(data)
            traceback.print_exc()
            print(f"==CRASH== {crash}", file=sys.stderr)
            print(f"Done {done} runs", file=sys.stderr)
            return 1
        done += 1
    print(f"Done {done} runs (mutation loop, no coverage feedback)", file=sys.stderr)
    return 0


def worker(name: str, corpus: Path, runs: int, max_time: int, artifacts: Path, engine: str) -> int:
    from fuzz import targets

    max_len = MAX_LEN.get(name, 4096)
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["rtcforensics"]):
            targets.load()
    else:
        targets.load()
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        targets.write_corpus(name, corpus)
    fn = targets.TARGETS[name]
    if engine != "atheris":
        return _worker_plain(name, fn, corpus, runs, max_len, artifacts)
    args = [
        sys.argv[0],
        str(corpus),
        f"-max_len={max_len}",
        "-timeout=20",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        "-seed=1",
    ]
    args.append(f"-max_total_time={max_time}" if max_time else f"-runs={runs}")
    atheris.Setup(args, fn)
    atheris.Fuzz()
    return 0


# ------------------------------------------------------------------------------------------- driver


def run_target(
    name: str,
    *,
    runs: int,
    max_time: int = 0,
    work: Path,
    engine: str | None = None,
    timeout: float | None = None,
) -> tuple[int, str | None, str]:
    """Fuzz one target in a child process: (inputs run, crash file or None, stderr tail)."""
    engine = engine or ("atheris" if have_atheris() else "plain")
    d = work / name
    (d / "corpus").mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--engine",
        engine,
        "--runs",
        str(runs),
        "--max-time",
        str(max_time),
        "--work",
        str(work),
    ]
    try:
        cp = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"")[-3000:] if isinstance(e.stderr, bytes) else (e.stderr or "")[-3000:]
        return 0, f"{name}: the fuzz run did not finish within {timeout} s (hang)", str(tail)
    err = cp.stderr
    m = DONE.findall(err)
    count = int(m[-1]) if m else 0
    crash = None
    if cp.returncode != 0:
        found = sorted(d.glob("crash-*")) + sorted(d.glob("timeout-*")) + sorted(d.glob("oom-*"))
        crash = str(found[-1]) if found else f"{name}: worker exit {cp.returncode}"
    return count, crash, err[-6000:]


def main(argv: list[str] | None = None) -> int:
    from fuzz import targets

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help=f"default: all ({', '.join(targets.TARGETS)})")
    ap.add_argument("--runs", type=int, default=1_000_000, help="inputs per target (default 1,000,000)")
    ap.add_argument("--max-time", type=int, default=0, help="seconds per target instead of --runs")
    ap.add_argument("--work", type=Path, help="corpus and crash directory (default: a new temporary one)")
    ap.add_argument("--engine", choices=("atheris", "plain"), help="default: atheris when installed")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.list:
        for n, fn in targets.TARGETS.items():
            print(f"{n:12} {(fn.__doc__ or '').splitlines()[0]}")
        return 0
    work = a.work or Path(tempfile.mkdtemp(prefix="rtcf-fuzz-"))
    if a.worker:
        d = work / a.worker
        return worker(a.worker, d / "corpus", a.runs, a.max_time, d, a.engine or "plain")
    names = a.targets or list(targets.TARGETS)
    unknown = [n for n in names if n not in targets.TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; see --list")
    bad = 0
    for n in names:
        count, crash, tail = run_target(n, runs=a.runs, max_time=a.max_time, work=work, engine=a.engine)
        print(f"{n}: {count} inputs, {crash or 'no crash'}", flush=True)
        if crash:
            bad += 1
            print(tail, file=sys.stderr)
    print(f"work directory: {work}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
