"""Hostile uploads against a real service process: memory stays bounded by the 16 kHz
output, whatever rate and length a small file unpacks to."""

from __future__ import annotations

from pathlib import Path
import time

import aiohttp
import numpy as np
import soundfile as sf

from devtools.harness import ServiceProcess

from .conftest import peak_rss_mb

RATE = 384_000


def silent_flac(path: Path, seconds: int, rate: int = RATE) -> Path:
    """A FLAC of digital silence: a few hundred KB that decode to `seconds` at `rate`."""
    block = np.zeros(rate * 10, dtype=np.float32)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, format="FLAC") as out:
        for _ in range(seconds // 10):
            out.write(block)
    return path


async def test_decompression_bomb_memory_is_bounded(
    service: ServiceProcess, tmp_path: Path
) -> None:
    """Ten minutes at 384 kHz (230 M samples, 0.9 GB as float32 at its own rate) in a file of
    ~100 KB is decoded and classified with the service's peak memory growing by what the
    16 kHz output needs, not by the source rate."""
    bomb = silent_flac(tmp_path / "bomb.flac", 600)
    size = bomb.stat().st_size
    assert service.proc is not None
    pid = service.proc.pid
    async with aiohttp.ClientSession() as session:
        warm = tmp_path / "warm.flac"
        silent_flac(warm, 10, 16000)
        async with session.post(
            f"{service.url}/v1/classify",
            data=warm.read_bytes(),
            headers={"Content-Type": "audio/flac"},
        ) as resp:
            assert resp.status == 200, await resp.text()
        before = peak_rss_mb(pid)
        started = time.monotonic()
        async with session.post(
            f"{service.url}/v1/classify",
            data=bomb.read_bytes(),
            headers={"Content-Type": "audio/flac"},
            timeout=aiohttp.ClientTimeout(total=300),
        ) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        took = time.monotonic() - started
    growth = peak_rss_mb(pid) - before
    print(
        f"{size / 1024:.0f} KB FLAC, 600 s at 384 kHz: peak memory +{growth:.0f} MiB, "
        f"answered in {took:.1f} s"
    )
    assert body["duration"] == 600.0
    assert body["events"] == []
    # The 16 kHz output is 37 MiB; decoding at the source rate first held 0.9 GB and more.
    assert growth < 300, growth


def _vm_data_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmData")


async def test_bomb_under_a_memory_limit(service: ServiceProcess, tmp_path: Path) -> None:
    """The same bomb, with the service under a hard memory limit (RLIMIT_DATA, which covers
    its heap and anonymous mappings) of what it uses idle plus 768 MiB: decoding at the source
    rate needed about 1.8 GB more and could not finish; now the answer comes and the service
    stays up."""
    assert service.proc is not None
    baseline = _vm_data_mb(service.proc.pid)
    await service.stop()
    limit_kb = int((baseline + 768) * 1024)
    wrapper = tmp_path / "limited-python"
    wrapper.write_text(f'#!/bin/sh\nulimit -d {limit_kb}\nexec "{service.python}" "$@"\n')
    wrapper.chmod(0o755)
    limited = ServiceProcess(
        tmp_path / "limited-data", log_path=tmp_path / "limited.log", python=wrapper
    )
    await limited.start()
    try:
        assert limited.proc is not None
        pid = limited.proc.pid
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert str(limit_kb * 1024) in limits, limits
        bomb = silent_flac(tmp_path / "bomb.flac", 600)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{limited.url}/v1/classify",
                data=bomb.read_bytes(),
                headers={"Content-Type": "audio/flac"},
                timeout=aiohttp.ClientTimeout(total=300),
            ) as resp:
                body = await resp.json()
            assert resp.status == 200, (body, limited.log_tail())
            assert body["duration"] == 600.0
            async with session.get(f"{limited.url}/v1/health") as resp:
                assert resp.status == 200
        print(
            f"bomb under RLIMIT_DATA of {limit_kb / 1024:.0f} MiB (idle {baseline:.0f} MiB): "
            f"answered, peak resident {peak_rss_mb(pid):.0f} MiB"
        )
    finally:
        await limited.stop()
