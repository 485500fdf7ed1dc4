"""Live streams: the largest number of real-time push sources one service sustains.

Starts the real service (`python -m model_service`, builtin tagger) as a subprocess, then for
growing N opens N push sources over the WebSocket, each streaming a realistic 16 kHz scene in
real time (100 ms frames): mostly room noise, some speech, occasional smoke/CO alarms, bangs
and appliance beeps. One more connection subscribes to events, as Home Assistant does.

Two delays are measured for every event start that reaches the subscriber:

- service delay: from the moment the audio that decides the event had been pushed (the end of
  the analysis window at which the event logic fires, found by running the same audio through
  the tagger and `EventTracker` offline) to the event's arrival on the WebSocket. This is the
  delay the service adds: framing, queueing, batching, inference, storing, delivery.
- onset delay: from the sound's true onset in the pushed audio to the event's arrival. It also
  holds the detector's own latency, which for the builtin tagger's alarm patterns is seconds at
  any load (a T3 pattern is recognised only once enough of it was heard).

N is sustained when the 95th percentile of the service delay stays under 1 s and at least 95 %
of the expected events arrive. The search doubles N until it fails, then bisects; a failed N
is tried once more (`--retries`), because on a machine shared with other work a single CPU
spike can sink a run. The script prints the largest sustained N, the delay percentiles at
N = 1 and at that N, and the CPU the service process used (cores per 100 sources), which
carries over to other machines better than N does. The load average is printed with every
run: the figures mean little on a machine that is busy with something else.

The service runs with one torch thread (`--torch-threads 1`, OMP_NUM_THREADS): the builtin
tagger's speech model is tiny, and with one torch thread per core a busy 2-core machine
stalls batches for seconds in torch's thread barriers. `--torch-threads 0` measures torch's
default.

Usage: `python bench/bench_streams.py [--seconds 30] [--start 25] [--max 400]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import numpy as np

from devtools import synth
from devtools.harness import ServiceProcess
from devtools.scoring import frames_for_clip
from model_service.detection.events import EventTracker
from model_service.models.taggers import load_tagger

RATE = 16000
FRAME = 0.1  # seconds of audio per pushed frame (a satellite sends 20-100 ms)
REPO = Path(__file__).resolve().parents[1]


# -- scenes and what the tagger should find in them -----------------------------------------


@dataclass
class Expected:
    """An event start the service should report: when it is decided and when the sound began."""

    category: str
    decided: float  # audio seconds: end of the window at which the event logic fires
    onset: float  # audio seconds: the sound's true onset


@dataclass
class Scene:
    """One source's audio and the event starts expected in it."""

    audio: np.ndarray
    truth: list[tuple[str, float, float]]
    expected: list[Expected] = field(default_factory=list)


def eventful_scene(seconds: float, seed: int) -> Scene:
    """Room noise with one of everything, one after the other (the N = 1 source)."""
    rng = np.random.default_rng(seed)
    k = seconds / 30.0
    out = synth.pink_noise(seconds, level_dbfs=-50.0, seed=rng)
    out += synth.mains_hum(seconds, level_dbfs=-60.0, seed=rng)
    truth: list[tuple[str, float, float]] = []

    def place(clip: np.ndarray, at: float) -> None:
        a = round(at * RATE)
        b = min(out.size, a + clip.size)
        out[a:b] += clip[: b - a]

    place(synth.talker(4.0 * k, level_dbfs=-28.0, seed=rng), 2.0 * k)
    truth.append(("speech", 2.0 * k, 6.0 * k))
    place(synth.bang(1.0, at=0.0, peak_dbfs=-6.0, seed=rng), 8.0 * k)
    truth.append(("loud_noise", 8.0 * k, 8.0 * k + 0.1))
    kettle, beeps = synth.kettle_beep(2.0, start=0.0, level_dbfs=-26.0)
    place(kettle, 10.5 * k)
    truth.extend(("appliance_beep", 10.5 * k + a, 10.5 * k + b) for a, b in beeps)
    place(synth.smoke_alarm(10.0 * k, level_dbfs=-22.0), 14.0 * k)
    truth.append(("smoke_alarm", 14.0 * k, 24.0 * k))
    return Scene(np.clip(out, -1.0, 1.0).astype(np.float32), truth)


