"""`pip install .` gives a working `midasheng-service`: pyproject declares what the service needs.

The install runs offline against this checkout's pinned environment: a fresh virtual
environment sees `.venv-svc`'s packages through a .pth file and pip may not download
anything (`--no-index`), so a dependency pyproject forgot, or one whose declared range the
pinned version does not meet, fails the install. The console script then serves a request
from a folder outside the repository, so nothing is imported from the checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request

from devtools.harness import free_port

REPO = Path(__file__).resolve().parents[2]


def _fresh_env(tmp_path: Path) -> Path:
    """A venv without packages of its own that sees the pinned service environment."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    purelib = subprocess.run(
        [
            str(env / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "pinned.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def _source(tmp_path: Path) -> Path:
    """What an sdist holds (the build writes into its source folder, so not the checkout)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "model_service", src / "model_service", ignore=shutil.ignore_patterns("__pycache__")
    )
    return src


def test_pip_install_gives_a_working_service_command(tmp_path: Path) -> None:
    env = _fresh_env(tmp_path)
    python = env / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-build-isolation",
            "-q",
            f"{_source(tmp_path)}[models]",
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_FIND_LINKS": ""},
    )
    assert install.returncode == 0, install.stdout + install.stderr

    site = Path(
        subprocess.run(
            [
                str(python),
                "-c",
                "import model_service, pathlib; print(pathlib.Path(model_service.__file__).parent)",
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        ).stdout.strip()
    )
    assert site.is_relative_to(env), site  # the installed copy, not the checkout
    assert (site / "data" / "audioset_class_labels_indices.csv").is_file()
    assert not (site.parent / "devtools").exists() and not (site.parent / "tests").exists()

    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            str(env / "bin" / "midasheng-service"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--no-zeroconf",
            "--asr",
            "none",
        ],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MIDASHENG_TOKEN")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        info = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/info", timeout=2) as resp:
                    info = json.load(resp)
                break
            except OSError:
                time.sleep(0.2)
        assert info is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert info["models"]["tagger"]["backend"] == "builtin"
        assert "smoke_alarm" in [c["id"] for c in info["categories"]]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output


def _declared() -> set[str]:
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return {_canonical(re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0]) for spec in specs}


def _canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_of_the_service_is_a_declared_dependency() -> None:
    """Each third-party module the service imports comes from a distribution pyproject names
    itself (not one that happens to arrive as another package's dependency)."""
    import ast
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    imported: dict[str, str] = {}
    for path in (REPO / "model_service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "model_service" and top not in sys.stdlib_module_names:
                    imported.setdefault(top, str(path.relative_to(REPO)))
    assert {"aiohttp", "numpy", "torch", "transformers", "silero_vad"} <= set(imported)
    declared = _declared()
    undeclared = {
        f"{module} ({', '.join(owners.get(module, ['not installed']))}, imported by {where})"
        for module, where in imported.items()
        if not {_canonical(d) for d in owners.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject: {sorted(undeclared)}"
