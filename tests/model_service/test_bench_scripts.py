"""The GPU benchmark scripts run (tiny shapes, on this machine): a GPU run finds them working."""

from __future__ import annotations

from pathlib import Path
import sys

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
