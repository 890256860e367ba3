"""Small helpers shared by the check families (no check logic lives here): the NA-aware value helpers of
:mod:`rtcforensics.values`, and row iteration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from ..values import endpoints, ep, frames_of, host, isna, listish, parties, plain, truthy, val

# STUN methods of the `stun` frame whose flow carries TURN (to or from a relay)
TURN_FLOW_METHODS = ("Allocate", "Refresh", "CreatePermission", "ChannelBind", "Send", "Data")


def rows(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Iterate rows as dicts keyed by column (``val(r, name)`` reads them NA-aware); far cheaper than
    ``iterrows`` on large frames."""
    yield from df.to_dict("records")


__all__ = [
    "TURN_FLOW_METHODS",
    "endpoints",
    "ep",
    "frames_of",
    "host",
    "isna",
    "listish",
    "parties",
    "plain",
    "rows",
    "truthy",
    "val",
]
