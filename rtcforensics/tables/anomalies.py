"""The `anomalies` frame: everything the dissectors and builders recorded."""

from __future__ import annotations

import pandas as pd

from ..capture import Capture, register_frame
from ..schema import ANOMALIES


@register_frame(ANOMALIES)
def build_anomalies(cap: Capture) -> pd.DataFrame:
    # Build every other frame first so that their anomalies are included.
    for name in cap.frame_names():
        if name != "anomalies":
            cap.get_frame(name)
    return cap.dissection.anomalies.frame()
