"""A minimal RTSP camera for tests: one audio track (L16, 16 kHz mono) sent as RTP
interleaved over the RTSP TCP connection, in real time, looping a clip.

It answers what ffmpeg's RTSP client sends (OPTIONS, DESCRIBE, SETUP with
`RTP/AVP/TCP;interleaved`, PLAY, GET_PARAMETER keep-alives, TEARDOWN) as RFC 2326 describes,
the way IP cameras do over TCP. A SETUP asking for UDP gets 461 Unsupported Transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

import numpy as np

RATE = 16000
PACKET_SAMPLES = 320  # 20 ms
PAYLOAD_TYPE = 96


class RtspCamera:
    """`async with RtspCamera(clip) as camera:` serves `camera.url` on loopback."""

    def __init__(self, clip: np.ndarray, *, path: str = "stream") -> None:
        """`clip`: float32 mono 16 kHz, looped."""
        pcm = (np.clip(clip, -1.0, 1.0) * 32767).astype(np.int16)
        pad = (-pcm.size) % PACKET_SAMPLES
        # L16 is big-endian on the wire (RFC 3551).
        self.pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)]).astype(">i2")
        self.path = path
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.sessions = 0
        self.setups: list[str] = []

    @property
    def url(self) -> str:
        """The stream's URL."""
        return f"rtsp://127.0.0.1:{self.port}/{self.path}"

    async def __aenter__(self) -> RtspCamera:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)

    def _sdp(self) -> bytes:
        return (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            f"m=audio 0 RTP/AVP {PAYLOAD_TYPE}\r\n"
            f"a=rtpmap:{PAYLOAD_TYPE} L16/{RATE}/1\r\na=control:track1\r\n"
        ).encode()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sender: asyncio.Task[None] | None = None
        lock = asyncio.Lock()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                if length := int(headers.get("content-length", "0")):
                    await reader.readexactly(length)
                reply = [f"CSeq: {headers.get('cseq', '0')}"]
                body = b""
                status = "200 OK"
                if method == "OPTIONS":
                    reply.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN")
                elif method == "DESCRIBE":
                    body = self._sdp()
                    reply += ["Content-Type: application/sdp", f"Content-Base: {self.url}/"]
                elif method == "SETUP":
                    transport = headers.get("transport", "")
                    self.setups.append(transport)
                    if "TCP" not in transport.upper():
                        status = "461 Unsupported Transport"
                    else:
                        reply += [
                            "Session: 12345678",
                            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
                        ]
                elif method == "PLAY":
                    reply += ["Session: 12345678", "Range: npt=0.000-"]
                    self.sessions += 1
                    sender = asyncio.create_task(self._send(writer, lock))
                elif method == "TEARDOWN":
                    reply.append("Session: 12345678")
                if body:
                    reply.append(f"Content-Length: {len(body)}")
                message = f"RTSP/1.0 {status}\r\n" + "".join(f"{h}\r\n" for h in reply) + "\r\n"
                async with lock:
                    writer.write(message.encode() + body)
                    await writer.drain()
                if method == "TEARDOWN":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await sender
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        seq = 0
        packets = self.pcm.size // PACKET_SAMPLES
        while True:
            offset = (seq % packets) * PACKET_SAMPLES
            payload = self.pcm[offset : offset + PACKET_SAMPLES].tobytes()
            rtp = struct.pack(
                ">BBHII",
                0x80,
                PAYLOAD_TYPE,
                seq & 0xFFFF,
                (seq * PACKET_SAMPLES) & 0xFFFFFFFF,
                0x4D49,
            )
            frame = b"$" + bytes([0]) + struct.pack(">H", len(rtp) + len(payload)) + rtp + payload
            async with lock:
                writer.write(frame)
                await writer.drain()
            seq += 1
            delay = start + seq * PACKET_SAMPLES / RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
