"""Wyoming ASR with the `wyoming` package's own client, and the zeroconf records (no network)."""

from __future__ import annotations

from collections.abc import Iterator
import io
from pathlib import Path
import shutil
import subprocess

import aiohttp
import numpy as np
import pytest
import soundfile as sf
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from devtools.harness import ServiceProcess, free_port
from model_service import discovery
from model_service.models.asr import PocketsphinxRecognizer, load_asr
from model_service.wyoming import WyomingAsrServer
from tests.model_service.live_helpers import ONE_THREAD

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

COMMAND = "open the garage door"


def espeak_pcm(text: str) -> tuple[bytes, int]:
    """espeak-ng speech as stereo 16-bit PCM at its own 22050 Hz (the server converts it)."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True
    ).stdout
    mono, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return np.repeat(mono[:, None], 2, axis=1).astype("<i2").tobytes(), rate


async def transcribe_over_wyoming(
    client: AsyncTcpClient, pcm: bytes, rate: int, *, channels: int = 2, language: str | None
) -> Transcript | Error:
    """One transcribe session: transcribe, audio-start, chunks, audio-stop; the answer."""
    await client.write_event(Transcribe(language=language).event())
    await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
    step = 1024 * 2 * channels
    for offset in range(0, len(pcm), step):
        chunk = AudioChunk(rate=rate, width=2, channels=channels, audio=pcm[offset : offset + step])
        await client.write_event(chunk.event())
    await client.write_event(AudioStop().event())
    while True:
        event = await client.read_event()
        assert event is not None, "server closed the connection"
        if Transcript.is_type(event.type):
            return Transcript.from_event(event)
        if Error.is_type(event.type):
            return Error.from_event(event)


@pytest.fixture(scope="module")
def sphinx() -> Iterator[PocketsphinxRecognizer]:
    """One pocketsphinx recognizer for the module."""
    recognizer = load_asr("pocketsphinx")
    assert isinstance(recognizer, PocketsphinxRecognizer)
    yield recognizer


@pytest.fixture
async def server(sphinx: PocketsphinxRecognizer):
    """A Wyoming ASR server on a free loopback port."""
    wyoming = WyomingAsrServer(sphinx, host="127.0.0.1", port=0)
    await wyoming.start()
    yield wyoming
    await wyoming.stop()
    await sphinx.stop()


@needs_espeak
async def test_describe_and_transcribe(server: WyomingAsrServer) -> None:
    """Describe lists an installed ASR program; a spoken command comes back as text.

    Wyoming carries no phrase list, so this is pocketsphinx's general language model; it
    gets this command right (it misses many others, see test_asr).
    """
    async with AsyncTcpClient("127.0.0.1", server.port, read_timeout=30) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
        assert event is not None and Info.is_type(event.type)
        info = Info.from_event(event)
        assert len(info.asr) == 1
        program = info.asr[0]
        assert program.installed
        assert program.models[0].installed
        assert program.models[0].languages == ["en"]

        pcm, rate = espeak_pcm(COMMAND)
        answer = await transcribe_over_wyoming(client, pcm, rate, language="en")
        assert isinstance(answer, Transcript), answer
        assert answer.text == COMMAND
        assert answer.language == "en"

        # The connection stays usable: a foreign language is an error event, not a hang-up.
        answer = await transcribe_over_wyoming(client, pcm, rate, language="fr")
        assert isinstance(answer, Error)
        assert answer.code == "unsupported-language"
        assert "supported: en" in answer.text
        await client.write_event(Event(type="audio-chunk", data={"width": 2}))
        bad = await client.read_event()
        assert bad is not None and Error.is_type(bad.type)
        assert Error.from_event(bad).code == "bad-event"
        await client.write_event(Describe().event())
        again = await client.read_event()
        assert again is not None and Info.is_type(again.type)


async def test_stop_closes_connections(sphinx: PocketsphinxRecognizer) -> None:
    """Stopping the server ends open client connections."""
    wyoming = WyomingAsrServer(sphinx, host="127.0.0.1", port=0)
    await wyoming.start()
    async with AsyncTcpClient("127.0.0.1", wyoming.port, read_timeout=10) as client:
        await client.write_event(Describe().event())
        assert await client.read_event() is not None
        await wyoming.stop()
        assert await client.read_event() is None
    await sphinx.stop()


@needs_espeak
async def test_service_process_serves_wyoming(tmp_path: Path) -> None:
    """`python -m model_service --wyoming-port` answers Wyoming next to the HTTP API."""
    port = free_port()
    process = ServiceProcess(
        tmp_path / "data",
        extra_args=["--asr", "pocketsphinx", "--wyoming-port", str(port)],
        env=ONE_THREAD,
    )
    try:
        await process.start(timeout=90)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{process.url}/v1/info") as resp,
        ):
            info = await resp.json()
        assert info["models"]["asr"]["backend"] == "pocketsphinx"
        async with AsyncTcpClient("127.0.0.1", port, read_timeout=30) as client:
            pcm, rate = espeak_pcm(COMMAND)
            answer = await transcribe_over_wyoming(client, pcm, rate, language=None)
        assert isinstance(answer, Transcript), answer
        assert answer.text == COMMAND
    finally:
        code = await process.stop()
    assert code == 0, process.log_tail()


def test_zeroconf_records() -> None:
    """Both service types get records with the right names, port and TXT; loopback is not advertised."""
    assert discovery.advertised_addresses("127.0.0.1", ["127.0.0.1", "192.168.1.5"]) == []
    assert discovery.advertised_addresses("localhost", ["127.0.0.1"]) == []
    assert discovery.advertised_addresses("192.168.1.5", ["192.168.1.5"]) == ["192.168.1.5"]
    assert discovery.advertised_addresses(
        "0.0.0.0", ["127.0.0.1", "::1", "192.168.1.5", "fe80::1%eth0", "fd00::2"]
    ) == ["192.168.1.5", "fd00::2"]
    infos = discovery.build_service_infos(
        service_id="0123456789abcdef",
        version="0.1.0",
        addresses=["192.168.1.5"],
        port=8765,
        wyoming_port=10300,
    )
    midasheng, wyoming = infos
    assert midasheng.type == discovery.MIDASHENG_TYPE == "_midasheng._tcp.local."
    assert midasheng.port == 8765
    assert midasheng.decoded_properties == {
        "id": "0123456789abcdef",
        "version": "0.1.0",
        "api": "1",
    }
    assert midasheng.parsed_addresses() == ["192.168.1.5"]
    assert wyoming.type == discovery.WYOMING_TYPE == "_wyoming._tcp.local."
    assert wyoming.port == 10300
    assert wyoming.name.endswith("._wyoming._tcp.local.")


async def test_advertise_on_loopback_does_nothing() -> None:
    """Bound to loopback there is nothing to advertise, and no error."""
    result = await discovery.advertise(
        service_id="0123456789abcdef", version="0.1.0", host="127.0.0.1", port=8765
    )
    assert result is None
