# ruff: noqa: RUF001 - Chinese questions end with the full-width question mark users type
"""The agent in the languages of Home Assistant's largest communities: every question, in
every language, is understood and answered in that language, about the right sound."""

from __future__ import annotations

from typing import Any

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar, device_registry as dr
import pytest

from .conftest import SERVICE_ID, FakeService, event_message, get_device, sound_event

AGENT = "conversation.midasheng_audio"

# language: (questions per intent, the smoke alarm's name in answers, words only that
# language's answers use)
LANGUAGES: dict[str, dict[str, Any]] = {
    "de": {
        "heard": [
            "Was hast du gehört?",
            "Was hast du in der Küche heute gehört?",
            "Hast du in den letzten 2 Stunden etwas gehört?",
            "Hast du einen Rauchmelder gehört?",
            "Gab es heute einen Rauchalarm?",
            "Wann hast du zuletzt den Rauchmelder gehört?",
        ],
        "active": [
            "Ist der Rauchmelder in der Küche gerade an?",
            "Hörst du jetzt einen Rauchmelder?",
        ],
        "describe": ["Was ist in der Küche gerade los?", "Was hörst du gerade?"],
        "that": ["Was war das?", "Was war das letzte Geräusch?"],
        "earlier": "und davor?",
        "smoke": "Rauchalarm",
        "area": "Küche",
        "words": ["Gehört", "vor", "Minuten"],
    },
    "fr": {
        "heard": [
            "Qu'as-tu entendu ?",
            "Qu'est-ce que tu as entendu dans la Cuisine aujourd'hui ?",
            "As-tu entendu quelque chose au cours des 2 dernières heures ?",
            "As-tu entendu une alarme de fumée ?",
            "Y a-t-il eu une alarme de fumée aujourd'hui ?",
            "Quand as-tu entendu le détecteur de fumée pour la dernière fois ?",
        ],
        "active": [
            "Est-ce que le détecteur de fumée sonne dans la Cuisine en ce moment ?",
            "Entends-tu une alarme de fumée maintenant ?",
        ],
        "describe": ["Que se passe-t-il dans la Cuisine ?", "Qu'entends-tu en ce moment ?"],
        "that": ["C'était quoi ce bruit ?", "Quel était le dernier son ?"],
        "earlier": "et avant ?",
        "smoke": "alarme de fumée",
        "area": "Cuisine",
        "words": ["entendu", "il y a"],
    },
    "es": {
        "heard": [
            "¿Qué has oído?",
            "¿Qué has oído en la Cocina hoy?",
            "¿Has oído algo en las últimas 2 horas?",
            "¿Has oído una alarma de humo?",
            "¿Hubo una alarma de humo hoy?",
            "¿Cuándo oíste el detector de humo por última vez?",
        ],
        "active": [
            "¿Está sonando la alarma de humo en la Cocina ahora?",
            "¿Oyes una alarma de humo ahora mismo?",
        ],
        "describe": ["¿Qué pasa en la Cocina?", "¿Qué oyes ahora?"],
        "that": ["¿Qué fue eso?", "¿Cuál fue el último sonido?"],
        "earlier": "¿y antes?",
        "smoke": "alarma de humo",
        "area": "Cocina",
        "words": ["oído", "hace"],
    },
    "it": {
        "heard": [
            "Cosa hai sentito?",
            "Cosa hai sentito in Cucina oggi?",
            "Hai sentito qualcosa nelle ultime 2 ore?",
            "Hai sentito un allarme fumo?",
            "C'è stato un allarme fumo oggi?",
            "Quando hai sentito il rilevatore di fumo l'ultima volta?",
        ],
        "active": [
            "Il rilevatore di fumo sta suonando in Cucina adesso?",
            "Senti un allarme fumo in questo momento?",
        ],
        "describe": ["Cosa succede in Cucina?", "Cosa senti adesso?"],
        "that": ["Cos'era quel rumore?", "Qual è stato l'ultimo suono?"],
        "earlier": "e prima?",
        "smoke": "allarme fumo",
        "area": "Cucina",
        "words": ["sentito", "fa"],
    },
    "nl": {
        "heard": [
            "Wat heb je gehoord?",
            "Wat heb je in de Keuken vandaag gehoord?",
            "Heb je in de afgelopen 2 uur iets gehoord?",
            "Heb je een rookmelder gehoord?",
            "Was er vandaag een rookalarm?",
            "Wanneer heb je voor het laatst de rookmelder gehoord?",
        ],
        "active": ["Gaat de rookmelder in de Keuken nu af?", "Hoor je nu een rookmelder?"],
        "describe": ["Wat gebeurt er in de Keuken?", "Wat hoor je nu?"],
        "that": ["Wat was dat?", "Wat was het laatste geluid?"],
        "earlier": "en daarvoor?",
        "smoke": "rookalarm",
        "area": "Keuken",
        "words": ["hoor", "geleden"],
    },
    "zh-Hans": {
        "heard": [
            "你听到了什么？",
            "今天厨房里你听到了什么？",
            "过去2小时你听到了什么？",
            "你有没有听到烟雾报警？",
            "今天有没有烟雾报警？",
            "你上次什么时候听到烟雾报警器？",
        ],
        "active": ["厨房烟雾报警现在响吗？", "你现在能听到烟雾报警吗？"],
        "describe": ["厨房现在发生了什么？", "你现在听到什么？"],
        "that": ["刚才是什么声音？", "最后一个声音是什么？"],
        "earlier": "那之前呢？",
        "smoke": "烟雾报警",
        "area": "厨房",
        "words": ["听到", "分钟前"],
    },
}


async def ask(hass: HomeAssistant, text: str, language: str, conversation_id: str | None = None):
    return await conversation.async_converse(
        hass, text, conversation_id, Context(), language, agent_id=AGENT
    )


def speech(result: conversation.ConversationResult) -> str:
    return result.response.speech["plain"]["speech"]


@pytest.mark.usefixtures("init_integration")
@pytest.mark.parametrize("language", sorted(LANGUAGES))
async def test_every_question_in_every_language(
    hass: HomeAssistant,
    fake_service: FakeService,
    service_events: list[dict[str, Any]],
    language: str,
) -> None:
    spec = LANGUAGES[language]
    # The kitchen source's device is in an area named in this language.
    area = ar.async_get(hass).async_get_or_create(spec["area"])
    device = get_device(hass, ("midasheng", f"{SERVICE_ID}_kitchen"))
    assert device is not None
    dr.async_get(hass).async_update_device(device.id, area_id=area.id)
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    service_events.append(sound_event(41, "dog_bark", minutes_ago=30, duration=5))
    for text in spec["heard"]:
        answer = speech(await ask(hass, text, language))
        assert spec["smoke"] in answer, (text, answer)
        assert any(word in answer for word in spec["words"]), (text, answer)
    first = await ask(hass, spec["heard"][0], language)
    earlier = speech(await ask(hass, spec["earlier"], language, first.conversation_id))
    assert earlier and earlier != speech(first), (spec["earlier"], earlier)
    for text in spec["that"]:
        answer = speech(await ask(hass, text, language))
        assert spec["smoke"] in answer, (text, answer)
    await fake_service.send(event_message(43))
    for text in spec["active"]:
        answer = speech(await ask(hass, text, language))
        assert spec["smoke"] in answer, (text, answer)
    for text in spec["describe"]:
        answer = speech(await ask(hass, text, language))
        assert spec["smoke"] in answer, (text, answer)
