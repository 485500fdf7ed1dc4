"""Tests for the MiDasheng automation blueprints, run by a real automation engine."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
import shutil
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.automation.config import (
    AUTOMATION_BLUEPRINT_SCHEMA,
    async_validate_config_item,
)
from homeassistant.components.blueprint import Blueprint
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
)
from homeassistant.setup import async_setup_component
from homeassistant.util import yaml as yaml_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)

DOMAIN = "midasheng"
BLUEPRINT_DIR = Path(__file__).parents[3] / "blueprints" / "automation" / DOMAIN
BLUEPRINT_FILES = (
    "baby_crying_night_light.yaml",
    "clap_to_toggle_light.yaml",
    "glass_break_while_away.yaml",
    "smoke_co_alarm_response.yaml",
    "sound_alert_notification.yaml",
    "sound_mode_follows_presence.yaml",
    "water_running_too_long.yaml",
)
SOURCE_URL = (
    "https://github.com/midasheng-audio/midasheng-ha/blob/main/blueprints/automation/midasheng/"
)
AUTOMATION = "automation.test"

# The smallest set of inputs each blueprint needs; everything else has a default.
REQUIRED_INPUTS: dict[str, dict[str, Any]] = {
    "baby_crying_night_light.yaml": {
        "cry_sensor": "binary_sensor.nursery_baby_cry",
        "light_target": {"entity_id": "light.nursery"},
    },
    "clap_to_toggle_light.yaml": {
        "gesture_entity": "event.living_room_gesture",
        "target_entities": {"entity_id": "light.living_room"},
    },
    "glass_break_while_away.yaml": {"glass_sensors": ["binary_sensor.living_room_glass_break"]},
    "smoke_co_alarm_response.yaml": {"alarm_sensors": ["binary_sensor.kitchen_smoke_alarm"]},
    "sound_alert_notification.yaml": {},
    "sound_mode_follows_presence.yaml": {"mode_selects": ["select.hall_mode"]},
    "water_running_too_long.yaml": {"water_sensors": ["binary_sensor.kitchen_water_running"]},
}

CRITICAL_DATA = {
    "push": {
        "interruption-level": "critical",
        "sound": {"name": "default", "critical": 1, "volume": 1.0},
    },
    "ttl": 0,
    "priority": "high",
    "channel": "alarm_stream",
}


@pytest.fixture(autouse=True)
def blueprint_config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Give Home Assistant a temporary config dir holding copies of the blueprints."""
    hass.config.config_dir = str(tmp_path)
    target = Path(hass.config.path("blueprints", "automation", DOMAIN))
    target.mkdir(parents=True)
    for filename in BLUEPRINT_FILES:
        shutil.copy(BLUEPRINT_DIR / filename, target / filename)
    return target


