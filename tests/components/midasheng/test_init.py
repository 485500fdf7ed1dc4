"""Tests for setting up, unloading and removing MiDasheng Audio entries."""

from __future__ import annotations

from dataclasses import replace
import inspect
from typing import Any
from unittest.mock import MagicMock

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.midasheng.api import (
    MidashengAuthError,
    MidashengConnectionError,
    MidashengResponseError,
)
from custom_components.midasheng.const import DOMAIN, EVENT_SOUND

from .conftest import SERVICE_ID, FakeService, event_message, get_device, handshake


async def test_setup_and_unload(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    hass_storage: dict[str, Any],
) -> None:
    """Unloading closes the push connection, saves the resume point and leaves no timer."""
    coordinator = init_integration.runtime_data.coordinator
    task = coordinator._task
    assert task is not None
    assert not task.done()
    assert hass.states.get("binary_sensor.kitchen_smoke_alarm").state == "off"
    await fake_service.send(event_message(42, "cat"))
    store = coordinator._store
    assert store._delay_handle is not None

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert task.done()
    assert coordinator._task is None
    assert store._delay_handle is None
    assert store._unsub_final_write_listener is None
    data = hass_storage[f"{DOMAIN}.{init_integration.entry_id}"]["data"]
    assert data["last_seq"] == 42  # the rev of event 42's start
    assert data["open_seqs"] == [42]
    assert data["last_events"]["kitchen"]["category"] == "cat"
    assert hass.states.get("binary_sensor.kitchen_smoke_alarm").state == "unavailable"


@pytest.mark.parametrize(
    ("method", "error", "state"),
    [
        ("info", MidashengConnectionError("refused"), ConfigEntryState.SETUP_RETRY),
        ("sources", MidashengConnectionError("refused"), ConfigEntryState.SETUP_RETRY),
        ("info", MidashengResponseError("garbage"), ConfigEntryState.SETUP_RETRY),
        ("info", MidashengAuthError("wrong token"), ConfigEntryState.SETUP_ERROR),
    ],
)
async def test_setup_errors(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    method: str,
    error: Exception,
    state: ConfigEntryState,
) -> None:
    """An unreachable service is retried; a rejected token starts reauthentication."""
    getattr(mock_client, method).side_effect = error
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is state
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == (
        [SOURCE_REAUTH] if state is ConfigEntryState.SETUP_ERROR else []
    )


async def test_setup_incompatible_version(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    issue_registry: ir.IssueRegistry,
    fake_service: FakeService,
) -> None:
    """A service with another API version is a setup error with a repair issue."""
    info = mock_client.info.return_value
    mock_client.info.return_value = replace(info, api=2, version="2.0.0")
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    issue = issue_registry.async_get_issue(
        DOMAIN, f"incompatible_version_{mock_config_entry.entry_id}"
    )
    assert issue is not None
    assert issue.translation_placeholders == {
        "title": "MiDasheng Audio",
        "version": "2.0.0",
        "api": "2",
        "supported": "1",
    }

    mock_client.info.return_value = info
    await hass.config_entries.async_reload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert not issue_registry.async_get_issue(
        DOMAIN, f"incompatible_version_{mock_config_entry.entry_id}"
    )


async def test_devices(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """The service is a service device; each source a device behind it."""
    service = get_device(hass, (DOMAIN, SERVICE_ID))
    assert service is not None
    assert service.entry_type is dr.DeviceEntryType.SERVICE
    assert (service.name, service.sw_version) == ("MiDasheng Audio", "0.1.0")
    kitchen = get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    assert kitchen is not None
    assert (kitchen.name, kitchen.model, kitchen.model_id) == ("Kitchen", "Audio source", "ffmpeg")
    assert kitchen.via_device_id == service.id
    devices = dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)
    assert len(devices) == 3


