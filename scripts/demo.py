"""Demo: the model service and a real Home Assistant hearing a synthesized household scene.

Starts the service on its embedded default (no downloads) and the newest Home Assistant on a
fresh copy of `config/` with the integration linked in; finishes onboarding with a demo user,
adds the integration through the config flow, creates the push source "Demo room" and plays
a household scene into it in real time, on a loop. Ctrl-C stops everything.

`--check` does the same headless and exits 0 only when Home Assistant showed the demo room's
smoke alarm binary sensor turning on, its sound level sensor has a value, the conversation
agent's answer to "what did you hear?" names the smoke alarm, the Assist pipeline and the
Wyoming integration work, and (with Chromium) the web UI shows the source's entities, the
config flow and the add-source flow with their German texts (`--browser` makes that part
required).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from pathlib import Path
import secrets
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import synth  # noqa: E402
from devtools.browser import BrowserError  # noqa: E402
from devtools.harness import (  # noqa: E402
    DOMAIN,
    HarnessError,
    HomeAssistantClient,
    HomeAssistantProcess,
    LivePusher,
    ServiceClient,
    ServiceProcess,
    free_port,
    tail,
    to_pcm16,
    wait_source_entities,
)
from devtools.ui_check import UICheckError, check_ui  # noqa: E402

WORK = ROOT / ".demo"
CREDENTIALS = WORK / "credentials.json"
SOURCE_NAME = "Demo room"
USERNAME = "demo"
QUESTION = "what did you hear?"
SHOWN = ("smoke_alarm", "co_alarm", "appliance_beep", "loud_noise", "speech", "last_sound")


class CheckFailedError(Exception):
    """The headless check found what it needed missing; the message is the reason."""


def credentials(*, keep: bool) -> dict[str, str]:
    """The demo user's password and the service token; with `keep`, made once under .demo/."""
    if keep:
        with contextlib.suppress(FileNotFoundError, ValueError):
            saved = json.loads(CREDENTIALS.read_text(encoding="utf-8"))
            if {"username", "password", "service_token"} <= saved.keys():
                return saved
    made = {
        "username": USERNAME,
        "password": secrets.token_urlsafe(9),
        "service_token": secrets.token_hex(16),
    }
    if keep:
        WORK.mkdir(exist_ok=True)
        CREDENTIALS.write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
        CREDENTIALS.chmod(0o600)
    return made


