"""The MiDasheng Audio integration: sound events heard by the MiDasheng Audio service."""

from __future__ import annotations

from homeassistant import config_entries
from homeassistant.const import CONF_TOKEN, CONF_URL, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    issue_registry as ir,
)
from homeassistant.helpers.aiohttp_client import async_get_clientsession

# By name: once Home Assistant loads this integration's `llm` platform, `llm` in this
# package's namespace is that submodule, not the helper.
from homeassistant.helpers.llm import async_register_api
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.storage import Store
from homeassistant.helpers.typing import ConfigType

from .api import API_VERSION, MidashengAuthError, MidashengClient, MidashengError
from .const import DOMAIN, ISSUE_INCOMPATIBLE, ISSUE_STORAGE, ISSUE_UNREACHABLE, STORAGE_VERSION
from .coordinator import (
    MidashengConfigEntry,
    MidashengCoordinator,
    MidashengRuntimeData,
    storage_key,
)
from .entity import MANUFACTURER
from .intent import async_register_triggers
from .llm_api import API_ID, API_NAME, MidashengLLMAPI
from .phrases import DATA_PHRASES, PhraseCache
from .services import async_setup_services
from .sounds import DATA_SOUNDS, SoundAssistant

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.CONVERSATION,
    Platform.EVENT,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.STT,
    Platform.TTS,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, intents, LLM API and Assist sentences (once for all entries)."""
    assistant = SoundAssistant(hass)
    hass.data[DATA_SOUNDS] = assistant
    phrases = PhraseCache(hass, assistant)
    hass.data[DATA_PHRASES] = phrases
    phrases.async_start()
    assistant.away.async_start()
    async_setup_services(hass)
    async_register_api(hass, MidashengLLMAPI(hass=hass, id=API_ID, name=API_NAME))
    await async_register_triggers(hass, assistant)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MidashengConfigEntry) -> bool:
    """Connect to the service, create the source devices and open the push connection."""
    client = MidashengClient(
        entry.data[CONF_URL],
        session=async_get_clientsession(hass),
        token=entry.data.get(CONF_TOKEN),
    )
    try:
        info = await client.info()
        sources = await client.sources()
    except MidashengAuthError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except MidashengError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"url": client.url, "error": str(err)},
        ) from err

    issue_id = f"{ISSUE_INCOMPATIBLE}_{entry.entry_id}"
    if not info.compatible:
        placeholders = {
            "title": entry.title,
            "version": info.version,
            "api": str(info.api),
            "supported": str(API_VERSION),
        }
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_INCOMPATIBLE,
            translation_placeholders=placeholders,
        )
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key=ISSUE_INCOMPATIBLE,
            translation_placeholders=placeholders,
        )
    ir.async_delete_issue(hass, DOMAIN, issue_id)

    coordinator = MidashengCoordinator(hass, entry, client, info, sources)
    await coordinator.async_load()
    entry.runtime_data = MidashengRuntimeData(
        client=client, coordinator=coordinator, options=dict(entry.options)
    )

    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, coordinator.unique_id)},
        name=info.name,
        manufacturer=MANUFACTURER,
        model="Audio service",
        sw_version=info.version,
        entry_type=dr.DeviceEntryType.SERVICE,
    )
    coordinator.async_remove_stale_devices()
    coordinator.async_sync_subentries()

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)

    @callback
    def _async_start_push(_: HomeAssistant) -> None:
        coordinator.async_start()

    # Events the service replays on connecting go to automations, which listen only once
    # Home Assistant has started: open the push connection then (at once when it runs).
    entry.async_on_unload(async_at_started(hass, _async_start_push))
    hass.data[DATA_PHRASES].async_invalidate()
    if not OPTIONS_FLOW_RELOADS:
        entry.async_on_unload(entry.add_update_listener(_async_update_listener))
    return True


# Where the options flow reloads the entry itself, an update listener that reloads too is
# reported (it would reload twice) and stops working in Home Assistant 2026.12.
OPTIONS_FLOW_RELOADS = hasattr(config_entries, "OptionsFlowWithReload")


async def _async_update_listener(hass: HomeAssistant, entry: MidashengConfigEntry) -> None:
    """Apply changed options (watched categories, sensitivity) by reloading the entry.

    The listener also hears subentry changes (a source added, renamed or deleted), which the
    coordinator applies without a reload.
    """
    if entry.options != entry.runtime_data.options:
        await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: MidashengConfigEntry) -> bool:
    """Close the push connection and unload the platforms."""
    unload_ok = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unload_ok:
        await entry.runtime_data.coordinator.async_stop()
    return unload_ok


async def async_remove_entry(hass: HomeAssistant, entry: MidashengConfigEntry) -> None:
    """Forget the resume point and the entry's repair issues."""
    await Store(hass, STORAGE_VERSION, storage_key(entry.entry_id)).async_remove()
    for issue in (ISSUE_INCOMPATIBLE, ISSUE_UNREACHABLE, ISSUE_STORAGE):
        ir.async_delete_issue(hass, DOMAIN, f"{issue}_{entry.entry_id}")


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: MidashengConfigEntry, device_entry: dr.DeviceEntry
) -> bool:
    """Let the user delete a source's device only once the service no longer has the source."""
    coordinator = entry.runtime_data.coordinator
    for domain, identifier in device_entry.identifiers:
        if domain != DOMAIN:
            continue
        source_id = coordinator.source_id_from_identifier(identifier)
        return source_id is not None and source_id not in coordinator.sources
    return True
