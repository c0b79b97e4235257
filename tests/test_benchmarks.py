"""A smoke run of ``benchmarks/run.py --smoke``: every metric it runs still yields numbers.

Not a speed test (nothing here compares a time with anything): it keeps the
benchmarks alive, so that a change to the package that breaks one fails here
and not months later in a full run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
#: The metrics of a smoke run (seconds each; "firstcell" restarts kernels and starts a second server,
#: so it is left to real runs) -> their keys in the results.
METRICS = {
    "latency": "latency",
    "throughput": "throughput",
    "resources": "resources",
    "api": "api",
    "framerate": "frame_rates",
}


def _leaves(value: object, key: str = "") -> list[tuple[str, object]]:
    """Every ``(key, value)`` leaf of a result, numbers and None alike."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, k)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v, key)]
    return [(key, value)]


def test_each_metric_of_a_smoke_run_yields_numbers(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--smoke",
            "--only",
            ",".join(METRICS),
            "--out",
            tmp_path,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["errors"] == [], results["errors"]
    for metric, key in METRICS.items():
        leaves = _leaves(results.get(key))
        numbers = [v for _, v in leaves if isinstance(v, (int, float)) and not isinstance(v, bool)]
        assert numbers, f"{metric}: no number at all in {results.get(key)!r}"[:2000]
        assert all(math.isfinite(v) for v in numbers), f"{metric}: {leaves}"[:2000]
        # A summary of no sample (n = 0, no median) means its samples were all lost.
        empty = [k for k, v in leaves if k == "n" and v == 0]
        assert not empty, f"{metric}: a summary has no sample in {results.get(key)!r}"[:2000]
    # Every desktop of the run filled its rows: the route on XFCE and on the light WM, the comm transport.
    for key in ("latency", "throughput"):
        assert set(results[key]) == {"ours_xfce", "ours_wm", "ours_wm_comm"}, results[key].keys()
    assert set(results["resources"]) == {"ours_xfce", "ours_wm"}
    assert (tmp_path / "latest.md").read_text().strip()


def test_a_metric_that_was_folded_into_others_names_them():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "transport"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "latency,throughput" in done.stderr
