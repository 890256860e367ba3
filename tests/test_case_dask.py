"""Fleets: ``ingest --scheduler`` on a real loopback Dask cluster (one ``dask scheduler`` and two ``dask worker``
processes started here) and ``ingest --jobs 2`` give exactly what a local, sequential ingest gives."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from samples import sample_path

from rtcforensics.case import open_case
from rtcforensics.case.ingestion import ingest
from rtcforensics.case.store import VOLATILE

pytest.importorskip("duckdb")
distributed = pytest.importorskip("distributed")

NAMES = ["turn_open_relay", "turn_internal_peer_refused", "weak_dtls", "fingerprint_rewrite"]
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Dask scheduler and two single-threaded workers on 127.0.0.1 (random free ports); stopped always."""
    from rtcforensics.case.cluster import dask_command, loopback_cluster
    from rtcforensics.errors import ToolError

    try:
        dask_command()
    except ToolError:
        pytest.skip("the dask command is not installed")
    with loopback_cluster(2, tmp_path_factory.mktemp("dask")) as address:
        assert address.startswith("tcp://127.0.0.1:")
        yield address


def _snapshot(case_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table of a case, in a stable order (volatile manifest columns left out)."""
    out = {}
    with open_case(case_dir) as case:
        for t in case.tables:
            cols = [
                c
                for c in case.sql(f'select * from "{t}" limit 0').columns
                if not (t == "manifest" and c in VOLATILE)
            ]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[t] = case.sql(f'select {sel} from "{t}" order by all')
    return out


@pytest.fixture(scope="module")
def local_case(tmp_path_factory: pytest.TempPathFactory, cluster: str) -> Path:
    # after the cluster is up: the local and the distributed ingest run close together (same code)
    d = tmp_path_factory.mktemp("local") / "c"
    res = ingest([sample_path(n) for n in NAMES], d)
    assert len(res.ok) == len(NAMES)
    return d


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert sorted(a) == sorted(b)
    for t in a:
        pd.testing.assert_frame_equal(a[t], b[t], obj=t)


@pytest.mark.slow
def test_dask_cluster_ingest_equals_local(cluster: str, local_case: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtcforensics.case",
            "ingest",
            *[str(sample_path(n)) for n in NAMES],
            "--case",
            str(tmp_path / "c"),
            "--scheduler",
            cluster,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    with open_case(tmp_path / "c") as case:
        workers = set(case.sql("select worker from manifest")["worker"])
    assert len(workers) >= 1 and all(":" in w for w in workers)  # host:pid of the dask worker that did it
    assert os.getpid() not in {int(w.rsplit(":", 1)[1]) for w in workers}  # not this process
    local = _snapshot(local_case)
    assert len(local["findings"]) > 0 and len(local["packets"]) > 0
    _assert_same(_snapshot(tmp_path / "c"), local)
    # the same captures again through the cluster: all skipped
    again = ingest([sample_path(n) for n in NAMES], tmp_path / "c", scheduler=cluster)
    assert again.rows == [] and len(again.skipped) == len(NAMES)


@pytest.mark.slow
def test_local_processes_equal_sequential(local_case: Path, tmp_path: Path) -> None:
    res = ingest([sample_path(n) for n in NAMES], tmp_path / "c", jobs=2)
    assert len(res.ok) == len(NAMES)
    assert len({r["worker"] for r in res.rows}) >= 1
    _assert_same(_snapshot(tmp_path / "c"), _snapshot(local_case))


def test_unreachable_scheduler_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from rtcforensics.case import ingestion as ingest_mod
    from rtcforensics.errors import RtcForensicsError

    monkeypatch.setattr(ingest_mod, "SCHEDULER_CONNECT_TIMEOUT_S", 2)
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RtcForensicsError, match=rf"tcp://127.0.0.1:{port}: cannot reach the Dask scheduler"):
        ingest([sample_path("turn_open_relay")], tmp_path / "c", scheduler=f"tcp://127.0.0.1:{port}")
    # nothing was ingested, and the case is not locked
    assert not list((tmp_path / "c" / "manifest").glob("*.parquet"))
    assert ingest([sample_path("turn_open_relay")], tmp_path / "c").ok
