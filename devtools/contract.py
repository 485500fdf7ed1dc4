"""Check what the service sends against its own OpenAPI document (model_service.api.openapi).

`Contract` matches an HTTP answer to its documented operation and status and validates a
JSON body against the schema documented for it; `check_ws` validates a WebSocket text
message against `WsServerMessage`. `checking_client_traffic` applies both to everything an
aiohttp client receives from the service (the service tests turn it on for every test), and
the fixture recorder runs it on what it records.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import functools
import json
import re
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from model_service import __version__
from model_service.api.openapi import build_openapi

_URI = "urn:midasheng:openapi"


class ContractError(AssertionError):
    """The service sent something its OpenAPI document does not allow."""


class Contract:
    """The OpenAPI document, ready to validate answers and messages."""

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        """Use the service's document (or another, e.g. a recorded one)."""
        self.document = document or build_openapi(__version__)
        self._registry: Registry[Any] = Registry().with_resource(
            _URI, Resource.from_contents(self.document, default_specification=DRAFT202012)
        )
        self._validators: dict[str, Draft202012Validator] = {}
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in self.document["paths"]
        ]

    def validator(self, pointer: str) -> Draft202012Validator:
        """A validator for the schema at `pointer` (a JSON pointer into the document)."""
        return Draft202012Validator(
            {"$ref": f"{_URI}#{pointer}"}, registry=self._registry, format_checker=FormatChecker()
        )

    def _cached(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            self._validators[pointer] = self.validator(pointer)
        return self._validators[pointer]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The documented path template and operation for a request, or None."""
        for pattern, template in self._templates:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                return (template, operation) if operation else None
        return None

    def check_schema(self, pointer: str, value: Any, what: str) -> None:
        """Raise ContractError when `value` does not match the schema at `pointer`."""
        errors = sorted(self._cached(pointer).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            raise ContractError(
                f"{what} breaks the contract: {_describe(errors[0])}\n{value!r}"[:2000]
            )

    def check_answer(
        self, method: str, path: str, status: int, content_type: str, body: bytes | None
    ) -> None:
        """Check one HTTP answer; undocumented paths (not the service's) are left alone."""
        found = self.operation(method, path)
        if found is None:
            return
        template, operation = found
        what = f"{method} {path} -> {status}"
        responses = operation["responses"]
        if str(status) not in responses:
            raise ContractError(f"{what}: status {status} is not documented for {template}")
        content = responses[str(status)].get("content", {})
        if not content:
            return
        media = next(
            (m for m in content if _media_matches(m, content_type)),
            None,
        )
        if media is None:
            raise ContractError(f"{what}: content type {content_type!r} is not documented")
        if media == "application/json" and body is not None:
            try:
                value = json.loads(body)
            except ValueError as err:
                raise ContractError(f"{what}: the body is not JSON ({err})") from err
            method_key = method.lower()
            escaped = template.replace("~", "~0").replace("/", "~1")
            pointer = (
                f"/paths/{escaped}/{method_key}/responses/{status}/content/application~1json/schema"
            )
            self.check_schema(pointer, value, what)

    def check_ws(self, text: str) -> None:
        """Check one text message the service sent on `/v1/ws`."""
        try:
            value = json.loads(text)
        except ValueError as err:
            raise ContractError(
                f"/v1/ws sent a text frame that is not JSON: {text[:200]!r}"
            ) from err
        kind = value.get("type") if isinstance(value, dict) else None
        name = {
            "event": "WsEvent",
            "source": "WsSource",
            "source_removed": "WsSourceRemoved",
            "level": "WsLevel",
            "subscribed": "WsSubscribed",
            "overflow": "WsOverflow",
            "error": "WsError",
        }.get(kind or "", "WsServerMessage")
        self.check_schema(f"/components/schemas/{name}", value, f"/v1/ws message {kind!r}")


def _media_matches(documented: str, content_type: str) -> bool:
    if documented.endswith("/*"):
        return content_type.startswith(documented[:-1])
    return documented == content_type


def _describe(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    return f"at {where}: {error.message}"


@functools.cache
def service_contract() -> Contract:
    """The current service's contract (built once per process)."""
    return Contract()


@contextlib.contextmanager
def checking_client_traffic(contract: Contract | None = None) -> Iterator[None]:
    """Validate every answer and `/v1/ws` text message aiohttp clients receive meanwhile."""
    contract = contract or service_contract()
    original_request = aiohttp.ClientSession._request
    original_receive = aiohttp.ClientWebSocketResponse.receive

    async def request(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        response = await original_request(self, method, url, **kwargs)
        if response.status != 101:
            content_type = response.content_type
            body = await response.read() if content_type == "application/json" else None
            contract.check_answer(method, response.url.path, response.status, content_type, body)
        return response

    async def receive(self: aiohttp.ClientWebSocketResponse, timeout: float | None = None) -> Any:
        message = await original_receive(self, timeout)
        response = getattr(self, "_response", None)
        path = response.url.path if response is not None else ""
        if message.type == aiohttp.WSMsgType.TEXT and path == "/v1/ws":
            contract.check_ws(message.data)
        return message

    aiohttp.ClientSession._request = request  # type: ignore[method-assign]
    aiohttp.ClientWebSocketResponse.receive = receive  # type: ignore[method-assign]
    try:
        yield
    finally:
        aiohttp.ClientSession._request = original_request  # type: ignore[method-assign]
        aiohttp.ClientWebSocketResponse.receive = original_receive  # type: ignore[method-assign]
