"""Sources as config subentries: adopted from the service, migrated from entries made before
subentries, deleted both ways, and kept deleted while the service cannot be told."""

from __future__ import annotations

from unittest.mock import MagicMock

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.midasheng.api import (
    MidashengConnectionError,
    MidashengNotFoundError,
    Source,
)
from custom_components.midasheng.const import CONF_SOURCE_ID, DOMAIN, SUBENTRY_SOURCE

from .conftest import SERVICE_ID, FakeService, get_device, handshake, load_json, source_message


def _device_subentries(device: dr.DeviceEntry, entry_id: str) -> set[str | None]:
    """The subentries of an entry a device belongs to (one since Home Assistant 2026)."""
    if hasattr(device, "config_subentry_id"):
        assert device.config_entry_id == entry_id
        return {device.config_subentry_id}
    return set(device.config_entries_subentries[entry_id])


def _subentry_of(entry: MockConfigEntry, source_id: str) -> str | None:
    for subentry in entry.subentries.values():
        if subentry.subentry_type == SUBENTRY_SOURCE and subentry.data[CONF_SOURCE_ID] == source_id:
            return subentry.subentry_id
    return None


async def _set_up(
    hass: HomeAssistant, entry: MockConfigEntry, fake_service: FakeService, **kwargs: object
) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    await fake_service.send(*handshake(**kwargs))  # type: ignore[arg-type]
    await hass.async_block_till_done()


