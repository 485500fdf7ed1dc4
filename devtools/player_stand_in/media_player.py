"""The stand-in player: `media_player.stand_in_player`, set up from YAML
(`media_player: [{platform: player_stand_in}]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.components import media_source
from homeassistant.components.media_player import (
    MediaPlayerEntity,
    MediaPlayerEntityFeature,
    MediaPlayerState,
    MediaType,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType


async def async_setup_platform(
    hass: HomeAssistant,
    config: ConfigType,
    async_add_entities: AddEntitiesCallback,
    discovery_info: DiscoveryInfoType | None = None,
) -> None:
    """Add the one stand-in player."""
    async_add_entities([StandInPlayer()])


class StandInPlayer(MediaPlayerEntity):
    """Plays by downloading: the bytes a real network player would fetch end up in a file."""

    _attr_name = "Stand-in player"
    _attr_supported_features = MediaPlayerEntityFeature.PLAY_MEDIA
    _attr_state = MediaPlayerState.IDLE

    def __init__(self) -> None:
        """Nothing played yet."""
        self._played = 0

    async def async_play_media(
        self, media_type: MediaType | str, media_id: str, **kwargs: Any
    ) -> None:
        """Resolve a media source as players do, fetch it over HTTP and keep it."""
        if media_source.is_media_source_id(media_id):
            play = await media_source.async_resolve_media(self.hass, media_id, self.entity_id)
            media_id = play.url
        url = media_id
        if url.startswith("/"):
            url = f"http://127.0.0.1:{self.hass.http.server_port}{url}"
        async with async_get_clientsession(self.hass).get(url) as response:
            response.raise_for_status()
            data = await response.read()
            extension = {"audio/mpeg": "mp3"}.get(
                response.content_type, response.content_type.rsplit("/", 1)[-1]
            )
        folder = Path(self.hass.config.path("player_stand_in"))
        self._played += 1
        path = folder / f"played-{self._played}.{extension}"

        def write() -> None:
            folder.mkdir(exist_ok=True)
            path.write_bytes(data)

        await self.hass.async_add_executor_job(write)
        self._attr_media_content_id = media_id
        self._attr_state = MediaPlayerState.PLAYING
        self._attr_extra_state_attributes = {"played_file": str(path), "played_bytes": len(data)}
        self.async_write_ha_state()