async def test_stale_devices_removed_at_setup(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    device_registry: dr.DeviceRegistry,
) -> None:
    """A source deleted on the service while Home Assistant was off loses its device."""
    mock_config_entry.add_to_hass(hass)
    device_registry.async_get_or_create(
        config_entry_id=mock_config_entry.entry_id,
        identifiers={(DOMAIN, f"{SERVICE_ID}_garage")},
        name="Garage",
    )
    device_registry.async_get_or_create(
        config_entry_id=mock_config_entry.entry_id,
        identifiers={("other", "x")},
        name="Other",
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert not get_device(hass, (DOMAIN, f"{SERVICE_ID}_garage"))
    assert get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    assert get_device(hass, ("other", "x"))
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def _remove_device(client: Any, device_id: str, entry_id: str) -> Any:
    """Ask to delete a device the way the running release's device page does."""
    # Since 2026 a device belongs to one config entry and is removed as a whole.
    if len(inspect.signature(client.remove_device).parameters) == 1:
        return await client.remove_device(device_id)
    return await client.remove_device(device_id, entry_id)


async def test_remove_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """Only devices of sources the service no longer has can be deleted by the user."""
    assert await async_setup_component(hass, "config", {})
    client = await hass_ws_client(hass)
    entry_id = init_integration.entry_id

    kitchen = get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    response = await _remove_device(client, kitchen.id, entry_id)
    assert not response["success"]

    service = get_device(hass, (DOMAIN, SERVICE_ID))
    response = await _remove_device(client, service.id, entry_id)
    assert not response["success"]

    other = device_registry.async_get_or_create(
        config_entry_id=entry_id, identifiers={("other", "x")}, name="Other"
    )
    response = await _remove_device(client, other.id, entry_id)
    assert response["success"]

    init_integration.runtime_data.coordinator.sources.pop("kitchen")
    response = await _remove_device(client, kitchen.id, entry_id)
    assert response["success"]
    assert not get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))


