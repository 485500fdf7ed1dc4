"""Intents for questions about sounds, and the same questions for Home Assistant's own agent.

The handlers are registered with Home Assistant, so they are also tools of the Assist LLM
API (an LLM agent calls them by name with the slots below). Home Assistant's own agent only
loads sentences from core and from `config/custom_sentences`, so this integration teaches it
its sentences (`sentences/<language>/*.yaml`) as conversation triggers: the same templates,
with the `{place}` list and number ranges as wildcards, answered by the same code. The triggers
are attached through Home Assistant's public trigger helper, exactly as an automation with a
sentence trigger is, so no internal of the conversation integration is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
import re
from typing import Any

from hassil.util import PUNCTUATION_STR
from homeassistant.const import CONF_COMMAND, CONF_PLATFORM
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant
from homeassistant.helpers import config_validation as cv, intent
from homeassistant.helpers.script import ScriptRunResult
from homeassistant.helpers.trigger import (
    async_initialize_triggers,
    async_validate_trigger_config,
)
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .api import MidashengError
from .const import DOMAIN, LOGGER
from .sounds import (
    DATA_SOUNDS,
    INTENT_DESCRIBE,
    INTENT_IS_SOUND_ACTIVE,
    INTENT_WHAT_DID_YOU_HEAR,
    INTENT_WHAT_WAS_THAT,
    PERIODS,
    PUBLIC_INTENTS,
    Answer,
    Language,
    Place,
    Query,
    SoundAssistant,
    SoundQueryError,
)

_RULE = re.compile(r"<(\w+)>")
_LIST = re.compile(r"\{(\w+)\}")
# Assist removes punctuation from what was said before matching, and the sentence trigger
# refuses templates that hold any ("a.m."), so it becomes the word break it stands for.
_PUNCTUATION = re.compile(f"[{re.escape(PUNCTUATION_STR)}]+")
_SPACES = re.compile(r" {2,}")


def parse_since(value: str) -> datetime:
    """A time ("14:30": the latest past one) or a date and time, as an aware datetime."""
    if (moment := dt_util.parse_datetime(value)) is not None:
        return moment if moment.tzinfo else moment.replace(tzinfo=dt_util.get_default_time_zone())
    if (clock := dt_util.parse_time(value)) is None:
        raise vol.Invalid(f"not a time: {value}")
    now = dt_util.now()
    moment = now.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    return moment - timedelta(days=1) if moment > now else moment


class SoundIntentHandler(intent.IntentHandler):
    """Base of the sound intents: slots in, a sentence and the events out."""

    def __init__(self, assistant: SoundAssistant) -> None:
        """Answer with `assistant`."""
        self.assistant = assistant

    async def async_handle(self, intent_obj: intent.Intent) -> intent.IntentResponse:
        """Validate the slots, answer, and put the events in the speech slots."""
        slots = self.async_validate_slots(intent_obj.slots)
        values = {name: slot["value"] for name, slot in slots.items() if slot.get("value")}
        lang = await self.assistant.async_language(intent_obj.language)
        try:
            answer = await self._async_answer(lang, values)
        except SoundQueryError as err:
            raise intent.IntentHandleError(str(err)) from err
        except MidashengError as err:
            raise intent.IntentHandleError(lang.r("not_connected")) from err
        response = intent_obj.create_response()
        response.async_set_speech(answer.text)
        response.async_set_speech_slots({"events": [found.as_dict() for found in answer.events]})
        return response

    async def _async_answer(self, lang: Language, values: Mapping[str, Any]) -> Answer:
        raise NotImplementedError

    def place(self, lang: Language, values: Mapping[str, Any]) -> Place | None:
        """The place slot as a place, or a translated error."""
        if not (name := values.get("place")):
            return None
        if (place := self.assistant.place_from_name(str(name))) is None:
            raise SoundQueryError(lang.r("unknown_place", name=name))
        return place

    async def category(self, lang: Language, values: Mapping[str, Any]) -> str | None:
        """The category slot as a category id, or a translated error."""
        if not (name := values.get("category")):
            return None
        if (category := await self.assistant.async_category(lang, str(name))) is None:
            raise SoundQueryError(lang.r("unknown_category", name=name))
        return category


_PLACE = {vol.Optional("place", description="a room (area) or sound source name"): cv.string}
_CATEGORY_TEXT = (
    "a sound: smoke_alarm, co_alarm, fire_alarm, glass_break, dog_bark, cat, baby_cry, "
    "scream, speech, doorbell, knock, water_running, siren, cough, appliance_beep, loud_noise, "
    "unusual_sound"
)


class WhatDidYouHearHandler(SoundIntentHandler):
    """What was heard (in a place, of a category) in a time span."""

    intent_type = INTENT_WHAT_DID_YOU_HEAR
    description = (
        "Tells which sounds the MiDasheng Audio service heard, newest first, optionally in a "
        "room or on a sound source, of one kind, and in a time span (default: last 24 hours)."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """Place, category and one way of giving the time span."""
        return {
            **_PLACE,
            vol.Optional("category"): cv.string,
            vol.Optional("minutes"): vol.All(vol.Coerce(int), vol.Range(min=1, max=10080)),
            vol.Optional("hours"): vol.All(vol.Coerce(int), vol.Range(min=1, max=168)),
            vol.Optional("period"): vol.In(PERIODS),
            vol.Optional("since"): cv.string,
        }

    async def _async_answer(self, lang: Language, values: Mapping[str, Any]) -> Answer:
        try:
            since = parse_since(values["since"]) if "since" in values else None
        except vol.Invalid as err:
            raise intent.InvalidSlotInfo(str(err)) from err
        span = self.assistant.span(
            lang,
            period=values.get("period"),
            minutes=values.get("minutes"),
            hours=values.get("hours"),
            since=since,
        )
        query = Query(
            place=self.place(lang, values), category=await self.category(lang, values), span=span
        )
        return await self.assistant.async_heard(lang, query)


class IsSoundActiveHandler(SoundIntentHandler):
    """Whether a kind of sound is going off now."""

    intent_type = INTENT_IS_SOUND_ACTIVE
    description = (
        "Tells whether a kind of sound (for example a smoke alarm) is going off right now, "
        "optionally in a room or on a sound source, and when it was last heard."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """The category, and a place."""
        return {vol.Required("category", description=_CATEGORY_TEXT): cv.string, **_PLACE}

    async def _async_answer(self, lang: Language, values: Mapping[str, Any]) -> Answer:
        category = await self.category(lang, values)
        assert category is not None
        return await self.assistant.async_is_active(lang, category, self.place(lang, values))


class DescribeHandler(SoundIntentHandler):
    """What is happening now, described from live audio."""

    intent_type = INTENT_DESCRIBE
    description = (
        "Describes what can be heard right now in a room or on a sound source (all sources "
        "without one), using the audio language model when the service has one."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """A place."""
        return {**_PLACE}

    async def _async_answer(self, lang: Language, values: Mapping[str, Any]) -> Answer:
        return await self.assistant.async_describe(lang, self.place(lang, values))


class WhatWasThatHandler(SoundIntentHandler):
    """The latest sound, and what it sounded like."""

    intent_type = INTENT_WHAT_WAS_THAT
    description = (
        "Names the latest sound heard (optionally in a room or of one kind) and, with an "
        "audio language model, describes what it sounded like."
    )

    @property
    def slot_schema(self) -> dict[Any, Any]:
        """A place and a category."""
        return {**_PLACE, vol.Optional("category"): cv.string}

    async def _async_answer(self, lang: Language, values: Mapping[str, Any]) -> Answer:
        return await self.assistant.async_what_was_that(
            lang, self.place(lang, values), await self.category(lang, values)
        )


HANDLERS: tuple[type[SoundIntentHandler], ...] = (
    WhatDidYouHearHandler,
    IsSoundActiveHandler,
    DescribeHandler,
    WhatWasThatHandler,
)


async def async_setup_intents(hass: HomeAssistant) -> None:
    """Register the intent handlers (called by Home Assistant's intent integration)."""
    assistant = hass.data[DATA_SOUNDS]
    for handler in HANDLERS:
        intent.async_register(hass, handler(assistant))


def trigger_sentences(lang: Language) -> list[str]:
    """The public intents' sentences as conversation trigger templates.

    Expansion rules are inlined and closed lists become alternatives, so only `{place}` and
    the number ranges are left as lists, which the trigger matcher treats as wildcards.
    """
    data = lang.data
    rules: dict[str, str] = data.get("expansion_rules", {})
    closed: dict[str, str] = {}
    for name, body in data.get("lists", {}).items():
        if "values" in body:
            alternatives = [
                str(v["in"]) if isinstance(v, Mapping) else str(v) for v in body["values"]
            ]
            closed[name] = "(" + "|".join(alternatives) + ")"

    def expand(template: str) -> str:
        for _ in range(10):
            expanded = _RULE.sub(lambda m: f"({rules[m.group(1)]})", template)
            expanded = _LIST.sub(lambda m: closed.get(m.group(1), m.group(0)), expanded)
            if expanded == template:
                break
            template = expanded
        return template

    return [
        _SPACES.sub(" ", _PUNCTUATION.sub(" ", expand(sentence))).strip()
        for name in PUBLIC_INTENTS
        for block in data["intents"][name]["data"]
        for sentence in block["sentences"]
    ]


async def async_register_triggers(
    hass: HomeAssistant, assistant: SoundAssistant
) -> CALLBACK_TYPE | None:
    """Teach Home Assistant's own agent the questions, as a conversation sentence trigger."""
    lang = await assistant.async_language(hass.config.language)
    config = await async_validate_trigger_config(
        hass, [{CONF_PLATFORM: "conversation", CONF_COMMAND: trigger_sentences(lang)}]
    )

    async def answer(run_variables: Mapping[str, Any], context: Context | None = None) -> Any:
        # The conversation trigger speaks the `conversation_response` of a script run result:
        # the same contract an automation's `set_conversation_response` step uses.
        trigger = run_variables["trigger"]
        text: str = trigger["sentence"]
        found = await assistant.async_answer_text(text, trigger["user_input"].get("language"))
        if found is not None:
            reply = found.text
        elif (place := trigger["details"].get("place")) is not None:
            reply = lang.r("unknown_place", name=place["text"])
        else:
            LOGGER.debug("Trigger matched %r but the sentences did not", text)
            reply = lang.r("not_understood")
        return ScriptRunResult(conversation_response=reply, service_response=None, variables={})

    def log(level: int, message: str, **kwargs: Any) -> None:
        LOGGER.log(level, "Assist sentences: %s", message, **kwargs)

    return await async_initialize_triggers(hass, config, answer, DOMAIN, "Assist sentences", log)
