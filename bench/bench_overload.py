"""Overload: answers per second, latency and memory when more clients upload than the service
takes, with the early refusal (`max_pending_uploads`) and without it, side by side.

Starts the real service (`python -m model_service`, embedded tagger, one torch thread) twice:
once with the default `max_pending_uploads` (16 uploads in progress; the rest get 503 before
their body is read) and once with `max_pending_uploads: 0` (every upload is read, decoded and
queued for the model). Against each, `k x 16` clients (k = 1, 2, 5) post a 10 s FLAC clip to
`/v1/classify` in a loop for `--seconds`, retrying a 503 after the `Retry-After` it names, as
a well-behaved client does; a third run has the clients send `Expect: 100-continue`, which the service
answers with 503 before the body is sent. Printed per run: answers per second (200s), refusals per second, p50/p99 of the
answered requests' latency, and the service's resident memory at its peak and after the run.

Usage: `python bench/bench_overload.py [--seconds 20] [--limit 16]`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
from pathlib import Path
import sys
import tempfile
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import numpy as np
import soundfile as sf

from devtools import synth
from devtools.harness import ServiceProcess

RATE = 16000


def _clip() -> bytes:
    """10 s of room noise with a smoke alarm, as FLAC (decoded by libsndfile)."""
    audio = synth.pink_noise(10.0, level_dbfs=-45.0, seed=3)
    audio[RATE * 2 : RATE * 7] += synth.smoke_alarm(5.0, level_dbfs=-20.0)
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), RATE, format="FLAC")
    return buf.getvalue()


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    until: float,
    out: dict[str, list],
    expect: bool,
) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            async with session.post(
                url, data=body, headers={"Content-Type": "audio/flac"}, expect100=expect
            ) as resp:
                await resp.read()
                if resp.status == 200:
                    out["ok"].append(time.monotonic() - started)
                elif resp.status == 503:
                    out["refused"].append(time.monotonic() - started)
                    # As the service asks (Retry-After), the way a well-behaved client retries.
                    await asyncio.sleep(min(5.0, float(resp.headers.get("Retry-After", 1))))
                else:
                    out["other"].append(resp.status)
        except (aiohttp.ClientError, TimeoutError) as err:
            out["other"].append(type(err).__name__)


async def _load(
    session: aiohttp.ClientSession,
    service: ServiceProcess,
    clients: int,
    seconds: float,
    body: bytes,
    expect: bool = False,
) -> tuple[float, float, float, float, int]:
    """(answers/s, refusals/s, p50, p99, errors) of `clients` uploading for `seconds`."""
    out: dict[str, list] = {"ok": [], "refused": [], "other": []}
    url = service.url + "/v1/classify"
    until = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(_client(session, url, body, until, out, expect) for _ in range(clients)))
    took = time.monotonic() - started
    lat = np.array(out["ok"] or [float("nan")])
    return (
        len(out["ok"]) / took,
        len(out["refused"]) / took,
        float(np.percentile(lat, 50)),
        float(np.percentile(lat, 99)),
        len(out["other"]),
    )


async def _run(limit: int, factors: list[int], seconds: float, body: bytes) -> list:
    """Both services up at once (the idle one costs nothing); loads alternate between them,
    so a slow moment of the machine does not favour one mode."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        services = {}
        for mode, value in (("early refusal", limit), ("read and queue all", 0)):
            folder = Path(tmp) / str(value)
            folder.mkdir()
            (folder / "service.yaml").write_text(f"max_pending_uploads: {value}\n")
            services[mode] = ServiceProcess(
                folder / "data",
                log_path=folder / "service.log",
                extra_args=["--config", str(folder / "service.yaml"), "--torch-threads", "1"],
                env={"OMP_NUM_THREADS": "1"},
            )
            await services[mode].start()
        try:
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=300)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                for service in services.values():
                    # Warm up: first calls load code paths.
                    await _load(session, service, 2, 2.0, body)
                runs = [
                    ("early refusal", services["early refusal"], False),
                    # Clients that send Expect: 100-continue are refused before their body.
                    ("early + Expect", services["early refusal"], True),
                    ("read and queue all", services["read and queue all"], False),
                ]
                for k in factors:
                    for mode, service, expect in runs:
                        assert service.proc is not None
                        result = await _load(session, service, k * limit, seconds, body, expect)
                        rows.append(
                            (
                                mode,
                                k,
                                *result[:4],
                                _status(service.proc.pid, "VmHWM"),
                                _status(service.proc.pid, "VmRSS"),
                                result[4],
                            )
                        )
                        await asyncio.sleep(2)
        finally:
            for service in services.values():
                await service.stop()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--limit", type=int, default=16)
    args = parser.parse_args()
    body = _clip()
    factors = [1, 2, 5]
    load = os.getloadavg()[0]
    print(
        f"/v1/classify, 10 s FLAC clip ({len(body) // 1024} KiB), embedded tagger, one torch "
        f"thread; {args.seconds:g} s per load; clients = k x {args.limit} (the in-progress "
        f"limit); load average {load:.1f}"
    )
    rows = await _run(args.limit, factors, args.seconds, body)
    print(
        f"{'mode':<20}{'k':>3}{'answers/s':>11}{'503/s':>8}{'p50 s':>8}{'p99 s':>8}"
        f"{'peak MiB':>10}{'after MiB':>10}{'errors':>8}"
    )
    order = ["early refusal", "early + Expect", "read and queue all"]
    for mode, k, ok, refused, p50, p99, peak, after, other in sorted(
        rows, key=lambda r: (order.index(r[0]), r[1])
    ):
        print(
            f"{mode:<20}{k:>3}{ok:>11.1f}{refused:>8.1f}{p50:>8.2f}{p99:>8.2f}"
            f"{peak:>10.0f}{after:>10.0f}{other:>8}"
        )
    by = {(r[0], r[1]): r for r in rows}
    for k in factors:
        early, asked, late = (by[(mode, k)] for mode in order)
        flat = " ".join(f"{by[(m, k)][2] / by[(m, 1)][2]:.2f}" for m in order)
        print(
            f"at {k}x: answers/s early / without {early[2] / late[2]:.2f}x "
            f"(with Expect {asked[2] / late[2]:.2f}x), p50 {late[4] / early[4]:.1f}x lower; "
            f"answers/s vs 1x (early, Expect, without): {flat}"
        )


if __name__ == "__main__":
    asyncio.run(main())
