"""The intents as tools of the Assist LLM API, and the integration's own LLM API."""

from __future__ import annotations

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


def _context() -> llm.LLMContext:
    return llm.LLMContext(
        platform="test",
        context=Context(),
        user_prompt="what did you hear?",
        language="en",
        assistant=None,
        device_id=None,
    )


@pytest.mark.usefixtures("init_integration")
async def test_assist_api_tools(hass: HomeAssistant, service_events: list[dict[str, Any]]) -> None:
    """The intents are tools of the Assist API and answer there."""
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    api = await llm.async_get_api(hass, llm.LLM_API_ASSIST, _context())
    names = {tool.name for tool in api.tools}
    assert names >= INTENT_TOOLS
    result = await api.async_call_tool(
        llm.ToolInput(tool_name="MidashengWhatDidYouHear", tool_args={"place": "Kitchen"})
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

    result = await api.async_call_tool(
        llm.ToolInput(tool_name="recent_sound_events", tool_args={"hours": 1})
    )
    assert result["count"] == 2
    assert [e["seq"] for e in result["events"]] == [42, 41]
    assert result["events"][0]["place"] == "Kitchen"
    hall = await api.async_call_tool(
        llm.ToolInput(
            tool_name="recent_sound_events",
            tool_args={"place": "hall", "category": "dog barking", "limit": 5},
        )
    )
    assert [e["seq"] for e in hall["events"]] == [41]
    unknown = await api.async_call_tool(
        llm.ToolInput(tool_name="recent_sound_events", tool_args={"place": "garage"})
    )
    assert "garage" in unknown["error"]
    unknown = await api.async_call_tool(
        llm.ToolInput(tool_name="recent_sound_events", tool_args={"category": "thunder"})
    )
    assert "thunder" in unknown["error"]
    mock_client.events.side_effect = MidashengConnectionError("down")
    down = await api.async_call_tool(llm.ToolInput(tool_name="recent_sound_events", tool_args={}))
    assert down == {"error": "down"}
