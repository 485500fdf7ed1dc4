"""Sentences this home can expect, for the service's offline recognizer.

With phrases, the embedded recognizer (pocketsphinx) only chooses among these sentences,
which makes commands come out exactly. They are built from the entities exposed to Assist,
the areas, the sound sources and the categories the service detects, in the command forms
Home Assistant's own agent understands plus this integration's own questions (both in
`sentences/<language>/*.yaml`, under `phrases`). The list is rebuilt after the entity, device
or area registry changed, on the next request that needs it, not on every request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import product
import re
from typing import Any

from homeassistant.components.homeassistant.const import DATA_EXPOSED_ENTITIES
from homeassistant.components.homeassistant.exposed_entities import (
    async_should_expose,
)
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import area_registry as ar, entity_registry as er
from homeassistant.helpers.device_registry import EVENT_DEVICE_REGISTRY_UPDATED
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .sounds import Language, SoundAssistant, loaded_entries

# The service accepts up to 20000; a few thousand keep its grammar small and fast.
MAX_PHRASES = 5000
_FIELD = re.compile(r"\{(\w+)\}")
CONVERSATION = "conversation"

DATA_PHRASES: HassKey[PhraseCache] = HassKey(f"{DOMAIN}_phrases")


def _fill(template: str, values: Mapping[str, Iterable[Any]]) -> Iterator[str]:
    """Every sentence a template makes with the given values for its fields."""
    fields = list(dict.fromkeys(_FIELD.findall(template)))
    if any(not values.get(name) for name in fields):
        return
    for combination in product(*(list(values[name]) for name in fields)):
        yield template.format(**dict(zip(fields, combination, strict=True)))


def _exposed_names(hass: HomeAssistant) -> dict[str, list[str]]:
    """Names and aliases of the entities exposed to Assist, by domain."""
    ent_reg = er.async_get(hass)
    check_exposed = DATA_EXPOSED_ENTITIES in hass.data
    names: dict[str, list[str]] = {}
    for state in hass.states.async_all():
        if check_exposed and not async_should_expose(hass, CONVERSATION, state.entity_id):
            continue
        entity_names = [state.name]
        if (entry := ent_reg.async_get(state.entity_id)) is not None:
            # Since 2026 aliases may hold a marker for "the entity's own name", already above.
            entity_names.extend(alias for alias in entry.aliases if isinstance(alias, str))
        names.setdefault(state.domain, []).extend(n for n in entity_names if n)
    return names


def build_phrases(hass: HomeAssistant, assistant: SoundAssistant, lang: Language) -> list[str]:
    """The phrase list for a language (see the module docstring)."""
    spec: Mapping[str, Any] = lang.data.get("phrases", {})
    numbers = {name: [str(n) for n in values] for name, values in spec.get("numbers", {}).items()}
    areas = [
        name
        for area in ar.async_get(hass).async_list_areas()
        for name in (area.name, *area.aliases)
    ]
    sources = [
        source.name
        for entry in loaded_entries(hass)
        for source in entry.runtime_data.coordinator.sources.values()
    ]
    category_names: Mapping[str, str] = spec.get("category_names", {})
    categories = list(
        dict.fromkeys(
            category_names.get(category.id, category.name.lower())
            for entry in loaded_entries(hass)
            for category in entry.runtime_data.coordinator.info.categories
        )
    )
    places = list(dict.fromkeys(name.lower() for name in (*areas, *sources)))
    values: dict[str, list[str]] = {
        **numbers,
        "place": places,
        "area": [name.lower() for name in areas],
        "category": categories,
    }
    phrases: list[str] = []
    for group in ("general", "category", "place", "category_place"):
        for template in spec.get(group, ()):
            phrases.extend(_fill(template, values))
    commands: Mapping[str, Any] = spec.get("commands", {})
    for template in (*commands.get("any", ()), *commands.get("area", ())):
        phrases.extend(_fill(template, values))
    templates: Mapping[str, list[str]] = commands.get("domains", {})
    for domain, names in _exposed_names(hass).items():
        spoken = [" ".join(name.lower().split()) for name in names]
        for template in templates.get(domain, ()):
            phrases.extend(_fill(template, {**values, "name": spoken}))
    return list(dict.fromkeys(phrases))[:MAX_PHRASES]


class PhraseCache:
    """The phrase lists per language, dropped when entities, devices or areas change."""

    def __init__(self, hass: HomeAssistant, assistant: SoundAssistant) -> None:
        """Nothing built yet."""
        self.hass = hass
        self.assistant = assistant
        self._phrases: dict[str, list[str]] = {}
        self.builds = 0

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Follow the registries; returns the callback that stops it."""
        unsubs = [
            self.hass.bus.async_listen(event_type, self._async_invalidate)
            for event_type in (
                er.EVENT_ENTITY_REGISTRY_UPDATED,
                ar.EVENT_AREA_REGISTRY_UPDATED,
                EVENT_DEVICE_REGISTRY_UPDATED,
            )
        ]

        @callback
        def stop() -> None:
            for unsub in unsubs:
                unsub()

        return stop

    @callback
    def _async_invalidate(self, event: Event[Any] | None = None) -> None:
        self._phrases.clear()

    @callback
    def async_invalidate(self) -> None:
        """Rebuild on the next request (sources of a service changed)."""
        self._async_invalidate()

    async def async_phrases(self, language: str | None) -> list[str]:
        """The phrases for a language, built once until something changes."""
        lang = await self.assistant.async_language(language)
        if (phrases := self._phrases.get(lang.code)) is None:
            phrases = build_phrases(self.hass, self.assistant, lang)
            self._phrases[lang.code] = phrases
            self.builds += 1
        return phrases
