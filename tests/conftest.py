"""Shared fixtures: sample captures, their truth files, and third-party captures (skipped when absent)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from samples import REALCAPS, load_truth, sample_path


@pytest.fixture
def realcaps() -> Path:
    if not REALCAPS.is_dir():
        pytest.skip("../shared/realcaps not present")
    return REALCAPS


@pytest.fixture
def sample() -> Callable[[str], Path]:
    return sample_path


@pytest.fixture
def truth() -> Callable[[str], dict[str, Any]]:
    return load_truth
