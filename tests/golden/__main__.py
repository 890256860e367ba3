"""``python -m tests.golden [--update] [NAME ...]``: compare (or refresh) the golden report files."""

from __future__ import annotations

import argparse
import sys

from . import CASES, diff, render, update


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__)
    ap.add_argument("--update", action="store_true", help="rewrite the golden files from the current code")
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"sample captures (default: {' '.join(CASES)})")
    a = ap.parse_args(argv)
    names = tuple(a.names) or CASES
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"not a golden case: {', '.join(unknown)} (cases: {', '.join(CASES)})")
    if a.update:
        for p in update(names):
            print(f"wrote {p}")
        return 0
    bad = 0
    for name in names:
        for fmt, text in render(name).items():
            d = diff(name, fmt, text)
            if d:
                bad += 1
                print(d)
    print("golden files up to date" if not bad else f"{bad} golden file(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
