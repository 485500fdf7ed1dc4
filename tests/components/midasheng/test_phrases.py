"""Phrases for the offline recognizer, built from entities, areas, sources and categories."""

from __future__ import annotations

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er
import pytest

from custom_components.midasheng.phrases import DATA_PHRASES
from custom_components.midasheng.sounds import DATA_SOUNDS


@pytest.mark.usefixtures("init_integration")
async def test_phrases(hass: HomeAssistant, entity_registry: er.EntityRegistry) -> None:
    """Commands for exposed entities and areas, and this integration's questions."""
    ar.async_get(hass).async_get_or_create("Living Room")
    hass.states.async_set("light.desk_lamp", "off", {"friendly_name": "Desk lamp"})
    hass.states.async_set("cover.garage_door", "closed", {"friendly_name": "Garage door"})
    hass.states.async_set("lock.front_door", "locked", {"friendly_name": "Front door"})
    # Locks are not exposed to Assist unless the user says so.
    async_expose_entity(hass, "conversation", "lock.front_door", True)
    hidden = entity_registry.async_get_or_create("switch", "test", "hidden")
    hass.states.async_set(hidden.entity_id, "off", {"friendly_name": "Secret switch"})
    async_expose_entity(hass, "conversation", hidden.entity_id, False)
    cache = hass.data[DATA_PHRASES]
    phrases = await cache.async_phrases("en-US")

    for expected in (
        "turn on the desk lamp",
        "set the desk lamp brightness to 50 percent",
        "open the garage door",
        "lock the front door",
        "turn off the lights in the living room",
        "what is the temperature in the living room",
        "what time is it",
        "what did you hear",
        "what did you hear while I was out",
        "what did you hear in the kitchen",
        "what did you hear in the living room",
        "describe what is happening in the hall",
        "is the carbon monoxide alarm going off",
        "is the glass breaking going off in the kitchen",
        "and before that",
    ):
        assert expected in phrases, expected
    assert not any("secret switch" in phrase for phrase in phrases)
    assert len(phrases) == len(set(phrases))

    # Built once, rebuilt only after the registries changed.
    builds = cache.builds
    assert await cache.async_phrases("en") is phrases
    assert cache.builds == builds
    ar.async_get(hass).async_get_or_create("Garage")
    await hass.async_block_till_done()
    rebuilt = await cache.async_phrases("en")
    assert cache.builds == builds + 1
    assert "what did you hear in the garage" in rebuilt


@pytest.mark.usefixtures("init_integration")
async def test_own_phrases_are_understood(hass: HomeAssistant) -> None:
    """Every question phrase the recognizer may return is understood by the agent."""
    assistant = hass.data[DATA_SOUNDS]
    lang = await assistant.async_language("en")
    phrases = await hass.data[DATA_PHRASES].async_phrases("en")
    commands = {"turn", "set", "what time", "what is the", "cancel", "never", "open", "close"}
    for phrase in phrases:
        if any(phrase.startswith(prefix) for prefix in commands):
            continue
        assert await assistant.async_recognize(phrase, lang) is not None, phrase
