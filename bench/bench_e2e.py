"""End to end: onset-to-state delay and how many sources one service sustains with Home Assistant.

Starts the real model service (builtin tagger) and a real Home Assistant with the integration,
both as child processes on loopback, through the end-to-end harness (`tests/e2e/harness.py`):
onboarding and the config flow go through Home Assistant's REST API as the frontend does them,
and every source is a push source that the integration turns into a device. Audio is pushed in
real time (100 ms chunks) with the harness's `LivePusher`: room noise on a loop, and scripted
sounds (a loud bang, speech, a smoke alarm) played into the running stream.

Measured side by side, for the same sounds in the same run:

- onset -> service: from the moment the chunk holding a sound's first sample left for the
  service to the arrival of the service's event message on a `/v1/ws` subscriber;
- onset -> Home Assistant: to the `last_changed` of the source's binary sensor turning on, as
  a `state_changed` event on Home Assistant's WebSocket API shows it;
- added by Home Assistant: the difference of the two (integration, state machine);
- service delay: from the moment the audio that decides the event had been pushed (the end of
  the analysis window at which the event logic fires, found by running the same audio through
  the tagger offline in the service's environment, as bench_streams.py does) to the event
  message. Onset delays also hold the detector's own latency, seconds for an alarm pattern at
  any load; the service delay is what load adds;
- Home Assistant's responsiveness: round trips of WebSocket `ping` and `GET /api/`, every
  250 ms on their own connection, with N sources streaming against Home Assistant idle (the
  integration loaded, no audio), as a ratio.

N = 1 plays the three sounds one after the other; then N grows (10, 25, 50, 100 by default,
bounded by `--max` and by `--budget` seconds for the growing part), every source streaming in
real time through the integration and playing one sound per step. N is sustained when the
service delay p95 stays under 1 s, at least 95 % of the expected binary sensor changes arrive
in Home Assistant and its ping p95 stays under 250 ms. A failed N is tried once more when the
budget allows (a busy shared machine can sink one try), and the growth stops at a second
failure. The load average and the CPU used by the service, Home Assistant and this client are
printed with every step: on a small machine the client's pushing competes with both.

Exits non-zero only when the benchmark cannot run (a process does not start, the integration
cannot be set up); missed targets are reported, not failed. Every child runs in its own
process group and is stopped on exit, on Ctrl-C and on SIGTERM.

Usage: `.venv-svc/bin/python bench/bench_e2e.py [--max 200] [--budget 240] [--steps 1,10,25]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import numpy as np

from devtools import synth
from devtools.harness import (
    DOMAIN,
    RATE,
    SERVICE_PYTHON,
    HarnessError,
    HomeAssistantClient,
    HomeAssistantProcess,
    HomeAssistantWebSocket,
    LivePusher,
    ServiceClient,
    ServiceEventWatcher,
    ServiceProcess,
    parse_time,
    percentile,
    tail,
    to_pcm16,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 0.1  # seconds of audio per pushed chunk
NOISE_DBFS = -52.0
KINDS = ("loud_noise", "speech", "smoke_alarm")  # the sound played, by its category
PING_LIMIT = 0.25
SERVICE_LIMIT = 1.0
ARRIVED_LIMIT = 0.95
PROBE_INTERVAL = 0.25
IDLE_SECONDS = 6.0
WARMUP_SECONDS = 2.0  # room noise a source streams before its first sound
GAP_SECONDS = 2.0  # room noise between two sounds of one source
GRACE_SECONDS = 12.0  # after the last onset, for the slowest detection to reach HA

# Runs under the service's environment (torch, the tagger): for each sound and each phase of
# its onset against the tagger's hop grid, the audio seconds from the onset to the window end
# at which the event logic starts the event (None: not detected).
OFFLINE = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from model_service.detection.events import EventTracker
from model_service.models.taggers import load_tagger
from devtools.scoring import frames_for_clip

data = np.load(sys.argv[2])
chunk = float(sys.argv[3])
room = data["room"].astype(np.float32) / 32767.0
tagger = load_tagger("builtin")
hop = tagger.info.hop_seconds
phases = max(1, round(hop / chunk))
table = {}
for kind in data.files:
    if kind == "room":
        continue
    clip = data[kind].astype(np.float32) / 32767.0
    decided = []
    for phase in range(phases):
        pre = round((12 * hop + phase * chunk) * 16000)
        audio = np.concatenate([room[:pre], clip, room[: 4 * 16000]])
        key = f"offline-{kind}-{phase}"
        tracker = EventTracker(tagger.info.categories)
        found = None
        for t, span, level, det in frames_for_clip(tagger, audio, key):
            for update in tracker.update(t, span, level, det):
                if (found is None and update.kind == "start"
                        and update.event.category == kind and t > pre / 16000):
                    found = t - pre / 16000
        if hasattr(tagger, "forget"):
            tagger.forget(key)
        decided.append(found)
    table[kind] = decided
tagger.close()
print(json.dumps({"hop": hop, "table": table}))
"""


