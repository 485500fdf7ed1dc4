"""Fixtures for the reliability tests: a real service process on loopback, attacked as a
hostile client would. Like tests/e2e they need real sockets and child processes, so they run
on the service's Python without Home Assistant's test plugin:

    .venv-svc/bin/python -m pytest tests/reliability
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
import sys

import pytest

from devtools.harness import ServiceProcess


@pytest.fixture(autouse=True)
def _real_sockets() -> None:
    """Undo the Home Assistant test plugin's socket blocking when it is loaded."""
    if "pytest_socket" in sys.modules:
        sys.modules["pytest_socket"].enable_socket()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    """The service on its embedded default, no token, loopback only."""
    process = ServiceProcess(tmp_path / "data", log_path=tmp_path / "service.log")
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")
