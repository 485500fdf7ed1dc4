"""An LLM API of the integration: any LLM agent (OpenAI, Ollama…) can ask about sounds.

Select "MiDasheng Audio" (alone or next to "Assist") in an LLM agent's options. Its tools are
the integration's intents plus `recent_sound_events`, which returns the raw events.
"""

from __future__ import annotations

from typing import Any

from hassil.expression import TextChunk
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, intent, llm
from homeassistant.util.json import JsonObjectType
import voluptuous as vol

from .api import MidashengError
from .const import DOMAIN
from .sounds import (
    DATA_SOUNDS,
    PERIODS,
    PUBLIC_INTENTS,
    Query,
    SoundQueryError,
    loaded_entries,
)

API_ID = DOMAIN
API_NAME = "MiDasheng Audio"
MAX_TOOL_EVENTS = 50

API_PROMPT = (
    "You can answer questions about the sounds heard in this home. A MiDasheng Audio "
    "service listens to audio sources (cameras and microphones) and logs sound events such "
    "as smoke alarms, glass breaking, dogs barking or the doorbell. Use the tools to find "
    "out what was heard, where and when, whether something is going off now, and what is "
    "happening right now. Answer in short natural sentences."
)


def intent_tools(hass: HomeAssistant, prefix: str = "") -> list[llm.Tool]:
    """The sound intents as LLM tools, tagged with this integration."""
    handlers = {handler.intent_type: handler for handler in intent.async_get(hass)}
    tools: list[llm.Tool] = []
    for name in PUBLIC_INTENTS:
        if (handler := handlers.get(name)) is not None:
            tool = llm.IntentTool(f"{prefix}{name}", handler)
            # Home Assistant 2026 asks every tool which integration provides it.
            tool.integration = DOMAIN
            tools.append(tool)
    return tools


def _tool_result(data: JsonObjectType) -> Any:
    """A tool's answer as the running Home Assistant wants it.

    Home Assistant 2026 wraps answers in `ToolResult` and deprecates plain JSON objects;
    earlier releases know only the plain object.
    """
    if (result_type := getattr(llm, "ToolResult", None)) is None:
        return data
    return result_type(data=data, error="error" in data)


class RecentSoundEventsTool(llm.Tool):
    """The raw sound events of a place, category and time span."""

    name = "recent_sound_events"
    integration = DOMAIN
    description = (
        "Lists the sound events the MiDasheng Audio service heard, newest first, with their "
        "start and end times (ISO 8601, UTC), place, sound category and score."
    )
    parameters = vol.Schema(
        {
            vol.Optional("place", description="a room (area) or sound source name"): cv.string,
            vol.Optional("category", description="a sound category, e.g. smoke_alarm"): cv.string,
            vol.Optional("hours", description="how many hours back (default 24)"): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=168)
            ),
            vol.Optional("period"): vol.In(PERIODS),
            vol.Optional("limit", description="at most this many events"): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=MAX_TOOL_EVENTS)
            ),
        }
    )

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> Any:
        """Return the events."""
        return _tool_result(await self._async_events(hass, tool_input, llm_context))

    async def _async_events(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        assistant = hass.data[DATA_SOUNDS]
        args = self.parameters(tool_input.tool_args)
        lang = await assistant.async_language(llm_context.language)
        place = None
        if (name := args.get("place")) and (place := assistant.place_from_name(name)) is None:
            return {"error": lang.r("unknown_place", name=name)}
        category = None
        if (name := args.get("category")) and (
            category := await assistant.async_category(lang, name)
        ) is None:
            return {"error": lang.r("unknown_category", name=name)}
        span = assistant.span(lang, period=args.get("period"), hours=args.get("hours"))
        try:
            found = await assistant.async_events(Query(place=place, category=category, span=span))
        except (MidashengError, SoundQueryError) as err:
            return {"error": str(err)}
        limit = args.get("limit", MAX_TOOL_EVENTS)
        return {
            "span": {
                "start": span.start.isoformat(),
                "end": span.end.isoformat() if span.end is not None else None,
            },
            "count": len(found),
            "events": [_event(item.as_dict()) for item in found[:limit]],
        }


def _event(data: dict[str, Any]) -> dict[str, Any]:
    keep = ("seq", "source", "place", "category", "label", "score", "start", "end", "duration")
    return {key: data.get(key) for key in keep}


class MidashengLLMAPI(llm.API):
    """Sound questions for LLM agents."""

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """The tools, with the places and sounds of this home in the prompt."""
        assistant = self.hass.data[DATA_SOUNDS]
        tools = [*intent_tools(self.hass), RecentSoundEventsTool()]
        places = sorted(
            {
                value.text_in.text
                for value in assistant.place_list().values
                if isinstance(value.text_in, TextChunk)
            }
        )
        categories = sorted(
            {
                category.id
                for entry in loaded_entries(self.hass)
                for category in entry.runtime_data.coordinator.info.categories
            }
        )
        prompt = (
            f"{API_PROMPT}\nPlaces: {', '.join(places) or 'none'}."
            f"\nSound categories: {', '.join(categories) or 'none'}."
        )
        return llm.APIInstance(api=self, api_prompt=prompt, llm_context=llm_context, tools=tools)
