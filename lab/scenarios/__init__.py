"""Scenario modules: each exposes ``SCENARIOS: dict[str, Callable[[Path], dict]]`` (see lab/generate.py)."""
