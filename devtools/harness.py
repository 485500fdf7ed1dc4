"""Real processes for end-to-end runs: the model service, Home Assistant, and clients for both.

Everything here talks over real loopback sockets to real child processes:

- `ServiceProcess` runs `python -m model_service` (`.venv-svc`'s where it exists) on a free
  port: the one service starter for the tests, the benchmarks and the demo.
- `HomeAssistantProcess` runs `.venv-ha/bin/hass --skip-pip` (the newest Home Assistant
  release; scripts/setup makes it a wrapper into a Debian root where this machine lacks its
  Python) on a temporary copy of `config/` with `custom_components/midasheng` linked into it
  (nothing is installed at run time).
- `HomeAssistantClient` drives Home Assistant the way its frontend does: the onboarding REST
  API, `/auth/token`, the config-flow REST API, `/api/states`, `/api/conversation/process`,
  and `HomeAssistantWebSocket` for `/api/websocket` (events, registries, flows in progress).
- `ServiceClient` and `LivePusher` speak the service's wire contract (docs/api.md), the
  pusher streaming 16 kHz s16le PCM over `/v1/ws` in real time (or faster).

Only aiohttp and the standard library are used, so this module runs on any of the project's
Pythons: the end-to-end tests and `scripts/demo.py` run it on `.venv-svc`.
Every child gets its own process group (stopped as a group, SIGTERM then SIGKILL) and, on
Linux, dies with its parent, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
import json
import logging
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
SERVICE_PYTHON = ROOT / ".venv-svc" / "bin" / "python"
HASS = ROOT / ".venv-ha" / "bin" / "hass"
CONFIG_TEMPLATE = ROOT / "config"
INTEGRATION = ROOT / "custom_components" / "midasheng"
BLUEPRINTS = ROOT / "blueprints" / "automation" / "midasheng"
DOMAIN = "midasheng"
EVENT_SOUND = "midasheng_sound_event"
RATE = 16000

_LOGGER = logging.getLogger(__name__)


class HarnessError(RuntimeError):
    """Something in the end-to-end setup did not work; the message says what and where."""


class ProcessExitedError(HarnessError):
    """A child process exited while it was waited for: no point waiting longer."""


def free_port(preferred: int | None = None) -> int:
    """The preferred port if it is free on loopback, else any free loopback port.

    Probed with SO_REUSEADDR, as the servers bind: a port whose last connections are still
    in TIME_WAIT (the demo stopped with Ctrl-C a moment ago) is free for them, and taken
    only while something listens on it.
    """
    for port in (preferred, 0):
        if port is None:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise HarnessError("no free port on 127.0.0.1")


@contextlib.contextmanager
def small_disk(folder: Path, size_mb: int = 6) -> Iterator[Path]:
    """A tmpfs of `size_mb` MiB mounted at `folder` (made if missing), unmounted afterwards;
    HarnessError when this machine does not let us mount one (it needs root)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise HarnessError(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_disk(path: Path) -> None:
    """Write `path` until its disk says no (blocking: run it in a thread)."""
    with contextlib.suppress(OSError), path.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    # What is left below a block too.
    with contextlib.suppress(OSError), path.open("ab") as f:
        while True:
            f.write(b"\0" * 512)
            f.flush()


def tail(path: Path, lines: int = 80) -> str:
    """The last lines of a log file ("" when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def parse_time(value: str) -> float:
    """An ISO 8601 time (as Home Assistant and the service write them) as epoch seconds."""
    return datetime.fromisoformat(value).timestamp()


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def wait_for(
    check: Callable[[], Awaitable[Any]],
    what: str,
    *,
    timeout: float,
    interval: float = 0.25,
) -> Any:
    """Call `check` until it returns something truthy; HarnessError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = await check()
        except ProcessExitedError:
            raise
        except (HarnessError, aiohttp.ClientError, OSError) as err:
            last_error = err
            result = None
        else:
            last_error = None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        await asyncio.sleep(interval)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask Linux to SIGTERM it when the parent
    # dies, so a killed test run or demo cannot leave a service or Home Assistant behind.
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


# -- processes -------------------------------------------------------------------------------


class ManagedProcess:
    """A child process in its own process group, its output appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        """Describe the child; nothing runs before `start`."""
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        """Whether the child was started and has not exited."""
        return self.proc is not None and self.proc.returncode is None

    async def spawn(self) -> None:
        """Start the child (no readiness check)."""
        if self.running:
            raise HarnessError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        with self.log_path.open("ab") as log:
            log.write(f"\n---- {time.strftime('%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def check_alive(self) -> None:
        """Raise with the log's tail when the child has exited."""
        if self.proc is not None and self.proc.returncode is not None:
            raise ProcessExitedError(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"log {self.log_path}:\n{tail(self.log_path, 40)}"
            )

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the group and wait; SIGKILL what is left after `timeout`. Returns the status."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                _LOGGER.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
                self._signal_group(signal.SIGKILL)
                await self.proc.wait()
        # Anything the child started in its group (ffmpeg, workers) goes with it.
        self._signal_group(signal.SIGKILL)
        return self.proc.returncode

    async def kill(self) -> int | None:
        """SIGKILL the whole group at once (a crash, a power cut) and reap the child."""
        if self.proc is None:
            return None
        self._signal_group(signal.SIGKILL)
        return await self.proc.wait()


class ServiceProcess(ManagedProcess):
    """`python -m model_service` as a real child process on its own data dir and a free port.

    The one way the tests, the benchmarks and the demo start a service. By default it runs the
    embedded tagger and no downloads; `extra_args` add any command-line options (a later
    option wins, so `--asr pocketsphinx` overrides the default `--asr none`).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        token: str | None = None,
        log_path: Path | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        python: Path | str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        """A service with its own data dir and port (a free one unless given)."""
        self.data_dir = data_dir
        self.token = token
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.python = str(python or (SERVICE_PYTHON if SERVICE_PYTHON.exists() else sys.executable))
        self.extra_env = dict(env or {})
        super().__init__(
            "model service",
            self._argv(),
            log_path=log_path or data_dir.parent / "service.log",
            cwd=cwd,
        )

    def _argv(self) -> list[str]:
        argv = [
            self.python, "-m", "model_service",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--no-zeroconf", "--asr", "none",
        ]  # fmt: skip
        return argv + self.extra_args

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 80) -> str:
        """The end of the service's log (for assertion messages)."""
        return tail(self.log_path, lines)

    async def start(self, timeout: float = 120.0, *, token: str | None | bool = False) -> None:
        """Start and wait until `/v1/health` answers; `token=` changes the token first."""
        if token is not False:
            self.token = token or None
        self.argv = self._argv()
        # The token goes through the environment: a command line is visible to every user.
        # The repository goes on the path so `-m model_service` runs this checkout.
        self.env = {
            "MIDASHENG_TOKEN": self.token or "",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **self.extra_env,
        }
        await self.spawn()

        async def healthy() -> bool:
            self.check_alive()
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"{self.url}/v1/health", timeout=aiohttp.ClientTimeout(total=2)
                ) as resp,
            ):
                return resp.status == 200

        await wait_for(healthy, f"the model service at {self.url}", timeout=timeout, interval=0.2)


