"""Fixtures for MiDasheng Audio integration tests: a mock client and a fake push stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Mapping
import copy
from datetime import timedelta
import enum
import json
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock, PropertyMock, patch

from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.midasheng.api import (
    EventPage,
    MidashengConnectionError,
    ServiceInfo,
    SoundEvent,
    Source,
    WsMessage,
    parse_message,
)
from custom_components.midasheng.const import DOMAIN

FIXTURES = Path(__file__).parent / "fixtures"
SERVICE_ID = "3f0c9d2e8a7b4c1d9e6f5a4b3c2d1e0f"
URL = "http://127.0.0.1:8765"
TOKEN = "secret-token"


def load_json(name: str) -> Any:
    """Load a JSON fixture."""
    return json.loads((FIXTURES / name).read_text())


def event_message(
    seq: int,
    category: str = "smoke_alarm",
    *,
    source: str = "kitchen",
    ended: bool = False,
    replay: bool = False,
    score: float = 0.97,
    rev: int | None = None,
) -> dict[str, Any]:
    """An `event` WebSocket message as the service sends it, from the recorded start or end.

    Only values change, never the shape. As in the service, an event's `seq` is the rev of
    its start; its end defaults to the next rev (nothing else stored in between): pass `rev`
    where other changes come between.
    """
    message = copy.deepcopy(load_json("ws_event_end.json" if ended else "ws_event_start.json"))
    event = message["event"]
    event.update(
        seq=seq,
        rev=rev if rev is not None else seq + (1 if ended else 0),
        id=f"event-{seq}",
        source=source,
        category=category,
        label=category.replace("_", " ").capitalize(),
        score=score,
    )
    if replay:
        message["replay"] = True
    return message


def source_message(source: dict[str, Any]) -> dict[str, Any]:
    """A `source` WebSocket message."""
    return {"type": "source", "source": source}


def handshake(
    sources: list[dict[str, Any]] | None = None, last_seq: int = 41
) -> list[dict[str, Any]]:
    """What the service sends after `subscribe` (without replay): sources, then subscribed."""
    if sources is None:
        sources = load_json("sources.json")["sources"]
    return [*(source_message(s) for s in sources), {"type": "subscribed", "last_seq": last_seq}]


class FakeService:
    """The service's WebSocket as the client boundary sees it: typed messages the test sends."""

    def __init__(self) -> None:
        """Nothing subscribed yet."""
        self.subscriptions: list[int | None] = []
        self._queue: asyncio.Queue[WsMessage | BaseException] | None = None

    async def subscribe(self, after: int | None = None) -> AsyncIterator[WsMessage]:
        """Stand-in for MidashengClient.subscribe: yield what the test sends."""
        self.subscriptions.append(after)
        queue: asyncio.Queue[WsMessage | BaseException] = asyncio.Queue()
        self._queue = queue
        while True:
            item = await queue.get()
            try:
                if isinstance(item, BaseException):
                    raise item
                yield item
            finally:
                queue.task_done()

    async def wait_subscriptions(self, count: int) -> None:
        """Wait until the integration has subscribed `count` times."""
        for _ in range(200):
            if len(self.subscriptions) >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{len(self.subscriptions)} subscriptions, expected {count}")

    async def send(self, *messages: dict[str, Any]) -> None:
        """Deliver JSON messages through the real parser and wait until they are handled."""
        assert self._queue is not None, "nobody subscribed"
        for message in messages:
            parsed = parse_message(message)
            assert parsed is not None
            await self._queue.put(parsed)
        await self._queue.join()

    async def drop(self, error: BaseException | None = None) -> None:
        """Break the current subscription."""
        assert self._queue is not None, "nobody subscribed"
        await self._queue.put(error or MidashengConnectionError("connection reset"))
        await self._queue.join()


@pytest.fixture
async def hass(hass: HomeAssistant) -> AsyncIterator[HomeAssistant]:
    """Home Assistant with its core integration, as the voice components expect."""
    assert await async_setup_component(hass, "homeassistant", {})
    yield hass


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load the integration from custom_components."""


@pytest.fixture(autouse=True)
def fast_reconnect() -> Generator[None]:
    """Reconnect without waiting."""
    with (
        patch("custom_components.midasheng.coordinator.RECONNECT_MIN_DELAY", 0),
        patch("custom_components.midasheng.coordinator.RECONNECT_MAX_DELAY", 0),
    ):
        yield


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots with Home Assistant's serializer (ids and times left out)."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


# What this integration decides about an entity. The rest of a registry entry is Home
# Assistant's own and changes shape between releases (aliases became a list in 2026), so
# snapshotting it would tie the snapshots to one release.
_ENTRY_FIELDS = (
    "entity_id",
    "unique_id",
    "platform",
    "original_device_class",
    "original_name",
    "original_icon",
    "translation_key",
    "entity_category",
    "disabled_by",
    "has_entity_name",
    "capabilities",
    "supported_features",
    "unit_of_measurement",
)


def _plain(value: Any) -> Any:
    """Enum keys and values as their plain values (2026 keys attributes by StrEnum)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


