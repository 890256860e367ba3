"""The whole catalogue: importing every family module registers its checks (``registry.check``)."""

from __future__ import annotations

from . import comp, dtls, ice, sdp, sig, srtp, turn  # noqa: F401  (registration by import)
from .registry import CASE_REGISTRY, FAMILIES, REGISTRY, Check, check_by_slug


def load_catalogue() -> dict[str, Check]:
    """Every registered check, sorted by family then ID."""
    return dict(sorted(REGISTRY.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])))


def get(id_or_slug: str) -> Check:
    """Look a check up by ID (case-insensitive) or slug, per-capture or cross-capture (``CASE`` family)."""
    cat = load_catalogue()
    from ..case import correlate  # noqa: F401  (registers the cross-capture checks by import)

    key = id_or_slug.strip()
    found = cat.get(key.upper()) or CASE_REGISTRY.get(key.upper()) or check_by_slug(key)
    if found is None:
        raise KeyError(f"no check with ID or slug {id_or_slug!r}")
    return found