@pytest.fixture
def config_entry(hass: HomeAssistant) -> MockConfigEntry:
    """Return a (never loaded) config entry that owns the test devices."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id="service-1", title="MiDasheng")
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
def add_entity(hass: HomeAssistant, config_entry: MockConfigEntry):
    """Return a factory that registers a source device and one of its entities."""

    def _add(
        entity_id: str,
        name: str,
        *,
        source: str,
        area: str | None = None,
        device_class: str | None = None,
        state: str = STATE_OFF,
        attributes: dict[str, Any] | None = None,
    ) -> str:
        domain, object_id = entity_id.split(".")
        device = dr.async_get(hass).async_get_or_create(
            config_entry_id=config_entry.entry_id,
            identifiers={(DOMAIN, f"service-1_{source}")},
            name=source,
        )
        if area is not None:
            area_id = ar.async_get(hass).async_get_or_create(area).id
            dr.async_get(hass).async_update_device(device.id, area_id=area_id)
        entry = er.async_get(hass).async_get_or_create(
            domain,
            DOMAIN,
            f"service-1_{object_id}",
            suggested_object_id=object_id,
            config_entry=config_entry,
            device_id=device.id,
            has_entity_name=True,
            original_name=name,
            original_device_class=device_class,
        )
        assert entry.entity_id == entity_id
        attrs = {"friendly_name": f"{source} {name}", **(attributes or {})}
        if device_class is not None:
            attrs["device_class"] = device_class
        hass.states.async_set(entity_id, state, attrs)
        return entity_id

    return _add


async def setup_blueprint(hass: HomeAssistant, filename: str, inputs: dict[str, Any]) -> None:
    """Set up one automation from a blueprint and check that it loaded."""
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "alias": "Test",
                "use_blueprint": {"path": f"{DOMAIN}/{filename}", "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    state = hass.states.get(AUTOMATION)
    assert state is not None
    assert state.state == STATE_ON


async def settle() -> None:
    """Let triggered automations run as far as they can.

    async_block_till_done would wait forever on a run parked in a wait or a delay,
    so spin the event loop a fixed number of times instead (as core's own
    blueprint tests do).
    """
    for _ in range(50):
        await asyncio.sleep(0)


async def set_state(hass: HomeAssistant, entity_id: str, state: str, **attributes: Any) -> None:
    """Change a state, keeping its attributes, and let automations react."""
    old = hass.states.get(entity_id)
    attrs = {**(old.attributes if old else {}), **attributes}
    hass.states.async_set(entity_id, state, attrs)
    await settle()


async def advance(freezer: FrozenDateTimeFactory, hass: HomeAssistant, delta: timedelta) -> None:
    """Move the clock forward and fire the timers that became due."""
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await settle()


def mock_services(hass: HomeAssistant, *names: str) -> dict[str, list[ServiceCall]]:
    """Register mock services by "domain.service" and return their call logs."""
    return {name: async_mock_service(hass, *name.split(".")) for name in names}


# --- schema ------------------------------------------------------------------------------


def test_blueprint_folder_holds_every_tested_blueprint() -> None:
    """Every blueprint is tested and every tested blueprint exists."""
    assert sorted(path.name for path in BLUEPRINT_DIR.glob("*.yaml")) == list(BLUEPRINT_FILES)


@pytest.mark.parametrize("filename", BLUEPRINT_FILES)
def test_blueprint_schema(filename: str) -> None:
    """Each blueprint passes Home Assistant's automation blueprint schema."""
    blueprint = Blueprint(
        yaml_util.load_yaml(BLUEPRINT_DIR / filename),
        path=f"{DOMAIN}/{filename}",
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    assert blueprint.validate() is None
    metadata = blueprint.metadata
    assert metadata["domain"] == "automation"
    assert metadata["source_url"] == SOURCE_URL + filename
    assert metadata["name"].startswith("MiDasheng ")
    assert metadata["description"]
    assert "author" not in metadata
    for key, spec in blueprint.inputs.items():
        assert spec.get("name"), key
        assert "selector" in spec, key
    required = {key for key, spec in blueprint.inputs.items() if "default" not in spec}
    assert required == set(REQUIRED_INPUTS[filename])


@pytest.mark.parametrize("filename", BLUEPRINT_FILES)
async def test_blueprint_instance_validates(hass: HomeAssistant, filename: str) -> None:
    """An automation using only the required inputs passes full config validation."""
    config = await async_validate_config_item(
        hass,
        "test",
        {
            "id": "test",
            "alias": "Test",
            "use_blueprint": {"path": f"{DOMAIN}/{filename}", "input": REQUIRED_INPUTS[filename]},
        },
    )
    assert config is not None
    assert config.validation_status == "ok"
    assert config["triggers"]
    assert config["actions"]


async def test_missing_required_input_is_rejected(hass: HomeAssistant) -> None:
    """Leaving out a required input is reported instead of silently ignored."""
    with pytest.raises(HomeAssistantError, match="cry_sensor"):
        await async_validate_config_item(
            hass,
            "test",
            {
                "alias": "Test",
                "use_blueprint": {
                    "path": f"{DOMAIN}/baby_crying_night_light.yaml",
                    "input": {"light_target": {"entity_id": "light.nursery"}},
                },
            },
        )


# --- sound alert notification -------------------------------------------------------------


async def test_sound_alert_from_binary_sensor(hass: HomeAssistant, add_entity) -> None:
    """A sound sensor turning on notifies, announces and runs the extra actions."""
    sensor = add_entity(
        "binary_sensor.kitchen_dog_bark",
        "Dog bark",
        source="Kitchen camera",
        area="Kitchen",
        device_class="sound",
    )
    calls = mock_services(
        hass, "notify.mobile_app_phone", "notify.send_message", "tts.speak", "test.extra"
    )
    await setup_blueprint(
        hass,
        "sound_alert_notification.yaml",
        {
            "sound_sensors": [sensor],
            "notify_services": ["mobile_app_phone"],
            "notify_entities": ["notify.kitchen_display"],
            "notify_data": {"tag": "midasheng"},
            "tts_entity": "tts.piper",
            "tts_media_players": ["media_player.living_room"],
            "extra_actions": [
                {
                    "action": "test.extra",
                    "data": {"text": "{{ sound }}|{{ area }}|{{ source }}|{{ label }}|{{ score }}"},
                }
            ],
        },
    )

    await set_state(hass, sensor, STATE_ON)

    assert len(calls["notify.mobile_app_phone"]) == 1
    assert calls["notify.mobile_app_phone"][0].data == {
        "title": "Dog bark",
        "message": "Dog bark heard in Kitchen (Kitchen camera)",
        "data": {"tag": "midasheng"},
    }
    assert len(calls["notify.send_message"]) == 1
    assert calls["notify.send_message"][0].data == {
        "entity_id": ["notify.kitchen_display"],
        "title": "Dog bark",
        "message": "Dog bark heard in Kitchen (Kitchen camera)",
    }
    assert len(calls["tts.speak"]) == 1
    assert calls["tts.speak"][0].data == {
        "entity_id": ["tts.piper"],
        "media_player_entity_id": ["media_player.living_room"],
        "message": "Dog bark heard in Kitchen (Kitchen camera)",
        "cache": True,
    }
    # A binary sensor has no score (the event entity has); the label is the sound's name.
    assert calls["test.extra"][0].data == {"text": "Dog bark|Kitchen|Kitchen camera|Dog bark|None"}

    # Going back to off, or a new score while on, is not a new sound.
    await set_state(hass, sensor, STATE_OFF)
    assert len(calls["notify.mobile_app_phone"]) == 1


async def test_sound_alert_source_without_area(hass: HomeAssistant, add_entity) -> None:
    """Without an area the message names the source; no TTS entity means no announcement."""
    sensor = add_entity(
        "binary_sensor.kitchen_smoke_alarm", "Smoke alarm", source="Kitchen", device_class="smoke"
    )
    calls = mock_services(hass, "notify.mobile_app_phone", "tts.speak")
    await setup_blueprint(
        hass,
        "sound_alert_notification.yaml",
        {
            "sound_sensors": [sensor],
            "notify_services": ["notify.mobile_app_phone"],
            "tts_media_players": ["media_player.living_room"],
        },
    )

    await set_state(hass, sensor, STATE_ON)

    assert [call.data["message"] for call in calls["notify.mobile_app_phone"]] == [
        "Smoke alarm heard in Kitchen"
    ]
    assert calls["tts.speak"] == []


async def test_sound_alert_from_event_entity_by_category(hass: HomeAssistant, add_entity) -> None:
    """Events of a source only alert for the selected categories."""
    event_entity = add_entity(
        "event.nursery_sound",
        "Sound",
        source="Nursery",
        area="Nursery",
        state="unknown",
        attributes={"event_types": ["baby_cry", "speech", "dog_bark"]},
    )
    calls = mock_services(hass, "notify.mobile_app_phone", "test.extra")
    await setup_blueprint(
        hass,
        "sound_alert_notification.yaml",
        {
            "sound_event_entities": [event_entity],
            "categories": ["baby_cry", "dog_bark"],
            "notify_services": ["notify.mobile_app_phone"],
            "cooldown": 0,
            "extra_actions": [
                {
                    "action": "test.extra",
                    "data": {"text": "{{ category }}|{{ label }}|{{ score }}"},
                }
            ],
        },
    )

    await set_state(hass, event_entity, "2025-01-15T03:00:00.000+00:00", event_type="speech")
    assert calls["notify.mobile_app_phone"] == []

    await set_state(
        hass,
        event_entity,
        "2025-01-15T03:00:05.000+00:00",
        event_type="baby_cry",
        label="Baby cry",
        score=0.91,
    )
    assert [call.data["message"] for call in calls["notify.mobile_app_phone"]] == [
        "Baby crying heard in Nursery"
    ]
    # The event entity carries the event's data.
    assert calls["test.extra"][0].data == {"text": "baby_cry|Baby cry|0.91"}

    # A dropped connection restores the old event: not a new sound.
    await set_state(hass, event_entity, STATE_UNAVAILABLE)
    await set_state(hass, event_entity, "2025-01-15T03:00:05.000+00:00", event_type="baby_cry")
    assert len(calls["notify.mobile_app_phone"]) == 1

    await set_state(hass, event_entity, "2025-01-15T03:00:09.000+00:00", event_type="dog_bark")
    assert [call.data["title"] for call in calls["notify.mobile_app_phone"]] == [
        "Baby crying",
        "Dog bark",
    ]


async def test_sound_alert_any_category_when_none_selected(hass: HomeAssistant, add_entity) -> None:
    """With no categories selected every event of the source alerts."""
    event_entity = add_entity("event.hall_sound", "Sound", source="Hall", state="unknown")
    calls = mock_services(hass, "notify.mobile_app_phone")
    await setup_blueprint(
        hass,
        "sound_alert_notification.yaml",
        {
            "sound_event_entities": [event_entity],
            "notify_services": ["mobile_app_phone"],
            "notify_message": "{{ category }} at {{ source }}",
        },
    )

    await set_state(hass, event_entity, "2025-01-15T03:00:00.000+00:00", event_type="knock")

    assert [call.data["message"] for call in calls["notify.mobile_app_phone"]] == ["knock at Hall"]


async def test_sound_alert_cooldown(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """A second sound within the cooldown is dropped; after it, it alerts again."""
    sensor = add_entity(
        "binary_sensor.yard_dog_bark", "Dog bark", source="Yard", device_class="sound"
    )
    calls = mock_services(hass, "notify.mobile_app_phone")
    await setup_blueprint(
        hass,
        "sound_alert_notification.yaml",
        {"sound_sensors": [sensor], "notify_services": ["mobile_app_phone"], "cooldown": 120},
    )

    await set_state(hass, sensor, STATE_ON)
    await set_state(hass, sensor, STATE_OFF)
    freezer.tick(timedelta(seconds=60))
    await set_state(hass, sensor, STATE_ON)
    assert len(calls["notify.mobile_app_phone"]) == 1

    await set_state(hass, sensor, STATE_OFF)
    freezer.tick(timedelta(seconds=61))
    await set_state(hass, sensor, STATE_ON)
    assert len(calls["notify.mobile_app_phone"]) == 2


# --- smoke and CO alarm response ------------------------------------------------------------

ALARM_SERVICES = (
    "notify.mobile_app_phone",
    "notify.send_message",
    "light.turn_on",
    "media_player.media_pause",
    "lock.unlock",
    "test.extra",
)


async def test_smoke_alarm_response(hass: HomeAssistant, add_entity) -> None:
    """A smoke alarm sends a critical alert, lights the way, pauses media, unlocks."""
    sensor = add_entity(
        "binary_sensor.kitchen_smoke_alarm",
        "Smoke alarm",
        source="Kitchen",
        area="Kitchen",
        device_class="smoke",
    )
    calls = mock_services(hass, *ALARM_SERVICES)
    await setup_blueprint(
        hass,
        "smoke_co_alarm_response.yaml",
        {
            "alarm_sensors": [sensor],
            "notify_services": ["mobile_app_phone"],
            "notify_entities": ["notify.hall_display"],
            "light_target": {"area_id": "hallway", "entity_id": ["light.stairs"]},
            "media_player_target": {"entity_id": "media_player.living_room"},
            "lock_target": {"entity_id": "lock.front_door"},
            "extra_actions": [{"action": "test.extra", "data": {"text": "{{ message }}"}}],
        },
    )

    await set_state(hass, sensor, STATE_ON)

    assert [call.data for call in calls["notify.mobile_app_phone"]] == [
        {"title": "Smoke alarm", "message": "Smoke alarm heard in Kitchen!", "data": CRITICAL_DATA}
    ]
    assert [call.data for call in calls["notify.send_message"]] == [
        {
            "entity_id": ["notify.hall_display"],
            "title": "Smoke alarm",
            "message": "Smoke alarm heard in Kitchen!",
        }
    ]
    assert [call.data for call in calls["light.turn_on"]] == [
        {"area_id": ["hallway"], "entity_id": ["light.stairs"], "brightness_pct": 100}
    ]
    assert [call.data for call in calls["media_player.media_pause"]] == [
        {"entity_id": ["media_player.living_room"]}
    ]
    assert [call.data for call in calls["lock.unlock"]] == [{"entity_id": ["lock.front_door"]}]
    assert [call.data for call in calls["test.extra"]] == [
        {"text": "Smoke alarm heard in Kitchen!"}
    ]


async def test_co_alarm_without_critical_or_devices(hass: HomeAssistant, add_entity) -> None:
    """A CO alarm is named as such; empty targets and critical off are respected."""
    sensor = add_entity(
        "binary_sensor.garage_co_alarm",
        "CO alarm",
        source="Garage mic",
        area="Garage",
        device_class="carbon_monoxide",
    )
    calls = mock_services(hass, *ALARM_SERVICES)
    await setup_blueprint(
        hass,
        "smoke_co_alarm_response.yaml",
        {
            "alarm_sensors": [sensor],
            "notify_services": ["notify.mobile_app_phone"],
            "critical_notification": False,
        },
    )

    await set_state(hass, sensor, STATE_ON)

    assert [call.data for call in calls["notify.mobile_app_phone"]] == [
        {
            "title": "Carbon monoxide alarm",
            "message": "Carbon monoxide alarm heard in Garage (Garage mic)!",
            "data": {},
        }
    ]
    for name in ALARM_SERVICES[1:]:
        assert calls[name] == [], name


async def test_alarm_response_survives_a_failing_device(hass: HomeAssistant, add_entity) -> None:
    """A media player that fails does not stop the lights or the notification."""
    sensor = add_entity(
        "binary_sensor.hall_fire_alarm", "Fire alarm", source="Hall", device_class="smoke"
    )
    calls = mock_services(hass, "notify.mobile_app_phone", "light.turn_on")
    pause_calls = async_mock_service(
        hass, "media_player", "media_pause", raise_exception=HomeAssistantError("offline")
    )
    await setup_blueprint(
        hass,
        "smoke_co_alarm_response.yaml",
        {
            "alarm_sensors": [sensor],
            "notify_services": ["mobile_app_phone"],
            "light_target": {"entity_id": "light.hall"},
            "media_player_target": {"entity_id": "media_player.tv"},
        },
    )

    await set_state(hass, sensor, STATE_ON)

    assert len(pause_calls) == 1
    assert len(calls["light.turn_on"]) == 1
    assert [call.data["message"] for call in calls["notify.mobile_app_phone"]] == [
        "Fire alarm heard in Hall!"
    ]


async def test_alarm_response_ignores_other_sensors(hass: HomeAssistant, add_entity) -> None:
    """Only the chosen alarm sensors start the response."""
    chosen = add_entity(
        "binary_sensor.kitchen_smoke_alarm", "Smoke alarm", source="Kitchen", device_class="smoke"
    )
    other = add_entity(
        "binary_sensor.garage_smoke_alarm", "Smoke alarm", source="Garage", device_class="smoke"
    )
    calls = mock_services(hass, "notify.mobile_app_phone")
    await setup_blueprint(
        hass,
        "smoke_co_alarm_response.yaml",
        {"alarm_sensors": [chosen], "notify_services": ["mobile_app_phone"]},
    )

    await set_state(hass, other, STATE_ON)

    assert calls["notify.mobile_app_phone"] == []


# --- baby crying night light --------------------------------------------------------------

NIGHT = "2025-01-15 23:30:00-08:00"  # the test instance runs in US/Pacific
DAY = "2025-01-15 14:00:00-08:00"


async def test_night_light_on_and_off_after_quiet(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """Crying at night turns the light on; quiet for N minutes turns it off."""
    freezer.move_to(NIGHT)
    sensor = add_entity(
        "binary_sensor.nursery_baby_cry", "Baby crying", source="Nursery", device_class="sound"
    )
    calls = mock_services(hass, "light.turn_on", "light.turn_off")
    await setup_blueprint(
        hass,
        "baby_crying_night_light.yaml",
        {
            "cry_sensor": sensor,
            "light_target": {"entity_id": "light.nursery"},
            "brightness": 15,
            "set_color_temp": True,
            "color_temp": 2400,
            "quiet_minutes": 5,
        },
    )

    await set_state(hass, sensor, STATE_ON)
    assert [call.data for call in calls["light.turn_on"]] == [
        {"entity_id": ["light.nursery"], "brightness_pct": 15, "color_temp_kelvin": 2400}
    ]

    # Quiet for a while, then crying again: the quiet period starts over.
    await set_state(hass, sensor, STATE_OFF)
    await advance(freezer, hass, timedelta(minutes=4))
    await set_state(hass, sensor, STATE_ON)
    await set_state(hass, sensor, STATE_OFF)
    await advance(freezer, hass, timedelta(minutes=4))
    assert calls["light.turn_off"] == []
    assert len(calls["light.turn_on"]) == 2

    await advance(freezer, hass, timedelta(minutes=1, seconds=1))
    assert [call.data for call in calls["light.turn_off"]] == [{"entity_id": ["light.nursery"]}]


async def test_night_light_defaults_across_midnight(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """Defaults: 20 % brightness, no color temperature, a window spanning midnight."""
    freezer.move_to("2025-01-16 02:00:00-08:00")
    sensor = add_entity(
        "binary_sensor.nursery_baby_cry", "Baby crying", source="Nursery", device_class="sound"
    )
    calls = mock_services(hass, "light.turn_on", "light.turn_off")
    await setup_blueprint(
        hass, "baby_crying_night_light.yaml", REQUIRED_INPUTS["baby_crying_night_light.yaml"]
    )

    await set_state(hass, sensor, STATE_ON)
    await set_state(hass, sensor, STATE_OFF)
    await advance(freezer, hass, timedelta(minutes=10, seconds=1))

    assert [call.data for call in calls["light.turn_on"]] == [
        {"entity_id": ["light.nursery"], "brightness_pct": 20}
    ]
    assert len(calls["light.turn_off"]) == 1


async def test_night_light_not_during_the_day(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """Crying outside the time window leaves the light alone."""
    freezer.move_to(DAY)
    sensor = add_entity(
        "binary_sensor.nursery_baby_cry", "Baby crying", source="Nursery", device_class="sound"
    )
    calls = mock_services(hass, "light.turn_on", "light.turn_off")
    await setup_blueprint(
        hass, "baby_crying_night_light.yaml", REQUIRED_INPUTS["baby_crying_night_light.yaml"]
    )

    await set_state(hass, sensor, STATE_ON)
    await set_state(hass, sensor, STATE_OFF)
    await advance(freezer, hass, timedelta(minutes=15))

    assert calls["light.turn_on"] == []
    assert calls["light.turn_off"] == []


# --- water running too long --------------------------------------------------------------


async def test_water_running_too_long_closes_valve_and_notifies(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """Water running past the duration closes the valve, then notifies."""
    sensor = add_entity(
        "binary_sensor.bathroom_water_running",
        "Water running",
        source="Bathroom",
        area="Upstairs bathroom",
        device_class="sound",
    )
    calls = mock_services(
        hass, "valve.close_valve", "notify.mobile_app_phone", "notify.send_message"
    )
    await setup_blueprint(
        hass,
        "water_running_too_long.yaml",
        {
            "water_sensors": [sensor],
            "duration": {"hours": 0, "minutes": 15, "seconds": 0},
            "notify_services": ["mobile_app_phone"],
            "notify_entities": ["notify.kitchen_display"],
            "valve_target": {"entity_id": "valve.main_water"},
        },
    )

    await set_state(hass, sensor, STATE_ON)
    await advance(freezer, hass, timedelta(minutes=14))
    assert calls["valve.close_valve"] == []

    await advance(freezer, hass, timedelta(minutes=1, seconds=1))
    message = "Water has been running in Upstairs bathroom (Bathroom) for 15 minutes. Closing the water valve."
    assert [call.data for call in calls["valve.close_valve"]] == [
        {"entity_id": ["valve.main_water"]}
    ]
    assert [call.data for call in calls["notify.mobile_app_phone"]] == [
        {"title": "Water running", "message": message}
    ]
    assert [call.data for call in calls["notify.send_message"]] == [
        {"entity_id": ["notify.kitchen_display"], "title": "Water running", "message": message}
    ]


async def test_water_running_without_valve(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """With no valve the message says nothing about closing one."""
    sensor = add_entity(
        "binary_sensor.kitchen_water_running",
        "Water running",
        source="Kitchen",
        device_class="sound",
    )
    calls = mock_services(hass, "valve.close_valve", "notify.mobile_app_phone")
    await setup_blueprint(
        hass,
        "water_running_too_long.yaml",
        {"water_sensors": [sensor], "notify_services": ["mobile_app_phone"]},
    )

    await set_state(hass, sensor, STATE_ON)
    await advance(freezer, hass, timedelta(minutes=10, seconds=1))

    assert calls["valve.close_valve"] == []
    assert [call.data["message"] for call in calls["notify.mobile_app_phone"]] == [
        "Water has been running in Kitchen for 10 minutes."
    ]


async def test_water_running_briefly_is_ignored(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """Water that stops before the duration does nothing, even much later."""
    sensor = add_entity(
        "binary_sensor.kitchen_water_running",
        "Water running",
        source="Kitchen",
        device_class="sound",
    )
    calls = mock_services(hass, "valve.close_valve", "notify.mobile_app_phone")
    await setup_blueprint(
        hass,
        "water_running_too_long.yaml",
        {
            "water_sensors": [sensor],
            "notify_services": ["mobile_app_phone"],
            "valve_target": {"entity_id": "valve.main_water"},
        },
    )

    await set_state(hass, sensor, STATE_ON)
    await advance(freezer, hass, timedelta(minutes=9))
    await set_state(hass, sensor, STATE_OFF)
    await advance(freezer, hass, timedelta(minutes=30))

    assert calls["valve.close_valve"] == []
    assert calls["notify.mobile_app_phone"] == []


# --- glass break while away ---------------------------------------------------------------

GLASS_SERVICES = ("siren.turn_on", "siren.turn_off", "notify.mobile_app_phone")


@pytest.fixture
def glass_sensor(add_entity) -> str:
    """Return a glass break sensor in the living room."""
    return add_entity(
        "binary_sensor.living_room_glass_break",
        "Glass break",
        source="Living room",
        area="Living room",
        device_class="safety",
    )


async def test_glass_break_while_away(
    hass: HomeAssistant, glass_sensor: str, freezer: FrozenDateTimeFactory
) -> None:
    """Nobody in the Home zone: siren on, critical notification, siren off later."""
    hass.states.async_set("zone.home", "0")
    calls = mock_services(hass, *GLASS_SERVICES, "notify.send_message")
    await setup_blueprint(
        hass,
        "glass_break_while_away.yaml",
        {
            "glass_sensors": [glass_sensor],
            "siren_target": {"entity_id": "siren.hallway"},
            "siren_minutes": 2,
            "notify_services": ["mobile_app_phone"],
            "notify_entities": ["notify.office_display"],
        },
    )

    await set_state(hass, glass_sensor, STATE_ON)

    message = "Glass break heard in Living room while you are away."
    assert [call.data for call in calls["siren.turn_on"]] == [{"entity_id": ["siren.hallway"]}]
    assert [call.data for call in calls["notify.mobile_app_phone"]] == [
        {"title": "Glass break", "message": message, "data": CRITICAL_DATA}
    ]
    assert [call.data for call in calls["notify.send_message"]] == [
        {"entity_id": ["notify.office_display"], "title": "Glass break", "message": message}
    ]
    assert calls["siren.turn_off"] == []

    await advance(freezer, hass, timedelta(minutes=2, seconds=1))
    assert [call.data for call in calls["siren.turn_off"]] == [{"entity_id": ["siren.hallway"]}]


@pytest.mark.parametrize(
    ("away_mode", "people_home", "panel_state", "expected"),
    [
        ("either", "0", "disarmed", True),
        ("either", "2", "armed_away", True),
        ("either", "1", "disarmed", False),
        ("either", "1", None, False),
        ("nobody_home", "0", "disarmed", True),
        ("nobody_home", "1", "armed_away", False),
        ("alarm_armed", "1", "armed_vacation", True),
        ("alarm_armed", "0", "disarmed", False),
        ("alarm_armed", "0", None, False),
        ("both", "0", "armed_away", True),
        ("both", "0", "armed_night", False),
        ("both", "1", "armed_away", False),
    ],
)
async def test_glass_break_away_modes(
    hass: HomeAssistant,
    glass_sensor: str,
    away_mode: str,
    people_home: str,
    panel_state: str | None,
    expected: bool,
) -> None:
    """Each way of deciding that the house is empty gates the response."""
    hass.states.async_set("zone.home", people_home)
    inputs: dict[str, Any] = {
        "glass_sensors": [glass_sensor],
        "away_mode": away_mode,
        "siren_target": {"entity_id": "siren.hallway"},
        "siren_minutes": 0,
        "notify_services": ["mobile_app_phone"],
    }
    if panel_state is not None:
        hass.states.async_set("alarm_control_panel.house", panel_state)
        inputs["alarm_panel"] = "alarm_control_panel.house"
    calls = mock_services(hass, *GLASS_SERVICES)
    await setup_blueprint(hass, "glass_break_while_away.yaml", inputs)

    await set_state(hass, glass_sensor, STATE_ON)

    assert len(calls["siren.turn_on"]) == int(expected)
    assert len(calls["notify.mobile_app_phone"]) == int(expected)
    assert calls["siren.turn_off"] == []


@pytest.mark.parametrize(
    ("people_states", "expected"),
    [
        (["not_home", "Work"], True),
        (["not_home", "home"], False),
    ],
)
async def test_glass_break_with_people(
    hass: HomeAssistant, glass_sensor: str, people_states: list[str], expected: bool
) -> None:
    """Chosen people decide who must be away, whatever the Home zone says."""
    hass.states.async_set("zone.home", "3")
    people = [f"person.member_{index}" for index in range(len(people_states))]
    for person, state in zip(people, people_states, strict=True):
        hass.states.async_set(person, state)
    calls = mock_services(hass, *GLASS_SERVICES)
    await setup_blueprint(
        hass,
        "glass_break_while_away.yaml",
        {
            "glass_sensors": [glass_sensor],
            "away_mode": "nobody_home",
            "people": people,
            "notify_services": ["mobile_app_phone"],
            "critical_notification": False,
        },
    )

    await set_state(hass, glass_sensor, STATE_ON)

    assert [call.data.get("data") for call in calls["notify.mobile_app_phone"]] == (
        [{}] if expected else []
    )


async def test_glass_break_unknown_presence_is_not_away(
    hass: HomeAssistant, glass_sensor: str
) -> None:
    """Without a Home zone state nobody can tell the house is empty: no siren."""
    calls = mock_services(hass, *GLASS_SERVICES)
    await setup_blueprint(
        hass,
        "glass_break_while_away.yaml",
        {
            "glass_sensors": [glass_sensor],
            "away_mode": "nobody_home",
            "siren_target": {"entity_id": "siren.hallway"},
        },
    )

    await set_state(hass, glass_sensor, STATE_ON)

    assert calls["siren.turn_on"] == []


# --- clap to toggle a light --------------------------------------------------------------


async def test_clap_toggles_the_light(hass: HomeAssistant, add_entity) -> None:
    """The chosen gesture toggles the target; another gesture, a restored state after a
    reconnect and a repeat within the cooldown do not."""
    gesture = add_entity(
        "event.living_room_gesture",
        "Gesture",
        source="Living room",
        state="unknown",
        attributes={"event_types": ["double_clap", "triple_clap", "double_snap"]},
    )
    calls = mock_services(hass, "homeassistant.toggle")
    await setup_blueprint(
        hass,
        "clap_to_toggle_light.yaml",
        {
            "gesture_entity": gesture,
            "gesture": "double_clap",
            "target_entities": {"entity_id": "light.living_room"},
            "cooldown": 3,
        },
    )

    await set_state(hass, gesture, "2025-01-15T20:00:00.000+00:00", event_type="triple_clap")
    await settle()
    assert calls["homeassistant.toggle"] == []

    await set_state(hass, gesture, "2025-01-15T20:00:05.000+00:00", event_type="double_clap")
    await settle()
    assert [c.data for c in calls["homeassistant.toggle"]] == [{"entity_id": ["light.living_room"]}]

    # Within the cooldown: ignored.
    await set_state(hass, gesture, "2025-01-15T20:00:06.000+00:00", event_type="double_clap")
    await settle()
    assert len(calls["homeassistant.toggle"]) == 1

    # A lost connection restores the last gesture: not a new one.
    await set_state(hass, gesture, STATE_UNAVAILABLE)
    await set_state(hass, gesture, "2025-01-15T20:00:06.000+00:00", event_type="double_clap")
    await settle()
    assert len(calls["homeassistant.toggle"]) == 1


# --- sound mode follows presence -----------------------------------------------------------

MODE_SELECTS = ["select.hall_mode", "select.nursery_mode"]


async def _mode_setup(
    hass: HomeAssistant, add_entity, inputs: dict[str, Any] | None = None, state: str = "home"
) -> list[ServiceCall]:
    for entity_id in MODE_SELECTS:
        source = entity_id.split(".")[1].split("_")[0].title()
        add_entity(entity_id, "Mode", source=source, state=state)
    calls = mock_services(hass, "select.select_option")["select.select_option"]
    await setup_blueprint(
        hass,
        "sound_mode_follows_presence.yaml",
        {"mode_selects": MODE_SELECTS, **(inputs or {})},
    )
    return calls


def _options(calls: list[ServiceCall]) -> list[tuple[list[str], str]]:
    return [(call.data["entity_id"], call.data["option"]) for call in calls]


def _apply(hass: HomeAssistant, calls: list[ServiceCall]) -> None:
    """Do what the last select_option call asked (the service mock changes nothing)."""
    for entity_id in calls[-1].data["entity_id"]:
        hass.states.async_set(entity_id, calls[-1].data["option"])


async def test_mode_follows_the_home_zone_and_the_night(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """Everybody leaves: away; somebody is back: home; the night starts: night."""
    freezer.move_to("2025-01-15 18:00:00-08:00")
    hass.states.async_set("zone.home", "2")
    calls = await _mode_setup(hass, add_entity)

    await set_state(hass, "zone.home", "0")
    assert _options(calls) == [(MODE_SELECTS, "away")]
    for entity_id in MODE_SELECTS:
        hass.states.async_set(entity_id, "away")

    await set_state(hass, "zone.home", "1")
    assert _options(calls)[1:] == [(MODE_SELECTS, "home")]
    for entity_id in MODE_SELECTS:
        hass.states.async_set(entity_id, "home")

    # 23:00 (the default night start), then 07:00 (its end).
    await advance(freezer, hass, timedelta(hours=5))
    assert _options(calls)[2:] == [(MODE_SELECTS, "night")]
    for entity_id in MODE_SELECTS:
        hass.states.async_set(entity_id, "night")
    await advance(freezer, hass, timedelta(hours=8))
    assert _options(calls)[3:] == [(MODE_SELECTS, "home")]


async def test_mode_follows_the_alarm_panel_and_chosen_people(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """An armed-night panel means night, armed away means away, with people home; chosen
    people, not the Home zone, decide who is home."""
    freezer.move_to("2025-01-15 12:00:00-08:00")
    hass.states.async_set("zone.home", "0")
    hass.states.async_set("person.ann", "home")
    hass.states.async_set("alarm_control_panel.house", "disarmed")
    calls = await _mode_setup(
        hass,
        add_entity,
        {
            "people": ["person.ann"],
            "alarm_panel": "alarm_control_panel.house",
            "use_night_time": False,
        },
    )

    await set_state(hass, "alarm_control_panel.house", "armed_night")
    assert _options(calls) == [(MODE_SELECTS, "night")]
    _apply(hass, calls)
    await set_state(hass, "alarm_control_panel.house", "armed_away")
    assert _options(calls)[1:] == [(MODE_SELECTS, "away")]
    _apply(hass, calls)
    await set_state(hass, "alarm_control_panel.house", "disarmed")
    assert _options(calls)[2:] == [(MODE_SELECTS, "home")]
    _apply(hass, calls)
    # The Home zone is ignored when people are chosen; Ann leaving is what counts.
    await set_state(hass, "zone.home", "3")
    assert len(calls) == 3
    await set_state(hass, "person.ann", "not_home")
    assert _options(calls)[3:] == [(MODE_SELECTS, "away")]


async def test_mode_changes_only_what_differs_and_catches_up(
    hass: HomeAssistant, add_entity, freezer: FrozenDateTimeFactory
) -> None:
    """Selects already in the wanted mode are left alone; an unavailable one is skipped
    and set when it comes back; an unknown Home zone is not "away"."""
    freezer.move_to("2025-01-15 12:00:00-08:00")
    calls = await _mode_setup(hass, add_entity, state="home")

    await set_state(hass, "zone.home", "unknown")
    assert calls == []

    hass.states.async_set(MODE_SELECTS[0], "away")
    hass.states.async_set(MODE_SELECTS[1], STATE_UNAVAILABLE)
    await set_state(hass, "zone.home", "0")
    assert calls == []

    await set_state(hass, MODE_SELECTS[1], "home")
    assert _options(calls) == [([MODE_SELECTS[1]], "away")]