class MimoServerProcess(ManagedProcess):
    """A stand-in MiMo server (`devtools/mimo_servers.py`) as a real child process: "omni"
    (vLLM-Omni with MiMo-Audio) or "asr" (an OpenAI-compatible transcription server)."""

    def __init__(
        self, kind: str, log_path: Path, *, first_delay: float = 0.0, piece_delay: float = 0.0
    ) -> None:
        """Prepare (but do not start) the stand-in on a free port."""
        self.port = free_port()
        python = str(SERVICE_PYTHON if SERVICE_PYTHON.exists() else sys.executable)
        argv = [python, "-m", "devtools.mimo_servers", kind, "--port", str(self.port)]
        argv += ["--first-delay", str(first_delay), "--piece-delay", str(piece_delay)]
        env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        }
        super().__init__(f"stand-in {kind} server", argv, log_path=log_path, env=env)

    @property
    def url(self) -> str:
        """Its OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, timeout: float = 60.0) -> None:
        """Start and wait until `/v1/models` answers."""
        await self.spawn()

        async def listening() -> bool:
            self.check_alive()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.url}/models", timeout=aiohttp.ClientTimeout(total=2)) as resp,
            ):
                return resp.status == 200

        await wait_for(listening, f"the {self.name} at {self.url}", timeout=timeout, interval=0.2)


class HomeAssistantProcess(ManagedProcess):
    """A real Home Assistant on a copy of `config/`, with the integration linked in."""

    def __init__(
        self,
        config_dir: Path,
        *,
        log_path: Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        extra_automations: Sequence[dict[str, Any]] = (),
        extra_components: Mapping[str, Path] | None = None,
        extra_config: str = "",
        debug: bool = False,
    ) -> None:
        """Prepare (but do not start) Home Assistant in `config_dir`; `extra_components`
        (domain -> folder) are linked in beside the integration and `extra_config` is
        appended to configuration.yaml (stand-ins a test needs)."""
        self.config_dir = config_dir
        self.extra_components = dict(extra_components or {})
        self.extra_config = extra_config
        self.port = port or free_port()
        self.host = host
        self.extra_automations = list(extra_automations)
        env = {"MIDASHENG_HA_PORT": str(self.port), "MIDASHENG_HA_HOST": host}
        argv = [str(HASS), "-c", str(config_dir), "--skip-pip"]
        if debug:
            argv.append("--debug")
        super().__init__(
            "Home Assistant",
            argv,
            log_path=log_path or config_dir / "console.log",
            env=env,
        )

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ha_log(self) -> Path:
        """Home Assistant's own log file."""
        return self.config_dir / "home-assistant.log"

    def prepare(self) -> None:
        """Copy the dev config (once) and link the integration and its blueprints into it."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        if not (self.config_dir / "configuration.yaml").exists():
            for item in CONFIG_TEMPLATE.iterdir():
                if item.is_file() and item.suffix == ".yaml":
                    shutil.copy2(item, self.config_dir / item.name)
            if self.extra_config:
                with (self.config_dir / "configuration.yaml").open("a", encoding="utf-8") as f:
                    f.write("\n" + self.extra_config)
            if self.extra_automations:
                (self.config_dir / "automations.yaml").write_text(
                    json.dumps(self.extra_automations, indent=2) + "\n", encoding="utf-8"
                )
        # Home Assistant 2026 moves `http:` from configuration.yaml into its storage once and
        # ignores the YAML after that, so a later start would keep the first run's port and
        # address. Forgetting the stored copy makes each start take them from this run's
        # environment again; `confirm_http_config` then confirms them.
        (self.config_dir / ".storage" / "http").unlink(missing_ok=True)
        onboarding = self.config_dir / ".storage" / "onboarding"
        if not onboarding.exists():
            # The core_config onboarding step asks for location, units and time zone, which
            # configuration.yaml already sets, and then starts config flows for met,
            # google_translate, radio_browser and shopping_list, whose packages are not
            # installed (they would fail and show as broken integrations). Recording that
            # one step as done skips it; the user, analytics and integration steps still go
            # through the REST API as the frontend does them.
            onboarding.parent.mkdir(parents=True, exist_ok=True)
            onboarding.write_text(
                json.dumps(
                    {
                        "version": 4,
                        "minor_version": 1,
                        "key": "onboarding",
                        "data": {"done": ["core_config"]},
                    }
                ),
                encoding="utf-8",
            )
        links = {
            self.config_dir / "custom_components" / DOMAIN: INTEGRATION,
            self.config_dir / "blueprints" / "automation" / DOMAIN: BLUEPRINTS,
            **{
                self.config_dir / "custom_components" / domain: folder
                for domain, folder in self.extra_components.items()
            },
        }
        for link, target in links.items():
            if link.is_symlink() or not target.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target, target_is_directory=True)

    async def start(self, timeout: float = 120.0) -> None:
        """Start and wait until the HTTP server answers (Home Assistant may still be starting)."""
        self.prepare()
        await self.spawn()

        async def listening() -> bool:
            self.check_alive()
            async with (
                aiohttp.ClientSession() as session,
                # Not /api/: an unauthenticated call there is logged as a failed login and
                # raises a "login attempt failed" notification in the UI. Any answer will do
                # (this one is 400 until the owner user exists).
                session.get(f"{self.url}/auth/providers", timeout=aiohttp.ClientTimeout(total=3)),
            ):
                return True

        await wait_for(listening, f"Home Assistant at {self.url}", timeout=timeout, interval=0.2)

    def log_problems(self) -> list[str]:
        """ERROR lines in Home Assistant's log (setup failures show up here)."""
        text = (
            self.ha_log.read_text(encoding="utf-8", errors="replace")
            if self.ha_log.exists()
            else ""
        )
        return [line for line in text.splitlines() if " ERROR " in line or "CRITICAL" in line]

    def integration_reports(self) -> list[str]:
        """Home Assistant's reports of this integration using what it deprecates or forbids.

        A release says so in its log ("Detected that custom integration 'midasheng' ...,
        this will stop working in ...") long before it breaks the integration.
        """
        text = (
            self.ha_log.read_text(encoding="utf-8", errors="replace")
            if self.ha_log.exists()
            else ""
        )
        return [line for line in text.splitlines() if "custom integration 'midasheng'" in line]


