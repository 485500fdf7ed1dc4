"""What every client of an OpenAI-compatible server shares: the URL as shown (never with a
password), the API key, one HTTP session, the bound on requests in flight and waiting, the
served models (`GET /models`) and the message of an error answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from model_service.models.batcher import QueueFullError
from model_service.redaction import redact_text, redact_url


class ServerError(RuntimeError):
    """The server failed or could not be reached; `status` is what the service answers with
    (502 for a failing server, 504 for one that did not answer in time)."""

    def __init__(self, message: str, status: int = 502) -> None:
        """Keep the status for the API's answer."""
        super().__init__(message)
        self.status = status


async def error_text(resp: aiohttp.ClientResponse) -> str:
    """The message of an error answer (OpenAI, vLLM and FastAPI shapes), kept short."""
    text = await resp.text()
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300] or resp.reason or "error"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])[:300]
    return text.strip()[:300]


class OpenAIServer:
    """One OpenAI-compatible server as a client sees it."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 16,
        max_queue: int = 256,
    ) -> None:
        """Nothing is contacted before `start` or a request."""
        self.base_url = base_url.rstrip("/")
        # How the server is named in answers, logs and /v1/info: never with its password.
        self.shown_url = redact_url(self.base_url)
        self.api_key = api_key
        self.timeout = timeout
        self.max_queue = max_queue
        self.slots = asyncio.Semaphore(max_concurrency)
        self.waiting = 0
        self._session: aiohttp.ClientSession | None = None

    def headers(self, accept: str = "application/json") -> dict[str, str]:
        """Request headers, with the key when there is one."""
        headers = {"Accept": accept}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def session(self) -> aiohttp.ClientSession:
        """The HTTP session (opened on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def admit(self, what: str) -> None:
        """Refuse a request when `max_queue` already wait (QueueFullError: 503)."""
        if self.waiting >= self.max_queue:
            raise QueueFullError(what, 1.0)

    def unreachable(self, err: BaseException) -> ServerError:
        """A connection failure as a ServerError, its message without the server's password."""
        reason = redact_text(str(err), self.base_url)
        return ServerError(f"cannot reach the server at {self.shown_url}: {reason}")

    async def models(self) -> list[dict[str, Any]]:
        """The model cards `GET /models` lists; none from a server without that route (404);
        ServerError when it cannot be read."""
        session = await self.session()
        try:
            async with (
                asyncio.timeout(self.timeout),
                session.get(f"{self.base_url}/models", headers=self.headers()) as resp,
            ):
                if resp.status == 404:
                    return []
                if resp.status >= 400:
                    raise ServerError(
                        f"it answered {resp.status} to /models: {await error_text(resp)}"
                    )
                data = await resp.json(content_type=None)
        except TimeoutError as err:
            raise ServerError(f"no answer within {self.timeout:g} s", status=504) from err
        except aiohttp.ClientError as err:
            raise self.unreachable(err) from err
        except ValueError as err:
            raise ServerError("its /models answer is not JSON") from err
        cards = data.get("data") if isinstance(data, dict) else None
        return [c for c in cards or () if isinstance(c, dict) and c.get("id")]

    async def served(self, model: str | None, option: str) -> dict[str, Any]:
        """The card of `model`, or of the first model listed when none is asked for;
        ServerError saying what is served instead (`option` names the flag that picks one)."""
        cards = await self.models()
        if model is None and cards:
            return cards[0]
        card = next((c for c in cards if c.get("id") == model), None)
        if card is not None:
            return card
        if not cards:
            if model is not None:
                return {"id": model}  # it does not list its models: take the name given
            raise ServerError(f"it lists no model; set {option}")
        raise ServerError(f"it serves {', '.join(str(c['id']) for c in cards)}, not {model}")