def make_scene(seconds: float, seed: int) -> Scene:
    """Room noise with, by chance, some speech, an alarm, a bang or kettle beeps."""
    rng = np.random.default_rng(seed)
    out = synth.pink_noise(seconds, level_dbfs=float(rng.uniform(-56, -46)), seed=rng)
    out += synth.mains_hum(seconds, level_dbfs=-60.0, seed=rng)
    truth: list[tuple[str, float, float]] = []

    def place(clip: np.ndarray, at: float) -> None:
        a = round(at * RATE)
        b = min(out.size, a + clip.size)
        out[a:b] += clip[: b - a]

    if rng.random() < 0.5:
        length = float(rng.uniform(3.0, 6.0))
        at = float(rng.uniform(1.0, seconds - length - 1.0))
        place(synth.talker(length, level_dbfs=-28.0, seed=rng), at)
        truth.append(("speech", at, at + length))
    if rng.random() < 0.35:
        length = 10.0
        at = float(rng.uniform(2.0, max(2.5, seconds - length - 4.0)))
        if rng.random() < 0.6:
            place(synth.smoke_alarm(length, level_dbfs=-22.0), at)
            truth.append(("smoke_alarm", at, at + length))
        else:
            place(synth.co_alarm(length, level_dbfs=-22.0), at)
            truth.append(("co_alarm", at, at + length))
    if rng.random() < 0.3:
        at = float(rng.uniform(1.0, seconds - 2.0))
        place(synth.bang(1.0, at=0.0, peak_dbfs=-6.0, seed=rng), at)
        truth.append(("loud_noise", at, at + 0.1))
    if rng.random() < 0.2:
        kettle, beeps = synth.kettle_beep(2.0, start=0.0, level_dbfs=-26.0)
        at = float(rng.uniform(1.0, seconds - 3.0))
        place(kettle, at)
        truth.extend(("appliance_beep", at + a, at + b) for a, b in beeps)
    return Scene(np.clip(out, -1.0, 1.0).astype(np.float32), sorted(truth, key=lambda t: t[1]))


def analyse_offline(tagger, scene: Scene, key: str) -> None:
    """The event starts the service will emit for this audio, and when it decides them."""
    frames = frames_for_clip(tagger, scene.audio, key)
    tracker = EventTracker(tagger.info.categories)
    for time_s, hop, level, det in frames:
        for update in tracker.update(time_s, hop, level, det):
            if update.kind != "start":
                continue
            onsets = [s for c, s, _ in scene.truth if c == update.event.category and s <= time_s]
            onset = max(onsets) if onsets else update.event.start
            scene.expected.append(Expected(update.event.category, time_s, onset))
    if hasattr(tagger, "forget"):
        tagger.forget(key)


# -- the service -------------------------------------------------------------------------------


@dataclass
class Trial:
    """What one run with N sources measured."""

    n: int
    service: list[float]
    onset: dict[str, list[float]]
    expected: int
    received: int
    client_lag: float
    mean_batch: float
    service_cores: float | None

    @property
    def p95(self) -> float:
        """95th percentile of the service delay (inf without data)."""
        return pct(self.service, 95)

    @property
    def ok(self) -> bool:
        """Sustained: p95 service delay under 1 s and 95 % of the events arrived."""
        return self.p95 < 1.0 and self.received >= 0.95 * self.expected


def pct(values: list[float], q: float) -> float:
    """Percentile, inf for no values."""
    return float(np.percentile(values, q)) if values else float("inf")