async def test_sources_become_subentries(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Each source the service keeps is a subentry named after it; its device and entities
    belong to it, not to the entry."""
    for source_id, name in (("kitchen", "Kitchen"), ("hall", "Hall")):
        subentry_id = _subentry_of(init_integration, source_id)
        assert subentry_id is not None
        assert init_integration.subentries[subentry_id].title == name
        assert init_integration.subentries[subentry_id].unique_id == source_id
        device = get_device(hass, (DOMAIN, f"{SERVICE_ID}_{source_id}"))
        assert device is not None
        assert _device_subentries(device, init_integration.entry_id) == {subentry_id}
        for entity in er.async_entries_for_device(er.async_get(hass), device.id, True):
            assert entity.config_subentry_id == subentry_id, entity.entity_id
    service = get_device(hass, (DOMAIN, SERVICE_ID))
    assert service is not None
    assert _device_subentries(service, init_integration.entry_id) == {None}


async def test_entry_from_before_subentries_is_migrated(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """An entry whose source devices and entities belong to the entry itself (as before
    subentries) gets a subentry per source; the device, its entities (disabled ones too)
    and their entity ids move into it."""
    mock_config_entry.add_to_hass(hass)
    dev_reg = dr.async_get(hass)
    ent_reg = er.async_get(hass)
    device = dev_reg.async_get_or_create(
        config_entry_id=mock_config_entry.entry_id,
        identifiers={(DOMAIN, f"{SERVICE_ID}_kitchen")},
        name="Kitchen",
    )
    smoke = ent_reg.async_get_or_create(
        "binary_sensor",
        DOMAIN,
        f"{SERVICE_ID}_kitchen_smoke_alarm",
        config_entry=mock_config_entry,
        device_id=device.id,
        suggested_object_id="kitchen_smoke_detector",
    )
    stream = ent_reg.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{SERVICE_ID}_kitchen_stream_state",
        config_entry=mock_config_entry,
        device_id=device.id,
        disabled_by=er.RegistryEntryDisabler.INTEGRATION,
    )
    assert smoke.config_subentry_id is None

    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()

    subentry_id = _subentry_of(mock_config_entry, "kitchen")
    assert subentry_id is not None
    moved = dev_reg.async_get(device.id)
    assert moved is not None
    assert _device_subentries(moved, mock_config_entry.entry_id) == {subentry_id}
    for entity_id in (smoke.entity_id, stream.entity_id):
        entity = ent_reg.async_get(entity_id)
        assert entity is not None
        assert entity.config_subentry_id == subentry_id
    # The user's entity id is kept, and the entity works.
    assert smoke.entity_id == "binary_sensor.kitchen_smoke_detector"
    assert hass.states.get("binary_sensor.kitchen_smoke_detector") is not None
    assert mock_config_entry.state is ConfigEntryState.LOADED


async def test_config_file_source_is_no_subentry(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """A source of the service's config file cannot be deleted through the API: it is a
    device of the entry, not a subentry."""
    sources = load_json("sources.json")["sources"]
    fixed = {**sources[0], "id": "attic", "name": "Attic", "persistent": False}
    mock_client.sources.return_value = [Source.from_dict(s) for s in [*sources, fixed]]
    await _set_up(hass, mock_config_entry, fake_service, sources=[*sources, fixed])
    assert _subentry_of(mock_config_entry, "attic") is None
    device = get_device(hass, (DOMAIN, f"{SERVICE_ID}_attic"))
    assert device is not None
    assert _device_subentries(device, mock_config_entry.entry_id) == {None}
    entity = er.async_get(hass).async_get("binary_sensor.attic_smoke_alarm")
    assert entity is not None
    assert entity.config_subentry_id is None


async def test_deleting_the_subentry_deletes_the_source(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """The user deletes a source's subentry: its device and entities go, the service is
    told to delete the source, and what the service still says about it does not bring it
    back."""
    subentry_id = _subentry_of(init_integration, "kitchen")
    assert subentry_id is not None
    assert hass.config_entries.async_remove_subentry(init_integration, subentry_id)
    await hass.async_block_till_done()
    mock_client.delete_source.assert_awaited_once_with("kitchen")
    assert get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen")) is None
    assert er.async_get(hass).async_get("binary_sensor.kitchen_smoke_alarm") is None
    assert hass.states.get("binary_sensor.kitchen_smoke_alarm") is None
    coordinator = init_integration.runtime_data.coordinator
    assert "kitchen" not in coordinator.sources

    # A source message in flight before the deletion reached the service.
    await fake_service.send(source_message(load_json("sources.json")["sources"][0]))
    await hass.async_block_till_done()
    assert _subentry_of(init_integration, "kitchen") is None
    assert get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen")) is None
    await fake_service.send({"type": "source_removed", "source": {"id": "kitchen"}})
    await hass.async_block_till_done()
    assert mock_client.delete_source.await_count == 1
    assert init_integration.state is ConfigEntryState.LOADED


async def test_deletion_waits_for_the_service(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """A subentry deleted while the service cannot be reached: the deletion is saved, the
    source stays gone through a restart of the entry, and the service is told on the next
    connection."""
    mock_client.delete_source.side_effect = MidashengConnectionError("refused")
    subentry_id = _subentry_of(init_integration, "hall")
    assert subentry_id is not None
    hass.config_entries.async_remove_subentry(init_integration, subentry_id)
    await hass.async_block_till_done()
    assert mock_client.delete_source.await_count == 1
    assert init_integration.runtime_data.coordinator.subentries.pending_deletes == {"hall"}

    # Home Assistant restarts the entry; the service still lists the source.
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert _subentry_of(init_integration, "hall") is None
    assert get_device(hass, (DOMAIN, f"{SERVICE_ID}_hall")) is None
    assert hass.states.get("sensor.hall_sound_level") is None

    # The service answers again: the subscription completes and the source is deleted.
    mock_client.delete_source.side_effect = MidashengNotFoundError("gone", 404)
    await fake_service.wait_subscriptions(2)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert mock_client.delete_source.await_count == 2
    mock_client.delete_source.assert_awaited_with("hall")
    coordinator = init_integration.runtime_data.coordinator
    assert coordinator.subentries.pending_deletes == set()
    assert _subentry_of(init_integration, "hall") is None


async def test_source_deleted_on_the_service(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """A source deleted on the service takes its subentry, device and entities with it."""
    await fake_service.send({"type": "source_removed", "source": {"id": "hall"}})
    await hass.async_block_till_done()
    assert _subentry_of(init_integration, "hall") is None
    assert get_device(hass, (DOMAIN, f"{SERVICE_ID}_hall")) is None
    assert er.async_get(hass).async_get("sensor.hall_sound_level") is None
    mock_client.delete_source.assert_not_awaited()


async def test_sources_follow_the_service_without_reloading(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """A source added or renamed elsewhere (the service's API, a satellite) gets or renames
    its subentry at once; the entry is not reloaded for it."""
    setups = mock_client.info.await_count
    garage = {**load_json("sources.json")["sources"][0], "id": "garage", "name": "Garage"}
    await fake_service.send(source_message(garage))
    await hass.async_block_till_done()
    subentry_id = _subentry_of(init_integration, "garage")
    assert subentry_id is not None
    entity = er.async_get(hass).async_get("binary_sensor.garage_smoke_alarm")
    assert entity is not None
    assert entity.config_subentry_id == subentry_id

    await fake_service.send(source_message({**garage, "name": "Workshop"}))
    await hass.async_block_till_done()
    assert init_integration.subentries[subentry_id].title == "Workshop"
    device = get_device(hass, (DOMAIN, f"{SERVICE_ID}_garage"))
    assert device is not None
    assert device.name == "Workshop"
    assert mock_client.info.await_count == setups
    assert init_integration.state is ConfigEntryState.LOADED
