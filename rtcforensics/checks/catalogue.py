"""The whole catalogue: importing every family module registers its checks (``registry.check``)."""

from __future__ import annotations

from . import comp, dtls, ice, sdp, sig, srtp, turn  # noqa: F401  (registration by import)
from .registry import _BY_SLUG, FAMILIES, REGISTRY, Check


def load_catalogue() -> dict[str, Check]:
    """Every registered check, sorted by family then ID."""
    return dict(sorted(REGISTRY.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])))


def get(id_or_slug: str) -> Check:
    """Look a check up by ID (case-insensitive) or slug."""
    cat = load_catalogue()
    key = id_or_slug.strip()
    if key.upper() in cat:
        return cat[key.upper()]
    if key.lower() in _BY_SLUG:
        return cat[_BY_SLUG[key.lower()]]
    raise KeyError(f"no check with ID or slug {id_or_slug!r}")