async def batch_stats(http: aiohttp.ClientSession, base: str) -> tuple[float, float]:
    """(sum, count) of the tagger's batch sizes so far, from /metrics."""
    text = await (await http.get(f"{base}/metrics")).text()
    total = re.search(r'midasheng_batch_size_sum\{model="tagger"\} (\S+)', text)
    count = re.search(r'midasheng_batch_size_count\{model="tagger"\} (\S+)', text)
    return (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process used so far; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_trial(
    base: str,
    n: int,
    scenes: list[Scene],
    seconds: float,
    trial_no: int,
    seed: int,
    pid: int | None = None,
) -> Trial:
    """Push N real-time sources for `seconds` and measure event delays."""
    rng = random.Random(seed + n)
    frames = round(seconds / FRAME)
    frame_bytes = round(FRAME * RATE) * 2
    stagger = min(2.0, 0.02 * n)  # sources join over up to 2 s, as real ones would
    timeout = aiohttp.ClientTimeout(total=None)
    # limit=0: one connection per source plus the subscriber (the default caps at 100).
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        ids = []
        for i in range(n):
            resp = await http.post(
                f"{base}/v1/sources", json={"name": f"bench {trial_no} {i}", "kind": "push"}
            )
            resp.raise_for_status()
            ids.append((await resp.json())["id"])
        index = {sid: i for i, sid in enumerate(ids)}
        which = [i % len(scenes) for i in range(n)]
        pcm = [(np.clip(s.audio, -1, 1) * 32767).astype("<i2").tobytes() for s in scenes]
        arrivals: list[list[tuple[str, float]]] = [[] for _ in range(n)]

        sub = await http.ws_connect(f"{base}/v1/ws", max_msg_size=0)
        await sub.send_json({"type": "subscribe"})
        while (await sub.receive_json())["type"] != "subscribed":
            pass

        async def listen() -> None:
            async for msg in sub:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic()
                data = msg.json()
                if data["type"] == "event" and data["event"]["end"] is None:
                    i = index.get(data["event"]["source"])
                    if i is not None:
                        arrivals[i].append((data["event"]["category"], now))

        listener = asyncio.create_task(listen())
        pushers = [await http.ws_connect(f"{base}/v1/ws") for _ in range(n)]
        batch_before = await batch_stats(http, base)

        start_tick = [round(rng.uniform(0, stagger) / FRAME) for _ in range(n)]
        sent_at = np.zeros((n, frames))
        begin = time.monotonic() + 0.5
        cpu_before = process_cpu_seconds(pid) if pid else None
        lag = 0.0
        for tick in range(frames + max(start_tick)):
            target = begin + tick * FRAME
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(lag, time.monotonic() - target)
            sends = []
            for i in range(n):
                k = tick - start_tick[i]
                if not 0 <= k < frames:
                    continue
                if k == 0:
                    await pushers[i].send_json(
                        {"type": "push_start", "source": ids[i], "rate": RATE}
                    )
                data = pcm[which[i]][k * frame_bytes : (k + 1) * frame_bytes]
                sends.append(pushers[i].send_bytes(data))
                sent_at[i, k] = time.monotonic()
            await asyncio.gather(*sends)
        pushed_for = time.monotonic() - begin
        cpu_after = process_cpu_seconds(pid) if pid else None
        for i in range(n):
            await pushers[i].send_json({"type": "push_stop", "source": ids[i]})
        await asyncio.sleep(3.0)  # events decided by the last windows
        batch_after = await batch_stats(http, base)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await sub.close()
        for ws in pushers:
            await ws.close()
        await asyncio.gather(*(http.delete(f"{base}/v1/sources/{sid}") for sid in ids))

    service: list[float] = []
    onset: dict[str, list[float]] = {}
    expected = received = 0
    for i in range(n):
        scene = scenes[which[i]]
        # Audio second s of source i was pushed in the frame ending at (k + 1) * FRAME.
        zero = begin + (start_tick[i] - 1) * FRAME
        pending = {
            c: [e for e in scene.expected if e.category == c]
            for c in {e.category for e in scene.expected}
        }
        counted = [e for e in scene.expected if e.decided <= seconds]
        expected += len(counted)
        for category, arrived in arrivals[i]:
            queue = pending.get(category)
            if not queue:
                continue  # not expected offline (should not happen: same windows, same logic)
            exp = queue.pop(0)
            if exp.decided > seconds:
                continue
            received += 1
            frame = min(frames - 1, max(0, int(np.ceil(exp.decided / FRAME - 1e-9)) - 1))
            service.append(arrived - sent_at[i, frame])
            onset.setdefault(category, []).append(arrived - (zero + exp.onset))
    mean_batch = (batch_after[0] - batch_before[0]) / max(1.0, batch_after[1] - batch_before[1])
    cores = None
    if cpu_before is not None and cpu_after is not None:
        cores = (cpu_after - cpu_before) / pushed_for
    return Trial(n, service, onset, expected, received, lag, mean_batch, cores)


def report(trial: Trial) -> str:
    """Lines of percentiles for one trial."""
    lines = [
        f"  N={trial.n}: events {trial.received}/{trial.expected}, mean batch {trial.mean_batch:.1f}, "
        f"client send lag max {trial.client_lag * 1000:.0f} ms"
        + (
            f", service CPU {trial.service_cores:.2f} cores"
            if trial.service_cores is not None
            else ""
        ),
        f"    service delay  p50 {pct(trial.service, 50):.3f} s  p95 {pct(trial.service, 95):.3f} s  "
        f"p99 {pct(trial.service, 99):.3f} s  max {max(trial.service, default=float('inf')):.3f} s",
    ]
    for category, values in sorted(trial.onset.items()):
        lines.append(
            f"    onset delay {category:<15} n={len(values):<4} p50 {pct(values, 50):.2f} s  "
            f"p95 {pct(values, 95):.2f} s"
        )
    return "\n".join(lines)


async def search(
    base: str, scenes: list[Scene], args: argparse.Namespace, pid: int | None = None
) -> None:
    """N = 1, then doubling from --start until a failure, then bisection."""
    trial_no = 0

    async def trial(n: int) -> Trial:
        nonlocal trial_no
        # On a machine shared with other work one CPU spike can sink a run: a failed N gets
        # --retries more tries, and every try is printed.
        for attempt in range(1 + args.retries):
            trial_no += 1
            result = await run_trial(base, n, scenes, args.seconds, trial_no, args.seed, pid)
            verdict = "sustained" if result.ok else "NOT sustained"
            cores = (
                f", service CPU {result.service_cores:.2f} cores" if result.service_cores else ""
            )
            print(
                f"N={n}{' (again)' if attempt else ''}: {verdict} (service delay p50 "
                f"{pct(result.service, 50):.3f} s, p95 {result.p95:.3f} s; "
                f"{result.received}/{result.expected} events{cores}; "
                f"load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            if result.ok:
                break
        return result

    one = await trial(1)
    best: Trial | None = one if one.ok else None
    low, high = (1 if one.ok else 0), None
    n = args.start
    while n <= args.max:
        result = await trial(n)
        if result.ok:
            best, low = result, n
            n *= 2
        else:
            high = n
            break
    if high is None:
        high = args.max + 1
    while high - low > max(5, low // 10):
        mid = (low + high) // 2
        result = await trial(mid)
        if result.ok:
            best, low = result, mid
        else:
            high = mid
    print()
    threads = args.torch_threads or "default"
    print(
        f"machine: {os.cpu_count()} CPU cores, load average before the run "
        f"{args.load_before:.1f}; builtin tagger, torch threads {threads}; "
        f"{args.seconds:.0f} s real-time per trial, {FRAME * 1000:.0f} ms frames, "
        f"realistic mix of {len(scenes)} scenes"
    )
    print("delays at N=1:")
    print(report(one))
    if best is not None:
        print(
            f"largest N sustained (p95 service delay < 1 s, >= 95 % events): {best.n}"
            + (" (limit of the search)" if high > args.max else "")
        )
        print(report(best))
        if best.service_cores:
            print(
                f"service CPU per 100 real-time sources: {100 * best.service_cores / best.n:.2f} "
                "cores (the client and other processes on the machine not counted)"
            )
    else:
        print("largest N sustained: none")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="real-time audio per trial")
    parser.add_argument("--start", type=int, default=25, help="first N after N=1")
    parser.add_argument("--max", type=int, default=400, help="largest N to try")
    parser.add_argument("--scenes", type=int, default=12, help="distinct scenes to cycle through")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--retries", type=int, default=1, help="extra tries for a failed N")
    parser.add_argument("--service-arg", action="append", default=[], help="extra service flag")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for the service (0: torch's default, one per core). The builtin "
        "tagger's VAD is tiny; with a thread per core on a busy 2-core machine torch's "
        "thread barriers stall batches for seconds, with 1 thread they take milliseconds",
    )
    # scripts/bench hands every benchmark the same extra flags (e.g. --device for the model
    # benchmarks); this one always measures the builtin tagger and ignores them.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring flags meant for other benchmarks: {' '.join(unknown)}", flush=True)

    args.load_before = os.getloadavg()[0]
    print("building scenes and their expected events offline...", flush=True)
    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    tagger = load_tagger("builtin")
    scenes = [eventful_scene(args.seconds, args.seed * 1000)]
    scenes += [make_scene(args.seconds, args.seed * 1000 + i) for i in range(1, args.scenes)]
    for i, scene in enumerate(scenes):
        analyse_offline(tagger, scene, f"offline-{i}")
    tagger.close()
    kinds = sorted({c for s in scenes for c, *_ in s.truth})
    print(
        f"  {sum(len(s.expected) for s in scenes)} expected event starts in "
        f"{len(scenes)} scenes ({', '.join(kinds)})",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="bench-streams-") as data_dir:
        asyncio.run(_run_search(Path(data_dir), scenes, args))
    return 0


async def _run_search(data_dir: Path, scenes: list[Scene], args: argparse.Namespace) -> None:
    """The live service as a real process (the harness's), searched for its capacity."""
    threads = {"OMP_NUM_THREADS": str(args.torch_threads)} if args.torch_threads > 0 else {}
    service = ServiceProcess(
        data_dir / "data",
        extra_args=["--tagger", "builtin", *args.service_arg],
        env=threads,
        log_path=data_dir / "service.log",
    )
    await service.start()
    try:
        assert service.proc is not None
        await search(service.url, scenes, args, service.proc.pid)
    finally:
        await service.stop()


if __name__ == "__main__":
    sys.exit(main())
