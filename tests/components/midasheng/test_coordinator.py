"""Tests for the push connection: events, resume, dedupe, availability and dynamic sources."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
import logging
from typing import Any
from unittest.mock import MagicMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.midasheng.api import (
    Category,
    MidashengAuthError,
    MidashengConnectionError,
    ModelInfo,
)
from custom_components.midasheng.const import CONF_SENSITIVITY, DOMAIN, EVENT_SOUND

from .conftest import SERVICE_ID, FakeService, event_message, get_device, handshake, load_json

SMOKE = "binary_sensor.kitchen_smoke_alarm"
LAST_SOUND = "sensor.kitchen_last_sound"
EVENT = "event.kitchen_sound"
RECORDED_START = load_json("ws_event_start.json")["event"]


async def test_unavailable_until_subscribed(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """Entities exist from the REST state but are available only once the push is live."""
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_UNAVAILABLE
    await fake_service.wait_subscriptions(1)
    assert fake_service.subscriptions == [None]
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_OFF


async def test_event_start_and_end(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """A start turns the sensor on, fires the bus and event entity; the end turns it off."""
    bus = async_capture_events(hass, EVENT_SOUND)
    await fake_service.send(event_message(42))
    await hass.async_block_till_done()

    state = hass.states.get(SMOKE)
    assert state.state == STATE_ON
    assert set(state.attributes) == {"device_class", "friendly_name"}
    assert hass.states.get(LAST_SOUND).state == "smoke_alarm"
    event_state = hass.states.get(EVENT)
    assert event_state.attributes["event_type"] == "smoke_alarm"
    assert event_state.attributes["seq"] == 42
    assert event_state.attributes["replay"] is False
    assert event_state.attributes["label"] == "Smoke alarm"
    assert event_state.attributes["score"] == 0.97
    assert event_state.attributes["event_id"] == "event-42"

    device = get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    assert len(bus) == 1
    assert bus[0].data == {
        "config_entry_id": init_integration.entry_id,
        "device_id": device.id,
        "source": "kitchen",
        "source_name": "Kitchen",
        "type": "start",
        "category": "smoke_alarm",
        "label": "Smoke alarm",
        "score": 0.97,
        "seq": 42,
        "event_id": "event-42",
        "start": datetime.fromisoformat(RECORDED_START["start"]).isoformat(),
        "end": None,
        "level_dbfs": RECORDED_START["level_dbfs"],
        "mode": "home",
        "intrusion": False,
        "replay": False,
    }

    # The same start again (a resume overlap) changes nothing.
    await fake_service.send(event_message(42))
    await hass.async_block_till_done()
    assert len(bus) == 1

    await fake_service.send(event_message(42, ended=True, score=0.99))
    await hass.async_block_till_done()
    state = hass.states.get(SMOKE)
    assert state.state == STATE_OFF
    assert [e.data["type"] for e in bus] == ["start", "end"]
    recorded_end = load_json("ws_event_end.json")["event"]["end"]
    assert bus[1].data["end"] == datetime.fromisoformat(recorded_end).isoformat()
    # The event entity fires on starts only.
    assert hass.states.get(EVENT).state == event_state.state

    # A repeated end is a duplicate.
    await fake_service.send(event_message(42, ended=True))
    await hass.async_block_till_done()
    assert len(bus) == 2


async def test_overlapping_events_of_one_category(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """The sensor stays on until every ongoing event of its category has ended."""
    await fake_service.send(event_message(42), event_message(43, score=0.5))
    await fake_service.send(event_message(42, ended=True))
    await hass.async_block_till_done()
    state = hass.states.get(SMOKE)
    assert state.state == STATE_ON
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.active_event("kitchen", "smoke_alarm").id == "event-43"
    await fake_service.send(event_message(43, ended=True))
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_OFF


async def test_replayed_ended_event_does_not_turn_on(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """An event that already ended fires start and end on the bus but leaves the sensor off."""
    bus = async_capture_events(hass, EVENT_SOUND)
    states = async_capture_events(hass, "state_changed")
    await fake_service.send(event_message(42, "glass_break", ended=True, replay=True))
    await hass.async_block_till_done()
    assert [(e.data["type"], e.data["replay"]) for e in bus] == [("start", True), ("end", True)]
    assert hass.states.get("binary_sensor.kitchen_glass_break").state == STATE_OFF
    assert not [
        e
        for e in states
        if e.data["entity_id"] == "binary_sensor.kitchen_glass_break"
        and e.data["new_state"].state == STATE_ON
    ]
    assert hass.states.get(EVENT).attributes["event_type"] == "glass_break"
    assert hass.states.get(EVENT).attributes["replay"] is True
    assert hass.states.get(LAST_SOUND).state == "glass_break"


async def test_unknown_category_and_source(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """Events of categories or sources the entry does not know still reach the bus."""
    bus = async_capture_events(hass, EVENT_SOUND)
    await fake_service.send(event_message(42, "tuba"), event_message(43, source="attic"))
    await hass.async_block_till_done()
    assert [(e.data["category"], e.data["source_name"], e.data["device_id"]) for e in bus] == [
        ("tuba", "Kitchen", bus[0].data["device_id"]),
        ("smoke_alarm", None, None),
    ]
    assert hass.states.get(LAST_SOUND).state == "unknown"
    assert hass.states.get(EVENT).state == "unknown"


async def test_disconnect_resume_and_recovery(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    mock_client: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A drop makes entities unavailable (logged once); the resume delivers what was missed."""
    caplog.set_level(logging.INFO)
    bus = async_capture_events(hass, EVENT_SOUND)
    await fake_service.send(event_message(42), event_message(43, "dog_bark", ended=True))
    await hass.async_block_till_done()
    assert len(bus) == 3

    mock_client.subscribe.side_effect = [
        MidashengConnectionError("refused"),
        MidashengConnectionError("refused"),
        fake_service.subscribe(47),
    ]
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    assert hass.states.get(SMOKE).state == STATE_UNAVAILABLE
    assert hass.states.get(LAST_SOUND).state == STATE_UNAVAILABLE
    assert caplog.text.count("lost") == 1
    # Resumed after the last change seen (43's end, rev 44): the service replays every
    # change with a higher rev, the end of event 42 (still open here) among them.
    assert [call.kwargs for call in mock_client.subscribe.call_args_list[-3:]] == [
        {"after": 44},
        {"after": 44},
        {"after": 44},
    ]
    assert mock_client.info.await_count == 4

    # The replay: 42 ended meanwhile (rev 46), 43 is old news, 45 is new.
    await fake_service.send(
        event_message(43, "dog_bark", ended=True, replay=True),
        event_message(45, "doorbell", replay=True),
        event_message(42, ended=True, replay=True, rev=46),
        *handshake(last_seq=46),
    )
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_OFF
    assert hass.states.get("binary_sensor.kitchen_doorbell").state == STATE_ON
    assert [(e.data["seq"], e.data["type"]) for e in bus[3:]] == [(45, "start"), (42, "end")]
    assert caplog.text.count("restored") == 1
    assert init_integration.runtime_data.coordinator.reconnects == 3