# -- Home Assistant clients ------------------------------------------------------------------


@dataclass
class Tokens:
    """OAuth tokens from `/auth/token`."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float = 0.0


class HomeAssistantClient:
    """REST client for Home Assistant, authenticated like the frontend."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        """Use `session` for every request."""
        self.url = url.rstrip("/")
        self.session = session
        self.client_id = f"{self.url}/"
        self.tokens: Tokens | None = None

    # auth

    async def _token_request(self, data: dict[str, str]) -> Tokens:
        async with self.session.post(f"{self.url}/auth/token", data=data) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise HarnessError(f"/auth/token answered {resp.status}: {body}")
        return Tokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token", data.get("refresh_token")),
            expires_at=time.monotonic() + float(body.get("expires_in", 1800)),
        )

    async def _exchange_code(self, code: str) -> Tokens:
        self.tokens = await self._token_request(
            {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        )
        return self.tokens

    async def refresh(self) -> Tokens:
        """A fresh access token from the refresh token."""
        if self.tokens is None or self.tokens.refresh_token is None:
            raise HarnessError("no refresh token: onboard or log in first")
        self.tokens = await self._token_request(
            {
                "grant_type": "refresh_token",
                "refresh_token": self.tokens.refresh_token,
                "client_id": self.client_id,
            }
        )
        return self.tokens

    async def access_token(self) -> str:
        """A valid access token (refreshed a minute before it expires)."""
        if self.tokens is None:
            raise HarnessError("not authenticated: onboard or log in first")
        if time.monotonic() > self.tokens.expires_at - 60:
            await self.refresh()
        return self.tokens.access_token

    async def onboarding_status(self) -> list[dict[str, Any]] | None:
        """The onboarding steps and whether each is done; None once onboarding is over
        (Home Assistant then no longer serves the onboarding API)."""
        async with self.session.get(f"{self.url}/api/onboarding") as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise HarnessError(f"/api/onboarding answered {resp.status}")
            return list(await resp.json())

    async def onboard(self, *, name: str, username: str, password: str) -> Tokens:
        """Finish onboarding as the frontend does: owner user, then every remaining step."""
        steps = await self.onboarding_status()
        if steps is None:
            return await self.login(username, password)
        done = {step["step"] for step in steps if step["done"]}
        if "user" in done:
            await self.login(username, password)
        else:
            body = await self._post_json(
                "/api/onboarding/users",
                {
                    "client_id": self.client_id,
                    "name": name,
                    "username": username,
                    "password": password,
                    "language": "en",
                },
                auth=False,
            )
            await self._exchange_code(body["auth_code"])
        if "core_config" not in done:
            await self._post_json("/api/onboarding/core_config", {})
        if "analytics" not in done:
            await self._post_json("/api/onboarding/analytics", {})
        if "integration" not in done:
            await self._post_json(
                "/api/onboarding/integration",
                {"client_id": self.client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
            )
        assert self.tokens is not None
        return self.tokens

    async def confirm_http_config(self) -> bool:
        """Confirm the HTTP settings Home Assistant started with, as the user does with the
        "Confirm new HTTP server configuration" dialog; True when there was one to confirm.

        Home Assistant 2026 starts new HTTP settings (ours come from configuration.yaml) as a
        trial: unless confirmed within 5 minutes it restores the previous settings and
        restarts, which ends a Home Assistant run without a supervisor. Releases before the
        trial have no such command and nothing to confirm.
        """
        async with self.websocket() as ws:
            try:
                current = await ws.call("http/config")
            except HarnessError as err:
                if "unknown_command" in str(err) or "Unknown command" in str(err):
                    return False
                raise
            pending = current.get("pending")
            if not pending or pending.get("error"):
                return False
            await ws.call("http/config/promote")
            return True

    async def login(self, username: str, password: str) -> Tokens:
        """Log in with the login flow of the `homeassistant` auth provider."""
        flow = await self._post_json(
            "/auth/login_flow",
            {
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.url}/?auth_callback=1",
            },
            auth=False,
        )
        result = await self._post_json(
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self.client_id, "username": username, "password": password},
            auth=False,
        )
        if result.get("type") != "create_entry":
            raise HarnessError(f"login as {username!r} failed: {result.get('errors') or result}")
        return await self._exchange_code(result["result"])

    # REST

    async def _headers(self, auth: bool) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.access_token()}"} if auth else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        auth: bool = True,
        ok: Sequence[int] = (200, 201),
    ) -> Any:
        """One REST call; HarnessError with the answer unless the status is in `ok`."""
        async with self.session.request(
            method, f"{self.url}{path}", json=json_body, headers=await self._headers(auth)
        ) as resp:
            text = await resp.text()
            if resp.status not in ok:
                raise HarnessError(f"{method} {path} answered {resp.status}: {text[:500]}")
            if not text:
                return None
            try:
                return json.loads(text)
            except ValueError:
                return text

    async def _post_json(self, path: str, body: Any, *, auth: bool = True) -> Any:
        return await self.request("POST", path, json_body=body, auth=auth)

    async def config(self) -> dict[str, Any]:
        """`/api/config` (its `state` is RUNNING once started)."""
        return dict(await self.request("GET", "/api/config"))

    async def wait_running(self, timeout: float = 120.0) -> None:
        """Wait until Home Assistant reports it has finished starting."""

        async def running() -> bool:
            return (await self.config()).get("state") == "RUNNING"

        await wait_for(running, "Home Assistant to finish starting", timeout=timeout)

    async def state(self, entity_id: str) -> dict[str, Any] | None:
        """One entity's state object, None when it does not exist."""
        result = await self.request("GET", f"/api/states/{entity_id}", ok=(200, 404))
        return result if isinstance(result, dict) and "state" in result else None

    async def states(self) -> list[dict[str, Any]]:
        """Every state."""
        return list(await self.request("GET", "/api/states"))

    async def flow_start(self, handler: str) -> dict[str, Any]:
        """Start a config flow through the REST API, as the "Add integration" dialog does."""
        return dict(
            await self._post_json(
                "/api/config/config_entries/flow",
                {"handler": handler, "show_advanced_options": False},
            )
        )

    async def flow_step(self, flow_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Submit a step of a config flow."""
        return dict(await self._post_json(f"/api/config/config_entries/flow/{flow_id}", data))

    async def flow_abort(self, flow_id: str) -> None:
        """Abandon a config flow."""
        await self.request("DELETE", f"/api/config/config_entries/flow/{flow_id}", ok=(200, 404))

    async def setup_integration(self, url: str, token: str | None) -> dict[str, Any]:
        """Add the MiDasheng Audio integration with the `user` step; the created entry."""
        form = await self.flow_start(DOMAIN)
        if form.get("type") != "form" or form.get("step_id") != "user":
            raise HarnessError(f"the config flow did not show the user step: {form}")
        data = {"url": url}
        if token:
            data["token"] = token
        result = await self.flow_step(form["flow_id"], data)
        if result.get("type") != "create_entry":
            await self.flow_abort(form["flow_id"])
            raise HarnessError(f"the config flow did not create an entry: {result}")
        return dict(result["result"])

    async def options_flow(
        self, entry_id: str, step_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Run one step of an entry's options flow (its menu, then the form), as the
        integration's "Configure" dialog does; the flow's result."""
        base = "/api/config/config_entries/options/flow"
        menu = await self._post_json(base, {"handler": entry_id})
        flow_id = menu["flow_id"]
        if menu.get("type") == "menu":
            form = await self._post_json(f"{base}/{flow_id}", {"next_step_id": step_id})
        else:
            form = menu
        if form.get("step_id") != step_id:
            raise HarnessError(f"the options flow did not show {step_id}: {form}")
        return dict(await self._post_json(f"{base}/{flow_id}", data))

    async def subentry_flow(
        self, entry_id: str, subentry_type: str, steps: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        """Run an entry's "Add" flow of a subentry type, as the entry's page does: each of
        `steps` answers the form or menu shown; the flow's last result."""
        base = "/api/config/config_entries/subentries/flow"
        result = await self._post_json(base, {"handler": [entry_id, subentry_type]})
        for data in steps:
            if result.get("type") not in ("form", "menu"):
                raise HarnessError(f"the subentry flow ended early: {result}")
            result = await self._post_json(f"{base}/{result['flow_id']}", data)
        return dict(result)

    async def config_entries(self, domain: str = DOMAIN) -> list[dict[str, Any]]:
        """Config entries of a domain."""
        return list(await self.request("GET", f"/api/config/config_entries/entry?domain={domain}"))

    async def conversation(self, text: str, *, agent_id: str | None = None) -> dict[str, Any]:
        """Ask the conversation agent (Assist) something; its full answer."""
        body: dict[str, Any] = {"text": text, "language": "en"}
        if agent_id:
            body["agent_id"] = agent_id
        return dict(await self._post_json("/api/conversation/process", body))

    async def logbook(self, since: datetime) -> list[dict[str, Any]]:
        """Logbook entries since a time."""
        stamp = since.isoformat()
        return list(await self.request("GET", f"/api/logbook/{stamp}"))

    @contextlib.asynccontextmanager
    async def websocket(self) -> AsyncIterator[HomeAssistantWebSocket]:
        """An authenticated WebSocket API connection."""
        ws = HomeAssistantWebSocket(self)
        await ws.connect()
        try:
            yield ws
        finally:
            await ws.close()


class HomeAssistantWebSocket:
    """Home Assistant's WebSocket API: commands with ids, results and subscriptions."""

    def __init__(self, client: HomeAssistantClient) -> None:
        """Bound to an authenticated REST client (for its URL, session and token)."""
        self.client = client
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 1
        self._results: dict[int, asyncio.Future[Any]] = {}
        self._queues: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Connect and authenticate."""
        url = self.client.url.replace("http", "ws", 1) + "/api/websocket"
        self.ws = await self.client.session.ws_connect(url, heartbeat=30, max_msg_size=0)
        hello = await self.ws.receive_json()
        if hello.get("type") != "auth_required":
            raise HarnessError(f"unexpected WebSocket greeting: {hello}")
        await self.ws.send_json({"type": "auth", "access_token": await self.client.access_token()})
        answer = await self.ws.receive_json()
        if answer.get("type") != "auth_ok":
            raise HarnessError(f"WebSocket authentication failed: {answer}")
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        """Close the connection and stop reading."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.ws is not None:
            await self.ws.close()

    async def _read(self) -> None:
        assert self.ws is not None
        error: Exception = HarnessError("the WebSocket connection closed")
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                for item in data if isinstance(data, list) else [data]:
                    self._dispatch(item)
        except Exception as err:
            error = err
        for future in self._results.values():
            if not future.done():
                future.set_exception(error)

    def _dispatch(self, item: dict[str, Any]) -> None:
        msg_id = item.get("id")
        if item.get("type") == "result" and msg_id in self._results:
            future = self._results.pop(msg_id)
            if future.done():
                return
            if item.get("success"):
                future.set_result(item.get("result"))
            else:
                future.set_exception(HarnessError(f"WebSocket command failed: {item.get('error')}"))
        elif item.get("type") == "event" and msg_id in self._queues:
            received = time.time()
            self._queues[msg_id].put_nowait({**item["event"], "_received": received})

    async def call(self, command: str, **payload: Any) -> Any:
        """Send a command and return its result."""
        assert self.ws is not None
        msg_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[msg_id] = future
        await self.ws.send_json({"id": msg_id, "type": command, **payload})
        async with asyncio.timeout(30):
            return await future

    async def subscribe(self, command: str, **payload: Any) -> asyncio.Queue[dict[str, Any]]:
        """Start a subscription; its events arrive on the returned queue (with `_received`)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[self._next_id] = queue
        await self.call(command, **payload)
        return queue

    async def run_assist_audio(
        self,
        pipeline_id: str,
        pcm16: bytes,
        *,
        chunk: int = 3200,
        timeout: float = 60.0,
        end_stage: str = "intent",
    ) -> list[dict[str, Any]]:
        """Run an Assist pipeline from speech to `end_stage` (intent, or tts: the answer
        spoken) on 16 kHz PCM, as the voice dialog does (binary WebSocket frames tagged with
        the run's handler id, then an empty one); the run's events, up to `run-end` or
        `error`."""
        assert self.ws is not None
        queue = await self.subscribe(
            "assist_pipeline/run",
            pipeline=pipeline_id,
            start_stage="stt",
            end_stage=end_stage,
            input={"sample_rate": RATE, "no_vad": True},
        )
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            start = await queue.get()
            events.append(start)
            handler = bytes([start["data"]["runner_data"]["stt_binary_handler_id"]])
            for offset in range(0, len(pcm16), chunk):
                await self.ws.send_bytes(handler + pcm16[offset : offset + chunk])
            await self.ws.send_bytes(handler)
            while events[-1]["type"] not in ("run-end", "error"):
                events.append(await queue.get())
        return events

    async def create_assist_pipeline(
        self,
        name: str,
        *,
        stt: str | None,
        conversation: str,
        language: str = "en",
        tts: str | None = None,
        tts_voice: str | None = None,
    ) -> dict[str, Any]:
        """A new Assist pipeline with these engines (no wake word); its record."""
        return dict(
            await self.call(
                "assist_pipeline/pipeline/create",
                name=name,
                language=language,
                conversation_engine=conversation,
                conversation_language=language,
                stt_engine=stt,
                stt_language=language if stt else None,
                tts_engine=tts,
                tts_language=language if tts else None,
                tts_voice=tts_voice,
                wake_word_entity=None,
                wake_word_id=None,
            )
        )

    async def run_assist_text(
        self, pipeline_id: str, text: str, *, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Run an Assist pipeline's intent stage on typed text, as the Assist dialog does;
        the run's events, up to `run-end` or `error`."""
        queue = await self.subscribe(
            "assist_pipeline/run",
            pipeline=pipeline_id,
            start_stage="intent",
            end_stage="intent",
            input={"text": text},
        )
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            events.append(await queue.get())
            while events[-1]["type"] not in ("run-end", "error"):
                events.append(await queue.get())
        return events

    async def subscribe_events(
        self, event_type: str | None = None
    ) -> asyncio.Queue[dict[str, Any]]:
        """Bus events of one type (all types when None)."""
        payload = {"event_type": event_type} if event_type else {}
        return await self.subscribe("subscribe_events", **payload)

    async def repair_issues(self, domain: str = DOMAIN) -> list[dict[str, Any]]:
        """The repair issues of a domain, as Settings > Repairs lists them."""
        result = await self.call("repairs/list_issues")
        return [issue for issue in result["issues"] if issue["domain"] == domain]

    async def entity_registry(self) -> list[dict[str, Any]]:
        """Every entity registry entry."""
        return list(await self.call("config/entity_registry/list"))

    async def flows_in_progress(self) -> list[dict[str, Any]]:
        """Config flows in progress (reauth flows show up here)."""
        return list(await self.call("config_entries/flow/progress"))

    async def get_states(self) -> list[dict[str, Any]]:
        """Every state."""
        return list(await self.call("get_states"))


# -- entities of the integration -------------------------------------------------------------


@dataclass
class SourceEntities:
    """Entity ids of one source's entities, found by unique id in the entity registry."""

    by_key: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        """The entity id for a key (`smoke_alarm`, `sound_level`, `last_sound`, `sound`...)."""
        return self.by_key[key]


async def source_entities(
    ws: HomeAssistantWebSocket, service_id: str, source_id: str
) -> SourceEntities:
    """The integration's entities of one source (unique id `<service>_<source>_<key>`)."""
    prefix = f"{service_id}_{source_id}_"
    found = SourceEntities()
    for entry in await ws.entity_registry():
        unique_id = entry.get("unique_id") or ""
        if entry.get("platform") == DOMAIN and unique_id.startswith(prefix):
            found.by_key[unique_id[len(prefix) :]] = entry["entity_id"]
    return found


async def wait_source_entities(
    ws: HomeAssistantWebSocket,
    service_id: str,
    source_id: str,
    keys: Sequence[str] = ("smoke_alarm", "sound_level"),
    timeout: float = 30.0,
) -> SourceEntities:
    """Wait until the source's entities with these keys exist."""

    async def check() -> SourceEntities | None:
        found = await source_entities(ws, service_id, source_id)
        return found if all(key in found.by_key for key in keys) else None

    return await wait_for(check, f"entities {list(keys)} of source {source_id!r}", timeout=timeout)


# -- the service's side ----------------------------------------------------------------------


class ServiceClient:
    """REST client for the model service (docs/api.md)."""

    def __init__(self, url: str, session: aiohttp.ClientSession, token: str | None) -> None:
        """Use `session`; send `token` as a bearer token when given."""
        self.url = url.rstrip("/")
        self.session = session
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        """The auth header."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self, method: str, path: str, *, json_body: Any = None, ok: Sequence[int] = (200, 201)
    ) -> Any:
        """One call; HarnessError with the answer unless the status is in `ok`."""
        async with self.session.request(
            method, f"{self.url}{path}", json=json_body, headers=self.headers
        ) as resp:
            text = await resp.text()
            if resp.status not in ok:
                raise HarnessError(f"{method} {path} answered {resp.status}: {text[:500]}")
            return json.loads(text) if text else None

    async def info(self) -> dict[str, Any]:
        """`/v1/info`."""
        return dict(await self.request("GET", "/v1/info"))

    async def sources(self) -> list[dict[str, Any]]:
        """Every source."""
        return list((await self.request("GET", "/v1/sources"))["sources"])

    async def create_push_source(self, name: str) -> dict[str, Any]:
        """A push source (or the existing one with that name)."""
        for source in await self.sources():
            if source["name"] == name and source["kind"] == "push":
                return source
        return dict(
            await self.request("POST", "/v1/sources", json_body={"name": name, "kind": "push"})
        )

    async def events(self, after: int = 0, **filters: str) -> list[dict[str, Any]]:
        """Stored events after a seq (every page)."""
        found: list[dict[str, Any]] = []
        while True:
            query = "&".join(
                [f"after={after}", "limit=500", *(f"{k}={v}" for k, v in filters.items())]
            )
            page = await self.request("GET", f"/v1/events?{query}")
            events = page["events"]
            found.extend(events)
            if len(events) < 500:
                return found
            after = events[-1]["seq"]


def to_pcm16(audio: Any) -> bytes:
    """Float audio in [-1, 1] (a numpy array) as 16-bit little-endian PCM."""
    import numpy as np

    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()


class LivePusher:
    """Streams PCM into a push source over `/v1/ws`, like a live microphone.

    Audio is sent in chunks paced by the wall clock (`speed` 1.0 is real time): `pcm` once,
    or over and over with `loop`; `play` sends another clip in its place from the next
    chunk on (a sound happening now), so a test can make sounds when it is ready for them.
    While the service is unreachable the audio of that time is dropped, as a live source
    would, and the pusher keeps reconnecting. `sent_at[i]` is the wall time chunk i left,
    for measuring delays from a sound's onset.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        source_id: str,
        pcm: bytes,
        *,
        speed: float = 1.0,
        chunk_seconds: float = 0.1,
        loop: bool = False,
    ) -> None:
        """Describe what to push; `start` begins."""
        self.url = url.rstrip("/")
        self.token = token
        self.source_id = source_id
        self.pcm = pcm
        self.speed = speed
        self.chunk_bytes = 2 * round(chunk_seconds * RATE)
        self.loop = loop
        self.sent_at: dict[int, float] = {}
        self.connects = 0
        self.started_wall = 0.0
        self.finished = asyncio.Event()
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._queued: list[tuple[bytes, asyncio.Future[float]]] = []
        self._playing: tuple[bytes, asyncio.Future[float]] | None = None
        self._played = 0
        self._chunks_this_connection = 0

    @property
    def chunk_seconds(self) -> float:
        """Audio seconds per chunk."""
        return self.chunk_bytes / 2 / RATE

    @property
    def total_chunks(self) -> int:
        """Chunks in one pass of the audio."""
        return -(-len(self.pcm) // self.chunk_bytes)

    def wall_time_of(self, seconds: float, lap: int = 0) -> float | None:
        """When the chunk holding audio time `seconds` (of pass `lap`) was sent, if it was."""
        index = lap * self.total_chunks + int(seconds / self.chunk_seconds)
        return self.sent_at.get(index)

    def play(self, pcm: bytes) -> asyncio.Future[float]:
        """Send `pcm` instead of the looping audio, from the next chunk on.

        The future resolves to the wall time its first chunk was sent (the sound's onset).
        A clip cut off by a lost connection is not resumed: nobody heard its end.
        """
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queued.append((pcm, future))
        return future

    def start(self) -> None:
        """Begin streaming in the background."""
        self._task = asyncio.create_task(self._run(), name=f"push {self.source_id}")

    async def wait_streaming(self, seconds: float = 2.0, timeout: float = 60.0) -> None:
        """Wait until this connection has sent `seconds` of audio.

        Sounds are played into a stream that is already running, as with a real microphone;
        the builtin detectors judge an alarm against the room's sound before it.
        """

        async def enough() -> bool:
            return self._chunks_this_connection * self.chunk_seconds >= seconds

        await wait_for(
            enough,
            f"{seconds} s of audio pushed to {self.source_id}",
            timeout=timeout,
            interval=0.1,
        )

    async def stop(self) -> None:
        """Stop streaming (sending push_stop when connected)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.finished.set()

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until one pass (without `loop`) has been sent."""
        async with asyncio.timeout(timeout):
            await self.finished.wait()

    def _due(self, index: int) -> float:
        return self._t0 + index * self.chunk_seconds / self.speed

    async def _run(self) -> None:
        self._t0 = time.monotonic()
        self.started_wall = time.time()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        index = 0
        async with aiohttp.ClientSession() as session:
            while self.loop or index < self.total_chunks:
                try:
                    async with session.ws_connect(
                        f"{self.url}/v1/ws", headers=headers, heartbeat=10
                    ) as ws:
                        self.connects += 1
                        self._chunks_this_connection = 0
                        await ws.send_json(
                            {"type": "push_start", "source": self.source_id, "rate": RATE}
                        )
                        reader = asyncio.create_task(self._read_errors(ws))
                        try:
                            index = await self._send_from(ws, index)
                            await ws.send_json({"type": "push_stop", "source": self.source_id})
                        finally:
                            reader.cancel()
                    if not self.loop:
                        break
                except (aiohttp.ClientError, OSError, ConnectionError) as err:
                    self.errors.append(f"{time.strftime('%H:%M:%S')} {err!r}")
                self._playing = None
                # Down: skip the audio of the time that passes, then try again.
                await asyncio.sleep(0.25)
                index = max(
                    index, int((time.monotonic() - self._t0) * self.speed / self.chunk_seconds)
                )
        self.finished.set()

    async def _read_errors(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") == "error":
                    self.errors.append(str(data.get("error")))

    def _next_chunk(self, index: int) -> tuple[bytes, asyncio.Future[float] | None]:
        if self._playing is None and self._queued:
            self._playing = self._queued.pop(0)
            self._played = 0
        if self._playing is not None:
            pcm, future = self._playing
            chunk = pcm[self._played : self._played + self.chunk_bytes]
            first = self._played == 0
            self._played += self.chunk_bytes
            if self._played >= len(pcm):
                self._playing = None
            return chunk, future if first else None
        offset = (index % self.total_chunks) * self.chunk_bytes
        return self.pcm[offset : offset + self.chunk_bytes], None

    async def _send_from(self, ws: aiohttp.ClientWebSocketResponse, index: int) -> int:
        while self.loop or index < self.total_chunks:
            delay = self._due(index) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if ws.closed:
                raise ConnectionError("the service closed the push connection")
            chunk, onset = self._next_chunk(index)
            await ws.send_bytes(chunk)
            sent = time.time()
            self.sent_at[index] = sent
            self._chunks_this_connection += 1
            if onset is not None and not onset.done():
                onset.set_result(sent)
            index += 1
        return index


class ServiceEventWatcher:
    """Subscribes to the service's `/v1/ws` and notes when each event message arrived."""

    def __init__(self, url: str, token: str | None) -> None:
        """Watch the service at `url`."""
        self.url = url.rstrip("/")
        self.token = token
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Subscribe (no replay) and return once the service confirmed it."""
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(15):
            await self._subscribed.wait()

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def first_start(self, source: str, category: str, after: float) -> float | None:
        """When the first event of a category on a source, started after `after`, arrived."""
        for received, message in self.messages:
            event = message.get("event") or {}
            if (
                message.get("type") == "event"
                and event.get("source") == source
                and event.get("category") == category
                and event.get("end") is None
                and received >= after
            ):
                return received
        return None

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{self.url}/v1/ws", headers=headers, heartbeat=10) as ws,
        ):
            await ws.send_json({"type": "subscribe"})
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("type") == "subscribed":
                    self._subscribed.set()
                elif data.get("type") == "event":
                    self.messages.append((time.time(), data))


# -- waiting on Home Assistant states --------------------------------------------------------


async def wait_state(
    ha: HomeAssistantClient,
    entity_id: str,
    predicate: Callable[[dict[str, Any] | None], bool],
    what: str,
    *,
    timeout: float = 60.0,
) -> dict[str, Any] | None:
    """Poll an entity's state until `predicate` holds."""

    async def check() -> dict[str, Any] | bool | None:
        state = await ha.state(entity_id)
        return (state or True) if predicate(state) else None

    result = await wait_for(check, f"{entity_id} {what}", timeout=timeout, interval=0.25)
    return result if isinstance(result, dict) else None


async def next_state_change(
    queue: asyncio.Queue[dict[str, Any]],
    entity_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
) -> dict[str, Any]:
    """The next `state_changed` event of an entity whose new state matches."""
    async with asyncio.timeout(timeout):
        while True:
            event = await queue.get()
            data = event.get("data", {})
            if data.get("entity_id") != entity_id or data.get("new_state") is None:
                continue
            if predicate(data["new_state"]):
                return event
