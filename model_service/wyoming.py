"""Wyoming protocol speech-to-text server, so Home Assistant's Wyoming integration can use the ASR.

A client sends `describe` (answered with `info` listing one installed ASR program), then for
each utterance `transcribe` (optional: language), `audio-start`, `audio-chunk`s of any rate,
width and channel count, and `audio-stop`; the server answers `transcript`. Failures are
answered with an `error` event and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import numpy as np
from wyoming.asr import Transcribe, Transcript as WyomingTranscript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler

from model_service import __version__
from model_service.arrays import Array
from model_service.config import is_loopback
from model_service.models.asr import (
    SAMPLE_RATE,
    SpeechRecognizer,
    TranscriptionError,
    UnsupportedLanguageError,
)
from model_service.models.batcher import BatcherClosedError, QueueFullError

_LOGGER = logging.getLogger(__name__)

PROJECT_URL = "https://github.com/midasheng-audio/midasheng-audio"
_MODEL_URLS = {
    "pocketsphinx": "https://github.com/cmusphinx/pocketsphinx",
    "whisper": "https://github.com/openai/whisper",
}
DEFAULT_MAX_SECONDS = 300.0


def build_info(recognizer: SpeechRecognizer) -> Info:
    """The `info` answer to `describe`: one installed ASR program with the loaded model."""
    info = recognizer.info
    model = AsrModel(
        name=info.name,
        description=f"{info.backend} ({info.name})",
        attribution=Attribution(name=info.backend, url=_MODEL_URLS.get(info.backend, PROJECT_URL)),
        installed=True,
        version=None,
        languages=list(info.languages),
    )
    program = AsrProgram(
        name="midasheng",
        description="MiDasheng Audio speech recognition",
        attribution=Attribution(name="MiDasheng Audio", url=PROJECT_URL),
        installed=True,
        version=__version__,
        models=[model],
    )
    return Info(asr=[program])


def pcm16_mono_to_float(data: bytes) -> Array:
    """Little-endian 16-bit PCM -> float32 in [-1, 1)."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0


class WyomingAsrHandler(AsyncEventHandler):
    """One client connection: collects an utterance's audio and answers its transcript."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        recognizer: SpeechRecognizer,
        info: Info,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        """Handle one connection with a shared recognizer."""
        super().__init__(reader, writer)
        self._recognizer = recognizer
        self._info_event = info.event()
        self._max_bytes = int(max_seconds * SAMPLE_RATE) * 2
        self._language: str | None = None
        self._converter = AudioChunkConverter(rate=SAMPLE_RATE, width=2, channels=1)
        self._audio = bytearray()
        self._too_long = False

    def _reset(self) -> None:
        # A fresh converter per utterance: it keeps resampling state between chunks.
        self._converter = AudioChunkConverter(rate=SAMPLE_RATE, width=2, channels=1)
        self._audio = bytearray()
        self._too_long = False

    async def handle_event(self, event: Event) -> bool:
        """React to one event; never drops the connection over a bad request."""
        try:
            if Describe.is_type(event.type):
                await self.write_event(self._info_event)
            elif Transcribe.is_type(event.type):
                self._language = Transcribe.from_event(event).language
            elif AudioStart.is_type(event.type):
                self._reset()
            elif AudioChunk.is_type(event.type):
                self._add_chunk(AudioChunk.from_event(event))
            elif AudioStop.is_type(event.type):
                await self._finish()
            else:
                _LOGGER.debug("Ignoring Wyoming event %s", event.type)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as err:  # noqa: BLE001 - a malformed event must not end the connection
            _LOGGER.debug("Bad Wyoming %s event: %s", event.type, err)
            self._reset()
            await self._error(f"bad {event.type} event: {err}", "bad-event")
        return True

    def _add_chunk(self, chunk: AudioChunk) -> None:
        if self._too_long:
            return
        converted = self._converter.convert(chunk)
        if len(self._audio) + len(converted.audio) > self._max_bytes:
            self._too_long = True
            return
        self._audio.extend(converted.audio)

    async def _finish(self) -> None:
        language, self._language = self._language, None
        audio, too_long = bytes(self._audio), self._too_long
        self._reset()
        if too_long:
            seconds = self._max_bytes // (2 * SAMPLE_RATE)
            await self._error(f"audio is longer than {seconds} s", "audio-too-long")
            return
        samples = pcm16_mono_to_float(audio)
        try:
            result = await self._recognizer.transcribe(samples, language=language)
        except UnsupportedLanguageError as err:
            await self._error(str(err), "unsupported-language")
            return
        except (QueueFullError, BatcherClosedError) as err:
            await self._error(f"busy, try again: {err}", "busy")
            return
        except TranscriptionError as err:
            await self._error(str(err), "upstream")
            return
        except Exception:
            _LOGGER.exception("Wyoming transcription failed")
            await self._error("transcription failed; see the service log", "internal")
            return
        await self.write_event(WyomingTranscript(result.text, language=result.language).event())

    async def _error(self, text: str, code: str) -> None:
        await self.write_event(Error(text=text, code=code).event())


class WyomingAsrServer:
    """A TCP server speaking Wyoming ASR on top of the service's recognizer."""

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        *,
        host: str,
        port: int,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        """Prepare (nothing listens until `start`). Port 0 picks a free port."""
        self.recognizer = recognizer
        self.host = host
        self.port = port
        self.max_seconds = max_seconds
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[Any], WyomingAsrHandler] = {}

    async def start(self) -> None:
        """Listen; `port` holds the bound port afterwards."""
        info = build_info(self.recognizer)

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handler = WyomingAsrHandler(
                reader, writer, recognizer=self.recognizer, info=info, max_seconds=self.max_seconds
            )
            task = asyncio.current_task()
            assert task is not None
            self._handlers[task] = handler
            try:
                await handler.run()
            except (ConnectionError, asyncio.IncompleteReadError):
                _LOGGER.debug("Wyoming client went away")
            finally:
                self._handlers.pop(task, None)

        self._server = await asyncio.start_server(connected, host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        _LOGGER.info("Wyoming ASR listening on tcp://%s:%s", self.host, self.port)
        if not is_loopback(self.host):
            # The Wyoming protocol has no authentication (Home Assistant sends no token).
            _LOGGER.warning(
                "Wyoming has no authentication: anyone who can reach port %s can use "
                "speech recognition",
                self.port,
            )

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for handler in list(self._handlers.values()):
            await handler.stop()
        tasks = list(self._handlers)
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(tasks, timeout=5)
        await server.wait_closed()
