"""Source URLs against a real service process: nothing a URL names makes the service listen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web

from devtools.harness import ServiceProcess, free_port

SDP = """v=0
o=- 0 0 IN IP4 127.0.0.1
s=injected
c=IN IP4 0.0.0.0
t=0 0
m=audio {port} RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""


def udp_ports() -> set[int]:
    """Local ports of every UDP socket on the machine (IPv4 and IPv6)."""
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local = line.split()[1]
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def test_an_sdp_served_over_http_opens_no_listener(service: ServiceProcess) -> None:
    """An http URL answering with an SDP file used to make ffmpeg bind RTP/UDP on every
    interface, where anyone on the LAN could inject audio. Now the source fails with an
    error and no UDP port opens."""
    rtp_port = free_port() & ~1  # RTP takes an even port (and the next one for RTCP)
    app = web.Application()

    async def sdp(_: web.Request) -> web.Response:
        return web.Response(text=SDP.format(port=rtp_port), content_type="application/sdp")

    app.router.add_get("/stream.sdp", sdp)
    runner = web.AppRunner(app)
    await runner.setup()
    http_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    try:
        async with aiohttp.ClientSession() as session:
            body = {"name": "Injected", "url": f"http://127.0.0.1:{http_port}/stream.sdp"}
            async with session.post(f"{service.url}/v1/sources", json=body) as resp:
                assert resp.status == 201, await resp.text()
                source = await resp.json()
            seen: set[int] = set()
            state = error = None
            for _ in range(40):
                await asyncio.sleep(0.25)
                seen |= udp_ports()
                async with session.get(f"{service.url}/v1/sources/{source['id']}") as resp:
                    current = await resp.json()
                state, error = current["state"], current["error"]
                if state == "retrying":
                    break
        assert rtp_port not in seen and rtp_port + 1 not in seen
        assert state == "retrying", (state, error)
        assert error
        print(f"SDP source: {state}, {error!r}; no UDP port {rtp_port} opened")
    finally:
        await runner.cleanup()


async def test_an_rtsp_camera_streams_over_tcp_without_udp(service: ServiceProcess) -> None:
    """A camera over RTSP (interleaved TCP, as the service asks) streams with the narrowed
    protocol whitelist, and no UDP port opens for it."""
    from devtools import synth
    from devtools.rtsp_server import RtspCamera

    clip = synth.pink_noise(5.0, level_dbfs=-30.0, seed=1)
    before = udp_ports()
    async with RtspCamera(clip) as camera, aiohttp.ClientSession() as session:
        body = {"name": "Porch camera", "url": camera.url}
        async with session.post(f"{service.url}/v1/sources", json=body) as resp:
            assert resp.status == 201, await resp.text()
            source = await resp.json()
        current: dict = {}
        opened: set[int] = set()
        for _ in range(60):
            await asyncio.sleep(0.25)
            opened |= udp_ports() - before
            async with session.get(f"{service.url}/v1/sources/{source['id']}") as resp:
                current = await resp.json()
            if current["state"] == "streaming" and current["level_dbfs"] is not None:
                break
    assert current["state"] == "streaming", current
    assert -40.0 < current["level_dbfs"] < -20.0, current
    assert all("TCP" in t.upper() for t in camera.setups), camera.setups
    # Other processes on the machine may open UDP sockets meanwhile; none may be ffmpeg's
    # RTP pair, which ffmpeg takes from 5000-65000 in even/odd pairs.
    assert not any(p % 2 == 0 and p + 1 in opened for p in opened), opened


async def test_a_camera_password_never_shows(service: ServiceProcess) -> None:
    """A password with `/`, `@` and a space stays out of the source, its error and the log."""
    password = "pa/ss w@rd"
    port = free_port()  # nothing listens: the camera refuses the connection
    url = f"rtsp://admin:{password}@127.0.0.1:{port}/live"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{service.url}/v1/sources", json={"name": "Door camera", "url": url}
        ) as resp:
            assert resp.status == 201, await resp.text()
            created = await resp.text()
        current: dict = {}
        for _ in range(40):
            await asyncio.sleep(0.25)
            async with session.get(f"{service.url}/v1/sources/door_camera") as resp:
                current = await resp.json()
            if current["state"] == "retrying":
                break
    assert current["state"] == "retrying", current
    assert current["url"] == f"rtsp://admin:***@127.0.0.1:{port}/live"
    shown = created + str(current) + service.log_tail(400)
    for secret in ("pa/ss", "w@rd", "ss w"):
        assert secret not in shown, secret


async def test_an_lm_password_never_shows(tmp_path: Path) -> None:
    """An LM URL with a password that cannot be reached stops the start; neither the log
    nor the error shows the password."""
    port = free_port()
    process = ServiceProcess(
        tmp_path / "data",
        log_path=tmp_path / "service.log",
        extra_args=["--lm", f"openai:http://key:s3cr/et@127.0.0.1:{port}/v1"],
    )
    try:
        await process.start(timeout=60)
    except Exception as err:  # the start fails: the server is unreachable
        message = str(err)
    else:
        raise AssertionError("the service started without its LM server")
    finally:
        await process.stop()
    log = process.log_tail(400)
    assert "cannot reach the LM server at http://key:***@127.0.0.1" in log, log[-2000:]
    assert "s3cr" not in log + message
