"""The command line and config file, including a real service process on a real socket."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import aiohttp
import pytest

from devtools.harness import ServiceProcess
from model_service import __version__
from model_service.__main__ import parse_config
from model_service.config import ConfigError, build_config, is_loopback, load_file

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m model_service` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "model_service", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version() -> None:
    """--version prints the package version."""
    result = run_cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_refuses_open_bind_without_token(tmp_path: Path) -> None:
    """Binding to all interfaces without a token exits non-zero and says to set a token."""
    result = run_cli("--host", "0.0.0.0", "--data-dir", str(tmp_path), env={"MIDASHENG_TOKEN": ""})
    assert result.returncode != 0
    assert "token" in result.stderr.lower()
    assert "0.0.0.0" in result.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.8.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("myhost", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only loopback addresses count as private without a token."""
    assert is_loopback(host) is loopback


def test_token_from_environment_allows_open_bind() -> None:
    """MIDASHENG_TOKEN satisfies the token requirement; flags override the file."""
    token = "0123456789abcdef"
    config = build_config({"host": "0.0.0.0"}, {}, environ={"MIDASHENG_TOKEN": token})
    assert config.token == token
    config = build_config({"port": 9000}, {"port": 9100}, environ={})
    assert config.port == 9100


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_config_file(tmp_path: Path, suffix: str) -> None:
    """YAML and TOML files set everything the flags set; unknown keys are refused."""
    path = tmp_path / f"service{suffix}"
    if suffix == ".yaml":
        path.write_text("port: 9001\nmax-upload-mb: 10\ntagger: builtin\nsensitivity: high\n")
    else:
        path.write_text(
            'port = 9001\nmax_upload_mb = 10\ntagger = "builtin"\nsensitivity = "high"\n'
        )
    config = parse_config(["--config", str(path), "--data-dir", str(tmp_path)])
    assert (config.port, config.max_upload_mb, config.sensitivity) == (9001, 10, "high")
    path.write_text("bogus_setting: 1\n" if suffix == ".yaml" else "bogus_setting = 1\n")
    with pytest.raises(ConfigError, match="bogus_setting"):
        load_file(path)


def test_bad_config_values(tmp_path: Path) -> None:
    """Invalid values are refused with a message naming them."""
    with pytest.raises(ConfigError, match="device"):
        build_config({"device": "tpu"}, {}, environ={})
    with pytest.raises(ConfigError, match="sensitivity"):
        build_config({"sensitivity": "max"}, {}, environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid"):
        load_file(bad)
    result = run_cli("--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


async def test_real_process_logs_ready_and_enforces_token(tmp_path: Path) -> None:
    """A real process on a real socket: logs Ready, refuses a wrong token, stops on SIGTERM."""
    proc = ServiceProcess(tmp_path / "data", token="t0k3n", extra_args=["--asr", "pocketsphinx"])
    await proc.start(timeout=90)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{proc.url}/v1/health") as resp:
                assert (await resp.json())["status"] == "ok"
            async with http.get(f"{proc.url}/v1/info") as resp:
                assert resp.status == 401
            headers = {"Authorization": "Bearer t0k3n"}
            async with http.get(f"{proc.url}/v1/info", headers=headers) as resp:
                assert (await resp.json())["sample_rate"] == 16000
    finally:
        status = await proc.stop()
    assert status == 0, proc.log_tail()
    assert "Ready" in proc.log_tail(), proc.log_tail()


@pytest.mark.parametrize(
    "token", [" ", "x", "short-token", " 0123456789abcdef", "0123456789abcdef\n"]
)
def test_weak_or_unusable_tokens_are_refused_on_a_network(token: str) -> None:
    """A blank, short or whitespace-padded token cannot protect a network bind."""
    with pytest.raises(ConfigError, match="token"):
        build_config({"host": "0.0.0.0"}, {}, environ={"MIDASHENG_TOKEN": token})
    # On loopback a short token is the user's choice; padding is still refused.
    if token == token.strip():
        assert build_config({}, {}, environ={"MIDASHENG_TOKEN": token}).token == token
