"""The integration's recorded fixtures still match the service's current contract.

They are recorded from a real service (`python -m devtools.record_fixtures`); when the wire
contract changes this fails until they are recorded again, so the integration's tests never
run against shapes the service no longer sends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.contract import service_contract
from model_service import __version__
from model_service.api.openapi import build_openapi

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "components" / "midasheng" / "fixtures"
ANSWERS = {
    "info.json": ("GET", "/v1/info"),
    "sources.json": ("GET", "/v1/sources"),
    "events.json": ("GET", "/v1/events"),
}


def _load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def test_the_recorded_contract_is_the_current_one() -> None:
    assert _load("openapi.json") == json.loads(json.dumps(build_openapi(__version__))), (
        "the service's OpenAPI document changed: re-record the integration's fixtures with "
        "`.venv-svc/bin/python -m devtools.record_fixtures`"
    )


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_recorded_answers_match_the_contract(name: str) -> None:
    method, path = ANSWERS[name]
    body = (FIXTURES / name).read_bytes()
    service_contract().check_answer(method, path, 200, "application/json", body)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("ws_*.json")))
def test_recorded_messages_match_the_contract(name: str) -> None:
    service_contract().check_ws((FIXTURES / name).read_text())


def test_every_fixture_is_recorded() -> None:
    """No hand-written JSON beside the recorded ones."""
    recorded = set(ANSWERS) | {"openapi.json"} | {p.name for p in FIXTURES.glob("ws_*.json")}
    assert {p.name for p in FIXTURES.glob("*.json")} == recorded
    assert {p.name for p in FIXTURES.glob("ws_*.json")} >= {
        "ws_event_start.json",
        "ws_event_end.json",
        "ws_source.json",
        "ws_level.json",
        "ws_subscribed.json",
        "ws_error.json",
    }
