"""The UI in the languages of Home Assistant's largest communities: every translation has
exactly en.json's keys and, string by string, the same placeholders and code spans; Home
Assistant serves them."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations
import pytest

from custom_components.midasheng.const import DOMAIN

TRANSLATIONS = Path(__file__).resolve().parents[3] / "custom_components" / DOMAIN / "translations"
LANGUAGES = ("de", "nl", "fr", "es", "it", "zh-Hans")
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def _flat(data: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_matches_english(language: str) -> None:
    english = _flat(json.loads((TRANSLATIONS / "en.json").read_text(encoding="utf-8")))
    other = _flat(json.loads((TRANSLATIONS / f"{language}.json").read_text(encoding="utf-8")))
    assert other.keys() == english.keys()
    for key, text in english.items():
        translated = other[key]
        assert translated.strip(), key
        assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(text)), key
        assert translated.count("`") == text.count("`"), key
    # Translated, not copied: most strings differ from the English ones.
    same = sum(other[key] == english[key] for key in english)
    assert same < len(english) / 10, f"{same} of {len(english)} strings are still English"


async def test_home_assistant_serves_the_translations(hass: HomeAssistant) -> None:
    """Home Assistant's translation loader finds each language's entity names."""
    expected = {
        "de": "Rauchalarm",
        "nl": "Rookalarm",
        "fr": "Alarme de fumée",
        "es": "Alarma de humo",
        "it": "Allarme fumo",
        "zh-Hans": "烟雾报警",
    }
    key = f"component.{DOMAIN}.entity.binary_sensor.smoke_alarm.name"
    for language, name in expected.items():
        strings = await async_get_translations(hass, language, "entity", {DOMAIN})
        assert strings[key] == name, language
