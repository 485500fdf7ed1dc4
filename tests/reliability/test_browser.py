"""A web page in the user's browser against the no-token loopback default: it can read
nothing it should not, change nothing, and cannot reach the service through DNS rebinding.
Against a real service process; the browser's requests are made as browsers make them."""

from __future__ import annotations

import json

import aiohttp

from devtools.harness import ServiceProcess

EVIL = "http://evil.example"


async def sources(session: aiohttp.ClientSession, url: str) -> list:
    async with session.get(f"{url}/v1/sources") as resp:
        assert resp.status == 200
        return (await resp.json())["sources"]


async def test_cross_site_requests_are_refused(service: ServiceProcess) -> None:
    """A cross-site text/plain POST (no preflight), a foreign Origin on a change or on the
    WebSocket, and a foreign Host header are all refused; clients that are not browsers
    (no Origin) and same-origin pages work as before."""
    url = service.url
    body = json.dumps({"name": "Sneaky", "url": "/etc/passwd"})
    async with aiohttp.ClientSession() as session:
        # The classic CSRF form post: text/plain needs no CORS preflight.
        async with session.post(
            f"{url}/v1/sources", data=body, headers={"Content-Type": "text/plain", "Origin": EVIL}
        ) as resp:
            assert resp.status == 403, await resp.text()
        # Without an Origin (a script that strips it) text/plain is still not JSON.
        async with session.post(
            f"{url}/v1/sources", data=body, headers={"Content-Type": "text/plain"}
        ) as resp:
            assert resp.status == 415, await resp.text()
            assert "application/json" in (await resp.json())["error"]
        async with session.post(
            f"{url}/v1/sources", data=body,
            headers={"Content-Type": "application/json", "Origin": EVIL},
        ) as resp:  # fmt: skip
            assert resp.status == 403
        assert await sources(session, url) == []
        # The event replay over a WebSocket opened by a foreign page.
        try:
            async with session.ws_connect(f"{url}/v1/ws", headers={"Origin": EVIL}):
                raise AssertionError("a foreign page opened the WebSocket")
        except aiohttp.WSServerHandshakeError as err:
            assert err.status == 403
        # DNS rebinding: evil.example resolved to 127.0.0.1, the browser says Host: evil.example.
        async with session.get(
            f"{url}/v1/events", headers={"Host": f"evil.example:{service.port}"}
        ) as resp:
            assert resp.status == 403, await resp.text()
        # What keeps working: a client without Origin, and the service's own origin.
        async with session.post(
            f"{url}/v1/sources", json={"name": "Porch", "kind": "push"},
            headers={"Origin": url},
        ) as resp:  # fmt: skip
            assert resp.status == 201, await resp.text()
        async with session.ws_connect(f"{url}/v1/ws") as ws:
            await ws.send_str(json.dumps({"type": "subscribe", "after": 0}))
            assert (await ws.receive_json(timeout=10))["type"] != "error"
        async with session.get(
            f"{url}/v1/health", headers={"Host": f"localhost:{service.port}"}
        ) as resp:
            assert resp.status == 200
        assert [s["id"] for s in await sources(session, url)] == ["porch"]
