"""Command line: `python -m model_service` starts the service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
from pathlib import Path
import signal
import sys
from typing import Any

from aiohttp import web

from model_service import __version__
from model_service.api.app import create_app
from model_service.api.common import GUARD_KEY
from model_service.api.connections import KEEPALIVE_TIMEOUT, GuardedSite
from model_service.categories import CATEGORY_IDS
from model_service.config import Config, ConfigError, build_config, load_file
from model_service.detection.events import params_for
from model_service.detection.service import Service
from model_service.discovery import advertise
from model_service.logs import setup_logging
from model_service.models.asr import AsrLoadError, load_asr
from model_service.models.lm import LMLoadError, lm_from_config
from model_service.models.taggers import TaggerLoadError, load_tagger
from model_service.models.tts import TtsLoadError, tts_from_config
from model_service.redaction import redact_url
from model_service.wyoming import WyomingAsrServer

_LOGGER = logging.getLogger("model_service")


def build_parser() -> argparse.ArgumentParser:
    """All flags; every default is None so the config file can supply it."""
    parser = argparse.ArgumentParser(
        prog="python -m model_service",
        description="MiDasheng Audio model service: sound event detection and audio understanding.",
    )
    parser.add_argument("--config", type=Path, help="YAML or TOML file with any of these settings")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8765)")
    parser.add_argument("--data-dir", type=Path, help="where events, clips and the id are kept")
    parser.add_argument("--token", help="bearer token clients must send (also MIDASHENG_TOKEN)")
    parser.add_argument("--device", help="auto, cpu or cuda[:N] (default auto)")
    parser.add_argument("--tagger", help='"builtin" (default) or a transformers model id/folder')
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=None,
        help="allow model repos' own code (needed for CED/Dasheng taggers and MiDashengLM)",
    )
    parser.add_argument("--lm", help="audio LM: model id/folder, or openai:<base url>")
    parser.add_argument("--lm-model", help="model name to request from an OpenAI-compatible LM")
    parser.add_argument("--lm-api-key", help="API key for an OpenAI-compatible LM")
    parser.add_argument(
        "--lm-generation",
        action="append",
        metavar="KEY=VALUE",
        help="a generation setting over the model's own, e.g. temperature=0.7 (repeatable)",
    )
    parser.add_argument(
        "--lm-family",
        choices=["midashenglm", "qwen2_audio", "mimo_audio", "generic"],
        help="prompt family of an OpenAI-compatible LM (default: from the model it serves)",
    )
    parser.add_argument(
        "--asr",
        help='"pocketsphinx" (default), "lm", "openai:<base url>" (an OpenAI-compatible '
        'transcription server), "none", or a Whisper id/folder',
    )
    parser.add_argument(
        "--asr-fallback",
        help='"lm", "openai:<base url>" or a Whisper id/folder: hears what the pocketsphinx '
        "phrase grammar rejects",
    )
    parser.add_argument(
        "--asr-model", help="model name on an OpenAI-compatible transcription server"
    )
    parser.add_argument(
        "--tts",
        help='text to speech: "openai:<base url>" (vLLM-Omni serving MiMo-Audio), "none"; '
        "default: the audio LM when it speaks",
    )
    parser.add_argument("--tts-model", help="model name on the speech server")
    parser.add_argument("--max-upload-mb", type=float, help="largest upload accepted (default 50)")
    parser.add_argument("--max-batch", type=int, help="largest batch a model runs (default 64)")
    parser.add_argument(
        "--max-wait-ms", type=float, help="how long a batch waits to fill (default 5)"
    )
    parser.add_argument("--no-zeroconf", dest="zeroconf", action="store_false", default=None)
    parser.add_argument(
        "--no-activity-gate",
        dest="activity_gate",
        action="store_false",
        default=None,
        help="run a model tagger on every window, also on unchanged background",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch CPU threads (default: 1 for the builtin tagger alone, else torch's own)",
    )
    parser.add_argument("--wyoming-port", type=int, help="also serve Wyoming ASR on this port")
    parser.add_argument("--debug", action="store_true", default=None, help="verbose logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse_generation(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` settings; values are JSON where they parse (numbers, true), else text."""
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--lm-generation {item!r}: expected KEY=VALUE, e.g. temperature=0.7")
        try:
            settings[key.strip()] = json.loads(raw)
        except ValueError:
            settings[key.strip()] = raw
    return settings


