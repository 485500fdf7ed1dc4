"""Conversation agent: answers questions about sounds, hands everything else to Assist."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from homeassistant.components import conversation
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .coordinator import MidashengConfigEntry
from .sounds import DATA_SOUNDS, Query

PARALLEL_UPDATES = 0
# Conversations whose last question is remembered for "and before that?".
MAX_CONVERSATIONS = 50


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the agent of this service."""
    async_add_entities([MidashengConversationEntity(entry)])


class MidashengConversationEntity(conversation.ConversationEntity):
    """The "MiDasheng Audio" agent: the only agent a voice pipeline needs."""

    _attr_has_entity_name = True
    _attr_name = None

    def __init__(self, entry: MidashengConfigEntry) -> None:
        """Attach the agent to the service's device."""
        coordinator = entry.runtime_data.coordinator
        self._attr_unique_id = f"{coordinator.unique_id}_conversation"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, coordinator.unique_id)})
        self._history: OrderedDict[str, Query] = OrderedDict()

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Every language: unknown ones use English questions and Home Assistant's agent."""
        return MATCH_ALL

    async def _async_handle_message(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> conversation.ConversationResult:
        """Answer a question about sounds, or pass the sentence to Home Assistant's agent."""
        conversation_id = chat_log.conversation_id
        answer = await self.hass.data[DATA_SOUNDS].async_answer_text(
            user_input.text, user_input.language, self._history.get(conversation_id)
        )
        if answer is None:
            result = await conversation.async_converse(
                self.hass,
                user_input.text,
                conversation_id,
                user_input.context,
                user_input.language,
                agent_id=conversation.HOME_ASSISTANT_AGENT,
                device_id=user_input.device_id,
            )
            return conversation.ConversationResult(
                response=result.response,
                conversation_id=conversation_id,
                continue_conversation=result.continue_conversation,
            )
        if answer.follow_up is not None:
            self._history[conversation_id] = answer.follow_up
            self._history.move_to_end(conversation_id)
            while len(self._history) > MAX_CONVERSATIONS:
                self._history.popitem(last=False)
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_speech(answer.text)
        response.async_set_speech_slots({"events": [found.as_dict() for found in answer.events]})
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=user_input.agent_id, content=answer.text)
        )
        return conversation.ConversationResult(response=response, conversation_id=conversation_id)
