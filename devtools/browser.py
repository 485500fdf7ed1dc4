"""A headless Chromium driven over the DevTools protocol, for checks of Home Assistant's UI.

Debian's `chromium` is started with a private profile and `--remote-debugging-port=0`; the
port it chose is read from the profile's `DevToolsActivePort` file. Commands go over one
WebSocket to the browser, to a page attached in "flatten" mode (each command names the
page's session). Home Assistant's frontend is web components in shadow roots, so the page
helpers search through every shadow root (`deep`), and what a user sees is read from the
rendered text.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

import aiohttp

# Page-side helpers, defined once per document: every element matching a selector through
# shadow roots, the text a user sees (through shadow roots, slots skipped where assigned).
_HELPERS = r"""
(() => {
  if (window.__deep) return;
  const roots = function* (root) {
    yield root;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT);
    for (let node = walker.currentNode; node; node = walker.nextNode()) {
      if (node.shadowRoot) yield* roots(node.shadowRoot);
    }
  };
  window.__deep = (selector) => {
    const found = [];
    for (const root of roots(document)) found.push(...root.querySelectorAll(selector));
    return found;
  };
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  window.__visible = visible;
  window.__text = (el) => {
    const parts = [];
    const walk = (node) => {
      if (node.nodeType === Node.TEXT_NODE) { parts.push(node.textContent); return; }
      if (node.nodeType !== Node.ELEMENT_NODE && node.nodeType !== Node.DOCUMENT_FRAGMENT_NODE) return;
      if (node.nodeType === Node.ELEMENT_NODE) {
        if (['STYLE', 'SCRIPT', 'TEMPLATE'].includes(node.tagName)) return;
        if (node.tagName === 'SLOT') {
          const assigned = node.assignedNodes();
          if (assigned.length) return;  // shown where they are in the light DOM
        }
        if (node.shadowRoot) walk(node.shadowRoot);
      }
      for (const child of node.childNodes) walk(child);
      if (node.nodeType === Node.ELEMENT_NODE && ['DIV', 'P', 'LI', 'TR', 'BR'].includes(node.tagName)) parts.push('\n');
    };
    walk(el || document.body);
    return parts.join(' ').replace(/[ \t\u00a0]+/g, ' ');
  };
})();
"""


class BrowserError(Exception):
    """The browser could not be started or driven; the message says what happened."""


class Browser:
    """One headless Chromium with a throw-away profile."""

    def __init__(self, session: aiohttp.ClientSession, *, binary: str | None = None) -> None:
        """Use `session` for the DevTools WebSocket."""
        self.session = session
        self.binary = binary or shutil.which("chromium") or shutil.which("chromium-browser")
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Browser:
        """Start Chromium and connect to it."""
        if self.binary is None:
            raise BrowserError("Chromium is not installed (Debian: apt-get install chromium)")
        self._profile = tempfile.TemporaryDirectory(
            prefix="midasheng-chromium-", ignore_cleanup_errors=True
        )
        profile = Path(self._profile.name)
        self._process = await asyncio.create_subprocess_exec(
            self.binary,
            "--headless=new",
            # Root has no user namespace sandbox in containers; the page is our own demo.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--window-size=1280,2400",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group: stopping it stops its renderer and GPU processes too.
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self._process.returncode is not None or time.monotonic() > deadline:
                await self.close()
                raise BrowserError("Chromium did not open its DevTools port within 30 s")
            await asyncio.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self._ws = await self.session.ws_connect(
            f"ws://127.0.0.1:{port}{path}", max_msg_size=64 * 1024 * 1024
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop Chromium and remove its profile."""
        await self.close()

    async def close(self) -> None:
        """Stop Chromium and remove its profile."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                await self._process.wait()
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data and (future := self._pending.pop(data["id"], None)):
                if not future.done():
                    future.set_result(data)
            elif "method" in data:
                for queue in self._events.get(data["method"], []):
                    queue.put_nowait(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """One DevTools command; its result (BrowserError with the protocol's error)."""
        assert self._ws is not None
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_json(message)
        async with asyncio.timeout(60):
            answer = await future
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        return dict(answer.get("result", {}))

    async def new_page(self) -> Page:
        """A new tab, attached."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page


class Page:
    """A tab: navigate, evaluate, type, wait for what a user would see."""

    def __init__(self, browser: Browser, session: str) -> None:
        """Commands go to the tab's session."""
        self.browser = browser
        self.session = session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A DevTools command for this tab."""
        return await self.browser.send(method, params, session=self.session)

    async def goto(self, url: str) -> None:
        """Navigate (what loads next is waited for with `wait_for`)."""
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (with the deep helpers); its JSON value."""
        result = await self.send(
            "Runtime.evaluate",
            {
                "expression": f"{_HELPERS};\n({expression})",
                "returnByValue": True,
                "awaitPromise": True,
            },
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise BrowserError(f"script failed: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, what: str, *, timeout: float = 30.0) -> Any:
        """Evaluate until the value is truthy; BrowserError naming `what` on timeout."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            with contextlib.suppress(BrowserError):
                last = await self.evaluate(expression)
                if last:
                    return last
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.25)

    async def text(self) -> str:
        """The page's text as a user sees it (through shadow roots)."""
        return str(await self.evaluate("window.__text()"))

    async def type_into(self, selector: str, text: str, *, index: int = 0) -> None:
        """Focus the `index`-th visible element matching `selector` (through shadow roots)
        and type `text` as a keyboard would insert it."""
        focused = await self.evaluate(
            f"(() => {{ const el = window.__deep({json.dumps(selector)})"
            f".filter(window.__visible)[{index}]; if (!el) return false; el.focus();"
            " return true; })()"
        )
        if not focused:
            raise BrowserError(f"no visible {selector} number {index + 1} to type into")
        await self.send("Input.insertText", {"text": text})

    async def press_enter(self) -> None:
        """Press and release Enter."""
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                {
                    "type": kind,
                    "key": "Enter",
                    "code": "Enter",
                    "windowsVirtualKeyCode": 13,
                    **({"text": "\r"} if kind == "keyDown" else {}),
                },
            )

    async def click_text(self, text: str, *, selector: str = "*") -> None:
        """Click the innermost visible element (through shadow roots) whose text is `text`,
        as a user clicks a button or a menu entry by its label."""
        clicked = await self.evaluate(
            f"(() => {{ const want = {json.dumps(text)};"
            f" const hits = window.__deep({json.dumps(selector)}).filter((el) =>"
            " window.__visible(el) && window.__text(el).replace(/\\s+/g, ' ').trim() === want);"
            " const inner = hits.filter((el) => !hits.some((o) => o !== el && (el.contains(o)"
            " || (el.shadowRoot && el.shadowRoot.contains(o)))));"
            " const el = inner[0] || hits[0]; if (!el) return false;"
            " const target = el.closest('ha-button, button, ha-md-list-item, ha-list-item,"
            " mwc-list-item, a, [role=button], [role=menuitem], [role=option]')"
            " || (el.getRootNode().host && el.getRootNode().host.closest('ha-button, button,"
            " ha-md-list-item, ha-list-item, [role=button], [role=option]')) || el;"
            " target.click(); return target.tagName; })()"
        )
        if not clicked:
            raise BrowserError(f"nothing visible labelled {text!r} to click")

    async def screenshot(self, path: Path) -> None:
        """Save what the tab shows as a PNG (for a failed check)."""
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))