# -- the sounds ------------------------------------------------------------------------------


def room_noise(seconds: float = 10.0) -> np.ndarray:
    """Quiet room noise, what every source loops between sounds."""
    return synth.pink_noise(seconds, level_dbfs=NOISE_DBFS, seed=7)


def sound_clip(kind: str) -> np.ndarray:
    """A sound starting at the clip's first sample, over room noise (what the e2e tests play)."""
    if kind == "loud_noise":
        sound = synth.bang(1.0, at=0.0, peak_dbfs=-4.0, seed=3)
    elif kind == "speech":
        sound = synth.talker(3.0, level_dbfs=-28.0, seed=5)
    else:
        sound = synth.smoke_alarm(5.0, level_dbfs=-18.0)
    out = synth.pink_noise(sound.size / RATE + 0.5, level_dbfs=NOISE_DBFS, seed=11)
    out[: sound.size] += sound
    return out


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Sound:
    """One sound played into a source, and when each side saw it (wall-clock seconds)."""

    source: str
    category: str
    onset: float  # the chunk holding the first sample left
    index: int  # that chunk's index in the pusher's stream
    decided_after: float | None  # audio seconds from onset to the deciding window's end
    grid_ok: bool  # the pusher is on its first connection (the hop grid starts at chunk 0)
    decisive: float | None = None  # the chunk completing the deciding window left
    svc: float | None = None  # the service's event message reached the subscriber
    ha: float | None = None  # last_changed of the binary sensor turning on
    seen: float | None = None  # that state_changed reached a Home Assistant WebSocket client

    @property
    def expected(self) -> bool:
        """Whether the offline analysis says the service detects it."""
        return self.decided_after is not None


def pct(values: list[float], q: float) -> float:
    """Percentile, nan for no values."""
    return percentile(values, q) if values else float("nan")


@dataclass
class Step:
    """What one step with N sources measured."""

    n: int
    sounds: list[Sound]
    pings: list[float]
    api: list[float]
    send_lag: float
    cores: dict[str, float | None]
    load: float
    ready_s: float
    reconnects: int
    note: str = ""

    @property
    def expected(self) -> list[Sound]:
        """The sounds the service should detect."""
        return [s for s in self.sounds if s.expected]

    @property
    def service_delay(self) -> list[float]:
        """Deciding audio pushed -> event message."""
        return [s.svc - s.decisive for s in self.expected if s.svc and s.decisive]

    @property
    def onset_svc(self) -> list[float]:
        """Onset -> event message on the service's WebSocket."""
        return [s.svc - s.onset for s in self.expected if s.svc]

    @property
    def onset_ha(self) -> list[float]:
        """Onset -> binary sensor on in Home Assistant."""
        return [s.ha - s.onset for s in self.expected if s.ha]

    @property
    def added(self) -> list[float]:
        """Event message on the service's WebSocket -> binary sensor on in Home Assistant."""
        return [s.ha - s.svc for s in self.expected if s.ha and s.svc]

    @property
    def delivered(self) -> list[float]:
        """Event message on the service's WebSocket -> state_changed on HA's WebSocket."""
        return [s.seen - s.svc for s in self.expected if s.seen and s.svc]

    @property
    def in_svc(self) -> int:
        """Expected sounds the service reported."""
        return sum(1 for s in self.expected if s.svc)

    @property
    def in_ha(self) -> int:
        """Expected sounds that turned their binary sensor on."""
        return sum(1 for s in self.expected if s.ha)

    @property
    def ok(self) -> bool:
        """Sustained: service delay p95 < 1 s, >= 95 % in HA, HA ping p95 < 250 ms."""
        delays, expected = self.service_delay, len(self.expected)
        return (
            not self.note
            and bool(delays)
            and bool(self.pings)
            and percentile(delays, 95) < SERVICE_LIMIT
            and self.in_ha >= ARRIVED_LIMIT * expected
            and percentile(self.pings, 95) < PING_LIMIT
        )


