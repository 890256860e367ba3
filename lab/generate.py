"""Regenerate the sample captures: ``python -m lab.generate [NAME ...]`` (root; default: every scenario).

CONTRACT between this generator and the scenario modules (lab/scenarios/*.py):

- Every module in ``lab/scenarios/`` (except ``_*.py``) exposes
  ``SCENARIOS: dict[str, Callable[[Path], dict]]`` — scenario name → function.
- The function gets the output directory ``out``. It builds its hosts with ``lab.netns.Lab(name)``, runs the
  real stacks inside, captures with ``lab.capture(out / f"{name}.pcapng")`` and, when there is a keylog,
  writes ``out / f"{name}.keylog"`` (SSLKEYLOGFILE format). Nothing else goes into ``out``; scratch files go
  under ``lab/work/<name>/`` (git-ignored; ``lab.truthlib.workdir(name)``).
- It returns the truth dict (shape: docs/architecture.md, "Truth file shape"), with at least
  ``description``, ``findings`` and ``absent_findings``; ``keylog`` (file name or None); facts taken from
  the stacks themselves (never from our parser). It may add ``stacks`` entries (e.g. {"ffmpeg": "5.1.9"});
  it raises on failure (the generator reports it and goes on with the next scenario).
- The generator adds ``scenario``, ``generator`` (module path), ``generated`` (UTC ISO time), merges
  ``stacks`` with the versions it detects, writes ``<name>.truth.json``, checks the size limits
  (each file <= 2 MB, whole directory <= 30 MB) and rewrites the scenario's row in
  ``sample_captures/README.md`` (provenance table, one row per capture).
- Helpers for scenarios: ``lab.truthlib`` (workdir, stack versions, tshark cross-checks, STUN counting).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import pkgutil
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from lab import truthlib

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sample_captures"
MAX_FILE = 2 * 1024 * 1024
MAX_TOTAL = 30 * 1024 * 1024
README_BEGIN = "<!-- provenance:begin -->"
README_END = "<!-- provenance:end -->"

Scenario = Callable[[Path], dict]


def discover() -> dict[str, tuple[str, Scenario]]:
    """All scenarios: name -> (module file relative to the repo, function)."""
    import lab.scenarios as pkg

    found: dict[str, tuple[str, Scenario]] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"lab.scenarios.{info.name}")
        for name, fn in getattr(mod, "SCENARIOS", {}).items():
            if name in found:
                raise SystemExit(f"scenario {name!r} defined twice ({found[name][0]} and {info.name})")
            found[name] = (f"lab/scenarios/{info.name}.py", fn)
    return found


def _files(name: str, out: Path) -> list[Path]:
    return [
        p for p in (out / f"{name}.pcapng", out / f"{name}.keylog", out / f"{name}.truth.json") if p.exists()
    ]


def check_sizes(out: Path) -> list[str]:
    problems = []
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            total += p.stat().st_size
            if p.stat().st_size > MAX_FILE and p.suffix != ".md":
                problems.append(f"{p.name}: {p.stat().st_size} bytes > {MAX_FILE}")
    if total > MAX_TOTAL:
        problems.append(f"sample_captures/ total {total} bytes > {MAX_TOTAL}")
    return problems


def summarize(truth: dict) -> str:
    slugs = sorted({f["slug"] for f in truth.get("findings", [])})
    return ", ".join(slugs) if slugs else "(none: clean)"


def update_readme(name: str, truth: dict, out: Path) -> None:
    """Rewrite the provenance row of ``name`` in sample_captures/README.md (table between markers)."""
    lockfile = ROOT / "lab" / "work" / "README.lock"  # git-ignored
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    with open(lockfile, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two engineers may regenerate different scenarios at once
        _update_readme(name, truth, out)


def _update_readme(name: str, truth: dict, out: Path) -> None:
    readme = out / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if README_BEGIN not in text:
        text = (
            "# Sample captures\n\nMade by real WebRTC stacks in network namespaces (documentation or private\n"
            "addresses only) by `sudo .venv/bin/python -m lab.generate [NAME ...]`; see lab/README.md.\n"
            "Each `<name>.pcapng` has `<name>.truth.json` (facts from the stacks, checked by\n"
            "tests/test_truth.py with tshark) and, where listed, `<name>.keylog` (SSLKEYLOGFILE).\n\n"
            f"{README_BEGIN}\n{README_END}\n"
        )
    head, rest = text.split(README_BEGIN, 1)
    table, tail = rest.split(README_END, 1)
    rows = {}
    for line in table.strip().splitlines():
        if line.startswith("| `"):
            rows[line.split("`")[1]] = line
    cap = out / f"{name}.pcapng"
    size = f"{cap.stat().st_size / 1024:.0f} KiB" if cap.exists() else "?"
    stacks = ", ".join(f"{k} {v}" for k, v in sorted(truth.get("stacks", {}).items()))
    desc = truth.get("description", "").replace("|", "/").replace("\n", " ")
    if truth.get("regenerate_seconds"):
        desc += f" (regenerates in about {truth['regenerate_seconds']:.0f} s)"
    keylog = "yes" if truth.get("keylog") else "no"
    rows[name] = (
        f"| `{name}` | {desc} | {truth.get('generator', '')} | {stacks} | {keylog} | {size} | "
        f"{summarize(truth)} | {truth.get('generated', '')[:10]} |"
    )
    header = (
        "| capture | what it shows | generator | stacks | keylog | size | findings | generated |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    body = "\n".join(rows[k] for k in sorted(rows))
    readme.write_text(f"{head}{README_BEGIN}\n{header}\n{body}\n{README_END}{tail}")


def run_one(name: str, module: str, fn: Scenario, out: Path) -> dict:
    for p in _files(name, out):
        p.unlink()
    t0 = time.monotonic()
    truth = fn(out)
    # a scenario that makes several captures at once (they share state, e.g. one certificate) returns the
    # others' truth under "also": {name: truth}; a name may hold a subfolder ("cloned_identity/call_cd")
    also: dict[str, dict] = truth.pop("also", {})
    seconds = round(time.monotonic() - t0, 1)
    full = finish(name, module, truth, out, seconds)
    for other, t in also.items():
        finish(other, module, t, out, seconds)
    return full


def finish(name: str, module: str, truth: dict, out: Path, seconds: float) -> dict:
    """Write ``<name>.truth.json`` (the scenario's truth plus provenance) and its README row."""
    cap = out / f"{name}.pcapng"
    if not cap.exists():
        raise RuntimeError(f"scenario {name} wrote no {cap.name}")
    stacks = truthlib.stack_versions()
    stacks.update(truth.get("stacks", {}))
    full = {
        "scenario": name,
        "generator": module,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{k: v for k, v in truth.items() if k != "stacks"},
        "stacks": stacks,
    }
    # relative to ``out`` (a subfolder scenario's keylog is "<folder>/<file>.keylog")
    full.setdefault("keylog", f"{name}.keylog" if (out / f"{name}.keylog").exists() else None)
    full.setdefault("findings", [])
    full.setdefault("absent_findings", [])
    full["regenerate_seconds"] = seconds
    (out / f"{name}.truth.json").write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    update_readme(name, full, out)
    print(f"[generate] {name}: {cap.stat().st_size} bytes in {seconds:.1f}s", flush=True)
    return full


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.generate", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    args = ap.parse_args(argv)
    scenarios = discover()
    if args.list:
        for n, (m, _) in sorted(scenarios.items()):
            print(f"{n}\t{m}")
        return 0
    if os.geteuid() != 0:
        print("lab.generate needs root (network namespaces, dumpcap on the bridge)", file=sys.stderr)
        return 2
    unknown = [n for n in args.names if n not in scenarios]
    if unknown:
        print(
            f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(sorted(scenarios))}",
            file=sys.stderr,
        )
        return 2
    names = args.names or sorted(scenarios)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    t0 = time.monotonic()
    for n in names:
        module, fn = scenarios[n]
        try:
            run_one(n, module, fn, args.out)
        except Exception:
            traceback.print_exc()
            print(f"[generate] {n}: FAILED", file=sys.stderr, flush=True)
            failed.append(n)
    problems = check_sizes(args.out)
    for p in problems:
        print(f"[generate] size limit: {p}", file=sys.stderr)
    print(
        f"[generate] {len(names) - len(failed)}/{len(names)} scenarios in {time.monotonic() - t0:.0f}s",
        flush=True,
    )
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
