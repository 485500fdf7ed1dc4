"""The sound questions as tools of Home Assistant's Assist LLM API.

Since Home Assistant 2026 each integration contributes its own tools to the Assist API
through this platform, named `<domain>__<tool>`; earlier releases offered every registered
intent to the API themselves and never load this module.
"""

from __future__ import annotations

from homeassistant.components.llm import LLMTools
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import llm

from .const import DOMAIN
from .llm_api import intent_tools
from .sounds import loaded_entries


@callback
def async_get_tools(
    hass: HomeAssistant, llm_context: llm.LLMContext, api_id: str
) -> LLMTools | None:
    """The sound intents, for the Assist API while a service is set up."""
    if api_id != llm.LLM_API_ASSIST or not loaded_entries(hass):
        return None
    tools = intent_tools(hass, prefix=f"{DOMAIN}__")
    for tool in tools:
        # Questions about what was heard read the event log and change nothing.
        tool.annotations = llm.ToolAnnotations(read_only=True, open_world=False)
    return LLMTools(tools=tools)