async def test_remove_entry(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Removing the entry forgets its resume point."""
    key = f"{DOMAIN}.{init_integration.entry_id}"
    assert await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


async def test_resume_after_restart(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    hass_storage: dict[str, Any],
) -> None:
    """A restarted Home Assistant resumes after the last change it saw; the replay ends what
    ended meanwhile."""
    hass_storage[f"{DOMAIN}.{mock_config_entry.entry_id}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{mock_config_entry.entry_id}",
        "data": {
            "last_seq": 50,
            "open_seqs": [48, 49],
            "seen": [[48, 48], [49, 49]],
            "floor": 47,
            "last_events": {
                "kitchen": {
                    "seq": 49,
                    "rev": 49,
                    "id": "event-49",
                    "source": "kitchen",
                    "category": "dog_bark",
                    "label": "Bark",
                    "score": 0.8,
                    "start": "2026-11-22T09:00:00+00:00",
                },
                "garage": {"seq": 40, "rev": 41, "source": "garage", "category": "cat"},
            },
        },
    }
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    assert fake_service.subscriptions == [50]
    await fake_service.send(
        event_message(48, "dog_bark", ended=True, replay=True, rev=51), *handshake(last_seq=51)
    )
    await hass.async_block_till_done()
    state = hass.states.get("sensor.kitchen_last_sound")
    assert state.state == "dog_bark"
    coordinator = mock_config_entry.runtime_data.coordinator
    assert coordinator.last_events["kitchen"].id == "event-49"
    assert "garage" not in coordinator.last_events
    # 48 ended meanwhile; 49 has not (its end would have come with a rev above 50).
    assert coordinator.diagnostics()["open_seqs"] == [49]
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_unreadable_resume_state(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    hass_storage: dict[str, Any],
) -> None:
    """A damaged resume point is ignored: no replay, live events only."""
    hass_storage[f"{DOMAIN}.{mock_config_entry.entry_id}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{mock_config_entry.entry_id}",
        "data": {"last_seq": 5, "open_seqs": ["x"]},
    }
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    assert fake_service.subscriptions == [None]
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


def _stored(entry: MockConfigEntry, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}",
        "data": data,
    }


async def test_restart_resumes_from_stored_rev(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    hass_storage: dict[str, Any],
) -> None:
    """A restarted Home Assistant resumes after the highest rev it saw, firing each event once.

    Before the restart 45 was open and 46 had ended (at rev 47). While it was down 45 ended,
    and 48 and 49 started and ended in reverse order.
    """
    key = f"{DOMAIN}.{mock_config_entry.entry_id}"
    hass_storage[key] = _stored(
        mock_config_entry,
        {"last_seq": 47, "open_seqs": [45], "seen": [[45, 45], [46, 47]], "floor": 41},
    )
    bus = async_capture_events(hass, EVENT_SOUND)
    states = async_capture_events(hass, "state_changed")
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    assert fake_service.subscriptions == [47]
    await fake_service.send(
        event_message(46, "cat", ended=True, replay=True, rev=47),  # a repeat
        event_message(45, ended=True, replay=True, rev=50),
        event_message(49, "dog_bark", ended=True, replay=True, rev=51),
        event_message(48, "doorbell", ended=True, replay=True, rev=52),
        *handshake(last_seq=52),
    )
    await hass.async_block_till_done()
    assert [(e.data["seq"], e.data["type"]) for e in bus] == [
        (45, "end"),
        (49, "start"),
        (49, "end"),
        (48, "start"),
        (48, "end"),
    ]
    assert all(e.data["replay"] for e in bus)
    assert not [
        e
        for e in states
        if e.data["new_state"] is not None
        and e.data["new_state"].state == "on"
        and not e.data["entity_id"].endswith("_hearing_problem")
    ]
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    data = hass_storage[key]["data"]
    assert data["last_seq"] == 52
    assert data["open_seqs"] == []
    assert data["seen"] == [[45, 50], [46, 47], [48, 52], [49, 51]]

    # Restarted again: the same replay (or an older resume point) repeats nothing.
    bus.clear()
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    assert fake_service.subscriptions[-1] == 52
    await fake_service.send(
        event_message(49, "dog_bark", ended=True, replay=True, rev=51),
        event_message(48, "doorbell", ended=True, replay=True, rev=52),
        *handshake(last_seq=52),
    )
    await hass.async_block_till_done()
    assert bus == []
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_replay_waits_for_home_assistant_started(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    hass_storage: dict[str, Any],
) -> None:
    """Entities are created while Home Assistant starts; the push connection (and its
    replay) opens once it has started, when automations listen."""
    hass_storage[f"{DOMAIN}.{mock_config_entry.entry_id}"] = _stored(
        mock_config_entry, {"last_seq": 41, "open_seqs": [], "seen": [], "floor": 41}
    )
    hass.set_state(CoreState.not_running)
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert hass.states.get("binary_sensor.kitchen_smoke_alarm").state == "unavailable"
    assert fake_service.subscriptions == []
    assert mock_config_entry.runtime_data.coordinator._task is None

    # An automation-like listener that only starts listening when Home Assistant has started.
    seen: list[tuple[int, str]] = []

    # A callback, as automation triggers are: a plain function would run in the executor,
    # where two events may be recorded out of order.
    @callback
    def record(event: Event) -> None:
        seen.append((event.data["seq"], event.data["type"]))

    @callback
    def listen(_: Event) -> None:
        hass.bus.async_listen(EVENT_SOUND, record)

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STARTED, listen)
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    assert fake_service.subscriptions == [41]
    await fake_service.send(
        event_message(42, ended=True, replay=True, rev=43), *handshake(last_seq=43)
    )
    await hass.async_block_till_done()
    assert seen == [(42, "start"), (42, "end")]
    assert hass.states.get("binary_sensor.kitchen_smoke_alarm").state == "off"
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_unload_before_started_never_connects(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """An entry unloaded while Home Assistant starts does not connect once it has started."""
    hass.set_state(CoreState.not_running)
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await hass.async_block_till_done()
    assert fake_service.subscriptions == []
    mock_client.subscribe.assert_not_called()