async def test_subscription_ending_quietly_reconnects(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    mock_client: MagicMock,
) -> None:
    """A subscription that just ends is a disconnect too."""

    async def ended(after: int | None = None):
        return
        yield

    mock_client.subscribe.side_effect = [ended(), fake_service.subscribe(41)]
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    assert hass.states.get(SMOKE).state == STATE_UNAVAILABLE
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_OFF


async def test_unexpected_error_reconnects(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in handling a message is logged and the connection is re-established."""
    await fake_service.drop(RuntimeError("bug"))
    await hass.async_block_till_done()
    assert "Unexpected error in the push connection" in caplog.text
    await fake_service.wait_subscriptions(2)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_OFF


async def test_unreachable_repair_issue(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    mock_client: MagicMock,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A service unreachable for the repair delay (5 minutes by default) raises a repair
    issue naming it and the last error; the issue clears on reconnect."""
    issue_id = f"service_unreachable_{init_integration.entry_id}"
    refusing = True

    def refuse(after: int | None = None):
        if refusing:
            raise MidashengConnectionError("refused")
        return fake_service.subscribe(after)

    mock_client.subscribe.side_effect = refuse
    await fake_service.drop()
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.kitchen_hearing_problem").state == STATE_ON
    freezer.tick(timedelta(minutes=4))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    freezer.tick(timedelta(minutes=1, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders == {
        "title": "MiDasheng Audio",
        "url": "http://127.0.0.1:8765",
        "error": "refused",
    }

    refusing = False
    freezer.tick(timedelta(minutes=2))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)

    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_auth_error_starts_reauth(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    mock_client: MagicMock,
) -> None:
    """A token rejected on reconnect stops the connection and starts reauthentication."""
    mock_client.info.side_effect = MidashengAuthError("wrong token")
    await fake_service.drop()
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_UNAVAILABLE
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert init_integration.runtime_data.coordinator._task.done()


async def test_overflow_resumes_at_once(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After an overflow the connection resumes immediately, staying available."""
    caplog.set_level(logging.INFO)
    await fake_service.send({"type": "overflow"})
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    assert fake_service.subscriptions == [None, 41]
    assert hass.states.get(SMOKE).state == STATE_OFF
    assert "lost" not in caplog.text


async def test_service_log_reset(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """A service whose event log restarted lower is followed, not ignored."""
    await fake_service.send(event_message(42))
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    await fake_service.send(*handshake(last_seq=3))
    await fake_service.send(event_message(4, "cat"))
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_OFF
    assert hass.states.get("binary_sensor.kitchen_cat").state == STATE_ON


async def test_service_changed_reloads(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    mock_client: MagicMock,
) -> None:
    """New categories after a service restart reload the entry; a new version is recorded."""
    info = mock_client.info.return_value
    relabelled = (replace(info.categories[0], labels=("Beep",)), *info.categories[1:])
    mock_client.info.return_value = replace(info, version="0.2.0", categories=relabelled)
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    await fake_service.send(*handshake())
    device = get_device(hass, (DOMAIN, SERVICE_ID))
    assert device.sw_version == "0.2.0"
    assert len(fake_service.subscriptions) == 2  # no reload for new labels

    mock_client.info.return_value = replace(
        info, categories=(*info.categories, Category(id="tuba", name="Tuba"))
    )
    await fake_service.drop()
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    await fake_service.wait_subscriptions(3)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    state = hass.states.get("binary_sensor.kitchen_tuba")
    assert state.state == STATE_OFF
    assert state.name == "Kitchen Tuba"

    # The service comes back with a model that speaks: the entry reloads and gains the
    # text-to-speech entity.
    assert hass.states.get("tts.midasheng_audio_text_to_speech") is None
    speaking = mock_client.info.return_value
    mock_client.info.return_value = replace(
        speaking,
        capabilities=(*speaking.capabilities, "speak"),
        tts=ModelInfo(
            name="MiMo-Audio-7B-Instruct", backend="openai", details={"languages": ["en"]}
        ),
    )
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(4)  # the reloaded entry's
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert hass.states.get("tts.midasheng_audio_text_to_speech") is not None


async def test_service_error_message_logged(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error message from the service is logged; the connection goes on."""
    await fake_service.send({"type": "error", "error": "bad message"})
    assert "The service reported an error: bad message" in caplog.text
    assert hass.states.get(SMOKE).state == STATE_OFF


async def test_dynamic_sources(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    mock_client: MagicMock,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """Sources created, renamed or deleted on the service follow without a reload."""
    garage = {**load_json("sources.json")["sources"][0], "id": "garage", "name": "Garage"}
    await fake_service.send({"type": "source", "source": garage})
    await hass.async_block_till_done()
    device = get_device(hass, (DOMAIN, f"{SERVICE_ID}_garage"))
    assert device is not None
    assert hass.states.get("binary_sensor.garage_smoke_alarm").state == STATE_OFF
    assert hass.states.get("sensor.garage_sound_level").state == "-42.1"
    mock_client.update_source.assert_not_called()

    await fake_service.send({"type": "source", "source": {**garage, "name": "Workshop"}})
    await hass.async_block_till_done()
    assert device_registry.async_get(device.id).name == "Workshop"

    await fake_service.send(event_message(42, source="garage"))
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.garage_smoke_alarm").state == STATE_ON
    await fake_service.send({"type": "source_removed", "source": {"id": "garage"}})
    await fake_service.send({"type": "source_removed", "source": {"id": "garage"}})
    await hass.async_block_till_done()
    assert device_registry.async_get(device.id) is None
    assert hass.states.get("binary_sensor.garage_smoke_alarm") is None
    assert not entity_registry.async_get("binary_sensor.garage_smoke_alarm")

    # Created again later: a fresh device and entities.
    await fake_service.send({"type": "source", "source": garage})
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.garage_smoke_alarm").state == STATE_OFF


async def test_source_gone_while_disconnected(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    device_registry: dr.DeviceRegistry,
) -> None:
    """A source missing from the resubscribe handshake is removed with its device."""
    await fake_service.send(event_message(42, source="hall"))
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    await fake_service.send(
        *handshake(sources=load_json("sources.json")["sources"][:1], last_seq=42)
    )
    await hass.async_block_till_done()
    assert get_device(hass, (DOMAIN, f"{SERVICE_ID}_hall")) is None
    assert hass.states.get("binary_sensor.hall_smoke_alarm") is None
    assert hass.states.get(SMOKE).state == STATE_OFF


async def test_options_sensitivity_leaves_sources_alone(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """The service owns each source's sensitivity: the entry's option (the sensitivity of
    sources added from Home Assistant) is never written over a source's own value."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(mock_config_entry, options={CONF_SENSITIVITY: "high"})
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    await fake_service.send(*handshake())
    garage = {**load_json("sources.json")["sources"][0], "id": "garage", "name": "Garage"}
    await fake_service.send({"type": "source", "source": garage})
    await hass.async_block_till_done()
    mock_client.update_source.assert_not_awaited()
    coordinator = mock_config_entry.runtime_data.coordinator
    assert {s.sensitivity for s in coordinator.sources.values()} == {"medium"}
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_source_state_changes(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
) -> None:
    """A source's new state reaches its entities."""
    kitchen = load_json("sources.json")["sources"][0]
    with patch.object(
        init_integration.runtime_data.coordinator,
        "_notify",
        wraps=init_integration.runtime_data.coordinator._notify,
    ) as notify:
        await fake_service.send(
            {"type": "source", "source": {**kitchen, "state": "retrying", "error": "EOF"}}
        )
    assert notify.call_args.args[0] == "kitchen"
    assert init_integration.runtime_data.coordinator.sources["kitchen"].state == "retrying"


async def test_level_for_unknown_source_ignored(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """Levels of sources the entry does not know are dropped."""
    await fake_service.send({"type": "level", "source": "attic", "dbfs": -3.0})
    assert "attic" not in init_integration.runtime_data.coordinator.levels


async def test_diagnostics_state(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """The coordinator reports its resume point."""
    await fake_service.send(event_message(42))
    data: dict[str, Any] = init_integration.runtime_data.coordinator.diagnostics()
    assert data["connected"]
    assert data["last_seq"] == 42  # the rev of event 42's start
    assert data["open_seqs"] == [42]


# Services that send `rev`: resume from the highest rev, dedupe per event.


def _turned_on(states: list[Any], entity_id: str) -> list[Any]:
    return [
        e
        for e in states
        if e.data["entity_id"] == entity_id
        and e.data["new_state"] is not None
        and e.data["new_state"].state == STATE_ON
    ]


async def _reconnect(hass: HomeAssistant, fake_service: FakeService) -> None:
    count = len(fake_service.subscriptions)
    await fake_service.drop()
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(count + 1)


async def test_replay_out_of_seq_order(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """Events that end in another order than they started are each delivered once.

    While Home Assistant was away, 42 started, 43 started, 43 ended, 42 ended: the replay,
    ordered by rev, brings 43 in its final form before 42.
    """
    bus = async_capture_events(hass, EVENT_SOUND)
    states = async_capture_events(hass, "state_changed")
    await _reconnect(hass, fake_service)
    assert fake_service.subscriptions[-1] == 41
    await fake_service.send(
        event_message(43, "dog_bark", ended=True, replay=True, rev=44),
        event_message(42, ended=True, replay=True, rev=45),
        *handshake(last_seq=45),
    )
    await hass.async_block_till_done()
    assert [(e.data["seq"], e.data["type"], e.data["replay"]) for e in bus] == [
        (43, "start", True),
        (43, "end", True),
        (42, "start", True),
        (42, "end", True),
    ]
    assert not _turned_on(states, SMOKE)
    assert not _turned_on(states, "binary_sensor.kitchen_dog_bark")
    assert hass.states.get(SMOKE).state == STATE_OFF
    assert hass.states.get(EVENT).attributes["seq"] == 42
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.resume.last_seq == 45
    assert coordinator.active_events() == []

    # The same replay again (a service resending from an older point) fires nothing.
    await _reconnect(hass, fake_service)
    assert fake_service.subscriptions[-1] == 45
    await fake_service.send(
        event_message(43, "dog_bark", ended=True, replay=True, rev=44),
        event_message(42, ended=True, replay=True, rev=45),
        *handshake(last_seq=45),
    )
    await hass.async_block_till_done()
    assert len(bus) == 4


async def test_resume_from_highest_rev(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    hass_storage: dict[str, Any],
) -> None:
    """Live events with revs; a resume asks for what changed after the highest rev seen."""
    bus = async_capture_events(hass, EVENT_SOUND)
    await fake_service.send(
        event_message(42, rev=42),
        event_message(43, "dog_bark", rev=43),
        event_message(43, "dog_bark", ended=True, rev=44),
    )
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_ON

    # 42 (still open here) is not replayed while it goes on: resume after 44, not 41.
    await _reconnect(hass, fake_service)
    assert fake_service.subscriptions[-1] == 44
    assert hass.states.get(SMOKE).state == STATE_UNAVAILABLE
    await fake_service.send(
        event_message(45, "doorbell", replay=True, rev=45),
        event_message(43, "dog_bark", ended=True, replay=True, rev=44),  # a repeat
        *handshake(last_seq=45),
    )
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_ON
    assert hass.states.get("binary_sensor.kitchen_doorbell").state == STATE_ON

    # Live again: 42 ends (once), 45 ends; repeats of either change nothing.
    await fake_service.send(
        event_message(42, ended=True, rev=46),
        event_message(42, rev=42),
        event_message(42, ended=True, rev=46),
        event_message(45, "doorbell", ended=True, rev=47),
    )
    await hass.async_block_till_done()
    assert [(e.data["seq"], e.data["type"], e.data["replay"]) for e in bus] == [
        (42, "start", False),
        (43, "start", False),
        (43, "end", False),
        (45, "start", True),
        (42, "end", False),
        (45, "end", False),
    ]
    assert hass.states.get(SMOKE).state == STATE_OFF
    assert hass.states.get("binary_sensor.kitchen_doorbell").state == STATE_OFF

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    data = hass_storage[f"{DOMAIN}.{init_integration.entry_id}"]["data"]
    assert data["last_seq"] == 47
    assert data["open_seqs"] == []
    assert data["seen"] == [[42, 46], [43, 44], [45, 47]]
    assert data["floor"] == 41


async def test_event_started_before_subscribing_is_old_news(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """The end of an event that started before the first subscription is not delivered."""
    bus = async_capture_events(hass, EVENT_SOUND)
    await fake_service.send(event_message(40, ended=True, rev=42))
    await hass.async_block_till_done()
    assert bus == []
    assert init_integration.runtime_data.coordinator.resume.last_seq == 42


async def test_seen_events_are_bounded(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """Only the newest events are remembered; older ones count as delivered, open ones stay."""
    coordinator = init_integration.runtime_data.coordinator
    bus = async_capture_events(hass, EVENT_SOUND)
    coordinator.resume.max_seen = 3
    await fake_service.send(event_message(42, rev=42))
    for seq in range(43, 48):
        await fake_service.send(event_message(seq, "cat", ended=True, rev=seq))
    assert sorted(coordinator.resume.seen) == [42, 46, 47]
    assert coordinator.resume.floor == 45
    # A forgotten event replayed again is old news; the open one still ends once.
    await fake_service.send(
        event_message(44, "cat", ended=True, replay=True, rev=44),
        event_message(42, ended=True, rev=48),
    )
    await hass.async_block_till_done()
    assert [(e.data["seq"], e.data["type"]) for e in bus if e.data["seq"] in (42, 44)] == [
        (42, "start"),
        (44, "start"),
        (44, "end"),
        (42, "end"),
    ]
    assert hass.states.get(SMOKE).state == STATE_OFF


async def test_service_log_reset_with_revs(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """A service whose log restarted below our cursor is followed from its new counter."""
    bus = async_capture_events(hass, EVENT_SOUND)
    await fake_service.send(event_message(42, rev=42), event_message(43, "cat", rev=43))
    await _reconnect(hass, fake_service)
    assert fake_service.subscriptions[-1] == 43
    await fake_service.send(*handshake(last_seq=3))
    await fake_service.send(event_message(4, "cat", rev=4), event_message(4, "cat", rev=4))
    await hass.async_block_till_done()
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.resume.last_seq == 4
    assert hass.states.get(SMOKE).state == STATE_OFF
    assert hass.states.get("binary_sensor.kitchen_cat").state == STATE_ON
    assert [(e.data["seq"], e.data["type"]) for e in bus] == [
        (42, "start"),
        (43, "start"),
        (4, "start"),
    ]
    await _reconnect(hass, fake_service)
    assert fake_service.subscriptions[-1] == 4


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("retrying", "Connection refused"),
        ("connecting", None),
        ("stopped", None),
        ("stalled", "the pushing client sent no audio for 15 s"),
        ("lost", "the pushing client disconnected without push_stop"),
    ],
)
async def test_source_not_heard(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
    state: str,
    error: str | None,
) -> None:
    """A source that is not heard makes its detectors unavailable at once (never "clear"),
    turns its hearing problem sensor on, and after the repair delay raises a repair issue
    naming it and its error; heard again, all of it goes back."""
    kitchen = load_json("sources.json")["sources"][0]
    issue_id = f"source_deaf_{init_integration.entry_id}_kitchen"
    await fake_service.send(
        {"type": "source", "source": {**kitchen, "state": state, "error": error}}
    )
    await hass.async_block_till_done()
    assert hass.states.get(SMOKE).state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.kitchen_sound_level").state == STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.kitchen_hearing_problem").state == STATE_ON
    # The other source is still heard.
    assert hass.states.get("binary_sensor.hall_smoke_alarm").state == STATE_OFF
    assert hass.states.get("binary_sensor.hall_hearing_problem").state == STATE_OFF

    freezer.tick(timedelta(minutes=4, seconds=59))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    freezer.tick(timedelta(seconds=2))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "title": "MiDasheng Audio",
        "source": kitchen["name"],
        "state": state,
        "error": error or "none",
        "minutes": "5",
    }

    await fake_service.send({"type": "source", "source": kitchen})
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert hass.states.get(SMOKE).state == STATE_OFF
    assert hass.states.get("binary_sensor.kitchen_hearing_problem").state == STATE_OFF


async def test_source_heard_again_before_the_repair_delay(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A short outage (a camera rebooting) raises no repair issue; a push source idle by
    design is heard; the delay is the entry's option."""
    kitchen = load_json("sources.json")["sources"][0]
    issue_id = f"source_deaf_{init_integration.entry_id}_kitchen"
    await fake_service.send({"type": "source", "source": {**kitchen, "state": "retrying"}})
    await hass.async_block_till_done()
    freezer.tick(timedelta(minutes=2))
    async_fire_time_changed(hass)
    await fake_service.send({"type": "source", "source": kitchen})
    await hass.async_block_till_done()
    freezer.tick(timedelta(minutes=10))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    hall = load_json("sources.json")["sources"][1]
    assert hall["kind"] == "push"
    await fake_service.send({"type": "source", "source": {**hall, "state": "idle"}})
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.hall_smoke_alarm").state == STATE_OFF
    assert hass.states.get("binary_sensor.hall_hearing_problem").state == STATE_OFF


async def test_repair_delay_option(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The repair delay comes from the options; a removed source takes its issue along."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, options={"repair_after": {"hours": 0, "minutes": 0, "seconds": 30}}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    kitchen = load_json("sources.json")["sources"][0]
    await fake_service.send(
        *handshake(sources=[{**kitchen, "state": "retrying", "error": "refused"}])
    )
    await hass.async_block_till_done()
    issue_id = f"source_deaf_{mock_config_entry.entry_id}_kitchen"
    freezer.tick(timedelta(seconds=31))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    await fake_service.send({"type": "source_removed", "source": {"id": "kitchen"}})
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_storage_problem_is_a_repair_issue(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The service says it cannot store events (its disk is full): a repair issue says what
    it reported, at once; alarms keep arriving; it goes away when storage is fine again and
    when the entry is unloaded."""
    issue_id = f"storage_problem_{init_integration.entry_id}"
    problem = (
        "2 events could not be written (the event database /data/events.db cannot be used: "
        "database or disk is full); they are kept in memory until they can be. Free space on "
        "that disk"
    )
    storage = {"ok": False, "problem": problem, "free_mb": 0.0, "unsaved_events": 2}
    await fake_service.send({"type": "storage", "storage": storage})
    await hass.async_block_till_done()
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_key == "storage_problem"
    assert issue.translation_placeholders == {"title": "MiDasheng Audio", "problem": problem}

    ok = {"ok": True, "problem": None, "free_mb": 812.5, "unsaved_events": 0}
    await fake_service.send({"type": "storage", "storage": ok})
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    await fake_service.send({"type": "storage", "storage": storage})
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