def parse_config(argv: list[str] | None = None) -> Config:
    """Parse flags and the optional config file into a validated Config."""
    args = build_parser().parse_args(argv)
    values = vars(args)
    config_path = values.pop("config")
    file_values = load_file(config_path) if config_path else {}
    if values.get("lm_generation"):
        values["lm_generation"] = parse_generation(values["lm_generation"])
    if values.get("asr") == "none":
        values["asr"] = None
        file_values["asr"] = None
    return build_config(file_values, values)


async def serve(config: Config) -> None:
    """Load models, start the HTTP server, log Ready, run until SIGINT/SIGTERM."""

    threads = config.torch_threads
    if threads is None and config.tagger == "builtin" and not config.lm:
        # Measured: with torch's default (one thread per core) a busy 2-core box ran a batch
        # of five VAD windows in 2-9 s instead of 10-15 ms, and sustained ~7 live sources
        # instead of ~118. The builtin tagger's torch work is small and latency-bound.
        threads = 1
    if threads:
        import torch

        torch.set_num_threads(threads)
    _LOGGER.info("Loading tagger %s", config.tagger)
    tagger = await asyncio.to_thread(
        functools.partial(
            load_tagger,
            config.tagger,
            device=config.device,
            trust_remote_code=config.trust_remote_code,
            quiet_thresholds={cid: params_for(cid).off for cid in CATEGORY_IDS},
            alarm_patterns=True,
            activity_gate=config.activity_gate,
        )
    )
    if config.lm:
        _LOGGER.info("Loading audio LM %s", redact_url(config.lm))
    lm = await asyncio.to_thread(lm_from_config, config)
    if lm is not None:
        # A server that cannot take audio must stop the start, not fail the first question.
        await lm.verify()
    asr = None
    if config.asr or config.asr_fallback:
        # After the LM: `--asr lm` wraps the loaded LM.
        _LOGGER.info(
            "Loading speech recognizer %s%s",
            config.asr,
            f" (falling back to {config.asr_fallback})" if config.asr_fallback else "",
        )
        asr = await asyncio.to_thread(
            load_asr,
            config.asr,
            device=config.device,
            lm=lm,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            fallback=config.asr_fallback,
            model=config.asr_model,
            api_key=config.asr_api_key,
        )
        # A transcription server that is not there must stop the start, not fail Assist.
        for recognizer in (asr, getattr(asr, "open_vocabulary", None)):
            verify = getattr(recognizer, "verify", None)
            if verify is not None:
                await verify()
    tts, tts_reason = await tts_from_config(
        config.tts,
        lm,
        model=config.tts_model,
        api_key=config.tts_api_key,
        timeout=config.lm_timeout,
    )
    if tts is None:
        _LOGGER.info("No text to speech: %s", tts_reason)
    service = Service.create(config, tagger, lm=lm, asr=asr, tts=tts, tts_reason=tts_reason)
    app = create_app(service)
    runner = web.AppRunner(
        app,
        access_log=None if not config.debug else _LOGGER,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    await runner.setup()
    site = GuardedSite(runner, config.host, config.port, app[GUARD_KEY])
    await site.start()
    wyoming = None
    if config.wyoming_port and asr is not None:
        wyoming = WyomingAsrServer(asr, host=config.host, port=config.wyoming_port)
        await wyoming.start()
    elif config.wyoming_port:
        _LOGGER.warning("Not serving Wyoming: no speech recognizer is loaded (--asr none)")
    _LOGGER.info("Ready: listening on http://%s:%s", config.host, config.port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    advertisement = None
    try:
        if config.zeroconf:
            advertisement = await advertise(
                service_id=service.service_id,
                version=__version__,
                host=config.host,
                port=config.port,
                wyoming_port=wyoming.port if wyoming is not None else None,
            )
        await stop.wait()
    finally:
        _LOGGER.info("Stopping")
        if advertisement is not None:
            await advertisement.close()
        if wyoming is not None:
            await wyoming.stop()
        await runner.cleanup()


def run(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        config = parse_config(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201 - before logging is set up
        return 2
    setup_logging(config.debug)
    try:
        asyncio.run(serve(config))
    except TaggerLoadError as err:
        _LOGGER.error("Cannot load tagger: %s", err)
        return 3
    except LMLoadError as err:
        _LOGGER.error("Cannot load audio LM: %s", err)
        return 3
    except AsrLoadError as err:
        _LOGGER.error("Cannot load speech recognizer: %s", err)
        return 3
    except TtsLoadError as err:
        _LOGGER.error("Cannot use the speech server: %s", err)
        return 3
    except OSError as err:
        _LOGGER.error("Cannot start: %s", err)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(run())
