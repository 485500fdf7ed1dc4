"""The integration's parser against the service's recorded wire contract.

`fixtures/openapi.json` is the document a real service served when the fixtures were
recorded (`python -m devtools.record_fixtures`); the service's own tests fail while it differs
from the service's current one. Here: every field the integration reads exists in the
contract, every field the contract requires is one the integration reads, and the parser
turns every recorded answer and message into the values recorded, reading nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from custom_components.midasheng.api import (
    WIRE_FIELDS,
    ErrorMessage,
    EventMessage,
    LevelMessage,
    ServiceInfo,
    SoundEvent,
    Source,
    SourceMessage,
    SubscribedMessage,
    parse_message,
)

from .conftest import load_json

SCHEMAS: dict[str, Any] = load_json("openapi.json")["components"]["schemas"]
# Objects the parser keeps whole rather than field by field.
KEPT_WHOLE = {"TaggerInfo", "LMInfo", "AsrInfo"}


def test_the_contract_is_openapi_3_1() -> None:
    document = load_json("openapi.json")
    assert document["openapi"] == "3.1.0"
    assert set(WIRE_FIELDS) <= set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(WIRE_FIELDS))
def test_fields_read_match_the_contract(name: str) -> None:
    schema = SCHEMAS[name]
    properties = set(schema["properties"])
    read = WIRE_FIELDS[name]
    missing = read - properties
    assert not missing, f"{name}: the contract no longer has {sorted(missing)} (renamed or removed)"
    unknown = set(schema.get("required", ())) - read
    assert not unknown, f"{name}: the contract requires {sorted(unknown)}, which the parser ignores"


def _only_read(value: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k in WIRE_FIELDS[name]}


def test_info_parses_to_the_recorded_values() -> None:
    recorded = load_json("info.json")
    info = ServiceInfo.from_dict(recorded)
    assert info.id == recorded["id"]
    assert info.version == recorded["version"]
    # Sounds and gestures, split by their kind, in the recorded order.
    assert [c.id for c in (*info.categories, *info.gestures)] == [
        c["id"] for c in recorded["categories"]
    ]
    assert all(c.kind == "sound" for c in info.categories)
    assert [c.id for c in info.gestures] == [
        c["id"] for c in recorded["categories"] if c["kind"] == "gesture"
    ]
    assert info.tagger is not None
    assert info.tagger.name == recorded["models"]["tagger"]["name"]
    assert info.asr is not None and info.asr.backend == recorded["models"]["asr"]["backend"]
    assert list(info.capabilities) == recorded["capabilities"]
    trimmed = _only_read(recorded, "Info")
    trimmed["categories"] = [_only_read(c, "Category") for c in recorded["categories"]]
    assert ServiceInfo.from_dict(trimmed) == info


def test_sources_parse_to_the_recorded_values() -> None:
    for recorded in load_json("sources.json")["sources"]:
        source = Source.from_dict(recorded)
        assert source.as_dict() == _only_read(recorded, "Source")
        assert Source.from_dict(_only_read(recorded, "Source")) == source


def _check_event(recorded: dict[str, Any], event: SoundEvent) -> None:
    assert (event.seq, event.rev, event.id) == (recorded["seq"], recorded["rev"], recorded["id"])
    assert (event.source, event.category, event.label) == (
        recorded["source"],
        recorded["category"],
        recorded["label"],
    )
    assert event.start == datetime.fromisoformat(recorded["start"])
    end = recorded["end"]
    assert event.end == (None if end is None else datetime.fromisoformat(end))
    assert event.duration == recorded["duration"]
    assert event.ongoing is (end is None)
    assert SoundEvent.from_dict(_only_read(recorded, "Event")) == event


def test_events_parse_to_the_recorded_values() -> None:
    page = load_json("events.json")
    assert set(page) == WIRE_FIELDS["EventPage"]
    for recorded in page["events"]:
        _check_event(recorded, SoundEvent.from_dict(recorded))


def test_websocket_messages_parse_to_the_recorded_values() -> None:
    for name in ("ws_event_start.json", "ws_event_end.json"):
        recorded = load_json(name)
        message = parse_message(recorded)
        assert isinstance(message, EventMessage)
        _check_event(recorded["event"], message.event)
        assert message.replay is bool(recorded.get("replay"))
    source = load_json("ws_source.json")
    parsed = parse_message(source)
    assert isinstance(parsed, SourceMessage)
    assert parsed.source == Source.from_dict(source["source"])
    level = load_json("ws_level.json")
    assert parse_message(level) == LevelMessage(source=level["source"], dbfs=level["dbfs"])
    subscribed = load_json("ws_subscribed.json")
    assert parse_message(subscribed) == SubscribedMessage(last_seq=subscribed["last_seq"])
    error = load_json("ws_error.json")
    assert parse_message(error) == ErrorMessage(error=error["error"])