def shown(path: Path) -> str:
    """A path as the user should read it: relative to the repository when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


def say(message: str = "") -> None:
    """Print a line at once (the demo's output is its user interface)."""
    print(message, flush=True)


class Demo:
    """The two processes, the clients and the pusher of one demo run."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Working folders under .demo/, or a temporary one for --check.

        Under .demo/ Home Assistant's config and the service's data survive a restart (an
        open browser stays logged in, history and settings stay), unless `--fresh`. The check
        runs apart, always fresh, so `scripts/test` can run while a demo is open.
        """
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="midasheng-demo-check-")) if args.check else WORK
        self.creds = credentials(keep=not args.check)
        self.wyoming_port = free_port(WYOMING_PORT)
        kept = () if args.fresh else ("homeassistant", "service-data", "service-url")
        for name in (
            "homeassistant",
            "service-data",
            "service-url",
            "service.log",
            "homeassistant.console.log",
        ):
            path = self.work / name
            if name in kept:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.service = ServiceProcess(
            self.work / "service-data",
            token=self.creds["service_token"],
            log_path=self.work / "service.log",
            port=free_port(args.port),
            # The embedded recognizer (no download), so the Assist pipeline has our STT; the
            # same recognizer on a Wyoming port, for Home Assistant's own Wyoming integration.
            extra_args=["--asr", "pocketsphinx", "--wyoming-port", str(self.wyoming_port)],
        )
        self.hass = HomeAssistantProcess(
            self.work / "homeassistant",
            log_path=self.work / "homeassistant.console.log",
            port=free_port(args.ha_port),
            host=args.ha_host,
        )
        self.pusher: LivePusher | None = None
        self.entities: dict[str, str] = {}
        self.pipeline: dict[str, Any] = {}
        self.truth: list[tuple[str, float, float]] = []

    async def setup_integration(self, ha: HomeAssistantClient) -> None:
        """Add the integration, or keep the entry a previous run made when it still points
        at this service (a service that had to take another port is set up again)."""
        marker = self.work / "service-url"
        last_url = marker.read_text().strip() if marker.exists() else None
        for entry in await ha.config_entries(DOMAIN):
            if entry.get("state") == "loaded" and last_url == self.service.url:
                say("the integration is already set up (kept from the last run)")
                return
            await ha.request(
                "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}", ok=(200,)
            )
        await ha.setup_integration(self.service.url, self.creds["service_token"])
        marker.write_text(self.service.url + "\n")

    async def start(self, session: aiohttp.ClientSession) -> HomeAssistantClient:
        """Start both, onboard, add the integration, create the source and start playing."""
        say(f"starting the model service (builtin tagger, no downloads) on {self.service.url}")
        say(f"starting Home Assistant on {self.hass.url} (first start takes a while)")
        results = await asyncio.gather(
            self.service.start(), self.hass.start(), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        ha = HomeAssistantClient(self.hass.url, session)
        await ha.onboard(
            name="Demo", username=self.creds["username"], password=self.creds["password"]
        )
        await ha.wait_running()
        await ha.confirm_http_config()
        say("Home Assistant is running; onboarding done, demo user ready")

        svc = ServiceClient(self.service.url, session, self.creds["service_token"])
        source = next((s for s in await svc.sources() if s["name"] == SOURCE_NAME), None)
        if source is None:
            source = await svc.create_push_source(SOURCE_NAME)
        service_id = (await svc.info())["id"]
        await self.setup_integration(ha)
        async with ha.websocket() as ws:
            found = await wait_source_entities(
                ws, service_id, source["id"], ("smoke_alarm", "sound_level")
            )
        self.entities = found.by_key
        say(
            f"integration set up against the service; source {SOURCE_NAME!r} has {len(self.entities)} entities"
        )
        self.pipeline = await make_assist_pipeline(ha)
        wyoming = await setup_wyoming(ha, self.wyoming_port)
        say(f"Home Assistant's Wyoming integration is set up against the service: {wyoming!r}")
        say(
            f"Assist pipeline {self.pipeline['name']!r} (our speech to text and agent) is preferred"
        )

        audio, self.truth = synth.household_scene(seed=7)
        self.pusher = LivePusher(
            self.service.url,
            self.creds["service_token"],
            source["id"],
            to_pcm16(audio),
            loop=True,
        )
        self.pusher.start()
        return ha

    def banner(self) -> None:
        """Where to look."""
        shown_host = (
            "localhost" if self.args.ha_host in ("127.0.0.1", "0.0.0.0") else self.args.ha_host
        )
        ha_url = f"http://{shown_host}:{self.hass.port}"
        say()
        say("MiDasheng Audio demo")
        say(f"  Home Assistant  {ha_url}")
        say(
            f"                  user {self.creds['username']!r}, password {self.creds['password']!r}"
        )
        if not self.args.check:
            say(f"                  (kept in {shown(CREDENTIALS)})")
        say(f"  Model service   {self.service.url}  (API: {self.service.url}/openapi.json,")
        say(f"                  Wyoming speech to text on tcp://127.0.0.1:{self.wyoming_port},")
        say(
            "                  bearer token: "
            + (shown(CREDENTIALS) if not self.args.check else self.creds["service_token"])
            + ")"
        )
        say(
            f"  Demo source     {SOURCE_NAME!r} plays a 64 s household scene in real time, on a loop:"
        )
        merged: list[list[Any]] = []
        for category, start, end in self.truth:
            if merged and merged[-1][0] == category and start - merged[-1][2] < 1.0:
                merged[-1][2] = end
            else:
                merged.append([category, start, end])
        for category, start, end in merged:
            say(f"                    {start:4.0f}-{end:3.0f} s  {category.replace('_', ' ')}")
        say(
            "  Entities        "
            + ", ".join(
                self.entities[k] for k in ("smoke_alarm", "sound_level") if k in self.entities
            )
        )
        say("                  (Settings > Devices & services > MiDasheng Audio > Demo room)")
        say(f"  Logs            {shown(self.service.log_path)}, {shown(self.hass.ha_log)}")
        say()

    async def stop(self) -> None:
        """Stop the pusher, Home Assistant and the service, in that order."""
        if self.pusher is not None:
            await self.pusher.stop()
        await self.hass.stop()
        await self.service.stop()


async def watch(ha: HomeAssistantClient, demo: Demo, stop: asyncio.Event) -> None:
    """Print the demo room's entities as Home Assistant changes them, until `stop`."""
    names = {entity_id: key for key, entity_id in demo.entities.items() if key in SHOWN}
    async with ha.websocket() as ws:
        changes = await ws.subscribe_events("state_changed")
        waiter = asyncio.create_task(stop.wait())
        getter = asyncio.create_task(changes.get())
        try:
            while not stop.is_set():
                await asyncio.wait({getter, waiter}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    getter.cancel()
                    break
                if not getter.done():
                    # Quiet: make sure both are still there (raises, with the log, if not).
                    demo.hass.check_alive()
                    demo.service.check_alive()
                    continue
                data = getter.result()["data"]
                getter = asyncio.create_task(changes.get())
                new = data.get("new_state") or {}
                if data["entity_id"] in names and new.get("state") != (
                    data.get("old_state") or {}
                ).get("state"):
                    say(
                        f"  {time.strftime('%H:%M:%S')}  {data['entity_id']:45s} {new.get('state')}"
                    )
        finally:
            waiter.cancel()
            getter.cancel()


async def check(ha: HomeAssistantClient, demo: Demo, wait_seconds: float) -> None:
    """Raise CheckFailedError unless Home Assistant saw what the issue asks for."""
    smoke = demo.entities["smoke_alarm"]
    level = demo.entities["sound_level"]
    say(f"checking: waiting up to {wait_seconds:.0f} s for {smoke} to turn on")
    async with ha.websocket() as ws:
        changes = await ws.subscribe_events("state_changed")
        current = await ha.state(smoke)
        seen_on = current is not None and current["state"] == "on"
        deadline = time.monotonic() + wait_seconds
        while not seen_on:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailedError(
                    f"{smoke} did not turn on within {wait_seconds:.0f} s of the scene starting "
                    "(its smoke alarm plays at 20-30 s)"
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    event = await changes.get()
                    data = event["data"]
                    seen_on = (
                        data["entity_id"] == smoke
                        and (data.get("new_state") or {}).get("state") == "on"
                    )
    say(f"  ok: {smoke} turned on")

    state = await ha.state(level)
    try:
        value = float(state["state"]) if state else None
    except ValueError:
        value = None
    if value is None:
        raise CheckFailedError(f"{level} has no value: {state and state['state']!r}")
    say(f"  ok: {level} = {value} dBFS")

    user = HomeAssistantClient(ha.url, ha.session)
    try:
        await user.login(demo.creds["username"], demo.creds["password"])
    except HarnessError as err:
        raise CheckFailedError(f"the demo user cannot log in: {err}") from err
    say(f"  ok: user {demo.creds['username']!r} logs in with the printed password")

    agent = await midasheng_agent(ha)
    answer = await ha.conversation(QUESTION, agent_id=agent)
    speech = (((answer.get("response") or {}).get("speech") or {}).get("plain") or {}).get(
        "speech", ""
    )
    if "smoke alarm" not in speech.lower():
        if agent is None:
            raise CheckFailedError(
                "the conversation agent is missing: the integration has no conversation entity, "
                f"and Home Assistant's default agent answered {QUESTION!r} with {speech!r}"
            )
        raise CheckFailedError(
            f"{agent} answered {QUESTION!r} with {speech!r}, which does not name the smoke alarm"
        )
    say(f"  ok: {agent or 'the default agent'} answered {QUESTION!r}: {speech!r}")
    await check_pipeline(ha, demo)
    await check_wyoming(ha)
    async with ha.websocket() as ws:
        http = await ws.call("http/config")
    if http.get("revert_at") is not None:
        raise CheckFailedError(f"Home Assistant will undo its HTTP settings at {http['revert_at']}")
    say("  ok: Home Assistant's HTTP settings are confirmed (no restart to undo them)")
    await check_browser(ha, demo)


async def check_browser(ha: HomeAssistantClient, demo: Demo) -> None:
    """The web UI in a headless Chromium, in German: login, the source's device page, the
    config flow and the add-source flow (devtools/ui_check.py). Last, as it switches Home
    Assistant's language. Without Chromium it is skipped, unless --browser asks for it."""
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        if demo.args.browser:
            raise CheckFailedError(
                "--browser: Chromium is not installed (apt-get install chromium)"
            )
        say("  skipped: the web UI check (no Chromium; Debian: apt-get install chromium)")
        return
    async with ha.websocket() as ws:
        registry = await ws.entity_registry()
    smoke = demo.entities["smoke_alarm"]
    device_id = next((e["device_id"] for e in registry if e["entity_id"] == smoke), None)
    if device_id is None:
        raise CheckFailedError(f"{smoke} has no device")
    try:
        seen = await check_ui(
            ha,
            ha.session,
            username=demo.creds["username"],
            password=demo.creds["password"],
            device_id=device_id,
            language="de",
            screenshots=demo.work / "screenshots",
        )
    except (UICheckError, BrowserError) as err:
        raise CheckFailedError(f"the web UI: {err}") from err
    for line in seen:
        say(f"  ok (web UI): {line}")


PIPELINE_NAME = "MiDasheng Audio"
# The port Wyoming speech-to-text servers usually take (another if taken).
WYOMING_PORT = 10300


async def setup_wyoming(ha: HomeAssistantClient, port: int) -> str:
    """Add Home Assistant's own Wyoming integration against the service's Wyoming port, as a
    user would (Settings > Add integration > Wyoming Protocol); the entry's title."""
    for entry in await ha.config_entries("wyoming"):
        await ha.request(
            "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}", ok=(200,)
        )
    form = await ha.flow_start("wyoming")
    result = await ha.flow_step(form["flow_id"], {"host": "127.0.0.1", "port": port})
    if result.get("type") != "create_entry":
        await ha.flow_abort(form["flow_id"])
        raise HarnessError(f"the Wyoming integration could not be set up: {result}")
    return str(result["title"])


async def check_wyoming(ha: HomeAssistantClient) -> None:
    """Home Assistant's Wyoming integration has a working speech-to-text entity."""
    deadline = time.monotonic() + 30
    while True:
        async with ha.websocket() as ws:
            found = [
                e["entity_id"]
                for e in await ws.entity_registry()
                if e.get("platform") == "wyoming" and e["entity_id"].startswith("stt.")
            ]
        states = [await ha.state(entity_id) for entity_id in found]
        ready = [s for s in states if s is not None and s["state"] != "unavailable"]
        if ready:
            say(f"  ok: Home Assistant's Wyoming integration offers {ready[0]['entity_id']}")
            return
        if time.monotonic() > deadline:
            raise CheckFailedError(f"no working Wyoming speech-to-text entity: {states}")
        await asyncio.sleep(1)


async def make_assist_pipeline(ha: HomeAssistantClient) -> dict[str, Any]:
    """An Assist pipeline with this integration's speech to text and conversation agent,
    made the preferred one, so the Assist dialog (and a voice satellite) uses them as the
    README says, with no manual step."""
    async with ha.websocket() as ws:
        deadline = time.monotonic() + 60
        stt = agent = None
        while stt is None or agent is None:
            for entry in await ws.entity_registry():
                if entry.get("platform") == DOMAIN:
                    if entry["entity_id"].startswith("stt."):
                        stt = str(entry["entity_id"])
                    elif entry["entity_id"].startswith("conversation."):
                        agent = str(entry["entity_id"])
            if stt is None or agent is None:
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"the integration's entities for Assist are missing (stt {stt}, agent "
                        f"{agent}); is the service's recognizer loaded?"
                    )
                await asyncio.sleep(0.5)
        listed = await ws.call("assist_pipeline/pipeline/list")
        earlier = [p["id"] for p in listed["pipelines"] if p["name"] == PIPELINE_NAME]
        pipeline = await ws.create_assist_pipeline(PIPELINE_NAME, stt=stt, conversation=agent)
        await ws.call("assist_pipeline/pipeline/set_preferred", pipeline_id=pipeline["id"])
        for old in earlier:
            # Made by an earlier run of the demo (this one is made with this run's entities).
            await ws.call("assist_pipeline/pipeline/delete", pipeline_id=old)
    return dict(pipeline)


async def check_pipeline(ha: HomeAssistantClient, demo: Demo) -> None:
    """The preferred pipeline is ours, and it answers a question about sounds."""
    async with ha.websocket() as ws:
        listed = await ws.call("assist_pipeline/pipeline/list")
        preferred = next(
            (p for p in listed["pipelines"] if p["id"] == listed["preferred_pipeline"]), None
        )
        if preferred is None or preferred["id"] != demo.pipeline.get("id"):
            raise CheckFailedError(f"the preferred Assist pipeline is not ours: {preferred}")
        events = await ws.run_assist_text(preferred["id"], QUESTION)
    ends = [e for e in events if e.get("type") == "intent-end"]
    speech = (
        ends[-1]["data"]["intent_output"]["response"]["speech"]["plain"]["speech"] if ends else ""
    )
    if "smoke alarm" not in speech.lower():
        raise CheckFailedError(f"the Assist pipeline answered {QUESTION!r} with {speech!r}")
    say(
        f"  ok: the preferred Assist pipeline {preferred['name']!r} uses {preferred['stt_engine']}"
        f" and {preferred['conversation_engine']}, and answered {QUESTION!r}"
    )


async def midasheng_agent(ha: HomeAssistantClient) -> str | None:
    """The integration's conversation entity, if it has one."""
    async with ha.websocket() as ws:
        for entry in await ws.entity_registry():
            if entry.get("platform") == DOMAIN and entry["entity_id"].startswith("conversation."):
                return str(entry["entity_id"])
    return None


async def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C (or, with --check, until the check is decided)."""
    demo = Demo(args)
    code = await _run(args, demo)
    if args.check:
        if code == 0:
            shutil.rmtree(demo.work, ignore_errors=True)
        else:
            say(f"logs and state kept in {demo.work}")
    return code


async def _run(args: argparse.Namespace, demo: Demo) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession() as session:
            starting = asyncio.create_task(demo.start(session))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                say("interrupted while starting")
                return 130
            stopper.cancel()
            ha = starting.result()
            demo.banner()
            if args.check:
                try:
                    await check(ha, demo, args.timeout)
                except CheckFailedError as err:
                    say(f"demo check FAILED after {time.monotonic() - started:.0f} s: {err}")
                    return 1
                say(f"demo check passed in {time.monotonic() - started:.0f} s")
                return 0
            say("Watching the demo room (Ctrl-C stops Home Assistant and the service):")
            await watch(ha, demo, stop)
            return 0
    except (HarnessError, aiohttp.ClientError, OSError) as err:
        say(f"demo failed: {err}")
        for log in (demo.service.log_path, demo.hass.ha_log):
            if log.exists():
                say(f"---- last lines of {shown(log)}:\n{tail(log, 25)}")
        return 1
    finally:
        say("stopping Home Assistant and the model service ...")
        await demo.stop()
        say("stopped; nothing is left running")


def main() -> int:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="headless: verify and exit")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="--check: the web UI check in a headless Chromium must run (it is skipped "
        "without Chromium otherwise)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start Home Assistant and the service from scratch (forget the last run's state)",
    )
    parser.add_argument("--port", type=int, default=8765, help="service port (another if taken)")
    parser.add_argument(
        "--ha-port", type=int, default=8123, help="Home Assistant port (another if taken)"
    )
    parser.add_argument(
        "--ha-host",
        default=os.environ.get("MIDASHENG_HA_HOST", "127.0.0.1"),
        help="address Home Assistant binds (0.0.0.0 to open the UI from other machines)",
    )
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="--check: seconds to wait for the alarm"
    )
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
