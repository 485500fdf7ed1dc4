"""Property-based API testing: schemathesis against a live service process.

The service runs as a real process with every capability loaded (the embedded tagger,
pocketsphinx, a stand-in MiDashengLM built offline, text to speech by the stand-in vLLM-Omni
server of `devtools/mimo_servers.py`), so no route can answer "not loaded".
Schemathesis generates requests from `/openapi.json` (a bounded number per operation, with
a fixed seed, plus its stateful phase that creates, reads, changes and deletes sources) and
fails on any 5xx, an undocumented status or content type, or a body or header that does not
match the schema.

Not checked: that every schema-valid request is accepted. The schema cannot say that an
upload must decode as audio or that a source's URL must be reachable, so the service
rightly answers 400 to bytes that fit the schema.
"""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

from devtools.harness import ServiceProcess
from devtools.mimo_servers import OmniShaped, serving
from devtools.tiny_models import build_tiny_midashenglm
from tests.model_service.live_helpers import ONE_THREAD

TOKEN = "fuzz-token"
EXAMPLES_PER_OPERATION = 15
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,negative_data_rejection"
)


async def test_schemathesis_finds_no_server_error_or_contract_break(tmp_path: Path) -> None:
    lm = build_tiny_midashenglm(tmp_path / "lm")
    with serving(OmniShaped().app) as omni:
        await _fuzz(tmp_path, lm, omni)


async def _fuzz(tmp_path: Path, lm: Path, omni: str) -> None:
    service = ServiceProcess(
        tmp_path / "data",
        token=TOKEN,
        extra_args=[
            *("--asr", "pocketsphinx", "--lm", str(lm), "--trust-remote-code"),
            *("--tts", f"openai:{omni}"),
        ],
        env=ONE_THREAD,
    )
    await service.start(timeout=180)
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{service.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                CHECKS,
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--generation-deterministic",
                "--request-timeout",
                "60",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,
        )
    finally:
        status = await service.stop()
    report = run.stdout[-12000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    assert "API Operations:" in run.stdout and "Tested: 22" in run.stdout, report
    assert status == 0, service.log_tail()
