"""The `anomalies` frame: everything the dissectors and builders recorded."""

from __future__ import annotations

import pandas as pd

from ..capture import Capture, register_frame
from ..schema import ANOMALIES

# Frames built only when asked for: decryption is slow and needs the srtp extra.
ON_DEMAND = frozenset({"srtp_streams"})


@register_frame(ANOMALIES)
def build_anomalies(cap: Capture) -> pd.DataFrame:
    # Build every other frame first so that their anomalies are included; one that cannot be built is itself
    # an anomaly, never the loss of all the others.
    for name in cap.frame_names():
        if name == "anomalies" or name in ON_DEMAND:
            continue
        try:
            cap.get_frame(name)
        except ImportError:
            continue  # a part of the engine not in this installation
        except Exception as e:
            if cap.strict:
                raise
            cap.anomaly_log.add(
                "capture", "frame_failed", f"building frame {name!r} raised {type(e).__name__}: {e}"
            )
    return cap.anomaly_log.frame()
