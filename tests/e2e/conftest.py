"""Fixtures for the end-to-end tests: a real model service and a real Home Assistant per test.

These tests need real loopback sockets and real child processes, so they must not run under
pytest-homeassistant-custom-component's plugin (registered as `homeassistant`), which blocks
sockets and checks the test's event loop for lingering tasks and threads. Run them with the
plugin disabled. The harness is plain aiohttp, so scripts/test runs it on the service's Python
(the Home Assistant it starts is .venv-ha's, the newest release):

    .venv-svc/bin/python -m pytest tests/e2e

When the plugin is loaded anyway (a plain `pytest tests/e2e`), the fixtures below undo what
would break these tests: sockets are re-enabled, and the plugin's loop-debug and cleanup
checks (written for in-process Home Assistant tests) are replaced by no-ops; the processes
started here are cleaned up by the fixtures themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
import secrets
import sys
import time

import aiohttp
import pytest

from devtools.harness import (
    HarnessError,
    HomeAssistantClient,
    HomeAssistantProcess,
    MimoServerProcess,
    ServiceClient,
    ServiceProcess,
    tail,
)

PLAYER_STAND_IN = Path(__file__).resolve().parents[2] / "devtools" / "player_stand_in"

# Measurements the tests report; printed in pytest's terminal summary even when they pass.
REPORT: list[str] = []

HA_USER = "e2e"
HA_PASSWORD = "e2e-password-not-secret"


@pytest.fixture(autouse=True)
def _real_sockets() -> None:
    """Undo the Home Assistant test plugin's socket blocking when it is loaded."""
    if "pytest_socket" in sys.modules:
        sys.modules["pytest_socket"].enable_socket()


@pytest.fixture(autouse=True)
def enable_event_loop_debug() -> None:
    """Replaces the plugin's fixture: asyncio debug mode only slows real-time streaming."""


@pytest.fixture(autouse=True)
def verify_cleanup() -> Iterator[None]:
    """Replaces the plugin's in-process cleanup check; the fixtures stop their processes."""
    yield


@dataclass(kw_only=True)
class Stack:
    """A running service and Home Assistant, onboarded, with clients for both."""

    service: ServiceProcess
    hass: HomeAssistantProcess
    ha: HomeAssistantClient
    svc: ServiceClient
    session: aiohttp.ClientSession
    service_id: str
    token: str

    async def setup_integration(self) -> dict:
        """Add the integration through the config flow REST API with the right token."""
        return await self.ha.setup_integration(self.service.url, self.token)

    async def restart_hass(self) -> None:
        """Stop Home Assistant cleanly and start it again on the same config and port."""
        await self.hass.stop()
        await self.start_hass()

    async def start_hass(self) -> None:
        """Start Home Assistant and wait until it runs (the stored token stays valid)."""
        await self.hass.start()
        await self.ha.wait_running()


@pytest.fixture
async def stack(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Stack]:
    """Start the service and Home Assistant side by side, then onboard Home Assistant."""
    token = secrets.token_hex(16)
    service_args = request.node.get_closest_marker("service_args")
    extra_args = list(service_args.args if service_args else ())
    # MiMo stand-ins (devtools/mimo_servers.py) as processes of their own: MiMo-Audio on
    # vLLM-Omni speaks, and an OpenAI-compatible transcription server hears what the phrase
    # grammar rejects.
    mimo = request.node.get_closest_marker("mimo")
    stand_ins = (
        [
            MimoServerProcess("omni", tmp_path / "omni.log", **mimo.kwargs),
            MimoServerProcess("asr", tmp_path / "asr.log"),
        ]
        if mimo
        else []
    )
    try:
        for stand_in in stand_ins:
            await stand_in.start()
    except BaseException:
        for stand_in in stand_ins:
            await stand_in.stop()
        raise
    if stand_ins:
        extra_args += ["--tts", f"openai:{stand_ins[0].url}"]
        extra_args += ["--asr-fallback", f"openai:{stand_ins[1].url}"]
    service = ServiceProcess(
        tmp_path / "service-data",
        token=token,
        log_path=tmp_path / "service.log",
        extra_args=extra_args,
    )
    marker = request.node.get_closest_marker("automations")
    hass = HomeAssistantProcess(
        tmp_path / "ha-config",
        log_path=tmp_path / "ha-console.log",
        extra_automations=marker.args[0] if marker else (),
        # With the MiMo stand-ins, a media player stand-in that fetches what it plays.
        extra_components={"player_stand_in": PLAYER_STAND_IN} if mimo else None,
        extra_config="media_player:\n  - platform: player_stand_in\n" if mimo else "",
    )
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        try:
            await _gather_or_raise(service.start(), hass.start())
            ha = HomeAssistantClient(hass.url, session)
            await ha.onboard(name="End to end", username=HA_USER, password=HA_PASSWORD)
            await ha.wait_running()
            await ha.confirm_http_config()
            svc = ServiceClient(service.url, session, token)
            info = await svc.info()
            print(f"stack ready in {time.monotonic() - started:.1f} s")
            yield Stack(
                service=service,
                hass=hass,
                ha=ha,
                svc=svc,
                session=session,
                service_id=info["id"],
                token=token,
            )
        finally:
            await hass.stop()
            await service.stop()
            for stand_in in stand_ins:
                await stand_in.stop()
            problems = hass.log_problems()
            if problems:
                print("Home Assistant log errors:\n" + "\n".join(problems[-30:]))
            print(f"---- service log ({service.log_path}):\n{tail(service.log_path, 30)}")
            print(f"---- Home Assistant log ({hass.ha_log}):\n{tail(hass.ha_log, 40)}")
        reports = hass.integration_reports()
        assert not reports, "Home Assistant reports the integration:\n" + "\n".join(reports)


async def _gather_or_raise(*aws) -> None:
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise HarnessError(str(result)) from result


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that adds automations to the test's Home Assistant config."""
    config.addinivalue_line(
        "markers", "automations(list): automations written into Home Assistant's config copy"
    )
    config.addinivalue_line("markers", "service_args(*args): command-line options of the service")
    config.addinivalue_line(
        "markers", "mimo(**delays): run MiMo stand-ins and point --tts/--asr-fallback at them"
    )


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the measurements (the onset to state delay) after the run."""
    if REPORT:
        terminalreporter.section("end-to-end measurements")
        for line in REPORT:
            terminalreporter.write_line(line)
