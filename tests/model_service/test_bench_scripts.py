"""The benchmark scripts run (tiny shapes, on this machine): a GPU run or a benchmark session
finds them working."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_decoders


def test_decoder_benchmark_runs_batched_and_one_at_a_time() -> None:
    """Both decoder families generate, batched and one at a time, and the table says so."""
    lines = bench_decoders.main(
        [
            "--smoke",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--batches",
            "1,2",
            "--new-tokens",
            "3",
        ]
    )
    rows = [line for line in lines if line.startswith("| smoke")]
    assert [row.split("|")[1].strip() for row in rows] == ["smoke qwen3"] * 2 + ["smoke qwen2"] * 2
    assert all(float(row.split("|")[3]) > 0 for row in rows)


BENCH = Path(__file__).resolve().parents[2] / "bench"
# Each benchmark at toy sizes: the script runs end to end (its equivalence check included),
# so a change to the service cannot leave a benchmark broken until someone runs it.
SMALL_RUNS = {
    "bench_builtin.py": ["--seconds", "6", "--streams", "2", "--repeat", "1"],
    "bench_tagger.py": ["--clips", "4", "--rounds", "1", "--hidden", "32", "--layers", "1"],
    "bench_lm.py": [
        *("--batch", "2", "--rounds", "1", "--max-new-tokens", "4"),
        *("--hidden", "32", "--layers", "1"),
    ],
    "bench_ced.py": ["--sizes", "tiny", "--windows", "8", "--rounds", "1"],
    "bench_streams.py": ["--seconds", "3", "--max", "1", "--scenes", "1", "--retries", "0"],
    "bench_stt.py": ["--voices", "en-us"],
    "bench_overload.py": ["--seconds", "2", "--limit", "2"],
}


@pytest.mark.parametrize("script", sorted(SMALL_RUNS))
def test_benchmark_runs_at_toy_size(script: str) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH / script), *SMALL_RUNS[script]],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
