"""The intents as tools of the Assist LLM API, and the integration's own LLM API."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
import pytest

from custom_components.midasheng.api import MidashengConnectionError

from .conftest import sound_event

INTENT_TOOLS = {
    "MidashengWhatDidYouHear",
    "MidashengIsSoundActive",
    "MidashengDescribe",
    "MidashengWhatWasThat",
}
# Since Home Assistant 2026 integrations contribute Assist tools through an `llm` platform,
# named `<domain>__<tool>`; earlier releases offered every intent under its own name.
ASSIST_PREFIX = "midasheng__" if importlib.util.find_spec("homeassistant.components.llm") else ""


def _data(result: Any) -> Any:
    """A tool's answer: a `ToolResult`'s data since 2026, the plain object before."""
    return getattr(result, "data", result)


def _context() -> llm.LLMContext:
    values: dict[str, Any] = {
        "platform": "test",
        "context": Context(),
        "language": "en",
        "assistant": "conversation",
        "device_id": None,
    }
    # Home Assistant 2026 dropped the user prompt from the tool context.
    if "user_prompt" in {field.name for field in dataclasses.fields(llm.LLMContext)}:
        values["user_prompt"] = "what did you hear?"
    return llm.LLMContext(**values)


@pytest.mark.usefixtures("init_integration")
async def test_assist_api_tools(hass: HomeAssistant, service_events: list[dict[str, Any]]) -> None:
    """The intents are tools of the Assist API and answer there."""
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    api = await llm.async_get_api(hass, llm.LLM_API_ASSIST, _context())
    names = {tool.name for tool in api.tools}
    assert names >= {f"{ASSIST_PREFIX}{name}" for name in INTENT_TOOLS}
    if ASSIST_PREFIX:
        ours = [tool for tool in api.tools if tool.name.startswith(ASSIST_PREFIX)]
        assert all(tool.integration == "midasheng" for tool in ours)
    result = _data(
        await api.async_call_tool(
            llm.ToolInput(
                tool_name=f"{ASSIST_PREFIX}MidashengWhatDidYouHear", tool_args={"place": "Kitchen"}
            )
        )
    )
    assert result["speech"]["plain"]["speech"].startswith("I heard a smoke alarm in the kitchen")


@pytest.mark.usefixtures("init_integration")
async def test_midasheng_api(
    hass: HomeAssistant, mock_client: Any, service_events: list[dict[str, Any]]
) -> None:
    """The integration's API lists places and sounds and returns raw events."""
    service_events.extend(
        [
            sound_event(41, "dog_bark", source="hall", minutes_ago=20),
            sound_event(42, minutes_ago=2),
        ]
    )
    assert any(api.id == "midasheng" for api in llm.async_get_apis(hass))
    api = await llm.async_get_api(hass, "midasheng", _context())
    assert {tool.name for tool in api.tools} == INTENT_TOOLS | {"recent_sound_events"}
    assert "Kitchen" in api.api_prompt
    assert "smoke_alarm" in api.api_prompt

    result = _data(
        await api.async_call_tool(
            llm.ToolInput(tool_name="recent_sound_events", tool_args={"hours": 1})
        )
    )
    assert result["count"] == 2
    assert [e["seq"] for e in result["events"]] == [42, 41]
    assert result["events"][0]["place"] == "Kitchen"
    hall = _data(
        await api.async_call_tool(
            llm.ToolInput(
                tool_name="recent_sound_events",
                tool_args={"place": "hall", "category": "dog barking", "limit": 5},
            )
        )
    )
    assert [e["seq"] for e in hall["events"]] == [41]
    unknown = _data(
        await api.async_call_tool(
            llm.ToolInput(tool_name="recent_sound_events", tool_args={"place": "garage"})
        )
    )
    assert "garage" in unknown["error"]
    unknown = _data(
        await api.async_call_tool(
            llm.ToolInput(tool_name="recent_sound_events", tool_args={"category": "thunder"})
        )
    )
    assert "thunder" in unknown["error"]
    mock_client.events.side_effect = MidashengConnectionError("down")
    down = _data(
        await api.async_call_tool(llm.ToolInput(tool_name="recent_sound_events", tool_args={}))
    )
    assert down == {"error": "down"}
