"""Collects anomaly rows while a capture is dissected; the ``anomalies`` frame is built from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .schema import ANOMALIES


@dataclass
class AnomalyLog:
    rows: list[dict[str, Any]] = field(default_factory=list)
    limit: int = 100_000  # a hostile capture must not turn into a memory blow-up
    dropped: int = 0

    def add(
        self,
        layer: str,
        name: str,
        detail: str,
        frame: int | None = None,
        ts_ns: int | None = None,
        flow_id: int | None = None,
    ) -> None:
        if len(self.rows) >= self.limit:
            self.dropped += 1
            return
        self.rows.append(
            {"frame": frame, "ts": ts_ns, "layer": layer, "name": name, "detail": detail, "flow_id": flow_id}
        )

    def frame(self) -> pd.DataFrame:
        rows = list(self.rows)
        if self.dropped:
            rows.append(
                {
                    "frame": None,
                    "ts": None,
                    "layer": "capture",
                    "name": "anomalies_truncated",
                    "detail": f"{self.dropped} further anomalies not recorded (limit {self.limit})",
                    "flow_id": None,
                }
            )
        df = (
            pd.DataFrame.from_records(rows, columns=ANOMALIES.names)
            if rows
            else pd.DataFrame(columns=ANOMALIES.names)
        )
        if len(df):
            df["ts"] = pd.to_datetime(df["ts"].astype("Int64"), unit="ns", utc=True)
        return ANOMALIES.conform(df)