async def snapshot_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    config_entry_id: str,
) -> None:
    """Snapshot each entity of an entry: what the integration sets, and its state."""
    entries = er.async_entries_for_config_entry(entity_registry, config_entry_id)
    assert entries, "the entry has no entities"
    for entry in sorted(entries, key=lambda entry: entry.entity_id):
        fields = {name: _plain(getattr(entry, name)) for name in _ENTRY_FIELDS}
        assert fields == snapshot(name=f"{entry.entity_id}-entry")
        state = hass.states.get(entry.entity_id)
        assert state is not None, f"{entry.entity_id} has no state"
        shown = {"state": state.state, "attributes": _plain(state.attributes)}
        assert shown == snapshot(name=f"{entry.entity_id}-state")


def get_device(hass: HomeAssistant, identifier: tuple[str, str]) -> dr.DeviceEntry | None:
    """A device of the integration's entries with an identifier.

    Identifiers are unique per config entry only since Home Assistant 2026, which deprecates
    the registry's global lookup.
    """
    dev_reg = dr.async_get(hass)
    for entry in hass.config_entries.async_entries(DOMAIN):
        for device in dr.async_entries_for_config_entry(dev_reg, entry.entry_id):
            if identifier in device.identifiers:
                return device
    return None


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Create entities that are disabled by default as enabled."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def mock_setup_entry() -> Generator[AsyncMock]:
    """Skip setting up the entry (config flow tests)."""
    with patch("custom_components.midasheng.async_setup_entry", return_value=True) as mock_setup:
        yield mock_setup


@pytest.fixture
def mock_config_entry() -> MockConfigEntry:
    """A configured service."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="MiDasheng Audio",
        unique_id=SERVICE_ID,
        data={CONF_URL: URL, CONF_TOKEN: TOKEN},
    )


@pytest.fixture
def fake_service() -> FakeService:
    """The push side of the service."""
    return FakeService()


@pytest.fixture
def mock_client(fake_service: FakeService) -> Generator[MagicMock]:
    """An autospec'd MidashengClient answering from the JSON fixtures."""
    with (
        patch("custom_components.midasheng.MidashengClient", autospec=True) as client_class,
        patch("custom_components.midasheng.config_flow.MidashengClient", new=client_class),
    ):
        client = client_class.return_value
        client.url = URL
        client.info.return_value = ServiceInfo.from_dict(load_json("info.json"))
        client.sources.return_value = [
            Source.from_dict(source) for source in load_json("sources.json")["sources"]
        ]
        client.subscribe.side_effect = fake_service.subscribe

        async def update_source(source_id: str, **changes: Any) -> Source:
            sources = {s["id"]: s for s in load_json("sources.json")["sources"]}
            source = sources.get(source_id, {**sources["kitchen"], "id": source_id})
            return Source.from_dict({**source, **{k: v for k, v in changes.items() if v}})

        client.update_source.side_effect = update_source
        yield client


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> MockConfigEntry:
    """Set up the integration and complete the WebSocket handshake."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    return mock_config_entry


def sound_event(
    seq: int,
    category: str = "smoke_alarm",
    *,
    source: str = "kitchen",
    minutes_ago: float = 2.0,
    duration: float | None = 40.0,
    has_clip: bool = True,
) -> dict[str, Any]:
    """A stored event as the service lists it (the recorded shape), `minutes_ago` before now
    (ongoing without duration)."""
    start = dt_util.utcnow() - timedelta(minutes=minutes_ago)
    end = None if duration is None else start + timedelta(seconds=duration)
    event = copy.deepcopy(load_json("events.json")["events"][0])
    event.update(
        seq=seq,
        rev=seq if end is None else seq + 1,
        id=f"event-{seq}",
        source=source,
        category=category,
        label=category.replace("_", " ").capitalize(),
        score=0.9,
        start=start.isoformat(),
        end=end.isoformat() if end else None,
        duration=duration,
        level_dbfs=-20.0,
        has_clip=has_clip,
    )
    return event


@pytest.fixture
def service_events(mock_client: MagicMock) -> list[dict[str, Any]]:
    """The service's event log: tests append wire-format events; `events()` serves them."""
    events: list[dict[str, Any]] = []

    async def list_events(
        *,
        after: int | None = None,
        limit: int | None = None,
        source: str | None = None,
        category: str | None = None,
    ) -> EventPage:
        chosen = sorted(
            (
                e
                for e in events
                if e["seq"] > (after or 0)
                and source in (None, e["source"])
                and category in (None, e["category"])
            ),
            key=lambda e: e["seq"],
        )
        if limit is not None:
            chosen = chosen[:limit]
        last = max((e["seq"] for e in events), default=0)
        return EventPage(events=tuple(SoundEvent.from_dict(e) for e in chosen), last_seq=last)

    mock_client.events.side_effect = list_events
    return events


@pytest.fixture
def lm_client(mock_client: MagicMock) -> MagicMock:
    """The service has an audio LM (a test double at the client boundary)."""
    info = load_json("info.json")
    info["models"]["lm"] = {"name": "tiny-lm", "backend": "transformers"}
    info["capabilities"] = [*info["capabilities"], "describe", "ask"]
    mock_client.info.return_value = ServiceInfo.from_dict(info)
    mock_client.describe.return_value = "A smoke alarm beeps in a quiet room."
    mock_client.ask.return_value = "Yes, it is a smoke alarm."
    return mock_client
