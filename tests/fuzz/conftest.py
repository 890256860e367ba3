"""Shared fixture for the CI fuzz run: each target of fuzz/targets.py through the fuzz/run_long.py driver.

Every test runs one parser's target for at least MIN_INPUTS inputs in a child process (atheris/libFuzzer
when installed, else the deterministic mutation loop), with a wall-clock limit that fails on a hang.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MIN_INPUTS = 10_000
HANG_S = 240  # per target; a run that needs longer has hung


@pytest.fixture(scope="session")
def fuzz_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture
def fuzz_target(fuzz_work: Path, record_property):
    from fuzz import run_long, targets

    def run(name: str, runs: int = MIN_INPUTS) -> int:
        assert targets.seeds(name), f"no seeds for {name} from sample_captures/"
        count, crash, tail = run_long.run_target(name, runs=runs, work=fuzz_work, timeout=HANG_S)
        record_property(f"fuzz_inputs_{name}", count)
        print(f"\nfuzz {name}: {count} inputs, {crash or 'no crash'}")
        assert crash is None, f"{name} crashed: {crash}\n{tail}"
        assert count >= runs, f"{name}: only {count} inputs ran\n{tail}"
        return count

    return run


@pytest.fixture(scope="session")
def loaded_targets():
    from fuzz import targets

    targets.load()
    return targets