class PingSocket(HomeAssistantWebSocket):
    """Home Assistant's WebSocket API with `ping` (answered by a `pong`, not a result)."""

    def __init__(self, client: HomeAssistantClient) -> None:
        """Bound to an authenticated REST client."""
        super().__init__(client)
        self._pongs: dict[int, asyncio.Future[float]] = {}

    def _dispatch(self, item: dict[str, Any]) -> None:
        if item.get("type") == "pong":
            future = self._pongs.pop(item.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(time.perf_counter())
            return
        super()._dispatch(item)

    async def ping(self, limit: float) -> float:
        """One round trip in seconds (`limit` when no pong came within it)."""
        assert self.ws is not None
        msg_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pongs[msg_id] = future
        sent = time.perf_counter()
        await self.ws.send_json({"id": msg_id, "type": "ping"})
        try:
            async with asyncio.timeout(limit):
                return await future - sent
        except TimeoutError:
            self._pongs.pop(msg_id, None)
            return limit


class Prober:
    """Pings Home Assistant (WebSocket `ping`, then `GET /api/`) every 250 ms."""

    def __init__(self, ha: HomeAssistantClient, ws: PingSocket) -> None:
        """Probe through `ws` and `ha`."""
        self.ha = ha
        self.ws = ws
        self.pings: list[tuple[float, float]] = []
        self.api: list[tuple[float, float]] = []

    async def run(self) -> None:
        """Probe until cancelled."""
        while True:
            due = time.monotonic() + PROBE_INTERVAL
            self.pings.append((time.time(), await self.ws.ping(5.0)))
            started = time.perf_counter()
            try:
                async with asyncio.timeout(5.0):
                    await self.ha.request("GET", "/api/")
                rtt = time.perf_counter() - started
            except (TimeoutError, HarnessError, aiohttp.ClientError):
                rtt = 5.0
            self.api.append((time.time(), rtt))
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    def window(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Ping and /api/ round trips probed between two wall times."""
        return (
            [v for t, v in self.pings if start <= t <= end],
            [v for t, v in self.api if start <= t <= end],
        )


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) of a process so far; None where /proc is not there."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Bench:
    """The running stack and what the steps share."""

    args: argparse.Namespace
    service: ServiceProcess
    hass: HomeAssistantProcess
    ha: HomeAssistantClient
    svc: ServiceClient
    token: str
    service_id: str
    ws: HomeAssistantWebSocket
    watcher: ServiceEventWatcher
    prober: Prober
    room: bytes
    clips: dict[str, bytes]
    decided: dict[str, list[float | None]]
    sources: list[str] = field(default_factory=list)
    pushers: dict[str, LivePusher] = field(default_factory=dict)
    sensors: dict[tuple[str, str], str] = field(default_factory=dict)
    on_times: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    async def collect_states(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Note every binary sensor turning on (its last_changed)."""
        while True:
            event = await queue.get()
            data = event.get("data") or {}
            new = data.get("new_state") or {}
            entity_id = data.get("entity_id") or ""
            if new.get("state") == "on" and entity_id.startswith("binary_sensor."):
                changed = parse_time(new["last_changed"])
                self.on_times.setdefault(entity_id, []).append((changed, event["_received"]))

    async def find_sensors(self, sources: list[str]) -> bool:
        """Map (source, category) to the binary sensor's entity id; True once all exist."""
        prefix = f"{self.service_id}_"
        wanted = set(sources)
        for entry in await self.ws.entity_registry():
            unique_id = entry.get("unique_id") or ""
            if entry.get("platform") != DOMAIN or not unique_id.startswith(prefix):
                continue
            rest = unique_id[len(prefix) :]
            for category in KINDS:
                source = rest[: -len(category) - 1]
                if rest.endswith("_" + category) and source in wanted:
                    self.sensors[(source, category)] = entry["entity_id"]
        return all((s, c) in self.sensors for s in sources for c in KINDS)

    async def sensors_off(self, sources: list[str]) -> bool:
        """Whether every binary sensor of these sources is available and off."""
        wanted = {self.sensors[(s, c)] for s in sources for c in KINDS}
        states = {item["entity_id"]: item["state"] for item in await self.ws.get_states()}
        return all(states.get(entity_id) == "off" for entity_id in wanted)

    async def grow(self, n: int, limit: float) -> float:
        """Add push sources up to n, start their pushers; seconds until their devices are ready."""
        started = time.monotonic()
        new: list[str] = []
        for i in range(len(self.sources), n):
            body = {"name": f"Bench {i + 1}", "kind": "push"}
            source = await self.svc.request("POST", "/v1/sources", json_body=body)
            new.append(source["id"])
            pusher = LivePusher(self.service.url, self.token, source["id"], self.room, loop=True)
            self.pushers[source["id"]] = pusher
            pusher.start()
            await asyncio.sleep(0.01)  # real sources do not all connect in the same instant
        self.sources.extend(new)
        await wait_for(
            lambda: self.find_sensors(new),
            f"the binary sensors of {len(new)} new sources in Home Assistant",
            timeout=limit,
            interval=1.0,
        )
        await wait_for(
            lambda: self.sensors_off(new),
            f"the binary sensors of {len(new)} new sources to be off",
            timeout=limit,
            interval=1.0,
        )
        ready = time.monotonic() - started
        await asyncio.gather(
            *(self.pushers[s].wait_streaming(WARMUP_SECONDS, timeout=limit) for s in new)
        )
        return ready

    async def play(self, source: str, kinds: list[str], delay: float) -> list[Sound]:
        """Play sounds into a running source one after the other, after `delay` seconds."""
        pusher = self.pushers[source]
        await asyncio.sleep(delay)
        played = []
        phases = len(next(iter(self.decided.values())))
        for kind in kinds:
            clip = self.clips[kind]
            try:
                onset = await asyncio.wait_for(pusher.play(clip), 30.0)
            except TimeoutError:
                continue  # the pusher lost its connection and never got to play it
            index = max(pusher.sent_at)
            while index > 0 and pusher.sent_at.get(index) != onset:
                index -= 1
            played.append(
                Sound(
                    source=source,
                    category=kind,
                    onset=onset,
                    index=index,
                    decided_after=self.decided[kind][index % phases],
                    grid_ok=pusher.connects == 1,
                )
            )
            await asyncio.sleep(len(clip) / 2 / RATE + GAP_SECONDS)
        return played

    def match(self, sound: Sound) -> None:
        """Find the service's event and Home Assistant's state change for a sound."""
        after = sound.onset - CHUNK
        if sound.svc is None:
            sound.svc = self.watcher.first_start(sound.source, sound.category, after)
        if sound.ha is None:
            entity_id = self.sensors.get((sound.source, sound.category))
            times = [t for t in self.on_times.get(entity_id or "", []) if t[0] >= after]
            if times:
                sound.ha, sound.seen = min(times)
        if sound.decisive is None and sound.grid_ok and sound.decided_after is not None:
            last = sound.index + round(sound.decided_after / CHUNK) - 1
            sound.decisive = self.pushers[sound.source].sent_at.get(last)

    async def step(self, n: int, step_no: int) -> Step:
        """Grow to n sources, play a sound into each, and measure."""
        try:
            ready = await self.grow(n, limit=max(60.0, 1.0 * n))
        except HarnessError as err:
            if n == 1:
                raise
            return Step(n, [], [], [], 0.0, {}, os.getloadavg()[0], 0.0, 0, note=str(err))
        for proc in (self.service, self.hass):
            proc.check_alive()
        rng = random.Random(self.args.seed + n + step_no)
        spread = min(8.0, 0.08 * n)
        pids = {"svc": self.service.proc, "HA": self.hass.proc}
        cpu_before = {k: cpu_seconds(p.pid if p else None) for k, p in pids.items()}
        own_before = sum(os.times()[:2])
        wall_before = time.time()
        tasks = []
        for i, source in enumerate(self.sources):
            kinds = list(KINDS) if n == 1 else [KINDS[(i + step_no) % len(KINDS)]]
            tasks.append(self.play(source, kinds, rng.uniform(0.0, spread)))
        sounds = [s for played in await asyncio.gather(*tasks) for s in played]
        deadline = time.monotonic() + max(
            0.0, max(s.onset for s in sounds) + GRACE_SECONDS - time.time()
        )
        while True:
            for sound in sounds:
                self.match(sound)
            done = all(
                s.svc and s.ha and (s.decisive or not s.grid_ok) for s in sounds if s.expected
            )
            if done or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.25)
        wall_after = time.time()
        span = wall_after - wall_before
        cores: dict[str, float | None] = {}
        for key, proc in pids.items():
            after = cpu_seconds(proc.pid if proc else None)
            before = cpu_before[key]
            cores[key] = None if after is None or before is None else (after - before) / span
        cores["bench"] = (sum(os.times()[:2]) - own_before) / span
        pings, api = self.prober.window(wall_before, wall_after)
        lag = 0.0
        for pusher in self.pushers.values():
            first = int((wall_before - pusher.started_wall) / CHUNK)
            last = int((wall_after - pusher.started_wall) / CHUNK)
            for index in range(max(0, first), last):
                sent = pusher.sent_at.get(index)
                if sent is not None:
                    lag = max(lag, sent - (pusher.started_wall + index * CHUNK))
        reconnects = sum(p.connects - 1 for p in self.pushers.values())
        return Step(n, sounds, pings, api, lag, cores, os.getloadavg()[0], ready, reconnects)


def f2(value: float) -> str:
    """Seconds with two decimals, '-' for nan."""
    return "-" if value != value else f"{value:.2f}"


def ms(value: float) -> str:
    """Milliseconds, '-' for nan."""
    return "-" if value != value else f"{value * 1000:.0f}"


def summary(step: Step, idle_ping: float, idle_api: float) -> str:
    """One progress line for a step."""
    if step.note:
        return f"N={step.n}: NOT sustained ({step.note}; load average {step.load:.1f})"
    cores = ", ".join(f"{k} {v:.2f}" for k, v in step.cores.items() if v is not None)
    ping95, api95 = pct(step.pings, 95), pct(step.api, 95)
    return (
        f"N={step.n}: {'sustained' if step.ok else 'NOT sustained'} (service delay p95 "
        f"{f2(pct(step.service_delay, 95))} s; onset->HA state p50 {f2(pct(step.onset_ha, 50))} "
        f"s, p95 {f2(pct(step.onset_ha, 95))} s; added by HA p95 {ms(pct(step.added, 95))} ms, "
        f"to a HA WebSocket client p95 {ms(pct(step.delivered, 95))} ms; "
        f"{step.in_svc}/{len(step.expected)} events, {step.in_ha}/{len(step.expected)} states; "
        f"HA ping p95 {ms(ping95)} ms (x{ping95 / idle_ping:.1f} idle), /api/ p95 {ms(api95)} ms "
        f"(x{api95 / idle_api:.1f}); CPU cores {cores}; devices ready in {step.ready_s:.1f} s; "
        f"send lag max {ms(step.send_lag)} ms; load average {step.load:.1f})"
    )


def table(steps: list[Step], idle_ping: float, idle_api: float) -> list[str]:
    """The compact table of every step."""
    head = (
        f"{'N':>4} {'sounds':>6} {'in svc':>6} {'in HA':>6} {'svc p95':>7} "
        f"{'on->svc p50/p95':>15} {'on->HA p50/p95':>15} {'HA adds ms':>10} {'to client ms':>12} "
        f"{'ping p95':>12} {'/api/ p95':>12} {'CPU svc/HA/bench':>16} {'load':>4}  verdict"
    )
    lines = [head]
    for s in steps:
        if s.note:
            lines.append(f"{s.n:>4} {'-':>6} {'':>115}{s.load:>4.1f}  not run: {s.note[:60]}")
            continue
        expected = len(s.expected)
        ping95, api95 = pct(s.pings, 95), pct(s.api, 95)
        cpu = "/".join("-" if v is None else f"{v:.2f}" for v in s.cores.values())
        lines.append(
            f"{s.n:>4} {expected:>6} {s.in_svc:>6} {s.in_ha:>6} "
            f"{f2(pct(s.service_delay, 95)):>7} "
            f"{f2(pct(s.onset_svc, 50)) + '/' + f2(pct(s.onset_svc, 95)):>15} "
            f"{f2(pct(s.onset_ha, 50)) + '/' + f2(pct(s.onset_ha, 95)):>15} "
            f"{ms(pct(s.added, 50)) + '/' + ms(pct(s.added, 95)):>10} "
            f"{ms(pct(s.delivered, 50)) + '/' + ms(pct(s.delivered, 95)):>12} "
            f"{f'{ms(ping95)} ms x{ping95 / idle_ping:.1f}':>12} "
            f"{f'{ms(api95)} ms x{api95 / idle_api:.1f}':>12} {cpu:>16} {s.load:>4.1f}  "
            f"{'sustained' if s.ok else 'NOT sustained'}"
        )
    return lines


async def offline_table(data_dir: Path, clips: dict[str, np.ndarray], room: np.ndarray) -> dict:
    """The deciding window of every sound at every hop phase, from the service's environment."""
    path = data_dir / "sounds.npz"
    arrays = {k: (np.clip(v, -1, 1) * 32767).astype("<i2") for k, v in clips.items()}
    arrays["room"] = (np.clip(room, -1, 1) * 32767).astype("<i2")
    np.savez(path, **arrays)
    proc = await asyncio.create_subprocess_exec(
        str(SERVICE_PYTHON), "-c", OFFLINE, str(ROOT), str(path), str(CHUNK),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if proc.returncode != 0:
        raise HarnessError(f"offline analysis failed: {err.decode(errors='replace')[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def run(args: argparse.Namespace, work: Path) -> int:
    """Start everything, run the steps, print the results; stop everything."""
    token = secrets.token_hex(16)
    service = ServiceProcess(
        work / "service-data", token=token, log_path=work / "service.log",
        extra_args=["--asr", "none", "--tagger", "builtin"],
    )  # fmt: skip
    hass = HomeAssistantProcess(work / "ha-config", log_path=work / "ha-console.log")
    room = room_noise()
    clip_audio = {kind: sound_clip(kind) for kind in KINDS}
    bench: Bench | None = None
    watcher: ServiceEventWatcher | None = None
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession() as session:
            offline, *_ = await asyncio.gather(
                offline_table(work, clip_audio, room), service.start(), hass.start()
            )
            ha = HomeAssistantClient(hass.url, session)
            await ha.onboard(name="Bench", username="bench", password=secrets.token_hex(12))
            await ha.wait_running()
            version = (await ha.config()).get("version", "?")
            svc = ServiceClient(service.url, session, token)
            service_id = (await svc.info())["id"]
            await ha.setup_integration(service.url, token)
            watcher = ServiceEventWatcher(service.url, token)
            await watcher.start()
            decided = dict(offline["table"])
            print(
                f"stack ready in {time.monotonic() - started:.0f} s (Home Assistant {version}); "
                "deciding window end after the onset, per hop phase: "
                + "; ".join(
                    f"{k} " + "/".join("-" if d is None else f"{d:.1f}" for d in v)
                    for k, v in decided.items()
                )
                + " s",
                flush=True,
            )
            async with ha.websocket() as ws:
                ping_ws = PingSocket(ha)
                await ping_ws.connect()
                prober = Prober(ha, ping_ws)
                bench = Bench(
                    args=args, service=service, hass=hass, ha=ha, svc=svc, token=token,
                    service_id=service_id, ws=ws, watcher=watcher, prober=prober,
                    room=to_pcm16(room),
                    clips={k: to_pcm16(v) for k, v in clip_audio.items()},
                    decided=decided,
                )  # fmt: skip
                changes = await ws.subscribe_events("state_changed")
                background = [
                    asyncio.create_task(bench.collect_states(changes)),
                    asyncio.create_task(prober.run()),
                ]
                try:
                    await asyncio.sleep(1.0)
                    idle_from = time.time()
                    await asyncio.sleep(IDLE_SECONDS)
                    idle_pings, idle_api = prober.window(idle_from, time.time())
                    idle_ping = pct(idle_pings, 95)
                    idle_api95 = pct(idle_api, 95)
                    print(
                        f"idle (integration loaded, no audio): HA ping p95 {ms(idle_ping)} ms, "
                        f"/api/ p95 {ms(idle_api95)} ms; load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
                    steps = await grow_steps(bench, args, idle_ping, idle_api95)
                finally:
                    for task in background:
                        task.cancel()
                    await asyncio.gather(*background, return_exceptions=True)
                    await stop_pushers(bench)
                    await ping_ws.close()
            report(args, steps, idle_ping, idle_api95, version)
    finally:
        await stop_pushers(bench)
        if watcher is not None:
            await watcher.stop()
        await asyncio.gather(hass.stop(), service.stop(), return_exceptions=True)
    return 0


async def stop_pushers(bench: Bench | None) -> None:
    """Stop every pusher (sending push_stop)."""
    if bench is not None:
        pushers = list(bench.pushers.values())
        bench.pushers.clear()
        await asyncio.gather(*(p.stop() for p in pushers), return_exceptions=True)


async def grow_steps(
    bench: Bench, args: argparse.Namespace, idle_ping: float, idle_api: float
) -> list[Step]:
    """N = 1, then the growing steps within the budget."""
    sizes = [n for n in args.steps if n <= args.max]
    began = time.monotonic()
    steps: list[Step] = []
    failures = 0
    step_no = 0
    last_duration = 0.0
    i = 0
    while i < len(sizes):
        n = sizes[i]
        left = args.budget - (time.monotonic() - began)
        # A step takes about as long as the last one plus the time to add its sources.
        estimate = max(20.0, last_duration) + 0.2 * max(0, n - len(bench.sources))
        if steps and left < estimate:
            print(f"N={n}: not run (time budget: {left:.0f} s left of --budget {args.budget:.0f})")
            break
        step_no += 1
        t0 = time.monotonic()
        step = await bench.step(n, step_no)
        last_duration = time.monotonic() - t0
        steps.append(step)
        print(summary(step, idle_ping, idle_api), flush=True)
        if step.ok:
            i += 1
            continue
        failures += 1
        if step.note or failures > 1:
            break
        # A failed N gets one more try (same sources, new sounds) before the growth stops.
    return steps


def report(
    args: argparse.Namespace, steps: list[Step], idle_ping: float, idle_api: float, version: str
) -> None:
    """The table, the largest sustained N and the ratios."""
    print()
    print(
        f"machine: {os.cpu_count()} CPU cores, load average before the run {args.load_before:.1f}"
        f", after {os.getloadavg()[0]:.1f}; service: builtin tagger, torch threads "
        f"{args.torch_threads or 'default'}; Home Assistant {version}; real-time push sources, "
        f"{CHUNK * 1000:.0f} ms chunks; CPU in cores over each step (svc, HA, this client)"
    )
    print(
        f"idle Home Assistant: ping p95 {ms(idle_ping)} ms, /api/ p95 {ms(idle_api)} ms. Columns:"
        " delays in s unless marked; svc p95 = service delay (deciding audio pushed -> event message);"
        " HA adds = event message -> binary sensor last_changed; to client = event message ->"
        " state_changed on HA's WebSocket; ping and /api/ round trips x idle"
    )
    for line in table(steps, idle_ping, idle_api):
        print(line)
    first = next((s for s in steps if s.n == 1 and not s.note), None)
    if first is not None:
        by_kind = []
        for kind in KINDS:
            values = [s.ha - s.onset for s in first.expected if s.category == kind and s.ha]
            svc = [s.svc - s.onset for s in first.expected if s.category == kind and s.svc]
            by_kind.append(f"{kind} {f2(pct(svc, 50))} -> {f2(pct(values, 50))}")
        print("N=1 onset -> service event -> HA state, per sound (s): " + ", ".join(by_kind))
    sustained = [s for s in steps if s.ok]
    best = max(sustained, key=lambda s: s.n) if sustained else None
    tried = max((s.n for s in steps), default=0)
    limit = " (the largest N tried)" if best is not None and best.n == tried else ""
    print(
        f"largest N sustained (service delay p95 < {SERVICE_LIMIT:.0f} s, >= "
        f"{ARRIVED_LIMIT:.0%} of state changes in HA, HA ping p95 < {PING_LIMIT * 1000:.0f} ms): "
        + (f"{best.n}{limit}" if best else "none")
    )
    for s in [x for x in (first, best) if x is not None and x.added]:
        share = pct(s.added, 50) / pct(s.onset_ha, 50) if s.onset_ha else float("nan")
        print(
            f"N={s.n}: delay added by Home Assistant p50 {ms(pct(s.added, 50))} ms, p95 "
            f"{ms(pct(s.added, 95))} ms ({share:.1%} of onset->state p50 "
            f"{f2(pct(s.onset_ha, 50))} s), to a WebSocket client p50 "
            f"{ms(pct(s.delivered, 50))} ms, p95 {ms(pct(s.delivered, 95))} ms; HA ping p95 x{pct(s.pings, 95) / idle_ping:.1f} "
            f"and /api/ p95 x{pct(s.api, 95) / idle_api:.1f} against idle"
        )


def parse_steps(text: str) -> list[int]:
    """`1,10,25` -> [1, 10, 25] (N = 1 always first)."""
    values = sorted({int(v) for v in text.split(",") if v.strip()} | {1})
    if values[0] < 1:
        raise argparse.ArgumentTypeError("N must be at least 1")
    return values


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless it could not run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=200, help="largest N to try")
    parser.add_argument(
        "--budget", type=float, default=240.0, help="seconds for the steps (startup not counted)"
    )
    parser.add_argument(
        "--steps", type=parse_steps, default=[1, 10, 25, 50, 100, 200], help="N to try, in order"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for the service (0: torch's default); see bench_streams.py",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and data")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring arguments meant for other benchmarks: {' '.join(unknown)}")
    args.load_before = os.getloadavg()[0]
    if args.torch_threads > 0:
        # Inherited by the service (and Home Assistant, where it changes nothing).
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
    os.environ.pop("MIDASHENG_TOKEN", None)

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    keep = args.keep
    status = 1
    try:
        status = asyncio.run(_main(args, work))
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        status = 130
    except Exception as err:
        keep = True
        detail = str(err) if isinstance(err, HarnessError) else repr(err)
        print(f"the benchmark could not run: {detail}", file=sys.stderr)
        if not isinstance(err, HarnessError):
            traceback.print_exc()
        for name in ("service.log", "ha-console.log", "ha-config/home-assistant.log"):
            text = tail(work / name, 30)
            if text:
                print(f"---- {name}:\n{text}", file=sys.stderr)
    finally:
        if keep:
            print(f"logs and data kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


async def _main(args: argparse.Namespace, work: Path) -> int:
    # SIGTERM stops the run as Ctrl-C does: the main task is cancelled and stops everything.
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await run(args, work)
    except asyncio.CancelledError:
        if terminated:
            print("terminated; every process stopped", file=sys.stderr)
            return 143
        raise


if __name__ == "__main__":
    sys.exit(main())
